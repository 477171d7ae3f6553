#include "config.h"
/*
 * trk_answer.c - the answer to one MTQP TRACK (RFC 3887 4, RFC 3886 3).
 * Owns: the answer in the making (struct trk_track, owned by its
 *       session), authentication through trk_auth.c, the per-address
 *       failure count and the log line of each TRACK
 *       ("mtqp session=S client=[A] track envid=E result=found qid=Q"
 *       or "result=noinfo", never the secret), this hop's part
 *       (trk_status_write), the next hops of its transferred
 *       recipients, the chaining hook, and answer_compose: the ONE
 *       place the multipart/related body is assembled from the parts.
 * Replies: found -> "+OK+ Tracking information follows", the body
 *       (dot-stuffed by trk_reply_data), "."; unknown ENVID, wrong
 *       secret, expired record and an address over mtqp_auth_failures
 *       -> the same TRK_NOINFO line, byte for byte; the store unreadable
 *       or the answer not composable -> -TEMP/unavailable.
 * Body: Content-Type: multipart/related; boundary="B";
 *       type="message/tracking-status", a blank line, then per part
 *       "--B", its entity (this hop's: "Content-Type:
 *       message/tracking-status", a blank line, trk_status_write's
 *       fields), a blank line (the delimiter's CRLF); then "--B--".
 *       B is random and occurs in no part.
 * Chaining (mtqp_chaining = yes): chain_start is where the MTQP client
 *       (track/trk_client.c, another change) plugs in to query the next
 *       hops and append their parts unchanged; until then every answer
 *       is a referral (RFC 3888: the requester asks each transferred
 *       recipient's Remote-MTA itself).
 */

#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/rand.h>

#include "common/buf.h"
#include "common/cfg.h"
#include "common/log.h"
#include "common/syntax.h"
#include "track/track.h"
#include "track/trk_int.h"

#define TRK_NOINFO	"-ERR/noinfo No tracking information available"
#define TRK_UNAVAIL	"-TEMP/unavailable Tracking information " \
			"unavailable, try again later"
#define PARTS_MAX	11		/* this hop + the chaining hop limit */
#define HOPS_MAX	64		/* distinct next hops remembered */
#define HOST_MAX	256

struct trk_track {
	struct trk_session *s;		/* owner: the query never outlives it */
	char		 envid[ESMTP_ENVID_MAX + 1];	/* decoded */
	unsigned char	 a[TRK_SECRET_MAX];	/* for the next hops (chaining) */
	size_t		 alen;
	char		 qid[QID_SIZE];		/* the message answered from */
	int		 failed;	/* this hop's part could not be made */
	/* message/tracking-status entities (header, blank line, fields),
	 * parts[0] = this hop's; chained hops' appended unchanged */
	struct buf	 parts[PARTS_MAX];
	size_t		 nparts;
	/* next hops: Remote-MTA host names of transferred recipients */
	char		*hops[HOPS_MAX];
	size_t		 nhops;
};

static void	answer_finish(struct trk_track *);

void
trk_answer_free(struct trk_track *q)
{
	size_t	i;

	if (q == NULL)
		return;
	/* chaining: the client's queries in flight are cancelled here */
	for (i = 0; i < q->nparts; i++)
		buf_free(&q->parts[i]);
	for (i = 0; i < q->nhops; i++)
		free(q->hops[i]);
	explicit_bzero(q->a, sizeof(q->a));
	free(q);
}

/* hop_add - remember the host of Remote-MTA value remote ("host [addr]") */
static void
hop_add(struct trk_track *q, const char *remote)
{
	char	host[HOST_MAX];
	size_t	n, i;

	n = strcspn(remote, "[");
	while (n > 0 && (remote[n - 1] == ' ' || remote[n - 1] == '\t'))
		n--;
	if (n == 0 || n >= sizeof(host) || q->nhops == HOPS_MAX)
		return;
	memcpy(host, remote, n);
	host[n] = '\0';
	for (i = 0; i < q->nhops; i++)
		if (strcasecmp(q->hops[i], host) == 0)
			return;
	if ((q->hops[q->nhops] = strdup(host)) != NULL)
		q->nhops++;
}

/* found_cb - trk_auth_find's match: this hop's part, the next hops */
static void
found_cb(const struct qmsg *m, void *arg)
{
	struct trk_track	*q = arg;
	struct buf		*b = &q->parts[0];
	const char		*act;
	size_t			 i;

	memcpy(q->qid, m->qid, sizeof(q->qid));
	q->qid[sizeof(q->qid) - 1] = '\0';
	buf_init(b, TRK_ANSWER_MAX);
	q->nparts = 1;
	if (buf_puts(b, "Content-Type: message/tracking-status\r\n\r\n") == -1 ||
	    trk_status_write(b, m, trk_cfg->hostname, time(NULL),
	    (long)trk_cfg->queue_lifetime) == -1) {
		q->failed = 1;
		return;
	}
	for (i = 0; i < m->nrcpts; i++)
		if ((act = trk_action(m, i)) != NULL &&
		    strcmp(act, "transferred") == 0 &&
		    m->rcpts[i].remote_mta != NULL)
			hop_add(q, m->rcpts[i].remote_mta);
}

/* boundary_ok - "--" b occurs in no part */
static int
boundary_ok(const struct trk_track *q, const char *b)
{
	char	dash[80];
	int	n;
	size_t	i;

	n = snprintf(dash, sizeof(dash), "--%s", b);
	if (n < 0 || (size_t)n >= sizeof(dash))
		return 0;
	for (i = 0; i < q->nparts; i++)
		if (q->parts[i].data != NULL && memmem(q->parts[i].data,
		    q->parts[i].len, dash, (size_t)n) != NULL)
			return 0;
	return 1;
}

/* make_boundary - a random boundary that occurs in no part; 0 or -1 */
static int
make_boundary(const struct trk_track *q, char *out, size_t outlen)
{
	static const char	hex[] = "0123456789abcdef";
	unsigned char		r[12];
	size_t			i;
	int			try;

	if (outlen < 6 + 2 * sizeof(r))
		return -1;
	for (try = 0; try < 8; try++) {
		if (RAND_bytes(r, sizeof(r)) != 1)
			return -1;
		memcpy(out, "=_wm_", 5);
		for (i = 0; i < sizeof(r); i++) {
			out[5 + 2 * i] = hex[r[i] >> 4];
			out[5 + 2 * i + 1] = hex[r[i] & 15];
		}
		out[5 + 2 * sizeof(r)] = '\0';
		if (boundary_ok(q, out))
			return 0;
	}
	return -1;
}

/*
 * answer_compose - THE assembly of a TRACK answer's body (RFC 3886 3:
 * multipart/related of message/tracking-status parts, RFC 2046 5.1.1
 * delimiters) from q's parts, into out; 0 or -1.
 */
static int
answer_compose(const struct trk_track *q, struct buf *out)
{
	char	b[64];
	size_t	i;

	if (q->nparts == 0 || make_boundary(q, b, sizeof(b)) == -1)
		return -1;
	if (buf_printf(out, "Content-Type: multipart/related; boundary=\"%s\";"
	    " type=\"message/tracking-status\"\r\n\r\n", b) == -1)
		return -1;
	for (i = 0; i < q->nparts; i++) {
		const struct buf *p = &q->parts[i];

		if (buf_printf(out, "--%s\r\n", b) == -1 ||
		    buf_append(out, p->data, p->len) == -1)
			return -1;
		/* the part ends with a line end; the CRLF before the next
		 * delimiter makes the blank line RFC 3886 3 shows */
		if ((p->len < 2 || memcmp(p->data + p->len - 2, "\r\n", 2) != 0)
		    && buf_puts(out, "\r\n") == -1)
			return -1;
		if (buf_puts(out, "\r\n") == -1)
			return -1;
	}
	return buf_printf(out, "--%s--\r\n", b);
}

/* answer_finish - every part is in: send the answer, back to commands */
static void
answer_finish(struct trk_track *q)
{
	struct trk_session	*s = q->s;
	struct buf		 out;

	buf_init(&out, TRK_ANSWER_MAX);
	if (answer_compose(q, &out) == 0)
		trk_reply_data(s, "+OK+ Tracking information follows",
		    out.data, out.len);
	else {
		log_warnx("mtqp session=%s qid=%s the answer could not be "
		    "composed", s->sid, q->qid);
		trk_reply(s, TRK_UNAVAIL);
	}
	buf_free(&out);
	s->query = NULL;
	trk_answer_free(q);
	trk_set_state(s, TRK_READY);
	trk_resume(s);
}

/*
 * chain_start - mtqp_chaining = yes with next hops in q->hops: the hook
 * of the chaining referral (RFC 3887 2.4, RFC 3888).  The MTQP client
 * (track/trk_client.c) is to query each hop here, non-blocking, with
 * q->envid and q->a (STARTTLS when offered, hop limit 10, the whole
 * answer within 2 minutes), append each answer's parts unchanged to
 * q->parts (at most PARTS_MAX), and call answer_finish(q) once, when
 * done or out of time; trk_answer_free cancels what is in flight.
 * Until it is plugged in, the answer is this hop's part alone.
 */
static void
chain_start(struct trk_track *q)
{
	log_debug("mtqp session=%s chaining: %zu next hop(s) left to the "
	    "requester (no MTQP client yet)", q->s->sid, q->nhops);
	answer_finish(q);
}

int
trk_answer_start(struct trk_session *s, const char *envid,
    const unsigned char *a, size_t alen)
{
	struct trk_track	*q;
	char			 eenvid[ESMTP_ENVID_MAX * 4 + 8];
	const struct sockaddr	*sa = (const struct sockaddr *)&s->ss;
	time_t			 now = time(NULL);
	int			 limited, rc;
	unsigned		 n;

	log_escape(eenvid, sizeof(eenvid), envid, strlen(envid));
	if (strlen(envid) >= sizeof(q->envid) || alen > sizeof(q->a) ||
	    (q = calloc(1, sizeof(*q))) == NULL) {
		log_warnx("mtqp session=%s client=[%s] track envid=%s: out of "
		    "memory", s->sid, s->addr, eenvid);
		trk_reply(s, TRK_UNAVAIL);
		return -1;
	}
	q->s = s;
	memcpy(q->envid, envid, strlen(envid) + 1);
	memcpy(q->a, a, alen);
	q->alen = alen;
	/* over the limit: hashed and compared like any other, no look-up */
	limited = trk_auth_limited(trk_cfg, sa, now);
	rc = trk_auth_find(limited ? NULL : envid, a, alen, now, found_cb, q);
	if (rc == -1 || (rc == 1 && q->failed)) {
		log_warnx("mtqp session=%s client=[%s] track envid=%s "
		    "result=error (%s)", s->sid, s->addr, eenvid, rc == -1 ?
		    "the store could not be read" : "the answer is too big");
		s->logged = 1;
		trk_reply(s, TRK_UNAVAIL);
		trk_answer_free(q);
		return -1;
	}
	if (rc == 0) {
		n = limited ? 0 : trk_auth_failed(trk_cfg, sa, now);
		if (limited)
			log_info("mtqp session=%s client=[%s] track envid=%s "
			    "result=noinfo reason=mtqp_auth_failures", s->sid,
			    s->addr, eenvid);
		else
			log_info("mtqp session=%s client=[%s] track envid=%s "
			    "result=noinfo client_failures=%u", s->sid,
			    s->addr, eenvid, n);
		s->logged = 1;
		trk_reply(s, TRK_NOINFO);
		trk_answer_free(q);
		return -1;
	}
	log_info("mtqp session=%s client=[%s] track envid=%s result=found "
	    "qid=%s", s->sid, s->addr, eenvid, q->qid);
	s->query = q;
	trk_set_state(s, TRK_ANSWER);
	if (trk_cfg->mtqp_chaining && q->nhops > 0)
		chain_start(q);
	else
		answer_finish(q);
	return 0;
}
