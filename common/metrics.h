/*
 * metrics.h - the counters and histograms of `/metrics` (Prometheus text
 * format 0.0.4), kept in memory as the work happens, never computed by a
 * scan; web/web_metrics.c renders them with the queue's gauges.
 * Counters are atomics (relaxed): any thread may count.  Histograms,
 * the milter table and metrics_render belong to the loop thread.
 * Label values are closed sets (README "Metrics"); a value outside its
 * set is ignored (never a new series).  Counters start at 0 with the
 * process and only grow.
 *
 * Where each is called:
 *   metrics_delivery         queue_sched.c apply_results, per recipient
 *   metrics_delivery_attempt queue_sched.c, per delivery job at its end
 *   metrics_message_delay    queue_sched.c apply_results, per recipient
 *                            that became final (arrival to outcome)
 *   metrics_smtp_session     smtpd_session.c, +1 when a session is made,
 *                            -1 when it is freed
 *   metrics_smtp_reject      smtpd_reply.c smtpd_reply, every 4xx/5xx
 *   metrics_tls_outbound     delivery/dlv_smtp.c, once per SMTP client
 *                            connection at its TLS outcome (policy "none"
 *                            so far; DANE and MTA-STS pass theirs)
 *   metrics_dkim_signature   filter/ DKIM signing, per signature added
 *                            (after the merge; may run in a worker)
 *   metrics_milter_action    filter/ milter client, per final reply of a
 *                            milter and per modification it applied
 *                            (after the merge; loop thread)
 */
#ifndef WAYMARK_METRICS_H
#define WAYMARK_METRICS_H

#include <stddef.h>
#include <stdint.h>

struct buf;

/* metrics_delivery - one recipient's attempt ended: result = delivered |
 * relayed | transferred | deferred | failed; transport = smtp | lmtp |
 * maildir */
void	metrics_delivery(const char *result, const char *transport);
/* metrics_delivery_attempt - one delivery job (a Maildir batch, an LMTP
 * or SMTP transaction for its recipients) took seconds */
void	metrics_delivery_attempt(double seconds);
/* metrics_message_delay - a recipient became final seconds after the
 * message's arrival */
void	metrics_message_delay(double seconds);
/* metrics_smtp_session - delta (+1 / -1) SMTP server sessions open */
void	metrics_smtp_session(int delta);
/* metrics_smtp_reject - the SMTP server sent a reply with code (400-599) */
void	metrics_smtp_reject(int code);
/*
 * metrics_tls_outbound - one outbound SMTP connection's TLS outcome.
 * policy = none | dane | mta-sts.  result = verified (TLS, the peer's
 * certificate or TLSA/policy match checked) | opportunistic (TLS, the
 * certificate not checked) | mismatch (DANE or MTA-STS: the peer did not
 * match the policy) | failed (STARTTLS refused, the handshake or the
 * verification failed, or TLS required and not offered) | cleartext
 * (the transaction went on without TLS).
 */
void	metrics_tls_outbound(const char *policy, const char *result);
/* metrics_dkim_signature - a DKIM-Signature was added: alg = rsa-sha256 |
 * ed25519-sha256 */
void	metrics_dkim_signature(const char *alg);
/*
 * metrics_milter_action - milter (its `milters` spec, the name used in
 * events) answered or did action = continue | accept | reject |
 * tempfail | discard | replycode | quarantine | modify.  At most
 * METRICS_MILTERS names of up to 127 bytes (others are ignored).  Loop
 * thread.
 * metrics_milter_declare makes milter's rows (all 0) appear at once.
 */
#define METRICS_MILTERS	32
void	metrics_milter_action(const char *milter, const char *action);
void	metrics_milter_declare(const char *milter);

/* what metrics_render takes from the queue (queue/queue.h) and the spool */
struct metrics_queue_gauge {
	const char	*state;		/* the handling state's keyword */
	uint64_t	 messages;
	double		 oldest_seconds;	/* 0 when there are none */
};

/*
 * metrics_render - the whole exposition into b: every series with its
 * HELP and TYPE lines (always, even without samples), label values
 * escaped, histogram buckets cumulative with le="+Inf" = _count, the
 * last line ended by "\n".  spool_free < 0: unknown (no sample).
 * 0, or -1 when b is full.
 */
int	metrics_render(struct buf *b, const struct metrics_queue_gauge *q,
	    size_t nq, int64_t spool_free);
/* metrics_escape - a label value escaped (\\, \", \n) into out; 0, -1
 * when it does not fit */
int	metrics_escape(char *out, size_t outlen, const char *v);

#endif
