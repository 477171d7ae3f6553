#include "config.h"
/*
 * sdnotify.c - the sd_notify protocol of systemd, without libsystemd.
 * Owns: the one datagram socket connected to $NOTIFY_SOCKET (a path, or
 *       an abstract name written with a leading '@'), and the state
 *       strings sent on it.
 * Entry points: sdnotify_init, sdnotify, sdnotify_reloading,
 *       sdnotify_close.
 * Protocol: sd_notify(3), "newline-separated KEY=VALUE assignments" in
 *       one datagram; systemd identifies the sender by its credentials
 *       (SCM_CREDENTIALS, added by the kernel), so nothing else is sent.
 * Invariants: unset $NOTIFY_SOCKET means every call is a no-op returning
 *       0; the socket is connected once, at start-up as root (the user
 *       may not be allowed to reach the path), close-on-exec, and the
 *       variable is removed from the environment so that filter commands
 *       neither inherit nor use it.
 */

#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "common/sdnotify.h"
#include "common/util.h"

static int	notify_fd = -1;

/* sdnotify_init - connect to $NOTIFY_SOCKET once, as root; unset it */
int
sdnotify_init(char *err, size_t errlen)
{
	struct sockaddr_un	 sun;
	const char		*name;
	socklen_t		 len;
	size_t			 n;
	int			 fd;

	if ((name = getenv("NOTIFY_SOCKET")) == NULL || *name == '\0')
		return 0;
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	n = strlen(name);
	if (name[0] != '/' && name[0] != '@') {
		snprintf(err, errlen, "NOTIFY_SOCKET=%s: not a path or an "
		    "abstract socket name (@NAME)", name);
		goto fail_env;
	}
	if (n >= sizeof(sun.sun_path) || (name[0] == '@' && n < 2)) {
		snprintf(err, errlen, "NOTIFY_SOCKET=%s: bad length", name);
		goto fail_env;
	}
	memcpy(sun.sun_path, name, n);
	if (name[0] == '@')
		sun.sun_path[0] = '\0';	/* abstract: no NUL at the end */
	len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n +
	    (name[0] == '@' ? 0 : 1));
	if ((fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) == -1) {
		snprintf(err, errlen, "NOTIFY_SOCKET: socket: %s",
		    strerror(errno));
		goto fail_env;
	}
	if (connect(fd, (struct sockaddr *)(void *)&sun, len) == -1) {
		snprintf(err, errlen, "NOTIFY_SOCKET=%s: connect: %s", name,
		    strerror(errno));
		close(fd);
		goto fail_env;
	}
	sdnotify_close();
	notify_fd = fd;
	(void)unsetenv("NOTIFY_SOCKET");
	return 0;
fail_env:
	(void)unsetenv("NOTIFY_SOCKET");
	return -1;
}

/* sdnotify_enabled - is a service manager listening */
int
sdnotify_enabled(void)
{
	return notify_fd != -1;
}

/* sdnotify - one datagram: newline-separated KEY=VALUE lines */
int
sdnotify(const char *state)
{
	size_t	len;
	ssize_t	n;

	if (notify_fd == -1)
		return 0;
	len = strlen(state);
	do
		n = send(notify_fd, state, len, MSG_NOSIGNAL);
	while (n == -1 && errno == EINTR);
	if (n == -1)
		return -1;
	if ((size_t)n != len) {
		errno = EMSGSIZE;
		return -1;
	}
	return 0;
}

/* sdnotify_reloading - RELOADING=1 with the time the reload began */
int
sdnotify_reloading(void)
{
	char	msg[64];
	int	r;

	r = snprintf(msg, sizeof(msg), "RELOADING=1\nMONOTONIC_USEC=%" PRIu64,
	    mono_us());
	if (r < 0 || (size_t)r >= sizeof(msg)) {
		errno = EOVERFLOW;
		return -1;
	}
	return sdnotify(msg);
}

/* sdnotify_close - forget the socket (exit) */
void
sdnotify_close(void)
{
	if (notify_fd != -1)
		close(notify_fd);
	notify_fd = -1;
}
