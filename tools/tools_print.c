#include "config.h"
/*
 * tools_print.c - human-readable views for `waymark queue` and
 * `waymark show`, in the spirit of Postfix's mailq.
 * Owns: the layout of one message (header line, handling state, one line
 *       per recipient), the queue summary line, the event list.
 * Input: the JSON objects the daemon sends (DESIGN.md "Machine-readable
 *       output"); missing or mistyped keys print as "-" and never crash.
 * Safety: every string from the daemon is printed with control octets
 *       replaced by '?', so a hostile peer's text cannot drive the terminal.
 * Times: local time, "YYYY-MM-DD HH:MM:SS" (events add ".mmm").
 */

#include <math.h>	/* isfinite: a macro, no -lm */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "tools/tools.h"

/* put_safe - print s; control octets become '?', a newline in s starts a
 * new line indented by indent (NULL: newlines become '?' too) */
static void
put_safe(FILE *fp, const char *s, const char *indent)
{
	const unsigned char	*p;

	if (s == NULL) {
		fputc('-', fp);
		return;
	}
	for (p = (const unsigned char *)s; *p != '\0'; p++) {
		if (*p == '\n' && indent != NULL) {
			fputc('\n', fp);
			fputs(indent, fp);
			while (p[1] == '\t' || p[1] == ' ')
				p++;
		} else if (*p == '\r' && p[1] == '\n' && indent != NULL)
			continue;
		else if (*p == '\t')
			fputc(' ', fp);
		else if (*p < 0x20 || *p == 0x7f)
			fputc('?', fp);
		else
			fputc(*p, fp);
	}
}

static const char *
jstr(json_t *o, const char *key)
{
	json_t	*v = json_object_get(o, key);

	return json_is_string(v) ? json_string_value(v) : NULL;
}

/* jnum - number value of key; 0 with *has = 0 when absent or null */
static double
jnum(json_t *o, const char *key, int *has)
{
	json_t	*v = json_object_get(o, key);
	int	 dummy;

	if (has == NULL)
		has = &dummy;
	*has = json_is_number(v);
	return *has ? json_number_value(v) : 0;
}

/* fmt_time - local "YYYY-MM-DD HH:MM:SS[.mmm]" */
static void
fmt_time(double t, int millis, char *out, size_t outlen)
{
	struct tm	tm;
	time_t		sec;
	long		ms;
	char		tmp[40];

	if (!isfinite(t) || t < 0 || t > 253402300799.0) {
		snprintf(out, outlen, "-");
		return;
	}
	sec = (time_t)t;		/* t >= 0: truncation is floor */
	ms = (long)((t - (double)sec) * 1000.0 + 0.5);
	if (ms >= 1000) {
		sec++;
		ms -= 1000;
	}
	if (localtime_r(&sec, &tm) == NULL ||
	    strftime(tmp, sizeof(tmp), "%Y-%m-%d %H:%M:%S", &tm) == 0) {
		snprintf(out, outlen, "-");
		return;
	}
	if (millis) {
		size_t	l = strlen(tmp);

		if (l + 4 < sizeof(tmp)) {	/* ".mmm", digit by digit */
			tmp[l] = '.';
			tmp[l + 1] = (char)('0' + ms / 100 % 10);
			tmp[l + 2] = (char)('0' + ms / 10 % 10);
			tmp[l + 3] = (char)('0' + ms % 10);
			tmp[l + 4] = '\0';
		}
	}
	snprintf(out, outlen, "%s", tmp);
}

static void
print_sender(FILE *fp, const char *sender)
{
	fputc('<', fp);
	if (sender != NULL)
		put_safe(fp, sender, NULL);
	fputc('>', fp);
}

static void
print_state(FILE *fp, json_t *m, const char *prefix)
{
	const char	*state = jstr(m, "state");
	const char	*value = jstr(m, "state_value");

	const char	*reason = jstr(m, "state_reason");

	fputs(prefix, fp);
	put_safe(fp, state ? state : "normal", NULL);
	if (value != NULL && *value != '\0') {
		fputc('/', fp);
		put_safe(fp, value, NULL);
	}
	if (reason != NULL && *reason != '\0') {
		fputs(" (", fp);
		put_safe(fp, reason, NULL);
		fputc(')', fp);
	}
	fputc('\n', fp);
}

/* print_rcpt - "    <addr>  status  [attempts=N] [next=...] [last: ...]" */
static void
print_rcpt(FILE *fp, json_t *r, int held)
{
	const char	*status = jstr(r, "status");
	json_t		*lr;
	char		 tbuf[48];
	double		 next, attempts;
	int		 has;

	fputs("    <", fp);
	put_safe(fp, jstr(r, "address"), NULL);
	fputs(">  ", fp);
	put_safe(fp, status, NULL);
	attempts = jnum(r, "attempts", &has);
	if (has && attempts > 0)
		fprintf(fp, "  attempts=%.0f", attempts);
	next = jnum(r, "next_attempt", &has);
	if (has && next > 0 && !held && status != NULL &&
	    (strcmp(status, "queued") == 0 || strcmp(status, "deferred") == 0)) {
		fmt_time(next, 0, tbuf, sizeof(tbuf));
		fprintf(fp, "  next=%s", tbuf);
	}
	lr = json_object_get(r, "last_reply");
	if (json_is_object(lr)) {
		const char	*enh = jstr(lr, "enhanced");
		const char	*text = jstr(lr, "text");
		const char	*remote = jstr(r, "remote_mta");
		double		 code = jnum(lr, "code", &has);

		fputs("  last:", fp);
		if (has && code > 0)
			fprintf(fp, " %.0f", code);
		if (enh != NULL && *enh != '\0') {
			fputc(' ', fp);
			put_safe(fp, enh, NULL);
		}
		if (text != NULL && *text != '\0') {
			fputc(' ', fp);
			put_safe(fp, text, NULL);
		}
		/* a text of ours names its host already (text_is_reply) */
		if (remote != NULL && *remote != '\0' &&
		    (text == NULL || strstr(text, remote) == NULL)) {
			fputs(" (", fp);
			put_safe(fp, remote, NULL);
			fputc(')', fp);
		}
	}
	fputc('\n', fp);
}

static void
print_rcpts(FILE *fp, json_t *m)
{
	json_t		*rcpts = json_object_get(m, "recipients"), *r;
	const char	*state = jstr(m, "state");
	size_t		 i;
	/* held: no next attempt until it is released */
	int		 held = state != NULL && strcmp(state, "normal") != 0 &&
			    strcmp(state, "outbound") != 0;

	json_array_foreach(rcpts, i, r)
		if (json_is_object(r))
			print_rcpt(fp, r, held);
}

/* print_msg_line - "QID  arrival  size  <sender>" */
static void
print_msg_line(FILE *fp, json_t *m)
{
	char	tbuf[48];
	int	has;
	double	t, size;

	const char	*state = jstr(m, "state");

	put_safe(fp, jstr(m, "queue_id"), NULL);
	/* a held message is marked "!", as Postfix's mailq marks its hold queue */
	if (state != NULL && strcmp(state, "normal") != 0 &&
	    strcmp(state, "outbound") != 0)
		fputc('!', fp);
	t = jnum(m, "arrival_time", &has);
	fmt_time(has ? t : -1, 0, tbuf, sizeof(tbuf));
	size = jnum(m, "size", NULL);
	fprintf(fp, "  %s  %.0f  ", tbuf, size);
	print_sender(fp, jstr(m, "sender"));
	fputc('\n', fp);
}

/* tools_print_queue_page - the messages of one page of the listing;
 * *n and *total count the messages and bytes printed so far */
void
tools_print_queue_page(FILE *fp, json_t *msgs, size_t *n, double *total)
{
	json_t		*m;
	size_t		 i;
	const char	*state;

	json_array_foreach(msgs, i, m) {
		if (!json_is_object(m))
			continue;
		if (*n > 0)
			fputc('\n', fp);
		print_msg_line(fp, m);
		state = jstr(m, "state");
		if (state != NULL && strcmp(state, "normal") != 0)
			print_state(fp, m, "  state: ");
		print_rcpts(fp, m);
		*total += jnum(m, "size", NULL);
		(*n)++;
	}
}

/* tools_print_queue_end - the summary line after the last page */
void
tools_print_queue_end(FILE *fp, size_t n, double total)
{
	if (n == 0) {
		fprintf(fp, "Mail queue is empty\n");
		return;
	}
	fprintf(fp, "\n-- %zu message%s, %llu KiB in queue\n", n,
	    n == 1 ? "" : "s",
	    ((unsigned long long)(total > 0 ? total : 0) + 1023) / 1024);
}

/* tools_print_queue - mailq-like listing */
void
tools_print_queue(FILE *fp, json_t *msgs)
{
	size_t	n = 0;
	double	total = 0;

	tools_print_queue_page(fp, msgs, &n, &total);
	tools_print_queue_end(fp, n, total);
}

static void
print_field(FILE *fp, const char *name, const char *value)
{
	fprintf(fp, "%-12s ", name);
	put_safe(fp, value, NULL);
	fputc('\n', fp);
}

/* tools_print_show - header fields, recipients, events */
void
tools_print_show(FILE *fp, json_t *m)
{
	json_t		*events, *e;
	const char	*s, *helo;
	char		 tbuf[48];
	size_t		 i;
	int		 has;
	double		 t;

	print_field(fp, "Queue ID:", jstr(m, "queue_id"));
	t = jnum(m, "arrival_time", &has);
	fmt_time(has ? t : -1, 0, tbuf, sizeof(tbuf));
	print_field(fp, "Arrival:", tbuf);
	fprintf(fp, "%-12s %.0f\n", "Size:", jnum(m, "size", NULL));
	fprintf(fp, "%-12s ", "Sender:");
	print_sender(fp, jstr(m, "sender"));
	fputc('\n', fp);
	if ((s = jstr(m, "envid")) != NULL)
		print_field(fp, "Envelope ID:", s);
	fprintf(fp, "%-12s ", "Client:");
	put_safe(fp, jstr(m, "client_address"), NULL);
	if ((helo = jstr(m, "helo")) != NULL) {
		fputs(" (helo ", fp);
		put_safe(fp, helo, NULL);
		fputc(')', fp);
	}
	fputc('\n', fp);
	if ((s = jstr(m, "message_id")) != NULL)
		print_field(fp, "Message-ID:", s);
	if (json_is_true(json_object_get(m, "smtputf8")))
		print_field(fp, "SMTPUTF8:", "yes");
	/* RFC 8689: the REQUIRETLS tag or the TLS-Required: No request */
	if (json_is_true(json_object_get(m, "requiretls")))
		print_field(fp, "TLS:", "REQUIRETLS");
	else if (json_is_true(json_object_get(m, "tls_required_no")))
		print_field(fp, "TLS:", "TLS-Required: No");
	print_state(fp, m, "State:       ");
	fprintf(fp, "Recipients:\n");
	print_rcpts(fp, m);
	fprintf(fp, "Events:\n");
	events = json_object_get(m, "events");
	json_array_foreach(events, i, e) {
		if (!json_is_object(e))
			continue;
		t = jnum(e, "time", &has);
		fmt_time(has ? t : -1, 1, tbuf, sizeof(tbuf));
		fprintf(fp, "%s  ", tbuf);
		put_safe(fp, jstr(e, "kind"), NULL);
		s = jstr(e, "detail");
		if (s != NULL && *s != '\0') {
			fputs("  ", fp);
			put_safe(fp, s, "        ");
		}
		fputc('\n', fp);
	}
}
