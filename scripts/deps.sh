#!/bin/sh
# deps.sh - install what Waymark needs to build and test on Debian 12 (run as root),
# and create the system user `waymark` that waymarkd runs as by default.
# Idempotent: when every package is already installed, apt is not touched;
# an existing user is left as it is.
# Postfix is installed only for its test tools (smtp-source, smtp-sink);
# the system postfix is never left running.
# debhelper, dpkg-dev, lintian and fakeroot build and check the Debian
# package (debian/, tests/integration/test_package.py).
# opendkim, unbound, prometheus (for promtool) and clamav-milter are test
# peers only: a policy-rc.d keeps apt from starting their services (and
# freshclam from reaching the network); tests start their own copies on
# loopback ports.
set -eu

PKGS="build-essential autoconf automake pkg-config libssl-dev libc-ares-dev
libdb5.3-dev libevent-dev libjansson-dev libcmocka-dev libcrypt-dev python3 python3-pytest
python3-aiosmtpd swaks msmtp postfix dnsmasq-base openssl strace procps
chromium chromium-driver python3-selenium db5.3-util
debhelper dpkg-dev lintian fakeroot clang libclang-rt-14-dev
libidn2-dev python3-dkim python3-milter opendkim opendkim-tools unbound
ldnsutils prometheus clamav-milter zlib1g-dev libunistring-dev"

missing=""
for p in $PKGS; do
	st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
	case "$st" in
	"install ok installed") ;;
	*) missing="$missing $p" ;;
	esac
done

if [ -n "$missing" ]; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "deps.sh: missing packages:$missing (run as root to install them)" >&2
		exit 1
	fi
	echo "deps.sh: installing$missing"
	echo "postfix postfix/main_mailer_type select No configuration" |
	    debconf-set-selections
	apt-get update
	prc=/usr/sbin/policy-rc.d
	own_prc=0
	if [ ! -e "$prc" ]; then
		printf '#!/bin/sh\nexit 101\n' > "$prc"
		chmod 755 "$prc"
		own_prc=1
	fi
	rc=0
	DEBIAN_FRONTEND=noninteractive apt-get install -y $missing || rc=$?
	if [ "$own_prc" -eq 1 ]; then
		rm -f "$prc"
	fi
	if [ "$rc" -ne 0 ]; then
		exit "$rc"
	fi
fi

# The daemon's own unprivileged user (`user = waymark`, the default):
# a system account without a home or a login shell.
if ! getent passwd waymark >/dev/null 2>&1; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "deps.sh: the system user waymark is missing (run as root to create it)" >&2
		exit 1
	fi
	echo "deps.sh: creating the system user waymark"
	useradd --system --user-group --home-dir /nonexistent --no-create-home \
	    --shell /usr/sbin/nologin waymark
fi

# Never leave a system postfix running: it would hold port 25 and is not ours.
if command -v postfix >/dev/null 2>&1 && postfix status >/dev/null 2>&1; then
	postfix stop >/dev/null 2>&1 || true
fi
exit 0
