/*
 * delivery.h - delivery agents.  Issue 3: local Maildir delivery.
 * A delivery job copies everything it needs out of the qmsg before it
 * starts (workers never touch a qmsg); its completion runs in the event
 * loop thread and reports one result per recipient asked for.
 */
#ifndef WAYMARK_DELIVERY_H
#define WAYMARK_DELIVERY_H

#include <stddef.h>
#include "../queue/queue.h"

struct config;

struct dlv_result {
	size_t		 ridx;		/* index into m->rcpts */
	enum rcpt_status status;	/* RS_DELIVERED, RS_DEFERRED or RS_FAILED */
	int		 code;		/* SMTP-style code: 250, 450, 550 ... */
	char		 enh[16];	/* "2.0.0" */
	char		 text[512];	/* human reason, e.g. "delivered to maildir" */
	char		 remote[256];	/* remote MTA or "" for local */
};

/* dlv_done_fn - called once per job in the loop thread; res[] has n entries */
typedef void (*dlv_done_fn)(void *arg, const struct dlv_result *res, size_t n);

/*
 * dlv_init - before the privilege drop: create cfg->mailbox_root when
 * missing (owned by uid/gid unless they are -1) and keep a directory fd
 * on it; every later Maildir path is opened relative to that fd (openat,
 * mkdirat, renameat), so it works when the root's parents are not
 * searchable by the unprivileged user.  -1 with err set.
 */
int	dlv_init(const struct config *cfg, long uid, long gid, char *err,
	    size_t errlen);
/* dlv_reload - new configuration (mailbox_root changes need a restart) */
void	dlv_reload(const struct config *cfg);

/*
 * dlv_local_start - deliver recipients ridx[0..n-1] of m (all in
 * local_domains) to mailbox_root/<domain>/<local>/ (Maildir: tmp, fsync,
 * rename into new, fsync new).  File = "Return-Path: <sender>", the trace
 * fields newest first, then the body, LF line endings.  body_path is the
 * spool file.  Returns 0, or -1 if the job could not be queued (then done
 * is never called).
 */
int	dlv_local_start(const struct config *cfg, const struct qmsg *m,
	    const char *body_path, const size_t *ridx, size_t n,
	    dlv_done_fn done, void *arg);

#endif
