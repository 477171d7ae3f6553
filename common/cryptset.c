#include "config.h"
/*
 * cryptset.c - crypt(3) settings read, never computed.
 * Owns: the setting of a hash, whether a hash can match (locked "!"/"*"
 *       entries, crypt_checksalt), the scheme's name, the cost estimate.
 * Entry points: cryptset_setting, cryptset_usable, cryptset_cost,
 *       cryptset_scheme.
 * Not here: the auth_users file and the choice of the dummy (cfg.c),
 *       the checks themselves (pwcheck.c).
 * The cost rule (documented in waymark.conf(5), auth_users): a check's
 *       cost is estimated from the scheme and the cost parameters in the
 *       setting, with a factor per scheme measured once on the 2-core test
 *       box (libxcrypt 4.4, 8-octet password); the factors only need to
 *       rank settings of different schemes, not predict times.
 *           bcrypt $2a$ $2b$ $2x$ $2y$   50 us * 2^cost
 *           yescrypt $y$, $gy$          150 ns * N * r * (t + 1)
 *           scrypt $7$                  230 ns * N * r * p
 *           SHA-512 crypt $6$           260 ns * rounds (default 5000)
 *           SHA-256 crypt $5$           400 ns * rounds (default 5000)
 *           sha1crypt $sha1$            700 ns * rounds
 *           SunMD5 $md5                 1.4 us * (4096 + rounds)
 *           BSDi _                      140 ns * count
 *           md5crypt $1$ 130 us, DES 5 us, NT $3$ 1 us, other schemes 0
 * Invariants: pure functions of their argument; no allocation but in
 *       cryptset_setting; products saturate at UINT64_MAX.
 */

#include <crypt.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/cryptset.h"

enum cost_kind {
	CK_FIXED,		/* ns */
	CK_BCRYPT,		/* ns * 2^cost */
	CK_SHACRYPT,		/* ns * rounds ("rounds=N$", default 5000) */
	CK_YESCRYPT,		/* ns * N * r * (t + 1) */
	CK_SCRYPT,		/* ns * N * r * p */
	CK_SHA1,		/* ns * rounds */
	CK_SUNMD5,		/* ns * (4096 + rounds) */
	CK_BSDI			/* ns * count */
};

/* the cost rule: prefix, how to read its cost, ns per unit */
static const struct cost_row {
	const char	*prefix;
	enum cost_kind	 kind;
	uint64_t	 ns;
} cost_rows[] = {
	{ "$2a$",	CK_BCRYPT,	50000 },
	{ "$2b$",	CK_BCRYPT,	50000 },
	{ "$2x$",	CK_BCRYPT,	50000 },
	{ "$2y$",	CK_BCRYPT,	50000 },
	{ "$y$",	CK_YESCRYPT,	150 },
	{ "$gy$",	CK_YESCRYPT,	150 },
	{ "$7$",	CK_SCRYPT,	230 },
	{ "$6$",	CK_SHACRYPT,	260 },
	{ "$5$",	CK_SHACRYPT,	400 },
	{ "$sha1$",	CK_SHA1,	700 },
	{ "$md5",	CK_SUNMD5,	1400 },
	{ "$1$",	CK_FIXED,	130000 },
	{ "$3$",	CK_FIXED,	1000 },
	{ "_",		CK_BSDI,	140 },
};

#define NELEM(a)	(sizeof(a) / sizeof((a)[0]))
#define DES_NS		5000
#define SHA_ROUNDS_DEF	5000
#define SHA_ROUNDS_MIN	1000
#define SHA_ROUNDS_MAX	999999999ULL
#define SUNMD5_BASIC	4096

/* cryptset_setting - scheme, cost and salt of a hash, without the hash */
char *
cryptset_setting(const char *hash)
{
	const char	*e;
	size_t		 n, len = strlen(hash);

	if (hash[0] == '$' && hash[1] == '2' && len >= 29 && hash[3] == '$')
		n = 29;
	else if (hash[0] == '$') {
		e = strrchr(hash, '$');
		n = (size_t)(e - hash) + 1;
	} else if (hash[0] == '_')
		n = 9;
	else
		n = 2;
	if (n > len || (hash[0] == '$' && n < 4)) {
		errno = EINVAL;
		return NULL;
	}
	return strndup(hash, n);
}

/* cryptset_usable - 1 when crypt(3) may match hash */
int
cryptset_usable(const char *hash)
{
	char	*set;
	int	 rc;

	if (hash[0] == '!' || hash[0] == '*' || hash[0] == '\0')
		return 0;
	if ((set = cryptset_setting(hash)) == NULL)
		return 0;
	rc = crypt_checksalt(set);
	free(set);
	return rc == CRYPT_SALT_OK || rc == CRYPT_SALT_METHOD_LEGACY ||
	    rc == CRYPT_SALT_TOO_CHEAP;
}

/* smul - a * b, saturating */
static uint64_t
smul(uint64_t a, uint64_t b)
{
	if (a != 0 && b > UINT64_MAX / a)
		return UINT64_MAX;
	return a * b;
}

/* a64 - the value of one crypt(3) base-64 character ("./0-9A-Za-z"), or -1 */
static int
a64(char c)
{
	if (c == '.' || c == '/')
		return c - '.';
	if (c >= '0' && c <= '9')
		return c - '0' + 2;
	if (c >= 'A' && c <= 'Z')
		return c - 'A' + 12;
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 38;
	return -1;
}

/*
 * yes_uint - one variable-length number of a yescrypt setting: the first
 * character's range says how many follow (0..47: none; then ranges
 * half as wide each, one more character each), values start at min.
 * Advances *p; -1 when malformed.
 */
static int
yes_uint(const char **p, uint32_t min, uint64_t *out)
{
	uint64_t	v = min;
	int		c, start = 0, end = 47, chars = 1, bits = 0;

	if ((c = a64(*(*p)++)) < 0)
		return -1;
	while (c > end) {
		v += (uint64_t)(end + 1 - start) << bits;
		start = end + 1;
		end = start + (62 - end) / 2;
		chars++;
		bits += 6;
	}
	v += (uint64_t)(c - start) << bits;
	while (--chars > 0) {
		if ((c = a64(*(*p)++)) < 0)
			return -1;
		bits -= 6;
		v += (uint64_t)c << bits;
	}
	*out = v;
	return 0;
}

/* yescrypt_units - N * r * (t + 1) of "$y$..." (s after the prefix) */
static uint64_t
yescrypt_units(const char *s)
{
	uint64_t	flavor, nlog2, r, have, p = 1, t = 0;

	if (yes_uint(&s, 0, &flavor) == -1 || yes_uint(&s, 1, &nlog2) == -1 ||
	    nlog2 > 63 || yes_uint(&s, 1, &r) == -1)
		return 0;
	if (*s != '$' && *s != '\0') {
		if (yes_uint(&s, 1, &have) == -1)
			return 0;
		if ((have & 1) && yes_uint(&s, 2, &p) == -1)
			return 0;
		if ((have & 2) && yes_uint(&s, 1, &t) == -1)
			return 0;
	}
	return smul(smul((uint64_t)1 << nlog2, r), t + 1);
}

/* fixed30 - a 30-bit number in 5 characters, least significant first */
static uint64_t
fixed30(const char *s)
{
	uint64_t	v = 0;
	int		i, c;

	for (i = 0; i < 5; i++) {
		if ((c = a64(s[i])) < 0)
			return 0;
		v |= (uint64_t)c << (6 * i);
	}
	return v;
}

/* scrypt_units - N * r * p of "$7$" (s after the prefix) */
static uint64_t
scrypt_units(const char *s)
{
	int	nlog2 = a64(s[0]);

	if (nlog2 < 1 || strnlen(s, 11) < 11)
		return 0;
	return smul(smul((uint64_t)1 << nlog2, fixed30(s + 1)),
	    fixed30(s + 6));
}

/* number_at - the decimal number at s ending at '$' (or ','); 0 if none */
static uint64_t
number_at(const char *s)
{
	char			*end;
	unsigned long long	 v;

	if (*s < '0' || *s > '9')
		return 0;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || (*end != '$' && *end != '\0'))
		return 0;
	return v;
}

/* cryptset_cost - the cost rule of the header comment */
uint64_t
cryptset_cost(const char *hash)
{
	const struct cost_row	*row = NULL;
	const char		*s;
	uint64_t		 n;
	size_t			 i;
	int			 c;

	for (i = 0; i < NELEM(cost_rows); i++)
		if (strncmp(hash, cost_rows[i].prefix,
		    strlen(cost_rows[i].prefix)) == 0) {
			row = &cost_rows[i];
			break;
		}
	if (row == NULL)
		return hash[0] != '$' && hash[0] != '\0' ? DES_NS : 0;
	s = hash + strlen(row->prefix);
	switch (row->kind) {
	case CK_FIXED:
		return row->ns;
	case CK_BCRYPT:
		if (s[0] < '0' || s[0] > '9' || s[1] < '0' || s[1] > '9' ||
		    s[2] != '$')
			return 0;
		n = (uint64_t)((s[0] - '0') * 10 + (s[1] - '0'));
		return n > 63 ? UINT64_MAX : smul(row->ns, (uint64_t)1 << n);
	case CK_SHACRYPT:
		n = SHA_ROUNDS_DEF;
		if (strncmp(s, "rounds=", 7) == 0) {
			n = number_at(s + 7);	/* clamped as crypt(3) does */
			if (n < SHA_ROUNDS_MIN)
				n = SHA_ROUNDS_MIN;
			if (n > SHA_ROUNDS_MAX)
				n = SHA_ROUNDS_MAX;
		}
		return smul(row->ns, n);
	case CK_YESCRYPT:
		return smul(row->ns, yescrypt_units(s));
	case CK_SCRYPT:
		return smul(row->ns, scrypt_units(s));
	case CK_SHA1:
		return smul(row->ns, number_at(s));
	case CK_SUNMD5:
		n = strncmp(s, ",rounds=", 8) == 0 ? number_at(s + 8) : 0;
		return smul(row->ns, n + SUNMD5_BASIC);
	case CK_BSDI:
		for (n = 0, i = 0; i < 4; i++) {
			if ((c = a64(s[i])) < 0)
				return 0;
			n |= (uint64_t)c << (6 * i);
		}
		return smul(row->ns, n);
	}
	return 0;
}

/* cryptset_scheme - "$id$", "_" or "DES" */
void
cryptset_scheme(const char *hash, char *out, size_t outlen)
{
	const char	*name = hash[0] == '_' ? "_" : "DES";
	size_t		 n;

	if (outlen < 3) {
		if (outlen > 0)
			out[0] = '\0';
		return;
	}
	if (hash[0] == '$') {
		n = 1 + strcspn(hash + 1, "$,");
		if (n > outlen - 2)
			n = outlen - 2;
		memcpy(out, hash, n);
		out[n] = '$';
		out[n + 1] = '\0';
		return;
	}
	n = strlen(name);
	if (n > outlen - 1)
		n = outlen - 1;
	memcpy(out, name, n);
	out[n] = '\0';
}
