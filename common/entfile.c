#include "config.h"
/*
 * entfile.c - the logical-entry reader shared by the aliases and lists
 * parsers (entfile.h): continuation lines, comments, blank lines, line
 * ends, the bound on an entry's length, FILE:LINE errors.
 * Not here: what an entry means (common/aliases.c, common/lists.c).
 */

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/entfile.h"
#include "common/log.h"

int
entfile_verror(char *err, size_t errlen, const char *path, unsigned lineno,
    const char *fmt, va_list ap)
{
	char	w[512];

	(void)vsnprintf(w, sizeof(w), fmt, ap);
	if (lineno > 0)
		(void)snprintf(err, errlen, "%s:%u: %s", path, lineno, w);
	else
		(void)snprintf(err, errlen, "%s: %s", path, w);
	return -1;
}

static int WM_PRINTF(3, 4)
ferr(const struct entfile *f, unsigned lineno, const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	(void)entfile_verror(f->err, f->errlen, f->path, lineno, fmt, ap);
	va_end(ap);
	return -1;
}

int
entfile_read(const struct entfile *f)
{
	FILE		*fp;
	char		*line = NULL, *cur = NULL, *s, *e;
	size_t		 cap = 0, curlen = 0, l;
	ssize_t		 got;
	unsigned	 lineno = 0, curline = 0;
	int		 rc = -1;

	if ((fp = fopen(f->path, "r")) == NULL)
		return ferr(f, 0, "cannot open: %s", strerror(errno));
	if ((cur = malloc(f->max)) == NULL) {
		ferr(f, 0, "%s", strerror(errno));
		goto out;
	}
	cur[0] = '\0';
	while ((got = getline(&line, &cap, fp)) != -1) {
		lineno++;
		if (strlen(line) != (size_t)got) {
			ferr(f, lineno, "NUL character");
			goto out;
		}
		e = line + got;
		while (e > line && (e[-1] == '\n' || e[-1] == '\r' ||
		    e[-1] == ' ' || e[-1] == '\t'))
			*--e = '\0';
		for (s = line; *s == ' ' || *s == '\t'; s++)
			;
		if (*s == '\0' || *s == '#')
			continue;		/* blank or comment line */
		if (s != line) {		/* continuation */
			if (curline == 0) {
				ferr(f, lineno, "continuation line without %s "
				    "before it", f->what);
				goto out;
			}
		} else {
			if (curline != 0 && f->entry(f->arg, cur, curline) == -1)
				goto out;
			curline = lineno;
			curlen = 0;
			cur[0] = '\0';
		}
		l = strlen(s);
		if (curlen + l + 2 > f->max) {
			ferr(f, lineno, "entry too long");
			goto out;
		}
		if (curlen > 0) {	/* a line end separates words too */
			char sep = f->comma_join && cur[curlen - 1] != ',' ?
			    ',' : ' ';

			cur[curlen++] = sep;
		}
		memcpy(cur + curlen, s, l + 1);
		curlen += l;
	}
	if (ferror(fp)) {
		ferr(f, 0, "cannot read: %s", strerror(errno));
		goto out;
	}
	if (curline != 0 && f->entry(f->arg, cur, curline) == -1)
		goto out;
	rc = 0;
out:
	free(cur);
	free(line);
	fclose(fp);
	return rc;
}
