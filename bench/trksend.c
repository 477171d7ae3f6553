#include "config.h"
/*
 * trksend.c - benchmark tool (not installed): an smtp-source that can
 * send MTRK, for bench/relay.sh -m (relay throughput with and without
 * RFC 3885 tracking).  smtp-source has no way to add MAIL parameters.
 * Usage: trksend [-M] [-s SESSIONS] [-m COUNT] [-l SIZE] [-f FROM]
 *                [-t TO] ADDR:PORT
 *   SESSIONS concurrent connections (default 20, one thread each) send
 *   COUNT messages (default 5000) of SIZE bytes (default 4096), one
 *   connection per message as smtp-source does: greeting, EHLO, MAIL,
 *   RCPT, DATA, the message, ".", QUIT, lock-step (no pipelining).
 *   -M: MAIL FROM:<FROM> ENVID=E MTRK=B for message i, E = trk_envid
 *   of (run tag << 32) + i and B the certifier of trk_secret(i)
 *   (trkbench.h); without -M: MAIL FROM:<FROM> alone.  ADDR is IPv4.
 *   -B: the content goes as one "BDAT n LAST" (RFC 3030) with its octets
 *   in the same write, instead of DATA, the message and "." (the server
 *   must offer CHUNKING; bench/relay.sh -B).
 * Output: "sent N messages in S s: R msg/s (M with MTRK, F failed)".
 * Exit: 0 when every message got 250 after "."; 1 otherwise; 2 usage.
 */

#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <pthread.h>
#include <stdatomic.h>
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

#define MAX_SESSIONS	1000
#define RBUF		8192

static struct sockaddr_in	 srv;
static const char		*from = "from@example.com";
static const char		*to = "to@remote.example";
static int			 with_mtrk;
static int			 with_bdat;	/* -B */
static uint64_t			 count = 5000, size = 4096, tag;
static atomic_uint_fast64_t	 next_msg, nfailed;
static char			*content;	/* the message, dot-stuffed, with "." */
static size_t			 content_len;
static char			*bdat_content;	/* -B: "BDAT n LAST", the message */
static size_t			 bdat_len;

struct sess {
	pthread_t	 t;
	int		 fd;
	char		 buf[RBUF];
	size_t		 len;
};

const char	bench_name[] = "trksend";

/* usage - the synopsis on stderr, exit 2 */
void
usage(void)
{
	fprintf(stderr, "usage: trksend [-M] [-B] [-s SESSIONS] [-m COUNT] "
	    "[-l SIZE] [-f FROM] [-t TO] ADDR:PORT\n");
	exit(2);
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

/* reply - read one (possibly multi-line) reply; its code, or -1 */
static int
reply(struct sess *s)
{
	char	*nl, *line;
	ssize_t	 r;

	for (;;) {
		while ((nl = memchr(s->buf, '\n', s->len)) != NULL) {
			line = s->buf;
			if (nl - line >= 4 && line[3] == '-') {
				s->len -= (size_t)(nl + 1 - s->buf);
				memmove(s->buf, nl + 1, s->len);
				continue;
			}
			r = nl - line >= 3 ? (line[0] - '0') * 100 +
			    (line[1] - '0') * 10 + (line[2] - '0') : -1;
			s->len -= (size_t)(nl + 1 - s->buf);
			memmove(s->buf, nl + 1, s->len);
			return (int)r;
		}
		if (s->len == sizeof(s->buf))
			return -1;
		r = recv(s->fd, s->buf + s->len, sizeof(s->buf) - s->len, 0);
		if (r <= 0)
			return -1;
		s->len += (size_t)r;
	}
}

/* cmd - send a line, expect a reply of class want (2 or 3) */
static int
cmd(struct sess *s, const char *line, size_t len, int want)
{
	int	code;

	if (send_all(s->fd, line, len) == -1 || (code = reply(s)) < 0)
		return -1;
	return code / 100 == want ? 0 : -1;
}

/* one_message - message i over a fresh connection; 0 or -1 */
static int
one_message(struct sess *s, uint64_t i)
{
	char	line[512], envid[TRK_ENVID_SIZE], secret[TRK_SECRET_SIZE];
	char	cert[28];
	int	n, one = 1, rc = -1;

	s->len = 0;
	if ((s->fd = socket(AF_INET, SOCK_STREAM, 0)) == -1)
		return -1;
	(void)setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(s->fd, (struct sockaddr *)&srv, sizeof(srv)) == -1 ||
	    reply(s) / 100 != 2 ||
	    cmd(s, "EHLO client.bench.test\r\n", 24, 2) == -1)
		goto done;
	if (with_mtrk) {
		trk_envid((tag << 32) + i, envid);
		trk_secret(i, secret);
		if (mtrk_certifier((const unsigned char *)secret,
		    strlen(secret), cert) == -1)
			goto done;
		n = snprintf(line, sizeof(line), "MAIL FROM:<%s> ENVID=%s "
		    "MTRK=%s\r\n", from, envid, cert);
	} else
		n = snprintf(line, sizeof(line), "MAIL FROM:<%s>\r\n", from);
	if (n < 0 || (size_t)n >= sizeof(line) ||
	    cmd(s, line, (size_t)n, 2) == -1)
		goto done;
	n = snprintf(line, sizeof(line), "RCPT TO:<%s>\r\n", to);
	if (n < 0 || (size_t)n >= sizeof(line) ||
	    cmd(s, line, (size_t)n, 2) == -1)
		goto done;
	if (with_bdat) {
		if (cmd(s, bdat_content, bdat_len, 2) == -1)
			goto done;
	} else if (cmd(s, "DATA\r\n", 6, 3) == -1 ||
	    cmd(s, content, content_len, 2) == -1)
		goto done;
	rc = 0;
	(void)cmd(s, "QUIT\r\n", 6, 2);
done:
	close(s->fd);
	return rc;
}

/* sess_main - one session's thread: messages until COUNT are taken */
static void *
sess_main(void *arg)
{
	struct sess	*s = arg;
	uint64_t	 i;

	while ((i = atomic_fetch_add(&next_msg, 1)) < count)
		if (one_message(s, i) == -1)
			atomic_fetch_add(&nfailed, 1);
	return NULL;
}

/* make_content - header, lines of X up to size, then "." */
static void
make_content(void)
{
	char	hdr[512];
	size_t	off;
	int	n;

	n = snprintf(hdr, sizeof(hdr), "From: <%s>\r\nTo: <%s>\r\n"
	    "Subject: trksend\r\nMessage-Id: <%" PRIu64 "@client.bench.test>"
	    "\r\n\r\n", from, to, tag);
	if (n < 0 || (size_t)n >= sizeof(hdr))
		usage();
	if ((content = malloc((size_t)n + size + 80)) == NULL) {
		fprintf(stderr, "trksend: out of memory\n");
		exit(1);
	}
	memcpy(content, hdr, (size_t)n);
	off = (size_t)n;
	while (off + 2 < size) {
		size_t k = size - off - 2 > 78 ? 78 : size - off - 2;

		memset(content + off, 'X', k);
		off += k;
		memcpy(content + off, "\r\n", 2);
		off += 2;
	}
	memcpy(content + off, ".\r\n", 3);
	content_len = off + 3;
	/* no line starts with '.': unstuffed, the message is content - "." */
	n = snprintf(hdr, sizeof(hdr), "BDAT %zu LAST\r\n", off);
	if (n < 0 || (size_t)n >= sizeof(hdr) ||
	    (bdat_content = malloc((size_t)n + off)) == NULL) {
		fprintf(stderr, "trksend: out of memory\n");
		exit(1);
	}
	memcpy(bdat_content, hdr, (size_t)n);
	memcpy(bdat_content + n, content, off);
	bdat_len = (size_t)n + off;
}

/* main - start the sessions, wait, print the rate */
int
main(int argc, char **argv)
{
	struct sess	*ss;
	char		*colon;
	uint64_t	 sessions = 20, i, port;
	double		 t0, t;
	int		 c;

	while ((c = getopt(argc, argv, "MBs:m:l:f:t:")) != -1) {
		switch (c) {
		case 'M': with_mtrk = 1; break;
		case 'B': with_bdat = 1; break;
		case 's': sessions = num(optarg); break;
		case 'm': count = num(optarg); break;
		case 'l': size = num(optarg); break;
		case 'f': from = optarg; break;
		case 't': to = optarg; break;
		default: usage();
		}
	}
	if (argc - optind != 1 || sessions > MAX_SESSIONS || size > 1 << 26 ||
	    (colon = strrchr(argv[optind], ':')) == NULL)
		usage();
	*colon = '\0';
	port = num(colon + 1);
	memset(&srv, 0, sizeof(srv));
	srv.sin_family = AF_INET;
	if (port > 65535 || inet_pton(AF_INET, argv[optind], &srv.sin_addr) != 1)
		usage();
	srv.sin_port = htons((uint16_t)port);
	tag = (uint64_t)time(NULL) & 0xffffffffu;
	make_content();
	if (sessions > count)
		sessions = count;
	if ((ss = calloc((size_t)sessions, sizeof(*ss))) == NULL)
		return 1;
	t0 = mono();
	for (i = 0; i < sessions; i++)
		if (pthread_create(&ss[i].t, NULL, sess_main, &ss[i]) != 0) {
			fprintf(stderr, "trksend: cannot start a thread\n");
			return 1;
		}
	for (i = 0; i < sessions; i++)
		pthread_join(ss[i].t, NULL);
	t = mono() - t0;
	printf("sent %" PRIu64 " messages in %.2f s: %.0f msg/s (%s MTRK, "
	    "%s, %" PRIu64 " failed)\n", count, t, t > 0 ? (double)count / t :
	    0.0, with_mtrk ? "with" : "without", with_bdat ? "BDAT" : "DATA",
	    (uint64_t)atomic_load(&nfailed));
	free(ss);
	free(content);
	free(bdat_content);
	return atomic_load(&nfailed) == 0 ? 0 : 1;
}
