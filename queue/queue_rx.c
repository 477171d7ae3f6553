#include "config.h"
/*
 * queue_rx.c - a prefilter for the policy rules' regular expressions:
 * from a POSIX ERE, the literal strings of which every match contains at
 * least one ("viagra" for /cheap viagra+/, {"foo", "bar"} for
 * /(foo|bar)baz?/).  When none occurs in the text, regexec cannot match
 * and is not called: a memmem per literal costs far less than glibc's
 * regexec over a message body, and most rules contain a literal.
 * Owns: the extraction, done once at load (queue_policy.c stores the
 *       result with the compiled regex), and the look-up.
 * Rule: only what is sure to be required is kept -- a run of plain
 *       characters each matched exactly once, or the alternatives of a
 *       required group; anything not understood (an odd interval, a
 *       nesting deeper than RX_DEPTH, too many alternatives) gives no
 *       prefilter, never a wrong one.  Case-insensitive expressions get
 *       lower-case literals, to look up in lower-cased text (ASCII case
 *       folding, as regcomp's REG_ICASE in the C locale the daemon runs
 *       in).
 */

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "queue/queue_int.h"

#define RX_DEPTH	4	/* nested groups looked into */
#define RX_LIT_MIN	3	/* shorter literals filter too little */

struct litset {
	size_t	n;
	char	*lit[RX_LITS_MAX];
	size_t	 len[RX_LITS_MAX];
};

static void
set_clear(struct litset *s)
{
	size_t	i;

	for (i = 0; i < s->n; i++)
		free(s->lit[i]);
	s->n = 0;
}

/* set_score - the shortest literal (what the set guarantees) */
static size_t
set_score(const struct litset *s)
{
	size_t	i, min = 0;

	for (i = 0; i < s->n; i++)
		if (i == 0 || s->len[i] < min)
			min = s->len[i];
	return min;
}

/* set_one - s = { run[0..n) } */
static int
set_one(struct litset *s, const char *run, size_t n)
{
	set_clear(s);
	if ((s->lit[0] = malloc(n + 1)) == NULL)
		return -1;
	memcpy(s->lit[0], run, n);
	s->lit[0][n] = '\0';
	s->len[0] = n;
	s->n = 1;
	return 0;
}

/* lit_escape - is "\c" the literal character c? (glibc gives \w \W \s
 * \S \b \B \< \> \` \' and \1-\9 other meanings) */
static int
lit_escape(int c)
{
	return c != '\0' && !isalnum((unsigned char)c) &&
	    strchr("<>`'", c) == NULL;
}

/* skip_bracket - p at '['; returns just past the matching ']' or NULL */
static const char *
skip_bracket(const char *p, const char *e)
{
	p++;
	if (p < e && *p == '^')
		p++;
	if (p < e && *p == ']')
		p++;
	while (p < e && *p != ']') {
		if (*p == '[' && p + 1 < e &&
		    (p[1] == ':' || p[1] == '.' || p[1] == '=')) {
			char	 close = p[1];

			for (p += 2; p + 1 < e && !(p[0] == close &&
			    p[1] == ']'); p++)
				;
			if (p + 1 >= e)
				return NULL;
			p += 2;
		} else
			p++;
	}
	return p < e ? p + 1 : NULL;
}

/* skip_group - p at '('; returns the matching ')' or NULL */
static const char *
skip_group(const char *p, const char *e)
{
	int	depth = 0;

	for (; p < e; p++) {
		if (*p == '\\' && p + 1 < e)
			p++;
		else if (*p == '[') {
			if ((p = skip_bracket(p, e)) == NULL)
				return NULL;
			p--;
		} else if (*p == '(')
			depth++;
		else if (*p == ')' && --depth == 0)
			return p;
	}
	return NULL;
}

/*
 * quantifier - after an atom at *pp: *opt = the atom may be absent,
 * *rep = it may repeat.  -1 for an interval not understood.
 */
static int
quantifier(const char **pp, const char *e, int *opt, int *rep)
{
	const char	*p = *pp;
	unsigned long	 min;
	char		*end;

	*opt = *rep = 0;
	while (p < e) {
		if (*p == '*' || *p == '?') {
			*opt = 1;
			*rep |= *p == '*';
			p++;
		} else if (*p == '+') {
			*rep = 1;
			p++;
		} else if (*p == '{') {
			if (!isdigit((unsigned char)p[1]))
				return -1;
			min = strtoul(p + 1, &end, 10);
			if (*end == ',')
				for (end++; isdigit((unsigned char)*end); end++)
					;
			if (end >= e || *end != '}')
				return -1;
			*opt |= min == 0;
			*rep = 1;
			p = end + 1;
		} else
			break;
	}
	*pp = p;
	return 0;
}

static int	rx_alts(const char *, const char *, int, int, struct litset *);

/* rx_branch - the best required literal(s) of a branch without a
 * top-level '|'; 0 (out may be empty) or -1 (give up) */
static int
rx_branch(const char *p, const char *e, int icase, int depth,
    struct litset *out)
{
	struct litset	 sub;
	char		*run;
	const char	*q, *close;
	size_t		 n = 0;
	int		 opt, rep, lit, rc = -1;
	char		 ch = 0;

	out->n = 0;
	if ((run = malloc((size_t)(e - p) + 1)) == NULL)
		return -1;
	memset(&sub, 0, sizeof(sub));
#define END_RUN() do {							\
	if (n >= RX_LIT_MIN && n > set_score(out) &&			\
	    set_one(out, run, n) == -1)					\
		goto done;						\
	n = 0;								\
} while (0)
	while (p < e) {
		lit = 0;
		close = NULL;
		if (*p == '\\') {
			if (p + 1 >= e)
				goto done;
			lit = lit_escape(p[1]);
			ch = p[1];
			q = p + 2;
		} else if (*p == '[') {
			if ((q = skip_bracket(p, e)) == NULL)
				goto done;
		} else if (*p == '(') {
			if ((close = skip_group(p, e)) == NULL)
				goto done;
			q = close + 1;
		} else if (strchr(".^$*+?{)|", *p) != NULL) {
			q = p + 1;		/* no literal; '{' alone too */
		} else {
			lit = 1;
			ch = *p;
			q = p + 1;
		}
		if (quantifier(&q, e, &opt, &rep) == -1)
			goto done;
		if (lit && !opt) {
			run[n++] = icase ? (char)tolower((unsigned char)ch) : ch;
			if (rep)
				END_RUN();
		} else
			END_RUN();
		if (close != NULL && !opt && depth < RX_DEPTH) {
			if (rx_alts(p + 1, close, icase, depth + 1, &sub) == -1)
				goto done;
			if (sub.n > 0 && set_score(&sub) >= RX_LIT_MIN &&
			    set_score(&sub) > set_score(out)) {
				set_clear(out);
				*out = sub;
				memset(&sub, 0, sizeof(sub));
			}
			set_clear(&sub);
		}
		p = q;
	}
	END_RUN();
	rc = 0;
#undef END_RUN
done:
	free(run);
	set_clear(&sub);
	if (rc == -1)
		set_clear(out);
	return rc;
}

/* rx_alts - [p, e) split at top-level '|': every branch must give
 * literals, the union is the result (empty when one gives none) */
static int
rx_alts(const char *p, const char *e, int icase, int depth,
    struct litset *out)
{
	struct litset	 b;
	const char	*s = p, *q;
	size_t		 i;

	out->n = 0;
	for (q = p; q <= e; q++) {
		if (q < e && *q == '\\' && q + 1 < e) {
			q++;
			continue;
		}
		if (q < e && *q == '[') {
			if ((q = skip_bracket(q, e)) == NULL)
				goto fail;
			q--;
			continue;
		}
		if (q < e && *q == '(') {
			if ((q = skip_group(q, e)) == NULL)
				goto fail;
			continue;
		}
		if (q < e && *q != '|')
			continue;
		if (rx_branch(s, q, icase, depth, &b) == -1)
			goto fail;
		if (b.n == 0 || out->n + b.n > RX_LITS_MAX) {
			set_clear(&b);
			set_clear(out);
			return 0;		/* a branch without: none */
		}
		for (i = 0; i < b.n; i++) {
			out->lit[out->n] = b.lit[i];
			out->len[out->n++] = b.len[i];
		}
		b.n = 0;
		s = q + 1;
	}
	return 0;
fail:
	set_clear(out);
	return -1;
}

/* rx_lits_make - the prefilter of ere; out->n = 0 when there is none */
int
rx_lits_make(const char *ere, int icase, struct rx_lits *out)
{
	struct litset	s;
	size_t		i;

	memset(out, 0, sizeof(*out));
	memset(&s, 0, sizeof(s));
	out->icase = icase;
	if (rx_alts(ere, ere + strlen(ere), icase, 0, &s) == -1) {
		/* not understood or no memory: no prefilter */
		return 0;
	}
	for (i = 0; i < s.n; i++) {
		out->lit[i] = s.lit[i];
		out->len[i] = s.len[i];
	}
	out->n = s.n;
	return 0;
}

void
rx_lits_free(struct rx_lits *l)
{
	size_t	i;

	for (i = 0; i < l->n; i++)
		free(l->lit[i]);
	l->n = 0;
}

/* rx_lits_maybe - may the expression match text (lower-cased when the
 * literals are)?  0 only when none of the literals occurs */
int
rx_lits_maybe(const struct rx_lits *l, const char *text, size_t n)
{
	size_t	i;

	if (l->n == 0)
		return 1;
	for (i = 0; i < l->n; i++)
		if (memmem(text, n, l->lit[i], l->len[i]) != NULL)
			return 1;
	return 0;
}
