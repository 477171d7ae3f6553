/*
 * track.h - message tracking (RFC 3885 MTRK, RFC 3886, RFC 3887 MTQP):
 * the public header of track/.  So far: the message/tracking-status
 * composer (trk_status.c), a pure function from a message's records
 * (queue/queue.h's struct qmsg, as read from the store) to text.
 * track/ reads the store only through queue/'s API; it never includes
 * db.h.  Every function here runs in the event-loop thread.
 */
#ifndef WAYMARK_TRACK_H
#define WAYMARK_TRACK_H

#include <stddef.h>
#include <time.h>

#include "../common/buf.h"
#include "../queue/queue.h"

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

#endif
