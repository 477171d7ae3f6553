"""
REQUIRETLS (RFC 8689), loopback only.

Server: REQUIRETLS is offered only in the EHLO reply after STARTTLS; in
cleartext the MAIL parameter is refused like any unknown one (555 5.5.4);
the tag is stored (`show --json`: requiretls) and noted in our Received
field ("with ESMTPS (REQUIRETLS)").  Client: a test CA made with `openssl`
(test_mtasts.py's Pki) signs the next hops' certificates and waymarkd
trusts it through `smtp_tls_ca`; the next hops are aiosmtpd servers that
offer STARTTLS (or not) and REQUIRETLS after it (or not) and record the
REQUIRETLS parameter of each MAIL.  A REQUIRETLS message goes to a
verified smarthost that offers it (the parameter passed on); fails with
5.7.30 to one that does not offer it, with 5.7.10 to one without
STARTTLS, to one whose certificate does not verify, and to an MX found
without DNSSEC or MTA-STS (dnsmasq); an MTA-STS-validated MX without
REQUIRETLS gives 5.7.30.  The failure DSN names the reason, returns
headers only and is itself tagged REQUIRETLS.  `TLS-Required: No`
delivers despite an MTA-STS enforce mismatch (test_mtasts.py's world).
DNSSEC and DANE (test_dane.py's signed zone served by unbound): a
DNSSEC-validated MX authenticated by DANE takes a REQUIRETLS message;
`TLS-Required: No` delivers despite a DANE mismatch.
"""

import hashlib
import os
import re
import shutil
import ssl
import tempfile
import threading

import pytest

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP

import test_dane
from conftest import (IS_ROOT, common_port, daemon_ids, free_port,
                      make_message, split_message, unfold)
from dnsfix import dns_factory  # noqa: F401  (fixture)
from test_mtasts import (FINAL, config as sts_config, pki,  # noqa: F401
                         rcpt_of, world)

SENDER = "sender@localhost"      # a local sender: its DSNs land in a Maildir


def client_context():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


class Hop:
    """aiosmtpd handler: REQUIRETLS after STARTTLS when asked; records."""

    def __init__(self, requiretls):
        self.requiretls = requiretls
        self.ehlos = 0
        self.mail_rtls = []          # per MAIL: REQUIRETLS given?
        self.messages = []
        self.lock = threading.Lock()

    async def handle_EHLO(self, server, session, envelope, hostname,
                          responses):
        session.host_name = hostname
        with self.lock:
            self.ehlos += 1
        if self.requiretls and session.ssl is not None:
            responses.insert(len(responses) - 1, "250-REQUIRETLS")
        return responses

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            self.messages.append((envelope.mail_from, list(envelope.rcpt_tos),
                                  session.ssl is not None,
                                  envelope.original_content))
        return "250 2.0.0 Ok: sunk"


class RtlsSMTP(SMTP):
    """aiosmtpd refuses unknown MAIL parameters: take REQUIRETLS off first."""

    async def smtp_MAIL(self, arg):
        rtls = False
        if arg is not None:
            new = re.sub(r"(?i)\s+REQUIRETLS(?=\s|$)", "", arg)
            rtls = new != arg
            arg = new
        with self.event_handler.lock:
            self.event_handler.mail_rtls.append(rtls)
        await super().smtp_MAIL(arg)


class RtlsController(Controller):
    def factory(self):
        return RtlsSMTP(self.handler, **self.SMTP_kwargs)


@pytest.fixture
def hops():
    made = []

    def make(requiretls=True, tls_context=None, addr="127.0.0.1", port=None):
        h = Hop(requiretls)
        kw = {"tls_context": tls_context} if tls_context is not None else {}
        c = RtlsController(h, hostname=addr, port=port or free_port(), **kw)
        c.start()
        made.append(c)
        h.port = c.port
        return h
    yield make
    for c in made:
        c.stop()


def ip_context(pki, ip="127.0.0.1"):  # noqa: F811
    """A server context whose certificate (signed by the CA) names ip."""
    import subprocess
    base = os.path.join(pki.dir, "ip-" + ip)
    with open(base + ".ext", "w") as f:
        f.write("subjectAltName=IP:%s\nextendedKeyUsage=serverAuth\n" % ip)
    for args in (["req", "-newkey", "ec", "-pkeyopt",
                  "ec_paramgen_curve:prime256v1", "-nodes", "-subj",
                  "/CN=" + ip, "-keyout", base + ".key", "-out",
                  base + ".csr"],
                 ["x509", "-req", "-in", base + ".csr", "-CA", pki.ca,
                  "-CAkey", pki.cakey, "-CAcreateserial", "-days", "2",
                  "-extfile", base + ".ext", "-out", base + ".pem"]):
        subprocess.run(["openssl"] + args, check=True, capture_output=True)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(base + ".pem", base + ".key")
    return ctx


def tls_daemon(daemon_factory, pki, cfg):  # noqa: F811
    """A waymarkd with a listener certificate (for the REQUIRETLS client)."""
    d = daemon_factory(cfg, start=False)
    cert, key = pki.leaf("mx.test")
    for src, name in ((cert, "cert.pem"), (key, "key.pem")):
        shutil.copy(src, os.path.join(d.dir, name))
    os.chmod(os.path.join(d.dir, "key.pem"), 0o600)
    if IS_ROOT:
        os.chown(os.path.join(d.dir, "key.pem"), *daemon_ids())
    d.config["tls_cert"] = os.path.join(d.dir, "cert.pem")
    d.config["tls_key"] = os.path.join(d.dir, "key.pem")
    d.write_config()
    d.start()
    return d


def send(d, rcpt, requiretls=True, sender=SENDER, extra=b""):
    """Submit over STARTTLS (MAIL ... REQUIRETLS when asked); the QID."""
    with d.smtplib() as s:
        s.ehlo()
        s.starttls(context=client_context())
        s.ehlo()
        assert s.has_extn("requiretls")
        opts = ["REQUIRETLS"] if requiretls else []
        code, resp = s.mail(sender, options=opts)
        assert code == 250, resp
        assert s.rcpt(rcpt)[0] == 250
        code, resp = s.data(make_message(to=rcpt, sender=sender,
                                         extra_headers=extra))
        assert code == 250, resp
        m = re.match(r"2\.0\.0 Ok: queued as (\w+)$", resp.decode())
        assert m, resp
        return m.group(1)


def smarthost_cfg(pki, hop):  # noqa: F811
    return {"smarthost": "[127.0.0.1]:%d" % hop.port, "smtp_tls_ca": pki.ca,
            "retry_schedule": "1h"}


def failure_dsn(d, qid, rcpt, enh):
    """The recipient failed with enh; the DSN to SENDER (returned)."""
    r = rcpt_of(d, qid, rcpt, FINAL)
    assert r["status"] == "failed", r
    assert r["last_reply"]["enhanced"] == enh, r
    (dsn,) = d.wait_mails(SENDER, 1)
    text = dsn.decode("utf-8", "replace")
    assert re.search(r"(?mi)^Status: %s\s*$" % re.escape(enh), text), text
    assert re.search(r"(?mi)^Diagnostic-Code: (smtp|X-Waymark);.*REQUIRETLS",
                     unfold(dsn)), \
        text
    # RFC 8689 5: headers only (as RET=HDRS), and the DSN itself is tagged
    assert "text/rfc822-headers" in text and "Hello." not in text, text
    ev = [e["detail"] for e in d.show_json(qid)["events"]
          if e["kind"] == "dsn"]
    assert ev, d.show_json(qid)["events"]
    nq = re.search(r"qid=(\w+)", ev[0]).group(1)
    assert d.show_json(nq)["requiretls"] is True
    return r, text


# ------------------------------------------------------------------ server

def test_requiretls_only_after_starttls(daemon_factory, pki):  # noqa: F811
    d = tls_daemon(daemon_factory, pki, {})
    with d.connect() as c:
        r = c.ehlo()
        assert "REQUIRETLS" not in r.text.upper(), r
        r = c.cmd("MAIL FROM:<a@example.com> REQUIRETLS")
        assert (r.code, r.enh) == (555, "5.5.4"), r
    with d.smtplib() as s:
        s.ehlo()
        assert not s.has_extn("requiretls")
        s.starttls(context=client_context())
        s.ehlo()
        assert s.has_extn("requiretls")
        code, resp = s.docmd("MAIL FROM:<a@example.com> REQUIRETLS=YES")
        assert code == 501 and resp.startswith(b"5.5.4"), resp
        code, resp = s.docmd("MAIL FROM:<a@example.com> REQUIRETLS "
                             "REQUIRETLS")
        assert code == 501, resp
    qid = send(d, "user@example.org", sender="a@example.com")
    (data,) = d.wait_mails("user@example.org", 1)
    _, fields, _ = split_message(data)
    assert re.search(r"\bwith ESMTPS \(REQUIRETLS\) id %s\b" % qid,
                     fields[0]), fields
    j = d.show_json(qid)
    assert j["requiretls"] is True and j["tls_required_no"] is False, j
    p = d.cli("show", qid, check=0)
    assert "REQUIRETLS" in p.out, p.out
    # without the parameter: not tagged, not noted
    qid2 = send(d, "other@example.org", requiretls=False,
                sender="a@example.com")
    (data,) = d.wait_mails("other@example.org", 1)
    assert "REQUIRETLS" not in split_message(data)[1][0]
    assert d.show_json(qid2)["requiretls"] is False


# ------------------------------------------------------------------ client

def test_relayed_to_verified_smarthost_with_requiretls(daemon_factory, pki,  # noqa: F811
                                                       hops):
    hop = hops(requiretls=True, tls_context=ip_context(pki))
    d = tls_daemon(daemon_factory, pki, smarthost_cfg(pki, hop))
    qid = send(d, "u@remote.test")
    r = rcpt_of(d, qid, "u@remote.test", FINAL)
    assert r["status"] == "relayed", r
    assert hop.mail_rtls == [True], hop.mail_rtls
    assert len(hop.messages) == 1 and hop.messages[0][2], hop.messages
    # a message without the tag is relayed without the parameter
    qid = send(d, "v@remote.test", requiretls=False)
    assert rcpt_of(d, qid, "v@remote.test", FINAL)["status"] == "relayed"
    assert hop.mail_rtls == [True, False], hop.mail_rtls


def test_smarthost_without_requiretls_fails_5730(daemon_factory, pki, hops):  # noqa: F811
    hop = hops(requiretls=False, tls_context=ip_context(pki))
    d = tls_daemon(daemon_factory, pki, smarthost_cfg(pki, hop))
    qid = send(d, "u@remote.test")
    r, dsn = failure_dsn(d, qid, "u@remote.test", "5.7.30")
    assert "does not offer REQUIRETLS" in r["last_reply"]["text"], r
    assert hop.ehlos >= 2 and hop.mail_rtls == [] and hop.messages == []


def test_smarthost_without_starttls_fails_5710(daemon_factory, pki, hops):  # noqa: F811
    hop = hops(requiretls=True)
    d = tls_daemon(daemon_factory, pki, smarthost_cfg(pki, hop))
    qid = send(d, "u@remote.test")
    r, dsn = failure_dsn(d, qid, "u@remote.test", "5.7.10")
    assert "no STARTTLS" in r["last_reply"]["text"], r
    assert hop.mail_rtls == [] and hop.messages == []


def test_unverified_certificate_fails_5710(daemon_factory, pki, hops):  # noqa: F811
    # signed by the CA, but for another name than the smarthost's
    hop = hops(requiretls=True, tls_context=pki.server_context("wrong.test"))
    d = tls_daemon(daemon_factory, pki, smarthost_cfg(pki, hop))
    qid = send(d, "u@remote.test")
    r, dsn = failure_dsn(d, qid, "u@remote.test", "5.7.10")
    assert "certificate not verified" in r["last_reply"]["text"], r
    assert hop.mail_rtls == [] and hop.messages == []


def test_mx_without_dnssec_or_mta_sts_fails_5710(daemon_factory, pki, hops,  # noqa: F811
                                                  dns_factory):  # noqa: F811
    port = free_port()
    dns = dns_factory(mx=[("plain.test", "mx.plain.test", 10)],
                      hosts=[("mx.plain.test", "127.0.0.1")])
    hop = hops(requiretls=True, port=port,
               tls_context=pki.server_context("mx.plain.test"))
    d = tls_daemon(daemon_factory, pki, {
        "dns": dns.server, "smtp_port": str(port), "smtp_tls_ca": pki.ca,
        "retry_schedule": "1h"})
    qid = send(d, "u@plain.test")
    r, dsn = failure_dsn(d, qid, "u@plain.test", "5.7.10")
    assert "not validated (no DNSSEC, no MTA-STS)" in \
        r["last_reply"]["text"], r
    assert hop.ehlos == 0, "never connected"
    # the same hop takes the message without the tag
    qid = send(d, "v@plain.test", requiretls=False)
    assert rcpt_of(d, qid, "v@plain.test", FINAL)["status"] == "relayed"
    assert hop.mail_rtls == [False]


# ---------------------------------------------- MTA-STS (test_mtasts.py's world)

def test_mta_sts_validated_mx_without_requiretls_fails_5730(daemon_factory,
                                                            pki, world):  # noqa: F811
    d = tls_daemon(daemon_factory, pki, sts_config(world))
    qid = send(d, "u@enf.test")
    r, dsn = failure_dsn(d, qid, "u@enf.test", "5.7.30")
    assert "mx1.enf.test" in r["last_reply"]["text"], r
    assert world.sinks["mx1.enf.test"].messages == []


def test_every_mx_tried_most_specific_failure_wins(daemon_factory, pki,  # noqa: F811
                                                  world):
    # mx1.two.test is outside the policy (5.7.10, never connected);
    # mx2.two.test has verified TLS but no REQUIRETLS: 5.7.30 wins
    d = tls_daemon(daemon_factory, pki, sts_config(world))
    qid = send(d, "u@two.test")
    r, dsn = failure_dsn(d, qid, "u@two.test", "5.7.30")
    assert "mx2.two.test" in r["remote_mta"], r
    assert "not validated" in d.log_text()
    assert world.sinks["mx1.two.test"].messages == []
    assert world.sinks["mx2.two.test"].messages == []


def test_tls_required_no_overrides_mta_sts_enforce(daemon_factory, pki,  # noqa: F811
                                                    world):
    d = tls_daemon(daemon_factory, pki, sts_config(world))
    qid = send(d, "u@bad.test", requiretls=False,
               extra=b"TLS-Required: No\r\n")
    r = rcpt_of(d, qid, "u@bad.test", FINAL)
    assert r["status"] == "relayed", r
    assert "TLS-Required: No" in r["last_reply"]["text"], r
    assert len(world.sinks["mx.bad.test"].messages) == 1
    assert world.sinks["mx.bad.test"].tls == [True], "STARTTLS still used"
    j = d.show_json(qid)
    assert j["tls_required_no"] is True and j["requiretls"] is False, j
    assert any(e["kind"] == "tls-required" for e in j["events"]), j["events"]
    # with REQUIRETLS the header is ignored: the MX is not validated
    qid = send(d, "v@bad.test", extra=b"TLS-Required: No\r\n")
    r = rcpt_of(d, qid, "v@bad.test", FINAL)
    assert r["status"] == "failed" and \
        r["last_reply"]["enhanced"] == "5.7.10", r
    assert d.show_json(qid)["tls_required_no"] is False
    assert len(world.sinks["mx.bad.test"].messages) == 1


# ------------------------------------ DNSSEC and DANE (test_dane.py's zone)

@pytest.fixture(scope="module")
def dane_world():
    if not all(n and os.path.exists(n) for n in test_dane.NEEDED):
        pytest.skip("needs unbound, ldnsutils and openssl (scripts/deps.sh)")
    tmp = tempfile.mkdtemp(prefix="wm-rtls-dane-")
    a = test_dane.make_cert(tmp, "a", "mx1.ok.dane.test")
    other = hashlib.sha256(b"not the key of any sink").hexdigest()
    ta = test_dane.make_ta_chain(tmp, "mx1.ta.dane.test")
    u = test_dane.Unbound(a[2], other, ta[2]).start()
    yield u, a, ta
    u.stop()
    shutil.rmtree(u.dir, ignore_errors=True)
    shutil.rmtree(tmp, ignore_errors=True)


def test_dnssec_mx_with_dane_takes_requiretls(daemon_factory, pki, hops,  # noqa: F811
                                              dane_world):
    u, a, _ = dane_world
    port = common_port(["127.0.0.2"])
    # a self-signed certificate: only DANE (TLSA 3 1 1) can verify it
    hop = hops(requiretls=True, addr="127.0.0.2", port=port,
               tls_context=test_dane.server_ctx(a[0], a[1]))
    d = tls_daemon(daemon_factory, pki, test_dane.dane_config(u.server, port))
    qid = send(d, "u@ok.dane.test")
    r = rcpt_of(d, qid, "u@ok.dane.test", FINAL)
    assert r["status"] == "relayed", r
    assert "DANE-EE 3 1 1 verified" in r["last_reply"]["text"], r
    assert hop.mail_rtls == [True], hop.mail_rtls


def test_tls_required_no_overrides_dane_mismatch(daemon_factory, pki, hops,  # noqa: F811
                                                 dane_world):
    u, _, ta = dane_world
    port = common_port(["127.0.0.8"])
    # the DANE-TA chain names mx1.ta.dane.test, not mx1.taname: a mismatch
    hop = hops(requiretls=False, addr="127.0.0.8", port=port,
               tls_context=test_dane.server_ctx(ta[0], ta[1]))
    d = tls_daemon(daemon_factory, pki, test_dane.dane_config(u.server, port))
    qid = send(d, "u@taname.dane.test", requiretls=False,
               extra=b"TLS-Required: No\r\n")
    r = rcpt_of(d, qid, "u@taname.dane.test", FINAL)
    assert r["status"] == "relayed", r
    assert len(hop.messages) == 1 and hop.messages[0][2], "over TLS"
    assert "TLS-Required: No: the dane policy does not block delivery" in \
        d.log_text()
