/*
 * tlsctx.h - the server TLS context that every listener offering STARTTLS
 * shares the making of (SMTP in smtpd/smtpd_tls.c, MTQP in
 * track/trk_server.c): one certificate chain and key (tls_cert, tls_key),
 * TLS 1.2 or later (RFC 8996), no compression, no renegotiation, no
 * session cache.
 */
#ifndef WAYMARK_TLSCTX_H
#define WAYMARK_TLSCTX_H

#include <stddef.h>

typedef struct ssl_ctx_st SSL_CTX;

/*
 * tls_server_ctx_new - a server context with the certificate chain of
 * cert and the private key of key (both PEM), checked to match.  NULL
 * with err set ("tls_cert FILE: reason", ...) on failure.
 */
SSL_CTX		*tls_server_ctx_new(const char *cert, const char *key,
		    char *err, size_t errlen);
/* tls_errstr - OpenSSL error e as text in buf ("unknown error" for 0) */
const char	*tls_errstr(unsigned long e, char *buf, size_t len);

#endif
