#include "config.h"
/*
 * web_server.c - the HTTP server (libevent's evhttp on the daemon's
 * loop): listeners of http (sender view) and http_admin (operator view,
 * JSON API), TLS (http_tls: OpenSSL bufferevents through
 * evhttp_set_bevcb, the context of common/tlsctx.c, replaced on reload;
 * the same hook counts every accepted connection),
 * the bounds, the dispatch through the route table (web_api.c), the
 * answers and the one log line per request.
 * Entry points: web_server_bind/start/reload/stop (web.h); web_send,
 *       web_error, web_header, web_query (web_int.h).
 * Bounds: http_max_header_size (request line and fields; more gets 431,
 *       far more libevent's own 413 and close), http_max_body_size
 *       (libevent answers 413), http_timeout (libevent's idle, read and
 *       write timeout: a slow client is closed), http_max_connections
 *       (open connections, counted from the accept; one more gets 503
 *       on its first request and is closed, idles at most 5 s, and
 *       beyond twice the limit a new connection is closed at once).
 * Admin routes: only on http_admin, only over TLS or from a loopback
 *       address (else 403); state-changing ones refuse an Origin other
 *       than the server's own (403, CSRF; there are no cookies); then
 *       basic authentication (web_auth.c).
 * HEAD: on every GET route, answered as GET without the body, with the
 *       body's Content-Length (not on a 304; bytes=0 in the log).
 * Log: "http[-admin] client=[A] method=M path=P status=N bytes=N
 *       time=Nms [user=U]": the path without its query string.
 * Invariants: a request is answered exactly once; a request whose
 *       connection went away meanwhile is answered into the void (which
 *       frees it) or, when libevent freed it, only logged.
 */

#include <sys/types.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <openssl/ssl.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>

#include "common/cfg.h"
#include "common/jarena.h"
#include "common/log.h"
#include "common/tlsctx.h"
#include "common/util.h"
#include "web/web.h"
#include "web/web_int.h"

#define WEB_HDR_SLACK	4096	/* libevent's own limit: ours + this */
#define WEB_OVER_IDLE	5	/* seconds a connection over the limit idles */

const struct config	*web_cfg;
struct event_base	*web_base;

/* an open connection, counted from its accept */
struct web_conn {
	struct evhttp_connection *evcon;
	struct web_req		*pending;	/* the request being answered */
	int			 over;		/* over http_max_connections */
	struct web_conn		*prev, *next;
};

/* a connection just accepted, adopted once evhttp has set it up */
struct web_adopt {
	struct bufferevent	*bev;		/* one reference of ours */
	struct event		*ev;
	int			 kill;		/* no TLS session: close it */
	struct web_adopt	*prev, *next;
};

/* one evhttp per kind of listener */
struct web_srv {
	const char	*name;		/* log prefix */
	int		 admin;
	int		*fds;
	size_t		 nfds;
	struct evhttp	*http;
};

static struct web_srv	 srvs[2] = {
	{ "http", 0, NULL, 0, NULL },
	{ "http-admin", 1, NULL, 0, NULL },
};
static struct web_conn	*conns;
static size_t		 nconns;	/* within http_max_connections */
static size_t		 nover;		/* over it, closed soon */
static struct web_adopt	*adopts;
static SSL_CTX		*tls_ctx;

/* ---------------------------------------------------------------- bind */

/* bind_one - a listening socket for a into srv's list */
static int
bind_one(struct web_srv *srv, const struct cfg_addr *a, char *err,
    size_t errlen)
{
	const char	*failed;
	int		 fd, *nfds;

	if ((fd = tcp_listen((const struct sockaddr *)&a->ss, a->len,
	    &failed)) == -1) {
		snprintf(err, errlen, "%s %s: %s%s%s", srv->name, a->text,
		    failed ? failed : "", failed ? ": " : "", strerror(errno));
		return -1;
	}
	if ((nfds = realloc(srv->fds, (srv->nfds + 1) * sizeof(*nfds))) ==
	    NULL) {
		snprintf(err, errlen, "%s %s: %s", srv->name, a->text,
		    strerror(errno));
		close(fd);
		return -1;
	}
	srv->fds = nfds;
	srv->fds[srv->nfds++] = fd;
	return 0;
}

/* close_fds - the bound sockets that were never handed to evhttp */
static void
close_fds(void)
{
	size_t	i;

	for (i = 0; i < 2; i++) {
		while (srvs[i].nfds > 0)
			close(srvs[i].fds[--srvs[i].nfds]);
		free(srvs[i].fds);
		srvs[i].fds = NULL;
	}
}

int
web_server_bind(const struct config *cfg, char *err, size_t errlen)
{
	size_t	i;

	for (i = 0; i < cfg->nhttp; i++)
		if (bind_one(&srvs[0], &cfg->http[i], err, errlen) == -1)
			goto fail;
	for (i = 0; i < cfg->nhttp_admin; i++)
		if (bind_one(&srvs[1], &cfg->http_admin[i], err, errlen) == -1)
			goto fail;
	if (web_metrics_bind(cfg, err, errlen) == -1)
		goto fail;
	return 0;
fail:
	close_fds();
	return -1;
}

/* ----------------------------------------------------------- responses */

/* status_text - the reason phrase of the codes web/ answers */
static const char *
status_text(int code)
{
	switch (code) {
	case 200: return "OK";
	case 303: return "See Other";
	case 304: return "Not Modified";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 409: return "Conflict";
	case 413: return "Content Too Large";
	case 429: return "Too Many Requests";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 503: return "Service Unavailable";
	default: return "Unknown";
	}
}

void
web_header(struct web_req *r, const char *name, const char *value)
{
	if (r->req != NULL)
		evhttp_add_header(evhttp_request_get_output_headers(r->req),
		    name, value);
}

/* web_req_free - r is done with */
static void
web_req_free(struct web_req *r)
{
	web_auth_free(r);
	evhttp_clear_headers(&r->query);
	explicit_bzero(r->user, sizeof(r->user));
	free(r);
}

void
web_req_detach(struct web_req *r)
{
	r->req = NULL;
	r->conn = NULL;
}

/* sent - r's one log line, then free it (n: bytes of the body) */
static void
sent(struct web_req *r, int code, size_t n)
{
	char		 epath[WEB_PATH_MAX * 4 + 8];
	char		 euser[WEB_USER_MAX * 4 + 8];
	uint64_t	 us;

	us = mono_us() - r->start_us;
	log_escape(epath, sizeof(epath), r->path, strlen(r->path));
	log_escape(euser, sizeof(euser), r->user, strlen(r->user));
	log_info("%s client=[%s] method=%s path=%s status=%d bytes=%zu "
	    "time=%llu.%03llums%s%s%s", srvs[r->admin].name, r->addr,
	    r->method, epath, code, n, (unsigned long long)(us / 1000),
	    (unsigned long long)(us % 1000), r->user[0] ? " user=" : "",
	    euser, r->req == NULL ? " (client gone)" : "");
	web_req_free(r);
}

/* head_length - a HEAD answer's Content-Length: the GET body's (evhttp
 * sends the body it is given, even for HEAD, and adds no length) */
static void
head_length(struct evkeyvalq *h, size_t n)
{
	char	len[24];

	(void)snprintf(len, sizeof(len), "%zu", n);
	evhttp_remove_header(h, "Content-Length");
	evhttp_add_header(h, "Content-Length", len);
}

void
web_send(struct web_req *r, int code, json_t *body)
{
	char		*s = NULL, *t;
	size_t		 n = 0;
	static const char enc_fail[] =
	    "{\"error\":\"cannot encode the answer\",\"code\":500}\n";

	if (body != NULL && (s = json_dumps(body, JSON_COMPACT)) == NULL)
		code = 500;
	json_decref(body);
	if (s != NULL) {		/* one line, as curl users expect */
		/* a copy, not realloc: json_dumps's string may be the
		 * arena's (api_queue, common/jarena.h) */
		n = strlen(s);
		if ((t = malloc(n + 2)) == NULL)
			code = 500;
		else {
			memcpy(t, s, n);
			t[n++] = '\n';
			t[n] = '\0';
		}
		jfree(s);
		s = t;
	}
	if (r->req != NULL)
		evhttp_add_header(evhttp_request_get_output_headers(r->req),
		    "Cache-Control", "no-store");
	if (s == NULL && code == 500)
		web_send_body(r, code, "application/json; charset=utf-8",
		    enc_fail, sizeof(enc_fail) - 1);
	else
		web_send_body(r, code, "application/json; charset=utf-8", s, n);
	free(s);
}

void
web_send_body(struct web_req *r, int code, const char *type,
    const void *data, size_t len)
{
	struct evbuffer	*out = NULL;
	size_t		 n = 0;

	if (r->req != NULL) {
		struct evkeyvalq *h = evhttp_request_get_output_headers(r->req);

		if (type != NULL)
			evhttp_add_header(h, "Content-Type", type);
		evhttp_add_header(h, "X-Content-Type-Options", "nosniff");
		if (len > 0 && (out = evbuffer_new()) != NULL) {
			if (evbuffer_add(out, data, len) == 0)
				n = len;
		}
		if (r->head && code != 304)
			head_length(h, n);
		if (r->head && out != NULL)
			(void)evbuffer_drain(out, n);
		if (r->conn != NULL)
			r->conn->pending = NULL;
		evhttp_send_reply(r->req, code, status_text(code), out);
		if (out != NULL)
			evbuffer_free(out);
	}
	sent(r, code, r->head ? 0 : n);
}

/* web_req_header - the request's header field name, NULL when absent */
const char *
web_req_header(struct web_req *r, const char *name)
{
	if (r->req == NULL)
		return NULL;
	return evhttp_find_header(evhttp_request_get_input_headers(r->req),
	    name);
}

/* web_req_body - the request body (NUL-terminated copy, malloc'd; its
 * length in *len), NULL on ENOMEM or without a request */
char *
web_req_body(struct web_req *r, size_t *len)
{
	struct evbuffer	*in;
	char		*s;
	size_t		 n;

	if (r->req == NULL)
		return NULL;
	in = evhttp_request_get_input_buffer(r->req);
	n = evbuffer_get_length(in);
	if ((s = malloc(n + 1)) == NULL)
		return NULL;
	if (n > 0 && evbuffer_copyout(in, s, n) != (ev_ssize_t)n) {
		free(s);
		return NULL;
	}
	s[n] = '\0';
	*len = n;
	return s;
}

void
web_error(struct web_req *r, int code, const char *fmt, ...)
{
	char	msg[512];
	va_list	ap;

	va_start(ap, fmt);
	(void)vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	web_send(r, code, json_pack("{s:s,s:i}", "error", msg, "code", code));
}

const char *
web_query(struct web_req *r, const char *name)
{
	return evhttp_find_header(&r->query, name);
}

int
web_query_check(struct web_req *r, const char *const *names,
    const char **unknown)
{
	struct evkeyval	*kv;
	size_t		 i;

	TAILQ_FOREACH(kv, &r->query, next) {
		for (i = 0; names[i] != NULL; i++)
			if (strcmp(kv->key, names[i]) == 0)
				break;
		if (names[i] == NULL) {
			*unknown = kv->key;
			return -1;
		}
	}
	return 0;
}

/* --------------------------------------------------------------- TLS */

/* tls_bev_new - an OpenSSL bufferevent for a connection of a TLS
 * listener (evhttp gives it the socket) */
static struct bufferevent *
tls_bev_new(struct event_base *base)
{
	struct bufferevent	*bev;
	SSL			*ssl;

	if (tls_ctx == NULL || (ssl = SSL_new(tls_ctx)) == NULL) {
		log_warnx("http: cannot make a TLS session");
		return NULL;
	}
	bev = bufferevent_openssl_socket_new(base, -1, ssl,
	    BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
	if (bev == NULL) {
		SSL_free(ssl);
		log_warnx("http: cannot make a TLS bufferevent");
		return NULL;
	}
	bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	return bev;
}

/* --------------------------------------------------------- connections */

/* conn_close_cb - libevent closes evcon: forget it (and tell its
 * pending request, whose evhttp_request libevent frees when it is still
 * attached; a detached one is freed by the answer) */
static void
conn_close_cb(struct evhttp_connection *evcon, void *arg)
{
	struct web_conn	*c = arg;

	evhttp_connection_set_closecb(evcon, NULL, NULL);
	if (c->pending != NULL) {
		if (c->pending->req != NULL &&
		    evhttp_request_get_connection(c->pending->req) == evcon)
			c->pending->req = NULL;
		c->pending->conn = NULL;
	}
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		conns = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	if (c->over)
		nover--;
	else
		nconns--;
	free(c);
}

/* conn_new - a record for evcon, counted; over http_max_connections
 * it is marked so (its first request gets 503) and may idle only
 * WEB_OVER_IDLE seconds; NULL when out of memory or far over the limit
 * (twice it): then the caller closes the connection */
static struct web_conn *
conn_new(struct evhttp_connection *evcon)
{
	struct web_conn	*c;
	int		 over;

	over = nconns >= web_cfg->http_max_connections;
	if (over && nover >= web_cfg->http_max_connections)
		return NULL;
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return NULL;
	c->evcon = evcon;
	c->over = over;
	if ((c->next = conns) != NULL)
		conns->prev = c;
	conns = c;
	if (over) {
		nover++;
		evhttp_connection_set_timeout(evcon,
		    web_cfg->http_timeout < WEB_OVER_IDLE ?
		    (int)web_cfg->http_timeout : WEB_OVER_IDLE);
	} else
		nconns++;
	evhttp_connection_set_closecb(evcon, conn_close_cb, c);
	return c;
}

/* conn_find - evcon's record, NULL when there is none */
static struct web_conn *
conn_find(const struct evhttp_connection *evcon)
{
	struct web_conn	*c;

	for (c = conns; c != NULL; c = c->next)
		if (c->evcon == evcon)
			return c;
	return NULL;
}

/* adopt_free - forget a, dropping our reference to its bufferevent */
static void
adopt_free(struct web_adopt *a)
{
	if (a->prev != NULL)
		a->prev->next = a->next;
	else
		adopts = a->next;
	if (a->next != NULL)
		a->next->prev = a->prev;
	event_free(a->ev);
	bufferevent_decref(a->bev);
	free(a);
}

/* adopt_cb - right after an accept (an active event, run before the
 * socket is read): evhttp has made the connection, whose bufferevent
 * callbacks carry it; count it, or close it when far over the limit.
 * evhttp 2.1 has no accept hook but the bufferevent callback (bev_cb),
 * and our reference keeps the bufferevent valid until here. */
static void
adopt_cb(evutil_socket_t fd, short what, void *arg)
{
	struct web_adopt		*a = arg;
	struct evhttp_connection	*evcon;
	bufferevent_data_cb		 readcb;
	void				*cbarg;

	(void)fd;
	(void)what;
	bufferevent_getcb(a->bev, &readcb, NULL, NULL, &cbarg);
	evcon = cbarg;
	if (readcb != NULL && evcon != NULL && a->kill) {
		adopt_free(a);
		evhttp_connection_free(evcon);
		return;
	}
	if (readcb != NULL && evcon != NULL && conn_find(evcon) == NULL &&
	    conn_new(evcon) == NULL) {
		log_warnx("http: %zu connections open, twice "
		    "http_max_connections: closing a new one at once",
		    nconns + nover);
		adopt_free(a);
		evhttp_connection_free(evcon);
		return;
	}
	adopt_free(a);
}

/* bev_cb - every accepted connection: the bufferevent evhttp is to use
 * (OpenSSL on a TLS listener), with an adoption queued for it */
static struct bufferevent *
bev_cb(struct event_base *base, void *arg)
{
	struct bufferevent	*bev;
	struct web_adopt	*a;
	int			 kill = 0;

	(void)arg;
	if (tls_ctx == NULL || (bev = tls_bev_new(base)) == NULL) {
		/* a TLS listener without a TLS session closes it (kill) */
		kill = tls_ctx != NULL;
		bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
	}
	if (bev == NULL)
		return NULL;
	if ((a = calloc(1, sizeof(*a))) == NULL ||
	    (a->ev = event_new(base, -1, 0, adopt_cb, a)) == NULL) {
		free(a);
		return bev;		/* counted at its first request */
	}
	a->bev = bev;
	a->kill = kill;
	bufferevent_incref(bev);
	if ((a->next = adopts) != NULL)
		adopts->prev = a;
	adopts = a;
	event_active(a->ev, EV_TIMEOUT, 0);
	return bev;
}

/* ------------------------------------------------------------ dispatch */

static const char *
method_name(enum evhttp_cmd_type t)
{
	switch (t) {
	case EVHTTP_REQ_GET: return "GET";
	case EVHTTP_REQ_POST: return "POST";
	case EVHTTP_REQ_HEAD: return "HEAD";
	case EVHTTP_REQ_PUT: return "PUT";
	case EVHTTP_REQ_DELETE: return "DELETE";
	case EVHTTP_REQ_OPTIONS: return "OPTIONS";
	case EVHTTP_REQ_TRACE: return "TRACE";
	case EVHTTP_REQ_CONNECT: return "CONNECT";
	case EVHTTP_REQ_PATCH: return "PATCH";
	default: return "?";
	}
}

/* path_match - path against pattern ("*": one non-empty segment; "**"
 * at the end: the non-empty rest, slashes included; copied to cap, of
 * WEB_PATH_MAX + 1 bytes); 1 on a match */
static int
path_match(const char *pattern, const char *path, char *cap)
{
	size_t	n;

	while (*pattern != '\0') {
		if (*pattern == '*') {
			n = pattern[1] == '*' ? strlen(path) :
			    strcspn(path, "/");
			if (pattern[1] == '*')
				pattern++;
			if (n == 0 || n > WEB_PATH_MAX)
				return 0;
			memcpy(cap, path, n);
			cap[n] = '\0';
			path += n;
			pattern++;
			continue;
		}
		if (*pattern++ != *path++)
			return 0;
	}
	return *path == '\0';
}

/* is_loopback - 127.0.0.0/8, ::1, ::ffff:127.0.0.0/104 */
static int
is_loopback(const struct sockaddr_storage *ss)
{
	const struct sockaddr_in	*s4 = (const void *)ss;
	const struct sockaddr_in6	*s6 = (const void *)ss;
	const unsigned char		*b;

	if (ss->ss_family == AF_INET)
		return (ntohl(s4->sin_addr.s_addr) >> 24) == 127;
	if (ss->ss_family != AF_INET6)
		return 0;
	if (IN6_IS_ADDR_LOOPBACK(&s6->sin6_addr))
		return 1;
	b = s6->sin6_addr.s6_addr;
	return IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr) && b[12] == 127;
}

/* origin_ok - no Origin, or the server's own (scheme and Host) */
static int
origin_ok(struct web_req *r)
{
	struct evkeyvalq	*h = evhttp_request_get_input_headers(r->req);
	const char		*origin, *host, *scheme;
	size_t			 sl;

	if ((origin = evhttp_find_header(h, "Origin")) == NULL)
		return 1;
	if ((host = evhttp_find_header(h, "Host")) == NULL)
		return 0;
	scheme = r->tls ? "https://" : "http://";
	sl = strlen(scheme);
	return strncasecmp(origin, scheme, sl) == 0 &&
	    strcasecmp(origin + sl, host) == 0;
}

/* header_size - the request line and the header fields, as sent */
static size_t
header_size(struct evhttp_request *req)
{
	struct evkeyvalq	*h = evhttp_request_get_input_headers(req);
	struct evkeyval		*kv;
	const char		*uri = evhttp_request_get_uri(req);
	size_t			 n;

	n = 20 + (uri != NULL ? strlen(uri) : 0);
	TAILQ_FOREACH(kv, h, next)
		n += strlen(kv->key) + strlen(kv->value) + 4;
	return n;
}

/* dispatch - find r's route; admin routes: transport, Origin, then
 * authentication (web_auth.c runs the handler) */
static void
dispatch(struct web_req *r)
{
	const struct web_route	*rt;
	char			 allow[64] = "";
	size_t			 i;

	for (i = 0; i < web_nroutes; i++) {
		rt = &web_routes[i];
		if ((rt->admin && !r->admin) ||
		    !path_match(rt->pattern, r->path, r->capture))
			continue;
		if (strcmp(rt->method, r->method) == 0 || (r->head &&
		    strcmp(rt->method, "GET") == 0))
			break;
		if (strstr(allow, rt->method) == NULL)
			(void)snprintf(allow + strlen(allow), sizeof(allow) -
			    strlen(allow), "%s%s%s", allow[0] ? ", " : "",
			    rt->method, strcmp(rt->method, "GET") == 0 ?
			    ", HEAD" : "");
	}
	if (i == web_nroutes) {
		if (allow[0] != '\0') {
			web_header(r, "Allow", allow);
			web_error(r, 405, "method %s not allowed here",
			    r->method);
		} else
			web_error(r, 404, "not found");
		return;
	}
	r->route = rt;
	if (r->query_bad) {
		web_error(r, 400, "bad query string");
		return;
	}
	if (rt->admin) {
		if (!r->tls && !is_loopback(&r->ss)) {
			web_error(r, 403, "the operator view needs TLS or a "
			    "loopback client");
			return;
		}
		if (rt->csrf && !origin_ok(r)) {
			web_error(r, 403, "cross-site request refused "
			    "(Origin is not this server)");
			return;
		}
		if (rt->admin == 2 && web_admin_session(r)) {
			rt->fn(r);
			return;
		}
		web_auth_start(r);
		return;
	}
	rt->fn(r);
}

/* request_cb - every request of srv, once its header and body are in */
static void
request_cb(struct evhttp_request *req, void *arg)
{
	struct web_srv			*srv = arg;
	struct evhttp_connection	*evcon;
	const struct evhttp_uri		*uri;
	const struct sockaddr		*sa;
	struct bufferevent		*bev;
	struct web_req			*r;
	const char			*p, *q;
	char				*dec = NULL;
	size_t				 dlen = 0;

	if ((r = calloc(1, sizeof(*r))) == NULL) {
		log_warn("%s: request", srv->name);
		evhttp_send_error(req, 503, NULL);
		return;
	}
	TAILQ_INIT(&r->query);
	r->req = req;
	r->start_us = mono_us();
	r->admin = srv->admin;
	r->method = method_name(evhttp_request_get_command(req));
	r->head = evhttp_request_get_command(req) == EVHTTP_REQ_HEAD;
	evcon = evhttp_request_get_connection(req);
	if ((sa = evhttp_connection_get_addr(evcon)) != NULL &&
	    (sa->sa_family == AF_INET || sa->sa_family == AF_INET6)) {
		memcpy(&r->ss, sa, sa->sa_family == AF_INET ?
		    sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6));
		if (sockaddr_text(sa, r->addr, sizeof(r->addr)) == -1)
			snprintf(r->addr, sizeof(r->addr), "unknown");
	} else
		snprintf(r->addr, sizeof(r->addr), "unknown");
	bev = evhttp_connection_get_bufferevent(evcon);
	r->tls = bev != NULL && bufferevent_openssl_get_ssl(bev) != NULL;

	uri = evhttp_request_get_evhttp_uri(req);
	p = uri != NULL ? evhttp_uri_get_path(uri) : NULL;
	if (p == NULL || p[0] != '/' ||
	    (dec = evhttp_uridecode(p, 0, &dlen)) == NULL ||
	    dlen != strlen(dec) || dlen > WEB_PATH_MAX) {
		snprintf(r->path, sizeof(r->path), "%.*s", WEB_PATH_MAX,
		    p != NULL ? p : "(none)");
		free(dec);
		web_error(r, 400, "bad request path");
		return;
	}
	memcpy(r->path, dec, dlen + 1);
	free(dec);

	if ((r->conn = conn_find(evcon)) == NULL &&
	    (r->conn = conn_new(evcon)) == NULL) {
		web_header(r, "Connection", "close");
		web_error(r, 503, "out of memory");
		return;
	}
	if (r->conn->over) {
		r->conn = NULL;
		web_header(r, "Connection", "close");
		web_header(r, "Retry-After", "1");
		web_error(r, 503, "too many connections, try again later");
		return;
	}
	r->conn->pending = r;
	if (header_size(req) > web_cfg->http_max_header_size) {
		web_header(r, "Connection", "close");
		web_error(r, 431, "request header too large (at most %llu "
		    "bytes)", (unsigned long long)web_cfg->http_max_header_size);
		return;
	}
	if ((q = evhttp_uri_get_query(uri)) != NULL &&
	    evhttp_parse_query_str(q, &r->query) == -1)
		r->query_bad = 1;
	dispatch(r);
}

/* ---------------------------------------------------------- life cycle */

/* apply_bounds - the configured bounds on srv's evhttp */
static void
apply_bounds(struct web_srv *srv, const struct config *cfg)
{
	evhttp_set_timeout(srv->http, (int)cfg->http_timeout);
	evhttp_set_max_headers_size(srv->http,
	    (ev_ssize_t)(cfg->http_max_header_size + WEB_HDR_SLACK));
	evhttp_set_max_body_size(srv->http,
	    (ev_ssize_t)cfg->http_max_body_size);
}

int
web_server_start(const struct config *cfg, struct event_base *base,
    char *err, size_t errlen)
{
	struct web_srv	*srv;
	size_t		 i, j;

	web_cfg = cfg;
	web_base = base;
	if (web_metrics_start(cfg, base, err, errlen) == -1)
		return -1;
	if (srvs[0].nfds + srvs[1].nfds == 0)
		return 0;
	if (cfg->http_tls && tls_server_ctx_load(&tls_ctx, cfg->tls_cert,
	    cfg->tls_key, err, errlen) == -1)
		return -1;
	for (i = 0; i < 2; i++) {
		srv = &srvs[i];
		if (srv->nfds == 0)
			continue;
		if ((srv->http = evhttp_new(base)) == NULL) {
			snprintf(err, errlen, "%s: evhttp_new failed",
			    srv->name);
			return -1;
		}
		apply_bounds(srv, cfg);
		evhttp_set_allowed_methods(srv->http, EVHTTP_REQ_GET |
		    EVHTTP_REQ_POST | EVHTTP_REQ_HEAD | EVHTTP_REQ_PUT |
		    EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS |
		    EVHTTP_REQ_PATCH);
		evhttp_set_gencb(srv->http, request_cb, srv);
		evhttp_set_bevcb(srv->http, bev_cb, NULL);
		for (j = 0; j < srv->nfds; j++) {
			int one = 1;

			/* accepted sockets inherit it (Linux): a response
			 * written in parts is not held back by Nagle until
			 * the client's delayed ACK, 40 ms (bench/http.sh) */
			(void)setsockopt(srv->fds[j], IPPROTO_TCP, TCP_NODELAY,
			    &one, sizeof(one));
			if (evhttp_accept_socket_with_handle(srv->http,
			    srv->fds[j]) == NULL) {
				snprintf(err, errlen, "%s: cannot listen",
				    srv->name);
				return -1;
			}
			srv->fds[j] = -1;	/* evhttp's now */
		}
		log_info("%s: listening on %zu address%s%s", srv->name,
		    srv->nfds, srv->nfds == 1 ? "" : "es",
		    cfg->http_tls ? " (TLS)" : "");
	}
	return 0;
}

void
web_server_reload(const struct config *cfg)
{
	char	err[512];
	size_t	i;

	web_cfg = cfg;
	web_track_reload();
	for (i = 0; i < 2; i++)
		if (srvs[i].http != NULL)
			apply_bounds(&srvs[i], cfg);
	if (tls_ctx != NULL && cfg->http_tls &&
	    tls_server_ctx_load(&tls_ctx, cfg->tls_cert, cfg->tls_key, err,
	    sizeof(err)) == -1)
		log_warnx("http: reload: %s (keeping the previous TLS setup)",
		    err);
}

void
web_server_stop(void)
{
	struct web_conn	*c;
	size_t		 i, j;

	while (adopts != NULL)
		adopt_free(adopts);
	/* evhttp_free frees the requests still attached: forget them */
	for (c = conns; c != NULL; c = c->next)
		if (c->pending != NULL && c->pending->req != NULL &&
		    evhttp_request_get_connection(c->pending->req) ==
		    c->evcon)
			web_req_detach(c->pending);
	for (i = 0; i < 2; i++) {
		for (j = 0; j < srvs[i].nfds; j++)
			if (srvs[i].fds[j] != -1)
				close(srvs[i].fds[j]);
		free(srvs[i].fds);
		srvs[i].fds = NULL;
		srvs[i].nfds = 0;
		if (srvs[i].http != NULL)
			evhttp_free(srvs[i].http);
		srvs[i].http = NULL;
	}
	web_metrics_stop();
	web_track_shutdown();
	SSL_CTX_free(tls_ctx);
	tls_ctx = NULL;
}
