#include "config.h"
/*
 * test_failtab.c - unit tests of common/failtab.c: counting in a fixed
 * window that opens at the first failure, expiry, independence of
 * addresses, IPv4-mapped IPv6 counted as IPv4 (and failtab_key, the
 * key smtpd_auth.c counts checks in flight by), the bound on the number
 * of addresses under many distinct ones.
 */

#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "common/failtab.h"

#define NELEM(a)	(sizeof(a) / sizeof((a)[0]))
#define WIN		600

/* sa_of - text address -> sockaddr (static storage, one of two slots) */
static const struct sockaddr *
sa_of(const char *text)
{
	static struct sockaddr_storage	ss[2];
	static int			slot;
	struct sockaddr_storage		*p = &ss[slot ^= 1];
	struct sockaddr_in		*s4 = (struct sockaddr_in *)(void *)p;
	struct sockaddr_in6		*s6 = (struct sockaddr_in6 *)(void *)p;

	memset(p, 0, sizeof(*p));
	if (inet_pton(AF_INET, text, &s4->sin_addr) == 1)
		s4->sin_family = AF_INET;
	else {
		assert_int_equal(inet_pton(AF_INET6, text, &s6->sin6_addr), 1);
		s6->sin6_family = AF_INET6;
	}
	return (const struct sockaddr *)p;
}

/* one step: add (or only count) a failure of addr at time t */
struct step {
	const char	*addr;
	time_t		 t;
	int		 add;
	unsigned	 want;	/* the count returned */
};

static void
test_window(void **state)
{
	static const struct step steps[] = {
		{ "192.0.2.1", 1000, 0, 0 },
		{ "192.0.2.1", 1000, 1, 1 },
		{ "192.0.2.1", 1010, 1, 2 },
		{ "192.0.2.2", 1010, 0, 0 },		/* another address */
		{ "::ffff:192.0.2.1", 1020, 1, 3 },	/* mapped = IPv4 */
		{ "::ffff:192.0.2.1", 1020, 0, 3 },
		{ "192.0.2.1", 1000 + WIN - 1, 0, 3 },	/* window still open */
		{ "192.0.2.1", 1000 + WIN, 0, 0 },	/* fixed: from the first */
		{ "192.0.2.1", 1000 + WIN, 1, 1 },	/* a new window */
		{ "192.0.2.1", 1000 + 2 * WIN - 1, 0, 1 },
		{ "192.0.2.1", 1000 + 2 * WIN, 0, 0 },
		{ "2001:db8::1", 5000, 1, 1 },
		{ "2001:db8::2", 5000, 0, 0 },
		{ "2001:db8::1", 5001, 1, 2 },
		{ "192.0.2.1", 5001, 0, 0 },
	};
	struct failtab	*t;
	unsigned	 got;
	size_t		 i;

	(void)state;
	assert_non_null(t = failtab_new(64));
	for (i = 0; i < NELEM(steps); i++) {
		if (steps[i].add)
			got = failtab_add(t, sa_of(steps[i].addr), WIN,
			    steps[i].t);
		else
			got = failtab_count(t, sa_of(steps[i].addr), WIN,
			    steps[i].t);
		if (got != steps[i].want)
			fail_msg("step %zu (%s %s at %lld): got %u, want %u", i,
			    steps[i].add ? "add" : "count", steps[i].addr,
			    (long long)steps[i].t, got, steps[i].want);
	}
	assert_int_equal(failtab_size(t, WIN, 5001), 1);
	assert_int_equal(failtab_size(t, WIN, 5000 + WIN), 0);
	failtab_free(t);
}

/* many addresses: the table never grows past its room */
static void
test_bounded(void **state)
{
	struct failtab	*t;
	char		 a[64];
	unsigned	 i;

	(void)state;
	assert_non_null(t = failtab_new(100));
	assert_true(failtab_cap(t) >= 100 && failtab_cap(t) < 400);
	/* an address at its limit, then a flood of single failures */
	for (i = 1; i <= 5; i++)
		assert_int_equal(failtab_add(t, sa_of("192.0.2.5"), WIN, 99), i);
	for (i = 0; i < 100000; i++) {
		snprintf(a, sizeof(a), "10.%u.%u.%u", (i >> 16) & 255,
		    (i >> 8) & 255, i & 255);
		assert_int_equal(failtab_add(t, sa_of(a), WIN, 100), 1);
	}
	assert_true(failtab_size(t, WIN, 100) <= failtab_cap(t));
	/* the flood evicted single failures, not the address at its limit */
	assert_int_equal(failtab_count(t, sa_of("192.0.2.5"), WIN, 100), 5);
	snprintf(a, sizeof(a), "10.1.134.159");		/* the last one */
	assert_int_equal(failtab_count(t, sa_of(a), WIN, 100), 1);
	/* expired entries are reused before live ones */
	assert_int_equal(failtab_size(t, WIN, 100 + WIN), 0);
	assert_int_equal(failtab_add(t, sa_of("192.0.2.9"), WIN, 100 + WIN), 1);
	assert_int_equal(failtab_add(t, sa_of("192.0.2.9"), WIN, 101 + WIN), 2);
	failtab_free(t);
	/* a NULL table counts nothing */
	assert_int_equal(failtab_count(NULL, sa_of("192.0.2.9"), WIN, 1), 0);
	assert_int_equal(failtab_add(NULL, sa_of("192.0.2.9"), WIN, 1), 0);
}

/* failtab_key: one key per address, IPv4 and its mapped form alike */
static void
test_key(void **state)
{
	struct sockaddr_storage	 un;
	unsigned char		 a[16], b[16];

	(void)state;
	assert_int_equal(failtab_key(sa_of("192.0.2.1"), a), 0);
	assert_int_equal(failtab_key(sa_of("::ffff:192.0.2.1"), b), 0);
	assert_memory_equal(a, b, 16);
	assert_int_equal(failtab_key(sa_of("192.0.2.2"), b), 0);
	assert_memory_not_equal(a, b, 16);
	assert_int_equal(failtab_key(sa_of("2001:db8::1"), b), 0);
	assert_memory_not_equal(a, b, 16);
	memset(&un, 0, sizeof(un));
	un.ss_family = AF_UNIX;
	assert_int_equal(failtab_key((struct sockaddr *)&un, a), -1);
	assert_int_equal(failtab_key(NULL, a), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_window),
		cmocka_unit_test(test_bounded),
		cmocka_unit_test(test_key),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
