"""
DNSSEC status and DANE for outbound SMTP (issue 16, RFC 7672): waymarkd with
`dns_dnssec = yes` and `dns` = an unbound on a loopback port, validating a
test zone signed here with ldnsutils (ldns-keygen, ldns-signzone) that it
serves itself (auth-zone, for-upstream) under a trust anchor made from the
zone's KSK.  Every next hop listens on one port (`smtp_port`) on its own
127.0.0.x; TLSA records are looked up at _25._tcp.HOST whatever the port.

Zone dane.test (signed):
  ok      MX mx1.ok (127.0.0.2, TLSA 3 1 1 of key A)           -> dane verified
  wrong   MX 10 mx1.wrong (127.0.0.3, key B; TLSA: another key)
          MX 20 mx2.wrong (127.0.0.2, TLSA 3 1 1 of key A)     -> second MX
  bogus   MX mx1.bogus (127.0.0.4; the TLSA RRSIG broken)      -> deferred,
                                                                  never contacted
  notls   MX mx1.notls (127.0.0.5, no STARTTLS; TLSA of key A) -> deferred, no
                                                                  cleartext
  ta      MX mx1.ta (127.0.0.7, a chain to a test CA, name mx1.ta.dane.test;
          TLSA 2 0 1 of the CA)                                -> DANE-TA verified
  taname  MX mx1.taname (127.0.0.8, the same chain: names do not match)
                                                               -> deferred
  cn      MX mx1.cn, a CNAME of real.cn (127.0.0.9); TLSA at real.cn
  cn2     MX mx1.cn2, a CNAME of real.cn2 (127.0.0.10); TLSA at mx1.cn2
                                       -> both dane verified (RFC 7672 2.2.2)
  pkix    MX mx1.pkix (127.0.0.11; TLSA 1 1 1 only: unusable for SMTP)
                          -> TLS mandatory, not authenticated (RFC 7672 2.2)
Zone plain.test (unsigned, outside the trust anchor):
  plain.test MX mx.plain.test (127.0.0.6, key A; TLSA of another key, but
          insecure)                                            -> opportunistic
"""

import email
import email.policy
import hashlib
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time

import pytest

from aiosmtpd.controller import Controller

from conftest import (common_port, make_message, queued_qid, run_waymarkd,
                      wait_for)
from dnsfix import dns_query, free_udp_tcp_port

UNBOUND = shutil.which("unbound") or "/usr/sbin/unbound"
NEEDED = [UNBOUND, shutil.which("ldns-keygen"), shutil.which("ldns-signzone"),
          shutil.which("openssl")]
pytestmark = pytest.mark.skipif(
    not all(n and os.path.exists(n) for n in NEEDED),
    reason="needs unbound, ldnsutils and openssl (scripts/deps.sh)")

FINAL = ("delivered", "relayed", "failed")
ADDRS = ("127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5", "127.0.0.6",
         "127.0.0.7", "127.0.0.8", "127.0.0.9", "127.0.0.10", "127.0.0.11")


# ------------------------------------------------------------------ keys

def run(*args, cwd=None):
    return subprocess.run(list(args), check=True, capture_output=True,
                          cwd=cwd, timeout=60).stdout.decode()


def make_cert(d, name, cn):
    key = os.path.join(d, name + ".key")
    cert = os.path.join(d, name + ".pem")
    run("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
        "ec_paramgen_curve:P-256", "-nodes", "-subj", "/CN=" + cn, "-days",
        "2", "-keyout", key, "-out", cert)
    pub = subprocess.run(["openssl", "x509", "-in", cert, "-noout",
                          "-pubkey"], check=True, capture_output=True).stdout
    der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "DER"],
                         input=pub, check=True, capture_output=True).stdout
    return cert, key, hashlib.sha256(der).hexdigest()


def make_ta_chain(d, cn):
    """A test CA and a leaf for cn signed by it: (chain, key, CA digest)."""
    ca_key = os.path.join(d, "ca.key")
    ca = os.path.join(d, "ca.pem")
    run("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
        "ec_paramgen_curve:P-256", "-nodes", "-subj", "/CN=Waymark test TA",
        "-days", "2", "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        "-keyout", ca_key, "-out", ca)
    key = os.path.join(d, "leaf.key")
    csr = os.path.join(d, "leaf.csr")
    leaf = os.path.join(d, "leaf.pem")
    ext = os.path.join(d, "leaf.ext")
    with open(ext, "w") as f:
        f.write("subjectAltName=DNS:%s\n" % cn)
    run("openssl", "req", "-newkey", "ec", "-pkeyopt",
        "ec_paramgen_curve:P-256", "-nodes", "-subj", "/CN=" + cn,
        "-keyout", key, "-out", csr)
    run("openssl", "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key,
        "-CAcreateserial", "-days", "2", "-extfile", ext, "-out", leaf)
    chain = os.path.join(d, "chain.pem")
    with open(chain, "w") as f:
        f.write(open(leaf).read() + open(ca).read())   # RFC 7672 3.1.2
    der = subprocess.run(["openssl", "x509", "-in", ca, "-outform", "DER"],
                         check=True, capture_output=True).stdout
    return chain, key, hashlib.sha256(der).hexdigest()


def server_ctx(cert, key):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    return ctx


# ------------------------------------------------------------------ DNS

class Unbound:
    """unbound on 127.0.0.1:port validating dane.test with its own KSK."""

    def __init__(self, tlsa_a, tlsa_other, tlsa_ca):
        self.dir = tempfile.mkdtemp(prefix="wm-unbound-")
        self.proc = None
        self.port = None
        self.log = os.path.join(self.dir, "unbound.log")
        self.sign_zone(tlsa_a, tlsa_other, tlsa_ca)
        self.plain_zone(tlsa_other)

    def sign_zone(self, tlsa_a, tlsa_other, tlsa_ca):
        zone = os.path.join(self.dir, "dane.test.zone")
        with open(zone, "w") as f:
            f.write("""$ORIGIN dane.test.
$TTL 300
@ IN SOA ns.dane.test. host.dane.test. 1 3600 600 86400 300
@ IN NS ns.dane.test.
ns IN A 127.0.0.1
ok IN MX 10 mx1.ok
mx1.ok IN A 127.0.0.2
_25._tcp.mx1.ok IN TLSA 3 1 1 {a}
wrong IN MX 10 mx1.wrong
wrong IN MX 20 mx2.wrong
mx1.wrong IN A 127.0.0.3
_25._tcp.mx1.wrong IN TLSA 3 1 1 {o}
mx2.wrong IN A 127.0.0.2
_25._tcp.mx2.wrong IN TLSA 3 1 1 {a}
bogus IN MX 10 mx1.bogus
mx1.bogus IN A 127.0.0.4
_25._tcp.mx1.bogus IN TLSA 3 1 1 {a}
notls IN MX 10 mx1.notls
mx1.notls IN A 127.0.0.5
_25._tcp.mx1.notls IN TLSA 3 1 1 {a}
ta IN MX 10 mx1.ta
mx1.ta IN A 127.0.0.7
_25._tcp.mx1.ta IN TLSA 2 0 1 {ca}
taname IN MX 10 mx1.taname
mx1.taname IN A 127.0.0.8
_25._tcp.mx1.taname IN TLSA 2 0 1 {ca}
cn IN MX 10 mx1.cn
mx1.cn IN CNAME real.cn
real.cn IN A 127.0.0.9
_25._tcp.real.cn IN TLSA 3 1 1 {a}
cn2 IN MX 10 mx1.cn2
mx1.cn2 IN CNAME real.cn2
real.cn2 IN A 127.0.0.10
_25._tcp.mx1.cn2 IN TLSA 3 1 1 {a}
pkix IN MX 10 mx1.pkix
mx1.pkix IN A 127.0.0.11
_25._tcp.mx1.pkix IN TLSA 1 1 1 {o}
""".format(a=tlsa_a, o=tlsa_other, ca=tlsa_ca))
        zsk = run("ldns-keygen", "-a", "ECDSAP256SHA256", "dane.test",
                  cwd=self.dir).strip()
        ksk = run("ldns-keygen", "-k", "-a", "ECDSAP256SHA256", "dane.test",
                  cwd=self.dir).strip()
        run("ldns-signzone", zone, zsk, ksk, cwd=self.dir)
        self.anchor = os.path.join(self.dir, ksk + ".ds")
        # bogus: one octet of the TLSA RRSIG of mx1.bogus changed
        signed = zone + ".signed"
        lines = open(signed).read().splitlines()
        for i, line in enumerate(lines):
            f = line.split()
            if (f[0] == "_25._tcp.mx1.bogus.dane.test." and "RRSIG" in f and
                    f[f.index("RRSIG") + 1] == "TLSA"):
                sig = f[-1]
                mid = len(sig) // 2
                f[-1] = sig[:mid] + ("A" if sig[mid] != "A" else "B") + \
                    sig[mid + 1:]
                lines[i] = "\t".join(f)
                break
        else:
            pytest.fail("no RRSIG of the TLSA of mx1.bogus in the signed zone")
        with open(signed, "w") as fp:
            fp.write("\n".join(lines) + "\n")
        self.signed = signed

    def plain_zone(self, tlsa_other):
        self.plain = os.path.join(self.dir, "plain.test.zone")
        with open(self.plain, "w") as f:
            f.write("""$ORIGIN plain.test.
$TTL 300
@ IN SOA ns.plain.test. host.plain.test. 1 3600 600 86400 300
@ IN NS ns.plain.test.
ns IN A 127.0.0.1
@ IN MX 10 mx.plain.test.
mx IN A 127.0.0.6
_25._tcp.mx IN TLSA 3 1 1 {o}
""".format(o=tlsa_other))

    def config(self):
        return """server:
  interface: 127.0.0.1@{port}
  port: {port}
  do-daemonize: no
  username: ""
  chroot: ""
  directory: "{dir}"
  pidfile: ""
  use-syslog: no
  logfile: "{log}"
  verbosity: 1
  do-ip6: no
  module-config: "validator iterator"
  trust-anchor-file: "{anchor}"
  access-control: 127.0.0.0/8 allow
  do-not-query-localhost: no
  local-zone: "test." nodefault
  qname-minimisation: no
  val-log-level: 2
auth-zone:
  name: "dane.test."
  zonefile: "{signed}"
  for-upstream: yes
  for-downstream: no
  fallback-enabled: no
auth-zone:
  name: "plain.test."
  zonefile: "{plain}"
  for-upstream: yes
  for-downstream: no
  fallback-enabled: no
""".format(port=self.port, dir=self.dir, log=self.log, anchor=self.anchor,
           signed=self.signed, plain=self.plain)

    def start(self):
        for _ in range(5):
            self.port = free_udp_tcp_port()
            conf = os.path.join(self.dir, "unbound.conf")
            with open(conf, "w") as f:
                f.write(self.config())
            self.proc = subprocess.Popen(
                [UNBOUND, "-d", "-c", conf], stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and self.proc.poll() is None:
                r = dns_query(self.port, "ok.dane.test", "MX")
                if r is not None and r[0] == 0 and r[1] > 0:
                    return self
                time.sleep(0.05)
            self.stop()
        pytest.fail("unbound did not start:\n" + self.log_text())

    def log_text(self):
        try:
            with open(self.log, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    @property
    def server(self):
        return "127.0.0.1:%d" % self.port


@pytest.fixture(scope="module")
def pki():
    d = tempfile.mkdtemp(prefix="wm-dane-pki-")
    a = make_cert(d, "a", "mx1.ok.dane.test")
    b = make_cert(d, "b", "mx1.wrong.dane.test")
    other = hashlib.sha256(b"not the key of any sink").hexdigest()
    ta = make_ta_chain(d, "mx1.ta.dane.test")
    yield {"a": a, "b": b, "other": other, "ta": ta}
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def unbound(pki):
    u = Unbound(pki["a"][2], pki["other"], pki["ta"][2]).start()
    yield u
    u.stop()
    shutil.rmtree(u.dir, ignore_errors=True)


# ------------------------------------------------------------------ next hops

class Sink:
    def __init__(self):
        self.messages = []          # (rcpts, content, over TLS)
        self.ehlos = 0
        self.lock = threading.Lock()

    async def handle_EHLO(self, server, session, envelope, hostname,
                          responses):
        with self.lock:
            self.ehlos += 1
        session.host_name = hostname
        return responses

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            self.messages.append((list(envelope.rcpt_tos),
                                  envelope.original_content,
                                  session.ssl is not None))
        return "250 2.0.0 Ok: sunk"


class Counter:
    """A listener that counts connections and closes them."""

    def __init__(self, addr, port):
        self.n = 0
        self.s = socket.socket()
        self.s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.s.bind((addr, port))
        self.s.listen(16)
        self.s.settimeout(0.2)
        self.stopping = False
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self):
        while not self.stopping:
            try:
                c, _ = self.s.accept()
            except (socket.timeout, OSError):
                continue
            self.n += 1
            c.close()

    def stop(self):
        self.stopping = True
        self.t.join(5)
        self.s.close()


@pytest.fixture
def hops():
    class Hops:
        def __init__(self):
            self.port = common_port(ADDRS)
            self.made = []

        def sink(self, addr, tls=None):
            h = Sink()
            kw = {}
            if tls is not None:
                kw = {"tls_context": server_ctx(*tls[:2]),
                      "require_starttls": False}
            c = Controller(h, hostname=addr, port=self.port, **kw)
            c.start()
            self.made.append(c)
            return h

        def counter(self, addr):
            c = Counter(addr, self.port)
            self.made.append(c)
            return c
    h = Hops()
    yield h
    for c in h.made:
        c.stop()


# ------------------------------------------------------------------ helpers

def dane_config(dns, port, **extra):
    cfg = {"dns": dns, "dns_dnssec": "yes", "smtp_port": str(port),
           "retry_schedule": "1h"}
    cfg.update(extra)
    return cfg


def submit(d, rcpts, sender="sender@example.com"):
    content = make_message(to=rcpts[0], sender=sender)
    with d.connect() as c:
        c.ehlo()
        r = c.mail_transaction(sender, rcpts, content)
    return queued_qid(r), content


def show(d, qid):
    p = d.cli("show", qid, "--json")
    assert p.returncode == 0, p.err
    import json
    return json.loads(p.out)


def wait_status(d, qid, addr, statuses, timeout=30):
    def ok():
        for r in show(d, qid)["recipients"]:
            if r["address"] == addr and r["status"] in statuses:
                return r
        return None
    return wait_for(ok, timeout=timeout, interval=0.1,
                    what="%s of %s in %s" % (addr, qid, statuses))


def events(d, qid, kind=None):
    return [e["detail"] for e in show(d, qid)["events"]
            if kind is None or e["kind"] == kind]


# ------------------------------------------------------------------ tests

def test_matching_tlsa_delivers_as_dane(daemon_factory, unbound, pki, hops):
    sink = hops.sink("127.0.0.2", tls=pki["a"])
    d = daemon_factory(dane_config(unbound.server, hops.port))
    qid, content = submit(d, ["u@ok.dane.test"])
    r = wait_status(d, qid, "u@ok.dane.test", FINAL)
    assert r["status"] == "relayed", r
    assert "mx1.ok.dane.test[127.0.0.2]" == r["remote_mta"], r
    assert "DANE-EE 3 1 1 verified" in r["last_reply"]["text"], r
    assert len(sink.messages) == 1 and sink.messages[0][2] is True
    ev = events(d, qid, "relayed")
    assert len(ev) == 1 and "tls_policy=dane tls_result=verified" in ev[0], ev
    ev = events(d, qid, "attempt")
    assert "tls_policy=dane tls_result=verified" in ev[0], ev
    assert ("status=relayed dsn=2.0.0 relay=mx1.ok.dane.test[127.0.0.2] "
            "tls_policy=dane tls_result=verified") in d.log_text()


def test_wrong_tlsa_on_first_mx_uses_second(daemon_factory, unbound, pki,
                                            hops):
    good = hops.sink("127.0.0.2", tls=pki["a"])
    bad = hops.sink("127.0.0.3", tls=pki["b"])
    d = daemon_factory(dane_config(unbound.server, hops.port))
    qid, _ = submit(d, ["u@wrong.dane.test"])
    r = wait_status(d, qid, "u@wrong.dane.test", FINAL)
    assert r["status"] == "relayed", r
    assert r["remote_mta"] == "mx2.wrong.dane.test[127.0.0.2]", r
    assert "DANE-EE 3 1 1 verified" in r["last_reply"]["text"], r
    assert bad.ehlos >= 1, "the first MX was not tried"
    assert bad.messages == [] and len(good.messages) == 1
    log = d.log_text()
    assert ("TLS handshake with mx1.wrong.dane.test[127.0.0.3] failed: DANE: "
            "certificate not authenticated by the TLSA records of "
            "_25._tcp.mx1.wrong.dane.test: no matching DANE TLSA records"
            ) in log, log[-3000:]


def test_bogus_tlsa_defers_without_connecting(daemon_factory, unbound, hops):
    count = hops.counter("127.0.0.4")
    d = daemon_factory(dane_config(unbound.server, hops.port,
                                   queue_lifetime="0"))
    sender = "someone@localhost"
    qid, _ = submit(d, ["u@bogus.dane.test"], sender=sender)
    r = wait_status(d, qid, "u@bogus.dane.test", FINAL)
    # queue_lifetime = 0: the first deferral is final, with a notice
    assert r["status"] == "failed", r
    assert "TLSA lookup for _25._tcp.mx1.bogus.dane.test failed: server " \
        "failure" in r["last_reply"]["text"], r
    assert count.n == 0, "a host with a bogus TLSA answer was contacted"
    ev = events(d, qid, "failed")
    assert "tls_policy=dane tls_result=tlsa-error" in ev[0], ev
    (data,) = d.wait_mails(sender, 1, timeout=30)
    n = email.message_from_bytes(data, policy=email.policy.default)
    report = [p for p in n.walk()
              if p.get_content_type() == "message/delivery-status"]
    assert report, n.as_string()
    text = n.as_string()
    assert "Diagnostic-Code: X-Waymark;" in text, text
    assert "DANE: TLSA lookup for _25._tcp.mx1.bogus.dane.test" in \
        text.replace("\n ", " ").replace("\r", ""), text


def test_tlsa_without_starttls_defers(daemon_factory, unbound, hops):
    sink = hops.sink("127.0.0.5")           # no STARTTLS
    d = daemon_factory(dane_config(unbound.server, hops.port))
    qid, _ = submit(d, ["u@notls.dane.test"])
    r = wait_status(d, qid, "u@notls.dane.test", ("deferred",) + FINAL)
    assert r["status"] == "deferred", r
    assert "TLS required by the DANE TLSA records of " \
        "_25._tcp.mx1.notls.dane.test but not offered" in \
        r["last_reply"]["text"], r
    assert sink.messages == [], "sent in cleartext"
    ev = events(d, qid, "deferred")
    assert "tls_policy=dane tls_result=no-starttls" in ev[0], ev


def test_dane_ta_chain_verified(daemon_factory, unbound, pki, hops):
    sink = hops.sink("127.0.0.7", tls=pki["ta"])
    d = daemon_factory(dane_config(unbound.server, hops.port))
    qid, _ = submit(d, ["u@ta.dane.test"])
    r = wait_status(d, qid, "u@ta.dane.test", FINAL)
    assert r["status"] == "relayed", r
    assert "DANE-TA 2 0 1 verified at depth 1" in r["last_reply"]["text"], r
    assert len(sink.messages) == 1


def test_dane_ta_name_mismatch_defers(daemon_factory, unbound, pki, hops):
    sink = hops.sink("127.0.0.8", tls=pki["ta"])
    d = daemon_factory(dane_config(unbound.server, hops.port))
    qid, _ = submit(d, ["u@taname.dane.test"])
    r = wait_status(d, qid, "u@taname.dane.test", ("deferred",) + FINAL)
    # DANE-TA checks names (RFC 7672 3.2.2): mx1.ta is neither the MX
    # host mx1.taname nor the next-hop domain taname.dane.test
    assert r["status"] == "deferred", r
    assert r["last_reply"]["enhanced"] == "4.7.5", r
    assert "not authenticated by the TLSA records of " \
        "_25._tcp.mx1.taname.dane.test: hostname mismatch" in \
        r["last_reply"]["text"], r
    assert sink.ehlos >= 1 and sink.messages == []
    ev = events(d, qid, "deferred")
    assert "tls_policy=dane tls_result=mismatch" in ev[0], ev


@pytest.mark.parametrize("domain,addr", [
    ("cn.dane.test", "127.0.0.9"),      # TLSA at the expansion real.cn
    ("cn2.dane.test", "127.0.0.10"),    # TLSA at the host name mx1.cn2
])
def test_cname_mx_host(daemon_factory, unbound, pki, hops, domain, addr):
    # TLSA at the host's CNAME expansion first, then at the host name
    sink = hops.sink(addr, tls=pki["a"])
    d = daemon_factory(dane_config(unbound.server, hops.port))
    qid, _ = submit(d, ["u@" + domain])
    r = wait_status(d, qid, "u@" + domain, FINAL)
    assert r["status"] == "relayed", r
    assert "DANE-EE 3 1 1 verified" in r["last_reply"]["text"], r
    assert len(sink.messages) == 1


@pytest.mark.parametrize("starttls", [False, True])
def test_unusable_tlsa_makes_tls_mandatory(daemon_factory, unbound, pki, hops,
                                           starttls):
    sink = hops.sink("127.0.0.11", tls=pki["b"] if starttls else None)
    d = daemon_factory(dane_config(unbound.server, hops.port))
    qid, _ = submit(d, ["u@pkix.dane.test"])
    r = wait_status(d, qid, "u@pkix.dane.test", ("deferred",) + FINAL)
    if starttls:
        # any key will do: the records cannot authenticate it
        assert r["status"] == "relayed", r
        assert "DANE" not in r["last_reply"]["text"], r
        assert len(sink.messages) == 1 and sink.messages[0][2] is True
        ev = events(d, qid, "relayed")
        assert "tls_policy=dane tls_result=tls" in ev[0], ev
    else:
        assert r["status"] == "deferred", r
        assert "TLS required by the DANE TLSA records" in \
            r["last_reply"]["text"], r
        assert sink.messages == []


def test_unsigned_zone_is_opportunistic(daemon_factory, unbound, pki, hops):
    sink = hops.sink("127.0.0.6", tls=pki["a"])
    d = daemon_factory(dane_config(unbound.server, hops.port))
    qid, _ = submit(d, ["u@plain.test"])
    r = wait_status(d, qid, "u@plain.test", FINAL)
    # the insecure TLSA (of another key) is not used: RFC 7672 2.2
    assert r["status"] == "relayed", r
    assert "DANE" not in r["last_reply"]["text"], r
    assert len(sink.messages) == 1 and sink.messages[0][2] is True
    ev = events(d, qid, "relayed")
    assert "tls_policy=none tls_result=tls" in ev[0], ev


def test_dnssec_off_ignores_tlsa(daemon_factory, unbound, pki, hops):
    sink = hops.sink("127.0.0.3", tls=pki["b"])
    hops.sink("127.0.0.2", tls=pki["a"])
    cfg = dane_config(unbound.server, hops.port)
    del cfg["dns_dnssec"]
    d = daemon_factory(cfg)
    qid, _ = submit(d, ["u@wrong.dane.test"])
    r = wait_status(d, qid, "u@wrong.dane.test", FINAL)
    assert r["status"] == "relayed", r
    assert r["remote_mta"] == "mx1.wrong.dane.test[127.0.0.3]", r
    assert len(sink.messages) == 1
    ev = events(d, qid, "relayed")
    assert "tls_policy=none tls_result=tls" in ev[0], ev


@pytest.mark.parametrize("dns,want", [
    ("192.0.2.53", "dns server 192.0.2.53 is not on loopback"),
    ("127.0.0.1:5353 [2001:db8::53]:53",
     "dns server [2001:db8::53]:53 is not on loopback"),
])
def test_non_loopback_resolver_is_a_config_error(tmp_path, dns, want):
    conf = tmp_path / "waymark.conf"
    conf.write_text("listen = 127.0.0.1:2525\nspool = spool\n"
                    "dns = %s\ndns_dnssec = yes\n" % dns)
    p = run_waymarkd("-n", "-f", str(conf))
    assert p.returncode == 1, p.out
    assert "%s:4: dns_dnssec: %s" % (conf, want) in p.err, p.err
    conf.write_text("listen = 127.0.0.1:2525\nspool = spool\n"
                    "dns = 127.0.0.1:5353 [::1]:53\ndns_dnssec = yes\n")
    p = run_waymarkd("-n", "-f", str(conf))
    assert p.returncode == 0, p.err
    assert "dns_dnssec = yes" in p.out
