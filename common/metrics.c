#include "config.h"
/*
 * metrics.c - the in-memory counters and histograms of `/metrics` and
 * their rendering in the Prometheus text format 0.0.4
 * (specs/prometheus-text-format.md).
 * Owns: the closed label sets (results, transports, TLS policies and
 *       results, DKIM algorithms, milter actions), the counters
 *       (relaxed atomics: a worker may count), the histograms' fixed
 *       buckets (loop thread only, so buckets, sum and count agree),
 *       the milter name table, the label escaping.
 * Not here: the HTTP listener (web/web_metrics.c), the queue's gauges
 *       (queue/queue_gauge.c), the free space of the spool.
 * Invariants: every metric is one group, HELP and TYPE first, in the
 *       order of the table of README "Metrics"; known label
 *       combinations are emitted with 0 from the start (rate() works
 *       from the first scrape); no timestamps; the last line ends in \n.
 */

#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "common/buf.h"
#include "common/metrics.h"

#define NELEM(a)	(sizeof(a) / sizeof((a)[0]))

static const char *const results[] = {
	"delivered", "relayed", "transferred", "deferred", "failed"
};
static const char *const transports[] = { "maildir", "lmtp", "smtp" };
static const char *const tls_policies[] = { "none", "dane", "mta-sts" };
static const char *const tls_results[] = {
	"verified", "opportunistic", "mismatch", "failed", "cleartext"
};
static const char *const dkim_algs[] = { "rsa-sha256", "ed25519-sha256" };
static const char *const milter_actions[] = {
	"continue", "accept", "reject", "tempfail", "discard", "replycode",
	"quarantine", "modify"
};

/* upper bounds of the histograms' buckets (+Inf implied), seconds */
static const double attempt_le[] = {
	0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300
};
static const double delay_le[] = {
	0.1, 0.5, 1, 5, 10, 60, 300, 900, 3600, 14400, 86400, 432000
};

#define REJ_MIN		400
#define REJ_MAX		599
#define HIST_MAX	16

struct hist {
	const double	*le;
	size_t		 nle;
	uint64_t	 bucket[HIST_MAX];	/* not cumulative; [nle] = +Inf */
	uint64_t	 count;
	double		 sum;
};

struct milter_row {
	char			 name[128];
	_Atomic uint64_t	 n[NELEM(milter_actions)];
};

static _Atomic uint64_t	deliveries[NELEM(results)][NELEM(transports)];
static _Atomic uint64_t	rejects[REJ_MAX - REJ_MIN + 1];
static _Atomic uint64_t	tls_out[NELEM(tls_policies)][NELEM(tls_results)];
static _Atomic uint64_t	dkim[NELEM(dkim_algs)];
static _Atomic int64_t	sessions;
static struct milter_row milters[METRICS_MILTERS];
static size_t		nmilters;
static struct hist	attempt_hist = { attempt_le, NELEM(attempt_le), {0}, 0, 0 };
static struct hist	delay_hist = { delay_le, NELEM(delay_le), {0}, 0, 0 };

/* lookup - v's index in names[0..n-1], -1 when absent */
static int
lookup(const char *const *names, size_t n, const char *v)
{
	size_t	i;

	if (v == NULL)
		return -1;
	for (i = 0; i < n; i++)
		if (strcmp(names[i], v) == 0)
			return (int)i;
	return -1;
}

/* bump - one more in c */
static inline void
bump(_Atomic uint64_t *c)
{
	atomic_fetch_add_explicit(c, 1, memory_order_relaxed);
}

/* get - c's value */
static inline uint64_t
get(_Atomic uint64_t *c)
{
	return atomic_load_explicit(c, memory_order_relaxed);
}

/* hist_observe - one observation v (negative counts as 0) */
static void
hist_observe(struct hist *h, double v)
{
	size_t	i;

	if (!(v >= 0))
		v = 0;
	for (i = 0; i < h->nle && v > h->le[i]; i++)
		;
	h->bucket[i]++;
	h->count++;
	h->sum += v;
}

void
metrics_delivery(const char *result, const char *transport)
{
	int	r = lookup(results, NELEM(results), result);
	int	t = lookup(transports, NELEM(transports), transport);

	if (r >= 0 && t >= 0)
		bump(&deliveries[r][t]);
}

void
metrics_delivery_attempt(double seconds)
{
	hist_observe(&attempt_hist, seconds);
}

void
metrics_message_delay(double seconds)
{
	hist_observe(&delay_hist, seconds);
}

void
metrics_smtp_session(int delta)
{
	atomic_fetch_add_explicit(&sessions, delta, memory_order_relaxed);
}

void
metrics_smtp_reject(int code)
{
	if (code >= REJ_MIN && code <= REJ_MAX)
		bump(&rejects[code - REJ_MIN]);
}

void
metrics_tls_outbound(const char *policy, const char *result)
{
	int	p = lookup(tls_policies, NELEM(tls_policies), policy);
	int	r = lookup(tls_results, NELEM(tls_results), result);

	if (p >= 0 && r >= 0)
		bump(&tls_out[p][r]);
}

void
metrics_dkim_signature(const char *alg)
{
	int	a = lookup(dkim_algs, NELEM(dkim_algs), alg);

	if (a >= 0)
		bump(&dkim[a]);
}

/* milter_row - milter's row, made when new; NULL when the table is full */
static struct milter_row *
milter_row(const char *milter)
{
	size_t	i;

	if (milter == NULL || strlen(milter) >= sizeof(milters[0].name))
		return NULL;
	for (i = 0; i < nmilters; i++)
		if (strcmp(milters[i].name, milter) == 0)
			return &milters[i];
	if (nmilters == METRICS_MILTERS)
		return NULL;
	memcpy(milters[nmilters].name, milter, strlen(milter) + 1);
	return &milters[nmilters++];
}

void
metrics_milter_declare(const char *milter)
{
	(void)milter_row(milter);
}

void
metrics_milter_action(const char *milter, const char *action)
{
	struct milter_row	*row;
	int			 a;

	if ((a = lookup(milter_actions, NELEM(milter_actions), action)) < 0 ||
	    (row = milter_row(milter)) == NULL)
		return;
	bump(&row->n[a]);
}

int
metrics_escape(char *out, size_t outlen, const char *v)
{
	size_t	o = 0;

	for (; *v != '\0'; v++) {
		const char *e = *v == '\\' ? "\\\\" : *v == '"' ? "\\\"" :
		    *v == '\n' ? "\\n" : NULL;
		size_t n = e != NULL ? 2 : 1;

		if (o + n >= outlen)
			return -1;
		if (e != NULL)
			memcpy(out + o, e, 2);
		else
			out[o] = *v;
		o += n;
	}
	if (outlen == 0)
		return -1;
	out[o] = '\0';
	return 0;
}

/* head - the HELP and TYPE lines of name */
static int
head(struct buf *b, const char *name, const char *type, const char *help)
{
	return buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name,
	    type) < 0 ? -1 : 0;
}

/* hist_render - h's buckets (cumulative), _sum and _count */
static int
hist_render(struct buf *b, const char *name, const struct hist *h)
{
	uint64_t	cum = 0;
	size_t		i;

	for (i = 0; i < h->nle; i++) {
		cum += h->bucket[i];
		if (buf_printf(b, "%s_bucket{le=\"%g\"} %llu\n", name, h->le[i],
		    (unsigned long long)cum) < 0)
			return -1;
	}
	cum += h->bucket[h->nle];
	if (buf_printf(b, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %.17g\n"
	    "%s_count %llu\n", name, (unsigned long long)cum, name, h->sum,
	    name, (unsigned long long)h->count) < 0)
		return -1;
	return 0;
}

int
metrics_render(struct buf *b, const struct metrics_queue_gauge *q,
    size_t nq, int64_t spool_free)
{
	char	esc[sizeof(milters[0].name) * 2 + 1];
	size_t	i, j;

	if (head(b, "waymark_queue_messages", "gauge",
	    "Messages in the queue, by handling state.") == -1)
		return -1;
	for (i = 0; i < nq; i++)
		if (buf_printf(b, "waymark_queue_messages{state=\"%s\"} %llu\n",
		    q[i].state, (unsigned long long)q[i].messages) < 0)
			return -1;
	if (head(b, "waymark_queue_oldest_seconds", "gauge",
	    "Age in seconds of the oldest message in each handling state "
	    "(0 when none).") == -1)
		return -1;
	for (i = 0; i < nq; i++)
		if (buf_printf(b, "waymark_queue_oldest_seconds{state=\"%s\"} "
		    "%.17g\n", q[i].state, q[i].oldest_seconds) < 0)
			return -1;

	if (head(b, "waymark_deliveries_total", "counter",
	    "Recipient delivery attempts ended, by result and transport.") ==
	    -1)
		return -1;
	for (i = 0; i < NELEM(results); i++)
		for (j = 0; j < NELEM(transports); j++)
			if (buf_printf(b, "waymark_deliveries_total{result=\"%s\","
			    "transport=\"%s\"} %llu\n", results[i],
			    transports[j],
			    (unsigned long long)get(&deliveries[i][j])) < 0)
				return -1;
	if (head(b, "waymark_delivery_attempt_seconds", "histogram",
	    "Duration of one delivery job (Maildir batch, LMTP or SMTP "
	    "transaction) in seconds.") == -1 ||
	    hist_render(b, "waymark_delivery_attempt_seconds",
	    &attempt_hist) == -1)
		return -1;
	if (head(b, "waymark_message_delay_seconds", "histogram",
	    "Time from arrival to a recipient's final outcome in seconds.") ==
	    -1 || hist_render(b, "waymark_message_delay_seconds",
	    &delay_hist) == -1)
		return -1;

	if (head(b, "waymark_smtp_sessions", "gauge",
	    "SMTP server sessions open.") == -1 ||
	    buf_printf(b, "waymark_smtp_sessions %lld\n", (long long)
	    atomic_load_explicit(&sessions, memory_order_relaxed)) < 0)
		return -1;
	if (head(b, "waymark_smtp_rejects_total", "counter",
	    "SMTP server replies with a 4xx or 5xx code, by code.") == -1)
		return -1;
	for (i = 0; i < NELEM(rejects); i++)
		if (get(&rejects[i]) != 0 && buf_printf(b,
		    "waymark_smtp_rejects_total{code=\"%zu\"} %llu\n",
		    i + REJ_MIN, (unsigned long long)get(&rejects[i])) < 0)
			return -1;

	if (head(b, "waymark_tls_outbound_total", "counter",
	    "Outbound SMTP connections by TLS policy and outcome.") == -1)
		return -1;
	for (i = 0; i < NELEM(tls_policies); i++)
		for (j = 0; j < NELEM(tls_results); j++)
			if (buf_printf(b, "waymark_tls_outbound_total{policy="
			    "\"%s\",result=\"%s\"} %llu\n", tls_policies[i],
			    tls_results[j],
			    (unsigned long long)get(&tls_out[i][j])) < 0)
				return -1;
	if (head(b, "waymark_dkim_signatures_total", "counter",
	    "DKIM signatures added, by algorithm.") == -1)
		return -1;
	for (i = 0; i < NELEM(dkim_algs); i++)
		if (buf_printf(b, "waymark_dkim_signatures_total{alg=\"%s\"} "
		    "%llu\n", dkim_algs[i], (unsigned long long)get(&dkim[i])) <
		    0)
			return -1;
	if (head(b, "waymark_milter_actions_total", "counter",
	    "Milter replies and modifications, by milter and action.") == -1)
		return -1;
	for (i = 0; i < nmilters; i++) {
		if (metrics_escape(esc, sizeof(esc), milters[i].name) == -1)
			return -1;
		for (j = 0; j < NELEM(milter_actions); j++)
			if (buf_printf(b, "waymark_milter_actions_total{milter="
			    "\"%s\",action=\"%s\"} %llu\n", esc,
			    milter_actions[j],
			    (unsigned long long)get(&milters[i].n[j])) < 0)
				return -1;
	}
	if (head(b, "waymark_spool_free_bytes", "gauge",
	    "Free space in bytes on the spool's file system.") == -1)
		return -1;
	if (spool_free >= 0 && buf_printf(b, "waymark_spool_free_bytes %lld\n",
	    (long long)spool_free) < 0)
		return -1;
	return 0;
}
