/*
 * trk_cint.h - private to track/'s MTQP client: the client and query
 * structures and the calls between trk_client.c (connection, TLS,
 * dialogue, the query's life) and trk_dns.c (c-ares on the loop, SRV
 * order, addresses).  Nothing outside track/ includes it.
 */
#ifndef WAYMARK_TRK_CINT_H
#define WAYMARK_TRK_CINT_H

#include <sys/types.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <ares.h>
#include <openssl/ssl.h>

#include <event2/bufferevent.h>
#include <event2/event.h>

#include "common/buf.h"
#include "common/dnsloop.h"
#include "common/log.h"
#include "track/trk_client.h"

#define MAX_TARGETS	16		/* SRV records used */
#define MAX_ADDRS	16		/* addresses per target */
#define QUIT_LINGER	5		/* s to wait for the QUIT reply */
#define HOST_MAX	256
#define SECRET_MAX	512		/* base64 of A */

struct trk_client {
	struct event_base	*base;
	struct dnsloop		 dns;		/* c-ares on base */
	int			 nlookups;	/* c-ares queries in flight */
	SSL_CTX			*ssl;
	int			 verify;
	int			 connect_to, response_to;
	struct trk_query	*queries;
};

enum qstate {
	Q_SRV,		/* waiting for the SRV answer */
	Q_ADDR,		/* waiting for A/AAAA of a target */
	Q_CONNECT,	/* TCP connect in progress */
	Q_GREETING,	/* the greeting's first line */
	Q_OPTIONS,	/* the option lines of a +OK+ greeting */
	Q_STARTTLS,	/* the reply to STARTTLS */
	Q_TLS,		/* the handshake */
	Q_TRACK,	/* the reply to TRACK */
	Q_DATA,		/* the data lines of +OK+ */
	Q_QUIT,		/* answered; the reply to QUIT */
	Q_DONE		/* nothing in progress */
};

struct target {
	char		name[HOST_MAX];
	unsigned	port;
};

struct trk_query {
	struct trk_query	*next, **prevp;
	struct trk_client	*c;
	trk_answer_fn		 cb;
	void			*arg;
	enum qstate		 state;
	char			 host[HOST_MAX];	/* the name asked */
	char			 tlsname[HOST_MAX];	/* STARTTLS, TLS name */
	int			 literal;	/* tlsname is an address */
	unsigned		 port;		/* 0: SRV */
	char			*track;		/* "TRACK x s\r\n" */
	struct timeval		 deadline;
	int			 has_deadline;
	int			 pending;	/* c-ares callbacks to come */
	struct target		 targets[MAX_TARGETS];
	size_t			 ntargets, tcur;
	struct sockaddr_storage	 addrs[MAX_ADDRS];
	socklen_t		 alens[MAX_ADDRS];
	size_t			 naddrs, acur;
	struct bufferevent	*bev;
	struct event		*tmo;
	struct event		*done_ev;
	int			 tls;
	int			 starttls;	/* offered: 1, required: 2 */
	int			 answered;	/* result set */
	int			 dead;		/* delivered or cancelled */
	enum trk_result		 result;
	char			 server[80];
	char			 error[512];
	char			 lasterr[256];	/* last DNS/connect failure */
	struct buf		 body;
};

/* ---- trk_dns.c ---- */

/* trk_dns_init - the channel (servers from o->dns), its timer; 0 or -1 */
int	trk_dns_init(struct trk_client *c, const struct trk_client_opts *o,
	    char *err, size_t errlen);
/* trk_dns_shutdown - destroy the channel (callbacks see
 * ARES_EDESTRUCTION and touch nothing), its socket events and timer */
void	trk_dns_shutdown(struct trk_client *c);
/* trk_dns_srv - ask SRV qname for q; the targets follow (RFC 2782) */
void	trk_dns_srv(struct trk_query *q, const char *qname);
/* trk_dns_next_target - resolve targets[tcur] (a literal at once), then
 * trk_q_try_connect; TRK_UNREACHABLE when none is left */
void	trk_dns_next_target(struct trk_query *q);
/* trk_add_addr - an address with port into q's list */
void	trk_add_addr(struct trk_query *q, int family, const void *sa,
	    unsigned port);
/* trk_literal_addr - "1.2.3.4", "::1", "[1.2.3.4]", "[IPv6:::1]" into
 * the binary address; its family or 0; text gets the bare address */
int	trk_literal_addr(const char *h, unsigned char a[16], char *text,
	    size_t textlen);

/* ---- trk_client.c ---- */

/* trk_q_finish - the result is known: QUIT (quit) or close, then call
 * back from the loop */
void	trk_q_finish(struct trk_query *q, enum trk_result r, int quit,
	    const char *fmt, ...) WM_PRINTF(4, 5);
/* trk_q_try_connect - connect to addrs[acur], else the next target */
void	trk_q_try_connect(struct trk_query *q);
/* trk_q_maybe_free - free q once nothing refers to it any more */
void	trk_q_maybe_free(struct trk_query *q);
/* trk_q_arm - the step timer: secs (0: only the deadline) */
void	trk_q_arm(struct trk_query *q, int secs);

#endif
