#include "config.h"
/*
 * dlv_dane.c - DANE for outbound SMTP (RFC 7672, RFC 6698 / 7671 TLSA).
 * Owns: reading a TLSA answer by hand (bounded: the answer section's
 *       names through ares_expand_name, CNAME chains followed, at most
 *       DLV_TLSA_MAX usable records and DLV_TLSA_BYTES of data kept per
 *       host); the per-host DANE state; the OpenSSL DANE set-up of a
 *       client connection and its check after the handshake; what a
 *       host whose TLSA lookup failed gets instead of a connection.
 * Entry points: dlv_dane_answer/_parse (dlv_dns.c), dlv_dane_ssl,
 *       dlv_dane_verified, dlv_dane_tls_required, dlv_dane_policy
 *       (dlv_smtp.c), dlv_dane_ctx_init, dlv_dane_peer, dlv_dane_skip,
 *       dlv_dane_same (dlv_remote.c).
 * Rules: only DANE-TA(2) and DANE-EE(3) are usable (RFC 7672 3.1.3);
 *       usable records make TLS and authentication mandatory, secure
 *       but unusable ones make TLS mandatory (2.2); a failed TLSA lookup
 *       makes the host unreachable, never a cleartext fallback (2.1.2);
 *       DANE-EE is checked without name or expiry checks (3.1.1,
 *       3.2.1); DANE-TA names are the TLSA base domain (the MX host, or
 *       its secure CNAME expansion when that has the TLSA records:
 *       2.2.2) and, through a secure MX, the next-hop domain (3.2.2);
 *       SNI is the base domain (8.1).  Digest agility (RFC 7671 9) is
 *       OpenSSL's.
 * Not here: the queries and the AD bit (dlv_dns.c), the STARTTLS
 *       dialogue (dlv_smtp.c), the order of hosts (dlv_remote.c).
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <ares.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "common/cfg.h"
#include "common/log.h"
#include "common/metrics.h"
#include "delivery/dlv_int.h"

#define T_CNAME		5
#define T_TLSA		52
#define C_IN		1
#define MAX_CHAIN	8	/* CNAMEs followed from the TLSA owner */
#define MAX_RRS		100	/* answer records read */

/* ---- parsing ---- */

/* get16 - a network-order 16-bit value */
static unsigned
get16(const unsigned char *p)
{
	return (unsigned)p[0] << 8 | p[1];
}

/* name_eq - DNS names equal (case, trailing dot) */
static int
name_eq(const char *a, const char *b)
{
	size_t	la = strlen(a), lb = strlen(b);

	if (la > 0 && a[la - 1] == '.')
		la--;
	if (lb > 0 && b[lb - 1] == '.')
		lb--;
	return la == lb && strncasecmp(a, b, la) == 0;
}

/* skip_name - the encoded length of the name at abuf[off]; -1 if bad */
static long
skip_name(const unsigned char *abuf, size_t alen, size_t off)
{
	char	*name = NULL;
	long	 enclen;

	if (off >= alen || ares_expand_name(abuf + off, abuf, (int)alen,
	    &name, &enclen) != ARES_SUCCESS)
		return -1;
	ares_free_string(name);
	return enclen;
}

struct rr {
	char		*owner;		/* ares_free_string */
	unsigned	 type, class;
	size_t		 rdoff, rdlen;
};

/* next_rr - the record at *off (advanced past it); 0, or -1 if bad */
static int
next_rr(const unsigned char *abuf, size_t alen, size_t *off, struct rr *rr)
{
	long	enclen;

	rr->owner = NULL;
	if (*off >= alen || ares_expand_name(abuf + *off, abuf, (int)alen,
	    &rr->owner, &enclen) != ARES_SUCCESS)
		return -1;
	*off += (size_t)enclen;
	if (*off + 10 > alen)
		goto bad;
	rr->type = get16(abuf + *off);
	rr->class = get16(abuf + *off + 2);
	rr->rdlen = get16(abuf + *off + 8);
	rr->rdoff = *off + 10;
	if (rr->rdoff + rr->rdlen > alen)
		goto bad;
	*off = rr->rdoff + rr->rdlen;
	return 0;
bad:
	ares_free_string(rr->owner);
	rr->owner = NULL;
	return -1;
}

/* in_chain - name is one of chain[0..n) */
static int
in_chain(char chain[][256], size_t n, const char *name)
{
	size_t	i;

	for (i = 0; i < n; i++)
		if (name_eq(chain[i], name))
			return 1;
	return 0;
}

/* tlsa_usable - RFC 7672 3.1 / RFC 7671 9: usage 2 or 3, a known
 * selector and matching type, and a digest of the right length */
static int
tlsa_usable(unsigned usage, unsigned sel, unsigned mtype, size_t len)
{
	if (usage != 2 && usage != 3)
		return 0;	/* PKIX-TA / PKIX-EE: unusable for SMTP */
	if (sel > 1 || mtype > 2 || len == 0)
		return 0;
	if ((mtype == 1 && len != 32) || (mtype == 2 && len != 64))
		return 0;
	return 1;
}

/*
 * answer_start - skip the header and question of abuf: the offset of
 * the answer section, its record count (at most MAX_RRS) in *an; -1 if
 * malformed
 */
static long
answer_start(const unsigned char *abuf, size_t alen, size_t *an)
{
	size_t	qd, i, off;
	long	enclen;

	if (alen < 12 || alen > 65535)
		return -1;
	qd = get16(abuf + 4);
	*an = get16(abuf + 6);
	if (*an > MAX_RRS)
		*an = MAX_RRS;
	for (off = 12, i = 0; i < qd; i++) {
		if ((enclen = skip_name(abuf, alen, off)) < 0 ||
		    off + (size_t)enclen + 4 > alen)
			return -1;
		off += (size_t)enclen + 4;
	}
	return (long)off;
}

/*
 * cname_chain - chain[0] = qname, then the CNAME targets the answer
 * section gives from it, in chain order whatever the records' order
 * (RFC 7672 2.2.3); *nchain names.  0, or -1 with why set (malformed,
 * chain too long).
 */
static int
cname_chain(const unsigned char *abuf, size_t alen, size_t start, size_t an,
    const char *qname, char chain[][256], size_t *nchain, char *why,
    size_t whylen)
{
	struct rr	 rr;
	char		*target;
	size_t		 off, i;
	long		 enclen;
	int		 grew = 1;

	*nchain = 1;
	(void)snprintf(chain[0], 256, "%s", qname);
	while (grew) {
		grew = 0;
		for (off = start, i = 0; i < an; i++) {
			if (next_rr(abuf, alen, &off, &rr) == -1)
				goto malformed;
			if (rr.type != T_CNAME || rr.class != C_IN ||
			    !name_eq(rr.owner, chain[*nchain - 1])) {
				ares_free_string(rr.owner);
				continue;
			}
			ares_free_string(rr.owner);
			target = NULL;
			if (ares_expand_name(abuf + rr.rdoff, abuf, (int)alen,
			    &target, &enclen) != ARES_SUCCESS)
				goto malformed;
			if (in_chain(chain, *nchain, target) ||
			    strlen(target) >= 256 || *nchain > MAX_CHAIN) {
				ares_free_string(target);
				(void)snprintf(why, whylen, "CNAME loop or chain "
				    "too long");
				return -1;
			}
			(void)snprintf(chain[*nchain], 256, "%s", target);
			(*nchain)++;
			ares_free_string(target);
			grew = 1;
			break;
		}
	}
	return 0;
malformed:
	(void)snprintf(why, whylen, "malformed answer");
	return -1;
}

int
dlv_dane_expanded(const unsigned char *abuf, size_t alen, const char *qname,
    char *out, size_t outlen)
{
	char	chain[MAX_CHAIN + 1][256], why[64];
	size_t	an, nchain;
	long	start;

	out[0] = '\0';
	if (strlen(qname) >= sizeof(chain[0]) ||
	    (start = answer_start(abuf, alen, &an)) < 0 ||
	    cname_chain(abuf, alen, (size_t)start, an, qname, chain, &nchain,
	    why, sizeof(why)) == -1)
		return -1;
	if (nchain > 1) {
		if (strlen(chain[nchain - 1]) >= outlen)
			return -1;
		(void)snprintf(out, outlen, "%s", chain[nchain - 1]);
	}
	return 0;
}

int
dlv_dane_parse(const unsigned char *abuf, size_t alen, const char *qname,
    struct dlv_dane *d, size_t *present, char *why, size_t whylen)
{
	char		 chain[MAX_CHAIN + 1][256];
	size_t		 nchain, an, i, off, len;
	long		 start;
	struct rr	 rr;
	struct dlv_tlsa	*t;

	d->ntlsa = 0;
	d->ndata = 0;
	*present = 0;
	if (strlen(qname) >= sizeof(chain[0]) ||
	    (start = answer_start(abuf, alen, &an)) < 0) {
		(void)snprintf(why, whylen, "malformed answer");
		return -1;
	}
	if (cname_chain(abuf, alen, (size_t)start, an, qname, chain, &nchain,
	    why, whylen) == -1)
		return -1;

	/* the TLSA records of the chain's names (RRSIGs and others skipped) */
	for (off = (size_t)start, i = 0; i < an; i++) {
		if (next_rr(abuf, alen, &off, &rr) == -1) {
			(void)snprintf(why, whylen, "malformed answer");
			return -1;
		}
		if (rr.type != T_TLSA || rr.class != C_IN ||
		    !in_chain(chain, nchain, rr.owner)) {
			ares_free_string(rr.owner);
			continue;
		}
		ares_free_string(rr.owner);
		(*present)++;
		if (rr.rdlen < 3)
			continue;	/* unusable, but present */
		len = rr.rdlen - 3;
		if (!tlsa_usable(abuf[rr.rdoff], abuf[rr.rdoff + 1],
		    abuf[rr.rdoff + 2], len))
			continue;
		if (d->ntlsa >= DLV_TLSA_MAX ||
		    d->ndata + len > sizeof(d->data)) {
			(void)snprintf(why, whylen, "too many TLSA records "
			    "(over %d, or %d octets)", DLV_TLSA_MAX,
			    DLV_TLSA_BYTES);
			return -1;
		}
		t = &d->tlsa[d->ntlsa++];
		t->usage = abuf[rr.rdoff];
		t->selector = abuf[rr.rdoff + 1];
		t->mtype = abuf[rr.rdoff + 2];
		t->off = (uint16_t)d->ndata;
		t->len = (uint16_t)len;
		memcpy(d->data + d->ndata, abuf + rr.rdoff + 3, len);
		d->ndata += len;
	}
	return 0;
}

void
dlv_dane_answer(struct dlv_dane *d, const char *qname, int status,
    const unsigned char *abuf, int alen, int ad)
{
	char	why[128];
	size_t	present;

	memset(d, 0, sizeof(*d));
	switch (status) {
	case ARES_SUCCESS:
		break;
	case ARES_ENODATA:
	case ARES_ENOTFOUND:
		return;		/* no TLSA (secure or insecure denial) */
	case ARES_ESERVFAIL:
		d->state = DLV_DANE_ERROR;
		(void)snprintf(d->why, sizeof(d->why), "TLSA lookup for %.100s "
		    "failed: server failure (DNSSEC validation failed?)",
		    qname);
		return;
	default:
		d->state = DLV_DANE_ERROR;
		(void)snprintf(d->why, sizeof(d->why), "TLSA lookup for %.100s "
		    "failed: %s", qname, ares_strerror(status));
		return;
	}
	if (!ad || abuf == NULL)
		return;		/* insecure TLSA RRset: as without DANE */
	if (dlv_dane_parse(abuf, (size_t)alen, qname, d, &present, why,
	    sizeof(why)) == -1) {
		d->state = DLV_DANE_ERROR;
		(void)snprintf(d->why, sizeof(d->why), "TLSA lookup for %.100s "
		    "failed: %.60s", qname, why);
		d->ntlsa = d->ndata = 0;
		return;
	}
	if (d->ntlsa > 0)
		d->state = DLV_DANE_USABLE;
	else if (present > 0)
		d->state = DLV_DANE_UNUSABLE;
}

/* ---- TLS ---- */

int
dlv_dane_ctx_init(void *ctx)
{
	return SSL_CTX_dane_enable(ctx) > 0 ? 0 : -1;
}

const char *
dlv_dane_base(const struct dlv_peer *p)
{
	return p->dane.base[0] != '\0' ? p->dane.base : p->name;
}

int
dlv_dane_ssl(void *vssl, const struct dlv_peer *p)
{
	SSL			*ssl = vssl;
	const struct dlv_dane	*d = &p->dane;
	const struct dlv_tlsa	*t;
	size_t			 i;
	int			 rc, usable = 0;

	if (d->state != DLV_DANE_USABLE && d->state != DLV_DANE_UNUSABLE)
		return 0;
	/* SNI: the TLSA base domain (RFC 7672 8.1) */
	if (SSL_set_tlsext_host_name(ssl, dlv_dane_base(p)) != 1)
		return -1;
	if (d->state != DLV_DANE_USABLE)
		return 0;
	/* the base domain: the first reference identifier (3.2.2) */
	if (SSL_dane_enable(ssl, dlv_dane_base(p)) <= 0)
		return -1;
	(void)SSL_dane_set_flags(ssl, DANE_FLAG_NO_DANE_EE_NAMECHECKS);
	SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
	if (p->dane_nexthop[0] != '\0' &&
	    !name_eq(p->dane_nexthop, dlv_dane_base(p)) &&
	    SSL_add1_host(ssl, p->dane_nexthop) != 1)
		return -1;
	for (i = 0; i < d->ntlsa; i++) {
		t = &d->tlsa[i];
		rc = SSL_dane_tlsa_add(ssl, t->usage, t->selector, t->mtype,
		    d->data + t->off, t->len);
		if (rc < 0)
			return -1;
		if (rc > 0)
			usable++;
	}
	if (usable == 0)
		return 0;	/* OpenSSL refused them all: TLS, no authentication */
	SSL_set_verify(ssl, SSL_VERIFY_PEER, NULL);
	return 1;
}

int
dlv_dane_verified(void *vssl, char *desc, size_t desclen)
{
	SSL	*ssl = vssl;
	uint8_t	 usage, sel, mtype;
	int	 depth;

	if (SSL_get_verify_result(ssl) != X509_V_OK ||
	    (depth = SSL_get0_dane_authority(ssl, NULL, NULL)) < 0 ||
	    SSL_get0_dane_tlsa(ssl, &usage, &sel, &mtype, NULL, NULL) < 0)
		return -1;
	if (usage == 3)
		(void)snprintf(desc, desclen, "DANE-EE %u %u %u verified",
		    usage, sel, mtype);
	else
		(void)snprintf(desc, desclen, "DANE-TA %u %u %u verified at "
		    "depth %d", usage, sel, mtype, depth);
	return 0;
}

/* ---- policy ---- */

int
dlv_dane_tls_required(const struct dlv_peer *p)
{
	return p->dane.state == DLV_DANE_USABLE ||
	    p->dane.state == DLV_DANE_UNUSABLE;
}

enum dlv_tls_policy
dlv_dane_policy(const struct dlv_peer *p)
{
	return p->dane.state == DLV_DANE_NONE ? DLV_TLS_NONE : DLV_TLS_DANE;
}

void
dlv_dane_peer(struct dlv_peer *p, const struct dlv_route *r,
    const struct dlv_host *h)
{
	p->dane = h->dane;
	p->dane_nexthop[0] = '\0';
	if (h->dane.state == DLV_DANE_USABLE && r->secure)
		(void)snprintf(p->dane_nexthop, sizeof(p->dane_nexthop), "%s",
		    r->nexthop);
}

int
dlv_dane_skip(const struct dlv_host *h, struct dlv_result *r)
{
	size_t	ridx = r->ridx;

	if (h->dane.state != DLV_DANE_ERROR)
		return 0;
	memset(r, 0, sizeof(*r));
	r->ridx = ridx;
	r->hop_dsn = r->hop_mtrk = r->hop_by = -1;
	r->status = RS_DEFERRED;
	r->code = 454;
	metrics_tls_outbound("dane", "failed");	/* no connection made */
	(void)snprintf(r->enh, sizeof(r->enh), "4.7.5");
	(void)snprintf(r->text, sizeof(r->text), "DANE: %s; not connecting "
	    "to %s (RFC 7672 2.1.2)", h->dane.why, h->name);
	(void)snprintf(r->remote, sizeof(r->remote), "%s", h->name);
	r->tls_policy = DLV_TLS_DANE;
	(void)snprintf(r->tls_result, sizeof(r->tls_result), "tlsa-error");
	log_info("smtp: %s", r->text);
	return 1;
}

int
dlv_dane_same(const struct dlv_dane *a, const struct dlv_dane *b)
{
	size_t	i;

	if (a->state != b->state || strcmp(a->base, b->base) != 0)
		return 0;
	if (a->state != DLV_DANE_USABLE)
		return 1;
	if (a->ntlsa != b->ntlsa || a->ndata != b->ndata ||
	    memcmp(a->data, b->data, a->ndata) != 0)
		return 0;
	for (i = 0; i < a->ntlsa; i++)
		if (a->tlsa[i].usage != b->tlsa[i].usage ||
		    a->tlsa[i].selector != b->tlsa[i].selector ||
		    a->tlsa[i].mtype != b->tlsa[i].mtype ||
		    a->tlsa[i].len != b->tlsa[i].len)
			return 0;
	return 1;
}
