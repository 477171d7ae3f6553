#include "config.h"
/*
 * tools_track.c - `waymark track ENVID`: follow a tracked message hop by
 * hop with MTQP (RFC 3887) and print where it is, like a parcel tracker.
 * Owns: the command's options, the secret (--secret, else the LAST line
 *       "ENVID SP base64(A)" for ENVID in ~/.waymark/keys, the file
 *       tools_sendmail.c's --track appends to), the first server
 *       (--server HOST[:PORT], else the configuration's first `mtqp`
 *       address, a wildcard one reached on loopback, asked as `hostname`),
 *       the walk (one query at a time on one event loop: each host asked
 *       once, recipients matched across hops by Original-Recipient,
 *       `transferred` recipients followed to their Remote-MTA, at most
 *       TRK_MAX_HOPS deep, parts chained inside an answer used as they
 *       are), the timeline text, the --json object (README), exit codes.
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
#include <jansson.h>

#include "common/cfg.h"
#include "common/log.h"
#include "common/syntax.h"
#include "common/util.h"
#include "track/trk_client.h"
#include "tools/tools.h"

#define ENVID_MAX	100		/* RFC 3461 4.4 */
#define SECRET_MAX	512
#define KEYLINE_MAX	1024

/* ---------------------------------------------------------------- options */

/* terr - "waymark: track: ..." on stderr */
static void	terr(const char *fmt, ...) WM_PRINTF(1, 2);

static void
terr(const char *fmt, ...)
{
	va_list	ap;

	fputs("waymark: track: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* envid_ok - 1..100 printable ASCII characters without space */
static int
envid_ok(const char *s)
{
	size_t	i, n = strlen(s);

	if (n == 0 || n > ENVID_MAX)
		return 0;
	for (i = 0; i < n; i++)
		if (s[i] <= ' ' || s[i] > '~')
			return 0;
	return 1;
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
	const char	*end, *ps = NULL;
	size_t		 len;
	char		*ep;
	long		 p = TRK_MTQP_PORT;
	unsigned char	 a[16];
	char		 text[64];

	if (s[0] == '[') {
		if ((end = strchr(s, ']')) == NULL)
			return -1;
		len = (size_t)(end - s - 1);
		if (end[1] == ':')
			ps = end + 2;
		else if (end[1] != '\0')
			return -1;
		if (len == 0 || len >= sizeof(text))
			return -1;
		memcpy(text, s + 1, len);
		text[len] = '\0';
		if (inet_pton(AF_INET6, text, a) != 1 &&
		    inet_pton(AF_INET, text, a) != 1)
			return -1;
		if (snprintf(host, hostlen, "%s", text) >= (int)hostlen)
			return -1;
	} else {
		end = strrchr(s, ':');
		if (end != NULL && strchr(s, ':') == end) {
			len = (size_t)(end - s);
			ps = end + 1;
		} else
			len = strlen(s);	/* a name, or a bare IPv6 */
		if (len == 0 || len >= hostlen)
			return -1;
		memcpy(host, s, len);
		host[len] = '\0';
		if (!host_ok(host))
			return -1;
	}
	if (ps != NULL) {
		errno = 0;
		p = strtol(ps, &ep, 10);
		if (ps[0] == '\0' || *ep != '\0' || errno != 0 || p < 1 ||
		    p > 65535)
			return -1;
	}
	*port = (unsigned)p;
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

/* ---------------------------------------------------------------- the walk */

struct hop {				/* one entry of "hops" */
	char			*host;		/* name asked / reporting MTA */
	char			*server;	/* NULL: none */
	int			 tls;
	int			 chained;
	enum trk_result		 result;
	char			*error;		/* NULL: none */
	const struct trk_part	*part;		/* NULL unless ok */
	int			 depth;
};

struct outcome {			/* one recipient across hops */
	char			*addr;		/* Original-Recipient */
	size_t			 hop;		/* index of its last hop */
	const struct trk_rcpt	*r;
};

struct pend {				/* a host still to ask */
	char			*host;
	unsigned		 port;
	struct sockaddr_storage	 ss;
	socklen_t		 sslen;	/* 0: resolve host */
	int			 depth;
};

struct walk {
	struct event_base	*base;
	struct trk_client	*cl;
	const char		*envid;
	const char		*secret;
	struct hop		*hops;
	size_t			 nhops;
	struct trk_report	*reports;
	size_t			 nreports;
	struct pend		*pend;
	size_t			 npend, phead;
	char			**asked;
	size_t			 nasked;
	struct outcome		*out;
	size_t			 nout;
	int			 cur_depth;	/* of the query in flight */
	int			 oom;
};

/* wstrdup - strdup or NULL (s NULL), noting ENOMEM */
static char *
wstrdup(struct walk *w, const char *s)
{
	char	*r;

	if (s == NULL)
		return NULL;
	if ((r = strdup(s)) == NULL)
		w->oom = 1;
	return r;
}

/* grow - room for one more element in *v (n used) */
static int
grow(struct walk *w, void **v, size_t n, size_t sz)
{
	void	*nv;

	if ((nv = realloc(*v, (n + 1) * sz)) == NULL) {
		w->oom = 1;
		return -1;
	}
	*v = nv;
	return 0;
}

/* asked - host (case-insensitive, without a trailing dot) was asked;
 * add: remember it */
static int
asked(struct walk *w, const char *host, int add)
{
	size_t	i, n = strlen(host);

	if (n > 0 && host[n - 1] == '.')
		n--;
	for (i = 0; i < w->nasked; i++)
		if (strlen(w->asked[i]) == n &&
		    strncasecmp(w->asked[i], host, n) == 0)
			return 1;
	if (add && grow(w, (void **)&w->asked, w->nasked, sizeof(char *)) ==
	    0 && (w->asked[w->nasked] = strndup(host, n)) != NULL)
		w->nasked++;
	return 0;
}

/* add_pend - queue a query to host */
static void
add_pend(struct walk *w, const char *host, unsigned port,
    const struct sockaddr_storage *ss, socklen_t sslen, int depth)
{
	struct pend	*p;

	if (grow(w, (void **)&w->pend, w->npend, sizeof(*w->pend)) == -1)
		return;
	p = &w->pend[w->npend];
	memset(p, 0, sizeof(*p));
	if ((p->host = wstrdup(w, host)) == NULL)
		return;
	p->port = port;
	if (ss != NULL && sslen > 0) {
		memcpy(&p->ss, ss, sslen);
		p->sslen = sslen;
	}
	p->depth = depth;
	w->npend++;
	(void)asked(w, host, 1);
}

/* add_hop - a new entry of "hops"; its index or -1 */
static long
add_hop(struct walk *w, const char *host, const char *server, int tls,
    int chained, enum trk_result res, const char *error,
    const struct trk_part *part, int depth)
{
	struct hop	*h;

	if (grow(w, (void **)&w->hops, w->nhops, sizeof(*w->hops)) == -1)
		return -1;
	h = &w->hops[w->nhops];
	memset(h, 0, sizeof(*h));
	h->host = wstrdup(w, host != NULL ? host : "");
	h->server = server != NULL && *server ? wstrdup(w, server) : NULL;
	h->tls = tls;
	h->chained = chained;
	h->result = res;
	h->error = error != NULL && *error ? wstrdup(w, error) : NULL;
	h->part = part;
	h->depth = depth;
	return (long)w->nhops++;
}

/* rcpt_key - the address recipients are matched by */
static const char *
rcpt_key(const struct trk_rcpt *r)
{
	if (r->orcpt != NULL && *r->orcpt)
		return r->orcpt;
	return r->final != NULL ? r->final : "";
}

/* note_rcpt - r was reported at hop index hop */
static void
note_rcpt(struct walk *w, const struct trk_rcpt *r, size_t hop)
{
	const char	*k = rcpt_key(r);
	size_t		 i;

	for (i = 0; i < w->nout; i++)
		if (strcasecmp(w->out[i].addr, k) == 0)
			break;
	if (i == w->nout) {
		if (grow(w, (void **)&w->out, w->nout, sizeof(*w->out)) == -1)
			return;
		if ((w->out[i].addr = wstrdup(w, k)) == NULL)
			return;
		w->nout++;
	}
	w->out[i].hop = hop;
	w->out[i].r = r;
}

static void	walk_next(struct walk *w);

/* on_answer - a hop answered (trk_answer_fn) */
static void
on_answer(void *arg, const struct trk_answer *a)
{
	struct walk		*w = arg;
	struct trk_report	*rep;
	const struct trk_part	*p;
	const struct trk_rcpt	*r;
	char			 why[256], err[400];
	size_t			 i, j, first;
	long			 h;
	int			 depth = w->cur_depth;

	if (a->result != TRK_OK) {
		(void)add_hop(w, a->host, a->server, a->tls, 0, a->result,
		    a->error, NULL, depth);
		walk_next(w);
		return;
	}
	if (grow(w, (void **)&w->reports, w->nreports,
	    sizeof(*w->reports)) == -1) {
		walk_next(w);
		return;
	}
	rep = &w->reports[w->nreports];
	if (trk_report_parse(a->body, a->bodylen, rep, why,
	    sizeof(why)) == -1) {
		trk_report_free(rep);
		snprintf(err, sizeof(err), "malformed answer: %s", why);
		(void)add_hop(w, a->host, a->server, a->tls, 0, TRK_ERROR, err,
		    NULL, depth);
		walk_next(w);
		return;
	}
	w->nreports++;
	first = w->nhops;
	for (i = 0; i < rep->nparts; i++) {
		p = &rep->parts[i];
		h = add_hop(w, i == 0 ? a->host : (p->reporting_mta ?
		    p->reporting_mta : "?"), i == 0 ? a->server : NULL,
		    i == 0 ? a->tls : 0, i > 0, TRK_OK, NULL, p,
		    depth + (int)i);
		if (h == -1)
			break;
		/* a chained part's host was asked by the server for us */
		if (i > 0 && p->reporting_mta != NULL)
			(void)asked(w, p->reporting_mta, 1);
		for (j = 0; j < p->nrcpts; j++)
			note_rcpt(w, &p->rcpts[j], (size_t)h);
	}
	/* follow the transferred recipients whose last word came now */
	for (i = 0; i < w->nout; i++) {
		if (w->out[i].hop < first)
			continue;
		r = w->out[i].r;
		if (r->action == NULL || strcmp(r->action, "transferred") != 0 ||
		    r->remote_mta == NULL || r->remote_mta[0] == '\0' ||
		    w->hops[w->out[i].hop].depth + 1 > TRK_MAX_HOPS ||
		    asked(w, r->remote_mta, 0))
			continue;
		add_pend(w, r->remote_mta, 0, NULL, 0,
		    w->hops[w->out[i].hop].depth + 1);
	}
	walk_next(w);
}

/* walk_next - start the next query, or let the loop end */
static void
walk_next(struct walk *w)
{
	struct trk_request	 rq;
	struct pend		*p;

	while (w->phead < w->npend) {
		p = &w->pend[w->phead++];
		memset(&rq, 0, sizeof(rq));
		rq.host = p->host;
		rq.port = p->port;
		if (p->sslen > 0) {
			rq.addr = (const struct sockaddr *)&p->ss;
			rq.addrlen = p->sslen;
		}
		rq.envid = w->envid;
		rq.secret = w->secret;
		w->cur_depth = p->depth;
		if (trk_query_start(w->cl, &rq, on_answer, w) != NULL)
			return;
		(void)add_hop(w, p->host, NULL, 0, 0, TRK_ERROR,
		    "cannot start the query", NULL, p->depth);
	}
	/* done: the loop ends once the QUIT replies are in (bounded by
	 * the client's linger) */
}

/* ---------------------------------------------------------------- output */

/* fmt_date - RFC 5322 text of t */
static const char *
fmt_date(time_t t, char *out, size_t outlen)
{
	if (rfc5322_date(t, out, outlen) == -1)
		snprintf(out, outlen, "%lld", (long long)t);
	return out;
}

/* hop_host - the host a hop entry names in the text */
static const char *
hop_name(const struct hop *h)
{
	if (h->part != NULL && h->part->reporting_mta != NULL)
		return h->part->reporting_mta;
	return h->host;
}

/* failed_hop_text - "HOST does not speak MTQP" and the like */
static void
failed_hop_text(const struct hop *h, char *out, size_t outlen)
{
	const char	*e = h->error != NULL ? h->error : "";

	switch (h->result) {
	case TRK_NOT_MTQP:
		snprintf(out, outlen, "%s does not speak MTQP", h->host);
		break;
	case TRK_UNREACHABLE:
		snprintf(out, outlen, "%s unreachable (%s)", h->host, e);
		break;
	case TRK_NOINFO:
		snprintf(out, outlen, "%s has no tracking information (%s)",
		    h->host, e);
		break;
	case TRK_TLS_FAILED:
		snprintf(out, outlen, "%s: TLS failed (%s)", h->host, e);
		break;
	default:
		snprintf(out, outlen, "%s: error (%s)", h->host, e);
		break;
	}
}

/* find_hop - the first queried (not chained) hop entry for host */
static const struct hop *
find_hop(const struct walk *w, const char *host)
{
	size_t	i, n = strlen(host);

	if (n > 0 && host[n - 1] == '.')
		n--;
	for (i = 0; i < w->nhops; i++)
		if (!w->hops[i].chained && strlen(w->hops[i].host) >= n &&
		    strncasecmp(w->hops[i].host, host, n) == 0 &&
		    (w->hops[i].host[n] == '\0' ||
		    strcmp(w->hops[i].host + n, ".") == 0))
			return &w->hops[i];
	return NULL;
}

/* rcpt_detail - the text after a recipient's status in its hop */
static void
rcpt_detail(const struct trk_rcpt *r, char *out, size_t outlen)
{
	char		 d1[64], d2[64];
	const char	*act = r->action != NULL ? r->action : "";
	size_t		 o = 0;
	int		 n;

#define ADD(...) do {							\
	n = snprintf(out + o, outlen - o, __VA_ARGS__);			\
	if (n < 0 || (size_t)n >= outlen - o)				\
		return;							\
	o += (size_t)n;							\
} while (0)
	out[0] = '\0';
	if (r->final != NULL && r->orcpt != NULL &&
	    strcasecmp(r->final, r->orcpt) != 0)
		ADD("as %s, ", r->final);
	if (r->handling != NULL) {
		ADD("held: %s%s%s", r->handling->state,
		    r->handling->value ? "/" : "",
		    r->handling->value ? r->handling->value : "");
		if (r->handling->has_since)
			ADD(" since %s", fmt_date(r->handling->since, d1,
			    sizeof(d1)));
		if (r->handling->reason[0] != '\0')
			ADD(" (%s)", r->handling->reason);
		if (r->has_retry_until)
			ADD(", kept until %s", fmt_date(r->retry_until, d2,
			    sizeof(d2)));
	} else if (strcmp(act, "transferred") == 0 ||
	    strcmp(act, "relayed") == 0) {
		ADD("to %s", r->remote_mta ? r->remote_mta : "?");
		if (r->has_last_attempt)
			ADD(", %s", fmt_date(r->last_attempt, d1, sizeof(d1)));
	} else if (strcmp(act, "delayed") == 0) {
		ADD("queued");
		if (r->status_comment != NULL)
			ADD(" (%s)", r->status_comment);
		if (r->has_last_attempt)
			ADD(", last attempt %s%s%s", fmt_date(r->last_attempt,
			    d1, sizeof(d1)), r->remote_mta ? " to " : "",
			    r->remote_mta ? r->remote_mta : "");
		if (r->has_retry_until)
			ADD(", retrying until %s", fmt_date(r->retry_until,
			    d2, sizeof(d2)));
	} else {
		if (r->diagnostic != NULL)
			ADD("%s", r->diagnostic);
		else if (r->status_comment != NULL)
			ADD("%s", r->status_comment);
		if (r->has_last_attempt)
			ADD("%s%s", o > 0 ? ", " : "",
			    fmt_date(r->last_attempt, d1, sizeof(d1)));
	}
	/* a trailing ", " left by "as FINAL" alone */
	if (o >= 2 && strcmp(out + o - 2, ", ") == 0)
		out[o - 2] = '\0';
#undef ADD
}

/* outcome_text - the final word on recipient o */
static void
outcome_text(const struct walk *w, const struct outcome *oc, char *out,
    size_t outlen)
{
	const struct trk_rcpt	*r = oc->r;
	const struct hop	*h = &w->hops[oc->hop], *nh;
	const char		*act = r->action != NULL ? r->action : "";
	const char		*at = hop_name(h);
	char			 d[64], f[400];
	size_t			 hn = oc->hop + 1;

	if (strcmp(act, "delivered") == 0)
		snprintf(out, outlen, "delivered at %s (hop %zu)", at, hn);
	else if (strcmp(act, "relayed") == 0)
		snprintf(out, outlen, "relayed to %s: tracking ends there",
		    r->remote_mta ? r->remote_mta : "a host without tracking");
	else if (strcmp(act, "transferred") == 0) {
		const char *rm = r->remote_mta ? r->remote_mta : "?";

		if ((nh = find_hop(w, rm)) == NULL)
			snprintf(out, outlen, "transferred to %s (hop %zu): "
			    "not followed (%d hops at most)", rm, hn,
			    TRK_MAX_HOPS);
		else if (nh->result == TRK_OK)
			snprintf(out, outlen, "transferred to %s (hop %zu), "
			    "which does not report it", rm, hn);
		else {
			failed_hop_text(nh, f, sizeof(f));
			snprintf(out, outlen, "transferred to %s (hop %zu): %s: "
			    "tracking ends there", rm, hn, f);
		}
	} else if (strcmp(act, "delayed") == 0 && r->handling != NULL)
		snprintf(out, outlen, "held at %s (hop %zu): %s%s%s%s%s", at,
		    hn, r->handling->state, r->handling->value ? "/" : "",
		    r->handling->value ? r->handling->value : "",
		    r->handling->has_since ? " since " : "",
		    r->handling->has_since ? fmt_date(r->handling->since, d,
		    sizeof(d)) : "");
	else if (strcmp(act, "delayed") == 0)
		snprintf(out, outlen, "queued at %s (hop %zu)", at, hn);
	else if (strcmp(act, "failed") == 0)
		snprintf(out, outlen, "failed at %s (hop %zu): %s%s%s", at, hn,
		    r->status ? r->status : "", r->diagnostic ||
		    r->status_comment ? " " : "", r->diagnostic ?
		    r->diagnostic : r->status_comment ? r->status_comment : "");
	else if (strcmp(act, "expanded") == 0)
		snprintf(out, outlen, "expanded at %s (hop %zu)", at, hn);
	else if (strcmp(act, "opaque") == 0)
		snprintf(out, outlen, "no information at %s (hop %zu)", at, hn);
	else
		snprintf(out, outlen, "%s at %s (hop %zu)", *act ? act :
		    "unknown", at, hn);
}

/* print_text - the timeline */
static void
print_text(const struct walk *w)
{
	const struct hop	*h;
	const struct trk_rcpt	*r;
	char			 d[64], line[1200];
	size_t			 i, j, k;

	printf("Tracking %s\n", w->envid);
	for (i = 0; i < w->nhops; i++) {
		h = &w->hops[i];
		if (h->result != TRK_OK) {
			failed_hop_text(h, line, sizeof(line));
			printf("Hop %zu: %s: tracking ends here\n", i + 1, line);
			continue;
		}
		if (h->chained) {
			for (k = i; k > 0 && w->hops[k - 1].chained; k--)
				;
			printf("Hop %zu: %s (in the answer of hop %zu)\n",
			    i + 1, hop_name(h), k);
		} else
			printf("Hop %zu: %s (%s%s)\n", i + 1, hop_name(h),
			    h->server ? h->server : "?", h->tls ? ", TLS" : "");
		if (h->part->has_arrival)
			printf("  arrived %s\n", fmt_date(h->part->arrival, d,
			    sizeof(d)));
		for (j = 0; j < h->part->nrcpts; j++) {
			r = &h->part->rcpts[j];
			rcpt_detail(r, line, sizeof(line));
			printf("  %-16s %-12s %-7s %s\n", rcpt_key(r),
			    r->action ? r->action : "?",
			    r->status ? r->status : "?", line);
		}
	}
	printf("Outcome\n");
	if (w->nout == 0)
		printf("  no recipient reported\n");
	for (i = 0; i < w->nout; i++) {
		outcome_text(w, &w->out[i], line, sizeof(line));
		printf("  %-16s %s\n", w->out[i].addr, line);
	}
}

/* jstr - a string or null */
static json_t *
jstr(const char *s)
{
	return s != NULL ? json_string(s) : json_null();
}

/* jtime - Unix seconds or null */
static json_t *
jtime(int has, time_t t)
{
	return has ? json_integer((json_int_t)t) : json_null();
}

/* json_rcpt - one recipient of a hop */
static json_t *
json_rcpt(const struct trk_rcpt *r)
{
	json_t	*hs = json_null();

	if (r->handling != NULL)
		hs = json_pack("{s:s,s:o,s:o,s:s}",
		    "state", r->handling->state,
		    "value", jstr(r->handling->value),
		    "since", jtime(r->handling->has_since, r->handling->since),
		    "reason", r->handling->reason);
	return json_pack("{s:s,s:s,s:s,s:s,s:o,s:o,s:o,s:o,s:o}",
	    "original_recipient", rcpt_key(r),
	    "final_recipient", r->final ? r->final : rcpt_key(r),
	    "action", r->action ? r->action : "",
	    "status", r->status ? r->status : "",
	    "remote_mta", jstr(r->remote_mta),
	    "last_attempt", jtime(r->has_last_attempt, r->last_attempt),
	    "will_retry_until", jtime(r->has_retry_until, r->retry_until),
	    "diagnostic", jstr(r->diagnostic),
	    "handling_state", hs != NULL ? hs : json_null());
}

/* print_json - the one object (README) */
static int
print_json(const struct walk *w)
{
	json_t			*o, *hops, *rcpts, *hj, *rl;
	const struct hop	*h;
	const struct outcome	*oc;
	size_t			 i, j;
	char			*s;

	o = json_object();
	hops = json_array();
	rcpts = json_array();
	if (o == NULL || hops == NULL || rcpts == NULL)
		goto fail;
	for (i = 0; i < w->nhops; i++) {
		h = &w->hops[i];
		rl = json_array();
		for (j = 0; rl != NULL && h->part != NULL &&
		    j < h->part->nrcpts; j++)
			json_array_append_new(rl,
			    json_rcpt(&h->part->rcpts[j]));
		hj = json_pack("{s:s,s:o,s:b,s:b,s:s,s:o,s:o,s:o,s:o}",
		    "host", h->host,
		    "server", jstr(h->server),
		    "tls", h->tls,
		    "chained", h->chained,
		    "result", trk_result_name(h->result),
		    "error", jstr(h->error),
		    "reporting_mta", jstr(h->part ? h->part->reporting_mta :
		    NULL),
		    "arrival_date", jtime(h->part && h->part->has_arrival,
		    h->part ? h->part->arrival : 0),
		    "recipients", rl != NULL ? rl : json_array());
		if (hj == NULL || json_array_append_new(hops, hj) == -1)
			goto fail;
	}
	for (i = 0; i < w->nout; i++) {
		oc = &w->out[i];
		h = &w->hops[oc->hop];
		if (json_array_append_new(rcpts, json_pack(
		    "{s:s,s:s,s:s,s:s,s:I}",
		    "recipient", oc->addr,
		    "action", oc->r->action ? oc->r->action : "",
		    "status", oc->r->status ? oc->r->status : "",
		    "reporting_mta", hop_name(h),
		    "hop", (json_int_t)(oc->hop + 1))) == -1)
			goto fail;
	}
	if (json_object_set_new(o, "envid", json_string(w->envid)) == -1 ||
	    json_object_set_new(o, "hops", hops) == -1 ||
	    json_object_set_new(o, "recipients", rcpts) == -1) {
		hops = rcpts = NULL;
		goto fail;
	}
	if ((s = json_dumps(o, JSON_COMPACT)) == NULL) {
		json_decref(o);
		return -1;
	}
	printf("%s\n", s);
	free(s);
	json_decref(o);
	return 0;
fail:
	json_decref(hops);
	json_decref(rcpts);
	json_decref(o);
	return -1;
}

/* walk_free - everything the walk holds */
static void
walk_free(struct walk *w)
{
	size_t	i;

	for (i = 0; i < w->nhops; i++) {
		free(w->hops[i].host);
		free(w->hops[i].server);
		free(w->hops[i].error);
	}
	free(w->hops);
	for (i = 0; i < w->nreports; i++)
		trk_report_free(&w->reports[i]);
	free(w->reports);
	for (i = 0; i < w->npend; i++)
		free(w->pend[i].host);
	free(w->pend);
	strv_free(w->asked, w->nasked);
	for (i = 0; i < w->nout; i++)
		free(w->out[i].addr);
	free(w->out);
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
	/* asked as this host's name: the name its certificate has */
	if (cfg->hostname != NULL && host_ok(cfg->hostname))
		add_pend(w, cfg->hostname, 0, &ss, cfg->mtqp[0].len, 1);
	else {
		if (sockaddr_text((struct sockaddr *)&ss, text,
		    sizeof(text)) == -1)
			return -1;
		add_pend(w, text, 0, &ss, cfg->mtqp[0].len, 1);
	}
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
		add_pend(&w, host, port, NULL, 0, 1);
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
	if ((w.base = event_base_new()) == NULL) {
		terr("cannot create the event loop");
		rc = EX_WM_FAIL;
		goto out;
	}
	if ((w.cl = trk_client_new(w.base, &co, err, sizeof(err))) == NULL) {
		terr("%s", err);
		rc = o->ca != NULL && strncmp(err, "CA file", 7) == 0 ?
		    EX_WM_USAGE : EX_WM_FAIL;
		goto out;
	}
	walk_next(&w);
	(void)event_base_dispatch(w.base);
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

		failed_hop_text(&w.hops[0], f, sizeof(f));
		if (w.hops[0].server != NULL && w.hops[0].result != TRK_NOT_MTQP)
			terr("%s; server %s", f, w.hops[0].server);
		else
			terr("%s", f);
	}
	if (o->json) {
		if (print_json(&w) == -1) {
			terr("cannot write the JSON object");
			if (rc == EX_WM_OK)
				rc = EX_WM_FAIL;
		}
	} else if (rc == EX_WM_OK)
		print_text(&w);
	if (fflush(stdout) == EOF || ferror(stdout)) {
		terr("write error: %s", strerror(errno));
		if (rc == EX_WM_OK)
			rc = EX_WM_FAIL;
	}
out:
	explicit_bzero(secret, sizeof(secret));
	if (w.cl != NULL)
		trk_client_free(w.cl);
	if (w.base != NULL)
		event_base_free(w.base);
	walk_free(&w);
	return rc;
}
