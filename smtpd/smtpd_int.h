/*
 * smtpd_int.h - private interfaces between the files of smtpd/ (the
 * waymarkd daemon).  smtpd_main.c owns start-up, signals, privilege drop
 * and the event base; smtpd_session.c & co own SMTP sessions;
 * smtpd_control.c owns the control socket.  Nothing outside smtpd/
 * includes this file.
 */
#ifndef WAYMARK_SMTPD_INT_H
#define WAYMARK_SMTPD_INT_H

#include <stddef.h>

struct config;
struct event_base;

/* ---- SMTP server (smtpd_session.c, smtpd_cmd.c, smtpd_data.c, smtpd_reply.c, smtpd_tls.c) ---- */

/*
 * smtpd_server_bind - create, bind and listen on every cfg->listen
 * address (backlog SOMAXCONN, SO_REUSEADDR, IPV6_V6ONLY for IPv6).
 * Runs before the privilege drop.  Returns 0, or -1 with err set.
 */
int	smtpd_server_bind(const struct config *cfg, char *err, size_t errlen);
/*
 * smtpd_server_start - set up TLS (when tls_cert/tls_key), attach the
 * listeners to base and start accepting.  After the privilege drop and
 * queue_init.  -1 with err set on failure.
 */
int	smtpd_server_start(const struct config *cfg, struct event_base *base,
	    char *err, size_t errlen);
/* smtpd_server_reload - take the new configuration for new sessions
 * and commands (limits, domains, relay_from, TLS files); listen changes
 * are ignored (need a restart). */
void	smtpd_server_reload(const struct config *cfg);
/*
 * smtpd_server_stop - stop accepting; end every session with
 * "421 4.3.2 <hostname> Service shutting down"; sessions waiting for a
 * queue commit get their reply first.  done() is called (in the loop)
 * when no session is left.
 */
void	smtpd_server_stop(void (*done)(void));
/* smtpd_server_sessions - number of open sessions */
size_t	smtpd_server_sessions(void);

/* ---- control socket (smtpd_control.c) ---- */

/*
 * smtpd_control_bind - before the privilege drop: check the directory of
 * cfg->control (created when missing) and keep a fd on it; when only
 * root can write it (owned by root, not group/world writable unless
 * sticky), create the unix socket there now (mode 0660, stale socket
 * removed, owner set to uid/gid when uid != -1); when it is the user's
 * own directory, leave that to smtpd_control_bind_user.  A symbolic link
 * (or anything but a socket) at the path is refused and left alone.
 * -1 with err set.
 */
int	smtpd_control_bind(const struct config *cfg, long uid, long gid,
	    char *err, size_t errlen);
/* smtpd_control_bind_user - after the drop: create the socket when
 * smtpd_control_bind left it to the user; 0 when nothing to do */
int	smtpd_control_bind_user(char *err, size_t errlen);
int	smtpd_control_start(struct event_base *base);
void	smtpd_control_stop(void);

#endif
