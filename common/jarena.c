#include "config.h"
/*
 * jarena.c - jansson's objects from a bump arena (jarena.h).
 * Owns: the list of blocks (JARENA_BLOCK bytes each, or one larger
 *       allocation), the block being filled.
 * Invariants: a block's used bytes are live objects of the current
 *       page; jarena_free of an arena pointer does nothing (rewound
 *       later), of any other pointer calls free(); blocks are malloc'd
 *       (mmap'd by glibc at this size, outside the heap).
 */

#include <stdlib.h>

#include <jansson.h>

#include "common/jarena.h"

struct jarena_blk {
	struct jarena_blk	*next;
	size_t			 used, cap;
	max_align_t		 data[];
};

static struct jarena_blk	*ja_head, *ja_cur;

/* in_blk - p lies in block b */
static int
in_blk(const struct jarena_blk *b, const void *p)
{
	return (const char *)p >= (const char *)b->data &&
	    (const char *)p < (const char *)b->data + b->cap;
}

void *
jarena_alloc(size_t n)
{
	struct jarena_blk	*b, *t;
	size_t			 al = sizeof(max_align_t), cap;
	void			*p;

	if (n > (size_t)-1 - al)
		return NULL;
	n = n == 0 ? al : (n + al - 1) / al * al;
	for (b = ja_cur; b != NULL; b = b->next)
		if (b->cap - b->used >= n)
			break;
	if (b == NULL) {
		cap = n > JARENA_BLOCK ? n : JARENA_BLOCK;
		if ((b = malloc(sizeof(*b) + cap)) == NULL)
			return NULL;
		b->used = 0;
		b->cap = cap;
		b->next = NULL;
		if (ja_head == NULL)
			ja_head = b;
		else {
			for (t = ja_head; t->next != NULL; t = t->next)
				;
			t->next = b;
		}
	}
	ja_cur = b;
	p = (char *)b->data + b->used;
	b->used += n;
	return p;
}

void
jarena_free(void *p)
{
	struct jarena_blk	*b;

	if (p == NULL)
		return;
	/* the block being filled first: jansson's parser and encoder free
	 * the buffers they just outgrew */
	if (ja_cur != NULL && in_blk(ja_cur, p))
		return;
	for (b = ja_head; b != NULL; b = b->next)
		if (in_blk(b, p))
			return;		/* the arena's: rewound later */
	free(p);
}

void
jarena_begin(void)
{
	json_set_alloc_funcs(jarena_alloc, jarena_free);
}

void
jarena_rewind(void)
{
	struct jarena_blk	*b;

	for (b = ja_head; b != NULL; b = b->next)
		b->used = 0;
	ja_cur = ja_head;
}

void
jarena_end(void)
{
	struct jarena_blk	*b, **bp;
	size_t			 kept = 0;

	json_set_alloc_funcs(malloc, free);
	jarena_rewind();
	for (bp = &ja_head; (b = *bp) != NULL; ) {
		if (kept + b->cap <= JARENA_KEEP) {
			kept += b->cap;
			bp = &b->next;
			continue;
		}
		*bp = b->next;
		free(b);
	}
	ja_cur = ja_head;
}

void
jarena_release(void)
{
	struct jarena_blk	*b, *n;

	for (b = ja_head; b != NULL; b = n) {
		n = b->next;
		free(b);
	}
	ja_head = ja_cur = NULL;
}

size_t
jarena_kept(void)
{
	struct jarena_blk	*b;
	size_t			 n = 0;

	for (b = ja_head; b != NULL; b = b->next)
		n += b->cap;
	return n;
}

void
jfree(void *p)
{
	json_free_t	f = NULL;

	json_get_alloc_funcs(NULL, &f);
	if (f != NULL)
		f(p);
	else
		free(p);
}
