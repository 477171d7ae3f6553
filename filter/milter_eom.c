#include "config.h"
/*
 * milter_eom.c - the message part of the milter protocol, after the end
 * of DATA: the header fields (read back from the spool file: one L
 * packet each, the value's first space dropped unless the milter asked
 * for SMFIP_HDR_LEADSPC, folded lines joined by "\n"), EOH, the body in
 * chunks of at most 65535 octets (CRLF, unstuffed, as stored), EOM;
 * the NO* and NR_* steps and SKIP are honoured.  At EOM a milter sends
 * its modifications and quarantine request before its decision; they
 * are kept in order and applied when it continues or accepts, so the
 * next milter sees the changed message (milter-protocol.md 4.3):
 * ADDHEADER, INSHEADER, CHGHEADER (1-based, 0 as 1, an empty value
 * deletes, past the last appends), CHGFROM, ADDRCPT(_PAR), DELRCPT,
 * REPLBODY (line ends made CRLF).  A reject, tempfail or discard drops
 * them.  After the last milter a changed header or body is written to a
 * new body file that replaces the old one before the commit
 * (queue_body_rewrite / queue_body_swap); each modification is an event
 * "milter" on the message naming the milter.
 * Not here: the connections and the other stages (milter.c).
 */

#include <sys/types.h>
#include <sys/stat.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <event2/event.h>

#include "common/log.h"
#include "common/metrics.h"
#include "filter/milter.h"
#include "filter/milter_int.h"
#include "queue/queue.h"

#define HDR_READ_MAX	(1024 * 1024)	/* header section read back */

/* mbuf_add - append to a growing buffer; -1 on ENOMEM */
static int
mbuf_add(struct mbuf *b, const void *p, size_t n)
{
	size_t	 ncap;
	char	*np;

	if (b->len + n > b->cap) {
		ncap = b->cap > 0 ? b->cap : 256;
		while (ncap < b->len + n)
			ncap *= 2;
		if ((np = realloc(b->p, ncap)) == NULL)
			return -1;
		b->p = np;
		b->cap = ncap;
	}
	memcpy(b->p + b->len, p, n);
	b->len += n;
	return 0;
}

/* hdr_free - one header field's strings */
static void
hdr_free(struct mhdr *h)
{
	free(h->name);
	free(h->value);
	free(h->raw);
}

/* mconn_mods_free - forget c's pending modifications */
void
mconn_mods_free(struct mconn *c)
{
	size_t i;

	for (i = 0; i < c->nmods; i++)
		free(c->mods[i].data);
	free(c->mods);
	c->mods = NULL;
	c->nmods = 0;
	c->modbytes = 0;
}

/* eom_clear - the message state of ms, freed */
void
eom_clear(struct milter_sess *ms)
{
	size_t i;

	for (i = 0; i < ms->nhdrs; i++)
		hdr_free(&ms->hdrs[i]);
	free(ms->hdrs);
	ms->hdrs = NULL;
	ms->nhdrs = 0;
	free(ms->newbody.p);
	memset(&ms->newbody, 0, sizeof(ms->newbody));
	ms->replaced = ms->hdr_changed = 0;
	if (ms->rfd >= 0)
		close(ms->rfd);
	ms->rfd = -1;
	ms->m = NULL;
	ms->fdp = NULL;
}

/* hdr_value - the value of a stored field: after the colon, without
 * the last CRLF, CRLF inside as "\n" */
static char *
hdr_value(const char *raw, size_t rawlen, size_t colon)
{
	char	*v;
	size_t	 i, o = 0;

	if ((v = malloc(rawlen + 1)) == NULL)
		return NULL;
	for (i = colon + 1; i < rawlen; i++) {
		if (raw[i] == '\r' && i + 1 < rawlen && raw[i + 1] == '\n')
			continue;
		v[o++] = raw[i];
	}
	while (o > 0 && v[o - 1] == '\n')
		o--;
	v[o] = '\0';
	return v;
}

/* hdr_push - append a stored field raw[0..len) (name ends at colon) */
static int
hdr_push(struct milter_sess *ms, const char *raw, size_t len, size_t namelen,
    size_t colon)
{
	struct mhdr	*nh, *h;

	if ((nh = reallocarray(ms->hdrs, ms->nhdrs + 1, sizeof(*nh))) == NULL)
		return -1;
	ms->hdrs = nh;
	h = &ms->hdrs[ms->nhdrs];
	memset(h, 0, sizeof(*h));
	if ((h->name = strndup(raw, namelen)) == NULL ||
	    (h->raw = malloc(len)) == NULL ||
	    (h->value = hdr_value(raw, len, colon)) == NULL) {
		hdr_free(h);
		return -1;
	}
	memcpy(h->raw, raw, len);
	h->rawlen = len;
	ms->nhdrs++;
	return 0;
}

/*
 * eom_prepare - open the body file and split its header section into
 * fields (a line that is not a field, or one past HDR_READ_MAX, begins
 * the body); -1 on error
 */
int
eom_prepare(struct milter_sess *ms)
{
	struct stat	 st;
	char		*buf = NULL, *line, *e;
	size_t		 n = 0, want, pos = 0, ll, i, j, start = 0, namelen = 0,
			 colon = 0;
	ssize_t		 r;
	int		 open_field = 0;

	if ((ms->rfd = queue_body_read(ms->m->qid)) == -1 ||
	    fstat(ms->rfd, &st) == -1)
		return -1;
	ms->fsize = st.st_size;
	want = (size_t)st.st_size < HDR_READ_MAX ? (size_t)st.st_size :
	    HDR_READ_MAX;
	if ((buf = malloc(want + 1)) == NULL)
		return -1;
	while (n < want) {
		r = pread(ms->rfd, buf + n, want - n, (off_t)n);
		if (r == -1 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		n += (size_t)r;
	}
	ms->has_sep = 0;
	ms->body_off = -1;
	while (pos < n) {
		line = buf + pos;
		if ((e = memmem(line, n - pos, "\r\n", 2)) == NULL)
			break;
		ll = (size_t)(e - line);
		if (ll > 0 && (line[0] == ' ' || line[0] == '\t') &&
		    open_field) {
			pos += ll + 2;		/* a folded line of the field */
			continue;
		}
		if (open_field && hdr_push(ms, buf + start, pos - start,
		    namelen, colon) == -1)
			goto fail;
		open_field = 0;
		if (ll == 0) {
			ms->has_sep = 1;
			ms->body_off = (off_t)(pos + 2);
			break;
		}
		for (i = 0; i < ll && (unsigned char)line[i] > 32 &&
		    (unsigned char)line[i] < 127 && line[i] != ':'; i++)
			;
		for (j = i; j < ll && (line[j] == ' ' || line[j] == '\t'); j++)
			;
		if (i == 0 || j >= ll || line[j] != ':') {
			ms->body_off = (off_t)pos;	/* not a field */
			break;
		}
		open_field = 1;
		start = pos;
		namelen = i;
		colon = j;
		pos += ll + 2;
	}
	if (ms->body_off == -1) {
		/* the end of what was read: a field at the very end of the
		 * file is one; anything else is body */
		if (open_field && pos == n && (size_t)ms->fsize == n) {
			if (hdr_push(ms, buf + start, pos - start, namelen,
			    colon) == -1)
				goto fail;
			ms->body_off = (off_t)n;
		} else
			ms->body_off = (off_t)(open_field ? start : pos);
	}
	free(buf);
	return 0;
fail:
	free(buf);
	return -1;
}

/* body_chunk - the next body octets for the milter (<= len); -1 error */
static ssize_t
body_chunk(struct milter_sess *ms, char *out, size_t len)
{
	uint64_t	left;
	ssize_t		r;

	if (ms->replaced) {
		left = ms->newbody.len - ms->boff;
		if (left < len)
			len = (size_t)left;
		memcpy(out, ms->newbody.p + ms->boff, len);
		return (ssize_t)len;
	}
	left = (uint64_t)(ms->fsize - ms->body_off) - ms->boff;
	if (left < len)
		len = (size_t)left;
	if (len == 0)
		return 0;
	do
		r = pread(ms->rfd, out, len, ms->body_off + (off_t)ms->boff);
	while (r == -1 && errno == EINTR);
	return r;
}

/* send_header - one L packet (name, value) to c */
static void
send_header(struct milter_sess *ms, struct mconn *c, const struct mhdr *h)
{
	const char	*v = h->value;
	unsigned char	*p;
	size_t		 nl, vl;

	if (!(c->proto & SMFIP_HDR_LEADSPC) && v[0] == ' ')
		v++;
	nl = strlen(h->name);
	vl = strlen(v);
	if (nl + vl + 2 > MILTER_CHUNK_SIZE) {
		log_warnx("session=%s milter=%s header field %s too long for "
		    "a packet: not sent", ms->sid, c->name, h->name);
		return;
	}
	if ((p = malloc(nl + vl + 2)) == NULL) {
		mconn_fail(c, "out of memory");
		return;
	}
	memcpy(p, h->name, nl + 1);
	memcpy(p + nl + 1, v, vl + 1);
	mconn_send(c, 'L', p, nl + vl + 2);
	free(p);
}

/* next_milter - the message is done with the current milter */
static void
next_milter(struct milter_sess *ms)
{
	if (ms->cur < ms->n) {
		mconn_mods_free(&ms->c[ms->cur]);
		ms->c[ms->cur].bskip = 0;
	}
	ms->cur++;
	ms->phase = PH_HDR;
	ms->hi = 0;
	ms->boff = 0;
}

/* write_all - n octets to fd; -1 on error */
static int
write_all(int fd, const char *p, size_t n)
{
	ssize_t w;

	while (n > 0) {
		w = write(fd, p, n);
		if (w == -1 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* eightbit - any octet above 127? */
static int
eightbit(const char *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if ((unsigned char)p[i] > 127)
			return 1;
	return 0;
}

/* rewrite - the changed message into a new body file, swapped in */
static int
rewrite(struct milter_sess *ms)
{
	struct qmsg	*m = ms->m;
	static char	 buf[MILTER_CHUNK_SIZE];
	uint64_t	 size = 0;
	off_t		 off;
	ssize_t		 r;
	size_t		 i;
	int		 fd, hi = 0;

	if ((fd = queue_body_rewrite(m->qid)) == -1)
		return -1;
	for (i = 0; i < ms->nhdrs; i++) {
		if (write_all(fd, ms->hdrs[i].raw, ms->hdrs[i].rawlen) == -1)
			goto fail;
		size += ms->hdrs[i].rawlen;
		hi |= eightbit(ms->hdrs[i].raw, ms->hdrs[i].rawlen);
	}
	if (ms->has_sep || (ms->replaced && ms->newbody.len > 0)) {
		if (write_all(fd, "\r\n", 2) == -1)
			goto fail;
		size += 2;
	}
	if (ms->replaced) {
		if (write_all(fd, ms->newbody.p, ms->newbody.len) == -1)
			goto fail;
		size += ms->newbody.len;
		hi |= eightbit(ms->newbody.p, ms->newbody.len);
	} else {
		for (off = ms->body_off; off < ms->fsize; off += r) {
			r = pread(ms->rfd, buf, sizeof(buf), off);
			if (r == -1 && errno == EINTR) {
				r = 0;
				continue;
			}
			if (r <= 0 || write_all(fd, buf, (size_t)r) == -1)
				goto fail;
			size += (uint64_t)r;
		}
	}
	if (queue_body_swap(m->qid, fd, ms->fdp) == -1)
		goto fail;
	ms->res.rewritten = 1;
	m->size = size;
	if (hi)
		m->body_8bit = 1;
	return 0;
fail:
	log_warn("session=%s qid=%s rewrite of the body file", ms->sid,
	    m->qid);
	queue_body_rewrite_abort(m->qid, fd);
	return -1;
}

/* eom_complete - every milter has had the message */
static void
eom_complete(struct milter_sess *ms)
{
	if (ms->discard) {		/* asked at MAIL, RCPT or DATA */
		ms->res.verdict = MILTER_DISCARD;
		ms->res.action = "discard";
		(void)snprintf(ms->res.milter, sizeof(ms->res.milter), "%s",
		    ms->discard_by);
	} else if (ms->m->nrcpts == 0) {
		log_info("session=%s qid=%s every recipient removed by the "
		    "milters: discarded", ms->sid, ms->m->qid);
		ms->res.verdict = MILTER_DISCARD;
		ms->res.action = "discard";
	} else if ((ms->hdr_changed || ms->replaced) && rewrite(ms) == -1) {
		ms_refuse(ms, NULL, 451, 4, 3, 0, "Local error in processing",
		    "error");
		return;
	}
	ms_finish(ms);
}

/* eom_step - the message to the milters from ms->cur on */
void
eom_step(struct milter_sess *ms)
{
	static char	 chunk[MILTER_CHUNK_SIZE];
	struct mconn	*c;
	ssize_t		 n;

	if (ms->op != 'E' || evtimer_pending(ms->doneev, NULL))
		return;
	ms->stepping++;
	for (;;) {
		if (ms->op != 'E' || evtimer_pending(ms->doneev, NULL))
			break;
		if (ms->cur >= ms->n) {
			eom_complete(ms);
			break;
		}
		c = &ms->c[ms->cur];
		if (c->st == MC_DEAD) {
			if (ms_default(ms, c))
				break;
			next_milter(ms);
			continue;
		}
		if (c->skip_conn || c->skip_msg || ms->discard) {
			next_milter(ms);
			continue;
		}
		if (c->st != MC_READY)
			break;		/* resumed when it is ready or dead */
		switch (ms->phase) {
		case PH_HDR:
			if ((c->proto & SMFIP_NOHDRS) || ms->hi >= ms->nhdrs) {
				ms->phase = PH_EOH;
				continue;
			}
			if (ms->hi == 0)
				mconn_send_macros(c, 'L');
			send_header(ms, c, &ms->hdrs[ms->hi++]);
			if (c->st == MC_DEAD || (c->proto & SMFIP_NR_HDR))
				continue;
			mconn_wait(c, ms->tcontent);
			goto out;
		case PH_EOH:
			mconn_send_macros(c, 'N');
			ms->phase = PH_BODY;
			ms->boff = 0;
			if (c->proto & SMFIP_NOEOH)
				continue;
			mconn_send(c, 'N', NULL, 0);
			if (c->st == MC_DEAD || (c->proto & SMFIP_NR_EOH))
				continue;
			mconn_wait(c, ms->tcontent);
			goto out;
		case PH_BODY:
			if ((c->proto & SMFIP_NOBODY) || c->bskip) {
				ms->phase = PH_EOM;
				continue;
			}
			if ((n = body_chunk(ms, chunk, sizeof(chunk))) < 0) {
				log_warn("session=%s qid=%s read body file",
				    ms->sid, ms->m->qid);
				ms_refuse(ms, NULL, 451, 4, 3, 0,
				    "Local error in processing", "error");
				goto out;
			}
			if (n == 0) {
				ms->phase = PH_EOM;
				continue;
			}
			if (ms->boff == 0)
				mconn_send_macros(c, 'B');
			mconn_send(c, 'B', chunk, (size_t)n);
			ms->boff += (uint64_t)n;
			if (c->st == MC_DEAD || (c->proto & SMFIP_NR_BODY))
				continue;
			mconn_wait(c, ms->tcontent);
			goto out;
		case PH_EOM:
			mconn_send_macros(c, 'E');
			mconn_send(c, 'E', NULL, 0);
			ms->phase = PH_FINAL;
			if (c->st == MC_DEAD)
				continue;
			c->in_msg = 0;
			mconn_wait(c, ms->tcontent);
			goto out;
		case PH_FINAL:
			goto out;
		}
	}
out:
	ms->stepping--;
}

/* mod_flag - the action flag a modification needs, 0 if none known */
static uint32_t
mod_flag(char cmd)
{
	switch (cmd) {
	case 'h': case 'i': return SMFIF_ADDHDRS;
	case 'm': return SMFIF_CHGHDRS;
	case 'e': return SMFIF_CHGFROM;
	case '+': return SMFIF_ADDRCPT;
	case '2': return SMFIF_ADDRCPT_PAR;
	case '-': return SMFIF_DELRCPT;
	case 'b': return SMFIF_CHGBODY;
	default: return 0;
	}
}

/* field_name_ok - a header field name: 1..76 printable octets, no ':' */
static int
field_name_ok(const char *n)
{
	size_t i;

	for (i = 0; n[i] != '\0'; i++)
		if ((unsigned char)n[i] <= 32 || (unsigned char)n[i] >= 127 ||
		    n[i] == ':')
			return 0;
	return i > 0 && i <= 76;
}

/*
 * hdr_make - a field from a milter's name and value: the value gets
 * one space in front unless the milter uses HDR_LEADSPC; line ends
 * become CRLF and a line that does not begin with white space gets a
 * tab (the field stays one field); -1 on ENOMEM
 */
static int
hdr_make(struct mhdr *h, const char *name, const char *value, int leadspc)
{
	struct mbuf	 raw = { NULL, 0, 0 }, val = { NULL, 0, 0 };
	const char	*p;

	memset(h, 0, sizeof(*h));
	if (mbuf_add(&raw, name, strlen(name)) == -1 ||
	    mbuf_add(&raw, ":", 1) == -1 ||
	    (!leadspc && (mbuf_add(&raw, " ", 1) == -1 ||
	    mbuf_add(&val, " ", 1) == -1)))
		goto fail;
	for (p = value; *p != '\0'; p++) {
		if (*p == '\r')
			continue;
		if (*p == '\n') {
			if (mbuf_add(&raw, "\r\n", 2) == -1 ||
			    mbuf_add(&val, "\n", 1) == -1)
				goto fail;
			if (p[1] != ' ' && p[1] != '\t' && (mbuf_add(&raw,
			    "\t", 1) == -1 || mbuf_add(&val, "\t", 1) == -1))
				goto fail;
			continue;
		}
		if (mbuf_add(&raw, p, 1) == -1 || mbuf_add(&val, p, 1) == -1)
			goto fail;
	}
	if (mbuf_add(&raw, "\r\n", 2) == -1 || mbuf_add(&val, "", 1) == -1 ||
	    (h->name = strdup(name)) == NULL)
		goto fail;
	h->raw = raw.p;
	h->rawlen = raw.len;
	h->value = val.p;
	return 0;
fail:
	free(raw.p);
	free(val.p);
	free(h->name);
	h->name = NULL;
	return -1;
}

/* hdr_insert - a new field at position pos (0 = first) */
static int
hdr_insert(struct milter_sess *ms, size_t pos, const char *name,
    const char *value, int leadspc)
{
	struct mhdr	h, *nh;

	if (hdr_make(&h, name, value, leadspc) == -1)
		return -1;
	if ((nh = reallocarray(ms->hdrs, ms->nhdrs + 1, sizeof(*nh))) ==
	    NULL) {
		hdr_free(&h);
		return -1;
	}
	ms->hdrs = nh;
	if (pos > ms->nhdrs)
		pos = ms->nhdrs;
	memmove(&ms->hdrs[pos + 1], &ms->hdrs[pos],
	    (ms->nhdrs - pos) * sizeof(*nh));
	ms->hdrs[pos] = h;
	ms->nhdrs++;
	ms->hdr_changed = 1;
	return 0;
}

/* mod_strings - the NUL-terminated strings of a modification from off:
 * up to 2 of them; how many */
static int
mod_strings(const struct mmod *md, size_t off, const char **s1,
    const char **s2)
{
	*s1 = *s2 = NULL;
	if (off >= md->len)
		return 0;
	*s1 = md->data + off;
	off += strlen(*s1) + 1;
	if (off >= md->len)
		return 1;
	*s2 = md->data + off;
	return 2;
}

/* strip_angle - "<a@b>" as "a@b", into out */
static void
strip_angle(const char *in, char *out, size_t outlen)
{
	size_t n;

	while (*in == ' ')
		in++;
	n = strlen(in);
	if (n >= 2 && in[0] == '<' && in[n - 1] == '>') {
		in++;
		n -= 2;
	}
	if (n >= outlen)
		n = outlen - 1;
	memcpy(out, in, n);
	out[n] = '\0';
}

/* mod_event - the event and log line of one modification */
static int
mod_event(struct milter_sess *ms, struct mconn *c, const char *action,
    const char *what, const char *arg)
{
	char	detail[1024], esc[600];

	log_escape(esc, sizeof(esc), arg != NULL ? arg : "",
	    arg != NULL ? strlen(arg) : 0);
	(void)snprintf(detail, sizeof(detail), "milter=%s action=%s%s%s%s",
	    c->name, action, what != NULL ? " " : "", what != NULL ? what : "",
	    esc);
	log_info("session=%s qid=%s %s", ms->sid, ms->m->qid, detail);
	metrics_milter_action(c->name, "modify");
	return qmsg_add_event(ms->m, "milter", detail);
}

/* body_add - replacement body octets, line ends made CRLF */
static int
body_add(struct milter_sess *ms, const char *p, size_t n)
{
	size_t	i;
	char	last;

	for (i = 0; i < n; i++) {
		last = ms->newbody.len > 0 ? ms->newbody.p[ms->newbody.len - 1] :
		    '\n';
		if (p[i] == '\n' && last != '\r') {
			if (mbuf_add(&ms->newbody, "\r\n", 2) == -1)
				return -1;
			continue;
		}
		if (last == '\r' && p[i] != '\n' &&
		    mbuf_add(&ms->newbody, "\n", 1) == -1)
			return -1;
		if (mbuf_add(&ms->newbody, p + i, 1) == -1)
			return -1;
	}
	return 0;
}

/* rcpt_remove - drop recipient i of m */
static void
rcpt_remove(struct qmsg *m, size_t i)
{
	struct qrcpt *r = &m->rcpts[i];

	free(r->addr);
	free(r->orcpt);
	free(r->last_text);
	free(r->remote_mta);
	memmove(&m->rcpts[i], &m->rcpts[i + 1],
	    (m->nrcpts - i - 1) * sizeof(*r));
	m->nrcpts--;
}

/* apply_mods - c's modifications, in the order received; -1 on error */
static int
apply_mods(struct milter_sess *ms, struct mconn *c)
{
	struct qmsg	*m = ms->m;
	struct mmod	*md;
	const char	*a, *b;
	char		 addr[1024], what[600], *ns;
	size_t		 i, k, nth, seen;
	uint32_t	 idx;
	int		 lead = (c->proto & SMFIP_HDR_LEADSPC) != 0, body = 0,
			 found;

	for (i = 0; i < c->nmods; i++) {
		md = &c->mods[i];
		idx = 0;
		if ((md->cmd == 'i' || md->cmd == 'm') && md->len >= 4)
			idx = (uint32_t)(unsigned char)md->data[0] << 24 |
			    (uint32_t)(unsigned char)md->data[1] << 16 |
			    (uint32_t)(unsigned char)md->data[2] << 8 |
			    (uint32_t)(unsigned char)md->data[3];
		switch (md->cmd) {
		case 'h':
		case 'i':
		case 'm':
			if (mod_strings(md, md->cmd == 'h' ? 0 : 4, &a, &b) != 2 ||
			    !field_name_ok(a)) {
				log_warnx("session=%s milter=%s bad header "
				    "modification ignored", ms->sid, c->name);
				continue;
			}
			(void)snprintf(what, sizeof(what), "field=%s", a);
			if (md->cmd == 'h') {
				if (hdr_insert(ms, ms->nhdrs, a, b, lead) == -1 ||
				    mod_event(ms, c, "add-header", what, NULL) == -1)
					return -1;
				break;
			}
			if (md->cmd == 'i') {
				/* position counts our own Received field */
				if (hdr_insert(ms, idx > 0 ? idx - 1 : 0, a, b,
				    lead) == -1 || mod_event(ms, c,
				    "insert-header", what, NULL) == -1)
					return -1;
				break;
			}
			nth = idx == 0 ? 1 : idx;
			found = 0;
			for (k = 0, seen = 0; k < ms->nhdrs; k++)
				if (strcasecmp(ms->hdrs[k].name, a) == 0 &&
				    ++seen == nth) {
					found = 1;
					break;
				}
			if (*b == '\0') {	/* an empty value deletes */
				if (!found)
					break;
				hdr_free(&ms->hdrs[k]);
				memmove(&ms->hdrs[k], &ms->hdrs[k + 1],
				    (ms->nhdrs - k - 1) * sizeof(*ms->hdrs));
				ms->nhdrs--;
				ms->hdr_changed = 1;
				if (mod_event(ms, c, "delete-header", what,
				    NULL) == -1)
					return -1;
				break;
			}
			if (!found) {
				if (hdr_insert(ms, ms->nhdrs, a, b, lead) == -1 ||
				    mod_event(ms, c, "add-header", what, NULL) == -1)
					return -1;
				break;
			}
			{
				struct mhdr h;

				if (hdr_make(&h, a, b, lead) == -1)
					return -1;
				hdr_free(&ms->hdrs[k]);
				ms->hdrs[k] = h;
			}
			ms->hdr_changed = 1;
			if (mod_event(ms, c, "change-header", what, NULL) == -1)
				return -1;
			break;
		case 'e':
			if (mod_strings(md, 0, &a, &b) < 1)
				continue;
			strip_angle(a, addr, sizeof(addr));
			if ((ns = strdup(addr)) == NULL)
				return -1;
			free(m->sender);
			m->sender = ns;
			if (mod_event(ms, c, "change-from", "from=", addr) == -1)
				return -1;
			break;
		case '+':
		case '2':
			if (mod_strings(md, 0, &a, &b) < 1)
				continue;
			strip_angle(a, addr, sizeof(addr));
			if (addr[0] == '\0' || strchr(addr, '@') == NULL) {
				log_warnx("session=%s milter=%s bad recipient "
				    "ignored", ms->sid, c->name);
				continue;
			}
			for (k = 0; k < m->nrcpts; k++)
				if (strcasecmp(m->rcpts[k].addr, addr) == 0)
					break;
			if (k == m->nrcpts && qmsg_add_rcpt(m, addr) == -1)
				return -1;
			if (mod_event(ms, c, "add-rcpt", "rcpt=", addr) == -1)
				return -1;
			break;
		case '-':
			if (mod_strings(md, 0, &a, &b) < 1)
				continue;
			strip_angle(a, addr, sizeof(addr));
			found = 0;
			for (k = 0; k < m->nrcpts; )
				if (m->rcpts[k].status != RS_EXPANDED &&
				    strcasecmp(m->rcpts[k].addr, addr) == 0) {
					rcpt_remove(m, k);
					found = 1;
				} else
					k++;
			if (found && mod_event(ms, c, "del-rcpt", "rcpt=",
			    addr) == -1)
				return -1;
			break;
		case 'b':
			if (!body) {		/* this milter's first chunk */
				ms->newbody.len = 0;
				body = 1;
				ms->replaced = 1;
			}
			if (ms->newbody.len + md->len > ms->max_size ||
			    body_add(ms, md->data, md->len) == -1)
				return -1;
			break;
		}
	}
	if (body) {
		/* the body ends with a line end */
		if (ms->newbody.len > 0 &&
		    ms->newbody.p[ms->newbody.len - 1] == '\r' &&
		    mbuf_add(&ms->newbody, "\n", 1) == -1)
			return -1;
		if (ms->newbody.len > 0 &&
		    ms->newbody.p[ms->newbody.len - 1] != '\n' &&
		    mbuf_add(&ms->newbody, "\r\n", 2) == -1)
			return -1;
		(void)snprintf(what, sizeof(what), "size=%zu",
		    ms->newbody.len);
		if (mod_event(ms, c, "replace-body", what, NULL) == -1)
			return -1;
	}
	return 0;
}

/* eom_reply - a packet from the milter being asked about the message */
void
eom_reply(struct milter_sess *ms, struct mconn *c, char cmd,
    const unsigned char *data, size_t len)
{
	struct mmod	*nm;
	uint32_t	 flag;

	if (ms->phase == PH_FINAL && cmd == 'q') {
		if (!(c->actions & SMFIF_QUARANTINE)) {
			mconn_fail(c, "quarantine not negotiated");
			return;
		}
		ms->res.quarantine = 1;
		(void)snprintf(ms->res.qreason, sizeof(ms->res.qreason), "%s",
		    (const char *)data);
		(void)snprintf(ms->res.qmilter, sizeof(ms->res.qmilter), "%s",
		    c->name);
		log_info("session=%s milter=%s stage=eom action=quarantine",
		    ms->sid, c->name);
		metrics_milter_action(c->name, "quarantine");
		return;
	}
	if ((flag = mod_flag(cmd)) != 0) {
		if (ms->phase != PH_FINAL || !(c->actions & flag)) {
			mconn_fail(c, "modification not negotiated or out of "
			    "turn");
			return;
		}
		/* a replaced body may reach max_size; headers and the rest
		 * get a MiB more */
		if ((c->modbytes += len) > ms->max_size + MILTER_PKT_MAX) {
			mconn_fail(c, "modifications too large");
			return;
		}
		if ((nm = reallocarray(c->mods, c->nmods + 1,
		    sizeof(*nm))) == NULL) {
			mconn_fail(c, "out of memory");
			return;
		}
		c->mods = nm;
		nm = &c->mods[c->nmods];
		if ((nm->data = malloc(len + 1)) == NULL) {
			mconn_fail(c, "out of memory");
			return;
		}
		memcpy(nm->data, data, len);
		nm->data[len] = '\0';
		nm->len = len;
		nm->cmd = cmd;
		c->nmods++;
		return;
	}
	evtimer_del(c->timer);
	c->waiting = 0;
	switch (cmd) {
	case 'c':
	case 'a':
		if (ms->phase == PH_FINAL) {
			if (apply_mods(ms, c) == -1) {
				ms_refuse(ms, NULL, 451, 4, 3, 0,
				    "Local error in processing", "error");
				return;
			}
			next_milter(ms);
		} else if (cmd == 'a') {
			log_info("session=%s milter=%s stage=eom action=accept",
			    ms->sid, c->name);
			c->skip_msg = 1;
			next_milter(ms);
		}
		eom_step(ms);
		return;
	case 's':
		if (ms->phase != PH_BODY || ms->boff == 0) {
			mconn_fail(c, "skip out of turn");
			return;
		}
		c->bskip = 1;
		eom_step(ms);
		return;
	default:
		if (ms_decide(ms, c, cmd, data, len) == 0)
			eom_step(ms);	/* cannot happen: c and a above */
		return;
	}
}
