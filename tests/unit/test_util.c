#include "config.h"
/*
 * test_util.c - unit tests of common/util.c, plus the small pieces of
 * common/buf.c, common/log.c (log_escape) and common/work.c.
 * RFC 5322 dates (TZ forced to UTC and to a fixed offset), queue ids
 * (length, alphabet, strictly increasing, floor from qid_init), qid_valid,
 * sockaddr_text / sockaddr_literal for IPv4, IPv6 and IPv4-mapped,
 * mkdir_p, buffer limits, escaping, the worker pool hand-back, and the
 * disconnect counters (verb_counters), host_port_split, and network
 * text made safe (text_safe, utf8_repair: controls, C1, broken UTF-8).
 * Failures print "got X, want Y".
 */

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include <event2/event.h>
#include <event2/thread.h>

#include "common/buf.h"
#include "common/log.h"
#include "common/util.h"
#include "common/work.h"

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

struct date_case {
	const char	*tz;
	time_t		 t;
	const char	*want;
};

static void
test_date(void **state)
{
	static const struct date_case cases[] = {
		{ "UTC", 0, "Thu, 1 Jan 1970 00:00:00 +0000" },
		{ "UTC", 1741083302, "Tue, 4 Mar 2025 10:15:02 +0000" },
		{ "UTC", 1798765323, "Fri, 1 Jan 2027 01:02:03 +0000" },
		{ "UTC", 951782400, "Tue, 29 Feb 2000 00:00:00 +0000" },
		{ "<+0130>-1:30", 1741083302, "Tue, 4 Mar 2025 11:45:02 +0130" },
		{ "<-05>5", 1741083302, "Tue, 4 Mar 2025 05:15:02 -0500" },
	};
	char	out[64];
	size_t	i;
	int	rc;

	(void)state;
	failures = 0;
	for (i = 0; i < NELEM(cases); i++) {
		setenv("TZ", cases[i].tz, 1);
		tzset();
		rc = rfc5322_date(cases[i].t, out, sizeof(out));
		CHECK(rc == 0 && strcmp(out, cases[i].want) == 0, cases[i].want,
		    "got %d \"%s\", want 0 \"%s\"", rc, rc == 0 ? out : "",
		    cases[i].want);
	}
	setenv("TZ", "UTC", 1);
	tzset();
	assert_int_equal(rfc5322_date(0, out, 10), -1);
	assert_int_equal(rfc5322_date(0, out, 31), 0);
	assert_int_equal(rfc5322_date(0, out, 30), -1);
	assert_int_equal(failures, 0);
}

static int
b62(const char *s, size_t n, uint64_t *v)
{
	static const char alpha[] =
	    "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
	const char	*p;
	size_t		 i;

	*v = 0;
	for (i = 0; i < n; i++) {
		if ((p = strchr(alpha, s[i])) == NULL || s[i] == '\0')
			return -1;
		*v = *v * 62 + (uint64_t)(p - alpha);
	}
	return 0;
}

static void
test_qid(void **state)
{
	char		prev[QID_SIZE], cur[QID_SIZE];
	uint64_t	u, last, v, now;
	int		i;

	(void)state;
	now = (uint64_t)time(NULL) * 1000000u;
	last = qid_new(prev);
	assert_int_equal(strlen(prev), QID_LEN);
	assert_true(qid_valid(prev));
	assert_int_equal(b62(prev, 11, &v), 0);
	assert_int_equal(v, last);
	assert_true(last >= now - 5000000u && last <= now + 5000000u);
	for (i = 0; i < 10000; i++) {
		u = qid_new(cur);
		if (u <= last)
			fail_msg("usec: got %llu after %llu, want greater",
			    (unsigned long long)u, (unsigned long long)last);
		if (strcmp(cur, prev) <= 0)
			fail_msg("order: got %s after %s, want greater", cur, prev);
		if (strlen(cur) != QID_LEN || !qid_valid(cur))
			fail_msg("got invalid id %s", cur);
		last = u;
		memcpy(prev, cur, sizeof(prev));
	}

	/* a floor in the future (the clock stepped back) */
	qid_init(last + 3600000000u);
	u = qid_new(cur);
	assert_int_equal(u, last + 3600000001u);
	assert_true(strcmp(cur, prev) > 0);
	assert_int_equal(b62(cur, 11, &v), 0);
	assert_int_equal(v, u);
	/* a floor in the past changes nothing */
	qid_init(1);
	assert_true(qid_new(prev) == u + 1);
	assert_true(strcmp(prev, cur) > 0);
}

struct valid_case {
	const char	*in;
	int		 want;
};

static void
test_qid_valid(void **state)
{
	static const struct valid_case cases[] = {
		{ "0123456789ABCDEF", 1 }, { "abcdefgh", 1 }, { "abcdefg", 0 },
		{ "", 0 }, { "01234567890123456789012345678901", 1 },
		{ "012345678901234567890123456789012", 0 }, { "abcd-efgh", 0 },
		{ "abcd/efgh", 0 }, { "abcdefg\xe9", 0 }, { "abcd efgh", 0 },
	};
	size_t	i;

	(void)state;
	failures = 0;
	for (i = 0; i < NELEM(cases); i++)
		CHECK(qid_valid(cases[i].in) == cases[i].want, cases[i].in,
		    "got %d, want %d", !cases[i].want, cases[i].want);
	assert_false(qid_valid(NULL));
	assert_int_equal(failures, 0);
}

struct sa_case {
	const char	*addr;
	const char	*text;
	const char	*literal;
};

static void
test_sockaddr(void **state)
{
	static const struct sa_case cases[] = {
		{ "192.0.2.1", "192.0.2.1", "[192.0.2.1]" },
		{ "127.0.0.1", "127.0.0.1", "[127.0.0.1]" },
		{ "2001:db8::1", "2001:db8::1", "[IPv6:2001:db8::1]" },
		{ "::1", "::1", "[IPv6:::1]" },
		{ "::ffff:192.0.2.7", "192.0.2.7", "[192.0.2.7]" },
	};
	struct sockaddr_storage	 ss;
	struct sockaddr_in	*s4 = (struct sockaddr_in *)(void *)&ss;
	struct sockaddr_in6	*s6 = (struct sockaddr_in6 *)(void *)&ss;
	char			 text[64], lit[72];
	size_t			 i;

	(void)state;
	failures = 0;
	for (i = 0; i < NELEM(cases); i++) {
		memset(&ss, 0, sizeof(ss));
		if (inet_pton(AF_INET, cases[i].addr, &s4->sin_addr) == 1)
			s4->sin_family = AF_INET;
		else {
			assert_int_equal(inet_pton(AF_INET6, cases[i].addr,
			    &s6->sin6_addr), 1);
			s6->sin6_family = AF_INET6;
		}
		assert_int_equal(sockaddr_text((struct sockaddr *)&ss, text,
		    sizeof(text)), 0);
		CHECK(strcmp(text, cases[i].text) == 0, cases[i].addr,
		    "text: got \"%s\", want \"%s\"", text, cases[i].text);
		assert_int_equal(sockaddr_literal((struct sockaddr *)&ss, lit,
		    sizeof(lit)), 0);
		CHECK(strcmp(lit, cases[i].literal) == 0, cases[i].addr,
		    "literal: got \"%s\", want \"%s\"", lit, cases[i].literal);
	}
	/* overflow */
	memset(&ss, 0, sizeof(ss));
	s4->sin_family = AF_INET;
	inet_pton(AF_INET, "192.0.2.1", &s4->sin_addr);
	assert_int_equal(sockaddr_literal((struct sockaddr *)&ss, lit, 11), -1);
	assert_int_equal(sockaddr_literal((struct sockaddr *)&ss, lit, 12), 0);
	assert_int_equal(failures, 0);
}

static void
test_strings(void **state)
{
	char	s[] = "MiXeD-Case@Example.ORG";
	char	*d;
	int	*p;

	(void)state;
	str_lower(s);
	assert_string_equal(s, "mixed-case@example.org");
	d = xstrdup("abc");
	assert_string_equal(d, "abc");
	free(d);
	p = xcalloc(4, sizeof(*p));
	assert_int_equal(p[3], 0);
	free(p);
}

static void
test_fs(void **state)
{
	char		dir[] = "/tmp/wm-test-util.XXXXXX", path[256], cmd[300];
	struct stat	st;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/a/b//c/", dir);
	assert_int_equal(mkdir_p(path, 0700), 0);
	snprintf(path, sizeof(path), "%s/a/b/c", dir);
	assert_int_equal(stat(path, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(mkdir_p(path, 0700), 0);	/* exists: fine */
	assert_int_equal(fsync_dir(path), 0);
	assert_true(fs_free_bytes(path) >= 0);
	snprintf(path, sizeof(path), "%s/missing", dir);
	assert_int_equal(fsync_dir(path), -1);
	assert_int_equal(fs_free_bytes(path), -1);
	snprintf(path, sizeof(path), "%s/file", dir);
	fclose(fopen(path, "w"));
	snprintf(path, sizeof(path), "%s/file/sub", dir);
	assert_int_equal(mkdir_p(path, 0700), -1);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
}

static void
test_buf(void **state)
{
	struct buf	b;
	char		*s;

	(void)state;
	buf_init(&b, 10);
	assert_null(b.data);
	assert_int_equal(buf_puts(&b, "hello"), 0);
	assert_int_equal(buf_printf(&b, "%d", 1234), 0);
	assert_int_equal(b.len, 9);
	assert_string_equal(b.data, "hello1234");
	/* over the maximum: fails, nothing changes */
	assert_int_equal(buf_puts(&b, "ab"), -1);
	assert_int_equal(buf_printf(&b, "%s", "ab"), -1);
	assert_int_equal(b.len, 9);
	assert_string_equal(b.data, "hello1234");
	assert_int_equal(buf_append(&b, "!", 1), 0);
	assert_int_equal(b.len, 10);
	assert_int_equal(buf_append(&b, "", 0), 0);
	assert_int_equal(buf_append(&b, "x", 1), -1);
	buf_reset(&b);
	assert_int_equal(b.len, 0);
	assert_string_equal(b.data, "");
	assert_int_equal(buf_append(&b, "a\0b", 3), 0);
	assert_int_equal(b.len, 3);
	s = buf_steal(&b);
	assert_memory_equal(s, "a\0b", 4);
	free(s);
	assert_null(b.data);
	s = buf_steal(&b);
	assert_string_equal(s, "");
	free(s);
	buf_free(&b);

	/* growth far past the first chunk */
	buf_init(&b, 100000);
	for (int i = 0; i < 10000; i++)
		assert_int_equal(buf_puts(&b, "0123456789"), 0);
	assert_int_equal(b.len, 100000);
	assert_true(b.cap <= 100001);
	assert_int_equal(buf_puts(&b, "x"), -1);
	buf_free(&b);
}

struct esc_case {
	const char	*in;
	size_t		 inlen;
	size_t		 dstlen;
	const char	*want;
};

static void
test_escape(void **state)
{
	static const struct esc_case cases[] = {
		{ "plain", 5, 64, "plain" },
		{ "a\"b\\c", 5, 64, "a\\\"b\\\\c" },
		{ "\r\n\0\x7f\xff", 5, 64, "\\x0d\\x0a\\x00\\x7f\\xff" },
		{ "0123456789", 10, 11, "0123456789" },
		{ "0123456789", 10, 10, "012345..." },
		{ "ab\x01" "cdef", 7, 8, "ab..." },	/* \x01 does not fit */
		{ "abc", 3, 2, "." },
		{ "abc", 3, 1, "" },
	};
	char	out[64];
	size_t	i;

	(void)state;
	failures = 0;
	for (i = 0; i < NELEM(cases); i++) {
		const char *want = cases[i].want;

		log_escape(out, cases[i].dstlen, cases[i].in, cases[i].inlen);
		CHECK(strcmp(out, want) == 0, want, "got \"%s\", want \"%s\"",
		    out, want);
		CHECK(strlen(out) < cases[i].dstlen, want, "got length %zu, "
		    "want < %zu", strlen(out), cases[i].dstlen);
	}
	assert_int_equal(failures, 0);
}

/* the worker pool: run() in a worker, done() back in the loop */

struct wjob {
	pthread_t	 loop;
	int		 ran, done, in_loop;
	struct event_base *base;
};

static int	work_pending;

static void
wjob_run(void *arg)
{
	struct wjob *j = arg;

	j->ran = !pthread_equal(pthread_self(), j->loop);
}

static void
wjob_done(void *arg)
{
	struct wjob *j = arg;

	j->done++;
	j->in_loop = pthread_equal(pthread_self(), j->loop);
	if (--work_pending == 0)
		event_base_loopbreak(j->base);
}

static void
test_work(void **state)
{
	struct event_base	*base;
	struct wjob		 jobs[50], late;
	size_t			 i;

	(void)state;
	assert_int_equal(evthread_use_pthreads(), 0);
	assert_non_null(base = event_base_new());
	assert_int_equal(work_init(base, 3), 0);
	memset(jobs, 0, sizeof(jobs));
	work_pending = (int)NELEM(jobs);
	for (i = 0; i < NELEM(jobs); i++) {
		jobs[i].loop = pthread_self();
		jobs[i].base = base;
		assert_int_equal(work_submit(wjob_run, wjob_done, &jobs[i]), 0);
	}
	event_base_dispatch(base);
	for (i = 0; i < NELEM(jobs); i++) {
		assert_int_equal(jobs[i].ran, 1);
		assert_int_equal(jobs[i].done, 1);
		assert_int_equal(jobs[i].in_loop, 1);
	}
	/* shutdown runs what is still queued, done() in the caller */
	memset(&late, 0, sizeof(late));
	late.loop = pthread_self();
	late.base = base;
	work_pending = 1;
	assert_int_equal(work_submit(wjob_run, wjob_done, &late), 0);
	work_shutdown();
	assert_int_equal(late.ran, 1);
	assert_int_equal(late.done, 1);
	assert_int_equal(late.in_loop, 1);
	assert_int_equal(work_submit(wjob_run, wjob_done, &late), -1);
	event_base_free(base);
}

/* verb_counters: names lower-cased, unused and unnamed left out,
 * ok/total only when they differ, -1 when the output is too small */
static const char *
tverb_name(size_t i)
{
	static const char *const names[] = { "EHLO", "MAIL", "RCPT", NULL,
	    "unknown" };

	return i < NELEM(names) ? names[i] : NULL;
}

static void
test_verb_counters(void **state)
{
	const uint32_t	ok[] = { 1, 1, 2, 5, 0, 0 };
	const uint32_t	total[] = { 1, 2, 3, 5, 4, 0 };
	const uint32_t	none[] = { 0, 0, 0, 0, 0, 0 };
	char		out[64];

	(void)state;
	assert_int_equal(verb_counters(out, sizeof(out), tverb_name, ok,
	    total, NELEM(ok)), 0);
	assert_string_equal(out, "ehlo=1 mail=1/2 rcpt=2/3 unknown=0/4");
	assert_int_equal(verb_counters(out, sizeof(out), tverb_name, none,
	    none, NELEM(none)), 0);
	assert_string_equal(out, "");
	assert_int_equal(verb_counters(out, 20, tverb_name, ok, total,
	    NELEM(ok)), -1);
}

/* host_port_split: the "[host]:port" forms of smarthost, dns and
 * --server; a bare IPv6 address has no port */
static void
test_host_port_split(void **state)
{
	static const struct {
		const char	*in;
		int		 rc, br;
		const char	*host;
		unsigned	 port;	/* 7: left alone */
	} t[] = {
		{ "mx.example", 0, 0, "mx.example", 7 },
		{ "mx.example:2525", 0, 0, "mx.example", 2525 },
		{ "[127.0.0.1]", 0, 1, "127.0.0.1", 7 },
		{ "[::1]:53", 0, 1, "::1", 53 },
		{ "[IPv6:::1]:1038", 0, 1, "IPv6:::1", 1038 },
		{ "::1", 0, 0, "::1", 7 },
		{ "2001:db8::1", 0, 0, "2001:db8::1", 7 },
		{ "127.0.0.1:65535", 0, 0, "127.0.0.1", 65535 },
		{ "", -1, 0, NULL, 0 },
		{ ":25", -1, 0, NULL, 0 },
		{ "[]:25", -1, 1, NULL, 0 },
		{ "[::1", -1, 1, NULL, 0 },
		{ "[::1]x", -1, 1, NULL, 0 },
		{ "host:", -1, 0, NULL, 0 },
		{ "host:0", -1, 0, NULL, 0 },
		{ "host:65536", -1, 0, NULL, 0 },
		{ "host:25x", -1, 0, NULL, 0 },
		{ "a-name-longer-than-sixteen", -1, 0, NULL, 0 },
	};
	char		host[17];
	unsigned	port;
	size_t		i;
	int		rc, br;

	(void)state;
	for (i = 0; i < NELEM(t); i++) {
		port = 7;
		rc = host_port_split(t[i].in, host, sizeof(host), &br, &port);
		if (rc != t[i].rc)
			fail_msg("\"%s\": got rc %d, want %d", t[i].in, rc,
			    t[i].rc);
		if (rc == 0 && (br != t[i].br || strcmp(host, t[i].host) != 0 ||
		    port != t[i].port))
			fail_msg("\"%s\": got %d \"%s\" %u, want %d \"%s\" %u",
			    t[i].in, br, host, port, t[i].br, t[i].host,
			    t[i].port);
	}
}

/* text_safe and utf8_repair: 8-bit and ESC octets from another MTA */
static void
test_text_safe(void **state)
{
	static const struct {
		const char	*name, *in, *safe, *json;
	} t[] = {
		{ "ascii", "plain text", "plain text", "plain text" },
		{ "utf-8 kept", "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x93\xa6",
		  "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x93\xa6",
		  "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x93\xa6" },
		{ "ESC sequence", "a\x1b[31mred\x1b]0;t\x07",
		  "a?[31mred?]0;t?", "a\x1b[31mred\x1b]0;t\x07" },
		{ "CR, LF, DEL, TAB", "a\rb\nc\x7f\td", "a?b?c? d",
		  "a\rb\nc\x7f\td" },
		{ "latin-1", "caf\xe9!", "caf?!", "caf\xef\xbf\xbd!" },
		{ "C1 CSI raw", "\x9b" "31m", "?31m", "\xef\xbf\xbd" "31m" },
		{ "C1 CSI as UTF-8", "\xc2\x9b" "31m", "??31m",
		  "\xc2\x9b" "31m" },
		{ "overlong", "\xc0\xaf\xe0\x80\xaf", "?????",
		  "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"
		  "\xef\xbf\xbd" },
		{ "surrogate", "\xed\xa0\x80", "???",
		  "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd" },
		{ "over U+10FFFF", "\xf4\x90\x80\x80", "????",
		  "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd" },
		{ "truncated", "ok\xe2\x82", "ok??",
		  "ok\xef\xbf\xbd\xef\xbf\xbd" },
		{ "empty", "", "", "" },
	};
	char	buf[64], *r;
	size_t	i;

	(void)state;
	for (i = 0; i < NELEM(t); i++) {
		snprintf(buf, sizeof(buf), "%s", t[i].in);
		text_safe(buf);
		if (strcmp(buf, t[i].safe) != 0)
			fail_msg("%s: text_safe got \"%s\", want \"%s\"",
			    t[i].name, buf, t[i].safe);
		assert_non_null(r = utf8_repair(t[i].in));
		if (strcmp(r, t[i].json) != 0)
			fail_msg("%s: utf8_repair got \"%s\", want \"%s\"",
			    t[i].name, r, t[i].json);
		free(r);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_date),
		cmocka_unit_test(test_qid),
		cmocka_unit_test(test_qid_valid),
		cmocka_unit_test(test_sockaddr),
		cmocka_unit_test(test_strings),
		cmocka_unit_test(test_fs),
		cmocka_unit_test(test_buf),
		cmocka_unit_test(test_escape),
		cmocka_unit_test(test_work),
		cmocka_unit_test(test_verb_counters),
		cmocka_unit_test(test_host_port_split),
		cmocka_unit_test(test_text_safe),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
