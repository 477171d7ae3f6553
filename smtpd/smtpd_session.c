#include "config.h"
/*
 * smtpd_session.c - SMTP server sessions: listeners, accept, the session
 * list, the session limits, the input loop, deadlines, close, shutdown.
 * Entry points: smtpd_server_bind/start/reload/stop/sessions (smtpd_int.h).
 * Input: command lines are read with a hard maximum (SMTPD_LINE_MAX; an
 *       overlong line is discarded up to the next LF and gets 500 5.5.2),
 *       end at LF (CRLF, or a bare LF leniently) and go to
 *       smtpd_cmd_dispatch(); in SMTPD_DATA the bytes go to
 *       smtpd_data_input(), in SMTPD_BDAT (a chunk) to smtpd_bdat_input()
 *       with a counted read (smtpd_bdat.c); DATA's deadlines apply to
 *       both (SMTPD_CONTENT_STATES).  Nothing is processed in COMMIT/TLS/CLOSING:
 *       pipelined input stays buffered (bounded by the read watermark).
 *       Submission listeners are bound after the `listen` ones and mark
 *       their sessions (s->submission); in SMTPD_AUTH lines go to
 *       smtpd_auth_input(), and nothing is read while a password check
 *       is in flight or a failed AUTH's reply is delayed (s->auth_waiting),
 *       nor while MAIL's reply waits for the queue (s->flow_waiting,
 *       in_flow_delay: smtpd_flow.c).
 * Limits: max_sessions counts the sessions still talking; when they
 *       reach it the listeners pause (new clients wait in the listen
 *       backlog) and they resume as soon as one stops talking, logged
 *       once per episode.  For clients outside client_limit_exceptions,
 *       max_sessions_per_client (421 4.7.0 "Too many connections from
 *       your address"; the counts live in smtpd_clients.c).  Both slots
 *       are released as soon as the session has said its 221 or 421 or
 *       its client has gone (smtpd_session_silent), before the session
 *       is freed.
 * Deadlines (DESIGN.md "Timeouts"): smtpd_timeout bounds each idle wait
 *       and each command line from its first octet (421 4.4.2); in DATA
 *       it bounds each idle wait, and after smtpd_data_rate_grace the
 *       average rate since the 354 must stay >= smtpd_data_min_rate
 *       (checked every second).  STARTTLS handshakes and the final flush
 *       are bounded by smtpd_timeout too.  No deadline runs in the
 *       server's turn (COMMIT, or s->auth_waiting: a password check or
 *       a delayed AUTH reply, or in_flow_delay); the client's wait starts anew when it
 *       ends (smtpd_resume).  One timer per session, moved
 *       lazily: input only records when the wait began (a store, no timer
 *       call per read); the timer, when it fires early, re-arms itself.
 * Not here: the commands (smtpd_cmd.c), DATA (smtpd_data.c), replies
 *       (smtpd_reply.c), TLS (smtpd_tls.c).
 * Memory: a session that cannot get its memory (at accept, or a read
 *       finding none for its data) gets 421 4.3.0 written straight to
 *       the socket (smtpd_oom_reply) and is closed; the daemon goes on.
 * Invariant: sessions are freed only here, from top-level callbacks.
 */

#include <sys/types.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "common/bevio.h"
#include "common/cfg.h"
#include "common/log.h"
#include "common/metrics.h"
#include "common/util.h"
#include "queue/queue.h"
#include "smtpd/smtpd_int.h"
#include "smtpd/smtpd_session.h"

const struct config	*smtpd_cfg;
struct event_base	*smtpd_base;

static int			*listen_fds;
static size_t			 nlisten_fds;
static size_t			 nplain_fds;	/* listen_fds[nplain_fds..]: submission */
static char			 submission_mark;	/* accept_cb arg of those */
static struct evconnlistener	**listeners;
static struct event		*listen_retry;
static struct smtpd_session	*sessions;
static size_t			 nsessions;	/* allocated */
static struct smtpd_session	**idtab;	/* by id, idcap buckets */
static size_t			 idcap;		/* 0 or a power of two */
static size_t			 ntalking;	/* counted against max_sessions */
static int			 paused;	/* listeners off at max_sessions */
/*
 * An episode at max_sessions: from the first pause until the listeners
 * have stayed on for EPISODE_QUIET_MS.  Under a steady overload they go
 * off and on with every session that ends; the log says when an episode
 * begins and how long it lasted, not each pause.
 */
#define EPISODE_QUIET_MS	1000
static int			 episode;
static uint64_t			 episode_ms;	/* its first pause */
static uint64_t			 resumed_ms;	/* its last resume */
static unsigned long		 episode_pauses;
static struct event		*episode_ev;	/* ends it after the quiet */
static uint64_t			 next_id = 1;
static int			 stopping;
static void			(*stop_done)(void);

static const char *state_names[SMTPD_NSTATES] = {
	"GREETING", "READY", "MAIL", "RCPT", "DATA", "COMMIT", "TLS", "CLOSING",
	"AUTH", "BDAT"
};

static void	smtpd_read_cb(struct bufferevent *, void *);
static void	smtpd_write_cb(struct bufferevent *, void *);
static void	smtpd_event_cb(struct bufferevent *, short, void *);
static void	smtpd_session_free(struct smtpd_session *);
static void	smtpd_process(struct smtpd_session *);
static void	deadline_arm(struct smtpd_session *, uint64_t);

/* states in which the client is to send a line (a command, an AUTH response) */
#define SMTPD_LINE_STATES	(SMTPD_CMD_STATES | SMTPD_S(SMTPD_AUTH))
#define SMTPD_RATE_CHECK_MS	1000	/* smtpd_data_min_rate: check period */

/* smtpd_state_name - enum -> text */
const char *
smtpd_state_name(enum smtpd_state st)
{
	return (st < SMTPD_NSTATES) ? state_names[st] : "?";
}

/* smtpd_set_state - the only place that assigns a session's state */
void
smtpd_set_state(struct smtpd_session *s, enum smtpd_state st)
{
	enum smtpd_state old = s->state;

	if (old == st)
		return;
	log_debug("session=%s state %s -> %s", s->sid,
	    smtpd_state_name(old), smtpd_state_name(st));
	s->state = st;
	if (st == SMTPD_CLOSING)
		smtpd_session_silent(s);	/* its 221 or 421 is said */
	/* between commands smtpd_process() tracks the waits; anything
	 * else (DATA, COMMIT, TLS, CLOSING, back to commands) starts anew */
	if ((SMTPD_LINE_STATES & SMTPD_S(old)) &&
	    (SMTPD_LINE_STATES & SMTPD_S(st)))
		return;
	s->wait_since = mono_ms();
	s->in_line = 0;
	deadline_arm(s, s->wait_since);
}

int
smtpd_stopping(void)
{
	return stopping;
}

/* id_bucket - the id table's bucket of id (ids are sequential, so the
 * low bits spread them evenly) */
static struct smtpd_session **
id_bucket(uint64_t id)
{
	return &idtab[id & (idcap - 1)];
}

/* id_grow - double the id table when the sessions outnumber its buckets
 * (out of memory: the chains grow longer, lookups stay correct) */
static void
id_grow(void)
{
	struct smtpd_session	**nt, **old = idtab, *s, *next;
	size_t			  i, oldcap = idcap, ncap;

	ncap = idcap != 0 ? idcap * 2 : 64;
	if ((nt = calloc(ncap, sizeof(*nt))) == NULL)
		return;
	idtab = nt;
	idcap = ncap;
	for (i = 0; i < oldcap; i++)
		for (s = old[i]; s != NULL; s = next) {
			next = s->hnext;
			s->hnext = *id_bucket(s->id);
			*id_bucket(s->id) = s;
		}
	free(old);
}

/* id_add, id_remove - s into and out of the id table */
static void
id_add(struct smtpd_session *s)
{
	if (nsessions > idcap)
		id_grow();
	if (idcap == 0)
		return;
	s->hnext = *id_bucket(s->id);
	*id_bucket(s->id) = s;
}

static void
id_remove(struct smtpd_session *s)
{
	struct smtpd_session	**pp;

	if (idcap == 0)
		return;
	for (pp = id_bucket(s->id); *pp != NULL; pp = &(*pp)->hnext)
		if (*pp == s) {
			*pp = s->hnext;
			return;
		}
}

/* smtpd_session_find - a session by id, or NULL when it has closed: one
 * bucket of the id table, not a walk over every session (it runs once
 * per accepted message) */
struct smtpd_session *
smtpd_session_find(uint64_t id)
{
	struct smtpd_session *s;

	if (idcap == 0) {		/* the table could never be made */
		for (s = sessions; s != NULL; s = s->next)
			if (s->id == id)
				return s;
		return NULL;
	}
	for (s = *id_bucket(id); s != NULL; s = s->hnext)
		if (s->id == id)
			return s;
	return NULL;
}

/* smtpd_txn_free - end the transaction; an open body file is discarded */
void
smtpd_txn_free(struct smtpd_session *s)
{
	struct smtpd_txn *t = s->txn;

	smtpd_milter_abort(s);
	if (t == NULL)
		return;
	if (t->fd != -1 && t->m != NULL)
		queue_body_discard(t->m->qid, t->fd);
	if (t->m != NULL)
		qmsg_free(t->m);
	free(t->wbuf);
	free(t);
	s->txn = NULL;
}

/* ---------------------------------------------------------------- bind */

static int
smtpd_bind_one(const struct cfg_addr *a, char *err, size_t errlen)
{
	const char	*failed;
	int		 fd, *nfds, on = 1;

	if ((fd = tcp_listen((const struct sockaddr *)&a->ss, a->len,
	    &failed)) == -1) {
		snprintf(err, errlen, "listen %s: %s%s%s", a->text,
		    failed ? failed : "", failed ? ": " : "", strerror(errno));
		return -1;
	}
	/* replies go out at once (each round of them is one write); on
	 * Linux accepted sockets inherit the option from the listener,
	 * which saves a system call per connection (smtpd_accept_cb) */
	if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on)) == -1)
		log_warn("listen %s: setsockopt TCP_NODELAY", a->text);
	if ((nfds = realloc(listen_fds, (nlisten_fds + 1) *
	    sizeof(*nfds))) == NULL) {
		snprintf(err, errlen, "listen %s: %s", a->text,
		    strerror(errno));
		close(fd);
		return -1;
	}
	listen_fds = nfds;
	listen_fds[nlisten_fds++] = fd;
	return 0;
}

/* smtpd_server_bind - socket/bind/listen every cfg->listen address,
 * then every cfg->submission address */
int
smtpd_server_bind(const struct config *cfg, char *err, size_t errlen)
{
	size_t i;

	for (i = 0; i < cfg->nlisten; i++)
		if (smtpd_bind_one(&cfg->listen[i], err, errlen) == -1)
			goto fail;
	nplain_fds = nlisten_fds;
	for (i = 0; i < cfg->nsubmission; i++)
		if (smtpd_bind_one(&cfg->submission[i], err, errlen) == -1)
			goto fail;
	return 0;
fail:
	for (i = 0; i < nlisten_fds; i++)
		close(listen_fds[i]);
	free(listen_fds);
	listen_fds = NULL;
	nlisten_fds = 0;
	nplain_fds = 0;
	return -1;
}

/* -------------------------------------------------------------- accept */

/* listeners_pause - max_sessions reached: accept nothing more, so new
 * clients wait in the listen backlog (as Postfix's and OpenSMTPD's do) */
static void
listeners_pause(void)
{
	size_t	i;

	if (paused || stopping)
		return;
	paused = 1;
	for (i = 0; i < nlisten_fds && listeners != NULL; i++)
		if (listeners[i] != NULL)
			evconnlistener_disable(listeners[i]);
	if (episode_ev != NULL)
		evtimer_del(episode_ev);
	episode_pauses++;
	if (episode)
		return;
	episode = 1;
	episode_ms = mono_ms();
	episode_pauses = 1;
	log_info("listeners paused: max_sessions %u reached",
	    smtpd_cfg->max_sessions);
}

/* episode_log - the end of an episode: its length, first pause to last
 * resume */
static void
episode_log(void)
{
	uint64_t	ms = resumed_ms - episode_ms;

	episode = 0;
	log_info("listeners resumed after %llu.%01llu s%s",
	    (unsigned long long)(ms / 1000),
	    (unsigned long long)(ms % 1000 / 100),
	    episode_pauses > 1 ? " (paused again as sessions ended)" : "");
}

/* episode_end_cb - the listeners stayed on for EPISODE_QUIET_MS */
static void
episode_end_cb(evutil_socket_t fd, short ev, void *arg)
{
	(void)fd; (void)ev; (void)arg;
	if (episode && !paused)
		episode_log();
}

/* listeners_resume - a slot is free again: accept */
static void
listeners_resume(void)
{
	struct timeval	quiet = { EPISODE_QUIET_MS / 1000,
			    EPISODE_QUIET_MS % 1000 * 1000 };
	size_t		i;

	if (!paused || stopping)
		return;
	paused = 0;
	for (i = 0; i < nlisten_fds && listeners != NULL; i++)
		if (listeners[i] != NULL)
			evconnlistener_enable(listeners[i]);
	resumed_ms = mono_ms();
	if (episode_ev == NULL || evtimer_add(episode_ev, &quiet) == -1)
		episode_log();
}

/* smtpd_session_silent - s no longer talks (it said 221 or 421, or its
 * client has gone): it leaves max_sessions and its per-client count at
 * once, though it may live on until its output or commit is done */
void
smtpd_session_silent(struct smtpd_session *s)
{
	if (!s->talking)
		return;
	s->talking = 0;
	smtpd_client_release(s);
	if (--ntalking < smtpd_cfg->max_sessions)
		listeners_resume();
}

/* smtpd_session_attach_cb - our callbacks, watermark and write timeout
 * on bev (reads are bounded by the session's deadlines, not by bev);
 * -1 when memory is short */
int
smtpd_session_attach_cb(struct smtpd_session *s, struct bufferevent *bev)
{
	struct timeval tv;

	tv.tv_sec = smtpd_cfg->smtpd_timeout > 0 ? smtpd_cfg->smtpd_timeout : 300;
	tv.tv_usec = 0;
	if (bev_read_limit(bev, SMTPD_READ_HIWAT) == -1)
		return -1;
	bufferevent_setcb(bev, smtpd_read_cb, smtpd_write_cb, smtpd_event_cb, s);
	bufferevent_set_timeouts(bev, NULL, &tv);
	return 0;
}

/*
 * smtpd_oom_reply - 421 4.3.0 straight to the socket, when memory is too
 * short for a session or its buffers: nothing allocated, nothing waited
 * for (a full socket buffer loses it; the close follows anyway).
 */
void
smtpd_oom_reply(int fd)
{
	char	line[320];
	int	n;

	n = snprintf(line, sizeof(line), "421 4.3.0 %s Error: out of memory, "
	    "try again later\r\n", smtpd_cfg->hostname);
	if (n > 0 && (size_t)n < sizeof(line))
		(void)send(fd, line, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT);
	metrics_smtp_reject(421);
}

static void	smtpd_timer_cb(evutil_socket_t, short, void *);

static void
smtpd_accept_cb(struct evconnlistener *l, evutil_socket_t fd,
    struct sockaddr *sa, int salen, void *arg)
{
	struct smtpd_session	*s;
	int			 r;

	(void)l;
#ifndef __linux__
	{
		int on = 1;	/* Linux: inherited from the listener */

		if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on,
		    sizeof(on)) == -1)
			log_warn("setsockopt TCP_NODELAY");
	}
#endif
	if ((s = calloc(1, sizeof(*s))) == NULL) {
		log_warn("session: calloc");
		smtpd_oom_reply(fd);
		close(fd);
		return;
	}
	s->id = next_id++;
	s->submission = (arg != NULL);
	snprintf(s->sid, sizeof(s->sid), "%06llx", (unsigned long long)s->id);
	if (salen > 0 && (size_t)salen <= sizeof(s->ss))
		memcpy(&s->ss, sa, (size_t)salen);
	if (sockaddr_text((struct sockaddr *)&s->ss, s->addr, sizeof(s->addr)) == -1)
		snprintf(s->addr, sizeof(s->addr), "unknown");
	if (s->ss.ss_family == AF_INET)
		s->port = ntohs(((struct sockaddr_in *)&s->ss)->sin_port);
	else if (s->ss.ss_family == AF_INET6)
		s->port = ntohs(((struct sockaddr_in6 *)&s->ss)->sin6_port);
	s->state = SMTPD_GREETING;
	s->wait_since = mono_ms();
	if ((s->timer = evtimer_new(smtpd_base, smtpd_timer_cb, s)) == NULL) {
		log_warnx("session=%s evtimer_new failed", s->sid);
		smtpd_oom_reply(fd);
		close(fd);
		free(s);
		return;
	}
	s->bev = bufferevent_socket_new(smtpd_base, fd,
	    BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	if (s->bev == NULL || smtpd_session_attach_cb(s, s->bev) == -1) {
		log_warnx("session=%s %s failed: out of memory", s->sid,
		    s->bev == NULL ? "bufferevent_socket_new" :
		    "bufferevent_setwatermark");
		smtpd_oom_reply(fd);
		if (s->bev != NULL)
			bufferevent_free(s->bev);	/* closes fd */
		else
			close(fd);
		event_free(s->timer);
		free(s);
		return;
	}
	s->next = sessions;
	if (sessions != NULL)
		sessions->prev = s;
	sessions = s;
	nsessions++;
	metrics_smtp_session(1);
	id_add(s);
	s->talking = 1;
	if (++ntalking >= smtpd_cfg->max_sessions)
		listeners_pause();
	/* writes: smtpd_flush; libevent's write event only for a rest
	 * (a new bufferevent has EV_WRITE enabled) */
	bufferevent_disable(s->bev, EV_WRITE);
	bufferevent_enable(s->bev, EV_READ);
	log_info("session=%s connect from [%s]:%u%s", s->sid, s->addr, s->port,
	    s->submission ? " (submission)" : "");

	s->cmd = "(connect)";
	s->cmdlen = strlen(s->cmd);
	if (!cfg_client_exempt(smtpd_cfg, (struct sockaddr *)&s->ss) &&
	    (r = smtpd_client_take(s, smtpd_cfg->max_sessions_per_client)) != 0) {
		if (r == 1)
			smtpd_reply(s, 421, 4, 7, 0, "%s Too many connections "
			    "from your address, try again later",
			    smtpd_cfg->hostname);
		else {
			log_warn("session=%s per-client count", s->sid);
			smtpd_reply(s, 421, 4, 3, 0, "%s Error: local error, "
			    "try again later", smtpd_cfg->hostname);
		}
		return;
	}
	s->cmd = NULL;
	s->cmdlen = 0;
	if (smtpd_milter_connect(s) == 1)
		return;			/* the greeting follows (smtpd_milter.c) */
	smtpd_reply(s, 220, SMTPD_NOENH, "%s ESMTP Waymark", smtpd_cfg->hostname);
	deadline_arm(s, s->wait_since);
}

static void
smtpd_listen_retry_cb(evutil_socket_t fd, short ev, void *arg)
{
	size_t i;

	(void)fd; (void)ev; (void)arg;
	if (paused)
		return;			/* listeners_resume enables them */
	for (i = 0; i < nlisten_fds && listeners != NULL; i++)
		if (listeners[i] != NULL)
			evconnlistener_enable(listeners[i]);
}

/* smtpd_accept_error_cb - EMFILE & co: pause accepting for a second */
static void
smtpd_accept_error_cb(struct evconnlistener *l, void *arg)
{
	struct timeval	tv = { 1, 0 };
	size_t		i;

	(void)l; (void)arg;
	log_warn("accept");
	for (i = 0; i < nlisten_fds; i++)
		if (listeners[i] != NULL)
			evconnlistener_disable(listeners[i]);
	if (listen_retry != NULL)
		evtimer_add(listen_retry, &tv);
}

/* smtpd_server_start - TLS context, listeners on the bound sockets */
int
smtpd_server_start(const struct config *cfg, struct event_base *base,
    char *err, size_t errlen)
{
	size_t i;

	smtpd_cfg = cfg;
	smtpd_base = base;
	if (smtpd_tls_init(cfg, err, errlen) == -1)
		return -1;
	if ((listeners = calloc(nlisten_fds + 1, sizeof(*listeners))) == NULL) {
		snprintf(err, errlen, "listeners: %s", strerror(errno));
		return -1;
	}
	listen_retry = evtimer_new(base, smtpd_listen_retry_cb, NULL);
	episode_ev = evtimer_new(base, episode_end_cb, NULL);
	for (i = 0; i < nlisten_fds; i++) {
		/* the callback argument marks submission listeners */
		/* backlog 0: tcp_listen() listened with SOMAXCONN already;
		 * libevent's -1 would listen() again with 128 */
		listeners[i] = evconnlistener_new(base, smtpd_accept_cb,
		    i >= nplain_fds ? (void *)&submission_mark : NULL,
		    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 0,
		    listen_fds[i]);
		if (listeners[i] == NULL) {
			snprintf(err, errlen, "evconnlistener_new failed");
			return -1;
		}
		evconnlistener_set_error_cb(listeners[i], smtpd_accept_error_cb);
	}
	queue_backlog_notify(smtpd_flow_kick);	/* in_flow_delay */
	log_info("smtpd: listening on %zu address%s (%zu submission)%s",
	    nlisten_fds, nlisten_fds == 1 ? "" : "es", nlisten_fds - nplain_fds,
	    smtpd_tls_available() ? ", STARTTLS enabled" : "");
	return 0;
}

/* smtpd_server_reload - the new cfg for new commands and sessions */
void
smtpd_server_reload(const struct config *cfg)
{
	char err[512];

	smtpd_cfg = cfg;
	if (smtpd_tls_init(cfg, err, sizeof(err)) == -1)
		log_warnx("smtpd: reload: %s (keeping the previous TLS setup)",
		    err);
	if (ntalking >= cfg->max_sessions)
		listeners_pause();
	else
		listeners_resume();
}

size_t
smtpd_server_sessions(void)
{
	return nsessions;
}

static void
smtpd_stop_done_cb(evutil_socket_t fd, short ev, void *arg)
{
	void (*done)(void) = stop_done;

	(void)fd; (void)ev; (void)arg;
	stop_done = NULL;
	free(idtab);			/* no session left */
	idtab = NULL;
	idcap = 0;
	if (done != NULL)
		done();
}

static void
smtpd_stop_done_later(void)
{
	struct timeval tv = { 0, 0 };

	if (stop_done == NULL)
		return;
	if (event_base_once(smtpd_base, -1, EV_TIMEOUT, smtpd_stop_done_cb,
	    NULL, &tv) == -1)
		smtpd_stop_done_cb(-1, 0, NULL);
}

/* smtpd_server_stop - stop accepting, end every session with 421 4.3.2 */
void
smtpd_server_stop(void (*done)(void))
{
	struct smtpd_session	*s, *next;
	size_t			 i;

	stopping = 1;
	stop_done = done;
	queue_backlog_notify(NULL);
	smtpd_flow_stop();
	for (i = 0; i < nlisten_fds && listeners != NULL; i++)
		if (listeners[i] != NULL) {
			evconnlistener_free(listeners[i]);
			listeners[i] = NULL;
		}
	nlisten_fds = 0;
	if (listen_retry != NULL) {
		event_free(listen_retry);
		listen_retry = NULL;
	}
	if (episode_ev != NULL) {
		event_free(episode_ev);
		episode_ev = NULL;
	}
	for (s = sessions; s != NULL; s = next) {
		next = s->next;
		switch (s->state) {
		case SMTPD_COMMIT:
			s->stop_after_commit = 1;	/* 250 first, then 421 */
			break;
		case SMTPD_CLOSING:
			break;
		case SMTPD_TLS:
			smtpd_session_free(s);
			break;
		default:
			smtpd_txn_free(s);
			s->cmd = "(shutdown)";
			s->cmdlen = strlen(s->cmd);
			smtpd_reply(s, 421, 4, 3, 2, "%s Service shutting down",
			    smtpd_cfg->hostname);
			break;
		}
	}
	if (nsessions == 0) {
		smtpd_clients_free();
		smtpd_stop_done_later();
	}
}

/* ----------------------------------------------------------- deadlines */

/* timeout_ms - smtpd_timeout in milliseconds */
static uint64_t
timeout_ms(void)
{
	return (uint64_t)(smtpd_cfg->smtpd_timeout > 0 ?
	    smtpd_cfg->smtpd_timeout : 300) * 1000;
}

/* server_waits - s waits for the server: a delayed AUTH reply or a
 * password check, a milter, or MAIL's reply (in_flow_delay) */
static int
server_waits(const struct smtpd_session *s)
{
	return s->auth_waiting || s->milter_waiting || s->flow_waiting;
}

/* deadline_next - when the timer must look at s next (ms), 0 = never */
static uint64_t
deadline_next(const struct smtpd_session *s, uint64_t now)
{
	uint64_t next, rate;

	if (s->state == SMTPD_COMMIT || server_waits(s))
		return 0;		/* the server's turn: the queue commit, a
					 * password check, a delayed AUTH reply,
					 * a milter or in_flow_delay */
	next = s->wait_since + timeout_ms();
	if ((SMTPD_CONTENT_STATES & SMTPD_S(s->state)) && s->txn != NULL &&
	    smtpd_cfg->smtpd_data_min_rate > 0) {
		rate = s->txn->data_start +
		    (uint64_t)smtpd_cfg->smtpd_data_rate_grace * 1000;
		if (rate <= now)
			rate = now + SMTPD_RATE_CHECK_MS;
		if (rate < next)
			next = rate;
	}
	return next;
}

/* deadline_arm - make the timer fire no later than s's next deadline;
 * a timer already due earlier is left alone (it looks again then) */
static void
deadline_arm(struct smtpd_session *s, uint64_t now)
{
	struct timeval	tv;
	uint64_t	next, d;

	if (s->timer == NULL || (next = deadline_next(s, now)) == 0)
		return;
	if (s->timer_at != 0 && s->timer_at <= next)
		return;
	d = next > now ? next - now : 1;
	tv.tv_sec = (time_t)(d / 1000);
	tv.tv_usec = (suseconds_t)(d % 1000) * 1000;
	if (evtimer_add(s->timer, &tv) == 0)
		s->timer_at = next;
}

/* deadline_input - input was used: where did the client's wait begin? */
static void
deadline_input(struct smtpd_session *s, struct evbuffer *in)
{
	uint64_t now;

	if (SMTPD_CONTENT_STATES & SMTPD_S(s->state)) {
		/* each idle wait within DATA: a store per read, no timer call */
		now = mono_ms();
		s->wait_since = now;
		if (s->timer_at == 0)
			deadline_arm(s, now);
		return;
	}
	if (!(SMTPD_LINE_STATES & SMTPD_S(s->state)))
		return;
	if (evbuffer_get_length(in) > 0 || s->skipping) {
		if (s->in_line)
			return;		/* the line's clock runs from its first octet */
		s->in_line = 1;
	} else
		s->in_line = 0;		/* an idle wait begins */
	now = mono_ms();
	s->wait_since = now;
	deadline_arm(s, now);
}

/* deadline_expired - 421 4.4.2; a transaction in progress is discarded */
static void
deadline_expired(struct smtpd_session *s, const char *why, const char *text)
{
	log_info("session=%s timeout in state %s: %s", s->sid,
	    smtpd_state_name(s->state), why);
	smtpd_txn_free(s);
	s->cmd = "(timeout)";
	s->cmdlen = strlen(s->cmd);
	smtpd_reply(s, 421, 4, 4, 2, "%s %s", smtpd_cfg->hostname, text);
}

/* smtpd_timer_cb - a deadline (or a DATA rate check) is due */
static void
smtpd_timer_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct smtpd_session	*s = arg;
	struct smtpd_txn	*t = s->txn;
	uint64_t		 now = mono_ms(), elapsed, min;
	int			 late;

	(void)fd; (void)ev;
	s->timer_at = 0;
	if (s->state == SMTPD_COMMIT || server_waits(s))
		return;			/* armed again when the server's turn
					 * ends (smtpd_resume) */
	late = now >= s->wait_since + timeout_ms();
	switch (s->state) {
	case SMTPD_CLOSING:
	case SMTPD_TLS:
		if (!late)
			break;
		log_info("session=%s timeout in state %s", s->sid,
		    smtpd_state_name(s->state));
		smtpd_session_free(s);
		return;
	case SMTPD_DATA:
	case SMTPD_BDAT:	/* a chunk: the same rules, rate per chunk */
		if (late) {
			deadline_expired(s, "no data",
			    "Error: timeout exceeded");
			return;
		}
		min = smtpd_cfg->smtpd_data_min_rate;
		if (t == NULL || min == 0 || now < t->data_start +
		    (uint64_t)smtpd_cfg->smtpd_data_rate_grace * 1000 ||
		    now <= t->data_start)
			break;
		elapsed = now - t->data_start;
		if (t->received * 1000 < min * elapsed) {
			log_info("session=%s data rate too low: %llu octets in "
			    "%llu ms, minimum %llu per second", s->sid,
			    (unsigned long long)t->received,
			    (unsigned long long)elapsed,
			    (unsigned long long)min);
			deadline_expired(s, "data rate too low",
			    "Timeout: data rate too low");
			return;
		}
		break;
	default:
		if (late) {
			deadline_expired(s, s->in_line ?
			    "command line not completed" : "no command",
			    "Error: timeout exceeded");
			return;
		}
		break;
	}
	deadline_arm(s, now);
}

/* --------------------------------------------------------------- close */

static void
smtpd_session_free(struct smtpd_session *s)
{
	char counters[512];

	if (smtpd_cmd_counters(s, counters, sizeof(counters)) == -1)
		counters[0] = '\0';
	log_info("session=%s disconnect from [%s]%s%s", s->sid, s->addr,
	    counters[0] != '\0' ? " " : "", counters);
	smtpd_session_silent(s);
	smtpd_txn_free(s);
	smtpd_auth_free(s);
	smtpd_milter_free(s);
	smtpd_flow_free(s);
	if (s->bev != NULL)
		bufferevent_free(s->bev);
	if (s->closetimer != NULL)
		event_free(s->closetimer);
	if (s->timer != NULL)
		event_free(s->timer);
	if (s->prev != NULL)
		s->prev->next = s->next;
	else
		sessions = s->next;
	if (s->next != NULL)
		s->next->prev = s->prev;
	id_remove(s);
	nsessions--;
	metrics_smtp_session(-1);
	free(s->helo);
	free(s->tls_info);
	free(s);
	if (stopping && nsessions == 0) {
		smtpd_clients_free();
		smtpd_stop_done_later();
	}
}

/* smtpd_try_close - free s when its output is flushed, else wait */
static void
smtpd_try_close(struct smtpd_session *s)
{
	if (bev_flushed(s->bev, s->closetimer))
		smtpd_session_free(s);
}

static void
smtpd_close_timer_cb(evutil_socket_t fd, short ev, void *arg)
{
	(void)fd; (void)ev;
	smtpd_try_close(arg);
}

/*
 * smtpd_flush - hand the pending replies to the kernel.  On a plain
 * socket in a command or data state, libevent's write event stays off
 * (it costs an epoll_ctl to arm, an epoll_wait and an epoll_ctl to
 * disarm per reply): the replies are written here, at the end of each
 * round of input and after any reply sent from outside it, and the
 * write event is enabled only for what the socket did not take (its
 * write callback and write timeout then work as before).  With TLS,
 * and for the 220 to STARTTLS (the write callback starts TLS once it
 * is out), libevent writes everything.
 */
void
smtpd_flush(struct smtpd_session *s)
{
	struct evbuffer	*out = bufferevent_get_output(s->bev);

	if (evbuffer_get_length(out) == 0)
		return;
	if (s->tls || s->state == SMTPD_TLS ||
	    bufferevent_get_underlying(s->bev) != NULL) {
		bufferevent_enable(s->bev, EV_WRITE);
		return;
	}
	bev_write_now(s->bev);
}

/* smtpd_close_after_flush - stop reading; close once replies are sent */
void
smtpd_close_after_flush(struct smtpd_session *s)
{
	struct timeval tv = { 0, 0 };

	smtpd_set_state(s, SMTPD_CLOSING);
	smtpd_flush(s);
	bufferevent_disable(s->bev, EV_READ);
	if (s->closetimer == NULL)
		s->closetimer = evtimer_new(smtpd_base, smtpd_close_timer_cb, s);
	/* checked from the loop, never from inside command processing */
	if (s->closetimer != NULL)
		evtimer_add(s->closetimer, &tv);
}

/* ---------------------------------------------------------------- input */

/*
 * smtpd_read_line - take one command line out of in into line.
 * Returns its length without the line end (>= 0), -1 when no complete
 * line is buffered yet, -2 when an overlong line was discarded.
 */
static ssize_t
smtpd_read_line(struct smtpd_session *s, struct evbuffer *in, char *line)
{
	struct evbuffer_ptr	p;
	size_t			avail, n;

	avail = evbuffer_get_length(in);
	if (avail == 0)
		return -1;
	p = evbuffer_search_eol(in, NULL, NULL, EVBUFFER_EOL_LF);
	if (p.pos == -1) {
		if (avail >= SMTPD_LINE_MAX) {
			/* cap what we hold: drop it, skip to the next LF */
			evbuffer_drain(in, avail);
			s->skipping = 1;
		}
		return -1;
	}
	n = (size_t)p.pos + 1;
	if (s->skipping || n > SMTPD_LINE_MAX) {
		evbuffer_drain(in, n);
		s->skipping = 0;
		return -2;
	}
	if (evbuffer_remove(in, line, n) != (int)n)
		return -2;
	n--;			/* LF */
	if (n > 0 && line[n - 1] == '\r')
		n--;
	line[n] = '\0';
	return (ssize_t)n;
}

/* smtpd_process - handle buffered input in order, as the state allows */
static void
smtpd_process(struct smtpd_session *s)
{
	static char	 line[SMTPD_LINE_MAX + 1];
	struct evbuffer	*in, *out;
	ssize_t		 n;

	in = bufferevent_get_input(s->bev);
	out = bufferevent_get_output(s->bev);
	s->in_process++;
	for (;;) {
		if (s->out_blocked || server_waits(s))
			goto out;	/* a reply still to come */
		if (evbuffer_get_length(out) > SMTPD_OUT_MAX) {
			smtpd_flush(s);
			if (evbuffer_get_length(out) > SMTPD_OUT_MAX) {
				/* the client does not read its replies;
				 * the write callback resumes */
				s->out_blocked = 1;
				bufferevent_enable(s->bev, EV_WRITE);
				goto out;
			}
		}
		if (s->state == SMTPD_DATA) {
			if (smtpd_data_input(s, in) == 0)
				break;		/* needs more input */
			continue;
		}
		if (s->state == SMTPD_BDAT) {
			if (smtpd_bdat_input(s, in) == 0)
				break;		/* needs more of the chunk */
			continue;
		}
		if (s->state == SMTPD_AUTH) {
			n = smtpd_read_line(s, in, line);
			if (n == -1)
				break;
			s->in_line = 0;
			if (n == -2) {
				s->cmd = "(AUTH response)";
				s->cmdlen = strlen(s->cmd);
				smtpd_auth_abort(s, 500, 5, 5, 6, "Error: "
				    "authentication exchange line is too long");
			} else
				smtpd_auth_input(s, line, (size_t)n);
			s->cmd = NULL;
			s->cmdlen = 0;
			continue;
		}
		if (!(SMTPD_CMD_STATES & SMTPD_S(s->state)))
			goto out;	/* COMMIT, TLS, CLOSING */
		if (s->bdat_skip > 0 && smtpd_bdat_skip(s, in) == 1)
			break;		/* a refused chunk: more to drop */
		n = smtpd_read_line(s, in, line);
		if (n == -1)
			break;
		s->in_line = 0;
		if (n == -2) {
			s->cmd = "(overlong line)";
			s->cmdlen = strlen(s->cmd);
			s->count[SMTPD_NVERBS - 1]++;
			smtpd_reply(s, 500, 5, 5, 2, "Error: Line too long");
			continue;
		}
		smtpd_cmd_dispatch(s, line, (size_t)n);
		s->cmd = NULL;
		s->cmdlen = 0;
	}
	deadline_input(s, in);
	/* all buffered input used: a half-closed client is done */
	if (s->peer_eof && (SMTPD_CMD_STATES & SMTPD_S(s->state) ||
	    SMTPD_CONTENT_STATES & SMTPD_S(s->state) ||
	    s->state == SMTPD_AUTH)) {
		if (s->txn != NULL)
			log_info("session=%s lost connection in state %s",
			    s->sid, smtpd_state_name(s->state));
		smtpd_txn_free(s);
		smtpd_close_after_flush(s);
	}
out:
	s->in_process--;
	smtpd_flush(s);
}

/* smtpd_resume - the server's turn is over (a commit, a password check,
 * a delayed AUTH reply): the client's wait begins now, with a deadline
 * armed even if the held input cannot be used yet; held input is
 * processed later, from the loop */
void
smtpd_resume(struct smtpd_session *s)
{
	uint64_t	 now;

	if (SMTPD_LINE_STATES & SMTPD_S(s->state)) {
		now = mono_ms();
		s->in_line = 0;
		s->wait_since = now;
		deadline_arm(s, now);
	}
	bev_read_again(s->bev, s->peer_eof);
}

static void
smtpd_read_cb(struct bufferevent *bev, void *arg)
{
	(void)bev;
	smtpd_process(arg);
}

static void
smtpd_write_cb(struct bufferevent *bev, void *arg)
{
	struct smtpd_session *s = arg;

	(void)bev;
	switch (s->state) {
	case SMTPD_CLOSING:
		smtpd_try_close(s);
		return;
	case SMTPD_TLS:
		if (bufferevent_get_underlying(s->bev) != NULL)
			return;		/* handshake already running */
		if (smtpd_tls_start(s) == -1)
			smtpd_session_free(s);
		return;
	default:
		break;
	}
	if (s->out_blocked) {
		s->out_blocked = 0;
		smtpd_process(s);
	}
}

static void
smtpd_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct smtpd_session *s = arg;

	(void)bev;
	if (what & BEV_EVENT_CONNECTED) {
		smtpd_tls_connected(s);
		smtpd_process(s);
		return;
	}
	if (what & BEV_EVENT_TIMEOUT) {
		/* only writes have a bufferevent timeout: the client does
		 * not read its replies, so no reply can reach it */
		log_info("session=%s timeout in state %s: client not reading",
		    s->sid, smtpd_state_name(s->state));
		smtpd_session_free(s);
		return;
	}
	if (what & BEV_EVENT_ERROR) {
		/* a read that found no memory for its data: say so */
		if (EVUTIL_SOCKET_ERROR() == ENOMEM && s->state != SMTPD_TLS &&
		    s->state != SMTPD_CLOSING &&
		    bufferevent_get_underlying(s->bev) == NULL)
			smtpd_oom_reply(bufferevent_getfd(s->bev));
		if (s->state == SMTPD_TLS)
			smtpd_tls_log_error(s, what);
		else if (s->state != SMTPD_CLOSING)
			log_info("session=%s lost connection in state %s: %s",
			    s->sid, smtpd_state_name(s->state),
			    EVUTIL_SOCKET_ERROR() != 0 ?
			    evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()) :
			    "error");
		smtpd_session_free(s);
		return;
	}
	if (what & BEV_EVENT_EOF) {
		if (s->state == SMTPD_TLS || s->state == SMTPD_CLOSING) {
			if (s->state == SMTPD_TLS)
				smtpd_tls_log_error(s, what);
			smtpd_session_free(s);
			return;
		}
		/* answer what is buffered, then close (half-closed clients);
		 * a client that has gone no longer counts */
		s->peer_eof = 1;
		smtpd_session_silent(s);
		smtpd_process(s);
		return;
	}
}
