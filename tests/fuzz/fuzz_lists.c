#include "config.h"
/*
 * fuzz_lists.c - the lists file and the aliases file parsers
 * (common/lists.c, common/aliases.c): the input is loaded as each.  A
 * loaded lists table finds each of its lists by address, knows its
 * owner address and lets every member post; a loaded aliases table
 * finds each of its names, and expanding each name (every domain local)
 * ends with a result, never more addresses than asked for.
 */

#include <string.h>

#include "common/aliases.h"
#include "common/lists.h"
#include "tests/fuzz/fuzz.h"

#define EXPAND_MAX	50

/* all_local - every domain is ours */
static int
all_local(const char *domain, void *arg)
{
	(void)domain;
	(void)arg;
	return 1;
}

/* check_lists - what lists_load built answers for itself */
static void
check_lists(const struct list_table *t)
{
	const struct list_entry	*e;
	char			 err[512];
	size_t			 i, j;

	for (i = 0; i < t->n; i++) {
		e = &t->e[i];
		FUZZ_CHECK(e->addr != NULL && strchr(e->addr, '@') != NULL);
		FUZZ_CHECK(lists_lookup(t, e->addr) == e);
		FUZZ_CHECK(e->owner != NULL && lists_is_owner(t, e->owner));
		for (j = 0; j < e->nmembers; j++)
			FUZZ_CHECK(lists_may_post(e, e->members[j]));
		for (j = 0; j < e->nmoderators; j++)
			FUZZ_CHECK(lists_may_post(e, e->moderators[j]));
		if (e->moderated)
			FUZZ_CHECK(e->nmoderators > 0);
	}
	FUZZ_CHECK(lists_check_domains(t, all_local, NULL, err,
	    sizeof(err)) == 0);
}

/* check_aliases - each name is found and expands */
static void
check_aliases(const struct alias_table *t)
{
	const struct alias_entry	*e;
	enum alias_result		 r;
	char				 addr[600], **out;
	const char			*at;
	size_t				 i, nout;

	for (i = 0; i < t->n; i++) {
		e = &t->e[i];
		if ((at = strchr(e->name, '@')) != NULL) {
			(void)snprintf(addr, sizeof(addr), "%s", e->name);
			addr[at - e->name] = '\0';
			FUZZ_CHECK(aliases_lookup(t, addr, at + 1) != NULL);
			(void)snprintf(addr, sizeof(addr), "%s", e->name);
		} else {
			FUZZ_CHECK(aliases_lookup(t, e->name,
			    "example.org") != NULL);
			(void)snprintf(addr, sizeof(addr), "%s@example.org",
			    e->name);
		}
		out = NULL;
		nout = 0;
		r = aliases_expand(t, addr, all_local, NULL, EXPAND_MAX, &out,
		    &nout);
		FUZZ_CHECK(r == ALIAS_NONE || r == ALIAS_EXPANDED ||
		    r == ALIAS_ERR_DEPTH || r == ALIAS_ERR_TOOMANY ||
		    r == ALIAS_ERR_NOMEM);
		if (r == ALIAS_EXPANDED) {
			FUZZ_CHECK(nout >= 1 && nout <= EXPAND_MAX);
			aliases_strv_free(out, nout);
		}
	}
}

/* LLVMFuzzerTestOneInput - one input, checked as the header comment says */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct list_table	*lt;
	struct alias_table	*at;
	const char		*path;
	char			 err[1024];

	if ((path = fuzz_file("lists", data, size)) == NULL)
		return 0;
	err[0] = '\0';
	if ((lt = lists_load(path, err, sizeof(err))) != NULL) {
		check_lists(lt);
		lists_free(lt);
	} else
		FUZZ_CHECK(err[0] != '\0');
	err[0] = '\0';
	if ((at = aliases_load(path, err, sizeof(err))) != NULL) {
		check_aliases(at);
		aliases_free(at);
	} else
		FUZZ_CHECK(err[0] != '\0');
	return 0;
}
