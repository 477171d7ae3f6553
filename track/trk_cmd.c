#include "config.h"
/*
 * trk_cmd.c - the MTQP command dispatcher, the command handlers and
 * every response the MTQP server sends (RFC 3887 2-8).
 * Owns: the table {verb, handler, allowed states, flags}, the per-verb
 *       counters logged at disconnect, the greeting and its option list,
 *       TRACK (syntax, the TLS requirement; the answer is trk_answer.c's),
 *       STARTTLS (up to "+OK Begin TLS negotiation"; the switch is
 *       trk_server.c's), COMMENT, QUIT, the one-line reply function
 *       (logging each negative reply with the command) and the
 *       multi-line one (dot-stuffing, RFC 3887 2.3).
 * Check, then proceed: each handler validates syntax and state without
 *       side effects, then acts and replies exactly once.
 * Syntax: a verb (case-insensitive) and arguments separated by SP/HTAB;
 *       trailing white space is ignored (lenient).  TRACK's envid may be
 *       wrapped in one pair of <> (the RFC's examples), is xtext-decoded
 *       and must be 1-100 octets; the secret is base64 with or without
 *       '=' padding.  STARTTLS takes a host name or an IP literal (bare
 *       or in []), checked against the certificate (X509_check_host /
 *       X509_check_ip_asc).
 * Logs never hold a secret: for TRACK (F_SECRET) the command shown is
 *       the verb and the envid, the verb alone when no second argument
 *       follows (a lone argument may be the secret) and on a syntax
 *       error; for an unknown command only its verb.  The secret's
 *       copies (the padded text, the decoded octets) are wiped on every
 *       path.
 */

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <arpa/inet.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>

#include "common/cfg.h"
#include "common/log.h"
#include "common/syntax.h"
#include "common/util.h"
#include "track/trk_int.h"

/* handler results */
#define CMD_OK		0
#define CMD_FAIL	-1

/* flags */
#define F_NOARG		0x01	/* arguments get "-BAD Syntax: VERB" */
#define F_SECRET	0x02	/* log only the verb and the first argument,
				 * when a second one follows */

struct trk_cmd {
	const char	*verb;
	int		(*handler)(struct trk_session *, const char *, size_t);
	unsigned	 states;
	unsigned	 flags;
};

static int	cmd_track(struct trk_session *, const char *, size_t);
static int	cmd_starttls(struct trk_session *, const char *, size_t);
static int	cmd_comment(struct trk_session *, const char *, size_t);
static int	cmd_quit(struct trk_session *, const char *, size_t);

/* the order is the order of the disconnect counters */
static const struct trk_cmd cmds[] = {
	{ "TRACK",	cmd_track,	TRK_S(TRK_READY), F_SECRET },
	{ "STARTTLS",	cmd_starttls,	TRK_S(TRK_READY), 0 },
	{ "COMMENT",	cmd_comment,	TRK_S(TRK_READY), 0 },
	{ "QUIT",	cmd_quit,	TRK_S(TRK_READY), F_NOARG },
};
#define NCMDS		(sizeof(cmds) / sizeof(cmds[0]))
#define IDX_UNKNOWN	(TRK_NVERBS - 1)
_Static_assert(sizeof(cmds) / sizeof(cmds[0]) < TRK_NVERBS,
    "TRK_NVERBS too small");

/* is_wsp - RFC 5234 WSP */
static inline int
is_wsp(char c)
{
	return c == ' ' || c == '\t';
}

/* ------------------------------------------------------------- replies */

void
trk_reply(struct trk_session *s, const char *fmt, ...)
{
	char		 text[TRK_SRV_LINE_MAX + 1], etext[600], ecmd[300];
	va_list		 ap;
	char		*p;
	int		 n;

	va_start(ap, fmt);
	n = vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	if (n < 0 && snprintf(text, sizeof(text), "-TEMP/unavailable") < 0)
		text[0] = '\0';
	/* never CR, LF or other controls inside a response line */
	for (p = text; *p != '\0'; p++)
		if ((unsigned char)*p < 0x20 || (unsigned char)*p == 0x7f)
			*p = '?';
	if (evbuffer_add_printf(bufferevent_get_output(s->bev), "%s\r\n",
	    text) < 0)
		log_warnx("mtqp session=%s cannot queue a reply", s->sid);
	if (text[0] == '-' && !s->logged) {
		log_escape(etext, sizeof(etext), text, strlen(text));
		if (s->cmd != NULL)
			log_escape(ecmd, sizeof(ecmd), s->cmd, s->cmdlen);
		else
			ecmd[0] = '\0';
		log_info("mtqp session=%s reject client=[%s] reply=\"%s\" "
		    "cmd=\"%s\"", s->sid, s->addr, etext, ecmd);
	}
	s->logged = 0;
}

void
trk_reply_data(struct trk_session *s, const char *head, const char *body,
    size_t len)
{
	struct evbuffer	*out = bufferevent_get_output(s->bev);
	const char	*p = body, *end = body + len, *nl, *le;
	int		 rc = 0;

	rc |= evbuffer_add_printf(out, "%s\r\n", head) < 0;
	while (p < end) {
		nl = memchr(p, '\n', (size_t)(end - p));
		le = nl != NULL ? nl + 1 : end;
		/* RFC 3887 2.3: a data line starting with "." gets another */
		if (*p == '.')
			rc |= evbuffer_add(out, ".", 1);
		rc |= evbuffer_add(out, p, (size_t)(le - p));
		if (nl == NULL)
			rc |= evbuffer_add(out, "\r\n", 2);
		p = le;
	}
	rc |= evbuffer_add(out, ".\r\n", 3);
	if (rc != 0)
		log_warnx("mtqp session=%s cannot queue a reply", s->sid);
	s->logged = 0;
}

void
trk_greeting(struct trk_session *s)
{
	/* RFC 3887 3, 6: STARTTLS is listed while it can be used */
	if (trk_tls_available() && !s->tls) {
		if (evbuffer_add_printf(bufferevent_get_output(s->bev),
		    "+OK+/MTQP %s Waymark MTQP server ready\r\n"
		    "STARTTLS%s\r\n.\r\n", trk_cfg->hostname,
		    trk_cfg->mtqp_require_tls ? " required" : "") < 0)
			log_warnx("mtqp session=%s cannot queue a reply",
			    s->sid);
		return;
	}
	trk_reply(s, "+OK/MTQP %s Waymark MTQP server ready",
	    trk_cfg->hostname);
}

/* ---------------------------------------------------------- dispatcher */

void
trk_cmd_overlong(struct trk_session *s)
{
	s->cmd = "(overlong line)";
	s->cmdlen = strlen(s->cmd);
	s->count[IDX_UNKNOWN]++;
	trk_reply(s, "-BAD Line too long");
	s->cmd = NULL;
	s->cmdlen = 0;
}

void
trk_cmd_dispatch(struct trk_session *s, const char *line, size_t len)
{
	const struct trk_cmd	*c = NULL;
	char			 verb[16];
	const char		*arg;
	size_t			 vlen, arglen, i, idx;
	int			 rc;

	for (vlen = 0; vlen < len && !is_wsp(line[vlen]); vlen++)
		;
	/* the argument: leading and trailing white space skipped */
	for (arg = line + vlen; arg < line + len && is_wsp(*arg); arg++)
		;
	arglen = (size_t)(line + len - arg);
	while (arglen > 0 && is_wsp(arg[arglen - 1]))
		arglen--;
	for (i = 0; i < vlen && isalpha((unsigned char)line[i]); i++)
		;
	if (vlen > 0 && i == vlen && vlen < sizeof(verb)) {
		memcpy(verb, line, vlen);
		verb[vlen] = '\0';
		for (i = 0; i < NCMDS; i++)
			if (strcasecmp(cmds[i].verb, verb) == 0) {
				c = &cmds[i];
				break;
			}
	}
	s->cmd = line;
	s->cmdlen = vlen;		/* unknown: the verb only */
	if (c == NULL) {
		s->count[IDX_UNKNOWN]++;
		trk_reply(s, "-BAD Unrecognized command");
		goto done;
	}
	idx = (size_t)(c - cmds);
	s->count[idx]++;
	if (c->flags & F_SECRET) {
		/* the verb and the first argument when a second follows it
		 * (never the secret); else the verb alone */
		for (i = (size_t)(arg - line); i < len && !is_wsp(line[i]); i++)
			;
		s->cmdlen = i < (size_t)(arg - line) + arglen ? i : vlen;
	} else
		s->cmdlen = len;
	if (!(c->states & TRK_S(s->state))) {
		/* RFC 3887 2.3: a command in the wrong state gets -ERR */
		trk_reply(s, "-ERR Command not allowed now");
		goto done;
	}
	if ((c->flags & F_NOARG) && arglen > 0) {
		trk_reply(s, "-BAD Syntax: %s", c->verb);
		goto done;
	}
	rc = c->handler(s, arg, arglen);
	if (rc == CMD_OK)
		s->okcount[idx]++;
done:
	s->cmd = NULL;
	s->cmdlen = 0;
}

/* verb_name - the counters' name of index i: the verb, "unknown", NULL */
static const char *
verb_name(size_t i)
{
	return i < NCMDS ? cmds[i].verb : i == IDX_UNKNOWN ? "unknown" : NULL;
}

int
trk_cmd_counters(const struct trk_session *s, char *out, size_t outlen)
{
	return verb_counters(out, outlen, verb_name, s->okcount, s->count,
	    TRK_NVERBS);
}

/* ------------------------------------------------------------ handlers */

/* next_token - the token at *p (up to WSP or end), *p moved past the
 * WSP after it; its length, 0 at the end */
static size_t
next_token(const char **p, const char *end, const char **tok)
{
	const char	*q = *p;
	size_t		 n;

	*tok = q;
	while (q < end && !is_wsp(*q))
		q++;
	n = (size_t)(q - *tok);
	while (q < end && is_wsp(*q))
		q++;
	*p = q;
	return n;
}

/* secret_decode - base64, '=' padding optional; decoded length or -1 */
static int
secret_decode(const char *s, size_t len, unsigned char *out, size_t outlen)
{
	char	padded[TRK_SRV_LINE_MAX + 4];
	size_t	n = len;

	int	r;

	if (len == 0 || len > TRK_SRV_LINE_MAX || len % 4 == 1)
		return -1;
	memcpy(padded, s, len);
	while (n % 4 != 0)
		padded[n++] = '=';
	r = base64_decode(padded, n, out, outlen);
	explicit_bzero(padded, n);
	return r;
}

/* cmd_track - RFC 3887 4: "TRACK" 1*WSP unique-envid 1*WSP mtrk-secret */
static int
cmd_track(struct trk_session *s, const char *arg, size_t len)
{
	static unsigned char	 a[TRK_SECRET_MAX];
	char			 envid[ESMTP_ENVID_MAX + 1];
	const char		*p = arg, *end = arg + len, *etok, *stok, *x;
	size_t			 elen, slen, n;
	int			 alen, rc;

	elen = next_token(&p, end, &etok);
	slen = next_token(&p, end, &stok);
	/* one pair of <> around the envid is accepted (RFC 3887 4.1) */
	if (elen >= 2 && etok[0] == '<' && etok[elen - 1] == '>') {
		etok++;
		elen -= 2;
	}
	if (elen == 0 || slen == 0 || next_token(&p, end, &x) != 0 ||
	    xtext_decode(etok, elen, envid, sizeof(envid)) == -1 ||
	    envid[0] == '\0' ||
	    (alen = secret_decode(stok, slen, a, sizeof(a))) <= 0) {
		explicit_bzero(a, sizeof(a));
		/* which argument is the secret is unknown: the verb alone */
		for (n = 0; n < s->cmdlen && !is_wsp(s->cmd[n]); n++)
			;
		s->cmdlen = n;
		trk_reply(s, "-BAD Syntax: TRACK unique-envid mtrk-secret");
		return CMD_FAIL;
	}
	if (trk_cfg->mtqp_require_tls && !s->tls) {
		explicit_bzero(a, sizeof(a));
		trk_reply(s, "-ERR/tls-required TLS required: use STARTTLS "
		    "first");
		return CMD_FAIL;
	}
	rc = trk_answer_start(s, envid, a, (size_t)alen);
	explicit_bzero(a, sizeof(a));
	return rc == -1 ? CMD_FAIL : CMD_OK;
}

/* check_name - STARTTLS's parameter: a host name ("mtqp.example.com",
 * one trailing dot allowed) or an IP literal ("192.0.2.1", "::1",
 * "[::1]", "[IPv6:::1]"), copied into out without brackets or dot */
static int
check_name(const char *s, size_t len, char *out, size_t outlen)
{
	unsigned char	 ip[16];
	size_t		 i, label = 0;

	if (len >= 2 && s[0] == '[' && s[len - 1] == ']') {
		s++;
		len -= 2;
		if (len > 5 && strncasecmp(s, "IPv6:", 5) == 0) {
			s += 5;
			len -= 5;
		}
		if (len == 0 || len >= outlen)
			return -1;
		memcpy(out, s, len);
		out[len] = '\0';
		return inet_pton(AF_INET, out, ip) == 1 ||
		    inet_pton(AF_INET6, out, ip) == 1 ? 0 : -1;
	}
	if (len > 1 && s[len - 1] == '.')
		len--;
	if (len == 0 || len > 253 || len >= outlen)
		return -1;
	memcpy(out, s, len);
	out[len] = '\0';
	if (inet_pton(AF_INET6, out, ip) == 1)
		return 0;
	for (i = 0; i < len; i++) {
		if (s[i] == '.') {
			if (label == 0 || s[i - 1] == '-')
				return -1;
			label = 0;
			continue;
		}
		if (!isalnum((unsigned char)s[i]) && s[i] != '-' &&
		    s[i] != '_')
			return -1;
		if ((label == 0 && s[i] == '-') || ++label > 63)
			return -1;
	}
	return label > 0 && s[len - 1] != '-' ? 0 : -1;
}

/* cmd_starttls - RFC 3887 6: "STARTTLS" 1*WSP domain *WSP */
static int
cmd_starttls(struct trk_session *s, const char *arg, size_t len)
{
	char		 name[256];
	const char	*p = arg, *tok, *x;
	size_t		 n;

	if (s->tls) {
		trk_reply(s, "-BAD/tls-in-progress TLS already active");
		return CMD_FAIL;
	}
	if (!trk_tls_available()) {
		trk_reply(s, "-BAD/unsupported STARTTLS not available");
		return CMD_FAIL;
	}
	n = next_token(&p, arg + len, &tok);
	if (n == 0 || next_token(&p, arg + len, &x) != 0 ||
	    check_name(tok, n, name, sizeof(name)) == -1) {
		trk_reply(s, "-BAD Syntax: STARTTLS fqdn");
		return CMD_FAIL;
	}
	if (!trk_tls_name_ok(name)) {
		trk_reply(s, "-BAD/bad-fqdn FQDN does not match the "
		    "certificate");
		return CMD_FAIL;
	}
	trk_reply(s, "+OK Begin TLS negotiation");
	/* the switch happens once the reply is flushed (trk_server.c) */
	trk_set_state(s, TRK_TLS);
	return CMD_OK;
}

/* cmd_comment - RFC 3887 5: always a success, the text is ignored */
static int
cmd_comment(struct trk_session *s, const char *arg, size_t len)
{
	(void)arg;
	(void)len;
	trk_reply(s, "+OK");
	return CMD_OK;
}

/* cmd_quit - RFC 3887 7 */
static int
cmd_quit(struct trk_session *s, const char *arg, size_t len)
{
	(void)arg;
	(void)len;
	trk_reply(s, "+OK Bye");
	trk_close_after_flush(s);
	return CMD_OK;
}
