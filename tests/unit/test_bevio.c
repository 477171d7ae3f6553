#include "config.h"
/*
 * test_bevio.c - unit tests of bev_write_now (common/bevio.c), the
 * direct write that the SMTP server's replies and the SMTP client's
 * commands and contents use, over a socketpair with small buffers so
 * that one write cannot take everything:
 * - what fits is written at once, the write event stays off, and the
 *   output's start is frozen again afterwards (libevent relies on it);
 * - a short write leaves the rest in the output with the write event on,
 *   and libevent then writes it: the peer reads every octet, in order;
 * - a write to a closed peer leaves the output as it was and the error
 *   reaches the event callback through libevent's write, as before.
 */

#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "common/bevio.h"

#define BIG	(4 * 1024 * 1024)	/* far more than the socket buffers */

struct pair {
	struct event_base	*base;
	struct bufferevent	*bev;	/* the writer, on fd[0] */
	int			 fd[2];
	unsigned char		*got;	/* what the peer read */
	size_t			 ngot;
	short			 events;	/* what the event callback saw */
	int			 timed_out;
};

static unsigned char
pattern(size_t i)
{
	return (unsigned char)((i * 7 + i / 4093) & 0xff);
}

static void
pair_open(struct pair *p)
{
	int	small = 4096;

	memset(p, 0, sizeof(*p));
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, p->fd), 0);
	assert_int_equal(setsockopt(p->fd[0], SOL_SOCKET, SO_SNDBUF, &small,
	    sizeof(small)), 0);
	assert_int_equal(setsockopt(p->fd[1], SOL_SOCKET, SO_RCVBUF, &small,
	    sizeof(small)), 0);
	assert_int_equal(evutil_make_socket_nonblocking(p->fd[0]), 0);
	assert_int_equal(evutil_make_socket_nonblocking(p->fd[1]), 0);
	assert_non_null(p->base = event_base_new());
	/* as the servers and the client make theirs */
	assert_non_null(p->bev = bufferevent_socket_new(p->base, p->fd[0],
	    BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS));
	/* a new bufferevent has EV_WRITE enabled: the sessions turn it off
	 * and write with bev_write_now */
	assert_int_equal(bufferevent_disable(p->bev, EV_WRITE), 0);
	assert_non_null(p->got = malloc(BIG));
}

static void
pair_close(struct pair *p)
{
	bufferevent_free(p->bev);
	if (p->fd[1] != -1)
		close(p->fd[1]);
	event_base_free(p->base);
	free(p->got);
}

static void
fill(struct bufferevent *bev, size_t n)
{
	unsigned char	*b;
	size_t		 i;

	assert_non_null(b = malloc(n));
	for (i = 0; i < n; i++)
		b[i] = pattern(i);
	assert_int_equal(bufferevent_write(bev, b, n), 0);
	free(b);
}

/* drain - read what the peer has now; the count read */
static size_t
drain(struct pair *p)
{
	ssize_t	n;
	size_t	total = 0;

	while (p->ngot < BIG &&
	    (n = read(p->fd[1], p->got + p->ngot, BIG - p->ngot)) > 0) {
		p->ngot += (size_t)n;
		total += (size_t)n;
	}
	return total;
}

static void
check_got(const struct pair *p, size_t n)
{
	size_t	i;

	assert_int_equal(p->ngot, n);
	for (i = 0; i < n; i++)
		if (p->got[i] != pattern(i))
			fail_msg("octet %zu differs", i);
}

static void
peer_read_cb(evutil_socket_t fd, short what, void *arg)
{
	struct pair	*p = arg;

	(void)fd;
	(void)what;
	drain(p);
	if (p->ngot == BIG)
		event_base_loopbreak(p->base);
}

static void
timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct pair	*p = arg;

	(void)fd;
	(void)what;
	p->timed_out = 1;
	event_base_loopbreak(p->base);
}

static void
event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct pair	*p = arg;

	(void)bev;
	p->events |= what;
	event_base_loopbreak(p->base);
}

static void
test_all_at_once(void **state)
{
	struct pair	 p;
	struct evbuffer	*out;

	(void)state;
	pair_open(&p);
	out = bufferevent_get_output(p.bev);
	fill(p.bev, 1000);
	bev_write_now(p.bev);
	assert_int_equal(evbuffer_get_length(out), 0);
	assert_int_equal(bufferevent_get_enabled(p.bev) & EV_WRITE, 0);
	assert_int_equal(drain(&p), 1000);
	check_got(&p, 1000);
	/* frozen again: only libevent's own write (or ours) takes data
	 * off the front */
	fill(p.bev, 10);
	assert_int_equal(evbuffer_drain(out, 1), -1);
	assert_int_equal(evbuffer_get_length(out), 10);
	bev_write_now(p.bev);
	assert_int_equal(evbuffer_get_length(out), 0);
	assert_int_equal(drain(&p), 10);
	/* nothing left to write: a write event enabled earlier goes off */
	assert_int_equal(bufferevent_enable(p.bev, EV_WRITE), 0);
	bev_write_now(p.bev);
	assert_int_equal(bufferevent_get_enabled(p.bev) & EV_WRITE, 0);
	assert_int_equal(drain(&p), 0);
	pair_close(&p);
}

static void
test_leftover(void **state)
{
	struct pair	 p;
	struct evbuffer	*out;
	struct event	*rd, *tmo;
	struct timeval	 ten = { 10, 0 };
	size_t		 left;

	(void)state;
	pair_open(&p);
	out = bufferevent_get_output(p.bev);
	bufferevent_setcb(p.bev, NULL, NULL, event_cb, &p);
	fill(p.bev, BIG);
	bev_write_now(p.bev);
	left = evbuffer_get_length(out);
	/* one write took what the socket had room for, not everything */
	assert_true(left > 0 && left < BIG);
	assert_int_equal(bufferevent_get_enabled(p.bev) & EV_WRITE, EV_WRITE);
	/* libevent's write event sends the rest as the peer reads */
	assert_non_null(rd = event_new(p.base, p.fd[1], EV_READ | EV_PERSIST,
	    peer_read_cb, &p));
	assert_non_null(tmo = evtimer_new(p.base, timeout_cb, &p));
	assert_int_equal(event_add(rd, NULL), 0);
	assert_int_equal(evtimer_add(tmo, &ten), 0);
	assert_int_equal(event_base_dispatch(p.base), 0);
	assert_false(p.timed_out);
	assert_int_equal(p.events, 0);
	assert_int_equal(evbuffer_get_length(out), 0);
	check_got(&p, BIG);
	event_free(rd);
	event_free(tmo);
	pair_close(&p);
}

static void
test_closed_peer(void **state)
{
	struct pair	 p;
	struct evbuffer	*out;
	struct event	*tmo;
	struct timeval	 ten = { 10, 0 };

	(void)state;
	pair_open(&p);
	out = bufferevent_get_output(p.bev);
	bufferevent_setcb(p.bev, NULL, NULL, event_cb, &p);
	close(p.fd[1]);
	p.fd[1] = -1;
	fill(p.bev, 100);
	bev_write_now(p.bev);
	/* EPIPE: nothing taken; libevent's write reports it */
	assert_int_equal(evbuffer_get_length(out), 100);
	assert_int_equal(bufferevent_get_enabled(p.bev) & EV_WRITE, EV_WRITE);
	assert_non_null(tmo = evtimer_new(p.base, timeout_cb, &p));
	assert_int_equal(evtimer_add(tmo, &ten), 0);
	assert_int_equal(event_base_dispatch(p.base), 0);
	assert_false(p.timed_out);
	assert_int_equal(p.events & (BEV_EVENT_ERROR | BEV_EVENT_WRITING),
	    BEV_EVENT_ERROR | BEV_EVENT_WRITING);
	event_free(tmo);
	pair_close(&p);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_all_at_once),
		cmocka_unit_test(test_leftover),
		cmocka_unit_test(test_closed_peer),
	};

	signal(SIGPIPE, SIG_IGN);	/* as waymarkd */
	bev_mem_init();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
