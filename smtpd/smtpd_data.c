#include "config.h"
/*
 * smtpd_data.c - the message content after DATA's 354, streamed straight
 * into the spool file from queue_body_create() through a small write
 * buffer (never the whole message in memory), then queue_accept() and
 * the final reply from its completion callback.
 *
 * Byte-stream rule (DESIGN.md "only <CRLF>.<CRLF> ends DATA"):
 *  - a line ends at CRLF (a "real" end), at a bare LF, or at a bare CR
 *    (CR not followed by LF); every line end is stored as CRLF;
 *  - the content starts as if after a real CRLF;
 *  - only a line that began after a real CRLF is special: if it is
 *    exactly "." ended by a real CRLF, it ends DATA (not stored);
 *    otherwise its leading '.' is removed (dot-unstuffing);
 *  - a line that began after a bare LF/CR is stored as received, so
 *    "\n.\n" never ends DATA and is stored as "\r\n.\r\n".
 * A write error answers 451 4.3.0 at the end, ENOSPC/EDQUOT 452 4.3.1.
 * Checks while streaming: stored size (> max_size: 552 5.3.4), text
 * lines over 1000 octets incl. CRLF (554 5.6.0), Received: fields in the
 * header section (> max_hops: 554 5.4.6), the first Message-ID, 8-bit
 * octets, TLS-Required fields (RFC 8689 3: one "No" in a message without
 * REQUIRETLS sets qmsg.tls_optional, with a "tls-required" event).
 * After an error the rest is read and dropped up to the end.
 * The octets read since the 354 are counted for smtpd_data_min_rate;
 * the session timer (smtpd_session.c) checks the rate, not this file.
 * At the end, the policy rules (queue_policy_check) run before the trace
 * field is made: reject answers 550 5.7.1 and keeps nothing; quarantine
 * and hold set the state the message is queued in.  Then the milters
 * (smtpd_milter.c: they may change the message, refuse, discard or
 * quarantine it), then smtpd_data_commit: the trace field, DKIM, the
 * commit.
 * DKIM (filter/dkim.c): for AUTH sessions and relay_from clients, when
 * dkim_key is set, the stored content (as it will be committed: a
 * milter's rewrite included) is read back through the body fd, hashed
 * and signed (dkim_job_*): on the loop when every key is Ed25519 (a
 * signature costs less than the two thread hand-offs), in a worker
 * thread when there is an RSA key;
 * each DKIM-Signature field is kept as a trace field (prepended at every
 * delivery, like Received:) with a "dkim" event, so the committed
 * message is the signed one.
 * BDAT (smtpd_bdat.c, RFC 3030) feeds its chunks to the same scanner
 * with t->bdat set: no dot handling and no end marker (the count ends
 * the content), the same header analysis, size and rate
 * checks; bare LF / lone CR are normalised as for DATA, except with
 * BODY=BINARYMIME (t->binary): only CRLF ends a line, every other octet
 * is stored as received and the 1000-octet line limit does not apply.
 * A last line without its CRLF gets one (never for BINARYMIME).
 * Standards: RFC 5321 4.1.1.4, 4.5.2, 4.5.3.1, 6.3; RFC 5322 2.1.1;
 *       RFC 3030 2-3.
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>

#include "common/cfg.h"
#include "common/intl.h"
#include "common/log.h"
#include "common/metrics.h"
#include "common/util.h"
#include "common/work.h"
#include "filter/dkim.h"
#include "queue/queue.h"
#include "smtpd/smtpd_session.h"

/* what the commit callback needs; the qmsg belongs to the queue by then */
struct smtpd_commit {
	uint64_t	 sid;
	char		 sidtext[20];
	char		 qid[QID_SIZE];
	uint64_t	 size;
	size_t		 nrcpt;
	char		 client[64];
	char		*sender;	/* escaped */
	char		*msgid;		/* escaped, or NULL */
	unsigned	 dkim[DKIM_NALGS];	/* signatures per algorithm */
	int		 bdat;		/* ended by BDAT LAST, not DATA */
};

/* smtpd_data_begin - body file and write buffer, at the 354 */
int
smtpd_data_begin(struct smtpd_session *s)
{
	struct smtpd_txn	*t = s->txn;
	char			 qid[QID_SIZE];
	int			 fd;

	if (t == NULL || t->m == NULL)
		return -1;
	/* a heap at its limit may still have room for a small buffer */
	t->wcap = SMTPD_WBUF_SIZE;
	if ((t->wbuf = malloc(t->wcap)) == NULL &&
	    (t->wbuf = malloc(t->wcap = SMTPD_WBUF_MIN)) == NULL) {
		log_warn("session=%s DATA buffer", s->sid);
		return -1;
	}
	if (queue_body_create(qid, &fd) == -1) {
		log_warnx("session=%s cannot create the body file", s->sid);
		free(t->wbuf);
		t->wbuf = NULL;
		return -1;
	}
	memcpy(t->m->qid, qid, sizeof(qid));
	t->fd = fd;
	t->wlen = 0;
	t->size = 0;
	t->linelen = 0;
	t->ds = DS_BOL;
	t->crlf_before = 1;
	t->werr = t->too_big = t->long_line = 0;
	t->in_header = 1;
	t->eightbit = 0;
	memset(&t->u8, 0, sizeof(t->u8));
	t->hdr_badutf8 = 0;
	t->hops = 0;
	t->msgid_state = 0;
	t->hdrlen = t->msgidlen = 0;
	t->tlsreq_n = 0;
	t->tlsreq_in = 0;
	t->tlsreq_len = 0;
	t->data_start = mono_ms();
	t->received = 0;
	/* DKIM: sign for AUTH sessions and relay_from clients only; the
	 * stored content is read back at the end (dkim_job_run) */
	t->dk_want = smtpd_cfg->dkim_keys != NULL && (s->auth_user != NULL ||
	    cfg_relay_allowed(smtpd_cfg, (const struct sockaddr *)&s->ss));
	smtpd_set_state(s, SMTPD_DATA);
	return 0;
}

/* data_flush - write the buffer out (short writes, EINTR) */
static void
data_flush(struct smtpd_txn *t)
{
	size_t	off = 0;
	ssize_t	w;

	while (off < t->wlen && t->werr == 0) {
		w = write(t->fd, t->wbuf + off, t->wlen - off);
		if (w == -1) {
			if (errno == EINTR)
				continue;
			t->werr = errno;
			break;
		}
		if (w == 0) {
			t->werr = EIO;
			break;
		}
		off += (size_t)w;
	}
	t->wlen = 0;
}

/* data_store - n octets for the file (size limit, write buffer) */
static void
data_store(struct smtpd_txn *t, const char *p, size_t n)
{
	size_t room;

	if (t->too_big || t->werr)
		return;
	if (t->size + n > smtpd_cfg->max_size) {
		t->too_big = 1;
		return;
	}
	t->size += n;
	while (n > 0) {
		if (t->wlen == t->wcap) {
			data_flush(t);
			if (t->werr)
				return;
		}
		room = t->wcap - t->wlen;
		if (room > n)
			room = n;
		memcpy(t->wbuf + t->wlen, p, room);
		t->wlen += room;
		p += room;
		n -= room;
	}
}

/* data_text - octets of the current line, not its end */
static void
data_text(struct smtpd_txn *t, const char *p, size_t n)
{
	size_t k;

	t->linelen += n;
	if (t->linelen + 2 > SMTPD_TEXT_LINE_MAX)
		t->long_line = 1;
	if (t->in_header)		/* RFC 6532 3.1, RFC 3629 4 */
		utf8_stream_feed(&t->u8, p, n);
	if (t->in_header && t->hdrlen < SMTPD_HDR_CAP) {
		k = SMTPD_HDR_CAP - t->hdrlen;
		if (k > n)
			k = n;
		memcpy(t->hdr + t->hdrlen, p, k);
		t->hdrlen += k;
	}
	data_store(t, p, n);
}

/* msgid_add - append header value bytes (trimmed later) */
static void
msgid_add(struct smtpd_txn *t, const char *p, size_t n)
{
	if (t->msgidlen + n >= SMTPD_MSGID_MAX) {
		t->msgid_state = 2;	/* too long: not recorded */
		t->msgidlen = 0;
		return;
	}
	memcpy(t->msgid + t->msgidlen, p, n);
	t->msgidlen += n;
}

/* header_name - does the line start with field name `name` then ':'? */
static size_t
header_name(const char *h, size_t len, const char *name)
{
	size_t nl = strlen(name), i;

	if (len < nl || strncasecmp(h, name, nl) != 0)
		return 0;
	for (i = nl; i < len && (h[i] == ' ' || h[i] == '\t'); i++)
		;
	if (i < len && h[i] == ':')
		return i + 1;
	return 0;
}

/* tlsreq_add - value octets of a TLS-Required field, blanks dropped */
static void
tlsreq_add(struct smtpd_txn *t, const char *p, size_t n)
{
	size_t	i;

	for (i = 0; i < n; i++) {
		if (p[i] == ' ' || p[i] == '\t')
			continue;
		if (t->tlsreq_len + 1 >= sizeof(t->tlsreq)) {
			t->tlsreq_len = sizeof(t->tlsreq);	/* too long */
			return;
		}
		t->tlsreq[t->tlsreq_len++] = (char)(p[i] | 0x20);
	}
}

/* data_header_line - analyse one complete header-section line */
static void
data_header_line(struct smtpd_txn *t)
{
	const char	*h = t->hdr;
	size_t		 len = t->hdrlen, i, v;

	if (t->tlsreq_in) {
		if (len > 0 && (h[0] == ' ' || h[0] == '\t')) {
			tlsreq_add(t, h, len);	/* folded continuation */
			return;
		}
		t->tlsreq_in = 0;
	}
	if (t->msgid_state == 1) {
		if (len > 0 && (h[0] == ' ' || h[0] == '\t')) {
			msgid_add(t, h, len);	/* folded continuation */
			return;
		}
		t->msgid_state = 2;
	}
	if (len == 0) {			/* end of the header section */
		t->in_header = 0;
		return;
	}
	if (h[0] == ' ' || h[0] == '\t')
		return;			/* continuation of another field */
	for (i = 0; i < len && h[i] != ':'; i++)
		if ((unsigned char)h[i] <= 32 || (unsigned char)h[i] > 126)
			break;
	if (i == len || (h[i] != ':' && h[i] != ' ' && h[i] != '\t')) {
		t->in_header = 0;	/* not a field: the body has begun */
		return;
	}
	if (header_name(h, len, "Received") > 0)
		t->hops++;
	else if ((v = header_name(h, len, "TLS-Required")) > 0) {
		t->tlsreq_n++;		/* RFC 8689 3: at most one */
		t->tlsreq_in = 1;
		t->tlsreq_len = 0;
		if (t->hdrlen >= SMTPD_HDR_CAP)
			t->tlsreq_len = sizeof(t->tlsreq);	/* not "No" */
		else
			tlsreq_add(t, h + v, len - v);
	}
	else if (t->msgid_state == 0 &&
	    (v = header_name(h, len, "Message-ID")) > 0) {
		t->msgid_state = 1;
		if (t->hdrlen >= SMTPD_HDR_CAP)
			t->msgid_state = 2;	/* longer than we keep */
		else
			msgid_add(t, h + v, len - v);
	}
}

/* data_line_end - store CRLF for the line end; real = it was a CRLF */
static void
data_line_end(struct smtpd_txn *t, int real)
{
	if (t->linelen + 2 > SMTPD_TEXT_LINE_MAX)
		t->long_line = 1;
	data_store(t, "\r\n", 2);
	if (t->in_header) {
		utf8_stream_end(&t->u8);
		data_header_line(t);
	}
	t->linelen = 0;
	t->hdrlen = 0;
	t->crlf_before = real;
}

/*
 * smtpd_data_scan - run the byte-stream rule over p[0..len).  Returns the
 * octets consumed; *end is set when the end marker was consumed.
 */
size_t
smtpd_data_scan(struct smtpd_txn *t, const char *p, size_t len, int *end)
{
	size_t		i = 0, j;
	unsigned char	c, hi;

	while (i < len) {
		c = (unsigned char)p[i];
		switch (t->ds) {
		case DS_BOL:
			if (c == '.' && t->crlf_before && !t->bdat) {
				t->ds = DS_DOT;		/* the dot is dropped */
				i++;
			} else
				t->ds = DS_TEXT;
			break;
		case DS_DOT:
			if (c == '\r') {
				t->ds = DS_DOT_CR;
				i++;
			} else
				t->ds = DS_TEXT;
			break;
		case DS_DOT_CR:
			if (c == '\n') {
				*end = 1;
				return i + 1;
			}
			data_line_end(t, 0);	/* "." then a bare CR */
			t->ds = DS_BOL;
			break;
		case DS_TEXT:
			hi = 0;
			for (j = i; j < len; j++) {
				c = (unsigned char)p[j];
				if (c == '\r' || (c == '\n' && !t->binary))
					break;
				hi |= c;
			}
			if (hi & 0x80)
				t->eightbit = 1;
			if (j > i)
				data_text(t, p + i, j - i);
			i = j;
			if (i < len) {
				if (p[i] == '\r')
					t->ds = DS_CR;
				else {
					data_line_end(t, 0);	/* bare LF */
					t->ds = DS_BOL;
				}
				i++;
			}
			break;
		case DS_CR:
			if (c == '\n') {
				data_line_end(t, 1);
				i++;
			} else if (t->binary) {
				data_text(t, "\r", 1);	/* BINARYMIME: kept */
				t->ds = DS_TEXT;
				break;
			} else
				data_line_end(t, 0);	/* bare CR */
			t->ds = DS_BOL;
			break;
		}
	}
	return len;
}

/* smtpd_data_finish_scan - the last BDAT chunk is in: end an open line */
void
smtpd_data_finish_scan(struct smtpd_txn *t)
{
	if (t->ds == DS_CR) {
		if (t->binary) {
			data_text(t, "\r", 1);	/* a final lone CR, kept */
			t->ds = DS_TEXT;
		} else {
			data_line_end(t, 0);
			t->ds = DS_BOL;
		}
	}
	if (t->ds == DS_TEXT && !t->binary) {
		data_line_end(t, 0);		/* a last line without CRLF */
		t->ds = DS_BOL;
	}
	if (t->binary)
		t->long_line = 0;	/* RFC 3030 3: no line length limit */
}

/* trim_msgid - strip white space; "" when nothing is left */
static char *
trim_msgid(struct smtpd_txn *t)
{
	char	*p = t->msgid, *e;

	t->msgid[t->msgidlen] = '\0';
	while (*p == ' ' || *p == '\t')
		p++;
	e = p + strlen(p);
	while (e > p && (e[-1] == ' ' || e[-1] == '\t'))
		*--e = '\0';
	return p;
}

static void	smtpd_data_done_cb(void *, int);

/*
 * DKIM signing runs in a worker thread (common/work.c) when a key is
 * RSA (250 us or more a signature, too long for the loop); with Ed25519
 * keys only it runs on the loop, because one signature (about 40 us)
 * costs less CPU than the hand-off to a worker and back (bench/README.md,
 * "Zeroed log files, DKIM on the loop").  The job
 * owns the message, its body file, the signer and the commit context
 * from the end of DATA on (the session waits in SMTPD_COMMIT, as for the
 * commit); the worker only signs (dkim_sign_finish: the signer and the
 * keys' EVP_PKEYs, never a session, a qmsg or a reference count); the
 * loop then records each DKIM-Signature as a trace field with its event
 * (dkim_job_done) and commits, or answers 451 on a local error.
 */
struct dkim_sig {
	char		*field;
	char		*detail;		/* "d= s= a=" */
	enum dkim_alg	 alg;
};

struct dkim_job {
	struct qmsg		*m;
	int			 fd;
	struct dkim_sign	*dk;
	struct smtpd_commit	*c;
	/* the worker's results */
	int			 rc;		/* signatures, or -1 */
	const char		*why;		/* static text, or NULL */
	struct dkim_sig		*sig;
	size_t			 nsig;
	int			 oom;
};


/* dkim_job_cb - one DKIM-Signature, kept for dkim_job_record (run in
 * the worker with an RSA key, else on the loop) */
static int
dkim_job_cb(void *arg, const struct dkim_key *k, const char *field)
{
	struct dkim_job	*j = arg;
	struct dkim_sig	*sg;

	if ((sg = reallocarray(j->sig, j->nsig + 1, sizeof(*sg))) == NULL) {
		j->oom = 1;
		return -1;
	}
	j->sig = sg;
	sg = &j->sig[j->nsig];
	sg->alg = k->alg;
	sg->detail = NULL;
	if ((sg->field = strdup(field)) == NULL ||
	    asprintf(&sg->detail, "d=%s s=%s a=%s", k->domain, k->selector,
	    dkim_alg_name(k->alg)) < 0) {
		free(sg->field);
		j->oom = 1;
		return -1;
	}
	j->nsig++;
	return 0;
}

/*
 * dkim_job_run - hash the stored content (as committed: a milter's
 * rewrite included) and sign (a worker thread with an RSA key, else the loop)
 */
static void
dkim_job_run(void *arg)
{
	struct dkim_job	*j = arg;

	/* the body fd is open for reading too; pread leaves its offset
	 * (the content's end for queue_body_end) where it is */
	if (dkim_sign_fd(j->dk, j->fd) == -1) {
		j->rc = -1;
		j->why = "cannot read the stored content";
	} else
		j->rc = dkim_sign_finish(j->dk, time(NULL), dkim_job_cb, j,
		    &j->why);
}

/* dkim_job_free - the job's own parts (not m, fd or c) */
static void
dkim_job_free(struct dkim_job *j)
{
	size_t	i;

	for (i = 0; i < j->nsig; i++) {
		free(j->sig[i].field);
		free(j->sig[i].detail);
	}
	free(j->sig);
	dkim_sign_free(j->dk);		/* a key reference: loop thread only */
	free(j);
}

/* dkim_job_record - the signatures into m (loop thread); 0 or -1 */
static int
dkim_job_record(struct dkim_job *j)
{
	struct qmsg	*m = j->m;
	char		 ev[300];
	size_t		 i;

	if (j->rc == -1 || j->oom) {
		log_warnx("session=%s qid=%s dkim: %s", j->c->sidtext, m->qid,
		    j->oom ? "out of memory" : j->why != NULL ? j->why :
		    "error");
		return -1;
	}
	for (i = 0; i < j->nsig; i++) {
		if (qmsg_add_trace(m, j->sig[i].field) == -1 ||
		    qmsg_add_event(m, "dkim", j->sig[i].detail) == -1)
			return -1;
		log_info("session=%s qid=%s dkim=signed %s", j->c->sidtext,
		    m->qid, j->sig[i].detail);
		j->c->dkim[j->sig[i].alg]++;
	}
	if (j->rc == 0 && j->why != NULL) {
		log_info("session=%s qid=%s dkim=none reason=\"%s\"",
		    j->c->sidtext, m->qid, j->why);
		(void)snprintf(ev, sizeof(ev), "not signed: %s", j->why);
		if (qmsg_add_event(m, "dkim", ev) == -1)
			return -1;
	}
	return 0;
}

/* dkim_job_done - signed: record and commit, or 451 (loop thread) */
static void
dkim_job_done(void *arg)
{
	struct dkim_job		*j = arg;
	struct smtpd_commit	*c = j->c;

	if (dkim_job_record(j) == 0) {
		queue_accept(j->m, j->fd, smtpd_data_done_cb, c);
		dkim_job_free(j);
		return;
	}
	queue_body_discard(j->m->qid, j->fd);
	qmsg_free(j->m);
	dkim_job_free(j);
	smtpd_data_done_cb(c, -1);	/* 451, as for a failed commit */
}

/*
 * data_policy - the policy rules on the received message: 0 go on (for
 * quarantine / hold m's state is set), 1 refused (answered, the body
 * discarded, the transaction ended), -1 local error.
 */
static int
data_policy(struct smtpd_session *s)
{
	struct qmsg		*m = s->txn->m;
	struct policy_verdict	 v;

	if (smtpd_cfg->policy_table == NULL)
		return 0;
	if (queue_policy_check(smtpd_cfg->policy_table, m, &v) == -1) {
		log_warn("session=%s qid=%s policy check", s->sid, m->qid);
		return -1;
	}
	if (v.where == NULL)
		return 0;		/* no rule matched */
	if (v.action == POLICY_REJECT) {
		log_info("session=%s qid=%s policy=%s action=reject", s->sid,
		    m->qid, v.where);
		smtpd_set_state(s, SMTPD_READY);
		smtpd_reply(s, 550, 5, 7, 1, "%s", v.text);
		smtpd_txn_free(s);	/* queue_body_discard */
		return 1;
	}
	if (v.state == MS_NORMAL) {
		log_debug("session=%s qid=%s policy=%s action=accept", s->sid,
		    m->qid, v.where);
		return 0;
	}
	/* a post held for a list moderator stays in moderation: the
	 * moderator decides (a reject above still applies) */
	if (m->state == MS_MODERATION) {
		log_info("session=%s qid=%s policy=%s action=%s kept in "
		    "moderation", s->sid, m->qid, v.where, v.name);
		return 0;
	}
	/* the policy's state replaces a FUTURERELEASE hold for now; the
	 * release time still holds (queue_state.c release_job) */
	free(m->state_value);
	free(m->state_reason);
	free(m->state_actor);
	m->state_value = m->state_reason = m->state_actor = NULL;
	m->state = v.state;
	if ((v.value != NULL && (m->state_value = strdup(v.value)) == NULL) ||
	    (m->state_reason = strdup(v.reason)) == NULL ||
	    (m->state_actor = strdup(v.actor)) == NULL ||
	    (v.action == POLICY_FILTER &&
	    (m->filter_cmd = strdup(v.text)) == NULL))
		return -1;
	log_info("session=%s qid=%s policy=%s action=%s state=%s%s%s", s->sid,
	    m->qid, v.where, v.name, msg_state_name(v.state),
	    v.value != NULL ? "/" : "", v.value != NULL ? v.value : "");
	return 0;
}

/* smtpd_data_fail - discard the body, end the transaction, reply */
static void
smtpd_data_fail(struct smtpd_session *s)
{
	struct smtpd_txn *t = s->txn;

	if (t->werr == ENOSPC || t->werr == EDQUOT) {
		log_warnx("session=%s qid=%s write body: %s", s->sid,
		    t->m->qid, strerror(t->werr));
		smtpd_reply(s, 452, 4, 3, 1, "Insufficient system storage");
	} else if (t->werr) {
		log_warnx("session=%s qid=%s write body: %s", s->sid,
		    t->m->qid, strerror(t->werr));
		smtpd_reply(s, 451, 4, 3, 0, "Local error in processing");
	} else if (t->too_big)
		smtpd_reply(s, 552, 5, 3, 4,
		    "Message size exceeds fixed maximum message size");
	else if (t->long_line)
		smtpd_reply(s, 554, 5, 6, 0,
		    "Message has lines longer than 1000 octets");
	else if (t->hdr_badutf8)
		smtpd_reply(s, 554, 5, 6, 0,
		    "Invalid UTF-8 in a header field");
	else
		smtpd_reply(s, 554, 5, 4, 6, "Too many hops");
	smtpd_txn_free(s);		/* queue_body_discard */
}

/*
 * data_tls_required - RFC 8689 3, 4.1: one "TLS-Required: No" field in
 * a message without the REQUIRETLS option tags it tls_optional (and an
 * event says so); with the option, or with two fields or another value,
 * the field is ignored (logged).  -1 when out of memory.
 */
static int
data_tls_required(struct smtpd_session *s)
{
	struct smtpd_txn	*t = s->txn;
	struct qmsg		*m = t->m;
	int			 no = t->tlsreq_len == 2 &&
				    memcmp(t->tlsreq, "no", 2) == 0;

	if (t->tlsreq_n == 0)
		return 0;
	if (m->requiretls || t->tlsreq_n > 1 || !no) {
		log_info("session=%s qid=%s TLS-Required field ignored: %s",
		    s->sid, m->qid, m->requiretls ? "the message has "
		    "REQUIRETLS" : t->tlsreq_n > 1 ? "more than one" :
		    "value is not No");
		return 0;
	}
	m->tls_optional = 1;
	return qmsg_add_event(m, "tls-required", "TLS-Required: No: the "
	    "recipient domain's DANE / MTA-STS policy does not block "
	    "delivery (RFC 8689 4.2.2)");
}

/* smtpd_data_chunk_end - a BDAT chunk without LAST is in: a write or
 * size error is answered now (the transaction ends), else 0 */
int
smtpd_data_chunk_end(struct smtpd_session *s)
{
	struct smtpd_txn *t = s->txn;

	if (!t->werr && !t->too_big)
		return 0;
	smtpd_set_state(s, SMTPD_READY);
	smtpd_data_fail(s);
	return -1;
}

/* smtpd_data_end - the end marker (or BDAT LAST) was read: refuse,
 * filter or commit */
void
smtpd_data_end(struct smtpd_session *s)
{
	struct smtpd_txn	*t = s->txn;
	struct qmsg		*m = t->m;
	const char		*id;

	s->cmd = t->bdat ? "BDAT (last chunk)" : "DATA (end of data)";
	s->cmdlen = strlen(s->cmd);
	data_flush(t);
	/* a reused body file: cut off the older content before anything
	 * (milters, DKIM, policy) reads the file */
	if (t->werr == 0) {
		if (queue_body_end(t->fd) == -1)
			t->werr = errno;
		else
			m->body_ended = 1;	/* a milter's new file is fresh */
	}
	/* RFC 6532: a SMTPUTF8 message's header fields are UTF-8; an
	 * ill-formed one is refused (nothing stored).  Without the
	 * parameter 8-bit headers are accepted and relayed as before (as
	 * Postfix does).  UTF-8 in the header of a SMTPUTF8 message makes
	 * it need SMTPUTF8 when relayed. */
	if (t->u8.nonascii && !t->u8.bad && (m->intl & QM_SMTPUTF8))
		m->intl |= QM_UTF8_HDR;
	t->hdr_badutf8 = t->u8.bad && (m->intl & QM_SMTPUTF8);
	if (t->werr || t->too_big || t->long_line || t->hdr_badutf8 ||
	    t->hops > smtpd_cfg->max_hops) {
		smtpd_set_state(s, SMTPD_READY);
		smtpd_data_fail(s);
		return;
	}

	m->arrival = time(NULL);
	/* RFC 4865 4.2: HOLDFOR counts from the acceptance; rounded up to
	 * the next whole second, so the release is never early */
	if (m->state == MS_TIMED && m->future_release != NULL &&
	    strncmp(m->future_release, "for;", 4) == 0) {
		struct timespec	ts;

		if (clock_gettime(CLOCK_REALTIME, &ts) == -1) {
			ts.tv_sec = m->arrival;
			ts.tv_nsec = 1;
		}
		m->hold_until = ts.tv_sec + (ts.tv_nsec > 0) +
		    strtol(m->future_release + 4, NULL, 10);
	}
	m->size = t->size;
	m->body_8bit = t->eightbit;
	m->body_binary = t->binary;
	if ((m->client_addr = strdup(s->addr)) == NULL ||
	    (s->helo != NULL && (m->helo = strdup(s->helo)) == NULL) ||
	    (s->tls_info != NULL && (m->tls = strdup(s->tls_info)) == NULL))
		goto fail;
	if (data_tls_required(s) == -1)
		goto fail;
	id = (t->msgid_state != 0 && t->msgidlen > 0) ? trim_msgid(t) : "";
	if (*id != '\0' && (m->message_id = strdup(id)) == NULL)
		goto fail;
	switch (data_policy(s)) {
	case 1:
		return;			/* refused */
	case -1:
		goto fail;
	}
	/* then the milters (smtpd_milter.c), which call
	 * smtpd_data_commit when they let the message in */
	switch (smtpd_milter_eom(s)) {
	case 1:
		return;
	case -1:
		goto fail;
	}
	smtpd_data_commit(s);
	return;
fail:
	log_warnx("session=%s qid=%s out of memory at end of data", s->sid,
	    m->qid);
	smtpd_set_state(s, SMTPD_READY);
	smtpd_reply(s, 451, 4, 3, 0, "Local error in processing");
	smtpd_txn_free(s);
}

/* data_proto - the "with" of the trace field: smtpd_proto's, or
 * UTF8SMTP[S][A] for a SMTPUTF8 transaction (RFC 6531 3.7.4, 4.3) */
static const char *
data_proto(const struct smtpd_session *s)
{
	const char	*p = smtpd_proto(s);

	if (!(s->txn->m->intl & QM_SMTPUTF8) || strncmp(p, "ESMTP", 5) != 0)
		return p;
	if (strcmp(p, "ESMTPSA") == 0)
		return "UTF8SMTPSA";
	if (strcmp(p, "ESMTPS") == 0)
		return "UTF8SMTPS";
	if (strcmp(p, "ESMTPA") == 0)
		return "UTF8SMTPA";
	return "UTF8SMTP";
}

/*
 * smtpd_data_commit - the hop's trace field, DKIM signing (in a worker
 * when an RSA key is configured, else here: dkim_job_run), then the
 * commit; the session waits in SMTPD_COMMIT from here on
 */
void
smtpd_data_commit(struct smtpd_session *s)
{
	struct smtpd_txn	*t = s->txn;
	struct qmsg		*m = t->m;
	struct smtpd_commit	*c = NULL;
	struct dkim_job		*j = NULL;
	char			 trace[2048], esc[600];
	const char		*proto;
	int			 fd;

	proto = data_proto(s);		/* [UTF8]ESMTP[S][A] */
	if (queue_trace_received(m, smtpd_cfg->hostname, proto, trace,
	    sizeof(trace)) == -1 || qmsg_add_trace(m, trace) == -1)
		goto fail;
	if (t->dk_want && ((j = calloc(1, sizeof(*j))) == NULL ||
	    (j->dk = dkim_sign_new(smtpd_cfg->dkim_keys)) == NULL))
		goto fail;

	if ((c = calloc(1, sizeof(*c))) == NULL)
		goto fail;
	c->sid = s->id;
	memcpy(c->sidtext, s->sid, sizeof(c->sidtext));
	memcpy(c->qid, m->qid, sizeof(c->qid));
	c->size = m->size;
	c->nrcpt = m->nrcpts;
	c->bdat = t->bdat;
	memcpy(c->client, s->addr, sizeof(c->client));
	log_escape(esc, sizeof(esc), m->sender, strlen(m->sender));
	if ((c->sender = strdup(esc)) == NULL)
		goto fail;
	if (m->message_id != NULL) {
		log_escape(esc, sizeof(esc), m->message_id,
		    strlen(m->message_id));
		if ((c->msgid = strdup(esc)) == NULL)
			goto fail;
	}

	/* hand over: m and fd belong to the queue (or the DKIM job) */
	fd = t->fd;
	t->fd = -1;
	t->m = NULL;
	if (j != NULL) {
		j->m = m;
		j->fd = fd;
		j->c = c;
	}
	smtpd_txn_free(s);
	smtpd_set_state(s, SMTPD_COMMIT);
	if (j == NULL)
		queue_accept(m, fd, smtpd_data_done_cb, c);
	else if (!smtpd_cfg->dkim_keys->has_rsa ||
	    work_submit(dkim_job_run, dkim_job_done, j) == -1) {
		dkim_job_run(j);	/* Ed25519 only, or no worker: here */
		dkim_job_done(j);
	}
	return;
fail:
	log_warnx("session=%s qid=%s local error at end of data", s->sid,
	    m->qid);
	if (j != NULL)
		dkim_sign_free(j->dk);
	free(j);
	if (c != NULL) {
		free(c->sender);
		free(c);
	}
	smtpd_set_state(s, SMTPD_READY);
	smtpd_reply(s, 451, 4, 3, 0, "Local error in processing");
	smtpd_txn_free(s);
}

/* smtpd_data_done_cb - queue_accept finished; find the session by id */
static void
smtpd_data_done_cb(void *arg, int rc)
{
	struct smtpd_commit	*c = arg;
	struct smtpd_session	*s;
	unsigned		 i;
	int			 idx;

	/* waymark_dkim_signatures_total{alg}: the signed message is
	 * committed */
	if (rc == 0)
		for (idx = 0; idx < DKIM_NALGS; idx++)
			for (i = 0; i < c->dkim[idx]; i++)
				metrics_dkim_signature(dkim_alg_name(idx));
	s = smtpd_session_find(c->sid);
	if (s == NULL) {
		log_info("session=%s qid=%s commit %s after the client left",
		    c->sidtext, c->qid, rc == 0 ? "done" : "failed");
		goto done;
	}
	if (s->state != SMTPD_COMMIT) {
		log_warnx("session=%s qid=%s commit done in state %s",
		    s->sid, c->qid, smtpd_state_name(s->state));
		goto done;
	}
	s->cmd = c->bdat ? "BDAT (last chunk)" : "DATA (end of data)";
	s->cmdlen = strlen(s->cmd);
	smtpd_set_state(s, SMTPD_READY);
	if (rc == 0) {
		if ((idx = smtpd_cmd_index(c->bdat ? "BDAT" : "DATA")) >= 0)
			s->okcount[idx]++;
		s->junk = 0;
		smtpd_reply(s, 250, 2, 0, 0, "Ok: queued as %s", c->qid);
	} else {
		log_warnx("session=%s qid=%s not queued", s->sid, c->qid);
		smtpd_reply(s, 451, 4, 3, 0, "Local error in processing");
	}
	s->cmd = NULL;
	s->cmdlen = 0;
	if (s->stop_after_commit || smtpd_stopping()) {
		s->cmd = "(shutdown)";
		s->cmdlen = strlen(s->cmd);
		smtpd_reply(s, 421, 4, 3, 2, "%s Service shutting down",
		    smtpd_cfg->hostname);
	} else if (s->state == SMTPD_READY)
		smtpd_resume(s);
done:
	/* after the reply: off the client's wait */
	if (rc == 0)
		log_info("qid=%s from=<%s> size=%llu nrcpt=%zu client=[%s] "
		    "msgid=%s session=%s", c->qid, c->sender,
		    (unsigned long long)c->size, c->nrcpt, c->client,
		    c->msgid != NULL ? c->msgid : "-", c->sidtext);
	free(c->sender);
	free(c->msgid);
	free(c);
}

/*
 * smtpd_data_input - feed buffered content to the scanner.  Returns 1
 * when the end marker was consumed (the session left SMTPD_DATA), 0 when
 * all buffered input was used.
 */
int
smtpd_data_input(struct smtpd_session *s, struct evbuffer *in)
{
	struct evbuffer_iovec	 v[8];
	struct smtpd_txn	*t = s->txn;
	size_t			 used, avail;
	int			 n, i, end = 0;

	if (t == NULL) {
		smtpd_set_state(s, SMTPD_READY);
		return 1;
	}
	for (;;) {
		if ((avail = evbuffer_get_length(in)) == 0)
			return 0;
		n = evbuffer_peek(in, -1, NULL, v, 8);
		if (n <= 0)
			return 0;
		used = 0;
		for (i = 0; i < n && i < 8 && !end; i++)
			used += smtpd_data_scan(t, v[i].iov_base,
			    v[i].iov_len, &end);
		if (used == 0 && !end) {
			/* only empty chains peeked (TLS filter): compact */
			if (evbuffer_pullup(in, avail < 4096 ? (ssize_t)avail :
			    4096) == NULL)
				return 0;
			continue;
		}
		evbuffer_drain(in, used);
		t->received += used;
		if (end) {
			smtpd_data_end(s);
			return 1;
		}
	}
}
