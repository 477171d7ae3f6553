#!/bin/sh
# idle.sh - memory of an idle waymarkd, per mapping (/proc/PID/smaps).
#
# Usage: bench/idle.sh [-w SECONDS] [-x 'key = value']... [CONFIG...]
#        CONFIG: plain (listen only), full (listen, submission, mtqp,
#        http), tls (full plus tls_cert/tls_key: a self-signed RSA-2048
#        certificate made with openssl(1)); default: plain full tls
#        -w: idle time after the greeting before measuring (default 3 s)
#        -x: a configuration line added to every CONFIG (repeatable),
#            e.g. -x 'db_cache = 256k'
#
# Per CONFIG: start waymarkd on free 127.0.0.1 ports with a temporary
# spool, wait for its greeting, wait, then print VmRSS, Pss and private
# memory (Private_Clean + Private_Dirty) from smaps_rollup, and a table of
# the mappings grouped by file (shared libraries, the executable, the
# Berkeley DB region files __db.*, [heap], [stack], anonymous mappings:
# thread stacks and malloc arenas), largest RSS first.
# Pss and private depend on the other processes of the machine that map
# the same files at that moment; VmRSS does not.
# Environment: WAYMARKD (else $WAYMARK_PREFIX/sbin/waymarkd, else the build
# tree's build/waymarkd, else waymarkd from PATH), KEEP=1 keeps the temp
# dir. Run as root (waymarkd drops privileges); loopback only.
set -eu

WAIT=3
EXTRA=
usage() {
	echo "usage: $0 [-w SECONDS] [-x 'key = value']... [plain|full|tls...]" >&2
	exit 2
}
while getopts w:x:h opt; do
	case $opt in
	w) WAIT=$OPTARG ;;
	x) EXTRA="$EXTRA$OPTARG
" ;;
	*) usage ;;
	esac
done
shift $((OPTIND - 1))
case $WAIT in '' | *[!0-9]*) usage ;; esac
CONFIGS=${*:-plain full tls}
for c in $CONFIGS; do
	case $c in plain | full | tls) ;; *) usage ;; esac
done

top=$(cd "$(dirname "$0")/.." && pwd)
BENCH=idle
DIR=
. "$top/bench/lib.sh"
[ -x "$WAYMARKD" ] || die "no waymarkd at $WAYMARKD"
[ "$(id -u)" = 0 ] || die "run as root (waymarkd drops privileges)"
command -v python3 >/dev/null 2>&1 || die "python3 missing"
work_dir

echo "waymarkd: $WAYMARKD"
for c in $CONFIGS; do
	d=$DIR/$c
	mkdir "$d"
	chmod 755 "$d"
	port=$(free_port)
	cat > "$d/waymark.conf" <<EOF
listen = 127.0.0.1:$port
hostname = idle.bench.test
spool = $d/spool
mailbox_root = $d/mail
control = $d/control.sock
min_free_space = 1m
EOF
	if [ "$c" != plain ]; then
		cat >> "$d/waymark.conf" <<EOF
submission = 127.0.0.1:$(free_port)
mtqp = 127.0.0.1:$(free_port)
http = 127.0.0.1:$(free_port)
EOF
	fi
	if [ "$c" = tls ]; then
		openssl req -x509 -newkey rsa:2048 -nodes -days 2 \
		    -subj /CN=idle.bench.test -keyout "$d/key.pem" \
		    -out "$d/cert.pem" 2>/dev/null || die "openssl req failed"
		chmod 644 "$d/key.pem"
		echo "tls_cert = $d/cert.pem" >> "$d/waymark.conf"
		echo "tls_key = $d/key.pem" >> "$d/waymark.conf"
	fi
	printf '%s' "$EXTRA" >> "$d/waymark.conf"
	"$WAYMARKD" -f "$d/waymark.conf" > "$d/waymarkd.log" 2>&1 &
	wm_pid=$!
	wait_smtp "$port" || { cat "$d/waymarkd.log" >&2; exit 1; }
	sleep "$WAIT"
	echo
	echo "## $c"
	python3 - "$wm_pid" <<'EOF'
import collections, re, sys
pid = sys.argv[1]
def name(line):
    f = line.split(None, 5)
    path = f[5].strip() if len(f) > 5 else ""
    if not path:
        return "anonymous (thread stacks, arenas, .bss)"
    base = path.split("/")[-1]
    if base.startswith("__db."):
        return "__db.* (Berkeley DB regions)"
    if path == "[heap]" or path == "[stack]":
        return path
    if path.startswith("["):
        return "[vdso, vvar]"
    return re.sub(r"\.so[.0-9]*$", ".so", base)
g = collections.OrderedDict()
cur = None
for line in open("/proc/%s/smaps" % pid):
    if re.match(r"^[0-9a-f]+-[0-9a-f]+ ", line):
        cur = g.setdefault(name(line), collections.Counter())
        lo, hi = (int(x, 16) for x in line.split()[0].split("-"))
        cur["Size"] += (hi - lo) // 1024
        continue
    m = re.match(r"^(\w+):\s+(\d+) kB", line)
    if m and cur is not None:
        cur[m.group(1)] += int(m.group(2))
roll = {}
for line in open("/proc/%s/smaps_rollup" % pid):
    m = re.match(r"^(\w+):\s+(\d+) kB", line)
    if m:
        roll[m.group(1)] = int(m.group(2))
threads = 0
for line in open("/proc/%s/status" % pid):
    if line.startswith("Threads:"):
        threads = int(line.split()[1])
print("VmRSS %d KiB, Pss %d KiB, private %d KiB (dirty %d), anonymous %d KiB, %d threads"
      % (roll["Rss"], roll["Pss"], roll["Private_Clean"] + roll["Private_Dirty"],
         roll["Private_Dirty"], roll.get("Anonymous", 0), threads))
print()
print("| mapping | size KiB | RSS KiB | Pss KiB | private KiB |")
print("| --- | --- | --- | --- | --- |")
rows = sorted(g.items(), key=lambda kv: -kv[1]["Rss"])
for k, c in rows:
    if c["Rss"] == 0:
        continue
    print("| %s | %d | %d | %d | %d |" % (k, c["Size"], c["Rss"], c["Pss"],
          c["Private_Clean"] + c["Private_Dirty"]))
EOF
	kill -TERM "$wm_pid"
	wait "$wm_pid" 2>/dev/null || true
	wm_pid=
done
