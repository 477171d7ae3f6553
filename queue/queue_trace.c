#include "config.h"
/*
 * queue_trace.c - the Received: field of the SMTP hop (RFC 5321 4.4,
 * RFC 3848 "with" keywords).
 * Entry point: queue_trace_received.
 * Layout (folded with "\n\t", no final line end, as qmsg.trace says):
 *   Received: from HELO (RDNS [LITERAL])
 *   	(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384)
 *   	by HOSTNAME with ESMTPS id QID
 *   	for <rcpt>; DATE
 * A REQUIRETLS message (RFC 8689 2) has "with ESMTPS (REQUIRETLS) id QID":
 * a comment, as RFC 8689 defines no clause.
 * From-domain is the HELO name when it is a valid Domain or address
 * literal, else the client's address literal; the TLS line only when
 * m->tls; "for" only with exactly one recipient; DATE = m->arrival.
 * RFC 6729: a message held from reception (m->state not normal) gets
 *   	state KEYWORD[/VALUE] (REASON)
 * before the "; DATE" of that field (an Additional-Registered-Clause of
 * RFC 5321 4.4); a later entry into a state, and the release, get a
 * field of their own (queue_trace_state):
 *   Received: from HOSTNAME
 *   	by HOSTNAME id QID
 *   	state KEYWORD[/VALUE] (REASON); DATE
 * The reason is a comment: printable ASCII, "(", ")" and "\" quoted,
 * at most TRACE_REASON_MAX octets.
 */

#include <stdio.h>
#include <string.h>

#include "common/syntax.h"
#include "common/util.h"
#include "queue/queue_int.h"

#define TRACE_REASON_MAX	200

/* state_clause - "\n\tstate KW[/VALUE][ (REASON)]" into out */
static int
state_clause(enum msg_state st, const char *value, const char *reason,
    char *out, size_t outlen)
{
	char	 com[2 * TRACE_REASON_MAX + 4];
	size_t	 i, o = 0;
	int	 n;

	if (value != NULL && mime_check_token(value, strlen(value)) == -1)
		value = NULL;		/* never a malformed clause */
	if (reason != NULL && *reason != '\0') {
		com[o++] = ' ';
		com[o++] = '(';
		for (i = 0; reason[i] != '\0' && i < TRACE_REASON_MAX; i++) {
			unsigned char c = (unsigned char)reason[i];

			if (c == '(' || c == ')' || c == '\\')
				com[o++] = '\\';
			com[o++] = c < 0x20 || c >= 0x7f ? '?' : (char)c;
		}
		com[o++] = ')';
	}
	com[o] = '\0';
	n = snprintf(out, outlen, "\n\tstate %s%s%s%s", msg_state_name(st),
	    value ? "/" : "", value ? value : "", com);
	return n < 0 || (size_t)n >= outlen ? -1 : 0;
}

/* queue_trace_state - the field of a later entry into st, or a release */
int
queue_trace_state(const struct qmsg *m, const char *hostname,
    enum msg_state st, const char *value, const char *reason, time_t when,
    char *out, size_t outlen)
{
	char	clause[2 * TRACE_REASON_MAX + 300], date[64];
	int	n;

	if (state_clause(st, value, reason, clause, sizeof(clause)) == -1 ||
	    rfc5322_date(when, date, sizeof(date)) == -1)
		return -1;
	n = snprintf(out, outlen, "Received: from %s\n\tby %s id %s%s; %s",
	    hostname, hostname, m->qid, clause, date);
	return n < 0 || (size_t)n >= outlen ? -1 : 0;
}

/* addr_literal - "[192.0.2.1]" / "[IPv6:2001:db8::1]" from a text address */
static int
addr_literal(const char *addr, char *out, size_t outlen)
{
	int	n;

	if (addr == NULL || *addr == '\0' ||
	    strspn(addr, "0123456789abcdefABCDEF.:%") != strlen(addr))
		n = snprintf(out, outlen, "[unknown]");
	else if (strchr(addr, ':') != NULL)
		n = snprintf(out, outlen, "[IPv6:%s]", addr);
	else
		n = snprintf(out, outlen, "[%s]", addr);
	return n < 0 || (size_t)n >= outlen ? -1 : 0;
}

/* name_ok - a domain we may copy into the field (no spaces, parens, CR/LF) */
static int
name_ok(const char *s)
{
	return s != NULL && *s != '\0' && strlen(s) <= SMTP_DOMAIN_MAX &&
	    smtp_check_domain(s, strlen(s)) == 0;
}

int
queue_trace_received(const struct qmsg *m, const char *hostname,
    const char *proto, char *out, size_t outlen)
{
	char		 lit[80], date[64], tls[160], forpart[SMTP_PATH_MAX + 16];
	char		 clause[2 * TRACE_REASON_MAX + 300] = "";
	const char	*from, *sp;
	const char	*rtls = m->requiretls ? " (REQUIRETLS)" : "";
	int		 n;

	if (addr_literal(m->client_addr, lit, sizeof(lit)) == -1 ||
	    rfc5322_date(m->arrival, date, sizeof(date)) == -1)
		return -1;
	from = name_ok(m->helo) ? m->helo : lit;
	tls[0] = '\0';
	if (m->tls != NULL && *m->tls != '\0') {
		if ((sp = strchr(m->tls, ' ')) != NULL)
			n = snprintf(tls, sizeof(tls), "\n\t(using %.*s with "
			    "cipher %s)", (int)(sp - m->tls), m->tls, sp + 1);
		else
			n = snprintf(tls, sizeof(tls), "\n\t(using %s)", m->tls);
		if (n < 0 || (size_t)n >= sizeof(tls))
			return -1;
	}
	forpart[0] = '\0';
	if (m->nrcpts == 1 && m->rcpts[0].addr != NULL) {
		n = snprintf(forpart, sizeof(forpart), "\n\tfor <%s>",
		    m->rcpts[0].addr);
		if (n < 0 || (size_t)n >= sizeof(forpart))
			return -1;
	}
	if (m->state != MS_NORMAL && state_clause(m->state, m->state_value,
	    m->state_reason, clause, sizeof(clause)) == -1)
		return -1;
	if (name_ok(m->client_name))
		n = snprintf(out, outlen, "Received: from %s (%s %s)%s\n\tby %s "
		    "with %s%s id %s%s%s; %s", from, m->client_name, lit, tls,
		    hostname, proto, rtls, m->qid, forpart, clause, date);
	else
		n = snprintf(out, outlen, "Received: from %s (%s)%s\n\tby %s "
		    "with %s%s id %s%s%s; %s", from, lit, tls, hostname, proto,
		    rtls, m->qid, forpart, clause, date);
	return n < 0 || (size_t)n >= outlen ? -1 : 0;
}
