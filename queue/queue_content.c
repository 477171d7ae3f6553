#include "config.h"
/*
 * queue_content.c - a message's content as the policy rules see it: a
 * prefix of its body file (the header section plus body_scan octets of
 * body), read once and only when asked for, and three views of it made
 * on first use: the header fields (unfolded values), the body with LF
 * line ends (also lower-cased, for the regex prefilter), and the file
 * names of its MIME parts.
 * Owns: reading body/QID (the spool is the working directory); the
 *       header-section rule (it ends at the empty line or at the first
 *       line that is neither a field nor a continuation); the MIME walk
 *       (boundaries of nested multiparts, message/rfc822 parts, at most
 *       MIME_DEPTH levels) and the parameter decoding of file names.
 * Not here: the rules and their matching (queue_policy.c).
 * Limits: MIME_NAMES_MAX names per message; parts whose header section
 *       lies past the scanned prefix are not seen.
 * Standards: RFC 5322 2.2 (fields, unfolding); RFC 2045 5.1 (parameters);
 *       RFC 2046 5.1.1 (boundaries); RFC 2183 (filename); RFC 2231
 *       (continuations, charsets, %-encoding); RFC 2047 (encoded words).
 */

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "queue/queue_int.h"

#define READ_FIRST		16384	/* first read: body_scan + this */
#define MIME_DEPTH		32	/* nested multiparts / message/rfc822 */
#define MIME_NAMES_MAX		256	/* attachment names kept per message */
#define MIME_BOUNDARY_MAX	200	/* RFC 2046 says 70; be lenient */

struct span {
	const char	*p;
	size_t		 n;
};

/* one message's content; each part filled on first use */
struct content {
	const struct qmsg	*m;
	uint64_t		 body_scan;
	int			 loaded;	/* 1 prefix read, -1 failed */
	int			 err;		/* errno of the failure */
	char			*buf;		/* the prefix, NUL after */
	size_t			 len;
	size_t			 hdr_end;	/* header section [0, hdr_end) */
	size_t			 end;		/* scanned part [0, end) */
	int			 fields_done;
	struct content_field	*fields;
	size_t			 nfields;
	char			*unfolded;	/* the fields' values */
	int			 body_done;
	char			*body;		/* LF line ends, NUL-terminated */
	size_t			 bodylen;
	char			*lower;		/* body, lower-cased */
	int			 names_done;
	char			*names;		/* attachment names, NUL-ended */
	size_t			 names_len, names_cap;
	const char		*namev[MIME_NAMES_MAX];
	size_t			 nnames;
};

static int
is_wsp(int c)
{
	return c == ' ' || c == '\t';
}

/* line_end - [pos, *cend) is the line's text, returns the next line's start */
static size_t
line_end(const char *b, size_t pos, size_t end, size_t *cend)
{
	const char	*nl = memchr(b + pos, '\n', end - pos);
	size_t		 e = nl != NULL ? (size_t)(nl - b) : end;

	*cend = (e > pos && b[e - 1] == '\r') ? e - 1 : e;
	return nl != NULL ? e + 1 : end;
}

/* field_line - does the line start a field ("Name:" or "Name :")?
 * returns the offset just after the colon, or 0 */
static size_t
field_line(const char *l, size_t n)
{
	size_t	i = 0;

	while (i < n && (unsigned char)l[i] > 32 && (unsigned char)l[i] < 127 &&
	    l[i] != ':')
		i++;
	if (i == 0)
		return 0;
	while (i < n && is_wsp(l[i]))
		i++;
	return i < n && l[i] == ':' ? i + 1 : 0;
}

/*
 * header_end - where the header section at the start of b ends: after
 * its empty line, or at the first line that is neither a field nor a
 * continuation.  1 with *off set, or 0 when more data is needed
 * (eof = b holds the whole message).
 */
static int
header_end(const char *b, size_t len, int eof, size_t *off)
{
	size_t	pos = 0, next, ce;

	while (pos < len) {
		if (memchr(b + pos, '\n', len - pos) == NULL && !eof)
			return 0;
		next = line_end(b, pos, len, &ce);
		if (ce == pos) {		/* the empty line */
			*off = next;
			return 1;
		}
		if (!(pos > 0 && is_wsp(b[pos])) &&
		    field_line(b + pos, ce - pos) == 0) {
			*off = pos;		/* the body has begun */
			return 1;
		}
		pos = next;
	}
	if (!eof)
		return 0;
	*off = len;
	return 1;
}

/*
 * field_next - the field at *pos in [.., end) of a header section:
 * name, raw value (up to the end of its last continuation line, line
 * ends included); *pos moves past it.  0 at the end of the section
 * (*pos left on the empty or non-field line).
 */
static int
field_next(const char *b, size_t end, size_t *pos, struct span *name,
    struct span *val)
{
	size_t	next, ce, colon, i;

	if (*pos >= end)
		return 0;
	next = line_end(b, *pos, end, &ce);
	if (ce == *pos || is_wsp(b[*pos]) ||
	    (colon = field_line(b + *pos, ce - *pos)) == 0)
		return 0;
	name->p = b + *pos;
	for (i = 0; i < colon - 1 && !is_wsp(name->p[i]); i++)
		;
	name->n = i;
	val->p = b + *pos + colon;
	while (next < end && is_wsp(b[next]))
		next = line_end(b, next, end, &ce);
	val->n = (size_t)(b + next - val->p);
	*pos = next;
	return 1;
}

static int
span_is(struct span s, const char *word)
{
	return s.n == strlen(word) && strncasecmp(s.p, word, s.n) == 0;
}

/* content_load - read the prefix of the body file: the header section plus
 * body_scan octets of body (or the whole file when smaller) */
static int
content_load(struct content *c)
{
	char		 path[64];
	uint64_t	 size = c->m->size;
	size_t		 want, got = 0, need, hend = 0;
	ssize_t		 r;
	char		*nb;
	int		 fd, saved;

	c->loaded = -1;
	if (snprintf(path, sizeof(path), "body/%s", c->m->qid) >=
	    (int)sizeof(path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	want = size < c->body_scan + READ_FIRST ? (size_t)size :
	    (size_t)(c->body_scan + READ_FIRST);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return -1;
	for (;;) {
		if ((nb = realloc(c->buf, want + 1)) == NULL)
			goto fail;
		c->buf = nb;
		while (got < want) {
			r = pread(fd, c->buf + got, want - got, (off_t)got);
			if (r == -1 && errno == EINTR)
				continue;
			if (r == -1)
				goto fail;
			if (r == 0)
				break;
			got += (size_t)r;
		}
		if (got < want)			/* shorter than recorded */
			size = got;
		if (header_end(c->buf, got, got >= size, &hend)) {
			need = size < hend + c->body_scan ? (size_t)size :
			    (size_t)(hend + c->body_scan);
			if (need <= got)
				break;
			want = need;
		} else
			want = size < (uint64_t)want * 2 ? (size_t)size :
			    want * 2;
	}
	close(fd);
	c->buf[got] = '\0';
	c->len = got;
	c->hdr_end = hend;
	c->end = got < hend + c->body_scan ? got :
	    (size_t)(hend + c->body_scan);
	c->loaded = 1;
	return 0;
fail:
	saved = errno;
	close(fd);
	errno = saved;
	return -1;
}

/* content_index - index the header section: names and unfolded values */
static int
content_index(struct content *c)
{
	struct span		 name, val;
	struct content_field	*f;
	size_t			 pos = 0, i, cap = 0, off = 0, start;

	if ((c->unfolded = malloc(c->hdr_end + 1)) == NULL)
		return -1;
	while (field_next(c->buf, c->hdr_end, &pos, &name, &val)) {
		if (c->nfields == cap) {
			cap = cap ? cap * 2 : 32;
			if ((f = reallocarray(c->fields, cap,
			    sizeof(*f))) == NULL)
				return -1;
			c->fields = f;
		}
		/* unfold (drop the line ends), trim white space */
		start = off;
		for (i = 0; i < val.n; i++)
			if (val.p[i] != '\r' && val.p[i] != '\n')
				c->unfolded[off++] = val.p[i];
		while (off > start && is_wsp(c->unfolded[off - 1]))
			off--;
		while (start < off && is_wsp(c->unfolded[start]))
			start++;
		c->unfolded[off++] = '\0';
		f = &c->fields[c->nfields++];
		f->name = name.p;
		f->namelen = name.n;
		f->value = c->unfolded + start;
		f->vlen = off - 1 - start;
	}
	c->fields_done = 1;
	return 0;
}

/* content_lf - the scanned body with LF line ends (for ^ and $) */
static int
content_lf(struct content *c)
{
	size_t	i, n = 0;

	if ((c->body = malloc(c->end - c->hdr_end + 1)) == NULL)
		return -1;
	for (i = c->hdr_end; i < c->end; i++)
		if (!(c->buf[i] == '\r' && i + 1 < c->end &&
		    c->buf[i + 1] == '\n'))
			c->body[n++] = c->buf[i];
	c->body[n] = '\0';
	c->bodylen = n;
	c->body_done = 1;
	return 0;
}

/* ---- attachment names (RFC 2045/2046/2183/2231/2047) ---- */

struct mime_info {			/* from one header section */
	int		multipart;
	int		rfc822;
	struct span	boundary;
};

static int
hexval(int ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

static int
b64val(int ch)
{
	if (ch >= 'A' && ch <= 'Z')
		return ch - 'A';
	if (ch >= 'a' && ch <= 'z')
		return ch - 'a' + 26;
	if (ch >= '0' && ch <= '9')
		return ch - '0' + 52;
	if (ch == '+')
		return 62;
	if (ch == '/')
		return 63;
	return -1;
}

/* ew_one - decode the RFC 2047 encoded word at s (=?cs?B|Q?text?=)
 * into w (at most cap octets); its length in s, or 0 if it is not one */
static size_t
ew_one(const char *s, char *w, size_t cap, size_t *wn)
{
	const char	*q, *t, *e;
	unsigned	 acc = 0;
	int		 bits = 0, v, enc;
	size_t		 n = 0;

	if (s[0] != '=' || s[1] != '?' || (q = strchr(s + 2, '?')) == NULL ||
	    q == s + 2)
		return 0;
	enc = q[1] == 'B' || q[1] == 'b' ? 'B' :
	    q[1] == 'Q' || q[1] == 'q' ? 'Q' : 0;
	if (enc == 0 || q[2] != '?')
		return 0;
	t = q + 3;
	if ((e = strstr(t, "?=")) == NULL)
		return 0;
	for (; t < e; t++) {
		if (n == cap)
			return 0;
		if (enc == 'B') {
			if (*t == '=')
				break;
			if ((v = b64val((unsigned char)*t)) < 0)
				return 0;
			acc = ((acc << 6) | (unsigned)v) & 0xffffff;
			if ((bits += 6) >= 8) {
				bits -= 8;
				w[n++] = (char)((acc >> bits) & 0xff);
			}
		} else if (*t == '_')
			w[n++] = ' ';
		else if (*t == '=' && t + 2 < e &&
		    hexval((unsigned char)t[1]) >= 0 &&
		    hexval((unsigned char)t[2]) >= 0) {
			w[n++] = (char)(hexval((unsigned char)t[1]) * 16 +
			    hexval((unsigned char)t[2]));
			t += 2;
		} else
			w[n++] = *t;
	}
	*wn = n;
	return (size_t)(e + 2 - s);
}

/* ew_decode - RFC 2047 encoded words in a file name, in place (a word
 * decodes shorter than it is written); white space between two encoded
 * words is dropped */
static void
ew_decode(char *s)
{
	char	*r = s, *w = s, *gap = NULL;
	size_t	 used, wn;
	char	 tmp[256];

	if (strstr(s, "=?") == NULL)
		return;
	while (*r != '\0') {
		if (r[0] == '=' && r[1] == '?' &&
		    (used = ew_one(r, tmp, sizeof(tmp), &wn)) > 0) {
			if (gap != NULL)
				w = gap;	/* between two words */
			memmove(w, tmp, wn);
			w += wn;
			r += used;
			gap = w;
			continue;
		}
		if (!is_wsp(*r))
			gap = NULL;
		*w++ = *r++;
	}
	*w = '\0';
}

/* name_put - append octets to the name being built (bounded) */
static void
name_put(struct content *c, const char *p, size_t n)
{
	if (c->names_len + 1 >= c->names_cap)
		return;
	if (n > c->names_cap - c->names_len - 1)
		n = c->names_cap - c->names_len - 1;
	memcpy(c->names + c->names_len, p, n);
	c->names_len += n;
}

/* name_finish - end the name begun at start; keep it if non-empty */
static void
name_finish(struct content *c, size_t start)
{
	if (c->names_len == start || c->nnames == MIME_NAMES_MAX ||
	    c->names_len >= c->names_cap) {
		c->names_len = start;
		return;
	}
	c->names[c->names_len++] = '\0';
	ew_decode(c->names + start);
	c->namev[c->nnames++] = c->names + start;
}

/* name_value - a parameter value into the current name: quoted-string
 * unquoted (folding dropped), RFC 2231 extended values %-decoded after
 * the charset'language' prefix of the first section */
static void
name_value(struct content *c, struct span v, int quoted, int extended,
    int first)
{
	const char	*p = v.p, *e = v.p + v.n, *q;
	char		 ch;

	if (extended && first &&
	    (q = memchr(p, '\'', (size_t)(e - p))) != NULL &&
	    (q = memchr(q + 1, '\'', (size_t)(e - q - 1))) != NULL)
		p = q + 1;
	for (; p < e; p++) {
		if (*p == '\r' || *p == '\n')
			continue;
		ch = *p;
		if (quoted && ch == '\\' && p + 1 < e)
			ch = *++p;
		else if (extended && ch == '%' && p + 2 < e &&
		    hexval((unsigned char)p[1]) >= 0 &&
		    hexval((unsigned char)p[2]) >= 0) {
			ch = (char)(hexval((unsigned char)p[1]) * 16 +
			    hexval((unsigned char)p[2]));
			p += 2;
		}
		name_put(c, &ch, 1);
	}
}

static int
is_pws(int ch)
{
	return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n';
}

/* param_next - the next "; attr=value" of a MIME field value at *pp
 * (line ends count as white space); 0 at the end */
static int
param_next(const char **pp, const char *e, struct span *attr,
    struct span *v, int *quoted)
{
	const char	*p = *pp;

	for (;;) {
		while (p < e && *p != ';')
			p++;
		if (p >= e) {
			*pp = p;
			return 0;
		}
		for (p++; p < e && is_pws(*p); p++)
			;
		for (attr->p = p; p < e && *p != '=' && *p != ';' &&
		    !is_pws(*p); p++)
			;
		attr->n = (size_t)(p - attr->p);
		while (p < e && is_pws(*p))
			p++;
		if (p < e && *p == '=')
			break;
	}
	for (p++; p < e && is_pws(*p); p++)
		;
	*quoted = p < e && *p == '"';
	if (*quoted) {
		for (v->p = ++p; p < e && *p != '"'; p++)
			if (*p == '\\' && p + 1 < e)
				p++;
		v->n = (size_t)(p - v->p);
		if (p < e)
			p++;
	} else {
		for (v->p = p; p < e && *p != ';' && !is_pws(*p); p++)
			;
		v->n = (size_t)(p - v->p);
	}
	*pp = p;
	return 1;
}

/*
 * mime_params - a Content-Type (ct = 1) or Content-Disposition value:
 * the type (multipart/..., message/rfc822), the boundary, and the file
 * name parameters into the name list: name= / filename= and the RFC
 * 2231 name*= each as one name, then the name*N / name*N* sections
 * joined in the order written as one more.
 */
static void
mime_params(struct content *c, struct span val, int ct, struct mime_info *mi)
{
	const char	*p = val.p, *e = val.p + val.n, *s, *after;
	const char	*want = ct ? "name" : "filename";
	struct span	 attr, v;
	size_t		 wl = strlen(want), start;
	int		 quoted, pass, ext, first;

	while (p < e && is_pws(*p))
		p++;
	for (s = p; p < e && *p != ';' && !is_pws(*p); p++)
		;
	if (ct && (size_t)(p - s) >= 10 &&
	    strncasecmp(s, "multipart/", 10) == 0)
		mi->multipart = 1;
	if (ct && (size_t)(p - s) == 14 &&
	    strncasecmp(s, "message/rfc822", 14) == 0)
		mi->rfc822 = 1;
	after = p;
	for (pass = 0; pass < 2; pass++) {
		start = c->names_len;
		for (p = after; param_next(&p, e, &attr, &v, &quoted);) {
			if (ct && pass == 0 && span_is(attr, "boundary")) {
				if (v.n > 0 && v.n <= MIME_BOUNDARY_MAX)
					mi->boundary = v;
				continue;
			}
			if (attr.n < wl || strncasecmp(attr.p, want, wl) != 0)
				continue;
			if (pass == 0 && attr.n == wl) {	/* name= */
				name_value(c, v, quoted, 0, 0);
				name_finish(c, start);
				start = c->names_len;
			} else if (pass == 0 && attr.n == wl + 1 &&
			    attr.p[wl] == '*') {		/* name*= */
				name_value(c, v, quoted, 1, 1);
				name_finish(c, start);
				start = c->names_len;
			} else if (pass == 1 && attr.n > wl + 1 &&
			    attr.p[wl] == '*' && attr.p[wl + 1] >= '0' &&
			    attr.p[wl + 1] <= '9') {		/* name*N[*]= */
				ext = attr.p[attr.n - 1] == '*';
				first = attr.p[wl + 1] == '0' &&
				    (attr.n == wl + 2 || attr.p[wl + 2] == '*');
				name_value(c, v, quoted, ext, first);
			}
		}
		if (pass == 1)
			name_finish(c, start);
	}
}

/* mime_section - the header section at *pos (up to end): the MIME
 * fields into mi and the name list; *pos moves past its empty line */
static void
mime_section(struct content *c, size_t *pos, size_t end, struct mime_info *mi)
{
	struct span	name, val;
	size_t		ce, next;

	memset(mi, 0, sizeof(*mi));
	while (field_next(c->buf, end, pos, &name, &val)) {
		if (span_is(name, "Content-Type"))
			mime_params(c, val, 1, mi);
		else if (span_is(name, "Content-Disposition"))
			mime_params(c, val, 0, mi);
	}
	if (*pos < end) {
		next = line_end(c->buf, *pos, end, &ce);
		if (ce == *pos)
			*pos = next;
	}
}

/* mime_enter - after a section: push a multipart boundary; for
 * message/rfc822 the encapsulated message's header section follows */
static void
mime_enter(struct content *c, size_t *pos, struct mime_info *mi,
    struct span *stack, size_t *depth)
{
	unsigned	nest = 0;

	while (mi->rfc822 && !mi->multipart && nest++ < MIME_DEPTH &&
	    *pos < c->end)
		mime_section(c, pos, c->end, mi);
	if (mi->multipart && mi->boundary.n > 0 && *depth < MIME_DEPTH)
		stack[(*depth)++] = mi->boundary;
}

/* boundary_line - is [l, l+n) "--B" (1) or "--B--" (2), with optional
 * trailing white space? 0 otherwise */
static int
boundary_line(const char *l, size_t n, struct span b)
{
	size_t	i;
	int	close = 0;

	if (n < 2 + b.n || l[0] != '-' || l[1] != '-' ||
	    memcmp(l + 2, b.p, b.n) != 0)
		return 0;
	i = 2 + b.n;
	if (n - i >= 2 && l[i] == '-' && l[i + 1] == '-') {
		close = 1;
		i += 2;
	}
	for (; i < n; i++)
		if (!is_wsp(l[i]))
			return 0;
	return close ? 2 : 1;
}

/* content_walk - walk the MIME structure of the scanned part and list the
 * file names of its parts (the message itself included) */
static int
content_walk(struct content *c)
{
	struct span		stack[MIME_DEPTH];
	struct mime_info	mi;
	size_t			depth = 0, pos = 0, next, ce, i;
	int			b;

	c->names_cap = c->end + MIME_NAMES_MAX + 1;
	if ((c->names = malloc(c->names_cap)) == NULL)
		return -1;
	mime_section(c, &pos, c->hdr_end, &mi);
	pos = c->hdr_end;
	mime_enter(c, &pos, &mi, stack, &depth);
	while (pos < c->end) {
		next = line_end(c->buf, pos, c->end, &ce);
		b = 0;
		if (depth > 0 && ce - pos >= 2 && c->buf[pos] == '-' &&
		    c->buf[pos + 1] == '-') {
			for (i = depth; i-- > 0;)
				if ((b = boundary_line(c->buf + pos, ce - pos,
				    stack[i])) != 0)
					break;
		}
		pos = next;
		if (b == 2)
			depth = i;		/* that multipart is closed */
		else if (b == 1) {
			depth = i + 1;		/* a part of it begins */
			mime_section(c, &pos, c->end, &mi);
			mime_enter(c, &pos, &mi, stack, &depth);
		}
	}
	c->names_done = 1;
	return 0;
}

/* content_new - nothing is read yet */
struct content *
content_new(const struct qmsg *m, uint64_t body_scan)
{
	struct content	*c;

	if ((c = calloc(1, sizeof(*c))) == NULL)
		return NULL;
	c->m = m;
	c->body_scan = body_scan;
	return c;
}

void
content_free(struct content *c)
{
	if (c == NULL)
		return;
	free(c->buf);
	free(c->fields);
	free(c->unfolded);
	free(c->body);
	free(c->lower);
	free(c->names);
	free(c);
}

/* content_ready - the prefix read (once; a failure stays one) */
static int
content_ready(struct content *c)
{
	if (c->loaded == 0 && content_load(c) == -1) {
		c->err = errno;
		return -1;
	}
	if (c->loaded != 1) {
		errno = c->err;
		return -1;
	}
	return 0;
}

/* content_fields - the header fields, in order */
int
content_fields(struct content *c, const struct content_field **f, size_t *n)
{
	if (content_ready(c) == -1)
		return -1;
	if (!c->fields_done && content_index(c) == -1)
		return -1;
	*f = c->fields;
	*n = c->nfields;
	return 0;
}

/* content_body - the scanned body, LF line ends, NUL after */
int
content_body(struct content *c, const char **body, size_t *len)
{
	if (content_ready(c) == -1)
		return -1;
	if (!c->body_done && content_lf(c) == -1)
		return -1;
	*body = c->body;
	*len = c->bodylen;
	return 0;
}

/* content_body_lower - the scanned body, LF line ends, lower-cased */
int
content_body_lower(struct content *c, const char **body, size_t *len)
{
	size_t	i;

	if (c->lower == NULL) {
		if (content_body(c, body, len) == -1)
			return -1;
		if ((c->lower = malloc(c->bodylen + 1)) == NULL)
			return -1;
		for (i = 0; i <= c->bodylen; i++)
			c->lower[i] = (char)tolower((unsigned char)c->body[i]);
	}
	*body = c->lower;
	*len = c->bodylen;
	return 0;
}

/* content_names - the file names of the MIME parts */
int
content_names(struct content *c, const char *const **names, size_t *n)
{
	if (content_ready(c) == -1)
		return -1;
	if (!c->names_done && content_walk(c) == -1)
		return -1;
	*names = c->namev;
	*n = c->nnames;
	return 0;
}
