#include "config.h"
/*
 * queue_notice.c - queue the failure notice of a delivery batch
 * (RFC 5321 6.1: a notice for every failed recipient of a message with
 * a non-null reverse-path; RFC 3464 2: from <>, to the reverse-path).
 * Entry point: queue_notice_batch, called by apply_results once the
 *       recipients of one job's results are updated and before their
 *       commit job is handed over.
 * Does: ONE notice per batch listing every recipient of the batch that is
 *       now failed; its body comes from dlv_notice_write into a fresh
 *       spool file; the notice is an ordinary message (sender "", the
 *       original sender as its one recipient, client "local", one trace
 *       field "Received: by HOST (Waymark) id QID; DATE") made durable by
 *       queue_accept, whose commit is handed to the commit thread before
 *       the original's status commit; the event "notice" (detail
 *       "qid=NEW rcpts=<a>,<b>") goes into the original's commit job.
 * Never: a notice about a message from <> (no notice for a notice).
 */

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/cfg.h"
#include "common/log.h"
#include "common/util.h"
#include "delivery/delivery.h"
#include "queue/queue_int.h"

#define DETAIL_RCPTS_MAX	4000	/* bytes of addresses in the event */

struct notice_ctx {
	char	old_qid[QID_SIZE];
	char	new_qid[QID_SIZE];
	size_t	nrcpts;
};

/* notice_done - the notice's accept commit finished (loop thread) */
static void
notice_done(void *arg, int rc)
{
	struct notice_ctx	*ctx = arg;

	if (rc == 0)
		log_info("qid=%s notice for qid=%s rcpts=%zu", ctx->new_qid,
		    ctx->old_qid, ctx->nrcpts);
	else
		log_warnx("qid=%s notice for qid=%s rcpts=%zu could not be "
		    "queued: the failure notice is lost", ctx->new_qid,
		    ctx->old_qid, ctx->nrcpts);
	free(ctx);
}

/* has_8bit - the spool file path holds an octet >= 0x80 */
static int
has_8bit(const char *path)
{
	unsigned char	 chunk[8192];
	ssize_t		 r, i;
	int		 fd, found = 0;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return 1;	/* cannot tell: the safe answer */
	while (!found && ((r = read(fd, chunk, sizeof(chunk))) > 0 ||
	    (r == -1 && errno == EINTR)))
		for (i = 0; i < r; i++)
			if (chunk[i] >= 0x80) {
				found = 1;
				break;
			}
	close(fd);
	return found;
}

/* event_detail - "qid=NEW rcpts=<a>,<b>" (addresses escaped, bounded) */
static char *
event_detail(const char *qid, const struct qmsg *m, const size_t *fidx,
    size_t nf)
{
	struct buf	b;
	char		addr[300];
	size_t		k;

	buf_init(&b, DETAIL_RCPTS_MAX + 512);
	if (buf_printf(&b, "qid=%s rcpts=", qid) == -1)
		goto fail;
	for (k = 0; k < nf; k++) {
		log_escape(addr, sizeof(addr), m->rcpts[fidx[k]].addr,
		    strlen(m->rcpts[fidx[k]].addr));
		if (b.len + strlen(addr) + 3 > DETAIL_RCPTS_MAX) {
			if (buf_printf(&b, "%s...(%zu more)", k ? "," : "",
			    nf - k) == -1)
				goto fail;
			break;
		}
		if (buf_printf(&b, "%s<%s>", k ? "," : "", addr) == -1)
			goto fail;
	}
	return buf_steal(&b);
fail:
	buf_free(&b);
	return NULL;
}

/* notice_msg - the qmsg of the notice (body already written) */
static struct qmsg *
notice_msg(const struct qmsg *m, const char *qid, const char *hostname,
    time_t now, long size)
{
	struct qmsg	*nm;
	char		 path[64], date[64], field[512];
	int		 n;

	if ((nm = qmsg_new()) == NULL)
		return NULL;
	snprintf(nm->qid, sizeof(nm->qid), "%s", qid);
	nm->arrival = now;
	nm->size = (uint64_t)size;
	nm->state = MS_NORMAL;
	snprintf(path, sizeof(path), "body/%s", qid);
	nm->body_8bit = has_8bit(path);
	if ((nm->sender = strdup("")) == NULL ||
	    (nm->client_addr = strdup("local")) == NULL ||
	    (nm->helo = strdup(hostname)) == NULL ||
	    qmsg_add_rcpt(nm, m->sender) == -1 ||
	    rfc5322_date(now, date, sizeof(date)) == -1)
		goto fail;
	n = snprintf(field, sizeof(field), "Received: by %s (Waymark) id %s; %s",
	    hostname, qid, date);
	if (n < 0 || (size_t)n >= sizeof(field) ||
	    qmsg_add_trace(nm, field) == -1)
		goto fail;
	return nm;
fail:
	qmsg_free(nm);
	return NULL;
}

int
queue_notice_batch(struct qjob *j, struct qmsg *m,
    const struct dlv_result *res, size_t n)
{
	struct notice_ctx	*ctx = NULL;
	struct qmsg		*nm = NULL;
	const char		*hostname;
	char			 qid[QID_SIZE], path[64], *detail = NULL;
	size_t			*fidx = NULL, nf = 0, k, i;
	time_t			 now = time(NULL);
	long			 size;
	int			 fd = -1, rc = 0;

	if (m->sender == NULL || m->sender[0] == '\0' || n == 0)
		return 0;	/* never a notice about a notice */
	if ((fidx = calloc(n, sizeof(*fidx))) == NULL)
		goto lost;
	for (k = 0; k < n; k++) {
		if (res[k].ridx >= m->nrcpts ||
		    m->rcpts[res[k].ridx].status != RS_FAILED)
			continue;
		for (i = 0; i < nf && fidx[i] != res[k].ridx; i++)
			;
		if (i == nf)
			fidx[nf++] = res[k].ridx;
	}
	if (nf == 0)
		goto done;
	hostname = qs.cfg != NULL && qs.cfg->hostname != NULL &&
	    qs.cfg->hostname[0] != '\0' ? qs.cfg->hostname : "localhost";
	if ((ctx = calloc(1, sizeof(*ctx))) == NULL ||
	    queue_body_create(qid, &fd) == -1)
		goto lost;
	snprintf(path, sizeof(path), "body/%s", m->qid);
	if ((size = dlv_notice_write(fd, m, path, fidx, nf, hostname,
	    now)) < 0) {
		log_warn("qid=%s cannot write the failure notice %s", m->qid,
		    qid);
		goto lost;
	}
	if ((nm = notice_msg(m, qid, hostname, now, size)) == NULL ||
	    (detail = event_detail(qid, m, fidx, nf)) == NULL)
		goto lost;
	if (qjob_add_event(j, m, "notice", detail) == -1) {
		/* the job is unusable: the caller drops the whole batch */
		rc = -1;
		goto lost;
	}
	snprintf(ctx->old_qid, sizeof(ctx->old_qid), "%s", m->qid);
	snprintf(ctx->new_qid, sizeof(ctx->new_qid), "%s", qid);
	ctx->nrcpts = nf;
	queue_accept(nm, fd, notice_done, ctx);	/* owns nm, fd, ctx */
	goto done;
lost:
	if (rc == 0)
		log_warnx("qid=%s failure notice for %zu recipient(s) not "
		    "queued (out of memory or spool error)", m->qid, nf);
	if (fd != -1)
		queue_body_discard(qid, fd);
	qmsg_free(nm);
	free(ctx);
done:
	free(detail);
	free(fidx);
	return rc;
}
