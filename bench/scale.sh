#!/bin/sh
# scale.sh - relay throughput at several concurrencies with the shipped
# defaults: smtp-source -> MTA -> smtp-sink, Waymark and Postfix one after
# the other at each session count (issue 13).
#
# Usage: bench/scale.sh [-n N] [-S 'S1 S2 ...'] [-l SIZE] [-d DIR]
#        [-x 'key = value']... [-W] [-p SECONDS]
#        (defaults 5000 messages, sessions '1 20 100 500', 4096 bytes;
#        -x adds a line to Waymark's configuration, e.g. -x
#        'max_sessions = 1000' -- then no longer the defaults; -W runs
#        Waymark only; -p waits SECONDS, default 2, after the sync before
#        each run: on ext4 without a journal, files created within 60 s
#        (up to 6 min) of many removals cost more, so one MTA's run
#        (Postfix creates and removes files per message) slows the next
#        one's; -p 65 keeps the runs apart)
# Neither MTA gets a raised limit: Waymark's configuration sets only what
# a relay needs (listen, spool, smarthost = the sink, relay_from,
# smtp_tls = may, min_free_space), so max_sessions is its default (100);
# Postfix's private instance (bench/lib.sh) adds relayhost = the sink and
# smtp_tls_security_level = none to lib.sh's main.cf, so its process
# limit (100) and destination concurrency (20) are the defaults.
# Per run (one message per connection, one remote recipient):
#   msg/s      N / time from the start of smtp-source until the sink has
#              counted the messages that were accepted
#   CPU/msg    CPU time (user + system) of smtp-source, the MTA and the
#              sink over the run, per relayed message: smtp-source from
#              its rusage; waymarkd from /proc/PID/stat; Postfix as its
#              master's own and reaped children's time (cutime, cstime)
#              plus every live descendant's; the sink from /proc/PID/stat
#   machine    the same from /proc/stat (all CPUs, everything running on
#              the machine: other load shows here, not in CPU/msg)
#   peak RSS   Waymark: VmHWM of waymarkd; Postfix: the largest sum of
#              VmRSS over master and its descendants, sampled every 0.2 s
#   421        replies 421 that smtp-source reported (it stops a session
#              at an unexpected reply); "accepted" then counts what the
#              sink got
# Environment: WAYMARKD (as relay.sh), KEEP=1, E2E_TIMEOUT (s, default 300).
# Loopback only; run as root on an otherwise idle machine.
set -eu

N=5000
LIST='1 20 100 500'
SIZE=4096
DIR=
WM_EXTRA=
WHO='waymark postfix'
PAUSE=2
while getopts n:S:l:d:x:Wp:h opt; do
	case $opt in
	n) N=$OPTARG ;;
	S) LIST=$OPTARG ;;
	l) SIZE=$OPTARG ;;
	d) DIR=$OPTARG ;;
	x) WM_EXTRA="$WM_EXTRA$OPTARG
" ;;
	W) WHO=waymark ;;
	p) PAUSE=$OPTARG ;;
	*) echo "usage: $0 [-n N] [-S 'S1 S2 ...'] [-l SIZE] [-d DIR] [-x 'key = value']... [-W] [-p SECONDS]" >&2; exit 2 ;;
	esac
done
E2E_TIMEOUT=${E2E_TIMEOUT:-300}
SMTP_SOURCE=/usr/sbin/smtp-source
SMTP_SINK=/usr/sbin/smtp-sink
top=$(cd "$(dirname "$0")/.." && pwd)
BENCH=scale
. "$top/bench/lib.sh"
[ -x "$WAYMARKD" ] || die "no waymarkd at $WAYMARKD"
[ "$(id -u)" = 0 ] || die "run as root"
for p in "$SMTP_SOURCE" "$SMTP_SINK" "$POSTFIX"; do
	[ -x "$p" ] || die "$p missing (Debian package postfix)"
done
work_dir
sink_pid=
smp_pid=
base_cleanup() { cleanup; }
scale_cleanup() {
	set +e
	[ -z "$smp_pid" ] || kill -TERM "$smp_pid" 2>/dev/null
	[ -z "$sink_pid" ] || kill -TERM "$sink_pid" 2>/dev/null
	[ -z "$sink_pid" ] || wait "$sink_pid" 2>/dev/null
	base_cleanup
}
trap scale_cleanup EXIT
HZ=$(getconf CLK_TCK)

# tree_ticks PID - CPU ticks of PID (its own and its reaped children's)
# plus every live descendant's own
tree_ticks() {
	python3 - "$1" <<'EOF'
import os, sys
root = int(sys.argv[1])
kids, st = {}, {}
for d in os.listdir("/proc"):
    if not d.isdigit():
        continue
    try:
        with open("/proc/%s/stat" % d) as f:
            s = f.read()
    except OSError:
        continue
    f = s[s.rindex(")") + 2:].split()
    st[int(d)] = f
    kids.setdefault(int(f[1]), []).append(int(d))
t, stack = 0, [root]
while stack:
    p = stack.pop()
    stack.extend(kids.get(p, ()))
    f = st.get(p)
    if f is None:
        continue
    t += int(f[11]) + int(f[12])
    if p == root:
        t += int(f[13]) + int(f[14])
print(t)
EOF
}

# machine_ticks - busy ticks of all CPUs (user nice system irq softirq steal)
machine_ticks() {
	awk '$1 == "cpu" { print $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat
}

sink_count() {
	tail -c 300 "$DIR/sink.out" 2>/dev/null | tr '\r' '\n' |
	    awk -F'mesg=' 'NF > 1 { v = $2 + 0; if (v > m) m = v } END { print m + 0 }'
}

# start_sampler PID OUT - max over time of the summed VmRSS of PID's tree
start_sampler() {
	python3 - "$1" "$2" <<'EOF' &
import os, signal, sys, time
root, out = int(sys.argv[1]), sys.argv[2]
best = 0
def done(*_):
    with open(out, "w") as f:
        f.write("%d\n" % best)
    sys.exit(0)
signal.signal(signal.SIGTERM, done)
while True:
    kids = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open("/proc/%s/stat" % d) as f:
                    s = f.read()
            except OSError:
                continue
            kids.setdefault(int(s[s.rindex(")") + 2:].split()[1]), []).append(int(d))
    stack, rss = [root], 0
    while stack:
        p = stack.pop()
        stack.extend(kids.get(p, ()))
        try:
            with open("/proc/%d/status" % p) as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        rss += int(line.split()[1])
        except OSError:
            pass
    best = max(best, rss)
    time.sleep(0.2)
EOF
	smp_pid=$!
}

# measure MTA PORT ROOTPID SESSIONS - one load; appends a row to $DIR/rows
measure() {
	base=$(sink_count)
	start_sampler "$3" "$DIR/smp.out"
	sleep 0.5
	m0=$(tree_ticks "$3") s0=$(tree_ticks "$sink_pid") k0=$(machine_ticks)
	t0=$(date +%s.%N)
	/usr/bin/time -f '%U %S' -o "$DIR/src.time" "$SMTP_SOURCE" -s "$4" \
	    -m "$N" -l "$SIZE" -M client.bench -f from@example.com \
	    -t to@remote.example "127.0.0.1:$2" > "$DIR/src.out" 2>&1 || true
	# until the sink has N more, or nothing new came for 3 s (refusals)
	last=-1 still=0 i=0
	while :; do
		got=$(( $(sink_count) - base ))
		[ "$got" -ge "$N" ] && break
		if [ "$got" = "$last" ]; then still=$((still + 1)); else still=0; fi
		[ $still -ge 30 ] && break
		last=$got
		i=$((i + 1))
		[ $i -gt $((E2E_TIMEOUT * 10)) ] && break
		sleep 0.1
	done
	t1=$(date +%s.%N)
	[ $still -ge 30 ] && t1=$(awk -v t="$t1" 'BEGIN { printf "%.3f", t - 3 }')
	m1=$(tree_ticks "$3") s1=$(tree_ticks "$sink_pid") k1=$(machine_ticks)
	kill -TERM "$smp_pid" 2>/dev/null || true
	wait "$smp_pid" 2>/dev/null || true
	smp_pid=
	rss=$(cat "$DIR/smp.out" 2>/dev/null || echo 0)
	[ "$1" = Waymark ] && rss=$(awk '$1 == "VmHWM:" { print $2 }' "/proc/$3/status")
	n421=$(grep -c ' 421' "$DIR/src.out" || true)
	# the last line: "Command exited with ..." may come before it
	read -r su ss <<EOF2 || { su=0; ss=0; }
$(tail -n 1 "$DIR/src.time")
EOF2
	echo "$4 $1 $got $t0 $t1 $((m1 - m0)) $((s1 - s0)) $su $ss $((k1 - k0)) $rss $n421" >> "$DIR/rows"
	echo "  $1, $4 sessions: $got relayed, $n421 x 421" >&2
	[ "$n421" = 0 ] || grep -m 3 ' 421' "$DIR/src.out" | sed 's/^/    /' >&2
}

run_waymark() {
	d=$DIR/wm.$1
	mkdir -p "$d"
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
EOF
	printf '%s' "$WM_EXTRA" >> "$d/waymark.conf"
	"$WAYMARKD" -f "$d/waymark.conf" > "$d/waymarkd.log" 2>&1 &
	wm_pid=$!
	wait_smtp "$port" || { cat "$d/waymarkd.log" >&2; exit 1; }
	measure Waymark "$port" "$wm_pid" "$1"
	kill -TERM "$wm_pid"
	wait "$wm_pid" 2>/dev/null || true
	wm_pid=
	[ "$keep" = 1 ] || rm -rf "$d"
}

run_postfix() {
	d=$DIR/pf.$1
	port=$(free_port)
	pf_write_conf "$d" "$port"
	cat >> "$d/conf/main.cf" <<EOF
relayhost = [127.0.0.1]:$sink_port
smtp_tls_security_level = none
EOF
	pf_start "$d" "$port"
	measure Postfix "$port" "$pf_master" "$1"
	pf_stop
	[ "$keep" = 1 ] || rm -rf "$d"
}

sink_port=$(free_port)
"$SMTP_SINK" -c -u nobody "127.0.0.1:$sink_port" 1024 > "$DIR/sink.out" 2>"$DIR/sink.err" &
sink_pid=$!
wait_smtp "$sink_port"
: > "$DIR/rows"
echo "waymarkd: $WAYMARKD"
[ -z "$WM_EXTRA" ] || printf 'waymark.conf adds: %s\n' "$(printf '%s' "$WM_EXTRA" | tr '\n' ';')"
echo "postfix:  $POSTFIX $(postconf -d -h mail_version 2>/dev/null || true)"
echo "load:     $N messages x $SIZE bytes per run, sessions: $LIST; $(nproc) CPUs; load average $(cut -d' ' -f1-3 /proc/loadavg)"
for s in $LIST; do
	for who in $WHO; do
		sync
		sleep "$PAUSE"
		echo "$s sessions: $who ..." >&2
		"run_$who" "$s"
	done
done
echo
echo "| sessions | MTA | relayed | msg/s | CPU/msg (source+MTA+sink) | MTA CPU/msg | machine CPU/msg | peak RSS | 421s | W/P msg/s |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
awk -v hz="$HZ" '
{
	rate = ($5 > $4) ? $3 / ($5 - $4) : 0
	cpu = ($3 > 0) ? 1000 * (($6 + $7) / hz + $8 + $9) / $3 : 0
	mta = ($3 > 0) ? 1000 * ($6 / hz) / $3 : 0
	mach = ($3 > 0) ? 1000 * ($10 / hz) / $3 : 0
	if ($2 == "Waymark") { wr = rate; ratio = "" }
	else ratio = (rate > 0) ? sprintf("%.2f", wr / rate) : "-"
	printf "| %d | %s | %d | %.0f | %.3f ms | %.3f ms | %.3f ms | %d KiB | %d | %s |\n",
	    $1, $2, $3, rate, cpu, mta, mach, $11, $12, ratio
}' "$DIR/rows"
