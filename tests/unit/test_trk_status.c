#include "config.h"
/*
 * test_trk_status.c - unit tests of the message/tracking-status composer
 * (track/trk_status.c, trk_status_write and trk_action).
 * A table of synthetic messages (TZ=UTC, fixed times): every recipient
 * status (queued, deferred with a next attempt, delivered, failed with
 * a 550 reply, expanded, relayed to an MTRK hop -> transferred, relayed
 * to a hop without MTRK -> relayed, relayed with MTRK not passed on),
 * a message held in quarantine/spam with a reason, a timed one, ORCPT
 * present and absent, control and 8-bit octets to clean.  Each output is
 * compared byte for byte with tests/unit/trk_status_NAME.ref
 * (TRK_STATUS_REF_UPDATE=1 rewrites them), checked for CRLF-only line
 * ends, 7bit printable text and lines of at most 998 octets, and parsed
 * with RFC 3886 3's grammar: field names, order, required fields, the
 * Action values and Status codes (2.1.9 exactly with relayed).  Also:
 * refused arguments and a buffer maximum that leaves the buffer as it
 * was.
 */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <cmocka.h>

#include "track/track.h"

#define NOW		((time_t)1700003600)	/* Tue, 14 Nov 2023 23:13:20 */
#define ARRIVAL		((time_t)1700000000)
#define LIFETIME	(5L * 24 * 3600)
#define HOST		"mx.test"

/* ---- fixtures ---- */

/* rcpt - append a recipient with status st, orcpt (NULL = none) */
static struct qrcpt *
rcpt(struct qmsg *m, const char *addr, enum rcpt_status st,
    const char *orcpt)
{
	struct qrcpt	*r;

	assert_int_equal(qmsg_add_rcpt(m, addr), 0);
	r = &m->rcpts[m->nrcpts - 1];
	r->status = st;
	r->hop_dsn = r->hop_mtrk = -1;
	if (orcpt != NULL)
		assert_non_null(r->orcpt = strdup(orcpt));
	return r;
}

/* reply - r's last attempt and reply */
static void
reply(struct qrcpt *r, time_t when, int code, const char *enh,
    const char *text, const char *remote)
{
	r->attempts++;
	r->last_attempt = when;
	r->last_code = code;
	snprintf(r->last_enh, sizeof(r->last_enh), "%s", enh);
	if (text != NULL)
		assert_non_null(r->last_text = strdup(text));
	if (remote != NULL)
		assert_non_null(r->remote_mta = strdup(remote));
}

static struct qmsg *
base_msg(const char *envid)
{
	struct qmsg	*m = qmsg_new();

	assert_non_null(m);
	snprintf(m->qid, sizeof(m->qid), "%s", "0MsgQid0000Abcde");
	m->arrival = ARRIVAL;
	assert_non_null(m->sender = strdup("alice@example.com"));
	if (envid != NULL)
		assert_non_null(m->envid = strdup(envid));
	assert_non_null(m->mtrk_certifier = strdup("cert"));
	m->mtrk_expiry = ARRIVAL + 86400;
	return m;
}

/* every recipient status, in normal state */
static struct qmsg *
make_mixed(void)
{
	struct qmsg	*m = base_msg("7f3c9a1e@client.example.org");
	struct qrcpt	*r;

	m->state = MS_OUTBOUND;
	r = rcpt(m, "new@remote.test", RS_QUEUED, NULL);
	r->next_attempt = ARRIVAL;
	r = rcpt(m, "slow@remote.test", RS_DEFERRED, "rfc822;Slow@Remote.Test");
	reply(r, NOW - 600, 421, "4.4.1", "No answer from host",
	    "mx.remote.test[127.0.0.2]");
	r->next_attempt = NOW + 900;
	r = rcpt(m, "bob@example.org", RS_DELIVERED, NULL);
	reply(r, ARRIVAL + 1, 250, "2.0.0", "delivered to maildir", NULL);
	r = rcpt(m, "gone@remote.test", RS_FAILED, "rfc822;Gone@Remote.Test");
	reply(r, ARRIVAL + 5, 550, "5.1.1", "<gone@remote.test>: Recipient "
	    "address rejected: User unknown in virtual mailbox table; see "
	    "https://remote.test/help/550-5.1.1 for more information",
	    "mx1.remote.test[127.0.0.2]");
	r = rcpt(m, "list@example.org", RS_EXPANDED, NULL);
	reply(r, ARRIVAL + 2, 250, "2.0.0", "expanded to 3 members", NULL);
	r = rcpt(m, "carol@mtrk.test", RS_TRANSFERRED,
	    "rfc822;carol@mtrk.test");
	reply(r, ARRIVAL + 3, 250, "2.0.0", "Ok: queued as 4711",
	    "mx.mtrk.test[127.0.0.3]");
	r->hop_dsn = r->hop_mtrk = 1;
	r = rcpt(m, "dave@plain.test", RS_RELAYED, NULL);
	reply(r, ARRIVAL + 4, 250, "2.0.0", "Ok", "mx.plain.test[127.0.0.4]");
	r->hop_dsn = 1;
	r->hop_mtrk = 0;
	r = rcpt(m, "erin@mtrk.test", RS_RELAYED, NULL);
	reply(r, ARRIVAL + 4, 250, "2.0.0", "Ok", "[127.0.0.3]");
	r->hop_mtrk = 1;
	r->no_mtrk = 1;		/* list mail: MTRK was not passed on */
	/* (an MTRK hop, MTRK not sent: relayed, not transferred) */
	r = rcpt(m, "frank@example.org", RS_FAILED, NULL);
	reply(r, NOW, 450, "4.4.7", "message expired after queue_lifetime; "
	    "last error: cannot create example.org/frank: Not a directory",
	    NULL);
	return m;
}

/* held in quarantine/spam, with a reason to clean and fold */
static struct qmsg *
make_held(void)
{
	struct qmsg	*m = base_msg("held-1@client.example.org");
	struct qrcpt	*r;

	m->state = MS_QUARANTINE;
	assert_non_null(m->state_value = strdup("spam"));
	assert_non_null(m->state_reason = strdup("policy.conf:3 header "
	    "Subject: /buy\r\nnow/ matched \xc3\xa9 and the rule says this "
	    "message waits for the operator's decision"));
	m->state_since = ARRIVAL + 10;
	r = rcpt(m, "bob@example.org", RS_QUEUED, NULL);
	r->next_attempt = ARRIVAL;
	r = rcpt(m, "carol@remote.test", RS_DEFERRED,
	    "rfc822;Carol@Remote.Test");
	reply(r, ARRIVAL + 5, 451, "4.7.1", "Greylisted, try again",
	    "mx.remote.test[127.0.0.2]");
	r = rcpt(m, "dave@example.org", RS_DELIVERED, NULL);
	reply(r, ARRIVAL + 1, 250, "2.0.0", "delivered to maildir", NULL);
	return m;
}

/* timed (FUTURERELEASE), no reason, no ENVID, odd characters */
static struct qmsg *
make_timed(void)
{
	struct qmsg	*m = base_msg("env\twith\r\ncontrols\x01\xff");
	struct qrcpt	*r;

	m->state = MS_TIMED;
	m->state_since = ARRIVAL;
	m->hold_until = NOW + 3600;
	m->expire_base = NOW + 3600;
	r = rcpt(m, "later@example.org", RS_QUEUED,
	    "rfc822;Later\x7f@Example.Org");
	r->next_attempt = NOW + 3600;
	return m;
}

static const struct {
	const char	*name;
	struct qmsg	*(*make)(void);
	const char	*actions[10];
} cases[] = {
	{ "mixed", make_mixed, { "delayed", "delayed", "delivered", "failed",
	  "expanded", "transferred", "relayed", "relayed", "failed" } },
	{ "held", make_held, { "delayed", "delayed", "delivered" } },
	{ "timed", make_timed, { "delayed" } },
};

/* ---- helpers ---- */

static char *
ref_path(const char *name)
{
	const char	*srcdir = getenv("srcdir"), *slash;
	char		*p = NULL;

	if (srcdir != NULL && *srcdir != '\0') {
		if (asprintf(&p, "%s/tests/unit/trk_status_%s.ref", srcdir,
		    name) < 0)
			p = NULL;
	} else if ((slash = strrchr(__FILE__, '/')) != NULL) {
		if (asprintf(&p, "%.*s/trk_status_%s.ref",
		    (int)(slash - __FILE__), __FILE__, name) < 0)
			p = NULL;
	} else if (asprintf(&p, "trk_status_%s.ref", name) < 0)
		p = NULL;
	assert_non_null(p);
	return p;
}

/* check_lines - CRLF only, 7bit printable, no line over 998 octets */
static void
check_lines(const char *name, const char *s, size_t len)
{
	size_t	i, col = 0;

	if (len < 2 || s[len - 2] != '\r' || s[len - 1] != '\n')
		fail_msg("%s: does not end with CRLF", name);
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '\r') {
			if (i + 1 >= len || s[i + 1] != '\n')
				fail_msg("%s: bare CR at %zu", name, i);
			if (col > 998)
				fail_msg("%s: line of %zu octets", name, col);
			col = 0;
			i++;
			continue;
		}
		if (c == '\n')
			fail_msg("%s: bare LF at %zu", name, i);
		if (c < 0x20 || c >= 0x7f)
			fail_msg("%s: octet 0x%02x at %zu", name, c, i);
		col++;
	}
}

struct field {
	char	name[64];
	char	value[2048];
};

/*
 * parse_block - the fields of one block (lines up to an empty line),
 * continuation lines unfolded; returns how many, *p moved past it
 */
static size_t
parse_block(const char *name, const char **p, struct field *f, size_t max)
{
	const char	*s = *p, *eol, *colon;
	size_t		 n = 0, vl;

	while (*s != '\0' && strncmp(s, "\r\n", 2) != 0) {
		eol = strstr(s, "\r\n");
		assert_non_null(eol);
		if (*s == ' ' || *s == '\t') {
			if (n == 0)
				fail_msg("%s: continuation first: %.40s", name, s);
			vl = strlen(f[n - 1].value);
			snprintf(f[n - 1].value + vl,
			    sizeof(f[n - 1].value) - vl, "%.*s",
			    (int)(eol - s), s);
		} else {
			if (n == max)
				fail_msg("%s: too many fields", name);
			colon = memchr(s, ':', (size_t)(eol - s));
			if (colon == NULL || colon == s ||
			    (size_t)(colon - s) >= sizeof(f[n].name))
				fail_msg("%s: not a field: %.40s", name, s);
			/* RFC 5322 ftext: printable, no space or colon */
			for (const char *c = s; c < colon; c++)
				if (*c <= ' ' || *c > '~')
					fail_msg("%s: bad field name %.40s",
					    name, s);
			snprintf(f[n].name, sizeof(f[n].name), "%.*s",
			    (int)(colon - s), s);
			snprintf(f[n].value, sizeof(f[n].value), "%.*s",
			    (int)(eol - colon - 1), colon + 1);
			n++;
		}
		s = eol + 2;
	}
	*p = s;
	return n;
}

/* status_code - RFC 3464: DIGIT "." 1*3DIGIT "." 1*3DIGIT [comment] */
static int
status_code(const char *v)
{
	int	part;
	size_t	n;

	while (*v == ' ')
		v++;
	if (*v != '2' && *v != '4' && *v != '5')
		return 0;
	v++;
	for (part = 0; part < 2; part++) {
		if (*v++ != '.')
			return 0;
		for (n = 0; v[n] >= '0' && v[n] <= '9'; n++)
			;
		if (n < 1 || n > 3)
			return 0;
		v += n;
	}
	return *v == '\0' || *v == ' ';
}

/* trimmed - v without the leading space */
static const char *
trimmed(const char *v)
{
	while (*v == ' ')
		v++;
	return v;
}

/*
 * check_grammar - RFC 3886 3: the per-message fields, then one group per
 * recipient: the names the spec allows, in its order, each at most once,
 * the required ones present, extension fields last
 */
static void
check_grammar(const char *name, const char *s, size_t nrcpts,
    const char *const *actions)
{
	static const char *const msg_names[] = {
		"Original-Envelope-Id", "Reporting-MTA", "Arrival-Date"
	};
	static const char *const rcpt_names[] = {
		"Original-Recipient", "Final-Recipient", "Action", "Status",
		"Remote-MTA", "Last-Attempt-Date", "Will-Retry-Until"
	};
	static const char *const action_values[] = {
		"failed", "delayed", "delivered", "expanded", "relayed",
		"transferred", "opaque"
	};
	struct field	 f[16];
	const char	*p = s, *action, *status;
	size_t		 n, i, k, groups = 0, pos;

	n = parse_block(name, &p, f, 16);
	if (n < 3)
		fail_msg("%s: %zu per-message fields", name, n);
	for (i = 0; i < 3; i++)
		if (strcmp(f[i].name, msg_names[i]) != 0)
			fail_msg("%s: per-message field %zu is %s, want %s",
			    name, i, f[i].name, msg_names[i]);
	for (; i < n; i++)
		if (strncasecmp(f[i].name, "X-", 2) != 0)
			fail_msg("%s: per-message field %s", name, f[i].name);
	if (strncmp(f[1].value, " dns; ", 6) != 0)
		fail_msg("%s: Reporting-MTA:%s", name, f[1].value);
	while (*p != '\0') {
		assert_memory_equal(p, "\r\n", 2);
		p += 2;
		n = parse_block(name, &p, f, 16);
		action = status = NULL;
		pos = 0;
		for (i = 0; i < n; i++) {
			for (k = 0; k < 7; k++)
				if (strcmp(f[i].name, rcpt_names[k]) == 0)
					break;
			if (k < 7) {
				/* in the grammar's order, each once */
				if (k < pos || (k < 4 && k != i))
					fail_msg("%s: group %zu: %s out of "
					    "order", name, groups, f[i].name);
				pos = k + 1;
				if (k == 2)
					action = trimmed(f[i].value);
				if (k == 3)
					status = trimmed(f[i].value);
				if ((k == 0 || k == 1) &&
				    strchr(f[i].value, ';') == NULL)
					fail_msg("%s: %s without a type", name,
					    f[i].name);
				if (k == 4 && strncmp(f[i].value, " dns; ",
				    6) != 0)
					fail_msg("%s: Remote-MTA:%s", name,
					    f[i].value);
				continue;
			}
			/* extension fields: X- or a registered name, last */
			if (strncmp(f[i].name, "X-", 2) != 0 &&
			    strcmp(f[i].name, "Diagnostic-Code") != 0)
				fail_msg("%s: group %zu: field %s", name, groups,
				    f[i].name);
			pos = 7;
		}
		if (action == NULL || status == NULL)
			fail_msg("%s: group %zu: no Action or Status", name,
			    groups);
		for (k = 0; k < 7; k++)
			if (strcmp(action, action_values[k]) == 0)
				break;
		if (k == 7)
			fail_msg("%s: group %zu: Action %s", name, groups, action);
		if (!status_code(status))
			fail_msg("%s: group %zu: Status %s", name, groups, status);
		if ((strcmp(action, "relayed") == 0) !=
		    (strcmp(status, "2.1.9") == 0))
			fail_msg("%s: group %zu: %s with %s", name, groups,
			    action, status);
		if (groups < nrcpts && strcmp(action, actions[groups]) != 0)
			fail_msg("%s: group %zu: Action %s, want %s", name,
			    groups, action, actions[groups]);
		groups++;
	}
	if (groups != nrcpts)
		fail_msg("%s: %zu groups for %zu recipients", name, groups,
		    nrcpts);
}

/* compare_ref - s against trk_status_NAME.ref, byte for byte */
static void
compare_ref(const char *name, const char *s, size_t len)
{
	char	*path = ref_path(name), *want;
	long	 wl;
	FILE	*f;
	size_t	 i = 0;

	if (getenv("TRK_STATUS_REF_UPDATE") != NULL) {
		f = fopen(path, "wb");
		assert_non_null(f);
		assert_int_equal(fwrite(s, 1, len, f), len);
		assert_int_equal(fclose(f), 0);
	}
	if ((f = fopen(path, "rb")) == NULL)
		fail_msg("cannot open %s", path);
	fseek(f, 0, SEEK_END);
	wl = ftell(f);
	rewind(f);
	want = malloc((size_t)wl + 1);
	assert_non_null(want);
	assert_int_equal(fread(want, 1, (size_t)wl, f), (size_t)wl);
	want[wl] = '\0';
	fclose(f);
	if ((size_t)wl != len || memcmp(want, s, len) != 0) {
		while (i < len && i < (size_t)wl && s[i] == want[i])
			i++;
		fail_msg("%s differs from %s at byte %zu:\ngot:  %.80s\n"
		    "want: %.80s", name, path, i, s + i, want + i);
	}
	free(want);
	free(path);
}

/* ---- tests ---- */

static void
test_golden(void **state)
{
	struct buf	 b;
	struct qmsg	*m;
	size_t		 i, k;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		m = cases[i].make();
		for (k = 0; k < m->nrcpts; k++)
			if (strcmp(trk_action(m, k), cases[i].actions[k]) != 0)
				fail_msg("%s: trk_action %zu = %s, want %s",
				    cases[i].name, k, trk_action(m, k),
				    cases[i].actions[k]);
		assert_null(trk_action(m, m->nrcpts));
		buf_init(&b, 64 * 1024);
		assert_int_equal(trk_status_write(&b, m, HOST, NOW, LIFETIME),
		    0);
		check_lines(cases[i].name, b.data, b.len);
		check_grammar(cases[i].name, b.data, m->nrcpts,
		    cases[i].actions);
		compare_ref(cases[i].name, b.data, b.len);
		buf_free(&b);
		qmsg_free(m);
	}
}

/* the fields each mapping promises, independent of the golden files */
static void
test_fields(void **state)
{
	struct buf	 b;
	struct qmsg	*m = make_held();

	(void)state;
	buf_init(&b, 64 * 1024);
	assert_int_equal(trk_status_write(&b, m, NULL, NOW, LIFETIME), 0);
	assert_non_null(strstr(b.data, "Reporting-MTA: dns; localhost\r\n"));
	/* held 3590 s so far: the lifetime counts from arrival + that */
	assert_non_null(strstr(b.data, "Will-Retry-Until: Sun, 19 Nov 2023 "
	    "23:13:10 +0000\r\n"));
	/* folded at a space before column 78 */
	assert_non_null(strstr(b.data, "X-Waymark-Handling-State: "
	    "quarantine/spam; since=Tue, 14 Nov 2023 22:13:30\r\n +0000; "
	    "reason=policy.conf:3 header Subject: /buy now/ matched ?? and"));
	assert_null(strstr(b.data, "\xc3"));
	buf_free(&b);
	qmsg_free(m);

	m = make_mixed();
	buf_init(&b, 64 * 1024);
	assert_int_equal(trk_status_write(&b, m, HOST, NOW, LIFETIME), 0);
	assert_non_null(strstr(b.data, "Action: transferred\r\nStatus: 2.4.0\r\n"
	    "Remote-MTA: dns; mx.mtrk.test\r\n"));
	assert_non_null(strstr(b.data, "Action: relayed\r\nStatus: 2.1.9\r\n"
	    "Remote-MTA: dns; mx.plain.test\r\n"));
	assert_non_null(strstr(b.data, "Original-Recipient: rfc822; "
	    "new@remote.test\r\n"));
	assert_non_null(strstr(b.data, "Original-Recipient: "
	    "rfc822;Gone@Remote.Test\r\n"));
	assert_non_null(strstr(b.data, "Diagnostic-Code: smtp; 550 5.1.1 "));
	assert_null(strstr(b.data, "X-Waymark-Handling-State"));
	buf_free(&b);
	qmsg_free(m);
}

static void
test_refused(void **state)
{
	struct buf	 b;
	struct qmsg	*m = make_mixed(), *empty = base_msg("x");

	(void)state;
	buf_init(&b, 64 * 1024);
	assert_int_equal(trk_status_write(NULL, m, HOST, NOW, LIFETIME), -1);
	assert_int_equal(trk_status_write(&b, NULL, HOST, NOW, LIFETIME), -1);
	assert_int_equal(trk_status_write(&b, empty, HOST, NOW, LIFETIME), -1);
	assert_int_equal(trk_status_write(&b, m, HOST, NOW, -1), -1);
	assert_int_equal(b.len, 0);
	buf_free(&b);

	/* the maximum is reached: the buffer is left as it was */
	buf_init(&b, 600);
	assert_int_equal(buf_puts(&b, "before\r\n"), 0);
	assert_int_equal(trk_status_write(&b, m, HOST, NOW, LIFETIME), -1);
	assert_int_equal(b.len, 8);
	assert_string_equal(b.data, "before\r\n");
	buf_free(&b);
	qmsg_free(empty);
	qmsg_free(m);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_golden),
		cmocka_unit_test(test_fields),
		cmocka_unit_test(test_refused),
	};

	setenv("TZ", "UTC", 1);
	tzset();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
