#include "config.h"
/*
 * buf.c - the growable byte buffer with a hard maximum (buf.h).
 * Owns: growth (capacity doubles, capped at max + 1 for the NUL),
 *       failure without side effects: an append that would pass max, or
 *       that cannot get memory, returns -1 and leaves len and data as they
 *       were.  Nothing is ever truncated.
 * Invariant: data == NULL or data[len] == '\0'.
 */

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"

void
buf_init(struct buf *b, size_t max)
{
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
	b->max = max;
}

/* buf_reserve - make room for n more bytes plus the NUL */
static int
buf_reserve(struct buf *b, size_t n)
{
	size_t	 want, ncap;
	char	*p;

	if (n > b->max || b->len > b->max - n) {
		errno = ENOBUFS;
		return -1;
	}
	want = b->len + n + 1;
	if (want <= b->cap)
		return 0;
	ncap = b->cap ? b->cap : 64;
	while (ncap < want) {
		if (ncap > (b->max + 1) / 2) {
			ncap = b->max + 1;
			break;
		}
		ncap *= 2;
	}
	if (ncap > b->max + 1)
		ncap = b->max + 1;
	if (ncap < want)
		ncap = want;
	if ((p = realloc(b->data, ncap)) == NULL)
		return -1;
	b->data = p;
	b->cap = ncap;
	return 0;
}

int
buf_append(struct buf *b, const void *p, size_t n)
{
	if (buf_reserve(b, n) == -1)
		return -1;
	if (n > 0)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
	return 0;
}

int
buf_puts(struct buf *b, const char *s)
{
	return buf_append(b, s, strlen(s));
}

int
buf_printf(struct buf *b, const char *fmt, ...)
{
	va_list	ap;
	int	n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return -1;
	if (buf_reserve(b, (size_t)n) == -1)
		return -1;
	va_start(ap, fmt);
	n = vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= b->cap - b->len) {
		b->data[b->len] = '\0';
		return -1;
	}
	b->len += (size_t)n;
	return 0;
}

void
buf_reset(struct buf *b)
{
	b->len = 0;
	if (b->data != NULL)
		b->data[0] = '\0';
}

void
buf_free(struct buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
}

/* buf_steal - hand the data to the caller; the buffer is left empty */
char *
buf_steal(struct buf *b)
{
	char	*p;

	if (b->data == NULL)
		return strdup("");
	p = b->data;
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
	return p;
}
