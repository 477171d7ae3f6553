#include "config.h"
/*
 * benchspool.c - enter_spool (benchlib.h), for the benchmark tools that
 * load a spool through queue/ (httpload, trkload): as waymarkd, create
 * or check the spool, take its lock and drop to `user`.
 */

#include <errno.h>
#include <grp.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cfg.h"
#include "common/util.h"
#include "queue/queue.h"
#include "bench/benchlib.h"

/* enter_spool - create/check the spool, lock it, drop to `user` */
void
enter_spool(const struct config *cfg)
{
	struct stat	 st;
	char		 why[512];
	long		 uid = -1, gid = -1;
	int		 fd;

	if (geteuid() == 0 &&
	    cfg_check_user(cfg, &uid, &gid, why, sizeof(why)) == -1)
		die("%s", why);
	if ((fd = dir_make_owned(cfg->spool, 0700, uid, gid, 1, &st, why,
	    sizeof(why))) == -1)
		die("spool: %s", why);
	if (fchdir(fd) == -1)
		die("cannot enter spool %s: %s", cfg->spool, strerror(errno));
	if (queue_lock(fd, cfg->spool, uid != -1 ? uid : (long)geteuid(),
	    why, sizeof(why)) == -1)
		die("%s", why);
	close(fd);
	if (uid != -1) {
		gid_t g = (gid_t)gid;

		if (setgroups(1, &g) == -1 || setgid(g) == -1 ||
		    setuid((uid_t)uid) == -1)
			die("cannot drop privileges to %s: %s", cfg->user,
			    strerror(errno));
	}
}
