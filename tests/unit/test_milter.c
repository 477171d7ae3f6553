/*
 * test_milter.c - filter/milter.c's SMFIR_REPLYCODE check
 * (milter_parse_reply): Postfix's milter8_valid_smtp_reply rules.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "filter/milter.h"

struct reply_case {
	const char	*in;
	int		 rc, code, cls, subj, det;
	const char	*text;
};

static const struct reply_case cases[] = {
	{ "550 5.7.1 Go away", 0, 550, 5, 7, 1, "Go away" },
	{ "451 4.7.1 Try later", 0, 451, 4, 7, 1, "Try later" },
	{ "554 No enhanced code", 0, 554, 5, 0, 0, "No enhanced code" },
	{ "550-5.7.1 first\r\n550 5.7.1 second", 0, 550, 5, 7, 1,
	  "first\nsecond" },
	{ "550 5.7.1 100%% sure, 50% off", 0, 550, 5, 7, 1,
	  "100% sure, 50 off" },
	{ "250 2.0.0 Ok", -1, 0, 0, 0, 0, NULL },	/* not 4xx/5xx */
	{ "550 4.7.1 class differs", -1, 0, 0, 0, 0, NULL },
	{ "550-5.7.1 first\r\n451 4.7.1 second", -1, 0, 0, 0, 0, NULL },
	{ "550 5.7.1 first\r\n550 5.7.1 second", -1, 0, 0, 0, 0, NULL },
	{ "55 short", -1, 0, 0, 0, 0, NULL },
	{ "", -1, 0, 0, 0, 0, NULL },
};

static void
test_parse_reply(void **state)
{
	const struct reply_case	*c;
	char			 text[512];
	int			 code, cls, subj, det, rc;

	(void)state;
	for (c = cases; c < cases + sizeof(cases) / sizeof(cases[0]); c++) {
		code = cls = subj = det = 0;
		rc = milter_parse_reply(c->in, &code, &cls, &subj, &det, text,
		    sizeof(text));
		if (rc != c->rc)
			fail_msg("\"%s\": got %d, want %d", c->in, rc, c->rc);
		if (rc != 0)
			continue;
		assert_int_equal(code, c->code);
		assert_int_equal(cls, c->cls);
		assert_int_equal(subj, c->subj);
		assert_int_equal(det, c->det);
		assert_string_equal(text, c->text);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_reply),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
