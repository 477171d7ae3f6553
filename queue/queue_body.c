#include "config.h"
/*
 * queue_body.c - changing a body file before its commit: a milter's
 * header or body modifications are written to body/QID.new, which then
 * replaces body/QID (rename), so that queue_accept syncs the new file
 * and the body directory before the records name it (DESIGN.md "At the
 * end of DATA").  A body/QID.new left by a crash is removed at start
 * (queue_main.c clean_bodies: no message has that name).
 * Paths are relative to the spool, the working directory.
 */

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#include "common/log.h"
#include "queue/queue.h"

/* body_path - "body/QID" or "body/QID.new"; -1 for a bad qid */
static int
body_path(char *path, size_t len, const char *qid, const char *suffix)
{
	int n;

	if (qid == NULL || !qid_valid(qid))
		return -1;
	n = snprintf(path, len, "body/%s%s", qid, suffix);
	return (n < 0 || (size_t)n >= len) ? -1 : 0;
}

/* queue_body_read - body/QID opened for reading */
int
queue_body_read(const char *qid)
{
	char path[64];

	if (body_path(path, sizeof(path), qid, "") == -1) {
		errno = EINVAL;
		return -1;
	}
	return open(path, O_RDONLY | O_CLOEXEC);
}

/* queue_body_rewrite - body/QID.new created (truncated) for writing */
int
queue_body_rewrite(const char *qid)
{
	char	path[64];
	int	fd;

	if (body_path(path, sizeof(path), qid, ".new") == -1) {
		errno = EINVAL;
		return -1;
	}
	if ((fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC |
	    O_NOFOLLOW, 0600)) == -1)
		log_warn("queue: cannot create %s", path);
	return fd;
}

/* queue_body_swap - body/QID.new becomes body/QID; *fd is replaced */
int
queue_body_swap(const char *qid, int newfd, int *fd)
{
	char	from[64], to[64];

	if (body_path(from, sizeof(from), qid, ".new") == -1 ||
	    body_path(to, sizeof(to), qid, "") == -1) {
		errno = EINVAL;
		return -1;
	}
	if (rename(from, to) == -1) {
		log_warn("queue: rename %s", from);
		return -1;
	}
	if (*fd >= 0)
		close(*fd);
	*fd = newfd;
	return 0;
}

/* queue_body_rewrite_abort - close and remove body/QID.new */
void
queue_body_rewrite_abort(const char *qid, int newfd)
{
	char path[64];

	if (newfd >= 0)
		close(newfd);
	if (body_path(path, sizeof(path), qid, ".new") == 0 &&
	    unlink(path) == -1 && errno != ENOENT)
		log_warn("queue: cannot remove %s", path);
}
