#include "config.h"
/*
 * smtpd_auth.c - SMTP AUTH on submission listeners (RFC 4954, RFC 6409).
 * Owns: the AUTH command (PLAIN, RFC 4616, and LOGIN), initial
 *       responses, the 334 exchanges (state SMTPD_AUTH), "*" cancel,
 *       the crypt_r(3) check against auth_users, the failure delay
 *       (a timer: each failure reply waits 1 s; input is held meanwhile) and the 421
 *       after 3 failures, the trace protocol name (ESMTPA / ESMTPSA).
 * Entry points: smtpd_auth_offered, smtpd_auth_cmd (from the dispatch
 *       table), smtpd_auth_input (response lines, from smtpd_process),
 *       smtpd_auth_free, smtpd_proto.
 * Not here: the 530 to MAIL/RCPT/DATA before AUTH and the relay rule
 *       (smtpd_cmd.c), loading auth_users (common/cfg.c).
 * Invariants: credentials are never logged: s->cmd shows only "AUTH MECH"
 *       or "(AUTH response)"; a reply is sent exactly once per command or
 *       response line, possibly from the delay timer.
 */

#include <crypt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "common/cfg.h"
#include "common/log.h"
#include "common/syntax.h"
#include "smtpd/smtpd_session.h"

#define MECH_NONE	0
#define MECH_PLAIN	1
#define MECH_LOGIN	2

#define AUTH_MAX_FAILURES	3	/* RFC 4954 4: not before 3 */
#define AUTH_FAIL_DELAY		1	/* seconds before each failure reply */
#define AUTH_DECODED_MAX	(SMTPD_LINE_MAX)	/* > 3/4 of a line */
#define AUTH_USER_MAX		255

/* hash used when the user is unknown, so that both cases cost a crypt */
#define AUTH_DUMMY_SETTING	"$6$wmdummysalt$"

static const char *const mech_names[] = { "", "PLAIN", "LOGIN" };

/* smtpd_auth_offered - is AUTH advertised (and accepted) on s? */
int
smtpd_auth_offered(const struct smtpd_session *s)
{
	return s->submission && (s->tls || smtpd_cfg->submission_plaintext_auth);
}

/* smtpd_proto - "with" protocol of the trace field (RFC 3848) */
const char *
smtpd_proto(const struct smtpd_session *s)
{
	if (!s->esmtp)
		return "SMTP";
	if (s->auth_user != NULL)
		return s->tls ? "ESMTPSA" : "ESMTPA";
	return s->tls ? "ESMTPS" : "ESMTP";
}

/* smtpd_auth_free - release the AUTH part of a session */
void
smtpd_auth_free(struct smtpd_session *s)
{
	if (s->authtimer != NULL) {
		event_free(s->authtimer);
		s->authtimer = NULL;
	}
	if (s->auth_login != NULL) {
		explicit_bzero(s->auth_login, strlen(s->auth_login));
		free(s->auth_login);
		s->auth_login = NULL;
	}
	free(s->auth_user);
	s->auth_user = NULL;
	s->auth_mech = MECH_NONE;
	s->auth_step = 0;
	s->auth_waiting = 0;
}

/* auth_end - leave the exchange: back to READY, forget the LOGIN name */
static void
auth_end(struct smtpd_session *s)
{
	if (s->auth_login != NULL) {
		explicit_bzero(s->auth_login, strlen(s->auth_login));
		free(s->auth_login);
		s->auth_login = NULL;
	}
	s->auth_mech = MECH_NONE;
	s->auth_step = 0;
	if (s->state == SMTPD_AUTH)
		smtpd_set_state(s, SMTPD_READY);
}

/* smtpd_auth_abort - end the exchange with an error reply */
void
smtpd_auth_abort(struct smtpd_session *s, int code, int cls, int subj,
    int det, const char *text)
{
	auth_end(s);
	smtpd_reply(s, code, cls, subj, det, "%s", text);
}

/* ct_equal - constant-time comparison of two NUL-terminated strings */
static int
ct_equal(const char *a, const char *b)
{
	size_t		 la = strlen(a), lb = strlen(b), i;
	unsigned char	 d = (la != lb);

	for (i = 0; i < la && i < lb; i++)
		d |= (unsigned char)(a[i] ^ b[i]);
	return d == 0;
}

/* auth_check_password - 1 when user/pass match auth_users */
static int
auth_check_password(const char *user, const char *pass)
{
	static struct crypt_data cd;	/* ~32 KiB: not on the stack */
	const char	*hash, *out;
	int		 ok;

	hash = cfg_auth_hash(smtpd_cfg, user);
	memset(&cd, 0, sizeof(cd));
	out = crypt_r(pass, hash != NULL ? hash : AUTH_DUMMY_SETTING, &cd);
	ok = hash != NULL && out != NULL && out[0] != '*' &&
	    ct_equal(out, hash);
	explicit_bzero(&cd, sizeof(cd));
	return ok;
}

/* auth_delay_cb - the delayed failure reply; then input resumes */
static void
auth_delay_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct smtpd_session *s = arg;

	(void)fd; (void)ev;
	s->auth_waiting = 0;
	if (s->state == SMTPD_CLOSING)
		return;
	s->cmd = "(AUTH response)";
	s->cmdlen = strlen(s->cmd);
	if (s->auth_failures >= AUTH_MAX_FAILURES)
		smtpd_reply(s, 421, 4, 7, 0, "%s Error: too many failed "
		    "authentication attempts", smtpd_cfg->hostname);
	else
		smtpd_reply(s, 535, 5, 7, 8,
		    "Error: authentication credentials invalid");
	s->cmd = NULL;
	s->cmdlen = 0;
	smtpd_resume(s);
}

/* auth_fail - log, then answer 535 (or 421) after 1 s per failure */
static void
auth_fail(struct smtpd_session *s, const char *user)
{
	struct timeval	tv;
	char		euser[AUTH_USER_MAX * 4 + 8];

	s->auth_failures++;
	log_escape(euser, sizeof(euser), user, strlen(user));
	log_info("session=%s auth failed user=%s mech=%s client=[%s] "
	    "failures=%u", s->sid, euser, mech_names[s->auth_mech], s->addr,
	    s->auth_failures);
	auth_end(s);
	if (s->authtimer == NULL)
		s->authtimer = evtimer_new(smtpd_base, auth_delay_cb, s);
	if (s->authtimer == NULL) {
		auth_delay_cb(-1, 0, s);
		return;
	}
	tv.tv_sec = AUTH_FAIL_DELAY;
	tv.tv_usec = 0;
	s->auth_waiting = 1;
	evtimer_add(s->authtimer, &tv);
}

/* auth_verify - check the credentials; reply now (235) or later (535) */
static void
auth_verify(struct smtpd_session *s, const char *user, const char *pass)
{
	char	euser[AUTH_USER_MAX * 4 + 8];
	int	i;

	if (user[0] == '\0' || strlen(user) > AUTH_USER_MAX ||
	    !auth_check_password(user, pass)) {
		auth_fail(s, user);
		return;
	}
	if ((s->auth_user = strdup(user)) == NULL) {
		smtpd_auth_abort(s, 454, 4, 7, 0,
		    "Temporary authentication failure");
		return;
	}
	log_escape(euser, sizeof(euser), user, strlen(user));
	log_info("session=%s auth ok user=%s mech=%s", s->sid, euser,
	    mech_names[s->auth_mech]);
	auth_end(s);
	if ((i = smtpd_cmd_index("AUTH")) >= 0)
		s->okcount[i]++;
	smtpd_reply(s, 235, 2, 7, 0, "Authentication successful");
}

/* auth_decode - base64 of a response into out (NUL-terminated); -1 bad */
static ssize_t
auth_decode(const char *in, size_t len, unsigned char *out, size_t outlen)
{
	int n;

	if (len == 1 && in[0] == '=')	/* empty initial response */
		n = 0;
	else if (len == 0)
		n = 0;
	else if ((n = base64_decode(in, len, out, outlen - 1)) < 0)
		return -1;
	out[n] = '\0';
	return n;
}

/* auth_plain - authzid NUL authcid NUL passwd (RFC 4616 2) */
static void
auth_plain(struct smtpd_session *s, const unsigned char *d, size_t n)
{
	const char	*authz, *user, *pass;
	size_t		 lz, lu;

	authz = (const char *)d;
	lz = strnlen(authz, n);
	if (lz >= n)
		goto bad;
	user = authz + lz + 1;
	lu = strnlen(user, n - lz - 1);
	if (lz + 1 + lu >= n)
		goto bad;
	pass = user + lu + 1;
	if (strnlen(pass, n - lz - lu - 2) != n - lz - lu - 2)
		goto bad;		/* a third NUL */
	if (lz > 0 && strcmp(authz, user) != 0) {
		auth_fail(s, user);	/* no proxy authorization */
		return;
	}
	auth_verify(s, user, pass);
	return;
bad:
	auth_fail(s, "");
}

/* auth_step - one decoded response of the current mechanism */
static void
auth_step(struct smtpd_session *s, const unsigned char *d, size_t n)
{
	if (s->auth_mech == MECH_PLAIN) {
		auth_plain(s, d, n);
		return;
	}
	/* LOGIN: username, then password */
	if (s->auth_step == 0) {
		if (n > AUTH_USER_MAX || strlen((const char *)d) != n ||
		    (s->auth_login = strdup((const char *)d)) == NULL) {
			auth_fail(s, "");
			return;
		}
		s->auth_step = 1;
		smtpd_set_state(s, SMTPD_AUTH);
		smtpd_reply(s, 334, SMTPD_NOENH, "UGFzc3dvcmQ6");	/* Password: */
		return;
	}
	if (strlen((const char *)d) != n) {
		auth_fail(s, s->auth_login);
		return;
	}
	auth_verify(s, s->auth_login, (const char *)d);
}

/*
 * smtpd_auth_cmd - "AUTH mech [initial-response]".  Returns 0 when done
 * (235 sent), 1 when the outcome comes later (334, delayed 535), -1 on
 * an error reply.
 */
int
smtpd_auth_cmd(struct smtpd_session *s, const char *arg, size_t len)
{
	static unsigned char	 dec[AUTH_DECODED_MAX + 1];
	const char		*ir = NULL;
	size_t			 mlen, irlen = 0;
	ssize_t			 n;
	int			 mech;

	/* (the dispatcher already hides the initial response from the logs) */
	for (mlen = 0; mlen < len && arg[mlen] != ' '; mlen++)
		;
	if (mlen < len) {
		ir = arg + mlen + 1;
		irlen = len - mlen - 1;
	}

	/* check */
	if (!s->submission) {
		smtpd_reply(s, 503, 5, 5, 1, "Error: authentication not enabled");
		return -1;
	}
	if (!smtpd_auth_offered(s)) {
		smtpd_reply(s, 530, 5, 7, 0, "Must issue a STARTTLS command first");
		return -1;
	}
	if (s->auth_user != NULL) {
		smtpd_reply(s, 503, 5, 5, 1, "Error: already authenticated");
		return -1;
	}
	if (s->txn != NULL) {
		smtpd_reply(s, 503, 5, 5, 1, "Error: MAIL transaction in progress");
		return -1;
	}
	if (mlen == 0) {
		smtpd_reply(s, 501, 5, 5, 4, "Syntax: AUTH mechanism");
		return -1;
	}
	if (mlen == 5 && strncasecmp(arg, "PLAIN", 5) == 0)
		mech = MECH_PLAIN;
	else if (mlen == 5 && strncasecmp(arg, "LOGIN", 5) == 0)
		mech = MECH_LOGIN;
	else {
		smtpd_reply(s, 504, 5, 5, 4,
		    "Unsupported authentication mechanism");
		return -1;
	}
	if (ir != NULL && (irlen == 0 || memchr(ir, ' ', irlen) != NULL)) {
		smtpd_reply(s, 501, 5, 5, 4, "Syntax: AUTH mechanism "
		    "[initial-response]");
		return -1;
	}

	/* act */
	s->auth_mech = mech;
	s->auth_step = 0;
	if (ir == NULL) {
		smtpd_set_state(s, SMTPD_AUTH);
		if (mech == MECH_PLAIN)
			smtpd_reply(s, 334, SMTPD_NOENH, "%s", "");
		else
			smtpd_reply(s, 334, SMTPD_NOENH, "VXNlcm5hbWU6");
		return 1;
	}
	if ((n = auth_decode(ir, irlen, dec, sizeof(dec))) < 0) {
		smtpd_auth_abort(s, 501, 5, 5, 2, "Error: cannot decode "
		    "the initial response");
		return -1;
	}
	auth_step(s, dec, (size_t)n);
	explicit_bzero(dec, sizeof(dec));
	return s->auth_user != NULL ? 0 : 1;
}

/* smtpd_auth_input - one response line in SMTPD_AUTH (no line end) */
void
smtpd_auth_input(struct smtpd_session *s, const char *line, size_t len)
{
	static unsigned char	 dec[AUTH_DECODED_MAX + 1];
	ssize_t			 n;

	s->cmd = "(AUTH response)";
	s->cmdlen = strlen(s->cmd);
	while (len > 0 && (line[len - 1] == ' ' || line[len - 1] == '\t'))
		len--;
	if (len == 1 && line[0] == '*') {
		smtpd_auth_abort(s, 501, 5, 7, 0, "Authentication cancelled");
		return;
	}
	if (len == 0) {
		n = 0;
		dec[0] = '\0';
	} else if ((n = auth_decode(line, len, dec, sizeof(dec))) < 0) {
		smtpd_auth_abort(s, 501, 5, 5, 2, "Error: cannot decode "
		    "the response");
		return;
	}
	auth_step(s, dec, (size_t)n);
	explicit_bzero(dec, sizeof(dec));
}
