#include "config.h"
/*
 * replay.c - main() for the harnesses without libFuzzer (make check, any
 * compiler): LLVMFuzzerTestOneInput on every file of
 * $srcdir/tests/fuzz/corpus/NAME/ and $srcdir/tests/fuzz/regress/NAME/
 * (NAME is FUZZ_NAME, set by Makefile.am), or on the files given as
 * arguments.  Each input is passed in a buffer of exactly its size, so
 * the sanitizer build sees an over-read.  A harness that finds a broken
 * property aborts; exit 1 when a directory is missing or empty.
 */

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "tests/fuzz/fuzz.h"

#ifndef FUZZ_NAME
#error FUZZ_NAME must name the harness
#endif

/* run_file - one input; 0, or -1 when it cannot be read */
static int
run_file(const char *path)
{
	FILE		*fp;
	struct stat	 st;
	uint8_t		*buf;
	size_t		 n;

	if ((fp = fopen(path, "rb")) == NULL || fstat(fileno(fp), &st) == -1) {
		fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
		if (fp != NULL)
			fclose(fp);
		return -1;
	}
	/* exactly the input's size (malloc(0) may be NULL: one spare) */
	if ((buf = malloc(st.st_size > 0 ? (size_t)st.st_size : 1)) == NULL) {
		fclose(fp);
		return -1;
	}
	n = fread(buf, 1, (size_t)st.st_size, fp);
	fclose(fp);
	if (n != (size_t)st.st_size) {
		fprintf(stderr, "replay: %s: short read\n", path);
		free(buf);
		return -1;
	}
	(void)LLVMFuzzerTestOneInput(buf, n);
	free(buf);
	return 0;
}

/* run_dir - every regular file of dir, in name order; the count or -1 */
static int
run_dir(const char *dir, int must)
{
	struct dirent	**names;
	char		  path[1024];
	int		  n, i, count = 0;

	if ((n = scandir(dir, &names, NULL, alphasort)) == -1) {
		if (!must && errno == ENOENT)
			return 0;
		fprintf(stderr, "replay: %s: %s\n", dir, strerror(errno));
		return -1;
	}
	for (i = 0; i < n; i++) {
		if (names[i]->d_name[0] != '.' && snprintf(path, sizeof(path),
		    "%s/%s", dir, names[i]->d_name) < (int)sizeof(path)) {
			fprintf(stderr, "replay: %s\n", path);
			if (run_file(path) == -1)
				count = -1;
			else if (count >= 0)
				count++;
		}
		free(names[i]);
	}
	free(names);
	return count;
}

int
main(int argc, char **argv)
{
	const char	*srcdir = getenv("srcdir");
	char		 dir[1024], abs[PATH_MAX];
	int		 i, n, m;

	if (argc > 1) {
		/* absolute first: a harness may change the directory */
		for (i = 1; i < argc; i++)
			if ((argv[i] = realpath(argv[i], NULL)) == NULL) {
				fprintf(stderr, "replay: %s\n", strerror(errno));
				return 1;
			}
		for (i = 1; i < argc; i++)
			if (run_file(argv[i]) == -1)
				return 1;
		return 0;
	}
	if (srcdir == NULL || srcdir[0] == '\0')
		srcdir = ".";
	/* absolute: a harness may change the working directory */
	if ((srcdir = realpath(srcdir, abs)) == NULL) {
		fprintf(stderr, "replay: srcdir: %s\n", strerror(errno));
		return 1;
	}
	(void)snprintf(dir, sizeof(dir), "%s/tests/fuzz/corpus/%s", srcdir,
	    FUZZ_NAME);
	if ((n = run_dir(dir, 1)) <= 0) {
		fprintf(stderr, "replay: %s: no seed inputs\n", dir);
		return 1;
	}
	(void)snprintf(dir, sizeof(dir), "%s/tests/fuzz/regress/%s", srcdir,
	    FUZZ_NAME);
	if ((m = run_dir(dir, 0)) < 0)
		return 1;
	printf("replay %s: %d seed and %d regression inputs passed\n",
	    FUZZ_NAME, n, m);
	return 0;
}
