#include "config.h"
/*
 * test_record.c - unit tests of the queue's record codec
 * (queue/queue_record.c) and of the hop's Received: field
 * (queue/queue_trace.c).
 * Tables of {name, input, want}: round trips for every record type
 * (empty strings, NULLs, maximum lengths, many recipients), decoders
 * refusing truncated, garbage, wrong-version, wrong-type and trailing
 * input with a reason, the version 2 DSN/MTRK fields (RET, certifier,
 * timeout, expiry, auth_user; NOTIFY, next-hop flags) and the decoding
 * of version 1 message and recipient records, the ENVID index value
 * (version 1: qid + certifier; the old bare qid still decoded), and Received: fields for one and two recipients
 * with and without TLS (TZ=UTC).
 */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "queue/queue_int.h"

static char *
big_string(size_t n, char c)
{
	char	*s = malloc(n + 1);

	assert_non_null(s);
	memset(s, c, n);
	s[n] = '\0';
	return s;
}

static void
check_str(const char *field, const char *got, const char *want)
{
	if (want == NULL && got == NULL)
		return;
	if (want == NULL || got == NULL || strcmp(got, want) != 0)
		fail_msg("%s: got %s, want %s", field,
		    got ? got : "(null)", want ? want : "(null)");
}

/* ---- messages ---- */

struct msg_case {
	const char	*name;
	const char	*sender, *envid, *client_addr, *client_name, *helo;
	const char	*tls, *message_id, *state_value;
	time_t		 arrival, done_time;
	uint64_t	 size;
	int		 body_8bit;
	enum msg_state	 state;
	size_t		 nrcpts;
	int		 big;		/* every string REC_STR_MAX long */
};

static const struct msg_case msg_cases[] = {
	{ "full", "alice@example.org", "ENV1", "127.0.0.1", "client.example",
	  "client.example", "TLSv1.3 TLS_AES_256_GCM_SHA384", "<a@b>", NULL,
	  1796086923, 0, 4096, 1, MS_NORMAL, 2, 0 },
	{ "null sender and nulls", "", NULL, NULL, NULL, NULL, NULL, NULL,
	  NULL, 0, 0, 0, 0, MS_NORMAL, 0, 0 },
	{ "empty strings", "", "", "", "", "", "", "", "", 1, 2, 3, 0,
	  MS_QUARANTINE, 1, 0 },
	{ "finished, other state", "b@c", NULL, "::1", NULL, "[IPv6:::1]",
	  NULL, NULL, "v", 1700000000, 1700000100, UINT64_MAX, 1, MS_OTHER,
	  REC_RCPT_MAX, 0 },
	{ "max lengths", NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
	  5, 6, 7, 0, MS_TIMED, 3, 1 },
};

/* the BINARYMIME flag (RFC 3030) rides in the 8-bit byte as 2 */
static void
test_msg_binary(void **state)
{
	static const int	 want[][2] = { { 0, 0 }, { 1, 0 }, { 1, 1 } };
	struct qmsg		 m, d;
	unsigned char		*enc;
	size_t			 len, i;
	const char		*why = NULL;

	(void)state;
	for (i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		memset(&m, 0, sizeof(m));
		memset(&d, 0, sizeof(d));
		m.sender = (char *)"a@b";
		m.body_8bit = want[i][0];
		m.body_binary = want[i][1];
		if (rec_msg_encode(&m, &enc, &len) != 0 ||
		    rec_msg_decode(enc, len, &d, &why) != 0)
			fail_msg("binary %zu: round trip failed: %s", i,
			    why != NULL ? why : "encode");
		if (d.body_8bit != want[i][0] || d.body_binary != want[i][1])
			fail_msg("binary %zu: got 8bit %d binary %d, want %d %d",
			    i, d.body_8bit, d.body_binary, want[i][0],
			    want[i][1]);
		rec_msg_clear(&d);
		free(enc);
	}
}

/* the RFC 8689 flags share body_8bit's octet: every combination */
static void
test_msg_tls_flags(void **state)
{
	struct qmsg	 m, d;
	unsigned char	*enc;
	size_t		 len;
	const char	*why = NULL;
	int		 bits;

	(void)state;
	for (bits = 0; bits < 8; bits++) {
		memset(&m, 0, sizeof(m));
		memset(&d, 0, sizeof(d));
		m.sender = "a@b";
		m.body_8bit = bits & 1;
		m.requiretls = (bits & 2) != 0;
		m.tls_optional = (bits & 4) != 0;
		if (rec_msg_encode(&m, &enc, &len) != 0)
			fail_msg("bits %d: encode failed", bits);
		if (rec_msg_decode(enc, len, &d, &why) != 0)
			fail_msg("bits %d: decode failed: %s", bits, why);
		if (d.body_8bit != m.body_8bit || d.requiretls != m.requiretls ||
		    d.tls_optional != m.tls_optional)
			fail_msg("bits %d: got 8bit %d requiretls %d optional %d",
			    bits, d.body_8bit, d.requiretls, d.tls_optional);
		rec_msg_clear(&d);
		free(enc);
	}
}

static void
test_msg_roundtrip(void **state)
{
	size_t	i;

	(void)state;
	for (i = 0; i < sizeof(msg_cases) / sizeof(msg_cases[0]); i++) {
		const struct msg_case	*c = &msg_cases[i];
		struct qmsg		 m, d;
		unsigned char		*enc;
		size_t			 len;
		const char		*why = NULL;
		char			*big = NULL;

		memset(&m, 0, sizeof(m));
		memset(&d, 0, sizeof(d));
		if (c->big) {
			big = big_string(REC_STR_MAX, 'x');
			m.sender = m.envid = m.client_addr = m.client_name = big;
			m.helo = m.tls = m.message_id = m.state_value = big;
		} else {
			m.sender = (char *)c->sender;
			m.envid = (char *)c->envid;
			m.client_addr = (char *)c->client_addr;
			m.client_name = (char *)c->client_name;
			m.helo = (char *)c->helo;
			m.tls = (char *)c->tls;
			m.message_id = (char *)c->message_id;
			m.state_value = (char *)c->state_value;
		}
		m.arrival = c->arrival;
		m.done_time = c->done_time;
		m.size = c->size;
		m.body_8bit = c->body_8bit;
		m.intl = (unsigned)(i % 4);	/* SMTPUTF8 bits, every mix */
		m.state = c->state;
		m.nrcpts = c->nrcpts;
		if (rec_msg_encode(&m, &enc, &len) != 0)
			fail_msg("%s: encode failed", c->name);
		if (rec_msg_decode(enc, len, &d, &why) != 0)
			fail_msg("%s: decode failed: %s", c->name, why);
		check_str("sender", d.sender, m.sender);
		check_str("envid", d.envid, m.envid);
		check_str("client_addr", d.client_addr, m.client_addr);
		check_str("client_name", d.client_name, m.client_name);
		check_str("helo", d.helo, m.helo);
		check_str("tls", d.tls, m.tls);
		check_str("message_id", d.message_id, m.message_id);
		check_str("state_value", d.state_value, m.state_value);
		if (d.arrival != m.arrival || d.done_time != m.done_time ||
		    d.size != m.size || d.body_8bit != m.body_8bit ||
		    d.intl != m.intl ||
		    d.state != m.state || d.nrcpts != m.nrcpts)
			fail_msg("%s: numbers differ: got arrival %lld size %llu "
			    "nrcpts %zu, want %lld %llu %zu", c->name,
			    (long long)d.arrival, (unsigned long long)d.size,
			    d.nrcpts, (long long)m.arrival,
			    (unsigned long long)m.size, m.nrcpts);
		rec_msg_clear(&d);
		free(enc);
		free(big);
	}
}

/* ---- version 2 fields (DSN / MTRK) and version 1 compatibility ---- */

/* the version 3 tail with NULL strings: state_since, state_reason,
 * hold_until, future_release, deliver_by, by_flags, expire_base */
#define V3_TAIL	(8 + 4 + 8 + 4 + 8 + 1 + 8 + 4)

/* version 3: handling state details, FUTURERELEASE, DELIVERBY, expiry base */
static void
test_msg_v3_fields(void **state)
{
	struct qmsg	 m, d;
	unsigned char	*enc;
	size_t		 len;
	const char	*why = NULL;

	(void)state;
	memset(&m, 0, sizeof(m));
	memset(&d, 0, sizeof(d));
	m.sender = "a@b";
	m.state = MS_QUARANTINE;
	m.state_value = "spam";
	m.state_reason = "policy.conf:3: header Subject matched";
	m.state_since = 1796000001;
	m.hold_until = 1796000600;
	m.future_release = "for=599";
	m.deliver_by = 1796086400;
	m.by_flags = BY_NOTIFY | BY_TRACE | BY_DONE;
	m.expire_base = 1796000700;
	m.filter_cmd = "/usr/local/bin/scan --strict";
	assert_int_equal(rec_msg_encode(&m, &enc, &len), 0);
	assert_int_equal(enc[0], 3);
	if (rec_msg_decode(enc, len, &d, &why) != 0)
		fail_msg("decode failed: %s", why);
	assert_int_equal(d.state, MS_QUARANTINE);
	check_str("state_value", d.state_value, m.state_value);
	check_str("state_reason", d.state_reason, m.state_reason);
	check_str("future_release", d.future_release, m.future_release);
	check_str("filter_cmd", d.filter_cmd, m.filter_cmd);
	assert_true(d.state_since == m.state_since);
	assert_true(d.hold_until == m.hold_until);
	assert_true(d.deliver_by == m.deliver_by);
	assert_true(d.by_flags == m.by_flags);
	assert_true(d.expire_base == m.expire_base);
	rec_msg_clear(&d);
	/* BY flags out of range: refused both ways (before expire_base and
	 * filter_cmd) */
	enc[len - 9 - 4 - strlen(m.filter_cmd)] = 0x80;
	assert_int_equal(rec_msg_decode(enc, len, &d, &why), -1);
	check_str("why", why, "bad BY flags");
	free(enc);
	m.by_flags = BY_ALL + 1;
	assert_int_equal(rec_msg_encode(&m, &enc, &len), -1);

	/* a version 2 record (no v3 tail) decodes with the new fields empty */
	memset(&m, 0, sizeof(m));
	m.sender = "old@example.org";
	m.ret = DSN_RET_HDRS;
	assert_int_equal(rec_msg_encode(&m, &enc, &len), 0);
	enc[0] = 2;
	len -= V3_TAIL;
	if (rec_msg_decode(enc, len, &d, &why) != 0)
		fail_msg("v2 decode failed: %s", why);
	assert_int_equal(d.ret, DSN_RET_HDRS);
	assert_null(d.state_reason);
	assert_null(d.future_release);
	assert_true(d.state_since == 0 && d.hold_until == 0 &&
	    d.deliver_by == 0 && d.by_flags == 0 && d.expire_base == 0);
	rec_msg_clear(&d);
	free(enc);
}

static void
test_msg_v2_fields(void **state)
{
	struct qmsg	 m, d;
	unsigned char	*enc;
	size_t		 len;
	const char	*why = NULL;
	int		 rets[] = { DSN_RET_NONE, DSN_RET_FULL, DSN_RET_HDRS };
	size_t		 i;

	(void)state;
	for (i = 0; i < 3; i++) {
		memset(&m, 0, sizeof(m));
		memset(&d, 0, sizeof(d));
		m.sender = "a@b";
		m.envid = i == 0 ? NULL : "QQ314159@client.example";
		m.ret = rets[i];
		m.mtrk_certifier = i == 2 ? "QlrxKgdDUCsyLpOgFbz4aOMk1Wo" : NULL;
		m.mtrk_timeout = i == 2 ? 999999999L : 0;
		m.mtrk_expiry = i == 2 ? 1796086923 : 0;
		m.auth_user = i == 1 ? "alice" : NULL;
		assert_int_equal(rec_msg_encode(&m, &enc, &len), 0);
		assert_int_equal(enc[0], 3);
		if (rec_msg_decode(enc, len, &d, &why) != 0)
			fail_msg("decode failed: %s", why);
		check_str("envid", d.envid, m.envid);
		check_str("mtrk_certifier", d.mtrk_certifier, m.mtrk_certifier);
		check_str("auth_user", d.auth_user, m.auth_user);
		assert_int_equal(d.ret, m.ret);
		assert_true(d.mtrk_timeout == m.mtrk_timeout);
		assert_true(d.mtrk_expiry == m.mtrk_expiry);
		rec_msg_clear(&d);
		free(enc);
	}
	/* bad values are refused by the encoder and the decoder */
	memset(&m, 0, sizeof(m));
	m.sender = "";
	m.ret = 3;
	assert_int_equal(rec_msg_encode(&m, &enc, &len), -1);
	m.ret = DSN_RET_NONE;
	m.mtrk_timeout = -1;
	assert_int_equal(rec_msg_encode(&m, &enc, &len), -1);
	m.mtrk_timeout = 0;
	assert_int_equal(rec_msg_encode(&m, &enc, &len), 0);
	/* ret is the byte after state_value: before the 25-byte rest of
	 * the v2 tail and the V3_TAIL bytes of version 3 */
	enc[len - 25 - V3_TAIL] = 7;
	assert_int_equal(rec_msg_decode(enc, len, &d, &why), -1);
	check_str("why", why, "bad RET value");
	free(enc);
}

static void
test_msg_v1_decode(void **state)
{
	struct qmsg	 m, d;
	unsigned char	*enc;
	size_t		 len;
	const char	*why = NULL;

	(void)state;
	memset(&m, 0, sizeof(m));
	memset(&d, 0, sizeof(d));
	m.sender = "old@example.org";
	m.envid = "E1";
	m.helo = "h";
	m.arrival = 1700000000;
	m.nrcpts = 2;
	assert_int_equal(rec_msg_encode(&m, &enc, &len), 0);
	/* a version 1 record: the same without the v3 and the 25-byte v2 tails */
	enc[0] = 1;
	len -= V3_TAIL + 1 + 4 + 8 + 8 + 4;
	if (rec_msg_decode(enc, len, &d, &why) != 0)
		fail_msg("v1 decode failed: %s", why);
	check_str("sender", d.sender, m.sender);
	check_str("envid", d.envid, "E1");
	check_str("helo", d.helo, "h");
	assert_true(d.arrival == m.arrival && d.nrcpts == 2);
	assert_int_equal(d.ret, DSN_RET_NONE);
	assert_null(d.mtrk_certifier);
	assert_null(d.auth_user);
	assert_true(d.mtrk_timeout == 0 && d.mtrk_expiry == 0);
	rec_msg_clear(&d);
	/* version 2 without its tail is truncated */
	enc[0] = 2;
	assert_int_equal(rec_msg_decode(enc, len, &d, &why), -1);
	check_str("why", why, "truncated record");
	free(enc);
}

static void
test_rcpt_v2_fields(void **state)
{
	static const struct {
		unsigned notify;
		int	 hop_dsn, hop_mtrk;
	} cases[] = {
		{ 0, -1, -1 },
		{ DSN_NOTIFY_NEVER, 0, 0 },
		{ DSN_NOTIFY_SUCCESS | DSN_NOTIFY_FAILURE | DSN_NOTIFY_DELAY, 1, 0 },
		{ DSN_NOTIFY_FAILURE, 1, 1 },
		{ DSN_NOTIFY_DELAY, 0, -1 },
	};
	struct qrcpt	 r, d;
	unsigned char	*enc;
	size_t		 len, i;
	const char	*why = NULL;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		memset(&r, 0, sizeof(r));
		r.addr = "bob@example.com";
		r.orcpt = "rfc822;Bob@Example.COM";
		r.notify = cases[i].notify;
		r.hop_dsn = cases[i].hop_dsn;
		r.hop_mtrk = cases[i].hop_mtrk;
		r.dsn_delay_sent = (int)(i & 1);
		r.no_mtrk = (int)((i >> 1) & 1);
		assert_int_equal(rec_rcpt_encode(&r, &enc, &len), 0);
		assert_int_equal(enc[0], 3);
		if (rec_rcpt_decode(enc, len, &d, &why) != 0)
			fail_msg("case %zu: decode failed: %s", i, why);
		check_str("orcpt", d.orcpt, r.orcpt);
		assert_int_equal(d.notify, r.notify);
		assert_int_equal(d.hop_dsn, r.hop_dsn);
		assert_int_equal(d.hop_mtrk, r.hop_mtrk);
		assert_int_equal(d.dsn_delay_sent, r.dsn_delay_sent);
		assert_int_equal(d.no_mtrk, r.no_mtrk);
		rec_rcpt_clear(&d);
		/* version 2: without the flags byte; nothing sent yet */
		enc[0] = 2;
		if (rec_rcpt_decode(enc, len - 1, &d, &why) != 0)
			fail_msg("case %zu: v2 decode failed: %s", i, why);
		assert_int_equal(d.notify, r.notify);
		assert_int_equal(d.hop_dsn, r.hop_dsn);
		assert_int_equal(d.dsn_delay_sent, 0);
		rec_rcpt_clear(&d);
		/* version 2 with a flags byte: trailing bytes */
		assert_int_equal(rec_rcpt_decode(enc, len, &d, &why), -1);
		enc[0] = 3;
		/* version 3 without the flags byte is truncated */
		assert_int_equal(rec_rcpt_decode(enc, len - 1, &d, &why), -1);
		if (i == 0) {
			/* version 1: no tail; unknown hops, no NOTIFY */
			enc[0] = 1;
			assert_int_equal(rec_rcpt_decode(enc, len - 4, &d,
			    &why), 0);
			assert_int_equal(d.notify, 0);
			assert_int_equal(d.hop_dsn, -1);
			assert_int_equal(d.hop_mtrk, -1);
			assert_int_equal(d.dsn_delay_sent, 0);
			rec_rcpt_clear(&d);
			enc[0] = 3;
			/* bad flags */
			enc[len - 1] = 4;
			assert_int_equal(rec_rcpt_decode(enc, len, &d, &why), -1);
			check_str("why", why, "bad recipient flags");
			enc[len - 1] = 0;
			/* NEVER with others, unknown bits, bad hop flag */
			enc[len - 4] = DSN_NOTIFY_NEVER | DSN_NOTIFY_SUCCESS;
			assert_int_equal(rec_rcpt_decode(enc, len, &d, &why), -1);
			check_str("why", why, "bad NOTIFY bits");
			enc[len - 4] = 0x10;
			assert_int_equal(rec_rcpt_decode(enc, len, &d, &why), -1);
			enc[len - 4] = 0;
			enc[len - 3] = 2;
			assert_int_equal(rec_rcpt_decode(enc, len, &d, &why), -1);
			check_str("why", why, "bad next-hop flag");
		}
		free(enc);
	}
	memset(&r, 0, sizeof(r));
	r.addr = "x@y";
	r.hop_dsn = 2;
	assert_int_equal(rec_rcpt_encode(&r, &enc, &len), -1);
	r.hop_dsn = -1;
	r.notify = 0x100;
	assert_int_equal(rec_rcpt_encode(&r, &enc, &len), -1);
}

static void
test_msg_encode_limits(void **state)
{
	struct qmsg	 m;
	unsigned char	*enc = NULL;
	size_t		 len;
	char		*big = big_string(REC_STR_MAX + 1, 'y');

	(void)state;
	memset(&m, 0, sizeof(m));
	m.sender = big;
	assert_int_equal(rec_msg_encode(&m, &enc, &len), -1);
	m.sender = "";
	m.nrcpts = REC_RCPT_MAX + 1;
	assert_int_equal(rec_msg_encode(&m, &enc, &len), -1);
	m.nrcpts = 1;
	m.state = (enum msg_state)(MS_OTHER + 1);
	assert_int_equal(rec_msg_encode(&m, &enc, &len), -1);
	free(big);
}

/* ---- recipients ---- */

struct rcpt_case {
	const char		*name;
	const char		*addr, *orcpt, *last_text, *remote_mta;
	const char		*enh;
	enum rcpt_status	 status;
	unsigned		 attempts;
	time_t			 next_attempt, last_attempt;
	int			 code;
};

static const struct rcpt_case rcpt_cases[] = {
	{ "fresh", "bob@example.com", NULL, NULL, NULL, "", RS_QUEUED, 0,
	  1796086923, 0, 0 },
	{ "deferred", "bob@example.com", "rfc822;bob@example.com",
	  "cannot create maildir example.com: Not a directory", NULL, "4.2.0",
	  RS_DEFERRED, 3, 1796087000, 1796086990, 450 },
	{ "delivered remote", "\"q u\"@x.y", NULL, "ok", "mx.x.y[192.0.2.1]",
	  "2.0.0", RS_DELIVERED, 1, 0, 5, 250 },
	{ "empty strings", "", "", "", "", "", RS_FAILED, UINT32_MAX, 0,
	  0, 999 },
	{ "max enhanced", "a@b", NULL, NULL, NULL, "5.123.456789", RS_EXPANDED,
	  7, 0, 0, 550 },
	{ "relayed", "c@mx.test", "rfc822;C@mx.test", "Ok: queued",
	  "mx.test[127.0.0.3]", "2.0.0", RS_RELAYED, 1, 0, 1796086990, 250 },
	{ "transferred", "c@mtrk.test", NULL, "Ok: queued as 4711",
	  "mx.mtrk.test[127.0.0.2]", "2.0.0", RS_TRANSFERRED, 2, 0,
	  1796086995, 250 },
};

static void
test_rcpt_roundtrip(void **state)
{
	size_t	i;

	(void)state;
	for (i = 0; i < sizeof(rcpt_cases) / sizeof(rcpt_cases[0]); i++) {
		const struct rcpt_case	*c = &rcpt_cases[i];
		struct qrcpt		 r, d;
		unsigned char		*enc;
		size_t			 len;
		const char		*why = NULL;

		memset(&r, 0, sizeof(r));
		r.addr = (char *)c->addr;
		r.orcpt = (char *)c->orcpt;
		r.last_text = (char *)c->last_text;
		r.remote_mta = (char *)c->remote_mta;
		snprintf(r.last_enh, sizeof(r.last_enh), "%s", c->enh);
		r.status = c->status;
		r.attempts = c->attempts;
		r.next_attempt = c->next_attempt;
		r.last_attempt = c->last_attempt;
		r.last_code = c->code;
		r.busy = 1;	/* in memory only: not stored */
		if (rec_rcpt_encode(&r, &enc, &len) != 0)
			fail_msg("%s: encode failed", c->name);
		if (rec_rcpt_decode(enc, len, &d, &why) != 0)
			fail_msg("%s: decode failed: %s", c->name, why);
		check_str("addr", d.addr, r.addr);
		check_str("orcpt", d.orcpt, r.orcpt);
		check_str("last_text", d.last_text, r.last_text);
		check_str("remote_mta", d.remote_mta, r.remote_mta);
		check_str("last_enh", d.last_enh, r.last_enh);
		if (d.status != r.status || d.attempts != r.attempts ||
		    d.next_attempt != r.next_attempt ||
		    d.last_attempt != r.last_attempt ||
		    d.last_code != r.last_code || d.busy != 0)
			fail_msg("%s: numbers differ: got status %d attempts %u "
			    "code %d, want %d %u %d", c->name, d.status,
			    d.attempts, d.last_code, r.status, r.attempts,
			    r.last_code);
		rec_rcpt_clear(&d);
		free(enc);
	}
}

/* many recipients: every one round-trips under its own key */
static void
test_many_rcpts(void **state)
{
	unsigned char	 key[QKEY_MAX], *enc;
	char		 addr[64];
	struct qrcpt	 r, d;
	const char	*why;
	size_t		 i, len, kl;

	(void)state;
	for (i = 0; i < 2000; i++) {
		memset(&r, 0, sizeof(r));
		snprintf(addr, sizeof(addr), "user%zu@example.com", i);
		r.addr = addr;
		r.attempts = (unsigned)i;
		assert_int_equal(rec_rcpt_encode(&r, &enc, &len), 0);
		assert_int_equal(rec_rcpt_decode(enc, len, &d, &why), 0);
		check_str("addr", d.addr, addr);
		assert_int_equal(d.attempts, i);
		rec_rcpt_clear(&d);
		free(enc);
		kl = key_rcpt(key, "0123456789ABCDEF", (uint16_t)i);
		assert_int_equal(kl, 18);
		assert_int_equal((size_t)key[16] << 8 | key[17], i);
	}
}

/* ---- events ---- */

struct event_case {
	const char	*name;
	uint64_t	 t;
	const char	*kind, *detail;
	int		 big;
};

static const struct event_case event_cases[] = {
	{ "accepted", 1796086923123456ull, "accepted",
	  "from=<a@b> size=12 nrcpt=1 client=127.0.0.1 helo=x msgid=-", 0 },
	{ "trace folded", 1, "trace",
	  "Received: from a ([127.0.0.1])\n\tby b with ESMTP id Q; date", 0 },
	{ "null detail", 0, "flush", NULL, 0 },
	{ "empty", UINT64_MAX, "", "", 0 },
	{ "max detail", 5, "deferred", NULL, 1 },
};

static void
test_event_roundtrip(void **state)
{
	size_t	i;

	(void)state;
	for (i = 0; i < sizeof(event_cases) / sizeof(event_cases[0]); i++) {
		const struct event_case	*c = &event_cases[i];
		struct qevent		 e, d;
		unsigned char		*enc;
		size_t			 len;
		const char		*why = NULL;
		char			*big = NULL;

		e.time_usec = c->t;
		e.kind = (char *)c->kind;
		e.detail = (char *)c->detail;
		if (c->big)
			e.detail = big = big_string(REC_STR_MAX, 'z');
		if (rec_event_encode(&e, &enc, &len) != 0)
			fail_msg("%s: encode failed", c->name);
		if (rec_event_decode(enc, len, &d, &why) != 0)
			fail_msg("%s: decode failed: %s", c->name, why);
		check_str("kind", d.kind, e.kind);
		check_str("detail", d.detail, e.detail);
		if (d.time_usec != e.time_usec)
			fail_msg("%s: time: got %llu, want %llu", c->name,
			    (unsigned long long)d.time_usec,
			    (unsigned long long)e.time_usec);
		rec_event_clear(&d);
		free(enc);
		free(big);
	}
}

static void
test_meta_roundtrip(void **state)
{
	unsigned char	 b[REC_META_U64_LEN];
	uint64_t	 v = 0;
	const char	*why;

	(void)state;
	rec_meta_u64_encode(1796086923123456ull, b);
	assert_int_equal(rec_meta_u64_decode(b, sizeof(b), &v, &why), 0);
	assert_true(v == 1796086923123456ull);
	assert_int_equal(rec_meta_u64_decode(b, sizeof(b) - 1, &v, &why), -1);
	b[0] = 2;
	assert_int_equal(rec_meta_u64_decode(b, sizeof(b), &v, &why), -1);
	check_str("why", why, "unknown record version");
}

/* ---- ENVID index values ---- */

#define CERT_A	"QlrxKgdDUCsyLpOgFbz4aOMk1Wo"

static const struct {
	const char	*name;
	const char	*qid, *cert;
	size_t		 want;		/* encoded length, 0 = refused */
} envid_enc_cases[] = {
	{ "16-char qid", "0Ab3kZ9x0Ab3kZ9x", CERT_A, 1 + 16 + 27 },
	{ "8-char qid", "abcdefgh", CERT_A, 1 + 8 + 27 },
	{ "32-char qid", "0123456789abcdef0123456789ABCDEF", CERT_A,
	    1 + 32 + 27 },
	{ "qid too short", "abcdefg", CERT_A, 0 },
	{ "qid too long", "0123456789abcdef0123456789ABCDEFG", CERT_A, 0 },
	{ "qid not alphanumeric", "abcd-efgh", CERT_A, 0 },
	{ "no qid", NULL, CERT_A, 0 },
	{ "no certifier", "abcdefgh", NULL, 0 },
	{ "short certifier", "abcdefgh", "QlrxKgdDUCsyLpOgFbz4aOMk1W", 0 },
	{ "long certifier", "abcdefgh", CERT_A "=", 0 },
};

static void
test_envid_roundtrip(void **state)
{
	unsigned char	 b[REC_ENVID_MAX];
	char		 qid[REC_QID_MAX + 1], cert[REC_CERT_LEN + 1];
	const char	*why;
	size_t		 i, n;

	(void)state;
	for (i = 0; i < sizeof(envid_enc_cases) / sizeof(envid_enc_cases[0]);
	    i++) {
		n = rec_envid_encode(b, envid_enc_cases[i].qid,
		    envid_enc_cases[i].cert);
		if (n != envid_enc_cases[i].want)
			fail_msg("%s: got length %zu, want %zu",
			    envid_enc_cases[i].name, n, envid_enc_cases[i].want);
		if (n == 0)
			continue;
		assert_int_equal(b[0], REC_ENVID_VERSION);
		if (rec_envid_decode(b, n, qid, cert, &why) == -1)
			fail_msg("%s: decode: %s", envid_enc_cases[i].name, why);
		check_str("qid", qid, envid_enc_cases[i].qid);
		check_str("cert", cert, envid_enc_cases[i].cert);
	}
}

static const struct {
	const char	*name;
	const char	*in;		/* "\001" = the version byte */
	size_t		 len;
	const char	*want_qid;	/* NULL: refused with want_why */
	const char	*want_why;
} envid_dec_cases[] = {
	{ "old format: the bare qid", "0Ab3kZ9x0Ab3kZ9x", 16,
	    "0Ab3kZ9x0Ab3kZ9x", NULL },
	{ "old format, 8 chars", "abcdefgh", 8, "abcdefgh", NULL },
	{ "empty", "", 0, NULL, "truncated record" },
	{ "old format, bad qid", "abc-efgh", 8, NULL, "bad queue id" },
	{ "old format, too long", "0123456789abcdef0123456789ABCDEFG", 33,
	    NULL, "bad queue id" },
	{ "old format, NUL", "abcd\0efgh", 9, NULL, "bad queue id" },
	{ "version only", "\001", 1, NULL, "truncated record" },
	{ "qid too short", "\001abcdefg" CERT_A, 1 + 7 + 27, NULL,
	    "truncated record" },
	{ "qid too long", "\001" "0123456789abcdef0123456789ABCDEFG" CERT_A,
	    1 + 33 + 27, NULL, "trailing bytes after record" },
	{ "bad qid", "\001abcd-efgh" CERT_A, 1 + 9 + 27, NULL,
	    "bad queue id" },
	{ "NUL in certifier", "\001abcdefgh" "QlrxKgdDUCsyLpOg\0bz4aOMk1Wo",
	    1 + 8 + 27, NULL, "NUL in the certifier" },
	{ "version 2", "\002abcdefgh" CERT_A, 1 + 8 + 27, NULL,
	    "bad queue id" },
};

static void
test_envid_decode(void **state)
{
	char		 qid[REC_QID_MAX + 1], cert[REC_CERT_LEN + 1];
	const char	*why;
	size_t		 i;
	int		 rc;

	(void)state;
	for (i = 0; i < sizeof(envid_dec_cases) / sizeof(envid_dec_cases[0]);
	    i++) {
		why = NULL;
		rc = rec_envid_decode(envid_dec_cases[i].in,
		    envid_dec_cases[i].len, qid, cert, &why);
		if (envid_dec_cases[i].want_qid != NULL) {
			if (rc != 0)
				fail_msg("%s: got %s, want qid %s",
				    envid_dec_cases[i].name, why,
				    envid_dec_cases[i].want_qid);
			check_str(envid_dec_cases[i].name, qid,
			    envid_dec_cases[i].want_qid);
			check_str("old format: no cert", cert, "");
			continue;
		}
		if (rc != -1)
			fail_msg("%s: got qid %s, want %s",
			    envid_dec_cases[i].name, qid,
			    envid_dec_cases[i].want_why);
		check_str(envid_dec_cases[i].name, why,
		    envid_dec_cases[i].want_why);
		check_str("qid after a failure", qid, "");
	}
}

/* ---- decoders refuse bad input ---- */

enum rtype { T_MSG, T_RCPT, T_EVENT };

static int
decode_any(enum rtype t, const void *p, size_t len, const char **why)
{
	struct qmsg	m;
	struct qrcpt	r;
	struct qevent	e;
	int		rc;

	switch (t) {
	case T_MSG:
		memset(&m, 0, sizeof(m));
		if ((rc = rec_msg_decode(p, len, &m, why)) == 0)
			rec_msg_clear(&m);
		return rc;
	case T_RCPT:
		if ((rc = rec_rcpt_decode(p, len, &r, why)) == 0)
			rec_rcpt_clear(&r);
		return rc;
	default:
		if ((rc = rec_event_decode(p, len, &e, why)) == 0)
			rec_event_clear(&e);
		return rc;
	}
}

static void
valid_record(enum rtype t, unsigned char **enc, size_t *len)
{
	struct qmsg	m;
	struct qrcpt	r;
	struct qevent	e;

	switch (t) {
	case T_MSG:
		memset(&m, 0, sizeof(m));
		m.sender = "a@b";
		m.helo = "h";
		m.nrcpts = 1;
		assert_int_equal(rec_msg_encode(&m, enc, len), 0);
		break;
	case T_RCPT:
		memset(&r, 0, sizeof(r));
		r.addr = "bob@example.com";
		r.last_text = "t";
		assert_int_equal(rec_rcpt_encode(&r, enc, len), 0);
		break;
	default:
		e.time_usec = 1;
		e.kind = "attempt";
		e.detail = "rcpt=<bob@example.com>";
		assert_int_equal(rec_event_encode(&e, enc, len), 0);
		break;
	}
}

static void
test_decode_truncated(void **state)
{
	static const char *const names[] = { "message", "recipient", "event" };
	unsigned char	*enc;
	const char	*why;
	size_t		 len, cut;
	int		 t;

	(void)state;
	for (t = T_MSG; t <= T_EVENT; t++) {
		valid_record((enum rtype)t, &enc, &len);
		for (cut = 0; cut < len; cut++) {
			why = NULL;
			if (decode_any((enum rtype)t, enc, cut, &why) != -1)
				fail_msg("%s cut at %zu of %zu: got success, "
				    "want failure", names[t], cut, len);
			if (why == NULL)
				fail_msg("%s cut at %zu: no reason", names[t], cut);
		}
		why = NULL;
		assert_int_equal(decode_any((enum rtype)t, enc, len, &why), 0);
		free(enc);
	}
}

struct bad_case {
	const char	*name;
	enum rtype	 type;
	int		 mutate;	/* 0 version, 1 tag, 2 trailing, 3 NUL, 4 status */
	const char	*want;
};

static const struct bad_case bad_cases[] = {
	{ "msg wrong version", T_MSG, 0, "unknown record version" },
	{ "rcpt wrong version", T_RCPT, 0, "unknown record version" },
	{ "event wrong version", T_EVENT, 0, "unknown record version" },
	{ "msg wrong type", T_MSG, 1, "wrong record type" },
	{ "rcpt given an event", T_RCPT, 1, "wrong record type" },
	{ "msg trailing", T_MSG, 2, "trailing bytes after record" },
	{ "rcpt trailing", T_RCPT, 2, "trailing bytes after record" },
	{ "event trailing", T_EVENT, 2, "trailing bytes after record" },
	{ "event NUL in string", T_EVENT, 3, "NUL in string" },
	{ "rcpt bad status", T_RCPT, 4, "bad recipient status" },
};

static void
test_decode_bad(void **state)
{
	size_t	i;

	(void)state;
	for (i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
		const struct bad_case	*c = &bad_cases[i];
		unsigned char		*enc, *p;
		const char		*why = NULL;
		size_t			 len;

		valid_record(c->type, &enc, &len);
		if ((p = realloc(enc, len + 1)) == NULL)
			fail_msg("out of memory");
		enc = p;
		switch (c->mutate) {
		case 0:
			/* 1, 2 and 3 (M, R) are known */
			enc[0] = 4;
			break;
		case 1:
			enc[1] = c->type == T_RCPT ? 'E' : 'R';
			break;
		case 2:
			enc[len++] = 0;
			break;
		case 3:
			enc[len - 3] = '\0';	/* inside the detail string */
			break;
		case 4:
			enc[2] = 200;
			break;
		}
		if (decode_any(c->type, enc, len, &why) != -1)
			fail_msg("%s: got success, want failure", c->name);
		check_str(c->name, why, c->want);
		free(enc);
	}
}

static void
test_decode_garbage(void **state)
{
	unsigned char	 buf[256];
	const char	*why;
	unsigned	 seed = 12345;
	size_t		 i, len;
	int		 t, round;

	(void)state;
	/* random bytes with a valid header: must fail or succeed cleanly */
	for (round = 0; round < 3000; round++) {
		len = (size_t)(round % 200) + 2;
		for (i = 0; i < len; i++) {
			seed = seed * 1103515245u + 12345u;
			buf[i] = (unsigned char)(seed >> 16);
		}
		buf[0] = REC_VERSION;
		for (t = T_MSG; t <= T_EVENT; t++) {
			buf[1] = t == T_MSG ? 'M' : t == T_RCPT ? 'R' : 'E';
			why = NULL;
			if (decode_any((enum rtype)t, buf, len, &why) == -1 &&
			    why == NULL)
				fail_msg("garbage round %d: failure without reason",
				    round);
		}
	}
	why = NULL;
	assert_int_equal(decode_any(T_MSG, NULL, 0, &why), -1);
	assert_non_null(why);
}

/* ---- keys ---- */

static void
test_keys(void **state)
{
	unsigned char	k[QKEY_MAX];

	(void)state;
	assert_int_equal(key_msg(k, "0123456789ABCDEF"), 16);
	assert_int_equal(key_event(k, "0123456789ABCDEF", 0x01020304), 20);
	assert_int_equal(k[16], 1);
	assert_int_equal(k[19], 4);
	assert_int_equal(key_time(k, "0123456789ABCDEF", 0x0102), 24);
	assert_int_equal(k[6], 1);
	assert_int_equal(k[7], 2);
	assert_int_equal(key_state(k, "0123456789ABCDEF", MS_TIMED), 17);
	assert_int_equal(k[0], MS_TIMED);
	assert_int_equal(key_msg(k, "bad/qid!"), 0);
	assert_int_equal(key_msg(k, "short"), 0);
}

/* ---- Received: ---- */

struct trace_case {
	const char	*name;
	const char	*helo, *client_name, *tls, *proto;
	int		 nrcpts;
	const char	*client_addr;
	const char	*want;
};

static const struct trace_case trace_cases[] = {
	{ "one rcpt, TLS", "client.example", NULL,
	  "TLSv1.3 TLS_AES_256_GCM_SHA384", "ESMTPS", 1, "127.0.0.1",
	  "Received: from client.example ([127.0.0.1])\n"
	  "\t(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384)\n"
	  "\tby mx.example.com with ESMTPS id 0123456789ABCDEF\n"
	  "\tfor <bob@example.com>; Tue, 1 Dec 2026 01:02:03 +0000" },
	{ "one rcpt, no TLS", "client.example", NULL, NULL, "ESMTP", 1,
	  "127.0.0.1",
	  "Received: from client.example ([127.0.0.1])\n"
	  "\tby mx.example.com with ESMTP id 0123456789ABCDEF\n"
	  "\tfor <bob@example.com>; Tue, 1 Dec 2026 01:02:03 +0000" },
	{ "two rcpts, TLS, rdns", "client.example", "host.example.net",
	  "TLSv1.2 ECDHE-RSA-AES128-GCM-SHA256", "ESMTPS", 2, "192.0.2.10",
	  "Received: from client.example (host.example.net [192.0.2.10])\n"
	  "\t(using TLSv1.2 with cipher ECDHE-RSA-AES128-GCM-SHA256)\n"
	  "\tby mx.example.com with ESMTPS id 0123456789ABCDEF; "
	  "Tue, 1 Dec 2026 01:02:03 +0000" },
	{ "two rcpts, no TLS, bad HELO, IPv6", "bad helo!", NULL, NULL, "SMTP",
	  2, "::1",
	  "Received: from [IPv6:::1] ([IPv6:::1])\n"
	  "\tby mx.example.com with SMTP id 0123456789ABCDEF; "
	  "Tue, 1 Dec 2026 01:02:03 +0000" },
	{ "literal HELO", "[127.0.0.1]", NULL, NULL, "ESMTP", 2, "127.0.0.1",
	  "Received: from [127.0.0.1] ([127.0.0.1])\n"
	  "\tby mx.example.com with ESMTP id 0123456789ABCDEF; "
	  "Tue, 1 Dec 2026 01:02:03 +0000" },
};

static void
test_trace_received(void **state)
{
	struct qrcpt	rcpts[2];
	struct qmsg	m;
	char		out[1024], small[40];
	size_t		i;

	(void)state;
	for (i = 0; i < sizeof(trace_cases) / sizeof(trace_cases[0]); i++) {
		const struct trace_case *c = &trace_cases[i];

		memset(&m, 0, sizeof(m));
		memset(rcpts, 0, sizeof(rcpts));
		rcpts[0].addr = "bob@example.com";
		rcpts[1].addr = "carol@example.com";
		snprintf(m.qid, sizeof(m.qid), "0123456789ABCDEF");
		m.arrival = 1796086923;
		m.helo = (char *)c->helo;
		m.client_name = (char *)c->client_name;
		m.client_addr = (char *)c->client_addr;
		m.tls = (char *)c->tls;
		m.rcpts = rcpts;
		m.nrcpts = (size_t)c->nrcpts;
		if (queue_trace_received(&m, "mx.example.com", c->proto, out,
		    sizeof(out)) != 0)
			fail_msg("%s: failed", c->name);
		if (strcmp(out, c->want) != 0)
			fail_msg("%s:\ngot  \"%s\"\nwant \"%s\"", c->name, out,
			    c->want);
		assert_int_equal(queue_trace_received(&m, "mx.example.com",
		    c->proto, small, sizeof(small)), -1);
	}
}

/* RFC 6729: the state clause on the hop's field, and fields of their own */
static void
test_trace_state(void **state)
{
	static const struct {
		const char	*name;
		enum msg_state	 st;
		const char	*value, *reason, *want;
	} cases[] = {
		{ "quarantine with value and reason", MS_QUARANTINE, "spam",
		  "score 12 (x) > 10\\",
		  "Received: from mx.example.com\n\tby mx.example.com id "
		  "0123456789ABCDEF\n\tstate quarantine/spam (score 12 \\(x\\) "
		  "> 10\\\\); Tue, 1 Dec 2026 01:02:03 +0000" },
		{ "release, no value", MS_OUTBOUND, NULL, NULL,
		  "Received: from mx.example.com\n\tby mx.example.com id "
		  "0123456789ABCDEF\n\tstate outbound; Tue, 1 Dec 2026 "
		  "01:02:03 +0000" },
		{ "bad token dropped, control chars", MS_OTHER, "a/b",
		  "x\r\ny",
		  "Received: from mx.example.com\n\tby mx.example.com id "
		  "0123456789ABCDEF\n\tstate other (x??y); Tue, 1 Dec 2026 "
		  "01:02:03 +0000" },
	};
	struct qmsg	m;
	struct qrcpt	r;
	char		out[1024];
	size_t		i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		memset(&m, 0, sizeof(m));
		snprintf(m.qid, sizeof(m.qid), "0123456789ABCDEF");
		if (queue_trace_state(&m, "mx.example.com", cases[i].st,
		    cases[i].value, cases[i].reason, 1796086923, out,
		    sizeof(out)) != 0)
			fail_msg("%s: failed", cases[i].name);
		if (strcmp(out, cases[i].want) != 0)
			fail_msg("%s:\ngot  \"%s\"\nwant \"%s\"", cases[i].name,
			    out, cases[i].want);
	}
	/* held from reception: the clause on the hop's own field */
	memset(&m, 0, sizeof(m));
	memset(&r, 0, sizeof(r));
	r.addr = "bob@example.com";
	snprintf(m.qid, sizeof(m.qid), "0123456789ABCDEF");
	m.arrival = 1796086923;
	m.helo = "client.example";
	m.client_addr = "127.0.0.1";
	m.rcpts = &r;
	m.nrcpts = 1;
	m.state = MS_TIMED;
	m.state_reason = "release at 2026-12-02T00:00:00Z";
	assert_int_equal(queue_trace_received(&m, "mx.example.com", "ESMTPA",
	    out, sizeof(out)), 0);
	assert_string_equal(out, "Received: from client.example ([127.0.0.1])\n"
	    "\tby mx.example.com with ESMTPA id 0123456789ABCDEF\n"
	    "\tfor <bob@example.com>\n"
	    "\tstate timed (release at 2026-12-02T00:00:00Z); "
	    "Tue, 1 Dec 2026 01:02:03 +0000");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_msg_roundtrip),
		cmocka_unit_test(test_msg_binary),
		cmocka_unit_test(test_msg_tls_flags),
		cmocka_unit_test(test_msg_encode_limits),
		cmocka_unit_test(test_msg_v2_fields),
		cmocka_unit_test(test_msg_v3_fields),
		cmocka_unit_test(test_msg_v1_decode),
		cmocka_unit_test(test_rcpt_v2_fields),
		cmocka_unit_test(test_rcpt_roundtrip),
		cmocka_unit_test(test_many_rcpts),
		cmocka_unit_test(test_event_roundtrip),
		cmocka_unit_test(test_meta_roundtrip),
		cmocka_unit_test(test_envid_roundtrip),
		cmocka_unit_test(test_envid_decode),
		cmocka_unit_test(test_decode_truncated),
		cmocka_unit_test(test_decode_bad),
		cmocka_unit_test(test_decode_garbage),
		cmocka_unit_test(test_keys),
		cmocka_unit_test(test_trace_received),
		cmocka_unit_test(test_trace_state),
	};

	setenv("TZ", "UTC", 1);
	tzset();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
