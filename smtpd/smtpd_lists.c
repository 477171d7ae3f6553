#include "config.h"
/*
 * smtpd_lists.c - RCPT to a mailing list of the lists file (common/lists.c).
 * Entry points: smtpd_lists_rcpt (cmd_rcpt, before aliases: a list
 *       address is never taken for an alias), smtpd_lists_known
 *       (cmd_rcpt's local-recipient check: lists and their -owner
 *       addresses need no local_recipients entry).
 * Does: a post the sender may make (member, moderator, open list) is
 *       stored as an ordinary recipient; the queue expands it to the
 *       members when it is due (queue_lists.c).  A post from a
 *       non-member to a moderated list puts the message in state
 *       moderation at reception (contract of issue 9: m->state,
 *       state_value "not-member", state_reason, state_actor
 *       "lists FILE:LINE", set before the end of DATA writes the hop's
 *       Received field); it replaces a FUTURERELEASE hold, which would
 *       otherwise release the post without a moderator.
 * One post per moderation: a message in moderation is about that one
 *       list, so the approval or the rejection concerns nobody else: a
 *       moderated post must be the transaction's only recipient, other
 *       recipients get 452 4.5.3 and the client sends them in another
 *       transaction (RFC 5321 4.5.3.1.10).
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/cfg.h"
#include "common/lists.h"
#include "common/syntax.h"
#include "queue/queue.h"
#include "smtpd/smtpd_session.h"

#define LISTS_ACTOR	"lists "

/* held_post - the transaction holds a post that waits for a moderator */
static int
held_post(const struct qmsg *m)
{
	return m->state == MS_MODERATION && m->state_actor != NULL &&
	    strncmp(m->state_actor, LISTS_ACTOR, strlen(LISTS_ACTOR)) == 0;
}

/* store - addr as an ordinary recipient with its RFC 3461 values; 0 or -1 */
static int
store(struct qmsg *m, const char *addr, const struct esmtp_params *ep)
{
	struct qrcpt	*qr;
	size_t		 i;

	for (i = 0; i < m->nrcpts; i++)
		if (strcasecmp(m->rcpts[i].addr, addr) == 0)
			return 0;	/* stored once, with the first values */
	if (qmsg_add_rcpt(m, addr) == -1)
		return -1;
	qr = &m->rcpts[m->nrcpts - 1];
	qr->notify = ep->notify;
	if (ep->has_orcpt && (qr->orcpt = strdup(ep->orcpt)) == NULL) {
		free(qr->addr);
		m->nrcpts--;
		return -1;
	}
	return 0;
}

/* moderate - m waits for a moderator of e from reception; 0 or -1 */
static int
moderate(struct qmsg *m, const struct list_entry *e)
{
	char	*value = NULL, *reason = NULL, *actor = NULL;

	if ((value = strdup("not-member")) == NULL ||
	    asprintf(&reason, "sender is not a member of <%s>", e->addr) < 0 ||
	    asprintf(&actor, LISTS_ACTOR "%s:%u",
	    smtpd_cfg->list_table->path, e->lineno) < 0) {
		free(value);
		free(reason);
		return -1;
	}
	free(m->state_value);
	free(m->state_reason);
	free(m->state_actor);
	m->state_value = value;
	m->state_reason = reason;
	m->state_actor = actor;
	m->state = MS_MODERATION;
	m->hold_until = 0;		/* no FUTURERELEASE past the moderator */
	return 0;
}

int
smtpd_lists_known(const char *local, const char *domain)
{
	char	addr[SMTP_LOCAL_MAX + SMTP_DOMAIN_MAX + 8];
	int	n;

	if (smtpd_cfg->list_table == NULL)
		return 0;
	n = snprintf(addr, sizeof(addr), "%s@%s", local, domain);
	if (n < 0 || (size_t)n >= sizeof(addr))
		return 0;
	return lists_lookup(smtpd_cfg->list_table, addr) != NULL ||
	    lists_is_owner(smtpd_cfg->list_table, addr);
}

/*
 * smtpd_lists_rcpt - addr (checked by cmd_rcpt) when the transaction
 * holds a moderated post or addr is a list: 1 = stored and 250 sent,
 * -1 = error reply sent, 0 = not a list (cmd_rcpt goes on).
 */
int
smtpd_lists_rcpt(struct smtpd_session *s, const char *addr,
    const struct esmtp_params *ep)
{
	struct smtpd_txn	*t = s->txn;
	struct qmsg		*m = t->m;
	const struct list_entry	*e = NULL;
	const char		*at = strrchr(addr, '@');
	char			 from[300];

	if (held_post(m)) {
		if (m->nrcpts > 0 && strcasecmp(m->rcpts[0].addr, addr) == 0)
			goto ok;	/* the same list again */
		smtpd_reply(s, 452, 4, 5, 3, "Too many recipients: this "
		    "message waits for a list moderator; send it to <%s> in "
		    "another transaction", addr);
		return -1;
	}
	if (smtpd_cfg->list_table != NULL && at != NULL &&
	    cfg_is_local_domain(smtpd_cfg, at + 1))
		e = lists_lookup(smtpd_cfg->list_table, addr);
	if (e == NULL)
		return 0;
	if (!lists_may_post(e, m->sender)) {
		if (t->naccepted > 0) {
			smtpd_reply(s, 452, 4, 5, 3, "Too many recipients: a "
			    "post to <%s> from a non-member waits for a "
			    "moderator; send it in a transaction of its own",
			    e->addr);
			return -1;
		}
		if (store(m, addr, ep) == -1)
			goto nomem;
		if (moderate(m, e) == -1) {
			m->nrcpts--;
			free(m->rcpts[m->nrcpts].addr);
			free(m->rcpts[m->nrcpts].orcpt);
			goto nomem;
		}
		log_escape(from, sizeof(from), m->sender, strlen(m->sender));
		log_info("session=%s list=<%s> sender=<%s> not a member: held "
		    "for moderation", s->sid, e->addr, from);
	} else if (store(m, addr, ep) == -1)
		goto nomem;
ok:
	t->naccepted++;
	smtpd_set_state(s, SMTPD_RCPT);
	smtpd_reply(s, 250, 2, 1, 5, "Ok");
	return 1;
nomem:
	smtpd_reply(s, 452, 4, 3, 1, "Insufficient system storage");
	return -1;
}
