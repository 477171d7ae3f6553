#include "config.h"
/*
 * queue_bulk.c - the bulk load of finished messages into the store of a
 * spool that no daemon runs on (bench/trkload.c fills a store with a
 * million retained tracked messages this way), and of unfinished ones
 * (bench/httpload.c: a queue of 100,000 for bench/http.sh).  Not used
 * by waymarkd.
 * Entry points: queue_bulk_open, queue_bulk_load, queue_bulk_queue,
 *       queue_bulk_close.
 * An unfinished message (queue_bulk_queue) leaves what queue_accept
 *       leaves: its body file, the records, the events "accepted",
 *       "trace" and (held) "state", the state, schedule and ENVID index
 *       entries; its state is kept as given (a held message stays held).
 * What one message leaves, as the daemon leaves a finished one: the
 *       message record (done_time set), its recipient records, the
 *       events "accepted", "trace" (one per trace field), per recipient
 *       "attempt" and its status ("delivered", "transferred", ...) in
 *       the formats of queue_sched.c's apply_results, the state and
 *       ENVID index entries and the expire (purge) entry of
 *       sched_finish; no schedule entry and no body file.  A message
 *       without trace fields gets the hop's Received field
 *       (queue_trace_received).  Event times are the time of the load.
 * Transactions: every queue_bulk_load call is ONE transaction (the
 *       commit thread is not started: qdb_commit runs it at once), then
 *       one log flush; a checkpoint every BULK_CKP_MSGS messages keeps
 *       the log files few (they are removed automatically).  The cache
 *       is BULK_CACHE instead of the daemon's 1 MiB.
 */

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "common/cfg.h"
#include "common/log.h"
#include "common/util.h"
#include "queue/queue_int.h"

#define BULK_CACHE	(64u * 1024 * 1024)
#define BULK_CKP_MSGS	50000

static struct event_base	*bulk_base;
static size_t			 bulk_since_ckp;

/* queue_bulk_open - recover and open the store for a bulk load */
int
queue_bulk_open(const struct config *cfg, char *err, size_t errlen)
{
	uint64_t	floor = 0;
	int		r;

	memset(&qs, 0, sizeof(qs));
	qs.cfg = cfg;
	if ((bulk_base = event_base_new()) == NULL) {
		snprintf(err, errlen, "cannot create an event base");
		return -1;
	}
	qs.base = bulk_base;
	qdb_set_cache(BULK_CACHE);
	r = qdb_open(bulk_base, err, errlen);
	qdb_set_cache(1024 * 1024);
	if (r == -1)
		goto fail;
	if ((r = qdb_get_meta_u64("qid_floor", &floor)) == -1) {
		snprintf(err, errlen, "cannot read the queue id high-water mark");
		qdb_close();
		goto fail;
	}
	qid_init(r == 0 ? floor : 0);
	qs.qid_floor = floor;
	bulk_since_ckp = 0;
	return 0;
fail:
	event_base_free(bulk_base);
	bulk_base = NULL;
	memset(&qs, 0, sizeof(qs));
	return -1;
}

/* rcpt_events - "attempt" and the status event of final recipient i */
static int
rcpt_events(struct qjob *j, struct qmsg *m, size_t i)
{
	const struct qrcpt	*r = &m->rcpts[i];
	const char		*relay = r->remote_mta ? r->remote_mta : "local";
	char			 addr[300], text[700], *detail = NULL;
	int			 rc;

	log_escape(addr, sizeof(addr), r->addr, strlen(r->addr));
	log_escape(text, sizeof(text), r->last_text ? r->last_text : "",
	    r->last_text ? strlen(r->last_text) : 0);
	if (asprintf(&detail, "rcpt=<%s> attempt=%u relay=%s", addr,
	    r->attempts, relay) < 0)
		return -1;
	rc = qjob_add_event(j, m, "attempt", detail);
	free(detail);
	if (rc == -1 || asprintf(&detail, "rcpt=<%s> status=%s code=%d "
	    "enhanced=%s remote=%s text=\"%s\"", addr,
	    rcpt_status_name(r->status), r->last_code, r->last_enh, relay,
	    text) < 0)
		return -1;
	rc = qjob_add_event(j, m, rcpt_status_name(r->status), detail);
	free(detail);
	return rc;
}

/* bulk_job - the records of finished message m as one job; NULL on error */
static struct qjob *
bulk_job(struct qmsg *m, const char **why)
{
	unsigned char	 key[QKEY_MAX];
	char		 field[1024];
	struct qjob	*j;
	time_t		 purge_key;
	uint64_t	 us;
	size_t		 i, kl;

	*why = "out of memory";
	if (m->nrcpts == 0 || m->sender == NULL) {
		*why = "a message without recipients or sender";
		return NULL;
	}
	for (i = 0; i < m->nrcpts; i++)
		if (!rcpt_status_final(m->rcpts[i].status)) {
			*why = "a recipient that is not final";
			return NULL;
		}
	us = qid_new(m->qid);
	if (us > qs.qid_floor)
		qs.qid_floor = us;
	if (m->arrival == 0)
		m->arrival = time(NULL);
	if (m->done_time == 0)
		m->done_time = m->arrival;
	if (m->state_since == 0)
		m->state_since = m->arrival;
	if (m->mtrk_certifier != NULL && m->mtrk_expiry == 0)
		m->mtrk_expiry = m->arrival +
		    (time_t)qs.cfg->tracking_retention;
	m->next_seq = 0;
	if (m->ntrace == 0) {		/* the hop's Received field */
		if (queue_trace_received(m, queue_hostname(), m->tls != NULL ?
		    "ESMTPS" : "ESMTP", field, sizeof(field)) == -1 ||
		    qmsg_add_trace(m, field) == -1)
			return NULL;
	}
	if ((j = qjob_accept(m)) == NULL)
		return NULL;
	for (i = 0; i < m->nrcpts; i++)
		if (rcpt_events(j, m, i) == -1)
			goto fail;
	/* as sched_finish: purged at max(done + history_retention,
	 * mtrk_expiry) */
	purge_key = m->done_time;
	if (m->mtrk_expiry != 0 &&
	    m->mtrk_expiry - (time_t)qs.cfg->history_retention > purge_key)
		purge_key = m->mtrk_expiry - (time_t)qs.cfg->history_retention;
	if ((kl = key_time(key, m->qid, (uint64_t)purge_key)) == 0 ||
	    qjob_put(j, QDB_EXPIRE, key, kl, "", 0) == -1)
		goto fail;
	return j;
fail:
	qjob_free(j);
	return NULL;
}

/* bulk_done - the result of the synchronous commit */
static void
bulk_done(void *arg, int rc)
{
	*(int *)arg = rc;
}

/* queued_job - the records of unfinished message m as one job, after
 * its body file; NULL on error */
static struct qjob *
queued_job(struct qmsg *m, const char *body, size_t bodylen,
    const char **why)
{
	char		 field[1024], path[64];
	struct qjob	*j;
	uint64_t	 us;
	size_t		 i;
	ssize_t		 w;
	int		 fd;

	*why = "out of memory";
	if (m->nrcpts == 0 || m->sender == NULL) {
		*why = "a message without recipients or sender";
		return NULL;
	}
	for (i = 0; i < m->nrcpts; i++)
		if (rcpt_status_final(m->rcpts[i].status)) {
			*why = "a recipient that is final";
			return NULL;
		}
	us = qid_new(m->qid);
	if (us > qs.qid_floor)
		qs.qid_floor = us;
	if (m->arrival == 0)
		m->arrival = time(NULL);
	m->done_time = 0;
	if (m->state_since == 0)
		m->state_since = m->arrival;
	if (m->mtrk_certifier != NULL && m->mtrk_expiry == 0)
		m->mtrk_expiry = m->arrival +
		    (time_t)qs.cfg->tracking_retention;
	for (i = 0; i < m->nrcpts; i++)
		if (m->rcpts[i].next_attempt == 0)
			m->rcpts[i].next_attempt = m->arrival;
	m->size = bodylen;
	m->next_seq = 0;
	if (m->ntrace == 0) {		/* the hop's Received field */
		if (queue_trace_received(m, queue_hostname(), m->tls != NULL ?
		    "ESMTPS" : "ESMTP", field, sizeof(field)) == -1 ||
		    qmsg_add_trace(m, field) == -1)
			return NULL;
	}
	(void)snprintf(path, sizeof(path), "body/%s", m->qid);
	if ((fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
	    0600)) == -1) {
		*why = "cannot create a body file";
		return NULL;
	}
	w = write(fd, body, bodylen);
	if (close(fd) == -1 || w != (ssize_t)bodylen) {
		*why = "cannot write a body file";
		(void)unlink(path);
		return NULL;
	}
	if ((j = qjob_accept(m)) == NULL)
		(void)unlink(path);
	return j;
}

/* bulk_commit - msgs[0..n-1] in one transaction: finished messages, or
 * when queued unfinished ones sharing body */
static int
bulk_commit(struct qmsg *const *msgs, size_t n, int queued, const char *body,
    size_t bodylen, char *err, size_t errlen)
{
	struct qjob	*all, *j;
	const char	*why;
	size_t		 i;
	int		 rc = -1;

	if (qs.cfg == NULL || bulk_base == NULL) {
		snprintf(err, errlen, "the store is not open for a bulk load");
		return -1;
	}
	if ((all = qjob_new()) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	for (i = 0; i < n; i++) {
		j = !queued ? bulk_job(msgs[i], &why) :
		    queued_job(msgs[i], body, bodylen, &why);
		if (j == NULL) {
			snprintf(err, errlen, "message %zu of the batch: %s", i,
			    why);
			qjob_free(all);
			return -1;
		}
		qjob_append(all, j);
	}
	/* the body files reach the disk before the records name them */
	if (queued)
		sync();
	qdb_commit(all, bulk_done, &rc);	/* synchronous: no commit thread */
	if (rc != 0) {
		snprintf(err, errlen, "the commit of %zu messages failed (see "
		    "the log)", n);
		return -1;
	}
	bulk_since_ckp += n;
	if (bulk_since_ckp >= BULK_CKP_MSGS) {
		qdb_checkpoint();
		bulk_since_ckp = 0;
	}
	return 0;
}

/* queue_bulk_load - msgs[0..n-1] in one transaction */
int
queue_bulk_load(struct qmsg *const *msgs, size_t n, char *err,
    size_t errlen)
{
	return bulk_commit(msgs, n, 0, NULL, 0, err, errlen);
}

/* queue_bulk_queue - unfinished msgs[0..n-1] in one transaction */
int
queue_bulk_queue(struct qmsg *const *msgs, size_t n, const char *body,
    size_t bodylen, char *err, size_t errlen)
{
	return bulk_commit(msgs, n, 1, body, bodylen, err, errlen);
}

/* queue_bulk_close - checkpoint and close the store; 0, or -1 when the
 * store failed (a checkpoint or a sync: see the log) */
int
queue_bulk_close(void)
{
	if (bulk_base == NULL)
		return 0;
	qdb_close();		/* checkpoints */
	event_base_free(bulk_base);
	bulk_base = NULL;
	memset(&qs, 0, sizeof(qs));
	return queue_store_panicked() ? -1 : 0;
}
