#include "config.h"
/*
 * smtpd_bdat.c - RFC 3030 CHUNKING on the server: the BDAT command and
 * the counted read of its chunk.
 * Entry points: smtpd_bdat_cmd (the BDAT row of smtpd_cmd.c's table),
 *       smtpd_bdat_input (smtpd_process in SMTPD_BDAT), smtpd_bdat_skip,
 *       smtpd_bdat_reset.
 * Rule: exactly one reply per BDAT, sent only after all of its octets
 *       are consumed; the octets are never read as commands.  So the
 *       count is parsed first (a bad count: 521 5.5.4 and close, the
 *       stream cannot be followed), then every check decides an error
 *       that is answered after the chunk has been read and dropped.
 * Content: the first chunk opens the body file (smtpd_data_begin: the
 *       DATA stage of the milters, the DKIM signer); each chunk goes
 *       through smtpd_data_scan with t->bdat set (no dot handling, the
 *       same header analysis, size limit and DKIM feed); a chunk
 *       without LAST is answered "250 2.0.0 N octets received";
 *       BDAT ... LAST ends like the end of DATA (smtpd_data_end: policy,
 *       milters, DKIM, commit; its 250 names the queue id once durable).
 * Errors: no MAIL 503 5.5.1; no recipient 554 5.5.1; the running total
 *       of chunk sizes over max_size 552 5.3.4 (checked before reading:
 *       nothing of it is stored); after a failed BDAT (size, storage,
 *       DATA after BDAT) every BDAT gets 503 5.5.1 until RSET, MAIL or
 *       EHLO.  A milter refusing the first BDAT (DATA stage) is answered
 *       when it decides, and the chunk is dropped before the next
 *       command (s->bdat_skip).  BDAT 0 without LAST counts as junk.
 * Deadlines: smtpd_timeout per idle wait and smtpd_data_min_rate
 *       within each chunk (smtpd_session.c, SMTPD_CONTENT_STATES).
 * Standards: RFC 3030 2-4, RFC 2920 (pipelined BDATs), RFC 1870.
 */

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>

#include "common/cfg.h"
#include "common/log.h"
#include "common/util.h"
#include "queue/queue.h"
#include "smtpd/smtpd_session.h"

/* errors answered after the chunk (s->bdat_err) */
enum {
	BDAT_E_NONE = 0,
	BDAT_E_HELO,		/* before EHLO/HELO */
	BDAT_E_MILTER,		/* a milter refusal at CONNECT/HELO */
	BDAT_E_AUTH,		/* submission before AUTH */
	BDAT_E_FAILED,		/* an earlier BDAT failed */
	BDAT_E_NOMAIL,
	BDAT_E_NORCPT,
	BDAT_E_SIZE,		/* ends the transaction */
	BDAT_E_LOCAL,		/* ends the transaction */
	BDAT_E_JUNK		/* too many BDAT 0: 421 */
};

/* the replies of those errors, indexed by BDAT_E_* */
static const struct {
	int		 code, cls, subj, det;
	const char	*text;
} bdat_errors[] = {
	[BDAT_E_HELO] =	  { 503, 5, 5, 1, "Error: send HELO/EHLO first" },
	[BDAT_E_AUTH] =	  { 530, 5, 7, 0, "Authentication required" },
	[BDAT_E_FAILED] = { 503, 5, 5, 1,
	    "Error: an earlier BDAT failed, send RSET" },
	[BDAT_E_NOMAIL] = { 503, 5, 5, 1, "Error: need MAIL command" },
	[BDAT_E_NORCPT] = { 554, 5, 5, 1, "Error: no valid recipients" },
	[BDAT_E_SIZE] =	  { 552, 5, 3, 4,
	    "Message size exceeds fixed maximum message size" },
	[BDAT_E_LOCAL] =  { 451, 4, 3, 0, "Local error in processing" },
};

/* bdat_parse - "chunk-size [SP LAST]" (RFC 3030 2): 0, or -1 when the
 * count is missing, not digits, too large for 64 bits, or junk follows */
static int
bdat_parse(const char *arg, size_t len, uint64_t *size, int *last)
{
	uint64_t	v = 0;
	size_t		i = 0;

	if (len == 0 || arg[0] < '0' || arg[0] > '9')
		return -1;
	for (; i < len && arg[i] >= '0' && arg[i] <= '9'; i++) {
		if (v > (UINT64_MAX - (uint64_t)(arg[i] - '0')) / 10)
			return -1;
		v = v * 10 + (uint64_t)(arg[i] - '0');
	}
	*size = v;
	*last = 0;
	if (i == len)
		return 0;
	if (arg[i] != ' ')
		return -1;
	while (i < len && arg[i] == ' ')
		i++;
	if (len - i == 4 && strncasecmp(arg + i, "LAST", 4) == 0) {
		*last = 1;
		return 0;
	}
	return -1;
}

/* smtpd_bdat_reset - RSET, MAIL, EHLO: an earlier BDAT error is over */
void
smtpd_bdat_reset(struct smtpd_session *s)
{
	s->bdat_failed = 0;
}

/* bdat_check - the error this BDAT gets after its octets, or BDAT_E_NONE
 * (no side effects) */
static int
bdat_check(struct smtpd_session *s, uint64_t size, int last)
{
	struct smtpd_txn *t = s->txn;

	if (s->state == SMTPD_GREETING)
		return BDAT_E_HELO;
	if (s->milter_refusal != NULL)
		return BDAT_E_MILTER;
	if (s->submission && s->auth_user == NULL)
		return BDAT_E_AUTH;
	if (s->bdat_failed)
		return BDAT_E_FAILED;
	if (t == NULL)
		return BDAT_E_NOMAIL;
	if (s->state != SMTPD_RCPT)
		return BDAT_E_NORCPT;
	if (size > smtpd_cfg->max_size ||
	    t->bdat_total > smtpd_cfg->max_size - size)
		return BDAT_E_SIZE;
	if (size == 0 && !last && s->junk + 1 > SMTPD_JUNK_LIMIT)
		return BDAT_E_JUNK;
	return BDAT_E_NONE;
}

/* smtpd_bdat_cmd - BDAT <size> [LAST]: check, then read the chunk
 * (smtpd_bdat_input answers); CMD_* values of smtpd_cmd.c */
int
smtpd_bdat_cmd(struct smtpd_session *s, const char *arg, size_t len)
{
	struct smtpd_txn	*t = s->txn;
	uint64_t		 size;
	int			 last, err;

	if (bdat_parse(arg, len, &size, &last) == -1) {
		/* the count cannot be trusted: the stream is lost */
		smtpd_reply(s, 521, 5, 5, 4, "Syntax: BDAT count [LAST]");
		smtpd_txn_free(s);
		smtpd_close_after_flush(s);
		return -1;
	}
	err = bdat_check(s, size, last);
	if (err == BDAT_E_JUNK) {
		s->bdat_skip = size;
		smtpd_reply(s, 421, 4, 7, 0, "%s Error: too many junk commands",
		    smtpd_cfg->hostname);
		return -1;
	}
	if (size == 0 && !last)
		s->junk++;		/* an empty chunk without LAST */
	if (err == BDAT_E_NONE && !t->bdat) {
		/* the first chunk: the DATA stage, then the body file */
		switch (smtpd_milter_gate(s, 'T', arg, len, NULL)) {
		case 1:
			s->bdat_skip = size;	/* dropped if refused */
			return 1;
		case -1:
			s->bdat_skip = size;	/* answered 451 */
			return -1;
		}
		t->bdat = 1;
		if (smtpd_data_begin(s) == -1)
			err = BDAT_E_LOCAL;
	}
	s->bdat_skip = 0;
	s->bdat_left = s->bdat_size = size;
	s->bdat_last = last;
	s->bdat_err = err;
	if (t != NULL) {		/* smtpd_data_min_rate per chunk */
		t->data_start = mono_ms();
		t->received = 0;
		if (err == BDAT_E_NONE)
			t->bdat_total += size;
	}
	s->bdat_back = s->state;
	smtpd_set_state(s, SMTPD_BDAT);
	return 1;			/* answered after the octets */
}

/* bdat_answer_error - the chunk is read: its error reply */
static void
bdat_answer_error(struct smtpd_session *s)
{
	int e = s->bdat_err;

	s->bdat_err = BDAT_E_NONE;
	if (e == BDAT_E_SIZE || e == BDAT_E_LOCAL) {
		smtpd_txn_free(s);	/* the partial body file goes */
		s->bdat_failed = 1;
		smtpd_set_state(s, SMTPD_READY);
	} else
		smtpd_set_state(s, s->bdat_back);
	if (e == BDAT_E_MILTER)
		(void)smtpd_milter_refused(s, "BDAT");
	else
		smtpd_reply(s, bdat_errors[e].code, bdat_errors[e].cls,
		    bdat_errors[e].subj, bdat_errors[e].det, "%s",
		    bdat_errors[e].text);
}

/* bdat_chunk_done - every octet of the chunk is in: one reply */
static void
bdat_chunk_done(struct smtpd_session *s)
{
	int idx;

	s->cmd = s->bdat_last ? "BDAT (last chunk)" : "BDAT (chunk)";
	s->cmdlen = strlen(s->cmd);
	if (s->bdat_err != BDAT_E_NONE) {
		bdat_answer_error(s);
		goto done;
	}
	if (s->bdat_last) {
		smtpd_data_finish_scan(s->txn);
		smtpd_data_end(s);	/* stays in SMTPD_BDAT for milters */
		goto done;
	}
	if (smtpd_data_chunk_end(s) == -1) {
		s->bdat_failed = 1;	/* answered, the transaction ended */
		goto done;
	}
	smtpd_set_state(s, SMTPD_RCPT);
	if ((idx = smtpd_cmd_index("BDAT")) >= 0)
		s->okcount[idx]++;
	smtpd_reply(s, 250, 2, 0, 0, "%llu octets received",
	    (unsigned long long)s->bdat_size);
done:
	if (s->state != SMTPD_COMMIT && s->state != SMTPD_BDAT) {
		s->cmd = NULL;
		s->cmdlen = 0;
	}
}

/*
 * smtpd_bdat_input - read the chunk's octets from in (a counted read:
 * never more than announced); 1 when the chunk is complete and answered
 * (or handed to the end of data), 0 when more input is needed.
 */
int
smtpd_bdat_input(struct smtpd_session *s, struct evbuffer *in)
{
	struct evbuffer_iovec	 v[8];
	struct smtpd_txn	*t = s->txn;
	size_t			 avail, want, used, k;
	int			 n, i, end = 0;

	if (s->bdat_left == 0 && s->bdat_size > 0)
		return 0;		/* answered, waiting for the server */
	while (s->bdat_left > 0) {
		if ((avail = evbuffer_get_length(in)) == 0)
			return 0;
		want = avail;
		if ((uint64_t)want > s->bdat_left)
			want = (size_t)s->bdat_left;
		if (s->bdat_err != BDAT_E_NONE || t == NULL) {
			evbuffer_drain(in, want);	/* dropped */
			used = want;
		} else {
			n = evbuffer_peek(in, (ev_ssize_t)want, NULL, v, 8);
			used = 0;
			for (i = 0; i < n && i < 8 && used < want; i++) {
				k = v[i].iov_len;
				if (k > want - used)
					k = want - used;
				used += smtpd_data_scan(t, v[i].iov_base, k,
				    &end);
			}
			if (used == 0) {
				/* only empty chains peeked (TLS): compact */
				if (evbuffer_pullup(in, want < 4096 ?
				    (ev_ssize_t)want : 4096) == NULL)
					return 0;
				continue;
			}
			evbuffer_drain(in, used);
		}
		if (t != NULL)
			t->received += used;
		s->bdat_left -= used;
	}
	bdat_chunk_done(s);
	return 1;
}

/* smtpd_bdat_skip - drop what remains of a BDAT a milter refused */
int
smtpd_bdat_skip(struct smtpd_session *s, struct evbuffer *in)
{
	size_t n = evbuffer_get_length(in);

	if ((uint64_t)n > s->bdat_skip)
		n = (size_t)s->bdat_skip;
	evbuffer_drain(in, n);
	s->bdat_skip -= n;
	return s->bdat_skip > 0;
}
