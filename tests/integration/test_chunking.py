"""RFC 3030 CHUNKING (BDAT) and BINARYMIME.

Server: a plain-socket client pipelines BDAT chunks of 1, 1000 and 100,000
octets with and without LAST, BDAT 0 LAST, DATA/BDAT mixing, BINARYMIME
with DATA, the size limit, a connection closed mid-chunk, chunk octets never
read as commands, bare LF / lone CR (normalised, or kept for BINARYMIME),
kill -9 after the 250 to BDAT LAST.
Client: relaying to a scripted next hop that advertises CHUNKING (it records
each BDAT: one BDAT n LAST, or 1 MiB chunks) and to one without it (DATA);
a refused chunk; BINARYMIME relayed exactly, or failed with 5.6.3 and a DSN
to a hop without it; a second waymarkd as the real BDAT client; Waymark as
a BDAT client of a private Postfix smtpd (bench/lib.sh's instance).
Also: milters and DKIM see BDAT content; smtpd_timeout inside a chunk;
BDAT over STARTTLS.
"""

import asyncio
import json
import os
import re
import shutil
import subprocess
import tempfile
import threading

import pytest

from asyncserver import ThreadedServer
from conftest import (IS_ROOT, assert_reply, check_received, daemon_ids,
                      ehlo_keywords, free_port, lf, make_message, queued_qid,
                      split_message, wait_for)

RCPT = "user@example.org"


def bdat(size, last=False):
    return b"BDAT %d%s\r\n" % (size, b" LAST" if last else b"")


def chunks_of(msg, sizes):
    """BDAT commands for msg cut at sizes (the rest goes in a LAST chunk)."""
    out, off = [], 0
    for n in sizes:
        out.append(bdat(n) + msg[off:off + n])
        off += n
    return out, msg[off:]


def begin(c, params=""):
    c.ehlo()
    r = c.cmd("MAIL FROM:<s@example.com>" + ((" " + params) if params else ""))
    assert_reply(r, 250)
    assert_reply(c.cmd("RCPT TO:<%s>" % RCPT), 250)


def big_message(n_body):
    line = b"0123456789abcdefghijklmnopqrstuvwxyz.ABCDEFGHIJKLMNOPQRSTUVWXYZ\r\n"
    body = (line * (n_body // len(line) + 1))[:n_body]
    body = body[:body.rfind(b"\r\n") + 2]
    return make_message(subject="chunks", body=b".leading dot\r\n..two\r\n.\r\n" + body)


# ------------------------------------------------------------------ server

def test_ehlo_advertises_chunking_and_binarymime(daemon):
    with daemon.connect() as c:
        kw = ehlo_keywords(c.ehlo())
        assert "CHUNKING" in kw and "BINARYMIME" in kw and "PIPELINING" in kw, kw


@pytest.mark.parametrize("final", ["last-chunk", "bdat-0-last"])
def test_pipelined_chunks_1_1000_100000(daemon, final):
    msg = big_message(120000)
    cmds, rest = chunks_of(msg, [1, 1000, 100000])
    if final == "last-chunk":
        cmds.append(bdat(len(rest), True) + rest)
    else:
        cmds.append(bdat(len(rest)) + rest)
        cmds.append(bdat(0, True))
    with daemon.connect() as c:
        c.ehlo()
        # the whole transaction in one write (RFC 2920 + RFC 3030 4.2)
        c.send(b"MAIL FROM:<s@example.com>\r\nRCPT TO:<" + RCPT.encode() +
               b">\r\n" + b"".join(cmds))
        assert_reply(c.reply(), 250, "2.1.0")
        assert_reply(c.reply(), 250, "2.1.5")
        sizes = [1, 1000, 100000] + ([len(rest)] if final != "last-chunk" else [])
        for n in sizes:
            r = c.reply()
            assert_reply(r, 250, "2.0.0")
            assert r.msg == "%d octets received" % n, r
        qid = queued_qid(c.reply())
        assert_reply(c.cmd("QUIT"), 221)
    (data,) = daemon.wait_mails(RCPT, 1)
    _, trace, rest_bytes = split_message(data)
    # no dot-unstuffing, no end marker: byte-identical (LF in the Maildir)
    assert rest_bytes == lf(msg)
    check_received(trace[0], proto="ESMTP", qid=qid, rcpt=RCPT)
    counters = re.findall(r"bdat=\S+", daemon.log_text())
    assert counters and counters[-1] == "bdat=%d" % (len(sizes) + 1), counters


def test_bdat_0_last_alone_and_rfc_example(daemon):
    # RFC 3030 4.1 example: 86 octets, no empty line
    ex = (b"To: Susan@random.com\r\nFrom: Sam@random.com\r\n"
          b"Subject: This is a bodyless test message\r\n")
    assert len(ex) == 86
    with daemon.connect() as c:
        begin(c)
        c.send(bdat(86, True) + ex)
        queued_qid(c.reply())
        assert_reply(c.cmd("MAIL FROM:<s@example.com>"), 250)
        assert_reply(c.cmd("RCPT TO:<%s>" % RCPT), 250)
        c.send(bdat(0, True))
        queued_qid(c.reply())
    mails = daemon.wait_mails(RCPT, 2)
    bodies = sorted(split_message(m)[2] for m in mails)
    assert bodies == [b"", lf(ex)]


def test_chunk_octets_are_never_commands(daemon):
    with daemon.connect() as c:
        c.ehlo()
        # no MAIL: refused, but only after the 6 octets ("QUIT\r\n") are read
        c.send(bdat(6) + b"QUIT\r\n")
        assert_reply(c.reply(), 503, "5.5.1")
        assert_reply(c.cmd("NOOP"), 250)
        begin(c)
        c.send(bdat(12, True) + b"RSET\r\nQUIT\r\n")
        qid = queued_qid(c.reply())
        # after LAST: a new BDAT needs a new MAIL
        c.send(bdat(4, True) + b"NOOP")
        assert_reply(c.reply(), 503, "5.5.1")
        assert_reply(c.cmd("NOOP"), 250)
    (data,) = daemon.wait_mails(RCPT, 1)
    assert split_message(data)[2] == b"RSET\nQUIT\n"
    assert qid in daemon.log_text()


def test_bdat_before_rcpt_and_before_ehlo(daemon):
    with daemon.connect() as c:
        c.send(bdat(3) + b"abc")
        assert_reply(c.reply(), 503, "5.5.1")
        c.ehlo()
        assert_reply(c.cmd("MAIL FROM:<s@example.com>"), 250)
        c.send(bdat(3, True) + b"xyz")
        assert_reply(c.reply(), 554, "5.5.1")
        assert_reply(c.cmd("RSET"), 250)
    assert daemon.queue_json() == []


def test_data_after_bdat_and_bdat_after_error(daemon):
    with daemon.connect() as c:
        begin(c)
        c.send(bdat(10) + b"Subject: x")
        assert_reply(c.reply(), 250)
        assert_reply(c.cmd("DATA"), 503, "5.5.1")
        # the transaction stays failed until RSET: every BDAT gets 503
        c.send(bdat(5) + b"\r\n\r\nb" + bdat(2, True) + b"\r\n")
        assert_reply(c.reply(), 503, "5.5.1")
        assert_reply(c.reply(), 503, "5.5.1")
        assert_reply(c.cmd("RSET"), 250)
        # RCPT after a BDAT
        begin(c)
        c.send(bdat(3) + b"abc")
        assert_reply(c.reply(), 250)
        assert_reply(c.cmd("RCPT TO:<other@example.org>"), 503, "5.5.1")
        assert_reply(c.cmd("RSET"), 250)
        # across transactions mixing is fine
        r = c.mail_transaction("s@example.com", [RCPT], make_message())
        queued_qid(r)
    assert len(daemon.queue_json()) <= 1
    daemon.wait_mails(RCPT, 1)
    daemon.wait_queue_drained()
    assert len(daemon.mail_files(RCPT)) == 1


def test_binarymime_requires_bdat(daemon):
    with daemon.connect() as c:
        begin(c, "BODY=BINARYMIME")
        r = c.cmd("DATA")
        assert_reply(r, 503, "5.5.1")
        assert "BINARYMIME" in r.text, r
        assert_reply(c.cmd("RSET"), 250)


def test_bare_lf_and_lone_cr(daemon):
    content = b"Subject: bin\r\n\r\nline1\rstill1\nline2\r\n"
    with daemon.connect() as c:
        begin(c)
        c.send(bdat(len(content), True) + content)
        queued_qid(c.reply())
        begin(c, "BODY=BINARYMIME")
        c.send(bdat(len(content), True) + content)
        queued_qid(c.reply())
    mails = daemon.wait_mails(RCPT, 2)
    bodies = sorted(split_message(m)[2] for m in mails)
    # normalised like DATA: the lone CR and the bare LF end lines
    assert lf(b"Subject: bin\r\n\r\nline1\r\nstill1\r\nline2\r\n") in bodies
    # BINARYMIME: stored as received (only CRLF is a line end)
    assert b"Subject: bin\n\nline1\rstill1\nline2\n" in bodies


def test_size_limit_across_chunks(daemon_factory):
    d = daemon_factory(config={"max_size": "1k"})
    with d.connect() as c:
        begin(c, "SIZE=900")
        c.send(bdat(600) + b"a" * 600 + bdat(600, True) + b"b" * 600)
        r = c.reply()
        assert_reply(r, 250, "2.0.0")
        assert r.msg == "600 octets received"
        assert_reply(c.reply(), 552, "5.3.4")
        # in sync: the 600 octets of the refused chunk were read
        assert_reply(c.cmd("RSET"), 250)
        # one chunk over the limit, then a BDAT of the failed transaction
        begin(c)
        c.send(bdat(2000) + b"c" * 2000 + bdat(1, True) + b"d")
        assert_reply(c.reply(), 552, "5.3.4")
        assert_reply(c.reply(), 503, "5.5.1")
        assert_reply(c.cmd("NOOP"), 250)
    assert d.queue_json() == []
    assert d.mail_files(RCPT) == []


def test_connection_closed_mid_chunk_leaves_nothing(daemon):
    c = daemon.connect()
    begin(c)
    c.send(bdat(5000) + b"Subject: partial\r\n\r\n" + b"x" * 1000)
    body = os.path.join(daemon.spool, "body")
    # the partial body file exists while the chunk is being read
    wait_for(lambda: os.listdir(body) != [],
             timeout=10, what="the partial body file")
    c.close()
    wait_for(lambda: "lost connection in state BDAT" in daemon.log_text(),
             timeout=10, what="the lost connection")
    assert daemon.queue_json() == []
    assert os.listdir(body) == []
    assert daemon.mail_files(RCPT) == []


def test_malformed_bdat_closes(daemon):
    # the count cannot be trusted: the stream is lost, 521 and close
    for line in ("BDAT ten LAST", "BDAT", "BDAT -1", "BDAT 5 LASTX",
                 "BDAT 5 LAST more", "BDAT 18446744073709551616 LAST"):
        with daemon.connect() as c:
            begin(c)
            assert_reply(c.cmd(line), 521, "5.5.4")
            assert c.expect_eof(timeout=10), line
    # leading zeros are digits like any other; "last" in any case
    with daemon.connect() as c:
        begin(c)
        c.send(b"BDAT 0005 last\r\nabc\r\n")
        queued_qid(c.reply())
    assert len(daemon.queue_json()) <= 1


def test_kill9_after_bdat_last_loses_nothing(daemon):
    d = daemon
    msg = make_message(subject="durable bdat", body=b"kept\r\n" * 50)
    os.makedirs(d.mail, exist_ok=True)
    blocker = os.path.join(d.mail, "example.org")
    open(blocker, "w").close()       # delivery defers: the message stays queued
    with d.connect() as c:
        begin(c)
        c.send(bdat(100) + msg[:100] + bdat(len(msg) - 100, True) + msg[100:])
        assert_reply(c.reply(), 250)
        qid = queued_qid(c.reply())
        d.kill9()
    d.start()
    q = d.queue_json()
    assert [m["queue_id"] for m in q] == [qid], q
    os.unlink(blocker)
    d.cli("flush", check=0)
    (data,) = d.wait_mails(RCPT, 1, timeout=60)
    assert split_message(data)[2] == lf(msg)


# ------------------------------------------------------------------ client

class Hop(ThreadedServer):
    """A scripted next hop: ESMTP with or without CHUNKING / BINARYMIME;
    records every command line and every message (content as received)."""

    def __init__(self, chunking=True, binarymime=False, refuse_bdat=None):
        self.chunking = chunking
        self.binarymime = binarymime
        self.refuse_bdat = refuse_bdat     # "5xx x.y.z text" for the 2nd chunk
        self.cmds = []
        self.messages = []                 # (MAIL line, [RCPT], content, how)
        self.lock = threading.Lock()
        super().__init__()

    async def handle(self, reader, writer):
        def w(text):
            writer.write(text.encode() + b"\r\n")
        w("220 hop.test ESMTP")
        mail, rcpts, buf, nchunk, failed = None, [], b"", 0, False
        try:
            while True:
                await writer.drain()
                line = await reader.readline()
                if not line:
                    break
                cmd = line.rstrip(b"\r\n").decode("latin-1")
                with self.lock:
                    self.cmds.append(cmd)
                u = cmd.upper()
                if u.startswith("EHLO"):
                    caps = ["hop.test", "PIPELINING", "8BITMIME", "SIZE 50000000"]
                    if self.chunking:
                        caps.append("CHUNKING")
                    if self.binarymime:
                        caps.append("BINARYMIME")
                    for c in caps[:-1]:
                        w("250-" + c)
                    w("250 " + caps[-1])
                elif u.startswith("MAIL"):
                    mail, rcpts, buf, nchunk, failed = cmd, [], b"", 0, False
                    w("250 2.1.0 Ok")
                elif u.startswith("RCPT"):
                    rcpts.append(cmd)
                    w("250 2.1.5 Ok")
                elif u == "DATA":
                    w("354 go ahead")
                    await writer.drain()
                    data = b""
                    while True:
                        l = await reader.readline()
                        if l == b".\r\n":
                            break
                        data += l[1:] if l.startswith(b".") else l
                    with self.lock:
                        self.messages.append((mail, rcpts, data, "DATA"))
                    w("250 2.0.0 Ok: sunk")
                elif u.startswith("BDAT"):
                    parts = cmd.split()
                    n, last = int(parts[1]), len(parts) > 2
                    data = await reader.readexactly(n)
                    nchunk += 1
                    if self.refuse_bdat and nchunk == 2:
                        failed = True
                        w(self.refuse_bdat)
                        continue
                    if failed:
                        w("503 5.5.1 earlier BDAT failed")
                        continue
                    buf += data
                    if last:
                        with self.lock:
                            self.messages.append((mail, rcpts, buf, "BDAT"))
                        w("250 2.0.0 Message OK, %d octets received" % len(buf))
                    else:
                        w("250 2.0.0 %d octets received" % n)
                elif u == "RSET" or u == "NOOP":
                    w("250 2.0.0 Ok")
                elif u == "QUIT":
                    w("221 2.0.0 Bye")
                    await writer.drain()
                    break
                else:
                    w("500 5.5.2 what")
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        writer.close()

    def bdat_lines(self):
        with self.lock:
            return [c for c in self.cmds if c.upper().startswith("BDAT")]


@pytest.fixture
def hops():
    made = []

    def make(**kw):
        h = Hop(**kw)
        made.append(h)
        return h
    yield make
    for h in made:
        h.stop()


def relay_to(daemon_factory, hop, **extra):
    cfg = {"smarthost": "[127.0.0.1]:%d" % hop.port, "retry_schedule": "1s"}
    cfg.update(extra)
    return daemon_factory(config=cfg)


def final_recipient(d, qid, timeout=30):
    def done():
        p = d.cli("show", qid, "--json")
        if p.returncode != 0:
            return None
        m = json.loads(p.out)
        r = m["recipients"][0]
        return r if r["status"] in ("relayed", "failed", "delivered") else None
    return wait_for(done, timeout=timeout, interval=0.1, what="final status")


def submit_bdat(d, rcpt, msg, params="", chunk=None):
    with d.connect() as c:
        c.ehlo()
        assert_reply(c.cmd("MAIL FROM:<s@example.org>" + ((" " + params) if params else "")), 250)
        assert_reply(c.cmd("RCPT TO:<%s>" % rcpt), 250)
        cmds, off = [], 0
        while chunk and len(msg) - off > chunk:
            cmds.append(bdat(chunk) + msg[off:off + chunk])
            off += chunk
        cmds.append(bdat(len(msg) - off, True) + msg[off:])
        c.send(b"".join(cmds))
        for _ in cmds[:-1]:
            assert_reply(c.reply(), 250)
        return queued_qid(c.reply())


def test_relay_uses_one_bdat_last_to_a_chunking_hop(daemon_factory, hops):
    hop = hops(chunking=True)
    d = relay_to(daemon_factory, hop)
    msg = make_message(to="far@remote.test", body=b".dot line\r\n..two\r\nend\r\n")
    with d.connect() as c:
        c.ehlo()
        qid = queued_qid(c.mail_transaction("s@example.org", ["far@remote.test"], msg))
    r = final_recipient(d, qid)
    assert r["status"] == "relayed", r
    (mail, rcpts, content, how) = hop.messages[0]
    assert how == "BDAT"
    assert "DATA" not in hop.cmds
    lines = hop.bdat_lines()
    assert lines == ["BDAT %d LAST" % len(content)], lines
    assert content.endswith(msg)          # trace fields, then the exact octets
    assert content.startswith(b"Received: ")


def test_relay_large_message_in_1mib_chunks(daemon_factory, hops):
    hop = hops(chunking=True)
    d = relay_to(daemon_factory, hop)
    msg = big_message(2600 * 1024)
    qid = submit_bdat(d, "far@remote.test", msg, chunk=300000)
    r = final_recipient(d, qid, timeout=60)
    assert r["status"] == "relayed", r
    lines = hop.bdat_lines()
    assert lines[:2] == ["BDAT 1048576", "BDAT 1048576"], lines
    assert len(lines) == 3 and lines[2].endswith(" LAST"), lines
    content = hop.messages[0][2]
    assert int(lines[2].split()[1]) == len(content) - 2 * 1048576
    assert content.endswith(msg)


def test_relay_uses_data_to_a_hop_without_chunking(daemon_factory, hops):
    hop = hops(chunking=False)
    d = relay_to(daemon_factory, hop)
    msg = make_message(to="far@remote.test")
    qid = submit_bdat(d, "far@remote.test", msg)
    assert final_recipient(d, qid)["status"] == "relayed"
    assert hop.bdat_lines() == []
    assert "DATA" in hop.cmds
    assert hop.messages[0][3] == "DATA" and hop.messages[0][2].endswith(msg)


def test_relay_chunk_refused_fails_the_recipient(daemon_factory, hops):
    hop = hops(chunking=True, refuse_bdat="554 5.6.0 chunk not welcome")
    d = relay_to(daemon_factory, hop)
    msg = big_message(1200 * 1024)        # two chunks
    qid = submit_bdat(d, "far@remote.test", msg)
    r = final_recipient(d, qid, timeout=60)
    assert r["status"] == "failed", r
    assert r["last_reply"]["code"] == 554 and r["last_reply"]["enhanced"] == "5.6.0", r


def test_binarymime_relayed_exactly_to_a_binarymime_hop(daemon_factory, hops):
    hop = hops(chunking=True, binarymime=True)
    d = relay_to(daemon_factory, hop)
    msg = (b"Subject: bin\r\nMIME-Version: 1.0\r\nContent-Type: application/octet-stream\r\n"
           b"Content-Transfer-Encoding: binary\r\n\r\n\x00\x01\r\xff\nrest\r")
    qid = submit_bdat(d, "far@remote.test", msg, params="BODY=BINARYMIME")
    assert final_recipient(d, qid)["status"] == "relayed"
    mail, _, content, how = hop.messages[0]
    assert how == "BDAT" and "BODY=BINARYMIME" in mail, mail
    assert content.endswith(msg)


def test_binarymime_to_a_hop_without_it_fails_563_with_dsn(daemon_factory, hops):
    hop = hops(chunking=True, binarymime=False)
    d = relay_to(daemon_factory, hop)
    msg = b"Subject: bin\r\n\r\nraw\rbytes\n"
    qid = submit_bdat(d, "far@remote.test", msg, params="BODY=BINARYMIME")
    r = final_recipient(d, qid)
    assert r["status"] == "failed" and r["last_reply"]["enhanced"] == "5.6.3", r
    assert hop.messages == []
    (dsn,) = d.wait_mails("s@example.org", 1)
    assert b"5.6.3" in dsn and b"far@remote.test" in dsn


def test_second_waymarkd_is_a_bdat_client(daemon_factory):
    nxt = daemon_factory()
    # example.org is local to nxt only: `first` relays it to nxt
    first = daemon_factory(config={"smarthost": "[127.0.0.1]:%d" % nxt.port,
                                   "retry_schedule": "1s",
                                   "local_domains": "localhost"})
    msg = make_message(to=RCPT, body=b"through two waymarks\r\n.\r\n..\r\n")
    with first.connect() as c:
        c.ehlo()
        queued_qid(c.mail_transaction("s@example.com", [RCPT], msg))
    (data,) = nxt.wait_mails(RCPT, 1)
    _, trace, rest = split_message(data)
    assert rest == lf(msg)
    assert len(trace) == 2, trace
    check_received(trace[0], helo="mx.test", proto="ESMTP", rcpt=RCPT)
    # nxt's session counters: the content came by one BDAT, no DATA
    line = wait_for(lambda: [l for l in nxt.log_text().splitlines()
                             if "disconnect from" in l and "bdat=" in l],
                    timeout=15, what="the relaying session's end")[0]
    assert re.search(r"\bbdat=1\b", line) and "data=" not in line, line


PF_SCRIPT = r'''
BENCH=test_chunking; top=$4; . "$top/bench/lib.sh"
pf_write_conf "$1" "$2"
printf 'relayhost = [127.0.0.1]:%s\n' "$3" >> "$1/conf/main.cf"
pf_start "$1" "$2"
'''


def test_waymark_is_a_bdat_client_of_postfix(daemon_factory, hops):
    """A private Postfix 3.x smtpd (bench/lib.sh's instance) speaks CHUNKING:
    Waymark relays to it with BDAT; Postfix relays on (DATA) to a hop."""
    postfix = "/usr/sbin/postfix"
    if not os.path.exists(postfix) or not IS_ROOT:
        pytest.skip("needs Postfix and root")
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    hop = hops(chunking=False)
    base = tempfile.mkdtemp(prefix="waymark-pf-", dir="/tmp")
    os.chmod(base, 0o755)
    pf = os.path.join(base, "pf")
    pf_port = free_port()
    try:
        p = subprocess.run(["bash", "-c", PF_SCRIPT, "pf", pf, str(pf_port),
                            str(hop.port), repo], capture_output=True, text=True,
                           timeout=60)
        assert p.returncode == 0, p.stdout + p.stderr
        d = daemon_factory(config={"smarthost": "[127.0.0.1]:%d" % pf_port,
                                   "retry_schedule": "1s",
                                   "local_domains": "localhost"})
        msg = make_message(to="far@remote.test", body=b"via postfix\r\n.\r\n")
        with d.connect() as c:
            c.ehlo()
            qid = queued_qid(c.mail_transaction("s@example.com", ["far@remote.test"], msg))
        r = final_recipient(d, qid, timeout=60)
        assert r["status"] == "relayed", r
        wait_for(lambda: hop.messages, timeout=60, what="Postfix relaying on")
        content = hop.messages[0][2]
        # Postfix adds its Received and a Date; the rest is what was sent
        assert content.endswith(b"\r\n\r\nvia postfix\r\n.\r\n"), content
        assert msg.split(b"\r\n")[3] in content      # the Message-ID
        assert b"by mx.test" in content       # Waymark's Received, kept by Postfix
        maillog = os.path.join(pf, "maillog")
        line = wait_for(lambda: [l for l in open(maillog, errors="replace")
                                 if "smtpd" in l and "disconnect from" in l
                                 and "mail=" in l],
                        timeout=30, what="Postfix's disconnect line")[0]
        assert re.search(r"\bbdat=1\b", line) and " data=" not in line, line
    finally:
        subprocess.run([postfix, "-c", os.path.join(pf, "conf"), "stop"],
                       capture_output=True, timeout=60)
        shutil.rmtree(base, ignore_errors=True)


# ------------------------------------------------------------------ milters

def test_bdat_goes_through_the_milters(daemon_factory):
    from test_milter import Filter, actions
    d = daemon_factory(start=False)
    f = Filter(d)
    try:
        d.config["milters"] = f.name
        d.write_config()
        d.start()
        msg = make_message(subject="milter bdat", extra_headers=actions("add-header"),
                           body=b"chunked body\r\n" * 100)
        rej = make_message(subject="refused", extra_headers=actions("reject"))
        with d.connect() as c:
            begin(c)
            # the DATA stage holds the first BDAT; its octets wait, in step
            c.send(bdat(100) + msg[:100] + bdat(len(msg) - 100, True) + msg[100:])
            assert_reply(c.reply(), 250)
            qid = queued_qid(c.reply())
            begin(c)
            c.send(bdat(len(rej), True) + rej + b"NOOP\r\n")
            assert_reply(c.reply(), 550, "5.7.1")
            assert_reply(c.reply(), 250)
        (data,) = d.wait_mails(RCPT, 1)
        assert b"\nX-Milter: added\n" in data
        assert split_message(data)[2].endswith(lf(b"chunked body\r\n" * 100))
        eoms = f.events("eom")
        assert len(eoms) == 2 and eoms[0]["i"] == qid, eoms
        assert "chunked body" in eoms[0]["body"]
        assert len(f.events("data")) == 2
        assert [m["queue_id"] for m in d.queue_json()] in ([], [qid])
    finally:
        f.kill()


# -------------------------------------------------------------------- DKIM

def test_bdat_content_is_dkim_signed(daemon_factory, tmp_path):
    from test_dkim import FOLDED, keygen, maildir_message, verify_all, DOMAIN
    ed, ed_txt = keygen(str(tmp_path), "ed", "ed25519-sha256")
    k = {"ed": ed, "dns": {"ed._domainkey.%s." % DOMAIN: ed_txt}}
    d = daemon_factory(raw_config="dkim_key = %s ed ed25519-sha256 %s" % (DOMAIN, ed))
    body = "Grüße in chunks\r\n.dot\r\n".encode() * 50
    msg = FOLDED + body
    with d.connect() as c:
        c.ehlo()
        assert_reply(c.cmd("MAIL FROM:<joe@example.com> BODY=8BITMIME"), 250)
        assert_reply(c.cmd("RCPT TO:<%s>" % RCPT), 250)
        cmds, off = [], 0
        for n in (1, 7, 300):       # cut inside lines and inside the header
            cmds.append(bdat(n) + msg[off:off + n])
            off += n
        cmds.append(bdat(len(msg) - off, True) + msg[off:])
        c.send(b"".join(cmds))
        for _ in range(3):
            assert_reply(c.reply(), 250)
        queued_qid(c.reply())
    (data,) = d.wait_mails(RCPT, 1)
    m = maildir_message(data)
    verify_all(m, k, ["ed25519-sha256"])
    assert m.split(b"\r\n\r\n", 1)[1] == body


# ------------------------------------------------------- timeouts and TLS

def test_smtpd_timeout_inside_a_chunk(daemon_factory):
    d = daemon_factory(config={"smtpd_timeout": "2s"})
    with d.connect() as c:
        begin(c)
        c.send(bdat(100) + b"Subject: stalled\r\n")
        c.sock.settimeout(20)
        r = c.reply()                  # no octet more: the idle wait ends
        assert_reply(r, 421, "4.4.2")
        assert c.expect_eof(timeout=10)
    assert "timeout in state BDAT" in d.log_text()
    assert d.queue_json() == []
    assert os.listdir(os.path.join(d.spool, "body")) == []


def test_data_min_rate_inside_a_chunk(daemon_factory):
    d = daemon_factory(config={"smtpd_data_rate_grace": "2s",
                               "smtpd_data_min_rate": "1k"})
    stop = threading.Event()
    with d.connect() as c:
        begin(c)
        c.send(bdat(5000) + b"Subject: slow\r\n\r\n")

        def trickle():              # 100 octets per second
            while not stop.wait(1.0):
                try:
                    c.sock.sendall(b"y" * 100)
                except OSError:
                    return
        t = threading.Thread(target=trickle)
        t.start()
        try:
            c.sock.settimeout(15)
            r = c.reply()
            assert_reply(r, 421, "4.4.2")
            assert "data rate too low" in r.text, r
        finally:
            stop.set()
            t.join()
    assert d.queue_json() == []
    assert os.listdir(os.path.join(d.spool, "body")) == []


def test_bdat_over_tls(daemon_factory):
    from test_tls import client_context
    d = daemon_factory(start=False)
    cert, key = os.path.join(d.dir, "cert.pem"), os.path.join(d.dir, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                    "-subj", "/CN=mx.test", "-days", "2", "-keyout", key,
                    "-out", cert], check=True, capture_output=True)
    os.chmod(key, 0o600)
    if IS_ROOT:
        os.chown(key, *daemon_ids())
    d.config.update({"tls_cert": cert, "tls_key": key})
    d.write_config()
    d.start()
    msg = big_message(200000)
    with d.smtplib() as s:
        s.ehlo()
        assert s.starttls(context=client_context())[0] == 220
        s.ehlo()
        assert s.has_extn("chunking")
        assert s.mail("s@example.com")[0] == 250
        assert s.rcpt(RCPT)[0] == 250
        s.send(bdat(70000) + msg[:70000] + bdat(len(msg) - 70000, True) + msg[70000:])
        code, text = s.getreply()
        assert (code, text) == (250, b"2.0.0 70000 octets received"), text
        code, text = s.getreply()
        assert code == 250 and b"queued as" in text, text
    (data,) = d.wait_mails(RCPT, 1)
    _, trace, rest = split_message(data)
    assert rest == lf(msg)
    check_received(trace[0], proto="ESMTPS", rcpt=RCPT)
