#include "config.h"
/*
 * trk_server.c - the MTQP server (RFC 3887): listeners, sessions, the
 * input loop, the autologout, STARTTLS's switch to TLS, close, stop.
 * Entry points: trk_server_bind/start/reload/stop/sessions (track.h).
 * Input: command lines are read with a hard maximum of 998 octets
 *       before the line end (RFC 3887 2.2; an overlong line is
 *       discarded up to the next LF and gets "-BAD Line too long"), end
 *       at LF (CRLF, or a bare LF leniently) and go to trk_cmd_dispatch
 *       strictly in order (RFC 3887 8, pipelining).  Nothing is read in
 *       TRK_ANSWER (a TRACK answer is being made: possibly asynchronous,
 *       chaining), TRK_TLS or TRK_CLOSING: pipelined input stays
 *       buffered, bounded by the read watermark; when the client does
 *       not read its answers (TRK_OUT_MAX pending), commands pause.
 * Limits: mtqp_max_sessions (one more gets "-TEMP/MTQP/unavailable Too
 *       many MTQP sessions, try again later", then close), and a quarter
 *       of it (at least 1) per client address, no exceptions (the same
 *       reply): one address cannot hold every slot for the autologout.
 *       The sessions of an address are counted on the session list
 *       (IPv4-mapped IPv6 as IPv4; refused ones not counted): it is
 *       short, bounded by mtqp_max_sessions and the ones closing.
 * Autologout (RFC 3887 2.4): mtqp_timeout (>= 10m) of idleness between
 *       commands -> "-ERR/unavailable Autologout: idle too long", close;
 *       every command resets it, the server's turn (TRK_ANSWER) does
 *       not count.  It also bounds a TLS handshake, the final flush and
 *       each write (a client not reading).  One timer per session, moved
 *       lazily: a command only records the time.
 * TLS (RFC 3887 6): the context is made from tls_cert/tls_key like the
 *       SMTP server's (common/tlsctx.c), replaced on reload.  After
 *       "+OK Begin TLS negotiation" is flushed, input pipelined after
 *       STARTTLS is dropped, never interpreted; after the handshake a
 *       fresh greeting, without the STARTTLS option.  A failed handshake
 *       closes the session.
 * Not here: the commands and replies (trk_cmd.c), the TRACK answer
 *       (trk_answer.c), authentication (trk_auth.c).
 */

#include <sys/types.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "common/bevio.h"
#include "common/cfg.h"
#include "common/log.h"
#include "common/tlsctx.h"
#include "common/util.h"
#include "track/track.h"
#include "track/trk_int.h"

const struct config		*trk_cfg;
struct event_base		*trk_base;

static int			*listen_fds;
static size_t			 nlisten_fds;
static struct evconnlistener	**listeners;
static size_t			 nlisteners;
static struct trk_session	*sessions;
static size_t			 nsessions;
static uint64_t			 next_id = 1;
static SSL_CTX			*tls_ctx;

static const char *const state_names[TRK_NSTATES] = {
	"READY", "ANSWER", "TLS", "CLOSING"
};

static void	read_cb(struct bufferevent *, void *);
static void	write_cb(struct bufferevent *, void *);
static void	event_cb(struct bufferevent *, short, void *);
static void	timer_cb(evutil_socket_t, short, void *);
static void	session_free(struct trk_session *);
static void	timer_arm(struct trk_session *, uint64_t);

const char *
trk_state_name(enum trk_state st)
{
	return st < TRK_NSTATES ? state_names[st] : "?";
}

/* trk_set_state - the only place that assigns a session's state */
void
trk_set_state(struct trk_session *s, enum trk_state st)
{
	if (s->state == st)
		return;
	log_debug("mtqp session=%s state %s -> %s", s->sid,
	    trk_state_name(s->state), trk_state_name(st));
	s->state = st;
	s->wait_since = mono_ms();
	timer_arm(s, s->wait_since);
}

size_t
trk_server_sessions(void)
{
	return nsessions;
}

/* ------------------------------------------------------------------ TLS */

/* tls_load - (re)build the context from cfg; the old one stays on error */
static int
tls_load(const struct config *cfg, char *err, size_t errlen)
{
	/* sessions keep their SSL's reference to the old one */
	return tls_server_ctx_load(&tls_ctx, cfg->tls_cert, cfg->tls_key, err,
	    errlen);
}

int
trk_tls_available(void)
{
	return tls_ctx != NULL;
}

int
trk_tls_name_ok(const char *name)
{
	X509		*x;
	unsigned char	 ip[16];

	if (tls_ctx == NULL || (x = SSL_CTX_get0_certificate(tls_ctx)) == NULL)
		return 0;
	if (inet_pton(AF_INET, name, ip) == 1 ||
	    inet_pton(AF_INET6, name, ip) == 1)
		return X509_check_ip_asc(x, name, 0) == 1;
	return X509_check_host(x, name, strlen(name), 0, NULL) == 1;
}

/* attach_cb - our callbacks, watermark and write timeout on bev; -1
 * when memory is short (the read limit could not be set) */
static int
attach_cb(struct trk_session *s, struct bufferevent *bev)
{
	struct timeval	tv;

	tv.tv_sec = trk_cfg->mtqp_timeout > 0 ? trk_cfg->mtqp_timeout : 600;
	tv.tv_usec = 0;
	if (bev_read_limit(bev, TRK_READ_HIWAT) == -1)
		return -1;
	bufferevent_setcb(bev, read_cb, write_cb, event_cb, s);
	bufferevent_set_timeouts(bev, NULL, &tv);
	return 0;
}

/* tls_start - "+OK Begin TLS" is flushed: drop the plaintext read since
 * and put an OpenSSL filter over the socket bufferevent; -1: close */
static int
tls_start(struct trk_session *s)
{
	struct bufferevent	*fb;
	const char		*why;
	size_t			 n;

	fb = tls_accept_filter(tls_ctx, trk_base, s->bev, &n, &why);
	if (n > 0)
		log_info("mtqp session=%s dropping %zu octets pipelined after "
		    "STARTTLS", s->sid, n);
	if (fb == NULL) {
		log_warnx("mtqp session=%s TLS: %s", s->sid, why);
		return -1;
	}
	s->skipping = 0;
	s->bev = fb;		/* freeing fb frees the socket one too */
	if (attach_cb(s, fb) == -1) {
		log_warnx("mtqp session=%s TLS: out of memory", s->sid);
		return -1;
	}
	bufferevent_enable(fb, EV_READ | EV_WRITE);
	return 0;
}

/* tls_connected - the handshake is done: forget everything, greet anew */
static void
tls_connected(struct trk_session *s)
{
	SSL	*ssl;

	if (s->state != TRK_TLS ||
	    (ssl = bufferevent_openssl_get_ssl(s->bev)) == NULL)
		return;
	s->tls = 1;
	log_info("mtqp session=%s TLS established: %s %s", s->sid,
	    SSL_get_version(ssl), SSL_get_cipher_name(ssl));
	/* RFC 3887 6: the initial state again (nothing from before TLS is
	 * kept but the counters), a fresh greeting without STARTTLS */
	trk_set_state(s, TRK_READY);
	trk_greeting(s);
}

/* tls_log_error - why the handshake (or the TLS stream) failed */
static void
tls_log_error(struct trk_session *s, short what)
{
	char	line[600];

	tls_filter_error(s->bev, what, line, sizeof(line));
	log_info("mtqp session=%s TLS handshake failed: %s", s->sid, line);
}

/* ---------------------------------------------------------------- bind */

static int
bind_one(const struct cfg_addr *a, char *err, size_t errlen)
{
	const char	*failed;
	int		 fd, *nfds;

	if ((fd = tcp_listen((const struct sockaddr *)&a->ss, a->len,
	    &failed)) == -1) {
		snprintf(err, errlen, "mtqp %s: %s%s%s", a->text,
		    failed ? failed : "", failed ? ": " : "", strerror(errno));
		return -1;
	}
	if ((nfds = realloc(listen_fds, (nlisten_fds + 1) *
	    sizeof(*nfds))) == NULL) {
		snprintf(err, errlen, "mtqp %s: %s", a->text, strerror(errno));
		close(fd);
		return -1;
	}
	listen_fds = nfds;
	listen_fds[nlisten_fds++] = fd;
	return 0;
}

int
trk_server_bind(const struct config *cfg, char *err, size_t errlen)
{
	size_t	i;

	for (i = 0; i < cfg->nmtqp; i++)
		if (bind_one(&cfg->mtqp[i], err, errlen) == -1) {
			while (nlisten_fds > 0)
				close(listen_fds[--nlisten_fds]);
			free(listen_fds);
			listen_fds = NULL;
			return -1;
		}
	return 0;
}

/* -------------------------------------------------------------- accept */

/* addr_key - the 16 octets of ss's address (IPv4 as ::ffff:a.b.c.d) */
static void
addr_key(const struct sockaddr_storage *ss, unsigned char key[16])
{
	memset(key, 0, 16);
	if (ss->ss_family == AF_INET) {
		key[10] = key[11] = 0xff;
		memcpy(key + 12, &((const struct sockaddr_in *)
		    (const void *)ss)->sin_addr, 4);
	} else if (ss->ss_family == AF_INET6)
		memcpy(key, &((const struct sockaddr_in6 *)
		    (const void *)ss)->sin6_addr, 16);
}

/* addr_sessions - the counted sessions from s's address, s included */
static unsigned
addr_sessions(const struct trk_session *s)
{
	const struct trk_session	*o;
	unsigned char			 k[16], ko[16];
	unsigned			 n = 0;

	addr_key(&s->ss, k);
	for (o = sessions; o != NULL; o = o->next) {
		if (o->refused)
			continue;
		addr_key(&o->ss, ko);
		if (memcmp(k, ko, 16) == 0)
			n++;
	}
	return n;
}

/* per_addr_max - MTQP sessions per client address: a quarter of
 * mtqp_max_sessions, at least 1 */
static unsigned
per_addr_max(void)
{
	unsigned	n = trk_cfg->mtqp_max_sessions / 4;

	return n > 0 ? n : 1;
}

static void
accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
    int salen, void *arg)
{
	struct trk_session	*s;
	int			 on = 1;

	(void)l;
	(void)arg;
	if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on)) == -1)
		log_warn("mtqp: setsockopt TCP_NODELAY");
	if ((s = calloc(1, sizeof(*s))) == NULL) {
		log_warn("mtqp: session: calloc");
		close(fd);
		return;
	}
	s->id = next_id++;
	snprintf(s->sid, sizeof(s->sid), "%06llx", (unsigned long long)s->id);
	if (salen > 0 && (size_t)salen <= sizeof(s->ss))
		memcpy(&s->ss, sa, (size_t)salen);
	if (sockaddr_text((struct sockaddr *)&s->ss, s->addr,
	    sizeof(s->addr)) == -1)
		snprintf(s->addr, sizeof(s->addr), "unknown");
	if (s->ss.ss_family == AF_INET)
		s->port = ntohs(((struct sockaddr_in *)&s->ss)->sin_port);
	else if (s->ss.ss_family == AF_INET6)
		s->port = ntohs(((struct sockaddr_in6 *)&s->ss)->sin6_port);
	s->state = TRK_READY;
	s->wait_since = mono_ms();
	if ((s->timer = evtimer_new(trk_base, timer_cb, s)) == NULL ||
	    (s->bev = bufferevent_socket_new(trk_base, fd,
	    BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS)) == NULL ||
	    attach_cb(s, s->bev) == -1) {
		log_warnx("mtqp session=%s cannot set up the session (out of "
		    "memory)", s->sid);
		if (s->timer != NULL)
			event_free(s->timer);
		if (s->bev != NULL)
			bufferevent_free(s->bev);	/* closes fd */
		else
			close(fd);
		free(s);
		return;
	}
	s->next = sessions;
	if (sessions != NULL)
		sessions->prev = s;
	sessions = s;
	nsessions++;
	bufferevent_enable(s->bev, EV_READ | EV_WRITE);
	log_info("mtqp session=%s connect from [%s]:%u", s->sid, s->addr,
	    s->port);
	if (nsessions > trk_cfg->mtqp_max_sessions ||
	    addr_sessions(s) > per_addr_max()) {
		s->refused = 1;
		s->cmd = nsessions > trk_cfg->mtqp_max_sessions ?
		    "(connect)" : "(connect: per-address limit)";
		s->cmdlen = strlen(s->cmd);
		trk_reply(s, "-TEMP/MTQP/unavailable Too many MTQP sessions, "
		    "try again later");
		s->cmd = NULL;
		s->cmdlen = 0;
		trk_close_after_flush(s);
		return;
	}
	trk_greeting(s);
	timer_arm(s, s->wait_since);
}

static void
accept_error_cb(struct evconnlistener *l, void *arg)
{
	(void)l;
	(void)arg;
	log_warn("mtqp: accept");
}

int
trk_server_start(const struct config *cfg, struct event_base *base,
    char *err, size_t errlen)
{
	size_t	i;

	trk_cfg = cfg;
	trk_base = base;
	if (nlisten_fds == 0)
		return 0;
	if (tls_load(cfg, err, errlen) == -1)
		return -1;
	if ((listeners = calloc(nlisten_fds, sizeof(*listeners))) == NULL) {
		snprintf(err, errlen, "mtqp: listeners: %s", strerror(errno));
		return -1;
	}
	for (i = 0; i < nlisten_fds; i++) {
		/* backlog 0: tcp_listen() listened with SOMAXCONN already;
		 * libevent's -1 would listen() again with 128 */
		listeners[i] = evconnlistener_new(base, accept_cb, NULL,
		    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 0,
		    listen_fds[i]);
		if (listeners[i] == NULL) {
			snprintf(err, errlen, "mtqp: evconnlistener_new failed");
			return -1;
		}
		nlisteners++;
		evconnlistener_set_error_cb(listeners[i], accept_error_cb);
	}
	log_info("mtqp: listening on %zu address%s%s%s", nlisten_fds,
	    nlisten_fds == 1 ? "" : "es",
	    tls_ctx != NULL ? ", STARTTLS enabled" : "",
	    cfg->mtqp_require_tls ? " (required)" : "");
	return 0;
}

void
trk_server_reload(const struct config *cfg)
{
	char	err[512];

	trk_cfg = cfg;
	if (nlisteners == 0)
		return;
	trk_chain_reload();
	if (tls_load(cfg, err, sizeof(err)) == -1)
		log_warnx("mtqp: reload: %s (keeping the previous TLS setup)",
		    err);
}

void
trk_server_stop(void)
{
	size_t	i, n = nsessions;

	for (i = 0; i < nlisteners; i++)
		evconnlistener_free(listeners[i]);
	/* bound but never started: close the sockets themselves */
	if (nlisteners == 0)
		for (i = 0; i < nlisten_fds; i++)
			close(listen_fds[i]);
	free(listeners);
	listeners = NULL;
	nlisteners = 0;
	free(listen_fds);
	listen_fds = NULL;
	nlisten_fds = 0;
	while (sessions != NULL)
		session_free(sessions);
	trk_chain_shutdown();
	SSL_CTX_free(tls_ctx);
	tls_ctx = NULL;
	if (n > 0)
		log_info("mtqp: %zu session(s) closed", n);
}

/* ----------------------------------------------------------- deadlines */

/* timeout_ms - mtqp_timeout in milliseconds */
static uint64_t
timeout_ms(void)
{
	return (uint64_t)(trk_cfg->mtqp_timeout > 0 ?
	    trk_cfg->mtqp_timeout : 600) * 1000;
}

/* timer_arm - make the timer fire at s's deadline (none in the server's
 * turn); an armed timer that fires early re-arms itself */
static void
timer_arm(struct trk_session *s, uint64_t now)
{
	struct timeval	tv;
	uint64_t	next, d;

	if (s->timer == NULL || s->state == TRK_ANSWER)
		return;
	next = s->wait_since + timeout_ms();
	d = next > now ? next - now : 1;
	tv.tv_sec = (time_t)(d / 1000);
	tv.tv_usec = (suseconds_t)(d % 1000) * 1000;
	if (evtimer_add(s->timer, &tv) == 0)
		s->timer_armed = 1;
}

static void
timer_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct trk_session	*s = arg;
	uint64_t		 now = mono_ms();

	(void)fd;
	(void)ev;
	s->timer_armed = 0;
	if (s->state == TRK_ANSWER)
		return;			/* armed again by trk_resume */
	if (now < s->wait_since + timeout_ms()) {
		timer_arm(s, now);	/* a command came meanwhile */
		return;
	}
	switch (s->state) {
	case TRK_READY:
		log_info("mtqp session=%s autologout after %us idle", s->sid,
		    trk_cfg->mtqp_timeout);
		s->cmd = "(autologout)";
		s->cmdlen = strlen(s->cmd);
		s->logged = 1;
		trk_reply(s, "-ERR/unavailable Autologout: idle too long");
		s->cmd = NULL;
		s->cmdlen = 0;
		trk_close_after_flush(s);
		break;
	default:
		log_info("mtqp session=%s timeout in state %s", s->sid,
		    trk_state_name(s->state));
		session_free(s);
		break;
	}
}

/* --------------------------------------------------------------- close */

static void
session_free(struct trk_session *s)
{
	char	counters[256];

	if (trk_cmd_counters(s, counters, sizeof(counters)) == -1)
		counters[0] = '\0';
	log_info("mtqp session=%s disconnect from [%s]%s%s", s->sid, s->addr,
	    counters[0] != '\0' ? " " : "", counters);
	trk_answer_free(s->query);
	if (s->bev != NULL)
		bufferevent_free(s->bev);
	if (s->closetimer != NULL)
		event_free(s->closetimer);
	if (s->timer != NULL)
		event_free(s->timer);
	if (s->prev != NULL)
		s->prev->next = s->next;
	else
		sessions = s->next;
	if (s->next != NULL)
		s->next->prev = s->prev;
	nsessions--;
	free(s);
}

/* try_close - free s when its output is flushed, else wait */
static void
try_close(struct trk_session *s)
{
	if (bev_flushed(s->bev, s->closetimer))
		session_free(s);
}

static void
close_timer_cb(evutil_socket_t fd, short ev, void *arg)
{
	(void)fd;
	(void)ev;
	try_close(arg);
}

void
trk_close_after_flush(struct trk_session *s)
{
	struct timeval	tv = { 0, 0 };

	trk_set_state(s, TRK_CLOSING);
	bufferevent_disable(s->bev, EV_READ);
	if (s->closetimer == NULL)
		s->closetimer = evtimer_new(trk_base, close_timer_cb, s);
	/* checked from the loop, never from inside command processing */
	if (s->closetimer != NULL)
		evtimer_add(s->closetimer, &tv);
}

/* --------------------------------------------------------------- input */

/*
 * read_line - take one command line out of in into line (TRK_SRV_LINE_MAX
 * + 3 octets).  Its length without the line end (>= 0), -1 when no
 * complete line is buffered yet, -2 when an overlong line was discarded.
 */
static ssize_t
read_line(struct trk_session *s, struct evbuffer *in, char *line)
{
	struct evbuffer_ptr	p;
	size_t			avail, n;

	if ((avail = evbuffer_get_length(in)) == 0)
		return -1;
	p = evbuffer_search_eol(in, NULL, NULL, EVBUFFER_EOL_LF);
	if (p.pos == -1) {
		/* 998 octets + CR at most: hold no more, skip to the LF */
		if (avail >= TRK_SRV_LINE_MAX + 2) {
			evbuffer_drain(in, avail);
			s->skipping = 1;
		}
		return -1;
	}
	n = (size_t)p.pos + 1;
	if (s->skipping || n > TRK_SRV_LINE_MAX + 2) {
		evbuffer_drain(in, n);
		s->skipping = 0;
		return -2;
	}
	if (evbuffer_remove(in, line, n) != (int)n)
		return -2;
	n--;				/* LF */
	if (n > 0 && line[n - 1] == '\r')
		n--;
	line[n] = '\0';
	return n > TRK_SRV_LINE_MAX ? -2 : (ssize_t)n;
}

/* process - run the buffered command lines in order, as the state allows */
static void
process(struct trk_session *s)
{
	static char	 line[TRK_SRV_LINE_MAX + 3];
	struct evbuffer	*in = bufferevent_get_input(s->bev);
	struct evbuffer	*out = bufferevent_get_output(s->bev);
	ssize_t		 n;

	for (;;) {
		if (s->state != TRK_READY || s->out_blocked)
			return;		/* ANSWER, TLS, CLOSING: input held */
		if (evbuffer_get_length(out) > TRK_OUT_MAX) {
			s->out_blocked = 1;	/* resumed by write_cb */
			return;
		}
		if ((n = read_line(s, in, line)) == -1)
			break;
		s->wait_since = mono_ms();	/* any command resets it */
		if (n == -2)
			trk_cmd_overlong(s);
		else {
			trk_cmd_dispatch(s, line, (size_t)n);
			explicit_bzero(line, (size_t)n);  /* TRACK's secret */
		}
	}
	/* all buffered input used: a half-closed client is done */
	if (s->peer_eof)
		trk_close_after_flush(s);
}

void
trk_resume(struct trk_session *s)
{
	s->wait_since = mono_ms();
	timer_arm(s, s->wait_since);
	bev_read_again(s->bev, s->peer_eof);
}

static void
read_cb(struct bufferevent *bev, void *arg)
{
	(void)bev;
	process(arg);
}

static void
write_cb(struct bufferevent *bev, void *arg)
{
	struct trk_session *s = arg;

	(void)bev;
	switch (s->state) {
	case TRK_CLOSING:
		try_close(s);
		return;
	case TRK_TLS:
		if (bufferevent_get_underlying(s->bev) != NULL)
			return;		/* handshake already running */
		if (tls_start(s) == -1)
			session_free(s);
		return;
	default:
		break;
	}
	if (s->out_blocked) {
		s->out_blocked = 0;
		process(s);
	}
}

static void
event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct trk_session *s = arg;

	(void)bev;
	if (what & BEV_EVENT_CONNECTED) {
		tls_connected(s);
		process(s);
		return;
	}
	if (what & BEV_EVENT_TIMEOUT) {
		/* only writes have a bufferevent timeout */
		log_info("mtqp session=%s timeout in state %s: client not "
		    "reading", s->sid, trk_state_name(s->state));
		session_free(s);
		return;
	}
	if (what & BEV_EVENT_ERROR) {
		if (s->state == TRK_TLS)
			tls_log_error(s, what);
		else if (s->state != TRK_CLOSING)
			log_info("mtqp session=%s lost connection in state %s",
			    s->sid, trk_state_name(s->state));
		session_free(s);
		return;
	}
	if (what & BEV_EVENT_EOF) {
		if (s->state == TRK_TLS || s->state == TRK_CLOSING) {
			if (s->state == TRK_TLS)
				tls_log_error(s, what);
			session_free(s);
			return;
		}
		/* answer what is buffered, then close */
		s->peer_eof = 1;
		process(s);
	}
}
