"""
Recipient status `transferred` (issue 10, RFC 3885 / RFC 3886 3.3.4): a
recipient relayed to a next hop that advertised MTRK, in a transaction
whose MAIL actually carried MTRK=, is recorded as `transferred`; every
other relayed recipient stays `relayed`.  Shown by `waymark queue --json`,
`show --json` and the `show` text, kept across a restart (the record),
and treated like `relayed` otherwise (final; a "relayed" DSN when the
hop does not speak DSN).

Next hops are scripted raw asyncio servers (asyncserver.py), as in
test_dsn_params.py: aiosmtpd answers 555 to MAIL parameters it does not
implement (ENVID, RET, MTRK).  A recipient named "later@..." gets 450
at RCPT, so its message stays in the queue and `waymark queue` lists it.
"""

import json

from asyncserver import ThreadedServer
from conftest import (assert_reply, dot_stuff, make_message, queued_qid,
                      wait_for)

CERT = "QlrxKgdDUCsyLpOgFbz4aOMk1Wo"    # base64(SHA-1("abcdefgh")), unpadded
FINAL = ("delivered", "relayed", "failed", "expanded", "transferred")


class Hop(ThreadedServer):
    """Next hop advertising `caps`; records the lines it gets; RCPT of an
    address in `defer` gets 450; in `defer_once`, 450 the first time."""

    def __init__(self, caps, defer=(), defer_once=()):
        self.caps = list(caps)
        self.defer = set(defer)
        self.defer_once = set(defer_once)
        self.lines = []
        ThreadedServer.__init__(self)

    async def handle(self, reader, writer):
        def w(s):
            writer.write(s.encode() + b"\r\n")
        w("220 hop.test ESMTP")
        try:
            while True:
                line = await reader.readline()
                if not line:
                    break
                text = line.decode().rstrip("\r\n")
                self.lines.append(text)
                cmd = text.upper()
                if cmd.startswith("EHLO"):
                    w("\r\n".join(["250-hop.test"] +
                                  ["250-" + c for c in self.caps[:-1]] +
                                  ["250 " + self.caps[-1]]))
                elif cmd.startswith("RCPT"):
                    addr = text.split("<", 1)[1].split(">", 1)[0]
                    if addr in self.defer:
                        w("450 4.2.0 try later")
                    elif addr in self.defer_once:
                        self.defer_once.discard(addr)
                        w("450 4.2.0 try later")
                    else:
                        w("250 2.1.5 ok")
                elif cmd == "DATA":
                    w("354 go ahead")
                    await writer.drain()
                    while True:
                        l = await reader.readline()
                        if not l:
                            return
                        if l == b".\r\n":
                            break
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

    def mails(self):
        return [l for l in self.lines if l.upper().startswith("MAIL")]


def relay_daemon(daemon_factory, hop, retry="1h"):
    return daemon_factory({"smarthost": "[127.0.0.1]:%d" % hop.port,
                           "retry_schedule": retry})


def submit(d, mail, rcpts):
    """One transaction: MAIL FROM:<s@example.com> + mail params."""
    with d.connect() as c:
        c.ehlo()
        assert_reply(c.cmd("MAIL FROM:<s@example.com>" + mail), 250, "2.")
        for r in rcpts:
            assert_reply(c.cmd("RCPT TO:<%s>" % r), 250, "2.")
        r = c.cmd("DATA")
        assert r.code == 354, r
        c.send(dot_stuff(make_message(to=rcpts[0])))
        return queued_qid(c.reply())


def statuses(m):
    return {r["address"]: r["status"] for r in m["recipients"]}


def wait_statuses(d, qid, want, timeout=30):
    """show --json until the recipients have exactly the statuses want."""
    def ok():
        p = d.cli("show", qid, "--json")
        if p.returncode != 0:
            return None
        m = json.loads(p.out)
        return m if statuses(m) == want else None
    return wait_for(ok, timeout=timeout, interval=0.1,
                    what="%s: %s" % (qid, want))


def show_text_status(d, qid, addr):
    """The status word of addr's line in `waymark show QID`."""
    out = d.cli("show", qid, check=0).out
    for line in out.splitlines():
        s = line.strip()
        if s.startswith("<%s>" % addr):
            return s.split()[1]
    raise AssertionError("no line for %s in:\n%s" % (addr, out))


def test_tracked_to_mtrk_hop_is_transferred(daemon_factory):
    hop = Hop(["PIPELINING", "DSN", "MTRK"], defer=["later@remote.test"])
    try:
        d = relay_daemon(daemon_factory, hop)
        qid = submit(d, " ENVID=t1@client.test MTRK=%s:86400" % CERT,
                     ["a@remote.test", "later@remote.test"])
        want = {"a@remote.test": "transferred", "later@remote.test": "deferred"}
        m = wait_statuses(d, qid, want)
        assert any(" MTRK=%s:" % CERT in l for l in hop.mails()), hop.lines
        a = [r for r in m["recipients"] if r["address"] == "a@remote.test"][0]
        assert a["next_attempt"] is None, a         # final, like relayed
        assert a["next_hop_mtrk"] is True and a["next_hop_dsn"] is True, a
        assert "127.0.0.1" in a["remote_mta"], a
        assert any(e["kind"] == "transferred" for e in m["events"]), m
        # the queue view lists the unfinished message
        q = [x for x in d.queue_json() if x["queue_id"] == qid]
        assert len(q) == 1 and statuses(q[0]) == want, q
        assert show_text_status(d, qid, "a@remote.test") == "transferred"
        assert show_text_status(d, qid, "later@remote.test") == "deferred"
        # the status is in the stored record
        d.restart()
        assert statuses(d.show_json(qid)) == want
        assert show_text_status(d, qid, "a@remote.test") == "transferred"
    finally:
        hop.stop()


def test_tracked_to_plain_hop_is_relayed(daemon_factory):
    """A hop without MTRK: relayed; the same daemon, restarted with an
    MTRK hop as smarthost, transfers the next such message."""
    hop = Hop(["PIPELINING", "DSN"], defer=["later@remote.test"])
    hop2 = Hop(["PIPELINING", "DSN", "MTRK"])
    try:
        d = relay_daemon(daemon_factory, hop)
        qid = submit(d, " ENVID=t2@client.test MTRK=%s:86400" % CERT,
                     ["a@remote.test", "later@remote.test"])
        want = {"a@remote.test": "relayed", "later@remote.test": "deferred"}
        m = wait_statuses(d, qid, want)
        assert not any("MTRK=" in l for l in hop.mails()), hop.lines
        a = [r for r in m["recipients"] if r["address"] == "a@remote.test"][0]
        assert a["next_hop_mtrk"] is False, a
        q = [x for x in d.queue_json() if x["queue_id"] == qid]
        assert len(q) == 1 and statuses(q[0]) == want, q
        assert show_text_status(d, qid, "a@remote.test") == "relayed"
        d.stop()
        d.config["smarthost"] = "[127.0.0.1]:%d" % hop2.port
        d.write_config()
        d.start()
        q2 = submit(d, " ENVID=t2b@client.test MTRK=%s:86400" % CERT,
                    ["b@remote.test"])
        wait_statuses(d, q2, {"b@remote.test": "transferred"})
        assert statuses(d.show_json(qid))["a@remote.test"] == "relayed"
    finally:
        hop.stop()
        hop2.stop()


def test_untracked_to_mtrk_hop_is_relayed(daemon_factory):
    """No MTRK on MAIL (an ENVID alone, or nothing): relayed, while a
    tracked message through the same hop is transferred."""
    hop = Hop(["PIPELINING", "DSN", "MTRK"])
    try:
        d = relay_daemon(daemon_factory, hop)
        q1 = submit(d, " ENVID=plain@client.test", ["a@remote.test"])
        q2 = submit(d, "", ["b@remote.test"])
        q3 = submit(d, " ENVID=t5@client.test MTRK=" + CERT, ["c@remote.test"])
        wait_statuses(d, q1, {"a@remote.test": "relayed"})
        wait_statuses(d, q2, {"b@remote.test": "relayed"})
        wait_statuses(d, q3, {"c@remote.test": "transferred"})
        mails = hop.mails()
        assert len(mails) == 3, hop.lines
        assert len([l for l in mails if "MTRK=" in l]) == 1, mails
    finally:
        hop.stop()


def test_mtrk_timeout_passed_before_relay_is_relayed(daemon_factory):
    """MTRK=cert:1: the first attempt is refused at RCPT (450); the retry,
    two seconds later at the earliest, has no time left to pass on, so
    MAIL carries no MTRK= (RFC 3885 3.3) and the recipient is relayed.
    The same path with a day left ends transferred."""
    hop = Hop(["PIPELINING", "DSN", "MTRK"],
              defer_once=["a@remote.test", "b@remote.test"])
    try:
        d = relay_daemon(daemon_factory, hop, retry="2s")
        qid = submit(d, " ENVID=t3@client.test MTRK=%s:1" % CERT,
                     ["a@remote.test"])
        q2 = submit(d, " ENVID=t3b@client.test MTRK=%s:86400" % CERT,
                    ["b@remote.test"])
        m = wait_statuses(d, qid, {"a@remote.test": "relayed"})
        m2 = wait_statuses(d, q2, {"b@remote.test": "transferred"})
        for x in (m, m2):
            assert x["recipients"][0]["next_hop_mtrk"] is True, x
            assert x["recipients"][0]["attempts"] == 2, x
        mails = hop.mails()
        assert len(mails) == 4, hop.lines
        assert len([l for l in mails if "ENVID=t3@" in l and "MTRK=" in l]) \
            <= 1, mails                 # only the first attempt's, if any
        assert show_text_status(d, qid, "a@remote.test") == "relayed"
        assert show_text_status(d, q2, "b@remote.test") == "transferred"
    finally:
        hop.stop()


def test_transferred_without_dsn_hop_gets_relayed_dsn(daemon_factory):
    """Like relayed: NOTIFY=SUCCESS to a hop without DSN gets a "relayed"
    DSN (RFC 3461 5.2.2), here sent through the same smarthost."""
    hop = Hop(["PIPELINING", "MTRK"])
    try:
        d = relay_daemon(daemon_factory, hop)
        with d.connect() as c:
            c.ehlo()
            assert_reply(c.cmd("MAIL FROM:<s@example.com> ENVID=t4@client.test"
                               " MTRK=%s:86400" % CERT), 250, "2.")
            assert_reply(c.cmd("RCPT TO:<a@remote.test> NOTIFY=SUCCESS"),
                         250, "2.")
            assert c.cmd("DATA").code == 354
            c.send(dot_stuff(make_message(to="a@remote.test")))
            qid = queued_qid(c.reply())
        wait_statuses(d, qid, {"a@remote.test": "transferred"})
        wait_for(lambda: "MAIL FROM:<>" in hop.mails() and
                 "RCPT TO:<s@example.com>" in hop.lines, timeout=30,
                 interval=0.1, what="the relayed DSN at the hop")
        m = d.show_json(qid)
        assert any(e["kind"] == "dsn" for e in m["events"]), m
    finally:
        hop.stop()
