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
 * Chaining (mtqp_chaining = yes; RFC 3887 2.4, RFC 3888): the server
 *       asks the Remote-MTA of every transferred recipient itself with
 *       the MTQP client (track/trk_client.c: SRV _mtqp._tcp.H, else H on
 *       1038; STARTTLS whenever offered, best effort, no verification),
 *       the same ENVID and secret, follows the transferred recipients of
 *       their answers up to CHAIN_DEPTH hops, at most CHAIN_PARALLEL
 *       queries at once, and appends every part they return unchanged.
 *       A host is asked once; a host that already reported (a chaining
 *       next hop's own parts) is not asked again.  The whole answer goes
 *       out within CHAIN_BUDGET_MS of the TRACK: what is still in flight
 *       then is cancelled and the answer holds what came in (the
 *       referrals in the parts stand for the rest).  Without chaining
 *       every answer is a referral: the requester asks each Remote-MTA.
 */

#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/rand.h>

#include "common/buf.h"
#include "common/cfg.h"
#include "common/log.h"
#include "common/util.h"
#include "common/syntax.h"
#include "track/track.h"
#include "track/trk_client.h"
#include "track/trk_int.h"

#include <event2/event.h>

#define TRK_NOINFO	"-ERR/noinfo No tracking information available"
#define TRK_UNAVAIL	"-TEMP/unavailable Tracking information " \
			"unavailable, try again later"
#define PARTS_MAX	32		/* this hop's + the chained hops' parts */
#define HOPS_MAX	TRK_MAX_HOSTS	/* distinct next hops remembered */
#define HOST_MAX	256
#define CHAIN_DEPTH	TRK_MAX_HOPS	/* hops followed beyond this one */
#define CHAIN_PARALLEL	4		/* next-hop queries at once */
#define CHAIN_BUDGET_MS	110000		/* the answer within 2 min (RFC 3887
					 * 2.4), with room to send it */
#define CHAIN_BYTES_MAX	(1024u * 1024)	/* chained parts, all together */
#define SECRET_B64_MAX	(((TRK_SECRET_MAX + 2) / 3) * 4 + 1)

struct chain_q {			/* a slot for a next-hop query; its */
	struct trk_track *t;		/* address is the callback's arg, */
	struct trk_query *h;		/* so slots never move; h NULL: free */
	size_t		  hop;		/* index into t->hops */
};

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
	/* next hops: Remote-MTA host names of transferred recipients,
	 * each asked once (chaining), in the order found */
	char		*hops[HOPS_MAX];
	unsigned	 depth[HOPS_MAX];	/* 1: a next hop of this one */
	size_t		 nhops;
	/* chaining */
	size_t		 nextq;		/* hops[nextq] is the next to ask */
	struct chain_q	 inflight[CHAIN_PARALLEL];
	size_t		 ninflight;	/* slots with h != NULL */
	char		*reported[PARTS_MAX];	/* Reporting-MTA of parts[i] */
	size_t		 chain_bytes;	/* of the chained parts */
	struct event	*deadline;
	uint64_t	 deadline_ms;	/* mono_ms() when it fires */
	int		 finishing;
};

/* the client the chaining queries share (made at the first one) */
static struct trk_client *chain_cli;
static int		 chain_stale;	/* reload: make a new one when idle */
static size_t		 chain_users;	/* answers with queries in flight */

static void	answer_finish(struct trk_track *);

/* chain_cancel_all - cancel the next-hop queries still in flight (their
 * callbacks have not run: a slot is freed when its callback runs) */
static void
chain_cancel_all(struct trk_track *q)
{
	size_t	i;

	for (i = 0; i < CHAIN_PARALLEL; i++)
		if (q->inflight[i].h != NULL) {
			trk_query_cancel(q->inflight[i].h);
			q->inflight[i].h = NULL;
		}
	if (q->ninflight > 0 && chain_users > 0)
		chain_users--;
	q->ninflight = 0;
}

void
trk_answer_free(struct trk_track *q)
{
	size_t	i;

	if (q == NULL)
		return;
	chain_cancel_all(q);
	if (q->deadline != NULL)
		event_free(q->deadline);
	for (i = 0; i < q->nparts; i++) {
		buf_free(&q->parts[i]);
		free(q->reported[i]);
	}
	for (i = 0; i < q->nhops; i++)
		free(q->hops[i]);
	explicit_bzero(q->a, sizeof(q->a));
	free(q);
}

/* host_is_literal - h is an address, not a name ("[..]", IPv4, IPv6) */
static int
host_is_literal(const char *h)
{
	return h[0] == '[' || strchr(h, ':') != NULL ||
	    strspn(h, "0123456789.") == strlen(h);
}

/* hop_add - remember the host of Remote-MTA value remote ("host [addr]"),
 * a next hop depth hops away, unless it is known already */
static void
hop_add(struct trk_track *q, const char *remote, unsigned depth)
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
	/* never ourselves (a next hop naming us would make a loop); a next
	 * hop's answer is trusted with host names only, never an address */
	if (strcasecmp(host, trk_cfg->hostname) == 0 ||
	    (depth > 1 && host_is_literal(host)))
		return;
	for (i = 0; i < q->nhops; i++)
		if (strcasecmp(q->hops[i], host) == 0)
			return;
	if ((q->hops[q->nhops] = strdup(host)) != NULL)
		q->depth[q->nhops++] = depth;
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
	buf_init(b, TRK_SRV_ANSWER_MAX);
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
			hop_add(q, m->rcpts[i].remote_mta, 1);
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

	buf_init(&out, TRK_SRV_ANSWER_MAX);
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

/* chain_client - the shared client, made anew after a reload when no
 * answer uses it (only from chain_start: never inside a callback of the
 * client); NULL (logged) when it cannot be made */
static struct trk_client *
chain_client(int top_level)
{
	struct trk_client_opts	o;
	char			err[256];

	if (chain_cli != NULL && chain_stale && chain_users == 0 && top_level) {
		trk_client_free(chain_cli);
		chain_cli = NULL;
	}
	if (chain_cli != NULL)
		return chain_cli;
	memset(&o, 0, sizeof(o));
	o.dns = trk_cfg->dns;
	o.ndns = trk_cfg->ndns;
	o.tls_verify = 0;	/* STARTTLS when offered, best effort */
	if ((chain_cli = trk_client_new(trk_base, &o, err, sizeof(err))) ==
	    NULL)
		log_warnx("mtqp: chaining: %s", err);
	chain_stale = 0;
	return chain_cli;
}

/* trk_chain_reload - new `dns`: the next chaining client uses them */
void
trk_chain_reload(void)
{
	chain_stale = 1;
}

/* trk_chain_shutdown - the server stops (its sessions are gone) */
void
trk_chain_shutdown(void)
{
	if (chain_cli != NULL)
		trk_client_free(chain_cli);
	chain_cli = NULL;
	chain_users = 0;
}

/* host_reported - a part already in q was reported by host */
static int
host_reported(const struct trk_track *q, const char *host)
{
	size_t	i;

	for (i = 1; i < q->nparts; i++)
		if (q->reported[i] != NULL &&
		    strcasecmp(q->reported[i], host) == 0)
			return 1;
	return 0;
}

static void	chain_next(struct trk_track *q, int top_level);

/* chain_finish - every query is done or the time is up: the answer */
static void
chain_finish(struct trk_track *q)
{
	if (q->finishing)
		return;
	q->finishing = 1;
	chain_cancel_all(q);
	log_info("mtqp session=%s qid=%s chaining done: %zu part(s) from "
	    "%zu next hop(s) asked", q->s->sid, q->qid, q->nparts - 1,
	    q->nextq);
	answer_finish(q);
}

/* chain_deadline_cb - CHAIN_BUDGET_MS have passed since the TRACK */
static void
chain_deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	struct trk_track	*q = arg;

	(void)fd;
	(void)what;
	log_warnx("mtqp session=%s qid=%s chaining: out of time with %zu "
	    "next hop(s) unanswered", q->s->sid, q->qid, q->ninflight +
	    (q->nhops - q->nextq));
	chain_finish(q);
}

/* chain_take - the parts of a next hop's answer into q, and the next
 * hops of their transferred recipients; the number of parts taken */
static size_t
chain_take(struct trk_track *q, const struct trk_answer *a, unsigned depth)
{
	struct trk_report	r;
	char			why[128];
	size_t			i, j, taken = 0;

	if (trk_report_parse(a->body, a->bodylen, &r, why, sizeof(why)) == -1) {
		log_warnx("mtqp session=%s chaining: the answer of %s is "
		    "unusable: %s", q->s->sid, a->host, why);
		return 0;
	}
	for (i = 0; i < r.nparts && q->nparts < PARTS_MAX; i++) {
		struct buf	*p = &q->parts[q->nparts];

		if (r.parts[i].rawlen > CHAIN_BYTES_MAX - q->chain_bytes) {
			log_warnx("mtqp session=%s chaining: the answer of %s "
			    "is too big; its parts are left out", q->s->sid,
			    a->host);
			break;
		}
		buf_init(p, TRK_SRV_ANSWER_MAX);
		if (buf_append(p, r.parts[i].raw, r.parts[i].rawlen) == -1) {
			buf_free(p);
			break;
		}
		q->chain_bytes += r.parts[i].rawlen;
		q->reported[q->nparts] = r.parts[i].reporting_mta != NULL ?
		    strdup(r.parts[i].reporting_mta) : NULL;
		q->nparts++;
		taken++;
		for (j = 0; j < r.parts[i].nrcpts; j++) {
			const struct trk_rcpt *rc = &r.parts[i].rcpts[j];

			if (depth < CHAIN_DEPTH && rc->action != NULL &&
			    strcmp(rc->action, "transferred") == 0 &&
			    rc->remote_mta != NULL)
				hop_add(q, rc->remote_mta, depth + 1);
		}
	}
	trk_report_free(&r);
	return taken;
}

/* chain_answer_cb - one next hop answered (or could not be asked) */
static void
chain_answer_cb(void *arg, const struct trk_answer *a)
{
	struct chain_q		*cq = arg;
	struct trk_track	*q = cq->t;
	size_t			 hop = cq->hop, taken = 0;

	/* this query is over (its handle is invalid now): free its slot */
	cq->h = NULL;
	if (--q->ninflight == 0 && chain_users > 0)
		chain_users--;
	if (a->result == TRK_OK)
		taken = chain_take(q, a, q->depth[hop]);
	log_info("mtqp session=%s qid=%s chain host=%s server=%s tls=%s "
	    "result=%s parts=%zu%s%s", q->s->sid, q->qid, a->host,
	    a->server[0] != '\0' ? a->server : "-", a->tls ? "yes" : "no",
	    trk_result_name(a->result), taken, a->error[0] != '\0' ?
	    " error=" : "", a->error);
	chain_next(q, 0);
}

/* chain_next - start queries up to CHAIN_PARALLEL; finish when none is
 * left to ask and none is in flight */
static void
chain_next(struct trk_track *q, int top_level)
{
	struct trk_request	 rq;
	struct trk_client	*c;
	struct chain_q		*cq;
	char			 sec[SECRET_B64_MAX];
	long			 left;

	if (q->finishing)
		return;
	if ((c = chain_client(top_level)) == NULL) {
		chain_finish(q);
		return;
	}
	if (base64_encode(q->a, q->alen, sec, sizeof(sec)) < 0) {
		chain_finish(q);
		return;
	}
	while (q->ninflight < CHAIN_PARALLEL && q->nextq < q->nhops &&
	    q->nparts < PARTS_MAX) {
		size_t hop = q->nextq++;

		if (host_reported(q, q->hops[hop]))
			continue;
		left = (long)(q->deadline_ms - mono_ms());
		if (left < 1000)
			break;
		memset(&rq, 0, sizeof(rq));
		rq.host = q->hops[hop];
		rq.port = 0;		/* SRV _mtqp._tcp.H, else H:1038 */
		rq.envid = q->envid;
		rq.secret = sec;
		rq.timeout_ms = left;
		for (cq = q->inflight; cq->h != NULL; cq++)
			;		/* a free slot: ninflight < CHAIN_PARALLEL */
		cq->t = q;
		cq->hop = hop;
		if ((cq->h = trk_query_start(c, &rq, chain_answer_cb, cq)) ==
		    NULL) {
			log_warnx("mtqp session=%s chaining: cannot ask %s",
			    q->s->sid, q->hops[hop]);
			continue;
		}
		if (q->ninflight++ == 0)
			chain_users++;
	}
	explicit_bzero(sec, sizeof(sec));
	if (q->ninflight == 0)
		chain_finish(q);
}

/*
 * chain_start - mtqp_chaining = yes with next hops in q->hops: ask them
 * (see the header comment); answer_finish(q) is called once, when every
 * query is done or CHAIN_BUDGET_MS have passed.
 */
static void
chain_start(struct trk_track *q)
{
	struct timeval	tv = { CHAIN_BUDGET_MS / 1000,
			    (CHAIN_BUDGET_MS % 1000) * 1000 };

	q->deadline_ms = mono_ms() + CHAIN_BUDGET_MS;
	if ((q->deadline = evtimer_new(trk_base, chain_deadline_cb, q)) ==
	    NULL || evtimer_add(q->deadline, &tv) == -1) {
		log_warnx("mtqp session=%s chaining: no timer; answering "
		    "with referrals", q->s->sid);
		answer_finish(q);
		return;
	}
	chain_next(q, 1);
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
