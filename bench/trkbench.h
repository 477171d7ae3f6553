/*
 * trkbench.h - what bench/trkload.c stores and bench/trkquery.c asks for:
 * message n (0 <= n < N) of a loaded spool has ENVID trk_envid(n) and the
 * MTRK secret A = trk_secret(n) (certifier base64(SHA-1(A)), RFC 3885).
 *   trk_envid(n)  = hex16(mix(2n)) hex16(mix(2n+1)) "@client.bench.test"
 *                   (32 hex digits like `waymark sendmail --track`'s, in
 *                   no particular order: mix is splitmix64's finalizer,
 *                   a bijection, so no two n share an ENVID)
 *   trk_secret(n) = "secret-" decimal n
 */
#ifndef WAYMARK_TRKBENCH_H
#define WAYMARK_TRKBENCH_H

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>

#define TRK_ENVID_SIZE	64
#define TRK_SECRET_SIZE	32

/* trk_mix - splitmix64's output function (bijective on 64 bits) */
static inline uint64_t
trk_mix(uint64_t z)
{
	z += 0x9e3779b97f4a7c15ull;
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static inline void
trk_envid(uint64_t n, char out[TRK_ENVID_SIZE])
{
	(void)snprintf(out, TRK_ENVID_SIZE, "%016" PRIx64 "%016" PRIx64
	    "@client.bench.test", trk_mix(2 * n), trk_mix(2 * n + 1));
}

static inline void
trk_secret(uint64_t n, char out[TRK_SECRET_SIZE])
{
	(void)snprintf(out, TRK_SECRET_SIZE, "secret-%" PRIu64, n);
}

#endif
