#include "config.h"
/*
 * web_auth.c - HTTP basic authentication of the operator view (RFC 7617)
 * against auth_users, restricted to admin_users.
 * Owns: the Authorization field's parsing, the password check (handed
 *       to the check pool, common/pwcheck.c, never run on the loop; an
 *       unknown user, a locked entry or a password over WEB_PASS_MAX
 *       costs a check with the dummy setting, as SMTP AUTH does), the
 *       failure delay (each 401, 429 and busy 503 waits 1 s), the
 *       per-client-address limit auth_failures (failures plus checks in
 *       flight; at N: 429 without a check until the window has passed;
 *       clients in client_limit_exceptions are not counted; the count
 *       is SMTP AUTH's, common/failtab.c's auth table), the 403 for a
 *       valid user
 *       not in admin_users.
 * Answers: 401 with WWW-Authenticate: Basic realm="waymark" without
 *       credentials (at once, not a failure) or with bad ones (after the
 *       delay); 403; 429 with Retry-After; 503 when the pool is full.
 * Invariants: credentials are never logged; a request waiting for its
 *       check is in the in-flight list until the check's completion,
 *       which always comes (pwcheck.h), so the request is freed only
 *       after it.
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <event2/event.h>
#include <event2/http.h>

#include "common/cfg.h"
#include "common/failtab.h"
#include "common/log.h"
#include "common/util.h"
#include "common/pwcheck.h"
#include "common/syntax.h"
#include "web/web_int.h"

#define WEB_PASS_MAX		256	/* longer: fails, as SMTP AUTH */
#define WEB_CRED_B64_MAX	1024	/* base64 of user:password */
#define WEB_FAIL_DELAY		1	/* seconds before a refusal */

#define WAIT_CHECK	1	/* the password check is in flight */
#define WAIT_FAIL	2	/* 401 after the delay */
#define WAIT_LIMIT	3	/* 429 after the delay */
#define WAIT_BUSY	4	/* 503 after the delay */

static struct web_req	*inflight;	/* checks of counted addresses */

static void
inflight_add(struct web_req *r)
{
	r->prev = NULL;
	if ((r->next = inflight) != NULL)
		inflight->prev = r;
	inflight = r;
}

static void
inflight_del(struct web_req *r)
{
	if (r->auth_wait != WAIT_CHECK || !r->counted)
		return;
	if (r->prev != NULL)
		r->prev->next = r->next;
	else
		inflight = r->next;
	if (r->next != NULL)
		r->next->prev = r->prev;
	r->prev = r->next = NULL;
}

/* limited - r's address has reached auth_failures (failures in the
 * window plus checks in flight) */
static int
limited(struct web_req *r)
{
	struct web_req	*i;
	unsigned	 n = 0;

	if (!r->counted)
		return 0;
	for (i = inflight; i != NULL; i = i->next)
		n += memcmp(i->key, r->key, 16) == 0;
	n += failtab_auth_count((const struct sockaddr *)&r->ss,
	    web_cfg->auth_failures_window, mono_sec());
	return n >= web_cfg->auth_failures;
}

/* unauthorized - 401 with the challenge */
static void
unauthorized(struct web_req *r, const char *msg)
{
	web_header(r, "WWW-Authenticate", "Basic realm=\"waymark\"");
	web_error(r, 401, "%s", msg);
}

static void
delay_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct web_req	*r = arg;
	char		 retry[32];
	int		 w = r->auth_wait;

	(void)fd;
	(void)ev;
	r->auth_wait = 0;
	switch (w) {
	case WAIT_LIMIT:
		snprintf(retry, sizeof(retry), "%u",
		    web_cfg->auth_failures_window);
		web_header(r, "Retry-After", retry);
		web_error(r, 429, "too many authentication failures from "
		    "this address, try again later");
		break;
	case WAIT_BUSY:
		web_header(r, "Retry-After", "1");
		web_error(r, 503, "password checks busy, try again later");
		break;
	default:
		unauthorized(r, "authentication failed");
		break;
	}
}

/* delay - the refusal (kind) follows in WEB_FAIL_DELAY seconds */
static void
delay(struct web_req *r, int kind)
{
	struct timeval	tv = { WEB_FAIL_DELAY, 0 };

	r->auth_wait = kind;
	if (r->timer == NULL &&
	    (r->timer = evtimer_new(web_base, delay_cb, r)) == NULL) {
		delay_cb(-1, 0, r);
		return;
	}
	evtimer_add(r->timer, &tv);
}

/* fail - count, log, then 401 after the delay */
static void
fail(struct web_req *r, const char *why)
{
	char		euser[WEB_USER_MAX * 4 + 8];
	unsigned	n = 0;

	if (r->counted) {
		if ((n = failtab_auth_add((const struct sockaddr *)&r->ss,
		    web_cfg->auth_failures_window, mono_sec())) == 0)
			log_warn("http-admin: failure table");
	}
	log_escape(euser, sizeof(euser), r->user, strlen(r->user));
	log_info("http-admin client=[%s] auth failed user=%s "
	    "client_failures=%u%s%s", r->addr, euser, n,
	    why != NULL ? " reason=" : "", why != NULL ? why : "");
	delay(r, WAIT_FAIL);
}

/* is_admin - user is in admin_users */
static int
is_admin(const char *user)
{
	size_t	i;

	for (i = 0; i < web_cfg->nadmin_users; i++)
		if (strcmp(web_cfg->admin_users[i], user) == 0)
			return 1;
	return 0;
}

/* checked_cb - the check's result, in the loop */
static void
checked_cb(void *arg, int result)
{
	struct web_req	*r = arg;
	char		 euser[WEB_USER_MAX * 4 + 8];

	inflight_del(r);
	r->auth_wait = 0;
	if (result == PWCHECK_CANCELLED) {
		web_error(r, 503, "shutting down");
		return;
	}
	if (result != PWCHECK_OK || !r->known) {
		fail(r, r->why);	/* counted even when the client left */
		return;
	}
	log_escape(euser, sizeof(euser), r->user, strlen(r->user));
	if (!is_admin(r->user)) {
		log_info("http-admin client=[%s] auth ok user=%s, not in "
		    "admin_users", r->addr, euser);
		web_error(r, 403, "user %s is not an operator", euser);
		return;
	}
	if (r->req == NULL) {
		web_error(r, 503, "client gone");
		return;
	}
	r->authed = 1;
	r->route->fn(r);
}

/* credentials - decode "Basic B64" into user (r->user) and pass (of
 * WEB_CRED_B64_MAX bytes); -1 malformed */
static int
credentials(struct web_req *r, const char *b64, char *pass)
{
	unsigned char	 dec[WEB_CRED_B64_MAX];
	char		*colon;
	size_t		 ulen;
	int		 n;

	if (strlen(b64) >= WEB_CRED_B64_MAX ||
	    (n = base64_decode(b64, strlen(b64), dec, sizeof(dec) - 1)) < 0)
		return -1;
	dec[n] = '\0';
	if (memchr(dec, '\0', (size_t)n) != NULL ||
	    (colon = strchr((char *)dec, ':')) == NULL) {
		explicit_bzero(dec, sizeof(dec));
		return -1;
	}
	ulen = (size_t)(colon - (char *)dec);
	if (ulen > WEB_USER_MAX)
		ulen = WEB_USER_MAX;
	memcpy(r->user, dec, ulen);
	r->user[ulen] = '\0';
	memcpy(pass, colon + 1, strlen(colon + 1) + 1);
	explicit_bzero(dec, sizeof(dec));
	return ulen == 0 || ulen == WEB_USER_MAX ? -1 : 0;
}

void
web_auth_start(struct web_req *r)
{
	struct evkeyvalq	*h = evhttp_request_get_input_headers(r->req);
	const char		*auth, *hash;
	char			 pass[WEB_CRED_B64_MAX];
	int			 rc;

	auth = evhttp_find_header(h, "Authorization");
	if (auth == NULL || strncasecmp(auth, "Basic ", 6) != 0) {
		unauthorized(r, "authentication required");
		return;
	}
	auth += 6;
	while (*auth == ' ')
		auth++;
	r->counted = !cfg_client_exempt(web_cfg,
	    (const struct sockaddr *)&r->ss) &&
	    failtab_key((const struct sockaddr *)&r->ss, r->key) == 0;
	if (limited(r)) {
		log_info("http-admin client=[%s] auth refused "
		    "reason=auth_failures", r->addr);
		delay(r, WAIT_LIMIT);
		return;
	}
	if (credentials(r, auth, pass) == -1) {
		explicit_bzero(pass, sizeof(pass));
		fail(r, "malformed");
		return;
	}
	if ((r->known = cfg_auth_lookup(web_cfg, r->user, &hash)) == 0 &&
	    cfg_auth_hash(web_cfg, r->user) != NULL)
		r->why = "locked";
	if (strlen(pass) > WEB_PASS_MAX) {
		pass[WEB_PASS_MAX] = '\0';
		hash = cfg_auth_dummy(web_cfg);
		r->known = 0;
		r->why = "password_too_long";
	}
	rc = pwcheck_submit(hash, pass, checked_cb, r);
	explicit_bzero(pass, sizeof(pass));
	if (rc == -1) {
		if (errno == EAGAIN) {
			log_info("http-admin client=[%s] auth refused "
			    "reason=check_queue_full", r->addr);
			delay(r, WAIT_BUSY);
			return;
		}
		log_warn("http-admin: password check");
		web_error(r, 503, "password check unavailable");
		return;
	}
	r->auth_wait = WAIT_CHECK;
	if (r->counted)
		inflight_add(r);
}

void
web_auth_free(struct web_req *r)
{
	if (r->timer != NULL)
		event_free(r->timer);
	r->timer = NULL;
}
