#include "config.h"
/*
 * queue_state.c - the RFC 6729 handling-state machine and the operator's
 * actions on one message (hold, release, delete).
 * Owns: state_move, the one place that changes a message's state: the
 *       message record, the state index entry, the "state" event and
 *       (when the entry is decided after reception, and at every
 *       release) the state-annotated Received field, all in ONE commit
 *       job; the "state" event of a message held from reception
 *       (qjob_add_state_event, from queue_accept); the release of a
 *       timed message at its time (sched_release_due, from the
 *       scheduler); queue_action.
 * States: normal and outbound are not held; every other keyword is
 *       (the scheduler does not deliver; msg_held).  A release goes to
 *       outbound when a pending recipient is remote, else to normal
 *       (RFC 6729 3: outbound = placed in the queue for relaying).
 * Time: the time spent held (quarantine, moderation, other, content...)
 *       moves expire_base on, so it does not count toward
 *       queue_lifetime; a timed message's lifetime counts from its
 *       release (RFC 4865).  Released recipients are due at once.
 * Actions answer only after their commit has reached stable storage
 *       (not a lazy commit), so a kill -9 after the answer keeps it.
 * Not here: deciding states at reception (smtpd: policy,
 *       FUTURERELEASE), the trace text (queue_trace.c), the scheduler.
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/cfg.h"
#include "common/log.h"
#include "common/syntax.h"
#include "common/util.h"
#include "delivery/delivery.h"
#include "queue/queue_int.h"

/* one operator action waiting for its commit */
struct action_ctx {
	struct qmsg	*m;
	void		(*done)(void *arg, int rc, const char *msg);
	void		*arg;
	char		 msg[256];
};

/* text_escape - a short printable rendering of s for event details */
static void
text_escape(char *out, size_t outlen, const char *s)
{
	log_escape(out, outlen, s != NULL ? s : "", s != NULL ? strlen(s) : 0);
}

/* qjob_add_state_event - the "state" event of m's current state */
int
qjob_add_state_event(struct qjob *j, struct qmsg *m, enum msg_state from,
    const char *actor)
{
	char	 val[128], why[400], who[200], *detail = NULL;
	int	 n, rc;

	text_escape(val, sizeof(val), m->state_value);
	text_escape(why, sizeof(why), m->state_reason);
	text_escape(who, sizeof(who), actor != NULL ? actor : "queue");
	n = asprintf(&detail, "from=%s to=%s%s%s actor=\"%s\" reason=\"%s\"",
	    msg_state_name(from), msg_state_name(m->state),
	    m->state_value ? "/" : "", m->state_value ? val : "", who, why);
	if (n < 0)
		return -1;
	rc = qjob_add_event(j, m, "state", detail);
	free(detail);
	return rc;
}

/*
 * state_move - m enters `to` (value, reason) now: memory, the message
 * record, the state index, the "state" event and, with trace, the
 * RFC 6729 Received field, all in j.  -1 on ENOMEM (m unchanged).
 */
static int
state_move(struct qjob *j, struct qmsg *m, enum msg_state to,
    const char *value, const char *reason, const char *actor, int trace,
    time_t now)
{
	unsigned char	 key[QKEY_MAX];
	char		 field[1024], *nv = NULL, *nr = NULL;
	enum msg_state	 from = m->state;
	size_t		 kl;

	if ((value != NULL && (nv = strdup(value)) == NULL) ||
	    (reason != NULL && (nr = strdup(reason)) == NULL))
		goto fail;
	if (trace && queue_trace_state(m, qs.cfg->hostname, to, value,
	    reason, now, field, sizeof(field)) == -1)
		goto fail;
	if (from != to) {
		if ((kl = key_state(key, m->qid, (unsigned)from)) == 0 ||
		    qjob_del(j, QDB_STATE, key, kl) == -1 ||
		    (kl = key_state(key, m->qid, (unsigned)to)) == 0 ||
		    qjob_put(j, QDB_STATE, key, kl, "", 0) == -1)
			goto fail;
	}
	if (trace && qmsg_add_trace(m, field) == -1)
		goto fail;
	free(m->state_value);
	free(m->state_reason);
	m->state_value = nv;
	m->state_reason = nr;
	m->state = to;
	gauge_move(m, from);
	m->state_since = now;
	if (qjob_add_state_event(j, m, from, actor) == -1 ||
	    (trace && qjob_add_event(j, m, "trace", field) == -1) ||
	    qjob_add_msg(j, m) == -1)
		return -1;
	log_info("qid=%s state=%s%s%s from=%s actor=\"%s\"", m->qid,
	    msg_state_name(to), nv ? "/" : "", nv ? nv : "",
	    msg_state_name(from), actor ? actor : "queue");
	return 0;
fail:
	free(nv);
	free(nr);
	return -1;
}

/*
 * release_job - m leaves its held state now: every pending recipient
 * due, the held time off its lifetime, outbound when a pending
 * recipient is remote (else normal), the release's Received field.
 */
static int
release_job(struct qjob *j, struct qmsg *m, const char *actor, time_t now)
{
	time_t	base = m->expire_base ? m->expire_base : m->arrival;
	time_t	since = m->state_since ? m->state_since : m->arrival;
	size_t	i;
	int	remote = 0;
	char	when[32], why[64];

	/* RFC 4865 4.2: never before a FUTURERELEASE time, whatever held
	 * the message meanwhile (policy, filter): it goes to timed */
	if (m->state != MS_TIMED && m->hold_until > now) {
		if (rfc3339_format(m->hold_until, when, sizeof(when)) == -1)
			when[0] = '\0';
		snprintf(why, sizeof(why), "release at %s", when);
		if (now > since)
			m->expire_base = base + (now - since);
		if (state_move(j, m, MS_TIMED, NULL, why, actor, 1, now) == -1)
			return -1;
		return qjob_add_sched(j, m);
	}
	for (i = 0; i < m->nrcpts; i++) {
		struct qrcpt *r = &m->rcpts[i];

		if (rcpt_status_final(r->status))
			continue;
		if (!sched_rcpt_is_local(r->addr))
			remote = 1;
		r->next_attempt = now;
		if (qjob_add_rcpt(j, m, i) == -1)
			return -1;
	}
	if (m->state == MS_TIMED)
		m->expire_base = now;
	else if (now > since)
		m->expire_base = base + (now - since);
	if (state_move(j, m, remote ? MS_OUTBOUND : MS_NORMAL, NULL, NULL,
	    actor, 1, now) == -1)
		return -1;
	return qjob_add_sched(j, m);
}

/* action_done - an action's commit finished: answer, then schedule */
static void
action_done(void *arg, int rc)
{
	struct action_ctx	*a = arg;
	struct qmsg		*m = a->m;

	if (rc != 0)
		log_warnx("qid=%s operator action not recorded (commit failed)",
		    m->qid);
	a->done(a->arg, rc == 0 ? 0 : -1, rc == 0 ? a->msg :
	    "the change could not be recorded");
	free(a);
	sched_status_done(m, rc);	/* may free m (a finished delete) */
	sched_kick();
}

/* delete_job - every pending recipient fails 5.7.1 with text; the
 * event `kind` names the actor; DSNs when bounce */
static int
delete_job(struct qjob *j, struct qmsg *m, int bounce, const char *actor,
    const char *text, const char *kind, time_t now)
{
	struct dlv_result	*res;
	char			 who[200], *detail = NULL;
	size_t			 i, n = 0;
	int			 rc = -1;

	if ((res = calloc(m->nrcpts, sizeof(*res))) == NULL)
		return -1;
	for (i = 0; i < m->nrcpts; i++) {
		struct qrcpt *r = &m->rcpts[i];

		if (rcpt_status_final(r->status))
			continue;
		res[n].ridx = i;
		res[n].status = RS_FAILED;
		res[n].code = 550;
		res[n].hop_dsn = res[n].hop_mtrk = -1;
		snprintf(res[n].enh, sizeof(res[n].enh), "5.7.1");
		snprintf(res[n].text, sizeof(res[n].text), "%s", text);
		n++;
		r->status = RS_FAILED;
		r->next_attempt = 0;
		r->last_attempt = now;
		r->last_code = 550;
		snprintf(r->last_enh, sizeof(r->last_enh), "5.7.1");
		free(r->last_text);
		r->last_text = strdup(text);
		if (qjob_add_rcpt(j, m, i) == -1)
			goto out;
	}
	text_escape(who, sizeof(who), actor);
	if (asprintf(&detail, "actor=\"%s\" bounce=%s rcpts=%zu", who,
	    bounce ? "yes" : "no", n) < 0) {
		detail = NULL;
		goto out;
	}
	if (qjob_add_event(j, m, kind, detail) == -1)
		goto out;
	if (bounce && queue_notice_batch(j, m, res, n) == -1)
		goto out;
	rc = sched_finish(j, m, now);
out:
	free(detail);
	free(res);
	return rc;
}

/*
 * queue_action - check, then act: the reply comes from done() after the
 * commit.  Returns 0 (done will be called), QA_UNKNOWN or QA_REFUSED
 * (msg says why; done is not called), or -1.
 */
int
queue_action(const char *qid, enum queue_action what, const char *actor,
    char *msg, size_t msglen,
    void (*done)(void *arg, int rc, const char *msg), void *arg)
{
	struct action_ctx	*a;
	struct qmsg		*m;
	struct qpriv		*p;
	struct qjob		*j;
	time_t			 now = time(NULL);
	size_t			 i;
	int			 rc;

	msg[0] = '\0';
	if (!qid_valid(qid) || (m = qmem_find(qid)) == NULL ||
	    (p = qmsg_priv(m)) == NULL || m->done_time != 0 || p->finishing) {
		snprintf(msg, msglen, "no such message in the queue: %s",
		    qid_valid(qid) ? qid : "(bad queue id)");
		return QA_UNKNOWN;
	}
	switch (what) {
	case QA_HOLD:
		if (msg_held(m)) {
			snprintf(msg, msglen, "%s is already held (state %s%s%s)",
			    m->qid, msg_state_name(m->state),
			    m->state_value ? "/" : "",
			    m->state_value ? m->state_value : "");
			return QA_REFUSED;
		}
		break;
	case QA_RELEASE:
		/* content waits for its filter; auth and convert for theirs */
		if (m->state != MS_QUARANTINE && m->state != MS_MODERATION &&
		    m->state != MS_OTHER && m->state != MS_TIMED) {
			snprintf(msg, msglen, "%s cannot be released from state "
			    "%s", m->qid, msg_state_name(m->state));
			return QA_REFUSED;
		}
		break;
	case QA_DELETE:
	case QA_BOUNCE:
		for (i = 0; i < m->nrcpts; i++)
			if (m->rcpts[i].busy) {
				snprintf(msg, msglen, "%s is being delivered "
				    "right now; try again in a moment", m->qid);
				return QA_REFUSED;
			}
		break;
	}
	if ((a = calloc(1, sizeof(*a))) == NULL || (j = qjob_new()) == NULL) {
		free(a);
		snprintf(msg, msglen, "out of memory");
		return -1;
	}
	switch (what) {
	case QA_HOLD:
		rc = state_move(j, m, MS_OTHER, "hold", "held by the operator",
		    actor, 1, now);
		if (rc == 0)
			rc = qjob_add_sched(j, m);
		snprintf(a->msg, sizeof(a->msg), "%s held", m->qid);
		break;
	case QA_RELEASE:
		snprintf(a->msg, sizeof(a->msg), "%s released from %s%s%s",
		    m->qid, msg_state_name(m->state),
		    m->state_value ? "/" : "",
		    m->state_value ? m->state_value : "");
		rc = release_job(j, m, actor, now);
		break;
	default:
		/* a post held for a list moderator is rejected (queue_lists.c) */
		rc = delete_job(j, m, what == QA_BOUNCE, actor,
		    m->state == MS_MODERATION ?
		    "post rejected by the list moderator" :
		    "message deleted by the operator", "deleted", now);
		snprintf(a->msg, sizeof(a->msg), "%s deleted%s", m->qid,
		    what == QA_BOUNCE ? ", failure notice queued where due" :
		    "");
		break;
	}
	if (rc == -1) {
		qjob_free(j);
		free(a);
		snprintf(msg, msglen, "cannot record the change (out of memory)");
		return -1;
	}
	a->m = m;
	a->done = done;
	a->arg = arg;
	m->inflight++;
	sched_update(m);
	qdb_commit(j, action_done, a);	/* flushed: answered when durable */
	return 0;
}

/* sched_release_due - the scheduler found a timed message due: release */
void
sched_release_due(struct qmsg *m)
{
	struct qjob	*j;

	if (m->state != MS_TIMED)
		return;
	if ((j = qjob_new()) == NULL || release_job(j, m, "FUTURERELEASE",
	    time(NULL)) == -1) {
		qjob_free(j);
		log_warnx("qid=%s cannot release (out of memory); retrying",
		    m->qid);
		m->hold_until = time(NULL) + 10;
		sched_update(m);
		return;
	}
	sched_commit(j, m);
	sched_update(m);
}

/*
 * state_filter_done - the content filter of m ended (queue_filter.c):
 * 0 release, 1 quarantine/filter, 2 every pending recipient fails 5.7.1
 * with a DSN where due; anything else runs the filter again later.
 * One "filter" event and the state change in one (lazy) commit: lost in
 * a crash, the filter only runs again.
 */
void
state_filter_done(struct qmsg *m, int code, const char *why)
{
	struct qpriv	*p = qmsg_priv(m);
	struct qjob	*j;
	time_t		 now = time(NULL);
	unsigned	 again;
	char		 detail[800], text[600];
	int		 rc;

	snprintf(detail, sizeof(detail), "exit=%d%s reason=\"%s\"", code,
	    code == -2 ? " (timeout)" : code == -1 ? " (signal)" : "", why);
	log_info("qid=%s filter %s", m->qid, detail);
	if ((j = qjob_new()) == NULL)
		goto later;
	if (qjob_add_event(j, m, "filter", detail) == -1)
		goto fail;
	switch (code) {
	case 0:
		rc = release_job(j, m, "filter", now);
		break;
	case 1:
		rc = state_move(j, m, MS_QUARANTINE, "filter", why[0] ? why :
		    "content filter", "filter", 1, now);
		if (rc == 0)
			rc = qjob_add_sched(j, m);
		break;
	case 2:
		snprintf(text, sizeof(text), "rejected by the content filter%s%s",
		    why[0] ? ": " : "", why);
		rc = delete_job(j, m, 1, "filter", text, "rejected", now);
		break;
	default:
		/* 75 (EX_TEMPFAIL), a signal, the timeout: again later */
		again = qs.cfg->nretry_schedule > 0 &&
		    qs.cfg->retry_schedule[0] > 0 ? qs.cfg->retry_schedule[0] :
		    60;
		if (p != NULL)
			p->filter_next = now + (time_t)again;
		rc = 0;
		break;
	}
	if (rc == -1)
		goto fail;
	sched_commit(j, m);	/* raises m->inflight for its completion */
	sched_update(m);
	sched_kick();
	return;
fail:
	qjob_free(j);
later:
	log_warnx("qid=%s filter result not recorded (out of memory); the "
	    "filter runs again", m->qid);
	if (p != NULL)
		p->filter_next = now + 60;
}
