#!/bin/sh
# fuzz.sh - build the libFuzzer harnesses of tests/fuzz/ with clang in
# build-fuzz/ (configure --enable-fuzz: ASan + UBSan, coverage on every
# object) and run each for FUZZ_TIME seconds (default 20), FUZZ_JOBS at a
# time (default 2), from a copy of its seed corpus.  Fails on any crash,
# leak, timeout, memory excess or sanitizer report, naming the harness
# and the input kept (build-fuzz/fuzz-out/NAME/crash-*: copy it to
# tests/fuzz/regress/NAME/ once fixed).  Prints one summary line.
# Usage: scripts/fuzz.sh [NAME...]   (default: every harness)
set -u
cd "$(dirname "$0")/.." || exit 1
root=$(pwd)
time=${FUZZ_TIME:-20}
jobs=${FUZZ_JOBS:-2}

fail() {
	echo "fuzz.sh: $*" >&2
	exit 1
}

command -v clang >/dev/null 2>&1 ||
    fail "clang not found (Debian packages clang libclang-rt-14-dev)"
if [ $# -gt 0 ]; then
	names="$*"
else
	names=$(cd tests/fuzz/corpus && ls)
fi
[ -f configure ] || autoreconf -fi >/dev/null 2>&1 || fail "autoreconf failed"
mkdir -p build-fuzz
cd build-fuzz || exit 1
if [ ! -f Makefile ]; then
	../configure --enable-fuzz CC=clang CFLAGS='-g -O1' \
	    >configure.log 2>&1 || {
		tail -20 configure.log
		fail "configure --enable-fuzz failed (build-fuzz/configure.log)"
	}
fi
make -j2 fuzz >make.log 2>&1 || {
	tail -40 make.log
	fail "make fuzz failed (build-fuzz/make.log)"
}

out=$root/build-fuzz/fuzz-out
rm -rf "$out"
mkdir -p "$out"

# run_one NAME - one harness from a copy of its seeds; its status in NAME/rc
run_one() {
	d=$out/$1
	mkdir -p "$d/corpus"
	cp "$root/tests/fuzz/corpus/$1/"* "$d/corpus/" 2>/dev/null
	ASAN_OPTIONS=detect_leaks=1:halt_on_error=1:allocator_may_return_null=1 \
	UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	    ./tests/fuzz/fuzz_"$1" -max_total_time="$time" -timeout=10 \
	    -rss_limit_mb=1024 -malloc_limit_mb=512 -max_len=4096 \
	    -close_fd_mask=2 -print_final_stats=1 -artifact_prefix="$d/" \
	    "$d/corpus" >"$d/log" 2>&1
	echo $? >"$d/rc"
}

start=$(date +%s)
set -- $names
while [ $# -gt 0 ]; do
	n=0
	while [ $# -gt 0 ] && [ $n -lt "$jobs" ]; do
		[ -x "./tests/fuzz/fuzz_$1" ] || fail "no harness tests/fuzz/fuzz_$1"
		run_one "$1" &
		n=$((n + 1))
		shift
	done
	wait
done

failed=0
runs=0
for h in $names; do
	d=$out/$h
	r=$(grep -o '^stat::number_of_executed_units: *[0-9]*' "$d/log" |
	    grep -o '[0-9]*$' | tail -1)
	runs=$((runs + ${r:-0}))
	if [ "$(cat "$d/rc")" != 0 ] || ! grep -q '^Done ' "$d/log"; then
		failed=$((failed + 1))
		input=$(ls "$d"/crash-* "$d"/leak-* "$d"/timeout-* \
		    "$d"/oom-* 2>/dev/null | head -1)
		echo "===== fuzz $h FAILED, input: ${input:-none}"
		# the report without libFuzzer's and libc's own frames
		grep -E 'ERROR|WARNING|SUMMARY|runtime error|#[0-9]+ 0x' \
		    "$d/log" | grep -vE 'fuzzer::|__sanitizer_print|libc\.so|libc_start|_start |raise|abort|pthread_kill| in main ' |
		    head -30
		if [ -n "$input" ]; then
			echo "----- replay of $input:"
			ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
			    ./tests/fuzz/fuzz_"$h" "$input" 2>&1 |
			    grep -E 'property failed|ERROR|runtime error|SUMMARY' |
			    head -10
		fi
	fi
done
count=$(echo $names | wc -w)
echo "fuzz: $count harnesses, ${time}s each, $runs runs, $failed failed" \
    "($(($(date +%s) - start))s)"
[ "$failed" -eq 0 ]
