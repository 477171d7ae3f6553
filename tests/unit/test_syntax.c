#include "config.h"
/*
 * test_syntax.c - unit tests of common/syntax.c.
 * Tables of {name, input, want}: RFC 5321 paths (null, Postmaster,
 * source routes, quoted local parts, length limits, domains, address
 * literals), the ESMTP parameter table (SIZE, BODY, unknown, repeated,
 * not enabled, wrong command), xtext (RFC 3461 4) and base64 (RFC 4648
 * 10 test vectors).  Failures print "got X, want Y".
 */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "common/syntax.h"

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

/* paths */

struct path_case {
	const char	*name;
	const char	*in;
	int		 rc;		/* consumed, or -1 */
	const char	*local;
	const char	*domain;
	int		 null, postmaster, quoted;
	const char	*why;		/* expected reason when rc == -1 (NULL: any) */
};

static const struct path_case path_cases[] = {
	{ "null", "<>", 2, "", "", 1, 0, 0, NULL },
	{ "null with params", "<> SIZE=10", 2, "", "", 1, 0, 0, NULL },
	{ "simple", "<user@example.org>", 18, "user", "example.org", 0, 0, 0, NULL },
	{ "case kept", "<User.Name@Example.ORG>", 23, "User.Name", "Example.ORG", 0, 0, 0, NULL },
	{ "trailing params", "<a@b.c> BODY=8BITMIME", 7, "a", "b.c", 0, 0, 0, NULL },
	{ "postmaster", "<Postmaster>", 12, "Postmaster", "", 0, 1, 0, NULL },
	{ "postmaster lc", "<postmaster>", 12, "postmaster", "", 0, 1, 0, NULL },
	{ "postmaster at domain", "<POSTMASTER@example.org>", 24, "POSTMASTER", "example.org", 0, 0, 0, NULL },
	{ "no domain", "<user>", -1, NULL, NULL, 0, 0, 0, NULL },
	{ "source route", "<@a.example,@b.example:u@c.example>", 35, "u", "c.example", 0, 0, 0, NULL },
	{ "source route one", "<@a.example:u@c.example>", 24, "u", "c.example", 0, 0, 0, NULL },
	{ "bad source route", "<@a.example;u@c.example>", -1, NULL, NULL, 0, 0, 0, "Invalid source route" },
	{ "source route no colon", "<@a.example>", -1, NULL, NULL, 0, 0, 0, "Invalid source route" },
	{ "quoted", "<\"john doe\"@example.org>", 24, "\"john doe\"", "example.org", 0, 0, 1, NULL },
	{ "quoted pair", "<\"a\\\"b\"@x.org>", 14, "\"a\\\"b\"", "x.org", 0, 0, 1, NULL },
	{ "quoted unterminated", "<\"abc@x.org>", -1, NULL, NULL, 0, 0, 0, NULL },
	{ "atext", "<a!#$%&'*+-/=?^_`{|}~@x.org>", 28, "a!#$%&'*+-/=?^_`{|}~", "x.org", 0, 0, 0, NULL },
	{ "leading dot", "<.a@x.org>", -1, NULL, NULL, 0, 0, 0, NULL },
	{ "double dot", "<a..b@x.org>", -1, NULL, NULL, 0, 0, 0, NULL },
	{ "trailing dot local", "<a.@x.org>", -1, NULL, NULL, 0, 0, 0, NULL },
	{ "space in local", "<a b@x.org>", -1, NULL, NULL, 0, 0, 0, NULL },
	{ "no brackets", "a@x.org", -1, NULL, NULL, 0, 0, 0, NULL },
	{ "no closing bracket", "<a@x.org", -1, NULL, NULL, 0, 0, 0, NULL },
	{ "empty", "", -1, NULL, NULL, 0, 0, 0, NULL },
	{ "lone bracket", "<", -1, NULL, NULL, 0, 0, 0, NULL },
	{ "empty local", "<@x.org>", -1, NULL, NULL, 0, 0, 0, NULL },
	{ "local 64", "<aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa@x.org>",
	  72, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "x.org", 0, 0, 0, NULL },
	{ "local 65", "<aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa@x.org>",
	  -1, NULL, NULL, 0, 0, 0, "Local part too long" },
	{ "bad domain underscore", "<a@ex_ample.org>", -1, NULL, NULL, 0, 0, 0, "Invalid domain" },
	{ "bad domain hyphen", "<a@-example.org>", -1, NULL, NULL, 0, 0, 0, "Invalid domain" },
	{ "bad domain trailing hyphen", "<a@example-.org>", -1, NULL, NULL, 0, 0, 0, "Invalid domain" },
	{ "bad domain empty label", "<a@example..org>", -1, NULL, NULL, 0, 0, 0, "Invalid domain" },
	{ "bad domain trailing dot", "<a@example.org.>", -1, NULL, NULL, 0, 0, 0, "Invalid domain" },
	{ "empty domain", "<a@>", -1, NULL, NULL, 0, 0, 0, "Invalid domain" },
	{ "label 64", "<a@aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.org>",
	  -1, NULL, NULL, 0, 0, 0, "Invalid domain" },
	{ "ipv4 literal", "<a@[192.0.2.1]>", 15, "a", "[192.0.2.1]", 0, 0, 0, NULL },
	{ "ipv4 literal 256", "<a@[192.0.2.256]>", -1, NULL, NULL, 0, 0, 0, "Invalid domain" },
	{ "ipv4 literal short", "<a@[192.0.2]>", -1, NULL, NULL, 0, 0, 0, "Invalid domain" },
	{ "ipv6 literal", "<a@[IPv6:2001:db8::1]>", 22, "a", "[IPv6:2001:db8::1]", 0, 0, 0, NULL },
	{ "ipv6 v4 literal", "<a@[IPv6:::ffff:192.0.2.1]>", 27, "a", "[IPv6:::ffff:192.0.2.1]", 0, 0, 0, NULL },
	{ "ipv6 literal bad", "<a@[IPv6:2001:db8::g]>", -1, NULL, NULL, 0, 0, 0, "Invalid domain" },
	{ "ipv6 without tag", "<a@[2001:db8::1]>", -1, NULL, NULL, 0, 0, 0, "Invalid domain" },
	{ "general literal", "<a@[x-tag:stuff]>", 17, "a", "[x-tag:stuff]", 0, 0, 0, NULL },
	{ "unclosed literal", "<a@[192.0.2.1>", -1, NULL, NULL, 0, 0, 0, NULL },
	{ "path too long",
	  "<aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa@"
	  "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb."
	  "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb."
	  "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb>",
	  -1, NULL, NULL, 0, 0, 0, "Path too long" },
};

static void
test_paths(void **state)
{
	const struct path_case	*t;
	struct mailpath		 p;
	const char		*why;
	int			 rc;

	(void)state;
	failures = 0;
	for (t = path_cases; t < path_cases + NELEM(path_cases); t++) {
		why = NULL;
		rc = smtp_parse_path(t->in, strlen(t->in), &p, &why);
		CHECK(rc == t->rc, t->name, "rc: got %d, want %d (why %s)", rc,
		    t->rc, why ? why : "-");
		if (rc != t->rc)
			continue;
		if (rc == -1) {
			CHECK(why != NULL && why[0] != '\0', t->name,
			    "why: got empty, want a reason");
			if (t->why != NULL && why != NULL)
				CHECK(strcmp(why, t->why) == 0, t->name,
				    "why: got \"%s\", want \"%s\"", why, t->why);
			continue;
		}
		CHECK(strcmp(p.local, t->local) == 0, t->name,
		    "local: got \"%s\", want \"%s\"", p.local, t->local);
		CHECK(strcmp(p.domain, t->domain) == 0, t->name,
		    "domain: got \"%s\", want \"%s\"", p.domain, t->domain);
		CHECK(p.null == t->null, t->name, "null: got %d, want %d",
		    p.null, t->null);
		CHECK(p.postmaster == t->postmaster, t->name,
		    "postmaster: got %d, want %d", p.postmaster, t->postmaster);
		CHECK(p.quoted == t->quoted, t->name, "quoted: got %d, want %d",
		    p.quoted, t->quoted);
	}
	assert_int_equal(failures, 0);
}

/* the parser must not read past len */
static void
test_path_len(void **state)
{
	struct mailpath	 p;
	const char	*why;
	const char	*s = "<a@x.org>";

	(void)state;
	assert_int_equal(smtp_parse_path(s, strlen(s) - 1, &p, &why), -1);
	assert_int_equal(smtp_parse_path(s, 1, &p, &why), -1);
	assert_int_equal(smtp_parse_path("<>", 1, &p, &why), -1);
}

struct str_case {
	const char	*name;
	const char	*in;
	const char	*want;
	int		 unsafe;
};

static const struct str_case str_cases[] = {
	{ "null", "<>", "", 1 },
	{ "plain", "<a@x.org>", "a@x.org", 0 },
	{ "postmaster", "<Postmaster>", "Postmaster", 0 },
	{ "slash", "<a/b@x.org>", "a/b@x.org", 1 },
	{ "quoted", "<\"a\"@x.org>", "\"a\"@x.org", 1 },
};

static void
test_path_string(void **state)
{
	const struct str_case	*t;
	struct mailpath		 p;
	const char		*why;
	char			 out[SMTP_PATH_MAX + 8];

	(void)state;
	failures = 0;
	for (t = str_cases; t < str_cases + NELEM(str_cases); t++) {
		assert_true(smtp_parse_path(t->in, strlen(t->in), &p, &why) > 0);
		assert_int_equal(smtp_path_string(&p, out, sizeof(out)), 0);
		CHECK(strcmp(out, t->want) == 0, t->name,
		    "got \"%s\", want \"%s\"", out, t->want);
		CHECK(smtp_local_unsafe(&p) == t->unsafe, t->name,
		    "unsafe: got %d, want %d", smtp_local_unsafe(&p), t->unsafe);
	}
	/* a dot-leading local part cannot be parsed at all; check the flag */
	memset(&p, 0, sizeof(p));
	snprintf(p.local, sizeof(p.local), ".hidden");
	assert_int_equal(smtp_local_unsafe(&p), 1);
	assert_int_equal(smtp_path_string(&p, out, 4), -1);
	assert_int_equal(failures, 0);
}

struct dom_case {
	const char	*in;
	int		 want;
};

static const struct dom_case dom_cases[] = {
	{ "example.org", 0 }, { "a", 0 }, { "1.2.3.4", 0 }, { "xn--bcher-kva.example", 0 },
	{ "", -1 }, { ".", -1 }, { "a..b", -1 }, { "a_b", -1 }, { "a b", -1 },
	{ "[127.0.0.1]", 0 }, { "[IPv6:::1]", 0 }, { "[ipv6:::1]", 0 },
	{ "[]", -1 }, { "[127.0.0.1", -1 }, { "[IPv6:1.2.3.4]", -1 },
	{ "[IPv6:::1%eth0]", -1 }, { "[tag:]", -1 },
};

static void
test_domains(void **state)
{
	const struct dom_case	*t;
	int			 rc;

	(void)state;
	failures = 0;
	for (t = dom_cases; t < dom_cases + NELEM(dom_cases); t++) {
		rc = smtp_check_domain(t->in, strlen(t->in));
		CHECK(rc == t->want, t->in, "got %d, want %d", rc, t->want);
	}
	assert_int_equal(failures, 0);
}

/* ESMTP parameters */

struct param_case {
	const char		*name;
	const char		*in;
	int			 where;
	unsigned		 enabled;
	enum param_result	 want;
	int			 has_size;
	uint64_t		 size;
	enum body_type		 body;
};

#define ALL	(EXT_SIZE | EXT_8BITMIME)

static const struct param_case param_cases[] = {
	{ "empty", "", PARAM_MAIL, ALL, PARAM_OK, 0, 0, BODY_UNSPEC },
	{ "size", "SIZE=12345", PARAM_MAIL, ALL, PARAM_OK, 1, 12345, BODY_UNSPEC },
	{ "size zero", "SIZE=0", PARAM_MAIL, ALL, PARAM_OK, 1, 0, BODY_UNSPEC },
	{ "size lower-case keyword", "size=7", PARAM_MAIL, ALL, PARAM_OK, 1, 7, BODY_UNSPEC },
	{ "size max", "SIZE=18446744073709551615", PARAM_MAIL, ALL, PARAM_OK, 1, UINT64_MAX, BODY_UNSPEC },
	{ "size overflow", "SIZE=18446744073709551616", PARAM_MAIL, ALL, PARAM_SYNTAX, 0, 0, BODY_UNSPEC },
	{ "size 21 digits", "SIZE=000000000000000000001", PARAM_MAIL, ALL, PARAM_SYNTAX, 0, 0, BODY_UNSPEC },
	{ "size non-digit", "SIZE=12a", PARAM_MAIL, ALL, PARAM_SYNTAX, 0, 0, BODY_UNSPEC },
	{ "size negative", "SIZE=-1", PARAM_MAIL, ALL, PARAM_SYNTAX, 0, 0, BODY_UNSPEC },
	{ "size no value", "SIZE", PARAM_MAIL, ALL, PARAM_SYNTAX, 0, 0, BODY_UNSPEC },
	{ "size empty value", "SIZE=", PARAM_MAIL, ALL, PARAM_SYNTAX, 0, 0, BODY_UNSPEC },
	{ "size not enabled", "SIZE=10", PARAM_MAIL, EXT_8BITMIME, PARAM_UNKNOWN, 0, 0, BODY_UNSPEC },
	{ "size at rcpt", "SIZE=10", PARAM_RCPT, ALL, PARAM_UNKNOWN, 0, 0, BODY_UNSPEC },
	{ "size repeated", "SIZE=10 SIZE=10", PARAM_MAIL, ALL, PARAM_REPEATED, 0, 0, BODY_UNSPEC },
	{ "body 8bit", "BODY=8BITMIME", PARAM_MAIL, ALL, PARAM_OK, 0, 0, BODY_8BITMIME },
	{ "body 7bit lc", "body=7bit", PARAM_MAIL, ALL, PARAM_OK, 0, 0, BODY_7BIT },
	{ "body binary", "BODY=BINARYMIME", PARAM_MAIL, ALL, PARAM_SYNTAX, 0, 0, BODY_UNSPEC },
	{ "body no value", "BODY", PARAM_MAIL, ALL, PARAM_SYNTAX, 0, 0, BODY_UNSPEC },
	{ "body not enabled", "BODY=8BITMIME", PARAM_MAIL, EXT_SIZE, PARAM_UNKNOWN, 0, 0, BODY_UNSPEC },
	{ "both", "SIZE=100 BODY=8BITMIME", PARAM_MAIL, ALL, PARAM_OK, 1, 100, BODY_8BITMIME },
	{ "extra spaces", "  SIZE=100   BODY=7BIT  ", PARAM_MAIL, ALL, PARAM_OK, 1, 100, BODY_7BIT },
	{ "unknown", "FOO=bar", PARAM_MAIL, ALL, PARAM_UNKNOWN, 0, 0, BODY_UNSPEC },
	{ "unknown no value", "X-FOO", PARAM_RCPT, ALL, PARAM_UNKNOWN, 0, 0, BODY_UNSPEC },
	{ "bad keyword", "-FOO=1", PARAM_MAIL, ALL, PARAM_SYNTAX, 0, 0, BODY_UNSPEC },
	{ "bad keyword char", "SI_ZE=1", PARAM_MAIL, ALL, PARAM_SYNTAX, 0, 0, BODY_UNSPEC },
	{ "value with =", "FOO=a=b", PARAM_MAIL, ALL, PARAM_SYNTAX, 0, 0, BODY_UNSPEC },
	{ "value control char", "FOO=a\tb", PARAM_MAIL, ALL, PARAM_SYNTAX, 0, 0, BODY_UNSPEC },
	{ "value 8bit", "FOO=\xc3\xa9", PARAM_MAIL, ALL, PARAM_SYNTAX, 0, 0, BODY_UNSPEC },
	{ "lone =", "=1", PARAM_MAIL, ALL, PARAM_SYNTAX, 0, 0, BODY_UNSPEC },
};

static const char *
param_name(enum param_result r)
{
	switch (r) {
	case PARAM_OK:		return "PARAM_OK";
	case PARAM_SYNTAX:	return "PARAM_SYNTAX";
	case PARAM_UNKNOWN:	return "PARAM_UNKNOWN";
	case PARAM_REPEATED:	return "PARAM_REPEATED";
	}
	return "?";
}

static void
test_params(void **state)
{
	const struct param_case	*t;
	struct esmtp_params	 out;
	const char		*why;
	enum param_result	 r;

	(void)state;
	failures = 0;
	for (t = param_cases; t < param_cases + NELEM(param_cases); t++) {
		why = NULL;
		r = esmtp_parse_params(t->in, strlen(t->in), t->where,
		    t->enabled, &out, &why);
		CHECK(r == t->want, t->name, "got %s, want %s (why %s)",
		    param_name(r), param_name(t->want), why ? why : "NULL");
		CHECK(why != NULL, t->name, "why: got NULL, want a string");
		if (r != PARAM_OK || t->want != PARAM_OK)
			continue;
		CHECK(out.has_size == t->has_size, t->name,
		    "has_size: got %d, want %d", out.has_size, t->has_size);
		CHECK(out.size == t->size, t->name, "size: got %llu, want %llu",
		    (unsigned long long)out.size, (unsigned long long)t->size);
		CHECK(out.body == t->body, t->name, "body: got %d, want %d",
		    (int)out.body, (int)t->body);
	}
	assert_int_equal(failures, 0);
}

/* xtext */

struct xtext_case {
	const char	*name;
	const char	*plain;
	const char	*xtext;
};

static const struct xtext_case xtext_cases[] = {
	{ "empty", "", "" },
	{ "plain", "user@example.org", "user@example.org" },
	{ "plus", "a+b", "a+2Bb" },
	{ "equals", "a=b", "a+3Db" },
	{ "space", "rfc822;a b", "rfc822;a+20b" },
	{ "8bit", "\xc3\xa9", "+C3+A9" },
	{ "control", "\r\n", "+0D+0A" },
};

static void
test_xtext(void **state)
{
	const struct xtext_case	*t;
	char			 out[128];
	int			 rc;

	(void)state;
	failures = 0;
	for (t = xtext_cases; t < xtext_cases + NELEM(xtext_cases); t++) {
		rc = xtext_encode(t->plain, strlen(t->plain), out, sizeof(out));
		CHECK(rc == 0 && strcmp(out, t->xtext) == 0, t->name,
		    "encode: got %d \"%s\", want 0 \"%s\"", rc,
		    rc == 0 ? out : "", t->xtext);
		rc = xtext_decode(t->xtext, strlen(t->xtext), out, sizeof(out));
		CHECK(rc == 0 && strcmp(out, t->plain) == 0, t->name,
		    "decode: got %d \"%s\", want 0 \"%s\"", rc,
		    rc == 0 ? out : "", t->plain);
	}
	assert_int_equal(failures, 0);
}

static const char *const xtext_bad[] = {
	"a+", "a+4", "+4g", "+2b", "a b", "a=b", "+00", "\x7f", "\xc3\xa9",
};

static void
test_xtext_bad(void **state)
{
	char	out[64];
	size_t	i;
	int	rc;

	(void)state;
	failures = 0;
	for (i = 0; i < NELEM(xtext_bad); i++) {
		rc = xtext_decode(xtext_bad[i], strlen(xtext_bad[i]), out,
		    sizeof(out));
		CHECK(rc == -1, xtext_bad[i], "decode: got %d, want -1", rc);
	}
	/* overflow: "abc" needs 4 bytes with the NUL */
	assert_int_equal(xtext_decode("abc", 3, out, 3), -1);
	assert_int_equal(xtext_decode("abc", 3, out, 4), 0);
	assert_int_equal(xtext_encode("a+", 2, out, 4), -1);
	assert_int_equal(xtext_encode("a+", 2, out, 5), 0);
	assert_string_equal(out, "a+2B");
	assert_int_equal(failures, 0);
}

/* base64: RFC 4648 section 10 */

struct b64_case {
	const char	*plain;
	const char	*enc;
};

static const struct b64_case b64_cases[] = {
	{ "", "" }, { "f", "Zg==" }, { "fo", "Zm8=" }, { "foo", "Zm9v" },
	{ "foob", "Zm9vYg==" }, { "fooba", "Zm9vYmE=" }, { "foobar", "Zm9vYmFy" },
	{ "\0user\0pass", "AHVzZXIAcGFzcw==" },
};

static void
test_base64(void **state)
{
	const struct b64_case	*t;
	char			 enc[64];
	unsigned char		 dec[64];
	size_t			 plen;
	int			 rc;

	(void)state;
	failures = 0;
	for (t = b64_cases; t < b64_cases + NELEM(b64_cases); t++) {
		plen = t->plain[0] == '\0' && t->enc[0] == 'A' ? 10 :
		    strlen(t->plain);
		rc = base64_encode((const unsigned char *)t->plain, plen, enc,
		    sizeof(enc));
		CHECK(rc == (int)strlen(t->enc) && strcmp(enc, t->enc) == 0,
		    t->enc, "encode: got %d \"%s\", want %zu \"%s\"", rc,
		    rc >= 0 ? enc : "", strlen(t->enc), t->enc);
		rc = base64_decode(t->enc, strlen(t->enc), dec, sizeof(dec));
		CHECK(rc == (int)plen && memcmp(dec, t->plain, plen) == 0,
		    t->enc, "decode: got %d, want %zu", rc, plen);
	}
	assert_int_equal(failures, 0);
}

static const char *const b64_bad[] = {
	"Zg", "Zg=", "Zg===", "Z===", "Zm9v!", "Zm9", "Zh==", "Zm9=",
	"=Zg=", "Zg==Zg==", "Zm 9v", "Zm9v\n",
};

static void
test_base64_bad(void **state)
{
	unsigned char	dec[64];
	char		enc[16];
	size_t		i;
	int		rc;

	(void)state;
	failures = 0;
	for (i = 0; i < NELEM(b64_bad); i++) {
		rc = base64_decode(b64_bad[i], strlen(b64_bad[i]), dec,
		    sizeof(dec));
		CHECK(rc == -1, b64_bad[i], "decode: got %d, want -1", rc);
	}
	/* overflow on both sides */
	assert_int_equal(base64_decode("Zm9vYmFy", 8, dec, 5), -1);
	assert_int_equal(base64_decode("Zm9vYmFy", 8, dec, 6), 6);
	assert_int_equal(base64_encode((const unsigned char *)"foobar", 6,
	    enc, 8), -1);
	assert_int_equal(base64_encode((const unsigned char *)"fooba", 5,
	    enc, 9), 8);
	assert_int_equal(failures, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_paths),
		cmocka_unit_test(test_path_len),
		cmocka_unit_test(test_path_string),
		cmocka_unit_test(test_domains),
		cmocka_unit_test(test_params),
		cmocka_unit_test(test_xtext),
		cmocka_unit_test(test_xtext_bad),
		cmocka_unit_test(test_base64),
		cmocka_unit_test(test_base64_bad),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
