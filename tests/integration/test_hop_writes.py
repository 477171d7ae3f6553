"""The SMTP client's writes to a next hop that reads slowly.

Commands and content go out in one write when the socket takes them,
and libevent takes over whatever one write leaves behind (delivery/
dlv_smtp.c, sess_flush).  A scripted next hop with a small receive
buffer pauses before it reads each batch of commands and each message's
content, so the client's socket fills on the way:

1. Two 3 MiB messages and one to 150 recipients (a pipelined batch of
   ~12 KB) reach the hop intact, over one connection, in order.
2. The same through DATA without PIPELINING (one command per write).
"""

import asyncio
import socket

from asyncserver import ThreadedServer
from conftest import make_message, queued_qid

PAUSE = 0.7


class SlowHop(ThreadedServer):
    """Reads nothing for PAUSE seconds before each batch of commands and
    before each message's content; keeps what it received."""

    def __init__(self, pipelining=True):
        self.pipelining = pipelining
        self.conns = 0
        self.got = []               # (sender, [rcpts], content)
        ThreadedServer.__init__(self)

    async def handle(self, reader, writer):
        self.conns += 1
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)

        def w(s):
            writer.write(s.encode() + b"\r\n")
        w("220 hop.test ESMTP")
        await writer.drain()
        sender, rcpts, idle = None, [], True
        try:
            while True:
                if idle:
                    await asyncio.sleep(PAUSE)
                    idle = False
                line = await reader.readline()
                if not line:
                    return
                cmd = line.decode("ascii", "replace").strip()
                up = cmd.upper()
                if up.startswith("EHLO"):
                    w("250-hop.test\r\n%s250 8BITMIME" %
                      ("250-PIPELINING\r\n" if self.pipelining else ""))
                    idle = True
                elif up.startswith("MAIL FROM:"):
                    sender, rcpts = cmd[10:].strip("<> "), []
                    w("250 2.1.0 ok")
                elif up.startswith("RCPT TO:"):
                    rcpts.append(cmd[8:].strip("<> "))
                    w("250 2.1.5 ok")
                elif up == "DATA":
                    w("354 go ahead")
                    await writer.drain()
                    await asyncio.sleep(PAUSE)
                    content = await self.read_data(reader)
                    if content is None:
                        return
                    self.got.append((sender, rcpts, content))
                    w("250 2.0.0 queued")
                    idle = True
                elif up == "QUIT":
                    w("221 2.0.0 bye")
                    await writer.drain()
                    return
                else:
                    w("250 2.0.0 ok")
                    idle = True
                await writer.drain()
        finally:
            writer.close()

    async def read_data(self, reader):
        lines = []
        while True:
            line = await reader.readline()
            if not line:
                return None
            if line == b".\r\n":
                return b"".join(lines)
            lines.append(line[1:] if line.startswith(b"..") else line)


def big(tag, size):
    line = (tag * 70)[:70] + "\r\n"
    body = (line * (size // len(line) + 1)).encode()
    # a line that needs dot-stuffing on the way
    return make_message(subject=tag, body=b".leading dot\r\n" + body)


def run(daemon_factory, hop):
    # one connection at a time, so the three go in order over one
    d = daemon_factory({"smarthost": "[127.0.0.1]:%d" % hop.port,
                        "smtp_destination_concurrency": "1",
                        "retry_schedule": "1s"})
    many = ["r%03d-%s@remote.example" % (i, "x" * 40) for i in range(150)]
    sent = [("a@example.com", ["one@remote.example"], big("A", 3 << 20)),
            ("b@example.com", many, make_message(subject="many")),
            ("c@example.com", ["two@remote.example"], big("C", 3 << 20))]
    with d.connect() as c:
        c.ehlo()
        for sender, rcpts, content in sent:
            queued_qid(c.mail_transaction(sender, rcpts, content))
    d.wait_queue_drained(timeout=90)
    return sent


def check(hop, sent):
    assert len(hop.got) == len(sent)
    # in the order they were queued, each intact after the trace fields
    # the relay added on top (Received:)
    for (s, r, content), (gs, gr, got) in zip(sent, hop.got):
        assert (gs, gr) == (s, r)
        assert got.endswith(content), "content changed on the way"
        assert got[:-len(content)].startswith(b"Received: ")


def test_slow_hop_pipelined(daemon_factory):
    hop = SlowHop(pipelining=True)
    try:
        sent = run(daemon_factory, hop)
        check(hop, sent)
        assert hop.conns == 1       # one connection took all three
    finally:
        hop.stop()


def test_slow_hop_one_command_at_a_time(daemon_factory):
    hop = SlowHop(pipelining=False)
    try:
        sent = run(daemon_factory, hop)
        check(hop, sent)
        assert hop.conns == 1
    finally:
        hop.stop()
