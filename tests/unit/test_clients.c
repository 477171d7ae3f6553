#include "config.h"
/*
 * test_clients.c - unit tests of smtpd/smtpd_clients.c, the per-client
 * session counts behind max_sessions_per_client.
 * A table of take/release steps on IPv4, IPv6 and IPv4-mapped addresses
 * (the mapped form counts as the IPv4 address; the port does not
 * matter), the cap, entries freed with their last session, and a churn
 * of many distinct addresses that must leave nothing behind (the memory
 * follows the sessions open now, not the addresses seen).
 * Failures print "got X, want Y".
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

#include "smtpd/smtpd_session.h"

#define NELEM(a)	(sizeof(a) / sizeof((a)[0]))

static int	failures;

#define CHECK(cond, name, ...) do {					\
	if (!(cond)) {							\
		print_error("%s: ", (name));				\
		print_error(__VA_ARGS__);				\
		print_error("\n");					\
		failures++;						\
	}								\
} while (0)

/* set_addr - s->ss from "192.0.2.1" or "2001:db8::1", with a port */
static void
set_addr(struct smtpd_session *s, const char *addr, unsigned port)
{
	struct sockaddr_in	*s4 = (struct sockaddr_in *)&s->ss;
	struct sockaddr_in6	*s6 = (struct sockaddr_in6 *)&s->ss;

	memset(&s->ss, 0, sizeof(s->ss));
	if (inet_pton(AF_INET, addr, &s4->sin_addr) == 1) {
		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)port);
		return;
	}
	assert_int_equal(inet_pton(AF_INET6, addr, &s6->sin6_addr), 1);
	s6->sin6_family = AF_INET6;
	s6->sin6_port = htons((uint16_t)port);
}

struct step {
	int		 take;		/* 1 take, 0 release */
	int		 slot;		/* session index */
	const char	*addr;		/* take: the address */
	int		 want;		/* take: the result */
	size_t		 entries;	/* addresses counted afterwards */
};

static void
test_take_release(void **state)
{
	static const struct step steps[] = {
		{ 1, 0, "192.0.2.1", 0, 1 },
		{ 1, 1, "192.0.2.1", 0, 1 },
		{ 1, 2, "::ffff:192.0.2.1", 1, 1 },	/* the same client, at 2 */
		{ 1, 3, "192.0.2.1", 1, 1 },
		{ 1, 4, "192.0.2.2", 0, 2 },
		{ 1, 5, "2001:db8::1", 0, 3 },
		{ 1, 6, "2001:db8::1", 0, 3 },
		{ 1, 7, "2001:db8::1", 1, 3 },
		{ 1, 8, "2001:db8::2", 0, 4 },
		{ 0, 0, NULL, 0, 4 },
		{ 1, 2, "::ffff:192.0.2.1", 0, 4 },	/* a slot is free again */
		{ 0, 1, NULL, 0, 4 },
		{ 0, 2, NULL, 0, 3 },		/* 192.0.2.1's last session */
		{ 0, 2, NULL, 0, 3 },		/* released twice: no effect */
		{ 0, 4, NULL, 0, 2 },
		{ 0, 5, NULL, 0, 2 },
		{ 0, 6, NULL, 0, 1 },
		{ 0, 8, NULL, 0, 0 },
		{ 1, 0, "::1", 0, 1 },
		{ 0, 0, NULL, 0, 0 },
	};
	struct smtpd_session	 s[9];
	size_t			 i, entries, nb;
	char			 name[64];
	int			 rc;

	(void)state;
	failures = 0;
	memset(s, 0, sizeof(s));
	for (i = 0; i < NELEM(steps); i++) {
		snprintf(name, sizeof(name), "step %zu", i);
		if (steps[i].take) {
			set_addr(&s[steps[i].slot], steps[i].addr,
			    1000 + (unsigned)i);
			rc = smtpd_client_take(&s[steps[i].slot], 2);
			CHECK(rc == steps[i].want, name, "%s: got %d, want %d",
			    steps[i].addr, rc, steps[i].want);
			CHECK((s[steps[i].slot].client != NULL) == (rc == 0),
			    name, "client set: got %d, want %d",
			    s[steps[i].slot].client != NULL, rc == 0);
		} else {
			smtpd_client_release(&s[steps[i].slot]);
			CHECK(s[steps[i].slot].client == NULL, name,
			    "got a client after release, want none");
		}
		smtpd_clients_stats(&entries, &nb);
		CHECK(entries == steps[i].entries, name,
		    "entries: got %zu, want %zu", entries, steps[i].entries);
	}
	smtpd_clients_free();
	smtpd_clients_stats(&entries, &nb);
	CHECK(nb == 0, "free", "buckets: got %zu, want 0", nb);
	assert_int_equal(failures, 0);
}

/* many addresses at once grow the table; churn does not */
static void
test_bounded(void **state)
{
	struct smtpd_session	*s;
	char			 addr[64];
	size_t			 i, n = 5000, entries, nb, peak;

	(void)state;
	failures = 0;
	assert_non_null(s = calloc(n, sizeof(*s)));
	for (i = 0; i < n; i++) {
		snprintf(addr, sizeof(addr), "2001:db8::%zx:%zx", i >> 16,
		    i & 0xffff);
		set_addr(&s[i], addr, 25);
		CHECK(smtpd_client_take(&s[i], 1) == 0, addr, "got refused");
	}
	smtpd_clients_stats(&entries, &peak);
	CHECK(entries == n, "peak", "entries: got %zu, want %zu", entries, n);
	CHECK(peak >= n && peak <= 4 * n, "peak", "buckets: got %zu, want "
	    "%zu..%zu", peak, n, 4 * n);
	for (i = 0; i < n; i++)
		smtpd_client_release(&s[i]);
	smtpd_clients_stats(&entries, &nb);
	CHECK(entries == 0, "released", "entries: got %zu, want 0", entries);

	/* 100000 distinct addresses, one session at a time */
	for (i = 0; i < 100000; i++) {
		snprintf(addr, sizeof(addr), "10.%zu.%zu.%zu", (i >> 16) & 255,
		    (i >> 8) & 255, i & 255);
		set_addr(&s[0], addr, 25);
		CHECK(smtpd_client_take(&s[0], 1) == 0, addr, "got refused");
		smtpd_client_release(&s[0]);
	}
	smtpd_clients_stats(&entries, &nb);
	CHECK(entries == 0, "churn", "entries: got %zu, want 0", entries);
	CHECK(nb == peak, "churn", "buckets: got %zu, want %zu", nb, peak);
	smtpd_clients_free();
	free(s);
	assert_int_equal(failures, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_take_release),
		cmocka_unit_test(test_bounded),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
