#include "config.h"
/*
 * dlv_maildir.c - local delivery into Maildir folders
 * (mailbox_root/<domain>/<local>/{tmp,new,cur}, both lower-cased (ASCII);
 * a U-label domain's folder is its A-labels, a UTF-8 local part's is its
 * NFC form; no '/', no leading '.', no control characters).
 * Owns: the directory fd on mailbox_root (taken before the privilege
 *       drop; every path is relative to it: mkdirat, openat, linkat),
 *       the pending-job list and the delivery batches run in the work
 *       pool, the file layout.
 * File: "Return-Path: <sender>", the trace fields newest first, then the
 *       spool body with CRLF turned into LF, streamed in 64 KiB chunks.
 * Protocol (group-synced): dlv_local_start only queues the job; a batch
 *       (at most BATCH_RUNNERS at once) takes every pending job, writes all
 *       files as tmp/<name>.P<pid>Q<n>, makes them durable with one sync
 *       (fsync of the file for a batch of one, else syncfs() on
 *       mailbox_root), links each into new/<name> (never replacing) and
 *       unlinks the tmp name, then makes the new/ entries durable with
 *       one more sync (fsync of new/ when all are in one folder, else
 *       syncfs()).  Safe because nothing is linked before the first sync
 *       returned and nothing is reported before the second did: a file
 *       appears in new/ only with its content on disk, and a delivery is
 *       reported only once its new/ entry is.  A folder on another file
 *       system than mailbox_root (syncfs would miss it), or no syncfs(),
 *       gets its own fsyncs as before.  A failed sync defers every
 *       recipient it covered and removes their tmp files / new/ entries.
 *       The final name <arrival>.<qid>_<ridx>.<host> is fixed per queue id
 *       and recipient (queue ids are never reused), so a delivery repeated
 *       after a crash between the link and the status commit finds its file
 *       (in new/, or in cur/ for messages older than this daemon) and is
 *       not delivered twice (an entry found in new/ is synced again).
 * Results: 250 2.0.0 delivered; 450 4.2.0 for folder/file errors (451
 *       4.3.0 for EIO & co, 452 4.3.1 ENOSPC, 452 4.2.2 EDQUOT), with
 *       the path relative to mailbox_root in the text; 550 5.1.3 for an
 *       address unsafe as a folder name (refused at RCPT normally).
 *       Each job's callback runs once, in the loop thread, from the done
 *       callback of the batch that ran it.  Workers never touch the qmsg:
 *       the job copies what it needs.
 */

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <dirent.h>
#include <time.h>
#include <unistd.h>

#include "common/cfg.h"
#include "common/intl.h"
#include "common/log.h"
#include "common/syntax.h"
#include "common/util.h"
#include "common/work.h"
#include "delivery/delivery.h"

#define CHUNK		(64 * 1024)
#define REL_MAX		1024
#define BATCH_RUNNERS	2	/* batches running at once */

/* where one recipient's file is between the phases of its batch */
enum rcpt_phase {
	R_FINAL,	/* result set, nothing left to sync */
	R_TMP,		/* written under tmp/, waiting for sync 1 */
	R_LINKED,	/* linked into new/ by us, waiting for sync 2 */
	R_SEEN		/* in new/ from before a restart, waiting for sync 2 */
};

struct rcpt_state {
	enum rcpt_phase	 st;
	int		 solo;		/* syncs alone (other file system) */
	char		 dir[REL_MAX];	/* <domain>/<local> */
	char		 tmp[REL_MAX];
	char		 dst[REL_MAX];
};

struct dlv_job {
	char			 qid[QID_SIZE];
	long long		 arrival;
	int			 recovered;	/* queued before this daemon started */
	char			*sender;
	char			**trace;
	size_t			 ntrace;
	char			*body_path;
	char			*host;		/* sanitised hostname */
	char			**addrs;
	struct dlv_result	*res;
	struct rcpt_state	*st;		/* worker side, per recipient */
	size_t			 n;
	dlv_done_fn		 done;
	void			*arg;
	struct dlv_job		*next;		/* pending list, then batch */
};

struct dlv_batch {
	struct dlv_job		*jobs;		/* taken by batch_run */
};

static int		 root_fd = -1;
static time_t		 dlv_start_time;
static atomic_ulong	 dlv_counter;
static dev_t		 root_dev;
#ifdef HAVE_SYNCFS
static const int	 batch_sync_ok = 1;
#else
static const int	 batch_sync_ok = 0;	/* every file syncs alone */
#endif

/* jobs waiting for a batch; pend_runners = batches submitted, whose
 * done callback has not run yet */
static pthread_mutex_t	 pend_mtx = PTHREAD_MUTEX_INITIALIZER;
static struct dlv_job	*pend_head, *pend_tail;
static int		 pend_runners;

static void		 batch_done(void *);

/* ---- set-up ---- */

int
dlv_init(const struct config *cfg, long uid, long gid, char *err,
    size_t errlen)
{
	struct stat	st;
	char		why[512];
	int		fd;

	if (cfg->mailbox_root == NULL || *cfg->mailbox_root == '\0') {
		snprintf(err, errlen, "mailbox_root is not set");
		return -1;
	}
	/* created as root: handed over by fchown on the fd, never by name */
	if ((fd = dir_make_owned(cfg->mailbox_root, 0700, uid, gid, 0, &st,
	    why, sizeof(why))) == -1) {
		snprintf(err, errlen, "mailbox_root: %s", why);
		return -1;
	}
	if (root_fd != -1)
		close(root_fd);
	root_fd = fd;
	root_dev = st.st_dev;
	dlv_start_time = time(NULL);
	return 0;
}

void
dlv_reload(const struct config *cfg)
{
	(void)cfg;	/* mailbox_root changes need a restart; nothing else is kept */
}

/* ---- job helpers ---- */

static void
job_free(struct dlv_job *j)
{
	size_t	i;

	if (j == NULL)
		return;
	free(j->sender);
	for (i = 0; i < j->ntrace; i++)
		free(j->trace[i]);
	free(j->trace);
	free(j->body_path);
	free(j->host);
	if (j->addrs != NULL)
		for (i = 0; i < j->n; i++)
			free(j->addrs[i]);
	free(j->addrs);
	free(j->res);
	free(j->st);
	free(j);
}

/* host_sanitise - Maildir: '/' -> "\057", ':' -> "\072" */
static char *
host_sanitise(const char *h)
{
	char	*out, *p;
	size_t	 n;

	if (h == NULL || *h == '\0')
		h = "localhost";
	n = strlen(h);
	if (n > 255)
		n = 255;
	if ((out = malloc(n * 4 + 1)) == NULL)
		return NULL;
	for (p = out; n > 0; n--, h++) {
		if (*h == '/' || *h == ':') {
			memcpy(p, *h == '/' ? "\\057" : "\\072", 4);
			p += 4;
		} else
			*p++ = *h;
	}
	*p = '\0';
	return out;
}

/* ---- the result of one recipient ---- */

static void
result(struct dlv_result *r, enum rcpt_status st, int code, const char *enh,
    const char *fmt, ...) WM_PRINTF(5, 6);

static void
result(struct dlv_result *r, enum rcpt_status st, int code, const char *enh,
    const char *fmt, ...)
{
	va_list	ap;

	r->status = st;
	r->code = code;
	snprintf(r->enh, sizeof(r->enh), "%s", enh);
	va_start(ap, fmt);
	if (vsnprintf(r->text, sizeof(r->text), fmt, ap) < 0)
		r->text[0] = '\0';
	va_end(ap);
	r->remote[0] = '\0';
}

/* temp_error - classify errno into a deferral (one place) */
static void
temp_error(struct dlv_result *r, int err, const char *what, const char *rel)
{
	int		 code = 450;
	const char	*enh = "4.2.0";

	switch (err) {
	case ENOSPC:
		code = 452;
		enh = "4.3.1";
		break;
	case EDQUOT:
		code = 452;
		enh = "4.2.2";
		break;
	case EIO:
	case EROFS:
	case ENOMEM:
	case EMFILE:
	case ENFILE:
		code = 451;
		enh = "4.3.0";
		break;
	}
	result(r, RS_DEFERRED, code, enh, "%s %s: %s", what, rel, strerror(err));
}

/* ---- the worker side ---- */

/* mkdir_one - mkdirat rel (0700); an existing entry must be a directory */
static int
mkdir_one(const char *rel)
{
	struct stat	st;

	if (mkdirat(root_fd, rel, 0700) == 0)
		return 0;
	if (errno != EEXIST)
		return -1;
	if (fstatat(root_fd, rel, &st, 0) == -1)
		return -1;
	if (!S_ISDIR(st.st_mode)) {
		errno = ENOTDIR;
		return -1;
	}
	return 0;
}

/*
 * maildir_intl - SMTPUTF8 addresses (RFC 6531): the folder of a U-label
 * domain is its A-label form (the one name whatever form the client
 * used), a UTF-8 local part is kept as UTF-8 in NFC (RFC 6532 3.1);
 * ASCII passes unchanged.  0, or -1 when libidn2 / NFC refuse it.
 */
static int
maildir_intl(char *local, size_t llen, char *domain, size_t dlen)
{
	char	buf[256];

	if (str_nonascii(domain, strlen(domain))) {
		if (intl_domain_ascii(domain, buf, sizeof(buf)) == -1 ||
		    strlen(buf) >= dlen)
			return -1;
		memcpy(domain, buf, strlen(buf) + 1);
	}
	if (str_nonascii(local, strlen(local))) {
		if (intl_local_nfc(local, buf, sizeof(buf)) == -1 ||
		    strlen(buf) >= llen)
			return -1;
		memcpy(local, buf, strlen(buf) + 1);
	}
	return 0;
}

/* name_unsafe - empty, '/' inside, leading '.' or control characters */
static int
name_unsafe(const char *s)
{
	if (*s == '\0' || *s == '.' || strchr(s, '/') != NULL)
		return 1;
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f ||
		    ((unsigned char)*s == 0xc2 &&
		    (unsigned char)s[1] >= 0x80 && (unsigned char)s[1] <= 0x9f))
			return 1;	/* C0, DEL, C1 (U+0080-U+009F) */
	return 0;
}

/* copy_body - stream the spool body into fd, CRLF -> LF */
static int
copy_body(int in, int out, char *ibuf, char *obuf, int *rerr)
{
	ssize_t	 n, i;
	size_t	 o = 0;
	int	 cr = 0;

	*rerr = 0;
	for (;;) {
		if ((n = read(in, ibuf, CHUNK)) == -1) {
			if (errno == EINTR)
				continue;
			*rerr = 1;
			return -1;
		}
		if (n == 0)
			break;
		for (i = 0; i < n; i++) {
			char c = ibuf[i];

			if (o + 2 > CHUNK) {
				if (write_full(out, obuf, o) == -1)
					return -1;
				o = 0;
			}
			if (cr) {
				cr = 0;
				if (c == '\n') {
					obuf[o++] = '\n';
					continue;
				}
				obuf[o++] = '\r';
			}
			if (c == '\r')
				cr = 1;
			else
				obuf[o++] = c;
		}
	}
	if (cr)
		obuf[o++] = '\r';
	if (o > 0 && write_full(out, obuf, o) == -1)
		return -1;
	return 0;
}

/* seen_in_cur - 1 when dir/cur holds name or name:<flags> (a delivery
 * made before a crash and already read by a mail client) */
static int
seen_in_cur(const char *dir, const char *name)
{
	char		 rel[REL_MAX];
	DIR		*d;
	struct dirent	*e;
	size_t		 nl = strlen(name);
	int		 fd, found = 0;

	if (snprintf(rel, sizeof(rel), "%s/cur", dir) >= (int)sizeof(rel) ||
	    (fd = openat(root_fd, rel, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1)
		return 0;
	if ((d = fdopendir(fd)) == NULL) {
		close(fd);
		return 0;
	}
	while (!found && (e = readdir(d)) != NULL)
		if (strncmp(e->d_name, name, nl) == 0 &&
		    (e->d_name[nl] == '\0' || e->d_name[nl] == ':'))
			found = 1;
	closedir(d);
	return found;
}

/*
 * rcpt_write - phase 1 for recipient k: check the address, make the
 * folders, write the file under tmp/.  Leaves s->st at R_TMP (file
 * written, not yet synced, unless s->solo), R_SEEN (already in new/ from
 * before a restart) or R_FINAL (result set).  The fd of the first
 * batch-synced file is handed back in *keep (for a batch of one file).
 */
static void
rcpt_write(struct dlv_job *j, size_t k, char *ibuf, char *obuf, int *keep)
{
	struct dlv_result *r = &j->res[k];
	struct rcpt_state *s = &j->st[k];
	struct stat	 st;
	char		 local[SMTP_LOCAL_MAX + 3], domain[256];
	char		 rel[REL_MAX], name[512];
	const char	*addr = j->addrs[k], *at;
	size_t		 ll, i;
	int		 fd = -1, bfd = -1, rerr, n;
	static const char *const sub[] = { "tmp", "new", "cur" };

	s->st = R_FINAL;
	if ((at = strrchr(addr, '@')) == NULL || at == addr ||
	    (ll = (size_t)(at - addr)) >= sizeof(local) ||
	    strlen(at + 1) >= sizeof(domain)) {
		result(r, RS_FAILED, 550, "5.1.3", "address %s cannot be "
		    "delivered to a maildir", addr);
		return;
	}
	memcpy(local, addr, ll);
	local[ll] = '\0';
	memcpy(domain, at + 1, strlen(at + 1) + 1);
	if (maildir_intl(local, sizeof(local), domain, sizeof(domain)) == -1) {
		result(r, RS_FAILED, 550, "5.1.3", "address %s cannot be "
		    "delivered to a maildir", addr);
		return;
	}
	str_lower(local);
	str_lower(domain);
	if (name_unsafe(local) || name_unsafe(domain)) {
		result(r, RS_FAILED, 550, "5.1.3", "address %s is unsafe as a "
		    "maildir name", addr);
		return;
	}

	/* the folder chain */
	if (snprintf(rel, sizeof(rel), "%s", domain) >= (int)sizeof(rel) ||
	    snprintf(s->dir, sizeof(s->dir), "%s/%s", domain, local) >=
	    (int)sizeof(s->dir))
		goto toolong;
	if (mkdir_one(rel) == -1) {
		temp_error(r, errno, "cannot create maildir", rel);
		return;
	}
	if (mkdir_one(s->dir) == -1) {
		temp_error(r, errno, "cannot create maildir", s->dir);
		return;
	}
	for (i = 0; i < 3; i++) {
		if (snprintf(rel, sizeof(rel), "%s/%s", s->dir, sub[i]) >=
		    (int)sizeof(rel))
			goto toolong;
		if (mkdir_one(rel) == -1) {
			temp_error(r, errno, "cannot create maildir", rel);
			return;
		}
	}
	/* new/ on another file system than mailbox_root: syncfs() on
	 * mailbox_root would not cover it, so this one syncs alone */
	if (snprintf(rel, sizeof(rel), "%s/new", s->dir) >= (int)sizeof(rel))
		goto toolong;
	if (fstatat(root_fd, rel, &st, 0) == -1) {
		temp_error(r, errno, "cannot create maildir", rel);
		return;
	}
	s->solo = !batch_sync_ok || st.st_dev != root_dev;

	if ((bfd = open(j->body_path, O_RDONLY | O_CLOEXEC)) == -1) {
		result(r, RS_DEFERRED, 451, "4.3.0", "cannot open the queued "
		    "message: %s", strerror(errno));
		return;
	}
	n = snprintf(name, sizeof(name), "%lld.%s_%zu.%s", j->arrival, j->qid,
	    r->ridx, j->host);
	if (n < 0 || (size_t)n >= sizeof(name) ||
	    snprintf(s->tmp, sizeof(s->tmp), "%s/tmp/%s.P%ldQ%lu", s->dir, name,
	    (long)getpid(), (unsigned long)atomic_fetch_add(&dlv_counter, 1) +
	    1) >= (int)sizeof(s->tmp) ||
	    snprintf(s->dst, sizeof(s->dst), "%s/new/%s", s->dir, name) >=
	    (int)sizeof(s->dst))
		goto toolong;
	if (j->recovered && faccessat(root_fd, s->dst, F_OK, 0) == 0) {
		result(r, RS_DELIVERED, 250, "2.0.0", "delivered to maildir "
		    "before a restart (duplicate suppressed)");
		s->st = R_SEEN;		/* its new/ entry is synced with ours */
		goto out;
	}
	if (j->recovered && seen_in_cur(s->dir, name)) {
		result(r, RS_DELIVERED, 250, "2.0.0", "delivered to maildir "
		    "before a restart (duplicate suppressed)");
		goto out;
	}
	if ((fd = openat(root_fd, s->tmp, O_WRONLY | O_CREAT | O_EXCL |
	    O_CLOEXEC, 0600)) == -1) {
		temp_error(r, errno, "cannot create", s->tmp);
		goto out;
	}

	/* Return-Path, trace fields newest first, body */
	n = snprintf(obuf, CHUNK, "Return-Path: <%s>\n", j->sender);
	if (n < 0 || n >= CHUNK || write_full(fd, obuf, (size_t)n) == -1)
		goto werr;
	for (i = j->ntrace; i > 0; i--)
		if (write_full(fd, j->trace[i - 1], strlen(j->trace[i - 1])) == -1 ||
		    write_full(fd, "\n", 1) == -1)
			goto werr;
	if (copy_body(bfd, fd, ibuf, obuf, &rerr) == -1) {
		if (rerr) {
			result(r, RS_DEFERRED, 451, "4.3.0", "cannot read the "
			    "queued message: %s", strerror(errno));
			goto unlink_tmp;
		}
		goto werr;
	}
	if (s->solo && fsync(fd) == -1)
		goto werr;
	s->st = R_TMP;
	if (!s->solo && *keep == -1) {
		*keep = fd;	/* closed (and maybe fsync'd) by the batch */
		fd = -1;
		goto out;
	}
	if (close(fd) == -1) {
		fd = -1;
		s->st = R_FINAL;
		goto werr;
	}
	fd = -1;
	goto out;

werr:
	temp_error(r, errno, "cannot write", s->tmp);
unlink_tmp:
	if (fd != -1)
		close(fd);
	fd = -1;
	unlinkat(root_fd, s->tmp, 0);
	goto out;
toolong:
	result(r, RS_FAILED, 550, "5.1.3", "maildir path too long for %s", addr);
out:
	if (fd != -1)
		close(fd);
	if (bfd != -1)
		close(bfd);
}

/* rcpt_link - phase 2 for a synced R_TMP file: link it into new/ */
static void
rcpt_link(struct dlv_job *j, size_t k)
{
	struct dlv_result *r = &j->res[k];
	struct rcpt_state *s = &j->st[k];

	if (linkat(root_fd, s->tmp, root_fd, s->dst, 0) == -1) {
		if (errno == EEXIST) {
			/* delivered before a crash: keep the one copy */
			unlinkat(root_fd, s->tmp, 0);
			result(r, RS_DELIVERED, 250, "2.0.0", "delivered to "
			    "maildir before a restart (duplicate suppressed)");
			s->st = R_SEEN;
			return;
		}
		temp_error(r, errno, "cannot link into", s->dst);
		unlinkat(root_fd, s->tmp, 0);
		s->st = R_FINAL;
		return;
	}
	if (unlinkat(root_fd, s->tmp, 0) == -1)
		log_warn("maildir: cannot remove %s", s->tmp);
	s->st = R_LINKED;
}

/* sync_new - fsync dir/new; 0 or -1 with errno */
static int
sync_new(const char *dir)
{
	char	rel[REL_MAX];
	int	fd, e;

	if (snprintf(rel, sizeof(rel), "%s/new", dir) >= (int)sizeof(rel)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	if ((fd = openat(root_fd, rel, O_RDONLY | O_DIRECTORY |
	    O_CLOEXEC)) == -1)
		return -1;
	if (fsync(fd) == -1) {
		e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	close(fd);
	return 0;
}

/* sync_root - syncfs() on the file system of mailbox_root */
static int
sync_root(void)
{
#ifdef HAVE_SYNCFS
	return syncfs(root_fd);
#else
	errno = ENOSYS;		/* not reached: batch_sync_ok is 0 */
	return -1;
#endif
}

/* sync_fail_tmp - the phase-1 sync failed: drop the tmp file, defer */
static void
sync_fail_tmp(struct dlv_job *j, size_t k, int err)
{
	temp_error(&j->res[k], err, "cannot write", j->st[k].tmp);
	unlinkat(root_fd, j->st[k].tmp, 0);
	j->st[k].st = R_FINAL;
}

/* sync_fail_new - the phase-2 sync failed: drop our new/ entry, defer */
static void
sync_fail_new(struct dlv_job *j, size_t k, int err)
{
	struct rcpt_state *s = &j->st[k];
	char		 rel[REL_MAX];

	if (snprintf(rel, sizeof(rel), "%s/new", s->dir) >= (int)sizeof(rel))
		rel[0] = '\0';
	temp_error(&j->res[k], err, "cannot sync", rel);
	/* ours may show up anyway; one from before a restart stays (the
	 * retry finds it and suppresses the duplicate) */
	if (s->st == R_LINKED)
		unlinkat(root_fd, s->dst, 0);
	s->st = R_FINAL;
}

/*
 * The copy buffers of the batches that run (at most BATCH_RUNNERS at
 * once), allocated on first use and kept: a heap that is short of
 * memory, or too fragmented for CHUNK octets in one piece, after a load
 * does not stop local delivery once it has run.
 */
static char		*run_bufs[BATCH_RUNNERS][2];
static int		 run_busy[BATCH_RUNNERS];

/* bufs_take - a slot's buffers (NULL when none can be had); the slot */
static int
bufs_take(char **ibuf, char **obuf)
{
	int	i, slot = -1;

	pthread_mutex_lock(&pend_mtx);
	for (i = 0; i < BATCH_RUNNERS && slot == -1; i++)
		if (!run_busy[i]) {
			run_busy[i] = 1;
			slot = i;
		}
	pthread_mutex_unlock(&pend_mtx);
	*ibuf = *obuf = NULL;
	if (slot == -1)
		return -1;
	if (run_bufs[slot][0] == NULL)
		run_bufs[slot][0] = malloc(CHUNK);
	if (run_bufs[slot][1] == NULL)
		run_bufs[slot][1] = malloc(CHUNK);
	*ibuf = run_bufs[slot][0];
	*obuf = run_bufs[slot][1];
	return slot;
}

/* bufs_give - the slot is free again (its buffers stay) */
static void
bufs_give(int slot)
{
	if (slot == -1)
		return;
	pthread_mutex_lock(&pend_mtx);
	run_busy[slot] = 0;
	pthread_mutex_unlock(&pend_mtx);
}

/*
 * batch_run - the work-pool side of a batch: write every file, one sync,
 * link every file into new/, one sync.  See the header comment.
 */
static void
batch_run(void *arg)
{
	struct dlv_batch *b = arg;
	struct dlv_job	*j;
	const char	*dir1 = NULL;
	char		*ibuf, *obuf;
	size_t		 k, nbatch = 0;
	int		 keep = -1, same = 1, rc, e, slot;

	pthread_mutex_lock(&pend_mtx);
	b->jobs = pend_head;
	pend_head = pend_tail = NULL;
	pthread_mutex_unlock(&pend_mtx);
	if (b->jobs == NULL)
		return;

	slot = bufs_take(&ibuf, &obuf);
	/* phase 1: every file into tmp/ */
	for (j = b->jobs; j != NULL; j = j->next)
		for (k = 0; k < j->n; k++) {
			if (ibuf == NULL || obuf == NULL || root_fd == -1) {
				j->st[k].st = R_FINAL;
				result(&j->res[k], RS_DEFERRED, 451, "4.3.0",
				    "local delivery unavailable (out of memory "
				    "or no mailbox_root)");
			} else
				rcpt_write(j, k, ibuf, obuf, &keep);
			if (j->st[k].st == R_TMP && !j->st[k].solo)
				nbatch++;
		}
	bufs_give(slot);

	/* sync 1: the contents of every file */
	if (nbatch > 0) {
		if (nbatch == 1 && keep != -1)
			rc = fsync(keep);
		else
			rc = sync_root();
		e = errno;
		if (keep != -1 && close(keep) == -1 && rc == 0) {
			rc = -1;
			e = errno;
		}
		if (rc == -1) {
			log_warnx("maildir: cannot sync %zu file(s): %s",
			    nbatch, strerror(e));
			for (j = b->jobs; j != NULL; j = j->next)
				for (k = 0; k < j->n; k++)
					if (j->st[k].st == R_TMP &&
					    !j->st[k].solo)
						sync_fail_tmp(j, k, e);
		}
	} else if (keep != -1)
		close(keep);	/* not reached: keep implies nbatch > 0 */

	/* phase 2: link into new/ (never replacing) */
	nbatch = 0;
	for (j = b->jobs; j != NULL; j = j->next)
		for (k = 0; k < j->n; k++) {
			struct rcpt_state *s = &j->st[k];

			if (s->st == R_TMP)
				rcpt_link(j, k);
			if (s->st != R_LINKED && s->st != R_SEEN)
				continue;
			if (s->solo) {
				if (sync_new(s->dir) == -1)
					sync_fail_new(j, k, errno);
				continue;
			}
			if (dir1 == NULL)
				dir1 = s->dir;
			else if (strcmp(dir1, s->dir) != 0)
				same = 0;
			nbatch++;
		}

	/* sync 2: the new/ entries */
	if (nbatch > 0) {
		rc = same ? sync_new(dir1) : sync_root();
		if (rc == -1) {
			e = errno;
			log_warnx("maildir: cannot sync %zu new/ entries: %s",
			    nbatch, strerror(e));
			for (j = b->jobs; j != NULL; j = j->next)
				for (k = 0; k < j->n; k++)
					if ((j->st[k].st == R_LINKED ||
					    j->st[k].st == R_SEEN) &&
					    !j->st[k].solo)
						sync_fail_new(j, k, e);
		}
	}
	for (j = b->jobs; j != NULL; j = j->next)
		for (k = 0; k < j->n; k++)
			if (j->st[k].st == R_LINKED)
				result(&j->res[k], RS_DELIVERED, 250, "2.0.0",
				    "delivered to maildir");
}

/* jobs_report - loop thread: each job's callback, once; frees the jobs */
static void
jobs_report(struct dlv_job *list)
{
	struct dlv_job	*j;

	while ((j = list) != NULL) {
		list = j->next;
		j->done(j->arg, j->res, j->n);
		job_free(j);
	}
}

/*
 * batch_start - loop thread: submit a runner when jobs are pending and
 * fewer than BATCH_RUNNERS run.  -1 only when the work pool refused.
 */
static int
batch_start(void)
{
	struct dlv_batch *b;
	int		 need;

	pthread_mutex_lock(&pend_mtx);
	need = pend_head != NULL && pend_runners < BATCH_RUNNERS;
	if (need)
		pend_runners++;
	pthread_mutex_unlock(&pend_mtx);
	if (!need)
		return 0;
	if ((b = calloc(1, sizeof(*b))) != NULL &&
	    work_submit(batch_run, batch_done, b) == 0)
		return 0;
	free(b);
	pthread_mutex_lock(&pend_mtx);
	pend_runners--;
	pthread_mutex_unlock(&pend_mtx);
	return -1;
}

/* batch_done - loop thread: start the next batch, report this one */
static void
batch_done(void *arg)
{
	struct dlv_batch *b = arg;
	struct dlv_job	*j, *left;
	size_t		 k;

	pthread_mutex_lock(&pend_mtx);
	pend_runners--;
	pthread_mutex_unlock(&pend_mtx);
	if (batch_start() == -1) {
		/* no runner can be started (out of memory, pool stopped)
		 * and none may be running: defer what is pending */
		pthread_mutex_lock(&pend_mtx);
		left = NULL;
		if (pend_runners == 0) {
			left = pend_head;
			pend_head = pend_tail = NULL;
		}
		pthread_mutex_unlock(&pend_mtx);
		for (j = left; j != NULL; j = j->next)
			for (k = 0; k < j->n; k++)
				result(&j->res[k], RS_DEFERRED, 451, "4.3.0",
				    "local delivery unavailable (cannot "
				    "start a delivery batch)");
		jobs_report(left);
	}
	jobs_report(b->jobs);
	free(b);
}

int
dlv_local_start(const struct config *cfg, const struct qmsg *m,
    const char *body_path, const size_t *ridx, size_t n, dlv_done_fn done,
    void *arg)
{
	struct dlv_job	*j, **pp;
	size_t		 i;
	int		 found = 0;

	if (n == 0 || (j = calloc(1, sizeof(*j))) == NULL)
		return -1;
	memcpy(j->qid, m->qid, sizeof(j->qid));
	j->arrival = (long long)m->arrival;
	j->recovered = m->arrival < dlv_start_time;
	j->done = done;
	j->arg = arg;
	j->n = n;
	if ((j->sender = strdup(m->sender ? m->sender : "")) == NULL ||
	    (j->body_path = strdup(body_path)) == NULL ||
	    (j->host = host_sanitise(cfg->hostname)) == NULL ||
	    (j->addrs = calloc(n, sizeof(*j->addrs))) == NULL ||
	    (j->res = calloc(n, sizeof(*j->res))) == NULL ||
	    (j->st = calloc(n, sizeof(*j->st))) == NULL)
		goto fail;
	if (m->ntrace > 0) {
		if ((j->trace = calloc(m->ntrace, sizeof(*j->trace))) == NULL)
			goto fail;
		for (i = 0; i < m->ntrace; i++, j->ntrace++)
			if ((j->trace[i] = strdup(m->trace[i])) == NULL)
				goto fail;
	}
	for (i = 0; i < n; i++) {
		if (ridx[i] >= m->nrcpts ||
		    (j->addrs[i] = strdup(m->rcpts[ridx[i]].addr)) == NULL)
			goto fail;
		j->res[i].ridx = ridx[i];
	}

	pthread_mutex_lock(&pend_mtx);
	if (pend_tail != NULL)
		pend_tail->next = j;
	else
		pend_head = j;
	pend_tail = j;
	pthread_mutex_unlock(&pend_mtx);
	if (batch_start() == 0)
		return 0;

	/* no runner: take the job back unless a running batch has it */
	pthread_mutex_lock(&pend_mtx);
	for (pp = &pend_head; *pp != NULL; pp = &(*pp)->next)
		if (*pp == j) {
			*pp = j->next;
			found = 1;
			break;
		}
	if (found) {
		pend_tail = NULL;
		for (pp = &pend_head; *pp != NULL; pp = &(*pp)->next)
			pend_tail = *pp;
	}
	pthread_mutex_unlock(&pend_mtx);
	if (!found)
		return 0;	/* reported by the batch that took it */
fail:
	job_free(j);
	return -1;
}
