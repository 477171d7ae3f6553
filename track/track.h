/*
 * track.h - message tracking (RFC 3885 MTRK, RFC 3886, RFC 3887 MTQP):
 * the public header of track/: the message/tracking-status composer
 * (trk_status.c), a pure function from a message's records
 * (queue/queue.h's struct qmsg, as read from the store) to text; MTRK
 * authentication and its per-address failure limit (trk_auth.c); the
 * MTQP server (trk_server.c, trk_cmd.c, trk_answer.c).
 * track/ reads the store only through queue/'s API; it never includes
 * db.h.  Every function here runs in the event-loop thread.
 */
#ifndef WAYMARK_TRACK_H
#define WAYMARK_TRACK_H

#include <stddef.h>
#include <time.h>
#include <sys/socket.h>

#include "../common/buf.h"
#include "../queue/queue.h"

struct config;
struct event_base;

/*
 * trk_action - the RFC 3886 Action of recipient i of m ("delayed",
 * "delivered", "failed", "expanded", "transferred", "relayed"), as the
 * mapping in trk_status.c's header comment says; NULL when i is out of
 * range.
 */
const char	*trk_action(const struct qmsg *m, size_t i);

/*
 * trk_status_write - append to b the body of one message/tracking-status
 * part (RFC 3886 3: the per-message fields, then a blank line and one
 * group per recipient; CRLF line ends, no trailing blank line) for m,
 * reported by hostname ("localhost" when NULL or empty) at time now;
 * queue_lifetime (seconds) gives Will-Retry-Until.  0, or -1 when b's
 * maximum is reached, on ENOMEM or bad arguments; on -1 b is left as it
 * was on entry.
 */
int		 trk_status_write(struct buf *b, const struct qmsg *m,
		    const char *hostname, time_t now, long queue_lifetime);

/* ---- MTRK authentication (trk_auth.c) ---- */

/*
 * trk_auth_find - RFC 3887 4, RFC 3888 4: the message stored with ENVID
 * envid (xtext-decoded) whose MTRK certifier equals base64(SHA-1(a)),
 * compared in constant time with every candidate's (queue_track_find:
 * duplicates allowed); a record without a certifier, or expired
 * (mtrk_expiry <= now once the message has left the queue: RFC 3885 3.3
 * keeps it while queued), never matches.  The SHA-1 and a compare run
 * whatever the candidates (none, or envid NULL: no look-up at all), so
 * the outcome does not tell an unknown ENVID from a wrong secret.
 * found(m, arg) is called once, with the first match (m read-only,
 * valid during the call only).  1 found, 0 no match, -1 when the store
 * could not be read.
 */
int		 trk_auth_find(const char *envid, const unsigned char *a,
		    size_t alen, time_t now,
		    void (*found)(const struct qmsg *m, void *arg), void *arg);
/*
 * mtqp_auth_failures (N per DURATION, fixed window, common/failtab.c;
 * no exceptions): trk_auth_limited - sa's address has N failures in its
 * window; trk_auth_failed - count one more, returns the address's count.
 * Shared by every way of guessing a secret (MTQP, later the web view).
 */
int		 trk_auth_limited(const struct config *cfg,
		    const struct sockaddr *sa, time_t now);
unsigned	 trk_auth_failed(const struct config *cfg,
		    const struct sockaddr *sa, time_t now);

/* ---- MTQP server (trk_server.c, trk_cmd.c, trk_answer.c) ---- */

/*
 * trk_server_bind - socket/bind/listen every cfg->mtqp address (backlog
 * SOMAXCONN, SO_REUSEADDR, IPV6_V6ONLY).  Before the privilege drop.
 * 0, or -1 with err set.
 */
int		 trk_server_bind(const struct config *cfg, char *err,
		    size_t errlen);
/*
 * trk_server_start - the TLS context (tls_cert/tls_key, for STARTTLS),
 * listeners on base.  After the drop and queue_init.  -1 with err set.
 */
int		 trk_server_start(const struct config *cfg,
		    struct event_base *base, char *err, size_t errlen);
/* trk_server_reload - the new configuration for new commands and
 * sessions (limits, TLS files); mtqp address changes need a restart */
void		 trk_server_reload(const struct config *cfg);
/* trk_server_stop - stop accepting and close every MTQP session now
 * (SIGTERM); answers in the making are dropped */
void		 trk_server_stop(void);
/* trk_server_sessions - MTQP sessions open */
size_t		 trk_server_sessions(void);

#endif
