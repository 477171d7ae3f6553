"""
Remote delivery (issue 4): Waymark's SMTP client against real next hops on
loopback: aiosmtpd scripted sinks, raw asyncio servers where exact control
is needed, an aiosmtpd LMTP server, Postfix's smtp-sink.  Routing is
`smarthost = [127.0.0.1]:PORT` so no DNS is needed (MX cases: test_dns.py).
"""

import asyncio
import json
import os
import pathlib
import shutil
import socket
import ssl
import tempfile
import subprocess
import threading
import time

import pytest

from aiosmtpd.controller import Controller
from aiosmtpd.lmtp import LMTP
from aiosmtpd.controller import UnixSocketController

from asyncserver import ThreadedServer
from conftest import free_port, make_message, queued_qid, wait_for

FINAL = ("delivered", "relayed", "failed")


# ------------------------------------------------------------------ sinks

class Sink:
    """aiosmtpd handler that records transactions; hooks script replies."""

    def __init__(self, rcpt_hook=None, data_hook=None):
        self.rcpt_hook = rcpt_hook
        self.data_hook = data_hook
        self.messages = []          # (mail_from, [rcpts], content bytes, session)
        self.lock = threading.Lock()
        self.ndata = 0

    async def handle_RCPT(self, server, session, envelope, address, options):
        if self.rcpt_hook:
            r = self.rcpt_hook(address, envelope)
            if r:
                return r
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            self.ndata += 1
            n = self.ndata
        if self.data_hook:
            r = self.data_hook(n, envelope)
            if r:
                return r
        with self.lock:
            self.messages.append((envelope.mail_from, list(envelope.rcpt_tos),
                                  envelope.original_content,
                                  bool(session.ssl)))
        return "250 2.0.0 Ok: sunk"


def start_sink(handler, tls=None, **kw):
    port = free_port()
    kwargs = dict(hostname="127.0.0.1", port=port, **kw)
    if tls is not None:
        kwargs["tls_context"] = tls
        kwargs["require_starttls"] = False
    c = Controller(handler, **kwargs)
    c.start()
    return c, port


class LMTPController(Controller):
    def factory(self):
        return LMTP(self.handler, hostname="lmtp.test")


@pytest.fixture
def sinks():
    made = []

    def make(handler, **kw):
        c, port = start_sink(handler, **kw)
        made.append(c)
        return port

    yield make
    for c in made:
        c.stop()


def relay_config(port, **extra):
    cfg = {"smarthost": "[127.0.0.1]:%d" % port, "retry_schedule": "1s"}
    cfg.update(extra)
    return cfg


def submit(d, rcpts, content=None, sender="sender@example.com"):
    content = content or make_message(to=rcpts[0])
    with d.connect() as c:
        c.ehlo()
        r = c.mail_transaction(sender, rcpts, content)
    c.close()
    return queued_qid(r), content


def msg_of(d, qid):
    """The message object (from memory or history) via `waymark show --json`."""
    p = d.cli("show", qid, "--json")
    if p.returncode != 0:
        return None
    return json.loads(p.out)


def wait_final(d, qid, timeout=30):
    def done():
        m = msg_of(d, qid)
        if m and all(r["status"] in FINAL for r in m["recipients"]):
            return m
        return None
    return wait_for(done, timeout=timeout, interval=0.1,
                    what="final status of %s" % qid)


def rcpt(m, addr):
    for r in m["recipients"]:
        if r["address"] == addr:
            return r
    raise KeyError(addr)


def split_trace(content):
    """(our leading Received fields, rest) of what a sink received."""
    fields = []
    rest = content
    while rest.startswith(b"Received:"):
        i = rest.index(b"\r\n")
        while rest[i + 2:i + 3] in (b" ", b"\t"):
            i = rest.index(b"\r\n", i + 2)
        fields.append(rest[:i])
        rest = rest[i + 2:]
    return fields, rest


# ------------------------------------------------------------------ tests

def test_smarthost_relay_byte_identical(daemon_factory, sinks):
    sink = Sink()
    port = sinks(sink)
    d = daemon_factory(relay_config(port))
    body = (b"line one\r\n.starts with a dot\r\n..two dots\r\n.\r\n"
            b"x" * 2000 + b"\r\n" + b"last line\r\n")
    content = make_message(to="a@remote.test", body=body)
    qid, _ = submit(d, ["a@remote.test", "b@Remote.Test"], content)
    m = wait_final(d, qid)
    for r in m["recipients"]:
        assert r["status"] == "relayed", m
        assert r["last_reply"]["code"] == 250, r
        assert r["last_reply"]["enhanced"] == "2.0.0", r
        assert "[127.0.0.1]" in (r["remote_mta"] or ""), r
    assert len(sink.messages) == 1, sink.messages     # one transaction
    frm, tos, got, _ = sink.messages[0]
    assert frm == "sender@example.com"
    assert sorted(tos) == ["a@remote.test", "b@Remote.Test"]
    fields, rest = split_trace(got)
    assert len(fields) == 1, fields
    assert fields[0].startswith(b"Received: from client.test"), fields
    assert b"id " + qid.encode() in fields[0]
    assert rest == content


def test_defer_then_success_on_retry(daemon_factory, sinks):
    sink = Sink(data_hook=lambda n, env: "451 4.3.0 try again later" if n == 1
                else None)
    port = sinks(sink)
    d = daemon_factory(relay_config(port))
    qid, content = submit(d, ["a@remote.test"])

    def deferred_seen():
        m = msg_of(d, qid)
        r = m and rcpt(m, "a@remote.test")
        return r and (r["status"] == "deferred" or sink.ndata >= 2)
    wait_for(deferred_seen, timeout=20, what="a deferral")
    m = wait_final(d, qid)
    r = rcpt(m, "a@remote.test")
    assert r["status"] == "relayed", m
    assert sink.ndata == 2
    ev = d.show_json(qid)["events"]
    details = " ".join(e["detail"] for e in ev)
    assert "4.3.0" in details and "try again later" in details, ev


def test_mixed_per_recipient_results(daemon_factory, sinks):
    def rcpt_hook(addr, env):
        if addr.startswith("bad"):
            return "550 5.1.1 no such user here"
        if addr.startswith("later"):
            return "450 4.2.1 mailbox busy"
        return None
    sink = Sink(rcpt_hook=rcpt_hook)
    port = sinks(sink)
    d = daemon_factory(relay_config(port, retry_schedule="1h"))
    qid, _ = submit(d, ["ok1@remote.test", "bad@remote.test",
                        "later@remote.test", "ok2@remote.test"])

    def settled():
        m = msg_of(d, qid)
        return m if m and all(r["status"] != "queued" for r in m["recipients"]) \
            and rcpt(m, "later@remote.test")["status"] == "deferred" else None
    m = wait_for(settled, timeout=30, what="results")
    assert rcpt(m, "ok1@remote.test")["status"] == "relayed"
    assert rcpt(m, "ok2@remote.test")["status"] == "relayed"
    bad = rcpt(m, "bad@remote.test")
    assert bad["status"] == "failed", bad
    assert bad["last_reply"]["code"] == 550
    assert bad["last_reply"]["enhanced"] == "5.1.1"
    assert "no such user" in bad["last_reply"]["text"]
    later = rcpt(m, "later@remote.test")
    assert later["last_reply"]["code"] == 450
    assert later["last_reply"]["enhanced"] == "4.2.1"
    mine = [x for x in sink.messages if x[0] == "sender@example.com"]
    assert len(mine) == 1, sink.messages    # not counting a failure notice
    assert sorted(mine[0][1]) == ["ok1@remote.test", "ok2@remote.test"]


def test_452_splits_transactions(daemon_factory, sinks):
    def rcpt_hook(addr, env):
        if len(env.rcpt_tos) >= 2:
            return "452 4.5.3 too many recipients"
        return None
    sink = Sink(rcpt_hook=rcpt_hook)
    port = sinks(sink)
    d = daemon_factory(relay_config(port))
    rcpts = ["r%d@remote.test" % i for i in range(5)]
    qid, _ = submit(d, rcpts)
    m = wait_final(d, qid)
    assert all(r["status"] == "relayed" for r in m["recipients"]), m
    got = [t for msg in sink.messages for t in msg[1]]
    assert sorted(got) == sorted(rcpts)
    assert [len(msg[1]) for msg in sink.messages] == [2, 2, 1]
    assert sink.ndata == 3


def make_cert(tmpdir, cn="127.0.0.1"):
    key = os.path.join(tmpdir, "key.pem")
    cert = os.path.join(tmpdir, "cert.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                    "-keyout", key, "-out", cert, "-days", "2",
                    "-subj", "/CN=" + cn], check=True, capture_output=True)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    return ctx


def test_starttls_used_when_offered(daemon_factory, sinks, tmp_path):
    ctx = make_cert(str(tmp_path))
    sink = Sink()
    port = sinks(sink, tls=ctx)
    d = daemon_factory(relay_config(port))
    qid, content = submit(d, ["a@remote.test"])
    m = wait_final(d, qid)
    r = rcpt(m, "a@remote.test")
    assert r["status"] == "relayed", m
    assert "TLSv1." in r["last_reply"]["text"], r
    assert len(sink.messages) == 1
    assert sink.messages[0][3] is True          # the sink saw a TLS session
    fields, rest = split_trace(sink.messages[0][2])
    assert len(fields) == 1 and rest == content
    assert "TLS established" in d.log_text()


def test_tls_encrypt_without_starttls_defers(daemon_factory, sinks):
    sink = Sink()
    port = sinks(sink)
    d = daemon_factory(relay_config(port, smtp_tls="encrypt",
                                    retry_schedule="1h"))
    qid, _ = submit(d, ["a@remote.test"])

    def deferred():
        m = msg_of(d, qid)
        r = m and rcpt(m, "a@remote.test")
        return r if r and r["status"] == "deferred" else None
    r = wait_for(deferred, timeout=20, what="deferral")
    assert r["last_reply"]["enhanced"] == "4.7.0", r
    assert "TLS required but not offered" in r["last_reply"]["text"], r
    assert sink.messages == []


class RawServer(ThreadedServer):
    """asyncio SMTP server with a scripted behaviour per connection."""

    def __init__(self, drop_first_in_data=True, greeting_delay_first=0):
        self.greeting_delay_first = greeting_delay_first
        self.conns = 0
        self.delivered = []
        self.drop_first = drop_first_in_data
        ThreadedServer.__init__(self)

    async def handle(self, reader, writer):
        self.conns += 1
        n = self.conns
        w = lambda s: writer.write(s.encode() + b"\r\n")
        if n == 1 and self.greeting_delay_first:
            await asyncio.sleep(self.greeting_delay_first)
        w("220 raw.test ESMTP")
        rcpts, data = [], b""
        try:
            while True:
                line = await reader.readline()
                if not line:
                    break
                cmd = line.decode().strip().upper()
                if cmd.startswith("EHLO"):
                    w("250-raw.test\r\n250 8BITMIME")
                elif cmd.startswith("MAIL"):
                    rcpts = []
                    w("250 2.1.0 ok")
                elif cmd.startswith("RCPT"):
                    rcpts.append(line.decode().strip()[8:])
                    w("250 2.1.5 ok")
                elif cmd == "DATA":
                    w("354 go ahead")
                    await writer.drain()
                    data = b""
                    while True:
                        l = await reader.readline()
                        if not l:
                            return
                        if n == 1 and self.drop_first and len(data) > 20:
                            writer.close()
                            return
                        if l == b".\r\n":
                            break
                        data += l
                    self.delivered.append((rcpts, data))
                    w("250 2.0.0 ok")
                elif cmd == "QUIT":
                    w("221 bye")
                    await writer.drain()
                    break
                else:
                    w("250 ok")
                await writer.drain()
        finally:
            writer.close()


def test_drop_mid_data_then_retry(daemon_factory):
    srv = RawServer()
    try:
        d = daemon_factory(relay_config(srv.port))
        qid, content = submit(d, ["a@remote.test"],
                              make_message(to="a@remote.test",
                                           body=b"body line\r\n" * 50))

        def deferred_seen():
            ev = d.show_json(qid)["events"]
            return any("lost connection" in e["detail"] for e in ev)
        wait_for(deferred_seen, timeout=20, what="a lost-connection deferral")
        m = wait_final(d, qid)
        r = rcpt(m, "a@remote.test")
        assert r["status"] == "relayed", m
        assert len(srv.delivered) == 1
        fields, rest = split_trace(srv.delivered[0][1])
        assert rest == content
        ev = d.show_json(qid)["events"]
        text = " ".join(e["detail"] for e in ev)
        assert "4.4.2" in text and "while sending" in text, text
    finally:
        srv.stop()


def test_slow_greeting_times_out_then_retry(daemon_factory):
    """A next hop that does not greet within smtp_helo_timeout: deferred
    (4.4.2, timeout), then relayed on the next attempt."""
    srv = RawServer(drop_first_in_data=False, greeting_delay_first=6)
    try:
        d = daemon_factory(relay_config(srv.port, smtp_helo_timeout="1s"))
        qid, content = submit(d, ["a@remote.test"])

        def timed_out():
            ev = d.show_json(qid)["events"]
            return [e for e in ev if e["kind"] == "deferred"]
        ev = wait_for(timed_out, timeout=20, what="a greeting timeout")
        assert "4.4.2" in ev[0]["detail"], ev
        assert "timeout" in ev[0]["detail"].lower() or \
            "timed out" in ev[0]["detail"].lower(), ev
        m = wait_final(d, qid)
        assert rcpt(m, "a@remote.test")["status"] == "relayed", m
        assert len(srv.delivered) == 1
        assert split_trace(srv.delivered[0][1])[1] == content
    finally:
        srv.stop()


def test_connection_refused_defers(daemon_factory):
    port = free_port()           # nothing listens there
    d = daemon_factory(relay_config(port, retry_schedule="1h"))
    qid, _ = submit(d, ["a@remote.test"])

    def deferred():
        m = msg_of(d, qid)
        r = m and rcpt(m, "a@remote.test")
        return r if r and r["status"] == "deferred" else None
    r = wait_for(deferred, timeout=20, what="deferral")
    assert r["last_reply"]["enhanced"] == "4.4.1", r
    assert "connection to" in r["last_reply"]["text"], r


class LMTPSink:
    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append((list(envelope.rcpt_tos), envelope.original_content))
        out = []
        for r in envelope.rcpt_tos:
            if r.startswith("full"):
                out.append("452 4.2.2 mailbox full")
            elif r.startswith("gone"):
                out.append("550 5.1.1 no such mailbox")
            else:
                out.append("250 2.0.0 delivered to %s" % r)
        return "\r\n".join(out)


def test_lmtp_per_recipient_results(daemon_factory):
    handler = LMTPSink()
    port = free_port()
    c = LMTPController(handler, hostname="127.0.0.1", port=port)
    c.start()
    try:
        d = daemon_factory({"lmtp": "127.0.0.1:%d" % port,
                            "retry_schedule": "1h"})
        rcpts = ["ok@example.org", "full@example.org", "gone@example.org",
                 "ok2@example.org"]
        qid, content = submit(d, rcpts)

        def settled():
            m = msg_of(d, qid)
            return m if m and all(r["status"] not in ("queued",)
                                  and r["last_reply"]["code"]
                                  for r in m["recipients"]) else None
        m = wait_for(settled, timeout=30, what="LMTP results")
        assert rcpt(m, "ok@example.org")["status"] == "delivered", m
        assert rcpt(m, "ok2@example.org")["status"] == "delivered", m
        assert rcpt(m, "full@example.org")["status"] == "deferred", m
        assert rcpt(m, "full@example.org")["last_reply"]["enhanced"] == "4.2.2"
        assert rcpt(m, "gone@example.org")["status"] == "failed", m
        assert rcpt(m, "gone@example.org")["last_reply"]["code"] == 550
        assert "lmtp:" in (rcpt(m, "ok@example.org")["remote_mta"] or "")
        assert len(handler.messages) == 1
        fields, rest = split_trace(handler.messages[0][1])
        assert rest == content
        assert not os.path.exists(os.path.join(d.mail, "example.org"))
    finally:
        c.stop()


class LMTPUnixController(UnixSocketController):
    def factory(self):
        return LMTP(self.handler, hostname="lmtp.test")


def test_lmtp_over_unix_socket(daemon_factory):
    """lmtp = unix:/path: local recipients go to the LMTP server on a unix
    socket (the daemon runs as its own unprivileged user: the socket must be
    writable)."""
    handler = LMTPSink()
    sockdir = tempfile.mkdtemp(prefix="wm-lmtp-")
    os.chmod(sockdir, 0o755)
    path = os.path.join(sockdir, "lmtp.sock")
    c = LMTPUnixController(handler, unix_socket=path)
    c.start()
    try:
        os.chmod(path, 0o777)
        d = daemon_factory({"lmtp": "unix:%s" % path, "retry_schedule": "1h"})
        qid, content = submit(d, ["ok@example.org", "gone@example.org"])

        def settled():
            m = msg_of(d, qid)
            return m if m and all(r["status"] in FINAL
                                  for r in m["recipients"]) else None
        m = wait_for(settled, timeout=30, what="LMTP results over unix")
        assert rcpt(m, "ok@example.org")["status"] == "delivered", m
        assert rcpt(m, "gone@example.org")["status"] == "failed", m
        assert path in (rcpt(m, "ok@example.org")["remote_mta"] or ""), m
        assert len(handler.messages) == 1
        assert split_trace(handler.messages[0][1])[1] == content
        assert not os.path.exists(os.path.join(d.mail, "example.org"))
    finally:
        c.stop()
        shutil.rmtree(sockdir, ignore_errors=True)


@pytest.mark.skipif(not os.path.exists("/usr/sbin/smtp-sink"),
                    reason="Postfix smtp-sink not installed")
def test_smtp_sink_200_messages(daemon_factory):
    port = free_port()
    # smtp-sink writes as nobody: a world-writable folder nobody can reach
    dump = pathlib.Path(tempfile.mkdtemp(prefix="waymark-sink-", dir="/tmp"))
    os.chmod(str(dump), 0o777)
    p = subprocess.Popen(["/usr/sbin/smtp-sink", "-u", "nobody", "-d",
                          str(dump) + "/%M.", "127.0.0.1:%d" % port, "100"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: _can_connect(port), timeout=10, what="smtp-sink")
        d = daemon_factory(relay_config(port))
        n = 200
        qids = []
        with d.connect() as c:
            c.ehlo()
            for i in range(n):
                r = c.mail_transaction("sender@example.com",
                                       ["u%d@remote.test" % (i % 7)],
                                       make_message(subject="msg %d" % i,
                                                    to="u@remote.test"))
                qids.append(queued_qid(r))
        d.wait_queue_drained(timeout=120)
        for qid in qids:
            m = msg_of(d, qid)
            assert [r["status"] for r in m["recipients"]] == ["relayed"], m

        def count():
            total = 0
            for f in dump.iterdir():
                total += f.read_bytes().count(b"\nSubject: msg ")
            return total
        wait_for(lambda: count() >= n, timeout=10, what="dumps")
        subjects = []
        for f in dump.iterdir():
            for line in f.read_bytes().split(b"\n"):
                if line.startswith(b"Subject: msg "):
                    subjects.append(line.strip())
        assert len(subjects) == n
        assert len(set(subjects)) == n          # each exactly once
    finally:
        p.terminate()
        p.wait(5)
        shutil.rmtree(str(dump), ignore_errors=True)


def _can_connect(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False
