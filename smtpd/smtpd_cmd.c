#include "config.h"
/*
 * smtpd_cmd.c - the SMTP command dispatcher and the command handlers.
 * Owns: the table {verb, handler, allowed states, flags, bad-sequence
 *       text}, the per-verb counters logged at disconnect, EHLO/HELO,
 *       MAIL, RCPT (recipient policy), DATA (up to the 354), RSET, NOOP,
 *       QUIT, VRFY, HELP, STARTTLS (up to the 220), the AUTH row (the
 *       exchange is smtpd_auth.c) and the 530 5.7.0 that submission
 *       listeners give to MAIL/RCPT/DATA before AUTH (RFC 4954, 6409).
 * Check, then proceed: each handler validates syntax and state without
 *       side effects, then acts and replies exactly once.
 * Not here: reading lines (smtpd_session.c), the content (smtpd_data.c),
 *       the handshake (smtpd_tls.c), command-line, path and parameter
 *       syntax (common/syntax: smtp_split_command, smtp_parse_mail_arg).
 * Leniency (documented): spaces after "FROM:"/"TO:" and trailing spaces
 *       on a line are accepted; an EHLO/HELO name may contain '_'.
 * Standards: RFC 5321 3-4, RFC 1870 (SIZE), RFC 6152 (8BITMIME),
 *       RFC 2920 (PIPELINING), RFC 3207 (STARTTLS), RFC 3461 (DSN:
 *       RET ENVID NOTIFY ORCPT, kept in the qmsg/qrcpt), RFC 3885 (MTRK;
 *       without ENVID=local@fqhn: 501 5.5.4), RFC 2852 (DELIVERBY
 *       [deliverby_min] on every listener; BY= syntax and R with a
 *       by-time <= 0: 501 5.5.4; R below deliverby_min: 555 5.5.4; the
 *       deadline = now + by-time and the mode in qmsg.deliver_by/by_flags).
 *       RFC 3030: CHUNKING and BINARYMIME on every listener; the BDAT row
 *       (F_CHUNK) does all its checks itself, after parsing the count
 *       (smtpd_bdat.c), since its octets must be read before any reply;
 *       RCPT or DATA after a BDAT and DATA after BODY=BINARYMIME: 503.
 *       RFC 8689 (REQUIRETLS: in EHLO and on MAIL inside TLS only,
 *       elsewhere unknown: 555 5.5.4; the tag in qmsg.requiretls).
 * Aliases (common/aliases.c) are expanded at RCPT, before queueing:
 *       1->1 replaces the address (ORCPT kept, or set to rfc822;original;
 *       NOTIFY and MTRK pass, RFC 3461 5.2.7.2, RFC 3885 3.3); 1->N keeps
 *       the original as an "expanded" recipient and adds the expansions
 *       with NOTIFY minus SUCCESS (NEVER when only SUCCESS was asked) and
 *       no_mtrk: MTRK is not passed on to them (RFC 3461 5.2.7.3(c),
 *       RFC 3885 3.3; the scheduler relays them in their own transaction).
 * Lists (smtpd_lists.c) come before aliases: a list address is stored
 *       as it is (the queue expands it) or holds the post for moderation.
 */

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "common/aliases.h"
#include "common/cfg.h"
#include "common/intl.h"
#include "common/log.h"
#include "common/syntax.h"
#include "queue/queue.h"
#include "smtpd/smtpd_session.h"

/* the parameter parser's RFC 3461 values are the queue's */
_Static_assert(ESMTP_NOTIFY_NEVER == DSN_NOTIFY_NEVER &&
    ESMTP_NOTIFY_SUCCESS == DSN_NOTIFY_SUCCESS &&
    ESMTP_NOTIFY_FAILURE == DSN_NOTIFY_FAILURE &&
    ESMTP_NOTIFY_DELAY == DSN_NOTIFY_DELAY &&
    (int)ESMTP_RET_FULL == (int)DSN_RET_FULL &&
    (int)ESMTP_RET_HDRS == (int)DSN_RET_HDRS, "DSN values differ");
_Static_assert(ESMTP_BY_RETURN == BY_RETURN && ESMTP_BY_NOTIFY == BY_NOTIFY &&
    ESMTP_BY_TRACE == BY_TRACE, "DELIVERBY values differ");
/* ESMTP parameters accepted on MAIL / RCPT (RFC 1870, 6152, 3461, 3885,
 * 2852) */
#define SMTPD_EXTS	(EXT_SIZE | EXT_8BITMIME | EXT_DSN | EXT_MTRK | \
			 EXT_DELIVERBY)
/* RFC 6531 SMTPUTF8 on every listener (with 8BITMIME, 3.1) */
#define SMTPD_EXTS_MAIL	(SMTPD_EXTS | EXT_SMTPUTF8)

/* handler results */
#define CMD_OK		0	/* success: counted as ok */
#define CMD_FAIL	-1	/* error reply sent */
#define CMD_PENDING	1	/* outcome later (DATA): counted there */

/* flags */
#define F_NOARG		0x01	/* arguments get 501 5.5.4 */
#define F_LAST		0x02	/* LAST_IN_GROUP (RFC 2920 3.1) */
#define F_JUNK		0x04	/* counts toward the junk limit */
#define F_HELLO		0x08	/* EHLO/HELO: reply without enhanced code */
#define F_AUTHREQ	0x10	/* submission: 530 5.7.0 before AUTH */
#define F_SECRET	0x20	/* log only the first argument (AUTH) */
#define F_CHUNK		0x40	/* counted octets follow: the handler checks
				   (RFC 3030 BDAT, smtpd_bdat.c) */

struct smtpd_cmd {
	const char	*verb;
	int		(*handler)(struct smtpd_session *, const char *, size_t);
	unsigned	 states;
	unsigned	 flags;
	const char	*badseq;	/* 503 text when the state does not allow it */
};

static int	cmd_ehlo(struct smtpd_session *, const char *, size_t);
static int	cmd_helo(struct smtpd_session *, const char *, size_t);
static int	cmd_starttls(struct smtpd_session *, const char *, size_t);
static int	cmd_mail(struct smtpd_session *, const char *, size_t);
static int	cmd_rcpt(struct smtpd_session *, const char *, size_t);
static int	cmd_data(struct smtpd_session *, const char *, size_t);
static int	cmd_rset(struct smtpd_session *, const char *, size_t);
static int	cmd_noop(struct smtpd_session *, const char *, size_t);
static int	cmd_vrfy(struct smtpd_session *, const char *, size_t);
static int	cmd_help(struct smtpd_session *, const char *, size_t);
static int	cmd_quit(struct smtpd_session *, const char *, size_t);
static int	cmd_auth(struct smtpd_session *, const char *, size_t);
static int	cmd_bdat(struct smtpd_session *, const char *, size_t);

#define ANY	SMTPD_CMD_STATES
#define NOTXN	(SMTPD_S(SMTPD_GREETING) | SMTPD_S(SMTPD_READY))
#define HELLOED	(SMTPD_S(SMTPD_READY) | SMTPD_S(SMTPD_MAIL) | SMTPD_S(SMTPD_RCPT))
#define INTXN	(SMTPD_S(SMTPD_MAIL) | SMTPD_S(SMTPD_RCPT))

/* the order is the order of the disconnect counters; see SMTPD_NVERBS */
static const struct smtpd_cmd cmds[] = {
	{ "EHLO",	cmd_ehlo,	ANY,	F_LAST | F_HELLO, NULL },
	{ "HELO",	cmd_helo,	ANY,	F_HELLO, NULL },
	{ "STARTTLS",	cmd_starttls,	NOTXN,	F_NOARG | F_LAST,
	    "Error: MAIL transaction in progress" },
	{ "MAIL",	cmd_mail,	SMTPD_S(SMTPD_READY), F_AUTHREQ,
	    "Error: nested MAIL command" },
	{ "RCPT",	cmd_rcpt,	INTXN,	F_AUTHREQ, "Error: need MAIL command" },
	{ "DATA",	cmd_data,	INTXN,	F_NOARG | F_LAST | F_AUTHREQ,
	    "Error: need RCPT command" },
	{ "RSET",	cmd_rset,	ANY,	F_NOARG | F_JUNK, NULL },
	{ "NOOP",	cmd_noop,	ANY,	F_LAST | F_JUNK, NULL },
	{ "VRFY",	cmd_vrfy,	ANY,	F_LAST | F_JUNK, NULL },
	{ "HELP",	cmd_help,	ANY,	F_JUNK, NULL },
	{ "QUIT",	cmd_quit,	ANY,	F_NOARG | F_LAST, NULL },
	{ "AUTH",	cmd_auth,	SMTPD_S(SMTPD_READY), F_SECRET,
	    "Error: MAIL transaction in progress" },
	{ "BDAT",	cmd_bdat,	ANY,	F_CHUNK, NULL },	/* RFC 3030 */
};
#define NCMDS		(sizeof(cmds) / sizeof(cmds[0]))
#define IDX_UNKNOWN	(SMTPD_NVERBS - 1)
_Static_assert(sizeof(cmds) / sizeof(cmds[0]) < SMTPD_NVERBS,
    "SMTPD_NVERBS too small");

/* smtpd_cmd_index - table index of verb (for counters), -1 if unknown */
int
smtpd_cmd_index(const char *verb)
{
	size_t i;

	for (i = 0; i < NCMDS; i++)
		if (strcasecmp(cmds[i].verb, verb) == 0)
			return (int)i;
	return -1;
}

/* verb_name - the counters' name of index i: the verb, "unknown", NULL */
static const char *
verb_name(size_t i)
{
	return i < NCMDS ? cmds[i].verb : i == IDX_UNKNOWN ? "unknown" : NULL;
}

/* smtpd_cmd_counters - "ehlo=1 mail=1 rcpt=2/3 ..." (ok/total when they
 * differ; unknown commands are never ok: "unknown=0/N") */
int
smtpd_cmd_counters(const struct smtpd_session *s, char *out, size_t outlen)
{
	return verb_counters(out, outlen, verb_name, s->okcount, s->count,
	    SMTPD_NVERBS);
}

/* smtpd_cmd_dispatch - one command line (no line end, NUL-terminated) */
void
smtpd_cmd_dispatch(struct smtpd_session *s, const char *line, size_t len)
{
	const struct smtpd_cmd	*c = NULL;
	char			 verb[16];
	size_t			 i;
	const char		*arg;
	size_t			 arglen;
	int			 rc;

	s->cmd = line;
	s->cmdlen = len;
	/* lenient: trailing white space is ignored (common/syntax) */
	if (smtp_split_command(line, len, verb, sizeof(verb), &arg,
	    &arglen) == 0) {
		for (i = 0; i < NCMDS; i++)
			if (strcmp(cmds[i].verb, verb) == 0) {
				c = &cmds[i];
				break;
			}
	}
	if (c == NULL) {
		s->count[IDX_UNKNOWN]++;
		s->junk++;
		smtpd_reply(s, 500, 5, 5, 2, "Error: command not recognized");
		return;
	}
	i = (size_t)(c - cmds);
	s->count[i]++;
	if (c->flags & F_SECRET) {	/* never log an AUTH initial response */
		const char *sp = memchr(arg, ' ', arglen);

		s->cmdlen = (size_t)((sp != NULL ? sp : arg + arglen) - line);
	}
	if (c->flags & F_CHUNK)
		goto run;		/* its octets first: it checks itself */

	/* a milter's refusal at CONNECT/HELO answers every command */
	if (smtpd_milter_refused(s, c->verb))
		return;
	if ((c->flags & F_AUTHREQ) && s->submission && s->auth_user == NULL &&
	    s->state != SMTPD_GREETING) {
		smtpd_reply(s, 530, 5, 7, 0, "Authentication required");
		return;
	}

	if (!(c->states & SMTPD_S(s->state))) {
		if (s->state == SMTPD_GREETING)
			smtpd_reply(s, 503, 5, 5, 1, "Error: send HELO/EHLO first");
		else
			smtpd_reply(s, 503, 5, 5, 1, "%s", c->badseq != NULL ?
			    c->badseq : "Error: bad sequence of commands");
		return;
	}
	if ((c->flags & F_NOARG) && arglen > 0) {
		smtpd_reply(s, 501, 5, 5, 4, "Syntax: %s", c->verb);
		return;
	}
	if (c->flags & F_JUNK) {
		if (++s->junk > SMTPD_JUNK_LIMIT) {
			smtpd_reply(s, 421, 4, 7, 0,
			    "%s Error: too many junk commands",
			    smtpd_cfg->hostname);
			return;
		}
	}

run:
	s->cmd_idx = (int)i;
	rc = c->handler(s, arg, arglen);
	if (rc == CMD_OK)
		s->okcount[i]++;

	if ((c->flags & F_LAST) && !s->piped_logged &&
	    (SMTPD_CMD_STATES & SMTPD_S(s->state)) &&
	    evbuffer_get_length(bufferevent_get_input(s->bev)) > 0) {
		s->piped_logged = 1;
		log_info("session=%s improper command pipelining after %s",
		    s->sid, c->verb);
	}
}

/* smtpd_cmd_current - table index of the command being handled */
int
smtpd_cmd_current(const struct smtpd_session *s)
{
	return s->cmd_idx;
}

/* smtpd_cmd_again - the handler once more, after its milters passed it */
void
smtpd_cmd_again(struct smtpd_session *s, int idx, const char *line,
    size_t len, const char *arg, size_t arglen)
{
	int rc;

	if (idx < 0 || (size_t)idx >= NCMDS)
		return;
	s->cmd = line;
	s->cmdlen = len;
	s->cmd_idx = idx;
	rc = cmds[idx].handler(s, arg, arglen);
	if (rc == CMD_OK)
		s->okcount[idx]++;
	s->cmd = NULL;
	s->cmdlen = 0;
}

/* ------------------------------------------------------------ handlers */

/* hello_check - one token: a Domain / address literal (or a name with '_') */
static int
hello_check(const char *arg, size_t len)
{
	size_t	i;
	int	alnum = 0;

	if (len == 0 || len > SMTP_DOMAIN_MAX)
		return -1;
	if (smtp_check_domain(arg, len) == 0)
		return 0;
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)arg[i];

		if (isalnum(c))
			alnum = 1;
		else if (c != '.' && c != '-' && c != '_')
			return -1;
	}
	return alnum ? 0 : -1;
}

/* hello_do - common part of EHLO/HELO once the name is valid */
static int
hello_do(struct smtpd_session *s, const char *arg, size_t len, int esmtp)
{
	char *h;

	if (hello_check(arg, len) == -1) {
		smtpd_reply(s, 501, 5, 5, 4, "Syntax: %s hostname",
		    esmtp ? "EHLO" : "HELO");
		return CMD_FAIL;
	}
	switch (smtpd_milter_gate(s, 'H', arg, len, NULL)) {
	case 1:
		return CMD_PENDING;
	case -1:
		return CMD_FAIL;
	}
	if ((h = strndup(arg, len)) == NULL) {
		smtpd_reply(s, 451, 4, 3, 0, "Error: out of memory");
		return CMD_FAIL;
	}
	smtpd_txn_free(s);		/* a second EHLO/HELO is an RSET */
	smtpd_bdat_reset(s);
	free(s->helo);
	s->helo = h;
	s->esmtp = esmtp;
	smtpd_set_state(s, SMTPD_READY);
	return CMD_OK;
}

static int
cmd_ehlo(struct smtpd_session *s, const char *arg, size_t len)
{
	char	fr[80] = "", until[32], by[32] = "";
	int	r;

	if ((r = hello_do(s, arg, len, 1)) != CMD_OK)
		return r;
	/* RFC 2852 2: "DELIVERBY" [SP min-by-time] */
	if (smtpd_cfg->deliverby_min > 0)
		(void)snprintf(by, sizeof(by), " %u", smtpd_cfg->deliverby_min);
	/* RFC 4865 4.2: FUTURERELEASE on submission listeners only, with
	 * the longest interval and the latest date-time accepted */
	if (s->submission && rfc3339_format(time(NULL) +
	    (time_t)smtpd_cfg->future_release_max, until, sizeof(until)) == 0)
		snprintf(fr, sizeof(fr), "\nFUTURERELEASE %u %s",
		    smtpd_cfg->future_release_max, until);
	smtpd_reply(s, 250, SMTPD_NOENH,
	    "%s\nPIPELINING\nSIZE %llu\n8BITMIME\nENHANCEDSTATUSCODES\nDSN\n"
	    "CHUNKING\nBINARYMIME\n"			/* RFC 3030 */
	    "MTRK\nDELIVERBY%s%s%s%s%s\nSMTPUTF8",
	    smtpd_cfg->hostname, (unsigned long long)smtpd_cfg->max_size, by,
	    fr,
	    (smtpd_tls_available() && !s->tls) ? "\nSTARTTLS" : "",
	    smtpd_auth_offered(s) ? "\nAUTH PLAIN LOGIN" : "",
	    /* RFC 8689 2: only in the EHLO reply after STARTTLS */
	    s->tls ? "\nREQUIRETLS" : "");
	return CMD_OK;
}

/*
 * mail_hold - RFC 4865 4.2: HOLDFOR / HOLDUNTIL within the advertised
 * limits (else 501 5.5.4), then the message waits in state timed.  A
 * HOLDUNTIL already past asks for no hold.  -1 after replying.
 */
static int
mail_hold(struct smtpd_session *s, const struct esmtp_params *ep,
    struct qmsg *m)
{
	time_t		now = time(NULL), until;
	char		text[48], when[32];

	if (ep->hold == HOLD_FOR) {
		if ((unsigned long)ep->hold_for > smtpd_cfg->future_release_max) {
			smtpd_reply(s, 501, 5, 5, 4, "HOLDFOR exceeds the "
			    "maximum of %u seconds",
			    smtpd_cfg->future_release_max);
			return -1;
		}
		until = now + (time_t)ep->hold_for;
		snprintf(text, sizeof(text), "for;%ld", ep->hold_for);
	} else {
		if (ep->hold_until > now +
		    (time_t)smtpd_cfg->future_release_max) {
			smtpd_reply(s, 501, 5, 5, 4, "HOLDUNTIL exceeds the "
			    "maximum release date-time");
			return -1;
		}
		until = ep->hold_until;
		snprintf(text, sizeof(text), "until;%s", ep->hold_text);
	}
	/* RFC 4865 5.2.2: not released after the DELIVERBY deadline */
	if (m->deliver_by != 0 && until > m->deliver_by) {
		smtpd_reply(s, 501, 5, 5, 4, "The release time is later than "
		    "the DELIVERBY deadline");
		return -1;
	}
	if (until <= now)
		return 0;
	if (rfc3339_format(until, when, sizeof(when)) == -1)
		when[0] = '\0';
	free(m->future_release);
	free(m->state_reason);
	free(m->state_actor);
	m->future_release = strdup(text);
	m->state_reason = NULL;
	if (when[0] != '\0' && asprintf(&m->state_reason, "release at %s",
	    when) < 0)
		m->state_reason = NULL;
	m->state_actor = strdup("protocol FUTURERELEASE");
	if (m->future_release == NULL || m->state_actor == NULL)
		return -2;
	m->state = MS_TIMED;
	m->hold_until = until;
	return 0;
}

static int
cmd_helo(struct smtpd_session *s, const char *arg, size_t len)
{
	int r;

	if ((r = hello_do(s, arg, len, 0)) != CMD_OK)
		return r;
	smtpd_reply(s, 250, SMTPD_NOENH, "%s", smtpd_cfg->hostname);
	return CMD_OK;
}

static int
cmd_starttls(struct smtpd_session *s, const char *arg, size_t len)
{
	(void)arg; (void)len;
	if (!smtpd_tls_available()) {
		smtpd_reply(s, 502, 5, 5, 1, "Error: command not implemented");
		return CMD_FAIL;
	}
	if (s->tls) {
		smtpd_reply(s, 554, 5, 5, 1, "Error: TLS already active");
		return CMD_FAIL;
	}
	smtpd_reply(s, 220, 2, 0, 0, "Ready to start TLS");
	smtpd_set_state(s, SMTPD_TLS);
	/* nothing more is read until the 220 is out (write callback,
	 * enabled by smtpd_flush in state TLS) */
	bufferevent_disable(s->bev, EV_READ);
	return CMD_OK;
}

/* params_reply - map an esmtp_parse_params error to a reply */
static void
params_reply(struct smtpd_session *s, enum param_result r, const char *why)
{
	if (why == NULL)
		why = "bad parameter";
	if (r == PARAM_UNKNOWN)
		smtpd_reply(s, 555, 5, 5, 4, "Unsupported option: %s", why);
	else
		smtpd_reply(s, 501, 5, 5, 4, "Bad parameter syntax: %s", why);
}

/*
 * mail_intl_check - RFC 6531 3.3, 3.5: a non-ASCII address needs the
 * SMTPUTF8 parameter (553 5.6.7, as Postfix answers) and a U-label
 * domain that libidn2 accepts (553 5.1.7 sender / 5.1.3 recipient);
 * 0, or -1 with the reply sent
 */
static int
mail_intl_check(struct smtpd_session *s, const struct mailpath *p,
    int smtputf8, int rcpt)
{
	char	ace[SMTP_DOMAIN_MAX + 1];

	if (!p->utf8)
		return 0;
	if (!smtputf8) {
		smtpd_reply(s, 553, 5, 6, 7, "Must declare SMTPUTF8 to send "
		    "a non-ASCII address");
		return -1;
	}
	if (p->domain[0] != '\0' &&
	    intl_domain_ascii(p->domain, ace, sizeof(ace)) == -1) {
		smtpd_reply(s, 553, 5, 1, rcpt ? 3 : 7, "Bad %s address "
		    "syntax: invalid internationalized domain",
		    rcpt ? "recipient" : "sender");
		return -1;
	}
	return 0;
}

static int
cmd_mail(struct smtpd_session *s, const char *arg, size_t len)
{
	struct mailpath		 p;
	struct esmtp_params	 ep;
	enum param_result	 pr;
	struct smtpd_txn	*t;
	const char		*rest, *why = NULL;
	size_t			 restlen;
	char			 addr[SMTP_LOCAL_MAX + SMTP_DOMAIN_MAX + 8];
	int			 r;

	/* check */
	r = smtp_parse_mail_arg("FROM:", arg, len, &p, &rest, &restlen, &why);
	if (r == -2) {
		smtpd_reply(s, 501, 5, 5, 4, "Syntax: MAIL FROM:<address>");
		return CMD_FAIL;
	}
	if (r == -1 && p.badutf8) {	/* RFC 3629: never stored */
		smtpd_reply(s, 553, 5, 1, 7,
		    "Bad sender address syntax: invalid UTF-8");
		return CMD_FAIL;
	}
	if (r == -1 || p.postmaster) {
		smtpd_reply(s, 501, 5, 1, 7, "Bad sender address syntax%s%s",
		    why != NULL && r == -1 ? ": " : "",
		    why != NULL && r == -1 ? why : "");
		return CMD_FAIL;
	}
	why = NULL;
	pr = esmtp_parse_params(rest, restlen, PARAM_MAIL,
	    SMTPD_EXTS_MAIL | (s->submission ? EXT_AUTH | EXT_FUTURERELEASE :
	    0) | (s->tls ? EXT_REQUIRETLS : 0), &ep, &why);
	if (pr != PARAM_OK) {
		params_reply(s, pr, why);
		return CMD_FAIL;
	}
	if (mail_intl_check(s, &p, ep.smtputf8, 0) == -1)
		return CMD_FAIL;
	if (ep.has_size && ep.size > smtpd_cfg->max_size) {
		smtpd_reply(s, 552, 5, 3, 4,
		    "Message size exceeds fixed maximum message size");
		return CMD_FAIL;
	}
	/* RFC 2852 2: by-mode R below the advertised min-by-time */
	if (ep.has_by && (ep.by_mode & ESMTP_BY_RETURN) &&
	    ep.by_time < (long)smtpd_cfg->deliverby_min) {
		smtpd_reply(s, 555, 5, 5, 4, "BY time %ld is below the "
		    "DELIVERBY minimum of %u seconds", ep.by_time,
		    smtpd_cfg->deliverby_min);
		return CMD_FAIL;
	}
	if (smtp_path_string(&p, addr, sizeof(addr)) == -1) {
		smtpd_reply(s, 501, 5, 1, 7, "Bad sender address syntax");
		return CMD_FAIL;
	}
	if (!queue_free_space_ok()) {
		smtpd_reply(s, 452, 4, 3, 1, "Insufficient system storage");
		return CMD_FAIL;
	}
	switch (smtpd_milter_gate(s, 'M', arg, len, addr)) {
	case 1:
		return CMD_PENDING;
	case -1:
		return CMD_FAIL;
	}

	/* act */
	if ((t = calloc(1, sizeof(*t))) == NULL)
		goto nomem;
	t->fd = -1;
	if ((t->m = qmsg_new()) == NULL || (t->m->sender = strdup(addr)) == NULL ||
	    (s->auth_user != NULL &&
	    (t->m->auth_user = strdup(s->auth_user)) == NULL) ||
	    (ep.has_envid && (t->m->envid = strdup(ep.envid)) == NULL) ||
	    (ep.has_mtrk &&
	    (t->m->mtrk_certifier = strdup(ep.mtrk_cert)) == NULL)) {
		if (t->m != NULL)
			qmsg_free(t->m);
		free(t);
		goto nomem;
	}
	t->m->ret = ep.ret;			/* RFC 3461 / RFC 3885 */
	t->m->intl = ep.smtputf8 ? QM_SMTPUTF8 : 0;	/* RFC 6531 */
	t->m->mtrk_timeout = ep.has_mtrk ? ep.mtrk_timeout : 0;
	t->m->requiretls = ep.requiretls;	/* RFC 8689 4.1: the tag */
	if (ep.has_by) {			/* RFC 2852 4: absolute */
		t->m->deliver_by = time(NULL) + (time_t)ep.by_time;
		t->m->by_flags = ep.by_mode;
	}
	if (ep.hold && (r = mail_hold(s, &ep, t->m)) != 0) {
		qmsg_free(t->m);
		free(t);
		if (r == -2)
			goto nomem;
		return CMD_FAIL;
	}
	t->binary = (ep.body == BODY_BINARYMIME);	/* RFC 3030 3 */
	s->txn = t;
	smtpd_bdat_reset(s);
	smtpd_set_state(s, SMTPD_MAIL);
	smtpd_flow_mail(s);	/* 250 now, or after in_flow_delay */
	return CMD_OK;
nomem:
	smtpd_reply(s, 452, 4, 3, 1, "Insufficient system storage");
	return CMD_FAIL;
}

/*
 * leading_dot_local - "TO:<.x@local.domain>": not a valid Dot-string,
 * but refused as an unsafe local part (550 5.1.3) rather than a syntax
 * error when the path parses with the dot replaced and the domain is
 * local.  Works on a copy: parsers never see modified input.
 */
static int
leading_dot_local(const char *arg, size_t len)
{
	static char	 copy[SMTPD_LINE_MAX];
	struct mailpath	 p;
	const char	*rest, *why;
	size_t		 restlen, i;

	if (len >= sizeof(copy))
		return 0;
	memcpy(copy, arg, len);
	for (i = 0; i + 1 < len && copy[i] != '<'; i++)
		;
	if (i + 1 >= len || copy[i + 1] != '.')
		return 0;
	copy[i + 1] = 'x';
	if (smtp_parse_mail_arg("TO:", copy, len, &p, &rest, &restlen,
	    &why) != 0 || p.null || p.postmaster)
		return 0;
	return cfg_is_local_domain(smtpd_cfg, p.domain);
}

/* alias_is_local - aliases_expand's test for a local domain */
static int
alias_is_local(const char *domain, void *arg)
{
	(void)arg;
	return cfg_is_local_domain(smtpd_cfg, domain);
}

/* rcpt_find - index of addr among m's recipients (expanded ones only when
 * expanded is set, else the others), -1 if absent */
static ssize_t
rcpt_find(const struct qmsg *m, const char *addr, int expanded)
{
	size_t	i;

	for (i = 0; i < m->nrcpts; i++)
		if ((m->rcpts[i].status == RS_EXPANDED) == (expanded != 0) &&
		    strcasecmp(m->rcpts[i].addr, addr) == 0)
			return (ssize_t)i;
	return -1;
}

/* rcpt_push - append a recipient with its DSN values; 0 or -1 */
static int
rcpt_push(struct qmsg *m, const char *addr, unsigned notify,
    const char *orcpt)
{
	struct qrcpt	*qr;

	if (qmsg_add_rcpt(m, addr) == -1)
		return -1;
	qr = &m->rcpts[m->nrcpts - 1];
	qr->notify = notify;
	if (orcpt != NULL && (qr->orcpt = strdup(orcpt)) == NULL)
		return -1;
	return 0;
}

/*
 * rcpt_alias - expand addr when it is an alias (before queueing).
 * Returns 0 when addr is not an alias (the caller stores it), 1 when the
 * recipient was handled and 250 sent, -1 when an error reply was sent.
 * 1->1: the target replaces addr; NOTIFY, ORCPT (set to rfc822;addr when
 * the client gave none) and the message's MTRK pass (RFC 3461 5.2.7.2,
 * RFC 3885 3.3).  1->N (RFC 3461 5.2.7.3(c)): addr stays as a final
 * RS_EXPANDED recipient (the "expanded" DSN is sent for it when NOTIFY
 * has SUCCESS); each expansion gets NOTIFY without SUCCESS (NEVER when
 * nothing is left), the same ORCPT, and no_mtrk: MTRK is not passed
 * on to list members (RFC 3885 3.3).  Loop members are delivered to
 * their own mailbox; nesting deeper than ALIAS_DEPTH_MAX: 550 5.4.6;
 * more than max_recipients deliverable recipients: 452 4.5.3.
 */
static int
rcpt_alias(struct smtpd_session *s, const char *addr,
    const struct esmtp_params *ep)
{
	struct qmsg		*m = s->txn->m;
	struct qrcpt		*qr;
	char			**out = NULL, *orcpt = NULL;
	size_t			 nout = 0, i, live = 0, add = 0, n0 = m->nrcpts;
	unsigned		 notify;
	enum alias_result	 ar;
	int			 n;

	ar = aliases_expand(smtpd_cfg->alias_table, addr, alias_is_local,
	    NULL, smtpd_cfg->max_recipients, &out, &nout);
	switch (ar) {
	case ALIAS_NONE:
		return 0;
	case ALIAS_EXPANDED:
		break;
	case ALIAS_ERR_DEPTH:
		log_info("session=%s alias <%s> nested deeper than %d",
		    s->sid, addr, ALIAS_DEPTH_MAX);
		smtpd_reply(s, 550, 5, 4, 6, "Recipient address rejected: "
		    "alias nesting too deep (loop?)");
		return -1;
	case ALIAS_ERR_TOOMANY:
		smtpd_reply(s, 452, 4, 5, 3, "Error: Too many recipients "
		    "after alias expansion");
		return -1;
	default:
		goto nomem;
	}
	if (ep->has_orcpt)
		orcpt = strdup(ep->orcpt);
	else if ((n = asprintf(&orcpt, "rfc822;%s", addr)) < 0)
		orcpt = NULL;
	if (orcpt == NULL)
		goto nomem;

	if (nout == 1) {			/* 1->1: an ordinary hop */
		if (rcpt_find(m, out[0], 0) < 0 &&
		    rcpt_push(m, out[0], ep->notify, orcpt) == -1)
			goto undo;
		log_info("session=%s alias <%s> -> <%s>", s->sid, addr, out[0]);
		goto ok;
	}

	/* 1->N */
	if (rcpt_find(m, addr, 1) >= 0)		/* the same list again */
		goto ok;
	for (i = 0; i < m->nrcpts; i++)
		if (m->rcpts[i].status != RS_EXPANDED)
			live++;
	for (i = 0; i < nout; i++)
		if (rcpt_find(m, out[i], 0) < 0)
			add++;
	if (live + add > smtpd_cfg->max_recipients) {
		free(orcpt);
		aliases_strv_free(out, nout);
		smtpd_reply(s, 452, 4, 5, 3, "Error: Too many recipients "
		    "after alias expansion");
		return -1;
	}
	if (rcpt_push(m, addr, ep->notify, ep->has_orcpt ? ep->orcpt : NULL)
	    == -1)
		goto undo;
	qr = &m->rcpts[m->nrcpts - 1];
	qr->status = RS_EXPANDED;
	qr->next_attempt = 0;
	qr->last_attempt = time(NULL);
	qr->last_code = 250;
	(void)snprintf(qr->last_enh, sizeof(qr->last_enh), "2.1.5");
	if (asprintf(&qr->last_text, "expanded to %zu recipients", nout) < 0) {
		qr->last_text = NULL;
		goto undo;
	}
	notify = ep->notify;
	if (notify & DSN_NOTIFY_SUCCESS) {
		notify &= ~DSN_NOTIFY_SUCCESS;
		if (notify == 0)
			notify = DSN_NOTIFY_NEVER;
	}
	for (i = 0; i < nout; i++) {
		if (rcpt_find(m, out[i], 0) >= 0)
			continue;
		if (rcpt_push(m, out[i], notify, orcpt) == -1)
			goto undo;
		m->rcpts[m->nrcpts - 1].no_mtrk = 1;	/* no MTRK: RFC 3885 3.3 */
	}
	log_info("session=%s alias <%s> expanded to %zu recipients", s->sid,
	    addr, nout);
ok:
	free(orcpt);
	aliases_strv_free(out, nout);
	s->txn->naccepted++;
	smtpd_set_state(s, SMTPD_RCPT);
	smtpd_reply(s, 250, 2, 1, 5, "Ok");
	return 1;
undo:
	while (m->nrcpts > n0) {
		qr = &m->rcpts[--m->nrcpts];
		free(qr->addr);
		free(qr->orcpt);
		free(qr->last_text);
		free(qr->remote_mta);
	}
nomem:
	free(orcpt);
	aliases_strv_free(out, nout);
	smtpd_reply(s, 452, 4, 3, 1, "Insufficient system storage");
	return -1;
}

/* rcpt_same - one address: equal without regard to ASCII case, or, for
 * UTF-8 addresses, in the compared form (NFC local part, A-labels) */
static int
rcpt_same(const char *a, const char *b)
{
	char	ka[2 * (SMTP_LOCAL_MAX + SMTP_DOMAIN_MAX) + 8];
	char	kb[sizeof(ka)];

	if (strcasecmp(a, b) == 0)
		return 1;
	if (!str_nonascii(a, strlen(a)) && !str_nonascii(b, strlen(b)))
		return 0;
	if (intl_addr_key(a, ka, sizeof(ka)) == -1 ||
	    intl_addr_key(b, kb, sizeof(kb)) == -1)
		return 0;
	return strcasecmp(ka, kb) == 0;
}

static int
cmd_rcpt(struct smtpd_session *s, const char *arg, size_t len)
{
	struct mailpath		 p;
	struct esmtp_params	 ep;
	enum param_result	 pr;
	struct smtpd_txn	*t = s->txn;
	const char		*rest, *why = NULL;
	size_t			 restlen, i;
	char			 addr[SMTP_LOCAL_MAX + SMTP_DOMAIN_MAX + 16];
	int			 r, n, dup = 0;

	/* check */
	if (t->bdat) {			/* RFC 3030 2 */
		smtpd_reply(s, 503, 5, 5, 1, "Error: RCPT after BDAT");
		return CMD_FAIL;
	}
	r = smtp_parse_mail_arg("TO:", arg, len, &p, &rest, &restlen, &why);
	if (r == -2) {
		smtpd_reply(s, 501, 5, 5, 4, "Syntax: RCPT TO:<address>");
		return CMD_FAIL;
	}
	if (r == -1 && p.badutf8) {	/* RFC 3629: never stored */
		smtpd_reply(s, 553, 5, 1, 3,
		    "Bad recipient address syntax: invalid UTF-8");
		return CMD_FAIL;
	}
	if (r == -1 && leading_dot_local(arg, len)) {
		smtpd_reply(s, 550, 5, 1, 3,
		    "Recipient address rejected: local part not allowed");
		return CMD_FAIL;
	}
	if (r == -1 || p.null) {
		smtpd_reply(s, 501, 5, 1, 3, "Bad recipient address syntax%s%s",
		    r == -1 && why != NULL ? ": " : "",
		    r == -1 && why != NULL ? why : "");
		return CMD_FAIL;
	}
	why = NULL;
	pr = esmtp_parse_params(rest, restlen, PARAM_RCPT, SMTPD_EXTS |
	    ((t->m->intl & QM_SMTPUTF8) ? EXT_SMTPUTF8 : 0), &ep, &why);
	if (pr != PARAM_OK) {
		params_reply(s, pr, why);
		return CMD_FAIL;
	}
	if (mail_intl_check(s, &p, (t->m->intl & QM_SMTPUTF8) != 0, 1) == -1)
		return CMD_FAIL;
	if (t->naccepted >= smtpd_cfg->max_recipients) {
		smtpd_reply(s, 452, 4, 5, 3, "Error: Too many recipients");
		return CMD_FAIL;
	}
	if (p.postmaster) {
		/* <Postmaster>: postmaster at the first local domain */
		n = snprintf(addr, sizeof(addr), "postmaster@%s",
		    smtpd_cfg->nlocal_domains > 0 ?
		    smtpd_cfg->local_domains[0] : smtpd_cfg->hostname);
		if (n < 0 || (size_t)n >= sizeof(addr)) {
			smtpd_reply(s, 501, 5, 1, 3, "Bad recipient address syntax");
			return CMD_FAIL;
		}
	} else {
		if (cfg_is_local_domain(smtpd_cfg, p.domain)) {
			if (!p.quoted && strcasecmp(p.local, "postmaster") == 0)
				;	/* always accepted */
			else if (smtp_local_unsafe(&p)) {
				smtpd_reply(s, 550, 5, 1, 3,
				    "Recipient address rejected: "
				    "local part not allowed");
				return CMD_FAIL;
			} else if (!cfg_local_rcpt_ok(smtpd_cfg, p.local,
			    p.domain) && (p.quoted || (aliases_lookup(
			    smtpd_cfg->alias_table, p.local, p.domain) == NULL &&
			    !smtpd_lists_known(p.local, p.domain)))) {
				smtpd_reply(s, 550, 5, 1, 1, "Recipient address "
				    "rejected: User unknown");
				return CMD_FAIL;
			}
		} else if (s->auth_user == NULL && !cfg_relay_allowed(smtpd_cfg,
		    (const struct sockaddr *)&s->ss)) {
			smtpd_reply(s, 550, 5, 7, 1, "Relay access denied");
			return CMD_FAIL;
		}
		if (smtp_path_string(&p, addr, sizeof(addr)) == -1) {
			smtpd_reply(s, 501, 5, 1, 3, "Bad recipient address syntax");
			return CMD_FAIL;
		}
	}

	switch (smtpd_milter_gate(s, 'R', arg, len, addr)) {
	case 1:
		return CMD_PENDING;
	case -1:
		return CMD_FAIL;
	}

	/* act: lists (smtpd_lists.c), then aliases (RFC 3461 5.2.7) */
	if ((r = smtpd_lists_rcpt(s, addr, &ep)) != 0)
		return r == 1 ? CMD_OK : CMD_FAIL;
	if (smtpd_cfg->alias_table != NULL) {
		r = rcpt_alias(s, addr, &ep);
		if (r != 0)
			return r == 1 ? CMD_OK : CMD_FAIL;
	}
	/* the same address twice in one transaction is stored once */
	for (i = 0; i < t->m->nrcpts; i++)
		if (rcpt_same(t->m->rcpts[i].addr, addr)) {
			dup = 1;
			break;
		}
	if (!dup && qmsg_add_rcpt(t->m, addr) == -1) {
		smtpd_reply(s, 452, 4, 3, 1, "Insufficient system storage");
		return CMD_FAIL;
	}
	if (!dup) {		/* RFC 3461 NOTIFY / ORCPT of the first one */
		struct qrcpt *qr = &t->m->rcpts[t->m->nrcpts - 1];

		qr->notify = ep.notify;
		if (ep.has_orcpt && (qr->orcpt = strdup(ep.orcpt)) == NULL) {
			free(qr->addr);
			t->m->nrcpts--;
			smtpd_reply(s, 452, 4, 3, 1,
			    "Insufficient system storage");
			return CMD_FAIL;
		}
	}
	t->naccepted++;
	smtpd_set_state(s, SMTPD_RCPT);
	smtpd_reply(s, 250, 2, 1, 5, "Ok");
	return CMD_OK;
}

static int
cmd_data(struct smtpd_session *s, const char *arg, size_t len)
{
	(void)arg; (void)len;
	if (s->txn->bdat) {		/* RFC 3030 2: no mixing; RSET needed */
		smtpd_reply(s, 503, 5, 5, 1, "Error: DATA after BDAT");
		smtpd_txn_free(s);
		smtpd_set_state(s, SMTPD_READY);
		s->bdat_failed = 1;
		return CMD_FAIL;
	}
	if (s->txn->binary) {		/* RFC 3030 3 */
		smtpd_reply(s, 503, 5, 5, 1, "BINARYMIME requires BDAT");
		return CMD_FAIL;
	}
	if (s->state != SMTPD_RCPT) {
		smtpd_reply(s, 554, 5, 5, 1, "Error: no valid recipients");
		return CMD_FAIL;
	}
	switch (smtpd_milter_gate(s, 'T', arg, len, NULL)) {
	case 1:
		return CMD_PENDING;
	case -1:
		return CMD_FAIL;
	}
	if (smtpd_data_begin(s) == -1) {
		smtpd_reply(s, 451, 4, 3, 0, "Local error in processing");
		return CMD_FAIL;
	}
	smtpd_reply(s, 354, SMTPD_NOENH, "End data with <CR><LF>.<CR><LF>");
	return CMD_PENDING;
}

static int
cmd_rset(struct smtpd_session *s, const char *arg, size_t len)
{
	(void)arg; (void)len;
	smtpd_txn_free(s);
	smtpd_bdat_reset(s);
	if (s->state != SMTPD_GREETING)
		smtpd_set_state(s, SMTPD_READY);
	smtpd_reply(s, 250, 2, 0, 0, "Ok");
	return CMD_OK;
}

static int
cmd_noop(struct smtpd_session *s, const char *arg, size_t len)
{
	(void)arg; (void)len;
	smtpd_reply(s, 250, 2, 0, 0, "Ok");
	return CMD_OK;
}

static int
cmd_vrfy(struct smtpd_session *s, const char *arg, size_t len)
{
	(void)arg;
	if (len == 0) {
		smtpd_reply(s, 501, 5, 5, 4, "Syntax: VRFY address");
		return CMD_FAIL;
	}
	smtpd_reply(s, 252, 2, 5, 0, "Cannot VRFY user, but will accept "
	    "message and attempt delivery");
	return CMD_OK;
}

static int
cmd_help(struct smtpd_session *s, const char *arg, size_t len)
{
	(void)arg; (void)len;
	smtpd_reply(s, 214, 2, 0, 0, "Commands: EHLO HELO MAIL RCPT DATA BDAT "
	    "RSET NOOP QUIT VRFY HELP%s", smtpd_tls_available() ? " STARTTLS" : "");
	return CMD_OK;
}

static int
cmd_quit(struct smtpd_session *s, const char *arg, size_t len)
{
	(void)arg; (void)len;
	smtpd_txn_free(s);
	smtpd_reply(s, 221, 2, 0, 0, "Bye");
	smtpd_close_after_flush(s);
	return CMD_OK;
}

static int
cmd_auth(struct smtpd_session *s, const char *arg, size_t len)
{
	/* success is counted by smtpd_auth.c when it happens */
	return smtpd_auth_cmd(s, arg, len) == -1 ? CMD_FAIL : CMD_PENDING;
}

static int
cmd_bdat(struct smtpd_session *s, const char *arg, size_t len)
{
	return smtpd_bdat_cmd(s, arg, len);	/* CMD_* values */
}

/* smtpd_reset_after_tls - RFC 3207 4.2: forget everything learned before */
void
smtpd_reset_after_tls(struct smtpd_session *s)
{
	smtpd_txn_free(s);
	smtpd_auth_free(s);		/* including an AUTH before STARTTLS */
	free(s->helo);
	s->helo = NULL;
	s->esmtp = 0;
	smtpd_set_state(s, SMTPD_GREETING);
}
