#include "config.h"
/*
 * log.c - the one logging sink of the daemon and the CLI.
 * Owns: the line format on stderr
 *       "2026-12-01T01:02:03.123Z waymarkd[PID]: info: text",
 *       syslog(3) output (facility LOG_MAIL) when configured, the debug
 *       switch, fatal exits, and log_escape() for peer text.
 * Invariants: each line is formatted into one local buffer and written
 *       with a single write(2) (or syslog(3) call), so lines from worker
 *       threads never interleave; overlong lines are cut, ending in "...".
 * Not here: what to log (callers log one event per line, id first).
 */

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"

#define LOG_LINE_MAX	2048

static const char	*log_ident = "waymark";
static int		 log_to_syslog;
static int		 log_debug_on;
static pid_t		 log_pid;	/* 0: ask getpid() (one syscall per line
					 * otherwise); a fork's child forgets it */

static void
log_forget_pid(void)
{
	log_pid = 0;
}

/* log_init - choose the sink; ident is the program name */
void
log_init(const char *ident, int use_syslog, int debug)
{
	if (log_to_syslog && !use_syslog)
		closelog();
	static int	atfork_set;

	if (!atfork_set && pthread_atfork(NULL, NULL, log_forget_pid) == 0)
		atfork_set = 1;
	log_pid = 0;
	if (ident != NULL)
		log_ident = ident;
	log_to_syslog = use_syslog;
	log_debug_on = debug;
	if (use_syslog)
		openlog(log_ident, LOG_PID | LOG_NDELAY, LOG_MAIL);
}

void
log_set_debug(int debug)
{
	log_debug_on = debug;
}

/* log_emit - format one line and hand it to the sink in one call */
static void
log_emit(int pri, const char *level, int errnum, const char *fmt, va_list ap)
{
	char		 line[LOG_LINE_MAX];
	char		 ebuf[128];
	const char	*estr = NULL;
	size_t		 n = 0, body;
	int		 r;

	if (errnum >= 0)
		estr = strerror_r(errnum, ebuf, sizeof(ebuf));

	if (!log_to_syslog) {
		struct timespec	ts;
		struct tm	tm;

		clock_gettime(CLOCK_REALTIME, &ts);
		gmtime_r(&ts.tv_sec, &tm);
		if (log_pid == 0)
			log_pid = getpid();
		r = snprintf(line, sizeof(line),
		    "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s[%ld]: ",
		    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
		    tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000L, log_ident,
		    (long)log_pid);
		if (r < 0 || (size_t)r >= sizeof(line))
			r = 0;
		n = (size_t)r;
	}
	body = n;
	r = snprintf(line + n, sizeof(line) - n, "%s: ", level);
	if (r > 0)
		n += (size_t)r < sizeof(line) - n ? (size_t)r : sizeof(line) - n - 1;
	r = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
	if (r > 0)
		n += (size_t)r < sizeof(line) - n ? (size_t)r : sizeof(line) - n - 1;
	if (estr != NULL && n < sizeof(line) - 1) {
		r = snprintf(line + n, sizeof(line) - n, ": %s", estr);
		if (r > 0)
			n += (size_t)r < sizeof(line) - n ?
			    (size_t)r : sizeof(line) - n - 1;
	}
	/* cut: keep room for "...\n" */
	if (n > sizeof(line) - 5) {
		n = sizeof(line) - 5;
		memcpy(line + n, "...", 3);
		n += 3;
	}

	if (log_to_syslog) {
		line[n] = '\0';
		syslog(pri, "%s", line + body);
	} else {
		line[n++] = '\n';
		/* one write per line; a short write to stderr is not retried */
		if (write(STDERR_FILENO, line, n) < 0) {
			/* nowhere left to report it */
		}
	}
}

void
log_info(const char *fmt, ...)
{
	va_list	ap;
	int	saved = errno;

	va_start(ap, fmt);
	log_emit(LOG_INFO, "info", -1, fmt, ap);
	va_end(ap);
	errno = saved;
}

void
log_warn(const char *fmt, ...)
{
	va_list	ap;
	int	saved = errno;

	va_start(ap, fmt);
	log_emit(LOG_WARNING, "warning", saved, fmt, ap);
	va_end(ap);
	errno = saved;
}

void
log_warnx(const char *fmt, ...)
{
	va_list	ap;
	int	saved = errno;

	va_start(ap, fmt);
	log_emit(LOG_WARNING, "warning", -1, fmt, ap);
	va_end(ap);
	errno = saved;
}

void
log_debug(const char *fmt, ...)
{
	va_list	ap;
	int	saved = errno;

	if (!log_debug_on)
		return;
	va_start(ap, fmt);
	log_emit(LOG_DEBUG, "debug", -1, fmt, ap);
	va_end(ap);
	errno = saved;
}

void
fatal(const char *fmt, ...)
{
	va_list	ap;
	int	saved = errno;

	va_start(ap, fmt);
	log_emit(LOG_CRIT, "fatal", saved, fmt, ap);
	va_end(ap);
	exit(1);
}

void
fatalx(const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	log_emit(LOG_CRIT, "fatal", -1, fmt, ap);
	va_end(ap);
	exit(1);
}

/* log_escape - printable, quotable copy of peer text (see log.h) */
char *
log_escape(char *dst, size_t dstlen, const char *src, size_t srclen)
{
	static const char	 hex[] = "0123456789abcdef";
	size_t			 i, o = 0, need = 0, room;
	int			 cut;

	if (dstlen == 0)
		return dst;
	/* does everything fit? */
	for (i = 0; i < srclen; i++) {
		unsigned char ch = (unsigned char)src[i];

		if (ch == '"' || ch == '\\')
			need += 2;
		else if (ch < 0x20 || ch > 0x7e)
			need += 4;
		else
			need += 1;
	}
	cut = need >= dstlen;
	room = dstlen - 1;
	if (cut)
		room = dstlen > 4 ? dstlen - 4 : 0;

	for (i = 0; i < srclen; i++) {
		unsigned char ch = (unsigned char)src[i];

		if (ch == '"' || ch == '\\') {
			if (o + 2 > room)
				break;
			dst[o++] = '\\';
			dst[o++] = (char)ch;
		} else if (ch < 0x20 || ch > 0x7e) {
			if (o + 4 > room)
				break;
			dst[o++] = '\\';
			dst[o++] = 'x';
			dst[o++] = hex[ch >> 4];
			dst[o++] = hex[ch & 0xf];
		} else {
			if (o + 1 > room)
				break;
			dst[o++] = (char)ch;
		}
	}
	if (cut) {
		for (i = 0; i < 3 && o < dstlen - 1; i++)
			dst[o++] = '.';
	}
	dst[o] = '\0';
	return dst;
}
