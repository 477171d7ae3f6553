#!/bin/sh
# sessions.sh - memory of idle SMTP sessions: RSS and Pss of the MTA at 0,
# 100 and 1000 open sessions (each after its EHLO reply), Waymark and
# Postfix one after the other in the same run.
#
# Usage: bench/sessions.sh [-l "0 100 1000"] [-w SECONDS] [-d DIR]
#        -l: the session counts measured, ascending (default 0 100 1000)
#        -w: settling time before each measurement (default 3 s)
#        -d: work in DIR and keep it
#
# Per MTA: start it on a free 127.0.0.1 port, then for each count open
# sessions (connect, read the greeting, EHLO client.bench, read the whole
# reply) until that many are open, wait, and sum VmRSS, Pss and private
# memory (Private_Clean + Private_Dirty, smaps_rollup) over the MTA's
# processes: waymarkd alone; Postfix's master and all its descendants
# (one smtpd per session, plus qmgr, pickup, anvil, ...). The sessions
# stay open (idle, well inside both smtpd timeouts) until the last count
# has been measured; then all are closed and the MTA stopped.
#   Waymark: $WAYMARKD (else $WAYMARK_PREFIX/sbin/waymarkd, else the build
#            tree's build/waymarkd, else waymarkd from PATH), max_sessions
#            above the largest count, 127.0.0.0/8 exempt from the
#            per-client limit (relay_from, the default exceptions).
#   Postfix: a private instance (bench/lib.sh pf_*) with
#            default_process_limit above the largest count (one smtpd
#            process per session); 127.0.0.0/8 (mynetworks) is exempt
#            from anvil's per-client limits by default.
# Prints a table per MTA and the growth per idle session between the
# counts ((X(b) - X(a)) / (b - a)).
# Environment: WAYMARKD, WAYMARK_PREFIX, KEEP=1 keeps the temp dir,
# ONLY=waymark or ONLY=postfix measures one side.
# Loopback only; run as root (private Postfix instance; waymarkd drops
# privileges).
set -eu

LEVELS="0 100 1000"
WAIT=3
DIR=
usage() {
	echo "usage: $0 [-l \"0 100 1000\"] [-w SECONDS] [-d DIR]" >&2
	exit 2
}
while getopts l:w:d:h opt; do
	case $opt in
	l) LEVELS=$OPTARG ;;
	w) WAIT=$OPTARG ;;
	d) DIR=$OPTARG ;;
	*) usage ;;
	esac
done
shift $((OPTIND - 1))
[ $# -eq 0 ] || usage
prev=-1
for v in $LEVELS "$WAIT"; do
	case $v in '' | *[!0-9]*) usage ;; esac
done
for v in $LEVELS; do
	[ "$v" -gt "$prev" ] || usage
	prev=$v
done
MAXS=$prev

top=$(cd "$(dirname "$0")/.." && pwd)
BENCH=sessions
. "$top/bench/lib.sh"
[ -x "$WAYMARKD" ] || die "no waymarkd at $WAYMARKD"
[ -x "$POSTFIX" ] || [ "${ONLY:-}" = waymark ] || die "$POSTFIX missing (Debian package postfix)"
[ "$(id -u)" = 0 ] || die "run as root (private Postfix instance, waymarkd drops privileges)"
command -v python3 >/dev/null 2>&1 || die "python3 missing"
# every session is a descriptor here and in the MTA
need=$((MAXS + 200))
[ "$(ulimit -n)" = unlimited ] || [ "$(ulimit -n)" -ge "$need" ] ||
    ulimit -n "$need" || die "cannot raise the descriptor limit to $need"

work_dir

# hold ROOTPID PORT OUT - open the sessions level by level and write
# "sessions processes rss pss private" (KiB) per level to OUT
hold() {
	python3 - "$1" "$2" "$WAIT" $LEVELS > "$3" <<'EOF'
import os, socket, sys, time
root, port, wait = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
levels = [int(x) for x in sys.argv[4:]]

def tree(root):
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
    stack, out = [root], []
    while stack:
        p = stack.pop()
        out.append(p)
        stack.extend(kids.get(p, ()))
    return out

def measure():
    n = rss = pss = priv = 0
    for p in tree(root):
        try:
            f = {}
            with open("/proc/%d/smaps_rollup" % p) as fp:
                for line in fp:
                    k, _, v = line.partition(":")
                    if v.strip().endswith("kB"):
                        f[k] = int(v.split()[0])
        except (OSError, ValueError):
            continue
        n, rss, pss = n + 1, rss + f.get("Rss", 0), pss + f.get("Pss", 0)
        priv += f.get("Private_Clean", 0) + f.get("Private_Dirty", 0)
    return n, rss, pss, priv

def reply(s, buf):
    # one whole reply: lines up to the one with a space after the code
    while True:
        while b"\r\n" not in buf[0]:
            chunk = s.recv(4096)
            if not chunk:
                raise OSError("connection closed")
            buf[0] += chunk
        line, buf[0] = buf[0].split(b"\r\n", 1)
        if len(line) < 4 or line[3:4] != b"-":
            return line

socks = []
for level in levels:
    while len(socks) < level:
        batch = []
        for _ in range(min(50, level - len(socks))):
            s = socket.create_connection(("127.0.0.1", port), timeout=60)
            batch.append(s)
        for s in batch:
            buf = [b""]
            g = reply(s, buf)
            if not g.startswith(b"220"):
                sys.exit("sessions.sh: greeting %r at session %d" % (g, len(socks)))
            s.sendall(b"EHLO client.bench\r\n")
            r = reply(s, buf)
            if not r.startswith(b"250"):
                sys.exit("sessions.sh: EHLO reply %r at session %d" % (r, len(socks)))
            socks.append(s)
    time.sleep(wait)
    print("%d %d %d %d %d" % ((level,) + measure()), flush=True)
for s in socks:
    try:
        s.sendall(b"QUIT\r\n")
    except OSError:
        pass
    s.close()
EOF
}

rows=$DIR/rows
: > "$rows"

run_waymark() {
	d=$DIR/wm
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
min_free_space = 1m
max_sessions = $((MAXS + 10))
EOF
	"$WAYMARKD" -f "$d/waymark.conf" > "$d/waymarkd.log" 2>&1 &
	wm_pid=$!
	wait_smtp "$port" || { cat "$d/waymarkd.log" >&2; exit 1; }
	hold "$wm_pid" "$port" "$d/levels" || { tail -20 "$d/waymarkd.log" >&2; die "waymark: sessions failed"; }
	sed 's/^/Waymark /' "$d/levels" >> "$rows"
	kill -TERM "$wm_pid"
	wait "$wm_pid" 2>/dev/null || true
	wm_pid=
}

run_postfix() {
	d=$DIR/pf
	port=$(free_port)
	pf_write_conf "$d" "$port"
	cat >> "$d/conf/main.cf" <<EOF
default_process_limit = $((MAXS + 100))
EOF
	pf_start "$d" "$port"
	hold "$pf_master" "$port" "$d/levels" || { tail -20 "$d/maillog" >&2; die "postfix: sessions failed"; }
	sed 's/^/Postfix /' "$d/levels" >> "$rows"
	pf_stop
}

echo "waymarkd: $WAYMARKD"
echo "postfix:  $POSTFIX $(postconf -d -h mail_version 2>/dev/null || true)"
echo "sessions: $LEVELS (idle after EHLO), measured ${WAIT} s after the last one opened"
echo
for who in waymark postfix; do
	case ${ONLY:-} in '' | "$who") ;; *) continue ;; esac
	echo "$who ..." >&2
	"run_$who"
	sleep 2
done

echo "| MTA | sessions | processes | RSS (sum) | Pss (sum) | private (sum) |"
echo "| --- | --- | --- | --- | --- | --- |"
awk '{ printf "| %s | %d | %d | %d KiB | %d KiB | %d KiB |\n", $1, $2, $3, $4, $5, $6 }' "$rows"
echo
echo "Growth per idle session (bytes):"
echo
echo "| MTA | from | to | RSS | Pss | private |"
echo "| --- | --- | --- | --- | --- | --- |"
awk '{
	if ($1 == mta)
		printf "| %s | %d | %d | %.0f | %.0f | %.0f |\n", $1, n, $2,
		    1024 * ($4 - r) / ($2 - n), 1024 * ($5 - p) / ($2 - n),
		    1024 * ($6 - q) / ($2 - n)
	mta = $1; n = $2; r = $4; p = $5; q = $6
}' "$rows"
