#include "config.h"
/*
 * tools_sendmail.c - `waymark sendmail`: sendmail-compatible submission.
 * Owns: the sendmail option syntax (-f -F -t -i/-oi -N -R -V --track, -C
 *       when run as `sendmail`), reading the message on stdin (header in
 *       memory, body streamed to a tmpfile() already in wire form: CRLF,
 *       dot-stuffed), -t recipient extraction (To/Cc/Bcc; Bcc always
 *       removed), the added From:/Date:/Message-ID:, the blocking SMTP
 *       client to the first `submission` (else `listen`) address, and
 *       --track: ENVID, secret A, certifier, the ~/.waymark/keys line.
 * DSN parameters (RFC 3461: NOTIFY, RET, ENVID, ORCPT) are sent only when
 * EHLO advertises DSN (else a warning); MTRK= (RFC 3885) only when EHLO
 * advertises MTRK (else --track fails: never submit untracked).
 * Exit status: 0 accepted, 1 refused / unreachable / local error, 2 usage.
 * Not here: AUTH and STARTTLS (loopback submission only).  When the
 *       submission listener requires AUTH (530 to MAIL), the message goes
 *       to the first `listen` address instead.
 */

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "common/buf.h"
#include "common/cfg.h"
#include "common/syntax.h"
#include "common/intl.h"
#include "common/util.h"
#include "tools/tools.h"

#define CHUNK_MAX	8192		/* one read of a line */
#define HDR_MAX		(1024u * 1024)	/* the whole header section */
#define REPLY_TEXT_MAX	2048		/* kept for error messages */
#define CMD_MAX		2048
#define ENVID_MAX	100		/* RFC 3461 4.4 */
#define SECRET_LEN	16		/* 128 bits, RFC 3885 */
#define CONNECT_TIMEOUT	30
#define IO_TIMEOUT	300

#define HAS_DSN		0x01u
#define HAS_MTRK	0x02u
#define HAS_8BIT	0x04u
#define HAS_SMTPUTF8	0x08u		/* RFC 6531 */

struct conn {
	int		fd;
	const char	*peer;
	char		in[4096];
	size_t		ilen, ioff;
	int		code;
	char		text[REPLY_TEXT_MAX];	/* the reply, lines joined by "\n" */
	unsigned	ext;
};

struct message {
	struct buf	 hdr;		/* kept fields, CRLF-terminated */
	FILE		*body;		/* wire form, without the final "." */
	int		 has_from, has_date, has_msgid;
	int		 eight_bit;
};

static void
err(const char *fmt, ...) WM_PRINTF(1, 2);

static void
err(const char *fmt, ...)
{
	va_list	ap;

	fputs("waymark: sendmail: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* ---- pure helpers (unit-tested) ---- */

int
sendmail_certifier(const unsigned char *a, size_t alen, char *out,
    size_t outlen)
{
	unsigned char	md[EVP_MAX_MD_SIZE];
	unsigned int	mdlen = 0;
	char		b64[64];
	int		n;

	if (EVP_Digest(a, alen, md, &mdlen, EVP_sha1(), NULL) != 1)
		return -1;
	if ((n = base64_encode(md, mdlen, b64, sizeof(b64))) < 0)
		return -1;
	while (n > 0 && b64[n - 1] == '=')
		n--;
	if ((size_t)n >= outlen)
		return -1;
	memcpy(out, b64, (size_t)n);
	out[n] = '\0';
	return n;
}

int
sendmail_notify_canon(const char *in, char *out, size_t outlen)
{
	static const char *const kw[] = { "SUCCESS", "FAILURE", "DELAY" };
	unsigned	seen = 0;
	const char	*p = in, *e;
	size_t		n, k;
	int		never = 0, r;
	struct buf	b;

	buf_init(&b, outlen > 0 ? outlen - 1 : 0);
	if (*in == '\0')
		goto fail;
	for (;;) {
		e = strchr(p, ',');
		n = e ? (size_t)(e - p) : strlen(p);
		if (n == 5 && strncasecmp(p, "NEVER", 5) == 0) {
			if (never || seen)
				goto fail;
			never = 1;
			r = buf_puts(&b, "NEVER");
		} else {
			for (k = 0; k < 3; k++)
				if (strlen(kw[k]) == n &&
				    strncasecmp(p, kw[k], n) == 0)
					break;
			if (k == 3 || never || (seen & (1u << k)))
				goto fail;
			r = buf_printf(&b, "%s%s", seen ? "," : "", kw[k]);
			seen |= 1u << k;
		}
		if (r == -1)
			goto fail;
		if (e == NULL)
			break;
		p = e + 1;
	}
	memcpy(out, b.data, b.len + 1);
	buf_free(&b);
	return 0;
fail:
	buf_free(&b);
	return -1;
}

int
sendmail_rcpts_add(struct sendmail_rcpts *r, const char *addr, size_t len)
{
	size_t	 i;
	char	*s, **nv;

	for (i = 0; i < r->n; i++)
		if (strlen(r->v[i]) == len && memcmp(r->v[i], addr, len) == 0)
			return 0;
	if (r->n == r->cap) {
		size_t ncap = r->cap ? r->cap * 2 : 8;

		if ((nv = realloc(r->v, ncap * sizeof(*nv))) == NULL)
			return -1;
		r->v = nv;
		r->cap = ncap;
	}
	if ((s = strndup(addr, len)) == NULL)
		return -1;
	r->v[r->n++] = s;
	return 0;
}

void
sendmail_rcpts_free(struct sendmail_rcpts *r)
{
	size_t	i;

	for (i = 0; i < r->n; i++)
		free(r->v[i]);
	free(r->v);
	memset(r, 0, sizeof(*r));
}

/* addr_finish - one element of an address list: its addr-spec, if any */
static int
addr_finish(struct sendmail_rcpts *r, const char *cur, size_t clen,
    const char *ang, size_t alen, int got_angle)
{
	const char	*a = got_angle ? ang : cur;
	size_t		 n = got_angle ? alen : clen;
	const char	*colon;

	/* obsolete source route: <@a,@b:user@x> */
	if (n > 0 && a[0] == '@' && (colon = memchr(a, ':', n)) != NULL) {
		n -= (size_t)(colon + 1 - a);
		a = colon + 1;
	}
	if (n == 0)
		return 0;
	return sendmail_rcpts_add(r, a, n);
}

int
sendmail_header_addrs(const char *s, size_t len, struct sendmail_rcpts *r)
{
	char	cur[SMTP_PATH_MAX + 1], ang[SMTP_PATH_MAX + 1];
	size_t	clen = 0, alen = 0, i;
	int	in_angle = 0, got_angle = 0, depth;
	char	*dst;
	size_t	*dlen;

#define PUT(ch) do {							\
	dst = in_angle ? ang : cur;					\
	dlen = in_angle ? &alen : &clen;				\
	if (*dlen >= SMTP_PATH_MAX)					\
		return -1;						\
	dst[(*dlen)++] = (ch);						\
} while (0)

	for (i = 0; i < len; i++) {
		char c = s[i];

		switch (c) {
		case '(':
			for (depth = 1, i++; i < len && depth > 0; i++) {
				if (s[i] == '\\')
					i++;
				else if (s[i] == '(')
					depth++;
				else if (s[i] == ')')
					depth--;
			}
			if (depth > 0)
				return -1;
			i--;
			break;
		case '"':
			PUT('"');
			for (i++; i < len && s[i] != '"'; i++) {
				if (s[i] == '\\' && i + 1 < len) {
					PUT('\\');
					i++;
				}
				PUT(s[i]);
			}
			if (i >= len)
				return -1;
			PUT('"');
			break;
		case '[':
			for (; i < len && s[i] != ']'; i++)
				if (s[i] != ' ' && s[i] != '\t' &&
				    s[i] != '\r' && s[i] != '\n')
					PUT(s[i]);
			if (i >= len)
				return -1;
			PUT(']');
			break;
		case '<':
			if (in_angle)
				return -1;
			in_angle = 1;
			got_angle = 1;
			alen = 0;
			break;
		case '>':
			if (!in_angle)
				return -1;
			in_angle = 0;
			break;
		case ' ': case '\t': case '\r': case '\n':
			break;
		case ':':
			if (in_angle) {
				PUT(c);
				break;
			}
			clen = 0;	/* group display name */
			break;
		case ',': case ';':
			if (in_angle) {
				PUT(c);
				break;
			}
			if (addr_finish(r, cur, clen, ang, alen, got_angle))
				return -1;
			clen = alen = 0;
			got_angle = 0;
			break;
		default:
			PUT(c);
			break;
		}
	}
#undef PUT
	if (in_angle)
		return -1;
	return addr_finish(r, cur, clen, ang, alen, got_angle);
}

/* ---- options ---- */

static int
opt_value(int argc, char **argv, int *i, const char *rest, const char **val)
{
	if (*rest != '\0') {
		*val = rest;
		return 0;
	}
	if (*i + 1 >= argc)
		return -1;
	*val = argv[++*i];
	return 0;
}

int
sendmail_parse(int argc, char **argv, int as_sendmail,
    struct sendmail_opts *o)
{
	const char	*val;
	int		 i;
	size_t		 k;

	for (i = 0; i < argc; i++) {
		const char *a = argv[i];

		if (strcmp(a, "--") == 0) {
			i++;
			break;
		}
		if (strcmp(a, "--track") == 0) {
			o->track = 1;
			continue;
		}
		if (a[0] != '-' || a[1] == '\0')
			break;
		if (a[1] == '-') {
			err("unknown option: %s", a);
			return EX_WM_USAGE;
		}
		for (k = 1; a[k] != '\0'; k++) {
			char	c = a[k];

			switch (c) {
			case 't':
				o->extract = 1;
				continue;
			case 'i':
				o->ignore_dots = 1;
				continue;
			case 'v': case 'm': case 'U': case 'G': case 'n':
				continue;	/* accepted, no effect */
			case 'o':		/* -oi; other -oX ignored */
				if (a[k + 1] == 'i' && a[k + 2] == '\0')
					o->ignore_dots = 1;
				goto next;
			case 'b':
				if (strcmp(a + k, "bm") == 0)
					goto next;
				if (strcmp(a + k, "bp") == 0) {
					o->mailq = 1;
					goto next;
				}
				err("unsupported mode: -%s", a + k);
				return EX_WM_USAGE;
			case 'f': case 'F': case 'N': case 'R': case 'V':
			case 'C': case 'B': case 'O': case 'L': case 'X':
			case 'r':
				break;
			default:
				err("unknown option: -%c", c);
				return EX_WM_USAGE;
			}
			/* options with a value */
			if (opt_value(argc, argv, &i, a + k + 1, &val) == -1) {
				err("-%c needs a value", c);
				return EX_WM_USAGE;
			}
			switch (c) {
			case 'f': case 'r':
				o->from = val;
				break;
			case 'F':
				o->fullname = val;
				break;
			case 'N':
				if (sendmail_notify_canon(val, o->notify,
				    sizeof(o->notify)) == -1) {
					err("-N: expected never or a list of "
					    "success,failure,delay: %s", val);
					return EX_WM_USAGE;
				}
				break;
			case 'R':
				if (strcasecmp(val, "full") == 0)
					o->ret = "FULL";
				else if (strcasecmp(val, "hdrs") == 0)
					o->ret = "HDRS";
				else {
					err("-R: expected full or hdrs: %s",
					    val);
					return EX_WM_USAGE;
				}
				break;
			case 'V':
				for (k = 0; val[k] != '\0'; k++)
					if (val[k] < 0x21 || val[k] > 0x7e)
						break;
				if (k == 0 || val[k] != '\0' ||
				    k > ENVID_MAX) {
					err("-V: an ENVID is 1 to %d printable "
					    "ASCII characters", ENVID_MAX);
					return EX_WM_USAGE;
				}
				o->envid = val;
				break;
			case 'C':
				if (!as_sendmail) {
					err("-C is for the `sendmail` name; "
					    "use waymark -f FILE");
					return EX_WM_USAGE;
				}
				o->conf = val;
				break;
			default:
				break;		/* -B, -O, -L, -X: ignored */
			}
			goto next;
		}
next:
		;
	}
	o->rcpts = argv + i;
	o->nrcpts = argc - i;
	return 0;
}

/* ---- addresses ---- */

/*
 * addr_normal - "<a@b>" / "a@b" / "a" (+ "@hostname") into out; checked
 * with the server's own path parser.  *null set for "<>" / "".
 */
static int
addr_normal(const char *in, const char *hostname, char *out, size_t outlen,
    int *null)
{
	char			 tmp[SMTP_PATH_MAX + 3];
	struct mailpath		 mp;
	const char		*why;
	size_t			 n = strlen(in);
	int			 r;

	*null = 0;
	if (n >= 2 && in[0] == '<' && in[n - 1] == '>') {
		in++;
		n -= 2;
	}
	if (n == 0) {
		*null = 1;
		out[0] = '\0';
		return 0;
	}
	if (memchr(in, '@', n) != NULL)
		r = snprintf(tmp, sizeof(tmp), "<%.*s>", (int)n, in);
	else
		r = snprintf(tmp, sizeof(tmp), "<%.*s@%s>", (int)n, in,
		    hostname);
	if (r < 0 || (size_t)r >= sizeof(tmp))
		return -1;
	if (smtp_parse_path(tmp, (size_t)r, &mp, &why) != r || mp.null ||
	    mp.postmaster)
		return -1;
	r = snprintf(out, outlen, "%.*s", r - 2, tmp + 1);
	if (r < 0 || (size_t)r >= outlen)
		return -1;
	return 0;
}

/* ---- reading the message ---- */

/*
 * read_chunk - up to cap-1 bytes of one line from in.  *eol: the chunk
 * ends its line (the LF, and a CR before it, removed; also at EOF).
 * Returns 1 with data, 0 at EOF with nothing read, -1 on a read error.
 */
static int
read_chunk(FILE *in, char *b, size_t cap, size_t *len, int *eol)
{
	size_t	n = 0;
	int	c;

	*eol = 0;
	while (n + 1 < cap) {
		if ((c = getc_unlocked(in)) == EOF) {
			if (ferror(in))
				return -1;
			if (n == 0)
				return 0;
			*eol = 1;
			break;
		}
		if (c == '\n') {
			if (n > 0 && b[n - 1] == '\r')
				n--;
			*eol = 1;
			break;
		}
		b[n++] = (char)c;
	}
	if (!*eol && n > 1 && b[n - 1] == '\r') {	/* CR LF split */
		ungetc('\r', in);
		n--;
	}
	*len = n;
	return 1;
}

/* utf8_unitext - RFC 6533 utf-8-addr-unitext: UTF-8 as is, '+', '=',
 * '\\', SP and controls as \x{HEX}; 0 or -1 when out is too small */
static int
utf8_unitext(const char *a, char *out, size_t outlen)
{
	size_t	o = 0;
	int	w;

	for (; *a != '\0'; a++) {
		unsigned char ch = (unsigned char)*a;

		if (ch <= 0x20 || ch == 0x7f || ch == '+' || ch == '=' ||
		    ch == '\\') {
			w = snprintf(out + o, outlen - o, "\\x{%02X}", ch);
			if (w < 0 || (size_t)w >= outlen - o)
				return -1;
			o += (size_t)w;
		} else {
			if (o + 1 >= outlen)
				return -1;
			out[o++] = (char)ch;
		}
	}
	out[o] = '\0';
	return 0;
}

/* field_name_is - the field in f (len bytes) is named name? */
static int
field_name_is(const char *f, size_t len, const char *name)
{
	size_t	n = strlen(name);

	if (len <= n || strncasecmp(f, name, n) != 0)
		return 0;
	for (; n < len && (f[n] == ' ' || f[n] == '\t'); n++)
		;
	return n < len && f[n] == ':';
}

/* field_done - one complete header field (CRLF inside continuations) */
static int
field_done(struct message *m, const struct sendmail_opts *o,
    struct sendmail_rcpts *rc, const struct buf *f)
{
	const char	*colon;
	int		 bcc;

	if (f->len == 0)
		return 0;
	if (field_name_is(f->data, f->len, "From"))
		m->has_from = 1;
	else if (field_name_is(f->data, f->len, "Date"))
		m->has_date = 1;
	else if (field_name_is(f->data, f->len, "Message-ID"))
		m->has_msgid = 1;
	bcc = field_name_is(f->data, f->len, "Bcc");
	if (o->extract && (bcc || field_name_is(f->data, f->len, "To") ||
	    field_name_is(f->data, f->len, "Cc"))) {
		colon = memchr(f->data, ':', f->len);
		if (sendmail_header_addrs(colon + 1,
		    f->len - (size_t)(colon + 1 - f->data), rc) == -1) {
			err("cannot parse the addresses in: %.*s",
			    (int)(f->len > 200 ? 200 : f->len), f->data);
			return -1;
		}
	}
	if (bcc)
		return 0;
	if (buf_append(&m->hdr, f->data, f->len) == -1 ||
	    buf_puts(&m->hdr, "\r\n") == -1) {
		err("the header is too long (more than %u bytes)", HDR_MAX);
		return -1;
	}
	return 0;
}

/* header_line - a line of the header: ends it (1), or is part of it (0) */
static int
header_line(const char *l, size_t n)
{
	size_t	i;

	if (n == 0)
		return 1;
	if (l[0] == ' ' || l[0] == '\t')
		return 0;
	for (i = 0; i < n && l[i] != ':'; i++)
		if ((unsigned char)l[i] <= 0x20 || (unsigned char)l[i] >= 0x7f)
			break;
	for (; i < n && (l[i] == ' ' || l[i] == '\t'); i++)
		;
	return (i > 0 && i < n && l[i] == ':') ? 0 : 2;
}

/* body_put - one chunk into the body file in wire form */
static void
body_put(FILE *fp, const char *b, size_t n, int eol, int *at_bol)
{
	if (*at_bol && n > 0 && b[0] == '.')
		putc_unlocked('.', fp);
	fwrite(b, 1, n, fp);
	if (eol)
		fputs("\r\n", fp);
	*at_bol = eol;
}

/*
 * read_message - stdin into m (header in memory, body in a tmpfile);
 * -t addresses into rc.  Returns 0 or -1 (reason printed).
 */
static int
read_message(FILE *in, const struct sendmail_opts *o, struct message *m,
    struct sendmail_rcpts *rc)
{
	struct buf	 line, field;
	char		*chunk = NULL;
	size_t		 n;
	int		 eol, r, first = 1, at_bol = 1, in_hdr = 1, kind;
	int		 rv = -1;

	buf_init(&line, HDR_MAX);
	buf_init(&field, HDR_MAX);
	if ((chunk = malloc(CHUNK_MAX)) == NULL ||
	    (m->body = tmpfile()) == NULL) {
		err("cannot buffer the message: %s", strerror(errno));
		goto fail;
	}
	for (;;) {
		if ((r = read_chunk(in, chunk, CHUNK_MAX, &n, &eol)) == -1) {
			err("read error on standard input: %s",
			    strerror(errno));
			goto fail;
		}
		if (r == 0)
			break;
		if (str_nonascii(chunk, n))
			m->eight_bit = 1;
		if (!in_hdr) {
			if (at_bol && eol && n == 1 && chunk[0] == '.' &&
			    !o->ignore_dots)
				break;
			body_put(m->body, chunk, n, eol, &at_bol);
			continue;
		}
		/* header: whole lines */
		if (buf_append(&line, chunk, n) == -1) {
			err("a header line is too long");
			goto fail;
		}
		if (!eol)
			continue;
		if (line.len == 1 && line.data[0] == '.' && !o->ignore_dots)
			break;
		if (first && line.len >= 5 && memcmp(line.data, "From ",
		    5) == 0) {	/* mbox separator */
			first = 0;
			buf_reset(&line);
			continue;
		}
		first = 0;
		kind = header_line(line.data, line.len);
		if (kind == 0 && (line.data[0] == ' ' ||
		    line.data[0] == '\t') && field.len > 0) {
			if (buf_puts(&field, "\r\n") == -1 ||
			    buf_append(&field, line.data, line.len) == -1) {
				err("a header field is too long");
				goto fail;
			}
		} else {
			if (field_done(m, o, rc, &field) == -1)
				goto fail;
			buf_reset(&field);
			if (kind == 0) {
				if (buf_append(&field, line.data,
				    line.len) == -1)
					goto fail;
			} else {
				in_hdr = 0;
				if (kind == 2)	/* first body line */
					body_put(m->body, line.data, line.len,
					    1, &at_bol);
			}
		}
		buf_reset(&line);
	}
	if (line.len > 0 && in_hdr) {	/* cannot happen: EOF ends a line */
		in_hdr = 0;
		body_put(m->body, line.data, line.len, 1, &at_bol);
	}
	if (in_hdr && field_done(m, o, rc, &field) == -1)
		goto fail;
	if (!at_bol)
		fputs("\r\n", m->body);
	if (fflush(m->body) == EOF || ferror(m->body)) {
		err("cannot buffer the message: %s", strerror(errno));
		goto fail;
	}
	rv = 0;
fail:
	buf_free(&line);
	buf_free(&field);
	free(chunk);
	return rv;
}

/* add_headers - From:, Date:, Message-ID: when missing */
static int
add_headers(struct message *m, const struct sendmail_opts *o,
    const char *from, const char *hostname)
{
	unsigned char	rnd[8];
	char		date[64], stamp[32], hex[17];
	time_t		now = time(NULL);
	struct tm	tm;
	size_t		i;
	int		r = 0;

	if (!m->has_from) {
		if (o->fullname != NULL) {
			r = buf_puts(&m->hdr, "From: \"");
			for (i = 0; r == 0 && o->fullname[i] != '\0'; i++) {
				char c = o->fullname[i];

				if (c == '\r' || c == '\n')
					c = ' ';
				if (c == '"' || c == '\\')
					r = buf_append(&m->hdr, "\\", 1);
				if (r == 0)
					r = buf_append(&m->hdr, &c, 1);
			}
			if (r == 0)
				r = buf_printf(&m->hdr, "\" <%s>\r\n", from);
		} else
			r = buf_printf(&m->hdr, "From: %s\r\n", from);
	}
	if (r == 0 && !m->has_date) {
		if (rfc5322_date(now, date, sizeof(date)) == -1)
			return -1;
		r = buf_printf(&m->hdr, "Date: %s\r\n", date);
	}
	if (r == 0 && !m->has_msgid) {
		if (RAND_bytes(rnd, sizeof(rnd)) != 1 ||
		    gmtime_r(&now, &tm) == NULL ||
		    strftime(stamp, sizeof(stamp), "%Y%m%d%H%M%S", &tm) == 0)
			return -1;
		for (i = 0; i < sizeof(rnd); i++)
			snprintf(hex + 2 * i, 3, "%02x", rnd[i]);
		r = buf_printf(&m->hdr, "Message-ID: <%s.%s@%s>\r\n", stamp,
		    hex, hostname);
	}
	return r;
}

/* ---- the key file ---- */

/* key_store - append "ENVID SP base64(A)" to ~/.waymark/keys, synced */
static int
key_store(const char *envid, const unsigned char *a, size_t alen)
{
	struct passwd	*pw;
	struct stat	 st;
	const char	*home = getenv("HOME");
	char		 dir[4096], path[4200], b64[64], *line = NULL;
	int		 fd = -1, r, rv = -1, created;
	size_t		 len, off;
	ssize_t		 w;

	if (home == NULL || *home == '\0') {
		if ((pw = getpwuid(getuid())) == NULL) {
			err("cannot find the home folder for the key file");
			return -1;
		}
		home = pw->pw_dir;
	}
	r = snprintf(dir, sizeof(dir), "%s/.waymark", home);
	if (r < 0 || (size_t)r >= sizeof(dir))
		goto toolong;
	r = snprintf(path, sizeof(path), "%s/keys", dir);
	if (r < 0 || (size_t)r >= sizeof(path))
		goto toolong;
	if (mkdir(dir, 0700) == -1 && errno != EEXIST) {
		err("cannot create %s: %s", dir, strerror(errno));
		return -1;
	}
	if (stat(dir, &st) == -1 || !S_ISDIR(st.st_mode)) {
		err("%s is not a folder", dir);
		return -1;
	}
	created = access(path, F_OK) == -1;
	if ((fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC |
	    O_NOFOLLOW, 0600)) == -1) {
		err("cannot open %s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) == 0 && (st.st_mode & 077) != 0 &&
	    fchmod(fd, 0600) == -1) {
		err("cannot make %s private: %s", path, strerror(errno));
		goto fail;
	}
	if (base64_encode(a, alen, b64, sizeof(b64)) < 0 ||
	    asprintf(&line, "%s %s\n", envid, b64) == -1) {
		line = NULL;
		err("out of memory");
		goto fail;
	}
	len = strlen(line);
	for (off = 0; off < len; off += (size_t)w) {
		if ((w = write(fd, line + off, len - off)) == -1 &&
		    errno == EINTR) {
			w = 0;
			continue;
		}
		if (w <= 0) {
			err("cannot write %s: %s", path, strerror(errno));
			goto fail;
		}
	}
	if (fsync(fd) == -1) {
		err("cannot sync %s: %s", path, strerror(errno));
		goto fail;
	}
	if (created && fsync_dir(dir) == -1) {
		err("cannot sync %s: %s", dir, strerror(errno));
		goto fail;
	}
	rv = 0;
fail:
	free(line);
	if (fd != -1 && close(fd) == -1 && rv == 0) {
		err("cannot write %s: %s", path, strerror(errno));
		rv = -1;
	}
	return rv;
toolong:
	err("the home folder path is too long");
	return -1;
}

/* ---- the SMTP client ---- */

static int
conn_open(struct conn *c, const struct cfg_addr *a)
{
	struct sockaddr_storage	ss = a->ss;
	struct timeval		tv = { CONNECT_TIMEOUT, 0 };

	/* a wildcard listener is reached on loopback */
	if (ss.ss_family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&ss;

		if (sin->sin_addr.s_addr == htonl(INADDR_ANY))
			sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	} else if (ss.ss_family == AF_INET6) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;

		if (IN6_IS_ADDR_UNSPECIFIED(&sin6->sin6_addr))
			sin6->sin6_addr = in6addr_loopback;
	}
	c->peer = a->text;
	if ((c->fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		goto fail;
	setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(c->fd, (struct sockaddr *)&ss, a->len) == -1)
		goto fail;
	tv.tv_sec = IO_TIMEOUT;
	setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	return 0;
fail:
	err("cannot connect to %s: %s", a->text, strerror(errno));
	return -1;
}

static int
conn_write(struct conn *c, const char *p, size_t n)
{
	ssize_t	w;

	while (n > 0) {
		if ((w = send(c->fd, p, n, MSG_NOSIGNAL)) == -1) {
			if (errno == EINTR)
				continue;
			err("%s: write error: %s", c->peer, errno == EAGAIN ?
			    "timed out" : strerror(errno));
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* conn_line - one reply line (CRLF removed, truncated to cap-1) */
static int
conn_line(struct conn *c, char *line, size_t cap)
{
	size_t	n = 0;
	ssize_t	r;
	char	ch;

	for (;;) {
		if (c->ioff == c->ilen) {
			r = recv(c->fd, c->in, sizeof(c->in), 0);
			if (r == -1 && errno == EINTR)
				continue;
			if (r <= 0) {
				err("%s: %s", c->peer, r == 0 ?
				    "connection closed" : errno == EAGAIN ?
				    "timed out" : strerror(errno));
				return -1;
			}
			c->ilen = (size_t)r;
			c->ioff = 0;
		}
		ch = c->in[c->ioff++];
		if (ch == '\n')
			break;
		if (n + 1 < cap)
			line[n++] = ch;
	}
	if (n > 0 && line[n - 1] == '\r')
		n--;
	line[n] = '\0';
	return 0;
}

/* conn_reply - a whole reply: c->code, c->text; EHLO keywords into c->ext */
static int
conn_reply(struct conn *c, int ehlo)
{
	char	line[1024];
	size_t	tl = 0, n, nlines = 0;

	c->text[0] = '\0';
	for (;;) {
		if (conn_line(c, line, sizeof(line)) == -1)
			return -1;
		if (strlen(line) < 3 || !isdigit((unsigned char)line[0]) ||
		    !isdigit((unsigned char)line[1]) ||
		    !isdigit((unsigned char)line[2]) ||
		    (line[3] != '\0' && line[3] != ' ' && line[3] != '-')) {
			err("%s: malformed reply: %.200s", c->peer, line);
			return -1;
		}
		c->code = atoi(line);
		n = strlen(line);
		if (tl + n + 2 < sizeof(c->text)) {
			if (tl > 0)
				c->text[tl++] = '\n';
			memcpy(c->text + tl, line, n + 1);
			tl += n;
		}
		if (ehlo && nlines > 0) {
			const char *k = line + 4;
			size_t	    kl = strcspn(k, " ");

			if (kl == 3 && strncasecmp(k, "DSN", 3) == 0)
				c->ext |= HAS_DSN;
			else if (kl == 4 && strncasecmp(k, "MTRK", 4) == 0)
				c->ext |= HAS_MTRK;
			else if (kl == 8 && strncasecmp(k, "8BITMIME", 8) == 0)
				c->ext |= HAS_8BIT;
			else if (kl == 8 && strncasecmp(k, "SMTPUTF8", 8) == 0)
				c->ext |= HAS_SMTPUTF8;
		}
		nlines++;
		if (line[3] != '-')
			return 0;
	}
}

/* conn_cmd - send one command line, read the reply; the code or -1 */
static int
conn_cmd(struct conn *c, int ehlo, const char *fmt, ...) WM_PRINTF(3, 4);

static int
conn_cmd(struct conn *c, int ehlo, const char *fmt, ...)
{
	char	cmd[CMD_MAX];
	va_list	ap;
	int	r;

	va_start(ap, fmt);
	r = vsnprintf(cmd, sizeof(cmd) - 2, fmt, ap);
	va_end(ap);
	if (r < 0 || (size_t)r >= sizeof(cmd) - 2) {
		err("command too long");
		return -1;
	}
	memcpy(cmd + r, "\r\n", 3);
	if (conn_write(c, cmd, (size_t)r + 2) == -1 || conn_reply(c, ehlo) == -1)
		return -1;
	return c->code;
}

static void
refused(const struct conn *c, const char *what)
{
	err("%s refused %s: %s", c->peer, what, c->text);
}

/* send_data - header lines (dot-stuffed), the body file, the end marker */
static int
send_data(struct conn *c, struct message *m)
{
	char	 blk[16384];
	size_t	 n, off, e;

	for (off = 0; off < m->hdr.len; off = e) {
		e = off;
		while (e < m->hdr.len && m->hdr.data[e] != '\n')
			e++;
		if (e < m->hdr.len)
			e++;
		if (m->hdr.data[off] == '.' && conn_write(c, ".", 1) == -1)
			return -1;
		if (conn_write(c, m->hdr.data + off, e - off) == -1)
			return -1;
	}
	if (conn_write(c, "\r\n", 2) == -1)
		return -1;
	rewind(m->body);
	while ((n = fread(blk, 1, sizeof(blk), m->body)) > 0)
		if (conn_write(c, blk, n) == -1)
			return -1;
	if (ferror(m->body)) {
		err("cannot read the buffered message: %s", strerror(errno));
		return -1;
	}
	return conn_write(c, ".\r\n", 3);
}


/* print_track_link - line 2 of --track: URL/t/ENVID#SECRET, ENVID
 * percent-encoded (RFC 3986 unreserved characters and '@' as they
 * are), SECRET the secret A in base64url without padding (RFC 4648 5);
 * the page's script posts it, the server takes base64 or base64url */
static int
print_track_link(const char *url, const char *envid,
    const unsigned char *a, size_t alen)
{
	char	b64[256], path[3 * 100 + 1];
	size_t	n = strlen(url), i, o = 0;
	int	r;

	while (n > 0 && url[n - 1] == '/')
		n--;
	for (i = 0; envid[i] != '\0' && o + 4 <= sizeof(path); i++) {
		unsigned char ch = (unsigned char)envid[i];

		if ((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
		    (ch >= '0' && ch <= '9') || strchr("-._~@", ch) != NULL)
			path[o++] = (char)ch;
		else {
			snprintf(path + o, 4, "%%%02X", ch);
			o += 3;
		}
	}
	path[o] = '\0';
	if ((r = base64_encode(a, alen, b64, sizeof(b64))) <= 0)
		return -1;
	for (i = 0; b64[i] != '\0'; i++)
		if (b64[i] == '+')
			b64[i] = '-';
		else if (b64[i] == '/')
			b64[i] = '_';
		else if (b64[i] == '=')
			b64[i] = '\0';
	r = printf("%.*s/t/%s#%s\n", (int)n, url, path, b64);
	explicit_bzero(b64, sizeof(b64));
	return r < 0 ? -1 : 0;
}

/* ---- the command ---- */

int
sendmail_run(const struct config *cfg, const struct sendmail_opts *o)
{
	struct sendmail_rcpts	 rc = { NULL, 0, 0 };
	struct message		 m;
	struct conn		 c;
	const struct cfg_addr	*dst;
	struct passwd		*pw;
	unsigned char		 secret[SECRET_LEN], rnd[16];
	char			 from[SMTP_PATH_MAX + 1], addr[SMTP_PATH_MAX + 1];
	char			 envid[ENVID_MAX + 1], xenvid[3 * ENVID_MAX + 1];
	char			 cert[32], xorcpt[3 * SMTP_PATH_MAX + 1];
	char			 mailp[512], rcptp[1024];
	const char		*login;
	size_t			 i;
	int			 rv = EX_WM_FAIL, null_from = 0, null, r, dsn;
	int			 key_stored = 0, utf8 = 0, u8o;

	memset(&m, 0, sizeof(m));
	memset(&c, 0, sizeof(c));
	c.fd = -1;
	buf_init(&m.hdr, HDR_MAX);
	envid[0] = '\0';

	/* the envelope sender */
	if (o->from != NULL) {
		if (addr_normal(o->from, cfg->hostname, from, sizeof(from),
		    &null_from) == -1) {
			err("-f: not a valid address: %s", o->from);
			rv = EX_WM_USAGE;
			goto fail;
		}
	} else {
		pw = getpwuid(getuid());
		login = pw ? pw->pw_name : getenv("LOGNAME");
		if (login == NULL || addr_normal(login, cfg->hostname, from,
		    sizeof(from), &null) == -1 || null) {
			err("cannot make a sender address from the login "
			    "name; use -f FROM");
			goto fail;
		}
	}
	for (i = 0; i < (size_t)o->nrcpts; i++) {
		if (addr_normal(o->rcpts[i], cfg->hostname, addr, sizeof(addr),
		    &null) == -1 || null) {
			err("not a valid recipient address: %s", o->rcpts[i]);
			rv = EX_WM_USAGE;
			goto fail;
		}
	}
	if (o->nrcpts == 0 && !o->extract) {
		err("no recipients (give them as arguments, or use -t)");
		rv = EX_WM_USAGE;
		goto fail;
	}

	/* the message */
	if (read_message(stdin, o, &m, &rc) == -1)
		goto fail;
	for (i = 0; i < rc.n; i++) {	/* -t addresses, checked */
		if (addr_normal(rc.v[i], cfg->hostname, addr, sizeof(addr),
		    &null) == -1 || null) {
			err("not a valid recipient address in the header: %s",
			    rc.v[i]);
			goto fail;
		}
		free(rc.v[i]);
		if ((rc.v[i] = strdup(addr)) == NULL)
			goto nomem;
	}
	for (i = 0; i < (size_t)o->nrcpts; i++) {
		addr_normal(o->rcpts[i], cfg->hostname, addr, sizeof(addr),
		    &null);
		if (sendmail_rcpts_add(&rc, addr, strlen(addr)) == -1)
			goto nomem;
	}
	if (rc.n == 0) {
		err("no recipient addresses found in the header");
		rv = EX_WM_USAGE;
		goto fail;
	}
	if (add_headers(&m, o, null_from ? "MAILER-DAEMON" : from,
	    cfg->hostname) == -1) {
		err("cannot add the missing header fields");
		goto fail;
	}

	/* --track: ENVID and the secret */
	if (o->envid != NULL) {
		r = snprintf(envid, sizeof(envid), "%s", o->envid);
		if (r < 0 || (size_t)r >= sizeof(envid))
			goto fail;
	} else if (o->track) {
		if (RAND_bytes(rnd, sizeof(rnd)) != 1)
			goto norand;
		for (i = 0; i < sizeof(rnd); i++)
			snprintf(envid + 2 * i, 3, "%02x", rnd[i]);
		if (strlen(cfg->hostname) + 33 <= ENVID_MAX) {
			r = snprintf(envid + 32, sizeof(envid) - 32, "@%s",
			    cfg->hostname);
			if (r < 0 || (size_t)r >= sizeof(envid) - 32)
				envid[32] = '\0';
		}
	}
	if (envid[0] != '\0' &&
	    xtext_encode(envid, strlen(envid), xenvid, sizeof(xenvid)) == -1)
		goto fail;
	if (o->track) {
		if (RAND_bytes(secret, sizeof(secret)) != 1)
			goto norand;
		if (sendmail_certifier(secret, sizeof(secret), cert,
		    sizeof(cert)) != 27) {
			err("cannot compute the MTRK certifier");
			goto fail;
		}
	}

	/* the session */
	if (cfg->nsubmission > 0)
		dst = &cfg->submission[0];
	else if (cfg->nlisten > 0)
		dst = &cfg->listen[0];
	else {
		err("%s: no submission or listen address configured",
		    cfg->path ? cfg->path : "(default)");
		goto fail;
	}
session:
	if (conn_open(&c, dst) == -1 || conn_reply(&c, 0) == -1)
		goto fail;
	if (c.code != 220) {
		refused(&c, "the connection");
		goto fail;
	}
	if ((r = conn_cmd(&c, 1, "EHLO %s", cfg->hostname)) == -1)
		goto fail;
	if (r != 250) {
		c.ext = 0;
		if ((r = conn_cmd(&c, 0, "HELO %s", cfg->hostname)) == -1)
			goto fail;
		if (r != 250) {
			refused(&c, "HELO");
			goto quit;
		}
	}
	dsn = o->notify[0] != '\0' || o->ret != NULL || o->envid != NULL ||
	    o->track;
	if (o->track && (c.ext & (HAS_MTRK | HAS_DSN)) !=
	    (HAS_MTRK | HAS_DSN)) {
		err("%s does not advertise %s: not submitting untracked mail",
		    dst->text, (c.ext & HAS_MTRK) ? "DSN (needed for ENVID)" :
		    "MTRK");
		goto quit;
	}
	if (dsn && !(c.ext & HAS_DSN)) {
		fprintf(stderr, "waymark: sendmail: warning: %s does not "
		    "advertise DSN; submitting without NOTIFY/RET/ENVID\n",
		    dst->text);
		dsn = 0;
	}
	if (o->track && !key_stored) {
		if (key_store(envid, secret, sizeof(secret)) == -1)
			goto quit;
		key_stored = 1;
	}

	/* RFC 6531 3.4: SMTPUTF8 when an address or the header needs it
	 * and the server offers it (else it refuses what needs it) */
	utf8 = (c.ext & HAS_SMTPUTF8) && (str_nonascii(from, strlen(from)) ||
	    str_nonascii(m.hdr.data, m.hdr.len));
	for (i = 0; i < rc.n && !utf8 && (c.ext & HAS_SMTPUTF8); i++)
		utf8 = str_nonascii(rc.v[i], strlen(rc.v[i]));
	r = snprintf(mailp, sizeof(mailp), "%s%s%s%s%s%s%s%s",
	    utf8 ? " SMTPUTF8" : "",
	    (m.eight_bit && (c.ext & HAS_8BIT)) ? " BODY=8BITMIME" : "",
	    dsn && o->ret ? " RET=" : "", dsn && o->ret ? o->ret : "",
	    dsn && envid[0] ? " ENVID=" : "", dsn && envid[0] ? xenvid : "",
	    o->track ? " MTRK=" : "", o->track ? cert : "");
	if (r < 0 || (size_t)r >= sizeof(mailp))
		goto quit;
	if ((r = conn_cmd(&c, 0, "MAIL FROM:<%s>%s", null_from ? "" : from,
	    mailp)) == -1)
		goto fail;
	if (r == 530 && dst != &cfg->listen[0] && cfg->nlisten > 0) {
		/*
		 * The submission listener requires AUTH, and a local sendmail
		 * has no credentials: use the first listen address instead,
		 * where local clients (relay_from) may submit.
		 */
		conn_cmd(&c, 0, "QUIT");
		close(c.fd);
		c.fd = -1;
		c.ext = 0;
		c.ilen = c.ioff = 0;
		dst = &cfg->listen[0];
		goto session;
	}
	if (r != 250) {
		refused(&c, "the sender");
		goto quit;
	}
	for (i = 0; i < rc.n; i++) {
		rcptp[0] = '\0';
		if (dsn) {
			/* RFC 6533 3: a UTF-8 address is an utf-8 ORCPT,
			 * raw under SMTPUTF8 ('+' '=' '\\' as \x{..}) */
			u8o = utf8 && str_nonascii(rc.v[i], strlen(rc.v[i]));
			if (u8o ? utf8_unitext(rc.v[i], xorcpt,
			    sizeof(xorcpt)) == -1 : xtext_encode(rc.v[i],
			    strlen(rc.v[i]), xorcpt, sizeof(xorcpt)) == -1)
				goto quit;
			r = snprintf(rcptp, sizeof(rcptp), "%s%s ORCPT=%s;%s",
			    o->notify[0] ? " NOTIFY=" : "", o->notify,
			    u8o ? "utf-8" : "rfc822", xorcpt);
			if (r < 0 || (size_t)r >= sizeof(rcptp))
				goto quit;
		}
		if ((r = conn_cmd(&c, 0, "RCPT TO:<%s>%s", rc.v[i],
		    rcptp)) == -1)
			goto fail;
		if (r != 250 && r != 251) {
			err("%s refused the recipient <%s>: %s", dst->text,
			    rc.v[i], c.text);
			goto quit;	/* all or nothing */
		}
	}
	if ((r = conn_cmd(&c, 0, "DATA")) == -1)
		goto fail;
	if (r != 354) {
		refused(&c, "DATA");
		goto quit;
	}
	if (send_data(&c, &m) == -1 || conn_reply(&c, 0) == -1)
		goto fail;
	if (c.code != 250) {
		refused(&c, "the message");
		goto quit;
	}
	rv = EX_WM_OK;
	if (o->track) {
		printf("%s\n", envid);
		if (cfg->http_public_url != NULL &&
		    print_track_link(cfg->http_public_url, envid, secret,
		    sizeof(secret)) == -1) {
			err("cannot make the tracking link");
			rv = EX_WM_FAIL;
		}
		if (fflush(stdout) == EOF || ferror(stdout)) {
			err("write error: %s", strerror(errno));
			rv = EX_WM_FAIL;
		}
	}
quit:
	conn_cmd(&c, 0, "QUIT");
	goto fail;
norand:
	err("no random bytes from OpenSSL");
	goto fail;
nomem:
	err("out of memory");
fail:
	if (c.fd != -1)
		close(c.fd);
	if (m.body != NULL)
		fclose(m.body);
	buf_free(&m.hdr);
	sendmail_rcpts_free(&rc);
	OPENSSL_cleanse(secret, sizeof(secret));
	return rv;
}

void
sendmail_usage(FILE *fp, int as_sendmail)
{
	fprintf(fp, "usage: %s [-f FROM] [-F NAME] [-t] [-i] [-N NOTIFY] "
	    "[-R RET] [-V ENVID] [--track] [RCPT...]\n",
	    as_sendmail ? "sendmail [-C FILE]" : "waymark [-f FILE] sendmail");
}
