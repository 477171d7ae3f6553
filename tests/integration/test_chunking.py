"""RFC 3030 CHUNKING (BDAT) and BINARYMIME.

Server: a plain-socket client pipelines BDAT chunks of 1, 1000 and 100,000
octets with and without LAST, BDAT 0 LAST, DATA/BDAT mixing, BINARYMIME
with DATA, the size limit, a connection closed mid-chunk, chunk octets never
read as commands, bare LF / lone CR (normalised, or kept for BINARYMIME),
kill -9 after the 250 to BDAT LAST.
Client: relaying to a scripted next hop that advertises CHUNKING (it records
each BDAT) and to one without it (DATA); BINARYMIME to a hop without it
fails with 5.6.3 and a DSN; a second waymarkd as the real BDAT client.
"""

import asyncio
import os
import re
import socket
import threading
import time

import pytest

from conftest import (SMTPConn, assert_reply, check_received, ehlo_keywords,
                      lf, make_message, queued_qid, split_message, wait_for)

RCPT = "user@example.org"


def pipeline(c, data):
    c.send(data)


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
    with daemon.connect() as c:
        begin(c)
        r = c.cmd("BDAT ten LAST")
        assert_reply(r, 521, "5.5.4")
        assert c.expect_eof(timeout=10)


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
