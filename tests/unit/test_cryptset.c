#include "config.h"
/*
 * test_cryptset.c - unit tests of common/cryptset.c: the cost rule per
 * scheme (bcrypt, yescrypt, scrypt, SHA-crypt with and without rounds=,
 * sha1crypt, SunMD5, md5crypt, BSDi, DES, NT, unknown), which hashes
 * can match (locked "!" / "*" entries, settings crypt_checksalt refuses),
 * the setting of a hash and the scheme's name.
 */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "common/cryptset.h"

#define NELEM(a)	(sizeof(a) / sizeof((a)[0]))

static int	failures;

#define CHECK(cond, name, ...) do {					\
	if (!(cond)) {							\
		print_error("%s: ", (name));				\
		print_error(__VA_ARGS__);				\
		print_error("\n");					\
		failures++;						\
	}								\
} while (0)

/* the cost rule of cryptset.c's header, scheme by scheme */
static void
test_cost(void **state)
{
	static const struct {
		const char	*hash;
		uint64_t	 want;
	} cases[] = {
		{ "$2b$04$bMussJfw4bmQeKAF1URG5O3rgxVR8l6RpolZu72k8FISMRliYqlam",
		  50000ULL << 4 },
		{ "$2y$12$gQXAK7CC5mcD3aHz7Hvtbe", 50000ULL << 12 },
		{ "$2a$31$gQXAK7CC5mcD3aHz7Hvtbe", 50000ULL << 31 },
		{ "$2b$1$x", 0 },
		{ "$y$j9T$INDwP.fbNPSBUR4KEGGXl0$uDZrxkC7pHw", 150ULL * 4096 * 32 },
		{ "$y$jBT$I/KmoxyoIkFePugDzLyI20$", 150ULL * 16384 * 32 },
		{ "$y$j75$abc$", 150ULL * 1024 * 8 },
		{ "$gy$j9T$mVIxV.NpZ.UtMKp/.r2W31$", 150ULL * 4096 * 32 },
		/* have = 3: p = 2 (read, not counted), t = 3 */
		{ "$y$j9T0.0$abc$", 150ULL * 4096 * 32 * 4 },
		{ "$y$j9", 0 },
		{ "$7$CU..../..../kj/mCQzlx/ou..w6icAL/$", 230ULL * 16384 * 32 },
		{ "$7$CU....0....salt$", 230ULL * 16384 * 32 * 2 },
		{ "$7$CU..", 0 },
		{ "$6$vAc94tapZrkJ4L5v$zYaC", 260ULL * 5000 },
		{ "$6$rounds=200000$8m08Dovi.1Y08qO0$", 260ULL * 200000 },
		{ "$6$rounds=10$salt$", 260ULL * 1000 },
		{ "$6$rounds=9999999999$salt$", 260ULL * 999999999 },
		{ "$5$IwGHfQ087yTvc4U9$kTpM", 400ULL * 5000 },
		{ "$5$rounds=80000$mkLB1ats.BDy.vaa$", 400ULL * 80000 },
		{ "$sha1$241037$weewSBjlEwIXDVxqzdzh$", 700ULL * 241037 },
		{ "$md5,rounds=74688$KfUYwpZ7$$x8D", 1400ULL * (74688 + 4096) },
		{ "$md5$KfUYwpZ7$", 1400ULL * 4096 },
		{ "$1$7t5J4K4u$Gk6pkfwsmMIy6He2YOCm81", 130000 },
		{ "$3$$8cc19b6a8cfeac299c2871c86b38de28", 1000 },
		{ "_J9..HgGH6Z.1CoFluOk", 140ULL * 725 },
		{ "abJnggxhB/yAs", 5000 },
		{ "$9$abcdefgh$xyz", 0 },
		{ "", 0 },
	};
	uint64_t	got;
	size_t		i;

	(void)state;
	failures = 0;
	for (i = 0; i < NELEM(cases); i++) {
		got = cryptset_cost(cases[i].hash);
		CHECK(got == cases[i].want, cases[i].hash,
		    "got %llu, want %llu", (unsigned long long)got,
		    (unsigned long long)cases[i].want);
	}
	/* saturating, never wrapping */
	assert_true(cryptset_cost("$2b$99$gQXAK7CC5mcD3aHz7Hvtbe") ==
	    UINT64_MAX);
	/* the longest number form, then a malformed N: no overrun */
	assert_true(cryptset_cost("$y$jz////T$abc$") == 0);
	assert_int_equal(failures, 0);
}

/* locked and unusable hashes cannot match; the schemes crypt(3) knows can */
static void
test_usable(void **state)
{
	static const struct {
		const char	*hash;
		int		 want;
	} cases[] = {
		{ "$6$vAc94tapZrkJ4L5v$zYaC", 1 },
		{ "$2b$10$TF.caK8cA4fMuJp9zUkXqeg9S6TcJZ/H/IdfoD2u3dCC0oeWFQB6S", 1 },
		{ "$y$j9T$INDwP.fbNPSBUR4KEGGXl0$uDZrxkC7pHw", 1 },
		{ "$1$7t5J4K4u$Gk6pkfwsmMIy6He2YOCm81", 1 },	/* legacy */
		{ "$5$IwGHfQ087yTvc4U9$kTpM", 1 },		/* legacy */
		{ "abJnggxhB/yAs", 1 },				/* DES, legacy */
		{ "!", 0 },
		{ "*", 0 },
		{ "!!", 0 },
		{ "*LK*", 0 },
		{ "!$6$vAc94tapZrkJ4L5v$zYaC", 0 },
		{ "*$2b$10$TF.caK8cA4fMuJp9zUkXqeg9S6TcJZ/H/IdfoD2u3dCC0oeWFQB6S", 0 },
		{ "$9$abcdefgh$xyz", 0 },
		{ "$6$", 0 },
		{ "$", 0 },
		{ "a", 0 },
		{ "", 0 },
	};
	size_t	i;
	int	got;

	(void)state;
	failures = 0;
	for (i = 0; i < NELEM(cases); i++) {
		got = cryptset_usable(cases[i].hash);
		CHECK(got == cases[i].want, cases[i].hash, "got %d, want %d",
		    got, cases[i].want);
	}
	assert_int_equal(failures, 0);
}

/* the setting (no hash part) and the scheme's name */
static void
test_setting_scheme(void **state)
{
	static const struct {
		const char	*hash, *setting, *scheme;
	} cases[] = {
		{ "$2b$10$TF.caK8cA4fMuJp9zUkXqeg9S6TcJZ/H/IdfoD2u3dCC0oeWFQB6S",
		  "$2b$10$TF.caK8cA4fMuJp9zUkXqe", "$2b$" },
		{ "$6$rounds=200000$8m08Dovi.1Y08qO0$VHwD",
		  "$6$rounds=200000$8m08Dovi.1Y08qO0$", "$6$" },
		{ "$y$j9T$INDwP.fbNPSBUR4KEGGXl0$uDZr",
		  "$y$j9T$INDwP.fbNPSBUR4KEGGXl0$", "$y$" },
		{ "$md5,rounds=74688$KfUYwpZ7$$x8D",
		  "$md5,rounds=74688$KfUYwpZ7$$", "$md5$" },
		{ "_J9..HgGH6Z.1CoFluOk", "_J9..HgGH", "_" },
		{ "abJnggxhB/yAs", "ab", "DES" },
		{ "$6$", NULL, "$6$" },
	};
	char	*set, name[16];
	size_t	 i;

	(void)state;
	failures = 0;
	for (i = 0; i < NELEM(cases); i++) {
		set = cryptset_setting(cases[i].hash);
		CHECK(cases[i].setting == NULL ? set == NULL :
		    set != NULL && strcmp(set, cases[i].setting) == 0,
		    cases[i].hash, "got setting \"%s\", want \"%s\"",
		    set ? set : "(null)",
		    cases[i].setting ? cases[i].setting : "(null)");
		free(set);
		cryptset_scheme(cases[i].hash, name, sizeof(name));
		CHECK(strcmp(name, cases[i].scheme) == 0, cases[i].hash,
		    "got scheme \"%s\", want \"%s\"", name, cases[i].scheme);
	}
	cryptset_scheme("$verylongschemename$x", name, 6);
	assert_string_equal(name, "$ver$");
	cryptset_scheme("$6$x", name, 2);
	assert_string_equal(name, "");
	assert_int_equal(failures, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cost),
		cmocka_unit_test(test_usable),
		cmocka_unit_test(test_setting_scheme),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
