#include "config.h"
/*
 * test_policy.c - unit tests of queue/queue_policy.c and
 * queue/queue_content.c.
 * Parser: a table of {rules text, want error "FILE:LINE: reason" or a
 * table with N rules}: every condition and
 * action, quoting, /ERE/ with spaces, "\/" and the c flag, comments,
 * labels as RFC 2045 tokens, `filter` needs its command.
 * Matcher: a table of {message, envelope, rules, want action / rule
 * line / state value} over sample messages written to body/QID in a
 * temporary spool (the check reads the file as the daemon does): folded
 * headers, MIME attachments (quoted, RFC 2231, RFC 2047, nested
 * multiparts, message/rfc822, Content-Type name=), body_scan limits, a
 * header section longer than the first read, NUL in the body.
 * Prefilter (queue_rx.c): the literals taken from an ERE, and that a
 * body regex with a prefilter matches exactly as without one.
 */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <ctype.h>
#include <regex.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <cmocka.h>

#include "queue/queue_int.h"

#define NELEM(a)	(sizeof(a) / sizeof((a)[0]))
#define QID		"0000PolicyTest01"

static char	tmpdir[] = "/tmp/wm-test-policy.XXXXXX";
static char	rules_path[600];
static int	failures;

#define CHECK(cond, name, ...) do {					\
	if (!(cond)) {							\
		print_error("%s: ", (name));				\
		print_error(__VA_ARGS__);				\
		print_error("\n");					\
		failures++;						\
	}								\
} while (0)

/* strlcat_compat - append, truncating (test helper) */
static size_t
strlcat_compat(char *dst, const char *src, size_t size)
{
	size_t	d = strlen(dst), n = strlen(src);

	if (d + n + 1 > size)
		n = size - d - 1;
	memcpy(dst + d, src, n);
	dst[d + n] = '\0';
	return d + n;
}

static void
write_file(const char *path, const char *text, size_t len)
{
	FILE	*fp;

	assert_non_null(fp = fopen(path, "w"));
	assert_int_equal(fwrite(text, 1, len, fp), len);
	assert_int_equal(fclose(fp), 0);
}

static struct policy *
load(const char *rules, uint64_t scan, char *err, size_t errlen)
{
	write_file(rules_path, rules, strlen(rules));
	return queue_policy_load(rules_path, scan, err, errlen);
}

static int
setup(void **state)
{
	char	body[700];

	(void)state;
	if (mkdtemp(tmpdir) == NULL)
		return -1;
	(void)snprintf(rules_path, sizeof(rules_path), "%s/policy.conf",
	    tmpdir);
	(void)snprintf(body, sizeof(body), "%s/body", tmpdir);
	if (mkdir(body, 0700) == -1 || chdir(tmpdir) == -1)
		return -1;
	return 0;
}

static int
teardown(void **state)
{
	char	cmd[600];

	(void)state;
	(void)snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	return chdir("/") == 0 && system(cmd) == 0 ? 0 : -1;
}

/* ---------------------------------------------------------------- parser */

static void
test_parse(void **state)
{
	static const struct {
		const char	*name, *text;
		const char	*want_err;	/* after "PATH:", NULL = loads */
		size_t		 want_rules;
	} cases[] = {
		{ "empty", "", NULL, 0 },
		{ "comments and blank lines",
		  "# a comment\n\n   \t\n  # indented comment\n", NULL, 0 },
		{ "accept alone", "accept\n", NULL, 1 },
		{ "every condition",
		  "quarantine/spam client=127.0.0.0/8,::1 helo=*.test auth=no "
		  "from=*@example.com rcpt=user@* size>10k "
		  "header=Subject:/buy now/ attachment=*.exe body=/^x$/c\n",
		  NULL, 1 },
		{ "trailing comment", "hold from=<> # null sender\n", NULL, 1 },
		{ "crlf line ends", "accept rcpt=a@b\r\nreject\r\n", NULL, 2 },
		{ "reject text", "\n\nreject \"Go \\\"away\\\" now\" "
		  "helo=\"my host\"\n", NULL, 1 },
		{ "regex with \\/ and #", "reject body=/a\\/b #c/\n", NULL, 1 },
		{ "condition names any case", "accept HELO=x Size>1m\n", NULL,
		  1 },
		{ "filter with its command", "accept\n"
		  "filter \"/usr/bin/scan --strict\" size>1k\n", NULL, 2 },
		{ "filter without command", "accept\nfilter size>1k\n",
		  "2: filter needs its command", 0 },
		{ "unknown action", "deny from=x\n", "1: unknown action \"deny\"",
		  0 },
		{ "action case-sensitive", "Accept\n", "1: unknown action", 0 },
		{ "unknown condition", "accept to=x\n",
		  "1: unknown condition \"to\"", 0 },
		{ "bare word", "reject spam here\n",
		  "1: unknown condition \"spam\"", 0 },
		{ "wrong operator", "accept size=5\n", "1: size> expected", 0 },
		{ "size syntax", "accept size>5x\n", "1: invalid size \"5x\"", 0 },
		{ "bad network", "accept client=10.0.0.0/33\n",
		  "1: invalid network \"10.0.0.0/33\"", 0 },
		{ "auth value", "accept auth=maybe\n",
		  "1: auth: yes or no expected", 0 },
		{ "missing value", "accept helo=\n", "1: missing value", 0 },
		{ "header without regex", "accept header=Subject:spam\n",
		  "1: regular expression expected", 0 },
		{ "header without name", "accept header=/x/\n",
		  "1: header=NAME:/ERE/ expected", 0 },
		{ "unterminated regex", "accept body=/abc\n",
		  "1: unterminated regular expression", 0 },
		{ "regex flag", "accept body=/abc/i\n",
		  "1: unknown regular expression flag 'i'", 0 },
		{ "bad regex", "accept body=/a(/\n",
		  "1: bad regular expression", 0 },
		{ "empty regex", "accept body=//\n",
		  "1: empty regular expression", 0 },
		{ "usual repetitions", "accept body=/^[0-9]{1,3}(\\.[0-9]{1,3}"
		  "){3}$|a+b*c?(x|y)+/\n", NULL, 1 },
		{ "stacked repetitions", "accept body=/viagra++++++++++++++++"
		  "++++++++++++++++/\n", "1: regular expression too complex", 0 },
		{ "nested counted repetitions", "accept body=/((a{100}){100})"
		  "{100}/\n", "1: regular expression too complex", 0 },
		{ "star then stacked plus", "accept body=/ry\"*++++++++++ry/\n",
		  "1: regular expression too complex", 0 },
		{ "long counted ranges", "accept body=/[a-z0-9._%+-]{1,64}@"
		  "[a-z0-9.-]{1,255}/\n", NULL, 1 },
		{ "unterminated quote", "accept helo=\"abc\n",
		  "1: unterminated quoted string", 0 },
		{ "label not a token", "quarantine/a:b\n",
		  "1: label \"a:b\" is not an RFC 2045 token", 0 },
		{ "label with slash", "quarantine/a/b\n",
		  "1: label \"a/b\" is not an RFC 2045 token", 0 },
		{ "empty label", "quarantine/\n", "1: empty label", 0 },
		{ "hold takes no label", "hold/x\n", "1: hold takes no label",
		  0 },
		{ "accept takes no text", "accept \"x\"\n",
		  "1: accept takes no text", 0 },
		{ "text after a condition", "reject helo=x \"no\"\n",
		  "1: the text comes right after the action, once", 0 },
		{ "text not printable", "reject \"caf\xc3\xa9\"\n",
		  "1: text must be printable US-ASCII", 0 },
		{ "empty text", "reject \"\"\n", "1: empty text", 0 },
		{ "second line bad", "accept\n# ok\nreject body=/(/\n",
		  "3: bad regular expression", 0 },
	};
	struct policy	*p;
	char		 err[1024], want[1024];
	size_t		 i;

	(void)state;
	failures = 0;
	for (i = 0; i < NELEM(cases); i++) {
		err[0] = '\0';
		p = load(cases[i].text, 65536, err, sizeof(err));
		if (cases[i].want_err != NULL) {
			(void)snprintf(want, sizeof(want), "%s:%s", rules_path,
			    cases[i].want_err);
			CHECK(p == NULL, cases[i].name,
			    "got a table, want \"%s\"", want);
			CHECK(strncmp(err, want, strlen(want)) == 0,
			    cases[i].name, "got \"%s\", want \"%s...\"", err,
			    want);
			queue_policy_free(p);
			continue;
		}
		CHECK(p != NULL, cases[i].name, "got \"%s\", want a table",
		    err);
		if (p == NULL)
			continue;
		CHECK(queue_policy_count(p) == cases[i].want_rules,
		    cases[i].name, "got %zu rules, want %zu",
		    queue_policy_count(p), cases[i].want_rules);
		queue_policy_free(p);
	}
	assert_int_equal(failures, 0);
}

/* --------------------------------------------------------------- matcher */

static const char msg_plain[] =
	"Received: from a by b; Mon, 1 Jan 2024 00:00:00 +0000\r\n"
	"From: <alice@example.com>\r\n"
	"Subject: Cheap\r\n"
	" \twatches and\r\n"
	"\t more\r\n"
	"X-Tag: one\r\n"
	"X-Tag: two\r\n"
	"\r\n"
	"Hello,\r\n"
	"line two: Casual CASE\r\n"
	"The End\r\n";

static const char msg_mime[] =
	"From: <alice@example.com>\r\n"
	"Subject: files\r\n"
	"MIME-Version: 1.0\r\n"
	"Content-Type: multipart/mixed;\r\n"
	"\tboundary=\"outer b\"\r\n"
	"\r\n"
	"preamble --outer b is not a boundary here\r\n"
	"--outer b\r\n"
	"Content-Type: multipart/alternative; boundary=inner\r\n"
	"\r\n"
	"--inner\r\n"
	"Content-Type: text/plain\r\n"
	"\r\n"
	"text\r\n"
	"--inner\r\n"
	"Content-Type: application/octet-stream; name=\"In Ner.PDF\"\r\n"
	"\r\n"
	"AAAA\r\n"
	"--inner--\r\n"
	"--outer b\r\n"
	"Content-Type: application/x-msdownload\r\n"
	"Content-Disposition: attachment;\r\n"
	" filename=\"Invoice \\\"2024\\\".exe\"\r\n"
	"Content-Transfer-Encoding: base64\r\n"
	"\r\n"
	"TVqQAAMAAAAEAAAA\r\n"
	"--outer b\r\n"
	"Content-Disposition: attachment; filename*=UTF-8''r%C3%A9sum%C3%A9.docx\r\n"
	"\r\n"
	"x\r\n"
	"--outer b\r\n"
	"Content-Disposition: attachment;\r\n"
	" filename*0=\"long\"; filename*1=\"name\"; filename*2=\".zip\"\r\n"
	"\r\n"
	"x\r\n"
	"--outer b\r\n"
	"Content-Disposition: attachment; filename=\"=?UTF-8?B?c2NyaXB0LmpzZQ==?=\"\r\n"
	"\r\n"
	"x\r\n"
	"--outer b\r\n"
	"Content-Disposition: attachment; filename==?iso-8859-1?Q?a_b=2Evbs?=\r\n"
	"\r\n"
	"x\r\n"
	"--outer b\r\n"
	"Content-Type: message/rfc822\r\n"
	"\r\n"
	"From: <x@y>\r\n"
	"Content-Type: multipart/mixed; boundary=deep\r\n"
	"\r\n"
	"--deep\r\n"
	"Content-Disposition: attachment; filename=nested.scr\r\n"
	"\r\n"
	"x\r\n"
	"--deep--\r\n"
	"--outer b--\r\n"
	"--outer b\r\n"
	"Content-Disposition: attachment; filename=after-close.bat\r\n"
	"\r\n"
	"epilogue\r\n";

static const char msg_single[] =
	"Subject: one file\r\n"
	"Content-Type: application/pdf; name=report.pdf\r\n"
	"Content-Disposition: attachment\r\n"
	"\r\n"
	"%PDF\r\n";

static const char msg_no_body[] =
	"Subject: only a header";

static const char msg_not_field[] =
	"Subject: a\r\n"
	"this line is no field\r\n"
	"Subject: b\r\n";

struct env {
	const char	*sender, *helo, *client, *auth;
	const char	*rcpts[3];
};

static const struct env env0 = {
	"alice@example.com", "client.test", "127.0.0.1", NULL,
	{ "bob@example.org", NULL, NULL }
};

/* run - rules against msg (len bytes) with envelope e; the verdict */
static int
run(const char *rules, uint64_t scan, const char *msg, size_t len,
    const struct env *e, struct policy_verdict *v, char *err, size_t errlen)
{
	struct policy	*p;
	struct qmsg	*m;
	size_t		 i;
	int		 rc;

	if ((p = load(rules, scan, err, errlen)) == NULL)
		return -2;
	write_file("body/" QID, msg, len);
	assert_non_null(m = qmsg_new());
	memcpy(m->qid, QID, sizeof(QID));
	m->size = len;
	assert_non_null(m->sender = strdup(e->sender));
	if (e->helo != NULL)
		assert_non_null(m->helo = strdup(e->helo));
	if (e->client != NULL)
		assert_non_null(m->client_addr = strdup(e->client));
	if (e->auth != NULL)
		assert_non_null(m->auth_user = strdup(e->auth));
	for (i = 0; i < NELEM(e->rcpts) && e->rcpts[i] != NULL; i++)
		assert_int_equal(qmsg_add_rcpt(m, e->rcpts[i]), 0);
	rc = queue_policy_check(p, m, v);
	/* the verdict's strings point into p: copy what the caller checks */
	qmsg_free(m);
	if (rc == 0 && v->where != NULL) {
		static char	where[700], value[100], text[300], reason[300];

		(void)snprintf(where, sizeof(where), "%s", v->where);
		(void)snprintf(value, sizeof(value), "%s",
		    v->value ? v->value : "");
		(void)snprintf(text, sizeof(text), "%s", v->text ? v->text : "");
		(void)snprintf(reason, sizeof(reason), "%s", v->reason);
		v->where = where;
		v->value = v->value ? value : NULL;
		v->text = v->text ? text : NULL;
		v->reason = reason;
		v->actor = NULL;
	}
	queue_policy_free(p);
	return rc;
}

static void
test_match(void **state)
{
	static const struct env env_null = {
		"", "mail.example.net", "192.0.2.7", NULL,
		{ "postmaster@example.org", NULL, NULL }
	};
	static const struct env env_auth = {
		"carol@example.org", "[127.0.0.1]", "::1", "carol",
		{ "x@remote.test", "Y@Example.NET", NULL }
	};
	static const struct env env_mapped = {
		"a@b", "h", "::ffff:10.1.2.3", NULL, { "c@d", NULL, NULL }
	};
	static const struct {
		const char	*name, *msg;
		const struct env *env;
		const char	*rules;
		uint64_t	 scan;		/* 0 = 64k */
		unsigned	 want_line;	/* 0 = no rule matched */
		enum policy_action want_action;
		const char	*want_value;
	} cases[] = {
		/* envelope */
		{ "no rules match", msg_plain, &env0,
		  "reject helo=other\nreject from=<>\n", 0, 0, POLICY_ACCEPT,
		  NULL },
		{ "first match wins", msg_plain, &env0,
		  "accept helo=CLIENT.TEST\nreject\n", 0, 1, POLICY_ACCEPT,
		  NULL },
		{ "all conditions must hold", msg_plain, &env0,
		  "reject helo=client.test from=nobody@*\nhold from=alice@*\n",
		  0, 2, POLICY_HOLD, "hold" },
		{ "client net", msg_plain, &env0,
		  "reject client=10.0.0.0/8\nquarantine/local "
		  "client=192.0.2.0/24,127.0.0.0/8\n", 0, 2, POLICY_QUARANTINE,
		  "local" },
		{ "client v6", msg_plain, &env_auth,
		  "reject client=127.0.0.1\nhold client=::1/128\n", 0, 2,
		  POLICY_HOLD, "hold" },
		{ "client v4-mapped", msg_plain, &env_mapped,
		  "hold client=10.0.0.0/8\n", 0, 1, POLICY_HOLD, "hold" },
		{ "null sender", msg_plain, &env_null,
		  "reject from=*@*\nquarantine/bounce from=<>\n", 0, 2,
		  POLICY_QUARANTINE, "bounce" },
		{ "from=<> not for others", msg_plain, &env0,
		  "reject from=<>\n", 0, 0, POLICY_ACCEPT, NULL },
		{ "auth yes", msg_plain, &env_auth,
		  "reject auth=no\naccept auth=yes\nreject\n", 0, 2,
		  POLICY_ACCEPT, NULL },
		{ "auth no", msg_plain, &env0,
		  "accept auth=yes\nreject auth=no\n", 0, 2, POLICY_REJECT,
		  NULL },
		{ "rcpt any, case-insensitive", msg_plain, &env_auth,
		  "hold rcpt=y@example.net\n", 0, 1, POLICY_HOLD, "hold" },
		{ "helo glob", msg_plain, &env_auth,
		  "reject helo=\\[*\\]\n", 0, 1, POLICY_REJECT, NULL },
		{ "size", msg_plain, &env0,
		  "reject size>1k\nhold size>100\n", 0, 2, POLICY_HOLD, "hold" },
		/* headers */
		{ "header unfolded", msg_plain, &env0,
		  "reject header=Subject:/^Cheap watches and more$/\n", 0, 0,
		  POLICY_ACCEPT, NULL },
		{ "header unfolded keeps the white space", msg_plain, &env0,
		  "reject header=subject:/^Cheap \twatches and\t more$/\n", 0,
		  1, POLICY_REJECT, NULL },
		{ "header regex case-insensitive", msg_plain, &env0,
		  "quarantine/spam header=SUBJECT:/cheap.*WATCHES/\n", 0, 1,
		  POLICY_QUARANTINE, "spam" },
		{ "header regex /c", msg_plain, &env0,
		  "reject header=Subject:/cheap/c\nhold header=Subject:/Cheap/c\n",
		  0, 2, POLICY_HOLD, "hold" },
		{ "any field of that name", msg_plain, &env0,
		  "reject header=X-Tag:/^two$/\n", 0, 1, POLICY_REJECT, NULL },
		{ "field absent", msg_plain, &env0,
		  "reject header=X-Nope:/./\n", 0, 0, POLICY_ACCEPT, NULL },
		{ "header section only", msg_plain, &env0,
		  "reject header=Hello,:/./\n", 0, 0, POLICY_ACCEPT, NULL },
		{ "no empty line", msg_no_body, &env0,
		  "reject header=Subject:/only a header$/\n", 0, 1,
		  POLICY_REJECT, NULL },
		{ "header ends at a non-field line", msg_not_field, &env0,
		  "reject header=Subject:/^b$/\nhold body=/^Subject: b$/\n", 0,
		  2, POLICY_HOLD, "hold" },
		/* body */
		{ "body line anchors", msg_plain, &env0,
		  "reject body=/^line two: casual case$/\n", 0, 1,
		  POLICY_REJECT, NULL },
		{ "body /c", msg_plain, &env0,
		  "reject body=/casual case/c\nhold body=/Casual CASE/c\n", 0, 2,
		  POLICY_HOLD, "hold" },
		{ "body excludes the header", msg_plain, &env0,
		  "reject body=/Subject/\n", 0, 0, POLICY_ACCEPT, NULL },
		{ "body dot stops at line ends", msg_plain, &env0,
		  "reject body=/Hello.*two/\n", 0, 0, POLICY_ACCEPT, NULL },
		{ "body within policy_body_scan", msg_plain, &env0,
		  "reject body=/The End/\nhold body=/line two/\n", 20, 2,
		  POLICY_HOLD, "hold" },
		/* attachments */
		{ "quoted filename with escapes", msg_mime, &env0,
		  "reject attachment=\"invoice \\\"2024\\\".EXE\"\n", 0, 1,
		  POLICY_REJECT, NULL },
		{ "Content-Type name=, nested", msg_mime, &env0,
		  "reject attachment=*.pdf\n", 0, 1, POLICY_REJECT, NULL },
		{ "RFC 2231 charset and %", msg_mime, &env0,
		  "reject attachment=r\xc3\xa9sum\xc3\xa9.docx\n", 0, 1,
		  POLICY_REJECT, NULL },
		{ "RFC 2231 continuations", msg_mime, &env0,
		  "reject attachment=longname.zip\n", 0, 1, POLICY_REJECT, NULL },
		{ "RFC 2047 B", msg_mime, &env0,
		  "reject attachment=*.jse\n", 0, 1, POLICY_REJECT, NULL },
		{ "RFC 2047 Q", msg_mime, &env0,
		  "reject attachment=\"a b.vbs\"\n", 0, 1, POLICY_REJECT, NULL },
		{ "inside message/rfc822", msg_mime, &env0,
		  "reject attachment=nested.scr\n", 0, 1, POLICY_REJECT, NULL },
		{ "not after the closing boundary", msg_mime, &env0,
		  "reject attachment=*.bat\n", 0, 0, POLICY_ACCEPT, NULL },
		{ "no such attachment", msg_mime, &env0,
		  "reject attachment=*.com\n", 0, 0, POLICY_ACCEPT, NULL },
		{ "single-part message", msg_single, &env0,
		  "quarantine/pdf attachment=REPORT.*\n", 0, 1,
		  POLICY_QUARANTINE, "pdf" },
		{ "parts past policy_body_scan unseen", msg_mime, &env0,
		  "reject attachment=*.exe\nhold attachment=*.pdf\n", 300, 2,
		  POLICY_HOLD, "hold" },
		{ "every condition at once", msg_mime, &env0,
		  "quarantine/all client=127.0.0.0/8,::1 helo=*.test auth=no "
		  "from=*@example.com rcpt=bob@* size>1k header=Subject:/^files$/ "
		  "attachment=*.exe body=/^x$/c\n", 0, 1, POLICY_QUARANTINE,
		  "all" },
		/* envelope first, content only when needed */
		{ "mixed rule", msg_mime, &env0,
		  "reject body=/TVqQ/ from=nobody@*\nhold body=/TVqQ/ "
		  "from=alice@*\n", 0, 2, POLICY_HOLD, "hold" },
	};
	struct policy_verdict	 v;
	char			 err[1024], name[128];
	size_t			 i;
	int			 rc;

	(void)state;
	failures = 0;
	for (i = 0; i < NELEM(cases); i++) {
		err[0] = '\0';
		rc = run(cases[i].rules, cases[i].scan ? cases[i].scan : 65536,
		    cases[i].msg, strlen(cases[i].msg), cases[i].env, &v, err,
		    sizeof(err));
		(void)snprintf(name, sizeof(name), "%s", cases[i].name);
		CHECK(rc == 0, name, "got rc %d (%s), want 0", rc, err);
		if (rc != 0)
			continue;
		if (cases[i].want_line == 0) {
			CHECK(v.where == NULL, name, "got rule %s, want none",
			    v.where);
			CHECK(v.action == POLICY_ACCEPT && v.state == MS_NORMAL,
			    name, "got action %d, want accept", v.action);
			continue;
		}
		CHECK(v.where != NULL, name, "got no rule, want line %u",
		    cases[i].want_line);
		if (v.where == NULL)
			continue;
		CHECK((unsigned)atoi(strrchr(v.where, ':') + 1) ==
		    cases[i].want_line, name, "got %s, want line %u", v.where,
		    cases[i].want_line);
		CHECK(v.action == cases[i].want_action, name,
		    "got action %d, want %d", v.action, cases[i].want_action);
		CHECK((v.value == NULL) == (cases[i].want_value == NULL) &&
		    (v.value == NULL || strcmp(v.value,
		    cases[i].want_value) == 0), name, "got value %s, want %s",
		    v.value ? v.value : "(none)",
		    cases[i].want_value ? cases[i].want_value : "(none)");
	}
	assert_int_equal(failures, 0);
}

/* test_verdict - the strings of a verdict: states, text, reason, actor */
static void
test_verdict(void **state)
{
	struct policy		*p;
	struct policy_verdict	 v;
	struct qmsg		*m;
	char			 err[1024], want[1024];

	(void)state;
	assert_non_null(p = load("# rules\n"
	    "reject \"Not here (really)\" rcpt=a@*\n"
	    "reject rcpt=b@*\n"
	    "quarantine/virus header=X-Virus:/yes/ rcpt=c@*\n"
	    "hold rcpt=d@*\n"
	    "quarantine rcpt=e@*\n", 65536, err, sizeof(err)));
	write_file("body/" QID, "X-Virus: yes\r\n\r\nx\r\n", 19);
	assert_non_null(m = qmsg_new());
	memcpy(m->qid, QID, sizeof(QID));
	m->size = 19;
	assert_non_null(m->sender = strdup("s@x"));

	assert_int_equal(qmsg_add_rcpt(m, "a@x"), 0);
	assert_int_equal(queue_policy_check(p, m, &v), 0);
	assert_int_equal(v.action, POLICY_REJECT);
	assert_string_equal(v.text, "Not here (really)");
	assert_string_equal(v.name, "reject");
	(void)snprintf(want, sizeof(want), "%s:2", rules_path);
	assert_string_equal(v.where, want);

	free(m->rcpts[0].addr);
	assert_non_null(m->rcpts[0].addr = strdup("b@x"));
	assert_int_equal(queue_policy_check(p, m, &v), 0);
	assert_string_equal(v.text, "Message refused by policy");

	free(m->rcpts[0].addr);
	assert_non_null(m->rcpts[0].addr = strdup("c@x"));
	assert_int_equal(queue_policy_check(p, m, &v), 0);
	assert_int_equal(v.action, POLICY_QUARANTINE);
	assert_int_equal(v.state, MS_QUARANTINE);
	assert_string_equal(v.value, "virus");
	/* reason: written order of the conditions */
	(void)snprintf(want, sizeof(want), "%s:4 header X-Virus rcpt",
	    rules_path);
	assert_string_equal(v.reason, want);
	(void)snprintf(want, sizeof(want), "policy %s:4", rules_path);
	assert_string_equal(v.actor, want);
	assert_null(v.text);

	free(m->rcpts[0].addr);
	assert_non_null(m->rcpts[0].addr = strdup("d@x"));
	assert_int_equal(queue_policy_check(p, m, &v), 0);
	assert_int_equal(v.state, MS_OTHER);
	assert_string_equal(v.value, "hold");
	assert_string_equal(v.name, "hold");

	free(m->rcpts[0].addr);
	assert_non_null(m->rcpts[0].addr = strdup("e@x"));
	assert_int_equal(queue_policy_check(p, m, &v), 0);
	assert_int_equal(v.state, MS_QUARANTINE);
	assert_null(v.value);

	/* an unreadable body is an error, not a verdict */
	free(m->rcpts[0].addr);
	assert_non_null(m->rcpts[0].addr = strdup("c@x"));
	assert_int_equal(unlink("body/" QID), 0);
	assert_int_equal(queue_policy_check(p, m, &v), -1);
	qmsg_free(m);
	queue_policy_free(p);
}

/* test_reason_safe - a reason never breaks the Received comment */
static void
test_reason_safe(void **state)
{
	struct policy		*p;
	struct policy_verdict	 v;
	struct qmsg		*m;
	char			 err[1024], dir[700], path[800];
	const char		*r;

	(void)state;
	(void)snprintf(dir, sizeof(dir), "%s/we(ird) dir", tmpdir);
	assert_int_equal(mkdir(dir, 0700), 0);
	(void)snprintf(path, sizeof(path), "%s/p.conf", dir);
	write_file(path, "hold header=X-A:/./\n", 20);
	assert_non_null(p = queue_policy_load(path, 1024, err, sizeof(err)));
	write_file("body/" QID, "X-A: 1\r\n\r\n", 10);
	assert_non_null(m = qmsg_new());
	memcpy(m->qid, QID, sizeof(QID));
	m->size = 10;
	assert_non_null(m->sender = strdup(""));
	assert_int_equal(queue_policy_check(p, m, &v), 0);
	assert_non_null(v.reason);
	for (r = v.reason; *r != '\0'; r++)
		assert_true(*r > 32 ? (*r < 127 && *r != '(' && *r != ')' &&
		    *r != '\\') : *r == ' ');
	assert_non_null(strstr(v.reason, "we_ird__dir/p.conf:1 header X-A"));
	qmsg_free(m);
	queue_policy_free(p);
}

/* test_big_header - a header section longer than the first read, and a
 * NUL in the body (REG_STARTEND) */
static void
test_big_header(void **state)
{
	struct policy_verdict	 v;
	char			 err[1024], *msg;
	size_t			 n = 0, i;

	(void)state;
	assert_non_null(msg = malloc(200000));
	for (i = 0; i < 2000; i++)
		n += (size_t)snprintf(msg + n, 200000 - n,
		    "X-Filler-%04zu: %060zu\r\n", i, i);
	n += (size_t)snprintf(msg + n, 200000 - n, "Subject: late\r\n\r\n");
	memcpy(msg + n, "a\0b\r\nneedle\r\n", 13);
	n += 13;
	assert_true(n > 100000);
	assert_int_equal(run("reject header=Subject:/^late$/ body=/needle/\n",
	    16, msg, n, &env0, &v, err, sizeof(err)), 0);
	assert_int_equal(v.action, POLICY_REJECT);
	assert_int_equal(run("reject body=/^needle$/\n", 4, msg, n, &env0, &v,
	    err, sizeof(err)), 0);
	assert_null(v.where);		/* past the 4 octets scanned */
	free(msg);
}

/* test_rx_lits - the literals every match must contain */
static void
test_rx_lits(void **state)
{
	static const struct {
		const char	*ere;
		int		 icase;
		const char	*want;		/* "[a][b]", "" = no prefilter */
	} cases[] = {
		{ "viagra", 1, "[viagra]" },
		{ "ViAgRa", 1, "[viagra]" },
		{ "ViAgRa", 0, "[ViAgRa]" },
		{ "(viagra|cialis)", 1, "[viagra][cialis]" },
		{ "abc|def", 1, "[abc][def]" },
		{ "abc|de", 1, "" },			/* "de" too short */
		{ "(abc|)xyz", 1, "[xyz]" },
		{ "(abc)?xy", 1, "" },
		{ "colou?r", 1, "[colo]" },
		{ "ab+cde", 1, "[cde]" },
		{ "abc+de", 1, "[abc]" },
		{ "x{0,3}yzw", 1, "[yzw]" },
		{ "ab{0}cde", 1, "[cde]" },
		{ "a{2}bcd", 1, "[bcd]" },
		{ "a{", 1, "" },			/* not understood */
		{ "a\\.bcd", 1, "[a.bcd]" },		/* \. is a dot */
		{ "a\\\\bcd", 1, "[a\\bcd]" },		/* \\ a backslash */
		{ "a\\bcd", 1, "" },			/* \b is no literal */
		{ "a\\wxyz", 1, "[xyz]" },
		{ "\\<word\\>", 1, "[word]" },
		{ "ab\\wcd", 1, "" },
		{ "a\\1bcd", 1, "[bcd]" },		/* back-reference */
		{ "[Hh]ello world", 1, "[ello world]" },
		{ "[]abc]def", 1, "[def]" },
		{ "[[:alpha:]]+zzz", 1, "[zzz]" },
		{ "^Dear (customer|friend),$", 1, "[customer][friend]" },
		{ "^Dear (cust|friend),$", 1, "[dear ]" },
		{ "^--[-_=A-Za-z0-9]{10,}--$", 1, "" },
		{ "foo(bar)*", 1, "[foo]" },
		{ "(a|(bcd|efg)h)ijk", 1, "[ijk]" },
		{ "(x(bcd|efg)h)", 1, "[bcd][efg]" },
		{ "a.b.c", 1, "" },
	};
	struct rx_lits	 l;
	char		 got[256];
	size_t		 i, j, off;

	(void)state;
	failures = 0;
	for (i = 0; i < NELEM(cases); i++) {
		assert_int_equal(rx_lits_make(cases[i].ere, cases[i].icase,
		    &l), 0);
		for (j = 0, off = 0, got[0] = '\0'; j < l.n; j++)
			off += (size_t)snprintf(got + off, sizeof(got) - off,
			    "[%s]", l.lit[j]);
		CHECK(strcmp(got, cases[i].want) == 0, cases[i].ere,
		    "got \"%s\", want \"%s\"", got, cases[i].want);
		CHECK(l.icase == cases[i].icase, cases[i].ere, "icase");
		rx_lits_free(&l);
	}
	assert_int_equal(failures, 0);
}

/* test_prefilter - body regexes with and without literals match as
 * regexec alone would */
static void
test_prefilter(void **state)
{
	static const char msg[] =
		"Subject: x\r\n\r\n"
		"Colour and flavor\r\nabbbcde\r\nyzw\r\ncdef\r\nbarbaz\r\n"
		"a.bcd axbcd\r\nHello World\r\nfoobarbar\r\nsome\\wxyz\r\n";
	static const struct {
		const char	*ere;
		int		 want;
	} cases[] = {
		{ "colou?r", 1 }, { "^colour and flavor$", 1 },
		{ "colour and flavour", 0 }, { "ab+cde", 1 }, { "abcde", 0 },
		{ "x{0,3}yzw", 1 }, { "(ab)?cdef", 1 }, { "(foo|bar)baz", 1 },
		{ "(foo|qux)baz", 0 }, { "a\\.bcd", 1 }, { "^bbcde", 0 },
		{ "[Hh]ello world", 1 }, { "Hello World/c", 1 },
		{ "HELLO WORLD/c", 0 }, { "hello world/c", 0 },
		{ "\\<world\\>", 1 }, { "abc|flavor", 1 }, { "abc|flavour", 0 },
		{ "foo(bar)*$", 1 }, { "^foo(bar){3}$", 0 }, { "e\\\\wxyz", 1 },
		{ "TVqQ", 0 },
	};
	struct policy_verdict	 v;
	char			 rules[200], err[1024];
	size_t			 i;
	int			 got;

	(void)state;
	failures = 0;
	for (i = 0; i < NELEM(cases); i++) {
		(void)snprintf(rules, sizeof(rules), "hold body=/%s%s\n",
		    cases[i].ere, strchr(cases[i].ere, '/') ? "" : "/");
		CHECK(run(rules, 65536, msg, strlen(msg), &env0, &v, err,
		    sizeof(err)) == 0, cases[i].ere, "got an error: %s", err);
		got = v.where != NULL;
		CHECK(got == cases[i].want, cases[i].ere, "got %s, want %s",
		    got ? "a match" : "none", cases[i].want ? "a match" : "none");
	}
	assert_int_equal(failures, 0);
}

/* test_rx_random - never a false "no match": random EREs and texts,
 * regexec alone against the prefilter (fixed seed) */
static void
test_rx_random(void **state)
{
	static const char *const atoms[] = {
		"a", "b", "c", "A", "ab", "abc", "bca", ".", "[ab]", "[^c]",
		"(", ")", "|", "*", "+", "?", "{0,2}", "{1}", "{2,}", "^", "$",
		"\\.", "\\b", "\\<", "\\w", " ",
	};
	static const char tchars[] = "abcABC. \n";
	struct rx_lits	 l;
	regex_t		 re;
	char		 ere[64], text[48], lower[48];
	unsigned	 seed = 12345, k, n, j, tried = 0, filtered = 0;
	int		 icase, full;

	(void)state;
	for (k = 0; k < 20000; k++) {
		ere[0] = '\0';
		n = 1 + (seed = seed * 1103515245u + 12345u) % 7;
		for (j = 0; j < n; j++) {
			seed = seed * 1103515245u + 12345u;
			(void)strlcat_compat(ere, atoms[(seed >> 8) %
			    NELEM(atoms)], sizeof(ere));
		}
		icase = (seed >> 20) & 1;
		if (regcomp(&re, ere, REG_EXTENDED | REG_NOSUB | REG_NEWLINE |
		    (icase ? REG_ICASE : 0)) != 0)
			continue;
		assert_int_equal(rx_lits_make(ere, icase, &l), 0);
		for (j = 0; j < 8; j++) {
			seed = seed * 1103515245u + 12345u;
			n = (seed >> 8) % (sizeof(text) - 1);
			text[n] = lower[n] = '\0';
			while (n-- > 0) {
				seed = seed * 1103515245u + 12345u;
				text[n] = tchars[(seed >> 8) %
				    (sizeof(tchars) - 1)];
				lower[n] = (char)tolower((unsigned char)text[n]);
			}
			n = strlen(text);
			full = regexec(&re, text, 0, NULL, 0) == 0;
			tried++;
			if (!rx_lits_maybe(&l, icase ? lower : text, n)) {
				filtered++;
				if (full)
					fail_msg("ERE \"%s\" (icase %d) matches "
					    "\"%s\" but its prefilter says no",
					    ere, icase, text);
			}
		}
		rx_lits_free(&l);
		regfree(&re);
	}
	/* the filter must also do something */
	assert_true(tried > 10000 && filtered > 1000);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse),
		cmocka_unit_test(test_match),
		cmocka_unit_test(test_verdict),
		cmocka_unit_test(test_reason_safe),
		cmocka_unit_test(test_big_header),
		cmocka_unit_test(test_rx_lits),
		cmocka_unit_test(test_prefilter),
		cmocka_unit_test(test_rx_random),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
