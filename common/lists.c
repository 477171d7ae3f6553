#include "config.h"
/*
 * lists.c - the lists file: parse it into a sorted, immutable table of
 *       mailing lists (lists.h has the format), look a list up, decide
 *       who may post without moderation.
 * Entry points: lists_load (cfg_load, at start and on SIGHUP: a reload
 *       swaps the whole table, or keeps the old one when the new file
 *       does not parse), lists_check_domains (cfg_load, once
 *       local_domains is known), lists_lookup / lists_is_owner /
 *       lists_may_post (smtpd RCPT, the queue's expansion).
 * Not here: what RCPT does with a post (smtpd_lists.c: moderation at
 *       reception), the expansion to the members and the moderators'
 *       notices (queue_lists.c).
 * Invariants: list addresses are lower-case, unique, unquoted
 *       "local@domain"; every member and moderator passed the RFC 5321
 *       path syntax; members are unique (case-insensitive); nested lists
 *       of the file never loop.
 */

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/lists.h"
#include "common/log.h"
#include "common/syntax.h"
#include "common/entfile.h"
#include "common/util.h"

#define ENTRY_MAX	(1024 * 1024)	/* one logical entry, continuations included */
#define ADDR_MAX	(SMTP_LOCAL_MAX + SMTP_DOMAIN_MAX + 8)

struct parse {
	const char	*path;
	char		*err;
	size_t		 errlen;
	struct list_entry *e;
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

static void
entry_clear(struct list_entry *e)
{
	free(e->addr);
	free(e->owner);
	strv_free(e->members, e->nmembers);
	strv_free(e->moderators, e->nmoderators);
	memset(e, 0, sizeof(*e));
}

void
lists_free(struct list_table *t)
{
	size_t	i;

	if (t == NULL)
		return;
	for (i = 0; i < t->n; i++)
		entry_clear(&t->e[i]);
	free(t->e);
	free(t->path);
	free(t);
}

/* check_addr - 0 when s is a full "local@domain" path (not <>, <Postmaster>) */
static int
check_addr(const char *s)
{
	char		 buf[ADDR_MAX + 16];
	struct mailpath	 p;
	const char	*why;
	int		 n;

	if (strchr(s, '@') == NULL)
		return -1;
	n = snprintf(buf, sizeof(buf), "<%s>", s);
	if (n < 0 || (size_t)n >= sizeof(buf))
		return -1;
	if (smtp_parse_path(buf, (size_t)n, &p, &why) != n || p.null ||
	    p.postmaster)
		return -1;
	return 0;
}

/* add_addr - append a (unless there, case-insensitive) to *v; 0 or -1 */
static int
add_addr(struct parse *ps, unsigned lineno, const char *list,
    const char *what, char ***v, size_t *n, const char *a)
{
	char	**nv;
	size_t	  i;

	if (check_addr(a) == -1)
		return perr(ps, lineno, 1, "list \"%s\": \"%s\": invalid "
		    "address (LOCAL@DOMAIN expected)", list, a);
	for (i = 0; i < *n; i++)
		if (strcasecmp((*v)[i], a) == 0)
			return 0;
	if (*n >= LIST_MEMBERS_MAX)
		return perr(ps, lineno, 1, "list \"%s\": more than %d %s",
		    list, LIST_MEMBERS_MAX, what);
	if ((nv = reallocarray(*v, *n + 1, sizeof(*nv))) == NULL)
		return perr(ps, lineno, 1, "%s", strerror(errno));
	*v = nv;
	if ((nv[*n] = strdup(a)) == NULL)
		return perr(ps, lineno, 1, "%s", strerror(errno));
	(*n)++;
	return 0;
}

enum attr { A_NONE, A_MEMBERS, A_MODERATORS, A_MODERATED };

/* attr_of - the attribute word w starts ("members=..."), *val after '=' */
static enum attr
attr_of(const char *w, const char **val)
{
	static const struct {
		const char *name;
		enum attr a;
	} names[] = {
		{ "members=", A_MEMBERS }, { "moderators=", A_MODERATORS },
		{ "moderated=", A_MODERATED },
	};
	size_t	i, l;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		l = strlen(names[i].name);
		if (strncasecmp(w, names[i].name, l) == 0) {
			*val = w + l;
			return names[i].a;
		}
	}
	return A_NONE;
}

/* entry_words - the attributes after the colon into e */
static int
entry_words(struct parse *ps, struct list_entry *e, char *text,
    unsigned lineno)
{
	enum attr	 cur = A_NONE, a;
	const char	*val;
	char		*w, *save = NULL;
	int		 moderated_set = 0;

	for (w = strtok_r(text, " \t,", &save); w != NULL;
	    w = strtok_r(NULL, " \t,", &save)) {
		if ((a = attr_of(w, &val)) != A_NONE) {
			cur = a;
			if (*val == '\0' && a != A_MODERATED)
				continue;	/* "members= a, b" */
		} else
			val = w;
		switch (cur) {
		case A_NONE:
			return perr(ps, lineno, 1, "list \"%s\": \"%s\": "
			    "expected members=, moderators= or moderated=",
			    e->addr, w);
		case A_MEMBERS:
			if (add_addr(ps, lineno, e->addr, "members",
			    &e->members, &e->nmembers, val) == -1)
				return -1;
			break;
		case A_MODERATORS:
			if (add_addr(ps, lineno, e->addr, "moderators",
			    &e->moderators, &e->nmoderators, val) == -1)
				return -1;
			break;
		case A_MODERATED:
			if (moderated_set)
				return perr(ps, lineno, 1, "list \"%s\": "
				    "moderated= given twice", e->addr);
			if (strcasecmp(val, "yes") == 0)
				e->moderated = 1;
			else if (strcasecmp(val, "no") == 0)
				e->moderated = 0;
			else
				return perr(ps, lineno, 1, "list \"%s\": "
				    "moderated=%s: yes or no expected",
				    e->addr, val);
			moderated_set = 1;
			cur = A_NONE;	/* one value */
			break;
		}
	}
	return 0;
}

/* entry_parse - one logical entry "list@domain: attributes" */
static int
entry_parse(struct parse *ps, char *text, unsigned lineno)
{
	struct list_entry	 e;
	char			*colon, *name, *at;
	size_t			 i;
	int			 n;

	memset(&e, 0, sizeof(e));
	e.lineno = lineno;
	e.moderated = 1;
	if ((colon = strchr(text, ':')) == NULL)
		return perr(ps, lineno, 1, "expected \"LIST@DOMAIN: "
		    "members=... moderators=...\"");
	*colon = '\0';
	name = str_trim(text);
	if (*name == '\0')
		return perr(ps, lineno, 1, "missing list address");
	if (strpbrk(name, " \t\"") != NULL || name[0] == '.' ||
	    check_addr(name) == -1)
		return perr(ps, lineno, 1, "\"%s\": invalid list address "
		    "(LOCAL@DOMAIN expected)", name);
	if ((e.addr = strdup(name)) == NULL)
		goto nomem;
	str_lower(e.addr);
	at = strrchr(e.addr, '@');
	n = asprintf(&e.owner, "%.*s-owner%s", (int)(at - e.addr), e.addr, at);
	if (n < 0) {
		e.owner = NULL;
		goto nomem;
	}
	if (check_addr(e.owner) == -1) {
		perr(ps, lineno, 1, "list \"%s\": its owner address \"%s\" "
		    "is not a valid address (local part too long?)", e.addr,
		    e.owner);
		goto fail;
	}
	for (i = 0; i < ps->n; i++)
		if (strcmp(ps->e[i].addr, e.addr) == 0) {
			perr(ps, lineno, 1, "list \"%s\" repeated (first on "
			    "line %u)", e.addr, ps->e[i].lineno);
			goto fail;
		}
	if (entry_words(ps, &e, colon + 1, lineno) == -1)
		goto fail;
	if (e.nmembers == 0) {
		perr(ps, lineno, 1, "list \"%s\": no members", e.addr);
		goto fail;
	}
	if (e.moderated && e.nmoderators == 0) {
		perr(ps, lineno, 1, "list \"%s\": no moderators (add "
		    "moderators=, or moderated=no for an open list)", e.addr);
		goto fail;
	}
	for (i = 0; i < e.nmembers; i++)
		if (strcasecmp(e.members[i], e.addr) == 0) {
			perr(ps, lineno, 1, "list \"%s\" is a member of "
			    "itself", e.addr);
			goto fail;
		}
	if ((ps->n % 16) == 0) {
		struct list_entry *ne;

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
	return strcmp(((const struct list_entry *)a)->addr,
	    ((const struct list_entry *)b)->addr);
}

static const struct list_entry *
find(const struct list_entry *e, size_t n, const char *addr)
{
	struct list_entry	k;
	char			key[ADDR_MAX];
	int			l;

	if (e == NULL || n == 0 || addr == NULL)
		return NULL;
	l = snprintf(key, sizeof(key), "%s", addr);
	if (l < 0 || (size_t)l >= sizeof(key))
		return NULL;
	str_lower(key);
	k.addr = key;
	return bsearch(&k, e, n, sizeof(*e), entry_cmp);
}

/* no_loop - DFS from list i through members that are lists: -1 on a loop */
static int
no_loop(struct parse *ps, size_t i, unsigned char *mark)
{
	const struct list_entry	*m;
	size_t			 k, j;

	mark[i] = 1;			/* on the path */
	for (k = 0; k < ps->e[i].nmembers; k++) {
		if ((m = find(ps->e, ps->n, ps->e[i].members[k])) == NULL)
			continue;
		j = (size_t)(m - ps->e);
		if (mark[j] == 1)
			return perr(ps, ps->e[i].lineno, 1, "list \"%s\": "
			    "member \"%s\" makes nested lists loop",
			    ps->e[i].addr, ps->e[i].members[k]);
		if (mark[j] == 0 && no_loop(ps, j, mark) == -1)
			return -1;
	}
	mark[i] = 2;			/* done, no loop below */
	return 0;
}

/* lists_entry - entfile's callback: one logical list entry */
static int
lists_entry(void *arg, char *text, unsigned lineno)
{
	return entry_parse(arg, text, lineno);
}

/* lists_load - read and check the whole file; nothing half-loaded */
struct list_table *
lists_load(const char *path, char *err, size_t errlen)
{
	struct parse		 ps;
	struct list_table	*t = NULL;
	struct entfile		 f = { path, err, errlen, ENTRY_MAX, "a list",
				    0, lists_entry, NULL };
	unsigned char		*mark = NULL;
	size_t			 i;

	memset(&ps, 0, sizeof(ps));
	ps.path = path;
	ps.err = err;
	ps.errlen = errlen;
	f.arg = &ps;
	if (entfile_read(&f) == -1)
		goto fail;
	if (ps.n > 0) {
		qsort(ps.e, ps.n, sizeof(*ps.e), entry_cmp);
		if ((mark = calloc(ps.n, 1)) == NULL) {
			perr(&ps, 0, 0, "%s", strerror(errno));
			goto fail;
		}
		for (i = 0; i < ps.n; i++)
			if (mark[i] == 0 && no_loop(&ps, i, mark) == -1)
				goto fail;
	}
	if ((t = calloc(1, sizeof(*t))) == NULL ||
	    (t->path = strdup(path)) == NULL) {
		free(t);
		t = NULL;
		perr(&ps, 0, 0, "%s", strerror(errno));
		goto fail;
	}
	t->e = ps.e;
	t->n = ps.n;
	free(mark);
	return t;
fail:
	for (i = 0; i < ps.n; i++)
		entry_clear(&ps.e[i]);
	free(ps.e);
	free(mark);
	return NULL;
}

const struct list_entry *
lists_lookup(const struct list_table *t, const char *addr)
{
	if (t == NULL)
		return NULL;
	return find(t->e, t->n, addr);
}

int
lists_is_owner(const struct list_table *t, const char *addr)
{
	const char	*at;
	char		 list[ADDR_MAX];
	size_t		 ll;
	int		 n;

	if (t == NULL || addr == NULL || (at = strrchr(addr, '@')) == NULL)
		return 0;
	ll = (size_t)(at - addr);
	if (ll <= 6 || strncasecmp(at - 6, "-owner", 6) != 0)
		return 0;
	n = snprintf(list, sizeof(list), "%.*s%s", (int)(ll - 6), addr, at);
	if (n < 0 || (size_t)n >= sizeof(list))
		return 0;
	return find(t->e, t->n, list) != NULL;
}

int
lists_may_post(const struct list_entry *e, const char *sender)
{
	size_t	i;

	if (!e->moderated)
		return 1;
	if (sender == NULL || *sender == '\0')
		return 0;		/* <>: never a member */
	for (i = 0; i < e->nmembers; i++)
		if (strcasecmp(e->members[i], sender) == 0)
			return 1;
	for (i = 0; i < e->nmoderators; i++)
		if (strcasecmp(e->moderators[i], sender) == 0)
			return 1;
	return 0;
}

int
lists_check_domains(const struct list_table *t,
    int (*is_local)(const char *domain, void *arg), void *arg, char *err,
    size_t errlen)
{
	size_t	i;

	if (t == NULL)
		return 0;
	for (i = 0; i < t->n; i++)
		if (!is_local(strrchr(t->e[i].addr, '@') + 1, arg)) {
			(void)snprintf(err, errlen, "%s:%u: list \"%s\": its "
			    "domain is not in local_domains", t->path,
			    t->e[i].lineno, t->e[i].addr);
			return -1;
		}
	return 0;
}
