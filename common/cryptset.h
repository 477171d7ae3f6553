/*
 * cryptset.h - what a crypt(3) hash says before it is computed: its
 * setting (scheme, cost, salt), its scheme, whether it can match a
 * password at all, and an estimate of what one check costs.  No hashing
 * here: used at load time to choose the dummy setting that unknown users
 * are checked with (the dearest of auth_users) and at AUTH time to send
 * locked or unusable entries to that dummy.
 */
#ifndef WAYMARK_CRYPTSET_H
#define WAYMARK_CRYPTSET_H

#include <stddef.h>
#include <stdint.h>

/*
 * cryptset_setting - the setting of hash without its hash part ("$2b$12$"
 * + 22 salt characters for bcrypt, up to the last '$' for the other
 * "$id$" schemes, "_" + 8 for BSDi, 2 for DES).  malloc'd, or NULL
 * (errno EINVAL: no setting, ENOMEM).
 */
char		*cryptset_setting(const char *hash);
/*
 * cryptset_usable - can hash match some password?  0 for a locked entry
 * ("!..." or "*..."), a hash without a setting, and one whose method
 * crypt_checksalt(3) refuses (unknown, disabled, invalid); 1 otherwise
 * (legacy and too-cheap settings are usable).
 */
int		 cryptset_usable(const char *hash);
/*
 * cryptset_cost - estimated cost of one check of hash (or its setting),
 * in nanoseconds on the 2-core test box, for ranking settings only (see
 * the table in cryptset.c); 0 for an unknown scheme.
 */
uint64_t	 cryptset_cost(const char *hash);
/*
 * cryptset_scheme - the scheme's name into out: "$id$" ("$6$", "$2b$",
 * "$y$", "$md5$"), "_" (BSDi) or "DES".  Truncated to outlen - 1.
 */
void		 cryptset_scheme(const char *hash, char *out, size_t outlen);

#endif
