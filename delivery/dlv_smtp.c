#include "config.h"
/*
 * dlv_smtp.c - the SMTP / LMTP client session: one connection, one or
 * more transactions, event-driven with bufferevents in the loop.
 * Owns: connect, greeting, EHLO (HELO fallback) / LHLO, STARTTLS (an
 *       OpenSSL filter bufferevent), AUTH PLAIN/LOGIN, MAIL (SIZE=,
 *       BODY=8BITMIME), RCPT, DATA with the trace fields prepended and
 *       the spool file streamed in 64 KiB chunks and dot-stuffed,
 *       PIPELINING (MAIL + RCPTs + DATA in one write), the 452 split into
 *       a new transaction, per-recipient results, RSET, QUIT, parking.
 * State machine: one enum; set_state() alone assigns it and arms the
 *       state's timeout (RFC 5321 4.5.3.2, smtp_*_timeout); the phrase
 *       table gives "while sending RCPT TO" for logs and results.
 * Sync: every line that asks for a reply goes through sess_cmd(), which
 *       counts it in s->pending.  A reply when none is pending, data during
 *       the message body, a reply left in the input after the last one
 *       expected, or a reply code the command cannot have (reply_fits) is
 *       a lost sync: the connection is closed and never reused, and the
 *       recipients of the open transaction defer with 4.4.2.  So a
 *       recipient is relayed only by its own 250 to "." on a connection
 *       whose replies matched its commands.
 * Writes: on a plain connection what a callback queued goes out in one
 *       write when it ends (sess_flush), with no write event in epoll;
 *       libevent writes only what that leaves behind, the content while
 *       it is read from the spool file, and everything with TLS.
 * Texts: a result with the host's reply keeps its text as the host sent
 *       it; every text of our own about a host names it ("host[addr]",
 *       s->peer.remote), which is how the DSN composer and the queue
 *       tell them apart (text_is_reply, common/util.h).  Log lines quote such a
 *       text without naming the host again.
 * TLS policy: DANE (dlv_dane.c) when the host published secure TLSA
 *       records: STARTTLS and (with usable records) DANE authentication
 *       are then mandatory, and a failure is never retried in
 *       plaintext; else smtp_tls.  Each connection's policy and outcome
 *       (tls_outcome) go into every result it gives.
 * REQUIRETLS (RFC 8689 4.2.1, peer.rtls set by dlv_remote.c): TLS and a
 *       verified certificate are mandatory; a failed TLS step is 550
 *       5.7.10 (rtls_err), a post-TLS EHLO without REQUIRETLS 550
 *       5.7.30; MAIL carries REQUIRETLS for a tagged message over
 *       verified TLS to a hop that offers it (rtls_param).
 * Not here: routes, choosing addresses, concurrency, the idle cache
 *       (dlv_remote.c).  The callback is never called before
 *       dlv_sess_run returns, and the session never touches itself after
 *       calling it.
 * Standards: RFC 5321, RFC 2033 (LMTP), RFC 3207, RFC 2920, RFC 1870,
 *       RFC 6152, RFC 4954, RFC 3463, RFC 3461 (RET ENVID NOTIFY ORCPT
 *       only to DSN next hops), RFC 3885 (MTRK only to MTRK next hops,
 *       with the remaining timeout; dropped when it is <= 0; each
 *       result says whether its transaction's MAIL carried it), RFC 2852
 *       4.1.4 (DELIVERBY next hops get BY=<seconds left>;mode[T],
 *       computed as MAIL is written; mode R is never relayed to a hop
 *       without DELIVERBY or whose min-by-time exceeds the time left:
 *       those recipients fail 5.4.7 without a MAIL, and no other MX is
 *       tried (RFC 2852 7); mode N to a hop without DELIVERBY before the
 *       deadline adds DELAY to NOTIFY (FAILURE,DELAY when absent) for a
 *       DSN hop).  LMTP is final delivery, not relaying: no BY there.
 *       RFC 3030: to a hop (SMTP or LMTP) that advertises CHUNKING the
 *       content goes by BDAT once every RCPT is answered: the exact
 *       octets (trace fields, then the spool file, no dot-stuffing) in
 *       chunks of at most 1 MiB, back to back, the last one with LAST
 *       (one "BDAT n LAST" for a message up to 1 MiB).  A 4xx/5xx to a
 *       chunk ends the connection (the announced octets cannot be
 *       taken back) and answers the accepted recipients.  BODY=BINARYMIME
 *       only to a hop with BINARYMIME and CHUNKING, else the recipients
 *       fail 5.6.3 (no conversion).
 */

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>
#include <sys/stat.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "common/bevio.h"
#include "common/cfg.h"
#include "common/intl.h"
#include "common/log.h"
#include "common/metrics.h"
#include "common/syntax.h"
#include "common/util.h"
#include "delivery/dlv_int.h"

#define CHUNK		(64 * 1024)	/* spool read size */
#define HIWAT		(256 * 1024)	/* output queued before waiting */
#define LOWAT		(64 * 1024)	/* refill below this */
#define LINE_MAX_IN	4096		/* longest reply line accepted */
#define REPLY_LINES	100		/* lines per reply */
#define IDLE_SECS	5
#define QUIT_SECS	5

enum sstate {
	S_NONE, S_CONNECT, S_GREETING, S_EHLO, S_HELO, S_STARTTLS, S_TLS,
	S_AUTH, S_AUTH_USER, S_AUTH_PASS, S_RSET, S_MAIL, S_RCPT, S_DATA,
	S_BODY, S_DOT, S_IDLE, S_QUIT, S_KICK, S_FAILNOW, S_NSTATES
};

static const char *const state_names[S_NSTATES] = {
	"none", "connect", "greeting", "ehlo", "helo", "starttls", "tls",
	"auth", "auth-user", "auth-pass", "rset", "mail", "rcpt", "data",
	"body", "dot", "idle", "quit", "kick", "failnow"
};

/* phrases quoted by results and logs: "lost connection with H while ..." */
static const char *const state_phrase[S_NSTATES] = {
	"before connecting", "connecting",
	"receiving the initial server greeting", "sending EHLO",
	"sending HELO", "sending STARTTLS", "performing the TLS handshake",
	"authenticating", "authenticating", "authenticating",
	"sending RSET", "sending MAIL FROM", "sending RCPT TO",
	"sending DATA command", "sending message body",
	"sending end of data -- message may be sent more than once",
	"idle", "sending QUIT", "starting", "connecting"
};

/* per-recipient state inside one connection */
enum { RC_TODO = 0, RC_OK, RC_AGAIN, RC_DONE };

#define CAP_PIPELINING	0x01
#define CAP_8BITMIME	0x02
#define CAP_STARTTLS	0x04
#define CAP_SIZE	0x08
#define CAP_AUTH_PLAIN	0x10
#define CAP_AUTH_LOGIN	0x20
#define CAP_DSN		0x40		/* RFC 3461 */
#define CAP_MTRK	0x80		/* RFC 3885 */
#define CAP_DELIVERBY	0x100		/* RFC 2852 */
#define CAP_CHUNKING	0x200		/* RFC 3030 */
#define CAP_BINARYMIME	0x400		/* RFC 3030 */
#define BDAT_MAX	(1024 * 1024)	/* largest chunk sent */
#define CAP_SMTPUTF8	0x1000		/* RFC 6531 */
#define CAP_REQUIRETLS	0x2000		/* RFC 8689 */

struct dlv_sess {
	TAILQ_ENTRY(dlv_sess)	 entry;
	struct dlv_peer		 peer;
	const struct config	*cfg;
	struct bufferevent	*bev;
	struct event		*tmo;
	enum sstate		 state;
	struct dlv_msg		*m;
	dlv_sess_fn		 cb;
	void			*arg;
	int			 reused;	/* this run uses a parked connection */
	int			 usable;	/* connection fine for another message */
	int			 txn_open;	/* MAIL accepted, no end / RSET yet */
	int			 closing;	/* the peer announced 421: no reuse */
	unsigned		 pending;	/* replies expected to lines sent */
	int			 ntxn;		/* transactions started in this run */
	unsigned		 caps;
	uint64_t		 maxsize;
	long			 bymin;		/* DELIVERBY min-by-time, 0 = none */
	int			 by_delay;	/* mode N, hop without DELIVERBY:
						 * NOTIFY gets DELAY (RFC 2852 4.1.4.2) */
	int			 mtrk_sent;	/* this transaction's MAIL carried
						 * MTRK= (RFC 3885) */
	int			 utf8_param;	/* this MAIL carries SMTPUTF8 */
	int			 tls_on;
	char			 tls[160];	/* "TLSv1.3 TLS_AES_256_GCM_SHA384"
						 * [", DANE-EE 3 1 1 verified"] */
	enum dlv_tls_policy	 tls_policy;	/* of this connection */
	const char		*tls_result;	/* its outcome (tls_outcome), or NULL */
	int			 dane_auth;	/* DANE authenticates this handshake */
	char			 tls_out[128];	/* TLS policy outcome, "verified" */
	/* the reply being read */
	int			 rcode;
	char			 renh[16];
	char			 rtext[512];
	size_t			 rlines;
	/* the transaction */
	unsigned char		*rst;		/* RC_* per m->rcpts */
	size_t			*order;		/* recipients of this transaction */
	size_t			 norder, nsent, nreplied, naccepted, nlmtp;
	int			 pipelined;
	int			 skip;		/* replies to swallow after a failed MAIL */
	int			 discard;	/* 354 without accepted recipients */
	int			 got452;
	int			 body_fd;
	int			 at_bol;
	/* BDAT (RFC 3030) for this transaction */
	int			 bdat;		/* the content goes by BDAT */
	int			 bdat_last_sent;	/* the LAST chunk is queued */
	unsigned		 bdat_due;	/* replies due to non-LAST chunks */
	uint64_t		 bdat_left;	/* octets not yet announced */
	uint64_t		 bdat_chunk;	/* octets of the queued chunk to add */
	/* why the last run ended with NEXT / PLAIN */
	struct dlv_result	 err;
};

static TAILQ_HEAD(, dlv_sess) sessions = TAILQ_HEAD_INITIALIZER(sessions);
static struct dlv_sess *cur;	/* the session read_replies works on */
static char	*iobuf;		/* CHUNK bytes, shared: the loop is one thread */

static void	 txn_start(struct dlv_sess *);
static void	 after_ehlo(struct dlv_sess *);
static void	 read_cb(struct bufferevent *, void *);
static void	 write_cb(struct bufferevent *, void *);
static void	 event_cb(struct bufferevent *, short, void *);

/* ---- small helpers ---- */

static unsigned
state_timeout(const struct dlv_sess *s, enum sstate st)
{
	const struct config	*c = s->cfg;

	switch (st) {
	case S_CONNECT:
		return c->smtp_connect_timeout;
	case S_GREETING: case S_EHLO: case S_HELO: case S_STARTTLS:
	case S_TLS: case S_AUTH: case S_AUTH_USER: case S_AUTH_PASS:
		return c->smtp_helo_timeout;
	case S_RSET: case S_MAIL:
		return c->smtp_mail_timeout;
	case S_RCPT:
		return c->smtp_rcpt_timeout;
	case S_DATA:
		return c->smtp_data_init_timeout;
	case S_BODY:
		return c->smtp_data_block_timeout;
	case S_DOT:
		return c->smtp_data_done_timeout;
	case S_IDLE:
		return IDLE_SECS;
	case S_QUIT:
		return QUIT_SECS;
	default:
		return 0;
	}
}

/* set_state - the only assignment of s->state; arms its timeout */
static void
set_state(struct dlv_sess *s, enum sstate st)
{
	struct timeval	tv = { 0, 0 };

	log_debug("smtp %s: %s -> %s", s->peer.remote,
	    state_names[s->state], state_names[st]);
	s->state = st;
	tv.tv_sec = (time_t)state_timeout(s, st);
	if (s->cfg != NULL && (tv.tv_sec > 0 || st == S_KICK ||
	    st == S_FAILNOW))
		evtimer_add(s->tmo, &tv);
	else
		evtimer_del(s->tmo);
}

/* tls_may - plaintext allowed (smtp_tls = may, no TLS policy requiring it) */
static int
tls_may(const struct dlv_sess *s)
{
	return s->cfg->smtp_tls == CFG_TLS_MAY && !s->peer.tls_require;
}

/* tls_verify - the certificate must be valid for the host name */
static int
tls_verify(const struct dlv_sess *s)
{
	return s->cfg->smtp_tls == CFG_TLS_VERIFY || s->peer.tls_verify;
}

/*
 * tls_count - the TLS-RPT count of this session attempt under an
 * MTA-STS policy: result NULL = success (RFC 8460 4.3 types otherwise).
 * A host outside the policy's mx patterns was counted by dlv_remote.c.
 */
static void
tls_count(const struct dlv_sess *s, const char *result, const char *code)
{
	struct sockaddr_storage	 me;
	socklen_t		 melen = sizeof(me);
	char			 ip[64] = "", sip[64] = "";
	evutil_socket_t		 fd;

	if (s->peer.tls_policy != DLV_TLS_MTA_STS || s->peer.tls_mxbad)
		return;
	if (s->peer.ss.ss_family != AF_UNIX)
		(void)sockaddr_text((const struct sockaddr *)&s->peer.ss, ip,
		    sizeof(ip));
	if (result != NULL && s->bev != NULL &&
	    (fd = bufferevent_getfd(s->bev)) >= 0 &&
	    getsockname(fd, (struct sockaddr *)&me, &melen) == 0 &&
	    me.ss_family != AF_UNIX)
		(void)sockaddr_text((const struct sockaddr *)&me, sip,
		    sizeof(sip));
	dlv_tlsrpt_count(s->peer.tls_domain, "sts", s->peer.tls_mxpat,
	    result, s->peer.name, ip, sip, code);
}

/* tls_count_vr - a handshake's verification result, counted */
static void
tls_count_vr(const struct dlv_sess *s, long vr)
{
	if (vr == X509_V_OK)
		tls_count(s, NULL, NULL);
	else
		tls_count(s, dlv_tlsrpt_x509_result(vr),
		    X509_verify_cert_error_string(vr));
}

/* sts_note - "tls_policy=mta-sts ...: outcome" for result texts, or "" */
static void
sts_note(const struct dlv_sess *s, char *buf, size_t len)
{
	int	n;

	buf[0] = '\0';
	if (s->peer.tls_policy == DLV_TLS_UNSET)
		return;
	n = snprintf(buf, len, "%s: %s", s->peer.tls_note,
	    s->tls_on ? s->tls_out : "no TLS");
	if (n < 0 || (size_t)n >= len)
		buf[0] = '\0';
}

static void
sess_cmd(struct dlv_sess *s, const char *fmt, ...) WM_PRINTF(2, 3);

/* sess_cmd - queue one line that asks for one reply */
static void
sess_cmd(struct dlv_sess *s, const char *fmt, ...)
{
	va_list	ap;

	if (s->bev == NULL)
		return;
	va_start(ap, fmt);
	(void)evbuffer_add_vprintf(bufferevent_get_output(s->bev), fmt, ap);
	va_end(ap);
	s->pending++;
}

/*
 * sess_flush - send what is queued now, on a plain connection: one
 * write where libevent would first add the socket's write event to
 * epoll, write on the next turn of the loop and remove the event again.
 * Called when a callback that may have queued commands ends with s
 * still ours (read_cb, write_cb, tmo_cb, handoff, dlv_sess_quit).  The
 * write event is enabled only for what one write leaves behind (a full
 * socket buffer, an error: libevent goes on and reports errors as
 * before), while connecting, while the content is still being read
 * from the spool file (write_cb refills at the low-water mark), and
 * always with TLS (the OpenSSL filter writes).
 */
static void
sess_flush(struct dlv_sess *s)
{
	if (s->bev == NULL || s->state == S_NONE || s->state == S_CONNECT ||
	    s->state == S_TLS || bufferevent_get_underlying(s->bev) != NULL)
		return;
	if (s->state == S_BODY) {
		bufferevent_enable(s->bev, EV_WRITE);
		return;
	}
	bev_write_now(s->bev);
}

/* class_status - temporary or permanent, from the reply class */
static enum rcpt_status
class_status(int code, int lmtp)
{
	switch (code / 100) {
	case 2:
		return lmtp ? RS_DELIVERED : RS_RELAYED;
	case 5:
		return RS_FAILED;
	default:
		return RS_DEFERRED;
	}
}

/*
 * tls_outcome - the connection's TLS outcome, once per connection:
 * plaintext, tls, verified, mismatch (DANE), verify-failed (smtp_tls =
 * verify), no-starttls, handshake-failed (/metrics:
 * waymark_tls_outbound_total{policy,result} counts here, for SMTP peers:
 * s->tls_policy != DLV_TLS_UNSET)
 */
static void
tls_outcome(struct dlv_sess *s, const char *result)
{
	const char	*m;

	s->tls_result = result;
	if (!s->peer.lmtp) {
		/* the metric's coarser results (common/metrics.h) */
		if (strcmp(result, "plaintext") == 0)
			m = "cleartext";
		else if (strcmp(result, "tls") == 0)
			m = "opportunistic";
		else if (strcmp(result, "verified") == 0 ||
		    strcmp(result, "mismatch") == 0)
			m = result;
		else
			m = "failed";
		metrics_tls_outbound(s->tls_policy == DLV_TLS_UNSET ? "none" :
		    dlv_tls_policy_name(s->tls_policy), m);
	}
	if (s->tls_policy != DLV_TLS_UNSET)
		log_debug("smtp %s: tls_policy=%s tls_result=%s",
		    s->peer.remote, dlv_tls_policy_name(s->tls_policy), result);
}

/* tls_note - the connection's TLS policy and outcome into r */
static void
tls_note(const struct dlv_sess *s, struct dlv_result *r)
{
	r->tls_policy = s->tls_policy;
	(void)snprintf(r->tls_result, sizeof(r->tls_result), "%s",
	    s->tls_policy != DLV_TLS_UNSET && s->tls_result != NULL ?
	    s->tls_result : "");
}

/* tls_optional - a failed TLS step may go on in plaintext (smtp_tls = may
 * and no MTA-STS policy requiring TLS, without AUTH, and no DANE records:
 * RFC 7672 2.2) */
static int
tls_optional(const struct dlv_sess *s)
{
	return tls_may(s) && !s->peer.auth && !dlv_dane_tls_required(&s->peer);
}

static void
fill(struct dlv_result *r, enum rcpt_status st, int code, const char *enh,
    const char *text, const char *remote)
{
	size_t	ridx = r->ridx;

	memset(r, 0, sizeof(*r));
	r->ridx = ridx;
	r->hop_dsn = r->hop_mtrk = r->hop_by = -1;
	r->status = st;
	r->code = code;
	(void)snprintf(r->enh, sizeof(r->enh), "%s", enh);
	(void)snprintf(r->text, sizeof(r->text), "%s", text);
	(void)snprintf(r->remote, sizeof(r->remote), "%s", remote);
}

/* rcpt_final - recipient i's result is decided */
static void
rcpt_final(struct dlv_sess *s, size_t i, enum rcpt_status st, int code,
    const char *enh, const char *text)
{
	fill(&s->m->res[i], st, code, enh, text, s->peer.remote);
	tls_note(s, &s->m->res[i]);
	s->m->res[i].hop_dsn = (s->caps & CAP_DSN) != 0;
	s->m->res[i].hop_mtrk = (s->caps & CAP_MTRK) != 0;
	s->m->res[i].hop_by = (s->caps & CAP_DELIVERBY) != 0;
	s->m->res[i].mtrk_sent = s->mtrk_sent;
	s->m->done[i] = 1;
	s->rst[i] = RC_DONE;
}

/* rcpt_reply - recipient i gets the current reply (2xx: with TLS / 8-bit notes) */
static void
rcpt_reply(struct dlv_sess *s, size_t i)
{
	char	text[512], note[256];
	int	n;

	if (s->rcode / 100 != 2) {
		rcpt_final(s, i, class_status(s->rcode, s->peer.lmtp),
		    s->rcode, s->renh, s->rtext);
		return;
	}
	sts_note(s, note, sizeof(note));
	n = snprintf(text, sizeof(text), "%s%s%s%s%s%s%s", s->rtext,
	    s->tls_on || note[0] ? " (" : "", s->tls_on ? s->tls : "",
	    s->tls_on && note[0] ? "; " : "", note,
	    s->tls_on || note[0] ? ")" : "",
	    s->m->body_8bit && !(s->caps & CAP_8BITMIME) ?
	    "; 8-bit sent to a 7-bit peer" : "");
	if (n < 0)
		text[0] = '\0';
	rcpt_final(s, i, class_status(s->rcode, s->peer.lmtp), s->rcode,
	    s->renh, text);
}

static void
set_err(struct dlv_sess *s, enum rcpt_status st, int code, const char *enh,
    const char *fmt, ...) WM_PRINTF(5, 6);

static void
set_err(struct dlv_sess *s, enum rcpt_status st, int code, const char *enh,
    const char *fmt, ...)
{
	char	text[512];
	va_list	ap;

	size_t	n;

	va_start(ap, fmt);
	(void)vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	/* a text of ours (it names the host): the TLS policy in force */
	if (s->peer.tls_policy != DLV_TLS_UNSET &&
	    strstr(text, s->peer.remote) != NULL &&
	    (n = strlen(text)) < sizeof(text))
		(void)snprintf(text + n, sizeof(text) - n, " (%s)",
		    s->peer.tls_note);
	fill(&s->err, st, code, enh, text, s->peer.remote);
	tls_note(s, &s->err);
}

/* err_from_reply - the current reply as the host's error */
static void
err_from_reply(struct dlv_sess *s, const char *what)
{
	set_err(s, s->rcode / 100 == 5 ? RS_FAILED : RS_DEFERRED,
	    s->rcode / 100 == 5 || s->rcode / 100 == 4 ? s->rcode : 451,
	    s->rcode / 100 == 5 || s->rcode / 100 == 4 ? s->renh : "4.4.0",
	    "%s%s", what, s->rtext);
}

static void
body_close(struct dlv_sess *s)
{
	if (s->body_fd != -1) {
		close(s->body_fd);
		s->body_fd = -1;
	}
}

/*
 * rtls_err - RFC 8689 4.2.1: a host that failed a REQUIRETLS message's
 * TLS step (no STARTTLS, a failed handshake, a certificate not verified)
 * fails it with 5.7.10 "Encryption needed", the reason kept in the text;
 * never a plaintext retry.  Other errors (connection, greeting) stay.
 */
static void
rtls_err(struct dlv_sess *s)
{
	char		 text[sizeof(s->err.text)];
	const char	*why, *r = s->tls_result;

	if (!s->peer.rtls || r == NULL || strcmp(r, "verified") == 0 ||
	    strcmp(r, "tls") == 0 || strcmp(r, "plaintext") == 0)
		return;
	if (strcmp(r, "no-starttls") == 0)
		why = "no STARTTLS";
	else if (strcmp(r, "verify-failed") == 0 || strcmp(r, "mismatch") == 0)
		why = "certificate not verified";
	else
		why = "TLS handshake failed";
	if (snprintf(text, sizeof(text), "REQUIRETLS: %s: %.470s", why,
	    s->err.text) < 0)
		text[0] = '\0';
	s->err.status = RS_FAILED;
	s->err.code = 550;
	(void)snprintf(s->err.enh, sizeof(s->err.enh), "5.7.10");
	(void)snprintf(s->err.text, sizeof(s->err.text), "%s", text);
}

/* handoff - report the outcome; the session is the callee's afterwards */
static void
handoff(struct dlv_sess *s, enum dlv_outcome o)
{
	dlv_sess_fn	 cb = s->cb;
	void		*arg = s->arg;

	if (o == DLV_OUT_NEXT || o == DLV_OUT_PLAIN)
		rtls_err(s);

	if (cur == s)
		cur = NULL;
	evtimer_del(s->tmo);
	body_close(s);
	sess_flush(s);		/* anything still queued goes first */
	if (o != DLV_OUT_DONE)
		s->usable = 0;
	s->m = NULL;
	s->cb = NULL;
	s->arg = NULL;
	if (cb != NULL)
		cb(arg, s, o);
}

static void
close_bev(struct dlv_sess *s)
{
	if (s->bev != NULL) {
		bufferevent_free(s->bev);
		s->bev = NULL;
	}
	s->usable = 0;
}

/* defer_rest - every undecided recipient: deferred with text */
static void
defer_rest(struct dlv_sess *s, int code, const char *enh, const char *text)
{
	size_t	i;

	for (i = 0; i < s->m->nrcpts; i++)
		if (!s->m->done[i])
			rcpt_final(s, i, RS_DEFERRED, code, enh, text);
}

enum fail_kind {
	FK_LOST,	/* the connection dropped or an I/O error */
	FK_TIMEOUT,	/* the state's timeout passed */
	FK_SYNC,	/* the replies no longer match the commands */
};

/*
 * conn_fail - the connection is lost, timed out or out of sync: before a
 * transaction the next address is tried; inside one the open recipients
 * defer.  Out of sync before the body was accepted, the results of this
 * transaction's RCPTs are not trusted either: they defer too.
 */
static void
conn_fail(struct dlv_sess *s, const char *why, enum fail_kind kind)
{
	char		text[512];
	enum sstate	st = s->state;
	size_t		k;

	close_bev(s);
	if (st == S_QUIT || st == S_NONE) {
		dlv_sess_free(s);
		return;
	}
	if (st == S_IDLE) {
		handoff(s, DLV_OUT_CLOSED);
		return;
	}
	if (st == S_CONNECT || st == S_FAILNOW) {
		set_err(s, RS_DEFERRED, 451, "4.4.1",
		    "connection to %s failed: %s", s->peer.remote, why);
		log_info("smtp: %s", s->err.text);
		handoff(s, DLV_OUT_NEXT);
		return;
	}
	if (kind == FK_SYNC) {
		(void)snprintf(text, sizeof(text), "lost sync with next hop %s "
		    "while %s: %s", s->peer.remote, state_phrase[st], why);
		/* RSET follows only a transaction without a 250 to "."
		 * (nothing relayed): its RCPT / DATA results go too */
		if (st >= S_RSET && st <= S_DATA && s->m != NULL)
			for (k = 0; k < s->norder; k++)
				s->m->done[s->order[k]] = 0;
	} else if (kind == FK_TIMEOUT)
		(void)snprintf(text, sizeof(text), "conversation with %s timed "
		    "out while %s", s->peer.remote, state_phrase[st]);
	else
		(void)snprintf(text, sizeof(text), "lost connection with %s "
		    "while %s%s%s", s->peer.remote, state_phrase[st],
		    why[0] ? ": " : "", why);
	if (kind == FK_SYNC)
		log_warnx("smtp: %s", text);
	else
		log_info("smtp: %s", text);
	if (st < S_RSET || st == S_KICK ||
	    (st == S_MAIL && s->reused && s->ntxn == 1)) {
		set_err(s, RS_DEFERRED, 451, "4.4.2", "%s", text);
		handoff(s, DLV_OUT_NEXT);
		return;
	}
	defer_rest(s, 451, "4.4.2", text);
	handoff(s, DLV_OUT_DONE);
}

/* ---- replies ---- */

/* parse_enh - "x.y.z " at the start of t with x == class; its length or 0 */
static size_t
parse_enh(const char *t, int cls, char *out, size_t outlen)
{
	size_t	i = 0, part, digits;

	if (t[0] != '0' + cls || t[1] != '.')
		return 0;
	for (part = 0; part < 3; part++) {
		for (digits = 0; t[i] >= '0' && t[i] <= '9'; i++)
			digits++;
		if (digits == 0 || digits > 3)
			return 0;
		if (part < 2) {
			if (t[i] != '.')
				return 0;
			i++;
		}
	}
	if (t[i] != ' ' && t[i] != '\0')
		return 0;
	if (out != NULL && i < outlen) {
		memcpy(out, t, i);
		out[i] = '\0';
	}
	return t[i] == ' ' ? i + 1 : i;
}

/* ehlo_line - one capability line of the EHLO / LHLO reply */
static void
ehlo_line(struct dlv_sess *s, const char *t)
{
	const char	*p;

	if (strcasecmp(t, "PIPELINING") == 0)
		s->caps |= CAP_PIPELINING;
	else if (strcasecmp(t, "8BITMIME") == 0)
		s->caps |= CAP_8BITMIME;
	else if (strcasecmp(t, "STARTTLS") == 0)
		s->caps |= CAP_STARTTLS;
	else if (strcasecmp(t, "DSN") == 0)
		s->caps |= CAP_DSN;
	else if (strcasecmp(t, "MTRK") == 0)
		s->caps |= CAP_MTRK;
	else if (strcasecmp(t, "SMTPUTF8") == 0)
		s->caps |= CAP_SMTPUTF8;
	else if (strcasecmp(t, "CHUNKING") == 0)
		s->caps |= CAP_CHUNKING;
	else if (strcasecmp(t, "BINARYMIME") == 0)
		s->caps |= CAP_BINARYMIME;
	else if (strcasecmp(t, "REQUIRETLS") == 0)
		s->caps |= CAP_REQUIRETLS;
	else if (strncasecmp(t, "DELIVERBY", 9) == 0 && (t[9] == '\0' ||
	    t[9] == ' ')) {
		/* RFC 2852 2: "DELIVERBY" [SP min-by-time *("," ext)] */
		s->caps |= CAP_DELIVERBY;
		s->bymin = 0;
		for (p = t + 9; *p == ' '; p++)
			;
		for (; *p >= '0' && *p <= '9' && s->bymin <= 99999999L; p++)
			s->bymin = s->bymin * 10 + (*p - '0');
	} else if (strncasecmp(t, "SIZE", 4) == 0 && (t[4] == '\0' ||
	    t[4] == ' ')) {
		s->caps |= CAP_SIZE;
		s->maxsize = t[4] == ' ' ? strtoull(t + 5, NULL, 10) : 0;
	} else if (strncasecmp(t, "AUTH", 4) == 0 && (t[4] == ' ' ||
	    t[4] == '=')) {
		for (p = t + 5; *p != '\0'; ) {
			size_t n = strcspn(p, " ");

			if (n == 5 && strncasecmp(p, "PLAIN", 5) == 0)
				s->caps |= CAP_AUTH_PLAIN;
			else if (n == 5 && strncasecmp(p, "LOGIN", 5) == 0)
				s->caps |= CAP_AUTH_LOGIN;
			p += n;
			while (*p == ' ')
				p++;
		}
	}
}

/*
 * reply_line - add one line; 1 when the reply is complete, 0 for more,
 * -1 on a malformed line.
 */
static int
reply_line(struct dlv_sess *s, const char *line, size_t len)
{
	const char	*t;
	size_t		 off, tl;
	int		 code, last;

	if (len < 3 || line[0] < '2' || line[0] > '5' || line[1] < '0' ||
	    line[1] > '9' || line[2] < '0' || line[2] > '9' ||
	    (len > 3 && line[3] != ' ' && line[3] != '-'))
		return -1;
	code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
	last = len == 3 || line[3] == ' ';
	t = len > 4 ? line + 4 : "";
	if (s->rlines == 0) {
		s->rcode = code;
		s->renh[0] = '\0';
		s->rtext[0] = '\0';
		off = parse_enh(t, code / 100, s->renh, sizeof(s->renh));
	} else {
		if (code != s->rcode || s->rlines >= REPLY_LINES)
			return -1;
		off = parse_enh(t, code / 100, NULL, 0);
		if (s->state == S_EHLO || s->state == S_HELO)
			ehlo_line(s, t);
	}
	s->rlines++;
	t += off;
	tl = strlen(t);
	if ((s->state != S_EHLO && s->state != S_HELO) || s->rlines == 1) {
		size_t have = strlen(s->rtext);

		if (have > 0 && have + 1 < sizeof(s->rtext)) {
			s->rtext[have++] = ' ';
			s->rtext[have] = '\0';
		}
		if (have + tl >= sizeof(s->rtext))
			tl = sizeof(s->rtext) - have - 1;
		memcpy(s->rtext + have, t, tl);
		s->rtext[have + tl] = '\0';
	}
	if (!last)
		return 0;
	if (s->renh[0] == '\0')
		(void)snprintf(s->renh, sizeof(s->renh), "%d.0.0", code / 100);
	s->rlines = 0;
	return 1;
}

/* ---- sending ---- */

static int
b64(const char *in, size_t inlen, char *out, size_t outlen)
{
	if (outlen < 4 * ((inlen + 2) / 3) + 1 || inlen > 1024)
		return -1;
	(void)EVP_EncodeBlock((unsigned char *)out, (const unsigned char *)in,
	    (int)inlen);
	return 0;
}

static void
send_helo(struct dlv_sess *s, int ehlo)
{
	s->caps = 0;
	s->maxsize = 0;
	s->bymin = 0;
	sess_cmd(s, "%s %s\r\n", s->peer.lmtp ? "LHLO" : ehlo ? "EHLO" :
	    "HELO", s->cfg->hostname ? s->cfg->hostname : "localhost");
	set_state(s, ehlo ? S_EHLO : S_HELO);
}

/*
 * utf8_orcpt - an "utf-8" ORCPT value for the wire (RFC 6533 3): raw
 * UTF-8 (unitext) to a hop that gets SMTPUTF8, else every non-ASCII
 * character as "\x{HEX}" (the 7-bit form); SP, CTLs, '+' and '=' are
 * always escaped; 0 or -1 when out is too small
 */
static int
utf8_orcpt(const char *v, int raw, char *out, size_t outlen)
{
	const unsigned char	*p = (const unsigned char *)v;
	size_t			 n = strlen(v), k, o = 0;
	unsigned long		 cp;
	int			 w;

	while (n > 0) {
		k = utf8_len(p, n);
		if (k == 0)
			return -1;
		if ((k > 1 && raw) || (k == 1 && p[0] > 0x20 &&
		    p[0] < 0x7f && p[0] != '+' && p[0] != '=')) {
			if (o + k >= outlen)
				return -1;
			memcpy(out + o, p, k);
			o += k;
		} else {
			cp = k == 1 ? p[0] : k == 2 ? (p[0] & 0x1fUL) :
			    k == 3 ? (p[0] & 0x0fUL) : (p[0] & 0x07UL);
			for (size_t i = 1; i < k; i++)
				cp = (cp << 6) | (p[i] & 0x3fUL);
			w = snprintf(out + o, outlen - o, "\\x{%02lX}", cp);
			if (w < 0 || (size_t)w >= outlen - o)
				return -1;
			o += (size_t)w;
		}
		p += k;
		n -= k;
	}
	out[o] = '\0';
	return 0;
}

/* rcpt_dsn_params - " NOTIFY=... ORCPT=type;xtext" for a DSN next hop
 * (RFC 3461 5.2.1: passed unchanged, never added); "" otherwise */
static void
rcpt_dsn_params(const struct dlv_sess *s, size_t i, char *out, size_t outlen)
{
	static const char *const kw[] = { "NEVER", "SUCCESS", "FAILURE",
	    "DELAY" };
	unsigned	 bits = s->m->notify != NULL ? s->m->notify[i] : 0;
	const char	*o = s->m->orcpt != NULL ? s->m->orcpt[i] : NULL;
	const char	*semi;
	char		 x[3 * 512 + 1];
	size_t		 off = 0, b;
	int		 n;

	out[0] = '\0';
	if (!(s->caps & CAP_DSN))
		return;
	if (s->by_delay && !(bits & DSN_NOTIFY_NEVER))	/* RFC 2852 4.1.4.2 */
		bits |= bits == 0 ? DSN_NOTIFY_FAILURE | DSN_NOTIFY_DELAY :
		    DSN_NOTIFY_DELAY;
	for (b = 0; b < 4; b++) {
		if (!(bits & (1u << b)))
			continue;
		n = snprintf(out + off, outlen - off, "%s%s",
		    off == 0 ? " NOTIFY=" : ",", kw[b]);
		if (n < 0 || (size_t)n >= outlen - off)
			goto fail;
		off += (size_t)n;
	}
	if (o != NULL && (semi = strchr(o, ';')) != NULL) {
		if (semi - o == 5 && strncasecmp(o, "utf-8", 5) == 0) {
			if (utf8_orcpt(semi + 1, s->utf8_param, x,
			    sizeof(x)) == -1)
				return;
		} else if (xtext_encode(semi + 1, strlen(semi + 1), x,
		    sizeof(x)) == -1)
			return;		/* keep NOTIFY; ORCPT is optional */
		n = snprintf(out + off, outlen - off, " ORCPT=%.*s;%s",
		    (int)(semi - o), o, x);
		if (n < 0 || (size_t)n >= outlen - off)
			out[off] = '\0';
	}
	return;
fail:
	out[0] = '\0';
}

static void
send_rcpt(struct dlv_sess *s, size_t k)
{
	char	params[2048];

	rcpt_dsn_params(s, s->order[k], params, sizeof(params));
	sess_cmd(s, "RCPT TO:<%s>%s\r\n", s->m->rcpts[s->order[k]], params);
}

/*
 * utf8_gate - RFC 6531 3.2, 3.7.2: the SMTPUTF8 parameter goes to a hop
 * that advertises it when the message had it or needs it (a non-ASCII
 * address or UTF-8 in the header).  A hop without it: a recipient whose
 * transaction needs it fails, 553 5.6.7 for a non-ASCII sender or
 * recipient address, 554 5.6.9 for UTF-8 only in the header (a DSN
 * follows); it leaves the transaction.  A message with the flag and
 * nothing non-ASCII goes without it.
 */
static void
utf8_gate(struct dlv_sess *s)
{
	const struct dlv_msg	*m = s->m;
	char			 text[400];
	size_t			 i, k, r;
	int			 snd, need;

	s->utf8_param = 0;
	snd = str_nonascii(m->sender, strlen(m->sender));
	need = snd || (m->intl & QM_UTF8_HDR);
	for (i = 0; i < s->norder && !need; i++)
		need = str_nonascii(m->rcpts[s->order[i]],
		    strlen(m->rcpts[s->order[i]]));
	if (!need && !(m->intl & QM_SMTPUTF8))
		return;
	if (s->caps & CAP_SMTPUTF8) {
		s->utf8_param = 1;
		return;
	}
	if (!need)
		return;
	(void)snprintf(text, sizeof(text), "message requires SMTPUTF8, but "
	    "%s does not support SMTPUTF8", s->peer.remote);
	log_info("qid=%s smtp %s: %s", m->qid, s->peer.remote, text);
	for (i = k = 0; i < s->norder; i++) {
		r = s->order[i];
		if (snd || str_nonascii(m->rcpts[r], strlen(m->rcpts[r])))
			rcpt_final(s, r, RS_FAILED, 553, "5.6.7", text);
		else if (m->intl & QM_UTF8_HDR)
			rcpt_final(s, r, RS_FAILED, 554, "5.6.9", text);
		else
			s->order[k++] = r;
	}
	s->norder = k;
}

/*
 * mail_dsn_params - " RET=.. ENVID=xtext MTRK=cert[:remaining]": RET and
 * ENVID to DSN next hops (never invented), MTRK to MTRK next hops with
 * the timeout less the seconds spent here, left out when that is <= 0
 * (RFC 3885 3.3); an MTRK next hop gets the ENVID MTRK needs.  1 when
 * out carries MTRK=, else 0.
 */
static int
mail_dsn_params(const struct dlv_sess *s, char *out, size_t outlen)
{
	const struct dlv_msg	*m = s->m;
	char			 x[3 * 128 + 1], mtrk[64] = "";
	long			 left;
	int			 n;

	out[0] = '\0';
	if ((s->caps & CAP_MTRK) && m->mtrk_cert != NULL && m->envid != NULL) {
		if (m->mtrk_timeout <= 0)
			n = snprintf(mtrk, sizeof(mtrk), " MTRK=%s",
			    m->mtrk_cert);
		else {
			left = m->mtrk_timeout - (long)(time(NULL) - m->arrival);
			n = left > 0 ? snprintf(mtrk, sizeof(mtrk),
			    " MTRK=%s:%ld", m->mtrk_cert, left) : 0;
		}
		if (n < 0 || (size_t)n >= sizeof(mtrk))
			mtrk[0] = '\0';
	}
	if (!(s->caps & CAP_DSN) && mtrk[0] == '\0')
		return 0;
	if (m->envid != NULL &&
	    xtext_encode(m->envid, strlen(m->envid), x, sizeof(x)) == -1)
		return 0;
	n = snprintf(out, outlen, "%s%s%s%s",
	    !(s->caps & CAP_DSN) ? "" : m->ret == DSN_RET_FULL ? " RET=FULL" :
	    m->ret == DSN_RET_HDRS ? " RET=HDRS" : "",
	    m->envid != NULL ? " ENVID=" : "", m->envid != NULL ? x : "", mtrk);
	if (n < 0 || (size_t)n >= outlen) {
		out[0] = '\0';
		return 0;
	}
	return mtrk[0] != '\0';
}

/*
 * by_check - RFC 2852 4.1.4 before MAIL: "" and 0 for a message without
 * BY or over LMTP; " BY=<seconds left>;mode[T]" for a DELIVERBY hop
 * (mode N: may be negative, kept within -999999999); -1 with why set
 * when mode R may not be relayed to this hop (no DELIVERBY, its
 * min-by-time above the time left, or no time left).  Sets by_delay.
 */
static int
by_check(struct dlv_sess *s, char *out, size_t outlen, char *why,
    size_t whylen)
{
	const struct dlv_msg	*m = s->m;
	long			 left;
	int			 n;

	out[0] = '\0';
	s->by_delay = 0;
	if (s->peer.lmtp || m->deliver_by == 0 ||
	    !(m->by_flags & (BY_RETURN | BY_NOTIFY)))
		return 0;
	left = (long)(m->deliver_by - time(NULL));
	if (left < -ESMTP_BY_MAX)
		left = -ESMTP_BY_MAX;
	if (left > ESMTP_BY_MAX)
		left = ESMTP_BY_MAX;
	if (m->by_flags & BY_RETURN) {
		if (left <= 0)
			n = snprintf(why, whylen, "delivery time expired "
			    "(DELIVERBY, by-mode R): not relayed to %s",
			    s->peer.remote);
		else if (!(s->caps & CAP_DELIVERBY))
			n = snprintf(why, whylen, "next hop %s does not support "
			    "DELIVERBY: a message with by-mode R is not relayed "
			    "to it (RFC 2852 4.1.4.1)", s->peer.remote);
		else if (s->bymin > left)
			n = snprintf(why, whylen, "next hop %s requires a "
			    "DELIVERBY time of at least %ld seconds, only %ld "
			    "left: not relayed (RFC 2852 4.1.4.1)",
			    s->peer.remote, s->bymin, left);
		else
			n = 0;
		if (n != 0) {
			if (n < 0)
				why[0] = '\0';
			return -1;
		}
	} else if (!(s->caps & CAP_DELIVERBY)) {
		s->by_delay = left > 0;		/* before the deadline */
		return 0;
	}
	n = snprintf(out, outlen, " BY=%ld;%c%s", left,
	    (m->by_flags & BY_RETURN) ? 'R' : 'N',
	    (m->by_flags & BY_TRACE) ? "T" : "");
	if (n < 0 || (size_t)n >= outlen)
		out[0] = '\0';
	return 0;
}

/* start_auth - AUTH PLAIN, or LOGIN when that is all the peer offers */
static void
start_auth(struct dlv_sess *s)
{
	const char	*user, *pass;
	char		 raw[700], enc[1000];
	int		 n;

	if (dlv_remote_auth(&user, &pass) == -1) {
		txn_start(s);
		return;
	}
	if (s->caps & CAP_AUTH_PLAIN) {
		n = snprintf(raw, sizeof(raw), "%c%s%c%s", 0, user, 0, pass);
		if (n < 0 || (size_t)n >= sizeof(raw) ||
		    b64(raw, (size_t)n, enc, sizeof(enc)) == -1)
			goto toolong;
		sess_cmd(s, "AUTH PLAIN %s\r\n", enc);
		explicit_bzero(raw, sizeof(raw));
		explicit_bzero(enc, sizeof(enc));
		set_state(s, S_AUTH_PASS);
		return;
	}
	if (s->caps & CAP_AUTH_LOGIN) {
		sess_cmd(s, "AUTH LOGIN\r\n");
		set_state(s, S_AUTH);
		return;
	}
	set_err(s, RS_DEFERRED, 454, "4.7.0", "%s offers no AUTH PLAIN or "
	    "LOGIN for smarthost_auth", s->peer.remote);
	handoff(s, DLV_OUT_NEXT);
	return;
toolong:
	set_err(s, RS_DEFERRED, 454, "4.7.0", "smarthost_auth secret too long "
	    "for AUTH with %s", s->peer.remote);
	handoff(s, DLV_OUT_NEXT);
}

static void
auth_step(struct dlv_sess *s)
{
	const char	*user, *pass, *v;
	char		 enc[1000];

	if (dlv_remote_auth(&user, &pass) == -1 ||
	    (s->state != S_AUTH && s->state != S_AUTH_USER))
		return;
	v = s->state == S_AUTH ? user : pass;
	if (b64(v, strlen(v), enc, sizeof(enc)) == -1)
		enc[0] = '\0';
	sess_cmd(s, "%s\r\n", enc);
	explicit_bzero(enc, sizeof(enc));
	set_state(s, s->state == S_AUTH ? S_AUTH_USER : S_AUTH_PASS);
}

/* start_tls - the 220 to STARTTLS came: wrap the connection */
static void
start_tls(struct dlv_sess *s)
{
	struct bufferevent	*nb;
	SSL			*ssl;
	unsigned char		 a[16];
	int			 literal;

	if (evbuffer_get_length(bufferevent_get_input(s->bev)) > 0) {
		/* never read as TLS or as replies (CVE-2011-0411 style
		 * injection): a failed handshake, plaintext again under may */
		tls_outcome(s, "handshake-failed");
		set_err(s, RS_DEFERRED, 454, "4.7.0", "TLS handshake with %s "
		    "failed: data after the STARTTLS reply", s->peer.remote);
		log_info("smtp: %s", s->err.text);
		close_bev(s);
		handoff(s, tls_optional(s) ? DLV_OUT_PLAIN : DLV_OUT_NEXT);
		return;
	}
	if ((ssl = SSL_new(dlv_remote_ssl_ctx())) == NULL)
		goto fail;
	literal = inet_pton(AF_INET, s->peer.name, a) == 1 ||
	    inet_pton(AF_INET6, s->peer.name, a) == 1;
	if (!literal && s->peer.name[0] != '\0')
		(void)SSL_set_tlsext_host_name(ssl, s->peer.name);
	/* DANE: the TLSA records authenticate (RFC 7672 3), not the CAs */
	if ((s->dane_auth = dlv_dane_ssl(ssl, &s->peer)) == -1) {
		s->dane_auth = 0;
		SSL_free(ssl);
		goto fail;
	}
	if (s->dane_auth)
		;
	else if (tls_verify(s) || s->peer.tls_check) {
		/* tls_check: verified only to report it (MTA-STS testing) */
		SSL_set_verify(ssl, tls_verify(s) ? SSL_VERIFY_PEER :
		    SSL_VERIFY_NONE, NULL);
		if (literal)
			(void)X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl),
			    s->peer.name);
		else
			(void)SSL_set1_host(ssl, s->peer.name);
	} else
		SSL_set_verify(ssl, SSL_VERIFY_NONE, NULL);
	/* BEV_OPT_DEFER_CALLBACKS (both bufferevents) is required:
	 * write_cb tells a refill of its own from one inside read_replies
	 * by cur, and each callback flushes at its end (sess_flush) */
	nb = bufferevent_openssl_filter_new(dlv_remote_base(), s->bev, ssl,
	    BUFFEREVENT_SSL_CONNECTING,
	    BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	if (nb == NULL) {
		/* libevent has freed ssl (BEV_OPT_CLOSE_ON_FREE) and, unless
		 * it failed before taking its reference, the socket's
		 * bufferevent too: neither is freed again here (an fd may
		 * leak on that early allocation failure, never a double
		 * free) */
		s->bev = NULL;
		goto fail;
	}
	s->bev = nb;
	bufferevent_openssl_set_allow_dirty_shutdown(nb, 1);
	bufferevent_setcb(nb, read_cb, write_cb, event_cb, s);
	bufferevent_setwatermark(nb, EV_WRITE, LOWAT, 0);
	bufferevent_enable(nb, EV_READ | EV_WRITE);
	set_state(s, S_TLS);
	return;
fail:
	tls_outcome(s, "handshake-failed");
	set_err(s, RS_DEFERRED, 454, "4.7.0", "cannot start TLS with %s",
	    s->peer.remote);
	close_bev(s);
	handoff(s, tls_optional(s) ? DLV_OUT_PLAIN : DLV_OUT_NEXT);
}

/* tls_failed - the handshake failed (event_cb) */
static void
tls_failed(struct dlv_sess *s)
{
	char		 ebuf[256] = "";
	unsigned long	 e;
	SSL		*ssl = bufferevent_openssl_get_ssl(s->bev);
	long		 vr = ssl ? SSL_get_verify_result(ssl) : X509_V_OK;

	if (vr != X509_V_OK && s->dane_auth)
		(void)snprintf(ebuf, sizeof(ebuf), "DANE: certificate not "
		    "authenticated by the TLSA records of _25._tcp.%.100s: %s",
		    dlv_dane_base(&s->peer), X509_verify_cert_error_string(vr));
	else if (vr != X509_V_OK)
		(void)snprintf(ebuf, sizeof(ebuf), "certificate verification "
		    "failed: %s", X509_verify_cert_error_string(vr));
	else if ((e = bufferevent_get_openssl_error(s->bev)) != 0)
		ERR_error_string_n(e, ebuf, sizeof(ebuf));
	else
		(void)snprintf(ebuf, sizeof(ebuf), "connection closed");
	tls_outcome(s, vr == X509_V_OK ? "handshake-failed" :
	    s->dane_auth ? "mismatch" : "verify-failed");
	if (vr != X509_V_OK)
		tls_count_vr(s, vr);
	else
		tls_count(s, "validation-failure", "handshake failed");
	set_err(s, RS_DEFERRED, 454, vr != X509_V_OK ? "4.7.5" : "4.7.0",
	    "TLS handshake with %s failed: %s", s->peer.remote, ebuf);
	log_info("smtp: %s", s->err.text);
	close_bev(s);
	handoff(s, tls_optional(s) ? DLV_OUT_PLAIN : DLV_OUT_NEXT);
}

/* tls_done - the handshake completed: DANE's check, the outcome; 0, or
 * -1 when the session was handed off (DANE not authenticated) */
static int
tls_done(struct dlv_sess *s, SSL *ssl)
{
	char	desc[64];
	size_t	len;
	long	vr;

	s->tls_on = 1;
	(void)snprintf(s->tls, sizeof(s->tls), "%s %s", SSL_get_version(ssl),
	    SSL_get_cipher_name(ssl));
	vr = SSL_get_verify_result(ssl);
	if (s->dane_auth)
		(void)snprintf(s->tls_out, sizeof(s->tls_out),
		    "authenticated by DANE");
	else if (vr == X509_V_OK && (tls_verify(s) || s->peer.tls_check))
		(void)snprintf(s->tls_out, sizeof(s->tls_out),
		    "certificate verified");
	else
		(void)snprintf(s->tls_out, sizeof(s->tls_out),
		    "certificate not verified: %s",
		    X509_verify_cert_error_string(vr));
	tls_count_vr(s, vr);
	if (s->dane_auth && dlv_dane_verified(ssl, desc, sizeof(desc)) == -1) {
		/* SSL_VERIFY_PEER should have failed it: never deliver */
		tls_outcome(s, "mismatch");
		set_err(s, RS_DEFERRED, 454, "4.7.5", "TLS handshake with %s "
		    "failed: DANE: not authenticated by the TLSA records of "
		    "_25._tcp.%.100s", s->peer.remote,
		    dlv_dane_base(&s->peer));
		log_info("smtp: %s", s->err.text);
		close_bev(s);
		handoff(s, DLV_OUT_NEXT);
		return -1;
	}
	if (s->dane_auth) {
		len = strlen(s->tls);
		(void)snprintf(s->tls + len, sizeof(s->tls) - len, ", %s",
		    desc);
		tls_outcome(s, "verified");
	} else
		tls_outcome(s, tls_verify(s) ? "verified" : "tls");
	return 0;
}

/* after_ehlo - EHLO/HELO/LHLO accepted: STARTTLS, AUTH, then MAIL */
static void
after_ehlo(struct dlv_sess *s)
{
	/* RFC 8689 4.2.1 step 5: verified TLS, then REQUIRETLS offered */
	if (s->tls_on && s->peer.rtls && !(s->caps & CAP_REQUIRETLS)) {
		set_err(s, RS_FAILED, 550, "5.7.30", "REQUIRETLS support "
		    "required: %s does not offer REQUIRETLS after STARTTLS "
		    "(%s, %s)", s->peer.remote, s->tls, s->tls_out);
		log_info("smtp: %s", s->err.text);
		handoff(s, DLV_OUT_NEXT);
		return;
	}
	if (!s->tls_on && !s->peer.notls) {
		if (s->caps & CAP_STARTTLS) {
			sess_cmd(s, "STARTTLS\r\n");
			set_state(s, S_STARTTLS);
			return;
		}
		if (dlv_dane_tls_required(&s->peer)) {
			tls_outcome(s, "no-starttls");
			set_err(s, RS_DEFERRED, 450, "4.7.0", "TLS required "
			    "by the DANE TLSA records of _25._tcp.%.100s but "
			    "not offered by %s", dlv_dane_base(&s->peer),
			    s->peer.remote);
			log_info("smtp: %s", s->err.text);
			handoff(s, DLV_OUT_NEXT);
			return;
		}
		tls_count(s, "starttls-not-supported", NULL);
		if (!tls_may(s) && !s->peer.lmtp) {
			tls_outcome(s, "no-starttls");
			set_err(s, RS_DEFERRED, 450, "4.7.0", "TLS required "
			    "but not offered by %s", s->peer.remote);
			handoff(s, DLV_OUT_NEXT);
			return;
		}
	}
	if (!s->tls_on && s->tls_result == NULL)
		tls_outcome(s, "plaintext");
	if (s->peer.auth) {
		if (!s->tls_on) {
			set_err(s, RS_DEFERRED, 450, "4.7.0", "smarthost_auth "
			    "requires TLS, which %s did not offer or complete",
			    s->peer.remote);
			handoff(s, DLV_OUT_NEXT);
			return;
		}
		start_auth(s);
		return;
	}
	txn_start(s);
}

/* start_body - 354: trace fields newest first, then the spool file */
static void
start_body(struct dlv_sess *s)
{
	struct evbuffer	*out = bufferevent_get_output(s->bev);
	const char	*f, *nl;
	size_t		 i;

	for (i = s->m->ntrace; i > 0; i--) {
		for (f = s->m->trace[i - 1]; (nl = strchr(f, '\n')) != NULL;
		    f = nl + 1) {
			size_t n = (size_t)(nl - f);

			if (n > 0 && f[n - 1] == '\r')
				n--;
			if (f[0] == '.')
				evbuffer_add(out, ".", 1);
			evbuffer_add(out, f, n);
			evbuffer_add(out, "\r\n", 2);
		}
		if (f[0] == '.')
			evbuffer_add(out, ".", 1);
		evbuffer_add_printf(out, "%s\r\n", f);
	}
	s->at_bol = 1;
	set_state(s, S_BODY);
	write_cb(s->bev, s);
}

/* trace_octets - the octets start_bdat sends for the trace fields */
static uint64_t
trace_octets(const struct dlv_msg *m)
{
	const char	*f, *nl;
	uint64_t	 t = 0;
	size_t		 i, n;

	for (i = 0; i < m->ntrace; i++) {
		for (f = m->trace[i]; (nl = strchr(f, '\n')) != NULL;
		    f = nl + 1) {
			n = (size_t)(nl - f);
			if (n > 0 && f[n - 1] == '\r')
				n--;
			t += n + 2;
		}
		t += strlen(f) + 2;
	}
	return t;
}

/* bdat_next - queue the next chunk's BDAT line (RFC 3030 2); the LAST one
 * expects the end-of-data reply(ies), the others one 250 each */
static void
bdat_next(struct dlv_sess *s)
{
	struct evbuffer	*out = bufferevent_get_output(s->bev);
	uint64_t	 c = s->bdat_left;

	if (c > BDAT_MAX)
		c = BDAT_MAX;
	s->bdat_left -= c;
	s->bdat_chunk = c;
	if (s->bdat_left == 0) {
		evbuffer_add_printf(out, "BDAT %llu LAST\r\n",
		    (unsigned long long)c);
		/* LMTP: one reply per accepted recipient (RFC 2033 4.2) */
		s->pending += s->peer.lmtp ? (unsigned)s->naccepted : 1;
		s->bdat_last_sent = 1;
	} else {
		evbuffer_add_printf(out, "BDAT %llu\r\n",
		    (unsigned long long)c);
		s->pending++;
		s->bdat_due++;
	}
}

/* start_bdat - every RCPT answered, some accepted: the first chunk's
 * BDAT line, the trace fields newest first, then the spool file */
static void
start_bdat(struct dlv_sess *s)
{
	struct evbuffer	*out = bufferevent_get_output(s->bev);
	const char	*f, *nl;
	struct stat	 st;
	uint64_t	 tlen;
	size_t		 i, n;

	if (fstat(s->body_fd, &st) == -1 || st.st_size < 0) {
		char text[300];

		(void)snprintf(text, sizeof(text), "cannot read the queued "
		    "message for %s: %s", s->peer.remote, strerror(errno));
		close_bev(s);
		defer_rest(s, 451, "4.3.0", text);
		handoff(s, DLV_OUT_DONE);
		return;
	}
	tlen = trace_octets(s->m);
	s->bdat_left = tlen + (uint64_t)st.st_size;
	s->bdat_due = 0;
	s->bdat_last_sent = 0;
	bdat_next(s);		/* >= tlen: the trace fields fit in it */
	for (i = s->m->ntrace; i > 0; i--) {
		for (f = s->m->trace[i - 1]; (nl = strchr(f, '\n')) != NULL;
		    f = nl + 1) {
			n = (size_t)(nl - f);
			if (n > 0 && f[n - 1] == '\r')
				n--;
			evbuffer_add(out, f, n);
			evbuffer_add(out, "\r\n", 2);
		}
		evbuffer_add_printf(out, "%s\r\n", f);
	}
	s->bdat_chunk -= tlen;
	set_state(s, S_BODY);
	write_cb(s->bev, s);
}

/* bdat_fill - more of the spool file in counted chunks, up to HIWAT */
static void
bdat_fill(struct dlv_sess *s)
{
	struct evbuffer	*out = bufferevent_get_output(s->bev);
	ssize_t		 n;
	size_t		 want;

	while (evbuffer_get_length(out) < HIWAT) {
		if (s->bdat_chunk == 0) {
			if (s->bdat_last_sent) {
				body_close(s);
				set_state(s, S_DOT);
				return;
			}
			bdat_next(s);
			continue;
		}
		want = s->bdat_chunk < CHUNK ? (size_t)s->bdat_chunk : CHUNK;
		n = read(s->body_fd, iobuf, want);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0) {
			char text[600];

			/* the file cannot end before its size: the count
			 * is announced, so the connection must go */
			log_warn("qid=%s cannot read %s", s->m->qid,
			    s->m->body_path);
			(void)snprintf(text, sizeof(text), "cannot read the "
			    "queued message while sending it to %s: %s",
			    s->peer.remote, n == 0 ? "short file" :
			    strerror(errno));
			close_bev(s);
			defer_rest(s, 451, "4.3.0", text);
			handoff(s, DLV_OUT_DONE);
			return;
		}
		evbuffer_add(out, iobuf, (size_t)n);
		s->bdat_chunk -= (uint64_t)n;
	}
}

/* bdat_refused - a 4xx/5xx to a chunk: the accepted recipients get it;
 * the connection goes (announced octets cannot be taken back) */
static void
bdat_refused(struct dlv_sess *s)
{
	size_t	k;

	log_info("qid=%s smtp %s: BDAT refused: %d %s %s", s->m->qid,
	    s->peer.remote, s->rcode, s->renh, s->rtext);
	for (k = 0; k < s->norder; k++)
		if (s->rst[s->order[k]] == RC_OK)
			rcpt_reply(s, s->order[k]);
	body_close(s);
	close_bev(s);
	handoff(s, DLV_OUT_DONE);
}

/* body_fill - more of the spool file, dot-stuffed, up to HIWAT queued */
static void
body_fill(struct dlv_sess *s)
{
	struct evbuffer	*out = bufferevent_get_output(s->bev);
	const char	*p, *end, *nl, *seg;
	ssize_t		 n;

	if (s->bdat) {
		bdat_fill(s);
		return;
	}
	while (evbuffer_get_length(out) < HIWAT) {
		n = read(s->body_fd, iobuf, CHUNK);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			char text[600];

			log_warn("qid=%s cannot read %s", s->m->qid,
			    s->m->body_path);
			(void)snprintf(text, sizeof(text), "cannot read the "
			    "queued message while sending it to %s: %s",
			    s->peer.remote, strerror(errno));
			close_bev(s);
			defer_rest(s, 451, "4.3.0", text);
			handoff(s, DLV_OUT_DONE);
			return;
		}
		if (n == 0) {
			if (!s->at_bol)
				evbuffer_add(out, "\r\n", 2);
			evbuffer_add(out, ".\r\n", 3);
			/* LMTP: one reply per accepted recipient (RFC 2033 4.2) */
			s->pending += s->peer.lmtp ? (unsigned)s->naccepted : 1;
			body_close(s);
			set_state(s, S_DOT);
			return;
		}
		for (p = iobuf, end = iobuf + n; p < end; p = seg) {
			if (s->at_bol && *p == '.')
				evbuffer_add(out, ".", 1);
			nl = memchr(p, '\n', (size_t)(end - p));
			seg = nl != NULL ? nl + 1 : end;
			evbuffer_add(out, p, (size_t)(seg - p));
			s->at_bol = nl != NULL;
		}
	}
}

/*
 * rtls_param - " REQUIRETLS" on MAIL for a REQUIRETLS message over
 * verified TLS to a hop that offers it (RFC 8689 4.2.1: always so when
 * peer.rtls; a notice from <> goes on without it otherwise, RFC 8689 5),
 * else ""
 */
static const char *
rtls_param(const struct dlv_sess *s)
{
	return s->m->requiretls && s->tls_on && (s->caps & CAP_REQUIRETLS) &&
	    s->tls_result != NULL && strcmp(s->tls_result, "verified") == 0 ?
	    " REQUIRETLS" : "";
}

/*
 * txn_start - a transaction for every undecided recipient, or DONE.
 * MAIL (+ RCPTs + DATA when pipelining) in one write.
 */
static void
txn_start(struct dlv_sess *s)
{
	struct dlv_msg	*m = s->m;
	char		 size[48] = "", dsn[512], by[40], why[400];
	size_t		 i;

	s->norder = s->nsent = s->nreplied = s->naccepted = s->nlmtp = 0;
	s->skip = s->discard = s->got452 = 0;
	s->mtrk_sent = 0;	/* until this transaction's MAIL carries it */
	s->bdat = (s->caps & CAP_CHUNKING) != 0;
	s->bdat_due = 0;
	s->bdat_last_sent = 0;
	for (i = 0; i < m->nrcpts; i++)
		if (!m->done[i]) {
			s->rst[i] = RC_TODO;
			s->order[s->norder++] = i;
		}
	utf8_gate(s);			/* RFC 6531 */
	if (s->norder == 0) {
		s->usable = s->bev != NULL;
		handoff(s, DLV_OUT_DONE);
		return;
	}
	if ((s->caps & CAP_SIZE) && s->maxsize > 0 && m->size > s->maxsize) {
		char text[400];

		(void)snprintf(text, sizeof(text), "message size %llu "
		    "exceeds the limit %llu of %s",
		    (unsigned long long)m->size,
		    (unsigned long long)s->maxsize, s->peer.remote);
		for (i = 0; i < s->norder; i++)
			rcpt_final(s, s->order[i], RS_FAILED, 552, "5.3.4", text);
		s->usable = 1;
		handoff(s, DLV_OUT_DONE);
		return;
	}
	if (m->body_binary && (!(s->caps & CAP_BINARYMIME) || !s->bdat)) {
		char text[400];

		/* RFC 3030 3: no conversion here, a permanent failure */
		(void)snprintf(text, sizeof(text), "BINARYMIME message and "
		    "%s does not offer BINARYMIME with CHUNKING",
		    s->peer.remote);
		log_info("qid=%s smtp %s: %s", m->qid, s->peer.remote, text);
		for (i = 0; i < s->norder; i++)
			rcpt_final(s, s->order[i], RS_FAILED, 554, "5.6.3", text);
		s->usable = 1;
		handoff(s, DLV_OUT_DONE);
		return;
	}
	if (by_check(s, by, sizeof(by), why, sizeof(why)) == -1) {
		log_info("qid=%s smtp %s: %s", m->qid, s->peer.remote, why);
		for (i = 0; i < s->norder; i++)
			rcpt_final(s, s->order[i], RS_FAILED, 554, "5.4.7", why);
		s->usable = 1;
		handoff(s, DLV_OUT_DONE);
		return;
	}
	body_close(s);
	if ((s->body_fd = open(m->body_path, O_RDONLY | O_CLOEXEC)) == -1) {
		char text[300];

		log_warn("qid=%s cannot open %s", m->qid, m->body_path);
		(void)snprintf(text, sizeof(text), "cannot open the queued "
		    "message for %s: %s", s->peer.remote, strerror(errno));
		defer_rest(s, 451, "4.3.0", text);
		s->usable = 1;
		handoff(s, DLV_OUT_DONE);
		return;
	}
	if (s->caps & CAP_SIZE) {
		uint64_t	t = m->size;

		for (i = 0; i < m->ntrace; i++)
			t += strlen(m->trace[i]) + 8;
		(void)snprintf(size, sizeof(size), " SIZE=%llu",
		    (unsigned long long)t);
	}
	s->ntxn++;
	s->mtrk_sent = mail_dsn_params(s, dsn, sizeof(dsn));
	sess_cmd(s, "MAIL FROM:<%s>%s%s%s%s%s%s\r\n", m->sender, size,
	    m->body_binary ? " BODY=BINARYMIME" :
	    m->body_8bit && (s->caps & CAP_8BITMIME) ? " BODY=8BITMIME" : "",
	    dsn, by, s->utf8_param ? " SMTPUTF8" : "", rtls_param(s));
	s->pipelined = (s->caps & CAP_PIPELINING) != 0;
	if (s->pipelined) {
		for (i = 0; i < s->norder; i++)
			send_rcpt(s, i);
		s->nsent = s->norder;
		if (!s->bdat)		/* BDAT waits for the RCPT replies */
			sess_cmd(s, "DATA\r\n");
	}
	set_state(s, S_MAIL);
}

/*
 * txn_end - the transaction is over (end of data, or nobody accepted):
 * RSET when one is still open, then the next transaction or DONE.
 */
static void
txn_end(struct dlv_sess *s)
{
	size_t	i;

	if (s->naccepted == 0)
		for (i = 0; i < s->norder; i++)
			if (s->rst[s->order[i]] == RC_AGAIN) {
				s->m->done[s->order[i]] = 1;
				s->rst[s->order[i]] = RC_DONE;
			}
	if (s->txn_open) {
		sess_cmd(s, "RSET\r\n");
		set_state(s, S_RSET);
		return;
	}
	txn_start(s);
}

/* rcpts_over - every RCPT answered: DATA, or end without recipients */
static void
rcpts_over(struct dlv_sess *s)
{
	if (s->bdat) {
		if (s->naccepted == 0)
			txn_end(s);
		else
			start_bdat(s);
		return;
	}
	if (s->pipelined) {
		set_state(s, S_DATA);	/* DATA was sent with the RCPTs */
		return;
	}
	if (s->naccepted == 0) {
		txn_end(s);
		return;
	}
	sess_cmd(s, "DATA\r\n");
	set_state(s, S_DATA);
}

/* on_rcpt - the reply to RCPT number nreplied */
static void
on_rcpt(struct dlv_sess *s)
{
	size_t	i = s->order[s->nreplied++], k;

	if (s->rcode / 100 == 2) {
		s->rst[i] = RC_OK;
		s->naccepted++;
	} else if (s->rcode == 452 || strcmp(s->renh, "4.5.3") == 0) {
		/* too many recipients: next transaction (RFC 5321 4.5.3.1.10) */
		fill(&s->m->res[i], RS_DEFERRED, s->rcode, s->renh, s->rtext,
		    s->peer.remote);
		s->rst[i] = RC_AGAIN;
		s->got452 = 1;
	} else
		rcpt_reply(s, i);
	if (!s->pipelined) {
		if (s->got452) {
			for (k = s->nreplied; k < s->norder; k++) {
				fill(&s->m->res[s->order[k]], RS_DEFERRED,
				    s->rcode, s->renh, s->rtext, s->peer.remote);
				s->rst[s->order[k]] = RC_AGAIN;
			}
			s->nreplied = s->nsent = s->norder;
		} else if (s->nsent < s->norder) {
			send_rcpt(s, s->nsent++);
			set_state(s, S_RCPT);
			return;
		}
	}
	if (s->nreplied >= s->norder)
		rcpts_over(s);
}

/* on_dot - the reply(ies) after the end of data */
static void
on_dot(struct dlv_sess *s)
{
	size_t	k, i;

	if (s->discard) {
		s->txn_open = 0;
		txn_end(s);
		return;
	}
	if (!s->peer.lmtp) {
		for (k = 0; k < s->norder; k++)
			if (s->rst[s->order[k]] == RC_OK)
				rcpt_reply(s, s->order[k]);
		s->txn_open = 0;
		txn_end(s);
		return;
	}
	/* LMTP: one reply per accepted recipient, in RCPT order */
	for (k = 0; k < s->norder; k++)
		if (s->rst[s->order[k]] == RC_OK) {
			rcpt_reply(s, s->order[k]);
			break;
		}
	for (k = 0, i = 0; k < s->norder; k++)
		if (s->rst[s->order[k]] == RC_OK)
			i++;
	if (i > 0) {
		set_state(s, S_DOT);
		return;
	}
	s->txn_open = 0;
	txn_end(s);
}

/*
 * reply_fits - can the current reply answer the command it is read for
 * (RFC 5321 4.3.2, RFC 4954, RFC 3207)?  A 220 to EHLO is a second
 * greeting, a 250 to DATA the reply to an earlier command: lost sync.
 */
static int
reply_fits(const struct dlv_sess *s)
{
	int		c = s->rcode, cls = c / 100;
	int		ok2 = c >= 250 && c <= 252;
	enum sstate	st = s->state;

	if (st == S_RCPT && s->skip == 1 && !s->bdat)
		st = S_DATA;	/* the DATA reply after a failed pipelined MAIL */
	if (cls == 4 || cls == 5)
		return st != S_NONE && st != S_IDLE && st != S_KICK;
	switch (st) {
	case S_GREETING:
	case S_STARTTLS:
		return c == 220;
	case S_AUTH:
	case S_AUTH_USER:
		return c == 334 || c == 235;
	case S_AUTH_PASS:
		return c == 235 || ok2;
	case S_DATA:
		return c == 354;
	case S_BODY:		/* a BDAT chunk's 250 */
		return s->bdat && ok2;
	case S_EHLO: case S_HELO: case S_RSET: case S_MAIL: case S_RCPT:
	case S_DOT:
		return ok2;
	case S_QUIT:
		return 1;
	default:
		return 0;
	}
}

/* on_reply - a complete reply arrived in state s->state */
static void
on_reply(struct dlv_sess *s)
{
	int	cls = s->rcode / 100;

	/* RFC 3030: the replies to non-LAST chunks come first, in order */
	if (s->bdat && s->bdat_due > 0 &&
	    (s->state == S_BODY || s->state == S_DOT)) {
		s->bdat_due--;
		if (cls != 2)
			bdat_refused(s);
		return;
	}
	switch (s->state) {
	case S_GREETING:
		if (cls == 2) {
			send_helo(s, 1);
			return;
		}
		err_from_reply(s, "greeting: ");
		s->usable = 1;	/* let the callee send QUIT */
		handoff(s, DLV_OUT_NEXT);
		return;
	case S_EHLO:
		if (cls == 2) {
			after_ehlo(s);
			return;
		}
		if (cls == 5 && !s->peer.lmtp) {
			send_helo(s, 0);
			return;
		}
		err_from_reply(s, "EHLO: ");
		handoff(s, DLV_OUT_NEXT);
		return;
	case S_HELO:
		if (cls == 2) {
			after_ehlo(s);
			return;
		}
		err_from_reply(s, "HELO: ");
		handoff(s, DLV_OUT_NEXT);
		return;
	case S_STARTTLS:
		if (s->rcode == 220) {
			start_tls(s);
			return;
		}
		tls_count(s, "starttls-not-supported", NULL);
		if (tls_optional(s)) {
			s->peer.notls = 1;
			after_ehlo(s);
			return;
		}
		tls_outcome(s, "no-starttls");
		set_err(s, RS_DEFERRED, 454, "4.7.0", "TLS required but "
		    "STARTTLS refused by %s: %d %s", s->peer.remote, s->rcode,
		    s->rtext);
		handoff(s, DLV_OUT_NEXT);
		return;
	case S_AUTH:
	case S_AUTH_USER:
		if (s->rcode == 334) {
			auth_step(s);
			return;
		}
		/* FALLTHROUGH */
	case S_AUTH_PASS:
		if (cls == 2) {
			txn_start(s);
			return;
		}
		set_err(s, RS_DEFERRED, 454, "4.7.0", "authentication with %s "
		    "failed: %d %s %s", s->peer.remote, s->rcode, s->renh,
		    s->rtext);
		handoff(s, DLV_OUT_NEXT);
		return;
	case S_RSET:
		s->txn_open = 0;
		if (cls != 2) {
			char text[700];

			(void)snprintf(text, sizeof(text), "RSET refused by %s: "
			    "%d %.300s", s->peer.remote, s->rcode, s->rtext);
			close_bev(s);
			defer_rest(s, 451, "4.4.2", text);
			handoff(s, DLV_OUT_DONE);
			return;
		}
		txn_start(s);
		return;
	case S_MAIL:
		if (cls == 2) {
			s->txn_open = 1;
			if (!s->pipelined) {
				send_rcpt(s, s->nsent++);
			}
			set_state(s, S_RCPT);
			return;
		}
		if (cls == 5 && s->reused && s->ntxn == 1) {
			/* on a parked connection a 5xx to MAIL may be a late
			 * stray reply: ask a fresh connection before bouncing */
			err_from_reply(s, "MAIL FROM on a reused connection: ");
			log_info("smtp %s: %s; retrying on a new connection",
			    s->peer.remote, s->err.text);
			close_bev(s);
			handoff(s, DLV_OUT_NEXT);
			return;
		}
		{
			size_t k;

			for (k = 0; k < s->norder; k++)
				rcpt_reply(s, s->order[k]);
		}
		if (s->pipelined) {
			/* + the DATA reply; BDAT waits for the RCPTs */
			s->skip = (int)s->nsent + (s->bdat ? 0 : 1);
			set_state(s, S_RCPT);
			return;
		}
		txn_end(s);
		return;
	case S_RCPT:
		if (s->skip > 0) {
			if (--s->skip > 0)
				return;
			if (s->rcode == 354) {
				/* DATA accepted although MAIL was not: end it */
				s->txn_open = s->discard = 1;
				sess_cmd(s, ".\r\n");
				set_state(s, S_DOT);
				return;
			}
			txn_end(s);
			return;
		}
		on_rcpt(s);
		return;
	case S_DATA:
		if (s->rcode == 354) {
			s->txn_open = 1;
			if (s->naccepted == 0) {
				s->discard = 1;
				sess_cmd(s, ".\r\n");
				set_state(s, S_DOT);
				return;
			}
			start_body(s);
			return;
		}
		{
			size_t k;

			for (k = 0; k < s->norder; k++)
				if (s->rst[s->order[k]] == RC_OK)
					rcpt_reply(s, s->order[k]);
		}
		txn_end(s);
		return;
	case S_DOT:
		on_dot(s);
		return;
	case S_QUIT:
		dlv_sess_free(s);
		return;
	case S_IDLE:
		conn_fail(s, "unexpected reply while idle", FK_SYNC);
		return;
	default:
		conn_fail(s, "unexpected reply", FK_SYNC);
		return;
	}
}

/* ---- libevent callbacks ---- */

/* reply_next - take one reply line out of in into s (reply_line):
 * 1 a reply is complete, 0 a continuation line or no complete line yet
 * (*more 0 then), -1 the input is bad (*why says how) */
static int
reply_next(struct dlv_sess *s, struct evbuffer *in, int *more,
    const char **why)
{
	struct evbuffer_ptr	 eol;
	size_t			 n, eolen;
	char			*line;
	int			 r;

	*more = 1;
	eol = evbuffer_search_eol(in, NULL, &eolen, EVBUFFER_EOL_CRLF);
	if (eol.pos == -1) {
		*more = 0;
		if (evbuffer_get_length(in) <= LINE_MAX_IN)
			return 0;
		*why = "reply line too long";
		return -1;
	}
	if ((size_t)eol.pos > LINE_MAX_IN) {
		*why = "reply line too long";
		return -1;
	}
	if ((line = evbuffer_readln(in, &n, EVBUFFER_EOL_CRLF)) == NULL) {
		*more = 0;
		return 0;
	}
	r = reply_line(s, line, n);
	free(line);
	if (r == -1)
		*why = "malformed reply";
	return r;
}

/* read_replies - every complete reply in the input; 1 while s is still ours */
static int
read_replies(struct dlv_sess *s)
{
	struct evbuffer		*in = bufferevent_get_input(s->bev);
	const char		*bad = NULL;
	int			 r, more;

	cur = s;
	while (cur == s && s->bev != NULL) {
		in = bufferevent_get_input(s->bev);
		if (evbuffer_get_length(in) == 0)
			break;
		if (s->state == S_IDLE || s->state == S_CONNECT ||
		    s->state == S_TLS || s->state == S_KICK ||
		    s->state == S_NONE) {
			conn_fail(s, "unexpected data from the server", FK_SYNC);
			break;
		}
		if (s->state == S_BODY && !(s->bdat && s->bdat_due > 0)) {
			/* nothing is due before the final "." */
			conn_fail(s, "reply before the end of the message data",
			    FK_SYNC);
			break;
		}
		if (s->rlines == 0 && s->pending == 0) {
			conn_fail(s, "reply with no command pending", FK_SYNC);
			break;
		}
		if (s->state == S_DOT && !(s->bdat && s->bdat_due > 0) &&
		    evbuffer_get_length(bufferevent_get_output(s->bev)) > 0) {
			/* the "." is not even sent: this answers something else */
			conn_fail(s, "reply before the end of the message data",
			    FK_SYNC);
			break;
		}
		if ((r = reply_next(s, in, &more, &bad)) == -1) {
			conn_fail(s, bad, FK_SYNC);
			break;
		}
		if (r == 0 && !more)
			break;
		if (r == 0)
			continue;
		s->pending--;
		if (!reply_fits(s)) {
			char why[128];

			(void)snprintf(why, sizeof(why), "reply %d cannot "
			    "answer it", s->rcode);
			conn_fail(s, why, FK_SYNC);
			break;
		}
		/* the last reply expected, and more behind it: surplus (the
		 * STARTTLS 220 case is start_tls's: plaintext retry).  A 421
		 * behind it is a server closing the connection (shutdown, a
		 * per-connection limit): this reply stands, the 421 is read
		 * as the answer to whatever comes next, never reused. */
		if (s->pending == 0 && evbuffer_get_length(in) > 0 &&
		    !(s->state == S_STARTTLS && s->rcode == 220)) {
			unsigned char *p = evbuffer_pullup(in, 4);

			if (p == NULL || memcmp(p, "421", 3) != 0 ||
			    (p[3] != ' ' && p[3] != '-' && p[3] != '\r')) {
				conn_fail(s, "more replies than commands",
				    FK_SYNC);
				break;
			}
			s->closing = 1;
		}
		on_reply(s);	/* may hand s off or free it */
	}
	if (cur != s)
		return 0;
	cur = NULL;
	return 1;
}

/* run_flushed - fn(s) from a callback of the loop, then what it queued
 * goes out, unless fn handed s off (handoff clears cur) */
static void
run_flushed(struct dlv_sess *s, void (*fn)(struct dlv_sess *))
{
	cur = s;
	fn(s);
	if (cur == s) {
		cur = NULL;
		sess_flush(s);
	}
}

static void
read_cb(struct bufferevent *bev, void *arg)
{
	struct dlv_sess	*s = arg;

	(void)bev;
	if (read_replies(s))
		sess_flush(s);
}

static void
write_cb(struct bufferevent *bev, void *arg)
{
	struct dlv_sess	*s = arg;

	(void)bev;
	if (s->state != S_BODY) {
		/* libevent wrote what a flush left behind (or a long
		 * content's end): its write event goes off again */
		if (cur != s)
			sess_flush(s);
		return;
	}
	set_state(s, S_BODY);	/* progress: re-arm data_block_timeout */
	if (cur == s)
		body_fill(s);	/* from start_body / start_bdat: read_cb
				 * flushes */
	else
		run_flushed(s, body_fill);
}

static void
event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct dlv_sess	*s = arg;
	char		 why[128];
	int		 fd;

	if (what & BEV_EVENT_CONNECTED) {
		if (s->state == S_TLS) {
			if (tls_done(s, bufferevent_openssl_get_ssl(bev)) == -1)
				return;
			log_info("smtp %s: TLS established: %s",
			    s->peer.remote, s->tls);
			send_helo(s, 1);
			return;
		}
		if (s->state != S_CONNECT)
			return;
		fd = (int)bufferevent_getfd(bev);
		if (fd >= 0 && s->peer.ss.ss_family != AF_UNIX) {
			int one = 1;

			(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one,
			    sizeof(one));
		}
		s->pending = 1;		/* the greeting */
		set_state(s, S_GREETING);
		/* connected: writes are sess_flush's from now on */
		bufferevent_disable(bev, EV_WRITE);
		return;
	}
	if (s->state == S_TLS && (what & (BEV_EVENT_ERROR | BEV_EVENT_EOF))) {
		tls_failed(s);
		return;
	}
	if (what & BEV_EVENT_EOF) {
		/* a reply may still sit in the input (e.g. 421 then close) */
		if (evbuffer_get_length(bufferevent_get_input(bev)) > 0 &&
		    s->state != S_BODY && read_replies(s) == 0)
			return;
		conn_fail(s, "", FK_LOST);
		return;
	}
	if (what & BEV_EVENT_ERROR) {
		int e = EVUTIL_SOCKET_ERROR();

		(void)snprintf(why, sizeof(why), "%s",
		    e ? evutil_socket_error_to_string(e) : "error");
		conn_fail(s, why, FK_LOST);
		return;
	}
}

static void
tmo_cb(evutil_socket_t fd, short what, void *arg)
{
	struct dlv_sess	*s = arg;

	(void)fd;
	(void)what;
	switch (s->state) {
	case S_KICK:
		/* a parked connection must be silent: anything read is surplus */
		if (s->bev != NULL && evbuffer_get_length(
		    bufferevent_get_input(s->bev)) > 0) {
			conn_fail(s, "data from the server while idle", FK_SYNC);
			return;
		}
		run_flushed(s, txn_start);
		return;
	case S_FAILNOW:
		conn_fail(s, s->err.text[0] ? s->err.text : "cannot connect",
		    FK_LOST);
		return;
	case S_CONNECT:
		conn_fail(s, "timed out", FK_LOST);
		return;
	case S_IDLE:
		handoff(s, DLV_OUT_CLOSED);	/* the callee sends QUIT */
		return;
	case S_QUIT:
		dlv_sess_free(s);
		return;
	default:
		conn_fail(s, "", FK_TIMEOUT);
		return;
	}
}

/* ---- entry points ---- */

struct dlv_sess *
dlv_sess_new(const struct dlv_peer *peer)
{
	struct dlv_sess	*s;

	if (iobuf == NULL && (iobuf = malloc(CHUNK)) == NULL)
		return NULL;
	if ((s = calloc(1, sizeof(*s))) == NULL)
		return NULL;
	s->peer = *peer;
	s->body_fd = -1;
	if ((s->tmo = evtimer_new(dlv_remote_base(), tmo_cb, s)) == NULL) {
		free(s);
		return NULL;
	}
	TAILQ_INSERT_TAIL(&sessions, s, entry);
	return s;
}

int
dlv_sess_run(struct dlv_sess *s, const struct config *cfg, struct dlv_msg *m,
    dlv_sess_fn cb, void *arg)
{
	unsigned char	*rst;
	size_t		*order;

	if ((rst = calloc(m->nrcpts ? m->nrcpts : 1, 1)) == NULL ||
	    (order = calloc(m->nrcpts ? m->nrcpts : 1, sizeof(*order))) == NULL) {
		free(rst);
		return -1;
	}
	free(s->rst);
	free(s->order);
	s->rst = rst;
	s->order = order;
	s->cfg = cfg;
	s->m = m;
	s->cb = cb;
	s->arg = arg;
	s->ntxn = 0;
	memset(&s->err, 0, sizeof(s->err));
	if (s->bev != NULL && s->state == S_IDLE) {
		s->reused = 1;
		set_state(s, S_KICK);
		return 0;
	}
	s->reused = 0;
	s->tls_on = 0;
	s->tls[0] = '\0';
	s->tls_policy = s->peer.lmtp ? DLV_TLS_UNSET :
	    dlv_dane_policy(&s->peer);
	/* DANE wins; else an MTA-STS policy (dlv_remote.c peer_sts) */
	if (s->tls_policy == DLV_TLS_NONE &&
	    s->peer.tls_policy == DLV_TLS_MTA_STS)
		s->tls_policy = DLV_TLS_MTA_STS;
	s->tls_result = NULL;
	s->dane_auth = 0;
	s->txn_open = 0;
	s->closing = 0;
	s->pending = 0;
	s->rlines = 0;
	/* BEV_OPT_DEFER_CALLBACKS is required (see start_tls) */
	s->bev = bufferevent_socket_new(dlv_remote_base(), -1,
	    BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	if (s->bev == NULL)
		return -1;
	bufferevent_setcb(s->bev, read_cb, write_cb, event_cb, s);
	bufferevent_setwatermark(s->bev, EV_WRITE, LOWAT, 0);
	bufferevent_enable(s->bev, EV_READ | EV_WRITE);
	s->state = S_NONE;
	if (bufferevent_socket_connect(s->bev,
	    (struct sockaddr *)&s->peer.ss, (int)s->peer.len) == -1) {
		int e = errno;

		close_bev(s);
		s->state = S_CONNECT;
		(void)snprintf(s->err.text, sizeof(s->err.text), "%s",
		    strerror(e ? e : ECONNREFUSED));
		set_state(s, S_FAILNOW);
		return 0;
	}
	set_state(s, S_CONNECT);
	return 0;
}

int
dlv_sess_reusable(const struct dlv_sess *s)
{
	return s->bev != NULL && s->usable && !s->txn_open &&
	    !s->closing && s->pending == 0 && s->state != S_QUIT;
}

int
dlv_sess_was_reused(const struct dlv_sess *s)
{
	return s->reused;
}

void
dlv_sess_park(struct dlv_sess *s, dlv_sess_fn cb, void *arg)
{
	s->cb = cb;
	s->arg = arg;
	s->m = NULL;
	/* MTA-STS jobs never take a parked connection (dlv_remote.c): the
	 * next job's results must not name this one's policy */
	if (s->peer.tls_policy == DLV_TLS_MTA_STS) {
		s->peer.tls_policy = DLV_TLS_UNSET;
		s->peer.tls_note[0] = '\0';
	}
	s->peer.rtls = 0;	/* REQUIRETLS jobs never take one either */
	set_state(s, S_IDLE);
}

void
dlv_sess_quit(struct dlv_sess *s)
{
	s->cb = NULL;
	s->m = NULL;
	if (s->bev == NULL || s->state == S_CONNECT || s->state == S_TLS ||
	    s->state == S_NONE || s->state == S_FAILNOW) {
		dlv_sess_free(s);
		return;
	}
	sess_cmd(s, "QUIT\r\n");
	set_state(s, S_QUIT);
	sess_flush(s);
}

void
dlv_sess_free(struct dlv_sess *s)
{
	if (s == NULL)
		return;
	if (cur == s)
		cur = NULL;
	TAILQ_REMOVE(&sessions, s, entry);
	body_close(s);
	if (s->bev != NULL)
		bufferevent_free(s->bev);
	if (s->tmo != NULL)
		event_free(s->tmo);
	free(s->rst);
	free(s->order);
	free(s);
}

const struct dlv_peer *
dlv_sess_peer(const struct dlv_sess *s)
{
	return &s->peer;
}

void
dlv_sess_error(const struct dlv_sess *s, struct dlv_result *r)
{
	size_t	ridx = r->ridx;

	*r = s->err;
	r->ridx = ridx;
	if (r->text[0] == '\0') {
		r->status = RS_DEFERRED;
		r->code = 451;
		(void)snprintf(r->enh, sizeof(r->enh), "4.4.0");
		(void)snprintf(r->text, sizeof(r->text), "delivery to %s failed",
		    s->peer.remote);
		(void)snprintf(r->remote, sizeof(r->remote), "%s",
		    s->peer.remote);
	}
}

int
dlv_reply_probe(const char *buf, size_t len, int ehlo,
    void (*fn)(void *arg, const struct dlv_reply_info *ri), void *arg)
{
	struct dlv_sess		*s;
	struct dlv_reply_info	 ri;
	struct evbuffer		*in;
	const char		*bad;
	int			 r, more, nreplies = 0;

	if ((s = calloc(1, sizeof(*s))) == NULL)
		return -1;
	if ((in = evbuffer_new()) == NULL || evbuffer_add(in, buf, len) == -1) {
		if (in != NULL)
			evbuffer_free(in);
		free(s);
		return -1;
	}
	s->state = ehlo ? S_EHLO : S_MAIL;
	for (;;) {
		/* read_replies' own line step */
		if ((r = reply_next(s, in, &more, &bad)) == -1) {
			nreplies = -1;
			break;
		}
		if (r == 0 && !more)
			break;
		if (r == 0)
			continue;
		nreplies++;
		ri.code = s->rcode;
		ri.enh = s->renh;
		ri.text = s->rtext;
		ri.caps = s->caps;
		ri.maxsize = s->maxsize;
		ri.bymin = s->bymin;
		fn(arg, &ri);
	}
	evbuffer_free(in);
	free(s);
	return nreplies;
}

void
dlv_smtp_shutdown(void)
{
	struct dlv_sess	*s;

	while ((s = TAILQ_FIRST(&sessions)) != NULL)
		dlv_sess_free(s);
	free(iobuf);
	iobuf = NULL;
}
