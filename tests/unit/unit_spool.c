#include "config.h"
/*
 * unit_spool.c - the temporary spool of the queue/ unit tests (see
 * unit_spool.h).
 */

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <event2/event.h>

#include "common/cfg.h"
#include "common/work.h"
#include "queue/queue.h"
#include "tests/unit/unit_spool.h"

int
unit_spool_make(struct unit_spool *u, const char *name)
{
	char	err[512];
	int	fd;

	u->cfg = NULL;
	u->base = NULL;
	if (snprintf(u->dir, sizeof(u->dir), "/tmp/%s_XXXXXX", name) >=
	    (int)sizeof(u->dir) || mkdtemp(u->dir) == NULL ||
	    chdir(u->dir) == -1) {
		perror("unit_spool_make: temporary spool");
		return -1;
	}
	if ((u->cfg = cfg_load(NULL, err, sizeof(err))) == NULL) {
		fprintf(stderr, "unit_spool_make: %s\n", err);
		return -1;
	}
	if ((u->base = event_base_new()) == NULL || work_init(u->base, 1) == -1) {
		fprintf(stderr, "unit_spool_make: event base or worker\n");
		return -1;
	}
	if ((fd = open(u->dir, O_RDONLY | O_DIRECTORY)) == -1) {
		perror("unit_spool_make: open");
		return -1;
	}
	if (queue_lock(fd, u->dir, -1, err, sizeof(err)) == -1) {
		fprintf(stderr, "queue_lock: %s\n", err);
		close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

int
unit_spool_remove(struct unit_spool *u)
{
	char	cmd[128];

	work_shutdown();
	if (u->base != NULL)
		event_base_free(u->base);
	cfg_free(u->cfg);
	u->base = NULL;
	u->cfg = NULL;
	(void)snprintf(cmd, sizeof(cmd), "rm -rf '%s'", u->dir);
	return chdir("/") == 0 && system(cmd) == 0 ? 0 : -1;
}
