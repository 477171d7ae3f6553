#include "config.h"
/*
 * work.c - the fixed pool of worker threads for blocking disk work.
 * Owns: the job list (mutex + condition variable), the worker threads,
 *       the list of finished jobs and the libevent event that hands them
 *       back to the loop thread (event_active() from the worker; libevent
 *       is made thread-safe by the caller with evthread_use_pthreads()).
 * Entry points: work_init, work_submit, work_shutdown.
 * Invariants: run() only in a worker, done() only in the loop thread (or
 *       in the caller of work_shutdown); workers never touch libevent
 *       objects other than event_active() on our own event; signals are
 *       blocked in the workers so they reach the loop thread.  While jobs
 *       are outstanding our event is also armed as a long timer, so that
 *       event_base_dispatch() does not return before their done() ran.
 */

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <sys/time.h>
#include <stdlib.h>

#include <event2/event.h>

#include "common/log.h"
#include "common/work.h"

#define WORK_MAX_THREADS	64

struct job {
	void		(*run)(void *);
	void		(*done)(void *);
	void		*arg;
	struct job	*next;
};

struct jobq {
	struct job	*head;
	struct job	*tail;
};

static pthread_mutex_t	 work_mtx = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t	 work_cond = PTHREAD_COND_INITIALIZER;	/* new job / stop */
static pthread_cond_t	 work_idle = PTHREAD_COND_INITIALIZER;	/* a job finished */
static struct jobq	 work_todo, work_done;
static pthread_t	 work_threads[WORK_MAX_THREADS];
static int		 work_nthreads;
static int		 work_active;		/* jobs being run */
static int		 work_running;		/* accepting jobs */
static int		 work_stopping;		/* workers must exit */
static struct event	*work_ev;
static unsigned long	 work_outstanding;	/* submitted, done() not yet run;
						   loop thread only */
/* while jobs are outstanding, work_ev is also a long timer, so the loop
 * does not exit for lack of events before their done() callbacks run */
static const struct timeval work_keepalive = { 3600, 0 };

static void
jobq_push(struct jobq *q, struct job *j)
{
	j->next = NULL;
	if (q->tail != NULL)
		q->tail->next = j;
	else
		q->head = j;
	q->tail = j;
}

static struct job *
jobq_pop(struct jobq *q)
{
	struct job	*j = q->head;

	if (j != NULL) {
		q->head = j->next;
		if (q->head == NULL)
			q->tail = NULL;
	}
	return j;
}

/* work_main - a worker thread: take a job, run it, queue it as done */
static void *
work_main(void *unused)
{
	struct job	*j;

	(void)unused;
	pthread_mutex_lock(&work_mtx);
	for (;;) {
		while (work_todo.head == NULL && !work_stopping)
			pthread_cond_wait(&work_cond, &work_mtx);
		if ((j = jobq_pop(&work_todo)) == NULL)
			break;		/* stopping and nothing left */
		work_active++;
		pthread_mutex_unlock(&work_mtx);

		j->run(j->arg);

		pthread_mutex_lock(&work_mtx);
		work_active--;
		jobq_push(&work_done, j);
		if (work_ev != NULL)
			event_active(work_ev, EV_READ, 0);
		pthread_cond_broadcast(&work_idle);
	}
	pthread_mutex_unlock(&work_mtx);
	return NULL;
}

/* work_drain - call done() of every finished job, in the calling thread */
static void
work_drain(void)
{
	struct jobq	 q;
	struct job	*j;

	pthread_mutex_lock(&work_mtx);
	q = work_done;
	work_done.head = work_done.tail = NULL;
	pthread_mutex_unlock(&work_mtx);

	while ((j = jobq_pop(&q)) != NULL) {
		work_outstanding--;
		if (j->done != NULL)
			j->done(j->arg);
		free(j);
	}
	if (work_outstanding == 0 && work_ev != NULL)
		event_del(work_ev);
}

/* work_done_cb - the loop side: finished jobs are waiting */
static void
work_done_cb(evutil_socket_t fd, short events, void *arg)
{
	(void)fd;
	(void)events;
	(void)arg;
	work_drain();
}

/* work_init - start nthreads workers bound to base */
int
work_init(struct event_base *base, int nthreads)
{
	sigset_t	all, old;
	int		i, r;

	if (work_running || work_nthreads > 0) {
		errno = EBUSY;
		return -1;
	}
	if (nthreads < 1)
		nthreads = 1;
	if (nthreads > WORK_MAX_THREADS)
		nthreads = WORK_MAX_THREADS;
	if ((work_ev = event_new(base, -1, EV_PERSIST, work_done_cb,
	    NULL)) == NULL)
		return -1;

	work_stopping = 0;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	for (i = 0; i < nthreads; i++) {
		if ((r = pthread_create(&work_threads[i], NULL, work_main,
		    NULL)) != 0) {
			errno = r;
			break;
		}
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	work_nthreads = i;
	if (i < nthreads) {
		log_warn("work_init: pthread_create");
		work_running = 1;
		work_shutdown();
		return -1;
	}
	work_running = 1;
	return 0;
}

/* work_submit - queue run(arg) for a worker, then done(arg) in the loop */
int
work_submit(void (*run)(void *), void (*done)(void *), void *arg)
{
	struct job	*j;

	if (!work_running) {
		errno = ESHUTDOWN;
		return -1;
	}
	if ((j = malloc(sizeof(*j))) == NULL)
		return -1;
	j->run = run;
	j->done = done;
	j->arg = arg;
	if (work_outstanding++ == 0)
		event_add(work_ev, &work_keepalive);

	pthread_mutex_lock(&work_mtx);
	jobq_push(&work_todo, j);
	pthread_mutex_unlock(&work_mtx);
	pthread_cond_signal(&work_cond);	/* after the unlock: see ct_enqueue */
	return 0;
}

/*
 * work_shutdown - run every queued job and its done() (here, in the
 * caller: done() may submit follow-up jobs, which are run too), then stop
 * and join the workers.  Afterwards work_submit() returns -1.
 */
void
work_shutdown(void)
{
	int	i;

	if (!work_running)
		return;
	pthread_mutex_lock(&work_mtx);
	for (;;) {
		if (work_done.head != NULL) {
			pthread_mutex_unlock(&work_mtx);
			work_drain();
			pthread_mutex_lock(&work_mtx);
			continue;
		}
		if (work_todo.head == NULL && work_active == 0)
			break;
		if (work_nthreads == 0)
			break;		/* nobody to run them (failed init) */
		pthread_cond_wait(&work_idle, &work_mtx);
	}
	work_running = 0;
	work_stopping = 1;
	pthread_cond_broadcast(&work_cond);
	pthread_mutex_unlock(&work_mtx);

	for (i = 0; i < work_nthreads; i++)
		pthread_join(work_threads[i], NULL);
	work_nthreads = 0;
	work_drain();

	if (work_ev != NULL) {
		event_free(work_ev);
		work_ev = NULL;
	}
}
