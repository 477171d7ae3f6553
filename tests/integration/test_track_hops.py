"""
Multi-hop MTRK tracking (issue 10 "Multi-hop"), black-box on loopback.

Topology (one SMTP port P on every address, one MTQP port Q on every
address, dnsmasq on 127.0.0.1 with MX, A and `_mtqp._tcp` SRV records):

    waymark sendmail --track
        |
        v
    A  mx.a.test 127.0.0.2  takes the submission; MX routing: c.test -> B,
        |    \\               d.test -> D
        |     D  mx.d.test 127.0.0.5  aiosmtpd for d.test: no MTRK, no DSN
        v
    B  mx.b.test 127.0.0.3  relay (c.test's MX), smarthost [mx.c.test]
        |                   (optional policy: quarantine by Subject)
        v
    C  mx.c.test 127.0.0.4  final: c.test in local_domains, Maildir

c.test's only MX is B (a gateway in front of the internal host C): with
one DNS view A cannot reach C directly, B forwards everything to its
smarthost.  SRV `_mtqp._tcp.mx.X.test` -> mx.X.test:Q for A, B and C,
so `waymark track` can only find the next MTQP server through SRV.
dnsfix.py has no SRV support here: the records go in through dns_factory's
`extra` dnsmasq arguments (`--srv-host=`), see srv_args() below.

What runs against today's code: the mail flow (bob@c.test A -> B -> C with
MTRK and ENVID passed on at each hop, carol@d.test A -> D without MTRK),
the quarantine at B and `waymark release` there.
"""

import json
import os
import random
import re
import socket
import struct
import subprocess
import threading
import uuid

import pytest

from aiosmtpd.controller import Controller

from conftest import WAYMARK, common_port, wait_for
from dnsfix import dns_factory  # noqa: F401  (fixture)

A_ADDR, B_ADDR, C_ADDR, D_ADDR = "127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"
ADDRS = (A_ADDR, B_ADDR, C_ADDR, D_ADDR)
HOSTS = [("mx.a.test", A_ADDR), ("mx.b.test", B_ADDR),
         ("mx.c.test", C_ADDR), ("mx.d.test", D_ADDR)]
MX = [("c.test", "mx.b.test", 10), ("d.test", "mx.d.test", 10)]
MTQP_HOSTS = ("mx.a.test", "mx.b.test", "mx.c.test")
BOB, CAROL = "bob@c.test", "carol@d.test"
SENDER = "alice@a.test"
QUARANTINE_POLICY = "quarantine/hops header=Subject:/quarantine me/\n"
TRACK_TIMEOUT = 150          # the client may wait 2 min for a response


# ------------------------------------------------------------ feature probes

# ------------------------------------------------------------------- DNS

def srv_args(port):
    """dnsmasq arguments for `_mtqp._tcp.H SRV 0 0 port H` for each MTQP host."""
    return ["--srv-host=_mtqp._tcp.%s,%s,%d,0,0" % (h, h, port)
            for h in MTQP_HOSTS]


def srv_query(dns_port, name, timeout=2.0):
    """One UDP SRV query to dnsmasq: [(priority, weight, port, target)]."""
    qid = random.randrange(0x10000)
    msg = struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    for label in name.split("."):
        msg += struct.pack("!B", len(label)) + label.encode()
    msg += b"\0" + struct.pack("!HH", 33, 1)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.settimeout(timeout)
        s.sendto(msg, ("127.0.0.1", dns_port))
        while True:
            data = s.recv(4096)
            if struct.unpack("!H", data[:2])[0] == qid:
                break
    finally:
        s.close()
    _, flags, qd, an, _, _ = struct.unpack("!HHHHHH", data[:12])

    def name_at(off):
        labels = []
        while True:
            n = data[off]
            if n >= 0xC0:
                labels += name_at(((n & 0x3F) << 8) | data[off + 1])[0]
                return labels, off + 2
            off += 1
            if n == 0:
                return labels, off
            labels.append(data[off:off + n].decode())
            off += n

    off = 12
    for _ in range(qd):
        off = name_at(off)[1] + 4
    out = []
    for _ in range(an):
        off = name_at(off)[1]
        rtype, _, _, rdlen = struct.unpack("!HHIH", data[off:off + 10])
        off += 10
        if rtype == 33:
            pri, w, port = struct.unpack("!HHH", data[off:off + 6])
            out.append((pri, w, port, ".".join(name_at(off + 6)[0])))
        off += rdlen
    return out


# -------------------------------------------------------------- next hop D

class Sink:
    """aiosmtpd handler for d.test: records each transaction; RCPT of an
    address in `defer` gets 451."""

    def __init__(self, defer=()):
        self.defer = set(defer)
        self.messages = []
        self.mail_params = []
        self.lock = threading.Lock()

    async def handle_MAIL(self, server, session, envelope, address, options):
        with self.lock:
            self.mail_params.append(list(options))
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 2.1.0 OK"

    async def handle_RCPT(self, server, session, envelope, address, options):
        if address.lower() in self.defer:
            return "451 4.3.0 try again later"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            self.messages.append((envelope.mail_from, list(envelope.rcpt_tos),
                                  envelope.original_content))
        return "250 2.0.0 Ok: sunk"


# ---------------------------------------------------------------- topology

class Net:
    """The running topology: a, b, c (Daemons), sink (D), dns, ports."""

    def submit(self, rcpts=(BOB, CAROL), subject="multi-hop"):
        """`waymark -f A.conf sendmail --track`: returns (envid, msgid)."""
        token = uuid.uuid4().hex
        msgid = "<%s@client.test>" % token
        data = ("From: <%s>\nTo: <%s>\nSubject: %s\nMessage-ID: %s\n\n"
                "Hello across three hops.\n" % (
                    SENDER, ">, <".join(rcpts), subject, msgid)).encode()
        p = run_cli(self.a, "sendmail", "--track", "-f", SENDER, *rcpts,
                    home=self.home, input=data)
        assert p.returncode == 0, "sendmail: exit %d\n%s%s" % (
            p.returncode, p.out, p.err)
        envid = p.out.strip()
        assert re.fullmatch(r"\S+@\S+", envid), p.out
        with open(os.path.join(self.home, ".waymark", "keys")) as f:
            assert any(l.startswith(envid + " ") for l in f.read().split("\n"))
        return envid, token

    def qid(self, d, token, timeout=30):
        """The queue id d gave the message (its accept log line, by Message-ID)."""
        pat = re.compile(r"qid=(\S+) from=<[^>]*> size=\d+ nrcpt=\d+ "
                         r"client=\S+ msgid=<?%s@client\.test>?" % token)

        def find():
            m = pat.search(d.log_text())
            return m.group(1) if m else None
        return wait_for(find, timeout=timeout, interval=0.1,
                        what="the accept log line in %s" % d.log)


def run_cli(d, *args, home=None, input=None, conf=None, timeout=TRACK_TIMEOUT):
    env = dict(os.environ)
    if home:
        env["HOME"] = home
    p = subprocess.run([WAYMARK, "-f", conf or d.conf] + list(args),
                       input=input, stdin=None if input else subprocess.DEVNULL,
                       capture_output=True, timeout=timeout, env=env)
    p.out = p.stdout.decode("utf-8", "replace")
    p.err = p.stderr.decode("utf-8", "replace")
    return p


@pytest.fixture
def net(daemon_factory, dns_factory, tmp_path):  # noqa: F811
    """net(chaining=False, quarantine=False, defer=(), a_retry="1s") -> Net."""
    made = []

    def make(chaining=False, quarantine=False, defer=(), a_retry="1s"):
        n = Net()
        n.port = common_port(ADDRS)
        n.mtqp_port = common_port(ADDRS, exclude=(n.port,))
        n.dns = dns_factory(mx=MX, hosts=HOSTS, extra=srv_args(n.mtqp_port))
        for h in MTQP_HOSTS:        # the fixture itself is right
            assert srv_query(n.dns.port, "_mtqp._tcp." + h) == \
                [(0, 0, n.mtqp_port, h)]
        n.home = str(tmp_path / "home")
        os.makedirs(n.home, exist_ok=True)
        n.sink = Sink(defer)
        ctl = Controller(n.sink, hostname=D_ADDR, port=n.port)
        ctl.start()
        made.append(ctl)

        def cfg(addr, host, local, retry="1s", **extra):
            c = {"hostname": host, "local_domains": local,
                 "dns": n.dns.server, "smtp_port": str(n.port),
                 "retry_schedule": retry,
                 "mtqp": "%s:%d" % (addr, n.mtqp_port)}
            c.update(extra)
            return c
        n.c = daemon_factory(cfg(C_ADDR, "mx.c.test", "c.test"),
                             addr=C_ADDR, port=n.port)
        b_cfg = cfg(B_ADDR, "mx.b.test", "b.test", smarthost="[mx.c.test]")
        n.b = daemon_factory(b_cfg, addr=B_ADDR, port=n.port, start=False)
        if quarantine:
            path = os.path.join(n.b.dir, "policy.conf")
            with open(path, "w") as f:
                f.write(QUARANTINE_POLICY)
            os.chmod(path, 0o644)
            n.b.config["policy"] = path
            n.b.write_config()
        n.b.start()
        a_cfg = cfg(A_ADDR, "mx.a.test", "a.test", retry=a_retry)
        if chaining:
            a_cfg["mtqp_chaining"] = "yes"
        n.a = daemon_factory(a_cfg, addr=A_ADDR, port=n.port)
        return n

    yield make
    for ctl in made:
        ctl.stop()


# ------------------------------------------------------------ store helpers

def show(d, qid):
    p = d.cli("show", qid, "--json", check=0)
    return json.loads(p.out)


def rcpt_of(m, addr):
    for r in m["recipients"]:
        if r["address"].lower() == addr:
            return r
    raise AssertionError("%s not in %r" % (addr, m["recipients"]))


def wait_final(d, qid, addr, timeout=30):
    """show --json of qid once addr is no longer queued/deferred."""
    def done():
        m = show(d, qid)
        return m if rcpt_of(m, addr)["status"] not in ("queued", "deferred") \
            else None
    return wait_for(done, timeout=timeout, interval=0.1,
                    what="%s of %s in %s to be final" % (addr, qid, d.dir))


def queued_by_envid(d, envid):
    for m in d.queue_json():
        if m["envid"] == envid:
            return m
    return None


def host_of(mta):
    """'dns; mx.b.test', 'mx.b.test[127.0.0.3]' -> 'mx.b.test'."""
    assert mta, mta
    s = mta.strip()
    if ";" in s:
        kind, s = s.split(";", 1)
        assert kind.strip().lower() == "dns", mta
    return s.split("[")[0].strip().rstrip(".").lower()


def addr_only(s):
    s = s.strip()
    if s.lower().startswith("rfc822;"):
        s = s[7:].strip()
    return s.lower()


def check_flow(n, envid, token):
    """Mail flowed A -> B -> C (bob) and A -> D (carol) with MTRK and ENVID
    passed on where the next hop advertised MTRK.  Returns the qids."""
    raw = n.c.wait_mails(BOB, 1)[0]
    assert ("Message-ID: <%s@client.test>" % token).encode() in raw
    for host in (b"mx.a.test", b"mx.b.test", b"mx.c.test"):
        assert re.search(rb"\bby " + host + rb"\b", raw), (host, raw[:2000])
    qa, qb, qc = n.qid(n.a, token), n.qid(n.b, token), n.qid(n.c, token)

    ma = wait_final(n.a, qa, CAROL)
    ma = wait_final(n.a, qa, BOB)
    assert ma["envid"] == envid and ma["tracked"] is True, ma
    bob = rcpt_of(ma, BOB)
    assert bob["status"] in ("relayed", "transferred"), bob
    assert bob["next_hop_mtrk"] is True and bob["next_hop_dsn"] is True, bob
    assert host_of(bob["remote_mta"]) == "mx.b.test", bob
    carol = rcpt_of(ma, CAROL)
    assert carol["status"] == "relayed", carol     # D has no MTRK
    assert carol["next_hop_mtrk"] is False, carol
    assert host_of(carol["remote_mta"]) == "mx.d.test", carol

    # B got MTRK, ENVID and ORCPT from A and passed them on to C
    mb = wait_final(n.b, qb, BOB)
    assert mb["envid"] == envid and mb["tracked"] is True, mb
    assert [r["address"].lower() for r in mb["recipients"]] == [BOB], mb
    bb = rcpt_of(mb, BOB)
    assert addr_only(bb["orcpt"]) == BOB, bb
    assert bb["status"] in ("relayed", "transferred"), bb
    assert bb["next_hop_mtrk"] is True, bb
    assert host_of(bb["remote_mta"]) == "mx.c.test", bb

    mc = wait_final(n.c, qc, BOB)
    assert mc["envid"] == envid and mc["tracked"] is True, mc
    cb = rcpt_of(mc, BOB)
    assert cb["status"] == "delivered" and addr_only(cb["orcpt"]) == BOB, cb

    # D got carol only, without MTRK (not advertised)
    wait_for(lambda: n.sink.messages, timeout=30, what="carol's message at D")
    with n.sink.lock:
        (frm, rcpts, _), = n.sink.messages
        params = [p for ps in n.sink.mail_params for p in ps]
    assert frm == SENDER and [r.lower() for r in rcpts] == [CAROL]
    assert not any(p.upper().startswith("MTRK") for p in params), params
    return qa, qb, qc


# ------------------------------------------------------- mail flow (today)

def test_mail_flows_a_b_c_and_to_d(net):
    """bob@c.test: A -> B (MX) -> C (B's smarthost), MTRK at every hop;
    carol@d.test: A -> D, which does not advertise MTRK."""
    n = net()
    envid, token = n.submit()
    check_flow(n, envid, token)


def test_quarantine_at_b_then_release(net):
    """B quarantines the message by Subject: A has relayed bob to B, C has
    nothing; `waymark release` at B delivers it to C."""
    n = net(quarantine=True)
    envid, token = n.submit(rcpts=(BOB,), subject="please quarantine me")
    qa = n.qid(n.a, token)
    ma = wait_final(n.a, qa, BOB)
    assert rcpt_of(ma, BOB)["next_hop_mtrk"] is True
    held = wait_for(lambda: queued_by_envid(n.b, envid), timeout=30,
                    what="the message queued at B")
    assert held["state"] == "quarantine" and held["state_value"] == "hops", held
    assert rcpt_of(held, BOB)["status"] == "queued", held
    assert n.c.mail_files(BOB) == []          # held at B: cannot have left
    n.b.cli("release", held["queue_id"], check=0)
    n.c.wait_mails(BOB, 1)
    mb = wait_final(n.b, held["queue_id"], BOB)
    assert rcpt_of(mb, BOB)["next_hop_mtrk"] is True, mb
    assert host_of(rcpt_of(mb, BOB)["remote_mta"]) == "mx.c.test", mb
    assert any(e["kind"] == "state" for e in mb["events"]), mb["events"]


# ------------------------------------------------ recipient status `transferred`

def test_queue_and_show_say_transferred(net):
    """A recipient relayed with MTRK to a hop that advertised it is
    `transferred` in `queue --json`, `queue` and `show --json`; one relayed
    to a hop without MTRK stays `relayed`.  D defers carol and A retries in
    1h, so A's message stays in the queue with bob transferred."""
    n = net(defer=(CAROL,), a_retry="1h")
    envid, token = n.submit()
    qa = n.qid(n.a, token)
    n.c.wait_mails(BOB, 1)

    def bob_final():
        m = queued_by_envid(n.a, envid)
        return m if m and rcpt_of(m, BOB)["status"] not in ("queued", "deferred") \
            else None
    m = wait_for(bob_final, timeout=30, what="bob final at A")
    assert rcpt_of(m, CAROL)["status"] == "deferred", m
    assert rcpt_of(m, BOB)["status"] == "transferred", m       # queue --json
    text = n.a.cli("queue", check=0).out
    assert re.search(r"bob@c\.test.*\btransferred\b", text), text
    assert rcpt_of(show(n.a, qa), BOB)["status"] == "transferred"
    qb = n.qid(n.b, token)
    mb = wait_final(n.b, qb, BOB)
    assert rcpt_of(mb, BOB)["status"] == "transferred", mb     # show --json
    mc = wait_final(n.c, n.qid(n.c, token), BOB)
    assert rcpt_of(mc, BOB)["status"] == "delivered", mc


# -------------------------------------- tracking (i10-cli, i10-srv merged)

def track(n, envid, *args, conf=None, check=0):
    p = run_cli(n.a, "track", envid, *args, home=n.home, conf=conf)
    if check is not None:
        assert p.returncode == check, "waymark track: exit %d (want %d)\n" \
            "stdout: %s\nstderr: %s" % (p.returncode, check, p.out, p.err)
    return p


def track_json(n, envid, *args, conf=None):
    p = track(n, envid, "--json", *args, conf=conf)
    t = json.loads(p.out)
    assert t["envid"] == envid, t
    return t


def hop_rcpts(hop):
    out = {}
    for r in hop["recipients"]:
        a = addr_only(r["original_recipient"])
        assert a == r["original_recipient"].lower(), r   # "rfc822;" removed
        assert a not in out, hop
        out[a] = r
    return out


def summary(t):
    out = {}
    for r in t["recipients"]:
        assert r["recipient"] not in out, t
        out[r["recipient"].lower()] = r
    return out


def sections(text):
    """Text output -> {"Hop 1": [lines], ..., "Outcome": [lines]}."""
    out, cur = {}, None
    for line in text.splitlines():
        m = re.match(r"^(Hop \d+|Outcome)\b", line)
        if m:
            cur = m.group(1)
            out[cur] = [line]
        elif cur:
            out[cur].append(line)
    return out


def line_with(lines, *words):
    for l in lines:
        if all(re.search(w, l) for w in words):
            return l
    raise AssertionError("no line with %r in:\n%s" % (words, "\n".join(lines)))


def check_full_path(n, t, qa, qb, qc, chained=False):
    """The JSON picture of the delivered message: 3 hops A, B, C."""
    hops = t["hops"]
    assert len(hops) == 3, json.dumps(t, indent=1)
    assert [h["result"] for h in hops] == ["ok"] * 3, hops
    assert [h["error"] for h in hops] == [None] * 3, hops
    assert [host_of(h["reporting_mta"]) for h in hops] == \
        ["mx.a.test", "mx.b.test", "mx.c.test"], hops
    assert [h["chained"] for h in hops] == [False, chained, chained], hops
    assert [h["tls"] for h in hops][:1] == [False], hops
    assert hops[0]["server"] == "%s:%d" % (A_ADDR, n.mtqp_port), hops[0]
    if not chained:
        assert [h["host"].lower() for h in hops[1:]] == ["mx.b.test", "mx.c.test"]
        assert [h["server"] for h in hops[1:]] == [
            "%s:%d" % (B_ADDR, n.mtqp_port), "%s:%d" % (C_ADDR, n.mtqp_port)]
        assert [h["tls"] for h in hops] == [False] * 3, hops
    ma, mb, mc = show(n.a, qa), show(n.b, qb), show(n.c, qc)
    assert [h["arrival_date"] for h in hops] == \
        [ma["arrival_time"], mb["arrival_time"], mc["arrival_time"]], hops

    h1, h2, h3 = (hop_rcpts(h) for h in hops)
    assert set(h1) == {BOB, CAROL} and set(h2) == {BOB} and set(h3) == {BOB}
    bob = h1[BOB]
    assert addr_only(bob["final_recipient"]) == BOB, bob
    assert bob["action"] == "transferred" and bob["status"].startswith("2."), bob
    assert host_of(bob["remote_mta"]) == "mx.b.test", bob
    assert bob["last_attempt"] == rcpt_of(ma, BOB)["last_attempt"], bob
    assert bob["handling_state"] is None and bob["diagnostic"] is None, bob
    carol = h1[CAROL]
    assert carol["action"] == "relayed" and carol["status"] == "2.1.9", carol
    assert host_of(carol["remote_mta"]) == "mx.d.test", carol
    b2 = h2[BOB]
    assert b2["action"] == "transferred" and b2["status"].startswith("2."), b2
    assert host_of(b2["remote_mta"]) == "mx.c.test", b2
    assert b2["handling_state"] is None, b2
    assert b2["last_attempt"] == rcpt_of(mb, BOB)["last_attempt"], b2
    b3 = h3[BOB]
    assert b3["action"] == "delivered" and b3["status"].startswith("2."), b3
    assert b3["handling_state"] is None and b3["will_retry_until"] is None, b3

    s = summary(t)
    assert set(s) == {BOB, CAROL}, t["recipients"]
    assert (s[BOB]["action"], s[BOB]["hop"], host_of(s[BOB]["reporting_mta"])) \
        == ("delivered", 3, "mx.c.test"), s[BOB]
    assert s[BOB]["status"].startswith("2."), s[BOB]
    assert (s[CAROL]["action"], s[CAROL]["status"], s[CAROL]["hop"],
            host_of(s[CAROL]["reporting_mta"])) == \
        ("relayed", "2.1.9", 1, "mx.a.test"), s[CAROL]


def test_track_follows_the_path(net):
    """Referrals: `waymark -f A.conf track ENVID` asks A's MTQP server (the
    config's first `mtqp`), then B and C found by `_mtqp._tcp` SRV: A
    transferred bob to mx.b.test and relayed carol to mx.d.test (2.1.9,
    tracking ends there), B transferred bob to mx.c.test, C delivered."""
    n = net()
    envid, token = n.submit()
    qa, qb, qc = check_flow(n, envid, token)
    t = track_json(n, envid)
    check_full_path(n, t, qa, qb, qc)

    p = track(n, envid)
    assert p.out.splitlines()[0] == "Tracking " + envid, p.out
    sec = sections(p.out)
    assert set(sec) == {"Hop 1", "Hop 2", "Hop 3", "Outcome"}, p.out
    assert re.match(r"Hop 2: mx\.b\.test \(%s:%d\b" % (
        re.escape(B_ADDR), n.mtqp_port), sec["Hop 2"][0]), p.out
    assert re.match(r"Hop 3: mx\.c\.test \(%s:%d\b" % (
        re.escape(C_ADDR), n.mtqp_port), sec["Hop 3"][0]), p.out
    line_with(sec["Hop 1"], r"bob@c\.test", r"\btransferred\b", r"mx\.b\.test")
    line_with(sec["Hop 1"], r"carol@d\.test", r"\brelayed\b", r"2\.1\.9")
    line_with(sec["Hop 2"], r"bob@c\.test", r"\btransferred\b", r"mx\.c\.test")
    line_with(sec["Hop 3"], r"bob@c\.test", r"\bdelivered\b")
    line_with(sec["Outcome"], r"bob@c\.test\s+delivered at \S+ \(hop 3\)")
    line_with(sec["Outcome"], r"carol@d\.test\s+relayed to mx\.d\.test",
              r"tracking ends there")


def test_track_chaining_one_query(net, dns_factory, tmp_path):  # noqa: F811
    """mtqp_chaining = yes at A: `waymark track --server A` gets B's and C's
    parts inside A's answer (chained).  The client's own DNS (a config with
    an empty dnsmasq) knows none of the hosts, so it cannot have followed
    the referrals itself."""
    n = net(chaining=True)
    envid, token = n.submit()
    qa, qb, qc = check_flow(n, envid, token)
    blind = dns_factory()
    conf = str(tmp_path / "client.conf")
    with open(conf, "w") as f:
        f.write("dns = %s\n" % blind.server)
    t = track_json(n, envid, "--server", "%s:%d" % (A_ADDR, n.mtqp_port),
                   conf=conf)
    check_full_path(n, t, qa, qb, qc, chained=True)
    assert t["hops"][0]["host"] == A_ADDR, t["hops"][0]


def test_track_quarantine_then_release(net):
    """B quarantines: track shows hop 2 delayed with handling state
    quarantine, its value, since and reason as B recorded them, and stops
    there; after `waymark release` at B, C delivered (hop 3)."""
    n = net(quarantine=True)
    envid, token = n.submit(subject="please quarantine me")
    qa = n.qid(n.a, token)
    wait_final(n.a, qa, BOB)
    wait_final(n.a, qa, CAROL)
    held = wait_for(lambda: queued_by_envid(n.b, envid), timeout=30,
                    what="the message queued at B")
    assert held["state"] == "quarantine", held

    t = track_json(n, envid)
    hops = t["hops"]
    assert len(hops) == 2 and [h["result"] for h in hops] == ["ok", "ok"], t
    b2 = hop_rcpts(hops[1])[BOB]
    assert b2["action"] == "delayed" and b2["status"].startswith("4."), b2
    assert b2["remote_mta"] is None, b2          # never tried to C
    hs = b2["handling_state"]
    assert hs == {"state": "quarantine", "value": "hops",
                  "since": held["state_since"], "reason": held["state_reason"]}, hs
    assert isinstance(b2["will_retry_until"], int), b2
    s = summary(t)
    assert (s[BOB]["action"], s[BOB]["hop"]) == ("delayed", 2), s[BOB]
    assert (s[CAROL]["action"], s[CAROL]["hop"]) == ("relayed", 1), s[CAROL]

    p = track(n, envid)
    sec = sections(p.out)
    assert set(sec) == {"Hop 1", "Hop 2", "Outcome"}, p.out
    line_with(sec["Hop 2"], r"bob@c\.test", r"\bdelayed\b", r"\bquarantine\b",
              r"\bsince\b")

    n.b.cli("release", held["queue_id"], check=0)
    n.c.wait_mails(BOB, 1)
    qb = held["queue_id"]
    wait_final(n.b, qb, BOB)
    qc = n.qid(n.c, token)
    wait_final(n.c, qc, BOB)
    t = track_json(n, envid)
    check_full_path(n, t, qa, qb, qc)
