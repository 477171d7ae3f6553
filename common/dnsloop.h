/*
 * dnsloop.h - one c-ares channel driven by a libevent loop, shared by
 * remote delivery (delivery/dlv_dns.c, one channel for the daemon) and
 * the MTQP client (track/trk_dns.c, one per client): one event per
 * c-ares socket (ARES_OPT_SOCK_STATE_CB), one timer from ares_timeout()
 * while the owner has lookups in flight, and the servers of the `dns`
 * key.  The owner keeps its queries; this only turns the wheel.
 */
#ifndef WAYMARK_DNSLOOP_H
#define WAYMARK_DNSLOOP_H

#include <stddef.h>

#include <ares.h>

struct event_base;
struct event;
struct dnsloop_sock;

struct dnsloop {
	ares_channel		 chan;
	int			 up;		/* chan is initialised */
	struct event_base	*base;
	struct event		*timer;
	struct dnsloop_sock	*socks;
	int			(*busy)(void *); /* lookups in flight */
	void			*arg;
};

/*
 * dnsloop_init - a channel on base: 3 s per try, 3 tries, plus the
 * options of opts/optmask (opts may be NULL); busy(arg) says whether
 * the owner has lookups in flight (the timer runs only then).  0, or -1
 * with err set and d left down.
 */
int	dnsloop_init(struct dnsloop *d, struct event_base *base,
	    struct ares_options *opts, int optmask, int (*busy)(void *),
	    void *arg, char *err, size_t errlen);
/*
 * dnsloop_set_servers - the `dns` servers ("ADDR", "ADDR:PORT", "[v6]",
 * "[v6]:PORT", bare v6; port 53 by default) on the channel; nothing
 * when ndns is 0 (resolv.conf's stay).  0, or -1 with err set
 * ("dns: invalid server \"X\"", ...).
 */
int	dnsloop_set_servers(struct dnsloop *d, char *const *dns, size_t ndns,
	    char *err, size_t errlen);
/* dnsloop_reschedule - after starting lookups: arm or stop the timer */
void	dnsloop_reschedule(struct dnsloop *d);
/* dnsloop_shutdown - destroy the channel (query callbacks see
 * ARES_EDESTRUCTION), free the socket events and the timer */
void	dnsloop_shutdown(struct dnsloop *d);

#endif
