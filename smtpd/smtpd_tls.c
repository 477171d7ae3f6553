#include "config.h"
/*
 * smtpd_tls.c - STARTTLS for the SMTP server.
 * Owns: the server SSL_CTX (made by common/tlsctx.c from tls_cert +
 *       tls_key, TLS 1.2 or later), replacing it on reload, the switch
 *       of a session to a bufferevent_openssl filter once the "220 Ready
 *       to start TLS" has been flushed, and the reset after the handshake.
 * Invariants: input buffered before the handshake (pipelined after
 *       STARTTLS) is dropped, never interpreted; after the handshake every
 *       SMTP state is discarded (RFC 3207 4.2) and STARTTLS is no longer
 *       advertised; a handshake failure is logged and the session closed.
 * Not here: the STARTTLS command checks (smtpd_cmd.c).
 * Standards: RFC 3207, RFC 8996 (no TLS below 1.2).
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>

#include "common/cfg.h"
#include "common/log.h"
#include "common/tlsctx.h"
#include "smtpd/smtpd_session.h"

static SSL_CTX *tls_ctx;

/* smtpd_tls_init - (re)build the context; the old one stays on error */
int
smtpd_tls_init(const struct config *cfg, char *err, size_t errlen)
{
	SSL_CTX	*ctx;

	if (cfg->tls_cert == NULL || cfg->tls_key == NULL ||
	    cfg->tls_cert[0] == '\0' || cfg->tls_key[0] == '\0') {
		smtpd_tls_free();
		return 0;
	}
	if ((ctx = tls_server_ctx_new(cfg->tls_cert, cfg->tls_key, err,
	    errlen)) == NULL)
		return -1;
	smtpd_tls_free();
	tls_ctx = ctx;
	return 0;
}

/* smtpd_tls_free - drop the context (sessions keep their reference) */
void
smtpd_tls_free(void)
{
	if (tls_ctx != NULL)
		SSL_CTX_free(tls_ctx);
	tls_ctx = NULL;
}

int
smtpd_tls_available(void)
{
	return tls_ctx != NULL;
}

/*
 * smtpd_tls_start - the 220 is flushed: drop plaintext read meanwhile
 * and put an OpenSSL filter over the socket bufferevent.  -1: close.
 */
int
smtpd_tls_start(struct smtpd_session *s)
{
	struct bufferevent	*fb;
	struct evbuffer		*in;
	SSL			*ssl;
	size_t			 n;

	if (tls_ctx == NULL || (ssl = SSL_new(tls_ctx)) == NULL) {
		log_warnx("session=%s TLS: SSL_new failed", s->sid);
		return -1;
	}
	in = bufferevent_get_input(s->bev);
	if ((n = evbuffer_get_length(in)) > 0) {
		log_info("session=%s dropping %zu octets pipelined after "
		    "STARTTLS", s->sid, n);
		evbuffer_drain(in, n);
	}
	/* the filter's timeouts replace the socket's */
	bufferevent_set_timeouts(s->bev, NULL, NULL);
	fb = bufferevent_openssl_filter_new(smtpd_base, s->bev, ssl,
	    BUFFEREVENT_SSL_ACCEPTING,
	    BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	if (fb == NULL) {
		log_warnx("session=%s TLS: cannot create the filter", s->sid);
		SSL_free(ssl);
		return -1;
	}
	bufferevent_openssl_set_allow_dirty_shutdown(fb, 1);
	bufferevent_enable(s->bev, EV_READ | EV_WRITE);
	s->bev = fb;		/* freeing fb frees the socket one too */
	smtpd_session_attach_cb(s, fb);
	bufferevent_enable(fb, EV_READ | EV_WRITE);
	log_debug("session=%s TLS handshake started", s->sid);
	return 0;
}

/* smtpd_tls_connected - handshake done: record it, forget the SMTP state */
void
smtpd_tls_connected(struct smtpd_session *s)
{
	SSL	*ssl;
	char	 info[128];
	int	 n;

	if (s->state != SMTPD_TLS || (ssl = bufferevent_openssl_get_ssl(s->bev)) == NULL)
		return;
	n = snprintf(info, sizeof(info), "%s %s", SSL_get_version(ssl),
	    SSL_get_cipher_name(ssl));
	if (n < 0 || (size_t)n >= sizeof(info))
		info[0] = '\0';
	free(s->tls_info);
	s->tls_info = strdup(info);
	s->tls = 1;
	log_info("session=%s TLS established: %s", s->sid, info);
	smtpd_reset_after_tls(s);
}

/* smtpd_tls_log_error - why the handshake (or TLS stream) failed, one line */
void
smtpd_tls_log_error(struct smtpd_session *s, short what)
{
	unsigned long	e;
	char		ebuf[256], line[600];
	size_t		off = 0;
	int		n;

	line[0] = '\0';
	while ((e = bufferevent_get_openssl_error(s->bev)) != 0) {
		if (ERR_GET_LIB(e) == 0)
			continue;	/* libevent's own codes, not OpenSSL's */
		n = snprintf(line + off, sizeof(line) - off, "%s%s",
		    off > 0 ? "; " : "", tls_errstr(e, ebuf, sizeof(ebuf)));
		if (n < 0 || (size_t)n >= sizeof(line) - off)
			break;
		off += (size_t)n;
	}
	if (off == 0)
		snprintf(line, sizeof(line), "%s", (what & BEV_EVENT_EOF) ?
		    "connection closed" : "I/O error");
	log_info("session=%s TLS handshake failed: %s", s->sid, line);
}
