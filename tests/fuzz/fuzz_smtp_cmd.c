#include "config.h"
/*
 * fuzz_smtp_cmd.c - the SMTP command line and the ESMTP parameter table
 * (common/syntax.c): smtp_split_command on the input as one command
 * line; for MAIL / RCPT, smtp_parse_mail_arg and esmtp_parse_params with
 * every extension enabled; the parameter table alone on the whole input
 * for MAIL and for RCPT.  Checked: the verb is an upper-case keyword,
 * the argument and the parameters lie inside the line, and what the
 * table accepts keeps its documented limits (ENVID printable and at most
 * 100 octets, a valid MTRK certifier, NOTIFY=NEVER alone, ORCPT typed,
 * one hold parameter, BY mode R with a positive time).
 */

#include <string.h>

#include "common/syntax.h"
#include "tests/fuzz/fuzz.h"

#define ALL_EXT	(EXT_SIZE | EXT_8BITMIME | EXT_DSN | EXT_MTRK | EXT_AUTH | \
		 EXT_DELIVERBY | EXT_FUTURERELEASE)

/* inside - [p, p+n) lies in [base, base+len) */
static int
inside(const char *p, size_t n, const char *base, size_t len)
{
	return p >= base && p <= base + len && n <= (size_t)(base + len - p);
}

/* envid_printable - 1..100 printable US-ASCII octets, SP included
 * (RFC 3461 4.4; envid_ok, stricter, is for typed or linked ENVIDs) */
static int
envid_printable(const char *s)
{
	size_t	i, n = strlen(s);

	for (i = 0; i < n; i++)
		if (s[i] < ' ' || s[i] > '~')
			return 0;
	return n > 0 && n <= ESMTP_ENVID_MAX;
}

/* check_params - the accepted values keep their limits */
static void
check_params(const struct esmtp_params *ep, int where)
{
	if (where == PARAM_MAIL) {
		FUZZ_CHECK(ep->notify == 0 && !ep->has_orcpt);
		if (ep->has_envid)
			FUZZ_CHECK(envid_printable(ep->envid));
		if (ep->has_mtrk) {
			FUZZ_CHECK(ep->has_envid);
			FUZZ_CHECK(mtrk_certifier_valid(ep->mtrk_cert,
			    strlen(ep->mtrk_cert)));
			FUZZ_CHECK(ep->mtrk_timeout >= 0 &&
			    ep->mtrk_timeout <= ESMTP_MTRK_TIMEOUT_MAX);
		}
		FUZZ_CHECK(ep->ret >= ESMTP_RET_NONE &&
		    ep->ret <= ESMTP_RET_HDRS);
		if (ep->has_by) {
			FUZZ_CHECK(ep->by_time >= -ESMTP_BY_MAX &&
			    ep->by_time <= ESMTP_BY_MAX);
			if (ep->by_mode & ESMTP_BY_RETURN)
				FUZZ_CHECK(ep->by_time > 0);
		}
		if (ep->hold == HOLD_FOR)
			FUZZ_CHECK(ep->hold_for >= 1 &&
			    ep->hold_for <= 999999999L);
		FUZZ_CHECK(ep->hold == 0 || ep->hold == HOLD_FOR ||
		    ep->hold == HOLD_UNTIL);
	} else {
		FUZZ_CHECK(!ep->has_size && !ep->has_envid && !ep->has_mtrk &&
		    !ep->has_by && ep->hold == 0);
		if (ep->notify & ESMTP_NOTIFY_NEVER)
			FUZZ_CHECK(ep->notify == ESMTP_NOTIFY_NEVER);
		if (ep->has_orcpt) {
			FUZZ_CHECK(strchr(ep->orcpt, ';') != NULL);
			FUZZ_CHECK(strlen(ep->orcpt) <= ESMTP_ORCPT_MAX);
		}
	}
}

/* params - the table on s for where, checked when accepted */
static void
params(const char *s, size_t len, int where)
{
	struct esmtp_params	 ep;
	const char		*why = NULL;
	enum param_result	 r;

	r = esmtp_parse_params(s, len, where, ALL_EXT, &ep, &why);
	if (r == PARAM_OK)
		check_params(&ep, where);
	else
		FUZZ_CHECK(why != NULL);
	/* nothing enabled: whatever is accepted has no value set */
	if (esmtp_parse_params(s, len, where, 0, &ep, &why) == PARAM_OK)
		FUZZ_CHECK(!ep.has_size && !ep.has_envid && !ep.has_mtrk &&
		    ep.notify == 0 && !ep.has_orcpt && !ep.has_by &&
		    ep.hold == 0 && ep.body == BODY_UNSPEC);
}

/* LLVMFuzzerTestOneInput - one input, checked as the header comment says */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char		*line = (const char *)data, *arg, *ps, *why;
	char			 verb[16];
	struct mailpath		 mp;
	size_t			 arglen, pslen, i;
	int			 r, where = 0;

	if (smtp_split_command(line, size, verb, sizeof(verb), &arg,
	    &arglen) == 0) {
		FUZZ_CHECK(verb[0] != '\0' && strlen(verb) < sizeof(verb));
		for (i = 0; verb[i] != '\0'; i++)
			FUZZ_CHECK((verb[i] >= 'A' && verb[i] <= 'Z') ||
			    (verb[i] >= '0' && verb[i] <= '9') ||
			    verb[i] == '-');
		FUZZ_CHECK(inside(arg, arglen, line, size));
		if (strcmp(verb, "MAIL") == 0)
			where = PARAM_MAIL;
		else if (strcmp(verb, "RCPT") == 0)
			where = PARAM_RCPT;
		if (where != 0) {
			r = smtp_parse_mail_arg(where == PARAM_MAIL ? "FROM:" :
			    "TO:", arg, arglen, &mp, &ps, &pslen, &why);
			if (r == 0) {
				FUZZ_CHECK(inside(ps, pslen, arg, arglen));
				FUZZ_CHECK(strlen(mp.local) < sizeof(mp.local));
				FUZZ_CHECK(strlen(mp.domain) <
				    sizeof(mp.domain));
				params(ps, pslen, where);
			} else
				FUZZ_CHECK(r == -1 || r == -2);
		}
	}
	params(line, size, PARAM_MAIL);
	params(line, size, PARAM_RCPT);
	return 0;
}
