#include "config.h"
/*
 * fuzz_data.c - the DATA state machine (smtpd/smtpd_data.c,
 * smtpd_data_scan): dot-unstuffing, line ends and the end marker across
 * arbitrary chunk boundaries.  Input: one octet n (low 4 bits: split
 * points; bit 7: a small max_size), n 16-bit offsets, then the stream.
 * The stream is fed in the chunks the offsets cut until the end marker
 * is consumed, and compared with ref() below, a plain reading of the
 * byte-stream rule over the whole stream at once: the same octets
 * stored (a prefix of them, over max_size), the same end, the same
 * 8-bit and long-line flags.
 */

#include <string.h>
#include <unistd.h>
#include <sys/mman.h>

#include "common/cfg.h"
#include "smtpd/smtpd_session.h"
#include "tests/fuzz/fuzz.h"

#define MAXIN		65536
#define SMALL_MAX	300

struct ref {
	char	*out;		/* what is stored */
	size_t	 outlen;
	size_t	 end;		/* octets up to and including ".\r\n"; 0 = none */
	int	 eightbit;
	int	 long_line;
};

/* ref_text - a line's text octets */
static void
ref_text(struct ref *r, const char *p, size_t n, size_t *linelen)
{
	size_t	i;

	for (i = 0; i < n; i++)
		if ((unsigned char)p[i] & 0x80)
			r->eightbit = 1;
	memcpy(r->out + r->outlen, p, n);
	r->outlen += n;
	*linelen += n;
	if (*linelen + 2 > SMTPD_TEXT_LINE_MAX)
		r->long_line = 1;
}

/* ref_eol - a line end, stored as CRLF */
static void
ref_eol(struct ref *r, size_t *linelen)
{
	memcpy(r->out + r->outlen, "\r\n", 2);
	r->outlen += 2;
	*linelen = 0;
}

/*
 * ref - the rule (smtpd_data.c's header comment) read line by line: a
 * line ends at CRLF, bare LF or bare CR (one not followed by LF); only a
 * line after a real CRLF (or the first) is special: ".\r\n" ends the
 * data, else its leading '.' is dropped.  An unfinished line at the end
 * of the stream stores its text; a CR at the very end waits.
 */
static void
ref(const char *p, size_t n, struct ref *r)
{
	size_t	i = 0, j, linelen = 0;
	int	crlf = 1;

	while (i < n) {
		if (crlf && p[i] == '.') {
			if (i + 2 < n && p[i + 1] == '\r' && p[i + 2] == '\n') {
				r->end = i + 3;
				return;
			}
			i++;			/* dot-unstuffing */
		}
		for (j = i; j < n && p[j] != '\r' && p[j] != '\n'; j++)
			;
		ref_text(r, p + i, j - i, &linelen);
		if (j == n)
			return;
		if (p[j] == '\n') {
			ref_eol(r, &linelen);
			crlf = 0;
			i = j + 1;
		} else if (j + 1 == n) {
			return;			/* CR: LF or not, unknown yet */
		} else if (p[j + 1] == '\n') {
			ref_eol(r, &linelen);
			crlf = 1;
			i = j + 2;
		} else {
			ref_eol(r, &linelen);	/* bare CR */
			crlf = 0;
			i = j + 1;
		}
	}
}

/* stored - the file's octets then the write buffer's, into out */
static size_t
stored(const struct smtpd_txn *t, char *out, size_t outlen)
{
	off_t	end = lseek(t->fd, 0, SEEK_END);
	ssize_t	r;
	size_t	n;

	FUZZ_CHECK(end >= 0 && (size_t)end + t->wlen <= outlen);
	n = (size_t)end;
	r = pread(t->fd, out, n, 0);
	FUZZ_CHECK(r == (ssize_t)n);
	memcpy(out + n, t->wbuf, t->wlen);
	return n + t->wlen;
}

/* LLVMFuzzerTestOneInput - one input, checked as the header comment says */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct config	*cfg;
	static char		 refout[2 * MAXIN + 8], got[2 * MAXIN + 8];
	struct smtpd_txn	 t;
	struct ref		 r;
	size_t			 cuts[16], ncuts, i, k, off, len, used, gotlen;
	const char		*p;
	int			 end = 0;

	if (size < 1 || size > MAXIN)
		return 0;
	if (cfg == NULL) {
		char err[512];

		if ((cfg = cfg_load(NULL, err, sizeof(err))) == NULL)
			return 0;
		smtpd_cfg = cfg;
	}
	ncuts = data[0] & 0x0f;
	if (size < 1 + 2 * ncuts)
		return 0;
	p = (const char *)data + 1 + 2 * ncuts;
	len = size - 1 - 2 * ncuts;
	for (i = 0; i < ncuts; i++)
		cuts[i] = len == 0 ? 0 : ((size_t)data[1 + 2 * i] << 8 |
		    data[2 + 2 * i]) % (len + 1);
	/* the cut points in increasing order (insertion sort) */
	for (i = 1; i < ncuts; i++)
		for (k = i; k > 0 && cuts[k - 1] > cuts[k]; k--) {
			size_t x = cuts[k];

			cuts[k] = cuts[k - 1];
			cuts[k - 1] = x;
		}
	cfg->max_size = (data[0] & 0x80) ? SMALL_MAX : 1024 * 1024;

	/* as smtpd_data_begin leaves it */
	memset(&t, 0, sizeof(t));
	t.fd = memfd_create("fuzz_data", 0);
	FUZZ_CHECK(t.fd != -1);
	/* the full buffer, or the fallback when memory is short (an odd
	 * input size): both capacities see chunks across their flushes */
	t.wcap = (size & 1) ? SMTPD_WBUF_MIN : SMTPD_WBUF_SIZE;
	t.wbuf = malloc(t.wcap);
	FUZZ_CHECK(t.wbuf != NULL);
	t.ds = DS_BOL;
	t.crlf_before = 1;
	t.in_header = 1;

	used = 0;
	off = 0;
	for (i = 0; i <= ncuts && !end; i++) {
		size_t to = i < ncuts ? cuts[i] : len;

		if (to < off)
			continue;
		k = smtpd_data_scan(&t, p + off, to - off, &end);
		FUZZ_CHECK(k <= to - off);
		if (!end)
			FUZZ_CHECK(k == to - off);
		used += k;
		off = to;
	}

	memset(&r, 0, sizeof(r));
	r.out = refout;
	ref(p, len, &r);
	gotlen = stored(&t, got, sizeof(got));
	FUZZ_CHECK(end == (r.end != 0));
	FUZZ_CHECK(used == (end ? r.end : len));
	FUZZ_CHECK(t.werr == 0);
	FUZZ_CHECK(t.size == gotlen);
	if (t.too_big) {
		FUZZ_CHECK(cfg->max_size == SMALL_MAX && r.outlen > SMALL_MAX);
		FUZZ_CHECK(gotlen <= SMALL_MAX && gotlen <= r.outlen &&
		    memcmp(got, refout, gotlen) == 0);
	} else {
		FUZZ_CHECK(gotlen == r.outlen &&
		    memcmp(got, refout, gotlen) == 0);
		FUZZ_CHECK(t.eightbit == r.eightbit);
	}
	FUZZ_CHECK(t.long_line == r.long_line);
	FUZZ_CHECK(t.msgidlen < SMTPD_MSGID_MAX && t.hdrlen <= SMTPD_HDR_CAP);
	close(t.fd);
	free(t.wbuf);
	return 0;
}
