#include "config.h"
/*
 * test_intl.c - unit tests of common/intl.c (SMTPUTF8) and of the
 * UTF-8 paths of common/syntax.c: the RFC 3629 validator, whole and fed
 * octet by octet (overlongs, surrogates, lone continuation octets, code
 * points above U+10FFFF, sequences cut short), U-labels to A-labels
 * (libidn2), NFC local parts, the compared address form, and
 * smtp_parse_path with UTF-8 local parts and domains.
 * Failures print the case name.
 */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "common/intl.h"
#include "common/syntax.h"

#define NELEM(a)	(sizeof(a) / sizeof((a)[0]))

static const struct {
	const char	*name;
	const char	*s;
	int		 valid;
} u8cases[] = {
	{ "ascii", "jurgen", 1 },
	{ "empty", "", 1 },
	{ "2-octet", "j\xc3\xbcrgen", 1 },
	{ "3-octet", "\xe7\x94\xa8\xe6\x88\xb7", 1 },
	{ "4-octet", "\xf0\x9f\x93\xa7", 1 },
	{ "U+10FFFF", "\xf4\x8f\xbf\xbf", 1 },
	{ "U+D7FF", "\xed\x9f\xbf", 1 },
	{ "U+E000", "\xee\x80\x80", 1 },
	{ "lone continuation", "a\x80" "b", 0 },
	{ "lone continuation BF", "\xbf", 0 },
	{ "overlong C0", "\xc0\xaf", 0 },
	{ "overlong C1", "\xc1\xbf", 0 },
	{ "overlong E0", "\xe0\x80\xaf", 0 },
	{ "overlong E0 9F", "\xe0\x9f\xbf", 0 },
	{ "overlong F0", "\xf0\x80\x80\xaf", 0 },
	{ "surrogate D800", "\xed\xa0\x80", 0 },
	{ "surrogate DFFF", "\xed\xbf\xbf", 0 },
	{ "above U+10FFFF", "\xf4\x90\x80\x80", 0 },
	{ "F5", "\xf5\x80\x80\x80", 0 },
	{ "FF", "\xff", 0 },
	{ "cut 2-octet", "\xc3", 0 },
	{ "cut 3-octet", "\xe7\x94", 0 },
	{ "cut 4-octet", "\xf0\x9f\x93", 0 },
	{ "lead then ascii", "\xc3" "a", 0 },
	{ "two leads", "\xc3\xc3\xbc", 0 },
};

static void
test_validator(void **state)
{
	struct utf8_stream	u;
	size_t			i, k, n;

	(void)state;
	for (i = 0; i < NELEM(u8cases); i++) {
		n = strlen(u8cases[i].s);
		if (utf8_valid(u8cases[i].s, n) != u8cases[i].valid)
			fail_msg("%s: utf8_valid got %d", u8cases[i].name,
			    !u8cases[i].valid);
		/* the stream form, fed one octet at a time */
		memset(&u, 0, sizeof(u));
		for (k = 0; k < n; k++)
			utf8_stream_feed(&u, u8cases[i].s + k, 1);
		utf8_stream_end(&u);
		if (u.bad == u8cases[i].valid)
			fail_msg("%s: utf8_stream got bad=%d", u8cases[i].name,
			    u.bad);
		/* and whole */
		memset(&u, 0, sizeof(u));
		utf8_stream_feed(&u, u8cases[i].s, n);
		utf8_stream_end(&u);
		if (u.bad == u8cases[i].valid)
			fail_msg("%s: utf8_stream (whole) got bad=%d",
			    u8cases[i].name, u.bad);
	}
	assert_int_equal(str_nonascii("abc", 3), 0);
	assert_int_equal(str_nonascii("a\xc3\xbc", 3), 1);
}

static void
test_domains(void **state)
{
	static const struct {
		const char *in, *out;
	} t[] = {
		{ "b\xc3\xbc" "cher.test", "xn--bcher-kva.test" },
		{ "B\xc3\x9c" "CHER.test", "xn--bcher-kva.test" },
		{ "\xe4\xbe\x8b\xe5\xad\x90.test", "xn--fsqu00a.test" },
		{ "stra\xc3\x9f" "e.de", "xn--strae-oqa.de" },	/* non-transitional */
		{ "u\xcc\x88.test", "xn--tda.test" },		/* NFC */
		{ "Example.ORG", "example.org" },
		{ "xn--bcher-kva.test", "xn--bcher-kva.test" },
		{ "[127.0.0.1]", "[127.0.0.1]" },
	};
	char	out[256];
	size_t	i;

	(void)state;
	for (i = 0; i < NELEM(t); i++) {
		if (intl_domain_ascii(t[i].in, out, sizeof(out)) != 0)
			fail_msg("%s: refused", t[i].out);
		if (strcmp(out, t[i].out) != 0)
			fail_msg("%s: got %s", t[i].out, out);
	}
	assert_int_equal(intl_domain_ascii("-ab\xc3\xbc.test", out,
	    sizeof(out)), -1);
	assert_int_equal(intl_domain_ascii("b\xed\xa0\x80.test", out,
	    sizeof(out)), -1);
	assert_int_equal(intl_domain_ascii("b\xc3\xbc" "cher.test", out, 8),
	    -1);
}

static void
test_nfc(void **state)
{
	char	out[128];

	(void)state;
	assert_int_equal(intl_local_nfc("ju\xcc\x88rgen", out, sizeof(out)), 0);
	assert_string_equal(out, "j\xc3\xbcrgen");
	assert_int_equal(intl_local_nfc("J\xc3\xbcrgen", out, sizeof(out)), 0);
	assert_string_equal(out, "J\xc3\xbcrgen");		/* no case folding */
	assert_int_equal(intl_local_nfc("a\x80", out, sizeof(out)), -1);
	assert_int_equal(intl_addr_key("ju\xcc\x88rgen@B\xc3\xbc" "cher.test",
	    out, sizeof(out)), 0);
	assert_string_equal(out, "j\xc3\xbcrgen@xn--bcher-kva.test");
}

static void
test_paths(void **state)
{
	struct mailpath	 p;
	const char	*why;
	const char	*ok1 = "<j\xc3\xbcrgen@b\xc3\xbc" "cher.test>";
	const char	*ok2 = "<\"j\xc3\xbc rgen\"@example.org>";
	const char	*ok3 = "<a@example.org>";
	const char	*bad1 = "<j\xc0\xafrgen@example.org>";
	const char	*bad2 = "<a@b\xed\xa0\x80.test>";
	const char	*bad3 = "<a@b\xc3\xbc_x.test>";

	(void)state;
	assert_int_equal(smtp_parse_path(ok1, strlen(ok1), &p, &why),
	    (int)strlen(ok1));
	assert_int_equal(p.utf8, 1);
	assert_string_equal(p.domain, "b\xc3\xbc" "cher.test");
	assert_int_equal(smtp_parse_path(ok2, strlen(ok2), &p, &why),
	    (int)strlen(ok2));
	assert_int_equal(p.utf8, 1);
	assert_int_equal(smtp_parse_path(ok3, strlen(ok3), &p, &why),
	    (int)strlen(ok3));
	assert_int_equal(p.utf8, 0);
	assert_int_equal(smtp_parse_path(bad1, strlen(bad1), &p, &why), -1);
	assert_int_equal(p.badutf8, 1);
	assert_int_equal(smtp_parse_path(bad2, strlen(bad2), &p, &why), -1);
	assert_int_equal(p.badutf8, 1);
	assert_int_equal(smtp_parse_path(bad3, strlen(bad3), &p, &why), -1);
	assert_int_equal(p.badutf8, 0);
}

static void
test_param(void **state)
{
	struct esmtp_params	 ep;
	const char		*why;
	const char		*orcpt = "ORCPT=utf-8;\xe7\x94\xa8@x.test";

	(void)state;
	assert_int_equal(esmtp_parse_params("SMTPUTF8", 8, PARAM_MAIL,
	    EXT_SMTPUTF8, &ep, &why), PARAM_OK);
	assert_int_equal(ep.smtputf8, 1);
	assert_int_equal(esmtp_parse_params("SMTPUTF8=x", 10, PARAM_MAIL,
	    EXT_SMTPUTF8, &ep, &why), PARAM_SYNTAX);
	assert_int_equal(esmtp_parse_params("SMTPUTF8", 8, PARAM_MAIL,
	    0, &ep, &why), PARAM_UNKNOWN);
	assert_int_equal(esmtp_parse_params(orcpt, strlen(orcpt), PARAM_RCPT,
	    EXT_DSN | EXT_SMTPUTF8, &ep, &why), PARAM_OK);
	assert_string_equal(ep.orcpt, "utf-8;\xe7\x94\xa8@x.test");
	assert_int_equal(esmtp_parse_params(orcpt, strlen(orcpt), PARAM_RCPT,
	    EXT_DSN, &ep, &why), PARAM_SYNTAX);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_validator),
		cmocka_unit_test(test_domains),
		cmocka_unit_test(test_nfc),
		cmocka_unit_test(test_paths),
		cmocka_unit_test(test_param),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
