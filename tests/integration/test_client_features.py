"""
SMTP client features (issue 4), black-box through waymarkd with
`smarthost = [127.0.0.1]:PORT`: STARTTLS with `smtp_tls = verify` (a CA
given by `smtp_tls_ca`; untrusted and wrong-name certificates defer 4.7.x),
`smtp_tls = may` with a broken handshake (retried in plaintext), AUTH PLAIN
to the smarthost only over TLS (`smarthost_auth`), MAIL parameters
(BODY=8BITMIME only for 8-bit content and when offered, SIZE= when
offered), PIPELINING, connection reuse.  aiosmtpd where it is enough, a
raw asyncio server where exact commands matter.
"""

import asyncio
import json
import os
import ssl
import subprocess
import threading

import pytest

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from asyncserver import ThreadedServer
from conftest import free_port, make_message, queued_qid, wait_for
from dnsfix import dns_factory  # noqa: F401  (fixture)

FINAL = ("delivered", "relayed", "failed")


# ------------------------------------------------------------ certificates

def openssl(*args, cwd):
    subprocess.run(["openssl"] + list(args), check=True, capture_output=True,
                   cwd=cwd)


def make_ca(d):
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt",
            "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", "ca.key",
            "-out", "ca.pem", "-days", "2", "-subj", "/CN=Waymark Test CA",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)
    return os.path.join(d, "ca.pem")


def make_leaf(d, name, san):
    """A server certificate signed by d's CA; an SSLContext serving it."""
    openssl("req", "-new", "-newkey", "ec", "-pkeyopt",
            "ec_paramgen_curve:prime256v1", "-nodes", "-keyout",
            name + ".key", "-out", name + ".csr", "-subj", "/CN=" + name,
            cwd=d)
    with open(os.path.join(d, name + ".ext"), "w") as f:
        f.write("subjectAltName=%s\nextendedKeyUsage=serverAuth\n" % san)
    openssl("x509", "-req", "-in", name + ".csr", "-CA", "ca.pem", "-CAkey",
            "ca.key", "-CAcreateserial", "-days", "2", "-out", name + ".pem",
            "-extfile", name + ".ext", cwd=d)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(os.path.join(d, name + ".pem"),
                        os.path.join(d, name + ".key"))
    return ctx


def make_selfsigned(d):
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt",
            "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", "self.key",
            "-out", "self.pem", "-days", "2", "-subj", "/CN=127.0.0.1",
            "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost", cwd=d)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(os.path.join(d, "self.pem"), os.path.join(d, "self.key"))
    return ctx


# ------------------------------------------------------------------ sinks

class Sink:
    """aiosmtpd handler recording (mail_from, rcpts, content, tls, login)."""

    def __init__(self):
        self.messages = []
        self.logins = []
        self.lock = threading.Lock()

    def authenticator(self, server, session, envelope, mechanism, data):
        with self.lock:
            self.logins.append((mechanism, data.login, data.password))
        ok = data.login == b"user" and data.password == b"pass"
        return AuthResult(success=ok, handled=False,
                          auth_data=data.login if ok else None)

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            self.messages.append((envelope.mail_from, list(envelope.rcpt_tos),
                                  envelope.original_content,
                                  bool(session.ssl), session.authenticated,
                                  session.auth_data))
        return "250 2.0.0 Ok: sunk"


@pytest.fixture
def sinks():
    made = []

    def make(handler, **kw):
        port = free_port()
        c = Controller(handler, hostname="127.0.0.1", port=port, **kw)
        c.start()
        made.append(c)
        return port

    yield make
    for c in made:
        c.stop()


class RawServer(ThreadedServer):
    """asyncio SMTP server recording every command line per connection.

    caps: EHLO keywords offered.  starttls="garbage": answer 220 to
    STARTTLS, wait for the client hello, then send non-TLS bytes and close
    (a failed handshake); starttls="early": the bytes right after the 220.
    After MAIL, waits briefly for more input before answering: a command
    that arrives while MAIL is unanswered proves pipelining."""

    def __init__(self, caps=("PIPELINING", "8BITMIME", "SIZE 10240000"),
                 starttls=None, early_wait=0.5):
        self.caps = list(caps)
        self.starttls = starttls
        self.early_wait = early_wait
        self.conns = []             # per connection: [command lines]
        self.early = []             # lines that arrived before the MAIL reply
        self.delivered = []         # (mail line, [rcpt lines], data bytes)
        self.lock = threading.Lock()
        ThreadedServer.__init__(self)

    def mails(self):
        with self.lock:
            return [l for c in self.conns for l in c if l.upper().startswith("MAIL")]

    def commands(self):
        with self.lock:
            return [l for c in self.conns for l in c]

    async def handle(self, reader, writer):
        log = []
        with self.lock:
            self.conns.append(log)
        pending = []

        def w(s):
            writer.write(s.encode() + b"\r\n")

        async def line():
            if pending:
                return pending.pop(0)
            return await reader.readline()

        w("220 raw.test ESMTP")
        mail, rcpts = None, []
        try:
            while True:
                await writer.drain()
                raw = await line()
                if not raw:
                    return
                text = raw.decode("utf-8", "replace").rstrip("\r\n")
                with self.lock:
                    log.append(text)
                cmd = text.upper()
                if cmd.startswith("EHLO"):
                    w("\r\n".join(["250-raw.test"] +
                                  ["250-" + c for c in self.caps[:-1]] +
                                  ["250 " + self.caps[-1]]) if self.caps
                      else "250 raw.test")
                elif cmd.startswith("HELO"):
                    w("250 raw.test")
                elif cmd == "STARTTLS" and self.starttls:
                    w("220 2.0.0 go ahead")
                    await writer.drain()
                    if self.starttls == "garbage":
                        # the client hello arrives, then garbage: a failed
                        # handshake ("early": garbage right after the 220)
                        await reader.read(1)
                    writer.write(b"this is not a TLS server hello\r\n" * 4)
                    await writer.drain()
                    return
                elif cmd.startswith("AUTH"):
                    w("535 5.7.8 no")
                elif cmd.startswith("MAIL"):
                    mail, rcpts = text, []
                    try:
                        more = await asyncio.wait_for(reader.readline(),
                                                      self.early_wait)
                    except asyncio.TimeoutError:
                        more = None
                    if more:
                        with self.lock:
                            self.early.append(more.decode().rstrip("\r\n"))
                        pending.append(more)
                    w("250 2.1.0 ok")
                elif cmd.startswith("RCPT"):
                    rcpts.append(text)
                    w("250 2.1.5 ok")
                elif cmd == "DATA":
                    w("354 go ahead")
                    await writer.drain()
                    data = b""
                    while True:
                        l = await line()
                        if not l:
                            return
                        if l == b".\r\n":
                            break
                        data += l
                    with self.lock:
                        self.delivered.append((mail, rcpts, data))
                    w("250 2.0.0 ok")
                elif cmd == "RSET":
                    w("250 2.0.0 ok")
                elif cmd == "QUIT":
                    w("221 2.0.0 bye")
                    await writer.drain()
                    return
                else:
                    w("502 5.5.2 unknown")
        except (ConnectionError, asyncio.IncompleteReadError,
                asyncio.CancelledError):
            pass
        finally:
            writer.close()


@pytest.fixture
def raw_servers():
    made = []

    def make(**kw):
        s = RawServer(**kw)
        made.append(s)
        return s

    yield make
    for s in made:
        s.stop()


# ------------------------------------------------------------------ helpers

def relay_config(port, host="127.0.0.1", **extra):
    cfg = {"smarthost": "[%s]:%d" % (host, port), "retry_schedule": "1h"}
    cfg.update(extra)
    return cfg


def start_daemon(daemon_factory, cfg, files=None):
    """A daemon whose extra files (name -> bytes, stored in its own 0755
    directory so the unprivileged daemon can read them) are in cfg as
    {name} placeholders."""
    d = daemon_factory(cfg, start=False)
    for name, data in (files or {}).items():
        path = os.path.join(d.dir, name)
        with open(path, "wb") as f:
            f.write(data)
        os.chmod(path, 0o644)
        for k, v in list(d.config.items()):
            if isinstance(v, str) and "{%s}" % name in v:
                d.config[k] = v.replace("{%s}" % name, path)
    d.write_config()
    d.start()
    return d


def submit(d, rcpts, content=None, sender="sender@example.com"):
    content = content or make_message(to=rcpts[0])
    with d.connect() as c:
        c.ehlo()
        r = c.mail_transaction(sender, rcpts, content)
    return queued_qid(r), content


def show(d, qid):
    p = d.cli("show", qid, "--json")
    return json.loads(p.out) if p.returncode == 0 else None


def wait_rcpt(d, qid, statuses, timeout=30):
    def ok():
        m = show(d, qid)
        if m and all(r["status"] in statuses for r in m["recipients"]):
            return m["recipients"][0]
        return None
    return wait_for(ok, timeout=timeout, interval=0.1,
                    what="%s in %s" % (qid, statuses))


def read(path):
    with open(path, "rb") as f:
        return f.read()


# ------------------------------------------------------------------ TLS

def test_tls_verify_with_ca_relays(daemon_factory, sinks, tmp_path):
    d0 = str(tmp_path)
    make_ca(d0)
    ctx = make_leaf(d0, "srv", "DNS:localhost,IP:127.0.0.1")
    sink = Sink()
    port = sinks(sink, tls_context=ctx)
    d = start_daemon(daemon_factory,
                     relay_config(port, smtp_tls="verify",
                                  smtp_tls_ca="{ca.pem}"),
                     {"ca.pem": read(os.path.join(d0, "ca.pem"))})
    qid, content = submit(d, ["a@remote.test"])
    r = wait_rcpt(d, qid, FINAL + ("deferred",))
    assert r["status"] == "relayed", r
    assert "TLSv1." in r["last_reply"]["text"], r
    assert len(sink.messages) == 1
    assert sink.messages[0][3] is True
    assert sink.messages[0][2].endswith(content)


def test_tls_verify_untrusted_defers(daemon_factory, sinks, tmp_path):
    d0 = str(tmp_path)
    make_ca(d0)                         # the CA we trust signed nothing here
    ctx = make_selfsigned(d0)
    sink = Sink()
    port = sinks(sink, tls_context=ctx)
    d = start_daemon(daemon_factory,
                     relay_config(port, smtp_tls="verify",
                                  smtp_tls_ca="{ca.pem}"),
                     {"ca.pem": read(os.path.join(d0, "ca.pem"))})
    qid, _ = submit(d, ["a@remote.test"])
    r = wait_rcpt(d, qid, FINAL + ("deferred",))
    assert r["status"] == "deferred", r
    assert r["last_reply"]["enhanced"].startswith("4.7."), r
    assert "certificate" in r["last_reply"]["text"], r
    assert sink.messages == []


def test_tls_verify_wrong_name_defers(daemon_factory, sinks, tmp_path):
    d0 = str(tmp_path)
    make_ca(d0)
    ctx = make_leaf(d0, "other", "DNS:other.test,IP:127.0.0.9")
    sink = Sink()
    port = sinks(sink, tls_context=ctx)
    d = start_daemon(daemon_factory,
                     relay_config(port, smtp_tls="verify",
                                  smtp_tls_ca="{ca.pem}"),
                     {"ca.pem": read(os.path.join(d0, "ca.pem"))})
    qid, _ = submit(d, ["a@remote.test"])
    r = wait_rcpt(d, qid, FINAL + ("deferred",))
    assert r["status"] == "deferred", r
    assert r["last_reply"]["enhanced"].startswith("4.7."), r
    assert sink.messages == []


@pytest.mark.parametrize("how", ["garbage", "early"])
def test_tls_may_broken_handshake_retried_in_plaintext(daemon_factory,
                                                        raw_servers, how):
    srv = raw_servers(caps=("PIPELINING", "STARTTLS", "8BITMIME"),
                      starttls=how)
    d = daemon_factory(relay_config(srv.port, smtp_tls="may"))
    qid, content = submit(d, ["a@remote.test"])
    r = wait_rcpt(d, qid, FINAL + ("deferred",))
    assert r["status"] == "relayed", (r, srv.conns)
    assert len(srv.delivered) == 1
    assert srv.delivered[0][2].endswith(content)
    # first connection: STARTTLS (failed); the retry does not ask again
    assert "STARTTLS" in [l.upper() for l in srv.conns[0]], srv.conns
    last = srv.conns[-1]
    assert "STARTTLS" not in [l.upper() for l in last], srv.conns
    assert any(l.upper().startswith("MAIL") for l in last), srv.conns


@pytest.mark.parametrize("how", ["garbage", "early"])
def test_tls_verify_broken_handshake_not_plaintext(daemon_factory,
                                                   raw_servers, how):
    srv = raw_servers(caps=("PIPELINING", "STARTTLS"), starttls=how)
    d = daemon_factory(relay_config(srv.port, smtp_tls="verify"))
    qid, _ = submit(d, ["a@remote.test"])
    r = wait_rcpt(d, qid, FINAL + ("deferred",))
    assert r["status"] == "deferred", r
    assert r["last_reply"]["enhanced"].startswith("4.7."), r
    assert srv.mails() == [], srv.conns


# ------------------------------------------------------------------ AUTH

def test_auth_plain_over_tls(daemon_factory, sinks, tmp_path):
    d0 = str(tmp_path)
    make_ca(d0)
    ctx = make_leaf(d0, "srv", "DNS:localhost,IP:127.0.0.1")
    sink = Sink()
    port = sinks(sink, tls_context=ctx, require_starttls=True,
                 auth_require_tls=True, auth_required=True,
                 authenticator=sink.authenticator)
    d = start_daemon(daemon_factory,
                     relay_config(port, smarthost_auth="{auth}"),
                     {"auth": b"user pass\n"})
    qid, content = submit(d, ["a@remote.test"])
    r = wait_rcpt(d, qid, FINAL + ("deferred",))
    assert r["status"] == "relayed", r
    assert sink.logins == [("PLAIN", b"user", b"pass")], sink.logins
    assert len(sink.messages) == 1
    _, _, got, tls, authed, login = sink.messages[0]
    assert tls is True and authed is True and login == b"user"
    assert got.endswith(content)


def test_auth_wrong_password_defers(daemon_factory, sinks, tmp_path):
    d0 = str(tmp_path)
    make_ca(d0)
    ctx = make_leaf(d0, "srv", "DNS:localhost,IP:127.0.0.1")
    sink = Sink()
    port = sinks(sink, tls_context=ctx, require_starttls=True,
                 auth_require_tls=True, auth_required=True,
                 authenticator=sink.authenticator)
    d = start_daemon(daemon_factory,
                     relay_config(port, smarthost_auth="{auth}"),
                     {"auth": b"user wrong\n"})
    qid, _ = submit(d, ["a@remote.test"])
    r = wait_rcpt(d, qid, FINAL + ("deferred",))
    assert r["status"] == "deferred", r
    assert r["last_reply"]["code"] // 100 == 4, r
    assert sink.messages == []


def test_auth_never_in_clear(daemon_factory, raw_servers):
    srv = raw_servers(caps=("PIPELINING", "AUTH PLAIN LOGIN", "8BITMIME"))
    d = start_daemon(daemon_factory,
                     relay_config(srv.port, smarthost_auth="{auth}"),
                     {"auth": b"user pass\n"})
    qid, _ = submit(d, ["a@remote.test"])
    r = wait_rcpt(d, qid, FINAL + ("deferred",))
    assert r["status"] == "deferred", r
    assert r["last_reply"]["enhanced"] == "4.7.0", r
    cmds = srv.commands()
    assert not any(l.upper().startswith("AUTH") for l in cmds), cmds
    assert srv.mails() == [] and srv.delivered == [], cmds
    assert not any("dXNlcgBwYXNz" in l or "pass" in l for l in cmds), cmds


# ------------------------------------------------------- MAIL parameters

EIGHT_BIT = "Caf\u00e9 cr\u00e8me, na\u00efve r\u00e9sum\u00e9.\r\n".encode()


def test_body_8bitmime_declared_for_8bit(daemon_factory, raw_servers):
    srv = raw_servers()
    d = daemon_factory(relay_config(srv.port))
    content = make_message(to="a@remote.test", body=EIGHT_BIT,
                           extra_headers=b"MIME-Version: 1.0\r\n"
                           b"Content-Type: text/plain; charset=utf-8\r\n"
                           b"Content-Transfer-Encoding: 8bit\r\n")
    qid, _ = submit(d, ["a@remote.test"], content)
    r = wait_rcpt(d, qid, FINAL + ("deferred",))
    assert r["status"] == "relayed", r
    mails = srv.mails()
    assert len(mails) == 1, mails
    assert "BODY=8BITMIME" in mails[0].upper().split(), mails
    assert srv.delivered[0][2].endswith(content)


def test_body_not_declared_for_7bit(daemon_factory, raw_servers):
    srv = raw_servers()
    d = daemon_factory(relay_config(srv.port))
    qid, _ = submit(d, ["a@remote.test"])
    r = wait_rcpt(d, qid, FINAL + ("deferred",))
    assert r["status"] == "relayed", r
    mails = srv.mails()
    assert len(mails) == 1, mails
    assert "BODY=" not in mails[0].upper(), mails


def test_8bit_to_peer_without_8bitmime(daemon_factory, raw_servers):
    srv = raw_servers(caps=("PIPELINING", "SIZE 10240000"))
    d = daemon_factory(relay_config(srv.port))
    content = make_message(to="a@remote.test", body=EIGHT_BIT)
    qid, _ = submit(d, ["a@remote.test"], content)
    r = wait_rcpt(d, qid, FINAL + ("deferred",))
    assert r["status"] == "relayed", r
    mails = srv.mails()
    assert len(mails) == 1 and "BODY=" not in mails[0].upper(), mails
    assert srv.delivered[0][2].endswith(content)       # sent as is
    assert "8-bit" in r["last_reply"]["text"], r         # and recorded


def test_size_declared_when_offered(daemon_factory, raw_servers):
    srv = raw_servers()
    d = daemon_factory(relay_config(srv.port))
    content = make_message(to="a@remote.test", body=(b"x" * 70 + b"\r\n") * 40)
    qid, _ = submit(d, ["a@remote.test"], content)
    r = wait_rcpt(d, qid, FINAL + ("deferred",))
    assert r["status"] == "relayed", r
    params = srv.mails()[0].split()[2:]
    sizes = [p for p in params if p.upper().startswith("SIZE=")]
    assert len(sizes) == 1, params
    n = int(sizes[0][5:])
    assert n >= len(content), (n, len(content))
    assert n < len(content) + 4096, (n, len(content))


def test_size_not_declared_when_not_offered(daemon_factory, raw_servers):
    srv = raw_servers(caps=("PIPELINING", "8BITMIME"))
    d = daemon_factory(relay_config(srv.port))
    qid, _ = submit(d, ["a@remote.test"])
    r = wait_rcpt(d, qid, FINAL + ("deferred",))
    assert r["status"] == "relayed", r
    assert "SIZE=" not in srv.mails()[0].upper(), srv.mails()


def test_size_over_peer_limit_fails(daemon_factory, raw_servers):
    srv = raw_servers(caps=("PIPELINING", "SIZE 1000"))
    d = daemon_factory(relay_config(srv.port))
    content = make_message(to="a@remote.test", body=(b"y" * 70 + b"\r\n") * 40)
    qid, _ = submit(d, ["a@remote.test"], content)
    r = wait_rcpt(d, qid, FINAL + ("deferred",))
    assert r["status"] == "failed", r
    assert r["last_reply"]["enhanced"] == "5.3.4", r
    assert srv.delivered == []


# ------------------------------------------------------ pipelining, reuse

def test_pipelining_used_when_offered(daemon_factory, raw_servers):
    srv = raw_servers(early_wait=2.0)
    d = daemon_factory(relay_config(srv.port))
    qid, _ = submit(d, ["a@remote.test", "b@remote.test"])
    r = wait_rcpt(d, qid, FINAL + ("deferred",))
    assert r["status"] == "relayed", r
    # RCPT arrived while MAIL was still unanswered
    assert srv.early and srv.early[0].upper().startswith("RCPT"), \
        (srv.early, srv.conns)
    assert len(srv.delivered) == 1 and len(srv.delivered[0][1]) == 2


def test_no_pipelining_when_not_offered(daemon_factory, raw_servers):
    srv = raw_servers(caps=("8BITMIME", "SIZE 10240000"), early_wait=0.5)
    d = daemon_factory(relay_config(srv.port))
    qid, _ = submit(d, ["a@remote.test", "b@remote.test"])
    r = wait_rcpt(d, qid, FINAL + ("deferred",))
    assert r["status"] == "relayed", r
    assert srv.early == [], (srv.early, srv.conns)
    assert len(srv.delivered) == 1 and len(srv.delivered[0][1]) == 2


def test_connection_reuse(daemon_factory, raw_servers):
    srv = raw_servers(early_wait=0.05)
    d = daemon_factory(relay_config(srv.port))
    qids = []
    with d.connect() as c:
        c.ehlo()
        for i in range(5):
            r = c.mail_transaction("sender@example.com", ["u%d@remote.test" % i],
                                   make_message(subject="reuse %d" % i,
                                                to="u%d@remote.test" % i))
            qids.append(queued_qid(r))
    for qid in qids:
        r = wait_rcpt(d, qid, FINAL + ("deferred",))
        assert r["status"] == "relayed", r
    assert len(srv.delivered) == 5
    mailconns = [c for c in srv.conns
                 if any(l.upper().startswith("MAIL") for l in c)]
    assert len(mailconns) < 5, srv.conns
    assert len(srv.conns) < 5, srv.conns


def test_tls_verify_checks_the_smarthost_name(daemon_factory, sinks, tmp_path,
                                              dns_factory):  # noqa: F811
    """[relay.test]:PORT (relay.test -> 127.0.0.1 at dnsmasq): the certificate
    must match the name relay.test; one only for IP 127.0.0.1 does not do."""
    dns = dns_factory(hosts=[("relay.test", "127.0.0.1")])
    d0 = str(tmp_path)
    make_ca(d0)
    good = make_leaf(d0, "byname", "DNS:relay.test")
    bad = make_leaf(d0, "byip", "IP:127.0.0.1,DNS:other.test")
    ok_sink, bad_sink = Sink(), Sink()
    ok_port = sinks(ok_sink, tls_context=good)
    bad_port = sinks(bad_sink, tls_context=bad)
    files = {"ca.pem": read(os.path.join(d0, "ca.pem"))}
    for port, sink, want in ((ok_port, ok_sink, "relayed"),
                             (bad_port, bad_sink, "deferred")):
        d = start_daemon(daemon_factory,
                         relay_config(port, host="relay.test", dns=dns.server,
                                      smtp_tls="verify",
                                      smtp_tls_ca="{ca.pem}"), files)
        qid, _ = submit(d, ["a@remote.test"])
        r = wait_rcpt(d, qid, FINAL + ("deferred",))
        assert r["status"] == want, r
        if want == "relayed":
            assert len(sink.messages) == 1 and sink.messages[0][3] is True
            assert "relay.test[127.0.0.1]" in r["remote_mta"], r
        else:
            assert r["last_reply"]["enhanced"].startswith("4.7."), r
            assert sink.messages == []


def test_connection_reuse_by_waiting_jobs(daemon_factory, raw_servers):
    """A burst from 5 parallel clients with smtp_destination_concurrency = 1:
    the waiting jobs take the parked connection one after the other."""
    srv = raw_servers(early_wait=0.05)
    d = daemon_factory(relay_config(srv.port,
                                    smtp_destination_concurrency="1"))
    qids, errors = [], []

    def client(i):
        try:
            qid, _ = submit(d, ["p%d@remote.test" % i],
                            make_message(subject="burst %d" % i,
                                         to="p%d@remote.test" % i))
            qids.append(qid)
        except Exception as e:          # reported below
            errors.append(e)
    ts = [threading.Thread(target=client, args=(i,)) for i in range(5)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(30)
    assert not errors, errors
    for qid in qids:
        r = wait_rcpt(d, qid, FINAL + ("deferred",))
        assert r["status"] == "relayed", r
    assert len(srv.delivered) == 5
    assert len(srv.conns) < 5, srv.conns
