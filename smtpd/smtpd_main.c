#include "config.h"
/*
 * smtpd_main.c - the waymarkd program: options, start-up, privilege drop,
 * the event loop, signals (SIGTERM/SIGINT stop, SIGHUP reload).
 * Owns: the order of start-up (config and the checks of `user` and
 *       `control_group`, log, spool + lock, sockets as root, drop to
 *       `user`, the control socket when its directory is the user's,
 *       event base, workers, password checkers, queue, listeners: SMTP,
 *       then MTQP) and of the graceful stop (control, MTQP sessions
 *       closed at once, SMTP sessions, password checkers, workers,
 *       queue, loop).
 * Root: never acts by name inside a directory the user can write (the
 *       spool, the user's control directory): fds, O_NOFOLLOW, fchown.
 * --recover: config, user, spool and its lock as for a start, the drop
 *       to `user`, then queue_recover() and exit (no socket is bound).
 * Not here: SMTP sessions, the control protocol, the queue, delivery.
 * Paths: cfg_load makes paths absolute; the file name given with -f is
 *        made absolute too, so a reload after chdir(spool) reads the same
 *        file (cfg_make_abs is a safety net for any relative path left).
 *        SIGHUP with the embedded default configuration reloads nothing.
 * Reload: every configuration ever loaded stays alive until exit (they are
 *        small), because sessions and deliveries keep pointers into the one
 *        they started with; keys that need a restart (listen, mtqp, spool,
 *        user, control, control_group, control_read, mailbox_root,
 *        workers, db_cache) keep their old values.
 * Policy: the `policy` file is parsed here (queue_policy_load) into the
 *        configuration's policy_table, at start, with -n and on SIGHUP; a
 *        file with an error stops the start (exit 1) or fails the reload,
 *        which keeps the running configuration and its rules.
 * DKIM: the dkim_key files are read here (dkim_keys_load) into
 *        dkim_keys, at start as root (a key file may be root-only), with
 *        -n and on SIGHUP; a reload that cannot read unchanged entries
 *        (root-only files) keeps the keys loaded before.
 * Service manager: with $NOTIFY_SOCKET set (systemd, Type=notify), READY=1
 *        once every listener is bound and the loop is about to serve,
 *        RELOADING=1 then READY=1 around each SIGHUP (failed reloads
 *        too), STOPPING=1 at the first SIGTERM/SIGINT (common/sdnotify.c).
 */

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <malloc.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/types.h>

#include <event2/event.h>
#include <event2/thread.h>

#include "common/bevio.h"
#include "common/cfg.h"
#include "common/log.h"
#include "common/pwcheck.h"
#include "common/sdnotify.h"
#include "common/util.h"
#include "common/work.h"
#include "filter/dkim.h"
#include "queue/queue.h"
#include "delivery/delivery.h"
#include "smtpd/smtpd_int.h"
#include "track/track.h"
#include "web/web.h"

#define ERRLEN	1024

struct cfg_keep {			/* every configuration loaded, newest first */
	struct config	*cfg;
	struct cfg_keep	*next;
};

static struct {
	char		*cfg_path;	/* absolute, or NULL = embedded default */
	char		*start_cwd;	/* absolute start-up directory */
	int		 debug;
	struct config	*cfg;		/* current */
	struct cfg_keep	*keep;		/* all, for cfg_free at exit */
	struct event_base *base;
	struct event	*ev_term, *ev_int, *ev_hup;
	int		 stopping;
	long		 uid, gid;
} g = { .uid = -1, .gid = -1 };

static void
usage(FILE *fp)
{
	fprintf(fp,
	    "usage: waymarkd [-f FILE] [-n] [-d] [--recover] [-h|--help] "
	    "[-V|--version]\n"
	    "  -f FILE    configuration file (default: the embedded default\n"
	    "             configuration: listen 127.0.0.1:2525, spool ./var/spool)\n"
	    "  -n         check the configuration, print every effective key and exit\n"
	    "  -d         debug logging\n"
	    "  --recover  catastrophic recovery of a damaged spool (the daemon\n"
	    "             refuses to start on one and says so), keeping what\n"
	    "             can be kept; old and damaged files are moved to\n"
	    "             SPOOL/recover-TIME/; run it while waymarkd is stopped\n"
	    "  -h, --help this text\n"
	    "  -V, --version\n"
	    "waymarkd always runs in the foreground and logs to stderr unless\n"
	    "`syslog = yes`.  SIGTERM stops it gracefully, SIGHUP reloads.\n");
}

/* die - start-up failure: message on stderr (and syslog), exit 1 */
static _Noreturn void WM_PRINTF(1, 2)
die(const char *fmt, ...)
{
	char	 msg[ERRLEN];
	va_list	 ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fprintf(stderr, "waymarkd: %s\n", msg);
	if (g.cfg != NULL && g.cfg->syslog)
		log_warnx("%s", msg);
	if (queue_store_panicked())
		_exit(1);	/* see queue_store_panicked */
	exit(1);
}

/* path_abs - make *p absolute against base (NULL stays NULL); 0 or -1 */
static int
path_abs(char **p, const char *base)
{
	char	*s, *n;
	size_t	 len;
	int	 r;

	if (*p == NULL || (*p)[0] == '/' || (*p)[0] == '\0')
		return 0;
	s = *p;
	while (s[0] == '.' && s[1] == '/')
		for (s += 2; *s == '/'; s++)
			;
	len = strlen(base) + strlen(s) + 2;
	if ((n = malloc(len)) == NULL)
		return -1;
	r = snprintf(n, len, "%s%s%s", base,
	    strcmp(base, "/") == 0 ? "" : "/", s);
	if (r < 0 || (size_t)r >= len) {
		free(n);
		return -1;
	}
	/* "./var" -> "/cwd/var"; a bare "." -> "/cwd/" is trimmed */
	if (*s == '\0' && r > 1 && n[r - 1] == '/')
		n[r - 1] = '\0';
	free(*p);
	*p = n;
	return 0;
}

/* cfg_make_abs - every path key absolute (the daemon changes its cwd) */
static int
cfg_make_abs(struct config *c)
{
	if (path_abs(&c->spool, g.start_cwd) == -1 ||
	    path_abs(&c->control, g.start_cwd) == -1 ||
	    path_abs(&c->mailbox_root, g.start_cwd) == -1 ||
	    path_abs(&c->local_recipients, g.start_cwd) == -1 ||
	    path_abs(&c->aliases, g.start_cwd) == -1 ||
	    path_abs(&c->lists, g.start_cwd) == -1 ||
	    path_abs(&c->tls_cert, g.start_cwd) == -1 ||
	    path_abs(&c->tls_key, g.start_cwd) == -1 ||
	    path_abs(&c->policy, g.start_cwd) == -1)
		return -1;
	return 0;
}

static void
cfg_keep_add(struct config *c)
{
	struct cfg_keep	*k;

	k = xcalloc(1, sizeof(*k));
	k->cfg = c;
	k->next = g.keep;
	g.keep = k;
}

static void
cfg_keep_free(void)
{
	struct cfg_keep	*k;

	while ((k = g.keep) != NULL) {
		g.keep = k->next;
		queue_policy_free(k->cfg->policy_table);
		dkim_keys_free(k->cfg->dkim_keys);
		cfg_free(k->cfg);
		free(k);
	}
	g.cfg = NULL;
}

/* policy_load - the policy rules of c, when it names a file */
static int
policy_load(struct config *c, char *err, size_t errlen)
{
	if (c->policy == NULL)
		return 0;
	c->policy_table = queue_policy_load(c->policy, c->policy_body_scan,
	    err, errlen);
	return c->policy_table != NULL ? 0 : -1;
}

/* dkim_same - the same dkim_key entries in a and b */
static int
dkim_same(const struct config *a, const struct config *b)
{
	size_t	i;

	if (a->ndkim_key != b->ndkim_key)
		return 0;
	for (i = 0; i < a->ndkim_key; i++)
		if (strcmp(a->dkim_key[i].domain, b->dkim_key[i].domain) != 0 ||
		    strcmp(a->dkim_key[i].selector,
		    b->dkim_key[i].selector) != 0 ||
		    strcmp(a->dkim_key[i].alg, b->dkim_key[i].alg) != 0 ||
		    strcmp(a->dkim_key[i].keyfile,
		    b->dkim_key[i].keyfile) != 0)
			return 0;
	return 1;
}

/* dkim_load - the DKIM keys of c; on a reload (old set) an unchanged
 * set that cannot be read again (root-only files) is kept */
static int
dkim_load(struct config *c, const struct config *old, char *err,
    size_t errlen)
{
	if (c->ndkim_key == 0)
		return 0;
	if ((c->dkim_keys = dkim_keys_load(c, err, errlen)) != NULL)
		return 0;
	if (old == NULL || old->dkim_keys == NULL || !dkim_same(c, old))
		return -1;
	log_warnx("reload: %s; keeping the DKIM keys loaded before", err);
	c->dkim_keys = dkim_keys_ref(old->dkim_keys);
	return 0;
}

/* ---- start-up ---- */

/* resolve_user - uid/gid of cfg->user when root; -1/-1 otherwise */
static void
resolve_user(void)
{
	char	err[ERRLEN];
	long	uid, gid;

	/* root is refused always, nobody unless allow_shared_user */
	if (cfg_check_user(g.cfg, &uid, &gid, err, sizeof(err)) == -1)
		die("%s", err);
	if (geteuid() != 0)
		return;
	g.uid = uid;
	g.gid = gid;
}

/*
 * setup_spool - create the spool (owned by the user), check it, enter
 * it; returns a fd on it for queue_lock.  Root opens the lock file in
 * it, so it must belong to root or the user (the fd's own inode is
 * checked and handed over, never a name) and be writable by no one
 * else.
 */
static int
setup_spool(void)
{
	struct stat	 st;
	char		 why[ERRLEN];
	long		 owner = g.uid != -1 ? g.uid : (long)geteuid();
	int		 fd;

	if ((fd = dir_make_owned(g.cfg->spool, 0700, g.uid, g.gid, 1, &st,
	    why, sizeof(why))) == -1)
		die("spool: %s", why);
	if (st.st_uid != 0 && st.st_uid != (uid_t)owner)
		die("spool %s is owned by uid %lu, not by root or %s: "
		    "refusing to use it", g.cfg->spool,
		    (unsigned long)st.st_uid,
		    g.uid != -1 ? g.cfg->user : "the current user");
	if (st.st_mode & (S_IWGRP | S_IWOTH))
		die("spool %s is writable by its group or others (mode "
		    "%04o): refusing to use it (chmod go-w %s)",
		    g.cfg->spool, (unsigned)(st.st_mode & 07777),
		    g.cfg->spool);
	if (fchdir(fd) == -1)
		die("cannot enter spool %s: %s", g.cfg->spool,
		    strerror(errno));
	return fd;
}

/* drop_privileges - become the unprivileged user for good */
static void
drop_privileges(void)
{
	gid_t	gid = (gid_t)g.gid;
	uid_t	uid = (uid_t)g.uid;

	if (g.uid == -1)
		return;
	if (setgroups(1, &gid) == -1)
		die("setgroups: %s", strerror(errno));
	if (setgid(gid) == -1)
		die("setgid %ld: %s", g.gid, strerror(errno));
	if (setuid(uid) == -1)
		die("setuid %ld: %s", g.uid, strerror(errno));
	if (setuid(0) != -1 || seteuid(0) != -1 || getuid() != uid ||
	    geteuid() != uid || getegid() != gid)
		die("privilege drop to %s failed: root can be regained",
		    g.cfg->user);
	log_debug("dropped privileges to %s (uid=%ld gid=%ld)",
	    g.cfg->user, g.uid, g.gid);
}

/* listen_text - "127.0.0.1:2525, [::1]:2525" */
static void
listen_text(const struct config *c, char *out, size_t outlen)
{
	size_t	i, off = 0;
	int	r;

	out[0] = '\0';
	for (i = 0; i < c->nlisten; i++) {
		r = snprintf(out + off, outlen - off, "%s%s",
		    i ? ", " : "", c->listen[i].text);
		if (r < 0 || (size_t)r >= outlen - off) {
			out[off] = '\0';
			return;
		}
		off += (size_t)r;
	}
	if (c->nlisten == 0)
		snprintf(out, outlen, "(nothing)");
}

/* notify - tell the service manager (if any) our state; log a failure */
static void
notify(const char *state)
{
	int	r;

	r = strncmp(state, "RELOADING=", 10) == 0 ? sdnotify_reloading() :
	    sdnotify(state);
	if (r == -1)
		log_warn("service manager notification %.*s failed",
		    (int)strcspn(state, "\n"), state);
}

/* ---- signals ---- */

/* stop_done - every session is gone: finish the disk work, close the queue */
static void
stop_done(void)
{
	log_debug("sessions closed; finishing disk work");
	dlv_remote_shutdown();
	pwcheck_shutdown();
	work_shutdown();
	queue_shutdown();
	event_base_loopexit(g.base, NULL);
}

/* stop_begin - the graceful stop, for a signal or a damaged store */
static void
stop_begin(const char *why)
{
	if (g.stopping) {
		log_info("waymarkd: %s while stopping; still waiting for %zu "
		    "session(s) and in-flight commits", why,
		    smtpd_server_sessions());
		return;
	}
	g.stopping = 1;
	notify("STOPPING=1");
	log_info("waymarkd stopping (%s): %zu session(s) open", why,
	    smtpd_server_sessions());
	smtpd_control_stop();
	trk_server_stop();
	web_server_stop();
	smtpd_server_stop(stop_done);
}

static void
stop_cb(evutil_socket_t sig, short what, void *arg)
{
	(void)what;
	(void)arg;
	stop_begin(sig == SIGINT ? "SIGINT" : "SIGTERM");
}

/*
 * store_panic_cb - the store cannot commit any more: stop as for SIGTERM
 * (a transaction in progress is answered 451, nothing more is accepted)
 * and exit with status 1, so that a service manager starts the daemon
 * again (waymarkd.service: Restart=on-failure) and the start's recovery
 * repairs the store.  Messages acknowledged before are on disk.
 */
static void
store_panic_cb(void)
{
	log_warnx("waymarkd: the queue's store needs recovery: stopping; "
	    "the next start recovers it (exit status 1)");
	stop_begin("the store needs recovery");
}

static int
str_differs(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a != b;
	return strcmp(a, b) != 0;
}

static int
addrs_differ(const struct cfg_addr *a, size_t na, const struct cfg_addr *b,
    size_t nb)
{
	size_t	i;

	if (na != nb)
		return 1;
	for (i = 0; i < na; i++)
		if (strcmp(a[i].text, b[i].text) != 0)
			return 1;
	return 0;
}

static int
listen_differs(const struct config *a, const struct config *b)
{
	return addrs_differ(a->listen, a->nlisten, b->listen, b->nlisten);
}

#define SWAP(T, x, y)	do { T t_ = (x); (x) = (y); (y) = t_; } while (0)

/* reload_do - load the file again, keep restart-only keys */
static void
reload_do(void)
{
	struct config	*n, *o = g.cfg;
	char		 err[ERRLEN], changed[256], grp[64];
	size_t		 off = 0;

	if (g.cfg_path == NULL) {
		/* the embedded text never changes, and cfg_load would now
		 * resolve its relative paths against the spool (our cwd) */
		log_info("reload: running with the embedded default "
		    "configuration; nothing to reload");
		return;
	}
	if ((n = cfg_load(g.cfg_path, err, sizeof(err))) == NULL) {
		log_warnx("reload failed: %s; keeping the old configuration",
		    err);
		return;
	}
	if (cfg_check_user(n, NULL, NULL, err, sizeof(err)) == -1) {
		cfg_free(n);
		log_warnx("reload failed: %s; keeping the old configuration",
		    err);
		return;
	}
	if (cfg_control_group(n, NULL, grp, sizeof(grp), err,
	    sizeof(err)) == -1) {
		cfg_free(n);
		log_warnx("reload failed: %s; keeping the old configuration",
		    err);
		return;
	}
	if (cfg_make_abs(n) == -1) {
		cfg_free(n);
		log_warnx("reload failed: out of memory; keeping the old "
		    "configuration");
		return;
	}
	if (policy_load(n, err, sizeof(err)) == -1) {
		cfg_free(n);
		log_warnx("reload failed: %s; keeping the old configuration "
		    "and policy rules", err);
		return;
	}
	if (dkim_load(n, o, err, sizeof(err)) == -1) {
		queue_policy_free(n->policy_table);
		cfg_free(n);
		log_warnx("reload failed: %s; keeping the old configuration",
		    err);
		return;
	}
	changed[0] = '\0';
#define CHANGED(name) do {						\
	int r_ = snprintf(changed + off, sizeof(changed) - off, "%s%s",	\
	    off ? ", " : "", name);					\
	if (r_ > 0 && (size_t)r_ < sizeof(changed) - off)		\
		off += (size_t)r_;					\
} while (0)
	if (listen_differs(o, n)) {
		CHANGED("listen");
		SWAP(struct cfg_addr *, o->listen, n->listen);
		SWAP(size_t, o->nlisten, n->nlisten);
	}
	if (addrs_differ(o->http, o->nhttp, n->http, n->nhttp)) {
		CHANGED("http");
		SWAP(struct cfg_addr *, o->http, n->http);
		SWAP(size_t, o->nhttp, n->nhttp);
	}
	if (addrs_differ(o->http_admin, o->nhttp_admin, n->http_admin,
	    n->nhttp_admin)) {
		CHANGED("http_admin");
		SWAP(struct cfg_addr *, o->http_admin, n->http_admin);
		SWAP(size_t, o->nhttp_admin, n->nhttp_admin);
	}
	if (addrs_differ(o->metrics, o->nmetrics, n->metrics, n->nmetrics)) {
		CHANGED("metrics");
		SWAP(struct cfg_addr *, o->metrics, n->metrics);
		SWAP(size_t, o->nmetrics, n->nmetrics);
	}
	if (o->http_tls != n->http_tls) {
		CHANGED("http_tls");
		SWAP(int, o->http_tls, n->http_tls);
	}
	if (addrs_differ(o->mtqp, o->nmtqp, n->mtqp, n->nmtqp)) {
		CHANGED("mtqp");
		SWAP(struct cfg_addr *, o->mtqp, n->mtqp);
		SWAP(size_t, o->nmtqp, n->nmtqp);
	}
	if (str_differs(o->spool, n->spool)) {
		CHANGED("spool");
		SWAP(char *, o->spool, n->spool);
	}
	if (str_differs(o->user, n->user)) {
		CHANGED("user");
		SWAP(char *, o->user, n->user);
	}
	if (str_differs(o->control, n->control)) {
		CHANGED("control");
		SWAP(char *, o->control, n->control);
	}
	if (str_differs(o->control_group, n->control_group)) {
		CHANGED("control_group");
		SWAP(char *, o->control_group, n->control_group);
		SWAP(unsigned, o->control_group_line, n->control_group_line);
	}
	if (cfg_control_read_anyone(o) != cfg_control_read_anyone(n)) {
		CHANGED("control_read");
		SWAP(char *, o->control_read, n->control_read);
	}
	if (str_differs(o->mailbox_root, n->mailbox_root)) {
		CHANGED("mailbox_root");
		SWAP(char *, o->mailbox_root, n->mailbox_root);
	}
	if (o->workers != n->workers) {
		CHANGED("workers");
		SWAP(unsigned, o->workers, n->workers);
	}
	if (o->db_cache != n->db_cache) {
		CHANGED("db_cache");
		SWAP(uint64_t, o->db_cache, n->db_cache);
	}
#undef CHANGED
	/*
	 * The swaps above put the running values into n and the new ones
	 * into o; o is kept (unused) until exit, like every old config.
	 */
	if (off > 0)
		log_warnx("reload: %s changed; this needs a restart (the "
		    "running values are kept)", changed);
	if (n->syslog != o->syslog)
		log_init("waymarkd", n->syslog, g.debug);
	cfg_keep_add(n);
	g.cfg = n;
	smtpd_server_reload(n);
	trk_server_reload(n);
	web_server_reload(n);
	queue_reload(n);
	dlv_reload(n);
	dlv_remote_reload(n);
	log_info("configuration reloaded from %s",
	    g.cfg_path ? g.cfg_path : "(default)");
	if (n->auth_warning != NULL)
		log_warnx("%s", n->auth_warning);
	if (n->policy_table != NULL)
		log_info("policy rules: %zu from %s",
		    queue_policy_count(n->policy_table), n->policy);
}

/* reload_cb - SIGHUP: reload, the service manager told before and after */
static void
reload_cb(evutil_socket_t sig, short what, void *arg)
{
	(void)sig;
	(void)what;
	(void)arg;
	if (g.stopping)
		return;
	notify("RELOADING=1");
	reload_do();
	notify("READY=1");
}

static void
signals_init(void)
{
	g.ev_term = evsignal_new(g.base, SIGTERM, stop_cb, NULL);
	g.ev_int = evsignal_new(g.base, SIGINT, stop_cb, NULL);
	g.ev_hup = evsignal_new(g.base, SIGHUP, reload_cb, NULL);
	if (g.ev_term == NULL || g.ev_int == NULL || g.ev_hup == NULL ||
	    evsignal_add(g.ev_term, NULL) == -1 ||
	    evsignal_add(g.ev_int, NULL) == -1 ||
	    evsignal_add(g.ev_hup, NULL) == -1)
		die("cannot install signal handlers");
}

static void
signals_free(void)
{
	if (g.ev_term)
		event_free(g.ev_term);
	if (g.ev_int)
		event_free(g.ev_int);
	if (g.ev_hup)
		event_free(g.ev_hup);
	g.ev_term = g.ev_int = g.ev_hup = NULL;
}

/* ---- main ---- */

int
main(int argc, char *argv[])
{
	const char	*path = NULL;
	char		 err[ERRLEN], lst[512], cwd[4096];
	int		 i, spoolfd, check = 0, recover = 0;

	for (i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			usage(stdout);
			return 0;
		} else if (strcmp(a, "-V") == 0 ||
		    strcmp(a, "--version") == 0) {
			printf("waymarkd %s\n", PACKAGE_VERSION);
			return 0;
		} else if (strcmp(a, "-n") == 0) {
			check = 1;
		} else if (strcmp(a, "-d") == 0) {
			g.debug = 1;
		} else if (strcmp(a, "--recover") == 0) {
			recover = 1;
		} else if (strcmp(a, "-f") == 0) {
			if (++i >= argc) {
				fprintf(stderr, "waymarkd: -f needs a FILE\n");
				usage(stderr);
				return 2;
			}
			path = argv[i];
		} else if (strncmp(a, "-f", 2) == 0) {
			path = a + 2;
		} else {
			fprintf(stderr, "waymarkd: unknown argument: %s\n", a);
			usage(stderr);
			return 2;
		}
	}

	/* one malloc arena for every thread: memory a session gave back is
	 * there for the commit thread and the workers too, and no thread
	 * reserves an arena of its own (64 MiB of address space each) */
	(void)mallopt(M_ARENA_MAX, 1);
	bev_mem_init();		/* before any libevent call */
	if (evthread_use_pthreads() == -1) {
		fprintf(stderr, "waymarkd: evthread_use_pthreads failed\n");
		return 1;
	}
	if (getcwd(cwd, sizeof(cwd)) == NULL) {
		fprintf(stderr, "waymarkd: getcwd: %s\n", strerror(errno));
		return 1;
	}
	g.start_cwd = xstrdup(cwd);
	if (path != NULL) {
		/* reloads happen after chdir(spool): keep an absolute name */
		g.cfg_path = xstrdup(path);
		if (path_abs(&g.cfg_path, g.start_cwd) == -1)
			die("out of memory");
	}

	/* the first load names the file as given, in errors and -n */
	if ((g.cfg = cfg_load(path, err, sizeof(err))) == NULL) {
		fprintf(stderr, "%s\n", err);
		free(g.cfg_path);
		free(g.start_cwd);
		return 1;
	}
	cfg_keep_add(g.cfg);
	/* the daemon's own checks of `user` (and control_group, which
	 * defaults to its group); -n reports them too */
	if (cfg_check_user(g.cfg, NULL, NULL, err, sizeof(err)) == -1 ||
	    cfg_control_group(g.cfg, NULL, lst, sizeof(lst), err,
	    sizeof(err)) == -1) {
		fprintf(stderr, "%s\n", err);
		cfg_keep_free();
		free(g.cfg_path);
		free(g.start_cwd);
		return 1;
	}
	if (policy_load(g.cfg, err, sizeof(err)) == -1 ||
	    dkim_load(g.cfg, NULL, err, sizeof(err)) == -1) {
		fprintf(stderr, "%s\n", err);
		cfg_keep_free();
		free(g.cfg_path);
		free(g.start_cwd);
		return 1;
	}
	if (check) {
		cfg_print(g.cfg, stdout);
		cfg_keep_free();
		free(g.cfg_path);
		free(g.start_cwd);
		return fflush(stdout) == 0 ? 0 : 1;
	}
	if (cfg_make_abs(g.cfg) == -1)
		die("out of memory");

	log_init("waymarkd", g.cfg->syslog, g.debug);
	signal(SIGPIPE, SIG_IGN);
	/* as root: the notification socket may be closed to the user */
	if (sdnotify_init(err, sizeof(err)) == -1)
		log_warnx("%s; the service manager will not be told our "
		    "state", err);

	/*
	 * As root, nothing is done by name inside a directory the user can
	 * write: the spool is checked and entered by fd, the lock is opened
	 * relative to it without following links, and the control socket
	 * is bound now only in a directory only root writes (else after
	 * the drop, as the user).
	 */
	resolve_user();
	spoolfd = setup_spool();
	if (queue_lock(spoolfd, g.cfg->spool,
	    g.uid != -1 ? g.uid : (long)geteuid(), err, sizeof(err)) == -1)
		die("%s", err);
	close(spoolfd);
	if (recover) {
		/* as the user, so that every file made stays the user's */
		drop_privileges();
		if (queue_recover(stdout, err, sizeof(err)) == -1)
			die("recover: %s", err);
		cfg_keep_free();
		free(g.cfg_path);
		free(g.start_cwd);
		return fflush(stdout) == 0 ? 0 : 1;
	}
	if (smtpd_server_bind(g.cfg, err, sizeof(err)) == -1)
		die("%s", err);
	if (trk_server_bind(g.cfg, err, sizeof(err)) == -1)
		die("%s", err);
	if (web_server_bind(g.cfg, err, sizeof(err)) == -1)
		die("%s", err);
	if (smtpd_control_bind(g.cfg, g.uid, g.gid, err, sizeof(err)) == -1)
		die("%s", err);
	if (dlv_init(g.cfg, g.uid, g.gid, err, sizeof(err)) == -1)
		die("%s", err);
	drop_privileges();
	if (smtpd_control_bind_user(err, sizeof(err)) == -1)
		die("%s", err);

	if ((g.base = event_base_new()) == NULL)
		die("event_base_new failed");
	if (work_init(g.base, (int)(g.cfg->workers ? g.cfg->workers : 1)) == -1)
		die("cannot start %u worker threads", g.cfg->workers);
	if (pwcheck_init(g.base, PWCHECK_MAX_THREADS, PWCHECK_QMAX) == -1)
		die("cannot start the password check threads");
	if (dlv_remote_init(g.cfg, g.base, err, sizeof(err)) == -1)
		die("%s", err);
	if (queue_init(g.cfg, g.base, err, sizeof(err)) == -1)
		die("%s", err);
	queue_on_panic(store_panic_cb);
	if (smtpd_server_start(g.cfg, g.base, err, sizeof(err)) == -1)
		die("%s", err);
	if (trk_server_start(g.cfg, g.base, err, sizeof(err)) == -1)
		die("%s", err);
	if (web_server_start(g.cfg, g.base, err, sizeof(err)) == -1)
		die("%s", err);
	if (smtpd_control_start(g.base) == -1)
		die("cannot start the control socket %s", g.cfg->control);
	signals_init();

	listen_text(g.cfg, lst, sizeof(lst));
	log_info("waymarkd started: listening on %s, control %s, spool %s, "
	    "config %s, user %s, pid %ld", lst, g.cfg->control,
	    g.cfg->spool, g.cfg_path ? g.cfg_path : "(default)",
	    g.uid == -1 ? "(unchanged)" : g.cfg->user, (long)getpid());
	if (g.cfg->auth_warning != NULL)
		log_warnx("%s", g.cfg->auth_warning);
	if (g.cfg->policy_table != NULL)
		log_info("policy rules: %zu from %s",
		    queue_policy_count(g.cfg->policy_table), g.cfg->policy);
	if (g.cfg->dkim_keys != NULL)
		log_info("dkim keys: %zu", g.cfg->dkim_keys->n);
	/* every listener is bound and listening: connections wait in the
	 * backlog until the loop below accepts them */
	notify("READY=1");

	if (event_base_dispatch(g.base) == -1)
		log_warnx("event loop failed");

	log_info("waymarkd stopped");
	sdnotify_close();
	signals_free();
	event_base_free(g.base);
	g.base = NULL;
	cfg_keep_free();
	free(g.cfg_path);
	free(g.start_cwd);
	libevent_global_shutdown();
	if (queue_store_panicked())
		_exit(1);	/* see queue_store_panicked; status: store_panic_cb */
	return 0;
}
