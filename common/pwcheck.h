/*
 * pwcheck.h - the password-check pool: crypt(3) checks off the event
 * loop, in their own small pool of threads (never the disk workers of
 * work.h), with a bounded number of checks outstanding.
 * check runs crypt_r() in a checker thread; done() then runs in the
 * event loop thread (libevent must have evthread_use_pthreads() called
 * before the base was created).  Used by SMTP AUTH; meant for every
 * password check of the daemon (the web view's basic auth too).
 */
#ifndef WAYMARK_PWCHECK_H
#define WAYMARK_PWCHECK_H

#include <stddef.h>

struct event_base;

#define PWCHECK_MAX_THREADS	2	/* DESIGN.md "Password checks" */
#define PWCHECK_QMAX		16	/* the daemon's queue: waiting checks */

/* results given to done() */
#define PWCHECK_FAIL		0	/* the password does not match */
#define PWCHECK_OK		1	/* crypt(pass, hash) == hash */
#define PWCHECK_CANCELLED	(-1)	/* not checked: pool shutting down */

/*
 * pwcheck_init - start nthreads checkers (1..PWCHECK_MAX_THREADS) bound
 * to base; at most nthreads + qmax checks are outstanding at a time
 * (submitted, done() not yet run).  0, or -1 with errno set.
 */
int	pwcheck_init(struct event_base *base, int nthreads, size_t qmax);
/*
 * pwcheck_submit - check pass against the crypt(3) hash (copies both;
 * the copy of pass is wiped after the check).  done(arg, result) runs
 * later in the loop thread, exactly once.  0, or -1 (and done() is never
 * called) with errno EAGAIN (pool full), ENOMEM or ESHUTDOWN.
 */
int	pwcheck_submit(const char *hash, const char *pass,
	    void (*done)(void *arg, int result), void *arg);
/* pwcheck_pending - checks outstanding (loop thread) */
size_t	pwcheck_pending(void);
/*
 * pwcheck_shutdown - waiting checks are cancelled (done() with
 * PWCHECK_CANCELLED), running ones finish and get their done(), here in
 * the caller; then the checkers are joined.  Afterwards submit fails.
 */
void	pwcheck_shutdown(void);

#endif
