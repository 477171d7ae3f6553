#include "config.h"
/*
 * fuzz_tlsa.c - the TLSA answer reader (delivery/dlv_dane.c) against a
 * hostile answer: the input is the DNS message the resolver returned for
 * _25._tcp.mx.example.test TLSA, read as secure.  Checked: a known state;
 * usable records only in DLV_DANE_USABLE, each of usage 2 or 3 with its
 * data inside the kept bytes; at most DLV_TLSA_MAX records and
 * DLV_TLSA_BYTES of data; a reason (a bounded string) exactly for
 * DLV_DANE_ERROR.
 */

#include <string.h>

#include <ares.h>

#include "delivery/dlv_int.h"
#include "tests/fuzz/fuzz.h"

/* LLVMFuzzerTestOneInput - one input, checked as the header comment says */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dlv_dane	d;
	size_t		i;

	if (size > 65535)
		return 0;
	dlv_dane_answer(&d, "_25._tcp.mx.example.test", ARES_SUCCESS, data,
	    (int)size, 1);
	FUZZ_CHECK(d.state == DLV_DANE_NONE || d.state == DLV_DANE_USABLE ||
	    d.state == DLV_DANE_UNUSABLE || d.state == DLV_DANE_ERROR);
	FUZZ_CHECK(d.ntlsa <= DLV_TLSA_MAX && d.ndata <= DLV_TLSA_BYTES);
	FUZZ_CHECK((d.ntlsa > 0) == (d.state == DLV_DANE_USABLE));
	FUZZ_CHECK(memchr(d.why, '\0', sizeof(d.why)) != NULL);
	FUZZ_CHECK((d.why[0] != '\0') == (d.state == DLV_DANE_ERROR));
	for (i = 0; i < d.ntlsa; i++) {
		FUZZ_CHECK(d.tlsa[i].usage == 2 || d.tlsa[i].usage == 3);
		FUZZ_CHECK(d.tlsa[i].len > 0);
		FUZZ_CHECK((size_t)d.tlsa[i].off + d.tlsa[i].len <= d.ndata);
	}
	return 0;
}
