#include "config.h"
/*
 * smtpd_control.c - the control socket that the `waymark` CLI talks to.
 * Owns: the unix stream socket cfg->control (owner = the daemon's user,
 *       group = control_group; mode 0660, or 0666 with control_read =
 *       anyone), one request per connection: one JSON line in (at most
 *       CTL_MAX_LINE bytes), one JSON line out, then close.
 * Access (SO_PEERCRED, checked for every request whatever the mode):
 *       root, the daemon's own user and members of control_group (the
 *       peer's gid, or its user's groups by getgrouplist) may run every
 *       command; others only queue and show, and only with control_read
 *       = anyone; the rest are answered reason "denied".
 * Protocol: requests {"cmd":"queue"[,"state":"S[/VALUE]"]} (with
 *       "limit":N[,"after":QID]: one page, {"next":Q,"messages":[...]},
 *       "next" written first),
 *       {"cmd":"show","qid":Q}, {"cmd":"message","qid":Q} (the stored
 *       message, base64), {"cmd":"flush"}, and the operator actions
 *       {"cmd":"hold"|"release"|"delete","qid":Q[,"bounce":true]},
 *       {"cmd":"tlsrpt"} (TLS-RPT reports of everything counted so far,
 *       queued in the background: {"count":N} policy domains);
 *       answers {"ok":true,"result":...} or {"ok":false,"error":"...",
 *       "reason":"unknown_qid|not_allowed|bad_request|failed|denied"}.  An
 *       action is answered only once its change is on stable storage;
 *       its actor is the peer's Unix user (SO_PEERCRED).
 * Creation: never by name in a directory another user can write.  In a
 *       directory only root writes (or a sticky one) root binds before
 *       the drop and gives the socket away with fchownat (no follow); in
 *       the user's own directory (the spool, say) the user binds after
 *       the drop.  A symbolic link at the path is refused, never followed
 *       nor removed; a directory of a third user, or group/world
 *       writable without the sticky bit, is refused.
 * Not here: building message objects (queue_list_json & co in queue/).
 * Invariants: a connection lives at most CTL_TIMEOUT seconds until its
 *       request is answered; every connection is freed at stop.
 */

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdint.h>
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

#include "common/bevio.h"
#include "common/cfg.h"
#include "common/jarena.h"
#include "common/log.h"
#include "common/syntax.h"
#include "common/util.h"
#include "delivery/delivery.h"
#include "queue/queue.h"
#include "smtpd/smtpd_int.h"

#define CTL_MAX_LINE	(64 * 1024)
#define CTL_TIMEOUT	10

struct ctl_conn {
	struct bufferevent	*bev;
	struct event		*timer;
	int			 closing;	/* 1: reply queued; 2: written, lingering */
	int			 eof;		/* the client shut down its side */
	int			 pending;	/* an action waits for its commit */
	unsigned		 id;
	int			 cred;		/* uid and gid below are known */
	int			 named;		/* user is a name from passwd */
	uid_t			 uid;		/* the peer's (SO_PEERCRED) */
	gid_t			 gid;
	char			 user[64];	/* the peer's Unix user (SO_PEERCRED) */
	struct ctl_conn		*prev, *next;
};

static struct {
	int			 fd;
	int			 dirfd;		/* the socket's directory, checked */
	int			 late;		/* the user's directory: bind after the drop */
	int			 bound;		/* the name is ours: unlink it at stop */
	long			 uid, gid;	/* owner given by root, -1 = none */
	long			 cgid;		/* control_group's gid */
	int			 anyone;	/* control_read = anyone */
	char			 cgname[64];	/* control_group's name */
	char			 path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	char			 name[sizeof(((struct sockaddr_un *)0)->sun_path)];
	struct evconnlistener	*lev;
	struct event_base	*base;
	struct ctl_conn		*conns;
	unsigned		 nextid;
} ctl = { .fd = -1, .dirfd = -1, .uid = -1, .gid = -1, .cgid = -1 };

static void	ctl_conn_free(struct ctl_conn *c);

/*
 * ctl_enter / ctl_leave - bind() and connect() take no directory fd, so
 * the relative name is used with the working directory on ctl.dirfd for
 * the call; the start-up working directory (the spool) is restored.
 */
static int
ctl_enter(int *save)
{
	int	e;

	if ((*save = open(".", O_PATH | O_DIRECTORY | O_CLOEXEC)) == -1)
		return -1;
	if (fchdir(ctl.dirfd) == -1) {
		e = errno;
		close(*save);
		errno = e;
		return -1;
	}
	return 0;
}

static void
ctl_leave(int save)
{
	if (fchdir(save) == -1)
		fatal("control: cannot return to the working directory");
	close(save);
}

/* ctl_name_in_use - 1 when a daemon answers on the name */
static int
ctl_name_in_use(const struct sockaddr_un *sun)
{
	int	fd, r, save;

	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		return 0;
	if (ctl_enter(&save) == -1) {
		close(fd);
		return 0;
	}
	r = connect(fd, (const struct sockaddr *)sun, sizeof(*sun));
	ctl_leave(save);
	close(fd);
	return r == 0;
}

/*
 * ctl_do_bind - create the socket at ctl.name in ctl.dirfd: a stale
 * socket is removed, a symbolic link or anything else is refused and
 * left alone; the mode (0660, 0666 for control_read = anyone) comes from
 * the umask at bind (Linux ignores fchmod on a socket fd), the owner
 * (user:control_group) from fchownat without following.
 */
static int
ctl_do_bind(char *err, size_t errlen)
{
	struct sockaddr_un	 sun;
	struct stat		 st;
	mode_t			 old;
	int			 fd = -1, r, e, save;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	memcpy(sun.sun_path, ctl.name, sizeof(sun.sun_path));
	if (fstatat(ctl.dirfd, ctl.name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
		if (S_ISLNK(st.st_mode)) {
			snprintf(err, errlen, "control socket %s is a "
			    "symbolic link: refusing to follow or remove it "
			    "(remove it; waymarkd creates the socket itself)",
			    ctl.path);
			return -1;
		}
		if (!S_ISSOCK(st.st_mode)) {
			snprintf(err, errlen, "control socket %s: exists and "
			    "is not a socket", ctl.path);
			return -1;
		}
		if (ctl_name_in_use(&sun)) {
			snprintf(err, errlen, "control socket %s is in use "
			    "by another daemon", ctl.path);
			return -1;
		}
		if (unlinkat(ctl.dirfd, ctl.name, 0) == -1) {
			snprintf(err, errlen, "cannot remove stale control "
			    "socket %s: %s", ctl.path, strerror(errno));
			return -1;
		}
	} else if (errno != ENOENT) {
		snprintf(err, errlen, "control socket %s: %s", ctl.path,
		    strerror(errno));
		return -1;
	}
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK,
	    0)) == -1) {
		snprintf(err, errlen, "control socket: %s", strerror(errno));
		return -1;
	}
	if (ctl_enter(&save) == -1) {
		snprintf(err, errlen, "control socket directory of %s: %s",
		    ctl.path, strerror(errno));
		goto fail;
	}
	old = umask(ctl.anyone ? 0111 : 0117);
	r = bind(fd, (struct sockaddr *)&sun, sizeof(sun));
	e = errno;
	umask(old);
	ctl_leave(save);
	if (r == -1) {
		snprintf(err, errlen, "control socket %s: bind: %s",
		    ctl.path, strerror(e));
		goto fail;
	}
	ctl.bound = 1;
	/* root's own socket in a directory only root writes (or sticky) */
	if (!ctl.late && ctl.uid != -1 && fchownat(ctl.dirfd, ctl.name,
	    (uid_t)ctl.uid, (gid_t)ctl.cgid, AT_SYMLINK_NOFOLLOW) == -1) {
		snprintf(err, errlen, "control socket %s: chown: %s",
		    ctl.path, strerror(errno));
		goto fail;
	}
	/* not root: the group only, where we are a member of it */
	if (ctl.uid == -1 && (gid_t)ctl.cgid != getegid() &&
	    fchownat(ctl.dirfd, ctl.name, (uid_t)-1, (gid_t)ctl.cgid,
	    AT_SYMLINK_NOFOLLOW) == -1)
		log_warnx("control socket %s: cannot give it to group %s "
		    "(control_group): %s; it keeps the daemon's group",
		    ctl.path, ctl.cgname, strerror(errno));
	if (listen(fd, SOMAXCONN) == -1) {
		snprintf(err, errlen, "control socket %s: listen: %s",
		    ctl.path, strerror(errno));
		goto fail;
	}
	ctl.fd = fd;
	return 0;

fail:
	if (ctl.bound)
		unlinkat(ctl.dirfd, ctl.name, 0);
	ctl.bound = 0;
	close(fd);
	return -1;
}

/* smtpd_control_bind - check the directory; bind now when it is root's */
int
smtpd_control_bind(const struct config *cfg, long uid, long gid,
    char *err, size_t errlen)
{
	struct sockaddr_un	 sun;
	struct stat		 st;
	char			 dir[sizeof(sun.sun_path)], *slash, why[512];
	const char		*who = uid != -1 ? cfg->user : "the current user";
	int			 r;

	if (cfg->control == NULL || cfg->control[0] == '\0') {
		snprintf(err, errlen, "control: no socket path configured");
		return -1;
	}
	if (cfg_control_group(cfg, &ctl.cgid, ctl.cgname, sizeof(ctl.cgname),
	    err, errlen) == -1)
		return -1;
	ctl.anyone = cfg_control_read_anyone(cfg);
	r = snprintf(ctl.path, sizeof(ctl.path), "%s", cfg->control);
	if (r < 0 || (size_t)r >= sizeof(ctl.path)) {
		snprintf(err, errlen, "control socket %s: path too long "
		    "(at most %zu bytes)", cfg->control, sizeof(ctl.path) - 1);
		return -1;
	}
	/* the socket's directory and name (the path is absolute) */
	memcpy(dir, ctl.path, sizeof(dir));
	if ((slash = strrchr(dir, '/')) == NULL || slash[1] == '\0' ||
	    strcmp(slash + 1, ".") == 0 || strcmp(slash + 1, "..") == 0) {
		snprintf(err, errlen, "control socket %s: not a file name",
		    ctl.path);
		return -1;
	}
	memcpy(ctl.name, slash + 1, strlen(slash + 1) + 1);
	if (slash == dir)
		slash[1] = '\0';	/* "/" */
	else
		*slash = '\0';
	/* created when missing; no link another user planted is followed */
	if ((ctl.dirfd = dir_open_safe(dir, 0755, 1, &r, why,
	    sizeof(why))) == -1) {
		snprintf(err, errlen, "control socket %s: %s", ctl.path, why);
		return -1;
	}
	if (fstat(ctl.dirfd, &st) == -1) {
		snprintf(err, errlen, "control socket directory %s: %s",
		    dir, strerror(errno));
		return -1;
	}
	/*
	 * Root creates the socket only where nobody else can change names
	 * (its own directory, or a sticky one, where the entry it made
	 * stays its own); in the user's directory the user does, after the
	 * drop, so root never acts there.
	 */
	if (uid != -1 && st.st_uid == (uid_t)uid)
		ctl.late = 1;
	else if (st.st_uid != 0 && st.st_uid != geteuid()) {
		snprintf(err, errlen, "control socket directory %s is owned "
		    "by uid %lu, not by root or %s: refusing to create %s "
		    "there", dir, (unsigned long)st.st_uid, who, ctl.path);
		return -1;
	}
	if ((st.st_mode & (S_IWGRP | S_IWOTH)) && !(st.st_mode & S_ISVTX)) {
		snprintf(err, errlen, "control socket directory %s is "
		    "writable by its group or others (mode %04o): refusing "
		    "to create %s there (use a directory only root or %s "
		    "can write)", dir, (unsigned)(st.st_mode & 07777),
		    ctl.path, who);
		return -1;
	}
	ctl.uid = uid;
	ctl.gid = gid;
	/* the user binds in its own directory and cannot chgrp it to a
	 * group it is not in; root acts there only by fd */
	if (ctl.late && ctl.cgid != gid) {
		snprintf(err, errlen, "control socket %s is in %s's directory "
		    "%s, where only %s can create it, and %s cannot give it "
		    "to group %s (control_group): put the socket in a "
		    "directory only root writes (control = /run/waymark/"
		    "control.sock) or leave control_group unset", ctl.path,
		    who, dir, who, who, ctl.cgname);
		return -1;
	}
	if (cfg->control_group != NULL && (st.st_mode & S_IXOTH) == 0 &&
	    !((st.st_mode & S_IXGRP) && st.st_gid == (gid_t)ctl.cgid))
		log_warnx("control_group = %s, but that group cannot enter %s "
		    "(mode %04o): its members cannot reach the control socket "
		    "%s", ctl.cgname, dir, (unsigned)(st.st_mode & 07777),
		    ctl.path);
	else if (ctl.anyone && (st.st_mode & S_IXOTH) == 0)
		log_warnx("control_read = anyone, but others cannot enter "
		    "%s (mode %04o): only root, %s and group %s reach the "
		    "control socket %s", dir, (unsigned)(st.st_mode & 07777),
		    who, ctl.cgname, ctl.path);
	if (ctl.late) {
		log_debug("control: %s is %s's directory: the socket is "
		    "created after the privilege drop", dir, who);
		return 0;
	}
	return ctl_do_bind(err, errlen);
}

/* smtpd_control_bind_user - after the drop: the user's directory */
int
smtpd_control_bind_user(char *err, size_t errlen)
{
	if (!ctl.late || ctl.fd != -1)
		return 0;
	return ctl_do_bind(err, errlen);
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
		jfree(s);
		ctl_conn_free(c);
		return;
	}
	jfree(s);	/* json_dumps's: the arena's during a listing */
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

/* a handler's answer that comes later (ctl_action_done) */
static int		 ctl_pending_tag;
#define CTL_PENDING	((json_t *)(void *)&ctl_pending_tag)

#define CTL_PAGE_MAX	10000	/* messages per page of a paged listing */

/*
 * ctl_queue_page - {"cmd":"queue",...,"limit":N[,"after":QID]}: one page
 * of at most N messages after QID, as {"messages":[...],"next":QID}
 * ("" = no more).  `waymark queue` asks page by page and prints each
 * at once, so the first line of a queue of 100,000 comes after one
 * small page instead of after the whole listing, and neither side holds
 * the whole listing (queue_page_json walks from after's position).
 */
static json_t *
ctl_queue_page(json_t *req, json_t *jl, int state, const char *value,
    const char *sname)
{
	struct queue_filter	 f;
	json_t			*ja, *res;
	const char		*after = NULL;
	char			 next[48];
	json_int_t		 limit;

	if (!json_is_integer(jl) || (limit = json_integer_value(jl)) < 1 ||
	    limit > CTL_PAGE_MAX)
		return ctl_error("bad_request", "limit must be an integer "
		    "from 1 to %d", CTL_PAGE_MAX);
	if ((ja = json_object_get(req, "after")) != NULL && !json_is_null(ja)) {
		if (!json_is_string(ja) || !qid_valid(json_string_value(ja)))
			return ctl_error("bad_request", "after must be a "
			    "queue id");
		after = json_string_value(ja);
	}
	queue_filter_any(&f);
	f.state = state;
	f.value = value[0] ? value : NULL;
	if ((res = queue_page_json(&f, after, (size_t)limit, next,
	    sizeof(next))) == NULL)
		return ctl_error("bad_request", "cannot list the queue");
	if (after == NULL)	/* once per listing, not per page */
		log_info("control: queue%s%s%s%s (paged)",
		    sname ? " state=" : "", sname ? msg_state_name(state) : "",
		    value[0] ? "/" : "", value);
	/* "next" first: `waymark queue` reads it off the page's octets and
	 * asks for the next page before it parses this one */
	return ctl_ok(json_pack("{s:s,s:o}", "next", next, "messages", res));
}

/* ctl_do_queue - {"cmd":"queue"[,"state":"S[/VALUE]"][,"limit":N
 * [,"after":QID]]} */
static json_t *
ctl_do_queue(struct ctl_conn *c, json_t *req)
{
	json_t		*js, *jl, *res;
	const char	*sname = NULL, *slash;
	char		 kw[32], value[128] = "";
	int		 state = -1;

	(void)c;
	if ((js = json_object_get(req, "state")) != NULL &&
	    !json_is_null(js)) {
		if (!json_is_string(js))
			return ctl_error("bad_request", "state must be a "
			    "string");
		sname = json_string_value(js);
		slash = strchr(sname, '/');
		snprintf(kw, sizeof(kw), "%.*s", slash ? (int)(slash - sname) :
		    (int)strlen(sname), sname);
		if (slash != NULL && (snprintf(value, sizeof(value), "%s",
		    slash + 1) >= (int)sizeof(value) ||
		    mime_check_token(value, strlen(value)) == -1))
			return ctl_error("bad_request", "bad state value: "
			    "%.64s", sname);
		if ((state = msg_state_parse(kw)) < 0)
			return ctl_error("bad_request", "unknown state: %.64s",
			    sname);
	}
	if ((jl = json_object_get(req, "limit")) != NULL)
		return ctl_queue_page(req, jl, state, value, sname);
	if ((res = queue_list_json(state, value[0] ? value : NULL)) == NULL)
		return ctl_error("bad_request", "cannot list the queue");
	log_info("control: queue%s%s%s%s (%zu message%s)",
	    sname ? " state=" : "", sname ? msg_state_name(state) : "",
	    value[0] ? "/" : "", value, json_array_size(res),
	    json_array_size(res) == 1 ? "" : "s");
	return ctl_ok(res);
}

/* ctl_qid - the request's "qid", or NULL with *err set */
static const char *
ctl_qid(json_t *req, const char *cmd, json_t **err)
{
	json_t	*jq = json_object_get(req, "qid");

	if (!json_is_string(jq)) {
		*err = ctl_error("bad_request", "%s needs a \"qid\" string",
		    cmd);
		return NULL;
	}
	return json_string_value(jq);
}

/* ctl_action_done - an action's commit finished: answer, if still there */
static void
ctl_action_done(void *arg, int rc, const char *msg)
{
	unsigned	 id = (unsigned)(uintptr_t)arg;
	struct ctl_conn	*c;

	for (c = ctl.conns; c != NULL; c = c->next)
		if (c->id == id && c->pending)
			break;
	if (c == NULL) {
		log_info("control: #%u left before its answer: %s", id, msg);
		return;
	}
	c->pending = 0;
	ctl_reply(c, rc == 0 ? ctl_ok(json_pack("{s:s}", "message", msg)) :
	    ctl_error("failed", "%s", msg));
}

/* ctl_do_action - hold / release / delete [bounce] one message */
static json_t *
ctl_do_action(struct ctl_conn *c, json_t *req, const char *cmd)
{
	enum queue_action	 a;
	json_t			*err = NULL;
	const char		*qid;
	char			 msg[256], actor[96], esc[80];
	int			 rc;

	if ((qid = ctl_qid(req, cmd, &err)) == NULL)
		return err;
	if (strcmp(cmd, "hold") == 0)
		a = QA_HOLD;
	else if (strcmp(cmd, "release") == 0)
		a = QA_RELEASE;
	else
		a = json_is_true(json_object_get(req, "bounce")) ? QA_BOUNCE :
		    QA_DELETE;
	snprintf(actor, sizeof(actor), "operator %s", c->user);
	log_escape(esc, sizeof(esc), qid, strlen(qid));
	rc = queue_action(qid, a, actor, msg, sizeof(msg), ctl_action_done,
	    (void *)(uintptr_t)c->id);
	switch (rc) {
	case 0:
		log_info("control: %s%s %s by %s", cmd, a == QA_BOUNCE ?
		    " --bounce" : "", esc, c->user);
		c->pending = 1;
		bufferevent_disable(c->bev, EV_READ);
		return CTL_PENDING;
	case QA_UNKNOWN:
		log_info("control: %s %s by %s: unknown queue id", cmd, esc,
		    c->user);
		return ctl_error("unknown_qid", "%s", msg);
	case QA_REFUSED:
		log_info("control: %s %s by %s refused: %s", cmd, esc, c->user,
		    msg);
		return ctl_error("not_allowed", "%s", msg);
	default:
		return ctl_error("failed", "%s", msg);
	}
}

static json_t *
ctl_do_hold(struct ctl_conn *c, json_t *req)
{
	return ctl_do_action(c, req, "hold");
}

static json_t *
ctl_do_release(struct ctl_conn *c, json_t *req)
{
	return ctl_do_action(c, req, "release");
}

static json_t *
ctl_do_delete(struct ctl_conn *c, json_t *req)
{
	return ctl_do_action(c, req, "delete");
}

/* ctl_do_message - {"cmd":"message","qid":Q}: the stored message as it
 * would be delivered (trace fields, then the content), base64 */
static json_t *
ctl_do_message(struct ctl_conn *c, json_t *req)
{
	json_t		*err = NULL, *res;
	const char	*qid;
	char		*text = NULL, *b64, why[256], esc[80];
	size_t		 len = 0, cap;
	int		 rc, n;

	(void)c;
	if ((qid = ctl_qid(req, "message", &err)) == NULL)
		return err;
	log_escape(esc, sizeof(esc), qid, strlen(qid));
	if ((rc = queue_message_text(qid, &text, &len, why,
	    sizeof(why))) != 0) {
		log_info("control: message %s: %s", esc, why);
		return ctl_error(rc == QA_UNKNOWN ? "unknown_qid" :
		    "not_allowed", "%s", why);
	}
	cap = 4 * ((len + 2) / 3) + 1;
	if ((b64 = malloc(cap)) == NULL ||
	    (n = base64_encode((unsigned char *)text, len, b64, cap)) < 0) {
		free(text);
		free(b64);
		return ctl_error("failed", "out of memory");
	}
	free(text);
	res = json_pack("{s:I,s:s}", "size", (json_int_t)len, "base64", b64);
	free(b64);
	log_info("control: message %s (%zu bytes)", esc, len);
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

/* ctl_do_flush - {"cmd":"flush"[,"qid":Q]} */
static json_t *
ctl_do_flush(struct ctl_conn *c, json_t *req)
{
	json_t		*jq = json_object_get(req, "qid");
	const char	*qid = NULL;
	char		 esc[80];
	int		 n;

	(void)c;
	if (jq != NULL && !json_is_null(jq)) {
		if (!json_is_string(jq))
			return ctl_error("bad_request", "qid must be a string");
		qid = json_string_value(jq);
		if (!qid_valid(qid))
			qid = "-";	/* never in the queue */
	}
	if ((n = queue_flush(qid)) < 0) {
		log_escape(esc, sizeof(esc), qid, strlen(qid));
		log_info("control: flush %s (not in the queue)", esc);
		return ctl_error("unknown_qid", "no such message in the "
		    "queue: %s", esc);
	}
	log_info("control: flush%s%s (%d recipient%s)", qid ? " " : "",
	    qid ? qid : "", n, n == 1 ? "" : "s");
	return ctl_ok(json_pack("{s:i}", "count", (json_int_t)n));
}

/* ctl_do_tlsrpt - {"cmd":"tlsrpt"}: the TLS-RPT reports now */
static json_t *
ctl_do_tlsrpt(struct ctl_conn *c, json_t *req)
{
	int	n;

	(void)c;
	(void)req;
	if ((n = dlv_tlsrpt_send(1)) < 0) {
		log_info("control: tlsrpt refused (tlsrpt = no)");
		return ctl_error("not_allowed", "TLS reporting is off "
		    "(tlsrpt = no)");
	}
	log_info("control: tlsrpt (%d policy domain%s)", n, n == 1 ? "" :
	    "s");
	return ctl_ok(json_pack("{s:i}", "count", (json_int_t)n));
}

#define CTL_READ	0x01	/* read-only: open to all with control_read = anyone */
#define CTL_ARENA	0x02	/* answered at once, its jansson objects from an
				   arena (ctl_dispatch): the listings */

static const struct ctl_cmd {
	const char	*name;
	json_t		*(*fn)(struct ctl_conn *, json_t *);
	int		 flags;
	const char	*what;		/* the CLI command, in a refusal */
} ctl_cmds[] = {
	{ "queue",	ctl_do_queue,	CTL_READ | CTL_ARENA, "queue" },
	{ "show",	ctl_do_show,	CTL_READ, "show" },
	{ "flush",	ctl_do_flush,	0, "flush" },
	/* the content: never for all */
	{ "message",	ctl_do_message,	0, "show --message" },
	{ "hold",	ctl_do_hold,	0, "hold" },
	{ "release",	ctl_do_release,	0, "release" },
	{ "delete",	ctl_do_delete,	0, "delete" },
	{ "tlsrpt",	ctl_do_tlsrpt,	0, "tlsrpt" },
};

#define CTL_MAX_GROUPS	65536

/* ctl_in_group - the peer's user lists gid among its groups (getgrouplist) */
static int
ctl_in_group(const struct ctl_conn *c, gid_t gid)
{
	gid_t	*groups = NULL, *ng;
	int	 n = 64, i, r = -1, found = 0;

	if (!c->named)
		return 0;
	while (n > 0 && n <= CTL_MAX_GROUPS) {
		if ((ng = realloc(groups, (size_t)n * sizeof(*ng))) == NULL)
			break;
		groups = ng;
		i = n;
		if ((r = getgrouplist(c->user, c->gid, groups, &n)) != -1)
			break;
		if (n <= i)		/* no larger size asked: give up */
			n = i * 2;
	}
	for (i = 0; r != -1 && i < n; i++)
		if (groups[i] == gid)
			found = 1;
	free(groups);
	return found;
}

/* ctl_member - root, the daemon's own user, or in control_group */
static int
ctl_member(const struct ctl_conn *c)
{
	if (!c->cred)
		return 0;
	return c->uid == 0 || c->uid == geteuid() ||
	    c->gid == (gid_t)ctl.cgid || ctl_in_group(c, (gid_t)ctl.cgid);
}

/* ctl_denied - the refusal of cmd for a peer outside control_group */
static json_t *
ctl_denied(struct ctl_conn *c, const struct ctl_cmd *cmd)
{
	log_info("control: #%u %s by %s refused: not root nor in group %s "
	    "(control_group)", c->id, cmd->name, c->user, ctl.cgname);
	if (!ctl.anyone)
		return ctl_error("denied", "permission denied: the control "
		    "socket allows root and group %s (control_group); %s is "
		    "not a member", ctl.cgname, c->user);
	return ctl_error("denied", "permission denied: %s is allowed to "
	    "root and group %s (control_group); %s is not a member "
	    "(control_read = anyone opens queue and show only)", cmd->what,
	    ctl.cgname, c->user);
}

/* ctl_dispatch - parse one request line and answer it */
static void
ctl_dispatch(struct ctl_conn *c, const char *line, size_t len)
{
	json_error_t	 jerr;
	json_t		*req, *jc, *ans = NULL;
	const char	*cmd;
	size_t		 i;
	int		 arena = 0;

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
	if (!(ctl.anyone && (ctl_cmds[i].flags & CTL_READ)) &&
	    !ctl_member(c)) {
		ans = ctl_denied(c, &ctl_cmds[i]);
		goto out;
	}
	/*
	 * A listing's answer (CTL_ARENA: up to CTL_PAGE_MAX messages of
	 * about 35 jansson objects each) is built, encoded and freed here:
	 * its objects come from an arena (common/jarena.h), never from
	 * malloc; jansson is used by the loop thread only.  Once the daemon
	 * had retried 100,000 messages, glibc's heap made malloc/free of
	 * them three quarters of its time for a listing of them
	 * (bench/README.md, "Listing from an arena").
	 */
	arena = (ctl_cmds[i].flags & CTL_ARENA) != 0;
	if (arena)
		jarena_begin();
	ans = ctl_cmds[i].fn(c, req);
	if (ans == CTL_PENDING) {
		json_decref(req);	/* ctl_action_done answers */
		return;
	}
	if (ans == NULL)
		ans = ctl_error("bad_request", "out of memory");
out:
	json_decref(req);
	ctl_reply(c, ans);
	if (arena)
		jarena_end();	/* the answer is in the output buffer */
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

/* ctl_peer - the peer's uid, gid and Unix user name ("uid N" without
 * one) from SO_PEERCRED; c->cred stays 0 when the kernel says nothing */
static void
ctl_peer(int fd, struct ctl_conn *c)
{
	struct ucred	 uc;
	struct passwd	 pw, *pp = NULL;
	socklen_t	 len = sizeof(uc);
	char		 buf[4096];
	int		 r;

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &uc, &len) == -1) {
		snprintf(c->user, sizeof(c->user), "unknown");
		return;
	}
	c->cred = 1;
	c->uid = uc.uid;
	c->gid = uc.gid;
	if (getpwuid_r(uc.uid, &pw, buf, sizeof(buf), &pp) == 0 &&
	    pp != NULL && (r = snprintf(c->user, sizeof(c->user), "%s",
	    pp->pw_name)) > 0 && (size_t)r < sizeof(c->user))
		c->named = 1;
	else
		snprintf(c->user, sizeof(c->user), "uid %lu",
		    (unsigned long)uc.uid);
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
	ctl_peer(fd, c);
	c->bev = bufferevent_socket_new(ctl.base, fd, BEV_OPT_CLOSE_ON_FREE);
	c->timer = evtimer_new(ctl.base, ctl_timer_cb, c);
	if (c->bev == NULL || c->timer == NULL ||
	    bev_read_limit(c->bev, CTL_MAX_LINE + 2) == -1) {
		log_warnx("control: cannot set up a connection (out of "
		    "memory)");
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
	jarena_release();	/* the listings' kept blocks */
	/* fails after the privilege drop when the directory is root's;
	 * the next start removes a stale socket */
	if (ctl.bound && unlinkat(ctl.dirfd, ctl.name, 0) == -1 &&
	    errno != ENOENT)
		log_debug("control: cannot remove %s: %s", ctl.path,
		    strerror(errno));
	ctl.bound = 0;
	if (ctl.dirfd != -1)
		close(ctl.dirfd);
	ctl.dirfd = -1;
	ctl.path[0] = '\0';
}
