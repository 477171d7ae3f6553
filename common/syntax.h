/*
 * syntax.h - RFC 5321 syntax shared by the server, the client and the CLI:
 * command-line splitting, paths (reverse-path / forward-path), domains,
 * the table-driven ESMTP parameter parser, xtext (RFC 3461 4), base64,
 * and date-times (RFC 3339, RFC 5322; in common/date.c).
 * Parsers take (ptr, len), never write into their input, and on error set
 * *why to a static reason string suitable for a reply text.
 */
#ifndef WAYMARK_SYNTAX_H
#define WAYMARK_SYNTAX_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define SMTP_LOCAL_MAX	64
#define SMTP_DOMAIN_MAX	255
#define SMTP_PATH_MAX	256

struct mailpath {
	int	null;			/* "<>" */
	int	postmaster;		/* "<Postmaster>" without domain */
	int	quoted;			/* local part was a Quoted-string */
	char	local[SMTP_LOCAL_MAX + 3];	/* as received (quotes kept), case kept */
	char	domain[SMTP_DOMAIN_MAX + 1];	/* as received; "" for null/postmaster */
	int	utf8;			/* RFC 6531: non-ASCII (well-formed UTF-8) seen */
	int	badutf8;		/* the parse failed on ill-formed UTF-8 */
};

/*
 * smtp_split_command - split a command line (no CRLF) into its verb and
 * argument.  Trailing SP/HTAB are ignored; the verb ends at the first SP
 * and is copied upper-cased, NUL-terminated, into verb (verblen bytes);
 * *arg, *arglen = the rest with leading SPs skipped (lenient; points into
 * line, empty when there is none).  Returns 0, or -1 when the line is
 * empty, contains a NUL, or the verb is not a keyword (letters, digits,
 * '-') or does not fit in verb.  Whether the verb is known is the
 * caller's business.
 */
int	smtp_split_command(const char *line, size_t len, char *verb,
	    size_t verblen, const char **arg, size_t *arglen);
/*
 * smtp_parse_mail_arg - the argument of MAIL / RCPT: prefix ("FROM:" or
 * "TO:", case-insensitive), optional SPs (lenient), a path as
 * smtp_parse_path parses it, then SP and the parameters (*params /
 * *paramslen, leading SPs skipped; empty when none).  Returns 0; -1 on a
 * bad path (*why from smtp_parse_path); -2 on a missing prefix or no SP
 * between the path and the parameters (501 5.5.4 "Syntax:").
 */
int	smtp_parse_mail_arg(const char *prefix, const char *arg, size_t len,
	    struct mailpath *p, const char **params, size_t *paramslen,
	    const char **why);

/*
 * smtp_parse_path - parse "<...>" at s (len bytes): "<>", source routes
 * (ignored), Dot-string / Quoted-string local parts, Domain or
 * address-literal.  Returns bytes consumed (up to and including '>'),
 * or -1 with *why set.  RFC 6531 3.3: well-formed UTF-8 (RFC 3629) is
 * accepted in atoms, quoted strings and domain labels (U-labels, checked
 * by libidn2 later, common/intl.c) and sets p->utf8; whether it is
 * allowed (the SMTPUTF8 parameter) is the caller's business.  Ill-formed
 * UTF-8 fails with p->badutf8 set.
 */
int	smtp_parse_path(const char *s, size_t len, struct mailpath *p,
	    const char **why);
/* mime_check_token - 0 when s (len > 0) is an RFC 2045 token: US-ASCII
 * without SPACE, CTLs or tspecials ()<>@,;:\"/[]?= (RFC 6729 state values) */
int	mime_check_token(const char *s, size_t len);
/* dns_labels_check - LDH labels of 1-63 joined by dots, at most maxlen
 * octets (a DKIM selector or signing domain); 0 or -1 */
int	dns_labels_check(const char *s, size_t maxlen);
/* smtp_check_domain - 0 when s is a valid Domain or address-literal */
int	smtp_check_domain(const char *s, size_t len);
/* smtp_path_string - "local@domain" (no brackets) or "" for null */
int	smtp_path_string(const struct mailpath *p, char *out, size_t outlen);
/* smtp_local_unsafe - 1 when the local part cannot be a directory name
 * (contains '/', starts with '.', is quoted, or is empty) */
int	smtp_local_unsafe(const struct mailpath *p);

/*
 * ESMTP parameters.  One table {keyword, where, ehlo bit, parser}; a
 * keyword whose bit is not in `enabled` is "unknown" (555 5.5.4) and not
 * advertised.  Later issues add the FUTURERELEASE rows.
 */
enum { PARAM_MAIL = 1, PARAM_RCPT = 2 };
#define EXT_SIZE	0x0001u
#define EXT_8BITMIME	0x0002u
#define EXT_DSN		0x0004u		/* RFC 3461: RET ENVID NOTIFY ORCPT */
#define EXT_MTRK	0x0008u		/* RFC 3885: MTRK */
#define EXT_AUTH	0x0010u		/* RFC 4954 5: AUTH= on MAIL */
#define EXT_DELIVERBY	0x0020u		/* RFC 2852: BY= on MAIL */
#define EXT_FUTURERELEASE 0x0040u	/* RFC 4865: HOLDFOR HOLDUNTIL */
#define EXT_SMTPUTF8	0x0200u		/* RFC 6531: SMTPUTF8 on MAIL; UTF-8
					   in esmtp-value (ORCPT=utf-8;...) */
#define EXT_REQUIRETLS	0x0400u		/* RFC 8689: REQUIRETLS on MAIL (in TLS only) */

/* RFC 3461 limits and values (same values as DSN_NOTIFY_* / DSN_RET_* in
 * queue/queue.h; smtpd checks that at compile time) */
#define ESMTP_ENVID_MAX		100	/* decoded ENVID */
#define ESMTP_ORCPT_MAX		500	/* "ORCPT=" value as sent */
#define ESMTP_MTRK_CERT_LEN	27	/* base64(SHA-1) without padding */
#define ESMTP_MTRK_TIMEOUT_MAX	999999999L	/* 1*9DIGIT */
#define ESMTP_NOTIFY_NEVER	0x1u
#define ESMTP_NOTIFY_SUCCESS	0x2u
#define ESMTP_NOTIFY_FAILURE	0x4u
#define ESMTP_NOTIFY_DELAY	0x8u
enum { ESMTP_RET_NONE = 0, ESMTP_RET_FULL, ESMTP_RET_HDRS };
/* RFC 2852 by-mode / by-trace bits (the values of BY_* in queue/queue.h) */
#define ESMTP_BY_MAX		999999999L	/* by-time = ["-" / "+"] 1*9DIGIT */
#define ESMTP_BY_RETURN		0x1u	/* "R" */
#define ESMTP_BY_NOTIFY		0x2u	/* "N" */
#define ESMTP_BY_TRACE		0x4u	/* "T" */

enum body_type { BODY_UNSPEC = 0, BODY_7BIT, BODY_8BITMIME, BODY_BINARYMIME };

struct esmtp_params {
	/* MAIL */
	int		has_size;
	uint64_t	size;
	enum body_type	body;
	int		ret;		/* ESMTP_RET_* */
	int		has_envid;
	char		envid[ESMTP_ENVID_MAX + 1];	/* xtext-decoded */
	int		has_mtrk;
	char		mtrk_cert[ESMTP_MTRK_CERT_LEN + 1];
	long		mtrk_timeout;	/* 1..999999999; 0 = not given */
	int		has_auth;	/* AUTH= given (value checked, not used) */
	int		has_by;		/* RFC 2852 BY= given */
	long		by_time;	/* -999999999..999999999 (> 0 for R) */
	unsigned	by_mode;	/* ESMTP_BY_RETURN or _NOTIFY, | _TRACE */
	int		hold;		/* RFC 4865: 0, HOLD_FOR or HOLD_UNTIL */
	long		hold_for;	/* HOLDFOR seconds, 1..999999999 */
	time_t		hold_until;	/* HOLDUNTIL, Unix time (UTC) */
	char		hold_text[40];	/* HOLDUNTIL's value as given */
	int		smtputf8;	/* RFC 6531 SMTPUTF8 given */
	int		requiretls;	/* RFC 8689 2: REQUIRETLS given */
	/* RCPT */
	unsigned	notify;		/* ESMTP_NOTIFY_* bits; 0 = not given */
	int		has_orcpt;
	char		orcpt[ESMTP_ORCPT_MAX + 1];	/* "addr-type;decoded" */
};

enum { HOLD_FOR = 1, HOLD_UNTIL = 2 };

/* rfc3339_parse - "YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM)" to Unix
 * time (UTC); 0 or -1.  rfc3339_format - "YYYY-MM-DDTHH:MM:SSZ". */
int	rfc3339_parse(const char *s, size_t len, time_t *out);
int	rfc3339_format(time_t t, char *out, size_t outlen);
/* rfc5322_date_parse - an RFC 5322 3.3 date-time, obsolete forms of 4.3
 * and comments included, to Unix time; 0 or -1 (*out unchanged) */
int	rfc5322_date_parse(const char *s, size_t len, time_t *out);

enum param_result {
	PARAM_OK = 0,
	PARAM_SYNTAX = -1,	/* 501 5.5.4 */
	PARAM_UNKNOWN = -2,	/* 555 5.5.4 */
	PARAM_REPEATED = -3,	/* 501 5.5.4 */
};

/*
 * esmtp_parse_params - parse the SP-separated "KEY[=VALUE]" list at s.
 * where is PARAM_MAIL or PARAM_RCPT.  Fills *out (zeroed first).  On
 * failure *why names the offending parameter/reason.
 * Cross-parameter rule (RFC 3885 3.2): MTRK on MAIL needs an ENVID of
 * the form local-envid "@" fqhn, else PARAM_SYNTAX; HOLDFOR with
 * HOLDUNTIL is PARAM_SYNTAX (RFC 4865 4.2: one hold-param).
 * Values not accepted: MTRK timeout 0 (nothing left to track), ORCPT
 * whose decoded address is empty or has control characters (non-ASCII
 * too for rfc822), ENVID over 100 decoded octets or not printable ASCII,
 * BY with by-mode R and a by-time <= 0 (RFC 2852 4: a syntax error).
 * The DELIVERBY minimum (555 5.5.4) is the caller's check.
 */
enum param_result esmtp_parse_params(const char *s, size_t len, int where,
	    unsigned enabled, struct esmtp_params *out, const char **why);

/* xtext_decode - decode into out (NUL-terminated); -1 on bad syntax or overflow */
int	xtext_decode(const char *s, size_t len, char *out, size_t outlen);
/* xtext_encode - encode into out (NUL-terminated); -1 on overflow */
int	xtext_encode(const char *s, size_t len, char *out, size_t outlen);
/* envid_ok - 1 when s is 1..ESMTP_ENVID_MAX printable ASCII characters
 * without space (a decoded ENVID as typed or linked) */
int	envid_ok(const char *s);
/* base64_encode - returns the output length, -1 on overflow (out NUL-terminated) */
int	base64_encode(const unsigned char *in, size_t len, char *out, size_t outlen);
/* base64_decode - strict; returns decoded length or -1 */
int	base64_decode(const char *in, size_t len, unsigned char *out, size_t outlen);
/* mtrk_certifier - RFC 3885 3.1: out = base64(SHA-1(a)) without padding
 * (27 characters + NUL); 0 or -1 */
int	mtrk_certifier(const unsigned char *a, size_t len, char out[28]);
/* mtrk_certifier_valid - 1 when s (len) is 27 base64 chars encoding 20 octets */
int	mtrk_certifier_valid(const char *s, size_t len);

#endif
