#include "config.h"
/*
 * smtpd_auth.c - SMTP AUTH on submission listeners (RFC 4954, RFC 6409).
 * Owns: the AUTH command (PLAIN, RFC 4616, and LOGIN), initial
 *       responses, the 334 exchanges (state SMTPD_AUTH), "*" cancel,
 *       the password check (handed to the check pool, common/pwcheck.c,
 *       never run on the loop; the password of an unknown user, of a
 *       locked entry, or longer than AUTH_PASS_MAX (then cut to it) is
 *       hashed with the dummy setting, the dearest entry's, and fails,
 *       so every failure costs one check), the refusal delay (a timer:
 *       each 535, and each 454 for a full check pool or a client over
 *       its limit, waits 1 s), the 421 after 3 failures in a session,
 *       the per-client-address limit auth_failures (454 4.7.0 without a
 *       check once failures + checks in flight of the address reach N;
 *       fixed window, common/failtab.c; clients in
 *       client_limit_exceptions are not counted), the trace protocol
 *       name (ESMTPA / ESMTPSA).
 * Entry points: smtpd_auth_offered, smtpd_auth_cmd (from the dispatch
 *       table), smtpd_auth_input (response lines, from smtpd_process),
 *       smtpd_auth_free, smtpd_proto.
 * Not here: the 530 to MAIL/RCPT/DATA before AUTH and the relay rule
 *       (smtpd_cmd.c), loading auth_users (common/cfg.c), starting the
 *       check pool (smtpd_main.c).
 * Invariants: credentials are never logged: s->cmd shows only "AUTH MECH"
 *       or "(AUTH response)"; a reply is sent exactly once per command or
 *       response line, possibly from the delay timer or the check's
 *       completion; input is held (s->auth_waiting) while a check is in
 *       flight or a failure reply is delayed (no deadline runs then:
 *       it is the server's turn); a completion finds its session by id
 *       and drops its result when the session has gone; a check of a
 *       counted address is in auth_inflight from its submission until
 *       its completion runs, whatever became of the session (the pool
 *       bounds that list: PWCHECK_MAX_THREADS + PWCHECK_QMAX).
 */

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "common/cfg.h"
#include "common/failtab.h"
#include "common/log.h"
#include "common/util.h"
#include "common/pwcheck.h"
#include "common/syntax.h"
#include "smtpd/smtpd_session.h"

#define MECH_NONE	0
#define MECH_PLAIN	1
#define MECH_LOGIN	2

#define AUTH_MAX_FAILURES	3	/* RFC 4954 4: not before 3 */
#define AUTH_FAIL_DELAY		1	/* seconds before each failure reply */
#define AUTH_DECODED_MAX	(SMTPD_LINE_MAX)	/* > 3/4 of a line */
#define AUTH_USER_MAX		255
#define AUTH_PASS_MAX		256	/* longer: fails (SHA-crypt's cost
					 * grows with the length) */

/* s->auth_waiting: why input is held (0: it is not) */
#define AUTH_WAIT_CHECK		1	/* password check in flight */
#define AUTH_WAIT_FAIL		2	/* 535 (or 421) after the delay */
#define AUTH_WAIT_LIMIT		3	/* 454 after the delay: auth_failures */
#define AUTH_WAIT_BUSY		4	/* 454 after the delay: check pool full */

/* one password check in flight: the argument of its completion */
struct auth_check {
	uint64_t	 id;		/* the session, found again by id */
	int		 known;		/* the hash may match (cfg_auth_lookup) */
	const char	*why;		/* reason logged with the failure, or NULL */
	int		 counted;	/* in auth_inflight (auth_failures applies) */
	unsigned char	 addr[16];	/* client address (failtab_key) */
	struct auth_check *prev, *next;	/* auth_inflight */
	char		 user[AUTH_USER_MAX + 1];
};

/* failures per client address (auth_failures); made at the first one,
 * kept across reloads, lives until exit */
/* checks in flight of counted addresses: they count against
 * auth_failures like failures, so parallel sessions cannot start more
 * than N checks at once (at most the pool's bound, so a list) */
static struct auth_check *auth_inflight;

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

/* auth_delay_cb - the delayed reply (s->auth_waiting says which); then
 * input resumes */
static void
auth_delay_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct smtpd_session	*s = arg;
	int			 kind = s->auth_waiting;

	(void)fd; (void)ev;
	s->auth_waiting = 0;
	if (s->state == SMTPD_CLOSING)
		return;
	s->cmd = "(AUTH response)";
	s->cmdlen = strlen(s->cmd);
	if (kind == AUTH_WAIT_LIMIT)
		smtpd_reply(s, 454, 4, 7, 0, "Too many authentication "
		    "failures, try again later");
	else if (kind == AUTH_WAIT_BUSY)
		smtpd_reply(s, 454, 4, 7, 0, "Too many authentication "
		    "checks in progress, try again later");
	else if (s->auth_failures >= AUTH_MAX_FAILURES)
		smtpd_reply(s, 421, 4, 7, 0, "%s Error: too many failed "
		    "authentication attempts", smtpd_cfg->hostname);
	else
		smtpd_reply(s, 535, 5, 7, 8,
		    "Error: authentication credentials invalid");
	s->cmd = NULL;
	s->cmdlen = 0;
	smtpd_resume(s);
}

/* auth_delay - end the exchange; the refusal (kind) follows in 1 s */
static void
auth_delay(struct smtpd_session *s, int kind)
{
	struct timeval	tv;

	auth_end(s);
	s->auth_waiting = kind;
	if (s->authtimer == NULL)
		s->authtimer = evtimer_new(smtpd_base, auth_delay_cb, s);
	if (s->authtimer == NULL) {
		auth_delay_cb(-1, 0, s);
		return;
	}
	tv.tv_sec = AUTH_FAIL_DELAY;
	tv.tv_usec = 0;
	evtimer_add(s->authtimer, &tv);
}

/* auth_counted - is s's client address subject to auth_failures? */
static int
auth_counted(const struct smtpd_session *s)
{
	return !cfg_client_exempt(smtpd_cfg,
	    (const struct sockaddr *)&s->ss);
}

/* inflight_count - checks in flight of the address key a */
static unsigned
inflight_count(const unsigned char a[16])
{
	struct auth_check	*ck;
	unsigned		 n = 0;

	for (ck = auth_inflight; ck != NULL; ck = ck->next)
		n += memcmp(ck->addr, a, 16) == 0;
	return n;
}

/* inflight_add - ck is submitted for a counted address */
static void
inflight_add(struct auth_check *ck)
{
	ck->counted = 1;
	ck->prev = NULL;
	if ((ck->next = auth_inflight) != NULL)
		auth_inflight->prev = ck;
	auth_inflight = ck;
}

/* inflight_del - ck's completion runs: it is in flight no more */
static void
inflight_del(struct auth_check *ck)
{
	if (!ck->counted)
		return;
	if (ck->prev != NULL)
		ck->prev->next = ck->next;
	else
		auth_inflight = ck->next;
	if (ck->next != NULL)
		ck->next->prev = ck->prev;
	ck->counted = 0;
}

/* auth_limited - has s's client address reached auth_failures, counting
 * its failures in the window and its checks in flight? */
static int
auth_limited(const struct smtpd_session *s)
{
	unsigned char	a[16];
	unsigned	n;

	if (!auth_counted(s) ||
	    failtab_key((const struct sockaddr *)&s->ss, a) == -1)
		return 0;
	n = inflight_count(a);
	n += failtab_auth_count((const struct sockaddr *)&s->ss,
	    smtpd_cfg->auth_failures_window, mono_sec());
	return n >= smtpd_cfg->auth_failures;
}

/* auth_refuse_limited - the client address is over auth_failures: 454
 * after the delay, the password unchecked, no failure counted */
static void
auth_refuse_limited(struct smtpd_session *s)
{
	log_info("session=%s auth refused client=[%s] reason=auth_failures",
	    s->sid, s->addr);
	auth_delay(s, AUTH_WAIT_LIMIT);
}

/* auth_fail - count, log (why: a reason, or NULL), then answer 535 (or
 * 421) after 1 s */
static void
auth_fail(struct smtpd_session *s, const char *user, const char *why)
{
	char		euser[AUTH_USER_MAX * 4 + 8];
	unsigned	n = 0;

	s->auth_failures++;
	if (auth_counted(s)) {
		if ((n = failtab_auth_add((const struct sockaddr *)&s->ss,
		    smtpd_cfg->auth_failures_window, mono_sec())) == 0)
			log_warn("session=%s auth: failure table", s->sid);
	}
	log_escape(euser, sizeof(euser), user, strlen(user));
	log_info("session=%s auth failed user=%s mech=%s client=[%s] "
	    "failures=%u client_failures=%u%s%s", s->sid, euser,
	    mech_names[s->auth_mech], s->addr, s->auth_failures, n,
	    why != NULL ? " reason=" : "", why != NULL ? why : "");
	auth_delay(s, AUTH_WAIT_FAIL);
}

/* auth_ok - the credentials matched: 235 */
static void
auth_ok(struct smtpd_session *s, const char *user)
{
	char	euser[AUTH_USER_MAX * 4 + 8];
	int	i;

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

/* auth_checked_cb - a check's result, in the loop: find the session */
static void
auth_checked_cb(void *arg, int result)
{
	struct auth_check	*ck = arg;
	struct smtpd_session	*s;

	inflight_del(ck);	/* a failure is counted below, if any */
	s = smtpd_session_find(ck->id);
	if (s == NULL || s->state == SMTPD_CLOSING ||
	    s->auth_waiting != AUTH_WAIT_CHECK) {
		log_debug("session=%06llx auth check done after the session "
		    "ended", (unsigned long long)ck->id);
		free(ck);
		return;
	}
	s->auth_waiting = 0;
	s->cmd = "(AUTH response)";
	s->cmdlen = strlen(s->cmd);
	if (result == PWCHECK_CANCELLED)
		smtpd_auth_abort(s, 454, 4, 7, 0,
		    "Temporary authentication failure");
	else if (result == PWCHECK_OK && ck->known)
		auth_ok(s, ck->user);
	else
		auth_fail(s, ck->user, ck->why);
	s->cmd = NULL;
	s->cmdlen = 0;
	free(ck);
	if (!s->auth_waiting)
		smtpd_resume(s);
}

/* auth_verify - hand the check to the pool; the reply comes later */
static void
auth_verify(struct smtpd_session *s, const char *user, const char *pass)
{
	struct auth_check	*ck;
	const char		*hash;
	char			 cut[AUTH_PASS_MAX + 1];
	size_t			 ulen = strlen(user);
	int			 rc;

	if (user[0] == '\0' || ulen > AUTH_USER_MAX) {
		auth_fail(s, user, NULL);
		return;
	}
	if (auth_limited(s)) {	/* reached while this exchange ran */
		auth_refuse_limited(s);
		return;
	}
	if ((ck = calloc(1, sizeof(*ck))) == NULL) {
		smtpd_auth_abort(s, 454, 4, 7, 0,
		    "Temporary authentication failure");
		return;
	}
	ck->id = s->id;
	memcpy(ck->user, user, ulen + 1);
	if ((ck->known = cfg_auth_lookup(smtpd_cfg, user, &hash)) == 0 &&
	    cfg_auth_hash(smtpd_cfg, user) != NULL)
		ck->why = "locked";	/* listed, but its hash cannot match */
	if (strlen(pass) > AUTH_PASS_MAX) {
		/* fails, after a dummy check of the cap's length: it costs
		 * what any failure costs, not what the length would */
		memcpy(cut, pass, AUTH_PASS_MAX);
		cut[AUTH_PASS_MAX] = '\0';
		pass = cut;
		hash = cfg_auth_dummy(smtpd_cfg);
		ck->known = 0;
		ck->why = "password_too_long";
	}
	rc = pwcheck_submit(hash, pass, auth_checked_cb, ck);
	explicit_bzero(cut, sizeof(cut));
	if (rc == -1) {
		free(ck);
		if (errno == EAGAIN) {
			log_info("session=%s auth refused client=[%s] "
			    "reason=check_queue_full", s->sid, s->addr);
			auth_delay(s, AUTH_WAIT_BUSY);
			return;
		}
		log_warn("session=%s auth check", s->sid);
		smtpd_auth_abort(s, 454, 4, 7, 0,
		    "Temporary authentication failure");
		return;
	}
	if (auth_counted(s) &&
	    failtab_key((const struct sockaddr *)&s->ss, ck->addr) == 0)
		inflight_add(ck);
	s->auth_waiting = AUTH_WAIT_CHECK;	/* input held until the result */
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
		auth_fail(s, user, NULL);	/* no proxy authorization */
		return;
	}
	auth_verify(s, user, pass);
	return;
bad:
	auth_fail(s, "", NULL);
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
			auth_fail(s, "", NULL);
			return;
		}
		s->auth_step = 1;
		smtpd_set_state(s, SMTPD_AUTH);
		smtpd_reply(s, 334, SMTPD_NOENH, "UGFzc3dvcmQ6");	/* Password: */
		return;
	}
	if (strlen((const char *)d) != n) {
		auth_fail(s, s->auth_login, NULL);
		return;
	}
	auth_verify(s, s->auth_login, (const char *)d);
}

/*
 * smtpd_auth_cmd - "AUTH mech [initial-response]".  Returns 1 when the
 * outcome comes later (334, the check's result, a delayed 535 or 454),
 * -1 on an error reply now.
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

	if (auth_limited(s)) {
		auth_refuse_limited(s);
		return 1;
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
	return 1;
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
