/*
 * queue_int.h - private interfaces between the files of queue/.
 * queue_record.c: the versioned record codec and the key layouts;
 * queue_db.c: the Berkeley DB environment, the commit thread (group
 * commit), checkpoints, purge and the read paths; queue_main.c: module
 * state, the in-memory message table, reception; queue_sched.c: the
 * heap of due messages, dispatch to delivery, results; queue_json.c and
 * queue_trace.c: views.  Nothing outside queue/ includes this file
 * (tests/unit/test_record.c does, for the codec).  db.h is included by
 * queue_db.c and queue_recover.c only (queue_dbint.h): DB handles never
 * leave those files.
 */
#ifndef WAYMARK_QUEUE_INT_H
#define WAYMARK_QUEUE_INT_H

#include <stddef.h>
#include <stdio.h>
#include <stdint.h>
#include <time.h>

#include "queue/queue.h"

struct event;
struct event_base;

/* ---- record codec (queue_record.c) ---- */

#define REC_VERSION	1
#define REC_STR_MAX	65535		/* longest string field */
#define REC_ENH_MAX	15		/* "x.yyy.zzz" fits last_enh[16] */
#define REC_RCPT_MAX	65535		/* recipient index is a u16 */

/* an event as stored (queue id + seq is the key) */
struct qevent {
	uint64_t	 time_usec;	/* microseconds since the epoch */
	char		*kind;		/* "accepted", "trace", ... */
	char		*detail;
};

/*
 * Encoders return a malloc'd value in *out (*outlen bytes), 0 or -1
 * (ENOMEM, a string over REC_STR_MAX, too many recipients).  Decoders
 * validate everything, fill *out (strings malloc'd) and return 0, or -1
 * with *why set to a static reason; on failure nothing is left allocated.
 */
int	rec_msg_encode(const struct qmsg *m, unsigned char **out, size_t *outlen);
int	rec_msg_decode(const void *p, size_t len, struct qmsg *m, const char **why);
int	rec_rcpt_encode(const struct qrcpt *r, unsigned char **out, size_t *outlen);
int	rec_rcpt_decode(const void *p, size_t len, struct qrcpt *r, const char **why);
int	rec_event_encode(const struct qevent *e, unsigned char **out, size_t *outlen);
int	rec_event_decode(const void *p, size_t len, struct qevent *e, const char **why);
#define REC_META_U64_LEN 9
void	rec_meta_u64_encode(uint64_t v, unsigned char out[REC_META_U64_LEN]);
int	rec_meta_u64_decode(const void *p, size_t len, uint64_t *v, const char **why);
/*
 * ENVID index values (format: queue_record.c): rec_envid_encode returns
 * the value's length, 0 when qid is invalid or cert is not REC_CERT_LEN
 * octets; rec_envid_decode fills qid and cert (cert "" for an old-format
 * value, the bare qid) and returns 0, or -1 with *why set.
 */
#define REC_ENVID_VERSION 1
#define REC_CERT_LEN	27		/* base64(SHA-1) without padding */
#define REC_QID_MAX	32
#define REC_ENVID_MAX	(1 + REC_QID_MAX + REC_CERT_LEN)
size_t	rec_envid_encode(unsigned char out[REC_ENVID_MAX], const char *qid,
	    const char *cert);
int	rec_envid_decode(const void *p, size_t len, char qid[REC_QID_MAX + 1],
	    char cert[REC_CERT_LEN + 1], const char **why);
/* free the strings a decoder allocated (the struct itself is the caller's) */
void	rec_msg_clear(struct qmsg *m);	/* message fields only, not rcpts/trace */
void	rec_rcpt_clear(struct qrcpt *r);
void	rec_event_clear(struct qevent *e);

/* keys (see queue_record.c for the layouts); return the key length, 0 on a bad qid */
#define QKEY_MAX	(8 + 32 + 4)
size_t	key_msg(unsigned char *out, const char *qid);
size_t	key_rcpt(unsigned char *out, const char *qid, uint16_t idx);
size_t	key_event(unsigned char *out, const char *qid, uint32_t seq);
size_t	key_state(unsigned char *out, const char *qid, unsigned state);
size_t	key_time(unsigned char *out, const char *qid, uint64_t t);	/* schedule, expire */
void	be_put64(unsigned char *p, uint64_t v);
uint64_t be_get64(const unsigned char *p);
void	be_put32(unsigned char *p, uint32_t v);
uint32_t be_get32(const unsigned char *p);

/* ---- Berkeley DB and group commit (queue_db.c) ---- */

enum qdb {
	QDB_MESSAGES = 0, QDB_RECIPIENTS, QDB_EVENTS, QDB_ENVID, QDB_STATE,
	QDB_SCHEDULE, QDB_EXPIRE, QDB_META, QDB_COUNT
};

/* a commit job: a list of put/del operations run in one transaction */
struct qjob;
typedef void (*qjob_done_fn)(void *arg, int rc);

struct qjob	*qjob_new(void);
void		 qjob_free(struct qjob *j);
/* qjob_lazy - commit without a log flush of its own; done() runs once a
 * later flush (an accept's, or at most 50 ms later) covers it */
void		 qjob_lazy(struct qjob *j);
int		 qjob_put(struct qjob *j, enum qdb db, const void *k, size_t klen,
		    const void *v, size_t vlen);
/* qjob_put_own - like qjob_put but takes the malloc'd value v */
int		 qjob_put_own(struct qjob *j, enum qdb db, const void *k,
		    size_t klen, void *v, size_t vlen);
int		 qjob_del(struct qjob *j, enum qdb db, const void *k, size_t klen);
/* qjob_body - sync this body fd before the job's transaction */
void		 qjob_body(struct qjob *j, int fd);
/* qjob_append - move src's operations to the end of dst (one
 * transaction for both); src is freed */
void		 qjob_append(struct qjob *dst, struct qjob *src);
/*
 * qdb_commit - hand j to the commit thread (it owns j from now on);
 * done(arg, rc) runs later in the loop thread: 0 = committed and the
 * log flushed, -1 = nothing kept, QJOB_UNFLUSHED = committed but the log
 * flush failed (a full disk): the records may reach the disk with a
 * later flush, or be lost in a crash before it.
 */
#define QJOB_UNFLUSHED	(-2)
void		 qdb_commit(struct qjob *j, qjob_done_fn done, void *arg);
/* qdb_purge_request - ask the commit thread to purge finished messages
 * whose done time is <= cutoff */
void		 qdb_purge_request(time_t cutoff);

/* the end of every start-up error that means a damaged store */
#define QUEUE_RECOVER_HINT "refusing to start so that nothing is lost: " \
	"stop every program using the spool and run `waymarkd --recover` " \
	"with the same -f FILE (waymarkd(8), README \"Recovery\")"

/* qdb_open - check, recover and open the environment and every
 * database; base NULL: no commit thread will run (waymarkd --recover) */
int	qdb_open(struct event_base *base, char *err, size_t errlen);
/* qdb_set_cache - cache size of the next qdb_open (default 1 MiB) */
void	qdb_set_cache(size_t bytes);
/* qdb_checkpoint - a checkpoint now (logs no longer needed are removed);
 * commit thread, or a bulk load (queue_bulk.c) that runs none */
void	qdb_checkpoint(void);
/* queue_store_failed - the store panicked (loop thread): no delivery
 * starts any more (its result could not be recorded: it would run again
 * after the restart), as in a shutdown */
void	queue_store_failed(void);
/* qdb_start - start the commit thread */
int	qdb_start(char *err, size_t errlen);
/* qdb_drain - run every queued commit and its completion (shutdown) */
void	qdb_drain(void);
/* qdb_close - stop the commit thread, checkpoint, close everything */
void	qdb_close(void);

/* reads (loop thread or start-up) */
int	qdb_get_meta_u64(const char *name, uint64_t *v);
/* qdb_get_meta - the raw record name (malloc'd): 0, 1 = none, -1 */
int	qdb_get_meta(const char *name, void **val, size_t *len);
/* qdb_load_unfinished - call cb for each message in the schedule index,
 * fully loaded (recipients, trace, next_seq), cb takes ownership */
int	qdb_load_unfinished(void (*cb)(struct qmsg *m, time_t sched_time,
	    void *arg), void *arg, char *err, size_t errlen);
/* qdb_schedule_prune, qdb_msg_exists - for queue_recover.c */
int	qdb_schedule_prune(FILE *out, size_t *n);
int	qdb_msg_exists(const char *qid);
/* qdb_read_msg - message + recipients + trace from the DB; NULL if unknown/corrupt */
struct qmsg *qdb_read_msg(const char *qid);
/* qdb_read_msg_status - message + recipients only: no event is read (no
 * trace fields, next_seq 0); for read-only views that use neither */
struct qmsg *qdb_read_msg_status(const char *qid);
/*
 * qdb_envid_walk - cb(qid, cert, arg) for each entry of envid in the
 * ENVID index, in index order, at most max: cert is the certifier stored
 * with the qid, "" for an old-format entry; a corrupt entry is logged
 * and skipped.  cb runs with the index cursor open: it must not read
 * the store; it returns -1 to stop (an error).  The number of entries
 * given to cb, or -1 (store closed, read error, cb said -1).
 */
int	qdb_envid_walk(const char *envid, size_t max,
	    int (*cb)(const char *qid, const char *cert, void *arg), void *arg);
/* qdb_read_events - events of qid in sequence order; cb returns -1 to stop */
int	qdb_read_events(const char *qid,
	    int (*cb)(uint32_t seq, const struct qevent *e, void *arg), void *arg);

/* ---- module state (queue_main.c) ---- */

struct sdest;
struct qpriv {
	size_t		 heap_idx;	/* position in the due heap, SIZE_MAX = none */
	time_t		 due;		/* heap key */
	time_t		 sched_time;	/* time in the schedule index, 0 = none */
	int		 finish_ok;	/* the final status commit succeeded */
	int		 finishing;	/* the final status commit is queued */
	int		 filter_running; /* its content filter runs (queue_filter.c) */
	time_t		 filter_next;	/* a failed filter runs again at */
	int		 filter_listed;	/* in queue_filter.c's waiting list */
	/* parked: out of the heap, waiting for a slot of its destination
	 * (queue_sched.c); park_dest NULL = not parked */
	struct sdest	*park_dest;
	struct qmsg	*park_prev, *park_next;
	size_t		 gauge_idx;	/* in its state's gauge heap, SIZE_MAX = none */
	int		 body_shared;	/* its content was handed out (a filter
					 * may still read it): never reused */
	int		 fresh;		/* accepted, due, no delivery started
					 * yet: counted in qs.nfresh */
};

struct queue_state {
	const struct config	*cfg;
	struct event_base	*base;
	struct qmsg		**msgs;		/* unfinished messages, sorted by qid */
	size_t			 nmsgs, capmsgs;
	int			 inflight;	/* delivery jobs running */
	unsigned		 nfresh;	/* the backlog (queue_backlog) */
	void			(*backlog_fn)(void);
	int			 stopping;
	uint64_t		 qid_floor;	/* high-water mark of qid_new */
};
extern struct queue_state qs;

/* fresh_set - m was just accepted: in the backlog (queue_backlog)
 * until fresh_clear; fresh_clear - its delivery started, or it is no
 * longer due: out of it */
void		 fresh_set(struct qmsg *m);
void		 fresh_clear(struct qmsg *m);

/* queue_hostname - cfg->hostname, "localhost" without one */
const char	*queue_hostname(void);
struct qmsg	*qmem_find(const char *qid);

/* queue_pool.c: body files of finished messages kept for reuse */
int		 pool_start(struct event_base *base);
void		 pool_stop(void);
/* pool_put - path (body/QID, nothing reads it any more) into the pool,
 * or unlinked */
void		 pool_put(const char *path);
/* pool_take - a pooled file renamed to path (never replacing one) and
 * opened for writing at offset 0; -1 with errno (EEXIST: path exists;
 * ENOENT: the pool is empty) */
int		 pool_take(const char *path);
/* pool_expire_idle - unlink the files unused for POOL_IDLE seconds at
 * now (the pool's timer; tests) */
void		 pool_expire_idle(time_t now);
int		 qmem_insert(struct qmsg *m);
void		 qmem_remove(struct qmsg *m);
/* qmsg_priv - the bookkeeping of m (allocated on demand; NULL on ENOMEM) */
struct qpriv	*qmsg_priv(struct qmsg *m);

/* job helpers: append the record of m / rcpt i / a new event to j */
int	qjob_add_msg(struct qjob *j, const struct qmsg *m);
int	qjob_add_rcpt(struct qjob *j, const struct qmsg *m, size_t i);
int	qjob_add_event(struct qjob *j, struct qmsg *m, const char *kind,
	    const char *detail);
/* qjob_accept - the records and events of a new message m (not yet
 * in memory, recipients set up) as one commit job; NULL on ENOMEM.
 * queue_accept's, queue_bulk.c's and queue_lists.c's, which add to the
 * job.  The ENVID index entry only when m has an ENVID and a certifier */
struct qjob *qjob_accept(struct qmsg *m);
/* qjob_add_sched - move m's schedule index entry to its current due time */
int	qjob_add_sched(struct qjob *j, struct qmsg *m);
/* qmsg_due - earliest next_attempt of a non-final recipient, 0 if none */
time_t	qmsg_due(const struct qmsg *m, int skip_busy);
uint64_t now_usec(void);

/* ---- handling states (queue_state.c) ---- */

/* msg_held - 1 when m's state keeps it from delivery (not normal/outbound) */
static inline int
msg_held(const struct qmsg *m)
{
	return m->state != MS_NORMAL && m->state != MS_OUTBOUND;
}
/* qjob_add_state_event - the "state" event of m's current state, entered
 * from `from` by actor ("operator alice", "policy FILE:LINE", ...) */
int	qjob_add_state_event(struct qjob *j, struct qmsg *m,
	    enum msg_state from, const char *actor);
/* sched_release_due - a timed message's release time came (scheduler) */
void	sched_release_due(struct qmsg *m);
/* state_filter_done - m's content filter ended: code = its exit status
 * (0 accept, 1 quarantine, 2 reject), -1 a signal, -2 the timeout (both
 * retried); why = the first line of its output */
void	state_filter_done(struct qmsg *m, int code, const char *why);

/* ---- state gauges (queue_gauge.c): the table's messages per state ---- */

void	gauge_insert(struct qmsg *m);		/* qmem_insert */
void	gauge_remove(struct qmsg *m);		/* qmem_remove */
void	gauge_move(struct qmsg *m, enum msg_state from);	/* state_move */
void	gauge_reset(void);	/* the table is dropped (queue_shutdown) */

/* ---- content filters (queue_filter.c) ---- */

int	queue_filter_init(struct event_base *base);
void	queue_filter_kick(void);
void	queue_filter_want(struct qmsg *m);
void	queue_filter_shutdown(void);

/* ---- scheduler (queue_sched.c) ---- */

/* sched_rcpt_is_local - the address's domain is in local_domains */
int	sched_rcpt_is_local(const char *addr);
/* sched_finish - every recipient of m is final: close it in j */
int	sched_finish(struct qjob *j, struct qmsg *m, time_t now);
/* sched_commit - commit j about m (lazy flush); sched_status_done after */
void	sched_commit(struct qjob *j, struct qmsg *m);
/* sched_status_done - a commit about m finished (m->inflight was raised
 * for it); a finished message leaves memory here: m may be freed */
void	sched_status_done(struct qmsg *m, int rc);

int	sched_init(struct event_base *base);
void	sched_update(struct qmsg *m);	/* after any change of m's recipients */
void	sched_remove(struct qmsg *m);
void	sched_kick(void);
void	sched_shutdown(void);

/* ---- delivery status notifications (queue_notice.c) ---- */

struct dlv_result;
/*
 * queue_notice_batch - after apply_results has updated and recorded m's
 * recipients from res[0..n-1] and before j is committed: queue ONE DSN
 * per kind (failed, delayed, delivered, relayed) for the recipients of
 * the batch that ask for it (RFC 3461 NOTIFY), marking delayed ones
 * dsn_delay_sent in j, and add the event "dsn" (detail "kind=K qid=NEW
 * rcpts=<a>,<b>") to j for each.  Nothing for a message from <>, except
 * that the failed recipients of a DSN are reported to postmaster.
 * Returns -1 only when j could not take a record (drop j then); any
 * other failure is logged and returns 0.
 */
int	queue_notice_batch(struct qjob *j, struct qmsg *m,
	    const struct dlv_result *res, size_t n);
/*
 * queue_notice_deliverby - RFC 2852 4.1.3, the deadline of mode N has
 * passed: one "delayed" DSN (Status 4.4.7) for those of recipients
 * idx[0..n-1] whose NOTIFY is absent or has DELAY, event "dsn" in j.
 * -1 only when j could not take a record.
 */
int	queue_notice_deliverby(struct qjob *j, struct qmsg *m,
	    const size_t *idx, size_t n);
/*
 * queue_notice_rcpts - one DSN of kind (DLV_DSN_*) about recipients
 * idx[0..n-1] of m, whatever their status (a list recipient is
 * "expanded" but its DSN says "delivered": RFC 3461 5.2.7.1), event
 * "dsn" into j; nothing for a message from <>.  -1 only when j could
 * not take the event.
 */
int	queue_notice_rcpts(struct qjob *j, struct qmsg *m, int kind,
	    const size_t *idx, size_t n);
/*
 * queue_notice_accepted - after m's accept commit: one "expanded" DSN
 * for its RS_EXPANDED recipients with NOTIFY=SUCCESS (event "dsn" in a
 * commit job of its own).
 */
void	queue_notice_accepted(struct qmsg *m);

/* ---- policy: a message's content (queue_content.c) ---- */

struct content;				/* one message being checked */
struct content_field {			/* a field of the header section */
	const char	*name;		/* as written, not NUL-terminated */
	size_t		 namelen;
	const char	*value;		/* unfolded, trimmed, NUL-terminated */
	size_t		 vlen;
};
/* content_new - for m's body file, with body_scan octets of body seen */
struct content	*content_new(const struct qmsg *m, uint64_t body_scan);
void		 content_free(struct content *c);
/* each reads the prefix on first use; 0, or -1 with errno */
int		 content_fields(struct content *c,
		    const struct content_field **f, size_t *n);
int		 content_body(struct content *c, const char **body, size_t *len);
/* content_body_lower - the same, ASCII lower-cased (for rx_lits_maybe) */
int		 content_body_lower(struct content *c, const char **body,
		    size_t *len);
int		 content_names(struct content *c, const char *const **names,
		    size_t *n);

/* ---- policy: regular expression prefilter (queue_rx.c) ---- */

#define RX_LITS_MAX	8
struct rx_lits {			/* a match contains one of these */
	size_t		 n;		/* 0 = no prefilter: always regexec */
	int		 icase;		/* literals lower-cased: look in lower-cased text */
	char		*lit[RX_LITS_MAX];
	size_t		 len[RX_LITS_MAX];
};
/* policy_rx_too_complex - 1 when the ERE pat would be refused at load:
 * its regcomp tree would be too large (queue_policy.c) */
int		 policy_rx_too_complex(const char *pat);
/* rx_lits_make - the literals of ERE ere (none when unsure); 0 */
int		 rx_lits_make(const char *ere, int icase, struct rx_lits *out);
void		 rx_lits_free(struct rx_lits *l);
/* rx_lits_maybe - 0 when no literal occurs in text: no match possible */
int		 rx_lits_maybe(const struct rx_lits *l, const char *text, size_t n);
/* ---- mailing lists (queue_lists.c) ---- */

/* queue_lists_dispatch - m is not held: expand its due recipients that
 * are lists of the lists file (a new message to the members; the list
 * recipient becomes expanded in the same commit) */
void	queue_lists_dispatch(struct qmsg *m, time_t now);
/* queue_lists_accepted - after m's accept commit: m entered moderation
 * at reception (actor "lists ..."): the notice to the moderators */
void	queue_lists_accepted(struct qmsg *m);

#endif
