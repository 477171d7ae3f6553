#include "config.h"
/*
 * httpload.c - benchmark tool (not installed): fill a spool with N
 * unfinished (queued) messages through queue/'s bulk load
 * (queue_bulk_queue), for bench/http.sh.
 * Usage: httpload -f CONF [-n N] [-q Q] [-t T] [-b BATCH]
 *   N messages (default 100000), Q of them (default 1000, spread evenly)
 *   held in quarantine (reason "bench", actor "policy bench"), the
 *   others in normal; BATCH per transaction (default 1000); arrivals
 *   spread over the last hour, oldest first.  No daemon may run on the
 *   spool (the spool lock is taken).  Then T (default 0) finished,
 *   tracked messages through queue_bulk_load, for the sender view.
 * Message n: from s<n%1000>@client.bench.test from client.bench.test
 *   [192.0.2.10], Message-ID <n.bench@client.bench.test>, one recipient
 *   r<n%7919>@d<n%97>.example.net (queued), a 512-byte body file.
 * Tracked message n (0 <= n < T): ENVID trk_envid(n), the certifier of
 *   trk_secret(n) (trkbench.h), arrived a minute ago, one recipient
 *   u<n%5000>@example.org delivered to its Maildir (no next hop).
 * Run as root: it enters the spool, creating it owned by `user` when
 *   missing, takes the lock and drops to `user`, like waymarkd.
 * Output: progress on stderr; at the end one line on stdout:
 *   "loaded N messages (Q quarantined) in S s: R msg/s; queue ids FIRST
 *   to LAST; T tracked; middle MIDDLE".
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

const char	bench_name[] = "httpload";

/* usage - the synopsis on stderr, exit 2 */
void
usage(void)
{
	fprintf(stderr, "usage: httpload -f CONF [-n N] [-q Q] [-t T] "
	    "[-b BATCH]\n");
	exit(2);
}

/* make_msg - message n of the load, arriving at `arrival` */
static struct qmsg *
make_msg(uint64_t n, time_t arrival, int quarantine)
{
	struct qmsg	*m;
	char		 buf[300];

	if ((m = qmsg_new()) == NULL)
		die("out of memory");
	m->arrival = arrival;
	(void)snprintf(buf, sizeof(buf), "s%u@client.bench.test",
	    (unsigned)(n % 1000));
	m->sender = xstrdup(buf);
	m->client_addr = xstrdup("192.0.2.10");
	m->client_name = xstrdup("client.bench.test");
	m->helo = xstrdup("client.bench.test");
	(void)snprintf(buf, sizeof(buf), "<%" PRIu64 ".bench@client.bench.test>",
	    n);
	m->message_id = xstrdup(buf);
	if (quarantine) {
		m->state = MS_QUARANTINE;
		m->state_reason = xstrdup("bench");
		m->state_actor = xstrdup("policy bench");
	}
	(void)snprintf(buf, sizeof(buf), "r%u@d%u.example.net",
	    (unsigned)(n % 7919), (unsigned)(n % 97));
	if (qmsg_add_rcpt(m, buf) == -1)
		die("out of memory");
	return m;
}

/* make_tracked - tracked message n, finished, arrived at `arrival` */
static struct qmsg *
make_tracked(uint64_t n, time_t arrival)
{
	struct qmsg	*m;
	struct qrcpt	*r;
	char		 envid[TRK_ENVID_SIZE], secret[TRK_SECRET_SIZE];
	char		 cert[28], buf[300];

	if ((m = qmsg_new()) == NULL)
		die("out of memory");
	trk_envid(n, envid);
	trk_secret(n, secret);
	if (mtrk_certifier((const unsigned char *)secret, strlen(secret),
	    cert) == -1)
		die("cannot compute a certifier");
	m->arrival = arrival;
	m->size = 512;
	(void)snprintf(buf, sizeof(buf), "s%u@client.bench.test",
	    (unsigned)(n % 1000));
	m->sender = xstrdup(buf);
	m->envid = xstrdup(envid);
	m->mtrk_certifier = xstrdup(cert);
	m->client_addr = xstrdup("192.0.2.10");
	m->client_name = xstrdup("client.bench.test");
	m->helo = xstrdup("client.bench.test");
	(void)snprintf(buf, sizeof(buf), "<%" PRIu64 ".trk@client.bench.test>",
	    n);
	m->message_id = xstrdup(buf);
	m->done_time = arrival + 1;
	(void)snprintf(buf, sizeof(buf), "u%u@example.org",
	    (unsigned)(n % 5000));
	if (qmsg_add_rcpt(m, buf) == -1)
		die("out of memory");
	r = &m->rcpts[0];
	r->status = RS_DELIVERED;
	r->attempts = 1;
	r->last_attempt = arrival + 1;
	r->last_code = 250;
	(void)snprintf(r->last_enh, sizeof(r->last_enh), "2.0.0");
	r->last_text = xstrdup("delivered to maildir");
	r->hop_dsn = r->hop_mtrk = -1;
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
	char		  middle[QID_SIZE] = "", body[512];
	uint64_t	  n = 100000, nq = 1000, nt = 0, bsize = 1000, i, k, nb;
	uint64_t	  every;
	time_t		  now = time(NULL), span = 3600;
	double		  t0, t;
	int		  c;

	while ((c = getopt(argc, argv, "f:n:q:t:b:")) != -1) {
		switch (c) {
		case 'f': conf = optarg; break;
		case 'n': n = num(optarg); break;
		case 'q': nq = strcmp(optarg, "0") == 0 ? 0 : num(optarg); break;
		case 't': nt = strcmp(optarg, "0") == 0 ? 0 : num(optarg); break;
		case 'b': bsize = num(optarg); break;
		default: usage();
		}
	}
	if (conf == NULL || optind != argc || bsize > 100000 || nq > n)
		usage();
	every = nq > 0 ? n / nq : 0;
	(void)snprintf(body, sizeof(body), "From: bench\r\nSubject: bench"
	    "\r\n\r\n");
	for (i = strlen(body); i < sizeof(body) - 2; i++)
		body[i] = i % 64 == 63 ? '\n' : i % 64 == 62 ? '\r' : 'x';
	body[sizeof(body) - 2] = '\r';
	body[sizeof(body) - 1] = '\n';
	log_init("httpload", 0, 0);
	if ((cfg = cfg_load(conf, err, sizeof(err))) == NULL) {
		fprintf(stderr, "httpload: %s\n", err);
		return 2;
	}
	enter_spool(cfg);
	if (queue_bulk_open(cfg, err, sizeof(err)) == -1)
		die("%s", err);
	if ((batch = calloc((size_t)bsize, sizeof(*batch))) == NULL)
		die("out of memory");
	t0 = mono();
	for (i = 0; i < n; i += nb) {
		nb = n - i < bsize ? n - i : bsize;
		for (k = 0; k < nb; k++)
			batch[k] = make_msg(i + k, now - span +
			    (time_t)((double)span * (double)(i + k) / (double)n),
			    every > 0 && (i + k) % every == every / 2 &&
			    (i + k) / every < nq);
		if (queue_bulk_queue(batch, (size_t)nb, body, sizeof(body),
		    err, sizeof(err)) == -1)
			die("after %" PRIu64 " messages: %s", i, err);
		if (i == 0)
			(void)snprintf(first, sizeof(first), "%s", batch[0]->qid);
		for (k = 0; k < nb; k++)
			if (i + k == n / 2)
				(void)snprintf(middle, sizeof(middle), "%s",
				    batch[k]->qid);
		(void)snprintf(last, sizeof(last), "%s", batch[nb - 1]->qid);
		for (k = 0; k < nb; k++)
			qmsg_free(batch[k]);
		if ((i + nb) % 20000 < nb || i + nb == n)
			fprintf(stderr, "httpload: %" PRIu64 " messages, %.1f s\n",
			    i + nb, mono() - t0);
	}
	t = mono() - t0;
	for (i = 0; i < nt; i += nb) {
		nb = nt - i < bsize ? nt - i : bsize;
		for (k = 0; k < nb; k++)
			batch[k] = make_tracked(i + k, now - 60);
		if (queue_bulk_load(batch, (size_t)nb, err, sizeof(err)) == -1)
			die("after %" PRIu64 " tracked messages: %s", i, err);
		for (k = 0; k < nb; k++)
			qmsg_free(batch[k]);
	}
	if (queue_bulk_close() == -1)
		die("the store failed at its close (see the messages above)");
	printf("loaded %" PRIu64 " messages (%" PRIu64 " quarantined) in %.1f "
	    "s: %.0f msg/s; queue ids %s to %s; %" PRIu64 " tracked; middle "
	    "%s\n", n, nq, t, t > 0 ? (double)n / t : 0.0, first, last, nt,
	    middle);
	free(batch);
	cfg_free(cfg);
	return 0;
}
