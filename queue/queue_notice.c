#include "config.h"
/*
 * queue_notice.c - queue the delivery status notifications (RFC 3461,
 * RFC 3464) of a delivery batch or of an accepted message.
 * Entry points: queue_notice_batch (apply_results, after the recipients
 *       of one job's results are updated and recorded, before the job is
 *       committed) and queue_notice_accepted (queue_main.c, after a
 *       message's accept commit).
 * Does: per batch ONE DSN per kind: failed (NOTIFY absent or with
 *       FAILURE), delayed (still deferred delay_warning after arrival,
 *       NOTIFY absent or with DELAY, once per recipient: dsn_delay_sent,
 *       recorded in the same job), delivered (final local delivery,
 *       NOTIFY SUCCESS), relayed (to a next hop without DSN, NOTIFY
 *       SUCCESS); after accept one "expanded" DSN for the RS_EXPANDED
 *       recipients with NOTIFY SUCCESS.
 *       RFC 2852 (DELIVERBY): with trace T a delivered / relayed DSN
 *       for each recipient whose NOTIFY is not NEVER; mode N relayed
 *       before its deadline to a hop without DELIVERBY: a relayed DSN
 *       likewise (4.1.4.2); at the deadline of mode N
 *       (queue_notice_deliverby, from the scheduler) one delayed DSN
 *       with Status 4.4.7 for the undelivered recipients whose NOTIFY
 *       is absent or has DELAY.  Each DSN is written by
 *       dlv_notice_write into a fresh spool file and is an ordinary
 *       message (sender "", the original sender as its one recipient,
 *       client "local", client name "waymark-dsn", one trace field)
 *       made durable by queue_accept; the event "dsn" (detail
 *       "kind=K qid=NEW rcpts=<a>,<b>") goes into the original's job.
 * Never: a DSN about a message from <>.  A DSN (client "local", name
 *       "waymark-dsn", or a notice of an older release: no name) whose
 *       recipient expires after queue_lifetime is reported to
 *       postmaster@<first local domain> as a failed DSN (client name
 *       "waymark-postmaster"); a permanent (5xx) failure of a DSN and
 *       any failure of a postmaster notice are only logged.
 */

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/cfg.h"
#include "common/intl.h"
#include "common/log.h"
#include "common/util.h"
#include "delivery/delivery.h"
#include "queue/queue_int.h"

#define DETAIL_RCPTS_MAX	4000	/* bytes of addresses in the event */

#define DSN_CLIENT_NAME		"waymark-dsn"
#define POSTMASTER_CLIENT_NAME	"waymark-postmaster"

static const char *const kind_name[] = {
	[DLV_DSN_FAILED] = "failed", [DLV_DSN_DELAYED] = "delayed",
	[DLV_DSN_DELIVERED] = "delivered", [DLV_DSN_RELAYED] = "relayed",
	[DLV_DSN_EXPANDED] = "expanded"
};

struct notice_ctx {
	char	old_qid[QID_SIZE];
	char	new_qid[QID_SIZE];
	size_t	nrcpts;
	int	kind;
	int	postmaster;
};

/* notice_done - the DSN's accept commit finished (loop thread) */
static void
notice_done(void *arg, int rc)
{
	struct notice_ctx	*ctx = arg;

	if (rc == 0)
		log_info("qid=%s dsn=%s%s for qid=%s rcpts=%zu", ctx->new_qid,
		    kind_name[ctx->kind], ctx->postmaster ? " (postmaster)" : "",
		    ctx->old_qid, ctx->nrcpts);
	else
		log_warnx("qid=%s dsn=%s for qid=%s rcpts=%zu could not be "
		    "queued: the notification is lost", ctx->new_qid,
		    kind_name[ctx->kind], ctx->old_qid, ctx->nrcpts);
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

/* event_detail - "kind=K qid=NEW rcpts=<a>,<b>" (escaped, bounded) */
static char *
event_detail(int kind, const char *to, const char *qid, const struct qmsg *m,
    const size_t *fidx, size_t nf)
{
	struct buf	b;
	char		addr[300];
	size_t		k;

	buf_init(&b, DETAIL_RCPTS_MAX + 512);
	if (buf_printf(&b, "kind=%s qid=%s ", kind_name[kind], qid) == -1 ||
	    (to != NULL && buf_printf(&b, "to=<%s> ", to) == -1) ||
	    buf_puts(&b, "rcpts=") == -1)
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
notice_msg(const char *to, const char *qid, const char *hostname,
    time_t now, long size, int postmaster)
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
	/* RFC 6531/6533: to a non-ASCII address the notice is a SMTPUTF8
	 * message (its To: field is UTF-8) */
	if (str_nonascii(to, strlen(to)))
		nm->intl = QM_SMTPUTF8 | QM_UTF8_HDR;
	if ((nm->sender = strdup("")) == NULL ||
	    (nm->client_addr = strdup("local")) == NULL ||
	    (nm->client_name = strdup(postmaster ? POSTMASTER_CLIENT_NAME :
	    DSN_CLIENT_NAME)) == NULL ||
	    (nm->helo = strdup(hostname)) == NULL ||
	    qmsg_add_rcpt(nm, to) == -1 ||
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

/* is_dsn - m is a DSN Waymark made (not a postmaster notice) */
static int
is_dsn(const struct qmsg *m)
{
	return m->sender != NULL && m->sender[0] == '\0' &&
	    m->client_addr != NULL && strcmp(m->client_addr, "local") == 0 &&
	    (m->client_name == NULL ||
	    strcmp(m->client_name, DSN_CLIENT_NAME) == 0);
}

/* wants - NOTIFY of r asks for bit (absent NOTIFY = FAILURE,DELAY) */
static int
wants(const struct qrcpt *r, unsigned bit)
{
	if (r->notify == 0)
		return bit == DSN_NOTIFY_FAILURE || bit == DSN_NOTIFY_DELAY;
	return (r->notify & bit) != 0;
}


/*
 * queue_dsn - queue one DSN of kind about recipients idx[0..n-1] of m to
 * to (NULL = m->sender); postmaster marks a postmaster notice; status
 * (NULL = each recipient's own) and note go to dlv_notice_write.  The
 * event goes into j.  -1 only when j could not take the event.
 */
static int
queue_dsn(struct qjob *j, struct qmsg *m, int kind, const size_t *idx,
    size_t n, const char *to, int postmaster, const char *status,
    const char *note)
{
	struct notice_ctx	*ctx = NULL;
	struct qmsg		*nm = NULL;
	struct dlv_dsn		 d;
	const char		*hostname = queue_hostname();
	char			 qid[QID_SIZE], path[64], *detail = NULL;
	time_t			 now = time(NULL);
	long			 size;
	int			 fd = -1, rc = 0;

	memset(&d, 0, sizeof(d));
	d.kind = kind;
	d.idx = idx;
	d.n = n;
	d.to = to;
	d.hostname = hostname;
	d.now = now;
	d.return_max = qs.cfg != NULL ? qs.cfg->max_dsn_return_size :
	    1024 * 1024;
	d.status = status;
	d.note = note;
	if (kind == DLV_DSN_DELAYED && qs.cfg != NULL)
		d.retry_until = (m->expire_base ? m->expire_base : m->arrival) +
		    (time_t)qs.cfg->queue_lifetime;
	if ((ctx = calloc(1, sizeof(*ctx))) == NULL ||
	    queue_body_create(qid, &fd) == -1)
		goto lost;
	snprintf(path, sizeof(path), "body/%s", m->qid);
	if ((size = dlv_notice_write(fd, m, path, &d)) < 0) {
		log_warn("qid=%s cannot write the %s DSN %s", m->qid,
		    kind_name[kind], qid);
		goto lost;
	}
	if ((nm = notice_msg(to != NULL ? to : m->sender, qid, hostname, now,
	    size, postmaster)) == NULL ||
	    (detail = event_detail(kind, postmaster ? to : NULL, qid, m, idx,
	    n)) == NULL)
		goto lost;
	/* RFC 8689 5: a notice about a REQUIRETLS message goes out with
	 * REQUIRETLS too (its content: headers only, dlv_notice.c) */
	nm->requiretls = m->requiretls;
	if (qjob_add_event(j, m, "dsn", detail) == -1) {
		/* the job is unusable: the caller drops the whole batch */
		rc = -1;
		goto lost;
	}
	snprintf(ctx->old_qid, sizeof(ctx->old_qid), "%s", m->qid);
	snprintf(ctx->new_qid, sizeof(ctx->new_qid), "%s", qid);
	ctx->nrcpts = n;
	ctx->kind = kind;
	ctx->postmaster = postmaster;
	queue_accept(nm, fd, notice_done, ctx);	/* owns nm, fd, ctx */
	goto done;
lost:
	if (rc == 0)
		log_warnx("qid=%s %s DSN for %zu recipient(s) not queued (out "
		    "of memory or spool error)", m->qid, kind_name[kind], n);
	if (fd != -1)
		queue_body_discard(qid, fd);
	qmsg_free(nm);
	free(ctx);
done:
	free(detail);
	return rc;
}

int
queue_notice_rcpts(struct qjob *j, struct qmsg *m, int kind,
    const size_t *idx, size_t n)
{
	if (m->sender == NULL || m->sender[0] == '\0' || n == 0)
		return 0;	/* never a DSN about a message from <> */
	return queue_dsn(j, m, kind, idx, n, NULL, 0, NULL, NULL);
}

/* add_idx - append ridx to list unless there */
static void
add_idx(size_t *list, size_t *n, size_t ridx)
{
	size_t	i;

	for (i = 0; i < *n && list[i] != ridx; i++)
		;
	if (i == *n)
		list[(*n)++] = ridx;
}

/*
 * postmaster_notice - recipients of the DSN m failed: those that expired
 * after queue_lifetime are reported to postmaster; a permanent failure
 * (often a forged sender) is only logged
 */
static int
postmaster_notice(struct qjob *j, struct qmsg *m,
    const struct dlv_result *res, size_t n)
{
	char	 to[300], esc[300];
	size_t	*idx, ni = 0, k;
	int	 rc = 0;

	if ((idx = calloc(n, sizeof(*idx))) == NULL)
		return 0;
	for (k = 0; k < n; k++) {
		if (res[k].ridx >= m->nrcpts ||
		    m->rcpts[res[k].ridx].status != RS_FAILED)
			continue;
		if (res[k].status == RS_FAILED) {	/* not an expiry */
			log_escape(esc, sizeof(esc), m->rcpts[res[k].ridx].addr,
			    strlen(m->rcpts[res[k].ridx].addr));
			log_warnx("qid=%s undeliverable DSN to <%s>: failed "
			    "permanently (only logged)", m->qid, esc);
		} else
			add_idx(idx, &ni, res[k].ridx);
	}
	if (ni > 0) {
		snprintf(to, sizeof(to), "postmaster@%s",
		    qs.cfg != NULL && qs.cfg->nlocal_domains > 0 ?
		    qs.cfg->local_domains[0] : queue_hostname());
		log_warnx("qid=%s undeliverable DSN: reporting to <%s>",
		    m->qid, to);
		rc = queue_dsn(j, m, DLV_DSN_FAILED, idx, ni, to, 1, NULL,
		    NULL);
	}
	free(idx);
	return rc;
}

/* ---- RFC 2852 DELIVERBY ---- */

static const char by_trace_note[] = "This notice was requested by the "
    "trace flag of the message's DELIVERBY (RFC 2852) request.";
static const char by_nohop_note[] = "The next mail system does not "
    "support DELIVERBY (RFC 2852): the requested delivery time (see "
    "Deliver-By-Date) is no longer enforced; you may still be notified "
    "of delays and failures.";
static const char by_delay_note[] = "The delivery time requested with "
    "DELIVERBY (RFC 2852, see Deliver-By-Date) has passed.";

/* by_trace - T: a delivered / relayed DSN unless NOTIFY=NEVER (note) */
static const char *
by_trace(const struct qmsg *m, const struct qrcpt *r)
{
	if (m->deliver_by == 0 || !(m->by_flags & BY_TRACE) ||
	    (r->notify & DSN_NOTIFY_NEVER))
		return NULL;
	return by_trace_note;
}

/*
 * by_relayed - RFC 2852 4.1.4: the note of the "relayed" DSN r needs,
 * or NULL: mode N relayed before its deadline to a hop without
 * DELIVERBY (MUST, 4.1.4.2), or trace T (SHOULD); never for NOTIFY=NEVER
 */
static const char *
by_relayed(const struct qmsg *m, const struct qrcpt *r,
    const struct dlv_result *res, time_t now)
{
	if (m->deliver_by == 0 || (r->notify & DSN_NOTIFY_NEVER))
		return NULL;
	if ((m->by_flags & BY_NOTIFY) && res->hop_by == 0 &&
	    now < m->deliver_by)
		return by_nohop_note;
	return by_trace(m, r);
}

int
queue_notice_deliverby(struct qjob *j, struct qmsg *m, const size_t *idx,
    size_t n)
{
	size_t	*list, nl = 0, k;
	int	 rc;

	if (m->sender == NULL || m->sender[0] == '\0' || n == 0)
		return 0;
	if ((list = calloc(n, sizeof(*list))) == NULL) {
		log_warnx("qid=%s DELIVERBY delayed DSN not queued: out of "
		    "memory", m->qid);
		return 0;
	}
	for (k = 0; k < n; k++)
		if (idx[k] < m->nrcpts && wants(&m->rcpts[idx[k]],
		    DSN_NOTIFY_DELAY))
			list[nl++] = idx[k];
	rc = nl == 0 ? 0 : queue_dsn(j, m, DLV_DSN_DELAYED, list, nl, NULL, 0,
	    "4.4.7", by_delay_note);
	free(list);
	return rc;
}

int
queue_notice_batch(struct qjob *j, struct qmsg *m,
    const struct dlv_result *res, size_t n)
{
	struct qrcpt	*r;
	size_t		*lists[DLV_DSN_EXPANDED + 1] = { NULL }, nl[DLV_DSN_EXPANDED + 1];
	size_t		 k;
	time_t		 now = time(NULL);
	const char	*note, *by_note = NULL;
	int		 kind, rc = 0;

	if (m->sender == NULL || n == 0)
		return 0;
	if (m->sender[0] == '\0') {
		/* never a DSN about a DSN; a lost DSN goes to postmaster */
		return is_dsn(m) ? postmaster_notice(j, m, res, n) : 0;
	}
	for (kind = 0; kind <= DLV_DSN_EXPANDED; kind++) {
		nl[kind] = 0;
		if ((lists[kind] = calloc(n, sizeof(size_t))) == NULL) {
			log_warnx("qid=%s DSNs not queued: out of memory",
			    m->qid);
			goto done;
		}
	}
	for (k = 0; k < n; k++) {
		if (res[k].ridx >= m->nrcpts)
			continue;
		r = &m->rcpts[res[k].ridx];
		kind = -1;
		switch (r->status) {
		case RS_FAILED:
			if (wants(r, DSN_NOTIFY_FAILURE))
				kind = DLV_DSN_FAILED;
			break;
		case RS_DEFERRED:
			if (qs.cfg != NULL && qs.cfg->delay_warning > 0 &&
			    !r->dsn_delay_sent && wants(r, DSN_NOTIFY_DELAY) &&
			    now >= (m->expire_base ? m->expire_base : m->arrival) +
			    (time_t)qs.cfg->delay_warning)
				kind = DLV_DSN_DELAYED;
			break;
		case RS_DELIVERED:
			if (wants(r, DSN_NOTIFY_SUCCESS) ||
			    by_trace(m, r) != NULL)
				kind = DLV_DSN_DELIVERED;
			break;
		case RS_RELAYED:
		case RS_TRANSFERRED:	/* relayed, with MTRK */
			/* a DSN-capable next hop reports for itself */
			if (wants(r, DSN_NOTIFY_SUCCESS) && r->hop_dsn != 1)
				kind = DLV_DSN_RELAYED;
			/* RFC 2852 4.1.4: trace, or mode N past a hop
			 * without DELIVERBY */
			if ((note = by_relayed(m, r, &res[k], now)) != NULL) {
				kind = DLV_DSN_RELAYED;
				if (by_note == NULL || note != by_trace_note)
					by_note = note;
			}
			break;
		default:
			break;
		}
		if (kind >= 0)
			add_idx(lists[kind], &nl[kind], res[k].ridx);
	}
	for (kind = 0; kind <= DLV_DSN_EXPANDED && rc == 0; kind++) {
		if (nl[kind] == 0)
			continue;
		if (kind == DLV_DSN_DELAYED)
			for (k = 0; k < nl[kind] && rc == 0; k++) {
				/* once: recorded in the same commit */
				m->rcpts[lists[kind][k]].dsn_delay_sent = 1;
				rc = qjob_add_rcpt(j, m, lists[kind][k]);
			}
		if (rc == 0)
			rc = queue_dsn(j, m, kind, lists[kind], nl[kind], NULL,
			    0, NULL, kind == DLV_DSN_RELAYED ? by_note : NULL);
	}
done:
	for (kind = 0; kind <= DLV_DSN_EXPANDED; kind++)
		free(lists[kind]);
	return rc;
}

/* accepted_done - the commit of the "dsn" event of an accepted message */
static void
accepted_done(void *arg, int rc)
{
	char	*qid = arg;

	if (rc != 0)
		log_warnx("qid=%s the event of its expanded DSN is lost", qid);
	free(qid);
}

void
queue_notice_accepted(struct qmsg *m)
{
	struct qjob	*j;
	size_t		*idx, ni = 0, k;
	char		*qid;

	if (m->sender == NULL || m->sender[0] == '\0' || m->nrcpts == 0)
		return;
	for (k = 0; k < m->nrcpts; k++)
		if (m->rcpts[k].status == RS_EXPANDED &&
		    wants(&m->rcpts[k], DSN_NOTIFY_SUCCESS))
			ni++;
	if (ni == 0)
		return;
	if ((idx = calloc(ni, sizeof(*idx))) == NULL ||
	    (j = qjob_new()) == NULL) {
		free(idx);
		log_warnx("qid=%s expanded DSN not queued: out of memory",
		    m->qid);
		return;
	}
	ni = 0;
	for (k = 0; k < m->nrcpts; k++)
		if (m->rcpts[k].status == RS_EXPANDED &&
		    wants(&m->rcpts[k], DSN_NOTIFY_SUCCESS))
			idx[ni++] = k;
	if (queue_dsn(j, m, DLV_DSN_EXPANDED, idx, ni, NULL, 0, NULL,
	    NULL) == -1 ||
	    (qid = strdup(m->qid)) == NULL) {
		log_warnx("qid=%s the event of its expanded DSN is lost",
		    m->qid);
		qjob_free(j);
	} else
		qdb_commit(j, accepted_done, qid);
	free(idx);
}
