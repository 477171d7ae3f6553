/*
 * benchlib.h - what the benchmark tools (not installed) share:
 * benchlib.c's argument, error and clock helpers (every tool but
 * trksink) and benchspool.c's enter_spool (the spool loaders, which
 * link libqueue).  A tool defines bench_name and usage().
 */
#ifndef WAYMARK_BENCHLIB_H
#define WAYMARK_BENCHLIB_H

#include <stdint.h>

#include "common/log.h"

struct config;

/* bench_name - the tool's name, the prefix of die's messages */
extern const char	bench_name[];

/* usage - the tool's synopsis on stderr, exit 2 (the tool's own) */
void		usage(void) __attribute__((noreturn));
/* num - a positive decimal argument; usage() when it is not one */
uint64_t	num(const char *s);
/* die - "NAME: " and an error on stderr, exit 1 */
void		die(const char *fmt, ...) WM_PRINTF(1, 2)
		    __attribute__((noreturn));
/* mono - a monotonic clock in seconds */
double		mono(void);
/* enter_spool - create/check the spool, lock it, drop to `user` */
void		enter_spool(const struct config *cfg);

#endif
