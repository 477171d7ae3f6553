#include "config.h"
/*
 * queue_policy.c - the policy rules file (`policy = FILE`, README
 * "Policy rules"): one rule per line, ACTION[/LABEL] ["TEXT"] COND...,
 * first match wins, every condition of a rule must hold.
 * Owns: the rule syntax and its "FILE:LINE: reason" errors; the
 *       immutable rule table (regexes compiled at load, conditions of a
 *       rule sorted cheapest first: envelope, header, MIME, body); the
 *       matcher.  The message's content (a prefix of its body file, read
 *       once and only when a rule gets to a content condition) comes
 *       from queue_content.c.
 * Not here: what an action does (smtpd_data.c answers a reject or sets
 *       the state, queue_accept records it); loading at start and on
 *       SIGHUP (smtpd_main.c, which keeps the old table on an error);
 *       the `filter` runner (refused at load until it exists).
 * Invariants: nothing changes a table after queue_policy_load returns;
 *       the matcher only reads it (and the message), so a table may be
 *       shared by every session.  Event-loop thread only.
 * Standards: RFC 2045 5.1 (labels are tokens); POSIX regcomp (ERE,
 *       case-insensitive unless /c), fnmatch (case-insensitive).
 */

#include <arpa/inet.h>
#include <errno.h>
#include <fnmatch.h>
#include <netinet/in.h>
#include <regex.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "common/cfg.h"
#include "common/log.h"
#include "queue/queue_int.h"

#define POLICY_TEXT_MAX		200	/* reject text */
#define POLICY_LABEL_MAX	64	/* quarantine label (an RFC 2045 token) */
#define POLICY_HNAME_MAX	76	/* header=NAME */
#define POLICY_REASON_MAX	256	/* "FILE:LINE header Subject ..." */

enum cond_kind {
	C_CLIENT, C_HELO, C_AUTH, C_FROM, C_RCPT, C_SIZE, C_HEADER,
	C_ATTACHMENT, C_BODY
};

enum cond_syntax {
	V_NETS,		/* ADDR[/PREFIX][,ADDR[/PREFIX]...] */
	V_GLOB,		/* fnmatch pattern, bare or "quoted" */
	V_BOOL,		/* yes | no */
	V_SIZE,		/* size syntax: N[k|m] */
	V_HEADER,	/* NAME:/ERE/[c] */
	V_REGEX,	/* /ERE/[c] */
};

/* the conditions: name, operator, value syntax, cost rank (cheap first) */
static const struct cond_def {
	const char	*name;
	char		 op;
	enum cond_kind	 kind;
	enum cond_syntax syntax;
	unsigned	 cost;	/* 0 envelope, 1 header, 2 MIME walk, 3 body */
} cond_defs[] = {
	{ "client",	'=', C_CLIENT,	   V_NETS,   0 },
	{ "helo",	'=', C_HELO,	   V_GLOB,   0 },
	{ "auth",	'=', C_AUTH,	   V_BOOL,   0 },
	{ "from",	'=', C_FROM,	   V_GLOB,   0 },
	{ "rcpt",	'=', C_RCPT,	   V_GLOB,   0 },
	{ "size",	'>', C_SIZE,	   V_SIZE,   0 },
	{ "header",	'=', C_HEADER,	   V_HEADER, 1 },
	{ "attachment",	'=', C_ATTACHMENT, V_GLOB,   2 },
	{ "body",	'=', C_BODY,	   V_REGEX,  3 },
};

#define NCONDS	(sizeof(cond_defs) / sizeof(cond_defs[0]))

struct policy_cond {
	const struct cond_def	*def;
	char			*glob;		/* V_GLOB; V_HEADER: the field name */
	size_t			 namelen;	/* V_HEADER: strlen(glob) */
	int			 null_sender;	/* from=<> */
	int			 yes;		/* V_BOOL */
	uint64_t		 size;		/* V_SIZE */
	struct cfg_net		*nets;		/* V_NETS */
	size_t			 nnets;
	regex_t			 re;		/* V_HEADER, V_REGEX */
	int			 have_re;
	struct rx_lits		 lits;		/* V_REGEX: prefilter (queue_rx.c) */
};

struct policy_rule {
	enum policy_action	 action;
	char			*label;		/* quarantine/LABEL or NULL */
	char			*text;		/* reject "TEXT" */
	char			*where;		/* "FILE:LINE" */
	char			*actor;		/* "policy FILE:LINE" */
	char			*reason;	/* "FILE:LINE header Subject" */
	struct policy_cond	*conds;		/* cheapest first */
	size_t			 nconds;
};

struct policy {
	char			*path;
	uint64_t		 body_scan;
	struct policy_rule	*rules;
	size_t			 nrules;
};

/* the actions: name, what it does, whether it takes a label */
static const struct action_def {
	const char		*name;
	enum policy_action	 action;
	enum msg_state		 state;
	const char		*value;		/* fixed state value, or NULL */
	int			 label;		/* takes /LABEL */
	int			 text;		/* takes "TEXT" */
} action_defs[] = {
	{ "accept",	POLICY_ACCEPT,	   MS_NORMAL,	  NULL,   0, 0 },
	{ "reject",	POLICY_REJECT,	   MS_NORMAL,	  NULL,   0, 1 },
	{ "quarantine",	POLICY_QUARANTINE, MS_QUARANTINE, NULL,   1, 0 },
	{ "hold",	POLICY_HOLD,	   MS_OTHER,	  "hold", 0, 0 },
	{ "filter",	POLICY_FILTER,	   MS_CONTENT,	  NULL,   0, 1 },
};

#define NACTIONS	(sizeof(action_defs) / sizeof(action_defs[0]))
#define REJECT_TEXT	"Message refused by policy"

/* ------------------------------------------------------------ parsing */

struct lex {
	const char	*p;		/* cursor in the line */
	char		*why;		/* reason on error */
	size_t		 whylen;
};

/* lex_why - set the reason; returns -1 */
static int WM_PRINTF(2, 3)
lex_why(struct lex *lx, const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	(void)vsnprintf(lx->why, lx->whylen, fmt, ap);
	va_end(ap);
	return -1;
}

static int
is_wsp(int c)
{
	return c == ' ' || c == '\t';
}

/* is_token_char - RFC 2045 token: printable US-ASCII, no tspecials */
static int
is_token_char(int c)
{
	return c > 32 && c < 127 && strchr("()<>@,;:\\\"/[]?=", c) == NULL;
}

/* lex_word - a bare word up to white space (malloc'd, non-empty) */
static char *
lex_word(struct lex *lx)
{
	const char	*s = lx->p;
	char		*w;

	while (*lx->p != '\0' && !is_wsp(*lx->p))
		lx->p++;
	if (lx->p == s) {
		lex_why(lx, "missing value");
		return NULL;
	}
	if ((w = strndup(s, (size_t)(lx->p - s))) == NULL)
		lex_why(lx, "%s", strerror(errno));
	return w;
}

/* lex_quoted - "..." with \" and \\ (a backslash takes the next
 * character as it is); must end at white space or the line end */
static char *
lex_quoted(struct lex *lx)
{
	const char	*p = lx->p + 1;
	char		*out, *w;

	if ((out = malloc(strlen(p) + 1)) == NULL) {
		lex_why(lx, "%s", strerror(errno));
		return NULL;
	}
	for (w = out; *p != '"'; p++) {
		if (*p == '\\' && p[1] != '\0')
			p++;
		else if (*p == '\0') {
			free(out);
			lex_why(lx, "unterminated quoted string");
			return NULL;
		}
		*w++ = *p;
	}
	*w = '\0';
	p++;
	if (*p != '\0' && !is_wsp(*p)) {
		free(out);
		lex_why(lx, "white space expected after a quoted string");
		return NULL;
	}
	lx->p = p;
	return out;
}

/* lex_value - a glob or list: "quoted" or bare */
static char *
lex_value(struct lex *lx)
{
	return *lx->p == '"' ? lex_quoted(lx) : lex_word(lx);
}

/*
 * rx_cost - an upper bound of the pattern tree glibc's regcomp builds
 * for the ERE pat: it copies a repeated atom once per repetition ("+"
 * twice, "{n,m}" max(n,m) + 1 times), so stacked or nested repetitions
 * multiply ("a++++..." took gigabytes, found by fuzzing).  The bound
 * also keeps regcomp's epsilon closure (quadratic in the tree) short: at
 * 20000, 'x*' and 13 '+' passed and took 5 s and 900 MB; at 2000 the
 * worst takes tens of ms.  Counts grow saturated at RX_COST_MAX + 1.  Bracket expressions and escapes are
 * one atom; an unbalanced pattern is left to regcomp to refuse.
 */
#define RX_COST_MAX	2000
#define RX_DEPTH_MAX	32

static unsigned long
rx_mul(unsigned long a, unsigned long b)
{
	return (b != 0 && a > (RX_COST_MAX + 1) / b) ? RX_COST_MAX + 1 : a * b;
}

static unsigned long
rx_add(unsigned long a, unsigned long b)
{
	return a + b > RX_COST_MAX + 1 ? RX_COST_MAX + 1 : a + b;
}

static unsigned long
rx_cost(const char *pat)
{
	unsigned long	 seq[RX_DEPTH_MAX + 1], last[RX_DEPTH_MAX + 1], n, m;
	const char	*p = pat;
	int		 d = 0;

	seq[0] = last[0] = 0;
	while (*p != '\0') {
		switch (*p) {
		case '(':
			if (d == RX_DEPTH_MAX)
				return RX_COST_MAX + 1;
			d++;
			seq[d] = last[d] = 0;
			p++;
			continue;
		case ')':
			if (d == 0) {
				p++;
				continue;
			}
			n = seq[d] + 1;
			d--;
			seq[d] = rx_add(seq[d], n);
			last[d] = n;
			p++;
			continue;
		case '|':
			last[d] = 0;
			p++;
			continue;
		case '*': case '?': case '+':
			/* the atom again: once more for "+", its tree kept */
			n = last[d] != 0 ? last[d] : 1;
			m = *p == '+' ? n : 0;
			seq[d] = rx_add(seq[d], m + 1);
			last[d] = rx_add(rx_mul(n, 2), 1);
			p++;
			continue;
		case '{':
			n = m = 0;
			for (p++; *p >= '0' && *p <= '9'; p++)
				n = rx_add(rx_mul(n, 10), (unsigned long)(*p - '0'));
			if (*p == ',')
				for (p++; *p >= '0' && *p <= '9'; p++)
					m = rx_add(rx_mul(m, 10),
					    (unsigned long)(*p - '0'));
			if (m < n)
				m = n;
			if (*p == '}')
				p++;
			n = last[d] != 0 ? last[d] : 1;
			seq[d] = rx_add(seq[d], rx_mul(n, m + 1));
			last[d] = rx_mul(n, m + 2);
			continue;
		case '[':
			p++;
			if (*p == '^')
				p++;
			if (*p == ']')
				p++;
			while (*p != '\0' && *p != ']') {
				if (*p == '[' && (p[1] == ':' || p[1] == '.' ||
				    p[1] == '=')) {
					char	 close = p[1];

					for (p += 2; *p != '\0' &&
					    !(*p == close && p[1] == ']'); p++)
						;
					if (*p != '\0')
						p++;
				}
				if (*p != '\0')
					p++;
			}
			if (*p == ']')
				p++;
			break;
		case '\\':
			p += p[1] != '\0' ? 2 : 1;
			break;
		default:
			p++;
			break;
		}
		seq[d] = rx_add(seq[d], 1);	/* one atom */
		last[d] = 1;
	}
	while (d > 0) {
		n = seq[d];
		d--;
		seq[d] = rx_add(seq[d], n);
	}
	return seq[0];
}

/* policy_rx_too_complex - the ERE pat is refused at load (rx_cost) */
int
policy_rx_too_complex(const char *pat)
{
	return rx_cost(pat) > RX_COST_MAX;
}

/*
 * lex_regex - /ERE/ with an optional flag "c" (case-sensitive); "\/"
 * stands for "/", any other backslash pair is passed to regcomp.
 * Compiles into *re.  White space inside the slashes is part of it.
 */
static int
lex_regex(struct lex *lx, regex_t *re, int newline, struct rx_lits *lits)
{
	const char	*p = lx->p;
	char		*pat, *w, msg[128];
	int		 icase = 1, rc, flags;

	if (*p != '/')
		return lex_why(lx, "regular expression expected: /ERE/");
	if ((pat = malloc(strlen(p) + 1)) == NULL)
		return lex_why(lx, "%s", strerror(errno));
	for (w = pat, p++; *p != '/'; p++) {
		if (*p == '\0') {
			free(pat);
			return lex_why(lx, "unterminated regular expression "
			    "(no closing /)");
		}
		if (*p == '\\' && p[1] == '/') {
			*w++ = '/';
			p++;
		} else if (*p == '\\' && p[1] != '\0') {
			*w++ = *p++;
			*w++ = *p;
		} else
			*w++ = *p;
	}
	*w = '\0';
	for (p++; *p != '\0' && !is_wsp(*p); p++) {
		if (*p != 'c') {
			free(pat);
			return lex_why(lx, "unknown regular expression flag "
			    "'%c' (only c, case-sensitive)", *p);
		}
		icase = 0;
	}
	if (pat[0] == '\0') {
		free(pat);
		return lex_why(lx, "empty regular expression");
	}
	if (rx_cost(pat) > RX_COST_MAX) {
		free(pat);
		return lex_why(lx, "regular expression too complex (nested or "
		    "stacked repetitions)");
	}
	flags = REG_EXTENDED | REG_NOSUB | (icase ? REG_ICASE : 0) |
	    (newline ? REG_NEWLINE : 0);
	if ((rc = regcomp(re, pat, flags)) != 0) {
		regerror(rc, re, msg, sizeof(msg));
		free(pat);
		return lex_why(lx, "bad regular expression: %s", msg);
	}
	if (lits != NULL)
		(void)rx_lits_make(pat, icase, lits);
	free(pat);
	lx->p = p;
	return 0;
}

/* parse_nets - ADDR[/PREFIX] items separated by commas */
static int
parse_nets(struct lex *lx, struct policy_cond *c)
{
	char	*v, *item, *save = NULL;
	int	 rc = 0;

	if ((v = lex_word(lx)) == NULL)
		return -1;
	for (item = strtok_r(v, ",", &save); item != NULL;
	    item = strtok_r(NULL, ",", &save)) {
		struct cfg_net *n;

		if ((n = reallocarray(c->nets, c->nnets + 1,
		    sizeof(*n))) == NULL) {
			rc = lex_why(lx, "%s", strerror(errno));
			break;
		}
		c->nets = n;
		if (cfg_parse_net(item, &c->nets[c->nnets]) == -1) {
			rc = lex_why(lx, "invalid network \"%s\"", item);
			break;
		}
		c->nnets++;
	}
	if (rc == 0 && c->nnets == 0)
		rc = lex_why(lx, "missing network");
	free(v);
	return rc;
}

/* parse_value - the value of condition c after its operator */
static int
parse_value(struct lex *lx, struct policy_cond *c)
{
	const char	*s;
	char		*v;
	size_t		 n;

	switch (c->def->syntax) {
	case V_NETS:
		return parse_nets(lx, c);
	case V_GLOB:
		if ((c->glob = lex_value(lx)) == NULL)
			return -1;
		if (c->def->kind == C_FROM && strcmp(c->glob, "<>") == 0)
			c->null_sender = 1;
		return 0;
	case V_BOOL:
		if ((v = lex_word(lx)) == NULL)
			return -1;
		if (strcmp(v, "yes") == 0)
			c->yes = 1;
		else if (strcmp(v, "no") != 0) {
			free(v);
			return lex_why(lx, "%s: yes or no expected",
			    c->def->name);
		}
		free(v);
		return 0;
	case V_SIZE:
		if ((v = lex_word(lx)) == NULL)
			return -1;
		if (cfg_parse_size(v, &c->size) == -1) {
			lex_why(lx, "invalid size \"%s\"", v);
			free(v);
			return -1;
		}
		free(v);
		return 0;
	case V_HEADER:
		for (s = lx->p; *s > 32 && *s < 127 && *s != ':'; s++)
			;
		n = (size_t)(s - lx->p);
		if (*s != ':' || n == 0)
			return lex_why(lx, "header=NAME:/ERE/ expected");
		if (n > POLICY_HNAME_MAX)
			return lex_why(lx, "header name too long");
		if ((c->glob = strndup(lx->p, n)) == NULL)
			return lex_why(lx, "%s", strerror(errno));
		c->namelen = n;
		lx->p = s + 1;
		if (lex_regex(lx, &c->re, 0, NULL) == -1)
			return -1;
		c->have_re = 1;
		return 0;
	case V_REGEX:
		if (lex_regex(lx, &c->re, 1, &c->lits) == -1)
			return -1;
		c->have_re = 1;
		return 0;
	}
	return lex_why(lx, "internal error: bad syntax");
}

/* parse_cond - one NAME=VALUE or NAME>VALUE condition at lx->p */
static int
parse_cond(struct lex *lx, struct policy_cond *c)
{
	const char	*s = lx->p;
	size_t		 n, i;

	while ((*lx->p >= 'a' && *lx->p <= 'z') ||
	    (*lx->p >= 'A' && *lx->p <= 'Z'))
		lx->p++;
	n = (size_t)(lx->p - s);
	for (i = 0; i < NCONDS; i++)
		if (strlen(cond_defs[i].name) == n &&
		    strncasecmp(cond_defs[i].name, s, n) == 0)
			break;
	if (n == 0 || i == NCONDS) {
		for (n = 0; s[n] != '\0' && !is_wsp(s[n]) && s[n] != '=' &&
		    s[n] != '>' && n < 40; n++)
			;
		return lex_why(lx, "unknown condition \"%.*s\"", (int)n, s);
	}
	c->def = &cond_defs[i];
	if (*lx->p != c->def->op)
		return lex_why(lx, "%s%c expected", c->def->name, c->def->op);
	lx->p++;
	return parse_value(lx, c);
}

static void
cond_clear(struct policy_cond *c)
{
	free(c->glob);
	free(c->nets);
	if (c->have_re)
		regfree(&c->re);
	rx_lits_free(&c->lits);
	memset(c, 0, sizeof(*c));
}

static void
rule_clear(struct policy_rule *r)
{
	size_t	i;

	for (i = 0; i < r->nconds; i++)
		cond_clear(&r->conds[i]);
	free(r->conds);
	free(r->label);
	free(r->text);
	free(r->where);
	free(r->actor);
	free(r->reason);
	memset(r, 0, sizeof(*r));
}

/* reason_add - append " word" to a comment-safe reason (no ( ) \ or
 * controls, which would break the Received comment it ends up in) */
static void
reason_add(char *out, size_t outlen, const char *sep, const char *word)
{
	size_t	n = strlen(out), i;

	for (i = 0; sep[i] != '\0' && n + 1 < outlen; i++)
		out[n++] = sep[i];
	for (i = 0; word[i] != '\0' && n + 1 < outlen; i++) {
		unsigned char ch = (unsigned char)word[i];

		out[n++] = (ch <= 32 || ch >= 127 || ch == '(' || ch == ')' ||
		    ch == '\\') ? '_' : (char)ch;
	}
	out[n] = '\0';
}

/* rule_texts - where, actor and reason of rule r at path:lineno */
static int
rule_texts(struct policy_rule *r, const char *path, unsigned lineno)
{
	char	where[POLICY_REASON_MAX], reason[POLICY_REASON_MAX];
	size_t	i;
	int	n;

	n = snprintf(where, sizeof(where), "%s:%u", path, lineno);
	if (n < 0 || (size_t)n >= sizeof(where))
		(void)snprintf(where, sizeof(where), "...:%u", lineno);
	reason[0] = '\0';
	reason_add(reason, sizeof(reason), "", where);
	for (i = 0; i < r->nconds; i++) {
		reason_add(reason, sizeof(reason), " ", r->conds[i].def->name);
		if (r->conds[i].def->kind == C_HEADER)
			reason_add(reason, sizeof(reason), " ",
			    r->conds[i].glob);
	}
	if ((r->where = strdup(where)) == NULL ||
	    (r->reason = strdup(reason)) == NULL ||
	    asprintf(&r->actor, "policy %s", where) == -1) {
		r->actor = NULL;
		return -1;
	}
	return 0;
}

/* cond_cost_sort - stable: envelope conditions before content ones */
static void
cond_cost_sort(struct policy_cond *c, size_t n)
{
	struct policy_cond	tmp;
	size_t			i, j;

	for (i = 1; i < n; i++) {
		tmp = c[i];
		for (j = i; j > 0 && c[j - 1].def->cost > tmp.def->cost; j--)
			c[j] = c[j - 1];
		c[j] = tmp;
	}
}

/* parse_action - ACTION[/LABEL] at lx->p into r; *ad = its definition */
static int
parse_action(struct lex *lx, struct policy_rule *r,
    const struct action_def **ad)
{
	const char	*s = lx->p, *slash = NULL;
	size_t		 n, i;

	while (*lx->p != '\0' && !is_wsp(*lx->p)) {
		if (*lx->p == '/' && slash == NULL)
			slash = lx->p;
		lx->p++;
	}
	n = (size_t)((slash != NULL ? slash : lx->p) - s);
	for (i = 0; i < NACTIONS; i++)
		if (strlen(action_defs[i].name) == n &&
		    strncmp(action_defs[i].name, s, n) == 0)
			break;
	if (i == NACTIONS)
		return lex_why(lx, "unknown action \"%.*s\" (accept, reject, "
		    "quarantine[/LABEL], hold or filter)",
		    (int)(n > 40 ? 40 : n), s);
	*ad = &action_defs[i];
	r->action = (*ad)->action;
	if (slash == NULL)
		return 0;
	if (!(*ad)->label)
		return lex_why(lx, "%s takes no label", (*ad)->name);
	n = (size_t)(lx->p - slash - 1);
	if (n == 0)
		return lex_why(lx, "empty label");
	if (n > POLICY_LABEL_MAX)
		return lex_why(lx, "label longer than %d characters",
		    POLICY_LABEL_MAX);
	for (i = 0; i < n; i++)
		if (!is_token_char((unsigned char)slash[1 + i]))
			return lex_why(lx, "label \"%.*s\" is not an RFC 2045 "
			    "token", (int)n, slash + 1);
	if ((r->label = strndup(slash + 1, n)) == NULL)
		return lex_why(lx, "%s", strerror(errno));
	return 0;
}

/* check_text - reject text: printable US-ASCII, not too long */
static int
check_text(struct lex *lx, const char *t)
{
	size_t	i;

	if (t[0] == '\0')
		return lex_why(lx, "empty text");
	if (strlen(t) > POLICY_TEXT_MAX)
		return lex_why(lx, "text longer than %d characters",
		    POLICY_TEXT_MAX);
	for (i = 0; t[i] != '\0'; i++)
		if ((unsigned char)t[i] < 32 || (unsigned char)t[i] > 126)
			return lex_why(lx, "text must be printable "
			    "US-ASCII");
	return 0;
}

/* parse_rule - one non-blank line into r; 0, or -1 with lx->why set */
static int
parse_rule(struct lex *lx, struct policy_rule *r)
{
	const struct action_def	*ad = NULL;
	struct policy_cond	*c;

	if (parse_action(lx, r, &ad) == -1)
		return -1;
	for (;;) {
		while (is_wsp(*lx->p))
			lx->p++;
		if (*lx->p == '\0' || *lx->p == '#')
			break;
		if (*lx->p == '"') {
			if (!ad->text)
				return lex_why(lx, "%s takes no text",
				    ad->name);
			if (r->text != NULL || r->nconds > 0)
				return lex_why(lx, "the text comes right "
				    "after the action, once");
			if ((r->text = lex_quoted(lx)) == NULL ||
			    check_text(lx, r->text) == -1)
				return -1;
			continue;
		}
		if ((c = reallocarray(r->conds, r->nconds + 1,
		    sizeof(*c))) == NULL)
			return lex_why(lx, "%s", strerror(errno));
		r->conds = c;
		c = &r->conds[r->nconds];
		memset(c, 0, sizeof(*c));
		if (parse_cond(lx, c) == -1) {
			cond_clear(c);
			return -1;
		}
		r->nconds++;
	}
	if (r->action == POLICY_REJECT && r->text == NULL &&
	    (r->text = strdup(REJECT_TEXT)) == NULL)
		return lex_why(lx, "%s", strerror(errno));
	if (r->action == POLICY_FILTER && r->text == NULL)
		return lex_why(lx, "filter needs its command, in double "
		    "quotes right after it");
	return 0;
}

/* queue_policy_free - the table and everything in it */
void
queue_policy_free(struct policy *p)
{
	size_t	i;

	if (p == NULL)
		return;
	for (i = 0; i < p->nrules; i++)
		rule_clear(&p->rules[i]);
	free(p->rules);
	free(p->path);
	free(p);
}

/* queue_policy_count - number of rules */
size_t
queue_policy_count(const struct policy *p)
{
	return p != NULL ? p->nrules : 0;
}

/* queue_policy_load - parse the whole file; a new table or NULL */
struct policy *
queue_policy_load(const char *path, uint64_t body_scan, char *err,
    size_t errlen)
{
	struct policy		*p;
	struct policy_rule	*r, rule;
	struct lex		 lx;
	FILE			*fp = NULL;
	char			*line = NULL, why[512];
	size_t			 cap = 0, n;
	unsigned		 lineno = 0;

	if ((p = calloc(1, sizeof(*p))) == NULL ||
	    (p->path = strdup(path)) == NULL) {
		(void)snprintf(err, errlen, "%s: %s", path, strerror(errno));
		goto fail;
	}
	p->body_scan = body_scan;
	if ((fp = fopen(path, "r")) == NULL) {
		(void)snprintf(err, errlen, "%s: %s", path, strerror(errno));
		goto fail;
	}
	while (getline(&line, &cap, fp) != -1) {
		lineno++;
		n = strlen(line);
		while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
			line[--n] = '\0';
		memset(&lx, 0, sizeof(lx));
		lx.why = why;
		lx.whylen = sizeof(why);
		for (lx.p = line; is_wsp(*lx.p); lx.p++)
			;
		if (*lx.p == '\0' || *lx.p == '#')
			continue;
		memset(&rule, 0, sizeof(rule));
		if (parse_rule(&lx, &rule) == -1 ||
		    (rule_texts(&rule, path, lineno) == -1 &&
		    lex_why(&lx, "%s", strerror(errno)))) {
			rule_clear(&rule);
			(void)snprintf(err, errlen, "%s:%u: %s", path, lineno,
			    why);
			goto fail;
		}
		cond_cost_sort(rule.conds, rule.nconds);
		if ((r = reallocarray(p->rules, p->nrules + 1,
		    sizeof(*r))) == NULL) {
			rule_clear(&rule);
			(void)snprintf(err, errlen, "%s: %s", path,
			    strerror(errno));
			goto fail;
		}
		p->rules = r;
		p->rules[p->nrules++] = rule;
	}
	if (ferror(fp)) {
		(void)snprintf(err, errlen, "%s: %s", path, strerror(errno));
		goto fail;
	}
	fclose(fp);
	free(line);
	return p;
fail:
	if (fp != NULL)
		fclose(fp);
	free(line);
	queue_policy_free(p);
	return NULL;
}

/* ----------------------------------------------------------- matching */

/* what one check knows about the message beyond its qmsg */
struct pctx {
	const struct qmsg	*m;
	struct content		*content;	/* queue_content.c */
	int			 client_done;	/* 1 parsed, -1 unparsable */
	struct sockaddr_storage	 client;
};

/* ctx_client - the client address as a sockaddr, for client= */
static void
ctx_client(struct pctx *c)
{
	struct sockaddr_in	*s4 = (struct sockaddr_in *)(void *)&c->client;
	struct sockaddr_in6	*s6 = (struct sockaddr_in6 *)(void *)&c->client;
	const char		*a = c->m->client_addr;

	c->client_done = -1;
	memset(&c->client, 0, sizeof(c->client));
	if (a == NULL)
		return;
	if (inet_pton(AF_INET, a, &s4->sin_addr) == 1) {
		s4->sin_family = AF_INET;
		c->client_done = 1;
	} else if (inet_pton(AF_INET6, a, &s6->sin6_addr) == 1) {
		s6->sin6_family = AF_INET6;
		c->client_done = 1;
	}
}

/* rx_match - regexec over [s, s+n) (embedded NULs included where the
 * C library has REG_STARTEND) */
static int
rx_match(const regex_t *re, const char *s, size_t n)
{
#ifdef REG_STARTEND
	regmatch_t	pm[1];

	pm[0].rm_so = 0;
	pm[0].rm_eo = (regoff_t)n;
	return regexec(re, s, 1, pm, REG_STARTEND) == 0;
#else
	(void)n;
	return regexec(re, s, 0, NULL, 0) == 0;
#endif
}

/* glob_match - fnmatch, case-insensitive; NULL is "" */
static int
glob_match(const char *glob, const char *s)
{
	return fnmatch(glob, s != NULL ? s : "", FNM_CASEFOLD) == 0;
}

/* cond_eval - 1 holds, 0 does not, -1 error (content unreadable) */
static int
cond_eval(struct pctx *c, const struct policy_cond *k)
{
	const struct qmsg		*m = c->m;
	const struct content_field	*f;
	const char *const		*names;
	const char			*body;
	size_t				 i, n;

	switch (k->def->kind) {
	case C_CLIENT:
		if (c->client_done == 0)
			ctx_client(c);
		return c->client_done == 1 && cfg_nets_match(k->nets, k->nnets,
		    (const struct sockaddr *)(const void *)&c->client);
	case C_HELO:
		return glob_match(k->glob, m->helo);
	case C_AUTH:
		return (m->auth_user != NULL) == (k->yes != 0);
	case C_FROM:
		if (k->null_sender)
			return m->sender == NULL || m->sender[0] == '\0';
		return glob_match(k->glob, m->sender);
	case C_RCPT:
		for (i = 0; i < m->nrcpts; i++)
			if (glob_match(k->glob, m->rcpts[i].addr))
				return 1;
		return 0;
	case C_SIZE:
		return m->size > k->size;
	case C_HEADER:
		if (content_fields(c->content, &f, &n) == -1)
			return -1;
		for (i = 0; i < n; i++)
			if (f[i].namelen == k->namelen &&
			    strncasecmp(f[i].name, k->glob, k->namelen) == 0 &&
			    rx_match(&k->re, f[i].value, f[i].vlen))
				return 1;
		return 0;
	case C_ATTACHMENT:
		if (content_names(c->content, &names, &n) == -1)
			return -1;
		for (i = 0; i < n; i++)
			if (glob_match(k->glob, names[i]))
				return 1;
		return 0;
	case C_BODY:
		/* a literal every match contains is looked up first */
		if (k->lits.n > 0 && ((k->lits.icase ?
		    content_body_lower(c->content, &body, &n) :
		    content_body(c->content, &body, &n)) == -1))
			return -1;
		if (k->lits.n > 0 && !rx_lits_maybe(&k->lits, body, n))
			return 0;
		if (content_body(c->content, &body, &n) == -1)
			return -1;
		return rx_match(&k->re, body, n);
	}
	return 0;
}

/* queue_policy_check - the first rule that m matches */
int
queue_policy_check(const struct policy *p, const struct qmsg *m,
    struct policy_verdict *v)
{
	const struct policy_rule	*r = NULL;
	const struct action_def		*ad;
	struct pctx			 c;
	size_t				 i, j;
	int				 ok = 0, saved;

	memset(v, 0, sizeof(*v));
	v->action = POLICY_ACCEPT;
	v->state = MS_NORMAL;
	if (p == NULL || p->nrules == 0)
		return 0;
	memset(&c, 0, sizeof(c));
	c.m = m;
	if ((c.content = content_new(m, p->body_scan)) == NULL)
		return -1;
	for (i = 0; i < p->nrules && ok != 1; i++) {
		r = &p->rules[i];
		for (j = 0, ok = 1; j < r->nconds && ok == 1; j++)
			ok = cond_eval(&c, &r->conds[j]);
		if (ok == -1)
			break;
	}
	saved = errno;
	content_free(c.content);
	errno = saved;
	if (ok == -1)
		return -1;
	if (ok == 1) {
		v->action = r->action;
		v->where = r->where;
		v->actor = r->actor;
		v->reason = r->reason;
		v->text = r->text;
		for (ad = action_defs; ad < action_defs + NACTIONS; ad++)
			if (ad->action == r->action) {
				v->name = ad->name;
				v->state = ad->state;
				v->value = ad->value != NULL ? ad->value :
				    r->label;
			}
	}
	return 0;
}
