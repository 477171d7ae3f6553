#include "config.h"
/*
 * fuzz_cfg.c - the configuration parser (common/cfg.c): the input is a
 * waymark.conf file's bytes, loaded with cfg_load (defaults, every line,
 * the final checks), printed as `waymarkd -n` does and freed.  A loaded
 * configuration is printed again after a reload of its own output: the
 * same text.  Inputs naming /dev, /proc or /sys are skipped (a file key
 * could make the parser read a device for ever).
 */

#include <string.h>

#include "common/cfg.h"
#include "tests/fuzz/fuzz.h"

/* print - cfg_print into a malloc'd string (size in *len), or NULL */
static char *
print(const struct config *c, size_t *len)
{
	char	*s = NULL;
	FILE	*fp;

	if ((fp = open_memstream(&s, len)) == NULL)
		return NULL;
	cfg_print(c, fp);
	if (fclose(fp) != 0) {
		free(s);
		return NULL;
	}
	return s;
}

/* LLVMFuzzerTestOneInput - one input, checked as the header comment says */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const skip[] = { "/dev", "/proc", "/sys" };
	struct config	*c, *c2;
	const char	*path;
	char		 err[1024];
	char		*out, *out2;
	size_t		 i, len, len2;

	for (i = 0; i < sizeof(skip) / sizeof(skip[0]); i++)
		if (memmem(data, size, skip[i], strlen(skip[i])) != NULL)
			return 0;
	if ((path = fuzz_file("waymark.conf", data, size)) == NULL)
		return 0;
	if ((c = cfg_load(path, err, sizeof(err))) == NULL) {
		FUZZ_CHECK(err[0] != '\0');
		return 0;
	}
	out = print(c, &len);
	cfg_free(c);
	if (out == NULL)
		return 0;
	/* what -n prints is a configuration that loads to the same */
	if ((path = fuzz_file("printed.conf", (const uint8_t *)out,
	    len)) != NULL) {
		c2 = cfg_load(path, err, sizeof(err));
		if (c2 == NULL)
			fprintf(stderr, "reload failed: %s\n", err);
		FUZZ_CHECK(c2 != NULL);
		out2 = print(c2, &len2);
		cfg_free(c2);
		FUZZ_CHECK(out2 != NULL);
		FUZZ_CHECK(len2 == len && memcmp(out, out2, len) == 0);
		free(out2);
	}
	free(out);
	return 0;
}
