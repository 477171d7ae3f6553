#include "config.h"
/*
 * trksink.c - benchmark tool (not installed): an smtp-sink that
 * advertises DSN and MTRK, so that a relay passes RFC 3885 parameters
 * on (bench/relay.sh -k).  Postfix's smtp-sink has no way to announce
 * other EHLO keywords.
 * Usage: trksink ADDR:PORT
 *   One thread per connection.  EHLO: PIPELINING, 8BITMIME, SIZE, DSN,
 *   MTRK (ENHANCEDSTATUSCODES not announced); every command gets 250
 *   (DATA 354, QUIT 221 then close), whatever its parameters; pipelined
 *   commands are answered in one write when the input runs dry.
 * Output: after each message "mesg=N mtrk=M" on stdout (N messages so
 *   far, M of them with MTRK= on MAIL): bench/relay.sh reads the last
 *   mesg= value like smtp-sink -c's counter.
 * Runs until killed.  Exit 2 on usage, 1 when it cannot listen.
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
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#define RBUF	(64 * 1024)
#define WBUF	4096

static atomic_uint_fast64_t	nmsg, nmtrk;

struct conn {
	int	 fd;
	char	 in[RBUF];
	size_t	 len;
	char	 out[WBUF];
	size_t	 olen;
	int	 data;		/* inside DATA */
	int	 mtrk;		/* this transaction's MAIL had MTRK= */
};

/* usage - the synopsis on stderr, exit 2 */
static void
usage(void)
{
	fprintf(stderr, "usage: trksink ADDR:PORT\n");
	exit(2);
}

/* flush_out - write the pending replies; 0 or -1 */
static int
flush_out(struct conn *c)
{
	size_t	off = 0;
	ssize_t	w;

	while (off < c->olen) {
		if ((w = send(c->fd, c->out + off, c->olen - off,
		    MSG_NOSIGNAL)) <= 0)
			return -1;
		off += (size_t)w;
	}
	c->olen = 0;
	return 0;
}

/* put - queue a reply (flushing when the buffer is full); 0 or -1 */
static int
put(struct conn *c, const char *s)
{
	size_t	n = strlen(s);

	if (c->olen + n > sizeof(c->out) && flush_out(c) == -1)
		return -1;
	memcpy(c->out + c->olen, s, n);
	c->olen += n;
	return 0;
}

/* line - one complete line (without CRLF); 1 = close after the output */
static int
line(struct conn *c, char *l)
{
	char	msg[64];
	uint64_t n;

	if (c->data) {
		if (strcmp(l, ".") != 0)
			return 0;
		c->data = 0;
		n = atomic_fetch_add(&nmsg, 1) + 1;
		if (c->mtrk)
			atomic_fetch_add(&nmtrk, 1);
		(void)snprintf(msg, sizeof(msg), "mesg=%" PRIu64 " mtrk=%"
		    PRIu64 "\n", n, (uint64_t)atomic_load(&nmtrk));
		(void)!write(1, msg, strlen(msg));
		return put(c, "250 2.0.0 Ok: queued\r\n") == -1 ? 1 : 0;
	}
	if (strncasecmp(l, "EHLO", 4) == 0)
		return put(c, "250-trksink\r\n250-PIPELINING\r\n250-8BITMIME\r\n"
		    "250-SIZE 104857600\r\n250-DSN\r\n250 MTRK\r\n") == -1;
	if (strncasecmp(l, "MAIL", 4) == 0) {
		c->mtrk = strstr(l, " MTRK=") != NULL ||
		    strstr(l, " mtrk=") != NULL;
		return put(c, "250 2.1.0 Ok\r\n") == -1;
	}
	if (strncasecmp(l, "DATA", 4) == 0) {
		c->data = 1;
		return put(c, "354 End data with <CR><LF>.<CR><LF>\r\n") == -1;
	}
	if (strncasecmp(l, "QUIT", 4) == 0) {
		(void)put(c, "221 2.0.0 Bye\r\n");
		return 1;
	}
	return put(c, "250 2.0.0 Ok\r\n") == -1;
}

/* conn_main - one connection's thread: read lines, answer them */
static void *
conn_main(void *arg)
{
	struct conn	*c = arg;
	char		*nl, *p;
	ssize_t		 r;
	int		 done = 0;

	if (put(c, "220 trksink ESMTP\r\n") == -1 || flush_out(c) == -1)
		goto out;
	while (!done) {
		r = recv(c->fd, c->in + c->len, sizeof(c->in) - c->len, 0);
		if (r <= 0)
			break;
		c->len += (size_t)r;
		p = c->in;
		while (!done && (nl = memchr(p, '\n', c->len -
		    (size_t)(p - c->in))) != NULL) {
			*nl = '\0';
			if (nl > p && nl[-1] == '\r')
				nl[-1] = '\0';
			done = line(c, p);
			p = nl + 1;
		}
		c->len -= (size_t)(p - c->in);
		memmove(c->in, p, c->len);
		if (c->len == sizeof(c->in))	/* a line too long: drop it */
			c->len = 0;
		if (flush_out(c) == -1)
			break;
	}
out:
	close(c->fd);
	free(c);
	return NULL;
}

/* main - listen, one thread per accepted connection */
int
main(int argc, char **argv)
{
	struct sockaddr_in	 sa;
	pthread_attr_t		 attr;
	pthread_t		 t;
	struct conn		*c;
	char			*colon, *end;
	long			 port;
	int			 lfd, fd, one = 1;

	if (argc != 2 || (colon = strrchr(argv[1], ':')) == NULL)
		usage();
	*colon = '\0';
	port = strtol(colon + 1, &end, 10);
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	if (*end != '\0' || port <= 0 || port > 65535 ||
	    inet_pton(AF_INET, argv[1], &sa.sin_addr) != 1)
		usage();
	sa.sin_port = htons((uint16_t)port);
	if ((lfd = socket(AF_INET, SOCK_STREAM, 0)) == -1 ||
	    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == -1 ||
	    bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) == -1 ||
	    listen(lfd, SOMAXCONN) == -1) {
		fprintf(stderr, "trksink: cannot listen on %s:%ld: %s\n",
		    argv[1], port, strerror(errno));
		return 1;
	}
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	for (;;) {
		if ((fd = accept(lfd, NULL, NULL)) == -1) {
			if (errno == EINTR || errno == ECONNABORTED ||
			    errno == EMFILE || errno == ENFILE)
				continue;
			fprintf(stderr, "trksink: accept: %s\n", strerror(errno));
			return 1;
		}
		(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one,
		    sizeof(one));
		if ((c = calloc(1, sizeof(*c))) == NULL) {
			close(fd);
			continue;
		}
		c->fd = fd;
		if (pthread_create(&t, &attr, conn_main, c) != 0) {
			close(fd);
			free(c);
		}
	}
}
