#include "config.h"
/*
 * queue_pool.c - body files of finished messages kept for reuse.
 * Owns: a bounded list of spool files body/free.N, each the body file of
 *       a message that left the queue, renamed instead of unlinked; queue_body_create
 *       renames the newest one to body/QID and the session overwrites it
 *       from offset 0, and queue_body_end cuts off what is left of the
 *       old content.  The inode and its data blocks are reused: creating
 *       and removing one file per message costs the file system an inode
 *       allocation (on ext4 a scan of the group's inode bitmap, past
 *       every inode freed in the last minutes when it has no journal)
 *       and a block allocation at each sync; a rename and an overwrite
 *       in place cost neither.
 * Bounds: at most POOL_MAX files of at most POOL_FILE_MAX octets each
 *       and POOL_BYTES together (beyond, a file is unlinked): enough for
 *       a burst's backlog of ordinary messages to come back; a file unused for POOL_IDLE seconds is
 *       unlinked (a timer while the pool is not empty), so the content of
 *       finished messages does not stay in the spool once the traffic
 *       stops; every file is unlinked at shutdown, and any body/free.N
 *       found at start is removed with the other stale files
 *       (queue_main.c clean_bodies).
 * Safety: a file goes back to the pool only when nothing may still read
 *       it under its old name: msg_release (no delivery job holds the
 *       message; a discarded transaction's file is unlinked, its space
 *       free at once, as after a full disk); a message
 *       whose content was handed out (queue_message_open: a content
 *       filter may still be reading) is unlinked instead.  The rename to
 *       body/QID never replaces a file (RENAME_NOREPLACE).
 * Threads: the loop thread, but a mutex keeps it safe for any caller.
 */

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>

#include <event2/event.h>

#include "common/log.h"
#include "queue/queue_int.h"

#define POOL_MAX	1024
#define POOL_FILE_MAX	(256 * 1024)
#define POOL_BYTES	(32 * 1024 * 1024)
#define POOL_IDLE	30		/* seconds */
#define POOL_TICK	10		/* seconds between expiry checks */

struct pool_ent {
	unsigned	id;
	time_t		since;
	off_t		size;
};

static pthread_mutex_t	 pool_mtx = PTHREAD_MUTEX_INITIALIZER;
static struct pool_ent	 pool[POOL_MAX];	/* ring: oldest at pool_head */
static size_t		 pool_head, pool_n;
static off_t		 pool_bytes;	/* their sizes together */
static unsigned		 pool_next_id;
static int		 pool_off = 1;	/* before pool_start, after pool_stop,
					   or when renameat2 is missing */
static struct event	*pool_ev;

static void
pool_name(char *buf, size_t len, unsigned id)
{
	snprintf(buf, len, "body/free.%u", id);
}

static int
pool_rename(const char *from, const char *to)
{
	return renameat2(AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE);
}

/* pool_expire - unlink files idle since before cutoff (oldest first);
 * all of them when cutoff is 0 (pool_mtx held) */
static void
pool_expire(time_t cutoff)
{
	char	name[64];

	while (pool_n > 0 &&
	    (cutoff == 0 || pool[pool_head].since < cutoff)) {
		pool_name(name, sizeof(name), pool[pool_head].id);
		if (unlink(name) == -1 && errno != ENOENT)
			log_warn("queue: cannot remove %s", name);
		pool_bytes -= pool[pool_head].size;
		pool_head = (pool_head + 1) % POOL_MAX;
		pool_n--;
	}
}

static void
pool_arm(void)
{
	struct timeval	tv = { POOL_TICK, 0 };

	if (pool_ev != NULL && pool_n > 0 && !evtimer_pending(pool_ev, NULL))
		evtimer_add(pool_ev, &tv);
}

void
pool_expire_idle(time_t now)
{
	pthread_mutex_lock(&pool_mtx);
	pool_expire(now - POOL_IDLE);
	pool_arm();
	pthread_mutex_unlock(&pool_mtx);
}

static void
pool_tick(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	pool_expire_idle(time(NULL));
}

int
pool_start(struct event_base *base)
{
	if ((pool_ev = evtimer_new(base, pool_tick, NULL)) == NULL)
		return -1;
	pthread_mutex_lock(&pool_mtx);
	pool_head = pool_n = 0;
	pool_bytes = 0;
	pool_off = 0;
	pthread_mutex_unlock(&pool_mtx);
	return 0;
}

void
pool_stop(void)
{
	pthread_mutex_lock(&pool_mtx);
	pool_expire(0);
	pool_off = 1;
	pthread_mutex_unlock(&pool_mtx);
	if (pool_ev != NULL) {
		event_free(pool_ev);
		pool_ev = NULL;
	}
}

void
pool_put(const char *path)
{
	struct stat	st;
	char		name[64];
	unsigned	id;
	int		kept = 0;

	pthread_mutex_lock(&pool_mtx);
	if (!pool_off && pool_n < POOL_MAX && lstat(path, &st) == 0 &&
	    S_ISREG(st.st_mode) && st.st_size <= POOL_FILE_MAX &&
	    pool_bytes + st.st_size <= POOL_BYTES) {
		id = pool_next_id++;
		pool_name(name, sizeof(name), id);
		if (pool_rename(path, name) == 0) {
			pool[(pool_head + pool_n) % POOL_MAX] =
			    (struct pool_ent){ id, time(NULL), st.st_size };
			pool_n++;
			pool_bytes += st.st_size;
			kept = 1;
			pool_arm();
		} else if (errno == EINVAL || errno == ENOSYS) {
			log_warn("queue: renameat2 %s (body files are no "
			    "longer reused)", path);
			pool_off = 1;
		}
	}
	pthread_mutex_unlock(&pool_mtx);
	if (!kept && unlink(path) == -1 && errno != ENOENT)
		log_warn("queue: cannot remove %s", path);
}

int
pool_take(const char *path)
{
	char	name[64];
	size_t	last;
	int	fd;

	pthread_mutex_lock(&pool_mtx);
	if (pool_off || pool_n == 0) {
		pthread_mutex_unlock(&pool_mtx);
		errno = ENOENT;
		return -1;
	}
	last = (pool_head + pool_n - 1) % POOL_MAX;	/* the newest */
	pool_name(name, sizeof(name), pool[last].id);
	if (pool_rename(name, path) == -1) {
		int saved = errno;

		if (saved != EEXIST) {	/* EEXIST: the caller takes a new
					   name, the file stays */
			pool_n--;
			pool_bytes -= pool[last].size;
			(void)unlink(name);
		}
		pthread_mutex_unlock(&pool_mtx);
		errno = saved;
		return -1;
	}
	pool_n--;
	pool_bytes -= pool[last].size;
	pthread_mutex_unlock(&pool_mtx);
	if ((fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW)) == -1) {
		int saved = errno;

		(void)unlink(path);
		errno = saved;
	}
	return fd;
}

int
queue_body_end(int fd)
{
	struct stat	st;
	off_t		pos;

	if ((pos = lseek(fd, 0, SEEK_CUR)) == -1 || fstat(fd, &st) == -1)
		return -1;
	if (st.st_size > pos && ftruncate(fd, pos) == -1)
		return -1;
	return 0;
}
