#include "config.h"
/*
 * test_pool.c - unit tests of the reuse of body files (queue/queue_pool.c)
 * on a temporary spool (queue_lock + queue_init with the embedded default
 * configuration, as waymarkd starts it): a released body file is kept as
 * body/free.N and the next queue_body_create renames that same inode to
 * its new queue id; queue_body_end cuts the older content off at the
 * writer's offset, so a shorter message never carries the end of a longer
 * one (and a longer one is not cut); a discarded transaction's file, a
 * file over the size bound and one beyond 32 MiB kept are removed; a
 * file whose name is taken is never replaced; one unused for 30 s is
 * removed; the shutdown removes every kept file, and a start removes any
 * left behind.
 */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>

#include <cmocka.h>
#include <event2/event.h>

#include "common/cfg.h"
#include "common/work.h"
#include "queue/queue_int.h"
#include "tests/unit/unit_spool.h"

static struct unit_spool	 us;

/* nfree - how many body/free.* files there are */
static int
nfree(void)
{
	DIR		*d;
	struct dirent	*de;
	int		 n = 0;

	assert_non_null(d = opendir("body"));
	while ((de = readdir(d)) != NULL)
		if (strncmp(de->d_name, "free.", 5) == 0)
			n++;
	closedir(d);
	return n;
}

/* put - n octets of c into fd with write() */
static void
put(int fd, int c, size_t n)
{
	char	buf[4096];
	size_t	k;

	memset(buf, c, sizeof(buf));
	while (n > 0) {
		k = n < sizeof(buf) ? n : sizeof(buf);
		assert_int_equal(write(fd, buf, k), (ssize_t)k);
		n -= k;
	}
}

/* ino_of - the inode of body/qid; its size in *size */
static ino_t
ino_of(const char *qid, off_t *size)
{
	char		path[64];
	struct stat	st;

	assert_true(snprintf(path, sizeof(path), "body/%s", qid) <
	    (int)sizeof(path));
	assert_int_equal(stat(path, &st), 0);
	if (size != NULL)
		*size = st.st_size;
	return st.st_ino;
}

/* release - close fd and give body/qid to the pool, as msg_release
 * does when a message leaves the queue */
static void
release(const char *qid, int fd)
{
	char	path[64];

	if (fd >= 0)
		close(fd);
	assert_true(snprintf(path, sizeof(path), "body/%s", qid) <
	    (int)sizeof(path));
	pool_put(path);
}

static void
open_queue(void)
{
	char	err[512];

	if (queue_init(us.cfg, us.base, err, sizeof(err)) == -1)
		fail_msg("queue_init: %s", err);
}

static void
test_reuse_and_cut(void **state)
{
	char	qa[QID_SIZE], qb[QID_SIZE], qc[QID_SIZE], buf[64];
	ino_t	ino;
	off_t	size;
	int	fd;

	(void)state;
	open_queue();
	assert_int_equal(nfree(), 0);

	/* a long content, released: kept for reuse */
	assert_int_equal(queue_body_create(qa, &fd), 0);
	put(fd, 'A', 10000);
	ino = ino_of(qa, NULL);
	release(qa, fd);
	assert_int_equal(nfree(), 1);
	assert_true(snprintf(buf, sizeof(buf), "body/%s", qa) <
	    (int)sizeof(buf));
	assert_int_equal(access(buf, F_OK), -1);

	/* the next body is that inode under its own name, written from
	 * the start; the older content is cut off at the writer's end */
	assert_int_equal(queue_body_create(qb, &fd), 0);
	assert_string_not_equal(qa, qb);
	assert_int_equal(nfree(), 0);
	assert_int_equal(ino_of(qb, NULL), ino);
	put(fd, 'B', 10);
	assert_int_equal(queue_body_end(fd), 0);
	(void)ino_of(qb, &size);
	assert_int_equal(size, 10);
	close(fd);
	assert_true(snprintf(buf, sizeof(buf), "body/%s", qb) <
	    (int)sizeof(buf));
	assert_int_equal((fd = open(buf, O_RDONLY)) >= 0, 1);
	memset(buf, 0, sizeof(buf));
	assert_int_equal(read(fd, buf, sizeof(buf)), 10);
	assert_memory_equal(buf, "BBBBBBBBBB", 10);
	close(fd);

	/* a longer content than the reused file held is not cut */
	release(qb, -1);
	assert_int_equal(nfree(), 1);
	assert_int_equal(queue_body_create(qc, &fd), 0);
	assert_int_equal(ino_of(qc, NULL), ino);
	put(fd, 'C', 5000);
	assert_int_equal(queue_body_end(fd), 0);
	(void)ino_of(qc, &size);
	assert_int_equal(size, 5000);
	/* twice is harmless */
	assert_int_equal(queue_body_end(fd), 0);
	(void)ino_of(qc, &size);
	assert_int_equal(size, 5000);
	release(qc, fd);
	assert_int_equal(nfree(), 1);

	/* the shutdown removes the kept files */
	queue_shutdown();
	assert_int_equal(nfree(), 0);
}

static void
test_bounds(void **state)
{
	char	qa[QID_SIZE], qb[QID_SIZE];
	int	fd;

	(void)state;
	open_queue();
	/* a discarded transaction's file is unlinked, not kept (its space
	 * is free at once) */
	assert_int_equal(queue_body_create(qa, &fd), 0);
	put(fd, 'D', 100);
	queue_body_discard(qa, fd);
	assert_int_equal(nfree(), 0);

	/* over the size bound: removed, not kept */
	assert_int_equal(queue_body_create(qa, &fd), 0);
	put(fd, 'L', 256 * 1024 + 1);
	release(qa, fd);
	assert_int_equal(nfree(), 0);

	/* at most 32 MiB together: 128 files of 256 KiB are kept, the
	 * 129th is removed */
	{
		char	q[130][QID_SIZE];
		int	i;

		for (i = 0; i < 129; i++) {
			assert_int_equal(queue_body_create(q[i], &fd), 0);
			put(fd, 'b', 256 * 1024);
			close(fd);
		}
		for (i = 0; i < 129; i++)
			release(q[i], -1);
		assert_int_equal(nfree(), 128);
		pool_expire_idle(time(NULL) + 31);
		assert_int_equal(nfree(), 0);
	}

	/* a kept file is never renamed over an existing name: the file
	 * stays kept, the caller gets EEXIST */
	assert_int_equal(queue_body_create(qa, &fd), 0);
	put(fd, 'x', 100);
	release(qa, fd);
	assert_int_equal(nfree(), 1);
	assert_int_equal((fd = open("body/taken", O_WRONLY | O_CREAT, 0600))
	    >= 0, 1);
	put(fd, 'T', 3);
	close(fd);
	errno = 0;
	assert_int_equal(pool_take("body/taken"), -1);
	assert_int_equal(errno, EEXIST);
	assert_int_equal(nfree(), 1);
	assert_int_equal(unlink("body/taken"), 0);
	fd = pool_take("body/taken");
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(nfree(), 0);
	assert_int_equal(unlink("body/taken"), 0);

	/* unused for 30 s: removed (the timer's check, with a later now) */
	assert_int_equal(queue_body_create(qa, &fd), 0);
	put(fd, 'i', 100);
	release(qa, fd);
	assert_int_equal(nfree(), 1);
	pool_expire_idle(time(NULL));
	assert_int_equal(nfree(), 1);
	pool_expire_idle(time(NULL) + 31);
	assert_int_equal(nfree(), 0);

	/* left behind by a crash: removed at the next start */
	assert_int_equal(queue_body_create(qb, &fd), 0);
	put(fd, 'y', 100);
	release(qb, fd);
	assert_int_equal(nfree(), 1);
	queue_shutdown();
	assert_int_equal(nfree(), 0);
	assert_true((fd = open("body/free.99", O_WRONLY | O_CREAT, 0600)) >= 0);
	put(fd, 'z', 100);
	close(fd);
	assert_int_equal(nfree(), 1);
	open_queue();
	assert_int_equal(nfree(), 0);
	queue_shutdown();
}

static int
setup(void **state)
{
	(void)state;
	return unit_spool_make(&us, "test_pool");
}

static int
teardown(void **state)
{
	(void)state;
	return unit_spool_remove(&us);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_reuse_and_cut),
		cmocka_unit_test(test_bounds),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
