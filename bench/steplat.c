#include "config.h"
/*
 * steplat.c - benchmark tool (not installed): the latency of each step
 * of an SMTP transaction, one transaction per connection, one after the
 * other (bench/steplat.sh).
 * Usage: steplat -p PORT [-a ADDR] [-n N] [-l SIZE]
 *   N transactions (default 2000) of SIZE octets of content (default
 *   4096), MAIL FROM:<from@example.com> RCPT TO:<to@remote.example>,
 *   TCP_NODELAY, no pipelining; ADDR defaults to 127.0.0.1.
 * Steps (CLOCK_MONOTONIC, from the first octet sent to the end of the
 *   reply read): connect + 220, EHLO, MAIL, RCPT, DATA (354), content
 *   and "." until the 250, QUIT + 221, close.
 * Output: one line per step "STEP MEAN us", then "total T us = R msg/s".
 * Exit: 0; 1 on a connection error or an unexpected reply (printed);
 *   2 usage.
 */

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define NSTEPS	8

static const char *const step_names[NSTEPS] = {
	"connect+220", "EHLO", "MAIL", "RCPT", "DATA", "content+250",
	"QUIT+221", "close"
};

static char	rbuf[65536];

static double
now_us(void)
{
	struct timespec	t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec * 1e6 + (double)t.tv_nsec / 1e3;
}

/* reply - read up to the last line of a reply; its code, or -1 */
static int
reply(int fd)
{
	size_t	len = 0;
	ssize_t	n;
	char	*p, *e;

	for (;;) {
		if (len + 1 >= sizeof(rbuf))
			return -1;
		if ((n = read(fd, rbuf + len, sizeof(rbuf) - 1 - len)) <= 0)
			return -1;
		len += (size_t)n;
		rbuf[len] = '\0';
		for (p = rbuf; (e = strstr(p, "\r\n")) != NULL; p = e + 2)
			if (e - p >= 4 && p[3] == ' ')
				return atoi(p);
	}
}

/* send_all - write s[0..n); 0 or -1 */
static int
send_all(int fd, const char *s, size_t n)
{
	ssize_t	k;

	while (n > 0) {
		if ((k = write(fd, s, n)) <= 0)
			return -1;
		s += k;
		n -= (size_t)k;
	}
	return 0;
}

/* step - send cmd, expect code; 0 or -1 (printed) */
static int
step(int fd, const char *cmd, size_t len, int code, const char *name)
{
	int	got;

	if (send_all(fd, cmd, len) == -1 || (got = reply(fd)) != code) {
		fprintf(stderr, "steplat: %s: expected %d, got: %.200s\n",
		    name, code, rbuf);
		return -1;
	}
	return 0;
}

static void
usage(void)
{
	fprintf(stderr, "usage: steplat -p PORT [-a ADDR] [-n N] "
	    "[-l SIZE]\n");
	exit(2);
}

int
main(int argc, char **argv)
{
	struct sockaddr_in	 sin;
	const char		*addr = "127.0.0.1";
	static const char	 line[] = "0123456789012345678901234567890123"
	    "45678901234567890123456789012345\r\n";
	double			 acc[NSTEPS] = { 0 }, t0, t, total = 0;
	char			*body;
	long			 port = 0, n = 2000, size = 4096;
	size_t			 bl = 0, cap;
	int			 c, i, k, fd, one = 1;

	while ((c = getopt(argc, argv, "a:p:n:l:h")) != -1) {
		switch (c) {
		case 'a': addr = optarg; break;
		case 'p': port = strtol(optarg, NULL, 10); break;
		case 'n': n = strtol(optarg, NULL, 10); break;
		case 'l': size = strtol(optarg, NULL, 10); break;
		default: usage();
		}
	}
	if (optind != argc || port < 1 || port > 65535 || n < 1 ||
	    size < 1 || size > 64 * 1024 * 1024)
		usage();
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((unsigned short)port);
	if (inet_pton(AF_INET, addr, &sin.sin_addr) != 1)
		usage();
	cap = (size_t)size + sizeof(line) + 128;
	if ((body = malloc(cap)) == NULL)
		return 1;
	bl = (size_t)snprintf(body, cap, "From: <from@example.com>\r\n"
	    "To: <to@remote.example>\r\nSubject: steplat\r\n\r\n");
	while (bl < (size_t)size) {
		memcpy(body + bl, line, sizeof(line) - 1);
		bl += sizeof(line) - 1;
	}
	memcpy(body + bl, ".\r\n", 3);
	bl += 3;

	for (i = 0; i < n; i++) {
		t0 = now_us();
		if ((fd = socket(AF_INET, SOCK_STREAM, 0)) == -1 ||
		    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one,
		    sizeof(one)) == -1 ||
		    connect(fd, (struct sockaddr *)&sin, sizeof(sin)) == -1) {
			perror("steplat: connect");
			return 1;
		}
		if (reply(fd) != 220) {
			fprintf(stderr, "steplat: greeting: %.200s\n", rbuf);
			return 1;
		}
		t = now_us();
		acc[0] += t - t0;
		t0 = t;
#define STEP(k, s, code)						\
		if (step(fd, s, strlen(s), code, step_names[k]) == -1)	\
			return 1;					\
		t = now_us();						\
		acc[k] += t - t0;					\
		t0 = t;
		STEP(1, "EHLO steplat.test\r\n", 250)
		STEP(2, "MAIL FROM:<from@example.com>\r\n", 250)
		STEP(3, "RCPT TO:<to@remote.example>\r\n", 250)
		STEP(4, "DATA\r\n", 354)
		if (step(fd, body, bl, 250, step_names[5]) == -1)
			return 1;
		t = now_us();
		acc[5] += t - t0;
		t0 = t;
		STEP(6, "QUIT\r\n", 221)
#undef STEP
		close(fd);
		acc[7] += now_us() - t0;
	}
	for (k = 0; k < NSTEPS; k++) {
		printf("%-12s %8.1f us\n", step_names[k], acc[k] / (double)n);
		total += acc[k] / (double)n;
	}
	printf("%-12s %8.1f us = %.0f msg/s\n", "total", total, 1e6 / total);
	free(body);
	return 0;
}
