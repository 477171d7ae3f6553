/*
 * log.h - logging for the daemon and the CLI.
 * Lines go to stderr (foreground, the default) or syslog (key `syslog`).
 * One event per line, id first, then key=value pairs.  log_warn appends
 * ": strerror(errno)".  fatal/fatalx are for start-up, configuration and
 * broken invariants only, never for peer input.
 */
#ifndef WAYMARK_LOG_H
#define WAYMARK_LOG_H

#include <stddef.h>

#define WM_PRINTF(a, b) __attribute__((format(printf, a, b)))

/* log_init - choose the sink; ident is the program name */
void log_init(const char *ident, int use_syslog, int debug);
void log_set_debug(int debug);
void log_info(const char *fmt, ...) WM_PRINTF(1, 2);
void log_warn(const char *fmt, ...) WM_PRINTF(1, 2);
void log_warnx(const char *fmt, ...) WM_PRINTF(1, 2);
void log_debug(const char *fmt, ...) WM_PRINTF(1, 2);
_Noreturn void fatal(const char *fmt, ...) WM_PRINTF(1, 2);
_Noreturn void fatalx(const char *fmt, ...) WM_PRINTF(1, 2);

/*
 * log_escape - copy src (srclen bytes, may hold any octet) to dst as
 * printable ASCII: '"' and '\\' are backslash-escaped, other octets outside
 * 0x20-0x7e become \xHH.  Always NUL-terminates (dstlen > 0); truncates with
 * "..." when dst is too small.  Returns dst.
 */
char *log_escape(char *dst, size_t dstlen, const char *src, size_t srclen);

#endif
