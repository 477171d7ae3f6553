/*
 * queue.h - the durable queue: body spool files + Berkeley DB metadata,
 * group commit, the handling-state machine, trace fields, the scheduler.
 * The only public header of queue/; no other part includes db.h or
 * touches a record encoding.  Every function here runs in the event-loop
 * thread; completions are called back in that thread too.
 *
 * Ownership: a struct qmsg handed to queue_accept belongs to the queue
 * from then on (it frees it).  Callers outside queue/ read qmsg/qrcpt
 * fields but never modify them.
 */
#ifndef WAYMARK_QUEUE_H
#define WAYMARK_QUEUE_H

#include <stddef.h>
#include <stdio.h>
#include <stdint.h>
#include <time.h>
#include "../common/util.h"

struct config;
struct event_base;

/* RFC 3461 NOTIFY bits (NEVER excludes the others) and RET values */
#define DSN_NOTIFY_NEVER	0x1u
#define DSN_NOTIFY_SUCCESS	0x2u
#define DSN_NOTIFY_FAILURE	0x4u
#define DSN_NOTIFY_DELAY	0x8u
enum { DSN_RET_NONE = 0, DSN_RET_FULL, DSN_RET_HDRS };

enum rcpt_status {
	RS_QUEUED = 0, RS_DEFERRED, RS_DELIVERED, RS_RELAYED,
	RS_TRANSFERRED, RS_FAILED, RS_EXPANDED
};
const char	*rcpt_status_name(enum rcpt_status s);	/* "queued", ... as in DESIGN.md JSON */
int		 rcpt_status_final(enum rcpt_status s);	/* 1 unless queued/deferred */

/* RFC 2852 BY= flags of qmsg.by_flags */
#define BY_RETURN	0x1u	/* mode R: fail at the deadline */
#define BY_NOTIFY	0x2u	/* mode N: a delayed DSN at the deadline */
#define BY_TRACE	0x4u	/* T: a delivered/relayed DSN is requested */
#define BY_DONE		0x8u	/* the deadline's action was taken (the
				 * scheduler: R failed, N's delayed DSN sent) */
#define BY_ALL		(BY_RETURN | BY_NOTIFY | BY_TRACE | BY_DONE)

/* RFC 6729 handling states */
enum msg_state {
	MS_NORMAL = 0, MS_AUTH, MS_CONTENT, MS_CONVERT, MS_MODERATION,
	MS_QUARANTINE, MS_TIMED, MS_OUTBOUND, MS_OTHER
};
const char	*msg_state_name(enum msg_state s);	/* "normal", ... */
int		 msg_state_parse(const char *s);	/* -1 if unknown */

struct qrcpt {
	char		*addr;		/* "local@domain" as received, no <> */
	char		*orcpt;		/* RFC 3461 ORCPT "addr-type;xtext-decoded" or NULL */
	unsigned	 notify;	/* DSN_NOTIFY_* bits; 0 = not given */
	int		 hop_dsn;	/* next hop advertised DSN (-1 unknown) */
	int		 hop_mtrk;	/* next hop advertised MTRK (-1 unknown) */
	int		 dsn_delay_sent; /* the "delayed" DSN was queued (once) */
	int		 no_mtrk;	/* list expansion: MTRK is not passed on
					 * (RFC 3885 / RFC 3461 5.2.7.3) */
	enum rcpt_status status;
	unsigned	 attempts;
	time_t		 next_attempt;	/* 0 when final */
	time_t		 last_attempt;	/* 0 = never */
	int		 last_code;	/* 0 = no reply yet */
	char		 last_enh[16];	/* "4.2.0"; "" = none */
	char		*last_text;	/* NULL = none */
	char		*remote_mta;	/* NULL = none */
	int		 busy;		/* in-memory only: a delivery is running */
};

/* qmsg.intl: SMTPUTF8 (RFC 6531) facts stored with the message; a
 * non-ASCII envelope address is read off the addresses themselves */
#define QM_SMTPUTF8	0x1u	/* MAIL had the SMTPUTF8 parameter */
#define QM_UTF8_HDR	0x2u	/* UTF-8 in the header section (RFC 6532) */

struct qmsg {
	char		 qid[QID_SIZE];
	time_t		 arrival;
	uint64_t	 size;		/* bytes in the body file */
	char		*sender;	/* "" for <> */
	char		*envid;		/* RFC 3461 ENVID (xtext-decoded) or NULL */
	int		 ret;		/* DSN_RET_NONE, DSN_RET_FULL, DSN_RET_HDRS */
	char		*mtrk_certifier; /* RFC 3885 base64 certifier B or NULL */
	long		 mtrk_timeout;	/* seconds given with MTRK=, 0 = none */
	time_t		 mtrk_expiry;	/* tracking record expiry, 0 = untracked */
	char		*auth_user;	/* authenticated submitter or NULL */
	char		*client_addr;	/* "127.0.0.1" */
	char		*client_name;	/* reverse DNS, NULL if unknown */
	char		*helo;
	char		*tls;		/* "TLSv1.3 TLS_AES_256_GCM_SHA384" or NULL */
	char		*message_id;	/* Message-ID header value or NULL */
	int		 body_8bit;	/* 8-bit octets seen in the content */
	int		 body_ended;	/* the writer called queue_body_end
					 * (not stored; queue_accept skips it) */
	unsigned	 intl;		/* RFC 6531: QM_SMTPUTF8 | QM_UTF8_HDR */
	int		 body_binary;	/* RFC 3030 BODY=BINARYMIME: relayed
					 * only to BINARYMIME hops, by BDAT */
	/* RFC 8689: MAIL had REQUIRETLS (requiretls); else a valid
	 * "TLS-Required: No" header field (tls_optional: the recipient
	 * domain's DANE / MTA-STS policy does not block delivery) */
	int		 requiretls;
	int		 tls_optional;
	enum msg_state	 state;
	char		*state_value;	/* RFC 2045 token or NULL */
	char		*state_reason;	/* why it is in state (comment text) or NULL */
	time_t		 state_since;	/* when it entered state (0 = arrival) */
	/* RFC 4865 FUTURERELEASE: release time, and the request as given
	 * ("for=SECONDS" / "until=DATE-TIME") for Future-Release-Request */
	time_t		 hold_until;	/* 0 = none */
	char		*future_release;
	/* RFC 2852 DELIVERBY: absolute deadline (0 = none) and BY_* flags */
	time_t		 deliver_by;
	unsigned	 by_flags;
	/* queue_lifetime counts from here (arrival, moved on by the time
	 * spent held, or the release time of a timed message) */
	time_t		 expire_base;	/* 0 = arrival */
	/* policy `filter COMMAND`: the command a message in state content
	 * waits for (run again after a restart), or NULL */
	char		*filter_cmd;
	/* in memory only, at reception: who decided a state other than
	 * normal ("policy FILE:LINE", "protocol FUTURERELEASE"); recorded
	 * in the state event that queue_accept writes */
	char		*state_actor;
	struct qrcpt	*rcpts;
	size_t		 nrcpts;
	/*
	 * Trace fields Waymark adds, oldest first, each one complete field
	 * without the final line end, folded lines joined by "\n\t"
	 * ("Received: from a ([127.0.0.1])\n\tby b with ESMTP id Q; date").
	 * Persisted as events of kind "trace"; prepended newest first.
	 */
	char		**trace;
	size_t		 ntrace;
	/*
	 * Events decided at reception by filter/ (DKIM signing, milters),
	 * oldest first: written by queue_accept after the trace events, in
	 * the same commit; in memory only until then.
	 */
	struct qmsg_rxevent {
		char	*kind;
		char	*detail;
	}		*rx_events;
	size_t		 nrx_events;
	/* queue/-private bookkeeping follows; do not touch */
	uint32_t	 next_seq;
	time_t		 done_time;
	int		 inflight;
	void		*priv;
};

/* qmsg_new / qmsg_free - allocation helpers (calloc; frees every string) */
struct qmsg	*qmsg_new(void);
void		 qmsg_free(struct qmsg *m);
/* qmsg_add_rcpt - append a recipient (status queued); 0 or -1 */
int		 qmsg_add_rcpt(struct qmsg *m, const char *addr);
/* qmsg_add_trace - append a trace field (see above); 0 or -1 */
int		 qmsg_add_trace(struct qmsg *m, const char *field);
/* qmsg_add_event - an event for queue_accept to write (rx_events); 0 or -1 */
int		 qmsg_add_event(struct qmsg *m, const char *kind,
		    const char *detail);

/*
 * queue_init - open (and recover) the Berkeley DB environment in
 * the spool.  On entry the working directory IS the spool (smtpd_main
 * chdir'ed there as root before dropping privileges); queue/ uses only
 * paths relative to it ("body/QID", env home "."), so it works when the
 * spool's parents are not searchable by the unprivileged user.  It must
 * be called after work_init() and queue_lock().  It recovers the
 * environment, removes body files no committed record refers to, load every message
 * that is not finished and schedule it.  -1 with err set on failure.
 */
int	queue_init(const struct config *cfg, struct event_base *base,
	    char *err, size_t errlen);
/*
 * queue_lock - take an exclusive lock (flock on "lock" in the spool
 * directory spoolfd; the pid is written into it) that the process keeps
 * until exit.  Called first, as root, before binding sockets.  The name is
 * opened relative to spoolfd with O_NOFOLLOW and used only when it is a
 * regular file with one link owned by root or by owner (the daemon's
 * uid, -1 = root only); otherwise -1 and err names the path, and nothing
 * is truncated or written.  When another daemon holds it: -1 and err =
 * "spool DIR is in use by another waymarkd (pid N)".
 */
int	queue_lock(int spoolfd, const char *spooldir, long owner, char *err,
	    size_t errlen);
/*
 * queue_recover - `waymarkd --recover`: catastrophic recovery of the
 * spool, the current directory, locked with queue_lock (queue_recover.c).
 * What it did goes to out, line by line; what it set aside (old log
 * files, damaged database files, body files of lost messages) is moved
 * to recover-TIME/ in the spool, never deleted.  0, or -1 with err set.
 */
int	queue_recover(FILE *out, char *err, size_t errlen);
/* queue_reload - new configuration (retry schedule, lifetimes, ...) */
void	queue_reload(const struct config *cfg);
/* queue_shutdown - stop scheduling, wait for in-flight deliveries and
 * commits, checkpoint, close the environment cleanly */
void	queue_shutdown(void);
/*
 * queue_store_panicked - Berkeley DB declared the environment damaged
 * (it needs recovery).  Its memory (private to the process) can then be
 * neither closed nor freed: the process ends with _exit(), not exit().
 */
int	queue_store_panicked(void);
/*
 * queue_on_panic - fn is called in the loop thread, once, when Berkeley
 * DB declares the environment damaged while the daemon runs (a failed
 * write of a new log file's zeros, for one): every commit after it
 * fails, and only a restart's recovery repairs it.
 */
void	queue_on_panic(void (*fn)(void));

/*
 * Reception.  queue_body_create makes spool/body/<qid> (a new file, or
 * a reused one renamed without replacing any) and returns its fd, open
 * for reading and writing; the session streams the content into it
 * (CRLF line ends, dot-unstuffed) with plain write()s from offset 0, and
 * may read it back with pread() (DKIM) without moving the offset.
 * queue_body_discard closes and unlinks it (its space is free at once:
 * a discard may follow a full disk).  queue_accept makes the message
 * durable: the body is
 * synced (fsync/fdatasync or a batch-wide syncfs), the records and the
 * "accepted" and "trace" events are committed in a group commit whose
 * log flush reaches stable storage, and only then done(arg, 0) is
 * called; done(arg, -1) means nothing was kept.  queue_accept takes
 * ownership of m and of fd in every case.
 */
int	queue_body_create(char qid[QID_SIZE], int *fd);
void	queue_body_discard(const char *qid, int fd);
/*
 * queue_body_end - the content ends at fd's offset: a reused body file
 * (queue_pool.c) still holds the end of an older content beyond it,
 * which this cuts off.  Called by the writer once its last write() is
 * done and before anything reads the file (queue_accept calls it
 * again unless the writer set m->body_ended).  0, or -1 (errno).
 */
int	queue_body_end(int fd);
/*
 * Changing the body before the commit (queue_body.c; a milter's
 * modifications): queue_body_read opens body/QID for reading (-1 with
 * errno); queue_body_rewrite creates body/QID.new and returns its fd
 * for writing and pread() (-1); queue_body_swap renames it over
 * body/QID and makes it the message's body fd (*fd closed, *fd =
 * newfd): queue_accept
 * then syncs the new file and the body directory before the commit.
 * queue_body_rewrite_abort closes and removes body/QID.new.
 */
int	queue_body_read(const char *qid);
int	queue_body_rewrite(const char *qid);
int	queue_body_swap(const char *qid, int newfd, int *fd);
void	queue_body_rewrite_abort(const char *qid, int newfd);
void	queue_accept(struct qmsg *m, int fd,
	    void (*done)(void *arg, int rc), void *arg);

/*
 * The backlog: messages accepted by queue_accept, due now, whose
 * delivery has not started (waiting for a slot of their destination or
 * of smtp_concurrency).  A message leaves it when its first delivery
 * starts, or when it is held, deferred or finished first.  notify()
 * runs on the loop thread each time the backlog went down (smtpd's
 * in_flow_delay, smtpd_flow.c).
 */
unsigned	queue_backlog(void);
void		queue_backlog_notify(void (*notify)(void));

/*
 * queue_trace_received - the hop's Received field for m (RFC 5321 4.4,
 * RFC 3848): from HELO (rDNS [literal]), the TLS comment when m->tls,
 * by hostname, with proto ("ESMTP", "ESMTPS", "SMTP"), id QID, for
 * <rcpt> when m has exactly one recipient, date of m->arrival.  Format as
 * described for qmsg.trace.  Returns 0, -1 on overflow.
 */
int	queue_trace_received(const struct qmsg *m, const char *hostname,
	    const char *proto, char *out, size_t outlen);

/*
 * queue_trace_state - RFC 6729: the Received field of an entry into state
 * st (or of the release: st normal / outbound) decided after reception:
 * "Received: from HOST by HOST id QID state KW[/VALUE] (REASON); DATE",
 * folded like qmsg.trace.  0, or -1 on overflow.
 */
int	queue_trace_state(const struct qmsg *m, const char *hostname,
	    enum msg_state st, const char *value, const char *reason,
	    time_t when, char *out, size_t outlen);

/*
 * Policy rules (queue_policy.c; README "Policy rules").  A table never
 * changes once loaded: waymarkd loads it into cfg->policy_table at start
 * and on SIGHUP (a file with an error keeps the old table running).
 * queue_policy_check runs at the end of DATA on the message's envelope
 * and, only when a rule gets to a content condition, on a prefix of its
 * body file (spool body/QID: the header section plus body_scan octets
 * of body), read once.
 */
struct policy;
enum policy_action {
	POLICY_ACCEPT = 0, POLICY_REJECT, POLICY_QUARANTINE, POLICY_HOLD,
	POLICY_FILTER
};
struct policy_verdict {			/* strings point into the table */
	enum policy_action action;	/* POLICY_ACCEPT when nothing matched */
	const char	*name;		/* its keyword ("quarantine"), or NULL */
	enum msg_state	 state;		/* the state to enter, MS_NORMAL = none */
	const char	*value;		/* its value (label, "hold") or NULL */
	const char	*text;		/* reject: the 550 5.7.1 text; filter:
					 * the command */
	const char	*where;		/* "FILE:LINE" of the rule; NULL = none */
	const char	*actor;		/* "policy FILE:LINE" */
	const char	*reason;	/* "FILE:LINE header Subject": comment-safe */
};
/* queue_policy_load - parse path; NULL with err "FILE:LINE: reason"
 * (or "FILE: reason") */
struct policy	*queue_policy_load(const char *path, uint64_t body_scan,
		    char *err, size_t errlen);
void		 queue_policy_free(struct policy *p);
size_t		 queue_policy_count(const struct policy *p);
/* queue_policy_check - the first rule m matches into *v; 0, or -1 with
 * errno when the body file could not be read */
int		 queue_policy_check(const struct policy *p, const struct qmsg *m,
		    struct policy_verdict *v);

/*
 * queue_track_find - RFC 3887 4, RFC 3888 4: for track/'s TRACK, the
 * tracked messages stored with ENVID envid (xtext-decoded) whose MTRK
 * certifier is cert (27 base64 characters).  Only messages accepted with
 * an ENVID and a certifier are in the index, each entry with its
 * certifier; an ENVID is chosen by the sender, so several may share one
 * (duplicates allowed).  Every entry's certifier is compared with cert
 * in constant time (CRYPTO_memcmp; one compare against a dummy when no
 * entry is compared), at most 1024 entries in index order, without
 * reading any record: only a matching message is read, from memory
 * while it is unfinished (queued = 1: still in this server's queue,
 * RFC 3885 3.3), else its retained message and recipient records
 * (queued = 0; no events: m->trace is empty).  Entries of older stores
 * (no certifier) are decided by their record, read for each.  cb(m,
 * queued, arg) is called for each match in index order, m read-only and
 * valid only during the call; it returns 0 to go on, anything else
 * stops the walk and is returned.  Returns 0 when cb never stopped it
 * (no match included), or -1 when the store is not open or the index
 * cannot be read.  Loop thread; no record is read while the index
 * cursor is open.
 */
int	queue_track_find(const char *envid, const char *cert,
	    int (*cb)(const struct qmsg *m, int queued, void *arg), void *arg);

/*
 * Bulk load (queue_bulk.c; bench/trkload.c, never the daemon): finished
 * messages written straight into the store of the spool in the working
 * directory, with the records, events and index entries the daemon
 * leaves for a finished message (no body file).  Nobody else may use
 * the spool meanwhile (queue_lock first).  queue_bulk_open recovers and
 * opens the store; queue_bulk_load writes msgs[0..n-1] in ONE
 * transaction: each gets a fresh queue id (written into m->qid), every
 * recipient must be final, arrival/done_time/mtrk_expiry are kept when
 * set (0: now / arrival / arrival + tracking_retention); the caller
 * keeps ownership of the messages.  queue_bulk_close checkpoints and
 * closes (-1: the store failed, see the log).  0, or -1 with err set.
 */
int	queue_bulk_open(const struct config *cfg, char *err, size_t errlen);
int	queue_bulk_load(struct qmsg *const *msgs, size_t n, char *err,
	    size_t errlen);
/* queue_bulk_queue - the same for unfinished messages: every recipient
 * must be queued or deferred (next_attempt 0: arrival), the state is
 * kept (m->state_actor names who decided a held one), body[0..bodylen)
 * is written as each one's body file (m->size = bodylen); the files are
 * synced before the transaction.  0, or -1 with err set. */
int	queue_bulk_queue(struct qmsg *const *msgs, size_t n, const char *body,
	    size_t bodylen, char *err, size_t errlen);
int	queue_bulk_close(void);

/* queue_free_space_ok - 0 when the spool has less than min_free_space */
int	queue_free_space_ok(void);

/*
 * queue_state_gauges - for `/metrics` (queue_gauge.c): per handling
 * state (enum msg_state order, at most max of them), the messages of the
 * in-memory table (the unfinished ones, until they leave memory) and
 * the age at now of the oldest arrival among them (0 when none); kept
 * as messages enter, leave and change state, so O(states).  Returns
 * how many entries were filled.  queue_spool_free_bytes - statvfs of
 * the spool (the working directory), -1 when unknown.
 */
struct queue_state_gauge {
	const char	*state;		/* msg_state_name */
	uint64_t	 messages;
	double		 oldest_seconds;
};
#define QUEUE_NSTATES	9
size_t	queue_state_gauges(struct queue_state_gauge *out, size_t max,
	    time_t now);
int64_t	queue_spool_free_bytes(void);

/*
 * Operator actions (control socket).  Results are jansson objects,
 * owned by the caller (json_decref).  Schemas: DESIGN.md
 * "Machine-readable output".
 */
typedef struct json_t json_t;
/* queue_list_json - array of message objects; state < 0 = all states;
 * value non-NULL: only those whose state value is value */
json_t	*queue_list_json(int state, const char *value);
/*
 * queue_page_json - one page of the unfinished messages (the objects of
 * queue_list_json) that pass f, in queue-id order, starting after the
 * queue id after (NULL: from the first): at most limit of them.  The
 * table is walked from after's position (a binary search), the filters
 * are applied to the messages themselves and only the page's objects
 * are built; the walk stops at the first match past the page.  next
 * gets the queue id of the page's last message when more match, else
 * "" (nextlen >= QID_SIZE).  NULL on ENOMEM.
 */
struct queue_filter {
	int		 state;		/* enum msg_state, -1: any */
	const char	*value;		/* its value (case-insensitive), NULL: any */
	const char	*sender;	/* case-insensitive substring; "<>" = the
					 * null sender; NULL: any */
	const char	*recipient;	/* case-insensitive substring of an
					 * address; NULL: any */
	const char	*queue_id;	/* exact; NULL: any */
	const char	*message_id;	/* exact ("" = none); NULL: any */
	int		 status;	/* a recipient's enum rcpt_status, -1: any */
	long long	 min_age, max_age;	/* seconds since arrival, -1: none */
	time_t		 now;		/* the ages' reference */
};
/* queue_filter_any - f passes every message; now = time(NULL) */
void	queue_filter_any(struct queue_filter *f);
json_t	*queue_page_json(const struct queue_filter *f, const char *after,
	    size_t limit, char *next, size_t nextlen);
/* queue_show_json - one message object plus "events"; NULL if unknown */
json_t	*queue_show_json(const char *qid);
/* queue_flush - make every deferred recipient due now (of qid only, when
 * not NULL); returns how many, or -1 when qid is not in the queue */
int	queue_flush(const char *qid);

/*
 * Operator actions on one unfinished message (DESIGN.md "Operator
 * actions"): hold (normal/outbound -> other/hold), release (any held
 * state -> normal, or outbound with remote recipients), delete (every
 * pending recipient fails 5.7.1 silently) and bounce (the same with a
 * failure DSN where one is due).  Each is checked first: QA_UNKNOWN or
 * QA_REFUSED with msg saying why (done is not called); else 0 and
 * done(arg, rc, text) once the change is on stable storage (rc 0) or
 * could not be recorded (rc -1); -1 on ENOMEM.  actor is recorded in
 * the event ("operator alice").
 */
enum queue_action { QA_HOLD, QA_RELEASE, QA_DELETE, QA_BOUNCE };
#define QA_UNKNOWN	1
#define QA_REFUSED	2
int	queue_action(const char *qid, enum queue_action what,
	    const char *actor, char *msg, size_t msglen,
	    void (*done)(void *arg, int rc, const char *msg), void *arg);
/*
 * queue_message_text - the stored message of an unfinished qid as it
 * would be delivered (Waymark's trace fields newest first, then the
 * content, CRLF): 0 with *out malloc'd (*outlen bytes), or QA_UNKNOWN /
 * QA_REFUSED with why set.
 */
int	queue_message_text(const char *qid, char **out, size_t *outlen,
	    char *why, size_t whylen);
/* queue_message_open - the same in two parts: the trace fields (CRLF,
 * *prefix malloc'd) and an open fd of the content, to be streamed */
int	queue_message_open(const char *qid, char **prefix, size_t *prefixlen,
	    int *body_fd, char *why, size_t whylen);

/*
 * MTA-STS policy cache (RFC 8461 5.1, delivery/dlv_mtasts.c): one record
 * per policy domain in meta.db under "mta-sts:DOMAIN" (queue_sts.c):
 * version byte 1, fetched-at (8 bytes, big-endian Unix seconds), the
 * TXT id (1 byte length + bytes), then the policy text as fetched.
 * queue_sts_get: 0 with *text malloc'd, 1 when none (or corrupt: logged),
 * -1 on error.  queue_sts_put: queued for the next commit (no sync of
 * its own); 0 or -1.
 */
#define QUEUE_STS_ID_MAX	32
int	queue_sts_get(const char *domain, char id[QUEUE_STS_ID_MAX + 1],
	    time_t *fetched, char **text);
int	queue_sts_put(const char *domain, const char *id, time_t fetched,
	    const char *text);

/*
 * Small records of delivery/ in meta.db (queue_sts.c): key "tlsrpt:..."
 * (TLS-RPT counters, delivery/dlv_tlsrpt.c).  queue_kv_get: 0 with *val
 * malloc'd (*len bytes), 1 when none, -1 on error (or the store not open
 * yet).  queue_kv_put / queue_kv_del: queued for the next commit (no
 * sync of their own); 0 or -1.
 */
int	queue_kv_get(const char *key, void **val, size_t *len);
int	queue_kv_put(const char *key, const void *val, size_t len);
int	queue_kv_del(const char *key);

#endif
