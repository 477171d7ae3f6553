"""Failure notices (RFC 5321 6.1) as failed DSNs: a recipient that expires
after queue_lifetime (a plain file blocks its domain's Maildir folder) yields
ONE DSN from <> to the sender, a multipart/report;
report-type=delivery-status (RFC 3464) naming the recipient with Action
failed and Status 4.4.7, returning the whole message (no RET given); a
message from <> yields none, and a DSN that cannot be delivered is reported
to postmaster once, never in a loop.  Bounded polling only, no timing
assertions.  The other DSN kinds: test_dsn.py."""

import email
import email.policy
import os
import re
import time

from conftest import QID_RE, make_message, queued_qid, wait_for

EXPIRY = {"queue_lifetime": "2s", "retry_schedule": "1s"}


def block_domain(d, domain="example.org"):
    """A plain file where mailbox_root/<domain>/ must go: delivery defers."""
    os.makedirs(d.mail, exist_ok=True)
    with open(os.path.join(d.mail, domain), "w") as f:
        f.write("not a directory\n")


def send(d, sender, rcpts, msg):
    with d.connect() as c:
        c.ehlo()
        return queued_qid(c.mail_transaction(sender, rcpts, msg))


def rcpt_status(d, qid):
    for m in d.queue_json():
        if m["queue_id"] == qid:
            return [r["status"] for r in m["recipients"]]
    return None


def parse_notice(data):
    assert data.startswith(b"Return-Path: <>\n"), data[:200]
    assert b"\r" not in data            # Maildir files have LF line ends
    return email.message_from_bytes(data, policy=email.policy.default)


def test_expired_recipient_gets_a_notice(daemon_factory):
    d = daemon_factory(EXPIRY)
    block_domain(d)
    sender = "someone@localhost"
    msg = make_message(subject="will expire", sender=sender,
                       to="user@example.org")
    qid = send(d, sender, ["user@example.org"], msg)

    mails = d.wait_mails(sender, 1, timeout=60)
    # the original is failed (expired) and the notice names it
    wait_for(lambda: rcpt_status(d, qid) in (["failed"], None), timeout=30,
             interval=0.2, what="the original recipient to fail")
    n = parse_notice(mails[0])

    assert n["From"].addresses[0].addr_spec == "MAILER-DAEMON@mx.test", n["From"]
    assert n["To"].addresses[0].addr_spec == sender, n["To"]
    assert n["Subject"] == "Undelivered Mail Returned to Sender"
    assert n["Auto-Submitted"] == "auto-replied"
    assert n["Message-ID"] and "@mx.test>" in n["Message-ID"]
    assert n.get_content_type() == "multipart/report"
    assert n.get_param("report-type") == "delivery-status"
    parts = list(n.iter_parts())
    assert [p.get_content_type() for p in parts] == [
        "text/plain", "message/delivery-status", "message/rfc822"], parts

    human = parts[0].get_content()
    assert "mx.test" in human
    assert "<user@example.org>" in human, human

    # message/delivery-status: per-message block, then one per recipient
    groups = parts[1].get_payload()
    assert len(groups) == 2, groups
    per_msg, per_rcpt = groups
    assert per_msg["Reporting-MTA"] == "dns; mx.test"
    assert per_msg["X-Waymark-Queue-ID"] == qid
    assert per_msg["Arrival-Date"]
    assert re.sub(r"\s+", "", per_rcpt["Final-Recipient"]) == "rfc822;user@example.org"
    assert per_rcpt["Action"] == "failed"
    assert per_rcpt["Status"] == "4.4.7"
    assert per_rcpt["Remote-MTA"] is None    # a local failure
    assert per_rcpt["Last-Attempt-Date"]

    # no RET: the whole message, our trace field first
    orig = parts[2].get_payload()[0]
    assert orig["Subject"] == "will expire"
    assert "id %s" % qid in orig["Received"], orig["Received"]
    assert orig.get_content().strip() == "Hello."

    # the notice itself is an ordinary message from <>, delivered locally
    log = d.log_text()
    m = re.search(r"qid=(%s) dsn=failed for qid=%s rcpts=1\b" % (QID_RE, qid), log)
    assert m, log[-3000:]
    nqid = m.group(1)
    assert "Received: by mx.test (Waymark) id %s;" % nqid in mails[0].decode()
    show = d.show_json(qid)
    ev = [e for e in show["events"] if e["kind"] == "dsn"]
    assert len(ev) == 1, show["events"]
    assert ev[0]["detail"] == "kind=failed qid=%s rcpts=<user@example.org>" % nqid

    # exactly one notice, even after further scheduler passes
    d.wait_queue_drained(timeout=30)
    assert len(d.mails(sender)) == 1


def test_one_notice_for_all_failed_recipients_of_a_batch(daemon_factory):
    d = daemon_factory(EXPIRY)
    block_domain(d)
    sender = "someone@localhost"
    rcpts = ["u1@example.org", "u2@example.org"]
    qid = send(d, sender, rcpts, make_message(subject="two", sender=sender,
                                              to=rcpts[0]))
    d.wait_mails(sender, 1, timeout=60)
    d.wait_queue_drained(timeout=30)
    mails = d.mails(sender)
    # the two recipients normally share a job, hence one notice; count
    # every recipient over the notices that did arrive
    named = []
    for data in mails:
        n = parse_notice(data)
        report = list(n.iter_parts())[1].get_payload()
        for g in report[1:]:
            assert g["Action"] == "failed"
            named.append(re.sub(r"\s+", "", g["Final-Recipient"]))
    assert sorted(named) == ["rfc822;" + r for r in rcpts], named
    events = [e for e in d.show_json(qid)["events"] if e["kind"] == "dsn"]
    assert len(events) == len(mails), events


def test_no_notice_for_null_sender(daemon_factory):
    d = daemon_factory(EXPIRY)
    block_domain(d)
    watcher = "someone@localhost"
    msg = make_message(subject="from null", sender=watcher,
                       to="user@example.org")
    qid = send(d, "", ["user@example.org"], msg)
    wait_for(lambda: rcpt_status(d, qid) in (["failed"], None), timeout=60,
             interval=0.2, what="the recipient to expire")
    # margin: a notice would be queued in the same batch and delivered
    # within a scheduler pass or two
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        assert d.mail_files(watcher) == []
        time.sleep(0.2)
    assert not os.path.exists(os.path.join(d.mail, "localhost"))
    assert "for qid=%s" % qid not in d.log_text()
    show = d.show_json(qid)
    assert not [e for e in show["events"] if e["kind"] == "dsn"]
    assert show["recipients"][0]["status"] == "failed"
    assert show["recipients"][0]["last_reply"]["enhanced"] == "4.4.7"


def test_no_notice_for_a_failed_notice(daemon_factory):
    # the sender's own domain is blocked too: the DSN expires in turn;
    # being from <> it produces no DSN, only a postmaster notice, which
    # (postmaster@example.org is blocked as well) expires and is only logged
    d = daemon_factory(EXPIRY)
    block_domain(d)
    sender = "someone@example.org"
    qid = send(d, sender, ["user@example.org"],
               make_message(subject="loop?", sender=sender, to="user@example.org"))
    m = wait_for(lambda: re.search(r"qid=(%s) dsn=failed for qid=%s rcpts=1\b"
                                   % (QID_RE, qid), d.log_text()),
                 timeout=60, interval=0.2, what="the DSN to be queued")
    nqid = m.group(1)
    show = wait_for(lambda: (lambda s: s if s["recipients"][0]["status"] == "failed"
                             else None)(d.show_json(nqid)),
                    timeout=60, interval=0.2, what="the DSN to expire")
    assert show["sender"] == ""
    assert show["recipients"][0]["address"] == sender
    pm = wait_for(lambda: re.search(r"qid=(%s) dsn=failed \(postmaster\) for "
                                    r"qid=%s rcpts=1\b" % (QID_RE, nqid),
                                    d.log_text()),
                  timeout=60, interval=0.2, what="the postmaster notice")
    pqid = pm.group(1)
    # the notice's event follows the failure: read the events again
    show = wait_for(lambda: (lambda s: s if any(
        e["kind"] == "dsn" for e in s["events"]) else None)(
        d.show_json(nqid)), timeout=30, interval=0.2,
        what="the notice's event")
    ev = [e for e in show["events"] if e["kind"] == "dsn"]
    assert len(ev) == 1, show["events"]
    assert ev[0]["detail"] == ("kind=failed qid=%s to=<postmaster@example.org> "
                               "rcpts=<%s>" % (pqid, sender))
    wait_for(lambda: d.show_json(pqid)["recipients"][0]["status"] == "failed",
             timeout=60, interval=0.2, what="the postmaster notice to expire")
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        assert "for qid=%s" % pqid not in d.log_text()
        time.sleep(0.2)
    assert not [e for e in d.show_json(pqid)["events"] if e["kind"] == "dsn"]
    assert len(re.findall(r" dsn=failed for qid=", d.log_text())) == 1
    assert len(re.findall(r" dsn=failed \(postmaster\) for qid=",
                          d.log_text())) == 1
