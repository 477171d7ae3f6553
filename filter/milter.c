#include "config.h"
/*
 * milter.c - the MTA side of the milter protocol, version 6 (Sendmail's
 * libmilter; Postfix's milter8.c is the model): per SMTP session one
 * non-blocking connection per milter (bufferevents on the session's
 * loop), opened at CONNECT, option negotiation (SMFIC_OPTNEG: we offer
 * every action and protocol step, and honour the NO* skip and NR_* no-
 * reply steps and the macro lists the milter asks for), macros (the
 * stages and defaults of Postfix's MILTER_README), the events CONNECT,
 * HELO, MAIL, RCPT, DATA, ABORT and QUIT, and the decision replies.
 * Milters are asked in order; the first that does not continue decides
 * (reject 550 5.7.1, tempfail 451 4.7.1, replycode, discard, shutdown
 * 421); accept skips that milter for the rest of the message, or of the
 * connection at CONNECT/HELO.
 * Failures (connect, timeout, close, protocol error): the milter is
 * closed for the session (reconnected at the next one) and
 * milter_default_action answers at the stage where it failed, and at
 * each later stage of the session: tempfail 451 4.7.1, reject 550
 * 5.5.0, accept = as if there were no milter.  Logged with its name.
 * Timeouts: milter_connect_timeout for the connection, then
 * milter_command_timeout for the negotiation and the CONNECT..DATA
 * replies, milter_content_timeout for the message (milter_eom.c).
 * Not here: the message (milter_eom.c); when to call each stage and
 * what to answer the client (smtpd/smtpd_milter.c).
 * Counter waymark_milter_actions_total{milter,action}: ms_decide and
 * milter_eom.c's apply_mods (each modification).
 */

#include <sys/types.h>
#include <sys/socket.h>
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "common/cfg.h"
#include "common/log.h"
#include "common/metrics.h"
#include "filter/milter.h"
#include "filter/milter_int.h"

/* Postfix's default macro lists, by SMFIM stage (connect, helo, mail,
 * rcpt, data, eom, eoh); the stage letters of the D packets */
static const char *const default_syms[MILTER_NSTAGES] = {
	"j {daemon_name} {daemon_addr} v _ {client_addr} {client_port} "
	    "{client_name} {client_ptr} {if_name} {if_addr}",
	"{tls_version} {cipher} {cipher_bits} {cert_subject} {cert_issuer}",
	"i {auth_type} {auth_authen} {auth_author} {mail_addr} {mail_host} "
	    "{mail_mailer}",
	"i {rcpt_addr} {rcpt_host} {rcpt_mailer}",
	"i",
	"i",
	"i",
};
static const char stage_letters[MILTER_NSTAGES] = {
	'C', 'H', 'M', 'R', 'T', 'E', 'N'
};

static void	ms_step(struct milter_sess *);

/* stage_index - SMFIM stage of an event letter, -1 for none */
static int
stage_index(char letter)
{
	int i;

	if (letter == 'L')
		letter = 'N';		/* header fields: the EOH list */
	if (letter == 'B')
		letter = 'E';		/* body chunks: the EOM list */
	for (i = 0; i < MILTER_NSTAGES; i++)
		if (stage_letters[i] == letter)
			return i;
	return -1;
}

/* stage_name - the stage of an event letter, for the logs */
static const char *
stage_name(char letter)
{
	switch (letter) {
	case 'C': return "connect";
	case 'H': return "helo";
	case 'M': return "mail";
	case 'R': return "rcpt";
	case 'T': return "data";
	case 'E': return "eom";
	default: return "?";
	}
}

/* put32 - a uint32 in network order */
static void
put32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)(v >> 24);
	p[1] = (unsigned char)(v >> 16);
	p[2] = (unsigned char)(v >> 8);
	p[3] = (unsigned char)v;
}

/* get32 - a uint32 in network order */
static uint32_t
get32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	    (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

/* mconn_send - one packet: length, command, data */
void
mconn_send(struct mconn *c, char cmd, const void *data, size_t len)
{
	struct evbuffer	*out;
	unsigned char	 hdr[5];

	if (c->bev == NULL)
		return;
	out = bufferevent_get_output(c->bev);
	put32(hdr, (uint32_t)(len + 1));
	hdr[4] = (unsigned char)cmd;
	if (evbuffer_add(out, hdr, sizeof(hdr)) == -1 ||
	    (len > 0 && evbuffer_add(out, data, len) == -1))
		mconn_fail(c, "out of memory");
}

/* macro_value - the value of a macro name, NULL when unset */
static const char *
macro_value(const struct milter_sess *ms, const char *name, size_t len)
{
	size_t i;

	for (i = 0; i < ms->nmacros; i++)
		if (strlen(ms->mname[i]) == len &&
		    memcmp(ms->mname[i], name, len) == 0)
			return ms->mvalue[i];
	/* "{j}" and "j" are the same macro */
	if (len == 3 && name[0] == '{' && name[2] == '}')
		return macro_value(ms, name + 1, 1);
	return NULL;
}

/* mconn_send_macros - the D packet of a stage: the macros of c's list
 * for it that have a value (none: no packet) */
void
mconn_send_macros(struct mconn *c, char stage)
{
	struct milter_sess	*ms = c->ms;
	struct evbuffer		*b;
	const char		*list, *p, *e, *v;
	char			 letter = stage;
	int			 si, any = 0;

	if ((si = stage_index(stage)) < 0 || c->bev == NULL)
		return;
	list = c->syms[si] != NULL ? c->syms[si] : default_syms[si];
	if ((b = evbuffer_new()) == NULL) {
		mconn_fail(c, "out of memory");
		return;
	}
	if (evbuffer_add(b, &letter, 1) == -1)
		goto fail;
	for (p = list; *p != '\0'; p = e) {
		while (*p == ' ' || *p == ',')
			p++;
		for (e = p; *e != '\0' && *e != ' ' && *e != ','; e++)
			;
		if (e == p)
			break;
		if ((v = macro_value(ms, p, (size_t)(e - p))) == NULL)
			continue;
		if (evbuffer_add(b, p, (size_t)(e - p)) == -1 ||
		    evbuffer_add(b, "", 1) == -1 ||
		    evbuffer_add(b, v, strlen(v) + 1) == -1)
			goto fail;
		any = 1;
	}
	if (any && evbuffer_get_length(b) <= MILTER_CHUNK_SIZE)
		mconn_send(c, 'D', evbuffer_pullup(b, -1),
		    evbuffer_get_length(b));
	evbuffer_free(b);
	return;
fail:
	evbuffer_free(b);
	mconn_fail(c, "out of memory");
}

/* mconn_wait - a reply is awaited within seconds */
void
mconn_wait(struct mconn *c, unsigned seconds)
{
	struct timeval tv;

	tv.tv_sec = seconds;
	tv.tv_usec = 0;
	c->waiting = 1;
	if (c->timer != NULL)
		evtimer_add(c->timer, &tv);
}

/* mconn_close - drop the connection (QUIT first when quit is set) */
static void
mconn_close(struct mconn *c, int quit)
{
	int		fd;
	unsigned char	q[5] = { 0, 0, 0, 1, 'Q' };

	if (c->bev != NULL) {
		if (quit && c->st == MC_READY &&
		    evbuffer_get_length(bufferevent_get_output(c->bev)) == 0 &&
		    (fd = bufferevent_getfd(c->bev)) >= 0)
			(void)send(fd, q, sizeof(q), MSG_DONTWAIT |
			    MSG_NOSIGNAL);
		bufferevent_free(c->bev);
		c->bev = NULL;
	}
	if (c->timer != NULL)
		evtimer_del(c->timer);
	c->waiting = 0;
	c->in_msg = 0;
}

/*
 * mconn_fail - c cannot be used any more in this session: closed; when
 * it was the milter being asked, the operation goes on with the
 * default action
 */
void
mconn_fail(struct mconn *c, const char *why)
{
	struct milter_sess	*ms = c->ms;
	int			 current;

	if (c->st == MC_DEAD)
		return;
	log_warnx("session=%s milter=%s error: %s (default action %s)",
	    ms->sid, c->name, why, ms->defact == 0 ? "tempfail" :
	    ms->defact == 1 ? "accept" : "reject");
	current = ms->op != 0 && ms->cur == c->idx;
	mconn_close(c, 0);
	c->st = MC_DEAD;
	mconn_mods_free(c);
	if (current && ms->stepping == 0)
		ms_step(ms);
}

/* ms_refuse - the operation ends with a refusal decided by c */
void
ms_refuse(struct milter_sess *ms, struct mconn *c, int code, int cls,
    int subj, int det, const char *text, const char *action)
{
	ms->res.verdict = code == 421 ? MILTER_SHUTDOWN : MILTER_REFUSE;
	ms->res.code = code;
	ms->res.cls = cls;
	ms->res.subj = subj;
	ms->res.det = det;
	(void)snprintf(ms->res.text, sizeof(ms->res.text), "%s", text);
	if (c != NULL)
		(void)snprintf(ms->res.milter, sizeof(ms->res.milter), "%s",
		    c->name);
	ms->res.action = action;
	ms_finish(ms);
}

/* ms_default - c has failed: 1 when the default action refuses (the
 * operation is finished), 0 to go on as if c did not exist */
int
ms_default(struct milter_sess *ms, struct mconn *c)
{
	if (ms->defact == 1)
		return 0;
	if (ms->defact == 2)
		ms_refuse(ms, c, 550, 5, 5, 0, "Service unavailable",
		    "default");
	else
		ms_refuse(ms, c, 451, 4, 7, 1,
		    "Service unavailable - try again later", "default");
	return 1;
}

/* done_cb - the operation's result, from the loop */
static void
done_cb(evutil_socket_t fd, short what, void *arg)
{
	struct milter_sess	*ms = arg;
	struct milter_result	 r = ms->res;
	milter_done_fn		 done = ms->done;
	void			*done_arg = ms->done_arg;

	(void)fd; (void)what;
	ms->op = 0;
	ms->done = NULL;
	free(ms->pkt);
	ms->pkt = NULL;
	eom_clear(ms);
	if (done != NULL)
		done(done_arg, &r);
}

/* ms_finish - the operation is decided: report it from the loop */
void
ms_finish(struct milter_sess *ms)
{
	struct timeval	 tv = { 0, 0 };
	struct mconn	*c;
	size_t		 i;

	ms->cur = ms->n;
	for (i = 0; i < ms->n; i++) {
		c = &ms->c[i];
		if (c->waiting && c->st != MC_DEAD)
			/* a reply still owed would desynchronise: close */
			mconn_fail(c, "closed while a reply was due");
		/* the message ended for those that got no EOM */
		if (ms->op == 'E' && c->st == MC_READY && c->in_msg) {
			mconn_send(c, 'A', NULL, 0);
			c->in_msg = 0;
		}
	}
	evtimer_add(ms->doneev, &tv);
}

/* nr_flag, no_flag - the NR_* and NO* steps of an event letter */
static uint32_t
nr_flag(char op)
{
	switch (op) {
	case 'C': return SMFIP_NR_CONN;
	case 'H': return SMFIP_NR_HELO;
	case 'M': return SMFIP_NR_MAIL;
	case 'R': return SMFIP_NR_RCPT;
	case 'T': return SMFIP_NR_DATA;
	default: return 0;
	}
}

static uint32_t
no_flag(char op)
{
	switch (op) {
	case 'C': return SMFIP_NOCONNECT;
	case 'H': return SMFIP_NOHELO;
	case 'M': return SMFIP_NOMAIL;
	case 'R': return SMFIP_NORCPT;
	case 'T': return SMFIP_NODATA;
	default: return 0;
	}
}

/* ms_step - ask the milters from ms->cur on, until one must answer */
static void
ms_step(struct milter_sess *ms)
{
	struct mconn	*c;
	int		 msgstage = ms->op == 'M' || ms->op == 'R' ||
			    ms->op == 'T';

	if (ms->op == 'E') {
		eom_step(ms);
		return;
	}
	if (ms->op == 0 || evtimer_pending(ms->doneev, NULL))
		return;
	ms->stepping++;
	for (; ms->cur < ms->n; ms->cur++) {
		c = &ms->c[ms->cur];
		if (c->st == MC_DEAD) {
			if (ms_default(ms, c))
				goto out;
			continue;
		}
		if (c->skip_conn || (msgstage && (c->skip_msg || ms->discard)))
			continue;
		if (c->st != MC_READY)
			goto out;	/* resumed when it is ready or dead */
		if (ms->op == 'M')
			c->in_msg = 1;
		mconn_send_macros(c, ms->op);
		if (c->proto & no_flag(ms->op))
			continue;
		mconn_send(c, ms->op, ms->pkt, ms->pktlen);
		if (c->st == MC_DEAD) {
			if (ms_default(ms, c))
				goto out;
			continue;
		}
		if (c->proto & nr_flag(ms->op))
			continue;
		mconn_wait(c, ms->tcommand);
		goto out;
	}
	ms_finish(ms);
out:
	ms->stepping--;
}

/*
 * milter_parse_reply - Postfix's milter8_valid_smtp_reply: every line
 * "4dd" or "5dd", '-' on all but the last, SP on the last, CRLF between
 * lines; an enhanced code's class equals the first digit
 */
int
milter_parse_reply(const char *in, int *code, int *cls, int *subj,
    int *det, char *text, size_t textlen)
{
	const char	*p = in, *e, *t;
	size_t		 o = 0;
	int		 first = 1, c, x, y, z, last;

	*cls = *subj = *det = 0;
	if (textlen == 0)
		return -1;
	text[0] = '\0';
	for (;;) {
		if (!isdigit((unsigned char)p[0]) || !isdigit((unsigned char)p[1]) ||
		    !isdigit((unsigned char)p[2]) || (p[0] != '4' && p[0] != '5'))
			return -1;
		c = (p[0] - '0') * 100 + (p[1] - '0') * 10 + (p[2] - '0');
		if (first)
			*code = c;
		else if (c != *code)
			return -1;
		e = strstr(p, "\r\n");
		last = e == NULL;
		if (e == NULL)
			e = p + strlen(p);
		if (p[3] != (last ? ' ' : '-') && !(last && p + 3 == e))
			return -1;
		t = p + 3 < e ? p + 4 : e;
		/* an enhanced code x.y.z */
		if (t < e && sscanf(t, "%d.%d.%d", &x, &y, &z) == 3 &&
		    t[0] == p[0] && t[1] == '.') {
			if (first) {
				*cls = x;
				*subj = y;
				*det = z;
			}
			while (t < e && *t != ' ')
				t++;
			if (t < e)
				t++;
		} else if (t < e && isdigit((unsigned char)t[0]) && t + 1 < e &&
		    t[1] == '.')
			return -1;	/* a class that differs */
		if (!first && o + 1 < textlen)
			text[o++] = '\n';
		for (; t < e && o + 1 < textlen; t++) {
			if (*t == '%') {
				if (t + 1 < e && t[1] == '%')
					t++;
				else
					continue;	/* a lone '%' is dropped */
			}
			text[o++] = *t;
		}
		text[o] = '\0';
		first = 0;
		if (last)
			break;
		p = e + 2;
	}
	if (*cls == 0) {
		*cls = *code / 100;
		*subj = *det = 0;
	}
	return 0;
}

/* decision_name - a reply's label in waymark_milter_actions_total (NULL:
 * not a decision, not counted; a 421 counts as tempfail) */
static const char *
decision_name(char cmd)
{
	switch (cmd) {
	case 'c':	return "continue";
	case 'a':	return "accept";
	case 'r':	return "reject";
	case 't':
	case '4':	return "tempfail";
	case 'y':	return "replycode";
	case 'd':	return "discard";
	default:	return NULL;
	}
}

/*
 * ms_decide - a decision reply from c to the event being asked (not
 * EOM's: milter_eom.c).  Returns 0 when the operation went on.
 */
int
ms_decide(struct milter_sess *ms, struct mconn *c, char cmd,
    const unsigned char *data, size_t len)
{
	char	text[512];
	int	code, cls, subj, det;

	if (decision_name(cmd) != NULL)
		metrics_milter_action(c->name, decision_name(cmd));
	switch (cmd) {
	case 'c':
		break;
	case 'a':
		log_info("session=%s milter=%s stage=%s action=accept",
		    ms->sid, c->name, stage_name(ms->op));
		if (ms->op == 'C' || ms->op == 'H')
			c->skip_conn = 1;
		else
			c->skip_msg = 1;
		break;
	case 'r':
		log_info("session=%s milter=%s stage=%s action=reject",
		    ms->sid, c->name, stage_name(ms->op));
		ms_refuse(ms, c, 550, 5, 7, 1, "Command rejected", "reject");
		return 1;
	case 't':
		log_info("session=%s milter=%s stage=%s action=tempfail",
		    ms->sid, c->name, stage_name(ms->op));
		ms_refuse(ms, c, 451, 4, 7, 1,
		    "Service unavailable - try again later", "tempfail");
		return 1;
	case '4':
		log_info("session=%s milter=%s stage=%s action=shutdown",
		    ms->sid, c->name, stage_name(ms->op));
		ms_refuse(ms, c, 421, 4, 7, 0,
		    "Service unavailable - closing transmission channel",
		    "shutdown");
		return 1;
	case 'y':
		if (len == 0 || data[len - 1] != '\0' ||
		    milter_parse_reply((const char *)data, &code, &cls, &subj,
		    &det, text, sizeof(text)) == -1) {
			log_warnx("session=%s milter=%s stage=%s bad reply "
			    "code text", ms->sid, c->name, stage_name(ms->op));
			ms_refuse(ms, c, 451, 4, 3, 5, "Server configuration "
			    "problem - try again later", "default");
			return 1;
		}
		log_info("session=%s milter=%s stage=%s action=replycode "
		    "code=%d", ms->sid, c->name, stage_name(ms->op), code);
		ms_refuse(ms, c, code, cls, subj, det, text, "replycode");
		return 1;
	case 'd':
		if (ms->op == 'C' || ms->op == 'H') {
			log_warnx("session=%s milter=%s stage=%s discard "
			    "ignored", ms->sid, c->name, stage_name(ms->op));
			break;
		}
		log_info("session=%s milter=%s stage=%s action=discard",
		    ms->sid, c->name, stage_name(ms->op));
		ms->discard = 1;
		(void)snprintf(ms->discard_by, sizeof(ms->discard_by), "%s",
		    c->name);
		if (ms->op == 'E')
			ms->res.verdict = MILTER_DISCARD;
		(void)snprintf(ms->res.milter, sizeof(ms->res.milter), "%s",
		    c->name);
		ms->res.action = "discard";
		ms_finish(ms);		/* the client is answered as usual */
		return 1;
	default:
		mconn_fail(c, "unexpected reply");
		return 1;
	}
	return 0;
}

/* handle_optneg - the milter's SMFIC_OPTNEG reply */
static int
handle_optneg(struct mconn *c, const unsigned char *d, size_t len)
{
	uint32_t	ver, act, proto, stage;
	size_t		off = 12, e;

	if (len < 12)
		return -1;
	ver = get32(d);
	act = get32(d + 4);
	proto = get32(d + 8);
	if (ver < 2 || ver > SMFI_PROT_VERSION || (act & ~SMFI_CURR_ACTS))
		return -1;
	/* steps we did not offer (libmilter's size bits): ignored, as
	 * Postfix does */
	if (proto & ~SMFI_CURR_PROT)
		log_debug("session=%s milter=%s protocol bits %#x ignored",
		    c->ms->sid, c->name, (unsigned)(proto & ~SMFI_CURR_PROT));
	c->actions = act;
	c->proto = proto & SMFI_CURR_PROT;
	/* macro lists: (uint32 stage, "names\0") pairs */
	while (off + 4 < len) {
		stage = get32(d + off);
		off += 4;
		for (e = off; e < len && d[e] != '\0'; e++)
			;
		if (e == len)
			return -1;
		if (stage < MILTER_NSTAGES && (act & SMFIF_SETSYMLIST)) {
			free(c->syms[stage]);
			if ((c->syms[stage] = strdup((const char *)d + off)) ==
			    NULL)
				return -1;
		}
		off = e + 1;
	}
	return 0;
}

/* mconn_packet - one packet from c */
static void
mconn_packet(struct mconn *c, char cmd, const unsigned char *d, size_t len)
{
	struct milter_sess *ms = c->ms;

	if (c->st == MC_NEGOTIATING) {
		if (cmd != 'O' || handle_optneg(c, d, len) == -1) {
			mconn_fail(c, "bad option negotiation");
			return;
		}
		evtimer_del(c->timer);
		c->waiting = 0;
		c->st = MC_READY;
		if (ms->op != 0 && ms->cur == c->idx)
			ms_step(ms);
		return;
	}
	if (!c->waiting || ms->op == 0 || ms->cur != c->idx) {
		mconn_fail(c, "reply out of turn");
		return;
	}
	if (cmd == 'p') {		/* progress: wait anew */
		mconn_wait(c, ms->op == 'E' ? ms->tcontent : ms->tcommand);
		return;
	}
	if (ms->op == 'E') {
		eom_reply(ms, c, cmd, d, len);
		return;
	}
	evtimer_del(c->timer);
	c->waiting = 0;
	if (ms_decide(ms, c, cmd, d, len) != 0)
		return;
	ms->cur++;
	ms_step(ms);
}

/* mconn_read_cb - complete packets from the milter */
static void
mconn_read_cb(struct bufferevent *bev, void *arg)
{
	struct mconn	*c = arg;
	struct evbuffer	*in = bufferevent_get_input(bev);
	unsigned char	 hdr[5], *d;
	uint32_t	 len;

	while (c->bev != NULL && evbuffer_get_length(in) >= 5) {
		if (evbuffer_copyout(in, hdr, 5) != 5)
			return;
		len = get32(hdr);
		if (len < 1 || len > MILTER_PKT_MAX) {
			mconn_fail(c, "bad packet length");
			return;
		}
		if (evbuffer_get_length(in) < 4 + (size_t)len)
			return;
		evbuffer_drain(in, 5);
		/* one octet more: strings in the data end with a NUL */
		if ((d = malloc(len)) == NULL) {
			mconn_fail(c, "out of memory");
			return;
		}
		if (len > 1 && evbuffer_remove(in, d, len - 1) != (int)len - 1) {
			free(d);
			mconn_fail(c, "short read");
			return;
		}
		d[len - 1] = '\0';
		mconn_packet(c, (char)hdr[4], d, len - 1);
		free(d);
	}
}

/* mconn_event_cb - connected, closed, error */
static void
mconn_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct mconn	*c = arg;
	unsigned char	 neg[12];

	(void)bev;
	if (what & BEV_EVENT_CONNECTED) {
		c->st = MC_NEGOTIATING;
		put32(neg, SMFI_PROT_VERSION);
		put32(neg + 4, SMFI_CURR_ACTS);
		put32(neg + 8, SMFI_CURR_PROT);
		evtimer_del(c->timer);
		mconn_send(c, 'O', neg, sizeof(neg));
		if (c->st != MC_DEAD)
			mconn_wait(c, c->ms->tcommand);
		return;
	}
	if (what & BEV_EVENT_EOF)
		mconn_fail(c, c->st == MC_CONNECTING ? "connection refused" :
		    "connection closed");
	else if (what & BEV_EVENT_ERROR)
		mconn_fail(c, c->st == MC_CONNECTING ? "cannot connect" :
		    "connection error");
}

/* mconn_timer_cb - no connection or no reply in time */
static void
mconn_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct mconn *c = arg;

	(void)fd; (void)what;
	mconn_fail(c, c->st == MC_CONNECTING ? "connect timeout" :
	    c->st == MC_NEGOTIATING ? "negotiation timeout" :
	    "reply timeout");
}

/* mconn_start - begin connecting c */
static void
mconn_start(struct mconn *c)
{
	struct sockaddr_storage	ss;
	socklen_t		sl;
	char			err[256];
	struct timeval		tv;

	if (cfg_milter_addr(c->name, &ss, &sl, err, sizeof(err)) == -1) {
		mconn_fail(c, err);
		return;
	}
	c->bev = bufferevent_socket_new(c->ms->base, -1, BEV_OPT_CLOSE_ON_FREE);
	if (c->bev == NULL) {
		mconn_fail(c, "out of memory");
		return;
	}
	bufferevent_setcb(c->bev, mconn_read_cb, NULL, mconn_event_cb, c);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	tv.tv_sec = c->ms->tconnect;
	tv.tv_usec = 0;
	evtimer_add(c->timer, &tv);
	if (bufferevent_socket_connect(c->bev, (struct sockaddr *)&ss,
	    (int)sl) == -1)
		mconn_fail(c, strerror(errno));
}

/* milter_open - the session's milter set, not yet connected */
struct milter_sess *
milter_open(const struct config *cfg, struct event_base *base,
    const char *sid)
{
	struct milter_sess	*ms;
	size_t			 i;

	if (cfg->nmilters == 0)
		return NULL;
	if ((ms = calloc(1, sizeof(*ms))) == NULL)
		return NULL;
	ms->base = base;
	ms->rfd = -1;
	(void)snprintf(ms->sid, sizeof(ms->sid), "%s", sid);
	ms->tconnect = cfg->milter_connect_timeout;
	ms->tcommand = cfg->milter_command_timeout;
	ms->tcontent = cfg->milter_content_timeout;
	if (cfg->milter_default_action != NULL &&
	    strcmp(cfg->milter_default_action, "accept") == 0)
		ms->defact = 1;
	else if (cfg->milter_default_action != NULL &&
	    strcmp(cfg->milter_default_action, "reject") == 0)
		ms->defact = 2;
	if ((ms->doneev = evtimer_new(base, done_cb, ms)) == NULL ||
	    (ms->c = calloc(cfg->nmilters, sizeof(*ms->c))) == NULL)
		goto fail;
	ms->n = cfg->nmilters;
	for (i = 0; i < ms->n; i++) {
		ms->c[i].ms = ms;
		ms->c[i].idx = i;
		ms->c[i].st = MC_CONNECTING;
		if ((ms->c[i].name = strdup(cfg->milters[i])) == NULL ||
		    (ms->c[i].timer = evtimer_new(base, mconn_timer_cb,
		    &ms->c[i])) == NULL)
			goto fail;
	}
	return ms;
fail:
	milter_close(ms);
	errno = ENOMEM;
	return NULL;
}

/* milter_macro - set or unset one macro */
int
milter_macro(struct milter_sess *ms, const char *name, const char *value)
{
	char	**nn, **nv, *v = NULL;
	size_t	  i;

	if (value != NULL && (v = strdup(value)) == NULL)
		return -1;
	for (i = 0; i < ms->nmacros; i++)
		if (strcmp(ms->mname[i], name) == 0) {
			free(ms->mvalue[i]);
			ms->mvalue[i] = v;
			return 0;
		}
	if (v == NULL)
		return 0;
	if ((nn = reallocarray(ms->mname, ms->nmacros + 1, sizeof(*nn))) ==
	    NULL) {
		free(v);
		return -1;
	}
	ms->mname = nn;
	if ((nv = reallocarray(ms->mvalue, ms->nmacros + 1, sizeof(*nv))) ==
	    NULL) {
		free(v);
		return -1;
	}
	ms->mvalue = nv;
	if ((ms->mname[ms->nmacros] = strdup(name)) == NULL) {
		free(v);
		return -1;
	}
	ms->mvalue[ms->nmacros++] = v;
	return 0;
}

/* ms_begin - start operation op with packet data d[0..len) */
static int
ms_begin(struct milter_sess *ms, char op, const void *d, size_t len,
    milter_done_fn done, void *arg)
{
	if (ms->op != 0) {
		errno = EBUSY;
		return -1;
	}
	free(ms->pkt);
	ms->pkt = NULL;
	ms->pktlen = 0;
	if (len > 0) {
		if ((ms->pkt = malloc(len)) == NULL)
			return -1;
		memcpy(ms->pkt, d, len);
		ms->pktlen = len;
	}
	memset(&ms->res, 0, sizeof(ms->res));
	ms->res.verdict = MILTER_CONTINUE;
	ms->op = op;
	ms->cur = 0;
	ms->done = done;
	ms->done_arg = arg;
	ms_step(ms);
	return 0;
}

/* milter_connect - connect every milter, then CONNECT */
int
milter_connect(struct milter_sess *ms, const char *hostname, int family,
    unsigned port, const char *addr, milter_done_fn done, void *arg)
{
	unsigned char	 buf[600];
	size_t		 hl = strlen(hostname), al = strlen(addr), o = 0, i;

	if (hl + al + 5 > sizeof(buf)) {
		errno = EINVAL;
		return -1;
	}
	memcpy(buf, hostname, hl + 1);
	o = hl + 1;
	buf[o++] = (unsigned char)family;
	if (family != 'U') {
		buf[o++] = (unsigned char)(port >> 8);
		buf[o++] = (unsigned char)port;
		memcpy(buf + o, addr, al + 1);
		o += al + 1;
	}
	for (i = 0; i < ms->n; i++)
		if (ms->c[i].st == MC_CONNECTING && ms->c[i].bev == NULL)
			mconn_start(&ms->c[i]);
	return ms_begin(ms, 'C', buf, o, done, arg);
}

/* milter_helo - HELO/EHLO */
int
milter_helo(struct milter_sess *ms, const char *helo, milter_done_fn done,
    void *arg)
{
	return ms_begin(ms, 'H', helo, strlen(helo) + 1, done, arg);
}

/* argv_pack - NUL-terminated strings one after the other */
static unsigned char *
argv_pack(char *const *argv, size_t argc, size_t *len)
{
	unsigned char	*p;
	size_t		 i, n = 0;

	for (i = 0; i < argc; i++)
		n += strlen(argv[i]) + 1;
	if ((p = malloc(n > 0 ? n : 1)) == NULL)
		return NULL;
	*len = 0;
	for (i = 0; i < argc; i++) {
		memcpy(p + *len, argv[i], strlen(argv[i]) + 1);
		*len += strlen(argv[i]) + 1;
	}
	return p;
}

/* milter_mail - MAIL FROM: a new message for every milter */
int
milter_mail(struct milter_sess *ms, char *const *argv, size_t argc,
    milter_done_fn done, void *arg)
{
	unsigned char	*p;
	size_t		 len, i;
	int		 r;

	ms->discard = 0;
	for (i = 0; i < ms->n; i++) {	/* a refused MAIL left them in one */
		ms->c[i].skip_msg = 0;
		ms->c[i].bskip = 0;
		if (ms->c[i].st == MC_READY && ms->c[i].in_msg) {
			mconn_send(&ms->c[i], 'A', NULL, 0);
			ms->c[i].in_msg = 0;
		}
	}
	if ((p = argv_pack(argv, argc, &len)) == NULL)
		return -1;
	r = ms_begin(ms, 'M', p, len, done, arg);
	free(p);
	return r;
}

/* milter_rcpt - RCPT TO */
int
milter_rcpt(struct milter_sess *ms, char *const *argv, size_t argc,
    milter_done_fn done, void *arg)
{
	unsigned char	*p;
	size_t		 len;
	int		 r;

	if ((p = argv_pack(argv, argc, &len)) == NULL)
		return -1;
	r = ms_begin(ms, 'R', p, len, done, arg);
	free(p);
	return r;
}

/* milter_data - DATA */
int
milter_data(struct milter_sess *ms, milter_done_fn done, void *arg)
{
	return ms_begin(ms, 'T', NULL, 0, done, arg);
}

/* milter_eom - the message (milter_eom.c does the work) */
int
milter_eom(struct milter_sess *ms, struct qmsg *m, int *fd,
    uint64_t max_size, milter_done_fn done, void *arg)
{
	if (ms->op != 0) {
		errno = EBUSY;
		return -1;
	}
	ms->m = m;
	ms->fdp = fd;
	ms->max_size = max_size;
	ms->phase = PH_HDR;
	ms->hi = 0;
	ms->boff = 0;
	if (eom_prepare(ms) == -1) {
		eom_clear(ms);
		return -1;
	}
	return ms_begin(ms, 'E', NULL, 0, done, arg);
}

int
milter_discarding(const struct milter_sess *ms)
{
	return ms != NULL && ms->discard;
}

/* milter_abort - ABORT to the milters in a message; cancel the rest */
void
milter_abort(struct milter_sess *ms)
{
	struct mconn	*c;
	size_t		 i;

	if (ms == NULL)
		return;
	if (ms->op != 0) {
		evtimer_del(ms->doneev);
		ms->op = 0;
		ms->done = NULL;
		free(ms->pkt);
		ms->pkt = NULL;
		for (i = 0; i < ms->n; i++)
			if (ms->c[i].waiting)
				mconn_fail(&ms->c[i],
				    "transaction aborted while a reply was due");
		eom_clear(ms);
	}
	for (i = 0; i < ms->n; i++) {
		c = &ms->c[i];
		mconn_mods_free(c);
		c->bskip = 0;
		c->skip_msg = 0;
		if (c->st == MC_READY && c->in_msg) {
			mconn_send(c, 'A', NULL, 0);
			c->in_msg = 0;
		}
	}
	ms->discard = 0;
}

/* milter_close - QUIT and free */
void
milter_close(struct milter_sess *ms)
{
	size_t	i, j;

	if (ms == NULL)
		return;
	eom_clear(ms);
	for (i = 0; i < ms->n; i++) {
		mconn_close(&ms->c[i], 1);
		if (ms->c[i].timer != NULL)
			event_free(ms->c[i].timer);
		for (j = 0; j < MILTER_NSTAGES; j++)
			free(ms->c[i].syms[j]);
		mconn_mods_free(&ms->c[i]);
		free(ms->c[i].name);
	}
	free(ms->c);
	for (i = 0; i < ms->nmacros; i++) {
		free(ms->mname[i]);
		free(ms->mvalue[i]);
	}
	free(ms->mname);
	free(ms->mvalue);
	free(ms->pkt);
	if (ms->doneev != NULL)
		event_free(ms->doneev);
	free(ms);
}
