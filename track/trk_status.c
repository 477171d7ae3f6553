#include "config.h"
/*
 * trk_status.c - the message/tracking-status composer (RFC 3886 3): a
 * pure function from a message's records to the body of one part, as
 * the MTQP server (RFC 3887 4) sends it inside its multipart/related.
 * Entry points: trk_status_write, trk_action (see track.h).
 * Layout: Original-Envelope-Id, Reporting-MTA (dns), Arrival-Date; then
 *       per recipient, after a blank line: Original-Recipient (the
 *       ORCPT, else "rfc822; " + the address as received: RFC 3886 makes
 *       it required), Final-Recipient, Action, Status, [Remote-MTA],
 *       [Last-Attempt-Date], [Will-Retry-Until], then extension fields
 *       (Diagnostic-Code, X-Waymark-Handling-State).
 * Mapping (recipient status, message state -> Action, Status, extras):
 *   queued/deferred, not held -> delayed, the last 4.x.x reply code
 *       (else 4.0.0); Will-Retry-Until = (expire_base or arrival) +
 *       queue_lifetime, earlier when DELIVERBY mode R fails it first
 *   queued/deferred, held (state not normal/outbound) -> delayed, same
 *       Status; X-Waymark-Handling-State: KW[/VALUE]; since=DATE[;
 *       reason=TEXT]; Will-Retry-Until as if released now (held time
 *       does not count; timed: from max(hold_until, now))
 *   delivered -> delivered, 2.5.0
 *   failed -> failed, the last reply's x.y.z (class 4/5; else 4.0.0 or
 *       5.0.0 by the reply code), Diagnostic-Code: smtp; CODE X.Y.Z TEXT
 *       (X-Waymark; TEXT for a text of ours: text_is_reply)
 *   expanded -> expanded, 2.0.0 (no Remote-MTA: RFC 3886 4)
 *   transferred (relayed with MTRK= on MAIL to a hop that advertised
 *       it: queue_sched.c) -> transferred, 2.4.0
 *   relayed (no MTRK passed on, whatever the hop advertised) ->
 *       relayed, 2.1.9 (only there: RFC 3886 3.3.4)
 *   Remote-MTA: dns; HOST (remote_mta without "[addr]") when a remote
 *   attempt was recorded; Last-Attempt-Date when last_attempt is set.
 *   Status codes of the success actions are the RFC 3887 4.1 examples'.
 *   Diagnostic-Code is not in RFC 3886's grammar: it is written last,
 *   as an extension field (RFC 3464 2.4 registered name).
 * Invariants: CRLF line ends only, 7bit (controls as spaces, 8-bit
 *       octets as '?') except a UTF-8 recipient address (SMTPUTF8),
 *       shown unchanged with the RFC 6533 utf-8 address type, our text folded at spaces before 78 columns and
 *       no line over 998 octets (common/hdr.c, shared with the DSN
 *       composer).
 * Not here: the MIME wrapper, dot-stuffing, MTRK authentication, the
 *       store (queue/ reads the records), the MTQP session.
 */

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "common/buf.h"
#include "common/log.h"
#include "common/util.h"
#include "common/hdr.h"
#include "common/intl.h"
#include "track/track.h"

#define MTA_MAX		256		/* a host name in Remote-MTA */


/* msg_is_held - m's state keeps it from delivery (not normal/outbound) */
static int
msg_is_held(const struct qmsg *m)
{
	return m->state != MS_NORMAL && m->state != MS_OUTBOUND;
}

enum trk_act {
	TA_DELAYED, TA_DELIVERED, TA_FAILED, TA_EXPANDED, TA_TRANSFERRED,
	TA_RELAYED
};

static const char *const act_names[] = {
	[TA_DELAYED] = "delayed", [TA_DELIVERED] = "delivered",
	[TA_FAILED] = "failed", [TA_EXPANDED] = "expanded",
	[TA_TRANSFERRED] = "transferred", [TA_RELAYED] = "relayed"
};

/* rcpt_act - the Action of r (the mapping in the header comment) */
static enum trk_act
rcpt_act(const struct qrcpt *r)
{
	switch (r->status) {
	case RS_DELIVERED:
		return TA_DELIVERED;
	case RS_FAILED:
		return TA_FAILED;
	case RS_EXPANDED:
		return TA_EXPANDED;
	case RS_TRANSFERRED:
		return TA_TRANSFERRED;
	case RS_RELAYED:
		return TA_RELAYED;
	case RS_QUEUED:
	case RS_DEFERRED:
	default:
		return TA_DELAYED;
	}
}

/* rcpt_status - the Status of r for action a */
static const char *
rcpt_status(const struct qrcpt *r, enum trk_act a)
{
	switch (a) {
	case TA_DELAYED:
		if (enh_status_ok(r->last_enh) && r->last_enh[0] == '4')
			return r->last_enh;
		return "4.0.0";
	case TA_FAILED:
		if (enh_status_ok(r->last_enh) && r->last_enh[0] != '2')
			return r->last_enh;
		return r->last_code >= 400 && r->last_code < 500 ? "4.0.0" :
		    "5.0.0";
	case TA_DELIVERED:
		return "2.5.0";
	case TA_TRANSFERRED:
		return "2.4.0";
	case TA_RELAYED:
		return "2.1.9";
	case TA_EXPANDED:
	default:
		return "2.0.0";
	}
}

/* retry_until - Will-Retry-Until of a pending recipient of m at now */
static time_t
retry_until(const struct qmsg *m, time_t now, long queue_lifetime)
{
	time_t	base = m->expire_base ? m->expire_base : m->arrival;
	time_t	since = m->state_since ? m->state_since : m->arrival;
	time_t	until;

	if (m->state == MS_TIMED)
		base = m->hold_until > now ? m->hold_until : now;
	else if (msg_is_held(m) && now > since)
		base += now - since;	/* as queue_state.c's release */
	until = base + (time_t)queue_lifetime;
	/* RFC 2852 mode R: the message fails at its deadline */
	if (m->deliver_by != 0 && (m->by_flags & BY_RETURN) &&
	    !(m->by_flags & BY_DONE) && m->deliver_by < until)
		until = m->deliver_by;
	return until;
}

/* put_remote_mta - "Remote-MTA: dns; HOST" from "host[addr]" */
static int
put_remote_mta(struct buf *b, const char *remote)
{
	char	mta[MTA_MAX];
	size_t	ml;

	/* "host[addr]" -> "host"; a bare "[addr]" stays */
	ml = strcspn(remote, "[");
	if (ml == 0)
		ml = strlen(remote);
	if (ml >= sizeof(mta))
		ml = sizeof(mta) - 1;
	memcpy(mta, remote, ml);
	mta[ml] = '\0';
	return hdr_line(b, " ", "Remote-MTA: dns; %s", mta);
}

/* put_handling - X-Waymark-Handling-State of a held message */
static int
put_handling(struct buf *b, const struct qmsg *m)
{
	char	date[64];

	if (rfc5322_date(m->state_since ? m->state_since : m->arrival, date,
	    sizeof(date)) == -1)
		return -1;
	return hdr_line(b, " ", "X-Waymark-Handling-State: %s%s%s; since=%s%s%s",
	    msg_state_name(m->state), m->state_value ? "/" : "",
	    m->state_value ? m->state_value : "", date,
	    m->state_reason ? "; reason=" : "",
	    m->state_reason ? m->state_reason : "");
}

/* put_rcpt - the group of recipient r of m */
static int
put_rcpt(struct buf *b, const struct qmsg *m, const struct qrcpt *r,
    time_t now, long queue_lifetime)
{
	enum trk_act	a = rcpt_act(r);
	int		remote = r->remote_mta != NULL &&
			    r->remote_mta[0] != '\0' && a != TA_EXPANDED;
	/* RFC 6533 3: a UTF-8 address is shown unchanged, type utf-8 */
	int		u8 = str_nonascii(r->addr, strlen(r->addr));
	const char	*ty = u8 ? "utf-8" : "rfc822";

	if (r->orcpt != NULL && strncasecmp(r->orcpt, "utf-8;", 6) == 0)
		u8 = 1;
	if (buf_puts(b, "\r\n") == -1 ||
	    (r->orcpt != NULL && strchr(r->orcpt, ';') != NULL ?
	    hdr_line_u8(b, u8, " ", "Original-Recipient: %s", r->orcpt) :
	    hdr_line_u8(b, u8, " ", "Original-Recipient: %s; %s", ty,
	    r->addr)) == -1 ||
	    hdr_line_u8(b, u8, " ", "Final-Recipient: %s; %s", ty,
	    r->addr) == -1 ||
	    buf_printf(b, "Action: %s\r\nStatus: %s\r\n", act_names[a],
	    rcpt_status(r, a)) == -1 ||
	    (remote && put_remote_mta(b, r->remote_mta) == -1) ||
	    (r->last_attempt != 0 &&
	    hdr_date_field(b, "Last-Attempt-Date", r->last_attempt) == -1) ||
	    (a == TA_DELAYED && hdr_date_field(b, "Will-Retry-Until",
	    retry_until(m, now, queue_lifetime)) == -1))
		return -1;
	if (a == TA_FAILED) {
		if (remote && text_is_reply(r->remote_mta, r->last_code,
		    r->last_text)) {
			if (hdr_line(b, " ", "Diagnostic-Code: smtp; %d%s%s %s",
			    r->last_code, r->last_enh[0] ? " " : "",
			    r->last_enh, r->last_text ? r->last_text : "") == -1)
				return -1;
		} else if (r->last_text != NULL && hdr_line(b, " ",
		    "Diagnostic-Code: X-Waymark; %s", r->last_text) == -1)
			return -1;
	}
	if (a == TA_DELAYED && msg_is_held(m) && put_handling(b, m) == -1)
		return -1;
	return 0;
}

const char *
trk_action(const struct qmsg *m, size_t i)
{
	if (m == NULL || i >= m->nrcpts)
		return NULL;
	return act_names[rcpt_act(&m->rcpts[i])];
}

int
trk_status_write(struct buf *b, const struct qmsg *m, const char *hostname,
    time_t now, long queue_lifetime)
{
	size_t	start, i;

	if (b == NULL || m == NULL || m->nrcpts == 0 || m->rcpts == NULL ||
	    queue_lifetime < 0)
		return -1;
	for (i = 0; i < m->nrcpts; i++)
		if (m->rcpts[i].addr == NULL)
			return -1;
	if (hostname == NULL || *hostname == '\0')
		hostname = "localhost";
	start = b->len;
	/* Arrival-Date is required: a record without one reports now */
	if (hdr_line(b, " ", "Original-Envelope-Id: %s",
	    m->envid ? m->envid : "") == -1 ||
	    hdr_line(b, " ", "Reporting-MTA: dns; %s", hostname) == -1 ||
	    hdr_date_field(b, "Arrival-Date",
	    m->arrival ? m->arrival : now) == -1)
		goto fail;
	for (i = 0; i < m->nrcpts; i++)
		if (put_rcpt(b, m, &m->rcpts[i], now, queue_lifetime) == -1)
			goto fail;
	return 0;
fail:
	b->len = start;
	if (b->data != NULL)
		b->data[start] = '\0';
	return -1;
}
