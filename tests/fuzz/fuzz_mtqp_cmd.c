#include "config.h"
/*
 * fuzz_mtqp_cmd.c - the MTQP command parser (track/trk_cmd.c,
 * trk_cmd_dispatch): each line of the input (LF-ended, a CR before the
 * LF dropped, as trk_server.c reads them) is one command of a session
 * in the ready state, until a command ends the session.  TLS is
 * required, so a well-formed TRACK is parsed to the end (verb, envid,
 * secret) and refused with -ERR/tls-required without reading the store.
 * Checked: exactly one response line per command, "+OK" or "-...",
 * ended by CRLF, without other control characters.
 */

#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "common/cfg.h"
#include "track/trk_int.h"
#include "tests/fuzz/fuzz.h"

/* check_out - the responses in out: n lines of the form above */
static void
check_out(struct evbuffer *out, size_t ncmds)
{
	size_t		 len = evbuffer_get_length(out), i, lines = 0;
	const char	*p = (const char *)evbuffer_pullup(out, -1);
	int		 bol = 1;

	FUZZ_CHECK(len == 0 || p != NULL);
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)p[i];

		if (bol)
			FUZZ_CHECK(c == '+' || c == '-');
		bol = 0;
		if (c == '\r') {
			FUZZ_CHECK(i + 1 < len && p[i + 1] == '\n');
			i++;
			lines++;
			bol = 1;
			continue;
		}
		FUZZ_CHECK(c >= 0x20 && c != 0x7f);
	}
	FUZZ_CHECK(bol);
	FUZZ_CHECK(lines == ncmds);
}

/* LLVMFuzzerTestOneInput - one input, checked as the header comment says */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct config	*cfg;
	static char		 line[TRK_SRV_LINE_MAX + 3];
	struct trk_session	*s;
	const char		*p = (const char *)data, *end = p + size, *nl;
	size_t			 n, ncmds = 0;

	if (cfg == NULL) {
		char err[512];

		if ((cfg = cfg_load(NULL, err, sizeof(err))) == NULL)
			return 0;
		cfg->mtqp_require_tls = 1;
		trk_cfg = cfg;
		if ((trk_base = event_base_new()) == NULL)
			return 0;
	}
	if ((s = calloc(1, sizeof(*s))) == NULL)
		return 0;
	(void)snprintf(s->sid, sizeof(s->sid), "fuzz");
	(void)snprintf(s->addr, sizeof(s->addr), "127.0.0.1");
	/* no socket: the responses stay in the output buffer */
	if ((s->bev = bufferevent_socket_new(trk_base, -1, 0)) == NULL) {
		free(s);
		return 0;
	}
	while (p < end && s->state == TRK_READY) {
		nl = memchr(p, '\n', (size_t)(end - p));
		n = (size_t)((nl != NULL ? nl : end) - p);
		if (n > 0 && p[n - 1] == '\r')
			n--;
		if (n > TRK_SRV_LINE_MAX)
			trk_cmd_overlong(s);
		else {
			memcpy(line, p, n);
			line[n] = '\0';
			trk_cmd_dispatch(s, line, n);
		}
		ncmds++;
		p = nl != NULL ? nl + 1 : end;
	}
	check_out(bufferevent_get_output(s->bev), ncmds);
	if (s->closetimer != NULL)
		event_free(s->closetimer);
	bufferevent_free(s->bev);
	free(s);
	/* libevent finalizes a freed bufferevent from the loop */
	(void)event_base_loop(trk_base, EVLOOP_NONBLOCK);
	return 0;
}
