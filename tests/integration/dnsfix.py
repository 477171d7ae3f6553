"""
dnsmasq as a test DNS server on a free 127.0.0.1 port (UDP and TCP).

    from dnsfix import dns_factory        # makes the fixture visible to pytest

    def test_x(dns_factory):
        dns = dns_factory(
            mx=[("d.test", "mx1.d.test", 10), ("d.test", "mx2.d.test", 20),
                ("null.test", ".", 0)],                    # RFC 7505 null MX
            hosts=[("mx1.d.test", "127.0.0.2"),
                   ("mx2.d.test", "127.0.0.3", "::1")],    # A and AAAA
            srv=[("_mtqp._tcp.mx.b.test", "mtqp.b.test", 21038, 10, 5)])
                                        # SRV: name, target, port, prio, weight
        config["dns"] = dns.server                         # "127.0.0.1:PORT"

Every name under test. that is not configured gets NXDOMAIN (--local=/test/);
a configured name without the asked type gets NODATA.  Nothing is forwarded
and neither /etc/hosts nor /etc/dnsmasq.conf is read.  dns.log_text() is the
query log (--log-queries=extra); dns.queries(name) lists the query types asked
for name.  dnsmasq is stopped at teardown.  Also: dns_query(port, name, qtype)
-> (rcode, ancount), a tiny UDP client.
"""

import os
import random
import re
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time

import pytest

DNSMASQ = shutil.which("dnsmasq") or "/usr/sbin/dnsmasq"
QTYPES = {"A": 1, "NS": 2, "CNAME": 5, "SOA": 6, "MX": 15, "TXT": 16,
          "AAAA": 28, "SRV": 33}
START_TIMEOUT = 10.0


def dns_query(port, name, qtype="A", host="127.0.0.1", timeout=0.5):
    """One UDP query; (rcode, ancount), or None when nothing answered."""
    qid = random.randrange(0x10000)
    msg = struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    for label in name.rstrip(".").split("."):
        b = label.encode("ascii")
        msg += struct.pack("!B", len(b)) + b
    msg += b"\0" + struct.pack("!HH", QTYPES[qtype], 1)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.settimeout(timeout)
        s.connect((host, port))     # connected: port unreachable is reported
        try:
            s.send(msg)
        except ConnectionRefusedError:
            return None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                data = s.recv(4096)
            except (socket.timeout, ConnectionRefusedError):
                return None
            if len(data) >= 12:
                rid, flags, _, an, _, _ = struct.unpack("!HHHHHH", data[:12])
                if rid == qid and flags & 0x8000:
                    return flags & 0xF, an
        return None
    finally:
        s.close()


def free_udp_tcp_port():
    """A port free for both UDP and TCP on 127.0.0.1."""
    for _ in range(100):
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        u.bind(("127.0.0.1", 0))
        port = u.getsockname()[1]
        t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            t.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
        finally:
            t.close()
            u.close()
    pytest.fail("no free UDP+TCP port on 127.0.0.1")


class DnsServer:
    def __init__(self, mx=(), hosts=(), extra=(), srv=()):
        self.dir = tempfile.mkdtemp(prefix="wm-dns-")
        self.logfile = os.path.join(self.dir, "dnsmasq.log")
        self.errfile = os.path.join(self.dir, "dnsmasq.err")
        self.mx = list(mx)
        self.hosts = list(hosts)
        self.srv = list(srv)
        self.extra = list(extra)
        self.proc = None
        self.port = None

    @property
    def server(self):
        """The value for the `dns` configuration key."""
        return "127.0.0.1:%d" % self.port

    def args(self):
        a = [DNSMASQ, "--no-daemon", "--conf-file=/dev/null", "--pid-file=",
             "--port=%d" % self.port, "--listen-address=127.0.0.1",
             "--bind-interfaces", "--no-resolv", "--no-hosts",
             "--local=/test/", "--log-queries=extra",
             "--log-facility=" + self.logfile]
        if os.geteuid() == 0:
            a.append("--user=root")
        for dom, target, pref in self.mx:
            a.append("--mx-host=%s,%s,%d" % (dom, target, pref))
        for rec in self.hosts:
            a.append("--host-record=" + ",".join(rec))
        for name, target, port, prio, weight in self.srv:
            a.append("--srv-host=%s,%s,%d,%d,%d" % (name, target, port, prio,
                                                    weight))
        return a + self.extra

    def start(self):
        for _ in range(5):
            self.port = free_udp_tcp_port()
            with open(self.errfile, "wb") as err:
                self.proc = subprocess.Popen(self.args(),
                                             stdin=subprocess.DEVNULL,
                                             stdout=err, stderr=err)
            deadline = time.monotonic() + START_TIMEOUT
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    break
                if dns_query(self.port, "ready.probe.test", "A") is not None:
                    return self
                time.sleep(0.05)
            err = self.err_text()
            self.stop()
            if "in use" not in err:
                pytest.fail("dnsmasq did not start: %s" % err.strip())
        pytest.fail("dnsmasq: no usable port")

    def err_text(self):
        try:
            with open(self.errfile, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def log_text(self):
        try:
            with open(self.logfile, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def queries(self, name):
        """Query types asked for name, in order ("MX", "A", "AAAA" ...)."""
        pat = re.compile(r"query\[(\w+)\] (\S+) from ")
        return [m.group(1) for m in pat.finditer(self.log_text())
                if m.group(2).rstrip(".").lower() == name.lower()]

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def dns_factory():
    """dns_factory(mx=[(domain, target, pref)], hosts=[(name, addr...)],
    extra=[dnsmasq args], srv=[(name, target, port, prio, weight)])
    -> a started DnsServer."""
    servers = []

    def make(mx=(), hosts=(), extra=(), srv=()):
        s = DnsServer(mx, hosts, extra, srv)
        servers.append(s)
        return s.start()

    yield make
    for s in servers:
        s.cleanup()
