/*
 * bevio.h - bufferevent helpers that the line-based servers' sessions
 * (SMTP in smtpd/smtpd_session.c, MTQP in track/trk_server.c) share:
 * whether a session's replies are all sent before it closes (through a
 * TLS filter too), and running its read callback again from the loop.
 */
#ifndef WAYMARK_BEVIO_H
#define WAYMARK_BEVIO_H

struct bufferevent;
struct event;

/*
 * bev_flushed - 1 when all that was written to bev (and, for a filter,
 * to the bufferevent under it) is handed to the kernel.  Else 0, and
 * when bev's own buffer is already empty (its write callback will not
 * come for the one under it) poll (may be NULL) is armed to fire in
 * 50 ms to ask again.
 */
int	bev_flushed(struct bufferevent *bev, struct event *poll);
/*
 * bev_read_again - the server's turn is over: when input is buffered
 * (held meanwhile) or the peer has closed (eof), run bev's read callback
 * again, deferred to the loop, whatever the read watermark.
 */
void	bev_read_again(struct bufferevent *bev, int eof);

#endif
