#include "config.h"
/*
 * waymark.c - the `waymark` command: the operator's view of the queue.
 * Owns: options and per-command usage, the control-socket client (one
 *       JSON request line, one JSON answer line; /work/notes/CONTROL.md),
 *       --json output (JSON Lines for `queue`), exit codes.
 * Commands (issue 3): queue [--state S] [--json], show QID [--json], flush.
 * Issue 9: queue --state S[/VALUE], show QID --message, hold QID,
 *       release QID, delete QID [--bounce].
 * Issue 5: sendmail (tools_sendmail.c; it uses the whole configuration,
 *       not the control socket).
 * Issue 16: dkim-keygen (tools_dkim.c; no configuration, no daemon).
 * Issue 10: track (tools_track.c; MTQP, with its own exit codes 3-5).  Run as `sendmail` (argv[0]) it is that
 *       command, as `mailq` it is `waymark queue`; both take -C FILE or
 *       $WAYMARK_CONF for the configuration, else the file given to
 *       configure --with-sendmail-config (issue 12, Debian package).
 * Issue 16: tlsrpt --send-now (the TLS-RPT reports, over the control
 *       socket).
 * Exit status (DESIGN.md): 0 success; 1 unknown QID, action not allowed,
 *       daemon unreachable (or a bad configuration file); 2 usage error.
 * The configuration (-f FILE, else the embedded default) is loaded only
 * to find the control socket.  Human output lives in tools_print.c.
 */

#include <errno.h>
#include <grp.h>
#include <stddef.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>

#include <jansson.h>

#include "common/cfg.h"
#include "common/jarena.h"
#include "common/syntax.h"
#include "common/util.h"
#include "tools/tools.h"

#define REPLY_MAX	(512u * 1024 * 1024)	/* a very large queue listing */
#define IO_TIMEOUT	60			/* seconds */

struct opts {
	const char	*state;
	const char	*qid;
	const char	*cmd;		/* the command's name */
	int		 json;
	int		 message;	/* show --message */
	int		 bounce;	/* delete --bounce */
	struct sendmail_opts sm;
	struct track_opts tr;
	struct keygen_opts kg;
};

struct command {
	const char	*name;
	const char	*args;		/* usage after the name */
	const char	*help;		/* one-line summary */
	const char	*detail;	/* options, for COMMAND --help */
	int		 (*parse)(int, char **, struct opts *);
	int		 (*run)(const char *, const struct opts *);
};

/* the RFC 6729 handling states the queue knows (queue/queue.h) */
static const char *const states[] = {
	"normal", "auth", "content", "convert", "moderation",
	"quarantine", "timed", "outbound", "other",
};

static int	parse_queue(int, char **, struct opts *);
static int	parse_show(int, char **, struct opts *);
static int	parse_flush(int, char **, struct opts *);
static int	parse_action(int, char **, struct opts *);
static int	run_action(const char *, const struct opts *);
static int	parse_sendmail(int, char **, struct opts *);
static int	parse_track(int, char **, struct opts *);
static int	parse_keygen(int, char **, struct opts *);
static int	run_queue(const char *, const struct opts *);
static int	run_show(const char *, const struct opts *);
static int	run_flush(const char *, const struct opts *);
static int	run_message(const char *, const struct opts *);
static int	parse_tlsrpt(int, char **, struct opts *);
static int	run_tlsrpt(const char *, const struct opts *);

static const struct command commands[] = {
	{ "queue", "[--state S[/V]] [--json]",
	  "list the queued messages with each recipient's status",
	  "  --state S  only messages in handling state S (normal, auth, content,\n"
	  "             convert, moderation, quarantine, timed, outbound, other);\n"
	  "             S/V also matches the state's value (other/hold)\n"
	  "             (held messages are marked ! after their queue id)\n"
	  "  --json     JSON Lines: one object per message, nothing when empty\n",
	  parse_queue, run_queue },
	{ "show", "QID [--json | --message]",
	  "show one message, its recipients and its events in time order",
	  "  QID        the queue id (as in `waymark queue` or the 250 reply)\n"
	  "  --message  print the stored message instead: Waymark's Received:\n"
	  "             fields as they would be delivered, then the content\n"
	  "  --json     the message object with \"events\" on one line\n",
	  parse_show, run_show },
	{ "flush", "[QID]",
	  "make every deferred recipient (or those of QID) due now",
	  "  QID        only this message\n",
	  parse_flush, run_flush },
	{ "hold", "QID",
	  "hold a queued message (state other/hold) until released",
	  "  QID        a message in state normal or outbound\n",
	  parse_action, run_action },
	{ "release", "QID",
	  "release a held message (quarantine, moderation, hold, timed)",
	  "  QID        a message in a held state; it is delivered now\n",
	  parse_action, run_action },
	{ "delete", "QID [--bounce]",
	  "delete a queued message: its pending recipients fail (5.7.1)",
	  "  --bounce   send the sender a failure DSN where one is due\n"
	  "             (without it the message is dropped silently)\n",
	  parse_action, run_action },
	{ "sendmail", "[-f FROM] [-F NAME] [-t] [-i] [-N NOTIFY] [-R RET] "
	  "[-V ENVID] [--track] [RCPT...]",
	  "submit a message read on stdin to the daemon by SMTP",
	  "  -f FROM    envelope sender (default: LOGIN@hostname)\n"
	  "  -F NAME    full name for an added From: field\n"
	  "  -t         recipients from To:, Cc:, Bcc: (plus the arguments)\n"
	  "  -i, -oi    a line with a single '.' does not end the message\n"
	  "  -N NOTIFY  DSN: never, or success,failure,delay\n"
	  "  -R RET     DSN: full or hdrs\n"
	  "  -V ENVID   DSN envelope id\n"
	  "  --track    MTRK: make an ENVID if needed, keep the secret in\n"
	  "             ~/.waymark/keys, print the ENVID\n",
	  parse_sendmail, NULL },
	{ "track", "ENVID [--secret A] [--server HOST:PORT] [--json] "
	  "[--ca FILE] [--tls-verify=none]",
	  "follow a tracked message hop by hop (MTQP, RFC 3887)",
	  "  ENVID      the envelope id `waymark sendmail --track` printed\n"
	  "  --secret A the secret, base64 (default: the last line for ENVID\n"
	  "             in ~/.waymark/keys)\n"
	  "  --server HOST:PORT  the first MTQP server (port 1038 when\n"
	  "             omitted; default: the first `mtqp` address)\n"
	  "  --json     one JSON object instead of the timeline\n"
	  "  --ca FILE  CA certificates for STARTTLS (default: the system's)\n"
	  "  --tls-verify=none  do not verify the servers' certificates\n"
	  "Exit status: 0 the path was followed (whatever the outcome),\n"
	  "1 the first server unreachable, 2 usage error, 3 no key for ENVID,\n"
	  "4 no information at the first server, 5 the first server does not\n"
	  "speak MTQP, its TLS failed, or a protocol error there.\n",
	  parse_track, NULL },
	{ "dkim-keygen", "DOMAIN SELECTOR ALG [--out FILE] [--bits N]",
	  "make a DKIM signing key and print the DNS record to publish",
	  "  ALG        rsa-sha256 (2048-bit key by default) or ed25519-sha256\n"
	  "  --out FILE where to write the private key (PEM, mode 0600; default\n"
	  "             SELECTOR.DOMAIN.key in the current directory; an\n"
	  "             existing file is never overwritten)\n"
	  "  --bits N   RSA key size, 2048 to 4096\n"
	  "Prints the key file's path, the TXT record for\n"
	  "SELECTOR._domainkey.DOMAIN and the dkim_key line for waymark.conf.\n",
	  parse_keygen, NULL },
	{ "tlsrpt", "--send-now",
	  "queue the TLS-RPT reports (RFC 8460) of everything counted so far",
	  "  --send-now the reports since the last ones, now, instead of\n"
	  "             waiting for the daily job (needs tlsrpt = yes)\n",
	  parse_tlsrpt, run_tlsrpt },
};
#define NCOMMANDS	(sizeof(commands) / sizeof(commands[0]))

static void
usage(FILE *fp)
{
	size_t	i;
	char	left[256];

	fprintf(fp, "usage: waymark [-f FILE] COMMAND [ARGS]\n"
	    "Commands:\n");
	for (i = 0; i < NCOMMANDS; i++) {
		if (snprintf(left, sizeof(left), "%s %s", commands[i].name,
		    commands[i].args) >= (int)sizeof(left))
			left[sizeof(left) - 1] = '\0';
		if (strlen(left) > 28)	/* long synopsis: help on its own line */
			fprintf(fp, "  %s\n  %-28s %s\n", left, "",
			    commands[i].help);
		else
			fprintf(fp, "  %-28s %s\n", left, commands[i].help);
	}
	fprintf(fp, "Options:\n"
	    "  -f FILE       configuration file (default: the embedded default\n"
	    "                configuration); used to find the control socket\n"
	    "  -h, --help    this text; `waymark COMMAND --help` for one command\n"
	    "  -V, --version print the version\n"
	    "Exit status: 0 success, 1 unknown queue id / not allowed / daemon\n"
	    "unreachable, 2 usage error (track: see `waymark track --help`).\n");
}

static void
cmd_usage(FILE *fp, const struct command *c)
{
	fprintf(fp, "usage: waymark [-f FILE] %s%s%s\n%s\n%s", c->name,
	    *c->args ? " " : "", c->args, c->help, c->detail);
}

static int
usage_error(const struct command *c, const char *fmt, const char *arg)
{
	fputs("waymark: ", stderr);
	fprintf(stderr, fmt, arg);
	fputc('\n', stderr);
	if (c != NULL)
		cmd_usage(stderr, c);
	else
		usage(stderr);
	return EX_WM_USAGE;
}

/* ---- option parsing per command ---- */

static int
parse_queue(int argc, char **argv, struct opts *o)
{
	int	i;
	size_t	k;

	for (i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0)
			o->json = 1;
		else if (strcmp(argv[i], "--state") == 0) {
			if (i + 1 >= argc)
				return usage_error(&commands[0],
				    "--state needs a value%s", "");
			o->state = argv[++i];
		} else if (strncmp(argv[i], "--state=", 8) == 0)
			o->state = argv[i] + 8;
		else
			return usage_error(&commands[0],
			    "queue: unexpected argument: %s", argv[i]);
	}
	if (o->state != NULL) {
		size_t kwlen = strcspn(o->state, "/");

		for (k = 0; k < sizeof(states) / sizeof(states[0]); k++)
			if (strlen(states[k]) == kwlen &&
			    strncmp(o->state, states[k], kwlen) == 0 &&
			    (o->state[kwlen] == '\0' || o->state[kwlen + 1] != '\0'))
				break;
		if (k == sizeof(states) / sizeof(states[0]))
			return usage_error(&commands[0],
			    "queue: unknown state: %s", o->state);
	}
	return 0;
}

static int
parse_show(int argc, char **argv, struct opts *o)
{
	int	i;

	for (i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0)
			o->json = 1;
		else if (strcmp(argv[i], "--message") == 0)
			o->message = 1;
		else if (argv[i][0] == '-' && argv[i][1] != '\0')
			return usage_error(&commands[1],
			    "show: unknown option: %s", argv[i]);
		else if (o->qid == NULL)
			o->qid = argv[i];
		else
			return usage_error(&commands[1],
			    "show: unexpected argument: %s", argv[i]);
	}
	if (o->qid == NULL)
		return usage_error(&commands[1], "show: missing QID%s", "");
	if (o->json && o->message)
		return usage_error(&commands[1], "show: --json and --message "
		    "exclude each other%s", "");
	return 0;
}

static const struct command *find_command(const char *name);

/* parse_action - hold QID / release QID / delete QID [--bounce] */
static int
parse_action(int argc, char **argv, struct opts *o)
{
	const struct command	*c = find_command(o->cmd);
	int			 i;

	for (i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--bounce") == 0 &&
		    strcmp(o->cmd, "delete") == 0)
			o->bounce = 1;
		else if (argv[i][0] == '-' && argv[i][1] != '\0')
			return usage_error(c, "unknown option: %s", argv[i]);
		else if (o->qid == NULL)
			o->qid = argv[i];
		else
			return usage_error(c, "unexpected argument: %s",
			    argv[i]);
	}
	if (o->qid == NULL)
		return usage_error(c, "missing QID%s", "");
	return 0;
}

static int
parse_flush(int argc, char **argv, struct opts *o)
{
	if (argc > 0 && argv[0][0] != '-')
		o->qid = argv[0];
	if (argc > (o->qid != NULL ? 1 : 0))
		return usage_error(&commands[2],
		    "flush: unexpected argument: %s", argv[o->qid ? 1 : 0]);
	return 0;
}

static int
parse_tlsrpt(int argc, char **argv, struct opts *o)
{
	const struct command	*c = &commands[NCOMMANDS - 1];

	(void)o;
	if (argc == 0)
		return usage_error(c, "tlsrpt: --send-now is required%s", "");
	if (strcmp(argv[0], "--send-now") != 0)
		return usage_error(c, "tlsrpt: unknown option: %s", argv[0]);
	if (argc > 1)
		return usage_error(c, "tlsrpt: unexpected argument: %s",
		    argv[1]);
	return 0;
}

static int
parse_sendmail(int argc, char **argv, struct opts *o)
{
	return sendmail_parse(argc, argv, 0, &o->sm);
}

static int
parse_track(int argc, char **argv, struct opts *o)
{
	return track_parse(argc, argv, &o->tr);
}

/* ---- control-socket client ---- */

/* the configuration of the command being run (control_group's name) */
static const struct config *run_cfg;

/*
 * ctl_denied_text - connect() said EACCES: when we are outside
 * control_group (and control_read is group), the daemon's own refusal
 * text; -1 when that is not the reason (root, a member, or a lookup
 * failed).
 */
static int
ctl_denied_text(char *out, size_t outlen)
{
	struct passwd	*pw;
	gid_t		*groups;
	char		 name[64], err[512], user[64];
	long		 gid;
	int		 n, i, member = 0;

	if (run_cfg == NULL || geteuid() == 0 ||
	    cfg_control_read_anyone(run_cfg) ||
	    cfg_control_group(run_cfg, &gid, name, sizeof(name), err,
	    sizeof(err)) == -1)
		return -1;
	if (getegid() == (gid_t)gid)
		return -1;
	if ((n = getgroups(0, NULL)) > 0 &&
	    (groups = calloc((size_t)n, sizeof(*groups))) != NULL) {
		n = getgroups(n, groups);
		for (i = 0; i < n; i++)
			if (groups[i] == (gid_t)gid)
				member = 1;
		free(groups);
	}
	if (member)
		return -1;
	if ((pw = getpwuid(geteuid())) != NULL)
		snprintf(user, sizeof(user), "%s", pw->pw_name);
	else
		snprintf(user, sizeof(user), "uid %lu",
		    (unsigned long)geteuid());
	snprintf(out, outlen, "permission denied: the control socket allows "
	    "root and group %s (control_group); %s is not a member", name,
	    user);
	return 0;
}

/*
 * ctl_send - connect to the daemon at path and send req (consumed): *fdp
 * is the connection its answer comes on (ctl_recv).  Returns EX_WM_OK or
 * EX_WM_FAIL after printing the reason.
 */
static int
ctl_send(const char *path, json_t *req, int *fdp)
{
	struct sockaddr_un	 sun;
	struct timeval		 tv = { IO_TIMEOUT, 0 };
	char			*line = NULL;
	size_t			 len, off;
	ssize_t			 n;
	int			 fd = -1, r, rc = EX_WM_FAIL;

	*fdp = -1;
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	r = snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
	if (r < 0 || (size_t)r >= sizeof(sun.sun_path)) {
		fprintf(stderr, "waymark: cannot connect to the daemon at %s: "
		    "path too long\n", path);
		goto fail;
	}
	if ((line = json_dumps(req, JSON_COMPACT)) == NULL) {
		fprintf(stderr, "waymark: cannot encode the request\n");
		goto fail;
	}
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1 ||
	    connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		char	why[512];
		int	e = errno;

		if (e == EACCES && ctl_denied_text(why, sizeof(why)) == 0)
			fprintf(stderr, "waymark: %s\n", why);
		else
			fprintf(stderr, "waymark: cannot connect to the daemon "
			    "at %s: %s\n", path, strerror(e));
		goto fail;
	}
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));

	/* the request: one line */
	len = strlen(line);
	for (off = 0; off <= len; ) {
		const char *p = off < len ? line + off : "\n";
		size_t	    want = off < len ? len - off : 1;

		n = send(fd, p, want, MSG_NOSIGNAL);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0) {
			fprintf(stderr, "waymark: cannot talk to the daemon at "
			    "%s: %s\n", path, n == 0 ? "closed" :
			    strerror(errno));
			goto fail;
		}
		off += (size_t)n;
	}
	*fdp = fd;
	fd = -1;
	rc = EX_WM_OK;
fail:
	if (fd != -1)
		close(fd);
	json_decref(req);
	jfree(line);		/* jansson's string: its allocator */
	return rc;
}

/*
 * ctl_read - the answer's octets on fd (closed here) from the daemon at
 * path: *bufp (malloc'd, *usedp octets).  Returns EX_WM_OK or EX_WM_FAIL
 * after printing the reason.
 */
static int
ctl_read(const char *path, int fd, char **bufp, size_t *usedp)
{
	char		*buf = NULL;
	size_t		 cap = 0, used = 0;
	ssize_t		 n;

	/* the answer: one line, then the daemon closes */
	for (;;) {
		if (cap - used < 4096) {
			size_t	 ncap = cap ? cap * 2 : 16384;
			char	*nb;

			if (ncap > REPLY_MAX + 1)
				ncap = REPLY_MAX + 1;
			if (ncap <= used + 1) {
				fprintf(stderr, "waymark: the daemon's answer "
				    "is too long\n");
				goto fail;
			}
			if ((nb = realloc(buf, ncap)) == NULL) {
				fprintf(stderr, "waymark: out of memory\n");
				goto fail;
			}
			buf = nb;
			cap = ncap;
		}
		n = recv(fd, buf + used, cap - used - 1, 0);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			fprintf(stderr, "waymark: no answer from the daemon at "
			    "%s: %s\n", path, errno == EAGAIN ?
			    "timed out" : strerror(errno));
			goto fail;
		}
		if (n == 0)
			break;
		used += (size_t)n;
		if (memchr(buf + used - (size_t)n, '\n', (size_t)n) != NULL)
			break;
	}
	if (used == 0) {
		fprintf(stderr, "waymark: the daemon at %s closed the "
		    "connection without an answer\n", path);
		goto fail;
	}
	close(fd);
	*bufp = buf;
	*usedp = used;
	return EX_WM_OK;
fail:
	close(fd);
	free(buf);
	return EX_WM_FAIL;
}

/*
 * ctl_parse - the "result" of an answer (buf, used; freed here) in
 * *result (new reference).  Returns EX_WM_OK or EX_WM_FAIL after
 * printing the reason.
 */
static int
ctl_parse(char *buf, size_t used, json_t **result)
{
	json_error_t	 jerr;
	json_t		*ans, *ok;
	int		 rc = EX_WM_FAIL;

	*result = NULL;
	ans = json_loadb(buf, used, JSON_DISABLE_EOF_CHECK, &jerr);
	free(buf);
	ok = json_object_get(ans, "ok");
	if (!json_is_object(ans) || !json_is_boolean(ok)) {
		fprintf(stderr, "waymark: malformed answer from the daemon: "
		    "%s\n", ans == NULL ? jerr.text : "no \"ok\"");
		goto fail;
	}
	if (!json_is_true(ok)) {
		json_t *e = json_object_get(ans, "error");

		fprintf(stderr, "waymark: %s\n", json_is_string(e) ?
		    json_string_value(e) : "the daemon refused the request");
		goto fail;
	}
	*result = json_incref(json_object_get(ans, "result"));
	if (*result == NULL) {
		fprintf(stderr, "waymark: malformed answer from the daemon: "
		    "no \"result\"\n");
		goto fail;
	}
	rc = EX_WM_OK;
fail:
	json_decref(ans);
	return rc;
}

/*
 * ctl_recv - the answer on fd (closed here) from the daemon at path: its
 * "result" in *result (new reference).  Returns EX_WM_OK or EX_WM_FAIL
 * after printing the reason.
 */
static int
ctl_recv(const char *path, int fd, json_t **result)
{
	char	*buf;
	size_t	 used;
	int	 rc;

	*result = NULL;
	if ((rc = ctl_read(path, fd, &buf, &used)) != EX_WM_OK)
		return rc;
	return ctl_parse(buf, used, result);
}

/*
 * ctl_request - send req (consumed) to the daemon at path, return its
 * answer's "result" in *result (new reference).  Returns EX_WM_OK or
 * EX_WM_FAIL after printing the reason.
 */
static int
ctl_request(const char *path, json_t *req, json_t **result)
{
	int	fd, rc;

	*result = NULL;
	if ((rc = ctl_send(path, req, &fd)) != EX_WM_OK)
		return rc;
	return ctl_recv(path, fd, result);
}

static int
out_done(void)
{
	if (fflush(stdout) == EOF || ferror(stdout)) {
		fprintf(stderr, "waymark: write error: %s\n", strerror(errno));
		return EX_WM_FAIL;
	}
	return EX_WM_OK;
}

/* print_json_line - one compact object and "\n" */
static int
print_json_line(json_t *o)
{
	if (json_dumpf(o, stdout, JSON_COMPACT) == -1)
		return -1;
	fputc('\n', stdout);
	return 0;
}

/* ---- commands ---- */

#define QUEUE_PAGE_FIRST	100	/* the first page: the first line soon */
/* the next ones: 500 messages are about 4.5 MiB of jansson objects on
 * each side, inside the daemon's kept arena (JARENA_KEEP), where pages of
 * 2000 (18 MiB) had it map and unmap blocks for every page: 100,000
 * listed in 2.1-2.2 s instead of 2.5 (bench/README.md, "Listing from an
 * arena") */
#define QUEUE_PAGE		500

/* queue_req - the request of one page of the listing (NULL: ENOMEM) */
static json_t *
queue_req(const struct opts *o, size_t limit, const char *after)
{
	json_t	*req;

	req = json_pack("{s:s,s:I}", "cmd", "queue", "limit",
	    (json_int_t)limit);
	if (req != NULL && ((o->state != NULL && json_object_set_new(req,
	    "state", json_string(o->state)) == -1) || (after[0] != '\0' &&
	    json_object_set_new(req, "after", json_string(after)) == -1))) {
		json_decref(req);
		req = NULL;
	}
	return req;
}

/*
 * page_next - the "next" of a page's answer, read off its octets: the
 * daemon writes it first ({"ok":true,"result":{"next":"QID",...).  1
 * with out set, or 0: the last page, or an answer of another shape
 * (left to the parse).
 */
static int
page_next(const char *buf, size_t used, char *out, size_t outlen)
{
	static const char	 pre[] = "{\"ok\":true,\"result\":{\"next\":\"";
	const char		*q, *e;
	size_t			 pl = sizeof(pre) - 1;

	if (used < pl || memcmp(buf, pre, pl) != 0)
		return 0;
	q = buf + pl;
	if ((e = memchr(q, '"', used - pl)) == NULL || e == q ||
	    (size_t)(e - q) >= outlen)
		return 0;
	memcpy(out, q, (size_t)(e - q));
	out[e - q] = '\0';
	return 1;
}

/*
 * run_queue - the listing page by page ({"limit":N,"after":QID}), each
 * page printed and flushed as it arrives: the first lines of a large
 * queue appear at once and the listing is never held whole.  The next
 * page is asked for as soon as this one is in, before it is parsed (or,
 * from a daemon that writes "next" last, before it is printed), so the
 * daemon builds it while we parse and print.  A daemon without
 * pages answers the whole array: it is printed as before.
 */
static int
run_queue(const char *ctl, const struct opts *o)
{
	json_t			*res, *m, *msgs;
	const char		*next;
	char			 after[48] = "";
	size_t			 i, n = 0;
	double			 total = 0;
	char			*buf;
	size_t			 used;
	int			 rc, fd, first = 1;

	/* the pages' jansson objects from an arena (common/jarena.h),
	 * rewound after each page */
	jarena_begin();
	if ((rc = ctl_send(ctl, queue_req(o, QUEUE_PAGE_FIRST, ""), &fd)) !=
	    EX_WM_OK)
		return rc;
	for (;;) {
		if ((rc = ctl_read(ctl, fd, &buf, &used)) != EX_WM_OK)
			return rc;
		/* the next page asked for before this one is parsed: the
		 * daemon builds it meanwhile (asked for at the first octets,
		 * its building would hold up the rest of this page: one loop
		 * thread) */
		fd = -1;
		if (page_next(buf, used, after, sizeof(after)) &&
		    (rc = ctl_send(ctl, queue_req(o, QUEUE_PAGE, after),
		    &fd)) != EX_WM_OK) {
			free(buf);
			return rc;
		}
		if ((rc = ctl_parse(buf, used, &res)) != EX_WM_OK) {
			if (fd != -1)
				close(fd);
			return rc;
		}
		if (json_is_array(res) && first)
			goto whole;	/* the whole listing at once */
		first = 0;
		msgs = json_object_get(res, "messages");
		next = json_string_value(json_object_get(res, "next"));
		if (!json_is_array(msgs) || next == NULL ||
		    strlen(next) >= sizeof(after) ||
		    (fd != -1 && strcmp(next, after) != 0)) {
			fprintf(stderr, "waymark: malformed answer from the "
			    "daemon\n");
			if (fd != -1)
				close(fd);
			json_decref(res);
			return EX_WM_FAIL;
		}
		snprintf(after, sizeof(after), "%s", next);
		if (fd == -1 && after[0] != '\0' && (rc = ctl_send(ctl,
		    queue_req(o, QUEUE_PAGE, after), &fd)) != EX_WM_OK) {
			json_decref(res);
			return rc;
		}
		if (o->json) {
			json_array_foreach(msgs, i, m)
				if (print_json_line(m) == -1)
					rc = EX_WM_FAIL;
		} else
			tools_print_queue_page(stdout, msgs, &n, &total);
		/* no json_decref(res): every object of the page is the
		 * arena's, and rewinding it frees them all at once (a
		 * decref visited each object to free it one by one: 12 % of
		 * the command's time).  Nothing of this page is used after
		 * this (the next request is sent and freed). */
		res = NULL;
		jarena_rewind();
		if (rc != EX_WM_OK || fd == -1)
			break;
		if (fflush(stdout) == EOF) {
			close(fd);
			return out_done();
		}
	}
	if (fd != -1)
		close(fd);
	if (rc != EX_WM_OK)
		return rc;
	if (!o->json)
		tools_print_queue_end(stdout, n, total);
	return out_done();
whole:
	if (!json_is_array(res)) {
		fprintf(stderr, "waymark: malformed answer from the daemon\n");
		json_decref(res);
		return EX_WM_FAIL;
	}
	if (o->json) {
		json_array_foreach(res, i, m)
			if (print_json_line(m) == -1)
				rc = EX_WM_FAIL;
	} else
		tools_print_queue(stdout, res);
	json_decref(res);
	return rc != EX_WM_OK ? rc : out_done();
}

/* run_message - show QID --message: the stored message, LF line ends
 * like a delivered Maildir file */
static int
run_message(const char *ctl, const struct opts *o)
{
	json_t		*res;
	const char	*b64;
	unsigned char	*raw;
	size_t		 len, i;
	int		 n, rc;

	rc = ctl_request(ctl, json_pack("{s:s,s:s}", "cmd", "message", "qid",
	    o->qid), &res);
	if (rc != EX_WM_OK)
		return rc;
	b64 = json_string_value(json_object_get(res, "base64"));
	len = b64 != NULL ? strlen(b64) : 0;
	if (b64 == NULL || (raw = malloc(len / 4 * 3 + 3)) == NULL ||
	    (n = base64_decode(b64, len, raw, len / 4 * 3 + 3)) < 0) {
		fprintf(stderr, "waymark: malformed answer from the daemon\n");
		json_decref(res);
		return EX_WM_FAIL;
	}
	for (i = 0; i < (size_t)n; i++)
		if (!(raw[i] == '\r' && i + 1 < (size_t)n && raw[i + 1] == '\n'))
			putchar(raw[i]);
	free(raw);
	json_decref(res);
	return out_done();
}

/* run_action - hold / release / delete [--bounce]: answered once the
 * change is on stable storage */
static int
run_action(const char *ctl, const struct opts *o)
{
	json_t		*req, *res;
	const char	*msg;
	int		 rc;

	req = o->bounce ? json_pack("{s:s,s:s,s:b}", "cmd", o->cmd, "qid",
	    o->qid, "bounce", 1) : json_pack("{s:s,s:s}", "cmd", o->cmd,
	    "qid", o->qid);
	if ((rc = ctl_request(ctl, req, &res)) != EX_WM_OK)
		return rc;
	msg = json_string_value(json_object_get(res, "message"));
	printf("%s\n", msg != NULL ? msg : "done");
	json_decref(res);
	return out_done();
}

static int
run_show(const char *ctl, const struct opts *o)
{
	json_t	*res;
	int	 rc;

	if (o->message)
		return run_message(ctl, o);
	rc = ctl_request(ctl, json_pack("{s:s,s:s}", "cmd", "show", "qid",
	    o->qid), &res);
	if (rc != EX_WM_OK)
		return rc;
	if (!json_is_object(res)) {
		fprintf(stderr, "waymark: malformed answer from the daemon\n");
		json_decref(res);
		return EX_WM_FAIL;
	}
	if (o->json)
		rc = print_json_line(res) == -1 ? EX_WM_FAIL : EX_WM_OK;
	else
		tools_print_show(stdout, res);
	json_decref(res);
	return rc != EX_WM_OK ? rc : out_done();
}

static int
run_flush(const char *ctl, const struct opts *o)
{
	json_t		*res, *jn;
	json_int_t	 n;
	int		 rc;

	rc = ctl_request(ctl, o->qid ? json_pack("{s:s,s:s}", "cmd", "flush",
	    "qid", o->qid) : json_pack("{s:s}", "cmd", "flush"), &res);
	if (rc != EX_WM_OK)
		return rc;
	jn = json_object_get(res, "count");
	n = json_is_integer(jn) ? json_integer_value(jn) : 0;
	printf("flushed %lld deferred recipient%s\n", (long long)n,
	    n == 1 ? "" : "s");
	json_decref(res);
	return out_done();
}

/* parse_keygen - dkim-keygen's arguments (tools_dkim.c) */
static int
parse_keygen(int argc, char **argv, struct opts *o)
{
	return keygen_parse(argc, argv, &o->kg);
}

/* run_tlsrpt - queue the TLS-RPT reports now (control command tlsrpt) */
static int
run_tlsrpt(const char *ctl, const struct opts *o)
{
	json_t		*res, *jn;
	json_int_t	 n;
	int		 rc;

	(void)o;
	rc = ctl_request(ctl, json_pack("{s:s}", "cmd", "tlsrpt"), &res);
	if (rc != EX_WM_OK)
		return rc;
	jn = json_object_get(res, "count");
	n = json_is_integer(jn) ? json_integer_value(jn) : 0;
	printf("TLS-RPT: reports for %lld policy domain%s being queued\n",
	    (long long)n, n == 1 ? "" : "s");
	json_decref(res);
	return out_done();
}

/* find_command - the command table entry of name, or NULL */
static const struct command *
find_command(const char *name)
{
	size_t	k;

	for (k = 0; name != NULL && k < NCOMMANDS; k++)
		if (strcmp(commands[k].name, name) == 0)
			return &commands[k];
	return NULL;
}

/* run_with_config - load path (NULL = the default), run c */
static int
run_with_config(const struct command *c, const char *path,
    const struct opts *o)
{
	struct config	*cfg;
	char		 err[1024];
	int		 rc;

	if ((cfg = cfg_load(path, err, sizeof(err))) == NULL) {
		fprintf(stderr, "waymark: %s\n", err);
		return EX_WM_FAIL;
	}
	if (c->parse == parse_track)
		rc = track_run(cfg, &o->tr);
	else if (c->run == NULL)
		rc = sendmail_run(cfg, &o->sm);
	else if (cfg->control == NULL || *cfg->control == '\0') {
		fprintf(stderr, "waymark: %s: no control socket configured\n",
		    cfg->path ? cfg->path : "(default)");
		rc = EX_WM_FAIL;
	} else {
		run_cfg = cfg;
		rc = c->run(cfg->control, o);
		run_cfg = NULL;
	}
	cfg_free(cfg);
	return rc;
}

/* main_compat - run as `sendmail` or `mailq` (-C FILE, $WAYMARK_CONF) */
static int
main_compat(int mailq, int argc, char *argv[])
{
	const char	*path;
	struct opts	 o;
	size_t		 k;
	int		 i, rc;

	memset(&o, 0, sizeof(o));
	for (i = 1; i < argc; i++)
		if (strcmp(argv[i], "--help") == 0) {
			if (mailq)
				printf("usage: mailq [-C FILE] [--state S] "
				    "[--json]\n");
			else
				sendmail_usage(stdout, 1);
			return EX_WM_OK;
		}
	if (mailq) {
		for (i = 1; i < argc; i++)
			if (strcmp(argv[i], "-C") == 0 && i + 1 < argc)
				o.sm.conf = argv[++i];
			else if (strncmp(argv[i], "-C", 2) == 0 &&
			    argv[i][2] != '\0')
				o.sm.conf = argv[i] + 2;
			else if (strcmp(argv[i], "-v") != 0)
				break;
		if ((rc = parse_queue(argc - i, argv + i, &o)) != 0)
			return rc;
	} else if ((rc = sendmail_parse(argc - 1, argv + 1, 1, &o.sm)) != 0) {
		sendmail_usage(stderr, 1);
		return rc;
	}
	path = o.sm.conf ? o.sm.conf : getenv("WAYMARK_CONF");
	if (path != NULL && *path == '\0')
		path = NULL;
#ifdef WM_SENDMAIL_CONF
	/* built for a system install (--with-sendmail-config=FILE) */
	if (path == NULL)
		path = WM_SENDMAIL_CONF;
#endif
	for (k = 0; k < NCOMMANDS; k++)
		if (strcmp(commands[k].name, mailq || o.sm.mailq ? "queue" :
		    "sendmail") == 0)
			break;
	if (k == NCOMMANDS)
		return EX_WM_FAIL;
	return run_with_config(&commands[k], path, &o);
}

int
main(int argc, char *argv[])
{
	const struct command	*c = NULL;
	struct opts		 o;
	const char		*path = NULL, *name;
	int			 i, j, rc;
	size_t			 k;

	name = argc > 0 ? strrchr(argv[0], '/') : NULL;
	name = name ? name + 1 : argc > 0 ? argv[0] : "waymark";
	if (strcmp(name, "sendmail") == 0 || strcmp(name, "mailq") == 0)
		return main_compat(name[0] == 'm', argc, argv);

	for (i = 1; i < argc && argv[i][0] == '-'; i++) {
		if (strcmp(argv[i], "-h") == 0 ||
		    strcmp(argv[i], "--help") == 0) {
			usage(stdout);
			return EX_WM_OK;
		} else if (strcmp(argv[i], "-V") == 0 ||
		    strcmp(argv[i], "--version") == 0) {
			printf("waymark %s\n", PACKAGE_VERSION);
			return EX_WM_OK;
		} else if (strcmp(argv[i], "-f") == 0) {
			if (i + 1 >= argc)
				return usage_error(NULL, "-f needs a FILE%s",
				    "");
			path = argv[++i];
		} else if (strcmp(argv[i], "--") == 0) {
			i++;
			break;
		} else
			return usage_error(NULL, "unknown option: %s",
			    argv[i]);
	}
	if (i >= argc)
		return usage_error(NULL, "missing COMMAND%s", "");
	for (k = 0; k < NCOMMANDS; k++)
		if (strcmp(argv[i], commands[k].name) == 0)
			c = &commands[k];
	if (c == NULL)
		return usage_error(NULL, "unknown command: %s", argv[i]);
	for (j = i + 1; j < argc; j++)
		if (strcmp(argv[j], "--help") == 0 ||
		    strcmp(argv[j], "-h") == 0) {
			cmd_usage(stdout, c);
			return EX_WM_OK;
		}
	memset(&o, 0, sizeof(o));
	o.cmd = c->name;
	if ((rc = c->parse(argc - i - 1, argv + i + 1, &o)) != 0) {
		if (c->run == NULL)
			cmd_usage(stderr, c);
		return rc;
	}
	if (c->parse == parse_keygen)
		return keygen_run(&o.kg);	/* needs no configuration */
	if (c->run == NULL && o.sm.mailq)
		return usage_error(c, "sendmail: -bp: use `waymark queue`%s",
		    "");
	return run_with_config(c, path, &o);
}
