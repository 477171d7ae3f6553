#include "config.h"
/*
 * wm_resolve.c - test tool (not installed): print the delivery route of
 * each domain as dlv_route_lookup computes it.
 * Usage: wm-resolve -f CONF DOMAIN...
 * Output per domain:
 *   DOMAIN status=ok|temp|nxdomain|nullmx|loop|nohost why="..."
 *     host=NAME pref=N addrs=127.0.0.2:2525,[::1]:2525
 * Exit: 0 after every lookup completed; 2 on usage or config error;
 * 1 when the resolver could not be set up or a lookup not started.
 */

#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "common/cfg.h"
#include "common/log.h"
#include "delivery/dlv_int.h"

struct job {
	const char	*domain;
	int		 done;
};

static int	 outstanding;

static const char *
status_name(enum dlv_route_status st)
{
	switch (st) {
	case DLV_ROUTE_OK:		return "ok";
	case DLV_ROUTE_TEMP:		return "temp";
	case DLV_ROUTE_NXDOMAIN:	return "nxdomain";
	case DLV_ROUTE_NULLMX:		return "nullmx";
	case DLV_ROUTE_LOOP:		return "loop";
	case DLV_ROUTE_NOHOST:		return "nohost";
	}
	return "?";
}

/* addr_text - "127.0.0.2:25" or "[::1]:25" */
static void
addr_text(const struct sockaddr_storage *ss, char *out, size_t outlen)
{
	char	 a[INET6_ADDRSTRLEN];
	int	 n;

	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *s4 = (const void *)ss;

		inet_ntop(AF_INET, &s4->sin_addr, a, sizeof(a));
		n = snprintf(out, outlen, "%s:%u", a, ntohs(s4->sin_port));
	} else {
		const struct sockaddr_in6 *s6 = (const void *)ss;

		inet_ntop(AF_INET6, &s6->sin6_addr, a, sizeof(a));
		n = snprintf(out, outlen, "[%s]:%u", a, ntohs(s6->sin6_port));
	}
	if (n < 0 || (size_t)n >= outlen)
		snprintf(out, outlen, "?");
}

/* route_cb - print one route */
static void
route_cb(void *arg, const struct dlv_route *r)
{
	struct job	*j = arg;
	char		 why[600], a[80];
	size_t		 i, k;

	log_escape(why, sizeof(why), r->why, strlen(r->why));
	printf("%s status=%s why=\"%s\"\n", j->domain, status_name(r->status),
	    why);
	for (i = 0; i < r->nhosts; i++) {
		printf("  host=%s pref=%d addrs=", r->hosts[i].name,
		    r->hosts[i].pref);
		for (k = 0; k < r->hosts[i].naddrs; k++) {
			addr_text(&r->hosts[i].addrs[k], a, sizeof(a));
			printf("%s%s", k ? "," : "", a);
		}
		printf("\n");
	}
	fflush(stdout);
	j->done = 1;
	outstanding--;
}

int
main(int argc, char **argv)
{
	struct config		*cfg;
	struct event_base	*base;
	struct job		*jobs;
	const char		*conf = NULL;
	char			 err[512];
	int			 ch, i, n, rc = 0;

	while ((ch = getopt(argc, argv, "f:")) != -1) {
		switch (ch) {
		case 'f':
			conf = optarg;
			break;
		default:
			goto usage;
		}
	}
	argc -= optind;
	argv += optind;
	if (conf == NULL || argc < 1)
		goto usage;
	log_init("wm-resolve", 0, 0);
	if ((cfg = cfg_load(conf, err, sizeof(err))) == NULL) {
		fprintf(stderr, "wm-resolve: %s\n", err);
		return 2;
	}
	if ((base = event_base_new()) == NULL) {
		fprintf(stderr, "wm-resolve: event_base_new failed\n");
		cfg_free(cfg);
		return 1;
	}
	if (dlv_dns_init(cfg, base, err, sizeof(err)) == -1) {
		fprintf(stderr, "wm-resolve: %s\n", err);
		event_base_free(base);
		cfg_free(cfg);
		return 1;
	}
	n = argc;
	if ((jobs = calloc((size_t)n, sizeof(*jobs))) == NULL) {
		fprintf(stderr, "wm-resolve: out of memory\n");
		rc = 1;
		goto out;
	}
	for (i = 0; i < n; i++) {
		jobs[i].domain = argv[i];
		outstanding++;
		if (dlv_route_lookup(argv[i], route_cb, &jobs[i]) == -1) {
			fprintf(stderr, "wm-resolve: %s: lookup not started\n",
			    argv[i]);
			outstanding--;
			rc = 1;
		}
	}
	while (outstanding > 0)
		if (event_base_loop(base, EVLOOP_ONCE) == -1)
			break;
	free(jobs);
out:
	dlv_dns_shutdown();
	event_base_free(base);
	cfg_free(cfg);
	return rc;
usage:
	fprintf(stderr, "usage: wm-resolve -f CONF DOMAIN...\n");
	return 2;
}
