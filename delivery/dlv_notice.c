#include "config.h"
/*
 * dlv_notice.c - delivery status notifications (RFC 3464) of every kind
 * (failed, delayed, delivered, relayed, expanded) in an RFC 6522
 * multipart/report; report-type=delivery-status.
 * Entry point: dlv_notice_write (see delivery.h).
 * Layout: RFC 5322 header; part 1 text/plain (us-ascii) naming each
 *       recipient with "host H said:" and the host's reply, or with
 *       Waymark's own text, which names the host itself
 *       (text_is_reply; Diagnostic-Code smtp or X-Waymark alike); part 2 message/delivery-status (7bit: control and 8-bit
 *       octets become '?'; Deliver-By-Date after Arrival-Date for a
 *       message with a DELIVERBY deadline, RFC 2852 5); part 3 the returned content: for a failure
 *       without RET=HDRS (a REQUIRETLS message counts as RET=HDRS, RFC 8689 5) and at most return_max bytes the whole spool
 *       file as message/rfc822 (Waymark's trace fields first), else
 *       text/rfc822-headers: the trace fields (newest first) and the
 *       original header section, bounded to NOTICE_HDR_MAX bytes (a line
 *       cut by the bound is dropped); omitted when the spool file is
 *       unreadable.
 * Invariants: CRLF line ends only, no line of ours longer than 998
 *       octets (our text is folded at spaces near 78 columns, copied
 *       header lines are truncated at 998; a returned message is copied
 *       as received), a random boundary.
 * SMTPUTF8 (RFC 6533): for a message that needs it (notice_intl) part 1
 *       is text/plain; charset=utf-8, part 2 message/global-delivery-status
 *       (8bit; utf-8 address types, Original-Recipient up-converted),
 *       part 3 message/global or message/global-headers (8bit); the
 *       report-type stays delivery-status.  Not done: the 7-bit CTE of
 *       RFC 6533 4.5 for a return path without SMTPUTF8.
 * Not here: deciding who gets a DSN and queueing it (queue_notice.c).
 */

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/hdr.h"
#include "common/intl.h"
#include "common/log.h"
#include "common/util.h"
#include "delivery/delivery.h"

#define NOTICE_HDR_MAX	(64 * 1024)	/* original header section copied */
#define NOTICE_MAX	(64 * 1024 * 1024)	/* whole notice */
#define LINE_LIMIT	998		/* RFC 5322 2.1.1 */

/* rcpt_status - the Status of a failed recipient */
static const char *
rcpt_status(const struct qrcpt *r)
{
	if (enh_status_ok(r->last_enh) && r->last_enh[0] != '2')
		return r->last_enh;
	return r->last_code >= 400 && r->last_code < 500 ? "4.0.0" : "5.0.0";
}

static const char *const kind_action[] = {
	[DLV_DSN_FAILED] = "failed", [DLV_DSN_DELAYED] = "delayed",
	[DLV_DSN_DELIVERED] = "delivered", [DLV_DSN_RELAYED] = "relayed",
	[DLV_DSN_EXPANDED] = "expanded"
};

static const char *const kind_subject[] = {
	[DLV_DSN_FAILED] = "Undelivered Mail Returned to Sender",
	[DLV_DSN_DELAYED] = "Delayed Mail (still being retried)",
	[DLV_DSN_DELIVERED] = "Successful Mail Delivery Report",
	[DLV_DSN_RELAYED] = "Successful Mail Delivery Report",
	[DLV_DSN_EXPANDED] = "Successful Mail Delivery Report"
};

static const char *const kind_text[] = {
	[DLV_DSN_FAILED] = "I'm sorry to have to inform you that your message "
	    "could not be delivered to one or more recipients.",
	[DLV_DSN_DELAYED] = "This is a delivery status notification: your "
	    "message could not be delivered yet to one or more recipients. "
	    "The mail system will keep trying; you do not need to send it "
	    "again.",
	[DLV_DSN_DELIVERED] = "Your message was successfully delivered to "
	    "the destination(s) listed below.",
	[DLV_DSN_RELAYED] = "Your message was successfully relayed to the "
	    "destination(s) listed below, whose mail system does not send "
	    "delivery status notifications: no further notification will "
	    "follow.",
	[DLV_DSN_EXPANDED] = "Your message was successfully delivered to the "
	    "mailing list or alias listed below; it was forwarded to its "
	    "members, for whom no further notification will follow."
};

/* the relayed text when a note says why (not "no DSN next hop") */
static const char relayed_text[] = "Your message was successfully relayed "
    "to the destination(s) listed below.";

/* rcpt_status_code - the Status of a recipient for d's kind */
static const char *
rcpt_status_code(const struct qrcpt *r, const struct dlv_dsn *d)
{
	if (d->status != NULL && enh_status_ok(d->status))
		return d->status;
	switch (d->kind) {
	case DLV_DSN_FAILED:
		return rcpt_status(r);
	case DLV_DSN_DELAYED:
		if (enh_status_ok(r->last_enh) && r->last_enh[0] == '4')
			return r->last_enh;
		return "4.0.0";
	default:
		if (enh_status_ok(r->last_enh) && r->last_enh[0] == '2')
			return r->last_enh;
		return "2.0.0";
	}
}

/*
 * notice_intl - RFC 6533: the notice of a message that needs SMTPUTF8
 * (the parameter, UTF-8 in its header, or a non-ASCII sender or
 * reported recipient) uses message/global-delivery-status, utf-8
 * addresses, UTF-8 text and message/global(-headers), all 8bit
 */
static int
notice_intl(const struct qmsg *m, const struct dlv_dsn *d)
{
	size_t	k;
	const char *a;

	if (m->intl != 0 || str_nonascii(m->sender, strlen(m->sender)))
		return 1;
	for (k = 0; k < d->n; k++) {
		a = m->rcpts[d->idx[k]].addr;
		if (str_nonascii(a, strlen(a)))
			return 1;
		a = m->rcpts[d->idx[k]].orcpt;
		if (a != NULL && strncasecmp(a, "utf-8;", 6) == 0)
			return 1;
	}
	return 0;
}

/*
 * orcpt_text - the Original-Recipient value: an "utf-8;" address is
 * up-converted in a global report (RFC 6533 3: "\x{HEX}" -> UTF-8) and
 * kept escaped otherwise; a value that does not decode is copied
 */
static void
orcpt_text(const char *orcpt, int u8, char *out, size_t outlen)
{
	const char	*p;
	size_t		 o = 0;
	unsigned long	 cp;
	char		*e;

	if (!u8 || strncasecmp(orcpt, "utf-8;", 6) != 0)
		goto copy;
	memcpy(out, "utf-8; ", 7);
	o = 7;
	for (p = orcpt + 6; *p == ' '; p++)
		;
	for (; *p != '\0'; p++) {
		if (o + 5 >= outlen)
			goto copy;
		if (p[0] == '\\' && p[1] == 'x' && p[2] == '{') {
			cp = strtoul(p + 3, &e, 16);
			if (*e != '}' || e - (p + 3) < 2 || e - (p + 3) > 6 ||
			    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
				goto copy;
			if (cp < 0x80)
				out[o++] = (char)cp;
			else if (cp < 0x800) {
				out[o++] = (char)(0xc0 | (cp >> 6));
				out[o++] = (char)(0x80 | (cp & 0x3f));
			} else if (cp < 0x10000) {
				out[o++] = (char)(0xe0 | (cp >> 12));
				out[o++] = (char)(0x80 | ((cp >> 6) & 0x3f));
				out[o++] = (char)(0x80 | (cp & 0x3f));
			} else {
				out[o++] = (char)(0xf0 | (cp >> 18));
				out[o++] = (char)(0x80 | ((cp >> 12) & 0x3f));
				out[o++] = (char)(0x80 | ((cp >> 6) & 0x3f));
				out[o++] = (char)(0x80 | (cp & 0x3f));
			}
			p = e;
		} else
			out[o++] = *p;
	}
	out[o] = '\0';
	return;
copy:
	(void)snprintf(out, outlen, "%s", orcpt);
}

/* put_human - part 1: the explanation for people */
static int
put_human(struct buf *b, const struct qmsg *m, const struct dlv_dsn *d,
    const char *hostname, const char *what)
{
	const struct qrcpt	*r;
	size_t			 k;
	int			 rc;
	int			 u8 = notice_intl(m, d);

	if (hdr_line_u8(b, u8, "", "This is the mail system at host %s.",
	    hostname) == -1 ||
	    buf_puts(b, "\r\n") == -1 ||
	    hdr_line_u8(b, u8, "", "%s%s", d->note != NULL &&
	    d->kind == DLV_DSN_RELAYED ? relayed_text : kind_text[d->kind],
	    what) == -1 ||
	    buf_puts(b, "\r\n") == -1 ||
	    (d->note != NULL && (hdr_line_u8(b, u8, "", "%s", d->note) == -1 ||
	    buf_puts(b, "\r\n") == -1)) ||
	    (d->kind == DLV_DSN_FAILED &&
	    (hdr_line_u8(b, u8, "", "For further assistance, please send mail to "
	    "postmaster.") == -1 ||
	    buf_puts(b, "\r\n") == -1 ||
	    hdr_line_u8(b, u8, "", "If you do so, please include this problem "
	    "report.") == -1 ||
	    buf_puts(b, "\r\n") == -1)) ||
	    hdr_line_u8(b, u8, "", "The mail system") == -1)
		return -1;
	for (k = 0; k < d->n; k++) {
		r = &m->rcpts[d->idx[k]];
		if (buf_puts(b, "\r\n") == -1)
			return -1;
		if (d->kind != DLV_DSN_FAILED && d->kind != DLV_DSN_DELAYED)
			rc = r->remote_mta != NULL ?
			    hdr_line_u8(b, u8, "    ", "<%s>: %s via %s", r->addr,
			    kind_action[d->kind], r->remote_mta) :
			    hdr_line_u8(b, u8, "    ", "<%s>: %s", r->addr,
			    kind_action[d->kind]);
		else if (text_is_reply(r->remote_mta, r->last_code,
		    r->last_text))
			rc = hdr_line_u8(b, u8, "    ", "<%s>: host %s said: %d%s%s %s",
			    r->addr, r->remote_mta, r->last_code,
			    r->last_enh[0] ? " " : "", r->last_enh,
			    r->last_text ? r->last_text : "");
		else
			rc = hdr_line_u8(b, u8, "    ", "<%s>: %s", r->addr,
			    r->last_text ? r->last_text : "delivery failed");
		if (rc == -1)
			return -1;
	}
	return 0;
}

/* put_report - part 2: the message/delivery-status fields */
static int
put_report(struct buf *b, const struct qmsg *m, const struct dlv_dsn *d,
    const char *hostname)
{
	const struct qrcpt	*r;
	char			 mta[256];
	size_t			 k, ml;
	char			 orc[1024];
	int			 u8 = notice_intl(m, d);

	if ((m->envid != NULL && hdr_line_u8(b, u8, " ", "Original-Envelope-Id: %s",
	    m->envid) == -1) ||
	    hdr_line_u8(b, u8, " ", "Reporting-MTA: dns; %s", hostname) == -1 ||
	    hdr_line_u8(b, u8, " ", "X-Waymark-Queue-ID: %s", m->qid) == -1 ||
	    (m->arrival != 0 &&
	    hdr_date_field(b, "Arrival-Date", m->arrival) == -1) ||
	    (m->deliver_by != 0 &&
	    hdr_date_field(b, "Deliver-By-Date", m->deliver_by) == -1) ||
	    /* RFC 4865 5.1.2: the original hold parameter */
	    (m->future_release != NULL && hdr_line_u8(b, u8, " ",
	    "Future-Release-Request: %s", m->future_release) == -1))
		return -1;
	for (k = 0; k < d->n; k++) {
		r = &m->rcpts[d->idx[k]];
		if (r->orcpt != NULL)
			orcpt_text(r->orcpt, u8, orc, sizeof(orc));
		if (buf_puts(b, "\r\n") == -1 ||
		    (r->orcpt != NULL && strchr(r->orcpt, ';') != NULL &&
		    hdr_line_u8(b, u8, " ", "Original-Recipient: %s", orc) == -1) ||
		    hdr_line_u8(b, u8, " ", "Final-Recipient: %s; %s", u8 &&
		    str_nonascii(r->addr, strlen(r->addr)) ? "utf-8" : "rfc822",
		    r->addr) == -1 ||
		    buf_printf(b, "Action: %s\r\n", kind_action[d->kind]) == -1 ||
		    buf_printf(b, "Status: %s\r\n", rcpt_status_code(r,
		    d)) == -1)
			return -1;
		if (r->remote_mta != NULL && r->remote_mta[0] != '\0') {
			/* "host[addr]" -> "host"; a bare "[addr]" stays */
			ml = strcspn(r->remote_mta, "[");
			if (ml == 0)
				ml = strlen(r->remote_mta);
			if (ml >= sizeof(mta))
				ml = sizeof(mta) - 1;
			memcpy(mta, r->remote_mta, ml);
			mta[ml] = '\0';
			if (hdr_line_u8(b, u8, " ", "Remote-MTA: dns; %s", mta) == -1)
				return -1;
			/* smtp: the host's reply; our own text names it */
			if (text_is_reply(r->remote_mta, r->last_code,
			    r->last_text)) {
				if (hdr_line_u8(b, u8, " ", "Diagnostic-Code: smtp; "
				    "%d%s%s %s", r->last_code, r->last_enh[0] ?
				    " " : "", r->last_enh, r->last_text) == -1)
					return -1;
			} else if (r->last_text != NULL && hdr_line_u8(b, u8, " ",
			    "Diagnostic-Code: X-Waymark; %s", r->last_text) ==
			    -1)
				return -1;
		} else if ((d->kind == DLV_DSN_FAILED ||
		    d->kind == DLV_DSN_DELAYED) && r->last_text != NULL &&
		    hdr_line_u8(b, u8, " ", "Diagnostic-Code: X-Waymark; %s",
		    r->last_text) == -1)
			return -1;
		if (r->last_attempt != 0 &&
		    hdr_date_field(b, "Last-Attempt-Date", r->last_attempt) == -1)
			return -1;
		if (d->kind == DLV_DSN_DELAYED && d->retry_until != 0 &&
		    hdr_date_field(b, "Will-Retry-Until", d->retry_until) == -1)
			return -1;
	}
	return 0;
}

/* put_trace - Waymark's trace fields, newest first, "\n" -> CRLF */
static int
put_trace(struct buf *b, const struct qmsg *m)
{
	const char	*s, *nl;
	size_t		 i, ll;

	for (i = m->ntrace; i-- > 0; ) {
		for (s = m->trace[i]; ; s = nl + 1) {
			nl = strchr(s, '\n');
			ll = nl ? (size_t)(nl - s) : strlen(s);
			if (ll > LINE_LIMIT)
				ll = LINE_LIMIT;
			if (buf_append(b, s, ll) == -1 ||
			    buf_puts(b, "\r\n") == -1)
				return -1;
			if (nl == NULL)
				break;
		}
	}
	return 0;
}

/*
 * put_orig_headers - the header section of body_path up to the first
 * empty line, at most NOTICE_HDR_MAX bytes read; -1 on a read error
 * (nothing appended is undone: the caller starts over without part 3).
 */
static int
put_orig_headers(struct buf *b, const char *body_path)
{
	char	*h = NULL, *p, *e, *nl;
	size_t	 got = 0, ll;
	ssize_t	 r;
	int	 fd, eof = 0, rc = -1;

	if ((fd = open(body_path, O_RDONLY | O_CLOEXEC)) == -1)
		return -1;
	if ((h = malloc(NOTICE_HDR_MAX)) == NULL)
		goto fail;
	while (got < NOTICE_HDR_MAX) {
		r = read(fd, h + got, NOTICE_HDR_MAX - got);
		if (r == -1 && errno == EINTR)
			continue;
		if (r == -1)
			goto fail;
		if (r == 0) {
			eof = 1;
			break;
		}
		got += (size_t)r;
	}
	e = h + got;
	for (p = h; p < e; p = nl + 1) {
		nl = memchr(p, '\n', (size_t)(e - p));
		if (nl == NULL && !eof)
			break;		/* cut by the bound: drop it */
		ll = nl ? (size_t)(nl - p) : (size_t)(e - p);
		if (ll > 0 && p[ll - 1] == '\r')
			ll--;
		if (ll == 0)
			break;		/* end of the header section */
		if (ll > LINE_LIMIT)
			ll = LINE_LIMIT;
		if (buf_append(b, p, ll) == -1 || buf_puts(b, "\r\n") == -1)
			goto fail;
		if (nl == NULL)
			break;
	}
	rc = 0;
fail:
	free(h);
	close(fd);
	return rc;
}

/* make_token - 24 random characters of [0-9a-z] */
static void
make_token(char *out, size_t len)
{
	static const char	digits[] = "0123456789abcdefghijklmnopqrstuvwxyz";
	unsigned char		rnd[32];
	size_t			i;

	if (len > sizeof(rnd))
		len = sizeof(rnd);
	if (getrandom(rnd, len, GRND_NONBLOCK) != (ssize_t)len) {
		/* no entropy yet: time and pid are unique enough here */
		unsigned long v = (unsigned long)time(NULL) ^
		    ((unsigned long)getpid() << 16) ^ (unsigned long)(size_t)out;

		for (i = 0; i < len; i++) {
			v = v * 6364136223846793005UL + 1442695040888963407UL;
			rnd[i] = (unsigned char)(v >> 33);
		}
	}
	for (i = 0; i < len; i++)
		out[i] = digits[rnd[i] % 36];
	out[len] = '\0';
}

/*
 * put_full - the whole spool file (header section and body, CRLF) as
 * it was received; -1 on a read error
 */
static int
put_full(struct buf *b, const char *body_path)
{
	char	 chunk[16384];
	ssize_t	 r;
	int	 fd, last_nl = 1;

	if ((fd = open(body_path, O_RDONLY | O_CLOEXEC)) == -1)
		return -1;
	for (;;) {
		r = read(fd, chunk, sizeof(chunk));
		if (r == -1 && errno == EINTR)
			continue;
		if (r == -1) {
			close(fd);
			return -1;
		}
		if (r == 0)
			break;
		if (buf_append(b, chunk, (size_t)r) == -1) {
			close(fd);
			return -1;
		}
		last_nl = chunk[r - 1] == '\n';
	}
	close(fd);
	if (!last_nl && buf_puts(b, "\r\n") == -1)
		return -1;
	return 0;
}

/* trace_size - bytes of Waymark's trace fields with CRLF line ends */
static size_t
trace_size(const struct qmsg *m)
{
	const char	*s;
	size_t		 i, n = 0;

	for (i = 0; i < m->ntrace; i++) {
		n += strlen(m->trace[i]) + 2;
		for (s = m->trace[i]; (s = strchr(s, '\n')) != NULL; s++)
			n++;
	}
	return n;
}

/*
 * build - the whole DSN in b; content: 0 none, 1 headers, 2 full
 * message.  -2 when the spool file cannot be read (try less).
 */
static int
build(struct buf *b, const struct qmsg *m, const char *body_path,
    const struct dlv_dsn *d, const char *hostname, int content)
{
	char		 boundary[80], tok[25], date[64];
	const char	*to = d->to != NULL ? d->to : m->sender;
	const char	*what = "";
	int		 u8 = notice_intl(m, d);

	if (content == 2)
		what = " The message is attached below.";
	else if (content == 1)
		what = " Its header section is attached below.";
	make_token(tok, 24);
	if (snprintf(boundary, sizeof(boundary), "=_waymark_%s_%s", m->qid,
	    tok) >= (int)sizeof(boundary) ||
	    rfc5322_date(d->now, date, sizeof(date)) == -1)
		return -1;
	make_token(tok, 8);
	if (hdr_line(b, " ", "From: Mail Delivery System <MAILER-DAEMON@%s>",
	    hostname) == -1 ||
	    hdr_line_u8(b, u8, " ", "To: <%s>", to) == -1 ||
	    buf_printf(b, "Subject: %s\r\n", kind_subject[d->kind]) == -1 ||
	    buf_printf(b, "Date: %s\r\n", date) == -1 ||
	    hdr_line(b, " ", "Message-ID: <%s%s.%lld.%s@%s>", m->qid,
	    d->kind == DLV_DSN_FAILED ? "notice" : kind_action[d->kind],
	    (long long)d->now, tok, hostname) == -1 ||
	    buf_puts(b, "Auto-Submitted: auto-replied\r\n") == -1 ||
	    buf_puts(b, "MIME-Version: 1.0\r\n") == -1 ||
	    buf_puts(b, "Content-Type: multipart/report; "
	    "report-type=delivery-status;\r\n") == -1 ||
	    buf_printf(b, "\tboundary=\"%s\"\r\n", boundary) == -1 ||
	    buf_puts(b, "\r\nThis is a MIME-encapsulated message.\r\n") == -1)
		return -1;

	if (buf_printf(b, "\r\n--%s\r\n", boundary) == -1 ||
	    buf_printf(b, "Content-Description: Notification\r\n"
	    "Content-Type: text/plain; charset=%s\r\n%s\r\n",
	    u8 ? "utf-8" : "us-ascii",
	    u8 ? "Content-Transfer-Encoding: 8bit\r\n" : "") == -1 ||
	    put_human(b, m, d, hostname, what) == -1)
		return -1;

	if (buf_printf(b, "\r\n--%s\r\n", boundary) == -1 ||
	    buf_puts(b, u8 ? "Content-Description: Delivery report\r\n"
	    "Content-Type: message/global-delivery-status\r\n"
	    "Content-Transfer-Encoding: 8bit\r\n\r\n" :
	    "Content-Description: Delivery report\r\n"
	    "Content-Type: message/delivery-status\r\n\r\n") == -1 ||
	    put_report(b, m, d, hostname) == -1)
		return -1;

	if (content == 2) {
		if (buf_printf(b, "\r\n--%s\r\n", boundary) == -1 ||
		    buf_printf(b, "Content-Description: Undelivered Message\r\n"
		    "Content-Type: message/%s\r\n%s\r\n",
		    u8 ? "global" : "rfc822", m->body_8bit || u8 ?
		    "Content-Transfer-Encoding: 8bit\r\n" : "") == -1 ||
		    put_trace(b, m) == -1)
			return -1;
		if (put_full(b, body_path) == -1) {
			log_warn("qid=%s DSN: cannot read %s", m->qid,
			    body_path);
			return -2;
		}
	} else if (content == 1) {
		if (buf_printf(b, "\r\n--%s\r\n", boundary) == -1 ||
		    buf_printf(b, "Content-Description: %s Message "
		    "Headers\r\nContent-Type: %s\r\n\r\n",
		    d->kind == DLV_DSN_FAILED ? "Undelivered" :
		    d->kind == DLV_DSN_DELAYED ? "Delayed" : "Delivered",
		    u8 ? "message/global-headers\r\n"
		    "Content-Transfer-Encoding: 8bit" :
		    "text/rfc822-headers") == -1 ||
		    put_trace(b, m) == -1)
			return -1;
		if (put_orig_headers(b, body_path) == -1) {
			log_warn("qid=%s notice: cannot read the header "
			    "section of %s", m->qid, body_path);
			return -2;
		}
	}
	if (buf_printf(b, "\r\n--%s--\r\n", boundary) == -1)
		return -1;
	return 0;
}

long
dlv_notice_write(int fd, const struct qmsg *m, const char *body_path,
    const struct dlv_dsn *d)
{
	struct buf	 b;
	const char	*hostname;
	size_t		 off = 0, k;
	ssize_t		 w;
	int		 rc, content;

	if (fd < 0 || m == NULL || m->sender == NULL || d == NULL ||
	    d->n == 0 || d->idx == NULL || d->kind < DLV_DSN_FAILED ||
	    d->kind > DLV_DSN_EXPANDED ||
	    (d->to == NULL && m->sender[0] == '\0'))
		return -1;
	hostname = d->hostname;
	if (hostname == NULL || *hostname == '\0')
		hostname = "localhost";
	for (k = 0; k < d->n; k++)
		if (d->idx[k] >= m->nrcpts || m->rcpts[d->idx[k]].addr == NULL)
			return -1;
	/* RFC 3461 4.3: the whole message for a failure unless RET=HDRS */
	content = body_path == NULL ? 0 : 1;
	/* RFC 8689 5: a REQUIRETLS message's notice is as if RET=HDRS */
	if (content && d->kind == DLV_DSN_FAILED && m->ret != DSN_RET_HDRS &&
	    !m->requiretls &&
	    m->size + trace_size(m) <= d->return_max)
		content = 2;
	buf_init(&b, NOTICE_MAX);
	while ((rc = build(&b, m, body_path, d, hostname, content)) == -2 &&
	    content > 0) {
		/* the original is unreadable: the notice without it */
		buf_reset(&b);
		content = 0;
	}
	if (rc != 0)
		goto fail;
	while (off < b.len) {
		w = write(fd, b.data + off, b.len - off);
		if (w == -1 && errno == EINTR)
			continue;
		if (w <= 0)
			goto fail;
		off += (size_t)w;
	}
	buf_free(&b);
	return (long)off;
fail:
	buf_free(&b);
	return -1;
}
