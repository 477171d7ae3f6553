"""Milters (README "Milters"): the MTA side of the milter protocol against a
python3-milter filter (milterfix.py, started here on a loopback port or a
unix socket).

Every decision (reject, tempfail, replycode, discard, accept) at the stage
it is given, every modification at the end of DATA (headers added,
changed, inserted, deleted; sender changed; recipients added and removed;
body replaced) checked in the delivered Maildir file and in the events of
`waymark show --json`; a quarantine request leaves the message in state
quarantine/milter with the milter's text until `waymark release`; pipelined
commands wait for the milter; macros reach the filter.  A filter that has
been killed gets milter_default_action (tempfail, accept, reject) at the
stage where it failed, and a slow one hits milter_content_timeout.
A real milter: clamav-milter with a clamd of our own (one local signature,
no freshclam, no network) refuses an infected attachment.
"""

import json
import os
import signal
import smtplib
import socket
import subprocess
import time
from email.message import EmailMessage

import pytest

from conftest import (SMTPConn, assert_reply, free_port, make_message,
                      run_waymarkd, split_message, wait_for)

HERE = os.path.dirname(os.path.abspath(__file__))
FILTER = os.path.join(HERE, "milterfix.py")
PYTHON = "/usr/bin/python3"

pytestmark = pytest.mark.skipif(
    subprocess.run([PYTHON, "-c", "import Milter"],
                   capture_output=True).returncode != 0,
    reason="python3-milter (Debian) is not installed")


class Filter:
    """milterfix.py in its own process; events() reads its JSON log."""

    def __init__(self, d, mode="", unix=False):
        self.log = os.path.join(d.dir, "milter-%d.log" % free_port())
        if unix:
            sdir = os.path.join(d.dir, "milter")
            os.makedirs(sdir, exist_ok=True)
            os.chmod(sdir, 0o777)
            self.path = os.path.join(sdir, "m.sock")
            spec = "unix:" + self.path
            self.name = "unix:" + self.path
        else:
            self.port = free_port()
            spec = "inet:%d@127.0.0.1" % self.port
            self.name = "inet:127.0.0.1:%d" % self.port
        self.proc = subprocess.Popen([PYTHON, FILTER, spec, self.log, mode],
                                     stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL,
                                     stderr=open(self.log + ".err", "wb"))
        if unix:
            wait_for(lambda: os.path.exists(self.path), timeout=10,
                     what="the milter's socket")
            os.chmod(self.path, 0o777)
        else:
            wait_for(self._listening, timeout=10, what="the milter's port")

    def _listening(self):
        try:
            socket.create_connection(("127.0.0.1", self.port), 1).close()
            return True
        except OSError:
            return False

    def events(self, ev=None):
        out = []
        try:
            with open(self.log) as f:
                for line in f:
                    e = json.loads(line)
                    if ev is None or e["ev"] == ev:
                        out.append(e)
        except FileNotFoundError:
            pass
        return out

    def kill(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)


@pytest.fixture
def filters():
    made = []
    yield made
    for f in made:
        f.kill()


def start(daemon_factory, filters, mode="", unix=False, config=None):
    d = daemon_factory(start=False)
    f = Filter(d, mode, unix)
    filters.append(f)
    d.config["milters"] = f.name
    d.config.update(config or {})
    d.write_config()
    d.start()
    d.filter = f
    return d


def session(d, helo="client.test"):
    s = smtplib.SMTP("127.0.0.1", d.port, local_hostname=helo, timeout=30)
    s.ehlo(helo)
    return s


def send(d, content, rcpts=("user@example.org",), sender="sender@example.com"):
    """One transaction; returns (code, text) of the end of DATA."""
    s = session(d)
    try:
        code, msg = s.mail(sender)
        assert code == 250, (code, msg)
        for r in rcpts:
            code, msg = s.rcpt(r)
            assert code == 250, (r, code, msg)
        code, msg = s.data(content)
        return code, msg.decode()
    finally:
        s.quit()


def qid_of(code, text):
    assert code == 250, (code, text)
    assert text.startswith("2.0.0 Ok: queued as "), text
    return text.split()[-1]


def actions(*names):
    return b"".join(b"X-Action: %s\r\n" % n.encode() for n in names)


def milter_events(d, qid):
    return [e["detail"] for e in d.show_json(qid)["events"]
            if e["kind"] == "milter"]


def test_modifications(daemon_factory, filters):
    d = start(daemon_factory, filters)
    f = d.filter
    content = make_message(
        subject="original subject",
        extra_headers=b"X-Remove: old\r\n" + actions(
            "add-header", "chg-header", "del-header", "ins-header",
            "chg-from", "add-rcpt", "del-rcpt", "repl-body"),
        body=b"original body\r\n")
    qid = qid_of(*send(d, content,
                       rcpts=("user@example.org", "deleted@example.org")))
    mail = d.wait_mails("user@example.org", 1)[0]
    added = d.wait_mails("added@example.org", 1)[0]
    rp, trace, rest = split_message(mail)
    assert rp == "Return-Path: <newfrom@example.com>", rp
    head, body = rest.split(b"\n\n", 1)
    hl = head.decode().split("\n")
    # inserted at the top of the content, right below our Received field
    assert hl[0] == "X-Inserted: first", hl
    assert "X-Milter: added" in hl and hl[-1] == "X-Milter: added", hl
    assert "Subject: changed by the milter" in hl, hl
    assert not any(l.startswith(("X-Remove", "Subject: original"))
                   for l in hl), hl
    assert body == b"The milter replaced this body.\n", body
    assert added.split(b"\n\n", 1)[1] == body
    assert d.mail_files("deleted@example.org") == []
    # one event per modification, naming the milter
    ev = milter_events(d, qid)
    want = ["add-header", "change-header", "delete-header", "insert-header",
            "change-from", "add-rcpt", "del-rcpt", "replace-body"]
    for w in want:
        assert any("milter=%s action=%s" % (f.name, w) in e for e in ev), \
            (w, ev)
    js = d.show_json(qid)
    assert js["sender"] == "newfrom@example.com"
    assert sorted(r["address"] for r in js["recipients"]) == \
        ["added@example.org", "user@example.org"]
    # what the filter was sent: macros, header fields, the body
    con = f.events("connect")[0]
    assert con["hostname"] == "[127.0.0.1]" and con["j"] == "mx.test"
    assert con["client_addr"] == "127.0.0.1"
    mail_ev = [e for e in f.events("mail")
               if e["sender"] == "<sender@example.com>"][0]
    assert mail_ev["mail_addr"] == "sender@example.com"
    rcpt_addrs = [e["rcpt_addr"] for e in f.events("rcpt")]
    assert "user@example.org" in rcpt_addrs
    eom = f.events("eom")[-1]
    assert eom["i"] == qid
    assert eom["body"] == "original body\r\n"
    hdrs = [(e["name"], e["value"]) for e in f.events("header")]
    assert ("Subject", "original subject") in hdrs



def test_two_milters_in_order_and_large_body(daemon_factory, filters):
    """The second milter is sent the message as the first changed it; a
    body over 65535 octets arrives whole, in chunks."""
    d = daemon_factory(start=False)
    f1, f2 = Filter(d), Filter(d, unix=True)
    filters.extend([f1, f2])
    d.config["milters"] = "%s, %s" % (f1.name, f2.name)
    d.write_config()
    d.start()
    body = b"".join(b"line %06d of a long body\r\n" % i for i in range(8000))
    assert len(body) > 3 * 65535
    qid = qid_of(*send(d, make_message(extra_headers=actions("add-header"),
                                       body=body)))
    mail = d.wait_mails("user@example.org", 1)[0]
    assert mail.count(b"\nX-Milter: added") == 2, mail[:2000]
    seen2 = [e["name"] for e in f2.events("header")]
    assert "X-Milter" in seen2, seen2              # f1's change
    assert "X-Milter" not in [e["name"] for e in f1.events("header")]
    for f in (f1, f2):
        assert f.events("eom")[-1]["body_len"] == len(body)
    ev = milter_events(d, qid)
    assert [e.split()[0] for e in ev] == ["milter=" + f1.name,
                                          "milter=" + f2.name], ev
    assert mail.endswith(body.replace(b"\r\n", b"\n"))

def test_decisions_at_mail_and_rcpt(daemon_factory, filters):
    d = start(daemon_factory, filters)
    s = session(d)
    try:
        code, msg = s.mail("rejectmail@example.com")
        assert (code, msg.split()[0]) == (550, b"5.7.1"), (code, msg)
        code, msg = s.mail("tempmail@example.com")
        assert (code, msg.split()[0]) == (451, b"4.7.1"), (code, msg)
        code, msg = s.mail("sender@example.com")
        assert code == 250, (code, msg)
        code, msg = s.rcpt("rejectme@example.org")
        assert (code, msg.split()[0]) == (550, b"5.7.1"), (code, msg)
        code, msg = s.rcpt("tempme@example.org")
        assert (code, msg.split()[0]) == (451, b"4.7.1"), (code, msg)
        code, msg = s.rcpt("replyme@example.org")
        assert (code, msg) == (550, b"5.7.9 No thanks from the filter"), msg
        code, msg = s.rcpt("user@example.org")
        assert code == 250, (code, msg)
        code, msg = s.data(make_message(subject="after the refusals"))
        qid = qid_of(code, msg.decode())
    finally:
        s.quit()
    d.wait_mails("user@example.org", 1)
    for r in ("rejectme", "tempme", "replyme"):
        assert d.mail_files(r + "@example.org") == []
    assert [r["address"] for r in d.show_json(qid)["recipients"]] == \
        ["user@example.org"]


def test_discard_at_rcpt_and_eom(daemon_factory, filters):
    d = start(daemon_factory, filters)
    # DISCARD at RCPT: every reply is 250, the whole message is dropped
    code, text = send(d, make_message(subject="dropped"),
                      rcpts=("discardme@example.org", "user@example.org"))
    assert code == 250 and text.startswith("2.0.0 Ok: queued as "), text
    code, text = send(d, make_message(subject="dropped too",
                                      extra_headers=actions("discard")))
    assert code == 250 and text.startswith("2.0.0 Ok: queued as "), text
    wait_for(lambda: d.log_text().count("action=discard: not queued") == 2,
             timeout=10, what="the discard log lines")
    assert d.queue_json() == []
    qid = qid_of(*send(d, make_message(subject="kept")))
    d.wait_mails("user@example.org", 1)
    assert len(d.mail_files("user@example.org")) == 1
    assert d.show_json(qid)["state"] == "normal"


def test_decisions_at_eom(daemon_factory, filters):
    d = start(daemon_factory, filters)
    code, text = send(d, make_message(extra_headers=actions("add-header",
                                                            "reject")))
    assert (code, text.split()[0]) == (550, "5.7.1"), (code, text)
    code, text = send(d, make_message(extra_headers=actions("tempfail")))
    assert (code, text.split()[0]) == (451, "4.7.1"), (code, text)
    assert d.queue_json() == []
    qid = qid_of(*send(d, make_message(extra_headers=actions("add-header",
                                                             "accept"))))
    mail = d.wait_mails("user@example.org", 1)[0]
    assert b"\nX-Milter: added\n" in mail       # kept with accept
    assert len(milter_events(d, qid)) == 1


def test_quarantine_then_release(daemon_factory, filters):
    d = start(daemon_factory, filters)
    qid = qid_of(*send(d, make_message(extra_headers=actions("quarantine"))))
    js = d.show_json(qid)
    assert (js["state"], js["state_value"]) == ("quarantine", "milter"), js
    assert js["state_reason"] == "suspicious content", js
    time.sleep(0.5)
    assert d.mail_files("user@example.org") == []
    d.cli("release", qid, check=0)
    mail = d.wait_mails("user@example.org", 1)[0]
    assert b"state quarantine/milter" in mail or b"Received:" in mail


def test_pipelined_commands_wait(daemon_factory, filters):
    d = start(daemon_factory, filters, unix=True)
    with SMTPConn(d.port) as c:
        assert c.cmd("EHLO client.test").code == 250
        c.send(b"MAIL FROM:<sender@example.com>\r\n"
               b"RCPT TO:<rejectme@example.org>\r\n"
               b"RCPT TO:<user@example.org>\r\nDATA\r\n")
        assert_reply(c.reply(), 250)
        assert_reply(c.reply(), 550, "5.7.1")
        assert_reply(c.reply(), 250)
        assert c.reply().code == 354
        c.send(b"Subject: piped\r\n\r\nhello\r\n.\r\n")
        r = c.reply()
        assert r.code == 250, r
        assert_reply(c.cmd("QUIT"), 221)
    d.wait_mails("user@example.org", 1)
    assert d.filter.events("connect"), "the unix socket milter was asked"


def test_connect_and_helo_refusals(daemon_factory, filters):
    d = start(daemon_factory, filters, mode="connect-reject")
    with SMTPConn(d.port) as c:
        assert c.greeting.code == 220
        assert_reply(c.cmd("EHLO client.test"), 550, "5.7.1")
        assert_reply(c.cmd("MAIL FROM:<a@example.com>"), 550, "5.7.1")
        assert_reply(c.cmd("NOOP"), 250)
        assert_reply(c.cmd("QUIT"), 221)
    d2 = start(daemon_factory, filters, mode="helo-reject")
    with SMTPConn(d2.port) as c:
        assert_reply(c.cmd("EHLO client.test"), 550, "5.7.1")
        assert_reply(c.cmd("MAIL FROM:<a@example.com>"), 550, "5.7.1")
        assert_reply(c.cmd("QUIT"), 221)


@pytest.mark.parametrize("action,code,enh", [("tempfail", 451, "4.7.1"),
                                             ("reject", 550, "5.5.0"),
                                             ("accept", 250, None)])
def test_killed_filter_default_action(daemon_factory, filters, action, code,
                                      enh):
    d = start(daemon_factory, filters,
              config={"milter_default_action": action})
    # killed in the middle of a transaction: answered at that stage (RCPT)
    s = session(d)
    try:
        assert s.mail("sender@example.com")[0] == 250
        d.filter.kill()
        r = s.rcpt("user@example.org")
        assert r[0] == code, r
        if enh:
            assert r[1].split()[0] == enh.encode(), r
    finally:
        s.close()
    wait_for(lambda: "milter=%s error: connection closed" % d.filter.name
             in d.log_text(), timeout=10, what="the milter's error log line")
    # a new session cannot reach it: the default action from CONNECT on
    with SMTPConn(d.port) as c:
        assert c.greeting.code == 220
        r = c.cmd("EHLO client.test")
        if action == "accept":
            assert r.code == 250
            c.mail_transaction("sender@example.com", ["user@example.org"],
                               b"Subject: without the milter\r\n\r\nhi\r\n")
        else:
            assert_reply(r, code, enh)
        c.cmd("QUIT")
    if action == "accept":
        d.wait_mails("user@example.org", 1)
    else:
        assert d.queue_json() == []


def test_slow_filter_times_out(daemon_factory, filters):
    d = start(daemon_factory, filters, mode="slow-eom",
              config={"milter_content_timeout": "1s"})
    code, text = send(d, make_message())
    assert (code, text.split()[0]) == (451, "4.7.1"), (code, text)
    assert "milter=%s error: reply timeout" % d.filter.name in d.log_text()
    assert d.queue_json() == []


@pytest.mark.parametrize("line,why", [
    ("milters = tcp:127.0.0.1:8891",
     '"tcp:127.0.0.1:8891": unix:PATH or inet:HOST:PORT expected'),
    ("milters = unix:relative.sock",
     '"unix:relative.sock": an absolute path expected after unix:'),
    ("milter_default_action = shutdown",
     'invalid value "shutdown" (tempfail, accept or reject)'),
])
def test_config_errors(tmp_path, line, why):
    conf = tmp_path / "w.conf"
    conf.write_text("listen = 127.0.0.1:%d\n%s\n" % (free_port(), line))
    p = run_waymarkd("-n", "-f", str(conf))
    assert p.returncode == 1
    key = line.split()[0]
    assert "%s:2: %s: %s" % (conf, key, why) in p.err, p.err


SIGNATURE = b"WAYMARK-TEST-VIRUS-SIGNATURE"


@pytest.mark.skipif(not (os.path.exists("/usr/sbin/clamd") and
                         os.path.exists("/usr/sbin/clamav-milter")),
                    reason="clamav-daemon / clamav-milter not installed")
def test_clamav_milter_rejects_attachment(daemon_factory, tmp_path):
    """clamav-milter with its own clamd: one local signature, no
    freshclam, no network; an infected attachment is refused at the end
    of DATA, a clean message is delivered."""
    db = tmp_path / "db"
    db.mkdir()
    (db / "waymark.ndb").write_text("Waymark.Test.Signature:0:*:%s\n"
                                    % SIGNATURE.hex())
    sock = tmp_path / "clamd.sock"
    (tmp_path / "clamd.conf").write_text(
        "LocalSocket %s\nDatabaseDirectory %s\nForeground yes\n"
        "LogFile %s/clamd.log\nPidFile %s/clamd.pid\n"
        "TemporaryDirectory %s\nUser root\n"
        % (sock, db, tmp_path, tmp_path, tmp_path))
    port = free_port()
    (tmp_path / "milter.conf").write_text(
        "MilterSocket inet:%d@127.0.0.1\nClamdSocket unix:%s\n"
        "Foreground yes\nOnInfected Reject\nOnFail Defer\n"
        "LogInfected Basic\n"
        "LogFile %s/milter.log\nPidFile %s/milter.pid\n"
        "TemporaryDirectory %s\nUser root\n"
        % (port, sock, tmp_path, tmp_path, tmp_path))
    procs = []
    try:
        procs.append(subprocess.Popen(
            ["/usr/sbin/clamd", "-c", str(tmp_path / "clamd.conf")],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL))
        wait_for(lambda: sock.exists(), timeout=60, what="clamd's socket")
        procs.append(subprocess.Popen(
            ["/usr/sbin/clamav-milter", "-c", str(tmp_path / "milter.conf")],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL))

        def listening():
            try:
                socket.create_connection(("127.0.0.1", port), 1).close()
                return True
            except OSError:
                return False
        wait_for(listening, timeout=30, what="clamav-milter's port")
        d = daemon_factory(config={"milters": "inet:127.0.0.1:%d" % port})
        infected = EmailMessage()
        infected["From"] = "sender@example.com"
        infected["To"] = "user@example.org"
        infected["Subject"] = "invoice"
        infected.set_content("see the attachment\n")
        infected.add_attachment(b"xx" + SIGNATURE + b"yy",
                                maintype="application",
                                subtype="octet-stream", filename="inv.bin")
        code, text = send(d, infected.as_bytes())
        assert code == 550, (code, text)
        assert text.startswith("5.7.1"), text
        wait_for(lambda: "Waymark.Test.Signature" in
                 (tmp_path / "milter.log").read_text(), timeout=10,
                 what="clamav-milter's log of the signature")
        assert d.queue_json() == []
        qid = qid_of(*send(d, make_message(subject="clean")))
        d.wait_mails("user@example.org", 1)
        assert d.show_json(qid)["state"] == "normal"
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(10)
