#!/bin/sh
# test.sh - the CI test command (run as root on Debian 12).
# Installs the dependencies, builds twice out of tree with warnings as errors:
#   build/      normal build, unit tests (make check), installed in _inst/
#               (WAYMARK_PREFIX_PLAIN: tests that limit the address space)
#   build-san/  -fsanitize=address,undefined, unit tests, installed in _inst-san/
#   build-fuzz/ clang + libFuzzer: each harness of tests/fuzz for ~20 s (scripts/fuzz.sh)
# then runs the integration suite against the sanitizer install.  Exits non-zero
# when anything fails; its output ends with the pytest summary line.
set -u
cd "$(dirname "$0")/.." || exit 1
root=$(pwd)

fail() {
	echo "test.sh: $*" >&2
	exit 1
}

# make check, printing the test logs when it fails
check() {
	# bounded: a unit test that hangs fails the run in minutes, not hours
	if ! timeout 900 make -j2 check; then
		for f in tests/unit/*.log test-suite.log; do
			[ -f "$f" ] || continue
			echo "===== $PWD/$f"
			cat "$f"
		done
		fail "make check failed in $PWD"
	fi
}

sh scripts/deps.sh || fail "dependencies could not be installed"

# an in-tree configure (older quick start) would block out-of-tree builds
if [ -f config.status ] && [ -f Makefile ]; then
	make distclean >/dev/null 2>&1 || true
fi
autoreconf -fi || fail "autoreconf failed"

mkdir -p build build-san
cd "$root/build" || exit 1
../configure --enable-werror --prefix="$root/_inst" ||
    fail "configure failed (build/)"
make -j2 || fail "make failed (build/)"
check
make install || fail "make install failed (build/)"

cd "$root/build-san" || exit 1
../configure --enable-werror --prefix="$root/_inst-san" \
    CFLAGS='-g -O1 -fsanitize=address,undefined -fno-omit-frame-pointer' \
    LDFLAGS='-fsanitize=address,undefined' ||
    fail "configure failed (build-san/)"
make -j2 || fail "make failed (build-san/)"
check
make install || fail "make install failed (build-san/)"

cd "$root" || exit 1
# bounded: 12 harnesses x 20 s, two at a time, plus the build
timeout 600 sh scripts/fuzz.sh || fail "fuzzing failed (build-fuzz/fuzz-out/)"

export WAYMARK_PREFIX="$root/_inst-san"
export WAYMARK_PREFIX_PLAIN="$root/_inst"
export ASAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:abort_on_error=1"
exec /usr/bin/python3 -m pytest -v -p no:cacheprovider tests/integration
