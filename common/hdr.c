#include "config.h"
/*
 * hdr.c - header-field writers shared by the report composers (hdr.h).
 * Owns: cleaning (controls as spaces, 8-bit as '?': the parts are 7bit),
 *       folding at spaces before FOLD_WIDTH with hard splits at
 *       LINE_LIMIT (RFC 5322 2.1.1 and 2.2.3), RFC 5322 date fields, the
 *       RFC 3463 status syntax check.
 */

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/hdr.h"
#include "common/util.h"

#define LINE_LIMIT	998		/* RFC 5322 2.1.1 */
#define FOLD_WIDTH	78

/* clean - copy s with CR, LF, TAB and other controls as spaces and
 * 8-bit octets as '?' (7bit parts); malloc'd or NULL */
static char *
clean(const char *s, int utf8)
{
	char	*o;
	size_t	 i, n = strlen(s), k;

	if ((o = malloc(n + 1)) == NULL)
		return NULL;
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		/* RFC 6533 parts: well-formed UTF-8 stays, C1 does not */
		if (c >= 0x80 && utf8 && (k = utf8_len((const unsigned char *)
		    s + i, n - i)) > 1 && !(c == 0xc2 &&
		    (unsigned char)s[i + 1] < 0xa0)) {
			memcpy(o + i, s + i, k);
			i += k - 1;
		} else if (c >= 0x80)
			o[i] = '?';
		else if (c < 0x20 || c == 0x7f)
			o[i] = ' ';
		else
			o[i] = (char)c;
	}
	o[n] = '\0';
	return o;
}

/*
 * put_folded - append the logical line text, folded at spaces before
 * FOLD_WIDTH columns (continuation lines start with cont), words longer
 * than a line split hard at LINE_LIMIT; runs of spaces become one.
 */
static int
folded(struct buf *b, const char *cont, const char *raw, int utf8)
{
	char	*text;
	size_t	 i = 0, len, wl, take, col = 0, clen = strlen(cont);
	int	 first = 1, rc = -1;

	if ((text = clean(raw, utf8)) == NULL)
		return -1;
	len = strlen(text);
	while (i < len) {
		while (i < len && text[i] == ' ')
			i++;
		if (i == len)
			break;
		wl = strcspn(text + i, " ");
		if (!first && col + 1 + wl > FOLD_WIDTH) {
			if (buf_puts(b, "\r\n") == -1 || buf_puts(b, cont) == -1)
				goto fail;
			col = clen;
			first = 1;
		}
		if (!first) {
			if (buf_puts(b, " ") == -1)
				goto fail;
			col++;
		}
		while (wl > 0) {
			take = LINE_LIMIT - col;
			if (take > wl)
				take = wl;
			if (buf_append(b, text + i, take) == -1)
				goto fail;
			col += take;
			i += take;
			wl -= take;
			if (wl > 0) {
				if (buf_puts(b, "\r\n") == -1 ||
				    buf_puts(b, cont) == -1)
					goto fail;
				col = clen;
			}
		}
		first = 0;
	}
	if (buf_puts(b, "\r\n") == -1)
		goto fail;
	rc = 0;
fail:
	free(text);
	return rc;
}

/* hdr_folded - 7-bit: 8-bit octets as '?' */
int
hdr_folded(struct buf *b, const char *cont, const char *raw)
{
	return folded(b, cont, raw, 0);
}

static int	vline(struct buf *, int, const char *, const char *, va_list)
		    WM_PRINTF(4, 0);

/* vline - printf a logical line, then fold it (utf8: keep UTF-8) */
static int
vline(struct buf *b, int utf8, const char *cont, const char *fmt, va_list ap)
{
	char	*s;
	int	 rc;

	if (vasprintf(&s, fmt, ap) < 0)
		return -1;
	rc = folded(b, cont, s, utf8);
	free(s);
	return rc;
}

/* hdr_line_u8 - hdr_line, keeping well-formed UTF-8 when utf8 is set */
int
hdr_line_u8(struct buf *b, int utf8, const char *cont, const char *fmt, ...)
{
	va_list	 ap;
	int	 rc;

	va_start(ap, fmt);
	rc = vline(b, utf8, cont, fmt, ap);
	va_end(ap);
	return rc;
}

/* hdr_line - printf a logical line and fold it */
int
hdr_line(struct buf *b, const char *cont, const char *fmt, ...)
{
	va_list	 ap;
	int	 rc;

	va_start(ap, fmt);
	rc = vline(b, 0, cont, fmt, ap);
	va_end(ap);
	return rc;
}

/* status_ok - "x.y.z" as RFC 3463 wants it (class 2, 4 or 5) */
int
enh_status_ok(const char *s)
{
	size_t	n;
	int	part;

	if ((s[0] != '2' && s[0] != '4' && s[0] != '5') || s[1] != '.')
		return 0;
	s += 2;
	for (part = 0; part < 2; part++) {
		for (n = 0; s[n] >= '0' && s[n] <= '9'; n++)
			;
		if (n < 1 || n > 3 || (n > 1 && s[0] == '0'))
			return 0;
		s += n;
		if (part == 0 && *s++ != '.')
			return 0;
	}
	return *s == '\0';
}

/* put_date_field - "Name: RFC 5322 date" */
int
hdr_date_field(struct buf *b, const char *name, time_t t)
{
	char	date[64];

	if (rfc5322_date(t, date, sizeof(date)) == -1)
		return -1;
	return buf_printf(b, "%s: %s\r\n", name, date);
}
