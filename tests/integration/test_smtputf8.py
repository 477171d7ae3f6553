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
