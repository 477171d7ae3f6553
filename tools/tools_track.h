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
	struct outcome		*out;
	size_t			 nout;
	int			 cur_depth;	/* of the query in flight */
	int			 oom;
};

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
