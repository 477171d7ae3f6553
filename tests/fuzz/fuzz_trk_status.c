#include "config.h"
/*
 * fuzz_trk_status.c - the message/tracking-status composer
 * (track/trk_status.c, trk_status_write) on a message made from the
 * input (fuzz_msg.c), its output read back with the MTQP client's
 * parser (track/trk_parse.c, trk_status_parse): CRLF line ends only,
 * no line over 998 octets, one group per recipient with the Action
 * trk_action gives, a valid Status, the Final-Recipient (the address as
 * common/hdr.c cleans and folds it, unfolded), and for a held
 * message's delayed recipient the handling state's keyword.  The input
 * is also parsed as a whole TRACK answer (trk_report_parse: a hostile
 * server's multipart/related).
 */

#include <string.h>
#include <strings.h>

#include "common/buf.h"
#include "common/hdr.h"
#include "common/intl.h"
#include "queue/queue.h"
#include "track/track.h"
#include "track/trk_client.h"
#include "tests/fuzz/fuzz.h"

/* lines_ok - CRLF only, none over 998 octets */
static void
lines_ok(const char *s, size_t n)
{
	size_t	i, col = 0;

	for (i = 0; i < n; i++) {
		if (s[i] == '\r') {
			FUZZ_CHECK(i + 1 < n && s[i + 1] == '\n');
			i++;
			col = 0;
			continue;
		}
		FUZZ_CHECK(s[i] != '\n' && s[i] != '\0');
		FUZZ_CHECK(++col <= 998);
	}
	FUZZ_CHECK(col == 0);
}

/* expect - what a field value written by common/hdr.c reads back as:
 * controls as spaces, 8-bit as '?', runs of spaces as one, trimmed,
 * one pair of <> removed (typed_value); NULL when s is too long to
 * fold without splitting a word */
static char *
expect(const char *s)
{
	char	*o;
	size_t	 i, n = 0, len = strlen(s);

	if (len > 900 || (o = malloc(len + 1)) == NULL)
		return NULL;
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		c = c >= 0x80 ? '?' : c < 0x20 || c == 0x7f ? ' ' : c;
		if (c == ' ' && (n == 0 || o[n - 1] == ' '))
			continue;
		o[n++] = (char)c;
	}
	while (n > 0 && o[n - 1] == ' ')
		n--;
	o[n] = '\0';
	if (n >= 2 && o[0] == '<' && o[n - 1] == '>') {
		memmove(o, o + 1, n - 2);
		o[n - 2] = '\0';
	}
	return o;
}

/* compose - write m's part, parse it back */
static void
compose(const struct qmsg *m, const char *host)
{
	struct buf	 b;
	struct trk_part	 p;
	char		 why[256];
	const char	*act;
	char		*want;
	size_t		 i;
	int		 held;

	buf_init(&b, 1 << 20);
	if (trk_status_write(&b, m, host, 1700003600, 432000) == -1) {
		FUZZ_CHECK(m->nrcpts == 0);
		buf_free(&b);
		return;
	}
	lines_ok(b.data, b.len);
	memset(&p, 0, sizeof(p));
	FUZZ_CHECK(trk_status_parse(b.data, b.len, &p, why,
	    sizeof(why)) == 0);
	FUZZ_CHECK(p.nrcpts == m->nrcpts);
	FUZZ_CHECK(p.reporting_mta != NULL && p.has_arrival);
	held = m->state != MS_NORMAL && m->state != MS_OUTBOUND;
	for (i = 0; i < p.nrcpts; i++) {
		act = trk_action(m, i);
		FUZZ_CHECK(p.rcpts[i].action != NULL &&
		    strcmp(p.rcpts[i].action, act) == 0);
		FUZZ_CHECK(p.rcpts[i].status != NULL &&
		    enh_status_ok(p.rcpts[i].status));
		FUZZ_CHECK(p.rcpts[i].final != NULL &&
		    p.rcpts[i].orcpt != NULL);
		if (str_nonascii(m->rcpts[i].addr, strlen(m->rcpts[i].addr))
		    || (m->rcpts[i].orcpt != NULL &&
		    strncasecmp(m->rcpts[i].orcpt, "utf-8;", 6) == 0))
			/* RFC 6533: well-formed UTF-8 kept, the rest '?' */
			FUZZ_CHECK(utf8_valid(p.rcpts[i].final,
			    strlen(p.rcpts[i].final)));
		else if ((want = expect(m->rcpts[i].addr)) != NULL) {
			if (strcmp(p.rcpts[i].final, want) != 0)
				fprintf(stderr, "final \"%s\", want \"%s\"\n",
				    p.rcpts[i].final, want);
			FUZZ_CHECK(strcmp(p.rcpts[i].final, want) == 0);
			free(want);
		}
		if (held && strcmp(act, "delayed") == 0) {
			FUZZ_CHECK(p.rcpts[i].handling != NULL);
			FUZZ_CHECK(strcmp(p.rcpts[i].handling->state,
			    msg_state_name(m->state)) == 0);
		}
	}
	trk_part_free(&p);
	buf_free(&b);
}

/* LLVMFuzzerTestOneInput - one input, checked as the header comment says */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct trk_report	 r;
	struct qmsg		*m;
	char			 why[256], *host = NULL;

	if ((m = fuzz_msg(data, size, &host)) != NULL) {
		compose(m, host);
		qmsg_free(m);
		free(host);
	}
	why[0] = '\0';
	if (trk_report_parse((const char *)data, size, &r, why,
	    sizeof(why)) == -1)
		FUZZ_CHECK(why[0] != '\0');
	trk_report_free(&r);
	return 0;
}
