"""
`waymark sendmail`: sendmail-compatible submission to the local daemon by
SMTP (issue 5).  Against a real waymarkd: Date/Message-ID added when missing
and kept when present, -t with To/Cc/Bcc (Bcc removed, everyone delivered),
-i and a lone '.' line, -f in Return-Path, -F, dot-stuffing, bare LF, the
`sendmail` name with $WAYMARK_CONF / -C and `mailq`.  --track against a raw
asyncio SMTP server that advertises DSN and MTRK and records the exact MAIL
and RCPT lines: MTRK certifier = base64(SHA-1(A)) with A read back from
$HOME/.waymark/keys (0600 in a 0700 folder), ENVID printed and sent; a
server without MTRK makes --track fail (exit 1) with no key written.
"""

import asyncio
import base64
import email
import email.policy
import hashlib
import os
import re
import shutil
import stat
import subprocess
import tempfile
import threading

import pytest

from asyncserver import ThreadedServer
from conftest import WAYMARK, free_port


def sendmail(d, args, data, env=None, conf=None, timeout=60):
    e = dict(os.environ)
    e.update(env or {})
    p = subprocess.run([WAYMARK, "-f", conf or d.conf, "sendmail"] + list(args),
                       input=data, capture_output=True, timeout=timeout, env=e)
    p.out = p.stdout.decode("utf-8", "replace")
    p.err = p.stderr.decode("utf-8", "replace")
    return p


def ok(p):
    assert p.returncode == 0, "exit %d\nstdout: %s\nstderr: %s" % (
        p.returncode, p.out, p.err)
    return p


def parse(raw):
    return email.message_from_bytes(raw, policy=email.policy.compat32)


# ------------------------------------------------------------ real daemon

def test_adds_date_and_message_id(daemon_factory):
    d = daemon_factory()
    ok(sendmail(d, ["user@example.org"], b"Subject: plain\n\nHello.\n"))
    raw = d.wait_mails("user@example.org", 1)[0]
    m = parse(raw)
    assert m["Subject"] == "plain"
    assert m["Date"] and email.utils.parsedate_to_datetime(m["Date"])
    assert re.fullmatch(r"<[^<>@\s]+@mx\.test>", m["Message-ID"]), m["Message-ID"]
    assert m["From"] and "@mx.test" in m["From"]
    assert m.get_payload() == "Hello.\n"
    assert b"\r" not in raw


def test_keeps_date_and_message_id(daemon_factory):
    d = daemon_factory()
    msg = (b"From: Alice <alice@example.com>\n"
           b"Date: Mon, 2 Mar 2026 10:00:00 +0000\n"
           b"Message-ID: <keep.me@client.test>\n"
           b"Subject: kept\n\nBody\n")
    ok(sendmail(d, ["user@example.org"], msg))
    m = parse(d.wait_mails("user@example.org", 1)[0])
    assert m.get_all("Date") == ["Mon, 2 Mar 2026 10:00:00 +0000"]
    assert m.get_all("Message-ID") == ["<keep.me@client.test>"]
    assert m.get_all("From") == ["Alice <alice@example.com>"]


def test_envelope_sender_and_fullname(daemon_factory):
    d = daemon_factory()
    ok(sendmail(d, ["-f", "bounce@example.com", "-F", "Bob \"B\" Smith",
                    "user@example.org"], b"Subject: f\n\nx\n"))
    raw = d.wait_mails("user@example.org", 1)[0]
    assert raw.startswith(b"Return-Path: <bounce@example.com>\n"), raw[:100]
    m = parse(raw)
    assert m["From"] == '"Bob \\"B\\" Smith" <bounce@example.com>', m["From"]


def test_extract_recipients_bcc_removed(daemon_factory):
    d = daemon_factory()
    msg = (b"From: a@example.com\n"
           b"To: One <one@example.org>, two@example.org\n"
           b"Cc: \"Three, T\" <three@example.org>\n"
           b"Bcc: hidden@example.org\n"
           b"Subject: extract\n\nbody\n")
    ok(sendmail(d, ["-t", "extra@example.org"], msg))
    for rc in ("one", "two", "three", "hidden", "extra"):
        raw = d.wait_mails(rc + "@example.org", 1)[0]
        m = parse(raw)
        assert m["Bcc"] is None, raw
        assert b"hidden" not in raw.split(b"\n\n", 1)[0].replace(
            b"for <hidden@example.org>", b""), raw
        assert m["Subject"] == "extract"


def test_extract_without_recipients_is_usage_error(daemon_factory):
    d = daemon_factory()
    p = sendmail(d, ["-t"], b"Subject: nobody\n\nx\n")
    assert p.returncode == 2, p.err


def test_lone_dot_ends_input_without_i(daemon_factory):
    d = daemon_factory()
    ok(sendmail(d, ["user@example.org"], b"Subject: dot\n\nbefore\n.\nafter\n"))
    m = parse(d.wait_mails("user@example.org", 1)[0])
    assert m.get_payload() == "before\n"


def test_i_keeps_lone_dot_and_dot_stuffing(daemon_factory):
    d = daemon_factory()
    body = b"before\n.\n..two\n.three\r\nafter"
    ok(sendmail(d, ["-i", "user@example.org"], b"Subject: dot\n\n" + body))
    ok(sendmail(d, ["-oi", "user@example.org"], b"Subject: dot2\n\n" + body))
    mails = d.wait_mails("user@example.org", 2)
    for raw in mails:
        m = parse(raw)
        assert m.get_payload() == "before\n.\n..two\n.three\nafter\n", raw


def test_no_header_body_only(daemon_factory):
    d = daemon_factory()
    ok(sendmail(d, ["user@example.org"], b"just a body line\nsecond\n"))
    m = parse(d.wait_mails("user@example.org", 1)[0])
    assert m.get_payload() == "just a body line\nsecond\n"
    assert m["Date"] and m["Message-ID"]


def test_unreachable_daemon_exit_1(daemon_factory):
    d = daemon_factory()
    d.stop()
    p = sendmail(d, ["user@example.org"], b"Subject: x\n\nx\n")
    assert p.returncode == 1, p.err
    assert "connect" in p.err


def test_refused_recipient_exit_1(daemon_factory):
    d = daemon_factory({"local_recipients": "/dev/null"})
    p = sendmail(d, ["nobody@example.org"], b"Subject: x\n\nx\n")
    assert p.returncode == 1, (p.out, p.err)
    assert re.search(r"\b5\d\d\b", p.err), p.err


def test_usage_errors(daemon_factory):
    d = daemon_factory()
    for args in (["-N", "sometimes", "u@example.org"], ["-R", "most", "u@example.org"],
                 [], ["-f"], ["bad address@@"]):
        p = sendmail(d, args, b"x\n")
        assert p.returncode == 2, (args, p.err)


def test_sendmail_and_mailq_names(daemon_factory, tmp_path):
    d = daemon_factory()
    link = tmp_path / "sendmail"
    os.symlink(WAYMARK, link)
    mq = tmp_path / "mailq"
    os.symlink(WAYMARK, mq)
    env = dict(os.environ, WAYMARK_CONF=d.conf)
    p = subprocess.run([str(link), "-oi", "-t"], input=b"To: user@example.org\n"
                       b"Subject: by name\n\nx\n", capture_output=True, env=env,
                       timeout=60)
    assert p.returncode == 0, p.stderr
    env.pop("WAYMARK_CONF")
    p = subprocess.run([str(link), "-C", d.conf, "user@example.org"],
                       input=b"Subject: with -C\n\nx\n", capture_output=True,
                       env=env, timeout=60)
    assert p.returncode == 0, p.stderr
    subjects = sorted(parse(r)["Subject"] for r in d.wait_mails("user@example.org", 2))
    assert subjects == ["by name", "with -C"]
    p = subprocess.run([str(mq), "-C", d.conf], capture_output=True, env=env,
                       timeout=60)
    assert p.returncode == 0, p.stderr


# --------------------------------------------------------- raw SMTP server

class RawServer(ThreadedServer):
    """asyncio SMTP server advertising chosen extensions; records the
    MAIL and RCPT lines exactly and the DATA payload."""

    def __init__(self, extensions=("DSN", "MTRK")):
        self.ext = list(extensions)
        self.mail_lines = []
        self.rcpt_lines = []
        self.delivered = []
        ThreadedServer.__init__(self)

    async def handle(self, reader, writer):
        w = lambda s: writer.write(s.encode() + b"\r\n")
        w("220 raw.test ESMTP")
        try:
            while True:
                line = await reader.readline()
                if not line:
                    break
                text = line.decode().rstrip("\r\n")
                cmd = text.upper()
                if cmd.startswith("EHLO"):
                    lines = ["raw.test", "8BITMIME"] + self.ext
                    w("\r\n".join("250%s%s" % ("-" if i < len(lines) - 1 else " ", l)
                                  for i, l in enumerate(lines)))
                elif cmd.startswith("MAIL"):
                    self.mail_lines.append(text)
                    w("250 2.1.0 ok")
                elif cmd.startswith("RCPT"):
                    self.rcpt_lines.append(text)
                    w("250 2.1.5 ok")
                elif cmd == "DATA":
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
                    self.delivered.append(data)
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


@pytest.fixture
def raw_env(tmp_path):
    """(make_server, run): a config pointing at a RawServer, HOME in tmp."""
    servers = []
    home = tmp_path / "home"
    home.mkdir()

    def make(extensions=("DSN", "MTRK")):
        srv = RawServer(extensions)
        servers.append(srv)
        conf = tmp_path / ("raw%d.conf" % len(servers))
        conf.write_text("hostname = client.test\nlisten = 127.0.0.1:%d\n"
                        "spool = %s\nmailbox_root = %s\ncontrol = %s\n"
                        % (srv.port, tmp_path / "spool", tmp_path / "mail",
                           tmp_path / "ctl.sock"))
        return srv, str(conf)

    def run(conf, args, data=b"Subject: t\n\nbody\n"):
        env = dict(os.environ, HOME=str(home))
        p = subprocess.run([WAYMARK, "-f", conf, "sendmail"] + list(args),
                           input=data, capture_output=True, env=env, timeout=60)
        p.out = p.stdout.decode("utf-8", "replace")
        p.err = p.stderr.decode("utf-8", "replace")
        return p

    yield make, run, home
    for s in servers:
        s.stop()


def xtext_decode(s):
    return re.sub(r"\+([0-9A-F]{2})", lambda m: chr(int(m.group(1), 16)), s)


def test_track_sends_mtrk_and_stores_key(raw_env):
    make, run, home = raw_env
    srv, conf = make()
    p = ok(run(conf, ["--track", "-N", "success,failure", "-R", "hdrs",
                      "r@remote.test"]))
    envid = p.out.strip()
    assert re.fullmatch(r"[0-9a-f]{32}@client\.test", envid), p.out
    assert len(srv.mail_lines) == 1
    mail = srv.mail_lines[0]
    params = dict(kv.split("=", 1) for kv in mail.split()[2:])
    assert xtext_decode(params["ENVID"]) == envid
    assert params["RET"] == "HDRS"
    cert = params["MTRK"]
    assert re.fullmatch(r"[A-Za-z0-9+/]{27}", cert), mail

    kdir = home / ".waymark"
    kfile = kdir / "keys"
    assert stat.S_IMODE(os.stat(kdir).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(kfile).st_mode) == 0o600
    lines = kfile.read_text().splitlines()
    assert len(lines) == 1
    kenvid, kb64 = lines[0].split(" ")
    assert kenvid == envid
    secret = base64.b64decode(kb64, validate=True)
    assert len(secret) >= 16
    want = base64.b64encode(hashlib.sha1(secret).digest()).decode().rstrip("=")
    assert cert == want

    assert srv.rcpt_lines == ["RCPT TO:<r@remote.test> NOTIFY=SUCCESS,FAILURE "
                              "ORCPT=rfc822;r@remote.test"]
    data = srv.delivered[0]
    assert b"\r\nMessage-ID: <" in data or data.startswith(b"Message-ID")

    # a second tracked message appends a second key line
    p = ok(run(conf, ["--track", "-V", "my-envid+1", "r@remote.test"]))
    assert p.out.strip() == "my-envid+1"
    assert "ENVID=my-envid+2B1" in srv.mail_lines[1]
    assert len(kfile.read_text().splitlines()) == 2
    assert kfile.read_text().splitlines()[1].startswith("my-envid+1 ")


def test_track_without_mtrk_fails_no_key(raw_env):
    make, run, home = raw_env
    srv, conf = make(("DSN",))
    p = run(conf, ["--track", "r@remote.test"])
    assert p.returncode == 1, (p.out, p.err)
    assert "MTRK" in p.err
    assert p.out == ""
    assert srv.mail_lines == [] and srv.delivered == []
    assert not (home / ".waymark" / "keys").exists()


def test_dsn_options_without_dsn_warn(raw_env):
    make, run, home = raw_env
    srv, conf = make(())
    p = ok(run(conf, ["-N", "never", "-R", "full", "-V", "e1", "r@remote.test"]))
    assert "DSN" in p.err and "warning" in p.err
    assert srv.mail_lines == ["MAIL FROM:<%s@client.test>" %
                              __import__("pwd").getpwuid(os.getuid()).pw_name]
    assert srv.rcpt_lines == ["RCPT TO:<r@remote.test>"]
    assert len(srv.delivered) == 1


def test_plain_submission_no_dsn_params(raw_env):
    make, run, home = raw_env
    srv, conf = make()
    ok(run(conf, ["-f", "s@client.test", "r@remote.test"],
           b"Subject: t\n\n.leading dot\nbare LF\n"))
    assert srv.mail_lines == ["MAIL FROM:<s@client.test>"]
    assert srv.rcpt_lines == ["RCPT TO:<r@remote.test>"]
    data = srv.delivered[0]
    assert b"\r\n\r\n..leading dot\r\nbare LF\r\n" in data, data
    assert b"\n" not in data.replace(b"\r\n", b"")


# ------------------------------------------------------------ end to end

def test_track_end_to_end_with_waymarkd(daemon_factory, tmp_path):
    """--track against the real daemon: it advertises DSN and MTRK, keeps
    the certifier and ENVID, and `waymark show --json` reports the message
    as tracked with the printed ENVID."""
    d = daemon_factory()
    home = tmp_path / "home"
    home.mkdir()
    p = ok(sendmail(d, ["--track", "user@example.org"],
                    b"Subject: tracked\n\nHello.\n", env={"HOME": str(home)}))
    envid = p.out.strip()
    assert re.fullmatch(r"[0-9a-f]{32}@mx\.test", envid), p.out
    keys = (home / ".waymark" / "keys").read_text().split("\n")
    line = [l for l in keys if l.startswith(envid + " ")]
    assert len(line) == 1, keys
    d.wait_mails("user@example.org", 1)
    out = subprocess.run([WAYMARK, "-f", d.conf, "queue", "--json"],
                         capture_output=True, text=True)
    assert out.returncode == 0
    log = d.log_text()
    qid = re.search(r"qid=(\w+) from=<[^>]*> size=\d+ nrcpt=1", log).group(1)
    show = subprocess.run([WAYMARK, "-f", d.conf, "show", qid, "--json"],
                          capture_output=True, text=True)
    assert show.returncode == 0, show.stderr
    import json
    m = json.loads(show.stdout)
    assert m["envid"] == envid, m
    assert m["tracked"] is True, m


def test_submission_requiring_auth_falls_back_to_listen(daemon_factory):
    """The first submission listener requires AUTH (530 to MAIL); sendmail
    has no credentials, so it submits to the first listen address."""
    sub = free_port()
    d = daemon_factory({"submission": "127.0.0.1:%d" % sub,
                        "auth_users": "users"}, start=False)
    with open(os.path.join(d.dir, "users"), "w") as f:
        f.write("")
    d.start()
    ok(sendmail(d, ["user@example.org"], b"Subject: fallback\n\nHi.\n"))
    raw = d.wait_mails("user@example.org", 1)[0]
    assert parse(raw)["Subject"] == "fallback"
