#include "config.h"
/*
 * smtpd_clients.c - concurrent SMTP sessions per client address, for
 * max_sessions_per_client (DESIGN.md "Per-client limits").
 * Owns: a hash table keyed by the client's IP address (IPv4-mapped IPv6
 *       counted as the IPv4 address; the port and scope are ignored),
 *       one entry per address with at least one counted session.
 * Entry points: smtpd_client_take (at accept), smtpd_client_release
 *       (when the session is freed), smtpd_clients_free (at stop),
 *       smtpd_clients_stats (unit tests).
 * Not here: the exemptions (cfg_client_exempt, decided by the caller),
 *       the 421 reply (smtpd_session.c).
 * Invariants: an entry lives exactly while its count is > 0, so memory
 *       follows the sessions open now, never the addresses seen over
 *       time; take and release cost O(1) (the session keeps its entry;
 *       the bucket array doubles when there are more entries than
 *       buckets and never shrinks below the peak); the hash is keyed
 *       with random bits (SipHash-1-3) so that a client cannot choose
 *       addresses that share a bucket.
 */

#include <sys/types.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smtpd/smtpd_session.h"

#define CLIENTS_MIN_BUCKETS	64	/* power of two */

struct smtpd_client {
	struct smtpd_client	 *next;
	struct smtpd_client	**pprev;	/* the pointer that points here */
	unsigned char		  addr[16];	/* IPv6, IPv4 as ::ffff:a.b.c.d */
	unsigned		  count;	/* sessions counted, > 0 */
};

static struct smtpd_client	**buckets;
static size_t			  nbuckets;	/* 0 or a power of two */
static size_t			  nentries;
static uint64_t			  hkey[2];

/* client_key - the 16-byte key of sa; -1 for other families */
static int
client_key(const struct sockaddr_storage *ss, unsigned char key[16])
{
	const struct sockaddr_in	*s4;
	const struct sockaddr_in6	*s6;

	if (ss->ss_family == AF_INET) {
		s4 = (const struct sockaddr_in *)(const void *)ss;
		memset(key, 0, 10);
		key[10] = key[11] = 0xff;
		memcpy(key + 12, &s4->sin_addr, 4);
		return 0;
	}
	if (ss->ss_family == AF_INET6) {
		s6 = (const struct sockaddr_in6 *)(const void *)ss;
		memcpy(key, &s6->sin6_addr, 16);
		return 0;
	}
	return -1;
}

#define ROTL(x, b)	(uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))

/* sip_round - one SipRound */
static inline void
sip_round(uint64_t v[4])
{
	v[0] += v[1]; v[1] = ROTL(v[1], 13); v[1] ^= v[0]; v[0] = ROTL(v[0], 32);
	v[2] += v[3]; v[3] = ROTL(v[3], 16); v[3] ^= v[2];
	v[0] += v[3]; v[3] = ROTL(v[3], 21); v[3] ^= v[0];
	v[2] += v[1]; v[1] = ROTL(v[1], 17); v[1] ^= v[2]; v[2] = ROTL(v[2], 32);
}

/* client_hash - SipHash-1-3 of the 16-byte key under hkey */
static uint64_t
client_hash(const unsigned char key[16])
{
	uint64_t	v[4], m;
	int		i;

	v[0] = hkey[0] ^ 0x736f6d6570736575ULL;
	v[1] = hkey[1] ^ 0x646f72616e646f6dULL;
	v[2] = hkey[0] ^ 0x6c7967656e657261ULL;
	v[3] = hkey[1] ^ 0x7465646279746573ULL;
	for (i = 0; i < 2; i++) {
		memcpy(&m, key + 8 * i, 8);
		v[3] ^= m;
		sip_round(v);
		v[0] ^= m;
	}
	m = (uint64_t)16 << 56;		/* length, no tail bytes */
	v[3] ^= m;
	sip_round(v);
	v[0] ^= m;
	v[2] ^= 0xff;
	sip_round(v);
	sip_round(v);
	sip_round(v);
	return v[0] ^ v[1] ^ v[2] ^ v[3];
}

/* client_link - put e at the head of its bucket */
static void
client_link(struct smtpd_client *e)
{
	struct smtpd_client **b;

	b = &buckets[client_hash(e->addr) & (nbuckets - 1)];
	e->next = *b;
	if (e->next != NULL)
		e->next->pprev = &e->next;
	e->pprev = b;
	*b = e;
}

/* clients_grow - first table, or twice the buckets; -1 (table kept) on ENOMEM */
static int
clients_grow(void)
{
	struct smtpd_client	**old = buckets, *e, *next;
	size_t			  oldn = nbuckets, n, i;

	n = oldn == 0 ? CLIENTS_MIN_BUCKETS : oldn * 2;
	if (oldn == 0 && getrandom(hkey, sizeof(hkey), GRND_NONBLOCK) !=
	    (ssize_t)sizeof(hkey)) {
		/* no entropy yet: still spread, only less unpredictably */
		hkey[0] = (uint64_t)(uintptr_t)&hkey ^ 0x9e3779b97f4a7c15ULL;
		hkey[1] = (uint64_t)(uintptr_t)&n;
	}
	if ((buckets = calloc(n, sizeof(*buckets))) == NULL) {
		buckets = old;
		return -1;
	}
	nbuckets = n;
	for (i = 0; i < oldn; i++)
		for (e = old[i]; e != NULL; e = next) {
			next = e->next;
			client_link(e);
		}
	free(old);
	return 0;
}

/* client_find - the entry for key, or NULL */
static struct smtpd_client *
client_find(const unsigned char key[16])
{
	struct smtpd_client *e;

	if (nbuckets == 0)
		return NULL;
	for (e = buckets[client_hash(key) & (nbuckets - 1)]; e != NULL;
	    e = e->next)
		if (memcmp(e->addr, key, 16) == 0)
			return e;
	return NULL;
}

/*
 * smtpd_client_take - count s against its address when fewer than cap
 * sessions from there are counted.  Returns 0 (counted, s->client set),
 * 1 (the address is at its cap: not counted), -1 (out of memory; an
 * address of another family is not counted and returns 0).
 */
int
smtpd_client_take(struct smtpd_session *s, unsigned cap)
{
	struct smtpd_client	*e;
	unsigned char		 key[16];

	if (s->client != NULL || client_key(&s->ss, key) == -1)
		return 0;
	if ((e = client_find(key)) != NULL) {
		if (e->count >= cap)
			return 1;
		e->count++;
		s->client = e;
		return 0;
	}
	if (cap == 0)
		return 1;
	if (nentries >= nbuckets && clients_grow() == -1 && nbuckets == 0)
		return -1;
	if ((e = calloc(1, sizeof(*e))) == NULL)
		return -1;
	memcpy(e->addr, key, 16);
	e->count = 1;
	client_link(e);
	nentries++;
	s->client = e;
	return 0;
}

/* smtpd_client_release - uncount s; the entry goes with its last session */
void
smtpd_client_release(struct smtpd_session *s)
{
	struct smtpd_client *e = s->client;

	if (e == NULL)
		return;
	s->client = NULL;
	if (--e->count > 0)
		return;
	*e->pprev = e->next;
	if (e->next != NULL)
		e->next->pprev = e->pprev;
	free(e);
	nentries--;
}

/* smtpd_clients_stats - addresses counted now, and the buckets */
void
smtpd_clients_stats(size_t *entries, size_t *nbucket)
{
	*entries = nentries;
	*nbucket = nbuckets;
}

/* smtpd_clients_free - the bucket array, once no session is counted */
void
smtpd_clients_free(void)
{
	if (nentries != 0)
		return;
	free(buckets);
	buckets = NULL;
	nbuckets = 0;
}
