/*
 * trk_walk.h - following a tracked message hop by hop with the MTQP
 * client (track/trk_client.h), shared by `waymark track` (tools/, on a
 * loop of its own) and waymarkd's web view (web/web_track.c, on the
 * daemon's loop): the walk's state, the timeline texts and the one
 * `waymark track --json` object (README), all in track/trk_walk.c.
 * One query at a time; each host asked once, recipients matched across
 * hops by Original-Recipient, `transferred` recipients followed to
 * their Remote-MTA, at most TRK_MAX_HOPS deep and TRK_MAX_HOSTS hosts.
 * Everything runs in the loop's thread.
 */
#ifndef WAYMARK_TRK_WALK_H
#define WAYMARK_TRK_WALK_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "track/trk_client.h"

typedef struct json_t json_t;

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
	char			**not_asked;	/* transferred to, past */
	size_t			 nnot_asked;	/*   TRK_MAX_HOSTS asked */
	long			 hop_ms;	/* each query's deadline */
	struct outcome		*out;
	size_t			 nout;
	int			 cur_depth;	/* of the query in flight */
	int			 oom;
	int			 utc;		/* texts: dates in UTC */
	uint64_t		 deadline_ms;	/* CLOCK_MONOTONIC ms the whole
						 * walk ends by; 0: none */
	struct trk_query	*q;		/* the query in flight */
	void			(*done)(void *arg);	/* track_walk_start */
	void			*done_arg;
};

#define TRACK_HOP_MS	TRK_QUERY_TIMEOUT_MS	/* 3 min per host asked */

/* track_walk_add - the first host to ask (port 0: SRV, else 1038; sa
 * set: connect there); 0 or -1 (ENOMEM) */
int		 track_walk_add(struct walk *w, const char *host, unsigned port,
		    const struct sockaddr *sa, socklen_t salen);
/*
 * track_walk_local - the first hop's answer, obtained without MTQP (the
 * daemon's own store: a->body is a TRACK answer body); host a->host is
 * then not asked again.  The next hops are queued, not asked.
 */
void		 track_walk_local(struct walk *w, const struct trk_answer *a);
/*
 * track_walk - ask the queued hosts (and the next hops they name), one
 * query at a time, each within w->hop_ms, on a loop of its own; 0, or
 * -1 with a reason in err (no loop, a bad `dns` server or CA file).
 */
int		 track_walk(struct walk *w, const struct trk_client_opts *co,
		    char *err, size_t errlen);
/*
 * track_walk_start - the same on cl's loop, without blocking: done(arg)
 * is called once, from the loop or before track_walk_start returns,
 * when nothing is left to ask (or w->deadline_ms has passed: the hosts
 * left are shown with result "error").  track_walk_cancel - stop it
 * (done is not called); then track_walk_free.
 */
void		 track_walk_start(struct walk *w, struct trk_client *cl,
		    void (*done)(void *arg), void *arg);
void		 track_walk_cancel(struct walk *w);
/* track_walk_free - everything the walk holds */
void		 track_walk_free(struct walk *w);
/* track_not_asked - host is one of the hosts not asked (the cap) */
int		 track_not_asked(const struct walk *w, const char *host);

/* ---- what is shown (the timeline's texts, the JSON object) ---- */

/* track_rcpt_key - the address recipients are matched by across hops */
const char	*track_rcpt_key(const struct trk_rcpt *r);
/* track_hop_name - the host a hop entry names (its Reporting-MTA) */
const char	*track_hop_name(const struct hop *h);
/* track_fmt_date - RFC 5322 text of t (in UTC when utc) */
const char	*track_fmt_date(time_t t, int utc, char *out, size_t outlen);
/* track_failed_hop_text - "HOST does not speak MTQP" and the like */
void		 track_failed_hop_text(const struct hop *h, char *out,
		    size_t outlen);
/* track_rcpt_detail - the text after a recipient's status in its hop */
void		 track_rcpt_detail(const struct trk_rcpt *r, int utc,
		    char *out, size_t outlen);
/* track_outcome_text - the final word on recipient oc */
void		 track_outcome_text(const struct walk *w,
		    const struct outcome *oc, char *out, size_t outlen);
/* track_walk_json - the one object of `waymark track --json` (README);
 * NULL on ENOMEM */
json_t		*track_walk_json(const struct walk *w);

#endif
