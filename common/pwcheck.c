#include "config.h"
/*
 * pwcheck.c - the password-check pool (DESIGN.md "Password checks").
 * Owns: a small fixed set of checker threads (at most 2) that run
 *       crypt_r(3), their queue, and the hand-back of results to the
 *       loop thread (the pattern of work.c: a finished list under a
 *       mutex and event_active() on our own event).
 * Entry points: pwcheck_init, pwcheck_submit, pwcheck_pending,
 *       pwcheck_shutdown.
 * Not here: which hash to check against (the caller: the user's hash,
 *       or a dummy of the same kind for an unknown user), limits per
 *       client (failtab.c), replies.
 * Invariants: at most nthreads + qmax checks are outstanding (counted in
 *       the loop thread from submit to done(), so the bound does not
 *       depend on thread timing); done() runs only in the loop thread or
 *       in the caller of pwcheck_shutdown; checkers touch no libevent
 *       object but event_active() on our event; each checker owns one
 *       crypt_data (~32 KiB), allocated in the thread at its first check,
 *       wiped after every check; the password copy is wiped as soon as
 *       it has been hashed; signals are blocked in the checkers.
 */

#include <crypt.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "common/log.h"
#include "common/pwcheck.h"

struct pwjob {
	void		(*done)(void *, int);
	void		*arg;
	int		 result;
	char		*hash;		/* in buf */
	char		*pass;		/* in buf; wiped after the check */
	size_t		 passlen;
	struct pwjob	*next;
	char		 buf[];		/* hash NUL pass NUL */
};

struct pwq {
	struct pwjob	*head;
	struct pwjob	*tail;
};

static pthread_mutex_t	 pw_mtx = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t	 pw_cond = PTHREAD_COND_INITIALIZER;	/* new job / stop */
static struct pwq	 pw_todo, pw_done;
static pthread_t	 pw_threads[PWCHECK_MAX_THREADS];
static int		 pw_nthreads;
static int		 pw_stopping;		/* checkers must exit */
static int		 pw_running;		/* accepting checks (loop thread) */
static struct event	*pw_ev;
static size_t		 pw_max;		/* nthreads + qmax */
static size_t		 pw_outstanding;	/* loop thread only */

static void
pwq_push(struct pwq *q, struct pwjob *j)
{
	j->next = NULL;
	if (q->tail != NULL)
		q->tail->next = j;
	else
		q->head = j;
	q->tail = j;
}

static struct pwjob *
pwq_pop(struct pwq *q)
{
	struct pwjob	*j = q->head;

	if (j != NULL) {
		q->head = j->next;
		if (q->head == NULL)
			q->tail = NULL;
	}
	return j;
}

/* ct_equal - constant-time comparison of two NUL-terminated strings */
static int
ct_equal(const char *a, const char *b)
{
	size_t		 la = strlen(a), lb = strlen(b), i;
	unsigned char	 d = (la != lb);

	for (i = 0; i < la && i < lb; i++)
		d |= (unsigned char)(a[i] ^ b[i]);
	return d == 0;
}

/* pw_check - crypt_r with the thread's data; PWCHECK_OK or _FAIL */
static int
pw_check(struct crypt_data *cd, const char *hash, const char *pass)
{
	const char	*out;
	int		 ok;

	out = crypt_r(pass, hash, cd);
	ok = out != NULL && out[0] != '*' && ct_equal(out, hash);
	explicit_bzero(cd, sizeof(*cd));	/* also: zeroed for the next use */
	return ok ? PWCHECK_OK : PWCHECK_FAIL;
}

/* pw_main - a checker thread: take a check, run it, queue it as done */
static void *
pw_main(void *unused)
{
	struct crypt_data	*cd = NULL;
	struct pwjob		*j;

	(void)unused;
	pthread_mutex_lock(&pw_mtx);
	for (;;) {
		while (pw_todo.head == NULL && !pw_stopping)
			pthread_cond_wait(&pw_cond, &pw_mtx);
		if ((j = pwq_pop(&pw_todo)) == NULL)
			break;		/* stopping and nothing left */
		pthread_mutex_unlock(&pw_mtx);

		if (cd == NULL)
			cd = calloc(1, sizeof(*cd));	/* once per thread */
		j->result = cd != NULL ? pw_check(cd, j->hash, j->pass) :
		    PWCHECK_CANCELLED;
		explicit_bzero(j->pass, j->passlen);

		pthread_mutex_lock(&pw_mtx);
		pwq_push(&pw_done, j);
		if (pw_ev != NULL)
			event_active(pw_ev, EV_READ, 0);
	}
	pthread_mutex_unlock(&pw_mtx);
	free(cd);			/* wiped after each check */
	return NULL;
}

/* pw_drain - call done() of every finished check, in the calling thread */
static void
pw_drain(void)
{
	struct pwq	 q;
	struct pwjob	*j;

	pthread_mutex_lock(&pw_mtx);
	q = pw_done;
	pw_done.head = pw_done.tail = NULL;
	pthread_mutex_unlock(&pw_mtx);

	while ((j = pwq_pop(&q)) != NULL) {
		pw_outstanding--;
		j->done(j->arg, j->result);
		free(j);
	}
}

/* pw_done_cb - the loop side: finished checks are waiting */
static void
pw_done_cb(evutil_socket_t fd, short events, void *arg)
{
	(void)fd;
	(void)events;
	(void)arg;
	pw_drain();
}

/* pwcheck_init - start the checkers */
int
pwcheck_init(struct event_base *base, int nthreads, size_t qmax)
{
	sigset_t	all, old;
	int		i, r;

	if (pw_running || pw_nthreads > 0) {
		errno = EBUSY;
		return -1;
	}
	if (nthreads < 1)
		nthreads = 1;
	if (nthreads > PWCHECK_MAX_THREADS)
		nthreads = PWCHECK_MAX_THREADS;
	if ((pw_ev = event_new(base, -1, EV_PERSIST, pw_done_cb,
	    NULL)) == NULL)
		return -1;
	pw_stopping = 0;
	pw_max = (size_t)nthreads + qmax;
	pw_outstanding = 0;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	for (i = 0; i < nthreads; i++) {
		if ((r = pthread_create(&pw_threads[i], NULL, pw_main,
		    NULL)) != 0) {
			errno = r;
			break;
		}
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pw_nthreads = i;
	pw_running = 1;
	if (i < nthreads) {
		r = errno;
		log_warn("pwcheck_init: pthread_create");
		pwcheck_shutdown();
		errno = r;
		return -1;
	}
	return 0;
}

/* pwcheck_submit - queue one check, or refuse it when the pool is full */
int
pwcheck_submit(const char *hash, const char *pass,
    void (*done)(void *, int), void *arg)
{
	struct pwjob	*j;
	size_t		 hl, pl;

	if (!pw_running) {
		errno = ESHUTDOWN;
		return -1;
	}
	if (pw_outstanding >= pw_max) {
		errno = EAGAIN;
		return -1;
	}
	hl = strlen(hash);
	pl = strlen(pass);
	if ((j = malloc(sizeof(*j) + hl + 1 + pl + 1)) == NULL)
		return -1;
	j->done = done;
	j->arg = arg;
	j->result = PWCHECK_CANCELLED;
	j->hash = j->buf;
	memcpy(j->hash, hash, hl + 1);
	j->pass = j->buf + hl + 1;
	memcpy(j->pass, pass, pl + 1);
	j->passlen = pl;
	pw_outstanding++;

	pthread_mutex_lock(&pw_mtx);
	pwq_push(&pw_todo, j);
	pthread_mutex_unlock(&pw_mtx);
	pthread_cond_signal(&pw_cond);	/* after the unlock: see ct_enqueue */
	return 0;
}

/* pwcheck_pending - checks submitted whose done() has not run yet */
size_t
pwcheck_pending(void)
{
	return pw_outstanding;
}

/* pwcheck_shutdown - cancel waiting checks, finish running ones, join */
void
pwcheck_shutdown(void)
{
	struct pwjob	*j;
	int		 i;

	if (!pw_running)
		return;
	pw_running = 0;
	pthread_mutex_lock(&pw_mtx);
	while ((j = pwq_pop(&pw_todo)) != NULL) {
		explicit_bzero(j->pass, j->passlen);
		j->result = PWCHECK_CANCELLED;
		pwq_push(&pw_done, j);
	}
	pw_stopping = 1;
	pthread_cond_broadcast(&pw_cond);
	pthread_mutex_unlock(&pw_mtx);

	for (i = 0; i < pw_nthreads; i++)
		pthread_join(pw_threads[i], NULL);
	pw_nthreads = 0;
	pw_drain();
	if (pw_ev != NULL) {
		event_free(pw_ev);
		pw_ev = NULL;
	}
}
