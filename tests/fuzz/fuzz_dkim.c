#include "config.h"
/*
 * fuzz_dkim.c - the streaming DKIM signer (filter/dkim.c): header
 * fields kept, the From address parsed, relaxed canonicalization, the
 * signature field folded.  Input: one octet s (where each line is cut in
 * two), then the message (lines end at LF; a CR before it is dropped).
 * The message is fed line by line, each line in two pieces at s, and
 * again each line whole: both give the same result (the same fields,
 * byte for byte: Ed25519 is deterministic and the time is fixed), every
 * field line is at most 78 octets, and a signed message has exactly one
 * field for the one key of its domain.
 */

#include <string.h>

#include <openssl/evp.h>

#include "filter/dkim.h"
#include "tests/fuzz/fuzz.h"

struct out {
	char	*f;
	int	 n;
};

static int
out_cb(void *arg, const struct dkim_key *k, const char *field)
{
	struct out *o = arg;

	(void)k;
	FUZZ_CHECK(o->n == 0);
	o->n++;
	o->f = strdup(field);
	return o->f != NULL ? 0 : -1;
}

/* run - one pass; returns the number of fields, *why */
static int
run(struct dkim_keys *ks, const uint8_t *p, size_t n, size_t cut,
    struct out *o, const char **why)
{
	struct dkim_sign	*d;
	const uint8_t		*nl;
	size_t			 len, c;
	int			 r;

	FUZZ_CHECK((d = dkim_sign_new(ks)) != NULL);
	while (n > 0) {
		nl = memchr(p, '\n', n);
		len = nl != NULL ? (size_t)(nl - p) : n;
		c = len;
		if (len > 0 && p[len - 1] == '\r')
			c--;
		if (cut < c) {
			dkim_sign_text(d, (const char *)p, cut);
			dkim_sign_text(d, (const char *)p + cut, c - cut);
		} else
			dkim_sign_text(d, (const char *)p, c);
		dkim_sign_eol(d);
		if (nl == NULL)
			break;
		p += len + 1;
		n -= len + 1;
	}
	r = dkim_sign_finish(d, 1700000000, out_cb, o, why);
	dkim_sign_free(d);
	return r;
}

/* LLVMFuzzerTestOneInput - one input, checked as the header comment says */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static EVP_PKEY		*pk;
	static const unsigned char seed[32] = { 1, 2, 3 };
	struct dkim_key		 key;
	struct dkim_keys	 ks = { .keys = &key, .n = 1, .refs = 1 };
	struct out		 a = { NULL, 0 }, b = { NULL, 0 };
	const char		*wa, *wb, *l, *nl;
	int			 ra, rb;

	if (size < 1)
		return 0;
	if (pk == NULL)
		FUZZ_CHECK((pk = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519,
		    NULL, seed, sizeof(seed))) != NULL);
	memset(&key, 0, sizeof(key));
	key.domain = "example.com";
	key.selector = "fz";
	key.alg = DKIM_ED25519_SHA256;
	key.pkey = pk;
	ra = run(&ks, data + 1, size - 1, data[0], &a, &wa);
	rb = run(&ks, data + 1, size - 1, (size_t)-1, &b, &wb);
	FUZZ_CHECK(ra == rb && ra >= 0 && ra <= 1);
	FUZZ_CHECK((wa == NULL) == (wb == NULL));
	FUZZ_CHECK(wa == NULL || strcmp(wa, wb) == 0);
	FUZZ_CHECK(ra == a.n && rb == b.n);
	if (ra == 1) {
		FUZZ_CHECK(wa == NULL);
		FUZZ_CHECK(strcmp(a.f, b.f) == 0);
		FUZZ_CHECK(strncmp(a.f, "DKIM-Signature: v=1; ", 21) == 0);
		for (l = a.f; (nl = strchr(l, '\n')) != NULL; l = nl + 1)
			FUZZ_CHECK(nl - l <= 78 && nl[1] == '\t');
		FUZZ_CHECK(strlen(l) <= 78);
	}
	free(a.f);
	free(b.f);
	return 0;
}
