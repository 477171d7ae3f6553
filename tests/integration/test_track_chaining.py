"""
MTQP chaining (`mtqp_chaining = yes`) with next hops that answer late,
out of order, or after the requester has gone: a regression test of a use
after free in track/trk_answer.c (chained query slots moved while the
client's callbacks held their addresses; a session closing while next-hop
queries were in flight).  Black box, under ASan in the sanitizer build:
any use after free aborts waymarkd, and the fixture's teardown fails on a
sanitizer report or an exit status other than 0.

Topology (loopback; dnsmasq for MX, A and `_mtqp._tcp` SRV records):

    SMTP client --ENVID, MTRK--> A  mx.a.test 127.0.0.2 (mtqp_chaining = yes)
        r1@d1.test -> mx1.test 127.0.0.6 \\
        r2@d2.test -> mx2.test 127.0.0.7  } scripted SMTP hops advertising
        r3@d3.test -> mx3.test 127.0.0.8 /  DSN and MTRK: A's recipients
                                            are `transferred` to them
    _mtqp._tcp.mxN.test SRV -> mtqpN.test (127.0.0.1) : scripted MTQP
    servers, each answering TRACK after a delay set by the test with a
    message/tracking-status part of its own (Reporting-MTA mxN.test).

Cases (the next hops are asked in the order mx1, mx2, mx3, all at once):
mx1 answers after 0 s, mx3 after 1 s, mx2 after 4 s and the requester
resets its connection at 2.5 s, with mx2 still in flight: waymarkd cancels
that query, keeps running (mx2's answer comes after the session is gone)
and answers a new TRACK with every part.  Before the fix, mx1's answer
moved mx3's slot, mx3's answer then left its own finished query in a slot
and mx2's out: the close cancelled the freed query, and mx2's answer
reached a freed TRACK.  Then all three answering out of order (mx1, mx3,
mx2): the answer holds A's part and all three next hops' parts.
"""

import base64
import hashlib
import json
import os
import re
import socket
import struct
import threading
import time
import uuid

import pytest

from conftest import common_port, make_message, queued_qid, wait_for
from dnsfix import dns_factory  # noqa: F401  (fixture)
from mtqpclient import MTQPClient
import trackparse

A_ADDR = "127.0.0.2"
HOP_ADDRS = ("127.0.0.6", "127.0.0.7", "127.0.0.8")
HOPS = ("mx1.test", "mx2.test", "mx3.test")
RCPTS = ("r1@d1.test", "r2@d2.test", "r3@d3.test")
IO_TIMEOUT = 10.0
ARRIVAL = "Tue, 14 Nov 2023 22:13:20 +0000"


def xtext(s):
    return "".join(c if 33 <= ord(c) <= 126 and c not in "+=" else
                   "+%02X" % ord(c) for c in s)


class Lines:
    """CRLF lines from a blocking socket, with a timeout."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def readline(self):
        while b"\r\n" not in self.buf:
            d = self.sock.recv(4096)
            if not d:
                return None
            self.buf += d
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line


class ThreadServer:
    """A listening socket on (addr, port) served by one thread per
    connection (serve(sock) in the subclass)."""

    def __init__(self, addr, port=0):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((addr, port))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(c,),
                             daemon=True).start()

    def _serve(self, c):
        try:
            c.settimeout(IO_TIMEOUT)
            self.serve(c)
        except OSError:
            pass
        finally:
            c.close()

    def close(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        self.thread.join(IO_TIMEOUT)


class SmtpHop(ThreadServer):
    """A next hop advertising DSN and MTRK; accepts every message and
    records each MAIL line."""

    def __init__(self, addr, port, name):
        self.name = name
        self.mails = []
        ThreadServer.__init__(self, addr, port)

    def serve(self, c):
        r = Lines(c)
        c.sendall(b"220 %s ESMTP\r\n" % self.name.encode())
        while True:
            line = r.readline()
            if line is None:
                return
            cmd = line.upper()
            if cmd.startswith(b"EHLO"):
                c.sendall(b"250-%s\r\n250-DSN\r\n250-MTRK\r\n250 8BITMIME"
                          b"\r\n" % self.name.encode())
            elif cmd.startswith(b"MAIL"):
                with self.lock:
                    self.mails.append(line.decode("ascii", "replace"))
                c.sendall(b"250 2.1.0 ok\r\n")
            elif cmd == b"DATA":
                c.sendall(b"354 go ahead\r\n")
                while True:
                    l = r.readline()
                    if l is None:
                        return
                    if l == b".":
                        break
                c.sendall(b"250 2.0.0 ok: queued\r\n")
            elif cmd == b"QUIT":
                c.sendall(b"221 2.0.0 bye\r\n")
                return
            else:
                c.sendall(b"250 2.0.0 ok\r\n")


class SlowMtqp(ThreadServer):
    """An MTQP server for next hop `host`: TRACK is answered, after the
    next delay of `delays` (then at once), with one part reporting `rcpt`
    delivered.  tracks: TRACKs read; woke: delays over (the answer is
    being sent, or the requester has gone); answered: answers written."""

    def __init__(self, host, rcpt):
        self.host = host
        self.rcpt = rcpt
        self.delays = []
        self.tracks = 0
        self.woke = 0
        self.answered = 0
        ThreadServer.__init__(self, "127.0.0.1")

    def body(self, envid):
        part = "\r\n".join([
            "Content-Type: message/tracking-status", "",
            "Original-Envelope-Id: " + envid,
            "Reporting-MTA: dns; " + self.host, "Arrival-Date: " + ARRIVAL,
            "", "Original-Recipient: rfc822; " + self.rcpt,
            "Final-Recipient: rfc822; " + self.rcpt, "Action: delivered",
            "Status: 2.5.0"]) + "\r\n"
        return ('Content-Type: multipart/related; boundary="hop"; '
                'type="message/tracking-status"\r\n\r\n'
                "--hop\r\n%s\r\n--hop--\r\n" % part)

    def serve(self, c):
        r = Lines(c)
        c.sendall(b"+OK/MTQP %s scripted MTQP server ready\r\n"
                  % self.host.encode())
        while True:
            line = r.readline()
            if line is None:
                return
            args = line.decode("ascii", "replace").split()
            if args and args[0].upper() == "TRACK" and len(args) == 3:
                with self.lock:
                    self.tracks += 1
                    delay = self.delays.pop(0) if self.delays else 0
                time.sleep(delay)
                with self.lock:
                    self.woke += 1
                envid = args[1]     # xtext of a plain ENVID: as it is
                out = ["+OK+ Tracking information follows"]
                for l in self.body(envid).split("\r\n")[:-1]:
                    out.append("." + l if l.startswith(".") else l)
                out.append(".")
                c.sendall(("\r\n".join(out) + "\r\n").encode())
                with self.lock:
                    self.answered += 1
            elif args and args[0].upper() == "QUIT":
                c.sendall(b"+OK Bye\r\n")
                return
            else:
                c.sendall(b"-BAD Unrecognized command\r\n")


@pytest.fixture
def chain(daemon_factory, dns_factory):  # noqa: F811
    """A with a tracked message transferred to the three next hops;
    returns (a, [SlowMtqp], envid, secret)."""
    made = []
    port = common_port((A_ADDR,) + HOP_ADDRS)
    mport = common_port((A_ADDR,), exclude=(port,))
    for addr, host in zip(HOP_ADDRS, HOPS):
        made.append(SmtpHop(addr, port, host))
    mtqp = [SlowMtqp(h, r) for h, r in zip(HOPS, RCPTS)]
    made += mtqp
    dns = dns_factory(
        mx=[("d%d.test" % i, h, 10) for i, h in enumerate(HOPS, 1)],
        hosts=[(h, a) for h, a in zip(HOPS, HOP_ADDRS)] +
              [("mtqp%d.test" % i, "127.0.0.1") for i in (1, 2, 3)],
        srv=[("_mtqp._tcp." + h, "mtqp%d.test" % i, m.port, 0, 0)
             for i, (h, m) in enumerate(zip(HOPS, mtqp), 1)])
    a = daemon_factory({"hostname": "mx.a.test", "local_domains": "a.test",
                        "dns": dns.server, "smtp_port": str(port),
                        "retry_schedule": "1s",
                        "mtqp": "%s:%d" % (A_ADDR, mport),
                        "mtqp_chaining": "yes"}, addr=A_ADDR, port=port)
    a.mtqp_port = mport

    # a tracked message: ENVID and MTRK=base64(SHA-1(A)) by SMTP
    secret_a = os.urandom(20)
    secret = base64.b64encode(secret_a).decode()
    cert = base64.b64encode(hashlib.sha1(secret_a).digest()).decode() \
        .rstrip("=")
    envid = "t%s@client.test" % uuid.uuid4().hex[:16]
    with a.connect() as c:
        c.ehlo()
        qid = queued_qid(c.mail_transaction(
            "s@client.test", list(RCPTS),
            make_message(to=RCPTS[0], sender="s@client.test"),
            params="ENVID=%s MTRK=%s" % (xtext(envid), cert)))

    def transferred():
        p = a.cli("show", qid, "--json")
        if p.returncode != 0:
            return None
        m = json.loads(p.out)
        return m if all(r["status"] in ("relayed", "transferred") and
                        r["next_hop_mtrk"] is True
                        for r in m["recipients"]) else None
    wait_for(transferred, timeout=30, interval=0.1,
             what="the three recipients transferred")
    yield a, mtqp, envid, secret
    for s in made:
        s.close()


def reporting_mtas(r):
    assert r.line == "+OK+ Tracking information follows", r
    return [trackparse.typed(p.message["reporting-mta"])[1]
            for p in trackparse.parse(r.body)]


def test_session_closed_while_next_hops_answer(chain):
    """mx1 answers after 0 s, mx3 after 1 s, mx2 after 4 s; the requester
    resets its connection at 2.5 s.  mx2's answer comes after the session
    is gone: waymarkd keeps running and answers the next TRACK with every
    part."""
    a, mtqp, envid, secret = chain
    for m, delay in zip(mtqp, (0, 4, 1)):
        m.delays = [delay]
    c = MTQPClient(a.mtqp_port, host=A_ADDR)
    c.send(("TRACK %s %s\r\n" % (xtext(envid), secret)).encode())
    wait_for(lambda: all(m.tracks == 1 for m in mtqp), timeout=10,
             what="every next hop asked")
    time.sleep(2.5)
    assert mtqp[1].answered == 0          # mx2 still in flight
    # an abortive close (RST): the session ends at once, while waymarkd is
    # making the answer (a FIN would wait for the answer to be sent)
    c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                      struct.pack("ii", 1, 0))
    c.close()
    wait_for(lambda: re.search(r"mtqp session=\S+ lost connection in state "
                               r"ANSWER", a.log_text()), timeout=10,
             what="the session's end while chaining")
    # mx2 answers after the session is gone (to the connection waymarkd
    # should have closed with the query)
    wait_for(lambda: mtqp[1].woke == 1, timeout=10,
             what="mx2's answer")
    time.sleep(0.5)
    assert a.running, a.log_text()[-3000:]
    assert not a.sanitizer_report(), a.log_text()[-5000:]
    with MTQPClient(a.mtqp_port, host=A_ADDR) as c2:
        r = c2.track(xtext(envid), secret)
        assert sorted(reporting_mtas(r)) == ["mx.a.test"] + list(HOPS), r
        assert c2.cmd("QUIT").raw == b"+OK Bye\r\n"
    assert a.running, a.log_text()[-3000:]


def test_next_hops_answer_out_of_order(chain):
    """mx1, mx3, then mx2 answer: all three parts follow A's own."""
    a, mtqp, envid, secret = chain
    for m, delay in zip(mtqp, (0, 1.2, 0.6)):
        m.delays = [delay]
    with MTQPClient(a.mtqp_port, host=A_ADDR) as c:
        r = c.track(xtext(envid), secret)
        got = reporting_mtas(r)
        assert got[0] == "mx.a.test" and sorted(got[1:]) == list(HOPS), got
        assert c.cmd("QUIT").raw == b"+OK Bye\r\n"
    assert all(m.answered == 1 for m in mtqp)
    log = a.log_text()
    for h in HOPS:
        assert re.search(r"chain host=%s server=127\.0\.0\.1:\d+ tls=no "
                         r"result=ok parts=1" % re.escape(h), log), \
            log[-3000:]
    assert a.running and not a.sanitizer_report(), log[-5000:]
