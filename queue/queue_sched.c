#include "config.h"
/*
 * queue_sched.c - the scheduler: who is due, dispatch to the delivery
 * agents, the results of each attempt, retry back-off and expiry.
 * Owns: the min-heap of unfinished messages keyed by their earliest
 *       due (non-busy, non-final) recipient, the timer (armed at the
 *       earliest due time, at most SCHED_MAX_SLEEP ahead: it fires when
 *       the heap top is due or a job ends, not on a period), the
 *       in-flight job cap (4 * workers + smtp_concurrency), queue_flush.
 * Results: attempts++, last reply, new status; a deferral past
 *       queue_lifetime since arrival (or expire_base: held time does not
 *       count) becomes failed 4.4.7 ("expired");
 *       otherwise next_attempt = now + retry_schedule[min(attempts-1,
 *       n-1)].  A relayed result whose MAIL carried MTRK= (and the
 *       recipient not no_mtrk) is recorded as transferred (RFC 3885).
 *       The recipient records, the events ("attempt", "expired",
 *       "delivered"/"deferred"/"failed") and the index changes of one
 *       job's results go into ONE commit job.  When every recipient is
 *       final the same job records done_time, drops the schedule entry
 *       and adds the expire (purge) entry; after it commits the body
 *       file is unlinked and the message leaves memory.
 * DELIVERBY (RFC 2852 4.1.3): a message is due at min(its next attempt,
 *       deliver_by) while the deadline's action is still to take; then,
 *       before any dispatch, mode R fails every undelivered recipient
 *       with 5.4.7 (failed DSN), mode N sends one delayed DSN (4.4.7);
 *       BY_DONE records it in the message record.  A deferral of mode R
 *       at or past the deadline fails 5.4.7 too.
 * Destinations: the remote jobs in flight are counted per destination
 *       (the recipient domain, or the smarthost: dlv_remote.c's key).  A
 *       due message whose due recipients all go to one destination that
 *       already has DEST_CAP_MULT * smtp_destination_concurrency jobs in
 *       flight is parked on that destination (out of the heap, FIFO)
 *       instead of dispatched; each job of the destination that ends
 *       puts one parked message back in the heap.  So 100,000 deferred
 *       messages to a refusing host that come due together occupy a few
 *       dozen slots, not all of them, and mail to other hosts passes
 *       (without it, the heap order by due time put every one of them
 *       before newer mail); each is parked once, O(log n), never walked.
 * Dispatch: local recipients go to Maildir (or LMTP when `lmtp` is set);
 *       non-local ones, grouped by domain, to dlv_remote_start (SMTP via
 *       smarthost or MX); a recipient that is a list of the lists file
 *       is expanded instead (queue_lists.c).  The DSNs a batch calls
 *       for (failed, delayed, delivered, relayed: queue_notice.c) go
 *       into the same commit.
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <event2/event.h>

#include "common/cfg.h"
#include "common/log.h"
#include "common/metrics.h"
#include "common/util.h"
#include "delivery/delivery.h"
#include "queue/queue_int.h"

#define DEFAULT_RETRY	300	/* seconds, when retry_schedule is empty */
#define SUBMIT_RETRY	10	/* seconds, when a job could not be queued */
#define SCHED_MAX_SLEEP	60	/* seconds the timer sleeps at most */

#define DEST_BUCKETS	256	/* hash buckets of the destination table */
#define PARK_BATCH	1024	/* messages parked per scheduler run at most */
#define DEST_CAP_MULT	2	/* jobs in flight per destination, in units of
				 * smtp_destination_concurrency: the rest of
				 * them wait in dlv_remote.c, ready for a slot */

static struct qmsg	**heap;
static size_t		  nheap, capheap;
static struct event	 *sched_ev;

/* a destination of remote jobs: its jobs in flight, its parked messages */
struct sdest {
	struct sdest	*next;		/* hash chain */
	unsigned	 inflight;	/* remote jobs started, not yet done */
	struct qmsg	*park_head, *park_tail;	/* FIFO, via qpriv */
	char		 key[256];	/* lower-case domain; "" = smarthost */
};
static struct sdest	*dests[DEST_BUCKETS];

/* a remote job's callback argument: which message, which destination */
struct rjob {
	struct qmsg	*m;
	struct sdest	*d;		/* remote jobs only */
	uint64_t	 start_us;	/* mono_us() at the start (metrics) */
};

static void	park_remove(struct qmsg *);
static void	dest_gc(struct sdest *);

/* ---- the heap ---- */

static int
heap_less(const struct qmsg *a, const struct qmsg *b)
{
	const struct qpriv *pa = a->priv, *pb = b->priv;

	if (pa->due != pb->due)
		return pa->due < pb->due;
	return strcmp(a->qid, b->qid) < 0;
}

static void
heap_swap(size_t i, size_t j)
{
	struct qmsg	*t = heap[i];

	heap[i] = heap[j];
	heap[j] = t;
	((struct qpriv *)heap[i]->priv)->heap_idx = i;
	((struct qpriv *)heap[j]->priv)->heap_idx = j;
}

static void
heap_up(size_t i)
{
	while (i > 0 && heap_less(heap[i], heap[(i - 1) / 2])) {
		heap_swap(i, (i - 1) / 2);
		i = (i - 1) / 2;
	}
}

static void
heap_down(size_t i)
{
	size_t	l, r, m;

	for (;;) {
		l = 2 * i + 1;
		r = l + 1;
		m = i;
		if (l < nheap && heap_less(heap[l], heap[m]))
			m = l;
		if (r < nheap && heap_less(heap[r], heap[m]))
			m = r;
		if (m == i)
			return;
		heap_swap(i, m);
		i = m;
	}
}

/* heap_remove - m leaves the scheduler: the heap, or its parking place */
static void
heap_remove(struct qmsg *m)
{
	struct qpriv	*p = m->priv;
	struct sdest	*d;
	size_t		 i;

	if (p != NULL && (d = p->park_dest) != NULL) {
		park_remove(m);
		dest_gc(d);
	}
	if (p == NULL || p->heap_idx == SIZE_MAX)
		return;
	i = p->heap_idx;
	p->heap_idx = SIZE_MAX;
	nheap--;
	if (i == nheap)
		return;
	heap[i] = heap[nheap];
	((struct qpriv *)heap[i]->priv)->heap_idx = i;
	heap_up(i);
	heap_down(((struct qpriv *)heap[i]->priv)->heap_idx);
}

static int
heap_set(struct qmsg *m, time_t due)
{
	struct qpriv	 *p = m->priv;
	struct qmsg	**n;
	size_t		  ncap;

	if (p->heap_idx != SIZE_MAX) {
		p->due = due;
		heap_up(p->heap_idx);
		heap_down(p->heap_idx);
		return 0;
	}
	if (nheap == capheap) {
		ncap = capheap ? capheap * 2 : 64;
		if ((n = reallocarray(heap, ncap, sizeof(*n))) == NULL)
			return -1;
		heap = n;
		capheap = ncap;
	}
	p->due = due;
	p->heap_idx = nheap;
	heap[nheap++] = m;
	heap_up(p->heap_idx);
	return 0;
}

/* ---- destinations ---- */

/* dest_cap - remote jobs in flight per destination before parking */
static unsigned
dest_cap(void)
{
	unsigned	c = qs.cfg->smtp_destination_concurrency;

	return (c ? c : 1) * DEST_CAP_MULT;
}

/* dest_key - the destination of remote address addr (dlv_remote.c's
 * grouping: the smarthost takes everything) */
static void
dest_key(const char *addr, char key[256])
{
	const char	*at = strrchr(addr, '@');

	if (qs.cfg->smarthost != NULL || at == NULL)
		key[0] = '\0';
	else
		(void)snprintf(key, 256, "%s", at + 1);
	str_lower(key);
}

static unsigned
dest_hash(const char *key)
{
	unsigned	h = 5381;

	while (*key)
		h = h * 33 + (unsigned char)*key++;
	return h % DEST_BUCKETS;
}

/* dest_get - the destination of key; created when create (NULL: ENOMEM
 * or unknown) */
static struct sdest *
dest_get(const char *key, int create)
{
	struct sdest	*d;
	unsigned	 h = dest_hash(key);

	for (d = dests[h]; d != NULL; d = d->next)
		if (strcmp(d->key, key) == 0)
			return d;
	if (!create || (d = calloc(1, sizeof(*d))) == NULL)
		return NULL;
	(void)snprintf(d->key, sizeof(d->key), "%s", key);
	d->next = dests[h];
	dests[h] = d;
	return d;
}

/* dest_gc - forget d when nothing refers to it */
static void
dest_gc(struct sdest *d)
{
	struct sdest	**pp;

	if (d->inflight > 0 || d->park_head != NULL)
		return;
	for (pp = &dests[dest_hash(d->key)]; *pp != NULL; pp = &(*pp)->next)
		if (*pp == d) {
			*pp = d->next;
			free(d);
			return;
		}
}

/* park_remove - take m off its destination's parked list (d stays:
 * the caller frees it with dest_gc when it may) */
static void
park_remove(struct qmsg *m)
{
	struct qpriv	*p = m->priv;
	struct sdest	*d = p->park_dest;

	if (p->park_prev != NULL)
		((struct qpriv *)p->park_prev->priv)->park_next = p->park_next;
	else
		d->park_head = p->park_next;
	if (p->park_next != NULL)
		((struct qpriv *)p->park_next->priv)->park_prev = p->park_prev;
	else
		d->park_tail = p->park_prev;
	p->park_dest = NULL;
	p->park_prev = p->park_next = NULL;
}

/* park_add - m (out of the heap) waits at the end of d's parked list */
static void
park_add(struct sdest *d, struct qmsg *m)
{
	struct qpriv	*p = m->priv;

	p->park_dest = d;
	p->park_next = NULL;
	p->park_prev = d->park_tail;
	if (d->park_tail != NULL)
		((struct qpriv *)d->park_tail->priv)->park_next = m;
	else
		d->park_head = m;
	d->park_tail = m;
}

/* park_pump - slots of d are free: its oldest parked messages go back
 * into the heap (due now), one per free slot */
static void
park_pump(struct sdest *d)
{
	struct qmsg	*m;
	unsigned	 room;

	if (qs.stopping)
		return;
	room = d->inflight < dest_cap() ? dest_cap() - d->inflight : 0;
	while (room > 0 && (m = d->park_head) != NULL) {
		sched_update(m);	/* unparks it, back in the heap */
		/* one that is no longer due (held, finished) takes no slot:
		 * else the rest could wait with nothing in flight to wake
		 * them */
		if (((struct qpriv *)m->priv)->heap_idx != SIZE_MAX)
			room--;
	}
}

/*
 * park_target - the saturated destination m would wait for: every due
 * recipient is remote and goes to one destination that has dest_cap()
 * jobs in flight; NULL = dispatch m now (a local recipient, several
 * destinations, a DELIVERBY deadline to watch, or a free slot)
 */
static struct sdest *
park_target(struct qmsg *m, time_t now)
{
	struct sdest	*d;
	char		 key[256], k2[256];
	size_t		 i;
	int		 have = 0;

	if (m->deliver_by != 0)
		return NULL;
	for (i = 0; i < m->nrcpts; i++) {
		const struct qrcpt *r = &m->rcpts[i];

		if (rcpt_status_final(r->status) || r->busy ||
		    r->next_attempt > now)
			continue;
		if (sched_rcpt_is_local(r->addr))
			return NULL;
		dest_key(r->addr, have ? k2 : key);
		if (have && strcmp(key, k2) != 0)
			return NULL;
		have = 1;
	}
	if (!have || (d = dest_get(key, 0)) == NULL ||
	    d->inflight < dest_cap())
		return NULL;
	return d;
}

/* ---- finishing ---- */

static void
msg_release(struct qmsg *m)
{
	char	path[64];

	snprintf(path, sizeof(path), "body/%s", m->qid);
	/* no delivery job holds m any more: the file may be reused unless
	 * a content filter was given it */
	if (m->priv != NULL && ((struct qpriv *)m->priv)->body_shared) {
		if (unlink(path) == -1 && errno != ENOENT)
			log_warn("qid=%s cannot remove %s", m->qid, path);
	} else
		pool_put(path);
	log_info("qid=%s removed", m->qid);
	heap_remove(m);
	qmem_remove(m);
	qmsg_free(m);
}

/* sched_status_done - a status commit of m finished (loop thread) */
void
sched_status_done(struct qmsg *m, int rc)
{
	struct qpriv	*p = m->priv;

	m->inflight--;
	if (rc != 0)
		log_warnx("qid=%s status update not recorded (commit failed)",
		    m->qid);
	else if (p != NULL && p->finishing)
		p->finish_ok = 1;
	if (p != NULL && p->finishing && p->finish_ok && m->inflight == 0)
		msg_release(m);
}

static void
status_done(void *arg, int rc)
{
	sched_status_done(arg, rc);
}

/* sched_finish - every recipient is final: close the message in job j */
int
sched_finish(struct qjob *j, struct qmsg *m, time_t now)
{
	unsigned char	 key[QKEY_MAX];
	struct qpriv	*p = qmsg_priv(m);
	size_t		 kl;
	time_t		 purge_key = now;

	if (p == NULL)
		return -1;
	m->done_time = now;
	if (qjob_add_msg(j, m) == -1 || qjob_add_sched(j, m) == -1)
		return -1;
	/* purged when key + history_retention has passed: a tracked message
	 * stays until max(done + history_retention, mtrk_expiry) */
	if (m->mtrk_expiry != 0 &&
	    m->mtrk_expiry - (time_t)qs.cfg->history_retention > purge_key)
		purge_key = m->mtrk_expiry - (time_t)qs.cfg->history_retention;
	if ((kl = key_time(key, m->qid, (uint64_t)purge_key)) == 0 ||
	    qjob_put(j, QDB_EXPIRE, key, kl, "", 0) == -1)
		return -1;
	p->finishing = 1;
	heap_remove(m);
	return 0;
}

void
sched_commit(struct qjob *j, struct qmsg *m)
{
	m->inflight++;
	/* delivery results ride on the next accept's log flush (at most
	 * 50 ms later): losing one in a crash only repeats the attempt;
	 * Maildir suppresses the repeat, a remote hop may see the message
	 * twice, as after any crash between its 250 and our commit */
	qjob_lazy(j);
	qdb_commit(j, status_done, m);
}

/* ---- RFC 2852 DELIVERBY deadline ---- */

/*
 * by_due - when m's DELIVERBY deadline calls for the scheduler:
 * deliver_by while its action is still to take and a recipient is
 * neither final nor busy (a busy one is decided by its results); 0 = no.
 * Mode N arriving past its deadline (by-time <= 0, RFC 2852 4: legal)
 * first gets an attempt: the delayed DSN is for a recipient that waits.
 */
static time_t
by_due(const struct qmsg *m)
{
	const struct qrcpt	*r;
	size_t			 i;

	if (m->deliver_by == 0 || (m->by_flags & BY_DONE) ||
	    !(m->by_flags & (BY_RETURN | BY_NOTIFY)))
		return 0;
	for (i = 0; i < m->nrcpts; i++) {
		r = &m->rcpts[i];
		if (rcpt_status_final(r->status) || r->busy ||
		    (!(m->by_flags & BY_RETURN) && r->attempts == 0 &&
		    m->deliver_by <= m->arrival))
			continue;
		return m->deliver_by;
	}
	return 0;
}

/* by_expired - a deferral of m at now fails 5.4.7 (mode R, deadline reached) */
static int
by_expired(const struct qmsg *m, time_t now)
{
	return m->deliver_by != 0 && (m->by_flags & BY_RETURN) &&
	    now >= m->deliver_by;
}

/*
 * last_error - a recipient's last error as one sentence for the texts
 * that quote it ("; last error: ..."): the host's reply as "host H said:
 * CODE X.Y.Z TEXT" (the code and host would be lost otherwise: the
 * record keeps the new ones), a text of ours (it names its host) as it is
 */
static const char *
last_error(char *out, size_t outlen, const char *remote, int code,
    const char *enh, const char *text)
{
	if (!text_is_reply(remote, code, text))
		return text;
	(void)snprintf(out, outlen, "host %s said: %d%s%s %s", remote, code,
	    enh != NULL && enh[0] ? " " : "", enh != NULL ? enh : "", text);
	return out;
}

/* by_text - the text of a recipient failed by the mode R deadline */
static void
by_text(const struct qmsg *m, char *out, size_t outlen, const char *last)
{
	char	date[64];

	if (rfc5322_date(m->deliver_by, date, sizeof(date)) == -1)
		date[0] = '\0';
	(void)snprintf(out, outlen, "delivery time expired: DELIVERBY "
	    "deadline %s passed (by-mode R)%s%s", date,
	    last != NULL && last[0] != '\0' ? "; last error: " : "",
	    last != NULL ? last : "");
}

/*
 * by_deadline - RFC 2852 4.1.3 at m's deadline, before any dispatch:
 * mode R fails every recipient neither final nor busy with 5.4.7 (no
 * further attempt, a failed DSN per NOTIFY), mode N queues one delayed
 * DSN (4.4.7) for them; BY_DONE, the records, events and DSNs in one
 * commit job
 */
static void
by_deadline(struct qmsg *m, time_t now)
{
	struct dlv_result	*res = NULL;
	struct qjob		*j = NULL;
	struct qrcpt		*r;
	size_t			*idx = NULL, n = 0, i;
	char			 text[600], addr[300], last[600], *detail = NULL;
	int			 bad = 0, ret = (m->by_flags & BY_RETURN) != 0;

	m->by_flags |= BY_DONE;		/* once, even when recording fails */
	if ((j = qjob_new()) == NULL ||
	    (res = calloc(m->nrcpts, sizeof(*res))) == NULL ||
	    (idx = calloc(m->nrcpts, sizeof(*idx))) == NULL)
		goto fail;
	for (i = 0; i < m->nrcpts; i++) {
		r = &m->rcpts[i];
		if (rcpt_status_final(r->status) || r->busy ||
		    (!ret && r->attempts == 0 && m->deliver_by <= m->arrival))
			continue;
		idx[n] = i;
		res[n].ridx = i;
		res[n].status = ret ? RS_FAILED : RS_DEFERRED;
		n++;
		log_escape(addr, sizeof(addr), r->addr, strlen(r->addr));
		if (!ret) {
			log_info("qid=%s rcpt=<%s> deliverby=N deadline "
			    "passed: delayed DSN", m->qid, addr);
			continue;
		}
		by_text(m, text, sizeof(text), last_error(last, sizeof(last),
		    r->remote_mta, r->last_code, r->last_enh, r->last_text));
		r->status = RS_FAILED;
		r->next_attempt = 0;
		r->last_code = 554;
		r->last_attempt = now;
		snprintf(r->last_enh, sizeof(r->last_enh), "5.4.7");
		free(r->last_text);
		r->last_text = strdup(text);
		log_escape(text, sizeof(text), r->last_text ? r->last_text :
		    "", r->last_text ? strlen(r->last_text) : 0);
		log_info("qid=%s rcpt=<%s> status=failed dsn=5.4.7 "
		    "reason=\"%s\"", m->qid, addr, text);
		if (bad || asprintf(&detail, "rcpt=<%s> status=failed code=%d "
		    "enhanced=5.4.7 remote=%s text=\"%s\"", addr, r->last_code,
		    r->remote_mta ? r->remote_mta : "none", text) < 0) {
			detail = NULL;
			bad = 1;
			continue;
		}
		if (qjob_add_event(j, m, "failed", detail) == -1 ||
		    qjob_add_rcpt(j, m, i) == -1)
			bad = 1;
		free(detail);
		detail = NULL;
	}
	if (bad || asprintf(&detail, "deadline mode=%s rcpts=%zu",
	    ret ? "R" : "N", n) < 0 ||
	    qjob_add_event(j, m, "deliverby", detail) == -1 ||
	    qjob_add_msg(j, m) == -1 ||
	    (ret ? queue_notice_batch(j, m, res, n) :
	    queue_notice_deliverby(j, m, idx, n)) == -1)
		goto fail;
	if (qmsg_due(m, 0) == 0 ? sched_finish(j, m, now) == -1 :
	    qjob_add_sched(j, m) == -1)
		goto fail;
	free(detail);
	free(res);
	free(idx);
	sched_commit(j, m);
	return;
fail:
	log_warnx("qid=%s cannot record the DELIVERBY deadline (out of "
	    "memory); it is lost at restart", m->qid);
	free(detail);
	free(res);
	free(idx);
	qjob_free(j);
}

/* ---- results ---- */

static unsigned
retry_delay(unsigned attempts)
{
	const struct config	*c = qs.cfg;
	size_t			 i;

	if (c->nretry_schedule == 0)
		return DEFAULT_RETRY;
	i = attempts > 0 ? attempts - 1 : 0;
	if (i >= c->nretry_schedule)
		i = c->nretry_schedule - 1;
	return c->retry_schedule[i] > 0 ? c->retry_schedule[i] : 1;
}

/*
 * apply_results - record the outcome of one delivery job for m: update
 * memory, then one commit job with records, events and index changes.
 */
static void
apply_results(struct qmsg *m, const struct dlv_result *res, size_t n,
    const char *relay)
{
	struct qjob	*j;
	time_t		 now = time(NULL), limit;
	uint64_t	 nowus = now_usec();
	char		 text[600], etext[700], addr[300], last[600];
	char		 tls[80];
	char		*detail = NULL;
	size_t		 k;
	int		 bad = 0, expired;

	if ((j = qjob_new()) == NULL)
		bad = 1;
	for (k = 0; k < n; k++) {
		const struct dlv_result	*d = &res[k];
		struct qrcpt		*r;
		enum rcpt_status	 st = d->status;
		const char		*enh = d->enh;
		double			 delay;

		if (d->ridx >= m->nrcpts)
			continue;
		r = &m->rcpts[d->ridx];
		r->busy = 0;
		r->attempts++;
		r->last_attempt = now;
		r->last_code = d->code >= 0 && d->code <= 999 ? d->code : 0;
		expired = 0;
		snprintf(text, sizeof(text), "%s", d->text);
		if (st != RS_DELIVERED && st != RS_RELAYED && st != RS_FAILED)
			st = RS_DEFERRED;
		/* relayed with MTRK= on MAIL: the next hop tracks it too */
		if (st == RS_RELAYED && d->mtrk_sent && !r->no_mtrk)
			st = RS_TRANSFERRED;
		if (st == RS_DEFERRED) {
			/* from arrival, or from where holds moved it on */
			limit = (m->expire_base ? m->expire_base : m->arrival) +
			    (time_t)qs.cfg->queue_lifetime;
			if (now >= limit) {
				st = RS_FAILED;
				enh = "4.4.7";
				expired = 1;
				/* cut to text's size when the reply is long */
				if (snprintf(text, sizeof(text), "message "
				    "expired after queue_lifetime; last error: "
				    "%s", last_error(last, sizeof(last),
				    d->remote, d->code, d->enh, d->text)) < 0)
					text[0] = '\0';
			} else {
				r->next_attempt = now +
				    (time_t)retry_delay(r->attempts);
				if (r->next_attempt > limit)
					r->next_attempt = limit;
			}
		}
		if (st == RS_DEFERRED && by_expired(m, now)) {	/* RFC 2852 4.1.3 */
			st = RS_FAILED;
			enh = "5.4.7";
			by_text(m, text, sizeof(text), last_error(last,
			    sizeof(last), d->remote, d->code, d->enh, d->text));
		}
		r->status = st;
		if (rcpt_status_final(st))
			r->next_attempt = 0;
		metrics_delivery(rcpt_status_name(st),
		    strcmp(relay, "local") == 0 ? "maildir" : relay);
		snprintf(r->last_enh, sizeof(r->last_enh), "%s", enh);
		free(r->last_text);
		r->last_text = strdup(text);
		free(r->remote_mta);
		r->remote_mta = d->remote[0] ? strdup(d->remote) : NULL;
		/* what the next hop spoke */
		if (st == RS_RELAYED || st == RS_TRANSFERRED) {
			r->hop_dsn = d->hop_dsn < 0 ? -1 : d->hop_dsn != 0;
			r->hop_mtrk = d->hop_mtrk < 0 ? -1 : d->hop_mtrk != 0;
		}

		log_escape(addr, sizeof(addr), r->addr, strlen(r->addr));
		log_escape(etext, sizeof(etext), text, strlen(text));
		/* SMTP: the attempt's TLS policy and outcome (delivery.h) */
		tls[0] = '\0';
		if (d->tls_policy != DLV_TLS_UNSET &&
		    snprintf(tls, sizeof(tls), " tls_policy=%s%s%.24s",
		    dlv_tls_policy_name(d->tls_policy), d->tls_result[0] ?
		    " tls_result=" : "", d->tls_result) < 0)
			tls[0] = '\0';
		delay = (double)(nowus - (uint64_t)m->arrival * 1000000u) / 1e6;
		if (delay < 0)
			delay = 0;
		if (rcpt_status_final(st))
			metrics_message_delay(delay);
		log_info("qid=%s rcpt=<%s> status=%s dsn=%s relay=%s%s "
		    "delay=%.1fs reason=\"%s\"", m->qid, addr,
		    rcpt_status_name(st), r->last_enh,
		    d->remote[0] ? d->remote : relay, tls, delay, etext);
		if (bad)
			continue;
		if (asprintf(&detail, "rcpt=<%s> attempt=%u relay=%s%s", addr,
		    r->attempts, d->remote[0] ? d->remote : relay, tls) < 0 ||
		    qjob_add_event(j, m, "attempt", detail) == -1)
			bad = 1;
		free(detail);
		detail = NULL;
		if (!bad && expired && qjob_add_event(j, m, "expired",
		    "message expired after queue_lifetime") == -1)
			bad = 1;
		if (bad || asprintf(&detail, "rcpt=<%s> status=%s code=%d "
		    "enhanced=%s remote=%s%s text=\"%s\"", addr,
		    rcpt_status_name(st), r->last_code, r->last_enh,
		    d->remote[0] ? d->remote : relay, tls, etext) < 0) {
			bad = 1;
			detail = NULL;
			continue;
		}
		if (qjob_add_event(j, m, rcpt_status_name(st), detail) == -1 ||
		    qjob_add_rcpt(j, m, d->ridx) == -1)
			bad = 1;
		free(detail);
		detail = NULL;
	}
	if (!bad && queue_notice_batch(j, m, res, n) == -1)
		bad = 1;	/* RFC 3464 DSNs of the batch (queue_notice.c) */
	if (!bad) {
		if (qmsg_due(m, 0) == 0)
			bad = sched_finish(j, m, now) == -1;
		else
			bad = qjob_add_sched(j, m) == -1;
	}
	if (bad) {
		log_warnx("qid=%s cannot record delivery results (out of "
		    "memory); they are lost at restart", m->qid);
		qjob_free(j);
		if (qmsg_due(m, 0) == 0) {
			/* nothing left to do: drop it from memory */
			heap_remove(m);
			if (m->inflight == 0) {
				qmem_remove(m);
				qmsg_free(m);
			} else if (qmsg_priv(m) != NULL)
				((struct qpriv *)m->priv)->finishing = 1;
			return;
		}
		sched_update(m);
		return;
	}
	sched_commit(j, m);
	sched_update(m);
}

/* job_end - rj's job ended: its duration observed; its message */
static struct qmsg *
job_end(struct rjob *rj)
{
	struct qmsg	*m = rj->m;

	metrics_delivery_attempt((double)(mono_us() - rj->start_us) / 1e6);
	free(rj);
	return m;
}

/* dlv_done - a local (Maildir) delivery job finished (loop thread) */
static void
dlv_done(void *arg, const struct dlv_result *res, size_t n)
{
	struct qmsg	*m = job_end(arg);

	qs.inflight--;
	m->inflight--;
	apply_results(m, res, n, "local");
	sched_kick();
}

/* lmtp_done - an LMTP delivery job finished (loop thread) */
static void
lmtp_done(void *arg, const struct dlv_result *res, size_t n)
{
	struct qmsg	*m = job_end(arg);

	qs.inflight--;
	m->inflight--;
	apply_results(m, res, n, "lmtp");
	sched_kick();
}

/* smtp_done - a remote (SMTP) delivery job finished (loop thread): its
 * destination's slot goes to the oldest message parked there */
static void
smtp_done(void *arg, const struct dlv_result *res, size_t n)
{
	struct rjob	*rj = arg;
	struct sdest	*d = rj->d;
	struct qmsg	*m = job_end(rj);

	qs.inflight--;
	m->inflight--;
	apply_results(m, res, n, "smtp");
	d->inflight--;		/* after: d cannot be freed under it */
	park_pump(d);
	dest_gc(d);
	sched_kick();
}

/* ---- dispatch ---- */

int
sched_rcpt_is_local(const char *addr)
{
	const char	*at = strrchr(addr, '@');

	return at != NULL && at[1] != '\0' &&
	    cfg_is_local_domain(qs.cfg, at + 1);
}

static const char *
rcpt_domain(const char *addr)
{
	const char	*at = strrchr(addr, '@');

	return at != NULL ? at + 1 : "";
}

typedef int (*start_fn)(const struct config *, const struct qmsg *,
    const char *, const size_t *, size_t, dlv_done_fn, void *);

/* start_job - one delivery job for ridx[0..n-1] (done gets arg); busy +
 * in-flight on success, 0; -1 when it could not start (retry later) */
static int
start_job(struct qmsg *m, time_t now, start_fn start, dlv_done_fn done,
    void *arg, const size_t *ridx, size_t n, const char *what)
{
	char	path[64];
	size_t	i;

	snprintf(path, sizeof(path), "body/%s", m->qid);
	if (start(qs.cfg, m, path, ridx, n, done, arg) == 0) {
		for (i = 0; i < n; i++)
			m->rcpts[ridx[i]].busy = 1;
		m->inflight++;
		qs.inflight++;
		return 0;
	}
	log_warnx("qid=%s cannot start a %s delivery job; retrying in %ds",
	    m->qid, what, SUBMIT_RETRY);
	for (i = 0; i < n; i++)
		m->rcpts[ridx[i]].next_attempt = now + SUBMIT_RETRY;
	return -1;
}

/* start_remote - one remote job for ridx[0..n-1], counted in flight for
 * its destination until smtp_done */
static void
start_remote(struct qmsg *m, time_t now, const size_t *ridx, size_t n)
{
	struct rjob	*rj;
	struct sdest	*d;
	char		 key[256];
	size_t		 i;

	dest_key(m->rcpts[ridx[0]].addr, key);
	if ((d = dest_get(key, 1)) == NULL ||
	    (rj = malloc(sizeof(*rj))) == NULL) {
		log_warnx("qid=%s out of memory in the scheduler; retrying "
		    "in %ds", m->qid, SUBMIT_RETRY);
		for (i = 0; i < n; i++)
			m->rcpts[ridx[i]].next_attempt = now + SUBMIT_RETRY;
		if (d != NULL)
			dest_gc(d);
		return;
	}
	rj->m = m;
	rj->d = d;
	rj->start_us = mono_us();
	if (start_job(m, now, dlv_remote_start, smtp_done, rj, ridx, n,
	    "remote") == 0)
		d->inflight++;
	else {
		free(rj);
		dest_gc(d);
	}
}

/* start_local - one local job (Maildir, or LMTP when `lmtp` is set)
 * for ridx[0..n-1] */
static void
start_local(struct qmsg *m, time_t now, const size_t *ridx, size_t n)
{
	struct rjob	*rj;
	size_t		 i;
	int		 lmtp = qs.cfg->lmtp != NULL;

	if ((rj = calloc(1, sizeof(*rj))) == NULL) {
		log_warnx("qid=%s out of memory in the scheduler; retrying "
		    "in %ds", m->qid, SUBMIT_RETRY);
		for (i = 0; i < n; i++)
			m->rcpts[ridx[i]].next_attempt = now + SUBMIT_RETRY;
		return;
	}
	rj->m = m;
	rj->start_us = mono_us();
	if (start_job(m, now, lmtp ? dlv_lmtp_start : dlv_local_start,
	    lmtp ? lmtp_done : dlv_done, rj, ridx, n,
	    lmtp ? "LMTP" : "local") == -1)
		free(rj);
}

/*
 * dispatch - start the due recipients of m: one local job (Maildir, or
 * LMTP when `lmtp` is set) and one remote job per recipient domain
 * (case-insensitive).
 */
static void
dispatch(struct qmsg *m, time_t now)
{
	size_t		*lidx = NULL, *ridx = NULL, *grp = NULL;
	unsigned char	*used = NULL;
	size_t		 nl = 0, nr = 0, ng, i, k;

	fresh_clear(m);		/* its delivery starts (or it is held) */
	if (msg_held(m))
		return;		/* held: nothing leaves (queue_state.c) */
	queue_lists_dispatch(m, now);	/* lists: expanded, not delivered */
	if ((lidx = calloc(m->nrcpts, sizeof(*lidx))) == NULL ||
	    (ridx = calloc(m->nrcpts, sizeof(*ridx))) == NULL ||
	    (grp = calloc(m->nrcpts, sizeof(*grp))) == NULL ||
	    (used = calloc(m->nrcpts, 1)) == NULL)
		goto nomem;
	for (i = 0; i < m->nrcpts; i++) {
		struct qrcpt *r = &m->rcpts[i];

		if (rcpt_status_final(r->status) || r->busy ||
		    r->next_attempt > now)
			continue;
		if (sched_rcpt_is_local(r->addr))
			lidx[nl++] = i;
		else
			ridx[nr++] = i;
	}
	if (nl > 0)
		start_local(m, now, lidx, nl);
	for (i = 0; i < nr; i++) {
		const char *dom;

		if (used[i])
			continue;
		dom = rcpt_domain(m->rcpts[ridx[i]].addr);
		/* one job per domain; list expansions (no_mtrk) apart, since
		 * MTRK is a MAIL parameter of the whole transaction */
		for (k = i, ng = 0; k < nr; k++)
			if (!used[k] && strcasecmp(dom,
			    rcpt_domain(m->rcpts[ridx[k]].addr)) == 0 &&
			    m->rcpts[ridx[k]].no_mtrk ==
			    m->rcpts[ridx[i]].no_mtrk) {
				used[k] = 1;
				grp[ng++] = ridx[k];
			}
		start_remote(m, now, grp, ng);
	}
	free(lidx);
	free(ridx);
	free(grp);
	free(used);
	return;
nomem:
	free(lidx);
	free(ridx);
	free(grp);
	free(used);
	log_warnx("qid=%s out of memory in the scheduler; retrying in %ds",
	    m->qid, SUBMIT_RETRY);
	for (i = 0; i < m->nrcpts; i++)
		if (!rcpt_status_final(m->rcpts[i].status) && !m->rcpts[i].busy &&
		    m->rcpts[i].next_attempt <= now)
			m->rcpts[i].next_attempt = now + SUBMIT_RETRY;
}

static int
inflight_cap(void)
{
	unsigned	w = qs.cfg->workers ? qs.cfg->workers : 1;

	/* disk jobs (Maildir, 4 per worker thread) plus the SMTP client's
	 * own global limit, so slow remote hosts cannot starve local mail */
	return (int)(4 * w + qs.cfg->smtp_concurrency);
}

/*
 * sched_arm - the timer at the heap top's due time: nothing runs before
 * something is due (at most SCHED_MAX_SLEEP ahead, for clock steps); a
 * due top that waits for an in-flight slot is woken by the job that
 * ends (sched_kick), the 1 s timer is only a fallback
 */
static void
sched_arm(time_t now)
{
	struct timeval	tv = { 1, 0 };
	time_t		due;

	if (sched_ev == NULL || qs.stopping)
		return;
	if (nheap == 0) {
		evtimer_del(sched_ev);
		return;
	}
	due = ((struct qpriv *)heap[0]->priv)->due;
	if (due <= now)
		tv.tv_sec = qs.inflight >= inflight_cap() ? 1 : 0;
	else
		tv.tv_sec = due - now < SCHED_MAX_SLEEP ? due - now :
		    SCHED_MAX_SLEEP;
	evtimer_add(sched_ev, &tv);
}

static void
sched_cb(evutil_socket_t fd, short what, void *arg)
{
	struct sdest	*d;
	struct qmsg	*m;
	time_t		 now = time(NULL), by;
	unsigned	 parked = 0;

	(void)fd;
	(void)what;
	(void)arg;
	while (nheap > 0 && !qs.stopping && qs.cfg != NULL) {
		m = heap[0];
		if (((struct qpriv *)m->priv)->due > now ||
		    qs.inflight >= inflight_cap())
			break;
		if ((by = by_due(m)) != 0 && by <= now)
			by_deadline(m, now);	/* RFC 2852 4.1.3 */
		if (msg_held(m)) {
			/* held: the deadline above, a timed release, nothing
			 * else (queue_state.c) */
			if (m->state == MS_TIMED && m->hold_until <= now)
				sched_release_due(m);
			else
				sched_update(m);
			if (msg_held(m) && nheap > 0 && heap[0] == m &&
			    ((struct qpriv *)m->priv)->due <= now)
				heap_remove(m);	/* never spin */
			continue;	/* released: dispatched next round */
		}
		if ((d = park_target(m, now)) != NULL) {
			heap_remove(m);	/* back when d has a free slot */
			park_add(d, m);
			/* a long run of them (a backlog come due) is parked
			 * a batch per loop turn: connections are served
			 * in between (sched_arm: due now, timer 0) */
			if (++parked >= PARK_BATCH)
				break;
			continue;
		}
		dispatch(m, now);
		sched_update(m);
		if (nheap > 0 && heap[0] == m &&
		    ((struct qpriv *)m->priv)->due <= now) {
			/* cannot happen; never spin */
			log_warnx("qid=%s still due after dispatch", m->qid);
			heap_remove(m);
		}
	}
	sched_arm(now);
}

/* ---- entry points ---- */

int
sched_init(struct event_base *base)
{
	if ((sched_ev = evtimer_new(base, sched_cb, NULL)) == NULL)
		return -1;
	return 0;
}

void
sched_shutdown(void)
{
	size_t	i;

	if (sched_ev != NULL) {
		event_free(sched_ev);
		sched_ev = NULL;
	}
	for (i = 0; i < nheap; i++)
		((struct qpriv *)heap[i]->priv)->heap_idx = SIZE_MAX;
	free(heap);
	heap = NULL;
	nheap = capheap = 0;
	/* parked messages leave their lists; a destination with jobs in
	 * flight stays until their smtp_done */
	for (i = 0; i < DEST_BUCKETS; i++) {
		struct sdest *d = dests[i], *next;

		for (; d != NULL; d = next) {
			next = d->next;
			while (d->park_head != NULL)
				park_remove(d->park_head);
			dest_gc(d);
		}
	}
}

void
sched_kick(void)
{
	struct timeval	zero = { 0, 0 };

	if (sched_ev != NULL && !qs.stopping)
		evtimer_add(sched_ev, &zero);
}

void
sched_remove(struct qmsg *m)
{
	heap_remove(m);
}

/*
 * sched_update - re-key m after a change of its recipients; a message
 * that is not finished but has only final recipients (loaded after a
 * lost final commit) is finished here.
 */
void
sched_update(struct qmsg *m)
{
	struct qpriv	*p = qmsg_priv(m);
	struct qjob	*j;
	time_t		 due, by;

	if (p == NULL)
		return;
	if (p->park_dest != NULL)
		park_remove(m);	/* re-keyed below; parked again if need be */
	if (msg_held(m) && m->done_time == 0 && !p->finishing &&
	    qmsg_due(m, 0) != 0) {
		fresh_clear(m);	/* held: not the backlog */
		/* held: back at a timed release or the DELIVERBY deadline,
		 * which counts even while held (RFC 2852) */
		due = m->state == MS_TIMED ? (m->hold_until > 0 ?
		    m->hold_until : 1) : 0;
		if ((by = by_due(m)) != 0 && (due == 0 || by < due))
			due = by;
		if (due == 0 || qs.stopping)
			heap_remove(m);
		else if (heap_set(m, due) == -1)
			log_warnx("qid=%s cannot be scheduled (out of memory)",
			    m->qid);
		return;
	}
	if (m->done_time == 0 && !p->finishing && qmsg_due(m, 0) == 0 &&
	    m->inflight == 0 && !qs.stopping) {
		fresh_clear(m);		/* nothing left to deliver */
		if ((j = qjob_new()) == NULL || sched_finish(j, m, time(NULL)) == -1) {
			qjob_free(j);
			m->done_time = 0;
			p->finishing = 0;
			log_warnx("qid=%s cannot record completion", m->qid);
			heap_remove(m);
			return;
		}
		sched_commit(j, m);
		return;
	}
	due = (m->done_time || p->finishing || qs.stopping) ? 0 :
	    qmsg_due(m, 1);
	if (due != 0 && (by = by_due(m)) != 0 && by < due)
		due = by;	/* the DELIVERBY deadline comes first */
	if (p->fresh && (due == 0 || due > time(NULL)))
		fresh_clear(m);	/* not due now: no longer the backlog */
	if (due == 0)
		heap_remove(m);
	else if (heap_set(m, due) == -1) {
		log_warnx("qid=%s cannot be scheduled (out of memory)", m->qid);
		fresh_clear(m);	/* in no heap: never dispatched from it */
	}
}

/* flush_one - make m's deferred recipients due now; their count */
static int
flush_one(struct qmsg *m, time_t now)
{
	struct qjob	*j;
	char		 detail[128];
	size_t		 k, nk;
	int		 bad;

	for (k = 0, nk = 0; k < m->nrcpts; k++)
		if (m->rcpts[k].status == RS_DEFERRED && !m->rcpts[k].busy)
			nk++;
	if (nk == 0)
		return 0;
	j = qjob_new();
	bad = j == NULL;
	for (k = 0; k < m->nrcpts; k++) {
		struct qrcpt *r = &m->rcpts[k];

		if (r->status != RS_DEFERRED || r->busy)
			continue;
		r->next_attempt = now;
		if (!bad && qjob_add_rcpt(j, m, k) == -1)
			bad = 1;
	}
	snprintf(detail, sizeof(detail), "operator flush: %zu "
	    "recipient(s) due now", nk);
	if (!bad && (qjob_add_event(j, m, "flush", detail) == -1 ||
	    qjob_add_sched(j, m) == -1))
		bad = 1;
	if (bad) {
		log_warnx("qid=%s flush not recorded (out of memory)", m->qid);
		qjob_free(j);
	} else
		sched_commit(j, m);
	sched_update(m);
	return (int)nk;
}

int
queue_flush(const char *qid)
{
	struct qmsg	*m;
	struct qpriv	*p;
	time_t		 now = time(NULL);
	size_t		 i;
	int		 count = 0;

	if (qid != NULL) {
		/* one message: found by its key, not by a walk */
		if ((m = qmem_find(qid)) == NULL || m->done_time ||
		    (m->priv != NULL && ((struct qpriv *)m->priv)->finishing))
			return -1;
		count = flush_one(m, now);
	} else
		for (i = 0; i < qs.nmsgs; i++) {
			m = qs.msgs[i];
			p = m->priv;
			if (m->done_time || (p != NULL && p->finishing))
				continue;
			count += flush_one(m, now);
		}
	log_info("queue: flush: %d deferred recipient(s) due now", count);
	sched_kick();
	return count;
}
