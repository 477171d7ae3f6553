"""A next hop that fails in the middle of a transaction (a raw scripted
server on loopback, reached as `smarthost`).

1. It stops reading in the middle of a large DATA and never answers: the
   SMTP client's timeout ends the attempt, the recipient is deferred, the
   retry delivers it, and the next hop holds exactly one complete copy.
2. It reads the whole message including the final "." and then never
   answers, or closes the connection without a reply: the attempt is
   deferred and retried.  The next hop then holds two copies: the one it
   never acknowledged and the retried one.  That is the RFC 1047 window
   (README "Remote delivery"): one duplicate per lost reply, never more;
   nothing is sent again once a 250 was read, not even after a restart.
"""

import asyncio

from asyncserver import ThreadedServer
from conftest import make_message, queued_qid, wait_for

RCPT = "rcpt@remote.example"


class FaultyHop(ThreadedServer):
    """SMTP peer; the first connection's DATA fails as `fault` says:
    "stall-mid" (stop reading after 64 KiB, never answer), "stall-dot"
    (read it all, never answer), "drop-dot" (read it all, close)."""

    def __init__(self, fault):
        self.fault = fault
        self.conns = 0
        self.complete = []          # bodies the hop received up to "."
        self.acked = []             # bodies it answered 250 for
        ThreadedServer.__init__(self)

    async def handle(self, reader, writer):
        self.conns += 1
        first = self.conns == 1

        def w(s):
            writer.write(s.encode() + b"\r\n")
        w("220 hop.test ESMTP")
        try:
            while True:
                line = await reader.readline()
                if not line:
                    return
                cmd = line.decode("ascii", "replace").strip().upper()
                if cmd.startswith("EHLO"):
                    w("250-hop.test\r\n250-8BITMIME\r\n250 SIZE 20000000")
                elif cmd == "DATA":
                    w("354 go ahead")
                    await writer.drain()
                    body = await self.read_data(reader, first)
                    if body is None:
                        return
                    self.complete.append(body)
                    if first and self.fault == "stall-dot":
                        await self.until_eof(reader)
                        return
                    if first and self.fault == "drop-dot":
                        return
                    self.acked.append(body)
                    w("250 2.0.0 queued")
                elif cmd == "QUIT":
                    w("221 2.0.0 bye")
                    await writer.drain()
                    return
                else:
                    w("250 2.0.0 ok")
                await writer.drain()
        finally:
            writer.close()

    async def read_data(self, reader, first):
        lines, size = [], 0
        while True:
            line = await reader.readline()
            if not line:
                return None
            if line == b".\r\n":
                return b"".join(lines)
            lines.append(line)
            size += len(line)
            if first and self.fault == "stall-mid" and size > 65536:
                await asyncio.sleep(3600)   # cancelled at stop()

    async def until_eof(self, reader):
        while await reader.read(4096):
            pass


def relay(daemon_factory, hop, **extra):
    # short timeouts, but long enough for this hop's own 250 after "."
    cfg = {"smarthost": "[127.0.0.1]:%d" % hop.port,
           "retry_schedule": "1s",
           "smtp_data_block_timeout": "3s",
           "smtp_data_done_timeout": "5s"}
    cfg.update(extra)
    return daemon_factory(cfg)


def send(d, content):
    with d.connect() as c:
        c.ehlo()
        return queued_qid(c.mail_transaction("s@example.com", [RCPT], content))


def events(d, qid):
    return " ".join(e["detail"] for e in d.show_json(qid)["events"])


def finish(d, hop, copies):
    """Wait for the relay, then check that nothing more reaches the hop."""
    d.wait_queue_drained(timeout=60)
    assert len(hop.acked) == 1
    assert len(hop.complete) == copies
    d.restart()
    d.wait_queue_drained()
    with d.connect() as c:          # a later message goes through the loop
        c.ehlo()
        c.mail_transaction("s@example.com", [RCPT], make_message(subject="x"))
    wait_for(lambda: len(hop.acked) == 2, timeout=30, what="the later message")
    assert len(hop.complete) == copies + 1


def test_hop_stalls_mid_data(daemon_factory):
    hop = FaultyHop("stall-mid")
    try:
        d = relay(daemon_factory, hop, max_size="20m")
        content = make_message(subject="large",
                               body=(b"w" * 78 + b"\r\n") * 40000)  # 3.2 MB
        qid = send(d, content)
        wait_for(lambda: hop.conns >= 2, timeout=60, what="a second attempt")
        finish(d, hop, copies=1)
        assert hop.acked[0].endswith(b"w" * 78 + b"\r\n")
        ev = events(d, qid)
        assert "timeout" in ev.lower() or "timed out" in ev.lower(), ev
        assert d.show_json(qid)["recipients"][0]["status"] == "relayed"
    finally:
        hop.stop()


def test_hop_never_answers_the_dot(daemon_factory):
    hop = FaultyHop("stall-dot")
    try:
        d = relay(daemon_factory, hop)
        qid = send(d, make_message(subject="no reply"))
        wait_for(lambda: hop.conns >= 2, timeout=60, what="a second attempt")
        # the RFC 1047 window: the hop has the first copy, we never saw 250
        finish(d, hop, copies=2)
        ev = events(d, qid)
        assert "timeout" in ev.lower() or "timed out" in ev.lower(), ev
    finally:
        hop.stop()


def test_hop_drops_after_the_dot(daemon_factory):
    hop = FaultyHop("drop-dot")
    try:
        d = relay(daemon_factory, hop)
        qid = send(d, make_message(subject="dropped"))
        wait_for(lambda: hop.conns >= 2, timeout=60, what="a second attempt")
        finish(d, hop, copies=2)
        assert d.show_json(qid)["recipients"][0]["status"] == "relayed"
    finally:
        hop.stop()
