#include "config.h"
/*
 * tools_track_out.c - what `waymark track` prints: the timeline (each
 * hop with its recipients' action, status, dates and reasons, then each
 * recipient's outcome) and the --json object documented in the README.
 * Pure output from the walk (tools_track.h); no I/O but stdout.
 * Everything a hop sent is untrusted text: each line of the timeline
 * goes out through put_line (controls, C1 and broken UTF-8 as '?': no
 * escape sequence reaches the terminal), each JSON string through jtext
 * (broken UTF-8 as U+FFFD: jansson takes only UTF-8, and a recipient or
 * the whole object would be lost).
 */

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <jansson.h>

#include "common/log.h"
#include "common/util.h"
#include "track/trk_client.h"
#include "tools/tools_track.h"

/* track_rcpt_key - the address recipients are matched by */
const char *
track_rcpt_key(const struct trk_rcpt *r)
{
	if (r->orcpt != NULL && *r->orcpt)
		return r->orcpt;
	return r->final != NULL ? r->final : "";
}

/* ---------------------------------------------------------------- output */

#define OUT_LINE_MAX	2048

/* put_line - one line of the timeline on stdout, made safe to show */
static void	put_line(const char *fmt, ...) WM_PRINTF(1, 2);

static void
put_line(const char *fmt, ...)
{
	char	line[OUT_LINE_MAX];
	va_list	ap;
	int	n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	text_safe(line);	/* a cut UTF-8 sequence at the end too */
	puts(line);
}

/* fmt_date - RFC 5322 text of t */
static const char *
fmt_date(time_t t, char *out, size_t outlen)
{
	if (rfc5322_date(t, out, outlen) == -1)
		snprintf(out, outlen, "%lld", (long long)t);
	return out;
}

/* hop_host - the host a hop entry names in the text */
static const char *
hop_name(const struct hop *h)
{
	if (h->part != NULL && h->part->reporting_mta != NULL)
		return h->part->reporting_mta;
	return h->host;
}

/* track_failed_hop_text - "HOST does not speak MTQP" and the like */
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

/* rcpt_detail - the text after a recipient's status in its hop */
static void
rcpt_detail(const struct trk_rcpt *r, char *out, size_t outlen)
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
			ADD(" since %s", fmt_date(r->handling->since, d1,
			    sizeof(d1)));
		if (r->handling->reason[0] != '\0')
			ADD(" (%s)", r->handling->reason);
		if (r->has_retry_until)
			ADD(", kept until %s", fmt_date(r->retry_until, d2,
			    sizeof(d2)));
	} else if (strcmp(act, "transferred") == 0 ||
	    strcmp(act, "relayed") == 0) {
		ADD("to %s", r->remote_mta ? r->remote_mta : "?");
		if (r->has_last_attempt)
			ADD(", %s", fmt_date(r->last_attempt, d1, sizeof(d1)));
	} else if (strcmp(act, "delayed") == 0) {
		ADD("queued");
		if (r->status_comment != NULL)
			ADD(" (%s)", r->status_comment);
		if (r->has_last_attempt)
			ADD(", last attempt %s%s%s", fmt_date(r->last_attempt,
			    d1, sizeof(d1)), r->remote_mta ? " to " : "",
			    r->remote_mta ? r->remote_mta : "");
		if (r->has_retry_until)
			ADD(", retrying until %s", fmt_date(r->retry_until,
			    d2, sizeof(d2)));
	} else {
		if (r->diagnostic != NULL)
			ADD("%s", r->diagnostic);
		else if (r->status_comment != NULL)
			ADD("%s", r->status_comment);
		if (r->has_last_attempt)
			ADD("%s%s", o > 0 ? ", " : "",
			    fmt_date(r->last_attempt, d1, sizeof(d1)));
	}
	/* a trailing ", " left by "as FINAL" alone */
	if (o >= 2 && strcmp(out + o - 2, ", ") == 0)
		out[o - 2] = '\0';
#undef ADD
}

/* outcome_text - the final word on recipient o */
static void
outcome_text(const struct walk *w, const struct outcome *oc, char *out,
    size_t outlen)
{
	const struct trk_rcpt	*r = oc->r;
	const struct hop	*h = &w->hops[oc->hop], *nh;
	const char		*act = r->action != NULL ? r->action : "";
	const char		*at = hop_name(h);
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
		    r->handling->has_since ? fmt_date(r->handling->since, d,
		    sizeof(d)) : "");
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

/* track_print_text - the timeline */
void
track_print_text(const struct walk *w)
{
	const struct hop	*h;
	const struct trk_rcpt	*r;
	char			 d[64], line[1200];
	size_t			 i, j, k;

	put_line("Tracking %s", w->envid);
	for (i = 0; i < w->nhops; i++) {
		h = &w->hops[i];
		if (h->result != TRK_OK) {
			track_failed_hop_text(h, line, sizeof(line));
			put_line("Hop %zu: %s: tracking ends here", i + 1, line);
			continue;
		}
		if (h->chained) {
			for (k = i; k > 0 && w->hops[k - 1].chained; k--)
				;
			put_line("Hop %zu: %s (in the answer of hop %zu)",
			    i + 1, hop_name(h), k);
		} else
			put_line("Hop %zu: %s (%s%s)", i + 1, hop_name(h),
			    h->server ? h->server : "?", h->tls ? ", TLS" : "");
		if (h->part->has_arrival)
			put_line("  arrived %s", fmt_date(h->part->arrival, d,
			    sizeof(d)));
		for (j = 0; j < h->part->nrcpts; j++) {
			r = &h->part->rcpts[j];
			rcpt_detail(r, line, sizeof(line));
			put_line("  %-16s %-12s %-7s %s", track_rcpt_key(r),
			    r->action ? r->action : "?",
			    r->status ? r->status : "?", line);
		}
	}
	if (w->nnot_asked > 0)
		put_line("Not asked: %zu more host%s (%d hosts at most)",
		    w->nnot_asked, w->nnot_asked == 1 ? "" : "s", TRK_MAX_HOSTS);
	put_line("Outcome");
	if (w->nout == 0)
		put_line("  no recipient reported");
	for (i = 0; i < w->nout; i++) {
		outcome_text(w, &w->out[i], line, sizeof(line));
		put_line("  %-16s %s", w->out[i].addr, line);
	}
}

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

/* track_print_json - the one object (README) */
int
track_print_json(const struct walk *w)
{
	json_t			*o, *hops, *rcpts, *hj, *rl;
	const struct hop	*h;
	const struct outcome	*oc;
	size_t			 i, j;
	char			*s;

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
		    "reporting_mta", jtext(hop_name(h)),
		    "hop", (json_int_t)(oc->hop + 1))) == -1)
			goto fail;
	}
	if (json_object_set_new(o, "envid", json_string(w->envid)) == -1 ||
	    json_object_set_new(o, "hops", hops) == -1 ||
	    json_object_set_new(o, "recipients", rcpts) == -1) {
		hops = rcpts = NULL;
		goto fail;
	}
	if ((s = json_dumps(o, JSON_COMPACT)) == NULL) {
		json_decref(o);
		return -1;
	}
	printf("%s\n", s);
	free(s);
	json_decref(o);
	return 0;
fail:
	json_decref(hops);
	json_decref(rcpts);
	json_decref(o);
	return -1;
}
