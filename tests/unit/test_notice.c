#include "config.h"
/*
 * test_notice.c - unit tests of the failure notice composer
 * (delivery/dlv_notice.c, dlv_notice_write).
 * A synthetic message with three recipients, two failed (one remote
 * with a reply, one local that expired with 4.4.7) and one delivered,
 * and a spool file whose header section has an overlong line: the
 * notice is parsed minimally (CRLF only, no line over 998, the header
 * fields, the boundary, three parts with their Content-Type, the
 * per-recipient fields, the copied header section without the body)
 * and compared with tests/unit/notice.ref after the boundary and the
 * Message-ID are normalised (TZ=UTC, fixed times).  NOTICE_REF_UPDATE=1
 * rewrites the golden file.  Also: no part 3 when the spool file is
 * missing, refused arguments, a fresh boundary per notice, RFC 2852's
 * Deliver-By-Date with a Status for every recipient and a note.
 */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "delivery/delivery.h"

#define NOW		((time_t)1700003600)
#define ARRIVAL		((time_t)1700000000)
#define HOST		"mx.test"

static char	body_path[] = "/tmp/test_notice_bodyXXXXXX";

/* ---- fixtures ---- */

static struct qmsg *
make_msg(void)
{
	struct qmsg	*m = qmsg_new();
	struct qrcpt	*r;

	assert_non_null(m);
	snprintf(m->qid, sizeof(m->qid), "%s", "0MsgQid0000Abcde");
	m->arrival = ARRIVAL;
	m->sender = strdup("alice@example.com");
	m->client_addr = strdup("127.0.0.1");
	m->helo = strdup("client.test");
	m->envid = strdup("env+id-1");
	m->ret = DSN_RET_HDRS;
	assert_int_equal(qmsg_add_rcpt(m, "bob@remote.test"), 0);
	assert_int_equal(qmsg_add_rcpt(m, "carol@example.org"), 0);
	assert_int_equal(qmsg_add_rcpt(m, "dave@example.org"), 0);
	assert_int_equal(qmsg_add_trace(m, "Received: from client.test "
	    "([127.0.0.1])\n\tby mx.test with ESMTP id 0MsgQid0000Abcde; "
	    "Tue, 14 Nov 2023 22:13:20 +0000"), 0);

	r = &m->rcpts[0];
	r->status = RS_FAILED;
	r->attempts = 1;
	r->last_attempt = NOW - 60;
	r->last_code = 550;
	snprintf(r->last_enh, sizeof(r->last_enh), "5.1.1");
	r->last_text = strdup("<bob@remote.test>: Recipient address rejected: "
	    "User unknown in virtual mailbox table; see "
	    "https://remote.test/help/550-5.1.1 for more information");
	r->remote_mta = strdup("mx1.remote.test[127.0.0.2]");
	r->orcpt = strdup("rfc822;Bob@Remote.Test");

	r = &m->rcpts[1];
	r->status = RS_FAILED;
	r->attempts = 7;
	r->last_attempt = NOW;
	r->last_code = 450;
	snprintf(r->last_enh, sizeof(r->last_enh), "4.4.7");
	r->last_text = strdup("message expired after queue_lifetime; last "
	    "error: cannot create example.org/carol: Not a directory");

	r = &m->rcpts[2];
	r->status = RS_DELIVERED;
	r->last_code = 250;
	snprintf(r->last_enh, sizeof(r->last_enh), "2.0.0");
	r->last_text = strdup("delivered to maildir");
	return m;
}

static int
setup(void **state)
{
	static const char head[] =
	    "From: Alice <alice@example.com>\r\n"
	    "To: bob@remote.test, carol@example.org, dave@example.org\r\n"
	    "Subject: original subject\r\n"
	    "Message-ID: <orig.1@client.test>\r\n"
	    "X-Folded: first\r\n"
	    "\tsecond\r\n";
	FILE	*f;
	int	 fd, i;

	(void)state;
	setenv("TZ", "UTC", 1);
	tzset();
	fd = mkstemp(body_path);
	assert_true(fd >= 0);
	f = fdopen(fd, "w");
	assert_non_null(f);
	fputs(head, f);
	fputs("X-Long: ", f);
	for (i = 0; i < 1500; i++)
		fputc('a', f);
	fputs("\r\n\r\nSECRET-BODY line\r\nFrom: not a header\r\n", f);
	assert_int_equal(fclose(f), 0);
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	unlink(body_path);
	return 0;
}

/* write_dsn - the DSN of kind for fidx as a malloc'd string */
static char *
write_dsn(const struct qmsg *m, const char *path, int kind,
    const size_t *fidx, size_t n, uint64_t return_max, long *lenp)
{
	struct dlv_dsn	 d;
	char	 tmpl[] = "/tmp/test_notice_outXXXXXX", *s;
	long	 len;
	off_t	 end;
	int	 fd;

	fd = mkstemp(tmpl);
	assert_true(fd >= 0);
	unlink(tmpl);
	memset(&d, 0, sizeof(d));
	d.kind = kind;
	d.idx = fidx;
	d.n = n;
	d.hostname = HOST;
	d.now = NOW;
	d.return_max = return_max;
	if (kind == DLV_DSN_DELAYED)
		d.retry_until = ARRIVAL + 5 * 86400;
	len = dlv_notice_write(fd, m, path, &d);
	if (len < 0) {
		close(fd);
		*lenp = len;
		return NULL;
	}
	end = lseek(fd, 0, SEEK_END);
	if (end != (off_t)len)
		fail_msg("returned length: got %ld, want the file size %lld",
		    len, (long long)end);
	s = malloc((size_t)len + 1);
	assert_non_null(s);
	assert_int_equal(pread(fd, s, (size_t)len, 0), len);
	s[len] = '\0';
	close(fd);
	*lenp = len;
	return s;
}

/* write_notice - the failure DSN for fidx (1 MB return limit) */
static char *
write_notice(const struct qmsg *m, const char *path, const size_t *fidx,
    size_t n, long *lenp)
{
	return write_dsn(m, path, DLV_DSN_FAILED, fidx, n, 1024 * 1024, lenp);
}

/* ---- minimal parsing ---- */

static void
check_lines(const char *s, long len)
{
	long	i, col = 0, line = 1;

	for (i = 0; i < len; i++) {
		if (s[i] == '\r') {
			if (i + 1 >= len || s[i + 1] != '\n')
				fail_msg("line %ld: bare CR", line);
			i++;
			col = 0;
			line++;
			continue;
		}
		if (s[i] == '\n')
			fail_msg("line %ld: bare LF", line);
		if (s[i] == '\0')
			fail_msg("line %ld: NUL", line);
		if (++col > 998)
			fail_msg("line %ld: longer than 998 octets", line);
	}
	if (len < 2 || s[len - 2] != '\r' || s[len - 1] != '\n')
		fail_msg("the notice must end with CRLF");
}

/* get_boundary - the boundary parameter of the top Content-Type */
static char *
get_boundary(const char *s)
{
	const char	*p, *e;

	p = strstr(s, "\r\n\r\n");
	assert_non_null(p);
	p = strstr(s, "boundary=\"");
	assert_non_null(p);
	p += strlen("boundary=\"");
	e = strchr(p, '"');
	assert_non_null(e);
	assert_true(e - p > 10 && e - p <= 70);
	return strndup(p, (size_t)(e - p));
}

static void
want_in(const char *where, const char *hay, const char *needle)
{
	if (strstr(hay, needle) == NULL)
		fail_msg("%s: %s not found in:\n%s", where, needle, hay);
}

static void
want_not_in(const char *where, const char *hay, const char *needle)
{
	if (strstr(hay, needle) != NULL)
		fail_msg("%s: %s must not appear in:\n%s", where, needle, hay);
}

/* split_parts - parts[i] = malloc'd text between delimiters; returns n */
static size_t
split_parts(const char *s, const char *boundary, char **parts, size_t max)
{
	char		 delim[128], close_d[128];
	const char	*p, *q, *endp;
	size_t		 n = 0;

	snprintf(delim, sizeof(delim), "\r\n--%s\r\n", boundary);
	snprintf(close_d, sizeof(close_d), "\r\n--%s--\r\n", boundary);
	endp = strstr(s, close_d);
	assert_non_null(endp);
	assert_string_equal(endp + strlen(close_d), "");
	p = strstr(s, delim);
	assert_non_null(p);
	while (p != NULL && p < endp) {
		p += strlen(delim);
		q = strstr(p, delim);
		if (q == NULL || q > endp)
			q = endp;
		assert_true(n < max);
		parts[n++] = strndup(p, (size_t)(q - p));
		p = q == endp ? NULL : q;
	}
	return n;
}

/* rcpt_block - the per-recipient group of part 2 naming addr */
static char *
rcpt_block(const char *report, const char *addr)
{
	char		 want[300];
	const char	*p, *e;

	snprintf(want, sizeof(want), "Final-Recipient: rfc822; %s\r\n", addr);
	p = strstr(report, want);
	if (p == NULL)
		fail_msg("no Final-Recipient for %s in:\n%s", addr, report);
	assert_true(p >= report + 2 && p[-1] == '\n' && p[-2] == '\r');
	e = strstr(p, "\r\n\r\n");
	return strndup(p, e ? (size_t)(e - p) + 2 : strlen(p));
}

/* unfold - a copy with every CRLF followed by blanks as one space */
static char *
unfold(const char *s)
{
	char	*o = malloc(strlen(s) + 1), *q = o;

	assert_non_null(o);
	while (*s) {
		if (s[0] == '\r' && s[1] == '\n' && (s[2] == ' ' || s[2] == '\t')) {
			s += 2;
			while (*s == ' ' || *s == '\t')
				s++;
			*q++ = ' ';
			continue;
		}
		*q++ = *s++;
	}
	*q = '\0';
	return o;
}

/* ---- tests ---- */

static void
test_structure(void **state)
{
	static const size_t	 fidx[] = { 0, 1 };
	struct qmsg		*m = make_msg();
	char			*s, *b, *parts[8], *blk, *hdr, *u;
	size_t			 np, i;
	long			 len;

	(void)state;
	s = write_notice(m, body_path, fidx, 2, &len);
	assert_non_null(s);
	check_lines(s, len);
	b = get_boundary(s);
	hdr = strndup(s, (size_t)(strstr(s, "\r\n\r\n") - s) + 2);

	want_in("header", hdr, "From: Mail Delivery System <MAILER-DAEMON@mx.test>\r\n");
	want_in("header", hdr, "\r\nTo: <alice@example.com>\r\n");
	want_in("header", hdr, "\r\nSubject: Undelivered Mail Returned to Sender\r\n");
	want_in("header", hdr, "\r\nDate: Tue, 14 Nov 2023 23:13:20 +0000\r\n");
	want_in("header", hdr, "\r\nMessage-ID: <0MsgQid0000Abcdenotice.1700003600.");
	want_in("header", hdr, "@mx.test>\r\n");
	want_in("header", hdr, "\r\nAuto-Submitted: auto-replied\r\n");
	want_in("header", hdr, "\r\nMIME-Version: 1.0\r\n");
	want_in("header", hdr, "\r\nContent-Type: multipart/report; "
	    "report-type=delivery-status;\r\n\tboundary=\"");

	np = split_parts(s, b, parts, 8);
	if (np != 3)
		fail_msg("parts: got %zu, want 3", np);
	want_in("part 1", parts[0], "Content-Type: text/plain; charset=us-ascii\r\n\r\n");
	u = unfold(parts[0]);
	want_in("part 1", u, "This is the mail system at host mx.test.");
	want_in("part 1", u, "could not be delivered to");
	want_in("part 1", u, "<bob@remote.test>: host "
	    "mx1.remote.test[127.0.0.2] said: 550 5.1.1 <bob@remote.test>:");
	want_in("part 1", u, "<carol@example.org>: message expired after");
	want_in("part 1", u, "<carol@example.org>: message expired after "
	    "queue_lifetime; last error: cannot create example.org/carol: Not "
	    "a directory\r\n");
	want_not_in("part 1", u, "dave@");
	free(u);

	want_in("part 2", parts[1], "Content-Type: message/delivery-status\r\n\r\n"
	    "Original-Envelope-Id: env+id-1\r\n"
	    "Reporting-MTA: dns; mx.test\r\n"
	    "X-Waymark-Queue-ID: 0MsgQid0000Abcde\r\n"
	    "Arrival-Date: Tue, 14 Nov 2023 22:13:20 +0000\r\n\r\n"
	    "Original-Recipient: rfc822;Bob@Remote.Test\r\n"
	    "Final-Recipient: rfc822; bob@remote.test\r\n");
	want_not_in("part 2", parts[1], "dave@");
	u = rcpt_block(parts[1], "bob@remote.test");
	blk = unfold(u);
	free(u);
	want_in("bob", blk, "\r\nAction: failed\r\n");
	want_in("bob", blk, "\r\nStatus: 5.1.1\r\n");
	want_in("bob", blk, "\r\nRemote-MTA: dns; mx1.remote.test\r\n");
	want_in("bob", blk, "\r\nDiagnostic-Code: smtp; 550 5.1.1 "
	    "<bob@remote.test>: Recipient address rejected: User unknown in "
	    "virtual mailbox table; see https://remote.test/help/550-5.1.1 for "
	    "more information\r\n");
	want_in("bob", blk, "\r\nLast-Attempt-Date: Tue, 14 Nov 2023 23:12:20 +0000\r\n");
	free(blk);
	u = rcpt_block(parts[1], "carol@example.org");
	blk = unfold(u);
	free(u);
	want_in("carol", blk, "\r\nAction: failed\r\n");
	want_in("carol", blk, "\r\nStatus: 4.4.7\r\n");
	want_not_in("carol", blk, "Remote-MTA");
	want_not_in("carol", blk, "Original-Recipient");
	want_in("carol", blk, "\r\nDiagnostic-Code: X-Waymark; message expired");
	want_in("carol", blk, "\r\nLast-Attempt-Date: Tue, 14 Nov 2023 23:13:20 +0000\r\n");
	free(blk);

	want_in("part 3", parts[2], "Content-Type: text/rfc822-headers\r\n\r\n"
	    "Received: from client.test ([127.0.0.1])\r\n\tby mx.test with ESMTP id "
	    "0MsgQid0000Abcde; Tue, 14 Nov 2023 22:13:20 +0000\r\n"
	    "From: Alice <alice@example.com>\r\n");
	want_in("part 3", parts[2], "\r\nSubject: original subject\r\n");
	want_in("part 3", parts[2], "\r\nX-Folded: first\r\n\tsecond\r\n");
	want_in("part 3", parts[2], "\r\nX-Long: aaaa");
	want_not_in("part 3", parts[2], "SECRET-BODY");
	want_not_in("part 3", parts[2], "not a header");

	/* the boundary appears only in the delimiter lines */
	{
		const char	*p = s;
		size_t		 count = 0;

		while ((p = strstr(p, b)) != NULL) {
			count++;
			p += strlen(b);
		}
		if (count != 5)	/* the parameter, three delimiters, the close */
			fail_msg("boundary occurrences: got %zu, want 5", count);
	}
	for (i = 0; i < np; i++)
		free(parts[i]);
	free(hdr);
	free(b);
	free(s);
	qmsg_free(m);
}

/* normalise - boundary -> BOUNDARY, the Message-ID's random token -> TOKEN */
static char *
normalise(const char *s, const char *boundary)
{
	size_t		 cap = strlen(s) + 64, o = 0, bl = strlen(boundary);
	char		*out = malloc(cap), *mid;
	const char	*p = s;

	assert_non_null(out);
	while (*p) {
		if (strncmp(p, boundary, bl) == 0) {
			memcpy(out + o, "BOUNDARY", 8);
			o += 8;
			p += bl;
			continue;
		}
		out[o++] = *p++;
		assert_true(o + 9 < cap);
	}
	out[o] = '\0';
	mid = strstr(out, "notice.1700003600.");
	assert_non_null(mid);
	mid += strlen("notice.1700003600.");
	while (*mid != '@' && *mid != '\0')
		*mid++ = 'X';
	return out;
}

static char *
ref_path(void)
{
	const char	*srcdir = getenv("srcdir"), *slash;
	char		*p = NULL;

	if (srcdir != NULL && *srcdir != '\0') {
		if (asprintf(&p, "%s/tests/unit/notice.ref", srcdir) < 0)
			p = NULL;
	} else if ((slash = strrchr(__FILE__, '/')) != NULL) {
		if (asprintf(&p, "%.*s/notice.ref", (int)(slash - __FILE__),
		    __FILE__) < 0)
			p = NULL;
	} else
		p = strdup("notice.ref");
	assert_non_null(p);
	return p;
}

static void
test_golden(void **state)
{
	static const size_t	 fidx[] = { 0, 1 };
	struct qmsg		*m = make_msg();
	char			*s, *b, *norm, *path, *want;
	long			 len, wl;
	FILE			*f;

	(void)state;
	s = write_notice(m, body_path, fidx, 2, &len);
	assert_non_null(s);
	b = get_boundary(s);
	norm = normalise(s, b);
	path = ref_path();
	if (getenv("NOTICE_REF_UPDATE") != NULL) {
		f = fopen(path, "wb");
		assert_non_null(f);
		fputs(norm, f);
		assert_int_equal(fclose(f), 0);
	}
	f = fopen(path, "rb");
	if (f == NULL)
		fail_msg("cannot open %s", path);
	fseek(f, 0, SEEK_END);
	wl = ftell(f);
	rewind(f);
	want = malloc((size_t)wl + 1);
	assert_non_null(want);
	assert_int_equal(fread(want, 1, (size_t)wl, f), (size_t)wl);
	want[wl] = '\0';
	fclose(f);
	if (strcmp(norm, want) != 0) {
		size_t i = 0;

		while (norm[i] && norm[i] == want[i])
			i++;
		fail_msg("notice differs from %s at byte %zu:\ngot:  %.80s\n"
		    "want: %.80s", path, i, norm + i, want + i);
	}
	free(want);
	free(path);
	free(norm);
	free(b);
	free(s);
	qmsg_free(m);
}

static void
test_no_body_file(void **state)
{
	static const size_t	 fidx[] = { 1 };
	struct qmsg		*m = make_msg();
	char			*s, *b, *parts[8];
	size_t			 np, i;
	long			 len;

	(void)state;
	s = write_notice(m, "/nonexistent/body/file", fidx, 1, &len);
	assert_non_null(s);
	check_lines(s, len);
	b = get_boundary(s);
	np = split_parts(s, b, parts, 8);
	if (np != 2)
		fail_msg("parts without a spool file: got %zu, want 2", np);
	want_in("part 2", parts[1], "Final-Recipient: rfc822; carol@example.org");
	want_not_in("part 2", parts[1], "bob@");
	want_not_in("notice", s, "text/rfc822-headers");
	for (i = 0; i < np; i++)
		free(parts[i]);
	free(b);
	free(s);
	qmsg_free(m);
}

static void
test_refused(void **state)
{
	static const size_t	 bad[] = { 7 }, one[] = { 0 };
	struct qmsg		*m = make_msg();
	long			 len;
	char			*s;
	struct {
		const char	*name;
		const size_t	*fidx;
		size_t		 n;
	} cases[] = {
		{ "no recipient", one, 0 },
		{ "index out of range", bad, 1 },
		{ "NULL index array", NULL, 1 },
	};
	size_t			 i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		s = write_notice(m, body_path, cases[i].fidx, cases[i].n,
		    &len);

		if (s != NULL || len != -1)
			fail_msg("%s: got %ld, want -1", cases[i].name, len);
	}
	s = write_dsn(m, body_path, 9, one, 1, 0, &len);
	if (s != NULL || len != -1)
		fail_msg("bad kind: got %ld, want -1", len);
	/* no DSN to <> */
	free(m->sender);
	m->sender = strdup("");
	s = write_notice(m, body_path, one, 1, &len);
	if (s != NULL || len != -1)
		fail_msg("to <>: got %ld, want -1", len);
	{
		struct dlv_dsn d;

		memset(&d, 0, sizeof(d));
		d.idx = one;
		d.n = 1;
		assert_int_equal(dlv_notice_write(-1, m, body_path, &d), -1);
		assert_int_equal(dlv_notice_write(1, m, body_path, NULL), -1);
	}
	qmsg_free(m);
}

/* RFC 2852: Deliver-By-Date after Arrival-Date, a Status for all, a note */
static void
test_deliverby(void **state)
{
	static const size_t	 fidx[] = { 1 };
	struct qmsg		*m = make_msg();
	struct dlv_dsn		 d;
	char			 tmpl[] = "/tmp/test_notice_byXXXXXX", buf[16384];
	char			*b, *parts[8];
	size_t			 np, i;
	ssize_t			 len;
	int			 fd;

	(void)state;
	m->deliver_by = ARRIVAL + 120;
	m->by_flags = BY_NOTIFY;
	fd = mkstemp(tmpl);
	assert_true(fd >= 0);
	unlink(tmpl);
	memset(&d, 0, sizeof(d));
	d.kind = DLV_DSN_DELAYED;
	d.idx = fidx;
	d.n = 1;
	d.hostname = HOST;
	d.now = NOW;
	d.status = "4.4.7";
	d.note = "The delivery time has passed.";
	assert_true(dlv_notice_write(fd, m, body_path, &d) > 0);
	len = pread(fd, buf, sizeof(buf) - 1, 0);
	close(fd);
	assert_true(len > 0);
	buf[len] = '\0';
	check_lines(buf, (long)len);
	b = get_boundary(buf);
	np = split_parts(buf, b, parts, 8);
	assert_int_equal(np, 3);
	want_in("per-message", parts[1], "Arrival-Date: Tue, 14 Nov 2023 "
	    "22:13:20 +0000\r\nDeliver-By-Date: Tue, 14 Nov 2023 22:15:20 "
	    "+0000\r\n\r\n");
	want_in("status", parts[1], "Action: delayed\r\nStatus: 4.4.7\r\n");
	want_in("note", parts[0], "\r\n\r\nThe delivery time has passed.\r\n");
	for (i = 0; i < np; i++)
		free(parts[i]);
	free(b);
	/* no deadline: no field */
	m->deliver_by = 0;
	{
		long	 l;
		char	*s = write_notice(m, body_path, fidx, 1, &l);

		assert_non_null(s);
		want_not_in("no deadline", s, "Deliver-By-Date");
		free(s);
	}
	qmsg_free(m);
}

static void
test_unique_boundary(void **state)
{
	static const size_t	 fidx[] = { 0 };
	struct qmsg		*m = make_msg();
	char			*s1, *s2, *b1, *b2;
	long			 len;

	(void)state;
	s1 = write_notice(m, body_path, fidx, 1, &len);
	s2 = write_notice(m, body_path, fidx, 1, &len);
	assert_non_null(s1);
	assert_non_null(s2);
	b1 = get_boundary(s1);
	b2 = get_boundary(s2);
	if (strcmp(b1, b2) == 0)
		fail_msg("two notices share the boundary %s", b1);
	free(b1);
	free(b2);
	free(s1);
	free(s2);
	qmsg_free(m);
}

/* the full message for RET=FULL / no RET, headers beyond the cap */
static void
test_return_content(void **state)
{
	static const size_t	 fidx[] = { 0 };
	static const int	 rets[] = { DSN_RET_NONE, DSN_RET_FULL };
	struct qmsg		*m = make_msg();
	char			*s, *b, *parts[8];
	size_t			 np, i, k;
	long			 len;

	(void)state;
	for (k = 0; k < 2; k++) {
		m->ret = rets[k];
		m->size = 300 + 1500;
		s = write_notice(m, body_path, fidx, 1, &len);
		assert_non_null(s);
		b = get_boundary(s);
		np = split_parts(s, b, parts, 8);
		assert_int_equal(np, 3);
		want_in("full", parts[2], "Content-Type: message/rfc822\r\n\r\n"
		    "Received: from client.test ([127.0.0.1])\r\n");
		want_in("full", parts[2], "\r\nSubject: original subject\r\n");
		want_in("full", parts[2], "\r\n\r\nSECRET-BODY line\r\n"
		    "From: not a header\r\n");
		want_in("human", parts[0], "The message is attached below.");
		for (i = 0; i < np; i++)
			free(parts[i]);
		free(b);
		free(s);
	}
	/* over the cap: the header section only */
	s = write_dsn(m, body_path, DLV_DSN_FAILED, fidx, 1, 100, &len);
	assert_non_null(s);
	b = get_boundary(s);
	np = split_parts(s, b, parts, 8);
	assert_int_equal(np, 3);
	want_in("capped", parts[2], "Content-Type: text/rfc822-headers\r\n\r\n");
	want_not_in("capped", parts[2], "SECRET-BODY");
	for (i = 0; i < np; i++)
		free(parts[i]);
	free(b);
	free(s);
	qmsg_free(m);
}

/* the other kinds: Action, Status, Will-Retry-Until, headers only */
static void
test_kinds(void **state)
{
	static const struct {
		int		 kind;
		size_t		 ridx;
		const char	*action, *status, *subject;
	} cases[] = {
		{ DLV_DSN_DELAYED, 1, "delayed", "4.4.7", "Delayed Mail" },
		{ DLV_DSN_DELIVERED, 2, "delivered", "2.0.0",
		  "Successful Mail Delivery Report" },
		{ DLV_DSN_RELAYED, 0, "relayed", "2.0.0",
		  "Successful Mail Delivery Report" },
		{ DLV_DSN_EXPANDED, 2, "expanded", "2.0.0",
		  "Successful Mail Delivery Report" },
	};
	struct qmsg	*m = make_msg();
	char		*s, *b, *parts[8], want[128];
	size_t		 np, i, k;
	long		 len;

	(void)state;
	m->ret = DSN_RET_FULL;
	for (k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
		if (cases[k].kind == DLV_DSN_RELAYED) {
			m->rcpts[0].last_code = 250;
			snprintf(m->rcpts[0].last_enh,
			    sizeof(m->rcpts[0].last_enh), "2.0.0");
		}
		s = write_dsn(m, body_path, cases[k].kind, &cases[k].ridx, 1,
		    1024 * 1024, &len);
		assert_non_null(s);
		check_lines(s, len);
		want_in("subject", s, cases[k].subject);
		b = get_boundary(s);
		np = split_parts(s, b, parts, 8);
		assert_int_equal(np, 3);
		snprintf(want, sizeof(want), "\r\nAction: %s\r\nStatus: %s\r\n",
		    cases[k].action, cases[k].status);
		want_in(cases[k].action, parts[1], want);
		if (cases[k].kind == DLV_DSN_DELAYED)
			want_in("delayed", parts[1], "\r\nWill-Retry-Until: "
			    "Sun, 19 Nov 2023 22:13:20 +0000\r\n");
		else
			want_not_in(cases[k].action, parts[1],
			    "Will-Retry-Until");
		want_in(cases[k].action, parts[2],
		    "Content-Type: text/rfc822-headers\r\n\r\n");
		want_not_in(cases[k].action, parts[2], "SECRET-BODY");
		for (i = 0; i < np; i++)
			free(parts[i]);
		free(b);
		free(s);
	}
	qmsg_free(m);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_structure),
		cmocka_unit_test(test_golden),
		cmocka_unit_test(test_no_body_file),
		cmocka_unit_test(test_refused),
		cmocka_unit_test(test_deliverby),
		cmocka_unit_test(test_unique_boundary),
		cmocka_unit_test(test_return_content),
		cmocka_unit_test(test_kinds),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
