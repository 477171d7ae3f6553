/*
 * failtab.h - a bounded table of failures per client address, for the
 * `N per DURATION` limits (auth_failures).  Fixed window: an address's
 * window opens at its first failure; its count is forgotten when the
 * window has passed.  IPv4-mapped IPv6 addresses count as IPv4.  The
 * table holds at most a fixed number of addresses; when full, an expired
 * entry or the one with the fewest failures is reused, so memory stays
 * bounded under an attack from many addresses and an address at its
 * limit is the last to be forgotten.  Loop thread only (no locking).
 */
#ifndef WAYMARK_FAILTAB_H
#define WAYMARK_FAILTAB_H

#include <stddef.h>
#include <time.h>
#include <sys/socket.h>

struct failtab;

/* failtab_new - room for about cap addresses (rounded); NULL on ENOMEM */
struct failtab	*failtab_new(size_t cap);
void		 failtab_free(struct failtab *t);
/* failtab_count - failures of sa's address in its open window (0: none) */
unsigned	 failtab_count(struct failtab *t, const struct sockaddr *sa,
		    unsigned window, time_t now);
/* failtab_add - one more failure of sa's address; returns its count */
unsigned	 failtab_add(struct failtab *t, const struct sockaddr *sa,
		    unsigned window, time_t now);
/* failtab_size - addresses with an open window; failtab_cap - room */
size_t		 failtab_size(const struct failtab *t, unsigned window,
		    time_t now);
size_t		 failtab_cap(const struct failtab *t);
/* failtab_key - the 16-octet key of sa's address (IPv4 as IPv4-mapped
 * IPv6, so both forms are one address); -1 when not IPv4/IPv6 */
int		 failtab_key(const struct sockaddr *sa, unsigned char out[16]);

/* The one auth_failures table, shared by SMTP AUTH and the operator
 * view's logins (DESIGN.md), made at the first failure, kept until exit.
 * failtab_auth_add returns the address's count, 0 when no table could
 * be made (ENOMEM: nothing is counted). */
unsigned	 failtab_auth_count(const struct sockaddr *sa, unsigned window,
		    time_t now);
unsigned	 failtab_auth_add(const struct sockaddr *sa, unsigned window,
		    time_t now);

#endif
