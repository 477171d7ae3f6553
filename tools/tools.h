/*
 * tools.h - private interfaces between the files of tools/ (the `waymark`
 * command).  waymark.c owns options, the control-socket client and exit
 * codes; tools_print.c owns the human-readable views of the JSON the
 * daemon sends (DESIGN.md "Machine-readable output").
 */
#ifndef WAYMARK_TOOLS_H
#define WAYMARK_TOOLS_H

#include <stdio.h>
#include <jansson.h>

/* exit codes (DESIGN.md) */
#define EX_WM_OK	0
#define EX_WM_FAIL	1	/* unknown QID, not allowed, daemon unreachable */
#define EX_WM_USAGE	2
/* `waymark track` only (README): 1 is "the first server unreachable" */
#define EX_WM_TRK_NOKEY		3	/* no key for that ENVID */
#define EX_WM_TRK_NOINFO	4	/* -ERR/noinfo at the first server */
#define EX_WM_TRK_PROTO		5	/* not MTQP, TLS failed, protocol error */

/* tools_print_queue - mailq-like listing of an array of message objects */
void	tools_print_queue(FILE *fp, json_t *msgs);
/* the same page by page: messages (counted in *n, sizes summed in
 * *total), then the summary line */
void	tools_print_queue_page(FILE *fp, json_t *msgs, size_t *n,
	    double *total);
void	tools_print_queue_end(FILE *fp, size_t n, double total);
/* tools_print_show - one message object with its "events" */
void	tools_print_show(FILE *fp, json_t *msg);

/* ---- tools_sendmail.c: `waymark sendmail` ---- */
struct config;

struct sendmail_opts {
	const char	*from;		/* -f (or -r): envelope sender */
	const char	*fullname;	/* -F: display name of an added From: */
	char		 notify[32];	/* -N, canonical ("NEVER", "SUCCESS,DELAY"); "" = none */
	const char	*ret;		/* -R: "FULL" / "HDRS" */
	const char	*envid;		/* -V */
	const char	*conf;		/* -C FILE (only when run as `sendmail`) */
	int		 extract;	/* -t */
	int		 ignore_dots;	/* -i / -oi */
	int		 track;		/* --track */
	int		 mailq;		/* -bp */
	char		**rcpts;	/* the operands (point into argv) */
	int		 nrcpts;
};

struct sendmail_rcpts {			/* a de-duplicated address list */
	char	**v;
	size_t	  n, cap;
};

/* sendmail_parse - options after "sendmail" into *o (zeroed by the caller); 0 or EX_WM_USAGE */
int	sendmail_parse(int argc, char **argv, int as_sendmail, struct sendmail_opts *o);
/* sendmail_run - read stdin, submit by SMTP; EX_WM_OK / EX_WM_FAIL / EX_WM_USAGE */
int	sendmail_run(const struct config *cfg, const struct sendmail_opts *o);
void	sendmail_usage(FILE *fp, int as_sendmail);
/* sendmail_certifier - base64(SHA-1(a)) without padding (RFC 3885); its length (27) or -1 */
int	sendmail_certifier(const unsigned char *a, size_t alen, char *out, size_t outlen);
/* sendmail_notify_canon - "never" | "success,failure,delay" subsets -> upper case; 0 or -1 */
int	sendmail_notify_canon(const char *in, char *out, size_t outlen);
/* sendmail_header_addrs - the addr-specs of an RFC 5322 address-list (groups, comments, <>) */
int	sendmail_header_addrs(const char *s, size_t len, struct sendmail_rcpts *r);
int	sendmail_rcpts_add(struct sendmail_rcpts *r, const char *addr, size_t len);
void	sendmail_rcpts_free(struct sendmail_rcpts *r);

/* ---- tools_track.c: `waymark track` ---- */
struct track_opts {
	const char	*envid;
	const char	*secret;	/* --secret: base64 of A */
	const char	*server;	/* --server HOST[:PORT] */
	const char	*ca;		/* --ca FILE */
	int		 json;		/* --json */
	int		 no_verify;	/* --tls-verify=none */
};

/* ---- tools_dkim.c: `waymark dkim-keygen` ---- */
struct keygen_opts {
	const char	*domain;
	const char	*selector;
	const char	*alg;		/* rsa-sha256 | ed25519-sha256 */
	const char	*out;		/* --out FILE, NULL = SELECTOR.DOMAIN.key */
	int		 bits;		/* --bits (RSA), default 2048 */
};

/* keygen_parse - the arguments after "dkim-keygen"; 0 or EX_WM_USAGE */
int	keygen_parse(int argc, char **argv, struct keygen_opts *o);
/* keygen_run - write the key, print path and DNS record; EX_WM_* */
int	keygen_run(const struct keygen_opts *o);

/* track_parse - options after "track" into *o (zeroed by the caller); 0 or EX_WM_USAGE */
int	track_parse(int argc, char **argv, struct track_opts *o);
/* track_run - follow the message; the exit codes of the README */
int	track_run(const struct config *cfg, const struct track_opts *o);
/* track_key_find - the LAST valid "ENVID SP base64(A)" line for envid in f; 1 found, 0 not */
int	track_key_find(FILE *f, const char *envid, char *out, size_t outlen);
/* track_parse_server - "HOST", "HOST:PORT", "[ADDR]", "[ADDR]:PORT" (port 1038 by default); 0 or -1 */
int	track_parse_server(const char *s, char *host, size_t hostlen, unsigned *port);

#endif
