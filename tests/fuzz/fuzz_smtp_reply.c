#include "config.h"
/*
 * fuzz_smtp_reply.c - the SMTP client's reply parser against a hostile
 * next hop (delivery/dlv_smtp.c through dlv_reply_probe): the input is
 * what the server sends, read as the reply to EHLO and as the reply to
 * MAIL.  Checked for each complete reply: a code 200..599, an enhanced
 * status "x.y.z" of the code's class (taken from the reply or made up
 * as "x.0.0"), a bounded text without a line end (LF).
 */

#include <string.h>

#include "delivery/dlv_int.h"
#include "tests/fuzz/fuzz.h"

/* enh_ok - "c.D.D" with 1..3 digits per part and c the class */
static int
enh_ok(const char *e, int cls)
{
	size_t	i = 0, part, d;

	if (e[0] != '0' + cls || e[1] != '.')
		return 0;
	for (part = 0; part < 3; part++) {
		for (d = 0; e[i] >= '0' && e[i] <= '9'; i++)
			d++;
		if (d == 0 || d > 3)
			return 0;
		if (part < 2 && e[i++] != '.')
			return 0;
	}
	return e[i] == '\0';
}

/* one - a complete reply */
static void
one(void *arg, const struct dlv_reply_info *ri)
{
	(void)arg;
	FUZZ_CHECK(ri->code >= 200 && ri->code <= 599);
	FUZZ_CHECK(enh_ok(ri->enh, ri->code / 100));
	FUZZ_CHECK(strlen(ri->text) < 512);
	FUZZ_CHECK(strchr(ri->text, '\n') == NULL);
	FUZZ_CHECK(ri->bymin >= 0);
}

/* LLVMFuzzerTestOneInput - one input, checked as the header comment says */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int	n;

	n = dlv_reply_probe((const char *)data, size, 1, one, NULL);
	FUZZ_CHECK(n >= -1);
	n = dlv_reply_probe((const char *)data, size, 0, one, NULL);
	FUZZ_CHECK(n >= -1);
	return 0;
}
