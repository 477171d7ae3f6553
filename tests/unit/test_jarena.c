#include "config.h"
/*
 * test_jarena.c - unit tests of jansson's objects from an arena
 * (common/jarena.c): a page of objects built, encoded and dropped in
 * arena mode takes its memory from the arena and a rewound arena gives
 * the same memory to the next page (no new block); an object made
 * before jarena_begin and freed inside goes to free() (the sanitizers'
 * build sees a leak or a bad free otherwise); jarena_end keeps at most
 * JARENA_KEEP bytes and gives jansson malloc/free back; an allocation
 * larger than a block gets a block of its own; jfree frees a json_dumps
 * string in either mode.
 */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "common/jarena.h"

/* page - n objects like a listing's, encoded; the encoding's length */
static size_t
page(size_t n)
{
	json_t	*a, *o;
	char	*s, qid[32];
	size_t	 i, len;

	assert_non_null(a = json_array());
	for (i = 0; i < n; i++) {
		snprintf(qid, sizeof(qid), "008EAq%010zu", i);
		o = json_pack("{s:s,s:I,s:s,s:[{s:s,s:s}]}", "queue_id", qid,
		    "size", (json_int_t)(4096 + i), "sender",
		    "sender@example.com", "recipients", "address",
		    "user@example.org", "status", "queued");
		assert_non_null(o);
		assert_int_equal(json_array_append_new(a, o), 0);
	}
	assert_non_null(s = json_dumps(a, JSON_COMPACT));
	len = strlen(s);
	jfree(s);
	json_decref(a);
	return len;
}

/* the arena is used, rewound and used again without a new block */
static void
test_pages_reuse_the_arena(void **state)
{
	size_t	kept, len1, len2;

	(void)state;
	jarena_begin();
	len1 = page(2000);
	kept = jarena_kept();
	assert_true(kept >= JARENA_BLOCK);	/* the objects were the arena's */
	jarena_rewind();
	len2 = page(2000);
	assert_int_equal(len1, len2);
	assert_int_equal(jarena_kept(), kept);	/* no block added */
	jarena_end();
	jarena_release();
	assert_int_equal(jarena_kept(), 0);
}

/* an object made with malloc before begin, freed inside, reaches free():
 * without it LeakSanitizer reports the object */
static void
test_object_from_before(void **state)
{
	json_t	*before;

	(void)state;
	assert_non_null(before = json_pack("{s:s,s:[i,i,i]}", "made",
	    "before the arena", "list", 1, 2, 3));
	jarena_begin();
	(void)page(10);
	json_decref(before);		/* malloc's: to free() */
	jarena_end();
	jarena_release();
}

/* after jarena_end: malloc/free again, at most JARENA_KEEP bytes kept */
static void
test_end_keeps_a_bounded_arena(void **state)
{
	void	*big[12];
	json_t	*o;
	size_t	 i;

	(void)state;
	jarena_begin();
	for (i = 0; i < 12; i++)	/* 12 MiB: more than JARENA_KEEP */
		assert_non_null(big[i] = jarena_alloc(JARENA_BLOCK));
	assert_true(jarena_kept() >= 12 * (size_t)JARENA_BLOCK);
	jarena_end();
	assert_true(jarena_kept() <= JARENA_KEEP);
	assert_true(jarena_kept() > 0);
	/* jansson's objects are malloc's now: freed by free() */
	assert_non_null(o = json_pack("{s:s}", "after", "the arena"));
	json_decref(o);
	(void)page(5);
	jarena_release();
}

/* an allocation larger than a block gets its own; smaller ones go on */
static void
test_large_allocation(void **state)
{
	char	*p, *q;

	(void)state;
	jarena_begin();
	assert_non_null(p = jarena_alloc(3 * (size_t)JARENA_BLOCK));
	memset(p, 'x', 3 * (size_t)JARENA_BLOCK);
	assert_non_null(q = jarena_alloc(100));
	memset(q, 'y', 100);
	assert_int_equal(p[3 * (size_t)JARENA_BLOCK - 1], 'x');
	assert_null(jarena_alloc((size_t)-1));	/* no overflow */
	jarena_free(p);			/* the arena's: nothing happens */
	jarena_free(NULL);
	jarena_end();
	jarena_release();
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pages_reuse_the_arena),
		cmocka_unit_test(test_object_from_before),
		cmocka_unit_test(test_end_keeps_a_bounded_arena),
		cmocka_unit_test(test_large_allocation),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
