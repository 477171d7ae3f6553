#include "config.h"
/*
 * trk_parse.c - the parsers of the MTQP client: pure functions from
 * received text to structures, never writing into their input.
 * Owns: response indicators and response information (RFC 3887 2.3),
 *       greeting option lines (RFC 3887 3: STARTTLS [required]), the
 *       multipart/related answer to TRACK (RFC 2046 5.1 delimiters, RFC
 *       2387; the `type` parameter "message/tracking-status" as RFC 3886
 *       3 wants it or "tracking-status" as RFC 3887 4.1's examples write
 *       it), message/tracking-status parts (RFC 3886 3: per-message
 *       fields, per-recipient groups after blank lines; any field order,
 *       folded lines, unknown fields ignored), and Waymark's extension
 *       field X-Waymark-Handling-State: KW[/VALUE]; since=DATE;
 *       reason=TEXT (track/trk_status.c writes it).
 * Entry points: see track/trk_client.h.
 * Not here: the network (trk_client.c), dot-unstuffing (done while
 *       reading), following referrals (the callers), RFC 5322 dates
 *       (rfc5322_date_parse, common/date.c).
 * Lines may end with CRLF or a bare LF.  Each part's text is kept
 * unchanged (trk_part.raw) so that a chaining server can append it.
 */

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/syntax.h"
#include "track/trk_client.h"

#define FIELD_MAX	(64u * 1024)	/* one unfolded field */

static const char *const result_names[] = {
	[TRK_OK] = "ok", [TRK_NOINFO] = "noinfo",
	[TRK_UNREACHABLE] = "unreachable", [TRK_NOT_MTQP] = "not_mtqp",
	[TRK_TLS_FAILED] = "tls_failed", [TRK_ERROR] = "error"
};

const char *
trk_result_name(enum trk_result r)
{
	if ((unsigned)r >= sizeof(result_names) / sizeof(result_names[0]))
		return "error";
	return result_names[r];
}

/* set_why - a reason into why (may be NULL) */
static void
set_why(char *why, size_t whylen, const char *fmt, ...)
{
	va_list	ap;
	int	n;

	if (why == NULL || whylen == 0)
		return;
	va_start(ap, fmt);
	n = vsnprintf(why, whylen, fmt, ap);
	va_end(ap);
	if (n < 0)
		why[0] = '\0';
}

static int
is_wsp(char c)
{
	return c == ' ' || c == '\t';
}

/* ---------------------------------------------------------------- replies */

int
trk_reply_parse(const char *line, size_t len, enum trk_reply_kind *kind,
    const char **info, size_t *infolen)
{
	static const struct {
		const char		*text;
		enum trk_reply_kind	 kind;
	} ind[] = {		/* longest first: "+OK+" before "+OK" */
		{ "+OK+", TRK_R_OKPLUS }, { "+OK", TRK_R_OK },
		{ "-TEMP", TRK_R_TEMP }, { "-ERR", TRK_R_ERR },
		{ "-BAD", TRK_R_BAD },
	};
	size_t	i, n = 0, s;

	for (i = 0; i < sizeof(ind) / sizeof(ind[0]); i++) {
		n = strlen(ind[i].text);
		if (len >= n && strncasecmp(line, ind[i].text, n) == 0)
			break;
	}
	if (i == sizeof(ind) / sizeof(ind[0]))
		return -1;
	if (n < len && line[n] != '/' && !is_wsp(line[n]))
		return -1;		/* "+OKAY" */
	*kind = ind[i].kind;
	*info = line + n;
	*infolen = 0;
	if (n < len && line[n] == '/') {
		s = n + 1;
		for (n = s; n < len && !is_wsp(line[n]); n++)
			;
		*info = line + s;
		*infolen = n - s;
	}
	return 0;
}

int
trk_reply_has(const char *info, size_t infolen, const char *item)
{
	size_t	i = 0, j, il = strlen(item);

	while (i <= infolen) {
		for (j = i; j < infolen && info[j] != '/'; j++)
			;
		if (j - i == il && il > 0 && strncasecmp(info + i, item, il) == 0)
			return 1;
		i = j + 1;
	}
	return 0;
}

int
trk_option_starttls(const char *line, size_t len)
{
	size_t	i, s;
	int	r = 1;

	if (len == 0 || is_wsp(line[0]))
		return 0;		/* a continuation line */
	for (i = 0; i < len && !is_wsp(line[i]); i++)
		;
	if (i != 8 || strncasecmp(line, "STARTTLS", 8) != 0)
		return 0;
	while (i < len) {
		while (i < len && is_wsp(line[i]))
			i++;
		for (s = i; i < len && !is_wsp(line[i]); i++)
			;
		if (i - s == 8 && strncasecmp(line + s, "required", 8) == 0)
			r = 2;
	}
	return r;
}

/* ---------------------------------------------------------------- lines */

struct line {
	const char	*p;
	size_t		 len;		/* without the line end */
	size_t		 next;		/* offset after the line end */
};

/* next_line - the line at off in s (len); 0, or -1 at the end */
static int
next_line(const char *s, size_t len, size_t off, struct line *ln)
{
	const char	*nl;
	size_t		 e;

	if (off >= len)
		return -1;
	nl = memchr(s + off, '\n', len - off);
	e = nl != NULL ? (size_t)(nl - s) : len;
	ln->p = s + off;
	ln->next = nl != NULL ? e + 1 : len;
	if (e > off && s[e - 1] == '\r')
		e--;
	ln->len = e - off;
	return 0;
}

/* dup_trim - a NUL-terminated copy of s without surrounding WSP/CRLF */
static char *
dup_trim(const char *s, size_t len)
{
	char	*r;

	while (len > 0 && (is_wsp(*s) || *s == '\r' || *s == '\n')) {
		s++;
		len--;
	}
	while (len > 0 && (is_wsp(s[len - 1]) || s[len - 1] == '\r' ||
	    s[len - 1] == '\n'))
		len--;
	if ((r = malloc(len + 1)) == NULL)
		return NULL;
	memcpy(r, s, len);
	r[len] = '\0';
	return r;
}

/*
 * Header fields: one logical field per call, unfolded (the line ends
 * before continuation lines removed).  A block of fields ends at an
 * empty line or the end of the text.
 */
struct field {
	char	name[80];
	char	*value;			/* malloc'd, unfolded, trimmed */
};

/* field_name - f->name from a line: up to ':' without trailing WSP
 * (RFC 5322 4.5); "" when there is no ':' or the name is too long */
static void
field_name(const char *line, size_t len, struct field *f)
{
	size_t	n;

	for (n = 0; n < len && line[n] != ':'; n++)
		;
	if (n == len) {
		f->name[0] = '\0';
		return;
	}
	while (n > 0 && is_wsp(line[n - 1]))
		n--;
	if (n >= sizeof(f->name))
		n = 0;
	memcpy(f->name, line, n);
	f->name[n] = '\0';
}

/*
 * read_field - the field starting at *off: 1 and *off past it and its
 * continuation lines, f->value malloc'd, unfolded (the line ends before
 * continuation lines removed) and trimmed; a line without ':' gives 1
 * with f->value NULL.  0 at an empty line (*off past it) or the end; -1
 * on ENOMEM or a field over FIELD_MAX.
 */
static int
read_field(const char *s, size_t len, size_t *off, struct field *f)
{
	struct line	 ln;
	const char	*src;
	size_t		 colon, srclen, vlen = 0, b;
	char		*v;

	f->name[0] = '\0';
	f->value = NULL;
	if (next_line(s, len, *off, &ln) == -1)
		return 0;
	*off = ln.next;
	if (ln.len == 0)
		return 0;
	field_name(ln.p, ln.len, f);
	for (colon = 0; colon < ln.len && ln.p[colon] != ':'; colon++)
		;
	src = colon < ln.len ? ln.p + colon + 1 : ln.p + ln.len;
	srclen = colon < ln.len ? ln.len - colon - 1 : 0;
	/* the whole logical field first: its size */
	{
		size_t		 o = *off, total = srclen;
		struct line	 c;

		while (next_line(s, len, o, &c) == 0 && c.len > 0 &&
		    is_wsp(c.p[0])) {
			total += c.len;
			o = c.next;
			if (total > FIELD_MAX)
				return -1;
		}
		if ((v = malloc(total + 1)) == NULL)
			return -1;
	}
	memcpy(v, src, srclen);
	vlen = srclen;
	while (next_line(s, len, *off, &ln) == 0 && ln.len > 0 &&
	    is_wsp(ln.p[0])) {
		memcpy(v + vlen, ln.p, ln.len);
		vlen += ln.len;
		*off = ln.next;
	}
	v[vlen] = '\0';
	if (f->name[0] == '\0') {
		free(v);
		return 1;
	}
	for (b = 0; b < vlen && is_wsp(v[b]); b++)
		;
	while (vlen > b && is_wsp(v[vlen - 1]))
		vlen--;
	memmove(v, v + b, vlen - b);
	v[vlen - b] = '\0';
	f->value = v;
	return 1;
}

/* ---------------------------------------------------------------- values */

/* strip_comments - remove (comments) outside quotes, in place, trimmed */
static void
strip_comments(char *v)
{
	char	*w = v, *r = v;
	int	 depth = 0, q = 0;
	size_t	 n;

	for (; *r != '\0'; r++) {
		if (depth == 0 && *r == '"')
			q = !q;
		if (!q && *r == '(') {
			depth++;
			continue;
		}
		if (!q && depth > 0) {
			if (*r == '\\' && r[1] != '\0')
				r++;
			else if (*r == ')')
				depth--;
			continue;
		}
		*w++ = *r;
	}
	*w = '\0';
	n = strlen(v);
	while (n > 0 && is_wsp(v[n - 1]))
		v[--n] = '\0';
	for (n = 0; is_wsp(v[n]); n++)
		;
	memmove(v, v + n, strlen(v + n) + 1);
}

/* typed_value - "type; value" -> a copy of value (trimmed, one pair of
 * <> removed); with no ';' the whole text */
static char *
typed_value(const char *v, int comments)
{
	const char	*semi = strchr(v, ';');
	char		*r;
	size_t		 n;

	if ((r = dup_trim(semi != NULL ? semi + 1 : v,
	    strlen(semi != NULL ? semi + 1 : v))) == NULL)
		return NULL;
	if (comments)
		strip_comments(r);
	n = strlen(r);
	if (n >= 2 && r[0] == '<' && r[n - 1] == '>') {
		memmove(r, r + 1, n - 2);
		r[n - 2] = '\0';
	}
	return r;
}

/* set_str - replace *dst by a new string (first one wins: keep) */
static int
set_str(char **dst, char *s)
{
	if (s == NULL)
		return -1;
	if (*dst != NULL) {
		free(s);		/* a repeated field: the first counts */
		return 0;
	}
	*dst = s;
	return 0;
}

void
trk_handling_free(struct trk_handling *h)
{
	if (h == NULL)
		return;
	free(h->state);
	free(h->value);
	free(h->reason);
	memset(h, 0, sizeof(*h));
}

int
trk_handling_parse(const char *s, size_t len, struct trk_handling *h)
{
	size_t	 i = 0, st, e, sl;

	memset(h, 0, sizeof(*h));
	/* KW[/VALUE] up to the first ';' */
	while (i < len && is_wsp(s[i]))
		i++;
	for (st = i; i < len && s[i] != ';' && s[i] != '/'; i++)
		;
	for (e = i; e > st && is_wsp(s[e - 1]); e--)
		;
	if (e == st)
		return -1;
	if ((h->state = dup_trim(s + st, e - st)) == NULL)
		goto fail;
	if (i < len && s[i] == '/') {
		for (st = ++i; i < len && s[i] != ';'; i++)
			;
		if ((h->value = dup_trim(s + st, i - st)) == NULL)
			goto fail;
		if (h->value[0] == '\0') {
			free(h->value);
			h->value = NULL;
		}
	}
	/* parameters: since=DATE (no ';' in it); reason= takes the rest */
	while (i < len) {
		i++;			/* the ';' */
		while (i < len && (is_wsp(s[i]) || s[i] == '\r' ||
		    s[i] == '\n'))
			i++;
		if (len - i >= 7 && strncasecmp(s + i, "reason=", 7) == 0) {
			free(h->reason);
			if ((h->reason = dup_trim(s + i + 7, len - i - 7)) ==
			    NULL)
				goto fail;
			break;
		}
		for (st = i; i < len && s[i] != ';'; i++)
			;
		sl = i - st;
		if (sl >= 6 && strncasecmp(s + st, "since=", 6) == 0 &&
		    rfc5322_date_parse(s + st + 6, sl - 6, &h->since) == 0)
			h->has_since = 1;
	}
	if (h->reason == NULL && (h->reason = strdup("")) == NULL)
		goto fail;
	return 0;
fail:
	trk_handling_free(h);
	return -1;
}

/* rcpt_field - one field of a per-recipient group into r; 0 or -1 */
static int
rcpt_field(struct trk_rcpt *r, const struct field *f)
{
	const char	*v = f->value;
	char		*c;
	size_t		 n;

	if (strcasecmp(f->name, "Original-Recipient") == 0)
		return set_str(&r->orcpt, typed_value(v, 0));
	if (strcasecmp(f->name, "Final-Recipient") == 0)
		return set_str(&r->final, typed_value(v, 0));
	if (strcasecmp(f->name, "Action") == 0) {
		if ((c = strdup(v)) == NULL)
			return -1;
		strip_comments(c);
		for (n = 0; c[n] != '\0'; n++)
			c[n] = (char)tolower((unsigned char)c[n]);
		return set_str(&r->action, c);
	}
	if (strcasecmp(f->name, "Status") == 0) {
		if (r->status != NULL)
			return 0;
		n = strcspn(v, " \t(");
		if ((r->status = dup_trim(v, n)) == NULL)
			return -1;
		v += n;
		while (is_wsp(*v))
			v++;
		if (*v == '\0')
			return 0;
		n = strlen(v);
		if (v[0] == '(' && v[n - 1] == ')')
			return set_str(&r->status_comment, dup_trim(v + 1,
			    n - 2));
		return set_str(&r->status_comment, strdup(v));
	}
	if (strcasecmp(f->name, "Remote-MTA") == 0)
		return set_str(&r->remote_mta, typed_value(v, 1));
	if (strcasecmp(f->name, "Last-Attempt-Date") == 0) {
		if (!r->has_last_attempt && rfc5322_date_parse(v, strlen(v),
		    &r->last_attempt) == 0)
			r->has_last_attempt = 1;
		return 0;
	}
	if (strcasecmp(f->name, "Will-Retry-Until") == 0) {
		if (!r->has_retry_until && rfc5322_date_parse(v, strlen(v),
		    &r->retry_until) == 0)
			r->has_retry_until = 1;
		return 0;
	}
	if (strcasecmp(f->name, "Diagnostic-Code") == 0)
		return set_str(&r->diagnostic, strdup(v));
	if (strcasecmp(f->name, "X-Waymark-Handling-State") == 0) {
		if (r->handling != NULL)
			return 0;
		if ((r->handling = calloc(1, sizeof(*r->handling))) == NULL)
			return -1;
		if (trk_handling_parse(v, strlen(v), r->handling) == -1) {
			free(r->handling);	/* malformed: ignored */
			r->handling = NULL;
		}
		return 0;
	}
	return 0;			/* extension fields */
}

/* msg_field - one per-message field into p; 0 or -1 */
static int
msg_field(struct trk_part *p, const struct field *f)
{
	if (strcasecmp(f->name, "Original-Envelope-Id") == 0)
		return set_str(&p->envid, strdup(f->value));
	if (strcasecmp(f->name, "Reporting-MTA") == 0)
		return set_str(&p->reporting_mta, typed_value(f->value, 1));
	if (strcasecmp(f->name, "Arrival-Date") == 0) {
		if (!p->has_arrival && rfc5322_date_parse(f->value,
		    strlen(f->value), &p->arrival) == 0)
			p->has_arrival = 1;
		return 0;
	}
	return 0;
}

/* rcpt_free - the strings of r */
static void
rcpt_free(struct trk_rcpt *r)
{
	free(r->orcpt);
	free(r->final);
	free(r->action);
	free(r->status);
	free(r->status_comment);
	free(r->remote_mta);
	free(r->diagnostic);
	if (r->handling != NULL) {
		trk_handling_free(r->handling);
		free(r->handling);
	}
	memset(r, 0, sizeof(*r));
}

void
trk_part_free(struct trk_part *p)
{
	size_t	i;

	if (p == NULL)
		return;
	for (i = 0; i < p->nrcpts; i++)
		rcpt_free(&p->rcpts[i]);
	free(p->rcpts);
	free(p->raw);
	free(p->envid);
	free(p->reporting_mta);
	memset(p, 0, sizeof(*p));
}

void
trk_report_free(struct trk_report *r)
{
	size_t	i;

	if (r == NULL)
		return;
	for (i = 0; i < r->nparts; i++)
		trk_part_free(&r->parts[i]);
	free(r->parts);
	memset(r, 0, sizeof(*r));
}

/* add_rcpt - a new group at the end of p; NULL on ENOMEM */
static struct trk_rcpt *
add_rcpt(struct trk_part *p)
{
	struct trk_rcpt	*v;

	if ((v = realloc(p->rcpts, (p->nrcpts + 1) * sizeof(*v))) == NULL)
		return NULL;
	p->rcpts = v;
	memset(&v[p->nrcpts], 0, sizeof(*v));
	return &v[p->nrcpts++];
}

int
trk_status_parse(const char *s, size_t len, struct trk_part *p, char *why,
    size_t whylen)
{
	struct field	 f;
	struct trk_rcpt	*r = NULL;
	size_t		 off = 0;
	int		 block = 0, infields = 0, got = 0, rc;

	for (;;) {
		if ((rc = read_field(s, len, &off, &f)) == -1) {
			set_why(why, whylen, "a field too long or out of "
			    "memory");
			return -1;
		}
		if (rc == 0) {		/* an empty line or the end */
			if (infields) {
				block++;
				infields = 0;
				r = NULL;
			}
			if (off >= len)
				break;
			continue;
		}
		if (f.value == NULL)
			continue;	/* not a field: ignored */
		infields = 1;
		if (block == 0) {
			rc = msg_field(p, &f);
			got = 1;
		} else {
			if (r == NULL && (r = add_rcpt(p)) == NULL)
				rc = -1;
			else
				rc = rcpt_field(r, &f);
		}
		free(f.value);
		if (rc == -1) {
			set_why(why, whylen, "out of memory");
			return -1;
		}
	}
	if (!got) {
		set_why(why, whylen, "no per-message fields");
		return -1;
	}
	return 0;
}

/* ---------------------------------------------------------------- MIME */

/*
 * content_type - parse a Content-Type value: type/subtype (lower-cased
 * into mt) and the boundary and type parameters (token or quoted-string);
 * 0 or -1.
 */
static int
content_type(const char *v, char *mt, size_t mtlen, char *bnd, size_t bndlen,
    char *typ, size_t typlen)
{
	size_t	i = 0, s, n, pn;
	char	name[32], *dst;
	size_t	dstlen, o;

	mt[0] = bnd[0] = typ[0] = '\0';
	while (is_wsp(v[i]))
		i++;
	for (s = i; v[i] != '\0' && v[i] != ';' && !is_wsp(v[i]) &&
	    v[i] != '('; i++)
		;
	if ((n = i - s) == 0 || n >= mtlen)
		return -1;
	for (o = 0; o < n; o++)
		mt[o] = (char)tolower((unsigned char)v[s + o]);
	mt[n] = '\0';
	while (v[i] != '\0') {
		while (v[i] != '\0' && v[i] != ';')
			i++;
		if (v[i] == '\0')
			break;
		i++;
		while (is_wsp(v[i]))
			i++;
		for (s = i; v[i] != '\0' && v[i] != '=' && v[i] != ';' &&
		    !is_wsp(v[i]); i++)
			;
		pn = i - s;
		while (is_wsp(v[i]))
			i++;
		if (v[i] != '=')
			continue;
		i++;
		while (is_wsp(v[i]))
			i++;
		if (pn < sizeof(name)) {
			memcpy(name, v + s, pn);
			name[pn] = '\0';
		} else
			name[0] = '\0';
		dst = NULL;
		dstlen = 0;
		if (strcasecmp(name, "boundary") == 0) {
			dst = bnd;
			dstlen = bndlen;
		} else if (strcasecmp(name, "type") == 0) {
			dst = typ;
			dstlen = typlen;
		}
		o = 0;
		if (v[i] == '"') {
			for (i++; v[i] != '\0' && v[i] != '"'; i++) {
				if (v[i] == '\\' && v[i + 1] != '\0')
					i++;
				if (dst != NULL && o + 1 < dstlen)
					dst[o++] = v[i];
				else if (dst != NULL)
					return -1;
			}
			if (v[i] == '"')
				i++;
		} else {
			for (; v[i] != '\0' && v[i] != ';' && !is_wsp(v[i]);
			    i++) {
				if (dst != NULL && o + 1 < dstlen)
					dst[o++] = v[i];
				else if (dst != NULL)
					return -1;
			}
		}
		if (dst != NULL)
			dst[o] = '\0';
	}
	return 0;
}

/* header_ctype - the Content-Type of the header block at *off (*off
 * past the empty line after it); 1 found, 0 none, -1 error */
static int
header_ctype(const char *s, size_t len, size_t *off, char *mt, size_t mtlen,
    char *bnd, size_t bndlen, char *typ, size_t typlen)
{
	struct field	f;
	int		found = 0, rc;

	mt[0] = bnd[0] = typ[0] = '\0';
	while ((rc = read_field(s, len, off, &f)) == 1) {
		if (f.value != NULL && !found &&
		    strcasecmp(f.name, "Content-Type") == 0) {
			if (content_type(f.value, mt, mtlen, bnd, bndlen, typ,
			    typlen) == 0)
				found = 1;
		}
		free(f.value);
	}
	return rc == -1 ? -1 : found;
}

/* is_delim - the line is "--" boundary ["--"] [WSP]; 1 part, 2 close, 0 */
static int
is_delim(const struct line *ln, const char *bnd, size_t bl)
{
	size_t	i;
	int	r = 1;

	if (ln->len < bl + 2 || ln->p[0] != '-' || ln->p[1] != '-' ||
	    memcmp(ln->p + 2, bnd, bl) != 0)
		return 0;
	i = bl + 2;
	if (ln->len >= i + 2 && ln->p[i] == '-' && ln->p[i + 1] == '-') {
		r = 2;
		i += 2;
	}
	for (; i < ln->len; i++)
		if (!is_wsp(ln->p[i]))
			return 0;
	return r;
}

/* add_part - parse the body part s[0..len) into a new part of r, when it
 * is message/tracking-status; 0 or -1 */
static int
add_part(struct trk_report *r, const char *s, size_t len, char *why,
    size_t whylen)
{
	struct trk_part	*v, *p;
	char		 mt[128], bnd[128], typ[128];
	size_t		 off = 0;
	int		 rc;

	if (len > 0 && (s[0] == '\n' || (s[0] == '\r' && len > 1 &&
	    s[1] == '\n')))
		return 0;		/* no header: text/plain */
	if ((rc = header_ctype(s, len, &off, mt, sizeof(mt), bnd, sizeof(bnd),
	    typ, sizeof(typ))) == -1) {
		set_why(why, whylen, "a part header too long");
		return -1;
	}
	if (rc == 0 || strcmp(mt, "message/tracking-status") != 0)
		return 0;		/* another type: skipped */
	if ((v = realloc(r->parts, (r->nparts + 1) * sizeof(*v))) == NULL)
		goto nomem;
	r->parts = v;
	p = &v[r->nparts++];
	memset(p, 0, sizeof(*p));
	if ((p->raw = malloc(len + 1)) == NULL)
		goto nomem;
	memcpy(p->raw, s, len);
	p->raw[len] = '\0';
	p->rawlen = len;
	return trk_status_parse(s + off, len - off, p, why, whylen);
nomem:
	set_why(why, whylen, "out of memory");
	return -1;
}

int
trk_report_parse(const char *body, size_t len, struct trk_report *r,
    char *why, size_t whylen)
{
	char		 mt[128], bnd[128], typ[128];
	struct line	 ln;
	size_t		 off = 0, bl, pstart = 0, pend;
	int		 rc, d, inpart = 0, closed = 0;

	memset(r, 0, sizeof(*r));
	if (body == NULL) {
		set_why(why, whylen, "no body");
		return -1;
	}
	/* leading empty lines (RFC 3887 4.1 example 14) */
	while (next_line(body, len, off, &ln) == 0 && ln.len == 0)
		off = ln.next;
	if ((rc = header_ctype(body, len, &off, mt, sizeof(mt), bnd,
	    sizeof(bnd), typ, sizeof(typ))) != 1) {
		set_why(why, whylen, rc == -1 ? "a header field too long" :
		    "no Content-Type");
		return -1;
	}
	if (strncmp(mt, "multipart/", 10) != 0) {
		set_why(why, whylen, "Content-Type %s is not multipart/related",
		    mt);
		return -1;
	}
	if ((bl = strlen(bnd)) == 0) {
		set_why(why, whylen, "no boundary parameter");
		return -1;
	}
	/* RFC 2046 5.1.1: the CRLF before a delimiter belongs to it */
	while (!closed && next_line(body, len, off, &ln) == 0) {
		if ((d = is_delim(&ln, bnd, bl)) != 0) {
			if (inpart) {
				pend = (size_t)(ln.p - body);
				if (pend > pstart && body[pend - 1] == '\n')
					pend--;
				if (pend > pstart && body[pend - 1] == '\r')
					pend--;
				if (add_part(r, body + pstart, pend - pstart,
				    why, whylen) == -1)
					return -1;
			}
			inpart = d == 1;
			closed = d == 2;
			pstart = ln.next;
		}
		off = ln.next;
	}
	if (inpart && add_part(r, body + pstart, len - pstart, why,
	    whylen) == -1)		/* no close delimiter: tolerated */
		return -1;
	if (r->nparts == 0) {
		set_why(why, whylen, "no message/tracking-status part");
		return -1;
	}
	return 0;
}
