"""
MTA-STS (RFC 8461) for outbound SMTP, loopback only.

dnsmasq answers the `_mta-sts` TXT records, the MX records and the A
records of `mta-sts.DOMAIN` (each policy host on its own 127.N.86.x
address); a Python `ssl` HTTPS server started here listens on that
address, port 443, and serves the policy; a test CA made with `openssl`
signs its certificate and the next hops' (aiosmtpd with STARTTLS), and
waymarkd trusts it through `smtp_tls_ca`.  Cases: enforce with an MX
mismatch defers (4.7.5) and tries the next MX first; enforce with a
matching MX delivers over verified TLS; a certificate not valid for the
MX name under enforce defers; testing with an MX or certificate mismatch
delivers (and says so); the second delivery uses the cached policy (one
HTTPS request), also after a restart (the store's copy); a delay DSN's
diagnostic names the policy.  TLS-RPT (RFC 8460): `waymark tlsrpt
--send-now` mails each policy domain's report to the `mailto:` rua of
its `_smtp._tls` record (a next hop of its own); the gzip'd JSON's fields
and counts match the run.
"""

import email
import email.policy
import gzip
import http.server
import json
import os
import shutil
import ssl
import subprocess
import tempfile
import threading
import time

import pytest

from aiosmtpd.controller import Controller

from conftest import common_port, make_message, queued_qid, wait_for
from dnsfix import dns_factory  # noqa: F401  (fixture)

FINAL = ("delivered", "relayed", "failed")

# policy domain -> (policy host address, TXT id, policy text)
# the policy hosts' and next hops' network: its second octet follows the
# pid, so that two runs at once (fixed port 443) do not collide
NET = "127.%d.86." % (1 + os.getpid() % 200)
POLICIES = {
    "enf.test": (NET + "1", "id1", "version: STSv1\nmode: enforce\n"
                 "mx: *.enf.test\nmax_age: 86400\n"),
    "bad.test": (NET + "2", "id2", "version: STSv1\r\nmode: enforce\r\n"
                 "mx: mail.elsewhere.test\r\nmax_age: 86400\r\n"),
    "two.test": (NET + "3", "id3", "version: STSv1\nmode: enforce\n"
                 "mx: mx2.two.test\nmax_age: 86400\n"),
    "tst.test": (NET + "4", "id4", "version: STSv1\nmode: testing\n"
                 "mx: mail.elsewhere.test\nmax_age: 86400\n"),
    "crt.test": (NET + "5", "id5", "version: STSv1\nmode: enforce\n"
                 "mx: mx.crt.test\nmax_age: 86400\n"),
    "tcr.test": (NET + "6", "id6", "version: STSv1\nmode: testing\n"
                 "mx: mx.tcr.test\nmax_age: 86400\n"),
}
MX = [("enf.test", "mx1.enf.test", 10),
      ("bad.test", "mx.bad.test", 10),
      ("two.test", "mx1.two.test", 10), ("two.test", "mx2.two.test", 20),
      ("tst.test", "mx.tst.test", 10),
      ("crt.test", "mx.crt.test", 10),
      ("tcr.test", "mx.tcr.test", 10)]
# next hop -> (address, name in its certificate)
HOPS = {"mx1.enf.test": (NET + "11", "mx1.enf.test"),
        "mx.bad.test": (NET + "12", "mx.bad.test"),
        "mx1.two.test": (NET + "13", "mx1.two.test"),
        "mx2.two.test": (NET + "14", "mx2.two.test"),
        "mx.tst.test": (NET + "15", "mx.tst.test"),
        "mx.crt.test": (NET + "16", "wrong.crt.test"),
        "mx.tcr.test": (NET + "17", "wrong.tcr.test"),
        "mx.rpt.test": (NET + "20", "mx.rpt.test")}
MX.append(("rpt.test", "mx.rpt.test", 10))
# TLS-RPT: the reports of these domains go to reports@rpt.test
RPT_DOMAINS = ("enf.test", "crt.test", "bad.test")


def openssl(*args):
    subprocess.run(["openssl"] + list(args), check=True, capture_output=True)


class Pki:
    """A test CA and certificates it signs, in a folder the daemon can read."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="wm-sts-pki-")
        os.chmod(self.dir, 0o755)
        self.ca = os.path.join(self.dir, "ca.pem")
        self.cakey = os.path.join(self.dir, "ca.key")
        openssl("req", "-x509", "-newkey", "ec", "-pkeyopt",
                "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
                "-subj", "/CN=Waymark MTA-STS test CA",
                "-addext", "basicConstraints=critical,CA:TRUE",
                "-addext", "keyUsage=critical,keyCertSign,cRLSign",
                "-keyout", self.cakey, "-out", self.ca)
        os.chmod(self.ca, 0o644)

    def leaf(self, name):
        """(cert, key) for DNS name `name`, signed by the CA."""
        base = os.path.join(self.dir, name)
        ext = base + ".ext"
        with open(ext, "w") as f:
            f.write("subjectAltName=DNS:%s\n"
                    "extendedKeyUsage=serverAuth\n" % name)
        openssl("req", "-newkey", "ec", "-pkeyopt",
                "ec_paramgen_curve:prime256v1", "-nodes", "-subj",
                "/CN=" + name, "-keyout", base + ".key", "-out",
                base + ".csr")
        openssl("x509", "-req", "-in", base + ".csr", "-CA", self.ca,
                "-CAkey", self.cakey, "-CAcreateserial", "-days", "2",
                "-extfile", ext, "-out", base + ".pem")
        return base + ".pem", base + ".key"

    def server_context(self, name):
        cert, key = self.leaf(name)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        return ctx


class PolicyServer:
    """HTTPS on addr:443 serving one policy; counts the requests."""

    def __init__(self, addr, ctx, text):
        self.requests = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                outer.requests.append((self.path, self.headers.get("Host")))
                if self.path != "/.well-known/mta-sts.txt":
                    self.send_error(404)
                    return
                body = text.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a):
                pass

        class Server(http.server.ThreadingHTTPServer):
            allow_reuse_address = True
            daemon_threads = True

            def get_request(self):
                sock, peer = self.socket.accept()
                sock.settimeout(10)
                return ctx.wrap_socket(sock, server_side=True), peer

            def handle_error(self, request, client_address):
                pass

        self.httpd = Server((addr, 443), Handler)
        self.t = threading.Thread(target=self.httpd.serve_forever,
                                  kwargs={"poll_interval": 0.1}, daemon=True)
        self.t.start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.t.join(5)


class Sink:
    def __init__(self):
        self.messages = []
        self.tls = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            self.messages.append((envelope.mail_from, list(envelope.rcpt_tos),
                                  envelope.original_content))
            self.tls.append(session.ssl is not None)
        return "250 2.0.0 Ok: sunk"


@pytest.fixture(scope="module")
def pki():
    p = Pki()
    yield p
    shutil.rmtree(p.dir, ignore_errors=True)


@pytest.fixture
def world(dns_factory, pki):  # noqa: F811
    """dnsmasq, the policy servers and the TLS next hops."""
    if os.geteuid() != 0:
        pytest.skip("the policy servers listen on port 443 (root only)")
    hosts = [("mta-sts." + d, a) for d, (a, _, _) in POLICIES.items()]
    hosts += [(n, a) for n, (a, _) in HOPS.items()]
    extra = ["--txt-record=_mta-sts.%s,v=STSv1; id=%s" % (d, i)
             for d, (_, i, _) in POLICIES.items()]
    # (dnsmasq's command line splits TXT strings at commas: one rua)
    extra += ["--txt-record=_smtp._tls.%s,v=TLSRPTv1; "
              "rua=mailto:reports@rpt.test" % d for d in RPT_DOMAINS]
    dns = dns_factory(mx=MX, hosts=hosts, extra=extra)
    port = common_port([a for a, _ in HOPS.values()])
    made, servers, sinks = [], {}, {}
    try:
        for d, (addr, _, text) in POLICIES.items():
            servers[d] = PolicyServer(addr, pki.server_context("mta-sts." + d),
                                      text)
        for n, (addr, certname) in HOPS.items():
            sinks[n] = Sink()
            c = Controller(sinks[n], hostname=addr, port=port,
                           tls_context=pki.server_context(certname))
            c.start()
            made.append(c)

        class World:
            pass
        w = World()
        w.dns, w.port, w.servers, w.sinks, w.ca = dns, port, servers, sinks, \
            pki.ca
        yield w
    finally:
        for c in made:
            c.stop()
        for s in servers.values():
            s.stop()


def config(w, **extra):
    cfg = {"dns": w.dns.server, "smtp_port": str(w.port),
           "retry_schedule": "1h", "smtp_tls_ca": w.ca}
    cfg.update(extra)
    return cfg


def submit(d, rcpt, sender="sender@example.com"):
    with d.connect() as c:
        c.ehlo()
        r = c.mail_transaction(sender, [rcpt],
                               make_message(to=rcpt, sender=sender))
    return queued_qid(r)


def rcpt_of(d, qid, addr, statuses):
    def ok():
        p = d.cli("show", qid, "--json")
        if p.returncode != 0:
            return None
        import json
        for r in json.loads(p.out)["recipients"]:
            if r["address"] == addr and r["status"] in statuses:
                return r
        return None
    return wait_for(ok, timeout=30, interval=0.1,
                    what="%s of %s in %s" % (addr, qid, statuses))


def events_of(d, qid):
    import json
    p = d.cli("show", qid, "--json")
    return [e["detail"] for e in json.loads(p.out)["events"]]


# ------------------------------------------------------------------ tests

def test_enforce_mx_mismatch_defers(daemon_factory, world):
    d = daemon_factory(config(world))
    qid = submit(d, "u@bad.test")
    r = rcpt_of(d, qid, "u@bad.test", ("deferred",) + FINAL)
    assert r["status"] == "deferred", r
    lr = r["last_reply"]
    assert lr["enhanced"] == "4.7.5", r
    assert "does not match the MTA-STS policy of bad.test" in lr["text"], r
    assert "tls_policy=mta-sts mode=enforce" in lr["text"], r
    assert world.sinks["mx.bad.test"].messages == []
    assert len(world.servers["bad.test"].requests) == 1
    assert any("tls_policy=mta-sts" in e for e in events_of(d, qid))
    assert "does not match the MTA-STS policy" in d.log_text()


def test_enforce_tries_the_matching_mx(daemon_factory, world):
    d = daemon_factory(config(world))
    qid = submit(d, "u@two.test")
    r = rcpt_of(d, qid, "u@two.test", FINAL)
    assert r["status"] == "relayed", r
    assert "mx2.two.test" in r["remote_mta"], r
    assert "tls_policy=mta-sts mode=enforce: certificate verified" in \
        r["last_reply"]["text"], r
    assert world.sinks["mx1.two.test"].messages == []
    assert world.sinks["mx2.two.test"].tls == [True]


def test_enforce_match_delivers_and_caches(daemon_factory, world):
    srv = world.servers["enf.test"]
    d = daemon_factory(config(world))
    qid = submit(d, "u@enf.test")
    r = rcpt_of(d, qid, "u@enf.test", FINAL)
    assert r["status"] == "relayed", r
    text = r["last_reply"]["text"]
    assert "TLS" in text and "tls_policy=mta-sts mode=enforce: " \
        "certificate verified" in text, r
    assert world.sinks["mx1.enf.test"].tls == [True]
    assert srv.requests == [("/.well-known/mta-sts.txt", "mta-sts.enf.test")]
    ev = events_of(d, qid)
    assert any("relayed" in e and "tls_policy=mta-sts mode=enforce" in e
               for e in ev), ev
    # the second delivery uses the cached policy: no second request
    qid2 = submit(d, "v@enf.test")
    r = rcpt_of(d, qid2, "v@enf.test", FINAL)
    assert r["status"] == "relayed", r
    assert "tls_policy=mta-sts mode=enforce" in r["last_reply"]["text"], r
    assert len(srv.requests) == 1, srv.requests
    # and after a restart, the store's copy
    d.restart()
    qid3 = submit(d, "w@enf.test")
    r = rcpt_of(d, qid3, "w@enf.test", FINAL)
    assert r["status"] == "relayed", r
    assert "tls_policy=mta-sts mode=enforce" in r["last_reply"]["text"], r
    assert len(srv.requests) == 1, srv.requests
    assert len(world.sinks["mx1.enf.test"].messages) == 3


def test_enforce_certificate_mismatch_defers(daemon_factory, world):
    d = daemon_factory(config(world))
    qid = submit(d, "u@crt.test")
    r = rcpt_of(d, qid, "u@crt.test", ("deferred",) + FINAL)
    assert r["status"] == "deferred", r
    assert r["last_reply"]["enhanced"] == "4.7.5", r
    assert "tls_policy=mta-sts mode=enforce" in r["last_reply"]["text"], r
    assert world.sinks["mx.crt.test"].messages == []


def test_testing_mismatch_delivers(daemon_factory, world):
    d = daemon_factory(config(world))
    qid = submit(d, "u@tst.test")
    r = rcpt_of(d, qid, "u@tst.test", FINAL)
    assert r["status"] == "relayed", r
    assert "tls_policy=mta-sts mode=testing mx=mismatch" in \
        r["last_reply"]["text"], r
    assert len(world.sinks["mx.tst.test"].messages) == 1
    assert len(world.servers["tst.test"].requests) == 1


def test_testing_certificate_mismatch_delivers(daemon_factory, world):
    d = daemon_factory(config(world))
    qid = submit(d, "u@tcr.test")
    r = rcpt_of(d, qid, "u@tcr.test", FINAL)
    assert r["status"] == "relayed", r
    assert "tls_policy=mta-sts mode=testing: certificate not verified: " \
        "hostname mismatch" in r["last_reply"]["text"], r
    assert world.sinks["mx.tcr.test"].tls == [True]


def test_delay_dsn_names_the_policy(daemon_factory, world):
    d = daemon_factory(config(world, delay_warning="1s"))
    qid = submit(d, "u@bad.test", sender="sender@example.org")
    rcpt_of(d, qid, "u@bad.test", ("deferred",) + FINAL)
    time.sleep(1.2)             # past delay_warning: the next attempt warns
    d.cli("flush", qid, check=0)
    dsn = " ".join(d.wait_mails("sender@example.org", 1)[0].decode().split())
    assert "Action: delayed Status: 4.7.5" in dsn, dsn
    assert "Diagnostic-Code: X-Waymark; MX host mx.bad.test" in dsn, dsn
    assert "does not match the MTA-STS policy of bad.test" in dsn, dsn
    assert "tls_policy=mta-sts mode=enforce" in dsn, dsn


def test_no_policy_domain_asked_once(daemon_factory, world):
    d = daemon_factory(config(world))
    for a in ("u@rpt.test", "v@rpt.test"):
        qid = submit(d, a)
        r = rcpt_of(d, qid, a, FINAL)
        assert r["status"] == "relayed", r
        assert "tls_policy" not in r["last_reply"]["text"], r
    # no record: not asked again for a while (and no policy applied)
    assert world.dns.queries("_mta-sts.rpt.test") == ["TXT"]


def report_of(raw):
    """(message, report JSON) of one TLS-RPT mail."""
    m = email.message_from_bytes(raw, policy=email.policy.default)
    assert m.get_content_type() == "multipart/report", m
    assert m.get_param("report-type") == "tlsrpt", m
    parts = [p for p in m.iter_parts()
             if p.get_content_type() == "application/tlsrpt+gzip"]
    assert len(parts) == 1, m
    return m, json.loads(gzip.decompress(parts[0].get_content()))


def test_tlsrpt_send_now(daemon_factory, world):
    sink = world.sinks["mx.rpt.test"]
    d = daemon_factory(config(world, tlsrpt="yes", hostname="relay.test"))
    qids = [(submit(d, a), a) for a in
            ("u@enf.test", "v@enf.test", "u@crt.test", "u@bad.test")]
    for qid, a in qids:
        rcpt_of(d, qid, a, ("deferred",) + FINAL)
    p = d.cli("tlsrpt", "--send-now")
    assert p.returncode == 0, p
    assert "3 policy domains" in p.out, p.out
    wait_for(lambda: len(sink.messages) >= 3, timeout=30,
             what="three reports at reports@rpt.test")
    reports = {}
    for sender, rcpts, raw in sink.messages:
        assert sender == "<>" or sender == "", sender
        assert rcpts == ["reports@rpt.test"], rcpts
        m, rep = report_of(raw)
        dom = m["TLS-Report-Domain"]
        assert m["TLS-Report-Submitter"] == "relay.test", m
        subj = " ".join(str(m["Subject"]).split())
        assert subj.startswith("Report Domain: %s Submitter: relay.test "
                               "Report-ID: <" % dom), subj
        reports[dom] = rep
    assert sorted(reports) == sorted(RPT_DOMAINS), reports
    for dom, rep in reports.items():
        assert rep["organization-name"] == "relay.test", rep
        assert rep["contact-info"] == "postmaster@relay.test", rep
        assert rep["report-id"], rep
        assert set(rep["date-range"]) == {"start-datetime", "end-datetime"}
        assert rep["date-range"]["start-datetime"].endswith("Z"), rep
        assert len(rep["policies"]) == 1, rep
        pol = rep["policies"][0]
        assert pol["policy"]["policy-type"] == "sts", pol
        assert pol["policy"]["policy-domain"] == dom, pol
        assert pol["policy"]["policy-string"] == \
            POLICIES[dom][2].replace("\r", "").strip().split("\n"), pol
    enf = reports["enf.test"]["policies"][0]
    assert enf["policy"]["mx-host"] == "*.enf.test", enf
    assert enf["summary"] == {"total-successful-session-count": 2,
                              "total-failure-session-count": 0}, enf
    assert enf["failure-details"] == [], enf
    crt = reports["crt.test"]["policies"][0]
    assert crt["summary"] == {"total-successful-session-count": 0,
                              "total-failure-session-count": 1}, crt
    assert crt["failure-details"] == [{
        "result-type": "certificate-host-mismatch",
        "sending-mta-ip": "127.0.0.1",
        "receiving-mx-hostname": "mx.crt.test",
        "receiving-ip": NET + "16",
        "failure-reason-code": "hostname mismatch",
        "failed-session-count": 1}], crt
    bad = reports["bad.test"]["policies"][0]
    assert bad["summary"]["total-failure-session-count"] == 1, bad
    assert bad["failure-details"][0]["result-type"] == "validation-failure"
    assert bad["failure-details"][0]["receiving-mx-hostname"] == \
        "mx.bad.test", bad
    # everything was reported: nothing left for a second run
    p = d.cli("tlsrpt", "--send-now")
    assert p.returncode == 0 and "0 policy domains" in p.out, p.out


def test_tlsrpt_off(daemon_factory, world):
    d = daemon_factory(config(world))
    p = d.cli("tlsrpt", "--send-now")
    assert p.returncode == 1, p
    assert "tlsrpt = no" in p.err, p.err


def test_tlsrpt_report_dkim_signed(daemon_factory, world, tmp_path):
    """RFC 8460 3: a report is DKIM-signed when dkim_key has keys for the
    hostname's domain (the report's From is postmaster@HOSTNAME); the
    signature verifies with python3-dkim against the published record."""
    import dkim
    from test_dkim import keygen
    key, txt = keygen(str(tmp_path), "rpt", "ed25519-sha256",
                      domain="relay.test")
    sink = world.sinks["mx.rpt.test"]
    before = len(sink.messages)
    d = daemon_factory(config(world, tlsrpt="yes", hostname="relay.test"),
                       raw_config="dkim_key = relay.test rpt "
                       "ed25519-sha256 %s" % key)
    qid = submit(d, "u@enf.test")
    rcpt_of(d, qid, "u@enf.test", ("deferred",) + FINAL)
    p = d.cli("tlsrpt", "--send-now")
    assert p.returncode == 0, p
    wait_for(lambda: len(sink.messages) > before, timeout=30,
             what="a report at reports@rpt.test")
    raw = sink.messages[before][2]
    msg = raw if b"\r\n" in raw else raw.replace(b"\n", b"\r\n")
    assert b"DKIM-Signature:" in msg.split(b"\r\n\r\n", 1)[0], msg[:800]

    def dnsfunc(name, timeout=5):
        name = name.decode() if isinstance(name, bytes) else name
        return txt.encode() if name == "rpt._domainkey.relay.test." else None
    assert dkim.verify(msg, dnsfunc=dnsfunc), msg[:1200]
