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

/* tools_print_queue - mailq-like listing of an array of message objects */
void	tools_print_queue(FILE *fp, json_t *msgs);
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

#endif
