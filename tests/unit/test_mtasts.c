#include "config.h"
/*
 * test_mtasts.c - unit tests of delivery/dlv_mtasts.c's parsers: the
 * _mta-sts TXT record (RFC 8461 3.1), the policy file (3.2, with LF or
 * CRLF line ends, unknown fields, duplicates, max_age's cap) and MX
 * pattern matching (4.1: a "*." pattern matches one left-most label).
 */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "delivery/dlv_int.h"

#define NELEM(a)	(sizeof(a) / sizeof((a)[0]))

static int	failures;

#define CHECK(cond, name, ...) do {					\
	if (!(cond)) {							\
		fprintf(stderr, "%s: ", (name));			\
		fprintf(stderr, __VA_ARGS__);				\
		fprintf(stderr, "\n");					\
		failures++;						\
	}								\
} while (0)

static void
test_txt(void **state)
{
	static const struct {
		const char	*in;
		int		 want;
		const char	*id;
	} t[] = {
		{ "v=STSv1; id=20160831085700Z;", 0, "20160831085700Z" },
		{ "v=STSv1;id=abc", 0, "abc" },
		{ "v=STSv1 ; id=abc ; ext=1", 0, "abc" },
		{ "v=STSv1; ext-1.x=y; id=A1", 0, "A1" },
		{ "v=STSv1", -1, NULL },		/* no id */
		{ "v=STSv1; id=", -1, NULL },
		{ "v=STSv1; id=a-b", -1, NULL },	/* not alphanumeric */
		{ "v=STSv1; id=123456789012345678901234567890123", -1, NULL },
		{ "v=STSv1; id=a; id=b", -1, NULL },
		{ "v=STSv1; junk", -1, NULL },
		{ "v=STSv10; id=a", 1, NULL },		/* not ours */
		{ "v=spf1 -all", 1, NULL },
		{ "V=STSv1; id=a", 1, NULL },		/* case-sensitive */
	};
	char	id[33];
	size_t	i;
	int	rc;

	(void)state;
	for (i = 0; i < NELEM(t); i++) {
		id[0] = '\0';
		rc = dlv_sts_txt_id(t[i].in, strlen(t[i].in), id);
		CHECK(rc == t[i].want, t[i].in, "got %d, want %d", rc,
		    t[i].want);
		if (rc == 0 && t[i].id != NULL)
			CHECK(strcmp(id, t[i].id) == 0, t[i].in,
			    "got id %s, want %s", id, t[i].id);
	}
	assert_int_equal(failures, 0);
}

static void
test_policy(void **state)
{
	static const struct {
		const char	*name;
		const char	*in;
		int		 want;
		int		 mode;
		size_t		 nmx;
		long		 max_age;
	} t[] = {
		{ "rfc", "version: STSv1\nmode: enforce\nmx: mail.example.com\n"
		  "mx: *.example.net\nmx: backupmx.example.com\n"
		  "max_age: 604800\n", 0, DLV_STS_ENFORCE, 3, 604800 },
		{ "crlf", "version: STSv1\r\nmode: testing\r\nmx: a.b\r\n"
		  "max_age: 1296000", 0, DLV_STS_TESTING, 1, 1296000 },
		{ "none without mx", "version: STSv1\nmode: none\n"
		  "max_age: 1\n", 0, DLV_STS_NONE, 0, 1 },
		{ "extension", "version: STSv1\nmode: enforce\nfoo: bar baz\n"
		  "mx: a.b\nmax_age: 5\n", 0, DLV_STS_ENFORCE, 1, 5 },
		{ "duplicate mode: first counts", "version: STSv1\n"
		  "mode: testing\nmode: enforce\nmx: a.b\nmax_age: 5\n", 0,
		  DLV_STS_TESTING, 1, 5 },
		{ "max_age cap", "version: STSv1\nmode: enforce\nmx: a.b\n"
		  "max_age: 9999999999\n", 0, DLV_STS_ENFORCE, 1, 31557600 },
		{ "no mx", "version: STSv1\nmode: enforce\nmax_age: 5\n", -1,
		  0, 0, 0 },
		{ "no version", "mode: enforce\nmx: a.b\nmax_age: 5\n", -1, 0,
		  0, 0 },
		{ "bad version", "version: STSv2\nmode: enforce\nmx: a.b\n"
		  "max_age: 5\n", -1, 0, 0, 0 },
		{ "bad mode", "version: STSv1\nmode: Enforce\nmx: a.b\n"
		  "max_age: 5\n", -1, 0, 0, 0 },
		{ "bad max_age", "version: STSv1\nmode: enforce\nmx: a.b\n"
		  "max_age: -5\n", -1, 0, 0, 0 },
		{ "long max_age", "version: STSv1\nmode: enforce\nmx: a.b\n"
		  "max_age: 12345678901\n", -1, 0, 0, 0 },
		{ "bad mx", "version: STSv1\nmode: enforce\nmx: a..b\n"
		  "max_age: 5\n", -1, 0, 0, 0 },
		{ "mid wildcard", "version: STSv1\nmode: enforce\nmx: a.*.b\n"
		  "max_age: 5\n", -1, 0, 0, 0 },
		{ "no colon", "version: STSv1\nmode enforce\nmx: a.b\n"
		  "max_age: 5\n", -1, 0, 0, 0 },
	};
	struct dlv_sts	 p;
	const char	*why;
	size_t		 i;
	int		 rc;

	(void)state;
	for (i = 0; i < NELEM(t); i++) {
		memset(&p, 0, sizeof(p));
		why = "";
		rc = dlv_sts_parse(t[i].in, strlen(t[i].in), &p, &why);
		CHECK(rc == t[i].want, t[i].name, "got %d (%s), want %d", rc,
		    why, t[i].want);
		if (rc != 0 || t[i].want != 0)
			continue;
		CHECK((int)p.mode == t[i].mode, t[i].name, "got mode %d, "
		    "want %d", (int)p.mode, t[i].mode);
		CHECK(p.nmx == t[i].nmx, t[i].name, "got %zu mx, want %zu",
		    p.nmx, t[i].nmx);
		CHECK(p.max_age == t[i].max_age, t[i].name, "got max_age "
		    "%ld, want %ld", p.max_age, t[i].max_age);
	}
	assert_int_equal(failures, 0);
}

static void
test_mx_match(void **state)
{
	static const struct {
		const char	*host;
		int		 want;
	} t[] = {
		{ "mail.example.com", 1 },
		{ "MAIL.Example.COM.", 1 },
		{ "x.example.net", 1 },
		{ "example.net", 0 },		/* the wildcard needs a label */
		{ "a.b.example.net", 0 },	/* only one label */
		{ "mail.example.com.evil", 0 },
		{ "other.example.com", 0 },
	};
	static const char *text = "version: STSv1\nmode: enforce\n"
	    "mx: Mail.Example.com\nmx: *.example.net\nmax_age: 86400\n";
	struct dlv_sts	 p;
	const char	*why;
	size_t		 i;
	int		 got;

	(void)state;
	memset(&p, 0, sizeof(p));
	assert_int_equal(dlv_sts_parse(text, strlen(text), &p, &why), 0);
	for (i = 0; i < NELEM(t); i++) {
		got = dlv_sts_mx_match(&p, t[i].host) != 0;
		CHECK(got == t[i].want, t[i].host, "got %d, want %d", got,
		    t[i].want);
	}
	assert_int_equal(failures, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_txt),
		cmocka_unit_test(test_policy),
		cmocka_unit_test(test_mx_match),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
