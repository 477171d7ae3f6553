#include "config.h"
/*
 * aliases.c - the aliases file: parse it into a sorted table, look a
 *       recipient up, expand it recursively (aliases.h has the format).
 * Entry points: aliases_load (cfg_load, at start and on SIGHUP),
 *       aliases_lookup, aliases_expand (smtpd RCPT, before queueing).
 * Policy: addresses only; "|command", "/file", ":include:" are refused at
 *       load with "FILE:LINE: reason".  Nesting is limited to
 *       ALIAS_DEPTH_MAX; a loop member (an address met again while it is
 *       being expanded) is delivered to its own mailbox, like sendmail.
 * Not here: what RCPT does with the result (RFC 3461 5.2.7.2/5.2.7.3,
 *       RFC 3885 3.3: smtpd_cmd.c).
 * Invariants: names are lower-case and unique; every target passed the
 *       RFC 5321 path syntax at load time.
 */

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/aliases.h"
#include "common/log.h"
#include "common/syntax.h"
#include "common/entfile.h"
#include "common/util.h"

#define ENTRY_MAX	65536		/* one logical entry, continuations included */
#define ADDR_MAX	(SMTP_LOCAL_MAX + SMTP_DOMAIN_MAX + 8)

struct parse {
	const char	*path;
	char		*err;
	size_t		 errlen;
	struct alias_entry *e;
	size_t		 n;
};

static int WM_PRINTF(4, 5)
perr(struct parse *ps, unsigned lineno, int withline, const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	(void)entfile_verror(ps->err, ps->errlen, ps->path,
	    withline ? lineno : 0, fmt, ap);
	va_end(ap);
	return -1;
}

void
aliases_strv_free(char **v, size_t n)
{
	strv_free(v, n);
}

static void
entry_clear(struct alias_entry *e)
{
	free(e->name);
	aliases_strv_free(e->targets, e->ntargets);
	memset(e, 0, sizeof(*e));
}

void
aliases_free(struct alias_table *t)
{
	size_t	i;

	if (t == NULL)
		return;
	for (i = 0; i < t->n; i++)
		entry_clear(&t->e[i]);
	free(t->e);
	free(t);
}

/* check_addr - 0 when "local@domain" (or a bare local part) is a valid path */
static int
check_addr(const char *s, int bare)
{
	char		 buf[ADDR_MAX + 16];
	struct mailpath	 p;
	const char	*why;
	int		 n;

	n = snprintf(buf, sizeof(buf), bare ? "<%s@example.invalid>" : "<%s>",
	    s);
	if (n < 0 || (size_t)n >= sizeof(buf))
		return -1;
	if (smtp_parse_path(buf, (size_t)n, &p, &why) != n || p.null ||
	    p.postmaster)
		return -1;
	return 0;
}

/* check_target - refuse what this MTA does not deliver to, then the syntax */
static int
check_target(struct parse *ps, unsigned lineno, const char *t)
{
	const char	*u = t;

	if (*u == '"')
		u++;
	if (*u == '|')
		return perr(ps, lineno, 1, "\"%s\": delivery to a command is "
		    "not supported (addresses only)", t);
	if (*u == '/')
		return perr(ps, lineno, 1, "\"%s\": delivery to a file is not "
		    "supported (addresses only)", t);
	if (strncasecmp(u, ":include:", 9) == 0)
		return perr(ps, lineno, 1, "\"%s\": :include: is not supported "
		    "(addresses only)", t);
	if (check_addr(t, strchr(t, '@') == NULL) == -1)
		return perr(ps, lineno, 1, "\"%s\": invalid address", t);
	return 0;
}

/* entry_parse - one logical entry "name: t1, t2" (continuations joined) */
static int
entry_parse(struct parse *ps, char *text, unsigned lineno)
{
	struct alias_entry	 e;
	char			*colon, *name, *tok, *next, **v;
	size_t			 i;

	memset(&e, 0, sizeof(e));
	e.lineno = lineno;
	if ((colon = strchr(text, ':')) == NULL)
		return perr(ps, lineno, 1, "expected \"name: address, ...\"");
	*colon = '\0';
	name = str_trim(text);
	if (*name == '\0')
		return perr(ps, lineno, 1, "missing alias name");
	if (strpbrk(name, " \t") != NULL ||
	    check_addr(name, strchr(name, '@') == NULL) == -1)
		return perr(ps, lineno, 1, "\"%s\": invalid alias name", name);
	if ((e.name = strdup(name)) == NULL)
		goto nomem;
	str_lower(e.name);
	for (i = 0; i < ps->n; i++)
		if (strcmp(ps->e[i].name, e.name) == 0) {
			perr(ps, lineno, 1, "alias \"%s\" repeated (first on "
			    "line %u)", e.name, ps->e[i].lineno);
			goto fail;
		}

	for (tok = colon + 1; tok != NULL; tok = next) {
		if ((next = strchr(tok, ',')) != NULL)
			*next++ = '\0';
		tok = str_trim(tok);
		if (*tok == '\0') {
			if (next == NULL && e.ntargets > 0)
				break;		/* a trailing comma */
			perr(ps, lineno, 1, "alias \"%s\": empty target",
			    e.name);
			goto fail;
		}
		if (check_target(ps, lineno, tok) == -1)
			goto fail;
		if (e.ntargets >= ALIAS_TARGETS_MAX) {
			perr(ps, lineno, 1, "alias \"%s\": more than %d targets",
			    e.name, ALIAS_TARGETS_MAX);
			goto fail;
		}
		if ((v = reallocarray(e.targets, e.ntargets + 1,
		    sizeof(*v))) == NULL)
			goto nomem;
		e.targets = v;
		if ((v[e.ntargets] = strdup(tok)) == NULL)
			goto nomem;
		e.ntargets++;
	}
	if ((ps->n % 16) == 0) {
		struct alias_entry *ne;

		if ((ne = reallocarray(ps->e, ps->n + 16, sizeof(*ne))) == NULL)
			goto nomem;
		ps->e = ne;
	}
	ps->e[ps->n++] = e;
	return 0;
nomem:
	perr(ps, lineno, 1, "%s", strerror(errno));
fail:
	entry_clear(&e);
	return -1;
}

static int
entry_cmp(const void *a, const void *b)
{
	return strcmp(((const struct alias_entry *)a)->name,
	    ((const struct alias_entry *)b)->name);
}

/* aliases_entry - entfile's callback: one logical alias entry */
static int
aliases_entry(void *arg, char *text, unsigned lineno)
{
	return entry_parse(arg, text, lineno);
}

/* aliases_load - read and check the whole file; nothing half-loaded */
struct alias_table *
aliases_load(const char *path, char *err, size_t errlen)
{
	struct parse		 ps;
	struct alias_table	*t = NULL;
	struct entfile		 f = { path, err, errlen, ENTRY_MAX, "an alias",
				    1, aliases_entry, NULL };
	size_t			 i;

	memset(&ps, 0, sizeof(ps));
	ps.path = path;
	ps.err = err;
	ps.errlen = errlen;
	f.arg = &ps;
	if (entfile_read(&f) == -1)
		goto fail;
	if ((t = calloc(1, sizeof(*t))) == NULL) {
		perr(&ps, 0, 0, "%s", strerror(errno));
		goto fail;
	}
	if (ps.n > 0)
		qsort(ps.e, ps.n, sizeof(*ps.e), entry_cmp);
	t->e = ps.e;
	t->n = ps.n;
	return t;
fail:
	for (i = 0; i < ps.n; i++)
		entry_clear(&ps.e[i]);
	free(ps.e);
	return NULL;
}

static const struct alias_entry *
find(const struct alias_table *t, const char *key)
{
	struct alias_entry	k;

	k.name = (char *)(uintptr_t)key;
	if (t == NULL || t->n == 0)
		return NULL;
	return bsearch(&k, t->e, t->n, sizeof(*t->e), entry_cmp);
}

/* aliases_lookup - "local@domain" first, then "local" */
const struct alias_entry *
aliases_lookup(const struct alias_table *t, const char *local,
    const char *domain)
{
	const struct alias_entry *e;
	char	key[ADDR_MAX];
	int	n;

	if (t == NULL || local == NULL)
		return NULL;
	if (domain != NULL) {
		n = snprintf(key, sizeof(key), "%s@%s", local, domain);
		if (n > 0 && (size_t)n < sizeof(key)) {
			str_lower(key);
			if ((e = find(t, key)) != NULL)
				return e;
		}
	}
	n = snprintf(key, sizeof(key), "%s", local);
	if (n < 0 || (size_t)n >= sizeof(key))
		return NULL;
	str_lower(key);
	return find(t, key);
}

struct expand {
	const struct alias_table *t;
	int		(*is_local)(const char *, void *);
	void		*arg;
	size_t		 max;
	char		**out;
	size_t		 nout;
	const char	*stack[ALIAS_DEPTH_MAX + 1];	/* addresses being expanded */
	size_t		 depth;
};

/* add_final - append addr unless already there (case-insensitive) */
static enum alias_result
add_final(struct expand *x, const char *addr)
{
	char	**v;
	size_t	 i;

	for (i = 0; i < x->nout; i++)
		if (strcasecmp(x->out[i], addr) == 0)
			return ALIAS_EXPANDED;
	if (x->nout >= x->max)
		return ALIAS_ERR_TOOMANY;
	if ((v = reallocarray(x->out, x->nout + 1, sizeof(*v))) == NULL)
		return ALIAS_ERR_NOMEM;
	x->out = v;
	if ((v[x->nout] = strdup(addr)) == NULL)
		return ALIAS_ERR_NOMEM;
	x->nout++;
	return ALIAS_EXPANDED;
}

/* expand_one - addr is final, or an alias expanded in turn */
static enum alias_result
expand_one(struct expand *x, const char *addr)
{
	const struct alias_entry *e = NULL;
	const char	*at = strrchr(addr, '@');
	char		 local[SMTP_LOCAL_MAX + 3], next[ADDR_MAX];
	size_t		 i, ll;
	enum alias_result r;
	int		 n;

	if (at != NULL && (ll = (size_t)(at - addr)) < sizeof(local) &&
	    addr[0] != '"' && x->is_local(at + 1, x->arg)) {
		memcpy(local, addr, ll);
		local[ll] = '\0';
		e = aliases_lookup(x->t, local, at + 1);
	}
	if (e == NULL)
		return add_final(x, addr);
	for (i = 0; i < x->depth; i++)		/* a loop: its own mailbox */
		if (strcasecmp(x->stack[i], addr) == 0)
			return add_final(x, addr);
	if (x->depth > ALIAS_DEPTH_MAX)
		return ALIAS_ERR_DEPTH;
	x->stack[x->depth++] = addr;
	for (i = 0; i < e->ntargets; i++) {
		if (strchr(e->targets[i], '@') != NULL)
			n = snprintf(next, sizeof(next), "%s", e->targets[i]);
		else
			n = snprintf(next, sizeof(next), "%s%s", e->targets[i],
			    at);
		if (n < 0 || (size_t)n >= sizeof(next)) {
			x->depth--;
			return ALIAS_ERR_NOMEM;
		}
		if ((r = expand_one(x, next)) != ALIAS_EXPANDED) {
			x->depth--;
			return r;
		}
	}
	x->depth--;
	return ALIAS_EXPANDED;
}

/* aliases_expand - see aliases.h */
enum alias_result
aliases_expand(const struct alias_table *t, const char *addr,
    int (*is_local)(const char *domain, void *arg), void *arg, size_t max,
    char ***out, size_t *nout)
{
	struct expand		 x;
	const char		*at;
	char			 local[SMTP_LOCAL_MAX + 3];
	size_t			 ll;
	enum alias_result	 r;

	*out = NULL;
	*nout = 0;
	if (t == NULL || addr == NULL || addr[0] == '"' ||
	    (at = strrchr(addr, '@')) == NULL ||
	    (ll = (size_t)(at - addr)) >= sizeof(local) ||
	    !is_local(at + 1, arg))
		return ALIAS_NONE;
	memcpy(local, addr, ll);
	local[ll] = '\0';
	if (aliases_lookup(t, local, at + 1) == NULL)
		return ALIAS_NONE;
	memset(&x, 0, sizeof(x));
	x.t = t;
	x.is_local = is_local;
	x.arg = arg;
	x.max = max;
	r = expand_one(&x, addr);
	if (r != ALIAS_EXPANDED || x.nout == 0) {
		aliases_strv_free(x.out, x.nout);
		return r != ALIAS_EXPANDED ? r : ALIAS_ERR_NOMEM;
	}
	*out = x.out;
	*nout = x.nout;
	return ALIAS_EXPANDED;
}
