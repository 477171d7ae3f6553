#include "config.h"
/*
 * test_lists.c - unit tests of common/lists.c and the `lists` key.
 * Parsing (a table of {name, file, want}): attributes on one line or on
 * continuation lines, commas and/or spaces, repeated attributes that
 * accumulate, duplicates removed, case-insensitive addresses, the owner
 * address, moderated= default and values; errors with "FILE:LINE:
 * reason" (missing colon, bad list or member address, unknown word,
 * no members, no moderators, repeated list, bad moderated=, a list that
 * is its own member, nested lists that loop, continuation first);
 * lookups (lists_lookup, lists_is_owner, lists_may_post); cfg_load
 * wrapping errors as "CONF:LINE: lists: LISTSFILE:LINE: ..." and
 * refusing a list outside local_domains.
 */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <cmocka.h>

#include "common/cfg.h"
#include "common/lists.h"

#define NELEM(a)	(sizeof(a) / sizeof((a)[0]))

static char	tmpdir[] = "/tmp/wm-test-lists.XXXXXX";

static const char *
write_file(const char *name, const char *text)
{
	static char	path[512];
	FILE		*fp;

	assert_true(snprintf(path, sizeof(path), "%s/%s", tmpdir, name) <
	    (int)sizeof(path));
	assert_non_null(fp = fopen(path, "w"));
	assert_true(fputs(text, fp) >= 0);
	assert_int_equal(fclose(fp), 0);
	return path;
}

static int
setup(void **state)
{
	(void)state;
	return mkdtemp(tmpdir) == NULL ? -1 : 0;
}

static int
teardown(void **state)
{
	char	cmd[600];

	(void)state;
	(void)snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

/* describe - one list as "addr owner=O mod=0|1 m=a,b M=c,d line=N" */
static void
describe(const struct list_entry *e, char *out, size_t outlen)
{
	size_t	o, k;

	o = (size_t)snprintf(out, outlen, "%s owner=%s mod=%d m=", e->addr,
	    e->owner, e->moderated);
	for (k = 0; k < e->nmembers && o < outlen; k++)
		o += (size_t)snprintf(out + o, outlen - o, "%s%s", k ? "," : "",
		    e->members[k]);
	if (o < outlen)
		o += (size_t)snprintf(out + o, outlen - o, " M=");
	for (k = 0; k < e->nmoderators && o < outlen; k++)
		o += (size_t)snprintf(out + o, outlen - o, "%s%s", k ? "," : "",
		    e->moderators[k]);
	if (o < outlen)
		(void)snprintf(out + o, outlen - o, " line=%u", e->lineno);
}

static void
test_parse(void **state)
{
	static const struct {
		const char *name, *text, *lookup, *want;
	} cases[] = {
		{ "one line", "a@example.org: members=x@example.org,"
		    "y@example.com moderators=m@example.org\n", "a@example.org",
		  "a@example.org owner=a-owner@example.org mod=1 "
		  "m=x@example.org,y@example.com M=m@example.org line=1" },
		{ "continuations, spaces after commas, comments",
		  "# lists\n\nAnnounce@Example.ORG:\n"
		  "  members= x@example.org, y@example.org,\n"
		  "\t# a comment inside\n"
		  "\tz@example.org\n"
		  "  moderators=m@example.org n@example.org\n",
		  "announce@example.org",
		  "announce@example.org owner=announce-owner@example.org mod=1 "
		  "m=x@example.org,y@example.org,z@example.org "
		  "M=m@example.org,n@example.org line=3" },
		{ "attributes repeat and accumulate, duplicates dropped",
		  "l@example.org: members=a@example.org members=b@example.org,"
		  "A@example.org moderators=m@example.org\n", "L@EXAMPLE.ORG",
		  "l@example.org owner=l-owner@example.org mod=1 "
		  "m=a@example.org,b@example.org M=m@example.org line=1" },
		{ "open list", "open@example.org: members=a@example.org "
		  "moderated=no\n", "open@example.org",
		  "open@example.org owner=open-owner@example.org mod=0 "
		  "m=a@example.org M= line=1" },
		{ "explicit moderated=YES, keys in any case",
		  "k@example.org: Moderated=YES MEMBERS=a@example.org "
		  "moderators=m@example.org\n", "k@example.org",
		  "k@example.org owner=k-owner@example.org mod=1 "
		  "m=a@example.org M=m@example.org line=1" },
		{ "nested lists without a loop",
		  "all@example.org: members=team@example.org, boss@example.org "
		  "moderated=no\n"
		  "team@example.org: members=a@example.org moderated=no\n",
		  "all@example.org",
		  "all@example.org owner=all-owner@example.org mod=0 "
		  "m=team@example.org,boss@example.org M= line=1" },
	};
	struct list_table		*t;
	const struct list_entry		*e;
	char				 err[1024], got[2048];
	size_t				 i;

	(void)state;
	for (i = 0; i < NELEM(cases); i++) {
		err[0] = '\0';
		t = lists_load(write_file("lists", cases[i].text), err,
		    sizeof(err));
		if (t == NULL)
			fail_msg("%s: got error \"%s\", want a table",
			    cases[i].name, err);
		if ((e = lists_lookup(t, cases[i].lookup)) == NULL)
			fail_msg("%s: got no list %s", cases[i].name,
			    cases[i].lookup);
		describe(e, got, sizeof(got));
		if (strcmp(got, cases[i].want) != 0)
			fail_msg("%s: got \"%s\", want \"%s\"", cases[i].name,
			    got, cases[i].want);
		lists_free(t);
	}
	/* an empty file: an empty table */
	assert_non_null(t = lists_load(write_file("lists", "# none\n"), err,
	    sizeof(err)));
	assert_int_equal(t->n, 0);
	assert_null(lists_lookup(t, "a@example.org"));
	lists_free(t);
}

static void
test_errors(void **state)
{
	static const struct {
		const char *name, *text, *want;
	} cases[] = {
		{ "no colon", "a@example.org members=x@example.org\n",
		  ":1: expected \"LIST@DOMAIN: members=... moderators=...\"" },
		{ "no address", ": members=x@example.org\n",
		  ":1: missing list address" },
		{ "bare local part", "staff: members=x@example.org\n",
		  ":1: \"staff\": invalid list address" },
		{ "quoted list", "\"a b\"@example.org: members=x@example.org\n",
		  ":1: \"\"a b\"@example.org\": invalid list address" },
		{ "word before any attribute",
		  "a@example.org: x@example.org\n",
		  ":1: list \"a@example.org\": \"x@example.org\": expected "
		  "members=, moderators= or moderated=" },
		{ "unknown attribute", "a@example.org: owners=x@example.org\n",
		  ":1: list \"a@example.org\": \"owners=x@example.org\": "
		  "expected members=" },
		{ "bad member", "# x\na@example.org: members=x@example.org\n"
		  " y@ moderators=m@example.org\n",
		  ":2: list \"a@example.org\": \"y@\": invalid address" },
		{ "bare member", "a@example.org: members=bob "
		  "moderators=m@example.org\n",
		  ":1: list \"a@example.org\": \"bob\": invalid address "
		  "(LOCAL@DOMAIN expected)" },
		{ "no members", "a@example.org: moderators=m@example.org\n",
		  ":1: list \"a@example.org\": no members" },
		{ "no moderators", "a@example.org: members=x@example.org\n",
		  ":1: list \"a@example.org\": no moderators (add moderators=, "
		  "or moderated=no for an open list)" },
		{ "moderated=yes without moderators",
		  "a@example.org: members=x@example.org moderated=yes\n",
		  ":1: list \"a@example.org\": no moderators" },
		{ "bad moderated", "a@example.org: members=x@example.org "
		  "moderated=maybe\n",
		  ":1: list \"a@example.org\": moderated=maybe: yes or no "
		  "expected" },
		{ "moderated twice", "a@example.org: members=x@example.org "
		  "moderated=no moderated=no\n",
		  ":1: list \"a@example.org\": moderated= given twice" },
		{ "repeated list", "a@example.org: members=x@example.org "
		  "moderated=no\n\nA@example.org: members=y@example.org "
		  "moderated=no\n",
		  ":3: list \"a@example.org\" repeated (first on line 1)" },
		{ "member of itself", "a@example.org: members=A@example.org "
		  "moderated=no\n",
		  ":1: list \"a@example.org\" is a member of itself" },
		{ "nested loop", "a@example.org: members=b@example.org "
		  "moderated=no\nb@example.org: members=c@example.org "
		  "moderated=no\nc@example.org: members=a@example.org "
		  "moderated=no\n", "" /* line depends on the walk */ },
		{ "continuation first", "  members=x@example.org\n",
		  ":1: continuation line without a list before it" },
	};
	char		 err[1024], want[1024];
	const char	*path;
	size_t		 i;

	(void)state;
	for (i = 0; i < NELEM(cases); i++) {
		err[0] = '\0';
		path = write_file("lists", cases[i].text);
		if (lists_load(path, err, sizeof(err)) != NULL)
			fail_msg("%s: got a table, want an error", cases[i].name);
		(void)snprintf(want, sizeof(want), "%s%s", path, cases[i].want);
		if (strncmp(err, want, strlen(want)) != 0)
			fail_msg("%s: got \"%s\", want \"%s...\"", cases[i].name,
			    err, want);
		if (cases[i].want[0] == '\0' &&
		    strstr(err, "makes nested lists loop") == NULL)
			fail_msg("%s: got \"%s\", want a loop", cases[i].name,
			    err);
	}
	(void)snprintf(want, sizeof(want), "%s/missing: cannot open: ", tmpdir);
	(void)snprintf(err, sizeof(err), "%s/missing", tmpdir);
	{
		char e2[1024] = "";

		assert_null(lists_load(err, e2, sizeof(e2)));
		if (strncmp(e2, want, strlen(want)) != 0)
			fail_msg("got \"%s\", want \"%s...\"", e2, want);
	}
}

static void
test_lookups(void **state)
{
	static const struct {
		const char *list, *sender;
		int want;
	} posts[] = {
		{ "mod@example.org", "Member@Example.org", 1 },
		{ "mod@example.org", "boss@example.org", 1 },	/* moderator */
		{ "mod@example.org", "stranger@example.com", 0 },
		{ "mod@example.org", "", 0 },			/* <> */
		{ "open@example.org", "stranger@example.com", 1 },
		{ "open@example.org", "", 1 },
	};
	static const struct {
		const char *addr;
		int want;
	} owners[] = {
		{ "mod-owner@example.org", 1 }, { "MOD-OWNER@example.org", 1 },
		{ "open-owner@example.org", 1 }, { "mod@example.org", 0 },
		{ "x-owner@example.org", 0 }, { "-owner@example.org", 0 },
		{ "mod-owner@example.com", 0 }, { "owner", 0 },
	};
	struct list_table	*t;
	char			 err[1024];
	size_t			 i;
	int			 got;

	(void)state;
	t = lists_load(write_file("lists", "mod@example.org: "
	    "members=member@example.org moderators=boss@example.org\n"
	    "open@example.org: members=member@example.org moderated=no\n"),
	    err, sizeof(err));
	if (t == NULL)
		fail_msg("load: %s", err);
	for (i = 0; i < NELEM(posts); i++) {
		got = lists_may_post(lists_lookup(t, posts[i].list),
		    posts[i].sender);
		if (got != posts[i].want)
			fail_msg("may_post(%s, <%s>): got %d, want %d",
			    posts[i].list, posts[i].sender, got, posts[i].want);
	}
	for (i = 0; i < NELEM(owners); i++) {
		got = lists_is_owner(t, owners[i].addr);
		if (got != owners[i].want)
			fail_msg("is_owner(%s): got %d, want %d",
			    owners[i].addr, got, owners[i].want);
	}
	assert_null(lists_lookup(t, "mod-owner@example.org"));
	assert_null(lists_lookup(NULL, "mod@example.org"));
	lists_free(t);
}

static void
test_cfg(void **state)
{
	struct config	*c;
	char		 err[1024] = "", text[1024], want[1024], lp[512];
	const char	*cp;

	(void)state;
	snprintf(lp, sizeof(lp), "%s", write_file("good.lists",
	    "l@example.org: members=a@example.org moderated=no\n"));
	(void)snprintf(text, sizeof(text), "local_domains = example.org\n"
	    "lists = %s\n", lp);
	cp = write_file("w.conf", text);
	if ((c = cfg_load(cp, err, sizeof(err))) == NULL)
		fail_msg("cfg_load: %s", err);
	assert_non_null(c->list_table);
	assert_string_equal(c->list_table->path, lp);
	assert_non_null(lists_lookup(c->list_table, "L@example.org"));
	cfg_free(c);

	/* no key: no table */
	cp = write_file("w.conf", "local_domains = example.org\n");
	assert_non_null(c = cfg_load(cp, err, sizeof(err)));
	assert_null(c->list_table);
	cfg_free(c);

	/* a parse error: CONF:LINE: lists: LISTS:LINE: reason */
	snprintf(lp, sizeof(lp), "%s", write_file("bad.lists",
	    "l@example.org: members=a@example.org moderated=no\n"
	    "m@example.org: members=a@example.org\n"));
	(void)snprintf(text, sizeof(text), "# x\nlists = %s\n", lp);
	cp = write_file("w.conf", text);
	(void)snprintf(want, sizeof(want), "%s:2: lists: %s:2: list "
	    "\"m@example.org\": no moderators", cp, lp);
	assert_null(cfg_load(cp, err, sizeof(err)));
	if (strncmp(err, want, strlen(want)) != 0)
		fail_msg("got \"%s\", want \"%s...\"", err, want);

	/* a list outside local_domains, whatever the order of the keys */
	snprintf(lp, sizeof(lp), "%s", write_file("far.lists",
	    "l@example.org: members=a@example.org moderated=no\n"
	    "far@example.com: members=a@example.org moderated=no\n"));
	(void)snprintf(text, sizeof(text), "lists = %s\n"
	    "local_domains = example.org\n", lp);
	cp = write_file("w.conf", text);
	(void)snprintf(want, sizeof(want), "%s:1: lists: %s:2: list "
	    "\"far@example.com\": its domain is not in local_domains", cp, lp);
	assert_null(cfg_load(cp, err, sizeof(err)));
	if (strcmp(err, want) != 0)
		fail_msg("got \"%s\", want \"%s\"", err, want);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_lookups),
		cmocka_unit_test(test_cfg),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
