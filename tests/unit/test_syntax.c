#include "config.h"
/*
 * test_syntax.c - unit tests of common/syntax.c and common/date.c.
 * Tables of {name, input, want}: command lines (verb split, case,
 * unknown and overlong verbs, trailing white space), MAIL FROM: / RCPT
 * TO: arguments (prefix, lenient spaces, parameters), RFC 5321 paths
 * (null, Postmaster, source routes, quoted local parts, length limits,
 * domains, address literals), the ESMTP parameter table (SIZE, BODY, unknown, repeated,
 * not enabled, wrong command), the RFC 3461/3885 rows (RET, ENVID,
 * NOTIFY combinations, ORCPT addr-type and xtext, MTRK certifier and
 * timeout, MTRK without ENVID), the RFC 2852 BY row (sign, 1..9
 * digits, mode N/R, trace T, case, R with by-time <= 0, repeats, not
 * enabled, on RCPT), xtext (RFC 3461 4), base64 (RFC 4648
 * 10 test vectors), the MTRK certifier vector ("abcdefgh"), RFC 3339
 * date-times and RFC 5322 dates (obsolete forms, comments, zones,
 * invalid dates, rfc5322_date's output read back).  Failures print
 * "got X, want Y".
 */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "common/syntax.h"
#include "common/util.h"

#define NELEM(a)	(sizeof(a) / sizeof((a)[0]))

static int	failures;

#define CHECK(cond, name, ...) do {					\
	if (!(cond)) {							\
		print_error("%s: ", (name));				\
		print_error(__VA_ARGS__);				\
		print_error("\n");					\
		failures++;						\
	}								\
} while (0)

/* command lines */

struct split_case {
	const char	*name;
	const char	*in;
	size_t		 len;		/* 0: strlen(in) */
	int		 rc;
	const char	*verb;		/* upper-cased; "" when rc == -1 */
	const char	*arg;
};

static const struct split_case split_cases[] = {
	{ "EHLO", "EHLO mail.example.org", 0, 0, "EHLO", "mail.example.org" },
	{ "helo lower case", "helo x.example", 0, 0, "HELO", "x.example" },
	{ "mixed case", "eHlO x", 0, 0, "EHLO", "x" },
	{ "mail from lower", "mail from:<a@b>", 0, 0, "MAIL", "from:<a@b>" },
	{ "mail from params", "MAIL FROM:<a@b> SIZE=10", 0, 0, "MAIL",
	  "FROM:<a@b> SIZE=10" },
	{ "no argument", "DATA", 0, 0, "DATA", "" },
	{ "unknown X-VERB", "X-VERB some thing", 0, 0, "X-VERB", "some thing" },
	{ "digits in verb", "XV2 a", 0, 0, "XV2", "a" },
	{ "empty line", "", 0, -1, "", "" },
	{ "spaces only", "    ", 0, -1, "", "" },
	{ "tabs only", "\t\t", 0, -1, "", "" },
	{ "leading space", " NOOP", 0, -1, "", "" },
	{ "verb 15", "ABCDEFGHIJKLMNO x", 0, 0, "ABCDEFGHIJKLMNO", "x" },
	{ "overlong verb", "ABCDEFGHIJKLMNOP x", 0, -1, "", "" },
	{ "overlong verb alone", "STARTTLSSTARTTLS", 0, -1, "", "" },
	{ "trailing spaces", "NOOP   ", 0, 0, "NOOP", "" },
	{ "trailing tabs", "QUIT\t \t", 0, 0, "QUIT", "" },
	{ "trailing spaces after arg", "VRFY  user  \t", 0, 0, "VRFY", "user" },
	{ "several spaces after verb", "MAIL   FROM:<a@b>", 0, 0, "MAIL",
	  "FROM:<a@b>" },
	{ "inner tab kept", "NOOP a\tb", 0, 0, "NOOP", "a\tb" },
	{ "tab after verb", "EHLO\tx.example", 0, -1, "", "" },
	{ "underscore in verb", "EH_LO x", 0, -1, "", "" },
	{ "colon in verb", "MAIL:FROM", 0, -1, "", "" },
	{ "8-bit verb", "\xc3\x89HLO x", 0, -1, "", "" },
	{ "NUL in verb", "NO\0OP", 5, -1, "", "" },
	{ "NUL in argument", "NOOP a\0b", 8, -1, "", "" },
	{ "len stops early", "NOOP xyz", 4, 0, "NOOP", "" },
	{ "len stops in arg", "HELO abc.example", 8, 0, "HELO", "abc" },
};

static void
test_split_command(void **state)
{
	const struct split_case	*t;
	char			 verb[16];
	const char		*arg;
	size_t			 arglen, len;
	int			 rc;

	(void)state;
	failures = 0;
	for (t = split_cases; t < split_cases + NELEM(split_cases); t++) {
		len = t->len != 0 ? t->len : strlen(t->in);
		memset(verb, 'Z', sizeof(verb));
		arg = NULL;
		arglen = 12345;
		rc = smtp_split_command(t->in, len, verb, sizeof(verb), &arg,
		    &arglen);
		CHECK(rc == t->rc, t->name, "rc: got %d, want %d", rc, t->rc);
		if (rc != t->rc)
			continue;
		CHECK(memchr(verb, '\0', sizeof(verb)) != NULL, t->name,
		    "verb: not NUL-terminated");
		if (memchr(verb, '\0', sizeof(verb)) == NULL)
			continue;
		CHECK(strcmp(verb, t->verb) == 0, t->name,
		    "verb: got \"%s\", want \"%s\"", verb, t->verb);
		CHECK(arg != NULL && arg >= t->in && arg + arglen <= t->in + len,
		    t->name, "arg: outside the line");
		if (rc == -1 || arg == NULL)
			continue;
		CHECK(arglen == strlen(t->arg) &&
		    memcmp(arg, t->arg, arglen) == 0, t->name,
		    "arg: got \"%.*s\", want \"%s\"", (int)arglen, arg, t->arg);
	}
	/* the verb buffer bounds the verb: "NOOP" needs 5 bytes */
	assert_int_equal(smtp_split_command("NOOP", 4, verb, 5, &arg, &arglen), 0);
	assert_int_equal(smtp_split_command("NOOP", 4, verb, 4, &arg, &arglen), -1);
	assert_int_equal(failures, 0);
}

/* MAIL FROM: / RCPT TO: arguments */

struct mailarg_case {
	const char	*name;
	const char	*prefix;
	const char	*in;
	int		 rc;		/* 0, -1 bad path, -2 syntax */
	const char	*local;
	const char	*domain;
	int		 null, postmaster;
	const char	*params;
	const char	*why;		/* expected reason when rc < 0 (NULL: any) */
};

static const struct mailarg_case mailarg_cases[] = {
	{ "FROM plain", "FROM:", "FROM:<a@b>", 0, "a", "b", 0, 0, "", NULL },
	{ "from lower with SIZE", "FROM:", "from:<a@b> SIZE=10", 0, "a", "b",
	  0, 0, "SIZE=10", NULL },
	{ "From mixed case", "FROM:", "From:<u@x.example>", 0, "u", "x.example",
	  0, 0, "", NULL },
	{ "space after colon", "FROM:", "FROM: <a@b>", 0, "a", "b", 0, 0, "",
	  NULL },
	{ "spaces after colon", "FROM:", "FROM:   <a@b>", 0, "a", "b", 0, 0, "",
	  NULL },
	{ "several params", "FROM:", "FROM:<a@b>  SIZE=10 BODY=8BITMIME", 0,
	  "a", "b", 0, 0, "SIZE=10 BODY=8BITMIME", NULL },
	{ "null path", "FROM:", "FROM:<>", 0, "", "", 1, 0, "", NULL },
	{ "null path with SIZE", "FROM:", "FROM:<> SIZE=1", 0, "", "", 1, 0,
	  "SIZE=1", NULL },
	{ "no brackets", "FROM:", "FROM:a@b", -1, NULL, NULL, 0, 0, NULL,
	  "Syntax error in mailbox address" },
	{ "no SP before params", "FROM:", "FROM:<a@b>SIZE=1", -2, NULL, NULL,
	  0, 0, NULL, NULL },
	{ "empty path", "FROM:", "FROM:", -1, NULL, NULL, 0, 0, NULL, NULL },
	{ "unterminated path", "FROM:", "FROM:<a@b", -1, NULL, NULL, 0, 0,
	  NULL, NULL },
	{ "leading dot", "TO:", "TO:<.a@x.example>", -1, NULL, NULL, 0, 0,
	  NULL, NULL },
	{ "TO Postmaster", "TO:", "TO:<Postmaster>", 0, "Postmaster", "", 0, 1,
	  "", NULL },
	{ "to postmaster at domain", "TO:", "to:<postmaster@x.example>", 0,
	  "postmaster", "x.example", 0, 0, "", NULL },
	{ "TO null parses", "TO:", "TO:<>", 0, "", "", 1, 0, "", NULL },
	{ "source route", "TO:", "TO:<@a.example,@b.example:u@c.example>", 0,
	  "u", "c.example", 0, 0, "", NULL },
	{ "bad source route", "TO:", "TO:<@a.example;u@c.example>", -1, NULL,
	  NULL, 0, 0, NULL, "Invalid source route" },
	{ "missing prefix", "FROM:", "<a@b>", -2, NULL, NULL, 0, 0, NULL, NULL },
	{ "missing colon", "FROM:", "FROM <a@b>", -2, NULL, NULL, 0, 0, NULL,
	  NULL },
	{ "wrong prefix", "FROM:", "TO:<a@b>", -2, NULL, NULL, 0, 0, NULL,
	  NULL },
	{ "space before colon", "TO:", "TO :<a@b>", -2, NULL, NULL, 0, 0, NULL,
	  NULL },
	{ "empty argument", "TO:", "", -2, NULL, NULL, 0, 0, NULL, NULL },
	{ "prefix cut short", "FROM:", "FRO", -2, NULL, NULL, 0, 0, NULL,
	  NULL },
};

static void
test_mail_arg(void **state)
{
	const struct mailarg_case	*t;
	struct mailpath			 p;
	const char			*params, *why;
	size_t				 paramslen, len;
	int				 rc;

	(void)state;
	failures = 0;
	for (t = mailarg_cases; t < mailarg_cases + NELEM(mailarg_cases); t++) {
		len = strlen(t->in);
		params = NULL;
		paramslen = 12345;
		why = NULL;
		rc = smtp_parse_mail_arg(t->prefix, t->in, len, &p, &params,
		    &paramslen, &why);
		CHECK(rc == t->rc, t->name, "rc: got %d, want %d (why %s)", rc,
		    t->rc, why ? why : "-");
		if (rc != t->rc)
			continue;
		if (rc < 0) {
			CHECK(why != NULL && why[0] != '\0', t->name,
			    "why: got empty, want a reason");
			if (t->why != NULL && why != NULL)
				CHECK(strcmp(why, t->why) == 0, t->name,
				    "why: got \"%s\", want \"%s\"", why, t->why);
			continue;
		}
		CHECK(strcmp(p.local, t->local) == 0, t->name,
		    "local: got \"%s\", want \"%s\"", p.local, t->local);
		CHECK(strcmp(p.domain, t->domain) == 0, t->name,
		    "domain: got \"%s\", want \"%s\"", p.domain, t->domain);
		CHECK(p.null == t->null, t->name, "null: got %d, want %d",
		    p.null, t->null);
		CHECK(p.postmaster == t->postmaster, t->name,
		    "postmaster: got %d, want %d", p.postmaster, t->postmaster);
		CHECK(params != NULL && params >= t->in &&
		    params + paramslen <= t->in + len, t->name,
		    "params: outside the argument");
		if (params == NULL)
			continue;
		CHECK(paramslen == strlen(t->params) &&
		    memcmp(params, t->params, paramslen) == 0, t->name,
		    "params: got \"%.*s\", want \"%s\"", (int)paramslen, params,
		    t->params);
	}
	/* never past len: the parameters are cut off */
	assert_int_equal(smtp_parse_mail_arg("FROM:", "FROM:<a@b> SIZE=1", 10,
	    &p, &params, &paramslen, &why), 0);
	assert_int_equal(paramslen, 0);
	assert_int_equal(failures, 0);
}

/* paths */

struct path_case {
	const char	*name;
	const char	*in;
	int		 rc;		/* consumed, or -1 */
	const char	*local;
	const char	*domain;
	int		 null, postmaster, quoted;
	const char	*why;		/* expected reason when rc == -1 (NULL: any) */
};

static const struct path_case path_cases[] = {
	{ "null", "<>", 2, "", "", 1, 0, 0, NULL },
	{ "null with params", "<> SIZE=10", 2, "", "", 1, 0, 0, NULL },
	{ "simple", "<user@example.org>", 18, "user", "example.org", 0, 0, 0, NULL },
	{ "case kept", "<User.Name@Example.ORG>", 23, "User.Name", "Example.ORG", 0, 0, 0, NULL },
	{ "trailing params", "<a@b.c> BODY=8BITMIME", 7, "a", "b.c", 0, 0, 0, NULL },
	{ "postmaster", "<Postmaster>", 12, "Postmaster", "", 0, 1, 0, NULL },
	{ "postmaster lc", "<postmaster>", 12, "postmaster", "", 0, 1, 0, NULL },
	{ "postmaster at domain", "<POSTMASTER@example.org>", 24, "POSTMASTER", "example.org", 0, 0, 0, NULL },
	{ "no domain", "<user>", -1, NULL, NULL, 0, 0, 0, NULL },
	{ "source route", "<@a.example,@b.example:u@c.example>", 35, "u", "c.example", 0, 0, 0, NULL },
	{ "source route one", "<@a.example:u@c.example>", 24, "u", "c.example", 0, 0, 0, NULL },
	{ "bad source route", "<@a.example;u@c.example>", -1, NULL, NULL, 0, 0, 0, "Invalid source route" },
	{ "source route no colon", "<@a.example>", -1, NULL, NULL, 0, 0, 0, "Invalid source route" },
	{ "quoted", "<\"john doe\"@example.org>", 24, "\"john doe\"", "example.org", 0, 0, 1, NULL },
	{ "quoted pair", "<\"a\\\"b\"@x.org>", 14, "\"a\\\"b\"", "x.org", 0, 0, 1, NULL },
	{ "quoted unterminated", "<\"abc@x.org>", -1, NULL, NULL, 0, 0, 0, NULL },
	{ "atext", "<a!#$%&'*+-/=?^_`{|}~@x.org>", 28, "a!#$%&'*+-/=?^_`{|}~", "x.org", 0, 0, 0, NULL },
	{ "leading dot", "<.a@x.org>", -1, NULL, NULL, 0, 0, 0, NULL },
	{ "double dot", "<a..b@x.org>", -1, NULL, NULL, 0, 0, 0, NULL },
	{ "trailing dot local", "<a.@x.org>", -1, NULL, NULL, 0, 0, 0, NULL },
	{ "space in local", "<a b@x.org>", -1, NULL, NULL, 0, 0, 0, NULL },
	{ "no brackets", "a@x.org", -1, NULL, NULL, 0, 0, 0, NULL },
	{ "no closing bracket", "<a@x.org", -1, NULL, NULL, 0, 0, 0, NULL },
	{ "empty", "", -1, NULL, NULL, 0, 0, 0, NULL },
	{ "lone bracket", "<", -1, NULL, NULL, 0, 0, 0, NULL },
	{ "empty local", "<@x.org>", -1, NULL, NULL, 0, 0, 0, NULL },
	{ "local 64", "<aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa@x.org>",
	  72, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "x.org", 0, 0, 0, NULL },
	{ "local 65", "<aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa@x.org>",
	  -1, NULL, NULL, 0, 0, 0, "Local part too long" },
	{ "bad domain underscore", "<a@ex_ample.org>", -1, NULL, NULL, 0, 0, 0, "Invalid domain" },
	{ "bad domain hyphen", "<a@-example.org>", -1, NULL, NULL, 0, 0, 0, "Invalid domain" },
	{ "bad domain trailing hyphen", "<a@example-.org>", -1, NULL, NULL, 0, 0, 0, "Invalid domain" },
	{ "bad domain empty label", "<a@example..org>", -1, NULL, NULL, 0, 0, 0, "Invalid domain" },
	{ "bad domain trailing dot", "<a@example.org.>", -1, NULL, NULL, 0, 0, 0, "Invalid domain" },
	{ "empty domain", "<a@>", -1, NULL, NULL, 0, 0, 0, "Invalid domain" },
	{ "label 64", "<a@aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.org>",
	  -1, NULL, NULL, 0, 0, 0, "Invalid domain" },
	{ "ipv4 literal", "<a@[192.0.2.1]>", 15, "a", "[192.0.2.1]", 0, 0, 0, NULL },
	{ "ipv4 literal 256", "<a@[192.0.2.256]>", -1, NULL, NULL, 0, 0, 0, "Invalid domain" },
	{ "ipv4 literal short", "<a@[192.0.2]>", -1, NULL, NULL, 0, 0, 0, "Invalid domain" },
	{ "ipv6 literal", "<a@[IPv6:2001:db8::1]>", 22, "a", "[IPv6:2001:db8::1]", 0, 0, 0, NULL },
	{ "ipv6 v4 literal", "<a@[IPv6:::ffff:192.0.2.1]>", 27, "a", "[IPv6:::ffff:192.0.2.1]", 0, 0, 0, NULL },
	{ "ipv6 literal bad", "<a@[IPv6:2001:db8::g]>", -1, NULL, NULL, 0, 0, 0, "Invalid domain" },
	{ "ipv6 without tag", "<a@[2001:db8::1]>", -1, NULL, NULL, 0, 0, 0, "Invalid domain" },
	{ "general literal", "<a@[x-tag:stuff]>", 17, "a", "[x-tag:stuff]", 0, 0, 0, NULL },
	{ "unclosed literal", "<a@[192.0.2.1>", -1, NULL, NULL, 0, 0, 0, NULL },
	{ "path too long",
	  "<aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa@"
	  "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb."
	  "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb."
	  "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb>",
	  -1, NULL, NULL, 0, 0, 0, "Path too long" },
};

static void
test_paths(void **state)
{
	const struct path_case	*t;
	struct mailpath		 p;
	const char		*why;
	int			 rc;

	(void)state;
	failures = 0;
	for (t = path_cases; t < path_cases + NELEM(path_cases); t++) {
		why = NULL;
		rc = smtp_parse_path(t->in, strlen(t->in), &p, &why);
		CHECK(rc == t->rc, t->name, "rc: got %d, want %d (why %s)", rc,
		    t->rc, why ? why : "-");
		if (rc != t->rc)
			continue;
		if (rc == -1) {
			CHECK(why != NULL && why[0] != '\0', t->name,
			    "why: got empty, want a reason");
			if (t->why != NULL && why != NULL)
				CHECK(strcmp(why, t->why) == 0, t->name,
				    "why: got \"%s\", want \"%s\"", why, t->why);
			continue;
		}
		CHECK(strcmp(p.local, t->local) == 0, t->name,
		    "local: got \"%s\", want \"%s\"", p.local, t->local);
		CHECK(strcmp(p.domain, t->domain) == 0, t->name,
		    "domain: got \"%s\", want \"%s\"", p.domain, t->domain);
		CHECK(p.null == t->null, t->name, "null: got %d, want %d",
		    p.null, t->null);
		CHECK(p.postmaster == t->postmaster, t->name,
		    "postmaster: got %d, want %d", p.postmaster, t->postmaster);
		CHECK(p.quoted == t->quoted, t->name, "quoted: got %d, want %d",
		    p.quoted, t->quoted);
	}
	assert_int_equal(failures, 0);
}

/* the parser must not read past len */
static void
test_path_len(void **state)
{
	struct mailpath	 p;
	const char	*why;
	const char	*s = "<a@x.org>";

	(void)state;
	assert_int_equal(smtp_parse_path(s, strlen(s) - 1, &p, &why), -1);
	assert_int_equal(smtp_parse_path(s, 1, &p, &why), -1);
	assert_int_equal(smtp_parse_path("<>", 1, &p, &why), -1);
}

struct str_case {
	const char	*name;
	const char	*in;
	const char	*want;
	int		 unsafe;
};

static const struct str_case str_cases[] = {
	{ "null", "<>", "", 1 },
	{ "plain", "<a@x.org>", "a@x.org", 0 },
	{ "postmaster", "<Postmaster>", "Postmaster", 0 },
	{ "slash", "<a/b@x.org>", "a/b@x.org", 1 },
	{ "quoted", "<\"a\"@x.org>", "\"a\"@x.org", 1 },
};

static void
test_path_string(void **state)
{
	const struct str_case	*t;
	struct mailpath		 p;
	const char		*why;
	char			 out[SMTP_PATH_MAX + 8];

	(void)state;
	failures = 0;
	for (t = str_cases; t < str_cases + NELEM(str_cases); t++) {
		assert_true(smtp_parse_path(t->in, strlen(t->in), &p, &why) > 0);
		assert_int_equal(smtp_path_string(&p, out, sizeof(out)), 0);
		CHECK(strcmp(out, t->want) == 0, t->name,
		    "got \"%s\", want \"%s\"", out, t->want);
		CHECK(smtp_local_unsafe(&p) == t->unsafe, t->name,
		    "unsafe: got %d, want %d", smtp_local_unsafe(&p), t->unsafe);
	}
	/* a dot-leading local part cannot be parsed at all; check the flag */
	memset(&p, 0, sizeof(p));
	snprintf(p.local, sizeof(p.local), ".hidden");
	assert_int_equal(smtp_local_unsafe(&p), 1);
	assert_int_equal(smtp_path_string(&p, out, 4), -1);
	assert_int_equal(failures, 0);
}

struct dom_case {
	const char	*in;
	int		 want;
};

static const struct dom_case dom_cases[] = {
	{ "example.org", 0 }, { "a", 0 }, { "1.2.3.4", 0 }, { "xn--bcher-kva.example", 0 },
	{ "", -1 }, { ".", -1 }, { "a..b", -1 }, { "a_b", -1 }, { "a b", -1 },
	{ "[127.0.0.1]", 0 }, { "[IPv6:::1]", 0 }, { "[ipv6:::1]", 0 },
	{ "[]", -1 }, { "[127.0.0.1", -1 }, { "[IPv6:1.2.3.4]", -1 },
	{ "[IPv6:::1%eth0]", -1 }, { "[tag:]", -1 },
};

static void
test_domains(void **state)
{
	const struct dom_case	*t;
	int			 rc;

	(void)state;
	failures = 0;
	for (t = dom_cases; t < dom_cases + NELEM(dom_cases); t++) {
		rc = smtp_check_domain(t->in, strlen(t->in));
		CHECK(rc == t->want, t->in, "got %d, want %d", rc, t->want);
	}
	assert_int_equal(failures, 0);
}

/* ESMTP parameters */

struct param_case {
	const char		*name;
	const char		*in;
	int			 where;
	unsigned		 enabled;
	enum param_result	 want;
	int			 has_size;
	uint64_t		 size;
	enum body_type		 body;
};

#define ALL	(EXT_SIZE | EXT_8BITMIME)

static const struct param_case param_cases[] = {
	{ "empty", "", PARAM_MAIL, ALL, PARAM_OK, 0, 0, BODY_UNSPEC },
	{ "size", "SIZE=12345", PARAM_MAIL, ALL, PARAM_OK, 1, 12345, BODY_UNSPEC },
	{ "auth null", "AUTH=<>", PARAM_MAIL, ALL | EXT_AUTH, PARAM_OK, 0, 0, BODY_UNSPEC },
	{ "auth mailbox xtext", "AUTH=e+3Dmc2@example.com", PARAM_MAIL, ALL | EXT_AUTH, PARAM_OK, 0, 0, BODY_UNSPEC },
	{ "auth not a mailbox", "AUTH=bob", PARAM_MAIL, ALL | EXT_AUTH, PARAM_SYNTAX, 0, 0, BODY_UNSPEC },
	{ "auth bad xtext", "AUTH=a+zz@b", PARAM_MAIL, ALL | EXT_AUTH, PARAM_SYNTAX, 0, 0, BODY_UNSPEC },
	{ "auth not enabled", "AUTH=<>", PARAM_MAIL, ALL, PARAM_UNKNOWN, 0, 0, BODY_UNSPEC },
	{ "auth on rcpt", "AUTH=<>", PARAM_RCPT, ALL | EXT_AUTH, PARAM_UNKNOWN, 0, 0, BODY_UNSPEC },
	{ "auth repeated", "AUTH=<> AUTH=<>", PARAM_MAIL, ALL | EXT_AUTH, PARAM_REPEATED, 0, 0, BODY_UNSPEC },
	{ "size zero", "SIZE=0", PARAM_MAIL, ALL, PARAM_OK, 1, 0, BODY_UNSPEC },
	{ "size lower-case keyword", "size=7", PARAM_MAIL, ALL, PARAM_OK, 1, 7, BODY_UNSPEC },
	{ "size max", "SIZE=18446744073709551615", PARAM_MAIL, ALL, PARAM_OK, 1, UINT64_MAX, BODY_UNSPEC },
	{ "size overflow", "SIZE=18446744073709551616", PARAM_MAIL, ALL, PARAM_SYNTAX, 0, 0, BODY_UNSPEC },
	{ "size 21 digits", "SIZE=000000000000000000001", PARAM_MAIL, ALL, PARAM_SYNTAX, 0, 0, BODY_UNSPEC },
	{ "size non-digit", "SIZE=12a", PARAM_MAIL, ALL, PARAM_SYNTAX, 0, 0, BODY_UNSPEC },
	{ "size negative", "SIZE=-1", PARAM_MAIL, ALL, PARAM_SYNTAX, 0, 0, BODY_UNSPEC },
	{ "size no value", "SIZE", PARAM_MAIL, ALL, PARAM_SYNTAX, 0, 0, BODY_UNSPEC },
	{ "size empty value", "SIZE=", PARAM_MAIL, ALL, PARAM_SYNTAX, 0, 0, BODY_UNSPEC },
	{ "size not enabled", "SIZE=10", PARAM_MAIL, EXT_8BITMIME, PARAM_UNKNOWN, 0, 0, BODY_UNSPEC },
	{ "size at rcpt", "SIZE=10", PARAM_RCPT, ALL, PARAM_UNKNOWN, 0, 0, BODY_UNSPEC },
	{ "size repeated", "SIZE=10 SIZE=10", PARAM_MAIL, ALL, PARAM_REPEATED, 0, 0, BODY_UNSPEC },
	{ "body 8bit", "BODY=8BITMIME", PARAM_MAIL, ALL, PARAM_OK, 0, 0, BODY_8BITMIME },
	{ "body 7bit lc", "body=7bit", PARAM_MAIL, ALL, PARAM_OK, 0, 0, BODY_7BIT },
	{ "body binary", "BODY=BINARYMIME", PARAM_MAIL, ALL, PARAM_OK, 0, 0, BODY_BINARYMIME },
	{ "body binary lc", "body=binarymime", PARAM_MAIL, ALL, PARAM_OK, 0, 0, BODY_BINARYMIME },
	{ "body bad value", "BODY=BINARY", PARAM_MAIL, ALL, PARAM_SYNTAX, 0, 0, BODY_UNSPEC },
	{ "body no value", "BODY", PARAM_MAIL, ALL, PARAM_SYNTAX, 0, 0, BODY_UNSPEC },
	{ "body not enabled", "BODY=8BITMIME", PARAM_MAIL, EXT_SIZE, PARAM_UNKNOWN, 0, 0, BODY_UNSPEC },
	{ "both", "SIZE=100 BODY=8BITMIME", PARAM_MAIL, ALL, PARAM_OK, 1, 100, BODY_8BITMIME },
	{ "extra spaces", "  SIZE=100   BODY=7BIT  ", PARAM_MAIL, ALL, PARAM_OK, 1, 100, BODY_7BIT },
	{ "unknown", "FOO=bar", PARAM_MAIL, ALL, PARAM_UNKNOWN, 0, 0, BODY_UNSPEC },
	{ "unknown no value", "X-FOO", PARAM_RCPT, ALL, PARAM_UNKNOWN, 0, 0, BODY_UNSPEC },
	{ "bad keyword", "-FOO=1", PARAM_MAIL, ALL, PARAM_SYNTAX, 0, 0, BODY_UNSPEC },
	{ "bad keyword char", "SI_ZE=1", PARAM_MAIL, ALL, PARAM_SYNTAX, 0, 0, BODY_UNSPEC },
	{ "value with =", "FOO=a=b", PARAM_MAIL, ALL, PARAM_SYNTAX, 0, 0, BODY_UNSPEC },
	{ "value control char", "FOO=a\tb", PARAM_MAIL, ALL, PARAM_SYNTAX, 0, 0, BODY_UNSPEC },
	{ "value 8bit", "FOO=\xc3\xa9", PARAM_MAIL, ALL, PARAM_SYNTAX, 0, 0, BODY_UNSPEC },
	{ "lone =", "=1", PARAM_MAIL, ALL, PARAM_SYNTAX, 0, 0, BODY_UNSPEC },
};

/* RFC 3339 date-times (HOLDUNTIL) */
static void
test_rfc3339(void **state)
{
	static const struct {
		const char	*in;
		long long	 want;	/* -1 = refused */
	} cases[] = {
		{ "2026-12-01T01:02:03Z", 1796086923 },
		{ "2026-12-01t01:02:03z", 1796086923 },
		{ "2026-12-01T02:02:03+01:00", 1796086923 },
		{ "2026-11-30T23:32:03-01:30", 1796086923 },
		{ "2026-12-01T01:02:03.123456Z", 1796086923 },
		{ "1970-01-01T00:00:00Z", 0 },
		{ "2024-02-29T00:00:00Z", 1709164800 },
		{ "2023-02-29T00:00:00Z", -1 },
		{ "2026-13-01T00:00:00Z", -1 },
		{ "2026-12-32T00:00:00Z", -1 },
		{ "2026-12-01T24:00:00Z", -1 },
		{ "2026-12-01T01:02:03", -1 },
		{ "2026-12-01 01:02:03Z", -1 },
		{ "2026-12-01T01:02:03.Z", -1 },
		{ "2026-12-01T01:02:03+0100", -1 },
		{ "2026-12-01T01:02:03Zx", -1 },
		{ "tomorrow", -1 },
	};
	time_t	t;
	char	buf[32];
	size_t	i;
	int	r;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		r = rfc3339_parse(cases[i].in, strlen(cases[i].in), &t);
		if (cases[i].want == -1 ? r != -1 :
		    (r != 0 || (long long)t != cases[i].want))
			fail_msg("%s: got %d/%lld, want %lld", cases[i].in, r,
			    r == 0 ? (long long)t : 0LL, cases[i].want);
	}
	assert_int_equal(rfc3339_format(1796086923, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "2026-12-01T01:02:03Z");
}

/* RFC 5322 date-times (the MTQP client's tracking-status dates) */
static void
test_rfc5322_date_parse(void **state)
{
	static const struct {
		const char	*s;
		int		 rc;
		long long	 want;
	} t[] = {
		{ "Mon,  1 Jan 2001 15:15:15 -0500", 0, 978380115 },
		{ "Mon, 1 Jan 2001 19:15:03 -0500", 0, 978394503 },
		{ "Thu,  4 Jan 2001 15:15:15 -0500 (EST)", 0, 978639315 },
		{ "Tue, 14 Nov 2023 22:13:20 +0000", 0, 1700000000 },
		{ "14 Nov 2023 22:13:20 +0000", 0, 1700000000 },
		{ "tue, 14 nov 2023 22:13:20 +0000", 0, 1700000000 },
		{ "  Tue , 14 Nov 2023 22 : 13 : 20 +0000  ", 0, 1700000000 },
		{ "1 Jan 01 00:00 GMT", 0, 978307200 },
		{ "1 Jan 101 00:00 UT", 0, 978307200 },
		{ "29 Feb 2024 12:00:00 +0130", 0, 1709202600 },
		{ "Sat, 1 Jan 2000 00:00:00 PST", 0, 946713600 },
		{ "1 Jan 1970 00:00:00 +0000", 0, 0 },
		{ "31 Dec 1969 23:00:00 -0100", 0, 0 },
		{ "1 Jan 2001 00:00:00 Z", 0, 978307200 },
		{ "1 Jan 2001 00:00:60 +0000", 0, 978307260 },
		{ "Mon, 1 Jan 2001 15:15:15", -1, 0 },		/* no zone */
		{ "29 Feb 2023 12:00:00 +0000", -1, 0 },
		{ "31 Apr 2023 12:00:00 +0000", -1, 0 },
		{ "1 Foo 2001 00:00:00 +0000", -1, 0 },
		{ "1 Jan 2001 24:00:00 +0000", -1, 0 },
		{ "1 Jan 2001 00:60:00 +0000", -1, 0 },
		{ "1 Jan 2001 00:00:00 +0060", -1, 0 },
		{ "1 Jan 2001 00:00:00 +000", -1, 0 },
		{ "1 Jan 2001 00:00:00 +0000 junk", -1, 0 },
		{ "0 Jan 2001 00:00:00 +0000", -1, 0 },
		{ "Mon 1 Jan 2001 00:00:00 +0000", -1, 0 },
		{ "1 Jan 2001 00:00:00 +0000 (unclosed", -1, 0 },
		{ "", -1, 0 },
	};
	size_t	i;
	time_t	got;
	int	rc;

	(void)state;
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		got = 12345;
		rc = rfc5322_date_parse(t[i].s, strlen(t[i].s), &got);
		if (rc != t[i].rc)
			fail_msg("\"%s\": got rc %d, want %d", t[i].s, rc,
			    t[i].rc);
		if (rc == 0 && (long long)got != t[i].want)
			fail_msg("\"%s\": got %lld, want %lld", t[i].s,
			    (long long)got, t[i].want);
	}
}

/* rfc5322_date's dates (common/util.c) parse back to the same time */
static void
test_rfc5322_date_roundtrip(void **state)
{
	static const time_t	t[] = {
		0, 978380115, 1700000000, 1709202600, 2000000000, 4102444799
	};
	char	s[64];
	time_t	got;
	size_t	i;

	(void)state;
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		assert_int_equal(rfc5322_date(t[i], s, sizeof(s)), 0);
		if (rfc5322_date_parse(s, strlen(s), &got) != 0 || got != t[i])
			fail_msg("\"%s\": got %lld, want %lld", s,
			    (long long)got, (long long)t[i]);
	}
}

/* RFC 4865 hold parameters */
static void
test_hold_params(void **state)
{
	static const struct {
		const char		*in;
		unsigned		 enabled;
		enum param_result	 want;
		int			 hold;
		long			 hold_for;
	} cases[] = {
		{ "HOLDFOR=1", EXT_FUTURERELEASE, PARAM_OK, HOLD_FOR, 1 },
		{ "holdfor=999999999", EXT_FUTURERELEASE, PARAM_OK, HOLD_FOR,
		  999999999 },
		{ "HOLDFOR=0", EXT_FUTURERELEASE, PARAM_SYNTAX, 0, 0 },
		{ "HOLDFOR=01", EXT_FUTURERELEASE, PARAM_SYNTAX, 0, 0 },
		{ "HOLDFOR=1000000000", EXT_FUTURERELEASE, PARAM_SYNTAX, 0, 0 },
		{ "HOLDFOR=-5", EXT_FUTURERELEASE, PARAM_SYNTAX, 0, 0 },
		{ "HOLDFOR", EXT_FUTURERELEASE, PARAM_SYNTAX, 0, 0 },
		{ "HOLDFOR=5", 0, PARAM_UNKNOWN, 0, 0 },
		{ "HOLDUNTIL=2026-12-01T01:02:03Z", EXT_FUTURERELEASE, PARAM_OK,
		  HOLD_UNTIL, 0 },
		{ "HOLDUNTIL=2026-12-01", EXT_FUTURERELEASE, PARAM_SYNTAX, 0, 0 },
		{ "HOLDFOR=5 HOLDUNTIL=2026-12-01T01:02:03Z", EXT_FUTURERELEASE,
		  PARAM_SYNTAX, 0, 0 },
		{ "HOLDFOR=5 HOLDFOR=6", EXT_FUTURERELEASE, PARAM_REPEATED, 0, 0 },
	};
	struct esmtp_params	 out;
	const char		*why;
	enum param_result	 r;
	size_t			 i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		r = esmtp_parse_params(cases[i].in, strlen(cases[i].in),
		    PARAM_MAIL, cases[i].enabled, &out, &why);
		if (r != cases[i].want)
			fail_msg("%s: got %d, want %d (%s)", cases[i].in, r,
			    cases[i].want, why);
		if (r != PARAM_OK)
			continue;
		assert_int_equal(out.hold, cases[i].hold);
		if (out.hold == HOLD_FOR)
			assert_int_equal(out.hold_for, cases[i].hold_for);
		else {
			assert_true(out.hold_until == 1796086923);
			assert_string_equal(out.hold_text,
			    "2026-12-01T01:02:03Z");
		}
	}
}

/* RFC 8689 REQUIRETLS: no value, MAIL only, only when enabled (TLS) */
static void
test_requiretls_param(void **state)
{
	static const struct {
		const char		*in;
		int			 where;
		unsigned		 enabled;
		enum param_result	 want;
	} cases[] = {
		{ "REQUIRETLS", PARAM_MAIL, EXT_REQUIRETLS, PARAM_OK },
		{ "requiretls SIZE=10", PARAM_MAIL, EXT_REQUIRETLS | EXT_SIZE,
		  PARAM_OK },
		{ "REQUIRETLS", PARAM_MAIL, EXT_SIZE, PARAM_UNKNOWN },
		{ "REQUIRETLS", PARAM_RCPT, EXT_REQUIRETLS, PARAM_UNKNOWN },
		{ "REQUIRETLS=YES", PARAM_MAIL, EXT_REQUIRETLS, PARAM_SYNTAX },
		{ "REQUIRETLS REQUIRETLS", PARAM_MAIL, EXT_REQUIRETLS,
		  PARAM_REPEATED },
	};
	struct esmtp_params	 out;
	const char		*why;
	enum param_result	 r;
	size_t			 i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		r = esmtp_parse_params(cases[i].in, strlen(cases[i].in),
		    cases[i].where, cases[i].enabled, &out, &why);
		if (r != cases[i].want)
			fail_msg("%s: got %d, want %d (%s)", cases[i].in, r,
			    cases[i].want, why);
		if (r == PARAM_OK && out.requiretls != 1)
			fail_msg("%s: requiretls not set", cases[i].in);
	}
}

static const char *
param_name(enum param_result r)
{
	switch (r) {
	case PARAM_OK:		return "PARAM_OK";
	case PARAM_SYNTAX:	return "PARAM_SYNTAX";
	case PARAM_UNKNOWN:	return "PARAM_UNKNOWN";
	case PARAM_REPEATED:	return "PARAM_REPEATED";
	}
	return "?";
}

static void
test_params(void **state)
{
	const struct param_case	*t;
	struct esmtp_params	 out;
	const char		*why;
	enum param_result	 r;

	(void)state;
	failures = 0;
	for (t = param_cases; t < param_cases + NELEM(param_cases); t++) {
		why = NULL;
		r = esmtp_parse_params(t->in, strlen(t->in), t->where,
		    t->enabled, &out, &why);
		CHECK(r == t->want, t->name, "got %s, want %s (why %s)",
		    param_name(r), param_name(t->want), why ? why : "NULL");
		CHECK(why != NULL, t->name, "why: got NULL, want a string");
		if (r != PARAM_OK || t->want != PARAM_OK)
			continue;
		CHECK(out.has_size == t->has_size, t->name,
		    "has_size: got %d, want %d", out.has_size, t->has_size);
		CHECK(out.size == t->size, t->name, "size: got %llu, want %llu",
		    (unsigned long long)out.size, (unsigned long long)t->size);
		CHECK(out.body == t->body, t->name, "body: got %d, want %d",
		    (int)out.body, (int)t->body);
	}
	assert_int_equal(failures, 0);
}

/* xtext */

struct xtext_case {
	const char	*name;
	const char	*plain;
	const char	*xtext;
};

static const struct xtext_case xtext_cases[] = {
	{ "empty", "", "" },
	{ "plain", "user@example.org", "user@example.org" },
	{ "plus", "a+b", "a+2Bb" },
	{ "equals", "a=b", "a+3Db" },
	{ "space", "rfc822;a b", "rfc822;a+20b" },
	{ "8bit", "\xc3\xa9", "+C3+A9" },
	{ "control", "\r\n", "+0D+0A" },
};

static void
test_xtext(void **state)
{
	const struct xtext_case	*t;
	char			 out[128];
	int			 rc;

	(void)state;
	failures = 0;
	for (t = xtext_cases; t < xtext_cases + NELEM(xtext_cases); t++) {
		rc = xtext_encode(t->plain, strlen(t->plain), out, sizeof(out));
		CHECK(rc == 0 && strcmp(out, t->xtext) == 0, t->name,
		    "encode: got %d \"%s\", want 0 \"%s\"", rc,
		    rc == 0 ? out : "", t->xtext);
		rc = xtext_decode(t->xtext, strlen(t->xtext), out, sizeof(out));
		CHECK(rc == 0 && strcmp(out, t->plain) == 0, t->name,
		    "decode: got %d \"%s\", want 0 \"%s\"", rc,
		    rc == 0 ? out : "", t->plain);
	}
	assert_int_equal(failures, 0);
}

static const char *const xtext_bad[] = {
	"a+", "a+4", "+4g", "+2b", "a b", "a=b", "+00", "\x7f", "\xc3\xa9",
};

static void
test_xtext_bad(void **state)
{
	char	out[64];
	size_t	i;
	int	rc;

	(void)state;
	failures = 0;
	for (i = 0; i < NELEM(xtext_bad); i++) {
		rc = xtext_decode(xtext_bad[i], strlen(xtext_bad[i]), out,
		    sizeof(out));
		CHECK(rc == -1, xtext_bad[i], "decode: got %d, want -1", rc);
	}
	/* overflow: "abc" needs 4 bytes with the NUL */
	assert_int_equal(xtext_decode("abc", 3, out, 3), -1);
	assert_int_equal(xtext_decode("abc", 3, out, 4), 0);
	assert_int_equal(xtext_encode("a+", 2, out, 4), -1);
	assert_int_equal(xtext_encode("a+", 2, out, 5), 0);
	assert_string_equal(out, "a+2B");
	assert_int_equal(failures, 0);
}

/* RFC 3461 / RFC 3885 parameters */

#define CERT	"QlrxKgdDUCsyLpOgFbz4aOMk1Wo"
#define DSNALL	(EXT_DSN | EXT_MTRK)

struct dsn_case {
	const char		*name;
	const char		*in;
	int			 where;
	unsigned		 enabled;
	enum param_result	 want;
	int			 ret;
	const char		*envid;		/* NULL: none */
	const char		*cert;		/* NULL: none */
	long			 timeout;
	unsigned		 notify;
	const char		*orcpt;		/* NULL: none */
};

static const struct dsn_case dsn_cases[] = {
	/* RET */
	{ "ret full", "RET=FULL", PARAM_MAIL, DSNALL, PARAM_OK, ESMTP_RET_FULL, NULL, NULL, 0, 0, NULL },
	{ "ret hdrs lc", "ret=hdrs", PARAM_MAIL, DSNALL, PARAM_OK, ESMTP_RET_HDRS, NULL, NULL, 0, 0, NULL },
	{ "ret bad", "RET=BODY", PARAM_MAIL, DSNALL, PARAM_SYNTAX, 0, NULL, NULL, 0, 0, NULL },
	{ "ret no value", "RET", PARAM_MAIL, DSNALL, PARAM_SYNTAX, 0, NULL, NULL, 0, 0, NULL },
	{ "ret repeated", "RET=FULL RET=HDRS", PARAM_MAIL, DSNALL, PARAM_REPEATED, 0, NULL, NULL, 0, 0, NULL },
	{ "ret at rcpt", "RET=FULL", PARAM_RCPT, DSNALL, PARAM_UNKNOWN, 0, NULL, NULL, 0, 0, NULL },
	{ "ret not enabled", "RET=FULL", PARAM_MAIL, EXT_SIZE, PARAM_UNKNOWN, 0, NULL, NULL, 0, 0, NULL },
	/* ENVID */
	{ "envid", "ENVID=QQ314159", PARAM_MAIL, DSNALL, PARAM_OK, 0, "QQ314159", NULL, 0, 0, NULL },
	{ "envid xtext", "ENVID=a+20b+2Bc+3D", PARAM_MAIL, DSNALL, PARAM_OK, 0, "a b+c=", NULL, 0, 0, NULL },
	{ "envid 100", "ENVID=" "0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789",
	  PARAM_MAIL, DSNALL, PARAM_OK, 0, "0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789", NULL, 0, 0, NULL },
	{ "envid 101", "ENVID=" "01234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890",
	  PARAM_MAIL, DSNALL, PARAM_SYNTAX, 0, NULL, NULL, 0, 0, NULL },
	{ "envid control", "ENVID=a+0Ab", PARAM_MAIL, DSNALL, PARAM_SYNTAX, 0, NULL, NULL, 0, 0, NULL },
	{ "envid 8bit", "ENVID=a+C3+A9", PARAM_MAIL, DSNALL, PARAM_SYNTAX, 0, NULL, NULL, 0, 0, NULL },
	{ "envid bad hex", "ENVID=a+2", PARAM_MAIL, DSNALL, PARAM_SYNTAX, 0, NULL, NULL, 0, 0, NULL },
	{ "envid lower hex", "ENVID=a+2b", PARAM_MAIL, DSNALL, PARAM_SYNTAX, 0, NULL, NULL, 0, 0, NULL },
	{ "envid no value", "ENVID", PARAM_MAIL, DSNALL, PARAM_SYNTAX, 0, NULL, NULL, 0, 0, NULL },
	{ "envid repeated", "ENVID=a ENVID=a", PARAM_MAIL, DSNALL, PARAM_REPEATED, 0, NULL, NULL, 0, 0, NULL },
	{ "envid at rcpt", "ENVID=a", PARAM_RCPT, DSNALL, PARAM_UNKNOWN, 0, NULL, NULL, 0, 0, NULL },
	/* MTRK */
	{ "mtrk", "ENVID=q1@h.example MTRK=" CERT, PARAM_MAIL, DSNALL, PARAM_OK, 0, "q1@h.example", CERT, 0, 0, NULL },
	{ "mtrk timeout", "MTRK=" CERT ":86400 ENVID=q1@h.example", PARAM_MAIL, DSNALL, PARAM_OK, 0, "q1@h.example", CERT, 86400, 0, NULL },
	{ "mtrk timeout 9 digits", "ENVID=q@h MTRK=" CERT ":999999999", PARAM_MAIL, DSNALL, PARAM_OK, 0, "q@h", CERT, 999999999L, 0, NULL },
	{ "mtrk timeout 10 digits", "ENVID=q@h MTRK=" CERT ":1000000000", PARAM_MAIL, DSNALL, PARAM_SYNTAX, 0, NULL, NULL, 0, 0, NULL },
	{ "mtrk timeout 0", "ENVID=q@h MTRK=" CERT ":0", PARAM_MAIL, DSNALL, PARAM_SYNTAX, 0, NULL, NULL, 0, 0, NULL },
	{ "mtrk timeout empty", "ENVID=q@h MTRK=" CERT ":", PARAM_MAIL, DSNALL, PARAM_SYNTAX, 0, NULL, NULL, 0, 0, NULL },
	{ "mtrk timeout alpha", "ENVID=q@h MTRK=" CERT ":1h", PARAM_MAIL, DSNALL, PARAM_SYNTAX, 0, NULL, NULL, 0, 0, NULL },
	{ "mtrk timeout negative", "ENVID=q@h MTRK=" CERT ":-5", PARAM_MAIL, DSNALL, PARAM_SYNTAX, 0, NULL, NULL, 0, 0, NULL },
	{ "mtrk cert short", "ENVID=q@h MTRK=QlrxKgdDUCsyLpOgFbz4aOMk1W", PARAM_MAIL, DSNALL, PARAM_SYNTAX, 0, NULL, NULL, 0, 0, NULL },
	{ "mtrk cert long", "ENVID=q@h MTRK=" CERT "A", PARAM_MAIL, DSNALL, PARAM_SYNTAX, 0, NULL, NULL, 0, 0, NULL },
	{ "mtrk cert bad char", "ENVID=q@h MTRK=QlrxKgdDUCsyLpOgFbz4aOMk1W.", PARAM_MAIL, DSNALL, PARAM_SYNTAX, 0, NULL, NULL, 0, 0, NULL },
	{ "mtrk cert unused bits", "ENVID=q@h MTRK=QlrxKgdDUCsyLpOgFbz4aOMk1Wp", PARAM_MAIL, DSNALL, PARAM_SYNTAX, 0, NULL, NULL, 0, 0, NULL },
	{ "mtrk no value", "ENVID=q@h MTRK", PARAM_MAIL, DSNALL, PARAM_SYNTAX, 0, NULL, NULL, 0, 0, NULL },
	{ "mtrk without envid", "MTRK=" CERT, PARAM_MAIL, DSNALL, PARAM_SYNTAX, 0, NULL, NULL, 0, 0, NULL },
	{ "mtrk envid without @", "ENVID=q1 MTRK=" CERT, PARAM_MAIL, DSNALL, PARAM_SYNTAX, 0, NULL, NULL, 0, 0, NULL },
	{ "mtrk envid empty host", "ENVID=q1@ MTRK=" CERT, PARAM_MAIL, DSNALL, PARAM_SYNTAX, 0, NULL, NULL, 0, 0, NULL },
	{ "mtrk repeated", "ENVID=q@h MTRK=" CERT " MTRK=" CERT, PARAM_MAIL, DSNALL, PARAM_REPEATED, 0, NULL, NULL, 0, 0, NULL },
	{ "mtrk not enabled", "ENVID=q@h MTRK=" CERT, PARAM_MAIL, EXT_DSN, PARAM_UNKNOWN, 0, NULL, NULL, 0, 0, NULL },
	{ "mtrk at rcpt", "MTRK=" CERT, PARAM_RCPT, DSNALL, PARAM_UNKNOWN, 0, NULL, NULL, 0, 0, NULL },
	{ "all mail params", "SIZE=10 RET=HDRS ENVID=x@y MTRK=" CERT ":60 BODY=8BITMIME", PARAM_MAIL, DSNALL | ALL, PARAM_OK, ESMTP_RET_HDRS, "x@y", CERT, 60, 0, NULL },
	/* NOTIFY */
	{ "notify never", "NOTIFY=NEVER", PARAM_RCPT, DSNALL, PARAM_OK, 0, NULL, NULL, 0, ESMTP_NOTIFY_NEVER, NULL },
	{ "notify success", "NOTIFY=SUCCESS", PARAM_RCPT, DSNALL, PARAM_OK, 0, NULL, NULL, 0, ESMTP_NOTIFY_SUCCESS, NULL },
	{ "notify all three", "NOTIFY=SUCCESS,FAILURE,DELAY", PARAM_RCPT, DSNALL, PARAM_OK, 0, NULL, NULL, 0,
	  ESMTP_NOTIFY_SUCCESS | ESMTP_NOTIFY_FAILURE | ESMTP_NOTIFY_DELAY, NULL },
	{ "notify lc any order", "notify=delay,Failure", PARAM_RCPT, DSNALL, PARAM_OK, 0, NULL, NULL, 0,
	  ESMTP_NOTIFY_FAILURE | ESMTP_NOTIFY_DELAY, NULL },
	{ "notify never with success", "NOTIFY=NEVER,SUCCESS", PARAM_RCPT, DSNALL, PARAM_SYNTAX, 0, NULL, NULL, 0, 0, NULL },
	{ "notify failure with never", "NOTIFY=FAILURE,NEVER", PARAM_RCPT, DSNALL, PARAM_SYNTAX, 0, NULL, NULL, 0, 0, NULL },
	{ "notify keyword repeated", "NOTIFY=FAILURE,FAILURE", PARAM_RCPT, DSNALL, PARAM_SYNTAX, 0, NULL, NULL, 0, 0, NULL },
	{ "notify never twice", "NOTIFY=NEVER,NEVER", PARAM_RCPT, DSNALL, PARAM_SYNTAX, 0, NULL, NULL, 0, 0, NULL },
	{ "notify unknown", "NOTIFY=ALWAYS", PARAM_RCPT, DSNALL, PARAM_SYNTAX, 0, NULL, NULL, 0, 0, NULL },
	{ "notify empty element", "NOTIFY=SUCCESS,,DELAY", PARAM_RCPT, DSNALL, PARAM_SYNTAX, 0, NULL, NULL, 0, 0, NULL },
	{ "notify trailing comma", "NOTIFY=SUCCESS,", PARAM_RCPT, DSNALL, PARAM_SYNTAX, 0, NULL, NULL, 0, 0, NULL },
	{ "notify leading comma", "NOTIFY=,SUCCESS", PARAM_RCPT, DSNALL, PARAM_SYNTAX, 0, NULL, NULL, 0, 0, NULL },
	{ "notify no value", "NOTIFY", PARAM_RCPT, DSNALL, PARAM_SYNTAX, 0, NULL, NULL, 0, 0, NULL },
	{ "notify repeated", "NOTIFY=SUCCESS NOTIFY=FAILURE", PARAM_RCPT, DSNALL, PARAM_REPEATED, 0, NULL, NULL, 0, 0, NULL },
	{ "notify at mail", "NOTIFY=SUCCESS", PARAM_MAIL, DSNALL, PARAM_UNKNOWN, 0, NULL, NULL, 0, 0, NULL },
	{ "notify not enabled", "NOTIFY=SUCCESS", PARAM_RCPT, EXT_MTRK, PARAM_UNKNOWN, 0, NULL, NULL, 0, 0, NULL },
	/* ORCPT */
	{ "orcpt", "ORCPT=rfc822;Bob@Example.COM", PARAM_RCPT, DSNALL, PARAM_OK, 0, NULL, NULL, 0, 0, "rfc822;Bob@Example.COM" },
	{ "orcpt type case kept", "ORCPT=RFC822;a@b", PARAM_RCPT, DSNALL, PARAM_OK, 0, NULL, NULL, 0, 0, "RFC822;a@b" },
	{ "orcpt xtext", "ORCPT=rfc822;a+2Bb+3Dc@d", PARAM_RCPT, DSNALL, PARAM_OK, 0, NULL, NULL, 0, 0, "rfc822;a+b=c@d" },
	{ "orcpt quoted space", "ORCPT=rfc822;\"a+20b\"@d", PARAM_RCPT, DSNALL, PARAM_OK, 0, NULL, NULL, 0, 0, "rfc822;\"a b\"@d" },
	{ "orcpt other type", "ORCPT=x-local;joe", PARAM_RCPT, DSNALL, PARAM_OK, 0, NULL, NULL, 0, 0, "x-local;joe" },
	{ "orcpt utf-8 type 8bit", "ORCPT=utf-8;+C3+A9@d", PARAM_RCPT, DSNALL, PARAM_OK, 0, NULL, NULL, 0, 0, "utf-8;\xc3\xa9@d" },
	{ "orcpt rfc822 8bit", "ORCPT=rfc822;+C3+A9@d", PARAM_RCPT, DSNALL, PARAM_SYNTAX, 0, NULL, NULL, 0, 0, NULL },
	{ "orcpt control", "ORCPT=rfc822;a+0D+0Ab@d", PARAM_RCPT, DSNALL, PARAM_SYNTAX, 0, NULL, NULL, 0, 0, NULL },
	{ "orcpt no type", "ORCPT=;a@b", PARAM_RCPT, DSNALL, PARAM_SYNTAX, 0, NULL, NULL, 0, 0, NULL },
	{ "orcpt no semicolon", "ORCPT=a@b", PARAM_RCPT, DSNALL, PARAM_SYNTAX, 0, NULL, NULL, 0, 0, NULL },
	{ "orcpt empty address", "ORCPT=rfc822;", PARAM_RCPT, DSNALL, PARAM_SYNTAX, 0, NULL, NULL, 0, 0, NULL },
	{ "orcpt special in type", "ORCPT=rfc@822;a@b", PARAM_RCPT, DSNALL, PARAM_SYNTAX, 0, NULL, NULL, 0, 0, NULL },
	{ "orcpt bad xtext", "ORCPT=rfc822;a+4", PARAM_RCPT, DSNALL, PARAM_SYNTAX, 0, NULL, NULL, 0, 0, NULL },
	{ "orcpt repeated", "ORCPT=rfc822;a@b ORCPT=rfc822;a@b", PARAM_RCPT, DSNALL, PARAM_REPEATED, 0, NULL, NULL, 0, 0, NULL },
	{ "orcpt at mail", "ORCPT=rfc822;a@b", PARAM_MAIL, DSNALL, PARAM_UNKNOWN, 0, NULL, NULL, 0, 0, NULL },
	{ "notify and orcpt", "NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;Dana@Ivory.EDU", PARAM_RCPT, DSNALL, PARAM_OK, 0, NULL, NULL, 0,
	  ESMTP_NOTIFY_SUCCESS | ESMTP_NOTIFY_FAILURE, "rfc822;Dana@Ivory.EDU" },
};

static void
test_dsn_params(void **state)
{
	const struct dsn_case	*t;
	struct esmtp_params	 out;
	const char		*why;
	enum param_result	 r;
	char			 big[600];

	(void)state;
	failures = 0;
	for (t = dsn_cases; t < dsn_cases + NELEM(dsn_cases); t++) {
		why = NULL;
		r = esmtp_parse_params(t->in, strlen(t->in), t->where,
		    t->enabled, &out, &why);
		CHECK(r == t->want, t->name, "got %s, want %s (why %s)",
		    param_name(r), param_name(t->want), why ? why : "NULL");
		CHECK(why != NULL, t->name, "why: got NULL, want a string");
		if (r != PARAM_OK || t->want != PARAM_OK)
			continue;
		CHECK(out.ret == t->ret, t->name, "ret: got %d, want %d",
		    out.ret, t->ret);
		CHECK(out.has_envid == (t->envid != NULL) && (t->envid == NULL ||
		    strcmp(out.envid, t->envid) == 0), t->name,
		    "envid: got %d \"%s\", want \"%s\"", out.has_envid,
		    out.envid, t->envid ? t->envid : "(none)");
		CHECK(out.has_mtrk == (t->cert != NULL) && (t->cert == NULL ||
		    strcmp(out.mtrk_cert, t->cert) == 0), t->name,
		    "mtrk: got %d \"%s\", want \"%s\"", out.has_mtrk,
		    out.mtrk_cert, t->cert ? t->cert : "(none)");
		CHECK(out.mtrk_timeout == t->timeout, t->name,
		    "timeout: got %ld, want %ld", out.mtrk_timeout, t->timeout);
		CHECK(out.notify == t->notify, t->name,
		    "notify: got %#x, want %#x", out.notify, t->notify);
		CHECK(out.has_orcpt == (t->orcpt != NULL) && (t->orcpt == NULL ||
		    strcmp(out.orcpt, t->orcpt) == 0), t->name,
		    "orcpt: got %d \"%s\", want \"%s\"", out.has_orcpt,
		    out.orcpt, t->orcpt ? t->orcpt : "(none)");
	}
	/* ORCPT: 500 characters accepted, 501 refused */
	memcpy(big, "ORCPT=rfc822;", 13);
	memset(big + 13, 'a', 491);
	big[504] = '@';
	big[505] = 'b';
	big[506] = 'c';
	r = esmtp_parse_params(big, 6 + 500, PARAM_RCPT, DSNALL, &out, &why);
	CHECK(r == PARAM_OK && strlen(out.orcpt) == 500, "orcpt 500",
	    "got %s", param_name(r));
	r = esmtp_parse_params(big, 6 + 501, PARAM_RCPT, DSNALL, &out, &why);
	CHECK(r == PARAM_SYNTAX, "orcpt 501", "got %s", param_name(r));
	/* ENVID: 100 decoded octets from a longer xtext */
	memcpy(big, "ENVID=", 6);
	for (size_t i = 0; i < 100; i++)
		memcpy(big + 6 + 3 * i, "+2B", 3);
	r = esmtp_parse_params(big, 6 + 300, PARAM_MAIL, DSNALL, &out, &why);
	CHECK(r == PARAM_OK && strlen(out.envid) == 100 && out.envid[0] == '+',
	    "envid 100 escaped", "got %s", param_name(r));
	memcpy(big + 306, "+2B", 3);
	r = esmtp_parse_params(big, 6 + 303, PARAM_MAIL, DSNALL, &out, &why);
	CHECK(r == PARAM_SYNTAX, "envid 101 escaped", "got %s", param_name(r));
	assert_int_equal(failures, 0);
}

/* RFC 2852 BY= */

struct by_case {
	const char		*name;
	const char		*in;
	int			 where;
	unsigned		 enabled;
	enum param_result	 want;
	long			 time;
	unsigned		 mode;
};

#define BYR	ESMTP_BY_RETURN
#define BYN	ESMTP_BY_NOTIFY
#define BYT	ESMTP_BY_TRACE

static const struct by_case by_cases[] = {
	{ "R", "BY=120;R", PARAM_MAIL, EXT_DELIVERBY, PARAM_OK, 120, BYR },
	{ "RT", "BY=120;RT", PARAM_MAIL, EXT_DELIVERBY, PARAM_OK, 120, BYR | BYT },
	{ "N", "BY=3600;N", PARAM_MAIL, EXT_DELIVERBY, PARAM_OK, 3600, BYN },
	{ "N negative trace", "BY=-30;NT", PARAM_MAIL, EXT_DELIVERBY, PARAM_OK, -30, BYN | BYT },
	{ "N plus", "BY=+60;N", PARAM_MAIL, EXT_DELIVERBY, PARAM_OK, 60, BYN },
	{ "N zero", "BY=0;N", PARAM_MAIL, EXT_DELIVERBY, PARAM_OK, 0, BYN },
	{ "lower case", "by=5;rt", PARAM_MAIL, EXT_DELIVERBY, PARAM_OK, 5, BYR | BYT },
	{ "9 digits", "BY=999999999;R", PARAM_MAIL, EXT_DELIVERBY, PARAM_OK, 999999999L, BYR },
	{ "-9 digits", "BY=-999999999;N", PARAM_MAIL, EXT_DELIVERBY, PARAM_OK, -999999999L, BYN },
	{ "leading zeros", "BY=000000007;R", PARAM_MAIL, EXT_DELIVERBY, PARAM_OK, 7, BYR },
	{ "with others", "SIZE=10 BY=60;N BODY=8BITMIME", PARAM_MAIL, EXT_DELIVERBY | ALL, PARAM_OK, 60, BYN },
	{ "10 digits", "BY=1000000000;R", PARAM_MAIL, EXT_DELIVERBY, PARAM_SYNTAX, 0, 0 },
	{ "-10 digits", "BY=-1000000000;N", PARAM_MAIL, EXT_DELIVERBY, PARAM_SYNTAX, 0, 0 },
	{ "R zero", "BY=0;R", PARAM_MAIL, EXT_DELIVERBY, PARAM_SYNTAX, 0, 0 },
	{ "R negative", "BY=-5;RT", PARAM_MAIL, EXT_DELIVERBY, PARAM_SYNTAX, 0, 0 },
	{ "R minus zero", "BY=-0;R", PARAM_MAIL, EXT_DELIVERBY, PARAM_SYNTAX, 0, 0 },
	{ "no value", "BY", PARAM_MAIL, EXT_DELIVERBY, PARAM_SYNTAX, 0, 0 },
	{ "empty value", "BY=", PARAM_MAIL, EXT_DELIVERBY, PARAM_SYNTAX, 0, 0 },
	{ "no mode", "BY=60", PARAM_MAIL, EXT_DELIVERBY, PARAM_SYNTAX, 0, 0 },
	{ "empty mode", "BY=60;", PARAM_MAIL, EXT_DELIVERBY, PARAM_SYNTAX, 0, 0 },
	{ "no time", "BY=;R", PARAM_MAIL, EXT_DELIVERBY, PARAM_SYNTAX, 0, 0 },
	{ "sign only", "BY=+;N", PARAM_MAIL, EXT_DELIVERBY, PARAM_SYNTAX, 0, 0 },
	{ "two signs", "BY=+-5;N", PARAM_MAIL, EXT_DELIVERBY, PARAM_SYNTAX, 0, 0 },
	{ "bad mode", "BY=60;X", PARAM_MAIL, EXT_DELIVERBY, PARAM_SYNTAX, 0, 0 },
	{ "trace alone", "BY=60;T", PARAM_MAIL, EXT_DELIVERBY, PARAM_SYNTAX, 0, 0 },
	{ "trace first", "BY=60;TR", PARAM_MAIL, EXT_DELIVERBY, PARAM_SYNTAX, 0, 0 },
	{ "two modes", "BY=60;RN", PARAM_MAIL, EXT_DELIVERBY, PARAM_SYNTAX, 0, 0 },
	{ "trace twice", "BY=60;NTT", PARAM_MAIL, EXT_DELIVERBY, PARAM_SYNTAX, 0, 0 },
	{ "trailing", "BY=60;R;", PARAM_MAIL, EXT_DELIVERBY, PARAM_SYNTAX, 0, 0 },
	{ "comma", "BY=60,R", PARAM_MAIL, EXT_DELIVERBY, PARAM_SYNTAX, 0, 0 },
	{ "alpha time", "BY=1m;R", PARAM_MAIL, EXT_DELIVERBY, PARAM_SYNTAX, 0, 0 },
	{ "space in time", "BY=6 0;R", PARAM_MAIL, EXT_DELIVERBY, PARAM_SYNTAX, 0, 0 },
	{ "repeated", "BY=60;R BY=60;R", PARAM_MAIL, EXT_DELIVERBY, PARAM_REPEATED, 0, 0 },
	{ "not enabled", "BY=60;R", PARAM_MAIL, ALL, PARAM_UNKNOWN, 0, 0 },
	{ "at rcpt", "BY=60;R", PARAM_RCPT, EXT_DELIVERBY, PARAM_UNKNOWN, 0, 0 },
};

static void
test_by_param(void **state)
{
	const struct by_case	*t;
	struct esmtp_params	 out;
	const char		*why;
	enum param_result	 r;

	(void)state;
	failures = 0;
	for (t = by_cases; t < by_cases + NELEM(by_cases); t++) {
		why = NULL;
		r = esmtp_parse_params(t->in, strlen(t->in), t->where,
		    t->enabled, &out, &why);
		CHECK(r == t->want, t->name, "got %s, want %s (why %s)",
		    param_name(r), param_name(t->want), why ? why : "NULL");
		CHECK(why != NULL, t->name, "why: got NULL, want a string");
		if (r != PARAM_OK || t->want != PARAM_OK)
			continue;
		CHECK(out.has_by == 1, t->name, "has_by: got %d, want 1",
		    out.has_by);
		CHECK(out.by_time == t->time, t->name,
		    "by_time: got %ld, want %ld", out.by_time, t->time);
		CHECK(out.by_mode == t->mode, t->name,
		    "by_mode: got %#x, want %#x", out.by_mode, t->mode);
	}
	/* no BY: nothing set */
	r = esmtp_parse_params("SIZE=1", 6, PARAM_MAIL, EXT_DELIVERBY | ALL,
	    &out, &why);
	CHECK(r == PARAM_OK && out.has_by == 0 && out.by_time == 0 &&
	    out.by_mode == 0, "absent", "got %s has_by %d", param_name(r),
	    out.has_by);
	assert_int_equal(failures, 0);
}

/* RFC 3885 certifier: B = SHA-1(A), base64 without padding */
static void
test_mtrk_certifier(void **state)
{
	char	out[28];
	char	ok[] = CERT;

	(void)state;
	memset(out, 'x', sizeof(out));
	assert_int_equal(mtrk_certifier((const unsigned char *)"abcdefgh", 8,
	    out), 0);
	assert_string_equal(out, CERT);
	assert_int_equal(strlen(out), 27);
	/* SHA-1("") = da39a3ee...: 2jmj7l5rSw0yVb/vlWAYkK/YBwk */
	assert_int_equal(mtrk_certifier((const unsigned char *)"", 0, out), 0);
	assert_string_equal(out, "2jmj7l5rSw0yVb/vlWAYkK/YBwk");
	assert_true(mtrk_certifier_valid(ok, 27));
	assert_true(mtrk_certifier_valid("2jmj7l5rSw0yVb/vlWAYkK/YBwk", 27));
	assert_false(mtrk_certifier_valid(ok, 26));
	assert_false(mtrk_certifier_valid(CERT "=", 28));
	ok[26] = 'p';			/* low bits must be zero */
	assert_false(mtrk_certifier_valid(ok, 27));
}

/* base64: RFC 4648 section 10 */

struct b64_case {
	const char	*plain;
	const char	*enc;
};

static const struct b64_case b64_cases[] = {
	{ "", "" }, { "f", "Zg==" }, { "fo", "Zm8=" }, { "foo", "Zm9v" },
	{ "foob", "Zm9vYg==" }, { "fooba", "Zm9vYmE=" }, { "foobar", "Zm9vYmFy" },
	{ "\0user\0pass", "AHVzZXIAcGFzcw==" },
};

static void
test_base64(void **state)
{
	const struct b64_case	*t;
	char			 enc[64];
	unsigned char		 dec[64];
	size_t			 plen;
	int			 rc;

	(void)state;
	failures = 0;
	for (t = b64_cases; t < b64_cases + NELEM(b64_cases); t++) {
		plen = t->plain[0] == '\0' && t->enc[0] == 'A' ? 10 :
		    strlen(t->plain);
		rc = base64_encode((const unsigned char *)t->plain, plen, enc,
		    sizeof(enc));
		CHECK(rc == (int)strlen(t->enc) && strcmp(enc, t->enc) == 0,
		    t->enc, "encode: got %d \"%s\", want %zu \"%s\"", rc,
		    rc >= 0 ? enc : "", strlen(t->enc), t->enc);
		rc = base64_decode(t->enc, strlen(t->enc), dec, sizeof(dec));
		CHECK(rc == (int)plen && memcmp(dec, t->plain, plen) == 0,
		    t->enc, "decode: got %d, want %zu", rc, plen);
	}
	assert_int_equal(failures, 0);
}

static const char *const b64_bad[] = {
	"Zg", "Zg=", "Zg===", "Z===", "Zm9v!", "Zm9", "Zh==", "Zm9=",
	"=Zg=", "Zg==Zg==", "Zm 9v", "Zm9v\n",
};

static void
test_base64_bad(void **state)
{
	unsigned char	dec[64];
	char		enc[16];
	size_t		i;
	int		rc;

	(void)state;
	failures = 0;
	for (i = 0; i < NELEM(b64_bad); i++) {
		rc = base64_decode(b64_bad[i], strlen(b64_bad[i]), dec,
		    sizeof(dec));
		CHECK(rc == -1, b64_bad[i], "decode: got %d, want -1", rc);
	}
	/* overflow on both sides */
	assert_int_equal(base64_decode("Zm9vYmFy", 8, dec, 5), -1);
	assert_int_equal(base64_decode("Zm9vYmFy", 8, dec, 6), 6);
	assert_int_equal(base64_encode((const unsigned char *)"foobar", 6,
	    enc, 8), -1);
	assert_int_equal(base64_encode((const unsigned char *)"fooba", 5,
	    enc, 9), 8);
	assert_int_equal(failures, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_split_command),
		cmocka_unit_test(test_mail_arg),
		cmocka_unit_test(test_paths),
		cmocka_unit_test(test_path_len),
		cmocka_unit_test(test_path_string),
		cmocka_unit_test(test_domains),
		cmocka_unit_test(test_params),
		cmocka_unit_test(test_rfc3339),
		cmocka_unit_test(test_rfc5322_date_parse),
		cmocka_unit_test(test_rfc5322_date_roundtrip),
		cmocka_unit_test(test_hold_params),
		cmocka_unit_test(test_requiretls_param),
		cmocka_unit_test(test_xtext),
		cmocka_unit_test(test_xtext_bad),
		cmocka_unit_test(test_dsn_params),
		cmocka_unit_test(test_by_param),
		cmocka_unit_test(test_mtrk_certifier),
		cmocka_unit_test(test_base64),
		cmocka_unit_test(test_base64_bad),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
