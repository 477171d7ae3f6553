#include "config.h"
/*
 * trkquery.c - benchmark tool (not installed): MTQP TRACK latency and
 * throughput against a running waymarkd whose spool bench/trkload
 * filled (bench/track.sh).
 * Usage: trkquery -p PORT [-a ADDR] -n N [-k K] [-c CONNS] [-s SEED]
 *                 [-m ok|wrong|unknown]
 *   CONNS connections (default 1, one thread each) share K queries
 *   (default 10000); each connection reads the greeting, then sends
 *   one TRACK at a time and reads its whole answer before the next
 *   (no pipelining), then QUIT.  Query i asks for a random message n
 *   in [0, N): TRACK trk_envid(n) base64(trk_secret(n)) (trkbench.h).
 *   -m wrong sends a wrong secret, -m unknown an ENVID never loaded
 *   (both are answered -ERR/noinfo; they count against the server's
 *   mtqp_auth_failures).  ADDR defaults to 127.0.0.1.
 * Latency of a query: from just before its send() to the end of its
 *   answer (the "." line of a +OK+ answer, else the status line),
 *   CLOCK_MONOTONIC.
 * Output: one line on stdout:
 *   "conns=C queries=K ok=.. noinfo=.. other=.. mismatch=.. wall=S s
 *    qps=Q median=.. p90=.. p99=.. p999=.. max=.. mean=.. ms"
 *   ok = +OK+ answers whose body names the ENVID asked (mismatch = a
 *   +OK+ answer without it); qps = K / wall time of all connections.
 * Exit: 0 when every answer was the expected kind; 1 otherwise or on
 *   a connection error; 2 usage.
 */

#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "common/syntax.h"
#include "bench/benchlib.h"
#include "bench/trkbench.h"

#define RBUF		(64 * 1024)
#define MAX_CONNS	256
#define READ_SECS	130		/* RFC 3887 2.4: at least 2 minutes */

enum mode { M_OK, M_WRONG, M_UNKNOWN };

struct conn {
	pthread_t	 t;
	int		 fd;
	uint64_t	 rng;
	size_t		 nq;		/* queries to send */
	double		*lat;		/* ms, nq entries */
	size_t		 ok, noinfo, other, mismatch;
	int		 failed;
	char		 why[200];
	/* input buffer */
	char		 buf[RBUF];
	size_t		 off, len;
};

static struct sockaddr_in	 srv;
static uint64_t			 nloaded;
static enum mode		 mode = M_OK;
static pthread_barrier_t	 start_bar;

const char	bench_name[] = "trkquery";

/* usage - the synopsis on stderr, exit 2 */
void
usage(void)
{
	fprintf(stderr, "usage: trkquery -p PORT [-a ADDR] -n N [-k K] "
	    "[-c CONNS] [-s SEED] [-m ok|wrong|unknown]\n");
	exit(2);
}

/* mono_ms - a monotonic clock in milliseconds */
static double
mono_ms(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* rnd - xorshift64* */
static uint64_t
rnd(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 0x2545f4914f6cdd1dull;
}

/* read_line - the next line without CRLF into out; 0, or -1 (EOF, error,
 * a line longer than out) */
static int
read_line(struct conn *c, char *out, size_t outlen)
{
	char	*nl;
	size_t	 n;
	ssize_t	 r;

	for (;;) {
		if (c->len > 0 &&
		    (nl = memchr(c->buf + c->off, '\n', c->len)) != NULL) {
			n = (size_t)(nl - (c->buf + c->off));
			if (n >= outlen)
				return -1;
			memcpy(out, c->buf + c->off, n);
			out[n > 0 && out[n - 1] == '\r' ? n - 1 : n] = '\0';
			c->off += n + 1;
			c->len -= n + 1;
			return 0;
		}
		if (c->off > 0) {
			memmove(c->buf, c->buf + c->off, c->len);
			c->off = 0;
		}
		if (c->len == sizeof(c->buf))
			return -1;
		r = recv(c->fd, c->buf + c->len, sizeof(c->buf) - c->len, 0);
		if (r <= 0)
			return -1;
		c->len += (size_t)r;
	}
}

/* read_answer - one response; 1 = +OK+ (body read; *found when a line
 * was "Original-Envelope-Id: want"), 0 = a single line in first, -1 */
static int
read_answer(struct conn *c, char *first, size_t firstlen, const char *want,
    int *found)
{
	char	line[1024];

	*found = 0;
	if (read_line(c, first, firstlen) == -1)
		return -1;
	if (strncmp(first, "+OK+", 4) != 0)
		return 0;
	for (;;) {
		if (read_line(c, line, sizeof(line)) == -1)
			return -1;
		if (strcmp(line, ".") == 0)
			return 1;
		if (want != NULL && strncmp(line, "Original-Envelope-Id: ",
		    22) == 0 && strcmp(line + 22, want) == 0)
			*found = 1;
	}
}

/* send_all - write n bytes; 0 or -1 */
static int
send_all(int fd, const char *p, size_t n)
{
	ssize_t	w;

	while (n > 0) {
		if ((w = send(fd, p, n, MSG_NOSIGNAL)) <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* one_query - TRACK for message n; latency into *ms */
static int
one_query(struct conn *c, uint64_t n, double *ms)
{
	char	envid[TRK_ENVID_SIZE], secret[TRK_SECRET_SIZE], b64[64];
	char	cmd[256], first[1024];
	double	t0;
	int	len, r, found;

	trk_envid(mode == M_UNKNOWN ? n + nloaded : n, envid);
	trk_secret(mode == M_WRONG ? n + 1 : n, secret);
	if (base64_encode((const unsigned char *)secret, strlen(secret), b64,
	    sizeof(b64)) < 0)
		return -1;
	len = snprintf(cmd, sizeof(cmd), "TRACK %s %s\r\n", envid, b64);
	if (len < 0 || (size_t)len >= sizeof(cmd))
		return -1;
	t0 = mono_ms();
	if (send_all(c->fd, cmd, (size_t)len) == -1)
		return -1;
	r = read_answer(c, first, sizeof(first), envid, &found);
	*ms = mono_ms() - t0;
	if (r == -1)
		return -1;
	if (r == 1 && found)
		c->ok++;
	else if (r == 1)
		c->mismatch++;
	else if (strncmp(first, "-ERR/noinfo", 11) == 0)
		c->noinfo++;
	else {
		if (c->other == 0)
			(void)snprintf(c->why, sizeof(c->why), "answer: %.150s",
			    first);
		c->other++;
	}
	return 0;
}

/* conn_main - one connection's thread: greeting, queries, QUIT */
static void *
conn_main(void *arg)
{
	struct conn	*c = arg;
	struct timeval	 tv = { READ_SECS, 0 };
	char		 first[1024];
	size_t		 i;
	int		 one = 1, found;

	if ((c->fd = socket(AF_INET, SOCK_STREAM, 0)) == -1 ||
	    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) == -1 ||
	    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one,
	    sizeof(one)) == -1 ||
	    connect(c->fd, (struct sockaddr *)&srv, sizeof(srv)) == -1) {
		(void)snprintf(c->why, sizeof(c->why), "connect: %s",
		    strerror(errno));
		c->failed = 1;
	} else if (read_answer(c, first, sizeof(first), NULL, &found) == -1 ||
	    strncmp(first, "+OK", 3) != 0) {
		(void)snprintf(c->why, sizeof(c->why), "greeting: %.150s",
		    first);
		c->failed = 1;
	}
	pthread_barrier_wait(&start_bar);
	for (i = 0; i < c->nq && !c->failed; i++)
		if (one_query(c, rnd(&c->rng) % nloaded, &c->lat[i]) == -1) {
			(void)snprintf(c->why, sizeof(c->why), "query %zu: "
			    "connection lost or bad answer", i);
			c->failed = 1;
		}
	if (!c->failed && send_all(c->fd, "QUIT\r\n", 6) == 0)
		(void)read_line(c, first, sizeof(first));
	if (c->fd != -1)
		close(c->fd);
	c->nq = i;
	return NULL;
}

/* cmp_double - qsort order of latencies */
static int
cmp_double(const void *a, const void *b)
{
	double	x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* pct - the p-quantile of sorted v[0..n-1] (nearest rank) */
static double
pct(const double *v, size_t n, double p)
{
	size_t	i;

	if (n == 0)
		return 0;
	i = (size_t)(p * (double)n + 0.999999);
	if (i == 0)
		i = 1;
	return v[(i > n ? n : i) - 1];
}

/* main - start the connections, gather and print the figures */
int
main(int argc, char **argv)
{
	struct conn	*cs;
	double		*all, t0, wall, sum = 0;
	const char	*addr = "127.0.0.1";
	uint64_t	 k = 10000, seed = 1, conns = 1, port = 0, i;
	size_t		 n = 0, ok = 0, noinfo = 0, other = 0, mismatch = 0, j;
	int		 c, failed = 0;

	while ((c = getopt(argc, argv, "p:a:n:k:c:s:m:")) != -1) {
		switch (c) {
		case 'p': port = num(optarg); break;
		case 'a': addr = optarg; break;
		case 'n': nloaded = num(optarg); break;
		case 'k': k = num(optarg); break;
		case 'c': conns = num(optarg); break;
		case 's': seed = num(optarg); break;
		case 'm':
			if (strcmp(optarg, "ok") == 0)
				mode = M_OK;
			else if (strcmp(optarg, "wrong") == 0)
				mode = M_WRONG;
			else if (strcmp(optarg, "unknown") == 0)
				mode = M_UNKNOWN;
			else
				usage();
			break;
		default: usage();
		}
	}
	if (optind != argc || port == 0 || port > 65535 || nloaded == 0 ||
	    conns > MAX_CONNS || k < conns)
		usage();
	memset(&srv, 0, sizeof(srv));
	srv.sin_family = AF_INET;
	srv.sin_port = htons((uint16_t)port);
	if (inet_pton(AF_INET, addr, &srv.sin_addr) != 1)
		usage();
	if ((cs = calloc((size_t)conns, sizeof(*cs))) == NULL ||
	    (all = calloc((size_t)k, sizeof(*all))) == NULL) {
		fprintf(stderr, "trkquery: out of memory\n");
		return 1;
	}
	pthread_barrier_init(&start_bar, NULL, (unsigned)conns + 1);
	for (i = 0; i < conns; i++) {
		cs[i].fd = -1;
		cs[i].rng = trk_mix(seed * 1000003u + i) | 1;
		cs[i].nq = (size_t)(k / conns + (i < k % conns));
		cs[i].lat = all + n;
		n += cs[i].nq;
		if (pthread_create(&cs[i].t, NULL, conn_main, &cs[i]) != 0) {
			fprintf(stderr, "trkquery: cannot start a thread\n");
			return 1;
		}
	}
	pthread_barrier_wait(&start_bar);
	t0 = mono_ms();
	for (i = 0; i < conns; i++)
		pthread_join(cs[i].t, NULL);
	wall = (mono_ms() - t0) / 1e3;
	/* gather: each thread's latencies are contiguous in all[] */
	n = 0;
	for (i = 0; i < conns; i++) {
		memmove(all + n, cs[i].lat, cs[i].nq * sizeof(*all));
		n += cs[i].nq;
		ok += cs[i].ok;
		noinfo += cs[i].noinfo;
		other += cs[i].other;
		mismatch += cs[i].mismatch;
		if (cs[i].failed) {
			fprintf(stderr, "trkquery: connection %" PRIu64 ": %s\n",
			    i, cs[i].why);
			failed = 1;
		} else if (cs[i].other > 0)
			fprintf(stderr, "trkquery: connection %" PRIu64
			    ": unexpected %s\n", i, cs[i].why);
	}
	for (j = 0; j < n; j++)
		sum += all[j];
	qsort(all, n, sizeof(*all), cmp_double);
	printf("conns=%" PRIu64 " queries=%zu ok=%zu noinfo=%zu other=%zu "
	    "mismatch=%zu wall=%.2f s qps=%.0f median=%.3f p90=%.3f "
	    "p99=%.3f p999=%.3f max=%.3f mean=%.3f ms\n", conns, n, ok,
	    noinfo, other, mismatch, wall, wall > 0 ? (double)n / wall : 0.0,
	    pct(all, n, 0.5), pct(all, n, 0.9), pct(all, n, 0.99),
	    pct(all, n, 0.999), n ? all[n - 1] : 0.0, n ? sum / (double)n : 0);
	free(all);
	free(cs);
	if (failed || other > 0 || mismatch > 0)
		return 1;
	return (mode == M_OK ? ok : noinfo) == n ? 0 : 1;
}
