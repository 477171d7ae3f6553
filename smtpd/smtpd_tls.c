#include "config.h"
/*
 * smtpd_tls.c - STARTTLS for the SMTP server.
 * Owns: the server SSL_CTX (made and replaced on reload by
 *       common/tlsctx.c from tls_cert + tls_key, TLS 1.2 or later), the
 *       switch of a session to a bufferevent_openssl filter (common/
 *       tlsctx.c) once the "220 Ready to start TLS" has been flushed,
 *       and the reset after the handshake.
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

#include <openssl/ssl.h>

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
	return tls_server_ctx_load(&tls_ctx, cfg->tls_cert, cfg->tls_key, err,
	    errlen);
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
	const char		*why;
	size_t			 n;

	fb = tls_accept_filter(tls_ctx, smtpd_base, s->bev, &n, &why);
	if (n > 0)
		log_info("session=%s dropping %zu octets pipelined after "
		    "STARTTLS", s->sid, n);
	if (fb == NULL) {
		log_warnx("session=%s TLS: %s", s->sid, why);
		return -1;
	}
	s->bev = fb;		/* freeing fb frees the socket one too */
	if (smtpd_session_attach_cb(s, fb) == -1) {
		log_warnx("session=%s TLS: out of memory", s->sid);
		return -1;
	}
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
	char	line[600];

	tls_filter_error(s->bev, what, line, sizeof(line));
	log_info("session=%s TLS handshake failed: %s", s->sid, line);
}
