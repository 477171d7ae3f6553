#include "config.h"
/*
 * fuzz_dsn.c - the DSN composer (delivery/dlv_notice.c,
 * dlv_notice_write) on a message made from the input (fuzz_msg.c), the
 * input itself being the spool file; the kind, Status override and note
 * come from its last octet.  The notice is read back: CRLF line ends
 * only and no line over 998 octets up to the returned content, the
 * header's boundary delimiting 2 or 3 parts and closing the notice, and
 * in the message/delivery-status part one Final-Recipient, one Action
 * of the kind and one valid Status of the right class per recipient,
 * and an Original-Envelope-Id exactly when the message has an ENVID.
 */

#include <string.h>
#include <unistd.h>
#include <sys/mman.h>

#include "common/hdr.h"
#include "delivery/delivery.h"
#include "tests/fuzz/fuzz.h"

static const char *const actions[] = {
	"failed", "delayed", "delivered", "relayed", "expanded"
};

/* count_lines - lines of s[0..n) starting with prefix */
static size_t
count_lines(const char *s, size_t n, const char *prefix)
{
	size_t	pl = strlen(prefix), i, c = 0;

	for (i = 0; i < n; i++)
		if ((i == 0 || s[i - 1] == '\n') && n - i >= pl &&
		    memcmp(s + i, prefix, pl) == 0)
			c++;
	return c;
}

/* check_report - part 2's fields (s[0..n), its header included) */
static void
check_report(const char *s, size_t n, const struct qmsg *m, int kind,
    const char *status)
{
	const char	*p, *e, *end = s + n;
	char		 st[32];
	size_t		 l, seen = 0;
	char		 want[64];

	/* rfc822, or utf-8 for a non-ASCII address (RFC 6533) */
	FUZZ_CHECK(count_lines(s, n, "Final-Recipient: rfc822;") +
	    count_lines(s, n, "Final-Recipient: utf-8;") == m->nrcpts);
	(void)snprintf(want, sizeof(want), "Action: %s\r\n", actions[kind]);
	FUZZ_CHECK(count_lines(s, n, want) == m->nrcpts);
	FUZZ_CHECK(count_lines(s, n, "Action:") == m->nrcpts);
	FUZZ_CHECK(count_lines(s, n, "Original-Envelope-Id:") ==
	    (m->envid != NULL ? 1u : 0u));
	for (p = s; p < end; p = e + 2) {
		e = memmem(p, (size_t)(end - p), "\r\n", 2);
		if (e == NULL)
			break;
		if ((size_t)(e - p) < 8 || memcmp(p, "Status: ", 8) != 0)
			continue;
		l = (size_t)(e - p) - 8;
		FUZZ_CHECK(l < sizeof(st));
		memcpy(st, p + 8, l);
		st[l] = '\0';
		FUZZ_CHECK(enh_status_ok(st));
		if (status != NULL)
			FUZZ_CHECK(strcmp(st, status) == 0);
		else if (kind == 0)
			FUZZ_CHECK(st[0] == '4' || st[0] == '5');
		else if (kind == 1)
			FUZZ_CHECK(st[0] == '4');
		else
			FUZZ_CHECK(st[0] == '2');
		seen++;
	}
	FUZZ_CHECK(seen == m->nrcpts);
}

/* check - the notice s[0..n) */
static void
check(const char *s, size_t n, const struct qmsg *m, int kind,
    const char *status)
{
	const char	*b, *q, *hend, *parts[4], *end = s + n;
	char		 bnd[128], delim[140];
	size_t		 bl, dl, np = 0, i, col = 0, limit;

	/* the boundary parameter of the header */
	FUZZ_CHECK((hend = memmem(s, n, "\r\n\r\n", 4)) != NULL);
	/* its own line (a To: address may contain the word; our fields
	 * fold with a space, never a tab) */
	FUZZ_CHECK((b = memmem(s, (size_t)(hend - s), "\r\n\tboundary=\"",
	    13)) != NULL);
	b += 13;
	FUZZ_CHECK((q = memchr(b, '"', (size_t)(hend - b))) != NULL);
	bl = (size_t)(q - b);
	FUZZ_CHECK(bl > 0 && bl < sizeof(bnd));
	memcpy(bnd, b, bl);
	bnd[bl] = '\0';
	dl = (size_t)snprintf(delim, sizeof(delim), "\r\n--%s\r\n", bnd);

	/* the parts */
	for (q = hend; np < 4 && (q = memmem(q, (size_t)(end - q), delim,
	    dl)) != NULL; q += dl)
		parts[np++] = q + dl;
	FUZZ_CHECK(np == 2 || np == 3);
	(void)snprintf(delim, sizeof(delim), "\r\n--%s--\r\n", bnd);
	dl = strlen(delim);
	FUZZ_CHECK(n > dl && memcmp(end - dl, delim, dl) == 0);

	/* line ends and lengths up to the returned content's own text */
	limit = np == 3 ? (size_t)(parts[2] - s) : n;
	for (i = 0; i < limit; i++) {
		if (s[i] == '\r') {
			FUZZ_CHECK(i + 1 < n && s[i + 1] == '\n');
			i++;
			col = 0;
			continue;
		}
		FUZZ_CHECK(s[i] != '\n');
		FUZZ_CHECK(++col <= 998);
	}
	check_report(parts[1], (size_t)((np == 3 ? parts[2] : end) -
	    parts[1]), m, kind, status);
}

/* LLVMFuzzerTestOneInput - one input, checked as the header comment says */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct qmsg	*m;
	struct dlv_dsn	 d;
	size_t		 idx[FUZZ_RCPTS], i;
	char		*host = NULL, *out;
	const char	*body;
	long		 len;
	int		 fd, flags;

	if (size == 0 || (m = fuzz_msg(data, size, &host)) == NULL)
		return 0;
	flags = data[size - 1];
	memset(&d, 0, sizeof(d));
	d.kind = (flags & 0x7) % 5;
	for (i = 0; i < m->nrcpts; i++)
		idx[i] = i;
	d.idx = idx;
	d.n = m->nrcpts;
	d.to = (flags & 0x08) ? "postmaster@example.org" : NULL;
	d.hostname = host;
	d.now = 1700003600;
	d.retry_until = (flags & 0x10) ? 1700500000 : 0;
	d.return_max = (flags & 0x20) ? 1 << 20 : 10;
	d.status = (flags & 0x40) ? "4.4.7" : NULL;
	d.note = (flags & 0x80) ? "A note\r\nwith a line end." : NULL;
	body = fuzz_file("body", data, size);
	fd = memfd_create("fuzz_dsn", 0);
	FUZZ_CHECK(fd != -1);
	len = dlv_notice_write(fd, m, body, &d);
	if (d.n == 0 || (d.to == NULL && m->sender[0] == '\0'))
		FUZZ_CHECK(len == -1);
	else {
		FUZZ_CHECK(len > 0);
		FUZZ_CHECK((out = malloc((size_t)len)) != NULL);
		FUZZ_CHECK(pread(fd, out, (size_t)len, 0) == len);
		check(out, (size_t)len, m, d.kind, d.status);
		free(out);
	}
	close(fd);
	qmsg_free(m);
	free(host);
	return 0;
}
