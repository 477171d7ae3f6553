/*
 * dkim.h - DKIM signing (RFC 6376, RFC 8301, RFC 8463): the keys of
 * `dkim_key`, the streaming signer smtpd/ feeds during DATA, and the
 * canonicalization and signing steps (public for the unit tests and
 * `waymark dkim-keygen`).  Implemented in filter/dkim.c.
 */

#ifndef WAYMARK_DKIM_H
#define WAYMARK_DKIM_H

#include <stddef.h>
#include <time.h>

#include <openssl/evp.h>

struct config;

enum dkim_alg { DKIM_RSA_SHA256, DKIM_ED25519_SHA256 };
#define DKIM_NALGS	2

/* dkim_alg_name - "rsa-sha256" / "ed25519-sha256" */
const char	*dkim_alg_name(enum dkim_alg a);
/* dkim_alg_parse - the algorithm named s; 0 or -1 */
int		 dkim_alg_parse(const char *s, enum dkim_alg *a);

struct dkim_key {
	char		*domain;	/* lower-case A-labels */
	char		*selector;
	enum dkim_alg	 alg;
	EVP_PKEY	*pkey;
	/* EVP_DigestSignInit done once (dkim_key_prepare): each signature
	 * copies it instead of fetching the algorithm again; NULL: none */
	EVP_MD_CTX	*tmpl;
};

/* dkim_key_prepare - k->tmpl from k->pkey (done by dkim_keys_load);
 * 0 or -1 */
int		 dkim_key_prepare(struct dkim_key *k);

/* the keys of one configuration, shared (reference counted) by the
 * configurations of reloads that did not change them */
struct dkim_keys {
	struct dkim_key	*keys;
	size_t		 n;
	unsigned	 refs;
	/* an RSA key: a signature costs 250 us or more, more than handing
	 * the job to a worker thread; Ed25519 alone (about 40 us) is
	 * cheaper to sign on the loop than the hand-off and back */
	int		 has_rsa;
};

/*
 * dkim_keys_load - read and check every dkim_key of c (as root at start,
 * so a key file may be root-only).  NULL with err "FILE:LINE: dkim_key:
 * reason" on an error; NULL and err "" when c has no key.
 */
struct dkim_keys *dkim_keys_load(const struct config *c, char *err,
		    size_t errlen);
struct dkim_keys *dkim_keys_ref(struct dkim_keys *ks);
/* dkim_keys_free - drop one reference */
void		 dkim_keys_free(struct dkim_keys *ks);

/*
 * The streaming signer.  dkim_sign_new at the 354; dkim_sign_text for
 * the octets of each stored line (without its end), dkim_sign_eol for
 * each line end (stored as CRLF): exactly the octets stored.  The header
 * fields to sign are kept (bounded); the relaxed body hash is computed
 * as the body streams, and only when the From domain has a key.
 */
struct dkim_sign;
struct dkim_sign *dkim_sign_new(struct dkim_keys *ks);
void		 dkim_sign_text(struct dkim_sign *d, const char *p, size_t n);
void		 dkim_sign_eol(struct dkim_sign *d);
void		 dkim_sign_free(struct dkim_sign *d);
/*
 * dkim_sign_fd - feed a whole stored content (CRLF lines) from fd, read
 * with pread from offset 0: for a new signer when the content changed
 * after it streamed in (a milter's new spool file).  0, or -1 (errno).
 */
int		 dkim_sign_fd(struct dkim_sign *d, int fd);
/*
 * dkim_sign_finish - one DKIM-Signature field per key of the From
 * domain, each passed to cb (the field without its final line end,
 * folded lines joined by "\n\t", as queue/'s trace fields); cb returns 0
 * or -1 (stop).  Returns the number of signatures, 0 with *why set when
 * nothing is signed (why NULL: the From domain has no key), or -1 on a
 * local error (why says which).
 */
int		 dkim_sign_finish(struct dkim_sign *d, time_t now,
		    int (*cb)(void *arg, const struct dkim_key *k,
		    const char *field), void *arg, const char **why);

/* ---- steps (unit tests, dkim-keygen) ---- */

/* dkim_canon_header - relaxed canonical form of one field f[0..n) (its
 * folds CRLF or LF, no final line end) into out (room for n octets):
 * "name:value", no line end; returns its length (RFC 6376 3.4.2) */
size_t		 dkim_canon_header(const char *f, size_t n, char *out);

/* relaxed body canonicalization streamed into SHA-256 (RFC 6376 3.4.4) */
struct dkim_body;
struct dkim_body *dkim_body_new(void);
void		 dkim_body_text(struct dkim_body *b, const char *p, size_t n);
void		 dkim_body_eol(struct dkim_body *b);
/* dkim_body_final - the base64 hash (45 octets with the NUL); 0 or -1 */
int		 dkim_body_final(struct dkim_body *b, char out[45]);
void		 dkim_body_free(struct dkim_body *b);
/* dkim_body_hash - the same over a whole body (CRLF or LF lines) */
int		 dkim_body_hash(const char *body, size_t len, char out[45]);

/* dkim_sign_data - RSASSA-PKCS1-v1_5/SHA-256, or Ed25519 over the
 * SHA-256 of data (RFC 8463 3): the base64 signature in out; 0 or -1 */
int		 dkim_sign_data(EVP_PKEY *pk, enum dkim_alg a, const void *data,
		    size_t len, char *out, size_t outlen);

/* dkim_dns_record - "v=DKIM1; k=rsa|ed25519; p=..." for pk's public
 * key (RSA: SubjectPublicKeyInfo; Ed25519: the raw 32 octets); 0 or -1 */
int		 dkim_dns_record(EVP_PKEY *pk, enum dkim_alg a, char *out,
		    size_t outlen);

#endif
