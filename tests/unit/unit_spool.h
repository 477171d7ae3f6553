/*
 * unit_spool.h - a temporary spool for the unit tests of queue/: made
 * (mkdtemp from a template "/tmp/NAME_XXXXXX"), entered, locked as
 * waymarkd locks it (queue_lock), with the embedded default configuration,
 * an event base and one worker thread; removed again.  Implemented in
 * tests/unit/unit_spool.c.
 */

#ifndef WAYMARK_UNIT_SPOOL_H
#define WAYMARK_UNIT_SPOOL_H

struct config;
struct event_base;

struct unit_spool {
	char			 dir[64];	/* the template, then the path */
	struct config		*cfg;
	struct event_base	*base;
};

/* unit_spool_make - 0, or -1 with the reason on stderr */
int	unit_spool_make(struct unit_spool *u, const char *name);
/* unit_spool_remove - leave it, free what _make made; 0 or -1 */
int	unit_spool_remove(struct unit_spool *u);

#endif
