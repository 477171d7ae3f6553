#include "config.h"
/*
 * fuzz_msg.c - a struct qmsg made from fuzzer bytes, for the composer
 * harnesses (fuzz_dsn.c, fuzz_trk_status.c): NUL-separated strings
 * fill the message's text fields and up to FUZZ_RCPTS recipients; the
 * octets of a few more strings give the numbers (states, codes, times).
 */

#include <string.h>

#include "queue/queue.h"
#include "tests/fuzz/fuzz.h"

struct rd {
	const char	*p;
	size_t		 n;
};

/* str - the next string (NULL at the end of the input) */
static char *
str(struct rd *r)
{
	const char	*z;
	size_t		 l;
	char		*s;

	if (r->n == 0)
		return NULL;
	z = memchr(r->p, '\0', r->n);
	l = z != NULL ? (size_t)(z - r->p) : r->n;
	if ((s = strndup(r->p, l)) == NULL)
		return NULL;
	r->p += l;
	r->n -= l;
	if (r->n > 0) {
		r->p++;
		r->n--;
	}
	return s;
}

/* num - the next string's first octets as a number (0 at the end) */
static uint64_t
num(struct rd *r)
{
	char		*s = str(r);
	uint64_t	 v = 0;
	size_t		 i;

	for (i = 0; s != NULL && s[i] != '\0' && i < 8; i++)
		v = v << 8 | (unsigned char)s[i];
	free(s);
	return v;
}

/* opt - a string, or NULL for an empty one */
static char *
opt(struct rd *r)
{
	char	*s = str(r);

	if (s != NULL && s[0] == '\0') {
		free(s);
		s = NULL;
	}
	return s;
}

struct qmsg *
fuzz_msg(const uint8_t *data, size_t size, char **hostname)
{
	struct rd	 r = { (const char *)data, size };
	struct qmsg	*m;
	struct qrcpt	*q;
	char		*s, *enh;
	uint64_t	 v;
	size_t		 i;

	*hostname = opt(&r);
	if ((m = qmsg_new()) == NULL)
		return NULL;
	(void)snprintf(m->qid, sizeof(m->qid), "%s", "0FuzzMsg00000Abc");
	if ((m->sender = str(&r)) == NULL && (m->sender = strdup("")) == NULL)
		goto fail;
	m->envid = opt(&r);
	m->message_id = opt(&r);
	m->state_value = opt(&r);
	m->state_reason = opt(&r);
	m->future_release = opt(&r);
	v = num(&r);
	m->state = (enum msg_state)(v % (MS_OTHER + 1));
	m->ret = (int)(v >> 8) % 3;
	m->arrival = (time_t)(num(&r) % 4102444800u);
	m->state_since = (time_t)(num(&r) % 4102444800u);
	m->hold_until = (time_t)(num(&r) % 4102444800u);
	m->deliver_by = (time_t)(num(&r) % 4102444800u);
	m->expire_base = (time_t)(num(&r) % 4102444800u);
	m->by_flags = (unsigned)num(&r) & BY_ALL;
	for (i = 0; i < FUZZ_RCPTS; i++) {
		if ((s = str(&r)) == NULL)
			break;
		if (qmsg_add_rcpt(m, s) == -1) {
			free(s);
			goto fail;
		}
		free(s);
		q = &m->rcpts[m->nrcpts - 1];
		q->orcpt = opt(&r);
		q->last_text = opt(&r);
		q->remote_mta = opt(&r);
		if ((enh = str(&r)) != NULL) {
			(void)snprintf(q->last_enh, sizeof(q->last_enh), "%s",
			    enh);
			free(enh);
		}
		v = num(&r);
		q->status = (enum rcpt_status)(v % (RS_EXPANDED + 1));
		q->last_code = (int)((v >> 8) % 1000);
		q->attempts = (unsigned)(v >> 24) & 0xff;
		q->notify = (unsigned)(v >> 32) & 0xf;
		q->last_attempt = (time_t)(num(&r) % 4102444800u);
	}
	return m;
fail:
	qmsg_free(m);
	free(*hostname);
	*hostname = NULL;
	return NULL;
}
