#include "config.h"
/*
 * test_trk_client.c - unit tests of the MTQP client's parsers
 * (track/trk_parse.c): response indicators and response information,
 * greeting option lines (STARTTLS [required]), X-Waymark-Handling-State,
 * and TRACK answers: RFC 3887 4.1's examples 6 to 10 as written there
 * (boundary %%%%, type=tracking-status, fields in any order, example 8's
 * dot-stuffed header after unstuffing, example 9's "Status" without a
 * colon ignored, example 10's two parts), Waymark's own form
 * (type="message/tracking-status", a quoted boundary, the composer's
 * golden output trk_status_held.ref with folded lines), LF-only line
 * ends, parts of other types skipped, each part's raw text reassembled
 * into an equal answer (what a chaining server does), and refused bodies.
 * Tables of {name, input, want}; failures say "got X, want Y".
 * The client itself (track/trk_client.c) against a scripted server on
 * the same event loop (127.0.0.1, port 0): an answer dot-unstuffed, the
 * TRACK line (ENVID as xtext) and QUIT, the callback never inside
 * trk_query_start, -ERR/noinfo, a refused connection, an SMTP greeting,
 * a refused STARTTLS ("required": TRACK never sent), the query's deadline,
 * trk_query_cancel, trk_client_free with a DNS query in flight (ASan
 * checks that everything is freed).  A server that trickles one line
 * now and then (a thread of its own): the query's deadline ends it, and
 * `waymark track`'s walk (tools/tools_track.c) gives each hop one.
 */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <pthread.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "common/buf.h"
#include "track/trk_client.h"
#include "tools/tools_track.h"

/* ---- replies and options ---- */

static void
test_reply_parse(void **state)
{
	static const struct {
		const char	*line;
		int		 rc;
		int		 kind;
		const char	*info;
	} t[] = {
		{ "+OK/MTQP MTQP server ready", 0, TRK_R_OK, "MTQP" },
		{ "+OK+/MTQP MTQP server ready", 0, TRK_R_OKPLUS, "MTQP" },
		{ "-TEMP/MTQP/admin Service down for admin", 0, TRK_R_TEMP,
		  "MTQP/admin" },
		{ "-ERR/MTQP/unavailable Service down", 0, TRK_R_ERR,
		  "MTQP/unavailable" },
		{ "-ERR/noinfo No tracking information available", 0,
		  TRK_R_ERR, "noinfo" },
		{ "-BAD Unrecognized command", 0, TRK_R_BAD, "" },
		{ "-BAD/tls-in-progress TLS already active", 0, TRK_R_BAD,
		  "tls-in-progress" },
		{ "+OK+ Tracking information follows", 0, TRK_R_OKPLUS, "" },
		{ "+OK", 0, TRK_R_OK, "" },
		{ "+ok/mtqp lower case", 0, TRK_R_OK, "mtqp" },
		{ "220 mx.test ESMTP ready", -1, 0, NULL },
		{ "+OKAY", -1, 0, NULL },
		{ "", -1, 0, NULL },
		{ "HTTP/1.1 400 Bad Request", -1, 0, NULL },
	};
	enum trk_reply_kind	 k;
	const char		*info;
	size_t			 il, i;
	int			 rc;

	(void)state;
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		rc = trk_reply_parse(t[i].line, strlen(t[i].line), &k, &info,
		    &il);
		if (rc != t[i].rc)
			fail_msg("%s: got rc %d, want %d", t[i].line, rc,
			    t[i].rc);
		if (rc != 0)
			continue;
		if ((int)k != t[i].kind)
			fail_msg("%s: got kind %d, want %d", t[i].line, (int)k,
			    t[i].kind);
		if (il != strlen(t[i].info) ||
		    strncmp(info, t[i].info, il) != 0)
			fail_msg("%s: got info \"%.*s\", want \"%s\"",
			    t[i].line, (int)il, info, t[i].info);
	}
}

static void
test_reply_has(void **state)
{
	static const struct {
		const char	*info;
		const char	*item;
		int		 want;
	} t[] = {
		{ "MTQP", "MTQP", 1 },
		{ "mtqp", "MTQP", 1 },
		{ "MTQP/admin", "admin", 1 },
		{ "MTQP/admin", "MTQP", 1 },
		{ "MTQPX", "MTQP", 0 },
		{ "noinfo", "noinfo", 1 },
		{ "tls-required", "noinfo", 0 },
		{ "", "MTQP", 0 },
		{ "MTQP//x", "x", 1 },
	};
	size_t	i;
	int	got;

	(void)state;
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		got = trk_reply_has(t[i].info, strlen(t[i].info), t[i].item);
		if (got != t[i].want)
			fail_msg("\"%s\" has \"%s\": got %d, want %d",
			    t[i].info, t[i].item, got, t[i].want);
	}
}

static void
test_option_starttls(void **state)
{
	static const struct {
		const char	*line;
		int		 want;
	} t[] = {
		{ "STARTTLS", 1 },
		{ "starttls", 1 },
		{ "STARTTLS required", 2 },
		{ "StartTLS   REQUIRED  ", 2 },
		{ "STARTTLS\trequired", 2 },
		{ "STARTTLS optional", 1 },
		{ " required", 0 },		/* a continuation line */
		{ "vnd.com.example.option2 with parameters", 0 },
		{ "STARTTLSX", 0 },
		{ "", 0 },
	};
	size_t	i;
	int	got;

	(void)state;
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		got = trk_option_starttls(t[i].line, strlen(t[i].line));
		if (got != t[i].want)
			fail_msg("\"%s\": got %d, want %d", t[i].line, got,
			    t[i].want);
	}
}

/* ---- X-Waymark-Handling-State ---- */

static void
test_handling_parse(void **state)
{
	static const struct {
		const char	*s;
		int		 rc;
		const char	*st, *value;
		int		 has_since;
		long long	 since;
		const char	*reason;
	} t[] = {
		{ "quarantine/spam; since=Tue, 14 Nov 2023 22:13:30 +0000; "
		  "reason=policy.conf:3 header Subject: /buy now/ matched; "
		  "and more", 0, "quarantine", "spam", 1, 1700000010,
		  "policy.conf:3 header Subject: /buy now/ matched; and more" },
		{ "timed; since=Tue, 14 Nov 2023 22:13:20 +0000", 0, "timed",
		  NULL, 1, 1700000000, "" },
		{ "other/hold;since=Tue, 14 Nov 2023 22:13:20 +0000;reason=x",
		  0, "other", "hold", 1, 1700000000, "x" },
		{ "moderation; reason=waiting", 0, "moderation", NULL, 0, 0,
		  "waiting" },
		{ "quarantine; since=not a date; reason=r", 0, "quarantine",
		  NULL, 0, 0, "r" },
		{ "", -1, NULL, NULL, 0, 0, NULL },
		{ "; since=Tue, 14 Nov 2023 22:13:20 +0000", -1, NULL, NULL,
		  0, 0, NULL },
	};
	struct trk_handling	h;
	size_t			i;
	int			rc;

	(void)state;
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		rc = trk_handling_parse(t[i].s, strlen(t[i].s), &h);
		if (rc != t[i].rc)
			fail_msg("\"%s\": got rc %d, want %d", t[i].s, rc,
			    t[i].rc);
		if (rc != 0)
			continue;
		assert_string_equal(h.state, t[i].st);
		if (t[i].value == NULL)
			assert_null(h.value);
		else
			assert_string_equal(h.value, t[i].value);
		assert_int_equal(h.has_since, t[i].has_since);
		if (t[i].has_since && (long long)h.since != t[i].since)
			fail_msg("\"%s\": got since %lld, want %lld", t[i].s,
			    (long long)h.since, t[i].since);
		assert_string_equal(h.reason, t[i].reason);
		trk_handling_free(&h);
	}
}

/* ---- TRACK answers ---- */

#define HDR_3887 \
	"Content-Type: multipart/related; boundary=%%%%; type=tracking-status\r\n"
#define MSG_3887(mta) \
	"Content-Type: message/tracking-status\r\n" \
	"\r\n" \
	"Original-Envelope-Id: 12345-20010101@example.com\r\n" \
	"Reporting-MTA: dns; " mta "\r\n" \
	"Arrival-Date: Mon,  1 Jan 2001 15:15:15 -0500\r\n" \
	"\r\n"

/* RFC 3887 4.1 example 6: delivered */
static const char ex6[] =
	HDR_3887
	"\r\n"
	"--%%%%\r\n"
	MSG_3887("example2.com")
	"Original-Recipient: rfc822; user1@example1.com\r\n"
	"Final-Recipient: rfc822; user1@example1.com\r\n"
	"Action: delivered\r\n"
	"Status: 2.5.0\r\n"
	"\r\n"
	"--%%%%--\r\n";

/* example 7: transferred (Remote-MTA and the date before Status) */
static const char ex7[] =
	HDR_3887
	"\r\n"
	"--%%%%\r\n"
	MSG_3887("example2.com")
	"Original-Recipient: rfc822; user1@example1.com\r\n"
	"Final-Recipient: rfc822; user1@example1.com\r\n"
	"Action: transferred\r\n"
	"Remote-MTA: dns; example3.com\r\n"
	"Last-Attempt-Date: Mon,  1 Jan 2001 19:15:03 -0500\r\n"
	"Status: 2.4.0\r\n"
	"\r\n"
	"--%%%%--\r\n";

/* example 8: delayed; the ". Dot-Stuffed-Header" after unstuffing */
static const char ex8[] =
	HDR_3887
	".Dot-Stuffed-Header: as an example\r\n"
	"\r\n"
	"--%%%%\r\n"
	MSG_3887("example2.com")
	"Original-Recipient: rfc822; user1@example1.com\r\n"
	"Final-Recipient: rfc822; user1@example1.com\r\n"
	"Action: delayed\r\n"
	"Status: 4.4.1 (No answer from host)\r\n"
	"Remote-MTA: dns; example3.com\r\n"
	"Last-Attempt-Date: Mon,  1 Jan 2001 19:15:03 -0500\r\n"
	"Will-Retry-Until: Thu,  4 Jan 2001 15:15:15 -0500\r\n"
	"\r\n"
	"--%%%%--\r\n";

/* example 9: relayed and failed in one part, with the RFC's typo */
static const char ex9[] =
	HDR_3887
	"\r\n"
	"--%%%%\r\n"
	MSG_3887("example2.com")
	"Original-Recipient: rfc822; user1@example1.com\r\n"
	"Final-Recipient: rfc822; user1@example1.com\r\n"
	"Action: relayed\r\n"
	"Status: 2.1.9\r\n"
	"Remote-MTA: dns; example3.com\r\n"
	"Last-Attempt-Date: Mon,  1 Jan 2001 19:15:03 -0500\r\n"
	"\r\n"
	"Original-Recipient: rfc822; user2@example1.com\r\n"
	"Final-Recipient: rfc822; user2@example1.com\r\n"
	"Action: failed\r\n"
	"Status 5.2.2 (Mailbox full)\r\n"
	"Remote-MTA: dns; example3.com\r\n"
	"Last-Attempt-Date: Mon,  1 Jan 2001 19:15:03 -0500\r\n"
	"\r\n"
	"--%%%%--\r\n";

/* example 10: firewall, chaining: two parts */
#define EX10_PART1 \
	MSG_3887("example2.com") \
	"Original-Recipient: rfc822; user1@example1.com\r\n" \
	"Final-Recipient: rfc822; user1@example1.com\r\n" \
	"Action: relayed\r\n" \
	"Status: 2.1.9\r\n" \
	"Remote-MTA: dns; smtp.example3.com\r\n" \
	"Last-Attempt-Date: Mon,  1 Jan 2001 19:15:03 -0500\r\n"
#define EX10_PART2 \
	MSG_3887("smtp.example3.com") \
	"Original-Recipient: rfc822; user2@example1.com\r\n" \
	"Final-Recipient: rfc822; user4@example3.com\r\n" \
	"Action: delivered\r\n" \
	"Status: 2.5.0\r\n"
static const char ex10[] =
	HDR_3887
	"\r\n"
	"--%%%%\r\n"
	EX10_PART1
	"\r\n"
	"--%%%%\r\n"
	EX10_PART2
	"\r\n"
	"--%%%%--\r\n";

/* a recipient's expected fields (NULL: absent; dates 0: absent) */
struct want_rcpt {
	const char	*orcpt, *final, *action, *status, *comment, *remote;
	long long	 last, retry;
};

/* check_rcpt - r against w */
static void
check_rcpt(const char *name, const struct trk_rcpt *r,
    const struct want_rcpt *w)
{
#define CHECK_STR(field, want) do {					\
	if ((want) == NULL && (field) != NULL)				\
		fail_msg("%s: " #field ": got \"%s\", want none", name,	\
		    (field));						\
	if ((want) != NULL && ((field) == NULL ||			\
	    strcmp((field), (want)) != 0))				\
		fail_msg("%s: " #field ": got \"%s\", want \"%s\"", name,	\
		    (field) ? (field) : "(none)", (want));		\
} while (0)
	CHECK_STR(r->orcpt, w->orcpt);
	CHECK_STR(r->final, w->final);
	CHECK_STR(r->action, w->action);
	CHECK_STR(r->status, w->status);
	CHECK_STR(r->status_comment, w->comment);
	CHECK_STR(r->remote_mta, w->remote);
	if (w->last != 0 && (!r->has_last_attempt ||
	    (long long)r->last_attempt != w->last))
		fail_msg("%s: last attempt: got %lld, want %lld", name,
		    r->has_last_attempt ? (long long)r->last_attempt : -1LL,
		    w->last);
	if (w->last == 0 && r->has_last_attempt)
		fail_msg("%s: last attempt: got one, want none", name);
	if (w->retry != 0 && (!r->has_retry_until ||
	    (long long)r->retry_until != w->retry))
		fail_msg("%s: retry until: got %lld, want %lld", name,
		    r->has_retry_until ? (long long)r->retry_until : -1LL,
		    w->retry);
	if (w->retry == 0 && r->has_retry_until)
		fail_msg("%s: retry until: got one, want none", name);
}

static void
test_rfc3887_examples(void **state)
{
	static const struct {
		const char		*name;
		const char		*body;
		size_t			 nrcpts;
		struct want_rcpt	 r[2];
	} t[] = {
		{ "example 6", ex6, 1, {
		  { "user1@example1.com", "user1@example1.com", "delivered",
		    "2.5.0", NULL, NULL, 0, 0 } } },
		{ "example 7", ex7, 1, {
		  { "user1@example1.com", "user1@example1.com", "transferred",
		    "2.4.0", NULL, "example3.com", 978394503, 0 } } },
		{ "example 8", ex8, 1, {
		  { "user1@example1.com", "user1@example1.com", "delayed",
		    "4.4.1", "No answer from host", "example3.com", 978394503,
		    978639315 } } },
		{ "example 9", ex9, 2, {
		  { "user1@example1.com", "user1@example1.com", "relayed",
		    "2.1.9", NULL, "example3.com", 978394503, 0 },
		  { "user2@example1.com", "user2@example1.com", "failed",
		    NULL, NULL, "example3.com", 978394503, 0 } } },
	};
	struct trk_report	r;
	char			why[128];
	size_t			i, j;

	(void)state;
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		if (trk_report_parse(t[i].body, strlen(t[i].body), &r, why,
		    sizeof(why)) != 0)
			fail_msg("%s: refused: %s", t[i].name, why);
		assert_int_equal(r.nparts, 1);
		assert_string_equal(r.parts[0].envid,
		    "12345-20010101@example.com");
		assert_string_equal(r.parts[0].reporting_mta, "example2.com");
		assert_true(r.parts[0].has_arrival);
		assert_int_equal((long long)r.parts[0].arrival, 978380115LL);
		if (r.parts[0].nrcpts != t[i].nrcpts)
			fail_msg("%s: got %zu recipients, want %zu", t[i].name,
			    r.parts[0].nrcpts, t[i].nrcpts);
		for (j = 0; j < t[i].nrcpts; j++)
			check_rcpt(t[i].name, &r.parts[0].rcpts[j], &t[i].r[j]);
		assert_null(r.parts[0].rcpts[0].handling);
		trk_report_free(&r);
	}
}

static void
test_rfc3887_example10(void **state)
{
	static const struct want_rcpt w1 = { "user1@example1.com",
	    "user1@example1.com", "relayed", "2.1.9", NULL,
	    "smtp.example3.com", 978394503, 0 };
	static const struct want_rcpt w2 = { "user2@example1.com",
	    "user4@example3.com", "delivered", "2.5.0", NULL, NULL, 0, 0 };
	struct trk_report	r;
	char			why[128];

	(void)state;
	assert_int_equal(trk_report_parse(ex10, strlen(ex10), &r, why,
	    sizeof(why)), 0);
	assert_int_equal(r.nparts, 2);
	assert_string_equal(r.parts[0].reporting_mta, "example2.com");
	assert_string_equal(r.parts[1].reporting_mta, "smtp.example3.com");
	assert_int_equal(r.parts[0].nrcpts, 1);
	assert_int_equal(r.parts[1].nrcpts, 1);
	check_rcpt("example 10 part 1", &r.parts[0].rcpts[0], &w1);
	check_rcpt("example 10 part 2", &r.parts[1].rcpts[0], &w2);
	/* raw: the whole body part, without the CRLF of the delimiter */
	assert_int_equal(r.parts[0].rawlen, strlen(EX10_PART1));
	assert_memory_equal(r.parts[0].raw, EX10_PART1, strlen(EX10_PART1));
	assert_int_equal(r.parts[1].rawlen, strlen(EX10_PART2));
	assert_memory_equal(r.parts[1].raw, EX10_PART2, strlen(EX10_PART2));
	trk_report_free(&r);
}

/* what a chaining server does: its part, then the next hop's raw parts
 * unchanged, under a new boundary; the result parses to the same */
static void
test_raw_reassembled(void **state)
{
	struct trk_report	r, r2;
	struct buf		b;
	char			why[128];
	size_t			i;

	(void)state;
	assert_int_equal(trk_report_parse(ex10, strlen(ex10), &r, why,
	    sizeof(why)), 0);
	buf_init(&b, 1u << 20);
	assert_int_equal(buf_puts(&b, "Content-Type: multipart/related; "
	    "boundary=\"=_wm_x\"; type=\"message/tracking-status\"\r\n\r\n"),
	    0);
	for (i = 0; i < r.nparts; i++)
		assert_int_equal(buf_printf(&b, "--=_wm_x\r\n%.*s\r\n",
		    (int)r.parts[i].rawlen, r.parts[i].raw), 0);
	assert_int_equal(buf_puts(&b, "--=_wm_x--\r\n"), 0);
	assert_int_equal(trk_report_parse(b.data, b.len, &r2, why,
	    sizeof(why)), 0);
	assert_int_equal(r2.nparts, r.nparts);
	for (i = 0; i < r.nparts; i++) {
		assert_int_equal(r2.parts[i].rawlen, r.parts[i].rawlen);
		assert_memory_equal(r2.parts[i].raw, r.parts[i].raw,
		    r.parts[i].rawlen);
		assert_string_equal(r2.parts[i].reporting_mta,
		    r.parts[i].reporting_mta);
	}
	trk_report_free(&r);
	trk_report_free(&r2);
	buf_free(&b);
}

/* read_ref - tests/unit/NAME (found like test_trk_status.c finds it) */
static char *
read_ref(const char *name, size_t *len)
{
	const char	*srcdir = getenv("srcdir"), *slash;
	char		*p = NULL, *data;
	FILE		*f;
	long		 n;

	if (srcdir != NULL && *srcdir != '\0') {
		if (asprintf(&p, "%s/tests/unit/%s", srcdir, name) < 0)
			p = NULL;
	} else if ((slash = strrchr(__FILE__, '/')) != NULL) {
		if (asprintf(&p, "%.*s/%s", (int)(slash - __FILE__), __FILE__,
		    name) < 0)
			p = NULL;
	} else if (asprintf(&p, "%s", name) < 0)
		p = NULL;
	assert_non_null(p);
	if ((f = fopen(p, "rb")) == NULL)
		fail_msg("cannot open %s", p);
	assert_int_equal(fseek(f, 0, SEEK_END), 0);
	assert_true((n = ftell(f)) > 0);
	rewind(f);
	assert_non_null(data = malloc((size_t)n + 1));
	assert_int_equal(fread(data, 1, (size_t)n, f), (size_t)n);
	data[n] = '\0';
	fclose(f);
	free(p);
	*len = (size_t)n;
	return data;
}

/* the composer's own output (golden file) in Waymark's wrapper */
static void
test_waymark_form(void **state)
{
	static const struct want_rcpt w[3] = {
		{ "bob@example.org", "bob@example.org", "delayed", "4.0.0",
		  NULL, NULL, 0, 1700435590 },
		{ "Carol@Remote.Test", "carol@remote.test", "delayed", "4.7.1",
		  NULL, "mx.remote.test", 1700000005, 1700435590 },
		{ "dave@example.org", "dave@example.org", "delivered", "2.5.0",
		  NULL, NULL, 1700000001, 0 },
	};
	struct trk_report	 r;
	struct trk_handling	*h;
	struct buf		 b;
	char			 why[128], *part;
	size_t			 plen, i;

	(void)state;
	part = read_ref("trk_status_held.ref", &plen);
	buf_init(&b, 1u << 20);
	assert_int_equal(buf_printf(&b, "Content-Type: multipart/related; "
	    "boundary=\"=_wm_5f3a\";\r\n type=\"message/tracking-status\"\r\n"
	    "\r\n--=_wm_5f3a\r\nContent-Type: message/tracking-status\r\n"
	    "\r\n%s\r\n--=_wm_5f3a--\r\n", part), 0);
	if (trk_report_parse(b.data, b.len, &r, why, sizeof(why)) != 0)
		fail_msg("refused: %s", why);
	assert_int_equal(r.nparts, 1);
	assert_string_equal(r.parts[0].envid, "held-1@client.example.org");
	assert_string_equal(r.parts[0].reporting_mta, "mx.test");
	assert_int_equal((long long)r.parts[0].arrival, 1700000000LL);
	assert_int_equal(r.parts[0].nrcpts, 3);
	for (i = 0; i < 3; i++)
		check_rcpt("held", &r.parts[0].rcpts[i], &w[i]);
	/* the folded X-Waymark-Handling-State */
	for (i = 0; i < 2; i++) {
		assert_non_null(h = r.parts[0].rcpts[i].handling);
		assert_string_equal(h->state, "quarantine");
		assert_string_equal(h->value, "spam");
		assert_true(h->has_since);
		assert_int_equal((long long)h->since, 1700000010LL);
		assert_string_equal(h->reason, "policy.conf:3 header Subject: "
		    "/buy now/ matched ?? and the rule says this message "
		    "waits for the operator's decision");
	}
	assert_null(r.parts[0].rcpts[2].handling);
	trk_report_free(&r);
	buf_free(&b);
	free(part);
}

static void
test_lenient_forms(void **state)
{
	/* LF only, folded and lower-case field names, <> around an
	 * address, comments, a text/plain part and a header-less part
	 * skipped, no close delimiter, a Diagnostic-Code */
	static const char body[] =
	    "content-type: Multipart/Related;\n"
	    "\tboundary=\"b 1\"\n"
	    "\n"
	    "preamble\n"
	    "--b 1\n"
	    "Content-Type: text/plain\n"
	    "\n"
	    "not tracking\n"
	    "--b 1\n"
	    "\n"
	    "no header\n"
	    "--b 1  \n"
	    "CONTENT-TYPE: message/tracking-status\n"
	    "\n"
	    "original-envelope-id: e1@x.test\n"
	    "REPORTING-MTA: dns;mx.x.test (the relay)\n"
	    "arrival-date: Tue, 14 Nov 2023\n"
	    " 22:13:20 +0000\n"
	    "\n"
	    "\n"
	    "ORIGINAL-RECIPIENT: rfc822;\n"
	    " <Bob@Y.test>\n"
	    "final-recipient: RFC822; bob@y.test\n"
	    "action: FAILED (bounced)\n"
	    "status: 5.1.1\n"
	    "remote-mta: DNS; mx.y.test\n"
	    "diagnostic-code: smtp; 550 5.1.1 no such user\n"
	    "X-Unknown: ignored\n";
	static const struct want_rcpt w = { "Bob@Y.test", "bob@y.test",
	    "failed", "5.1.1", NULL, "mx.y.test", 0, 0 };
	struct trk_report	r;
	char			why[128];

	(void)state;
	if (trk_report_parse(body, strlen(body), &r, why, sizeof(why)) != 0)
		fail_msg("refused: %s", why);
	assert_int_equal(r.nparts, 1);
	assert_string_equal(r.parts[0].envid, "e1@x.test");
	assert_string_equal(r.parts[0].reporting_mta, "mx.x.test");
	assert_true(r.parts[0].has_arrival);
	assert_int_equal((long long)r.parts[0].arrival, 1700000000LL);
	assert_int_equal(r.parts[0].nrcpts, 1);
	check_rcpt("lenient", &r.parts[0].rcpts[0], &w);
	assert_string_equal(r.parts[0].rcpts[0].diagnostic,
	    "smtp; 550 5.1.1 no such user");
	trk_report_free(&r);
}

static void
test_refused(void **state)
{
	static const struct {
		const char	*name;
		const char	*body;
	} t[] = {
		{ "empty", "" },
		{ "no content-type", "Subject: x\r\n\r\n--b\r\n" },
		{ "not multipart", "Content-Type: message/tracking-status\r\n"
		  "\r\nOriginal-Envelope-Id: x\r\n" },
		{ "no boundary", "Content-Type: multipart/related\r\n\r\n"
		  "--b\r\n" },
		{ "no tracking part", "Content-Type: multipart/related; "
		  "boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\n"
		  "x\r\n--b--\r\n" },
		{ "no delimiter", "Content-Type: multipart/related; "
		  "boundary=b\r\n\r\nContent-Type: message/tracking-status\r\n"
		  "\r\nOriginal-Envelope-Id: x\r\n" },
		{ "no per-message fields", "Content-Type: multipart/related; "
		  "boundary=b\r\n\r\n--b\r\nContent-Type: "
		  "message/tracking-status\r\n\r\n--b--\r\n" },
	};
	struct trk_report	r;
	char			why[128];
	size_t			i;

	(void)state;
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		why[0] = '\0';
		if (trk_report_parse(t[i].body, strlen(t[i].body), &r, why,
		    sizeof(why)) != -1)
			fail_msg("%s: got 0, want -1", t[i].name);
		if (why[0] == '\0')
			fail_msg("%s: no reason", t[i].name);
		trk_report_free(&r);
	}
}

/* a body that is not NUL-terminated is read within its length only */
static void
test_bounded_input(void **state)
{
	struct trk_report	r;
	char			*copy, why[128];
	size_t			 n = strlen(ex6);

	(void)state;
	assert_non_null(copy = malloc(n));
	memcpy(copy, ex6, n);		/* no NUL: ASan sees an overrun */
	assert_int_equal(trk_report_parse(copy, n, &r, why, sizeof(why)), 0);
	assert_int_equal(r.nparts, 1);
	assert_int_equal(r.parts[0].nrcpts, 1);
	trk_report_free(&r);
	/* cut in the middle of the last group */
	assert_int_equal(trk_report_parse(copy, n - 30, &r, why, sizeof(why)),
	    0);
	trk_report_free(&r);
	free(copy);
}

static void
test_result_names(void **state)
{
	(void)state;
	assert_string_equal(trk_result_name(TRK_OK), "ok");
	assert_string_equal(trk_result_name(TRK_NOINFO), "noinfo");
	assert_string_equal(trk_result_name(TRK_UNREACHABLE), "unreachable");
	assert_string_equal(trk_result_name(TRK_NOT_MTQP), "not_mtqp");
	assert_string_equal(trk_result_name(TRK_TLS_FAILED), "tls_failed");
	assert_string_equal(trk_result_name(TRK_ERROR), "error");
}


/* ---- the client against a scripted server on the same loop ---- */

#define FAKE_MAX	8

struct fake {
	struct event_base	*base;
	struct evconnlistener	*l;
	unsigned		 port;
	const char		*greeting;	/* NULL: silent */
	const char		*starttls_reply;
	const char		*track_reply;
	struct bufferevent	*bev[FAKE_MAX];
	size_t			 nbev;
	int			 nconn, ntrack, nquit, nstarttls;
	char			 track_line[256];
	int			 pending;	/* events until loopexit */
	/* the answer */
	int			 calls, in_start;
	struct trk_answer	 a;
	char			 body[4096], server[80], error[512];
	struct trk_query	*q;
	struct event		*cancel_ev;
};

/* fake_event - one awaited event happened */
static void
fake_event(struct fake *f)
{
	if (--f->pending == 0)
		event_base_loopexit(f->base, NULL);
}

static void
fake_read_cb(struct bufferevent *bev, void *arg)
{
	struct fake	*f = arg;
	char		*line;
	size_t		 n;

	while ((line = evbuffer_readln(bufferevent_get_input(bev), &n,
	    EVBUFFER_EOL_CRLF)) != NULL) {
		if (strncmp(line, "TRACK ", 6) == 0) {
			f->ntrack++;
			snprintf(f->track_line, sizeof(f->track_line), "%s",
			    line);
			bufferevent_write(bev, f->track_reply,
			    strlen(f->track_reply));
		} else if (strncmp(line, "STARTTLS ", 9) == 0) {
			f->nstarttls++;
			bufferevent_write(bev, f->starttls_reply,
			    strlen(f->starttls_reply));
		} else if (strcmp(line, "QUIT") == 0) {
			f->nquit++;
			bufferevent_write(bev, "+OK Bye\r\n", 9);
			fake_event(f);
		} else
			bufferevent_write(bev, "-BAD Unrecognized command\r\n",
			    27);
		free(line);
	}
}

static void
fake_event_cb(struct bufferevent *bev, short what, void *arg)
{
	(void)bev;
	(void)what;
	(void)arg;		/* the client closed: freed at the end */
}

static void
fake_accept_cb(struct evconnlistener *l, evutil_socket_t fd,
    struct sockaddr *sa, int salen, void *arg)
{
	struct fake		*f = arg;
	struct bufferevent	*bev;

	(void)l;
	(void)sa;
	(void)salen;
	f->nconn++;
	if (f->nbev >= FAKE_MAX || (bev = bufferevent_socket_new(f->base, fd,
	    BEV_OPT_CLOSE_ON_FREE)) == NULL) {
		close(fd);
		return;
	}
	f->bev[f->nbev++] = bev;
	bufferevent_setcb(bev, fake_read_cb, NULL, fake_event_cb, f);
	bufferevent_enable(bev, EV_READ | EV_WRITE);
	if (f->greeting != NULL)
		bufferevent_write(bev, f->greeting, strlen(f->greeting));
}

/* fake_start - listen on 127.0.0.1, any port */
static void
fake_start(struct fake *f, struct event_base *base)
{
	struct sockaddr_in	sin;
	socklen_t		len = sizeof(sin);

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	f->base = base;
	assert_non_null(f->l = evconnlistener_new_bind(base, fake_accept_cb,
	    f, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 16,
	    (struct sockaddr *)&sin, sizeof(sin)));
	assert_int_equal(getsockname(evconnlistener_get_fd(f->l),
	    (struct sockaddr *)&sin, &len), 0);
	f->port = ntohs(sin.sin_port);
}

static void
fake_free(struct fake *f)
{
	size_t	i;

	for (i = 0; i < f->nbev; i++)
		bufferevent_free(f->bev[i]);
	if (f->l != NULL)
		evconnlistener_free(f->l);
}

/* answer_cb - record the answer (copies: valid during the call only) */
static void
answer_cb(void *arg, const struct trk_answer *a)
{
	struct fake	*f = arg;

	if (f->in_start)
		fail_msg("called back inside trk_query_start");
	f->calls++;
	f->a = *a;
	snprintf(f->server, sizeof(f->server), "%s", a->server);
	snprintf(f->error, sizeof(f->error), "%s", a->error);
	f->a.server = f->server;
	f->a.error = f->error;
	f->a.host = NULL;
	f->body[0] = '\0';
	if (a->body != NULL) {
		assert_true(a->bodylen < sizeof(f->body));
		memcpy(f->body, a->body, a->bodylen);
		f->body[a->bodylen] = '\0';
	}
	f->a.body = f->body;
	fake_event(f);
}

/* safety_cb - a test that hangs fails instead */
static void
safety_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	fail_msg("the loop did not finish within 20 s");
}

/* loopback_bound - a socket of type bound to 127.0.0.1, any port, never
 * listening (TCP: connections refused; UDP: nothing answers) */
static int
loopback_bound(int type, unsigned *port)
{
	struct sockaddr_in	sin;
	socklen_t		len = sizeof(sin);
	int			fd;

	assert_true((fd = socket(AF_INET, type, 0)) >= 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	*port = ntohs(sin.sin_port);
	return fd;
}

/* request_init - a TRACK request for envid at host:port */
static void
request_init(struct trk_request *rq, const char *host, unsigned port,
    const char *envid, const char *secret)
{
	memset(rq, 0, sizeof(*rq));
	rq->host = host;
	rq->port = port;
	rq->envid = envid;
	rq->secret = secret;
}

/*
 * run_query - one query to host:port (the fake when port is 0 and
 * use_fake), waiting for `pending` events; the client is freed after.
 */
static void
run_query(struct fake *f, const char *host, unsigned port, long timeout_ms,
    int pending)
{
	struct event_base	*base;
	struct trk_client	*c;
	struct trk_client_opts	 o;
	struct trk_request	 rq;
	struct event		*safety;
	struct timeval		 tv = { 20, 0 };
	char			 err[256];

	assert_non_null(base = event_base_new());
	fake_start(f, base);
	memset(&o, 0, sizeof(o));
	o.tls_verify = 1;
	assert_non_null(c = trk_client_new(base, &o, err, sizeof(err)));
	request_init(&rq, host, port != 0 ? port : f->port,
	    "id+1=x@client.test", "YWJjZGVmZ2gK");
	rq.timeout_ms = timeout_ms;
	f->pending = pending;
	f->in_start = 1;
	assert_non_null(f->q = trk_query_start(c, &rq, answer_cb, f));
	f->in_start = 0;
	assert_non_null(safety = evtimer_new(base, safety_cb, NULL));
	evtimer_add(safety, &tv);
	assert_int_equal(event_base_dispatch(base), 0);
	event_free(safety);
	trk_client_free(c);
	fake_free(f);
	event_base_free(base);
}

static void
test_query_ok(void **state)
{
	static const char want[] = "Content-Type: multipart/related; "
	    "boundary=b\r\n.Dot-Stuffed-Header: x\r\n\r\n.\r\n--b\r\n"
	    "Content-Type: message/tracking-status\r\n\r\n"
	    "Original-Envelope-Id: id+1=x@client.test\r\n--b--\r\n";
	struct fake	f;
	char		srv[80];

	(void)state;
	memset(&f, 0, sizeof(f));
	f.greeting = "+OK+/MTQP fake ready\r\nvnd.test.x with\r\n a "
	    "continuation\r\n.\r\n";
	f.track_reply = "+OK+ Tracking information follows\r\n"
	    "Content-Type: multipart/related; boundary=b\r\n"
	    "..Dot-Stuffed-Header: x\r\n\r\n..\r\n--b\r\n"
	    "Content-Type: message/tracking-status\r\n\r\n"
	    "Original-Envelope-Id: id+1=x@client.test\r\n--b--\r\n.\r\n";
	run_query(&f, "127.0.0.1", 0, 0, 2);	/* the answer, QUIT */
	assert_int_equal(f.calls, 1);
	assert_int_equal(f.a.result, TRK_OK);
	assert_string_equal(f.body, want);
	snprintf(srv, sizeof(srv), "127.0.0.1:%u", f.port);
	assert_string_equal(f.server, srv);
	assert_false(f.a.tls);
	assert_string_equal(f.error, "");
	assert_string_equal(f.track_line,
	    "TRACK id+2B1+3Dx@client.test YWJjZGVmZ2gK");
	assert_int_equal(f.nquit, 1);
	assert_int_equal(f.nstarttls, 0);
}

static void
test_query_noinfo(void **state)
{
	struct fake	f;

	(void)state;
	memset(&f, 0, sizeof(f));
	f.greeting = "+OK/MTQP fake ready\r\n";
	f.track_reply = "-ERR/noinfo No tracking information available\r\n";
	run_query(&f, "127.0.0.1", 0, 0, 2);
	assert_int_equal(f.calls, 1);
	assert_int_equal(f.a.result, TRK_NOINFO);
	assert_non_null(strstr(f.error, "-ERR/noinfo"));
	assert_int_equal(f.nquit, 1);
}

static void
test_query_not_mtqp(void **state)
{
	struct fake	f;

	(void)state;
	memset(&f, 0, sizeof(f));
	f.greeting = "220 mx.test ESMTP ready\r\n";
	run_query(&f, "127.0.0.1", 0, 0, 1);
	assert_int_equal(f.calls, 1);
	assert_int_equal(f.a.result, TRK_NOT_MTQP);
	assert_int_equal(f.ntrack, 0);
}

static void
test_query_starttls_refused(void **state)
{
	struct fake	f;

	(void)state;
	memset(&f, 0, sizeof(f));
	f.greeting = "+OK+/MTQP fake ready\r\nSTARTTLS required\r\n.\r\n";
	f.starttls_reply = "-BAD/unsupported STARTTLS not available\r\n";
	f.track_reply = "+OK+ x\r\n.\r\n";
	run_query(&f, "127.0.0.1", 0, 0, 2);	/* the answer, QUIT */
	assert_int_equal(f.calls, 1);
	assert_int_equal(f.a.result, TRK_TLS_FAILED);
	assert_int_equal(f.nstarttls, 1);
	assert_int_equal(f.ntrack, 0);		/* never in clear */
}

static void
test_query_refused(void **state)
{
	struct fake	f;
	int		fd;
	unsigned	port;

	(void)state;
	fd = loopback_bound(SOCK_STREAM, &port);	/* nobody listens */
	memset(&f, 0, sizeof(f));
	run_query(&f, "127.0.0.1", port, 0, 1);
	close(fd);
	assert_int_equal(f.calls, 1);
	assert_int_equal(f.a.result, TRK_UNREACHABLE);
	assert_string_equal(f.server, "");
	assert_non_null(strstr(f.error, "refused"));
}

static void
test_query_deadline(void **state)
{
	struct fake	f;

	(void)state;
	memset(&f, 0, sizeof(f));
	f.greeting = NULL;			/* connects, never greets */
	run_query(&f, "127.0.0.1", 0, 200, 1);
	assert_int_equal(f.calls, 1);
	assert_int_equal(f.a.result, TRK_ERROR);
	assert_non_null(strstr(f.error, "no response"));
	assert_int_equal(f.nconn, 1);
}

/* cancel_cb - cancel the query once the fake has the connection */
static void
cancel_cb(evutil_socket_t fd, short what, void *arg)
{
	struct fake	*f = arg;

	(void)fd;
	(void)what;
	if (f->nconn == 0) {
		struct timeval tv = { 0, 10000 };

		evtimer_add(f->cancel_ev, &tv);
		return;
	}
	trk_query_cancel(f->q);
	event_base_loopexit(f->base, NULL);
}

static void
test_query_cancel(void **state)
{
	struct event_base	*base;
	struct trk_client	*c;
	struct trk_client_opts	 o;
	struct trk_request	 rq;
	struct fake		 f;
	struct timeval		 tv = { 0, 10000 };
	char			 err[256];

	(void)state;
	memset(&f, 0, sizeof(f));
	assert_non_null(base = event_base_new());
	fake_start(&f, base);
	memset(&o, 0, sizeof(o));
	assert_non_null(c = trk_client_new(base, &o, err, sizeof(err)));
	request_init(&rq, "127.0.0.1", f.port, "e@x.test", "YWJj");
	assert_non_null(f.q = trk_query_start(c, &rq, answer_cb, &f));
	assert_non_null(f.cancel_ev = evtimer_new(base, cancel_cb, &f));
	evtimer_add(f.cancel_ev, &tv);
	assert_int_equal(event_base_dispatch(base), 0);
	assert_int_equal(f.calls, 0);		/* never called back */
	/* the loop has nothing of the query left: it ends by itself */
	fake_free(&f);
	f.l = NULL;
	f.nbev = 0;
	assert_int_equal(event_base_dispatch(base), 1);
	event_free(f.cancel_ev);
	trk_client_free(c);
	event_base_free(base);
}

/* free_cb - free the client with its DNS query in flight */
static void
free_cb(evutil_socket_t fd, short what, void *arg)
{
	struct trk_client	**c = arg;

	(void)fd;
	(void)what;
	trk_client_free(*c);
	*c = NULL;
}

static void
test_client_free_in_flight(void **state)
{
	struct event_base	*base;
	struct trk_client	*c;
	struct trk_client_opts	 o;
	struct trk_request	 rq;
	struct event		*ev;
	struct timeval		 tv = { 0, 50000 };
	char			 err[256], dns[64];
	char			*servers[1] = { dns };
	struct fake		 f;
	unsigned		 uport;
	int			 ufd;

	(void)state;
	/* a DNS server that never answers */
	ufd = loopback_bound(SOCK_DGRAM, &uport);
	snprintf(dns, sizeof(dns), "127.0.0.1:%u", uport);
	assert_non_null(base = event_base_new());
	memset(&o, 0, sizeof(o));
	o.dns = servers;
	o.ndns = 1;
	assert_non_null(c = trk_client_new(base, &o, err, sizeof(err)));
	memset(&f, 0, sizeof(f));
	/* SRV first: in flight */
	request_init(&rq, "mx.b.test", 0, "e@x.test", "YWJj");
	assert_non_null(trk_query_start(c, &rq, answer_cb, &f));
	assert_non_null(ev = evtimer_new(base, free_cb, &c));
	evtimer_add(ev, &tv);
	assert_int_equal(event_base_dispatch(base), 1);	/* nothing left */
	assert_null(c);
	assert_int_equal(f.calls, 0);
	event_free(ev);
	event_base_free(base);
	close(ufd);
}

/* bad requests are refused at once */
static void
test_query_bad_args(void **state)
{
	static const struct {
		const char	*host, *envid, *secret;
	} t[] = {
		{ "", "e@x", "YWJj" },
		{ "a b", "e@x", "YWJj" },
		{ "a\r\nTRACK", "e@x", "YWJj" },
		{ "a.test", "", "YWJj" },
		{ "a.test", "e@x", "YW Jj" },
		{ "a.test", "e@x", "YWJj\r\nQUIT" },
		{ "a.test", "e@x", "" },
	};
	struct event_base	*base;
	struct trk_client	*c;
	struct trk_client_opts	 o;
	struct trk_request	 rq;
	struct fake		 f;
	char			 err[256];
	size_t			 i;

	(void)state;
	assert_non_null(base = event_base_new());
	memset(&o, 0, sizeof(o));
	assert_non_null(c = trk_client_new(base, &o, err, sizeof(err)));
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		request_init(&rq, t[i].host, 0, t[i].envid, t[i].secret);
		if (trk_query_start(c, &rq, answer_cb, &f) != NULL)
			fail_msg("host \"%s\" envid \"%s\" secret \"%s\": "
			    "accepted", t[i].host, t[i].envid, t[i].secret);
	}
	trk_client_free(c);
	event_base_free(base);
	/* an unreadable CA file */
	memset(&o, 0, sizeof(o));
	o.ca_file = "/nonexistent/ca.pem";
	assert_null(trk_client_new((struct event_base *)1, &o, err,
	    sizeof(err)));
	assert_non_null(strstr(err, "/nonexistent/ca.pem"));
}

/* ---- a server that trickles its answer, in a thread of its own ---- */

#define DRIP_LINES	200		/* 10 s of lines, then it stops */
#define DRIP_USEC	50000

struct drip {
	int		 lfd;
	unsigned	 port;
	pthread_t	 th;
	int		 nsent;		/* data lines sent */
	int		 gone;		/* the client closed before the end */
};

/* drip_main - greet, read TRACK, "+OK+", then a data line every 50 ms */
static void *
drip_main(void *arg)
{
	static const char	 greet[] = "+OK/MTQP drip.test ready\r\n";
	static const char	 head[] = "+OK+ Tracking information follows\r\n";
	static const char	 line[] = "X-Trickle: a line now and then\r\n";
	struct drip		*d = arg;
	char			 buf[512];
	size_t			 have = 0;
	ssize_t			 n;
	int			 fd, i;

	if ((fd = accept(d->lfd, NULL, NULL)) == -1)
		return NULL;
	(void)send(fd, greet, sizeof(greet) - 1, MSG_NOSIGNAL);
	while (have < sizeof(buf) - 1 && (n = recv(fd, buf + have,
	    sizeof(buf) - 1 - have, 0)) > 0) {
		have += (size_t)n;
		buf[have] = '\0';
		if (strstr(buf, "\r\n") != NULL)
			break;
	}
	(void)send(fd, head, sizeof(head) - 1, MSG_NOSIGNAL);
	for (i = 0; i < DRIP_LINES; i++) {
		usleep(DRIP_USEC);
		if (send(fd, line, sizeof(line) - 1, MSG_NOSIGNAL) == -1) {
			d->gone = 1;
			break;
		}
		d->nsent++;
	}
	close(fd);
	return NULL;
}

/* drip_start - listen on 127.0.0.1 and serve one connection */
static void
drip_start(struct drip *d)
{
	struct sockaddr_in	sin;
	socklen_t		len = sizeof(sin);

	memset(d, 0, sizeof(*d));
	assert_true((d->lfd = socket(AF_INET, SOCK_STREAM, 0)) >= 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(d->lfd, (struct sockaddr *)&sin, sizeof(sin)),
	    0);
	assert_int_equal(listen(d->lfd, 4), 0);
	assert_int_equal(getsockname(d->lfd, (struct sockaddr *)&sin, &len),
	    0);
	d->port = ntohs(sin.sin_port);
	assert_int_equal(pthread_create(&d->th, NULL, drip_main, d), 0);
}

static void
drip_stop(struct drip *d)
{
	assert_int_equal(pthread_join(d->th, NULL), 0);
	close(d->lfd);
}

/* the response timer, re-armed by every line, does not hold the query:
 * its deadline ends it */
static void
test_query_trickle(void **state)
{
	struct event_base	*base;
	struct trk_client	*c;
	struct trk_client_opts	 o;
	struct trk_request	 rq;
	struct fake		 f;
	struct drip		 d;
	char			 err[256];

	(void)state;
	drip_start(&d);
	memset(&f, 0, sizeof(f));
	assert_non_null(base = event_base_new());
	f.base = base;
	f.pending = 1;
	memset(&o, 0, sizeof(o));
	o.response_timeout = 5;		/* seconds per line: never reached */
	assert_non_null(c = trk_client_new(base, &o, err, sizeof(err)));
	request_init(&rq, "127.0.0.1", d.port, "e@x.test", "YWJj");
	rq.timeout_ms = 500;
	assert_non_null(trk_query_start(c, &rq, answer_cb, &f));
	assert_int_equal(event_base_dispatch(base), 0);
	trk_client_free(c);
	event_base_free(base);
	drip_stop(&d);
	assert_int_equal(f.calls, 1);
	assert_int_equal(f.a.result, TRK_ERROR);
	if (strstr(f.error, "within the time allowed") == NULL)
		fail_msg("got \"%s\", want the time allowed", f.error);
	assert_true(d.gone && d.nsent < DRIP_LINES);
}

/* `waymark track` gives each hop a deadline: a hop that trickles a line
 * now and then cannot hold it (the step timer alone would, for ever) */
static void
test_walk_hop_deadline(void **state)
{
	struct trk_client_opts	 o;
	struct walk		 w;
	struct drip		 d;
	char			 err[256];

	(void)state;
	drip_start(&d);
	memset(&w, 0, sizeof(w));
	memset(&o, 0, sizeof(o));
	o.response_timeout = 5;
	w.envid = "e@x.test";
	w.secret = "YWJj";
	w.hop_ms = 500;
	assert_int_equal(track_walk_add(&w, "127.0.0.1", d.port, NULL, 0), 0);
	assert_int_equal(track_walk(&w, &o, err, sizeof(err)), 0);
	drip_stop(&d);
	assert_int_equal(w.nhops, 1);
	assert_int_equal(w.hops[0].result, TRK_ERROR);
	if (w.hops[0].error == NULL ||
	    strstr(w.hops[0].error, "within the time allowed") == NULL)
		fail_msg("got \"%s\", want the time allowed",
		    w.hops[0].error ? w.hops[0].error : "(null)");
	assert_true(d.gone && d.nsent < DRIP_LINES);
	track_walk_free(&w);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_reply_parse),
		cmocka_unit_test(test_reply_has),
		cmocka_unit_test(test_option_starttls),
		cmocka_unit_test(test_handling_parse),
		cmocka_unit_test(test_rfc3887_examples),
		cmocka_unit_test(test_rfc3887_example10),
		cmocka_unit_test(test_raw_reassembled),
		cmocka_unit_test(test_waymark_form),
		cmocka_unit_test(test_lenient_forms),
		cmocka_unit_test(test_refused),
		cmocka_unit_test(test_bounded_input),
		cmocka_unit_test(test_result_names),
		cmocka_unit_test(test_query_ok),
		cmocka_unit_test(test_query_noinfo),
		cmocka_unit_test(test_query_not_mtqp),
		cmocka_unit_test(test_query_starttls_refused),
		cmocka_unit_test(test_query_refused),
		cmocka_unit_test(test_query_deadline),
		cmocka_unit_test(test_query_cancel),
		cmocka_unit_test(test_client_free_in_flight),
		cmocka_unit_test(test_query_bad_args),
		cmocka_unit_test(test_query_trickle),
		cmocka_unit_test(test_walk_hop_deadline),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
