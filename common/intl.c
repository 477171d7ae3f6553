#include "config.h"
/*
 * intl.c - internationalized mail (SMTPUTF8, RFC 6531, 6532, 6533).
 * Owns: the well-formed UTF-8 check (RFC 3629 4, the octet rules RFC 6532
 *       3.1 points to) for whole strings and for a stream of pieces,
 *       U-label -> A-label conversion for DNS, routing and local_domains
 *       (libidn2: IDNA2008 with UTS #46 non-transitional mapping and NFC,
 *       never by hand; IDN2_USE_STD3_ASCII_RULES is not used: it drops
 *       '_' silently), and the NFC form of local parts (libunistring's
 *       u8_normalize) in which local parts are compared.
 * Invariants: ASCII input never reaches libidn2 or libunistring (ASCII
 *       mail costs a scan for octets >= 0x80, nothing more); outputs are
 *       bounded by the caller's buffer and NUL-terminated.
 * Not here: where UTF-8 is allowed (common/syntax.c for paths,
 *       smtpd/smtpd_data.c for header fields).
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <idn2.h>
#include <uninorm.h>

#include "common/intl.h"
#include "common/util.h"

/* utf8_valid - RFC 3629 4 well-formed */
int
utf8_valid(const char *s, size_t n)
{
	const unsigned char	*p = (const unsigned char *)s;
	size_t			 k;

	while (n > 0) {
		if ((k = utf8_len(p, n)) == 0)
			return 0;
		p += k;
		n -= k;
	}
	return 1;
}

/* str_nonascii - any octet >= 0x80 */
int
str_nonascii(const char *s, size_t n)
{
	size_t	i;

	for (i = 0; i < n; i++)
		if ((unsigned char)s[i] >= 0x80)
			return 1;
	return 0;
}

/* utf8_stream_feed - RFC 3629 4 as a state machine over pieces */
void
utf8_stream_feed(struct utf8_stream *u, const char *s, size_t n)
{
	const unsigned char	*p = (const unsigned char *)s;
	unsigned char		 c;
	size_t			 i;

	for (i = 0; i < n; i++) {
		c = p[i];
		if (u->need > 0) {
			if (c < u->lo || c > u->hi) {
				u->bad = 1;
				u->need = 0;
				if (c < 0x80)
					continue;
				/* re-read c as a possible lead octet */
			} else {
				u->need--;
				u->lo = 0x80;
				u->hi = 0xbf;
				continue;
			}
		}
		if (c < 0x80)
			continue;
		u->nonascii = 1;
		u->lo = 0x80;
		u->hi = 0xbf;
		if (c >= 0xc2 && c <= 0xdf)
			u->need = 1;
		else if (c >= 0xe0 && c <= 0xef) {
			u->need = 2;
			if (c == 0xe0)
				u->lo = 0xa0;		/* overlong */
			else if (c == 0xed)
				u->hi = 0x9f;		/* surrogates */
		} else if (c >= 0xf0 && c <= 0xf4) {
			u->need = 3;
			if (c == 0xf0)
				u->lo = 0x90;		/* overlong */
			else if (c == 0xf4)
				u->hi = 0x8f;		/* > U+10FFFF */
		} else
			u->bad = 1;	/* continuation alone, C0, C1, F5-FF */
	}
}

/* utf8_stream_end - a sequence cut by the end of the line is ill-formed */
void
utf8_stream_end(struct utf8_stream *u)
{
	if (u->need > 0)
		u->bad = 1;
	u->need = 0;
}

/* intl_domain_ascii - A-labels for DNS, routing, local_domains */
int
intl_domain_ascii(const char *in, char *out, size_t outlen)
{
	uint8_t	*res = NULL;
	size_t	 n = strlen(in);

	if (n >= outlen)
		return -1;
	if (!str_nonascii(in, n)) {
		memcpy(out, in, n + 1);
		if (in[0] != '[')
			str_lower(out);
		return 0;
	}
	if (in[0] == '[' || !utf8_valid(in, n))
		return -1;
	if (idn2_lookup_u8((const uint8_t *)in, &res,
	    IDN2_NFC_INPUT | IDN2_NONTRANSITIONAL) != IDN2_OK)
		return -1;
	n = strlen((const char *)res);
	if (n >= outlen) {
		idn2_free(res);
		return -1;
	}
	memcpy(out, res, n + 1);
	idn2_free(res);
	str_lower(out);
	return 0;
}

/* intl_local_nfc - NFC (RFC 6532 3.1: NFC SHOULD be used) */
int
intl_local_nfc(const char *in, char *out, size_t outlen)
{
	uint8_t	*res;
	size_t	 n = strlen(in), rlen = 0;

	if (n >= outlen)
		return -1;
	if (!str_nonascii(in, n)) {
		memcpy(out, in, n + 1);
		return 0;
	}
	if (!utf8_valid(in, n))
		return -1;
	res = u8_normalize(UNINORM_NFC, (const uint8_t *)in, n, NULL, &rlen);
	if (res == NULL)
		return -1;
	if (rlen >= outlen) {
		free(res);
		return -1;
	}
	memcpy(out, res, rlen);
	out[rlen] = '\0';
	free(res);
	return 0;
}

/* intl_addr_key - the compared form of an address */
int
intl_addr_key(const char *addr, char *out, size_t outlen)
{
	const char	*at = strrchr(addr, '@');
	char		 local[512], dom[512];
	size_t		 ll;

	if (at == NULL || (ll = (size_t)(at - addr)) >= sizeof(local))
		goto copy;
	memcpy(local, addr, ll);
	local[ll] = '\0';
	if (intl_local_nfc(local, out, outlen) == -1 ||
	    intl_domain_ascii(at + 1, dom, sizeof(dom)) == -1)
		goto copy;
	ll = strlen(out);
	if (ll + 1 + strlen(dom) >= outlen)
		goto copy;
	out[ll] = '@';
	memcpy(out + ll + 1, dom, strlen(dom) + 1);
	return 0;
copy:
	if (strlen(addr) < outlen)
		memcpy(out, addr, strlen(addr) + 1);
	else if (outlen > 0)
		out[0] = '\0';
	return -1;
}
