#include "config.h"
/*
 * queue_filter.c - external content filters (policy `filter COMMAND`).
 * Owns: running the command of every message in state `content`
 *       (m->filter_cmd) with the stored message on its standard input
 *       (Waymark's trace fields, then the content, CRLF), at most
 *       filter_concurrency at once, each bounded by filter_timeout; the
 *       pipes are non-blocking events on the loop and the child's exit
 *       comes through SIGCHLD, so the loop never waits on a filter.
 *       Messages waiting for their filter are listed by QID in arrival
 *       order (queue_filter_want); starting filters walks that list,
 *       never the whole queue.
 * Outcome (exit status; the first line of stdout/stderr is the reason):
 *       0 accept (release: normal, or outbound with remote recipients),
 *       1 quarantine (value "filter"), 2 reject (every pending recipient
 *       fails 5.7.1, with a failure DSN where due); 75, any other status,
 *       a signal or the timeout: the filter runs again later
 *       (retry_schedule's first interval).  Each run is a "filter" event.
 *       A filter cannot change the message: it only reads a copy.
 * The command runs as the daemon's user, through /bin/sh -c, in its own
 *       process group (killed as a group at the timeout), with
 *       WAYMARK_QID, WAYMARK_SENDER and WAYMARK_RECIPIENTS set.
 * Not here: choosing the filter (the policy rules), the state changes
 *       themselves (queue_state.c: state_filter_done).
 */

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <event2/event.h>

#include "common/cfg.h"
#include "common/log.h"
#include "common/util.h"
#include "queue/queue_int.h"

extern char	**environ;

#define OUT_MAX		1024	/* kept of the filter's output */
#define CHUNK		(64 * 1024)	/* content written per read */
#define KICK_SECS	1	/* how often waiting filters are looked at */

struct frun {
	struct frun	*next;
	char		 qid[QID_SIZE];
	pid_t		 pid;
	int		 in_fd, out_fd;
	struct event	*ev_in, *ev_out;
	char		*data;		/* what stdin gets next: the trace
					 * fields, then chunks of the content */
	size_t		 len, off, cap;
	int		 body_fd;	/* the content, streamed (never whole
					 * in memory) */
	char		 out[OUT_MAX];
	size_t		 outlen;
	int		 exited, status, out_eof, timed_out;
	time_t		 deadline;
};

static struct {
	struct frun	*runs;
	unsigned	 nruns;
	struct event	*ev_chld;
	struct event	*tick;
	/* the messages waiting for their filter (state content, not
	 * running), oldest first: kicks walk these, never the whole queue
	 * (the tick only while there are any); an entry whose message left
	 * state content is dropped there */
	char		(*wait)[QID_SIZE];
	size_t		 nwait, capwait;
} fl;

static void	frun_check(struct frun *);

/* frun_close_in - stdin is written (or the filter stopped reading) */
static void
frun_close_in(struct frun *r)
{
	if (r->ev_in != NULL) {
		event_free(r->ev_in);
		r->ev_in = NULL;
	}
	if (r->in_fd != -1) {
		close(r->in_fd);
		r->in_fd = -1;
	}
	free(r->data);
	r->data = NULL;
	if (r->body_fd != -1) {
		close(r->body_fd);
		r->body_fd = -1;
	}
}

static void
frun_close_out(struct frun *r)
{
	if (r->ev_out != NULL) {
		event_free(r->ev_out);
		r->ev_out = NULL;
	}
	if (r->out_fd != -1) {
		close(r->out_fd);
		r->out_fd = -1;
	}
	r->out_eof = 1;
}

static void
in_cb(evutil_socket_t fd, short what, void *arg)
{
	struct frun	*r = arg;
	ssize_t		 n;

	(void)what;
	for (;;) {
		if (r->off == r->len) {
			/* the next chunk of the content (the page cache) */
			char *nb = r->cap < CHUNK ? realloc(r->data, CHUNK) :
			    r->data;

			if (nb == NULL || r->body_fd == -1)
				break;
			r->data = nb;
			r->cap = CHUNK;
			do
				n = read(r->body_fd, r->data, CHUNK);
			while (n == -1 && errno == EINTR);
			if (n <= 0)
				break;		/* all written */
			r->len = (size_t)n;
			r->off = 0;
		}
		n = write(fd, r->data + r->off, r->len - r->off);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n <= 0)
			break;		/* EPIPE: the filter read what it wanted */
		r->off += (size_t)n;
	}
	frun_close_in(r);
}

static void
out_cb(evutil_socket_t fd, short what, void *arg)
{
	struct frun	*r = arg;
	char		 buf[4096];
	ssize_t		 n;
	size_t		 k;

	(void)what;
	for (;;) {
		n = read(fd, buf, sizeof(buf));
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n <= 0)
			break;
		k = (size_t)n;
		if (k > sizeof(r->out) - 1 - r->outlen)
			k = sizeof(r->out) - 1 - r->outlen;
		memcpy(r->out + r->outlen, buf, k);
		r->outlen += k;
	}
	frun_close_out(r);
	frun_check(r);
}

/* first_line - the filter's reason: its first non-empty output line */
static void
first_line(const struct frun *r, char *out, size_t outlen)
{
	const char	*p = r->out, *end = r->out + r->outlen, *nl;

	while (p < end && (*p == '\n' || *p == '\r'))
		p++;
	nl = memchr(p, '\n', (size_t)(end - p));
	if (nl == NULL)
		nl = end;
	if (nl > p && nl[-1] == '\r')
		nl--;
	log_escape(out, outlen, p, (size_t)(nl - p));
}

/* frun_free - unlink r from the list and free it */
static void
frun_free(struct frun *r)
{
	struct frun	**pp;

	for (pp = &fl.runs; *pp != NULL; pp = &(*pp)->next)
		if (*pp == r) {
			*pp = r->next;
			break;
		}
	fl.nruns--;		/* the tick starts a waiting one */
	frun_close_in(r);
	frun_close_out(r);
	free(r);
}

/* frun_check - the filter exited and its output is read: the outcome */
static void
frun_check(struct frun *r)
{
	struct qmsg	*m;
	char		 why[600];
	int		 code;

	if (!r->exited || !r->out_eof)
		return;
	first_line(r, why, sizeof(why));
	if (r->timed_out)
		code = -2;
	else if (WIFEXITED(r->status))
		code = WEXITSTATUS(r->status);
	else
		code = -1;
	m = qmem_find(r->qid);
	if (m != NULL && m->priv != NULL)
		((struct qpriv *)m->priv)->filter_running = 0;
	if (m == NULL || m->state != MS_CONTENT || m->done_time != 0 ||
	    (m->priv != NULL && ((struct qpriv *)m->priv)->finishing))
		log_info("qid=%s filter finished (status %d) after the message "
		    "left state content", r->qid, code);
	else {
		state_filter_done(m, code, why);
		/* 75, a signal, the timeout: still in content, runs again */
		if ((m = qmem_find(r->qid)) != NULL)
			queue_filter_want(m);
	}
	frun_free(r);
}

/* frun_start - spawn m's filter; 0, or -1 (retried later) */
static int
frun_start(struct qmsg *m)
{
	posix_spawn_file_actions_t	 fa;
	posix_spawnattr_t		 sa;
	struct frun			*r;
	struct qpriv			*p = qmsg_priv(m);
	char				*argv[4], *envp[6], *rcpts = NULL;
	char				 why[256];
	size_t				 i, rl = 0;
	int				 in[2] = { -1, -1 }, out[2] = { -1, -1 };
	int				 rc, n;

	if (p == NULL || (r = calloc(1, sizeof(*r))) == NULL)
		return -1;
	r->in_fd = r->out_fd = r->body_fd = -1;
	memcpy(r->qid, m->qid, sizeof(r->qid));
	if (queue_message_open(m->qid, &r->data, &r->len, &r->body_fd, why,
	    sizeof(why)) != 0) {
		log_warnx("qid=%s filter not started: %s", m->qid, why);
		free(r);
		return -1;
	}
	for (i = 0; i < m->nrcpts; i++)
		rl += strlen(m->rcpts[i].addr) + 1;
	if ((rcpts = calloc(1, rl + 1)) == NULL)
		goto fail;
	for (i = 0, rl = 0; i < m->nrcpts; i++) {
		size_t al = strlen(m->rcpts[i].addr);

		if (i > 0)
			rcpts[rl++] = ' ';
		memcpy(rcpts + rl, m->rcpts[i].addr, al);	/* sized above */
		rl += al;
	}
	memset(envp, 0, sizeof(envp));
	n = asprintf(&envp[0], "WAYMARK_QID=%s", m->qid);
	n |= asprintf(&envp[1], "WAYMARK_SENDER=%s", m->sender);
	n |= asprintf(&envp[2], "WAYMARK_RECIPIENTS=%s", rcpts);
	n |= asprintf(&envp[3], "PATH=/usr/local/bin:/usr/bin:/bin");
	envp[4] = NULL;
	if (n < 0)
		goto fail;
	if (pipe2(in, O_CLOEXEC) == -1 || pipe2(out, O_CLOEXEC) == -1)
		goto fail;
	argv[0] = "/bin/sh";
	argv[1] = "-c";
	argv[2] = m->filter_cmd;
	argv[3] = NULL;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, in[0], 0);
	posix_spawn_file_actions_adddup2(&fa, out[1], 1);
	posix_spawn_file_actions_adddup2(&fa, out[1], 2);
	posix_spawnattr_init(&sa);
	posix_spawnattr_setpgroup(&sa, 0);
	posix_spawnattr_setflags(&sa, POSIX_SPAWN_SETPGROUP |
	    POSIX_SPAWN_SETSIGDEF);
	{
		sigset_t def;

		sigemptyset(&def);
		sigaddset(&def, SIGPIPE);
		sigaddset(&def, SIGCHLD);
		sigaddset(&def, SIGTERM);
		sigaddset(&def, SIGHUP);
		sigaddset(&def, SIGINT);
		posix_spawnattr_setsigdefault(&sa, &def);
	}
	rc = posix_spawn(&r->pid, "/bin/sh", &fa, &sa, argv, envp);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&sa);
	close(in[0]);
	close(out[1]);
	in[0] = out[1] = -1;
	if (rc != 0) {
		errno = rc;
		log_warn("qid=%s cannot start the filter", m->qid);
		goto fail;
	}
	r->in_fd = in[1];
	r->out_fd = out[0];
	(void)fcntl(r->in_fd, F_SETFL, O_NONBLOCK);
	(void)fcntl(r->out_fd, F_SETFL, O_NONBLOCK);
	r->ev_in = event_new(qs.base, r->in_fd, EV_WRITE | EV_PERSIST, in_cb, r);
	r->ev_out = event_new(qs.base, r->out_fd, EV_READ | EV_PERSIST, out_cb,
	    r);
	if (r->ev_in == NULL || r->ev_out == NULL) {
		kill(-r->pid, SIGKILL);
		(void)waitpid(r->pid, NULL, 0);
		goto fail_run;
	}
	event_add(r->ev_in, NULL);
	event_add(r->ev_out, NULL);
	r->deadline = time(NULL) + (time_t)qs.cfg->filter_timeout;
	r->next = fl.runs;
	fl.runs = r;
	fl.nruns++;
	p->filter_running = 1;
	log_info("qid=%s filter started pid=%ld", m->qid, (long)r->pid);
	for (i = 0; i < 4; i++)
		free(envp[i]);
	free(rcpts);
	return 0;
fail:
	if (in[0] != -1)
		close(in[0]);
	if (in[1] != -1)
		close(in[1]);
	if (out[0] != -1)
		close(out[0]);
	if (out[1] != -1)
		close(out[1]);
fail_run:
	for (i = 0; i < 4; i++)
		free(envp[i]);
	free(rcpts);
	if (r->ev_in != NULL)
		event_free(r->ev_in);
	if (r->ev_out != NULL)
		event_free(r->ev_out);
	if (r->in_fd != -1)
		close(r->in_fd);
	if (r->out_fd != -1)
		close(r->out_fd);
	if (r->body_fd != -1)
		close(r->body_fd);
	free(r->data);
	free(r);
	return -1;
}

/* chld_cb - SIGCHLD: collect the filters that exited */
static void
chld_cb(evutil_socket_t sig, short what, void *arg)
{
	struct frun	*r, *next;
	int		 st;

	(void)sig;
	(void)what;
	(void)arg;
	for (r = fl.runs; r != NULL; r = next) {
		next = r->next;
		if (r->exited || waitpid(r->pid, &st, WNOHANG) != r->pid)
			continue;
		r->exited = 1;
		r->status = st;
		frun_check(r);		/* may free r */
	}
}

/* waiting - m waits for its filter (else its entry is dropped) */
static int
waiting(struct qmsg *m)
{
	struct qpriv	*p;

	return m->state == MS_CONTENT && m->filter_cmd != NULL &&
	    m->done_time == 0 && (p = qmsg_priv(m)) != NULL &&
	    !p->finishing && !p->filter_running;
}

/* queue_filter_want - m is in state content (accepted, loaded, or its
 * filter is to run again): list it once, and start what is due */
void
queue_filter_want(struct qmsg *m)
{
	struct qpriv	*p = qmsg_priv(m);
	void		*nw;
	size_t		 cap;

	if (p == NULL || p->filter_listed || !waiting(m))
		return;
	if (fl.nwait == fl.capwait) {
		cap = fl.capwait ? fl.capwait * 2 : 64;
		if ((nw = reallocarray(fl.wait, cap, sizeof(*fl.wait))) ==
		    NULL) {
			/* kept in state content: listed at the next start */
			log_warnx("qid=%s waits for its filter until the next "
			    "start (out of memory)", m->qid);
			return;
		}
		fl.wait = nw;
		fl.capwait = cap;
	}
	memcpy(fl.wait[fl.nwait++], m->qid, QID_SIZE);
	p->filter_listed = 1;
	queue_filter_kick();
}

/* queue_filter_kick - start the waiting filters that are due, up to the
 * limit, oldest first */
void
queue_filter_kick(void)
{
	struct qpriv	*p;
	struct qmsg	*m;
	time_t		 now = time(NULL);
	size_t		 i, k;

	if (qs.cfg == NULL || qs.stopping || fl.ev_chld == NULL)
		return;
	for (i = k = 0; i < fl.nwait; i++) {
		if (fl.nruns >= qs.cfg->filter_concurrency)
			break;		/* the rest keep their places */
		m = qmem_find(fl.wait[i]);
		p = m != NULL ? qmsg_priv(m) : NULL;
		if (m == NULL || p == NULL || !waiting(m) ||
		    (p->filter_next <= now && frun_start(m) == 0)) {
			if (p != NULL)
				p->filter_listed = 0;	/* started or gone */
			continue;
		}
		if (p->filter_next <= now)
			p->filter_next = now + 60;	/* frun_start failed */
		if (k != i)
			memcpy(fl.wait[k], fl.wait[i], QID_SIZE);
		k++;
	}
	if (k != i)
		memmove(fl.wait[k], fl.wait[i], (fl.nwait - i) *
		    sizeof(*fl.wait));
	fl.nwait = k + (fl.nwait - i);
}

/* tick_cb - timeouts of running filters, retries of waiting ones */
static void
tick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct timeval	 tv = { KICK_SECS, 0 };
	struct frun	*r, *next;
	time_t		 now = time(NULL);

	(void)fd;
	(void)what;
	(void)arg;
	for (r = fl.runs; r != NULL; r = next) {
		next = r->next;
		if (r->timed_out || now < r->deadline)
			continue;
		log_info("qid=%s filter pid=%ld timed out after %us: killed",
		    r->qid, (long)r->pid, qs.cfg->filter_timeout);
		r->timed_out = 1;
		if (!r->exited)
			kill(-r->pid, SIGKILL);
		/* a child that left the group may hold the output open */
		frun_close_in(r);
		frun_close_out(r);
		frun_check(r);		/* when exited: done (frees r) */
	}
	if (fl.nwait > 0)
		queue_filter_kick();
	evtimer_add(fl.tick, &tv);
}

int
queue_filter_init(struct event_base *base)
{
	struct timeval	tv = { KICK_SECS, 0 };
	size_t		i;

	fl.ev_chld = evsignal_new(base, SIGCHLD, chld_cb, NULL);
	fl.tick = evtimer_new(base, tick_cb, NULL);
	if (fl.ev_chld == NULL || fl.tick == NULL ||
	    evsignal_add(fl.ev_chld, NULL) == -1)
		return -1;
	evtimer_add(fl.tick, &tv);
	/* the loaded messages in state content: one walk, at start */
	for (i = 0; i < qs.nmsgs; i++)
		if (qs.msgs[i]->state == MS_CONTENT)
			queue_filter_want(qs.msgs[i]);
	return 0;
}

/* queue_filter_shutdown - kill every running filter and reap it */
void
queue_filter_shutdown(void)
{
	struct frun	*r;

	while ((r = fl.runs) != NULL) {
		if (!r->exited) {
			kill(-r->pid, SIGKILL);
			(void)waitpid(r->pid, NULL, 0);
			log_info("qid=%s filter pid=%ld stopped at shutdown; it "
			    "runs again at the next start", r->qid, (long)r->pid);
		}
		frun_free(r);
	}
	if (fl.ev_chld != NULL)
		event_free(fl.ev_chld);
	if (fl.tick != NULL)
		event_free(fl.tick);
	fl.ev_chld = fl.tick = NULL;
	free(fl.wait);
	fl.wait = NULL;
	fl.nwait = fl.capwait = 0;
}
