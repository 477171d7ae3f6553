#include "config.h"
/*
 * queue_recover.c - `waymarkd --recover`: catastrophic recovery of a
 * damaged spool, keeping what can be kept.  Entry point: queue_recover.
 * Steps (each reported on the output, one line each):
 *  1. Berkeley DB catastrophic recovery (DB_RECOVER_FATAL) replays every
 *     log file there is; when even that fails, the databases are taken
 *     as they are on disk.
 *  2. The databases are detached from the old log (lsn_reset); the old
 *     log files and region files are moved to recover-TIME/ and a new
 *     environment starts with a fresh log.
 *  3. Each database is verified (DB->verify); a damaged one is moved to
 *     recover-TIME/ and rebuilt from what DB_SALVAGE reads from it.
 *  4. Schedule entries whose message cannot be read are removed, and
 *     body files of messages that are no longer queued are moved to
 *     recover-TIME/body/ (the next start would delete them).
 * Nothing is deleted.  The caller holds the spool lock (queue_lock) and
 * runs as the spool's user.
 * Not here: detecting the damage at start (queue_db.c).
 */

#include <sys/stat.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "queue/queue_dbint.h"

#define ENV_FLAGS	(DB_CREATE | DB_INIT_TXN | DB_INIT_LOG | \
			 DB_INIT_LOCK | DB_INIT_MPOOL | DB_THREAD)
/* without a log: files whose LSNs are past a log's end can be opened */
#define BARE_FLAGS	(DB_CREATE | DB_INIT_MPOOL | DB_THREAD | DB_PRIVATE)

static char	bak[64];		/* recover-YYYYmmddTHHMMSS */
static int	env_panic;		/* the current environment panicked */
static DB_ENV	*kept_envs[16];		/* panicked ones, never closed */
static size_t	nkept_envs;

/* panic_cb - Berkeley DB's events: a damaged page panics the environment */
static void
panic_cb(DB_ENV *e, u_int32_t event, void *info)
{
	(void)e;
	(void)info;
	if (event == DB_EVENT_PANIC)
		env_panic = 1;
}

/* is_region - Berkeley DB's region files in the environment home */
static int
is_region(const char *n)
{
	return strncmp(n, "__db.", 5) == 0;
}

/* set_aside - move the spool file name into the backup directory */
static int
set_aside(FILE *out, const char *name, char *err, size_t errlen)
{
	char	to[300];

	if (snprintf(to, sizeof(to), "%s/%s", bak, name) >= (int)sizeof(to)) {
		snprintf(err, errlen, "name too long: %s", name);
		return -1;
	}
	if (rename(name, to) == -1) {
		snprintf(err, errlen, "cannot move %s to %s: %s", name, to,
		    strerror(errno));
		return -1;
	}
	fprintf(out, "waymarkd: recover: moved %s to %s\n", name, to);
	return 0;
}

/* set_aside_env - move the log and region files out of the way */
static int
set_aside_env(FILE *out, char *err, size_t errlen)
{
	DIR		*d;
	struct dirent	*de;
	int		 r = 0;

	if ((d = opendir(".")) == NULL) {
		snprintf(err, errlen, "cannot read the spool: %s",
		    strerror(errno));
		return -1;
	}
	while (r == 0 && (de = readdir(d)) != NULL)
		if (qdb_is_log(de->d_name) || is_region(de->d_name))
			r = set_aside(out, de->d_name, err, errlen);
	closedir(d);
	return r;
}

/* db_exists - does the database file of index i exist? */
static int
db_exists(int i)
{
	struct stat	st;

	return stat(qdb_files[i].file, &st) == 0;
}

/* env_open - an environment with flags, or NULL (err set) */
static DB_ENV *
env_open(u_int32_t flags, char *err, size_t errlen)
{
	DB_ENV	*e;
	int	 rc;

	env_panic = 0;
	if ((rc = qdb_env_new(&e)) == 0 &&
	    (rc = e->set_event_notify(e, panic_cb)) == 0 &&
	    (rc = e->open(e, ".", flags, 0600)) != 0)
		e->close(e, 0);
	if (rc != 0) {
		snprintf(err, errlen, "cannot open a Berkeley DB environment "
		    "in the spool: %s", db_strerror(rc));
		return NULL;
	}
	return e;
}

/* env_done - close e and remove its region files (never a log or a
 * database); a panicked environment cannot be closed cleanly: it is
 * kept, unused, until exit */
static void
env_done(DB_ENV *e)
{
	if (env_panic && nkept_envs < sizeof(kept_envs) / sizeof(kept_envs[0]))
		kept_envs[nkept_envs++] = e;
	else
		e->close(e, 0);
	env_panic = 0;
	if (db_env_create(&e, 0) == 0) {
		(void)e->set_flags(e, DB_NOPANIC, 1);
		(void)e->remove(e, ".", DB_FORCE);
	}
}

/* reset_lsns - detach every database from the log it was written
 * with; e NULL: each in an environment of its own (a damaged page
 * panics the environment it is read in) */
static void
reset_lsns(FILE *out, DB_ENV *e)
{
	char	err[256];
	DB_ENV	*own;
	int	i, rc;

	for (i = 0; i < QDB_COUNT; i++) {
		if (!db_exists(i))
			continue;
		if ((own = e) == NULL &&
		    (own = env_open(BARE_FLAGS, err, sizeof(err))) == NULL) {
			fprintf(out, "waymarkd: recover: %s\n", err);
			continue;
		}
		if ((rc = own->lsn_reset(own, qdb_files[i].file, 0)) != 0)
			fprintf(out, "waymarkd: recover: %s: cannot reset its "
			    "log sequence numbers: %s\n", qdb_files[i].file,
			    db_strerror(rc));
		if (e == NULL)
			env_done(own);
	}
}

/* replay - steps 1 and 2: catastrophic recovery, then detach the files
 * from the old log and set it aside */
static int
replay(FILE *out, char *err, size_t errlen)
{
	DB_ENV	*e;
	int	 rc;

	env_panic = 0;
	if ((rc = qdb_env_new(&e)) != 0 ||
	    (rc = e->set_event_notify(e, panic_cb)) != 0) {
		snprintf(err, errlen, "db_env_create: %s", db_strerror(rc));
		return -1;
	}
	qdb_drop_cached();
	rc = e->open(e, ".", ENV_FLAGS | DB_RECOVER_FATAL, 0600);
	if (rc == 0) {
		fprintf(out, "waymarkd: recover: catastrophic recovery "
		    "replayed the log files\n");
		if ((rc = e->txn_checkpoint(e, 0, 0, DB_FORCE)) != 0)
			fprintf(out, "waymarkd: recover: checkpoint: %s\n",
			    db_strerror(rc));
		reset_lsns(out, e);
		env_done(e);
		return set_aside_env(out, err, errlen);
	}
	fprintf(out, "waymarkd: recover: catastrophic recovery failed (%s): "
	    "the databases are taken as they are on disk\n", db_strerror(rc));
	env_done(e);
	if (set_aside_env(out, err, errlen) == -1)
		return -1;
	reset_lsns(out, NULL);
	return 0;
}

/* unhex - a salvage data line (" 6162...") into buf; its length or -1 */
static ssize_t
unhex(const char *line, unsigned char *buf)
{
	size_t	n = 0;
	int	hi, lo;

	for (line++; line[0] != '\0' && line[0] != '\n'; line += 2) {
		if ((hi = hex_digit(line[0])) < 0 || (lo = hex_digit(line[1])) < 0)
			return -1;
		buf[n++] = (unsigned char)(hi << 4 | lo);
	}
	return (ssize_t)n;
}

/* load_salvage - put every key/data pair of the DB_SALVAGE output f into
 * d; the number of pairs kept */
static size_t
load_salvage(FILE *f, DB *d)
{
	char		*line = NULL, *kline = NULL;
	unsigned char	*kb = NULL, *vb = NULL;
	size_t		 cap = 0, n = 0;
	ssize_t		 len, kl, vl;
	int		 data = 0;
	DBT		 k, v;

	while ((len = getline(&line, &cap, f)) != -1) {
		if (strncmp(line, "HEADER=END", 10) == 0) {
			data = 1;
			continue;
		}
		if (strncmp(line, "DATA=END", 8) == 0) {
			data = 0;
			free(kline);
			kline = NULL;
			continue;
		}
		if (!data || line[0] != ' ')
			continue;
		if (kline == NULL) {		/* a key; its data follows */
			kline = line;
			line = NULL;
			cap = 0;
			continue;
		}
		free(kb);
		free(vb);
		kb = malloc(strlen(kline) / 2 + 1);
		vb = malloc((size_t)len / 2 + 1);
		if (kb != NULL && vb != NULL &&
		    (kl = unhex(kline, kb)) > 0 && (vl = unhex(line, vb)) >= 0) {
			memset(&k, 0, sizeof(k));
			memset(&v, 0, sizeof(v));
			k.data = kb;
			k.size = (u_int32_t)kl;
			v.data = vb;
			v.size = (u_int32_t)vl;
			if (d->put(d, NULL, &k, &v, 0) == 0)
				n++;
		}
		free(kline);
		kline = NULL;
	}
	free(line);
	free(kline);
	free(kb);
	free(vb);
	return n;
}

/* rebuild - step 3 for database i: salvage, set aside, load a new
 * file; each step in an environment of its own */
static int
rebuild(FILE *out, int i, char *err, size_t errlen)
{
	const char	*file = qdb_files[i].file;
	char		 path[300];
	DB_ENV		*e;
	FILE		*f;
	DB		*d;
	size_t		 n;
	int		 rc;

	if (snprintf(path, sizeof(path), "%s/%s.salvage", bak, file) >=
	    (int)sizeof(path) || (f = fopen(path, "w+")) == NULL) {
		snprintf(err, errlen, "cannot create %s: %s", path,
		    strerror(errno));
		return -1;
	}
	if ((e = env_open(BARE_FLAGS, err, errlen)) == NULL) {
		fclose(f);
		return -1;
	}
	/* a page failing its checksum must not end the salvage of the
	 * others; the handle is gone after verify, whatever it returns */
	(void)e->set_flags(e, DB_NOPANIC, 1);
	if ((rc = db_create(&d, e, 0)) == 0)
		(void)d->verify(d, file, NULL, f, DB_SALVAGE);
	env_done(e);
	if (fflush(f) == EOF || fseek(f, 0, SEEK_SET) == -1 ||
	    set_aside(out, file, err, errlen) == -1 ||
	    (e = env_open(BARE_FLAGS, err, errlen)) == NULL) {
		fclose(f);
		return -1;
	}
	if ((rc = db_create(&d, e, 0)) != 0 ||
	    (rc = d->set_flags(d, DB_CHKSUM)) != 0 ||
	    (qdb_files[i].dup && (rc = d->set_flags(d, DB_DUPSORT)) != 0) ||
	    (rc = d->open(d, NULL, file, NULL, DB_BTREE, DB_CREATE | DB_THREAD,
	    0600)) != 0) {
		fclose(f);
		env_done(e);
		snprintf(err, errlen, "cannot create a new %s: %s", file,
		    db_strerror(rc));
		return -1;
	}
	n = load_salvage(f, d);
	fclose(f);
	rc = d->close(d, 0);
	env_done(e);
	if (rc != 0) {
		snprintf(err, errlen, "closing the new %s: %s", file,
		    db_strerror(rc));
		return -1;
	}
	fprintf(out, "waymarkd: recover: %s rebuilt from %zu salvaged "
	    "record(s)\n", file, n);
	return 0;
}

/* verify_all - step 3: verify every database, rebuild the damaged ones */
static int
verify_all(FILE *out, char *err, size_t errlen)
{
	DB_ENV	*e;
	DB	*d;
	int	 rc, i;

	for (i = 0; i < QDB_COUNT; i++) {
		if (!db_exists(i))
			continue;
		if ((e = env_open(BARE_FLAGS, err, errlen)) == NULL)
			return -1;
		if ((rc = db_create(&d, e, 0)) == 0)
			rc = d->verify(d, qdb_files[i].file, NULL, NULL, 0);
		env_done(e);
		if (rc == 0) {
			fprintf(out, "waymarkd: recover: %s verified\n",
			    qdb_files[i].file);
			continue;
		}
		fprintf(out, "waymarkd: recover: %s is damaged (%s)\n",
		    qdb_files[i].file, db_strerror(rc));
		if (rebuild(out, i, err, errlen) == -1)
			return -1;
	}
/* a fresh log for the next start */
	if ((e = env_open(ENV_FLAGS, err, errlen)) == NULL)
		return -1;
	if ((rc = e->txn_checkpoint(e, 0, 0, DB_FORCE)) != 0) {
		snprintf(err, errlen, "checkpoint: %s", db_strerror(rc));
		e->close(e, 0);
		return -1;
	}
	e->close(e, 0);
	return 0;
}

struct qids {
	char	**v;
	size_t	  n, cap;
};

/* keep_cb - a queued message: remember its qid (its body stays) */
static void
keep_cb(struct qmsg *m, time_t sched_time, void *arg)
{
	struct qids	*q = arg;
	char		**nv;

	(void)sched_time;
	if (q->n == q->cap) {
		q->cap = q->cap ? q->cap * 2 : 64;
		if ((nv = realloc(q->v, q->cap * sizeof(*nv))) == NULL) {
			q->cap = q->n;
			qmsg_free(m);
			return;
		}
		q->v = nv;
	}
	if ((q->v[q->n] = strdup(m->qid)) != NULL)
		q->n++;
	qmsg_free(m);
}

/* queued - is qid one of the messages kept in the queue? */
static int
queued(const struct qids *q, const char *qid)
{
	size_t	i;

	for (i = 0; i < q->n; i++)
		if (strcmp(q->v[i], qid) == 0)
			return 1;
	return 0;
}

/* tidy - step 4: prune the schedule, set aside unreferenced bodies */
static int
tidy(FILE *out, size_t *kept, char *err, size_t errlen)
{
	struct qids	 q = { NULL, 0, 0 };
	DIR		*d;
	struct dirent	*de;
	char		 name[300];
	size_t		 pruned, moved = 0, i;
	int		 r = -1;

	if (qdb_open(NULL, err, errlen) == -1)
		return -1;
	if (qdb_schedule_prune(out, &pruned) == -1) {
		snprintf(err, errlen, "cannot clean the schedule index");
		goto done;
	}
	if (qdb_load_unfinished(keep_cb, &q, err, errlen) == -1)
		goto done;
	if (snprintf(name, sizeof(name), "%s/body", bak) >= (int)sizeof(name) ||
	    (mkdir(name, 0700) == -1 && errno != EEXIST) ||
	    (d = opendir("body")) == NULL) {
		snprintf(err, errlen, "cannot set aside body files: %s",
		    strerror(errno));
		goto done;
	}
	r = 0;
	while (r == 0 && (de = readdir(d)) != NULL) {
		if (!qid_valid(de->d_name) || queued(&q, de->d_name))
			continue;
		snprintf(name, sizeof(name), "body/%s", de->d_name);
		if ((r = set_aside(out, name, err, errlen)) == 0)
			moved++;
	}
	closedir(d);
	*kept = q.n;
	if (moved > 0)
		fprintf(out, "waymarkd: recover: %zu body file(s) of messages "
		    "no longer queued are in %s/body\n", moved, bak);
done:
	for (i = 0; i < q.n; i++)
		free(q.v[i]);
	free(q.v);
	qdb_close();
	if (r == 0 && queue_store_panicked()) {
		snprintf(err, errlen, "the last checkpoint failed (see the "
		    "messages above); run --recover again once the spool's "
		    "file system works");
		r = -1;
	}
	return r;
}

int
queue_recover(FILE *out, char *err, size_t errlen)
{
	struct tm	tm;
	time_t		now = time(NULL);
	size_t		kept = 0;

	if (gmtime_r(&now, &tm) == NULL ||
	    strftime(bak, sizeof(bak), "recover-%Y%m%dT%H%M%SZ", &tm) == 0) {
		snprintf(err, errlen, "cannot name the backup directory");
		return -1;
	}
	if (mkdir(bak, 0700) == -1) {
		snprintf(err, errlen, "cannot create %s in the spool: %s", bak,
		    strerror(errno));
		return -1;
	}
	fprintf(out, "waymarkd: recover: old and damaged files go to %s\n",
	    bak);
	if (replay(out, err, errlen) == -1 || verify_all(out, err, errlen) == -1 ||
	    tidy(out, &kept, err, errlen) == -1)
		return -1;
	fprintf(out, "waymarkd: recover: done: %zu unfinished message(s) "
	    "queued; start waymarkd as usual\n", kept);
	return 0;
}
