#include "config.h"
/*
 * failtab.c - failures per client address in a bounded table.
 * Owns: the table (set-associative: an address hashes, with a random
 *       key, to one set of FT_WAYS entries), the fixed-window counting,
 *       the reuse of expired entries, else of the set's entry with the
 *       fewest failures.
 * Entry points: failtab_new, failtab_free, failtab_count, failtab_add,
 *       failtab_size, failtab_cap, failtab_key.
 * Not here: what a failure is and what happens at the limit (the
 *       callers: smtpd_auth.c for auth_failures), the exceptions.
 * Invariants: an address has at most one entry; memory is fixed at
 *       failtab_new; every operation touches one set (O(FT_WAYS)); an
 *       IPv4 address and its IPv4-mapped IPv6 form are one key.
 */

#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "common/failtab.h"

#define FT_WAYS		4

struct ft_entry {
	unsigned char	addr[16];	/* IPv6, or IPv4-mapped */
	time_t		start;		/* window opened (first failure) */
	unsigned	count;		/* 0 = free */
};

struct failtab {
	size_t		 nsets;		/* a power of two */
	uint64_t	 key;		/* hash key: sets are not predictable */
	struct ft_entry	 e[];		/* nsets * FT_WAYS */
};

/* failtab_key - the address as 16 bytes (IPv4 as ::ffff:a.b.c.d); -1 other */
int
failtab_key(const struct sockaddr *sa, unsigned char out[16])
{
	const struct sockaddr_in	*s4;
	const struct sockaddr_in6	*s6;

	if (sa == NULL)
		return -1;
	if (sa->sa_family == AF_INET) {
		s4 = (const struct sockaddr_in *)(const void *)sa;
		memset(out, 0, 10);
		out[10] = out[11] = 0xff;
		memcpy(out + 12, &s4->sin_addr, 4);
		return 0;
	}
	if (sa->sa_family == AF_INET6) {
		s6 = (const struct sockaddr_in6 *)(const void *)sa;
		memcpy(out, &s6->sin6_addr, 16);
		return 0;
	}
	return -1;
}

/* ft_hash - keyed FNV-1a, then a 64-bit finaliser */
static uint64_t
ft_hash(uint64_t key, const unsigned char a[16])
{
	uint64_t	h = 0xcbf29ce484222325ULL ^ key;
	size_t		i;

	for (i = 0; i < 16; i++) {
		h ^= a[i];
		h *= 0x100000001b3ULL;
	}
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ULL;
	h ^= h >> 33;
	return h;
}

/* ft_live - does e hold a failure whose window is still open? */
static int
ft_live(const struct ft_entry *e, unsigned window, time_t now)
{
	return e->count > 0 && now >= e->start &&
	    (uint64_t)(now - e->start) < (uint64_t)window;
}

/* failtab_new - all entries free */
struct failtab *
failtab_new(size_t cap)
{
	struct failtab	*t;
	size_t		 nsets = 1;

	while (nsets * FT_WAYS < cap && nsets < ((size_t)1 << 24))
		nsets <<= 1;
	if ((t = calloc(1, sizeof(*t) + nsets * FT_WAYS *
	    sizeof(struct ft_entry))) == NULL)
		return NULL;
	t->nsets = nsets;
	if (getrandom(&t->key, sizeof(t->key), GRND_NONBLOCK) !=
	    (ssize_t)sizeof(t->key))
		t->key = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32) ^
		    (uint64_t)(uintptr_t)t;
	return t;
}

void
failtab_free(struct failtab *t)
{
	free(t);
}

/* ft_set - the first entry of the set of addr */
static struct ft_entry *
ft_set(struct failtab *t, const unsigned char a[16])
{
	return &t->e[(ft_hash(t->key, a) & (t->nsets - 1)) * FT_WAYS];
}

/* failtab_count - the count in the open window, else 0 */
unsigned
failtab_count(struct failtab *t, const struct sockaddr *sa, unsigned window,
    time_t now)
{
	struct ft_entry	*e;
	unsigned char	 a[16];
	size_t		 i;

	if (t == NULL || failtab_key(sa, a) == -1)
		return 0;
	e = ft_set(t, a);
	for (i = 0; i < FT_WAYS; i++)
		if (e[i].count > 0 && memcmp(e[i].addr, a, 16) == 0)
			return ft_live(&e[i], window, now) ? e[i].count : 0;
	return 0;
}

/* failtab_add - count one failure: in the open window, or open one */
unsigned
failtab_add(struct failtab *t, const struct sockaddr *sa, unsigned window,
    time_t now)
{
	struct ft_entry	*e, *use = NULL;
	unsigned char	 a[16];
	size_t		 i;

	if (t == NULL || failtab_key(sa, a) == -1)
		return 0;
	e = ft_set(t, a);
	for (i = 0; i < FT_WAYS; i++)
		if (e[i].count > 0 && memcmp(e[i].addr, a, 16) == 0) {
			use = &e[i];
			break;
		}
	if (use != NULL && ft_live(use, window, now)) {
		if (use->count < ~0u)
			use->count++;
		return use->count;
	}
	if (use == NULL) {
		/* a free or expired entry, else the one with the fewest
		 * failures (then the oldest window): an address at the
		 * limit is the last one a flood of new addresses evicts */
		for (i = 0; i < FT_WAYS; i++) {
			if (!ft_live(&e[i], window, now)) {
				use = &e[i];
				break;
			}
			if (use == NULL || e[i].count < use->count ||
			    (e[i].count == use->count &&
			    e[i].start < use->start))
				use = &e[i];
		}
	}
	memcpy(use->addr, a, 16);
	use->start = now;
	use->count = 1;
	return 1;
}

/* failtab_size - entries with an open window */
size_t
failtab_size(const struct failtab *t, unsigned window, time_t now)
{
	size_t	i, n = 0;

	if (t == NULL)
		return 0;
	for (i = 0; i < t->nsets * FT_WAYS; i++)
		n += ft_live(&t->e[i], window, now);
	return n;
}

size_t
failtab_cap(const struct failtab *t)
{
	return t != NULL ? t->nsets * FT_WAYS : 0;
}

/* ------------------------------------------- the auth_failures table */

#define FT_AUTH_CAP	4096	/* client addresses tracked at most */

static struct failtab	*auth_tab;	/* made at the first failure */

unsigned
failtab_auth_count(const struct sockaddr *sa, unsigned window, time_t now)
{
	return auth_tab != NULL ? failtab_count(auth_tab, sa, window, now) :
	    0;
}

unsigned
failtab_auth_add(const struct sockaddr *sa, unsigned window, time_t now)
{
	if (auth_tab == NULL && (auth_tab = failtab_new(FT_AUTH_CAP)) == NULL)
		return 0;
	return failtab_add(auth_tab, sa, window, now);
}
