#include "config.h"
/*
 * smtpd_control.c - the control socket that the `waymark` CLI talks to.
 * Owns: the unix stream socket cfg->control (mode 0660, owner = the
 *       daemon's user), one request per connection: one JSON line in
 *       (at most CTL_MAX_LINE bytes), one JSON line out, then close.
 * Protocol: /work/notes/CONTROL.md; requests "queue" [state], "show" qid,
 *       "flush"; answers {"ok":true,"result":...} or
 *       {"ok":false,"error":"...","reason":"unknown_qid|not_allowed|bad_request"}.
 * Not here: building message objects (queue_list_json & co in queue/).
 * Invariants: a connection lives at most CTL_TIMEOUT seconds until its
 *       request is answered; every connection is freed at stop.
 */

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <jansson.h>

#include "common/cfg.h"
#include "common/log.h"
#include "common/util.h"
#include "queue/queue.h"
#include "smtpd/smtpd_int.h"

#define CTL_MAX_LINE	(64 * 1024)
#define CTL_TIMEOUT	10

struct ctl_conn {
	struct bufferevent	*bev;
	struct event		*timer;
	int			 closing;	/* 1: reply queued; 2: written, lingering */
	int			 eof;		/* the client shut down its side */
	unsigned		 id;
	struct ctl_conn		*prev, *next;
};

static struct {
	int			 fd;
	char			 path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	struct evconnlistener	*lev;
	struct event_base	*base;
	struct ctl_conn		*conns;
	unsigned		 nextid;
} ctl = { .fd = -1 };

static void	ctl_conn_free(struct ctl_conn *c);

/* ctl_path_in_use - 1 when a daemon answers on path */
static int
ctl_path_in_use(const struct sockaddr_un *sun)
{
	int	fd, r;

	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		return 0;
	r = connect(fd, (const struct sockaddr *)sun, sizeof(*sun));
	close(fd);
	return r == 0;
}

/* smtpd_control_bind - create the socket before the privilege drop */
int
smtpd_control_bind(const struct config *cfg, long uid, long gid,
    char *err, size_t errlen)
{
	struct sockaddr_un	 sun;
	struct stat		 st;
	char			 dir[sizeof(sun.sun_path)], *slash;
	mode_t			 old;
	int			 fd = -1, r;

	if (cfg->control == NULL || cfg->control[0] == '\0') {
		snprintf(err, errlen, "control: no socket path configured");
		return -1;
	}
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	r = snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", cfg->control);
	if (r < 0 || (size_t)r >= sizeof(sun.sun_path)) {
		snprintf(err, errlen, "control socket %s: path too long "
		    "(at most %zu bytes)", cfg->control,
		    sizeof(sun.sun_path) - 1);
		return -1;
	}
	/* the socket's directory: create it when missing */
	memcpy(dir, sun.sun_path, sizeof(dir));
	if ((slash = strrchr(dir, '/')) != NULL && slash != dir) {
		*slash = '\0';
		if (stat(dir, &st) == -1 && mkdir_p(dir, 0755) == -1) {
			snprintf(err, errlen, "control socket directory %s: %s",
			    dir, strerror(errno));
			return -1;
		}
	}
	if (lstat(sun.sun_path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			snprintf(err, errlen, "control socket %s: exists and "
			    "is not a socket", sun.sun_path);
			return -1;
		}
		if (ctl_path_in_use(&sun)) {
			snprintf(err, errlen, "control socket %s is in use "
			    "by another daemon", sun.sun_path);
			return -1;
		}
		if (unlink(sun.sun_path) == -1) {
			snprintf(err, errlen, "cannot remove stale control "
			    "socket %s: %s", sun.sun_path, strerror(errno));
			return -1;
		}
	}
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK,
	    0)) == -1) {
		snprintf(err, errlen, "control socket: %s", strerror(errno));
		goto fail;
	}
	old = umask(0117);
	r = bind(fd, (struct sockaddr *)&sun, sizeof(sun));
	umask(old);
	if (r == -1) {
		snprintf(err, errlen, "control socket %s: bind: %s",
		    sun.sun_path, strerror(errno));
		goto fail;
	}
	if (chmod(sun.sun_path, 0660) == -1) {
		snprintf(err, errlen, "control socket %s: chmod: %s",
		    sun.sun_path, strerror(errno));
		goto fail_unlink;
	}
	if (uid != -1 && chown(sun.sun_path, (uid_t)uid, (gid_t)gid) == -1) {
		snprintf(err, errlen, "control socket %s: chown: %s",
		    sun.sun_path, strerror(errno));
		goto fail_unlink;
	}
	if (listen(fd, SOMAXCONN) == -1) {
		snprintf(err, errlen, "control socket %s: listen: %s",
		    sun.sun_path, strerror(errno));
		goto fail_unlink;
	}
	memcpy(ctl.path, sun.sun_path, sizeof(ctl.path));
	ctl.fd = fd;
	return 0;

fail_unlink:
	unlink(sun.sun_path);
fail:
	if (fd != -1)
		close(fd);
	return -1;
}

/* ctl_reply - queue the answer (consumes obj), stop reading, close when written */
static void
ctl_reply(struct ctl_conn *c, json_t *obj)
{
	struct evbuffer	*out = bufferevent_get_output(c->bev);
	char		*s = NULL;

	if (obj != NULL)
		s = json_dumps(obj, JSON_COMPACT);
	json_decref(obj);
	if (s == NULL) {
		log_warnx("control: #%u: cannot encode the reply", c->id);
		s = strdup("{\"ok\":false,\"error\":\"out of memory\","
		    "\"reason\":\"bad_request\"}");
	}
	if (s == NULL || evbuffer_add(out, s, strlen(s)) == -1 ||
	    evbuffer_add(out, "\n", 1) == -1) {
		free(s);
		ctl_conn_free(c);
		return;
	}
	free(s);
	c->closing = 1;
	bufferevent_disable(c->bev, EV_READ);
	/* the total-lifetime timer only guards the request; writes of a
	 * large answer are guarded by the bufferevent's write timeout */
	evtimer_del(c->timer);
}

static json_t *
ctl_error(const char *reason, const char *fmt, ...) WM_PRINTF(2, 3);

/* ctl_error - {"ok":false,"error":...,"reason":...} */
static json_t *
ctl_error(const char *reason, const char *fmt, ...)
{
	char	msg[512];
	va_list	ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return json_pack("{s:b,s:s,s:s}", "ok", 0, "error", msg,
	    "reason", reason);
}

static json_t *
ctl_ok(json_t *result)
{
	if (result == NULL)
		return NULL;
	return json_pack("{s:b,s:o}", "ok", 1, "result", result);
}

/* ctl_do_queue - {"cmd":"queue"[,"state":S]} */
static json_t *
ctl_do_queue(struct ctl_conn *c, json_t *req)
{
	json_t		*js, *res;
	const char	*sname = NULL;
	int		 state = -1;

	(void)c;
	if ((js = json_object_get(req, "state")) != NULL &&
	    !json_is_null(js)) {
		if (!json_is_string(js))
			return ctl_error("bad_request", "state must be a "
			    "string");
		sname = json_string_value(js);
		if ((state = msg_state_parse(sname)) < 0)
			return ctl_error("bad_request", "unknown state: %.64s",
			    sname);
	}
	if ((res = queue_list_json(state)) == NULL)
		return ctl_error("bad_request", "cannot list the queue");
	log_info("control: queue%s%s (%zu message%s)",
	    sname ? " state=" : "", sname ? msg_state_name(state) : "",
	    json_array_size(res), json_array_size(res) == 1 ? "" : "s");
	return ctl_ok(res);
}

/* ctl_do_show - {"cmd":"show","qid":Q} */
static json_t *
ctl_do_show(struct ctl_conn *c, json_t *req)
{
	json_t		*jq, *res;
	const char	*qid;

	(void)c;
	jq = json_object_get(req, "qid");
	if (!json_is_string(jq))
		return ctl_error("bad_request", "show needs a \"qid\" string");
	qid = json_string_value(jq);
	if (!qid_valid(qid) || (res = queue_show_json(qid)) == NULL) {
		char esc[80];

		log_escape(esc, sizeof(esc), qid, strlen(qid));
		log_info("control: show %s (unknown queue id)", esc);
		return ctl_error("unknown_qid", "no such message: %s", esc);
	}
	log_info("control: show %s", qid);
	return ctl_ok(res);
}

/* ctl_do_flush - {"cmd":"flush"} */
static json_t *
ctl_do_flush(struct ctl_conn *c, json_t *req)
{
	int	n;

	(void)c;
	(void)req;
	n = queue_flush();
	log_info("control: flush (%d recipient%s)", n, n == 1 ? "" : "s");
	return ctl_ok(json_pack("{s:i}", "count", (json_int_t)n));
}

static const struct ctl_cmd {
	const char	*name;
	json_t		*(*fn)(struct ctl_conn *, json_t *);
} ctl_cmds[] = {
	{ "queue",	ctl_do_queue },
	{ "show",	ctl_do_show },
	{ "flush",	ctl_do_flush },
};

/* ctl_dispatch - parse one request line and answer it */
static void
ctl_dispatch(struct ctl_conn *c, const char *line, size_t len)
{
	json_error_t	 jerr;
	json_t		*req, *jc, *ans = NULL;
	const char	*cmd;
	size_t		 i;

	req = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);
	if (req == NULL || !json_is_object(req)) {
		log_info("control: #%u bad request: %s", c->id,
		    req == NULL ? jerr.text : "not an object");
		ans = ctl_error("bad_request", "bad request: %s",
		    req == NULL ? jerr.text : "not a JSON object");
		goto out;
	}
	jc = json_object_get(req, "cmd");
	if (!json_is_string(jc)) {
		ans = ctl_error("bad_request", "bad request: no \"cmd\"");
		goto out;
	}
	cmd = json_string_value(jc);
	for (i = 0; i < sizeof(ctl_cmds) / sizeof(ctl_cmds[0]); i++)
		if (strcmp(cmd, ctl_cmds[i].name) == 0)
			break;
	if (i == sizeof(ctl_cmds) / sizeof(ctl_cmds[0])) {
		char esc[80];

		log_escape(esc, sizeof(esc), cmd, strlen(cmd));
		log_info("control: #%u unknown command %s", c->id, esc);
		ans = ctl_error("bad_request", "unknown command: %s", esc);
		goto out;
	}
	ans = ctl_cmds[i].fn(c, req);
	if (ans == NULL)
		ans = ctl_error("bad_request", "out of memory");
out:
	json_decref(req);
	ctl_reply(c, ans);
}

/*
 * ctl_input - answer the request once a whole line is in; at eof a last
 * line without "\n" counts too.  Returns 1 when a reply was queued (or
 * the connection freed), 0 to wait for more input.
 */
static int
ctl_input(struct ctl_conn *c, int eof)
{
	struct evbuffer	*in = bufferevent_get_input(c->bev);
	struct evbuffer_ptr eol;
	size_t		 n, len;
	char		*line;

	eol = evbuffer_search_eol(in, NULL, &n, EVBUFFER_EOL_LF);
	if (eol.pos != -1)
		len = (size_t)eol.pos;
	else if (eof && evbuffer_get_length(in) > 0)
		len = evbuffer_get_length(in);
	else {
		if (evbuffer_get_length(in) <= CTL_MAX_LINE)
			return 0;
		len = evbuffer_get_length(in);
	}
	if (len > CTL_MAX_LINE) {
		log_info("control: #%u request longer than %d bytes", c->id,
		    CTL_MAX_LINE);
		evbuffer_drain(in, evbuffer_get_length(in));
		ctl_reply(c, ctl_error("bad_request", "request too long "
		    "(at most %d bytes)", CTL_MAX_LINE));
		return 1;
	}
	if ((line = malloc(len + 1)) == NULL) {
		ctl_conn_free(c);
		return 1;
	}
	if (evbuffer_remove(in, line, len) != (int)len) {
		free(line);
		ctl_conn_free(c);
		return 1;
	}
	line[len] = '\0';
	evbuffer_drain(in, evbuffer_get_length(in));
	if (len > 0 && line[len - 1] == '\r')
		len--;
	ctl_dispatch(c, line, len);
	free(line);
	return 1;
}

static void
ctl_read_cb(struct bufferevent *bev, void *arg)
{
	struct ctl_conn	*c = arg;

	if (c->closing) {
		/* lingering after the reply: discard whatever comes */
		evbuffer_drain(bufferevent_get_input(bev),
		    evbuffer_get_length(bufferevent_get_input(bev)));
		return;
	}
	(void)ctl_input(c, 0);
}

/* ctl_write_cb - the reply is out: close our side, linger for the client's */
static void
ctl_write_cb(struct bufferevent *bev, void *arg)
{
	struct ctl_conn	*c = arg;
	struct timeval	 tv = { CTL_TIMEOUT, 0 };

	if (c->closing != 1 ||
	    evbuffer_get_length(bufferevent_get_output(bev)) > 0)
		return;
	/*
	 * Closing with unread input would reset the connection and could
	 * destroy the reply in flight: shut down our side and read until
	 * the client closes (at most CTL_TIMEOUT).
	 */
	c->closing = 2;
	if (c->eof || shutdown(bufferevent_getfd(bev), SHUT_WR) == -1) {
		ctl_conn_free(c);
		return;
	}
	bufferevent_enable(bev, EV_READ);
	evtimer_add(c->timer, &tv);
}

static void
ctl_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct ctl_conn	*c = arg;

	(void)bev;
	if (what & BEV_EVENT_EOF)
		c->eof = 1;
	if (c->closing == 1 && !(what & (BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT)))
		return;		/* the reply is still being written */
	if (!c->closing && (what & BEV_EVENT_EOF) &&
	    !(what & BEV_EVENT_ERROR)) {
		/* the client shut down its side: a last line without
		 * "\n" is still a request */
		if (ctl_input(c, 1))
			return;
	}
	if (what & BEV_EVENT_TIMEOUT)
		log_info("control: #%u timeout", c->id);
	else if (what & BEV_EVENT_ERROR)
		log_debug("control: #%u: %s", c->id,
		    evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
	ctl_conn_free(c);
}

static void
ctl_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct ctl_conn	*c = arg;

	(void)fd;
	(void)what;
	if (c->closing == 0)
		log_info("control: #%u timeout after %d s", c->id,
		    CTL_TIMEOUT);
	ctl_conn_free(c);
}

static void
ctl_conn_free(struct ctl_conn *c)
{
	if (c->prev)
		c->prev->next = c->next;
	else
		ctl.conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	if (c->timer)
		event_free(c->timer);
	if (c->bev)
		bufferevent_free(c->bev);
	free(c);
}

static void
ctl_accept_cb(struct evconnlistener *lev, evutil_socket_t fd,
    struct sockaddr *sa, int salen, void *arg)
{
	struct ctl_conn	*c;
	struct timeval	 tv = { CTL_TIMEOUT, 0 };

	(void)lev;
	(void)sa;
	(void)salen;
	(void)arg;
	if ((c = calloc(1, sizeof(*c))) == NULL) {
		log_warn("control: calloc");
		evutil_closesocket(fd);
		return;
	}
	c->id = ++ctl.nextid;
	c->bev = bufferevent_socket_new(ctl.base, fd, BEV_OPT_CLOSE_ON_FREE);
	c->timer = evtimer_new(ctl.base, ctl_timer_cb, c);
	if (c->bev == NULL || c->timer == NULL) {
		log_warnx("control: cannot set up a connection");
		if (c->bev == NULL)
			evutil_closesocket(fd);
		else
			bufferevent_free(c->bev);
		if (c->timer)
			event_free(c->timer);
		free(c);
		return;
	}
	c->next = ctl.conns;
	if (ctl.conns)
		ctl.conns->prev = c;
	ctl.conns = c;
	bufferevent_setcb(c->bev, ctl_read_cb, ctl_write_cb, ctl_event_cb, c);
	bufferevent_setwatermark(c->bev, EV_READ, 0, CTL_MAX_LINE + 2);
	bufferevent_set_timeouts(c->bev, &tv, &tv);
	evtimer_add(c->timer, &tv);
	if (bufferevent_enable(c->bev, EV_READ) == -1)
		ctl_conn_free(c);
}

static void
ctl_accept_error_cb(struct evconnlistener *lev, void *arg)
{
	(void)lev;
	(void)arg;
	log_warn("control: accept");
}

/* smtpd_control_start - attach the bound socket to the loop */
int
smtpd_control_start(struct event_base *base)
{
	if (ctl.fd == -1)
		return -1;
	ctl.base = base;
	evutil_make_socket_nonblocking(ctl.fd);
	/* backlog 0: listen() was called already in smtpd_control_bind */
	ctl.lev = evconnlistener_new(base, ctl_accept_cb, NULL,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 0, ctl.fd);
	if (ctl.lev == NULL)
		return -1;
	evconnlistener_set_error_cb(ctl.lev, ctl_accept_error_cb);
	return 0;
}

/* smtpd_control_stop - close the socket and every control connection */
void
smtpd_control_stop(void)
{
	if (ctl.lev != NULL) {
		evconnlistener_free(ctl.lev);	/* closes ctl.fd */
		ctl.lev = NULL;
		ctl.fd = -1;
	} else if (ctl.fd != -1) {
		close(ctl.fd);
		ctl.fd = -1;
	}
	while (ctl.conns != NULL)
		ctl_conn_free(ctl.conns);
	/* may fail after the privilege drop (the directory is root's);
	 * the next start removes a stale socket */
	if (ctl.path[0] != '\0' && unlink(ctl.path) == -1 && errno != ENOENT)
		log_debug("control: cannot remove %s: %s", ctl.path,
		    strerror(errno));
	ctl.path[0] = '\0';
}
