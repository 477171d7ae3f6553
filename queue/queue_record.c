#include "config.h"
/*
 * queue_record.c - the one versioned record codec of the queue, and the
 * key layouts of every database.  One encoder and one decoder per record
 * type; decoders validate everything and return a reason, never crash.
 *
 * Common encoding, all integers big-endian:
 *   u8 version (3 for 'R' and 'M', 1 for the others; older 'M'/'R'
 *   records are still decoded, without the newer fields), u8 type tag ('M' message, 'R' recipient, 'E' event,
 *   'U' meta u64), then the fields below.  str = u32 length + bytes (no
 *   NUL inside, at most REC_STR_MAX); length 0xffffffff = NULL.  No byte
 *   may follow the last field.
 * Message   ('M'): u64 arrival, u64 size, u64 done_time, u8 state,
 *   u8 body_8bit (bit 0: 8-bit; bits 1-2: qmsg.intl, SMTPUTF8; bit 3:
 *   BODY=BINARYMIME, which implies 8-bit; bit 4: requiretls, bit 5:
 *   tls_optional, RFC 8689), u16 nrcpts, str sender, envid, client_addr,
 *   client_name, helo, tls, message_id, state_value; version 2 adds
 *   u8 ret (DSN_RET_*), str mtrk_certifier, u64 mtrk_timeout,
 *   u64 mtrk_expiry, str auth_user; version 3 (written now) adds
 *   u64 state_since, str state_reason, u64 hold_until, str
 *   future_release, u64 deliver_by, u8 by_flags (BY_*, BY_DONE included),
 *   u64 expire_base, str filter_cmd.
 * Recipient ('R'): u8 status, u32 attempts, u64 next_attempt,
 *   u64 last_attempt, u16 last_code, str last_enh (non-NULL, <= 15),
 *   str addr (non-NULL), orcpt, last_text, remote_mta; version 2 adds
 *   u8 notify (DSN_NOTIFY_* bits), u8 hop_dsn, u8 hop_mtrk (0, 1,
 *   0xff = unknown); version 3 (written now) adds u8 flags (1 =
 *   dsn_delay_sent, 2 = no_mtrk).
 * Event     ('E'): u64 time (microseconds), str kind (non-NULL), detail.
 * Meta      ('U'): u64 value.
 * ENVID index value (no type tag): u8 version (1), qid (8..32
 *   octets), the MTRK certifier (REC_CERT_LEN octets, base64 as
 *   received); its length gives the qid's.  Only messages accepted with
 *   an ENVID and an MTRK certifier have one.  Stores written before this
 *   format hold the bare qid (alphanumerics: never a first octet 1) for
 *   every message with an ENVID; those decode with an empty certifier.
 * Keys: messages = qid; recipients = qid + u16 index; events = qid +
 *   u32 seq; envid = envid -> the value above (duplicates, sorted);
 *   state = u8 state + qid;
 *   schedule = u64 next-attempt time + qid (unfinished messages only);
 *   expire = u64 done time + qid (finished messages: purge order);
 *   meta = name ("qid_floor").  Values of the other index entries are
 *   empty.
 */

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "queue/queue_int.h"

#define STR_NULL	0xffffffffu
#define REC_VERSION2	2	/* message and recipient records */
#define REC_VERSION3	3	/* recipient and message records */
#define HOP_UNKNOWN	0xffu

/* ---- big-endian helpers ---- */

void
be_put64(unsigned char *p, uint64_t v)
{
	int	i;

	for (i = 7; i >= 0; i--) {
		p[i] = (unsigned char)(v & 0xff);
		v >>= 8;
	}
}

uint64_t
be_get64(const unsigned char *p)
{
	uint64_t	v = 0;
	int		i;

	for (i = 0; i < 8; i++)
		v = (v << 8) | p[i];
	return v;
}

void
be_put32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)(v >> 24);
	p[1] = (unsigned char)(v >> 16);
	p[2] = (unsigned char)(v >> 8);
	p[3] = (unsigned char)v;
}

uint32_t
be_get32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	    (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

/* ---- writer ---- */

struct wr {
	unsigned char	*p;
	size_t		 len, cap;
	int		 err;
};

static void
wr_need(struct wr *w, size_t n)
{
	unsigned char	*np;
	size_t		 ncap;

	if (w->err)
		return;
	if (n > SIZE_MAX - w->len) {
		w->err = 1;
		return;
	}
	if (w->len + n <= w->cap)
		return;
	ncap = w->cap ? w->cap : 128;
	while (ncap < w->len + n)
		ncap *= 2;
	if ((np = realloc(w->p, ncap)) == NULL) {
		w->err = 1;
		return;
	}
	w->p = np;
	w->cap = ncap;
}

static void
wr_bytes(struct wr *w, const void *p, size_t n)
{
	wr_need(w, n);
	if (w->err)
		return;
	if (n > 0)
		memcpy(w->p + w->len, p, n);
	w->len += n;
}

static void
wr_u8(struct wr *w, unsigned v)
{
	unsigned char	c = (unsigned char)v;

	wr_bytes(w, &c, 1);
}

static void
wr_u16(struct wr *w, unsigned v)
{
	unsigned char	b[2] = { (unsigned char)(v >> 8), (unsigned char)v };

	wr_bytes(w, b, 2);
}

static void
wr_u32(struct wr *w, uint32_t v)
{
	unsigned char	b[4];

	be_put32(b, v);
	wr_bytes(w, b, 4);
}

static void
wr_u64(struct wr *w, uint64_t v)
{
	unsigned char	b[8];

	be_put64(b, v);
	wr_bytes(w, b, 8);
}

static void
wr_str(struct wr *w, const char *s)
{
	size_t	n;

	if (s == NULL) {
		wr_u32(w, STR_NULL);
		return;
	}
	n = strlen(s);
	if (n > REC_STR_MAX) {
		w->err = 1;
		return;
	}
	wr_u32(w, (uint32_t)n);
	wr_bytes(w, s, n);
}

static int
wr_finish(struct wr *w, unsigned char **out, size_t *outlen)
{
	if (w->err) {
		free(w->p);
		errno = errno ? errno : EINVAL;
		return -1;
	}
	*out = w->p;
	*outlen = w->len;
	return 0;
}

/* ---- reader ---- */

struct rd {
	const unsigned char	*p;
	size_t			 len, off;
	const char		*why;
};

static int
rd_need(struct rd *r, size_t n)
{
	if (r->why != NULL)
		return -1;
	if (r->len - r->off < n) {
		r->why = "truncated record";
		return -1;
	}
	return 0;
}

static unsigned
rd_u8(struct rd *r)
{
	if (rd_need(r, 1) == -1)
		return 0;
	return r->p[r->off++];
}

static unsigned
rd_u16(struct rd *r)
{
	unsigned	v;

	if (rd_need(r, 2) == -1)
		return 0;
	v = (unsigned)r->p[r->off] << 8 | r->p[r->off + 1];
	r->off += 2;
	return v;
}

static uint32_t
rd_u32(struct rd *r)
{
	uint32_t	v;

	if (rd_need(r, 4) == -1)
		return 0;
	v = be_get32(r->p + r->off);
	r->off += 4;
	return v;
}

static uint64_t
rd_u64(struct rd *r)
{
	uint64_t	v;

	if (rd_need(r, 8) == -1)
		return 0;
	v = be_get64(r->p + r->off);
	r->off += 8;
	return v;
}

/* rd_str - a malloc'd string or NULL (field NULL or error: check r->why) */
static char *
rd_str(struct rd *r, int nullable)
{
	uint32_t	 n;
	char		*s;

	n = rd_u32(r);
	if (r->why != NULL)
		return NULL;
	if (n == STR_NULL) {
		if (!nullable)
			r->why = "missing required string";
		return NULL;
	}
	if (n > REC_STR_MAX) {
		r->why = "string too long";
		return NULL;
	}
	if (rd_need(r, n) == -1)
		return NULL;
	if (memchr(r->p + r->off, '\0', n) != NULL) {
		r->why = "NUL in string";
		return NULL;
	}
	if ((s = malloc((size_t)n + 1)) == NULL) {
		r->why = "out of memory";
		return NULL;
	}
	memcpy(s, r->p + r->off, n);
	s[n] = '\0';
	r->off += n;
	return s;
}

/* rd_header - version (REC_VERSION, or up to REC_VERSION3 when v2 != NULL;
 * *v2 = 1 for a version 2 record, 3 for a version 3 one) and type tag */
static int
rd_header_v(struct rd *r, const void *p, size_t len, int tag, int *v2)
{
	r->p = p;
	r->len = len;
	r->off = 0;
	r->why = NULL;
	if (p == NULL || len < 2) {
		r->why = "truncated record";
		return -1;
	}
	if (v2 != NULL)
		*v2 = r->p[0] == REC_VERSION2 ? 1 :
		    r->p[0] == REC_VERSION3 && (tag == 'R' || tag == 'M') ? 3 : 0;
	if (r->p[0] != REC_VERSION && (v2 == NULL || !*v2)) {
		r->why = "unknown record version";
		return -1;
	}
	if (r->p[1] != tag) {
		r->why = "wrong record type";
		return -1;
	}
	r->off = 2;
	return 0;
}

static int
rd_header(struct rd *r, const void *p, size_t len, int tag)
{
	return rd_header_v(r, p, len, tag, NULL);
}

static int
rd_end(struct rd *r)
{
	if (r->why == NULL && r->off != r->len)
		r->why = "trailing bytes after record";
	return r->why == NULL ? 0 : -1;
}

/* ---- message ---- */

void
rec_msg_clear(struct qmsg *m)
{
	free(m->sender);
	free(m->envid);
	free(m->client_addr);
	free(m->client_name);
	free(m->helo);
	free(m->tls);
	free(m->message_id);
	free(m->state_value);
	free(m->mtrk_certifier);
	free(m->auth_user);
	free(m->state_reason);
	free(m->future_release);
	free(m->filter_cmd);
	m->sender = m->envid = m->client_addr = m->client_name = NULL;
	m->helo = m->tls = m->message_id = m->state_value = NULL;
	m->mtrk_certifier = m->auth_user = NULL;
	m->state_reason = m->future_release = m->filter_cmd = NULL;
}

/* RFC 8689 flags, kept in body_8bit's octet beside its bit 0 */
#define MSG_REQUIRETLS		0x10u
#define MSG_TLS_OPTIONAL	0x20u

/* msg_tls_bits - m's RFC 8689 flags as record bits */
static unsigned
msg_tls_bits(const struct qmsg *m)
{
	return (m->requiretls ? MSG_REQUIRETLS : 0) |
	    (m->tls_optional ? MSG_TLS_OPTIONAL : 0);
}

/* rec_msg_encode - encode the message record of m (not its recipients) */
int
rec_msg_encode(const struct qmsg *m, unsigned char **out, size_t *outlen)
{
	struct wr	w = { NULL, 0, 0, 0 };

	if (m->nrcpts > REC_RCPT_MAX || (unsigned)m->state > MS_OTHER ||
	    m->ret < DSN_RET_NONE || m->ret > DSN_RET_HDRS ||
	    m->mtrk_timeout < 0 || m->by_flags > BY_ALL) {
		errno = EINVAL;
		return -1;
	}
	wr_u8(&w, REC_VERSION3);
	wr_u8(&w, 'M');
	wr_u64(&w, (uint64_t)m->arrival);
	wr_u64(&w, m->size);
	wr_u64(&w, (uint64_t)m->done_time);
	wr_u8(&w, (unsigned)m->state);
	wr_u8(&w, (m->body_8bit || m->body_binary ? 1u : 0u) |
	    ((m->intl & 3u) << 1) | (m->body_binary ? 8u : 0u) |
	    msg_tls_bits(m));
	wr_u16(&w, (unsigned)m->nrcpts);
	wr_str(&w, m->sender ? m->sender : "");
	wr_str(&w, m->envid);
	wr_str(&w, m->client_addr);
	wr_str(&w, m->client_name);
	wr_str(&w, m->helo);
	wr_str(&w, m->tls);
	wr_str(&w, m->message_id);
	wr_str(&w, m->state_value);
	wr_u8(&w, (unsigned)m->ret);
	wr_str(&w, m->mtrk_certifier);
	wr_u64(&w, (uint64_t)m->mtrk_timeout);
	wr_u64(&w, (uint64_t)m->mtrk_expiry);
	wr_str(&w, m->auth_user);
	wr_u64(&w, (uint64_t)m->state_since);
	wr_str(&w, m->state_reason);
	wr_u64(&w, (uint64_t)m->hold_until);
	wr_str(&w, m->future_release);
	wr_u64(&w, (uint64_t)m->deliver_by);
	wr_u8(&w, m->by_flags);
	wr_u64(&w, (uint64_t)m->expire_base);
	wr_str(&w, m->filter_cmd);
	return wr_finish(&w, out, outlen);
}

/*
 * rec_msg_decode - fill the message fields of m (m->nrcpts holds the
 * recipient count of the record; m->rcpts is left NULL).
 */
int
rec_msg_decode(const void *p, size_t len, struct qmsg *m, const char **why)
{
	struct rd	r;
	unsigned	state, b8, ret = DSN_RET_NONE, byf = 0;
	uint64_t	timeout = 0;
	int		v2 = 0;

	m->sender = m->envid = m->client_addr = m->client_name = NULL;
	m->helo = m->tls = m->message_id = m->state_value = NULL;
	m->mtrk_certifier = m->auth_user = NULL;
	m->state_reason = m->future_release = m->filter_cmd = NULL;
	m->mtrk_timeout = 0;
	m->mtrk_expiry = 0;
	m->state_since = m->hold_until = m->deliver_by = m->expire_base = 0;
	m->by_flags = 0;
	if (rd_header_v(&r, p, len, 'M', &v2) == -1)
		goto fail;
	m->arrival = (time_t)rd_u64(&r);
	m->size = rd_u64(&r);
	m->done_time = (time_t)rd_u64(&r);
	state = rd_u8(&r);
	b8 = rd_u8(&r);
	m->nrcpts = rd_u16(&r);
	m->sender = rd_str(&r, 0);
	m->envid = rd_str(&r, 1);
	m->client_addr = rd_str(&r, 1);
	m->client_name = rd_str(&r, 1);
	m->helo = rd_str(&r, 1);
	m->tls = rd_str(&r, 1);
	m->message_id = rd_str(&r, 1);
	m->state_value = rd_str(&r, 1);
	if (v2) {
		ret = rd_u8(&r);
		m->mtrk_certifier = rd_str(&r, 1);
		timeout = rd_u64(&r);
		m->mtrk_expiry = (time_t)rd_u64(&r);
		m->auth_user = rd_str(&r, 1);
	}
	if (v2 == 3) {
		m->state_since = (time_t)rd_u64(&r);
		m->state_reason = rd_str(&r, 1);
		m->hold_until = (time_t)rd_u64(&r);
		m->future_release = rd_str(&r, 1);
		m->deliver_by = (time_t)rd_u64(&r);
		byf = rd_u8(&r);
		m->expire_base = (time_t)rd_u64(&r);
		m->filter_cmd = rd_str(&r, 1);
	}
	if (rd_end(&r) == -1)
		goto fail;
	if (byf > BY_ALL) {
		r.why = "bad BY flags";
		goto fail;
	}
	m->by_flags = byf;
	if (ret > DSN_RET_HDRS) {
		r.why = "bad RET value";
		goto fail;
	}
	if (timeout > 999999999u) {
		r.why = "bad MTRK timeout";
		goto fail;
	}
	m->ret = (int)ret;
	m->mtrk_timeout = (long)timeout;
	if (state > MS_OTHER) {
		r.why = "bad handling state";
		goto fail;
	}
	if (b8 > (0x0fu | MSG_REQUIRETLS | MSG_TLS_OPTIONAL)) {
		r.why = "bad 8-bit flag";
		goto fail;
	}
	m->state = (enum msg_state)state;
	m->body_8bit = (int)(b8 & 1u);
	m->intl = (b8 >> 1) & 3u;
	m->body_binary = (int)((b8 >> 3) & 1u);
	m->requiretls = (b8 & MSG_REQUIRETLS) != 0;
	m->tls_optional = (b8 & MSG_TLS_OPTIONAL) != 0;
	m->rcpts = NULL;
	return 0;
fail:
	rec_msg_clear(m);
	m->nrcpts = 0;
	*why = r.why ? r.why : "bad record";
	return -1;
}

/* ---- recipient ---- */

void
rec_rcpt_clear(struct qrcpt *r)
{
	free(r->addr);
	free(r->orcpt);
	free(r->last_text);
	free(r->remote_mta);
	r->addr = r->orcpt = r->last_text = r->remote_mta = NULL;
}

int
rec_rcpt_encode(const struct qrcpt *rc, unsigned char **out, size_t *outlen)
{
	struct wr	w = { NULL, 0, 0, 0 };

	if (rc->addr == NULL || (unsigned)rc->status > RS_EXPANDED ||
	    rc->last_code < 0 || rc->last_code > 999 ||
	    memchr(rc->last_enh, '\0', sizeof(rc->last_enh)) == NULL ||
	    rc->notify > 0xff || rc->hop_dsn < -1 || rc->hop_dsn > 1 ||
	    rc->hop_mtrk < -1 || rc->hop_mtrk > 1) {
		errno = EINVAL;
		return -1;
	}
	wr_u8(&w, REC_VERSION3);
	wr_u8(&w, 'R');
	wr_u8(&w, (unsigned)rc->status);
	wr_u32(&w, rc->attempts);
	wr_u64(&w, (uint64_t)rc->next_attempt);
	wr_u64(&w, (uint64_t)rc->last_attempt);
	wr_u16(&w, (unsigned)rc->last_code);
	wr_str(&w, rc->last_enh);
	wr_str(&w, rc->addr);
	wr_str(&w, rc->orcpt);
	wr_str(&w, rc->last_text);
	wr_str(&w, rc->remote_mta);
	wr_u8(&w, rc->notify);
	wr_u8(&w, rc->hop_dsn < 0 ? HOP_UNKNOWN : (unsigned)rc->hop_dsn);
	wr_u8(&w, rc->hop_mtrk < 0 ? HOP_UNKNOWN : (unsigned)rc->hop_mtrk);
	wr_u8(&w, (rc->dsn_delay_sent ? 1 : 0) | (rc->no_mtrk ? 2 : 0));
	return wr_finish(&w, out, outlen);
}

int
rec_rcpt_decode(const void *p, size_t len, struct qrcpt *rc, const char **why)
{
	struct rd	 r;
	unsigned	 status, code, notify = 0;
	unsigned	 hdsn = HOP_UNKNOWN, hmtrk = HOP_UNKNOWN, flags = 0;
	char		*enh = NULL;
	int		 v2 = 0;

	memset(rc, 0, sizeof(*rc));
	if (rd_header_v(&r, p, len, 'R', &v2) == -1)
		goto fail;
	status = rd_u8(&r);
	rc->attempts = rd_u32(&r);
	rc->next_attempt = (time_t)rd_u64(&r);
	rc->last_attempt = (time_t)rd_u64(&r);
	code = rd_u16(&r);
	enh = rd_str(&r, 0);
	rc->addr = rd_str(&r, 0);
	rc->orcpt = rd_str(&r, 1);
	rc->last_text = rd_str(&r, 1);
	rc->remote_mta = rd_str(&r, 1);
	if (v2) {
		notify = rd_u8(&r);
		hdsn = rd_u8(&r);
		hmtrk = rd_u8(&r);
	}
	if (v2 == 3)
		flags = rd_u8(&r);
	if (rd_end(&r) == -1)
		goto fail;
	if ((notify & ~(DSN_NOTIFY_NEVER | DSN_NOTIFY_SUCCESS |
	    DSN_NOTIFY_FAILURE | DSN_NOTIFY_DELAY)) != 0 ||
	    ((notify & DSN_NOTIFY_NEVER) && notify != DSN_NOTIFY_NEVER)) {
		r.why = "bad NOTIFY bits";
		goto fail;
	}
	if ((hdsn > 1 && hdsn != HOP_UNKNOWN) ||
	    (hmtrk > 1 && hmtrk != HOP_UNKNOWN)) {
		r.why = "bad next-hop flag";
		goto fail;
	}
	if (flags > 3) {
		r.why = "bad recipient flags";
		goto fail;
	}
	rc->dsn_delay_sent = (int)(flags & 1);
	rc->no_mtrk = (flags & 2) != 0;
	rc->notify = notify;
	rc->hop_dsn = hdsn == HOP_UNKNOWN ? -1 : (int)hdsn;
	rc->hop_mtrk = hmtrk == HOP_UNKNOWN ? -1 : (int)hmtrk;
	if (status > RS_EXPANDED) {
		r.why = "bad recipient status";
		goto fail;
	}
	if (code > 999) {
		r.why = "bad reply code";
		goto fail;
	}
	if (strlen(enh) > REC_ENH_MAX) {
		r.why = "enhanced status code too long";
		goto fail;
	}
	memcpy(rc->last_enh, enh, strlen(enh) + 1);
	free(enh);
	rc->status = (enum rcpt_status)status;
	rc->last_code = (int)code;
	rc->busy = 0;
	return 0;
fail:
	free(enh);
	rec_rcpt_clear(rc);
	memset(rc, 0, sizeof(*rc));
	*why = r.why ? r.why : "bad record";
	return -1;
}

/* ---- event ---- */

void
rec_event_clear(struct qevent *e)
{
	free(e->kind);
	free(e->detail);
	e->kind = e->detail = NULL;
}

int
rec_event_encode(const struct qevent *e, unsigned char **out, size_t *outlen)
{
	struct wr	w = { NULL, 0, 0, 0 };

	if (e->kind == NULL) {
		errno = EINVAL;
		return -1;
	}
	wr_u8(&w, REC_VERSION);
	wr_u8(&w, 'E');
	wr_u64(&w, e->time_usec);
	wr_str(&w, e->kind);
	wr_str(&w, e->detail);
	return wr_finish(&w, out, outlen);
}

int
rec_event_decode(const void *p, size_t len, struct qevent *e, const char **why)
{
	struct rd	r;

	e->kind = e->detail = NULL;
	if (rd_header(&r, p, len, 'E') == -1)
		goto fail;
	e->time_usec = rd_u64(&r);
	e->kind = rd_str(&r, 0);
	e->detail = rd_str(&r, 1);
	if (rd_end(&r) == -1)
		goto fail;
	return 0;
fail:
	rec_event_clear(e);
	*why = r.why ? r.why : "bad record";
	return -1;
}

/* ---- meta ---- */

void
rec_meta_u64_encode(uint64_t v, unsigned char out[REC_META_U64_LEN])
{
	out[0] = REC_VERSION;
	be_put64(out + 1, v);
}

/* rec_meta_u64_decode - meta values are u8 version + u64 (no tag: they predate none) */
int
rec_meta_u64_decode(const void *p, size_t len, uint64_t *v, const char **why)
{
	const unsigned char	*b = p;

	if (p == NULL || len != REC_META_U64_LEN) {
		*why = len < REC_META_U64_LEN ? "truncated record" :
		    "trailing bytes after record";
		return -1;
	}
	if (b[0] != REC_VERSION) {
		*why = "unknown record version";
		return -1;
	}
	*v = be_get64(b + 1);
	return 0;
}

/* ---- ENVID index value ---- */

/* rec_envid_encode - the index value of qid with certifier cert; its
 * length, or 0 when qid is invalid or cert is not REC_CERT_LEN octets */
size_t
rec_envid_encode(unsigned char out[REC_ENVID_MAX], const char *qid,
    const char *cert)
{
	size_t	n;

	if (qid == NULL || !qid_valid(qid) || (n = strlen(qid)) > REC_QID_MAX ||
	    cert == NULL || strlen(cert) != REC_CERT_LEN)
		return 0;
	out[0] = REC_ENVID_VERSION;
	memcpy(out + 1, qid, n);
	memcpy(out + 1 + n, cert, REC_CERT_LEN);
	return 1 + n + REC_CERT_LEN;
}

/* rec_envid_decode - qid and certifier of an index value ("" for an
 * old-format value: the bare qid) */
int
rec_envid_decode(const void *p, size_t len, char qid[REC_QID_MAX + 1],
    char cert[REC_CERT_LEN + 1], const char **why)
{
	const unsigned char	*b = p;
	size_t			 n;

	qid[0] = cert[0] = '\0';
	if (p == NULL || len == 0) {
		*why = "truncated record";
		return -1;
	}
	if (b[0] != REC_ENVID_VERSION) {
		/* the old format: the bare qid */
		if (len > REC_QID_MAX || memchr(b, '\0', len) != NULL)
			goto badqid;
		memcpy(qid, b, len);
		qid[len] = '\0';
		if (!qid_valid(qid))
			goto badqid;
		return 0;
	}
	if (len < 1 + 8 + REC_CERT_LEN) {
		*why = "truncated record";
		return -1;
	}
	if ((n = len - 1 - REC_CERT_LEN) > REC_QID_MAX) {
		*why = "trailing bytes after record";
		return -1;
	}
	if (memchr(b + 1, '\0', n) != NULL)
		goto badqid;
	memcpy(qid, b + 1, n);
	qid[n] = '\0';
	if (!qid_valid(qid))
		goto badqid;
	if (memchr(b + 1 + n, '\0', REC_CERT_LEN) != NULL) {
		qid[0] = '\0';
		*why = "NUL in the certifier";
		return -1;
	}
	memcpy(cert, b + 1 + n, REC_CERT_LEN);
	cert[REC_CERT_LEN] = '\0';
	return 0;
badqid:
	qid[0] = '\0';
	*why = "bad queue id";
	return -1;
}

/* ---- keys ---- */

static size_t
qid_len_ok(const char *qid)
{
	size_t	n;

	if (qid == NULL || !qid_valid(qid))
		return 0;
	n = strlen(qid);
	return n <= 32 ? n : 0;
}

size_t
key_msg(unsigned char *out, const char *qid)
{
	size_t	n = qid_len_ok(qid);

	if (n > 0)
		memcpy(out, qid, n);
	return n;
}

size_t
key_rcpt(unsigned char *out, const char *qid, uint16_t idx)
{
	size_t	n = qid_len_ok(qid);

	if (n == 0)
		return 0;
	memcpy(out, qid, n);
	out[n] = (unsigned char)(idx >> 8);
	out[n + 1] = (unsigned char)idx;
	return n + 2;
}

size_t
key_event(unsigned char *out, const char *qid, uint32_t seq)
{
	size_t	n = qid_len_ok(qid);

	if (n == 0)
		return 0;
	memcpy(out, qid, n);
	be_put32(out + n, seq);
	return n + 4;
}

size_t
key_state(unsigned char *out, const char *qid, unsigned state)
{
	size_t	n = qid_len_ok(qid);

	if (n == 0)
		return 0;
	out[0] = (unsigned char)state;
	memcpy(out + 1, qid, n);
	return n + 1;
}

size_t
key_time(unsigned char *out, const char *qid, uint64_t t)
{
	size_t	n = qid_len_ok(qid);

	if (n == 0)
		return 0;
	be_put64(out, t);
	memcpy(out + 8, qid, n);
	return n + 8;
}
