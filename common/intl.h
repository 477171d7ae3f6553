/*
 * intl.h - internationalized mail (SMTPUTF8, RFC 6531-6533): well-formed
 * UTF-8 (RFC 3629 4), U-label domains to A-labels (libidn2, IDNA2008 +
 * UTS #46 non-transitional) and local parts in NFC (libunistring).
 */
#ifndef WAYMARK_INTL_H
#define WAYMARK_INTL_H

#include <stddef.h>

/* utf8_valid - 1 when s[0..n) is well-formed UTF-8 (RFC 3629 4: no
 * overlong form, no surrogate, nothing above U+10FFFF, no lone
 * continuation octet), else 0 */
int	utf8_valid(const char *s, size_t n);
/* str_nonascii - 1 when s[0..n) has an octet >= 0x80 */
int	str_nonascii(const char *s, size_t n);

/*
 * utf8_stream - the same check fed in pieces (a header line arrives in
 * several reads): zero it, utf8_stream_feed every octet run, then
 * utf8_stream_end at the end of the line.  bad sticks once set.
 */
struct utf8_stream {
	unsigned char	need;		/* continuation octets still due */
	unsigned char	lo, hi;		/* range of the next one */
	unsigned char	bad;		/* an ill-formed sequence was seen */
	unsigned char	nonascii;	/* an octet >= 0x80 was seen */
};
void	utf8_stream_feed(struct utf8_stream *u, const char *p, size_t n);
void	utf8_stream_end(struct utf8_stream *u);

/*
 * intl_domain_ascii - the domain as DNS, routing and local_domains see it:
 * ASCII is copied lower-cased; anything else goes through libidn2
 * (idn2_lookup_u8, IDN2_NFC_INPUT | IDN2_NONTRANSITIONAL) to A-labels.
 * An address literal ("[...]") is copied.  0, or -1 when libidn2
 * refuses the domain or out is too small.
 */
int	intl_domain_ascii(const char *in, char *out, size_t outlen);
/* intl_local_nfc - the local part in Unicode NFC (ASCII copied as is);
 * 0, or -1 on ill-formed UTF-8 or when out is too small */
int	intl_local_nfc(const char *in, char *out, size_t outlen);
/* intl_addr_key - "nfc(local)@alabel(domain)", the form two addresses
 * are compared in; 0 or -1 (then the address copied unchanged) */
int	intl_addr_key(const char *addr, char *out, size_t outlen);

#endif
