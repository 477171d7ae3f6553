/*
 * dlv_int.h - private interfaces between the files of delivery/:
 * dlv_dns.c (c-ares in the libevent loop; routes: MX / implicit MX /
 * smarthost), dlv_smtp.c (the SMTP/LMTP client session), dlv_remote.c
 * (jobs: route, then a client session; concurrency limits, connection
 * reuse).  Nothing outside delivery/ includes this file.
 */
#ifndef WAYMARK_DLV_INT_H
#define WAYMARK_DLV_INT_H

#include <stddef.h>
#include <sys/socket.h>
#include "delivery/delivery.h"

struct event_base;

#include <stdint.h>

/* ---- dlv_dane.c: DANE for SMTP (RFC 7672) ---- */

#define DLV_TLSA_MAX	8	/* usable TLSA records kept per host */
#define DLV_TLSA_BYTES	512	/* their association data, in all */

enum dlv_dane_state {
	DLV_DANE_NONE = 0,	/* dns_dnssec off, insecure, or no TLSA: as before */
	DLV_DANE_USABLE,	/* secure usable records: TLS and authentication */
	DLV_DANE_UNUSABLE,	/* secure records, none usable: TLS mandatory */
	DLV_DANE_ERROR,		/* TLSA lookup failed (bogus, SERVFAIL): never connect */
};

struct dlv_tlsa {			/* one usable record (usage 2 or 3) */
	uint8_t		 usage, selector, mtype;
	uint16_t	 off, len;	/* association data in dlv_dane.data */
};

struct dlv_dane {
	enum dlv_dane_state	 state;
	char			 base[256];	/* TLSA base domain when not the
						 * host name (its CNAME expansion) */
	size_t			 ntlsa;
	struct dlv_tlsa		 tlsa[DLV_TLSA_MAX];
	size_t			 ndata;
	unsigned char		 data[DLV_TLSA_BYTES];
	char			 why[200];	/* DLV_DANE_ERROR: what failed */
};

/* ---- dlv_dns.c ---- */

#define DLV_MAX_ADDRS	8	/* addresses kept per host */
#define DLV_MAX_HOSTS	10	/* hosts kept per route */

struct dlv_host {
	char			 name[256];	/* MX host name, or the address text */
	int			 pref;		/* MX preference (0 for implicit/smarthost) */
	struct sockaddr_storage	 addrs[DLV_MAX_ADDRS];	/* port already set */
	socklen_t		 alens[DLV_MAX_ADDRS];
	size_t			 naddrs;
	/* dns_dnssec: the MX (or smarthost) answer and this host's address
	 * answers were all secure (AD); then dane is its TLSA result */
	int			 secure;
	char			 cname[256];	/* secure: its CNAME expansion, or "" */
	struct dlv_dane		 dane;
};

enum dlv_route_status {
	DLV_ROUTE_OK = 0,
	DLV_ROUTE_TEMP,		/* DNS temporary failure: defer 4.4.3 */
	DLV_ROUTE_NXDOMAIN,	/* no such domain: fail 5.1.2 */
	DLV_ROUTE_NULLMX,	/* RFC 7505 null MX: fail 5.1.10 */
	DLV_ROUTE_LOOP,		/* we are the best MX: fail 5.4.6 */
	DLV_ROUTE_NOHOST,	/* MX hosts without addresses: defer 4.4.3 */
};

struct dlv_route {
	enum dlv_route_status	 status;
	char			 why[256];	/* human text for the result */
	char			 nexthop[256];	/* name whose MX was asked (DANE-TA names) */
	int			 secure;	/* dns_dnssec: that MX answer was secure */
	size_t			 nhosts;
	/* last: a copy may hold only the first nhosts (DLV_ROUTE_SIZE) */
	struct dlv_host		 hosts[DLV_MAX_HOSTS];	/* in the order to try */
};
/* the size of a copy of r that holds its hosts (about 2.7 KiB each) */
#define DLV_ROUTE_SIZE(r) \
	(offsetof(struct dlv_route, hosts) + (r)->nhosts * sizeof((r)->hosts[0]))

/* dlv_dns_init - c-ares channel integrated in base (cfg->dns servers
 * "ADDR" / "ADDR:PORT" / "[v6]:PORT", else /etc/resolv.conf) */
int	dlv_dns_init(const struct config *cfg, struct event_base *base,
	    char *err, size_t errlen);
void	dlv_dns_shutdown(void);

typedef void (*dlv_route_fn)(void *arg, const struct dlv_route *r);
/*
 * dlv_route_lookup - the route for domain: cfg->smarthost when set
 * ("[host]:port" or "[addr]:port" = no MX lookup; "host[:port]" = MX
 * lookup of host), else MX of domain by preference (equal preferences
 * shuffled), A/AAAA when there is no MX; null MX; MX self-detection
 * (RFC 5321 5.1: a host named cfg->hostname or resolving to one of our
 * listen addresses: drop it and every less preferred one; none left =
 * DLV_ROUTE_LOOP).  Ports: smarthost's, else cfg->smtp_port.  With
 * dns_dnssec every query asks for the AD bit, and each host whose MX and
 * address answers were secure gets its TLSA records (_25._tcp.HOST,
 * whatever the port) in host.dane before the route is returned.  The
 * callback runs once, in the loop thread, possibly before this returns
 * (cached).  Returns 0 or -1 (not started: no callback).
 */
int	dlv_route_lookup(const char *domain, dlv_route_fn cb, void *arg);
/* dlv_dns_reload - new cfg (servers, hostname, listen, smarthost, smtp_port);
 * lookups in flight keep their old settings.  0 or -1 with err set. */
int	dlv_dns_reload(const struct config *cfg, char *err, size_t errlen);
/* dlv_route_cancel - the callbacks of lookups started with arg never run.
 * dlv_dns_shutdown likewise cancels every lookup in flight (no callback). */
void	dlv_route_cancel(void *arg);
/*
 * dlv_dns_query - one query of type (ns_t_txt, ns_t_a ...) for name on
 * the daemon's channel (`dns`); cb gets the c-ares status and the raw
 * answer, from within c-ares (possibly before this returns when the
 * channel fails at once), never at dlv_dns_shutdown.  0 or -1 (no cb).
 */
typedef void (*dlv_dns_fn)(void *arg, int status, const unsigned char *abuf,
	    int alen);
int	dlv_dns_query(const char *name, int type, dlv_dns_fn cb, void *arg);
/* dlv_dns_query_cancel - the callbacks of queries with arg never run */
void	dlv_dns_query_cancel(void *arg);
/* ---- dlv_smtp.c / dlv_remote.c ---- */

/* dlv_msg - what one job copied out of the qmsg, and its results */
struct dlv_msg {
	char		   qid[QID_SIZE];
	char		  *sender;	/* "" for <> */
	char		 **rcpts;	/* addresses, parallel to res[] */
	struct dlv_result *res;		/* ridx set by the job */
	unsigned char	  *done;	/* 1 = res[i] is final for this job */
	size_t		   nrcpts;
	char		 **trace;	/* oldest first (qmsg.trace) */
	size_t		   ntrace;
	char		  *body_path;	/* spool file, CRLF, unstuffed */
	uint64_t	   size;
	int		   body_8bit;
	unsigned	   intl;	/* qmsg.intl: QM_SMTPUTF8, QM_UTF8_HDR */
	int		   body_binary;	/* RFC 3030 BODY=BINARYMIME */
	/* RFC 3461 / RFC 3885 facts for next hops advertising DSN / MTRK */
	char		  *envid;	/* xtext-decoded, NULL = none */
	int		   ret;		/* DSN_RET_* */
	char		  *mtrk_cert;	/* NULL = untracked */
	long		   mtrk_timeout; /* seconds, 0 = none given */
	time_t		   arrival;
	/* RFC 2852: absolute deadline (0 = none) and BY_* flags */
	time_t		   deliver_by;
	unsigned	   by_flags;
	unsigned	  *notify;	/* DSN_NOTIFY_* bits, parallel to rcpts */
	char		 **orcpt;	/* "type;decoded" or NULL, parallel to rcpts */
	/* RFC 8689: the REQUIRETLS tag; TLS-Required: No (never both) */
	int		   requiretls;
	int		   tls_optional;
};

/* dlv_peer - one address to talk to */
struct dlv_peer {
	struct sockaddr_storage	ss;
	socklen_t		len;
	char			name[256];	/* host name: SNI, verification, texts */
	char			remote[256];	/* "host[addr]" or "lmtp:PATH" */
	int			lmtp;		/* LHLO, one reply per recipient */
	int			notls;		/* no STARTTLS (plaintext retry, unix socket) */
	int			auth;		/* AUTH with the smarthost_auth secret */
	struct dlv_dane		dane;		/* the host's DANE state and records */
	char			dane_nexthop[256]; /* secure MX: a DANE-TA name too */
	/* outbound TLS policy of this host (DANE / MTA-STS): */
	int			tls_policy;	/* DLV_TLS_MTA_STS when an MTA-STS
						 * policy applies, else DLV_TLS_UNSET
						 * (DANE: dane, dlv_dane_policy) */
	int			tls_require;	/* STARTTLS required (no plaintext) */
	int			tls_verify;	/* certificate valid for name required */
	int			tls_check;	/* verify, only to report (testing) */
	char			tls_note[96];	/* "mta-sts enforce" for result texts */
	char			tls_domain[256]; /* the policy domain (TLS-RPT) */
	char			tls_mxpat[256];	/* the mx pattern that applied */
	int			tls_mxbad;	/* MX matches no pattern (testing) */
	/* RFC 8689 4.2.1: this message must go with REQUIRETLS (MX name
	 * validated; TLS, a verified certificate and REQUIRETLS in the
	 * post-TLS EHLO are mandatory; failures are 5.7.10 / 5.7.30) */
	int			rtls;
};


enum dlv_outcome {
	DLV_OUT_DONE,	/* every recipient of the msg has its final result */
	DLV_OUT_NEXT,	/* host failed before a transaction: next address (dlv_sess_error) */
	DLV_OUT_PLAIN,	/* TLS handshake failed with smtp_tls = may: retry in plaintext */
	DLV_OUT_CLOSED,	/* an idle (parked) session was closed by the peer */
};

struct dlv_sess;
/*
 * dlv_sess_fn - the outcome of dlv_sess_run, or the close of a parked
 * session.  The session does not touch itself after calling it: the
 * callee parks it, quits it or frees it.
 */
typedef void (*dlv_sess_fn)(void *arg, struct dlv_sess *s, enum dlv_outcome o);

/* dlv_sess_new - a session for peer (not connected yet); NULL on ENOMEM */
struct dlv_sess	*dlv_sess_new(const struct dlv_peer *peer);
/* dlv_sess_run - connect (or reuse the parked connection) and deliver m;
 * cb once, never before this returns.  0 or -1. */
int	 dlv_sess_run(struct dlv_sess *s, const struct config *cfg,
	    struct dlv_msg *m, dlv_sess_fn cb, void *arg);
/* dlv_sess_reusable - 1 when the connection may carry another message */
int	 dlv_sess_reusable(const struct dlv_sess *s);
/* dlv_sess_was_reused - 1 when the last run used a parked connection */
int	 dlv_sess_was_reused(const struct dlv_sess *s);
/* dlv_sess_park - keep an idle connection; cb(DLV_OUT_CLOSED) if it drops */
void	 dlv_sess_park(struct dlv_sess *s, dlv_sess_fn cb, void *arg);
/* dlv_sess_quit - send QUIT and free the session once answered (or 5 s) */
void	 dlv_sess_quit(struct dlv_sess *s);
/* dlv_sess_free - close now */
void	 dlv_sess_free(struct dlv_sess *s);
const struct dlv_peer *dlv_sess_peer(const struct dlv_sess *s);
/* dlv_sess_error - the reason of DLV_OUT_NEXT / DLV_OUT_PLAIN */
void	 dlv_sess_error(const struct dlv_sess *s, struct dlv_result *r);
/* dlv_smtp_shutdown - free every session left (quitting ones included) */
void	 dlv_smtp_shutdown(void);

/*
 * dlv_reply_probe - the reply parser alone (tests/fuzz/fuzz_smtp_reply.c):
 * buf[0..len) is read as a next hop's replies are (lines ended by CRLF or
 * LF, none over the session's limit) by a session waiting for the reply
 * to EHLO (ehlo != 0) or to MAIL; fn gets each complete reply.  Returns
 * the number of complete replies, or -1 at the first line the session
 * would close the connection for.
 */
struct dlv_reply_info {
	int		 code;
	const char	*enh;		/* "x.y.z", never empty */
	const char	*text;		/* the lines' texts joined */
	unsigned	 caps;		/* EHLO capabilities so far (CAP_*) */
	uint64_t	 maxsize;	/* SIZE's value */
	long		 bymin;		/* DELIVERBY's min-by-time */
};
int	 dlv_reply_probe(const char *buf, size_t len, int ehlo,
	    void (*fn)(void *arg, const struct dlv_reply_info *ri), void *arg);

/* ---- dlv_dane.c ---- */

/*
 * dlv_dane_answer - d from the TLSA answer for qname (status as
 * ares_query reports it, ad = the answer's AD bit): no records or an
 * insecure answer = DLV_DANE_NONE; secure records = USABLE or UNUSABLE;
 * a failure (SERVFAIL from the validating resolver = bogus, timeout,
 * malformed answer, too many records) = DLV_DANE_ERROR with d->why.
 */
void	 dlv_dane_answer(struct dlv_dane *d, const char *qname, int status,
	    const unsigned char *abuf, int alen, int ad);
/*
 * dlv_dane_parse - the TLSA records for qname (or the CNAME chain the
 * answer gives for it) in the answer section of abuf[0..alen): usable
 * ones (RFC 7672 3.1: usage 2/3, known selector and matching type, right
 * digest length) into d, *present = all TLSA records seen.  0, or -1 with
 * why set (malformed, or more usable records than d keeps).
 */
int	 dlv_dane_parse(const unsigned char *abuf, size_t alen,
	    const char *qname, struct dlv_dane *d, size_t *present,
	    char *why, size_t whylen);
/* dlv_dane_expanded - the last name of the CNAME chain from qname in the
 * answer section (an A/AAAA answer), or "" when none; 0, or -1 if malformed */
int	 dlv_dane_expanded(const unsigned char *abuf, size_t alen,
	    const char *qname, char *out, size_t outlen);
/* dlv_dane_base - p's TLSA base domain: SNI, first reference identifier */
const char *dlv_dane_base(const struct dlv_peer *p);
/* dlv_dane_ctx_init - SSL_CTX_dane_enable on the client context; 0 or -1 */
int	 dlv_dane_ctx_init(void *ctx);
/* dlv_dane_ssl - before the handshake: the records of p on ssl (SSL *);
 * 1 = DANE authenticates (SSL_VERIFY_PEER), 0 = no DANE authentication,
 * -1 = error */
int	 dlv_dane_ssl(void *ssl, const struct dlv_peer *p);
/* dlv_dane_verified - after a handshake under dlv_dane_ssl = 1: 0 with
 * "DANE-EE 3 1 1 verified" in desc, or -1 (not DANE-authenticated) */
int	 dlv_dane_verified(void *ssl, char *desc, size_t desclen);
/* dlv_dane_tls_required - p published secure TLSA records (RFC 7672 2.2) */
int	 dlv_dane_tls_required(const struct dlv_peer *p);
/* dlv_dane_policy - DLV_TLS_DANE when DANE applies to p, else DLV_TLS_NONE */
enum dlv_tls_policy dlv_dane_policy(const struct dlv_peer *p);
/* dlv_dane_peer - p takes host h's DANE state (route r's next hop) */
void	 dlv_dane_peer(struct dlv_peer *p, const struct dlv_route *r,
	    const struct dlv_host *h);
/* dlv_dane_skip - host h must not be contacted (TLSA lookup failed):
 * 1 with its error in r, else 0 */
int	 dlv_dane_skip(const struct dlv_host *h, struct dlv_result *r);
/* dlv_dane_same - a parked connection made under a may serve b */
int	 dlv_dane_same(const struct dlv_dane *a, const struct dlv_dane *b);
/* ---- dlv_mtasts.c (RFC 8461) ---- */

enum dlv_sts_mode { DLV_STS_NONE = 0, DLV_STS_TESTING, DLV_STS_ENFORCE };
#define DLV_STS_MX_MAX	16
/* dlv_sts - the policy that applies to one delivery (none: mode NONE) */
struct dlv_sts {
	enum dlv_sts_mode	 mode;
	char			 domain[256];
	char			 id[33];
	char			 mx[DLV_STS_MX_MAX][256];	/* patterns, lower case */
	size_t			 nmx;
	long			 max_age;
	char			 note[160];	/* why there is none, for the log */
};
int	dlv_sts_init(const struct config *cfg, char *err, size_t errlen);
void	dlv_sts_reload(const struct config *cfg);
void	dlv_sts_shutdown(void);
typedef void (*dlv_sts_fn)(void *arg, const struct dlv_sts *p);
/*
 * dlv_sts_lookup - the MTA-STS policy of domain: TXT _mta-sts.DOMAIN,
 * then the cache (memory, then the store) when its id matches and
 * max_age has not passed, else an HTTPS fetch; a cached unexpired policy
 * applies when the TXT or the fetch fails.  cb runs once, from the loop,
 * never inside this call.  0, or -1 (not started: no callback).
 */
int	dlv_sts_lookup(const char *domain, dlv_sts_fn cb, void *arg);
/* dlv_sts_cancel - the callback of the lookup started with arg never runs */
void	dlv_sts_cancel(void *arg);
/* dlv_sts_mx_match - host matches one of p's mx patterns (RFC 8461 4.1):
 * 0 = none, else 1 + the index of the first that does */
int	dlv_sts_mx_match(const struct dlv_sts *p, const char *host);
/* dlv_sts_parse - policy text into p (mode, mx, max_age); 0, or -1 with
 * why set (RFC 8461 3.2) */
int	dlv_sts_parse(const char *text, size_t len, struct dlv_sts *p,
	    const char **why);
/* dlv_sts_txt_id - the id of one TXT record text (v=STSv1; id=...):
 * 0, 1 when it is not an STSv1 record, -1 when it is a bad one */
int	dlv_sts_txt_id(const char *txt, size_t len, char id[33]);

/* ---- dlv_tlsrpt.c (RFC 8460) ---- */

int	dlv_tlsrpt_init(const struct config *cfg, struct event_base *base,
	    char *err, size_t errlen);
void	dlv_tlsrpt_reload(const struct config *cfg);
void	dlv_tlsrpt_shutdown(void);
/*
 * dlv_tlsrpt_count - one TLS session attempt (or policy fetch) under a
 * policy of domain: ptype "sts" / "tlsa" / "no-policy-found"; mxhost the
 * policy's mx pattern that applied (or NULL); result NULL = success, else
 * the RFC 8460 4.3 result type, with the MX name, its address, our
 * address (sending-mta-ip) and a reason code when known (NULL).  Nothing when `tlsrpt` is off.
 */
void	dlv_tlsrpt_count(const char *domain, const char *ptype,
	    const char *mxhost, const char *result, const char *mx,
	    const char *ip, const char *sip, const char *code);
/* dlv_tlsrpt_x509_result - the result type of an X509_V_ERR_* */
const char *dlv_tlsrpt_x509_result(long vr);

/* dlv_remote.c: shared client state for dlv_smtp.c */
struct event_base *dlv_remote_base(void);
void		  *dlv_remote_ssl_ctx(void);	/* SSL_CTX * */
/* dlv_remote_auth - the smarthost_auth secret; -1 when unset */
int		   dlv_remote_auth(const char **user, const char **pass);

#endif
