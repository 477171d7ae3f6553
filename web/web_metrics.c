#include "config.h"
/*
 * web_metrics.c - the Prometheus listener: `metrics = ADDR:PORT` (off by
 * default), its own evhttp on the daemon's loop, serving only
 * GET /metrics (text format 0.0.4, Content-Type
 * "text/plain; version=0.0.4; charset=utf-8"); another path gets 404,
 * another method on /metrics 405.  No authentication, no TLS: bind it
 * to loopback or a management network.
 * Entry points: web_metrics_bind/start/stop (web_int.h), called by
 *       web_server_bind/start/stop.
 * The answer: common/metrics.c's counters and histograms, the queue's
 *       per-state gauges (queue_state_gauges: kept in memory, O(states))
 *       and statvfs of the spool; nothing is scanned.  Successful
 *       scrapes are logged at debug level only (one a second is usual),
 *       errors at info: "metrics client=[A] method=M path=P status=N".
 * Bounds: http_max_header_size, http_timeout; no request body.
 */

#include <sys/types.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "common/buf.h"
#include "common/cfg.h"
#include "common/log.h"
#include "common/metrics.h"
#include "common/util.h"
#include "queue/queue.h"
#include "web/web_int.h"

#define METRICS_MAX	(1024 * 1024)	/* bytes of one exposition */
#define METRICS_TYPE	"text/plain; version=0.0.4; charset=utf-8"

static int		 mfd = -1;	/* bound, not yet evhttp's */
static struct evhttp	*mhttp;
static struct buf	 mbuf;		/* reused by every scrape */

int
web_metrics_bind(const struct config *cfg, char *err, size_t errlen)
{
	const char	*failed;

	if (cfg->nmetrics == 0)
		return 0;
	if ((mfd = tcp_listen((const struct sockaddr *)&cfg->metrics[0].ss,
	    cfg->metrics[0].len, &failed)) == -1) {
		snprintf(err, errlen, "metrics %s: %s%s%s", cfg->metrics[0].text,
		    failed ? failed : "", failed ? ": " : "", strerror(errno));
		return -1;
	}
	return 0;
}

/* answer - code with a short text body (errors) */
static void
answer(struct evhttp_request *req, int code, const char *reason,
    const char *text)
{
	struct evbuffer	*out;

	evhttp_add_header(evhttp_request_get_output_headers(req),
	    "Content-Type", "text/plain; charset=utf-8");
	if ((out = evbuffer_new()) != NULL)
		(void)evbuffer_add_printf(out, "%s\n", text);
	evhttp_send_reply(req, code, reason, out);
	if (out != NULL)
		evbuffer_free(out);
}

/* scrape - the exposition into mbuf; 0 or -1 */
static int
scrape(void)
{
	struct queue_state_gauge	qg[QUEUE_NSTATES];
	struct metrics_queue_gauge	mg[QUEUE_NSTATES];
	size_t				n, i;

	n = queue_state_gauges(qg, QUEUE_NSTATES, time(NULL));
	for (i = 0; i < n; i++) {
		mg[i].state = qg[i].state;
		mg[i].messages = qg[i].messages;
		mg[i].oldest_seconds = qg[i].oldest_seconds;
	}
	buf_reset(&mbuf);
	return metrics_render(&mbuf, mg, n, queue_spool_free_bytes());
}

/* request_cb - every request on the metrics listener */
static void
request_cb(struct evhttp_request *req, void *arg)
{
	const struct evhttp_uri	*uri = evhttp_request_get_evhttp_uri(req);
	const char		*path = uri != NULL ? evhttp_uri_get_path(uri) :
				    NULL;
	enum evhttp_cmd_type	 cmd = evhttp_request_get_command(req);
	struct evbuffer		*out;
	char			 addr[64] = "unknown", epath[128];
	const struct sockaddr	*sa;
	int			 code;

	(void)arg;
	if (path == NULL)
		path = "";
	if (strcmp(path, "/metrics") != 0) {
		code = 404;
		answer(req, code, "Not Found", "not found");
	} else if (cmd != EVHTTP_REQ_GET) {
		code = 405;
		evhttp_add_header(evhttp_request_get_output_headers(req),
		    "Allow", "GET");
		answer(req, code, "Method Not Allowed", "method not allowed");
	} else if (scrape() == -1 || (out = evbuffer_new()) == NULL) {
		code = 500;
		answer(req, code, "Internal Server Error", "out of memory");
	} else {
		code = 200;
		evhttp_add_header(evhttp_request_get_output_headers(req),
		    "Content-Type", METRICS_TYPE);
		evhttp_add_header(evhttp_request_get_output_headers(req),
		    "Cache-Control", "no-store");
		if (evbuffer_add(out, mbuf.data, mbuf.len) == -1)
			code = 500;
		if (code == 200)
			evhttp_send_reply(req, code, "OK", out);
		else
			answer(req, code, "Internal Server Error",
			    "out of memory");
		evbuffer_free(out);
	}
	sa = evhttp_connection_get_addr(evhttp_request_get_connection(req));
	if (sa != NULL && sockaddr_text(sa, addr, sizeof(addr)) == -1)
		snprintf(addr, sizeof(addr), "unknown");
	log_escape(epath, sizeof(epath), path, strlen(path));
	if (code == 200)
		log_debug("metrics client=[%s] method=GET path=%s status=200 "
		    "bytes=%zu", addr, epath, mbuf.len);
	else
		log_info("metrics client=[%s] method=%s path=%s status=%d",
		    addr, cmd == EVHTTP_REQ_GET ? "GET" : cmd ==
		    EVHTTP_REQ_HEAD ? "HEAD" : cmd == EVHTTP_REQ_POST ?
		    "POST" : "other", epath, code);
}

int
web_metrics_start(const struct config *cfg, struct event_base *base,
    char *err, size_t errlen)
{
	int	one = 1;

	if (mfd == -1)
		return 0;
	buf_init(&mbuf, METRICS_MAX);
	if ((mhttp = evhttp_new(base)) == NULL) {
		snprintf(err, errlen, "metrics: evhttp_new failed");
		return -1;
	}
	evhttp_set_timeout(mhttp, (int)cfg->http_timeout);
	evhttp_set_max_headers_size(mhttp,
	    (ev_ssize_t)cfg->http_max_header_size);
	evhttp_set_max_body_size(mhttp, 0);
	evhttp_set_allowed_methods(mhttp, EVHTTP_REQ_GET | EVHTTP_REQ_POST |
	    EVHTTP_REQ_HEAD | EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
	    EVHTTP_REQ_OPTIONS | EVHTTP_REQ_PATCH);
	evhttp_set_gencb(mhttp, request_cb, NULL);
	(void)setsockopt(mfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (evhttp_accept_socket_with_handle(mhttp, mfd) == NULL) {
		snprintf(err, errlen, "metrics: cannot listen");
		return -1;
	}
	mfd = -1;		/* evhttp's now */
	log_info("metrics: listening on %s", cfg->metrics[0].text);
	return 0;
}

void
web_metrics_stop(void)
{
	if (mfd != -1)
		close(mfd);
	mfd = -1;
	if (mhttp != NULL)
		evhttp_free(mhttp);
	mhttp = NULL;
	buf_free(&mbuf);
}
