#include "config.h"
/*
 * test_dane.c - unit tests of delivery/dlv_dane.c's reading of TLSA
 * answers (dlv_dane_answer / dlv_dane_parse): usable and unusable
 * records (RFC 7672 3.1: usage 2/3 only, digest lengths), CNAME chains
 * from the owner (RFC 7672 2.2.3) and the expansion of a host name
 * (dlv_dane_expanded, 2.2.2), records of other names and RRSIGs
 * skipped, compressed names, the bounds (records kept, malformed
 * answers), and the states that answers without data or without the AD
 * bit, and failed lookups, give.
 */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <ares.h>

#include "delivery/dlv_int.h"

#define NELEM(a)	(sizeof(a) / sizeof((a)[0]))
#define QNAME		"_25._tcp.mx1.example.test"

/* one answer record to build: owner (NULL = a pointer to the question) */
struct rrspec {
	const char	*owner;
	unsigned	 type;
	int		 usage, sel, mtype;	/* TLSA */
	size_t		 dlen;			/* TLSA association data */
	const char	*target;		/* CNAME */
};

struct msg {
	unsigned char	b[4096];
	size_t		n;
};

static void
put16(struct msg *m, unsigned v)
{
	m->b[m->n++] = (unsigned char)(v >> 8);
	m->b[m->n++] = (unsigned char)v;
}

static void
put_name(struct msg *m, const char *name)
{
	const char	*p = name, *dot;
	size_t		 len;

	while (*p != '\0') {
		dot = strchr(p, '.');
		len = dot ? (size_t)(dot - p) : strlen(p);
		m->b[m->n++] = (unsigned char)len;
		memcpy(m->b + m->n, p, len);
		m->n += len;
		p += len;
		if (*p == '.')
			p++;
	}
	m->b[m->n++] = 0;
}

/* build - a NOERROR answer to QNAME/TLSA holding rrs[0..n) */
static void
build(struct msg *m, const struct rrspec *rrs, size_t n)
{
	size_t	i, k, rdlen_at;

	memset(m, 0, sizeof(*m));
	put16(m, 0x1234);
	put16(m, 0x81a0);		/* QR RD RA AD */
	put16(m, 1);
	put16(m, (unsigned)n);
	put16(m, 0);
	put16(m, 0);
	put_name(m, QNAME);
	put16(m, 52);
	put16(m, 1);
	for (i = 0; i < n; i++) {
		if (rrs[i].owner == NULL)
			put16(m, 0xc00c);	/* the question's name */
		else
			put_name(m, rrs[i].owner);
		put16(m, rrs[i].type);
		put16(m, 1);
		put16(m, 0);
		put16(m, 300);
		rdlen_at = m->n;
		put16(m, 0);
		if (rrs[i].type == 5)
			put_name(m, rrs[i].target);
		else if (rrs[i].type == 52) {
			m->b[m->n++] = (unsigned char)rrs[i].usage;
			m->b[m->n++] = (unsigned char)rrs[i].sel;
			m->b[m->n++] = (unsigned char)rrs[i].mtype;
			for (k = 0; k < rrs[i].dlen; k++)
				m->b[m->n++] = (unsigned char)(i * 16 + k);
		} else {
			for (k = 0; k < 20; k++)	/* an RRSIG's worth */
				m->b[m->n++] = 0xee;
		}
		m->b[rdlen_at] = (unsigned char)((m->n - rdlen_at - 2) >> 8);
		m->b[rdlen_at + 1] = (unsigned char)(m->n - rdlen_at - 2);
	}
}

struct tcase {
	const char		*name;
	struct rrspec		 rrs[12];
	size_t			 nrrs;
	enum dlv_dane_state	 want;
	size_t			 want_usable;
	const char		*want_why;	/* substring, for DLV_DANE_ERROR */
};

#define EE	QNAME
static const struct tcase cases[] = {
	{ "one 3 1 1", { { EE, 52, 3, 1, 1, 32, NULL } }, 1,
	  DLV_DANE_USABLE, 1, NULL },
	{ "owner compressed", { { NULL, 52, 3, 1, 1, 32, NULL } }, 1,
	  DLV_DANE_USABLE, 1, NULL },
	{ "2 0 1 and 3 1 2", { { EE, 52, 2, 0, 1, 32, NULL },
	  { EE, 52, 3, 1, 2, 64, NULL } }, 2, DLV_DANE_USABLE, 2, NULL },
	{ "full certificate data", { { EE, 52, 2, 0, 0, 300, NULL } }, 1,
	  DLV_DANE_USABLE, 1, NULL },
	{ "short SHA-256 digest", { { EE, 52, 3, 1, 1, 31, NULL } }, 1,
	  DLV_DANE_UNUSABLE, 0, NULL },
	{ "long SHA-512 digest", { { EE, 52, 3, 1, 2, 65, NULL } }, 1,
	  DLV_DANE_UNUSABLE, 0, NULL },
	{ "PKIX usages only", { { EE, 52, 0, 0, 1, 32, NULL },
	  { EE, 52, 1, 1, 1, 32, NULL } }, 2, DLV_DANE_UNUSABLE, 0, NULL },
	{ "unknown selector and mtype", { { EE, 52, 3, 2, 1, 32, NULL },
	  { EE, 52, 3, 1, 3, 32, NULL } }, 2, DLV_DANE_UNUSABLE, 0, NULL },
	{ "rdata shorter than 3", { { EE, 52, 3, 1, 1, 0, NULL } }, 1,
	  DLV_DANE_UNUSABLE, 0, NULL },
	{ "mixed usable and not", { { EE, 52, 1, 1, 1, 32, NULL },
	  { EE, 52, 3, 1, 1, 32, NULL } }, 2, DLV_DANE_USABLE, 1, NULL },
	{ "RRSIG skipped", { { EE, 52, 3, 1, 1, 32, NULL },
	  { EE, 46, 0, 0, 0, 0, NULL } }, 2, DLV_DANE_USABLE, 1, NULL },
	{ "another owner", { { "_25._tcp.mx2.example.test", 52, 3, 1, 1, 32,
	  NULL } }, 1, DLV_DANE_NONE, 0, NULL },
	{ "CNAME then TLSA", { { EE, 5, 0, 0, 0, 0,
	  "tlsa201._dane.example.test" },
	  { "tlsa201._dane.example.test", 52, 2, 0, 1, 32, NULL } }, 2,
	  DLV_DANE_USABLE, 1, NULL },
	{ "TLSA before its CNAME", {
	  { "b._dane.example.test", 52, 3, 1, 1, 32, NULL },
	  { "a._dane.example.test", 5, 0, 0, 0, 0, "b._dane.example.test" },
	  { EE, 5, 0, 0, 0, 0, "a._dane.example.test" } }, 3,
	  DLV_DANE_USABLE, 1, NULL },
	{ "CNAME of another name", { { "x.example.test", 5, 0, 0, 0, 0,
	  "t._dane.example.test" },
	  { "t._dane.example.test", 52, 3, 1, 1, 32, NULL } }, 2,
	  DLV_DANE_NONE, 0, NULL },
	{ "owner in another case", { { "_25._TCP.MX1.Example.Test", 52, 3,
	  1, 1, 32, NULL } }, 1, DLV_DANE_USABLE, 1, NULL },
	{ "nine usable records", {
	  { EE, 52, 3, 1, 1, 32, NULL }, { EE, 52, 3, 1, 1, 32, NULL },
	  { EE, 52, 3, 1, 1, 32, NULL }, { EE, 52, 3, 1, 1, 32, NULL },
	  { EE, 52, 3, 1, 1, 32, NULL }, { EE, 52, 3, 1, 1, 32, NULL },
	  { EE, 52, 3, 1, 1, 32, NULL }, { EE, 52, 3, 1, 1, 32, NULL },
	  { EE, 52, 3, 1, 1, 32, NULL } }, 9, DLV_DANE_ERROR, 0,
	  "too many TLSA records (over 8, or 512 octets)" },
	{ "data over the bound", { { EE, 52, 2, 0, 0, 400, NULL },
	  { EE, 52, 2, 0, 0, 200, NULL } }, 2, DLV_DANE_ERROR, 0,
	  "too many TLSA records (over 8, or 512 octets)" },
};

static void
test_answers(void **state)
{
	const struct tcase	*t;
	struct dlv_dane		 d;
	struct msg		 m;
	size_t			 i;
	int			 failures = 0;

	(void)state;
	for (i = 0; i < NELEM(cases); i++) {
		t = &cases[i];
		build(&m, t->rrs, t->nrrs);
		dlv_dane_answer(&d, QNAME, ARES_SUCCESS, m.b, (int)m.n, 1);
		if (d.state != t->want || d.ntlsa != t->want_usable ||
		    (t->want_why != NULL && strstr(d.why, t->want_why) ==
		    NULL)) {
			print_error("%s: got state %d with %zu usable (\"%s\"), "
			    "want %d with %zu\n", t->name, (int)d.state,
			    d.ntlsa, d.why, (int)t->want, t->want_usable);
			failures++;
		}
	}
	assert_int_equal(failures, 0);
}

/* the data of a usable record is kept as it came */
static void
test_record_data(void **state)
{
	static const struct rrspec rr[2] = {
		{ EE, 52, 1, 1, 1, 32, NULL }, { EE, 52, 2, 1, 2, 64, NULL } };
	struct dlv_dane	d;
	struct msg	m;
	size_t		k;

	(void)state;
	build(&m, rr, 2);
	dlv_dane_answer(&d, QNAME, ARES_SUCCESS, m.b, (int)m.n, 1);
	assert_int_equal(d.state, DLV_DANE_USABLE);
	assert_int_equal(d.ntlsa, 1);
	assert_int_equal(d.tlsa[0].usage, 2);
	assert_int_equal(d.tlsa[0].selector, 1);
	assert_int_equal(d.tlsa[0].mtype, 2);
	assert_int_equal(d.tlsa[0].len, 64);
	for (k = 0; k < 64; k++)
		assert_int_equal(d.data[d.tlsa[0].off + k],
		    (unsigned char)(16 + k));
}

/* statuses, the AD bit, and malformed answers */
static void
test_states(void **state)
{
	static const struct rrspec rr = { EE, 52, 3, 1, 1, 32, NULL };
	struct dlv_dane	d;
	struct msg	m;
	size_t		cut;

	(void)state;
	build(&m, &rr, 1);
	/* insecure TLSA RRset: as without DANE (RFC 7672 2.2) */
	dlv_dane_answer(&d, QNAME, ARES_SUCCESS, m.b, (int)m.n, 0);
	assert_int_equal(d.state, DLV_DANE_NONE);
	/* no records, secure or not */
	dlv_dane_answer(&d, QNAME, ARES_ENODATA, m.b, (int)m.n, 1);
	assert_int_equal(d.state, DLV_DANE_NONE);
	dlv_dane_answer(&d, QNAME, ARES_ENOTFOUND, NULL, 0, 1);
	assert_int_equal(d.state, DLV_DANE_NONE);
	/* a SERVFAIL from the validating resolver (bogus), a timeout */
	dlv_dane_answer(&d, QNAME, ARES_ESERVFAIL, NULL, 0, 0);
	assert_int_equal(d.state, DLV_DANE_ERROR);
	assert_non_null(strstr(d.why, "TLSA lookup for " QNAME " failed: "
	    "server failure"));
	dlv_dane_answer(&d, QNAME, ARES_ETIMEOUT, NULL, 0, 0);
	assert_int_equal(d.state, DLV_DANE_ERROR);
	/* every truncation of the answer is malformed, never read past */
	for (cut = 12; cut < m.n; cut++) {
		unsigned char *copy = malloc(cut);

		assert_non_null(copy);
		memcpy(copy, m.b, cut);
		dlv_dane_answer(&d, QNAME, ARES_SUCCESS, copy, (int)cut, 1);
		free(copy);
		assert_int_equal(d.state, DLV_DANE_ERROR);
		assert_non_null(strstr(d.why, "malformed answer"));
	}
	dlv_dane_answer(&d, QNAME, ARES_SUCCESS, m.b, 11, 1);
	assert_int_equal(d.state, DLV_DANE_ERROR);
	/* a name pointer that loops */
	m.b[12 + strlen(QNAME) + 2 + 4] = 0xc0;
	m.b[12 + strlen(QNAME) + 2 + 5] = (unsigned char)(12 + strlen(QNAME) +
	    2 + 4);
	dlv_dane_answer(&d, QNAME, ARES_SUCCESS, m.b, (int)m.n, 1);
	assert_int_equal(d.state, DLV_DANE_ERROR);
}

/* dlv_dane_expanded: the end of the CNAME chain of an address answer */
static void
test_expanded(void **state)
{
	static const struct rrspec chain[2] = {
		{ "a.example.test", 5, 0, 0, 0, 0, "b.example.test" },
		{ EE, 5, 0, 0, 0, 0, "a.example.test" } };
	static const struct rrspec loop[2] = {
		{ "a.example.test", 5, 0, 0, 0, 0, EE },
		{ EE, 5, 0, 0, 0, 0, "a.example.test" } };
	struct msg	m;
	char		out[256];

	(void)state;
	build(&m, chain, 2);
	assert_int_equal(dlv_dane_expanded(m.b, m.n, QNAME, out, sizeof(out)),
	    0);
	assert_string_equal(out, "b.example.test");
	build(&m, chain, 1);		/* no CNAME from QNAME */
	assert_int_equal(dlv_dane_expanded(m.b, m.n, QNAME, out, sizeof(out)),
	    0);
	assert_string_equal(out, "");
	build(&m, loop, 2);
	assert_int_equal(dlv_dane_expanded(m.b, m.n, QNAME, out, sizeof(out)),
	    -1);
	assert_int_equal(dlv_dane_expanded(m.b, 20, QNAME, out, sizeof(out)),
	    -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_answers),
		cmocka_unit_test(test_record_data),
		cmocka_unit_test(test_states),
		cmocka_unit_test(test_expanded),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
