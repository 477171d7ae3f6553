/*
 * hdr.h - writing RFC 5322 header fields (and the fields of RFC 3464 /
 * RFC 3886 report parts) into a struct buf: cleaned to printable 7-bit,
 * folded at spaces before column 78, never a line over 998 octets, CRLF.
 * Used by the DSN composer (delivery/dlv_notice.c) and the
 * message/tracking-status composer (track/trk_status.c).
 */
#ifndef WAYMARK_HDR_H
#define WAYMARK_HDR_H

#include <time.h>
#include "common/buf.h"

/* hdr_folded - the logical line raw, controls as spaces, 8-bit as '?',
 * folded (continuation lines start with cont); 0 or -1 */
int	hdr_folded(struct buf *b, const char *cont, const char *raw);
/* hdr_line - printf a logical line, then hdr_folded */
int	hdr_line(struct buf *b, const char *cont, const char *fmt, ...)
	    WM_PRINTF(3, 4);
/* hdr_line_u8 - hdr_line; with utf8 set, well-formed UTF-8 other than
 * C1 controls is kept (RFC 6533 message/global-delivery-status, 8bit) */
int	hdr_line_u8(struct buf *b, int utf8, const char *cont,
	    const char *fmt, ...) WM_PRINTF(4, 5);
/* hdr_date_field - "Name: RFC 5322 date" CRLF */
int	hdr_date_field(struct buf *b, const char *name, time_t t);
/* enh_status_ok - 1 when s is "x.y.z" as RFC 3463 wants it (class 2, 4, 5) */
int	enh_status_ok(const char *s);

#endif
