#include "config.h"
/*
 * test_dkim.c - unit tests of filter/dkim.c: relaxed header and body
 * canonicalization (RFC 6376 3.4.5's example, folding, trailing WSP,
 * empty body, trailing blank lines, 8-bit), RFC 8463 Appendix A
 * reproduced byte for byte (the body hash, the SHA-256 of the Ed25519
 * header input, both published b= values), and the streaming signer
 * on A.3's message (its field checked with the public key).
 */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "common/syntax.h"
#include "filter/dkim.h"

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

/* RFC 8463 A.1 */
static const char ed_seed_b64[] = "nWGxne/9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A=";
static const char rsa_pem[] =
	"-----BEGIN RSA PRIVATE KEY-----\n"
	"MIICXQIBAAKBgQDkHlOQoBTzWRiGs5V6NpP3idY6Wk08a5qhdR6wy5bdOKb2jLQi\n"
	"Y/J16JYi0Qvx/byYzCNb3W91y3FutACDfzwQ/BC/e/8uBsCR+yz1Lxj+PL6lHvqM\n"
	"KrM3rG4hstT5QjvHO9PzoxZyVYLzBfO2EeC3Ip3G+2kryOTIKT+l/K4w3QIDAQAB\n"
	"AoGAH0cxOhFZDgzXWhDhnAJDw5s4roOXN4OhjiXa8W7Y3rhX3FJqmJSPuC8N9vQm\n"
	"6SVbaLAE4SG5mLMueHlh4KXffEpuLEiNp9Ss3O4YfLiQpbRqE7Tm5SxKjvvQoZZe\n"
	"zHorimOaChRL2it47iuWxzxSiRMv4c+j70GiWdxXnxe4UoECQQDzJB/0U58W7RZy\n"
	"6enGVj2kWF732CoWFZWzi1FicudrBFoy63QwcowpoCazKtvZGMNlPWnC7x/6o8Gc\n"
	"uSe0ga2xAkEA8C7PipPm1/1fTRQvj1o/dDmZp243044ZNyxjg+/OPN0oWCbXIGxy\n"
	"WvmZbXriOWoSALJTjExEgraHEgnXssuk7QJBALl5ICsYMu6hMxO73gnfNayNgPxd\n"
	"WFV6Z7ULnKyV7HSVYF0hgYOHjeYe9gaMtiJYoo0zGN+L3AAtNP9huqkWlzECQE1a\n"
	"licIeVlo1e+qJ6Mgqr0Q7Aa7falZ448ccbSFYEPD6oFxiOl9Y9se9iYHZKKfIcst\n"
	"o7DUw1/hz2Ck4N5JrgUCQQCyKveNvjzkkd8HjYs0SwM0fPjK16//5qDZ2UiDGnOe\n"
	"uEzxBDAr518Z8VFbR41in3W4Y3yCDgQlLlcETrS+zYcL\n"
	"-----END RSA PRIVATE KEY-----\n";

/* A.3: the message without its signatures */
static const char a3_header[] =
	"From: Joe SixPack <joe@football.example.com>\r\n"
	"To: Suzie Q <suzie@shopping.example.net>\r\n"
	"Subject: Is dinner ready?\r\n"
	"Date: Fri, 11 Jul 2003 21:00:37 -0700 (PDT)\r\n"
	"Message-ID: <20030712040037.46341.5F8J@football.example.com>\r\n";
static const char a3_body[] =
	"Hi.\r\n"
	"\r\n"
	"We lost the game.  Are you hungry yet?\r\n"
	"\r\n"
	"Joe.\r\n"
	"\r\n";
static const char a3_bh[] = "2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=";

/* the header hash input of each A.3 signature (spec digest, section 7) */
static const char a3_fields[] =
	"from:Joe SixPack <joe@football.example.com>\r\n"
	"to:Suzie Q <suzie@shopping.example.net>\r\n"
	"subject:Is dinner ready?\r\n"
	"date:Fri, 11 Jul 2003 21:00:37 -0700 (PDT)\r\n"
	"message-id:<20030712040037.46341.5F8J@football.example.com>\r\n";
static const char a3_ed_sig[] =
	"dkim-signature:v=1; a=ed25519-sha256; c=relaxed/relaxed; "
	"d=football.example.com; i=@football.example.com; q=dns/txt; "
	"s=brisbane; t=1528637909; h=from : to : subject : date : "
	"message-id : from : subject : date; "
	"bh=2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=; b=";
static const char a3_rsa_sig[] =
	"dkim-signature:v=1; a=rsa-sha256; c=relaxed/relaxed; "
	"d=football.example.com; i=@football.example.com; q=dns/txt; "
	"s=test; t=1528637909; h=from : to : subject : date : "
	"message-id : from : subject : date; "
	"bh=2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=; b=";
static const char a3_ed_b[] =
	"/gCrinpcQOoIfuHNQIbq4pgh9kyIK3AQUdt9OdqQehSwhEIug4D11Bus"
	"Fa3bT3FY5OsU7ZbnKELq+eXdp1Q1Dw==";
static const char a3_rsa_b[] =
	"F45dVWDfMbQDGHJFlXUNB2HKfbCeLRyhDXgFpEL8GwpsRe0IeIixNTe3"
	"DhCVlUrSjV4BwcVcOF6+FF3Zo9Rpo1tFOeS9mPYQTnGdaSGsgeefOsk2Jz"
	"dA+L10TeYt9BgDfQNZtKdN1WO//KgIqXP7OdEFE4LjFYNcUxZQ4FADY+8=";

static EVP_PKEY *
ed_key(void)
{
	unsigned char	seed[64];
	int		n;

	n = base64_decode(ed_seed_b64, strlen(ed_seed_b64), seed, sizeof(seed));
	assert_int_equal(n, 32);
	return EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, seed, 32);
}

static EVP_PKEY *
rsa_key(void)
{
	BIO		*b = BIO_new_mem_buf(rsa_pem, -1);
	EVP_PKEY	*pk;

	assert_non_null(b);
	pk = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
	BIO_free(b);
	return pk;
}

/* relaxed header canonicalization (RFC 6376 3.4.2, 3.4.5) */
static void
test_canon_header(void **state)
{
	static const struct {
		const char	*name, *in, *want;
	} t[] = {
		{ "3.4.5 A", "A: X", "a:X" },
		{ "3.4.5 B folded", "B : Y\t\r\n\tZ  ", "b:Y Z" },
		{ "name case", "SUBJect: AbC", "subject:AbC" },
		{ "LF fold", "To: a@b,\n\tc@d", "to:a@b, c@d" },
		{ "runs", "Subject:  two   spaces\there ", "subject:two spaces here" },
		{ "empty value", "Cc:", "cc:" },
		{ "only WSP", "Cc: \t ", "cc:" },
		{ "8-bit", "Subject: \xc3\xa9t\xc3\xa9", "subject:\xc3\xa9t\xc3\xa9" },
	};
	char	out[256];
	size_t	i, n;

	(void)state;
	failures = 0;
	for (i = 0; i < NELEM(t); i++) {
		n = dkim_canon_header(t[i].in, strlen(t[i].in), out);
		out[n] = '\0';
		CHECK(strcmp(out, t[i].want) == 0, t[i].name,
		    "got \"%s\", want \"%s\"", out, t[i].want);
	}
	assert_int_equal(failures, 0);
}

/* relaxed body canonicalization, hashed (RFC 6376 3.4.4, 3.4.5) */
static void
test_body_hash(void **state)
{
	static const struct {
		const char	*name, *in, *want;
	} t[] = {
		{ "3.4.5 body", " C \r\nD \t E\r\n\r\n\r\n",
		  "unak6JHq0wL+Q1HP7dW1tjBx9FLA6DffoZ0qrLwbbpo=" },
		{ "empty", "", "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=" },
		{ "only blank lines", "\r\n\r\n\r\n",
		  "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=" },
		{ "only WSP lines", "  \r\n\t\r\n",
		  "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=" },
		{ "no final CRLF", "abc",
		  "VSuraGTHp7aaUC7RhUuSRcDhow8AiqoLKB2mJYX9sCU=" },
		{ "trailing WSP", "abc \t\r\n",
		  "VSuraGTHp7aaUC7RhUuSRcDhow8AiqoLKB2mJYX9sCU=" },
		{ "trailing blank lines", "abc\r\n\r\n \r\n\r\n",
		  "VSuraGTHp7aaUC7RhUuSRcDhow8AiqoLKB2mJYX9sCU=" },
		{ "inner blank line kept", "a  b\r\n \r\nc\r\n\r\n",
		  "skj5o4LWCKjNoIGk/fMCUz6alJh8d+XUfND4pygwETY=" },
		{ "8-bit", "\xc3\xa9t\xc3\xa9   x \r\n",
		  "U1kmmld4svbQQDevIX3riauKfPQrsNKCQf1DOmLYgJQ=" },
		{ "RFC 8463 A.3", a3_body, a3_bh },
	};
	char	out[45];
	size_t	i;

	(void)state;
	failures = 0;
	for (i = 0; i < NELEM(t); i++) {
		assert_int_equal(dkim_body_hash(t[i].in, strlen(t[i].in),
		    out), 0);
		CHECK(strcmp(out, t[i].want) == 0, t[i].name,
		    "got %s, want %s", out, t[i].want);
	}
	assert_int_equal(failures, 0);
}

/* the body streamed in pieces (WSP runs and lines split anywhere) */
static void
test_body_pieces(void **state)
{
	struct dkim_body	*b;
	char			 out[45];

	(void)state;
	assert_non_null(b = dkim_body_new());
	dkim_body_text(b, " ", 1);
	dkim_body_text(b, "C", 1);
	dkim_body_text(b, " ", 1);
	dkim_body_eol(b);
	dkim_body_text(b, "D ", 2);
	dkim_body_text(b, "\t", 1);
	dkim_body_text(b, " E", 2);
	dkim_body_eol(b);
	dkim_body_eol(b);
	dkim_body_text(b, "  ", 2);
	dkim_body_eol(b);
	assert_int_equal(dkim_body_final(b, out), 0);
	dkim_body_free(b);
	assert_string_equal(out, "unak6JHq0wL+Q1HP7dW1tjBx9FLA6DffoZ0qrLwbbpo=");
}

/* RFC 8463 A.3 byte for byte: Ed25519 and RSA b= as published */
static void
test_rfc8463(void **state)
{
	EVP_PKEY	*ed, *rsa;
	char		 in[2048], out[1024], hex[65];
	unsigned char	 h[32];
	size_t		 n, i;

	(void)state;
	assert_non_null(ed = ed_key());
	assert_non_null(rsa = rsa_key());

	/* the Ed25519 header input and its SHA-256 (the digest's value) */
	n = (size_t)snprintf(in, sizeof(in), "%s%s", a3_fields, a3_ed_sig);
	assert_true(EVP_Digest(in, n, h, NULL, EVP_sha256(), NULL) == 1);
	for (i = 0; i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", h[i]);
	assert_string_equal(hex,
	    "48ce9a2c710ece1710ff156996b836a7f45470e43efe5643074d6e1690ed62e7");
	assert_int_equal(dkim_sign_data(ed, DKIM_ED25519_SHA256, in, n, out,
	    sizeof(out)), 0);
	assert_string_equal(out, a3_ed_b);

	n = (size_t)snprintf(in, sizeof(in), "%s%s", a3_fields, a3_rsa_sig);
	assert_int_equal(dkim_sign_data(rsa, DKIM_RSA_SHA256, in, n, out,
	    sizeof(out)), 0);
	assert_string_equal(out, a3_rsa_b);

	/* the published DNS record of the Ed25519 key (A.2) */
	assert_int_equal(dkim_dns_record(ed, DKIM_ED25519_SHA256, out,
	    sizeof(out)), 0);
	assert_string_equal(out, "v=DKIM1; k=ed25519; "
	    "p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=");
	assert_int_equal(dkim_dns_record(rsa, DKIM_RSA_SHA256, out,
	    sizeof(out)), 0);
	assert_string_equal(out, "v=DKIM1; k=rsa; p=MIGfMA0GCSqGSIb3DQEBAQUAA4GN"
	    "ADCBiQKBgQDkHlOQoBTzWRiGs5V6NpP3idY6Wk08a5qhdR6wy5bdOKb2jLQiY/J16J"
	    "Yi0Qvx/byYzCNb3W91y3FutACDfzwQ/BC/e/8uBsCR+yz1Lxj+PL6lHvqMKrM3rG4h"
	    "stT5QjvHO9PzoxZyVYLzBfO2EeC3Ip3G+2kryOTIKT+l/K4w3QIDAQAB");
	EVP_PKEY_free(ed);
	EVP_PKEY_free(rsa);
}

struct got {
	char	*field[4];
	int	 n;
};

static int
collect_cb(void *arg, const struct dkim_key *k, const char *field)
{
	struct got *g = arg;

	(void)k;
	if (g->n == 4)
		return -1;
	g->field[g->n++] = strdup(field);
	return 0;
}

/* feed - a message through the streaming signer, line by line */
static void
feed(struct dkim_sign *d, const char *msg)
{
	const char	*p = msg, *nl;

	while (*p != '\0') {
		nl = strstr(p, "\r\n");
		assert_non_null(nl);
		/* in two pieces, as the DATA scanner may pass them */
		dkim_sign_text(d, p, (size_t)(nl - p) / 2);
		dkim_sign_text(d, p + (nl - p) / 2, (size_t)(nl - p) -
		    (size_t)(nl - p) / 2);
		dkim_sign_eol(d);
		p = nl + 2;
	}
}

/* sign_fed - msg fed to a new signer of ks, its fields collected into
 * g: dkim_sign_finish's count */
static int
sign_fed(struct dkim_keys *ks, const char *msg, struct got *g)
{
	struct dkim_sign	*d;
	const char		*why;
	int			 n;

	assert_non_null(d = dkim_sign_new(ks));
	feed(d, msg);
	n = dkim_sign_finish(d, 1528637909, collect_cb, g, &why);
	dkim_sign_free(d);
	return n;
}

/* verify - the field's b= checked with pk over the A.3 header fields in
 * the order of h= (From, Subject, Date, To, Message-ID) */
static int
verify(EVP_PKEY *pk, enum dkim_alg a, const char *field)
{
	static const char *const order[] = {
		"from:Joe SixPack <joe@football.example.com>\r\n",
		"subject:Is dinner ready?\r\n",
		"date:Fri, 11 Jul 2003 21:00:37 -0700 (PDT)\r\n",
		"to:Suzie Q <suzie@shopping.example.net>\r\n",
		"message-id:<20030712040037.46341.5F8J@football.example.com>\r\n",
	};
	EVP_MD_CTX	*mc;
	char		 in[4096], bval[1024], *b;
	unsigned char	 sig[1024], h[32];
	size_t		 n = 0, i, bl = 0;
	int		 sl, ok;
	const char	*p;

	for (i = 0; i < NELEM(order); i++) {
		memcpy(in + n, order[i], strlen(order[i]));
		n += strlen(order[i]);
	}
	b = strstr(field, "b=");
	while (b != NULL && b > field && b[-1] != ' ' && b[-1] != '\t')
		b = strstr(b + 1, "b=");
	assert_non_null(b);
	for (p = b + 2; *p != '\0'; p++)
		if (*p != ' ' && *p != '\t' && *p != '\n')
			bval[bl++] = *p;
	bval[bl] = '\0';
	n += dkim_canon_header(field, (size_t)(b + 2 - field), in + n);
	sl = base64_decode(bval, bl, sig, sizeof(sig));
	assert_true(sl > 0);
	mc = EVP_MD_CTX_new();
	if (a == DKIM_RSA_SHA256)
		ok = EVP_DigestVerifyInit(mc, NULL, EVP_sha256(), NULL, pk) == 1 &&
		    EVP_DigestVerify(mc, sig, (size_t)sl,
		    (unsigned char *)in, n) == 1;
	else
		ok = EVP_Digest(in, n, h, NULL, EVP_sha256(), NULL) == 1 &&
		    EVP_DigestVerifyInit(mc, NULL, NULL, NULL, pk) == 1 &&
		    EVP_DigestVerify(mc, sig, (size_t)sl, h, 32) == 1;
	EVP_MD_CTX_free(mc);
	return ok;
}

/* unfold - f without its folds ("\n" and the WSP after it) */
static void
unfold(const char *f, char *out, size_t outlen)
{
	size_t	o = 0;

	for (; *f != '\0' && o + 1 < outlen; f++) {
		if (*f == '\n') {
			while (f[1] == ' ' || f[1] == '\t')
				f++;
			continue;
		}
		out[o++] = *f;
	}
	out[o] = '\0';
}

/* the streaming signer on A.3 with both keys of the domain */
static void
test_signer(void **state)
{
	struct dkim_key		 keys[3];
	struct dkim_keys	 ks = { .keys = keys, .n = 3, .refs = 1 };
	struct got		 g, g2;
	char			 msg[2048], flat[2048];
	int			 i;

	(void)state;
	failures = 0;
	memset(keys, 0, sizeof(keys));
	memset(&g, 0, sizeof(g));
	keys[0].domain = "football.example.com";
	keys[0].selector = "brisbane";
	keys[0].alg = DKIM_ED25519_SHA256;
	assert_non_null(keys[0].pkey = ed_key());
	keys[1].domain = "other.example";
	keys[1].selector = "x";
	keys[1].alg = DKIM_ED25519_SHA256;
	keys[1].pkey = keys[0].pkey;
	keys[2].domain = "football.example.com";
	keys[2].selector = "test";
	keys[2].alg = DKIM_RSA_SHA256;
	assert_non_null(keys[2].pkey = rsa_key());

	snprintf(msg, sizeof(msg), "%s\r\n%s", a3_header, a3_body);
	assert_int_equal(sign_fed(&ks, msg, &g), 2);
	assert_int_equal(g.n, 2);
	for (i = 0; i < 2; i++) {
		CHECK(strncmp(g.field[i], "DKIM-Signature: v=1; a=", 23) == 0,
		    "field", "got %s", g.field[i]);
		CHECK(strstr(g.field[i], "c=relaxed/relaxed;") != NULL &&
		    strstr(g.field[i], "d=football.example.com;") != NULL &&
		    strstr(g.field[i], "t=1528637909;") != NULL &&
		    strstr(g.field[i], a3_bh) != NULL &&
		    strstr(g.field[i], "l=") == NULL, "tags", "got %s",
		    g.field[i]);
		/* From oversigned (h= unfolded first) */
		unfold(g.field[i], flat, sizeof(flat));
		CHECK(strstr(flat, "h=from:from:subject:date:to:"
		    "message-id;") != NULL, "h=", "got %s", g.field[i]);
	}
	CHECK(strstr(g.field[0], "a=ed25519-sha256;") != NULL &&
	    strstr(g.field[0], "s=brisbane;") != NULL, "ed25519", "got %s",
	    g.field[0]);
	CHECK(strstr(g.field[1], "a=rsa-sha256;") != NULL &&
	    strstr(g.field[1], "s=test;") != NULL, "rsa", "got %s",
	    g.field[1]);
	CHECK(verify(keys[0].pkey, DKIM_ED25519_SHA256, g.field[0]), "verify",
	    "Ed25519 signature does not verify: %s", g.field[0]);
	CHECK(verify(keys[2].pkey, DKIM_RSA_SHA256, g.field[1]), "verify",
	    "RSA signature does not verify: %s", g.field[1]);
	/* with each key's prepared context (as dkim_keys_load does), the
	 * same fields: both algorithms are deterministic */
	memset(&g2, 0, sizeof(g2));
	for (i = 0; i < 3; i++)
		assert_int_equal(dkim_key_prepare(&keys[i]), 0);
	assert_non_null(keys[0].tmpl);
	assert_int_equal(sign_fed(&ks, msg, &g2), 2);
	assert_int_equal(g2.n, 2);
	for (i = 0; i < 2; i++) {
		CHECK(strcmp(g.field[i], g2.field[i]) == 0, "template",
		    "got %s, without the template %s", g2.field[i],
		    g.field[i]);
		free(g2.field[i]);
	}
	for (i = 0; i < 3; i++)
		EVP_MD_CTX_free(keys[i].tmpl);
	/* folded lines stay short */
	for (i = 0; i < 2; i++) {
		const char *p = g.field[i], *nl;

		for (; (nl = strchr(p, '\n')) != NULL; p = nl + 1)
			CHECK(nl - p <= 78, "fold", "line of %d: %s",
			    (int)(nl - p), g.field[i]);
		CHECK(strlen(p) <= 78, "fold", "last line: %s", p);
		free(g.field[i]);
	}
	EVP_PKEY_free(keys[0].pkey);
	EVP_PKEY_free(keys[2].pkey);
	assert_int_equal(failures, 0);
}

/* dkim_sign_fd: a stored content read back signs like the stream */
static void
test_sign_fd(void **state)
{
	struct dkim_key		 key;
	struct dkim_keys	 ks = { .keys = &key, .n = 1, .refs = 1 };
	struct dkim_sign	*d;
	struct got		 g1, g2;
	const char		*why;
	char			 msg[2048], path[] = "/tmp/test_dkim_XXXXXX";
	int			 fd;

	(void)state;
	memset(&key, 0, sizeof(key));
	memset(&g1, 0, sizeof(g1));
	memset(&g2, 0, sizeof(g2));
	key.domain = "football.example.com";
	key.selector = "brisbane";
	key.alg = DKIM_ED25519_SHA256;
	assert_non_null(key.pkey = ed_key());
	snprintf(msg, sizeof(msg), "%s\r\n%s", a3_header, a3_body);
	assert_int_equal(sign_fed(&ks, msg, &g1), 1);
	assert_true((fd = mkstemp(path)) != -1);
	unlink(path);
	assert_int_equal(write(fd, msg, strlen(msg)), (int)strlen(msg));
	assert_non_null(d = dkim_sign_new(&ks));
	assert_int_equal(dkim_sign_fd(d, fd), 0);
	close(fd);
	assert_int_equal(dkim_sign_finish(d, 1528637909, collect_cb, &g2,
	    &why), 1);
	dkim_sign_free(d);
	assert_string_equal(g1.field[0], g2.field[0]);
	free(g1.field[0]);
	free(g2.field[0]);
	EVP_PKEY_free(key.pkey);
}

/* messages not signed, and why */
static void
test_not_signed(void **state)
{
	static const struct {
		const char	*name, *msg, *why;	/* why NULL: no key */
	} t[] = {
		{ "no From", "To: a@b.example\r\n\r\nx\r\n", "no From field" },
		{ "two From", "From: a@football.example.com\r\n"
		  "From: b@football.example.com\r\n\r\nx\r\n",
		  "several From fields" },
		{ "other domain", "From: a@elsewhere.example\r\n\r\nx\r\n",
		  NULL },
		{ "no domain", "From: undisclosed\r\n\r\nx\r\n",
		  "no domain in the From address" },
		{ "not a header", "From: a@football.example.com\r\n"
		  "no colon here\r\n\r\nx\r\n", "header section not RFC 5322" },
	};
	struct dkim_key		 key;
	struct dkim_keys	 ks = { .keys = &key, .n = 1, .refs = 1 };
	struct dkim_sign	*d;
	struct got		 g;
	const char		*why;
	size_t			 i;
	int			 n;

	(void)state;
	failures = 0;
	memset(&key, 0, sizeof(key));
	key.domain = "football.example.com";
	key.selector = "brisbane";
	key.alg = DKIM_ED25519_SHA256;
	assert_non_null(key.pkey = ed_key());
	for (i = 0; i < NELEM(t); i++) {
		memset(&g, 0, sizeof(g));
		assert_non_null(d = dkim_sign_new(&ks));
		feed(d, t[i].msg);
		n = dkim_sign_finish(d, 1, collect_cb, &g, &why);
		dkim_sign_free(d);
		CHECK(n == 0, t[i].name, "got %d signatures, want 0", n);
		CHECK((why == NULL && t[i].why == NULL) || (why != NULL &&
		    t[i].why != NULL && strcmp(why, t[i].why) == 0), t[i].name,
		    "got why \"%s\", want \"%s\"", why ? why : "(null)",
		    t[i].why ? t[i].why : "(null)");
	}
	/* the From domain is matched without case, display names and
	 * comments skipped */
	memset(&g, 0, sizeof(g));
	assert_non_null(d = dkim_sign_new(&ks));
	feed(d, "fROM: \"Joe, <x@y.example>\" (c@d.example)\r\n"
	    " <joe@Football.Example.COM> (home)\r\n\r\n");
	n = dkim_sign_finish(d, 1, collect_cb, &g, &why);
	dkim_sign_free(d);
	CHECK(n == 1, "display name", "got %d signatures, want 1", n);
	if (n == 1)
		free(g.field[0]);
	EVP_PKEY_free(key.pkey);
	assert_int_equal(failures, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_canon_header),
		cmocka_unit_test(test_body_hash),
		cmocka_unit_test(test_body_pieces),
		cmocka_unit_test(test_rfc8463),
		cmocka_unit_test(test_signer),
		cmocka_unit_test(test_not_signed),
		cmocka_unit_test(test_sign_fd),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
