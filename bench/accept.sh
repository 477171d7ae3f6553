#!/bin/sh
# accept.sh - acceptance benchmark: Postfix's smtp-source -> waymarkd -> Maildir.
#
# Builds nothing: uses $WAYMARKD, else $WAYMARK_PREFIX/sbin/waymarkd, else
# waymarkd from PATH, else /usr/local/sbin/waymarkd.  Starts it with a
# temporary configuration on 127.0.0.1 (a free high port), then:
#   run 1: smtp-source -s SESSIONS -m N -l SIZE to one local recipient;
#          measures the time until smtp-source has all N acknowledged and until
#          all N are in the Maildir (messages/second), the idle RSS of
#          waymarkd right after start (with its private and proportional
#          parts from /proc/PID/smaps_rollup) and its peak RSS (VmHWM);
#   run 2: the same load with `strace -f -p PID` attached, counting
#          fsync/fdatasync/syncfs calls per message, split by file (spool
#          log, spool body, Maildir, other).  strace slows the daemon, so run
#          2's rate is not reported as the result.
# Environment: N (5000), SESSIONS (20), SIZE (4096), KEEP=1 keeps the temp dir,
# NO_STRACE=1 skips run 2.  Run as root (waymarkd drops to waymark) on an
# otherwise idle machine.
set -eu

N=${N:-5000}
SESSIONS=${SESSIONS:-20}
SIZE=${SIZE:-4096}
SMTP_SOURCE=/usr/sbin/smtp-source
RCPT=rcpt@example.org

if [ -n "${WAYMARKD:-}" ]; then
	:
elif [ -n "${WAYMARK_PREFIX:-}" ]; then
	WAYMARKD=$WAYMARK_PREFIX/sbin/waymarkd
elif command -v waymarkd >/dev/null 2>&1; then
	WAYMARKD=$(command -v waymarkd)
else
	WAYMARKD=/usr/local/sbin/waymarkd
fi
[ -x "$WAYMARKD" ] || { echo "accept.sh: no waymarkd at $WAYMARKD" >&2; exit 1; }
[ -x "$SMTP_SOURCE" ] || { echo "accept.sh: $SMTP_SOURCE missing (Debian package postfix)" >&2; exit 1; }
command -v strace >/dev/null 2>&1 || NO_STRACE=1

dir=$(mktemp -d /tmp/waymark-bench.XXXXXX)
chmod 755 "$dir"
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
maildir=$dir/mail/example.org/rcpt/new

cat > "$dir/waymark.conf" <<EOF
listen = 127.0.0.1:$port
hostname = bench.test
spool = $dir/spool
mailbox_root = $dir/mail
control = $dir/control.sock
local_domains = example.org
min_free_space = 1m
max_sessions = 1000
EOF

pid=
cleanup() {
	if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
		kill -TERM "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	fi
	if [ "${KEEP:-0}" = 1 ]; then
		echo "kept $dir"
	else
		rm -rf "$dir"
	fi
}
trap cleanup EXIT INT TERM

now() { date +%s.%N; }
kib() { awk -v k="$1" '$1 == k":" { print $2 }' "/proc/$pid/status"; }
count() { find "$maildir" -type f 2>/dev/null | wc -l; }

# wait_count TARGET - until TARGET messages are in the Maildir (bounded)
wait_count() {
	i=0
	while [ "$(count)" -lt "$1" ]; do
		i=$((i + 1))
		if [ $i -gt 12000 ]; then
			echo "accept.sh: only $(count) of $1 messages delivered after 20 min" >&2
			exit 1
		fi
		sleep 0.1
	done
}

"$WAYMARKD" -f "$dir/waymark.conf" >"$dir/waymarkd.log" 2>&1 &
pid=$!
python3 - "$port" <<'EOF'
import socket, sys, time
deadline = time.time() + 30
while True:
    try:
        s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
        if s.recv(512).startswith(b"220"):
            s.sendall(b"QUIT\r\n"); s.recv(512); s.close(); break
        s.close()
    except OSError:
        pass
    if time.time() > deadline:
        sys.exit("waymarkd did not start")
    time.sleep(0.05)
EOF
sleep 1
idle_rss=$(kib VmRSS)
# private = Private_Clean + Private_Dirty; Pss shares each shared page
idle_priv=$(awk '$1 ~ /^Private_(Clean|Dirty):$/ { s += $2 } END { print s + 0 }' \
    "/proc/$pid/smaps_rollup" 2>/dev/null || echo 0)
idle_pss=$(awk '$1 == "Pss:" { print $2 }' "/proc/$pid/smaps_rollup" 2>/dev/null || echo 0)

run_load() {
	"$SMTP_SOURCE" -s "$SESSIONS" -m "$N" -l "$SIZE" -M client.bench \
	    -f bench@example.org -t "$RCPT" "127.0.0.1:$port"
}

# run 1: timed
t0=$(now)
run_load
t1=$(now)
wait_count "$N"
t2=$(now)
peak_rss=$(kib VmHWM)

# run 2: fsyncs per message
if [ "${NO_STRACE:-0}" != 1 ]; then
	strace -f -y -e trace=fsync,fdatasync,syncfs -o "$dir/strace.out" -p "$pid" 2>/dev/null &
	spid=$!
	sleep 1
	run_load
	wait_count $((2 * N))
	sleep 1
	kill -INT "$spid" 2>/dev/null || true
	wait "$spid" 2>/dev/null || true
	syncs=$(awk -v n="$N" '
		/(fsync|fdatasync|syncfs)\(/ && !/resumed/ {
			t++
			if ($0 ~ /\/log\.[0-9]+>/) l++
			else if ($0 ~ /\/spool\/body/) b++
			else if ($0 ~ /\/mail[\/>]/) m++	# files, new/, syncfs(mail)
			else o++
		}
		END { printf "%.3f (spool log %.3f, spool body %.3f, Maildir %.3f, other %.3f)",
		    t / n, l / n, b / n, m / n, o / n }' "$dir/strace.out")
fi

awk -v n="$N" -v s="$SESSIONS" -v sz="$SIZE" -v t0="$t0" -v t1="$t1" -v t2="$t2" \
    -v idle="$idle_rss" -v peak="$peak_rss" -v bin="$WAYMARKD" \
    -v priv="${idle_priv:-0}" -v pss="${idle_pss:-0}" '
BEGIN {
	printf "waymarkd:            %s\n", bin
	printf "load:                %d messages x %d bytes, %d sessions (smtp-source)\n", n, sz, s
	printf "accepted:            %.2f s, %.0f msg/s (smtp-source done)\n", t1 - t0, n / (t1 - t0)
	printf "delivered:           %.2f s, %.0f msg/s (all in the Maildir)\n", t2 - t0, n / (t2 - t0)
	printf "RSS idle:            %d KiB (private %d KiB, Pss %d KiB)\n", idle, priv, pss
	printf "RSS peak (VmHWM):    %d KiB\n", peak
}'
if [ -n "${syncs:-}" ]; then
	echo "syncs per message:   $syncs"
fi
