#include "config.h"
/*
 * fuzz_mtasts.c - delivery/dlv_mtasts.c's parsers against a hostile
 * policy domain: the input is read as an `_mta-sts` TXT record
 * (dlv_sts_txt_id) and as a policy file (dlv_sts_parse); a parsed policy
 * is then matched against the input's first line as an MX name.
 * Checked: an id of 1..32 alphanumerics; a policy with a known mode, at
 * most DLV_STS_MX_MAX lower-case patterns without spaces, max_age in
 * 0..31557600, and some mx unless the mode is none.
 */

#include <ctype.h>
#include <string.h>

#include "delivery/dlv_int.h"
#include "tests/fuzz/fuzz.h"

/* LLVMFuzzerTestOneInput - one input, checked as the header comment says */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct dlv_sts	 p;
	const char		*why = NULL, *s = (const char *)data;
	char			 id[33], host[256];
	size_t			 i, j, n;
	int			 rc;

	rc = dlv_sts_txt_id(s, size, id);
	FUZZ_CHECK(rc >= -1 && rc <= 1);
	if (rc == 0) {
		n = strlen(id);
		FUZZ_CHECK(n >= 1 && n <= 32);
		for (i = 0; i < n; i++)
			FUZZ_CHECK(isalnum((unsigned char)id[i]));
	}
	memset(&p, 0, sizeof(p));
	rc = dlv_sts_parse(s, size, &p, &why);
	FUZZ_CHECK(rc == 0 || rc == -1);
	if (rc == -1) {
		FUZZ_CHECK(why != NULL && why[0] != '\0');
		return 0;
	}
	FUZZ_CHECK(p.mode == DLV_STS_NONE || p.mode == DLV_STS_TESTING ||
	    p.mode == DLV_STS_ENFORCE);
	FUZZ_CHECK(p.nmx <= DLV_STS_MX_MAX);
	FUZZ_CHECK(p.nmx > 0 || p.mode == DLV_STS_NONE);
	FUZZ_CHECK(p.max_age >= 0 && p.max_age <= 31557600L);
	for (i = 0; i < p.nmx; i++) {
		FUZZ_CHECK(p.mx[i][0] != '\0');
		for (j = 0; p.mx[i][j] != '\0'; j++)
			FUZZ_CHECK(!isupper((unsigned char)p.mx[i][j]) &&
			    !isspace((unsigned char)p.mx[i][j]));
	}
	{
		const char *nl = memchr(s, '\n', size);

		n = nl != NULL ? (size_t)(nl - s) : size;
	}
	if (memchr(s, '\0', n) != NULL)
		n = strlen(s);
	if (n >= sizeof(host))
		n = sizeof(host) - 1;
	memcpy(host, s, n);
	host[n] = '\0';
	rc = dlv_sts_mx_match(&p, host);
	FUZZ_CHECK(rc >= 0 && (size_t)rc <= p.nmx);
	return 0;
}
