#include "config.h"
/*
 * trk_auth.c - MTRK authentication (RFC 3885 3, RFC 3887 4) and the
 * per-address limit of failed attempts.
 * Owns: certifier = base64(SHA-1(A)) of a requester's secret A
 *       (common/syntax.c's mtrk_certifier, OpenSSL EVP), the walk over
 *       every message stored with the ENVID (queue_envid_lookup, then
 *       queue_track_visit for each: no store read while the index
 *       cursor is open), the constant-time compare (CRYPTO_memcmp) with
 *       each candidate's stored certifier, expiry, and the failure
 *       table of mtqp_auth_failures (common/failtab.c, no exceptions).
 *       At most CAND_MAX (1024) messages with one ENVID are checked, in
 *       the index's order (the oldest first).
 * Privacy (RFC 3888 4): ENVIDs are chosen by senders, so any of several
 *       messages may carry one: only a message whose certifier matches
 *       is ever reported.  The SHA-1 and at least one compare (with a
 *       dummy certifier) run in every case, so unknown ENVID, wrong
 *       secret and expired record look the same to the caller.
 * Not here: what is answered (trk_answer.c), the secret's syntax
 *       (trk_cmd.c), logging (the callers log; never the secret).
 */

#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "common/cfg.h"
#include "common/failtab.h"
#include "common/log.h"
#include "common/syntax.h"
#include "track/track.h"

#define CAND_MAX	1024		/* candidates checked per ENVID */
#define FAILTAB_CAP	4096		/* client addresses tracked at most */

/* compared when there is no candidate: same length, never a real one
 * (not valid base64 of 20 octets: '*' is outside the alphabet) */
static const char dummy_cert[ESMTP_MTRK_CERT_LEN + 1] =
    "***************************";

/* failures per client address; made at the first one, kept across
 * reloads, lives until exit */
static struct failtab	*fails;

struct cands {
	char		(*qid)[QID_SIZE];
	size_t		 n, cap;
};

struct visit {
	const char	*cert;		/* the requester's certifier */
	time_t		 now;
	void		(*found)(const struct qmsg *, void *);
	void		*arg;
};

/* collect_cb - queue_envid_lookup's callback: keep the qid */
static int
collect_cb(const char *qid, void *arg)
{
	struct cands	*c = arg;
	void		*p;
	size_t		 cap;

	if (c->n == c->cap) {
		if (c->cap >= CAND_MAX)
			return -1;
		cap = c->cap ? c->cap * 4 : 4;
		if (cap > CAND_MAX)
			cap = CAND_MAX;
		if ((p = realloc(c->qid, cap * sizeof(*c->qid))) == NULL)
			return -1;
		c->qid = p;
		c->cap = cap;
	}
	if (strlen(qid) >= QID_SIZE)
		return 0;		/* not one of ours: cannot be read */
	memcpy(c->qid[c->n++], qid, strlen(qid) + 1);
	return 0;
}

/* cert_equal - constant-time compare of the requester's certifier with a
 * stored one (the dummy when there is none or it has another length) */
static int
cert_equal(const char *cert, const char *stored)
{
	int	ok = stored != NULL &&
		    strlen(stored) == ESMTP_MTRK_CERT_LEN;

	if (CRYPTO_memcmp(cert, ok ? stored : dummy_cert,
	    ESMTP_MTRK_CERT_LEN) != 0)
		return 0;
	return ok;
}

/* visit_cb - queue_track_visit's callback: 1 when m is the one */
static int
visit_cb(const struct qmsg *m, int queued, void *arg)
{
	struct visit	*v = arg;
	int		 eq, live;

	eq = cert_equal(v->cert, m->mtrk_certifier);
	/* RFC 3885 3.3: never expired while still in this queue */
	live = m->mtrk_certifier != NULL &&
	    (queued || (m->mtrk_expiry != 0 && m->mtrk_expiry > v->now));
	if (!eq || !live)
		return 0;
	v->found(m, v->arg);
	return 1;
}

int
trk_auth_find(const char *envid, const unsigned char *a, size_t alen,
    time_t now, void (*found)(const struct qmsg *m, void *arg), void *arg)
{
	struct cands	 c;
	struct visit	 v;
	char		 cert[ESMTP_MTRK_CERT_LEN + 1];
	size_t		 i;
	int		 rc = 0, r;

	if (a == NULL || found == NULL)
		return -1;
	memset(&c, 0, sizeof(c));
	/* the hash and one compare, whatever comes next */
	if (mtrk_certifier(a, alen, cert) == -1) {
		log_warnx("mtqp: SHA-1 failed");
		return -1;
	}
	(void)cert_equal(cert, NULL);
	if (envid == NULL || *envid == '\0')
		return 0;
	if (queue_envid_lookup(envid, collect_cb, &c) == -1) {
		free(c.qid);
		return -1;
	}
	v.cert = cert;
	v.now = now;
	v.found = found;
	v.arg = arg;
	for (i = 0; i < c.n; i++) {
		/* -1: gone meanwhile (purged) or unreadable, logged by queue/ */
		if ((r = queue_track_visit(c.qid[i], visit_cb, &v)) == 1) {
			rc = 1;
			break;
		}
	}
	free(c.qid);
	return rc;
}

int
trk_auth_limited(const struct config *cfg, const struct sockaddr *sa,
    time_t now)
{
	if (fails == NULL || cfg == NULL)
		return 0;
	return failtab_count(fails, sa, cfg->mtqp_auth_failures_window,
	    now) >= cfg->mtqp_auth_failures;
}

unsigned
trk_auth_failed(const struct config *cfg, const struct sockaddr *sa,
    time_t now)
{
	if (cfg == NULL)
		return 0;
	if (fails == NULL && (fails = failtab_new(FAILTAB_CAP)) == NULL) {
		log_warn("mtqp: failure table");
		return 0;
	}
	return failtab_add(fails, sa, cfg->mtqp_auth_failures_window, now);
}
