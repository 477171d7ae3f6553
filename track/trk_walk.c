#include "config.h"
/*
 * trk_walk.c - following a tracked message hop by hop (trk_walk.h):
 * the walk (one MTQP query at a time on a caller's loop, or on a loop
 * of its own for `waymark track`), and what is shown of it: the
 * timeline's texts and the `waymark track --json` object.
 * Moved here from tools/ so that waymarkd's web view (web/web_track.c)
 * answers exactly what `waymark track --json` prints.
 * Everything a hop sent is untrusted text: each JSON string goes
 * through jtext (broken UTF-8 as U+FFFD: jansson takes only UTF-8);
 * the texts are the caller's to make safe for where they go.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <event2/event.h>
#include <jansson.h>

#include "common/log.h"
#include "common/util.h"
#include "track/trk_client.h"
#include "track/trk_walk.h"

/* ---------------------------------------------------------------- the walk */

/* wstrdup - strdup or NULL (s NULL), noting ENOMEM */
static char *
wstrdup(struct walk *w, const char *s)
{
	char	*r;

	if (s == NULL)
		return NULL;
	if ((r = strdup(s)) == NULL)
		w->oom = 1;
	return r;
}

/* grow - room for one more element in *v (n used) */
static int
grow(struct walk *w, void **v, size_t n, size_t sz)
{
	void	*nv;

	if ((nv = realloc(*v, (n + 1) * sz)) == NULL) {
		w->oom = 1;
		return -1;
	}
	*v = nv;
	return 0;
}

/* asked - host (case-insensitive, without a trailing dot) was asked;
 * add: remember it */
static int
asked(struct walk *w, const char *host, int add)
{
	size_t	i, n = strlen(host);

	if (n > 0 && host[n - 1] == '.')
		n--;
	for (i = 0; i < w->nasked; i++)
		if (strlen(w->asked[i]) == n &&
		    strncasecmp(w->asked[i], host, n) == 0)
			return 1;
	if (add && grow(w, (void **)&w->asked, w->nasked, sizeof(char *)) ==
	    0 && (w->asked[w->nasked] = strndup(host, n)) != NULL)
		w->nasked++;
	return 0;
}

/* host_is - a and b name one host (case-insensitive, one trailing dot
 * ignored on either) */
static int
host_is(const char *a, const char *b)
{
	size_t	na = strlen(a), nb = strlen(b);

	if (na > 0 && a[na - 1] == '.')
		na--;
	if (nb > 0 && b[nb - 1] == '.')
		nb--;
	return na == nb && strncasecmp(a, b, na) == 0;
}

int
track_not_asked(const struct walk *w, const char *host)
{
	size_t	i;

	for (i = 0; i < w->nnot_asked; i++)
		if (host_is(w->not_asked[i], host))
			return 1;
	return 0;
}

/* add_not_asked - host is past the TRK_MAX_HOSTS asked: remember it */
static void
add_not_asked(struct walk *w, const char *host)
{
	if (track_not_asked(w, host) || grow(w, (void **)&w->not_asked,
	    w->nnot_asked, sizeof(char *)) == -1)
		return;
	if ((w->not_asked[w->nnot_asked] = wstrdup(w, host)) != NULL)
		w->nnot_asked++;
}

/* add_pend - queue a query to host */
static void
add_pend(struct walk *w, const char *host, unsigned port,
    const struct sockaddr_storage *ss, socklen_t sslen, int depth)
{
	struct pend	*p;

	if (grow(w, (void **)&w->pend, w->npend, sizeof(*w->pend)) == -1)
		return;
	p = &w->pend[w->npend];
	memset(p, 0, sizeof(*p));
	if ((p->host = wstrdup(w, host)) == NULL)
		return;
	p->port = port;
	if (ss != NULL && sslen > 0) {
		memcpy(&p->ss, ss, sslen);
		p->sslen = sslen;
	}
	p->depth = depth;
	w->npend++;
	(void)asked(w, host, 1);
}

/* add_hop - a new entry of "hops"; its index or -1 */
static long
add_hop(struct walk *w, const char *host, const char *server, int tls,
    int chained, enum trk_result res, const char *error,
    const struct trk_part *part, int depth)
{
	struct hop	*h;

	if (grow(w, (void **)&w->hops, w->nhops, sizeof(*w->hops)) == -1)
		return -1;
	h = &w->hops[w->nhops];
	memset(h, 0, sizeof(*h));
	h->host = wstrdup(w, host != NULL ? host : "");
	h->server = server != NULL && *server ? wstrdup(w, server) : NULL;
	h->tls = tls;
	h->chained = chained;
	h->result = res;
	h->error = error != NULL && *error ? wstrdup(w, error) : NULL;
	h->part = part;
	h->depth = depth;
	return (long)w->nhops++;
}

/* note_rcpt - r was reported at hop index hop */
static void
note_rcpt(struct walk *w, const struct trk_rcpt *r, size_t hop)
{
	const char	*k = track_rcpt_key(r);
	size_t		 i;

	for (i = 0; i < w->nout; i++)
		if (strcasecmp(w->out[i].addr, k) == 0)
			break;
	if (i == w->nout) {
		if (grow(w, (void **)&w->out, w->nout, sizeof(*w->out)) == -1)
			return;
		if ((w->out[i].addr = wstrdup(w, k)) == NULL)
			return;
		w->nout++;
	}
	w->out[i].hop = hop;
	w->out[i].r = r;
}

static void	walk_next(struct walk *w);

/* take_answer - what a hop answered: its hop entries, the next hops */
static void
take_answer(struct walk *w, const struct trk_answer *a)
{
	struct trk_report	*rep;
	const struct trk_part	*p;
	const struct trk_rcpt	*r;
	char			 why[256], err[400];
	size_t			 i, j, first;
	long			 h;
	int			 depth = w->cur_depth;

	if (a->result != TRK_OK) {
		(void)add_hop(w, a->host, a->server, a->tls, 0, a->result,
		    a->error, NULL, depth);
		return;
	}
	if (grow(w, (void **)&w->reports, w->nreports,
	    sizeof(*w->reports)) == -1)
		return;
	rep = &w->reports[w->nreports];
	if (trk_report_parse(a->body, a->bodylen, rep, why,
	    sizeof(why)) == -1) {
		trk_report_free(rep);
		snprintf(err, sizeof(err), "malformed answer: %s", why);
		(void)add_hop(w, a->host, a->server, a->tls, 0, TRK_ERROR, err,
		    NULL, depth);
		return;
	}
	w->nreports++;
	first = w->nhops;
	for (i = 0; i < rep->nparts; i++) {
		p = &rep->parts[i];
		h = add_hop(w, i == 0 ? a->host : (p->reporting_mta ?
		    p->reporting_mta : "?"), i == 0 ? a->server : NULL,
		    i == 0 ? a->tls : 0, i > 0, TRK_OK, NULL, p,
		    depth + (int)i);
		if (h == -1)
			break;
		/* a chained part's host was asked by the server for us */
		if (i > 0 && p->reporting_mta != NULL)
			(void)asked(w, p->reporting_mta, 1);
		for (j = 0; j < p->nrcpts; j++)
			note_rcpt(w, &p->rcpts[j], (size_t)h);
	}
	/* follow the transferred recipients whose last word came now */
	for (i = 0; i < w->nout; i++) {
		if (w->out[i].hop < first)
			continue;
		r = w->out[i].r;
		if (r->action == NULL || strcmp(r->action, "transferred") != 0 ||
		    r->remote_mta == NULL || r->remote_mta[0] == '\0' ||
		    w->hops[w->out[i].hop].depth + 1 > TRK_MAX_HOPS ||
		    asked(w, r->remote_mta, 0))
			continue;
		if (w->npend >= TRK_MAX_HOSTS) {
			add_not_asked(w, r->remote_mta);
			continue;
		}
		add_pend(w, r->remote_mta, 0, NULL, 0,
		    w->hops[w->out[i].hop].depth + 1);
	}
}

/* on_answer - a hop answered (trk_answer_fn) */
static void
on_answer(void *arg, const struct trk_answer *a)
{
	struct walk	*w = arg;

	w->q = NULL;
	take_answer(w, a);
	walk_next(w);
}

void
track_walk_local(struct walk *w, const struct trk_answer *a)
{
	(void)asked(w, a->host, 1);
	w->cur_depth = 1;
	take_answer(w, a);
}

/* walk_next - start the next query, or let the loop end */
static void
walk_next(struct walk *w)
{
	struct trk_request	 rq;
	struct pend		*p;
	uint64_t		 now;
	long			 left = 0;

	while (w->phead < w->npend) {
		p = &w->pend[w->phead++];
		if (w->deadline_ms != 0) {
			now = mono_ms();
			left = now < w->deadline_ms ?
			    (long)(w->deadline_ms - now) : 0;
			if (left < 1000) {	/* not worth starting */
				(void)add_hop(w, p->host, NULL, 0, 0,
				    TRK_ERROR, "not asked: time limit reached",
				    NULL, p->depth);
				continue;
			}
		}
		memset(&rq, 0, sizeof(rq));
		rq.host = p->host;
		rq.port = p->port;
		if (p->sslen > 0) {
			rq.addr = (const struct sockaddr *)&p->ss;
			rq.addrlen = p->sslen;
		}
		rq.envid = w->envid;
		rq.secret = w->secret;
		/* the whole query: one line now and then holds nobody */
		rq.timeout_ms = w->hop_ms > 0 ? w->hop_ms : TRACK_HOP_MS;
		if (w->deadline_ms != 0 && left < rq.timeout_ms)
			rq.timeout_ms = left;
		w->cur_depth = p->depth;
		if ((w->q = trk_query_start(w->cl, &rq, on_answer, w)) != NULL)
			return;
		(void)add_hop(w, p->host, NULL, 0, 0, TRK_ERROR,
		    "cannot start the query", NULL, p->depth);
	}
	/* done: the loop ends once the QUIT replies are in (bounded by
	 * the client's linger); a caller's loop hears it */
	if (w->done != NULL)
		w->done(w->done_arg);
}

void
track_walk_start(struct walk *w, struct trk_client *cl,
    void (*done)(void *arg), void *arg)
{
	w->cl = cl;
	w->done = done;
	w->done_arg = arg;
	walk_next(w);
}

void
track_walk_cancel(struct walk *w)
{
	if (w->q != NULL)
		trk_query_cancel(w->q);
	w->q = NULL;
	w->done = NULL;
}

void
track_walk_free(struct walk *w)
{
	size_t	i;

	for (i = 0; i < w->nhops; i++) {
		free(w->hops[i].host);
		free(w->hops[i].server);
		free(w->hops[i].error);
	}
	free(w->hops);
	for (i = 0; i < w->nreports; i++)
		trk_report_free(&w->reports[i]);
	free(w->reports);
	for (i = 0; i < w->npend; i++)
		free(w->pend[i].host);
	free(w->pend);
	strv_free(w->asked, w->nasked);
	strv_free(w->not_asked, w->nnot_asked);
	for (i = 0; i < w->nout; i++)
		free(w->out[i].addr);
	free(w->out);
}

int
track_walk_add(struct walk *w, const char *host, unsigned port,
    const struct sockaddr *sa, socklen_t salen)
{
	size_t	n = w->npend;

	if (sa != NULL && (salen == 0 || salen > sizeof(struct sockaddr_storage)))
		return -1;
	add_pend(w, host, port, (const struct sockaddr_storage *)(const void *)sa,
	    sa != NULL ? salen : 0, 1);
	return w->npend > n && !w->oom ? 0 : -1;
}

int
track_walk(struct walk *w, const struct trk_client_opts *co, char *err,
    size_t errlen)
{
	int	rc = 0;

	if ((w->base = event_base_new()) == NULL) {
		snprintf(err, errlen, "cannot create the event loop");
		return -1;
	}
	if ((w->cl = trk_client_new(w->base, co, err, errlen)) == NULL)
		rc = -1;
	else {
		walk_next(w);
		(void)event_base_dispatch(w->base);
		trk_client_free(w->cl);
		w->cl = NULL;
	}
	event_base_free(w->base);
	w->base = NULL;
	return rc;
}

/* ---------------------------------------------------------------- texts */

/* track_rcpt_key - the address recipients are matched by */
const char *
track_rcpt_key(const struct trk_rcpt *r)
{
	if (r->orcpt != NULL && *r->orcpt)
		return r->orcpt;
	return r->final != NULL ? r->final : "";
}

const char *
track_fmt_date(time_t t, int utc, char *out, size_t outlen)
{
	static const char *const days[] = { "Sun", "Mon", "Tue", "Wed",
	    "Thu", "Fri", "Sat" };
	static const char *const months[] = { "Jan", "Feb", "Mar", "Apr",
	    "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
	struct tm	tm;

	if (utc && gmtime_r(&t, &tm) != NULL && tm.tm_wday >= 0 &&
	    tm.tm_wday < 7 && tm.tm_mon >= 0 && tm.tm_mon < 12)
		snprintf(out, outlen, "%s, %d %s %d %02d:%02d:%02d +0000",
		    days[tm.tm_wday], tm.tm_mday, months[tm.tm_mon],
		    tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
	else if (utc || rfc5322_date(t, out, outlen) == -1)
		snprintf(out, outlen, "%lld", (long long)t);
	return out;
}

const char *
track_hop_name(const struct hop *h)
{
	if (h->part != NULL && h->part->reporting_mta != NULL)
		return h->part->reporting_mta;
	return h->host;
}

void
track_failed_hop_text(const struct hop *h, char *out, size_t outlen)
{
	const char	*e = h->error != NULL ? h->error : "";

	switch (h->result) {
	case TRK_NOT_MTQP:
		snprintf(out, outlen, "%s does not speak MTQP", h->host);
		break;
	case TRK_UNREACHABLE:
		snprintf(out, outlen, "%s unreachable (%s)", h->host, e);
		break;
	case TRK_NOINFO:
		snprintf(out, outlen, "%s has no tracking information (%s)",
		    h->host, e);
		break;
	case TRK_TLS_FAILED:
		snprintf(out, outlen, "%s: TLS failed (%s)", h->host, e);
		break;
	default:
		snprintf(out, outlen, "%s: error (%s)", h->host, e);
		break;
	}
}

/* find_hop - the first queried (not chained) hop entry for host */
static const struct hop *
find_hop(const struct walk *w, const char *host)
{
	size_t	i, n = strlen(host);

	if (n > 0 && host[n - 1] == '.')
		n--;
	for (i = 0; i < w->nhops; i++)
		if (!w->hops[i].chained && strlen(w->hops[i].host) >= n &&
		    strncasecmp(w->hops[i].host, host, n) == 0 &&
		    (w->hops[i].host[n] == '\0' ||
		    strcmp(w->hops[i].host + n, ".") == 0))
			return &w->hops[i];
	return NULL;
}

void
track_rcpt_detail(const struct trk_rcpt *r, int utc, char *out,
    size_t outlen)
{
	char		 d1[64], d2[64];
	const char	*act = r->action != NULL ? r->action : "";
	size_t		 o = 0;
	int		 n;

#define ADD(...) do {							\
	n = snprintf(out + o, outlen - o, __VA_ARGS__);			\
	if (n < 0 || (size_t)n >= outlen - o)				\
		return;							\
	o += (size_t)n;							\
} while (0)
	out[0] = '\0';
	if (r->final != NULL && r->orcpt != NULL &&
	    strcasecmp(r->final, r->orcpt) != 0)
		ADD("as %s, ", r->final);
	if (r->handling != NULL) {
		ADD("held: %s%s%s", r->handling->state,
		    r->handling->value ? "/" : "",
		    r->handling->value ? r->handling->value : "");
		if (r->handling->has_since)
			ADD(" since %s", track_fmt_date(r->handling->since,
			    utc, d1, sizeof(d1)));
		if (r->handling->reason[0] != '\0')
			ADD(" (%s)", r->handling->reason);
		if (r->has_retry_until)
			ADD(", kept until %s", track_fmt_date(r->retry_until,
			    utc, d2, sizeof(d2)));
	} else if (strcmp(act, "transferred") == 0 ||
	    strcmp(act, "relayed") == 0) {
		ADD("to %s", r->remote_mta ? r->remote_mta : "?");
		if (r->has_last_attempt)
			ADD(", %s", track_fmt_date(r->last_attempt, utc, d1,
			    sizeof(d1)));
	} else if (strcmp(act, "delayed") == 0) {
		ADD("queued");
		if (r->status_comment != NULL)
			ADD(" (%s)", r->status_comment);
		if (r->has_last_attempt)
			ADD(", last attempt %s%s%s",
			    track_fmt_date(r->last_attempt, utc, d1,
			    sizeof(d1)), r->remote_mta ? " to " : "",
			    r->remote_mta ? r->remote_mta : "");
		if (r->has_retry_until)
			ADD(", retrying until %s",
			    track_fmt_date(r->retry_until, utc, d2, sizeof(d2)));
	} else {
		if (r->diagnostic != NULL)
			ADD("%s", r->diagnostic);
		else if (r->status_comment != NULL)
			ADD("%s", r->status_comment);
		if (r->has_last_attempt)
			ADD("%s%s", o > 0 ? ", " : "",
			    track_fmt_date(r->last_attempt, utc, d1,
			    sizeof(d1)));
	}
	/* a trailing ", " left by "as FINAL" alone */
	if (o >= 2 && strcmp(out + o - 2, ", ") == 0)
		out[o - 2] = '\0';
#undef ADD
}

void
track_outcome_text(const struct walk *w, const struct outcome *oc, char *out,
    size_t outlen)
{
	const struct trk_rcpt	*r = oc->r;
	const struct hop	*h = &w->hops[oc->hop], *nh;
	const char		*act = r->action != NULL ? r->action : "";
	const char		*at = track_hop_name(h);
	char			 d[64], f[400];
	size_t			 hn = oc->hop + 1;

	if (strcmp(act, "delivered") == 0)
		snprintf(out, outlen, "delivered at %s (hop %zu)", at, hn);
	else if (strcmp(act, "relayed") == 0)
		snprintf(out, outlen, "relayed to %s: tracking ends there",
		    r->remote_mta ? r->remote_mta : "a host without tracking");
	else if (strcmp(act, "transferred") == 0) {
		const char *rm = r->remote_mta ? r->remote_mta : "?";

		if ((nh = find_hop(w, rm)) == NULL && track_not_asked(w, rm))
			snprintf(out, outlen, "transferred to %s (hop %zu): "
			    "not asked (%d hosts at most)", rm, hn,
			    TRK_MAX_HOSTS);
		else if (nh == NULL)
			snprintf(out, outlen, "transferred to %s (hop %zu): "
			    "not followed (%d hops at most)", rm, hn,
			    TRK_MAX_HOPS);
		else if (nh->result == TRK_OK)
			snprintf(out, outlen, "transferred to %s (hop %zu), "
			    "which does not report it", rm, hn);
		else {
			track_failed_hop_text(nh, f, sizeof(f));
			snprintf(out, outlen, "transferred to %s (hop %zu): %s: "
			    "tracking ends there", rm, hn, f);
		}
	} else if (strcmp(act, "delayed") == 0 && r->handling != NULL)
		snprintf(out, outlen, "held at %s (hop %zu): %s%s%s%s%s", at,
		    hn, r->handling->state, r->handling->value ? "/" : "",
		    r->handling->value ? r->handling->value : "",
		    r->handling->has_since ? " since " : "",
		    r->handling->has_since ? track_fmt_date(r->handling->since,
		    w->utc, d, sizeof(d)) : "");
	else if (strcmp(act, "delayed") == 0)
		snprintf(out, outlen, "queued at %s (hop %zu)", at, hn);
	else if (strcmp(act, "failed") == 0)
		snprintf(out, outlen, "failed at %s (hop %zu): %s%s%s", at, hn,
		    r->status ? r->status : "", r->diagnostic ||
		    r->status_comment ? " " : "", r->diagnostic ?
		    r->diagnostic : r->status_comment ? r->status_comment : "");
	else if (strcmp(act, "expanded") == 0)
		snprintf(out, outlen, "expanded at %s (hop %zu)", at, hn);
	else if (strcmp(act, "opaque") == 0)
		snprintf(out, outlen, "no information at %s (hop %zu)", at, hn);
	else
		snprintf(out, outlen, "%s at %s (hop %zu)", *act ? act :
		    "unknown", at, hn);
}

/* ---------------------------------------------------------------- JSON */

/* jtext - a JSON string of network text (broken UTF-8 as U+FFFD), or
 * null for NULL; NULL on ENOMEM */
static json_t *
jtext(const char *s)
{
	json_t	*j;
	char	*r;

	if (s == NULL)
		return json_null();
	if ((r = utf8_repair(s)) == NULL)
		return NULL;
	j = json_string(r);
	free(r);
	return j;
}

/* jtime - Unix seconds or null */
static json_t *
jtime(int has, time_t t)
{
	return has ? json_integer((json_int_t)t) : json_null();
}

/* json_rcpt - one recipient of a hop; NULL on ENOMEM */
static json_t *
json_rcpt(const struct trk_rcpt *r)
{
	json_t	*hs = json_null();

	if (r->handling != NULL)
		hs = json_pack("{s:o,s:o,s:o,s:o}",
		    "state", jtext(r->handling->state),
		    "value", jtext(r->handling->value),
		    "since", jtime(r->handling->has_since, r->handling->since),
		    "reason", jtext(r->handling->reason));
	if (hs == NULL)
		return NULL;
	return json_pack("{s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o}",
	    "original_recipient", jtext(track_rcpt_key(r)),
	    "final_recipient", jtext(r->final ? r->final : track_rcpt_key(r)),
	    "action", jtext(r->action ? r->action : ""),
	    "status", jtext(r->status ? r->status : ""),
	    "remote_mta", jtext(r->remote_mta),
	    "last_attempt", jtime(r->has_last_attempt, r->last_attempt),
	    "will_retry_until", jtime(r->has_retry_until, r->retry_until),
	    "diagnostic", jtext(r->diagnostic),
	    "handling_state", hs);
}

json_t *
track_walk_json(const struct walk *w)
{
	json_t			*o, *hops, *rcpts, *hj, *rl;
	const struct hop	*h;
	const struct outcome	*oc;
	size_t			 i, j;

	o = json_object();
	hops = json_array();
	rcpts = json_array();
	if (o == NULL || hops == NULL || rcpts == NULL)
		goto fail;
	for (i = 0; i < w->nhops; i++) {
		h = &w->hops[i];
		if ((rl = json_array()) == NULL)
			goto fail;
		for (j = 0; h->part != NULL && j < h->part->nrcpts; j++)
			if (json_array_append_new(rl,
			    json_rcpt(&h->part->rcpts[j])) == -1) {
				json_decref(rl);
				goto fail;
			}
		hj = json_pack("{s:o,s:o,s:b,s:b,s:s,s:o,s:o,s:o,s:o}",
		    "host", jtext(h->host),
		    "server", jtext(h->server),
		    "tls", h->tls,
		    "chained", h->chained,
		    "result", trk_result_name(h->result),
		    "error", jtext(h->error),
		    "reporting_mta", jtext(h->part ? h->part->reporting_mta :
		    NULL),
		    "arrival_date", jtime(h->part && h->part->has_arrival,
		    h->part ? h->part->arrival : 0),
		    "recipients", rl);
		if (hj == NULL || json_array_append_new(hops, hj) == -1)
			goto fail;
	}
	for (i = 0; i < w->nout; i++) {
		oc = &w->out[i];
		h = &w->hops[oc->hop];
		if (json_array_append_new(rcpts, json_pack(
		    "{s:o,s:o,s:o,s:o,s:I}",
		    "recipient", jtext(oc->addr),
		    "action", jtext(oc->r->action ? oc->r->action : ""),
		    "status", jtext(oc->r->status ? oc->r->status : ""),
		    "reporting_mta", jtext(track_hop_name(h)),
		    "hop", (json_int_t)(oc->hop + 1))) == -1)
			goto fail;
	}
	if (json_object_set_new(o, "envid", json_string(w->envid)) == -1 ||
	    json_object_set_new(o, "hops", hops) == -1 ||
	    json_object_set_new(o, "recipients", rcpts) == -1) {
		hops = rcpts = NULL;
		goto fail;
	}
	return o;
fail:
	json_decref(hops);
	json_decref(rcpts);
	json_decref(o);
	return NULL;
}
