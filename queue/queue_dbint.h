/*
 * queue_dbint.h - what queue_db.c shares with queue_recover.c, the two
 * files that include db.h: the database files and the environment and
 * database set-up (the same sizes and flags for start and recovery).
 */

#ifndef QUEUE_DBINT_H
#define QUEUE_DBINT_H

#include <db.h>

#include "queue/queue_int.h"

struct qdb_file {
	const char	*file;
	int		 dup;
};
extern const struct qdb_file qdb_files[QDB_COUNT];

/* qdb_is_log, qdb_is_db - a spool file name is a Berkeley DB log file
 * (log.NNNNNNNNNN) / one of qdb_files */
int	qdb_is_log(const char *name);
int	qdb_is_db(const char *name);
/* qdb_drop_cached - the kernel's clean cached pages of every log file
 * and database dropped (spool = working directory), so that a recovery
 * reads them as they are on disk: after a failed write-back they hold
 * what never reached it */
void	qdb_drop_cached(void);
/* qdb_env_new - an environment handle with Waymark's cache and log sizes */
int	qdb_env_new(DB_ENV **ep);
/* qdb_db_open - open or create database i (page checksums when new) */
int	qdb_db_open(DB_ENV *e, int i, DB **dp);
/* qdb_damage_rc - does this error mean a damaged store (not EACCES,
 * ENOSPC, ENOMEM & co)? */
int	qdb_damage_rc(int rc);

#endif
