#include "config.h"
/*
 * syntax.c - RFC 5321 syntax shared by the server, the client and the CLI.
 * Owns: command-line splitting (verb / argument, RFC 5321 4.1.1), the
 *       MAIL/RCPT argument ("FROM:"/"TO:" + path + parameters),
 *       Path / Reverse-path / Forward-path parsing (RFC 5321 4.1.2,
 *       limits of 4.5.3.1), Domain and address-literal checks (4.1.3),
 *       the table-driven ESMTP parameter parser (4.1.2 Mail-parameters,
 *       one row per keyword: SIZE, BODY, RFC 3461 RET/ENVID/NOTIFY/ORCPT,
 *       RFC 3885 MTRK), xtext (RFC 3461 4), base64 (RFC 4648 4) and
 *       the MTRK certifier (base64(SHA-1(A)) unpadded, RFC 3885 3.1).
 * Invariants: parsers take (ptr, len), never write into their input and
 *       never read past len; on error *why is a static reply text.
 * Not here: what a valid path means for the transaction (smtpd/),
 *       choosing reply codes beyond the param_result classes, or the
 *       date-times of HOLDUNTIL and RFC 5322 (common/date.c).
 */

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>

#include "common/intl.h"
#include "common/syntax.h"
#include "common/util.h"

#define WHY_SYNTAX	"Syntax error in mailbox address"
#define WHY_PATHLONG	"Path too long"
#define WHY_LOCALLONG	"Local part too long"
#define WHY_DOMLONG	"Domain too long"
#define WHY_DOMAIN	"Invalid domain"
#define WHY_ROUTE	"Invalid source route"
#define WHY_NODOMAIN	"Domain missing in mailbox address"
#define WHY_CMDSYNTAX	"Syntax error"
#define WHY_UTF8	"Invalid UTF-8"

static int
is_alpha(int c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

static int
is_digit(int c)
{
	return c >= '0' && c <= '9';
}

static int
is_hex(int c)
{
	return is_digit(c) || (c >= 'A' && c <= 'F') || (c >= 'a' && c <= 'f');
}

/* is_atext - RFC 5322 atext */
static int
is_atext(int c)
{
	if (is_alpha(c) || is_digit(c))
		return 1;
	return c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL;
}

/* check_ipv4 - Snum 3("." Snum), each 1*3DIGIT <= 255 */
static int
check_ipv4(const char *s, size_t len)
{
	size_t	i = 0;
	int	part, ndig, val;

	for (part = 0; part < 4; part++) {
		if (part > 0) {
			if (i >= len || s[i] != '.')
				return -1;
			i++;
		}
		for (ndig = 0, val = 0; i < len && is_digit(s[i]); i++) {
			if (++ndig > 3)
				return -1;
			val = val * 10 + (s[i] - '0');
		}
		if (ndig == 0 || val > 255)
			return -1;
	}
	return i == len ? 0 : -1;
}

/* check_ldh - Ldh-str: *(ALPHA / DIGIT / "-") Let-dig (may be empty: no) */
static int
check_ldh_label(const char *s, size_t len)
{
	size_t	i;

	if (len == 0 || len > 63)
		return -1;
	if (!is_alpha(s[0]) && !is_digit(s[0]))
		return -1;
	if (!is_alpha(s[len - 1]) && !is_digit(s[len - 1]))
		return -1;
	for (i = 0; i < len; i++)
		if (!is_alpha(s[i]) && !is_digit(s[i]) && s[i] != '-')
			return -1;
	return 0;
}

/* check_literal - the inside of "[...]" */
static int
check_literal(const char *s, size_t len)
{
	char	buf[64];
	unsigned char a6[16];
	size_t	i, tag;

	if (len == 0)
		return -1;
	if (is_digit(s[0]))
		return check_ipv4(s, len);
	if (len > 5 && strncasecmp(s, "IPv6:", 5) == 0) {
		if (len - 5 >= sizeof(buf))
			return -1;
		for (i = 5; i < len; i++)	/* inet_pton wants a C string */
			if (!is_hex(s[i]) && s[i] != ':' && s[i] != '.')
				return -1;
		memcpy(buf, s + 5, len - 5);
		buf[len - 5] = '\0';
		return inet_pton(AF_INET6, buf, a6) == 1 ? 0 : -1;
	}
	/* General-address-literal = Standardized-tag ":" 1*dcontent */
	for (tag = 0; tag < len && s[tag] != ':'; tag++)
		;
	if (tag == len || tag + 1 == len)
		return -1;
	if (check_ldh_label(s, tag) == -1)
		return -1;
	for (i = tag + 1; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c < 33 || c > 126 || c == '[' || c == '\\' || c == ']')
			return -1;
	}
	return 0;
}

/* mime_check_token - RFC 2045 5.1 token */
int
mime_check_token(const char *s, size_t len)
{
	size_t	i;

	if (s == NULL || len == 0)
		return -1;
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c <= 0x20 || c >= 0x7f || strchr("()<>@,;:\\\"/[]?=", c))
			return -1;
	}
	return 0;
}

/*
 * dns_labels_check - s is sub-domain *("." sub-domain) (letters, digits,
 * inner hyphens; labels of 1-63), at most maxlen octets in all: a DKIM
 * selector or signing domain; 0 or -1
 */
int
dns_labels_check(const char *s, size_t maxlen)
{
	size_t	n = 0;

	if (*s == '\0' || strlen(s) > maxlen)
		return -1;
	for (; ; s++) {
		if (*s == '.' || *s == '\0') {
			if (n == 0 || n > 63 || s[-1] == '-')
				return -1;
			if (*s == '\0')
				return 0;
			n = 0;
			continue;
		}
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		    (*s >= '0' && *s <= '9') || (*s == '-' && n > 0)))
			return -1;
		n++;
	}
}

/* smtp_check_domain - 0 when s is a valid Domain or address-literal */
int
smtp_check_domain(const char *s, size_t len)
{
	size_t	i, start;

	if (len == 0 || len > SMTP_DOMAIN_MAX)
		return -1;
	if (s[0] == '[') {
		if (len < 3 || s[len - 1] != ']')
			return -1;
		return check_literal(s + 1, len - 2);
	}
	for (i = start = 0; i <= len; i++) {
		if (i == len || s[i] == '.') {
			if (check_ldh_label(s + start, i - start) == -1)
				return -1;
			start = i + 1;
		}
	}
	return 0;
}

/* scan_domain - length of the Domain / address-literal at s (stops at
 * a delimiter); the result still needs smtp_check_domain() */
static size_t
scan_domain(const char *s, size_t len)
{
	size_t	i;

	if (len > 0 && s[0] == '[') {
		for (i = 1; i < len && s[i] != ']'; i++)
			;
		return i < len ? i + 1 : len;
	}
	for (i = 0; i < len; i++)
		if (s[i] == '>' || s[i] == ',' || s[i] == ':')
			break;
	return i;
}

/*
 * path_utf8 - the well-formed UTF-8 sequence at s[i] (an octet >= 0x80):
 * its length, p->utf8 set; 0 with p->badutf8 and *why set when ill-formed
 */
static size_t
path_utf8(const char *s, size_t len, size_t i, struct mailpath *p,
    const char **why)
{
	size_t	k = utf8_len((const unsigned char *)s + i, len - i);

	if (k == 0) {
		p->badutf8 = 1;
		*why = WHY_UTF8;
		return 0;
	}
	p->utf8 = 1;
	return k;
}

/*
 * path_domain - a Domain of LDH labels and U-labels (RFC 6531 3.3
 * sub-domain =/ U-label: any label with a non-ASCII octet is taken here
 * when it is well-formed UTF-8 without ASCII other than LDH; libidn2
 * judges it later), or an address-literal; 0 or -1
 */
static int
path_domain(const char *s, size_t len, struct mailpath *p, const char **why)
{
	size_t	i, start, k, j;
	int	intl;

	if (!str_nonascii(s, len))
		return smtp_check_domain(s, len);
	if (s[0] == '[')
		return -1;
	for (i = start = 0, intl = 0; i <= len; i++) {
		if (i == len || s[i] == '.') {
			if (!intl &&
			    check_ldh_label(s + start, i - start) == -1)
				return -1;
			if (intl) {
				if (i == start || i - start > 252)
					return -1;
				for (j = start; j < i; j++)
					if ((unsigned char)s[j] < 0x80 &&
					    !is_alpha(s[j]) && !is_digit(s[j]) &&
					    s[j] != '-')
						return -1;
			}
			start = i + 1;
			intl = 0;
			continue;
		}
		if ((unsigned char)s[i] >= 0x80) {
			if ((k = path_utf8(s, len, i, p, why)) == 0)
				return -1;
			intl = 1;
			i += k - 1;
		}
	}
	return 0;
}

/*
 * smtp_parse_path - parse "<...>" (RFC 5321 4.1.2 Path / "<>"); returns
 * the bytes consumed including '>', or -1 with *why set
 */
int
smtp_parse_path(const char *s, size_t len, struct mailpath *p,
    const char **why)
{
	size_t	i, start, n;

	memset(p, 0, sizeof(*p));
	*why = WHY_SYNTAX;
	if (len < 2 || s[0] != '<')
		return -1;
	i = 1;
	if (s[i] == '>') {
		p->null = 1;
		return 2;
	}

	/* A-d-l ":" - accepted and ignored */
	if (s[i] == '@') {
		for (;;) {
			if (i >= len || s[i] != '@') {
				*why = WHY_ROUTE;
				return -1;
			}
			i++;
			n = scan_domain(s + i, len - i);
			if (smtp_check_domain(s + i, n) == -1) {
				*why = WHY_ROUTE;
				return -1;
			}
			i += n;
			if (i < len && s[i] == ',') {
				i++;
				continue;
			}
			if (i < len && s[i] == ':') {
				i++;
				break;
			}
			*why = WHY_ROUTE;
			return -1;
		}
		if (i > SMTP_PATH_MAX) {
			*why = WHY_PATHLONG;
			return -1;
		}
	}

	/* Local-part */
	start = i;
	if (i < len && s[i] == '"') {
		p->quoted = 1;
		for (i++; i < len && s[i] != '"'; i++) {
			unsigned char c = (unsigned char)s[i];

			if (c == '\\') {
				if (++i >= len)
					return -1;
				c = (unsigned char)s[i];
				if (c < 32 || c > 126)
					return -1;
			} else if (c >= 0x80) {	/* RFC 6531 qtextSMTP */
				if ((n = path_utf8(s, len, i, p, why)) == 0)
					return -1;
				i += n - 1;
			} else if (c < 32 || c > 126) {
				return -1;
			}
		}
		if (i >= len)
			return -1;
		i++;			/* closing quote */
		if (i - start - 2 > SMTP_LOCAL_MAX) {
			*why = WHY_LOCALLONG;
			return -1;
		}
	} else {
		for (;;) {
			size_t atom = i;

			while (i < len) {
				if (is_atext((unsigned char)s[i]))
					i++;
				else if ((unsigned char)s[i] >= 0x80) {
					/* RFC 6531 atext =/ UTF8-non-ascii */
					if ((n = path_utf8(s, len, i, p,
					    why)) == 0)
						return -1;
					i += n;
				} else
					break;
			}
			if (i == atom)
				return -1;	/* empty atom */
			if (i < len && s[i] == '.') {
				i++;
				continue;
			}
			break;
		}
		if (i - start > SMTP_LOCAL_MAX) {
			*why = WHY_LOCALLONG;
			return -1;
		}
	}
	n = i - start;
	memcpy(p->local, s + start, n);
	p->local[n] = '\0';

	if (i >= len)
		return -1;
	if (s[i] == '>') {
		/* "<Postmaster>" (RCPT only; the caller decides) */
		if (!p->quoted && strcasecmp(p->local, "postmaster") == 0) {
			p->postmaster = 1;
			return (int)i + 1;
		}
		*why = WHY_NODOMAIN;
		return -1;
	}
	if (s[i] != '@')
		return -1;
	i++;

	/* Domain / address-literal */
	start = i;
	n = scan_domain(s + i, len - i);
	if (n > SMTP_DOMAIN_MAX) {
		*why = WHY_DOMLONG;
		return -1;
	}
	if (path_domain(s + start, n, p, why) == -1) {
		if (!p->badutf8)
			*why = WHY_DOMAIN;
		return -1;
	}
	i += n;
	if (i >= len || s[i] != '>') {
		*why = n == 0 ? WHY_DOMAIN : WHY_SYNTAX;
		return -1;
	}
	memcpy(p->domain, s + start, n);
	p->domain[n] = '\0';
	i++;
	if (i > SMTP_PATH_MAX) {
		*why = WHY_PATHLONG;
		return -1;
	}
	return (int)i;
}

/* smtp_path_string - "local@domain", "Postmaster", or "" for <> */
int
smtp_path_string(const struct mailpath *p, char *out, size_t outlen)
{
	int	n;

	if (p->null)
		n = snprintf(out, outlen, "%s", "");
	else if (p->domain[0] == '\0')
		n = snprintf(out, outlen, "%s", p->local);
	else
		n = snprintf(out, outlen, "%s@%s", p->local, p->domain);
	if (n < 0 || (size_t)n >= outlen)
		return -1;
	return 0;
}

/* smtp_local_unsafe - the local part cannot name a directory */
int
smtp_local_unsafe(const struct mailpath *p)
{
	return p->quoted || p->local[0] == '\0' || p->local[0] == '.' ||
	    strchr(p->local, '/') != NULL;
}

/*
 * Command lines (RFC 5321 4.1.1: verb, SP, argument).
 * Leniency (documented in smtpd_cmd.c): trailing SP/HTAB on the line and
 * several SPs after the verb or after "FROM:"/"TO:" are accepted.
 */

/* is_keyword - RFC 5321 4.1.1 verbs: letters, digits and '-' */
static int
is_keyword(const char *s, size_t len)
{
	size_t	i;

	if (len == 0)
		return 0;
	for (i = 0; i < len; i++)
		if (!is_alpha(s[i]) && !is_digit(s[i]) && s[i] != '-')
			return 0;
	return 1;
}

/* smtp_split_command - verb (upper-cased) and argument of a command line */
int
smtp_split_command(const char *line, size_t len, char *verb, size_t verblen,
    const char **arg, size_t *arglen)
{
	size_t	vlen, i;

	if (verblen > 0)
		verb[0] = '\0';
	*arg = line;
	*arglen = 0;
	while (len > 0 && (line[len - 1] == ' ' || line[len - 1] == '\t'))
		len--;
	if (memchr(line, '\0', len) != NULL)
		return -1;
	for (vlen = 0; vlen < len && line[vlen] != ' '; vlen++)
		;
	if (!is_keyword(line, vlen) || vlen >= verblen)
		return -1;
	for (i = 0; i < vlen; i++)
		verb[i] = (line[i] >= 'a' && line[i] <= 'z') ?
		    (char)(line[i] - 'a' + 'A') : line[i];
	verb[vlen] = '\0';
	i = vlen;
	while (i < len && line[i] == ' ')
		i++;
	*arg = line + i;
	*arglen = len - i;
	return 0;
}

/* smtp_parse_mail_arg - "FROM:"/"TO:" [SP...] Path [SP parameters] */
int
smtp_parse_mail_arg(const char *prefix, const char *arg, size_t len,
    struct mailpath *p, const char **params, size_t *paramslen,
    const char **why)
{
	size_t	plen = strlen(prefix);
	int	n;

	*why = WHY_CMDSYNTAX;
	*params = arg;
	*paramslen = 0;
	if (len < plen || strncasecmp(arg, prefix, plen) != 0)
		return -2;
	arg += plen;
	len -= plen;
	while (len > 0 && *arg == ' ') {	/* lenient */
		arg++;
		len--;
	}
	if ((n = smtp_parse_path(arg, len, p, why)) < 0)
		return -1;
	arg += n;
	len -= (size_t)n;
	if (len > 0 && *arg != ' ') {
		*why = WHY_CMDSYNTAX;
		return -2;
	}
	while (len > 0 && *arg == ' ') {
		arg++;
		len--;
	}
	*params = arg;
	*paramslen = len;
	return 0;
}

/*
 * ESMTP parameters.
 * To add a parameter: write a parser `static int param_xxx(const char *v,
 * size_t vlen, struct esmtp_params *out, const char **why)` (v is NULL
 * when no "=VALUE" was given; return 0 or -1 = PARAM_SYNTAX), add its
 * fields to struct esmtp_params and its EXT_ bit to syntax.h, and add one
 * row below.  Planned rows:
 *   { "HOLDFOR"/"HOLDUNTIL", PARAM_MAIL, EXT_FUTURERELEASE, ... } RFC 4865
 */

typedef int (*param_fn)(const char *, size_t, struct esmtp_params *,
    const char **);

struct param_def {
	const char	*keyword;
	int		 where;		/* PARAM_MAIL and/or PARAM_RCPT */
	unsigned	 ext;		/* EHLO bit that enables it */
	param_fn	 parse;
};

/* param_size - SIZE=1*20DIGIT, RFC 1870 */
static int
param_size(const char *v, size_t vlen, struct esmtp_params *out,
    const char **why)
{
	uint64_t	val = 0;
	size_t		i;

	*why = "Invalid SIZE parameter";
	if (v == NULL || vlen == 0 || vlen > 20)
		return -1;
	for (i = 0; i < vlen; i++) {
		unsigned d;

		if (!is_digit(v[i]))
			return -1;
		d = (unsigned)(v[i] - '0');
		if (val > (UINT64_MAX - d) / 10)
			return -1;
		val = val * 10 + d;
	}
	out->has_size = 1;
	out->size = val;
	return 0;
}

/* param_holdfor - HOLDFOR=future-release-integer, RFC 4865 3:
 * %x31-39 *8DIGIT (1..999999999, no leading zero) */
static int
param_holdfor(const char *v, size_t vlen, struct esmtp_params *out,
    const char **why)
{
	long	val = 0;
	size_t	i;

	*why = "Invalid HOLDFOR parameter";
	if (v == NULL || vlen == 0 || vlen > 9 || v[0] == '0')
		return -1;
	for (i = 0; i < vlen; i++) {
		if (!is_digit(v[i]))
			return -1;
		val = val * 10 + (v[i] - '0');
	}
	out->hold = out->hold ? -1 : HOLD_FOR;
	out->hold_for = val;
	return 0;
}

/* param_holduntil - HOLDUNTIL=date-time (RFC 3339, normalised to UTC) */
static int
param_holduntil(const char *v, size_t vlen, struct esmtp_params *out,
    const char **why)
{
	*why = "Invalid HOLDUNTIL parameter";
	if (v == NULL || vlen >= sizeof(out->hold_text) ||
	    rfc3339_parse(v, vlen, &out->hold_until) == -1)
		return -1;
	memcpy(out->hold_text, v, vlen);
	out->hold_text[vlen] = '\0';
	out->hold = out->hold ? -1 : HOLD_UNTIL;
	return 0;
}

/* param_smtputf8 - SMTPUTF8, RFC 6531 3.4: no value */
static int
param_smtputf8(const char *v, size_t vlen, struct esmtp_params *out,
    const char **why)
{
	(void)vlen;
	*why = "SMTPUTF8 takes no value";
	if (v != NULL)
		return -1;
	out->smtputf8 = 1;
	return 0;
}

/* param_body - BODY=7BIT|8BITMIME, RFC 6152; BINARYMIME, RFC 3030 3 */
static int
param_body(const char *v, size_t vlen, struct esmtp_params *out,
    const char **why)
{
	*why = "Invalid BODY parameter";
	if (v == NULL)
		return -1;
	if (vlen == 4 && strncasecmp(v, "7BIT", 4) == 0)
		out->body = BODY_7BIT;
	else if (vlen == 8 && strncasecmp(v, "8BITMIME", 8) == 0)
		out->body = BODY_8BITMIME;
	else if (vlen == 10 && strncasecmp(v, "BINARYMIME", 10) == 0)
		out->body = BODY_BINARYMIME;
	else
		return -1;
	return 0;
}

/* printable - every octet of s is printable US-ASCII (SP..~) */
static int
printable(const char *s, size_t len)
{
	size_t	i;

	for (i = 0; i < len; i++)
		if ((unsigned char)s[i] < 32 || (unsigned char)s[i] > 126)
			return 0;
	return 1;
}

/* param_ret - RET=FULL|HDRS, RFC 3461 4.3 */
static int
param_ret(const char *v, size_t vlen, struct esmtp_params *out,
    const char **why)
{
	*why = "Invalid RET parameter";
	if (v == NULL)
		return -1;
	if (vlen == 4 && strncasecmp(v, "FULL", 4) == 0)
		out->ret = ESMTP_RET_FULL;
	else if (vlen == 4 && strncasecmp(v, "HDRS", 4) == 0)
		out->ret = ESMTP_RET_HDRS;
	else
		return -1;
	return 0;
}

/*
 * param_auth - AUTH=xtext, RFC 4954 5: the decoded value must be "<>" or
 * a mailbox.  Accepted and not used: Waymark does not relay the
 * submitter's identity, which RFC 4954 allows ("AUTH=<>" onward).
 */
static int
param_auth(const char *v, size_t vlen, struct esmtp_params *out,
    const char **why)
{
	char	dec[SMTP_PATH_MAX + 1];

	*why = "Invalid AUTH parameter";
	if (v == NULL || vlen == 0 || vlen > 3 * SMTP_PATH_MAX ||
	    xtext_decode(v, vlen, dec, sizeof(dec)) == -1)
		return -1;
	if (strcmp(dec, "<>") != 0 && (strchr(dec, '@') == NULL ||
	    !printable(dec, strlen(dec))))
		return -1;
	out->has_auth = 1;
	return 0;
}

/* param_envid - ENVID=xtext, RFC 3461 4.4: <= 100 printable octets */
static int
param_envid(const char *v, size_t vlen, struct esmtp_params *out,
    const char **why)
{
	*why = "Invalid ENVID parameter";
	if (v == NULL || vlen == 0 || vlen > 3 * ESMTP_ENVID_MAX)
		return -1;
	if (xtext_decode(v, vlen, out->envid, sizeof(out->envid)) == -1 ||
	    out->envid[0] == '\0' ||
	    !printable(out->envid, strlen(out->envid))) {
		out->envid[0] = '\0';
		return -1;
	}
	out->has_envid = 1;
	return 0;
}

/* param_mtrk - MTRK=certifier[:timeout], RFC 3885 3.2; timeout 1..999999999 */
static int
param_mtrk(const char *v, size_t vlen, struct esmtp_params *out,
    const char **why)
{
	const char	*colon;
	size_t		 clen, i;
	long		 t = 0;

	*why = "Invalid MTRK parameter";
	if (v == NULL || vlen == 0)
		return -1;
	colon = memchr(v, ':', vlen);
	clen = colon != NULL ? (size_t)(colon - v) : vlen;
	if (!mtrk_certifier_valid(v, clen))
		return -1;
	if (colon != NULL) {
		size_t tlen = vlen - clen - 1;

		if (tlen == 0 || tlen > 9)
			return -1;
		for (i = 0; i < tlen; i++) {
			if (!is_digit(colon[1 + i]))
				return -1;
			t = t * 10 + (colon[1 + i] - '0');
		}
		if (t <= 0)
			return -1;
	}
	memcpy(out->mtrk_cert, v, clen);
	out->mtrk_cert[clen] = '\0';
	out->mtrk_timeout = t;
	out->has_mtrk = 1;
	return 0;
}

/*
 * param_by - BY=by-time ";" by-mode [by-trace], RFC 2852 4:
 * by-time = ["-" / "+"] 1*9DIGIT, by-mode = "N" / "R", by-trace = "T"
 * (case-insensitive); by-mode R with a by-time <= 0 is a syntax error.
 */
static int
param_by(const char *v, size_t vlen, struct esmtp_params *out,
    const char **why)
{
	size_t	i = 0, digits;
	long	t = 0;
	int	neg = 0;

	*why = "Invalid BY parameter";
	if (v == NULL || vlen == 0)
		return -1;
	if (v[0] == '-' || v[0] == '+') {
		neg = v[0] == '-';
		i++;
	}
	for (digits = 0; i < vlen && is_digit(v[i]); i++, digits++) {
		if (digits == 9)
			return -1;
		t = t * 10 + (v[i] - '0');
	}
	if (digits == 0 || i >= vlen || v[i] != ';')
		return -1;
	i++;
	if (i >= vlen)
		return -1;
	if (v[i] == 'R' || v[i] == 'r')
		out->by_mode = ESMTP_BY_RETURN;
	else if (v[i] == 'N' || v[i] == 'n')
		out->by_mode = ESMTP_BY_NOTIFY;
	else
		return -1;
	i++;
	if (i < vlen && (v[i] == 'T' || v[i] == 't')) {
		out->by_mode |= ESMTP_BY_TRACE;
		i++;
	}
	if (i != vlen) {
		out->by_mode = 0;
		return -1;
	}
	out->by_time = neg ? -t : t;
	if ((out->by_mode & ESMTP_BY_RETURN) && out->by_time <= 0) {
		*why = "BY with by-mode R needs a by-time above 0";
		out->by_mode = 0;
		out->by_time = 0;
		return -1;
	}
	out->has_by = 1;
	return 0;
}

/* param_notify - NOTIFY="NEVER" / 1#(SUCCESS/FAILURE/DELAY), RFC 3461 4.1 */
static int
param_notify(const char *v, size_t vlen, struct esmtp_params *out,
    const char **why)
{
	static const struct { const char *kw; unsigned bit; } kws[] = {
		{ "NEVER", ESMTP_NOTIFY_NEVER },
		{ "SUCCESS", ESMTP_NOTIFY_SUCCESS },
		{ "FAILURE", ESMTP_NOTIFY_FAILURE },
		{ "DELAY", ESMTP_NOTIFY_DELAY },
	};
	size_t		i = 0, start, k;
	unsigned	bits = 0;

	*why = "Invalid NOTIFY parameter";
	if (v == NULL || vlen == 0)
		return -1;
	for (;;) {
		start = i;
		while (i < vlen && v[i] != ',')
			i++;
		for (k = 0; k < sizeof(kws) / sizeof(kws[0]); k++)
			if (strlen(kws[k].kw) == i - start &&
			    strncasecmp(kws[k].kw, v + start, i - start) == 0)
				break;
		if (k == sizeof(kws) / sizeof(kws[0]))
			return -1;
		if (bits & kws[k].bit) {
			*why = "Repeated NOTIFY keyword";
			return -1;
		}
		bits |= kws[k].bit;
		if (i >= vlen)
			break;
		if (++i >= vlen)	/* trailing comma */
			return -1;
	}
	if ((bits & ESMTP_NOTIFY_NEVER) && bits != ESMTP_NOTIFY_NEVER) {
		*why = "NOTIFY=NEVER must appear alone";
		return -1;
	}
	out->notify = bits;
	return 0;
}

/* param_orcpt - ORCPT=addr-type ";" xtext, RFC 3461 4.2 (<= 500 chars) */
static int
param_orcpt(const char *v, size_t vlen, struct esmtp_params *out,
    const char **why)
{
	const char	*semi;
	size_t		 tlen, i, dlen;
	int		 rfc822;

	*why = "Invalid ORCPT parameter";
	if (v == NULL || vlen == 0 || vlen > ESMTP_ORCPT_MAX)
		return -1;
	if ((semi = memchr(v, ';', vlen)) == NULL)
		return -1;
	tlen = (size_t)(semi - v);
	/* addr-type = atom (RFC 822: no specials, SP or CTLs) */
	if (tlen == 0)
		return -1;
	for (i = 0; i < tlen; i++)
		if (strchr("()<>@,;:\\\".[]", v[i]) != NULL)
			return -1;
	rfc822 = tlen == 6 && strncasecmp(v, "rfc822", 6) == 0;
	memcpy(out->orcpt, v, tlen + 1);	/* "type;" */
	/* RFC 6533 3: raw UTF-8 (utf-8-addr-unitext, only when the
	 * esmtp-value check let it in under SMTPUTF8) is kept as given;
	 * the 7-bit forms go through xtext (identity for "\x{HEX}") */
	if (tlen == 5 && strncasecmp(v, "utf-8", 5) == 0 &&
	    str_nonascii(semi + 1, vlen - tlen - 1)) {
		dlen = vlen - tlen - 1;
		if (dlen == 0 || dlen + tlen + 1 >= sizeof(out->orcpt))
			goto fail;
		memcpy(out->orcpt + tlen + 1, semi + 1, dlen);
		out->orcpt[tlen + 1 + dlen] = '\0';
		out->has_orcpt = 1;
		return 0;
	}
	if (xtext_decode(semi + 1, vlen - tlen - 1, out->orcpt + tlen + 1,
	    sizeof(out->orcpt) - tlen - 1) == -1)
		goto fail;
	dlen = strlen(out->orcpt + tlen + 1);
	if (dlen == 0)
		goto fail;
	for (i = tlen + 1; i < tlen + 1 + dlen; i++) {
		unsigned char c = (unsigned char)out->orcpt[i];

		if (c < 32 || c == 127 || (rfc822 && c > 126))
			goto fail;
	}
	out->has_orcpt = 1;
	return 0;
fail:
	out->orcpt[0] = '\0';
	return -1;
}

/* param_requiretls - REQUIRETLS, no value (RFC 8689 2) */
static int
param_requiretls(const char *v, size_t vlen, struct esmtp_params *out,
    const char **why)
{
	(void)vlen;
	*why = "REQUIRETLS takes no value";
	if (v != NULL)
		return -1;
	out->requiretls = 1;
	return 0;
}

static const struct param_def param_table[] = {
	{ "SIZE", PARAM_MAIL, EXT_SIZE,     param_size },	/* RFC 1870 */
	{ "BODY", PARAM_MAIL, EXT_8BITMIME, param_body },	/* RFC 6152 */
	{ "RET",  PARAM_MAIL, EXT_DSN,      param_ret },	/* RFC 3461 4.3 */
	{ "ENVID", PARAM_MAIL, EXT_DSN,     param_envid },	/* RFC 3461 4.4 */
	{ "MTRK", PARAM_MAIL, EXT_MTRK,     param_mtrk },	/* RFC 3885 3.2 */
	{ "AUTH", PARAM_MAIL, EXT_AUTH,     param_auth },	/* RFC 4954 5 */
	{ "HOLDFOR", PARAM_MAIL, EXT_FUTURERELEASE, param_holdfor },	/* RFC 4865 3 */
	{ "HOLDUNTIL", PARAM_MAIL, EXT_FUTURERELEASE, param_holduntil }, /* RFC 4865 3 */
	{ "BY",   PARAM_MAIL, EXT_DELIVERBY, param_by },	/* RFC 2852 4 */
	{ "NOTIFY", PARAM_RCPT, EXT_DSN,    param_notify },	/* RFC 3461 4.1 */
	{ "ORCPT", PARAM_RCPT, EXT_DSN,     param_orcpt },	/* RFC 3461 4.2 */
	{ "SMTPUTF8", PARAM_MAIL, EXT_SMTPUTF8, param_smtputf8 }, /* RFC 6531 3.4 */
	{ "REQUIRETLS", PARAM_MAIL, EXT_REQUIRETLS, param_requiretls }, /* RFC 8689 2 */
};

#define NPARAMS	(sizeof(param_table) / sizeof(param_table[0]))
_Static_assert(NPARAMS <= 32, "the repeat check uses a 32-bit mask");

/* esmtp_parse_params - tokenise, look up, refuse repeats, parse values */
enum param_result
esmtp_parse_params(const char *s, size_t len, int where, unsigned enabled,
    struct esmtp_params *out, const char **why)
{
	const struct param_def	*d;
	const char		*val;
	size_t			 i = 0, tok, klen, vlen, k;
	uint32_t		 seen = 0;

	memset(out, 0, sizeof(*out));
	*why = "";
	for (;;) {
		while (i < len && s[i] == ' ')
			i++;
		if (i >= len)
			break;
		tok = i;
		while (i < len && s[i] != ' ' && s[i] != '=')
			i++;
		klen = i - tok;
		val = NULL;
		vlen = 0;
		if (i < len && s[i] == '=') {
			val = s + i + 1;
			for (i++; i < len && s[i] != ' '; i++)
				;
			vlen = (size_t)(s + i - val);
		}

		/* esmtp-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-") */
		*why = "Invalid parameter syntax";
		if (klen == 0 || (!is_alpha(s[tok]) && !is_digit(s[tok])))
			return PARAM_SYNTAX;
		for (k = 1; k < klen; k++)
			if (!is_alpha(s[tok + k]) && !is_digit(s[tok + k]) &&
			    s[tok + k] != '-')
				return PARAM_SYNTAX;
		/* esmtp-value = 1*(%d33-60 / %d62-126) */
		if (val != NULL) {
			if (vlen == 0)
				return PARAM_SYNTAX;
			for (k = 0; k < vlen; k++) {
				unsigned char c = (unsigned char)val[k];
				size_t u;

				/* RFC 6531 3.3: esmtp-value =/ UTF8-non-ascii */
				if (c >= 0x80 && (enabled & EXT_SMTPUTF8) &&
				    (u = utf8_len((const unsigned char *)val +
				    k, vlen - k)) > 0) {
					k += u - 1;
					continue;
				}
				if (c < 33 || c > 126 || c == '=')
					return PARAM_SYNTAX;
			}
		}

		for (d = param_table; d < param_table + NPARAMS; d++)
			if (strlen(d->keyword) == klen &&
			    strncasecmp(d->keyword, s + tok, klen) == 0)
				break;
		if (d == param_table + NPARAMS || !(d->where & where) ||
		    !(d->ext & enabled)) {
			*why = "Unsupported parameter";
			return PARAM_UNKNOWN;
		}
		if (seen & (1u << (d - param_table))) {
			*why = "Repeated parameter";
			return PARAM_REPEATED;
		}
		seen |= 1u << (d - param_table);
		if (d->parse(val, vlen, out, why) == -1)
			return PARAM_SYNTAX;
	}
	/* RFC 4865 4.2: one hold-param, not HOLDFOR and HOLDUNTIL */
	if (out->hold == -1) {
		*why = "only one of HOLDFOR and HOLDUNTIL";
		return PARAM_SYNTAX;
	}
	/* RFC 3885 3.2: MTRK needs ENVID=local-envid "@" fqhn */
	if (out->has_mtrk) {
		const char *at = strrchr(out->envid, '@');

		*why = "MTRK requires ENVID";
		if (!out->has_envid)
			return PARAM_SYNTAX;
		*why = "MTRK requires ENVID=local-envid@fqhn";
		if (at == NULL || at == out->envid || at[1] == '\0')
			return PARAM_SYNTAX;
	}
	*why = "";
	return PARAM_OK;
}

/* xtext (RFC 3461 4) */

static int
xtext_plain(unsigned char c)
{
	return c >= 33 && c <= 126 && c != '+' && c != '=';
}

static int
hexval(int c)
{
	if (is_digit(c))
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* xtext_decode - "+HH" (upper-case hex) and xchar; a decoded NUL is refused */
int
xtext_decode(const char *s, size_t len, char *out, size_t outlen)
{
	size_t	i, o = 0;
	int	hi, lo, c;

	if (outlen == 0)
		return -1;
	for (i = 0; i < len; i++) {
		c = (unsigned char)s[i];
		if (c == '+') {
			if (i + 2 >= len)
				return -1;
			if ((hi = hexval((unsigned char)s[i + 1])) < 0 ||
			    (lo = hexval((unsigned char)s[i + 2])) < 0)
				return -1;
			c = hi * 16 + lo;
			if (c == 0)
				return -1;
			i += 2;
		} else if (!xtext_plain((unsigned char)c)) {
			return -1;
		}
		if (o + 1 >= outlen)
			return -1;
		out[o++] = (char)c;
	}
	out[o] = '\0';
	return 0;
}

/* xtext_encode - xchar as is, everything else as "+HH" */
int
xtext_encode(const char *s, size_t len, char *out, size_t outlen)
{
	static const char	hex[] = "0123456789ABCDEF";
	size_t			i, o = 0;

	if (outlen == 0)
		return -1;
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (xtext_plain(c)) {
			if (o + 1 >= outlen)
				goto fail;
			out[o++] = (char)c;
		} else {
			if (o + 3 >= outlen)
				goto fail;
			out[o++] = '+';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 0xf];
		}
	}
	out[o] = '\0';
	return 0;
fail:
	out[0] = '\0';
	return -1;
}

/* envid_ok - 1..100 printable ASCII characters without space */
int
envid_ok(const char *s)
{
	size_t	i, n = strlen(s);

	if (n == 0 || n > ESMTP_ENVID_MAX)
		return 0;
	for (i = 0; i < n; i++)
		if (s[i] <= ' ' || s[i] > '~')
			return 0;
	return 1;
}

/* base64 (RFC 4648 4, with padding) */

static const char	b64[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int
base64_encode(const unsigned char *in, size_t len, char *out, size_t outlen)
{
	size_t		i, o = 0, need;
	uint32_t	v;

	if (len > ((size_t)-1 / 4) * 3 - 3)
		return -1;
	need = (len + 2) / 3 * 4;
	if (need >= outlen || need > (size_t)INT32_MAX) {
		if (outlen > 0)
			out[0] = '\0';
		return -1;
	}
	for (i = 0; i + 2 < len; i += 3) {
		v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
		out[o++] = b64[v >> 18];
		out[o++] = b64[(v >> 12) & 63];
		out[o++] = b64[(v >> 6) & 63];
		out[o++] = b64[v & 63];
	}
	if (len - i == 1) {
		v = (uint32_t)in[i] << 16;
		out[o++] = b64[v >> 18];
		out[o++] = b64[(v >> 12) & 63];
		out[o++] = '=';
		out[o++] = '=';
	} else if (len - i == 2) {
		v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
		out[o++] = b64[v >> 18];
		out[o++] = b64[(v >> 12) & 63];
		out[o++] = b64[(v >> 6) & 63];
		out[o++] = '=';
	}
	out[o] = '\0';
	return (int)o;
}

static int
b64val(int c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (is_digit(c))
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

/* base64_decode - strict: length % 4 == 0, padding only at the end,
 * unused bits zero */
int
base64_decode(const char *in, size_t len, unsigned char *out, size_t outlen)
{
	size_t		i, o = 0, pad = 0;
	uint32_t	v;
	int		k, d[4];

	if (len % 4 != 0 || len / 4 * 3 > (size_t)INT32_MAX)
		return -1;
	if (len >= 1 && in[len - 1] == '=')
		pad++;
	if (len >= 2 && in[len - 2] == '=')
		pad++;
	if (len / 4 * 3 - pad > outlen)
		return -1;
	for (i = 0; i < len; i += 4) {
		int last = i + 4 == len;

		for (k = 0; k < 4; k++) {
			if (last && in[i + k] == '=' && k >= 4 - (int)pad) {
				d[k] = 0;
				continue;
			}
			if ((d[k] = b64val((unsigned char)in[i + k])) < 0)
				return -1;
		}
		v = (uint32_t)d[0] << 18 | (uint32_t)d[1] << 12 |
		    (uint32_t)d[2] << 6 | (uint32_t)d[3];
		if (last && pad == 2 && (v & 0xffff) != 0)
			return -1;
		if (last && pad == 1 && (v & 0xff) != 0)
			return -1;
		out[o++] = (unsigned char)(v >> 16);
		if (!last || pad < 2)
			out[o++] = (unsigned char)(v >> 8);
		if (!last || pad < 1)
			out[o++] = (unsigned char)v;
	}
	return (int)o;
}

/* mtrk_certifier_valid - 27 base64 characters whose unused bits are 0 */
int
mtrk_certifier_valid(const char *s, size_t len)
{
	char		padded[ESMTP_MTRK_CERT_LEN + 2];
	unsigned char	raw[24];

	if (len != ESMTP_MTRK_CERT_LEN)
		return 0;
	memcpy(padded, s, len);
	padded[len] = '=';
	return base64_decode(padded, len + 1, raw, sizeof(raw)) == 20;
}

/* mtrk_certifier - base64(SHA-1(a)) without the '=' pad (RFC 3885 3.1) */
int
mtrk_certifier(const unsigned char *a, size_t len, char out[28])
{
	unsigned char	md[EVP_MAX_MD_SIZE];
	unsigned int	mdlen = 0;
	char		buf[32];

	out[0] = '\0';
	if (EVP_Digest(a, len, md, &mdlen, EVP_sha1(), NULL) != 1 ||
	    mdlen != 20)
		return -1;
	if (base64_encode(md, mdlen, buf, sizeof(buf)) != 28 || buf[27] != '=')
		return -1;
	memcpy(out, buf, ESMTP_MTRK_CERT_LEN);
	out[ESMTP_MTRK_CERT_LEN] = '\0';
	return 0;
}
