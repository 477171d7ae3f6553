#include "config.h"
/*
 * trkload.c - benchmark tool (not installed): fill the store of a spool
 * with N finished, retained, tracked messages through queue/'s bulk load
 * (queue_bulk_load), for bench/track.sh.
 * Usage: trkload -f CONF [-n N] [-b BATCH] [-d DAYS]
 *   N messages (default 1000000), BATCH per transaction (default 1000),
 *   arrivals spread evenly over the last DAYS days (default 2), oldest
 *   first.  No daemon may run on the spool (the spool lock is taken).
 * Message n: from s<n%1000>@client.bench.test over ESMTPS from
 *   client.bench.test [192.0.2.10], 4096 bytes, ENVID trk_envid(n) and
 *   the certifier of trk_secret(n) (trkbench.h), no MTRK timeout (so
 *   tracked until arrival + tracking_retention, after the load's now
 *   when DAYS < tracking_retention); two recipients, both final:
 *   u<n%5000>@example.org delivered to its Maildir, and
 *   r<n%7919>@d<n%97>.example.net transferred (250 from
 *   mx1.d<n%97>.example.net[192.0.2.<n%97+20>], a next hop with DSN and
 *   MTRK).  The records, events and index entries are those the daemon
 *   leaves for such a message (queue_bulk.c).
 * Run as root: it enters the spool, creating it owned by `user` when
 *   missing, takes the lock and drops to `user`, like waymarkd.
 * Output: progress on stderr; at the end one line on stdout:
 *   "loaded N messages (2 recipients each) in S s: R msg/s; queue ids
 *   FIRST (n = 0) to LAST".
 * Exit: 0 done; 1 failure; 2 usage or configuration error.
 */

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/cfg.h"
#include "common/log.h"
#include "common/syntax.h"
#include "common/util.h"
#include "queue/queue.h"
#include "bench/benchlib.h"
#include "bench/trkbench.h"

const char	bench_name[] = "trkload";

/* usage - the synopsis on stderr, exit 2 */
void
usage(void)
{
	fprintf(stderr, "usage: trkload -f CONF [-n N] [-b BATCH] "
	    "[-d DAYS]\n");
	exit(2);
}

/* final_rcpt - recipient r's last attempt and result */
static void
final_rcpt(struct qrcpt *r, enum rcpt_status st, time_t when,
    const char *text, const char *remote, int hop)
{
	r->status = st;
	r->attempts = 1;
	r->next_attempt = 0;
	r->last_attempt = when;
	r->last_code = 250;
	(void)snprintf(r->last_enh, sizeof(r->last_enh), "2.0.0");
	r->last_text = xstrdup(text);
	r->remote_mta = remote != NULL ? xstrdup(remote) : NULL;
	r->hop_dsn = r->hop_mtrk = hop;
}

/* make_msg - message n of the load, arriving at `arrival` */
static struct qmsg *
make_msg(uint64_t n, time_t arrival)
{
	struct qmsg	*m;
	char		 envid[TRK_ENVID_SIZE], secret[TRK_SECRET_SIZE];
	char		 cert[28], buf[300], remote[300];
	unsigned	 d = (unsigned)(n % 97);

	if ((m = qmsg_new()) == NULL)
		die("out of memory");
	trk_envid(n, envid);
	trk_secret(n, secret);
	if (mtrk_certifier((const unsigned char *)secret, strlen(secret),
	    cert) == -1)
		die("cannot compute a certifier");
	m->arrival = arrival;
	m->size = 4096;
	(void)snprintf(buf, sizeof(buf), "s%u@client.bench.test",
	    (unsigned)(n % 1000));
	m->sender = xstrdup(buf);
	m->envid = xstrdup(envid);
	m->mtrk_certifier = xstrdup(cert);
	m->client_addr = xstrdup("192.0.2.10");
	m->client_name = xstrdup("client.bench.test");
	m->helo = xstrdup("client.bench.test");
	m->tls = xstrdup("TLSv1.3 TLS_AES_256_GCM_SHA384");
	(void)snprintf(buf, sizeof(buf), "<%" PRIu64 ".%08" PRIx64
	    "@client.bench.test>", n, trk_mix(n) & 0xffffffffu);
	m->message_id = xstrdup(buf);
	m->state = MS_NORMAL;
	m->done_time = arrival + 2;
	(void)snprintf(buf, sizeof(buf), "u%u@example.org",
	    (unsigned)(n % 5000));
	if (qmsg_add_rcpt(m, buf) == -1)
		die("out of memory");
	(void)snprintf(buf, sizeof(buf), "r%u@d%u.example.net",
	    (unsigned)(n % 7919), d);
	if (qmsg_add_rcpt(m, buf) == -1)
		die("out of memory");
	final_rcpt(&m->rcpts[0], RS_DELIVERED, arrival + 1,
	    "delivered to maildir", NULL, -1);
	(void)snprintf(buf, sizeof(buf), "Ok: queued as %010" PRIx64
	    " (TLSv1.3 TLS_AES_256_GCM_SHA384)", trk_mix(~n) >> 24);
	(void)snprintf(remote, sizeof(remote),
	    "mx1.d%u.example.net[192.0.2.%u]", d, d + 20);
	final_rcpt(&m->rcpts[1], RS_TRANSFERRED, arrival + 2, buf, remote, 1);
	return m;
}

/* main - load the messages in batches */
int
main(int argc, char **argv)
{
	struct config	 *cfg;
	struct qmsg	**batch;
	const char	 *conf = NULL;
	char		  err[1024], first[QID_SIZE] = "", last[QID_SIZE] = "";
	uint64_t	  n = 1000000, bsize = 1000, days = 2, i, k, nb;
	time_t		  now = time(NULL), span;
	double		  t0, t;
	int		  c;

	while ((c = getopt(argc, argv, "f:n:b:d:")) != -1) {
		switch (c) {
		case 'f': conf = optarg; break;
		case 'n': n = num(optarg); break;
		case 'b': bsize = num(optarg); break;
		case 'd': days = num(optarg); break;
		default: usage();
		}
	}
	if (conf == NULL || optind != argc || bsize > 100000 || days > 3650)
		usage();
	log_init("trkload", 0, 0);
	if ((cfg = cfg_load(conf, err, sizeof(err))) == NULL) {
		fprintf(stderr, "trkload: %s\n", err);
		return 2;
	}
	enter_spool(cfg);
	if (queue_bulk_open(cfg, err, sizeof(err)) == -1)
		die("%s", err);
	if ((batch = calloc((size_t)bsize, sizeof(*batch))) == NULL)
		die("out of memory");
	span = (time_t)(days * 86400);
	t0 = mono();
	for (i = 0; i < n; i += nb) {
		nb = n - i < bsize ? n - i : bsize;
		for (k = 0; k < nb; k++)
			batch[k] = make_msg(i + k, now - span +
			    (time_t)((double)span * (double)(i + k) / (double)n));
		if (queue_bulk_load(batch, (size_t)nb, err, sizeof(err)) == -1)
			die("after %" PRIu64 " messages: %s", i, err);
		if (i == 0)
			(void)snprintf(first, sizeof(first), "%s", batch[0]->qid);
		(void)snprintf(last, sizeof(last), "%s", batch[nb - 1]->qid);
		for (k = 0; k < nb; k++)
			qmsg_free(batch[k]);
		if ((i + nb) % 100000 < nb || i + nb == n)
			fprintf(stderr, "trkload: %" PRIu64 " messages, %.1f s\n",
			    i + nb, mono() - t0);
	}
	if (queue_bulk_close() == -1)
		die("the store failed at its close (see the messages above)");
	t = mono() - t0;
	printf("loaded %" PRIu64 " messages (2 recipients each) in %.1f s: "
	    "%.0f msg/s; queue ids %s (n = 0) to %s\n", n, t,
	    t > 0 ? (double)n / t : 0.0, first, last);
	free(batch);
	cfg_free(cfg);
	return 0;
}
