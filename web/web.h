/*
 * web.h - the HTTP server (web/): the operator's JSON API on http_admin
 * and the sender's tracking view on http (web_track.c), libevent's evhttp
 * on the daemon's event loop.  Reads the store only through queue/'s
 * API (queue/queue.h).
 * Life cycle (smtpd_main.c): web_server_bind before the privilege drop,
 * web_server_start after queue_init, web_server_reload on SIGHUP (the
 * listener lists need a restart), web_server_stop at SIGTERM.
 */
#ifndef WAYMARK_WEB_H
#define WAYMARK_WEB_H

#include <stddef.h>

struct config;
struct event_base;

/* web_server_bind - bind every http and http_admin address; 0 or -1 */
int	web_server_bind(const struct config *cfg, char *err, size_t errlen);
/* web_server_start - serve the bound sockets on base; 0 or -1 */
int	web_server_start(const struct config *cfg, struct event_base *base,
	    char *err, size_t errlen);
/* web_server_reload - new bounds, users and TLS context (the old TLS
 * context stays when the new one cannot be loaded) */
void	web_server_reload(const struct config *cfg);
/* web_server_stop - close the listeners and every connection */
void	web_server_stop(void);

#endif
