#include "config.h"
/*
 * cfg.c - the configuration file (DESIGN.md "Configuration syntax").
 * Owns: the one key table {key, type, default, min, max, help} that drives
 *       the defaults, the parser, cfg_print() (`-n`) and the
 *       "FILE:LINE: KEY: reason" errors; the value syntaxes (addresses,
 *       networks, domains, durations, sizes, booleans, enums, rates
 *       "N per DURATION"); the embedded default configuration; the
 *       relay / local-domain / local-recipient look-ups; the auth_users
 *       entries and the dummy setting for unknown users and locked
 *       entries (the dearest entry's, by the rule of cryptset.c); the daemon's
 *       checks of `user` (cfg_check_user: known, never uid 0, nobody only
 *       with allow_shared_user), which cfg_load leaves out for the CLI.
 * Rules: `key = value`; `#` starts a comment at the start of a line or
 *       of a value or after whitespace; list keys may repeat (the first
 *       occurrence in a text replaces the default, later ones add) and
 *       take several values separated by commas and/or spaces; a
 *       single-value key may appear once; `dkim_key` may repeat but
 *       each line is one entry of four fields (never split at commas;
 *       its key file is read by the daemon, filter/dkim.c); relative
 *       paths are resolved
 *       against the file's directory (the current directory for the
 *       embedded default) and stored absolute.
 */

#include <arpa/inet.h>
#include <errno.h>
#include <grp.h>
#include <limits.h>
#include <netinet/in.h>
#include <pwd.h>
#include <sys/un.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "common/aliases.h"
#include "common/cfg.h"
#include "common/intl.h"
#include "common/cryptset.h"
#include "common/lists.h"
#include "common/log.h"
#include "common/syntax.h"
#include "common/util.h"

/* the embedded default configuration: what `waymarkd` runs without -f */
static const char cfg_default_text[] =
	"# embedded default configuration (paths relative to the current directory)\n"
	"listen = 127.0.0.1:2525\n"
	"spool = var/spool\n"
	"mailbox_root = var/mail\n"
	"control = var/control.sock\n"
	"relay_from = 127.0.0.0/8, ::1\n"
	"local_domains = localhost\n";

enum cfg_type {
	CT_STRING,	/* char * */
	CT_PATH,	/* char *, absolute */
	CT_ADDRS,	/* struct cfg_addr[] */
	CT_NETS,	/* struct cfg_net[] */
	CT_DOMAINS,	/* char *[], lower-case */
	CT_STRINGS,	/* char *[] (dns: ADDR, ADDR:PORT, [v6]:PORT) */
	CT_UINT,	/* unsigned */
	CT_DURATION,	/* unsigned seconds */
	CT_DURATIONS,	/* unsigned[] seconds */
	CT_SIZE,	/* uint64_t bytes */
	CT_BOOL,	/* int */
	CT_ENUM,	/* enum cfg_smtp_tls (the only enum so far) */
	CT_RATE,	/* "N per DURATION": unsigned N (off), unsigned seconds (noff) */
	CT_DKIM,	/* struct cfg_dkim_key[]: may repeat, one whole entry a line */
};

struct cfg_key {
	const char	*key;
	enum cfg_type	 type;
	const char	*def;		/* default text; NULL = unset / none */
	uint64_t	 min;		/* CT_ADDRS: default port, 0 = required */
	uint64_t	 max;		/* CT_ADDRS: 1 = one address, not a list */
	size_t		 off;		/* offsetof(struct config, field) */
	size_t		 noff;		/* lists: offsetof the count; CT_RATE: the window */
	const char	*help;
};

#define F(f)		offsetof(struct config, f)
#define L(f)		offsetof(struct config, f), offsetof(struct config, n##f)
#define R(f)		offsetof(struct config, f), offsetof(struct config, f##_window)
#define UMAX		UINT_MAX
#define SMAX		UINT64_MAX

static const char *const smtp_tls_names[] = { "may", "encrypt", "verify" };

/* keep in the order of README's reference; cfg_print() follows it */
static const struct cfg_key cfg_keys[] = {
	{ "hostname", CT_STRING, NULL, 0, 0, F(hostname), 0,
	  "name used in the greeting, EHLO and Received: (default: the system's name)" },
	{ "listen", CT_ADDRS, "127.0.0.1:2525", 0, 0, L(listen),
	  "SMTP listeners, IPv4:PORT or [IPv6]:PORT" },
	{ "submission", CT_ADDRS, NULL, 0, 0, L(submission),
	  "submission listeners (none by default)" },
	{ "mtqp", CT_ADDRS, NULL, 1038, 0, L(mtqp),
	  "MTQP listeners (none by default; port 1038 when omitted)" },
	{ "control", CT_PATH, "var/control.sock", 0, 0, F(control), 0,
	  "control socket of the waymark command" },
	{ "control_group", CT_STRING, NULL, 0, 0, F(control_group), 0,
	  "group allowed every control command, besides root (unset: the group of user)" },
	{ "control_read", CT_STRING, "group", 0, 0, F(control_read), 0,
	  "who may run queue and show: group (root and control_group) | anyone" },
	{ "spool", CT_PATH, "var/spool", 0, 0, F(spool), 0,
	  "queue directory: body files and the Berkeley DB environment" },
	{ "local_domains", CT_DOMAINS, "localhost", 0, 0, L(local_domains),
	  "domains delivered to Maildirs under mailbox_root" },
	{ "local_recipients", CT_PATH, NULL, 0, 0, F(local_recipients), 0,
	  "file of accepted local addresses, one per line (unset: any)" },
	{ "aliases", CT_PATH, NULL, 0, 0, F(aliases), 0,
	  "aliases file" },
	{ "lists", CT_PATH, NULL, 0, 0, F(lists), 0,
	  "lists file: list addresses, members, moderators" },
	{ "mailbox_root", CT_PATH, "var/mail", 0, 0, F(mailbox_root), 0,
	  "Maildirs live in mailbox_root/DOMAIN/LOCALPART/" },
	{ "lmtp", CT_STRING, NULL, 0, 0, F(lmtp), 0,
	  "LMTP server for local delivery instead of Maildir" },
	{ "relay_from", CT_NETS, "127.0.0.0/8, ::1", 0, 0, L(relay_from),
	  "client networks allowed to relay, ADDR[/PREFIX]; empty = nobody" },
	{ "smarthost", CT_STRING, NULL, 0, 0, F(smarthost), 0,
	  "relay all remote mail through this host" },
	{ "smtp_port", CT_UINT, "25", 1, 65535, F(smtp_port), 0,
	  "port of remote SMTP servers" },
	{ "dns", CT_STRINGS, NULL, 0, 0, L(dns),
	  "DNS servers, ADDR or ADDR:PORT or [IPv6]:PORT (none: system resolver)" },
	{ "tls_cert", CT_PATH, NULL, 0, 0, F(tls_cert), 0,
	  "PEM certificate chain for STARTTLS (with tls_key)" },
	{ "tls_key", CT_PATH, NULL, 0, 0, F(tls_key), 0,
	  "PEM private key for STARTTLS (with tls_cert)" },
	{ "smtp_tls", CT_ENUM, "may", 0, 2, F(smtp_tls), 0,
	  "outgoing TLS: may | encrypt | verify" },
	{ "max_size", CT_SIZE, "10m", 0, SMAX, F(max_size), 0,
	  "largest message accepted (SIZE)" },
	{ "max_recipients", CT_UINT, "1000", 1, UMAX, F(max_recipients), 0,
	  "recipients per message" },
	{ "max_sessions", CT_UINT, "100", 1, UMAX, F(max_sessions), 0,
	  "concurrent SMTP sessions" },
	{ "max_sessions_per_client", CT_UINT, NULL, 1, UMAX,
	  F(max_sessions_per_client), 0,
	  "concurrent SMTP sessions per client address (unset: max_sessions / 4, at least 1)" },
	{ "in_flow_delay", CT_DURATION, "1s", 0, 10, F(in_flow_delay), 0,
	  "longest delay of the reply to MAIL while more accepted messages wait for delivery than 4 x smtp_concurrency (0 = no delay, at most 10s)" },
	{ "smtpd_timeout", CT_DURATION, "5m", 1, UMAX, F(smtpd_timeout), 0,
	  "each idle wait, and each command line from its first octet, before 421 4.4.2" },
	{ "smtpd_data_min_rate", CT_SIZE, "1k", 0, 1073741824,
	  F(smtpd_data_min_rate), 0,
	  "lowest average DATA rate, bytes per second, after smtpd_data_rate_grace (0 = off)" },
	{ "smtpd_data_rate_grace", CT_DURATION, "60s", 0, UMAX,
	  F(smtpd_data_rate_grace), 0,
	  "time after the 354 before smtpd_data_min_rate applies" },
	{ "max_hops", CT_UINT, "100", 1, UMAX, F(max_hops), 0,
	  "Received: fields before a message is refused as looping" },
	{ "queue_lifetime", CT_DURATION, "5d", 0, UMAX, F(queue_lifetime), 0,
	  "time before an undeliverable message is returned" },
	{ "delay_warning", CT_DURATION, "4h", 0, UMAX, F(delay_warning), 0,
	  "delay before a warning DSN (0 = off)" },
	{ "max_dsn_return_size", CT_SIZE, "1m", 0, SMAX,
	  F(max_dsn_return_size), 0,
	  "largest message a failure DSN returns whole (else its header)" },
	{ "retry_schedule", CT_DURATIONS, "1m 5m 15m 1h 4h", 1, UMAX,
	  L(retry_schedule), "retry intervals; the last one repeats" },
	{ "history_retention", CT_DURATION, "7d", 0, UMAX,
	  F(history_retention), 0, "how long finished messages stay listed" },
	{ "tracking_retention", CT_DURATION, "9d", 86400, UMAX,
	  F(tracking_retention), 0,
	  "longest MTRK tracking time kept (RFC 3885 3.3: >= 1d)" },
	{ "deliverby_min", CT_DURATION, "0", 0, 999999999,
	  F(deliverby_min), 0,
	  "DELIVERBY min-by-time: BY=...;R below it gets 555 5.5.4 (0 = no minimum)" },
	{ "policy", CT_PATH, NULL, 0, 0, F(policy), 0,
	  "policy rules file (README \"Policy rules\")" },
	{ "policy_body_scan", CT_SIZE, "64k", 0, 16777216,
	  F(policy_body_scan), 0,
	  "body octets (after the header section) that body= and attachment= rules see" },
	{ "future_release_max", CT_DURATION, "7d", 1, 999999999,
	  F(future_release_max), 0,
	  "FUTURERELEASE (RFC 4865, submission only): the longest hold" },
	{ "filter_timeout", CT_DURATION, "5m", 1, UMAX, F(filter_timeout), 0,
	  "policy `filter COMMAND`: the longest run before it is killed" },
	{ "filter_concurrency", CT_UINT, "4", 1, 256, F(filter_concurrency), 0,
	  "policy `filter COMMAND`: filters running at once" },
	{ "user", CT_STRING, "waymark", 0, 0, F(user), 0,
	  "dedicated unprivileged user the daemon runs as (never root)" },
	{ "allow_shared_user", CT_BOOL, "no", 0, 1, F(allow_shared_user), 0,
	  "let user be nobody, an account other services share" },
	{ "min_free_space", CT_SIZE, "50m", 0, SMAX, F(min_free_space), 0,
	  "MAIL gets 452 4.3.1 when the spool has less free space" },
	{ "syslog", CT_BOOL, "no", 0, 1, F(syslog), 0,
	  "log to syslog (mail facility) instead of stderr" },
	{ "workers", CT_UINT, "4", 1, 64, F(workers), 0,
	  "disk worker threads" },
	{ "smtp_connect_timeout", CT_DURATION, "30s", 1, UMAX,
	  F(smtp_connect_timeout), 0, "SMTP client: time to connect" },
	{ "smtp_helo_timeout", CT_DURATION, "5m", 1, UMAX,
	  F(smtp_helo_timeout), 0,
	  "SMTP client: greeting, EHLO/HELO, STARTTLS and AUTH replies" },
	{ "smtp_mail_timeout", CT_DURATION, "5m", 1, UMAX,
	  F(smtp_mail_timeout), 0, "SMTP client: MAIL reply" },
	{ "smtp_rcpt_timeout", CT_DURATION, "5m", 1, UMAX,
	  F(smtp_rcpt_timeout), 0, "SMTP client: RCPT reply" },
	{ "smtp_data_init_timeout", CT_DURATION, "2m", 1, UMAX,
	  F(smtp_data_init_timeout), 0, "SMTP client: DATA (354) reply" },
	{ "smtp_data_block_timeout", CT_DURATION, "3m", 1, UMAX,
	  F(smtp_data_block_timeout), 0,
	  "SMTP client: each write of the message content" },
	{ "smtp_data_done_timeout", CT_DURATION, "10m", 1, UMAX,
	  F(smtp_data_done_timeout), 0,
	  "SMTP client: reply to the end of the content" },
	{ "smtp_destination_concurrency", CT_UINT, "20", 1, UMAX,
	  F(smtp_destination_concurrency), 0,
	  "SMTP client: deliveries at once per destination" },
	{ "smtp_concurrency", CT_UINT, "100", 1, UMAX, F(smtp_concurrency), 0,
	  "SMTP client: deliveries at once in total" },
	{ "smtp_tls_ca", CT_PATH, NULL, 0, 0, F(smtp_tls_ca), 0,
	  "CA certificates (PEM) for smtp_tls = verify (unset: system CAs)" },
	{ "mta_sts", CT_BOOL, "yes", 0, 1, F(mta_sts), 0,
	  "SMTP client: look up and apply the next hop domain's MTA-STS policy (RFC 8461)" },
	{ "tlsrpt", CT_BOOL, "no", 0, 1, F(tlsrpt), 0,
	  "count TLS policy results and mail daily TLS-RPT reports (RFC 8460) to the domains asking for them" },
	{ "smarthost_auth", CT_PATH, NULL, 0, 0, F(smarthost_auth), 0,
	  "file with \"username password\" for AUTH to the smarthost (over TLS only)" },
	{ "auth_users", CT_PATH, NULL, 0, 0, F(auth_users), 0,
	  "file of \"user:crypt-hash\" lines: AUTH PLAIN/LOGIN on submission listeners" },
	{ "submission_plaintext_auth", CT_BOOL, "no", 0, 1,
	  F(submission_plaintext_auth), 0,
	  "offer AUTH on submission listeners before STARTTLS (loopback testing)" },
	{ "auth_failures", CT_RATE, "5 per 10m", 1, UMAX, R(auth_failures),
	  "failed AUTH per client address in a window; then 454 4.7.0 until it passes" },
	{ "client_limit_exceptions", CT_NETS, NULL, 0, 0,
	  L(client_limit_exceptions),
	  "networks exempt from the per-client limits (unset: relay_from; empty = none)" },
	{ "mtqp_require_tls", CT_BOOL, "no", 0, 1, F(mtqp_require_tls), 0,
	  "MTQP: advertise \"STARTTLS required\" and refuse TRACK in clear (needs tls_cert)" },
	{ "mtqp_timeout", CT_DURATION, "10m", 0, UMAX, F(mtqp_timeout), 0,
	  "MTQP autologout: idle time before a session is closed (at least 10m)" },
	{ "mtqp_max_sessions", CT_UINT, "50", 1, UMAX, F(mtqp_max_sessions), 0,
	  "concurrent MTQP sessions; a quarter of them (at least 1) per client address" },
	{ "mtqp_auth_failures", CT_RATE, "10 per 1h", 1, UMAX,
	  R(mtqp_auth_failures),
	  "failed TRACKs per client address in a window (no exceptions); then noinfo" },
	{ "mtqp_chaining", CT_BOOL, "no", 0, 1, F(mtqp_chaining), 0,
	  "MTQP: query the next hops ourselves and append their answers" },
	{ "http", CT_ADDRS, NULL, 0, 0, L(http),
	  "HTTP listeners of the sender view, IPv4:PORT or [IPv6]:PORT (none by default)" },
	{ "http_admin", CT_ADDRS, NULL, 0, 0, L(http_admin),
	  "HTTP listeners of the operator view and JSON API (none by default)" },
	{ "http_tls", CT_BOOL, "no", 0, 1, F(http_tls), 0,
	  "HTTP listeners speak TLS (https) with tls_cert/tls_key" },
	{ "admin_users", CT_STRINGS, NULL, 0, 0, L(admin_users),
	  "auth_users names allowed on http_admin (none by default)" },
	{ "http_max_header_size", CT_SIZE, "8k", 1024, 1048576,
	  F(http_max_header_size), 0,
	  "HTTP: request line and header fields, bytes (more: 431)" },
	{ "http_max_body_size", CT_SIZE, "64k", 0, 16777216,
	  F(http_max_body_size), 0, "HTTP: request body, bytes (more: 413)" },
	{ "http_max_connections", CT_UINT, "64", 1, 65535,
	  F(http_max_connections), 0,
	  "HTTP: connections with a request served or kept alive (more: 503)" },
	{ "http_timeout", CT_DURATION, "30s", 1, 3600, F(http_timeout), 0,
	  "HTTP: idle time, and time to send a request or read an answer" },
	{ "http_public_url", CT_STRING, NULL, 0, 0, F(http_public_url), 0,
	  "the tracking page's public base URL (sendmail --track's link)" },
	{ "db_cache", CT_SIZE, "1m", 262144, 1073741824, F(db_cache), 0,
	  "Berkeley DB cache of the queue, bytes; the log buffer is a quarter of it (64k-256k); read at start" },
	{ "metrics", CT_ADDRS, NULL, 0, 1, L(metrics),
	  "Prometheus /metrics listener, IPv4:PORT or [IPv6]:PORT (none by default)" },
	{ "dkim_key", CT_DKIM, NULL, 0, 0, L(dkim_key),
	  "DOMAIN SELECTOR ALG KEYFILE: a DKIM signing key (rsa-sha256 | ed25519-sha256); one a line, may repeat" },
	{ "milters", CT_STRINGS, NULL, 0, 0, L(milters),
	  "milters, in order: unix:/PATH or inet:HOST:PORT (none by default)" },
	{ "milter_default_action", CT_STRING, "tempfail", 0, 0,
	  F(milter_default_action), 0,
	  "when a milter fails or times out: tempfail | accept | reject" },
	{ "milter_connect_timeout", CT_DURATION, "30s", 1, UMAX,
	  F(milter_connect_timeout), 0, "milter: connecting to it" },
	{ "milter_command_timeout", CT_DURATION, "30s", 1, UMAX,
	  F(milter_command_timeout), 0,
	  "milter: negotiation and the CONNECT, HELO, MAIL, RCPT, DATA replies" },
	{ "milter_content_timeout", CT_DURATION, "300s", 1, UMAX,
	  F(milter_content_timeout), 0,
	  "milter: header, body and end-of-message replies" },
	{ "dns_dnssec", CT_BOOL, "no", 0, 1, F(dns_dnssec), 0,
	  "ask the resolver for DNSSEC status (AD bit) and use DANE (needs a loopback validating resolver)" },
};

#define NKEYS	(sizeof(cfg_keys) / sizeof(cfg_keys[0]))

#define FIELD(c, k, T)	((T *)(void *)((char *)(c) + (k)->off))
#define CFIELD(c, k, T)	((const T *)(const void *)((const char *)(c) + (k)->off))
#define COUNT(c, k)	((size_t *)(void *)((char *)(c) + (k)->noff))
#define CCOUNT(c, k)	(*(const size_t *)(const void *)((const char *)(c) + (k)->noff))

#define ITEM_MAX	512

/* public_url_check - "http[s]://HOST[:PORT][/PATH]" of printable ASCII
 * without space, '?', '#', '"', '<', '>' (a trailing '/' is dropped
 * when the link is made); 0 or -1 */
static int
public_url_check(const char *v)
{
	const char	*h, *p;

	if (strncasecmp(v, "https://", 8) == 0)
		h = v + 8;
	else if (strncasecmp(v, "http://", 7) == 0)
		h = v + 7;
	else
		return -1;
	if (*h == '\0' || *h == '/' || *h == ':' || strlen(v) > 400)
		return -1;
	for (p = v; *p != '\0'; p++)
		if (*p <= ' ' || *p > '~' || strchr("?#\"<>\\", *p) != NULL)
			return -1;
	return 0;
}
#define WHY_MAX		(ITEM_MAX + 256)

struct cfg_state {
	struct config	*c;
	const char	*file;		/* for messages */
	unsigned	 lineno;
	unsigned	 seen[NKEYS];	/* line of the first occurrence, 0 = none */
};

/* why - format a reason */
static int WM_PRINTF(3, 4)
why(char *w, size_t wlen, const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	(void)vsnprintf(w, wlen, fmt, ap);
	va_end(ap);
	return -1;
}

/* value syntaxes */

/* cfg_parse_duration - N[s|m|h|d|w], bare = seconds */
int
cfg_parse_duration(const char *s, unsigned *out)
{
	uint64_t	v = 0, mul = 1;
	size_t		i;

	if (s == NULL || s[0] < '0' || s[0] > '9')
		return -1;
	for (i = 0; s[i] >= '0' && s[i] <= '9'; i++) {
		v = v * 10 + (uint64_t)(s[i] - '0');
		if (v > UINT_MAX)
			return -1;
	}
	switch (s[i]) {
	case '\0':
		break;
	case 's': mul = 1; i++; break;
	case 'm': mul = 60; i++; break;
	case 'h': mul = 3600; i++; break;
	case 'd': mul = 86400; i++; break;
	case 'w': mul = 604800; i++; break;
	default:
		return -1;
	}
	if (s[i] != '\0' || v * mul > UINT_MAX)
		return -1;
	*out = (unsigned)(v * mul);
	return 0;
}

/* cfg_parse_size - bytes with optional k/K (1024) or m/M (1048576) */
int
cfg_parse_size(const char *s, uint64_t *out)
{
	uint64_t	v = 0, mul = 1;
	size_t		i;

	if (s == NULL || s[0] < '0' || s[0] > '9')
		return -1;
	for (i = 0; s[i] >= '0' && s[i] <= '9'; i++) {
		unsigned d = (unsigned)(s[i] - '0');

		if (v > (UINT64_MAX - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	if (s[i] == 'k' || s[i] == 'K') {
		mul = 1024;
		i++;
	} else if (s[i] == 'm' || s[i] == 'M') {
		mul = 1048576;
		i++;
	}
	if (s[i] != '\0' || v > UINT64_MAX / mul)
		return -1;
	*out = v * mul;
	return 0;
}

static int	parse_uint(const char *, uint64_t *);

/* split_rate - "N per DURATION" into its two values (white space apart) */
static int
split_rate(const char *s, char *num, size_t numlen, char *dur, size_t durlen)
{
	char		 tok[3][32];
	const char	*p = s, *b;
	size_t		 n, i;

	for (i = 0; i < 3; i++) {
		while (*p == ' ' || *p == '\t')
			p++;
		for (b = p; *p != '\0' && *p != ' ' && *p != '\t'; p++)
			;
		n = (size_t)(p - b);
		if (n == 0 || n >= sizeof(tok[i]))
			return -1;
		memcpy(tok[i], b, n);
		tok[i][n] = '\0';
	}
	while (*p == ' ' || *p == '\t')
		p++;
	if (*p != '\0' || strcmp(tok[1], "per") != 0 ||
	    strlen(tok[0]) >= numlen || strlen(tok[2]) >= durlen)
		return -1;
	memcpy(num, tok[0], strlen(tok[0]) + 1);
	memcpy(dur, tok[2], strlen(tok[2]) + 1);
	return 0;
}

/* cfg_parse_rate - "N per DURATION" */
int
cfg_parse_rate(const char *s, unsigned *n, unsigned *window)
{
	char		num[32], dur[32];
	uint64_t	v;

	if (s == NULL || split_rate(s, num, sizeof(num), dur,
	    sizeof(dur)) == -1 || parse_uint(num, &v) == -1 ||
	    cfg_parse_duration(dur, window) == -1)
		return -1;
	*n = (unsigned)v;
	return 0;
}

static int
parse_uint(const char *s, uint64_t *out)
{
	uint64_t	v = 0;
	size_t		i;

	if (s[0] == '\0')
		return -1;
	for (i = 0; s[i] != '\0'; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (uint64_t)(s[i] - '0');
		if (v > UINT_MAX)
			return -1;
	}
	*out = v;
	return 0;
}

static int
parse_port(const char *s, unsigned *port)
{
	uint64_t	v;

	if (parse_uint(s, &v) == -1 || v < 1 || v > 65535)
		return -1;
	*port = (unsigned)v;
	return 0;
}

/* split_hostport - "[v6]:P", "[v6]", "v4:P", "v4", "v6" (bare, if
 * allowed); host copied out, *port NULL when absent */
static int
split_hostport(const char *item, char *host, size_t hostlen,
    const char **port, int *bracketed)
{
	const char	*e, *colon;
	size_t		 n;

	*port = NULL;
	*bracketed = 0;
	if (item[0] == '[') {
		if ((e = strchr(item, ']')) == NULL)
			return -1;
		n = (size_t)(e - item - 1);
		if (e[1] == ':')
			*port = e + 2;
		else if (e[1] != '\0')
			return -1;
		*bracketed = 1;
		item++;
	} else if ((colon = strchr(item, ':')) != NULL &&
	    strchr(colon + 1, ':') == NULL) {
		n = (size_t)(colon - item);
		*port = colon + 1;
	} else {
		n = strlen(item);
	}
	if (n == 0 || n >= hostlen)
		return -1;
	memcpy(host, item, n);
	host[n] = '\0';
	return 0;
}

/* parse_addr - IPv4:PORT or [IPv6]:PORT; defport 0 = port required */
static int
parse_addr(const char *item, unsigned defport, struct cfg_addr *a,
    char *w, size_t wlen)
{
	char		 host[INET6_ADDRSTRLEN], text[INET6_ADDRSTRLEN];
	const char	*port;
	unsigned	 p;
	int		 br, n;

	memset(a, 0, sizeof(*a));
	if (split_hostport(item, host, sizeof(host), &port, &br) == -1)
		return why(w, wlen, "invalid address \"%s\"", item);
	if (br) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)(void *)&a->ss;

		if (inet_pton(AF_INET6, host, &s6->sin6_addr) != 1)
			return why(w, wlen, "invalid address \"%s\"", item);
		s6->sin6_family = AF_INET6;
		a->len = sizeof(*s6);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)(void *)&a->ss;

		if (inet_pton(AF_INET, host, &s4->sin_addr) != 1)
			return why(w, wlen, "invalid address \"%s\"", item);
		s4->sin_family = AF_INET;
		a->len = sizeof(*s4);
	}
	if (port == NULL) {
		if (defport == 0)
			return why(w, wlen, "missing port");
		p = defport;
	} else if (parse_port(port, &p) == -1)
		return why(w, wlen, "invalid port \"%s\"", item);

	if (br) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)(void *)&a->ss;

		s6->sin6_port = htons((uint16_t)p);
		inet_ntop(AF_INET6, &s6->sin6_addr, text, sizeof(text));
		n = snprintf(a->text, sizeof(a->text), "[%s]:%u", text, p);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)(void *)&a->ss;

		s4->sin_port = htons((uint16_t)p);
		inet_ntop(AF_INET, &s4->sin_addr, text, sizeof(text));
		n = snprintf(a->text, sizeof(a->text), "%s:%u", text, p);
	}
	if (n < 0 || (size_t)n >= sizeof(a->text))
		return why(w, wlen, "invalid address \"%s\"", item);
	return 0;
}

/* parse_net - ADDR[/PREFIX] */
static int
parse_net(const char *item, struct cfg_net *nt, char *w, size_t wlen)
{
	char		 host[INET6_ADDRSTRLEN + 2], text[INET6_ADDRSTRLEN];
	const char	*slash, *h;
	uint64_t	 pfx;
	size_t		 n;
	int		 max, r;

	memset(nt, 0, sizeof(*nt));
	slash = strchr(item, '/');
	n = slash ? (size_t)(slash - item) : strlen(item);
	if (n == 0 || n >= sizeof(host))
		return why(w, wlen, "invalid network \"%s\"", item);
	memcpy(host, item, n);
	host[n] = '\0';
	h = host;
	if (host[0] == '[' && host[n - 1] == ']') {	/* tolerate [v6] */
		host[n - 1] = '\0';
		h = host + 1;
	}
	if (inet_pton(AF_INET, h, nt->addr) == 1) {
		nt->family = AF_INET;
		max = 32;
	} else if (inet_pton(AF_INET6, h, nt->addr) == 1) {
		nt->family = AF_INET6;
		max = 128;
	} else
		return why(w, wlen, "invalid network \"%s\"", item);
	nt->prefix = max;
	if (slash != NULL) {
		if (parse_uint(slash + 1, &pfx) == -1 || pfx > (uint64_t)max)
			return why(w, wlen, "invalid network \"%s\"", item);
		nt->prefix = (int)pfx;
	}
	inet_ntop(nt->family, nt->addr, text, sizeof(text));
	if (slash != NULL)
		r = snprintf(nt->text, sizeof(nt->text), "%s/%d", text,
		    nt->prefix);
	else
		r = snprintf(nt->text, sizeof(nt->text), "%s", text);
	if (r < 0 || (size_t)r >= sizeof(nt->text))
		return why(w, wlen, "invalid network \"%s\"", item);
	return 0;
}

/* check_user_name - an auth_users name: 1..255 printable octets, no ':' */
static int
check_user_name(const char *item)
{
	size_t	i, n = strlen(item);

	if (n == 0 || n > 255)
		return -1;
	for (i = 0; i < n; i++)
		if ((unsigned char)item[i] <= 0x20 ||
		    (unsigned char)item[i] == 0x7f || item[i] == ':')
			return -1;
	return 0;
}

/* check_dns - ADDR, ADDR:PORT, IPv6, [IPv6], [IPv6]:PORT */
static int
check_dns(const char *item)
{
	char		 host[INET6_ADDRSTRLEN];
	unsigned char	 a[16];
	const char	*port;
	unsigned	 p;
	int		 br;

	if (strchr(item, '[') == NULL && inet_pton(AF_INET6, item, a) == 1)
		return 0;
	if (split_hostport(item, host, sizeof(host), &port, &br) == -1)
		return -1;
	if (inet_pton(br ? AF_INET6 : AF_INET, host, a) != 1)
		return -1;
	if (port != NULL && parse_port(port, &p) == -1)
		return -1;
	return 0;
}

/* cfg_milter_addr - unix:/PATH or inet:HOST:PORT into a socket address */
int
cfg_milter_addr(const char *spec, struct sockaddr_storage *ss,
    socklen_t *len, char *err, size_t errlen)
{
	struct sockaddr_un	*un = (struct sockaddr_un *)ss;
	struct sockaddr_in	*in4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6	*in6 = (struct sockaddr_in6 *)ss;
	char			 host[INET6_ADDRSTRLEN];
	const char		*port;
	unsigned		 p;
	int			 br;

	memset(ss, 0, sizeof(*ss));
	if (strncmp(spec, "unix:", 5) == 0) {
		if (spec[5] != '/')
			return why(err, errlen, "\"%s\": an absolute path "
			    "expected after unix:", spec);
		if (strlen(spec + 5) >= sizeof(un->sun_path))
			return why(err, errlen, "\"%s\": path too long", spec);
		un->sun_family = AF_UNIX;
		memcpy(un->sun_path, spec + 5, strlen(spec + 5) + 1);
		*len = (socklen_t)sizeof(*un);
		return 0;
	}
	if (strncmp(spec, "inet:", 5) != 0)
		return why(err, errlen, "\"%s\": unix:PATH or inet:HOST:PORT "
		    "expected", spec);
	if (split_hostport(spec + 5, host, sizeof(host), &port, &br) == -1 ||
	    port == NULL || parse_port(port, &p) == -1 || p == 0)
		return why(err, errlen, "\"%s\": inet:HOST:PORT expected",
		    spec);
	if (!br && strcmp(host, "localhost") == 0)
		snprintf(host, sizeof(host), "127.0.0.1");
	if (br && inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons((uint16_t)p);
		*len = (socklen_t)sizeof(*in6);
		return 0;
	}
	if (!br && inet_pton(AF_INET, host, &in4->sin_addr) == 1) {
		in4->sin_family = AF_INET;
		in4->sin_port = htons((uint16_t)p);
		*len = (socklen_t)sizeof(*in4);
		return 0;
	}
	return why(err, errlen, "\"%s\": HOST must be an IPv4 address, "
	    "[IPv6] or localhost", spec);
}

/* cfg_milter_check - a milters entry parses */
static int
cfg_milter_check(const char *item, char *w, size_t wlen)
{
	struct sockaddr_storage	ss;
	socklen_t		len;

	return cfg_milter_addr(item, &ss, &len, w, wlen);
}

/* cfg_abspath - v resolved against dir, malloc'd */
static char *
cfg_abspath(const char *dir, const char *v)
{
	char	*p;
	size_t	 n;

	if (v[0] == '/')
		return strdup(v);
	while (v[0] == '.' && v[1] == '/')
		v += 2;
	n = strlen(dir) + 1 + strlen(v) + 1;
	if ((p = malloc(n)) == NULL)
		return NULL;
	if (strcmp(v, ".") == 0 || v[0] == '\0')
		(void)snprintf(p, n, "%s", dir);
	else if (strcmp(dir, "/") == 0)
		(void)snprintf(p, n, "/%s", v);
	else
		(void)snprintf(p, n, "%s/%s", dir, v);
	return p;
}

/* next_item - the next comma/space separated item of a list value */
static int
next_item(const char **pp, char *item, size_t itemlen)
{
	const char	*p = *pp, *s;
	size_t		 n;

	while (*p == ',' || *p == ' ' || *p == '\t')
		p++;
	if (*p == '\0') {
		*pp = p;
		return 0;
	}
	for (s = p; *p != '\0' && *p != ',' && *p != ' ' && *p != '\t'; p++)
		;
	n = (size_t)(p - s);
	*pp = p;
	if (n >= itemlen)
		return -1;
	memcpy(item, s, n);
	item[n] = '\0';
	return 1;
}

/* list_grow - make room for one more element */
static int
list_grow(void **arr, size_t n, size_t sz)
{
	void	*p;

	if ((p = realloc(*arr, (n + 1) * sz)) == NULL)
		return -1;
	*arr = p;
	return 0;
}

/* dkim_entries_free - the dkim_key entries */
static void
dkim_entries_free(struct cfg_dkim_key *e, size_t n)
{
	size_t	i;

	for (i = 0; i < n; i++) {
		free(e[i].domain);
		free(e[i].selector);
		free(e[i].alg);
		free(e[i].keyfile);
	}
	free(e);
}

/*
 * dkim_entry - "DOMAIN SELECTOR ALG KEYFILE": four fields split at white
 * space only (never at commas: the value is one entry, not a list);
 * the key file itself is read by the daemon (filter/dkim.c).
 */
static int
dkim_entry(struct config *c, const char *v, unsigned line, char *w,
    size_t wlen)
{
	struct cfg_dkim_key	 e, *arr;
	char			 f[4][ITEM_MAX];
	const char		*p = v, *s;
	size_t			 n, i;
	int			 nf = 0;

	if (*v == '\0')
		return 0;		/* "dkim_key =": no key */
	for (;;) {
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p == '\0')
			break;
		for (s = p; *p != '\0' && *p != ' ' && *p != '\t'; p++)
			;
		n = (size_t)(p - s);
		if (nf == 4 || n >= ITEM_MAX)
			return why(w, wlen, "expected DOMAIN SELECTOR ALG "
			    "KEYFILE");
		memcpy(f[nf], s, n);
		f[nf++][n] = '\0';
	}
	if (nf != 4)
		return why(w, wlen, "expected DOMAIN SELECTOR ALG KEYFILE");
	str_lower(f[0]);
	if (smtp_check_domain(f[0], strlen(f[0])) == -1 || f[0][0] == '[' ||
	    strchr(f[0], '.') == NULL)
		return why(w, wlen, "invalid signing domain \"%s\" (two labels "
		    "at least)", f[0]);
	if (dns_labels_check(f[1], 63) == -1)	/* RFC 6376 3.1 */
		return why(w, wlen, "invalid selector \"%s\"", f[1]);
	if (strcmp(f[2], "rsa-sha256") != 0 &&
	    strcmp(f[2], "ed25519-sha256") != 0)
		return why(w, wlen, "unknown algorithm \"%s\" (rsa-sha256 or "
		    "ed25519-sha256)", f[2]);
	for (i = 0; i < c->ndkim_key; i++)
		if (strcmp(c->dkim_key[i].domain, f[0]) == 0 &&
		    strcasecmp(c->dkim_key[i].selector, f[1]) == 0)
			return why(w, wlen, "selector %s of %s repeated", f[1],
			    f[0]);
	memset(&e, 0, sizeof(e));
	e.line = line;
	if ((e.domain = strdup(f[0])) == NULL ||
	    (e.selector = strdup(f[1])) == NULL ||
	    (e.alg = strdup(f[2])) == NULL ||
	    (e.keyfile = cfg_abspath(c->dir, f[3])) == NULL ||
	    (arr = realloc(c->dkim_key, (c->ndkim_key + 1) *
	    sizeof(*arr))) == NULL) {
		free(e.domain);
		free(e.selector);
		free(e.alg);
		free(e.keyfile);
		return why(w, wlen, "%s", strerror(errno));
	}
	c->dkim_key = arr;
	c->dkim_key[c->ndkim_key++] = e;
	return 0;
}

/* cfg_clear - release key k's value and make it unset / empty */
static void
cfg_clear(struct config *c, const struct cfg_key *k)
{
	switch (k->type) {
	case CT_STRING:
	case CT_PATH:
		free(*FIELD(c, k, char *));
		*FIELD(c, k, char *) = NULL;
		break;
	case CT_ADDRS:
	case CT_NETS:
	case CT_DURATIONS:
		free(*FIELD(c, k, void *));
		*FIELD(c, k, void *) = NULL;
		*COUNT(c, k) = 0;
		break;
	case CT_DOMAINS:
	case CT_STRINGS:
		strv_free(*FIELD(c, k, char **), *COUNT(c, k));
		*FIELD(c, k, char **) = NULL;
		*COUNT(c, k) = 0;
		break;
	case CT_DKIM:
		dkim_entries_free(*FIELD(c, k, struct cfg_dkim_key *),
		    *COUNT(c, k));
		*FIELD(c, k, struct cfg_dkim_key *) = NULL;
		*COUNT(c, k) = 0;
		break;
	default:
		break;
	}
}

/* fmt_duration - largest exact unit of s, m, h, d */
static void
fmt_duration(unsigned v, char *out, size_t outlen)
{
	if (v == 0)
		(void)snprintf(out, outlen, "0");
	else if (v % 86400 == 0)
		(void)snprintf(out, outlen, "%ud", v / 86400);
	else if (v % 3600 == 0)
		(void)snprintf(out, outlen, "%uh", v / 3600);
	else if (v % 60 == 0)
		(void)snprintf(out, outlen, "%um", v / 60);
	else
		(void)snprintf(out, outlen, "%us", v);
}

static void
fmt_size(uint64_t v, char *out, size_t outlen)
{
	if (v != 0 && v % 1048576 == 0)
		(void)snprintf(out, outlen, "%llum",
		    (unsigned long long)(v / 1048576));
	else if (v != 0 && v % 1024 == 0)
		(void)snprintf(out, outlen, "%lluk",
		    (unsigned long long)(v / 1024));
	else
		(void)snprintf(out, outlen, "%llu", (unsigned long long)v);
}

/* check_range - min/max of numbers, durations and sizes */
static int
check_range(const struct cfg_key *k, const char *v, uint64_t n, char *w,
    size_t wlen)
{
	char	lim[32];

	if (n < k->min) {
		if (k->type == CT_DURATION || k->type == CT_DURATIONS)
			fmt_duration((unsigned)k->min, lim, sizeof(lim));
		else
			(void)snprintf(lim, sizeof(lim), "%llu",
			    (unsigned long long)k->min);
		return why(w, wlen, "\"%s\" below minimum %s", v, lim);
	}
	if (n > k->max) {
		if (k->type == CT_DURATION || k->type == CT_DURATIONS)
			fmt_duration((unsigned)k->max, lim, sizeof(lim));
		else
			(void)snprintf(lim, sizeof(lim), "%llu",
			    (unsigned long long)k->max);
		return why(w, wlen, "\"%s\" above maximum %s", v, lim);
	}
	return 0;
}

static int
rcpt_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* load_local_rcpts - read the local_recipients file into c->local_rcpts */
static int
load_local_rcpts(struct config *c, const char *path, char *w, size_t wlen)
{
	FILE	*fp;
	char	*line = NULL, *s, *e, *h;
	char	 key[2 * (SMTP_LOCAL_MAX + SMTP_DOMAIN_MAX) + 8];
	size_t	 cap = 0;
	ssize_t	 n;
	int	 saved;

	if ((fp = fopen(path, "r")) == NULL)
		return why(w, wlen, "cannot open \"%s\": %s", path,
		    strerror(errno));
	while ((n = getline(&line, &cap, fp)) != -1) {
		for (h = line; *h != '\0'; h++)
			if (*h == '#' && (h == line || h[-1] == ' ' ||
			    h[-1] == '\t')) {
				*h = '\0';
				break;
			}
		for (s = line; *s == ' ' || *s == '\t'; s++)
			;
		e = s + strlen(s);
		while (e > s && (e[-1] == '\n' || e[-1] == '\r' ||
		    e[-1] == ' ' || e[-1] == '\t'))
			*--e = '\0';
		if (*s == '\0')
			continue;
		/* kept as compared: NFC local part, A-label domain */
		if (str_nonascii(s, strlen(s)) &&
		    intl_addr_key(s, key, sizeof(key)) == 0)
			s = key;
		if (list_grow((void **)&c->local_rcpts, c->nlocal_rcpts,
		    sizeof(char *)) == -1 ||
		    (c->local_rcpts[c->nlocal_rcpts] = strdup(s)) == NULL)
			goto fail;
		str_lower(c->local_rcpts[c->nlocal_rcpts++]);
	}
	if (ferror(fp))
		goto fail;
	free(line);
	fclose(fp);
	if (c->nlocal_rcpts > 0)
		qsort(c->local_rcpts, c->nlocal_rcpts, sizeof(char *),
		    rcpt_cmp);
	return 0;
fail:
	saved = errno;
	free(line);
	fclose(fp);
	return why(w, wlen, "cannot read \"%s\": %s", path, strerror(saved));
}

/*
 * auth_dummy_of - the setting unknown users (and locked entries) are
 * checked with: that of the dearest usable entry by the cost rule of
 * cryptset.c (the first of equals in file order), into *out (NULL when no
 * entry is usable).  When usable entries differ in scheme or estimated
 * cost, a warning for the daemon to log into *warn (else NULL): a user
 * with a cheaper hash answers sooner than an unknown one.  -1 (errno)
 * only when out of memory.
 */
static int
auth_dummy_of(const char *path, char **v, size_t nv, char **out, char **warn)
{
	const char	*h, *dear = NULL, *cheap = NULL;
	uint64_t	 cost, dcost = 0, ccost = 0;
	char		 first[16], sch[16], dsch[16], csch[16], text[512];
	size_t		 i;
	int		 mixed = 0, n;

	*out = *warn = NULL;
	for (i = 0; i < nv; i++) {
		h = strchr(v[i], ':') + 1;
		if (!cryptset_usable(h))
			continue;
		cost = cryptset_cost(h);
		cryptset_scheme(h, sch, sizeof(sch));
		if (dear == NULL) {
			dear = cheap = h;
			dcost = ccost = cost;
			memcpy(first, sch, sizeof(first));
			continue;
		}
		if (cost != dcost || cost != ccost || strcmp(sch, first) != 0)
			mixed = 1;
		if (cost > dcost) {
			dear = h;
			dcost = cost;
		}
		if (cost < ccost) {
			cheap = h;
			ccost = cost;
		}
	}
	if (dear == NULL)
		return 0;
	if ((*out = cryptset_setting(dear)) == NULL)
		return errno == ENOMEM ? -1 : 0;
	if (!mixed)
		return 0;
	cryptset_scheme(dear, dsch, sizeof(dsch));
	cryptset_scheme(cheap, csch, sizeof(csch));
	n = snprintf(text, sizeof(text), "auth_users %s: the hashes differ "
	    "in scheme or cost (cheapest %s ~%.1f ms, dearest %s ~%.1f ms a "
	    "check, estimated): unknown users are checked like the dearest, "
	    "so the reply time tells users with a cheaper hash apart; rehash "
	    "them with one scheme and cost", path, csch, (double)ccost / 1e6,
	    dsch, (double)dcost / 1e6);
	if (n < 0 || (size_t)n >= sizeof(text))
		return 0;		/* a warning cut short: none */
	if ((*warn = strdup(text)) == NULL) {
		free(*out);
		*out = NULL;
		return -1;
	}
	return 0;
}

/*
 * load_auth_users - read the auth_users file: "user:crypt-hash" lines,
 * '#' comments and blank lines ignored; a bad line or a repeated user
 * is an error naming the file and line.  Replaces c->auth_entries.
 */
static int
load_auth_users(struct config *c, const char *path, char *w, size_t wlen)
{
	FILE		*fp;
	char		*line = NULL, *s, *e, *colon, *p;
	char		**v = NULL, *dummy, *warn;
	size_t		 cap = 0, nv = 0, i, ulen;
	unsigned	 lineno = 0;
	int		 saved, r = -1;

	if ((fp = fopen(path, "r")) == NULL)
		return why(w, wlen, "cannot open \"%s\": %s", path,
		    strerror(errno));
	while (getline(&line, &cap, fp) != -1) {
		lineno++;
		for (s = line; *s == ' ' || *s == '\t'; s++)
			;
		e = s + strlen(s);
		while (e > s && (e[-1] == '\n' || e[-1] == '\r' ||
		    e[-1] == ' ' || e[-1] == '\t'))
			*--e = '\0';
		if (*s == '\0' || *s == '#')
			continue;
		if ((colon = strchr(s, ':')) == NULL || colon == s ||
		    colon[1] == '\0') {
			why(w, wlen, "%s:%u: expected \"user:crypt-hash\"",
			    path, lineno);
			goto out;
		}
		ulen = (size_t)(colon - s);
		for (p = s; *p != '\0'; p++)
			if ((unsigned char)*p <= ' ' || (unsigned char)*p >= 0x7f ||
			    (p > colon && *p == ':')) {
				why(w, wlen, "%s:%u: invalid character in "
				    "\"user:crypt-hash\"", path, lineno);
				goto out;
			}
		if (ulen > 255) {
			why(w, wlen, "%s:%u: user name too long", path, lineno);
			goto out;
		}
		for (i = 0; i < nv; i++)
			if (strncmp(v[i], s, ulen + 1) == 0) {
				why(w, wlen, "%s:%u: user \"%.*s\" repeated", path,
				    lineno, (int)ulen, s);
				goto out;
			}
		if (list_grow((void **)&v, nv, sizeof(char *)) == -1 ||
		    (v[nv] = strdup(s)) == NULL) {
			why(w, wlen, "%s", strerror(errno));
			goto out;
		}
		nv++;
	}
	if (ferror(fp)) {
		saved = errno;
		why(w, wlen, "cannot read \"%s\": %s", path, strerror(saved));
		goto out;
	}
	if (auth_dummy_of(path, v, nv, &dummy, &warn) == -1) {
		why(w, wlen, "%s", strerror(errno));
		goto out;
	}
	strv_free(c->auth_entries, c->nauth_entries);
	c->auth_entries = v;
	c->nauth_entries = nv;
	free(c->auth_dummy);
	c->auth_dummy = dummy;
	free(c->auth_warning);
	c->auth_warning = warn;
	v = NULL;
	nv = 0;
	r = 0;
out:
	strv_free(v, nv);
	free(line);
	fclose(fp);
	return r;
}

/* cfg_set - apply one value of key k (a line, or the table default) */
static int
cfg_set(struct config *c, const struct cfg_key *k, const char *v,
    char *w, size_t wlen)
{
	char		 item[ITEM_MAX];
	const char	*p = v;
	uint64_t	 n;
	unsigned	 d;
	size_t		 i, *cnt;
	int		 r;

	switch (k->type) {
	case CT_STRING:
		cfg_clear(c, k);
		if (v[0] == '\0')
			return 0;
		if (strcmp(k->key, "hostname") == 0 &&
		    smtp_check_domain(v, strlen(v)) == -1)
			return why(w, wlen, "invalid hostname \"%s\"", v);
		if (strcmp(k->key, "control_read") == 0 &&
		    strcmp(v, "group") != 0 && strcmp(v, "anyone") != 0)
			return why(w, wlen, "invalid value \"%s\" (group or "
			    "anyone)", v);
		if (strcmp(k->key, "milter_default_action") == 0 &&
		    strcmp(v, "tempfail") != 0 && strcmp(v, "accept") != 0 &&
		    strcmp(v, "reject") != 0)
			return why(w, wlen, "invalid value \"%s\" (tempfail, "
			    "accept or reject)", v);
		if (strcmp(k->key, "http_public_url") == 0 &&
		    public_url_check(v) == -1)
			return why(w, wlen, "http:// or https:// and a host "
			    "expected, without query or fragment: \"%s\"", v);
		if ((*FIELD(c, k, char *) = strdup(v)) == NULL)
			return why(w, wlen, "%s", strerror(errno));
		return 0;

	case CT_PATH:
		cfg_clear(c, k);
		if (v[0] == '\0')
			return 0;
		if ((*FIELD(c, k, char *) = cfg_abspath(c->dir, v)) == NULL)
			return why(w, wlen, "%s", strerror(errno));
		return 0;

	case CT_UINT:
		if (parse_uint(v, &n) == -1)
			return why(w, wlen, "invalid number \"%s\"", v);
		if (check_range(k, v, n, w, wlen) == -1)
			return -1;
		*FIELD(c, k, unsigned) = (unsigned)n;
		return 0;

	case CT_DURATION:
		if (cfg_parse_duration(v, &d) == -1)
			return why(w, wlen, "invalid duration \"%s\"", v);
		if (check_range(k, v, d, w, wlen) == -1)
			return -1;
		*FIELD(c, k, unsigned) = d;
		return 0;

	case CT_SIZE:
		if (cfg_parse_size(v, &n) == -1)
			return why(w, wlen, "invalid size \"%s\"", v);
		if (check_range(k, v, n, w, wlen) == -1)
			return -1;
		*FIELD(c, k, uint64_t) = n;
		return 0;

	case CT_BOOL:
		if (strcmp(v, "yes") == 0)
			*FIELD(c, k, int) = 1;
		else if (strcmp(v, "no") == 0)
			*FIELD(c, k, int) = 0;
		else
			return why(w, wlen, "invalid boolean \"%s\" (yes or no)",
			    v);
		return 0;

	case CT_ENUM:
		for (i = 0; i <= k->max; i++)
			if (strcmp(v, smtp_tls_names[i]) == 0) {
				*FIELD(c, k, enum cfg_smtp_tls) =
				    (enum cfg_smtp_tls)i;
				return 0;
			}
		return why(w, wlen, "invalid value \"%s\" (may, encrypt or verify)",
		    v);

	case CT_DKIM:
		return dkim_entry(c, v, 0, w, wlen);

	case CT_RATE: {
		char	num[32], dur[32];

		if (split_rate(v, num, sizeof(num), dur, sizeof(dur)) == -1)
			return why(w, wlen, "invalid value \"%s\" (N per "
			    "DURATION)", v);
		if (parse_uint(num, &n) == -1)
			return why(w, wlen, "invalid number \"%s\"", num);
		if (check_range(k, num, n, w, wlen) == -1)
			return -1;
		if (cfg_parse_duration(dur, &d) == -1)
			return why(w, wlen, "invalid duration \"%s\"", dur);
		if (d < 1)
			return why(w, wlen, "\"%s\" below minimum 1s", dur);
		*FIELD(c, k, unsigned) = (unsigned)n;
		*(unsigned *)(void *)((char *)c + k->noff) = d;
		return 0;
	}

	default:
		break;
	}

	/* lists: append every item of the value */
	cnt = COUNT(c, k);
	while ((r = next_item(&p, item, sizeof(item))) != 0) {
		if (r == -1)
			return why(w, wlen, "value too long");
		switch (k->type) {
		case CT_ADDRS: {
			struct cfg_addr	a, **arr = FIELD(c, k, struct cfg_addr *);

			if (k->max == 1 && *cnt > 0)
				return why(w, wlen, "one address only");
			if (parse_addr(item, (unsigned)k->min, &a, w, wlen) == -1)
				return -1;
			if (list_grow((void **)arr, *cnt, sizeof(a)) == -1)
				return why(w, wlen, "%s", strerror(errno));
			(*arr)[(*cnt)++] = a;
			break;
		}
		case CT_NETS: {
			struct cfg_net	nt, **arr = FIELD(c, k, struct cfg_net *);

			if (parse_net(item, &nt, w, wlen) == -1)
				return -1;
			if (list_grow((void **)arr, *cnt, sizeof(nt)) == -1)
				return why(w, wlen, "%s", strerror(errno));
			(*arr)[(*cnt)++] = nt;
			break;
		}
		case CT_DOMAINS:
		case CT_STRINGS: {
			char	***arr = FIELD(c, k, char **);
			char	  ace[SMTP_DOMAIN_MAX + 1];

			if (k->type == CT_DOMAINS) {
				/* U-labels are kept as A-labels (RFC 5890),
				 * the form local_domains is matched in */
				str_lower(item);
				if (intl_domain_ascii(item, ace,
				    sizeof(ace)) == -1 ||
				    smtp_check_domain(ace, strlen(ace)) == -1)
					return why(w, wlen,
					    "invalid domain \"%s\"", item);
				if (strlen(ace) >= sizeof(item))
					return why(w, wlen, "domain too long "
					    "\"%s\"", item);
				memcpy(item, ace, strlen(ace) + 1);
			} else if (strcmp(k->key, "admin_users") == 0) {
				if (check_user_name(item) == -1)
					return why(w, wlen, "invalid user "
					    "name \"%s\"", item);
			} else if (strcmp(k->key, "milters") == 0) {
				if (cfg_milter_check(item, w, wlen) == -1)
					return -1;
			} else if (check_dns(item) == -1)
				return why(w, wlen, "invalid address \"%s\"",
				    item);
			if (list_grow((void **)arr, *cnt, sizeof(char *)) == -1 ||
			    ((*arr)[*cnt] = strdup(item)) == NULL)
				return why(w, wlen, "%s", strerror(errno));
			(*cnt)++;
			break;
		}
		case CT_DURATIONS: {
			unsigned	**arr = FIELD(c, k, unsigned *);

			if (cfg_parse_duration(item, &d) == -1)
				return why(w, wlen, "invalid duration \"%s\"",
				    item);
			if (check_range(k, item, d, w, wlen) == -1)
				return -1;
			if (list_grow((void **)arr, *cnt, sizeof(d)) == -1)
				return why(w, wlen, "%s", strerror(errno));
			(*arr)[(*cnt)++] = d;
			break;
		}
		default:
			return why(w, wlen, "internal error: bad key type");
		}
	}
	if (k->type == CT_DURATIONS && *cnt == 0)
		return why(w, wlen, "missing value");
	return 0;
}

static const struct cfg_key *
cfg_lookup(const char *key)
{
	size_t	i;

	for (i = 0; i < NKEYS; i++)
		if (strcmp(cfg_keys[i].key, key) == 0)
			return &cfg_keys[i];
	return NULL;
}

/* cfg_line - one line of text; fills err on error */
static int
cfg_line(struct cfg_state *st, char *line, char *err, size_t errlen)
{
	const struct cfg_key	*k;
	char			 w[WHY_MAX];
	char			*s, *e, *eq, *key, *val, *h;
	size_t			 idx;

	for (h = line; *h != '\0'; h++)
		if (*h == '#' && (h == line || h[-1] == ' ' || h[-1] == '\t')) {
			*h = '\0';
			break;
		}
	for (s = line; *s == ' ' || *s == '\t'; s++)
		;
	e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r' ||
	    e[-1] == '\n'))
		*--e = '\0';
	if (*s == '\0')
		return 0;

	if ((eq = strchr(s, '=')) == NULL || eq == s) {
		(void)snprintf(err, errlen, "%s:%u: %s: expected \"key = value\"",
		    st->file, st->lineno, s);
		return -1;
	}
	key = s;
	for (e = eq; e > key && (e[-1] == ' ' || e[-1] == '\t'); e--)
		;
	*e = '\0';
	for (val = eq + 1; *val == ' ' || *val == '\t'; val++)
		;
	/* white space around the value is ignored: "key=#x" is "key = #x",
	 * a comment (as -n prints "key = VALUE", a value never starts so) */
	if (*val == '#')
		*val = '\0';

	if ((k = cfg_lookup(key)) == NULL) {
		(void)snprintf(err, errlen, "%s:%u: %s: unknown key", st->file,
		    st->lineno, key);
		return -1;
	}
	idx = (size_t)(k - cfg_keys);
	switch (k->type) {
	case CT_ADDRS:
		if (k->max == 1 && st->seen[idx] != 0) {	/* not a list */
			(void)snprintf(err, errlen, "%s:%u: %s: repeated",
			    st->file, st->lineno, key);
			return -1;
		}
		/* FALLTHROUGH */
	case CT_NETS:
	case CT_DOMAINS:
	case CT_STRINGS:
	case CT_DURATIONS:
	case CT_DKIM:
		if (st->seen[idx] == 0)
			cfg_clear(st->c, k);	/* replace the default */
		break;
	default:
		if (st->seen[idx] != 0) {
			(void)snprintf(err, errlen, "%s:%u: %s: repeated",
			    st->file, st->lineno, key);
			return -1;
		}
		break;
	}
	if (st->seen[idx] == 0)
		st->seen[idx] = st->lineno;

	if (k->type == CT_DKIM) {
		if (dkim_entry(st->c, val, st->lineno, w, sizeof(w)) == -1)
			goto fail;
	} else if (cfg_set(st->c, k, val, w, sizeof(w)) == -1)
		goto fail;

	if (strcmp(k->key, "local_recipients") == 0 && st->c->local_recipients &&
	    load_local_rcpts(st->c, st->c->local_recipients, w, sizeof(w)) == -1)
		goto fail;
	if (strcmp(k->key, "auth_users") == 0 && st->c->auth_users &&
	    load_auth_users(st->c, st->c->auth_users, w, sizeof(w)) == -1)
		goto fail;
	if (strcmp(k->key, "aliases") == 0 && st->c->aliases != NULL) {
		aliases_free(st->c->alias_table);
		if ((st->c->alias_table = aliases_load(st->c->aliases, w,
		    sizeof(w))) == NULL)
			goto fail;
	}
	if (strcmp(k->key, "lists") == 0 && st->c->lists != NULL) {
		lists_free(st->c->list_table);
		if ((st->c->list_table = lists_load(st->c->lists, w,
		    sizeof(w))) == NULL)
			goto fail;
	}
	/* RFC 3887 2.4: an autologout timer MUST be at least 10 minutes */
	if (strcmp(k->key, "mtqp_timeout") == 0 && st->c->mtqp_timeout < 600) {
		why(w, sizeof(w), "must be at least 10m (RFC 3887 2.4)");
		goto fail;
	}
	if ((strcmp(k->key, "tls_cert") == 0 || strcmp(k->key, "tls_key") == 0)) {
		const char *path = *FIELD(st->c, k, char *);

		if (path != NULL && access(path, R_OK) == -1) {
			why(w, sizeof(w), "cannot read \"%s\": %s", path,
			    strerror(errno));
			goto fail;
		}
	}
	return 0;
fail:
	(void)snprintf(err, errlen, "%s:%u: %s: %s", st->file, st->lineno,
	    k->key, w);
	return -1;
}

/* cfg_dir - the absolute directory of path ("(default)": the cwd) */
static char *
cfg_dir(const char *path)
{
	char		 cwd[PATH_MAX];
	const char	*slash;
	char		*d, *r;
	size_t		 n;

	if (path != NULL && path[0] == '/') {
		slash = strrchr(path, '/');
		if (slash == path)
			return strdup("/");
		return strndup(path, (size_t)(slash - path));
	}
	if (getcwd(cwd, sizeof(cwd)) == NULL)
		return NULL;
	if (path == NULL || (slash = strrchr(path, '/')) == NULL)
		return strdup(cwd);
	if ((d = strndup(path, (size_t)(slash - path))) == NULL)
		return NULL;
	r = cfg_abspath(cwd, d);
	free(d);
	if (r != NULL && (n = strlen(r)) > 2 && strcmp(r + n - 2, "/.") == 0)
		r[n - 2] = '\0';
	return r;
}

/* list_domain_local - lists_check_domains' test */
static int
list_domain_local(const char *domain, void *arg)
{
	return cfg_is_local_domain(arg, domain);
}

/* addr_is_loopback - "127.x.y.z" or "::1" (as check_dns accepts them) */
static int
addr_is_loopback(const char *item)
{
	char		 host[INET6_ADDRSTRLEN];
	unsigned char	 a[16];
	const char	*port;
	int		 br;

	if (strchr(item, '[') == NULL && inet_pton(AF_INET6, item, a) == 1)
		return memcmp(a, &in6addr_loopback, 16) == 0;
	if (split_hostport(item, host, sizeof(host), &port, &br) == -1)
		return 0;
	if (br)
		return inet_pton(AF_INET6, host, a) == 1 &&
		    memcmp(a, &in6addr_loopback, 16) == 0;
	return inet_pton(AF_INET, host, a) == 1 && a[0] == 127;
}

/*
 * dnssec_resolvers_check - with dns_dnssec = yes every resolver must be
 * on loopback (RFC 4035 4.9.3, RFC 7672 2.1: the AD bit is trusted only
 * from a local validating resolver): the `dns` servers, else the
 * nameservers of /etc/resolv.conf (none there: c-ares asks 127.0.0.1).
 * 0, or -1 with the reason in w.
 */
static int
dnssec_resolvers_check(const struct config *c, char *w, size_t wlen)
{
	FILE	*fp;
	char	 line[512], *p, *e;
	size_t	 i;
	int	 rc = 0;

	for (i = 0; i < c->ndns; i++)
		if (!addr_is_loopback(c->dns[i]))
			return why(w, wlen, "dns server %s is not on loopback: "
			    "the AD bit is trusted only from a local validating "
			    "resolver", c->dns[i]);
	if (c->ndns > 0 || (fp = fopen("/etc/resolv.conf", "r")) == NULL)
		return 0;
	while (rc == 0 && fgets(line, sizeof(line), fp) != NULL) {
		p = line + strspn(line, " \t");
		if (strncmp(p, "nameserver", 10) != 0 ||
		    (p[10] != ' ' && p[10] != '\t'))
			continue;
		p += 10;
		p += strspn(p, " \t");
		e = p + strcspn(p, " \t\r\n%");
		*e = '\0';
		if (*p != '\0' && !addr_is_loopback(p))
			rc = why(w, wlen, "nameserver %s in /etc/resolv.conf "
			    "is not on loopback: set dns to a local validating "
			    "resolver", p);
	}
	fclose(fp);
	return rc;
}

/* cfg_finish - checks that need the whole text */
static int
cfg_finish(struct cfg_state *st, char *err, size_t errlen)
{
	struct config	*c = st->c;
	char		 host[256], w[WHY_MAX];
	const struct cfg_key *k;
	size_t		 i;

	if (c->hostname == NULL) {
		if (gethostname(host, sizeof(host)) == -1)
			host[0] = '\0';
		host[sizeof(host) - 1] = '\0';
		if (host[0] == '\0')
			(void)snprintf(host, sizeof(host), "localhost");
		if ((c->hostname = strdup(host)) == NULL)
			goto nomem;
	}

	/* max_sessions_per_client unset: a quarter of max_sessions */
	k = cfg_lookup("max_sessions_per_client");
	if (st->seen[k - cfg_keys] == 0)
		c->max_sessions_per_client = c->max_sessions / 4 > 0 ?
		    c->max_sessions / 4 : 1;

	/* client_limit_exceptions unset: the relay_from networks */
	k = cfg_lookup("client_limit_exceptions");
	if (st->seen[k - cfg_keys] == 0 && c->nrelay_from > 0) {
		c->client_limit_exceptions = calloc(c->nrelay_from,
		    sizeof(*c->client_limit_exceptions));
		if (c->client_limit_exceptions == NULL)
			goto nomem;
		memcpy(c->client_limit_exceptions, c->relay_from,
		    c->nrelay_from * sizeof(*c->relay_from));
		c->nclient_limit_exceptions = c->nrelay_from;
	}

	if ((c->tls_cert == NULL) != (c->tls_key == NULL)) {
		k = cfg_lookup(c->tls_cert ? "tls_cert" : "tls_key");
		i = (size_t)(k - cfg_keys);
		if (st->seen[i])
			(void)snprintf(err, errlen, "%s:%u: %s: tls_cert and "
			    "tls_key must be set together", st->file,
			    st->seen[i], k->key);
		else
			(void)snprintf(err, errlen, "%s: %s: tls_cert and "
			    "tls_key must be set together", st->file, k->key);
		return -1;
	}

	/* "STARTTLS required" needs a certificate to offer STARTTLS with */
	if (c->mtqp_require_tls && c->tls_cert == NULL) {
		(void)snprintf(err, errlen, "%s:%u: mtqp_require_tls: needs "
		    "tls_cert and tls_key", st->file,
		    st->seen[cfg_lookup("mtqp_require_tls") - cfg_keys]);
		return -1;
	}

	/* HTTPS needs a certificate */
	if (c->http_tls && c->tls_cert == NULL) {
		(void)snprintf(err, errlen, "%s:%u: http_tls: needs "
		    "tls_cert and tls_key", st->file,
		    st->seen[cfg_lookup("http_tls") - cfg_keys]);
		return -1;
	}

	/* dns_dnssec: the AD bit is trusted from loopback resolvers only */
	if (c->dns_dnssec && dnssec_resolvers_check(c, w, sizeof(w)) == -1) {
		(void)snprintf(err, errlen, "%s:%u: dns_dnssec: %s", st->file,
		    st->seen[cfg_lookup("dns_dnssec") - cfg_keys], w);
		return -1;
	}

	/* every list in a local domain (the lists file is read at its key) */
	if (c->list_table != NULL && lists_check_domains(c->list_table,
	    list_domain_local, c, w, sizeof(w)) == -1) {
		(void)snprintf(err, errlen, "%s:%u: lists: %s", st->file,
		    st->seen[cfg_lookup("lists") - cfg_keys], w);
		return -1;
	}

	/* the user is checked by the daemon only (cfg_check_user) */
	c->user_line = st->seen[cfg_lookup("user") - cfg_keys];
	c->control_group_line = st->seen[cfg_lookup("control_group") -
	    cfg_keys];
	return 0;
nomem:
	(void)snprintf(err, errlen, "%s: %s", st->file, strerror(errno));
	return -1;
}

/* cfg_load - defaults, then the file (or the embedded text), then checks */
struct config *
cfg_load(const char *path, char *err, size_t errlen)
{
	struct cfg_state	 st;
	struct config		*c;
	FILE			*fp = NULL;
	char			 w[WHY_MAX];
	char			*line = NULL;
	const char		*p, *nl;
	size_t			 cap = 0, i, n;

	if (errlen > 0)
		err[0] = '\0';
	memset(&st, 0, sizeof(st));
	if ((c = calloc(1, sizeof(*c))) == NULL) {
		(void)snprintf(err, errlen, "%s: %s", path ? path : "(default)",
		    strerror(errno));
		return NULL;
	}
	st.c = c;
	st.file = path ? path : "(default)";
	if ((c->path = strdup(st.file)) == NULL ||
	    (c->dir = cfg_dir(path)) == NULL) {
		(void)snprintf(err, errlen, "%s: %s", st.file, strerror(errno));
		goto fail;
	}

	for (i = 0; i < NKEYS; i++) {
		if (cfg_keys[i].def == NULL)
			continue;
		if (cfg_set(c, &cfg_keys[i], cfg_keys[i].def, w, sizeof(w)) == -1) {
			(void)snprintf(err, errlen, "%s: %s: default: %s",
			    st.file, cfg_keys[i].key, w);
			goto fail;
		}
	}

	if (path == NULL) {
		for (p = cfg_default_text; *p != '\0'; p = *nl ? nl + 1 : nl) {
			if ((nl = strchr(p, '\n')) == NULL)
				nl = p + strlen(p);
			n = (size_t)(nl - p);
			free(line);
			if ((line = strndup(p, n)) == NULL)
				goto fail;
			st.lineno++;
			if (cfg_line(&st, line, err, errlen) == -1)
				goto fail;
		}
	} else {
		if ((fp = fopen(path, "r")) == NULL) {
			(void)snprintf(err, errlen, "%s: %s", path,
			    strerror(errno));
			goto fail;
		}
		while (getline(&line, &cap, fp) != -1) {
			st.lineno++;
			if (cfg_line(&st, line, err, errlen) == -1)
				goto fail;
		}
		if (ferror(fp)) {
			(void)snprintf(err, errlen, "%s: %s", path,
			    strerror(errno));
			goto fail;
		}
		fclose(fp);
		fp = NULL;
	}
	free(line);
	line = NULL;

	if (cfg_finish(&st, err, errlen) == -1)
		goto fail;
	return c;
fail:
	if (fp != NULL)
		fclose(fp);
	free(line);
	cfg_free(c);
	return NULL;
}

/* user_why - "FILE:LINE: user: " + reason (FILE: without a line for the default) */
static int WM_PRINTF(4, 5)
user_why(const struct config *c, char *err, size_t errlen, const char *fmt, ...)
{
	char	why[512];
	va_list	ap;

	va_start(ap, fmt);
	(void)vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	if (c->user_line)
		(void)snprintf(err, errlen, "%s:%u: user: %s", c->path,
		    c->user_line, why);
	else
		(void)snprintf(err, errlen, "%s: user: %s", c->path, why);
	return -1;
}

/* cfg_check_user - the daemon's user: known, not root, not shared */
int
cfg_check_user(const struct config *c, long *uid, long *gid, char *err,
    size_t errlen)
{
	struct passwd	*pw;
	uid_t		 u;
	gid_t		 g;
	int		 shared;

	errno = 0;
	if (c->user == NULL || (pw = getpwnam(c->user)) == NULL) {
		if (errno != 0 && errno != ENOENT && errno != ESRCH)
			return user_why(c, err, errlen, "cannot look up "
			    "\"%s\": %s", c->user ? c->user : "",
			    strerror(errno));
		if (c->user_line == 0)
			return user_why(c, err, errlen, "unknown user \"%s\" "
			    "(create it: useradd --system --home-dir "
			    "/nonexistent --no-create-home --shell "
			    "/usr/sbin/nologin %s)", c->user, c->user);
		return user_why(c, err, errlen, "unknown user \"%s\"",
		    c->user ? c->user : "");
	}
	u = pw->pw_uid;
	g = pw->pw_gid;
	shared = strcmp(c->user, "nobody") == 0;
	if (u == 0)
		return user_why(c, err, errlen, "\"%s\" has uid 0: waymarkd "
		    "never runs as root, allow_shared_user or not; use a "
		    "dedicated user (useradd --system waymark)", c->user);
	/* another name for nobody's uid is nobody too */
	if (!shared && (pw = getpwnam("nobody")) != NULL && pw->pw_uid == u)
		shared = 1;
	if (shared && !c->allow_shared_user)
		return user_why(c, err, errlen, "\"%s\" is shared with other "
		    "services; use a dedicated user (useradd --system "
		    "waymark) or set allow_shared_user = yes", c->user);
	if (uid != NULL)
		*uid = (long)u;
	if (gid != NULL)
		*gid = (long)g;
	return 0;
}

/*
 * cfg_control_group - the group of the control socket: control_group,
 * else the primary group of user; its gid and name (the number when the
 * group has no name).  0, or -1 with "FILE:LINE: control_group: reason"
 * (or "FILE: user: reason" when user is unknown) in err.
 */
int
cfg_control_group(const struct config *c, long *gid, char *name,
    size_t namelen, char *err, size_t errlen)
{
	struct passwd	 pw, *pp = NULL;
	struct group	 gr, *gp = NULL;
	char		 buf[4096];
	gid_t		 g;
	int		 r;

	if (c->control_group == NULL) {
		r = c->user != NULL ? getpwnam_r(c->user, &pw, buf,
		    sizeof(buf), &pp) : 0;
		if (pp == NULL)
			return user_why(c, err, errlen, "unknown user \"%s\"%s"
			    "%s (control_group is unset: the socket's group is "
			    "the user's)", c->user ? c->user : "",
			    r ? ": " : "", r ? strerror(r) : "");
		g = pw.pw_gid;
		if (getgrgid_r(g, &gr, buf, sizeof(buf), &gp) == 0 &&
		    gp != NULL)
			(void)snprintf(name, namelen, "%s", gp->gr_name);
		else
			(void)snprintf(name, namelen, "%lu", (unsigned long)g);
	} else {
		r = getgrnam_r(c->control_group, &gr, buf, sizeof(buf), &gp);
		if (gp == NULL) {
			(void)snprintf(err, errlen, "%s:%u: control_group: "
			    "unknown group \"%s\"%s%s", c->path,
			    c->control_group_line, c->control_group,
			    r ? ": " : "", r ? strerror(r) : "");
			return -1;
		}
		g = gr.gr_gid;
		(void)snprintf(name, namelen, "%s", gr.gr_name);
	}
	if (gid != NULL)
		*gid = (long)g;
	return 0;
}

/* cfg_control_read_anyone - control_read = anyone? */
int
cfg_control_read_anyone(const struct config *c)
{
	return c->control_read != NULL && strcmp(c->control_read, "anyone") == 0;
}

void
cfg_free(struct config *c)
{
	size_t	i;

	if (c == NULL)
		return;
	for (i = 0; i < NKEYS; i++)
		cfg_clear(c, &cfg_keys[i]);
	strv_free(c->local_rcpts, c->nlocal_rcpts);
	strv_free(c->auth_entries, c->nauth_entries);
	free(c->auth_dummy);
	free(c->auth_warning);
	aliases_free(c->alias_table);
	lists_free(c->list_table);
	free(c->path);
	free(c->dir);
	free(c);
}

/* cfg_print - every key, in table order, "key = value" */
void
cfg_print(const struct config *c, FILE *fp)
{
	const struct cfg_key	*k;
	char			 tmp[64];
	size_t			 i, j, n;

	for (k = cfg_keys; k < cfg_keys + NKEYS; k++) {
		if (k->type == CT_DKIM) {
			/* one line per entry (never a list); none: empty */
			const struct cfg_dkim_key *e = *CFIELD(c, k,
			    struct cfg_dkim_key *);

			n = CCOUNT(c, k);
			for (j = 0; j < n; j++)
				fprintf(fp, "%s = %s %s %s %s%s", k->key,
				    e[j].domain, e[j].selector, e[j].alg,
				    e[j].keyfile, j + 1 < n ? "\n" : "");
			if (n > 0) {
				fputc('\n', fp);
				continue;
			}
		}
		fprintf(fp, "%s = ", k->key);
		switch (k->type) {
		case CT_STRING:
		case CT_PATH:
			if (*CFIELD(c, k, char *) != NULL)
				fputs(*CFIELD(c, k, char *), fp);
			break;
		case CT_ADDRS:
			n = CCOUNT(c, k);
			for (j = 0; j < n; j++)
				fprintf(fp, "%s%s", j ? ", " : "",
				    (*CFIELD(c, k, struct cfg_addr *))[j].text);
			break;
		case CT_NETS:
			n = CCOUNT(c, k);
			for (j = 0; j < n; j++)
				fprintf(fp, "%s%s", j ? ", " : "",
				    (*CFIELD(c, k, struct cfg_net *))[j].text);
			break;
		case CT_DOMAINS:
		case CT_STRINGS:
			n = CCOUNT(c, k);
			for (j = 0; j < n; j++)
				fprintf(fp, "%s%s", j ? ", " : "",
				    (*CFIELD(c, k, char **))[j]);
			break;
		case CT_UINT:
			fprintf(fp, "%u", *CFIELD(c, k, unsigned));
			break;
		case CT_DURATION:
			fmt_duration(*CFIELD(c, k, unsigned), tmp, sizeof(tmp));
			fputs(tmp, fp);
			break;
		case CT_DURATIONS:
			n = CCOUNT(c, k);
			for (j = 0; j < n; j++) {
				fmt_duration((*CFIELD(c, k, unsigned *))[j], tmp,
				    sizeof(tmp));
				fprintf(fp, "%s%s", j ? ", " : "", tmp);
			}
			break;
		case CT_SIZE:
			fmt_size(*CFIELD(c, k, uint64_t), tmp, sizeof(tmp));
			fputs(tmp, fp);
			break;
		case CT_BOOL:
			fputs(*CFIELD(c, k, int) ? "yes" : "no", fp);
			break;
		case CT_ENUM:
			i = (size_t)*CFIELD(c, k, enum cfg_smtp_tls);
			fputs(i <= k->max ? smtp_tls_names[i] : "?", fp);
			break;
		case CT_RATE:
			fmt_duration(*(const unsigned *)(const void *)
			    ((const char *)c + k->noff), tmp, sizeof(tmp));
			fprintf(fp, "%u per %s", *CFIELD(c, k, unsigned), tmp);
			break;
		case CT_DKIM:
			break;
		}
		fputc('\n', fp);
	}
}

/* net_match - addr (4 or 16 bytes) inside nt? */
static int
net_match(const struct cfg_net *nt, const unsigned char *addr)
{
	int	full = nt->prefix / 8, rem = nt->prefix % 8;
	unsigned char mask;

	if (memcmp(nt->addr, addr, (size_t)full) != 0)
		return 0;
	if (rem == 0)
		return 1;
	mask = (unsigned char)(0xff << (8 - rem));
	return (nt->addr[full] & mask) == (addr[full] & mask);
}

/* nets_match - address sa inside one of nets (IPv4-mapped IPv6 as IPv4)? */
static int
nets_match(const struct cfg_net *nets, size_t n, const struct sockaddr *sa)
{
	const struct sockaddr_in6	*s6;
	unsigned char			 a4[4], a6[16];
	int				 have4 = 0, have6 = 0;
	size_t				 i;

	if (sa == NULL)
		return 0;
	if (sa->sa_family == AF_INET) {
		memcpy(a4, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, 4);
		have4 = 1;
	} else if (sa->sa_family == AF_INET6) {
		s6 = (const struct sockaddr_in6 *)(const void *)sa;
		memcpy(a6, &s6->sin6_addr, 16);
		have6 = 1;
		if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
			memcpy(a4, a6 + 12, 4);
			have4 = 1;
		}
	} else
		return 0;

	for (i = 0; i < n; i++) {
		if (nets[i].family == AF_INET && have4 && net_match(&nets[i], a4))
			return 1;
		if (nets[i].family == AF_INET6 && have6 && net_match(&nets[i], a6))
			return 1;
	}
	return 0;
}

/* cfg_parse_net - ADDR[/PREFIX], as relay_from takes it */
int
cfg_parse_net(const char *s, struct cfg_net *out)
{
	char	w[WHY_MAX];

	return parse_net(s, out, w, sizeof(w));
}

/* cfg_nets_match - address sa inside one of nets? */
int
cfg_nets_match(const struct cfg_net *nets, size_t n, const struct sockaddr *sa)
{
	return nets_match(nets, n, sa);
}

/* cfg_relay_allowed - client in relay_from? */
int
cfg_relay_allowed(const struct config *c, const struct sockaddr *sa)
{
	return nets_match(c->relay_from, c->nrelay_from, sa);
}

/* cfg_client_exempt - client in client_limit_exceptions? */
int
cfg_client_exempt(const struct config *c, const struct sockaddr *sa)
{
	return nets_match(c->client_limit_exceptions,
	    c->nclient_limit_exceptions, sa);
}

/* cfg_is_local_domain - case-insensitive; a trailing dot is ignored;
 * a U-label domain is matched as its A-labels (common/intl.c) */
int
cfg_is_local_domain(const struct config *c, const char *domain)
{
	char	ace[SMTP_DOMAIN_MAX + 1];
	size_t	i, n;

	if (domain == NULL)
		return 0;
	if (str_nonascii(domain, strlen(domain))) {
		if (intl_domain_ascii(domain, ace, sizeof(ace)) == -1)
			return 0;
		domain = ace;
	}
	n = strlen(domain);
	if (n > 0 && domain[n - 1] == '.')
		n--;
	for (i = 0; i < c->nlocal_domains; i++)
		if (strlen(c->local_domains[i]) == n &&
		    strncasecmp(c->local_domains[i], domain, n) == 0)
			return 1;
	return 0;
}

/* cfg_local_rcpt_ok - local@domain listed in local_recipients (or unset)? */
int
cfg_local_rcpt_ok(const struct config *c, const char *local,
    const char *domain)
{
	char	 addr[SMTP_LOCAL_MAX + 3 + 1 + SMTP_DOMAIN_MAX + 1];
	char	 ikey[2 * (SMTP_LOCAL_MAX + SMTP_DOMAIN_MAX) + 8];
	char	*key = addr;
	int	 n;

	if (c->local_recipients == NULL)
		return 1;
	n = snprintf(addr, sizeof(addr), "%s@%s", local, domain);
	if (n < 0 || (size_t)n >= sizeof(addr))
		return 0;
	if (str_nonascii(addr, (size_t)n) &&
	    intl_addr_key(addr, ikey, sizeof(ikey)) == 0)
		key = ikey;
	str_lower(key);
	return c->nlocal_rcpts > 0 && bsearch(&key, c->local_rcpts,
	    c->nlocal_rcpts, sizeof(char *), rcpt_cmp) != NULL;
}

/* cfg_auth_hash - the hash after "user:" in auth_users (case-sensitive) */
const char *
cfg_auth_hash(const struct config *c, const char *user)
{
	size_t	i, n;

	if (user == NULL)
		return NULL;
	n = strlen(user);
	for (i = 0; i < c->nauth_entries; i++)
		if (strncmp(c->auth_entries[i], user, n) == 0 &&
		    c->auth_entries[i][n] == ':')
			return c->auth_entries[i] + n + 1;
	return NULL;
}

/* cfg_auth_dummy - what an unknown user's password is hashed with */
const char *
cfg_auth_dummy(const struct config *c)
{
	return c->auth_dummy != NULL ? c->auth_dummy : "$6$wmdummysalt$";
}

/* cfg_auth_lookup - the user's usable hash (1), else the dummy (0) */
int
cfg_auth_lookup(const struct config *c, const char *user,
    const char **setting)
{
	const char	*h = cfg_auth_hash(c, user);

	if (h != NULL && cryptset_usable(h)) {
		*setting = h;
		return 1;
	}
	*setting = cfg_auth_dummy(c);
	return 0;
}
