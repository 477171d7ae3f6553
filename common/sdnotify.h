/*
 * sdnotify.h - service manager notification (systemd's sd_notify
 * protocol, without libsystemd): "READY=1", "RELOADING=1", "STOPPING=1"
 * datagrams to the AF_UNIX socket named by $NOTIFY_SOCKET.  Everything
 * is a no-op when $NOTIFY_SOCKET is unset.
 */
#ifndef WAYMARK_SDNOTIFY_H
#define WAYMARK_SDNOTIFY_H

#include <stddef.h>

/*
 * sdnotify_init - connect to $NOTIFY_SOCKET ("/path" or "@abstract") and
 * unset it (filters never inherit it); 0 (also when it is unset) or -1
 * with the reason in err.  Called as root, before the privilege drop, so
 * the socket's file mode does not matter to the user.
 */
int	sdnotify_init(char *err, size_t errlen);
/* sdnotify - send one state string ("READY=1"); 0, or -1 (errno set) */
int	sdnotify(const char *state);
/* sdnotify_reloading - "RELOADING=1" with MONOTONIC_USEC (systemd 253) */
int	sdnotify_reloading(void);
/* sdnotify_enabled - 1 when a notification socket is connected */
int	sdnotify_enabled(void);
void	sdnotify_close(void);

#endif
