/*
 * work.h - a small fixed pool of worker threads for blocking disk work.
 * run() executes in a worker thread; done() then executes in the event
 * loop thread (via libevent, which must have evthread_use_pthreads()
 * called before the base was created).  Jobs run in no particular order.
 * The loop thread never waits on a disk sync; workers never touch
 * sessions or libevent objects.
 */
#ifndef WAYMARK_WORK_H
#define WAYMARK_WORK_H

struct event_base;

int	work_init(struct event_base *base, int nthreads);
/* work_submit - returns 0, or -1 (ENOMEM / pool stopped) */
int	work_submit(void (*run)(void *), void (*done)(void *), void *arg);
/* work_shutdown - finish queued jobs, run their done() callbacks, join */
void	work_shutdown(void);

#endif
