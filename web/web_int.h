/*
 * web_int.h - what the files of web/ share: the request object, the
 * response and error functions (web_server.c), basic authentication
 * (web_auth.c) and the route table's handlers (web_api.c).
 * Invariants: a request is answered exactly once (web_send); when its
 * connection goes away while the answer is pending (a password check,
 * the failure delay, an action's commit), r->req becomes NULL and the
 * answer is only logged.
 */
#ifndef WAYMARK_WEB_INT_H
#define WAYMARK_WEB_INT_H

#include <stdint.h>
#include <sys/socket.h>

#include <event2/keyvalq_struct.h>

#include "common/log.h"

struct config;
struct event_base;
struct evhttp_request;
struct event;
struct web_conn;
typedef struct json_t json_t;

#define WEB_PATH_MAX	512	/* decoded path, bytes */
#define WEB_USER_MAX	255

struct web_req;
typedef void	web_handler(struct web_req *r);

struct web_req {
	struct evhttp_request	*req;		/* NULL: the client has gone */
	struct web_conn		*conn;
	const struct web_route	*route;
	uint64_t		 start_us;	/* monotonic */
	int			 admin;		/* came in on http_admin */
	int			 tls;
	const char		*method;
	int			 head;		/* HEAD: a GET route, no body */
	char			 path[WEB_PATH_MAX + 1];	/* no query */
	char			 capture[WEB_PATH_MAX + 1];	/* the route's "*" */
	char			 addr[64];	/* client address, text */
	struct sockaddr_storage	 ss;
	char			 user[WEB_USER_MAX + 1];	/* authenticated */
	struct evkeyvalq	 query;		/* decoded parameters */
	int			 query_bad;	/* the query did not parse */
	/* web_auth.c */
	struct event		*timer;		/* the failure delay */
	int			 auth_wait;	/* why it waits (web_auth.c) */
	int			 counted;	/* subject to auth_failures */
	int			 known;		/* the hash may match */
	int			 authed;	/* user is authenticated */
	const char		*why;		/* logged with a failure */
	unsigned char		 key[16];	/* failtab key of the address */
	struct web_req		*prev, *next;	/* checks in flight */
};

struct web_route {
	const char	*method;
	const char	*pattern;	/* "*" = one path segment, captured */
	web_handler	*fn;
	int		 admin;		/* http_admin only, basic auth;
					 * 2: or an operator session */
	int		 csrf;		/* state-changing: Origin checked */
};

extern const struct config	*web_cfg;
extern struct event_base	*web_base;

/* web_send - answer r with code and the JSON body (consumed), log it,
 * free r */
void	web_send(struct web_req *r, int code, json_t *body);
/* web_error - {"error": text, "code": code} */
void	web_error(struct web_req *r, int code, const char *fmt, ...)
	    WM_PRINTF(3, 4);
/* web_send_body - answer r with code, Content-Type type and the bytes
 * data (len; 0: no body), log it, free r */
void	web_send_body(struct web_req *r, int code, const char *type,
	    const void *data, size_t len);
/* web_req_header - an input header field, NULL when absent */
const char *web_req_header(struct web_req *r, const char *name);
/* web_req_body - a NUL-terminated copy of the body (*len octets) */
char	*web_req_body(struct web_req *r, size_t *len);
/* web_header - add an output header (before web_send) */
void	web_header(struct web_req *r, const char *name, const char *value);
/* web_query - the query parameter name (decoded), NULL when absent */
const char *web_query(struct web_req *r, const char *name);
/* web_query_check - every parameter's name is in names (NULL-ended);
 * else its name in *unknown (0 / -1) */
int	web_query_check(struct web_req *r, const char *const *names,
	    const char **unknown);
/* web_req_detach - the connection goes away: forget r->req */
void	web_req_detach(struct web_req *r);

/* web_auth.c: basic auth against auth_users, admin_users; then
 * r->route->fn(r), or the refusal (401, 403, 429, 503) */
void	web_auth_start(struct web_req *r);
/* web_auth_free - r is freed: stop its timer, leave the in-flight list */
void	web_auth_free(struct web_req *r);

/* web_track.c: the sender view (README "Tracking page") */
web_handler	web_track_api, web_track_form, web_page_index, web_page_envid,
		web_asset_get;
/* web_track_reload - new `dns`: the next walks use a new client */
void	web_track_reload(void);
/* web_track_shutdown - cancel the walks in flight (SIGTERM) */
void	web_track_shutdown(void);

/* web_admin.c: the operator's pages (README "Operator view") */
web_handler	web_admin_list, web_admin_show, web_admin_action,
		web_admin_logout, web_admin_root;
/* web_admin_session - r's cookie names a live session: r->user set,
 * r->authed, 1 (no password check); else 0 */
int	web_admin_session(struct web_req *r);

/* web_assets.c (generated from web/assets/ by web/assets/gen.sh) */
struct web_asset {
	const char	*name;		/* file name under web/assets/ */
	const char	*type;		/* Content-Type */
	const char	*data;
	size_t		 len;
};
extern const struct web_asset	web_assets[];
extern const size_t		web_nassets;

/* web_api.c */
extern const struct web_route	web_routes[];
extern const size_t		web_nroutes;

/* the Prometheus listener (web_metrics.c): `metrics`, bound before the
 * privilege drop, served after queue_init, closed at the stop */
int	web_metrics_bind(const struct config *cfg, char *err, size_t errlen);
int	web_metrics_start(const struct config *cfg, struct event_base *base,
	    char *err, size_t errlen);
void	web_metrics_stop(void);

#endif
