#include "config.h"
/*
 * trk_dns.c - name resolution for the MTQP client: one c-ares channel
 * per struct trk_client in the caller's libevent loop (common/dnsloop.c,
 * as delivery/dlv_dns.c's one channel for the daemon).
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

/* ---------------------------------------------------------------- channel */

/* dns_busy - c-ares queries in flight (the channel's timer runs only then) */
static int
dns_busy(void *arg)
{
	struct trk_client	*c = arg;

	return c->nlookups > 0;
}

int
trk_dns_init(struct trk_client *c, const struct trk_client_opts *o,
    char *err, size_t errlen)
{
	struct ares_options	opts;
	char			lookups[3];

	memset(&opts, 0, sizeof(opts));
	opts.ndomains = 0;		/* no search list: names are FQDNs */
	opts.domains = NULL;
	snprintf(lookups, sizeof(lookups), "%s", o->hosts_file ? "fb" : "b");
	opts.lookups = lookups;
	if (dnsloop_init(&c->dns, c->base, &opts, ARES_OPT_DOMAINS |
	    ARES_OPT_LOOKUPS, dns_busy, c, err, errlen) == -1)
		return -1;
	if (dnsloop_set_servers(&c->dns, o->dns, o->ndns, err, errlen) == -1) {
		trk_dns_shutdown(c);
		return -1;
	}
	return 0;
}

void
trk_dns_shutdown(struct trk_client *c)
{
	/* callbacks see ARES_EDESTRUCTION and touch nothing */
	dnsloop_shutdown(&c->dns);
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
	ares_getaddrinfo(q->c->dns.chan, t->name, port, &hints, q_addr_cb, q);
	dnsloop_reschedule(&q->c->dns);
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
	ares_query(q->c->dns.chan, qname, ns_c_in, ns_t_srv, q_srv_cb, q);
	dnsloop_reschedule(&q->c->dns);
	if (q->has_deadline && !q->answered && q->state == Q_SRV)
		trk_q_arm(q, 0);
}
