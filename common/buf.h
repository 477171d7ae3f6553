/*
 * buf.h - the one growable byte buffer with a hard maximum.
 * Appends fail (return -1) at the maximum or on ENOMEM; they never truncate.
 * data is always NUL-terminated, but len is what counts.
 */
#ifndef WAYMARK_BUF_H
#define WAYMARK_BUF_H

#include <stddef.h>
#include "log.h"

struct buf {
	char	*data;	/* NULL until the first append */
	size_t	 len;
	size_t	 cap;
	size_t	 max;	/* hard maximum of len */
};

void	buf_init(struct buf *b, size_t max);
int	buf_append(struct buf *b, const void *p, size_t n);
int	buf_puts(struct buf *b, const char *s);
int	buf_printf(struct buf *b, const char *fmt, ...) WM_PRINTF(2, 3);
void	buf_reset(struct buf *b);		/* len = 0, keeps memory */
void	buf_free(struct buf *b);		/* releases memory */
/* buf_steal - hand the NUL-terminated data to the caller (malloc'd; "" when empty) */
char	*buf_steal(struct buf *b);

#endif
