/*
 * fuzz.h - what the libFuzzer harnesses of tests/fuzz/ share: the entry
 * point's prototype, FUZZ_CHECK (a broken property aborts, which both
 * libFuzzer and the replay runner report with the input), a private
 * scratch directory and a file written from the input's bytes.
 * Each harness is one fuzz_NAME.c defining LLVMFuzzerTestOneInput; it is
 * linked with libFuzzer (make fuzz) or with replay.c (make check).
 */
#ifndef WAYMARK_FUZZ_H
#define WAYMARK_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int	LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* FUZZ_CHECK - a property every input must keep */
#define FUZZ_CHECK(cond) do {						\
	if (!(cond)) {							\
		fprintf(stderr, "%s:%d: property failed: %s\n",		\
		    __FILE__, __LINE__, #cond);				\
		abort();						\
	}								\
} while (0)

/*
 * fuzz_file - write data[0..size) to a file in a scratch directory made
 * once per process (removed at exit) under name; its path (static
 * storage), or NULL.
 */
const char	*fuzz_file(const char *name, const uint8_t *data, size_t size);
/* fuzz_dir - the scratch directory, made on first use; NULL on failure */
const char	*fuzz_dir(void);

/*
 * fuzz_msg - a message made from the input (fuzz_msg.c): text fields,
 * times, state, up to FUZZ_RCPTS recipients (maybe none); *hostname a
 * malloc'd string or NULL.  NULL on ENOMEM.  Free with qmsg_free.
 */
#define FUZZ_RCPTS	6
struct qmsg;
struct qmsg	*fuzz_msg(const uint8_t *data, size_t size, char **hostname);

#endif
