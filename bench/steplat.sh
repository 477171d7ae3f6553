#!/bin/sh
# steplat.sh - where one SMTP transaction's time goes, step by step:
# bench/steplat (one transaction per connection, one after the other)
# against Postfix's smtp-sink alone, then against waymarkd relaying to that
# sink (smarthost, the shipped defaults plus relay_from).
#
# Usage: bench/steplat.sh [-n N] [-l SIZE] [-d DIR]
#        (defaults 2000 transactions of 4096 octets)
# Output: for each, the mean time of each step (connect + 220, EHLO,
# MAIL, RCPT, DATA, content + 250, QUIT + 221, close) and the total;
# waymarkd's excess over the sink at each step is its own work, and at
# "content+250" mostly the commit (the group commit's sync of one body
# and the log when nothing else is waiting).
# Environment: WAYMARKD (see bench/lib.sh), STEPLAT (default the build
# tree's build/bench/steplat), KEEP=1 keeps the temp dir.
# Loopback only; run as root (smtp-sink runs as nobody, waymarkd drops to
# `user`).
set -eu

N=2000
SIZE=4096
DIR=
usage() {
	echo "usage: $0 [-n N] [-l SIZE] [-d DIR]" >&2
	exit 2
}
while getopts n:l:d:h opt; do
	case $opt in
	n) N=$OPTARG ;;
	l) SIZE=$OPTARG ;;
	d) DIR=$OPTARG ;;
	*) usage ;;
	esac
done
shift $((OPTIND - 1))
[ $# -eq 0 ] || usage
for v in "$N" "$SIZE"; do
	case $v in '' | *[!0-9]*) usage ;; esac
done

top=$(cd "$(dirname "$0")/.." && pwd)
BENCH=steplat
. "$top/bench/lib.sh"
STEPLAT=${STEPLAT:-$top/build/bench/steplat}
[ -x "$STEPLAT" ] || die "no steplat at $STEPLAT (make in build/)"
[ -x "$WAYMARKD" ] || die "no waymarkd at $WAYMARKD"
command -v smtp-sink >/dev/null || die "smtp-sink (Debian postfix) is missing"
[ "$(id -u)" = 0 ] || die "run as root"
work_dir

sink_port=$(free_port)
smtp-sink -u nobody "127.0.0.1:$sink_port" 1024 > "$DIR/sink.out" 2>&1 &
sink_pid=$!
trap 'kill "$sink_pid" 2>/dev/null || true; cleanup' EXIT
wait_smtp "$sink_port"
echo "== smtp-sink alone ($N x $SIZE octets)"
"$STEPLAT" -p "$sink_port" -n "$N" -l "$SIZE"

port=$(free_port)
cat > "$DIR/waymark.conf" <<EOC
listen = 127.0.0.1:$port
hostname = waymark.bench.test
spool = $DIR/spool
mailbox_root = $DIR/mail
control = $DIR/control.sock
local_domains = localhost
relay_from = 127.0.0.0/8
smarthost = [127.0.0.1]:$sink_port
min_free_space = 1m
EOC
"$WAYMARKD" -f "$DIR/waymark.conf" > "$DIR/waymarkd.log" 2>&1 &
wm_pid=$!
wait_smtp "$port" || { cat "$DIR/waymarkd.log" >&2; exit 1; }
echo "== waymarkd ($WAYMARKD), relaying to the sink"
"$STEPLAT" -p "$port" -n "$N" -l "$SIZE"
