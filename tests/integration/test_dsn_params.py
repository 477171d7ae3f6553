"""
RFC 3461 (DSN) and RFC 3885 (MTRK) ESMTP parameters, end to end.

Server side: EHLO advertises DSN and MTRK; RET/ENVID/MTRK on MAIL and
NOTIFY/ORCPT on RCPT are stored and visible in `waymark show --json`
(the MTRK certifier never is: only "tracked" and "tracking_expiry");
malformed and repeated parameters get 501 5.5.4, parameters on the wrong
command 555 5.5.4, MTRK without ENVID=local@fqhn 501 5.5.4.  Clients:
raw sockets and msmtp (--dsn-notify/--dsn-return; the installed swaks,
20201014, has no DSN options).

Relaying: a raw asyncio next hop (as in test_remote.py) records exactly
the MAIL and RCPT lines it receives.  A next hop advertising DSN+MTRK gets
RET/ENVID/NOTIFY/ORCPT and MTRK with the remaining timeout (its
recipients are `transferred`); one advertising neither gets none of them;
the per-recipient next_hop_dsn / next_hop_mtrk flags are shown.
"""

import asyncio
import json
import os
import re
import shutil
import subprocess
import threading
import time

import pytest

from asyncserver import ThreadedServer
from conftest import (assert_reply, ehlo_keywords, free_port, make_message,
                      queued_qid, run_waymarkd, dot_stuff, wait_for)

CERT = "QlrxKgdDUCsyLpOgFbz4aOMk1Wo"    # base64(SHA-1("abcdefgh")), unpadded
FINAL = ("delivered", "relayed", "failed", "expanded", "transferred")


def wait_final(d, qid, timeout=30):
    def done():
        p = d.cli("show", qid, "--json")
        if p.returncode != 0:
            return None
        m = json.loads(p.out)
        if all(r["status"] in FINAL for r in m["recipients"]):
            return m
        return None
    return wait_for(done, timeout=timeout, interval=0.1,
                    what="final status of %s" % qid)


def rcpt_of(m, addr):
    for r in m["recipients"]:
        if r["address"] == addr:
            return r
    raise KeyError(addr)


def transaction(d, mail, rcpts, content=None):
    """Raw MAIL/RCPT lines (exact text after the verb), then DATA."""
    content = content or make_message(to="x@example.org")
    with d.connect() as c:
        c.ehlo()
        assert_reply(c.cmd("MAIL " + mail), 250, "2.")
        for r in rcpts:
            assert_reply(c.cmd("RCPT " + r), 250, "2.")
        r = c.cmd("DATA")
        assert r.code == 354, r
        c.send(dot_stuff(content))
        return queued_qid(c.reply())


# ------------------------------------------------------------ server side

def test_ehlo_advertises_dsn_and_mtrk(daemon):
    with daemon.connect() as c:
        kw = ehlo_keywords(c.ehlo())
    assert "DSN" in kw and "MTRK" in kw, kw


def test_params_stored_and_shown(daemon):
    qid = transaction(
        daemon, "FROM:<s@example.com> RET=HDRS ENVID=QQ+2B1@client.test "
        "MTRK=%s:3600" % CERT,
        ["TO:<a@example.org> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;A+2Bx@example.org",
         "TO:<b@example.org> NOTIFY=never",
         "TO:<c@example.org>"])
    m = wait_final(daemon, qid)
    assert m["envid"] == "QQ+1@client.test"
    assert m["ret"] == "HDRS"
    assert m["tracked"] is True
    assert m["tracking_expiry"] == m["arrival_time"] + 3600
    a = rcpt_of(m, "a@example.org")
    assert a["orcpt"] == "rfc822;A+x@example.org"
    assert sorted(a["notify"]) == ["FAILURE", "SUCCESS"]
    assert rcpt_of(m, "b@example.org")["notify"] == ["NEVER"]
    c = rcpt_of(m, "c@example.org")
    assert c["notify"] is None and c["orcpt"] is None
    for r in m["recipients"]:      # delivered locally: no next hop
        assert r["status"] == "delivered"
        assert r["next_hop_dsn"] is None and r["next_hop_mtrk"] is None
    p = daemon.cli("show", qid, "--json", check=0)
    assert CERT not in p.out and "certifier" not in p.out


def test_untracked_message_has_no_invented_values(daemon):
    qid = transaction(daemon, "FROM:<s@example.com>", ["TO:<a@example.org>"])
    m = wait_final(daemon, qid)
    assert m["envid"] is None and m["ret"] is None
    assert m["tracked"] is False and m["tracking_expiry"] is None
    assert rcpt_of(m, "a@example.org")["notify"] is None


def test_tracking_expiry_capped_by_tracking_retention(daemon_factory):
    d = daemon_factory({"tracking_retention": "2d"})
    q1 = transaction(d, "FROM:<s@example.com> ENVID=e1@h.test MTRK=" + CERT,
                     ["TO:<a@example.org>"])
    q2 = transaction(d, "FROM:<s@example.com> ENVID=e2@h.test MTRK=%s:999999999"
                     % CERT, ["TO:<a@example.org>"])
    q3 = transaction(d, "FROM:<s@example.com> ENVID=e3@h.test MTRK=%s:90000"
                     % CERT, ["TO:<a@example.org>"])
    for q, keep in ((q1, 2 * 86400), (q2, 2 * 86400), (q3, 90000)):
        m = wait_final(d, q)
        assert m["tracked"] is True
        assert m["tracking_expiry"] == m["arrival_time"] + keep, (q, m)


def test_tracking_retention_below_one_day_refused(daemon_factory):
    d = daemon_factory({"tracking_retention": "23h"}, start=False)
    p = run_waymarkd("-n", "-f", d.conf)
    assert p.returncode != 0
    assert "tracking_retention" in p.err, p.err
    d = daemon_factory({"tracking_retention": "1d"}, start=False)
    assert run_waymarkd("-n", "-f", d.conf).returncode == 0


MAIL_BAD = [
    ("RET=FULL RET=HDRS", 501),
    ("RET=BODY", 501),
    ("RET", 501),
    ("ENVID=a ENVID=b", 501),
    ("ENVID=a+2", 501),             # + without two hex digits
    ("ENVID=a+0Ab", 501),           # control character after decoding
    ("ENVID=" + "x" * 101, 501),
    ("ENVID", 501),
    ("MTRK=" + CERT, 501),                          # no ENVID
    ("ENVID=noat MTRK=" + CERT, 501),               # ENVID not local@fqhn
    ("ENVID=e@h MTRK=" + CERT[:-1], 501),           # 26 characters
    ("ENVID=e@h MTRK=%s:0" % CERT, 501),
    ("ENVID=e@h MTRK=%s:1234567890" % CERT, 501),   # 10 digits
    ("ENVID=e@h MTRK=%s:12x" % CERT, 501),
    ("ENVID=e@h MTRK=%s MTRK=%s" % (CERT, CERT), 501),
    ("NOTIFY=SUCCESS", 555),
    ("ORCPT=rfc822;a@b", 555),
]

RCPT_BAD = [
    ("NOTIFY=NEVER,SUCCESS", 501),
    ("NOTIFY=FAILURE,NEVER", 501),
    ("NOTIFY=SUCCESS,SUCCESS", 501),
    ("NOTIFY=SOMETIMES", 501),
    ("NOTIFY=SUCCESS,", 501),
    ("NOTIFY=SUCCESS NOTIFY=FAILURE", 501),
    ("ORCPT=a@example.org", 501),                   # no addr-type
    ("ORCPT=;a@example.org", 501),
    ("ORCPT=rfc822;", 501),
    ("ORCPT=rfc822;a+C3+A9@example.org", 501),      # 8-bit in rfc822
    ("ORCPT=rfc822;a@example.org ORCPT=rfc822;a@example.org", 501),
    ("ORCPT=rfc822;" + "a" * 494, 501),             # 501 characters
    ("RET=FULL", 555),
    ("ENVID=x", 555),
    ("MTRK=" + CERT, 555),
]


def test_bad_mail_params(daemon):
    with daemon.connect() as c:
        c.ehlo()
        for params, code in MAIL_BAD:
            r = c.cmd("MAIL FROM:<s@example.com> " + params)
            assert_reply(r, code, "5.5.4")
        # the session is still usable: a good MAIL is accepted
        assert_reply(c.cmd("MAIL FROM:<s@example.com> RET=FULL "
                           "ENVID=ok@h.test MTRK=%s:60" % CERT), 250, "2.")


def test_bad_rcpt_params(daemon):
    with daemon.connect() as c:
        c.ehlo()
        assert_reply(c.cmd("MAIL FROM:<s@example.com>"), 250, "2.")
        for params, code in RCPT_BAD:
            r = c.cmd("RCPT TO:<a@example.org> " + params)
            assert_reply(r, code, "5.5.4")
        assert_reply(c.cmd("RCPT TO:<a@example.org> NOTIFY=DELAY,FAILURE "
                           "ORCPT=rfc822;" + "a" * 493), 250, "2.")


def test_long_rcpt_line_accepted(daemon):
    """RFC 3461 5.4: ORCPT up to 500 and NOTIFY up to 28 characters fit."""
    orcpt = "rfc822;" + "b" * 480 + "@example.org"
    assert len(orcpt) <= 500
    qid = transaction(daemon, "FROM:<s@example.com>",
                      ["TO:<a@example.org> NOTIFY=SUCCESS,FAILURE,DELAY "
                       "ORCPT=" + orcpt])
    m = wait_final(daemon, qid)
    assert rcpt_of(m, "a@example.org")["orcpt"] == orcpt


@pytest.mark.skipif(shutil.which("msmtp") is None, reason="msmtp missing")
def test_msmtp_dsn_options(daemon):
    content = make_message(to="a@example.org")
    p = subprocess.run(
        ["msmtp", "--host=127.0.0.1", "--port=%d" % daemon.port,
         "--auth=off", "--tls=off", "--from=s@example.com",
         "--dsn-notify=success,delay", "--dsn-return=hdrs",
         "a@example.org"], input=content, capture_output=True, timeout=30)
    assert p.returncode == 0, p.stderr

    def qid_from_log():
        found = re.findall(r"qid=([0-9A-Za-z]{8,32}) .*from=<s@example.com>",
                           daemon.log_text())
        return found[-1] if found else None
    qid = wait_for(qid_from_log, what="the msmtp message in the log")
    m = wait_final(daemon, qid)
    assert m["ret"] == "HDRS"
    assert sorted(rcpt_of(m, "a@example.org")["notify"]) == ["DELAY", "SUCCESS"]


# -------------------------------------------------------------- relaying

class RecordingHop(ThreadedServer):
    """Raw asyncio next hop: advertises `caps`, records every command."""

    def __init__(self, caps):
        self.caps = list(caps)
        self.lines = []
        self.conn_lines = []	# one list of lines per connection
        self.delivered = 0
        ThreadedServer.__init__(self)

    async def handle(self, reader, writer):
        def w(s):
            writer.write(s.encode() + b"\r\n")
        w("220 hop.test ESMTP")
        mine = []
        self.conn_lines.append(mine)
        try:
            while True:
                line = await reader.readline()
                if not line:
                    break
                text = line.decode().rstrip("\r\n")
                self.lines.append(text)
                mine.append(text)
                cmd = text.upper()
                if cmd.startswith("EHLO"):
                    w("\r\n".join(["250-hop.test"] +
                                  ["250-" + c for c in self.caps[:-1]] +
                                  ["250 " + self.caps[-1]]
                                  if self.caps else ["250 hop.test"]))
                elif cmd == "DATA":
                    w("354 go ahead")
                    await writer.drain()
                    while True:
                        l = await reader.readline()
                        if not l:
                            return
                        if l == b".\r\n":
                            break
                    self.delivered += 1
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

    def commands(self, verb):
        return [l for l in self.lines if l.upper().startswith(verb)]

    def transactions(self):
        """[(MAIL line, [RCPT lines])] per transaction, per connection."""
        out = []
        for conn in list(self.conn_lines):
            for l in conn:
                if l.upper().startswith("MAIL"):
                    out.append((l, []))
                elif l.upper().startswith("RCPT") and out:
                    out[-1][1].append(l)
        return out


def relay(d_factory, hop):
    return d_factory({"smarthost": "[127.0.0.1]:%d" % hop.port,
                      "retry_schedule": "1s"})


MAIL_IN = ("FROM:<s@example.com> RET=HDRS ENVID=QQ+2B1@client.test "
           "MTRK=%s:86400" % CERT)
RCPTS_IN = ["TO:<a@remote.test> NOTIFY=SUCCESS,FAILURE "
            "ORCPT=rfc822;A+2Bb@remote.test",
            "TO:<b@remote.test> NOTIFY=NEVER",
            "TO:<c@remote.test>"]


def test_relay_to_dsn_mtrk_hop_passes_everything(daemon_factory):
    hop = RecordingHop(["PIPELINING", "DSN", "MTRK"])
    try:
        d = relay(daemon_factory, hop)
        t0 = time.time()
        qid = transaction(d, MAIL_IN, RCPTS_IN)
        m = wait_final(d, qid)
        spent = int(time.time() - t0) + 1
        mails = hop.commands("MAIL")
        assert len(mails) == 1, hop.lines
        head = "MAIL FROM:<s@example.com> RET=HDRS ENVID=QQ+2B1@client.test MTRK=%s:" % CERT
        assert mails[0].startswith(head), mails
        left = int(mails[0][len(head):])
        assert 86400 - spent <= left <= 86400, mails
        assert sorted(hop.commands("RCPT")) == [
            "RCPT TO:<a@remote.test> NOTIFY=SUCCESS,FAILURE "
            "ORCPT=rfc822;A+2Bb@remote.test",
            "RCPT TO:<b@remote.test> NOTIFY=NEVER",
            "RCPT TO:<c@remote.test>",
        ], hop.lines
        for r in m["recipients"]:      # MTRK passed on: transferred
            assert r["status"] == "transferred", m
            assert r["next_hop_dsn"] is True and r["next_hop_mtrk"] is True
        assert m["tracked"] is True
    finally:
        hop.stop()


def test_relay_certifier_alone_without_timeout(daemon_factory):
    hop = RecordingHop(["DSN", "MTRK"])
    try:
        d = relay(daemon_factory, hop)
        qid = transaction(d, "FROM:<s@example.com> ENVID=x@y.test MTRK=" + CERT,
                          ["TO:<a@remote.test>"])
        wait_final(d, qid)
        assert hop.commands("MAIL") == [
            "MAIL FROM:<s@example.com> ENVID=x@y.test MTRK=" + CERT], hop.lines
        assert hop.commands("RCPT") == ["RCPT TO:<a@remote.test>"]
    finally:
        hop.stop()


def test_relay_to_plain_hop_passes_nothing(daemon_factory):
    hop = RecordingHop(["PIPELINING", "8BITMIME"])
    try:
        d = relay(daemon_factory, hop)
        qid = transaction(d, MAIL_IN, RCPTS_IN)
        m = wait_final(d, qid)
        # a@ asked for SUCCESS: its "relayed" DSN (from <>, to
        # s@example.com) may follow through the same hop; not counted
        assert [c for c in hop.commands("MAIL") if c != "MAIL FROM:<>"] == \
            ["MAIL FROM:<s@example.com>"], hop.lines
        assert sorted(c for c in hop.commands("RCPT")
                      if c != "RCPT TO:<s@example.com>") == [
            "RCPT TO:<a@remote.test>", "RCPT TO:<b@remote.test>",
            "RCPT TO:<c@remote.test>"], hop.lines
        for r in m["recipients"]:
            assert r["status"] == "relayed", m
            assert r["next_hop_dsn"] is False and r["next_hop_mtrk"] is False
        # what was asked is still recorded here
        assert m["envid"] == "QQ+1@client.test" and m["tracked"] is True
    finally:
        hop.stop()


def test_relay_to_dsn_only_hop_drops_mtrk(daemon_factory):
    hop = RecordingHop(["DSN"])
    try:
        d = relay(daemon_factory, hop)
        qid = transaction(d, MAIL_IN, RCPTS_IN[:1])
        m = wait_final(d, qid)
        assert hop.commands("MAIL") == [
            "MAIL FROM:<s@example.com> RET=HDRS ENVID=QQ+2B1@client.test"], \
            hop.lines
        assert hop.commands("RCPT") == [
            "RCPT TO:<a@remote.test> NOTIFY=SUCCESS,FAILURE "
            "ORCPT=rfc822;A+2Bb@remote.test"]
        r = rcpt_of(m, "a@remote.test")
        assert r["next_hop_dsn"] is True and r["next_hop_mtrk"] is False
    finally:
        hop.stop()


def test_list_expansion_gets_no_mtrk(daemon_factory):
    """RFC 3885 / RFC 3461 5.2.7.3: a 1->N alias expansion is relayed
    without MTRK (in its own transaction), while a recipient the client
    named directly in the same message keeps the certifier."""
    hop = RecordingHop(["DSN", "MTRK"])
    try:
        d = daemon_factory({"smarthost": "[127.0.0.1]:%d" % hop.port,
                            "retry_schedule": "1s", "aliases": "aliases"},
                           start=False)
        with open(os.path.join(d.dir, "aliases"), "w") as f:
            f.write("team: x@remote.test, y@remote.test\n")
        d.start()
        qid = transaction(d, "FROM:<s@example.com> ENVID=t1@client.test "
                          "MTRK=" + CERT,
                          ["TO:<team@example.org>", "TO:<z@remote.test>"])
        m = wait_final(d, qid)
        mails = hop.commands("MAIL")
        assert len(mails) == 2, hop.lines
        with_mtrk = [l for l in mails if "MTRK=" in l]
        assert len(with_mtrk) == 1, mails
        # the transaction with MTRK carries only the direct recipient
        by_tx = hop.transactions()
        for mail, rcpts in by_tx:
            if "MTRK=" in mail:
                assert [r.split()[1] for r in rcpts] == ["TO:<z@remote.test>"]
            else:
                assert sorted(r.split()[1] for r in rcpts) == [
                    "TO:<x@remote.test>", "TO:<y@remote.test>"], by_tx
        assert rcpt_of(m, "team@example.org")["status"] == "expanded", m
        for a in ("x@remote.test", "y@remote.test"):
            assert rcpt_of(m, a)["status"] == "relayed", m
        assert rcpt_of(m, "z@remote.test")["status"] == "transferred", m
    finally:
        hop.stop()
