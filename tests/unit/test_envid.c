#include "config.h"
/*
 * test_envid.c - unit tests of the ENVID index lookup
 * (queue/queue_db.c, queue_envid_lookup) through queue/'s public API.
 * A temporary spool (queue_lock + queue_init with the embedded default
 * configuration, as waymarkd starts it): four messages accepted through
 * queue_accept, held in quarantine so the scheduler never delivers
 * them, two sharing one ENVID, one with another, one without.  The
 * lookup gives every qid stored with an ENVID and no other, none for an
 * unknown one or a prefix, stops when the callback says so, reads the
 * same after a restart of the queue, and refuses with the store closed.
 * queue_track_visit shows each found qid's message (unfinished: from
 * memory, queued = 1) and refuses an unknown or invalid qid.
 */

#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>

#include "common/cfg.h"
#include "common/work.h"
#include "queue/queue.h"

static char			 spool[] = "/tmp/test_envid_XXXXXX";
static struct event_base	*base;
static struct config		*cfg;
static char			 qids[4][QID_SIZE];
static int			 pending;

/* accepted - queue_accept's completion */
static void
accepted(void *arg, int rc)
{
	(void)arg;
	assert_int_equal(rc, 0);
	if (--pending == 0)
		event_base_loopbreak(base);
}

/* accept_one - a held message with envid (NULL = none) into qid */
static void
accept_one(const char *envid, char qid[QID_SIZE])
{
	static const char	 body[] = "Subject: t\r\n\r\nbody\r\n";
	struct qmsg		*m;
	int			 fd;

	assert_int_equal(queue_body_create(qid, &fd), 0);
	assert_int_equal(write(fd, body, sizeof(body) - 1),
	    (ssize_t)(sizeof(body) - 1));
	assert_non_null(m = qmsg_new());
	memcpy(m->qid, qid, QID_SIZE);
	m->arrival = time(NULL);
	m->size = sizeof(body) - 1;
	assert_non_null(m->sender = strdup("alice@example.com"));
	assert_non_null(m->client_addr = strdup("127.0.0.1"));
	assert_non_null(m->helo = strdup("client.test"));
	if (envid != NULL)
		assert_non_null(m->envid = strdup(envid));
	m->state = MS_QUARANTINE;
	m->state_since = m->arrival;
	assert_non_null(m->state_reason = strdup("test"));
	assert_non_null(m->state_actor = strdup("test"));
	assert_int_equal(qmsg_add_rcpt(m, "bob@example.org"), 0);
	pending++;
	queue_accept(m, fd, accepted, NULL);
}

static void
open_queue(void)
{
	char	err[512];

	if (queue_init(cfg, base, err, sizeof(err)) == -1)
		fail_msg("queue_init: %s", err);
}

static int
setup(void **state)
{
	char	err[512];
	int	fd;

	(void)state;
	if (mkdtemp(spool) == NULL || chdir(spool) == -1)
		return -1;
	if ((cfg = cfg_load(NULL, err, sizeof(err))) == NULL ||
	    (base = event_base_new()) == NULL || work_init(base, 1) == -1)
		return -1;
	if ((fd = open(spool, O_RDONLY | O_DIRECTORY)) == -1)
		return -1;
	if (queue_lock(fd, spool, -1, err, sizeof(err)) == -1) {
		fprintf(stderr, "queue_lock: %s\n", err);
		return -1;
	}
	close(fd);
	return 0;
}

static int
teardown(void **state)
{
	char	cmd[600];

	(void)state;
	work_shutdown();
	event_base_free(base);
	cfg_free(cfg);
	(void)snprintf(cmd, sizeof(cmd), "rm -rf '%s'", spool);
	return chdir("/") == 0 && system(cmd) == 0 ? 0 : -1;
}

struct got {
	char	qids[8][QID_SIZE];
	size_t	n;
	int	stop_after;	/* 0 = never */
};

/* collect - the lookup's callback */
static int
collect(const char *qid, void *arg)
{
	struct got	*g = arg;

	assert_true(g->n < 8);
	assert_int_equal(strlen(qid), QID_LEN);
	memcpy(g->qids[g->n++], qid, QID_SIZE);
	return g->stop_after != 0 && (int)g->n >= g->stop_after ? -1 : 0;
}

/* has - qid is among g's */
static int
has(const struct got *g, const char *qid)
{
	size_t	i;

	for (i = 0; i < g->n; i++)
		if (strcmp(g->qids[i], qid) == 0)
			return 1;
	return 0;
}

/* visit_cb - queue_track_visit's callback: the envid, queued */
static int
visit_cb(const struct qmsg *m, int queued, void *arg)
{
	const char	*want = arg;

	assert_non_null(m);
	assert_non_null(m->envid);
	assert_string_equal(m->envid, want);
	assert_int_equal(queued, 1);	/* held: still in the queue */
	return 7;
}

/* check_lookups - what the index must answer for the four messages */
static void
check_lookups(void)
{
	struct got	g;

	memset(&g, 0, sizeof(g));
	assert_int_equal(queue_envid_lookup("dup@client.test", collect, &g), 2);
	assert_int_equal(g.n, 2);
	assert_true(has(&g, qids[0]));
	assert_true(has(&g, qids[1]));

	memset(&g, 0, sizeof(g));
	assert_int_equal(queue_envid_lookup("other@client.test", collect, &g),
	    1);
	assert_string_equal(g.qids[0], qids[2]);

	memset(&g, 0, sizeof(g));
	assert_int_equal(queue_envid_lookup("unknown", collect, &g), 0);
	assert_int_equal(queue_envid_lookup("dup@client", collect, &g), 0);
	assert_int_equal(queue_envid_lookup("dup@client.test.", collect, &g),
	    0);
	assert_int_equal(g.n, 0);

	/* the callback stops the walk */
	memset(&g, 0, sizeof(g));
	g.stop_after = 1;
	assert_int_equal(queue_envid_lookup("dup@client.test", collect, &g), 1);
	assert_int_equal(g.n, 1);

	/* each candidate's message, read-only, for the TRACK answer */
	assert_int_equal(queue_track_visit(qids[0], visit_cb,
	    (void *)"dup@client.test"), 7);
	assert_int_equal(queue_track_visit(qids[2], visit_cb,
	    (void *)"other@client.test"), 7);
	assert_int_equal(queue_track_visit("0000000000000000", visit_cb,
	    NULL), -1);
	assert_int_equal(queue_track_visit("bad qid", visit_cb, NULL), -1);
	assert_int_equal(queue_track_visit(qids[0], NULL, NULL), -1);

	assert_int_equal(queue_envid_lookup(NULL, collect, &g), -1);
	assert_int_equal(queue_envid_lookup("x", NULL, &g), -1);
}

static void
test_lookup(void **state)
{
	struct got	g;

	(void)state;
	memset(&g, 0, sizeof(g));
	assert_int_equal(queue_envid_lookup("dup@client.test", collect, &g),
	    -1);			/* the store is not open */
	open_queue();
	accept_one("dup@client.test", qids[0]);
	accept_one("dup@client.test", qids[1]);
	accept_one("other@client.test", qids[2]);
	accept_one(NULL, qids[3]);
	event_base_dispatch(base);
	assert_int_equal(pending, 0);
	check_lookups();

	/* durable: the same answers after a restart of the queue */
	queue_shutdown();
	assert_int_equal(queue_envid_lookup("dup@client.test", collect, &g),
	    -1);
	open_queue();
	check_lookups();
	queue_shutdown();
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_lookup),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
