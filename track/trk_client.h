/*
 * trk_client.h - the MTQP client (RFC 3887) and the parsers of what it
 * receives (RFC 3886 message/tracking-status parts inside the
 * multipart/related answer to TRACK): track/trk_client.c (network, on a
 * caller's libevent loop) and track/trk_parse.c (pure functions).
 * Users: `waymark track` (tools/tools_track.c) and waymarkd's chaining
 * (mtqp_chaining = yes).  Everything runs in the loop's thread; nothing
 * blocks, nothing exits, no state is global: a struct trk_client holds
 * the resolver and the TLS context, and any number of queries run on it
 * at once, each with its own deadline.
 */
#ifndef WAYMARK_TRK_CLIENT_H
#define WAYMARK_TRK_CLIENT_H

#include <stddef.h>
#include <time.h>
#include <sys/socket.h>

struct event_base;

#define TRK_MTQP_PORT		1038	/* RFC 3887 2.1 */
#define TRK_MAX_HOPS		10	/* hops followed (contract) */
#define TRK_CONNECT_TIMEOUT	30	/* seconds, per address */
#define TRK_RESPONSE_TIMEOUT	120	/* seconds: at least 2 min (RFC 3887 2.4) */
#define TRK_QUERY_TIMEOUT_MS	(180L * 1000)	/* a whole query unless the
					 * request says less: a server that
					 * sends a line now and then cannot
					 * hold it longer */
#define TRK_MAX_HOSTS		64	/* hosts asked for one message: the
					 * next hops of a chaining answer,
					 * the hosts `waymark track` asks */
#define TRK_LINE_MAX		1000	/* a response line with CRLF (998 + 2) */
#define TRK_ANSWER_MAX		(1024u * 1024)	/* one TRACK answer's body */

/* the result of one query: the contract's hop results */
enum trk_result {
	TRK_OK,			/* "ok": the body of a +OK+ answer to TRACK */
	TRK_NOINFO,		/* "noinfo": -ERR/noinfo */
	TRK_UNREACHABLE,	/* "unreachable": DNS, refused, connect timeout */
	TRK_NOT_MTQP,		/* "not_mtqp": the greeting is not MTQP's */
	TRK_TLS_FAILED,		/* "tls_failed": STARTTLS refused or handshake failed */
	TRK_ERROR		/* "error": anything else (-TEMP, -BAD, timeout...) */
};

/* trk_result_name - "ok", "noinfo", "unreachable", "not_mtqp",
 * "tls_failed", "error" */
const char	*trk_result_name(enum trk_result r);

/* ---------------------------------------------------------------- client */

struct trk_client_opts {
	char *const	*dns;		/* "ADDR[:PORT]" / "[v6]:PORT" (cfg `dns`); */
	size_t		 ndns;		/*   none: the system resolver */
	int		 hosts_file;	/* 1: /etc/hosts before DNS (the CLI) */
	const char	*ca_file;	/* CA file or folder; NULL: system CAs */
	int		 tls_verify;	/* 1: chain + the name asked; 0: none */
	int		 connect_timeout;	/* s per address; 0 = TRK_CONNECT_TIMEOUT */
	int		 response_timeout;	/* s per response; 0 = TRK_RESPONSE_TIMEOUT */
};

struct trk_client;

/*
 * trk_client_new - a resolver (c-ares on base) and a TLS client context;
 * NULL with a reason in err (bad `dns` server, unreadable CA file).
 * trk_client_free - cancels every query in flight (no callbacks) and
 * closes every connection; never from inside a trk_answer_fn.
 */
struct trk_client *trk_client_new(struct event_base *base,
		    const struct trk_client_opts *o, char *err, size_t errlen);
void		 trk_client_free(struct trk_client *c);

struct trk_request {
	const char	*host;		/* the name asked: Remote-MTA host, a
					 * name, an IP literal ("[..]" ok);
					 * STARTTLS parameter, TLS name */
	unsigned	 port;		/* 0: SRV _mtqp._tcp.HOST (RFC 2782
					 * order), else A/AAAA of HOST on 1038;
					 * else A/AAAA of HOST on this port */
	const struct sockaddr *addr;	/* set: connect here, no DNS (host is */
	socklen_t	 addrlen;	/*   then only the name asked) */
	const char	*envid;		/* decoded ENVID (sent as xtext) */
	const char	*secret;	/* base64 of the secret A */
	long		 timeout_ms;	/* whole query (DNS, connect, every
					 * response), 0: TRK_QUERY_TIMEOUT_MS;
					 * each step also has its own */
};

struct trk_answer {
	enum trk_result	 result;
	const char	*host;		/* the name asked */
	const char	*server;	/* "ADDR:PORT" / "[v6]:PORT" connected, or "" */
	int		 tls;		/* TRACK went over TLS */
	const char	*error;		/* why, "" when ok; a server's text
					 * quoted in it has its controls and
					 * broken UTF-8 as '?' */
	const char	*body;		/* TRK_OK: the answer, dot-unstuffed, */
	size_t		 bodylen;	/*   CRLF line ends; else NULL, 0 */
};

/*
 * The answer of a query: called exactly once, from the loop (never inside
 * trk_query_start), unless the query was cancelled.  Every pointer in a
 * is valid during the call only; the query handle is invalid from the
 * call on.  The callback may start or cancel other queries.
 */
typedef void	(*trk_answer_fn)(void *arg, const struct trk_answer *a);

struct trk_query;

/*
 * trk_query_start - resolve, connect (connect_timeout per address, next
 * address or SRV target on failure), read the greeting (+OK/MTQP or
 * +OK+/MTQP with its options), STARTTLS when offered (then the fresh
 * greeting), TRACK, read the answer (response_timeout each), QUIT.
 * TRACK is never sent in clear to a server that offered STARTTLS: when
 * its STARTTLS fails the result is TRK_TLS_FAILED.  The request is
 * copied.  NULL on bad arguments or ENOMEM (nothing will be called).
 * trk_query_cancel - no callback; everything freed (the c-ares queries
 * in flight finish first); q must not have called back yet.
 */
struct trk_query *trk_query_start(struct trk_client *c,
		    const struct trk_request *rq, trk_answer_fn cb, void *arg);
void		 trk_query_cancel(struct trk_query *q);

/* ---------------------------------------------------------------- parsers */

/* MTQP response indicators (RFC 3887 2.3), parsed longest first */
enum trk_reply_kind {
	TRK_R_OKPLUS,		/* +OK+ */
	TRK_R_OK,		/* +OK */
	TRK_R_TEMP,		/* -TEMP */
	TRK_R_ERR,		/* -ERR */
	TRK_R_BAD		/* -BAD */
};

/*
 * trk_reply_parse - the indicator of a response line (no CRLF) and its
 * response information ("/MTQP/admin" without the first '/'; empty when
 * none) in *info, *infolen; -1 when the line is no MTQP response.
 * trk_reply_has - 1 when item (e.g. "MTQP", "noinfo") is one of the
 * '/'-separated items of info, case-insensitively.
 */
int		 trk_reply_parse(const char *line, size_t len,
		    enum trk_reply_kind *kind, const char **info,
		    size_t *infolen);
int		 trk_reply_has(const char *info, size_t infolen,
		    const char *item);
/*
 * trk_option_starttls - an option line of a +OK+ greeting: 0 not
 * STARTTLS (or a continuation line), 1 "STARTTLS", 2 "STARTTLS required"
 * (case-insensitive, RFC 3887 3, 6).
 */
int		 trk_option_starttls(const char *line, size_t len);

struct trk_handling {			/* X-Waymark-Handling-State */
	char	*state;			/* keyword (RFC 6729) */
	char	*value;			/* after '/', or NULL */
	time_t	 since;
	int	 has_since;
	char	*reason;		/* "" when none */
};

struct trk_rcpt {			/* one per-recipient group */
	char	*orcpt;			/* Original-Recipient, address only
					 * ("rfc822;" removed), or NULL */
	char	*final;			/* Final-Recipient, address only, or NULL */
	char	*action;		/* lower case, or NULL */
	char	*status;		/* "x.y.z", or NULL */
	char	*status_comment;	/* the comment after the code, without
					 * its parentheses, or NULL */
	char	*remote_mta;		/* Remote-MTA host ("dns;" removed), or NULL */
	time_t	 last_attempt;		/* Last-Attempt-Date, when has_ */
	int	 has_last_attempt;
	time_t	 retry_until;		/* Will-Retry-Until, when has_ */
	int	 has_retry_until;
	char	*diagnostic;		/* Diagnostic-Code as written, or NULL */
	struct trk_handling *handling;	/* or NULL */
};

struct trk_part {			/* one message/tracking-status part */
	char	*raw;			/* the whole body part as received:  */
	size_t	 rawlen;		/*   its MIME header, empty line, content;
					 * ends before the CRLF of the next
					 * delimiter.  A chaining server
					 * appends "--B" CRLF raw CRLF. */
	char	*envid;			/* Original-Envelope-Id, or NULL */
	char	*reporting_mta;		/* host ("dns;" removed), or NULL */
	time_t	 arrival;		/* Arrival-Date, when has_ */
	int	 has_arrival;
	struct trk_rcpt	*rcpts;
	size_t	 nrcpts;
};

struct trk_report {
	struct trk_part	*parts;
	size_t		 nparts;
};

/*
 * trk_report_parse - a TRACK answer body: MIME header with Content-Type
 * multipart/related (boundary; type "message/tracking-status" or RFC
 * 3887's "tracking-status"), then its body parts; each
 * message/tracking-status part is kept (others are skipped).  Field
 * names case-insensitive, folded lines, any field order, unknown fields
 * ignored.  0, or -1 with a reason in why (no part, no boundary, ENOMEM).
 * *r is zeroed first; trk_report_free it in both cases.
 */
int		 trk_report_parse(const char *body, size_t len,
		    struct trk_report *r, char *why, size_t whylen);
/*
 * trk_status_parse - the content of one message/tracking-status part
 * (per-message fields, then per-recipient groups after blank lines) into
 * p's fields (p->raw untouched); 0 or -1 (ENOMEM, no per-message field).
 */
int		 trk_status_parse(const char *s, size_t len, struct trk_part *p,
		    char *why, size_t whylen);
/* trk_handling_parse - "KW[/VALUE]; since=DATE[; reason=TEXT]" into *h
 * (zeroed first); 0 or -1 */
int		 trk_handling_parse(const char *s, size_t len,
		    struct trk_handling *h);
void		 trk_handling_free(struct trk_handling *h);
void		 trk_part_free(struct trk_part *p);
void		 trk_report_free(struct trk_report *r);

#endif
