/*
 * entfile.h - reading files of logical entries (the aliases and lists
 * files): a line that starts in column 0 begins an entry, a line that
 * starts with SP or HTAB continues it; blank lines and lines whose first
 * non-blank character is '#' are skipped; line ends (LF, CRLF) and
 * trailing blanks are dropped; a NUL octet is an error.  Errors are
 * written as "FILE:LINE: reason" or "FILE: reason".
 */
#ifndef WAYMARK_ENTFILE_H
#define WAYMARK_ENTFILE_H

#include <stdarg.h>
#include <stddef.h>

struct entfile {
	const char	*path;
	char		*err;		/* the reason on failure */
	size_t		 errlen;
	size_t		 max;		/* longest logical entry, in octets */
	const char	*what;		/* "an alias": for "continuation line
					 * without an alias before it" */
	int		 comma_join;	/* continuation lines are joined with
					 * ',' (none after a ','), else ' ' */
	/* entry - one logical entry (writable) that began at lineno; 0, or
	 * -1 with err set (it stops the reading) */
	int		(*entry)(void *arg, char *text, unsigned lineno);
	void		*arg;
};

/* entfile_verror - "PATH:LINE: reason" (lineno 0: "PATH: reason") into
 * err; returns -1 (the parsers' error helpers wrap it) */
int	entfile_verror(char *err, size_t errlen, const char *path,
	    unsigned lineno, const char *fmt, va_list ap);

/* entfile_read - every entry of f->path to f->entry, in order; 0 or -1 */
int	entfile_read(const struct entfile *f);

#endif
