#!/bin/sh
# http.sh - operator HTTP API benchmark (issue 11): requests/second, median
# and p99 latency of GET /api/v1/queue with 100,000 queued messages.
#
# Usage: bench/http.sh [-n N] [-q Q] [-t T] [-k K] [-d DIR]
#        (defaults: 100000 queued messages of which 1000 in quarantine,
#        1000 finished tracked ones, 2000 requests per measurement)
#   -d DIR: work in DIR and keep it (a spool already loaded there with the
#           same N, Q and T is reused).
# Steps:
#   1. bench/httpload fills DIR/spool with N unfinished messages (one
#      remote recipient each; Q in quarantine, spread evenly, the others
#      in normal) through queue_bulk_queue: records and body files;
#      then T finished tracked messages (ENVID and MTRK certifier of
#      bench/trkbench.h, one recipient delivered locally: no next hop
#      is asked) through queue_bulk_load.
#   2. waymarkd on the spool with http and http_admin on 127.0.0.1, two admin users
#      (one with a DES crypt hash: a check of a few microseconds; one with
#      SHA-512 crypt, 5000 rounds, the `openssl passwd -6` default), the
#      smarthost a closed 127.0.0.1 port and retry_schedule = 1d: every
#      normal message is tried once at start (connection refused, deferred
#      for a day); the benchmark waits until none is queued any more
#      (GET /api/v1/queue?state=normal&status=queued&limit=1 answers no
#      message).
#   3. One keep-alive connection (TCP_NODELAY), one request at a time
#      (bench/httpq, C; its own cost is in the figures): K requests of
#        quarantine:  GET /api/v1/queue?state=quarantine (page of 50)
#        deep page:   GET /api/v1/queue?after=MIDDLE (50 of all, from the
#                     middle of the queue)
#        auth only:   GET /api/v1/messages/UNKNOWN (404: the check and the
#                     routing, no listing)
#      each with the cheap user, then auth only with the SHA-512 user: the
#      difference is the cost of the password check; on http (no auth):
#        sender view: POST /api/v1/track {envid, secret} of tracked
#                     message T/2 (the store's answer, no next hop)
#        page:        GET / (the sender view's form)
#      200 warm-up requests first.  Median, p99, requests/second.
# Environment: WAYMARKD (else the build tree's build/waymarkd), HTTPLOAD
# (else build/bench/httpload), HTTPQ (else build/bench/httpq), KEEP=1
# keeps the temp dir.
# Loopback only; run as root (waymarkd and httpload drop to `user`).
set -eu

N=100000
Q=1000
T=1000
K=2000
DIR=
usage() {
	echo "usage: $0 [-n N] [-q Q] [-t T] [-k K] [-d DIR]" >&2
	exit 2
}
while getopts n:q:t:k:d:h opt; do
	case $opt in
	n) N=$OPTARG ;;
	q) Q=$OPTARG ;;
	t) T=$OPTARG ;;
	k) K=$OPTARG ;;
	d) DIR=$OPTARG ;;
	*) usage ;;
	esac
done
shift $((OPTIND - 1))
[ $# -eq 0 ] || usage
for v in "$N" "$Q" "$T" "$K"; do
	case $v in '' | *[!0-9]*) usage ;; esac
done
[ "$N" -gt 0 ] && [ "$K" -gt 0 ] && [ "$Q" -le "$N" ] || usage

top=$(cd "$(dirname "$0")/.." && pwd)
WAYMARKD=${WAYMARKD:-$top/build/waymarkd}
HTTPLOAD=${HTTPLOAD:-$top/build/bench/httpload}
HTTPQ=${HTTPQ:-$top/build/bench/httpq}
BENCH=http
. "$top/bench/lib.sh"
for p in "$WAYMARKD" "$HTTPLOAD" "$HTTPQ"; do
	[ -x "$p" ] || die "no $p (build first: make in build/)"
done
[ "$(id -u)" = 0 ] || die "run as root (waymarkd and httpload drop privileges)"
command -v python3 >/dev/null 2>&1 || die "python3 missing"

work_dir

port=$(free_port)
hport=$(free_port)
tport=$(free_port)
dead=$(free_port)	# nobody listens there: connection refused
python3 -W ignore::DeprecationWarning - "$DIR/users" <<'EOF'
import crypt, sys
with open(sys.argv[1], "w") as f:
    f.write("cheap:%s\n" % crypt.crypt("benchpw", "ab"))
    f.write("sha512:%s\n" % crypt.crypt("benchpw", crypt.mksalt(crypt.METHOD_SHA512)))
EOF
chmod 644 "$DIR/users"
cat > "$DIR/waymark.conf" <<EOF
listen = 127.0.0.1:$port
http = 127.0.0.1:$tport
http_admin = 127.0.0.1:$hport
auth_users = $DIR/users
admin_users = cheap, sha512
hostname = mx.bench.test
spool = $DIR/spool
mailbox_root = $DIR/mail
control = $DIR/control.sock
local_domains = example.org
relay_from = 127.0.0.0/8
smarthost = [127.0.0.1]:$dead
retry_schedule = 1d
min_free_space = 1m
EOF

echo "waymarkd: $WAYMARKD"
echo "machine:  $(nproc) CPUs, $(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo), $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo

# ---- 1. load ----
if [ -f "$DIR/loaded" ] && [ "$(head -n 1 "$DIR/loaded")" = "$N $Q $T" ]; then
	echo "load:     reusing the $N messages loaded in $DIR/spool"
else
	rm -rf "$DIR/spool" "$DIR/loaded"
	out=$("$HTTPLOAD" -f "$DIR/waymark.conf" -n "$N" -q "$Q" -t "$T" 2>"$DIR/httpload.err") ||
	    { cat "$DIR/httpload.err" >&2; die "httpload failed"; }
	echo "load:     $out"
	printf '%s %s %s\n%s\n' "$N" "$Q" "$T" "$out" > "$DIR/loaded"
fi
middle=$(sed -n '2s/.*; middle //p' "$DIR/loaded")

# ---- 2. the daemon, the first attempts ----
t0=$(date +%s)
"$WAYMARKD" -f "$DIR/waymark.conf" > "$DIR/waymarkd.log" 2>&1 &
wm_pid=$!

# ---- 3. measurements ----
python3 - "$hport" "$t0" <<'EOF'
import base64, http.client, json, sys, time
port, t0 = int(sys.argv[1]), int(sys.argv[2])
hdrs = {"Authorization": "Basic " + base64.b64encode(b"cheap:benchpw").decode()}
conn = None
deadline = time.time() + 900
while True:		# up, and no recipient queued any more (all deferred)
    try:
        if conn is None:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request("GET", "/api/v1/queue?state=normal&status=queued&limit=1",
                     headers=hdrs)
        r = conn.getresponse()
        body = r.read()
        if r.status == 200 and not json.loads(body)["messages"]:
            break
    except (OSError, http.client.HTTPException):
        conn = None
    if time.time() > deadline:
        sys.exit("http.sh: the queue did not settle in 900 s")
    time.sleep(1)
print("settled:  every normal message tried once and deferred, %d s after start"
      % (time.time() - t0))
EOF

# the tracked message asked for: n = T / 2 (bench/trkbench.h)
track=$(python3 - "$((T / 2))" <<'EOF'
import base64, json, sys
M = (1 << 64) - 1
def mix(z):
    z = (z + 0x9e3779b97f4a7c15) & M
    z = ((z ^ (z >> 30)) * 0xbf58476d1ce4e5b9) & M
    z = ((z ^ (z >> 27)) * 0x94d049bb133111eb) & M
    return z ^ (z >> 31)
n = int(sys.argv[1])
envid = "%016x%016x@client.bench.test" % (mix(2 * n), mix(2 * n + 1))
secret = base64.b64encode(("secret-%d" % n).encode()).decode()
print(json.dumps({"envid": envid, "secret": secret}, separators=(",", ":")))
EOF
)

# q LABEL PORT USER EXPECT PATH [httpq options]: one measurement, one line
q() {
	label=$1 qport=$2 user=$3 expect=$4 path=$5
	shift 5
	"$HTTPQ" -p "$qport" ${user:+-u "$user:benchpw"} -k "$K" -e "$expect" \
	    -l "$label" "$@" "$path" || die "httpq failed: $label"
}
median() { sed 's/.* median *\([0-9.]*\) ms.*/\1/'; }

echo "requests: $K per line (200 warm-up first), one keep-alive connection, one at a time"
q "quarantine, DES user" "$hport" cheap 200 "/api/v1/queue?state=quarantine" \
    -c '"queue_id"' -N messages
q "deep page, DES user" "$hport" cheap 200 "/api/v1/queue?after=$middle" \
    -c '"queue_id"' -N messages
q "sender filter, DES user" "$hport" cheap 200 \
    "/api/v1/queue?sender=s7@&limit=50" -c '"queue_id"' -N messages
a=$(q "auth only (404), DES user" "$hport" cheap 404 /api/v1/messages/NOSUCHQID)
echo "$a"
b=$(q "auth only (404), SHA-512" "$hport" sha512 404 /api/v1/messages/NOSUCHQID)
echo "$b"
q "quarantine, SHA-512 user" "$hport" sha512 200 \
    "/api/v1/queue?state=quarantine" -c '"queue_id"' -N messages
awk -v a="$(echo "$a" | median)" -v b="$(echo "$b" | median)" 'BEGIN {
	printf "password check: SHA-512 crypt (5000 rounds) costs %.2f ms more per request than DES\n", b - a }'
q "sender view: POST track" "$tport" "" 200 /api/v1/track -d "$track" \
    -c '"recipient"' -N recipients
q "sender view: GET / (page)" "$tport" "" 200 /
awk '/VmHWM|VmRSS/ { printf "waymarkd %s %s %s\n", $1, $2, $3 }' "/proc/$wm_pid/status"
