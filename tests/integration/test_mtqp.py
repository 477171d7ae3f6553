"""
The MTQP tracking server (RFC 3887) of waymarkd, black-box over loopback
with a plain socket client (mtqpclient.py) and an independent parser of
the TRACK body (trackparse.py: Python's email package for the
multipart/related structure, RFC 3886's field grammar for the fields).

Protocol: the greeting and its option list, every command (TRACK,
STARTTLS, COMMENT, QUIT), bad syntax (a malformed TRACK's secret never
logged), unknown commands, over-long lines,
pipelining, STARTTLS with an openssl-made certificate (SAN DNS:mtqp.test,
IP:127.0.0.1): bad-fqdn, tls-in-progress, input pipelined after STARTTLS
dropped, a fresh greeting; mtqp_require_tls; mtqp_timeout's minimum;
mtqp_max_sessions (also after a reload) and its quarter per client
address; SIGTERM.

Privacy: wrong secret, unknown ENVID and expired record get byte-identical
replies; mtqp_auth_failures (small N) answers even the right secret like a
wrong one from the limited address, not from another; two messages with
one ENVID and different secrets are each answered with their own.

Answers: tracked mail is put in the store by SMTP (MAIL ... ENVID=
MTRK=certifier[:timeout], certifier = base64(SHA-1(A)) unpadded, A
random); the body is parsed field by field: delivered (local Maildir),
failed with Diagnostic-Code (a next hop answering 550), delayed with
Will-Retry-Until (a next hop that is not listening), held with
X-Waymark-Handling-State after `waymark hold`.
"""

import base64
import hashlib
import json
import os
import signal
import socket
import ssl
import subprocess
import threading
import time
import uuid

import pytest

from aiosmtpd.controller import Controller

from conftest import (IS_ROOT, daemon_ids, free_port, make_message,
                      queued_qid, run_waymarkd, wait_for)
from mtqpclient import MTQPClient
import trackparse

HOST = "mx.test"
GREETING = b"+OK/MTQP mx.test Waymark MTQP server ready\r\n"
GREETING_TLS = (b"+OK+/MTQP mx.test Waymark MTQP server ready\r\n"
                b"STARTTLS\r\n.\r\n")
NOINFO = b"-ERR/noinfo No tracking information available\r\n"
TLS_NAME = "mtqp.test"
FINAL = ("delivered", "relayed", "transferred", "failed", "expanded")


# ------------------------------------------------------------- helpers

def new_secret():
    """(base64(A) for TRACK, the MTRK certifier base64(SHA-1(A)) unpadded)"""
    a = os.urandom(20)
    cert = base64.b64encode(hashlib.sha1(a).digest()).decode().rstrip("=")
    return base64.b64encode(a).decode(), cert


def new_envid(local=None):
    return "%s@client.test" % (local or "t" + uuid.uuid4().hex[:16])


def xtext(s):
    return "".join(c if 33 <= ord(c) <= 126 and c not in "+=" else
                   "+%02X" % ord(c) for c in s)


def make_cert(d, names=(TLS_NAME,), ips=("127.0.0.1",)):
    cert = os.path.join(d.dir, "mtqp-cert.pem")
    key = os.path.join(d.dir, "mtqp-key.pem")
    san = ",".join(["DNS:%s" % n for n in names] + ["IP:%s" % i for i in ips])
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                    "-subj", "/CN=%s" % names[0], "-days", "2",
                    "-addext", "subjectAltName=" + san,
                    "-keyout", key, "-out", cert],
                   check=True, capture_output=True)
    os.chmod(key, 0o600)
    if IS_ROOT:
        os.chown(key, *daemon_ids())
    return cert, key


def mtqp_daemon(daemon_factory, config=None, tls=False, start=True):
    d = daemon_factory(start=False)
    d.mtqp_port = free_port()
    d.config["mtqp"] = "127.0.0.1:%d" % d.mtqp_port
    if tls:
        d.config["tls_cert"], d.config["tls_key"] = make_cert(d)
    d.config.update(config or {})
    d.write_config()
    if start:
        d.start()
    return d


def client(d, **kw):
    return MTQPClient(d.mtqp_port, **kw)


def submit_tracked(d, envid, cert, rcpts, timeout=None,
                   sender="sender@example.com"):
    """One message with ENVID and MTRK by SMTP; its QID."""
    params = "ENVID=%s MTRK=%s%s" % (xtext(envid), cert,
                                     ":%d" % timeout if timeout else "")
    with d.connect() as c:
        c.ehlo()
        r = c.mail_transaction(sender, rcpts,
                               make_message(to=rcpts[0], sender=sender),
                               params=params)
    return queued_qid(r)


def rcpt_status(d, qid):
    m = d.show_json(qid)
    return {r["address"]: r["status"] for r in m["recipients"]}


def wait_status(d, qid, want, timeout=30):
    """Until every recipient's status is in want (a tuple); the message."""
    def ok():
        p = d.cli("show", qid, "--json")
        if p.returncode != 0:
            return None
        m = json.loads(p.out)
        return m if all(r["status"] in want for r in m["recipients"]) \
            else None
    return wait_for(ok, timeout=timeout, interval=0.1,
                    what="%s of %s" % ("/".join(want), qid))


def track(d, envid, secret, **kw):
    with client(d, **kw) as c:
        r = c.track(envid, secret)
        assert c.cmd("QUIT").raw == b"+OK Bye\r\n"
    return r


def track_parts(d, envid, secret, **kw):
    r = track(d, envid, secret, **kw)
    assert r.line == "+OK+ Tracking information follows", r
    return trackparse.parse(r.body)


class RcptSink:
    """aiosmtpd handler: 550 for bad@..., everything else accepted."""

    def __init__(self):
        self.lock = threading.Lock()
        self.count = 0

    async def handle_RCPT(self, server, session, envelope, address, options):
        if address.startswith("bad@"):
            return "550 5.1.1 <%s>: Recipient address rejected" % address
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            self.count += 1
        return "250 2.0.0 Ok: sunk"


@pytest.fixture
def sink():
    port = free_port()
    c = Controller(RcptSink(), hostname="127.0.0.1", port=port)
    c.start()
    yield port
    c.stop()


# --------------------------------------------------------- greeting, commands

def test_greeting_and_simple_commands(daemon_factory):
    d = mtqp_daemon(daemon_factory)
    with client(d) as c:
        assert c.greeting.raw == GREETING
        assert c.cmd("COMMENT").raw == b"+OK\r\n"
        assert c.cmd("COMMENT any text at all, even TRACK x y").raw == \
            b"+OK\r\n"
        assert c.cmd("comment lower case").raw == b"+OK\r\n"
        assert c.cmd("STARTTLS %s" % TLS_NAME).raw == \
            b"-BAD/unsupported STARTTLS not available\r\n"
        assert c.cmd("HELO there").raw == b"-BAD Unrecognized command\r\n"
        assert c.cmd("TRACKING a@b.test c2VjcmV0").raw == \
            b"-BAD Unrecognized command\r\n"
        assert c.cmd("").raw == b"-BAD Unrecognized command\r\n"
        assert c.cmd("QUIT now").raw == b"-BAD Syntax: QUIT\r\n"
        assert c.cmd("Quit").raw == b"+OK Bye\r\n"
        assert c.expect_eof()
    log = d.log_text()
    assert "mtqp session=" in log and "comment=3" in log, log[-2000:]


@pytest.mark.parametrize("args", [
    "", "a@b.test", "a@b.test c2VjcmV0 extra", "<> c2VjcmV0",
    "a@b.test !!!!", "a@b.test c2VjcmV0c", "a+ZZ@b.test c2VjcmV0",
    "a\x01@b.test c2VjcmV0", "%s@b.test c2VjcmV0" % ("x" * 120),
])
def test_track_syntax(daemon_factory, args):
    d = mtqp_daemon(daemon_factory)
    with client(d) as c:
        r = c.cmd("TRACK " + args if args else "TRACK")
        assert r.raw == b"-BAD Syntax: TRACK unique-envid mtrk-secret\r\n", r
        assert c.cmd("COMMENT still here").raw == b"+OK\r\n"


def test_malformed_track_never_logs_the_secret(daemon_factory):
    """TRACK with its ENVID missing (the lone argument may be the secret),
    with a bad ENVID or with too many arguments: -BAD, and the log shows
    the verb only."""
    d = mtqp_daemon(daemon_factory)
    secret, _ = new_secret()
    with client(d) as c:
        for args in (secret, "  %s  " % secret, "%s %s" % (secret, secret),
                     "bad+ZZ@b.test %s" % secret, "a@b.test %s extra" % secret,
                     "a@b.test %s!" % secret, "a@b.test %sx" % secret):
            r = c.cmd("TRACK " + args)
            assert r.raw == b"-BAD Syntax: TRACK unique-envid " \
                b"mtrk-secret\r\n", (args, r)
        assert c.cmd("QUIT").raw == b"+OK Bye\r\n"
        assert c.expect_eof()
    log = wait_for(lambda: d.log_text() if "disconnect" in d.log_text()
                   else None, timeout=10, what="the disconnect line")
    assert log.count('cmd="TRACK"') == 7, log[-3000:]
    for s in (secret, secret.rstrip("="), secret[:16]):
        assert s not in log, "the secret was logged"


def test_overlong_lines(daemon_factory):
    d = mtqp_daemon(daemon_factory)
    with client(d) as c:
        # 998 octets before CRLF is the longest line (RFC 3887 2.2)
        line = b"COMMENT " + b"x" * 990
        assert len(line) == 998
        assert c.cmd(line).raw == b"+OK\r\n"
        assert c.cmd(line + b"y").raw == b"-BAD Line too long\r\n"
        # much longer, in pieces: one reply, the rest of the line dropped
        c.send(b"TRACK " + b"a" * 3000)
        c.send(b"b" * 20000 + b" QUIT\r\n")
        assert c.response().raw == b"-BAD Line too long\r\n"
        assert c.cmd("COMMENT after").raw == b"+OK\r\n"
        assert c.cmd("QUIT").raw == b"+OK Bye\r\n"
        assert c.expect_eof()
        assert c.buf == b""


def test_pipelined_commands_in_order(daemon_factory):
    d = mtqp_daemon(daemon_factory)
    s1, c1 = new_secret()
    s2, c2 = new_secret()
    e1, e2 = new_envid(), new_envid()
    submit_tracked(d, e1, c1, ["one@example.org"])
    submit_tracked(d, e2, c2, ["two@example.org"])
    with client(d) as c:
        c.send("COMMENT a\r\nFOO\r\nTRACK %s %s\r\nTRACK %s %s\r\n"
               "TRACK %s %s\r\nCOMMENT b\r\nQUIT\r\nCOMMENT never\r\n"
               % (e1, s1, e2, s2, e1, s2))
        assert c.response().raw == b"+OK\r\n"
        assert c.response().raw == b"-BAD Unrecognized command\r\n"
        r1 = c.response()
        r2 = c.response()
        assert c.response().raw == NOINFO
        assert c.response().raw == b"+OK\r\n"
        assert c.response().raw == b"+OK Bye\r\n"
        assert c.expect_eof()
        assert c.buf == b"", "a command after QUIT was answered"
    p1 = trackparse.parse(r1.body)
    p2 = trackparse.parse(r2.body)
    assert p1[0].message["original-envelope-id"] == e1
    assert p2[0].message["original-envelope-id"] == e2
    assert p1[0].recipient("one@example.org")
    assert p2[0].recipient("two@example.org")


# -------------------------------------------------------------------- TLS

def test_starttls_reset_and_fresh_greeting(daemon_factory):
    d = mtqp_daemon(daemon_factory, tls=True)
    s, cert = new_secret()
    e = new_envid()
    submit_tracked(d, e, cert, ["user@example.org"])
    with client(d) as c:
        assert c.greeting.raw == GREETING_TLS
        # input pipelined after STARTTLS is dropped, never run
        c.send("STARTTLS %s\r\nFOO\r\n" % TLS_NAME)
        r = c.response()
        assert r.raw == b"+OK Begin TLS negotiation\r\n"
        assert c.buf == b""
        ctx = tls_context(d)
        c.sock = ctx.wrap_socket(c.sock, server_hostname=TLS_NAME)
        assert c.response().raw == GREETING, "fresh greeting without STARTTLS"
        assert c.cmd("COMMENT in TLS").raw == b"+OK\r\n"
        assert c.cmd("STARTTLS %s" % TLS_NAME).raw == \
            b"-BAD/tls-in-progress TLS already active\r\n"
        r = c.track(e, s)
        assert r.indicator == "+OK+", r
        assert trackparse.parse(r.body)[0].message[
            "original-envelope-id"] == e
        assert c.cmd("QUIT").raw == b"+OK Bye\r\n"
        assert c.expect_eof()
        assert c.buf == b"", "plaintext pipelined after STARTTLS was answered"
    assert "dropping 5 octets pipelined after STARTTLS" in d.log_text()


def tls_context(d):
    """A client context that verifies the daemon's certificate and name."""
    return ssl.create_default_context(cafile=d.config["tls_cert"])


@pytest.mark.parametrize("name,reply", [
    ("", b"-BAD Syntax: STARTTLS fqdn\r\n"),
    ("mtqp.test extra", b"-BAD Syntax: STARTTLS fqdn\r\n"),
    ("bad..name", b"-BAD Syntax: STARTTLS fqdn\r\n"),
    ("-bad.test", b"-BAD Syntax: STARTTLS fqdn\r\n"),
    ("other.test", b"-BAD/bad-fqdn FQDN does not match the certificate\r\n"),
    ("127.0.0.9", b"-BAD/bad-fqdn FQDN does not match the certificate\r\n"),
    ("x.mtqp.test", b"-BAD/bad-fqdn FQDN does not match the certificate\r\n"),
])
def test_starttls_bad_names(daemon_factory, name, reply):
    d = mtqp_daemon(daemon_factory, tls=True)
    with client(d) as c:
        assert c.cmd(("STARTTLS " + name).rstrip()).raw == reply
        # still in clear, STARTTLS still possible
        r, g = c.starttls(TLS_NAME, context=tls_context(d))
        assert r.raw == b"+OK Begin TLS negotiation\r\n" and g.raw == GREETING


@pytest.mark.parametrize("name,sni", [
    ("127.0.0.1", None), ("[127.0.0.1]", None), ("MTQP.Test", TLS_NAME),
    ("mtqp.test.", TLS_NAME)])
def test_starttls_good_names(daemon_factory, name, sni):
    d = mtqp_daemon(daemon_factory, tls=True)
    with client(d) as c:
        ctx = tls_context(d)
        if sni is None:
            ctx.check_hostname = False
        r, g = c.starttls(name, context=ctx, server_hostname=sni or TLS_NAME)
        assert r.raw == b"+OK Begin TLS negotiation\r\n"
        assert g.raw == GREETING
        assert c.cmd("QUIT").raw == b"+OK Bye\r\n"


def test_require_tls(daemon_factory):
    d = mtqp_daemon(daemon_factory, {"mtqp_require_tls": "yes"}, tls=True)
    s, cert = new_secret()
    e = new_envid()
    submit_tracked(d, e, cert, ["user@example.org"])
    with client(d) as c:
        assert c.greeting.raw == (
            b"+OK+/MTQP mx.test Waymark MTQP server ready\r\n"
            b"STARTTLS required\r\n.\r\n")
        assert c.track(e, s).raw == \
            b"-ERR/tls-required TLS required: use STARTTLS first\r\n"
        # syntax is checked first, COMMENT works in clear
        assert c.cmd("TRACK x").raw == \
            b"-BAD Syntax: TRACK unique-envid mtrk-secret\r\n"
        assert c.cmd("COMMENT hi").raw == b"+OK\r\n"
        r, g = c.starttls(TLS_NAME, context=tls_context(d))
        assert g.raw == GREETING
        r = c.track(e, s)
        assert r.line == "+OK+ Tracking information follows", r
        assert c.cmd("QUIT").raw == b"+OK Bye\r\n"
    # a refusal in clear is not counted as a failed authentication
    assert "result=noinfo" not in d.log_text()


# ---------------------------------------------------------- configuration

def config_refused(d, key, value, why):
    """`waymarkd -n` refuses KEY = VALUE: "FILE:LINE: KEY: WHY", exit 1."""
    d.config[key] = value
    d.write_config()
    p = run_waymarkd("-n", "-f", d.conf)
    n = d.config_text().splitlines().index("%s = %s" % (key, value)) + 1
    assert p.returncode == 1
    assert p.err.strip() == "%s:%d: %s: %s" % (d.conf, n, key, why), p.err


def test_config_keys(daemon_factory):
    d = mtqp_daemon(daemon_factory, start=False)
    p = run_waymarkd("-n", "-f", d.conf)
    assert p.returncode == 0, p.err
    for line in ("mtqp_require_tls = no", "mtqp_timeout = 10m",
                 "mtqp_max_sessions = 50", "mtqp_auth_failures = 10 per 1h",
                 "mtqp_chaining = no", "mtqp = 127.0.0.1:%d" % d.mtqp_port):
        assert line in p.out.splitlines(), (line, p.out)
    # RFC 3887 2.4: an autologout under 10 minutes is refused at load
    config_refused(d, "mtqp_timeout", "9m",
                   "must be at least 10m (RFC 3887 2.4)")
    d.config["mtqp_timeout"] = "10m"
    config_refused(d, "mtqp_require_tls", "yes", "needs tls_cert and tls_key")
    d.config["mtqp_timeout"] = "1h"
    d.config["mtqp_chaining"] = "yes"
    d.config["tls_cert"], d.config["tls_key"] = make_cert(d)
    d.write_config()
    p = run_waymarkd("-n", "-f", d.conf)
    assert p.returncode == 0, p.err
    for line in ("mtqp_require_tls = yes", "mtqp_timeout = 1h",
                 "mtqp_chaining = yes"):
        assert line in p.out.splitlines(), (line, p.out)


def test_max_sessions_and_reload(daemon_factory):
    # each session from its own address: 2 sessions allow 1 per address
    d = mtqp_daemon(daemon_factory, {"mtqp_max_sessions": "2"})
    a, b = client(d, source="127.0.0.2"), client(d, source="127.0.0.3")
    assert a.greeting.raw == GREETING and b.greeting.raw == GREETING
    with client(d, greet=False, source="127.0.0.4") as c:
        assert c.response().raw == (b"-TEMP/MTQP/unavailable Too many MTQP "
                                    b"sessions, try again later\r\n")
        assert c.expect_eof()
    assert a.cmd("QUIT").raw == b"+OK Bye\r\n"
    assert a.expect_eof()
    a.close()

    def greeted():
        with client(d, greet=False, source="127.0.0.4") as c:
            return c.response().raw == GREETING
    wait_for(greeted, timeout=10, what="a free MTQP session slot")
    # a reload takes the new limit for new sessions
    d.config["mtqp_max_sessions"] = "1"
    d.write_config()
    d.signal(signal.SIGHUP)
    wait_for(lambda: "configuration reloaded" in d.log_text(), timeout=15,
             what="the reload")
    with client(d, greet=False, source="127.0.0.4") as c:
        assert c.response().indicator == "-TEMP"
    assert b.cmd("COMMENT old session lives on").raw == b"+OK\r\n"
    b.close()


def test_max_sessions_per_address(daemon_factory):
    """A quarter of mtqp_max_sessions per client address (no exceptions,
    loopback included): one address cannot hold every slot."""
    d = mtqp_daemon(daemon_factory, {"mtqp_max_sessions": "8"})
    busy = "-TEMP/MTQP/unavailable Too many MTQP sessions, try again later"
    a = [client(d, source="127.0.0.2") for _ in range(2)]
    assert [c.greeting.raw for c in a] == [GREETING] * 2
    with client(d, greet=False, source="127.0.0.2") as c:
        assert c.response().line == busy
        assert c.expect_eof()
    # another address has slots of its own
    b = [client(d, source="127.0.0.3") for _ in range(2)]
    assert [c.greeting.raw for c in b] == [GREETING] * 2
    with client(d, greet=False, source="127.0.0.3") as c:
        assert c.response().line == busy
    # a session of 127.0.0.2 ends: its address has a slot again (the
    # refused one did not count)
    assert a[0].cmd("QUIT").raw == b"+OK Bye\r\n"
    assert a[0].expect_eof()
    a[0].close()

    def greeted():
        c = client(d, greet=False, source="127.0.0.2")
        if c.response().raw == GREETING:
            a[0] = c
            return True
        c.close()
        return False
    wait_for(greeted, timeout=10, what="a free slot for 127.0.0.2")
    assert a[1].cmd("COMMENT still here").raw == b"+OK\r\n"
    for c in a + b:
        c.close()
    assert "(connect: per-address limit)" in d.log_text()


def test_sigterm_closes_sessions(daemon_factory):
    d = mtqp_daemon(daemon_factory)
    c = client(d)
    c.send(b"COMMENT partial line without end")
    d.stop()                      # must exit 0 within the fixture's limit
    assert c.expect_eof()
    c.close()


# --------------------------------------------------- privacy, rate limiting

def test_noinfo_replies_identical(daemon_factory):
    d = mtqp_daemon(daemon_factory)
    s1, c1 = new_secret()
    s2, c2 = new_secret()
    e1 = new_envid("plus+one")
    e2 = new_envid()
    q1 = submit_tracked(d, e1, c1, ["user@example.org"], timeout=86400)
    q2 = submit_tracked(d, e2, c2, ["user@example.org"], timeout=1)
    m2 = wait_status(d, q2, ("delivered",))
    expiry = m2["tracking_expiry"]
    assert expiry is not None
    # the live record answers, with or without <> and xtext
    for form in (xtext(e1), "<%s>" % xtext(e1)):
        parts = track_parts(d, form, s1)
        assert parts[0].message["original-envelope-id"] == e1
    # delivered and past its MTRK timeout: expired
    wait_for(lambda: time.time() >= expiry + 1, timeout=10,
             what="the MTRK timeout of %s" % q2)
    unpadded = s1.rstrip("=")
    replies = [
        track(d, xtext(e1), s2).raw,                 # wrong secret
        track(d, xtext(e1), base64.b64encode(b"x").decode()).raw,
        track(d, new_envid(), s1).raw,               # unknown ENVID
        track(d, e2, s2).raw,                        # expired record
        track(d, "<%s>" % e2, s2).raw,
    ]
    assert replies == [NOINFO] * len(replies), replies
    assert track(d, xtext(e1), unpadded).indicator == "+OK+"
    log = d.log_text()
    assert log.count("result=noinfo") == len(replies), log[-3000:]
    assert "track envid=%s result=found qid=%s" % (e1, q1) in log
    for s in (s1, s2, unpadded):
        assert s not in log, "a secret was logged"


def test_rate_limit_per_address(daemon_factory):
    d = mtqp_daemon(daemon_factory, {"mtqp_auth_failures": "2 per 1h"})
    s, cert = new_secret()
    wrong, _ = new_secret()
    e = new_envid()
    submit_tracked(d, e, cert, ["user@example.org"])
    with client(d, source="127.0.0.2") as c:
        assert c.track(e, wrong).raw == NOINFO
        assert c.track(new_envid(), s).raw == NOINFO
    # at the limit: the right secret gets the same reply, in any session
    with client(d, source="127.0.0.2") as c:
        assert c.track(e, s).raw == NOINFO
        assert c.track(e, s).raw == NOINFO
    # another address is not limited, and so is no secret guessing
    parts = track_parts(d, e, s, source="127.0.0.3")
    assert parts[0].message["original-envelope-id"] == e
    log = d.log_text()
    assert log.count("client=[127.0.0.2] track envid=%s result=noinfo "
                     "reason=mtqp_auth_failures" % e) == 2, log[-3000:]
    assert "client=[127.0.0.3] track envid=%s result=found" % e in log


def test_same_envid_each_secret_its_own(daemon_factory):
    d = mtqp_daemon(daemon_factory)
    s1, c1 = new_secret()
    s2, c2 = new_secret()
    e = new_envid()
    q1 = submit_tracked(d, e, c1, ["a@example.org"])
    q2 = submit_tracked(d, e, c2, ["b@example.org"], sender="x@example.net")
    wait_status(d, q1, ("delivered",))
    wait_status(d, q2, ("delivered",))
    for secret, want, other in ((s1, "a@example.org", "b@example.org"),
                                (s2, "b@example.org", "a@example.org")):
        parts = track_parts(d, e, secret)
        assert len(parts) == 1
        addrs = [trackparse.typed(r["final-recipient"])[1]
                 for r in parts[0].recipients]
        assert addrs == [want], addrs
        assert other.encode() not in parts[0].raw
    assert "result=found qid=%s" % q1 in d.log_text()
    assert "result=found qid=%s" % q2 in d.log_text()


# ------------------------------------------------------- answers, by field

def test_answer_delivered_and_failed(daemon_factory, sink):
    d = mtqp_daemon(daemon_factory, {"smarthost": "[127.0.0.1]:%d" % sink,
                                     "retry_schedule": "1h"})
    s, cert = new_secret()
    e = new_envid()
    qid = submit_tracked(d, e, cert, ["user@example.org", "bad@remote.test"])
    m = wait_status(d, qid, FINAL)
    assert rcpt_status(d, qid) == {"user@example.org": "delivered",
                                   "bad@remote.test": "failed"}
    r = track(d, e, s)
    assert r.line == "+OK+ Tracking information follows"
    raw = r.raw.split(b"\r\n")
    assert raw[1].startswith(b"Content-Type: multipart/related; boundary=\"")
    assert raw[1].endswith(b"\"; type=\"message/tracking-status\"")
    parts = trackparse.parse(r.body)
    assert len(parts) == 1
    p = parts[0]
    assert p.headers == {"content-type": "message/tracking-status"}
    assert p.message["original-envelope-id"] == e
    assert trackparse.typed(p.message["reporting-mta"]) == ("dns", HOST)
    assert trackparse.date(p.message["arrival-date"]).timestamp() == \
        m["arrival_time"]
    assert len(p.recipients) == 2
    ok = p.recipient("user@example.org")
    assert trackparse.typed(ok["original-recipient"]) == \
        ("rfc822", "user@example.org")
    assert trackparse.typed(ok["final-recipient"]) == \
        ("rfc822", "user@example.org")
    assert ok["action"] == "delivered"
    assert trackparse.status(ok["status"]) == "2.5.0"
    assert "will-retry-until" not in ok
    bad = p.recipient("bad@remote.test")
    assert bad["action"] == "failed"
    assert trackparse.status(bad["status"]) == "5.1.1"
    dtype, diag = trackparse.typed(bad["diagnostic-code"])
    assert dtype == "smtp" and diag.startswith("550 5.1.1 "), diag
    assert "Recipient address rejected" in diag
    assert trackparse.typed(bad["remote-mta"])[0] == "dns"
    trackparse.date(bad["last-attempt-date"])
    assert "will-retry-until" not in bad


def test_answer_delayed_then_held(daemon_factory):
    closed = free_port()               # nothing listens there
    d = mtqp_daemon(daemon_factory, {"smarthost": "[127.0.0.1]:%d" % closed,
                                     "retry_schedule": "1h"})
    s, cert = new_secret()
    e = new_envid()
    qid = submit_tracked(d, e, cert, ["far@remote.test"])
    m = wait_status(d, qid, ("deferred",))
    p = track_parts(d, e, s)[0]
    r = p.recipient("far@remote.test")
    assert r["action"] == "delayed"
    assert trackparse.status(r["status"]).startswith("4.")
    until = trackparse.date(r["will-retry-until"]).timestamp()
    assert until == m["arrival_time"] + 5 * 86400       # queue_lifetime
    trackparse.date(r["last-attempt-date"])
    assert "x-waymark-handling-state" not in r
    # held by the operator: still delayed, with the handling state
    d.cli("hold", qid, check=0)
    p = track_parts(d, e, s)[0]
    r = p.recipient("far@remote.test")
    assert r["action"] == "delayed"
    state = r["x-waymark-handling-state"]
    assert state.startswith("other/hold; since="), state
    since = state.split("since=", 1)[1].split(";", 1)[0]
    held = d.show_json(qid)
    assert trackparse.date(since).timestamp() == held["state_since"]
    assert "reason=held by the operator" in state
    assert trackparse.date(r["will-retry-until"]).timestamp() >= until
