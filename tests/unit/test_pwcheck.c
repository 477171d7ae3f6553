#include "config.h"
/*
 * test_pwcheck.c - unit tests of common/pwcheck.c, the password-check
 * pool: results of matching / wrong / invalid hashes, done() in the
 * loop thread exactly once, the bound on outstanding checks (EAGAIN
 * when full, room again once results are delivered), shutdown
 * cancelling waiting checks, submit after shutdown.
 */

#include <crypt.h>
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include <event2/event.h>
#include <event2/thread.h>

#include "common/pwcheck.h"

#define NELEM(a)	(sizeof(a) / sizeof((a)[0]))
#define NRES		16

static struct event_base	*base;
static pthread_t		 loop_thread;
static int			 results[NRES];
static int			 calls[NRES];
static int			 wrong_thread;

/* done_cb - record the result of check number (intptr_t)arg */
static void
done_cb(void *arg, int result)
{
	intptr_t	i = (intptr_t)arg;

	if (!pthread_equal(pthread_self(), loop_thread))
		wrong_thread++;
	results[i] = result;
	calls[i]++;
}

static void
reset(void)
{
	size_t	i;

	for (i = 0; i < NRES; i++) {
		results[i] = -99;
		calls[i] = 0;
	}
	wrong_thread = 0;
}

/* run_until_idle - run the loop until no check is outstanding (30 s max) */
static void
run_until_idle(void)
{
	time_t	deadline = time(NULL) + 30;

	while (pwcheck_pending() > 0) {
		if (time(NULL) > deadline)
			fail_msg("checks still pending after 30 s");
		event_base_loop(base, EVLOOP_NONBLOCK);
		usleep(1000);
	}
}

/* hash_of - crypt(pass, setting) into out */
static void
hash_of(const char *pass, const char *setting, char *out, size_t outlen)
{
	struct crypt_data	*cd;
	const char		*h;

	assert_non_null(cd = calloc(1, sizeof(*cd)));
	assert_non_null(h = crypt_r(pass, setting, cd));
	assert_true(h[0] != '*');
	assert_true(strlen(h) < outlen);
	memcpy(out, h, strlen(h) + 1);
	free(cd);
}

static int
setup(void **state)
{
	(void)state;
	if (evthread_use_pthreads() == -1)
		return -1;
	if ((base = event_base_new()) == NULL)
		return -1;
	loop_thread = pthread_self();
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	pwcheck_shutdown();
	event_base_free(base);
	return 0;
}

struct check_case {
	const char	*name;
	const char	*pass;
	int		 use_hash;	/* 1: the computed hash, 0: hash below */
	const char	*hash;
	int		 want;
};

static void
test_results(void **state)
{
	static const struct check_case cases[] = {
		{ "right password", "s3cret pass", 1, NULL, PWCHECK_OK },
		{ "wrong password", "s3cret pasS", 1, NULL, PWCHECK_FAIL },
		{ "empty password", "", 1, NULL, PWCHECK_FAIL },
		{ "locked hash", "s3cret pass", 0, "!", PWCHECK_FAIL },
		{ "invalid hash", "x", 0, "*", PWCHECK_FAIL },
		{ "setting only (dummy)", "s3cret pass", 0, "$6$saltsalt$",
		  PWCHECK_FAIL },
	};
	char	hash[256];
	size_t	i;

	(void)state;
	hash_of("s3cret pass", "$6$saltsalt$", hash, sizeof(hash));
	assert_int_equal(pwcheck_init(base, 2, 8), 0);
	reset();
	for (i = 0; i < NELEM(cases); i++)
		assert_int_equal(pwcheck_submit(cases[i].use_hash ? hash :
		    cases[i].hash, cases[i].pass, done_cb, (void *)(intptr_t)i),
		    0);
	run_until_idle();
	for (i = 0; i < NELEM(cases); i++) {
		if (calls[i] != 1)
			fail_msg("%s: done() called %d times, want 1",
			    cases[i].name, calls[i]);
		if (results[i] != cases[i].want)
			fail_msg("%s: got %d, want %d", cases[i].name,
			    results[i], cases[i].want);
	}
	assert_int_equal(wrong_thread, 0);
	pwcheck_shutdown();
}

/* at most nthreads + qmax outstanding: the next one is refused */
static void
test_queue_full(void **state)
{
	char	hash[256];
	int	i;

	(void)state;
	hash_of("pw", "$6$rounds=20000$abcdefgh$", hash, sizeof(hash));
	assert_int_equal(pwcheck_init(base, 1, 2), 0);
	reset();
	for (i = 0; i < 3; i++)
		assert_int_equal(pwcheck_submit(hash, "pw", done_cb,
		    (void *)(intptr_t)i), 0);
	assert_int_equal(pwcheck_pending(), 3);
	errno = 0;
	assert_int_equal(pwcheck_submit(hash, "pw", done_cb,
	    (void *)(intptr_t)3), -1);
	assert_int_equal(errno, EAGAIN);
	run_until_idle();
	for (i = 0; i < 3; i++) {
		assert_int_equal(calls[i], 1);
		assert_int_equal(results[i], PWCHECK_OK);
	}
	assert_int_equal(calls[3], 0);		/* refused: never called */
	/* room again once the results were delivered */
	assert_int_equal(pwcheck_submit(hash, "nope", done_cb,
	    (void *)(intptr_t)4), 0);
	run_until_idle();
	assert_int_equal(calls[4], 1);
	assert_int_equal(results[4], PWCHECK_FAIL);
	assert_int_equal(wrong_thread, 0);
	pwcheck_shutdown();
}

/* shutdown: waiting checks cancelled, every done() once, then refused */
static void
test_shutdown(void **state)
{
	char	hash[256];
	int	i;

	(void)state;
	/* slow enough (~0.1-0.5 s each) that the last one is still waiting */
	hash_of("pw", "$6$rounds=999999$abcdefgh$", hash, sizeof(hash));
	assert_int_equal(pwcheck_init(base, 1, 4), 0);
	reset();
	for (i = 0; i < 4; i++)
		assert_int_equal(pwcheck_submit(hash, "pw", done_cb,
		    (void *)(intptr_t)i), 0);
	pwcheck_shutdown();
	assert_int_equal(pwcheck_pending(), 0);
	for (i = 0; i < 4; i++)
		assert_int_equal(calls[i], 1);
	assert_int_equal(results[3], PWCHECK_CANCELLED);
	errno = 0;
	assert_int_equal(pwcheck_submit(hash, "pw", done_cb,
	    (void *)(intptr_t)5), -1);
	assert_int_equal(errno, ESHUTDOWN);
	assert_int_equal(calls[5], 0);
	/* and it can start again */
	assert_int_equal(pwcheck_init(base, 1, 1), 0);
	pwcheck_shutdown();
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_results),
		cmocka_unit_test(test_queue_full),
		cmocka_unit_test(test_shutdown),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
