/*
 * cfg.h - the configuration: one table of {key, type, default, min, max,
 * help} drives the parser, `-n` output and the FILE:LINE: KEY: reason
 * errors (DESIGN.md "Configuration syntax").
 * Without a file the embedded default text (etc/default.conf, compiled in)
 * is parsed with paths relative to the current directory.
 */
#ifndef WAYMARK_CFG_H
#define WAYMARK_CFG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

struct cfg_addr {			/* IPv4:PORT or [IPv6]:PORT */
	struct sockaddr_storage	ss;
	socklen_t		len;
	char			text[64];	/* as written, normalised */
};

struct cfg_dkim_key {			/* dkim_key = DOMAIN SELECTOR ALG KEYFILE */
	char		*domain;	/* lower-case */
	char		*selector;
	char		*alg;		/* rsa-sha256 | ed25519-sha256 */
	char		*keyfile;	/* absolute */
	unsigned	 line;		/* its line in the file */
};

struct cfg_net {			/* ADDR[/PREFIX] */
	int		family;		/* AF_INET or AF_INET6 */
	unsigned char	addr[16];
	int		prefix;
	char		text[64];
};

struct alias_table;
struct policy;
struct list_table;
struct dkim_keys;

enum cfg_smtp_tls { CFG_TLS_MAY, CFG_TLS_ENCRYPT, CFG_TLS_VERIFY };

struct config {
	char		*path;		/* file read, or "(default)" */
	char		*dir;		/* its directory; relative paths resolved against it */

	char		*hostname;
	struct cfg_addr	*listen;	size_t nlisten;
	struct cfg_addr	*submission;	size_t nsubmission;
	struct cfg_addr	*mtqp;		size_t nmtqp;
	char		*control;	/* absolute or dir-resolved path */
	char		*control_group;	/* NULL = the primary group of user */
	unsigned	 control_group_line;	/* its line in path, 0 = unset */
	char		*control_read;	/* "group" | "anyone" (queue, show) */
	char		*spool;
	char		**local_domains; size_t nlocal_domains;	/* lower-case */
	char		*local_recipients;	/* path or NULL */
	char		*aliases;
	char		*lists;		/* lists file (common/lists.h) or NULL */
	char		*mailbox_root;
	char		*lmtp;
	struct cfg_net	*relay_from;	size_t nrelay_from;
	char		*smarthost;
	unsigned	 smtp_port;
	char		**dns;		size_t ndns;
	char		*tls_cert;
	char		*tls_key;
	enum cfg_smtp_tls smtp_tls;
	uint64_t	 max_size;
	unsigned	 max_recipients;
	unsigned	 max_sessions;
	unsigned	 max_sessions_per_client; /* unset in the file: max_sessions / 4, >= 1 */
	unsigned	 in_flow_delay;		/* seconds, 0 = off (smtpd_flow.c) */
	unsigned	 smtpd_timeout;		/* seconds: idle wait, command line */
	uint64_t	 smtpd_data_min_rate;	/* bytes per second, 0 = off */
	unsigned	 smtpd_data_rate_grace;	/* seconds after the 354 */
	unsigned	 max_hops;
	unsigned	 queue_lifetime;	/* seconds */
	unsigned	 delay_warning;		/* seconds, 0 = off */
	uint64_t	 max_dsn_return_size;	/* bytes of a message a failure DSN returns */
	unsigned	*retry_schedule;	size_t nretry_schedule;	/* seconds */
	unsigned	 history_retention;
	unsigned	 tracking_retention;
	unsigned	 deliverby_min;		/* seconds: RFC 2852 min-by-time, 0 = none */
	char		*policy;
	unsigned	 future_release_max;	/* RFC 4865: longest hold, seconds */
	unsigned	 filter_timeout;	/* policy filter: seconds per run */
	unsigned	 filter_concurrency;	/* policy filter: runs at once */
	uint64_t	 policy_body_scan;	/* bytes of body the policy rules see */
	char		*user;
	unsigned	 user_line;	/* line of "user =" in path, 0 = the default */
	int		 allow_shared_user;	/* user may be nobody */
	uint64_t	 min_free_space;	/* bytes; MAIL gets 452 4.3.1 below it */
	int		 syslog;		/* log to syslog instead of stderr */
	unsigned	 workers;		/* disk worker threads */
	unsigned	 smtp_connect_timeout;	/* seconds; SMTP client, RFC 5321 4.5.3.2 */
	unsigned	 smtp_helo_timeout;
	unsigned	 smtp_mail_timeout;
	unsigned	 smtp_rcpt_timeout;
	unsigned	 smtp_data_init_timeout;
	unsigned	 smtp_data_block_timeout;
	unsigned	 smtp_data_done_timeout;
	unsigned	 smtp_destination_concurrency;
	unsigned	 smtp_concurrency;
	char		*smtp_tls_ca;		/* path or NULL */
	int		 mta_sts;		/* apply MTA-STS policies (RFC 8461) */
	int		 tlsrpt;		/* TLS-RPT counters and daily reports (RFC 8460) */
	char		*smarthost_auth;	/* path or NULL */
	char		*auth_users;		/* path or NULL: "user:crypt-hash" lines */
	int		 submission_plaintext_auth; /* AUTH before STARTTLS on submission */
	/* auth_failures = N per DURATION: failed AUTH per client address */
	unsigned	 auth_failures;
	unsigned	 auth_failures_window;	/* seconds */
	/* networks the per-client limits skip; unset in the file = relay_from */
	struct cfg_net	*client_limit_exceptions; size_t nclient_limit_exceptions;
	/* MTQP server (track/, RFC 3887) */
	int		 mtqp_require_tls;	/* "STARTTLS required"; TRACK in clear refused */
	unsigned	 mtqp_timeout;		/* autologout, seconds (>= 600, RFC 3887 2.4) */
	unsigned	 mtqp_max_sessions;	/* concurrent MTQP sessions */
	/* mtqp_auth_failures = N per DURATION: failed TRACKs per client address */
	unsigned	 mtqp_auth_failures;
	unsigned	 mtqp_auth_failures_window;	/* seconds */
	int		 mtqp_chaining;		/* query next hops ourselves */
	/* HTTP server (web/) */
	struct cfg_addr	*http;		size_t nhttp;		/* sender view */
	struct cfg_addr	*http_admin;	size_t nhttp_admin;	/* operator view, API */
	int		 http_tls;		/* https with tls_cert/tls_key */
	char		**admin_users;	size_t nadmin_users;	/* auth_users names */
	uint64_t	 http_max_header_size;	/* request line + fields, bytes */
	uint64_t	 http_max_body_size;	/* request body, bytes */
	unsigned	 http_max_connections;	/* served or kept alive */
	unsigned	 http_timeout;		/* seconds */
	char		*http_public_url;	/* tracking page base, or NULL */
	uint64_t	 db_cache;		/* Berkeley DB cache, bytes (restart) */
	/* Prometheus /metrics (web/web_metrics.c): one address or none */
	struct cfg_addr	*metrics;	size_t nmetrics;
	/* DKIM signing keys (one per line, never split as a list) */
	struct cfg_dkim_key *dkim_key;	size_t ndkim_key;
	/* milters (filter/milter.c): unix:PATH | inet:HOST:PORT, in order */
	char		**milters;	size_t nmilters;
	char		*milter_default_action;	/* tempfail | accept | reject */
	unsigned	 milter_connect_timeout;	/* seconds */
	unsigned	 milter_command_timeout;	/* seconds */
	unsigned	 milter_content_timeout;	/* seconds */
	int		 dns_dnssec;		/* AD-bit queries, DANE (RFC 7672) */

	/* derived: local_recipients file contents, lower-cased, sorted */
	char		**local_rcpts;	size_t nlocal_rcpts;
	/* derived: auth_users file contents, "user:hash", in file order */
	char		**auth_entries;	size_t nauth_entries;
	/* derived: the crypt(3) setting (scheme, cost, salt, no hash) of
	 * the dearest usable auth_users entry (cryptset.c's cost rule), for
	 * unknown users and locked entries; or NULL */
	char		*auth_dummy;
	/* derived: a warning for the daemon to log (auth_users mixes hash
	 * schemes or costs), or NULL */
	char		*auth_warning;
	/* derived: the aliases file, parsed (common/aliases.h), or NULL */
	struct alias_table *alias_table;
	/* derived, waymarkd only: the policy file, parsed by
	 * queue_policy_load (queue/queue.h); smtpd_main.c loads it after
	 * cfg_load and frees it (cfg_free does not), or NULL */
	struct policy	*policy_table;
	/* derived: the lists file, parsed (common/lists.h), or NULL */
	struct list_table *list_table;
	/* derived, waymarkd only: the dkim_key files, read and checked by
	 * dkim_keys_load (filter/dkim.h) in smtpd_main.c, freed there
	 * (cfg_free does not), or NULL */
	struct dkim_keys *dkim_keys;
};

/*
 * cfg_load - parse path (NULL = the embedded default).  On error returns
 * NULL and writes "FILE:LINE: KEY: reason" (or "FILE: reason") to err.
 */
struct config	*cfg_load(const char *path, char *err, size_t errlen);
void		 cfg_free(struct config *c);
/*
 * cfg_check_user - the daemon's checks of `user` (the CLI does not run
 * them): it must exist, must not have uid 0, and must not be nobody
 * (by name or uid) unless allow_shared_user = yes.  0 with *uid and *gid
 * set (either may be NULL), or -1 and "FILE:LINE: user: reason" in err.
 */
int		 cfg_check_user(const struct config *c, long *uid, long *gid,
		    char *err, size_t errlen);
/*
 * cfg_control_group - the group allowed every control command (besides
 * root): control_group, else the primary group of user.  0 with *gid
 * (may be NULL) and its name (or number) set, or -1 with
 * "FILE:LINE: control_group: reason" in err.
 */
int		 cfg_control_group(const struct config *c, long *gid,
		    char *name, size_t namelen, char *err, size_t errlen);
/* cfg_control_read_anyone - control_read = anyone: queue and show for all */
int		 cfg_control_read_anyone(const struct config *c);
/* cfg_print - every effective key, defaults included, one "key = value" line each */
void		 cfg_print(const struct config *c, FILE *fp);
/* cfg_relay_allowed - client address in relay_from? */
int		 cfg_relay_allowed(const struct config *c, const struct sockaddr *sa);
/* cfg_client_exempt - client address in client_limit_exceptions? */
int		 cfg_client_exempt(const struct config *c, const struct sockaddr *sa);
/* cfg_parse_net - ADDR[/PREFIX] (IPv6 may be bracketed); 0 or -1 */
int		 cfg_parse_net(const char *s, struct cfg_net *out);
/* cfg_nets_match - sa inside one of nets (IPv4-mapped IPv6 as IPv4)? */
int		 cfg_nets_match(const struct cfg_net *nets, size_t n,
		    const struct sockaddr *sa);
/* cfg_is_local_domain - case-insensitive match against local_domains */
int		 cfg_is_local_domain(const struct config *c, const char *domain);
/* cfg_local_rcpt_ok - 1 when local_recipients is unset or lists local@domain (case-insensitive) */
int		 cfg_local_rcpt_ok(const struct config *c, const char *local, const char *domain);
/* cfg_auth_hash - the crypt(3) hash of user from auth_users, or NULL */
const char	*cfg_auth_hash(const struct config *c, const char *user);
/* cfg_auth_dummy - the setting of the dearest auth_users entry
 * (auth_dummy, else a SHA-512 one): what an unknown user's password is
 * hashed with, so both cases cost the same; it matches no password (it
 * has no hash part) */
const char	*cfg_auth_dummy(const struct config *c);
/*
 * cfg_auth_lookup - what user's password is to be hashed with: the
 * user's hash, returning 1 (it may match), else cfg_auth_dummy(),
 * returning 0 (it cannot): an unknown user, or an entry whose hash is
 * locked ("!...", "*...") or unusable (crypt_checksalt refuses it), so
 * that every failure costs one check
 */
int		 cfg_auth_lookup(const struct config *c, const char *user,
		    const char **setting);
/* cfg_parse_duration / cfg_parse_size - the value syntaxes, exposed for tests and the CLI */
/* cfg_milter_addr - the socket address of a milters entry:
 * unix:/ABSOLUTE/PATH or inet:HOST:PORT (HOST an IPv4 address,
 * [IPv6] or localhost); 0, or -1 with err set */
int		 cfg_milter_addr(const char *spec, struct sockaddr_storage *ss,
		    socklen_t *len, char *err, size_t errlen);
int		 cfg_parse_duration(const char *s, unsigned *out);
int		 cfg_parse_size(const char *s, uint64_t *out);
/* cfg_parse_rate - "N per DURATION" (N >= 0, DURATION as above) */
int		 cfg_parse_rate(const char *s, unsigned *n, unsigned *window);

#endif
