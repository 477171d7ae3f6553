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
 * Exit: 0; 1 on a connection error or an unexpected reply (printed,
 *   benchlib's die); 2 usage.
 */

#include <errno.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench/benchlib.h"

#define NSTEPS	8

const char	bench_name[] = "steplat";

static const char *const step_names[NSTEPS] = {
	"connect+220", "EHLO", "MAIL", "RCPT", "DATA", "content+250",
	"QUIT+221", "close"
};

static char	rbuf[65536];

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

/* step - send s[0..n) (nothing when n is 0), expect code, or die */
static void
step(int fd, const char *s, size_t n, int code, int k)
{
	ssize_t	w;

	while (n > 0) {
		if ((w = write(fd, s, n)) <= 0)
			die("%s: write failed", step_names[k]);
		s += w;
		n -= (size_t)w;
	}
	if (reply(fd) != code)
		die("%s: expected %d, got: %.200s", step_names[k], code, rbuf);
}

void
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
	const char		*cmd[NSTEPS] = { "", "EHLO steplat.test\r\n",
	    "MAIL FROM:<from@example.com>\r\n",
	    "RCPT TO:<to@remote.example>\r\n", "DATA\r\n", NULL,
	    "QUIT\r\n", NULL };
	static const int	 code[NSTEPS] = { 220, 250, 250, 250, 354, 250,
	    221, 0 };
	double			 acc[NSTEPS] = { 0 }, t0, t, total = 0;
	char			*body;
	uint64_t		 port = 0, n = 2000, size = 4096, i;
	size_t			 bl, cap, len;
	int			 c, k, fd, one = 1;

	while ((c = getopt(argc, argv, "a:p:n:l:h")) != -1) {
		switch (c) {
		case 'a': addr = optarg; break;
		case 'p': port = num(optarg); break;
		case 'n': n = num(optarg); break;
		case 'l': size = num(optarg); break;
		default: usage();
		}
	}
	if (optind != argc || port > 65535 || size > 64 * 1024 * 1024)
		usage();
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((unsigned short)port);
	if (port == 0 || inet_pton(AF_INET, addr, &sin.sin_addr) != 1)
		usage();
	cap = (size_t)size + sizeof(line) + 128;
	if ((body = malloc(cap)) == NULL)
		die("out of memory");
	bl = (size_t)snprintf(body, cap, "From: <from@example.com>\r\n"
	    "To: <to@remote.example>\r\nSubject: steplat\r\n\r\n");
	while (bl < (size_t)size) {
		memcpy(body + bl, line, sizeof(line) - 1);
		bl += sizeof(line) - 1;
	}
	memcpy(body + bl, ".\r\n", 3);
	bl += 3;
	cmd[5] = body;

	for (i = 0; i < n; i++) {
		t0 = mono();
		if ((fd = socket(AF_INET, SOCK_STREAM, 0)) == -1 ||
		    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one,
		    sizeof(one)) == -1 ||
		    connect(fd, (struct sockaddr *)&sin, sizeof(sin)) == -1)
			die("connect: %s", strerror(errno));
		for (k = 0; k < NSTEPS; k++) {
			if (k == NSTEPS - 1)
				close(fd);
			else {
				len = k == 5 ? bl : strlen(cmd[k]);
				step(fd, cmd[k], len, code[k], k);
			}
			t = mono();
			acc[k] += t - t0;
			t0 = t;
		}
	}
	for (k = 0; k < NSTEPS; k++) {
		printf("%-12s %8.1f us\n", step_names[k],
		    acc[k] / (double)n * 1e6);
		total += acc[k] / (double)n * 1e6;
	}
	printf("%-12s %8.1f us = %.0f msg/s\n", "total", total, 1e6 / total);
	free(body);
	return 0;
}
