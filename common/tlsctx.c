#include "config.h"
/*
 * tlsctx.c - the server TLS context shared by the SMTP and MTQP servers.
 * Owns: loading tls_cert / tls_key into an SSL_CTX with Waymark's
 *       settings (TLS 1.2 or later, server cipher preference, no
 *       compression, no renegotiation, no session cache, buffers
 *       released when idle).
 * Not here: replacing a context on reload and the STARTTLS switch of a
 *       session (each server does that for its own sessions).
 * Standards: RFC 8996 (no TLS below 1.2).
 */

#include <stdio.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

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
