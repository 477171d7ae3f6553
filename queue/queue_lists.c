#include "config.h"
/*
 * queue_lists.c - mailing lists in the queue: the expansion of a post
 * to the list's members, and the moderators' notices.
 * Entry points: queue_lists_dispatch (the scheduler, before it starts
 *       the delivery jobs of a message that is not held) and
 *       queue_lists_accepted (after a message's accept commit).
 * Expansion: a due recipient that is a list of the lists file is
 *       "delivered" by queueing a new message (RFC 3461 5.2.7.1): the
 *       same content, a copy of the post's trace fields (so an approved
 *       post carries its reception field with "state moderation" and its
 *       release field), the envelope sender <LIST-owner@DOMAIN>, the
 *       members as recipients (through the aliases file) with no ENVID,
 *       NOTIFY, RET, ORCPT or MTRK derived from the post.  The new
 *       message's records, its synced body file and the list
 *       recipient's final status (expanded, 250 2.0.0) are ONE commit:
 *       a crash never loses the expansion nor makes it twice.  NOTIFY=
 *       SUCCESS gets a "delivered" DSN (delivery to a list is final
 *       delivery, RFC 3461 5.2.7.1).  A member post and an approved
 *       post (waymark release: the post leaves moderation, its list
 *       recipient is due) take the same path; the moderation itself is
 *       decided at RCPT (smtpd_lists.c).
 * Notices: a message that entered moderation at reception (actor
 *       "lists FILE:LINE") gets one notice to the list's moderators,
 *       from <LIST-owner@DOMAIN>, naming the queue id, the sender and
 *       the subject and how to approve or reject; the event "notice"
 *       goes to the post.  Like a DSN it is its own message, queued
 *       after the post's commit (a crash in between loses the notice,
 *       not the post: `waymark queue --state moderation` lists it).
 * Not here: parsing the lists file (common/lists.c).
 */

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "common/aliases.h"
#include "common/buf.h"
#include "common/cfg.h"
#include "common/lists.h"
#include "common/log.h"
#include "common/util.h"
#include "delivery/delivery.h"
#include "queue/queue_int.h"

#define LIST_CLIENT_NAME	"waymark-list"
#define EXPAND_RETRY		60	/* seconds, when an expansion failed */
#define SUBJECT_MAX		200	/* octets of the subject quoted */
#define HEADER_SCAN		65536	/* octets of the post read for it */
#define NOTICE_MAX		(256 * 1024)

struct expand_ctx {
	struct qmsg	*m;		/* the post */
	struct qmsg	*nm;		/* its copy to the members */
	size_t		 ridx;		/* the list recipient of the post */
	int		 fd;
	char		 list[300];
};

/* copy_body - the content of body/QID into fd; 0 or -1 */
static int
copy_body(const char *qid, int fd)
{
	char	path[64], chunk[65536];
	ssize_t	r;
	int	in;

	snprintf(path, sizeof(path), "body/%s", qid);
	if ((in = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return -1;
	while ((r = read(in, chunk, sizeof(chunk))) != 0) {
		if (r == -1) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (write_full(fd, chunk, (size_t)r) == -1) {
			r = -1;
			break;
		}
	}
	close(in);
	return r == 0 ? 0 : -1;
}

/* member_is_local - aliases_expand's test for a local domain */
static int
member_is_local(const char *domain, void *arg)
{
	(void)arg;
	return cfg_is_local_domain(qs.cfg, domain);
}

/* add_once - addr as a recipient of nm unless there (check: look first) */
static int
add_once(struct qmsg *nm, const char *addr, int check)
{
	size_t	i;

	if (check)
		for (i = 0; i < nm->nrcpts; i++)
			if (strcasecmp(nm->rcpts[i].addr, addr) == 0)
				return 0;
	if (nm->nrcpts >= REC_RCPT_MAX)
		return 0;		/* cannot be recorded; lists.c caps lists */
	return qmsg_add_rcpt(nm, addr);
}

/* add_members - the members of e, through the aliases file; 0 or -1 */
static int
add_members(struct qmsg *nm, const struct list_entry *e)
{
	enum alias_result	 ar;
	char			**out;
	size_t			 nout, i, k;
	int			 aliased = 0;

	for (i = 0; i < e->nmembers; i++) {
		ar = aliases_expand(qs.cfg->alias_table, e->members[i],
		    member_is_local, NULL, REC_RCPT_MAX, &out, &nout);
		if (ar == ALIAS_ERR_NOMEM)
			return -1;
		if (ar != ALIAS_EXPANDED) {	/* not an alias (or a bad one) */
			if (add_once(nm, e->members[i], aliased) == -1)
				return -1;
			continue;
		}
		aliased = 1;
		for (k = 0; k < nout; k++)
			if (add_once(nm, out[k], 1) == -1) {
				aliases_strv_free(out, nout);
				return -1;
			}
		aliases_strv_free(out, nout);
	}
	return 0;
}

/* expand_defer - the expansion of recipient i of m failed: retry later */
static void
expand_defer(struct qmsg *m, size_t i, time_t now)
{
	struct qpriv	*p = qmsg_priv(m);
	struct qrcpt	*r = &m->rcpts[i];

	r->status = RS_DEFERRED;
	r->next_attempt = now + EXPAND_RETRY;
	if (p != NULL && p->finishing && !p->finish_ok) {
		p->finishing = 0;	/* the finishing commit was ours */
		m->done_time = 0;
	}
	log_warnx("qid=%s list=<%s> cannot be expanded now (out of memory "
	    "or spool error); retrying in %ds", m->qid, r->addr,
	    EXPAND_RETRY);
}

/* expand_done - the expansion's commit finished (loop thread) */
static void
expand_done(void *arg, int rc)
{
	struct expand_ctx	*x = arg;
	struct qmsg		*m = x->m, *nm = x->nm;

	close(x->fd);
	if (rc == 0) {
		log_info("qid=%s list=<%s> status=expanded copy=%s "
		    "sender=<%s> nrcpt=%zu", m->qid, x->list, nm->qid,
		    nm->sender, nm->nrcpts);
		if (qs.stopping || qmem_insert(nm) == -1)
			qmsg_free(nm);	/* durable: loaded at the next start */
		else
			sched_update(nm);
	} else {
		queue_body_discard(nm->qid, -1);
		qmsg_free(nm);
		expand_defer(m, x->ridx, time(NULL));
		sched_update(m);
	}
	free(x);
	sched_status_done(m, rc);	/* may free m (a finished post) */
	sched_kick();
}

/* copy_msg - the copy of post m to the members of e (body in fd) */
static struct qmsg *
copy_msg(const struct qmsg *m, const struct list_entry *e, time_t now)
{
	struct qmsg	*nm;
	size_t		 k;

	if ((nm = qmsg_new()) == NULL)
		return NULL;
	nm->arrival = now;
	nm->state = MS_NORMAL;
	nm->state_since = now;
	nm->size = m->size;
	nm->body_8bit = m->body_8bit;
	nm->intl = m->intl;
	nm->body_binary = m->body_binary;
	/* RFC 8689 6: a list's copies carry the REQUIRETLS tag (or the
	 * TLS-Required: No request, which is in the copied header anyway) */
	nm->requiretls = m->requiretls;
	nm->tls_optional = m->tls_optional;
	if ((nm->sender = strdup(e->owner)) == NULL ||
	    (nm->client_addr = strdup("local")) == NULL ||
	    (nm->client_name = strdup(LIST_CLIENT_NAME)) == NULL ||
	    (nm->helo = strdup(queue_hostname())) == NULL ||
	    (m->message_id != NULL &&
	    (nm->message_id = strdup(m->message_id)) == NULL) ||
	    add_members(nm, e) == -1 || nm->nrcpts == 0)
		goto fail;
	for (k = 0; k < m->ntrace; k++)
		if (qmsg_add_trace(nm, m->trace[k]) == -1)
			goto fail;
	for (k = 0; k < nm->nrcpts; k++) {
		nm->rcpts[k].status = RS_QUEUED;
		nm->rcpts[k].next_attempt = now;
		nm->rcpts[k].hop_dsn = nm->rcpts[k].hop_mtrk = -1;
	}
	return nm;
fail:
	qmsg_free(nm);
	return NULL;
}

/*
 * expand_one - recipient i of m is list e and due: queue the copy to the
 * members and make i final (expanded) in the same commit.
 */
static void
expand_one(struct qmsg *m, size_t i, const struct list_entry *e, time_t now)
{
	struct expand_ctx	*x = NULL;
	struct qmsg		*nm = NULL;
	struct qjob		*j = NULL;
	struct qrcpt		*r = &m->rcpts[i];
	char			 text[512], addr[300], *detail = NULL;
	int			 fd = -1, n;

	if ((x = calloc(1, sizeof(*x))) == NULL ||
	    (nm = copy_msg(m, e, now)) == NULL ||
	    queue_body_create(nm->qid, &fd) == -1)
		goto defer;
	if (copy_body(m->qid, fd) == -1) {
		log_warn("qid=%s cannot copy the body for list <%s>", m->qid,
		    e->addr);
		goto defer;
	}
	if ((j = qjob_accept(nm)) == NULL)
		goto defer;
	qjob_body(j, fd);

	n = snprintf(text, sizeof(text), "expanded to %zu list member(s) as "
	    "%s, envelope sender <%s>", nm->nrcpts, nm->qid, e->owner);
	if (n < 0 || (size_t)n >= sizeof(text))
		goto defer;
	r->status = RS_EXPANDED;
	r->next_attempt = 0;
	r->attempts++;
	r->last_attempt = now;
	r->last_code = 250;
	snprintf(r->last_enh, sizeof(r->last_enh), "2.0.0");
	free(r->last_text);
	free(r->remote_mta);
	r->remote_mta = NULL;
	if ((r->last_text = strdup(text)) == NULL)
		goto undo;
	log_escape(addr, sizeof(addr), r->addr, strlen(r->addr));
	if (asprintf(&detail, "rcpt=<%s> status=expanded code=250 "
	    "enhanced=2.0.0 remote=list text=\"%s\" list=\"%s:%u\"", addr,
	    text, qs.cfg->list_table->path, e->lineno) < 0) {
		detail = NULL;
		goto undo;
	}
	if (qjob_add_rcpt(j, m, i) == -1 ||
	    qjob_add_event(j, m, "expanded", detail) == -1)
		goto undo;
	/* RFC 3461 5.2.7.1: delivery to the list is final delivery */
	if ((r->notify & DSN_NOTIFY_SUCCESS) &&
	    queue_notice_rcpts(j, m, DLV_DSN_DELIVERED, &i, 1) == -1)
		goto undo;
	if (qmsg_due(m, 0) == 0) {
		if (sched_finish(j, m, now) == -1)
			goto undo;
	} else if (qjob_add_sched(j, m) == -1)
		goto undo;
	free(detail);
	x->m = m;
	x->nm = nm;
	x->ridx = i;
	x->fd = fd;
	snprintf(x->list, sizeof(x->list), "%s", addr);
	m->inflight++;
	qdb_commit(j, expand_done, x);	/* flushed: it accepts a message */
	return;
undo:
	expand_defer(m, i, now);
	goto out;
defer:
	r->next_attempt = now + EXPAND_RETRY;
	log_warnx("qid=%s list=<%s> cannot be expanded now (out of memory "
	    "or spool error); retrying in %ds", m->qid, e->addr, EXPAND_RETRY);
out:
	free(detail);
	qjob_free(j);
	if (fd != -1)
		queue_body_discard(nm->qid, fd);
	qmsg_free(nm);
	free(x);
}

void
queue_lists_dispatch(struct qmsg *m, time_t now)
{
	const struct list_entry	*e;
	struct qrcpt		*r;
	size_t			 i;

	if (qs.cfg == NULL || qs.cfg->list_table == NULL)
		return;
	for (i = 0; i < m->nrcpts; i++) {
		r = &m->rcpts[i];
		if (rcpt_status_final(r->status) || r->busy ||
		    r->next_attempt > now || !sched_rcpt_is_local(r->addr) ||
		    (e = lists_lookup(qs.cfg->list_table, r->addr)) == NULL)
			continue;
		expand_one(m, i, e, now);
	}
}

/* ---- the moderators' notice ---- */

/* printable - s (n octets) as printable ASCII into b ('?' for others) */
static int
printable(struct buf *b, const char *s, size_t n)
{
	size_t	i;
	char	c;

	for (i = 0; i < n; i++) {
		c = s[i];
		if ((unsigned char)c < 0x20 || (unsigned char)c > 0x7e)
			c = (s[i] == '\t') ? ' ' : '?';
		if (buf_append(b, &c, 1) == -1)
			return -1;
	}
	return 0;
}

/* post_subject - the Subject of body/QID, unfolded, printable ("" if none) */
static void
post_subject(const char *qid, char *out, size_t outlen)
{
	char		 path[64], *hdr, *p, *end, *line, *eol;
	struct buf	 b;
	ssize_t		 r;
	size_t		 got = 0, len;
	int		 fd, in = 0;

	out[0] = '\0';
	snprintf(path, sizeof(path), "body/%s", qid);
	if ((hdr = malloc(HEADER_SCAN + 1)) == NULL)
		return;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		free(hdr);
		return;
	}
	while (got < HEADER_SCAN && ((r = read(fd, hdr + got,
	    HEADER_SCAN - got)) > 0 || (r == -1 && errno == EINTR)))
		if (r > 0)
			got += (size_t)r;
	close(fd);
	hdr[got] = '\0';
	buf_init(&b, SUBJECT_MAX);
	for (p = hdr, end = hdr + got; p < end; p = eol + 1) {
		line = p;
		if ((eol = memchr(p, '\n', (size_t)(end - p))) == NULL)
			eol = end;
		len = (size_t)(eol - line);
		if (len > 0 && line[len - 1] == '\r')
			len--;
		if (len == 0)
			break;			/* end of the header section */
		if (in && (line[0] == ' ' || line[0] == '\t')) {
			(void)printable(&b, line, len);
			continue;
		}
		if (in)
			break;
		if (len >= 8 && strncasecmp(line, "Subject:", 8) == 0) {
			in = 1;
			(void)printable(&b, line + 8, len - 8);
		}
	}
	free(hdr);
	if (b.data != NULL) {
		for (p = b.data; *p == ' '; p++)
			;
		snprintf(out, outlen, "%s", p);
		len = strlen(out);
		while (len > 0 && out[len - 1] == ' ')
			out[--len] = '\0';
	}
	buf_free(&b);
}

/* notice_text - the RFC 5322 notice about post m of list e into b (CRLF) */
static int
notice_text(struct buf *b, const struct qmsg *m, const struct list_entry *e,
    const char *nqid, time_t now)
{
	char	 date[64], arrived[64], subject[SUBJECT_MAX + 1];
	struct buf sb;
	char	*sender = NULL;
	size_t	 k;
	int	 rc = -1;

	post_subject(m->qid, subject, sizeof(subject));
	buf_init(&sb, 600);
	if (printable(&sb, m->sender, strlen(m->sender)) == -1 ||
	    (sender = buf_steal(&sb)) == NULL ||
	    rfc5322_date(now, date, sizeof(date)) == -1 ||
	    rfc5322_date(m->arrival, arrived, sizeof(arrived)) == -1)
		goto out;
	if (buf_printf(b, "From: Moderation of %s <%s>\r\n", e->addr,
	    e->owner) == -1 || buf_puts(b, "To: ") == -1)
		goto out;
	for (k = 0; k < e->nmoderators; k++)
		if (buf_printf(b, "%s<%s>", k ? ",\r\n\t" : "",
		    e->moderators[k]) == -1)
			goto out;
	if (buf_printf(b, "\r\nSubject: Moderation: %s from <%s> (%s): %s\r\n",
	    e->addr, sender, m->qid, subject[0] ? subject : "(no subject)") == -1 ||
	    buf_printf(b, "Date: %s\r\nMessage-ID: <%s.moderation@%s>\r\n",
	    date, nqid, queue_hostname()) == -1 ||
	    buf_puts(b, "Auto-Submitted: auto-generated\r\nMIME-Version: 1.0\r\n"
	    "Content-Type: text/plain; charset=us-ascii\r\n"
	    "Content-Transfer-Encoding: 7bit\r\n\r\n") == -1 ||
	    buf_printf(b, "A message to the list <%s> is held for moderation:\r\n"
	    "its sender is not a member of the list.\r\n\r\n", e->addr) == -1 ||
	    buf_printf(b, "  Queue id: %s\r\n  Sender:   <%s>\r\n"
	    "  Subject:  %s\r\n  Arrived:  %s\r\n\r\n", m->qid, sender,
	    subject[0] ? subject : "(no subject)", arrived) == -1 ||
	    buf_printf(b, "To approve it (it goes to the list's %zu member(s) "
	    "from <%s>):\r\n\r\n    waymark release %s\r\n\r\n", e->nmembers,
	    e->owner, m->qid) == -1 ||
	    buf_printf(b, "To reject it (its sender gets a failure notice):"
	    "\r\n\r\n    waymark delete %s --bounce\r\n\r\n", m->qid) == -1 ||
	    buf_printf(b, "To read it first:\r\n\r\n    waymark show %s "
	    "--message\r\n", m->qid) == -1)
		goto out;
	rc = 0;
out:
	free(sender);
	buf_free(&sb);
	return rc;
}

struct notice_ctx {
	char	post[QID_SIZE];
	char	qid[QID_SIZE];
	size_t	nrcpts;
};

/* notice_done - the notice's accept commit finished */
static void
notice_done(void *arg, int rc)
{
	struct notice_ctx	*ctx = arg;

	if (rc == 0)
		log_info("qid=%s moderation notice for qid=%s rcpts=%zu",
		    ctx->qid, ctx->post, ctx->nrcpts);
	else
		log_warnx("qid=%s moderation notice for qid=%s could not be "
		    "queued: the notice is lost", ctx->qid, ctx->post);
	free(ctx);
}

/* event_done - the commit of the post's "notice" event */
static void
event_done(void *arg, int rc)
{
	char	*qid = arg;

	if (rc != 0)
		log_warnx("qid=%s the event of its moderation notice is lost",
		    qid);
	free(qid);
}

/* notice - queue the notice about post m to the moderators of e */
static void
notice(struct qmsg *m, const struct list_entry *e)
{
	struct notice_ctx	*ctx = NULL;
	struct qmsg		*nm = NULL;
	struct qjob		*j = NULL;
	struct buf		 b, d;
	char			 date[64], field[512], *qid = NULL;
	time_t			 now = time(NULL);
	size_t			 k;
	int			 fd = -1, n;

	buf_init(&b, NOTICE_MAX);
	buf_init(&d, 4096);
	if ((ctx = calloc(1, sizeof(*ctx))) == NULL ||
	    (nm = qmsg_new()) == NULL ||
	    queue_body_create(nm->qid, &fd) == -1 ||
	    notice_text(&b, m, e, nm->qid, now) == -1 ||
	    write_full(fd, b.data, b.len) == -1)
		goto lost;
	nm->arrival = now;
	nm->size = b.len;
	nm->state = MS_NORMAL;
	if ((nm->sender = strdup(e->owner)) == NULL ||
	    (nm->client_addr = strdup("local")) == NULL ||
	    (nm->client_name = strdup(LIST_CLIENT_NAME)) == NULL ||
	    (nm->helo = strdup(queue_hostname())) == NULL ||
	    rfc5322_date(now, date, sizeof(date)) == -1)
		goto lost;
	for (k = 0; k < e->nmoderators; k++)
		if (qmsg_add_rcpt(nm, e->moderators[k]) == -1)
			goto lost;
	n = snprintf(field, sizeof(field), "Received: by %s (Waymark) id %s; "
	    "%s", queue_hostname(), nm->qid, date);
	if (n < 0 || (size_t)n >= sizeof(field) ||
	    qmsg_add_trace(nm, field) == -1)
		goto lost;
	/* the post's event "notice qid=NEW to=<m1>,<m2>" */
	if (buf_printf(&d, "moderation qid=%s to=", nm->qid) == -1)
		goto lost;
	for (k = 0; k < e->nmoderators; k++)
		if (buf_printf(&d, "%s<%s>", k ? "," : "",
		    e->moderators[k]) == -1) {
			(void)buf_puts(&d, "...");
			break;
		}
	if ((j = qjob_new()) == NULL || d.data == NULL ||
	    qjob_add_event(j, m, "notice", d.data) == -1 ||
	    (qid = strdup(m->qid)) == NULL)
		goto lost;
	snprintf(ctx->post, sizeof(ctx->post), "%s", m->qid);
	snprintf(ctx->qid, sizeof(ctx->qid), "%s", nm->qid);
	ctx->nrcpts = nm->nrcpts;
	queue_accept(nm, fd, notice_done, ctx);	/* owns nm, fd, ctx */
	qjob_lazy(j);
	qdb_commit(j, event_done, qid);
	buf_free(&b);
	buf_free(&d);
	return;
lost:
	log_warnx("qid=%s moderation notice to the moderators of <%s> not "
	    "queued (out of memory or spool error)", m->qid, e->addr);
	if (fd != -1)
		queue_body_discard(nm->qid, fd);
	qjob_free(j);
	qmsg_free(nm);
	free(ctx);
	free(qid);
	buf_free(&b);
	buf_free(&d);
}

void
queue_lists_accepted(struct qmsg *m)
{
	const struct list_entry	*e;
	size_t			 i;

	if (m->state != MS_MODERATION || m->state_actor == NULL ||
	    strncmp(m->state_actor, "lists ", 6) != 0 || qs.cfg == NULL ||
	    qs.cfg->list_table == NULL)
		return;
	for (i = 0; i < m->nrcpts; i++)
		if (!rcpt_status_final(m->rcpts[i].status) &&
		    (e = lists_lookup(qs.cfg->list_table, m->rcpts[i].addr)) !=
		    NULL && e->nmoderators > 0) {
			notice(m, e);
			return;
		}
}
