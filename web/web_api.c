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
#include "common/jarena.h"
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
	{ "GET",  "/t/**",				web_page_envid, 0, 0 },
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

/* parse_filter - the query's filters into f (value: the state value's
 * storage); -1 with a 400 sent */
static int
parse_filter(struct web_req *r, struct queue_filter *f, char *value,
    size_t valuelen)
{
	const char	*s, *slash;
	char		 kw[32];
	int		 i;

	queue_filter_any(f);
	if ((s = web_query(r, "state")) != NULL) {
		slash = strchr(s, '/');
		snprintf(kw, sizeof(kw), "%.*s", slash ? (int)(slash - s) :
		    (int)strlen(s), s);
		if ((f->state = msg_state_parse(kw)) < 0) {
			web_error(r, 400, "unknown state");
			return -1;
		}
		if (slash != NULL && ((size_t)snprintf(value, valuelen, "%s",
		    slash + 1) >= valuelen ||
		    mime_check_token(value, strlen(value)) == -1)) {
			web_error(r, 400, "bad state value");
			return -1;
		}
		if (slash != NULL && value[0] != '\0')
			f->value = value;
	}
	f->sender = web_query(r, "sender");
	f->recipient = web_query(r, "recipient");
	f->queue_id = web_query(r, "queue_id");
	f->message_id = web_query(r, "message_id");
	if ((s = web_query(r, "status")) != NULL) {
		for (i = RS_QUEUED; i <= RS_EXPANDED; i++)
			if (strcmp(s, rcpt_status_name(i)) == 0)
				break;
		if (i > RS_EXPANDED) {
			web_error(r, 400, "unknown status");
			return -1;
		}
		f->status = i;
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

/* api_queue - GET /api/v1/queue: one page (queue_page_json walks the
 * queue from `after` and builds the page's objects only) */
static void
api_queue(struct web_req *r)
{
	static const char *const names[] = { "limit", "after", "state",
	    "sender", "recipient", "queue_id", "message_id", "status",
	    "min_age", "max_age", NULL };
	struct queue_filter f;
	json_t		*page;
	const char	*s, *after, *unknown = NULL;
	char		 value[128], next[QID_SIZE];
	long long	 limit = PAGE_DEFAULT;

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
	if (parse_filter(r, &f, value, sizeof(value)) == -1)
		return;
	/* the page's objects from an arena, built, encoded and freed here
	 * (common/jarena.h; jansson is the loop thread's only) */
	jarena_begin();
	if ((page = queue_page_json(&f, after, (size_t)limit, next,
	    sizeof(next))) == NULL)
		web_error(r, 500, "cannot list the queue");
	else
		web_send(r, 200, json_pack("{s:o,s:o}", "messages", page,
		    "next", next[0] != '\0' ? json_string(next) :
		    json_null()));
	jarena_end();
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
