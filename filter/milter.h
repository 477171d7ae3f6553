/*
 * milter.h - the MTA side of the milter protocol (version 6), called by
 * smtpd/ at each SMTP stage: one milter_sess per SMTP session holds one
 * connection per configured milter (`milters`, in order), opened at
 * CONNECT and closed (QUIT) at the end of the session.
 * Every stage call is asynchronous on the event loop: it returns at
 * once, and done(arg, result) is called later from the loop (never
 * from inside the call), unless milter_abort or milter_close cancels
 * it first.  The session holds its input meanwhile.
 * Results name the milter that decided; default texts are Postfix's.
 */
#ifndef WAYMARK_FILTER_MILTER_H
#define WAYMARK_FILTER_MILTER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct config;
struct event_base;
struct qmsg;

enum milter_verdict {
	MILTER_CONTINUE = 0,	/* go on (see discard for a message) */
	MILTER_REFUSE,		/* answer code cls.subj.det text (4xx/5xx) */
	MILTER_DISCARD,		/* EOM: 250, and the message is dropped */
	MILTER_SHUTDOWN		/* 421 text, then close */
};

struct milter_result {
	enum milter_verdict verdict;
	int		 code, cls, subj, det;
	char		 text[512];	/* lines separated by '\n' */
	char		 milter[128];	/* the milter that decided, "" */
	const char	*action;	/* "reject", "tempfail", "replycode",
					 * "discard", "default", ... (logs) */
	/* EOM: a quarantine request, with the milter's text */
	int		 quarantine;
	char		 qreason[256];
	char		 qmilter[128];
	/* EOM: the content was rewritten (a new body file is swapped in) */
	int		 rewritten;
};

struct milter_sess;
typedef void	(*milter_done_fn)(void *arg, const struct milter_result *r);

/* milter_open - a session's milters (NULL when none are configured or
 * memory is short: errno ENOMEM); sid names the session in the logs */
struct milter_sess *milter_open(const struct config *cfg,
		    struct event_base *base, const char *sid);
/* milter_macro - set (value NULL: unset) a macro sent when a stage
 * asks for it: "j", "{client_addr}", "i", ... */
int		 milter_macro(struct milter_sess *ms, const char *name,
		    const char *value);
/* milter_connect - connect to every milter, negotiate, send CONNECT
 * (hostname, family '4'/'6'/'U', port, address) */
int		 milter_connect(struct milter_sess *ms, const char *hostname,
		    int family, unsigned port, const char *addr,
		    milter_done_fn done, void *arg);
int		 milter_helo(struct milter_sess *ms, const char *helo,
		    milter_done_fn done, void *arg);
/* milter_mail, milter_rcpt - argv[0] the path as written ("<a@b>"),
 * then the ESMTP parameters */
int		 milter_mail(struct milter_sess *ms, char *const *argv,
		    size_t argc, milter_done_fn done, void *arg);
int		 milter_rcpt(struct milter_sess *ms, char *const *argv,
		    size_t argc, milter_done_fn done, void *arg);
int		 milter_data(struct milter_sess *ms, milter_done_fn done,
		    void *arg);
/*
 * milter_eom - the received message m (body file body/QID, *fd open
 * for writing): its header fields, end of header, body chunks and end
 * of message to each milter in order.  Each milter's modifications are
 * applied when it accepts or continues (the next milter sees them):
 * envelope changes to m, header and body changes to a new body file
 * that replaces *fd (queue_body_swap); each one an event on m naming
 * the milter.  m and *fd must stay valid until done or milter_abort.
 */
int		 milter_eom(struct milter_sess *ms, struct qmsg *m, int *fd,
		    uint64_t max_size, milter_done_fn done, void *arg);
/* milter_discarding - a milter asked to discard the current message */
int		 milter_discarding(const struct milter_sess *ms);
/* milter_abort - the transaction ended (RSET, new MAIL, error): ABORT
 * to the milters in a message; an operation in flight is cancelled */
void		 milter_abort(struct milter_sess *ms);
/* milter_close - QUIT to every milter, free everything */
void		 milter_close(struct milter_sess *ms);

/* milter_parse_reply - a SMFIR_REPLYCODE text ("550 5.7.1 text", lines
 * joined by CRLF) into code, enhanced code and text ('\n' between
 * lines, "%%" as "%"); 0, or -1 when it is not a valid 4xx/5xx reply */
int		 milter_parse_reply(const char *in, int *code, int *cls,
		    int *subj, int *det, char *text, size_t textlen);

#endif
