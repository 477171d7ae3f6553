#include "config.h"
/*
 * test_sendmail.c - unit tests of the pure parts of tools/tools_sendmail.c:
 * the MTRK certifier (RFC 3885 test vector), -N canonicalisation, the
 * RFC 5322 address-list parser used by -t (display names, comments,
 * groups, quoted local parts, source routes), and the option parser.
 * Failures print "got X, want Y".
 */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "tools/tools.h"

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

static void
test_certifier(void **state)
{
	char	out[64];
	int	n;

	(void)state;
	failures = 0;
	n = sendmail_certifier((const unsigned char *)"abcdefgh", 8, out,
	    sizeof(out));
	CHECK(n == 27, "abcdefgh length", "got %d, want 27", n);
	CHECK(strcmp(out, "QlrxKgdDUCsyLpOgFbz4aOMk1Wo") == 0, "abcdefgh",
	    "got %s, want QlrxKgdDUCsyLpOgFbz4aOMk1Wo", out);
	n = sendmail_certifier((const unsigned char *)"abcdefgh", 8, out, 27);
	CHECK(n == -1, "short output", "got %d, want -1", n);
	assert_int_equal(failures, 0);
}

struct notify_case {
	const char	*in;
	const char	*want;		/* NULL = refused */
};

static void
test_notify(void **state)
{
	static const struct notify_case cases[] = {
		{ "never", "NEVER" },
		{ "NEVER", "NEVER" },
		{ "success", "SUCCESS" },
		{ "success,failure,delay", "SUCCESS,FAILURE,DELAY" },
		{ "delay,Success", "DELAY,SUCCESS" },
		{ "failure", "FAILURE" },
		{ "", NULL },
		{ "never,success", NULL },
		{ "success,never", NULL },
		{ "success,success", NULL },
		{ "success,", NULL },
		{ ",success", NULL },
		{ "sometimes", NULL },
		{ "succes", NULL },
	};
	char	out[32];
	size_t	i;
	int	r;

	(void)state;
	failures = 0;
	for (i = 0; i < NELEM(cases); i++) {
		r = sendmail_notify_canon(cases[i].in, out, sizeof(out));
		if (cases[i].want == NULL)
			CHECK(r == -1, cases[i].in, "got %d (%s), want -1", r,
			    r == 0 ? out : "");
		else
			CHECK(r == 0 && strcmp(out, cases[i].want) == 0,
			    cases[i].in, "got %d %s, want %s", r,
			    r == 0 ? out : "", cases[i].want);
	}
	assert_int_equal(failures, 0);
}

struct addr_case {
	const char	*in;
	const char	*want;		/* space-separated; NULL = error */
};

static void
test_header_addrs(void **state)
{
	static const struct addr_case cases[] = {
		{ " a@example.org", "a@example.org" },
		{ " <a@example.org>", "a@example.org" },
		{ " John Smith <j@example.org>, b@example.org",
		  "j@example.org b@example.org" },
		{ " \"Smith, John\" <j@example.org>", "j@example.org" },
		{ " j@example.org (John, Smith)", "j@example.org" },
		{ " (c) \"x\" <a@b.example> (d),\r\n\tc@d.example",
		  "a@b.example c@d.example" },
		{ " undisclosed-recipients:;", "" },
		{ " team: a@x.example, B <b@x.example>; c@y.example",
		  "a@x.example b@x.example c@y.example" },
		{ " \"odd local\"@example.org", "\"odd local\"@example.org" },
		{ " <@relay.example:u@example.org>", "u@example.org" },
		{ " a@[192.0.2.1]", "a@[192.0.2.1]" },
		{ " a@example.org, a@example.org", "a@example.org" },
		{ " ,, ,", "" },
		{ " <a@example.org", NULL },
		{ " a@example.org>", NULL },
		{ " (unclosed a@example.org", NULL },
		{ " \"unclosed@example.org", NULL },
	};
	struct sendmail_rcpts	r;
	char			got[512];
	size_t			i, j, off;
	int			rv;

	(void)state;
	failures = 0;
	for (i = 0; i < NELEM(cases); i++) {
		memset(&r, 0, sizeof(r));
		rv = sendmail_header_addrs(cases[i].in, strlen(cases[i].in),
		    &r);
		got[0] = '\0';
		for (j = 0, off = 0; j < r.n; j++)
			off += (size_t)snprintf(got + off, sizeof(got) - off,
			    "%s%s", j ? " " : "", r.v[j]);
		if (cases[i].want == NULL)
			CHECK(rv == -1, cases[i].in, "got %d \"%s\", want -1",
			    rv, got);
		else
			CHECK(rv == 0 && strcmp(got, cases[i].want) == 0,
			    cases[i].in, "got %d \"%s\", want \"%s\"", rv, got,
			    cases[i].want);
		sendmail_rcpts_free(&r);
	}
	assert_int_equal(failures, 0);
}

static void
test_options(void **state)
{
	struct sendmail_opts	o;
	char *a1[] = { "-ti", "-fme@x.example", "-F", "Me", "-N",
		"success,delay", "-Rhdrs", "-V", "id1", "--track", "-oi",
		"-odb", "r@y.example" };
	char *a2[] = { "-C", "f.conf" };
	char *a3[] = { "-N", "bogus" };
	char *a4[] = { "-f" };
	char *a5[] = { "-bp" };
	char *a6[] = { "--", "-x@y.example" };

	(void)state;
	memset(&o, 0, sizeof(o));
	assert_int_equal(sendmail_parse(NELEM(a1), a1, 0, &o), 0);
	assert_true(o.extract && o.ignore_dots && o.track);
	assert_string_equal(o.from, "me@x.example");
	assert_string_equal(o.fullname, "Me");
	assert_string_equal(o.notify, "SUCCESS,DELAY");
	assert_string_equal(o.ret, "HDRS");
	assert_string_equal(o.envid, "id1");
	assert_int_equal(o.nrcpts, 1);
	assert_string_equal(o.rcpts[0], "r@y.example");

	memset(&o, 0, sizeof(o));
	assert_int_equal(sendmail_parse(NELEM(a2), a2, 0, &o), EX_WM_USAGE);
	memset(&o, 0, sizeof(o));
	assert_int_equal(sendmail_parse(NELEM(a2), a2, 1, &o), 0);
	assert_string_equal(o.conf, "f.conf");
	memset(&o, 0, sizeof(o));
	assert_int_equal(sendmail_parse(NELEM(a3), a3, 0, &o), EX_WM_USAGE);
	memset(&o, 0, sizeof(o));
	assert_int_equal(sendmail_parse(NELEM(a4), a4, 0, &o), EX_WM_USAGE);
	memset(&o, 0, sizeof(o));
	assert_int_equal(sendmail_parse(NELEM(a5), a5, 1, &o), 0);
	assert_true(o.mailq);
	memset(&o, 0, sizeof(o));
	assert_int_equal(sendmail_parse(NELEM(a6), a6, 0, &o), 0);
	assert_int_equal(o.nrcpts, 1);
	assert_string_equal(o.rcpts[0], "-x@y.example");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_certifier),
		cmocka_unit_test(test_notify),
		cmocka_unit_test(test_header_addrs),
		cmocka_unit_test(test_options),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
