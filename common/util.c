#include "config.h"
/*
 * util.c - small helpers shared by every part.
 * Owns: RFC 5322 date-time text (section 3.3, numeric zone), queue ids
 *       (base62 microseconds + randomness, strictly increasing within the
 *       process and above the spool's persisted floor), directory fsync,
 *       mkdir -p, directories handed to the daemon's user (fchown on
 *       the open fd, never by name), free-space checks, socket address text and SMTP
 *       address literals (RFC 5321 4.1.3), start-up allocators,
 *       network text made safe to show (text_safe: a terminal;
 *       utf8_repair: JSON; RFC 3629's well-formed UTF-8).
 * Invariants: qid_new() is called from the loop thread only (no lock);
 *       IPv4-mapped IPv6 addresses are shown as IPv4.
 */

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/time.h>
#include <unistd.h>

#include <sys/random.h>

#include "common/log.h"
#include "common/util.h"

static const char	b62[] =
    "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/* rfc5322_date - "Tue, 4 Mar 2025 10:15:02 +0100" in local time */
int
rfc5322_date(time_t t, char *out, size_t outlen)
{
	static const char *const days[] = {
		"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"
	};
	static const char *const months[] = {
		"Jan", "Feb", "Mar", "Apr", "May", "Jun",
		"Jul", "Aug", "Sep", "Oct", "Nov", "Dec"
	};
	struct tm	tm;
	long		off;
	int		n;

	if (localtime_r(&t, &tm) == NULL)
		return -1;
	if (tm.tm_wday < 0 || tm.tm_wday > 6 || tm.tm_mon < 0 ||
	    tm.tm_mon > 11)
		return -1;
	off = tm.tm_gmtoff / 60;
	n = snprintf(out, outlen, "%s, %d %s %d %02d:%02d:%02d %c%02ld%02ld",
	    days[tm.tm_wday], tm.tm_mday, months[tm.tm_mon],
	    tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec,
	    off < 0 ? '-' : '+', labs(off) / 60, labs(off) % 60);
	if (n < 0 || (size_t)n >= outlen)
		return -1;
	return 0;
}

/* queue ids */

static uint64_t	qid_last;	/* microsecond value of the last id */
static unsigned char	qid_rnd[256];	/* from getrandom: the last */
static size_t		qid_rnd_left;	/* qid_rnd_left octets are unused */

void
qid_init(uint64_t floor_usec)
{
	if (floor_usec > qid_last)
		qid_last = floor_usec;
}

/* qid_new - a fresh id, greater than every earlier one */
uint64_t
qid_new(char out[QID_SIZE])
{
	struct timeval	tv;
	unsigned char	rnd[QID_LEN - 11];
	uint64_t	now, v;
	size_t		i;

	gettimeofday(&tv, NULL);
	now = (uint64_t)tv.tv_sec * 1000000u + (uint64_t)tv.tv_usec;
	if (now <= qid_last)
		now = qid_last + 1;
	qid_last = now;

	v = now;
	for (i = 11; i-- > 0; ) {
		out[i] = b62[v % 62];
		v /= 62;
	}
	/* getrandom, not RAND_bytes: keeps libcrypto's pages out of an
	 * idle daemon that has no TLS session (footprint target); taken
	 * from a pool filled for about 50 QIDs at a time (a system call
	 * per message saved) */
	if (qid_rnd_left < sizeof(rnd)) {
		if (getrandom(qid_rnd, sizeof(qid_rnd), GRND_NONBLOCK) ==
		    (ssize_t)sizeof(qid_rnd))
			qid_rnd_left = sizeof(qid_rnd);
	}
	if (qid_rnd_left >= sizeof(rnd)) {
		qid_rnd_left -= sizeof(rnd);
		memcpy(rnd, qid_rnd + qid_rnd_left, sizeof(rnd));
	} else {
		/* not fatal: uniqueness comes from the time part */
		for (i = 0; i < sizeof(rnd); i++)
			rnd[i] = (unsigned char)((now >> (i * 7)) ^ (i * 37));
	}
	for (i = 0; i < sizeof(rnd); i++)
		out[11 + i] = b62[rnd[i] % 62];
	out[QID_LEN] = '\0';
	return now;
}

/* qid_valid - 8..32 chars of [0-9A-Za-z] */
int
qid_valid(const char *s)
{
	size_t	n;

	if (s == NULL)
		return 0;
	for (n = 0; s[n] != '\0'; n++) {
		unsigned char c = (unsigned char)s[n];

		if (n >= 32)
			return 0;
		if (!((c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') ||
		    (c >= 'a' && c <= 'z')))
			return 0;
	}
	return n >= 8;
}

/* file system */

/* fsync_dir - make a directory's entries durable */
int
fsync_dir(const char *dir)
{
	int	fd, r, saved;

	if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1)
		return -1;
	r = fsync(fd);
	saved = errno;
	close(fd);
	errno = saved;
	return r == 0 ? 0 : -1;
}

/* mkdir_p - create dir and its missing parents */
int
mkdir_p(const char *dir, unsigned mode)
{
	char		path[PATH_MAX];
	struct stat	st;
	size_t		len, i;

	len = strlen(dir);
	if (len == 0 || len >= sizeof(path)) {
		errno = len ? ENAMETOOLONG : ENOENT;
		return -1;
	}
	memcpy(path, dir, len + 1);
	for (i = 1; i <= len; i++) {
		if (path[i] != '/' && path[i] != '\0')
			continue;
		if (path[i - 1] == '/')
			continue;	/* "//" */
		path[i] = '\0';
		if (mkdir(path, (mode_t)mode) == -1) {
			if (errno != EEXIST)
				return -1;
			if (stat(path, &st) == -1)
				return -1;
			if (!S_ISDIR(st.st_mode)) {
				errno = ENOTDIR;
				return -1;
			}
		}
		if (i < len)
			path[i] = '/';
	}
	return 0;
}

/* dir_trusted - only root can change names in the directory fd */
static int
dir_trusted(int fd)
{
	struct stat	st;

	return fstat(fd, &st) == 0 && st.st_uid == 0 &&
	    (st.st_mode & (S_IWGRP | S_IWOTH)) == 0;
}

/*
 * dir_open_safe - open the directory path (absolute) as root without
 * following a symbolic link another user could have planted: each
 * component is opened relative to its parent with O_NOFOLLOW, and a
 * link is followed only when its parent is root's alone (owned by root,
 * not group or world writable: root's or the admin's link, /var/run).
 * Missing components are made with mkdirat (mode) when create is set;
 * *created tells whether the last one was.  Not root: a plain open.
 */
int
dir_open_safe(const char *path, unsigned mode, int create, int *created,
    char *why, size_t whylen)
{
	struct stat	 st;
	char		 comp[NAME_MAX + 1];
	const char	*p, *e = NULL;	/* e: end of the component at fault */
	const char	*op = "open";
	size_t		 len;
	int		 fd, nfd, made = 0;

	*created = 0;
	if (path[0] != '/') {
		snprintf(why, whylen, "%s: not an absolute path", path);
		return -1;
	}
	if (geteuid() != 0) {
		made = stat(path, &st) == -1 && errno == ENOENT;
		if (create && made && mkdir_p(path, mode) == -1) {
			snprintf(why, whylen, "cannot create %s: %s", path,
			    strerror(errno));
			return -1;
		}
		if ((fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC))
		    == -1) {
			snprintf(why, whylen, "cannot open %s: %s", path,
			    strerror(errno));
			return -1;
		}
		*created = create && made;
		return fd;
	}
	if ((fd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC)) == -1) {
		snprintf(why, whylen, "cannot open /: %s", strerror(errno));
		return -1;
	}
	for (p = path; ; p = e) {
		while (*p == '/')
			p++;
		if (*p == '\0')
			break;
		if ((e = strchr(p, '/')) == NULL)
			e = p + strlen(p);
		if ((len = (size_t)(e - p)) > NAME_MAX) {
			errno = ENAMETOOLONG;
			goto fail_errno;
		}
		memcpy(comp, p, len);
		comp[len] = '\0';
		made = 0;
		nfd = openat(fd, comp, O_PATH | O_DIRECTORY | O_NOFOLLOW |
		    O_CLOEXEC);
		if (nfd == -1 && errno == ENOENT && create) {
			if (mkdirat(fd, comp, (mode_t)mode) == 0)
				made = 1;
			else if (errno != EEXIST) {
				op = "create";
				goto fail_errno;
			}
			nfd = openat(fd, comp, O_PATH | O_DIRECTORY |
			    O_NOFOLLOW | O_CLOEXEC);
		}
		if (nfd == -1 && (errno == ENOTDIR || errno == ELOOP) &&
		    fstatat(fd, comp, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		    S_ISLNK(st.st_mode)) {
			if (!dir_trusted(fd)) {
				snprintf(why, whylen, "%.*s is a symbolic link "
				    "in a directory other users can write: "
				    "refusing to follow it", (int)(e - path),
				    path);
				close(fd);
				return -1;
			}
			/* root's own link */
			nfd = openat(fd, comp, O_PATH | O_DIRECTORY |
			    O_CLOEXEC);
		}
		if (nfd == -1)
			goto fail_errno;
		close(fd);
		fd = nfd;
	}
	e = NULL;
	nfd = openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (nfd == -1)
		goto fail_errno;
	close(fd);
	*created = made;
	return nfd;

fail_errno:
	snprintf(why, whylen, "cannot %s %.*s: %s", op, (int)(e != NULL ? (size_t)(e - path) : strlen(path)),
	    path, strerror(errno));
	close(fd);
	return -1;
}

/*
 * dir_make_owned - open dir (dir_open_safe, created when missing) and
 * return the fd; as root (uid != -1), a directory owned by root that was
 * just created, or any when give_root_owned, goes to uid:gid by fchown
 * on that fd, never by name.
 */
int
dir_make_owned(const char *dir, unsigned mode, long uid, long gid,
    int give_root_owned, struct stat *st, char *why, size_t whylen)
{
	int	fd, created;

	if ((fd = dir_open_safe(dir, mode, 1, &created, why, whylen)) == -1)
		return -1;
	if (fstat(fd, st) == -1) {
		snprintf(why, whylen, "cannot stat %s: %s", dir,
		    strerror(errno));
		goto fail;
	}
	if (uid == -1 || st->st_uid != 0 || (!created && !give_root_owned))
		return fd;
	if (fchown(fd, (uid_t)uid, (gid_t)gid) == -1) {
		snprintf(why, whylen, "chown %s: %s", dir, strerror(errno));
		goto fail;
	}
	st->st_uid = (uid_t)uid;
	st->st_gid = (gid_t)gid;
	return fd;
fail:
	close(fd);
	return -1;
}

/* fs_free_bytes - space left for unprivileged users */
int64_t
fs_free_bytes(const char *path)
{
	struct statvfs	sv;
	uint64_t	n;

	if (statvfs(path, &sv) == -1)
		return -1;
	n = (uint64_t)sv.f_bavail * (uint64_t)sv.f_frsize;
	if (n > (uint64_t)INT64_MAX)
		n = (uint64_t)INT64_MAX;
	return (int64_t)n;
}

/* addresses */

/* sockaddr_v4 - the IPv4 address of sa (also IPv4-mapped IPv6), or NULL */
static const struct in_addr *
sockaddr_v4(const struct sockaddr *sa, struct in_addr *tmp)
{
	const struct sockaddr_in6	*s6;

	if (sa->sa_family == AF_INET)
		return &((const struct sockaddr_in *)(const void *)sa)->sin_addr;
	if (sa->sa_family == AF_INET6) {
		s6 = (const struct sockaddr_in6 *)(const void *)sa;
		if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
			memcpy(tmp, &s6->sin6_addr.s6_addr[12], 4);
			return tmp;
		}
	}
	return NULL;
}

int
sockaddr_text(const struct sockaddr *sa, char *out, size_t outlen)
{
	const struct in_addr	*a4;
	struct in_addr		 tmp;

	if (out == NULL || outlen == 0)
		return -1;
	if ((a4 = sockaddr_v4(sa, &tmp)) != NULL) {
		if (inet_ntop(AF_INET, a4, out, (socklen_t)outlen) == NULL)
			return -1;
		return 0;
	}
	if (sa->sa_family == AF_INET6) {
		if (inet_ntop(AF_INET6,
		    &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr,
		    out, (socklen_t)outlen) == NULL)
			return -1;
		return 0;
	}
	if (sa->sa_family == AF_UNIX) {
		int n = snprintf(out, outlen, "local");

		return n < 0 || (size_t)n >= outlen ? -1 : 0;
	}
	errno = EAFNOSUPPORT;
	return -1;
}

int
sockaddr_literal(const struct sockaddr *sa, char *out, size_t outlen)
{
	char		 text[INET6_ADDRSTRLEN];
	struct in_addr	 tmp;
	int		 n;

	if (sockaddr_text(sa, text, sizeof(text)) == -1)
		return -1;
	if (sockaddr_v4(sa, &tmp) != NULL || sa->sa_family != AF_INET6)
		n = snprintf(out, outlen, "[%s]", text);
	else
		n = snprintf(out, outlen, "[IPv6:%s]", text);
	if (n < 0 || (size_t)n >= outlen)
		return -1;
	return 0;
}

void
str_lower(char *s)
{
	for (; *s != '\0'; s++)
		if (*s >= 'A' && *s <= 'Z')
			*s = (char)(*s - 'A' + 'a');
}

void
strv_free(char **v, size_t n)
{
	size_t	i;

	if (v == NULL)
		return;
	for (i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

int
write_full(int fd, const char *p, size_t n)
{
	ssize_t	w;

	while (n > 0) {
		if ((w = write(fd, p, n)) == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

char *
str_trim(char *s)
{
	char	*e;

	while (*s == ' ' || *s == '\t')
		s++;
	e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
		*--e = '\0';
	return s;
}

char *
xstrdup(const char *s)
{
	char	*p;

	if ((p = strdup(s)) == NULL)
		fatal("strdup");
	return p;
}

void *
xcalloc(size_t n, size_t sz)
{
	void	*p;

	if ((p = calloc(n ? n : 1, sz ? sz : 1)) == NULL)
		fatal("calloc");
	return p;
}

/* verb_counters - "ehlo=1 mail=1 rcpt=2/3" (ok/total when they differ) */
int
verb_counters(char *out, size_t outlen, const char *(*name)(size_t),
    const uint32_t *ok, const uint32_t *total, size_t n)
{
	size_t		 i, off = 0;
	char		 lc[16];
	const char	*verb;
	int		 r;

	out[0] = '\0';
	for (i = 0; i < n; i++) {
		if (total[i] == 0 || (verb = name(i)) == NULL)
			continue;
		r = snprintf(lc, sizeof(lc), "%s", verb);
		if (r < 0 || (size_t)r >= sizeof(lc))
			return -1;
		str_lower(lc);
		if (ok[i] == total[i])
			r = snprintf(out + off, outlen - off, "%s%s=%u",
			    off ? " " : "", lc, (unsigned)total[i]);
		else
			r = snprintf(out + off, outlen - off, "%s%s=%u/%u",
			    off ? " " : "", lc, (unsigned)ok[i],
			    (unsigned)total[i]);
		if (r < 0 || (size_t)r >= outlen - off)
			return -1;
		off += (size_t)r;
	}
	return 0;
}

/* host_port_split - "host", "host:port", "[host]", "[host]:port", bare v6 */
int
host_port_split(const char *s, char *host, size_t hostlen, int *bracketed,
    unsigned *port)
{
	const char	*end, *ps = NULL;
	size_t		 len;
	char		*ep;
	long		 p;

	*bracketed = s[0] == '[';
	if (*bracketed) {
		if ((end = strchr(s, ']')) == NULL)
			return -1;
		len = (size_t)(end - s - 1);
		if (end[1] == ':')
			ps = end + 2;
		else if (end[1] != '\0')
			return -1;
		s++;
	} else if ((end = strchr(s, ':')) != NULL &&
	    strchr(end + 1, ':') == NULL) {
		len = (size_t)(end - s);
		ps = end + 1;
	} else
		len = strlen(s);	/* "host", or a bare IPv6 address */
	if (len == 0 || len >= hostlen)
		return -1;
	if (ps != NULL) {
		errno = 0;
		p = strtol(ps, &ep, 10);
		if (ps[0] == '\0' || *ep != '\0' || errno != 0 || p < 1 ||
		    p > 65535)
			return -1;
		*port = (unsigned)p;
	}
	memcpy(host, s, len);
	host[len] = '\0';
	return 0;
}

/* utf8_len - the length of the well-formed UTF-8 sequence at p, or 0 */
size_t
utf8_len(const unsigned char *p, size_t n)
{
	size_t	len, i;

	if (n == 0)
		return 0;
	if (p[0] < 0x80)
		return 1;
	if (p[0] >= 0xc2 && p[0] <= 0xdf)
		len = 2;
	else if (p[0] >= 0xe0 && p[0] <= 0xef)
		len = 3;
	else if (p[0] >= 0xf0 && p[0] <= 0xf4)
		len = 4;
	else
		return 0;	/* a continuation octet, C0, C1, F5-FF */
	if (n < len)
		return 0;
	for (i = 1; i < len; i++)
		if ((p[i] & 0xc0) != 0x80)
			return 0;
	/* RFC 3629 4: the second octet's range after E0, ED, F0, F4 */
	if ((p[0] == 0xe0 && p[1] < 0xa0) || (p[0] == 0xed && p[1] > 0x9f) ||
	    (p[0] == 0xf0 && p[1] < 0x90) || (p[0] == 0xf4 && p[1] > 0x8f))
		return 0;
	return len;
}

/* text_safe - controls and broken UTF-8 as '?', in place */
void
text_safe(char *s)
{
	unsigned char	*p = (unsigned char *)s;
	size_t		 n = strlen(s), k;

	while (n > 0) {
		k = utf8_len(p, n);
		if (k == 0 || (k == 2 && p[0] == 0xc2 && p[1] < 0xa0)) {
			/* broken, or a C1 control (U+0080-U+009F) */
			k = k == 0 ? 1 : k;
			memset(p, '?', k);
		} else if (k == 1 && p[0] == '\t')
			p[0] = ' ';
		else if (k == 1 && (p[0] < 0x20 || p[0] == 0x7f))
			p[0] = '?';
		p += k;
		n -= k;
	}
}

/* utf8_repair - a copy with every broken octet as U+FFFD */
char *
utf8_repair(const char *s)
{
	const unsigned char	*p = (const unsigned char *)s;
	size_t			 n = strlen(s), k, o = 0;
	char			*out;

	if (n > (SIZE_MAX - 1) / 3 || (out = malloc(3 * n + 1)) == NULL)
		return NULL;
	while (n > 0) {
		if ((k = utf8_len(p, n)) == 0) {
			memcpy(out + o, "\xef\xbf\xbd", 3);
			o += 3;
			k = 1;
		} else {
			memcpy(out + o, p, k);
			o += k;
		}
		p += k;
		n -= k;
	}
	out[o] = '\0';
	return out;
}

/* mono_us - monotonic microseconds */
uint64_t
mono_us(void)
{
	struct timespec	ts;

	if (clock_gettime(CLOCK_MONOTONIC, &ts) == -1)
		return 0;
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

/* mono_ms - monotonic milliseconds */
uint64_t
mono_ms(void)
{
	return mono_us() / 1000;
}

/* mono_sec - monotonic seconds, wall-clock seconds if unreadable */
time_t
mono_sec(void)
{
	struct timespec	ts;

	if (clock_gettime(CLOCK_MONOTONIC, &ts) == -1)
		return time(NULL);
	return ts.tv_sec;
}

/* tcp_listen - socket, options, bind and listen (see util.h) */
int
tcp_listen(const struct sockaddr *sa, socklen_t len, const char **failed)
{
	int	fd, on = 1, e;

	*failed = NULL;
	if ((fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0)) == -1) {
		*failed = "socket";
		return -1;
	}
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) == -1 ||
	    (sa->sa_family == AF_INET6 && setsockopt(fd, IPPROTO_IPV6,
	    IPV6_V6ONLY, &on, sizeof(on)) == -1) ||
	    bind(fd, sa, len) == -1 || listen(fd, SOMAXCONN) == -1) {
		e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

/* text_is_reply - the host's own reply, not a text of ours naming it */
int
text_is_reply(const char *remote, int code, const char *text)
{
	return remote != NULL && remote[0] != '\0' && code != 0 &&
	    text != NULL && strstr(text, remote) == NULL;
}

/* hex_digit - the value of one hex digit (either case), or -1 */
int
hex_digit(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}
