#include "config.h"
/*
 * dlv_remote.c - remote (SMTP) and LMTP delivery jobs.
 * Owns: dlv_remote_init/reload/shutdown/start and dlv_lmtp_start; the
 *       job life cycle (wait for a concurrency slot, route look-up via
 *       dlv_dns.c, then client sessions from dlv_smtp.c over the route's
 *       hosts and addresses in order); the concurrency limits (global
 *       smtp_concurrency, per destination smtp_destination_concurrency,
 *       destination = smarthost or recipient domain; jobs over a limit
 *       wait in one FIFO); the idle connection cache (a connection stays
 *       parked up to 5 s, keyed by the address it connected to, and the
 *       next job to that address reuses it); the client SSL_CTX and the
 *       smarthost_auth secret.
 * Fallback: connection failure, connect timeout or a 4xx greeting ->
 *       next address (then next host); 5xx greeting -> next host; a
 *       failed TLS handshake with smtp_tls = may -> the same address once
 *       more in plaintext.  DANE (dlv_dane.c): a host whose TLSA lookup
 *       failed is skipped unconnected; a parked connection serves only
 *       a host with the same DANE state and records.  All exhausted:
 *       the last error for every open
 *       recipient.
 * REQUIRETLS (RFC 8689 4.2.1, sender not <>): a host whose MX name is
 *       not validated (smarthost, DNSSEC-secure MX, MTA-STS mx pattern)
 *       is skipped with 550 5.7.10; REQUIRETLS failures (5.7.30, 5.7.10)
 *       are kept apart, 5.7.30 over 5.7.10, and reported only when no
 *       host failed otherwise (then that error: usually a retry).
 *       "TLS-Required: No" (4.2.2): DANE and MTA-STS enforcement are
 *       relaxed to opportunistic for that message (peer_tls_optional).
 * Route failures: TEMP/NOHOST 4.4.3, NXDOMAIN 550 5.1.2,
 *       NULLMX 556 5.1.10, LOOP 554 5.4.6.
 * Completion: done() always runs from its own zero-delay event, never
 *       inside dlv_remote_start; except at dlv_remote_shutdown, which
 *       reports every job synchronously.
 */

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <netinet/in.h>

#include <event2/event.h>
#include <openssl/ssl.h>
#include <openssl/err.h>

#include "common/cfg.h"
#include "common/intl.h"
#include "common/log.h"
#include "common/util.h"
#include "delivery/dlv_int.h"

#define IDLE_MAX	100	/* parked connections kept */

enum job_state { J_WAIT, J_ROUTE, J_SESS, J_DONE };

struct dest {
	TAILQ_ENTRY(dest)	 entry;
	char			 key[300];
	unsigned		 active;	/* jobs started */
	unsigned		 refs;		/* jobs (waiting or started) */
};

struct dlv_job {
	TAILQ_ENTRY(dlv_job)	 entry;		/* jobs, or zombies */
	TAILQ_ENTRY(dlv_job)	 wentry;	/* waiting */
	enum job_state		 st;
	const struct config	*cfg;
	struct dlv_msg		 m;
	dlv_done_fn		 done;
	void			*arg;
	struct dest		*dest;
	char			 domain[256];
	int			 lmtp;
	struct dlv_route	*route;
	struct dlv_sts		*sts;		/* MTA-STS policy, NULL = none */
	int			 sts_wait;	/* dlv_sts_lookup in flight */
	int			 no_policy;	/* a TLS-RPT report: no TLS policy */
	size_t			 hi, ai;	/* host / address being tried */
	int			 plain;		/* plaintext retry of this address */
	int			 tried_idle;
	int			 noreuse;
	struct dlv_sess		*sess;
	struct dlv_result	 err;
	int			 have_err;
	/* RFC 8689: the most specific REQUIRETLS failure of a host so far
	 * (5.7.30 over 5.7.10); reported only when no host failed otherwise */
	struct dlv_result	 rtls;
	int			 have_rtls;
	struct event		*fin;
};

struct idle {
	TAILQ_ENTRY(idle)	 entry;
	struct dlv_sess		*s;
};

static TAILQ_HEAD(, dlv_job)	jobs = TAILQ_HEAD_INITIALIZER(jobs);
static TAILQ_HEAD(, dlv_job)	zombies = TAILQ_HEAD_INITIALIZER(zombies);
static TAILQ_HEAD(, dlv_job)	waiting = TAILQ_HEAD_INITIALIZER(waiting);
static TAILQ_HEAD(, dest)	dests = TAILQ_HEAD_INITIALIZER(dests);
static TAILQ_HEAD(, idle)	idles = TAILQ_HEAD_INITIALIZER(idles);
static size_t			nidle;

static struct {
	struct event_base	*base;
	const struct config	*cfg;
	SSL_CTX			*ctx;
	char			*user, *pass;
	unsigned		 active;
	int			 stopping;
	int			 ready;
} rs;

static void	try_addr(struct dlv_job *);
static void	pump(void);

/* ---- shared state for dlv_smtp.c ---- */

struct event_base *
dlv_remote_base(void)
{
	return rs.base;
}

static SSL_CTX	*ctx_new(const struct config *, char *, size_t);

/*
 * dlv_remote_ssl_ctx - the client TLS context, made at first use unless
 * verification needs it from the start: OpenSSL's initialisation and the
 * system CA store cost megabytes that an idle daemon should not carry.
 */
void *
dlv_remote_ssl_ctx(void)
{
	char	err[512];

	if (rs.ctx == NULL && rs.cfg != NULL &&
	    (rs.ctx = ctx_new(rs.cfg, err, sizeof(err))) == NULL)
		log_warnx("smtp: %s", err);
	return rs.ctx;
}

/* ctx_needed_now - build the context at start-up (to report errors) */
static int
ctx_needed_now(const struct config *cfg)
{
	return cfg->smtp_tls == CFG_TLS_VERIFY || cfg->smtp_tls_ca != NULL;
}

int
dlv_remote_auth(const char **user, const char **pass)
{
	if (rs.user == NULL || rs.pass == NULL)
		return -1;
	*user = rs.user;
	*pass = rs.pass;
	return 0;
}

/* ---- set-up ---- */

static void
auth_clear(void)
{
	if (rs.user != NULL) {
		explicit_bzero(rs.user, strlen(rs.user));
		free(rs.user);
	}
	if (rs.pass != NULL) {
		explicit_bzero(rs.pass, strlen(rs.pass));
		free(rs.pass);
	}
	rs.user = rs.pass = NULL;
}

/* auth_load - "username password" from the first line of path */
static int
auth_load(const char *path, char *err, size_t errlen)
{
	FILE	*fp;
	char	 line[1024], *u, *p, *e;

	auth_clear();
	if (path == NULL)
		return 0;
	if ((fp = fopen(path, "r")) == NULL) {
		(void)snprintf(err, errlen, "smarthost_auth: cannot open %s: %s",
		    path, strerror(errno));
		return -1;
	}
	if (fgets(line, sizeof(line), fp) == NULL)
		line[0] = '\0';
	fclose(fp);
	for (u = line; *u == ' ' || *u == '\t'; u++)
		;
	p = u + strcspn(u, " \t\r\n");
	if (*p != '\0')
		*p++ = '\0';
	while (*p == ' ' || *p == '\t')
		p++;
	e = p + strcspn(p, "\r\n");
	*e = '\0';
	while (e > p && (e[-1] == ' ' || e[-1] == '\t'))
		*--e = '\0';
	if (*u == '\0' || *p == '\0') {
		explicit_bzero(line, sizeof(line));
		(void)snprintf(err, errlen, "smarthost_auth: %s: want "
		    "\"username password\" on the first line", path);
		return -1;
	}
	rs.user = strdup(u);
	rs.pass = strdup(p);
	explicit_bzero(line, sizeof(line));
	if (rs.user == NULL || rs.pass == NULL) {
		auth_clear();
		(void)snprintf(err, errlen, "smarthost_auth: out of memory");
		return -1;
	}
	return 0;
}

static SSL_CTX *
ctx_new(const struct config *cfg, char *err, size_t errlen)
{
	SSL_CTX		*ctx;
	struct stat	 st;
	int		 ok;

	if ((ctx = SSL_CTX_new(TLS_client_method())) == NULL) {
		(void)snprintf(err, errlen, "cannot create the TLS client "
		    "context");
		return NULL;
	}
	(void)SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	if (dlv_dane_ctx_init(ctx) == -1) {
		(void)snprintf(err, errlen, "cannot enable DANE on the TLS "
		    "client context");
		SSL_CTX_free(ctx);
		return NULL;
	}
	if (cfg->smtp_tls_ca != NULL) {
		if (stat(cfg->smtp_tls_ca, &st) == 0 && S_ISDIR(st.st_mode))
			ok = SSL_CTX_load_verify_locations(ctx, NULL,
			    cfg->smtp_tls_ca);
		else
			ok = SSL_CTX_load_verify_locations(ctx,
			    cfg->smtp_tls_ca, NULL);
		if (ok != 1) {
			(void)snprintf(err, errlen, "smtp_tls_ca: cannot load "
			    "%s", cfg->smtp_tls_ca);
			SSL_CTX_free(ctx);
			return NULL;
		}
	} else
		(void)SSL_CTX_set_default_verify_paths(ctx);
	return ctx;
}

int
dlv_remote_init(const struct config *cfg, struct event_base *base,
    char *err, size_t errlen)
{
	rs.base = base;
	rs.cfg = cfg;
	if (ctx_needed_now(cfg) && (rs.ctx = ctx_new(cfg, err, errlen)) == NULL)
		return -1;
	if (auth_load(cfg->smarthost_auth, err, errlen) == -1)
		goto fail;
	if (dlv_dns_init(cfg, base, err, errlen) == -1 ||
	    dlv_sts_init(cfg, err, errlen) == -1 ||
	    dlv_tlsrpt_init(cfg, base, err, errlen) == -1)
		goto fail;
	rs.ready = 1;
	return 0;
fail:
	auth_clear();
	SSL_CTX_free(rs.ctx);
	rs.ctx = NULL;
	return -1;
}

void
dlv_remote_reload(const struct config *cfg)
{
	char	 err[512];
	SSL_CTX	*ctx;

	if (!rs.ready)
		return;
	if (rs.ctx == NULL && !ctx_needed_now(cfg))
		;	/* still made at first use, from the new configuration */
	else if ((ctx = ctx_new(cfg, err, sizeof(err))) == NULL)
		log_warnx("reload: %s; keeping the old TLS client context",
		    err);
	else {
		SSL_CTX_free(rs.ctx);	/* sessions hold their own references */
		rs.ctx = ctx;
	}
	if (auth_load(cfg->smarthost_auth, err, sizeof(err)) == -1)
		log_warnx("reload: %s; AUTH to the smarthost is off", err);
	if (dlv_dns_reload(cfg, err, sizeof(err)) == -1)
		log_warnx("reload: %s; keeping the old resolver settings", err);
	dlv_sts_reload(cfg);
	dlv_tlsrpt_reload(cfg);
	rs.cfg = cfg;
}

/* ---- destinations ---- */

static struct dest *
dest_get(const char *key)
{
	struct dest	*d;

	TAILQ_FOREACH(d, &dests, entry)
		if (strcasecmp(d->key, key) == 0)
			return d;
	if ((d = calloc(1, sizeof(*d))) == NULL)
		return NULL;
	(void)snprintf(d->key, sizeof(d->key), "%s", key);
	TAILQ_INSERT_TAIL(&dests, d, entry);
	return d;	/* the caller takes a reference */
}

static void
dest_put(struct dest *d)
{
	if (d != NULL && --d->refs == 0) {
		TAILQ_REMOVE(&dests, d, entry);
		free(d);
	}
}

/* ---- jobs ---- */

static void
job_free(struct dlv_job *j)
{
	size_t	i;

	if (j == NULL)
		return;
	if (j->fin != NULL)
		event_free(j->fin);
	for (i = 0; i < j->m.nrcpts; i++) {
		if (j->m.rcpts != NULL)
			free(j->m.rcpts[i]);
		if (j->m.orcpt != NULL)
			free(j->m.orcpt[i]);
	}
	free(j->m.orcpt);
	free(j->m.notify);
	free(j->m.envid);
	free(j->m.mtrk_cert);
	for (i = 0; i < j->m.ntrace; i++)
		free(j->m.trace[i]);
	free(j->m.rcpts);
	free(j->m.res);
	free(j->m.done);
	free(j->m.trace);
	free(j->m.sender);
	free(j->m.body_path);
	free(j->route);
	free(j->sts);
	free(j);
}

static void fin_cb(evutil_socket_t, short, void *);

/* job_new - copy what the job needs out of m */
static struct dlv_job *
job_new(const struct config *cfg, const struct qmsg *m, const char *path,
    const size_t *ridx, size_t n, dlv_done_fn done, void *arg)
{
	struct dlv_job	*j;
	size_t		 i;

	if (n == 0 || (j = calloc(1, sizeof(*j))) == NULL)
		return NULL;
	j->cfg = cfg;
	j->done = done;
	j->arg = arg;
	(void)snprintf(j->m.qid, sizeof(j->m.qid), "%s", m->qid);
	j->m.size = m->size;
	j->m.body_8bit = m->body_8bit;
	j->m.intl = m->intl;
	j->m.body_binary = m->body_binary;
	j->m.ret = m->ret;
	j->m.mtrk_timeout = m->mtrk_timeout;
	j->m.arrival = m->arrival;
	j->m.deliver_by = m->deliver_by;
	j->m.by_flags = m->by_flags;
	j->m.requiretls = m->requiretls;
	j->m.tls_optional = m->tls_optional && !m->requiretls;
	if ((j->fin = evtimer_new(rs.base, fin_cb, j)) == NULL ||
	    (j->m.sender = strdup(m->sender ? m->sender : "")) == NULL ||
	    (j->m.body_path = strdup(path)) == NULL ||
	    (j->m.rcpts = calloc(n, sizeof(char *))) == NULL ||
	    (j->m.res = calloc(n, sizeof(*j->m.res))) == NULL ||
	    (j->m.done = calloc(n, 1)) == NULL ||
	    (j->m.notify = calloc(n, sizeof(unsigned))) == NULL ||
	    (j->m.orcpt = calloc(n, sizeof(char *))) == NULL ||
	    (m->envid != NULL && (j->m.envid = strdup(m->envid)) == NULL) ||
	    (m->mtrk_certifier != NULL && !m->rcpts[ridx[0]].no_mtrk &&
	    (j->m.mtrk_cert = strdup(m->mtrk_certifier)) == NULL))
		goto fail;	/* (the scheduler never mixes no_mtrk recipients) */
	for (i = 0; i < n; i++, j->m.nrcpts++) {
		if (ridx[i] >= m->nrcpts ||
		    (j->m.rcpts[i] = strdup(m->rcpts[ridx[i]].addr)) == NULL)
			goto fail;
		j->m.res[i].ridx = ridx[i];
		j->m.notify[i] = m->rcpts[ridx[i]].notify;
		if (m->rcpts[ridx[i]].orcpt != NULL && (j->m.orcpt[i] =
		    strdup(m->rcpts[ridx[i]].orcpt)) == NULL) {
			free(j->m.rcpts[i]);
			goto fail;
		}
	}
	if (m->ntrace > 0) {
		if ((j->m.trace = calloc(m->ntrace, sizeof(char *))) == NULL)
			goto fail;
		for (i = 0; i < m->ntrace; i++, j->m.ntrace++)
			if ((j->m.trace[i] = strdup(m->trace[i])) == NULL)
				goto fail;
	}
	return j;
fail:
	job_free(j);
	return NULL;
}

/* job_fill - every open recipient gets r (its ridx kept) */
static void
job_fill(struct dlv_job *j, enum rcpt_status st, int code, const char *enh,
    const char *text, const char *remote)
{
	struct dlv_result	*r;
	size_t			 i;

	for (i = 0; i < j->m.nrcpts; i++) {
		if (j->m.done[i])
			continue;
		r = &j->m.res[i];
		r->status = st;
		r->code = code;
		(void)snprintf(r->enh, sizeof(r->enh), "%s", enh);
		(void)snprintf(r->text, sizeof(r->text), "%s", text);
		(void)snprintf(r->remote, sizeof(r->remote), "%s", remote);
		j->m.done[i] = 1;
	}
}

/* job_release - give back the concurrency slots */
static void
job_release(struct dlv_job *j)
{
	if (j->st == J_ROUTE || j->st == J_SESS) {
		rs.active--;
		if (j->dest != NULL)
			j->dest->active--;
	}
	dest_put(j->dest);
	j->dest = NULL;
}

/* job_report - hand the results to the queue and forget the job */
static void
job_report(struct dlv_job *j)
{
	TAILQ_REMOVE(&jobs, j, entry);
	j->done(j->arg, j->m.res, j->m.nrcpts);
	job_free(j);
}

static void
fin_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	job_report(arg);
}

/* job_finish - results are complete: free the slot, report soon */
static void
job_finish(struct dlv_job *j)
{
	struct timeval	zero = { 0, 0 };
	size_t		i;

	if (!j->have_err && j->have_rtls) {
		j->err = j->rtls;	/* every host failed REQUIRETLS */
		j->have_err = 1;
	}
	if (j->have_err) {
		/* the last attempt's TLS policy and outcome go along */
		for (i = 0; i < j->m.nrcpts; i++)
			if (!j->m.done[i]) {
				j->m.res[i].tls_policy = j->err.tls_policy;
				(void)snprintf(j->m.res[i].tls_result,
				    sizeof(j->m.res[i].tls_result), "%s",
				    j->err.tls_result);
			}
		job_fill(j, j->err.status, j->err.code, j->err.enh,
		    j->err.text, j->err.remote);
	}
	else
		job_fill(j, RS_DEFERRED, 451, "4.4.0", "delivery failed",
		    "");
	job_release(j);
	j->st = J_DONE;
	evtimer_add(j->fin, &zero);
	pump();
}

/* sts_wanted - MTA-STS applies: on, MX routing, a domain name */
static int
sts_wanted(const struct dlv_job *j)
{
	return j->cfg->mta_sts && !j->lmtp && !j->no_policy &&
	    j->cfg->smarthost == NULL &&
	    j->domain[0] != '\0' && j->domain[0] != '[';
}

/* sts_cb - the MTA-STS policy of j's domain (dlv_mtasts.c): sessions */
static void
sts_cb(void *arg, const struct dlv_sts *p)
{
	struct dlv_job	*j = arg;

	j->sts_wait = 0;
	if (j->st != J_ROUTE)
		return;
	if (p->mode != DLV_STS_NONE &&
	    (j->sts = malloc(sizeof(*j->sts))) != NULL)
		*j->sts = *p;
	j->st = J_SESS;
	try_addr(j);
}

/* route_cb - the route of j's domain (dlv_dns.c) */
static void
route_cb(void *arg, const struct dlv_route *r)
{
	struct dlv_job	*j = arg, *z;
	char		 text[512];

	TAILQ_FOREACH(z, &zombies, entry)
		if (z == j) {
			TAILQ_REMOVE(&zombies, j, entry);
			job_free(j);
			return;
		}
	if (j->st != J_ROUTE)
		return;
	switch (r->status) {
	case DLV_ROUTE_OK:
		if (r->nhosts == 0)
			break;
		/* only the hosts found: the whole struct is 27 KiB, and
		 * copying it for each delivery flushed the loop's L1 cache */
		if ((j->route = malloc(DLV_ROUTE_SIZE(r))) == NULL) {
			job_fill(j, RS_DEFERRED, 451, "4.3.0",
			    "out of memory", "");
			job_finish(j);
			return;
		}
		memcpy(j->route, r, DLV_ROUTE_SIZE(r));
		if (sts_wanted(j)) {
			j->sts_wait = 1;
			if (dlv_sts_lookup(j->domain, sts_cb, j) == 0)
				return;	/* J_ROUTE until the policy is known */
			j->sts_wait = 0;
		}
		j->st = J_SESS;
		try_addr(j);
		return;
	case DLV_ROUTE_NXDOMAIN:
		/* r->why names the domain and the step (dlv_dns.c) */
		if (r->why[0] != '\0')
			(void)snprintf(text, sizeof(text), "%.300s", r->why);
		else
			(void)snprintf(text, sizeof(text), "domain %s not "
			    "found", j->domain);
		job_fill(j, RS_FAILED, 550, "5.1.2", text, "");
		job_finish(j);
		return;
	case DLV_ROUTE_NULLMX:
		(void)snprintf(text, sizeof(text), "domain %s does not accept "
		    "mail (null MX)", j->domain);
		job_fill(j, RS_FAILED, 556, "5.1.10", text, "");
		job_finish(j);
		return;
	case DLV_ROUTE_LOOP:
		(void)snprintf(text, sizeof(text), "mail for %s loops back to "
		    "myself", j->domain);
		job_fill(j, RS_FAILED, 554, "5.4.6", text, "");
		job_finish(j);
		return;
	default:
		break;
	}
	if (r->why[0] != '\0')
		(void)snprintf(text, sizeof(text), "%.300s", r->why);
	else
		(void)snprintf(text, sizeof(text), "cannot find a mail host "
		    "for %s", j->domain);
	job_fill(j, RS_DEFERRED, 451, "4.4.3", text, "");
	job_finish(j);
}

/* job_begin - a slot is free: look the route up (or use the LMTP one) */
static void
job_begin(struct dlv_job *j)
{
	rs.active++;
	j->dest->active++;
	if (j->lmtp) {
		j->st = J_SESS;
		try_addr(j);
		return;
	}
	j->st = J_ROUTE;
	if (dlv_route_lookup(j->domain, route_cb, j) == -1) {
		job_fill(j, RS_DEFERRED, 451, "4.4.3", "cannot start the DNS "
		    "look-up", "");
		job_finish(j);
	}
}

static int
job_may_start(const struct dlv_job *j)
{
	const struct config	*c = rs.cfg;

	return rs.active < c->smtp_concurrency &&
	    j->dest->active < c->smtp_destination_concurrency;
}

/* pump - start waiting jobs, in FIFO order, that fit the limits */
static void
pump(void)
{
	struct dlv_job	*j, *next;

	for (j = TAILQ_FIRST(&waiting); j != NULL; j = next) {
		next = TAILQ_NEXT(j, wentry);
		if (rs.stopping || rs.active >= rs.cfg->smtp_concurrency)
			return;
		if (!job_may_start(j))
			continue;
		TAILQ_REMOVE(&waiting, j, wentry);
		job_begin(j);
		/* job_begin may finish other jobs and pump again: restart */
		next = TAILQ_FIRST(&waiting);
	}
}

static void
job_queue(struct dlv_job *j, const char *destkey)
{
	TAILQ_INSERT_TAIL(&jobs, j, entry);
	j->st = J_WAIT;
	if ((j->dest = dest_get(destkey)) == NULL) {
		job_fill(j, RS_DEFERRED, 451, "4.3.0", "out of memory", "");
		job_finish(j);
		return;
	}
	j->dest->refs++;
	if (TAILQ_EMPTY(&waiting) && job_may_start(j)) {
		job_begin(j);
		return;
	}
	TAILQ_INSERT_TAIL(&waiting, j, wentry);
}

/* ---- sessions ---- */

static int
same_addr(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
	if (a->ss_family != b->ss_family)
		return 0;
	if (a->ss_family == AF_INET) {
		const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;

		return x->sin_port == y->sin_port &&
		    x->sin_addr.s_addr == y->sin_addr.s_addr;
	}
	if (a->ss_family == AF_INET6) {
		const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;

		return x->sin6_port == y->sin6_port &&
		    memcmp(&x->sin6_addr, &y->sin6_addr, 16) == 0;
	}
	if (a->ss_family == AF_UNIX) {
		const struct sockaddr_un *x = (const void *)a, *y = (const void *)b;

		return strcmp(x->sun_path, y->sun_path) == 0;
	}
	return 0;
}

static void idle_cb(void *, struct dlv_sess *, enum dlv_outcome);

static void
idle_put(struct dlv_sess *s)
{
	struct idle	*n;

	if (rs.stopping || nidle >= IDLE_MAX ||
	    (n = calloc(1, sizeof(*n))) == NULL) {
		dlv_sess_quit(s);
		return;
	}
	n->s = s;
	TAILQ_INSERT_TAIL(&idles, n, entry);
	nidle++;
	dlv_sess_park(s, idle_cb, n);
}

/* idle_cb - a parked connection timed out or was closed */
static void
idle_cb(void *arg, struct dlv_sess *s, enum dlv_outcome o)
{
	struct idle	*n = arg;

	(void)o;
	TAILQ_REMOVE(&idles, n, entry);
	nidle--;
	free(n);
	dlv_sess_quit(s);
}

/* idle_take - a parked connection to one of j's addresses */
static struct dlv_sess *
idle_take(struct dlv_job *j)
{
	const struct dlv_peer	*p;
	struct idle		*n;
	struct dlv_sess		*s;
	size_t			 h, a;

	for (h = 0; h < j->route->nhosts; h++)
		for (a = 0; a < j->route->hosts[h].naddrs; a++)
			TAILQ_FOREACH(n, &idles, entry) {
				p = dlv_sess_peer(n->s);
				if (p->lmtp != j->lmtp || !same_addr(&p->ss,
				    &j->route->hosts[h].addrs[a]) ||
				    !dlv_dane_same(&p->dane,
				    &j->route->hosts[h].dane))
					continue;
				s = n->s;
				TAILQ_REMOVE(&idles, n, entry);
				nidle--;
				free(n);
				j->hi = h;
				j->ai = a;
				return s;
			}
	return NULL;
}

static void sess_cb(void *, struct dlv_sess *, enum dlv_outcome);

/* peer_of - the dlv_peer for address ai of host hi */
static void
peer_of(struct dlv_job *j, struct dlv_peer *p)
{
	const struct dlv_host	*h = &j->route->hosts[j->hi];
	char			 at[64] = "";

	memset(p, 0, sizeof(*p));
	memcpy(&p->ss, &h->addrs[j->ai], sizeof(p->ss));
	p->len = h->alens[j->ai];
	(void)snprintf(p->name, sizeof(p->name), "%s", h->name);
	p->lmtp = j->lmtp;
	if (j->lmtp) {
		const char *v = j->cfg->lmtp;

		if (strncmp(v, "unix:", 5) == 0) {
			v += 5;
			p->notls = 1;
		}
		(void)snprintf(p->remote, sizeof(p->remote), "lmtp:%.250s", v);
	} else {
		if (sockaddr_text((const struct sockaddr *)&p->ss, at,
		    sizeof(at)) == -1)
			(void)snprintf(at, sizeof(at), "?");
		/* an address literal (smarthost [addr]) is its own name */
		if (strcmp(h->name, at) == 0)
			(void)snprintf(p->remote, sizeof(p->remote), "[%s]",
			    at);
		else
			(void)snprintf(p->remote, sizeof(p->remote),
			    "%.180s[%s]", h->name, at);
		p->auth = j->cfg->smarthost != NULL && rs.user != NULL;
		dlv_dane_peer(p, j->route, h);
	}
	if (j->plain)
		p->notls = 1;
}

/*
 * peer_sts - the MTA-STS policy for host p (RFC 8461 4, 5), unless a
 * DANE policy is in force for it: enforce needs an MX that matches a
 * pattern (else -1: this host is skipped as unreachable, with j->err
 * saying why) and STARTTLS with a certificate valid for the MX name;
 * testing delivers anyway and only notes the outcome.
 */
static int
peer_sts(struct dlv_job *j, struct dlv_peer *p)
{
	const struct dlv_sts	*s = j->sts;
	int			 match, enforce = s->mode == DLV_STS_ENFORCE;

	if (dlv_dane_policy(p) == DLV_TLS_DANE)
		return 0;	/* DANE wins (RFC 8461 2) */
	match = dlv_sts_mx_match(s, p->name);
	(void)snprintf(p->tls_domain, sizeof(p->tls_domain), "%s", s->domain);
	(void)snprintf(p->tls_mxpat, sizeof(p->tls_mxpat), "%s",
	    s->mx[match ? match - 1 : 0]);
	if (!match) {
		char ip[64] = "";

		(void)sockaddr_text((const struct sockaddr *)&p->ss, ip,
		    sizeof(ip));
		dlv_tlsrpt_count(s->domain, "sts", p->tls_mxpat,
		    "validation-failure", p->name, ip, NULL,
		    "mx-not-in-policy");
	}
	if (!match && enforce && !j->m.tls_optional) {
		memset(&j->err, 0, sizeof(j->err));
		j->err.status = RS_DEFERRED;
		j->err.code = 451;
		(void)snprintf(j->err.enh, sizeof(j->err.enh), "4.7.5");
		(void)snprintf(j->err.text, sizeof(j->err.text), "MX host "
		    "%.200s does not match the MTA-STS policy of %.200s "
		    "(tls_policy=mta-sts mode=enforce)", p->remote, s->domain);
		(void)snprintf(j->err.remote, sizeof(j->err.remote), "%s",
		    p->remote);
		j->have_err = 1;
		log_info("qid=%s smtp: %s", j->m.qid, j->err.text);
		return -1;
	}
	p->tls_policy = DLV_TLS_MTA_STS;
	p->tls_require = enforce;
	p->tls_verify = enforce;
	p->tls_check = !enforce;
	p->tls_mxbad = !match;
	(void)snprintf(p->tls_note, sizeof(p->tls_note), "tls_policy=mta-sts "
	    "mode=%s%s", enforce ? "enforce" : "testing", match ? "" :
	    " mx=mismatch");
	if (!match)
		log_info("qid=%s smtp: MX host %s does not match the MTA-STS "
		    "policy of %s (mode testing): delivering anyway", j->m.qid,
		    p->remote, s->domain);
	return 0;
}

/* rtls_strict - RFC 8689 4.2.1 applies: a REQUIRETLS message whose
 * reverse-path is not empty, relayed by SMTP */
static int
rtls_strict(const struct dlv_job *j)
{
	return j->m.requiretls && j->m.sender[0] != '\0' && !j->lmtp;
}

/* job_error - a host's error r: a REQUIRETLS failure (5.7.30 / 5.7.10)
 * is kept apart, the most specific one; any other is the job's error */
static void
job_error(struct dlv_job *j, const struct dlv_result *r)
{
	if (j->m.requiretls && r->status == RS_FAILED &&
	    (strcmp(r->enh, "5.7.30") == 0 || strcmp(r->enh, "5.7.10") == 0)) {
		if (!j->have_rtls || strcmp(r->enh, "5.7.30") == 0 ||
		    strcmp(j->rtls.enh, "5.7.30") != 0) {
			j->rtls = *r;
			j->have_rtls = 1;
		}
		return;
	}
	j->err = *r;
	j->have_err = 1;
}

/*
 * peer_requiretls - RFC 8689 4.2.1 for host p of a REQUIRETLS message:
 * its MX name is validated (the configured smarthost; a DNSSEC-secure
 * MX answer with dns_dnssec; or the MTA-STS policy's mx patterns), else
 * -1 and a 5.7.10 failure for this host (never connected).  Then
 * p->rtls: TLS and a verified certificate (DANE, else the CA store /
 * smtp_tls_ca against the host name) are mandatory (try_addr), and
 * dlv_smtp.c checks REQUIRETLS in the post-TLS EHLO.
 */
static int
peer_requiretls(struct dlv_job *j, struct dlv_peer *p)
{
	struct dlv_result	r;
	const char		*how;

	if (j->cfg->smarthost != NULL)
		how = "smarthost";
	else if (j->cfg->dns_dnssec && j->route->secure)
		how = "dnssec";
	else if (j->sts != NULL && dlv_sts_mx_match(j->sts, p->name))
		how = "mta-sts";
	else {
		memset(&r, 0, sizeof(r));
		r.hop_dsn = r.hop_mtrk = r.hop_by = -1;
		r.status = RS_FAILED;
		r.code = 550;
		(void)snprintf(r.enh, sizeof(r.enh), "5.7.10");
		(void)snprintf(r.text, sizeof(r.text), "REQUIRETLS: MX host "
		    "%.180s of %.180s not validated (%s): not connecting "
		    "(RFC 8689 4.2.1)", p->name, j->domain, j->sts == NULL ?
		    "no DNSSEC, no MTA-STS" : "no DNSSEC, not in the MTA-STS "
		    "policy's mx patterns");
		(void)snprintf(r.remote, sizeof(r.remote), "%s", p->remote);
		log_info("qid=%s smtp: %s", j->m.qid, r.text);
		job_error(j, &r);
		return -1;
	}
	p->rtls = 1;
	log_debug("qid=%s smtp %s: REQUIRETLS, MX name validated by %s",
	    j->m.qid, p->remote, how);
	return 0;
}

/*
 * peer_tls_optional - RFC 8689 4.2.2, "TLS-Required: No": the recipient
 * domain's DANE or MTA-STS policy does not block delivery to p; STARTTLS
 * is still used when offered (opportunistic, as smtp_tls = may)
 */
static void
peer_tls_optional(struct dlv_job *j, struct dlv_peer *p)
{
	const char	*what = NULL;
	size_t		 n;

	if (p->dane.state != DLV_DANE_NONE) {
		what = "dane";
		p->dane.state = DLV_DANE_NONE;
		p->dane.ntlsa = 0;
	}
	if (p->tls_policy == DLV_TLS_MTA_STS &&
	    (p->tls_require || p->tls_verify || p->tls_mxbad)) {
		what = "mta-sts";
		p->tls_require = p->tls_verify = 0;
		p->tls_check = 1;
		n = strlen(p->tls_note);
		(void)snprintf(p->tls_note + n, sizeof(p->tls_note) - n,
		    " relaxed by TLS-Required: No");
	}
	if (what != NULL)
		log_info("qid=%s smtp %s: TLS-Required: No: the %s policy does "
		    "not block delivery (RFC 8689 4.2.2)", j->m.qid, p->remote,
		    what);
}

/* try_addr - run a session on the current address, or give up */
static void
try_addr(struct dlv_job *j)
{
	struct dlv_sess	*s = NULL;
	struct dlv_peer	 p;

	/* a parked connection's TLS was not checked against j's policy */
	if (!j->tried_idle && !j->noreuse && j->sts == NULL &&
	    !j->m.requiretls && !j->m.tls_optional) {
		j->tried_idle = 1;
		s = idle_take(j);
	}
	while (s == NULL) {
		if (j->hi >= j->route->nhosts) {
			job_finish(j);
			return;
		}
		/* DANE: a failed TLSA lookup = unreachable (RFC 7672 2.1.2) */
		if (j->ai == 0 && !j->lmtp && !j->m.tls_optional &&
		    dlv_dane_skip(&j->route->hosts[j->hi], &j->err)) {
			j->have_err = 1;
			j->hi++;
			continue;
		}
		if (j->ai >= j->route->hosts[j->hi].naddrs) {
			j->hi++;
			j->ai = 0;
			j->plain = 0;
			continue;
		}
		peer_of(j, &p);
		if ((rtls_strict(j) && peer_requiretls(j, &p) == -1) ||
		    (j->sts != NULL && peer_sts(j, &p) == -1)) {
			j->hi++;	/* never this host: the next one */
			j->ai = 0;
			j->plain = 0;
			continue;
		}
		if (p.rtls) {		/* whatever the MTA-STS mode says */
			p.tls_require = p.tls_verify = 1;
			p.tls_check = 0;
		}
		if (j->m.tls_optional && !j->lmtp)
			peer_tls_optional(j, &p);
		if ((s = dlv_sess_new(&p)) == NULL) {
			job_fill(j, RS_DEFERRED, 451, "4.3.0", "out of memory",
			    "");
			job_finish(j);
			return;
		}
	}
	j->sess = s;
	if (dlv_sess_run(s, j->cfg, &j->m, sess_cb, j) == -1) {
		j->sess = NULL;
		dlv_sess_free(s);
		job_fill(j, RS_DEFERRED, 451, "4.3.0", "out of memory", "");
		job_finish(j);
	}
}

/* sess_cb - the outcome of a session run for job j */
static void
sess_cb(void *arg, struct dlv_sess *s, enum dlv_outcome o)
{
	struct dlv_job		*j = arg;
	struct dlv_result	 r;
	int			 reused = dlv_sess_was_reused(s);

	memset(&r, 0, sizeof(r));
	j->sess = NULL;
	switch (o) {
	case DLV_OUT_DONE:
		if (dlv_sess_reusable(s))
			idle_put(s);
		else
			dlv_sess_quit(s);
		job_finish(j);
		return;
	case DLV_OUT_PLAIN:
		dlv_sess_error(s, &r);
		job_error(j, &r);
		dlv_sess_free(s);
		j->plain = 1;
		try_addr(j);
		return;
	case DLV_OUT_NEXT:
	default:
		dlv_sess_error(s, &r);
		job_error(j, &r);
		dlv_sess_quit(s);
		if (reused) {
			/* the parked connection went stale: same address, fresh */
			j->noreuse = 1;
			try_addr(j);
			return;
		}
		if (r.code / 100 == 5 && strstr(r.text,
		    "greeting") != NULL) {
			j->hi++;
			j->ai = 0;
		} else
			j->ai++;
		j->plain = 0;
		try_addr(j);
		return;
	}
}

/* ---- entry points ---- */

int
dlv_remote_start(const struct config *cfg, const struct qmsg *m,
    const char *body_path, const size_t *ridx, size_t n,
    dlv_done_fn done, void *arg)
{
	struct dlv_job	*j;
	const char	*at;
	char		 key[300], ace[256];

	if (!rs.ready || rs.stopping ||
	    (j = job_new(cfg, m, body_path, ridx, n, done, arg)) == NULL)
		return -1;
	/* RFC 8460 5.3: reports go out whatever the TLS policies say */
	j->no_policy = m->client_name != NULL &&
	    strcmp(m->client_name, DLV_TLSRPT_CLIENT) == 0 &&
	    m->client_addr != NULL && strcmp(m->client_addr, "local") == 0;
	at = strrchr(j->m.rcpts[0], '@');
	(void)snprintf(j->domain, sizeof(j->domain), "%s",
	    at != NULL ? at + 1 : "");
	str_lower(j->domain);
	/* RFC 6531 3.3: DNS and routing see the A-labels (libidn2) */
	if (str_nonascii(j->domain, strlen(j->domain)) &&
	    intl_domain_ascii(at + 1, ace, sizeof(ace)) == 0)
		memcpy(j->domain, ace, strlen(ace) + 1);
	if (cfg->smarthost != NULL)
		(void)snprintf(key, sizeof(key), "smarthost %.280s",
		    cfg->smarthost);
	else
		(void)snprintf(key, sizeof(key), "%s", j->domain);
	job_queue(j, key);
	return 0;
}

/* lmtp_route - the one-address route of cfg->lmtp */
static int
lmtp_route(const struct config *cfg, struct dlv_route *r)
{
	struct dlv_host		*h = &r->hosts[0];
	const char		*v = cfg->lmtp, *port;
	char			 host[64];
	unsigned long		 pn;
	size_t			 n;
	char			*e;

	memset(r, 0, sizeof(*r));
	r->nhosts = 1;
	h->naddrs = 1;
	if (strncmp(v, "unix:", 5) == 0) {
		struct sockaddr_un *su = (struct sockaddr_un *)&h->addrs[0];

		if (strlen(v + 5) >= sizeof(su->sun_path) || v[5] == '\0')
			return -1;
		su->sun_family = AF_UNIX;
		memcpy(su->sun_path, v + 5, strlen(v + 5) + 1);
		h->alens[0] = sizeof(*su);
		(void)snprintf(h->name, sizeof(h->name), "localhost");
		return 0;
	}
	if (v[0] == '[') {
		const char *c = strchr(v, ']');

		if (c == NULL || c[1] != ':')
			return -1;
		n = (size_t)(c - v - 1);
		port = c + 2;
		v++;
	} else {
		if ((port = strrchr(v, ':')) == NULL)
			return -1;
		n = (size_t)(port - v);
		port++;
	}
	if (n == 0 || n >= sizeof(host))
		return -1;
	memcpy(host, v, n);
	host[n] = '\0';
	errno = 0;
	pn = strtoul(port, &e, 10);
	if (*e != '\0' || pn == 0 || pn > 65535 || errno != 0)
		return -1;
	if (strchr(host, ':') != NULL) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&h->addrs[0];

		if (inet_pton(AF_INET6, host, &s6->sin6_addr) != 1)
			return -1;
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)pn);
		h->alens[0] = sizeof(*s6);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&h->addrs[0];

		if (inet_pton(AF_INET, host, &s4->sin_addr) != 1)
			return -1;
		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)pn);
		h->alens[0] = sizeof(*s4);
	}
	(void)snprintf(h->name, sizeof(h->name), "%s", host);
	return 0;
}

int
dlv_lmtp_start(const struct config *cfg, const struct qmsg *m,
    const char *body_path, const size_t *ridx, size_t n,
    dlv_done_fn done, void *arg)
{
	struct dlv_job	*j;

	if (!rs.ready || rs.stopping || cfg->lmtp == NULL ||
	    (j = job_new(cfg, m, body_path, ridx, n, done, arg)) == NULL)
		return -1;
	j->lmtp = 1;
	if ((j->route = malloc(sizeof(*j->route))) == NULL) {
		job_free(j);
		return -1;
	}
	if (lmtp_route(cfg, j->route) == -1) {
		char text[400];

		(void)snprintf(text, sizeof(text), "invalid lmtp setting "
		    "\"%.300s\"", cfg->lmtp);
		TAILQ_INSERT_TAIL(&jobs, j, entry);
		j->st = J_WAIT;
		job_fill(j, RS_DEFERRED, 451, "4.3.5", text, "");
		job_finish(j);
		return 0;
	}
	job_queue(j, "lmtp");
	return 0;
}

void
dlv_remote_shutdown(void)
{
	struct dlv_job	*j;
	struct idle	*n;
	struct dest	*d;

	if (!rs.ready)
		return;
	rs.stopping = 1;
	while ((j = TAILQ_FIRST(&jobs)) != NULL) {
		if (j->st == J_WAIT)
			TAILQ_REMOVE(&waiting, j, wentry);
		if (j->st == J_DONE)
			evtimer_del(j->fin);
		if (j->sess != NULL) {
			dlv_sess_free(j->sess);
			j->sess = NULL;
		}
		if (j->sts_wait)
			dlv_sts_cancel(j);
		job_fill(j, RS_DEFERRED, 451, "4.3.2", "delivery interrupted "
		    "by shutdown", "");
		job_release(j);
		TAILQ_REMOVE(&jobs, j, entry);
		j->done(j->arg, j->m.res, j->m.nrcpts);
		if (j->st == J_ROUTE) {
			/* the look-up may still call back: keep it until then */
			j->st = J_DONE;
			TAILQ_INSERT_TAIL(&zombies, j, entry);
		} else
			job_free(j);
	}
	while ((n = TAILQ_FIRST(&idles)) != NULL) {
		TAILQ_REMOVE(&idles, n, entry);
		free(n);
	}
	nidle = 0;
	dlv_sts_shutdown();
	dlv_tlsrpt_shutdown();
	dlv_dns_shutdown();
	while ((j = TAILQ_FIRST(&zombies)) != NULL) {
		TAILQ_REMOVE(&zombies, j, entry);
		job_free(j);
	}
	dlv_smtp_shutdown();
	while ((d = TAILQ_FIRST(&dests)) != NULL) {
		TAILQ_REMOVE(&dests, d, entry);
		free(d);
	}
	auth_clear();
	SSL_CTX_free(rs.ctx);
	rs.ctx = NULL;
	rs.ready = 0;
}
