#include "config.h"
/*
 * httpq.c - benchmark tool (not installed): HTTP request latency and
 * rate against a running waymarkd (bench/http.sh), one request at a time
 * on one keep-alive connection, with TCP_NODELAY.
 * Usage: httpq -p PORT [-a ADDR] [-u USER:PASS] [-k K] [-w WARM]
 *              [-X METHOD] [-d BODY] [-T TYPE] [-e STATUS] [-c STRING]
 *              [-N NAME] [-l LABEL] PATH
 *   WARM (default 200) requests first, not measured, then K (default
 *   2000) measured ones; each is METHOD (GET, POST or HEAD; default
 *   GET, POST when -d is given) PATH with "Authorization: Basic" of
 *   USER:PASS when -u is given and BODY (Content-Type TYPE, default
 *   application/json).  Every answer must have STATUS (default 200) and
 *   a Content-Length body (no chunked encoding), read in full before
 *   the next request.  ADDR defaults to 127.0.0.1.
 * Latency of a request: from just before its send() to the last byte
 *   of its body, CLOCK_MONOTONIC.
 * Output: one line on stdout:
 *   "LABEL median M ms  p99 P ms  R req/s  ([N NAME, ]B bytes)"
 *   N: occurrences of STRING (-c) in the last body, NAME (-N) default
 *   "matches"; B: the last body's length.
 * Exit: 0 done; 1 an unexpected status, a malformed answer or a
 *   connection error; 2 usage.
 */

#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "common/syntax.h"
#include "bench/benchlib.h"

#define HDR_MAX		(16 * 1024)	/* an answer's header, at most */
#define BODY_MAX	(16u * 1024 * 1024)
#define READ_SECS	30

const char	bench_name[] = "httpq";

struct conn {
	int	 fd;
	char	 hdr[HDR_MAX];
	size_t	 hlen;		/* bytes in hdr, some may be the body's */
	char	*body;		/* the last answer's body */
	size_t	 blen, bsize;
};

/* usage - the synopsis on stderr, exit 2 */
void
usage(void)
{
	fprintf(stderr, "usage: httpq -p PORT [-a ADDR] [-u USER:PASS] "
	    "[-k K] [-w WARM] [-X METHOD] [-d BODY] [-T TYPE] [-e STATUS] "
	    "[-c STRING] [-N NAME] [-l LABEL] PATH\n");
	exit(2);
}

/* dial - connect to addr:port, TCP_NODELAY, a read timeout */
static int
dial(const char *addr, uint64_t port)
{
	struct sockaddr_in	sin;
	struct timeval		tv = { READ_SECS, 0 };
	int			fd, one = 1;

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)port);
	if (port > 65535 || inet_pton(AF_INET, addr, &sin.sin_addr) != 1)
		usage();
	if ((fd = socket(AF_INET, SOCK_STREAM, 0)) == -1)
		die("socket: %s", strerror(errno));
	if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) == -1)
		die("connect %s:%" PRIu64 ": %s", addr, port, strerror(errno));
	if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) == -1 ||
	    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) == -1)
		die("setsockopt: %s", strerror(errno));
	return fd;
}

/* send_all - the whole request */
static void
send_all(int fd, const char *p, size_t n)
{
	ssize_t	w;

	while (n > 0) {
		if ((w = send(fd, p, n, MSG_NOSIGNAL)) == -1) {
			if (errno == EINTR)
				continue;
			die("send: %s", strerror(errno));
		}
		p += w;
		n -= (size_t)w;
	}
}

/* fill - read more into p (room bytes); the byte count, never 0 */
static size_t
fill(int fd, char *p, size_t room)
{
	ssize_t	r;

	for (;;) {
		if ((r = recv(fd, p, room, 0)) > 0)
			return (size_t)r;
		if (r == 0)
			die("the server closed the connection");
		if (errno != EINTR)
			die("recv: %s", strerror(errno));
	}
}

/* content_length - the header's Content-Length, -1 when absent or bad */
static long long
content_length(const char *hdr)
{
	const char	*p = hdr;
	char		*end;
	long long	 v;

	while ((p = strstr(p, "\r\n")) != NULL) {
		p += 2;
		if (strncasecmp(p, "Content-Length:", 15) != 0)
			continue;
		v = strtoll(p + 15, &end, 10);
		return end != p + 15 && v >= 0 ? v : -1;
	}
	return -1;
}

/* answer - read one answer (no body for HEAD); its status */
static int
answer(struct conn *c, int head)
{
	char		*eoh;
	size_t		 hl, have;
	long long	 cl;
	int		 status;

	while ((eoh = memmem(c->hdr, c->hlen, "\r\n\r\n", 4)) == NULL) {
		if (c->hlen >= sizeof(c->hdr) - 1)
			die("answer header over %d bytes", HDR_MAX);
		c->hlen += fill(c->fd, c->hdr + c->hlen,
		    sizeof(c->hdr) - 1 - c->hlen);
	}
	*eoh = '\0';
	hl = (size_t)(eoh - c->hdr) + 4;
	if (sscanf(c->hdr, "HTTP/1.%*d %d", &status) != 1)
		die("bad status line: %.80s", c->hdr);
	cl = head ? 0 : content_length(c->hdr);
	if (cl < 0 || (unsigned long long)cl > BODY_MAX)
		die("no usable Content-Length (status %d)", status);
	if ((size_t)cl + 1 > c->bsize) {
		c->bsize = (size_t)cl + 1;
		if ((c->body = realloc(c->body, c->bsize)) == NULL)
			die("out of memory");
	}
	have = c->hlen - hl < (size_t)cl ? c->hlen - hl : (size_t)cl;
	memcpy(c->body, c->hdr + hl, have);
	memmove(c->hdr, c->hdr + hl + have, c->hlen - hl - have);
	c->hlen -= hl + have;
	while (have < (size_t)cl)
		have += fill(c->fd, c->body + have, (size_t)cl - have);
	c->body[cl] = '\0';
	c->blen = (size_t)cl;
	return status;
}

/* cmp_double - qsort's order of doubles */
static int
cmp_double(const void *a, const void *b)
{
	double	x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* count - occurrences of s in the last body */
static size_t
count(const struct conn *c, const char *s)
{
	const char	*p = c->body;
	size_t		 n = 0;

	while (p != NULL && *s != '\0' && (p = strstr(p, s)) != NULL) {
		n++;
		p += strlen(s);
	}
	return n;
}

/* main - WARM + K requests, then the figures */
int
main(int argc, char **argv)
{
	struct conn	 c;
	const char	*addr = "127.0.0.1", *user = NULL, *method = NULL;
	const char	*body = NULL, *type = "application/json", *label = NULL;
	const char	*cnt = NULL, *cname = "matches";
	char		*req, auth[512] = "";
	uint64_t	 port = 0, k = 2000, warm = 200, expect = 200, i;
	double		*lat, t0, a, wall;
	size_t		 rlen;
	int		 ch, st, head;

	while ((ch = getopt(argc, argv, "p:a:u:k:w:X:d:T:e:c:N:l:")) != -1) {
		switch (ch) {
		case 'p': port = num(optarg); break;
		case 'a': addr = optarg; break;
		case 'u': user = optarg; break;
		case 'k': k = num(optarg); break;
		case 'w': warm = strcmp(optarg, "0") == 0 ? 0 : num(optarg);
			break;
		case 'X': method = optarg; break;
		case 'd': body = optarg; break;
		case 'T': type = optarg; break;
		case 'e': expect = num(optarg); break;
		case 'c': cnt = optarg; break;
		case 'N': cname = optarg; break;
		case 'l': label = optarg; break;
		default: usage();
		}
	}
	if (optind != argc - 1 || port == 0 || k > 100000000)
		usage();
	if (method == NULL)
		method = body != NULL ? "POST" : "GET";
	if (strcmp(method, "GET") != 0 && strcmp(method, "POST") != 0 &&
	    strcmp(method, "HEAD") != 0)
		usage();
	head = strcmp(method, "HEAD") == 0;
	if (label == NULL)
		label = argv[optind];
	if (user != NULL) {
		memcpy(auth, "Authorization: Basic ", 21);
		if (base64_encode((const unsigned char *)user, strlen(user),
		    auth + 21, sizeof(auth) - 23) == -1)
			usage();
		strcat(auth, "\r\n");
	}
	rlen = strlen(argv[optind]) + strlen(auth) + strlen(type) +
	    (body != NULL ? strlen(body) : 0) + 200;
	if ((req = malloc(rlen)) == NULL ||
	    (lat = calloc((size_t)k, sizeof(*lat))) == NULL)
		die("out of memory");
	if (body != NULL)
		st = snprintf(req, rlen, "%s %s HTTP/1.1\r\nHost: %s\r\n%s"
		    "Content-Type: %s\r\nContent-Length: %zu\r\n\r\n%s",
		    method, argv[optind], addr, auth, type, strlen(body), body);
	else
		st = snprintf(req, rlen, "%s %s HTTP/1.1\r\nHost: %s\r\n%s\r\n",
		    method, argv[optind], addr, auth);
	if (st < 0 || (size_t)st >= rlen)
		die("request too long");
	rlen = (size_t)st;

	memset(&c, 0, sizeof(c));
	c.fd = dial(addr, port);
	for (i = 0; i < warm; i++) {
		send_all(c.fd, req, rlen);
		if ((st = answer(&c, head)) != (int)expect)
			die("%s %s: status %d, not %" PRIu64 ": %.200s", method,
			    argv[optind], st, expect, c.body);
	}
	t0 = mono();
	for (i = 0; i < k; i++) {
		a = mono();
		send_all(c.fd, req, rlen);
		st = answer(&c, head);
		lat[i] = (mono() - a) * 1e3;
		if (st != (int)expect)
			die("%s %s: status %d, not %" PRIu64 ": %.200s", method,
			    argv[optind], st, expect, c.body);
	}
	wall = mono() - t0;
	qsort(lat, (size_t)k, sizeof(*lat), cmp_double);
	printf("%-28s median %6.2f ms  p99 %6.2f ms  %6.0f req/s  (", label,
	    k % 2 ? lat[k / 2] : (lat[k / 2 - 1] + lat[k / 2]) / 2,
	    lat[(size_t)((double)k * 0.99)], wall > 0 ? (double)k / wall : 0.0);
	if (cnt != NULL)
		printf("%zu %s, ", count(&c, cnt), cname);
	printf("%zu bytes)\n", c.blen);
	(void)close(c.fd);
	free(c.body);
	free(lat);
	free(req);
	return 0;
}
