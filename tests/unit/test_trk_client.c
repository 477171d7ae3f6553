#include "config.h"
/*
 * test_trk_client.c - unit tests of the MTQP client's parsers
 * (track/trk_parse.c): response indicators and response information,
 * greeting option lines (STARTTLS [required]), RFC 5322 dates (obsolete
 * forms, comments, zones, invalid dates), X-Waymark-Handling-State, and
 * TRACK answers: RFC 3887 4.1's examples 6 to 10 as written there
 * (boundary %%%%, type=tracking-status, fields in any order, example 8's
 * dot-stuffed header after unstuffing, example 9's "Status" without a
 * colon ignored, example 10's two parts), Waymark's own form
 * (type="message/tracking-status", a quoted boundary, the composer's
 * golden output trk_status_held.ref with folded lines), LF-only line
 * ends, parts of other types skipped, each part's raw text reassembled
 * into an equal answer (what a chaining server does), and refused bodies.
 * Tables of {name, input, want}; failures say "got X, want Y".
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

#include "common/buf.h"
#include "common/util.h"
#include "track/trk_client.h"

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

/* ---- dates ---- */

static void
test_date_parse(void **state)
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
		rc = trk_date_parse(t[i].s, strlen(t[i].s), &got);
		if (rc != t[i].rc)
			fail_msg("\"%s\": got rc %d, want %d", t[i].s, rc,
			    t[i].rc);
		if (rc == 0 && (long long)got != t[i].want)
			fail_msg("\"%s\": got %lld, want %lld", t[i].s,
			    (long long)got, t[i].want);
	}
}

/* the composer's dates (common/util.c) parse back to the same time */
static void
test_date_roundtrip(void **state)
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
		if (trk_date_parse(s, strlen(s), &got) != 0 || got != t[i])
			fail_msg("\"%s\": got %lld, want %lld", s,
			    (long long)got, (long long)t[i]);
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

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_reply_parse),
		cmocka_unit_test(test_reply_has),
		cmocka_unit_test(test_option_starttls),
		cmocka_unit_test(test_date_parse),
		cmocka_unit_test(test_date_roundtrip),
		cmocka_unit_test(test_handling_parse),
		cmocka_unit_test(test_rfc3887_examples),
		cmocka_unit_test(test_rfc3887_example10),
		cmocka_unit_test(test_raw_reassembled),
		cmocka_unit_test(test_waymark_form),
		cmocka_unit_test(test_lenient_forms),
		cmocka_unit_test(test_refused),
		cmocka_unit_test(test_bounded_input),
		cmocka_unit_test(test_result_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
