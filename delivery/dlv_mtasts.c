#include "config.h"
/*
 * dlv_mtasts.c - MTA-STS (RFC 8461) for remote delivery: the policy of a
 *       next hop domain, looked up, fetched, parsed and cached.
 * Owns: dlv_sts_init/reload/shutdown, dlv_sts_lookup/cancel (TXT
 *       _mta-sts.D through dlv_dns.c; the memory cache, then the store's
 *       (queue_sts_get/put); HTTPS GET of
 *       https://mta-sts.D/.well-known/mta-sts.txt with libevent's evhttp
 *       over an OpenSSL bufferevent, the host's address from c-ares (A
 *       record), port 443, SNI and certificate name mta-sts.D, OpenSSL's
 *       default verify paths plus smtp_tls_ca; 200 only (no redirects),
 *       text/plain, at most 64 KiB, 60 s in all); the parsers of the TXT
 *       record (3.1) and of the policy (3.2); MX pattern matching (4.1).
 * Cache: a policy is used while its TXT id is unchanged and max_age has
 *       not passed since the fetch; when the TXT or the fetch fails, an
 *       unexpired cached policy applies (5.1).  A failed fetch is not
 *       retried for the same id within 5 minutes (3.3).  A policy in use
 *       that was fetched a day ago or more is fetched again in the
 *       background (5.1, 10.2: the refresh moves max_age on).  A domain
 *       without an STSv1 TXT record (and no policy cached) is not asked
 *       again for 5 minutes.
 * Not here: applying the policy to each MX host and its TLS session
 *       (dlv_remote.c peer_sts, dlv_smtp.c); DANE decides before this
 *       (a host under "dane" never gets the MTA-STS check).
 * Invariants: the callback runs once, from the loop (an event made
 *       active), never inside dlv_sts_lookup; cancelled lookups and
 *       those in flight at dlv_sts_shutdown never call back.
 */

#include <sys/types.h>
#include <sys/queue.h>
#include <sys/stat.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <ares.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "common/cfg.h"
#include "common/log.h"
#include "common/util.h"
#include "delivery/dlv_int.h"

#define STS_BODY_MAX	(64 * 1024)	/* policy size limit (3.3) */
#define STS_FETCH_SECS	60		/* whole fetch (3.3) */
#define STS_RETRY_SECS	300		/* failed fetch, same id (3.3) */
#define STS_REFRESH_SECS 86400		/* a cached policy is fetched again */
#define STS_NOTXT_SECS	300		/* no TXT record: not asked again */
#define STS_MAX_AGE_MAX	31557600L	/* one year (3.2) */
#define STS_CACHE_MAX	1000		/* policies kept in memory */
#define STS_PATH	"/.well-known/mta-sts.txt"

struct sts_entry {
	TAILQ_ENTRY(sts_entry)	 entry;
	char			 domain[256];
	time_t			 fetched;	/* 0: no policy, only fail_* */
	struct dlv_sts		 pol;
	char			 fail_id[33];	/* last failed fetch */
	time_t			 fail_at;
	int			 stored;	/* the store was read for it */
	time_t			 notxt_until;	/* no STSv1 TXT record seen */
};

enum sts_step { STS_TXT, STS_ADDR, STS_HTTP, STS_WAIT, STS_DONE };

struct sts_lookup {
	TAILQ_ENTRY(sts_lookup)	 entry;
	dlv_sts_fn		 cb;		/* NULL once cancelled */
	void			*arg;
	enum sts_step		 step;
	char			 domain[256];
	char			 host[300];	/* mta-sts.DOMAIN */
	char			 id[33];	/* the TXT's */
	char			 addr[64];
	struct event		*done_ev;
	struct event		*timer;
	struct evhttp_connection *conn;
	struct evhttp_request	*req;
	SSL			*ssl;		/* owned by conn's bufferevent */
	struct dlv_sts		 res;
};

static TAILQ_HEAD(sts_cache, sts_entry) cache = TAILQ_HEAD_INITIALIZER(cache);
static TAILQ_HEAD(, sts_lookup)	lookups = TAILQ_HEAD_INITIALIZER(lookups);
static size_t			ncache;

static struct {
	char		*ca;		/* smtp_tls_ca copy, or NULL */
	SSL_CTX		*ctx;		/* made at the first fetch */
	int		 up;
} sts;

/* ---------------------------------------------------------------- parsers */

static int
is_wsp(int c)
{
	return c == ' ' || c == '\t';
}

int
dlv_sts_txt_id(const char *txt, size_t len, char id[33])
{
	const char	*p = txt, *e = txt + len, *f, *fe, *eq;
	int		 have_id = 0;
	size_t		 n, i;

	if (len < 7 || memcmp(txt, "v=STSv1", 7) != 0)
		return 1;
	p += 7;
	if (p < e && *p != ';' && !is_wsp((unsigned char)*p))
		return 1;
	for (;;) {
		while (p < e && is_wsp((unsigned char)*p))
			p++;
		if (p == e)
			break;
		if (*p != ';')
			return -1;
		p++;
		while (p < e && is_wsp((unsigned char)*p))
			p++;
		if (p == e)
			break;		/* a final delimiter */
		for (f = p; p < e && *p != ';' && !is_wsp((unsigned char)*p);
		    p++)
			;
		fe = p;
		if ((eq = memchr(f, '=', (size_t)(fe - f))) == NULL ||
		    eq == f || eq + 1 == fe)
			return -1;
		if (eq - f == 2 && memcmp(f, "id", 2) == 0) {
			n = (size_t)(fe - eq - 1);
			if (have_id || n > 32)
				return -1;
			for (i = 0; i < n; i++)
				if (!isalnum((unsigned char)eq[1 + i]))
					return -1;
			memcpy(id, eq + 1, n);
			id[n] = '\0';
			have_id = 1;
		}
		/* other fields: extensions, ignored */
	}
	return have_id ? 0 : -1;
}

/* sts_pattern_ok - ["*."] Domain (letters, digits, hyphens, dots) */
static int
sts_pattern_ok(const char *v)
{
	const char	*p = v;
	size_t		 label = 0;

	if (strncmp(p, "*.", 2) == 0)
		p += 2;
	if (*p == '\0' || *p == '.')
		return 0;
	for (; *p != '\0'; p++) {
		if (*p == '.') {
			if (label == 0)
				return 0;
			label = 0;
			continue;
		}
		if (!isalnum((unsigned char)*p) && *p != '-')
			return 0;
		if (++label > 63)
			return 0;
	}
	return label > 0 || p[-1] == '.';
}

int
dlv_sts_parse(const char *text, size_t len, struct dlv_sts *p,
    const char **why)
{
	const char	*l = text, *e = text + len, *nl, *le, *c, *v;
	char		 key[40], val[256];
	int		 have_ver = 0, have_mode = 0, have_age = 0;
	size_t		 kl, vl;
	char		*end;

	p->mode = DLV_STS_NONE;
	p->nmx = 0;
	p->max_age = 0;
	if (memchr(text, '\0', len) != NULL) {
		*why = "NUL in the policy";
		return -1;
	}
	for (; l < e; l = nl + 1) {
		if ((nl = memchr(l, '\n', (size_t)(e - l))) == NULL)
			nl = e;
		le = nl;
		if (le > l && le[-1] == '\r')
			le--;
		while (le > l && is_wsp((unsigned char)le[-1]))
			le--;
		if (le == l)
			continue;
		if ((c = memchr(l, ':', (size_t)(le - l))) == NULL) {
			*why = "a line without a field name";
			return -1;
		}
		kl = (size_t)(c - l);
		for (v = c + 1; v < le && is_wsp((unsigned char)*v); v++)
			;
		vl = (size_t)(le - v);
		if (kl == 0 || kl >= sizeof(key)) {
			*why = "a bad field name";
			return -1;
		}
		memcpy(key, l, kl);
		key[kl] = '\0';
		if (vl >= sizeof(val)) {
			if (strcmp(key, "mx") == 0) {
				*why = "an mx pattern too long";
				return -1;
			}
			continue;	/* a long extension: ignored */
		}
		memcpy(val, v, vl);
		val[vl] = '\0';
		if (strcmp(key, "version") == 0) {
			if (have_ver++)
				continue;	/* only the first counts */
			if (strcmp(val, "STSv1") != 0) {
				*why = "version is not STSv1";
				return -1;
			}
		} else if (strcmp(key, "mode") == 0) {
			if (have_mode++)
				continue;
			if (strcmp(val, "enforce") == 0)
				p->mode = DLV_STS_ENFORCE;
			else if (strcmp(val, "testing") == 0)
				p->mode = DLV_STS_TESTING;
			else if (strcmp(val, "none") == 0)
				p->mode = DLV_STS_NONE;
			else {
				*why = "mode is not enforce, testing or none";
				return -1;
			}
		} else if (strcmp(key, "max_age") == 0) {
			if (have_age++)
				continue;
			if (vl == 0 || vl > 10 || strspn(val, "0123456789") != vl) {
				*why = "max_age is not 1 to 10 digits";
				return -1;
			}
			p->max_age = strtol(val, &end, 10);
			if (p->max_age > STS_MAX_AGE_MAX)
				p->max_age = STS_MAX_AGE_MAX;
		} else if (strcmp(key, "mx") == 0) {
			if (!sts_pattern_ok(val)) {
				*why = "an invalid mx pattern";
				return -1;
			}
			if (p->nmx >= DLV_STS_MX_MAX)
				continue;	/* kept: the first 16 */
			str_lower(val);
			if (vl > 0 && val[vl - 1] == '.')
				val[vl - 1] = '\0';
			memcpy(p->mx[p->nmx++], val, strlen(val) + 1);
		}
		/* anything else: an extension, ignored */
	}
	if (!have_ver || !have_mode || !have_age) {
		*why = !have_ver ? "no version field" : !have_mode ?
		    "no mode field" : "no max_age field";
		return -1;
	}
	if (p->nmx == 0 && p->mode != DLV_STS_NONE) {
		*why = "no mx field";
		return -1;
	}
	return 0;
}

int
dlv_sts_mx_match(const struct dlv_sts *p, const char *host)
{
	char		 h[256];
	const char	*dot;
	size_t		 i, n = strlen(host);

	if (n > 0 && host[n - 1] == '.')
		n--;
	if (n == 0 || n >= sizeof(h))
		return 0;
	memcpy(h, host, n);
	h[n] = '\0';
	str_lower(h);
	dot = strchr(h, '.');
	for (i = 0; i < p->nmx; i++) {
		if (strcmp(p->mx[i], h) == 0)
			return (int)i + 1;
		/* "*.example.com": exactly one more label, on the left */
		if (strncmp(p->mx[i], "*.", 2) == 0 && dot != NULL &&
		    dot != h && strcmp(dot + 1, p->mx[i] + 2) == 0)
			return (int)i + 1;
	}
	return 0;
}

/* ---------------------------------------------------------------- cache */

static struct sts_entry *
cache_find(const char *domain)
{
	struct sts_entry	*c;

	TAILQ_FOREACH(c, &cache, entry)
		if (strcmp(c->domain, domain) == 0)
			return c;
	return NULL;
}

/* cache_get - the domain's entry, made (the oldest dropped) when missing */
static struct sts_entry *
cache_get(const char *domain)
{
	struct sts_entry	*c;

	if ((c = cache_find(domain)) != NULL) {
		TAILQ_REMOVE(&cache, c, entry);
		TAILQ_INSERT_HEAD(&cache, c, entry);
		return c;
	}
	if (ncache >= STS_CACHE_MAX && (c = TAILQ_LAST(&cache,
	    sts_cache)) != NULL) {
		TAILQ_REMOVE(&cache, c, entry);
		ncache--;
		free(c);
	}
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return NULL;
	(void)snprintf(c->domain, sizeof(c->domain), "%s", domain);
	TAILQ_INSERT_HEAD(&cache, c, entry);
	ncache++;
	return c;
}

/*
 * cache_load - the memory entry, else the store's record (read once per
 * domain while the entry stays in memory: most domains have none);
 * NULL = none
 */
static struct sts_entry *
cache_load(const char *domain)
{
	struct sts_entry	*c = cache_find(domain);
	struct dlv_sts		 pol;
	char			 id[QUEUE_STS_ID_MAX + 1];
	char			*text = NULL;
	const char		*why;
	time_t			 fetched;
	int			 rc;

	if (c != NULL && (c->fetched != 0 || c->stored))
		return c;
	if ((rc = queue_sts_get(domain, id, &fetched, &text)) != 0) {
		if (rc == 1 && (c = cache_get(domain)) != NULL)
			c->stored = 1;
		return c;
	}
	memset(&pol, 0, sizeof(pol));
	if (dlv_sts_parse(text, strlen(text), &pol, &why) == -1) {
		log_warnx("mta-sts: stored policy of %s: %s; ignored", domain,
		    why);
		free(text);
		return c;
	}
	free(text);
	if ((c = cache_get(domain)) == NULL)
		return NULL;
	(void)snprintf(pol.domain, sizeof(pol.domain), "%s", domain);
	(void)snprintf(pol.id, sizeof(pol.id), "%s", id);
	c->pol = pol;
	c->fetched = fetched;
	c->stored = 1;
	return c;
}

/* cache_fresh - an unexpired policy */
static int
cache_fresh(const struct sts_entry *c, time_t now)
{
	return c != NULL && c->fetched != 0 &&
	    now < c->fetched + (time_t)c->pol.max_age;
}

/* ---------------------------------------------------------------- module */

int
dlv_sts_init(const struct config *cfg, char *err, size_t errlen)
{
	sts.up = 1;
	free(sts.ca);
	sts.ca = NULL;
	if (cfg->smtp_tls_ca != NULL && (sts.ca = strdup(cfg->smtp_tls_ca)) ==
	    NULL) {
		(void)snprintf(err, errlen, "mta-sts: out of memory");
		return -1;
	}
	return 0;
}

void
dlv_sts_reload(const struct config *cfg)
{
	char	*ca = NULL;

	if (cfg->smtp_tls_ca != NULL && (ca = strdup(cfg->smtp_tls_ca)) ==
	    NULL)
		return;
	free(sts.ca);
	sts.ca = ca;
	SSL_CTX_free(sts.ctx);	/* connections hold their own references */
	sts.ctx = NULL;
}

static void	lookup_free(struct sts_lookup *lk);

void
dlv_sts_shutdown(void)
{
	struct sts_lookup	*lk;
	struct sts_entry	*c;

	while ((lk = TAILQ_FIRST(&lookups)) != NULL)
		lookup_free(lk);
	while ((c = TAILQ_FIRST(&cache)) != NULL) {
		TAILQ_REMOVE(&cache, c, entry);
		free(c);
	}
	ncache = 0;
	SSL_CTX_free(sts.ctx);
	sts.ctx = NULL;
	free(sts.ca);
	sts.ca = NULL;
	sts.up = 0;
}

/* sts_ctx - the fetch's TLS context: default verify paths + smtp_tls_ca */
static SSL_CTX *
sts_ctx(void)
{
	struct stat	st;
	int		ok;

	if (sts.ctx != NULL)
		return sts.ctx;
	if ((sts.ctx = SSL_CTX_new(TLS_client_method())) == NULL)
		return NULL;
	(void)SSL_CTX_set_min_proto_version(sts.ctx, TLS1_2_VERSION);
	(void)SSL_CTX_set_default_verify_paths(sts.ctx);
	if (sts.ca != NULL) {
		if (stat(sts.ca, &st) == 0 && S_ISDIR(st.st_mode))
			ok = SSL_CTX_load_verify_locations(sts.ctx, NULL, sts.ca);
		else
			ok = SSL_CTX_load_verify_locations(sts.ctx, sts.ca, NULL);
		if (ok != 1)
			log_warnx("mta-sts: smtp_tls_ca: cannot load %s", sts.ca);
	}
	return sts.ctx;
}

/* ---------------------------------------------------------------- lookups */

static void
lookup_free(struct sts_lookup *lk)
{
	TAILQ_REMOVE(&lookups, lk, entry);
	dlv_dns_query_cancel(lk);
	/* frees a request in flight without calling it back */
	if (lk->conn != NULL)
		evhttp_connection_free(lk->conn);
	if (lk->timer != NULL)
		event_free(lk->timer);
	if (lk->done_ev != NULL)
		event_free(lk->done_ev);
	free(lk);
}

/* done_cb - report from the loop, then free (the connection too) */
static void
done_cb(evutil_socket_t fd, short what, void *arg)
{
	struct sts_lookup	*lk = arg;
	dlv_sts_fn		 cb = lk->cb;
	void			*cbarg = lk->arg;
	struct dlv_sts		 res = lk->res;

	(void)fd;
	(void)what;
	lookup_free(lk);
	if (cb != NULL)
		cb(cbarg, &res);
}

/* finish - the result is lk->res: report soon, and to its waiters */
static void
finish(struct sts_lookup *lk)
{
	struct sts_lookup	*w;
	int			 fetching = lk->step == STS_ADDR ||
				    lk->step == STS_HTTP;

	if (lk->step == STS_DONE)
		return;
	lk->step = STS_DONE;
	if (lk->timer != NULL)
		evtimer_del(lk->timer);
	event_active(lk->done_ev, EV_TIMEOUT, 0);
	if (!fetching)
		return;
	TAILQ_FOREACH(w, &lookups, entry)
		if (w->step == STS_WAIT && strcmp(w->domain, lk->domain) == 0 &&
		    strcmp(w->id, lk->id) == 0) {
			w->res = lk->res;
			finish(w);
		}
}

/* fetch_running - another lookup is fetching this domain's policy id */
static int
fetch_running(const struct sts_lookup *lk)
{
	const struct sts_lookup	*o;

	TAILQ_FOREACH(o, &lookups, entry)
		if (o != lk && (o->step == STS_ADDR || o->step == STS_HTTP) &&
		    strcmp(o->domain, lk->domain) == 0 &&
		    strcmp(o->id, lk->id) == 0)
			return 1;
	return 0;
}

/* finish_cached - the unexpired cached policy, else none, with note */
static void
finish_cached(struct sts_lookup *lk, const char *note)
{
	struct sts_entry	*c = cache_load(lk->domain);

	if (cache_fresh(c, time(NULL))) {
		lk->res = c->pol;
		log_info("mta-sts: %s: %s; using the cached policy (id %s)",
		    lk->domain, note, c->pol.id);
	} else {
		memset(&lk->res, 0, sizeof(lk->res));
		(void)snprintf(lk->res.domain, sizeof(lk->res.domain), "%s",
		    lk->domain);
		if (note[0] != '\0')
			log_info("mta-sts: %s: %s; no policy", lk->domain,
			    note);
	}
	(void)snprintf(lk->res.note, sizeof(lk->res.note), "%s", note);
	finish(lk);
}

/* fetch_failed - remember the id (no retry for 5 minutes), use the cache */
#define FETCH_ERR	"sts-policy-fetch-error"	/* RFC 8460 4.3.3 */
#define FETCH_INVALID	"sts-policy-invalid"
#define FETCH_WEBPKI	"sts-webpki-invalid"

static void
fetch_failed(struct sts_lookup *lk, const char *type, const char *fmt, ...)
    WM_PRINTF(3, 4);

/* fetch_failed - also counted for TLS-RPT (type: FETCH_*) */
static void
fetch_failed(struct sts_lookup *lk, const char *type, const char *fmt, ...)
{
	struct sts_entry	*c;
	char			 why[160];
	va_list			 ap;

	va_start(ap, fmt);
	(void)vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	c = cache_load(lk->domain);
	dlv_tlsrpt_count(lk->domain, cache_fresh(c, time(NULL)) ? "sts" :
	    "no-policy-found", NULL, type, NULL, NULL, NULL, why);
	if ((c = cache_get(lk->domain)) != NULL) {
		(void)snprintf(c->fail_id, sizeof(c->fail_id), "%s", lk->id);
		c->fail_at = time(NULL);
	}
	log_warnx("mta-sts: %s: policy fetch from %s[%s] failed: %s",
	    lk->domain, lk->host, lk->addr, why);
	finish_cached(lk, why);
}

/* timer_cb - the whole fetch took too long */
static void
timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct sts_lookup	*lk = arg;

	(void)fd;
	(void)what;
	dlv_dns_query_cancel(lk);
	fetch_failed(lk, FETCH_ERR, "timed out after %d s", STS_FETCH_SECS);
}

/* http_cb - the policy host answered (or the request failed) */
static void
http_cb(struct evhttp_request *req, void *arg)
{
	struct sts_lookup	*lk = arg;
	struct sts_entry	*c;
	struct evbuffer		*in;
	const char		*ct, *why;
	struct dlv_sts		 pol;
	char			*text;
	size_t			 len;
	long			 vr;
	int			 code;

	lk->req = NULL;		/* evhttp frees it after this returns */
	if (lk->step != STS_HTTP)
		return;
	code = req != NULL ? evhttp_request_get_response_code(req) : 0;
	if (code == 0) {
		vr = lk->ssl != NULL ? SSL_get_verify_result(lk->ssl) :
		    X509_V_OK;
		if (vr != X509_V_OK)
			fetch_failed(lk, FETCH_WEBPKI, "certificate of %s not valid: %s",
			    lk->host, X509_verify_cert_error_string(vr));
		else
			fetch_failed(lk, FETCH_ERR, "no HTTPS answer");
		return;
	}
	if (code != 200) {
		fetch_failed(lk, FETCH_ERR, "HTTP status %d (only 200 is a policy)", code);
		return;
	}
	ct = evhttp_find_header(evhttp_request_get_input_headers(req),
	    "Content-Type");
	if (ct != NULL && strncasecmp(ct, "text/plain", 10) != 0) {
		fetch_failed(lk, FETCH_INVALID, "Content-Type %.60s, not text/plain", ct);
		return;
	}
	in = evhttp_request_get_input_buffer(req);
	if ((len = evbuffer_get_length(in)) > STS_BODY_MAX) {
		fetch_failed(lk, FETCH_INVALID, "policy over %d bytes", STS_BODY_MAX);
		return;
	}
	if ((text = malloc(len + 1)) == NULL) {
		fetch_failed(lk, FETCH_ERR, "out of memory");
		return;
	}
	if (evbuffer_copyout(in, text, len) != (ev_ssize_t)len) {
		free(text);
		fetch_failed(lk, FETCH_ERR, "cannot read the policy");
		return;
	}
	text[len] = '\0';
	memset(&pol, 0, sizeof(pol));
	if (dlv_sts_parse(text, len, &pol, &why) == -1) {
		free(text);
		fetch_failed(lk, FETCH_INVALID, "invalid policy: %s", why);
		return;
	}
	(void)snprintf(pol.domain, sizeof(pol.domain), "%s", lk->domain);
	(void)snprintf(pol.id, sizeof(pol.id), "%s", lk->id);
	if ((c = cache_get(lk->domain)) != NULL) {
		c->pol = pol;
		c->fetched = time(NULL);
		c->fail_id[0] = '\0';
		if (queue_sts_put(lk->domain, lk->id, c->fetched, text) == -1)
			log_warnx("mta-sts: %s: cannot store the policy",
			    lk->domain);
	}
	free(text);
	log_info("mta-sts: %s: policy id %s fetched: mode %s, %zu mx, "
	    "max_age %ld", lk->domain, lk->id, pol.mode == DLV_STS_ENFORCE ?
	    "enforce" : pol.mode == DLV_STS_TESTING ? "testing" : "none",
	    pol.nmx, pol.max_age);
	lk->res = pol;
	finish(lk);
}

/* fetch_start - HTTPS GET of the policy from lk->addr:443 */
static void
fetch_start(struct sts_lookup *lk)
{
	struct bufferevent	*bev;
	struct evkeyvalq	*h;
	SSL_CTX			*ctx;

	if ((ctx = sts_ctx()) == NULL || (lk->ssl = SSL_new(ctx)) == NULL) {
		fetch_failed(lk, FETCH_ERR, "cannot make a TLS context");
		return;
	}
	(void)SSL_set_tlsext_host_name(lk->ssl, lk->host);
	(void)SSL_set1_host(lk->ssl, lk->host);
	SSL_set_verify(lk->ssl, SSL_VERIFY_PEER, NULL);
	bev = bufferevent_openssl_socket_new(dlv_remote_base(), -1, lk->ssl,
	    BUFFEREVENT_SSL_CONNECTING,
	    BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	if (bev == NULL) {
		SSL_free(lk->ssl);
		lk->ssl = NULL;
		fetch_failed(lk, FETCH_ERR, "out of memory");
		return;
	}
	bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	/* a numeric address: evhttp resolves nothing itself */
	lk->conn = evhttp_connection_base_bufferevent_new(dlv_remote_base(),
	    NULL, bev, lk->addr, 443);
	if (lk->conn == NULL) {
		bufferevent_free(bev);
		lk->ssl = NULL;
		fetch_failed(lk, FETCH_ERR, "out of memory");
		return;
	}
	evhttp_connection_set_timeout(lk->conn, STS_FETCH_SECS);
	evhttp_connection_set_retries(lk->conn, 0);
	evhttp_connection_set_max_body_size(lk->conn, STS_BODY_MAX);
	evhttp_connection_set_max_headers_size(lk->conn, 16 * 1024);
	if ((lk->req = evhttp_request_new(http_cb, lk)) == NULL) {
		fetch_failed(lk, FETCH_ERR, "out of memory");
		return;
	}
	h = evhttp_request_get_output_headers(lk->req);
	if (evhttp_add_header(h, "Host", lk->host) == -1 ||
	    evhttp_add_header(h, "Connection", "close") == -1 ||
	    evhttp_add_header(h, "User-Agent", "waymark") == -1 ||
	    evhttp_make_request(lk->conn, lk->req, EVHTTP_REQ_GET,
	    STS_PATH) == -1) {
		lk->req = NULL;	/* left to evhttp (it may have freed it) */
		fetch_failed(lk, FETCH_ERR, "cannot send the request");
		return;
	}
	lk->step = STS_HTTP;
}

/* addr_cb - the A answer for mta-sts.DOMAIN */
static void
addr_cb(void *arg, int status, const unsigned char *abuf, int alen)
{
	struct sts_lookup	*lk = arg;
	struct ares_addrttl	 t4[4];
	int			 n = 4;

	if (lk->step != STS_ADDR)
		return;
	if (status == ARES_SUCCESS && ares_parse_a_reply(abuf, alen, NULL, t4,
	    &n) == ARES_SUCCESS && n > 0 &&
	    inet_ntop(AF_INET, &t4[0].ipaddr, lk->addr, sizeof(lk->addr)) !=
	    NULL) {
		fetch_start(lk);
		return;
	}
	(void)snprintf(lk->addr, sizeof(lk->addr), "?");
	fetch_failed(lk, FETCH_ERR, "no address for %s: %s", lk->host,
	    status == ARES_SUCCESS ? "no A record" : ares_strerror(status));
}

static void	refresh_start(const char *domain, const char *id);

/* txt_cb - the TXT answer for _mta-sts.DOMAIN */
static void
txt_cb(void *arg, int status, const unsigned char *abuf, int alen)
{
	struct sts_lookup	*lk = arg;
	struct ares_txt_ext	*txt = NULL, *t;
	struct sts_entry	*c;
	char			 rec[1024], id[33], found[33] = "";
	size_t			 len = 0;
	int			 nsts = 0, bad = 0, rc;
	time_t			 now = time(NULL);

	if (lk->step != STS_TXT)
		return;
	if (status != ARES_SUCCESS) {
		if ((status == ARES_ENOTFOUND || status == ARES_ENODATA) &&
		    (c = cache_get(lk->domain)) != NULL)
			c->notxt_until = now + STS_NOTXT_SECS;
		finish_cached(lk, status == ARES_ENOTFOUND ||
		    status == ARES_ENODATA ? "" : ares_strerror(status));
		return;
	}
	if ((rc = ares_parse_txt_reply_ext(abuf, alen, &txt)) != ARES_SUCCESS) {
		finish_cached(lk, ares_strerror(rc));
		return;
	}
	/* the strings of one record are joined; then one record each */
	for (t = txt; t != NULL; t = t->next) {
		if (t->record_start)
			len = 0;
		if (len + t->length < sizeof(rec)) {
			memcpy(rec + len, t->txt, t->length);
			len += t->length;
		} else
			len = sizeof(rec);	/* too long: not ours */
		if (t->next != NULL && !t->next->record_start)
			continue;
		if (len >= sizeof(rec))
			continue;
		rc = dlv_sts_txt_id(rec, len, id);
		if (rc == 1)
			continue;
		nsts++;
		if (rc == -1)
			bad = 1;
		else
			memcpy(found, id, sizeof(found));
	}
	ares_free_data(txt);
	if (nsts == 0 && (c = cache_get(lk->domain)) != NULL)
		c->notxt_until = now + STS_NOTXT_SECS;
	if (nsts != 1 || bad) {
		finish_cached(lk, nsts == 0 ? "" : nsts > 1 ?
		    "several STSv1 TXT records" : "invalid STSv1 TXT record");
		return;
	}
	memcpy(lk->id, found, sizeof(lk->id));
	c = cache_load(lk->domain);
	if (c != NULL)
		c->notxt_until = 0;
	if (cache_fresh(c, now) && strcmp(c->pol.id, lk->id) == 0) {
		lk->res = c->pol;
		finish(lk);
		if (now - c->fetched >= STS_REFRESH_SECS && !fetch_running(lk) &&
		    (c->fail_id[0] == '\0' || now >= c->fail_at + STS_RETRY_SECS))
			refresh_start(lk->domain, lk->id);
		return;
	}
	if (c != NULL && strcmp(c->fail_id, lk->id) == 0 &&
	    now < c->fail_at + STS_RETRY_SECS) {
		finish_cached(lk, "policy fetch failed less than 5 minutes ago");
		return;
	}
	if (fetch_running(lk)) {
		lk->step = STS_WAIT;	/* finish() of the fetching one */
		return;
	}
	lk->step = STS_ADDR;
	if (dlv_dns_query(lk->host, ns_t_a, addr_cb, lk) == -1)
		fetch_failed(lk, FETCH_ERR, "cannot start the DNS look-up");
}

/* lookup_new - a lookup of domain, listed, its timer running; or NULL */
static struct sts_lookup *
lookup_new(const char *domain, dlv_sts_fn cb, void *arg)
{
	struct sts_lookup	*lk;
	struct timeval		 tv = { STS_FETCH_SECS, 0 };
	int			 n;

	if (!sts.up || domain[0] == '\0' ||
	    strlen(domain) >= sizeof(lk->domain) ||
	    (lk = calloc(1, sizeof(*lk))) == NULL)
		return NULL;
	lk->cb = cb;
	lk->arg = arg;
	(void)snprintf(lk->domain, sizeof(lk->domain), "%s", domain);
	str_lower(lk->domain);
	n = snprintf(lk->host, sizeof(lk->host), "mta-sts.%s", lk->domain);
	if (n < 0 || (size_t)n >= 256 ||
	    (lk->done_ev = event_new(dlv_remote_base(), -1, 0, done_cb, lk)) ==
	    NULL ||
	    (lk->timer = evtimer_new(dlv_remote_base(), timer_cb, lk)) ==
	    NULL) {
		if (lk->done_ev != NULL)
			event_free(lk->done_ev);
		free(lk);
		return NULL;
	}
	TAILQ_INSERT_TAIL(&lookups, lk, entry);
	evtimer_add(lk->timer, &tv);
	return lk;
}

/*
 * refresh_start - fetch the policy of a domain again in the background
 * (its cached copy is a day old: RFC 8461 5.1 / 10.2 refresh, which
 * also moves its max_age on); nobody waits for it.
 */
static void
refresh_start(const char *domain, const char *id)
{
	struct sts_lookup	*lk;

	if ((lk = lookup_new(domain, NULL, NULL)) == NULL)
		return;
	(void)snprintf(lk->id, sizeof(lk->id), "%s", id);
	lk->step = STS_ADDR;
	log_info("mta-sts: %s: refreshing the cached policy (id %s)", domain,
	    id);
	if (dlv_dns_query(lk->host, ns_t_a, addr_cb, lk) == -1)
		fetch_failed(lk, FETCH_ERR, "cannot start the DNS look-up");
}

int
dlv_sts_lookup(const char *domain, dlv_sts_fn cb, void *arg)
{
	struct sts_lookup	*lk;
	struct sts_entry	*c;
	char			 qname[300];
	time_t			 now = time(NULL);

	if (cb == NULL || (lk = lookup_new(domain, cb, arg)) == NULL)
		return -1;
	lk->step = STS_TXT;
	/* a domain seen without a record a moment ago, no policy cached */
	if ((c = cache_load(lk->domain)) != NULL && now < c->notxt_until &&
	    !cache_fresh(c, now)) {
		finish_cached(lk, "");
		return 0;
	}
	if (snprintf(qname, sizeof(qname), "_mta-sts.%s", lk->domain) < 0 ||
	    dlv_dns_query(qname, ns_t_txt, txt_cb, lk) == -1)
		finish_cached(lk, "cannot start the DNS look-up");
	return 0;
}

void
dlv_sts_cancel(void *arg)
{
	struct sts_lookup	*lk;

	TAILQ_FOREACH(lk, &lookups, entry)
		if (lk->arg == arg)
			lk->cb = NULL;
}
