#include "config.h"
/*
 * web_api.c - the route table and the operator's JSON API (README "HTTP
 * API (operator)"), on http_admin, after basic authentication.
 * Routes: GET /api/v1/queue (one page of the unfinished messages, the
 *       objects of `waymark queue --json`, filtered by the query
 *       parameters, in queue-id order: {"messages": [...], "next": QID or
 *       null}; limit (1..500, 50), after (a queue id: the page starts
 *       after it), state (KEYWORD[/VALUE]), sender and recipient
 *       (case-insensitive substrings; "<>" = the null sender), queue_id,
 *       message_id (exact), status (a recipient's), min_age / max_age
 *       (seconds since arrival)); GET /api/v1/messages/QID (as `show
 *       --json`); POST /api/v1/messages/QID/{hold,release,delete,flush}
 *       (delete: ?bounce=1 for a failure DSN), answered once the change
 *       is on stable storage, recorded with the actor "operator USER via
 *       http".
 * Errors: 400 bad parameter, 404 unknown queue id, 409 action not
 *       allowed in the message's state (the queue's reason), 500.
 * Not here: building message objects and the actions (queue/), the
 *       server, the checks before a handler (web_server.c, web_auth.c).
 */

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <jansson.h>

#include "common/cfg.h"
#include "common/log.h"
#include "common/syntax.h"
#include "common/util.h"
#include "queue/queue.h"
#include "web/web_int.h"

#define PAGE_DEFAULT	50
#define PAGE_MAX	500

static web_handler	api_queue, api_show, api_hold, api_release,
			api_delete, api_flush;

const struct web_route web_routes[] = {
	{ "GET",  "/api/v1/queue",			api_queue,   1, 0 },
	{ "GET",  "/api/v1/messages/*",			api_show,    1, 0 },
	{ "POST", "/api/v1/messages/*/hold",		api_hold,    1, 1 },
	{ "POST", "/api/v1/messages/*/release",		api_release, 1, 1 },
	{ "POST", "/api/v1/messages/*/delete",		api_delete,  1, 1 },
	{ "POST", "/api/v1/messages/*/flush",		api_flush,   1, 1 },
	/* the sender view (web_track.c), on http and http_admin */
	{ "POST", "/api/v1/track",			web_track_api,  0, 0 },
	{ "GET",  "/",					web_page_index, 0, 0 },
	{ "GET",  "/t/*",				web_page_envid, 0, 0 },
	{ "POST", "/t",					web_track_form, 0, 0 },
	{ "GET",  "/assets/*",				web_asset_get,  0, 0 },
	/* the operator's pages (web_admin.c): a session, else basic auth */
	{ "GET",  "/admin",				web_admin_root,   2, 0 },
	{ "GET",  "/admin/",				web_admin_list,   2, 0 },
	{ "GET",  "/admin/m/*",				web_admin_show,   2, 0 },
	{ "POST", "/admin/m/*/hold",			web_admin_action, 2, 1 },
	{ "POST", "/admin/m/*/release",			web_admin_action, 2, 1 },
	{ "POST", "/admin/m/*/delete",			web_admin_action, 2, 1 },
	{ "POST", "/admin/m/*/flush",			web_admin_action, 2, 1 },
	{ "POST", "/admin/logout",			web_admin_logout, 2, 1 },
};
const size_t web_nroutes = sizeof(web_routes) / sizeof(web_routes[0]);

/* the page's filters, checked */
struct filter {
	int		 state;		/* -1: any */
	char		 value[128];	/* state value, "" = any */
	const char	*sender, *recipient, *queue_id, *message_id;
	const char	*status;
	long long	 min_age, max_age;	/* -1: none */
	time_t		 now;
};

/* parse_uint - all digits, at most max; -1 otherwise */
static long long
parse_uint(const char *s, long long max)
{
	long long	v = 0;

	if (s == NULL || *s == '\0')
		return -1;
	for (; *s != '\0'; s++) {
		if (*s < '0' || *s > '9')
			return -1;
		v = v * 10 + (*s - '0');
		if (v > max)
			return -1;
	}
	return v;
}

/* str_has - case-insensitive substring */
static int
str_has(const char *hay, const char *needle)
{
	size_t	n = strlen(needle), h = strlen(hay), i;

	for (i = 0; i + n <= h; i++)
		if (strncasecmp(hay + i, needle, n) == 0)
			return 1;
	return 0;
}

/* jget - the string member key of o, "" when absent or not a string */
static const char *
jget(json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));

	return s != NULL ? s : "";
}

/* matches - does message object m pass f? */
static int
matches(json_t *m, const struct filter *f)
{
	json_t		*rcpts, *rc;
	json_int_t	 arrival, age;
	size_t		 i;
	int		 rcpt_ok = f->recipient == NULL, status_ok =
			    f->status == NULL;

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
		} else if (!str_has(jget(m, "sender"), f->sender))
			return 0;
	}
	if (f->min_age >= 0 || f->max_age >= 0) {
		arrival = json_integer_value(json_object_get(m,
		    "arrival_time"));
		age = (json_int_t)f->now - arrival;
		if (f->min_age >= 0 && age < f->min_age)
			return 0;
		if (f->max_age >= 0 && age > f->max_age)
			return 0;
	}
	rcpts = json_object_get(m, "recipients");
	json_array_foreach(rcpts, i, rc) {
		if (f->recipient != NULL &&
		    str_has(jget(rc, "address"), f->recipient))
			rcpt_ok = 1;
		if (f->status != NULL &&
		    strcmp(jget(rc, "status"), f->status) == 0)
			status_ok = 1;
	}
	return rcpt_ok && status_ok;
}

/* parse_filter - the query's filters into f; -1 with a 400 sent */
static int
parse_filter(struct web_req *r, struct filter *f)
{
	static const char *const statuses[] = { "queued", "deferred",
	    "delivered", "relayed", "transferred", "failed", "expanded" };
	const char	*s, *slash;
	char		 kw[32];
	size_t		 i;

	memset(f, 0, sizeof(*f));
	f->state = -1;
	f->min_age = f->max_age = -1;
	f->now = time(NULL);
	if ((s = web_query(r, "state")) != NULL) {
		slash = strchr(s, '/');
		snprintf(kw, sizeof(kw), "%.*s", slash ? (int)(slash - s) :
		    (int)strlen(s), s);
		if ((f->state = msg_state_parse(kw)) < 0) {
			web_error(r, 400, "unknown state");
			return -1;
		}
		if (slash != NULL && ((size_t)snprintf(f->value,
		    sizeof(f->value), "%s", slash + 1) >= sizeof(f->value) ||
		    mime_check_token(f->value, strlen(f->value)) == -1)) {
			web_error(r, 400, "bad state value");
			return -1;
		}
	}
	f->sender = web_query(r, "sender");
	f->recipient = web_query(r, "recipient");
	f->queue_id = web_query(r, "queue_id");
	f->message_id = web_query(r, "message_id");
	if ((f->status = web_query(r, "status")) != NULL) {
		for (i = 0; i < sizeof(statuses) / sizeof(statuses[0]); i++)
			if (strcmp(f->status, statuses[i]) == 0)
				break;
		if (i == sizeof(statuses) / sizeof(statuses[0])) {
			web_error(r, 400, "unknown status");
			return -1;
		}
	}
	if ((s = web_query(r, "min_age")) != NULL &&
	    (f->min_age = parse_uint(s, 999999999)) < 0) {
		web_error(r, 400, "min_age: seconds expected");
		return -1;
	}
	if ((s = web_query(r, "max_age")) != NULL &&
	    (f->max_age = parse_uint(s, 999999999)) < 0) {
		web_error(r, 400, "max_age: seconds expected");
		return -1;
	}
	return 0;
}

/* api_queue - GET /api/v1/queue: one page */
static void
api_queue(struct web_req *r)
{
	static const char *const names[] = { "limit", "after", "state",
	    "sender", "recipient", "queue_id", "message_id", "status",
	    "min_age", "max_age", NULL };
	struct filter	 f;
	json_t		*all, *page, *m, *next = NULL;
	const char	*s, *after, *unknown = NULL;
	long long	 limit = PAGE_DEFAULT;
	size_t		 i;

	if (web_query_check(r, names, &unknown) == -1) {
		char esc[80];

		log_escape(esc, sizeof(esc), unknown, strlen(unknown));
		web_error(r, 400, "unknown parameter: %s", esc);
		return;
	}
	if ((s = web_query(r, "limit")) != NULL &&
	    ((limit = parse_uint(s, PAGE_MAX)) < 1)) {
		web_error(r, 400, "limit: 1 to %d expected", PAGE_MAX);
		return;
	}
	if ((after = web_query(r, "after")) != NULL && !qid_valid(after)) {
		web_error(r, 400, "after: a queue id expected");
		return;
	}
	if (parse_filter(r, &f) == -1)
		return;
	if ((all = queue_list_json(f.state, f.value[0] ? f.value : NULL)) ==
	    NULL || (page = json_array()) == NULL) {
		json_decref(all);
		web_error(r, 500, "cannot list the queue");
		return;
	}
	/* queue_list_json is in queue-id order */
	json_array_foreach(all, i, m) {
		if (after != NULL && strcmp(jget(m, "queue_id"), after) <= 0)
			continue;
		if (!matches(m, &f))
			continue;
		if (json_array_size(page) == (size_t)limit) {
			next = json_object_get(json_array_get(page,
			    json_array_size(page) - 1), "queue_id");
			json_incref(next);
			break;
		}
		json_array_append(page, m);
	}
	json_decref(all);
	web_send(r, 200, json_pack("{s:o,s:o}", "messages", page, "next",
	    next != NULL ? next : json_null()));
}

/* api_show - GET /api/v1/messages/QID */
static void
api_show(struct web_req *r)
{
	json_t	*m;

	if (!qid_valid(r->capture) || (m = queue_show_json(r->capture)) ==
	    NULL) {
		web_error(r, 404, "no such message");
		return;
	}
	web_send(r, 200, m);
}

/* the answer to an action, once on stable storage */
struct action_wait {
	struct web_req	*r;
	const char	*name;
};

/* action_done - queue_action's completion */
static void
action_done(void *arg, int rc, const char *msg)
{
	struct action_wait	*w = arg;
	struct web_req		*r = w->r;
	const char		*name = w->name;

	free(w);
	if (rc != 0) {
		web_error(r, 500, "%s", msg);
		return;
	}
	web_send(r, 200, json_pack("{s:s,s:s,s:s}", "queue_id", r->capture,
	    "action", name, "message", msg));
}

/* unknown_or_finished - 409 for a finished message still in the
 * history (not in the queue any more), else 404 */
static void
unknown_or_finished(struct web_req *r, const char *msg)
{
	json_t	*m;

	if ((m = queue_show_json(r->capture)) != NULL) {
		json_decref(m);
		web_error(r, 409, "message %s is finished: no longer in the "
		    "queue", r->capture);
	} else
		web_error(r, 404, "%s", msg);
}

/* action - hold / release / delete [bounce] r->capture */
static void
action(struct web_req *r, enum queue_action a, const char *name)
{
	struct action_wait	*w;
	char			 msg[256], actor[WEB_USER_MAX + 32];
	int			 rc;

	if (!qid_valid(r->capture)) {
		web_error(r, 404, "no such message");
		return;
	}
	if ((w = calloc(1, sizeof(*w))) == NULL) {
		web_error(r, 500, "out of memory");
		return;
	}
	w->r = r;
	w->name = name;
	snprintf(actor, sizeof(actor), "operator %s via http", r->user);
	rc = queue_action(r->capture, a, actor, msg, sizeof(msg), action_done,
	    w);
	switch (rc) {
	case 0:
		log_info("http-admin: %s%s %s by %s", name, a == QA_BOUNCE ?
		    " (bounce)" : "", r->capture, r->user);
		return;		/* action_done answers */
	case QA_UNKNOWN:
		free(w);
		unknown_or_finished(r, msg);
		return;
	case QA_REFUSED:
		free(w);
		web_error(r, 409, "%s", msg);
		return;
	default:
		free(w);
		web_error(r, 500, "%s", msg);
		return;
	}
}

/* no_params - the action takes no query parameters but names */
static int
no_params(struct web_req *r, const char *const *names)
{
	const char	*unknown = NULL;
	char		 esc[80];

	if (web_query_check(r, names, &unknown) == 0)
		return 0;
	log_escape(esc, sizeof(esc), unknown, strlen(unknown));
	web_error(r, 400, "unknown parameter: %s", esc);
	return -1;
}

static void
api_hold(struct web_req *r)
{
	static const char *const names[] = { NULL };

	if (no_params(r, names) == 0)
		action(r, QA_HOLD, "hold");
}

static void
api_release(struct web_req *r)
{
	static const char *const names[] = { NULL };

	if (no_params(r, names) == 0)
		action(r, QA_RELEASE, "release");
}

/* api_delete - ?bounce=1: with a failure DSN */
static void
api_delete(struct web_req *r)
{
	static const char *const names[] = { "bounce", NULL };
	const char	*b;

	if (no_params(r, names) == -1)
		return;
	b = web_query(r, "bounce");
	if (b != NULL && strcmp(b, "0") != 0 && strcmp(b, "1") != 0) {
		web_error(r, 400, "bounce: 0 or 1 expected");
		return;
	}
	action(r, b != NULL && strcmp(b, "1") == 0 ? QA_BOUNCE : QA_DELETE,
	    "delete");
}

/* api_flush - the message's deferred recipients are due now */
static void
api_flush(struct web_req *r)
{
	static const char *const names[] = { NULL };
	int	 n;

	if (no_params(r, names) == -1)
		return;
	if (!qid_valid(r->capture)) {
		web_error(r, 404, "no such message");
		return;
	}
	if ((n = queue_flush(r->capture)) < 0) {
		unknown_or_finished(r, "no such message");
		return;
	}
	log_info("http-admin: flush %s by %s (%d recipient%s)", r->capture,
	    r->user, n, n == 1 ? "" : "s");
	web_send(r, 200, json_pack("{s:s,s:s,s:i}", "queue_id", r->capture,
	    "action", "flush", "count", n));
}
