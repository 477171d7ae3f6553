#include "config.h"
/*
 * dlv_tlsrpt.c - SMTP TLS reporting (RFC 8460) for the outbound TLS
 *       policies: the counters and the daily aggregate reports.
 * Owns: dlv_tlsrpt_init/reload/shutdown, dlv_tlsrpt_count (one call per
 *       TLS session attempt under a policy, or per policy fetch failure),
 *       dlv_tlsrpt_send (the report job: the daily timer, after 00:00 UTC
 *       plus a random delay of up to 4 hours, for the days before today;
 *       `waymark tlsrpt --send-now` for everything counted so far).
 * Counters: per UTC day, per (policy type, policy domain): successful
 *       sessions, and failed ones per (result type, MX, its address,
 *       reason code, our address); kept in memory and in the store (one record,
 *       "tlsrpt:state", written at most once a second through
 *       queue_kv_put); each day's bucket begins at the later of 00:00 and
 *       the end of the last report.
 * Report: per policy domain whose `_smtp._tls` TXT record (v=TLSRPTv1)
 *       has `mailto:` rua addresses: the RFC 8460 4 JSON, gzip'd (zlib),
 *       in a multipart/report; report-type="tlsrpt" message with
 *       TLS-Report-Domain / TLS-Report-Submitter and the Subject of 5.3,
 *       queued as an ordinary message (sender <>, client name
 *       DLV_TLSRPT_CLIENT: its delivery ignores TLS policies, 5.3, and is
 *       not counted).  https: rua endpoints are not used.
 *       Each report is DKIM-signed (RFC 8460 3) with the dkim_key keys
 *       of the hostname's domain, when it has some (report_sign).
 * Not here: the DKIM signer itself (filter/dkim.c).
 */

#include <sys/types.h>
#include <sys/socket.h>
#include <arpa/nameser.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <ares.h>
#include <event2/event.h>
#include <jansson.h>
#include <openssl/x509.h>
#include <zlib.h>

#include "common/buf.h"
#include "common/cfg.h"
#include "common/log.h"
#include "common/metrics.h"
#include "common/syntax.h"
#include "common/util.h"
#include "delivery/dlv_int.h"
#include "filter/dkim.h"

#define RPT_KEY		"tlsrpt:state"
#define RPT_VERSION	1
#define RPT_POLICIES_MAX 1000	/* per day */
#define RPT_FAILS_MAX	64	/* failure rows per policy */
#define RPT_RUA_MAX	4	/* mailto addresses used per domain */
#define RPT_DELAY_MAX	(4 * 3600)

struct rpt_task {
	struct rpt_task	*next;
	char		 domain[256];
	json_t		*report;	/* the JSON of 4 */
	time_t		 begin, end;
};

static struct {
	int		 on;		/* cfg->tlsrpt */
	int		 loaded;	/* state read from the store */
	json_t		*days;		/* "YYYY-MM-DD" -> bucket */
	time_t		 last_end;	/* end of the last report */
	char		 hostname[256];
	const struct config *cfg;	/* its dkim_keys sign the reports */
	struct event	*daily;
	struct event	*flush;
	int		 dirty;
	struct rpt_task	*tasks;		/* TXT look-ups in flight */
} rp;

/* ---------------------------------------------------------------- state */

/* rpt_day - "YYYY-MM-DD" of t (UTC) and the day's 00:00 */
static void
rpt_day(time_t t, char day[16], time_t *start)
{
	struct tm	tm;

	(void)gmtime_r(&t, &tm);
	(void)strftime(day, 16, "%Y-%m-%d", &tm);
	if (start != NULL)
		*start = t - (tm.tm_hour * 3600 + tm.tm_min * 60 + tm.tm_sec);
}

/* rpt_load - the state from the store, once it is open */
static void
rpt_load(void)
{
	json_t		*st;
	json_error_t	 jerr;
	void		*v;
	size_t		 len;
	int		 rc;

	if (rp.loaded)
		return;
	if (rp.days == NULL && (rp.days = json_object()) == NULL)
		return;
	if ((rc = queue_kv_get(RPT_KEY, &v, &len)) == -1)
		return;		/* not open yet: counts start in memory */
	rp.loaded = 1;
	if (rc == 1)
		return;
	if (len < 1 || ((unsigned char *)v)[0] != RPT_VERSION ||
	    (st = json_loadb((char *)v + 1, len - 1, 0, &jerr)) == NULL) {
		log_warnx("tlsrpt: corrupt counter record: ignored");
		free(v);
		return;
	}
	free(v);
	rp.last_end = (time_t)json_integer_value(json_object_get(st,
	    "last_end"));
	if (json_is_object(json_object_get(st, "days")))
		(void)json_object_update(rp.days, json_object_get(st, "days"));
	json_decref(st);
}

/* rpt_store - write the state (version byte + JSON) */
static void
rpt_store(void)
{
	json_t	*st;
	char	*text = NULL, *rec = NULL;
	size_t	 len;

	rp.dirty = 0;
	if (!rp.loaded || (st = json_pack("{s:I,s:O}", "last_end",
	    (json_int_t)rp.last_end, "days", rp.days)) == NULL)
		return;
	text = json_dumps(st, JSON_COMPACT);
	json_decref(st);
	if (text != NULL && (rec = malloc((len = strlen(text)) + 1)) != NULL) {
		rec[0] = RPT_VERSION;
		memcpy(rec + 1, text, len);
		if (queue_kv_put(RPT_KEY, rec, len + 1) == -1)
			log_warnx("tlsrpt: cannot store the counters");
	}
	free(rec);
	free(text);
}

static void
flush_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	rpt_store();
}

/* rpt_dirty - store within a second */
static void
rpt_dirty(void)
{
	struct timeval	tv = { 1, 0 };

	if (rp.dirty || rp.flush == NULL)
		return;
	rp.dirty = 1;
	evtimer_add(rp.flush, &tv);
}

/* json_inc - obj[key] += 1 */
static void
json_inc(json_t *obj, const char *key)
{
	json_t	*v = json_object_get(obj, key);

	(void)json_object_set_new(obj, key, json_integer(v != NULL ?
	    json_integer_value(v) + 1 : 1));
}

void
dlv_tlsrpt_count(const char *domain, const char *ptype, const char *mxhost,
    const char *result, const char *mx, const char *ip, const char *sip,
    const char *code)
{
	json_t	*b, *pols, *p, *f;
	char	 day[16], key[300], fkey[700];
	time_t	 now = time(NULL), start;

	if (!rp.on || domain == NULL || domain[0] == '\0')
		return;
	rpt_load();
	if (rp.days == NULL)
		return;
	rpt_day(now, day, &start);
	if ((b = json_object_get(rp.days, day)) == NULL) {
		if ((b = json_pack("{s:I,s:{}}", "begin", (json_int_t)(start >
		    rp.last_end ? start : rp.last_end), "policies")) == NULL ||
		    json_object_set_new(rp.days, day, b) == -1)
			return;
	}
	pols = json_object_get(b, "policies");
	(void)snprintf(key, sizeof(key), "%s %s", ptype, domain);
	if ((p = json_object_get(pols, key)) == NULL) {
		if (json_object_size(pols) >= RPT_POLICIES_MAX ||
		    (p = json_pack("{s:s,s:s,s:i,s:{}}", "policy-type", ptype,
		    "policy-domain", domain, "ok", 0, "fail")) == NULL ||
		    json_object_set_new(pols, key, p) == -1)
			return;
	}
	if (mxhost != NULL && mxhost[0] != '\0')
		(void)json_object_set_new(p, "mx-host", json_string(mxhost));
	if (result == NULL)
		json_inc(p, "ok");
	else {
		f = json_object_get(p, "fail");
		(void)snprintf(fkey, sizeof(fkey), "%s\t%s\t%s\t%s\t%s",
		    result, mx ? mx : "", ip ? ip : "", code ? code : "",
		    sip ? sip : "");
		if (json_object_get(f, fkey) == NULL &&
		    json_object_size(f) >= RPT_FAILS_MAX)
			(void)snprintf(fkey, sizeof(fkey), "%s\t\t\t\t",
			    result);
		json_inc(f, fkey);
	}
	rpt_dirty();
}

const char *
dlv_tlsrpt_x509_result(long vr)
{
	switch (vr) {
	case X509_V_ERR_HOSTNAME_MISMATCH:
		return "certificate-host-mismatch";
	case X509_V_ERR_CERT_HAS_EXPIRED:
		return "certificate-expired";
	case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
	case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
	case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
	case X509_V_ERR_CERT_UNTRUSTED:
	case X509_V_ERR_CERT_REJECTED:
		return "certificate-not-trusted";
	default:
		return "validation-failure";
	}
}

/* ---------------------------------------------------------------- report */

/* rfc3339 - "2016-04-01T00:00:00Z" */
static void
rfc3339(time_t t, char *out, size_t len)
{
	struct tm	tm;

	(void)gmtime_r(&t, &tm);
	if (strftime(out, len, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		out[0] = '\0';
}

/* policy_strings - the cached policy's lines (sts), or NULL */
static json_t *
policy_strings(const char *domain)
{
	json_t		*a;
	char		 id[QUEUE_STS_ID_MAX + 1], *text = NULL, *l, *e;
	time_t		 fetched;
	size_t		 n;

	if (queue_sts_get(domain, id, &fetched, &text) != 0)
		return NULL;
	if ((a = json_array()) == NULL) {
		free(text);
		return NULL;
	}
	for (l = text; *l != '\0'; l = e) {
		e = l + strcspn(l, "\n");
		if (*e == '\n')
			*e++ = '\0';
		n = strlen(l);
		if (n > 0 && l[n - 1] == '\r')
			l[--n] = '\0';
		if (n > 0)
			(void)json_array_append_new(a, json_string(l));
	}
	free(text);
	return a;
}

/* policy_entry - one element of "policies" from a counter object */
static json_t *
policy_entry(const json_t *p)
{
	json_t		*pol, *det, *fails, *v, *d;
	const char	*k, *ptype, *domain;
	char		 parts[5][300];
	json_int_t	 nfail = 0;
	size_t		 i;

	ptype = json_string_value(json_object_get(p, "policy-type"));
	domain = json_string_value(json_object_get(p, "policy-domain"));
	if (ptype == NULL || domain == NULL ||
	    (pol = json_pack("{s:s,s:s}", "policy-type", ptype,
	    "policy-domain", domain)) == NULL)
		return NULL;
	if (strcmp(ptype, "sts") == 0 && (v = policy_strings(domain)) != NULL)
		(void)json_object_set_new(pol, "policy-string", v);
	if ((v = json_object_get(p, "mx-host")) != NULL)
		(void)json_object_set(pol, "mx-host", v);
	det = json_array();
	fails = json_object_get(p, "fail");
	json_object_foreach(fails, k, v) {
		const char *s = k;

		for (i = 0; i < 5; i++) {
			size_t n = strcspn(s, "\t");

			(void)snprintf(parts[i], sizeof(parts[i]), "%.*s",
			    (int)(n < 299 ? n : 299), s);
			s += n;
			if (*s == '\t')
				s++;
		}
		nfail += json_integer_value(v);
		if ((d = json_pack("{s:s,s:I}", "result-type", parts[0],
		    "failed-session-count", json_integer_value(v))) == NULL)
			continue;
		if (parts[4][0] != '\0')
			(void)json_object_set_new(d, "sending-mta-ip",
			    json_string(parts[4]));
		if (parts[1][0] != '\0')
			(void)json_object_set_new(d, "receiving-mx-hostname",
			    json_string(parts[1]));
		if (parts[2][0] != '\0')
			(void)json_object_set_new(d, "receiving-ip",
			    json_string(parts[2]));
		if (parts[3][0] != '\0')
			(void)json_object_set_new(d, "failure-reason-code",
			    json_string(parts[3]));
		(void)json_array_append_new(det, d);
	}
	return json_pack("{s:o,s:{s:I,s:I},s:o}", "policy", pol, "summary",
	    "total-successful-session-count",
	    json_integer_value(json_object_get(p, "ok")),
	    "total-failure-session-count", nfail, "failure-details", det);
}

/* gzip_buf - RFC 1952 gzip of in; malloc'd, or NULL */
static unsigned char *
gzip_buf(const char *in, size_t len, size_t *outlen)
{
	z_stream	 z;
	unsigned char	*out;
	size_t		 cap = len + len / 100 + 64;

	memset(&z, 0, sizeof(z));
	if ((out = malloc(cap)) == NULL)
		return NULL;
	if (deflateInit2(&z, Z_BEST_COMPRESSION, Z_DEFLATED, 15 + 16, 8,
	    Z_DEFAULT_STRATEGY) != Z_OK) {
		free(out);
		return NULL;
	}
	z.next_in = (unsigned char *)(uintptr_t)in;
	z.avail_in = (uInt)len;
	z.next_out = out;
	z.avail_out = (uInt)cap;
	if (deflate(&z, Z_FINISH) != Z_STREAM_END) {
		deflateEnd(&z);
		free(out);
		return NULL;
	}
	*outlen = z.total_out;
	deflateEnd(&z);
	return out;
}

struct submit_ctx {
	char	qid[QID_SIZE];
	char	to[300];
	char	domain[256];
};

/* submit_done - the report's accept commit finished */
static void
submit_done(void *arg, int rc)
{
	struct submit_ctx	*c = arg;

	if (rc == 0)
		log_info("qid=%s tlsrpt: report for %s queued to <%s>", c->qid,
		    c->domain, c->to);
	else
		log_warnx("qid=%s tlsrpt: report for %s to <%s> could not be "
		    "queued", c->qid, c->domain, c->to);
	free(c);
}

/* sign_cb - one DKIM-Signature of a report: a trace field, an event */
static int
sign_cb(void *arg, const struct dkim_key *k, const char *field)
{
	struct qmsg	*m = arg;
	char		 ev[600];
	int		 n;

	n = snprintf(ev, sizeof(ev), "d=%s s=%s a=%s", k->domain,
	    k->selector, dkim_alg_name(k->alg));
	if (n < 0 || (size_t)n >= sizeof(ev) ||
	    qmsg_add_trace(m, field) == -1 ||
	    qmsg_add_event(m, "dkim", ev) == -1)
		return -1;
	log_info("qid=%s tlsrpt: dkim=signed %s", m->qid, ev);
	metrics_dkim_signature(dkim_alg_name(k->alg));
	return 0;
}

/*
 * report_sign - RFC 8460 3: a report is DKIM-signed, by the keys of its
 * From domain (the hostname) when dkim_key has them; 0 (signed, or no
 * key), -1 on a local error
 */
static int
report_sign(struct qmsg *m, const char *text, size_t len)
{
	struct dkim_sign	*d;
	const char		*p = text, *e = text + len, *nl, *why = NULL;
	size_t			 n;
	int			 rc;

	if (rp.cfg == NULL || rp.cfg->dkim_keys == NULL)
		return 0;
	if ((d = dkim_sign_new(rp.cfg->dkim_keys)) == NULL)
		return -1;
	while (p < e) {
		if ((nl = memchr(p, '\n', (size_t)(e - p))) == NULL) {
			dkim_sign_text(d, p, (size_t)(e - p));
			break;
		}
		n = (size_t)(nl - p);
		if (n > 0 && p[n - 1] == '\r')
			n--;
		dkim_sign_text(d, p, n);
		dkim_sign_eol(d);
		p = nl + 1;
	}
	rc = dkim_sign_finish(d, time(NULL), sign_cb, m, &why);
	dkim_sign_free(d);
	if (rc == -1)
		log_warnx("qid=%s tlsrpt: dkim: %s", m->qid,
		    why != NULL ? why : "error");
	return rc == -1 ? -1 : 0;
}

/* submit - the report message text (CRLF) to `to`, through the queue */
static void
submit(const struct rpt_task *t, const char *to, const char *text,
    size_t len)
{
	struct submit_ctx	*c = NULL;
	struct qmsg		*m = NULL;
	char			 qid[QID_SIZE], field[512], date[64];
	size_t			 off = 0;
	ssize_t			 w;
	int			 fd = -1, n;

	if ((c = calloc(1, sizeof(*c))) == NULL ||
	    queue_body_create(qid, &fd) == -1)
		goto fail;
	while (off < len) {
		if ((w = write(fd, text + off, len - off)) == -1) {
			if (errno == EINTR)
				continue;
			goto fail;
		}
		off += (size_t)w;
	}
	if ((m = qmsg_new()) == NULL)
		goto fail;
	(void)snprintf(m->qid, sizeof(m->qid), "%s", qid);
	m->arrival = time(NULL);
	m->size = (uint64_t)len;
	m->state = MS_NORMAL;
	m->body_8bit = 0;
	n = snprintf(field, sizeof(field), "Received: by %s (Waymark) id %s; "
	    "%s", rp.hostname, qid, rfc5322_date(m->arrival, date,
	    sizeof(date)) == 0 ? date : "");
	if ((m->sender = strdup("")) == NULL ||
	    (m->client_addr = strdup("local")) == NULL ||
	    (m->client_name = strdup(DLV_TLSRPT_CLIENT)) == NULL ||
	    (m->helo = strdup(rp.hostname)) == NULL ||
	    qmsg_add_rcpt(m, to) == -1 ||
	    n < 0 || (size_t)n >= sizeof(field) ||
	    qmsg_add_trace(m, field) == -1 ||
	    report_sign(m, text, len) == -1)	/* above the Received field */
		goto fail;
	(void)snprintf(c->qid, sizeof(c->qid), "%s", qid);
	(void)snprintf(c->to, sizeof(c->to), "%s", to);
	(void)snprintf(c->domain, sizeof(c->domain), "%s", t->domain);
	queue_accept(m, fd, submit_done, c);	/* owns m, fd, c */
	return;
fail:
	log_warnx("tlsrpt: report for %s to <%s> not queued (out of memory "
	    "or spool error)", t->domain, to);
	if (fd != -1)
		queue_body_discard(qid, fd);
	qmsg_free(m);
	free(c);
}

/* compose - the RFC 8460 5.3 message of t's report to `to`; malloc'd */
static char *
compose(const struct rpt_task *t, const char *to, size_t *len)
{
	struct buf	 b;
	char		*json = NULL, *b64 = NULL, date[64], bound[40];
	unsigned char	*gz = NULL;
	const char	*rid;
	size_t		 gzlen, cap, i, n;

	buf_init(&b, 16 * 1024 * 1024);
	rid = json_string_value(json_object_get(t->report, "report-id"));
	if ((json = json_dumps(t->report, JSON_INDENT(1))) == NULL ||
	    (gz = gzip_buf(json, strlen(json), &gzlen)) == NULL)
		goto fail;
	cap = 4 * ((gzlen + 2) / 3) + 1;
	if ((b64 = malloc(cap)) == NULL ||
	    base64_encode(gz, gzlen, b64, cap) < 0 ||
	    rfc5322_date(time(NULL), date, sizeof(date)) == -1)
		goto fail;
	(void)snprintf(bound, sizeof(bound), "=_tlsrpt_%08x%08x",
	    arc4random(), arc4random());
	if (buf_printf(&b, "From: TLS reporting <postmaster@%s>\r\n"
	    "Date: %s\r\nTo: <%s>\r\n"
	    "Subject: Report Domain: %s\r\n Submitter: %s\r\n"
	    " Report-ID: <%s>\r\n"
	    "Message-ID: <%s>\r\n"
	    "TLS-Report-Domain: %s\r\nTLS-Report-Submitter: %s\r\n"
	    "Auto-Submitted: auto-generated\r\n"
	    "MIME-Version: 1.0\r\n"
	    "Content-Type: multipart/report; report-type=\"tlsrpt\";\r\n"
	    " boundary=\"%s\"\r\n\r\n"
	    "This is a multipart message in MIME format.\r\n\r\n"
	    "--%s\r\nContent-Type: text/plain; charset=us-ascii\r\n"
	    "Content-Transfer-Encoding: 7bit\r\n\r\n"
	    "This is an aggregate TLS report from %s about %s.\r\n\r\n"
	    "--%s\r\nContent-Type: application/tlsrpt+gzip\r\n"
	    "Content-Transfer-Encoding: base64\r\n"
	    "Content-Disposition: attachment;\r\n"
	    " filename=\"%s!%s!%lld!%lld.json.gz\"\r\n\r\n",
	    rp.hostname, date, to, t->domain, rp.hostname, rid, rid,
	    t->domain, rp.hostname, bound, bound, rp.hostname, t->domain,
	    bound, rp.hostname, t->domain, (long long)t->begin,
	    (long long)t->end) == -1)
		goto fail;
	for (i = 0, n = strlen(b64); i < n; i += 76)
		if (buf_printf(&b, "%.*s\r\n", (int)(n - i < 76 ? n - i : 76),
		    b64 + i) == -1)
			goto fail;
	if (buf_printf(&b, "\r\n--%s--\r\n", bound) == -1)
		goto fail;
	free(json);
	free(gz);
	free(b64);
	*len = b.len;
	return buf_steal(&b);
fail:
	free(json);
	free(gz);
	free(b64);
	buf_free(&b);
	return NULL;
}

/* rua_mailto - the address of one "mailto:" URI (%-decoded, no query) */
static int
rua_mailto(const char *u, size_t len, char *out, size_t outlen)
{
	size_t	i, o = 0;
	int	hi, lo;

	if (len < 7 || strncasecmp(u, "mailto:", 7) != 0)
		return -1;
	for (i = 7; i < len && u[i] != '?'; i++) {
		char c = u[i];

		if (c == '%' && i + 2 < len &&
		    (hi = hex_digit((unsigned char)u[i + 1])) >= 0 &&
		    (lo = hex_digit((unsigned char)u[i + 2])) >= 0) {
			c = (char)(hi * 16 + lo);
			i += 2;
		}
		if ((unsigned char)c <= ' ' || (unsigned char)c >= 0x7f ||
		    c == '<' || c == '>' || c == ',' || o + 1 >= outlen)
			return -1;
		out[o++] = c;
	}
	out[o] = '\0';
	return o > 0 && strchr(out, '@') != NULL ? 0 : -1;
}

static void
task_free(struct rpt_task *t)
{
	json_decref(t->report);
	free(t);
}

/* task_unlink - take t off the in-flight list */
static void
task_unlink(struct rpt_task *t)
{
	struct rpt_task	**pp;

	for (pp = &rp.tasks; *pp != NULL; pp = &(*pp)->next)
		if (*pp == t) {
			*pp = t->next;
			return;
		}
}

/* txt_cb - _smtp._tls.DOMAIN answered: mail the report to each mailto */
static void
txt_cb(void *arg, int status, const unsigned char *abuf, int alen)
{
	struct rpt_task		*t = arg;
	struct ares_txt_ext	*txt = NULL, *x;
	char			 rec[2048], rpt[2048], addr[300], *text;
	const char		*p, *e, *f, *fe;
	size_t			 len = 0, tl;
	int			 n = 0, nrec = 0, found = 0;

	task_unlink(t);
	if (status != ARES_SUCCESS ||
	    ares_parse_txt_reply_ext(abuf, alen, &txt) != ARES_SUCCESS) {
		log_info("tlsrpt: no TLS-RPT record for %s (%s): report "
		    "dropped", t->domain, ares_strerror(status));
		task_free(t);
		return;
	}
	for (x = txt; x != NULL; x = x->next) {
		if (x->record_start)
			len = 0;
		if (len + x->length < sizeof(rec)) {
			memcpy(rec + len, x->txt, x->length);
			len += x->length;
		} else
			len = sizeof(rec);
		if ((x->next != NULL && !x->next->record_start) ||
		    len >= sizeof(rec))
			continue;
		rec[len] = '\0';
		if (strncmp(rec, "v=TLSRPTv1", 10) != 0 ||
		    (rec[10] != ';' && rec[10] != ' ' && rec[10] != '\t'))
			continue;
		if (nrec++ == 0)
			memcpy(rpt, rec, len + 1);
		found = 1;
	}
	ares_free_data(txt);
	if (!found || nrec != 1) {
		log_info("tlsrpt: no TLS-RPT record for %s: report dropped",
		    t->domain);
		task_free(t);
		return;
	}
	/* rua=URI[,URI...] among the ";"-separated fields */
	for (p = rpt + 10; *p != '\0'; p = *fe ? fe + 1 : fe) {
		fe = p + strcspn(p, ";");
		while (p < fe && (*p == ' ' || *p == '\t'))
			p++;
		if (fe - p < 4 || strncmp(p, "rua=", 4) != 0)
			continue;
		for (f = p + 4; f < fe && n < RPT_RUA_MAX; f = *e == ',' ?
		    e + 1 : fe) {
			while (f < fe && (*f == ' ' || *f == '\t'))
				f++;
			for (e = f; e < fe && *e != ','; e++)
				;
			tl = (size_t)(e - f);
			while (tl > 0 && (f[tl - 1] == ' ' || f[tl - 1] == '\t'))
				tl--;
			if (rua_mailto(f, tl, addr, sizeof(addr)) == -1)
				continue;	/* https: and the like */
			if ((text = compose(t, addr, &len)) == NULL) {
				log_warnx("tlsrpt: cannot build the report "
				    "for %s", t->domain);
				continue;
			}
			submit(t, addr, text, len);
			free(text);
			n++;
		}
	}
	if (n == 0)
		log_info("tlsrpt: no mailto: rua for %s: report dropped",
		    t->domain);
	task_free(t);
}

/* task_start - the report of domain from the bucket's policies */
static int
task_start(const char *domain, json_t *pols, time_t begin, time_t end)
{
	struct rpt_task	*t;
	json_t		*arr, *e, *p;
	const char	*k;
	char		 qname[300], b1[32], b2[32], rid[400];

	if ((t = calloc(1, sizeof(*t))) == NULL || (arr = json_array()) == NULL) {
		free(t);
		return -1;
	}
	(void)snprintf(t->domain, sizeof(t->domain), "%s", domain);
	t->begin = begin;
	t->end = end;
	json_object_foreach(pols, k, p) {
		const char *d = json_string_value(json_object_get(p,
		    "policy-domain"));

		if (d != NULL && strcmp(d, domain) == 0 &&
		    (e = policy_entry(p)) != NULL)
			(void)json_array_append_new(arr, e);
	}
	rfc3339(begin, b1, sizeof(b1));
	rfc3339(end, b2, sizeof(b2));
	(void)snprintf(rid, sizeof(rid), "%lld.%s.%08x@%s", (long long)begin,
	    domain, arc4random(), rp.hostname);
	t->report = json_pack("{s:s,s:{s:s,s:s},s:s+,s:s,s:o}",
	    "organization-name", rp.hostname, "date-range", "start-datetime",
	    b1, "end-datetime", b2, "contact-info", "postmaster@",
	    rp.hostname, "report-id", rid, "policies", arr);
	if (t->report == NULL ||
	    snprintf(qname, sizeof(qname), "_smtp._tls.%s", domain) < 0) {
		free(t);
		return -1;
	}
	t->next = rp.tasks;
	rp.tasks = t;
	if (dlv_dns_query(qname, ns_t_txt, txt_cb, t) == -1) {
		task_unlink(t);
		task_free(t);
		return -1;
	}
	return 0;
}

int
dlv_tlsrpt_send(int all)
{
	json_t		*b, *pols, *p, *done;
	const char	*day, *k, *d;
	char		 today[16];
	time_t		 now = time(NULL), start, begin, end;
	size_t		 i;
	int		 n = 0;

	if (!rp.on)
		return -1;
	rpt_load();
	if (!rp.loaded || rp.days == NULL)
		return -1;
	rpt_day(now, today, &start);
	if ((done = json_array()) == NULL)
		return -1;
	json_object_foreach(rp.days, day, b) {
		if (!all && strcmp(day, today) >= 0)
			continue;
		begin = (time_t)json_integer_value(json_object_get(b, "begin"));
		if (strcmp(day, today) == 0)
			end = now;
		else {
			struct tm tm;

			(void)gmtime_r(&begin, &tm);
			end = begin - (tm.tm_hour * 3600 + tm.tm_min * 60 +
			    tm.tm_sec) + 86399;
		}
		pols = json_object_get(b, "policies");
		/* one report per policy domain: at its first entry */
		json_object_foreach(pols, k, p) {
			json_t *q;
			const char *k2;
			int first = 1;

			d = json_string_value(json_object_get(p,
			    "policy-domain"));
			if (d == NULL)
				continue;
			json_object_foreach(pols, k2, q) {
				if (q == p)
					break;
				const char *qd = json_string_value(
				    json_object_get(q, "policy-domain"));

				if (qd != NULL && strcmp(d, qd) == 0)
					first = 0;
			}
			if (first && task_start(d, pols, begin, end) == 0)
				n++;
		}
		(void)json_array_append_new(done, json_string(day));
	}
	for (i = 0; i < json_array_size(done); i++)
		(void)json_object_del(rp.days, json_string_value(
		    json_array_get(done, i)));
	json_decref(done);
	rp.last_end = all ? now : start;
	rpt_store();
	log_info("tlsrpt: %d report(s) being prepared (%s)", n, all ?
	    "everything counted so far" : "the days before today");
	return n;
}

/* daily_arm - after the next 00:00 UTC, plus a random delay (RFC 8460 4.1) */
static void
daily_arm(void)
{
	struct timeval	tv;
	time_t		now = time(NULL), start;
	char		day[16];

	if (rp.daily == NULL)
		return;
	rpt_day(now, day, &start);
	tv.tv_sec = start + 86400 - now + (time_t)arc4random_uniform(
	    RPT_DELAY_MAX);
	tv.tv_usec = 0;
	evtimer_add(rp.daily, &tv);
}

static void
daily_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	(void)dlv_tlsrpt_send(0);
	daily_arm();
}

/* rpt_cfg - what the module keeps of cfg */
static void
rpt_cfg(const struct config *cfg)
{
	char	host[256];

	rp.on = cfg->tlsrpt;
	rp.cfg = cfg;
	if (cfg->hostname != NULL)
		(void)snprintf(rp.hostname, sizeof(rp.hostname), "%s",
		    cfg->hostname);
	else if (gethostname(host, sizeof(host)) == 0) {
		host[sizeof(host) - 1] = '\0';
		(void)snprintf(rp.hostname, sizeof(rp.hostname), "%s", host);
	} else
		(void)snprintf(rp.hostname, sizeof(rp.hostname), "localhost");
}

int
dlv_tlsrpt_init(const struct config *cfg, struct event_base *base,
    char *err, size_t errlen)
{
	rpt_cfg(cfg);
	if ((rp.daily = evtimer_new(base, daily_cb, NULL)) == NULL ||
	    (rp.flush = evtimer_new(base, flush_cb, NULL)) == NULL) {
		(void)snprintf(err, errlen, "tlsrpt: out of memory");
		return -1;
	}
	if (rp.on)
		daily_arm();
	return 0;
}

void
dlv_tlsrpt_reload(const struct config *cfg)
{
	int	was = rp.on;

	rpt_cfg(cfg);
	if (rp.on && !was)
		daily_arm();
	else if (!rp.on && rp.daily != NULL)
		evtimer_del(rp.daily);
}

void
dlv_tlsrpt_shutdown(void)
{
	struct rpt_task	*t;

	if (rp.dirty)
		rpt_store();
	while ((t = rp.tasks) != NULL) {
		rp.tasks = t->next;
		dlv_dns_query_cancel(t);
		task_free(t);
	}
	if (rp.daily != NULL)
		event_free(rp.daily);
	if (rp.flush != NULL)
		event_free(rp.flush);
	rp.daily = rp.flush = NULL;
	json_decref(rp.days);
	rp.days = NULL;
	rp.loaded = 0;
	rp.dirty = 0;
}
