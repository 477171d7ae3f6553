#include "config.h"
/*
 * fuzz_util.c - the scratch directory and input files of the harnesses
 * (fuzz.h).  The directory is made with mkdtemp under $TMPDIR (or /tmp)
 * on first use and removed with everything in it at exit.
 */

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/fuzz/fuzz.h"

static char	dir[256];

/* rm_tree - remove path and, for a directory, what is in it */
static void
rm_tree(const char *path)
{
	char		 sub[1024];
	DIR		*d;
	struct dirent	*de;

	if (unlink(path) == 0 || (d = opendir(path)) == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (snprintf(sub, sizeof(sub), "%s/%s", path, de->d_name) <
		    (int)sizeof(sub))
			rm_tree(sub);
	}
	closedir(d);
	(void)rmdir(path);
}

/* rm_dir - at exit: the scratch directory */
static void
rm_dir(void)
{
	if (dir[0] != '\0')
		rm_tree(dir);
}

const char *
fuzz_dir(void)
{
	const char	*tmp = getenv("TMPDIR");

	if (dir[0] != '\0')
		return dir;
	if (tmp == NULL || tmp[0] == '\0')
		tmp = "/tmp";
	if (snprintf(dir, sizeof(dir), "%s/wm-fuzz.XXXXXX", tmp) >=
	    (int)sizeof(dir) || mkdtemp(dir) == NULL) {
		dir[0] = '\0';
		return NULL;
	}
	atexit(rm_dir);
	return dir;
}

const char *
fuzz_file(const char *name, const uint8_t *data, size_t size)
{
	static char	 path[512];
	size_t		 off = 0;
	ssize_t		 w;
	int		 fd;

	if (fuzz_dir() == NULL || snprintf(path, sizeof(path), "%s/%s", dir,
	    name) >= (int)sizeof(path))
		return NULL;
	if ((fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600)) == -1)
		return NULL;
	while (off < size) {
		if ((w = write(fd, data + off, size - off)) <= 0) {
			close(fd);
			return NULL;
		}
		off += (size_t)w;
	}
	close(fd);
	return path;
}
