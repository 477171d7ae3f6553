/*
 * jarena.h - jansson's objects from a bump arena, for answers built of
 * thousands of small objects that all die together (a page of a queue
 * listing).  malloc/free of them, with glibc's consolidation of the
 * freed chunks, was a quarter to three quarters of a listing's time,
 * most where the heap was fragmented by a long-running daemon.
 *
 * jansson's allocator is process-wide: between jarena_begin and
 * jarena_end every jansson allocation in the process comes from the
 * arena, so only one thread may use jansson meanwhile (waymarkd: the
 * loop thread; the workers and the commit thread never use jansson).
 * An object made before jarena_begin may be freed inside (jarena_free
 * hands a pointer the arena did not give to free()); an object made
 * inside must be dead (never used or freed again) by jarena_rewind or
 * jarena_end.  Implemented in common/jarena.c.
 */
#ifndef WAYMARK_JARENA_H
#define WAYMARK_JARENA_H

#include <stddef.h>

/* jarena_begin - jansson allocates from the arena from now on */
void	jarena_begin(void);
/* jarena_rewind - every object made in the arena is dead: its memory is
 * used again (still in arena mode) */
void	jarena_rewind(void);
/* jarena_end - rewind and give jansson malloc/free back; blocks up to
 * JARENA_KEEP bytes are kept for the next begin (only the pages a
 * listing touched are resident), the rest freed */
void	jarena_end(void);
/* jarena_release - free every block (at exit, for leak checkers) */
void	jarena_release(void);
/* jarena_alloc / jarena_free - the functions given to jansson */
void	*jarena_alloc(size_t n);
void	 jarena_free(void *p);
/* jfree - free what jansson allocated for the caller (a json_dumps
 * string) with jansson's free function of the moment: the arena's
 * inside begin/end, else free() */
void	 jfree(void *p);
/* jarena_kept - bytes of blocks held (unit tests) */
size_t	 jarena_kept(void);

#define JARENA_BLOCK	(1024 * 1024)
#define JARENA_KEEP	(8 * 1024 * 1024)

#endif
