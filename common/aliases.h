/*
 * aliases.h - the aliases file (`aliases = FILE`): load, look up, expand.
 * File format: "name: target, target..." lines; '#' starts a comment
 * line; a line starting with white space continues the previous entry.
 * name is a local part (case-insensitive, applies to every local domain)
 * or "local@domain" (that domain only; tried first).  A target is an
 * address "user@domain" or a bare local part (= that name at the domain
 * of the address being expanded).  "|command", "/file" and ":include:"
 * are refused at load time.
 */
#ifndef WAYMARK_ALIASES_H
#define WAYMARK_ALIASES_H

#include <stddef.h>

#define ALIAS_DEPTH_MAX		8	/* nesting levels below the address given */
#define ALIAS_TARGETS_MAX	1000	/* targets in one entry */

struct alias_entry {
	char		*name;		/* lower-case "local" or "local@domain" */
	char		**targets;	/* as written (bare local parts kept bare) */
	size_t		 ntargets;
	unsigned	 lineno;
};

struct alias_table {
	struct alias_entry *e;		/* sorted by name */
	size_t		 n;
};

/*
 * aliases_load - parse path.  NULL on error with err = "PATH:LINE: reason"
 * (or "PATH: reason" when the file cannot be read).
 */
struct alias_table	*aliases_load(const char *path, char *err, size_t errlen);
void			 aliases_free(struct alias_table *t);
/* aliases_lookup - the entry for local@domain ("local@domain" key first,
 * then "local"); case-insensitive; NULL if none */
const struct alias_entry *aliases_lookup(const struct alias_table *t,
	    const char *local, const char *domain);

enum alias_result {
	ALIAS_NONE = 0,		/* addr is not an alias: nothing to do */
	ALIAS_EXPANDED = 1,	/* *out holds the final addresses (>= 1) */
	ALIAS_ERR_DEPTH = -1,	/* nesting deeper than ALIAS_DEPTH_MAX */
	ALIAS_ERR_TOOMANY = -2,	/* more than max final addresses */
	ALIAS_ERR_NOMEM = -3
};

/*
 * aliases_expand - expand addr ("local@domain") recursively: a target
 * whose domain is local (is_local(domain, arg) != 0) and that is itself
 * an alias is expanded in turn.  Loops: an address met again while it is
 * being expanded (an ancestor) is final, i.e. delivered to its own
 * mailbox, as sendmail does.  Duplicates (case-insensitive) are removed,
 * order of first appearance kept.  On ALIAS_EXPANDED, *out / *nout are
 * the final addresses (free with aliases_strv_free).
 */
enum alias_result aliases_expand(const struct alias_table *t, const char *addr,
	    int (*is_local)(const char *domain, void *arg), void *arg,
	    size_t max, char ***out, size_t *nout);
void			 aliases_strv_free(char **v, size_t n);

#endif
