#include "config.h"
/*
 * tools_dkim.c - `waymark dkim-keygen DOMAIN SELECTOR ALG [--out FILE]
 *       [--bits N]`: a new DKIM signing key.
 * Owns: the key (RSA 2048 bits by default, or Ed25519) written as PEM
 *       (PKCS#8) with mode 0600, never over an existing file; the lines
 *       printed: the file's path, the DNS TXT record to publish at
 *       SELECTOR._domainkey.DOMAIN (strings of at most 255 octets,
 *       RFC 6376 3.6.2.2), the dkim_key line for waymark.conf.
 * Not here: the record's p= (filter/dkim.c dkim_dns_record), loading
 *       keys (the daemon, filter/dkim.c).
 * Exit status: 0 written, 1 not written (file exists, write error),
 *       2 usage error.
 */

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "common/syntax.h"
#include "common/util.h"
#include "filter/dkim.h"
#include "tools/tools.h"

int
keygen_parse(int argc, char **argv, struct keygen_opts *o)
{
	const char	*pos[3];
	char		*end;
	long		 v;
	int		 i, np = 0;

	o->bits = 2048;
	for (i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--out") == 0 || strcmp(argv[i], "-o") == 0) {
			if (i + 1 >= argc) {
				fprintf(stderr, "waymark: dkim-keygen: --out "
				    "needs a FILE\n");
				return EX_WM_USAGE;
			}
			o->out = argv[++i];
		} else if (strcmp(argv[i], "--bits") == 0) {
			if (i + 1 >= argc) {
				fprintf(stderr, "waymark: dkim-keygen: --bits "
				    "needs a number\n");
				return EX_WM_USAGE;
			}
			errno = 0;
			v = strtol(argv[++i], &end, 10);
			if (errno != 0 || *end != '\0' || v < 2048 ||
			    v > 4096) {
				fprintf(stderr, "waymark: dkim-keygen: --bits: "
				    "2048 to 4096 expected\n");
				return EX_WM_USAGE;
			}
			o->bits = (int)v;
		} else if (argv[i][0] == '-' && argv[i][1] != '\0') {
			fprintf(stderr, "waymark: dkim-keygen: unknown option: "
			    "%s\n", argv[i]);
			return EX_WM_USAGE;
		} else if (np == 3) {
			fprintf(stderr, "waymark: dkim-keygen: unexpected "
			    "argument: %s\n", argv[i]);
			return EX_WM_USAGE;
		} else
			pos[np++] = argv[i];
	}
	if (np != 3) {
		fprintf(stderr, "waymark: dkim-keygen: DOMAIN SELECTOR ALG "
		    "expected\n");
		return EX_WM_USAGE;
	}
	o->domain = pos[0];
	o->selector = pos[1];
	o->alg = pos[2];
	if (dns_labels_check(o->domain, 253) == -1 ||
	    strchr(o->domain, '.') == NULL) {
		fprintf(stderr, "waymark: dkim-keygen: invalid signing domain "
		    "\"%s\" (two labels at least)\n", o->domain);
		return EX_WM_USAGE;
	}
	if (dns_labels_check(o->selector, 63) == -1) {
		fprintf(stderr, "waymark: dkim-keygen: invalid selector "
		    "\"%s\"\n", o->selector);
		return EX_WM_USAGE;
	}
	if (strcmp(o->alg, "rsa-sha256") != 0 &&
	    strcmp(o->alg, "ed25519-sha256") != 0) {
		fprintf(stderr, "waymark: dkim-keygen: unknown algorithm "
		    "\"%s\" (rsa-sha256 or ed25519-sha256)\n", o->alg);
		return EX_WM_USAGE;
	}
	return 0;
}

/* write_key - pk as PEM into a new file path, mode 0600; 0 or -1 */
static int
write_key(EVP_PKEY *pk, const char *path)
{
	FILE	*fp;
	int	 fd, ok;

	if ((fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
	    O_CLOEXEC, 0600)) == -1) {
		if (errno == EEXIST)
			fprintf(stderr, "waymark: dkim-keygen: %s exists: "
			    "refusing to overwrite it\n", path);
		else
			fprintf(stderr, "waymark: dkim-keygen: %s: %s\n", path,
			    strerror(errno));
		return -1;
	}
	if (fchmod(fd, 0600) == -1 || (fp = fdopen(fd, "w")) == NULL) {
		fprintf(stderr, "waymark: dkim-keygen: %s: %s\n", path,
		    strerror(errno));
		close(fd);
		unlink(path);
		return -1;
	}
	ok = PEM_write_PrivateKey(fp, pk, NULL, NULL, 0, NULL, NULL) == 1 &&
	    fflush(fp) == 0 && fsync(fileno(fp)) == 0;
	if (fclose(fp) != 0)
		ok = 0;
	if (!ok) {
		fprintf(stderr, "waymark: dkim-keygen: cannot write %s\n",
		    path);
		unlink(path);
		return -1;
	}
	return 0;
}

int
keygen_run(const struct keygen_opts *o)
{
	EVP_PKEY	*pk;
	enum dkim_alg	 a;
	char		 path[PATH_MAX], abspath[PATH_MAX], cwd[PATH_MAX];
	char		 rec[2048], dom[256];
	const char	*p;
	size_t		 i, n;
	int		 r;

	if (dkim_alg_parse(o->alg, &a) == -1)
		return EX_WM_USAGE;
	snprintf(dom, sizeof(dom), "%s", o->domain);
	str_lower(dom);
	if (o->out != NULL)
		r = snprintf(path, sizeof(path), "%s", o->out);
	else
		r = snprintf(path, sizeof(path), "%s.%s.key", o->selector, dom);
	if (r < 0 || (size_t)r >= sizeof(path)) {
		fprintf(stderr, "waymark: dkim-keygen: file name too long\n");
		return EX_WM_USAGE;
	}
	if (a == DKIM_RSA_SHA256)
		pk = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)o->bits);
	else
		pk = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	if (pk == NULL) {
		ERR_print_errors_fp(stderr);
		fprintf(stderr, "waymark: dkim-keygen: key generation failed\n");
		return EX_WM_FAIL;
	}
	if (dkim_dns_record(pk, a, rec, sizeof(rec)) == -1) {
		EVP_PKEY_free(pk);
		fprintf(stderr, "waymark: dkim-keygen: cannot encode the "
		    "public key\n");
		return EX_WM_FAIL;
	}
	if (write_key(pk, path) == -1) {
		EVP_PKEY_free(pk);
		return EX_WM_FAIL;
	}
	EVP_PKEY_free(pk);
	r = -1;
	if (path[0] != '/' && getcwd(cwd, sizeof(cwd)) != NULL)
		r = snprintf(abspath, sizeof(abspath), "%s/%s", cwd, path);
	if (r < 0 || (size_t)r >= sizeof(abspath))
		snprintf(abspath, sizeof(abspath), "%s", path);

	printf("%s\n", path);
	/* the TXT record in strings of at most 255 octets */
	printf("%s._domainkey.%s. IN TXT", o->selector, dom);
	for (p = rec, n = strlen(rec); n > 0; p += i, n -= i) {
		i = n > 255 ? 255 : n;
		printf(" \"%.*s\"", (int)i, p);
	}
	printf("\n# waymark.conf: dkim_key = %s %s %s %s\n", dom, o->selector,
	    o->alg, abspath);
	return fflush(stdout) == 0 ? EX_WM_OK : EX_WM_FAIL;
}
