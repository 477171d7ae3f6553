#include "config.h"
/*
 * smtpd_milter.c - the SMTP server's side of the milters (filter/milter.h):
 * when each stage is called and what the client is answered.
 * Stages: CONNECT before the greeting (smtpd_milter_connect); HELO,
 *       MAIL, RCPT and DATA from their handlers once the command has
 *       passed our own checks (smtpd_milter_gate: the handler returns
 *       "pending", and runs again with the milters passed when they
 *       continue); the message after the policy rules at the end of DATA
 *       (smtpd_milter_eom), before the trace field and the commit.
 * Input is held while a milter reply is awaited (s->milter_waiting: no
 *       command is read, no deadline runs; the milter timeouts bound the
 *       wait), as for a password check; pipelined commands wait.
 * Answers: a refusal at CONNECT or HELO (or the default action there)
 *       answers every later command but QUIT, RSET, NOOP and HELP; at
 *       MAIL it refuses the MAIL, at RCPT that recipient only, at DATA
 *       the DATA, at the end of DATA the message (nothing is kept).
 *       Discard: the client hears 250 and the message is not queued.
 *       Quarantine: state quarantine/milter, the milter's text as the
 *       reason ("milter NAME" as the actor).  421: answered, closed.
 * Macros: j, v, _, {daemon_name}, {daemon_addr}, {if_name}, {if_addr},
 *       {client_addr}, {client_port}, {client_name}, {client_ptr} at
 *       CONNECT; {tls_version}, {cipher} at HELO; {auth_authen},
 *       {mail_addr} at MAIL; {rcpt_addr}, {rcpt_host}, {rcpt_mailer}
 *       at RCPT; i (the queue id) at the end of DATA.
 */

#include <sys/types.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/bufferevent.h>

#include "common/cfg.h"
#include "common/log.h"
#include "common/util.h"
#include "filter/milter.h"
#include "queue/queue.h"
#include "smtpd/smtpd_session.h"

#define GATE_ARGS_MAX	32	/* path + ESMTP parameters sent */

/* set - one macro; failures only lose the macro */
static void
set(struct smtpd_session *s, const char *name, const char *value)
{
	if (milter_macro(s->milters, name, value) == -1)
		log_warnx("session=%s milter macro %s: out of memory", s->sid,
		    name);
}

/* refusal_keep - r answers every later command of the session */
static void
refusal_keep(struct smtpd_session *s, const struct milter_result *r)
{
	free(s->milter_refusal);
	s->milter_refusal = strdup(r->text);
	s->milter_rcode = r->code;
	s->milter_rcls = r->cls;
	s->milter_rsubj = r->subj;
	s->milter_rdet = r->det;
}

/* answer - the refusal r to the client (421 closes) */
static void
answer(struct smtpd_session *s, const struct milter_result *r)
{
	smtpd_reply(s, r->code, r->cls, r->subj, r->det, "%s", r->text);
}

/* connect_done - the milters have seen CONNECT: the greeting */
static void
connect_done(void *arg, const struct milter_result *r)
{
	struct smtpd_session *s = arg;

	s->milter_waiting = 0;
	if (s->state == SMTPD_CLOSING)
		return;
	s->cmd = "(connect)";
	s->cmdlen = strlen(s->cmd);
	if (r->verdict == MILTER_SHUTDOWN) {
		answer(s, r);
		return;
	}
	if (r->verdict == MILTER_REFUSE)
		refusal_keep(s, r);
	s->cmd = NULL;
	s->cmdlen = 0;
	smtpd_reply(s, 220, SMTPD_NOENH, "%s ESMTP Waymark",
	    smtpd_cfg->hostname);
	smtpd_resume(s);
}

/*
 * smtpd_milter_connect - open the session's milters and send CONNECT;
 * 1 when the greeting waits for them, 0 when there are none
 */
int
smtpd_milter_connect(struct smtpd_session *s)
{
	struct sockaddr_storage	 ss;
	socklen_t		 sl = sizeof(ss);
	char			 buf[600], port[16], local[64];
	int			 fam;

	if (smtpd_cfg->nmilters == 0)
		return 0;
	if ((s->milters = milter_open(smtpd_cfg, smtpd_base, s->sid)) == NULL) {
		log_warn("session=%s milters", s->sid);
		smtpd_reply(s, 421, 4, 3, 0, "%s Error: local error, try "
		    "again later", smtpd_cfg->hostname);
		return 1;
	}
	set(s, "j", smtpd_cfg->hostname);
	set(s, "{daemon_name}", smtpd_cfg->hostname);
	set(s, "{if_name}", smtpd_cfg->hostname);
	set(s, "v", "Waymark " PACKAGE_VERSION);
	if (getsockname(bufferevent_getfd(s->bev), (struct sockaddr *)&ss,
	    &sl) == 0 && sockaddr_text((struct sockaddr *)&ss, local,
	    sizeof(local)) == 0) {
		set(s, "{daemon_addr}", local);
		set(s, "{if_addr}", local);
	}
	set(s, "{client_addr}", s->addr);
	(void)snprintf(port, sizeof(port), "%u", s->port);
	set(s, "{client_port}", port);
	set(s, "{client_name}", "unknown");
	set(s, "{client_ptr}", "unknown");
	(void)snprintf(buf, sizeof(buf), "unknown [%s]", s->addr);
	set(s, "_", buf);
	(void)snprintf(buf, sizeof(buf), "[%s]", s->addr);
	fam = s->ss.ss_family == AF_INET ? '4' : s->ss.ss_family == AF_INET6 ?
	    '6' : 'U';
	if (milter_connect(s->milters, buf, fam, s->port, s->addr,
	    connect_done, s) == -1) {
		log_warn("session=%s milter connect", s->sid);
		smtpd_reply(s, 421, 4, 3, 0, "%s Error: local error, try "
		    "again later", smtpd_cfg->hostname);
		return 1;
	}
	s->milter_waiting = 1;
	return 1;
}

/* smtpd_milter_refused - a refusal at CONNECT/HELO answers verb: 1 */
int
smtpd_milter_refused(struct smtpd_session *s, const char *verb)
{
	if (s->milter_refusal == NULL || strcmp(verb, "QUIT") == 0 ||
	    strcmp(verb, "RSET") == 0 || strcmp(verb, "NOOP") == 0 ||
	    strcmp(verb, "HELP") == 0)
		return 0;
	smtpd_reply(s, s->milter_rcode, s->milter_rcls, s->milter_rsubj,
	    s->milter_rdet, "%s", s->milter_refusal);
	return 1;
}

/* gate_done - the milters decided on the held command */
static void
gate_done(void *arg, const struct milter_result *r)
{
	struct smtpd_session	*s = arg;
	char			*line = s->milter_line;
	size_t			 len = s->milter_linelen;

	s->milter_waiting = 0;
	s->milter_line = NULL;
	if (s->state == SMTPD_CLOSING || line == NULL) {
		free(line);
		return;
	}
	if (r->verdict == MILTER_CONTINUE) {
		s->milter_pass = s->milter_stage;
		smtpd_cmd_again(s, s->milter_idx, line, len,
		    line + s->milter_argoff, len - s->milter_argoff);
		s->milter_pass = 0;
	} else {
		s->cmd = line;
		s->cmdlen = len;
		if (s->milter_stage == 'H' && r->verdict == MILTER_REFUSE)
			refusal_keep(s, r);
		answer(s, r);
		s->cmd = NULL;
		s->cmdlen = 0;
	}
	free(line);
	if (s->state != SMTPD_CLOSING)
		smtpd_resume(s);
}

/* split_args - the path and parameters after "FROM:" / "TO:" */
static size_t
split_args(char *buf, char **argv, size_t max)
{
	char	*p = buf;
	size_t	 n = 0;

	if ((p = strchr(p, ':')) == NULL)
		return 0;
	p++;
	while (n < max) {
		while (*p == ' ')
			p++;
		if (*p == '\0')
			break;
		argv[n++] = p;
		while (*p != '\0' && *p != ' ')
			p++;
		if (*p == '\0')
			break;
		*p++ = '\0';
	}
	return n;
}

/*
 * smtpd_milter_gate - the milters on the command being handled (stage
 * 'H', 'M', 'R' or 'T'; arg[0..len) its argument, addr the address of
 * MAIL/RCPT): 0 go on (no milters, or they have passed it), 1 the
 * command waits for them (the handler returns pending), -1 answered
 */
int
smtpd_milter_gate(struct smtpd_session *s, char stage, const char *arg,
    size_t len, const char *addr)
{
	char	*argv[GATE_ARGS_MAX], *buf = NULL, *tls = NULL, *sp;
	size_t	 argc;
	int	 r = -1, idx;

	if (s->milters == NULL)
		return 0;
	if (s->milter_pass == stage) {
		s->milter_pass = 0;
		return 0;
	}
	if (s->cmd == NULL || arg < s->cmd || arg > s->cmd + s->cmdlen ||
	    (idx = smtpd_cmd_current(s)) < 0)
		return 0;
	free(s->milter_line);
	if ((s->milter_line = malloc(s->cmdlen + 1)) == NULL)
		goto nomem;
	memcpy(s->milter_line, s->cmd, s->cmdlen);
	s->milter_line[s->cmdlen] = '\0';
	s->milter_linelen = s->cmdlen;
	s->milter_argoff = (size_t)(arg - s->cmd);
	s->milter_idx = idx;
	s->milter_stage = stage;
	switch (stage) {
	case 'H':
		if (s->tls_info != NULL && (tls = strdup(s->tls_info)) != NULL) {
			if ((sp = strchr(tls, ' ')) != NULL)
				*sp++ = '\0';
			set(s, "{tls_version}", tls);
			set(s, "{cipher}", sp);
		} else {
			set(s, "{tls_version}", NULL);
			set(s, "{cipher}", NULL);
		}
		free(tls);
		if ((buf = strndup(arg, len)) == NULL)
			goto nomem;
		r = milter_helo(s->milters, buf, gate_done, s);
		break;
	case 'M':
	case 'R':
		if ((buf = strndup(arg, len)) == NULL)
			goto nomem;
		argc = split_args(buf, argv, GATE_ARGS_MAX);
		if (argc == 0)
			goto done_ok;
		if (stage == 'M') {
			set(s, "{auth_authen}", s->auth_user);
			set(s, "{mail_addr}", addr);
			r = milter_mail(s->milters, argv, argc, gate_done, s);
		} else {
			const char *at = strrchr(addr, '@');

			set(s, "{rcpt_addr}", addr);
			set(s, "{rcpt_host}", at != NULL ? at + 1 : NULL);
			set(s, "{rcpt_mailer}", at != NULL &&
			    cfg_is_local_domain(smtpd_cfg, at + 1) ? "local" :
			    "smtp");
			r = milter_rcpt(s->milters, argv, argc, gate_done, s);
		}
		break;
	case 'T':
		r = milter_data(s->milters, gate_done, s);
		break;
	default:
		goto done_ok;
	}
	free(buf);
	if (r == -1)
		goto nomem;
	s->milter_waiting = 1;
	return 1;
done_ok:
	free(buf);
	free(s->milter_line);
	s->milter_line = NULL;
	return 0;
nomem:
	free(buf);
	free(s->milter_line);
	s->milter_line = NULL;
	log_warnx("session=%s milter stage %c: out of memory", s->sid, stage);
	smtpd_reply(s, 451, 4, 3, 0, "Local error in processing");
	return -1;
}

/* eom_done - the milters have decided on the message */
static void
eom_done(void *arg, const struct milter_result *r)
{
	struct smtpd_session	*s = arg;
	struct qmsg		*m;
	char			 qid[QID_SIZE], reason[300];
	int			 idx;

	s->milter_waiting = 0;
	if (s->state == SMTPD_CLOSING || s->txn == NULL ||
	    (m = s->txn->m) == NULL)
		return;
	s->cmd = "DATA (end of data)";
	s->cmdlen = strlen(s->cmd);
	memcpy(qid, m->qid, sizeof(qid));
	switch (r->verdict) {
	case MILTER_REFUSE:
	case MILTER_SHUTDOWN:
		log_info("session=%s qid=%s milter=%s action=%s: not queued",
		    s->sid, qid, r->milter[0] != '\0' ? r->milter : "-",
		    r->action != NULL ? r->action : "reject");
		smtpd_set_state(s, SMTPD_READY);
		answer(s, r);
		smtpd_txn_free(s);
		break;
	case MILTER_DISCARD:
		log_info("session=%s qid=%s milter=%s action=discard: not "
		    "queued", s->sid, qid, r->milter[0] != '\0' ? r->milter :
		    "-");
		smtpd_set_state(s, SMTPD_READY);
		if ((idx = smtpd_cmd_index("DATA")) >= 0)
			s->okcount[idx]++;
		smtpd_reply(s, 250, 2, 0, 0, "Ok: queued as %s", qid);
		smtpd_txn_free(s);
		break;
	default:
		if (r->quarantine && m->state == MS_MODERATION)
			/* as for the policy rules: the moderator decides */
			log_info("session=%s qid=%s milter=%s quarantine: kept "
			    "in moderation", s->sid, qid, r->qmilter);
		else if (r->quarantine) {
			log_escape(reason, sizeof(reason), r->qreason,
			    strlen(r->qreason));
			free(m->state_value);
			free(m->state_reason);
			free(m->state_actor);
			m->state = MS_QUARANTINE;
			m->state_value = strdup("milter");
			m->state_reason = strdup(reason);
			m->state_actor = NULL;
			if (asprintf(&m->state_actor, "milter %s",
			    r->qmilter) < 0)
				m->state_actor = NULL;
			if (m->state_value == NULL || m->state_reason == NULL ||
			    m->state_actor == NULL) {
				smtpd_set_state(s, SMTPD_READY);
				smtpd_reply(s, 451, 4, 3, 0,
				    "Local error in processing");
				smtpd_txn_free(s);
				break;
			}
			log_info("session=%s qid=%s milter=%s "
			    "state=quarantine/milter", s->sid, qid, r->qmilter);
		}
		if (r->rewritten)
			s->txn->rewritten = 1;	/* DKIM reads the new file */
		smtpd_data_commit(s);
		break;
	}
	if (s->state != SMTPD_CLOSING) {
		if (s->state != SMTPD_COMMIT) {
			s->cmd = NULL;
			s->cmdlen = 0;
		}
		smtpd_resume(s);
	}
}

/*
 * smtpd_milter_eom - the received message to the milters: 1 when the
 * commit waits for them, 0 when there are none (commit now), -1 on a
 * local error (nothing answered)
 */
int
smtpd_milter_eom(struct smtpd_session *s)
{
	struct smtpd_txn *t = s->txn;

	if (s->milters == NULL)
		return 0;
	set(s, "i", t->m->qid);
	if (milter_eom(s->milters, t->m, &t->fd, smtpd_cfg->max_size,
	    eom_done, s) == -1) {
		log_warn("session=%s qid=%s milters at end of data", s->sid,
		    t->m->qid);
		return -1;
	}
	s->milter_waiting = 1;
	return 1;
}

/* smtpd_milter_abort - the transaction ends (RSET, new MAIL, errors) */
void
smtpd_milter_abort(struct smtpd_session *s)
{
	if (s->milters == NULL)
		return;
	milter_abort(s->milters);
	set(s, "i", NULL);
}

/* smtpd_milter_free - the session ends: QUIT to the milters */
void
smtpd_milter_free(struct smtpd_session *s)
{
	milter_close(s->milters);
	s->milters = NULL;
	free(s->milter_line);
	s->milter_line = NULL;
	free(s->milter_refusal);
	s->milter_refusal = NULL;
}
