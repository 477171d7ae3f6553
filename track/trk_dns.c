#include "config.h"
/*
 * trk_dns.c - name resolution for the MTQP client: one c-ares channel
 * per struct trk_client in the caller's libevent loop (one event per
 * c-ares socket, ARES_OPT_SOCK_STATE_CB, and one timer from
 * ares_timeout(), as delivery/dlv_dns.c does it; its `dns` server parser
 * is copied here so that delivery/ keeps its single channel).
 * Owns: servers from `dns` (else resolv.conf), no search list, the hosts
 *       file first only when asked (the CLI); SRV _mtqp._tcp.HOST in RFC
 *       2782 order (ascending priority, weighted random selection within
 *       one, a lone "." target = no service), else HOST on port 1038
 *       (RFC 3887 2.1); A/AAAA of each target by ares_getaddrinfo, IPv4
 *       first, at most MAX_ADDRS.
 * Entry points: trk_dns_* and the address helpers (track/trk_cint.h).
 * Invariants: every c-ares callback decrements q->pending and frees a
 *       query that was answered meanwhile (trk_q_maybe_free); under
 *       ARES_EDESTRUCTION (trk_client_free) it touches nothing.
 * Not here: connecting and everything after (trk_client.c).
 */

#include <sys/types.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <ares.h>
#include <event2/event.h>

#include "track/trk_cint.h"

#define DNS_TIMEOUT_MS	3000		/* per try */
#define DNS_TRIES	3

static void	dns_reschedule(struct trk_client *c);

/* ---------------------------------------------------------------- loop glue */

/* dns_io_cb - a c-ares socket is readable or writable */
static void
dns_io_cb(evutil_socket_t fd, short what, void *arg)
{
	struct trk_client	*c = arg;

	ares_process_fd(c->chan,
	    (what & EV_READ) ? (ares_socket_t)fd : ARES_SOCKET_BAD,
	    (what & EV_WRITE) ? (ares_socket_t)fd : ARES_SOCKET_BAD);
	dns_reschedule(c);
}

/* dns_timer_cb - c-ares timeouts and retransmissions */
static void
dns_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct trk_client	*c = arg;

	(void)fd;
	(void)what;
	ares_process_fd(c->chan, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
	dns_reschedule(c);
}

/* dns_reschedule - arm the timer for c-ares' next timeout */
static void
dns_reschedule(struct trk_client *c)
{
	struct timeval	 maxtv = { 60, 0 }, tv, *tvp;

	if (!c->chan_up || c->dns_timer == NULL)
		return;
	if (c->nlookups <= 0) {
		evtimer_del(c->dns_timer);
		return;
	}
	tvp = ares_timeout(c->chan, &maxtv, &tv);
	if (tvp == NULL)
		tvp = &maxtv;
	evtimer_add(c->dns_timer, tvp);
}

/* dns_sock_state_cb - c-ares opens, changes or closes a socket */
static void
dns_sock_state_cb(void *data, ares_socket_t fd, int readable, int writable)
{
	struct trk_client	*c = data;
	struct trk_sock		**pp, *s;
	short			  what;

	for (pp = &c->socks; *pp != NULL; pp = &(*pp)->next)
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
		if ((s = calloc(1, sizeof(*s))) == NULL)
			return;		/* c-ares times the query out */
		s->fd = fd;
		s->next = c->socks;
		c->socks = s;
	} else {
		event_free(s->ev);
		s->ev = NULL;
	}
	if ((s->ev = event_new(c->base, fd, what, dns_io_cb, c)) == NULL ||
	    event_add(s->ev, NULL) == -1) {
		if (s->ev != NULL)
			event_free(s->ev);
		for (pp = &c->socks; *pp != s; pp = &(*pp)->next)
			;
		*pp = s->next;
		free(s);
	}
}

/* dns_parse_server - "ADDR", "ADDR:PORT", "[v6]", "[v6]:PORT", bare v6
 * (the same syntax as delivery/dlv_dns.c's) */
static int
dns_parse_server(const char *s, struct ares_addr_port_node *n)
{
	char		 host[64];
	const char	*port = NULL, *end;
	size_t		 len;
	char		*ep;
	long		 p = 53;

	memset(n, 0, sizeof(*n));
	if (s[0] == '[') {
		if ((end = strchr(s, ']')) == NULL)
			return -1;
		len = (size_t)(end - s - 1);
		if (end[1] == ':')
			port = end + 2;
		else if (end[1] != '\0')
			return -1;
	} else if ((end = strchr(s, ':')) != NULL &&
	    strchr(end + 1, ':') == NULL) {
		len = (size_t)(end - s);
		port = end + 1;
	} else
		len = strlen(s);
	if (len == 0 || len >= sizeof(host))
		return -1;
	memcpy(host, s[0] == '[' ? s + 1 : s, len);
	host[len] = '\0';
	if (port != NULL) {
		errno = 0;
		p = strtol(port, &ep, 10);
		if (port[0] == '\0' || *ep != '\0' || errno != 0 || p < 1 ||
		    p > 65535)
			return -1;
	}
	if (inet_pton(AF_INET, host, &n->addr.addr4) == 1)
		n->family = AF_INET;
	else if (inet_pton(AF_INET6, host, &n->addr.addr6) == 1)
		n->family = AF_INET6;
	else
		return -1;
	n->udp_port = n->tcp_port = (int)p;
	return 0;
}

/* dns_set_servers - the `dns` servers on the channel; nothing when none */
static int
dns_set_servers(struct trk_client *c, char *const *dns, size_t ndns,
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
	rc = ares_set_servers_ports(c->chan, nodes);
	free(nodes);
	if (rc != ARES_SUCCESS) {
		snprintf(err, errlen, "dns: cannot set servers: %s",
		    ares_strerror(rc));
		return -1;
	}
	return 0;
}

/* ---------------------------------------------------------------- channel */

int
trk_dns_init(struct trk_client *c, const struct trk_client_opts *o,
    char *err, size_t errlen)
{
	struct ares_options	opts;
	char			lookups[3];
	int			rc, mask;

	if ((rc = ares_library_init(ARES_LIB_INIT_ALL)) != ARES_SUCCESS) {
		snprintf(err, errlen, "c-ares: %s", ares_strerror(rc));
		return -1;
	}
	memset(&opts, 0, sizeof(opts));
	opts.sock_state_cb = dns_sock_state_cb;
	opts.sock_state_cb_data = c;
	opts.timeout = DNS_TIMEOUT_MS;
	opts.tries = DNS_TRIES;
	opts.ndomains = 0;		/* no search list: names are FQDNs */
	opts.domains = NULL;
	snprintf(lookups, sizeof(lookups), "%s", o->hosts_file ? "fb" : "b");
	opts.lookups = lookups;
	mask = ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES |
	    ARES_OPT_DOMAINS | ARES_OPT_LOOKUPS;
	if ((rc = ares_init_options(&c->chan, &opts, mask)) != ARES_SUCCESS) {
		snprintf(err, errlen, "c-ares: %s", ares_strerror(rc));
		ares_library_cleanup();
		return -1;
	}
	c->chan_up = 1;
	if (dns_set_servers(c, o->dns, o->ndns, err, errlen) == -1)
		goto fail;
	if ((c->dns_timer = evtimer_new(c->base, dns_timer_cb, c)) == NULL) {
		snprintf(err, errlen, "dns: cannot create a timer");
		goto fail;
	}
	return 0;
fail:
	trk_dns_shutdown(c);
	return -1;
}

void
trk_dns_shutdown(struct trk_client *c)
{
	struct trk_sock	*s;

	if (c->chan_up) {
		/* callbacks see ARES_EDESTRUCTION and touch nothing */
		ares_destroy(c->chan);
		c->chan_up = 0;
		ares_library_cleanup();
	}
	while ((s = c->socks) != NULL) {
		c->socks = s->next;
		event_free(s->ev);
		free(s);
	}
	if (c->dns_timer != NULL)
		event_free(c->dns_timer);
	c->dns_timer = NULL;
}

void
trk_add_addr(struct trk_query *q, int family, const void *sa, unsigned port)
{
	struct sockaddr_storage	*ss;

	if (q->naddrs >= MAX_ADDRS)
		return;
	ss = &q->addrs[q->naddrs];
	memset(ss, 0, sizeof(*ss));
	if (family == AF_INET) {
		struct sockaddr_in *s4 = (void *)ss;

		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)port);
		memcpy(&s4->sin_addr, sa, sizeof(s4->sin_addr));
		q->alens[q->naddrs++] = sizeof(*s4);
	} else {
		struct sockaddr_in6 *s6 = (void *)ss;

		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)port);
		memcpy(&s6->sin6_addr, sa, sizeof(s6->sin6_addr));
		q->alens[q->naddrs++] = sizeof(*s6);
	}
}

int
trk_literal_addr(const char *h, unsigned char a[16], char *text,
    size_t textlen)
{
	size_t	len = strlen(h);

	if (len >= 2 && h[0] == '[' && h[len - 1] == ']') {
		h++;
		len -= 2;
		if (len >= 5 && strncasecmp(h, "IPv6:", 5) == 0) {
			h += 5;
			len -= 5;
		}
	}
	if (len == 0 || len >= textlen)
		return 0;
	memcpy(text, h, len);
	text[len] = '\0';
	if (inet_pton(AF_INET, text, a) == 1)
		return AF_INET;
	if (inet_pton(AF_INET6, text, a) == 1)
		return AF_INET6;
	return 0;
}

/* ---------------------------------------------------------------- DNS */

struct srv_rec {
	const struct ares_srv_reply	*r;
	unsigned			 used;
};

/* srv_cmp - by priority; weight 0 first within one (RFC 2782) */
static int
srv_cmp(const void *a, const void *b)
{
	const struct srv_rec	*x = a, *y = b;

	if (x->r->priority != y->r->priority)
		return x->r->priority < y->r->priority ? -1 : 1;
	if ((x->r->weight == 0) != (y->r->weight == 0))
		return x->r->weight == 0 ? -1 : 1;
	return 0;
}

/* srv_order - the targets in RFC 2782 order: ascending priority, within
 * one priority a weighted random selection, repeated */
static void
srv_order(struct trk_query *q, const struct ares_srv_reply *list)
{
	struct srv_rec			 v[MAX_TARGETS * 2];
	const struct ares_srv_reply	*r;
	size_t				 n = 0, i, j, k;
	unsigned long			 sum, pick, run;

	for (r = list; r != NULL && n < sizeof(v) / sizeof(v[0]); r = r->next) {
		v[n].r = r;
		v[n].used = 0;
		n++;
	}
	qsort(v, n, sizeof(v[0]), srv_cmp);
	for (i = 0; i < n; i = j) {
		for (j = i; j < n && v[j].r->priority == v[i].r->priority; j++)
			;
		/* j - i records of this priority */
		for (k = i; k < j; k++) {
			size_t	m, sel = j;

			sum = 0;
			for (m = i; m < j; m++)
				if (!v[m].used)
					sum += v[m].r->weight;
			pick = sum > 0 ? (unsigned long)arc4random_uniform(
			    (uint32_t)(sum + 1)) : 0;
			run = 0;
			for (m = i; m < j; m++) {
				if (v[m].used)
					continue;
				run += v[m].r->weight;
				if (run >= pick) {
					sel = m;
					break;
				}
			}
			if (sel == j)
				break;
			v[sel].used = 1;
			if (v[sel].r->host[0] == '\0' ||
			    strcmp(v[sel].r->host, ".") == 0)
				continue;	/* "no service" record */
			if (q->ntargets < MAX_TARGETS && snprintf(
			    q->targets[q->ntargets].name, HOST_MAX, "%s",
			    v[sel].r->host) < HOST_MAX) {
				q->targets[q->ntargets].port = v[sel].r->port;
				q->ntargets++;
			}
		}
	}
}

/* q_srv_cb - the SRV answer for _mtqp._tcp.HOST */
static void
q_srv_cb(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
	struct trk_query	*q = arg;
	struct ares_srv_reply	*srv = NULL;

	(void)timeouts;
	if (status == ARES_EDESTRUCTION)
		return;
	q->c->nlookups--;
	q->pending--;
	if (q->answered) {
		trk_q_maybe_free(q);
		return;
	}
	if (status == ARES_SUCCESS &&
	    ares_parse_srv_reply(abuf, alen, &srv) != ARES_SUCCESS)
		srv = NULL;
	if (srv != NULL) {
		/* RFC 2782: a single "." target: no such service */
		if (srv->next == NULL && (srv->host[0] == '\0' ||
		    strcmp(srv->host, ".") == 0)) {
			ares_free_data(srv);
			trk_q_finish(q, TRK_UNREACHABLE, 0, "%s has no MTQP service "
			    "(SRV _mtqp._tcp.%s is \".\")", q->host, q->host);
			return;
		}
		srv_order(q, srv);
		ares_free_data(srv);
	}
	if (q->ntargets == 0) {
		/* no SRV record (or an unusable answer): HOST, port 1038 */
		snprintf(q->targets[0].name, HOST_MAX, "%s", q->host);
		q->targets[0].port = TRK_MTQP_PORT;
		q->ntargets = 1;
	}
	q->tcur = 0;
	trk_dns_next_target(q);
}

/* q_addr_cb - the addresses of the current target */
static void
q_addr_cb(void *arg, int status, int timeouts, struct ares_addrinfo *res)
{
	struct trk_query		*q = arg;
	const struct ares_addrinfo_node	*n;
	struct target			*t;
	int				 pass;

	(void)timeouts;
	if (status == ARES_EDESTRUCTION) {
		if (res != NULL)
			ares_freeaddrinfo(res);
		return;
	}
	q->c->nlookups--;
	q->pending--;
	if (q->answered) {
		if (res != NULL)
			ares_freeaddrinfo(res);
		trk_q_maybe_free(q);
		return;
	}
	t = &q->targets[q->tcur];
	q->naddrs = q->acur = 0;
	if (status == ARES_SUCCESS && res != NULL) {
		for (pass = 0; pass < 2; pass++)	/* IPv4 first */
			for (n = res->nodes; n != NULL; n = n->ai_next) {
				if (pass == 0 && n->ai_family == AF_INET)
					trk_add_addr(q, AF_INET, &((const struct
					    sockaddr_in *)(const void *)
					    n->ai_addr)->sin_addr, t->port);
				else if (pass == 1 && n->ai_family == AF_INET6)
					trk_add_addr(q, AF_INET6, &((const struct
					    sockaddr_in6 *)(const void *)
					    n->ai_addr)->sin6_addr, t->port);
			}
	}
	if (res != NULL)
		ares_freeaddrinfo(res);
	if (q->naddrs == 0) {
		snprintf(q->lasterr, sizeof(q->lasterr), "%s: %s", t->name,
		    status == ARES_SUCCESS || status == ARES_ENODATA ?
		    "no address" : status == ARES_ENOTFOUND ?
		    "host not found" : ares_strerror(status));
		q->tcur++;
		trk_dns_next_target(q);
		return;
	}
	trk_q_try_connect(q);
}

void
trk_dns_next_target(struct trk_query *q)
{
	struct ares_addrinfo_hints	 hints;
	struct target			*t;
	unsigned char			 a[16];
	char				 text[HOST_MAX], port[8];
	int				 fam;

	if (q->tcur >= q->ntargets) {
		trk_q_finish(q, TRK_UNREACHABLE, 0, "%s", q->lasterr[0] ?
		    q->lasterr : "no address");
		return;
	}
	t = &q->targets[q->tcur];
	q->naddrs = q->acur = 0;
	if ((fam = trk_literal_addr(t->name, a, text, sizeof(text))) != 0) {
		trk_add_addr(q, fam, a, t->port);
		trk_q_try_connect(q);
		return;
	}
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = ARES_AI_NOSORT | ARES_AI_NUMERICSERV;
	snprintf(port, sizeof(port), "%u", t->port);
	q->state = Q_ADDR;
	q->pending++;
	q->c->nlookups++;
	/* may call back at once (hosts file, bad name) */
	ares_getaddrinfo(q->c->chan, t->name, port, &hints, q_addr_cb, q);
	dns_reschedule(q->c);
	if (q->has_deadline && !q->answered && q->state == Q_ADDR)
		trk_q_arm(q, 0);
}

void
trk_dns_srv(struct trk_query *q, const char *qname)
{
	q->state = Q_SRV;
	q->pending++;
	q->c->nlookups++;
	/* may call back at once (a bad name) */
	ares_query(q->c->chan, qname, ns_c_in, ns_t_srv, q_srv_cb, q);
	dns_reschedule(q->c);
	if (q->has_deadline && !q->answered && q->state == Q_SRV)
		trk_q_arm(q, 0);
}
