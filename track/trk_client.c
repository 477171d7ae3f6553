#include "config.h"
/*
 * trk_client.c - the MTQP client (RFC 3887): one TRACK query per
 * struct trk_query, on the caller's libevent loop, never blocking.
 * Owns: the client SSL_CTX and every query in flight, from its start
 *       (the names resolved by trk_dns.c: SRV _mtqp._tcp.HOST, else HOST
 *       on port 1038) to its end: connect (30 s per address, next one on
 *       failure); the greeting (+OK/MTQP, or +OK+/MTQP and its option
 *       lines up to "."); STARTTLS HOST when offered, TLS 1.2 or later,
 *       verified against the CA file or the system CAs and the name asked
 *       unless verification is off, then the fresh greeting (RFC 3887 6);
 *       TRACK envid-as-xtext secret (RFC 3887 4); the multi-line answer
 *       dot-unstuffed (2.3), lines of at most TRK_LINE_MAX octets, at most
 *       TRK_ANSWER_MAX in all; QUIT (7), whose reply is awaited after the
 *       caller has its answer.  The error text of an answer may quote
 *       a server's line: controls and broken UTF-8 in it are '?'.
 * Invariants: TRACK is never sent in clear to a server that offered
 *       STARTTLS (required or not): a refused STARTTLS, a failed handshake
 *       or data pipelined behind the STARTTLS reply end the query as
 *       TRK_TLS_FAILED.  The callback runs exactly once, from the loop
 *       (an event made active), never inside trk_query_start, and never
 *       after trk_query_cancel or trk_client_free.  Each response waits
 *       at most response_timeout (>= 2 minutes, RFC 3887 2.4), bounded
 *       by the query's own deadline (the request's timeout_ms, else
 *       TRK_QUERY_TIMEOUT_MS): every query ends by then, however its
 *       server trickles its lines.
 * Not here: the parsers (trk_parse.c), following referrals (callers).
 */

#include <sys/types.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

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
#include "common/util.h"
#include "track/trk_cint.h"

#define QUIT_LINGER	5		/* s to wait for the QUIT reply */
#define SECRET_MAX	512		/* base64 of A */

static void	q_read_cb(struct bufferevent *bev, void *arg);
static void	q_event_cb(struct bufferevent *bev, short what, void *arg);

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
	if (trk_dns_init(c, o, err, errlen) == -1) {
		SSL_CTX_free(c->ssl);
		free(c);
		return NULL;
	}
	return c;
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
	if (c == NULL)
		return;
	trk_dns_shutdown(c);
	while (c->queries != NULL)
		q_free(c->queries);
	if (c->ssl != NULL)
		SSL_CTX_free(c->ssl);
	free(c);
}

/* ---------------------------------------------------------------- helpers */

/* trk_q_arm - the step timer: secs, never past the query's deadline */
void
trk_q_arm(struct trk_query *q, int secs)
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

/* trk_q_finish - the result is known: QUIT (quit) or close, then call back
 * from the loop */
void
trk_q_finish(struct trk_query *q, enum trk_result r, int quit, const char *fmt,
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
	/* it may quote a server's line: no control octet, no broken UTF-8
	 * reaches a terminal or a log */
	text_safe(q->error);
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
	trk_q_maybe_free(q);
}

/* trk_q_maybe_free - free q once nothing refers to it any more */
void
trk_q_maybe_free(struct trk_query *q)
{
	if (q->dead && q->pending == 0 && q->bev == NULL &&
	    !event_pending(q->done_ev, EV_TIMEOUT, NULL))
		q_free(q);
}

/* q_quit_done - the QUIT linger is over (its reply, EOF, junk or the
 * timer): close; q is freed when nothing refers to it any more */
static void
q_quit_done(struct trk_query *q)
{
	q_close(q);
	q->state = Q_DONE;
	trk_q_maybe_free(q);
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

/* ---------------------------------------------------------------- TCP */

/* trk_q_try_connect - connect to addrs[acur], or the next target */
void
trk_q_try_connect(struct trk_query *q)
{
	struct bufferevent	*bev;
	char			 at[80];

	while (q->acur < q->naddrs) {
		if (q_past_deadline(q)) {
			trk_q_finish(q, TRK_UNREACHABLE, 0, "%s%sno connection "
			    "within the time allowed", q->lasterr,
			    q->lasterr[0] ? "; " : "");
			return;
		}
		addr_text(&q->addrs[q->acur], at, sizeof(at));
		bev = bufferevent_socket_new(q->c->base, -1,
		    BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
		if (bev == NULL) {
			trk_q_finish(q, TRK_ERROR, 0, "out of memory");
			return;
		}
		bufferevent_setcb(bev, q_read_cb, NULL, q_event_cb, q);
		if (bufferevent_socket_connect(bev,
		    (struct sockaddr *)&q->addrs[q->acur],
		    (int)q->alens[q->acur]) == 0) {
			q->bev = bev;
			q->state = Q_CONNECT;
			snprintf(q->server, sizeof(q->server), "%s", at);
			trk_q_arm(q, q->c->connect_to);
			return;
		}
		snprintf(q->lasterr, sizeof(q->lasterr), "%s: %s", at,
		    evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
		bufferevent_free(bev);
		q->acur++;
	}
	q->tcur++;
	trk_dns_next_target(q);
}

/* q_connect_failed - this address failed: the next one */
static void
q_connect_failed(struct trk_query *q, const char *why)
{
	snprintf(q->lasterr, sizeof(q->lasterr), "%s: %s", q->server, why);
	q->server[0] = '\0';
	q_close(q);
	q->acur++;
	trk_q_try_connect(q);
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
		trk_q_finish(q, TRK_TLS_FAILED, 0, "data after the reply to "
		    "STARTTLS");
		return;
	}
	if ((ssl = SSL_new(q->c->ssl)) == NULL) {
		ERR_clear_error();
		trk_q_finish(q, TRK_TLS_FAILED, 0, "cannot start TLS");
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
		trk_q_finish(q, TRK_TLS_FAILED, 0, "cannot start TLS");
		return;
	}
	q->bev = nb;		/* freeing nb frees the socket one too */
	bufferevent_openssl_set_allow_dirty_shutdown(nb, 1);
	bufferevent_setcb(nb, q_read_cb, NULL, q_event_cb, q);
	bufferevent_enable(nb, EV_READ | EV_WRITE);
	q->state = Q_TLS;
	trk_q_arm(q, q->c->response_to);
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
	trk_q_finish(q, TRK_TLS_FAILED, 0, "TLS handshake failed: %s", ebuf);
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
	trk_q_arm(q, q->c->response_to);
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
			trk_q_finish(q, TRK_NOT_MTQP, 0, "%s does not speak MTQP: "
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
			trk_q_finish(q, TRK_ERROR, 0, "server unavailable: %.*s",
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
		trk_q_finish(q, TRK_TLS_FAILED, 1, "STARTTLS refused: %.*s",
		    (int)(len > 300 ? 300 : len), line);
		return 0;
	case Q_TRACK:
		if (ok && k == TRK_R_OKPLUS) {
			buf_reset(&q->body);
			q->state = Q_DATA;
		} else if (ok && k == TRK_R_ERR &&
		    trk_reply_has(info, il, "noinfo"))
			trk_q_finish(q, TRK_NOINFO, 1, "%.*s",
			    (int)(len > 300 ? 300 : len), line);
		else if (ok && k == TRK_R_ERR &&
		    trk_reply_has(info, il, "tls-required"))
			trk_q_finish(q, TRK_TLS_FAILED, 1, "%.*s",
			    (int)(len > 300 ? 300 : len), line);
		else
			trk_q_finish(q, TRK_ERROR, 1, "TRACK: %s%.*s",
			    ok ? "" : "malformed response: ",
			    (int)(len > 300 ? 300 : len), line);
		return 0;
	case Q_DATA:
		if (len == 1 && line[0] == '.') {
			trk_q_finish(q, TRK_OK, 1, "%s", "");
			return 0;
		}
		if (len > 0 && line[0] == '.') {	/* dot-stuffed */
			line++;
			len--;
		}
		if (buf_append(&q->body, line, len) == -1 ||
		    buf_append(&q->body, "\r\n", 2) == -1)
			trk_q_finish(q, TRK_ERROR, 0, "the answer is over %u "
			    "octets", TRK_ANSWER_MAX);
		return 0;
	case Q_QUIT:
		q_quit_done(q);
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
			trk_q_finish(q, TRK_ERROR, 0, "read error");
			return 0;
		}
		line[eol.pos] = '\0';
		if (q->state != Q_QUIT)
			trk_q_arm(q, q->c->response_to);	/* progress */
		if (q_line(q, line, (size_t)eol.pos) == -1)
			return -1;
	}
	return 0;
toolong:
	if (q->state == Q_QUIT) {
		q_quit_done(q);
		return -1;
	} else if (q->state == Q_GREETING)
		trk_q_finish(q, TRK_NOT_MTQP, 0, "%s does not speak MTQP: greeting "
		    "line over %d octets", q->server, TRK_LINE_MAX - 2);
	else
		trk_q_finish(q, TRK_ERROR, 0, "a response line over %d octets",
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
			trk_q_arm(q, q->c->response_to);
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
			trk_q_arm(q, q->c->response_to);
			(void)q_read(q);
			return;
		}
		q_tls_failed(q);
		return;
	case Q_QUIT:
		q_quit_done(q);
		return;
	default:
		break;
	}
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
		/* a last line may be buffered */
		if (q_read(q) == -1 || q->answered)
			return;
		if (q->state == Q_GREETING)
			trk_q_finish(q, TRK_NOT_MTQP, 0, "%s closed the connection "
			    "without an MTQP greeting", q->server);
		else
			trk_q_finish(q, TRK_ERROR, 0, "%s closed the connection%s",
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
		trk_q_finish(q, TRK_UNREACHABLE, 0, "%s: DNS lookup not finished "
		    "within the time allowed", q->host);
		return;
	case Q_CONNECT:
		if (past) {
			snprintf(q->lasterr, sizeof(q->lasterr), "%s: "
			    "connection timed out", q->server);
			q_close(q);
			trk_q_finish(q, TRK_UNREACHABLE, 0, "%s", q->lasterr);
			return;
		}
		q_connect_failed(q, "connection timed out");
		return;
	case Q_QUIT:
		q_quit_done(q);
		return;
	case Q_DONE:
		return;
	default:
		trk_q_finish(q, q->state == Q_TLS ? TRK_TLS_FAILED : TRK_ERROR, 0,
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
	if ((fam = trk_literal_addr(q->host, a, q->tlsname,
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
	{
		/* every query has a deadline: the step timer re-armed by each
		 * line cannot be held for ever by a line now and then */
		struct timeval	now, d;
		long		ms = rq->timeout_ms > 0 ? rq->timeout_ms :
				    TRK_QUERY_TIMEOUT_MS;

		evutil_gettimeofday(&now, NULL);
		d.tv_sec = ms / 1000;
		d.tv_usec = (ms % 1000) * 1000;
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
		trk_q_try_connect(q);
		return q;
	}
	if (fam != 0) {			/* an address literal: no DNS */
		trk_add_addr(q, fam, a, q->port ? q->port : TRK_MTQP_PORT);
		trk_q_try_connect(q);
		return q;
	}
	if (q->port != 0) {		/* HOST:PORT: A/AAAA of HOST */
		snprintf(q->targets[0].name, HOST_MAX, "%s", q->host);
		q->targets[0].port = q->port;
		q->ntargets = 1;
		trk_dns_next_target(q);
		return q;
	}
	/* RFC 3887 2.1: SRV first */
	n = snprintf(qname, sizeof(qname), "_mtqp._tcp.%s", q->tlsname);
	if (n < 0 || (size_t)n >= sizeof(qname)) {
		trk_q_finish(q, TRK_UNREACHABLE, 0, "%s: name too long", q->host);
		return q;
	}
	trk_dns_srv(q, qname);
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
	trk_q_maybe_free(q);
}
