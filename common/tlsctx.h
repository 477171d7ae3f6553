/*
 * tlsctx.h - the server TLS context that every listener offering STARTTLS
 * shares the making of (SMTP in smtpd/smtpd_tls.c, MTQP in
 * track/trk_server.c): one certificate chain and key (tls_cert, tls_key),
 * TLS 1.2 or later (RFC 8996), no compression, no renegotiation, no
 * session cache; and a session's switch to TLS on a bufferevent.
 */
#ifndef WAYMARK_TLSCTX_H
#define WAYMARK_TLSCTX_H

#include <stddef.h>

typedef struct ssl_ctx_st SSL_CTX;
struct bufferevent;
struct event_base;

/*
 * tls_server_ctx_new - a server context with the certificate chain of
 * cert and the private key of key (both PEM), checked to match.  NULL
 * with err set ("tls_cert FILE: reason", ...) on failure.
 */
SSL_CTX		*tls_server_ctx_new(const char *cert, const char *key,
		    char *err, size_t errlen);
/* tls_errstr - OpenSSL error e as text in buf ("unknown error" for 0) */
const char	*tls_errstr(unsigned long e, char *buf, size_t len);
/*
 * tls_server_ctx_load - a reload: *ctxp becomes a context from cert and
 * key, or NULL when either is unset (NULL or ""), the old one freed
 * (sessions keep their SSL's reference).  -1 with err set, *ctxp kept.
 */
int		 tls_server_ctx_load(SSL_CTX **ctxp, const char *cert,
		    const char *key, char *err, size_t errlen);
/*
 * tls_accept_filter - STARTTLS's reply is flushed: drain what bev has
 * read since (pipelined plaintext, never interpreted; *dropped octets,
 * also on failure), clear bev's timeouts and put a server-side OpenSSL
 * filter over it (allowing a dirty shutdown; freeing the filter frees
 * bev).  The caller sets the filter's callbacks and enables it.  NULL
 * with *why ("SSL_new failed", "cannot create the filter").
 */
struct bufferevent *tls_accept_filter(SSL_CTX *ctx, struct event_base *base,
		    struct bufferevent *bev, size_t *dropped,
		    const char **why);
/* tls_filter_error - why the handshake (or TLS stream) on the filter bev
 * failed, in line: OpenSSL's errors joined by "; ", else "connection
 * closed" (what has BEV_EVENT_EOF) or "I/O error" */
void		 tls_filter_error(struct bufferevent *bev, short what,
		    char *line, size_t len);

#endif
