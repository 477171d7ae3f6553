#include "config.h"
/*
 * trk_client.c - the MTQP client (RFC 3887): one TRACK query per
 * struct trk_query, on the caller's libevent loop, never blocking.
 * Owns: a c-ares channel per struct trk_client (servers from `dns`, else
 *       resolv.conf; one libevent event per c-ares socket and one timer,
 *       as delivery/dlv_dns.c does it, whose server parser is copied here
 *       so that delivery/ keeps its single channel), the client SSL_CTX,
 *       and every query in flight: SRV _mtqp._tcp.HOST in RFC 2782 order
 *       (priority, then weighted random), else A/AAAA of HOST on port 1038
 *       (RFC 3887 2.1; IPv4 first); connect (30 s per address, next one on
 *       failure); the greeting (+OK/MTQP, or +OK+/MTQP and its option
 *       lines up to "."); STARTTLS HOST when offered, TLS 1.2 or later,
 *       verified against the CA file or the system CAs and the name asked
 *       unless verification is off, then the fresh greeting (RFC 3887 6);
 *       TRACK envid-as-xtext secret (RFC 3887 4); the multi-line answer
 *       dot-unstuffed (2.3), lines of at most TRK_LINE_MAX octets, at most
 *       TRK_ANSWER_MAX in all; QUIT (7), whose reply is awaited after the
 *       caller has its answer.
 * Invariants: TRACK is never sent in clear to a server that offered
 *       STARTTLS (required or not): a refused STARTTLS, a failed handshake
 *       or data pipelined behind the STARTTLS reply end the query as
 *       TRK_TLS_FAILED.  The callback runs exactly once, from the loop
 *       (an event made active), never inside trk_query_start, and never
 *       after trk_query_cancel or trk_client_free.  Each response waits
 *       at most response_timeout (>= 2 minutes, RFC 3887 2.4), bounded
 *       by the query's own deadline.
 * Not here: the parsers (trk_parse.c), following referrals (callers).
 */

#include <sys/types.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <ares.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/util.h>

#include "common/buf.h"
#include "common/log.h"
#include "common/syntax.h"
#include "track/trk_client.h"

#define DNS_TIMEOUT_MS	3000		/* per try */
#define DNS_TRIES	3
#define MAX_TARGETS	16		/* SRV records used */
#define MAX_ADDRS	16		/* addresses per target */
#define QUIT_LINGER	5		/* s to wait for the QUIT reply */
#define HOST_MAX	256
#define SECRET_MAX	512		/* base64 of A */

struct trk_sock {
	struct trk_sock	*next;
	ares_socket_t	 fd;
	struct event	*ev;
};

struct trk_client {
	struct event_base	*base;
	ares_channel		 chan;
	int			 chan_up;
	struct event		*dns_timer;
	struct trk_sock		*socks;
	int			 nlookups;	/* c-ares queries in flight */
	SSL_CTX			*ssl;
	int			 verify;
	int			 connect_to, response_to;
	struct trk_query	*queries;
};

enum qstate {
	Q_SRV,		/* waiting for the SRV answer */
	Q_ADDR,		/* waiting for A/AAAA of a target */
	Q_CONNECT,	/* TCP connect in progress */
	Q_GREETING,	/* the greeting's first line */
	Q_OPTIONS,	/* the option lines of a +OK+ greeting */
	Q_STARTTLS,	/* the reply to STARTTLS */
	Q_TLS,		/* the handshake */
	Q_TRACK,	/* the reply to TRACK */
	Q_DATA,		/* the data lines of +OK+ */
	Q_QUIT,		/* answered; the reply to QUIT */
	Q_DONE		/* nothing in progress */
};

struct target {
	char		name[HOST_MAX];
	unsigned	port;
};

struct trk_query {
	struct trk_query	*next, **prevp;
	struct trk_client	*c;
	trk_answer_fn		 cb;
	void			*arg;
	enum qstate		 state;
	char			 host[HOST_MAX];	/* the name asked */
	char			 tlsname[HOST_MAX];	/* STARTTLS, TLS name */
	int			 literal;	/* tlsname is an address */
	unsigned		 port;		/* 0: SRV */
	char			*track;		/* "TRACK x s\r\n" */
	struct timeval		 deadline;
	int			 has_deadline;
	int			 pending;	/* c-ares callbacks to come */
	struct target		 targets[MAX_TARGETS];
	size_t			 ntargets, tcur;
	struct sockaddr_storage	 addrs[MAX_ADDRS];
	socklen_t		 alens[MAX_ADDRS];
	size_t			 naddrs, acur;
	struct bufferevent	*bev;
	struct event		*tmo;
	struct event		*done_ev;
	int			 tls;
	int			 starttls;	/* offered: 1, required: 2 */
	int			 answered;	/* result set */
	int			 dead;		/* delivered or cancelled */
	enum trk_result		 result;
	char			 server[80];
	char			 error[512];
	char			 lasterr[256];	/* last DNS/connect failure */
	struct buf		 body;
};

static void	dns_reschedule(struct trk_client *c);
static void	q_finish(struct trk_query *q, enum trk_result r, int quit,
		    const char *fmt, ...) WM_PRINTF(4, 5);
static void	q_next_target(struct trk_query *q);
static void	q_try_connect(struct trk_query *q);
static void	q_maybe_free(struct trk_query *q);
static void	q_read_cb(struct bufferevent *bev, void *arg);
static void	q_event_cb(struct bufferevent *bev, short what, void *arg);

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

/* ---------------------------------------------------------------- client */

/* ssl_ctx_new - the TLS client context: TLS >= 1.2, the CAs */
static SSL_CTX *
ssl_ctx_new(const char *ca, char *err, size_t errlen)
{
	SSL_CTX		*ctx;
	struct stat	 st;
	int		 ok;

	if ((ctx = SSL_CTX_new(TLS_client_method())) == NULL) {
		snprintf(err, errlen, "cannot create the TLS client context");
		return NULL;
	}
	(void)SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION |
	    SSL_OP_NO_RENEGOTIATION);
	if (ca != NULL) {
		if (stat(ca, &st) == -1) {
			snprintf(err, errlen, "CA file %s: %s", ca,
			    strerror(errno));
			goto fail;
		}
		ok = S_ISDIR(st.st_mode) ?
		    SSL_CTX_load_verify_locations(ctx, NULL, ca) :
		    SSL_CTX_load_verify_locations(ctx, ca, NULL);
		if (ok != 1) {
			snprintf(err, errlen, "CA file %s: no certificate "
			    "could be loaded", ca);
			goto fail;
		}
	} else
		(void)SSL_CTX_set_default_verify_paths(ctx);
	ERR_clear_error();
	return ctx;
fail:
	ERR_clear_error();
	SSL_CTX_free(ctx);
	return NULL;
}

struct trk_client *
trk_client_new(struct event_base *base, const struct trk_client_opts *o,
    char *err, size_t errlen)
{
	struct trk_client	*c;
	struct ares_options	 opts;
	char			 lookups[3];
	int			 rc, mask;

	if (base == NULL || o == NULL) {
		snprintf(err, errlen, "bad arguments");
		return NULL;
	}
	if ((c = calloc(1, sizeof(*c))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	c->base = base;
	c->verify = o->tls_verify;
	c->connect_to = o->connect_timeout > 0 ? o->connect_timeout :
	    TRK_CONNECT_TIMEOUT;
	c->response_to = o->response_timeout > 0 ? o->response_timeout :
	    TRK_RESPONSE_TIMEOUT;
	if ((c->ssl = ssl_ctx_new(o->ca_file, err, errlen)) == NULL) {
		free(c);
		return NULL;
	}
	if ((rc = ares_library_init(ARES_LIB_INIT_ALL)) != ARES_SUCCESS) {
		snprintf(err, errlen, "c-ares: %s", ares_strerror(rc));
		SSL_CTX_free(c->ssl);
		free(c);
		return NULL;
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
		SSL_CTX_free(c->ssl);
		free(c);
		return NULL;
	}
	c->chan_up = 1;
	if (dns_set_servers(c, o->dns, o->ndns, err, errlen) == -1)
		goto fail;
	if ((c->dns_timer = evtimer_new(base, dns_timer_cb, c)) == NULL) {
		snprintf(err, errlen, "dns: cannot create a timer");
		goto fail;
	}
	return c;
fail:
	trk_client_free(c);
	return NULL;
}

/* q_free - unlink and free q and everything it holds (no callback) */
static void
q_free(struct trk_query *q)
{
	if (q->prevp != NULL) {
		*q->prevp = q->next;
		if (q->next != NULL)
			q->next->prevp = q->prevp;
	}
	if (q->bev != NULL)
		bufferevent_free(q->bev);
	if (q->tmo != NULL)
		event_free(q->tmo);
	if (q->done_ev != NULL)
		event_free(q->done_ev);
	buf_free(&q->body);
	if (q->track != NULL) {
		explicit_bzero(q->track, strlen(q->track));
		free(q->track);
	}
	free(q);
}

void
trk_client_free(struct trk_client *c)
{
	struct trk_sock	*s;

	if (c == NULL)
		return;
	if (c->chan_up) {
		/* callbacks see ARES_EDESTRUCTION and touch nothing */
		ares_destroy(c->chan);
		c->chan_up = 0;
		ares_library_cleanup();
	}
	while (c->queries != NULL)
		q_free(c->queries);
	while ((s = c->socks) != NULL) {
		c->socks = s->next;
		event_free(s->ev);
		free(s);
	}
	if (c->dns_timer != NULL)
		event_free(c->dns_timer);
	if (c->ssl != NULL)
		SSL_CTX_free(c->ssl);
	free(c);
}

/* ---------------------------------------------------------------- helpers */

/* q_arm - the step timer: secs, never past the query's deadline */
static void
q_arm(struct trk_query *q, int secs)
{
	struct timeval	now, tv = { secs, 0 }, left;

	if (q->has_deadline) {
		evutil_gettimeofday(&now, NULL);
		if (evutil_timercmp(&now, &q->deadline, >=))
			evutil_timerclear(&left);
		else
			evutil_timersub(&q->deadline, &now, &left);
		if (secs <= 0 || evutil_timercmp(&left, &tv, <))
			tv = left;
	} else if (secs <= 0) {
		evtimer_del(q->tmo);
		return;
	}
	evtimer_add(q->tmo, &tv);
}

/* q_past_deadline - the query's own deadline has passed */
static int
q_past_deadline(const struct trk_query *q)
{
	struct timeval	now;

	if (!q->has_deadline)
		return 0;
	evutil_gettimeofday(&now, NULL);
	return evutil_timercmp(&now, &q->deadline, >=);
}

/* q_close - drop the connection */
static void
q_close(struct trk_query *q)
{
	if (q->bev != NULL)
		bufferevent_free(q->bev);
	q->bev = NULL;
	evtimer_del(q->tmo);
}

/* q_send - a command line (CRLF added) */
static void
q_send(struct trk_query *q, const char *line)
{
	if (q->bev != NULL)
		(void)bufferevent_write(q->bev, line, strlen(line));
}

/* q_finish - the result is known: QUIT (quit) or close, then call back
 * from the loop */
static void
q_finish(struct trk_query *q, enum trk_result r, int quit, const char *fmt,
    ...)
{
	va_list	ap;
	int	n;

	if (q->answered)
		return;
	q->answered = 1;
	q->result = r;
	va_start(ap, fmt);
	n = vsnprintf(q->error, sizeof(q->error), fmt, ap);
	va_end(ap);
	if (n < 0)
		q->error[0] = '\0';
	if (quit && q->bev != NULL) {
		struct timeval	tv = { QUIT_LINGER, 0 };

		/* the caller has its answer: the linger is not its time */
		q_send(q, "QUIT\r\n");
		q->state = Q_QUIT;
		evtimer_add(q->tmo, &tv);
	} else {
		q_close(q);
		q->state = Q_DONE;
	}
	if (r != TRK_OK)
		buf_free(&q->body);
	event_active(q->done_ev, EV_TIMEOUT, 0);
}

/* q_done_cb - deliver the answer, then free what is no longer needed */
static void
q_done_cb(evutil_socket_t fd, short what, void *arg)
{
	struct trk_query	*q = arg;
	struct trk_answer	 a;
	trk_answer_fn		 cb = q->cb;

	(void)fd;
	(void)what;
	q->dead = 1;
	q->cb = NULL;
	if (cb != NULL) {
		memset(&a, 0, sizeof(a));
		a.result = q->result;
		a.host = q->host;
		a.server = q->server;
		a.tls = q->tls;
		a.error = q->result == TRK_OK ? "" : q->error;
		if (q->result == TRK_OK) {
			a.body = q->body.data != NULL ? q->body.data : "";
			a.bodylen = q->body.len;
		}
		cb(q->arg, &a);
	}
	buf_free(&q->body);
	q_maybe_free(q);
}

/* q_maybe_free - free q once nothing refers to it any more */
static void
q_maybe_free(struct trk_query *q)
{
	if (q->dead && q->pending == 0 && q->bev == NULL &&
	    !event_pending(q->done_ev, EV_TIMEOUT, NULL))
		q_free(q);
}

/* addr_text - "ADDR:PORT" or "[v6]:PORT" */
static void
addr_text(const struct sockaddr_storage *ss, char *out, size_t outlen)
{
	char		 a[INET6_ADDRSTRLEN];
	const void	*p;
	unsigned	 port;

	if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const void *)ss;

		p = &s6->sin6_addr;
		port = ntohs(s6->sin6_port);
	} else {
		const struct sockaddr_in *s4 = (const void *)ss;

		p = &s4->sin_addr;
		port = ntohs(s4->sin_port);
	}
	if (inet_ntop(ss->ss_family, p, a, sizeof(a)) == NULL)
		snprintf(a, sizeof(a), "?");
	if (snprintf(out, outlen, ss->ss_family == AF_INET6 ? "[%s]:%u" :
	    "%s:%u", a, port) < 0 && outlen > 0)
		out[0] = '\0';
}

/* add_addr - an address with port into q's list */
static void
add_addr(struct trk_query *q, int family, const void *sa, unsigned port)
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

/* literal_addr - "1.2.3.4", "::1", "[1.2.3.4]", "[IPv6:::1]" into the
 * binary address; its family or 0; text (>= 64) gets the bare address */
static int
literal_addr(const char *h, unsigned char a[16], char *text, size_t textlen)
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
		q_maybe_free(q);
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
			q_finish(q, TRK_UNREACHABLE, 0, "%s has no MTQP service "
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
	q_next_target(q);
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
		q_maybe_free(q);
		return;
	}
	t = &q->targets[q->tcur];
	q->naddrs = q->acur = 0;
	if (status == ARES_SUCCESS && res != NULL) {
		for (pass = 0; pass < 2; pass++)	/* IPv4 first */
			for (n = res->nodes; n != NULL; n = n->ai_next) {
				if (pass == 0 && n->ai_family == AF_INET)
					add_addr(q, AF_INET, &((const struct
					    sockaddr_in *)(const void *)
					    n->ai_addr)->sin_addr, t->port);
				else if (pass == 1 && n->ai_family == AF_INET6)
					add_addr(q, AF_INET6, &((const struct
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
		q_next_target(q);
		return;
	}
	q_try_connect(q);
}

/* q_next_target - resolve targets[tcur] (or connect to a literal);
 * UNREACHABLE when none is left */
static void
q_next_target(struct trk_query *q)
{
	struct ares_addrinfo_hints	 hints;
	struct target			*t;
	unsigned char			 a[16];
	char				 text[HOST_MAX], port[8];
	int				 fam;

	if (q->tcur >= q->ntargets) {
		q_finish(q, TRK_UNREACHABLE, 0, "%s", q->lasterr[0] ?
		    q->lasterr : "no address");
		return;
	}
	t = &q->targets[q->tcur];
	q->naddrs = q->acur = 0;
	if ((fam = literal_addr(t->name, a, text, sizeof(text))) != 0) {
		add_addr(q, fam, a, t->port);
		q_try_connect(q);
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
		q_arm(q, 0);
}

/* ---------------------------------------------------------------- TCP */

/* q_try_connect - connect to addrs[acur], or the next target */
static void
q_try_connect(struct trk_query *q)
{
	struct bufferevent	*bev;
	char			 at[80];

	while (q->acur < q->naddrs) {
		if (q_past_deadline(q)) {
			q_finish(q, TRK_UNREACHABLE, 0, "%s%sno connection "
			    "within the time allowed", q->lasterr,
			    q->lasterr[0] ? "; " : "");
			return;
		}
		addr_text(&q->addrs[q->acur], at, sizeof(at));
		bev = bufferevent_socket_new(q->c->base, -1,
		    BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
		if (bev == NULL) {
			q_finish(q, TRK_ERROR, 0, "out of memory");
			return;
		}
		bufferevent_setcb(bev, q_read_cb, NULL, q_event_cb, q);
		if (bufferevent_socket_connect(bev,
		    (struct sockaddr *)&q->addrs[q->acur],
		    (int)q->alens[q->acur]) == 0) {
			q->bev = bev;
			q->state = Q_CONNECT;
			snprintf(q->server, sizeof(q->server), "%s", at);
			q_arm(q, q->c->connect_to);
			return;
		}
		snprintf(q->lasterr, sizeof(q->lasterr), "%s: %s", at,
		    evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
		bufferevent_free(bev);
		q->acur++;
	}
	q->tcur++;
	q_next_target(q);
}

/* q_connect_failed - this address failed: the next one */
static void
q_connect_failed(struct trk_query *q, const char *why)
{
	snprintf(q->lasterr, sizeof(q->lasterr), "%s: %s", q->server, why);
	q->server[0] = '\0';
	q_close(q);
	q->acur++;
	q_try_connect(q);
}

/* ---------------------------------------------------------------- TLS */

/* q_start_tls - +OK to STARTTLS: wrap the connection */
static void
q_start_tls(struct trk_query *q)
{
	struct bufferevent	*nb;
	SSL			*ssl;

	if (evbuffer_get_length(bufferevent_get_input(q->bev)) > 0) {
		/* never read as TLS or as replies (injection) */
		q_finish(q, TRK_TLS_FAILED, 0, "data after the reply to "
		    "STARTTLS");
		return;
	}
	if ((ssl = SSL_new(q->c->ssl)) == NULL) {
		ERR_clear_error();
		q_finish(q, TRK_TLS_FAILED, 0, "cannot start TLS");
		return;
	}
	if (!q->literal)
		(void)SSL_set_tlsext_host_name(ssl, q->tlsname);
	if (q->c->verify) {
		SSL_set_verify(ssl, SSL_VERIFY_PEER, NULL);
		if (q->literal)
			(void)X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl),
			    q->tlsname);
		else
			(void)SSL_set1_host(ssl, q->tlsname);
	} else
		SSL_set_verify(ssl, SSL_VERIFY_NONE, NULL);
	bufferevent_set_timeouts(q->bev, NULL, NULL);
	nb = bufferevent_openssl_filter_new(q->c->base, q->bev, ssl,
	    BUFFEREVENT_SSL_CONNECTING,
	    BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	if (nb == NULL) {
		SSL_free(ssl);
		q_finish(q, TRK_TLS_FAILED, 0, "cannot start TLS");
		return;
	}
	q->bev = nb;		/* freeing nb frees the socket one too */
	bufferevent_openssl_set_allow_dirty_shutdown(nb, 1);
	bufferevent_setcb(nb, q_read_cb, NULL, q_event_cb, q);
	bufferevent_enable(nb, EV_READ | EV_WRITE);
	q->state = Q_TLS;
	q_arm(q, q->c->response_to);
}

/* q_tls_failed - the handshake failed: why, then TRK_TLS_FAILED */
static void
q_tls_failed(struct trk_query *q)
{
	char		 ebuf[256];
	unsigned long	 e;
	SSL		*ssl = bufferevent_openssl_get_ssl(q->bev);
	long		 vr = ssl != NULL ? SSL_get_verify_result(ssl) :
			    X509_V_OK;

	ebuf[0] = '\0';
	if (vr != X509_V_OK)
		snprintf(ebuf, sizeof(ebuf), "certificate verification "
		    "failed: %s", X509_verify_cert_error_string(vr));
	else {
		while ((e = bufferevent_get_openssl_error(q->bev)) != 0)
			if (ERR_GET_LIB(e) != 0 && ebuf[0] == '\0')
				ERR_error_string_n(e, ebuf, sizeof(ebuf));
		if (ebuf[0] == '\0')
			snprintf(ebuf, sizeof(ebuf), "connection closed");
	}
	ERR_clear_error();
	q_finish(q, TRK_TLS_FAILED, 0, "TLS handshake failed: %s", ebuf);
}

/* ---------------------------------------------------------------- dialogue */

/* q_greeting_done - the greeting is complete: STARTTLS or TRACK */
static void
q_greeting_done(struct trk_query *q)
{
	char	cmd[HOST_MAX + 16];

	if (!q->tls && q->starttls) {
		snprintf(cmd, sizeof(cmd), "STARTTLS %s\r\n", q->tlsname);
		q_send(q, cmd);
		q->state = Q_STARTTLS;
	} else {
		q_send(q, q->track);
		q->state = Q_TRACK;
	}
	q_arm(q, q->c->response_to);
}

/* q_line - one response line (no CRLF) in the current state; -1 when
 * q may have been freed */
static int
q_line(struct trk_query *q, const char *line, size_t len)
{
	enum trk_reply_kind	 k;
	const char		*info;
	size_t			 il;
	int			 ok, o;

	ok = trk_reply_parse(line, len, &k, &info, &il) == 0;
	switch (q->state) {
	case Q_GREETING:
		if (!ok || !trk_reply_has(info, il, "MTQP")) {
			q_finish(q, TRK_NOT_MTQP, 0, "%s does not speak MTQP: "
			    "greeting \"%.*s\"", q->server,
			    (int)(len > 200 ? 200 : len), line);
			return 0;
		}
		if (k == TRK_R_OKPLUS) {
			q->starttls = 0;	/* forget the earlier list */
			q->state = Q_OPTIONS;
		} else if (k == TRK_R_OK) {
			q->starttls = 0;
			q_greeting_done(q);
		} else
			q_finish(q, TRK_ERROR, 0, "server unavailable: %.*s",
			    (int)(len > 300 ? 300 : len), line);
		return 0;
	case Q_OPTIONS:
		if (len == 1 && line[0] == '.') {
			q_greeting_done(q);
			return 0;
		}
		if (len > 0 && line[0] == '.') {
			line++;
			len--;
		}
		if ((o = trk_option_starttls(line, len)) > q->starttls)
			q->starttls = o;
		return 0;
	case Q_STARTTLS:
		if (ok && k == TRK_R_OK) {
			q_start_tls(q);
			return 0;
		}
		q_finish(q, TRK_TLS_FAILED, 1, "STARTTLS refused: %.*s",
		    (int)(len > 300 ? 300 : len), line);
		return 0;
	case Q_TRACK:
		if (ok && k == TRK_R_OKPLUS) {
			buf_reset(&q->body);
			q->state = Q_DATA;
		} else if (ok && k == TRK_R_ERR &&
		    trk_reply_has(info, il, "noinfo"))
			q_finish(q, TRK_NOINFO, 1, "%.*s",
			    (int)(len > 300 ? 300 : len), line);
		else if (ok && k == TRK_R_ERR &&
		    trk_reply_has(info, il, "tls-required"))
			q_finish(q, TRK_TLS_FAILED, 1, "%.*s",
			    (int)(len > 300 ? 300 : len), line);
		else
			q_finish(q, TRK_ERROR, 1, "TRACK: %s%.*s",
			    ok ? "" : "malformed response: ",
			    (int)(len > 300 ? 300 : len), line);
		return 0;
	case Q_DATA:
		if (len == 1 && line[0] == '.') {
			q_finish(q, TRK_OK, 1, "%s", "");
			return 0;
		}
		if (len > 0 && line[0] == '.') {	/* dot-stuffed */
			line++;
			len--;
		}
		if (buf_append(&q->body, line, len) == -1 ||
		    buf_append(&q->body, "\r\n", 2) == -1)
			q_finish(q, TRK_ERROR, 0, "the answer is over %u "
			    "octets", TRK_ANSWER_MAX);
		return 0;
	case Q_QUIT:
		q_close(q);
		q->state = Q_DONE;
		q_maybe_free(q);
		return -1;
	default:
		return 0;
	}
}

/* q_read - every complete line in the input; 0, or -1 when q may be gone */
static int
q_read(struct trk_query *q)
{
	struct evbuffer		*in;
	struct evbuffer_ptr	 eol;
	char			 line[TRK_LINE_MAX + 1];
	size_t			 eolen;

	while (q->bev != NULL && !(q->answered && q->state != Q_QUIT) &&
	    q->state != Q_TLS && q->state != Q_CONNECT) {
		in = bufferevent_get_input(q->bev);
		eol = evbuffer_search_eol(in, NULL, &eolen, EVBUFFER_EOL_CRLF);
		if (eol.pos == -1) {
			if (evbuffer_get_length(in) > TRK_LINE_MAX)
				goto toolong;
			return 0;
		}
		if ((size_t)eol.pos + eolen > TRK_LINE_MAX)
			goto toolong;
		if (evbuffer_remove(in, line, (size_t)eol.pos) !=
		    (int)eol.pos || evbuffer_drain(in, eolen) == -1) {
			q_finish(q, TRK_ERROR, 0, "read error");
			return 0;
		}
		line[eol.pos] = '\0';
		if (q->state != Q_QUIT)
			q_arm(q, q->c->response_to);	/* progress */
		if (q_line(q, line, (size_t)eol.pos) == -1)
			return -1;
	}
	return 0;
toolong:
	if (q->state == Q_QUIT) {
		q_close(q);
		q->state = Q_DONE;
		q_maybe_free(q);
		return -1;
	} else if (q->state == Q_GREETING)
		q_finish(q, TRK_NOT_MTQP, 0, "%s does not speak MTQP: greeting "
		    "line over %d octets", q->server, TRK_LINE_MAX - 2);
	else
		q_finish(q, TRK_ERROR, 0, "a response line over %d octets",
		    TRK_LINE_MAX - 2);
	return 0;
}

static void
q_read_cb(struct bufferevent *bev, void *arg)
{
	(void)bev;
	(void)q_read(arg);
}

static void
q_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct trk_query	*q = arg;
	evutil_socket_t		 fd;
	int			 one = 1, e = EVUTIL_SOCKET_ERROR();

	(void)bev;
	switch (q->state) {
	case Q_CONNECT:
		if (what & BEV_EVENT_CONNECTED) {
			fd = bufferevent_getfd(q->bev);
			if (fd >= 0)
				(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY,
				    &one, sizeof(one));
			bufferevent_enable(q->bev, EV_READ | EV_WRITE);
			q->state = Q_GREETING;
			q_arm(q, q->c->response_to);
			return;
		}
		q_connect_failed(q, e != 0 ? evutil_socket_error_to_string(e) :
		    "connection failed");
		return;
	case Q_TLS:
		if (what & BEV_EVENT_CONNECTED) {
			q->tls = 1;
			q->starttls = 0;
			q->state = Q_GREETING;	/* the fresh greeting */
			q_arm(q, q->c->response_to);
			(void)q_read(q);
			return;
		}
		q_tls_failed(q);
		return;
	case Q_QUIT:
		q_close(q);
		q->state = Q_DONE;
		q_maybe_free(q);
		return;
	default:
		break;
	}
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
		/* a last line may be buffered */
		if (q_read(q) == -1 || q->answered)
			return;
		if (q->state == Q_GREETING)
			q_finish(q, TRK_NOT_MTQP, 0, "%s closed the connection "
			    "without an MTQP greeting", q->server);
		else
			q_finish(q, TRK_ERROR, 0, "%s closed the connection%s",
			    q->server, q->state == Q_DATA ?
			    " in the middle of the answer" : "");
	}
}

/* q_tmo_cb - a step timed out, or the query's deadline came */
static void
q_tmo_cb(evutil_socket_t fd, short what, void *arg)
{
	struct trk_query	*q = arg;
	int			 past = q_past_deadline(q);

	(void)fd;
	(void)what;
	switch (q->state) {
	case Q_SRV:
	case Q_ADDR:
		q_finish(q, TRK_UNREACHABLE, 0, "%s: DNS lookup not finished "
		    "within the time allowed", q->host);
		return;
	case Q_CONNECT:
		if (past) {
			snprintf(q->lasterr, sizeof(q->lasterr), "%s: "
			    "connection timed out", q->server);
			q_close(q);
			q_finish(q, TRK_UNREACHABLE, 0, "%s", q->lasterr);
			return;
		}
		q_connect_failed(q, "connection timed out");
		return;
	case Q_QUIT:
		q_close(q);
		q->state = Q_DONE;
		q_maybe_free(q);
		return;
	case Q_DONE:
		return;
	default:
		q_finish(q, q->state == Q_TLS ? TRK_TLS_FAILED : TRK_ERROR, 0,
		    "%s: no response within %s", q->server, past ?
		    "the time allowed" : "the response timeout");
		return;
	}
}

/* ---------------------------------------------------------------- queries */

/* host_ok - a host name or literal safe on a command line */
static int
host_ok(const char *h)
{
	size_t	i, n = strlen(h);

	if (n == 0 || n >= HOST_MAX)
		return 0;
	for (i = 0; i < n; i++)
		if (!((h[i] >= 'a' && h[i] <= 'z') ||
		    (h[i] >= 'A' && h[i] <= 'Z') ||
		    (h[i] >= '0' && h[i] <= '9') ||
		    strchr("-._:[]", h[i]) != NULL))
			return 0;
	return 1;
}

/* secret_ok - base64 characters only (nothing to break the line) */
static int
secret_ok(const char *s)
{
	size_t	i, n = strlen(s);

	if (n == 0 || n > SECRET_MAX)
		return 0;
	for (i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') ||
		    (s[i] >= 'A' && s[i] <= 'Z') ||
		    (s[i] >= '0' && s[i] <= '9') ||
		    s[i] == '+' || s[i] == '/' || s[i] == '='))
			return 0;
	return 1;
}

struct trk_query *
trk_query_start(struct trk_client *c, const struct trk_request *rq,
    trk_answer_fn cb, void *arg)
{
	struct trk_query	*q;
	unsigned char		 a[16];
	char			 xenvid[3 * ESMTP_ENVID_MAX + 1], qname[HOST_MAX + 16];
	size_t			 tl, hl;
	int			 fam, n;

	if (c == NULL || rq == NULL || cb == NULL || rq->host == NULL ||
	    rq->envid == NULL || rq->secret == NULL || !host_ok(rq->host) ||
	    !secret_ok(rq->secret) || rq->port > 65535 || rq->envid[0] == '\0' ||
	    strlen(rq->envid) > ESMTP_ENVID_MAX ||
	    (rq->addr != NULL && (rq->addrlen > sizeof(struct sockaddr_storage) ||
	    (rq->addr->sa_family != AF_INET && rq->addr->sa_family != AF_INET6))))
		return NULL;
	if (xtext_encode(rq->envid, strlen(rq->envid), xenvid,
	    sizeof(xenvid)) == -1)
		return NULL;
	if ((q = calloc(1, sizeof(*q))) == NULL)
		return NULL;
	q->c = c;
	q->cb = cb;
	q->arg = arg;
	buf_init(&q->body, TRK_ANSWER_MAX);
	snprintf(q->host, sizeof(q->host), "%s", rq->host);
	/* the name asked, for STARTTLS and the certificate: an IP literal
	 * as its text */
	if ((fam = literal_addr(q->host, a, q->tlsname,
	    sizeof(q->tlsname))) != 0)
		q->literal = 1;
	else {
		hl = strlen(q->host);
		if (hl > 1 && q->host[hl - 1] == '.')
			hl--;		/* a trailing dot is not sent */
		memcpy(q->tlsname, q->host, hl);
		q->tlsname[hl] = '\0';
	}
	q->port = rq->port;
	tl = strlen(xenvid) + strlen(rq->secret) + 16;
	if ((q->track = malloc(tl)) == NULL ||
	    (n = snprintf(q->track, tl, "TRACK %s %s\r\n", xenvid,
	    rq->secret)) < 0 || (size_t)n >= tl ||
	    (q->tmo = evtimer_new(c->base, q_tmo_cb, q)) == NULL ||
	    (q->done_ev = event_new(c->base, -1, 0, q_done_cb, q)) == NULL) {
		q_free(q);
		return NULL;
	}
	if (rq->timeout_ms > 0) {
		struct timeval	now, d;

		evutil_gettimeofday(&now, NULL);
		d.tv_sec = rq->timeout_ms / 1000;
		d.tv_usec = (rq->timeout_ms % 1000) * 1000;
		evutil_timeradd(&now, &d, &q->deadline);
		q->has_deadline = 1;
	}
	q->next = c->queries;
	if (q->next != NULL)
		q->next->prevp = &q->next;
	q->prevp = &c->queries;
	c->queries = q;

	if (rq->addr != NULL) {
		/* connect there; host is only the name asked */
		memcpy(&q->addrs[0], rq->addr, rq->addrlen);
		q->alens[0] = rq->addrlen;
		q->naddrs = 1;
		q->tcur = q->ntargets = 0;
		q_try_connect(q);
		return q;
	}
	if (fam != 0) {			/* an address literal: no DNS */
		add_addr(q, fam, a, q->port ? q->port : TRK_MTQP_PORT);
		q_try_connect(q);
		return q;
	}
	if (q->port != 0) {		/* HOST:PORT: A/AAAA of HOST */
		snprintf(q->targets[0].name, HOST_MAX, "%s", q->host);
		q->targets[0].port = q->port;
		q->ntargets = 1;
		q_next_target(q);
		return q;
	}
	/* RFC 3887 2.1: SRV first */
	n = snprintf(qname, sizeof(qname), "_mtqp._tcp.%s", q->tlsname);
	if (n < 0 || (size_t)n >= sizeof(qname)) {
		q_finish(q, TRK_UNREACHABLE, 0, "%s: name too long", q->host);
		return q;
	}
	q->state = Q_SRV;
	q->pending++;
	c->nlookups++;
	ares_query(c->chan, qname, ns_c_in, ns_t_srv, q_srv_cb, q);
	dns_reschedule(c);
	if (q->has_deadline && !q->answered && q->state == Q_SRV)
		q_arm(q, 0);
	return q;
}

void
trk_query_cancel(struct trk_query *q)
{
	if (q == NULL || q->dead)
		return;
	q->cb = NULL;
	q->dead = 1;
	q->answered = 1;
	q_close(q);
	q->state = Q_DONE;
	event_del(q->done_ev);
	q_maybe_free(q);
}
