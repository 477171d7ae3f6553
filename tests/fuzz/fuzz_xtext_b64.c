#include "config.h"
/*
 * fuzz_xtext_b64.c - xtext (RFC 3461 4) and base64 (common/syntax.c).
 * The input is decoded both ways; what decodes is encoded again:
 * base64 is strict, so encoding its decoding gives the input back
 * exactly; an xtext decoding encodes and decodes to itself.  The input
 * as raw octets (up to its first NUL) is encoded and decoded back to
 * itself by both codecs; the MTRK certifier check agrees with a decode.
 */

#include <string.h>

#include "common/syntax.h"
#include "tests/fuzz/fuzz.h"

#define MAXIN	4096

/* LLVMFuzzerTestOneInput - one input, checked as the header comment says */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char		 txt[MAXIN * 3 + 8], txt2[MAXIN * 3 + 8];
	static unsigned char	 raw[MAXIN + 8];
	static char		 enc[MAXIN * 3 + 8];
	const char		*s = (const char *)data;
	size_t			 plain;
	int			 n, m;

	if (size > MAXIN)
		return 0;
	/* base64: strict decoding, exact round trip */
	n = base64_decode(s, size, raw, sizeof(raw));
	if (n >= 0) {
		FUZZ_CHECK((size_t)n <= size / 4 * 3);
		m = base64_encode(raw, (size_t)n, enc, sizeof(enc));
		FUZZ_CHECK(m == (int)size && memcmp(enc, s, size) == 0);
	}
	/* a buffer of exactly the decoded size is enough */
	if (n > 0) {
		unsigned char	*exact = malloc((size_t)n);

		FUZZ_CHECK(exact != NULL);
		FUZZ_CHECK(base64_decode(s, size, exact, (size_t)n) == n);
		FUZZ_CHECK(memcmp(exact, raw, (size_t)n) == 0);
		free(exact);
	}
	if (size == ESMTP_MTRK_CERT_LEN) {
		memcpy(txt, s, size);
		txt[size] = '=';
		FUZZ_CHECK(mtrk_certifier_valid(s, size) ==
		    (base64_decode(txt, size + 1, raw, sizeof(raw)) == 20));
	}
	/* raw octets: encode, decode back */
	m = base64_encode(data, size, enc, sizeof(enc));
	FUZZ_CHECK(m >= 0 && (size_t)m == (size + 2) / 3 * 4);
	FUZZ_CHECK(base64_decode(enc, (size_t)m, raw, sizeof(raw)) ==
	    (int)size && memcmp(raw, data, size) == 0);

	/* xtext: decode, encode, decode gives the same */
	if (xtext_decode(s, size, txt, sizeof(txt)) == 0) {
		FUZZ_CHECK(strlen(txt) <= size);
		FUZZ_CHECK(xtext_encode(txt, strlen(txt), enc,
		    sizeof(enc)) == 0);
		FUZZ_CHECK(xtext_decode(enc, strlen(enc), txt2,
		    sizeof(txt2)) == 0 && strcmp(txt, txt2) == 0);
		/* one octet less of room than the decoding needs: refused */
		if (txt[0] != '\0')
			FUZZ_CHECK(xtext_decode(s, size, txt2,
			    strlen(txt)) == -1);
	}
	plain = strnlen(s, size);
	FUZZ_CHECK(xtext_encode(s, plain, enc, sizeof(enc)) == 0);
	FUZZ_CHECK(xtext_decode(enc, strlen(enc), txt, sizeof(txt)) == 0 &&
	    strlen(txt) == plain && memcmp(txt, s, plain) == 0);
	(void)envid_ok(txt);
	return 0;
}
