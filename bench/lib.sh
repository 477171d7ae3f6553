# lib.sh - what bench/http.sh and bench/track.sh share; sourced (not run)
# with BENCH set to the script's name ("http", "track"):
#   die MSG...   "BENCH.sh: MSG" on stderr, exit 1
#   work_dir     DIR made and kept when given (-d), else a temp dir
#                removed at exit unless KEEP=1; waymarkd ($wm_pid, when
#                set) stopped at exit
#   free_port    a free TCP port on 127.0.0.1

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
	if [ "$keep" = 1 ]; then
		echo "kept $DIR" >&2
	else
		rm -rf "$DIR"
	fi
}

free_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
