#include "config.h"
/*
 * smtpd_reply.c - every reply the SMTP server sends.
 * Owns: "code x.y.z text" lines, multi-line replies (text lines are
 *       separated by '\n' in the format result), the log line for each
 *       4xx/5xx with the session id and the escaped command, the error
 *       limit, close-after-421.
 * Not here: choosing the reply (the command handlers do that).
 * Invariant: an enhanced code is always given except for 220 (greeting),
 *       the EHLO/HELO 250 and 3xx replies; its class equals the first
 *       digit of the basic code (RFC 2034).
 * Standards: RFC 5321 4.2, RFC 2034, RFC 3463.
 */

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>

#include "common/cfg.h"
#include "common/log.h"
#include "common/metrics.h"
#include "smtpd/smtpd_session.h"

/* smtpd_reply_check - does the code / enhanced code pair make sense? */
static int
smtpd_reply_check(int code, int cls, int subj, int det)
{
	if (code < 200 || code > 599)
		return -1;
	if (cls == 0)
		return (code == 220 || code == 250 || code / 100 == 3) ? 0 : -1;
	if (cls != code / 100 || subj < 0 || subj > 999 || det < 0 || det > 999)
		return -1;
	return 0;
}

/* smtpd_reply - format, send and (for 4xx/5xx) log one reply */
void
smtpd_reply(struct smtpd_session *s, int code, int cls, int subj, int det,
    const char *fmt, ...)
{
	static char	 text[1024];
	char		 etext[600], ecmd[300];
	struct evbuffer	*out;
	va_list		 ap;
	char		*p, *nl;
	int		 n;

	va_start(ap, fmt);
	n = vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	if (n < 0) {
		if (snprintf(text, sizeof(text), "Error") < 0)
			text[0] = '\0';
	} else if ((size_t)n >= sizeof(text))
		log_warnx("session=%s reply text truncated", s->sid);
	/* never send CR or other control characters in a reply */
	for (p = text; *p != '\0'; p++)
		if ((unsigned char)*p < 0x20 && *p != '\n')
			*p = '?';

	if (smtpd_reply_check(code, cls, subj, det) == -1) {
		log_warnx("session=%s internal: bad reply code %d %d.%d.%d",
		    s->sid, code, cls, subj, det);
		if (code < 200 || code > 599)
			code = 451;
		cls = code / 100;
		subj = det = 0;
	}

	out = bufferevent_get_output(s->bev);
	p = text;
	for (;;) {
		nl = strchr(p, '\n');
		if (nl != NULL)
			*nl = '\0';
		if (cls != 0)
			n = evbuffer_add_printf(out, "%d%c%d.%d.%d %s\r\n", code,
			    nl != NULL ? '-' : ' ', cls, subj, det, p);
		else
			n = evbuffer_add_printf(out, "%d%c%s\r\n", code,
			    nl != NULL ? '-' : ' ', p);
		if (n < 0)
			log_warnx("session=%s cannot queue reply", s->sid);
		if (nl == NULL)
			break;
		*nl = '\n';
		p = nl + 1;
	}

	if (code >= 400) {
		metrics_smtp_reject(code);
		s->errors++;
		log_escape(etext, sizeof(etext), text, strlen(text));
		if (s->cmd != NULL)
			log_escape(ecmd, sizeof(ecmd), s->cmd, s->cmdlen);
		else
			ecmd[0] = '\0';
		log_info("session=%s reject client=[%s] reply=\"%d %d.%d.%d %s\""
		    " cmd=\"%s\"", s->sid, s->addr, code, cls, subj, det,
		    etext, ecmd);
	}
	if (code == 421)
		smtpd_close_after_flush(s);
	else if (s->errors > SMTPD_ERROR_LIMIT && s->state != SMTPD_CLOSING) {
		s->errors = 0;	/* no recursion through the 421 below */
		smtpd_reply(s, 421, 4, 7, 0, "%s Error: too many errors",
		    smtpd_cfg->hostname);
	}
	/* inside smtpd_process the round's replies go out together */
	if (!s->in_process)
		smtpd_flush(s);
}
