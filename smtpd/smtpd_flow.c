#include "config.h"
/*
 * smtpd_flow.c - in_flow_delay: the reply to MAIL waits while the queue
 * holds more accepted messages waiting for their first delivery than
 * four times smtp_concurrency (queue_backlog; the limit keeps a backlog
 * within the pool of reused spool files, queue_pool.c, while a bulk
 * send of a few hundred messages to one slow destination slows nobody
 * down), as Postfix's in_flow_delay does:
 * when clients hand over mail faster than it leaves, each new
 * transaction is held for up to in_flow_delay, and released as soon as
 * a delivery starts, one waiting session per message that leaves the
 * backlog.  Acceptance then keeps pace with delivery instead of piling
 * up a queue (spool files, memory, scheduler work) that only delays
 * everything behind it.  After in_flow_delay the reply goes out anyway:
 * a slow next hop slows clients down, it never stops them.
 * Waiting sessions are a FIFO (s->flow_entry); each has its own timer
 * (s->flowtimer, made lazily).  A waiting session reads no input (its
 * pipelined commands stay buffered, smtpd_process) and no deadline runs
 * (the server's turn, smtpd_session.c deadline_next).
 * Logged once per episode: the first delay, then a summary when no
 * reply has been delayed for FLOW_QUIET_S seconds.
 */

#include <stdint.h>
#include <sys/queue.h>

#include <event2/bufferevent.h>
#include <event2/event.h>

#include "common/cfg.h"
#include "common/log.h"
#include "common/util.h"
#include "queue/queue.h"
#include "smtpd/smtpd_session.h"

#define FLOW_QUIET_S	10	/* seconds without a delay end an episode */

static TAILQ_HEAD(, smtpd_session) flow_fifo =
				    TAILQ_HEAD_INITIALIZER(flow_fifo);
static struct event		*flow_episode_ev;
static int			 flow_episode;
static uint64_t			 flow_episode_ms;	/* its first delay */
static unsigned long		 flow_delayed;		/* replies delayed in it */

#define FLOW_MULT	4	/* the limit, in units of smtp_concurrency */

/* flow_limit - the backlog from which MAIL waits */
static unsigned
flow_limit(void)
{
	return FLOW_MULT * (smtpd_cfg->smtp_concurrency > 0 ?
	    smtpd_cfg->smtp_concurrency : 1);
}

static void
flow_episode_end_cb(evutil_socket_t fd, short ev, void *arg)
{
	(void)fd; (void)ev; (void)arg;
	if (!flow_episode)
		return;
	log_info("in_flow_delay: MAIL replies no longer delayed: %lu delayed "
	    "in %.1f s", flow_delayed,
	    (double)(mono_ms() - flow_episode_ms) / 1000.0);
	flow_episode = 0;
	flow_delayed = 0;
}

/* flow_note - one more delayed reply in the current episode */
static void
flow_note(void)
{
	struct timeval	tv = { FLOW_QUIET_S, 0 };

	if (!flow_episode) {
		flow_episode = 1;
		flow_episode_ms = mono_ms();
		log_info("in_flow_delay: MAIL replies delayed: %u messages "
		    "wait for delivery (limit %u: %u x smtp_concurrency; "
		    "in_flow_delay %us)", queue_backlog(), flow_limit(),
		    FLOW_MULT, smtpd_cfg->in_flow_delay);
	}
	flow_delayed++;
	if (flow_episode_ev == NULL)
		flow_episode_ev = evtimer_new(smtpd_base, flow_episode_end_cb,
		    NULL);
	if (flow_episode_ev != NULL)
		evtimer_add(flow_episode_ev, &tv);
}

/* flow_unlink - s off the waiting list, if it is on it */
static void
flow_unlink(struct smtpd_session *s)
{
	if (s->flow_waiting)
		TAILQ_REMOVE(&flow_fifo, s, flow_entry);
	s->flow_waiting = 0;
}

/* flow_release - s waited enough: its 250, then its input again */
static void
flow_release(struct smtpd_session *s)
{
	flow_unlink(s);
	if (s->flowtimer != NULL)
		evtimer_del(s->flowtimer);
	if (s->state == SMTPD_CLOSING)
		return;
	s->cmd = "MAIL";
	s->cmdlen = 4;
	smtpd_reply(s, 250, 2, 1, 0, "Ok");
	s->cmd = NULL;
	s->cmdlen = 0;
	smtpd_flush(s);
	smtpd_resume(s);
}

static void
flow_timer_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct smtpd_session	*s = arg;

	(void)fd; (void)ev;
	flow_release(s);
}

/*
 * smtpd_flow_mail - MAIL was accepted: its 250 now, or later (the
 * session waits; the reply and its input follow in flow_release)
 */
void
smtpd_flow_mail(struct smtpd_session *s)
{
	struct timeval	tv;

	if (smtpd_cfg->in_flow_delay == 0 || queue_backlog() < flow_limit())
		goto now;
	if (s->flowtimer == NULL &&
	    (s->flowtimer = evtimer_new(smtpd_base, flow_timer_cb, s)) == NULL)
		goto now;
	tv.tv_sec = (time_t)smtpd_cfg->in_flow_delay;
	tv.tv_usec = 0;
	if (evtimer_add(s->flowtimer, &tv) == -1)
		goto now;
	s->flow_waiting = 1;
	TAILQ_INSERT_TAIL(&flow_fifo, s, flow_entry);
	flow_note();
	return;
now:
	smtpd_reply(s, 250, 2, 1, 0, "Ok");
}

/* smtpd_flow_kick - the backlog went down (queue_backlog_notify): the
 * sessions that waited longest go on while it stays under the limit */
void
smtpd_flow_kick(void)
{
	struct smtpd_session	*s;
	unsigned		 room, backlog = queue_backlog();

	room = backlog < flow_limit() ? flow_limit() - backlog : 0;
	while (room > 0 && (s = TAILQ_FIRST(&flow_fifo)) != NULL) {
		flow_release(s);
		room--;
	}
}

/* smtpd_flow_free - s goes away (or its transaction is dropped) */
void
smtpd_flow_free(struct smtpd_session *s)
{
	flow_unlink(s);
	if (s->flowtimer != NULL) {
		event_free(s->flowtimer);
		s->flowtimer = NULL;
	}
}

/* smtpd_flow_stop - the server stops: nothing waits any more */
void
smtpd_flow_stop(void)
{
	if (flow_episode_ev != NULL) {
		flow_episode_end_cb(-1, 0, NULL);
		event_free(flow_episode_ev);
		flow_episode_ev = NULL;
	}
}
