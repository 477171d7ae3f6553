#include "config.h"
/*
 * fuzz_policy.c - the policy rules file (queue/queue_policy.c, with the
 * regular expression prefilter of queue_rx.c and the header parser of
 * queue_content.c).  The input is a policy file, optionally followed by
 * a line "%%" and a message (header section and body) that the loaded
 * rules are checked against, with a fixed envelope, as at the end of
 * DATA.  Checked: a refused file has a "FILE:LINE: reason" text; the
 * verdict's strings are set as its action needs.  The input's first line
 * is also taken as an ERE (case-insensitive unless the message's first
 * octet is odd) for the regular expression prefilter (queue_rx.c): when
 * regexec matches the message, rx_lits_maybe must not have ruled it out.
 */

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include <ctype.h>
#include <regex.h>

#include "queue/queue.h"
#include "queue/queue_int.h"
#include "tests/fuzz/fuzz.h"

#define QID	"0FuzzPolicy00000"

static int	spoolfd = -1;	/* the scratch directory, as the spool */

/* setup - body/ in the scratch directory, which is the working
 * directory during a check (as the spool is waymarkd's) */
static int
setup(void)
{
	static int	done;
	const char	*d;
	char		 body[512];

	if (done)
		return done;
	done = -1;
	if ((d = fuzz_dir()) == NULL ||
	    snprintf(body, sizeof(body), "%s/body", d) >= (int)sizeof(body) ||
	    (mkdir(body, 0700) == -1 && errno != EEXIST) ||
	    (spoolfd = open(d, O_RDONLY | O_DIRECTORY)) == -1)
		return -1;
	done = 1;
	return 1;
}

/* check - queue_policy_check from the spool, back to the working
 * directory after (libFuzzer's paths may be relative) */
static int
check(const struct policy *p, const struct qmsg *m,
    struct policy_verdict *v)
{
	int	cwd, rc;

	if ((cwd = open(".", O_RDONLY | O_DIRECTORY)) == -1)
		return -1;
	if (fchdir(spoolfd) == -1) {
		close(cwd);
		return -1;
	}
	rc = queue_policy_check(p, m, v);
	FUZZ_CHECK(fchdir(cwd) == 0);
	close(cwd);
	return rc;
}

/* prefilter - rx_lits_make never rules out a text regexec matches */
static void
prefilter(const char *ere, size_t elen, const char *text, size_t tlen)
{
	struct rx_lits	 lits;
	regex_t		 re;
	regmatch_t	 pm[1];
	char		*pat, *low, *txt;
	size_t		 i;
	int		 icase = tlen == 0 || !((unsigned char)text[0] & 1);

	if (elen == 0 || elen > 64 || tlen > 1024 ||
	    memchr(ere, '\0', elen) != NULL ||
	    (pat = strndup(ere, elen)) == NULL)
		return;
	/* what the policy loader refuses never reaches regcomp (a stacked
	 * repetition takes gigabytes there) */
	if (policy_rx_too_complex(pat)) {
		free(pat);
		return;
	}
	if (regcomp(&re, pat, REG_EXTENDED | REG_NOSUB | REG_NEWLINE |
	    (icase ? REG_ICASE : 0)) != 0) {
		free(pat);
		return;
	}
	(void)rx_lits_make(pat, icase, &lits);
	/* NUL-terminated as the policy's content buffer is (some
	 * sanitizers' regexec reads up to the NUL despite REG_STARTEND) */
	if ((txt = malloc(tlen + 1)) == NULL ||
	    (low = malloc(tlen + 1)) == NULL) {
		free(txt);
		goto done;
	}
	memcpy(txt, text, tlen);
	txt[tlen] = '\0';
	for (i = 0; i < tlen; i++)
		low[i] = icase ? (char)tolower((unsigned char)text[i]) : text[i];
	low[tlen] = '\0';
	pm[0].rm_so = 0;
	pm[0].rm_eo = (regoff_t)tlen;
	if (regexec(&re, txt, 1, pm, REG_STARTEND) == 0) {
		if (!rx_lits_maybe(&lits, low, tlen))
			fprintf(stderr, "prefilter: /%s/%s ruled out a match\n",
			    pat, icase ? "" : "c");
		FUZZ_CHECK(rx_lits_maybe(&lits, low, tlen));
	}
	free(txt);
	free(low);
done:
	rx_lits_free(&lits);
	regfree(&re);
	free(pat);
}

/* LLVMFuzzerTestOneInput - one input, checked as the header comment says */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char		*s = (const char *)data, *sep, *path, *msg;
	struct policy		*p;
	struct policy_verdict	 v;
	struct qmsg		*m;
	char			 err[1024];
	size_t			 plen, mlen = 0;

	if (setup() != 1)
		return 0;
	plen = size;
	msg = NULL;
	if ((sep = memmem(s, size, "\n%%\n", 4)) != NULL) {
		plen = (size_t)(sep - s) + 1;
		msg = sep + 4;
		mlen = size - (size_t)(msg - s);
	}
	if (msg != NULL)
		prefilter(s, (size_t)((const char *)memchr(s, '\n', size) - s),
		    msg, mlen);
	if ((path = fuzz_file("policy.conf", data, plen)) == NULL)
		return 0;
	err[0] = '\0';
	if ((p = queue_policy_load(path, 4096, err, sizeof(err))) == NULL) {
		FUZZ_CHECK(strncmp(err, path, strlen(path)) == 0);
		return 0;
	}
	if (msg != NULL && fuzz_file("body/" QID, (const uint8_t *)msg,
	    mlen) != NULL && (m = qmsg_new()) != NULL) {
		(void)snprintf(m->qid, sizeof(m->qid), "%s", QID);
		m->size = mlen;
		m->arrival = 1700000000;
		m->sender = strdup("alice@example.com");
		m->client_addr = strdup("127.0.0.1");
		m->helo = strdup("client.test");
		m->auth_user = strdup("alice");
		if (m->sender != NULL && m->client_addr != NULL &&
		    m->helo != NULL && m->auth_user != NULL &&
		    qmsg_add_rcpt(m, "bob@example.org") == 0 &&
		    qmsg_add_rcpt(m, "Carol@Example.NET") == 0 &&
		    check(p, m, &v) == 0) {
			FUZZ_CHECK(v.action >= POLICY_ACCEPT &&
			    v.action <= POLICY_FILTER);
			if (v.action != POLICY_ACCEPT)
				FUZZ_CHECK(v.where != NULL && v.actor != NULL &&
				    v.name != NULL);
			if (v.action == POLICY_REJECT)
				FUZZ_CHECK(v.text != NULL);
		}
		qmsg_free(m);
	}
	queue_policy_free(p);
	return 0;
}
