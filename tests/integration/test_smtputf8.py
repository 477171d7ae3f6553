"""
SMTPUTF8 (RFC 6531, 6532, 6533): internationalized addresses and headers.

The server advertises SMTPUTF8; with the MAIL parameter UTF-8 local parts
and U-label domains are accepted and delivered to
mailbox_root/<A-label domain>/<NFC local part>/ with the header bytes
unchanged and `with UTF8SMTP`; without it 553 5.6.7; ill-formed UTF-8 is
refused (553 5.1.7 / 5.1.3 in an address, 554 5.6.0 in a header field)
and nothing is stored.  local_domains takes U-labels or A-labels and
matches both forms (here one of each).
"""

import os
import smtplib

import pytest

from conftest import (assert_reply, dot_stuff, ehlo_keywords, queued_qid,
                      split_message, wait_for)

LOCAL = {"local_domains": "example.org bücher.test xn--fsqu00a.test"}
JUERGEN = "jürgen@bücher.test"
YONGHU = "用户@例子.test"


def utf8_msg(to, subject="Grüße aus Köln", extra=b""):
    return ("From: Jürgen <jürgen@bücher.test>\r\n"
            "To: <%s>\r\n"
            "Subject: %s\r\n"
            "Message-ID: <ä1@bücher.test>\r\n" % (to, subject)).encode() + \
        extra + "\r\nHallo, 用户.\r\n".encode()


def maildir_files(d, domain_alabel, local):
    p = os.path.join(d.mail, domain_alabel, local, "new")
    try:
        return [os.path.join(p, n) for n in sorted(os.listdir(p))]
    except FileNotFoundError:
        return []


def read_one(d, domain_alabel, local):
    wait_for(lambda: maildir_files(d, domain_alabel, local), timeout=20,
             what="mail for %s@%s" % (local, domain_alabel))
    with open(maildir_files(d, domain_alabel, local)[0], "rb") as f:
        return f.read()


def test_ehlo_advertises_smtputf8(daemon_factory):
    d = daemon_factory(LOCAL)
    with d.connect() as c:
        kw = ehlo_keywords(c.ehlo())
        assert "SMTPUTF8" in kw and "8BITMIME" in kw, kw


def test_smtplib_delivers_utf8(daemon_factory):
    d = daemon_factory(LOCAL)
    for rcpt, dom, local in ((JUERGEN, "xn--bcher-kva.test", "jürgen"),
                             (YONGHU, "xn--fsqu00a.test", "用户")):
        msg = utf8_msg(rcpt)
        with d.smtplib() as s:
            s.ehlo()
            assert s.has_extn("smtputf8")
            s.sendmail("sender@example.org", [rcpt], msg,
                       mail_options=["SMTPUTF8"])
        data = read_one(d, dom, local)
        rp, trace, rest = split_message(data)
        assert rp == "Return-Path: <sender@example.org>"
        assert "with UTF8SMTP " in trace[0], trace
        # the header and body bytes as sent (LF line ends in Maildir)
        assert rest == msg.replace(b"\r\n", b"\n")
    q = d.queue_json()
    assert q == [] or all(m["smtputf8"] for m in q)


def test_utf8_sender_and_show(daemon_factory):
    d = daemon_factory(LOCAL)
    with d.connect() as c:
        c.ehlo()
        r = c.cmd("MAIL FROM:<jürgen@bücher.test> SMTPUTF8")
        assert_reply(r, 250)
        assert_reply(c.cmd("RCPT TO:<用户@例子.test>"), 250)
        assert c.cmd("DATA").code == 354
        c.send(dot_stuff(utf8_msg(YONGHU)))
        qid = queued_qid(c.reply())
    data = read_one(d, "xn--fsqu00a.test", "用户")
    assert data.startswith("Return-Path: <jürgen@bücher.test>\n".encode())
    j = d.show_json(qid)
    assert j["smtputf8"] is True
    assert j["sender"] == JUERGEN
    assert j["recipients"][0]["address"] == YONGHU
    out = d.cli("show", qid, check=0).out
    assert JUERGEN in out and "SMTPUTF8:" in out


def test_without_parameter_refused(daemon_factory):
    d = daemon_factory(LOCAL)
    with d.connect() as c:
        c.ehlo()
        assert_reply(c.cmd("MAIL FROM:<jürgen@bücher.test>"), 553, "5.6.7")
        assert_reply(c.cmd("MAIL FROM:<a@example.org>"), 250)
        assert_reply(c.cmd("RCPT TO:<%s>" % JUERGEN), 553, "5.6.7")
        assert_reply(c.cmd("RCPT TO:<%s>" % YONGHU), 553, "5.6.7")
    with d.smtplib() as s:
        s.ehlo()
        s.command_encoding = "utf-8"    # raw UTF-8, no SMTPUTF8 parameter
        with pytest.raises(smtplib.SMTPRecipientsRefused) as e:
            s.sendmail("a@example.org", [JUERGEN], utf8_msg(JUERGEN))
        code, text = e.value.recipients[JUERGEN]
        assert code == 553 and text.startswith(b"5.6.7"), (code, text)


@pytest.mark.parametrize("bad", [
    b"\xc3\x28",            # a lead octet without its continuation
    b"\x80",                # lone continuation
    b"\xc0\xaf",            # overlong '/'
    b"\xe0\x80\xaf",        # overlong
    b"\xed\xa0\x80",        # surrogate U+D800
    b"\xf4\x90\x80\x80",    # above U+10FFFF
    b"\xff",
])
def test_invalid_utf8_address_refused(daemon_factory, bad):
    d = daemon_factory(LOCAL)
    with d.connect() as c:
        c.ehlo()
        r = c.cmd(b"MAIL FROM:<j" + bad + b"rgen@example.org> SMTPUTF8")
        assert_reply(r, 553, "5.1.7")
        r = c.cmd(b"MAIL FROM:<a@b" + bad + b"cher.test> SMTPUTF8")
        assert_reply(r, 553, "5.1.7")
        assert_reply(c.cmd("MAIL FROM:<a@example.org> SMTPUTF8"), 250)
        assert_reply(c.cmd(b"RCPT TO:<j" + bad + b"rgen@example.org>"),
                     553, "5.1.3")
        assert_reply(c.cmd(b"RCPT TO:<\"j" + bad + b"\"@example.org>"),
                     553, "5.1.3")


def test_invalid_utf8_header_refused(daemon_factory):
    d = daemon_factory(LOCAL)
    with d.connect() as c:
        c.ehlo()
        assert_reply(c.cmd("MAIL FROM:<a@example.org> SMTPUTF8"), 250)
        assert_reply(c.cmd("RCPT TO:<%s>" % JUERGEN), 250)
        assert c.cmd("DATA").code == 354
        c.send(dot_stuff(utf8_msg(JUERGEN, extra=b"X-Bad: a\xed\xa0\x80b\r\n")))
        assert_reply(c.reply(), 554, "5.6.0")
        # the session goes on; nothing was queued
        assert_reply(c.cmd("NOOP"), 250)
    assert d.queue_json() == []
    assert maildir_files(d, "xn--bcher-kva.test", "jürgen") == []


# ------------------------------------------------------------------ relay

import email
import email.policy
import threading

from aiosmtpd.controller import Controller

from conftest import free_port
from dnsfix import dns_factory  # noqa: F401  (fixture)


class Hop:
    """aiosmtpd next hop recording (mail_from, options, rcpts, content)."""

    def __init__(self):
        self.messages = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            self.messages.append((envelope.mail_from,
                                  list(envelope.mail_options),
                                  list(envelope.rcpt_tos),
                                  envelope.original_content))
        return "250 2.0.0 Ok: sunk"


@pytest.fixture
def hop():
    made = []

    def make(utf8, host="127.0.0.1", port=None):
        h = Hop()
        port = port or free_port()
        c = Controller(h, hostname=host, port=port, enable_SMTPUTF8=utf8)
        c.start()
        made.append(c)
        h.port = port
        return h
    yield make
    for c in made:
        c.stop()


def relay_cfg(port):
    return dict(LOCAL, smarthost="[127.0.0.1]:%d" % port,
                retry_schedule="1s")


def status_of(d, qid, addr):
    p = d.cli("show", qid, "--json")
    if p.returncode != 0:
        return None
    import json
    for r in json.loads(p.out)["recipients"]:
        if r["address"] == addr:
            return r
    return None


def wait_final(d, qid, addr):
    return wait_for(lambda: (lambda r: r if r and r["status"] in
                             ("relayed", "failed", "delivered") else None)(
                                 status_of(d, qid, addr)),
                    timeout=30, interval=0.1, what="final status of " + addr)


def send(d, sender, rcpts, msg, utf8=True):
    with d.smtplib() as s:
        s.ehlo()
        s.command_encoding = "utf-8"
        r = s.sendmail(sender, rcpts, msg,
                       mail_options=["SMTPUTF8"] if utf8 else [])
        assert r == {}
    q = [m for m in d.queue_json()]
    return q


def last_qid(d):
    p = d.cli("queue", "--json", check=0)
    import json
    ms = [json.loads(l) for l in p.out.splitlines() if l.strip()]
    ms.sort(key=lambda m: m["arrival_time"])
    return ms[-1]["queue_id"]


def submit_raw(d, sender, rcpt, msg, params=" SMTPUTF8", rparams=""):
    with d.connect() as c:
        c.ehlo()
        assert_reply(c.cmd("MAIL FROM:<%s>%s" % (sender, params)), 250)
        assert_reply(c.cmd("RCPT TO:<%s>%s" % (rcpt, rparams)), 250)
        assert c.cmd("DATA").code == 354
        c.send(dot_stuff(msg))
        return queued_qid(c.reply())


def test_relay_flag_passed(daemon_factory, hop):
    h = hop(True)
    d = daemon_factory(relay_cfg(h.port))
    rcpt = "jürgen@bücher.example"
    msg = utf8_msg(rcpt)
    qid = submit_raw(d, "sender@example.org", rcpt, msg)
    r = wait_final(d, qid, rcpt)
    assert r["status"] == "relayed", r
    assert len(h.messages) == 1
    frm, opts, rcpts, content = h.messages[0]
    assert "SMTPUTF8" in [o.upper() for o in opts], opts
    assert rcpts == [rcpt]
    assert content.endswith(msg), content[-300:]
    assert b"with UTF8SMTP " in content


def test_relay_ascii_with_flag_without_it(daemon_factory, hop):
    h = hop(False)
    d = daemon_factory(relay_cfg(h.port))
    msg = b"From: <a@example.org>\r\nTo: <b@far.example>\r\nSubject: x\r\n\r\nHi\r\n"
    qid = submit_raw(d, "a@example.org", "b@far.example", msg)
    r = wait_final(d, qid, "b@far.example")
    assert r["status"] == "relayed", r
    frm, opts, rcpts, content = h.messages[0]
    assert "SMTPUTF8" not in [o.upper() for o in opts], opts
    assert d.show_json(qid)["smtputf8"] is True


def dsn_of(d, addr, n=1):
    local, dom = addr.rsplit("@", 1)
    wait_for(lambda: len(maildir_files(d, dom, local)) >= n, timeout=30,
             what="the DSN for " + addr)
    with open(maildir_files(d, dom, local)[n - 1], "rb") as f:
        data = f.read()
    assert data.startswith(b"Return-Path: <>\n"), data[:200]
    return email.message_from_bytes(data.split(b"\n", 1)[1],
                                    policy=email.policy.default)


def report_fields(dsn, ctype):
    """The per-recipient fields of the report part of type ctype."""
    for p in dsn.walk():
        if p.get_content_type() == ctype:
            raw = p.get_payload(decode=True)
            if raw is None:
                raw = p.get_payload()[0].as_bytes() if p.is_multipart() \
                    else p.get_payload().encode()
            text = raw.decode("utf-8").replace("\r\n", "\n")
            blocks = text.strip("\n").split("\n\n")
            return [dict(l.split(": ", 1) for l in b.split("\n")
                         if ": " in l) for b in blocks]
    raise AssertionError("no %s part in %s" % (ctype, dsn.as_string()[:2000]))


def test_relay_to_hop_without_smtputf8_fails_5_6_7(daemon_factory, hop):
    h = hop(False)
    d = daemon_factory(relay_cfg(h.port))
    rcpt = "用户@例子.example"
    # the ORCPT in the 7-bit utf-8 form: up-converted in the report
    qid = submit_raw(d, "sender@example.org", rcpt, utf8_msg(rcpt),
                     rparams=r" NOTIFY=FAILURE ORCPT=utf-8;\x{7528}\x{6237}"
                     "@例子.example")
    r = wait_final(d, qid, rcpt)
    assert r["status"] == "failed", r
    assert r["last_reply"]["enhanced"] == "5.6.7", r
    assert h.messages == []
    dsn = dsn_of(d, "sender@example.org")
    assert dsn.get_content_type() == "multipart/report"
    fields = report_fields(dsn, "message/global-delivery-status")
    rc = fields[1]
    assert rc["Final-Recipient"].replace(" ", "") == "utf-8;" + rcpt, rc
    assert rc["Original-Recipient"].replace(" ", "") == "utf-8;" + rcpt, rc
    assert rc["Action"] == "failed" and rc["Status"] == "5.6.7", rc
    types = [p.get_content_type() for p in dsn.walk()]
    assert "message/global" in types or "message/global-headers" in types, \
        types


def test_relay_utf8_header_only_fails_5_6_9(daemon_factory, hop):
    h = hop(False)
    d = daemon_factory(relay_cfg(h.port))
    qid = submit_raw(d, "sender@example.org", "b@far.example",
                     utf8_msg("b@far.example"))
    r = wait_final(d, qid, "b@far.example")
    assert r["status"] == "failed", r
    assert r["last_reply"]["enhanced"] == "5.6.9", r
    assert h.messages == []


def test_legacy_8bit_header_relayed_without_smtputf8(daemon_factory, hop):
    """Without the parameter, 8-bit header fields are not an SMTPUTF8
    message: relayed as before to a hop without SMTPUTF8 (as Postfix)."""
    h = hop(False)
    d = daemon_factory(relay_cfg(h.port))
    msg = utf8_msg("b@far.example")
    qid = submit_raw(d, "sender@example.org", "b@far.example", msg,
                     params=" BODY=8BITMIME")
    r = wait_final(d, qid, "b@far.example")
    assert r["status"] == "relayed", r
    assert len(h.messages) == 1
    assert h.messages[0][3].endswith(msg)


def test_dns_asked_for_a_label(daemon_factory, dns_factory, hop):  # noqa: F811
    dns = dns_factory(mx=[("xn--bcher-kva.test", "mx1.xn--bcher-kva.test", 10)],
                      hosts=[("mx1.xn--bcher-kva.test", "127.0.0.2")])
    h = hop(True, host="127.0.0.2")
    d = daemon_factory({"dns": dns.server, "smtp_port": str(h.port),
                        "retry_schedule": "1h"})
    rcpt = "jürgen@bücher.test"
    qid = submit_raw(d, "a@example.org", rcpt, utf8_msg(rcpt))
    r = wait_final(d, qid, rcpt)
    assert r["status"] == "relayed", r
    assert "127.0.0.2" in r["remote_mta"], r
    assert h.messages[0][2] == [rcpt]
    assert "xn--bcher-kva.test" in dns.log_text()
    assert "bücher" not in dns.log_text()
    assert dns.queries("xn--bcher-kva.test")[:1] == ["MX"]


# ------------------------------------------------------------------ sendmail

def test_sendmail_submits_with_smtputf8(daemon_factory):
    import subprocess
    from conftest import WAYMARK
    d = daemon_factory(LOCAL)
    msg = "Subject: Grüße\nFrom: jürgen@bücher.test\n\nHallo.\n".encode()
    p = subprocess.run([WAYMARK, "-f", d.conf, "sendmail", "-f", JUERGEN,
                        "-N", "failure", YONGHU],
                       input=msg, capture_output=True, timeout=60)
    assert p.returncode == 0, p.stderr
    data = read_one(d, "xn--fsqu00a.test", "用户")
    rp, trace, rest = split_message(data)
    assert rp == "Return-Path: <%s>" % JUERGEN
    assert "with UTF8SMTP " in trace[0], trace
    assert "Subject: Grüße\n".encode() in rest
    # ASCII mail from sendmail goes without the parameter
    p = subprocess.run([WAYMARK, "-f", d.conf, "sendmail", "u@example.org"],
                       input=b"Subject: plain\n\nHi.\n", capture_output=True,
                       timeout=60)
    assert p.returncode == 0, p.stderr
    wait_for(lambda: maildir_files(d, "example.org", "u"), timeout=20)
    with open(maildir_files(d, "example.org", "u")[0], "rb") as f:
        assert b"with ESMTP " in f.read()


# ------------------------------------------------------------------ views

def test_mtqp_and_web_show_utf8_addresses(daemon_factory):
    import base64
    import hashlib
    import json
    import urllib.request
    from mtqpclient import MTQPClient
    a = os.urandom(20)
    secret = base64.b64encode(a).decode()
    cert = base64.b64encode(hashlib.sha1(a).digest()).decode().rstrip("=")
    mport, hport = free_port(), free_port()
    d = daemon_factory(dict(LOCAL, mtqp="127.0.0.1:%d" % mport,
                            http="127.0.0.1:%d" % hport))
    envid = "u8t1@client.test"
    submit_raw(d, "a@example.org", JUERGEN, utf8_msg(JUERGEN),
               params=" SMTPUTF8 ENVID=%s MTRK=%s" % (envid, cert))
    read_one(d, "xn--bcher-kva.test", "jürgen")
    with MTQPClient(mport) as c:
        r = c.track(envid, secret)
        assert r.line.startswith("+OK"), r.line
        body = r.body
    assert "Final-Recipient: utf-8; jürgen@bücher.test".encode() in body, body
    # the web view's JSON API (POST /api/v1/track)
    req = urllib.request.Request(
        "http://127.0.0.1:%d/api/v1/track" % hport,
        data=json.dumps({"envid": envid, "secret": secret}).encode(),
        headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as f:
        text = f.read().decode("utf-8")
    assert JUERGEN in json.dumps(json.loads(text), ensure_ascii=False), text


def test_forms_of_one_address_are_one_recipient(daemon_factory):
    d = daemon_factory(LOCAL)
    forms = [JUERGEN, "jürgen@xn--bcher-kva.test",
             "ju\u0308rgen@BÜCHER.test"]          # decomposed ü (NFD)
    with d.connect() as c:
        c.ehlo()
        assert_reply(c.cmd("MAIL FROM:<a@example.org> SMTPUTF8"), 250)
        for f in forms:
            assert_reply(c.cmd("RCPT TO:<%s>" % f), 250)
        assert c.cmd("DATA").code == 354
        c.send(dot_stuff(utf8_msg(JUERGEN)))
        qid = queued_qid(c.reply())
    read_one(d, "xn--bcher-kva.test", "jürgen")
    assert len(d.show_json(qid)["recipients"]) == 1
    assert os.listdir(os.path.join(d.mail)) == ["xn--bcher-kva.test"]
    assert os.listdir(os.path.join(d.mail, "xn--bcher-kva.test")) == ["jürgen"]


def test_local_domains_kept_as_a_labels():
    import tempfile
    from conftest import parse_config_dump, run_waymarkd
    with tempfile.TemporaryDirectory() as t:
        conf = os.path.join(t, "w.conf")
        with open(conf, "w", encoding="utf-8") as f:
            f.write("local_domains = bücher.test, 例子.test, example.org\n")
        p = run_waymarkd("-n", "-f", conf)
        assert p.returncode == 0, p.err
        assert parse_config_dump(p.out)["local_domains"] == \
            "xn--bcher-kva.test, xn--fsqu00a.test, example.org", p.out
        with open(conf, "w", encoding="utf-8") as f:
            f.write("local_domains = -bü.test\n")
        p = run_waymarkd("-n", "-f", conf)
        assert p.returncode == 1 and "local_domains" in p.err, p.err
