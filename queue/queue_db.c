#include "config.h"
/*
 * queue_db.c - the Berkeley DB 5.3 environment of the spool and the
 * group commit.  The only file that includes db.h.
 * Owns: the environment (recovered at every start: queue_lock makes us
 *       the only user), the databases (see queue_record.c for layouts),
 *       the commit thread, checkpoints (every 60 s and at close, logs
 *       removed automatically), the purge of finished history, reads,
 *       and TRACK's walk over the ENVID index (queue_track_find: the
 *       certifiers are compared in the index, only a match is read).
 * Group commit: the loop thread appends commit jobs; the commit thread
 *       takes every pending job as one batch.  With bodies (and
 *       syncfs), each job commits in its own transaction writing the
 *       log without a sync, then ONE syncfs covers bodies, body/ and
 *       log (commit_batch_fs); otherwise the bodies are synced
 *       (fdatasync, fsync of body/), each job runs in its own
 *       DB_TXN_NOSYNC transaction (retried on deadlock), then ONE log
 *       flush.  The completions go back to the loop (event_active).
 *       A failed sync of the log panics the environment (store_fail):
 *       the daemon then stops for a restart's recovery (queue_on_panic).
 * Invariant: a completion with rc 0 means body + records are on disk.
 * Damage: a log file shorter than Berkeley DB made it, databases
 *       without any log file, an environment that cannot be recovered,
 *       a page that fails its checksum (DB_CHKSUM on new databases) or
 *       a schedule entry whose message cannot be read stop the start
 *       with QUEUE_RECOVER_HINT: never an emptied queue.  The repair
 *       is queue_recover.c (`waymarkd --recover`).
 */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <db.h>
#include <event2/event.h>
#include <openssl/crypto.h>

#include "common/cfg.h"
#include "common/log.h"
#include "queue/queue_int.h"
#include "queue/queue_dbint.h"

#define CKP_INTERVAL	60		/* seconds between checkpoints */
#define LG_MAX		(4 * 1024 * 1024)	/* log file size */
#define TXN_RETRIES	5
#define PURGE_BATCH	64		/* messages per purge transaction */
#define TRACK_CAND_MAX	1024		/* ENVID index entries a TRACK checks */

const struct qdb_file qdb_files[QDB_COUNT] = {
	[QDB_MESSAGES] = { "messages.db", 0 },
	[QDB_RECIPIENTS] = { "recipients.db", 0 },
	[QDB_EVENTS] = { "events.db", 0 },
	[QDB_ENVID] = { "envid.db", 1 },
	[QDB_STATE] = { "state.db", 0 },
	[QDB_SCHEDULE] = { "schedule.db", 0 },
	[QDB_EXPIRE] = { "expire.db", 0 },
	[QDB_META] = { "meta.db", 0 },
};

enum qop_kind { OP_PUT, OP_DEL };

struct qop {
	enum qop_kind	 kind;
	enum qdb	 db;
	unsigned char	*key;
	size_t		 klen;
	void		*val;
	size_t		 vlen;
	struct qop	*next;
};

struct qjob {
	struct qop	*ops, **tail;
	int		 body_fd;	/* -1: none */
	int		 rc;
	int		 purge;		/* a purge request, no ops */
	int		 lazy;		/* needs no log flush of its own */
	time_t		 purge_cutoff;
	qjob_done_fn	 done;
	void		*arg;
	struct qjob	*next;
};

static DB_ENV		*env;
static int		 env_opened;	/* env->open succeeded */
static DB		*dbs[QDB_COUNT];
static int		 body_dirfd = -1;
static u_int32_t	 cache_bytes = 1024 * 1024;	/* qdb_set_cache */

static pthread_t	 ct_thread;
static int		 ct_started;
static pthread_mutex_t	 ct_mtx = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t	 ct_cond = PTHREAD_COND_INITIALIZER;	/* work or stop */
static pthread_cond_t	 ct_idle = PTHREAD_COND_INITIALIZER;	/* a batch ended */
static struct qjob	*ct_todo, **ct_todo_tail = &ct_todo;
static struct qjob	*ct_done, **ct_done_tail = &ct_done;
static int		 ct_busy, ct_stop;
/*
 * Lazy jobs (delivery results: a lost one only repeats a delivery, which
 * Maildir suppresses, or an attempt) are committed without a log flush of
 * their own; their completions are held until a later flush covers them:
 * the next batch with a strict job (an accept), at most LAZY_MS later, or
 * a drain.  Completions may unlink body files, so they never run before
 * their records are on stable storage.
 */
#define LAZY_MS		50
static struct qjob	*ct_held, **ct_held_tail = &ct_held;
static struct timespec	 ct_held_deadline;
static int		 ct_flush_now;
static struct event	*ct_ev;

/* ---- jobs ---- */

struct qjob *
qjob_new(void)
{
	struct qjob	*j;

	if ((j = calloc(1, sizeof(*j))) == NULL)
		return NULL;
	j->tail = &j->ops;
	j->body_fd = -1;
	return j;
}

/* qjob_lazy - the job may wait for a later batch's log flush */
void
qjob_lazy(struct qjob *j)
{
	j->lazy = 1;
}

void
qjob_free(struct qjob *j)
{
	struct qop	*o, *n;

	if (j == NULL)
		return;
	for (o = j->ops; o != NULL; o = n) {
		n = o->next;
		free(o->key);
		free(o->val);
		free(o);
	}
	free(j);
}

static int
qjob_op(struct qjob *j, enum qop_kind kind, enum qdb db, const void *k,
    size_t klen, void *v, size_t vlen)
{
	struct qop	*o;

	if (klen == 0 || (o = calloc(1, sizeof(*o))) == NULL)
		return -1;
	if ((o->key = malloc(klen)) == NULL) {
		free(o);
		return -1;
	}
	memcpy(o->key, k, klen);
	o->kind = kind;
	o->db = db;
	o->klen = klen;
	o->val = v;
	o->vlen = vlen;
	*j->tail = o;
	j->tail = &o->next;
	return 0;
}

int
qjob_put(struct qjob *j, enum qdb db, const void *k, size_t klen,
    const void *v, size_t vlen)
{
	void	*copy;

	if ((copy = malloc(vlen ? vlen : 1)) == NULL)
		return -1;
	if (vlen > 0)
		memcpy(copy, v, vlen);
	if (qjob_op(j, OP_PUT, db, k, klen, copy, vlen) == -1) {
		free(copy);
		return -1;
	}
	return 0;
}

int
qjob_put_own(struct qjob *j, enum qdb db, const void *k, size_t klen,
    void *v, size_t vlen)
{
	if (qjob_op(j, OP_PUT, db, k, klen, v, vlen) == -1) {
		free(v);
		return -1;
	}
	return 0;
}

int
qjob_del(struct qjob *j, enum qdb db, const void *k, size_t klen)
{
	return qjob_op(j, OP_DEL, db, k, klen, NULL, 0);
}

void
qjob_body(struct qjob *j, int fd)
{
	j->body_fd = fd;
}

/* qjob_append - move src's operations to the end of dst; frees src */
void
qjob_append(struct qjob *dst, struct qjob *src)
{
	if (src->ops != NULL) {
		*dst->tail = src->ops;
		dst->tail = src->tail;
	}
	src->ops = NULL;
	qjob_free(src);
}

/* qdb_set_cache - the cache size of the next qdb_open (db_cache, bulk loads) */
void
qdb_set_cache(size_t bytes)
{
	cache_bytes = bytes > 1024u * 1024 * 1024 ? 1024u * 1024 * 1024 :
	    (u_int32_t)bytes;
}

/* ---- environment ---- */

static void
qdb_errcall(const DB_ENV *e, const char *pfx, const char *msg)
{
	(void)e;
	(void)pfx;
	log_warnx("queue: berkeley db: %s", msg);
}

static void ct_done_cb(evutil_socket_t fd, short what, void *arg);

/* the environment needs recovery: set in whichever thread Berkeley DB
 * found it, read in the loop thread */
static atomic_int	 panicked;
static struct event	*panic_ev;	/* reports it to the loop thread */
static void		(*panic_fn)(void);	/* queue_on_panic */
static DB_ENV	*abandoned_env;	/* kept reachable: see qdb_close */
static DB	*abandoned_dbs[QDB_COUNT];

/* qdb_event - Berkeley DB's events: remember a panic and tell the loop
 * (event_active is safe from the commit thread: libevent's locking is
 * on, as for ct_ev) */
static void
qdb_event(DB_ENV *e, u_int32_t event, void *info)
{
	(void)e;
	(void)info;
	if (event != DB_EVENT_PANIC)
		return;
	if (atomic_exchange(&panicked, 1) == 0 && panic_ev != NULL)
		event_active(panic_ev, EV_READ, 1);
}

int
queue_store_panicked(void)
{
	return atomic_load(&panicked);
}

void
queue_on_panic(void (*fn)(void))
{
	panic_fn = fn;
}

/*
 * store_fail - a sync of the log failed (syncfs of the spool, or
 * Berkeley DB's log flush): after a failed fsync the kernel may have
 * dropped the pages it could not write, so the log on disk can have a
 * hole that a later sync would not fill, and a recovery would stop at
 * it, losing every message acknowledged after.  The environment is made
 * to panic (every later commit fails: nothing more is acknowledged) and
 * the daemon stops for a restart, whose recovery reads the log as it is
 * on disk (commit thread).
 */
static void
store_fail(const char *what, const char *why)
{
	if (atomic_load(&panicked))
		return;
	log_warnx("queue: %s failed (%s): the log on disk may have lost "
	    "records; nothing more is committed until a restart recovers the "
	    "store", what, why);
	if (env != NULL)
		(void)env->set_flags(env, DB_PANIC_ENVIRONMENT, 1);
	qdb_event(env, DB_EVENT_PANIC, NULL);
}

/* panic_cb - the loop thread learns of a panic: once */
static void
panic_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	log_warnx("queue: the store needs recovery (Berkeley DB panic: see "
	    "the messages above); nothing more can be committed");
	queue_store_failed();
	if (panic_fn != NULL)
		panic_fn();
}

/* qdb_env_new - an environment handle with Waymark's sizes; 0 or a DB error */
int
qdb_env_new(DB_ENV **ep)
{
	DB_ENV		*e;
	u_int32_t	 lg_bsize;
	int		 rc;

	if ((rc = db_env_create(&e, 0)) != 0)
		return rc;
	e->set_errcall(e, qdb_errcall);
	(void)e->set_event_notify(e, qdb_event);
	/* small footprint: db_cache (default 1 MiB, qdb_set_cache), a log
	 * buffer of a quarter of it (64-256 KiB), 4 MiB log files */
	lg_bsize = cache_bytes / 4;
	if (lg_bsize < 64 * 1024)
		lg_bsize = 64 * 1024;
	if (lg_bsize > 256 * 1024)
		lg_bsize = 256 * 1024;
	if ((rc = e->set_cachesize(e, 0, cache_bytes, 1)) != 0 ||
	    (rc = e->set_lg_bsize(e, lg_bsize)) != 0 ||
	    (rc = e->set_lg_max(e, LG_MAX)) != 0 ||
	    (rc = e->set_lk_detect(e, DB_LOCK_DEFAULT)) != 0) {
		e->close(e, 0);
		return rc;
	}
	*ep = e;
	return 0;
}

/* qdb_db_open - open (or create) database i of environment e */
int
qdb_db_open(DB_ENV *e, int i, DB **dp)
{
	DB	*d;
	int	 rc;

	if ((rc = db_create(&d, e, 0)) != 0)
		return rc;
	/* page checksums: a damaged page is an error, never data; an
	 * existing database keeps the setting it was created with */
	if ((rc = d->set_flags(d, DB_CHKSUM)) != 0 ||
	    (qdb_files[i].dup && (rc = d->set_flags(d, DB_DUPSORT)) != 0) ||
	    (rc = d->open(d, NULL, qdb_files[i].file, NULL, DB_BTREE,
	    DB_CREATE | DB_THREAD | DB_AUTO_COMMIT, 0600)) != 0) {
		d->close(d, 0);
		return rc;
	}
	*dp = d;
	return 0;
}

/* qdb_damage_rc - does a Berkeley DB error say the store is damaged
 * (rather than a missing permission, space or memory)? */
int
qdb_damage_rc(int rc)
{
	return rc != EACCES && rc != EPERM && rc != ENOSPC && rc != ENOMEM &&
	    rc != EAGAIN && rc != EDQUOT && rc != EROFS;
}

/* lg_max_used - the log file size Berkeley DB uses here: LG_MAX, or
 * set_lg_max of a DB_CONFIG file in the spool (it overrides ours) */
static long long
lg_max_used(void)
{
	char		 line[256];
	long long	 v = LG_MAX;
	FILE		*f;
	char		*end;

	if ((f = fopen("DB_CONFIG", "r")) == NULL)
		return v;
	while (fgets(line, sizeof(line), f) != NULL)
		if (strncmp(line, "set_lg_max", 10) == 0 &&
		    (line[10] == ' ' || line[10] == '\t'))
			v = strtoll(line + 11, &end, 10);
	fclose(f);
	return v > 0 ? v : LG_MAX;
}

/*
 * drop_cached - the kernel's clean cached pages of a spool file dropped,
 * so that recovery reads what is on disk: after a failed write-back
 * (store_fail) the pages stay cached, marked clean, holding what never
 * reached the disk; a recovery that read them would see a log without
 * the hole, or database pages newer than the disk's, and go on from
 * there (POSIX_FADV_DONTNEED drops only clean pages, and starts the
 * write-back of dirty ones)
 */
static void
drop_cached(const char *name)
{
	int	fd, e;

	/* links followed, as Berkeley DB does; O_NONBLOCK: a FIFO under
	 * such a name cannot stop the start */
	if ((fd = open(name, O_RDONLY | O_CLOEXEC | O_NONBLOCK)) == -1) {
		if (errno != ENOENT)
			log_warn("queue: cannot open %s to drop its cached pages",
			    name);
		return;
	}
	if ((e = posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED)) != 0)
		log_warnx("queue: cannot drop the cached pages of %s: %s",
		    name, strerror(e));
	close(fd);
}

int
qdb_is_log(const char *n)
{
	return strncmp(n, "log.", 4) == 0 && strspn(n + 4, "0123456789") == 10 &&
	    n[14] == '\0';
}

int
qdb_is_db(const char *n)
{
	int	i;

	for (i = 0; i < QDB_COUNT; i++)
		if (strcmp(n, qdb_files[i].file) == 0)
			return 1;
	return 0;
}

/* qdb_drop_cached - drop_cached for every log file and database */
void
qdb_drop_cached(void)
{
	DIR		*d;
	struct dirent	*de;

	if ((d = opendir(".")) == NULL)
		return;
	while ((de = readdir(d)) != NULL)
		if (qdb_is_log(de->d_name) || qdb_is_db(de->d_name))
			drop_cached(de->d_name);
	closedir(d);
}

/* check_files - before recovery runs: refuse a log file shorter than
 * Berkeley DB makes every log file (it is extended to its full size
 * when created, so a short one was truncated) and databases without any
 * log file (recovery would start from nothing); 0, or -1 with err */
static int
check_files(char *err, size_t errlen)
{
	DIR		*d;
	struct dirent	*de;
	struct stat	 st;
	long long	 full = lg_max_used() - 1;
	int		 nlogs = 0, ndbs = 0, r = 0;

	if ((d = opendir(".")) == NULL) {
		snprintf(err, errlen, "cannot read the spool: %s",
		    strerror(errno));
		return -1;
	}
	while ((de = readdir(d)) != NULL && r == 0) {
		if (qdb_is_log(de->d_name)) {
			nlogs++;
			if (stat(de->d_name, &st) == -1 || !S_ISREG(st.st_mode) ||
			    st.st_size >= full)
				continue;
			snprintf(err, errlen, "the queue database log file %s "
			    "is %lld bytes, shorter than the %lld bytes Berkeley "
			    "DB gives every log file: it was truncated; "
			    QUEUE_RECOVER_HINT, de->d_name,
			    (long long)st.st_size, full);
			r = -1;
			continue;
		}
		if (qdb_is_db(de->d_name))
			ndbs++;
	}
	closedir(d);
	if (r == 0 && ndbs > 0 && nlogs == 0) {
		snprintf(err, errlen, "the queue databases exist but their "
		    "log files (log.NNNNNNNNNN) are missing; "
		    QUEUE_RECOVER_HINT);
		r = -1;
	}
	return r;
}

/* log_opened - the environment's cache as Berkeley DB sized it */
static void
log_opened(void)
{
	u_int32_t	gb = 0, b = 0;
	int		n = 0;

	if (env->get_cachesize(env, &gb, &b, &n) == 0)
		log_info("queue: store opened: cache %llu KiB, environment "
		    "private to this process", ((unsigned long long)gb << 20) +
		    (unsigned long long)b / 1024);
}

/* qdb_open - recover and open the environment and every database */
int
qdb_open(struct event_base *base, char *err, size_t errlen)
{
	u_int32_t	flags;
	int		i, rc;

	if (mkdir("body", 0700) == -1 && errno != EEXIST) {
		snprintf(err, errlen, "cannot create body directory: %s",
		    strerror(errno));
		return -1;
	}
	if ((body_dirfd = open("body", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1) {
		snprintf(err, errlen, "cannot open body directory: %s",
		    strerror(errno));
		return -1;
	}
	if (check_files(err, errlen) == -1)
		goto fail;
	qdb_drop_cached();	/* recovery reads what is on disk */
	if ((rc = qdb_env_new(&env)) != 0)
		goto dbfail;
	/*
	 * DB_PRIVATE: the regions (cache, log buffer, locks) are memory of
	 * this process, not mapped spool/__db.NNN files.  Only this daemon
	 * opens the environment (the spool lock), recovery works from the
	 * log files alone, and a region file's dirty pages would otherwise
	 * be written by every syncfs() of the group commit (about 60 pages a
	 * message) and write-protected again after each writeback.
	 */
	flags = DB_CREATE | DB_INIT_TXN | DB_INIT_LOG | DB_INIT_LOCK |
	    DB_INIT_MPOOL | DB_THREAD | DB_RECOVER | DB_PRIVATE;
	if ((rc = env->open(env, ".", flags, 0600)) != 0)
		goto dbfail;
	env_opened = 1;
	if ((rc = env->log_set_config(env, DB_LOG_AUTO_REMOVE, 1)) != 0)
		goto dbfail;
	/*
	 * Log files written with zeros when created (4 MiB each, about
	 * every 1,500 messages) instead of sparse: a commit then writes
	 * the log pages into blocks that exist, where appending into a
	 * hole allocated blocks in every sync (block bitmap, extent and
	 * group descriptor writes): 22 % fewer writes per message and
	 * about 5-8 % more messages per second at 1 session
	 * (bench/README.md, "Zeroed log files").
	 */
	if ((rc = env->log_set_config(env, DB_LOG_ZERO, 1)) != 0)
		goto dbfail;
	log_opened();
	for (i = 0; i < QDB_COUNT; i++) {
		if ((rc = qdb_db_open(env, i, &dbs[i])) != 0) {
			dbs[i] = NULL;
			snprintf(err, errlen, "cannot open %s: %s%s",
			    qdb_files[i].file, db_strerror(rc),
			    qdb_damage_rc(rc) ? "; " QUEUE_RECOVER_HINT : "");
			goto fail;
		}
	}
	if (base != NULL &&
	    ((ct_ev = event_new(base, -1, 0, ct_done_cb, NULL)) == NULL ||
	    (panic_ev = event_new(base, -1, 0, panic_cb, NULL)) == NULL)) {
		snprintf(err, errlen, "cannot create the commit event");
		goto fail;
	}
	return 0;
dbfail:
	snprintf(err, errlen, "cannot open the queue database environment "
	    "in the spool: %s%s", db_strerror(rc),
	    qdb_damage_rc(rc) ? "; " QUEUE_RECOVER_HINT : "");
fail:
	qdb_close();
	return -1;
}

void
qdb_checkpoint(void)
{
	int	rc;

	/* a failed checkpoint may have lost page writes the next one would
	 * not repeat (its fsync succeeds once the error was reported), and
	 * that next one would remove the log that can redo them */
	if ((rc = env->txn_checkpoint(env, 0, 0, 0)) != 0)
		store_fail("a checkpoint", db_strerror(rc));
}

/* ---- the commit thread ---- */

static int
apply_op(DB_TXN *txn, const struct qop *o)
{
	DBT	k, v;
	int	rc;

	memset(&k, 0, sizeof(k));
	memset(&v, 0, sizeof(v));
	k.data = o->key;
	k.size = (u_int32_t)o->klen;
	if (o->kind == OP_PUT) {
		v.data = o->val;
		v.size = (u_int32_t)o->vlen;
		return dbs[o->db]->put(dbs[o->db], txn, &k, &v, 0);
	}
	rc = dbs[o->db]->del(dbs[o->db], txn, &k, 0);
	return rc == DB_NOTFOUND ? 0 : rc;
}

/*
 * run_job - one job in its own transaction, committed with cflags
 * (DB_TXN_NOSYNC: the log stays in memory; DB_TXN_WRITE_NOSYNC: written
 * to the log file, not synced); 0, or a DB error
 */
static int
run_job(struct qjob *j, u_int32_t cflags)
{
	DB_TXN		*txn;
	struct qop	*o;
	int		 rc = 0, tries;

	for (tries = 0; tries < TXN_RETRIES; tries++) {
		if ((rc = env->txn_begin(env, NULL, &txn, DB_TXN_NOSYNC)) != 0)
			return rc;
		for (o = j->ops; o != NULL; o = o->next)
			if ((rc = apply_op(txn, o)) != 0)
				break;
		if (rc == 0) {
			rc = txn->commit(txn, cflags);
			if (rc == 0)
				return 0;
			/* the handle is gone after a failed commit */
			continue;
		}
		txn->abort(txn);
		if (rc != DB_LOCK_DEADLOCK && rc != DB_LOCK_NOTGRANTED)
			return rc;
	}
	return rc;
}

static int purge_run(time_t cutoff);

#ifdef HAVE_SYNCFS
/*
 * commit_batch_fs - a batch with bodies, in one sync of the file system:
 * the jobs commit first, each strict one writing the log to its file
 * without a sync (DB_TXN_WRITE_NOSYNC), then one syncfs() puts the
 * bodies, their directory entries and the log on disk together.  Three
 * syncs per batch (bodies, body/, log) were two journal commits on
 * ext4; this is one.  Safe for the invariant because a log record is
 * durable only once the journal commit that extends the log file is,
 * and syncfs writes every file's data before that commit.  A failed
 * syncfs leaves the committed jobs QJOB_UNFLUSHED (kept, delivered, not
 * acknowledged: a duplicate at worst, never a loss) and stops the store
 * (store_fail).  Returns as commit_batch.
 */
static int
commit_batch_fs(struct qjob *batch, int force)
{
	struct qjob	*j;
	int		 nstrict = 0, tail_lazy = 0, rc;

	for (j = batch; j != NULL; j = j->next) {
		if (j->purge) {
			j->rc = purge_run(j->purge_cutoff);
			tail_lazy = 1;
			continue;
		}
		if ((rc = run_job(j, j->lazy ? DB_TXN_NOSYNC :
		    DB_TXN_WRITE_NOSYNC)) != 0) {
			log_warnx("queue: commit failed: %s", db_strerror(rc));
			j->rc = -1;
			continue;
		}
		j->rc = 0;
		if (j->lazy)
			tail_lazy = 1;
		else {
			nstrict++;
			tail_lazy = 0;
		}
	}
	/* through body_dirfd, open since the start: syncfs reports a
	 * write-back error to each open file once, and only to files
	 * opened before it happened (a body file is opened per message) */
	if (syncfs(body_dirfd) == -1) {
		store_fail("the sync of the spool", strerror(errno));
		for (j = batch; j != NULL; j = j->next)
			if (!j->purge && j->rc == 0)
				j->rc = QJOB_UNFLUSHED;
		return 2;
	}
	if (nstrict == 0 && !force)
		return 0;
	/* records committed after the last strict one are still only in
	 * Berkeley DB's log buffer */
	if ((tail_lazy || nstrict == 0) && (rc = env->log_flush(env,
	    NULL)) != 0) {
		store_fail("the log flush", db_strerror(rc));
		for (j = batch; j != NULL; j = j->next)
			if (!j->purge && j->rc == 0 && j->lazy)
				j->rc = QJOB_UNFLUSHED;
		return 2;
	}
	return 1;
}
#endif

/*
 * commit_batch - sync bodies, run the jobs, flush the log once when a
 * strict job committed or force is set (held lazy jobs are then covered
 * too).  Returns 1 when the log was flushed (or nothing needs it), 2
 * when the flush failed (every job committed is QJOB_UNFLUSHED then,
 * held ones too, and the store stops: store_fail),
 * 0 when no flush was due.
 */
static int
commit_batch(struct qjob *batch, int force)
{
	struct qjob	*j;
	int		 nbodies = 0, sync_err = 0, ncommitted = 0, rc;
	int		 nstrict = 0;
	int		 anyfd = -1;

	for (j = batch; j != NULL; j = j->next)
		if (j->body_fd != -1) {
			nbodies++;
			anyfd = j->body_fd;
		}
#ifdef HAVE_SYNCFS
	if (nbodies > 0)
		return commit_batch_fs(batch, force);
#endif
	if (nbodies == 1) {
		if (fdatasync(anyfd) == -1) {
			log_warn("queue: fdatasync of a body file");
			sync_err = 1;
		}
	} else if (nbodies > 1) {
		/* without syncfs (with it, commit_batch_fs took the batch) */
		for (j = batch; j != NULL; j = j->next)
			if (j->body_fd != -1 && fdatasync(j->body_fd) == -1) {
				log_warn("queue: fdatasync of a body file");
				sync_err = 1;
			}
	}
	if (nbodies > 0 && !sync_err && fsync(body_dirfd) == -1) {
		log_warn("queue: fsync of the body directory");
		sync_err = 1;
	}
	for (j = batch; j != NULL; j = j->next) {
		if (j->purge) {
			j->rc = purge_run(j->purge_cutoff);
			continue;
		}
		if (j->body_fd != -1 && sync_err) {
			j->rc = -1;
			continue;
		}
		if ((rc = run_job(j, DB_TXN_NOSYNC)) != 0) {
			log_warnx("queue: commit failed: %s", db_strerror(rc));
			j->rc = -1;
			continue;
		}
		j->rc = 0;
		ncommitted++;
		if (!j->lazy)
			nstrict++;
	}
	if (nstrict == 0 && !force)
		return 0;
	if ((ncommitted > 0 || force) &&
	    (rc = env->log_flush(env, NULL)) != 0) {
		store_fail("the log flush", db_strerror(rc));
		for (j = batch; j != NULL; j = j->next)
			if (!j->purge && j->rc == 0)
				j->rc = QJOB_UNFLUSHED;
		return 2;
	}
	return 1;
}

/* held_expired - a held lazy job waited long enough, or a drain wants it */
static int
held_expired(void)
{
	struct timespec	now;

	if (ct_held == NULL)
		return 0;
	if (ct_flush_now || ct_stop)
		return 1;
	clock_gettime(CLOCK_REALTIME, &now);
	return now.tv_sec > ct_held_deadline.tv_sec ||
	    (now.tv_sec == ct_held_deadline.tv_sec &&
	    now.tv_nsec >= ct_held_deadline.tv_nsec);
}

/* done_append - hand a list of finished jobs to the loop (ct_mtx held) */
static void
done_append(struct qjob *list)
{
	struct qjob	*j;

	if (list == NULL)
		return;
	*ct_done_tail = list;
	for (j = list; j->next != NULL; j = j->next)
		;
	ct_done_tail = &j->next;
}

static void *
ct_main(void *unused)
{
	struct qjob	*batch, *j;
	struct timespec	 ts;
	time_t		 next_ckp;
	int		 force, flushed;

	(void)unused;
	next_ckp = time(NULL) + CKP_INTERVAL;
	pthread_mutex_lock(&ct_mtx);
	for (;;) {
		while (ct_todo == NULL && !ct_stop && !held_expired()) {
			if (time(NULL) >= next_ckp) {
				pthread_mutex_unlock(&ct_mtx);
				qdb_checkpoint();
				pthread_mutex_lock(&ct_mtx);
				next_ckp = time(NULL) + CKP_INTERVAL;
				continue;
			}
			if (ct_held != NULL)
				ts = ct_held_deadline;
			else {
				ts.tv_sec = next_ckp;
				ts.tv_nsec = 0;
			}
			pthread_cond_timedwait(&ct_cond, &ct_mtx, &ts);
		}
		if (ct_todo == NULL && ct_held == NULL && ct_stop)
			break;
		batch = ct_todo;
		ct_todo = NULL;
		ct_todo_tail = &ct_todo;
		force = held_expired();
		ct_busy = 1;
		pthread_mutex_unlock(&ct_mtx);

		flushed = batch != NULL ? commit_batch(batch, force) :
		    commit_batch(NULL, 1);

		pthread_mutex_lock(&ct_mtx);
		if (flushed) {
			/* this flush covers every held lazy job too; a failed
			 * one covers none of them: their completions must not
			 * act (unlink a body) on records not on disk */
			if (flushed == 2)
				for (j = ct_held; j != NULL; j = j->next)
					if (!j->purge && j->rc == 0)
						j->rc = QJOB_UNFLUSHED;
			done_append(ct_held);
			ct_held = NULL;
			ct_held_tail = &ct_held;
			ct_flush_now = 0;
			done_append(batch);
		} else {
			if (ct_held == NULL) {
				clock_gettime(CLOCK_REALTIME, &ct_held_deadline);
				ct_held_deadline.tv_nsec += LAZY_MS * 1000000L;
				if (ct_held_deadline.tv_nsec >= 1000000000L) {
					ct_held_deadline.tv_sec++;
					ct_held_deadline.tv_nsec -= 1000000000L;
				}
			}
			*ct_held_tail = batch;
			for (j = batch; j->next != NULL; j = j->next)
				;
			ct_held_tail = &j->next;
		}
		ct_busy = 0;
		pthread_cond_broadcast(&ct_idle);
		pthread_mutex_unlock(&ct_mtx);
		if (flushed)
			event_active(ct_ev, EV_READ, 1);
		pthread_mutex_lock(&ct_mtx);
		if (time(NULL) >= next_ckp) {
			pthread_mutex_unlock(&ct_mtx);
			qdb_checkpoint();
			pthread_mutex_lock(&ct_mtx);
			next_ckp = time(NULL) + CKP_INTERVAL;
		}
	}
	pthread_mutex_unlock(&ct_mtx);
	return NULL;
}

/* run_completions - call done() of every finished job (loop thread) */
static int
run_completions(void)
{
	struct qjob	*list, *j, **link;
	int		 n = 0, pass;

	pthread_mutex_lock(&ct_mtx);
	list = ct_done;
	ct_done = NULL;
	ct_done_tail = &ct_done;
	pthread_mutex_unlock(&ct_mtx);
	/* new messages first (the jobs with a body: their completions send
	 * the 250 a client waits for); a new message has no other job in
	 * flight, so this keeps every message's own completions in order */
	for (pass = 0; pass < 2; pass++)
		for (link = &list; (j = *link) != NULL; ) {
			if (pass == 0 && j->body_fd == -1) {
				link = &j->next;
				continue;
			}
			*link = j->next;
			if (j->done != NULL)
				j->done(j->arg, j->rc);
			qjob_free(j);
			n++;
		}
	return n;
}

static void
ct_done_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	run_completions();
}

int
qdb_start(char *err, size_t errlen)
{
	sigset_t	all, old;
	int		rc;

	/* a queue opened again in one process (tests) starts afresh */
	pthread_mutex_lock(&ct_mtx);
	ct_stop = 0;
	ct_flush_now = 0;
	pthread_mutex_unlock(&ct_mtx);
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	rc = pthread_create(&ct_thread, NULL, ct_main, NULL);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0) {
		snprintf(err, errlen, "cannot start the commit thread: %s",
		    strerror(rc));
		return -1;
	}
	ct_started = 1;
	return 0;
}

static void
ct_enqueue(struct qjob *j)
{
	if (!ct_started) {
		/* before start (or after close): run synchronously */
		j->next = NULL;
		(void)commit_batch(j, 1);
		if (j->done != NULL)
			j->done(j->arg, j->rc);
		qjob_free(j);
		return;
	}
	pthread_mutex_lock(&ct_mtx);
	j->next = NULL;
	*ct_todo_tail = j;
	ct_todo_tail = &j->next;
	pthread_mutex_unlock(&ct_mtx);
	/* signalled after the unlock: a thread woken while the mutex is
	 * still held blocks on it at once (three more futex calls, and
	 * its start delayed, for every job) */
	pthread_cond_signal(&ct_cond);
}

void
qdb_commit(struct qjob *j, qjob_done_fn done, void *arg)
{
	j->done = done;
	j->arg = arg;
	j->rc = 0;
	if (env == NULL) {
		if (done != NULL)
			done(arg, -1);
		qjob_free(j);
		return;
	}
	ct_enqueue(j);
}

void
qdb_purge_request(time_t cutoff)
{
	struct qjob	*j;

	if (env == NULL || (j = qjob_new()) == NULL)
		return;
	j->purge = 1;
	j->purge_cutoff = cutoff;
	ct_enqueue(j);
}

/* qdb_drain - wait for the commit thread to go idle and run completions
 * until nothing is left (completions may queue more commits) */
void
qdb_drain(void)
{
	int	more;

	if (!ct_started) {
		run_completions();
		return;
	}
	do {
		pthread_mutex_lock(&ct_mtx);
		if (ct_held != NULL) {
			ct_flush_now = 1;
			pthread_cond_signal(&ct_cond);
		}
		while (ct_todo != NULL || ct_busy || ct_held != NULL)
			pthread_cond_wait(&ct_idle, &ct_mtx);
		pthread_mutex_unlock(&ct_mtx);
		more = run_completions() > 0;
		pthread_mutex_lock(&ct_mtx);
		more = more || ct_todo != NULL || ct_busy;
		pthread_mutex_unlock(&ct_mtx);
	} while (more);
}

void
qdb_close(void)
{
	int	i, rc;

	if (ct_started) {
		qdb_drain();
		pthread_mutex_lock(&ct_mtx);
		ct_stop = 1;
		pthread_cond_signal(&ct_cond);
		pthread_mutex_unlock(&ct_mtx);
		pthread_join(ct_thread, NULL);
		ct_started = 0;
		run_completions();
	}
	if (ct_ev != NULL) {
		event_free(ct_ev);
		ct_ev = NULL;
	}
	if (panic_ev != NULL) {
		event_free(panic_ev);
		panic_ev = NULL;
	}
	/* the last checkpoint: if it fails, the environment panics too */
	if (env != NULL && env_opened && !atomic_load(&panicked))
		qdb_checkpoint();
	env_opened = 0;
	if (env != NULL && atomic_load(&panicked)) {
		/* closing a panicked environment only fails (and leaks):
		 * the process is about to exit; recovery comes next start */
		log_warnx("queue: the database environment needs recovery; "
		    "not closed");
		abandoned_env = env;
		env = NULL;
		for (i = 0; i < QDB_COUNT; i++) {
			abandoned_dbs[i] = dbs[i];
			dbs[i] = NULL;
		}
		goto bodydir;
	}
	for (i = 0; i < QDB_COUNT; i++) {
		if (dbs[i] != NULL && (rc = dbs[i]->close(dbs[i], 0)) != 0)
			log_warnx("queue: closing %s: %s", qdb_files[i].file,
			    db_strerror(rc));
		dbs[i] = NULL;
	}
	if (env != NULL && (rc = env->close(env, 0)) != 0)
		log_warnx("queue: closing the environment: %s", db_strerror(rc));
	env = NULL;
bodydir:
	if (body_dirfd != -1)
		close(body_dirfd);
	body_dirfd = -1;
}

/* ---- records keyed by qid + suffix ---- */

/*
 * qid_scan_fn - called for each record whose key is qid + exactly
 * suffixlen bytes (suffix points at them); returns 0 to go on, 1 to stop,
 * or a Berkeley DB error / -1 to stop with that result.
 */
typedef int (*qid_scan_fn)(DBC *c, const unsigned char *suffix,
    const DBT *v, void *arg);

/* qid_scan - walk the records of qid in db (in key order) with fn */
static int
qid_scan(enum qdb db, DB_TXN *txn, const char *qid, size_t suffixlen,
    qid_scan_fn fn, void *arg)
{
	DBC	*c;
	DBT	 k, v;
	size_t	 n = strlen(qid);
	int	 rc, frc = 0, crc;

	if ((rc = dbs[db]->cursor(dbs[db], txn, &c, 0)) != 0)
		return rc;
	memset(&k, 0, sizeof(k));
	memset(&v, 0, sizeof(v));
	k.flags = DB_DBT_REALLOC;
	v.flags = DB_DBT_REALLOC;
	if ((k.data = malloc(n)) == NULL) {
		c->close(c);
		return ENOMEM;
	}
	memcpy(k.data, qid, n);
	k.size = (u_int32_t)n;
	rc = c->get(c, &k, &v, DB_SET_RANGE);
	while (rc == 0) {
		if (k.size < n || memcmp(k.data, qid, n) != 0)
			break;
		if (k.size == n + suffixlen &&
		    (frc = fn(c, (const unsigned char *)k.data + n, &v,
		    arg)) != 0)
			break;
		rc = c->get(c, &k, &v, DB_NEXT);
	}
	if (rc == DB_NOTFOUND)
		rc = 0;
	if (rc == 0 && frc != 1)
		rc = frc;
	free(k.data);
	free(v.data);
	if ((crc = c->close(c)) != 0 && rc == 0)
		rc = crc;
	return rc;
}

/* ---- purge (commit thread) ---- */

/* del_cb - delete the record under the cursor */
static int
del_cb(DBC *c, const unsigned char *suffix, const DBT *v, void *arg)
{
	(void)suffix;
	(void)v;
	(void)arg;
	return c->del(c, 0);
}

/* del_prefix - delete every key of db that is qid + suffixlen bytes */
static int
del_prefix(DB_TXN *txn, enum qdb db, const char *qid, size_t suffixlen)
{
	return qid_scan(db, txn, qid, suffixlen, del_cb, NULL);
}

/* envid_del_one - delete the ENVID index entry envid -> val, if any */
static int
envid_del_one(DB_TXN *txn, const char *envid, const unsigned char *val,
    size_t vlen)
{
	unsigned char	 vbuf[REC_ENVID_MAX];
	DBC		*c;
	DBT		 ek, ev;
	int		 rc, crc;

	if (vlen == 0 || vlen > sizeof(vbuf))
		return 0;
	memcpy(vbuf, val, vlen);
	memset(&ek, 0, sizeof(ek));
	memset(&ev, 0, sizeof(ev));
	/* DB_THREAD wants an allocation flag on both */
	ek.data = (void *)envid;
	ek.size = ek.ulen = (u_int32_t)strlen(envid);
	ek.flags = DB_DBT_USERMEM;
	ev.data = vbuf;
	ev.size = ev.ulen = (u_int32_t)vlen;
	ev.flags = DB_DBT_USERMEM;
	if ((rc = dbs[QDB_ENVID]->cursor(dbs[QDB_ENVID], txn, &c, 0)) != 0)
		return rc;
	rc = c->get(c, &ek, &ev, DB_GET_BOTH);
	if (rc == 0)
		rc = c->del(c, 0);
	if ((crc = c->close(c)) != 0 && (rc == 0 || rc == DB_NOTFOUND))
		rc = crc;
	return rc == DB_NOTFOUND ? 0 : rc;
}

/* envid_del - delete qid's ENVID index entries: the value with its
 * certifier cert (NULL: none) and the old format's bare qid */
static int
envid_del(DB_TXN *txn, const char *envid, const char *qid, const char *cert)
{
	unsigned char	val[REC_ENVID_MAX];
	size_t		vl;
	int		rc;

	if (cert != NULL && (vl = rec_envid_encode(val, qid, cert)) > 0 &&
	    (rc = envid_del_one(txn, envid, val, vl)) != 0)
		return rc;
	return envid_del_one(txn, envid, (const unsigned char *)qid,
	    strlen(qid));
}

/* purge_one - delete every record of qid (its expire entry: the caller) */
static int
purge_one(DB_TXN *txn, const char *qid)
{
	unsigned char	 key[QKEY_MAX];
	struct qmsg	 m;
	const char	*why;
	DBT		 k, v;
	size_t		 kl;
	int		 rc;

	memset(&m, 0, sizeof(m));
	memset(&k, 0, sizeof(k));
	memset(&v, 0, sizeof(v));
	kl = key_msg(key, qid);
	k.data = key;
	k.size = (u_int32_t)kl;
	v.flags = DB_DBT_MALLOC;
	rc = dbs[QDB_MESSAGES]->get(dbs[QDB_MESSAGES], txn, &k, &v, 0);
	if (rc == 0) {
		if (rec_msg_decode(v.data, v.size, &m, &why) == 0) {
			kl = key_state(key, qid, (unsigned)m.state);
			k.data = key;
			k.size = (u_int32_t)kl;
			rc = dbs[QDB_STATE]->del(dbs[QDB_STATE], txn, &k, 0);
			if (rc != 0 && rc != DB_NOTFOUND)
				goto out;
			/* its ENVID index entries: the current format
			 * (tracked messages) and the bare qid of older
			 * stores (every message with an ENVID) */
			if (m.envid != NULL && (rc = envid_del(txn, m.envid, qid,
			    m.mtrk_certifier)) != 0)
				goto out;
		} else
			log_warnx("queue: qid=%s corrupt message record purged: "
			    "%s", qid, why);
		kl = key_msg(key, qid);
		k.data = key;
		k.size = (u_int32_t)kl;
		if ((rc = dbs[QDB_MESSAGES]->del(dbs[QDB_MESSAGES], txn, &k,
		    0)) != 0)
			goto out;
	} else if (rc != DB_NOTFOUND)
		goto out;
	if ((rc = del_prefix(txn, QDB_RECIPIENTS, qid, 2)) != 0)
		goto out;
	rc = del_prefix(txn, QDB_EVENTS, qid, 4);
out:
	free(v.data);
	rec_msg_clear(&m);
	return rc == DB_NOTFOUND ? 0 : rc;
}

/* purge_batch - one transaction: up to PURGE_BATCH expired messages;
 * returns the number purged, or -1 */
static int
purge_batch(time_t cutoff, int *more)
{
	DB_TXN		*txn;
	DBC		*c = NULL;
	DBT		 k, v;
	char		 qid[33];
	int		 rc, n = 0;
	size_t		 ql;

	*more = 0;
	if ((rc = env->txn_begin(env, NULL, &txn, DB_TXN_NOSYNC)) != 0)
		return -1;
	if ((rc = dbs[QDB_EXPIRE]->cursor(dbs[QDB_EXPIRE], txn, &c, 0)) != 0)
		goto fail;
	memset(&k, 0, sizeof(k));
	memset(&v, 0, sizeof(v));
	k.flags = DB_DBT_REALLOC;
	v.flags = DB_DBT_REALLOC;
	rc = c->get(c, &k, &v, DB_FIRST);
	while (rc == 0) {
		if (k.size < 8 + 8 || k.size > 8 + 32) {
			rc = c->del(c, 0);	/* garbage index entry */
			if (rc != 0)
				break;
			rc = c->get(c, &k, &v, DB_NEXT);
			continue;
		}
		if ((time_t)be_get64(k.data) > cutoff)
			break;
		if (n >= PURGE_BATCH) {
			*more = 1;
			break;
		}
		ql = k.size - 8;
		memcpy(qid, (unsigned char *)k.data + 8, ql);
		qid[ql] = '\0';
		if (qid_valid(qid) && (rc = purge_one(txn, qid)) != 0)
			break;
		if ((rc = c->del(c, 0)) != 0)
			break;
		n++;
		rc = c->get(c, &k, &v, DB_NEXT);
	}
	free(k.data);
	free(v.data);
	if (rc != 0 && rc != DB_NOTFOUND)
		goto fail;
	c->close(c);
	c = NULL;
	if ((rc = txn->commit(txn, DB_TXN_NOSYNC)) != 0) {
		log_warnx("queue: purge commit failed: %s", db_strerror(rc));
		return -1;
	}
	return n;
fail:
	if (c != NULL)
		c->close(c);
	txn->abort(txn);
	if (rc != DB_LOCK_DEADLOCK)
		log_warnx("queue: purge failed: %s", db_strerror(rc));
	return -1;
}

static int
purge_run(time_t cutoff)
{
	int	n, more, total = 0, tries = 0;

	do {
		n = purge_batch(cutoff, &more);
		if (n < 0) {
			if (++tries >= TXN_RETRIES)
				return -1;
			more = 1;
			continue;
		}
		total += n;
	} while (more);
	if (total > 0) {
		env->log_flush(env, NULL);
		log_info("queue: purged %d finished message(s) from the history",
		    total);
	}
	return 0;
}

/* ---- reads ---- */

int
qdb_get_meta_u64(const char *name, uint64_t *val)
{
	DBT		 k, v;
	const char	*why;
	int		 rc;

	memset(&k, 0, sizeof(k));
	memset(&v, 0, sizeof(v));
	k.data = (void *)name;
	k.size = (u_int32_t)strlen(name);
	v.flags = DB_DBT_MALLOC;
	rc = dbs[QDB_META]->get(dbs[QDB_META], NULL, &k, &v, 0);
	if (rc == DB_NOTFOUND)
		return 1;
	if (rc != 0) {
		log_warnx("queue: reading meta %s: %s", name, db_strerror(rc));
		return -1;
	}
	rc = rec_meta_u64_decode(v.data, v.size, val, &why);
	free(v.data);
	if (rc == -1) {
		log_warnx("queue: corrupt meta record %s: %s", name, why);
		return -1;
	}
	return 0;
}

/* qdb_get_meta - the raw meta record name: 0 with *val malloc'd
 * (*len bytes), 1 when there is none, -1 on error */
int
qdb_get_meta(const char *name, void **val, size_t *len)
{
	DBT	 k, v;
	int	 rc;

	memset(&k, 0, sizeof(k));
	memset(&v, 0, sizeof(v));
	k.data = (void *)name;
	k.size = (u_int32_t)strlen(name);
	v.flags = DB_DBT_MALLOC;
	if (dbs[QDB_META] == NULL)
		return -1;
	rc = dbs[QDB_META]->get(dbs[QDB_META], NULL, &k, &v, 0);
	if (rc == DB_NOTFOUND)
		return 1;
	if (rc != 0) {
		log_warnx("queue: reading meta %s: %s", name, db_strerror(rc));
		return -1;
	}
	*val = v.data;
	*len = v.size;
	return 0;
}

struct rcpt_scan {
	struct qmsg	*m;
	size_t		 want, got;
};

/* rcpt_cb - decode one recipient record into its slot */
static int
rcpt_cb(DBC *c, const unsigned char *suffix, const DBT *v, void *arg)
{
	struct rcpt_scan	*rs = arg;
	struct qmsg		*m = rs->m;
	size_t			 idx = (size_t)suffix[0] << 8 | suffix[1];
	const char		*why;

	(void)c;
	if (idx >= rs->want || m->rcpts[idx].addr != NULL)
		log_warnx("queue: qid=%s stray recipient record %zu ignored",
		    m->qid, idx);
	else if (rec_rcpt_decode(v->data, v->size, &m->rcpts[idx], &why) == -1)
		log_warnx("queue: qid=%s corrupt recipient record %zu: %s",
		    m->qid, idx, why);
	else
		rs->got++;
	return 0;
}

/* read_rcpts - recipients of m (m->nrcpts from the message record) */
static int
read_rcpts(struct qmsg *m)
{
	struct rcpt_scan	 rs = { m, m->nrcpts, 0 };
	size_t			 want = m->nrcpts, got, idx;

	m->nrcpts = 0;
	if (want == 0)
		return 0;
	if ((m->rcpts = calloc(want, sizeof(*m->rcpts))) == NULL)
		return -1;
	m->nrcpts = want;	/* so that qmsg_free releases what was decoded */
	if (qid_scan(QDB_RECIPIENTS, NULL, m->qid, 2, rcpt_cb, &rs) != 0)
		return -1;
	got = rs.got;
	if (got != want) {
		/* keep the message: a missing recipient shows as a failure */
		for (idx = 0; idx < want; idx++) {
			struct qrcpt *r = &m->rcpts[idx];

			if (r->addr != NULL)
				continue;
			if ((r->addr = strdup("(corrupt recipient record)")) == NULL)
				return -1;
			r->status = RS_FAILED;
			r->last_code = 451;
			snprintf(r->last_enh, sizeof(r->last_enh), "4.3.0");
			r->last_text = strdup("recipient record lost or corrupt");
		}
	}
	return 0;
}

struct event_scan {
	const char	*qid;
	int		(*cb)(uint32_t, const struct qevent *, void *);
	void		*arg;
};

/* event_cb - decode one event record and hand it on */
static int
event_cb(DBC *c, const unsigned char *suffix, const DBT *v, void *arg)
{
	struct event_scan	*es = arg;
	struct qevent		 e;
	const char		*why;
	int			 stop;

	(void)c;
	if (rec_event_decode(v->data, v->size, &e, &why) == -1) {
		log_warnx("queue: qid=%s corrupt event %u: %s", es->qid,
		    be_get32(suffix), why);
		return 0;
	}
	stop = es->cb(be_get32(suffix), &e, es->arg) == -1;
	rec_event_clear(&e);
	return stop;
}

int
qdb_read_events(const char *qid,
    int (*cb)(uint32_t seq, const struct qevent *e, void *arg), void *arg)
{
	struct event_scan	es = { qid, cb, arg };

	if (env == NULL)
		return -1;
	return qid_scan(QDB_EVENTS, NULL, qid, 4, event_cb, &es) == 0 ? 0 : -1;
}

static int
trace_cb(uint32_t seq, const struct qevent *e, void *arg)
{
	struct qmsg	*m = arg;

	if (seq >= m->next_seq)
		m->next_seq = seq + 1;
	if (strcmp(e->kind, "trace") == 0 && e->detail != NULL &&
	    qmsg_add_trace(m, e->detail) == -1)
		return -1;
	return 0;
}

/* read_msg - message + recipients of qid, + trace fields when events */
static struct qmsg *
read_msg(const char *qid, int events)
{
	unsigned char	 key[QKEY_MAX];
	struct qmsg	*m;
	const char	*why;
	DBT		 k, v;
	size_t		 kl;
	int		 rc;

	if (env == NULL || (kl = key_msg(key, qid)) == 0 || kl >= QID_SIZE)
		return NULL;
	memset(&k, 0, sizeof(k));
	memset(&v, 0, sizeof(v));
	k.data = key;
	k.size = (u_int32_t)kl;
	v.flags = DB_DBT_MALLOC;
	rc = dbs[QDB_MESSAGES]->get(dbs[QDB_MESSAGES], NULL, &k, &v, 0);
	if (rc != 0) {
		if (rc != DB_NOTFOUND)
			log_warnx("queue: qid=%s reading the message: %s", qid,
			    db_strerror(rc));
		return NULL;
	}
	if ((m = qmsg_new()) == NULL) {
		free(v.data);
		return NULL;
	}
	rc = rec_msg_decode(v.data, v.size, m, &why);
	free(v.data);
	if (rc == -1) {
		log_warnx("queue: qid=%s corrupt message record: %s", qid, why);
		qmsg_free(m);
		return NULL;
	}
	memcpy(m->qid, qid, kl);
	m->qid[kl] = '\0';
	if (read_rcpts(m) == -1 ||
	    (events && qdb_read_events(qid, trace_cb, m) == -1)) {
		log_warnx("queue: qid=%s cannot read its records", qid);
		qmsg_free(m);
		return NULL;
	}
	return m;
}

struct qmsg *
qdb_read_msg(const char *qid)
{
	return read_msg(qid, 1);
}

struct qmsg *
qdb_read_msg_status(const char *qid)
{
	return read_msg(qid, 0);
}

/* sched_entry - the qid and time of a schedule index entry; -1 if bad */
static int
sched_entry(const DBT *k, char *qid, time_t *t)
{
	size_t	ql;

	if (k->size <= 8 || k->size - 8 >= QID_SIZE)
		return -1;
	ql = k->size - 8;
	memcpy(qid, (unsigned char *)k->data + 8, ql);
	qid[ql] = '\0';
	*t = (time_t)be_get64(k->data);
	return qid_valid(qid) ? 0 : -1;
}

/* msg_readable - 0 when qid's message record exists, else a DB error */
static int
msg_readable(const char *qid)
{
	unsigned char	key[QKEY_MAX];
	DBT		k;
	size_t		kl;

	if ((kl = key_msg(key, qid)) == 0)
		return EINVAL;
	memset(&k, 0, sizeof(k));
	k.data = key;
	k.size = (u_int32_t)kl;
	return dbs[QDB_MESSAGES]->exists(dbs[QDB_MESSAGES], NULL, &k, 0);
}

/* qdb_load_unfinished - every message of the schedule index; an entry
 * whose message cannot be read (the records are written together) means
 * a damaged store: -1 with err naming the recovery, nothing loaded is
 * dropped silently */
int
qdb_load_unfinished(void (*cb)(struct qmsg *m, time_t sched_time, void *arg),
    void *arg, char *err, size_t errlen)
{
	DBC		*c;
	DBT		 k, v;
	char		 qid[QID_SIZE];
	struct qmsg	*m;
	time_t		 t;
	int		 rc, xrc;

	if ((rc = dbs[QDB_SCHEDULE]->cursor(dbs[QDB_SCHEDULE], NULL, &c, 0)) != 0) {
		snprintf(err, errlen, "cannot read the schedule index: %s; "
		    QUEUE_RECOVER_HINT, db_strerror(rc));
		return -1;
	}
	memset(&k, 0, sizeof(k));
	memset(&v, 0, sizeof(v));
	k.flags = DB_DBT_REALLOC;
	v.flags = DB_DBT_REALLOC;
	rc = c->get(c, &k, &v, DB_FIRST);
	while (rc == 0) {
		if (sched_entry(&k, qid, &t) == -1) {
			log_warnx("queue: bad schedule index entry ignored");
			goto next;
		}
		if (qmem_find(qid) != NULL)
			goto next;
		if ((xrc = msg_readable(qid)) != 0 ||
		    (m = qdb_read_msg(qid)) == NULL) {
			snprintf(err, errlen, "qid=%s is in the schedule index "
			    "but its message cannot be read (%s): the queue "
			    "database is damaged; " QUEUE_RECOVER_HINT, qid,
			    xrc != 0 ? db_strerror(xrc) : "corrupt records");
			rc = -1;
			break;
		}
		if (m->done_time != 0) {
			qmsg_free(m);
			goto next;
		}
		cb(m, t, arg);
next:
		rc = c->get(c, &k, &v, DB_NEXT);
	}
	free(k.data);
	free(v.data);
	c->close(c);
	if (rc == DB_NOTFOUND)
		return 0;
	if (rc != -1)
		snprintf(err, errlen, "cannot read the schedule index: %s; "
		    QUEUE_RECOVER_HINT, db_strerror(rc));
	return -1;
}

/* qdb_schedule_prune - `waymarkd --recover`: remove the schedule index
 * entries whose message cannot be read; the qids go to out; -1 on error */
int
qdb_schedule_prune(FILE *out, size_t *n)
{
	DB_TXN		*txn;
	DBC		*c;
	DBT		 k, v;
	char		 qid[QID_SIZE];
	struct qmsg	*m;
	time_t		 t;
	int		 rc, bad;

	*n = 0;
	if (env->txn_begin(env, NULL, &txn, 0) != 0)
		return -1;
	if (dbs[QDB_SCHEDULE]->cursor(dbs[QDB_SCHEDULE], txn, &c, 0) != 0) {
		txn->abort(txn);
		return -1;
	}
	memset(&k, 0, sizeof(k));
	memset(&v, 0, sizeof(v));
	k.flags = DB_DBT_REALLOC;
	v.flags = DB_DBT_REALLOC;
	rc = c->get(c, &k, &v, DB_FIRST);
	while (rc == 0) {
		bad = sched_entry(&k, qid, &t) == -1 || msg_readable(qid) != 0;
		if (!bad) {
			if ((m = qdb_read_msg(qid)) == NULL)
				bad = 1;
			else
				qmsg_free(m);
		}
		if (bad) {
			fprintf(out, "waymarkd: recover: schedule entry "
			    "qid=%s removed: its message cannot be read\n",
			    qid);
			if ((rc = c->del(c, 0)) != 0)
				break;
			(*n)++;
		}
		rc = c->get(c, &k, &v, DB_NEXT);
	}
	free(k.data);
	free(v.data);
	c->close(c);
	if (rc != DB_NOTFOUND) {
		txn->abort(txn);
		return -1;
	}
	return txn->commit(txn, 0) == 0 ? 0 : -1;
}

/* qdb_msg_exists - `waymarkd --recover`: 1 when qid has a readable
 * message record, 0 when not */
int
qdb_msg_exists(const char *qid)
{
	return env != NULL && msg_readable(qid) == 0;
}

/* ---- tracking: the ENVID index ---- */

/* compared when no entry is: never a certifier ('*' is not base64) */
static const char track_dummy[REC_CERT_LEN + 1] =
    "***************************";

struct track_cand {
	char	qid[REC_QID_MAX + 1];
	int	old;			/* old-format entry: no certifier */
};

/* cand_add - one more candidate to read once the cursor is closed */
static int
cand_add(struct track_cand **cv, size_t *n, size_t *cap, const char *qid,
    int old)
{
	struct track_cand	*p;
	size_t			 ncap;

	if (*n == *cap) {
		ncap = *cap ? *cap * 4 : 4;
		if (ncap > TRACK_CAND_MAX)
			ncap = TRACK_CAND_MAX;
		if (ncap <= *n ||
		    (p = realloc(*cv, ncap * sizeof(**cv))) == NULL)
			return -1;
		*cv = p;
		*cap = ncap;
	}
	memcpy((*cv)[*n].qid, qid, strlen(qid) + 1);
	(*cv)[(*n)++].old = old;
	return 0;
}

/* qdb_envid_walk - the decoded ENVID index entries of envid */
int
qdb_envid_walk(const char *envid, size_t max,
    int (*cb)(const char *qid, const char *cert, void *arg), void *arg)
{
	char		 qid[REC_QID_MAX + 1], cert[REC_CERT_LEN + 1];
	const char	*why;
	DBC		*c;
	DBT		 k, v;
	size_t		 n, seen = 0;
	int		 rc, crc, count = 0;

	if (env == NULL || dbs[QDB_ENVID] == NULL || envid == NULL ||
	    cb == NULL)
		return -1;
	n = strlen(envid);
	if ((rc = dbs[QDB_ENVID]->cursor(dbs[QDB_ENVID], NULL, &c, 0)) != 0) {
		log_warnx("queue: reading the ENVID index: %s", db_strerror(rc));
		return -1;
	}
	memset(&k, 0, sizeof(k));
	memset(&v, 0, sizeof(v));
	/* DB_THREAD: both returned, so both malloc'd (the key is copied) */
	k.flags = DB_DBT_REALLOC;
	v.flags = DB_DBT_REALLOC;
	if ((k.data = malloc(n + 1)) == NULL) {
		c->close(c);
		return -1;
	}
	memcpy(k.data, envid, n);
	k.size = (u_int32_t)n;
	rc = c->get(c, &k, &v, DB_SET);
	while (rc == 0 && seen++ < max) {
		if (rec_envid_decode(v.data, v.size, qid, cert, &why) == -1)
			log_warnx("queue: bad ENVID index entry ignored: %s",
			    why);
		else {
			count++;
			if (cb(qid, cert, arg) == -1) {
				rc = -1;
				break;
			}
		}
		rc = c->get(c, &k, &v, DB_NEXT_DUP);
	}
	if (rc == DB_NOTFOUND)
		rc = 0;
	else if (rc > 0)
		log_warnx("queue: reading the ENVID index: %s", db_strerror(rc));
	free(k.data);
	free(v.data);
	if ((crc = c->close(c)) != 0 && rc == 0)
		rc = crc;
	return rc == 0 ? count : -1;
}

struct track_walk {
	const char		*cert;		/* the requester's */
	int			 certok;	/* it has the right length */
	int			 compared;
	struct track_cand	*cv;		/* to read, in index order */
	size_t			 ncv, cap;
};

/* walk_cb - one index entry: its certifier compared in constant time;
 * a match, or an old-format entry (its record decides), kept */
static int
walk_cb(const char *qid, const char *cert, void *arg)
{
	struct track_walk	*w = arg;
	int			 eq;

	if (cert[0] == '\0')		/* old format: read it later */
		return cand_add(&w->cv, &w->ncv, &w->cap, qid, 1);
	/* RFC 3888 4: every entry compared, in constant time */
	eq = CRYPTO_memcmp(w->cert, cert, REC_CERT_LEN) == 0;
	w->compared = 1;
	if (eq && w->certok)
		return cand_add(&w->cv, &w->ncv, &w->cap, qid, 0);
	return 0;
}

/* queue_track_find - the tracked messages of envid whose certifier is cert */
int
queue_track_find(const char *envid, const char *cert,
    int (*cb)(const struct qmsg *m, int queued, void *arg), void *arg)
{
	struct track_walk	 w;
	struct track_cand	*cv;
	struct qmsg		*m;
	size_t			 i;
	int			 queued, eq, rc = 0;

	if (env == NULL || dbs[QDB_ENVID] == NULL || envid == NULL ||
	    cert == NULL || cb == NULL)
		return -1;
	memset(&w, 0, sizeof(w));
	/* a certifier of another length matches nothing, at the same cost */
	w.certok = strlen(cert) == REC_CERT_LEN;
	w.cert = w.certok ? cert : track_dummy;
	/* the cursor is closed before any record is read */
	rc = qdb_envid_walk(envid, TRACK_CAND_MAX, walk_cb, &w);
	/* no entry compared: the same work against a dummy */
	if (!w.compared)
		(void)CRYPTO_memcmp(w.cert, track_dummy, REC_CERT_LEN);
	if (rc == -1) {
		free(w.cv);
		return -1;
	}
	rc = 0;
	cv = w.cv;
	for (i = 0; i < w.ncv && rc == 0; i++) {
		if ((m = qmem_find(cv[i].qid)) != NULL)
			queued = 1;
		else if ((m = qdb_read_msg_status(cv[i].qid)) != NULL)
			queued = 0;
		else
			continue;	/* purged meanwhile, or unreadable */
		if (cv[i].old) {
			eq = m->mtrk_certifier != NULL &&
			    strlen(m->mtrk_certifier) == REC_CERT_LEN &&
			    CRYPTO_memcmp(w.cert, m->mtrk_certifier,
			    REC_CERT_LEN) == 0;
			if (eq && w.certok)
				rc = cb(m, queued, arg);
		} else
			rc = cb(m, queued, arg);
		if (!queued)
			qmsg_free(m);
	}
	free(cv);
	return rc;
}
