#include "config.h"
/*
 * fuzz_path.c - the address/path parser (common/syntax.c):
 * smtp_parse_path on the input, then the path it accepted written back
 * with smtp_path_string, bracketed and parsed again: the same local
 * part, domain and kind (null, Postmaster, quoted).  Also
 * smtp_check_domain and mime_check_token on the raw input.
 */

#include <string.h>

#include "common/intl.h"
#include "common/syntax.h"
#include "tests/fuzz/fuzz.h"

/* LLVMFuzzerTestOneInput - one input, checked as the header comment says */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char		*s = (const char *)data, *why = NULL;
	struct mailpath		 p, q;
	char			 str[SMTP_PATH_MAX + 8], again[SMTP_PATH_MAX + 8];
	int			 n, m;

	(void)smtp_check_domain(s, size);
	if (size > 0)
		(void)mime_check_token(s, size);
	n = smtp_parse_path(s, size, &p, &why);
	if (n == -1) {
		FUZZ_CHECK(why != NULL);
		return 0;
	}
	FUZZ_CHECK(n >= 2 && (size_t)n <= size && s[n - 1] == '>');
	FUZZ_CHECK(n <= SMTP_PATH_MAX);
	FUZZ_CHECK(strlen(p.local) <= SMTP_LOCAL_MAX + 2);
	FUZZ_CHECK(strlen(p.domain) <= SMTP_DOMAIN_MAX);
	if (!p.null && !p.postmaster && !p.utf8)
		FUZZ_CHECK(p.domain[0] != '\0' &&
		    smtp_check_domain(p.domain, strlen(p.domain)) == 0);
	else if (!p.null && !p.postmaster)	/* U-labels (RFC 6531) */
		FUZZ_CHECK(p.domain[0] != '\0' &&
		    utf8_valid(p.domain, strlen(p.domain)) &&
		    utf8_valid(p.local, strlen(p.local)));
	(void)smtp_local_unsafe(&p);
	FUZZ_CHECK(smtp_path_string(&p, str, sizeof(str)) == 0);
	FUZZ_CHECK(strlen(str) + 3 <= sizeof(again));
	again[0] = '<';
	memcpy(again + 1, str, strlen(str));
	memcpy(again + 1 + strlen(str), ">", 2);
	m = smtp_parse_path(again, strlen(again), &q, &why);
	FUZZ_CHECK(m == (int)strlen(again));
	FUZZ_CHECK(q.null == p.null && q.postmaster == p.postmaster &&
	    q.quoted == p.quoted);
	FUZZ_CHECK(strcmp(q.local, p.local) == 0);
	FUZZ_CHECK(strcmp(q.domain, p.domain) == 0);
	return 0;
}
