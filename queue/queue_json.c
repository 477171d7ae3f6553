#include "config.h"
/*
 * queue_json.c - the operator's views of the queue as jansson objects
 * (/work/notes/CONTROL.md, DESIGN.md "Machine-readable output").
 * Entry points: queue_list_json (unfinished messages in memory, sorted
 * by queue id = arrival order), queue_page_json (one filtered page of
 * them, JSON built for the page only), queue_show_json (one message from
 * memory when it is unfinished, else from the DB history, plus its
 * events read from the DB in sequence order).  Never hand-rolled JSON.
 * Reading the DB here runs in the loop thread: acceptable for these
 * operator queries.
 */

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <jansson.h>

#include "queue/queue_int.h"

static json_t *
jstr(const char *s)
{
	return s != NULL ? json_string(s) : json_null();
}

static json_t *
jtime(time_t t)
{
	return t != 0 ? json_integer((json_int_t)t) : json_null();
}

/* jhop - next-hop capability: true / false / null (not relayed) */
static json_t *
jhop(int v)
{
	return v < 0 ? json_null() : json_boolean(v);
}

/* jnotify - RFC 3461 NOTIFY as ["SUCCESS", "FAILURE", ...], null if not given */
static json_t *
jnotify(unsigned bits)
{
	static const struct { unsigned bit; const char *kw; } kws[] = {
		{ DSN_NOTIFY_NEVER, "NEVER" }, { DSN_NOTIFY_SUCCESS, "SUCCESS" },
		{ DSN_NOTIFY_FAILURE, "FAILURE" }, { DSN_NOTIFY_DELAY, "DELAY" },
	};
	json_t	*a;
	size_t	 i;

	if (bits == 0)
		return json_null();
	if ((a = json_array()) == NULL)
		return NULL;
	for (i = 0; i < sizeof(kws) / sizeof(kws[0]); i++)
		if ((bits & kws[i].bit) &&
		    json_array_append_new(a, json_string(kws[i].kw)) == -1) {
			json_decref(a);
			return NULL;
		}
	return a;
}

static json_t *
rcpt_json(const struct qrcpt *r)
{
	json_t	*o, *reply;

	if (r->last_code != 0 || r->last_text != NULL) {
		reply = json_pack("{s:i, s:s, s:o}", "code", r->last_code,
		    "enhanced", r->last_enh, "text", jstr(r->last_text));
	} else
		reply = json_null();
	o = json_pack("{s:o, s:o, s:o, s:o, s:o, s:s, s:o, s:I, s:o, s:o, s:o}",
	    "address", jstr(r->addr),
	    "orcpt", jstr(r->orcpt),
	    "notify", jnotify(r->notify),
	    "next_hop_dsn", jhop(r->hop_dsn),
	    "next_hop_mtrk", jhop(r->hop_mtrk),
	    "status", rcpt_status_name(r->status),
	    "next_attempt", rcpt_status_final(r->status) ? json_null() :
	    jtime(r->next_attempt),
	    "attempts", (json_int_t)r->attempts,
	    "last_attempt", jtime(r->last_attempt),
	    "last_reply", reply,
	    "remote_mta", jstr(r->remote_mta));
	return o;
}

static json_t *
msg_json(const struct qmsg *m)
{
	json_t	*o, *rcpts;
	size_t	 i;

	if ((rcpts = json_array()) == NULL)
		return NULL;
	for (i = 0; i < m->nrcpts; i++)
		if (json_array_append_new(rcpts, rcpt_json(&m->rcpts[i])) == -1) {
			json_decref(rcpts);
			return NULL;
		}
	/* the MTRK certifier is an authenticator: never shown */
	o = json_pack("{s:s, s:I, s:I, s:s, s:o, s:o, s:b, s:o, s:s, s:o, "
	    "s:o, s:o, s:o, s:o}",
	    "queue_id", m->qid,
	    "arrival_time", (json_int_t)m->arrival,
	    "size", (json_int_t)m->size,
	    "sender", m->sender ? m->sender : "",
	    "envid", jstr(m->envid),
	    "ret", m->ret == DSN_RET_FULL ? json_string("FULL") :
	    m->ret == DSN_RET_HDRS ? json_string("HDRS") : json_null(),
	    "tracked", m->mtrk_certifier != NULL,
	    "tracking_expiry", jtime(m->mtrk_expiry),
	    "state", msg_state_name(m->state),
	    "state_value", jstr(m->state_value),
	    "recipients", rcpts,
	    "client_address", jstr(m->client_addr),
	    "helo", jstr(m->helo),
	    "message_id", jstr(m->message_id));
	/* handling state (DESIGN.md "JSON": state_since in Unix seconds,
	 * state_reason "" when none); FUTURERELEASE's release time */
	if (o != NULL && (json_object_set_new(o, "state_since",
	    json_integer((json_int_t)(m->state_since ? m->state_since :
	    m->arrival))) == -1 || json_object_set_new(o, "state_reason",
	    json_string(m->state_reason ? m->state_reason : "")) == -1 ||
	    json_object_set_new(o, "hold_until", jtime(m->hold_until)) == -1 ||
	    /* RFC 2852 DELIVERBY: the absolute deadline and the by-mode */
	    json_object_set_new(o, "deliver_by", jtime(m->deliver_by)) == -1 ||
	    json_object_set_new(o, "by_mode", m->deliver_by == 0 ? json_null() :
	    json_string((m->by_flags & BY_RETURN) ? "R" : "N")) == -1 ||
	    /* RFC 6531: the MAIL had SMTPUTF8 */
	    json_object_set_new(o, "smtputf8",
	    json_boolean((m->intl & QM_SMTPUTF8) != 0)) == -1 ||
	    /* RFC 8689: the REQUIRETLS tag, the TLS-Required: No request */
	    json_object_set_new(o, "requiretls",
	    json_boolean(m->requiretls)) == -1 ||
	    json_object_set_new(o, "tls_required_no",
	    json_boolean(m->tls_optional)) == -1)) {
		json_decref(o);
		return NULL;
	}
	return o;
}

json_t *
queue_list_json(int state, const char *value)
{
	json_t			*a, *o;
	const struct qmsg	*m;
	const struct qpriv	*p;
	size_t			 i;

	if ((a = json_array()) == NULL)
		return NULL;
	for (i = 0; i < qs.nmsgs; i++) {
		m = qs.msgs[i];
		p = m->priv;
		if (m->done_time != 0 || (p != NULL && p->finishing))
			continue;
		if (state >= 0 && (int)m->state != state)
			continue;
		if (value != NULL && (m->state_value == NULL ||
		    strcasecmp(m->state_value, value) != 0))
			continue;
		if ((o = msg_json(m)) == NULL ||
		    json_array_append_new(a, o) == -1) {
			json_decref(a);
			return NULL;
		}
	}
	return a;
}

/* queue_filter_any - no filter */
void
queue_filter_any(struct queue_filter *f)
{
	memset(f, 0, sizeof(*f));
	f->state = -1;
	f->status = -1;
	f->min_age = f->max_age = -1;
	f->now = time(NULL);
}

/* str_has - case-insensitive substring */
static int
str_has(const char *hay, const char *needle)
{
	size_t	n = strlen(needle), h = strlen(hay), i;

	for (i = 0; i + n <= h; i++)
		if (strncasecmp(hay + i, needle, n) == 0)
			return 1;
	return 0;
}

/* page_match - does unfinished message m pass f?  The cheap tests
 * first: a state filter reads m->state only */
static int
page_match(const struct qmsg *m, const struct queue_filter *f)
{
	const struct qpriv	*p = m->priv;
	long long		 age;
	size_t			 i;
	int			 rcpt_ok = f->recipient == NULL,
				 status_ok = f->status < 0;

	if (f->state >= 0 && (int)m->state != f->state)
		return 0;
	if (m->done_time != 0 || (p != NULL && p->finishing))
		return 0;
	if (f->value != NULL && (m->state_value == NULL ||
	    strcasecmp(m->state_value, f->value) != 0))
		return 0;
	if (f->min_age >= 0 || f->max_age >= 0) {
		age = (long long)f->now - (long long)m->arrival;
		if (f->min_age >= 0 && age < f->min_age)
			return 0;
		if (f->max_age >= 0 && age > f->max_age)
			return 0;
	}
	if (f->message_id != NULL && strcmp(m->message_id != NULL ?
	    m->message_id : "", f->message_id) != 0)
		return 0;
	if (f->sender != NULL) {
		const char *s = m->sender != NULL ? m->sender : "";

		if (strcmp(f->sender, "<>") == 0) {
			if (s[0] != '\0')
				return 0;
		} else if (!str_has(s, f->sender))
			return 0;
	}
	for (i = 0; i < m->nrcpts && !(rcpt_ok && status_ok); i++) {
		const struct qrcpt *r = &m->rcpts[i];

		if (!rcpt_ok && str_has(r->addr != NULL ? r->addr : "",
		    f->recipient))
			rcpt_ok = 1;
		if (!status_ok && (int)r->status == f->status)
			status_ok = 1;
	}
	return rcpt_ok && status_ok;
}

/* page_lower - index of the first message whose qid is >= qid (> qid
 * when strict) in the sorted table */
static size_t
page_lower(const char *qid, int strict)
{
	size_t	lo = 0, hi = qs.nmsgs, mid;
	int	c;

	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		c = strcmp(qs.msgs[mid]->qid, qid);
		if (c < 0 || (strict && c == 0))
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

json_t *
queue_page_json(const struct queue_filter *f, const char *after,
    size_t limit, char *next, size_t nextlen)
{
	json_t			*a, *o;
	const struct qmsg	*m, *last = NULL;
	size_t			 i, end = qs.nmsgs, n = 0;

	if (nextlen > 0)
		next[0] = '\0';
	if ((a = json_array()) == NULL)
		return NULL;
	i = after != NULL ? page_lower(after, 1) : 0;
	if (f->queue_id != NULL) {	/* one message at most */
		size_t q = page_lower(f->queue_id, 0);

		if (q < i || q >= qs.nmsgs ||
		    strcmp(qs.msgs[q]->qid, f->queue_id) != 0)
			return a;
		i = q;
		end = q + 1;
	}
	for (; i < end; i++) {
		m = qs.msgs[i];
		if (!page_match(m, f))
			continue;
		if (n == limit) {
			if (last != NULL)
				(void)snprintf(next, nextlen, "%s", last->qid);
			break;
		}
		if ((o = msg_json(m)) == NULL ||
		    json_array_append_new(a, o) == -1) {
			json_decref(a);
			return NULL;
		}
		last = m;
		n++;
	}
	return a;
}

static int
event_cb(uint32_t seq, const struct qevent *e, void *arg)
{
	json_t	*events = arg, *o;

	(void)seq;
	o = json_pack("{s:f, s:s, s:o}",
	    "time", (double)e->time_usec / 1e6,
	    "kind", e->kind,
	    "detail", e->detail ? json_string(e->detail) : json_string(""));
	if (o == NULL || json_array_append_new(events, o) == -1)
		return -1;
	return 0;
}

json_t *
queue_show_json(const char *qid)
{
	struct qmsg	*dbm = NULL;
	const struct qmsg *m;
	json_t		*o, *events;

	if (qid == NULL || !qid_valid(qid))
		return NULL;
	if ((m = qmem_find(qid)) == NULL) {
		if ((dbm = qdb_read_msg(qid)) == NULL)
			return NULL;
		m = dbm;
	}
	o = msg_json(m);
	qmsg_free(dbm);
	if (o == NULL)
		return NULL;
	if ((events = json_array()) == NULL ||
	    qdb_read_events(qid, event_cb, events) == -1) {
		json_decref(events);
		json_decref(o);
		return NULL;
	}
	/* json_object_set_new takes events even when it fails */
	if (json_object_set_new(o, "events", events) == -1) {
		json_decref(o);
		return NULL;
	}
	return o;
}

/*
 * queue_message_open - the stored message of an unfinished qid in two
 * parts: Waymark's trace fields newest first (CRLF line ends, malloc'd
 * into *prefix) and an open fd of the content.  0, or QA_UNKNOWN /
 * QA_REFUSED (the content is gone) with why set.
 */
int
queue_message_open(const char *qid, char **prefix, size_t *prefixlen,
    int *body_fd, char *why, size_t whylen)
{
	const struct qmsg	*m;
	struct qpriv		*p;
	char			 path[64], *buf;
	const char		*f;
	size_t			 i, cap = 1, len = 0;
	int			 fd;

	*prefix = NULL;
	*prefixlen = 0;
	*body_fd = -1;
	if (!qid_valid(qid) || (m = qmem_find(qid)) == NULL) {
		snprintf(why, whylen, "no such message in the queue: %s",
		    qid_valid(qid) ? qid : "(bad queue id)");
		return QA_UNKNOWN;
	}
	snprintf(path, sizeof(path), "body/%s", m->qid);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		snprintf(why, whylen, "the content of %s is no longer in the "
		    "spool", m->qid);
		return QA_REFUSED;
	}
	/* the reader may outlive the message: its file is never reused */
	if ((p = qmsg_priv((struct qmsg *)m)) == NULL) {
		close(fd);
		snprintf(why, whylen, "out of memory");
		return QA_REFUSED;
	}
	p->body_shared = 1;
	for (i = 0; i < m->ntrace; i++)
		cap += 2 * strlen(m->trace[i]) + 2;
	if ((buf = malloc(cap)) == NULL) {
		close(fd);
		snprintf(why, whylen, "out of memory");
		return QA_REFUSED;
	}
	for (i = m->ntrace; i > 0; i--) {
		for (f = m->trace[i - 1]; *f != '\0'; f++) {
			if (*f == '\n' && (f == m->trace[i - 1] || f[-1] != '\r'))
				buf[len++] = '\r';
			buf[len++] = *f;
		}
		buf[len++] = '\r';
		buf[len++] = '\n';
	}
	buf[len] = '\0';
	*prefix = buf;
	*prefixlen = len;
	*body_fd = fd;
	return 0;
}

/*
 * queue_message_text - the stored message of an unfinished qid as it
 * would be delivered: Waymark's trace fields newest first, then the
 * content as received (CRLF line ends).  0 with *out malloc'd, or
 * QA_UNKNOWN / QA_REFUSED (the content is gone) with why set.
 */
int
queue_message_text(const char *qid, char **out, size_t *outlen, char *why,
    size_t whylen)
{
	const struct qmsg	*m = qmem_find(qid);
	char			*buf, *o;
	size_t			 len, cap;
	ssize_t			 n;
	int			 fd, rc;

	*out = NULL;
	*outlen = 0;
	if ((rc = queue_message_open(qid, &buf, &len, &fd, why,
	    whylen)) != 0)
		return rc;
	cap = len + (size_t)m->size + 1;
	if ((o = realloc(buf, cap)) == NULL) {
		free(buf);
		close(fd);
		snprintf(why, whylen, "out of memory");
		return QA_REFUSED;
	}
	buf = o;
	while (len < cap - 1) {
		n = read(fd, buf + len, cap - 1 - len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	buf[len] = '\0';
	close(fd);
	*out = buf;
	*outlen = len;
	return 0;
}
