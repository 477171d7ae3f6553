#include "config.h"
/*
 * test_metrics.c - unit tests of common/metrics.c: label value escaping,
 * the closed label sets (a value outside them is no new series), the
 * histograms' bucket placement (le is inclusive, cumulative output,
 * +Inf = _count), every family's HELP and TYPE without samples, the
 * milter table's escaping and bound, the final newline.
 */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "common/buf.h"
#include "common/metrics.h"

#define NELEM(a)	(sizeof(a) / sizeof((a)[0]))

#define CHECK(cond, name, ...) do {					\
	if (!(cond)) {							\
		print_error("%s: ", name);				\
		print_error(__VA_ARGS__);				\
		print_error("\n");					\
		fail();							\
	}								\
} while (0)

/* render - the whole exposition (static buffer, reused) */
static const char *
render(void)
{
	static struct buf		b;
	static const struct metrics_queue_gauge q[] = {
		{ "normal", 3, 12 }, { "other", 0, 0 },
	};

	buf_free(&b);
	buf_init(&b, 1024 * 1024);
	assert_int_equal(metrics_render(&b, q, NELEM(q), 4096), 0);
	return b.data;
}

/* has - text holds line (a whole line) */
static int
has(const char *text, const char *line)
{
	size_t	n = strlen(line);
	const char *p;

	for (p = text; (p = strstr(p, line)) != NULL; p++)
		if ((p == text || p[-1] == '\n') && p[n] == '\n')
			return 1;
	return 0;
}

struct esc_case {
	const char	*in;
	const char	*want;	/* NULL: does not fit in 8 */
};

static void
test_escape(void **state)
{
	static const struct esc_case cases[] = {
		{ "plain", "plain" },
		{ "a\"b", "a\\\"b" },
		{ "a\\b", "a\\\\b" },
		{ "a\nb", "a\\nb" },
		{ "", "" },
		{ "1234567", "1234567" },
		{ "12345678", NULL },
		{ "123456\"", NULL },
	};
	char	out[8];
	size_t	i;
	int	rc;

	(void)state;
	for (i = 0; i < NELEM(cases); i++) {
		rc = metrics_escape(out, sizeof(out), cases[i].in);
		if (cases[i].want == NULL)
			CHECK(rc == -1, cases[i].in, "got %d, want -1", rc);
		else
			CHECK(rc == 0 && strcmp(out, cases[i].want) == 0,
			    cases[i].in, "got %d \"%s\", want \"%s\"", rc,
			    rc == 0 ? out : "", cases[i].want);
	}
}

static void
test_families(void **state)
{
	static const char *const fam[][2] = {
		{ "waymark_queue_messages", "gauge" },
		{ "waymark_queue_oldest_seconds", "gauge" },
		{ "waymark_deliveries_total", "counter" },
		{ "waymark_delivery_attempt_seconds", "histogram" },
		{ "waymark_message_delay_seconds", "histogram" },
		{ "waymark_smtp_sessions", "gauge" },
		{ "waymark_smtp_rejects_total", "counter" },
		{ "waymark_tls_outbound_total", "counter" },
		{ "waymark_dkim_signatures_total", "counter" },
		{ "waymark_milter_actions_total", "counter" },
		{ "waymark_spool_free_bytes", "gauge" },
	};
	const char	*t;
	char		 line[200];
	size_t		 i;

	(void)state;
	t = render();
	CHECK(t[strlen(t) - 1] == '\n', "final newline", "got none");
	for (i = 0; i < NELEM(fam); i++) {
		snprintf(line, sizeof(line), "# TYPE %s %s", fam[i][0],
		    fam[i][1]);
		CHECK(has(t, line), fam[i][0], "got no \"%s\"", line);
		snprintf(line, sizeof(line), "# HELP %s ", fam[i][0]);
		CHECK(strstr(t, line) != NULL, fam[i][0], "got no HELP");
	}
	CHECK(has(t, "waymark_queue_messages{state=\"normal\"} 3"), "gauge",
	    "got no normal 3");
	CHECK(has(t, "waymark_queue_oldest_seconds{state=\"normal\"} 12"),
	    "oldest", "got no normal 12");
	CHECK(has(t, "waymark_spool_free_bytes 4096"), "spool", "got none");
	CHECK(has(t, "waymark_deliveries_total{result=\"failed\","
	    "transport=\"lmtp\"} 0"), "zeros", "got no zero row");
	CHECK(strstr(t, "waymark_smtp_rejects_total{") == NULL, "rejects",
	    "got a code never sent");
}

static void
test_counts(void **state)
{
	const char	*t;

	(void)state;
	metrics_delivery("relayed", "smtp");
	metrics_delivery("relayed", "smtp");
	metrics_delivery("bounced", "smtp");		/* not a result */
	metrics_delivery("delivered", "local");		/* not a transport */
	metrics_smtp_reject(550);
	metrics_smtp_reject(250);			/* not a reject */
	metrics_smtp_reject(600);
	metrics_tls_outbound("none", "cleartext");
	metrics_tls_outbound("dane", "verified");
	metrics_tls_outbound("dane", "bogus");
	metrics_dkim_signature("ed25519-sha256");
	metrics_dkim_signature("rsa-sha1");
	metrics_smtp_session(1);
	metrics_smtp_session(1);
	metrics_smtp_session(-1);
	t = render();
	CHECK(has(t, "waymark_deliveries_total{result=\"relayed\","
	    "transport=\"smtp\"} 2"), "relayed", "got no 2");
	CHECK(strstr(t, "bounced") == NULL && strstr(t, "\"local\"") == NULL,
	    "closed sets", "got a new series");
	CHECK(has(t, "waymark_smtp_rejects_total{code=\"550\"} 1"), "550",
	    "got no 1");
	CHECK(strstr(t, "code=\"250\"") == NULL &&
	    strstr(t, "code=\"600\"") == NULL, "codes", "got a non-reject");
	CHECK(has(t, "waymark_tls_outbound_total{policy=\"dane\","
	    "result=\"verified\"} 1"), "tls", "got no 1");
	CHECK(strstr(t, "bogus") == NULL, "tls results", "got bogus");
	CHECK(has(t, "waymark_dkim_signatures_total{alg=\"ed25519-sha256\"} 1"),
	    "dkim", "got no 1");
	CHECK(strstr(t, "rsa-sha1") == NULL, "dkim algs", "got rsa-sha1");
	CHECK(has(t, "waymark_smtp_sessions 1"), "sessions", "got no 1");
}

static void
test_histograms(void **state)
{
	static const double obs[] = { 0, 0.005, 0.0051, 1, 299, 301, -2 };
	static const char *const want[] = {
		"waymark_delivery_attempt_seconds_bucket{le=\"0.005\"} 3",
		"waymark_delivery_attempt_seconds_bucket{le=\"0.01\"} 4",
		"waymark_delivery_attempt_seconds_bucket{le=\"0.5\"} 4",
		"waymark_delivery_attempt_seconds_bucket{le=\"1\"} 5",
		"waymark_delivery_attempt_seconds_bucket{le=\"300\"} 6",
		"waymark_delivery_attempt_seconds_bucket{le=\"+Inf\"} 7",
		"waymark_delivery_attempt_seconds_count 7",
		"waymark_message_delay_seconds_bucket{le=\"+Inf\"} 1",
		"waymark_message_delay_seconds_bucket{le=\"432000\"} 0",
		"waymark_message_delay_seconds_count 1",
	};
	const char	*t;
	size_t		 i;

	(void)state;
	for (i = 0; i < NELEM(obs); i++)
		metrics_delivery_attempt(obs[i]);
	metrics_message_delay(500000);
	t = render();
	for (i = 0; i < NELEM(want); i++)
		CHECK(has(t, want[i]), want[i], "got no such line");
	CHECK(strstr(t, "waymark_delivery_attempt_seconds_sum 601.01") != NULL,
	    "sum", "got another sum");
}

static void
test_milters(void **state)
{
	char		 name[32];
	const char	*t;
	size_t		 i;

	(void)state;
	metrics_milter_declare("unix:/run/a\"b");
	metrics_milter_action("inet:127.0.0.1:8891", "reject");
	metrics_milter_action("inet:127.0.0.1:8891", "frobnicate");
	t = render();
	CHECK(has(t, "waymark_milter_actions_total{milter=\"unix:/run/a\\\"b\","
	    "action=\"accept\"} 0"), "declared", "got no escaped row");
	CHECK(has(t, "waymark_milter_actions_total{milter=\"inet:127.0.0.1:"
	    "8891\",action=\"reject\"} 1"), "action", "got no 1");
	CHECK(strstr(t, "frobnicate") == NULL, "actions", "got frobnicate");
	for (i = 0; i < METRICS_MILTERS + 5; i++) {
		snprintf(name, sizeof(name), "inet:m%zu:1", i);
		metrics_milter_action(name, "accept");
	}
	t = render();
	snprintf(name, sizeof(name), "inet:m%d:1", METRICS_MILTERS - 2);
	CHECK(strstr(t, name) == NULL, "bound", "got %s past the bound", name);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_escape),
		cmocka_unit_test(test_families),
		cmocka_unit_test(test_counts),
		cmocka_unit_test(test_histograms),
		cmocka_unit_test(test_milters),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
