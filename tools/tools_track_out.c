#include "config.h"
/*
 * tools_track_out.c - what `waymark track` prints: the timeline (each
 * hop with its recipients' action, status, dates and reasons, then each
 * recipient's outcome) and the --json object documented in the README.
 * Pure output from the walk (track/trk_walk.h, which makes the texts
 * and the object); no I/O but stdout.
 * Everything a hop sent is untrusted text: each line of the timeline
 * goes out through put_line (controls, C1 and broken UTF-8 as '?': no
 * escape sequence reaches the terminal), each JSON string through jtext
 * (broken UTF-8 as U+FFFD: jansson takes only UTF-8, and a recipient or
 * the whole object would be lost).
 */

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <jansson.h>

#include "common/log.h"
#include "common/util.h"
#include "track/trk_client.h"
#include "tools/tools_track.h"

/* ---------------------------------------------------------------- output */

#define OUT_LINE_MAX	2048

/* put_line - one line of the timeline on stdout, made safe to show */
static void	put_line(const char *fmt, ...) WM_PRINTF(1, 2);

static void
put_line(const char *fmt, ...)
{
	char	line[OUT_LINE_MAX];
	va_list	ap;
	int	n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	text_safe(line);	/* a cut UTF-8 sequence at the end too */
	puts(line);
}

/* track_print_text - the timeline */
void
track_print_text(const struct walk *w)
{
	const struct hop	*h;
	const struct trk_rcpt	*r;
	char			 d[64], line[1200];
	size_t			 i, j, k;

	put_line("Tracking %s", w->envid);
	for (i = 0; i < w->nhops; i++) {
		h = &w->hops[i];
		if (h->result != TRK_OK) {
			track_failed_hop_text(h, line, sizeof(line));
			put_line("Hop %zu: %s: tracking ends here", i + 1, line);
			continue;
		}
		if (h->chained) {
			for (k = i; k > 0 && w->hops[k - 1].chained; k--)
				;
			put_line("Hop %zu: %s (in the answer of hop %zu)",
			    i + 1, track_hop_name(h), k);
		} else
			put_line("Hop %zu: %s (%s%s)", i + 1, track_hop_name(h),
			    h->server ? h->server : "?", h->tls ? ", TLS" : "");
		if (h->part->has_arrival)
			put_line("  arrived %s", track_fmt_date(h->part->arrival,
			    0, d,
			    sizeof(d)));
		for (j = 0; j < h->part->nrcpts; j++) {
			r = &h->part->rcpts[j];
			track_rcpt_detail(r, 0, line, sizeof(line));
			put_line("  %-16s %-12s %-7s %s", track_rcpt_key(r),
			    r->action ? r->action : "?",
			    r->status ? r->status : "?", line);
		}
	}
	if (w->nnot_asked > 0)
		put_line("Not asked: %zu more host%s (%d hosts at most)",
		    w->nnot_asked, w->nnot_asked == 1 ? "" : "s", TRK_MAX_HOSTS);
	put_line("Outcome");
	if (w->nout == 0)
		put_line("  no recipient reported");
	for (i = 0; i < w->nout; i++) {
		track_outcome_text(w, &w->out[i], line, sizeof(line));
		put_line("  %-16s %s", w->out[i].addr, line);
	}
}

/* track_print_json - the one object (README) */
int
track_print_json(const struct walk *w)
{
	json_t	*o;
	char	*s;

	if ((o = track_walk_json(w)) == NULL)
		return -1;
	s = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	if (s == NULL)
		return -1;
	printf("%s\n", s);
	free(s);
	return 0;
}
