"""
RFC 2852 DELIVERBY, end to end.

Server side: EHLO advertises DELIVERBY (with the min-by-time when
deliverby_min is set, a duration of at most 999999999 s) on every listener; each malformed or out-of-range
BY= value gets the spec's reply (501 5.5.4 syntax and mode R with a
by-time <= 0, 555 5.5.4 mode R below the minimum or BY on RCPT); the
deadline and mode are shown by `waymark show --json`.

Relaying through a scripted next hop (smarthost; an asyncio server that
records every command with its arrival time and counts message bodies):
  - a DELIVERBY hop that keeps deferring (451 to RCPT): mode R fails
    5.4.7 at the deadline, also when the next retry is an hour away,
    with a failure DSN carrying Deliver-By-Date; the hop never sees
    MAIL after the deadline and gets BY=<remaining>;R (remaining <= the
    original).  Mode N: one delayed DSN (4.4.7) at the deadline, the
    recipient keeps being retried (the hop then gets a negative
    by-time), no second delayed DSN, not even after a restart.
  - a hop without DELIVERBY: mode R fails 5.4.7 without a MAIL; mode N
    is relayed without BY= and gets a relayed DSN, with DELAY added to
    NOTIFY for a DSN hop (NEVER left alone and not notified).
  - a hop whose min-by-time exceeds the time left: mode R fails 5.4.7
    without a MAIL; one whose minimum fits gets BY=...;R.
  - trace T: a relayed DSN from a DELIVERBY hop, a delivered DSN for
    local delivery, without NOTIFY=SUCCESS.
DSNs go to the sender's local Maildir (someone@localhost) and are parsed
with the email package.  Timing: only bounds with slack for a loaded box.
"""

import asyncio
import email.utils
import re
import time

import pytest

from asyncserver import ThreadedServer
from conftest import SMTPConn, assert_reply, duration_seconds, \
    ehlo_keywords, free_port, make_message, parse_config_dump, \
    run_waymarkd, wait_for
from test_dsn import SENDER, parse, report, transaction

FINAL = ("delivered", "relayed", "failed", "expanded", "transferred")


class ByHop(ThreadedServer):
    """Next hop: advertises `caps`; answers RCPT with rcpt_reply; records
    (time, line) of every command; counts the bodies it accepted."""

    def __init__(self, caps, rcpt_reply="250 2.1.5 ok"):
        self.caps = list(caps)
        self.rcpt_reply = rcpt_reply
        self.lines = []
        self.bodies = 0
        ThreadedServer.__init__(self)

    async def handle(self, reader, writer):
        def w(s):
            writer.write(s.encode() + b"\r\n")
        w("220 hop.test ESMTP")
        accepted = 0
        try:
            while True:
                line = await reader.readline()
                if not line:
                    break
                text = line.decode().rstrip("\r\n")
                self.lines.append((time.time(), text))
                cmd = text.upper()
                if cmd.startswith("EHLO"):
                    caps = ["hop.test"] + self.caps
                    w("\r\n".join("250%s%s" % ("-" if i < len(caps) - 1
                                               else " ", c)
                                  for i, c in enumerate(caps)))
                elif cmd.startswith("MAIL"):
                    accepted = 0
                    w("250 2.1.0 ok")
                elif cmd.startswith("RCPT"):
                    if self.rcpt_reply.startswith("2"):
                        accepted += 1
                    w(self.rcpt_reply)
                elif cmd == "DATA":
                    if accepted == 0:
                        w("554 5.5.1 no valid recipients")
                    else:
                        w("354 go ahead")
                        await writer.drain()
                        while True:
                            l = await reader.readline()
                            if not l:
                                return
                            if l == b".\r\n":
                                break
                        self.bodies += 1
                        w("250 2.0.0 ok")
                elif cmd == "QUIT":
                    w("221 bye")
                    await writer.drain()
                    break
                else:
                    w("250 2.0.0 ok")
                await writer.drain()
        finally:
            writer.close()

    def commands(self, verb):
        return [(t, l) for t, l in list(self.lines)
                if l.upper().startswith(verb)]


@pytest.fixture
def hops():
    made = []

    def make(*a, **kw):
        h = ByHop(*a, **kw)
        made.append(h)
        return h
    yield make
    for h in made:
        h.stop()


def relay_daemon(factory, hop, retry="1s", extra=None):
    cfg = {"smarthost": "[127.0.0.1]:%d" % hop.port, "retry_schedule": retry,
           "delay_warning": "0"}
    cfg.update(extra or {})
    return factory(cfg)


def send(d, by, rcpts=("TO:<a@remote.test>",), sender=SENDER):
    return transaction(d, "FROM:<%s> %s" % (sender, by), list(rcpts),
                       make_message(subject="by " + by, sender=sender,
                                    to="a@remote.test"))


def show(d, qid):
    return d.show_json(qid)


def rcpt_of(m, addr):
    for r in m["recipients"]:
        if r["address"] == addr:
            return r
    raise KeyError(addr)


def events(d, qid, kind):
    return [e for e in show(d, qid)["events"] if e["kind"] == kind]


def dsns(d, n, timeout=30):
    """The first n DSNs in the sender's Maildir, parsed."""
    return [parse(x) for x in d.wait_mails(SENDER, n, timeout=timeout)]


def deliver_by_date(per_msg):
    v = per_msg["Deliver-By-Date"]
    assert v, "no Deliver-By-Date in %r" % dict(per_msg)
    assert re.search(r"[+-]\d{4}$", str(v)), v
    return int(email.utils.parsedate_to_datetime(str(v)).timestamp())


def by_values(hop, mode):
    """by-time of each BY=<t>;<mode> MAIL parameter the hop received."""
    out = []
    for t, l in hop.commands("MAIL"):
        m = re.search(r" BY=(-?\d+);" + mode + r"(?: |$)", l)
        assert m, "MAIL without BY=...;%s: %r" % (mode, l)
        out.append((t, int(m.group(1))))
    return out


def human(parts):
    """The DSN's text part, folded lines joined."""
    return " ".join(parts[0].get_content().split())


def no_new_mail(d, addr, count, seconds=2):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert len(d.mail_files(addr)) == count, d.mails(addr)
        time.sleep(0.2)


# ------------------------------------------------------------ server side

def test_ehlo_advertises_deliverby_on_every_listener(daemon_factory):
    sub = free_port()
    d = daemon_factory({"submission": "127.0.0.1:%d" % sub})
    for port in (d.port, sub):
        with SMTPConn(port) as c:
            r = c.ehlo()
            assert "DELIVERBY" in ehlo_keywords(r), r
            assert "DELIVERBY" in r.lines, r      # no minimum: no parameter
    d2 = daemon_factory({"deliverby_min": "2m"})
    with d2.connect() as c:
        r = c.ehlo()
    assert "DELIVERBY 120" in r.lines, r


def test_deliverby_min_key(daemon_factory):
    d = daemon_factory(start=False)
    p = run_waymarkd("-n", "-f", d.conf)
    assert p.returncode == 0, p.err
    assert duration_seconds(parse_config_dump(p.out)["deliverby_min"]) == 0
    d = daemon_factory({"deliverby_min": "999999999"}, start=False)
    assert run_waymarkd("-n", "-f", d.conf).returncode == 0
    d = daemon_factory({"deliverby_min": "1000000000"}, start=False)
    p = run_waymarkd("-n", "-f", d.conf)
    assert p.returncode != 0 and "deliverby_min" in p.err, p.err


BAD = [
    ("BY=0;R", 501),                  # R needs a by-time > 0
    ("BY=-10;R", 501),
    ("BY=-0;RT", 501),
    ("BY=1000000000;N", 501),         # 10 digits
    ("BY=-1000000000;N", 501),
    ("BY=60", 501),                   # no mode
    ("BY=60;", 501),
    ("BY=;R", 501),
    ("BY=60;X", 501),
    ("BY=60;T", 501),
    ("BY=60;RN", 501),
    ("BY=60;NTT", 501),
    ("BY=1m;R", 501),
    ("BY", 501),
    ("BY=60;R BY=60;R", 501),         # repeated
    ("BY=59;R", 555),                 # below deliverby_min = 60
    ("BY=1;RT", 555),
]


def test_bad_by_values(daemon_factory):
    d = daemon_factory({"deliverby_min": "60"})
    with d.connect() as c:
        c.ehlo()
        for param, code in BAD:
            r = c.cmd("MAIL FROM:<s@example.com> " + param)
            assert r.code == code, (param, r)
            assert_reply(r, code, "5.5.4")
        # BY on RCPT is not a RCPT parameter
        assert_reply(c.cmd("MAIL FROM:<s@example.com>"), 250, "2.")
        assert_reply(c.cmd("RCPT TO:<a@example.org> BY=60;R"), 555, "5.5.4")
        assert_reply(c.cmd("RSET"), 250)
        # the minimum binds mode R only; N may even be in the past
        for good in ("BY=60;R", "BY=999999999;RT", "BY=59;N", "BY=-5;NT",
                     "BY=+0;n", "by=60;rt"):
            assert_reply(c.cmd("MAIL FROM:<s@example.com> " + good), 250,
                         "2.")
            assert_reply(c.cmd("RSET"), 250)


def test_deadline_stored_and_shown(daemon):
    # waymarkd's time() reads the kernel's coarse clock, which can still
    # show the second before time.time() for up to a tick: 1 s of slack
    t0 = int(time.time()) - 1
    q1 = send(daemon, "BY=3600;RT", ["TO:<a@example.org>"])
    q2 = send(daemon, "BY=-30;N", ["TO:<a@example.org>"])
    q3 = send(daemon, "", ["TO:<a@example.org>"])
    for q in (q1, q2, q3):
        wait_for(lambda: rcpt_of(show(daemon, q), "a@example.org")["status"]
                 == "delivered", timeout=30, interval=0.2, what="delivery")
    m1, m2, m3 = show(daemon, q1), show(daemon, q2), show(daemon, q3)
    t1 = int(time.time())
    assert m1["by_mode"] == "R" and t0 + 3600 <= m1["deliver_by"] <= t1 + 3600
    assert m2["by_mode"] == "N" and t0 - 30 <= m2["deliver_by"] <= t1 - 30
    assert m3["by_mode"] is None and m3["deliver_by"] is None
    # delivered locally before its deadline: nothing special (R), and
    # the trace flag asks for a delivered DSN without NOTIFY=SUCCESS
    n = dsns(daemon, 1)[0]
    parts, per_msg, rcpts = report(n)
    assert list(rcpts) == ["a@example.org"]
    assert rcpts["a@example.org"]["Action"] == "delivered"
    assert deliver_by_date(per_msg) == m1["deliver_by"]
    no_new_mail(daemon, SENDER, 1)


# ---------------------------------------------- a next hop that defers

@pytest.mark.parametrize("retry", ["1s", "1h"])
def test_mode_r_deferring_hop_fails_at_deadline(daemon_factory, hops, retry):
    """retry 1h: the deadline, not the next retry, ends the message."""
    hop = hops(["PIPELINING", "DSN", "DELIVERBY"],
               rcpt_reply="451 4.3.0 try again later")
    d = relay_daemon(daemon_factory, hop, retry=retry)
    t0 = time.time()
    qid = send(d, "BY=4;R")
    # the status is in memory at once, its event once committed
    m = wait_for(lambda: (lambda m: m if rcpt_of(m, "a@remote.test")[
        "status"] in FINAL and any(e["kind"] in FINAL for e in m["events"])
        else None)(show(d, qid)), timeout=30, interval=0.1,
        what="the recipient to fail")
    r = rcpt_of(m, "a@remote.test")
    assert r["status"] == "failed", r
    assert r["last_reply"]["enhanced"] == "5.4.7", r
    deadline = m["deliver_by"]
    # waymarkd's time() reads the kernel's coarse clock, which can still
    # show the second before time.time() for up to a tick: 1 s of slack
    assert int(t0) - 1 + 4 <= deadline <= int(time.time()) + 4
    failed = [e for e in m["events"] if e["kind"] == "failed"]
    assert len(failed) == 1, m["events"]
    # acted on at the deadline (bounded slack for a loaded box), never
    # after a retry an hour away
    assert deadline - 1 <= failed[0]["time"] <= deadline + 10, \
        (deadline, failed)
    # the hop got BY=<remaining>;R, never more than asked, and no MAIL
    # once the deadline had passed
    vals = by_values(hop, "R")
    assert vals, hop.lines
    for t, v in vals:
        assert 0 < v <= 4, vals
        assert t < deadline + 1, (deadline, vals)
    assert hop.bodies == 0
    # one failure DSN with Status 5.4.7 and Deliver-By-Date
    n = dsns(d, 1)[0]
    assert n["Subject"] == "Undelivered Mail Returned to Sender"
    parts, per_msg, rcpts = report(n)
    g = rcpts["a@remote.test"]
    assert g["Action"] == "failed" and g["Status"] == "5.4.7", dict(g)
    assert deliver_by_date(per_msg) == deadline
    assert "delivery time expired" in human(parts)
    no_new_mail(d, SENDER, 1)


def test_mode_n_deferring_hop_delayed_dsn_once(daemon_factory, hops):
    hop = hops(["PIPELINING", "DELIVERBY"],
               rcpt_reply="451 4.3.0 try again later")
    d = relay_daemon(daemon_factory, hop, retry="1s")
    qid = send(d, "BY=3;N", ["TO:<a@remote.test>",
                             "TO:<b@remote.test> NOTIFY=FAILURE",
                             "TO:<c@remote.test> NOTIFY=DELAY"])
    n = dsns(d, 1)[0]
    m = show(d, qid)
    deadline = m["deliver_by"]
    parts, per_msg, rcpts = report(n)
    assert n["Subject"].startswith("Delayed Mail")
    # NOTIFY absent or with DELAY; b asked for FAILURE only
    assert sorted(rcpts) == ["a@remote.test", "c@remote.test"], rcpts
    for g in rcpts.values():
        assert g["Action"] == "delayed" and g["Status"] == "4.4.7", dict(g)
    assert deliver_by_date(per_msg) == deadline
    ev = wait_for(lambda: events(d, qid, "dsn"), timeout=10, interval=0.1,
                  what="the dsn event")
    assert len(ev) == 1 and ev[0]["detail"].startswith("kind=delayed"), ev
    assert deadline - 1 <= ev[0]["time"] <= deadline + 10, (deadline, ev)
    # still retried after the deadline, with a negative by-time; no
    # second delayed DSN
    wait_for(lambda: any(v < 0 for _, v in by_values(hop, "N")),
             timeout=30, interval=0.2, what="a MAIL with BY=-n;N")
    vals = by_values(hop, "N")
    assert all(v <= 3 for _, v in vals), vals
    no_new_mail(d, SENDER, 1, seconds=3)
    m = show(d, qid)
    assert all(r["status"] == "deferred" for r in m["recipients"]), m
    assert len(events(d, qid, "dsn")) == 1
    # once, across a restart too (BY_DONE is in the message record)
    d.restart()
    seen = len(hop.commands("MAIL"))
    wait_for(lambda: len(hop.commands("MAIL")) >= seen + 2, timeout=30,
             interval=0.2, what="more attempts after the restart")
    no_new_mail(d, SENDER, 1, seconds=1)
    assert len(events(d, qid, "dsn")) == 1


# --------------------------------------- a next hop without DELIVERBY

def test_mode_r_hop_without_deliverby_not_relayed(daemon_factory, hops):
    hop = hops(["PIPELINING", "DSN", "8BITMIME"])
    d = relay_daemon(daemon_factory, hop)
    qid = send(d, "BY=60;R")
    n = dsns(d, 1)[0]
    m = show(d, qid)
    r = rcpt_of(m, "a@remote.test")
    assert r["status"] == "failed" and r["last_reply"]["enhanced"] == "5.4.7"
    assert "DELIVERBY" in r["last_reply"]["text"], r
    assert hop.commands("MAIL") == [] and hop.bodies == 0, hop.lines
    parts, per_msg, rcpts = report(n)
    g = rcpts["a@remote.test"]
    assert g["Action"] == "failed" and g["Status"] == "5.4.7", dict(g)
    assert deliver_by_date(per_msg) == m["deliver_by"]
    assert "DELIVERBY" in human(parts)


@pytest.mark.parametrize("dsn_hop", [True, False])
def test_mode_n_hop_without_deliverby_relayed_dsn(daemon_factory, hops,
                                                  dsn_hop):
    hop = hops(["PIPELINING"] + (["DSN"] if dsn_hop else []))
    d = relay_daemon(daemon_factory, hop)
    qid = send(d, "BY=60;N", ["TO:<a@remote.test>",
                              "TO:<b@remote.test> NOTIFY=SUCCESS",
                              "TO:<c@remote.test> NOTIFY=NEVER"])
    n = dsns(d, 1)[0]
    wait_for(lambda: all(r["status"] == "relayed"
                         for r in show(d, qid)["recipients"]),
             timeout=30, interval=0.2, what="relayed")
    assert hop.bodies == 1
    mails = [l for _, l in hop.commands("MAIL")]
    assert mails == ["MAIL FROM:<%s>" % SENDER], mails     # no BY=
    rcpts_sent = sorted(l for _, l in hop.commands("RCPT"))
    if dsn_hop:     # RFC 2852 4.1.4.2: DELAY added, NEVER left alone
        assert rcpts_sent == [
            "RCPT TO:<a@remote.test> NOTIFY=FAILURE,DELAY",
            "RCPT TO:<b@remote.test> NOTIFY=SUCCESS,DELAY",
            "RCPT TO:<c@remote.test> NOTIFY=NEVER"], rcpts_sent
    else:
        assert rcpts_sent == ["RCPT TO:<a@remote.test>",
                              "RCPT TO:<b@remote.test>",
                              "RCPT TO:<c@remote.test>"], rcpts_sent
    parts, per_msg, rcpts = report(n)
    assert sorted(rcpts) == ["a@remote.test", "b@remote.test"], rcpts
    for g in rcpts.values():
        assert g["Action"] == "relayed" and g["Status"].startswith("2.")
    assert deliver_by_date(per_msg) == show(d, qid)["deliver_by"]
    assert "does not support DELIVERBY" in human(parts)
    no_new_mail(d, SENDER, 1)


# ------------------------------ a next hop whose minimum is too large

def test_mode_r_hop_minimum_too_large(daemon_factory, hops):
    hop = hops(["PIPELINING", "DELIVERBY 240"])
    d = relay_daemon(daemon_factory, hop)
    qid = send(d, "BY=60;R")
    n = dsns(d, 1)[0]
    r = rcpt_of(show(d, qid), "a@remote.test")
    assert r["status"] == "failed" and r["last_reply"]["enhanced"] == "5.4.7"
    assert "240" in r["last_reply"]["text"], r
    assert hop.commands("MAIL") == [] and hop.bodies == 0, hop.lines
    parts, per_msg, rcpts = report(n)
    assert rcpts["a@remote.test"]["Status"] == "5.4.7"
    assert deliver_by_date(per_msg)
    # a minimum that fits: relayed with the time left, which is no more
    # than the original by-time
    qid = send(d, "BY=300;R")
    wait_for(lambda: rcpt_of(show(d, qid), "a@remote.test")["status"] ==
             "relayed", timeout=30, interval=0.2, what="relayed")
    vals = by_values(hop, "R")
    assert len(vals) == 1 and 240 <= vals[0][1] <= 300, vals
    assert hop.bodies == 1
    no_new_mail(d, SENDER, 1)


def test_mode_n_hop_minimum_does_not_apply(daemon_factory, hops):
    hop = hops(["DELIVERBY 240"])
    d = relay_daemon(daemon_factory, hop)
    qid = send(d, "BY=60;N")
    wait_for(lambda: rcpt_of(show(d, qid), "a@remote.test")["status"] ==
             "relayed", timeout=30, interval=0.2, what="relayed")
    vals = by_values(hop, "N")
    assert len(vals) == 1 and 0 < vals[0][1] <= 60, vals
    # a DELIVERBY hop: no relayed DSN without trace or NOTIFY=SUCCESS
    no_new_mail(d, SENDER, 0)


# ---------------------------------------------------------------- trace

def test_trace_relayed_dsn_from_deliverby_hop(daemon_factory, hops):
    hop = hops(["PIPELINING", "DSN", "DELIVERBY"])
    d = relay_daemon(daemon_factory, hop)
    qid = send(d, "BY=120;RT", ["TO:<a@remote.test>",
                                "TO:<b@remote.test> NOTIFY=NEVER"])
    n = dsns(d, 1)[0]
    vals = by_values(hop, "RT")
    assert len(vals) == 1 and 0 < vals[0][1] <= 120, vals
    # passed on unchanged to a DELIVERBY hop: nothing added to NOTIFY
    assert sorted(l for _, l in hop.commands("RCPT")) == [
        "RCPT TO:<a@remote.test>", "RCPT TO:<b@remote.test> NOTIFY=NEVER"]
    parts, per_msg, rcpts = report(n)
    assert list(rcpts) == ["a@remote.test"]
    assert rcpts["a@remote.test"]["Action"] == "relayed"
    assert deliver_by_date(per_msg) == show(d, qid)["deliver_by"]
    no_new_mail(d, SENDER, 1)
