#!/bin/sh
# profile.sh - where waymarkd spends its CPU on the relay path: bench/relay.sh
# (Waymark only) under `perf record -g` (Debian package linux-perf), then the
# top of the profile of the waymarkd process (all its threads).
#
# Usage: bench/profile.sh [-s SESSIONS] [-n N] [-t TOP] [-o FILE]
#        (defaults 20 sessions, 5000 messages, top 25 symbols, perf data in
#        a temporary file, removed unless -o)
# Environment: as relay.sh (WAYMARKD, WAYMARK_PREFIX, ...); PERF (default
# perf).  Samples the software clock (cpu-clock: VMs often lack hardware
# counters) on every CPU (-a), with call graphs (-g); the report keeps the
# samples of the waymarkd relay.sh started (its pid), by
# symbol, self time (--no-children), kernel and user space together.
# Run as root (relay.sh starts a private Postfix instance; Waymark only here).
set -eu

SESSIONS=20
N=5000
TOP=25
OUT=
while getopts s:n:t:o:h opt; do
	case $opt in
	s) SESSIONS=$OPTARG ;;
	n) N=$OPTARG ;;
	t) TOP=$OPTARG ;;
	o) OUT=$OPTARG ;;
	*) echo "usage: $0 [-s SESSIONS] [-n N] [-t TOP] [-o FILE]" >&2; exit 2 ;;
	esac
done
PERF=${PERF:-perf}
command -v "$PERF" >/dev/null 2>&1 || { echo "profile.sh: no perf (apt-get install linux-perf)" >&2; exit 1; }
top=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d /tmp/waymark-profile.XXXXXX)
data=${OUT:-$tmp/perf.data}
perf_pid=
cleanup() {
	set +e
	[ -z "$perf_pid" ] || { kill -INT "$perf_pid" 2>/dev/null; wait "$perf_pid" 2>/dev/null; }
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

"$PERF" record -e cpu-clock -F 999 -g -a -o "$data" > "$tmp/perf.log" 2>&1 &
perf_pid=$!
sleep 1
# the pid of relay.sh's waymarkd (its configuration is under
# /tmp/waymark-relay.*): other waymarkd processes on the machine are not
# this run's
(
	while :; do
		for p in /proc/[0-9]*; do
			case $(tr '\0' ' ' < "$p/cmdline" 2>/dev/null) in
			*waymarkd*waymark-relay.*) echo "${p#/proc/}" > "$tmp/pid"; exit 0 ;;
			esac
		done
		sleep 0.2
	done
) &
finder=$!
ONLY=waymark "$top/bench/relay.sh" -s "$SESSIONS" -n "$N" | tee "$tmp/relay.out"
kill "$finder" 2>/dev/null || true
kill -INT "$perf_pid"
wait "$perf_pid" || true
perf_pid=
[ -s "$tmp/pid" ] || { echo "profile.sh: did not see relay.sh's waymarkd" >&2; exit 1; }
pid=$(cat "$tmp/pid")
echo
echo "perf: $SESSIONS sessions, $N messages; waymarkd (pid $pid): share of its samples by symbol (self):"
"$PERF" report -i "$data" --pid "$pid" --no-children --sort symbol \
    --percentage relative --stdio -g none 2>/dev/null |
    grep '%' | head -n "$TOP"
rep() {
	"$PERF" report -i "$data" --pid "$pid" --no-children --sort symbol \
	    --percentage relative --stdio -g none 2>/dev/null | grep '%'
}
echo
rep | awk '/\[k\]/ { k += $1 } /\[\.\]/ { u += $1 }
    END { printf "kernel %.1f %%, user space %.1f %% of waymarkd'"'"'s samples\n", k, u }'
echo "user space, top 12:"
rep | grep '\[\.\]' | head -n 12
