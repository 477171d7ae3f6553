#include "config.h"
/*
 * dnsloop.c - a c-ares channel in a libevent loop (dnsloop.h), shared by
 * remote delivery (delivery/dlv_dns.c) and the MTQP client
 * (track/trk_dns.c).
 * Owns: ares_library_init/_cleanup around each channel, the channel's
 *       options (3 s per try, 3 tries, the caller's extras), one
 *       persistent event per c-ares socket (ARES_OPT_SOCK_STATE_CB),
 *       the timer from ares_timeout() (armed only while the owner's
 *       busy() says lookups are in flight), and the `dns` servers.
 * Not here: the queries and what their answers mean (the owners).
 * Invariants: the I/O and timer callbacks process the channel and then
 *       rearm the timer; after dnsloop_shutdown nothing of d is left
 *       but zeroes, and shutting down twice is harmless.
 */

#include <sys/types.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ares.h>
#include <event2/event.h>

#include "common/dnsloop.h"
#include "common/log.h"
#include "common/util.h"

#define DNS_TIMEOUT_MS	3000	/* per try */
#define DNS_TRIES	3

struct dnsloop_sock {
	struct dnsloop_sock	*next;
	ares_socket_t		 fd;
	struct event		*ev;
};

/* dns_io_cb - a c-ares socket is readable or writable */
static void
dns_io_cb(evutil_socket_t fd, short what, void *arg)
{
	struct dnsloop	*d = arg;

	ares_process_fd(d->chan,
	    (what & EV_READ) ? (ares_socket_t)fd : ARES_SOCKET_BAD,
	    (what & EV_WRITE) ? (ares_socket_t)fd : ARES_SOCKET_BAD);
	dnsloop_reschedule(d);
}

/* dns_timer_cb - c-ares timeouts and retransmissions */
static void
dns_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct dnsloop	*d = arg;

	(void)fd;
	(void)what;
	ares_process_fd(d->chan, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
	dnsloop_reschedule(d);
}

void
dnsloop_reschedule(struct dnsloop *d)
{
	struct timeval	 maxtv = { 60, 0 }, tv, *tvp;

	if (!d->up || d->timer == NULL)
		return;
	if (!d->busy(d->arg)) {
		evtimer_del(d->timer);
		return;
	}
	tvp = ares_timeout(d->chan, &maxtv, &tv);
	if (tvp == NULL)
		tvp = &maxtv;
	evtimer_add(d->timer, tvp);
}

/* dns_sock_state_cb - c-ares opens, changes or closes a socket */
static void
dns_sock_state_cb(void *data, ares_socket_t fd, int readable, int writable)
{
	struct dnsloop		 *d = data;
	struct dnsloop_sock	**pp, *s;
	short			  what;

	for (pp = &d->socks; *pp != NULL; pp = &(*pp)->next)
		if ((*pp)->fd == fd)
			break;
	s = *pp;
	if (!readable && !writable) {
		if (s != NULL) {
			*pp = s->next;
			event_free(s->ev);
			free(s);
		}
		return;
	}
	what = (short)(EV_PERSIST | (readable ? EV_READ : 0) |
	    (writable ? EV_WRITE : 0));
	if (s == NULL) {
		if ((s = calloc(1, sizeof(*s))) == NULL) {
			log_warn("dns: socket event");
			return;		/* c-ares times the query out */
		}
		s->fd = fd;
		s->next = d->socks;
		d->socks = s;
	} else {
		event_free(s->ev);
		s->ev = NULL;
	}
	if ((s->ev = event_new(d->base, fd, what, dns_io_cb, d)) == NULL ||
	    event_add(s->ev, NULL) == -1) {
		log_warnx("dns: cannot watch c-ares socket %d", (int)fd);
		if (s->ev != NULL)
			event_free(s->ev);
		for (pp = &d->socks; *pp != s; pp = &(*pp)->next)
			;
		*pp = s->next;
		free(s);
	}
}

int
dnsloop_init(struct dnsloop *d, struct event_base *base,
    struct ares_options *opts, int optmask, int (*busy)(void *), void *arg,
    char *err, size_t errlen)
{
	struct ares_options	o;
	int			rc;

	memset(d, 0, sizeof(*d));
	if ((rc = ares_library_init(ARES_LIB_INIT_ALL)) != ARES_SUCCESS) {
		snprintf(err, errlen, "c-ares: %s", ares_strerror(rc));
		return -1;
	}
	if (opts != NULL)
		o = *opts;
	else
		memset(&o, 0, sizeof(o));
	o.sock_state_cb = dns_sock_state_cb;
	o.sock_state_cb_data = d;
	o.timeout = DNS_TIMEOUT_MS;
	o.tries = DNS_TRIES;
	optmask |= ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS |
	    ARES_OPT_TRIES;
	if ((rc = ares_init_options(&d->chan, &o, optmask)) != ARES_SUCCESS) {
		snprintf(err, errlen, "c-ares: %s", ares_strerror(rc));
		ares_library_cleanup();
		return -1;
	}
	d->up = 1;
	d->base = base;
	d->busy = busy;
	d->arg = arg;
	if ((d->timer = evtimer_new(base, dns_timer_cb, d)) == NULL) {
		snprintf(err, errlen, "dns: cannot create a timer");
		dnsloop_shutdown(d);
		return -1;
	}
	return 0;
}

void
dnsloop_shutdown(struct dnsloop *d)
{
	struct dnsloop_sock	*s;
	int			 up = d->up;

	if (up)		/* query callbacks see ARES_EDESTRUCTION */
		ares_destroy(d->chan);
	while ((s = d->socks) != NULL) {
		d->socks = s->next;
		event_free(s->ev);
		free(s);
	}
	if (d->timer != NULL)
		event_free(d->timer);
	memset(d, 0, sizeof(*d));
	if (up)
		ares_library_cleanup();
}

/* dns_parse_server - "ADDR", "ADDR:PORT", "[v6]", "[v6]:PORT", bare v6 */
static int
dns_parse_server(const char *s, struct ares_addr_port_node *n)
{
	char		host[64];
	unsigned	port = 53;
	int		bracketed;

	memset(n, 0, sizeof(*n));
	if (host_port_split(s, host, sizeof(host), &bracketed, &port) == -1)
		return -1;
	if (inet_pton(AF_INET, host, &n->addr.addr4) == 1)
		n->family = AF_INET;
	else if (inet_pton(AF_INET6, host, &n->addr.addr6) == 1)
		n->family = AF_INET6;
	else
		return -1;
	n->udp_port = n->tcp_port = (int)port;
	return 0;
}

int
dnsloop_set_servers(struct dnsloop *d, char *const *dns, size_t ndns,
    char *err, size_t errlen)
{
	struct ares_addr_port_node	*nodes;
	size_t				 i;
	int				 rc;

	if (ndns == 0)
		return 0;
	if ((nodes = calloc(ndns, sizeof(*nodes))) == NULL) {
		snprintf(err, errlen, "dns: out of memory");
		return -1;
	}
	for (i = 0; i < ndns; i++) {
		if (dns_parse_server(dns[i], &nodes[i]) == -1) {
			snprintf(err, errlen, "dns: invalid server \"%s\"",
			    dns[i]);
			free(nodes);
			return -1;
		}
		nodes[i].next = i + 1 < ndns ? &nodes[i + 1] : NULL;
	}
	rc = ares_set_servers_ports(d->chan, nodes);
	free(nodes);
	if (rc != ARES_SUCCESS) {
		snprintf(err, errlen, "dns: cannot set servers: %s",
		    ares_strerror(rc));
		return -1;
	}
	return 0;
}
