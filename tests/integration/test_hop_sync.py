"""
A next hop whose replies do not match the commands (issue 14, point 1).

A scripted hop sends surplus replies -- after the reply to ".", after the
reply to RSET, with its greeting, before the message body -- once, then
behaves.  It counts the bodies it receives.  Waymark must treat the surplus
as a lost sync: close that connection, never reuse it, defer the open
transaction with 4.4.2, and count a recipient relayed only on its own 250
to "." on a connection in sync.  So every message that ends up relayed was
received by the hop, and none is lost.
"""

import asyncio
import threading
import time

import pytest

from asyncserver import ThreadedServer
from conftest import make_message, queued_qid, wait_for


class SurplusHop(ThreadedServer):
    """SMTP hop that misbehaves once (mode), then answers correctly.

    "dot":      two surplus 250 lines in the same write as the 250 to ".";
    "dot-late": after the 250 to ".", the next MAIL on that connection is
                answered with two held-back surplus 250 lines first;
    "rset":     the reply to RSET is followed by a surplus 250 (RCPT to a
                reject@ address is refused, so the client sends RSET);
    "greeting": the greeting is followed by two surplus 250 lines;
    "body":     a 250 right after the 354, before the body has arrived;
    "dot-421":  the 250 to "." followed by a 421 in the same write, then
                the connection closes (a legitimate server shutting down);
    "rcpt-stray": a RCPT to b after a refused one gets a stray 550, and
                b's real 250 comes with the reply to the RSET that follows;
    "mail-late-550": like dot-late, with a held-back stray 550.
    Held-back lines go out alone, 0.3 s before the MAIL reply.
    """

    def __init__(self, mode, pipelining=True):
        self.mode = mode
        self.pipelining = pipelining
        self.armed = True
        self.tripped = 0
        self.nconns = 0
        self.bodies = []            # Subject of every body received
        self.lock = threading.Lock()
        ThreadedServer.__init__(self)

    def fire(self):
        with self.lock:
            if not self.armed:
                return False
            self.armed = False
            self.tripped += 1
            return True

    def received(self):
        with self.lock:
            return list(self.bodies)

    async def handle(self, reader, writer):
        def w(*lines):
            writer.write(b"".join(l.encode() + b"\r\n" for l in lines))

        with self.lock:
            self.nconns += 1
        held = []
        owed = []
        if self.mode == "greeting" and self.fire():
            w("220 hop.test ESMTP", "250 2.0.0 surplus", "250 2.0.0 surplus")
        else:
            w("220 hop.test ESMTP")
        rcpts = 0
        try:
            while True:
                await writer.drain()
                raw = await reader.readline()
                if not raw:
                    return
                cmd = raw.decode("utf-8", "replace").strip().upper()
                if cmd.startswith("EHLO"):
                    caps = ["250-hop.test", "250-8BITMIME"]
                    if self.pipelining:
                        caps.append("250-PIPELINING")
                    w(*caps, "250 SIZE 10240000")
                elif cmd.startswith("MAIL"):
                    rcpts = 0
                    refused = False
                    if held:
                        # alone on the wire, as a late stray would be
                        w(*held)
                        held = []
                        await writer.drain()
                        await asyncio.sleep(0.3)
                    w("250 2.1.0 ok")
                elif cmd.startswith("RCPT"):
                    if "REJECT@" in cmd:
                        refused = True
                        w("550 5.1.1 no such user")
                    elif self.mode == "rcpt-stray" and refused and self.fire():
                        w("550 5.1.1 stray")
                        owed = ["250 2.1.5 ok"]
                    else:
                        rcpts += 1
                        w("250 2.1.5 ok")
                elif cmd == "DATA":
                    if rcpts == 0:
                        w("554 5.5.1 no valid recipients")
                        continue
                    if self.mode == "body" and self.fire():
                        w("354 go ahead", "250 2.0.0 early")   # one write
                    else:
                        w("354 go ahead")
                    await writer.drain()
                    data = b""
                    while True:
                        l = await reader.readline()
                        if not l:
                            return
                        if l == b".\r\n":
                            break
                        data += l
                    subj = [l[9:].strip().decode() for l in data.split(b"\r\n")
                            if l.startswith(b"Subject: ")]
                    with self.lock:
                        self.bodies.append(subj[0] if subj else "?")
                    if self.mode == "dot" and self.fire():
                        w("250 2.0.0 ok", "250 2.0.0 surplus",
                          "250 2.0.0 surplus")
                    elif self.mode == "dot-421" and self.fire():
                        w("250 2.0.0 ok", "421 4.3.2 shutting down")
                        await writer.drain()
                        return
                    else:
                        w("250 2.0.0 ok")
                        if self.mode == "dot-late" and self.fire():
                            held = ["250 2.0.0 surplus"] * 2
                        if self.mode == "mail-late-550" and self.fire():
                            held = ["550 5.7.1 stray"]
                elif cmd == "RSET":
                    if self.mode == "rset" and self.fire():
                        w("250 2.0.0 ok", "250 2.0.0 surplus")
                    elif owed:
                        w(*owed, "250 2.0.0 ok")
                        owed = []
                    else:
                        w("250 2.0.0 ok")
                elif cmd == "QUIT":
                    w("221 2.0.0 bye")
                    await writer.drain()
                    return
                else:
                    w("250 2.0.0 ok")
        finally:
            writer.close()


def submit(d, subject, rcpts, sender="sender@example.com"):
    with d.connect() as c:
        c.ehlo()
        r = c.mail_transaction(sender, rcpts,
                               make_message(subject=subject, to=rcpts[0]))
    return queued_qid(r)


def statuses(d, qid):
    return [r["status"] for r in d.show_json(qid)["recipients"]]


def relayed_or_failed(d, qid, want):
    st = statuses(d, qid)
    return st if all(s in ("relayed", "failed") for s in st) and \
        sorted(st) == sorted(want) else None


MODES = ["dot", "dot-late", "rset", "greeting", "body"]


@pytest.mark.parametrize("pipelining", [True, False],
                         ids=["pipelining", "no-pipelining"])
@pytest.mark.parametrize("mode", MODES)
def test_surplus_replies_never_relay_an_unsent_message(daemon_factory, mode,
                                                       pipelining):
    hop = SurplusHop(mode, pipelining=pipelining)
    try:
        d = daemon_factory({"smarthost": "[127.0.0.1]:%d" % hop.port,
                            "retry_schedule": "1s"})
        subjects = ["%s-%d" % (mode, i) for i in range(4)]
        qids = {}
        # one at a time, each while the previous connection is parked, so
        # that the next message goes over the connection the surplus is in
        for i, s in enumerate(subjects):
            rcpts, sender = ["a%d@remote.test" % i], "sender@example.com"
            if mode == "rset" and i == 0:
                # refused alone: no DATA, so the transaction ends with RSET
                # (from <>: no failure DSN takes the connection next)
                rcpts, sender = ["reject@remote.test"], ""
            qids[s] = submit(d, s, rcpts, sender)
            want = ["failed"] if rcpts[0].startswith("reject") else ["relayed"]
            wait_for(lambda: relayed_or_failed(d, qids[s], want), timeout=40,
                     interval=0.1, what="%s final (%s)" % (s, statuses(d, qids[s])))
            # nothing is relayed that the hop has not received
            if want == ["relayed"]:
                assert s in hop.received(), \
                    "%s marked relayed, hop received only %s" % (s, hop.received())
        assert hop.tripped == 1, "the hop never misbehaved"
        # the lost sync was noticed and answered with a 4.4.2 deferral
        # (when the surplus landed on a message; "rset" and "greeting"
        # may land before any transaction, which is retried at once)
        details = [e["detail"] for q in qids.values()
                   for e in d.show_json(q)["events"]]
        if mode in ("dot", "body"):
            assert any("lost sync with next hop" in x and "4.4.2" in x
                       for x in details), details
        assert "lost sync with next hop" in d.log_text()
        # every accepted message reached the hop; none lost
        got = hop.received()
        for s in subjects:
            if not (mode == "rset" and s == subjects[0]):
                assert s in got, (s, got)
    finally:
        hop.stop()


def test_lost_sync_connection_is_not_reused(daemon_factory):
    """After surplus replies the connection is closed, not parked: the next
    message arrives on a new connection."""
    hop = SurplusHop("dot")
    try:
        d = daemon_factory({"smarthost": "[127.0.0.1]:%d" % hop.port,
                            "retry_schedule": "1s"})
        q1 = submit(d, "first", ["a@remote.test"])
        wait_for(lambda: relayed_or_failed(d, q1, ["relayed"]), timeout=30,
                 what="first relayed")
        assert hop.nconns >= 2, "the lost-sync connection carried the retry"
        q2 = submit(d, "second", ["b@remote.test"])
        wait_for(lambda: relayed_or_failed(d, q2, ["relayed"]), timeout=30,
                 what="second relayed")
        assert hop.received().count("first") == 2, hop.received()
        assert "second" in hop.received()
    finally:
        hop.stop()


@pytest.mark.parametrize("pipelining", [True, False],
                         ids=["pipelining", "no-pipelining"])
def test_stray_refusal_is_not_a_bounce(daemon_factory, pipelining):
    """A stray 550 read as b's RCPT reply, found out at the RSET: b is
    deferred and relayed on the retry, never failed."""
    hop = SurplusHop("rcpt-stray", pipelining=pipelining)
    try:
        d = daemon_factory({"smarthost": "[127.0.0.1]:%d" % hop.port,
                            "retry_schedule": "1s"})
        q = submit(d, "stray", ["reject@remote.test", "b@remote.test"], "")
        m = wait_for(lambda: relayed_or_failed(d, q, ["failed", "relayed"]),
                     timeout=30, interval=0.1,
                     what="final (%s)" % statuses(d, q))
        by = {r["address"]: r["status"]
              for r in d.show_json(q)["recipients"]}
        assert by == {"reject@remote.test": "failed",
                      "b@remote.test": "relayed"}, by
        assert hop.tripped == 1
        assert "stray" in hop.received()
        assert "lost sync with next hop" in d.log_text()
    finally:
        hop.stop()


@pytest.mark.parametrize("pipelining", [True, False],
                         ids=["pipelining", "no-pipelining"])
def test_late_stray_550_to_mail_on_reuse_is_retried(daemon_factory,
                                                    pipelining):
    """A 5xx read as the MAIL reply on a parked connection may be a late
    stray: the message is tried on a fresh connection, not bounced."""
    hop = SurplusHop("mail-late-550", pipelining=pipelining)
    try:
        d = daemon_factory({"smarthost": "[127.0.0.1]:%d" % hop.port,
                            "retry_schedule": "1s"})
        for i in range(3):
            q = submit(d, "late-%d" % i, ["a%d@remote.test" % i])
            wait_for(lambda: relayed_or_failed(d, q, ["relayed"]),
                     timeout=30, interval=0.1,
                     what="late-%d relayed (%s)" % (i, statuses(d, q)))
            assert "late-%d" % i in hop.received()
        assert hop.tripped == 1
    finally:
        hop.stop()


def test_421_after_the_final_reply_is_not_a_lost_sync(daemon_factory):
    """A server that answers "." and then says 421 and closes (shutdown, a
    per-connection limit) delivered the message: relayed once, no retry,
    no lost sync, and the connection is not reused."""
    hop = SurplusHop("dot-421")
    try:
        d = daemon_factory({"smarthost": "[127.0.0.1]:%d" % hop.port,
                            "retry_schedule": "1s"})
        for i in range(3):
            q = submit(d, "m-%d" % i, ["a%d@remote.test" % i])
            wait_for(lambda: relayed_or_failed(d, q, ["relayed"]),
                     timeout=30, interval=0.1,
                     what="m-%d relayed (%s)" % (i, statuses(d, q)))
        got = hop.received()
        assert sorted(got) == ["m-0", "m-1", "m-2"], got
        assert hop.tripped == 1
        assert "lost sync" not in d.log_text()
    finally:
        hop.stop()
