#include "config.h"
/*
 * dlv_maildir.c - local delivery into Maildir folders
 * (mailbox_root/<domain>/<local>/{tmp,new,cur}, both lower-cased).
 * Owns: the directory fd on mailbox_root (taken before the privilege
 *       drop; every path is relative to it: mkdirat, openat, renameat),
 *       the delivery job that runs in the work pool, the file layout.
 * File: "Return-Path: <sender>", the trace fields newest first, then the
 *       spool body with CRLF turned into LF, streamed in 64 KiB chunks.
 * Protocol: write tmp/<name>.P<pid>Q<n>, fsync it, link it into new/<name>
 *       (never replacing), unlink the tmp name, fsync new/.  The final name
 *       <arrival>.<qid>_<ridx>.<host> is fixed per queue id and recipient
 *       (queue ids are never reused), so a delivery repeated after a crash
 *       between the link and the status commit finds its file (in new/,
 *       or in cur/ for messages older than this daemon) and is not
 *       delivered twice.
 * Results: 250 2.0.0 delivered; 450 4.2.0 for folder/file errors (451
 *       4.3.0 for EIO & co, 452 4.3.1 ENOSPC, 452 4.2.2 EDQUOT), with
 *       the path relative to mailbox_root in the text; 550 5.1.3 for an
 *       address unsafe as a folder name (refused at RCPT normally).
 * Workers never touch the qmsg: the job copies what it needs.
 */

#include <errno.h>
#include <fcntl.h>
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
#include "common/log.h"
#include "common/syntax.h"
#include "common/util.h"
#include "common/work.h"
#include "delivery/delivery.h"

#define CHUNK		(64 * 1024)
#define REL_MAX		1024

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
	size_t			 n;
	dlv_done_fn		 done;
	void			*arg;
};

static int		 root_fd = -1;
static time_t		 dlv_start_time;
static atomic_ulong	 dlv_counter;

/* ---- set-up ---- */

int
dlv_init(const struct config *cfg, long uid, long gid, char *err,
    size_t errlen)
{
	struct stat	st;
	int		fd;

	if (cfg->mailbox_root == NULL || *cfg->mailbox_root == '\0') {
		snprintf(err, errlen, "mailbox_root is not set");
		return -1;
	}
	if (stat(cfg->mailbox_root, &st) == -1) {
		if (errno != ENOENT || mkdir_p(cfg->mailbox_root, 0700) == -1) {
			snprintf(err, errlen, "cannot create mailbox_root %s: %s",
			    cfg->mailbox_root, strerror(errno));
			return -1;
		}
		if ((uid != -1 || gid != -1) && chown(cfg->mailbox_root,
		    (uid_t)uid, (gid_t)gid) == -1) {
			snprintf(err, errlen, "cannot chown mailbox_root %s: %s",
			    cfg->mailbox_root, strerror(errno));
			return -1;
		}
	}
	if ((fd = open(cfg->mailbox_root, O_RDONLY | O_DIRECTORY | O_CLOEXEC))
	    == -1) {
		snprintf(err, errlen, "cannot open mailbox_root %s: %s",
		    cfg->mailbox_root, strerror(errno));
		return -1;
	}
	if (root_fd != -1)
		close(root_fd);
	root_fd = fd;
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

static int
write_all(int fd, const char *p, size_t n)
{
	ssize_t	w;

	while (n > 0) {
		if ((w = write(fd, p, n)) == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

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

/* name_unsafe - empty, '/' inside, leading '.' or control characters */
static int
name_unsafe(const char *s)
{
	if (*s == '\0' || *s == '.' || strchr(s, '/') != NULL)
		return 1;
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return 1;
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
				if (write_all(out, obuf, o) == -1)
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
	if (o > 0 && write_all(out, obuf, o) == -1)
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

/* deliver_one - one recipient; fills *r */
static void
deliver_one(struct dlv_job *j, size_t k, char *ibuf, char *obuf)
{
	struct dlv_result *r = &j->res[k];
	char		 local[SMTP_LOCAL_MAX + 3], domain[256];
	char		 dir[REL_MAX], rel[REL_MAX], tmp[REL_MAX], dst[REL_MAX];
	char		 name[512];
	const char	*addr = j->addrs[k], *at;
	size_t		 ll, i;
	int		 fd = -1, bfd = -1, dfd, rerr, n;
	static const char *const sub[] = { "tmp", "new", "cur" };

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
	str_lower(local);
	str_lower(domain);
	if (name_unsafe(local) || name_unsafe(domain)) {
		result(r, RS_FAILED, 550, "5.1.3", "address %s is unsafe as a "
		    "maildir name", addr);
		return;
	}

	/* the folder chain */
	if (snprintf(rel, sizeof(rel), "%s", domain) >= (int)sizeof(rel) ||
	    snprintf(dir, sizeof(dir), "%s/%s", domain, local) >=
	    (int)sizeof(dir))
		goto toolong;
	if (mkdir_one(rel) == -1) {
		temp_error(r, errno, "cannot create maildir", rel);
		return;
	}
	if (mkdir_one(dir) == -1) {
		temp_error(r, errno, "cannot create maildir", dir);
		return;
	}
	for (i = 0; i < 3; i++) {
		if (snprintf(rel, sizeof(rel), "%s/%s", dir, sub[i]) >=
		    (int)sizeof(rel))
			goto toolong;
		if (mkdir_one(rel) == -1) {
			temp_error(r, errno, "cannot create maildir", rel);
			return;
		}
	}

	if ((bfd = open(j->body_path, O_RDONLY | O_CLOEXEC)) == -1) {
		result(r, RS_DEFERRED, 451, "4.3.0", "cannot open the queued "
		    "message: %s", strerror(errno));
		return;
	}
	n = snprintf(name, sizeof(name), "%lld.%s_%zu.%s", j->arrival, j->qid,
	    r->ridx, j->host);
	if (n < 0 || (size_t)n >= sizeof(name) ||
	    snprintf(tmp, sizeof(tmp), "%s/tmp/%s.P%ldQ%lu", dir, name,
	    (long)getpid(), (unsigned long)atomic_fetch_add(&dlv_counter, 1) +
	    1) >= (int)sizeof(tmp) ||
	    snprintf(dst, sizeof(dst), "%s/new/%s", dir, name) >=
	    (int)sizeof(dst))
		goto toolong;
	if (j->recovered && (faccessat(root_fd, dst, F_OK, 0) == 0 ||
	    seen_in_cur(dir, name))) {
		result(r, RS_DELIVERED, 250, "2.0.0", "delivered to maildir "
		    "before a restart (duplicate suppressed)");
		goto out;
	}
	if ((fd = openat(root_fd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
	    0600)) == -1) {
		temp_error(r, errno, "cannot create", tmp);
		goto out;
	}

	/* Return-Path, trace fields newest first, body */
	n = snprintf(obuf, CHUNK, "Return-Path: <%s>\n", j->sender);
	if (n < 0 || n >= CHUNK || write_all(fd, obuf, (size_t)n) == -1)
		goto werr;
	for (i = j->ntrace; i > 0; i--)
		if (write_all(fd, j->trace[i - 1], strlen(j->trace[i - 1])) == -1 ||
		    write_all(fd, "\n", 1) == -1)
			goto werr;
	if (copy_body(bfd, fd, ibuf, obuf, &rerr) == -1) {
		if (rerr) {
			result(r, RS_DEFERRED, 451, "4.3.0", "cannot read the "
			    "queued message: %s", strerror(errno));
			goto unlink_tmp;
		}
		goto werr;
	}
	if (fsync(fd) == -1)
		goto werr;
	if (close(fd) == -1) {
		fd = -1;
		goto werr;
	}
	fd = -1;
	if (linkat(root_fd, tmp, root_fd, dst, 0) == -1) {
		if (errno == EEXIST) {
			/* delivered before a crash: keep the one copy */
			unlinkat(root_fd, tmp, 0);
			result(r, RS_DELIVERED, 250, "2.0.0", "delivered to "
			    "maildir before a restart (duplicate suppressed)");
			goto out;
		}
		temp_error(r, errno, "cannot link into", dst);
		goto unlink_tmp;
	}
	if (unlinkat(root_fd, tmp, 0) == -1)
		log_warn("maildir: cannot remove %s", tmp);
	if (snprintf(rel, sizeof(rel), "%s/new", dir) >= (int)sizeof(rel))
		goto toolong;
	if ((dfd = openat(root_fd, rel, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1 ||
	    fsync(dfd) == -1) {
		int e = errno;

		if (dfd != -1)
			close(dfd);
		/* the file is in new/ already: it may show up; defer anyway */
		temp_error(r, e, "cannot sync", rel);
		unlinkat(root_fd, dst, 0);
		goto out;
	}
	close(dfd);
	result(r, RS_DELIVERED, 250, "2.0.0", "delivered to maildir");
	goto out;

werr:
	temp_error(r, errno, "cannot write", tmp);
unlink_tmp:
	if (fd != -1)
		close(fd);
	fd = -1;
	unlinkat(root_fd, tmp, 0);
	goto out;
toolong:
	result(r, RS_FAILED, 550, "5.1.3", "maildir path too long for %s", addr);
out:
	if (fd != -1)
		close(fd);
	if (bfd != -1)
		close(bfd);
}

static void
job_run(void *arg)
{
	struct dlv_job	*j = arg;
	char		*ibuf, *obuf;
	size_t		 k;

	ibuf = malloc(CHUNK);
	obuf = malloc(CHUNK);
	for (k = 0; k < j->n; k++) {
		if (ibuf == NULL || obuf == NULL || root_fd == -1)
			result(&j->res[k], RS_DEFERRED, 451, "4.3.0",
			    "local delivery unavailable (out of memory or no "
			    "mailbox_root)");
		else
			deliver_one(j, k, ibuf, obuf);
	}
	free(ibuf);
	free(obuf);
}

static void
job_done(void *arg)
{
	struct dlv_job	*j = arg;

	j->done(j->arg, j->res, j->n);
	job_free(j);
}

int
dlv_local_start(const struct config *cfg, const struct qmsg *m,
    const char *body_path, const size_t *ridx, size_t n, dlv_done_fn done,
    void *arg)
{
	struct dlv_job	*j;
	size_t		 i;

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
	    (j->res = calloc(n, sizeof(*j->res))) == NULL)
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
	if (work_submit(job_run, job_done, j) == -1)
		goto fail;
	return 0;
fail:
	job_free(j);
	return -1;
}
