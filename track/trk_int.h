/*
 * trk_int.h - private declarations shared by the MTQP server files of
 * track/ (trk_server.c: listeners, sessions, input, TLS switch;
 * trk_cmd.c: the command table, the handlers and every reply;
 * trk_answer.c: the TRACK answer; trk_auth.c: MTRK authentication).
 * Nothing outside track/ includes it.
 * Invariants: only trk_set_state() assigns s->state; a session is freed
 * only from a top-level libevent callback (accept, read, write, event,
 * timer, the stop), never from inside command processing, so a handler
 * may reply and return without checking whether s still exists; a
 * session owns its TRACK answer in the making (s->query), which never
 * outlives it.
 */
#ifndef WAYMARK_TRK_INT_H
#define WAYMARK_TRK_INT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "common/log.h"

struct bufferevent;
struct config;
struct event;
struct event_base;
struct trk_track;

#define TRK_SRV_LINE_MAX	998		/* octets before CRLF (RFC 3887 2.2) */
#define TRK_READ_HIWAT	16384		/* read high-watermark per session */
#define TRK_OUT_MAX	65536		/* pending output before commands pause */
#define TRK_NVERBS	5		/* the table's rows + "unknown" */
#define TRK_SECRET_MAX	768		/* decoded secret octets (a line holds
					 * at most 748; RFC 3885 wants 16-128) */
#define TRK_SRV_ANSWER_MAX	(8u * 1024 * 1024)	/* a TRACK answer's body */

enum trk_state {
	TRK_READY = 0,		/* reading and running commands */
	TRK_ANSWER,		/* a TRACK answer is being made: the server's
				 * turn, input held, no autologout */
	TRK_TLS,		/* "+OK Begin TLS" flushing or handshake running */
	TRK_CLOSING,		/* last reply flushing, then close */
	TRK_NSTATES
};
#define TRK_S(x)	(1u << (x))

struct trk_session {
	uint64_t		 id;
	char			 sid[20];
	struct sockaddr_storage	 ss;
	char			 addr[64];	/* "127.0.0.1" */
	unsigned		 port;
	enum trk_state		 state;
	struct bufferevent	*bev;		/* the TLS filter once TLS is on */
	struct event		*timer;		/* autologout, TLS and close bounds */
	struct event		*closetimer;	/* polls the flush before close */
	uint64_t		 wait_since;	/* ms: the client's idle wait began */
	int			 timer_armed;
	int			 tls;		/* handshake done */
	int			 skipping;	/* discarding an overlong line */
	int			 out_blocked;	/* the client does not read */
	int			 peer_eof;
	int			 refused;	/* over a session limit: greeted
						 * with -TEMP, closing, not
						 * counted per address */
	const char		*cmd;		/* the command being run, for logs */
	size_t			 cmdlen;	/* (secret-free: see trk_cmd.c) */
	int			 logged;	/* the next negative reply is logged
						 * already (TRACK's own line) */
	uint32_t		 count[TRK_NVERBS], okcount[TRK_NVERBS];
	struct trk_track	*query;		/* TRACK answer in the making */
	struct trk_session	*prev, *next;
};

/* trk_server.c */
extern const struct config	*trk_cfg;	/* current; new commands use it */
extern struct event_base	*trk_base;
void		 trk_set_state(struct trk_session *s, enum trk_state st);
const char	*trk_state_name(enum trk_state st);
/* trk_close_after_flush - stop reading; close once the replies are sent */
void		 trk_close_after_flush(struct trk_session *s);
/* trk_resume - the server's turn is over (an answer was sent): the
 * client's wait begins now, held input is processed from the loop */
void		 trk_resume(struct trk_session *s);
/* trk_tls_available - a certificate is loaded: STARTTLS is offered */
int		 trk_tls_available(void);
/* trk_tls_name_ok - name (a host name or an IP literal) is one the
 * certificate is valid for (RFC 3887 6: else -BAD/bad-fqdn) */
int		 trk_tls_name_ok(const char *name);

/* trk_cmd.c */
/* trk_greeting - the initial status response (RFC 3887 3): +OK+ with
 * the STARTTLS option while TLS is available and not active */
void		 trk_greeting(struct trk_session *s);
/* trk_cmd_dispatch - one command line (no line end, NUL-terminated) */
void		 trk_cmd_dispatch(struct trk_session *s, const char *line,
		    size_t len);
/* trk_cmd_overlong - a line over TRK_SRV_LINE_MAX was discarded */
void		 trk_cmd_overlong(struct trk_session *s);
/* trk_cmd_counters - "track=1/2 quit=1" (ok/total when they differ) */
int		 trk_cmd_counters(const struct trk_session *s, char *out,
		    size_t outlen);
/* trk_reply - one response line (RFC 3887 2.3: "+OK", "-BAD ...");
 * a negative one is logged with the session and the command */
void		 trk_reply(struct trk_session *s, const char *fmt, ...)
		    WM_PRINTF(2, 3);
/* trk_reply_data - a multi-line success: head ("+OK+ ..."), the data
 * lines of body (CRLF line ends) dot-stuffed, then "." */
void		 trk_reply_data(struct trk_session *s, const char *head,
		    const char *body, size_t len);

/* trk_answer.c */
/*
 * trk_answer_start - answer TRACK envid (decoded) with secret a (alen
 * octets, decoded): authenticate (trk_auth.c), then either answer now
 * (-ERR/noinfo, -TEMP/unavailable: returns -1) or make the answer
 * (returns 0; state TRK_ANSWER, the +OK+ goes out when it is complete,
 * possibly later, after chaining, and the state is TRK_READY again).
 */
int		 trk_answer_start(struct trk_session *s, const char *envid,
		    const unsigned char *a, size_t alen);
/* trk_answer_free - drop an answer in the making (the session closes) */
void		 trk_answer_free(struct trk_track *q);
/* trk_chain_reload - the configuration changed: the chaining client is
 * made anew (new `dns`) once no answer uses it */
void		 trk_chain_reload(void);
/* trk_chain_shutdown - free the chaining client (after every session) */
void		 trk_chain_shutdown(void);

#endif
