#include "config.h"
/*
 * web_admin.c - the operator's pages on http_admin (README "Operator
 *       view"): server-rendered HTML that works without JavaScript
 *       (web/assets/admin.js only shows local times and reloads the list).
 * Routes: GET /admin/ (the queue list: the API's filters and paging),
 *       GET /admin/m/QID (envelope, recipients, events, DSNs sent, trace
 *       fields and headers; a quarantined message's body as text; only
 *       the action buttons its state allows), POST
 *       /admin/m/QID/{hold,release,delete,flush} (delete: bounce=1 in the
 *       form for a failure DSN), POST /admin/logout.
 * Sessions: the first request authenticates with basic auth (web_auth.c,
 *       as the API); then a cookie wm_admin (32 random octets in hex;
 *       HttpOnly, SameSite=Strict, Path=/admin, Secure on TLS) names a
 *       session, so later requests skip the password check.  At most
 *       ADMIN_SESSIONS sessions (the least recently used goes), each
 *       ending after ADMIN_IDLE seconds unused or ADMIN_LIFE in all.
 * CSRF: every form carries the session's token (csrf); a POST needs it
 *       and an Origin absent or this server's (checked in web_server.c).
 * Actions: queue_action / queue_flush with the actor "operator USER via
 *       http", as the JSON API; then 303 to the message's page with a
 *       one-time status message; 404 / 409 as an error page.
 * Invariants: every text from the store is HTML-escaped; a page is at
 *       most PAGE_MAX octets (long parts are cut with a note).
 */

#include <sys/queue.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "common/buf.h"
#include "common/cfg.h"
#include "common/log.h"
#include "common/syntax.h"
#include "common/util.h"
#include "queue/queue.h"
#include "web/web_int.h"

#define ADMIN_SESSIONS	64		/* at once */
#define ADMIN_IDLE	(30 * 60)	/* seconds unused */
#define ADMIN_LIFE	(12 * 3600)	/* seconds in all */
#define SID_LEN		64		/* hex of 32 octets */
#define PAGE_MAX	(50u * 1024)	/* a page, octets */
#define PAGE_SOFT	(44u * 1024)	/* past this, lists stop */
#define LIST_DEFAULT	50
#define LIST_MAX	100
#define FIELD_MAX	300		/* octets of one field shown */
#define HEAD_MAX	(8u * 1024)	/* trace fields and header shown */
#define BODY_MAX	(16u * 1024)	/* quarantined body shown */
#define COOKIE		"wm_admin"
#define CSP		"default-src 'self'; script-src 'self'; " \
			"style-src 'self'; img-src 'self'; object-src 'none'; " \
			"base-uri 'none'; form-action 'self'; " \
			"frame-ancestors 'none'"

struct session {
	char	 id[SID_LEN + 1];	/* "" = free slot */
	char	 csrf[SID_LEN + 1];
	char	 user[WEB_USER_MAX + 1];
	char	 flash[320];		/* shown once */
	int	 flash_ok;
	time_t	 made, used;		/* monotonic seconds */
};

static struct session	sessions[ADMIN_SESSIONS];

/* ------------------------------------------------------------ sessions */

/* rand_hex - SID_LEN hex digits of fresh randomness into out; -1 */
static int
rand_hex(char out[SID_LEN + 1])
{
	unsigned char	raw[SID_LEN / 2];
	size_t		i;

	if (RAND_bytes(raw, sizeof(raw)) != 1)
		return -1;
	for (i = 0; i < sizeof(raw); i++)
		snprintf(out + 2 * i, 3, "%02x", raw[i]);
	explicit_bzero(raw, sizeof(raw));
	return 0;
}

/* expired - s has ended */
static int
expired(const struct session *s, time_t now)
{
	return now - s->used > ADMIN_IDLE || now - s->made > ADMIN_LIFE;
}

static void
session_end(struct session *s)
{
	explicit_bzero(s, sizeof(*s));
}

/* cookie_sid - the session id of r's Cookie field into sid; -1 none */
static int
cookie_sid(struct web_req *r, char sid[SID_LEN + 1])
{
	const char	*c = web_req_header(r, "Cookie"), *p;
	size_t		 n = strlen(COOKIE);

	for (p = c; p != NULL && *p != '\0'; ) {
		while (*p == ' ' || *p == ';')
			p++;
		if (strncmp(p, COOKIE, n) == 0 && p[n] == '=' &&
		    strspn(p + n + 1, "0123456789abcdef") == SID_LEN) {
			memcpy(sid, p + n + 1, SID_LEN);
			sid[SID_LEN] = '\0';
			return 0;
		}
		p += strcspn(p, ";");
	}
	return -1;
}

/* session_find - the live session of id, NULL when none */
static struct session *
session_find(const char *id)
{
	time_t	now = mono_sec();
	size_t	i;

	for (i = 0; i < ADMIN_SESSIONS; i++) {
		if (sessions[i].id[0] == '\0')
			continue;
		if (expired(&sessions[i], now)) {
			session_end(&sessions[i]);
			continue;
		}
		if (CRYPTO_memcmp(sessions[i].id, id, SID_LEN) == 0)
			return &sessions[i];
	}
	return NULL;
}

/* session_of - r's session from its cookie, NULL when none */
static struct session *
session_of(struct web_req *r)
{
	char	sid[SID_LEN + 1];

	if (cookie_sid(r, sid) == -1)
		return NULL;
	return session_find(sid);
}

/* web_admin_session - r has a live session: r->user set, 1; else 0 */
int
web_admin_session(struct web_req *r)
{
	struct session	*s = session_of(r);

	if (s == NULL)
		return 0;
	s->used = mono_sec();
	snprintf(r->user, sizeof(r->user), "%s", s->user);
	r->authed = 1;
	return 1;
}

/* session_new - a session for r->user (just authenticated), its cookie
 * set on r; the least recently used one goes when all are taken */
static struct session *
session_new(struct web_req *r)
{
	struct session	*s = NULL;
	char		 cookie[160];
	time_t		 now = mono_sec();
	size_t		 i;

	for (i = 0; i < ADMIN_SESSIONS; i++) {
		if (sessions[i].id[0] != '\0' && expired(&sessions[i], now))
			session_end(&sessions[i]);
		if (sessions[i].id[0] == '\0') {
			s = &sessions[i];
			break;
		}
		if (s == NULL || sessions[i].used < s->used)
			s = &sessions[i];
	}
	session_end(s);
	if (rand_hex(s->id) == -1 || rand_hex(s->csrf) == -1) {
		session_end(s);
		return NULL;
	}
	snprintf(s->user, sizeof(s->user), "%s", r->user);
	s->made = s->used = now;
	snprintf(cookie, sizeof(cookie), "%s=%s; Path=/admin; HttpOnly; "
	    "SameSite=Strict%s", COOKIE, s->id, r->tls ? "; Secure" : "");
	web_header(r, "Set-Cookie", cookie);
	log_info("http-admin client=[%s] session started user=%s", r->addr,
	    s->user);
	return s;
}

/* session_get - r's session, made when r came with basic auth; NULL:
 * 500 sent */
static struct session *
session_get(struct web_req *r)
{
	struct session	*s;

	if ((s = session_of(r)) == NULL && (s = session_new(r)) == NULL)
		web_error(r, 500, "cannot start a session");
	return s;
}

/* ---------------------------------------------------------------- HTML */

/* esc - at most max octets of s into b, HTML-escaped, controls as '?' */
static int
esc(struct buf *b, const char *s, size_t max)
{
	const char	*e;
	char		 one[2] = { 0, 0 };
	size_t		 n;
	int		 rc = 0;

	if (s == NULL)
		return 0;
	for (n = 0; s[n] != '\0' && rc == 0; n++) {
		if (n == max) {
			rc = buf_puts(b, "\xe2\x80\xa6");
			break;
		}
		switch (s[n]) {
		case '&': e = "&amp;"; break;
		case '<': e = "&lt;"; break;
		case '>': e = "&gt;"; break;
		case '"': e = "&quot;"; break;
		case '\'': e = "&#39;"; break;
		case '\n': case '\t': one[0] = s[n]; e = one; break;
		default:
			one[0] = (unsigned char)s[n] < 0x20 || s[n] == 0x7f ?
			    '?' : s[n];
			e = one;
			break;
		}
		rc = buf_puts(b, e);
	}
	return rc;
}

/* url_put - s percent-encoded into b (a query value) */
static int
url_put(struct buf *b, const char *s)
{
	char	*e = evhttp_encode_uri(s);
	int	 rc;

	if (e == NULL)
		return -1;
	rc = buf_puts(b, e);
	free(e);
	return rc;
}

/* time_put - t as <time> in UTC */
static int
time_put(struct buf *b, double t)
{
	time_t		sec = (time_t)t;
	struct tm	tm;
	char		iso[32], txt[32];

	if (t <= 0 || gmtime_r(&sec, &tm) == NULL)
		return buf_puts(b, "-");
	strftime(iso, sizeof(iso), "%Y-%m-%dT%H:%M:%SZ", &tm);
	strftime(txt, sizeof(txt), "%Y-%m-%d %H:%M:%S UTC", &tm);
	return buf_printf(b, "<time datetime=\"%s\">%s</time>", iso, txt);
}

/* jstr - the string member key of o, "" when absent */
static const char *
jstr(json_t *o, const char *key)
{
	const char	*s = json_string_value(json_object_get(o, key));

	return s != NULL ? s : "";
}

/* send_page - admin.html around main (raw HTML), with code */
static void
send_page(struct web_req *r, struct session *s, int code, const char *title,
    const char *main)
{
	const struct web_asset	*t = NULL;
	const char		*p, *m;
	struct buf		 b;
	size_t			 i;
	int			 e = 0;

	for (i = 0; i < web_nassets; i++)
		if (strcmp(web_assets[i].name, "admin.html") == 0)
			t = &web_assets[i];
	if (t == NULL) {
		web_error(r, 500, "no page template");
		return;
	}
	buf_init(&b, PAGE_MAX);
	for (p = t->data; e == 0 && (m = strchr(p, '@')) != NULL; p = m) {
		e = buf_append(&b, p, (size_t)(m - p));
		if (strncmp(m, "@TITLE@", 7) == 0) {
			e |= esc(&b, title, FIELD_MAX);
			m += 7;
		} else if (strncmp(m, "@USER@", 6) == 0) {
			e |= esc(&b, s->user, FIELD_MAX);
			m += 6;
		} else if (strncmp(m, "@CSRF@", 6) == 0) {
			e |= buf_puts(&b, s->csrf);
			m += 6;
		} else if (strncmp(m, "@FLASH@", 7) == 0) {
			if (s->flash[0] != '\0') {
				e |= buf_printf(&b, "<p class=\"%s\" id=\"flash\">",
				    s->flash_ok ? "ok" : "error");
				e |= esc(&b, s->flash, sizeof(s->flash));
				e |= buf_puts(&b, "</p>");
				s->flash[0] = '\0';
			}
			m += 7;
		} else if (strncmp(m, "@MAIN@", 6) == 0) {
			e |= buf_puts(&b, main);
			m += 6;
		} else {
			e |= buf_puts(&b, "@");
			m++;
		}
	}
	if (e == 0)
		e = buf_puts(&b, p);
	if (e != 0) {
		buf_free(&b);
		web_error(r, 500, "cannot make the page");
		return;
	}
	web_header(r, "Content-Security-Policy", CSP);
	/* no-referrer would make browsers send "Origin: null" with the
	 * forms, which the Origin check refuses */
	web_header(r, "Referrer-Policy", "same-origin");
	web_header(r, "X-Frame-Options", "DENY");
	web_header(r, "Cache-Control", "no-store");
	web_send_body(r, code, "text/html; charset=utf-8", b.data, b.len);
	buf_free(&b);
}

/* error_page - an HTML error page with code and the text */
static void
error_page(struct web_req *r, struct session *s, int code, const char *text)
{
	struct buf	b;

	buf_init(&b, 4096);
	if (buf_printf(&b, "<h1>Error %d</h1>\n<p class=\"error\" id=\"error\">",
	    code) == -1 || esc(&b, text, 1000) == -1 ||
	    buf_puts(&b, "</p>\n<p><a href=\"/admin/\">Back to the queue</a>"
	    "</p>\n") == -1) {
		buf_free(&b);
		web_error(r, 500, "cannot make the page");
		return;
	}
	send_page(r, s, code, "Error", b.data);
	buf_free(&b);
}

/* ---------------------------------------------------------------- list */

/* qparam - the query parameter name, NULL when absent or empty */
static const char *
qparam(struct web_req *r, const char *name)
{
	const char	*v = web_query(r, name);

	return v != NULL && v[0] != '\0' ? v : NULL;
}

/* num - all digits, at most max; -1 otherwise */
static long long
num(const char *s, long long max)
{
	long long	v = 0;

	if (s == NULL || *s == '\0')
		return -1;
	for (; *s != '\0'; s++) {
		if (*s < '0' || *s > '9' || (v = v * 10 + (*s - '0')) > max)
			return -1;
	}
	return v;
}

static const char *const list_params[] = { "state", "sender", "recipient",
    "queue_id", "message_id", "status", "min_age", "max_age", NULL };
static const char *const statuses[] = { "queued", "deferred", "delivered",
    "relayed", "transferred", "failed", "expanded", NULL };

/* read_filter - r's query into f and *limit; else why (a 400) */
static const char *
read_filter(struct web_req *r, struct queue_filter *f, char *value,
    size_t valuelen, long long *limit)
{
	const char	*s, *slash;
	char		 kw[32];
	size_t		 i;

	queue_filter_any(f);
	if ((s = qparam(r, "state")) != NULL) {
		slash = strchr(s, '/');
		snprintf(kw, sizeof(kw), "%.*s", slash ? (int)(slash - s) :
		    (int)strlen(s), s);
		if ((f->state = msg_state_parse(kw)) < 0)
			return "unknown state";
		if (slash != NULL) {
			if ((size_t)snprintf(value, valuelen, "%s", slash + 1) >=
			    valuelen || mime_check_token(value,
			    strlen(value)) == -1)
				return "bad state value";
			f->value = value;
		}
	}
	f->sender = qparam(r, "sender");
	f->recipient = qparam(r, "recipient");
	f->queue_id = qparam(r, "queue_id");
	f->message_id = qparam(r, "message_id");
	if ((s = qparam(r, "status")) != NULL) {
		for (i = 0; statuses[i] != NULL; i++)
			if (strcmp(s, statuses[i]) == 0 &&
			    strcmp(rcpt_status_name((enum rcpt_status)i), s) == 0)
				break;
		if (statuses[i] == NULL)
			return "unknown status";
		f->status = (int)i;
	}
	if ((s = qparam(r, "min_age")) != NULL &&
	    (f->min_age = num(s, 999999999)) < 0)
		return "min_age: seconds expected";
	if ((s = qparam(r, "max_age")) != NULL &&
	    (f->max_age = num(s, 999999999)) < 0)
		return "max_age: seconds expected";
	*limit = LIST_DEFAULT;
	if ((s = qparam(r, "limit")) != NULL &&
	    (*limit = num(s, LIST_MAX)) < 1)
		return "limit: 1 to 100 expected";
	if ((s = qparam(r, "after")) != NULL && !qid_valid(s))
		return "after: a queue id expected";
	return NULL;
}

/* filter_form - the filter form, filled with r's query */
static int
filter_form(struct buf *b, struct web_req *r)
{
	static const char *const labels[] = { "State (e.g. quarantine)",
	    "Sender", "Recipient", "Queue id", "Message-ID", "Status",
	    "Min age (s)", "Max age (s)" };
	const char	*v;
	size_t		 i;
	int		 e = 0;

	e |= buf_puts(b, "<form class=\"filters\" method=\"get\" "
	    "action=\"/admin/\" id=\"filters\">\n");
	for (i = 0; list_params[i] != NULL; i++) {
		e |= buf_printf(b, "<p><label for=\"f-%s\">%s</label>",
		    list_params[i], labels[i]);
		if (strcmp(list_params[i], "status") == 0) {
			v = qparam(r, "status");
			e |= buf_puts(b, "<select id=\"f-status\" "
			    "name=\"status\"><option value=\"\">any</option>");
			for (size_t j = 0; statuses[j] != NULL; j++)
				e |= buf_printf(b, "<option%s>%s</option>",
				    v != NULL && strcmp(v, statuses[j]) == 0 ?
				    " selected" : "", statuses[j]);
			e |= buf_puts(b, "</select></p>\n");
			continue;
		}
		e |= buf_printf(b, "<input id=\"f-%s\" name=\"%s\" value=\"",
		    list_params[i], list_params[i]);
		e |= esc(b, qparam(r, list_params[i]), FIELD_MAX);
		e |= buf_puts(b, "\"></p>\n");
	}
	e |= buf_puts(b, "<p><button type=\"submit\">Filter</button> "
	    "<a href=\"/admin/\">clear</a></p>\n</form>\n");
	return e;
}

/* rcpts_summary - "addr (status)" of m's recipients, escaped */
static int
rcpts_summary(struct buf *b, json_t *m)
{
	json_t	*rc;
	size_t	 i;
	int	 e = 0;

	json_array_foreach(json_object_get(m, "recipients"), i, rc) {
		if (i == 5) {
			e |= buf_printf(b, "<br>and %zu more",
			    json_array_size(json_object_get(m,
			    "recipients")) - 5);
			break;
		}
		e |= buf_puts(b, i ? "<br>" : "");
		e |= esc(b, jstr(rc, "address"), FIELD_MAX);
		e |= buf_puts(b, " (");
		e |= esc(b, jstr(rc, "status"), 20);
		e |= buf_puts(b, ")");
	}
	return e;
}

/* admin_list - GET /admin/: the queue list */
void
web_admin_list(struct web_req *r)
{
	struct session	*s;
	struct queue_filter f;
	struct buf	 b;
	json_t		*page, *m;
	const char	*why, *unknown = NULL;
	char		 value[128], next[QID_SIZE + 1];
	static const char *const names[] = { "state", "sender", "recipient",
	    "queue_id", "message_id", "status", "min_age", "max_age",
	    "limit", "after", NULL };
	long long	 limit;
	size_t		 i;
	int		 e = 0;

	if ((s = session_get(r)) == NULL)
		return;
	if (web_query_check(r, names, &unknown) == -1) {
		error_page(r, s, 400, "unknown parameter");
		return;
	}
	if ((why = read_filter(r, &f, value, sizeof(value), &limit)) != NULL) {
		error_page(r, s, 400, why);
		return;
	}
	if ((page = queue_page_json(&f, qparam(r, "after"), (size_t)limit, next,
	    sizeof(next))) == NULL) {
		error_page(r, s, 500, "cannot list the queue");
		return;
	}
	buf_init(&b, PAGE_MAX);
	e |= buf_puts(&b, "<h1>Queue</h1>\n");
	e |= filter_form(&b, r);
	e |= buf_printf(&b, "<p id=\"count\">%zu message%s on this page</p>\n",
	    json_array_size(page), json_array_size(page) == 1 ? "" : "s");
	e |= buf_puts(&b, "<table id=\"queue\"><thead><tr><th>Queue id</th>"
	    "<th>Arrived</th><th>State</th><th>Sender</th><th>Recipients</th>"
	    "<th>Size</th></tr></thead><tbody>\n");
	json_array_foreach(page, i, m) {
		if (b.len > PAGE_SOFT) {
			e |= buf_puts(&b, "<tr><td colspan=\"6\">(page cut: "
			    "use a smaller limit)</td></tr>\n");
			break;
		}
		e |= buf_puts(&b, "<tr><td><a href=\"/admin/m/");
		e |= esc(&b, jstr(m, "queue_id"), 40);
		e |= buf_puts(&b, "\">");
		e |= esc(&b, jstr(m, "queue_id"), 40);
		e |= buf_puts(&b, "</a></td><td>");
		e |= time_put(&b, (double)json_integer_value(
		    json_object_get(m, "arrival_time")));
		e |= buf_puts(&b, "</td><td class=\"state\">");
		e |= esc(&b, jstr(m, "state"), 20);
		if (jstr(m, "state_value")[0] != '\0') {
			e |= buf_puts(&b, "/");
			e |= esc(&b, jstr(m, "state_value"), 64);
		}
		e |= buf_puts(&b, "</td><td>");
		e |= esc(&b, jstr(m, "sender")[0] ? jstr(m, "sender") : "<>",
		    FIELD_MAX);
		e |= buf_puts(&b, "</td><td>");
		e |= rcpts_summary(&b, m);
		e |= buf_printf(&b, "</td><td>%lld</td></tr>\n", (long long)
		    json_integer_value(json_object_get(m, "size")));
	}
	e |= buf_puts(&b, "</tbody></table>\n");
	if (next[0] != '\0') {
		e |= buf_puts(&b, "<p><a id=\"next\" href=\"/admin/?");
		for (i = 0; list_params[i] != NULL; i++) {
			if (qparam(r, list_params[i]) == NULL)
				continue;
			e |= buf_printf(&b, "%s=", list_params[i]);
			e |= url_put(&b, qparam(r, list_params[i]));
			e |= buf_puts(&b, "&amp;");
		}
		e |= buf_printf(&b, "limit=%lld&amp;after=%s\">Next page"
		    "</a></p>\n", limit, next);
	}
	json_decref(page);
	if (e != 0)
		error_page(r, s, 500, "cannot make the page");
	else
		send_page(r, s, 200, "Queue", b.data);
	buf_free(&b);
}

/* -------------------------------------------------------------- detail */

/* row - <tr><th>name</th><td>value escaped</td></tr> */
static int
row(struct buf *b, const char *name, const char *value)
{
	int	e = 0;

	e |= buf_printf(b, "<tr><th>%s</th><td>", name);
	e |= esc(b, value, FIELD_MAX);
	e |= buf_puts(b, "</td></tr>\n");
	return e;
}

/*
 * allowed_actions - which of m's buttons to show, as queue_action's and
 * queue_flush's rules (queue/queue_state.c) would answer them: a
 * finished message (no recipient queued or deferred) none; hold when
 * not held (normal, outbound); release from quarantine, moderation,
 * other, timed; flush with a deferred recipient; delete while
 * unfinished.  The server refuses the others anyway (409).
 */
static void
allowed_actions(json_t *m, int *hold, int *release, int *flush, int *del)
{
	const char	*st = jstr(m, "state"), *rs;
	json_t		*rc;
	size_t		 i;
	int		 open = 0, deferred = 0;

	json_array_foreach(json_object_get(m, "recipients"), i, rc) {
		rs = jstr(rc, "status");
		if (strcmp(rs, "queued") == 0 || strcmp(rs, "deferred") == 0)
			open = 1;
		if (strcmp(rs, "deferred") == 0)
			deferred = 1;
	}
	*hold = open && (strcmp(st, "normal") == 0 ||
	    strcmp(st, "outbound") == 0);
	*release = open && (strcmp(st, "quarantine") == 0 ||
	    strcmp(st, "moderation") == 0 || strcmp(st, "other") == 0 ||
	    strcmp(st, "timed") == 0);
	*flush = open && deferred;
	*del = open;
}

/* action_forms - the buttons m's state allows, each a form with the
 * token; a note names the ones left out */
static int
action_forms(struct buf *b, const char *qid, const char *csrf, json_t *m)
{
	static const struct { const char *act, *label, *extra; } a[] = {
		{ "hold", "Hold", "" },
		{ "release", "Release", "" },
		{ "flush", "Flush (retry now)", "" },
		{ "delete", "Delete", "" },
		{ "delete", "Delete with bounce",
		  "<input type=\"hidden\" name=\"bounce\" value=\"1\">" },
	};
	const char	*why[5];
	size_t		 i, nout = 0;
	int		 ok[5], e = 0;

	allowed_actions(m, &ok[0], &ok[1], &ok[2], &ok[3]);
	ok[4] = ok[3];
	if (!ok[3]) {
		return buf_puts(b, "<p class=\"note\" id=\"actions-note\">"
		    "Finished: no actions (the message is no longer in the "
		    "queue).</p>\n");
	}
	why[0] = "hold (already held)";
	why[1] = ok[0] ? "release (not held)" :
	    "release (it waits for its filter)";
	why[2] = "flush (no deferred recipient)";
	e |= buf_puts(b, "<div class=\"actions\">\n");
	for (i = 0; i < sizeof(a) / sizeof(a[0]); i++) {
		if (!ok[i])
			continue;
		e |= buf_printf(b, "<form method=\"post\" "
		    "action=\"/admin/m/%s/%s\"><input type=\"hidden\" "
		    "name=\"csrf\" value=\"%s\">%s<button type=\"submit\" "
		    "id=\"do-%s%s\">%s</button></form>\n", qid, a[i].act, csrf,
		    a[i].extra, a[i].act, a[i].extra[0] ? "-bounce" : "",
		    a[i].label);
	}
	e |= buf_puts(b, "</div>\n");
	for (i = 0; i < 3; i++) {
		if (ok[i])
			continue;
		e |= buf_puts(b, nout++ == 0 ? "<p class=\"note\" "
		    "id=\"actions-note\">Not offered in this state: " : ", ");
		e |= buf_puts(b, why[i]);
	}
	if (nout > 0)
		e |= buf_puts(b, ".</p>\n");
	return e;
}

/* detail_word - the value of "key=" in an event detail ("kind=K qid=Q
 * to=<a> rcpts=<a>,<b>") into out (up to the next space; rcpts: to the
 * end); "" when absent */
static const char *
detail_word(const char *detail, const char *key, char *out, size_t outlen)
{
	const char	*p = detail;
	size_t		 kl = strlen(key), n;

	out[0] = '\0';
	while ((p = strstr(p, key)) != NULL) {
		if ((p == detail || p[-1] == ' ') && p[kl] == '=')
			break;
		p += kl;
	}
	if (p == NULL)
		return out;
	p += kl + 1;
	n = strcmp(key, "rcpts") == 0 ? strlen(p) : strcspn(p, " ");
	if (n >= outlen)
		n = outlen - 1;
	memcpy(out, p, n);
	out[n] = '\0';
	return out;
}

/* dsns_sent - the "DSNs sent" section: m's "dsn" events (queue_notice.c:
 * "kind=K qid=NEW [to=<postmaster>] rcpts=<a>,...") */
static int
dsns_sent(struct buf *b, json_t *m)
{
	json_t		*ev;
	char		 w[FIELD_MAX + 1];
	size_t		 i, n = 0;
	int		 e = 0;

	e |= buf_puts(b, "<h2>DSNs sent</h2>\n");
	json_array_foreach(json_object_get(m, "events"), i, ev) {
		if (strcmp(jstr(ev, "kind"), "dsn") != 0)
			continue;
		if (n++ == 0)
			e |= buf_puts(b, "<table id=\"dsns\"><thead><tr><th>Time"
			    "</th><th>Kind</th><th>DSN queue id</th><th>To</th>"
			    "<th>About</th></tr></thead><tbody>\n");
		if (b->len > (PAGE_SOFT * 3) / 4) {
			e |= buf_puts(b, "<tr><td colspan=\"5\">(more: see "
			    "waymark show)</td></tr>\n");
			break;
		}
		e |= buf_puts(b, "<tr><td>");
		e |= time_put(b, json_number_value(json_object_get(ev,
		    "time")));
		e |= buf_puts(b, "</td><td>");
		e |= esc(b, detail_word(jstr(ev, "detail"), "kind", w,
		    sizeof(w)), 20);
		e |= buf_puts(b, "</td><td>");
		detail_word(jstr(ev, "detail"), "qid", w, sizeof(w));
		if (qid_valid(w))
			e |= buf_printf(b, "<a href=\"/admin/m/%s\">%s</a>", w,
			    w);
		else
			e |= esc(b, w, 40);
		e |= buf_puts(b, "</td><td>");
		detail_word(jstr(ev, "detail"), "to", w, sizeof(w));
		e |= esc(b, w[0] != '\0' ? w : "the sender", FIELD_MAX);
		e |= buf_puts(b, "</td><td>");
		e |= esc(b, detail_word(jstr(ev, "detail"), "rcpts", w,
		    sizeof(w)), FIELD_MAX);
		e |= buf_puts(b, "</td></tr>\n");
	}
	if (n == 0)
		e |= buf_puts(b, "<p id=\"dsns\">None.</p>\n");
	else if (e == 0)
		e |= buf_puts(b, "</tbody></table>\n");
	return e;
}

/* message_text - the trace fields and header (and, quarantined, the
 * body) of an unfinished message, as text */
static int
message_text(struct buf *b, const char *qid, int quarantined)
{
	char	*text = NULL, why[256], *sep, save;
	size_t	 len = 0, hlen;
	int	 e = 0;

	if (queue_message_text(qid, &text, &len, why, sizeof(why)) != 0)
		return 0;	/* finished: no stored text */
	sep = strstr(text, "\r\n\r\n");
	hlen = sep != NULL ? (size_t)(sep - text) + 2 : len;
	save = text[hlen];
	text[hlen] = '\0';
	e |= buf_puts(b, "<h2>Trace fields and header</h2>\n"
	    "<pre class=\"body\" id=\"header\">");
	e |= esc(b, text, HEAD_MAX);
	e |= buf_puts(b, "</pre>\n");
	text[hlen] = save;
	if (quarantined && sep != NULL) {
		e |= buf_puts(b, "<h2>Body (as text, never rendered)</h2>\n"
		    "<pre class=\"body\" id=\"body\">");
		e |= esc(b, sep + 4, BODY_MAX);
		e |= buf_puts(b, "</pre>\n");
	}
	free(text);
	return e;
}

/* admin_show - GET /admin/m/QID */
void
web_admin_show(struct web_req *r)
{
	struct session	*s;
	struct buf	 b;
	json_t		*m, *rc, *ev, *reply;
	const char	*st;
	char		 qid[QID_SIZE + 1], sz[32];
	size_t		 i, n;
	int		 e = 0;

	if ((s = session_get(r)) == NULL)
		return;
	if (!qid_valid(r->capture) || (m = queue_show_json(r->capture)) ==
	    NULL) {
		error_page(r, s, 404, "no such message");
		return;
	}
	if ((size_t)snprintf(qid, sizeof(qid), "%s", r->capture) >= sizeof(qid))
		qid[0] = '\0';
	st = jstr(m, "state");
	buf_init(&b, PAGE_MAX);
	e |= buf_printf(&b, "<h1>Message %s</h1>\n", qid);
	e |= action_forms(&b, qid, s->csrf, m);
	e |= buf_puts(&b, "<h2>Envelope</h2>\n<table id=\"envelope\">\n");
	e |= row(&b, "Sender", jstr(m, "sender")[0] ? jstr(m, "sender") :
	    "<>");
	e |= buf_puts(&b, "<tr><th>Arrived</th><td>");
	e |= time_put(&b, (double)json_integer_value(json_object_get(m,
	    "arrival_time")));
	e |= buf_puts(&b, "</td></tr>\n");
	snprintf(sz, sizeof(sz), "%lld", (long long)json_integer_value(
	    json_object_get(m, "size")));
	e |= row(&b, "Size", sz);
	e |= buf_puts(&b, "<tr><th>State</th><td id=\"state\">");
	e |= esc(&b, st, 20);
	if (jstr(m, "state_value")[0] != '\0') {
		e |= buf_puts(&b, "/");
		e |= esc(&b, jstr(m, "state_value"), 64);
	}
	e |= buf_puts(&b, "</td></tr>\n");
	e |= row(&b, "State reason", jstr(m, "state_reason"));
	e |= row(&b, "Message-ID", jstr(m, "message_id"));
	e |= row(&b, "ENVID", jstr(m, "envid"));
	e |= row(&b, "Client", jstr(m, "client_address"));
	e |= row(&b, "HELO", jstr(m, "helo"));
	e |= row(&b, "Tracked", json_is_true(json_object_get(m, "tracked")) ?
	    "yes" : "no");
	e |= buf_puts(&b, "</table>\n<h2>Recipients</h2>\n<table "
	    "id=\"recipients\"><thead><tr><th>Address</th><th>Status</th>"
	    "<th>Attempts</th><th>Next attempt</th><th>Last reply</th>"
	    "<th>Remote MTA</th></tr></thead><tbody>\n");
	json_array_foreach(json_object_get(m, "recipients"), i, rc) {
		if (b.len > PAGE_SOFT / 2) {
			e |= buf_puts(&b, "<tr><td colspan=\"6\">(more not "
			    "shown)</td></tr>\n");
			break;
		}
		e |= buf_puts(&b, "<tr><td>");
		e |= esc(&b, jstr(rc, "address"), FIELD_MAX);
		e |= buf_puts(&b, "</td><td class=\"status\">");
		e |= esc(&b, jstr(rc, "status"), 20);
		e |= buf_printf(&b, "</td><td>%lld</td><td>", (long long)
		    json_integer_value(json_object_get(rc, "attempts")));
		e |= time_put(&b, (double)json_integer_value(
		    json_object_get(rc, "next_attempt")));
		e |= buf_puts(&b, "</td><td>");
		if ((reply = json_object_get(rc, "last_reply")) != NULL &&
		    json_is_object(reply)) {
			e |= buf_printf(&b, "%lld ", (long long)
			    json_integer_value(json_object_get(reply, "code")));
			e |= esc(&b, jstr(reply, "enhanced"), 20);
			e |= buf_puts(&b, " ");
			e |= esc(&b, jstr(reply, "text"), FIELD_MAX);
		}
		e |= buf_puts(&b, "</td><td>");
		e |= esc(&b, jstr(rc, "remote_mta"), FIELD_MAX);
		e |= buf_puts(&b, "</td></tr>\n");
	}
	e |= buf_puts(&b, "</tbody></table>\n<h2>Events</h2>\n<table "
	    "id=\"events\"><tbody>\n");
	n = json_array_size(json_object_get(m, "events"));
	json_array_foreach(json_object_get(m, "events"), i, ev) {
		if (b.len > (PAGE_SOFT * 3) / 4) {
			e |= buf_printf(&b, "<tr><td colspan=\"3\">(%zu more "
			    "events: see waymark show)</td></tr>\n", n - i);
			break;
		}
		e |= buf_puts(&b, "<tr><td>");
		e |= time_put(&b, json_number_value(json_object_get(ev,
		    "time")));
		e |= buf_puts(&b, "</td><td>");
		e |= esc(&b, jstr(ev, "kind"), 40);
		e |= buf_puts(&b, "</td><td>");
		e |= esc(&b, jstr(ev, "detail"), FIELD_MAX);
		e |= buf_puts(&b, "</td></tr>\n");
	}
	e |= buf_puts(&b, "</tbody></table>\n");
	e |= dsns_sent(&b, m);
	if (e == 0 && b.len < PAGE_SOFT / 2)
		e |= message_text(&b, qid, strcmp(st, "quarantine") == 0);
	json_decref(m);
	if (e != 0)
		error_page(r, s, 500, "cannot make the page");
	else
		send_page(r, s, 200, qid, b.data);
	buf_free(&b);
}

/* ------------------------------------------------------------- actions */

/* form_check - r's form carries s's token; else a 403 page sent, -1;
 * *bounce gets the bounce field (0 / 1) */
static int
form_check(struct web_req *r, struct session *s, int *bounce)
{
	struct evkeyvalq	 q;
	const char		*tok, *bv;
	char			*body;
	size_t			 len;
	int			 ok = 0;

	TAILQ_INIT(&q);
	*bounce = 0;
	if ((body = web_req_body(r, &len)) != NULL &&
	    evhttp_parse_query_str(body, &q) == 0 &&
	    (tok = evhttp_find_header(&q, "csrf")) != NULL &&
	    strlen(tok) == SID_LEN &&
	    CRYPTO_memcmp(tok, s->csrf, SID_LEN) == 0) {
		ok = 1;
		bv = evhttp_find_header(&q, "bounce");
		*bounce = bv != NULL && strcmp(bv, "1") == 0;
	}
	evhttp_clear_headers(&q);
	free(body);
	if (!ok) {
		log_info("http-admin client=[%s] refused user=%s reason=csrf",
		    r->addr, s->user);
		error_page(r, s, 403, "the form's token is missing or wrong "
		    "(reload the page and try again)");
		return -1;
	}
	return 0;
}

/* redirect - 303 to the message's page */
static void
redirect(struct web_req *r, const char *qid)
{
	char	loc[WEB_PATH_MAX + 16];

	snprintf(loc, sizeof(loc), "/admin/m/%s", qid);
	web_header(r, "Location", loc);
	web_header(r, "Cache-Control", "no-store");
	web_send_body(r, 303, NULL, NULL, 0);
}

/* the answer to an action, once on stable storage */
struct awaitn {
	struct web_req	*r;
	char		 sid[SID_LEN + 1];
	const char	*name;
};

/* flash - set the one-time message of the session sid */
static struct session *
flash(const char *sid, int ok, const char *fmt, const char *a,
    const char *b)
{
	struct session	*s = session_find(sid);

	if (s != NULL) {
		snprintf(s->flash, sizeof(s->flash), fmt, a, b);
		s->flash_ok = ok;
	}
	return s;
}

/* action_done - queue_action's completion */
static void
action_done(void *arg, int rc, const char *msg)
{
	struct awaitn	*w = arg;
	struct web_req	*r = w->r;
	struct session	*s;

	s = flash(w->sid, rc == 0, rc == 0 ? "%s: %s" : "%s failed: %s",
	    w->name, msg);
	free(w);
	if (s == NULL) {
		web_error(r, 401, "session ended");
		return;
	}
	redirect(r, r->capture);
}

/* admin_action - POST /admin/m/QID/ACTION */
void
web_admin_action(struct web_req *r)
{
	struct session	*s;
	struct awaitn	*w;
	const char	*name;
	char		 msg[256], actor[WEB_USER_MAX + 32];
	enum queue_action a;
	json_t		*m;
	int		 bounce, rc, n;

	if ((s = session_of(r)) == NULL) {
		/* basic auth alone has no token: refused below */
		if ((s = session_new(r)) == NULL) {
			web_error(r, 500, "cannot start a session");
			return;
		}
	}
	if (form_check(r, s, &bounce) == -1)
		return;
	name = strrchr(r->path, '/') + 1;
	if (!qid_valid(r->capture)) {
		error_page(r, s, 404, "no such message");
		return;
	}
	snprintf(actor, sizeof(actor), "operator %s via http", r->user);
	if (strcmp(name, "flush") == 0) {
		if ((n = queue_flush(r->capture)) < 0) {
			if ((m = queue_show_json(r->capture)) != NULL) {
				json_decref(m);
				error_page(r, s, 409, "the message is finished: "
				    "no longer in the queue");
			} else
				error_page(r, s, 404, "no such message");
			return;
		}
		log_info("http-admin: flush %s by %s (%d recipient%s)",
		    r->capture, r->user, n, n == 1 ? "" : "s");
		snprintf(s->flash, sizeof(s->flash), "flush: %d recipient%s "
		    "due now", n, n == 1 ? "" : "s");
		s->flash_ok = 1;
		redirect(r, r->capture);
		return;
	}
	if (strcmp(name, "hold") == 0)
		a = QA_HOLD;
	else if (strcmp(name, "release") == 0)
		a = QA_RELEASE;
	else
		a = bounce ? QA_BOUNCE : QA_DELETE;
	if ((w = calloc(1, sizeof(*w))) == NULL) {
		error_page(r, s, 500, "out of memory");
		return;
	}
	w->r = r;
	w->name = a == QA_BOUNCE ? "delete with bounce" : name;
	memcpy(w->sid, s->id, sizeof(w->sid));
	rc = queue_action(r->capture, a, actor, msg, sizeof(msg), action_done,
	    w);
	if (rc == 0) {
		log_info("http-admin: %s%s %s by %s", name, a == QA_BOUNCE ?
		    " (bounce)" : "", r->capture, r->user);
		return;		/* action_done answers */
	}
	free(w);
	if (rc == QA_UNKNOWN) {
		if ((m = queue_show_json(r->capture)) != NULL) {
			json_decref(m);
			error_page(r, s, 409, "the message is finished: no "
			    "longer in the queue");
		} else
			error_page(r, s, 404, msg);
	} else if (rc == QA_REFUSED)
		error_page(r, s, 409, msg);
	else
		error_page(r, s, 500, msg);
}

/* admin_logout - POST /admin/logout: the session ends */
void
web_admin_logout(struct web_req *r)
{
	struct session	*s;
	int		 bounce;

	if ((s = session_get(r)) == NULL || form_check(r, s, &bounce) == -1)
		return;
	log_info("http-admin client=[%s] session ended user=%s", r->addr,
	    s->user);
	session_end(s);
	web_header(r, "Set-Cookie", COOKIE "=; Path=/admin; HttpOnly; "
	    "SameSite=Strict; Max-Age=0");
	web_send_body(r, 200, "text/plain; charset=utf-8", "Signed out.\n",
	    12);
}

/* admin_root - GET /admin: to /admin/ */
void
web_admin_root(struct web_req *r)
{
	web_header(r, "Location", "/admin/");
	web_send_body(r, 303, NULL, NULL, 0);
}
