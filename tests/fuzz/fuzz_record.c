#include "config.h"
/*
 * fuzz_record.c - the queue's record codec (queue/queue_record.c)
 * decoding arbitrary bytes: the input is decoded as each record type
 * (message, recipient, event, meta u64, ENVID index value).  A record
 * that decodes is encoded again; the encoding decodes, and encodes to
 * the same octets (older versions come back as the current one, so the
 * second encoding is compared with the first).  A decoder that fails
 * leaves nothing allocated (the leak check sees it).
 */

#include <string.h>

#include "queue/queue_int.h"
#include "tests/fuzz/fuzz.h"

/* msg - the input as the message record */
static void
msg(const uint8_t *data, size_t size)
{
	struct qmsg	 m, m2;
	unsigned char	*e1 = NULL, *e2 = NULL;
	size_t		 l1, l2;
	const char	*why = NULL;

	memset(&m, 0, sizeof(m));
	if (rec_msg_decode(data, size, &m, &why) == -1) {
		FUZZ_CHECK(why != NULL);
		return;
	}
	FUZZ_CHECK(m.sender != NULL);
	FUZZ_CHECK(rec_msg_encode(&m, &e1, &l1) == 0);
	memset(&m2, 0, sizeof(m2));
	FUZZ_CHECK(rec_msg_decode(e1, l1, &m2, &why) == 0);
	FUZZ_CHECK(rec_msg_encode(&m2, &e2, &l2) == 0);
	FUZZ_CHECK(l1 == l2 && memcmp(e1, e2, l1) == 0);
	rec_msg_clear(&m);
	rec_msg_clear(&m2);
	free(e1);
	free(e2);
}

/* rcpt - the input as the recipient record */
static void
rcpt(const uint8_t *data, size_t size)
{
	struct qrcpt	 r, r2;
	unsigned char	*e1 = NULL, *e2 = NULL;
	size_t		 l1, l2;
	const char	*why = NULL;

	memset(&r, 0, sizeof(r));
	if (rec_rcpt_decode(data, size, &r, &why) == -1) {
		FUZZ_CHECK(why != NULL);
		return;
	}
	FUZZ_CHECK(r.addr != NULL);
	FUZZ_CHECK(strlen(r.last_enh) < sizeof(r.last_enh));
	FUZZ_CHECK(rec_rcpt_encode(&r, &e1, &l1) == 0);
	memset(&r2, 0, sizeof(r2));
	FUZZ_CHECK(rec_rcpt_decode(e1, l1, &r2, &why) == 0);
	FUZZ_CHECK(rec_rcpt_encode(&r2, &e2, &l2) == 0);
	FUZZ_CHECK(l1 == l2 && memcmp(e1, e2, l1) == 0);
	rec_rcpt_clear(&r);
	rec_rcpt_clear(&r2);
	free(e1);
	free(e2);
}

/* event - the input as the event record */
static void
event(const uint8_t *data, size_t size)
{
	struct qevent	 e, f;
	unsigned char	*e1 = NULL, *e2 = NULL;
	size_t		 l1, l2;
	const char	*why = NULL;

	memset(&e, 0, sizeof(e));
	if (rec_event_decode(data, size, &e, &why) == -1) {
		FUZZ_CHECK(why != NULL);
		return;
	}
	FUZZ_CHECK(e.kind != NULL);
	FUZZ_CHECK(rec_event_encode(&e, &e1, &l1) == 0);
	/* the current encoding of a current record: the input itself */
	FUZZ_CHECK(l1 == size && memcmp(e1, data, size) == 0);
	memset(&f, 0, sizeof(f));
	FUZZ_CHECK(rec_event_decode(e1, l1, &f, &why) == 0);
	FUZZ_CHECK(rec_event_encode(&f, &e2, &l2) == 0);
	FUZZ_CHECK(l1 == l2 && memcmp(e1, e2, l1) == 0);
	rec_event_clear(&e);
	rec_event_clear(&f);
	free(e1);
	free(e2);
}

/* meta - the input as the meta u64 value */
static void
meta(const uint8_t *data, size_t size)
{
	unsigned char	 out[REC_META_U64_LEN];
	uint64_t	 v;
	const char	*why = NULL;

	if (rec_meta_u64_decode(data, size, &v, &why) == -1) {
		FUZZ_CHECK(why != NULL);
		return;
	}
	rec_meta_u64_encode(v, out);
	FUZZ_CHECK(size == sizeof(out) && memcmp(out, data, size) == 0);
}

/* envid - the input as the ENVID index value */
static void
envid(const uint8_t *data, size_t size)
{
	unsigned char	 out[REC_ENVID_MAX];
	char		 qid[REC_QID_MAX + 1], cert[REC_CERT_LEN + 1];
	char		 qid2[REC_QID_MAX + 1], cert2[REC_CERT_LEN + 1];
	const char	*why = NULL;
	size_t		 n;

	if (rec_envid_decode(data, size, qid, cert, &why) == -1) {
		FUZZ_CHECK(why != NULL);
		return;
	}
	FUZZ_CHECK(strlen(qid) <= REC_QID_MAX);
	if (cert[0] == '\0')
		return;			/* the old format: never written now */
	n = rec_envid_encode(out, qid, cert);
	FUZZ_CHECK(n == size && memcmp(out, data, size) == 0);
	FUZZ_CHECK(rec_envid_decode(out, n, qid2, cert2, &why) == 0);
	FUZZ_CHECK(strcmp(qid, qid2) == 0 && strcmp(cert, cert2) == 0);
}

/* LLVMFuzzerTestOneInput - one input, checked as the header comment says */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	msg(data, size);
	rcpt(data, size);
	event(data, size);
	meta(data, size);
	envid(data, size);
	return 0;
}
