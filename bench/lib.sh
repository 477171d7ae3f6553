# lib.sh - what the bench/*.sh scripts share; sourced (not run) with BENCH
# set to the script's name ("http", "track", "relay", "sessions"):
#   die MSG...   "BENCH.sh: MSG" on stderr, exit 1
#   work_dir     DIR made and kept when given (-d), else a temp dir
#                removed at exit unless KEEP=1; waymarkd ($wm_pid, when
#                set) and the private Postfix instance ($pf_conf, when
#                set) stopped at exit
#   free_port    a free TCP port on 127.0.0.1
#   wait_smtp PORT  until a 220 greeting comes from 127.0.0.1:PORT (30 s)
#   pf_write_conf D PORT  a private Postfix instance in D: D/conf/main.cf
#                and master.cf (queue, data and maillog under D; smtpd on
#                127.0.0.1:PORT; the standard services without chroot);
#                callers append their own main.cf lines (relayhost, ...)
#   pf_start D PORT  postfix -c D/conf start, wait for its greeting; sets
#                pf_conf and pf_master (the master's pid)
#   pf_pids      pids of the instance's processes (they all carry
#                MAIL_CONFIG=$pf_conf in their environment)
#   pf_stop      postfix -c $pf_conf stop; kills what is left after 10 s
# The system Postfix instance (/etc/postfix, /var/spool/postfix) is neither
# started nor touched.
# WAYMARKD, when not set: $WAYMARK_PREFIX/sbin/waymarkd, else the build
# tree's build/waymarkd ($top: the repository), else waymarkd from PATH,
# else /usr/local/sbin/waymarkd.

POSTFIX=${POSTFIX:-/usr/sbin/postfix}
if [ -n "${WAYMARKD:-}" ]; then
	:
elif [ -n "${WAYMARK_PREFIX:-}" ]; then
	WAYMARKD=$WAYMARK_PREFIX/sbin/waymarkd
elif [ -x "$top/build/waymarkd" ]; then
	WAYMARKD=$top/build/waymarkd
elif command -v waymarkd >/dev/null 2>&1; then
	WAYMARKD=$(command -v waymarkd)
else
	WAYMARKD=/usr/local/sbin/waymarkd
fi
pf_conf=
pf_master=

die() { echo "$BENCH.sh: $*" >&2; exit 1; }

work_dir() {
	if [ -n "$DIR" ]; then
		mkdir -p "$DIR"
		DIR=$(cd "$DIR" && pwd)
		keep=1
	else
		DIR=$(mktemp -d "/tmp/waymark-$BENCH.XXXXXX")
		keep=${KEEP:-0}
	fi
	chmod 755 "$DIR"
	wm_pid=
	trap cleanup EXIT
	trap 'exit 130' INT TERM
}

cleanup() {
	set +e
	if [ -n "$wm_pid" ] && kill -0 "$wm_pid" 2>/dev/null; then
		kill -TERM "$wm_pid"
		wait "$wm_pid" 2>/dev/null
	fi
	[ -z "$pf_conf" ] || pf_stop
	if [ "$keep" = 1 ]; then
		echo "kept $DIR" >&2
	else
		rm -rf "$DIR"
	fi
}

free_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_smtp PORT - until a 220 greeting comes from 127.0.0.1:PORT (30 s)
wait_smtp() {
	python3 - "$1" <<'EOF'
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
        sys.exit("no SMTP greeting on port %s after 30 s" % sys.argv[1])
    time.sleep(0.05)
EOF
}

# pf_write_conf D PORT - a private Postfix instance's configuration in D
pf_write_conf() {
	mkdir "$1" "$1/conf" "$1/queue" "$1/data"
	chmod 755 "$1" "$1/conf" "$1/queue"
	chown postfix "$1/data"
	cat > "$1/conf/main.cf" <<EOF
# private benchmark instance written by bench/$BENCH.sh
compatibility_level = 3.6
config_directory = $1/conf
queue_directory = $1/queue
data_directory = $1/data
command_directory = /usr/sbin
daemon_directory = /usr/lib/postfix/sbin
mail_owner = postfix
setgid_group = postdrop
myhostname = postfix.bench.test
mydomain = bench.test
myorigin = \$myhostname
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mydestination =
local_recipient_maps =
alias_maps =
alias_database =
mynetworks = 127.0.0.0/8
smtpd_tls_security_level = none
maillog_file = $1/maillog
maillog_file_prefixes = $1
biff = no
EOF
	cat > "$1/conf/master.cf" <<EOF
# service type  private unpriv  chroot  wakeup  maxproc command
127.0.0.1:$2 inet n  -       n       -       -       smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
EOF
}

# pf_start D PORT - start the instance of D, wait for its greeting on PORT
pf_start() {
	pf_conf=$1/conf
	"$POSTFIX" -c "$pf_conf" check > "$1/check.log" 2>&1 ||
	    { cat "$1/check.log" >&2; die "postfix check failed"; }
	"$POSTFIX" -c "$pf_conf" start > "$1/start.log" 2>&1 ||
	    { cat "$1/start.log" >&2; die "postfix start failed"; }
	wait_smtp "$2" || { cat "$1/maillog" >&2; exit 1; }
	pf_master=$(tr -d ' \n' < "$1/queue/pid/master.pid")
}

# pf_pids - pids of the private instance's processes
pf_pids() {
	python3 - "$pf_conf" <<'EOF'
import os, sys
want = ("MAIL_CONFIG=" + sys.argv[1]).encode()
for d in os.listdir("/proc"):
    if d.isdigit():
        try:
            with open("/proc/%s/environ" % d, "rb") as f:
                if want in f.read().split(b"\0"):
                    print(d)
        except OSError:
            pass
EOF
}

# pf_stop - stop the private instance; kill what is left after 10 s
pf_stop() {
	"$POSTFIX" -c "$pf_conf" stop >/dev/null 2>&1 || true
	i=0
	while [ -n "$(pf_pids)" ] && [ $i -lt 50 ]; do
		sleep 0.2
		i=$((i + 1))
	done
	left=$(pf_pids)
	if [ -n "$left" ]; then
		echo "$BENCH.sh: killing leftover Postfix processes: $left" >&2
		# shellcheck disable=SC2086
		kill -KILL $left 2>/dev/null || true
	fi
	pf_conf=
	pf_master=
}
