"""
`waymark track` (issue 10), black box: the installed command against
scripted MTQP servers written here (one thread per connection, on
127.0.10.x, independent of Waymark's own MTQP server) and dnsmasq for the
`_mtqp._tcp` SRV and address records.

Covered: the secret from ~/.waymark/keys (the last line for the ENVID
wins; the ENVID sent as xtext), no key (exit 3), the first server
unreachable (1), -ERR/noinfo (4), a first server that speaks SMTP (5, no
TRACK sent), referrals followed through SRV (target and port) and through
the port-1038 fallback (a server on 127.0.10.x:1038), a later hop that
does not speak MTQP shown as the end of the path (exit 0), each host asked
once, a chained answer (no second query), STARTTLS whenever offered
(certificate made with `openssl`; --ca, the name asked, --tls-verify=none,
verification failures), the secret never sent in clear to a server that
offered STARTTLS (required or not) whose TLS then failed, the first
server from the configuration's `mtqp` (asked as `hostname`), the --json
object key by key, the text timeline line by line, usage errors (2),
a hop's 8-bit and ESC octets (never raw on the terminal, --json intact),
at most 64 hosts asked (the others shown as not asked).
"""

import json
import os
import re
import socket
import ssl
import subprocess
import threading

import pytest

from conftest import WAYMARK, SAN_MARKERS
from dnsfix import dns_factory  # noqa: F401  (fixture)

ENVID = "id+1=x@client.test"           # '+' and '=' are xtext-encoded
XENVID = "id+2B1+3Dx@client.test"
SECRET = "c2VjcmV0LW9mLWE="             # base64("secret-of-a")
IO_TIMEOUT = 10.0
ARRIVAL = "Tue, 14 Nov 2023 22:13:20 +0000"            # 1700000000
ATTEMPT = "Tue, 14 Nov 2023 22:13:25 +0000"            # 1700000005
SINCE = "Tue, 14 Nov 2023 22:13:30 +0000"              # 1700000010
RETRY = "Sun, 19 Nov 2023 23:13:10 +0000"              # 1700435590


# ---------------------------------------------------------------- bodies

def status_part(reporting, rcpts, envid=ENVID, extra_hdr=""):
    """One message/tracking-status body part (MIME header included).
    rcpts: lists of (field, value)."""
    lines = ["Content-Type: message/tracking-status"]
    if extra_hdr:
        lines.append(extra_hdr)
    lines += ["", "Original-Envelope-Id: " + envid,
              "Reporting-MTA: dns; " + reporting, "Arrival-Date: " + ARRIVAL]
    for fields in rcpts:
        lines.append("")
        lines += ["%s: %s" % f for f in fields]
    return "\r\n".join(lines) + "\r\n"


def answer_body(parts, boundary="=_wm_t1"):
    """The multipart/related body of a TRACK answer (before dot-stuffing),
    with RFC 3887 example 8's dot-stuffed header and a '.' preamble line."""
    out = ('Content-Type: multipart/related; boundary="%s"; '
           'type="message/tracking-status"\r\n'
           ".Dot-Stuffed-Header: as an example\r\n\r\n.\r\n" % boundary)
    for p in parts:
        out += "--%s\r\n%s\r\n" % (boundary, p)
    return out + "--%s--\r\n" % boundary


def rcpt(addr, action, status, remote=None, attempt=None, extra=()):
    f = [("Original-Recipient", "rfc822; " + addr),
         ("Final-Recipient", "rfc822; " + addr.lower()),
         ("Action", action), ("Status", status)]
    if remote:
        f.append(("Remote-MTA", "dns; " + remote))
    if attempt:
        f.append(("Last-Attempt-Date", attempt))
    return f + list(extra)


# ---------------------------------------------------------------- server

class MtqpServer:
    """A scripted MTQP server on addr:port (port 0: any free one).

    starttls: None, "offer" or "required"; cert/key for the handshake;
    starttls_reply: a refusal line instead of "+OK Begin TLS negotiation";
    answers: {(envid_xtext, secret): body (str, or bytes sent as they
    are)}; anything else gets -ERR/noinfo; smtp: greet like an SMTP server
    instead; greeting: these bytes instead of the greeting.  received:
    (tls, line) of every line read, in order, across connections."""

    def __init__(self, addr, port=0, starttls=None, cert=None, key=None,
                 starttls_reply=None, answers=None, smtp=False,
                 name="mtqp.test", greeting=None):
        self.addr = addr
        self.greeting = greeting
        self.starttls = starttls
        self.starttls_reply = starttls_reply
        self.answers = answers or {}
        self.smtp = smtp
        self.name = name
        self.ctx = None
        if cert:
            self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.ctx.load_cert_chain(cert, key)
        self.received = []
        self.events = []
        self.lock = threading.Lock()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((addr, port))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    @property
    def hostport(self):
        return "%s:%d" % (self.addr, self.port)

    def lines(self, tls=None):
        with self.lock:
            return [l for t, l in self.received if tls is None or t == tls]

    def close(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)    # wakes up accept()
        except OSError:
            pass
        self.sock.close()
        self.thread.join(IO_TIMEOUT)

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
            self._dialogue(c)
        except (OSError, ssl.SSLError) as e:
            with self.lock:
                self.events.append("error: %s" % e)
        finally:
            try:
                c.close()
            except OSError:
                pass

    def _dialogue(self, c):
        buf = b""
        tls = False

        def readline():
            nonlocal buf
            while b"\r\n" not in buf:
                d = c.recv(4096)
                if not d:
                    return None
                buf += d
            line, buf = buf.split(b"\r\n", 1)
            line = line.decode("ascii", "replace")
            with self.lock:
                self.received.append((tls, line))
            return line

        if self.smtp:
            c.sendall(b"220 %s ESMTP ready\r\n" % self.name.encode())
            while readline() is not None:
                c.sendall(b"500 5.5.1 Unrecognized command\r\n")
            return

        def greet():
            if self.greeting is not None:
                c.sendall(self.greeting)
            elif self.starttls and not tls:
                opt = "STARTTLS" + (" required" if self.starttls ==
                                    "required" else "")
                c.sendall(("+OK+/MTQP %s Test MTQP server ready\r\n%s\r\n"
                           "vnd.test.option with a\r\n  continued line\r\n"
                           ".\r\n" % (self.name, opt)).encode())
            else:
                c.sendall(("+OK/MTQP %s Test MTQP server ready\r\n"
                           % self.name).encode())

        greet()
        while True:
            line = readline()
            if line is None:
                return
            verb = line.split(" ", 1)[0].upper()
            if verb == "STARTTLS" and self.starttls and not tls:
                if self.starttls_reply:
                    c.sendall(self.starttls_reply.encode() + b"\r\n")
                    continue
                c.sendall(b"+OK Begin TLS negotiation\r\n")
                try:
                    c = self.ctx.wrap_socket(c, server_side=True)
                except (ssl.SSLError, OSError) as e:
                    with self.lock:
                        self.events.append("handshake failed: %s" % e)
                    return
                c.settimeout(IO_TIMEOUT)
                tls = True
                buf = b""
                greet()
            elif verb == "TRACK":
                args = line.split()
                if self.starttls == "required" and not tls:
                    c.sendall(b"-ERR/tls-required TLS required: use "
                              b"STARTTLS first\r\n")
                    continue
                body = self.answers.get(tuple(args[1:3])) \
                    if len(args) == 3 else None
                if body is None:
                    c.sendall(b"-ERR/noinfo No tracking information "
                              b"available\r\n")
                    continue
                if isinstance(body, str):
                    body = body.encode()
                out = [b"+OK+ Tracking information follows"]
                for l in body.split(b"\r\n")[:-1]:
                    out.append(b"." + l if l.startswith(b".") else l)
                out.append(b".")
                c.sendall(b"\r\n".join(out) + b"\r\n")
            elif verb == "QUIT":
                c.sendall(b"+OK Bye\r\n")
                return
            else:
                c.sendall(b"-BAD Unrecognized command\r\n")


@pytest.fixture
def servers():
    made = []

    def make(*a, **kw):
        s = MtqpServer(*a, **kw)
        made.append(s)
        return s

    yield make
    for s in made:
        s.close()


def port1038_free(addr):
    s = socket.socket()
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((addr, 1038))
        return True
    except OSError:
        return False
    finally:
        s.close()


# ---------------------------------------------------------------- helpers

@pytest.fixture
def home(tmp_path):
    h = tmp_path / "home"
    h.mkdir()
    return h


def write_keys(home, lines):
    d = home / ".waymark"
    d.mkdir(mode=0o700, exist_ok=True)
    (d / "keys").write_text("".join(l + "\n" for l in lines))
    os.chmod(d / "keys", 0o600)


def write_conf(tmp_path, **keys):
    conf = tmp_path / "waymark.conf"
    base = {"hostname": "client.test"}
    base.update(keys)
    conf.write_text("".join("%s = %s\n" % kv for kv in base.items()))
    return str(conf)


def track(conf, home, *args, timeout=60):
    env = dict(os.environ, HOME=str(home), TZ="UTC")
    p = subprocess.run([WAYMARK, "-f", conf, "track"] + list(args),
                       capture_output=True, text=True, timeout=timeout,
                       env=env)
    for m in SAN_MARKERS:
        assert m not in p.stderr, p.stderr
    return p


def track_json(conf, home, *args):
    p = track(conf, home, *args, "--json")
    lines = p.stdout.splitlines()
    assert len(lines) == 1, p.stdout + p.stderr
    return p, json.loads(lines[0])


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    """cert_a: for a.test and 127.0.10.2 (and its key); other: another name."""
    d = tmp_path_factory.mktemp("certs")

    def make(name, san):
        cert, key = str(d / (name + ".pem")), str(d / (name + ".key"))
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec",
                        "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                        "-subj", "/CN=" + name, "-days", "2",
                        "-addext", "subjectAltName=" + san,
                        "-keyout", key, "-out", cert],
                       check=True, capture_output=True)
        return cert, key

    return {"a": make("a.test", "DNS:a.test,IP:127.0.10.2"),
            "other": make("other.test", "DNS:other.test")}


# ---------------------------------------------------------------- the key

def test_key_file_last_line_wins(tmp_path, home, servers):
    body = answer_body([status_part("a.test", [
        rcpt("bob@b.test", "delivered", "2.5.0", attempt=ATTEMPT)])])
    s = servers("127.0.10.2", answers={(XENVID, SECRET): body})
    write_keys(home, [ENVID + " b2xkLXNlY3JldA==",      # an older secret
                      "other@client.test " + SECRET,
                      ENVID + " " + SECRET,              # the last one
                      "not a key line"])
    conf = write_conf(tmp_path)
    p = track(conf, home, ENVID, "--server", s.hostport)
    assert p.returncode == 0, p.stderr
    tracks = [l for l in s.lines() if l.startswith("TRACK")]
    assert tracks == ["TRACK %s %s" % (XENVID, SECRET)]
    assert s.lines()[-1] == "QUIT"
    assert "delivered at a.test (hop 1)" in p.stdout


def test_secret_option_overrides_the_key_file(tmp_path, home, servers):
    body = answer_body([status_part("a.test", [
        rcpt("bob@b.test", "delivered", "2.5.0")])])
    s = servers("127.0.10.2", answers={(XENVID, SECRET): body})
    write_keys(home, [ENVID + " b2xkLXNlY3JldA=="])
    p = track(write_conf(tmp_path), home, ENVID, "--secret", SECRET,
              "--server", s.hostport)
    assert p.returncode == 0, p.stderr
    assert [l for l in s.lines() if l.startswith("TRACK")] == \
        ["TRACK %s %s" % (XENVID, SECRET)]


def test_no_key(tmp_path, home, servers):
    s = servers("127.0.10.2")
    conf = write_conf(tmp_path)
    p = track(conf, home, ENVID, "--server", s.hostport)      # no file
    assert p.returncode == 3, p.stderr
    assert "no key" in p.stderr
    write_keys(home, ["other@client.test " + SECRET])
    p = track(conf, home, ENVID, "--server", s.hostport)      # not in it
    assert p.returncode == 3, p.stderr
    assert "no key for " + ENVID in p.stderr
    assert s.lines() == []                                    # never asked


# ---------------------------------------------------------------- the first server

def test_unreachable(tmp_path, home, dns_factory):
    dns = dns_factory(hosts=[("known.test", "127.0.10.2")])
    conf = write_conf(tmp_path, dns=dns.server)
    s = socket.socket()
    s.bind(("127.0.10.2", 0))
    port = s.getsockname()[1]
    s.close()                                         # nobody listens there
    p = track(conf, home, ENVID, "--secret", SECRET,
              "--server", "127.0.10.2:%d" % port)
    assert p.returncode == 1, p.stderr
    assert "unreachable" in p.stderr
    p = track(conf, home, ENVID, "--secret", SECRET, "--server",
              "nowhere.test:%d" % port)               # NXDOMAIN
    assert p.returncode == 1, p.stderr
    p, o = track_json(conf, home, ENVID, "--secret", SECRET,
                      "--server", "127.0.10.2:%d" % port)
    assert p.returncode == 1
    assert o["hops"][0]["result"] == "unreachable"
    assert o["hops"][0]["error"]
    assert o["recipients"] == []


def test_noinfo(tmp_path, home, servers):
    s = servers("127.0.10.2", answers={})
    p = track(write_conf(tmp_path), home, ENVID, "--secret", SECRET,
              "--server", s.hostport)
    assert p.returncode == 4, p.stderr
    assert "-ERR/noinfo" in p.stderr
    assert p.stdout == ""


def test_not_mtqp(tmp_path, home, servers):
    s = servers("127.0.10.2", smtp=True)
    conf = write_conf(tmp_path)
    p = track(conf, home, ENVID, "--secret", SECRET, "--server", s.hostport)
    assert p.returncode == 5, p.stderr
    assert "does not speak MTQP" in p.stderr
    p, o = track_json(conf, home, ENVID, "--secret", SECRET,
                      "--server", s.hostport)
    assert p.returncode == 5
    assert o["hops"][0]["result"] == "not_mtqp"
    assert o["hops"][0]["server"] == s.hostport
    assert not any(SECRET in l for l in s.lines())    # the secret stayed here


def test_first_server_from_config(tmp_path, home, servers, certs):
    """No --server: the first `mtqp` address, asked as `hostname` (the
    STARTTLS name, checked against the certificate)."""
    cert, key = certs["a"]
    body = answer_body([status_part("a.test", [
        rcpt("bob@b.test", "delivered", "2.5.0")])])
    s = servers("127.0.10.2", starttls="offer", cert=cert, key=key,
                answers={(XENVID, SECRET): body})
    conf = write_conf(tmp_path, hostname="a.test",
                      mtqp="127.0.10.2:%d, 127.0.10.9:1" % s.port)
    p, o = track_json(conf, home, ENVID, "--secret", SECRET, "--ca", cert)
    assert p.returncode == 0, p.stderr
    assert s.lines(tls=False) == ["STARTTLS a.test"]
    assert o["hops"][0]["host"] == "a.test"
    assert o["hops"][0]["server"] == s.hostport
    assert o["hops"][0]["tls"] is True


def test_no_server_at_all(tmp_path, home):
    p = track(write_conf(tmp_path), home, ENVID, "--secret", SECRET)
    assert p.returncode == 2
    assert "--server" in p.stderr


# ---------------------------------------------------------------- TLS

def test_starttls_used_when_offered(tmp_path, home, servers, certs):
    cert, key = certs["a"]
    body = answer_body([status_part("a.test", [
        rcpt("bob@b.test", "delivered", "2.5.0")])])
    s = servers("127.0.10.2", starttls="offer", cert=cert, key=key,
                answers={(XENVID, SECRET): body})
    conf = write_conf(tmp_path)
    p = track(conf, home, ENVID, "--secret", SECRET, "--server", s.hostport,
              "--ca", cert)
    assert p.returncode == 0, p.stderr
    # STARTTLS with the name asked (an IP literal as its text), TRACK only
    # inside TLS
    assert s.lines(tls=False) == ["STARTTLS 127.0.10.2"]
    assert s.lines(tls=True) == ["TRACK %s %s" % (XENVID, SECRET), "QUIT"]
    assert "Hop 1: a.test (%s, TLS)" % s.hostport in p.stdout.splitlines()


def test_tls_verification(tmp_path, home, servers, certs):
    cert, key = certs["a"]
    ocert, okey = certs["other"]
    body = answer_body([status_part("a.test", [
        rcpt("bob@b.test", "delivered", "2.5.0")])])
    conf = write_conf(tmp_path)
    # not signed by the system CAs: refused, nothing sent in clear
    s = servers("127.0.10.2", starttls="offer", cert=cert, key=key,
                answers={(XENVID, SECRET): body})
    p, o = track_json(conf, home, ENVID, "--secret", SECRET,
                      "--server", s.hostport)
    assert p.returncode == 5, p.stderr
    assert o["hops"][0]["result"] == "tls_failed"
    assert "certificate" in o["hops"][0]["error"]
    assert not any(l.startswith("TRACK") for l in s.lines())
    # trusted, but for another name
    s2 = servers("127.0.10.3", starttls="offer", cert=ocert, key=okey,
                 answers={(XENVID, SECRET): body})
    p = track(conf, home, ENVID, "--secret", SECRET, "--server",
              s2.hostport, "--ca", ocert)
    assert p.returncode == 5, p.stderr
    assert not any(l.startswith("TRACK") for l in s2.lines())
    # --tls-verify=none: encrypted, not verified
    p, o = track_json(conf, home, ENVID, "--secret", SECRET, "--server",
                      s2.hostport, "--tls-verify=none")
    assert p.returncode == 0, p.stderr
    assert o["hops"][0]["tls"] is True
    assert s2.lines(tls=True)[0] == "TRACK %s %s" % (XENVID, SECRET)


def test_secret_never_sent_in_clear(tmp_path, home, servers, certs):
    cert, key = certs["a"]
    body = answer_body([status_part("a.test", [
        rcpt("bob@b.test", "delivered", "2.5.0")])])
    conf = write_conf(tmp_path)
    # STARTTLS required, and refused when asked
    s = servers("127.0.10.2", starttls="required", cert=cert, key=key,
                starttls_reply="-BAD/unavailable TLS not available now",
                answers={(XENVID, SECRET): body})
    p, o = track_json(conf, home, ENVID, "--secret", SECRET,
                      "--server", s.hostport, "--ca", cert)
    assert p.returncode == 5, p.stderr
    assert o["hops"][0]["result"] == "tls_failed"
    assert not any(SECRET in l for l in s.lines()), s.lines()
    # STARTTLS required, the handshake fails (untrusted certificate)
    s2 = servers("127.0.10.3", starttls="required", cert=cert, key=key,
                 answers={(XENVID, SECRET): body})
    p = track(conf, home, ENVID, "--secret", SECRET, "--server", s2.hostport)
    assert p.returncode == 5, p.stderr
    assert not any(SECRET in l for l in s2.lines()), s2.lines()
    # offered without "required": a failed STARTTLS does not fall back
    s3 = servers("127.0.10.4", starttls="offer", cert=cert, key=key,
                 starttls_reply="-ERR/unavailable no",
                 answers={(XENVID, SECRET): body})
    p = track(conf, home, ENVID, "--secret", SECRET, "--server", s3.hostport)
    assert p.returncode == 5, p.stderr
    assert not any(SECRET in l for l in s3.lines()), s3.lines()
    # and with TLS working, required is satisfied
    s4 = servers("127.0.10.2", starttls="required", cert=cert, key=key,
                 answers={(XENVID, SECRET): body})
    p = track(conf, home, ENVID, "--secret", SECRET, "--server", s4.hostport,
              "--ca", cert)
    assert p.returncode == 0, p.stderr
    assert s4.lines(tls=False) == ["STARTTLS 127.0.10.2"]


# ---------------------------------------------------------------- the walk

@pytest.fixture
def walk(tmp_path, servers, dns_factory):
    """A (127.0.10.2, --server) transfers bob to mx.b.test (SRV ->
    mtqp.b.test:PORT on 127.0.10.3), carol to mx.c.test (no SRV: port 1038
    on 127.0.10.4), erin to mx.d.test (port 1038 on 127.0.10.5 speaks SMTP)
    and relays dave to mx.r.test.  B holds bob in quarantine; C delivered
    carol and transferred frank back to mx.b.test (asked once only)."""
    for a in ("127.0.10.4", "127.0.10.5"):
        if not port1038_free(a):
            pytest.skip("port 1038 is taken on %s" % a)
    b = servers("127.0.10.3", answers={(XENVID, SECRET): answer_body([
        status_part("b.test", [
            rcpt("bob@b.test", "delayed", "4.0.0", extra=[
                ("Will-Retry-Until", RETRY),
                ("X-Waymark-Handling-State", "quarantine/spam; since=%s;"
                 "\r\n reason=held by policy; rule 3" % SINCE)])])])})
    c = servers("127.0.10.4", 1038, answers={(XENVID, SECRET): answer_body([
        status_part("c.test", [
            rcpt("carol@c.test", "delivered", "2.5.0", attempt=ATTEMPT),
            rcpt("frank@f.test", "transferred", "2.4.0",
                 remote="MX.B.TEST.", attempt=ATTEMPT)])])})
    d = servers("127.0.10.5", 1038, smtp=True, name="mx.d.test")
    a = servers("127.0.10.2", answers={(XENVID, SECRET): answer_body([
        status_part("a.test", [
            rcpt("bob@b.test", "transferred", "2.4.0", remote="mx.b.test",
                 attempt=ATTEMPT),
            rcpt("carol@c.test", "transferred", "2.4.0", remote="mx.c.test",
                 attempt=ATTEMPT),
            rcpt("dave@r.test", "relayed", "2.1.9", remote="mx.r.test",
                 attempt=ATTEMPT),
            rcpt("erin@d.test", "transferred", "2.4.0", remote="mx.d.test",
                 attempt=ATTEMPT),
            rcpt("frank@f.test", "transferred", "2.4.0",
                 remote="mx.c.test", attempt=ATTEMPT)])])})
    dns = dns_factory(
        hosts=[("mtqp.b.test", "127.0.10.3"), ("mx.b.test", "127.0.10.9"),
               ("mx.c.test", "127.0.10.4"), ("mx.d.test", "127.0.10.5")],
        srv=[("_mtqp._tcp.mx.b.test", "mtqp.b.test", b.port, 10, 5)])
    conf = write_conf(tmp_path, dns=dns.server)
    return {"a": a, "b": b, "c": c, "d": d, "dns": dns, "conf": conf}


def test_walk_text(walk, home):
    a, b, c, d = walk["a"], walk["b"], walk["c"], walk["d"]
    write_keys(home, [ENVID + " " + SECRET])
    p = track(walk["conf"], home, ENVID, "--server", a.hostport)
    assert p.returncode == 0, p.stderr
    out = p.stdout.splitlines()
    want = [
        "Tracking " + ENVID,
        "Hop 1: a.test (%s)" % a.hostport,
        "  arrived " + ARRIVAL,
        "  bob@b.test       transferred  2.4.0   to mx.b.test, " + ATTEMPT,
        "  carol@c.test     transferred  2.4.0   to mx.c.test, " + ATTEMPT,
        "  dave@r.test      relayed      2.1.9   to mx.r.test, " + ATTEMPT,
        "  erin@d.test      transferred  2.4.0   to mx.d.test, " + ATTEMPT,
        "  frank@f.test     transferred  2.4.0   to mx.c.test, " + ATTEMPT,
        "Hop 2: b.test (%s)" % b.hostport,
        "  arrived " + ARRIVAL,
        "  bob@b.test       delayed      4.0.0   held: quarantine/spam since "
        "%s (held by policy; rule 3), kept until %s" % (SINCE, RETRY),
        "Hop 3: c.test (127.0.10.4:1038)",
        "  arrived " + ARRIVAL,
        "  carol@c.test     delivered    2.5.0   " + ATTEMPT,
        "  frank@f.test     transferred  2.4.0   to MX.B.TEST., " + ATTEMPT,
        "Hop 4: mx.d.test does not speak MTQP: tracking ends here",
        "Outcome",
        "  bob@b.test       held at b.test (hop 2): quarantine/spam since "
        + SINCE,
        "  carol@c.test     delivered at c.test (hop 3)",
        "  dave@r.test      relayed to mx.r.test: tracking ends there",
        "  erin@d.test      transferred to mx.d.test (hop 1): mx.d.test does "
        "not speak MTQP: tracking ends there",
        "  frank@f.test     transferred to MX.B.TEST. (hop 3), which does "
        "not report it",
    ]
    assert out == want, "\n".join(out)
    # each host asked once; the secret never reached the SMTP server
    for s in (a, b, c):
        assert [l for l in s.lines() if l.startswith("TRACK")] == \
            ["TRACK %s %s" % (XENVID, SECRET)], s.lines()
    assert d.lines() == []
    # SRV first for every Remote-MTA host; addresses of the SRV target, of
    # the hosts without SRV; nothing for the relayed one
    dns = walk["dns"]
    assert "SRV" in dns.queries("_mtqp._tcp.mx.b.test")
    assert "SRV" in dns.queries("_mtqp._tcp.mx.c.test")
    assert "A" in dns.queries("mtqp.b.test")
    assert dns.queries("mx.b.test") == []             # the SRV target is used
    assert "A" in dns.queries("mx.c.test")
    assert dns.queries("_mtqp._tcp.mx.r.test") == []


def test_walk_json(walk, home):
    a, b = walk["a"], walk["b"]
    p, o = track_json(walk["conf"], home, ENVID, "--secret", SECRET,
                      "--server", a.hostport)
    assert p.returncode == 0, p.stderr
    assert set(o) == {"envid", "hops", "recipients"}
    assert o["envid"] == ENVID
    hops = o["hops"]
    assert [h["host"] for h in hops] == ["127.0.10.2", "mx.b.test",
                                         "mx.c.test", "mx.d.test"]
    hop_keys = {"host", "server", "tls", "chained", "result", "error",
                "reporting_mta", "arrival_date", "recipients"}
    for h in hops:
        assert set(h) == hop_keys, h
        assert h["tls"] is False and h["chained"] is False
    h1 = hops[0]
    assert h1["server"] == a.hostport
    assert h1["result"] == "ok" and h1["error"] is None
    assert h1["reporting_mta"] == "a.test"
    assert h1["arrival_date"] == 1700000000
    assert [r["original_recipient"] for r in h1["recipients"]] == \
        ["bob@b.test", "carol@c.test", "dave@r.test", "erin@d.test",
         "frank@f.test"]
    r = h1["recipients"][0]
    assert r == {"original_recipient": "bob@b.test",
                 "final_recipient": "bob@b.test", "action": "transferred",
                 "status": "2.4.0", "remote_mta": "mx.b.test",
                 "last_attempt": 1700000005, "will_retry_until": None,
                 "diagnostic": None, "handling_state": None}
    h2 = hops[1]
    assert h2["server"] == b.hostport and h2["reporting_mta"] == "b.test"
    r = h2["recipients"][0]
    assert r["action"] == "delayed" and r["status"] == "4.0.0"
    assert r["remote_mta"] is None and r["last_attempt"] is None
    assert r["will_retry_until"] == 1700435590
    assert r["handling_state"] == {"state": "quarantine", "value": "spam",
                                   "since": 1700000010,
                                   "reason": "held by policy; rule 3"}
    assert hops[2]["server"] == "127.0.10.4:1038"
    assert hops[2]["recipients"][0]["action"] == "delivered"
    h4 = hops[3]
    assert h4["result"] == "not_mtqp" and h4["server"] == "127.0.10.5:1038"
    assert h4["error"] and h4["reporting_mta"] is None
    assert h4["arrival_date"] is None and h4["recipients"] == []
    assert o["recipients"] == [
        {"recipient": "bob@b.test", "action": "delayed", "status": "4.0.0",
         "reporting_mta": "b.test", "hop": 2},
        {"recipient": "carol@c.test", "action": "delivered",
         "status": "2.5.0", "reporting_mta": "c.test", "hop": 3},
        {"recipient": "dave@r.test", "action": "relayed", "status": "2.1.9",
         "reporting_mta": "a.test", "hop": 1},
        {"recipient": "erin@d.test", "action": "transferred",
         "status": "2.4.0", "reporting_mta": "a.test", "hop": 1},
        {"recipient": "frank@f.test", "action": "transferred",
         "status": "2.4.0", "reporting_mta": "c.test", "hop": 3},
    ]


def test_chained_answer(tmp_path, home, servers, dns_factory):
    """Parts chained inside an answer are hops of their own; the hop they
    cover is not asked again (it has no DNS record here)."""
    body = answer_body([
        status_part("a.test", [rcpt("bob@b.test", "transferred", "2.4.0",
                                    remote="mx.b.test", attempt=ATTEMPT)]),
        status_part("b.test", [rcpt("bob@b.test", "delivered", "2.5.0")])])
    s = servers("127.0.10.2", answers={(XENVID, SECRET): body})
    dns = dns_factory()
    conf = write_conf(tmp_path, dns=dns.server)
    p, o = track_json(conf, home, ENVID, "--secret", SECRET,
                      "--server", s.hostport)
    assert p.returncode == 0, p.stderr
    assert [(h["host"], h["server"], h["chained"]) for h in o["hops"]] == \
        [("127.0.10.2", s.hostport, False), ("b.test", None, True)]
    assert o["recipients"] == [
        {"recipient": "bob@b.test", "action": "delivered", "status": "2.5.0",
         "reporting_mta": "b.test", "hop": 2}]
    assert dns.queries("_mtqp._tcp.mx.b.test") == []
    p = track(conf, home, ENVID, "--secret", SECRET, "--server", s.hostport)
    assert "Hop 2: b.test (in the answer of hop 1)" in p.stdout.splitlines()


def test_hosts_asked_at_most_64(tmp_path, home, servers, dns_factory):
    """An answer naming 70 next hosts: 64 hosts are asked in all (the first
    server and 63 next hops, none of which resolves), the other 7 are shown
    as not asked and never looked up."""
    hosts = ["h%02d.test" % i for i in range(1, 71)]
    body = answer_body([status_part("a.test", [
        rcpt("r%02d@d.test" % i, "transferred", "2.4.0", remote=h)
        for i, h in enumerate(hosts, 1)])])
    s = servers("127.0.10.2", answers={(XENVID, SECRET): body})
    dns = dns_factory()
    conf = write_conf(tmp_path, dns=dns.server)
    p, o = track_json(conf, home, ENVID, "--secret", SECRET,
                      "--server", s.hostport)
    assert p.returncode == 0, p.stderr
    assert len(o["hops"]) == 64, [h["host"] for h in o["hops"]]
    assert [h["host"] for h in o["hops"][1:]] == hosts[:63]
    assert {h["result"] for h in o["hops"][1:]} == {"unreachable"}
    assert len(o["recipients"]) == 70
    assert all(r["hop"] == 1 and r["action"] == "transferred"
               for r in o["recipients"][63:]), o["recipients"][63:]
    for h in hosts[63:]:
        assert dns.queries("_mtqp._tcp." + h) == [], h
        assert dns.queries(h) == [], h
    p = track(conf, home, ENVID, "--secret", SECRET, "--server", s.hostport)
    assert p.returncode == 0, p.stderr
    out = p.stdout.splitlines()
    assert "Not asked: 7 more hosts (64 hosts at most)" in out, out
    assert "  r64@d.test       transferred to h64.test (hop 1): not asked " \
        "(64 hosts at most)" in out, out
    assert "  r63@d.test       transferred to h63.test (hop 1): h63.test " \
        "unreachable" in "\n".join(out), out


# ---------------------------------------------------------------- hostile text

def track_bytes(conf, home, *args):
    """`waymark track` with stdout and stderr as bytes."""
    env = dict(os.environ, HOME=str(home), TZ="UTC")
    p = subprocess.run([WAYMARK, "-f", conf, "track"] + list(args),
                       capture_output=True, timeout=60, env=env)
    for m in SAN_MARKERS:
        assert m.encode() not in p.stderr, p.stderr
    return p


def assert_safe(out):
    """Printable UTF-8 lines: no C0 control but LF, no DEL, no C1."""
    text = out.decode("utf-8")                  # strict: no broken UTF-8
    bad = [c for c in text if (ord(c) < 0x20 and c != "\n") or
           0x7f <= ord(c) <= 0x9f]
    assert bad == [], (bad, out)
    return text


def test_8bit_and_escape_octets(tmp_path, home, servers):
    """A hop's 8-bit and ESC octets (Reporting-MTA, Diagnostic-Code, a
    handling reason, a Remote-MTA host) reach neither the terminal raw nor
    break --json: every recipient is in the JSON object, broken UTF-8 as
    U+FFFD; the timeline shows controls and broken UTF-8 as '?'."""
    osc = "\x1b]0;owned\x07"
    body = answer_body([status_part("a.test\x1b[2J\xff", [
        rcpt("bob@b.test", "failed", "5.1.1", extra=[
            ("Diagnostic-Code", "smtp; 550 5.1.1 caf\xe9 %s unknown "
             "\xc3\xa9t\xc3\xa9" % osc)]),
        rcpt("carol@c.test", "delayed", "4.0.0", extra=[
            ("X-Waymark-Handling-State", "quarantine/spam; since=%s; "
             "reason=held \x9b31m by \xff policy" % SINCE)]),
        rcpt("dave@d.test", "transferred", "2.4.0",
             remote="mx.\xe9\x1b[1m.test")])]).encode("latin-1")
    s = servers("127.0.10.2", answers={(XENVID, SECRET): body})
    conf = write_conf(tmp_path)
    p = track_bytes(conf, home, ENVID, "--secret", SECRET, "--server",
                    s.hostport, "--json")
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert len(lines) == 1, p.stdout + p.stderr
    o = json.loads(lines[0])
    h1 = o["hops"][0]
    assert h1["reporting_mta"] == "a.test\x1b[2J\ufffd"
    r = {x["original_recipient"]: x for x in h1["recipients"]}
    assert set(r) == {"bob@b.test", "carol@c.test", "dave@d.test"}, r
    assert r["bob@b.test"]["diagnostic"] == \
        "smtp; 550 5.1.1 caf\ufffd %s unknown \u00e9t\u00e9" % osc
    assert r["carol@c.test"]["handling_state"]["reason"] == \
        "held \ufffd31m by \ufffd policy"
    assert r["dave@d.test"]["remote_mta"] == "mx.\ufffd\x1b[1m.test"
    assert [h["host"] for h in o["hops"]] == \
        ["127.0.10.2", "mx.\ufffd\x1b[1m.test"]
    assert [x["recipient"] for x in o["recipients"]] == \
        ["bob@b.test", "carol@c.test", "dave@d.test"]

    p = track_bytes(conf, home, ENVID, "--secret", SECRET, "--server",
                    s.hostport)
    assert p.returncode == 0, p.stderr
    out = assert_safe(p.stdout).splitlines()
    assert "Hop 1: a.test?[2J? (%s)" % s.hostport in out, out
    assert "  bob@b.test       failed       5.1.1   smtp; 550 5.1.1 caf? " \
        "?]0;owned? unknown \u00e9t\u00e9" in out, out
    assert any("held: quarantine/spam since %s (held ?31m by ? policy)"
               % SINCE in l for l in out), out
    assert any(l.startswith("Hop 2: mx.??[1m.test") for l in out), out


def test_escape_octets_in_server_lines(tmp_path, home, servers):
    """A server line quoted in an error (here a -TEMP greeting) reaches
    stderr and --json without its controls and broken UTF-8."""
    s = servers("127.0.10.2", greeting=b"-TEMP/MTQP \x1b[31mbusy\x07 "
                b"\xff\x9b\r\n")
    conf = write_conf(tmp_path)
    p = track_bytes(conf, home, ENVID, "--secret", SECRET, "--server",
                    s.hostport)
    assert p.returncode == 5, p.stderr
    err = assert_safe(p.stderr)
    assert "-TEMP/MTQP ?[31mbusy? ??" in err, err
    p = track_bytes(conf, home, ENVID, "--secret", SECRET, "--server",
                    s.hostport, "--json")
    assert p.returncode == 5, p.stderr
    assert_safe(p.stderr)
    o = json.loads(p.stdout)
    assert "-TEMP/MTQP ?[31mbusy? ??" in o["hops"][0]["error"], o


# ---------------------------------------------------------------- usage

@pytest.mark.parametrize("args", [
    [],                                               # no ENVID
    [ENVID, "extra"],
    [ENVID, "--bogus"],
    [ENVID, "--server"],                              # no value
    [ENVID, "--server", "a.test:0"],
    [ENVID, "--server", "a.test:70000"],
    [ENVID, "--server", "[not-an-address]:1038"],
    [ENVID, "--tls-verify=yes"],
    [ENVID, "--secret", "not base64!"],
    ["bad envid"],
    [ENVID, "--secret", SECRET, "--server", "127.0.10.2:1",
     "--ca", "/nonexistent/ca.pem"],
])
def test_usage_errors(tmp_path, home, args):
    p = track(write_conf(tmp_path), home, *args)
    assert p.returncode == 2, (args, p.stdout, p.stderr)
    assert p.stderr.startswith("waymark: track: ")


def test_help(tmp_path, home):
    p = track(write_conf(tmp_path), home, "--help")
    assert p.returncode == 0
    for opt in ("--secret", "--server", "--json", "--ca", "--tls-verify=none"):
        assert opt in p.stdout
    assert re.search(r"3 no key", p.stdout)
