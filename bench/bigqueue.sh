#!/bin/sh
# bigqueue.sh - relay throughput with a large deferred queue, and the
# `waymark queue` listing of it (issue 13).
#
# Usage: bench/bigqueue.sh [-q Q] [-n N] [-s SESSIONS] [-d DIR]
#        [-x 'key = value']...
#        (defaults 100000 queued messages, 5000 relayed, 20 sessions;
#        -x adds a line to every waymarkd configuration, e.g. -x
#        'db_cache = 16m' -- then no longer the shipped defaults)
# Next hops (MX routing through dnsmasq on loopback, one port P for both):
#   refusing: smtp-sink -r rcpt on 127.0.0.2:P (4xx to every RCPT), the MX
#             of d0..d96.example.net (the domains of bench/httpload's
#             messages);
#   good:     smtp-sink -c on 127.0.0.3:P, the MX of remote.example.
# Runs, each with waymarkd's shipped defaults (retry_schedule, max_sessions,
# concurrency) plus dns, smtp_port and relay_from:
#   empty   a fresh spool: smtp-source -s SESSIONS -m N to to@remote.example,
#           end-to-end msg/s (until the good sink has counted N);
#   burst   a spool of Q messages (bench/httpload: never tried, so all due
#           at start): the same load at once after start-up, while the Q
#           first attempts are refused;
#   steady  the same daemon once the Q are deferred (each tried once; the
#           next attempt is a retry_schedule step away) and SETTLE seconds
#           (default 10) more for their commits and a checkpoint (the next
#           attempts come 60 s after start): the same load;
#   listing `waymark queue` and `waymark queue --json` of the Q messages:
#           seconds to the first line and to the end of the output.
# Also: the load time, the start-up time with Q messages, the time of the
# Q first attempts, VmRSS/VmHWM of waymarkd.  Environment: WAYMARKD,
# WAYMARK (the command; default next to WAYMARKD), HTTPLOAD (default
# build/bench/httpload), KEEP=1.  Loopback only; run as root.
set -eu

Q=100000
N=5000
SESSIONS=20
DIR=
WM_EXTRA=
while getopts q:n:s:d:x:h opt; do
	case $opt in
	q) Q=$OPTARG ;;
	n) N=$OPTARG ;;
	s) SESSIONS=$OPTARG ;;
	d) DIR=$OPTARG ;;
	x) WM_EXTRA="$WM_EXTRA$OPTARG
" ;;
	*) echo "usage: $0 [-q Q] [-n N] [-s SESSIONS] [-d DIR] [-x 'key = value']..." >&2; exit 2 ;;
	esac
done
top=$(cd "$(dirname "$0")/.." && pwd)
WAYMARKD=${WAYMARKD:-$top/build/waymarkd}
WAYMARK=${WAYMARK:-$(dirname "$WAYMARKD")/waymark}
HTTPLOAD=${HTTPLOAD:-$top/build/bench/httpload}
SMTP_SOURCE=/usr/sbin/smtp-source
SMTP_SINK=/usr/sbin/smtp-sink
DNSMASQ=${DNSMASQ:-/usr/sbin/dnsmasq}
BENCH=bigqueue
. "$top/bench/lib.sh"
for p in "$WAYMARKD" "$WAYMARK" "$HTTPLOAD" "$SMTP_SOURCE" "$SMTP_SINK" "$DNSMASQ"; do
	[ -x "$p" ] || die "$p missing"
done
[ "$(id -u)" = 0 ] || die "run as root"
work_dir
pids=
bq_cleanup() {
	set +e
	for p in $pids; do kill -TERM "$p" 2>/dev/null; done
	cleanup
}
trap bq_cleanup EXIT

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }

# a port free on 127.0.0.2 and 127.0.0.3
P=$(python3 -c '
import socket
for _ in range(100):
    s = socket.socket(); s.bind(("127.0.0.2", 0)); p = s.getsockname()[1]; s.close()
    try:
        t = socket.socket(); t.bind(("127.0.0.3", p)); t.close(); print(p); break
    except OSError:
        pass')
dnsport=$(free_port)
set -- --no-daemon --conf-file=/dev/null --pid-file= --port="$dnsport" \
    --listen-address=127.0.0.1 --bind-interfaces --no-resolv --no-hosts \
    --user=root --local=/test/ --local=/example.net/ --local=/example/ \
    --host-record=mx.refuse.test,127.0.0.2 --host-record=mx.good.test,127.0.0.3 \
    --mx-host=remote.example,mx.good.test,10
i=0
while [ $i -lt 97 ]; do
	set -- "$@" --mx-host=d$i.example.net,mx.refuse.test,10
	i=$((i + 1))
done
"$DNSMASQ" "$@" > "$DIR/dnsmasq.log" 2>&1 &
pids="$pids $!"
"$SMTP_SINK" -r rcpt -u nobody "127.0.0.2:$P" 1024 > /dev/null 2>&1 &
pids="$pids $!"
"$SMTP_SINK" -c -u nobody "127.0.0.3:$P" 1024 > "$DIR/sink.out" 2>&1 &
pids="$pids $!"
sleep 0.5

sink_count() {
	tail -c 300 "$DIR/sink.out" 2>/dev/null | tr '\r' '\n' |
	    awk -F'mesg=' 'NF > 1 { v = $2 + 0; if (v > m) m = v } END { print m + 0 }'
}

# conf NAME - a configuration in DIR/NAME; sets conf, port
conf() {
	mkdir -p "$DIR/$1"
	chmod 755 "$DIR/$1"
	port=$(free_port)
	conf=$DIR/$1/waymark.conf
	cat > "$conf" <<EOF
listen = 127.0.0.1:$port
hostname = waymark.bench.test
spool = $DIR/$1/spool
mailbox_root = $DIR/$1/mail
control = $DIR/$1/control.sock
local_domains = localhost
relay_from = 127.0.0.0/8
dns = 127.0.0.1:$dnsport
smtp_port = $P
min_free_space = 1m
EOF
	printf '%s' "$WM_EXTRA" >> "$conf"
}

start_wm() {
	t=$(now)
	"$WAYMARKD" -f "$conf" > "$DIR/$1/waymarkd.log" 2>&1 &
	wm_pid=$!
	wait_smtp "$port" || { tail "$DIR/$1/waymarkd.log" >&2; exit 1; }
	echo "$1: waymarkd ready after $(since "$t") s"
}

stop_wm() {
	echo "$1: waymarkd VmRSS $(awk '$1 == "VmRSS:" { print $2 }' /proc/$wm_pid/status) KiB, VmHWM $(awk '$1 == "VmHWM:" { print $2 }' /proc/$wm_pid/status) KiB"
	kill -TERM "$wm_pid"
	wait "$wm_pid" 2>/dev/null || true
	wm_pid=
}

# load NAME - N messages to the good hop; prints the end-to-end rate
load() {
	base=$(sink_count)
	t=$(now)
	"$SMTP_SOURCE" -s "$SESSIONS" -m "$N" -l 4096 -M client.bench \
	    -f from@example.com -t to@remote.example "127.0.0.1:$port" > "$DIR/src.out" 2>&1 ||
	    echo "$1: smtp-source failed: $(head -c 300 "$DIR/src.out")" >&2
	i=0
	while [ $(( $(sink_count) - base )) -lt "$N" ] && [ $i -lt 6000 ]; do
		sleep 0.05
		i=$((i + 1))
	done
	el=$(since "$t")
	echo "$1: $(( $(sink_count) - base )) of $N relayed to the good hop in $el s: $(awk -v n="$N" -v t="$el" 'BEGIN { printf "%.0f", n / t }') msg/s"
}

# deferred NAME - log lines of first attempts that were deferred so far
deferred() { grep -c 'status=deferred' "$DIR/$1/waymarkd.log" || true; }

# listing ARGS - seconds to the first line and to the end, lines
listing() {
	python3 - "$WAYMARK" "$conf" "$@" <<'EOF'
import subprocess, sys, time
t0 = time.monotonic()
p = subprocess.Popen([sys.argv[1], "-f", sys.argv[2], "queue"] + sys.argv[3:],
                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
first, n = None, 0
for line in p.stdout:
    if first is None:
        first = time.monotonic() - t0
    n += 1
end = time.monotonic() - t0
p.wait()
print("queue %s: first line after %.3f s, all %d lines after %.3f s (exit %d)"
      % (" ".join(sys.argv[3:]), first or -1, n, end, p.returncode))
EOF
}

echo "waymarkd: $WAYMARKD; $Q queued, loads of $N x 4 KiB over $SESSIONS sessions;" \
    "$(nproc) CPUs; load average $(cut -d' ' -f1-3 /proc/loadavg)"
[ -z "$WM_EXTRA" ] || printf 'waymark.conf adds: %s\n' "$(printf '%s' "$WM_EXTRA" | tr '\n' ';')"

conf empty
start_wm empty
load empty
stop_wm empty

conf big
t=$(now)
"$HTTPLOAD" -f "$conf" -n "$Q" -q 0 > "$DIR/httpload.out" 2>"$DIR/httpload.err" ||
    { cat "$DIR/httpload.err" >&2; die "httpload failed"; }
echo "big: $(cat "$DIR/httpload.out") ($(since "$t") s)"
t0=$(now)
start_wm big
load burst
echo "burst: $(deferred big) of $Q first attempts done so far"
i=0
while [ "$(deferred big)" -lt "$Q" ] && [ $i -lt 3000 ]; do
	sleep 1
	i=$((i + 1))
done
echo "big: $(deferred big) first attempts deferred $(since "$t0") s after start"
# their status commits (lazy) and the checkpoint after them settle first
sleep "${SETTLE:-10}"
load steady
listing
listing --json
stop_wm big
