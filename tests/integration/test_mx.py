"""
MX routing end to end (issue 4): waymarkd with `dns` = dnsmasq on loopback,
no smarthost, `smtp_port` = the one port every next hop listens on, each
next hop on its own 127.0.0.x address.  Cases: MX preference, fallback to
the second MX (connection refused, 4xx greeting), implicit MX, null MX
(5.1.10 + notice), NXDOMAIN (5.1.2), MX pointing at ourselves (5.4.6), a
temporary DNS failure (deferred 4.4.3), expiry after queue_lifetime
(4.4.7 + notice naming the remote host and its reply).
"""

import asyncio
import email
import email.policy
import threading

import pytest

from aiosmtpd.controller import Controller

from conftest import (common_port, free_port, make_message, queued_qid,
                      wait_for)
from dnsfix import dns_factory  # noqa: F401  (fixture)

FINAL = ("delivered", "relayed", "failed")

MX = [
    ("d.test", "mx2.d.test", 20),          # out of order on purpose
    ("d.test", "mx1.d.test", 10),
    ("null.test", ".", 0),
    ("self-best.test", "mx.test", 10),
    ("self-best.test", "mx2.d.test", 20),
]
HOSTS = [
    ("mx1.d.test", "127.0.0.2"),
    ("mx2.d.test", "127.0.0.3"),
    ("a.test", "127.0.0.4"),
    ("mx.test", "127.0.0.1"),
]
ADDRS = ("127.0.0.2", "127.0.0.3", "127.0.0.4")


class Sink:
    def __init__(self, rcpt_reply=None):
        self.rcpt_reply = rcpt_reply
        self.messages = []
        self.lock = threading.Lock()

    async def handle_RCPT(self, server, session, envelope, address, options):
        if self.rcpt_reply:
            return self.rcpt_reply
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            self.messages.append((envelope.mail_from, list(envelope.rcpt_tos),
                                  envelope.original_content))
        return "250 2.0.0 Ok: sunk"


class GreetServer:
    """Raw asyncio server that answers the greeting with a fixed reply."""

    def __init__(self, host, port, greeting):
        self.host, self.port, self.greeting = host, port, greeting
        self.conns = 0
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()
        assert self.ready.wait(10)

    def _run(self):
        asyncio.set_event_loop(self.loop)
        self.server = self.loop.run_until_complete(asyncio.start_server(
            self.handle, self.host, self.port))
        self.ready.set()
        self.loop.run_forever()

    async def handle(self, reader, writer):
        self.conns += 1
        writer.write(self.greeting.encode() + b"\r\n")
        try:
            await writer.drain()
            # accept QUIT politely, close on anything / at EOF
            line = await asyncio.wait_for(reader.readline(), 10)
            if line.strip().upper() == b"QUIT":
                writer.write(b"221 bye\r\n")
                await writer.drain()
        except Exception:
            pass
        finally:
            writer.close()

    def stop(self):
        def _stop():
            self.server.close()
            self.loop.stop()
        self.loop.call_soon_threadsafe(_stop)
        self.t.join(5)


@pytest.fixture
def hops():
    """hops.sink(addr, handler) / hops.greet(addr, reply) on one shared port."""
    class Hops:
        def __init__(self):
            self.port = common_port(ADDRS)
            self.made = []

        def sink(self, addr, handler):
            c = Controller(handler, hostname=addr, port=self.port)
            c.start()
            self.made.append(c)
            return handler

        def greet(self, addr, reply):
            g = GreetServer(addr, self.port, reply)
            self.made.append(g)
            return g
    h = Hops()
    yield h
    for c in h.made:
        c.stop()


@pytest.fixture
def dns(dns_factory):  # noqa: F811
    return dns_factory(mx=MX, hosts=HOSTS)


def mx_config(dns_server, port, **extra):
    cfg = {"dns": dns_server, "smtp_port": str(port),
           "retry_schedule": "1h"}
    cfg.update(extra)
    return cfg


def submit(d, rcpts, sender="sender@example.com", content=None):
    content = content or make_message(to=rcpts[0], sender=sender)
    with d.connect() as c:
        c.ehlo()
        r = c.mail_transaction(sender, rcpts, content)
    return queued_qid(r), content


def queue_rcpt(d, qid, addr):
    """(status, recipient object) from `waymark queue --json`, or None."""
    for m in d.queue_json():
        if m["queue_id"] == qid:
            for r in m["recipients"]:
                if r["address"] == addr:
                    return r
    return None


def show_rcpt(d, qid, addr):
    p = d.cli("show", qid, "--json")
    if p.returncode != 0:
        return None
    import json
    for r in json.loads(p.out)["recipients"]:
        if r["address"] == addr:
            return r
    return None


def wait_status(d, qid, addr, statuses, timeout=30):
    def ok():
        r = show_rcpt(d, qid, addr)
        return r if r and r["status"] in statuses else None
    return wait_for(ok, timeout=timeout, interval=0.1,
                    what="%s of %s in %s" % (addr, qid, statuses))


def parse_notice(data):
    assert data.startswith(b"Return-Path: <>\n"), data[:200]
    return email.message_from_bytes(data, policy=email.policy.default)


def notice_text(n):
    """The whole notice as text: decoded text parts and the raw report."""
    parts = [n.as_string()]
    for p in n.walk():
        if p.get_content_type().startswith("text/"):
            parts.append(p.get_content())
    return "\n".join(parts)


# ------------------------------------------------------------------ tests

def test_mx_preference(daemon_factory, dns, hops):
    s1 = hops.sink("127.0.0.2", Sink())
    s2 = hops.sink("127.0.0.3", Sink())
    d = daemon_factory(mx_config(dns.server, hops.port))
    qid, content = submit(d, ["u@d.test", "v@D.test"])
    r = wait_status(d, qid, "u@d.test", FINAL)
    assert r["status"] == "relayed", r
    assert "127.0.0.2" in r["remote_mta"], r
    assert "mx1.d.test" in r["remote_mta"], r
    assert len(s1.messages) == 1, s1.messages
    assert sorted(s1.messages[0][1]) == ["u@d.test", "v@D.test"]
    assert s1.messages[0][2].endswith(content)
    assert s2.messages == []
    assert dns.queries("d.test")[:1] == ["MX"]


def test_fallback_second_mx_connection_refused(daemon_factory, dns, hops):
    s2 = hops.sink("127.0.0.3", Sink())     # nothing on 127.0.0.2
    d = daemon_factory(mx_config(dns.server, hops.port))
    qid, _ = submit(d, ["u@d.test"])
    r = wait_status(d, qid, "u@d.test", FINAL)
    assert r["status"] == "relayed", r
    assert "127.0.0.3" in r["remote_mta"], r
    assert len(s2.messages) == 1


def test_fallback_second_mx_on_4xx_greeting(daemon_factory, dns, hops):
    g = hops.greet("127.0.0.2", "421 4.3.2 mx1 busy, try later")
    s2 = hops.sink("127.0.0.3", Sink())
    d = daemon_factory(mx_config(dns.server, hops.port))
    qid, _ = submit(d, ["u@d.test"])
    r = wait_status(d, qid, "u@d.test", FINAL)
    assert r["status"] == "relayed", r
    assert "127.0.0.3" in r["remote_mta"], r
    assert g.conns >= 1
    assert len(s2.messages) == 1


def test_all_mx_4xx_defers_with_last_reply(daemon_factory, dns, hops):
    hops.greet("127.0.0.2", "421 4.3.2 mx1 busy")
    hops.greet("127.0.0.3", "450 4.3.2 mx2 busy")
    d = daemon_factory(mx_config(dns.server, hops.port))
    qid, _ = submit(d, ["u@d.test"])
    r = wait_status(d, qid, "u@d.test", ("deferred",) + FINAL)
    assert r["status"] == "deferred", r
    assert r["last_reply"]["code"] in (421, 450), r


def test_implicit_mx(daemon_factory, dns, hops):
    s = hops.sink("127.0.0.4", Sink())
    d = daemon_factory(mx_config(dns.server, hops.port))
    qid, _ = submit(d, ["u@a.test"])
    r = wait_status(d, qid, "u@a.test", FINAL)
    assert r["status"] == "relayed", r
    assert "127.0.0.4" in r["remote_mta"], r
    assert len(s.messages) == 1
    q = dns.queries("a.test")
    assert q[0] == "MX" and "A" in q, q


def test_null_mx_fails_with_notice(daemon_factory, dns, hops):
    d = daemon_factory(mx_config(dns.server, hops.port))
    sender = "someone@localhost"
    qid, _ = submit(d, ["u@null.test"], sender=sender)
    r = wait_status(d, qid, "u@null.test", FINAL)
    assert r["status"] == "failed", r
    assert r["last_reply"]["enhanced"] == "5.1.10", r
    assert r["last_reply"]["code"] == 556, r
    mails = d.wait_mails(sender, 1, timeout=30)
    n = parse_notice(mails[0])
    assert n["To"].addresses[0].addr_spec == sender
    text = notice_text(n)
    assert "u@null.test" in text, text
    assert "5.1.10" in text, text


def test_nxdomain_fails(daemon_factory, dns, hops):
    d = daemon_factory(mx_config(dns.server, hops.port))
    qid, _ = submit(d, ["u@nowhere.test"])
    r = wait_status(d, qid, "u@nowhere.test", FINAL)
    assert r["status"] == "failed", r
    assert r["last_reply"]["enhanced"] == "5.1.2", r
    assert r["last_reply"]["code"] // 100 == 5, r


def test_mx_pointing_at_ourselves(daemon_factory, dns, hops):
    s2 = hops.sink("127.0.0.3", Sink())     # the less preferred MX
    d = daemon_factory(mx_config(dns.server, hops.port))   # hostname mx.test
    qid, _ = submit(d, ["u@self-best.test"])
    r = wait_status(d, qid, "u@self-best.test", FINAL)
    assert r["status"] == "failed", r
    assert r["last_reply"]["enhanced"] == "5.4.6", r
    assert s2.messages == []


def test_temporary_dns_failure_defers(daemon_factory, hops):
    dead = "127.0.0.1:%d" % free_port()      # nothing answers there
    d = daemon_factory(mx_config(dead, hops.port))
    qid, _ = submit(d, ["u@d.test"])

    def deferred():
        r = queue_rcpt(d, qid, "u@d.test")
        return r if r and r["status"] == "deferred" else None
    r = wait_for(deferred, timeout=40, interval=0.2, what="a DNS deferral")
    assert r["last_reply"]["enhanced"] == "4.4.3", r
    assert r["last_reply"]["code"] // 100 == 4, r


def test_expiry_after_queue_lifetime_with_notice(daemon_factory, dns, hops):
    hops.sink("127.0.0.2", Sink(rcpt_reply="451 4.3.0 greylisted, come back"))
    hops.sink("127.0.0.3", Sink(rcpt_reply="451 4.3.0 greylisted, come back"))
    d = daemon_factory(mx_config(dns.server, hops.port, queue_lifetime="3s",
                                 retry_schedule="1s"))
    sender = "someone@localhost"
    qid, _ = submit(d, ["u@d.test"], sender=sender)
    mails = d.wait_mails(sender, 1, timeout=40)
    r = wait_status(d, qid, "u@d.test", FINAL, timeout=20)
    assert r["status"] == "failed", r
    n = parse_notice(mails[0])
    text = notice_text(n)
    assert "u@d.test" in text, text
    assert "4.4.7" in text, text
    assert "greylisted, come back" in text, text
    assert "mx1.d.test" in text or "127.0.0.2" in text, text
    ev = d.show_json(qid)["events"]
    details = " ".join(e["detail"] for e in ev)
    assert "4.4.7" in details, ev
