#!/usr/bin/python3
"""noop-milter.py - a python3-milter filter that lets everything through,
for the relay benchmark's milter cost (bench/README.md):

    /usr/bin/python3 bench/noop-milter.py inet:PORT@127.0.0.1

then bench/relay.sh -x 'milters = inet:127.0.0.1:PORT'.  It asks for every
stage (Milter.Base skips the callbacks a filter does not define) and
answers each CONTINUE, so the whole message, body included, goes to it.
"""

import sys

import Milter


class Noop(Milter.Base):
    """CONTINUE at every stage."""

    def connect(self, hostname, family, hostaddr):
        return Milter.CONTINUE

    def hello(self, hostname):
        return Milter.CONTINUE

    def envfrom(self, f, *params):
        return Milter.CONTINUE

    def envrcpt(self, to, *params):
        return Milter.CONTINUE

    def header(self, name, value):
        return Milter.CONTINUE

    def eoh(self):
        return Milter.CONTINUE

    def body(self, chunk):
        return Milter.CONTINUE

    def eom(self):
        return Milter.CONTINUE


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: noop-milter.py inet:PORT@127.0.0.1")
    Milter.factory = Noop
    Milter.runmilter("noop", sys.argv[1], timeout=60)


if __name__ == "__main__":
    main()
