#include "config.h"
/*
 * queue_sts.c - the MTA-STS policy cache in the store (RFC 8461 5.1), and
 * the small records of delivery/ (TLS-RPT counters, RFC 8460).
 * Owns: queue_sts_get / queue_sts_put, the record's encoder and decoder;
 *       queue_kv_get/put/del (keys "tlsrpt:...", values opaque here).
 * Record (meta.db, key "mta-sts:DOMAIN", domain lower-cased):
 *   version byte 1 | fetched-at, 8 bytes big-endian Unix seconds |
 *   id length (1 byte, 1..32) | id | policy text (the rest, as fetched).
 * Not here: fetching, parsing and applying policies (delivery/dlv_mtasts.c).
 * Writes go through the commit thread without a flush of their own: a
 * policy lost in a crash is fetched again, which is always allowed.
 */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "common/util.h"
#include "queue/queue_int.h"

#define STS_REC_VERSION	1
#define STS_TEXT_MAX	(64 * 1024)

/* sts_key - "mta-sts:domain" lower-cased; 0 or -1 */
static int
sts_key(const char *domain, char *key, size_t keylen)
{
	int	n;

	n = snprintf(key, keylen, "mta-sts:%s", domain);
	if (n < 0 || (size_t)n >= keylen || domain[0] == '\0')
		return -1;
	str_lower(key);
	return 0;
}

int
queue_sts_get(const char *domain, char id[QUEUE_STS_ID_MAX + 1],
    time_t *fetched, char **text)
{
	char		 key[300];
	unsigned char	*p = NULL;
	void		*v;
	size_t		 len, idlen;
	int		 rc;

	if (sts_key(domain, key, sizeof(key)) == -1)
		return 1;
	if ((rc = qdb_get_meta(key, &v, &len)) != 0)
		return rc;
	p = v;
	if (len < 10 || p[0] != STS_REC_VERSION || (idlen = p[9]) == 0 ||
	    idlen > QUEUE_STS_ID_MAX || len < 10 + idlen ||
	    len - 10 - idlen > STS_TEXT_MAX) {
		log_warnx("queue: corrupt MTA-STS record for %s: ignored",
		    domain);
		free(v);
		return 1;
	}
	*fetched = (time_t)be_get64(p + 1);
	memcpy(id, p + 10, idlen);
	id[idlen] = '\0';
	len -= 10 + idlen;
	if ((*text = malloc(len + 1)) == NULL) {
		free(v);
		return -1;
	}
	memcpy(*text, p + 10 + idlen, len);
	(*text)[len] = '\0';
	free(v);
	return 0;
}

int
queue_sts_put(const char *domain, const char *id, time_t fetched,
    const char *text)
{
	struct qjob	*j;
	char		 key[300];
	unsigned char	*p;
	size_t		 idlen = strlen(id), tlen = strlen(text), len;

	if (sts_key(domain, key, sizeof(key)) == -1 || idlen == 0 ||
	    idlen > QUEUE_STS_ID_MAX || tlen > STS_TEXT_MAX)
		return -1;
	len = 10 + idlen + tlen;
	if ((p = malloc(len)) == NULL)
		return -1;
	p[0] = STS_REC_VERSION;
	be_put64(p + 1, (uint64_t)fetched);
	p[9] = (unsigned char)idlen;
	memcpy(p + 10, id, idlen);
	memcpy(p + 10 + idlen, text, tlen);
	if ((j = qjob_new()) == NULL) {
		free(p);
		return -1;
	}
	if (qjob_put_own(j, QDB_META, key, strlen(key), p, len) == -1) {
		qjob_free(j);
		return -1;
	}
	qjob_lazy(j);
	qdb_commit(j, NULL, NULL);
	return 0;
}

/* ---- small records of delivery/ (TLS-RPT counters) ---- */

/* kv_key_ok - only delivery/'s own prefixes, never the queue's records */
static int
kv_key_ok(const char *key)
{
	return strncmp(key, "tlsrpt:", 7) == 0 && strlen(key) < 512;
}

int
queue_kv_get(const char *key, void **val, size_t *len)
{
	if (!kv_key_ok(key))
		return -1;
	return qdb_get_meta(key, val, len);
}

int
queue_kv_put(const char *key, const void *val, size_t len)
{
	struct qjob	*j;

	if (!kv_key_ok(key) || (j = qjob_new()) == NULL)
		return -1;
	if (qjob_put(j, QDB_META, key, strlen(key), val, len) == -1) {
		qjob_free(j);
		return -1;
	}
	qjob_lazy(j);
	qdb_commit(j, NULL, NULL);
	return 0;
}

int
queue_kv_del(const char *key)
{
	struct qjob	*j;

	if (!kv_key_ok(key) || (j = qjob_new()) == NULL)
		return -1;
	if (qjob_del(j, QDB_META, key, strlen(key)) == -1) {
		qjob_free(j);
		return -1;
	}
	qjob_lazy(j);
	qdb_commit(j, NULL, NULL);
	return 0;
}
