"""Delivery status notifications (RFC 3461, RFC 3464, RFC 6522) of every
kind, end to end: each DSN is taken from the sender's Maildir
(someone@localhost), parsed with the email package and checked field by
field: report-type, Action, Status, Original-Recipient (ORCPT),
Original-Envelope-Id (ENVID), the returned content per RET (the whole
message, or its header section past max_dsn_return_size and for every
kind but failed).  Also: NOTIFY=NEVER and NOTIFY without FAILURE give no
failed DSN; the delayed DSN is sent once per recipient, even across a
restart; relayed DSNs only for next hops without DSN; no DSN about a
message from <>.  Bounded polling only, no timing assertions."""

import email
import email.policy
import os
import re
import shutil
import subprocess
import time

import pytest

from conftest import QID_RE, assert_reply, dot_stuff, make_message, \
    queued_qid, wait_for
from test_dsn_params import RecordingHop

SENDER = "someone@localhost"
EXPIRY = {"queue_lifetime": "2s", "retry_schedule": "1s"}


def block_domain(d, domain="example.org"):
    """A plain file where mailbox_root/<domain>/ must go: delivery defers."""
    os.makedirs(d.mail, exist_ok=True)
    with open(os.path.join(d.mail, domain), "w") as f:
        f.write("not a directory\n")


def transaction(d, mail, rcpts, content):
    """Raw MAIL/RCPT argument text, then DATA; returns the qid."""
    with d.connect() as c:
        c.ehlo()
        assert_reply(c.cmd("MAIL " + mail), 250, "2.")
        for r in rcpts:
            assert_reply(c.cmd("RCPT " + r), 250, "2.")
        r = c.cmd("DATA")
        assert r.code == 354, r
        c.send(dot_stuff(content))
        return queued_qid(c.reply())


def parse(data):
    assert data.startswith(b"Return-Path: <>\n"), data[:200]
    return email.message_from_bytes(data, policy=email.policy.default)


def report(n):
    """(parts, per-message group, per-recipient groups by Final-Recipient)"""
    assert n.get_content_type() == "multipart/report"
    assert n.get_param("report-type") == "delivery-status"
    assert n["Auto-Submitted"] == "auto-replied"
    assert n["From"].addresses[0].addr_spec == "MAILER-DAEMON@mx.test"
    assert n["To"].addresses[0].addr_spec == SENDER
    parts = list(n.iter_parts())
    assert parts[0].get_content_type() == "text/plain"
    assert parts[1].get_content_type() == "message/delivery-status"
    groups = parts[1].get_payload()
    per_msg = groups[0]
    assert per_msg["Reporting-MTA"] == "dns; mx.test"
    assert per_msg["Arrival-Date"]
    rcpts = {}
    for g in groups[1:]:
        fr = re.sub(r"\s+", "", g["Final-Recipient"])
        assert fr.startswith("rfc822;")
        rcpts[fr[len("rfc822;"):]] = g
    return parts, per_msg, rcpts


def dsn_events(d, qid):
    return [e["detail"] for e in d.show_json(qid)["events"]
            if e["kind"] == "dsn"]


def no_new_mail(d, addr, count, seconds=3):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert len(d.mail_files(addr)) == count
        time.sleep(0.2)


# ------------------------------------------------------------------ failed

@pytest.mark.parametrize("ret,body_kb,cap,want", [
    ("", 1, None, "message/rfc822"),
    ("RET=FULL", 1, None, "message/rfc822"),
    ("RET=HDRS", 1, None, "text/rfc822-headers"),
    ("RET=FULL", 8, "4k", "text/rfc822-headers"),
])
def test_failed_dsn(daemon_factory, ret, body_kb, cap, want):
    cfg = dict(EXPIRY)
    if cap:
        cfg["max_dsn_return_size"] = cap
    d = daemon_factory(cfg)
    block_domain(d)
    body = (b"line of the body " * 4 + b"\r\n") * (body_kb * 1024 // 70)
    msg = make_message(subject="fails", sender=SENDER, to="u1@example.org",
                       body=b"BODY-START\r\n" + body)
    mail = "FROM:<%s> ENVID=env+2Bid-1 %s" % (SENDER, ret)
    qid = transaction(d, mail.strip(), [
        "TO:<u1@example.org> NOTIFY=FAILURE ORCPT=rfc822;U1+2Bx@Example.ORG",
        "TO:<u2@example.org>"], msg)
    mails = d.wait_mails(SENDER, 1, timeout=60)
    n = parse(mails[0])
    assert n["Subject"] == "Undelivered Mail Returned to Sender"
    parts, per_msg, rcpts = report(n)
    assert per_msg["Original-Envelope-Id"] == "env+id-1"
    assert sorted(rcpts) == ["u1@example.org", "u2@example.org"]
    for addr, g in rcpts.items():
        assert g["Action"] == "failed"
        assert g["Status"] == "4.4.7"
        assert g["Last-Attempt-Date"]
        assert g["Will-Retry-Until"] is None
    assert rcpts["u1@example.org"]["Original-Recipient"] == \
        "rfc822;U1+x@Example.ORG"
    assert rcpts["u2@example.org"]["Original-Recipient"] is None
    assert len(parts) == 3
    assert parts[2].get_content_type() == want
    if want == "message/rfc822":
        orig = parts[2].get_payload()[0]
        assert orig["Subject"] == "fails"
        assert "id %s" % qid in orig["Received"]
        assert orig.get_content().startswith("BODY-START")
    else:
        hdrs = parts[2].get_payload()
        assert "Subject: fails" in hdrs
        assert "BODY-START" not in hdrs
    d.wait_queue_drained(timeout=30)
    assert len(d.mails(SENDER)) == 1
    ev = dsn_events(d, qid)
    assert len(ev) == 1 and ev[0].startswith("kind=failed qid="), ev
    assert ev[0].endswith("rcpts=<u1@example.org>,<u2@example.org>"), ev


def test_no_failed_dsn_for_never_or_success_only(daemon_factory):
    d = daemon_factory(EXPIRY)
    block_domain(d)
    msg = make_message(subject="quiet", sender=SENDER, to="u1@example.org")
    qid = transaction(d, "FROM:<%s>" % SENDER, [
        "TO:<u1@example.org> NOTIFY=NEVER",
        "TO:<u2@example.org> NOTIFY=SUCCESS,DELAY"], msg)
    wait_for(lambda: all(r["status"] == "failed"
                         for r in d.show_json(qid)["recipients"]),
             timeout=60, interval=0.2, what="both recipients to fail")
    no_new_mail(d, SENDER, 0)
    assert dsn_events(d, qid) == []


def test_no_dsn_about_a_message_from_null(daemon_factory):
    d = daemon_factory()
    msg = make_message(subject="from null", sender=SENDER, to="u@example.org")
    qid = transaction(d, "FROM:<> RET=FULL",
                      ["TO:<u@example.org> NOTIFY=SUCCESS"], msg)
    d.wait_mails("u@example.org", 1, timeout=30)
    no_new_mail(d, SENDER, 0, seconds=2)
    assert not os.path.exists(os.path.join(d.mail, "localhost"))
    assert dsn_events(d, qid) == []


# ----------------------------------------------------------------- delayed

def test_delayed_dsn_once(daemon_factory):
    d = daemon_factory({"delay_warning": "1s", "retry_schedule": "1s",
                        "queue_lifetime": "1h"})
    block_domain(d)
    msg = make_message(subject="slow", sender=SENDER, to="u1@example.org",
                       body=b"SECRET-BODY\r\n")
    qid = transaction(d, "FROM:<%s> RET=FULL ENVID=slow1" % SENDER, [
        "TO:<u1@example.org> NOTIFY=DELAY",
        "TO:<u2@example.org>",
        "TO:<u3@example.org> NOTIFY=FAILURE"], msg)
    mails = d.wait_mails(SENDER, 1, timeout=60)
    n = parse(mails[0])
    parts, per_msg, rcpts = report(n)
    assert n["Subject"].startswith("Delayed Mail")
    assert per_msg["Original-Envelope-Id"] == "slow1"
    # u3 asked for FAILURE only; u1 and u2 (no NOTIFY) get the warning,
    # in one DSN when they share a delivery job, else in two
    named = set(rcpts)
    for data in d.mails(SENDER)[1:]:
        named |= set(report(parse(data))[2])
    for addr, g in rcpts.items():
        assert g["Action"] == "delayed"
        assert g["Status"].startswith("4.")
        assert g["Will-Retry-Until"]
        assert g["Last-Attempt-Date"]
    assert parts[2].get_content_type() == "text/rfc822-headers"
    assert "SECRET-BODY" not in parts[2].get_payload()
    wait_for(lambda: len(d.mails(SENDER)) >= 1 and
             {a for m in d.mails(SENDER) for a in report(parse(m))[2]} ==
             {"u1@example.org", "u2@example.org"},
             timeout=30, interval=0.2, what="the delayed DSNs of u1 and u2")
    count = len(d.mails(SENDER))
    assert count in (1, 2)
    # more attempts fail: no further warning, not even after a restart
    attempts = d.show_json(qid)["recipients"][0]["attempts"]
    wait_for(lambda: d.show_json(qid)["recipients"][0]["attempts"] >=
             attempts + 2, timeout=30, interval=0.2, what="more attempts")
    d.restart()
    attempts = d.show_json(qid)["recipients"][0]["attempts"]
    wait_for(lambda: d.show_json(qid)["recipients"][0]["attempts"] >=
             attempts + 2, timeout=30, interval=0.2,
             what="more attempts after the restart")
    assert len(d.mails(SENDER)) == count
    ev = dsn_events(d, qid)
    assert len(ev) == count and all(e.startswith("kind=delayed ")
                                    for e in ev), ev
    assert all(r["status"] == "deferred"
               for r in d.show_json(qid)["recipients"])


def test_no_delayed_dsn_when_disabled(daemon_factory):
    d = daemon_factory({"delay_warning": "0", "retry_schedule": "1s",
                        "queue_lifetime": "1h"})
    block_domain(d)
    qid = transaction(d, "FROM:<%s>" % SENDER, ["TO:<u1@example.org>"],
                      make_message(sender=SENDER, to="u1@example.org"))
    wait_for(lambda: d.show_json(qid)["recipients"][0]["attempts"] >= 3,
             timeout=30, interval=0.2, what="three attempts")
    assert d.mail_files(SENDER) == []


# --------------------------------------------------------------- delivered

def test_delivered_dsn(daemon_factory):
    d = daemon_factory()
    msg = make_message(subject="hello", sender=SENDER, to="u1@example.org",
                       body=b"SECRET-BODY\r\n")
    qid = transaction(d, "FROM:<%s> RET=FULL ENVID=ok1" % SENDER, [
        "TO:<u1@example.org> NOTIFY=SUCCESS ORCPT=rfc822;first@example.org",
        "TO:<u2@example.org> NOTIFY=FAILURE"], msg)
    mails = d.wait_mails(SENDER, 1, timeout=30)
    d.wait_queue_drained(timeout=30)
    assert len(d.mails(SENDER)) == 1
    n = parse(mails[0])
    parts, per_msg, rcpts = report(n)
    assert n["Subject"] == "Successful Mail Delivery Report"
    assert per_msg["Original-Envelope-Id"] == "ok1"
    assert list(rcpts) == ["u1@example.org"]
    g = rcpts["u1@example.org"]
    assert g["Action"] == "delivered"
    assert g["Status"].startswith("2.")
    assert g["Original-Recipient"] == "rfc822;first@example.org"
    assert g["Diagnostic-Code"] is None
    assert parts[2].get_content_type() == "text/rfc822-headers"
    assert "Subject: hello" in parts[2].get_payload()
    assert "SECRET-BODY" not in parts[2].get_payload()
    ev = dsn_events(d, qid)
    assert len(ev) == 1 and ev[0].startswith("kind=delivered qid="), ev
    assert ev[0].endswith("rcpts=<u1@example.org>")


@pytest.mark.skipif(shutil.which("msmtp") is None, reason="msmtp missing")
def test_delivered_dsn_msmtp(daemon):
    content = make_message(subject="via msmtp", sender=SENDER,
                           to="a@example.org")
    p = subprocess.run(
        ["msmtp", "--host=127.0.0.1", "--port=%d" % daemon.port,
         "--auth=off", "--tls=off", "--from=" + SENDER,
         "--dsn-notify=success", "--dsn-return=full", "a@example.org"],
        input=content, capture_output=True, timeout=30)
    assert p.returncode == 0, p.stderr
    mails = daemon.wait_mails(SENDER, 1, timeout=30)
    parts, _, rcpts = report(parse(mails[0]))
    assert rcpts["a@example.org"]["Action"] == "delivered"
    assert parts[2].get_content_type() == "text/rfc822-headers"
    assert "Subject: via msmtp" in parts[2].get_payload()


# ----------------------------------------------------------------- relayed

@pytest.mark.parametrize("caps,want", [(["PIPELINING"], True),
                                       (["PIPELINING", "DSN"], False)])
def test_relayed_dsn(daemon_factory, caps, want):
    hop = RecordingHop(caps)
    try:
        d = daemon_factory({"smarthost": "[127.0.0.1]:%d" % hop.port,
                            "retry_schedule": "1s"})
        qid = transaction(d, "FROM:<%s> ENVID=rel1" % SENDER, [
            "TO:<a@remote.test> NOTIFY=SUCCESS,FAILURE "
            "ORCPT=rfc822;orig-a@remote.test",
            "TO:<b@remote.test>"],
            make_message(subject="relay me", sender=SENDER,
                         to="a@remote.test"))
        wait_for(lambda: all(r["status"] == "relayed"
                             for r in d.show_json(qid)["recipients"]),
                 timeout=30, interval=0.2, what="relayed")
        if not want:
            no_new_mail(d, SENDER, 0)
            assert dsn_events(d, qid) == []
            return
        mails = d.wait_mails(SENDER, 1, timeout=30)
        parts, per_msg, rcpts = report(parse(mails[0]))
        assert per_msg["Original-Envelope-Id"] == "rel1"
        assert list(rcpts) == ["a@remote.test"]
        g = rcpts["a@remote.test"]
        assert g["Action"] == "relayed"
        assert g["Status"].startswith("2.")
        assert g["Original-Recipient"] == "rfc822;orig-a@remote.test"
        assert g["Remote-MTA"] == "dns; 127.0.0.1" or \
            g["Remote-MTA"].startswith("dns; ")
        assert g["Diagnostic-Code"].startswith("smtp; 250")
        assert parts[2].get_content_type() == "text/rfc822-headers"
        no_new_mail(d, SENDER, 1, seconds=1)
        ev = dsn_events(d, qid)
        assert len(ev) == 1 and ev[0].startswith("kind=relayed qid="), ev
        # the DSN went to the local sender, not to the hop
        assert hop.delivered == 1
    finally:
        hop.stop()


# ------------------------------------------------- undeliverable DSN

def test_undeliverable_dsn_goes_to_postmaster(daemon_factory):
    cfg = dict(EXPIRY)
    cfg["local_domains"] = "localhost example.org"
    d = daemon_factory(cfg)
    block_domain(d)
    sender = "someone@example.org"     # its DSN cannot be delivered either
    qid = transaction(d, "FROM:<%s>" % sender, ["TO:<u@example.org>"],
                      make_message(subject="lost", sender=sender,
                                   to="u@example.org"))
    mails = d.wait_mails("postmaster@localhost", 1, timeout=60)
    n = email.message_from_bytes(mails[0], policy=email.policy.default)
    assert n["To"].addresses[0].addr_spec == "postmaster@localhost"
    parts = list(n.iter_parts())
    groups = parts[1].get_payload()
    assert groups[1]["Action"] == "failed"
    assert re.sub(r"\s+", "", groups[1]["Final-Recipient"]) == \
        "rfc822;" + sender
    # the returned content is the lost DSN itself
    log = d.log_text()
    m = re.search(r"qid=(%s) dsn=failed for qid=%s " % (QID_RE, qid), log)
    assert m, log[-2000:]
    d.wait_queue_drained(timeout=30)
    assert len(d.mails("postmaster@localhost")) == 1


# ---------------------------------------------------------------- expanded

def test_expanded_dsn(daemon_factory):
    d = daemon_factory({"aliases": "aliases"}, start=False)
    with open(os.path.join(d.dir, "aliases"), "w") as f:
        f.write("list: alice, bob@example.org\n")
    d.start()
    qid = transaction(d, "FROM:<%s> ENVID=exp1 RET=FULL" % SENDER, [
        "TO:<list@example.org> NOTIFY=SUCCESS,FAILURE "
        "ORCPT=rfc822;list@example.org"],
        make_message(subject="to the list", sender=SENDER,
                     to="list@example.org", body=b"SECRET-BODY\r\n"))
    mails = d.wait_mails(SENDER, 1, timeout=30)
    d.wait_mails("bob@example.org", 1, timeout=30)
    d.wait_queue_drained(timeout=30)
    # one DSN: SUCCESS is not passed on to the members (RFC 3461 5.2.7.3)
    assert len(d.mails(SENDER)) == 1
    n = parse(mails[0])
    parts, per_msg, rcpts = report(n)
    assert per_msg["Original-Envelope-Id"] == "exp1"
    assert list(rcpts) == ["list@example.org"]
    g = rcpts["list@example.org"]
    assert g["Action"] == "expanded"
    assert g["Status"].startswith("2.")
    assert g["Original-Recipient"] == "rfc822;list@example.org"
    assert parts[2].get_content_type() == "text/rfc822-headers"
    assert "SECRET-BODY" not in parts[2].get_payload()
    ev = dsn_events(d, qid)
    assert len(ev) == 1 and ev[0].startswith("kind=expanded qid="), ev
    assert ev[0].endswith("rcpts=<list@example.org>")
