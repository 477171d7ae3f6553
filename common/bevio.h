/*
 * bevio.h - bufferevent helpers that the line-based servers' sessions
 * (SMTP in smtpd/smtpd_session.c, MTQP in track/trk_server.c) share:
 * whether a session's replies are all sent before it closes (through a
 * TLS filter too), running its read callback again from the loop, and
 * writing at once (the SMTP client in delivery/dlv_smtp.c too).
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
/*
 * bev_mem_init - libevent allocates through malloc, even for its calloc
 * (it zeroes the block itself): call it first, before any libevent
 * call.  bev_read_limit relies on it.
 */
void	bev_mem_init(void);
/*
 * bev_read_limit - bufferevent_setwatermark(bev, EV_READ, 0, hiwat),
 * or -1 when memory is short.  libevent 2.1 does not check the
 * allocation that setting a high watermark makes (and crashes when it
 * fails), so a block of that size is taken and given back first: it
 * stays in this thread's malloc cache for libevent to take.
 */
int	bev_read_limit(struct bufferevent *bev, size_t hiwat);
/*
 * bev_write_now - what bev's output holds, written to its socket now in
 * one write instead of through its write event (epoll_ctl to add it, a
 * turn of the loop, epoll_ctl to remove it).  bev is a socket
 * bufferevent (never a TLS filter).  The write event is then enabled
 * for what the write left behind (a full socket buffer, an error:
 * libevent writes it and reports errors as before), else disabled.
 */
void	bev_write_now(struct bufferevent *bev);

#endif
