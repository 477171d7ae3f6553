#include "config.h"
/*
 * tools_track.c - `waymark track ENVID`: follow a tracked message hop by
 * hop with MTQP (RFC 3887) and print where it is, like a parcel tracker.
 * Owns: the command's options, the secret (--secret, else the LAST line
 *       "ENVID SP base64(A)" for ENVID in ~/.waymark/keys, the file
 *       tools_sendmail.c's --track appends to), the first server
 *       (--server HOST[:PORT], else the configuration's first `mtqp`
 *       address, a wildcard one reached on loopback, asked as `hostname`),
 *       the walk (track/trk_walk.c, on a loop of its own: one query
 *       at a time, each host asked once, recipients matched across hops by Original-Recipient,
 *       `transferred` recipients followed to their Remote-MTA, at most
 *       TRK_MAX_HOPS deep and TRK_MAX_HOSTS hosts asked (the others are
 *       shown as not asked), each query within TRACK_HOP_MS whatever
 *       its server trickles, parts chained inside an answer used as
 *       they are), exit codes; what is printed is tools_track_out.c's.
 * Exit status (contract): 0 the path was followed, whatever the outcome
 *       (a later hop unreachable or not speaking MTQP ends the path); 1
 *       the first server unreachable; 2 usage; 3 no key for ENVID; 4 no
 *       information / authentication refused at the first server; 5 the
 *       first server does not speak MTQP, its TLS failed, or another
 *       protocol error there.
 * Not here: the protocol and the parsers (track/trk_client.c,
 *       track/trk_parse.c).
 */

#include <sys/types.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <event2/event.h>

#include "common/cfg.h"
#include "common/log.h"
#include "common/syntax.h"
#include "common/util.h"
#include "track/trk_client.h"
#include "tools/tools.h"
#include "tools/tools_track.h"

#define ENVID_MAX	100		/* RFC 3461 4.4 */
#define SECRET_MAX	512
#define KEYLINE_MAX	1024

/* ---------------------------------------------------------------- options */

/* terr - "waymark: track: ..." on stderr; it may quote a hop's text:
 * controls and broken UTF-8 as '?' */
static void	terr(const char *fmt, ...) WM_PRINTF(1, 2);

static void
terr(const char *fmt, ...)
{
	char	msg[2048];
	va_list	ap;
	int	n;

	va_start(ap, fmt);
	n = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (n < 0)
		msg[0] = '\0';
	text_safe(msg);
	fprintf(stderr, "waymark: track: %s\n", msg);
}

/* secret_ok - s is base64 of a non-empty secret */
static int
secret_ok(const char *s)
{
	unsigned char	out[SECRET_MAX];
	size_t		n = strlen(s);
	int		r;

	if (n == 0 || n >= SECRET_MAX)
		return 0;
	r = base64_decode(s, n, out, sizeof(out));
	explicit_bzero(out, sizeof(out));
	return r > 0;
}

/* host_ok - letters, digits, '-', '.', '_' (a name) or an address */
static int
host_ok(const char *h)
{
	size_t	i, n = strlen(h);

	if (n == 0 || n > 253)
		return 0;
	for (i = 0; i < n; i++)
		if (!isalnum((unsigned char)h[i]) && strchr("-._:", h[i]) == NULL)
			return 0;
	return 1;
}

int
track_parse_server(const char *s, char *host, size_t hostlen, unsigned *port)
{
	unsigned char	a[16];
	unsigned	p = TRK_MTQP_PORT;
	int		bracketed;

	if (host_port_split(s, host, hostlen, &bracketed, &p) == -1)
		return -1;
	if (bracketed ? inet_pton(AF_INET6, host, a) != 1 &&
	    inet_pton(AF_INET, host, a) != 1 : !host_ok(host))
		return -1;
	*port = p;
	return 0;
}

/* opt_value - "--name VALUE" or "--name=VALUE" at argv[*i]; NULL: not it */
static const char *
opt_value(int argc, char **argv, int *i, const char *name, int *missing)
{
	size_t	n = strlen(name);

	*missing = 0;
	if (strncmp(argv[*i], name, n) != 0)
		return NULL;
	if (argv[*i][n] == '=')
		return argv[*i] + n + 1;
	if (argv[*i][n] != '\0')
		return NULL;
	if (*i + 1 >= argc) {
		*missing = 1;
		return NULL;
	}
	return argv[++*i];
}

int
track_parse(int argc, char **argv, struct track_opts *o)
{
	const char	*v;
	char		 host[256];
	unsigned	 port;
	int		 i, missing;
	size_t		 k;
	static const char *const valued[] = {
		"--secret", "--server", "--ca", "--tls-verify"
	};

	for (i = 0; i < argc; i++) {
		for (k = 0; k < sizeof(valued) / sizeof(valued[0]); k++) {
			v = opt_value(argc, argv, &i, valued[k], &missing);
			if (missing) {
				terr("%s needs a value", valued[k]);
				return EX_WM_USAGE;
			}
			if (v != NULL)
				break;
		}
		if (k == 0)
			o->secret = v;
		else if (k == 1)
			o->server = v;
		else if (k == 2)
			o->ca = v;
		else if (k == 3) {
			if (strcmp(v, "none") != 0) {
				terr("--tls-verify: only \"none\" turns "
				    "verification off (got \"%s\")", v);
				return EX_WM_USAGE;
			}
			o->no_verify = 1;
		} else if (strcmp(argv[i], "--json") == 0)
			o->json = 1;
		else if (argv[i][0] == '-' && argv[i][1] != '\0') {
			terr("unknown option: %s", argv[i]);
			return EX_WM_USAGE;
		} else if (o->envid == NULL)
			o->envid = argv[i];
		else {
			terr("unexpected argument: %s", argv[i]);
			return EX_WM_USAGE;
		}
	}
	if (o->envid == NULL) {
		terr("missing ENVID");
		return EX_WM_USAGE;
	}
	if (!envid_ok(o->envid)) {
		terr("invalid ENVID \"%s\" (1 to %d printable characters)",
		    o->envid, ENVID_MAX);
		return EX_WM_USAGE;
	}
	if (o->secret != NULL && !secret_ok(o->secret)) {
		terr("--secret: not base64 (the second field of a line of "
		    "~/.waymark/keys)");
		return EX_WM_USAGE;
	}
	if (o->server != NULL && track_parse_server(o->server, host,
	    sizeof(host), &port) == -1) {
		terr("--server: invalid HOST[:PORT] \"%s\"", o->server);
		return EX_WM_USAGE;
	}
	if (o->ca != NULL && o->ca[0] == '\0') {
		terr("--ca: empty file name");
		return EX_WM_USAGE;
	}
	return 0;
}

/* ---------------------------------------------------------------- keys */

int
track_key_find(FILE *f, const char *envid, char *out, size_t outlen)
{
	char	 line[KEYLINE_MAX];
	char	*sp, *e;
	size_t	 n, el = strlen(envid);
	int	 found = 0, skip = 0;

	while (fgets(line, sizeof(line), f) != NULL) {
		n = strlen(line);
		if (n > 0 && line[n - 1] != '\n' && !feof(f)) {
			skip = 1;	/* an over-long line: ignored */
			continue;
		}
		if (skip) {		/* the rest of an over-long line */
			skip = 0;
			continue;
		}
		while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
			line[--n] = '\0';
		if ((sp = strchr(line, ' ')) == NULL ||
		    (size_t)(sp - line) != el || memcmp(line, envid, el) != 0)
			continue;
		for (sp++; *sp == ' '; sp++)
			;
		for (e = sp; *e != '\0' && *e != ' ' && *e != '\t'; e++)
			;
		*e = '\0';
		if (!secret_ok(sp) || strlen(sp) >= outlen)
			continue;
		memcpy(out, sp, strlen(sp) + 1);	/* the last one wins */
		found = 1;
	}
	explicit_bzero(line, sizeof(line));
	return found;
}

/* key_lookup - the secret of envid from ~/.waymark/keys; 1, 0 none */
static int
key_lookup(const char *envid, char *out, size_t outlen)
{
	struct passwd	*pw;
	const char	*home = getenv("HOME");
	char		 path[4200];
	FILE		*f;
	int		 r;

	if (home == NULL || *home == '\0') {
		if ((pw = getpwuid(getuid())) == NULL) {
			terr("no key for %s: cannot find the home folder",
			    envid);
			return 0;
		}
		home = pw->pw_dir;
	}
	r = snprintf(path, sizeof(path), "%s/.waymark/keys", home);
	if (r < 0 || (size_t)r >= sizeof(path)) {
		terr("no key for %s: home folder name too long", envid);
		return 0;
	}
	if ((f = fopen(path, "re")) == NULL) {
		terr("no key for %s: %s: %s (give --secret)", envid, path,
		    strerror(errno));
		return 0;
	}
	r = track_key_find(f, envid, out, outlen);
	fclose(f);
	if (!r)
		terr("no key for %s in %s (give --secret)", envid, path);
	return r;
}

/* ---------------------------------------------------------------- run */

/* first_server - the first hop from the configuration; 0 or -1 */
static int
first_server(struct walk *w, const struct config *cfg)
{
	struct sockaddr_storage	 ss;
	struct sockaddr_in	*s4 = (struct sockaddr_in *)(void *)&ss;
	struct sockaddr_in6	*s6 = (struct sockaddr_in6 *)(void *)&ss;
	char			 text[64];

	if (cfg->nmtqp == 0)
		return -1;
	memcpy(&ss, &cfg->mtqp[0].ss, sizeof(ss));
	/* a wildcard listener is reached on loopback */
	if (ss.ss_family == AF_INET && s4->sin_addr.s_addr == htonl(INADDR_ANY))
		s4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	else if (ss.ss_family == AF_INET6 &&
	    IN6_IS_ADDR_UNSPECIFIED(&s6->sin6_addr))
		s6->sin6_addr = in6addr_loopback;
	/* asked as this host's name: the name its certificate has (ENOMEM
	 * is the caller's to see) */
	if (cfg->hostname != NULL && host_ok(cfg->hostname))
		(void)track_walk_add(w, cfg->hostname, 0,
		    (struct sockaddr *)&ss, cfg->mtqp[0].len);
	else if (sockaddr_text((struct sockaddr *)&ss, text,
	    sizeof(text)) == -1)
		return -1;
	else
		(void)track_walk_add(w, text, 0, (struct sockaddr *)&ss,
		    cfg->mtqp[0].len);
	return 0;
}

int
track_run(const struct config *cfg, const struct track_opts *o)
{
	struct trk_client_opts	 co;
	struct walk		 w;
	char			 secret[SECRET_MAX], err[512], host[256];
	unsigned		 port;
	int			 rc = EX_WM_OK;

	memset(&w, 0, sizeof(w));
	memset(&co, 0, sizeof(co));
	if (o->secret != NULL)
		snprintf(secret, sizeof(secret), "%s", o->secret);
	else if (!key_lookup(o->envid, secret, sizeof(secret)))
		return EX_WM_TRK_NOKEY;
	w.envid = o->envid;
	w.secret = secret;
	if (o->server != NULL) {
		if (track_parse_server(o->server, host, sizeof(host),
		    &port) == -1) {
			terr("--server: invalid HOST[:PORT] \"%s\"", o->server);
			rc = EX_WM_USAGE;
			goto out;
		}
		(void)track_walk_add(&w, host, port, NULL, 0);
	} else if (first_server(&w, cfg) == -1) {
		terr("no MTQP server: give --server HOST[:PORT] or set `mtqp` "
		    "in %s", cfg->path != NULL && cfg->path[0] != '(' ?
		    cfg->path : "the configuration");
		rc = EX_WM_USAGE;
		goto out;
	}
	if (w.oom || w.npend == 0) {
		terr("out of memory");
		rc = EX_WM_FAIL;
		goto out;
	}
	co.dns = cfg->dns;
	co.ndns = cfg->ndns;
	co.hosts_file = 1;
	co.ca_file = o->ca;
	co.tls_verify = !o->no_verify;
	w.hop_ms = TRACK_HOP_MS;
	if (track_walk(&w, &co, err, sizeof(err)) == -1) {
		terr("%s", err);
		rc = o->ca != NULL && strncmp(err, "CA file", 7) == 0 ?
		    EX_WM_USAGE : EX_WM_FAIL;
		goto out;
	}
	if (w.nhops == 0) {
		terr("no answer");
		rc = EX_WM_TRK_PROTO;
		goto out;
	}
	switch (w.hops[0].result) {
	case TRK_OK:
		rc = EX_WM_OK;
		break;
	case TRK_UNREACHABLE:
		rc = EX_WM_FAIL;
		break;
	case TRK_NOINFO:
		rc = EX_WM_TRK_NOINFO;
		break;
	default:
		rc = EX_WM_TRK_PROTO;
		break;
	}
	if (rc != EX_WM_OK) {
		char	f[700];

		track_failed_hop_text(&w.hops[0], f, sizeof(f));
		if (w.hops[0].server != NULL && w.hops[0].result != TRK_NOT_MTQP)
			terr("%s; server %s", f, w.hops[0].server);
		else
			terr("%s", f);
	}
	if (o->json) {
		if (track_print_json(&w) == -1) {
			terr("cannot write the JSON object");
			if (rc == EX_WM_OK)
				rc = EX_WM_FAIL;
		}
	} else if (rc == EX_WM_OK)
		track_print_text(&w);
	if (fflush(stdout) == EOF || ferror(stdout)) {
		terr("write error: %s", strerror(errno));
		if (rc == EX_WM_OK)
			rc = EX_WM_FAIL;
	}
out:
	explicit_bzero(secret, sizeof(secret));
	track_walk_free(&w);
	return rc;
}
