#include "config.h"
/*
 * bevio.c - bufferevent helpers shared by the SMTP and MTQP server
 * sessions (bevio.h): the flush check before a close (a TLS filter's
 * write callback covers only its own buffer, so the socket's is polled)
 * and the deferred re-run of the read callback after the server's turn.
 * Not here: the sessions' states, callbacks, timers and logs (each
 * server keeps its own; the SMTP input loop is not touched).
 */

#include <stddef.h>

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
