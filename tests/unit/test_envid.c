#include "config.h"
/*
 * test_envid.c - unit tests of the ENVID index and TRACK's search
 * (queue/queue_db.c: queue_track_find, qdb_envid_walk, the purge).
 * A temporary spool (queue_lock + queue_init with the embedded default
 * configuration, as waymarkd starts it).  Unfinished messages accepted
 * through queue_accept, held in quarantine so the scheduler never
 * delivers them: three tracked ones sharing one ENVID (two with one
 * certifier, one with another), one tracked with another ENVID, one
 * with an ENVID but no certifier (ordinary DSN mail), one with a
 * certifier but no ENVID.  Only the tracked ones with an ENVID are
 * indexed, each entry with its certifier; queue_track_find gives
 * exactly the messages whose certifier matches, in index order, from
 * memory (queued = 1), none for a wrong or malformed certifier, an
 * unknown ENVID or a prefix, stops when the callback says so, answers
 * the same after a restart, and refuses with the store closed.
 * Entries of older stores (the bare qid, written here through the
 * commit job API) are decided by their message record.  Finished
 * messages (queue_bulk_load) are read from the store without their
 * events, and the purge removes their entries of both formats.
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
#include "queue/queue_int.h"
#include "tests/unit/unit_spool.h"

/* certifiers of three secrets (any 27 base64 characters do here) */
#define CERT_A	"QlrxKgdDUCsyLpOgFbz4aOMk1Wo"
#define CERT_B	"2jmj7l5rSw0yVb/vlWAYkK/YBwk"
#define CERT_C	"Gu4Q9WNvJ1mWwm0WJ2O/ac4q2Jw"

enum { M_DUP_A1, M_DUP_B, M_DUP_A2, M_OTHER, M_PLAIN, M_NOENVID, M_OLD,
	M_OLDPLAIN, NMSGS };

static struct unit_spool	 us;
static struct event_base	*base;
static struct config		*cfg;
static char			 qids[NMSGS][QID_SIZE];
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

/* accept_one - a held message with envid and cert (NULL = none) */
static void
accept_one(const char *envid, const char *cert, char qid[QID_SIZE])
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
	if (cert != NULL)
		assert_non_null(m->mtrk_certifier = strdup(cert));
	m->state = MS_QUARANTINE;
	m->state_since = m->arrival;
	assert_non_null(m->state_reason = strdup("test"));
	assert_non_null(m->state_actor = strdup("test"));
	assert_int_equal(qmsg_add_rcpt(m, "bob@example.org"), 0);
	pending++;
	queue_accept(m, fd, accepted, NULL);
}

/* committed - a commit job's completion */
static void
committed(void *arg, int rc)
{
	*(int *)arg = rc;
}

/* make_old - replace the entries of envid by the old format's bare
 * qids q[0..n-1], as a store written before certifiers were indexed
 * holds them */
static void
make_old(const char *envid, const char *const *q, size_t n)
{
	struct qjob	*j;
	size_t		 i;
	int		 rc = 1;

	assert_non_null(j = qjob_new());
	assert_int_equal(qjob_del(j, QDB_ENVID, envid, strlen(envid)), 0);
	for (i = 0; i < n; i++)
		assert_int_equal(qjob_put(j, QDB_ENVID, envid, strlen(envid),
		    q[i], strlen(q[i])), 0);
	qdb_commit(j, committed, &rc);
	qdb_drain();
	assert_int_equal(rc, 0);
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
	(void)state;
	if (unit_spool_make(&us, "test_envid") == -1)
		return -1;
	cfg = us.cfg;
	base = us.base;
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	return unit_spool_remove(&us);
}

/* ---- the index's contents ---- */

struct entries {
	char	qid[8][QID_SIZE];
	char	cert[8][REC_CERT_LEN + 1];
	size_t	n;
};

/* entry_cb - qdb_envid_walk's callback: keep the entry */
static int
entry_cb(const char *qid, const char *cert, void *arg)
{
	struct entries	*e = arg;

	assert_true(e->n < 8);
	assert_true(strlen(qid) < QID_SIZE);
	assert_true(strlen(cert) <= REC_CERT_LEN);
	memcpy(e->qid[e->n], qid, strlen(qid) + 1);
	memcpy(e->cert[e->n], cert, strlen(cert) + 1);
	e->n++;
	return 0;
}

/* entries - the index entries of envid; returns their count */
static size_t
entries(const char *envid, struct entries *e)
{
	int	n;

	memset(e, 0, sizeof(*e));
	n = qdb_envid_walk(envid, 1024, entry_cb, e);
	assert_int_equal(n, (int)e->n);
	return e->n;
}

/* has_entry - envid's entries hold qid with certifier cert ("" = old) */
static int
has_entry(const struct entries *e, const char *qid, const char *cert)
{
	size_t	i;

	for (i = 0; i < e->n; i++)
		if (strcmp(e->qid[i], qid) == 0 && strcmp(e->cert[i], cert) == 0)
			return 1;
	return 0;
}

/* ---- queue_track_find ---- */

struct found {
	char	qid[8][QID_SIZE];
	int	queued[8];
	size_t	ntrace[8];
	size_t	nrcpts[8];
	size_t	n;
	int	stop;		/* returned by the callback (0 = go on) */
};

/* found_cb - queue_track_find's callback: keep the match */
static int
found_cb(const struct qmsg *m, int queued, void *arg)
{
	struct found	*f = arg;

	assert_true(f->n < 8);
	assert_non_null(m);
	assert_non_null(m->envid);
	assert_non_null(m->mtrk_certifier);
	memcpy(f->qid[f->n], m->qid, QID_SIZE);
	f->queued[f->n] = queued;
	f->ntrace[f->n] = m->ntrace;
	f->nrcpts[f->n] = m->nrcpts;
	f->n++;
	return f->stop;
}

/* find - queue_track_find into f (stop: the callback's result) */
static int
find(const char *envid, const char *cert, struct found *f, int stop)
{
	memset(f, 0, sizeof(*f));
	f->stop = stop;
	return queue_track_find(envid, cert, found_cb, f);
}

/* check_unfinished - what the index must hold and answer for the
 * accepted messages */
static void
check_unfinished(void)
{
	struct entries	e;
	struct found	f;

	/* tracked messages only, each with its certifier, duplicates kept */
	assert_int_equal(entries("dup@client.test", &e), 3);
	assert_true(has_entry(&e, qids[M_DUP_A1], CERT_A));
	assert_true(has_entry(&e, qids[M_DUP_B], CERT_B));
	assert_true(has_entry(&e, qids[M_DUP_A2], CERT_A));
	assert_int_equal(entries("other@client.test", &e), 1);
	assert_true(has_entry(&e, qids[M_OTHER], CERT_A));
	/* an ENVID without MTRK: not indexed */
	assert_int_equal(entries("plain@client.test", &e), 0);

	/* certifier A: both of its messages, in index (qid) order */
	assert_int_equal(find("dup@client.test", CERT_A, &f, 0), 0);
	assert_int_equal(f.n, 2);
	assert_string_equal(f.qid[0], qids[M_DUP_A1]);
	assert_string_equal(f.qid[1], qids[M_DUP_A2]);
	assert_int_equal(f.queued[0], 1);	/* held: still in the queue */
	assert_int_equal(f.queued[1], 1);
	assert_int_equal(f.nrcpts[0], 1);
	/* the callback stops the walk and its result is returned */
	assert_int_equal(find("dup@client.test", CERT_A, &f, 7), 7);
	assert_int_equal(f.n, 1);
	assert_string_equal(f.qid[0], qids[M_DUP_A1]);
	/* certifier B: its message only */
	assert_int_equal(find("dup@client.test", CERT_B, &f, 1), 1);
	assert_int_equal(f.n, 1);
	assert_string_equal(f.qid[0], qids[M_DUP_B]);
	assert_int_equal(find("other@client.test", CERT_A, &f, 1), 1);
	assert_string_equal(f.qid[0], qids[M_OTHER]);

	/* no match: wrong, malformed certifier; unknown ENVID, a prefix */
	assert_int_equal(find("dup@client.test", CERT_C, &f, 1), 0);
	assert_int_equal(find("other@client.test", CERT_B, &f, 1), 0);
	assert_int_equal(find("dup@client.test", "", &f, 1), 0);
	assert_int_equal(find("dup@client.test", CERT_A "x", &f, 1), 0);
	assert_int_equal(find("dup@client.test", "QlrxKgdDUCsyLpOgFbz4aOMk1W",
	    &f, 1), 0);
	assert_int_equal(find("unknown", CERT_A, &f, 1), 0);
	assert_int_equal(find("dup@client", CERT_A, &f, 1), 0);
	assert_int_equal(find("dup@client.test.", CERT_A, &f, 1), 0);
	/* a message without a certifier never matches */
	assert_int_equal(find("plain@client.test", CERT_A, &f, 1), 0);
	assert_int_equal(f.n, 0);

	/* old-format entries: the record decides */
	assert_int_equal(entries("old@client.test", &e), 2);
	assert_true(has_entry(&e, qids[M_OLD], ""));
	assert_true(has_entry(&e, qids[M_OLDPLAIN], ""));
	assert_int_equal(find("old@client.test", CERT_B, &f, 1), 1);
	assert_int_equal(f.n, 1);
	assert_string_equal(f.qid[0], qids[M_OLD]);
	assert_int_equal(f.queued[0], 1);
	assert_int_equal(find("old@client.test", CERT_A, &f, 1), 0);

	/* bad arguments */
	assert_int_equal(queue_track_find(NULL, CERT_A, found_cb, &f), -1);
	assert_int_equal(queue_track_find("x", NULL, found_cb, &f), -1);
	assert_int_equal(queue_track_find("x", CERT_A, NULL, &f), -1);
}

static void
test_unfinished(void **state)
{
	const char	*old[2];
	struct found	 f;

	(void)state;
	assert_int_equal(find("dup@client.test", CERT_A, &f, 0),
	    -1);			/* the store is not open */
	open_queue();
	accept_one("dup@client.test", CERT_A, qids[M_DUP_A1]);
	accept_one("dup@client.test", CERT_B, qids[M_DUP_B]);
	accept_one("dup@client.test", CERT_A, qids[M_DUP_A2]);
	accept_one("other@client.test", CERT_A, qids[M_OTHER]);
	accept_one("plain@client.test", NULL, qids[M_PLAIN]);
	accept_one(NULL, CERT_A, qids[M_NOENVID]);
	accept_one("old@client.test", CERT_B, qids[M_OLD]);
	accept_one("old@client.test", NULL, qids[M_OLDPLAIN]);
	event_base_dispatch(base);
	assert_int_equal(pending, 0);
	/* as a store written before: every message with the ENVID, bare */
	old[0] = qids[M_OLD];
	old[1] = qids[M_OLDPLAIN];
	make_old("old@client.test", old, 2);
	check_unfinished();

	/* durable: the same answers after a restart of the queue */
	queue_shutdown();
	assert_int_equal(find("dup@client.test", CERT_A, &f, 0), -1);
	open_queue();
	check_unfinished();
	queue_shutdown();
}

/* ---- finished messages: read without events; the purge ---- */

/* finished - a finished tracked message (NULL cert: untracked) */
static struct qmsg *
finished(const char *envid, const char *cert, time_t done)
{
	struct qmsg	*m;
	struct qrcpt	*r;

	assert_non_null(m = qmsg_new());
	m->arrival = done - 10;
	m->done_time = done;
	m->size = 100;
	assert_non_null(m->sender = strdup("alice@example.com"));
	assert_non_null(m->client_addr = strdup("127.0.0.1"));
	assert_non_null(m->helo = strdup("client.test"));
	assert_non_null(m->envid = strdup(envid));
	if (cert != NULL)
		assert_non_null(m->mtrk_certifier = strdup(cert));
	assert_int_equal(qmsg_add_rcpt(m, "bob@example.org"), 0);
	assert_int_equal(qmsg_add_rcpt(m, "carol@example.net"), 0);
	r = &m->rcpts[0];
	r->status = RS_DELIVERED;
	r->attempts = 1;
	r->last_attempt = done;
	r->last_code = 250;
	(void)snprintf(r->last_enh, sizeof(r->last_enh), "2.0.0");
	r = &m->rcpts[1];
	r->status = RS_FAILED;
	r->attempts = 1;
	r->last_attempt = done;
	r->last_code = 550;
	(void)snprintf(r->last_enh, sizeof(r->last_enh), "5.1.1");
	return m;
}

enum { F_NEW, F_OLD, F_PLAIN, F_KEEP, NFIN };

static void
test_finished_purge(void **state)
{
	struct qmsg	*m[NFIN];
	struct entries	 e;
	struct found	 f;
	const char	*old[2];
	char		 fq[NFIN][QID_SIZE], err[512];
	time_t		 now = time(NULL);
	size_t		 i;

	(void)state;
	/* a store as a bulk load leaves it: finished messages */
	m[F_NEW] = finished("purge@client.test", CERT_A, now - 100);
	m[F_OLD] = finished("purge@client.test", CERT_A, now - 90);
	m[F_PLAIN] = finished("purge-plain@client.test", NULL, now - 80);
	/* done in the future: not purged by the cutoff below */
	m[F_KEEP] = finished("purge@client.test", CERT_B,
	    now + 400 * 86400);
	if (queue_bulk_open(cfg, err, sizeof(err)) == -1)
		fail_msg("queue_bulk_open: %s", err);
	if (queue_bulk_load(m, NFIN, err, sizeof(err)) == -1)
		fail_msg("queue_bulk_load: %s", err);
	for (i = 0; i < NFIN; i++)
		memcpy(fq[i], m[i]->qid, QID_SIZE);
	assert_int_equal(entries("purge-plain@client.test", &e), 0);
	assert_int_equal(entries("purge@client.test", &e), 3);
	/* F_OLD and F_PLAIN as an older store holds them: the bare qid;
	 * F_NEW and F_KEEP in the current format */
	{
		struct qjob	*j;
		unsigned char	 v[REC_ENVID_MAX];
		size_t		 vl;
		int		 rc = 1;

		assert_non_null(j = qjob_new());
		assert_int_equal(qjob_del(j, QDB_ENVID, "purge@client.test",
		    17), 0);
		assert_true((vl = rec_envid_encode(v, fq[F_NEW], CERT_A)) > 0);
		assert_int_equal(qjob_put(j, QDB_ENVID, "purge@client.test",
		    17, v, vl), 0);
		assert_true((vl = rec_envid_encode(v, fq[F_KEEP], CERT_B)) > 0);
		assert_int_equal(qjob_put(j, QDB_ENVID, "purge@client.test",
		    17, v, vl), 0);
		assert_int_equal(qjob_put(j, QDB_ENVID, "purge@client.test",
		    17, fq[F_OLD], strlen(fq[F_OLD])), 0);
		qdb_commit(j, committed, &rc);	/* synchronous here */
		assert_int_equal(rc, 0);
	}
	old[0] = fq[F_PLAIN];
	make_old("purge-plain@client.test", old, 1);
	assert_int_equal(queue_bulk_close(), 0);
	for (i = 0; i < NFIN; i++)
		qmsg_free(m[i]);

	open_queue();
	assert_int_equal(entries("purge@client.test", &e), 3);
	assert_true(has_entry(&e, fq[F_NEW], CERT_A));
	assert_true(has_entry(&e, fq[F_OLD], ""));
	assert_true(has_entry(&e, fq[F_KEEP], CERT_B));
	assert_int_equal(entries("purge-plain@client.test", &e), 1);

	/* from the store: records only, no events (no trace fields,
	 * though the load wrote one); the old entry by its record */
	assert_int_equal(find("purge@client.test", CERT_A, &f, 0), 0);
	assert_int_equal(f.n, 2);
	assert_string_equal(f.qid[0], fq[F_NEW]);
	assert_string_equal(f.qid[1], fq[F_OLD]);
	for (i = 0; i < 2; i++) {
		assert_int_equal(f.queued[i], 0);
		assert_int_equal(f.ntrace[i], 0);
		assert_int_equal(f.nrcpts[i], 2);
	}
	assert_int_equal(find("purge@client.test", CERT_B, &f, 1), 1);
	assert_string_equal(f.qid[0], fq[F_KEEP]);
	assert_int_equal(find("purge-plain@client.test", CERT_A, &f, 1), 0);

	/* the purge: both formats' entries go with their messages */
	qdb_purge_request(now + 200 * 86400);
	qdb_drain();
	assert_int_equal(entries("purge@client.test", &e), 1);
	assert_true(has_entry(&e, fq[F_KEEP], CERT_B));
	assert_int_equal(entries("purge-plain@client.test", &e), 0);
	assert_int_equal(find("purge@client.test", CERT_A, &f, 0), 0);
	assert_int_equal(f.n, 0);
	assert_int_equal(find("purge@client.test", CERT_B, &f, 1), 1);
	queue_shutdown();
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_unfinished),
		cmocka_unit_test(test_finished_purge),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
