#include "config.h"
/*
 * dlv_dns.c - routes for remote delivery: c-ares in the libevent loop.
 * Owns: the daemon's c-ares channel (common/dnsloop.c: servers from
 *       `dns`, else resolv.conf; its events and timer run while lookups
 *       are in flight); the in-flight lookups.
 * Entry points: dlv_dns_init/_reload/_shutdown, dlv_route_lookup,
 *       dlv_route_cancel.
 * Routing: smarthost "[host]:port" (no MX; an address literal is used as
 *       is) or "host[:port]" (MX of host); else the MX of the domain by
 *       preference, equal preferences shuffled; no MX = implicit MX (the
 *       domain itself, RFC 5321 5.1); null MX (RFC 7505); MX
 *       self-detection by hostname and by listen address (not by
 *       interface address: loopback next hops are local in tests).
 *       Addresses by A and AAAA queries (ares_query: no hosts file, no
 *       search list), IPv4 first, at most DLV_MAX_ADDRS per host.
 * DNSSEC (dns_dnssec = yes; cfg.c allows only loopback resolvers): every
 *       query is built by ares_create_query with EDNS (1232 octets) and
 *       the AD bit set (RFC 6840 5.7: "tell me whether it is secure"),
 *       sent by ares_send, and its answer's AD bit read (c-ares 1.18 has
 *       no DNSSEC API); the channel has ARES_FLAG_EDNS and
 *       ARES_FLAG_NOCHECKRESP (a SERVFAIL = bogus reaches us as such).
 *       A host is secure when the MX answer (or its NODATA: implicit MX)
 *       and its address answers all were; secure hosts get their TLSA
 *       answer (_25._tcp.HOST, RFC 7672 2.2.3, whatever smtp_port is;
 *       for a host that is a CNAME, first at its expansion, then at HOST:
 *       2.2.2) read by dlv_dane.c before the route is returned.  The channel's
 *       flags are set at start: turning dns_dnssec on by a reload works,
 *       but SERVFAIL then reads as a refused connection until a restart.
 * Texts: route.why is a whole sentence that names what was looked up
 *       ("domain D" or "smarthost H") and the step; callers quote it as
 *       it is, never wrapped in a second mention of the domain.
 * Invariants: the callback runs exactly once, always from the loop (an
 *       event made active), never inside dlv_route_lookup; lookups in
 *       flight at dlv_dns_shutdown or cancelled never call back.
 */

#include <sys/types.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <ares.h>
#include <event2/event.h>

#include "common/cfg.h"
#include "common/dnsloop.h"
#include "common/log.h"
#include "common/util.h"
#include "delivery/dlv_int.h"

#define DNS_MAX_MX	32	/* MX records considered before truncation */
#define DNS_EDNS_SIZE	1232	/* EDNS UDP payload (DNS flag day 2020) */
#define DNS_T_TLSA	52	/* RFC 6698 */

struct dns_lookup;

struct dns_raw {			/* one dlv_dns_query */
	struct dns_raw		*next;
	struct dns_raw		**prevp;
	dlv_dns_fn		 cb;	/* NULL once cancelled */
	void			*arg;
};

struct dns_hq {				/* one A, AAAA or TLSA query */
	struct dns_lookup	*lk;
	size_t			 host;
	int			 family;	/* AF_INET, AF_INET6; TLSA: 0 at
						 * the host name, 1 at its CNAME
						 * expansion */
};

struct dns_sq {				/* an AD query in flight (dns_send) */
	ares_callback		 cb;
	void			*arg;
};

struct dns_lookup {
	struct dns_lookup	*next;
	struct dns_lookup	**prevp;
	dlv_route_fn		 cb;	/* NULL once cancelled */
	void			*arg;
	struct event		*done_ev;
	char			 domain[256];
	char			 qname[256];	/* name whose MX is asked */
	unsigned		 port;
	int			 pending;	/* ares queries outstanding */
	int			 selfpref;	/* lowest pref that is us, -1 none */
	int			 tempfail;
	int			 direct;	/* no MX: qname's own address */
	int			 smarthost;	/* qname is the smarthost */
	int			 dnssec;	/* dns_dnssec when it started */
	unsigned char		 insecure[DLV_MAX_HOSTS]; /* an address answer without AD */
	char			 cname[DLV_MAX_HOSTS][256]; /* CNAME expansions */
	char			 temperr[96];
	struct dns_hq		 hq[DLV_MAX_HOSTS * 2];
	struct in_addr		 a4[DLV_MAX_HOSTS][DLV_MAX_ADDRS];
	size_t			 n4[DLV_MAX_HOSTS];
	struct ares_in6_addr	 a6[DLV_MAX_HOSTS][DLV_MAX_ADDRS];
	size_t			 n6[DLV_MAX_HOSTS];
	/* last: its hosts (27 KiB) are not zeroed when the lookup is made
	 * (each is zeroed as it is added: dns_add_host, dns_literal) */
	struct dlv_route	 route;
};
/* what lookup_new zeroes: everything before route.hosts */
#define LOOKUP_ZEROED	(offsetof(struct dns_lookup, route) + \
			 offsetof(struct dlv_route, hosts))
#define LOOKUP_SPARES	4	/* freed lookups kept for the next ones */

static struct {
	struct dnsloop		 loop;	/* loop.up: initialised */
	struct dns_lookup	*lookups;
	struct dns_raw		*raws;	/* dlv_dns_query's in flight */
	/* copies of the configuration (survive a reload) */
	char			 hostname[256];
	char			 smarthost[300];
	unsigned		 smtp_port;
	int			 dnssec;	/* dns_dnssec */
	struct cfg_addr		*listen;
	size_t			 nlisten;
	int			 answer_ad;	/* AD of the answer being handled */
	/* freed lookups, reused: one per delivery, 32 KiB each */
	struct dns_lookup	*spare[LOOKUP_SPARES];
	size_t			 nspare;
} dns;

static void	dns_finish(struct dns_lookup *lk, enum dlv_route_status st,
		    const char *fmt, ...) WM_PRINTF(3, 4);
static void	dns_resolve_hosts(struct dns_lookup *lk);
static void	dns_tlsa_start(struct dns_lookup *lk);
static void	dns_tlsa_cb(void *, int, int, unsigned char *, int);

/* ---------------------------------------------------------------- config */

/* dns_busy - lookups in flight (the channel's timer runs only then) */
static int
dns_busy(void *arg)
{
	(void)arg;
	return dns.lookups != NULL || dns.raws != NULL;
}

/* dns_copy_cfg - keep what lookups need; cfg may be freed by a reload */
static int
dns_copy_cfg(const struct config *cfg, char *err, size_t errlen)
{
	struct cfg_addr	*l = NULL;
	int		 n;

	if (cfg->nlisten > 0) {
		if ((l = calloc(cfg->nlisten, sizeof(*l))) == NULL) {
			snprintf(err, errlen, "dns: out of memory");
			return -1;
		}
		memcpy(l, cfg->listen, cfg->nlisten * sizeof(*l));
	}
	n = snprintf(dns.hostname, sizeof(dns.hostname), "%s",
	    cfg->hostname != NULL ? cfg->hostname : "");
	if (n < 0 || (size_t)n >= sizeof(dns.hostname))
		dns.hostname[0] = '\0';
	n = snprintf(dns.smarthost, sizeof(dns.smarthost), "%s",
	    cfg->smarthost != NULL ? cfg->smarthost : "");
	if (n < 0 || (size_t)n >= sizeof(dns.smarthost)) {
		snprintf(err, errlen, "smarthost too long");
		free(l);
		return -1;
	}
	dns.smtp_port = cfg->smtp_port != 0 ? cfg->smtp_port : 25;
	dns.dnssec = cfg->dns_dnssec;
	free(dns.listen);
	dns.listen = l;
	dns.nlisten = cfg->nlisten;
	return 0;
}

/* ---------------------------------------------------------------- module */

int
dlv_dns_init(const struct config *cfg, struct event_base *base, char *err,
    size_t errlen)
{
	struct ares_options	o;

	if (dns.loop.up) {
		snprintf(err, errlen, "dns: already initialised");
		return -1;
	}
	/* DNSSEC: answers up to the EDNS size over UDP; SERVFAIL passed on */
	memset(&o, 0, sizeof(o));
	o.flags = ARES_FLAG_EDNS | ARES_FLAG_NOCHECKRESP;
	o.ednspsz = DNS_EDNS_SIZE;
	if (dnsloop_init(&dns.loop, base, cfg->dns_dnssec ? &o : NULL,
	    cfg->dns_dnssec ? ARES_OPT_FLAGS | ARES_OPT_EDNSPSZ : 0, dns_busy,
	    NULL, err, errlen) == -1)
		return -1;
	if (dnsloop_set_servers(&dns.loop, cfg->dns, cfg->ndns, err,
	    errlen) == -1 ||
	    dns_copy_cfg(cfg, err, errlen) == -1)
		goto fail;
	return 0;
fail:
	dlv_dns_shutdown();
	return -1;
}

/* dlv_dns_reload - new configuration: servers, hostname, listen, smarthost */
int
dlv_dns_reload(const struct config *cfg, char *err, size_t errlen)
{
	if (!dns.loop.up) {
		snprintf(err, errlen, "dns: not initialised");
		return -1;
	}
	if (dnsloop_set_servers(&dns.loop, cfg->dns, cfg->ndns, err,
	    errlen) == -1 ||
	    dns_copy_cfg(cfg, err, errlen) == -1)
		return -1;
	return 0;
}

/* lookup_new - a lookup zeroed up to its route's hosts, or NULL.  A
 * delivery's lookup used to be a calloc of 32 KiB: zeroing it was 2 %
 * of the daemon's CPU when relaying. */
static struct dns_lookup *
lookup_new(void)
{
	struct dns_lookup	*lk;

	if (dns.nspare > 0)
		lk = dns.spare[--dns.nspare];
	else if ((lk = malloc(sizeof(*lk))) == NULL)
		return NULL;
	memset(lk, 0, LOOKUP_ZEROED);
	return lk;
}

/* lookup_release - keep lk as a spare, or free it */
static void
lookup_release(struct dns_lookup *lk)
{
	if (dns.loop.up && dns.nspare < LOOKUP_SPARES)
		dns.spare[dns.nspare++] = lk;
	else
		free(lk);
}

/* dns_lookup_free - unlink and free (never calls back) */
static void
dns_lookup_free(struct dns_lookup *lk)
{
	if (lk->prevp != NULL) {
		*lk->prevp = lk->next;
		if (lk->next != NULL)
			lk->next->prevp = lk->prevp;
	}
	if (lk->done_ev != NULL)
		event_free(lk->done_ev);
	lookup_release(lk);
}

void
dlv_dns_shutdown(void)
{
	if (!dns.loop.up)
		return;
	/* query callbacks see ARES_EDESTRUCTION and do nothing */
	dnsloop_shutdown(&dns.loop);
	while (dns.lookups != NULL)
		dns_lookup_free(dns.lookups);
	while (dns.raws != NULL) {
		struct dns_raw *q = dns.raws;

		dns.raws = q->next;
		free(q);
	}
	while (dns.nspare > 0)
		free(dns.spare[--dns.nspare]);
	free(dns.listen);
	dns.listen = NULL;
	dns.nlisten = 0;
}

void
dlv_route_cancel(void *arg)
{
	struct dns_lookup	*lk;

	for (lk = dns.lookups; lk != NULL; lk = lk->next)
		if (lk->arg == arg)
			lk->cb = NULL;
}

/* ---------------------------------------------------------------- results */

/* dns_done_cb - deliver the route from the loop, then free the lookup */
static void
dns_done_cb(evutil_socket_t fd, short what, void *arg)
{
	struct dns_lookup	*lk = arg;
	dlv_route_fn		 cb = lk->cb;
	void			*cbarg = lk->arg;
	struct dlv_route	*r = &lk->route;

	(void)fd;
	(void)what;
	/* unlinked before the callback: it may start lookups or shut down */
	*lk->prevp = lk->next;
	if (lk->next != NULL)
		lk->next->prevp = lk->prevp;
	lk->prevp = NULL;
	event_free(lk->done_ev);
	lk->done_ev = NULL;
	dnsloop_reschedule(&dns.loop);
	if (cb != NULL)
		cb(cbarg, r);
	lookup_release(lk);
}

/* dns_finish - set the result and make the completion event active */
static void
dns_finish(struct dns_lookup *lk, enum dlv_route_status st, const char *fmt,
    ...)
{
	va_list	ap;
	int	n;

	lk->route.status = st;
	(void)snprintf(lk->route.nexthop, sizeof(lk->route.nexthop), "%s",
	    lk->qname);
	va_start(ap, fmt);
	n = vsnprintf(lk->route.why, sizeof(lk->route.why), fmt, ap);
	va_end(ap);
	if (n < 0)
		lk->route.why[0] = '\0';
	if (st != DLV_ROUTE_OK)
		lk->route.nhosts = 0;
	event_active(lk->done_ev, EV_TIMEOUT, 0);
}

/* dns_sec_cb - an AD query's answer: the AD bit kept in dns.answer_ad
 * for the callback, and the status ares_query would have given */
static void
dns_sec_cb(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
	struct dns_sq	*sq = arg;
	ares_callback	 cb = sq->cb;
	void		*cbarg = sq->arg;

	free(sq);
	dns.answer_ad = 0;
	if (status == ARES_SUCCESS && (abuf == NULL || alen < 12))
		status = ARES_EBADRESP;
	else if (status == ARES_SUCCESS) {
		switch (abuf[3] & 0x0f) {
		case 0:
			status = (abuf[6] << 8 | abuf[7]) > 0 ? ARES_SUCCESS :
			    ARES_ENODATA;
			break;
		case 1:
			status = ARES_EFORMERR;
			break;
		case 2:		/* from a validating resolver: bogus, often */
			status = ARES_ESERVFAIL;
			break;
		case 3:
			status = ARES_ENOTFOUND;
			break;
		case 4:
			status = ARES_ENOTIMP;
			break;
		case 5:
			status = ARES_EREFUSED;
			break;
		default:
			status = ARES_EBADRESP;
			break;
		}
		/* AD: the data, or its denial, validated (RFC 4035 3.2.3) */
		if (status == ARES_SUCCESS || status == ARES_ENODATA ||
		    status == ARES_ENOTFOUND)
			dns.answer_ad = (abuf[3] & 0x20) != 0;
	}
	cb(cbarg, status, timeouts, abuf, alen);
	dns.answer_ad = 0;
}

/*
 * dns_send - one query of lk: ares_query, or with dns_dnssec one built
 * with EDNS and the AD bit (RFC 6840 5.7) and sent by ares_send, whose
 * callback sees dns.answer_ad.  cb may run before this returns.
 */
static void
dns_send(struct dns_lookup *lk, const char *name, int type, ares_callback cb,
    void *arg)
{
	struct dns_sq	*sq;
	unsigned char	*q;
	int		 qlen, rc;

	if (!lk->dnssec) {
		ares_query(dns.loop.chan, name, ns_c_in, type, cb, arg);
		return;
	}
	if ((sq = malloc(sizeof(*sq))) == NULL) {
		cb(arg, ARES_ENOMEM, 0, NULL, 0);
		return;
	}
	sq->cb = cb;
	sq->arg = arg;
	/* ares_send keeps the caller's id: a random one, as ares_query's */
	rc = ares_create_query(name, ns_c_in, type,
	    (unsigned short)arc4random(), 1, &q, &qlen, DNS_EDNS_SIZE);
	if (rc != ARES_SUCCESS) {
		free(sq);
		cb(arg, rc, 0, NULL, 0);
		return;
	}
	q[3] |= 0x20;		/* AD */
	ares_send(dns.loop.chan, q, qlen, dns_sec_cb, sq);	/* copies q */
	ares_free_string(q);
}

/* dns_what - what lk->qname is, in texts: "domain" or "smarthost" */
static const char *
dns_what(const struct dns_lookup *lk)
{
	return lk->smarthost ? "smarthost" : "domain";
}

/* dns_is_self_name - host name equals our hostname (case, trailing dot) */
static int
dns_is_self_name(const char *name)
{
	size_t	a = strlen(name), b = strlen(dns.hostname);

	if (a > 0 && name[a - 1] == '.')
		a--;
	if (b > 0 && dns.hostname[b - 1] == '.')
		b--;
	return a == b && b > 0 && strncasecmp(name, dns.hostname, a) == 0;
}

/* dns_is_self_addr - address:port is one of our listeners */
static int
dns_is_self_addr(const struct sockaddr_storage *ss)
{
	const struct sockaddr_in	*a4 = (const void *)ss, *l4;
	const struct sockaddr_in6	*a6 = (const void *)ss, *l6;
	size_t				 i;

	for (i = 0; i < dns.nlisten; i++) {
		if (dns.listen[i].ss.ss_family != ss->ss_family)
			continue;
		if (ss->ss_family == AF_INET) {
			l4 = (const void *)&dns.listen[i].ss;
			if (l4->sin_port == a4->sin_port &&
			    (l4->sin_addr.s_addr == htonl(INADDR_ANY) ||
			    l4->sin_addr.s_addr == a4->sin_addr.s_addr))
				return 1;
		} else if (ss->ss_family == AF_INET6) {
			l6 = (const void *)&dns.listen[i].ss;
			if (l6->sin6_port == a6->sin6_port &&
			    (IN6_IS_ADDR_UNSPECIFIED(&l6->sin6_addr) ||
			    IN6_ARE_ADDR_EQUAL(&l6->sin6_addr, &a6->sin6_addr)))
				return 1;
		}
	}
	return 0;
}

/* dns_add_addr - one address with the route's port into host h */
static void
dns_add_addr(struct dlv_host *h, int family, const void *addr, unsigned port)
{
	struct sockaddr_in	*s4;
	struct sockaddr_in6	*s6;
	size_t			 i = h->naddrs;

	if (i >= DLV_MAX_ADDRS)
		return;
	memset(&h->addrs[i], 0, sizeof(h->addrs[i]));
	if (family == AF_INET) {
		s4 = (struct sockaddr_in *)(void *)&h->addrs[i];
		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)port);
		memcpy(&s4->sin_addr, addr, sizeof(s4->sin_addr));
		h->alens[i] = sizeof(*s4);
	} else {
		s6 = (struct sockaddr_in6 *)(void *)&h->addrs[i];
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)port);
		memcpy(&s6->sin6_addr, addr, sizeof(s6->sin6_addr));
		h->alens[i] = sizeof(*s6);
	}
	h->naddrs++;
}

/* dns_keep_below - drop hosts with pref >= self (RFC 5321 5.1) */
static void
dns_keep_below(struct dns_lookup *lk, int self)
{
	size_t	i, n = 0;

	for (i = 0; i < lk->route.nhosts; i++)
		if (lk->route.hosts[i].pref < self)
			n++;
	/* hosts are sorted by preference: the kept ones are a prefix */
	lk->route.nhosts = n;
}

/* dns_complete - every address query answered: self-detection, result */
static void
dns_complete(struct dns_lookup *lk)
{
	struct dlv_route	*r = &lk->route;
	size_t			 i, j, n;
	int			 self = lk->selfpref;

	for (i = 0; i < r->nhosts; i++) {
		r->hosts[i].naddrs = 0;
		r->hosts[i].secure = lk->dnssec && r->secure &&
		    !lk->insecure[i];
		if (r->hosts[i].secure)
			memcpy(r->hosts[i].cname, lk->cname[i],
			    sizeof(r->hosts[i].cname));
		for (j = 0; j < lk->n4[i]; j++)
			dns_add_addr(&r->hosts[i], AF_INET, &lk->a4[i][j],
			    lk->port);
		for (j = 0; j < lk->n6[i]; j++)
			dns_add_addr(&r->hosts[i], AF_INET6, &lk->a6[i][j],
			    lk->port);
		for (j = 0; j < r->hosts[i].naddrs; j++)
			if (dns_is_self_addr(&r->hosts[i].addrs[j]) &&
			    (self == -1 || r->hosts[i].pref < self))
				self = r->hosts[i].pref;
	}
	if (self != -1) {
		dns_keep_below(lk, self);
		if (r->nhosts == 0) {
			dns_finish(lk, DLV_ROUTE_LOOP,
			    "mail for %s loops back to myself", lk->domain);
			return;
		}
	}
	for (i = n = 0; i < r->nhosts; i++) {
		if (r->hosts[i].naddrs == 0)
			continue;
		if (n != i)
			memcpy(&r->hosts[n], &r->hosts[i], sizeof(r->hosts[n]));
		n++;
	}
	r->nhosts = n;
	if (n == 0) {
		if (lk->tempfail)
			dns_finish(lk, DLV_ROUTE_NOHOST,
			    "address lookup for %s%s %s failed: %s",
			    lk->direct ? "" : "the MX host(s) of ",
			    dns_what(lk), lk->qname, lk->temperr);
		else
			dns_finish(lk, DLV_ROUTE_NOHOST,
			    "no address for %s%s %s", lk->direct ? "" :
			    "the MX host(s) of ", dns_what(lk), lk->qname);
		return;
	}
	dns_tlsa_start(lk);
}

/* dns_addr_cb - an A or AAAA answer for one host */
static void
dns_addr_cb(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
	struct dns_hq		*q = arg;
	struct dns_lookup	*lk = q->lk;
	struct ares_addrttl	 t4[DLV_MAX_ADDRS];
	struct ares_addr6ttl	 t6[DLV_MAX_ADDRS];
	int			 n = DLV_MAX_ADDRS, i, rc;

	(void)timeouts;
	if (status == ARES_EDESTRUCTION || status == ARES_ECANCELLED)
		return;
	if (!dns.answer_ad)
		lk->insecure[q->host] = 1;
	else if (status == ARES_SUCCESS && lk->cname[q->host][0] == '\0')
		(void)dlv_dane_expanded(abuf, (size_t)alen,
		    lk->route.hosts[q->host].name, lk->cname[q->host],
		    sizeof(lk->cname[q->host]));
	if (status == ARES_SUCCESS) {
		if (q->family == AF_INET) {
			rc = ares_parse_a_reply(abuf, alen, NULL, t4, &n);
			for (i = 0; rc == ARES_SUCCESS && i < n &&
			    lk->n4[q->host] < DLV_MAX_ADDRS; i++)
				lk->a4[q->host][lk->n4[q->host]++] =
				    t4[i].ipaddr;
		} else {
			rc = ares_parse_aaaa_reply(abuf, alen, NULL, t6, &n);
			for (i = 0; rc == ARES_SUCCESS && i < n &&
			    lk->n6[q->host] < DLV_MAX_ADDRS; i++)
				lk->a6[q->host][lk->n6[q->host]++] =
				    t6[i].ip6addr;
		}
		if (rc != ARES_SUCCESS && rc != ARES_ENODATA)
			status = rc;
	}
	if (status != ARES_SUCCESS && status != ARES_ENODATA &&
	    status != ARES_ENOTFOUND && status != ARES_EBADNAME) {
		lk->tempfail = 1;
		snprintf(lk->temperr, sizeof(lk->temperr), "%s",
		    ares_strerror(status));
	}
	if (--lk->pending == 0)
		dns_complete(lk);
}

/* dns_resolve_hosts - A and AAAA for every host in the route */
static void
dns_resolve_hosts(struct dns_lookup *lk)
{
	size_t	i, nq = 0;

	lk->pending = (int)(lk->route.nhosts * 2);
	for (i = 0; i < lk->route.nhosts; i++) {
		lk->hq[nq].lk = lk;
		lk->hq[nq].host = i;
		lk->hq[nq].family = AF_INET;
		lk->hq[nq + 1] = lk->hq[nq];
		lk->hq[nq + 1].family = AF_INET6;
		nq += 2;
	}
	for (i = 0; i < nq; i++)
		dns_send(lk, lk->route.hosts[lk->hq[i].host].name,
		    lk->hq[i].family == AF_INET ? ns_t_a : ns_t_aaaa,
		    dns_addr_cb, &lk->hq[i]);
}

/* dns_tlsa_name - "_25._tcp.HOST" (RFC 7672 2.2.3: port 25 always) */
static int
dns_tlsa_name(const char *host, char *out, size_t outlen)
{
	int	n = snprintf(out, outlen, "_25._tcp.%s", host);

	return n < 0 || (size_t)n >= outlen || n > 253 ? -1 : 0;
}

/* dns_tlsa_send - the TLSA query of host q->host at q->family's name
 * (RFC 7672 2.2.2: the CNAME expansion first, then the host name); 0, or
 * -1 when no owner name fits (no query sent) */
static int
dns_tlsa_send(struct dns_lookup *lk, struct dns_hq *q)
{
	const struct dlv_host	*h = &lk->route.hosts[q->host];
	char			 name[300];

	if (dns_tlsa_name(q->family ? h->cname : h->name, name,
	    sizeof(name)) == -1)
		return -1;
	dns_send(lk, name, DNS_T_TLSA, dns_tlsa_cb, q);
	return 0;
}

/* dns_tlsa_cb - the TLSA answer for one secure host */
static void
dns_tlsa_cb(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
	struct dns_hq		*q = arg;
	struct dns_lookup	*lk = q->lk;
	struct dlv_host		*h = &lk->route.hosts[q->host];
	char			 name[300] = "";

	(void)timeouts;
	if (status == ARES_EDESTRUCTION || status == ARES_ECANCELLED)
		return;
	if (dns_tlsa_name(q->family ? h->cname : h->name, name,
	    sizeof(name)) == 0)
		dlv_dane_answer(&h->dane, name, status, abuf, alen,
		    dns.answer_ad);
	log_debug("dns: %s: TLSA %s: dane state %d, %zu usable record(s)%s%s",
	    lk->domain, name, (int)h->dane.state, h->dane.ntlsa,
	    h->dane.why[0] ? ": " : "", h->dane.why);
	if (q->family && h->dane.state == DLV_DANE_NONE) {
		/* none at the expansion: the host name's own */
		q->family = 0;
		if (dns_tlsa_send(lk, q) == 0)
			return;
	} else if (q->family)	/* the expansion is the base domain */
		memcpy(h->dane.base, h->cname, sizeof(h->dane.base));
	if (--lk->pending == 0)
		dns_finish(lk, DLV_ROUTE_OK, "%zu host(s)",
		    lk->route.nhosts);
}

/* dns_tlsa_start - TLSA for every secure host, then the route is done */
static void
dns_tlsa_start(struct dns_lookup *lk)
{
	struct dlv_route	*r = &lk->route;
	size_t			 i;
	int			 n = 0;

	for (i = 0; i < r->nhosts; i++) {
		memset(&r->hosts[i].dane, 0, sizeof(r->hosts[i].dane));
		if (r->hosts[i].secure)
			n++;
	}
	if (n == 0) {
		dns_finish(lk, DLV_ROUTE_OK, "%zu host(s)", r->nhosts);
		return;
	}
	lk->pending = n;
	for (i = 0; i < r->nhosts; i++) {
		if (!r->hosts[i].secure)
			continue;
		lk->hq[i].lk = lk;
		lk->hq[i].host = i;
		lk->hq[i].family = r->hosts[i].cname[0] != '\0';
		if (dns_tlsa_send(lk, &lk->hq[i]) == 0)
			continue;
		lk->hq[i].family = 0;
		if (dns_tlsa_send(lk, &lk->hq[i]) == 0)
			continue;
		/* no TLSA owner name fits: the lookup fails */
		r->hosts[i].dane.state = DLV_DANE_ERROR;
		(void)snprintf(r->hosts[i].dane.why,
		    sizeof(r->hosts[i].dane.why), "TLSA owner name for %.120s "
		    "too long", r->hosts[i].name);
		if (--lk->pending == 0)
			dns_finish(lk, DLV_ROUTE_OK, "%zu host(s)", r->nhosts);
	}
}

/* dns_mx_cmp - by preference, then by the shuffle key */
struct dns_mx {
	const char	*host;
	int		 pref;
	unsigned	 key;
};

static int
dns_mx_cmp(const void *a, const void *b)
{
	const struct dns_mx	*x = a, *y = b;

	if (x->pref != y->pref)
		return x->pref < y->pref ? -1 : 1;
	if (x->key != y->key)
		return x->key < y->key ? -1 : 1;
	return 0;
}

/* dns_add_host - append a host name to the route */
static int
dns_add_host(struct dns_lookup *lk, const char *name, int pref)
{
	struct dlv_host	*h;
	size_t		 len = strlen(name);

	if (len > 0 && name[len - 1] == '.')
		len--;
	if (lk->route.nhosts >= DLV_MAX_HOSTS || len == 0 ||
	    len >= sizeof(h->name))
		return -1;
	h = &lk->route.hosts[lk->route.nhosts++];
	memset(h, 0, sizeof(*h));
	memcpy(h->name, name, len);
	h->name[len] = '\0';
	h->pref = pref;
	return 0;
}

/* dns_mx_cb - the MX answer for lk->qname */
static void
dns_mx_cb(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
	struct dns_lookup	*lk = arg;
	struct ares_mx_reply	*mx = NULL, *m;
	struct dns_mx		 v[DNS_MAX_MX];
	size_t			 n = 0, i;
	int			 rc;

	(void)timeouts;
	if (status == ARES_EDESTRUCTION || status == ARES_ECANCELLED)
		return;
	lk->pending--;
	/* the MX RRset, or its denial (implicit MX), validated */
	lk->route.secure = dns.answer_ad;
	if (status == ARES_SUCCESS) {
		rc = ares_parse_mx_reply(abuf, alen, &mx);
		if (rc != ARES_SUCCESS)
			status = rc;
	}
	switch (status) {
	case ARES_SUCCESS:
		break;
	case ARES_ENODATA:		/* no MX: implicit MX, RFC 5321 5.1 */
		if (dns_is_self_name(lk->qname)) {
			dns_finish(lk, DLV_ROUTE_LOOP,
			    "mail for %s loops back to myself", lk->domain);
			return;
		}
		if (dns_add_host(lk, lk->qname, 0) == -1) {
			dns_finish(lk, DLV_ROUTE_NXDOMAIN,
			    "invalid %s name %s", dns_what(lk), lk->qname);
			return;
		}
		lk->direct = 1;
		dns_resolve_hosts(lk);
		return;
	case ARES_ENOTFOUND:
		/* a smarthost that does not exist is our configuration's
		 * error, not the recipient's: deferred, never bounced */
		dns_finish(lk, lk->smarthost ? DLV_ROUTE_TEMP :
		    DLV_ROUTE_NXDOMAIN, "%s %s not found (NXDOMAIN)",
		    dns_what(lk), lk->qname);
		return;
	case ARES_EBADNAME:
		dns_finish(lk, DLV_ROUTE_NXDOMAIN, "invalid %s name %s",
		    dns_what(lk), lk->qname);
		return;
	default:
		dns_finish(lk, DLV_ROUTE_TEMP, "MX lookup for %s %s failed: %s",
		    dns_what(lk), lk->qname, ares_strerror(status));
		return;
	}

	/* RFC 7505: a single MX with the root as exchange and preference 0 */
	if (mx != NULL && mx->next == NULL && mx->priority == 0 &&
	    (mx->host[0] == '\0' || strcmp(mx->host, ".") == 0)) {
		ares_free_data(mx);
		dns_finish(lk, DLV_ROUTE_NULLMX,
		    "domain %s does not accept mail (null MX)", lk->qname);
		return;
	}
	for (m = mx; m != NULL && n < DNS_MAX_MX; m = m->next) {
		if (m->host[0] == '\0' || strcmp(m->host, ".") == 0)
			continue;
		v[n].host = m->host;
		v[n].pref = m->priority;
		v[n].key = arc4random();
		n++;
	}
	qsort(v, n, sizeof(v[0]), dns_mx_cmp);
	for (i = 0; i < n; i++)
		if (dns_is_self_name(v[i].host) &&
		    (lk->selfpref == -1 || v[i].pref < lk->selfpref))
			lk->selfpref = v[i].pref;
	for (i = 0; i < n; i++)
		if (lk->selfpref == -1 || v[i].pref < lk->selfpref)
			(void)dns_add_host(lk, v[i].host, v[i].pref);
	ares_free_data(mx);
	if (lk->route.nhosts == 0) {
		if (lk->selfpref != -1)
			dns_finish(lk, DLV_ROUTE_LOOP,
			    "mail for %s loops back to myself", lk->domain);
		else
			dns_finish(lk, DLV_ROUTE_NOHOST,
			    "no usable MX host for %s %s", dns_what(lk),
			    lk->qname);
		return;
	}
	dns_resolve_hosts(lk);
}

/* ---------------------------------------------------------------- lookups */

/* dns_literal - "1.2.3.4", "::1", "IPv6:::1" into host h; 0 or -1 */
static int
dns_literal(struct dns_lookup *lk, const char *s, size_t len)
{
	char		 text[64];
	unsigned char	 a[16];
	struct dlv_host	*h;
	int		 fam;

	if (len >= 5 && strncasecmp(s, "IPv6:", 5) == 0) {
		s += 5;
		len -= 5;
	}
	if (len == 0 || len >= sizeof(text))
		return -1;
	memcpy(text, s, len);
	text[len] = '\0';
	if (inet_pton(AF_INET, text, a) == 1)
		fam = AF_INET;
	else if (inet_pton(AF_INET6, text, a) == 1)
		fam = AF_INET6;
	else
		return -1;
	h = &lk->route.hosts[0];
	memset(h, 0, sizeof(*h));
	memcpy(h->name, text, len + 1);
	dns_add_addr(h, fam, a, lk->port);
	lk->route.nhosts = 1;
	if (dns_is_self_addr(&h->addrs[0]))
		dns_finish(lk, DLV_ROUTE_LOOP, "mail for %s loops back to myself",
		    lk->domain);
	else
		dns_finish(lk, DLV_ROUTE_OK, "address literal");
	return 0;
}

/* dns_start_smarthost - "[host]:port", "[addr]", "host:port", "host" */
static void
dns_start_smarthost(struct dns_lookup *lk)
{
	char		 host[256];
	unsigned	 port = lk->port;
	int		 nomx;		/* "[host]": no MX lookup */

	if (host_port_split(dns.smarthost, host, sizeof(host), &nomx,
	    &port) == -1)
		goto bad;
	lk->smarthost = 1;
	lk->port = port;
	if (dns_literal(lk, host, strlen(host)) == 0)
		return;
	if (snprintf(lk->qname, sizeof(lk->qname), "%s", host) < 0)
		goto bad;
	if (nomx) {
		if (dns_is_self_name(host)) {
			dns_finish(lk, DLV_ROUTE_LOOP,
			    "mail for %s loops back to myself", lk->domain);
			return;
		}
		if (dns_add_host(lk, host, 0) == -1)
			goto bad;
		lk->direct = 1;
		lk->route.secure = 1;	/* a name we were given, not an MX */
		dns_resolve_hosts(lk);
		return;
	}
	lk->pending = 1;
	dns_send(lk, lk->qname, ns_t_mx, dns_mx_cb, lk);
	return;
bad:
	dns_finish(lk, DLV_ROUTE_TEMP, "invalid smarthost \"%s\"", dns.smarthost);
}

int
dlv_route_lookup(const char *domain, dlv_route_fn cb, void *arg)
{
	struct dns_lookup	*lk;
	size_t			 len;

	if (!dns.loop.up || domain == NULL || cb == NULL ||
	    (len = strlen(domain)) >= sizeof(lk->domain))
		return -1;
	if ((lk = lookup_new()) == NULL)
		return -1;
	if ((lk->done_ev = event_new(dns.loop.base, -1, 0, dns_done_cb, lk)) ==
	    NULL) {
		lookup_release(lk);
		return -1;
	}
	lk->cb = cb;
	lk->arg = arg;
	lk->selfpref = -1;
	lk->port = dns.smtp_port;
	lk->dnssec = dns.dnssec;
	memcpy(lk->domain, domain, len + 1);
	memcpy(lk->qname, domain, len + 1);
	lk->next = dns.lookups;
	if (lk->next != NULL)
		lk->next->prevp = &lk->next;
	lk->prevp = &dns.lookups;
	dns.lookups = lk;

	if (dns.smarthost[0] != '\0')
		dns_start_smarthost(lk);
	else if (domain[0] == '[' && len >= 2 && domain[len - 1] == ']') {
		if (dns_literal(lk, domain + 1, len - 2) == -1)
			dns_finish(lk, DLV_ROUTE_NXDOMAIN,
			    "invalid address literal %s", domain);
	} else if (len == 0)
		dns_finish(lk, DLV_ROUTE_NXDOMAIN, "empty domain");
	else {
		lk->pending = 1;
		dns_send(lk, lk->qname, ns_t_mx, dns_mx_cb, lk);
	}
	dnsloop_reschedule(&dns.loop);
	return 0;
}

/* ---------------------------------------------------------------- raw */

/* dns_raw_unlink - take q off the in-flight list */
static void
dns_raw_unlink(struct dns_raw *q)
{
	*q->prevp = q->next;
	if (q->next != NULL)
		q->next->prevp = q->prevp;
}

/* dns_raw_cb - one dlv_dns_query answered */
static void
dns_raw_cb(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
	struct dns_raw	*q = arg;

	(void)timeouts;
	if (status == ARES_EDESTRUCTION)
		return;		/* dlv_dns_shutdown frees q */
	dns_raw_unlink(q);
	if (q->cb != NULL)
		q->cb(q->arg, status, abuf, alen);
	free(q);
	dnsloop_reschedule(&dns.loop);
}

int
dlv_dns_query(const char *name, int type, dlv_dns_fn cb, void *arg)
{
	struct dns_raw	*q;

	if (!dns.loop.up || name == NULL || cb == NULL ||
	    (q = calloc(1, sizeof(*q))) == NULL)
		return -1;
	q->cb = cb;
	q->arg = arg;
	q->next = dns.raws;
	if (q->next != NULL)
		q->next->prevp = &q->next;
	q->prevp = &dns.raws;
	dns.raws = q;
	ares_query(dns.loop.chan, name, ns_c_in, type, dns_raw_cb, q);
	dnsloop_reschedule(&dns.loop);
	return 0;
}

void
dlv_dns_query_cancel(void *arg)
{
	struct dns_raw	*q;

	for (q = dns.raws; q != NULL; q = q->next)
		if (q->arg == arg)
			q->cb = NULL;
}
