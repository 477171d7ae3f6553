#!/bin/sh
# http.sh - operator HTTP API benchmark (issue 11): requests/second, median
# and p99 latency of GET /api/v1/queue with 100,000 queued messages.
#
# Usage: bench/http.sh [-n N] [-q Q] [-k K] [-d DIR]
#        (defaults: 100000 queued messages of which 1000 in quarantine,
#        2000 requests per measurement)
#   -d DIR: work in DIR and keep it (a spool already loaded there with the
#           same N and Q is reused).
# Steps:
#   1. bench/httpload fills DIR/spool with N unfinished messages (one
#      remote recipient each; Q in quarantine, spread evenly, the others
#      in normal) through queue_bulk_queue: records and body files.
#   2. waymarkd on the spool with http_admin on 127.0.0.1, two admin users
#      (one with a DES crypt hash: a check of a few microseconds; one with
#      SHA-512 crypt, 5000 rounds, the `openssl passwd -6` default), the
#      smarthost a closed 127.0.0.1 port and retry_schedule = 1d: every
#      normal message is tried once at start (connection refused, deferred
#      for a day); the benchmark waits until none is queued any more
#      (GET /api/v1/queue?state=normal&status=queued&limit=1 answers no
#      message).
#   3. One keep-alive connection, one request at a time (a Python
#      http.client loop; its own cost is in the figures): K requests of
#        quarantine:  GET /api/v1/queue?state=quarantine (page of 50)
#        deep page:   GET /api/v1/queue?after=MIDDLE (50 of all, from the
#                     middle of the queue)
#        auth only:   GET /api/v1/messages/UNKNOWN (404: the check and the
#                     routing, no listing)
#      each with the cheap user, then auth only with the SHA-512 user: the
#      difference is the cost of the password check.  200 warm-up requests
#      first.  Median, p99, requests/second.
# Environment: WAYMARKD (else the build tree's build/waymarkd), HTTPLOAD
# (else build/bench/httpload), KEEP=1 keeps the temp dir.
# Loopback only; run as root (waymarkd and httpload drop to `user`).
set -eu

N=100000
Q=1000
K=2000
DIR=
usage() {
	echo "usage: $0 [-n N] [-q Q] [-k K] [-d DIR]" >&2
	exit 2
}
while getopts n:q:k:d:h opt; do
	case $opt in
	n) N=$OPTARG ;;
	q) Q=$OPTARG ;;
	k) K=$OPTARG ;;
	d) DIR=$OPTARG ;;
	*) usage ;;
	esac
done
shift $((OPTIND - 1))
[ $# -eq 0 ] || usage
for v in "$N" "$Q" "$K"; do
	case $v in '' | *[!0-9]*) usage ;; esac
done
[ "$N" -gt 0 ] && [ "$K" -gt 0 ] && [ "$Q" -le "$N" ] || usage

top=$(cd "$(dirname "$0")/.." && pwd)
WAYMARKD=${WAYMARKD:-$top/build/waymarkd}
HTTPLOAD=${HTTPLOAD:-$top/build/bench/httpload}
BENCH=http
. "$top/bench/lib.sh"
for p in "$WAYMARKD" "$HTTPLOAD"; do
	[ -x "$p" ] || die "no $p (build first: make in build/)"
done
[ "$(id -u)" = 0 ] || die "run as root (waymarkd and httpload drop privileges)"
command -v python3 >/dev/null 2>&1 || die "python3 missing"

work_dir

port=$(free_port)
hport=$(free_port)
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
if [ -f "$DIR/loaded" ] && [ "$(head -n 1 "$DIR/loaded")" = "$N $Q" ]; then
	echo "load:     reusing the $N messages loaded in $DIR/spool"
else
	rm -rf "$DIR/spool" "$DIR/loaded"
	out=$("$HTTPLOAD" -f "$DIR/waymark.conf" -n "$N" -q "$Q" 2>"$DIR/httpload.err") ||
	    { cat "$DIR/httpload.err" >&2; die "httpload failed"; }
	echo "load:     $out"
	printf '%s %s\n%s\n' "$N" "$Q" "$out" > "$DIR/loaded"
fi
middle=$(sed -n '2s/.*; middle //p' "$DIR/loaded")

# ---- 2. the daemon, the first attempts ----
t0=$(date +%s)
"$WAYMARKD" -f "$DIR/waymark.conf" > "$DIR/waymarkd.log" 2>&1 &
wm_pid=$!

# ---- 3. measurements ----
python3 - "$hport" "$K" "$middle" "$t0" <<'EOF'
import base64, http.client, json, socket, statistics, sys, time
port, k, middle, t0 = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], int(sys.argv[4])

def auth(user):
    return {"Authorization": "Basic " +
            base64.b64encode(("%s:benchpw" % user).encode()).decode()}

def get(conn, path, hdrs):
    conn.request("GET", path, headers=hdrs)
    r = conn.getresponse()
    return r.status, r.read()

conn = None
deadline = time.time() + 900
while True:		# up, and no recipient queued any more (all deferred)
    try:
        if conn is None:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            conn.connect()	# no Nagle on the client's side either
            conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        st, body = get(conn, "/api/v1/queue?state=normal&status=queued&limit=1", auth("cheap"))
        if st == 200 and not json.loads(body)["messages"]:
            break
    except (OSError, http.client.HTTPException):
        conn = None
    if time.time() > deadline:
        sys.exit("http.sh: the queue did not settle in 900 s")
    time.sleep(1)
print("settled:  every normal message tried once and deferred, %d s after start"
      % (time.time() - t0))

def run(name, path, user, expect):
    hdrs = auth(user)
    for _ in range(200):
        st, body = get(conn, path, hdrs)
        assert st == expect, (path, st, body[:200])
    lat = []
    size = len(body)
    start = time.perf_counter()
    for _ in range(k):
        a = time.perf_counter()
        st, body = get(conn, path, hdrs)
        lat.append(time.perf_counter() - a)
        assert st == expect
    wall = time.perf_counter() - start
    lat.sort()
    n = len(json.loads(body).get("messages", [])) if expect == 200 else 0
    print("%-28s median %6.2f ms  p99 %6.2f ms  %6.0f req/s  (%d messages, %d bytes)"
          % (name, statistics.median(lat) * 1e3, lat[int(len(lat) * 0.99)] * 1e3,
             k / wall, n, size))
    return statistics.median(lat)

print("requests: %d per line, one keep-alive connection, one at a time" % k)
run("quarantine, DES user", "/api/v1/queue?state=quarantine", "cheap", 200)
run("deep page, DES user", "/api/v1/queue?after=" + middle, "cheap", 200)
run("sender filter, DES user", "/api/v1/queue?sender=s7@&limit=50", "cheap", 200)
a = run("auth only (404), DES user", "/api/v1/messages/NOSUCHQID", "cheap", 404)
b = run("auth only (404), SHA-512", "/api/v1/messages/NOSUCHQID", "sha512", 404)
run("quarantine, SHA-512 user", "/api/v1/queue?state=quarantine", "sha512", 200)
print("password check: SHA-512 crypt (5000 rounds) costs %.2f ms more per request than DES"
      % ((b - a) * 1e3))
EOF
awk '/VmHWM|VmRSS/ { printf "waymarkd %s %s %s\n", $1, $2, $3 }' "/proc/$wm_pid/status"
