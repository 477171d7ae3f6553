#include "config.h"
/*
 * tlsctx.c - the server TLS context shared by the SMTP and MTQP servers.
 * Owns: loading tls_cert / tls_key into an SSL_CTX with Waymark's
 *       settings (TLS 1.2 or later, server cipher preference, no
 *       compression, no renegotiation, no session cache, buffers
 *       released when idle), replacing it on reload, a session's switch
 *       to a bufferevent_openssl filter after STARTTLS (pipelined
 *       plaintext dropped), and the one-line reason of a failed
 *       handshake.
 * Not here: the STARTTLS commands, session callbacks, states and log
 *       lines (each server does that for its own sessions).
 * Standards: RFC 8996 (no TLS below 1.2).
 */

#include <stdio.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>

#include "common/tlsctx.h"

const char *
tls_errstr(unsigned long e, char *buf, size_t len)
{
	if (e == 0)
		return "unknown error";
	ERR_error_string_n(e, buf, len);
	return buf;
}

SSL_CTX *
tls_server_ctx_new(const char *cert, const char *key, char *err,
    size_t errlen)
{
	SSL_CTX	*ctx;
	char	 ebuf[256];

	ERR_clear_error();
	if ((ctx = SSL_CTX_new(TLS_server_method())) == NULL) {
		snprintf(err, errlen, "TLS: SSL_CTX_new: %s",
		    tls_errstr(ERR_get_error(), ebuf, sizeof(ebuf)));
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION |
	    SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
		snprintf(err, errlen, "tls_cert %s: %s", cert,
		    tls_errstr(ERR_get_error(), ebuf, sizeof(ebuf)));
		goto fail;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
		snprintf(err, errlen, "tls_key %s: %s", key,
		    tls_errstr(ERR_get_error(), ebuf, sizeof(ebuf)));
		goto fail;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		snprintf(err, errlen, "tls_key %s does not match tls_cert %s",
		    key, cert);
		goto fail;
	}
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

/* tls_server_ctx_load - replace *ctxp on (re)load; NULL when unset */
int
tls_server_ctx_load(SSL_CTX **ctxp, const char *cert, const char *key,
    char *err, size_t errlen)
{
	SSL_CTX	*ctx = NULL;

	if (cert != NULL && key != NULL && cert[0] != '\0' && key[0] != '\0' &&
	    (ctx = tls_server_ctx_new(cert, key, err, errlen)) == NULL)
		return -1;
	if (*ctxp != NULL)
		SSL_CTX_free(*ctxp);
	*ctxp = ctx;
	return 0;
}

/* tls_accept_filter - drop pipelined plaintext, put TLS over bev */
struct bufferevent *
tls_accept_filter(SSL_CTX *ctx, struct event_base *base,
    struct bufferevent *bev, size_t *dropped, const char **why)
{
	struct bufferevent	*fb;
	struct evbuffer		*in;
	SSL			*ssl;

	*dropped = 0;
	if (ctx == NULL || (ssl = SSL_new(ctx)) == NULL) {
		*why = "SSL_new failed";
		return NULL;
	}
	in = bufferevent_get_input(bev);
	if ((*dropped = evbuffer_get_length(in)) > 0)
		evbuffer_drain(in, *dropped);
	/* the filter's timeouts replace the socket's */
	bufferevent_set_timeouts(bev, NULL, NULL);
	fb = bufferevent_openssl_filter_new(base, bev, ssl,
	    BUFFEREVENT_SSL_ACCEPTING,
	    BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	if (fb == NULL) {
		*why = "cannot create the filter";
		SSL_free(ssl);
		return NULL;
	}
	bufferevent_openssl_set_allow_dirty_shutdown(fb, 1);
	bufferevent_enable(bev, EV_READ | EV_WRITE);
	return fb;
}

/* tls_filter_error - the reason of a failed handshake, one line */
void
tls_filter_error(struct bufferevent *bev, short what, char *line,
    size_t len)
{
	unsigned long	e;
	char		ebuf[256];
	size_t		off = 0;
	int		n;

	line[0] = '\0';
	while ((e = bufferevent_get_openssl_error(bev)) != 0) {
		if (ERR_GET_LIB(e) == 0)
			continue;	/* libevent's own codes, not OpenSSL's */
		n = snprintf(line + off, len - off, "%s%s",
		    off > 0 ? "; " : "", tls_errstr(e, ebuf, sizeof(ebuf)));
		if (n < 0 || (size_t)n >= len - off)
			break;
		off += (size_t)n;
	}
	if (off == 0)
		snprintf(line, len, "%s", (what & BEV_EVENT_EOF) ?
		    "connection closed" : "I/O error");
}
