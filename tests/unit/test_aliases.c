#include "config.h"
/*
 * test_aliases.c - unit tests of common/aliases.c and the `aliases` key.
 * Parsing: comments, blank lines, continuation lines, case-insensitive
 * names, name@domain keys, bare local targets, trailing comma; errors
 * with "FILE:LINE: reason" (missing colon, empty target, bad address,
 * repeated name, continuation first, |command, /file, :include:);
 * cfg_load wrapping them as "CONF:LINE: aliases: ALIASFILE:LINE: ...".
 * Expansion: 1->1, 1->N, recursion through local domains only,
 * duplicates, the depth limit, loops (the member keeps its mailbox), the
 * recipient maximum.
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

#include "common/aliases.h"
#include "common/cfg.h"

static char	tmpdir[] = "/tmp/wm-test-aliases.XXXXXX";

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

static struct alias_table *
load(const char *text, char *err, size_t errlen)
{
	return aliases_load(write_file("aliases", text), err, errlen);
}

static int
is_local(const char *domain, void *arg)
{
	(void)arg;
	return strcasecmp(domain, "example.org") == 0 ||
	    strcasecmp(domain, "example.net") == 0;
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

static void
test_parse(void **state)
{
	struct alias_table		*t;
	const struct alias_entry	*e;
	char				 err[1024] = "";

	(void)state;
	t = load("# comment\n"
	    "\n"
	    "Staff: alice, bob@example.com,\n"
	    "   carol\n"
	    "\t# an indented comment\n"
	    "\tdave@example.net\n"
	    "one: x@example.com\n"
	    "sales@example.net: s1, s2,\n"
	    "postmaster: root\n", err, sizeof(err));
	if (t == NULL)
		fail_msg("load: %s", err);
	assert_int_equal(t->n, 4);
	assert_non_null(e = aliases_lookup(t, "STAFF", "example.org"));
	assert_string_equal(e->name, "staff");
	assert_int_equal(e->ntargets, 4);
	assert_string_equal(e->targets[0], "alice");
	assert_string_equal(e->targets[1], "bob@example.com");
	assert_string_equal(e->targets[2], "carol");
	assert_string_equal(e->targets[3], "dave@example.net");
	assert_int_equal(e->lineno, 3);
	assert_non_null(e = aliases_lookup(t, "sales", "Example.NET"));
	assert_int_equal(e->ntargets, 2);	/* trailing comma accepted */
	assert_null(aliases_lookup(t, "sales", "example.org"));
	assert_null(aliases_lookup(t, "nobody", "example.org"));
	assert_non_null(aliases_lookup(t, "Postmaster", NULL));
	aliases_free(t);

	/* empty file: an empty table */
	assert_non_null(t = load("# nothing\n", err, sizeof(err)));
	assert_int_equal(t->n, 0);
	aliases_free(t);
}

static void
test_errors(void **state)
{
	static const struct {
		const char *text, *want;
	} cases[] = {
		{ "a b\n", ":1: expected \"name: address, ...\"" },
		{ "x: y\n: z\n", ":2: missing alias name" },
		{ "a: b,,c\n", ":1: alias \"a\": empty target" },
		{ "a:\n", ":1: alias \"a\": empty target" },
		{ "a: b@\n", ":1: \"b@\": invalid address" },
		{ "a: b c\n", ":1: \"b c\": invalid address" },
		{ "a: b\nA: c\n", ":2: alias \"a\" repeated (first on line 1)" },
		{ "  a: b\n", ":1: continuation line without an alias before it" },
		{ "# x\na: b,\n |/usr/bin/x\n", ":2: \"|/usr/bin/x\": delivery to "
		    "a command is not supported (addresses only)" },
		{ "a: \"|cmd\"\n", ":1: \"\"|cmd\"\": delivery to a command" },
		{ "a: b, /var/mail/a\n", ":1: \"/var/mail/a\": delivery to a "
		    "file is not supported (addresses only)" },
		{ "a: :include:/etc/list\n", ":1: \":include:/etc/list\": "
		    ":include: is not supported (addresses only)" },
		{ "bad name: x\n", ":1: \"bad name\": invalid alias name" },
	};
	char		 err[1024], want[1024];
	const char	*path;
	size_t		 i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		err[0] = '\0';
		path = write_file("aliases", cases[i].text);
		(void)snprintf(want, sizeof(want), "%s%s", path, cases[i].want);
		if (aliases_load(path, err, sizeof(err)) != NULL)
			fail_msg("case %zu loaded", i);
		if (strncmp(err, want, strlen(want)) != 0)
			fail_msg("case %zu: got \"%s\", want \"%s\"", i, err, want);
	}
	(void)snprintf(want, sizeof(want), "%s/missing: cannot open: ", tmpdir);
	(void)snprintf(err, sizeof(err), "%s/missing", tmpdir);
	path = err;
	{
		char e2[1024] = "";

		assert_null(aliases_load(path, e2, sizeof(e2)));
		assert_true(strncmp(e2, want, strlen(want)) == 0);
	}
}

static void
test_cfg(void **state)
{
	struct config	*c;
	char		 err[1024] = "", text[1024], want[1024];
	const char	*ap, *cp;

	(void)state;
	ap = write_file("good.aliases", "list: a, b\n");
	(void)snprintf(text, sizeof(text), "local_domains = example.org\n"
	    "aliases = %s\n", ap);
	cp = write_file("w.conf", text);
	if ((c = cfg_load(cp, err, sizeof(err))) == NULL)
		fail_msg("cfg_load: %s", err);
	assert_non_null(c->alias_table);
	assert_non_null(aliases_lookup(c->alias_table, "LIST", "example.org"));
	cfg_free(c);

	/* no key: no table */
	cp = write_file("w.conf", "local_domains = example.org\n");
	assert_non_null(c = cfg_load(cp, err, sizeof(err)));
	assert_null(c->alias_table);
	cfg_free(c);

	ap = write_file("bad.aliases", "ok: a\nbad: |cmd\n");
	(void)snprintf(text, sizeof(text), "# x\naliases = %s\n", ap);
	cp = write_file("w.conf", text);
	(void)snprintf(want, sizeof(want), "%s:2: aliases: %s/bad.aliases:2: "
	    "\"|cmd\": delivery to a command", cp, tmpdir);
	assert_null(cfg_load(cp, err, sizeof(err)));
	if (strncmp(err, want, strlen(want)) != 0)
		fail_msg("got \"%s\", want \"%s\"", err, want);
}

/* expand_ok - expand addr; the result joined with ' ' must be want */
static void
expand_ok(const struct alias_table *t, const char *addr, size_t max,
    enum alias_result wantr, const char *want)
{
	char			**out, got[1024] = "";
	size_t			 n, i, o = 0;
	enum alias_result	 r;

	r = aliases_expand(t, addr, is_local, NULL, max, &out, &n);
	if (r != wantr)
		fail_msg("%s: result %d, want %d", addr, (int)r, (int)wantr);
	for (i = 0; i < n; i++)
		o += (size_t)snprintf(got + o, sizeof(got) - o, "%s%s",
		    i ? " " : "", out[i]);
	aliases_strv_free(out, n);
	if (want != NULL && strcmp(got, want) != 0)
		fail_msg("%s: got \"%s\", want \"%s\"", addr, got, want);
	if (r != ALIAS_EXPANDED)
		assert_int_equal(n, 0);
}

static void
test_expand(void **state)
{
	struct alias_table	*t;
	char			 err[1024] = "";

	(void)state;
	t = load("one: Target@Example.COM\n"
	    "list: alice, bob, alice@example.org, ext@example.com\n"
	    "outer: list, carol, one\n"
	    "remote: someone@example.com\n"
	    "viaremote: nested@example.com\n"
	    "nested@example.com: never@example.com\n"
	    "keepcopy: keepcopy, copy@example.com\n"
	    "loopa: loopb\n"
	    "loopb: loopa\n"
	    "d0: d1\nd1: d2\nd2: d3\nd3: d4\nd4: d5\nd5: d6\nd6: d7\n"
	    "d7: d8\nd8: d9\nd9: final\n"
	    "e1: e2\ne2: e3\ne3: e4\ne4: e5\ne5: e6\ne6: e7\ne7: e8\n"
	    "e8: ok\n"
	    "net@example.net: onlynet\n", err, sizeof(err));
	if (t == NULL)
		fail_msg("load: %s", err);

	expand_ok(t, "nobody@example.org", 100, ALIAS_NONE, "");
	expand_ok(t, "one@example.com", 100, ALIAS_NONE, "");	/* not local */
	expand_ok(t, "ONE@example.org", 100, ALIAS_EXPANDED,
	    "Target@Example.COM");
	/* bare local parts take the alias's domain; duplicates removed */
	expand_ok(t, "list@example.net", 100, ALIAS_EXPANDED,
	    "alice@example.net bob@example.net alice@example.org "
	    "ext@example.com");
	/* recursion; order of first appearance */
	expand_ok(t, "outer@example.org", 100, ALIAS_EXPANDED,
	    "alice@example.org bob@example.org ext@example.com "
	    "carol@example.org Target@Example.COM");
	/* a non-local target is final even when a key names it */
	expand_ok(t, "viaremote@example.org", 100, ALIAS_EXPANDED,
	    "nested@example.com");
	/* self reference: a copy stays in its own mailbox */
	expand_ok(t, "keepcopy@example.org", 100, ALIAS_EXPANDED,
	    "keepcopy@example.org copy@example.com");
	/* a loop: the member met again is delivered to its mailbox */
	expand_ok(t, "loopa@example.org", 100, ALIAS_EXPANDED,
	    "loopa@example.org");
	/* 8 levels below the address given are fine, 9 are not */
	expand_ok(t, "e1@example.org", 100, ALIAS_EXPANDED, "ok@example.org");
	expand_ok(t, "d0@example.org", 100, ALIAS_ERR_DEPTH, "");
	expand_ok(t, "d1@example.org", 100, ALIAS_EXPANDED,
	    "final@example.org");
	/* the maximum */
	expand_ok(t, "outer@example.org", 5, ALIAS_EXPANDED, NULL);
	expand_ok(t, "outer@example.org", 4, ALIAS_ERR_TOOMANY, "");
	/* domain-specific key */
	expand_ok(t, "net@example.net", 100, ALIAS_EXPANDED,
	    "onlynet@example.net");
	expand_ok(t, "net@example.org", 100, ALIAS_NONE, "");
	/* quoted local parts are never aliases */
	expand_ok(t, "\"one\"@example.org", 100, ALIAS_NONE, "");
	aliases_free(t);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_cfg),
		cmocka_unit_test(test_expand),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
