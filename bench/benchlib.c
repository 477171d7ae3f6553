#include "config.h"
/*
 * benchlib.c - the benchmark tools' argument, error and clock helpers
 * (benchlib.h).
 */

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "bench/benchlib.h"

/* num - a positive decimal argument */
uint64_t
num(const char *s)
{
	char			*end;
	unsigned long long	 v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v == 0)
		usage();
	return v;
}

/* die - an error on stderr, exit 1 */
void
die(const char *fmt, ...)
{
	va_list	ap;

	fprintf(stderr, "%s: ", bench_name);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

/* mono - a monotonic clock in seconds */
double
mono(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}
