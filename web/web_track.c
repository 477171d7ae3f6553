#include "config.h"
/*
 * web_track.c - the sender view (README "Tracking page"), on http and
 * http_admin: POST /api/v1/track (JSON or form body {envid, secret}:
 * the object of `waymark track --json`), GET / and GET /t/ENVID (the
 * form; the page's script takes the secret from the link's #fragment,
 * which never reaches a server, and posts the form), POST /t (the form
 * post: a server-rendered timeline, times in UTC, no script needed),
 * GET /assets/NAME (style and script, compiled in from web/assets/).
 * Access (RFC 3888 4): as MTQP's TRACK.  The first hop is this daemon's
 *       own store, asked directly (track/'s trk_auth_find and
 *       trk_status_write, as trk_answer.c does); unknown ENVID, wrong
 *       secret, expired record and an address over mtqp_auth_failures
 *       get one answer, byte for byte: 404 {"error": "no tracking
 *       information", "code": 404} (the page: its 404 page).  A miss
 *       counts in MTQP's per-address counter (trk_auth_failed).
 * Next hops: the walk of track/trk_walk.c on the daemon's loop with a
 *       shared MTQP client (SRV _mtqp._tcp.H, else H on 1038; STARTTLS
 *       when offered, best effort, as chaining), at most TRK_MAX_HOPS
 *       deep, TRK_MAX_HOSTS hosts, the whole walk within WALK_BUDGET_MS.
 * Secret: base64 of A (as ~/.waymark/keys and MTQP) or base64url
 *       (the link's), '=' padding optional.  Never logged.
 * Log: "http track client=[A] envid=E result=found qid=Q" or
 *       "result=noinfo ...", like MTQP's; then the request's line.
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
#include <openssl/rand.h>

#include "common/buf.h"
#include "common/cfg.h"
#include "common/log.h"
#include "common/syntax.h"
#include "common/util.h"
#include "track/track.h"
#include "track/trk_client.h"
#include "track/trk_walk.h"
#include "web/web_int.h"

#define NOINFO_JSON	"{\"error\":\"no tracking information\",\"code\":404}\n"
#define WALK_BUDGET_MS	110000		/* the whole walk: within 2 min */
#define SECRET_IN_MAX	1100		/* base64 text of TRK secret */
#define SECRET_A_MAX	768		/* decoded octets (as MTQP's) */
#define LOCAL_MAX	(256u * 1024)	/* this hop's answer body */
#define PAGE_MAX	(256u * 1024)	/* a rendered page */
#define CSP		"default-src 'self'; script-src 'self'; " \
			"style-src 'self'; img-src 'self'; object-src 'none'; " \
			"base-uri 'none'; form-action 'self'; " \
			"frame-ancestors 'none'"

/* one tracking request in flight */
struct wtrack {
	struct web_req	*r;
	int		 html;		/* POST /t: answer the page */
	struct walk	 w;
	char		 envid[ESMTP_ENVID_MAX + 1];
	char		 qid[QID_SIZE];		/* the message found here */
	char		 secret[SECRET_IN_MAX];	/* base64 of A, for next hops */
	struct buf	 local;			/* this hop's answer body */
	struct wtrack	*prev, *next;
};

static struct wtrack	*inflight;
static struct trk_client *cli;		/* shared by the walks */
static int		 cli_stale;	/* reload: a new one when idle */

/* ------------------------------------------------------------- helpers */

/* page_headers - the headers of every HTML/asset answer */
static void
page_headers(struct web_req *r)
{
	web_header(r, "Content-Security-Policy", CSP);
	web_header(r, "Referrer-Policy", "no-referrer");
	web_header(r, "X-Frame-Options", "DENY");
}

/* etag_of - a strong validator of data: "FNV-1a 64 in hex" */
static void
etag_of(const char *data, size_t len, char *out, size_t outlen)
{
	uint64_t	h = 14695981039346656037ULL;
	size_t		i;

	for (i = 0; i < len; i++) {
		h ^= (unsigned char)data[i];
		h *= 1099511628211ULL;
	}
	snprintf(out, outlen, "\"%016llx-%zx\"", (unsigned long long)h, len);
}

/* send_cached - data with ETag and Cache-Control; 304 when the client
 * has it (If-None-Match) */
static void
send_cached(struct web_req *r, const char *type, const char *data,
    size_t len)
{
	const char	*inm;
	char		 etag[48];

	etag_of(data, len, etag, sizeof(etag));
	page_headers(r);
	web_header(r, "ETag", etag);
	web_header(r, "Cache-Control", "no-cache");
	if ((inm = web_req_header(r, "If-None-Match")) != NULL &&
	    (strstr(inm, etag) != NULL || strcmp(inm, "*") == 0)) {
		web_send_body(r, 304, NULL, NULL, 0);
		return;
	}
	web_send_body(r, 200, type, data, len);
}

/* asset - the compiled-in file name, NULL when none */
static const struct web_asset *
asset(const char *name)
{
	size_t	i;

	for (i = 0; i < web_nassets; i++)
		if (strcmp(web_assets[i].name, name) == 0)
			return &web_assets[i];
	return NULL;
}

/* html_char - c into b, HTML-escaped */
static int
html_char(struct buf *b, char c)
{
	char		 one[2] = { c, 0 };
	const char	*e;

	switch (c) {
	case '&': e = "&amp;"; break;
	case '<': e = "&lt;"; break;
	case '>': e = "&gt;"; break;
	case '"': e = "&quot;"; break;
	case '\'': e = "&#39;"; break;
	default: e = one; break;
	}
	return buf_puts(b, e);
}

/*
 * utc_date - the length of the UTC date track_fmt_date writes ("Thu, 1
 * May 2025 10:00:00 +0000") at p, its "YYYY-MM-DDTHH:MM:SSZ" in iso
 * (at least 21 octets); 0 when p does not start with one
 */
static size_t
utc_date(const char *p, char *iso)
{
	static const char *const days = "SunMonTueWedThuFriSat";
	static const char *const months = "JanFebMarAprMayJunJulAugSepOctNovDec";
	const char	*q = p, *mon;
	char		 day[3];
	int		 i;

#define DIG(c)	((c) >= '0' && (c) <= '9')
	for (i = 0; i < 7; i++)
		if (strncmp(q, days + 3 * i, 3) == 0)
			break;
	if (i == 7 || strncmp(q + 3, ", ", 2) != 0 || !DIG(q[5]))
		return 0;
	q += 5;
	day[0] = DIG(q[1]) ? *q++ : '0';
	day[1] = *q++;
	day[2] = '\0';
	if (*q++ != ' ' || strnlen(q, 23) < 23 || q[3] != ' ')
		return 0;
	for (mon = months; *mon != '\0'; mon += 3)
		if (strncmp(q, mon, 3) == 0)
			break;
	if (*mon == '\0')
		return 0;
	q += 4;
	for (i = 0; i < 4; i++)
		if (!DIG(q[i]))
			return 0;
	if (q[4] != ' ' || !DIG(q[5]) || !DIG(q[6]) || q[7] != ':' ||
	    !DIG(q[8]) || !DIG(q[9]) || q[10] != ':' || !DIG(q[11]) ||
	    !DIG(q[12]) || strncmp(q + 13, " +0000", 6) != 0)
		return 0;
	snprintf(iso, 21, "%.4s-%02d-%.2sT%.8sZ", q,
	    (int)((mon - months) / 3 + 1), day, q + 5);
#undef DIG
	return (size_t)(q + 19 - p);
}

/* html_escape - s into b, HTML-escaped (controls as U+FFFD's '?'); with
 * times, each UTC date of track_fmt_date in a <time datetime="...">
 * element (for the script) */
static int
html_escape(struct buf *b, const char *s, int times)
{
	char	*safe, iso[24];
	size_t	 n;
	int	 rc = 0;

	if (s == NULL)
		return 0;
	if ((safe = strdup(s)) == NULL)
		return -1;
	text_safe(safe);
	for (s = safe; *s != '\0' && rc == 0; ) {
		if (!times || (n = utc_date(s, iso)) == 0) {
			rc = html_char(b, *s++);
			continue;
		}
		if (buf_printf(b, "<time datetime=\"%s\">%.*s</time>", iso,
		    (int)n, s) == -1)
			rc = -1;
		s += n;
	}
	free(safe);
	return rc;
}

/* html_put - s into b, HTML-escaped */
static int
html_put(struct buf *b, const char *s)
{
	return html_escape(b, s, 0);
}

/* html_put_times - html_put, with the UTC dates as <time> elements */
static int
html_put_times(struct buf *b, const char *s)
{
	return html_escape(b, s, 1);
}

/* page - the template with ENVID and the result section (raw HTML);
 * sent with code; no-store when a result is shown */
static void
page(struct web_req *r, int code, const char *envid, const char *result)
{
	const struct web_asset	*t = asset("page.html");
	const char		*p, *m;
	struct buf		 b;

	if (t == NULL) {
		web_error(r, 500, "no page template");
		return;
	}
	buf_init(&b, PAGE_MAX);
	for (p = t->data; (m = strchr(p, '@')) != NULL; p = m) {
		if (buf_append(&b, p, (size_t)(m - p)) == -1)
			goto fail;
		if (strncmp(m, "@ENVID@", 7) == 0) {
			if (html_put(&b, envid) == -1)
				goto fail;
			m += 7;
		} else if (strncmp(m, "@RESULT@", 8) == 0) {
			if (result != NULL && buf_puts(&b, result) == -1)
				goto fail;
			m += 8;
		} else {
			if (buf_puts(&b, "@") == -1)
				goto fail;
			m++;
		}
	}
	if (buf_puts(&b, p) == -1)
		goto fail;
	if (result == NULL && code == 200)
		send_cached(r, "text/html; charset=utf-8", b.data, b.len);
	else {
		page_headers(r);
		web_header(r, "Cache-Control", "no-store");
		web_send_body(r, code, "text/html; charset=utf-8", b.data,
		    b.len);
	}
	buf_free(&b);
	return;
fail:
	buf_free(&b);
	web_error(r, 500, "cannot make the page");
}

/* --------------------------------------------------------------- input */

/* secret_norm - s (base64 or base64url, padding optional, surrounding
 * white space ignored) decoded into a; its standard base64 (padded)
 * into b64; decoded length, or -1 */
static int
secret_norm(const char *s, unsigned char *a, size_t alen, char *b64,
    size_t b64len)
{
	char	t[SECRET_IN_MAX + 4];
	size_t	n = 0, len;
	int	r;

	while (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n')
		s++;
	len = strlen(s);
	while (len > 0 && strchr(" \t\r\n", s[len - 1]) != NULL)
		len--;
	while (len > 0 && s[len - 1] == '=')
		len--;
	if (len == 0 || len > SECRET_IN_MAX || len % 4 == 1)
		return -1;
	for (; n < len; n++)
		t[n] = s[n] == '-' ? '+' : s[n] == '_' ? '/' : s[n];
	while (n % 4 != 0)
		t[n++] = '=';
	r = base64_decode(t, n, a, alen);
	if (r > 0 && base64_encode(a, (size_t)r, b64, b64len) == -1)
		r = -1;
	explicit_bzero(t, sizeof(t));
	return r;
}

/* form_get - the decoded field name of an x-www-form-urlencoded body */
static char *
form_get(const char *body, const char *name)
{
	struct evkeyvalq	 q;
	const char		*v;
	char			*r = NULL;

	TAILQ_INIT(&q);
	if (evhttp_parse_query_str(body, &q) == 0 &&
	    (v = evhttp_find_header(&q, name)) != NULL)
		r = strdup(v);
	evhttp_clear_headers(&q);
	return r;
}

/* read_input - envid and secret from r's body (JSON, or a form);
 * 0, or -1 with the reason in why */
static int
read_input(struct web_req *r, int form, char *envid, size_t envidlen,
    char **secret, const char **why)
{
	const char	*ct = web_req_header(r, "Content-Type");
	char		*body, *e = NULL;
	size_t		 len = 0;
	json_t		*j;
	json_error_t	 jerr;
	int		 rc = -1;

	*secret = NULL;
	*why = "envid and secret expected";
	if ((body = web_req_body(r, &len)) == NULL) {
		*why = "cannot read the request";
		return -1;
	}
	if (!form && (ct == NULL || strncasecmp(ct, "application/json",
	    16) == 0)) {
		if ((j = json_loadb(body, len, 0, &jerr)) == NULL)
			*why = "bad JSON";
		else {
			const char *a = json_string_value(json_object_get(j,
			    "envid"));
			const char *b = json_string_value(json_object_get(j,
			    "secret"));

			if (a != NULL && b != NULL && (e = strdup(a)) != NULL)
				*secret = strdup(b);
			json_decref(j);
		}
	} else if (strlen(body) == len) {
		e = form_get(body, "envid");
		*secret = form_get(body, "secret");
	}
	explicit_bzero(body, len);
	free(body);
	if (e != NULL && *secret != NULL) {
		if (!envid_ok(e) || strlen(e) >= envidlen)
			*why = "envid: 1 to 100 printable characters expected";
		else {
			memcpy(envid, e, strlen(e) + 1);
			rc = 0;
		}
	}
	free(e);
	if (rc == -1 && *secret != NULL) {
		explicit_bzero(*secret, strlen(*secret));
		free(*secret);
		*secret = NULL;
	}
	return rc;
}

/* -------------------------------------------------------------- output */

/* noinfo - the one answer to unknown / wrong / expired / limited */
static void
noinfo(struct web_req *r, int html, const char *envid)
{
	if (html) {
		page(r, 404, envid, "<p class=\"error\" id=\"noinfo\">No "
		    "tracking information.</p>\n");
		return;
	}
	web_header(r, "Cache-Control", "no-store");
	web_send_body(r, 404, "application/json; charset=utf-8",
	    NOINFO_JSON, sizeof(NOINFO_JSON) - 1);
}

/* iso_time - "YYYY-MM-DDTHH:MM:SSZ" of t */
static void
iso_time(time_t t, char *out, size_t outlen)
{
	struct tm	tm;

	if (gmtime_r(&t, &tm) == NULL || strftime(out, outlen,
	    "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(out, outlen, "%lld", (long long)t);
}

/* render - the timeline of w as HTML into b (times in UTC, each a <time>
 * element the script shows in local time, rewriting #tz-note); 0 or -1 */
static int
render(const struct walk *w, struct buf *b)
{
	const struct hop	*h;
	const struct trk_rcpt	*rc;
	char			 line[1400], d[64], iso[32];
	size_t			 i, j, k;
	int			 e = 0;

#define P(s)	do { if (e == 0 && buf_puts(b, (s)) == -1) e = -1; } while (0)
#define H(s)	do { if (e == 0 && html_put(b, (s)) == -1) e = -1; } while (0)
#define T(s)	do { if (e == 0 && html_put_times(b, (s)) == -1) e = -1; } while (0)
	P("<section id=\"result\">\n<h2>Tracking ");
	H(w->envid);
	P("</h2>\n<ol class=\"hops\">\n");
	for (i = 0; i < w->nhops; i++) {
		h = &w->hops[i];
		snprintf(d, sizeof(d), "%zu", i + 1);
		if (h->result != TRK_OK) {
			track_failed_hop_text(h, line, sizeof(line));
			P("<li class=\"hop end\"><h3>Hop ");
			P(d);
			P(": ");
			H(line);
			P(": tracking ends here</h3></li>\n");
			continue;
		}
		P("<li class=\"hop\"><h3>Hop ");
		P(d);
		P(": ");
		H(track_hop_name(h));
		if (h->chained) {
			for (k = i; k > 0 && w->hops[k - 1].chained; k--)
				;
			snprintf(d, sizeof(d), " (in the answer of hop %zu)",
			    k);
			P(d);
		} else if (h->server != NULL) {
			P(" (");
			H(h->server);
			P(h->tls ? ", TLS)" : ")");
		}
		P("</h3>\n");
		if (h->part->has_arrival) {
			iso_time(h->part->arrival, iso, sizeof(iso));
			P("<p>arrived <time datetime=\"");
			P(iso);
			P("\">");
			H(track_fmt_date(h->part->arrival, 1, d, sizeof(d)));
			P("</time></p>\n");
		}
		P("<table><tr><th>Recipient</th><th>State</th>"
		    "<th>Status</th><th>Details</th></tr>\n");
		for (j = 0; j < h->part->nrcpts; j++) {
			rc = &h->part->rcpts[j];
			track_rcpt_detail(rc, 1, line, sizeof(line));
			P("<tr><td>");
			H(track_rcpt_key(rc));
			P("</td><td>");
			H(rc->action ? rc->action : "?");
			P("</td><td>");
			H(rc->status ? rc->status : "?");
			P("</td><td>");
			T(line);
			P("</td></tr>\n");
		}
		P("</table></li>\n");
	}
	P("</ol>\n");
	if (w->nnot_asked > 0) {
		snprintf(line, sizeof(line), "<p>Not asked: %zu more host%s "
		    "(%d hosts at most)</p>\n", w->nnot_asked,
		    w->nnot_asked == 1 ? "" : "s", TRK_MAX_HOSTS);
		P(line);
	}
	P("<h2>Outcome</h2>\n<ul class=\"outcome\">\n");
	if (w->nout == 0)
		P("<li>no recipient reported</li>\n");
	for (i = 0; i < w->nout; i++) {
		track_outcome_text(w, &w->out[i], line, sizeof(line));
		P("<li><strong>");
		H(w->out[i].addr);
		P("</strong> ");
		T(line);
		P("</li>\n");
	}
	P("</ul>\n<p class=\"note\" id=\"tz-note\">Times in UTC.</p>\n"
	    "</section>\n");
#undef P
#undef H
#undef T
	return e;
}

/* ---------------------------------------------------------------- walk */

/* wtrack_free - t and what it holds; unlinked */
static void
wtrack_free(struct wtrack *t)
{
	if (t->prev != NULL)
		t->prev->next = t->next;
	else if (inflight == t)
		inflight = t->next;
	if (t->next != NULL)
		t->next->prev = t->prev;
	track_walk_free(&t->w);
	buf_free(&t->local);
	explicit_bzero(t->secret, sizeof(t->secret));
	free(t);
}

/* walk_done - the walk is over: answer */
static void
walk_done(void *arg)
{
	struct wtrack	*t = arg;
	struct web_req	*r = t->r;
	struct buf	 b;
	json_t		*o;

	t->w.done = NULL;
	if (t->html) {
		buf_init(&b, PAGE_MAX);
		if (render(&t->w, &b) == -1)
			web_error(r, 500, "cannot make the page");
		else
			page(r, 200, t->envid, b.data);
		buf_free(&b);
	} else if ((o = track_walk_json(&t->w)) == NULL)
		web_error(r, 500, "cannot make the answer");
	else
		web_send(r, 200, o);
	wtrack_free(t);
}

/* client - the shared MTQP client (made at the first use) */
static struct trk_client *
client(void)
{
	struct trk_client_opts	o;
	char			err[256];

	/* only from a handler: never inside a callback of the client */
	if (cli != NULL && cli_stale && inflight == NULL) {
		trk_client_free(cli);
		cli = NULL;
	}
	if (cli != NULL)
		return cli;
	cli_stale = 0;
	memset(&o, 0, sizeof(o));
	o.dns = web_cfg->dns;
	o.ndns = web_cfg->ndns;
	o.tls_verify = 0;	/* STARTTLS when offered, best effort */
	if ((cli = trk_client_new(web_base, &o, err, sizeof(err))) == NULL)
		log_warnx("http: track: %s", err);
	return cli;
}

/* found_cb - trk_auth_find's match: this hop's answer body (a
 * multipart/related with one part, as MTQP's) */
static void
found_cb(const struct qmsg *m, void *arg)
{
	struct wtrack	*t = arg;
	struct buf	 part;
	unsigned char	 rnd[12];
	char		 bnd[40], dash[48];
	size_t		 i;

	buf_init(&part, LOCAL_MAX);
	if (buf_puts(&part, "Content-Type: message/tracking-status\r\n\r\n")
	    == -1 || trk_status_write(&part, m, web_cfg->hostname,
	    time(NULL), (long)web_cfg->queue_lifetime) == -1)
		goto out;
	do {
		if (RAND_bytes(rnd, sizeof(rnd)) != 1)
			goto out;
		snprintf(bnd, sizeof(bnd), "=_wm_");
		for (i = 0; i < sizeof(rnd); i++)
			snprintf(bnd + 5 + 2 * i, sizeof(bnd) - 5 - 2 * i,
			    "%02x", rnd[i]);
		snprintf(dash, sizeof(dash), "--%s", bnd);
	} while (memmem(part.data, part.len, dash, strlen(dash)) != NULL);
	if (buf_printf(&t->local, "Content-Type: multipart/related; "
	    "boundary=\"%s\"; type=\"message/tracking-status\"\r\n\r\n"
	    "--%s\r\n", bnd, bnd) == -1 ||
	    buf_append(&t->local, part.data, part.len) == -1 ||
	    buf_printf(&t->local, "\r\n--%s--\r\n", bnd) == -1)
		buf_free(&t->local);
	memcpy(t->qid, m->qid, sizeof(t->qid));
	t->qid[sizeof(t->qid) - 1] = '\0';
out:
	buf_free(&part);
}

/* track - the request's ENVID and secret: the first hop here, then the
 * walk (or the one no-information answer) */
static void
track(struct web_req *r, int html)
{
	struct wtrack		*t;
	struct trk_answer	 a;
	char			*secret = NULL, eenvid[ESMTP_ENVID_MAX * 4 + 8];
	const char		*why;
	unsigned char		 sa[SECRET_A_MAX];
	const struct sockaddr	*addr = (const struct sockaddr *)&r->ss;
	time_t			 now = time(NULL);
	int			 alen, limited, rc;
	unsigned		 n;

	if ((t = calloc(1, sizeof(*t))) == NULL) {
		web_error(r, 503, "out of memory");
		return;
	}
	t->r = r;
	t->html = html;
	buf_init(&t->local, LOCAL_MAX + 1024);
	if (read_input(r, html, t->envid, sizeof(t->envid), &secret,
	    &why) == -1) {
		wtrack_free(t);
		if (html)
			page(r, 400, "", "<p class=\"error\">Give the "
			    "envelope id and the secret.</p>\n");
		else
			web_error(r, 400, "%s", why);
		return;
	}
	alen = secret_norm(secret, sa, sizeof(sa), t->secret,
	    sizeof(t->secret));
	explicit_bzero(secret, strlen(secret));
	free(secret);
	log_escape(eenvid, sizeof(eenvid), t->envid, strlen(t->envid));
	if (alen <= 0) {
		explicit_bzero(sa, sizeof(sa));
		if (html)
			page(r, 400, t->envid, "<p class=\"error\">The secret "
			    "is not base64.</p>\n");
		else
			web_error(r, 400, "secret: base64 or base64url "
			    "expected");
		wtrack_free(t);
		return;
	}
	/* over the limit: hashed and compared like any other, no look-up */
	limited = trk_auth_limited(web_cfg, addr, now);
	rc = trk_auth_find(limited ? NULL : t->envid, sa, (size_t)alen, now,
	    found_cb, t);
	explicit_bzero(sa, sizeof(sa));
	if (rc == -1 || (rc == 1 && t->local.len == 0)) {
		log_warnx("http track client=[%s] envid=%s result=error (%s)",
		    r->addr, eenvid, rc == -1 ? "the store could not be read" :
		    "the answer is too big");
		web_header(r, "Retry-After", "60");
		if (html)
			page(r, 503, t->envid, "<p class=\"error\">Tracking "
			    "information unavailable, try again later.</p>\n");
		else
			web_error(r, 503, "tracking information unavailable, "
			    "try again later");
		wtrack_free(t);
		return;
	}
	if (rc == 0) {
		n = limited ? 0 : trk_auth_failed(web_cfg, addr, now);
		if (limited)
			log_info("http track client=[%s] envid=%s "
			    "result=noinfo reason=mtqp_auth_failures", r->addr,
			    eenvid);
		else
			log_info("http track client=[%s] envid=%s "
			    "result=noinfo client_failures=%u", r->addr, eenvid,
			    n);
		noinfo(r, html, t->envid);
		wtrack_free(t);
		return;
	}
	log_info("http track client=[%s] envid=%s result=found qid=%s",
	    r->addr, eenvid, t->qid);
	/* the walk: this hop, then the next ones */
	t->w.envid = t->envid;
	t->w.secret = t->secret;
	t->w.utc = 1;
	t->w.hop_ms = TRK_QUERY_TIMEOUT_MS;
	t->w.deadline_ms = mono_us() / 1000 + WALK_BUDGET_MS;
	memset(&a, 0, sizeof(a));
	a.result = TRK_OK;
	a.host = web_cfg->hostname != NULL ? web_cfg->hostname : "localhost";
	a.server = "";
	a.error = "";
	a.body = t->local.data;
	a.bodylen = t->local.len;
	track_walk_local(&t->w, &a);
	if (t->w.npend > 0 && client() == NULL)
		t->w.phead = t->w.npend;	/* no client: nothing asked */
	if ((t->next = inflight) != NULL)
		inflight->prev = t;
	inflight = t;
	track_walk_start(&t->w, cli, walk_done, t);
}

/* ------------------------------------------------------------ handlers */

/* web_track_api - POST /api/v1/track */
void
web_track_api(struct web_req *r)
{
	track(r, 0);
}

/* web_track_form - POST /t (the form, without JavaScript) */
void
web_track_form(struct web_req *r)
{
	track(r, 1);
}

/* web_page_index - GET /: the empty form */
void
web_page_index(struct web_req *r)
{
	page(r, 200, "", NULL);
}

/* web_page_envid - GET /t/ENVID: the form with ENVID (the script adds
 * the secret from the fragment) */
void
web_page_envid(struct web_req *r)
{
	page(r, 200, envid_ok(r->capture) ? r->capture : "", NULL);
}

/* web_asset_get - GET /assets/NAME: the style and the script */
void
web_asset_get(struct web_req *r)
{
	const struct web_asset	*a = asset(r->capture);

	if (a == NULL || strstr(a->name, ".html") != NULL) {	/* templates */
		web_error(r, 404, "not found");
		return;
	}
	send_cached(r, a->type, a->data, a->len);
}

void
web_track_reload(void)
{
	cli_stale = 1;
}

void
web_track_shutdown(void)
{
	struct web_req	*r;

	while (inflight != NULL) {
		r = inflight->r;
		track_walk_cancel(&inflight->w);
		wtrack_free(inflight);
		web_req_detach(r);
		web_error(r, 503, "shutting down");
	}
	if (cli != NULL)
		trk_client_free(cli);
	cli = NULL;
}
