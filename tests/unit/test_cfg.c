#include "config.h"
/*
 * test_cfg.c - unit tests of common/cfg.c.
 * Writes configuration files into a temporary directory and checks the
 * parsed values and the exact "FILE:LINE: KEY: reason" errors: unknown
 * key, missing '=', repeated single key, bad duration / size / address /
 * port / network / domain / boolean / enum, range limits, missing port,
 * empty relay_from, list accumulation, comments, relative paths,
 * tls_cert without tls_key, local_recipients, auth_failures (N per
 * DURATION); the value syntaxes; the auth_users dummy setting (the
 * dearest entry's), the mixed-scheme warning and cfg_auth_lookup (locked
 * entries get the dummy); the
 * embedded default; the session limits and deadlines (per-client cap
 * derived from max_sessions, DATA minimum rate); cfg_print() listing
 * every key in order; the daemon's checks of `user` (cfg_check_user:
 * unknown, root, nobody without allow_shared_user), which cfg_load itself
 * (the CLI's) does not make.
 */

#include <sys/stat.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <grp.h>
#include <pwd.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "common/cfg.h"

#define NELEM(a)	(sizeof(a) / sizeof((a)[0]))

static int	failures;
static char	tmpdir[] = "/tmp/wm-test-cfg.XXXXXX";

#define CHECK(cond, name, ...) do {					\
	if (!(cond)) {							\
		print_error("%s: ", (name));				\
		print_error(__VA_ARGS__);				\
		print_error("\n");					\
		failures++;						\
	}								\
} while (0)

/* write_file - tmpdir/name with text; returns the path (static buffer) */
static const char *
write_file(const char *name, const char *text)
{
	static char	path[512];
	FILE		*fp;

	assert_true(snprintf(path, sizeof(path), "%s/%s", tmpdir, name) <
	    (int)sizeof(path));
	assert_non_null(fp = fopen(path, "w"));
	assert_int_equal(fputs(text, fp) >= 0, 1);
	assert_int_equal(fclose(fp), 0);
	return path;
}

/* expand - replace "{D}" with tmpdir */
static void
expand(const char *tmpl, char *out, size_t outlen)
{
	const char	*p;
	size_t		 o = 0;

	for (p = tmpl; *p != '\0' && o + 1 < outlen; ) {
		if (strncmp(p, "{D}", 3) == 0) {
			o += (size_t)snprintf(out + o, outlen - o, "%s", tmpdir);
			p += 3;
		} else
			out[o++] = *p++;
	}
	out[o < outlen ? o : outlen - 1] = '\0';
}

static struct config *
load_text(const char *text, char *err, size_t errlen)
{
	return cfg_load(write_file("w.conf", text), err, errlen);
}

static int
setup(void **state)
{
	(void)state;
	if (mkdtemp(tmpdir) == NULL)
		return -1;
	write_file("cert.pem", "not really a certificate\n");
	return 0;
}

static int
teardown(void **state)
{
	char	cmd[600];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

/* errors */

struct err_case {
	const char	*name;
	const char	*text;
	const char	*want;	/* after "FILE"; {D} = the directory */
};

static const struct err_case err_cases[] = {
	{ "unknown key", "frobnicate = 1\n", ":1: frobnicate: unknown key" },
	{ "no equals", "# comment\nlisten 127.0.0.1:25\n",
	  ":2: listen 127.0.0.1:25: expected \"key = value\"" },
	{ "repeated single", "max_size = 1m\n\nmax_size = 2m\n", ":3: max_size: repeated" },
	{ "repeated path", "spool = a\nspool = a\n", ":2: spool: repeated" },
	{ "bad duration", "smtpd_timeout = 5x\n", ":1: smtpd_timeout: invalid duration \"5x\"" },
	{ "bad duration empty", "queue_lifetime =\n", ":1: queue_lifetime: invalid duration \"\"" },
	{ "duration below min", "smtpd_timeout = 0\n", ":1: smtpd_timeout: \"0\" below minimum 1s" },
	{ "bad retry", "retry_schedule = 1m 5q\n", ":1: retry_schedule: invalid duration \"5q\"" },
	{ "empty retry", "retry_schedule =\n", ":1: retry_schedule: missing value" },
	{ "bad size", "# c\n\nmax_size = abc\n", ":3: max_size: invalid size \"abc\"" },
	{ "bad size suffix", "max_size = 10g\n", ":1: max_size: invalid size \"10g\"" },
	{ "bad address", "listen = 127.0.0.256:25\n", ":1: listen: invalid address \"127.0.0.256:25\"" },
	{ "bad address name", "listen = localhost:25\n", ":1: listen: invalid address \"localhost:25\"" },
	{ "unbracketed ipv6", "listen = ::1:25\n", ":1: listen: invalid address \"::1:25\"" },
	{ "missing port", "listen = 127.0.0.1\n", ":1: listen: missing port" },
	{ "missing port v6", "submission = [::1]\n", ":1: submission: missing port" },
	{ "bad port", "listen = 127.0.0.1:0\n", ":1: listen: invalid port \"127.0.0.1:0\"" },
	{ "bad port big", "listen = [::1]:65536\n", ":1: listen: invalid port \"[::1]:65536\"" },
	{ "bad network", "relay_from = 10.0.0.0/33\n", ":1: relay_from: invalid network \"10.0.0.0/33\"" },
	{ "bad network name", "relay_from = 127.0.0.1, example.org\n",
	  ":1: relay_from: invalid network \"example.org\"" },
	{ "bad domain", "local_domains = a_b.example\n", ":1: local_domains: invalid domain \"a_b.example\"" },
	{ "bad dns", "dns = 127.0.0.1 ns.example\n", ":1: dns: invalid address \"ns.example\"" },
	{ "bad bool", "syslog = maybe\n", ":1: syslog: invalid boolean \"maybe\" (yes or no)" },
	{ "bad enum", "smtp_tls = always\n",
	  ":1: smtp_tls: invalid value \"always\" (may, encrypt or verify)" },
	{ "bad number", "max_recipients = 12x\n", ":1: max_recipients: invalid number \"12x\"" },
	{ "above max", "workers = 65\n", ":1: workers: \"65\" above maximum 64" },
	{ "below min", "max_recipients = 0\n", ":1: max_recipients: \"0\" below minimum 1" },
	{ "milter bad scheme", "milters = tcp:1.2.3.4:25\n",
	  ":1: milters: \"tcp:1.2.3.4:25\": unix:PATH or inet:HOST:PORT expected" },
	{ "milter relative path", "milters = unix:x.sock\n",
	  ":1: milters: \"unix:x.sock\": an absolute path expected after unix:" },
	{ "milter no port", "milters = inet:127.0.0.1\n",
	  ":1: milters: \"inet:127.0.0.1\": inet:HOST:PORT expected" },
	{ "milter host name", "milters = inet:example.com:8891\n",
	  ":1: milters: \"inet:example.com:8891\": HOST must be an IPv4 address, [IPv6] or localhost" },
	{ "milter default action", "milter_default_action = shutdown\n",
	  ":1: milter_default_action: invalid value \"shutdown\" (tempfail, accept or reject)" },
	{ "milter timeout zero", "milter_command_timeout = 0\n",
	  ":1: milter_command_timeout: \"0\" below minimum 1s" },
	{ "db_cache below min", "db_cache = 64k\n",
	  ":1: db_cache: \"64k\" below minimum 262144" },
	{ "db_cache above max", "db_cache = 1025m\n",
	  ":1: db_cache: \"1025m\" above maximum 1073741824" },
	{ "db_cache not a size", "db_cache = lots\n",
	  ":1: db_cache: invalid size \"lots\"" },
	{ "per-client cap zero", "max_sessions_per_client = 0\n",
	  ":1: max_sessions_per_client: \"0\" below minimum 1" },
	{ "per-client cap repeated",
	  "max_sessions_per_client = 2\nmax_sessions_per_client = 3\n",
	  ":2: max_sessions_per_client: repeated" },
	{ "bad data rate", "smtpd_data_min_rate = fast\n",
	  ":1: smtpd_data_min_rate: invalid size \"fast\"" },
	{ "data rate above max", "smtpd_data_min_rate = 2048m\n",
	  ":1: smtpd_data_min_rate: \"2048m\" above maximum 1073741824" },
	{ "bad rate grace", "smtpd_data_rate_grace = 1y\n",
	  ":1: smtpd_data_rate_grace: invalid duration \"1y\"" },
	{ "bad hostname", "hostname = bad_host\n", ":1: hostname: invalid hostname \"bad_host\"" },
	{ "cert without key", "tls_cert = cert.pem\nmax_size = 1m\n",
	  ":1: tls_cert: tls_cert and tls_key must be set together" },
	{ "key without cert", "max_size = 1m\ntls_key = cert.pem\n",
	  ":2: tls_key: tls_cert and tls_key must be set together" },
	{ "unreadable key", "tls_cert = cert.pem\ntls_key = nokey.pem\n",
	  ":2: tls_key: cannot read \"{D}/nokey.pem\": No such file or directory" },
	{ "missing local_recipients", "local_recipients = nope.txt\n",
	  ":1: local_recipients: cannot open \"{D}/nope.txt\": No such file or directory" },
	{ "rate empty", "auth_failures =\n",
	  ":1: auth_failures: invalid value \"\" (N per DURATION)" },
	{ "rate number only", "auth_failures = 5\n",
	  ":1: auth_failures: invalid value \"5\" (N per DURATION)" },
	{ "rate no per", "auth_failures = 5 in 10m\n",
	  ":1: auth_failures: invalid value \"5 in 10m\" (N per DURATION)" },
	{ "rate slash", "auth_failures = 5/10m\n",
	  ":1: auth_failures: invalid value \"5/10m\" (N per DURATION)" },
	{ "rate extra", "auth_failures = 5 per 10m 1h\n",
	  ":1: auth_failures: invalid value \"5 per 10m 1h\" (N per DURATION)" },
	{ "rate bad number", "auth_failures = five per 10m\n",
	  ":1: auth_failures: invalid number \"five\"" },
	{ "rate zero", "\nauth_failures = 0 per 10m\n",
	  ":2: auth_failures: \"0\" below minimum 1" },
	{ "rate big", "auth_failures = 4294967296 per 1m\n",
	  ":1: auth_failures: invalid number \"4294967296\"" },
	{ "rate bad duration", "auth_failures = 5 per 10x\n",
	  ":1: auth_failures: invalid duration \"10x\"" },
	{ "rate zero window", "auth_failures = 5 per 0\n",
	  ":1: auth_failures: \"0\" below minimum 1s" },
	{ "rate repeated", "auth_failures = 5 per 10m\nauth_failures = 3 per 1m\n",
	  ":2: auth_failures: repeated" },
	{ "mtqp timeout under 10m", "max_size = 1m\nmtqp_timeout = 599\n",
	  ":2: mtqp_timeout: must be at least 10m (RFC 3887 2.4)" },
	{ "mtqp timeout zero", "mtqp_timeout = 0\n",
	  ":1: mtqp_timeout: must be at least 10m (RFC 3887 2.4)" },
	{ "mtqp require tls without cert", "mtqp = 127.0.0.1\nmtqp_require_tls = yes\n",
	  ":2: mtqp_require_tls: needs tls_cert and tls_key" },
	{ "mtqp sessions zero", "mtqp_max_sessions = 0\n",
	  ":1: mtqp_max_sessions: \"0\" below minimum 1" },
	{ "mtqp rate zero", "mtqp_auth_failures = 0 per 1h\n",
	  ":1: mtqp_auth_failures: \"0\" below minimum 1" },
	{ "mtqp chaining bad", "mtqp_chaining = maybe\n",
	  ":1: mtqp_chaining: invalid boolean \"maybe\" (yes or no)" },
	{ "control_read bad", "control_read = everyone\n",
	  ":1: control_read: invalid value \"everyone\" (group or anyone)" },
	{ "metrics repeated", "metrics = 127.0.0.1:9100\nmetrics = 127.0.0.1:9101\n",
	  ":2: metrics: repeated" },
	{ "metrics two addresses", "metrics = 127.0.0.1:9100, 127.0.0.1:9101\n",
	  ":1: metrics: one address only" },
	{ "dkim_key fields", "dkim_key = example.org sel rsa-sha256\n",
	  ":1: dkim_key: expected DOMAIN SELECTOR ALG KEYFILE" },
	{ "dkim_key list", "dkim_key = a.example s1 rsa-sha256 k1, "
	  "b.example s2 rsa-sha256 k2\n",
	  ":1: dkim_key: expected DOMAIN SELECTOR ALG KEYFILE" },
	{ "dkim_key one label", "dkim_key = example sel rsa-sha256 k\n",
	  ":1: dkim_key: invalid signing domain \"example\" (two labels at least)" },
	{ "dkim_key selector", "dkim_key = a.example s_1 rsa-sha256 k\n",
	  ":1: dkim_key: invalid selector \"s_1\"" },
	{ "dkim_key alg", "dkim_key = a.example s rsa-sha1 k\n",
	  ":1: dkim_key: unknown algorithm \"rsa-sha1\" (rsa-sha256 or ed25519-sha256)" },
	{ "dkim_key repeated", "dkim_key = a.example s rsa-sha256 k\n"
	  "dkim_key = A.example s ed25519-sha256 k2\n",
	  ":2: dkim_key: selector s of a.example repeated" },
	{ "dnssec with a remote resolver",
	  "dns = 127.0.0.1:5353 192.0.2.1\ndns_dnssec = yes\n",
	  ":2: dns_dnssec: dns server 192.0.2.1 is not on loopback: the AD "
	  "bit is trusted only from a local validating resolver" },
	{ "dnssec with a remote v6 resolver",
	  "dns_dnssec = yes\ndns = [::1]:53, [2001:db8::1]:53\n",
	  ":1: dns_dnssec: dns server [2001:db8::1]:53 is not on loopback: "
	  "the AD bit is trusted only from a local validating resolver" },
};

static void
test_errors(void **state)
{
	const struct err_case	*t;
	struct config		*c;
	const char		*path;
	char			 err[1024], want[1024], tmpl[1024];

	(void)state;
	failures = 0;
	for (t = err_cases; t < err_cases + NELEM(err_cases); t++) {
		path = write_file("w.conf", t->text);
		err[0] = '\0';
		c = cfg_load(path, err, sizeof(err));
		snprintf(tmpl, sizeof(tmpl), "%s%s", path, t->want);
		expand(tmpl, want, sizeof(want));
		CHECK(c == NULL, t->name, "got a config, want an error");
		CHECK(strcmp(err, want) == 0, t->name, "got \"%s\", want \"%s\"",
		    err, want);
		cfg_free(c);
	}
	assert_int_equal(failures, 0);
}

static void
test_file_errors(void **state)
{
	struct config	*c;
	char		 path[512], err[1024], want[1100];

	(void)state;
	snprintf(path, sizeof(path), "%s/missing.conf", tmpdir);
	c = cfg_load(path, err, sizeof(err));
	assert_null(c);
	snprintf(want, sizeof(want), "%s: No such file or directory", path);
	assert_string_equal(err, want);
}

/* cfg_check_user: the daemon's checks; cfg_load (the CLI) makes none */

static const struct {
	const char	*name, *text, *want;	/* want NULL = accepted */
} user_cases[] = {
	{ "unknown user", "\nuser = no-such-user-wm\n",
	  ":2: user: unknown user \"no-such-user-wm\"" },
	{ "root", "user = root\n",
	  ":1: user: \"root\" has uid 0: waymarkd never runs as root, "
	  "allow_shared_user or not; use a dedicated user (useradd --system "
	  "waymark)" },
	{ "root even when shared users are allowed",
	  "allow_shared_user = yes\nmax_size = 1m\nuser = root\n",
	  ":3: user: \"root\" has uid 0: waymarkd never runs as root, "
	  "allow_shared_user or not; use a dedicated user (useradd --system "
	  "waymark)" },
	{ "nobody", "max_size = 1m\nuser = nobody\n",
	  ":2: user: \"nobody\" is shared with other services; use a "
	  "dedicated user (useradd --system waymark) or set "
	  "allow_shared_user = yes" },
	{ "nobody allowed", "user = nobody\nallow_shared_user = yes\n", NULL },
	{ "another user", "user = daemon\n", NULL },
};

static void
test_check_user(void **state)
{
	struct config	*c;
	struct passwd	*pw;
	char		 err[1024], want[1100];
	const char	*path;
	long		 uid, gid, wuid, wgid;
	size_t		 i;

	(void)state;
	failures = 0;
	for (i = 0; i < NELEM(user_cases); i++) {
		path = write_file("w.conf", user_cases[i].text);
		c = cfg_load(path, err, sizeof(err));
		CHECK(c != NULL, user_cases[i].name, "cfg_load: got \"%s\", "
		    "want a config (the CLI loads it)", err);
		if (c == NULL)
			continue;
		err[0] = '\0';
		uid = gid = -2;
		if (user_cases[i].want == NULL) {
			/* getpwnam's buffer is reused: copy the ids */
			pw = getpwnam(c->user);
			wuid = pw ? (long)pw->pw_uid : -3;
			wgid = pw ? (long)pw->pw_gid : -3;
			CHECK(cfg_check_user(c, &uid, &gid, err, sizeof(err))
			    == 0, user_cases[i].name, "got \"%s\", want "
			    "accepted", err);
			CHECK(uid == wuid && gid == wgid, user_cases[i].name,
			    "got uid %ld gid %ld, want the user's", uid, gid);
		} else {
			snprintf(want, sizeof(want), "%s%s", path,
			    user_cases[i].want);
			CHECK(cfg_check_user(c, &uid, &gid, err, sizeof(err))
			    == -1, user_cases[i].name, "got accepted, want "
			    "refused");
			CHECK(strcmp(err, want) == 0, user_cases[i].name,
			    "got \"%s\", want \"%s\"", err, want);
			CHECK(uid == -2 && gid == -2, user_cases[i].name,
			    "got uid %ld, want it untouched", uid);
		}
		cfg_free(c);
	}

	/* the default (no line): waymark, with a hint when it is missing */
	path = write_file("w.conf", "max_size = 1m\n");
	assert_non_null(c = cfg_load(path, err, sizeof(err)));
	assert_string_equal(c->user, "waymark");
	if ((pw = getpwnam("waymark")) != NULL) {
		wuid = (long)pw->pw_uid;
		CHECK(cfg_check_user(c, &uid, NULL, err, sizeof(err)) == 0,
		    "default", "got \"%s\", want accepted", err);
		CHECK(uid == wuid, "default", "got uid %ld", uid);
	} else {
		snprintf(want, sizeof(want), "%s: user: unknown user "
		    "\"waymark\" (create it: useradd --system --home-dir "
		    "/nonexistent --no-create-home --shell /usr/sbin/nologin "
		    "waymark)", path);
		CHECK(cfg_check_user(c, NULL, NULL, err, sizeof(err)) == -1,
		    "default", "got accepted, want refused");
		CHECK(strcmp(err, want) == 0, "default",
		    "got \"%s\", want \"%s\"", err, want);
	}
	cfg_free(c);
	assert_int_equal(failures, 0);
}

/* cfg_control_group: control_group, else the group of user */

static void
test_control_group(void **state)
{
	struct config	*c;
	struct passwd	*pw;
	struct group	*gr;
	char		 err[1024], want[1100], name[64];
	const char	*path;
	long		 gid = -2, wgid;

	(void)state;
	failures = 0;
	path = write_file("g.conf", "user = root\ncontrol_group = root\n");
	assert_non_null(c = cfg_load(path, err, sizeof(err)));
	CHECK(cfg_control_group(c, &gid, name, sizeof(name), err,
	    sizeof(err)) == 0, "root", "got \"%s\", want accepted", err);
	CHECK(gid == 0 && strcmp(name, "root") == 0, "root",
	    "got %ld %s, want 0 root", gid, name);
	CHECK(!cfg_control_read_anyone(c), "root", "got anyone, want group");
	cfg_free(c);

	path = write_file("g.conf", "control_read = anyone\nuser = daemon\n");
	assert_non_null(c = cfg_load(path, err, sizeof(err)));
	pw = getpwnam("daemon");
	wgid = pw ? (long)pw->pw_gid : -3;
	gr = getgrgid((gid_t)wgid);
	CHECK(cfg_control_group(c, &gid, name, sizeof(name), err,
	    sizeof(err)) == 0, "user's group", "got \"%s\"", err);
	CHECK(gid == wgid && gr != NULL && strcmp(name, gr->gr_name) == 0,
	    "user's group", "got %ld %s, want %ld", gid, name, wgid);
	CHECK(cfg_control_read_anyone(c), "anyone", "got group, want anyone");
	cfg_free(c);

	path = write_file("g.conf", "\ncontrol_group = no-such-group-wm\n");
	assert_non_null(c = cfg_load(path, err, sizeof(err)));
	snprintf(want, sizeof(want), "%s:2: control_group: unknown group "
	    "\"no-such-group-wm\"", path);
	CHECK(cfg_control_group(c, NULL, name, sizeof(name), err,
	    sizeof(err)) == -1 && strcmp(err, want) == 0, "unknown",
	    "got \"%s\", want \"%s\"", err, want);
	cfg_free(c);
	assert_int_equal(failures, 0);
}

/* values */

/* dkim_key: may repeat, one whole entry a line (never split at commas) */
static void
test_dkim_key(void **state)
{
	struct config	*c;
	char		 err[1024], *t = NULL;
	size_t		 l = 0;
	FILE		*fp;

	(void)state;
	c = load_text("dkim_key = Example.ORG sel1 rsa-sha256 keys/a.key\n"
	    "max_size = 1m\n"
	    "dkim_key = example.org sel2 ed25519-sha256 /etc/b,c.key\n", err,
	    sizeof(err));
	if (c == NULL)
		fail_msg("got error \"%s\", want a config", err);
	assert_int_equal(c->ndkim_key, 2);
	assert_string_equal(c->dkim_key[0].domain, "example.org");
	assert_string_equal(c->dkim_key[0].selector, "sel1");
	assert_string_equal(c->dkim_key[0].alg, "rsa-sha256");
	assert_true(c->dkim_key[0].keyfile[0] == '/');
	assert_non_null(strstr(c->dkim_key[0].keyfile, "/keys/a.key"));
	assert_int_equal(c->dkim_key[0].line, 1);
	assert_string_equal(c->dkim_key[1].keyfile, "/etc/b,c.key");
	assert_int_equal(c->dkim_key[1].line, 3);
	assert_non_null(fp = open_memstream(&t, &l));
	cfg_print(c, fp);
	fclose(fp);
	assert_non_null(strstr(t, "\ndkim_key = example.org sel2 "
	    "ed25519-sha256 /etc/b,c.key\n"));
	assert_non_null(strstr(t, "\ndkim_key = example.org sel1 rsa-sha256 /"));
	free(t);
	cfg_free(c);
	/* none by default; an empty value is none */
	assert_non_null(c = load_text("dkim_key =\n", err, sizeof(err)));
	assert_int_equal(c->ndkim_key, 0);
	cfg_free(c);
}

static void
test_lists(void **state)
{
	static const char *const want[] = {
		"127.0.0.1:2525", "[::1]:2526", "127.0.0.2:25", "127.0.0.3:26",
	};
	struct config	*c;
	char		 err[1024];
	size_t		 i;

	(void)state;
	c = load_text("listen = 127.0.0.1:2525, [::1]:2526\n"
	    "max_size = 1m\n"
	    "listen = 127.0.0.2:25 127.0.0.3:26\n"
	    "mtqp = 127.0.0.1,[::1]:99\n"
	    "local_domains = Example.ORG\n"
	    "local_domains = localhost, [127.0.0.1]\n"
	    "dns = 127.0.0.1 127.0.0.1:5353 [::1]:53 ::1\n"
	    "retry_schedule = 30s 2m\n"
	    "retry_schedule = 1h,1d 1w\n", err, sizeof(err));
	if (c == NULL)
		fail_msg("got error \"%s\", want a config", err);
	assert_int_equal(c->nlisten, NELEM(want));
	for (i = 0; i < NELEM(want); i++)
		assert_string_equal(c->listen[i].text, want[i]);
	assert_int_equal(c->listen[0].ss.ss_family, AF_INET);
	assert_int_equal(c->listen[1].ss.ss_family, AF_INET6);
	assert_int_equal(ntohs(((struct sockaddr_in6 *)(void *)&c->listen[1].ss)->sin6_port), 2526);
	assert_int_equal(c->listen[1].len, sizeof(struct sockaddr_in6));
	assert_int_equal(c->nmtqp, 2);
	assert_string_equal(c->mtqp[0].text, "127.0.0.1:1038");
	assert_string_equal(c->mtqp[1].text, "[::1]:99");
	assert_int_equal(c->nsubmission, 0);
	assert_int_equal(c->nlocal_domains, 3);
	assert_string_equal(c->local_domains[0], "example.org");
	assert_true(cfg_is_local_domain(c, "EXAMPLE.org"));
	assert_true(cfg_is_local_domain(c, "LocalHost"));
	assert_false(cfg_is_local_domain(c, "example.net"));
	assert_int_equal(c->ndns, 4);
	assert_string_equal(c->dns[2], "[::1]:53");
	assert_int_equal(c->nretry_schedule, 5);
	assert_int_equal(c->retry_schedule[0], 30);
	assert_int_equal(c->retry_schedule[1], 120);
	assert_int_equal(c->retry_schedule[2], 3600);
	assert_int_equal(c->retry_schedule[3], 86400);
	assert_int_equal(c->retry_schedule[4], 604800);
	assert_int_equal(c->max_size, 1048576);
	cfg_free(c);
}

static void
test_comments(void **state)
{
	struct config	*c;
	char		 err[1024];

	(void)state;
	c = load_text("# whole line\n"
	    "   # indented comment\n"
	    "\n"
	    "max_size = 512k   # trailing comment\n"
	    "policy = /etc/a#b\n"
	    "\tsyslog=yes\t\r\n"
	    "user = root # the superuser\n", err, sizeof(err));
	if (c == NULL)
		fail_msg("got error \"%s\", want a config", err);
	assert_int_equal(c->max_size, 524288);
	assert_string_equal(c->policy, "/etc/a#b");
	assert_int_equal(c->syslog, 1);
	assert_string_equal(c->user, "root");
	cfg_free(c);
}

static void
test_paths(void **state)
{
	struct config	*c;
	char		 err[1024], want[600], cwd[512];

	(void)state;
	/* the aliases file is read when the key is set */
	snprintf(want, sizeof(want), "%s/etc", tmpdir);
	assert_true(mkdir(want, 0755) == 0 || errno == EEXIST);
	write_file("etc/aliases", "# none\n");
	c = load_text("spool = q\nmailbox_root = /abs/mail\naliases = ./etc/aliases\n",
	    err, sizeof(err));
	if (c == NULL)
		fail_msg("got error \"%s\", want a config", err);
	snprintf(want, sizeof(want), "%s/q", tmpdir);
	assert_string_equal(c->spool, want);
	assert_string_equal(c->mailbox_root, "/abs/mail");
	snprintf(want, sizeof(want), "%s/etc/aliases", tmpdir);
	assert_string_equal(c->aliases, want);
	snprintf(want, sizeof(want), "%s/var/control.sock", tmpdir);
	assert_string_equal(c->control, want);
	assert_string_equal(c->dir, tmpdir);
	assert_null(c->local_recipients);
	assert_null(c->tls_cert);
	cfg_free(c);

	/* the embedded default: relative to the current directory */
	c = cfg_load(NULL, err, sizeof(err));
	if (c == NULL)
		fail_msg("default: got error \"%s\", want a config", err);
	assert_non_null(getcwd(cwd, sizeof(cwd)));
	assert_string_equal(c->path, "(default)");
	snprintf(want, sizeof(want), "%s/var/spool", cwd);
	assert_string_equal(c->spool, want);
	snprintf(want, sizeof(want), "%s/var/mail", cwd);
	assert_string_equal(c->mailbox_root, want);
	snprintf(want, sizeof(want), "%s/var/control.sock", cwd);
	assert_string_equal(c->control, want);
	assert_int_equal(c->nlisten, 1);
	assert_string_equal(c->listen[0].text, "127.0.0.1:2525");
	assert_int_equal(c->nlocal_domains, 1);
	assert_string_equal(c->local_domains[0], "localhost");
	assert_non_null(c->hostname);
	assert_true(c->hostname[0] != '\0');
	assert_int_equal(c->smtp_port, 25);
	assert_int_equal(c->max_size, 10 * 1048576);
	assert_int_equal(c->max_recipients, 1000);
	assert_int_equal(c->max_sessions, 100);
	assert_int_equal(c->max_sessions_per_client, 25);
	assert_int_equal(c->smtpd_timeout, 300);
	assert_int_equal(c->smtpd_data_min_rate, 1024);
	assert_int_equal(c->smtpd_data_rate_grace, 60);
	assert_int_equal(c->max_hops, 100);
	assert_int_equal(c->queue_lifetime, 5 * 86400);
	assert_int_equal(c->delay_warning, 4 * 3600);
	assert_int_equal(c->nretry_schedule, 5);
	assert_int_equal(c->history_retention, 7 * 86400);
	assert_int_equal(c->deliverby_min, 0);
	assert_int_equal(c->tracking_retention, 9 * 86400);
	assert_int_equal(c->db_cache, 1048576);
	assert_string_equal(c->user, "waymark");
	assert_int_equal(c->allow_shared_user, 0);
	assert_int_equal(c->min_free_space, 50 * 1048576);
	assert_int_equal(c->syslog, 0);
	assert_int_equal(c->workers, 4);
	assert_int_equal(c->smtp_tls, CFG_TLS_MAY);
	cfg_free(c);
}

static int
match_addr(const struct config *c, const char *addr,
    int (*fn)(const struct config *, const struct sockaddr *))
{
	struct sockaddr_in	s4;
	struct sockaddr_in6	s6;

	memset(&s4, 0, sizeof(s4));
	memset(&s6, 0, sizeof(s6));
	if (inet_pton(AF_INET, addr, &s4.sin_addr) == 1) {
		s4.sin_family = AF_INET;
		return fn(c, (struct sockaddr *)&s4);
	}
	assert_int_equal(inet_pton(AF_INET6, addr, &s6.sin6_addr), 1);
	s6.sin6_family = AF_INET6;
	return fn(c, (struct sockaddr *)&s6);
}

static int
relay(const struct config *c, const char *addr)
{
	return match_addr(c, addr, cfg_relay_allowed);
}

static int
exempt(const struct config *c, const char *addr)
{
	return match_addr(c, addr, cfg_client_exempt);
}

/* client_limit_exceptions: unset = relay_from; set = its own; empty = none */
static void
test_client_exempt(void **state)
{
	static const struct {
		const char	*text, *addr;
		int		 want;
	} cases[] = {
		{ "max_size = 1m\n", "127.0.0.1", 1 },
		{ "max_size = 1m\n", "::1", 1 },
		{ "max_size = 1m\n", "192.0.2.1", 0 },
		{ "relay_from = 192.0.2.0/24\n", "192.0.2.9", 1 },
		{ "relay_from = 192.0.2.0/24\n", "127.0.0.1", 0 },
		{ "relay_from =\n", "127.0.0.1", 0 },
		{ "client_limit_exceptions = 127.0.0.2\n", "127.0.0.2", 1 },
		{ "client_limit_exceptions = 127.0.0.2\n", "127.0.0.1", 0 },
		{ "client_limit_exceptions =\n", "127.0.0.1", 0 },
		{ "client_limit_exceptions =\n", "::1", 0 },
		{ "client_limit_exceptions = 10.0.0.0/8\n"
		  "relay_from = 192.0.2.0/24\n", "192.0.2.9", 0 },
		{ "client_limit_exceptions = 10.0.0.0/8\n"
		  "relay_from = 192.0.2.0/24\n", "10.9.9.9", 1 },
	};
	struct config	*c;
	char		 err[1024];
	size_t		 i;

	(void)state;
	failures = 0;
	for (i = 0; i < NELEM(cases); i++) {
		assert_non_null(c = load_text(cases[i].text, err, sizeof(err)));
		CHECK(exempt(c, cases[i].addr) == cases[i].want, cases[i].text,
		    "%s: got %d, want %d", cases[i].addr, !cases[i].want,
		    cases[i].want);
		cfg_free(c);
	}
	assert_int_equal(failures, 0);
}

/* max_sessions_per_client (unset: max_sessions / 4, at least 1) and the
 * DATA rate keys */
static void
test_session_limits(void **state)
{
	static const struct {
		const char	*text;
		unsigned	 per_client, grace;
		uint64_t	 rate;
	} cases[] = {
		{ "max_size = 1m\n", 25, 60, 1024 },
		{ "max_sessions = 8\n", 2, 60, 1024 },
		{ "max_sessions = 3\n", 1, 60, 1024 },
		{ "max_sessions = 1\n", 1, 60, 1024 },
		{ "max_sessions = 1000\n", 250, 60, 1024 },
		{ "max_sessions = 8\nmax_sessions_per_client = 3\n", 3, 60, 1024 },
		{ "max_sessions_per_client = 500\n", 500, 60, 1024 },
		{ "smtpd_data_min_rate = 0\n", 25, 60, 0 },
		{ "smtpd_data_min_rate = 100\n"
		  "smtpd_data_rate_grace = 2s\n", 25, 2, 100 },
		{ "smtpd_data_min_rate = 2m\n"
		  "smtpd_data_rate_grace = 0\n", 25, 0, 2 * 1048576 },
	};
	struct config	*c;
	char		 err[1024];
	size_t		 i;

	(void)state;
	failures = 0;
	for (i = 0; i < NELEM(cases); i++) {
		c = load_text(cases[i].text, err, sizeof(err));
		CHECK(c != NULL, cases[i].text, "got error \"%s\", want a config",
		    err);
		if (c == NULL)
			continue;
		CHECK(c->max_sessions_per_client == cases[i].per_client,
		    cases[i].text, "max_sessions_per_client: got %u, want %u",
		    c->max_sessions_per_client, cases[i].per_client);
		CHECK(c->smtpd_data_min_rate == cases[i].rate, cases[i].text,
		    "smtpd_data_min_rate: got %llu, want %llu",
		    (unsigned long long)c->smtpd_data_min_rate,
		    (unsigned long long)cases[i].rate);
		CHECK(c->smtpd_data_rate_grace == cases[i].grace, cases[i].text,
		    "smtpd_data_rate_grace: got %u, want %u",
		    c->smtpd_data_rate_grace, cases[i].grace);
		cfg_free(c);
	}
	assert_int_equal(failures, 0);
}

struct relay_case {
	const char	*addr;
	int		 want;
};

static void
test_relay(void **state)
{
	static const struct relay_case def[] = {
		{ "127.0.0.1", 1 }, { "127.255.0.9", 1 }, { "::1", 1 },
		{ "::ffff:127.0.0.1", 1 }, { "192.0.2.1", 0 }, { "::2", 0 },
		{ "::ffff:192.0.2.1", 0 }, { "128.0.0.1", 0 },
	};
	static const struct relay_case set[] = {
		{ "192.0.2.77", 1 }, { "192.0.3.1", 0 }, { "198.51.100.1", 1 },
		{ "198.51.100.2", 0 }, { "2001:db8:1::5", 1 }, { "2001:db9::1", 0 },
		{ "::ffff:192.0.2.200", 1 }, { "127.0.0.1", 0 }, { "10.1.2.3", 1 },
		{ "10.128.0.1", 0 },
	};
	struct config	*c;
	char		 err[1024];
	size_t		 i;

	(void)state;
	failures = 0;
	assert_non_null(c = load_text("max_size = 1m\n", err, sizeof(err)));
	assert_int_equal(c->nrelay_from, 2);
	assert_string_equal(c->relay_from[0].text, "127.0.0.0/8");
	assert_string_equal(c->relay_from[1].text, "::1");
	for (i = 0; i < NELEM(def); i++)
		CHECK(relay(c, def[i].addr) == def[i].want, def[i].addr,
		    "default: got %d, want %d", !def[i].want, def[i].want);
	cfg_free(c);

	assert_non_null(c = load_text("relay_from = 192.0.2.0/24\n"
	    "relay_from = 198.51.100.1, 2001:db8::/32 10.0.0.0/9\n", err,
	    sizeof(err)));
	assert_int_equal(c->nrelay_from, 4);
	for (i = 0; i < NELEM(set); i++)
		CHECK(relay(c, set[i].addr) == set[i].want, set[i].addr,
		    "set: got %d, want %d", !set[i].want, set[i].want);
	cfg_free(c);

	/* an explicitly empty value means nobody */
	assert_non_null(c = load_text("relay_from =\n", err, sizeof(err)));
	assert_int_equal(c->nrelay_from, 0);
	CHECK(relay(c, "127.0.0.1") == 0, "empty", "got 1, want 0");
	CHECK(relay(c, "::1") == 0, "empty ::1", "got 1, want 0");
	cfg_free(c);
	assert_int_equal(failures, 0);
}

static void
test_local_rcpts(void **state)
{
	struct config	*c;
	char		 err[1024];

	(void)state;
	write_file("rcpts", "# accepted addresses\n"
	    "Alice@Example.ORG\n"
	    "\n"
	    "  bob@example.org   # Bob\n");
	assert_non_null(c = load_text("local_domains = example.org\n"
	    "local_recipients = rcpts\n", err, sizeof(err)));
	assert_int_equal(c->nlocal_rcpts, 2);
	assert_string_equal(c->local_rcpts[0], "alice@example.org");
	assert_string_equal(c->local_rcpts[1], "bob@example.org");
	assert_true(cfg_local_rcpt_ok(c, "ALICE", "example.org"));
	assert_true(cfg_local_rcpt_ok(c, "bob", "EXAMPLE.org"));
	assert_false(cfg_local_rcpt_ok(c, "carol", "example.org"));
	assert_false(cfg_local_rcpt_ok(c, "alice", "example.net"));
	cfg_free(c);

	assert_non_null(c = load_text("max_size = 1m\n", err, sizeof(err)));
	assert_true(cfg_local_rcpt_ok(c, "anyone", "localhost"));
	cfg_free(c);
}

static void
test_tls_pair(void **state)
{
	struct config	*c;
	char		 err[1024], want[600];

	(void)state;
	c = load_text("tls_cert = cert.pem\ntls_key = cert.pem\nsmtp_tls = verify\n",
	    err, sizeof(err));
	if (c == NULL)
		fail_msg("got error \"%s\", want a config", err);
	snprintf(want, sizeof(want), "%s/cert.pem", tmpdir);
	assert_string_equal(c->tls_cert, want);
	assert_string_equal(c->tls_key, want);
	assert_int_equal(c->smtp_tls, CFG_TLS_VERIFY);
	cfg_free(c);
}

/* auth_failures = N per DURATION: the values and the -n line */
static void
test_rate(void **state)
{
	static const struct {
		const char	*in, *want;	/* want: the -n line */
		unsigned	 n, window;
	} cases[] = {
		{ "", "auth_failures = 5 per 10m\n", 5, 600 },
		{ "auth_failures = 5 per 10m\n", "auth_failures = 5 per 10m\n", 5, 600 },
		{ "auth_failures = 2 per 3s\n", "auth_failures = 2 per 3s\n", 2, 3 },
		{ "auth_failures = 1 per 1\n", "auth_failures = 1 per 1s\n", 1, 1 },
		{ "auth_failures =  20\tper  90\n", "auth_failures = 20 per 90s\n", 20, 90 },
		{ "auth_failures = 100 per 120m\n", "auth_failures = 100 per 2h\n", 100, 7200 },
		{ "auth_failures = 3 per 1d # daily\n", "auth_failures = 3 per 1d\n", 3, 86400 },
		{ "auth_failures = 4294967295 per 2w\n",
		  "auth_failures = 4294967295 per 14d\n", 4294967295u, 1209600 },
	};
	struct config	*c;
	char		*text = NULL, err[1024];
	size_t		 len = 0, i;
	FILE		*fp;

	(void)state;
	failures = 0;
	for (i = 0; i < NELEM(cases); i++) {
		c = load_text(cases[i].in[0] ? cases[i].in : "max_size = 1m\n",
		    err, sizeof(err));
		if (c == NULL) {
			CHECK(0, cases[i].in, "got error \"%s\", want a config",
			    err);
			continue;
		}
		CHECK(c->auth_failures == cases[i].n &&
		    c->auth_failures_window == cases[i].window, cases[i].in,
		    "got %u per %us, want %u per %us", c->auth_failures,
		    c->auth_failures_window, cases[i].n, cases[i].window);
		assert_non_null(fp = open_memstream(&text, &len));
		cfg_print(c, fp);
		assert_int_equal(fclose(fp), 0);
		CHECK(strstr(text, cases[i].want) != NULL, cases[i].in,
		    "got no line \"%s\" in -n", cases[i].want);
		free(text);
		text = NULL;
		cfg_free(c);
	}
	assert_int_equal(failures, 0);
}

static void
test_parse_rate(void **state)
{
	static const struct {
		const char	*in;
		int		 rc;
		unsigned	 n, window;
	} cases[] = {
		{ "5 per 10m", 0, 5, 600 }, { "0 per 1s", 0, 0, 1 },
		{ " 7 per 2h ", 0, 7, 7200 }, { "1\tper\t1w", 0, 1, 604800 },
		{ "5 PER 10m", -1, 0, 0 }, { "5per10m", -1, 0, 0 },
		{ "5 per", -1, 0, 0 }, { "per 10m", -1, 0, 0 },
		{ "-1 per 10m", -1, 0, 0 }, { "5 per 10q", -1, 0, 0 },
		{ "5 per 10m x", -1, 0, 0 }, { "", -1, 0, 0 },
	};
	unsigned	n, w;
	size_t		i;
	int		rc;

	(void)state;
	failures = 0;
	for (i = 0; i < NELEM(cases); i++) {
		n = w = 12345;
		rc = cfg_parse_rate(cases[i].in, &n, &w);
		CHECK(rc == cases[i].rc, cases[i].in, "rc: got %d, want %d", rc,
		    cases[i].rc);
		if (rc == 0 && cases[i].rc == 0)
			CHECK(n == cases[i].n && w == cases[i].window,
			    cases[i].in, "got %u per %u, want %u per %u", n, w,
			    cases[i].n, cases[i].window);
	}
	assert_int_equal(failures, 0);
}

/* real hashes (libxcrypt), of "pw" */
#define H_BC10	"$2b$10$TF.caK8cA4fMuJp9zUkXqeg9S6TcJZ/H/IdfoD2u3dCC0oeWFQB6S"
#define S_BC10	"$2b$10$TF.caK8cA4fMuJp9zUkXqe"
#define H_BC12	"$2y$12$gQXAK7CC5mcD3aHz7Hvtbe1CMC.UlHKU8HEawKlhzJB6aUDTdTpuC"
#define S_BC12	"$2y$12$gQXAK7CC5mcD3aHz7Hvtbe"
#define H_Y5	"$y$j9T$INDwP.fbNPSBUR4KEGGXl0$uDZrxkC7pHw/S4YEVlTprhGwm8N.GhjXFr9iPczyUHD"
#define S_Y5	"$y$j9T$INDwP.fbNPSBUR4KEGGXl0$"
#define H_Y7	"$y$jBT$I/KmoxyoIkFePugDzLyI20$4KfSdlop4iVKlUSNumkCpTd6fudJwqZrWw4slPz07W4"
#define S_Y7	"$y$jBT$I/KmoxyoIkFePugDzLyI20$"
#define H_S6	"$6$vAc94tapZrkJ4L5v$zYaCHvTqdc2Kh2GFtHIC7kRTqvXnWRpsFDcmfhDRkUGzQpjeTTvcNUt7iExID1TCFuyXS62Tpf04G6KBn56G6."
#define S_S6	"$6$vAc94tapZrkJ4L5v$"
#define H_S6R	"$6$rounds=200000$8m08Dovi.1Y08qO0$VHwDexnkQKxPi1nW.IxZ6u3gaBAVSmlFLuz1xhDYJ2r3noGbFVVCy5WTx8k2FjlZBqoi1nK.nqQLnm6mG97yQ1"
#define S_S6R	"$6$rounds=200000$8m08Dovi.1Y08qO0$"
#define H_MD5	"$1$7t5J4K4u$Gk6pkfwsmMIy6He2YOCm81"
#define S_MD5	"$1$7t5J4K4u$"
#define H_SCR	"$7$CU..../..../kj/mCQzlx/ou..w6icAL/$JL1zKY1HnDc.yS3CPeHLzOQGk0l/pM3uhLiyeBSObT2"
#define S_SCR	"$7$CU..../..../kj/mCQzlx/ou..w6icAL/$"

/*
 * the dummy setting for unknown users and locked entries: the dearest
 * usable entry by cryptset.c's cost rule (the first of equals), and the
 * warning when usable entries differ in scheme or cost
 */
static void
test_auth_dummy(void **state)
{
	static const struct {
		const char	*name, *users;
		const char	*want;	/* NULL: the fallback */
		int		 warn;	/* auth_warning set */
	} cases[] = {
		{ "bcrypt only", "alice:" H_BC10 "\n", S_BC10, 0 },
		{ "sha-crypt rounds=200000 before bcrypt 12",
		  "a:" H_S6R "\nb:" H_BC12 "\n", S_BC12, 1 },
		{ "bcrypt 10 and 12, either order",
		  "a:" H_BC10 "\nb:" H_BC12 "\nc:" H_BC10 "\n", S_BC12, 1 },
		{ "default sha-crypt before rounds=200000",
		  "a:" H_S6 "\nb:" H_S6R "\n", S_S6R, 1 },
		{ "md5crypt before yescrypt", "a:" H_MD5 "\nb:" H_Y5 "\n",
		  S_Y5, 1 },
		{ "yescrypt 5 and 7", "a:" H_Y7 "\nb:" H_Y5 "\n", S_Y7, 1 },
		{ "yescrypt 5 against bcrypt 10", "a:" H_Y5 "\nb:" H_BC10 "\n",
		  S_BC10, 1 },
		{ "scrypt against bcrypt 10", "a:" H_BC10 "\nb:" H_SCR "\n",
		  S_SCR, 1 },
		{ "equal kinds: the first",
		  "a:$6$saltsalt$Zm9vYmFy\nb:" H_S6 "\n", "$6$saltsalt$", 0 },
		{ "locked first", "# locked first\nlocked:!\n"
		  "b:$6$saltsalt$Zm9vYmFy\n", "$6$saltsalt$", 0 },
		{ "a locked dear hash does not count",
		  "a:!" H_BC12 "\nb:" H_MD5 "\nc:*" H_Y7 "\n", S_MD5, 0 },
		{ "unknown scheme skipped",
		  "a:$9$abcdefgh$xyz\nb:" H_S6 "\n", S_S6, 0 },
		{ "only locked", "locked:!\nstar:*\nlk:*LK*\n", NULL, 0 },
		{ "no users", "# nobody\n", NULL, 0 },
	};
	struct config	*c;
	char		 err[1024];
	size_t		 i;

	(void)state;
	failures = 0;
	for (i = 0; i < NELEM(cases); i++) {
		write_file("users", cases[i].users);
		c = load_text("auth_users = users\n", err, sizeof(err));
		if (c == NULL) {
			CHECK(0, cases[i].name, "got error \"%s\"", err);
			continue;
		}
		if (cases[i].want == NULL)
			CHECK(c->auth_dummy == NULL &&
			    strcmp(cfg_auth_dummy(c), "$6$wmdummysalt$") == 0,
			    cases[i].name, "got \"%s\", want the fallback",
			    cfg_auth_dummy(c));
		else
			CHECK(c->auth_dummy != NULL &&
			    strcmp(c->auth_dummy, cases[i].want) == 0 &&
			    strcmp(cfg_auth_dummy(c), cases[i].want) == 0,
			    cases[i].name, "got \"%s\", want \"%s\"",
			    cfg_auth_dummy(c), cases[i].want);
		CHECK((c->auth_warning != NULL) == cases[i].warn,
		    cases[i].name, "got warning \"%s\", want %s",
		    c->auth_warning ? c->auth_warning : "(none)",
		    cases[i].warn ? "one" : "none");
		if (c->auth_warning != NULL)
			CHECK(strstr(c->auth_warning, "differ in scheme or "
			    "cost") != NULL && strstr(c->auth_warning,
			    "/users:") != NULL, cases[i].name,
			    "got warning \"%s\"", c->auth_warning);
		cfg_free(c);
	}
	/* without auth_users: the fallback */
	assert_non_null(c = load_text("max_size = 1m\n", err, sizeof(err)));
	assert_string_equal(cfg_auth_dummy(c), "$6$wmdummysalt$");
	assert_null(c->auth_warning);
	cfg_free(c);
	assert_int_equal(failures, 0);
}

/*
 * cfg_auth_lookup: a usable hash is the user's own (may match); an
 * unknown user, and a listed one whose hash is locked or unusable, get
 * the dummy (cannot match) -- so a locked entry costs a full check
 */
static void
test_auth_lookup(void **state)
{
	static const struct {
		const char	*user;
		int		 known;
		const char	*want;
	} cases[] = {
		{ "alice", 1, H_S6 },
		{ "cheap", 1, H_MD5 },
		{ "dear", 1, H_BC10 },
		{ "locked", 0, S_BC10 },
		{ "star", 0, S_BC10 },
		{ "lockedsha", 0, S_BC10 },
		{ "lk", 0, S_BC10 },
		{ "bogus", 0, S_BC10 },
		{ "nohash", 0, S_BC10 },
		{ "mallory", 0, S_BC10 },
		{ "Alice", 0, S_BC10 },
		{ "", 0, S_BC10 },
	};
	struct config	*c;
	const char	*set;
	char		 err[1024];
	size_t		 i;
	int		 known;

	(void)state;
	failures = 0;
	write_file("users", "alice:" H_S6 "\nlocked:!\nstar:*\n"
	    "lockedsha:!" H_S6 "\nlk:*LK*\nbogus:$9$abcdefgh$xyz\n"
	    "nohash:$6$\ncheap:" H_MD5 "\ndear:" H_BC10 "\n");
	c = load_text("auth_users = users\n", err, sizeof(err));
	if (c == NULL)
		fail_msg("got error \"%s\"", err);
	for (i = 0; i < NELEM(cases); i++) {
		set = NULL;
		known = cfg_auth_lookup(c, cases[i].user, &set);
		CHECK(known == cases[i].known && set != NULL &&
		    strcmp(set, cases[i].want) == 0, cases[i].user,
		    "got %d \"%s\", want %d \"%s\"", known, set ? set : "(null)",
		    cases[i].known, cases[i].want);
	}
	cfg_free(c);
	assert_int_equal(failures, 0);
}

/* value syntaxes */

struct dur_case {
	const char	*in;
	int		 rc;
	unsigned	 want;
};

static void
test_parse_duration(void **state)
{
	static const struct dur_case cases[] = {
		{ "0", 0, 0 }, { "45", 0, 45 }, { "45s", 0, 45 }, { "5m", 0, 300 },
		{ "4h", 0, 14400 }, { "5d", 0, 432000 }, { "2w", 0, 1209600 },
		{ "4294967295", 0, 4294967295u }, { "4294967296", -1, 0 },
		{ "7101w", 0, 7101u * 604800u }, { "7102w", -1, 0 },
		{ "", -1, 0 }, { "m", -1, 0 }, { "5M", -1, 0 }, { "5 m", -1, 0 },
		{ "-5", -1, 0 }, { "5mm", -1, 0 }, { "1.5h", -1, 0 },
	};
	unsigned	v;
	size_t		i;
	int		rc;

	(void)state;
	failures = 0;
	for (i = 0; i < NELEM(cases); i++) {
		v = 12345;
		rc = cfg_parse_duration(cases[i].in, &v);
		CHECK(rc == cases[i].rc, cases[i].in, "rc: got %d, want %d", rc,
		    cases[i].rc);
		if (rc == 0 && cases[i].rc == 0)
			CHECK(v == cases[i].want, cases[i].in,
			    "got %u, want %u", v, cases[i].want);
	}
	assert_int_equal(failures, 0);
}

struct size_case {
	const char	*in;
	int		 rc;
	uint64_t	 want;
};

static void
test_parse_size(void **state)
{
	static const struct size_case cases[] = {
		{ "0", 0, 0 }, { "10", 0, 10 }, { "512k", 0, 524288 },
		{ "512K", 0, 524288 }, { "10m", 0, 10485760 }, { "10M", 0, 10485760 },
		{ "18446744073709551615", 0, UINT64_MAX },
		{ "18446744073709551616", -1, 0 }, { "17592186044415m", 0, 17592186044415ull * 1048576 },
		{ "17592186044416m", -1, 0 }, { "", -1, 0 }, { "k", -1, 0 },
		{ "1g", -1, 0 }, { "1kb", -1, 0 }, { " 1", -1, 0 }, { "abc", -1, 0 },
	};
	uint64_t	v;
	size_t		i;
	int		rc;

	(void)state;
	failures = 0;
	for (i = 0; i < NELEM(cases); i++) {
		v = 12345;
		rc = cfg_parse_size(cases[i].in, &v);
		CHECK(rc == cases[i].rc, cases[i].in, "rc: got %d, want %d", rc,
		    cases[i].rc);
		if (rc == 0 && cases[i].rc == 0)
			CHECK(v == cases[i].want, cases[i].in,
			    "got %llu, want %llu", (unsigned long long)v,
			    (unsigned long long)cases[i].want);
	}
	assert_int_equal(failures, 0);
}

/* cfg_print */

static const char *const all_keys[] = {
	"hostname", "listen", "submission", "mtqp", "control",
	"control_group", "control_read", "spool",
	"local_domains", "local_recipients", "aliases", "lists", "mailbox_root",
	"lmtp",
	"relay_from", "smarthost", "smtp_port", "dns", "tls_cert", "tls_key",
	"smtp_tls", "max_size", "max_recipients", "max_sessions",
	"max_sessions_per_client", "in_flow_delay", "smtpd_timeout",
	"smtpd_data_min_rate",
	"smtpd_data_rate_grace", "max_hops", "queue_lifetime", "delay_warning",
	"max_dsn_return_size",
	"retry_schedule", "history_retention", "tracking_retention",
	"deliverby_min", "policy",
	"policy_body_scan",
	"future_release_max", "filter_timeout", "filter_concurrency",
	"user", "allow_shared_user", "min_free_space", "syslog", "workers",
	"smtp_connect_timeout", "smtp_helo_timeout", "smtp_mail_timeout",
	"smtp_rcpt_timeout", "smtp_data_init_timeout",
	"smtp_data_block_timeout", "smtp_data_done_timeout",
	"smtp_destination_concurrency", "smtp_concurrency", "smtp_tls_ca",
	"mta_sts", "tlsrpt",
	"smarthost_auth",
	"auth_users",
	"submission_plaintext_auth",
	"auth_failures",
	"client_limit_exceptions",
	"mtqp_require_tls", "mtqp_timeout", "mtqp_max_sessions",
	"mtqp_auth_failures", "mtqp_chaining",
	"http", "http_admin", "http_tls", "admin_users",
	"http_max_header_size", "http_max_body_size", "http_max_connections",
	"http_timeout", "http_public_url",
	"db_cache",
	"metrics",
	"dkim_key",
	"milters", "milter_default_action", "milter_connect_timeout",
	"milter_command_timeout", "milter_content_timeout",
	"dns_dnssec",
};

static const char *const print_lines[] = {
	"listen = 127.0.0.1:2525, [::1]:2525\n",
	"submission = \n",
	"relay_from = 127.0.0.0/8, ::1\n",
	"smtp_port = 25\n",
	"smtp_tls = may\n",
	"max_size = 10m\n",
	"min_free_space = 1000\n",
	"max_sessions_per_client = 25\n",
	"smtpd_timeout = 90s\n",
	"smtpd_data_min_rate = 1k\n",
	"smtpd_data_rate_grace = 1m\n",
	"queue_lifetime = 5d\n",
	"delay_warning = 0\n",
	"retry_schedule = 1m, 5m, 15m, 1h, 4h\n",
	"history_retention = 7d\n",
	"deliverby_min = 0\n",
	"syslog = no\n",
	"workers = 4\n",
	"user = waymark\n",
	"allow_shared_user = no\n",
	"auth_failures = 5 per 10m\n",
	"mtqp_require_tls = no\n",
	"mtqp_timeout = 10m\n",
	"mtqp_max_sessions = 50\n",
	"mtqp_auth_failures = 10 per 1h\n",
	"mtqp_chaining = no\n",
	"db_cache = 1m\n",
	"milter_default_action = tempfail\n",
	"milter_connect_timeout = 30s\n",
	"milter_command_timeout = 30s\n",
	"milter_content_timeout = 5m\n",
};

static void
test_print(void **state)
{
	struct config	*c;
	char		*text = NULL, err[1024], key[64];
	const char	*p, *prev = NULL;
	size_t		 len = 0, i;
	FILE		*fp;

	(void)state;
	failures = 0;
	c = load_text("listen = 127.0.0.1:2525 [::1]:2525\n"
	    "min_free_space = 1000\n"
	    "smtpd_timeout = 90\n"
	    "delay_warning = 0\n", err, sizeof(err));
	if (c == NULL)
		fail_msg("got error \"%s\", want a config", err);
	assert_non_null(fp = open_memstream(&text, &len));
	cfg_print(c, fp);
	assert_int_equal(fclose(fp), 0);
	cfg_free(c);

	for (i = 0; i < NELEM(all_keys); i++) {
		snprintf(key, sizeof(key), "%s%s = ", i ? "\n" : "", all_keys[i]);
		p = strstr(text, key);
		if (i == 0 && strncmp(text, key, strlen(key)) == 0)
			p = text;
		CHECK(p != NULL, all_keys[i], "got no line, want \"%s\"", key);
		CHECK(p == NULL || prev == NULL || p > prev, all_keys[i],
		    "got out of order, want table order");
		if (p != NULL)
			prev = p;
	}
	for (i = 0; i < NELEM(print_lines); i++)
		CHECK(strstr(text, print_lines[i]) != NULL, print_lines[i],
		    "got no such line, want it in:\n%s", text);
	/* one line per key, nothing else */
	for (i = 0, p = text; *p != '\0'; p++)
		i += *p == '\n';
	CHECK(i == NELEM(all_keys), "lines", "got %zu, want %zu", i,
	    NELEM(all_keys));
	free(text);
	assert_int_equal(failures, 0);
}

/* cfg_print output parses back to the same output */
static void
test_print_roundtrip(void **state)
{
	struct config	*c;
	char		*t1 = NULL, *t2 = NULL, err[1024];
	size_t		 l1 = 0, l2 = 0;
	FILE		*fp;

	(void)state;
	assert_non_null(c = load_text("mtqp = 127.0.0.1\ndns = ::1\n"
	    "retry_schedule = 90s 1d\nrelay_from = 10.0.0.0/8\n", err,
	    sizeof(err)));
	assert_non_null(fp = open_memstream(&t1, &l1));
	cfg_print(c, fp);
	fclose(fp);
	cfg_free(c);
	c = load_text(t1, err, sizeof(err));
	if (c == NULL)
		fail_msg("reparse: got error \"%s\"", err);
	assert_non_null(fp = open_memstream(&t2, &l2));
	cfg_print(c, fp);
	fclose(fp);
	cfg_free(c);
	assert_string_equal(t1, t2);
	free(t1);
	free(t2);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_file_errors),
		cmocka_unit_test(test_check_user),
		cmocka_unit_test(test_control_group),
		cmocka_unit_test(test_lists),
		cmocka_unit_test(test_dkim_key),
		cmocka_unit_test(test_comments),
		cmocka_unit_test(test_paths),
		cmocka_unit_test(test_relay),
		cmocka_unit_test(test_client_exempt),
		cmocka_unit_test(test_session_limits),
		cmocka_unit_test(test_local_rcpts),
		cmocka_unit_test(test_tls_pair),
		cmocka_unit_test(test_rate),
		cmocka_unit_test(test_parse_rate),
		cmocka_unit_test(test_auth_dummy),
		cmocka_unit_test(test_auth_lookup),
		cmocka_unit_test(test_parse_duration),
		cmocka_unit_test(test_parse_size),
		cmocka_unit_test(test_print),
		cmocka_unit_test(test_print_roundtrip),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
