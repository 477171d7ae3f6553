/*
 * smtpd_session.h - private declarations shared by the SMTP server files
 * (smtpd_session.c, smtpd_cmd.c, smtpd_data.c, smtpd_reply.c,
 * smtpd_tls.c, smtpd_auth.c).  Nothing else includes it.
 * Invariants: only smtpd_set_state() assigns s->state; a session is freed
 * only from a top-level libevent callback (event, write, timer), never
 * from inside command processing, so a handler may reply and return
 * without checking whether s still exists.
 */
#ifndef WAYMARK_SMTPD_SESSION_H
#define WAYMARK_SMTPD_SESSION_H

#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include "common/intl.h"
#include "common/log.h"
#include "common/util.h"

struct bufferevent;
struct evbuffer;
struct event;
struct config;
struct qmsg;
struct smtpd_client;
struct milter_sess;

#define SMTPD_LINE_MAX		2048	/* command line incl. CRLF */
#define SMTPD_TEXT_LINE_MAX	1000	/* text line incl. CRLF (RFC 5321 4.5.3.1.6) */
#define SMTPD_READ_HIWAT	32768	/* read high-watermark per session */
#define SMTPD_OUT_MAX		65536	/* pending replies before input is paused */
#define SMTPD_WBUF_SIZE		32768	/* DATA write buffer */
#define SMTPD_WBUF_MIN		4096	/* ... when memory is short */
#define SMTPD_HDR_CAP		320	/* bytes of a header line kept for analysis */
#define SMTPD_MSGID_MAX		256
#define SMTPD_ERROR_LIMIT	1000	/* 4xx/5xx replies before 421 */
#define SMTPD_JUNK_LIMIT	1000	/* junk commands between messages before 421 */

enum smtpd_state {
	SMTPD_GREETING = 0,	/* greeting sent, waiting for EHLO/HELO */
	SMTPD_READY,		/* after EHLO/HELO, no transaction */
	SMTPD_MAIL,		/* MAIL accepted, no recipient yet */
	SMTPD_RCPT,		/* at least one recipient accepted */
	SMTPD_DATA,		/* receiving the content after 354 */
	SMTPD_COMMIT,		/* queue_accept in flight; input held */
	SMTPD_TLS,		/* STARTTLS: 220 flushing or handshake running */
	SMTPD_CLOSING,		/* last reply flushing, then close */
	SMTPD_AUTH,		/* AUTH: 334 sent, reading a response line (smtpd_auth.c) */
	SMTPD_BDAT,		/* reading a BDAT chunk's octets (smtpd_bdat.c) */
	SMTPD_NSTATES
};
#define SMTPD_S(x)	(1u << (x))
/* states in which message content is read (DATA, a BDAT chunk) */
#define SMTPD_CONTENT_STATES	(SMTPD_S(SMTPD_DATA) | SMTPD_S(SMTPD_BDAT))
/* states in which command lines are read and dispatched */
#define SMTPD_CMD_STATES	(SMTPD_S(SMTPD_GREETING) | SMTPD_S(SMTPD_READY) | \
				 SMTPD_S(SMTPD_MAIL) | SMTPD_S(SMTPD_RCPT))

/* DATA byte-stream states (smtpd_data.c) */
enum smtpd_ds { DS_BOL = 0, DS_TEXT, DS_CR, DS_DOT, DS_DOT_CR };

/* one mail transaction: from MAIL until end of data or RSET */
struct dkim_sign;

struct smtpd_txn {
	struct qmsg	*m;		/* sender, recipients, qid */
	unsigned	 naccepted;	/* RCPT commands answered 250 */
	int		 fd;		/* body file, -1 before DATA */
	int		 rewritten;	/* a milter wrote a new body file */
	/* DATA (smtpd_data.c) */
	char		*wbuf;		/* SMTPD_WBUF_SIZE, allocated at 354 */
	size_t		 wcap;		/* its size: SMTPD_WBUF_MIN if short */
	size_t		 wlen;
	uint64_t	 size;		/* octets stored (CRLF line ends) */
	size_t		 linelen;	/* octets of the current line so far */
	enum smtpd_ds	 ds;
	int		 crlf_before;	/* current line began after a real CRLF */
	int		 werr;		/* errno of a failed write, 0 = none */
	int		 too_big;
	int		 long_line;
	int		 in_header;
	int		 eightbit;
	struct utf8_stream u8;		/* RFC 6532: the header section's UTF-8 */
	int		 hdr_badutf8;	/* ill-formed UTF-8 in a header field */
	unsigned	 hops;		/* Received: fields in the header */
	int		 msgid_state;	/* 0 none yet, 1 collecting, 2 done */
	size_t		 hdrlen;
	char		 hdr[SMTPD_HDR_CAP];	/* start of the current header line */
	size_t		 msgidlen;
	char		 msgid[SMTPD_MSGID_MAX];
	/* RFC 8689 3: TLS-Required fields seen, the last one's value so far
	 * (lower case, blanks dropped; longer than "no" = not No) */
	unsigned	 tlsreq_n;
	int		 tlsreq_in;	/* its continuation lines follow */
	size_t		 tlsreq_len;
	char		 tlsreq[4];
	/* smtpd_data_min_rate: checked on the session timer */
	uint64_t	 data_start;	/* ms (mono_ms) at the 354 */
	uint64_t	 received;	/* octets read since the 354 */
	/* DKIM (filter/dkim.h), AUTH and relay_from clients only */
	int		 dk_want;	/* DKIM keys apply: sign at the end
					 * (smtpd_data.c dkim_job_run) */
	/* RFC 3030 (smtpd_bdat.c) */
	int		 bdat;		/* content is coming by BDAT (no dots) */
	int		 binary;	/* MAIL BODY=BINARYMIME: stored as received */
	uint64_t	 bdat_total;	/* chunk octets announced so far */
};

/* per-verb counters, indexed like the dispatch table (+1: unknown) */
#define SMTPD_NVERBS	14

struct smtpd_session {
	struct smtpd_session	*next, *prev;	/* all sessions */
	struct smtpd_session	*hnext;		/* same bucket of the id table */
	uint64_t		 id;
	char			 sid[20];	/* hex id for the logs */
	struct bufferevent	*bev;		/* socket or TLS filter */
	struct event		*closetimer;	/* lazily made: deferred close */
	enum smtpd_state	 state;
	int			 esmtp;		/* EHLO (1) or HELO (0) */
	int			 tls;		/* TLS active */
	int			 peer_eof;	/* client shut down its side */
	int			 talking;	/* counts against max_sessions */
	int			 out_blocked;	/* too many replies pending */
	int			 in_process;	/* inside smtpd_process */
	int			 skipping;	/* discarding an overlong line */
	int			 stop_after_commit;
	int			 piped_logged;
	unsigned		 errors;
	unsigned		 junk;
	struct sockaddr_storage	 ss;
	char			 addr[64];	/* "127.0.0.1" */
	unsigned		 port;
	char			*helo;
	char			*tls_info;	/* "TLSv1.3 TLS_AES_..." */
	struct smtpd_txn	*txn;
	const char		*cmd;		/* command being answered (logs) */
	size_t			 cmdlen;
	uint32_t		 count[SMTPD_NVERBS];
	uint32_t		 okcount[SMTPD_NVERBS];
	/* submission and AUTH (smtpd_auth.c) */
	int			 submission;	/* accepted on a submission listener */
	char			*auth_user;	/* authenticated user, NULL before */
	int			 auth_mech;	/* mechanism in progress (SMTPD_AUTH) */
	int			 auth_step;	/* LOGIN: 0 username, 1 password */
	char			*auth_login;	/* LOGIN: the username given */
	unsigned		 auth_failures;
	int			 auth_waiting;	/* input held: check in flight or
						   reply delayed (AUTH_WAIT_*) */
	struct event		*authtimer;	/* lazily made */
	/* in_flow_delay (smtpd_flow.c) */
	int			 flow_waiting;	/* input held: MAIL's 250 waits,
						   on the FIFO by flow_entry */
	struct event		*flowtimer;	/* lazily made */
	TAILQ_ENTRY(smtpd_session) flow_entry;
	/* deadlines (smtpd_session.c): one timer, moved lazily */
	struct event		*timer;
	uint64_t		 timer_at;	/* ms it is armed for, 0 = not armed */
	uint64_t		 wait_since;	/* ms: start of the bounded wait */
	int			 in_line;	/* a command line has begun */
	struct smtpd_client	*client;	/* per-client count, or NULL */
	/* milters (smtpd_milter.c) */
	struct milter_sess	*milters;	/* NULL: none configured */
	int			 milter_waiting;	/* input held: a milter
							   reply is awaited */
	int			 cmd_idx;	/* table index of the command */
	char			 milter_stage;	/* the held command's stage */
	char			 milter_pass;	/* its milters have passed it */
	int			 milter_idx;	/* its table index */
	char			*milter_line;	/* the held command line */
	size_t			 milter_linelen;
	size_t			 milter_argoff;	/* its argument's offset */
	char			*milter_refusal;	/* CONNECT/HELO refusal text */
	int			 milter_rcode, milter_rcls, milter_rsubj,
				 milter_rdet;
	/* BDAT (smtpd_bdat.c): the chunk being read in SMTPD_BDAT */
	uint64_t		 bdat_left;	/* its octets still to read */
	uint64_t		 bdat_size;	/* its announced size */
	uint64_t		 bdat_skip;	/* octets to drop before the next
						   command (a milter refused
						   the first BDAT) */
	int			 bdat_last;	/* it had LAST */
	enum smtpd_state	 bdat_back;	/* the state before it */
	int			 bdat_err;	/* BDAT_E_*: answered after it */
	int			 bdat_failed;	/* a BDAT failed: later ones get
						   503 until RSET or MAIL */
};

/* smtpd_session.c */
extern const struct config	*smtpd_cfg;
extern struct event_base	*smtpd_base;
void	 smtpd_set_state(struct smtpd_session *s, enum smtpd_state st);
const char *smtpd_state_name(enum smtpd_state st);
void	 smtpd_close_after_flush(struct smtpd_session *s);
/* smtpd_flush - send pending replies now (see smtpd_session.c) */
void	 smtpd_flush(struct smtpd_session *s);
/* smtpd_session_silent - s said 221/421 or its client left: uncount it */
void	 smtpd_session_silent(struct smtpd_session *s);
void	 smtpd_resume(struct smtpd_session *s);
void	 smtpd_txn_free(struct smtpd_session *s);
struct smtpd_session *smtpd_session_find(uint64_t id);
int	 smtpd_session_attach_cb(struct smtpd_session *s, struct bufferevent *bev);
void	 smtpd_oom_reply(int fd);
int	 smtpd_stopping(void);

/* smtpd_clients.c */
int	 smtpd_client_take(struct smtpd_session *s, unsigned cap);
void	 smtpd_client_release(struct smtpd_session *s);
void	 smtpd_clients_free(void);
void	 smtpd_clients_stats(size_t *entries, size_t *nbucket);

/* smtpd_cmd.c */
void	 smtpd_cmd_dispatch(struct smtpd_session *s, const char *line, size_t len);
int	 smtpd_cmd_counters(const struct smtpd_session *s, char *out, size_t outlen);
int	 smtpd_cmd_index(const char *verb);
void	 smtpd_reset_after_tls(struct smtpd_session *s);
/* smtpd_cmd_again - run the handler of table index idx once more (its
 * milters have passed it); counted as the first run would have been */
void	 smtpd_cmd_again(struct smtpd_session *s, int idx, const char *line,
	    size_t len, const char *arg, size_t arglen);
/* smtpd_cmd_current - table index of the command being handled */
int	 smtpd_cmd_current(const struct smtpd_session *s);

/* smtpd_lists.c */
struct esmtp_params;
int	 smtpd_lists_rcpt(struct smtpd_session *s, const char *addr,
	    const struct esmtp_params *ep);
int	 smtpd_lists_known(const char *local, const char *domain);

/* smtpd_data.c */
int	 smtpd_data_begin(struct smtpd_session *s);
int	 smtpd_data_input(struct smtpd_session *s, struct evbuffer *in);
/* smtpd_data_scan - the byte-stream rule over one chunk (t set up as
 * smtpd_data_begin does); octets consumed, *end set at the end marker.
 * Exposed for tests/fuzz/fuzz_data.c. */
size_t	 smtpd_data_scan(struct smtpd_txn *t, const char *p, size_t len,
	    int *end);

/* smtpd_data_commit - the trace field and the commit of the received
 * message (after the policy rules and the milters) */
void	 smtpd_data_commit(struct smtpd_session *s);

/* smtpd_data.c, for BDAT (smtpd_bdat.c) */
/* smtpd_data_end - the content is complete: refuse, filter or commit */
void	 smtpd_data_end(struct smtpd_session *s);
/* smtpd_data_chunk_end - a non-LAST chunk is stored: 0, or -1 after
 * answering a write or size error (the transaction is ended) */
int	 smtpd_data_chunk_end(struct smtpd_session *s);
/* smtpd_data_finish_scan - end of the last chunk: a line left open is
 * ended (CRLF added unless BINARYMIME) */
void	 smtpd_data_finish_scan(struct smtpd_txn *t);

/* smtpd_bdat.c */
int	 smtpd_bdat_cmd(struct smtpd_session *s, const char *arg, size_t len);
int	 smtpd_bdat_input(struct smtpd_session *s, struct evbuffer *in);
/* smtpd_bdat_skip - drop the octets of a BDAT a milter refused: 1 when
 * more are awaited, 0 when done */
int	 smtpd_bdat_skip(struct smtpd_session *s, struct evbuffer *in);
/* smtpd_bdat_reset - RSET, MAIL, EHLO: BDAT errors are forgotten */
void	 smtpd_bdat_reset(struct smtpd_session *s);

/* smtpd_flow.c */
void	 smtpd_flow_mail(struct smtpd_session *s);
void	 smtpd_flow_kick(void);
void	 smtpd_flow_free(struct smtpd_session *s);
void	 smtpd_flow_stop(void);

/* smtpd_milter.c */
int	 smtpd_milter_connect(struct smtpd_session *s);
int	 smtpd_milter_refused(struct smtpd_session *s, const char *verb);
int	 smtpd_milter_gate(struct smtpd_session *s, char stage, const char *arg,
	    size_t len, const char *addr);
int	 smtpd_milter_eom(struct smtpd_session *s);
void	 smtpd_milter_abort(struct smtpd_session *s);
void	 smtpd_milter_free(struct smtpd_session *s);

/* smtpd_reply.c */
#define SMTPD_NOENH	0, 0, 0
void	 smtpd_reply(struct smtpd_session *s, int code, int cls, int subj,
	    int det, const char *fmt, ...) WM_PRINTF(6, 7);

/* smtpd_auth.c */
int	 smtpd_auth_offered(const struct smtpd_session *s);
int	 smtpd_auth_cmd(struct smtpd_session *s, const char *arg, size_t len);
void	 smtpd_auth_input(struct smtpd_session *s, const char *line, size_t len);
void	 smtpd_auth_abort(struct smtpd_session *s, int code, int cls, int subj,
	    int det, const char *text);
void	 smtpd_auth_free(struct smtpd_session *s);
const char *smtpd_proto(const struct smtpd_session *s);

/* smtpd_tls.c */
int	 smtpd_tls_init(const struct config *cfg, char *err, size_t errlen);
void	 smtpd_tls_free(void);
int	 smtpd_tls_available(void);
int	 smtpd_tls_start(struct smtpd_session *s);
void	 smtpd_tls_connected(struct smtpd_session *s);
void	 smtpd_tls_log_error(struct smtpd_session *s, short what);

#endif
