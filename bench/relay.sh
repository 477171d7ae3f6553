#!/bin/sh
# relay.sh - relay benchmark: smtp-source -> MTA -> smtp-sink, Waymark and
# Postfix measured in the same run.
#
# Usage: bench/relay.sh [-n N] [-s SESSIONS] [-l SIZE] [-r ROUNDS] [-p FILE]
#        (defaults 5000 messages, 20 sessions, 4096 bytes, 1 round, no
#        policy; -p FILE adds `policy = FILE` to Waymark's configuration,
#        e.g. bench/policy-50.conf, to measure the cost of policy rules)
#        [-m | -T | -B] [-k] [-S] [-x 'key = value']...
#        -x: a line added to Waymark's configuration (repeatable), e.g.
#        -x 'db_cache = 256k'
#        -m: the load is sent by bench/trksend -M (the build tree's, or
#        $TRKSEND): MAIL carries ENVID= and MTRK= (RFC 3885), which
#        smtp-source cannot send; Waymark only (Postfix refuses MTRK).
#        -T: the same sender without MTRK (the baseline for -m).
#        -B: the same sender without MTRK, the content sent as one
#        "BDAT n LAST" (RFC 3030 CHUNKING) instead of DATA; compare with
#        -T for BDAT against DATA (both MTAs' servers offer CHUNKING).
#        -k: the next hop is bench/trksink ($TRKSINK), which announces
#        DSN and MTRK, so Waymark passes MTRK on, instead of smtp-sink.
#        -S: Waymark gets `metrics = 127.0.0.1:PORT` and /metrics is
#        scraped every second while its load runs (a Prometheus-like
#        client: one GET per second, a new connection each time); the
#        result shows the scrapes done and failed.  Compare msg/s and
#        CPU per message with and without -S for the cost of /metrics.
#
# Starts Postfix's smtp-sink on a free 127.0.0.1 port as the common next hop,
# then per round runs the same load (smtp-source -s SESSIONS -m N -l SIZE,
# one remote recipient) through two MTAs, one after the other; odd rounds run
# Waymark first, even rounds Postfix first:
#   Waymark: $WAYMARKD (else $WAYMARK_PREFIX/sbin/waymarkd, else the build
#            tree's build/waymarkd, else waymarkd from PATH) with a temporary
#            configuration and spool, smarthost = the sink;
#   Postfix: a private instance (postfix -c TMP/conf start) with its own
#            main.cf/master.cf, queue and data directory under the temp dir,
#            relayhost = the sink; the system instance (/etc/postfix,
#            /var/spool/postfix) is neither started nor touched.
# Measures accepted msg/s (smtp-source wall time), end-to-end msg/s (until the
# sink has counted N more messages) and peak RSS: VmHWM of waymarkd, and for
# Postfix the largest sum of VmRSS over master and all its descendants,
# sampled every 0.2 s (the same sampler runs during the Waymark half).
# Environment: WAYMARKD, WAYMARK_PREFIX, KEEP=1 keeps the temp dir,
# E2E_TIMEOUT (seconds to wait for the sink, default 600), ONLY=waymark or
# ONLY=postfix runs one side (for testing the script).
# Loopback only; run as root on an otherwise idle machine.
set -eu

N=5000
SESSIONS=20
SIZE=4096
ROUNDS=1
POLICY=
WM_EXTRA=
SENDER=smtp-source
SINK=smtp-sink
SCRAPE=0
usage() {
	echo "usage: $0 [-n N] [-s SESSIONS] [-l SIZE] [-r ROUNDS] [-p FILE] [-m | -T | -B] [-k] [-S] [-x 'key = value']..." >&2
	exit 2
}
while getopts n:s:l:r:p:x:mTBkSh opt; do
	case $opt in
	n) N=$OPTARG ;;
	s) SESSIONS=$OPTARG ;;
	l) SIZE=$OPTARG ;;
	r) ROUNDS=$OPTARG ;;
	p) POLICY=$OPTARG ;;
	x) WM_EXTRA="$WM_EXTRA$OPTARG
" ;;
	m) SENDER=trksend-mtrk ;;
	T) SENDER=trksend ;;
	B) SENDER=trksend-bdat ;;
	k) SINK=trksink ;;
	S) SCRAPE=1 ;;
	*) usage ;;
	esac
done
shift $((OPTIND - 1))
[ $# -eq 0 ] || usage
for v in "$N" "$SESSIONS" "$SIZE" "$ROUNDS"; do
	case $v in '' | *[!0-9]*) usage ;; esac
	[ "$v" -gt 0 ] || usage
done

E2E_TIMEOUT=${E2E_TIMEOUT:-600}
SMTP_SOURCE=/usr/sbin/smtp-source
SMTP_SINK=/usr/sbin/smtp-sink
POSTFIX=/usr/sbin/postfix
FROM=from@example.com
RCPT=to@remote.example

top=$(cd "$(dirname "$0")/.." && pwd)
BENCH=relay
. "$top/bench/lib.sh"
[ -x "$WAYMARKD" ] || die "no waymarkd at $WAYMARKD"
TRKSEND=${TRKSEND:-$top/build/bench/trksend}
TRKSINK=${TRKSINK:-$top/build/bench/trksink}
if [ "$SENDER" != smtp-source ]; then
	[ -x "$TRKSEND" ] || die "no trksend at $TRKSEND (make in build/)"
fi
if [ "$SINK" = trksink ]; then
	[ -x "$TRKSINK" ] || die "no trksink at $TRKSINK (make in build/)"
fi
if [ "$SENDER" = trksend-mtrk ]; then
	case ${ONLY:-} in
	'' | waymark) ONLY=waymark ;;
	*) die "-m measures Waymark only (Postfix refuses MTRK=)" ;;
	esac
fi
if [ -n "$POLICY" ]; then
	[ -r "$POLICY" ] || die "cannot read policy file $POLICY"
	POLICY=$(cd "$(dirname "$POLICY")" && pwd)/$(basename "$POLICY")
fi
for p in "$SMTP_SOURCE" "$SMTP_SINK" "$POSTFIX"; do
	[ -x "$p" ] || die "$p missing (Debian package postfix)"
done
[ "$(id -u)" = 0 ] || die "run as root (private Postfix instance, waymarkd drops privileges)"
command -v python3 >/dev/null 2>&1 || die "python3 missing"

dir=$(mktemp -d /tmp/waymark-relay.XXXXXX)
chmod 755 "$dir"

sink_pid=
src_pid=
wm_pid=
smp_pid=
scr_pid=
pf_conf=
cleanup() {
	set +e
	[ -n "$src_pid" ] && kill -TERM "$src_pid" 2>/dev/null && wait "$src_pid" 2>/dev/null
	[ -n "$smp_pid" ] && kill -TERM "$smp_pid" 2>/dev/null && wait "$smp_pid" 2>/dev/null
	[ -n "$scr_pid" ] && kill -TERM "$scr_pid" 2>/dev/null && wait "$scr_pid" 2>/dev/null
	[ -n "$wm_pid" ] && stop_waymark
	[ -n "$pf_conf" ] && pf_stop
	if [ -n "$sink_pid" ] && kill -0 "$sink_pid" 2>/dev/null; then
		kill -TERM "$sink_pid" 2>/dev/null
		wait "$sink_pid" 2>/dev/null
	fi
	if [ "${KEEP:-0}" = 1 ]; then
		echo "kept $dir" >&2
	else
		rm -rf "$dir"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

now() { date +%s.%N; }

# sink_count - messages the sink has received so far ("." counter of -c;
# a partly written record can only read low, never high)
sink_count() {
	tail -c 300 "$dir/sink.out" 2>/dev/null | tr '\r' '\n' |
	    awk -F'mesg=' 'NF > 1 { v = $2 + 0; if (v > m) m = v } END { print m + 0 }'
}

# wait_sink TARGET - until the sink has counted TARGET messages; bounded by
# E2E_TIMEOUT; returns 1 on timeout
wait_sink() {
	i=0
	lim=$((E2E_TIMEOUT * 10))
	while [ "$(sink_count)" -lt "$1" ]; do
		i=$((i + 1))
		if [ $i -gt $lim ]; then
			echo "relay.sh: sink has $(sink_count) of $1 messages after ${E2E_TIMEOUT} s" >&2
			return 1
		fi
		sleep 0.1
	done
	return 0
}

# start_sampler PID OUT - every 0.2 s, sum VmRSS (and Pss) over PID and its
# descendants; on SIGTERM writes "MAX_RSS_SUM MAX_PROCS MAX_PSS_SUM" (KiB)
# to OUT
start_sampler() {
	python3 - "$1" "$2" <<'EOF' &
import os, signal, sys, time
root, out = int(sys.argv[1]), sys.argv[2]
best = [0, 0, 0]
def done(*_):
    with open(out, "w") as f:
        f.write("%d %d %d\n" % tuple(best))
    sys.exit(0)
signal.signal(signal.SIGTERM, done)
def field(path, key):
    with open(path) as f:
        for line in f:
            if line.startswith(key):
                return int(line.split()[1])
    return 0
def sample():
    kids = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                st = f.read()
        except OSError:
            continue
        ppid = int(st[st.rindex(")") + 2:].split()[1])
        kids.setdefault(ppid, []).append(int(d))
    stack, rss, pss, n = [root], 0, 0, 0
    while stack:
        p = stack.pop()
        stack.extend(kids.get(p, ()))
        try:
            r = field("/proc/%d/status" % p, "VmRSS:")
            s = field("/proc/%d/smaps_rollup" % p, "Pss:")
        except (OSError, ValueError):
            continue
        rss, pss, n = rss + r, pss + s, n + 1
    best[0] = max(best[0], rss)
    best[1] = max(best[1], n)
    best[2] = max(best[2], pss)
while True:
    sample()
    time.sleep(0.2)
EOF
	smp_pid=$!
}

# start_scraper PORT OUT - GET /metrics every second (-S); on SIGTERM
# writes "SCRAPES FAILED LAST_BYTES MAX_MS" to OUT
start_scraper() {
	python3 - "$1" "$2" <<'EOF' &
import http.client, signal, sys, time
port, out = int(sys.argv[1]), sys.argv[2]
st = [0, 0, 0, 0.0]
def done(*_):
    with open(out, "w") as f:
        f.write("%d %d %d %.1f\n" % tuple(st))
    sys.exit(0)
signal.signal(signal.SIGTERM, done)
while True:
    t0 = time.monotonic()
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        c.request("GET", "/metrics")
        r = c.getresponse()
        body = r.read()
        c.close()
        if r.status != 200 or not body.endswith(b"\n"):
            raise OSError("status %d" % r.status)
        st[0] += 1
        st[2] = len(body)
        st[3] = max(st[3], (time.monotonic() - t0) * 1000)
    except (OSError, http.client.HTTPException):
        st[1] += 1
    time.sleep(max(0.0, 1.0 - (time.monotonic() - t0)))
EOF
	scr_pid=$!
}

stop_scraper() {
	kill -TERM "$scr_pid" 2>/dev/null || true
	wait "$scr_pid" 2>/dev/null || true
	scr_pid=
}

stop_sampler() {
	kill -TERM "$smp_pid" 2>/dev/null || true
	wait "$smp_pid" 2>/dev/null || true
	smp_pid=
}

# run_load PORT - smtp-source in the background, so that a signal to this
# script interrupts the wait and the trap stops it
run_load() {
	case $SENDER in
	smtp-source)
		"$SMTP_SOURCE" -s "$SESSIONS" -m "$N" -l "$SIZE" -M client.bench \
		    -f "$FROM" -t "$RCPT" "127.0.0.1:$1" & ;;
	trksend)
		"$TRKSEND" -s "$SESSIONS" -m "$N" -l "$SIZE" -f "$FROM" \
		    -t "$RCPT" "127.0.0.1:$1" > "$dir/trksend.out" & ;;
	trksend-mtrk)
		"$TRKSEND" -M -s "$SESSIONS" -m "$N" -l "$SIZE" -f "$FROM" \
		    -t "$RCPT" "127.0.0.1:$1" > "$dir/trksend.out" & ;;
	trksend-bdat)
		"$TRKSEND" -B -s "$SESSIONS" -m "$N" -l "$SIZE" -f "$FROM" \
		    -t "$RCPT" "127.0.0.1:$1" > "$dir/trksend.out" & ;;
	esac
	src_pid=$!
	rc=0
	wait "$src_pid" || rc=$?
	src_pid=
	return $rc
}

# measure NAME PORT ROOTPID - one timed load; sets t_acc, t_e2e, smp_sum,
# smp_procs, smp_pss (t_e2e empty on timeout)
measure() {
	base=$(sink_count)
	start_sampler "$3" "$dir/sampler.out"
	sleep 0.5
	t0=$(now)
	run_load "$2" || echo "relay.sh: $1: smtp-source failed" >&2
	t1=$(now)
	if wait_sink $((base + N)); then
		t2=$(now)
		t_e2e=$(awk -v a="$t0" -v b="$t2" 'BEGIN { printf "%.3f", b - a }')
	else
		t_e2e=
	fi
	t_acc=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
	stop_sampler
	smp_sum=0 smp_procs=0 smp_pss=0
	[ -s "$dir/sampler.out" ] && read -r smp_sum smp_procs smp_pss < "$dir/sampler.out"
	rm -f "$dir/sampler.out"
	sleep 1
	got=$(( $(sink_count) - base ))
	if [ "$got" -ne "$N" ]; then
		echo "relay.sh: $1: sink received $got messages for $N sent" >&2
	fi
}

# ---- Waymark ----

stop_waymark() {
	if kill -0 "$wm_pid" 2>/dev/null; then
		kill -TERM "$wm_pid" 2>/dev/null || true
		i=0
		while kill -0 "$wm_pid" 2>/dev/null && [ $i -lt 100 ]; do
			sleep 0.1
			i=$((i + 1))
		done
		kill -KILL "$wm_pid" 2>/dev/null || true
	fi
	wait "$wm_pid" 2>/dev/null || true
	wm_pid=
}

run_waymark() {
	d=$dir/wm.$1
	mkdir "$d"
	chmod 755 "$d"
	port=$(free_port)
	cat > "$d/waymark.conf" <<EOF
listen = 127.0.0.1:$port
hostname = waymark.bench.test
spool = $d/spool
mailbox_root = $d/mail
control = $d/control.sock
local_domains = localhost
relay_from = 127.0.0.0/8
smarthost = [127.0.0.1]:$sink_port
smtp_tls = may
min_free_space = 1m
max_sessions = 1000
EOF
	[ -z "$POLICY" ] || echo "policy = $POLICY" >> "$d/waymark.conf"
	printf '%s' "$WM_EXTRA" >> "$d/waymark.conf"
	if [ "$SCRAPE" = 1 ]; then
		mport=$(free_port)
		echo "metrics = 127.0.0.1:$mport" >> "$d/waymark.conf"
	fi
	"$WAYMARKD" -f "$d/waymark.conf" > "$d/waymarkd.log" 2>&1 &
	wm_pid=$!
	wait_smtp "$port" || { cat "$d/waymarkd.log" >&2; exit 1; }
	[ "$SCRAPE" = 0 ] || start_scraper "$mport" "$d/scraper.out"
	measure waymark "$port" "$wm_pid"
	if [ "$SCRAPE" = 1 ]; then
		stop_scraper
		scr="0 0 0 0"
		[ -s "$d/scraper.out" ] && scr=$(cat "$d/scraper.out")
		echo "$1 $scr" >> "$dir/scrapes"
	fi
	wm_hwm=$(awk '$1 == "VmHWM:" { print $2 }' "/proc/$wm_pid/status")
	# CPU time of waymarkd (utime + stime, all threads), in seconds
	wm_cpu=$(awk -v hz="$(getconf CLK_TCK)" '{ sub(/^.*\) /, ""); printf "%.2f", ($12 + $13) / hz }' "/proc/$wm_pid/stat")
	stop_waymark
	res_wm_acc=$t_acc res_wm_e2e=$t_e2e res_wm_rss=$wm_hwm res_wm_cpu=$wm_cpu
	res_wm_sum=$smp_sum res_wm_procs=$smp_procs res_wm_pss=$smp_pss
	[ "${KEEP:-0}" = 1 ] || rm -rf "$d"
}

# ---- Postfix (private instance) ----

run_postfix() {
	d=$dir/pf.$1
	port=$(free_port)
	pf_write_conf "$d" "$port"
	cat >> "$d/conf/main.cf" <<EOF
relayhost = [127.0.0.1]:$sink_port
default_destination_concurrency_limit = 20
smtp_tls_security_level = none
EOF
	pf_start "$d" "$port"
	master=$pf_master
	measure postfix "$port" "$master"
	pf_stop
	res_pf_acc=$t_acc res_pf_e2e=$t_e2e res_pf_sum=$smp_sum res_pf_procs=$smp_procs res_pf_pss=$smp_pss
	[ "${KEEP:-0}" = 1 ] || rm -rf "$d"
}

# ---- main ----

sink_port=$(free_port)
if [ "$SINK" = trksink ]; then
	"$TRKSINK" "127.0.0.1:$sink_port" > "$dir/sink.out" 2>"$dir/sink.err" &
else
	"$SMTP_SINK" -c -u nobody "127.0.0.1:$sink_port" 1024 > "$dir/sink.out" 2>"$dir/sink.err" &
fi
sink_pid=$!
wait_smtp "$sink_port"

echo "waymarkd: $WAYMARKD"
[ -z "$WM_EXTRA" ] || printf 'waymark.conf adds: %s\n' "$(printf '%s' "$WM_EXTRA" | tr '\n' ';')"
[ "$SCRAPE" = 0 ] || echo "metrics:  /metrics scraped every second during the Waymark load (-S)"
[ -z "$POLICY" ] || echo "policy:   $POLICY ($(grep -cv '^[[:space:]]*\(#\|$\)' "$POLICY") rules, Waymark only)"
echo "postfix:  $POSTFIX $(postconf -d -h mail_version 2>/dev/null || true)"
case $SENDER in
smtp-source) how=smtp-source ;;
trksend) how="bench/trksend, no MTRK" ;;
trksend-bdat) how="bench/trksend -B, no MTRK, BDAT instead of DATA" ;;
*) how="bench/trksend, ENVID + MTRK on MAIL" ;;
esac
echo "load:     $N messages x $SIZE bytes, $SESSIONS sessions ($how), $ROUNDS round(s)," \
    "next hop $SINK 127.0.0.1:$sink_port"
echo

rows=$dir/rows
: > "$rows"
r=1
while [ $r -le "$ROUNDS" ]; do
	if [ $((r % 2)) -eq 1 ]; then
		order="waymark postfix"
	else
		order="postfix waymark"
	fi
	res_wm_acc=0 res_wm_e2e=- res_wm_rss=0 res_wm_sum=0 res_wm_procs=0 res_wm_pss=0 res_wm_cpu=0
	res_pf_acc=0 res_pf_e2e=- res_pf_sum=0 res_pf_procs=0 res_pf_pss=0
	for who in $order; do
		case ${ONLY:-} in '' | "$who") ;; *) continue ;; esac
		sync
		sleep 2
		echo "round $r: $who ..." >&2
		"run_$who" "$r"
	done
	echo "$r $res_wm_acc ${res_wm_e2e:--} $res_wm_rss $res_wm_sum $res_pf_acc ${res_pf_e2e:--} $res_pf_sum $res_pf_procs $res_wm_procs $res_wm_pss $res_pf_pss $res_wm_cpu" >> "$rows"
	r=$((r + 1))
done

awk -v n="$N" '
function rate(t) { return t == "-" ? "-" : sprintf("%.0f", n / t) }
function acc(t) { return t == 0 ? "-" : sprintf("%.0f", n / t) }
{
	printf "round %d\n", $1
	if ($2 != 0)
		printf "  Waymark  accepted %5s msg/s (%.2f s)  end-to-end %5s msg/s (%s s)  peak RSS %d KiB (VmHWM; sampled max: RSS %d KiB, Pss %d KiB, %d process)\n",
		    acc($2), $2, rate($3), $3, $4, $5, $11, $10
	if ($2 != 0)
		printf "  Waymark  CPU %.2f s (utime + stime of waymarkd): %.3f ms per message\n", $13, 1000 * $13 / n
	if ($6 != 0)
		printf "  Postfix  accepted %5s msg/s (%.2f s)  end-to-end %5s msg/s (%s s)  peak RSS %d KiB (max sum over %d processes; max Pss sum %d KiB)\n",
		    acc($6), $6, rate($7), $7, $8, $9, $12
	if ($3 != "-" && $7 != "-")
		printf "  end-to-end Waymark/Postfix %.2f x, peak RSS Waymark/Postfix %.3f\n", $7 / $3, $4 / $8
}' "$rows"

echo
echo "| round | MTA | accepted msg/s | end-to-end msg/s | peak RSS | end-to-end W/P |"
echo "| --- | --- | --- | --- | --- | --- |"
awk -v n="$N" '
function rate(t) { return t == "-" ? "-" : sprintf("%.0f", n / t) }
function acc(t) { return t == 0 ? "-" : sprintf("%.0f", n / t) }
{
	ratio = ($3 != "-" && $7 != "-") ? sprintf("%.2f", $7 / $3) : "-"
	if ($2 != 0)
		printf "| %d | Waymark | %s | %s | %d KiB | %s |\n", $1, acc($2), rate($3), $4, ratio
	if ($6 != 0)
		printf "| %d | Postfix | %s | %s | %d KiB (%d processes) | |\n", $1, acc($6), rate($7), $8, $9
}' "$rows"

if [ "$SCRAPE" = 1 ] && [ -s "$dir/scrapes" ]; then
	echo
	awk '{ printf "round %d: /metrics scraped %d times (1/s) during the Waymark load, %d failed, %d bytes each, slowest %.1f ms\n", $1, $2, $3, $4, $5 }' "$dir/scrapes"
fi

if [ "$SINK" = trksink ]; then
	echo
	tail -n 1 "$dir/sink.out" | awk '{ sub("mesg=", "", $1); sub("mtrk=", "", $2);
	    printf "trksink: %s messages received in all, %s of them with MTRK= on MAIL\n", $1, $2 }'
fi
