#include "config.h"
/*
 * bevio.c - bufferevent helpers shared by the SMTP and MTQP server
 * sessions (bevio.h): the flush check before a close (a TLS filter's
 * write callback covers only its own buffer, so the socket's is polled)
 * and the deferred re-run of the read callback after the server's turn;
 * a read limit that survives a failed allocation (bev_read_limit).
 * Not here: the sessions' states, callbacks, timers and logs (each
 * server keeps its own; the SMTP input loop is not touched).
 */

#include <stddef.h>
#include <stdlib.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "common/bevio.h"

/* bev_flushed - every octet handed to the kernel; else poll if needed */
int
bev_flushed(struct bufferevent *bev, struct event *poll)
{
	struct timeval		 tv = { 0, 50000 };
	struct bufferevent	*u;
	size_t			 own, n;

	n = own = evbuffer_get_length(bufferevent_get_output(bev));
	if ((u = bufferevent_get_underlying(bev)) != NULL)
		n += evbuffer_get_length(bufferevent_get_output(u));
	if (n == 0)
		return 1;
	/* the write timeout bounds the wait */
	if (own == 0 && poll != NULL)
		evtimer_add(poll, &tv);
	return 0;
}

/* bev_read_again - the read callback once more, from the loop */
void
bev_read_again(struct bufferevent *bev, int eof)
{
	if (evbuffer_get_length(bufferevent_get_input(bev)) > 0 || eof)
		bufferevent_trigger(bev, EV_READ,
		    BEV_TRIG_IGNORE_WATERMARKS | BEV_TRIG_DEFER_CALLBACKS);
}

/* bev_malloc & co - the allocator libevent uses (bev_mem_init) */
static void *
bev_malloc(size_t n)
{
	return malloc(n);
}

static void *
bev_realloc(void *p, size_t n)
{
	return realloc(p, n);
}

static void
bev_free(void *p)
{
	free(p);
}

void
bev_mem_init(void)
{
	event_set_mem_functions(bev_malloc, bev_realloc, bev_free);
}

/* the callback entry bufferevent_setwatermark allocates (libevent 2.1:
 * two list pointers, the callback, its argument, flags) */
#define BEV_CB_ENTRY_SIZE	(4 * sizeof(void *) + sizeof(unsigned))

int
bev_read_limit(struct bufferevent *bev, size_t hiwat)
{
	void	*probe;

	if ((probe = malloc(BEV_CB_ENTRY_SIZE)) == NULL)
		return -1;
	free(probe);		/* the next malloc of this size gets it */
	bufferevent_setwatermark(bev, EV_READ, 0, hiwat);
	return 0;
}

void
bev_write_now(struct bufferevent *bev)
{
	struct evbuffer	*out = bufferevent_get_output(bev);

	if (evbuffer_get_length(out) > 0) {
		/* libevent freezes the start of a socket bufferevent's
		 * output (while connecting) and thaws it around its own
		 * writes: the same here; only writes take data off its
		 * front */
		evbuffer_unfreeze(out, 1);
		(void)evbuffer_write(out, bufferevent_getfd(bev));
		evbuffer_freeze(out, 1);
	}
	if (evbuffer_get_length(out) > 0)
		bufferevent_enable(bev, EV_WRITE);
	else
		bufferevent_disable(bev, EV_WRITE);
}
