#include "config.h"
/*
 * trk_auth.c - MTRK authentication (RFC 3885 3, RFC 3887 4) and the
 * per-address limit of failed attempts.
 * Owns: certifier = base64(SHA-1(A)) of a requester's secret A
 *       (common/syntax.c's mtrk_certifier, OpenSSL EVP), the search
 *       through queue_track_find (queue/: it compares the certifier
 *       stored in each ENVID index entry in constant time, CRYPTO_memcmp,
 *       and reads only the matching message, without its events),
 *       expiry, and the failure table of mtqp_auth_failures
 *       (common/failtab.c, no exceptions).  At most 1024 messages with
 *       one ENVID are checked, in the index's order.
 * Privacy (RFC 3888 4): ENVIDs are chosen by senders, so any of several
 *       messages may carry one: only a message whose certifier matches
 *       is ever reported, and only it is read from the store: a wrong
 *       secret costs what an unknown ENVID costs, apart from the index
 *       probe that finds the entries.  The SHA-1 and at least one compare (with a dummy
 *       certifier) run in every case, so unknown ENVID, wrong secret and
 *       expired record look the same to the caller.
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

#define FAILTAB_CAP	4096		/* client addresses tracked at most */

/* compared when there is no candidate: same length, never a real one
 * (not valid base64 of 20 octets: '*' is outside the alphabet) */
static const char dummy_cert[ESMTP_MTRK_CERT_LEN + 1] =
    "***************************";

/* failures per client address; made at the first one, kept across
 * reloads, lives until exit */
static struct failtab	*fails;

struct visit {
	time_t		 now;
	void		(*found)(const struct qmsg *, void *);
	void		*arg;
};

/* visit_cb - queue_track_find's callback (the certifier matched): 1 when
 * m is the one, 0 when its record expired */
static int
visit_cb(const struct qmsg *m, int queued, void *arg)
{
	struct visit	*v = arg;
	int		 live;

	/* RFC 3885 3.3: never expired while still in this queue */
	live = m->mtrk_certifier != NULL &&
	    (queued || (m->mtrk_expiry != 0 && m->mtrk_expiry > v->now));
	if (!live)
		return 0;
	v->found(m, v->arg);
	return 1;
}

int
trk_auth_find(const char *envid, const unsigned char *a, size_t alen,
    time_t now, void (*found)(const struct qmsg *m, void *arg), void *arg)
{
	struct visit	 v;
	char		 cert[ESMTP_MTRK_CERT_LEN + 1];
	int		 rc;

	if (a == NULL || found == NULL)
		return -1;
	/* the hash and one compare, whatever comes next */
	if (mtrk_certifier(a, alen, cert) == -1) {
		log_warnx("mtqp: SHA-1 failed");
		return -1;
	}
	(void)CRYPTO_memcmp(cert, dummy_cert, ESMTP_MTRK_CERT_LEN);
	if (envid == NULL || *envid == '\0')
		return 0;
	v.now = now;
	v.found = found;
	v.arg = arg;
	if ((rc = queue_track_find(envid, cert, visit_cb, &v)) == -1)
		return -1;
	return rc == 1 ? 1 : 0;
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
