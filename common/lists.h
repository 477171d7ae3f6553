/*
 * lists.h - the lists file (`lists = FILE`): mailing lists with their
 * members and moderators, loaded once into an immutable table.
 * File format (README "Lists and moderation", etc/lists.example):
 *   LIST@DOMAIN: members=ADDR,ADDR... moderators=ADDR,... [moderated=yes|no]
 * '#' starts a comment line; a line starting with white space continues
 * the entry above.  After the colon, words are separated by commas
 * and/or white space; "members=", "moderators=" and "moderated=" start
 * an attribute, the words after one belong to it (attributes may
 * repeat and accumulate).  Addresses are full "local@domain" paths.
 * moderated defaults to yes, which needs at least one moderator;
 * moderated=no makes an open list (anyone may post).
 */
#ifndef WAYMARK_LISTS_H
#define WAYMARK_LISTS_H

#include <stddef.h>

#define LIST_MEMBERS_MAX	10000	/* members (or moderators) of one list */

struct list_entry {
	char		*addr;		/* lower-case "local@domain" */
	char		*owner;		/* "local-owner@domain": the envelope
					 * sender of what the list sends */
	char		**members;	/* in file order, no duplicates */
	size_t		 nmembers;
	char		**moderators;
	size_t		 nmoderators;
	int		 moderated;	/* non-members' posts wait for a moderator */
	unsigned	 lineno;
};

struct list_table {
	char		*path;		/* the file, for "lists FILE:LINE" */
	struct list_entry *e;		/* sorted by addr */
	size_t		 n;
};

/*
 * lists_load - parse path: NULL on error with err = "PATH:LINE: reason"
 * (or "PATH: reason" when the file cannot be read).  A list nested in
 * another list of the file is allowed unless the nesting loops.
 */
struct list_table	*lists_load(const char *path, char *err, size_t errlen);
void			 lists_free(struct list_table *t);
/* lists_lookup - the list whose address is addr (case-insensitive), or NULL */
const struct list_entry	*lists_lookup(const struct list_table *t,
			    const char *addr);
/* lists_is_owner - addr is "LIST-owner@DOMAIN" of a list of t */
int			 lists_is_owner(const struct list_table *t,
			    const char *addr);
/* lists_may_post - sender may post without moderation: the list is open,
 * or sender is a member or a moderator (case-insensitive) */
int			 lists_may_post(const struct list_entry *e,
			    const char *sender);
/*
 * lists_check_domains - every list's domain is local (is_local(domain,
 * arg) != 0): 0, or -1 with err = "PATH:LINE: reason"
 */
int			 lists_check_domains(const struct list_table *t,
			    int (*is_local)(const char *domain, void *arg),
			    void *arg, char *err, size_t errlen);

#endif
