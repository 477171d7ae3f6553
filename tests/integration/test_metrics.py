"""
Prometheus /metrics (issue 16): `metrics = ADDR:PORT` serves GET /metrics
in text format 0.0.4; `promtool check metrics` (Debian's prometheus
package) accepts a scrape; the counters and histograms match a run
(local Maildir deliveries, an aiosmtpd next hop that accepts, defers and
refuses, SMTP rejects); the queue gauges match `waymark queue --json`,
held and quarantined messages included; off by default.
"""

import http.client
import os
import re
import ssl
import subprocess
import time

import pytest

from aiosmtpd.controller import Controller

from conftest import (WAYMARKD, SMTPConn, assert_reply, free_port,
                      make_message, socket_fds, tcp_sockets, wait_for)

PROMTOOL = "/usr/bin/promtool"
TYPE_HDR = "text/plain; version=0.0.4; charset=utf-8"


class Sink:
    """aiosmtpd next hop: <defer*> gets 450, <refuse*> 550, others 250."""

    def __init__(self):
        self.ndata = 0

    async def handle_RCPT(self, server, session, envelope, address, options):
        if address.startswith("defer"):
            return "450 4.2.0 try again later"
        if address.startswith("refuse"):
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        self.ndata += 1
        return "250 2.0.0 Ok: sunk"


@pytest.fixture
def sink():
    port = free_port()
    c = Controller(Sink(), hostname="127.0.0.1", port=port)
    c.start()
    yield port
    c.stop()


def get(port, path="/metrics", method="GET"):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        c.request(method, path)
        r = c.getresponse()
        return r.status, r.getheader("Content-Type"), r.read().decode()
    finally:
        c.close()


def scrape(port):
    status, ctype, body = get(port)
    assert status == 200, (status, body)
    assert ctype == TYPE_HDR, ctype
    return body


def parse(text):
    """{(name, frozenset(labels)): value}, plus HELP/TYPE by name;
    checks what promtool does not: one group per metric, HELP and TYPE
    first, unique series, label escaping, the final newline."""
    assert text.endswith("\n"), "no final newline"
    samples, helps, types, order = {}, {}, {}, []
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name = line.split()[2]
            assert name not in helps, "second HELP for " + name
            helps[name] = line
            order.append(name)
            continue
        if line.startswith("# TYPE "):
            _, _, name, typ = line.split()
            assert name in helps and name not in types, "TYPE of " + name
            types[name] = typ
            continue
        m = re.fullmatch(r'([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)', line)
        assert m, "bad sample line %r" % line
        name, labels, value = m.groups()
        base = re.sub(r"_(bucket|sum|count)$", "", name)
        family = base if types.get(base) == "histogram" else name
        assert family == order[-1], "%s outside its group" % name
        lab = frozenset(re.findall(r'([a-zA-Z_]\w*)="((?:[^"\\]|\\.)*)"',
                                   labels or ""))
        key = (name, lab)
        assert key not in samples, "duplicate series %r" % (key,)
        samples[key] = float(value)
    return samples, types


def val(samples, name, **labels):
    return samples.get((name, frozenset(labels.items())), 0.0)


def check_histogram(samples, name):
    """cumulative buckets ascending, +Inf = _count; returns _count"""
    buckets = sorted(
        (float(dict(lab)["le"]), v) for (n, lab), v in samples.items()
        if n == name + "_bucket")
    assert buckets and buckets[-1][0] == float("inf"), buckets
    vals = [v for _, v in buckets]
    assert vals == sorted(vals), buckets
    count = samples[(name + "_count", frozenset())]
    assert vals[-1] == count
    assert (name + "_sum", frozenset()) in samples
    return count


def promtool(text):
    p = subprocess.run([PROMTOOL, "check", "metrics"], input=text.encode(),
                       capture_output=True, timeout=30)
    return p.returncode, (p.stdout + p.stderr).decode()


def metrics_daemon(daemon_factory, **extra):
    mport = free_port()
    cfg = {"metrics": "127.0.0.1:%d" % mport}
    cfg.update(extra)
    d = daemon_factory(cfg)
    return d, mport


def send(d, sender, rcpts, subject="m"):
    with d.connect() as c:
        c.ehlo()
        r = c.mail_transaction(sender, rcpts, make_message(subject=subject))
        assert r.code == 250, r
        c.cmd("QUIT")


def listening_ports(pid):
    """TCP ports pid listens on (its socket inodes in /proc/net/tcp*)"""
    inodes = socket_fds(pid)
    return {lport for lport, _, state, inode in tcp_sockets()
            if state == "0A" and inode in inodes}


# ------------------------------------------------------------------ tests

def test_off_by_default(daemon_factory):
    d = daemon_factory()
    p = subprocess.run([WAYMARKD, "-f", d.conf, "-n"], capture_output=True,
                       timeout=30)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.decode().splitlines()
    assert "metrics = " in lines, [l for l in lines if "metrics" in l]
    assert listening_ports(d.pid) == {d.port}
    assert "metrics:" not in d.log_text()


@pytest.mark.parametrize("text,err", [
    ("metrics = 127.0.0.1:9100\nmetrics = 127.0.0.1:9101\n",
     "metrics: repeated"),
    ("metrics = 127.0.0.1:9100, 127.0.0.1:9101\n", "metrics: one address only"),
    ("metrics = 127.0.0.1\n", "metrics:"),
])
def test_config_errors(daemon_factory, text, err):
    d = daemon_factory(start=False)
    with open(d.conf, "a") as f:
        f.write(text)
    p = subprocess.run([WAYMARKD, "-f", d.conf, "-n"], capture_output=True,
                       timeout=30)
    assert p.returncode == 1 and err in p.stderr.decode(), p.stderr


@pytest.mark.skipif(not os.path.exists(PROMTOOL), reason="no promtool")
def test_scrape_format_and_routes(daemon_factory):
    d, mport = metrics_daemon(daemon_factory)
    assert listening_ports(d.pid) == {d.port, mport}
    body = scrape(mport)
    rc, out = promtool(body)
    assert rc == 0, out
    samples, types = parse(body)
    want = {
        "waymark_queue_messages": "gauge",
        "waymark_queue_oldest_seconds": "gauge",
        "waymark_deliveries_total": "counter",
        "waymark_delivery_attempt_seconds": "histogram",
        "waymark_message_delay_seconds": "histogram",
        "waymark_smtp_sessions": "gauge",
        "waymark_smtp_rejects_total": "counter",
        "waymark_tls_outbound_total": "counter",
        "waymark_dkim_signatures_total": "counter",
        "waymark_milter_actions_total": "counter",
        "waymark_spool_free_bytes": "gauge",
    }
    assert types == want
    assert check_histogram(samples, "waymark_delivery_attempt_seconds") == 0
    assert check_histogram(samples, "waymark_message_delay_seconds") == 0
    states = {dict(lab)["state"] for (n, lab) in samples
              if n == "waymark_queue_messages"}
    assert states == {"normal", "auth", "content", "convert", "moderation",
                      "quarantine", "timed", "outbound", "other"}
    assert val(samples, "waymark_spool_free_bytes") > 0
    assert val(samples, "waymark_deliveries_total", result="delivered",
               transport="maildir") == 0
    # every other path is 404, another method 405, nothing else is served
    assert get(mport, "/")[0] == 404
    assert get(mport, "/metrics/x")[0] == 404
    assert get(mport, "/api/queue")[0] == 404
    assert get(mport, "/metrics", "POST")[0] == 405
    # an open SMTP session is counted while it lasts
    with SMTPConn(d.port) as c:
        c.ehlo()
        s, _ = parse(scrape(mport))
        assert val(s, "waymark_smtp_sessions") == 1
        c.cmd("QUIT")
    wait_for(lambda: val(parse(scrape(mport))[0],
                         "waymark_smtp_sessions") == 0,
             timeout=10, what="the session gauge back to 0")


@pytest.mark.skipif(not os.path.exists(PROMTOOL), reason="no promtool")
def test_counters_match_a_run(daemon_factory, sink):
    d, mport = metrics_daemon(daemon_factory,
                              smarthost="[127.0.0.1]:%d" % sink,
                              retry_schedule="1h")
    for i in range(3):
        send(d, "a@example.org", ["user%d@localhost" % i])
    send(d, "a@example.org", ["ok1@remote.test"])
    send(d, "a@example.org", ["ok2@remote.test"])
    send(d, "a@example.org", ["defer@remote.test"])
    send(d, "a@example.org", ["refuse@remote.test"])
    # rejects: two unknown commands (500) and a bad MAIL (501)
    with d.connect() as c:
        c.ehlo()
        assert_reply(c.cmd("FOO"), 500)
        assert_reply(c.cmd("BAR"), 500)
        assert_reply(c.cmd("MAIL FROM:<a@"), 501)
        c.cmd("QUIT")

    def settled():
        q = d.queue_json()
        if len(q) != 1:
            return False
        r = q[0]["recipients"][0]
        return r["status"] == "deferred"
    wait_for(settled, timeout=30, what="every delivery but the deferred one")
    for i in range(3):
        d.wait_mails("user%d@localhost" % i, 1)

    def counted():
        s, _ = parse(scrape(mport))
        return val(s, "waymark_deliveries_total", result="deferred",
                   transport="smtp") == 1 and \
            val(s, "waymark_deliveries_total", result="delivered",
                transport="maildir") == 4
    wait_for(counted, timeout=10, what="the counters")
    body = scrape(mport)
    rc, out = promtool(body)
    assert rc == 0, out
    s, _ = parse(body)
    dl = {(dict(lab)["result"], dict(lab)["transport"]): v
          for (n, lab), v in s.items() if n == "waymark_deliveries_total"}
    # the failure DSN to a@example.org (a local domain) is the 4th Maildir
    assert {k: v for k, v in dl.items() if v} == {
        ("delivered", "maildir"): 4, ("relayed", "smtp"): 2,
        ("deferred", "smtp"): 1, ("failed", "smtp"): 1}
    assert len(dl) == 15        # every result x transport, zeros included
    # one job per message: 4 Maildir (the DSN included), 4 SMTP
    assert check_histogram(s, "waymark_delivery_attempt_seconds") == 8
    # final outcomes: 4 delivered, 2 relayed, 1 failed
    assert check_histogram(s, "waymark_message_delay_seconds") == 7
    rej = {dict(lab)["code"]: v for (n, lab), v in s.items()
           if n == "waymark_smtp_rejects_total"}
    assert rej == {"500": 2, "501": 1}
    tls = {dict(lab)["result"]: v for (n, lab), v in s.items()
           if n == "waymark_tls_outbound_total" and
           dict(lab)["policy"] == "none"}
    # the sink offers no STARTTLS: every connection went on in clear
    assert 1 <= tls["cleartext"] <= 4, tls
    assert sum(tls.values()) == tls["cleartext"], tls
    assert val(s, "waymark_smtp_sessions") == 0


@pytest.mark.skipif(not os.path.exists(PROMTOOL), reason="no promtool")
def test_queue_gauges_match_queue_json(daemon_factory, sink):
    d, mport = metrics_daemon(daemon_factory,
                              smarthost="[127.0.0.1]:%d" % sink,
                              retry_schedule="1h")
    with open(os.path.join(d.dir, "policy.conf"), "w") as f:
        f.write("quarantine/q from=q@*\n")
    os.chmod(os.path.join(d.dir, "policy.conf"), 0o644)
    d.stop()
    d.config["policy"] = os.path.join(d.dir, "policy.conf")
    d.write_config()
    d.start()
    send(d, "a@example.org", ["defer1@remote.test"])
    send(d, "a@example.org", ["defer2@remote.test"])
    send(d, "q@example.org", ["user@localhost"])
    send(d, "q@example.org", ["user@localhost"])
    wait_for(lambda: sum(1 for m in d.queue_json()
                         if m["recipients"][0]["status"] == "deferred") == 2,
             timeout=30, what="two deferred messages")
    held = [m["queue_id"] for m in d.queue_json()
            if m["recipients"][0]["address"].startswith("defer1")]
    d.cli("hold", held[0], check=0)

    def compare():
        q = d.queue_json()
        s, _ = parse(scrape(mport))
        now = time.time()
        want = {}
        for m in q:
            want.setdefault(m["state"], []).append(m["arrival_time"])
        for (n, lab), v in s.items():
            st = dict(lab).get("state")
            if n == "waymark_queue_messages":
                if v != len(want.get(st, [])):
                    return False
            elif n == "waymark_queue_oldest_seconds":
                if st not in want:
                    assert v == 0, (st, v)
                else:
                    age = now - min(want[st])
                    assert age - 3 <= v <= age + 3, (st, v, age)
        return want
    want = wait_for(compare, timeout=10, what="gauges = queue --json")
    assert sorted(want) == ["normal", "other", "quarantine"], want
    assert [len(want[k]) for k in ("normal", "other", "quarantine")] == \
        [1, 1, 2]
    # release: other -> outbound (a remote recipient); delete the
    # quarantined ones: gone
    d.cli("release", held[0], check=0)
    for m in d.queue_json():
        if m["state"] == "quarantine":
            d.cli("delete", m["queue_id"], check=0)
    want = wait_for(compare, timeout=10, what="gauges after the changes")
    assert sorted(want) == ["normal", "outbound"], want
    assert len(want["normal"]) == 1 and len(want["outbound"]) == 1, want
    rc, out = promtool(scrape(mport))
    assert rc == 0, out


def tls_sink_port(tmpdir):
    key = os.path.join(tmpdir, "key.pem")
    cert = os.path.join(tmpdir, "cert.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048",
                    "-nodes", "-keyout", key, "-out", cert, "-days", "2",
                    "-subj", "/CN=127.0.0.1"], check=True,
                   capture_output=True, timeout=60)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    port = free_port()
    c = Controller(Sink(), hostname="127.0.0.1", port=port, tls_context=ctx,
                   require_starttls=False)
    c.start()
    return c, port


@pytest.mark.parametrize("mode,result,status", [
    ("may", "opportunistic", "relayed"),     # self-signed: not checked
    ("verify", "failed", "deferred"),        # self-signed: refused
])
def test_tls_outbound(daemon_factory, tmp_path, mode, result, status):
    c, port = tls_sink_port(str(tmp_path))
    try:
        d, mport = metrics_daemon(daemon_factory,
                                  smarthost="[127.0.0.1]:%d" % port,
                                  smtp_tls=mode, retry_schedule="1h")
        send(d, "a@example.org", ["x@remote.test"])

        def done():
            s, _ = parse(scrape(mport))
            n = val(s, "waymark_deliveries_total", result=status,
                    transport="smtp")
            return s if n == 1 else None
        s = wait_for(done, timeout=30, what="the delivery attempt")
        tls = {(dict(lab)["policy"], dict(lab)["result"]): v
               for (n, lab), v in s.items()
               if n == "waymark_tls_outbound_total"}
        assert len(tls) == 15, tls
        assert {k: v for k, v in tls.items() if v} == {("none", result): 1}
    finally:
        c.stop()
