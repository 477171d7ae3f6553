#!/bin/sh
# quickstart.sh - install the dependencies, build and install Waymark
# (prefix /usr/local), then run waymarkd in the foreground from the repository
# directory with its embedded default configuration: SMTP on 127.0.0.1:2525,
# spool ./var/spool, mailboxes ./var/mail, control socket ./var/control.sock.
# The build is out of tree (build/), so scripts/test.sh can reuse the tree.
set -eu
cd "$(dirname "$0")/.."
root=$(pwd)

sh scripts/deps.sh
autoreconf -fi
mkdir -p build
cd build
../configure
make -j2
make install
cd "$root"
echo "quickstart: starting /usr/local/sbin/waymarkd in $root (Ctrl-C stops it)"
exec /usr/local/sbin/waymarkd
