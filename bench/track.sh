#!/bin/sh
# track.sh - tracking benchmark (issue 10): a store with N retained tracked
# messages, MTQP TRACK latency and queries/second against it, the store's
# size on disk per message, and relay throughput with and without MTRK.
#
# Usage: bench/track.sh [-n N] [-k K] [-c CONNS] [-p PAIRS] [-m MSGS] [-d DIR]
#        (defaults: 1000000 messages, 20000 queries, 4 parallel connections,
#        3 relay pairs of 5000 messages; -p 0 skips the relay part)
#   -d DIR: work in DIR and keep it (a spool already loaded there with the
#           same N is reused; the load of a million takes minutes).
# Steps:
#   1. bench/trkload fills DIR/spool with N finished tracked messages of
#      2 recipients (one delivered, one transferred), each with an ENVID and
#      an MTRK certifier whose secret the client can derive (trkbench.h).
#   2. Size: the Berkeley DB files of the spool (*.db), apparent size and
#      disk usage, divided by N, per database (log files and the DB
#      environment's region files __db.* are reported apart: they do not
#      grow with the messages).
#   3. waymarkd on the spool with `mtqp = 127.0.0.1:PORT`; bench/trkquery:
#      1000 warm-up queries, then K queries on one connection (one TRACK
#      at a time: send, read the whole answer), then K on CONNS parallel
#      connections: median, p99, queries/second.  Skipped (with a note)
#      when the daemon does not answer MTQP.
#   4. PAIRS alternating runs of bench/relay.sh (Waymark only, next hop
#      bench/trksink, which announces DSN and MTRK): -T (bench/trksend,
#      no MTRK) and -m (ENVID + MTRK on MAIL); end-to-end msg/s of each
#      and their ratio, and waymarkd's CPU time per message (utime +
#      stime: less sensitive than throughput to other load on the machine).
# Environment: WAYMARKD (else the build tree's build/waymarkd), TRKLOAD,
# TRKQUERY (else build/bench/...), KEEP=1 keeps the temp dir.
# Loopback only; run as root (waymarkd and trkload drop to `user`).
set -eu

N=1000000
K=20000
CONNS=4
PAIRS=3
RELAY_N=5000
DIR=
usage() {
	echo "usage: $0 [-n N] [-k K] [-c CONNS] [-p PAIRS] [-m MSGS] [-d DIR]" >&2
	exit 2
}
while getopts n:k:c:p:m:d:h opt; do
	case $opt in
	n) N=$OPTARG ;;
	k) K=$OPTARG ;;
	c) CONNS=$OPTARG ;;
	p) PAIRS=$OPTARG ;;
	m) RELAY_N=$OPTARG ;;
	d) DIR=$OPTARG ;;
	*) usage ;;
	esac
done
shift $((OPTIND - 1))
[ $# -eq 0 ] || usage
for v in "$N" "$K" "$CONNS" "$PAIRS" "$RELAY_N"; do
	case $v in '' | *[!0-9]*) usage ;; esac
done
[ "$N" -gt 0 ] && [ "$K" -gt 0 ] && [ "$CONNS" -gt 0 ] || usage

top=$(cd "$(dirname "$0")/.." && pwd)
WAYMARKD=${WAYMARKD:-$top/build/waymarkd}
TRKLOAD=${TRKLOAD:-$top/build/bench/trkload}
TRKQUERY=${TRKQUERY:-$top/build/bench/trkquery}
BENCH=track
. "$top/bench/lib.sh"
for p in "$WAYMARKD" "$TRKLOAD" "$TRKQUERY"; do
	[ -x "$p" ] || die "no $p (build first: make in build/)"
done
[ "$(id -u)" = 0 ] || die "run as root (waymarkd and trkload drop privileges)"
command -v python3 >/dev/null 2>&1 || die "python3 missing"

work_dir

# wait_greeting PORT PREFIX SECS - until a line starting with PREFIX comes
# from 127.0.0.1:PORT; 1 when none in SECS seconds
wait_greeting() {
	python3 - "$1" "$2" "$3" <<'EOF'
import socket, sys, time
port, prefix, secs = int(sys.argv[1]), sys.argv[2].encode(), float(sys.argv[3])
deadline = time.time() + secs
while True:
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        line = s.makefile("rb").readline()
        s.close()
        if line.startswith(prefix):
            sys.exit(0)
    except OSError:
        pass
    if time.time() > deadline:
        sys.exit(1)
    time.sleep(0.1)
EOF
}

port=$(free_port)
mport=$(free_port)
cat > "$DIR/waymark.conf" <<EOF
listen = 127.0.0.1:$port
mtqp = 127.0.0.1:$mport
hostname = mx.bench.test
spool = $DIR/spool
mailbox_root = $DIR/mail
control = $DIR/control.sock
local_domains = example.org
relay_from = 127.0.0.0/8
min_free_space = 1m
EOF

echo "waymarkd: $WAYMARKD"
echo "machine:  $(nproc) CPUs, $(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo), $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo

# ---- 1. load ----
if [ -f "$DIR/loaded" ] && [ "$(cat "$DIR/loaded")" = "$N" ]; then
	echo "load:     reusing the $N messages loaded in $DIR/spool"
else
	rm -rf "$DIR/spool" "$DIR/loaded"
	out=$("$TRKLOAD" -f "$DIR/waymark.conf" -n "$N" 2>"$DIR/trkload.err") ||
	    { cat "$DIR/trkload.err" >&2; die "trkload failed"; }
	echo "load:     $out"
	echo "$N" > "$DIR/loaded"
fi

# ---- 2. size ----
sync
echo
echo "store (Berkeley DB files of the spool), $N messages:"
(cd "$DIR/spool" && for f in *.db; do
	printf '%s %s %s\n' "$f" "$(stat -c %s "$f")" "$(du -k "$f" | cut -f1)"
done) | awk -v n="$N" '
{ printf "  %-14s %12d bytes %8.1f B/msg (disk %d KiB)\n", $1, $2, $2 / n, $3; s += $2; d += $3 }
END { printf "  %-14s %12d bytes %8.1f B/msg (disk %d KiB, %.1f B/msg)\n", "total", s, s / n, d, d * 1024 / n }'
(cd "$DIR/spool" && du -ck log.* __db.* 2>/dev/null | tail -n 1 |
    awk '{ printf "  not counted: log files and region files __db.*: %d KiB\n", $1 }')

# ---- 3. latency ----
echo
"$WAYMARKD" -f "$DIR/waymark.conf" > "$DIR/waymarkd.log" 2>&1 &
wm_pid=$!
wait_greeting "$port" 220 60 || { tail -n 20 "$DIR/waymarkd.log" >&2; die "waymarkd did not start"; }
if wait_greeting "$mport" "+OK" 10; then
	"$TRKQUERY" -p "$mport" -n "$N" -k 1000 -s 7 > /dev/null ||
	    die "warm-up queries failed"
	echo "TRACK, 1 connection:      $("$TRKQUERY" -p "$mport" -n "$N" -k "$K" -s 1)"
	echo "TRACK, $CONNS connections:     $("$TRKQUERY" -p "$mport" -n "$N" -k "$K" -c "$CONNS" -s 2)"
	awk '/VmHWM|VmRSS/ { printf "waymarkd %s %s %s\n", $1, $2, $3 }' "/proc/$wm_pid/status"
else
	echo "TRACK: skipped, this waymarkd does not answer MTQP on 127.0.0.1:$mport"
fi
kill -TERM "$wm_pid"
wait "$wm_pid" 2>/dev/null || true
wm_pid=

# ---- 4. relay with and without MTRK ----
[ "$PAIRS" -gt 0 ] || exit 0
echo
echo "relay, $RELAY_N x 4 KiB, 20 sessions, next hop bench/trksink (announces MTRK):"
e2e() {	# the Waymark end-to-end msg/s of a relay.sh table
	awk -F'|' '$3 ~ /Waymark/ { gsub(/ /, "", $5); print $5 }'
}
i=1
: > "$DIR/pairs"
while [ "$i" -le "$PAIRS" ]; do
	for mode in T m; do
		# odd pairs: without MTRK first; even pairs: with MTRK first
		[ $((i % 2)) -eq 1 ] || { [ $mode = T ] && mode=m || mode=T; }
		ONLY=waymark WAYMARKD="$WAYMARKD" "$top/bench/relay.sh" \
		    -n "$RELAY_N" -"$mode" -k > "$DIR/relay.out" 2>&1 ||
		    { cat "$DIR/relay.out" >&2; die "relay.sh failed"; }
		r=$(e2e < "$DIR/relay.out")
		cpu=$(awk '$1 == "Waymark" && $2 == "CPU" { print $(NF - 3) }' "$DIR/relay.out")
		grep -q "with MTRK= on MAIL" "$DIR/relay.out" ||
		    die "relay.sh printed no trksink count"
		[ -n "$r" ] && [ "$r" != - ] ||
		    { cat "$DIR/relay.out" >&2; die "no end-to-end figure"; }
		eval "r_$mode=\$r cpu_$mode=\$cpu"
	done
	echo "$i $r_T $r_m $cpu_T $cpu_m" >> "$DIR/pairs"
	echo "  pair $i: without MTRK $r_T msg/s ($cpu_T ms CPU/msg), with MTRK $r_m msg/s ($cpu_m ms CPU/msg)"
	i=$((i + 1))
done
awk '{ a += $2; b += $3; c += $4; d += $5; n++ }
END { printf "  mean: without MTRK %.0f msg/s, with MTRK %.0f msg/s: %.1f %% less throughput\n", a / n, b / n, 100 * (1 - b / a)
      printf "  waymarkd CPU per message: without MTRK %.3f ms, with MTRK %.3f ms: %+.1f %%\n", c / n, d / n, 100 * (d / c - 1) }' "$DIR/pairs"
# medians of the per-pair ratios (robust to one disturbed run)
awk '{ print $3 / $2, $5 / $4 }' "$DIR/pairs" | sort -n -k1,1 | awk '{ t[NR] = $1 } END { printf "  median pair ratio with/without MTRK: throughput %.3f", NR % 2 ? t[(NR + 1) / 2] : (t[NR / 2] + t[NR / 2 + 1]) / 2 }'
awk '{ print $5 / $4 }' "$DIR/pairs" | sort -n | awk '{ t[NR] = $1 } END { printf ", CPU per message %.3f\n", NR % 2 ? t[(NR + 1) / 2] : (t[NR / 2] + t[NR / 2 + 1]) / 2 }'
