/*
 * delivery.h - delivery agents: local (Maildir, or LMTP when `lmtp` is
 * set) and remote (SMTP client with MX routing via c-ares, or smarthost),
 * and the failure-notice composer.
 * A delivery job copies everything it needs out of the qmsg before it
 * starts (workers never touch a qmsg); its completion runs in the event
 * loop thread and reports one result per recipient asked for.
 */
#ifndef WAYMARK_DELIVERY_H
#define WAYMARK_DELIVERY_H

#include <stddef.h>
#include "../queue/queue.h"

struct config;

/*
 * dlv_tls_policy - the outbound TLS policy a remote (SMTP) delivery
 * attempt ran under: DANE (RFC 7672) wins when it applies, then MTA-STS
 * (RFC 8461), else none (opportunistic, or what smtp_tls asks).  Unset
 * for local and LMTP deliveries and for results without a session.
 * Names (events, logs, /metrics label `policy`): dlv_tls_policy_name.
 */
enum dlv_tls_policy {
	DLV_TLS_UNSET = 0,	/* not an SMTP attempt: no tls_* fields */
	DLV_TLS_NONE,		/* "none" */
	DLV_TLS_DANE,		/* "dane" */
	DLV_TLS_MTA_STS,	/* "mta-sts" */
};

static inline const char *
dlv_tls_policy_name(enum dlv_tls_policy p)
{
	switch (p) {
	case DLV_TLS_NONE:
		return "none";
	case DLV_TLS_DANE:
		return "dane";
	case DLV_TLS_MTA_STS:
		return "mta-sts";
	default:
		return "";
	}
}

struct dlv_result {
	size_t		 ridx;		/* index into m->rcpts */
	enum rcpt_status status;	/* RS_DELIVERED, RS_DEFERRED or RS_FAILED */
	int		 code;		/* SMTP-style code: 250, 450, 550 ... */
	char		 enh[16];	/* "2.0.0" */
	char		 text[512];	/* human reason, e.g. "delivered to maildir" */
	char		 remote[256];	/* remote MTA or "" for local */
	/* SMTP relaying: the next hop advertised DSN / MTRK (-1 unknown);
	 * taken into the qrcpt for RS_RELAYED results */
	int		 hop_dsn;
	int		 hop_mtrk;
	/* SMTP relaying: the next hop advertised DELIVERBY (RFC 2852;
	 * -1 unknown): queue_notice.c's "relayed" DSN for mode N */
	int		 hop_by;
	/* SMTP relaying: this recipient's transaction sent MTRK= on MAIL
	 * (RFC 3885: certifier, ENVID, MTRK hop, time left); the queue
	 * records such an RS_RELAYED result as RS_TRANSFERRED */
	int		 mtrk_sent;
	/* SMTP relaying: the TLS policy of the attempt and its outcome,
	 * one word (plaintext, tls, verified, mismatch, no-starttls,
	 * handshake-failed, tlsa-error; "" = no TLS step reached); the
	 * details (DANE usage, failure reason) are in text */
	enum dlv_tls_policy tls_policy;
	char		 tls_result[24];
};

/* dlv_done_fn - called once per job in the loop thread; res[] has n entries */
typedef void (*dlv_done_fn)(void *arg, const struct dlv_result *res, size_t n);

/*
 * dlv_init - before the privilege drop: create cfg->mailbox_root when
 * missing (owned by uid/gid unless they are -1) and keep a directory fd
 * on it; every later Maildir path is opened relative to that fd (openat,
 * mkdirat, renameat), so it works when the root's parents are not
 * searchable by the unprivileged user.  -1 with err set.
 */
int	dlv_init(const struct config *cfg, long uid, long gid, char *err,
	    size_t errlen);
/* dlv_reload - new configuration (mailbox_root changes need a restart) */
void	dlv_reload(const struct config *cfg);

/*
 * dlv_local_start - deliver recipients ridx[0..n-1] of m (all in
 * local_domains) to mailbox_root/<domain>/<local>/ (Maildir: tmp, fsync,
 * rename into new, fsync new).  File = "Return-Path: <sender>", the trace
 * fields newest first, then the body, LF line endings.  body_path is the
 * spool file.  Returns 0, or -1 if the job could not be queued (then done
 * is never called).
 */
int	dlv_local_start(const struct config *cfg, const struct qmsg *m,
	    const char *body_path, const size_t *ridx, size_t n,
	    dlv_done_fn done, void *arg);

/*
 * dlv_lmtp_start - like dlv_local_start, but over LMTP (RFC 2033) to
 * cfg->lmtp ("unix:/path", "ADDR:PORT" or "[v6]:PORT"): LHLO, one
 * transaction, one reply per accepted recipient after the content.
 * Results RS_DELIVERED (2xx), RS_DEFERRED, RS_FAILED with remote =
 * "lmtp:PATH" (or "lmtp:ADDR:PORT").  Needs dlv_remote_init.  0, or -1
 * if the job could not be started (then done is never called).
 */
int	dlv_lmtp_start(const struct config *cfg, const struct qmsg *m,
	    const char *body_path, const size_t *ridx, size_t n,
	    dlv_done_fn done, void *arg);

/*
 * dlv_remote_init - c-ares channel on base (servers from cfg->dns, else
 * the system resolver), SSL_CTX for the client.  After the privilege
 * drop.  -1 with err set.
 */
int	dlv_remote_init(const struct config *cfg, struct event_base *base,
	    char *err, size_t errlen);
void	dlv_remote_reload(const struct config *cfg);
/*
 * dlv_remote_shutdown - abort every remote job: each still-running job's
 * done() is called (synchronously) with RS_DEFERRED 451 4.3.2 "delivery
 * interrupted by shutdown" for its unfinished recipients; then free the
 * resolver and cached connections.  Call before work_shutdown().
 */
void	dlv_remote_shutdown(void);
/*
 * dlv_remote_start - deliver recipients ridx[0..n-1] of m, all with the
 * same domain (not a local domain), over SMTP: to cfg->smarthost when
 * set, else to the domain's MX hosts by preference (implicit MX when
 * none).  Results per recipient: RS_RELAYED (2xx), RS_DEFERRED, RS_FAILED
 * with the remote reply (code, enhanced code, text) and remote =
 * "host[addr]".  0, or -1 if the job could not be started.
 */
int	dlv_remote_start(const struct config *cfg, const struct qmsg *m,
	    const char *body_path, const size_t *ridx, size_t n,
	    dlv_done_fn done, void *arg);

/*
 * dlv_notice_write - write an RFC 3464 delivery status notification
 * (RFC 6522 multipart/report; report-type=delivery-status) of kind
 * d->kind about recipients d->idx[0..d->n-1] of m to fd: RFC 5322 header
 * (From: MAILER-DAEMON@hostname, To: <d->to or m->sender>, Subject by
 * kind, Date, Message-ID, Auto-Submitted: auto-replied, MIME-Version);
 * a human part; a message/delivery-status part (Original-Envelope-Id
 * when m->envid, Reporting-MTA dns; hostname, Arrival-Date,
 * Deliver-By-Date when m->deliver_by (RFC 2852 5); per
 * recipient Original-Recipient from ORCPT, Final-Recipient rfc822;addr,
 * Action by kind, Status, Remote-MTA, Diagnostic-Code, Last-Attempt-Date,
 * Will-Retry-Until for delayed); and the returned content read from
 * body_path: for DLV_DSN_FAILED unless RET=HDRS the whole message
 * (message/rfc822, Waymark's trace fields first) when it is at most
 * d->return_max bytes, else (and for every other kind) the header
 * section as text/rfc822-headers; none when body_path is NULL or
 * unreadable.  CRLF line ends.  Returns the bytes written, or -1.
 */
enum {
	DLV_DSN_FAILED = 0, DLV_DSN_DELAYED, DLV_DSN_DELIVERED,
	DLV_DSN_RELAYED, DLV_DSN_EXPANDED
};
struct dlv_dsn {
	int		 kind;		/* DLV_DSN_* */
	const size_t	*idx;		/* recipients of m it reports */
	size_t		 n;
	const char	*to;		/* NULL = m->sender (must not be "") */
	const char	*hostname;	/* Reporting-MTA; NULL = "localhost" */
	time_t		 now;		/* Date */
	time_t		 retry_until;	/* delayed: Will-Retry-Until; 0 = none */
	uint64_t	 return_max;	/* failed: largest full message returned */
	const char	*status;	/* every recipient's Status (e.g. "4.4.7"
					 * at a DELIVERBY deadline); NULL = its own */
	const char	*note;		/* a sentence added to the human part, or NULL */
};
long	dlv_notice_write(int fd, const struct qmsg *m, const char *body_path,
	    const struct dlv_dsn *d);

/*
 * TLS-RPT (RFC 8460, dlv_tlsrpt.c): dlv_tlsrpt_send queues the aggregate
 * reports of the counted days (all != 0: everything counted so far, else
 * the days before today, as the daily job does) to the `mailto:` rua of
 * each policy domain's `_smtp._tls` TXT record; the look-ups run in the
 * background.  Returns the number of policy domains reported, or -1 when
 * `tlsrpt` is off (or the store is not open).  Reports are queued with
 * client name DLV_TLSRPT_CLIENT: their delivery ignores TLS policies.
 */
#define DLV_TLSRPT_CLIENT	"waymark-tlsrpt"
int	dlv_tlsrpt_send(int all);

#endif
