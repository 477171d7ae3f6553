#include "config.h"
/*
 * test_page.c - unit tests of the operator's paged, filtered queue
 * listing (queue/queue_json.c: queue_page_json) and of the bulk load of
 * unfinished messages it is benchmarked with (queue/queue_bulk.c:
 * queue_bulk_queue).  A temporary spool (queue_lock, then the bulk
 * load, then queue_init with the embedded default configuration, as
 * waymarkd starts it; the loop never runs, so nothing is delivered).
 * NMSGS messages of varied senders, states, recipients, statuses,
 * Message-IDs and ages.  Every page of every filter, walked with `next`
 * as a client does, must give exactly what the listing of the whole
 * queue (queue_list_json) filtered by a reference matcher gives (the
 * semantics web/web_api.c had before paging), in queue-id order; a
 * finished message is never listed; `after` may name a queue id that
 * is not in the queue.
 */

#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>
#include <jansson.h>

#include "common/cfg.h"
#include "common/work.h"
#include "queue/queue_int.h"
#include "tests/unit/unit_spool.h"

#define NMSGS	60

static struct unit_spool	 us;
static struct event_base	*base;
static struct config		*cfg;
static char			 qids[NMSGS][QID_SIZE];
static time_t			 t0;

/* make - message i of the load (see the header) */
static struct qmsg *
make(int i)
{
	struct qmsg	*m;
	char		 buf[64];

	assert_non_null(m = qmsg_new());
	m->arrival = t0 - (time_t)(NMSGS - i) * 100;
	if (i % 7 == 0)
		assert_non_null(m->sender = strdup(""));
	else {
		(void)snprintf(buf, sizeof(buf), "s%d@Example.COM", i % 3);
		assert_non_null(m->sender = strdup(buf));
	}
	assert_non_null(m->client_addr = strdup("127.0.0.1"));
	assert_non_null(m->helo = strdup("client.test"));
	if (i % 6 != 0) {
		(void)snprintf(buf, sizeof(buf), "<m%d@client.test>", i);
		assert_non_null(m->message_id = strdup(buf));
	}
	if (i % 5 == 0) {
		m->state = MS_QUARANTINE;
		if (i % 10 == 0)
			assert_non_null(m->state_value = strdup("spam"));
	} else if (i % 5 == 1) {
		m->state = MS_OTHER;
		assert_non_null(m->state_value = strdup("hold"));
	}
	if (m->state != MS_NORMAL) {
		assert_non_null(m->state_reason = strdup("test"));
		assert_non_null(m->state_actor = strdup("test"));
	}
	(void)snprintf(buf, sizeof(buf), "r%d@d%d.test", i % 4, i % 2);
	assert_int_equal(qmsg_add_rcpt(m, buf), 0);
	if (i % 2 == 1)
		m->rcpts[0].status = RS_DEFERRED;
	if (i % 3 == 0) {
		(void)snprintf(buf, sizeof(buf), "X%d@Big.test", i);
		assert_int_equal(qmsg_add_rcpt(m, buf), 0);
	}
	return m;
}

static int
setup(void **state)
{
	static const char	 body[] = "Subject: t\r\n\r\nbody\r\n";
	struct qmsg		*m[NMSGS];
	char			 err[512];
	int			 i;

	(void)state;
	t0 = time(NULL);
	if (unit_spool_make(&us, "test_page") == -1)
		return -1;
	cfg = us.cfg;
	base = us.base;
	if (queue_bulk_open(cfg, err, sizeof(err)) == -1) {
		fprintf(stderr, "queue_bulk_open: %s\n", err);
		return -1;
	}
	for (i = 0; i < NMSGS; i++)
		m[i] = make(i);
	/* two transactions */
	if (queue_bulk_queue(m, NMSGS / 2, body, sizeof(body) - 1, err,
	    sizeof(err)) == -1 || queue_bulk_queue(m + NMSGS / 2,
	    NMSGS - NMSGS / 2, body, sizeof(body) - 1, err,
	    sizeof(err)) == -1) {
		fprintf(stderr, "queue_bulk_queue: %s\n", err);
		return -1;
	}
	for (i = 0; i < NMSGS; i++) {
		memcpy(qids[i], m[i]->qid, QID_SIZE);
		qmsg_free(m[i]);
	}
	assert_int_equal(queue_bulk_close(), 0);
	if (queue_init(cfg, base, err, sizeof(err)) == -1) {
		fprintf(stderr, "queue_init: %s\n", err);
		return -1;
	}
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	queue_shutdown();
	return unit_spool_remove(&us);
}

/* ---- the reference: web_api.c's filter over the whole listing ---- */

static int
ref_has(const char *hay, const char *needle)
{
	size_t	n = strlen(needle), h = strlen(hay), i;

	for (i = 0; i + n <= h; i++)
		if (strncasecmp(hay + i, needle, n) == 0)
			return 1;
	return 0;
}

static const char *
jget(json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));

	return s != NULL ? s : "";
}

/* ref_match - does message object m pass f (state and value excepted:
 * queue_list_json applies those) */
static int
ref_match(json_t *m, const struct queue_filter *f)
{
	json_t		*rc;
	json_int_t	 age;
	size_t		 i;
	int		 rcpt_ok = f->recipient == NULL,
			 status_ok = f->status < 0;

	if (f->queue_id != NULL && strcmp(jget(m, "queue_id"),
	    f->queue_id) != 0)
		return 0;
	if (f->message_id != NULL && strcmp(jget(m, "message_id"),
	    f->message_id) != 0)
		return 0;
	if (f->sender != NULL) {
		if (strcmp(f->sender, "<>") == 0) {
			if (jget(m, "sender")[0] != '\0')
				return 0;
		} else if (!ref_has(jget(m, "sender"), f->sender))
			return 0;
	}
	age = (json_int_t)f->now - json_integer_value(json_object_get(m,
	    "arrival_time"));
	if (f->min_age >= 0 && age < f->min_age)
		return 0;
	if (f->max_age >= 0 && age > f->max_age)
		return 0;
	json_array_foreach(json_object_get(m, "recipients"), i, rc) {
		if (f->recipient != NULL &&
		    ref_has(jget(rc, "address"), f->recipient))
			rcpt_ok = 1;
		if (f->status >= 0 && strcmp(jget(rc, "status"),
		    rcpt_status_name(f->status)) == 0)
			status_ok = 1;
	}
	return rcpt_ok && status_ok;
}

/* expected - the filtered listing, as an array of message objects */
static json_t *
expected(const struct queue_filter *f)
{
	json_t	*all, *out, *m;
	size_t	 i;

	assert_non_null(all = queue_list_json(f->state, f->value));
	assert_non_null(out = json_array());
	json_array_foreach(all, i, m)
		if (ref_match(m, f))
			assert_int_equal(json_array_append(out, m), 0);
	json_decref(all);
	return out;
}

/* walk - every page of f (limit per page) from after, concatenated, as a
 * client walks them with `next`; *npages counts the pages */
static json_t *
walk(const struct queue_filter *f, const char *after, size_t limit,
    size_t *npages)
{
	json_t	*out, *page;
	char	 next[QID_SIZE], cur[QID_SIZE];
	size_t	 n;

	assert_non_null(out = json_array());
	*npages = 0;
	for (;;) {
		assert_non_null(page = queue_page_json(f, after, limit, next,
		    sizeof(next)));
		(*npages)++;
		n = json_array_size(page);
		assert_true(n <= limit);
		assert_int_equal(json_array_extend(out, page), 0);
		if (next[0] == '\0') {
			json_decref(page);
			return out;
		}
		/* a next means a full page that ends with it */
		assert_int_equal(n, limit);
		assert_string_equal(jget(json_array_get(page, n - 1),
		    "queue_id"), next);
		json_decref(page);
		memcpy(cur, next, sizeof(cur));
		after = cur;
		assert_true(*npages <= NMSGS + 1);
	}
}

/* same - pages of f equal the reference, for several page sizes */
static void
same(const struct queue_filter *f, size_t nexpect)
{
	static const size_t	 limits[] = { 1, 2, 7, 50, 500 };
	json_t			*want, *got;
	size_t			 i, npages;

	want = expected(f);
	if (nexpect != (size_t)-1)
		assert_int_equal(json_array_size(want), nexpect);
	for (i = 0; i < sizeof(limits) / sizeof(limits[0]); i++) {
		got = walk(f, NULL, limits[i], &npages);
		if (!json_equal(want, got)) {
			char *w = json_dumps(want, JSON_COMPACT),
			    *g = json_dumps(got, JSON_COMPACT);

			fail_msg("limit %zu: want %s\ngot %s", limits[i], w, g);
		}
		/* exactly enough pages: none empty but a lone first one */
		assert_int_equal(npages, json_array_size(want) == 0 ? 1 :
		    (json_array_size(want) + limits[i] - 1) / limits[i]);
		json_decref(got);
	}
	json_decref(want);
}

static void
test_loaded(void **state)
{
	json_t	*all;
	size_t	 i;

	(void)state;
	assert_int_equal(qs.nmsgs, NMSGS);
	assert_non_null(all = queue_list_json(-1, NULL));
	assert_int_equal(json_array_size(all), NMSGS);
	for (i = 0; i < NMSGS; i++)
		assert_string_equal(jget(json_array_get(all, i), "queue_id"),
		    qids[i]);
	assert_string_equal(jget(json_array_get(all, 5), "state"),
	    "quarantine");
	assert_string_equal(jget(json_array_get(all, 1), "state"), "other");
	json_decref(all);
	/* each body file is there */
	for (i = 0; i < NMSGS; i++) {
		char path[1100];

		(void)snprintf(path, sizeof(path), "body/%s", qids[i]);
		assert_int_equal(access(path, R_OK), 0);
	}
}

static void
test_filters(void **state)
{
	struct queue_filter	f;

	(void)state;
	queue_filter_any(&f);
	same(&f, NMSGS);
	f.state = MS_QUARANTINE;
	same(&f, NMSGS / 5);
	f.value = "SPAM";
	same(&f, NMSGS / 10);
	queue_filter_any(&f);
	f.state = MS_OTHER;
	f.value = "hold";
	same(&f, NMSGS / 5);
	f.state = MS_TIMED;
	f.value = NULL;
	same(&f, 0);
	queue_filter_any(&f);
	f.sender = "<>";
	same(&f, (NMSGS + 6) / 7);
	f.sender = "s1@example";
	same(&f, (size_t)-1);
	f.sender = "";
	same(&f, NMSGS);
	queue_filter_any(&f);
	f.recipient = "big.TEST";
	same(&f, NMSGS / 3);
	f.recipient = "r1@";
	same(&f, NMSGS / 4);
	f.status = RS_DEFERRED;
	same(&f, (size_t)-1);
	queue_filter_any(&f);
	f.status = RS_QUEUED;	/* even ones, and odd ones with a second */
	same(&f, NMSGS / 2 + NMSGS / 6);
	f.status = RS_DELIVERED;
	same(&f, 0);
	queue_filter_any(&f);
	f.message_id = "<m7@client.test>";
	same(&f, 1);
	f.message_id = "";		/* none */
	same(&f, NMSGS / 6);
	f.message_id = "<m7@client";
	same(&f, 0);
	queue_filter_any(&f);
	f.now = t0;
	f.min_age = 1000;
	same(&f, NMSGS - 9);
	f.max_age = 2000;
	same(&f, 11);
	f.min_age = -1;
	same(&f, 20);
	queue_filter_any(&f);
	f.queue_id = qids[17];
	same(&f, 1);
	f.state = MS_QUARANTINE;
	same(&f, 0);
	f.queue_id = "nosuchqid";
	f.state = -1;
	same(&f, 0);
	/* several at once */
	queue_filter_any(&f);
	f.state = MS_NORMAL;
	f.sender = "EXAMPLE.com";
	f.recipient = "d1.test";
	f.status = RS_DEFERRED;
	f.now = t0;
	f.max_age = 4000;
	same(&f, (size_t)-1);
}

static void
test_after(void **state)
{
	struct queue_filter	 f;
	json_t			*got;
	char			 next[QID_SIZE], between[QID_SIZE + 1];
	size_t			 npages, i;

	(void)state;
	queue_filter_any(&f);
	/* after a middle qid: the rest, in order */
	got = walk(&f, qids[29], 50, &npages);
	assert_int_equal(json_array_size(got), NMSGS - 30);
	assert_int_equal(npages, 1);
	for (i = 0; i < NMSGS - 30; i++)
		assert_string_equal(jget(json_array_get(got, i), "queue_id"),
		    qids[30 + i]);
	json_decref(got);
	/* a qid that is not in the queue (it sorts just after qids[9]) */
	(void)snprintf(between, sizeof(between), "%s0", qids[9]);
	assert_non_null(got = queue_page_json(&f, between, 2, next,
	    sizeof(next)));
	assert_int_equal(json_array_size(got), 2);
	assert_string_equal(jget(json_array_get(got, 0), "queue_id"),
	    qids[10]);
	assert_string_equal(next, qids[11]);
	json_decref(got);
	/* the last: nothing after it */
	assert_non_null(got = queue_page_json(&f, qids[NMSGS - 1], 5, next,
	    sizeof(next)));
	assert_int_equal(json_array_size(got), 0);
	assert_string_equal(next, "");
	json_decref(got);
	/* a page that ends exactly at the last match: no next */
	f.state = MS_QUARANTINE;
	assert_non_null(got = queue_page_json(&f, NULL, NMSGS / 5, next,
	    sizeof(next)));
	assert_int_equal(json_array_size(got), NMSGS / 5);
	assert_string_equal(next, "");
	json_decref(got);
	/* queue_id with after: only when it comes after */
	queue_filter_any(&f);
	f.queue_id = qids[17];
	assert_non_null(got = queue_page_json(&f, qids[16], 5, next,
	    sizeof(next)));
	assert_int_equal(json_array_size(got), 1);
	json_decref(got);
	assert_non_null(got = queue_page_json(&f, qids[17], 5, next,
	    sizeof(next)));
	assert_int_equal(json_array_size(got), 0);
	json_decref(got);
}

/* a finished message (or one whose final commit is queued) is not
 * listed, as in queue_list_json */
static void
test_finished(void **state)
{
	struct queue_filter	 f;
	struct qmsg		*m = qmem_find(qids[3]), *m2 = qmem_find(qids[4]);
	struct qpriv		*p;
	json_t			*got;
	char			 next[QID_SIZE];

	(void)state;
	assert_non_null(m);
	assert_non_null(m2);
	assert_non_null(p = qmsg_priv(m2));
	m->done_time = t0;
	p->finishing = 1;
	queue_filter_any(&f);
	same(&f, NMSGS - 2);
	assert_non_null(got = queue_page_json(&f, qids[2], 1, next,
	    sizeof(next)));
	assert_string_equal(jget(json_array_get(got, 0), "queue_id"),
	    qids[5]);
	json_decref(got);
	m->done_time = 0;
	p->finishing = 0;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_loaded),
		cmocka_unit_test(test_filters),
		cmocka_unit_test(test_after),
		cmocka_unit_test(test_finished),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
