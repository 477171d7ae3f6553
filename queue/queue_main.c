#include "config.h"
/*
 * queue_main.c - the queue module: state, start-up and shutdown, the
 * spool lock, reception (body files, queue_accept), the in-memory table
 * of unfinished messages, qmsg helpers and the record job helpers.
 * Start-up (queue_init): recover the DB environment, qid_init from the
 * persisted high-water mark, load every unfinished message (due now),
 * remove body files no unfinished message refers to, start the commit
 * thread, purge old history (then every 10 minutes).
 * Shutdown order (smtpd_main): sessions closed -> work_shutdown() (the
 * delivery jobs finish; their done callbacks still queue status
 * commits) -> queue_shutdown() (stop scheduling, drain the commit
 * thread and run its completions, join it, checkpoint, close the DBs).
 * queue_shutdown blocks the loop thread while it drains; the loop must
 * not run delivery jobs afterwards.
 */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <event2/event.h>

#include "common/cfg.h"
#include "common/log.h"
#include "common/util.h"
#include "queue/queue_int.h"

#define PURGE_INTERVAL	600	/* seconds */

struct queue_state qs;
static struct event	*purge_ev;
static int		 lock_fd = -1;

/* ---- names ---- */

static const char *const rcpt_status_names[] = {
	[RS_QUEUED] = "queued", [RS_DEFERRED] = "deferred",
	[RS_DELIVERED] = "delivered", [RS_RELAYED] = "relayed",
	[RS_TRANSFERRED] = "transferred", [RS_FAILED] = "failed",
	[RS_EXPANDED] = "expanded",
};

const char *
rcpt_status_name(enum rcpt_status s)
{
	if ((unsigned)s > RS_EXPANDED)
		return "unknown";
	return rcpt_status_names[s];
}

int
rcpt_status_final(enum rcpt_status s)
{
	return s != RS_QUEUED && s != RS_DEFERRED;
}

static const char *const msg_state_names[] = {
	[MS_NORMAL] = "normal", [MS_AUTH] = "auth", [MS_CONTENT] = "content",
	[MS_CONVERT] = "convert", [MS_MODERATION] = "moderation",
	[MS_QUARANTINE] = "quarantine", [MS_TIMED] = "timed",
	[MS_OUTBOUND] = "outbound", [MS_OTHER] = "other",
};

const char *
msg_state_name(enum msg_state s)
{
	if ((unsigned)s > MS_OTHER)
		return "unknown";
	return msg_state_names[s];
}

int
msg_state_parse(const char *s)
{
	unsigned	i;

	if (s == NULL)
		return -1;
	for (i = 0; i <= MS_OTHER; i++)
		if (strcasecmp(s, msg_state_names[i]) == 0)
			return (int)i;
	return -1;
}

/* ---- qmsg helpers ---- */

const char *
queue_hostname(void)
{
	return qs.cfg != NULL && qs.cfg->hostname != NULL &&
	    qs.cfg->hostname[0] != '\0' ? qs.cfg->hostname : "localhost";
}

struct qmsg *
qmsg_new(void)
{
	return calloc(1, sizeof(struct qmsg));
}

void
qmsg_free(struct qmsg *m)
{
	size_t	i;

	if (m == NULL)
		return;
	rec_msg_clear(m);
	free(m->state_actor);
	for (i = 0; i < m->nrcpts; i++)
		rec_rcpt_clear(&m->rcpts[i]);
	free(m->rcpts);
	for (i = 0; i < m->ntrace; i++)
		free(m->trace[i]);
	free(m->trace);
	for (i = 0; i < m->nrx_events; i++) {
		free(m->rx_events[i].kind);
		free(m->rx_events[i].detail);
	}
	free(m->rx_events);
	free(m->priv);
	free(m);
}

int
qmsg_add_rcpt(struct qmsg *m, const char *addr)
{
	struct qrcpt	*r;
	char		*a;

	if (addr == NULL || m->nrcpts >= REC_RCPT_MAX)
		return -1;
	if ((a = strdup(addr)) == NULL)
		return -1;
	if ((r = reallocarray(m->rcpts, m->nrcpts + 1, sizeof(*r))) == NULL) {
		free(a);
		return -1;
	}
	m->rcpts = r;
	r = &m->rcpts[m->nrcpts++];
	memset(r, 0, sizeof(*r));
	r->addr = a;
	r->status = RS_QUEUED;
	r->hop_dsn = r->hop_mtrk = -1;	/* not relayed yet */
	return 0;
}

/* qmsg_add_event - a reception event for queue_accept to record */
int
qmsg_add_event(struct qmsg *m, const char *kind, const char *detail)
{
	struct qmsg_rxevent	*e;
	char			*k, *d;

	if ((k = strdup(kind)) == NULL)
		return -1;
	if ((d = strdup(detail != NULL ? detail : "")) == NULL ||
	    (e = reallocarray(m->rx_events, m->nrx_events + 1,
	    sizeof(*e))) == NULL) {
		free(k);
		free(d);
		return -1;
	}
	m->rx_events = e;
	e[m->nrx_events].kind = k;
	e[m->nrx_events++].detail = d;
	return 0;
}

int
qmsg_add_trace(struct qmsg *m, const char *field)
{
	char	**t, *f;

	if (field == NULL || (f = strdup(field)) == NULL)
		return -1;
	if ((t = reallocarray(m->trace, m->ntrace + 1, sizeof(*t))) == NULL) {
		free(f);
		return -1;
	}
	m->trace = t;
	m->trace[m->ntrace++] = f;
	return 0;
}

struct qpriv *
qmsg_priv(struct qmsg *m)
{
	struct qpriv	*p;

	if (m->priv == NULL) {
		if ((p = calloc(1, sizeof(*p))) == NULL)
			return NULL;
		p->heap_idx = SIZE_MAX;
		p->gauge_idx = SIZE_MAX;
		m->priv = p;
	}
	return m->priv;
}

uint64_t
now_usec(void)
{
	struct timeval	tv;

	gettimeofday(&tv, NULL);
	return (uint64_t)tv.tv_sec * 1000000u + (uint64_t)tv.tv_usec;
}

time_t
qmsg_due(const struct qmsg *m, int skip_busy)
{
	time_t	due = 0, t;
	size_t	i;

	for (i = 0; i < m->nrcpts; i++) {
		const struct qrcpt *r = &m->rcpts[i];

		if (rcpt_status_final(r->status) || (skip_busy && r->busy))
			continue;
		t = r->next_attempt > 0 ? r->next_attempt : 1;
		if (due == 0 || t < due)
			due = t;
	}
	return due;
}

/* ---- the in-memory table (sorted by qid = arrival order) ---- */

static size_t
qmem_pos(const char *qid, int *found)
{
	size_t	lo = 0, hi = qs.nmsgs, mid;
	int	c;

	*found = 0;
	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		c = strcmp(qs.msgs[mid]->qid, qid);
		if (c == 0) {
			*found = 1;
			return mid;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

struct qmsg *
qmem_find(const char *qid)
{
	size_t	pos;
	int	found;

	if (qid == NULL)
		return NULL;
	pos = qmem_pos(qid, &found);
	return found ? qs.msgs[pos] : NULL;
}

int
qmem_insert(struct qmsg *m)
{
	struct qmsg	**n;
	size_t		  pos, ncap;
	int		  found;

	pos = qmem_pos(m->qid, &found);
	if (found)
		return -1;
	if (qs.nmsgs == qs.capmsgs) {
		ncap = qs.capmsgs ? qs.capmsgs * 2 : 64;
		if ((n = reallocarray(qs.msgs, ncap, sizeof(*n))) == NULL)
			return -1;
		qs.msgs = n;
		qs.capmsgs = ncap;
	}
	memmove(&qs.msgs[pos + 1], &qs.msgs[pos],
	    (qs.nmsgs - pos) * sizeof(*qs.msgs));
	qs.msgs[pos] = m;
	qs.nmsgs++;
	gauge_insert(m);
	return 0;
}

void
qmem_remove(struct qmsg *m)
{
	size_t	pos;
	int	found;

	fresh_clear(m);
	pos = qmem_pos(m->qid, &found);
	if (!found || qs.msgs[pos] != m)
		return;
	memmove(&qs.msgs[pos], &qs.msgs[pos + 1],
	    (qs.nmsgs - pos - 1) * sizeof(*qs.msgs));
	qs.nmsgs--;
	gauge_remove(m);
}

/* ---- record job helpers ---- */

int
qjob_add_msg(struct qjob *j, const struct qmsg *m)
{
	unsigned char	 key[QKEY_MAX], *v;
	size_t		 kl, vl;

	if ((kl = key_msg(key, m->qid)) == 0 ||
	    rec_msg_encode(m, &v, &vl) == -1)
		return -1;
	return qjob_put_own(j, QDB_MESSAGES, key, kl, v, vl);
}

int
qjob_add_rcpt(struct qjob *j, const struct qmsg *m, size_t i)
{
	unsigned char	 key[QKEY_MAX], *v;
	size_t		 kl, vl;

	if (i > REC_RCPT_MAX ||
	    (kl = key_rcpt(key, m->qid, (uint16_t)i)) == 0 ||
	    rec_rcpt_encode(&m->rcpts[i], &v, &vl) == -1)
		return -1;
	return qjob_put_own(j, QDB_RECIPIENTS, key, kl, v, vl);
}

int
qjob_add_event(struct qjob *j, struct qmsg *m, const char *kind,
    const char *detail)
{
	unsigned char	 key[QKEY_MAX], *v;
	struct qevent	 e;
	size_t		 kl, vl;

	e.time_usec = now_usec();
	e.kind = (char *)kind;
	e.detail = (char *)detail;
	if ((kl = key_event(key, m->qid, m->next_seq)) == 0 ||
	    rec_event_encode(&e, &v, &vl) == -1)
		return -1;
	m->next_seq++;
	return qjob_put_own(j, QDB_EVENTS, key, kl, v, vl);
}

int
qjob_add_sched(struct qjob *j, struct qmsg *m)
{
	unsigned char	 key[QKEY_MAX];
	struct qpriv	*p;
	time_t		 due;
	size_t		 kl;

	if ((p = qmsg_priv(m)) == NULL)
		return -1;
	due = m->done_time ? 0 : qmsg_due(m, 0);
	if (due == p->sched_time)
		return 0;
	if (p->sched_time != 0) {
		if ((kl = key_time(key, m->qid, (uint64_t)p->sched_time)) == 0 ||
		    qjob_del(j, QDB_SCHEDULE, key, kl) == -1)
			return -1;
	}
	if (due != 0) {
		if ((kl = key_time(key, m->qid, (uint64_t)due)) == 0 ||
		    qjob_put(j, QDB_SCHEDULE, key, kl, "", 0) == -1)
			return -1;
	}
	p->sched_time = due;
	return 0;
}

/* ---- spool lock ---- */

/*
 * queue_lock - as root, in a directory the daemon's user owns: the name
 * "lock" is opened relative to the checked spool fd, never through a
 * symbolic link (O_NOFOLLOW), and must be a regular file with one link
 * owned by root or owner before anything is locked, truncated or written.
 */
int
queue_lock(int spoolfd, const char *spooldir, long owner, char *err,
    size_t errlen)
{
	struct stat	st;
	char		buf[32];
	ssize_t		n;
	int		fd, len;

	fd = openat(spoolfd, "lock", O_RDWR | O_CREAT | O_NOFOLLOW |
	    O_NOCTTY | O_NONBLOCK | O_CLOEXEC, 0600);
	if (fd == -1) {
		if (errno == ELOOP)
			snprintf(err, errlen, "spool lock %s/lock is a "
			    "symbolic link: refusing to follow it (remove "
			    "it; waymarkd creates the lock file itself)",
			    spooldir);
		else
			snprintf(err, errlen, "cannot open %s/lock: %s",
			    spooldir, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) == -1) {
		snprintf(err, errlen, "cannot stat %s/lock: %s", spooldir,
		    strerror(errno));
		close(fd);
		return -1;
	}
	if (!S_ISREG(st.st_mode) || st.st_nlink != 1 ||
	    (st.st_uid != 0 && (owner == -1 || st.st_uid != (uid_t)owner))) {
		snprintf(err, errlen, "spool lock %s/lock is not a regular "
		    "file owned by root or the daemon's user with one link "
		    "(type %s, owner uid %lu, %lu links): refusing to use it "
		    "(remove it; waymarkd creates the lock file itself)",
		    spooldir, S_ISREG(st.st_mode) ? "file" :
		    S_ISDIR(st.st_mode) ? "directory" : "special",
		    (unsigned long)st.st_uid, (unsigned long)st.st_nlink);
		close(fd);
		return -1;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) == -1) {
		if (errno == EWOULDBLOCK) {
			n = pread(fd, buf, sizeof(buf) - 1, 0);
			buf[n > 0 ? n : 0] = '\0';
			buf[strcspn(buf, "\r\n")] = '\0';
			snprintf(err, errlen, "spool %s is in use by another "
			    "waymarkd (pid %s)", spooldir, buf[0] ? buf : "?");
		} else
			snprintf(err, errlen, "cannot lock %s/lock: %s",
			    spooldir, strerror(errno));
		close(fd);
		return -1;
	}
	len = snprintf(buf, sizeof(buf), "%ld\n", (long)getpid());
	if (len < 0 || (size_t)len >= sizeof(buf) || ftruncate(fd, 0) == -1 ||
	    pwrite(fd, buf, (size_t)len, 0) != len) {
		snprintf(err, errlen, "cannot write %s/lock: %s", spooldir,
		    strerror(errno));
		close(fd);
		return -1;
	}
	if (lock_fd != -1)
		close(lock_fd);
	lock_fd = fd;
	return 0;
}

/* ---- start-up ---- */

static void
load_cb(struct qmsg *m, time_t sched_time, void *arg)
{
	struct qpriv	*p;
	size_t		 i, *n = arg;
	time_t		 now = time(NULL);

	if ((p = qmsg_priv(m)) == NULL || qmem_insert(m) == -1) {
		log_warnx("queue: qid=%s cannot be loaded (out of memory or "
		    "duplicate)", m->qid);
		qmsg_free(m);
		return;
	}
	p->sched_time = sched_time;
	/* a deferred recipient keeps its retry time, as Postfix's deferred
	 * queue does (a restart is no retry burst); the others (never
	 * tried, or due already) are due now */
	for (i = 0; i < m->nrcpts; i++)
		if (!rcpt_status_final(m->rcpts[i].status) &&
		    (m->rcpts[i].status != RS_DEFERRED ||
		    m->rcpts[i].next_attempt <= now))
			m->rcpts[i].next_attempt = now;
	(*n)++;
}

/* clean_bodies - remove body files no unfinished message refers to */
static void
clean_bodies(void)
{
	DIR		*d;
	struct dirent	*de;
	char		 path[300];
	int		 n = 0;

	if ((d = opendir("body")) == NULL) {
		log_warn("queue: opendir body");
		return;
	}
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (qid_valid(de->d_name) && qmem_find(de->d_name) != NULL)
			continue;
		if (snprintf(path, sizeof(path), "body/%s", de->d_name) >=
		    (int)sizeof(path))
			continue;
		if (unlink(path) == -1)
			log_warn("queue: cannot remove stale %s", path);
		else
			n++;
	}
	closedir(d);
	if (n > 0)
		log_info("queue: removed %d body file(s) without a committed "
		    "message", n);
}

static void
purge_cb(evutil_socket_t fd, short what, void *arg)
{
	struct timeval	tv = { PURGE_INTERVAL, 0 };

	(void)fd;
	(void)what;
	(void)arg;
	if (qs.stopping)
		return;
	qdb_purge_request(time(NULL) - (time_t)qs.cfg->history_retention);
	evtimer_add(purge_ev, &tv);
}

int
queue_init(const struct config *cfg, struct event_base *base, char *err,
    size_t errlen)
{
	struct timeval	 tv = { PURGE_INTERVAL, 0 };
	uint64_t	 floor = 0;
	size_t		 nloaded = 0, i;
	int		 r;

	memset(&qs, 0, sizeof(qs));
	qs.cfg = cfg;
	qs.base = base;
	if (cfg->db_cache > 0)
		qdb_set_cache((size_t)cfg->db_cache);
	if (qdb_open(base, err, errlen) == -1)
		return -1;
	if ((r = qdb_get_meta_u64("qid_floor", &floor)) == -1) {
		snprintf(err, errlen, "cannot read the queue id high-water mark");
		goto fail;
	}
	qid_init(r == 0 ? floor : 0);
	qs.qid_floor = floor;
	if (sched_init(base) == -1) {
		snprintf(err, errlen, "cannot create the scheduler timer");
		goto fail;
	}
	if (qdb_load_unfinished(load_cb, &nloaded, err, errlen) == -1)
		goto fail;
	clean_bodies();
	if (pool_start(base) == -1) {
		snprintf(err, errlen, "cannot create the body pool timer");
		goto fail;
	}
	if (qdb_start(err, errlen) == -1)
		goto fail;
	for (i = 0; i < qs.nmsgs; i++) {
		char path[64];

		snprintf(path, sizeof(path), "body/%s", qs.msgs[i]->qid);
		if (access(path, F_OK) == -1)
			log_warnx("queue: qid=%s body file missing; deliveries "
			    "will be deferred", qs.msgs[i]->qid);
	}
	/* messages whose recipients are all final (a lost final commit) */
	for (i = 0; i < qs.nmsgs; ) {
		struct qmsg *m = qs.msgs[i];

		sched_update(m);
		if (qs.msgs[i] == m)
			i++;
	}
	if ((purge_ev = evtimer_new(base, purge_cb, NULL)) == NULL) {
		snprintf(err, errlen, "cannot create the purge timer");
		goto fail;
	}
	qdb_purge_request(time(NULL) - (time_t)cfg->history_retention);
	evtimer_add(purge_ev, &tv);
	if (queue_filter_init(base) == -1) {
		snprintf(err, errlen, "cannot set up the content filters");
		goto fail;
	}
	log_info("queue: %zu unfinished message(s) loaded", nloaded);
	sched_kick();
	return 0;
fail:
	sched_shutdown();
	pool_stop();
	qdb_close();
	for (i = 0; i < qs.nmsgs; i++)
		qmsg_free(qs.msgs[i]);
	gauge_reset();
	free(qs.msgs);
	memset(&qs, 0, sizeof(qs));
	return -1;
}

void
queue_reload(const struct config *cfg)
{
	qs.cfg = cfg;
	sched_kick();
}

void
queue_store_failed(void)
{
	qs.stopping = 1;
}

void
queue_shutdown(void)
{
	size_t	i;

	if (qs.cfg == NULL)
		return;
	qs.stopping = 1;
	queue_filter_shutdown();
	if (purge_ev != NULL) {
		event_free(purge_ev);
		purge_ev = NULL;
	}
	sched_shutdown();
	qdb_close();
	pool_stop();
	if (qs.inflight > 0)
		log_warnx("queue: %d delivery job(s) still running at shutdown",
		    qs.inflight);
	gauge_reset();
	for (i = 0; i < qs.nmsgs; i++)
		qmsg_free(qs.msgs[i]);
	free(qs.msgs);
	qs.msgs = NULL;
	qs.nmsgs = qs.capmsgs = 0;
	if (queue_store_panicked())
		log_warnx("queue: closed; the store needs recovery at the next "
		    "start");
	else
		log_info("queue: closed cleanly");
	qs.cfg = NULL;
}

/* ---- reception ---- */

int
queue_body_create(char qid[QID_SIZE], int *fd)
{
	char		path[64];
	uint64_t	us;
	int		tries;

	for (tries = 0; tries < 3; tries++) {
		us = qid_new(qid);
		if (us > qs.qid_floor)
			qs.qid_floor = us;
		if (snprintf(path, sizeof(path), "body/%s", qid) >=
		    (int)sizeof(path))
			return -1;
		if ((*fd = pool_take(path)) != -1)
			return 0;
		if (errno == EEXIST)
			continue;
		*fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (*fd != -1)
			return 0;
		if (errno != EEXIST)
			break;
	}
	log_warn("queue: cannot create body file %s", path);
	return -1;
}

void
queue_body_discard(const char *qid, int fd)
{
	char	path[64];

	if (fd >= 0)
		close(fd);
	if (qid != NULL && qid_valid(qid) &&
	    snprintf(path, sizeof(path), "body/%s", qid) < (int)sizeof(path) &&
	    unlink(path) == -1 && errno != ENOENT)
		log_warn("queue: cannot remove %s", path);
}

struct accept_ctx {
	struct qmsg	 *m;
	int		  fd;
	void		(*done)(void *, int);
	void		 *arg;
};

/* accept_done - the accept commit finished (loop thread) */
static void
accept_done(void *arg, int rc)
{
	struct accept_ctx	*ctx = arg;
	struct qmsg		*m = ctx->m;

	if (rc == QJOB_UNFLUSHED)
		/* the records are committed and will be flushed later: the
		 * message stays, with its body, and is delivered, though the
		 * client hears of a failure -- as if our 250 had been lost */
		log_warnx("qid=%s queued but not acknowledged: the log flush "
		    "failed", m->qid);
	if (rc == 0 || rc == QJOB_UNFLUSHED) {
		/* the client's 250 first: what follows is not part of the
		 * acknowledgement (the records are on disk; a message not
		 * kept in memory below is loaded at the next start) */
		ctx->done(ctx->arg, rc == 0 ? 0 : -1);
		if (ctx->fd >= 0)
			close(ctx->fd);
		queue_notice_accepted(m);	/* RFC 3461 "expanded" DSN */
		queue_lists_accepted(m);	/* moderators' notice */
		if (qs.stopping || qmem_insert(m) == -1) {
			/* durable: it is loaded at the next start */
			qmsg_free(m);
		} else {
			if (m->state == MS_NORMAL)
				fresh_set(m);
			sched_update(m);
			sched_kick();
			if (m->state == MS_CONTENT)
				queue_filter_want(m);
		}
	} else {
		log_warnx("qid=%s not queued: the commit failed", m->qid);
		queue_body_discard(m->qid, ctx->fd);
		qmsg_free(m);
		ctx->done(ctx->arg, -1);
	}
	free(ctx);
}

static void
accept_fail_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	accept_done(arg, -1);
}

/* qjob_accept - the records of a new message as one commit job */
struct qjob *
qjob_accept(struct qmsg *m)
{
	unsigned char	 key[QKEY_MAX], meta[REC_META_U64_LEN];
	unsigned char	 val[REC_ENVID_MAX];
	char		*detail = NULL, from[300], helo[300], msgid[300];
	struct qjob	*j;
	struct qpriv	*p;
	size_t		 i, kl, vl;
	int		 n;

	if ((p = qmsg_priv(m)) == NULL || (j = qjob_new()) == NULL)
		return NULL;
	if (qjob_add_msg(j, m) == -1)
		goto fail;
	for (i = 0; i < m->nrcpts; i++)
		if (qjob_add_rcpt(j, m, i) == -1)
			goto fail;
	log_escape(from, sizeof(from), m->sender, strlen(m->sender));
	log_escape(helo, sizeof(helo), m->helo ? m->helo : "",
	    m->helo ? strlen(m->helo) : 0);
	log_escape(msgid, sizeof(msgid), m->message_id ? m->message_id : "",
	    m->message_id ? strlen(m->message_id) : 0);
	n = asprintf(&detail, "from=<%s> size=%llu nrcpt=%zu client=%s "
	    "helo=%s msgid=%s", from, (unsigned long long)m->size, m->nrcpts,
	    m->client_addr ? m->client_addr : "unknown", helo,
	    m->message_id ? msgid : "-");
	if (n < 0) {
		detail = NULL;
		goto fail;
	}
	if (qjob_add_event(j, m, "accepted", detail) == -1)
		goto fail;
	for (i = 0; i < m->ntrace; i++)
		if (qjob_add_event(j, m, "trace", m->trace[i]) == -1)
			goto fail;
	for (i = 0; i < m->nrx_events; i++)
		if (qjob_add_event(j, m, m->rx_events[i].kind,
		    m->rx_events[i].detail) == -1)
			goto fail;
	/* held from reception (policy, FUTURERELEASE): its state event;
	 * the trace field above already carries the RFC 6729 clause */
	if (m->state != MS_NORMAL &&
	    qjob_add_state_event(j, m, MS_NORMAL, m->state_actor) == -1)
		goto fail;
	if ((kl = key_state(key, m->qid, (unsigned)m->state)) == 0 ||
	    qjob_put(j, QDB_STATE, key, kl, "", 0) == -1)
		goto fail;
	p->sched_time = 0;
	if (qjob_add_sched(j, m) == -1)
		goto fail;
	/* the ENVID index holds tracked messages only, each with its
	 * certifier (a TRACK compares without reading records); a
	 * certifier of another length could never match: not indexed */
	if (m->envid != NULL && m->mtrk_certifier != NULL &&
	    (vl = rec_envid_encode(val, m->qid, m->mtrk_certifier)) > 0 &&
	    qjob_put(j, QDB_ENVID, m->envid, strlen(m->envid), val, vl) == -1)
		goto fail;
	rec_meta_u64_encode(qs.qid_floor, meta);
	if (qjob_put(j, QDB_META, "qid_floor", 9, meta, sizeof(meta)) == -1)
		goto fail;
	free(detail);
	return j;
fail:
	free(detail);
	qjob_free(j);
	return NULL;
}

void
queue_accept(struct qmsg *m, int fd, void (*done)(void *arg, int rc),
    void *arg)
{
	struct accept_ctx	*ctx;
	struct qjob		*j = NULL;
	struct timeval		 zero = { 0, 0 };
	size_t			 i;

	if ((ctx = calloc(1, sizeof(*ctx))) == NULL) {
		log_warnx("queue: out of memory accepting qid=%s", m->qid);
		queue_body_discard(m->qid, fd);
		qmsg_free(m);
		done(arg, -1);	/* no way to defer without memory */
		return;
	}
	ctx->m = m;
	ctx->fd = fd;
	ctx->done = done;
	ctx->arg = arg;
	if (m->arrival == 0)
		m->arrival = time(NULL);
	if (m->sender == NULL && (m->sender = strdup("")) == NULL)
		goto fail;
	m->next_seq = 0;
	m->done_time = 0;
	m->inflight = 0;
	m->state_since = m->arrival;
	/* RFC 3885 3.3: tracked for min(timeout, tracking_retention) from
	 * arrival; no timeout = the local default (tracking_retention) */
	m->mtrk_expiry = 0;
	if (m->mtrk_certifier != NULL && qs.cfg != NULL) {
		long keep = (long)qs.cfg->tracking_retention;

		if (m->mtrk_timeout > 0 && m->mtrk_timeout < keep)
			keep = m->mtrk_timeout;
		m->mtrk_expiry = m->arrival + (time_t)keep;
	}
	for (i = 0; i < m->nrcpts; i++) {
		struct qrcpt *r = &m->rcpts[i];

		r->busy = 0;
		if (r->status == RS_EXPANDED) {	/* final at RCPT (aliases) */
			r->next_attempt = 0;
			continue;
		}
		r->status = RS_QUEUED;
		r->next_attempt = m->arrival;
	}
	/* an lseek and an fstat saved when the writer already did it */
	if (fd >= 0 && !m->body_ended && queue_body_end(fd) == -1) {
		log_warn("qid=%s cannot cut the body file to its content",
		    m->qid);
		goto fail;
	}
	if (!qid_valid(m->qid) || m->nrcpts == 0 || qs.cfg == NULL ||
	    (j = qjob_accept(m)) == NULL)
		goto fail;
	qjob_body(j, fd);
	qdb_commit(j, accept_done, ctx);
	return;
fail:
	log_warnx("queue: cannot build the records of qid=%s", m->qid);
	/* report asynchronously: the caller does not expect re-entry */
	if (qs.base == NULL || event_base_once(qs.base, -1, EV_TIMEOUT,
	    accept_fail_cb, ctx, &zero) == -1)
		accept_done(ctx, -1);
}

/* ---- the backlog ---- */

void
fresh_set(struct qmsg *m)
{
	struct qpriv	*p = qmsg_priv(m);

	if (p == NULL || p->fresh)
		return;
	p->fresh = 1;
	qs.nfresh++;
}

void
fresh_clear(struct qmsg *m)
{
	struct qpriv	*p = m->priv;

	if (p == NULL || !p->fresh)
		return;
	p->fresh = 0;
	if (qs.nfresh > 0)
		qs.nfresh--;
	if (qs.backlog_fn != NULL)
		qs.backlog_fn();
}

unsigned
queue_backlog(void)
{
	return qs.nfresh;
}

void
queue_backlog_notify(void (*notify)(void))
{
	qs.backlog_fn = notify;
}

/* ---- free space ---- */

int
queue_free_space_ok(void)
{
	static time_t	checked;
	static int	ok = 1;
	time_t		now = time(NULL);
	int64_t		fb;

	if (qs.cfg == NULL)
		return 1;
	if (now != checked) {
		checked = now;
		fb = fs_free_bytes(".");
		ok = fb < 0 || (uint64_t)fb >= qs.cfg->min_free_space;
	}
	return ok;
}

int64_t
queue_spool_free_bytes(void)
{
	return fs_free_bytes(".");	/* the working directory is the spool */
}
