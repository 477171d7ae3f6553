/*
 * tools_track.h - private to `waymark track`: the walk's state, shared
 * by tools_track.c (options, keys, the walk, exit codes) and
 * tools_track_out.c (the timeline and the --json object).
 */
#ifndef WAYMARK_TOOLS_TRACK_H
#define WAYMARK_TOOLS_TRACK_H

#include <stddef.h>
#include <sys/socket.h>

#include "track/trk_client.h"

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
};

#define TRACK_HOP_MS	TRK_QUERY_TIMEOUT_MS	/* 3 min per host asked */

/* track_walk_add - the first host to ask (port 0: SRV, else 1038; sa
 * set: connect there); 0 or -1 (ENOMEM) */
int		 track_walk_add(struct walk *w, const char *host, unsigned port,
		    const struct sockaddr *sa, socklen_t salen);
/*
 * track_walk - ask the queued host, then the next hops of its
 * transferred recipients (each host once, at most TRK_MAX_HOPS deep and
 * TRK_MAX_HOSTS hosts), one query at a time, each within w->hop_ms, on
 * a loop of its own; 0, or -1 with a reason in err (no loop, a bad
 * `dns` server or CA file).
 */
int		 track_walk(struct walk *w, const struct trk_client_opts *co,
		    char *err, size_t errlen);
/* track_walk_free - everything the walk holds */
void		 track_walk_free(struct walk *w);
/* track_not_asked - host is one of the hosts not asked (the cap) */
int		 track_not_asked(const struct walk *w, const char *host);

/* track_rcpt_key - the address recipients are matched by across hops */
const char	*track_rcpt_key(const struct trk_rcpt *r);
/* track_failed_hop_text - "HOST does not speak MTQP" and the like */
void		 track_failed_hop_text(const struct hop *h, char *out,
		    size_t outlen);
/* track_print_text - the timeline on stdout */
void		 track_print_text(const struct walk *w);
/* track_print_json - the one object (README) on stdout; 0 or -1 */
int		 track_print_json(const struct walk *w);

#endif
