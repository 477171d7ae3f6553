/*
 * util.h - small helpers: RFC 5322 dates, queue ids, file-system syncs,
 * free-space checks, address formatting, the disconnect counters, the
 * "[host]:port" syntax of configuration and command-line values.
 */
#ifndef WAYMARK_UTIL_H
#define WAYMARK_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include <sys/socket.h>

/* rfc5322_date - "Tue, 4 Mar 2025 10:15:02 +0100" (local time, numeric zone); -1 on overflow */
int	rfc5322_date(time_t t, char *out, size_t outlen);

/*
 * Queue ids: QID_LEN characters of [0-9A-Za-z], strictly increasing in
 * time order within a spool: base62 of microseconds since the epoch (11
 * chars, zero-padded) + 5 random base62 chars.  qid_init(floor) makes
 * every later id greater than the id whose microsecond value is floor
 * (the persisted high-water mark), so ids are never reused even when the
 * clock steps back.
 */
#define QID_LEN		16
#define QID_SIZE	(QID_LEN + 1)
void	 qid_init(uint64_t floor_usec);
/* qid_new - writes a fresh id; returns its microsecond value (persist it as the high-water mark) */
uint64_t qid_new(char out[QID_SIZE]);
/* qid_valid - 8..32 chars of [0-9A-Za-z] */
int	 qid_valid(const char *s);

/* fsync_dir - open dir, fsync it, close; 0 or -1 */
int	fsync_dir(const char *dir);
/* mkdir_p - create dir and parents with mode; 0 or -1 */
int	mkdir_p(const char *dir, unsigned mode);
/*
 * dir_open_safe - open the absolute directory path (creating missing
 * components with mode when create; *created = the last one was made)
 * and return an O_RDONLY fd, or -1 with a reason in why.  As root, a
 * symbolic link is followed only in a directory owned by root and not
 * group/world writable: never one planted by the daemon's user.
 */
int	dir_open_safe(const char *path, unsigned mode, int create,
	    int *created, char *why, size_t whylen);
/*
 * dir_make_owned - dir_open_safe(dir, mode, create) and fstat into st;
 * with uid != -1, a root-owned dir that was just created (or any
 * root-owned one when give_root_owned) is handed to uid:gid with fchown
 * on the fd.  The fd, or -1 with a reason in why.
 */
struct stat;
int	dir_make_owned(const char *dir, unsigned mode, long uid, long gid,
	    int give_root_owned, struct stat *st, char *why, size_t whylen);
/* fs_free_bytes - free bytes for unprivileged users on the file system of path, or -1 */
int64_t	fs_free_bytes(const char *path);

/* sockaddr_text - "192.0.2.1" / "2001:db8::1" (no port); out >= 64 */
int	sockaddr_text(const struct sockaddr *sa, char *out, size_t outlen);
/* sockaddr_literal - "[192.0.2.1]" / "[IPv6:2001:db8::1]"; out >= 72 */
int	sockaddr_literal(const struct sockaddr *sa, char *out, size_t outlen);

/* str_lower - lower-case ASCII in place */
void	str_lower(char *s);
/* strv_free - free v[0..n-1] and v (v may be NULL) */
void	strv_free(char **v, size_t n);
/* write_full - all n bytes of p to fd (EINTR retried); 0 or -1 */
int	write_full(int fd, const char *p, size_t n);
/* str_trim - strip leading/trailing SP/HTAB in place; returns the start */
char	*str_trim(char *s);
/* xstrdup / xmalloc - exit on failure: start-up only */
char	*xstrdup(const char *s);
void	*xcalloc(size_t n, size_t sz);

/*
 * verb_counters - a server's per-verb counters as logged at disconnect,
 * "ehlo=1 mail=1 rcpt=2/3": for each i < n with total[i] > 0 and
 * name(i) not NULL, name(i) lower-cased "=" total[i], or ok[i]/total[i]
 * when they differ, separated by SP ("" when none).  0, or -1 when out
 * is too small.
 */
int	verb_counters(char *out, size_t outlen, const char *(*name)(size_t),
	    const uint32_t *ok, const uint32_t *total, size_t n);

/*
 * host_port_split - "HOST", "HOST:PORT", "[HOST]", "[HOST]:PORT", or a
 * bare IPv6 address (more than one ':': no port): HOST without the
 * brackets into host (NUL-terminated), *bracketed = 1 for the "[...]"
 * forms, *port = PORT (1..65535), left alone when there is none.  0, or
 * -1 on bad syntax, an empty HOST or one that does not fit, a bad PORT.
 */
int	host_port_split(const char *s, char *host, size_t hostlen,
	    int *bracketed, unsigned *port);

/*
 * Text from the network, made safe to show (RFC 3629 for UTF-8):
 * utf8_len - the length (1-4) of the well-formed UTF-8 sequence at p
 * (n octets there): no overlong form, no surrogate, at most U+10FFFF;
 * 0 when p does not start one.
 * text_safe - s in place for a terminal: every octet of a C0 control
 * (HTAB: a space), DEL, a C1 control (U+0080-U+009F) or of no
 * well-formed UTF-8 sequence becomes '?'; the length is unchanged.
 * utf8_repair - a copy of s (malloc'd) with every octet of no
 * well-formed UTF-8 sequence as U+FFFD (what JSON needs); NULL on ENOMEM.
 */
size_t	utf8_len(const unsigned char *p, size_t n);
void	text_safe(char *s);
char	*utf8_repair(const char *s);

/* mono_us / mono_ms - CLOCK_MONOTONIC micro- / milliseconds (0 if the
 * clock cannot be read); mono_sec - seconds (time(NULL) then): the clock
 * of deadlines and failure windows, which wall-clock steps must not move */
uint64_t	mono_us(void);
uint64_t	mono_ms(void);
time_t		mono_sec(void);

/*
 * tcp_listen - a non-blocking, close-on-exec TCP socket bound to sa with
 * SO_REUSEADDR (IPV6_V6ONLY for IPv6) and listening with a backlog of
 * SOMAXCONN, as every listener of the daemon has; its fd, or -1 with
 * errno set and *failed "socket" when socket() itself failed (NULL for
 * the other steps), so callers keep their own error texts.
 */
int		tcp_listen(const struct sockaddr *sa, socklen_t len,
		    const char **failed);

/*
 * text_is_reply - 1 when a recipient's last text (with code, from the
 * host remote, "host[addr]") is that host's own reply, 0 when it is
 * Waymark's text: no host, no code, or a text naming the host (every
 * text of our own about a host does, delivery/dlv_smtp.c).  DSNs and
 * tracking answers say "host H said:" and "Diagnostic-Code: smtp;" only
 * for replies.
 */
int		text_is_reply(const char *remote, int code, const char *text);
/* hex_digit - the value of one hex digit (either case), or -1 */
int		hex_digit(int c);

#endif
