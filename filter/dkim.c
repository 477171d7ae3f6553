#include "config.h"
/*
 * dkim.c - DKIM signing with OpenSSL's EVP (no DKIM library).
 * Owns: the keys of `dkim_key` (read and checked at start, as root, so a
 *       key file may be root-only), the streaming signer smtpd_data.c
 *       feeds with the octets it stores, relaxed/relaxed
 *       canonicalization, the DKIM-Signature field (From oversigned,
 *       t=, never l=), the DNS record of `waymark dkim-keygen`.
 * Cost: the signer keeps only the header fields it signs (at most
 *       DKIM_HDR_MAX octets, DKIM_FIELDS_MAX fields) and hashes the body
 *       as it streams, only once the From domain is known to have a key;
 *       each key costs one signature at the end, no second read.
 * Not signed (why set): no From field, several, a From address without
 *       a domain, a header section that is not RFC 5322 or is over the
 *       bounds.  Not here: who is signed (smtpd_data.c: AUTH and
 *       relay_from clients) and storing the field (a trace field of
 *       queue/, prepended at delivery like Received:).
 * Standards: RFC 6376 3.4.2, 3.4.4, 3.5, 3.7, 5.4; RFC 8301 (never
 *       rsa-sha1, RSA >= 1024 bits); RFC 8463 (Ed25519 over SHA-256).
 */

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "common/cfg.h"
#include "common/syntax.h"
#include "filter/dkim.h"

#define DKIM_HDR_MAX	65536	/* octets of signed header fields kept */
#define DKIM_FIELDS_MAX	64	/* signed header fields kept */
#define DKIM_LINE_MAX	1024	/* a header line (text lines are <= 1000) */
#define DKIM_SIG_MAX	1024	/* base64 signature (RSA 4096: 684) */
#define DKIM_FOLD	76	/* fold the signature field before this */
#define RSA_MIN_BITS	1024	/* RFC 8301 3.2 */

/* the header fields signed, in h= order; From is listed once more than
 * it occurs (oversigned, RFC 6376 8.15) */
static const char *const sign_names[] = {
	"from", "reply-to", "subject", "date", "to", "cc", "message-id",
	"in-reply-to", "references", "mime-version", "content-type",
	"content-transfer-encoding", "list-id", "list-unsubscribe",
	"list-unsubscribe-post",
};
#define NSIGN	(sizeof(sign_names) / sizeof(sign_names[0]))
#define IDX_FROM	0

static const char *const alg_names[DKIM_NALGS] = {
	"rsa-sha256", "ed25519-sha256",
};

const char *
dkim_alg_name(enum dkim_alg a)
{
	return (unsigned)a < DKIM_NALGS ? alg_names[a] : "?";
}

int
dkim_alg_parse(const char *s, enum dkim_alg *a)
{
	unsigned	i;

	for (i = 0; i < DKIM_NALGS; i++)
		if (strcmp(s, alg_names[i]) == 0) {
			*a = (enum dkim_alg)i;
			return 0;
		}
	return -1;
}

/*
 * sha256 - SHA-256 fetched once: EVP_sha256() makes every
 * EVP_DigestInit_ex / EVP_Digest fetch the implementation again (a
 * locked table lookup in OpenSSL 3); a fetched EVP_MD is immutable and
 * may be used by every thread at once
 */
static EVP_MD		*sha256_fetched;
static pthread_once_t	 sha256_once = PTHREAD_ONCE_INIT;

static void
sha256_fetch(void)
{
	sha256_fetched = EVP_MD_fetch(NULL, "SHA256", NULL);
	ERR_clear_error();
}

static const EVP_MD *
sha256(void)
{
	(void)pthread_once(&sha256_once, sha256_fetch);
	return sha256_fetched != NULL ? sha256_fetched : EVP_sha256();
}

/* ---- keys ---- */

/* key_load - the private key of one dkim_key entry; 0, or -1 with w */
static int
key_load(const struct cfg_dkim_key *e, struct dkim_key *k, char *w,
    size_t wlen)
{
	FILE		*fp;
	EVP_PKEY	*pk;
	int		 type, bits;

	if (dkim_alg_parse(e->alg, &k->alg) == -1) {
		snprintf(w, wlen, "unknown algorithm \"%s\"", e->alg);
		return -1;
	}
	if ((fp = fopen(e->keyfile, "r")) == NULL) {
		snprintf(w, wlen, "cannot read \"%s\": %s", e->keyfile,
		    strerror(errno));
		return -1;
	}
	pk = PEM_read_PrivateKey(fp, NULL, NULL, NULL);
	fclose(fp);
	ERR_clear_error();
	if (pk == NULL) {
		snprintf(w, wlen, "\"%s\" holds no PEM private key (or it is "
		    "encrypted)", e->keyfile);
		return -1;
	}
	type = EVP_PKEY_get_base_id(pk);
	if (k->alg == DKIM_RSA_SHA256 && type != EVP_PKEY_RSA) {
		snprintf(w, wlen, "\"%s\" is not an RSA key (%s needs one)",
		    e->keyfile, e->alg);
		goto fail;
	}
	if (k->alg == DKIM_ED25519_SHA256 && type != EVP_PKEY_ED25519) {
		snprintf(w, wlen, "\"%s\" is not an Ed25519 key (%s needs "
		    "one)", e->keyfile, e->alg);
		goto fail;
	}
	if (k->alg == DKIM_RSA_SHA256 &&
	    (bits = EVP_PKEY_get_bits(pk)) < RSA_MIN_BITS) {
		snprintf(w, wlen, "\"%s\": RSA key of %d bits (at least %d, "
		    "RFC 8301)", e->keyfile, bits, RSA_MIN_BITS);
		goto fail;
	}
	if ((k->domain = strdup(e->domain)) == NULL ||
	    (k->selector = strdup(e->selector)) == NULL) {
		snprintf(w, wlen, "%s", strerror(errno));
		goto fail;
	}
	k->pkey = pk;
	if (dkim_key_prepare(k) == -1) {
		snprintf(w, wlen, "\"%s\": cannot set up signing",
		    e->keyfile);
		k->pkey = NULL;
		goto fail;
	}
	return 0;
fail:
	free(k->domain);
	free(k->selector);
	k->domain = k->selector = NULL;
	EVP_PKEY_free(pk);
	return -1;
}

int
dkim_key_prepare(struct dkim_key *k)
{
	EVP_MD_CTX	*mc;

	if ((mc = EVP_MD_CTX_new()) == NULL)
		return -1;
	/* RSA: PKCS#1 v1.5 over SHA-256; Ed25519: PureEdDSA, no digest */
	if (EVP_DigestSignInit(mc, NULL, k->alg == DKIM_RSA_SHA256 ?
	    sha256() : NULL, NULL, k->pkey) != 1) {
		ERR_clear_error();
		EVP_MD_CTX_free(mc);
		return -1;
	}
	/* each copy signs once: no copy of the copy in EVP_DigestSignFinal */
	EVP_MD_CTX_set_flags(mc, EVP_MD_CTX_FLAG_FINALISE);
	EVP_MD_CTX_free(k->tmpl);
	k->tmpl = mc;
	return 0;
}

struct dkim_keys *
dkim_keys_load(const struct config *c, char *err, size_t errlen)
{
	struct dkim_keys	*ks;
	char			 w[768];
	size_t			 i;

	if (errlen > 0)
		err[0] = '\0';
	if (c->ndkim_key == 0)
		return NULL;
	if ((ks = calloc(1, sizeof(*ks))) == NULL ||
	    (ks->keys = calloc(c->ndkim_key, sizeof(*ks->keys))) == NULL) {
		free(ks);
		snprintf(err, errlen, "%s: dkim_key: %s", c->path,
		    strerror(errno));
		return NULL;
	}
	ks->refs = 1;
	for (i = 0; i < c->ndkim_key; i++, ks->n++) {
		if (key_load(&c->dkim_key[i], &ks->keys[i], w,
		    sizeof(w)) == -1) {
			snprintf(err, errlen, "%s:%u: dkim_key: %s", c->path,
			    c->dkim_key[i].line, w);
			dkim_keys_free(ks);
			return NULL;
		}
		if (ks->keys[i].alg == DKIM_RSA_SHA256)
			ks->has_rsa = 1;
	}
	return ks;
}

struct dkim_keys *
dkim_keys_ref(struct dkim_keys *ks)
{
	if (ks != NULL)
		ks->refs++;
	return ks;
}

void
dkim_keys_free(struct dkim_keys *ks)
{
	size_t	i;

	if (ks == NULL || --ks->refs > 0)
		return;
	for (i = 0; i < ks->n; i++) {
		free(ks->keys[i].domain);
		free(ks->keys[i].selector);
		EVP_MD_CTX_free(ks->keys[i].tmpl);
		EVP_PKEY_free(ks->keys[i].pkey);
	}
	free(ks->keys);
	free(ks);
}

/* ---- canonicalization ---- */

size_t
dkim_canon_header(const char *f, size_t n, char *out)
{
	size_t	i = 0, o = 0;
	int	wsp = 0;
	char	c;

	/* the name, lower-cased, without WSP before the colon */
	for (; i < n && f[i] != ':'; i++) {
		c = f[i];
		if (c == ' ' || c == '\t' || c == '\r' || c == '\n')
			continue;
		out[o++] = (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c;
	}
	if (i == n)
		return o;
	out[o++] = ':';
	i++;
	/* the value: unfolded, WSP runs as one SP, none at either end */
	for (; i < n && (f[i] == ' ' || f[i] == '\t' || f[i] == '\r' ||
	    f[i] == '\n'); i++)
		;
	for (; i < n; i++) {
		c = f[i];
		if (c == '\r' || c == '\n')
			continue;
		if (c == ' ' || c == '\t') {
			wsp = 1;
			continue;
		}
		if (wsp)
			out[o++] = ' ';
		wsp = 0;
		out[o++] = c;
	}
	return o;
}

struct dkim_body {
	EVP_MD_CTX	*md;
	unsigned long	 blank;		/* empty lines not yet hashed */
	int		 wsp;		/* a WSP run is pending */
	int		 text;		/* the line has non-WSP text */
	size_t		 len;
	unsigned char	 buf[4096];
};

struct dkim_body *
dkim_body_new(void)
{
	struct dkim_body *b;

	if ((b = calloc(1, sizeof(*b))) == NULL)
		return NULL;
	if ((b->md = EVP_MD_CTX_new()) == NULL ||
	    EVP_DigestInit_ex(b->md, sha256(), NULL) != 1) {
		dkim_body_free(b);
		return NULL;
	}
	return b;
}

void
dkim_body_free(struct dkim_body *b)
{
	if (b == NULL)
		return;
	EVP_MD_CTX_free(b->md);
	free(b);
}

/* body_put - one canonical octet for the hash */
static inline void
body_put(struct dkim_body *b, unsigned char c)
{
	if (b->len == sizeof(b->buf)) {
		EVP_DigestUpdate(b->md, b->buf, b->len);
		b->len = 0;
	}
	b->buf[b->len++] = c;
}

/* body_putn - canonical octets p[0..n) for the hash */
static void
body_putn(struct dkim_body *b, const char *p, size_t n)
{
	size_t	k;

	while (n > 0) {
		if (b->len == sizeof(b->buf)) {
			EVP_DigestUpdate(b->md, b->buf, b->len);
			b->len = 0;
		}
		k = sizeof(b->buf) - b->len;
		if (k > n)
			k = n;
		memcpy(b->buf + b->len, p, k);
		b->len += k;
		p += k;
		n -= k;
	}
}

void
dkim_body_text(struct dkim_body *b, const char *p, size_t n)
{
	size_t	i = 0, j;

	while (i < n) {
		if (p[i] == ' ' || p[i] == '\t') {
			b->wsp = 1;
			i++;
			continue;
		}
		if (!b->text) {
			for (; b->blank > 0; b->blank--) {
				body_put(b, '\r');
				body_put(b, '\n');
			}
			b->text = 1;
		}
		if (b->wsp)
			body_put(b, ' ');
		b->wsp = 0;
		/* the run of other octets, copied at once */
		for (j = i + 1; j < n && p[j] != ' ' && p[j] != '\t'; j++)
			;
		body_putn(b, p + i, j - i);
		i = j;
	}
}

void
dkim_body_eol(struct dkim_body *b)
{
	if (b->text) {
		body_put(b, '\r');
		body_put(b, '\n');
	} else
		b->blank++;	/* dropped if nothing follows */
	b->text = b->wsp = 0;
}

int
dkim_body_final(struct dkim_body *b, char out[45])
{
	unsigned char	h[EVP_MAX_MD_SIZE];
	unsigned	hl = 0;

	if (b->len > 0 && EVP_DigestUpdate(b->md, b->buf, b->len) != 1)
		return -1;
	b->len = 0;
	if (EVP_DigestFinal_ex(b->md, h, &hl) != 1 || hl != 32)
		return -1;
	return base64_encode(h, hl, out, 45) == 44 ? 0 : -1;
}

int
dkim_body_hash(const char *body, size_t len, char out[45])
{
	struct dkim_body	*b;
	const char		*p = body, *e = body + len, *nl;
	size_t			 n;
	int			 rc;

	if ((b = dkim_body_new()) == NULL)
		return -1;
	while (p < e) {
		if ((nl = memchr(p, '\n', (size_t)(e - p))) == NULL)
			nl = e;
		n = (size_t)(nl - p);
		if (n > 0 && p[n - 1] == '\r')
			n--;
		dkim_body_text(b, p, n);
		dkim_body_eol(b);
		p = nl < e ? nl + 1 : e;
	}
	rc = dkim_body_final(b, out);
	dkim_body_free(b);
	return rc;
}

/* ---- signing ---- */

/*
 * sign_ctx - the signature of data, base64 into out: from a copy of
 * tmpl when there is one (EVP_DigestSignInit done once per key: a copy
 * costs less than fetching the algorithm again), else a new init; the
 * template is only read, so worker threads may copy it at once
 */
static int
sign_ctx(const EVP_MD_CTX *tmpl, EVP_PKEY *pk, enum dkim_alg a,
    const void *data, size_t len, char *out, size_t outlen)
{
	EVP_MD_CTX	*mc = NULL;
	unsigned char	 h[32], sig[DKIM_SIG_MAX];
	size_t		 sl = sizeof(sig);
	int		 rc = -1;

	if (a == DKIM_RSA_SHA256 && EVP_PKEY_get_size(pk) > (int)sizeof(sig))
		return -1;
	if ((mc = EVP_MD_CTX_new()) == NULL)
		goto done;
	/* a copy can fail where OpenSSL cannot copy a signing context
	 * (before 3.0.1): a new init then */
	if (tmpl == NULL || EVP_MD_CTX_copy_ex(mc, tmpl) != 1) {
		EVP_MD_CTX_reset(mc);
		if (EVP_DigestSignInit(mc, NULL, a == DKIM_RSA_SHA256 ?
		    sha256() : NULL, NULL, pk) != 1)
			goto done;
	}
	if (a == DKIM_RSA_SHA256) {
		if (EVP_DigestSign(mc, sig, &sl, data, len) != 1)
			goto done;
	} else {
		/* RFC 8463 3: PureEdDSA over the SHA-256 of the input */
		if (EVP_Digest(data, len, h, NULL, sha256(), NULL) != 1 ||
		    EVP_DigestSign(mc, sig, &sl, h, sizeof(h)) != 1)
			goto done;
	}
	if (base64_encode(sig, sl, out, outlen) < 0)
		goto done;
	rc = 0;
done:
	ERR_clear_error();
	EVP_MD_CTX_free(mc);
	return rc;
}

int
dkim_sign_data(EVP_PKEY *pk, enum dkim_alg a, const void *data, size_t len,
    char *out, size_t outlen)
{
	return sign_ctx(NULL, pk, a, data, len, out, outlen);
}

int
dkim_dns_record(EVP_PKEY *pk, enum dkim_alg a, char *out, size_t outlen)
{
	unsigned char	*der = NULL, raw[32];
	size_t		 rl = sizeof(raw);
	char		 b64[2048];
	int		 n, r;

	if (a == DKIM_RSA_SHA256) {
		if ((n = i2d_PUBKEY(pk, &der)) <= 0)
			return -1;
		r = base64_encode(der, (size_t)n, b64, sizeof(b64));
		OPENSSL_free(der);
	} else {
		if (EVP_PKEY_get_raw_public_key(pk, raw, &rl) != 1)
			return -1;
		r = base64_encode(raw, rl, b64, sizeof(b64));
	}
	if (r < 0)
		return -1;
	n = snprintf(out, outlen, "v=DKIM1; k=%s; p=%s",
	    a == DKIM_RSA_SHA256 ? "rsa" : "ed25519", b64);
	return n > 0 && (size_t)n < outlen ? 0 : -1;
}

/* ---- the streaming signer ---- */

struct dkim_field {
	unsigned	 name;		/* index in sign_names */
	size_t		 off, len;	/* in hdr */
};

struct dkim_sign {
	struct dkim_keys	*ks;
	int			 in_header;
	const char		*why;	/* not signed: the reason */
	int			 local_err;
	int			 signing; /* the From domain has a key */
	char			 domain[256];	/* the From domain */
	/* the current header line */
	char			 line[DKIM_LINE_MAX];
	size_t			 linelen;
	int			 line_over;
	/* the field being kept: hdr[cur_off..hdrlen), -1 = none */
	int			 cur;
	size_t			 cur_off;
	unsigned		 nfrom;
	char			*hdr;
	size_t			 hdrlen, hdrcap;
	struct dkim_field	 f[DKIM_FIELDS_MAX];
	size_t			 nf;
	struct dkim_body	*body;
};

struct dkim_sign *
dkim_sign_new(struct dkim_keys *ks)
{
	struct dkim_sign *d;

	if ((d = calloc(1, sizeof(*d))) == NULL)
		return NULL;
	d->ks = dkim_keys_ref(ks);
	d->in_header = 1;
	d->cur = -1;
	return d;
}

void
dkim_sign_free(struct dkim_sign *d)
{
	if (d == NULL)
		return;
	dkim_keys_free(d->ks);
	dkim_body_free(d->body);
	free(d->hdr);
	free(d);
}

/* not_signed - give up signing this message */
static void
not_signed(struct dkim_sign *d, const char *why)
{
	if (d->why == NULL)
		d->why = why;
	d->in_header = 0;
	d->signing = 0;
}

/* hdr_add - append octets to the kept header fields */
static int
hdr_add(struct dkim_sign *d, const char *p, size_t n)
{
	size_t	cap;
	char	*h;

	if (d->hdrlen + n > DKIM_HDR_MAX) {
		not_signed(d, "header fields to sign too large");
		return -1;
	}
	if (d->hdrlen + n > d->hdrcap) {
		cap = d->hdrcap ? d->hdrcap : 1024;
		while (cap < d->hdrlen + n)
			cap *= 2;
		if (cap > DKIM_HDR_MAX)
			cap = DKIM_HDR_MAX;
		if ((h = realloc(d->hdr, cap)) == NULL) {
			d->local_err = 1;
			not_signed(d, "out of memory");
			return -1;
		}
		d->hdr = h;
		d->hdrcap = cap;
	}
	memcpy(d->hdr + d->hdrlen, p, n);
	d->hdrlen += n;
	return 0;
}

/* field_end - the kept field is complete */
static void
field_end(struct dkim_sign *d)
{
	if (d->cur < 0)
		return;
	if (d->nf == DKIM_FIELDS_MAX) {
		not_signed(d, "too many header fields to sign");
		return;
	}
	d->f[d->nf].name = (unsigned)d->cur;
	d->f[d->nf].off = d->cur_off;
	d->f[d->nf].len = d->hdrlen - d->cur_off;
	d->nf++;
	d->cur = -1;
}

/* from_domain - the domain of the one address of a From value, lower
 * case, into out; 0 or -1 (RFC 5322 3.6.2: quoted strings, comments
 * and a display name skipped) */
static int
from_domain(const char *v, size_t n, char *out, size_t outlen)
{
	char		 addr[512];
	size_t		 i, an = 0, k;
	int		 q = 0, depth = 0, angle = 0, got_angle = 0;
	const char	*at;

	for (i = 0; i < n; i++) {
		char c = v[i];

		if (q) {
			if (c == '\\' && i + 1 < n)
				i++;
			else if (c == '"')
				q = 0;
			continue;
		}
		if (depth > 0) {
			if (c == '\\' && i + 1 < n)
				i++;
			else if (c == '(')
				depth++;
			else if (c == ')')
				depth--;
			continue;
		}
		if (c == '"' && !angle) {
			q = 1;
			continue;
		}
		if (c == '(') {
			depth = 1;
			continue;
		}
		if (c == '<') {
			if (got_angle)
				return -1;	/* two addresses */
			angle = got_angle = 1;
			an = 0;
			continue;
		}
		if (c == '>' && angle) {
			angle = 0;
			continue;
		}
		if (c == ',' && !angle)
			return -1;	/* several mailboxes */
		if (got_angle && !angle)
			continue;	/* after the angle address */
		if (c == ' ' || c == '\t' || c == '\r' || c == '\n')
			continue;
		if (an + 1 >= sizeof(addr))
			return -1;
		addr[an++] = c;
	}
	addr[an] = '\0';
	if (q || depth || angle || (at = strrchr(addr, '@')) == NULL)
		return -1;
	at++;
	k = strlen(at);
	if (k == 0 || k >= outlen || smtp_check_domain(at, k) == -1 ||
	    at[0] == '[')
		return -1;
	for (i = 0; i <= k; i++)
		out[i] = (at[i] >= 'A' && at[i] <= 'Z') ? (char)(at[i] + 32) :
		    at[i];
	return 0;
}

/* header_end - the header section ended: is there a key to sign with? */
static void
header_end(struct dkim_sign *d)
{
	const struct dkim_field	*f = NULL;
	size_t			 i, v;

	field_end(d);
	d->in_header = 0;
	if (d->why != NULL)
		return;
	if (d->nfrom == 0) {
		not_signed(d, "no From field");
		return;
	}
	if (d->nfrom > 1) {
		not_signed(d, "several From fields");
		return;
	}
	for (i = 0; i < d->nf; i++)
		if (d->f[i].name == IDX_FROM)
			f = &d->f[i];
	if (f == NULL)
		return;
	for (v = 0; v < f->len && d->hdr[f->off + v] != ':'; v++)
		;
	if (v == f->len || from_domain(d->hdr + f->off + v + 1,
	    f->len - v - 1, d->domain, sizeof(d->domain)) == -1) {
		not_signed(d, "no domain in the From address");
		return;
	}
	for (i = 0; i < d->ks->n; i++)
		if (strcmp(d->ks->keys[i].domain, d->domain) == 0)
			break;
	if (i == d->ks->n)
		return;		/* no key: silently not signed */
	if ((d->body = dkim_body_new()) == NULL) {
		d->local_err = 1;
		not_signed(d, "out of memory");
		return;
	}
	d->signing = 1;
}

/* header_line - one complete line of the header section */
static void
header_line(struct dkim_sign *d)
{
	const char	*h = d->line;
	size_t		 len = d->linelen, i, j;
	unsigned	 k;

	if (len == 0) {
		header_end(d);
		return;
	}
	if (d->line_over) {
		not_signed(d, "header line too long");
		return;
	}
	if (h[0] == ' ' || h[0] == '\t') {	/* a folded continuation */
		if (d->cur >= 0 && (hdr_add(d, "\r\n", 2) == -1 ||
		    hdr_add(d, h, len) == -1))
			return;
		return;
	}
	field_end(d);
	for (i = 0; i < len && h[i] != ':' && h[i] != ' ' && h[i] != '\t';
	    i++)
		if ((unsigned char)h[i] < 33 || (unsigned char)h[i] > 126)
			break;
	for (j = i; j < len && (h[j] == ' ' || h[j] == '\t'); j++)
		;
	if (i == 0 || j == len || h[j] != ':') {
		not_signed(d, "header section not RFC 5322");
		return;
	}
	for (k = 0; k < NSIGN; k++)
		if (strlen(sign_names[k]) == i &&
		    strncasecmp(h, sign_names[k], i) == 0)
			break;
	if (k == NSIGN)
		return;
	if (k == IDX_FROM)
		d->nfrom++;
	d->cur = (int)k;
	d->cur_off = d->hdrlen;
	(void)hdr_add(d, h, len);
}

void
dkim_sign_text(struct dkim_sign *d, const char *p, size_t n)
{
	size_t	k;

	if (d->in_header) {
		k = sizeof(d->line) - d->linelen;
		if (n > k) {
			d->line_over = 1;
			n = k;
		}
		memcpy(d->line + d->linelen, p, n);
		d->linelen += n;
	} else if (d->signing)
		dkim_body_text(d->body, p, n);
}

void
dkim_sign_eol(struct dkim_sign *d)
{
	if (d->in_header) {
		header_line(d);
		d->linelen = 0;
		d->line_over = 0;
	} else if (d->signing)
		dkim_body_eol(d->body);
}

int
dkim_sign_fd(struct dkim_sign *d, int fd)
{
	char		 buf[16384];
	const char	*p, *e, *nl;
	off_t		 off = 0;
	ssize_t		 n;
	size_t		 k;
	int		 cr = 0, mid = 0;

	for (;;) {
		if ((n = pread(fd, buf, sizeof(buf), off)) == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (n == 0)
			break;
		off += n;
		p = buf;
		e = buf + n;
		if (cr) {		/* a CR ended the previous read */
			cr = 0;
			if (*p == '\n') {
				dkim_sign_eol(d);
				mid = 0;
				p++;
			} else {
				dkim_sign_text(d, "\r", 1);
				mid = 1;
			}
		}
		while (p < e) {
			if ((nl = memchr(p, '\n', (size_t)(e - p))) == NULL) {
				k = (size_t)(e - p);
				if (p[k - 1] == '\r') {
					k--;
					cr = 1;
				}
				if (k > 0) {
					dkim_sign_text(d, p, k);
					mid = 1;
				}
				break;
			}
			k = (size_t)(nl - p);
			if (k > 0 && p[k - 1] == '\r')
				k--;
			if (k > 0)
				dkim_sign_text(d, p, k);
			dkim_sign_eol(d);
			mid = 0;
			p = nl + 1;
		}
	}
	if (cr) {
		dkim_sign_text(d, "\r", 1);
		mid = 1;
	}
	if (mid)
		dkim_sign_eol(d);
	return 0;
}

/* struct fold - the signature field being written, folded */
struct fold {
	char	*s;
	size_t	 len, cap, col;
	int	 err;
};

/* fold_put - append a token, folding ("\n\t") before it when the line
 * would pass DKIM_FOLD; sep: a space before it on the same line */
static void
fold_put(struct fold *o, const char *tok, size_t n, int sep)
{
	const char	*pre = "";
	size_t		 pl = 0;

	if (o->col + (sep ? 1 : 0) + n > DKIM_FOLD && o->col > 1) {
		pre = "\n\t";
		pl = 2;
		o->col = 1;
	} else if (sep) {
		pre = " ";
		pl = 1;
	}
	if (o->len + pl + n + 1 > o->cap) {
		o->err = 1;
		return;
	}
	memcpy(o->s + o->len, pre, pl);
	memcpy(o->s + o->len + pl, tok, n);
	o->len += pl + n;
	o->s[o->len] = '\0';
	o->col += (pl == 1 ? 1 : 0) + n;
}

/* fold_raw - append octets as they are */
static void
fold_raw(struct fold *o, const char *p, size_t n)
{
	if (o->len + n + 1 > o->cap) {
		o->err = 1;
		return;
	}
	memcpy(o->s + o->len, p, n);
	o->len += n;
	o->s[o->len] = '\0';
}

/* fold_tag - a "tag=value;" token */
static void
fold_tag(struct fold *o, const char *tag, const char *val, int semi)
{
	char	tok[320];
	int	n;

	n = snprintf(tok, sizeof(tok), "%s=%s%s", tag, val, semi ? ";" : "");
	if (n < 0 || (size_t)n >= sizeof(tok)) {
		o->err = 1;
		return;
	}
	fold_put(o, tok, (size_t)n, 1);
}

/* sign_one - the field for key k; cb gets it */
static int
sign_one(struct dkim_sign *d, const struct dkim_key *k, const char *bh,
    time_t now, int (*cb)(void *, const struct dkim_key *, const char *),
    void *arg)
{
	struct fold	 o;
	char		*in = NULL, sig[DKIM_SIG_MAX], tok[64], ts[32];
	size_t		 inlen = 0, i, j, cnt[NSIGN], pos, nl, total, first;
	unsigned	 name;
	int		 rc = -1;

	memset(cnt, 0, sizeof(cnt));
	for (i = 0; i < d->nf; i++)
		cnt[d->f[i].name]++;
	/* room: every kept field canonicalized, "\r\n" each, the field */
	total = d->hdrlen + 2 * d->nf + 2048;
	o.cap = 4096 + 32 * d->nf;
	o.len = o.col = 0;
	o.err = 0;
	if ((in = malloc(total)) == NULL || (o.s = malloc(o.cap)) == NULL) {
		free(in);
		return -1;
	}
	/* the header fields in h= order, each name's instances bottom-up
	 * (RFC 6376 5.4.2) */
	for (name = 0; name < NSIGN; name++)
		for (j = 0; j < cnt[name]; j++) {
			for (i = d->nf, pos = 0; i-- > 0; )
				if (d->f[i].name == name && pos++ == j)
					break;
			inlen += dkim_canon_header(d->hdr + d->f[i].off,
			    d->f[i].len, in + inlen);
			in[inlen++] = '\r';
			in[inlen++] = '\n';
		}

	o.s[0] = '\0';
	fold_put(&o, "DKIM-Signature:", 15, 0);
	fold_tag(&o, "v", "1", 1);
	fold_tag(&o, "a", dkim_alg_name(k->alg), 1);
	fold_tag(&o, "c", "relaxed/relaxed", 1);
	fold_tag(&o, "d", k->domain, 1);
	fold_tag(&o, "s", k->selector, 1);
	snprintf(ts, sizeof(ts), "%lld", (long long)now);
	fold_tag(&o, "t", ts, 1);
	/* h=: present names as often as they occur, From once more */
	first = 1;
	for (name = 0; name < NSIGN; name++) {
		size_t times = cnt[name] + (name == IDX_FROM ? 1 : 0);

		for (j = 0; j < times; j++) {
			snprintf(tok, sizeof(tok), "%s%s%s", first ? "h=" : "",
			    sign_names[name], ":");
			first = 0;
			fold_put(&o, tok, strlen(tok), o.s[o.len - 1] != ':');
		}
	}
	o.s[o.len - 1] = ';';		/* the last ':' ends the tag */
	fold_tag(&o, "bh", bh, 1);
	fold_put(&o, "b=", 2, 1);
	if (o.err)
		goto done;
	/* the field itself, b= empty, no line end (RFC 6376 3.7) */
	inlen += dkim_canon_header(o.s, o.len, in + inlen);
	if (sign_ctx(k->tmpl, k->pkey, k->alg, in, inlen, sig,
	    sizeof(sig)) == -1)
		goto done;
	/* b= folded: the first part on the b= line (FWS may go anywhere
	 * in base64string, RFC 6376 2.10) */
	for (i = 0, nl = strlen(sig); i < nl && !o.err; ) {
		size_t room = o.col < DKIM_FOLD ? DKIM_FOLD - o.col : 0;

		if (room == 0) {
			fold_raw(&o, "\n\t", 2);
			o.col = 1;
			continue;
		}
		if (room > nl - i)
			room = nl - i;
		fold_raw(&o, sig + i, room);
		o.col += room;
		i += room;
	}
	if (o.err)
		goto done;
	rc = cb(arg, k, o.s) == 0 ? 0 : -1;
done:
	free(in);
	free(o.s);
	return rc;
}

int
dkim_sign_finish(struct dkim_sign *d, time_t now,
    int (*cb)(void *, const struct dkim_key *, const char *), void *arg,
    const char **why)
{
	char	bh[45];
	size_t	i;
	int	n = 0;

	*why = NULL;
	if (d->in_header)
		header_end(d);	/* the content ended in the header section */
	if (d->local_err) {
		*why = d->why;
		return -1;
	}
	if (!d->signing) {
		*why = d->why;
		return 0;
	}
	if (dkim_body_final(d->body, bh) == -1) {
		*why = "body hash failed";
		return -1;
	}
	for (i = 0; i < d->ks->n; i++) {
		if (strcmp(d->ks->keys[i].domain, d->domain) != 0)
			continue;
		if (sign_one(d, &d->ks->keys[i], bh, now, cb, arg) == -1) {
			*why = "signing failed";
			return -1;
		}
		n++;
	}
	return n;
}
