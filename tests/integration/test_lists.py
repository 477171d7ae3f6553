"""
`lists = FILE`: mailing lists with members and moderators (issue 9,
"moderation").

A member's post is expanded at once: every member gets the message with
the envelope sender <LIST-owner@DOMAIN>, and nothing of the post's ENVID,
NOTIFY, RET or ORCPT (RFC 3461 5.2.7.1).  A non-member's post to a
moderated list waits in state moderation/not-member from reception (the
hop's own Received field says so, RFC 6729); the moderators get a notice
naming the queue id, the sender and the subject; `waymark release QID`
approves it (the members get it, with the reception field and the
release field, in order, dated as the events say; NOTIFY=SUCCESS gets a
"delivered" DSN), `waymark delete QID --bounce` rejects it (a failure
DSN, nothing to the members).  A bad lists file is refused at start and
on SIGHUP (the old lists stay), with FILE:LINE.

The Received fields are parsed by test_states.parse_received, written
from the ABNF of RFC 5321 4.4 and RFC 6729 3.
"""

import os
import re
import signal
import time

from conftest import (assert_reply, dot_stuff, make_message, queued_qid,
                      run_waymarkd, split_message, wait_for)
from test_states import events, sub_conn, sub_daemon, waymark_fields

LIST = "announce@example.org"
OWNER = "announce-owner@example.org"
MEMBERS = ["alice@example.org", "bob@example.org"]
MODERATOR = "carol@example.org"

LISTS = """\
# test lists
announce@example.org: members=alice@example.org,
\tbob@example.org
\tmoderators=carol@example.org

open@example.org: members=alice@example.org moderated=no
"""


def list_daemon(daemon_factory, text=LISTS, config=None, files=None):
    cfg = {"lists": "lists"}
    cfg.update(config or {})
    d = daemon_factory(cfg, start=False)
    files = dict(files or {})
    files["lists"] = text
    for name, content in files.items():
        with open(os.path.join(d.dir, name), "w") as f:
            f.write(content)
        os.chmod(os.path.join(d.dir, name), 0o644)
    d.lists = os.path.join(d.dir, "lists")
    return d.start()


def post(d, sender, rcpt=LIST, subject="hello list", mail_params="",
         rcpt_params=""):
    with d.connect() as c:
        c.ehlo()
        assert_reply(c.cmd("MAIL FROM:<%s>%s" % (
            sender, " " + mail_params if mail_params else "")), 250, "2.1.0")
        assert_reply(c.cmd("RCPT TO:<%s>%s" % (
            rcpt, " " + rcpt_params if rcpt_params else "")), 250, "2.1.5")
        r = c.cmd("DATA")
        assert r.code == 354, r
        c.send(dot_stuff(make_message(subject=subject, sender=sender,
                                      to=rcpt)))
        return queued_qid(c.reply())


def copy_qid(d, addr):
    """The queue id of the message in addr's Maildir (from the file name
    <arrival>.<QID>_<index>.<hostname>)."""
    name = os.path.basename(d.mail_files(addr)[0])
    return name.split(".")[1].split("_")[0]


def held_qids(d):
    p = d.cli("queue", "--state", "moderation", "--json", check=0)
    return [l for l in p.out.splitlines() if l.strip()]


def test_member_post_is_expanded_at_once(daemon_factory):
    d = list_daemon(daemon_factory, config={"local_recipients": "rcpts"},
                    files={"rcpts": "alice@example.org\nbob@example.org\n"
                           "carol@example.org\n"})
    qid = post(d, "bob@example.org", mail_params="RET=HDRS ENVID=post-1",
               rcpt_params="NOTIFY=FAILURE ORCPT=rfc822;announce@example.org")
    for m in MEMBERS:
        data = d.wait_mails(m, 1)[0]
        rp, _, rest = split_message(data)
        assert rp == "Return-Path: <%s>" % OWNER, rp
        assert b"Subject: hello list" in rest
        f = waymark_fields(data)
        assert len(f) == 1, f           # handled in one pass
        assert f[0]["state"] is None and f[0]["id"] == qid, f
        assert f[0]["for"] == "<%s>" % LIST, f
    assert not d.mail_files(MODERATOR)
    assert not held_qids(d)
    post_m = d.show_json(qid)
    assert post_m["state"] == "normal"
    r = post_m["recipients"][0]
    assert (r["address"], r["status"]) == (LIST, "expanded"), r
    assert r["last_reply"]["code"] == 250
    new = copy_qid(d, "alice@example.org")
    assert new != qid and new in r["last_reply"]["text"], r
    assert copy_qid(d, "bob@example.org") == new
    # RFC 3461 5.2.7.1: nothing derived from the post's envelope
    cp = d.show_json(new)
    assert cp["sender"] == OWNER, cp
    assert not cp.get("envid"), cp
    assert sorted(x["address"] for x in cp["recipients"]) == MEMBERS
    assert all(not x.get("orcpt") for x in cp["recipients"]), cp
    assert all(x["status"] == "delivered" for x in cp["recipients"]), cp
    ex = events(d, qid, "expanded")
    assert len(ex) == 1 and new in ex[0]["detail"], ex
    # the list and its owner need no local_recipients entry; others do
    with d.connect() as c:
        c.ehlo()
        assert_reply(c.cmd("MAIL FROM:<alice@example.org>"), 250)
        assert_reply(c.cmd("RCPT TO:<%s>" % OWNER), 250, "2.1.5")
        assert_reply(c.cmd("RCPT TO:<nobody@example.org>"), 550, "5.1.1")
    time.sleep(0.5)
    assert len(d.mail_files("alice@example.org")) == 1
    # an open list takes anyone's post
    post(d, "stranger@example.net", rcpt="open@example.org")
    d.wait_mails("alice@example.org", 2)
    assert not held_qids(d)


def test_moderation_then_approval(daemon_factory):
    d = list_daemon(daemon_factory)
    t0 = time.time()
    qid = post(d, "eve@example.org", subject="please post this",
               mail_params="ENVID=eve-1",
               rcpt_params="NOTIFY=SUCCESS,FAILURE")
    held = held_qids(d)
    assert len(held) == 1 and qid in held[0], held
    m = d.show_json(qid)
    assert (m["state"], m["state_value"]) == ("moderation", "not-member"), m
    assert "not a member" in m["state_reason"], m
    st = events(d, qid, "state")
    assert len(st) == 1 and st[0]["detail"].startswith(
        "from=normal to=moderation/not-member"), st
    assert re.search(r'actor="lists %s:2"' % re.escape(d.lists),
                     st[0]["detail"]), st
    # the moderator's notice: queue id, sender, subject, the commands
    notice = d.wait_mails(MODERATOR, 1)[0].decode()
    assert notice.startswith("Return-Path: <%s>" % OWNER), notice[:200]
    for want in (qid, "<eve@example.org>", "please post this",
                 "waymark release %s" % qid,
                 "waymark delete %s --bounce" % qid):
        assert want in notice, (want, notice)
    assert any(e["kind"] == "notice" for e in events(d, qid)), events(d, qid)
    # nothing reaches the members while it waits
    time.sleep(1.2)
    for mb in MEMBERS:
        assert not d.mail_files(mb), mb
    assert d.show_json(qid)["state"] == "moderation"

    p = d.cli("release", qid, check=0)
    assert "released" in p.out, p.out
    t_rel = time.time()
    for mb in MEMBERS:
        data = d.wait_mails(mb, 1)[0]
        rp, _, rest = split_message(data)
        assert rp == "Return-Path: <%s>" % OWNER, rp
        assert b"Subject: please post this" in rest
        f = waymark_fields(data)
        assert [x["state"] for x in f] == ["normal", "moderation"], f
        release, recv = f
        assert recv["id"] == qid and release["id"] == qid, f
        assert recv["value"] == "not-member", recv
        assert "not a member" in recv["reason"], recv
        assert recv["for"] == "<%s>" % LIST, recv
        assert release["from"] == "mx.test", release
        # dates: reception <= release, each as the events say
        assert t0 - 2 <= recv["date"] <= release["date"] <= t_rel + 2, f
        assert release["date"] >= recv["date"] + 1, f
        st = events(d, qid, "state")
        assert [e["detail"].split()[1] for e in st] == [
            "to=moderation/not-member", "to=normal"], st
        assert abs(st[0]["time"] - recv["date"]) < 1.5, (st, recv)
        assert abs(st[1]["time"] - release["date"]) < 1.5, (st, release)
        assert 'actor="operator root"' in st[1]["detail"], st
    new = copy_qid(d, MEMBERS[0])
    cp = d.show_json(new)
    assert cp["sender"] == OWNER and not cp.get("envid"), cp
    r = d.show_json(qid)["recipients"][0]
    assert r["status"] == "expanded", r
    # NOTIFY=SUCCESS: delivery to the list is final delivery (5.2.7.1)
    dsn = d.wait_mails("eve@example.org", 1)[0].decode()
    assert "Action: delivered" in dsn, dsn
    assert "Final-Recipient: rfc822; %s" % LIST in dsn, dsn
    assert "Original-Envelope-Id: eve-1" in dsn, dsn
    assert qid in dsn
    # the moderator got exactly one notice; a second release is refused
    assert len(d.mail_files(MODERATOR)) == 1
    assert d.cli("release", qid).returncode == 1


def test_moderation_then_rejection(daemon_factory):
    d = list_daemon(daemon_factory)
    qid = post(d, "eve@example.org", subject="spam spam")
    notice = d.wait_mails(MODERATOR, 1)[0].decode()
    assert qid in notice and "spam spam" in notice
    p = d.cli("delete", qid, "--bounce", check=0)
    assert "deleted" in p.out, p.out
    dsn = d.wait_mails("eve@example.org", 1)[0].decode()
    assert "Action: failed" in dsn and "Status: 5.7.1" in dsn, dsn
    assert "Final-Recipient: rfc822; %s" % LIST in dsn, dsn
    assert "rejected by the list moderator" in dsn, dsn
    m = d.show_json(qid)
    assert m["recipients"][0]["status"] == "failed", m
    assert any(e["kind"] == "deleted" for e in m["events"])
    time.sleep(1.5)
    for mb in MEMBERS:
        assert not d.mail_files(mb), mb
    assert not held_qids(d)
    assert d.cli("release", qid).returncode == 1


def test_approval_survives_kill9_once(daemon_factory):
    """kill -9 right after `waymark release` answered: each member gets
    the post once."""
    d = list_daemon(daemon_factory)
    qid = post(d, "eve@example.org")
    d.wait_mails(MODERATOR, 1)
    d.kill9()
    d.start()
    assert d.show_json(qid)["state"] == "moderation"
    assert d.cli("release", qid).returncode == 0
    d.kill9()
    d.start()
    for mb in MEMBERS:
        d.wait_mails(mb, 1)
    time.sleep(1.5)
    for mb in MEMBERS:
        assert len(d.mail_files(mb)) == 1, mb
    assert len(d.mail_files(MODERATOR)) == 1
    assert d.show_json(qid)["recipients"][0]["status"] == "expanded"


def test_moderation_replaces_a_futurerelease_hold(daemon_factory, tmp_path):
    """HOLDFOR would release the post without a moderator: moderation
    wins, and the approval releases it."""
    lists = tmp_path / "lists"
    lists.write_text(LISTS)
    os.chmod(str(tmp_path), 0o755)
    os.chmod(str(lists), 0o644)
    d = sub_daemon(daemon_factory, {"lists": str(lists)})
    with sub_conn(d) as c:
        r = c.mail_transaction("eve@example.org", [LIST],
                               make_message(subject="timed", to=LIST),
                               params="HOLDFOR=2")
    qid = queued_qid(r)
    m = d.show_json(qid)
    assert (m["state"], m["state_value"]) == ("moderation", "not-member"), m
    d.wait_mails(MODERATOR, 1)
    time.sleep(3)
    assert d.show_json(qid)["state"] == "moderation"
    for mb in MEMBERS:
        assert not d.mail_files(mb), mb
    d.cli("release", qid, check=0)
    data = d.wait_mails(MEMBERS[0], 1)[0]
    assert [x["state"] for x in waymark_fields(data)] == ["normal",
                                                          "moderation"]


def test_moderated_post_travels_alone(daemon_factory):
    d = list_daemon(daemon_factory)
    with d.connect() as c:
        c.ehlo()
        assert_reply(c.cmd("MAIL FROM:<eve@example.org>"), 250)
        assert_reply(c.cmd("RCPT TO:<dave@example.org>"), 250, "2.1.5")
        assert_reply(c.cmd("RCPT TO:<%s>" % LIST), 452, "4.5.3")
        assert_reply(c.cmd("RSET"), 250)
        assert_reply(c.cmd("MAIL FROM:<eve@example.org>"), 250)
        assert_reply(c.cmd("RCPT TO:<%s>" % LIST.upper()), 250, "2.1.5")
        assert_reply(c.cmd("RCPT TO:<%s>" % LIST), 250, "2.1.5")
        assert_reply(c.cmd("RCPT TO:<dave@example.org>"), 452, "4.5.3")
        assert_reply(c.cmd("RCPT TO:<open@example.org>"), 452, "4.5.3")
        # a member's post goes with other recipients
        assert_reply(c.cmd("RSET"), 250)
        assert_reply(c.cmd("MAIL FROM:<alice@example.org>"), 250)
        assert_reply(c.cmd("RCPT TO:<dave@example.org>"), 250, "2.1.5")
        assert_reply(c.cmd("RCPT TO:<%s>" % LIST), 250, "2.1.5")
        r = c.cmd("DATA")
        assert r.code == 354
        c.send(dot_stuff(make_message(to=LIST, sender="alice@example.org")))
        queued_qid(c.reply())
    d.wait_mails("dave@example.org", 1)
    d.wait_mails("bob@example.org", 1)
    assert not held_qids(d)


def test_bad_lists_file(daemon_factory):
    d = daemon_factory({"lists": "lists"}, start=False)
    path = os.path.join(d.dir, "lists")
    with open(path, "w") as f:
        f.write(LISTS + "\nbroken@example.org: members=x@example.org\n")
    p = run_waymarkd("-n", "-f", d.conf)
    assert p.returncode == 1, p
    assert ("%s:8: list \"broken@example.org\": no moderators" % path) \
        in p.err, p.err
    assert re.search(re.escape(d.conf) + r":\d+: lists: ", p.err), p.err
    # a list outside local_domains
    with open(path, "w") as f:
        f.write("far@example.com: members=x@example.org moderated=no\n")
    p = run_waymarkd("-n", "-f", d.conf)
    assert p.returncode == 1 and "%s:1: list \"far@example.com\": its " \
        "domain is not in local_domains" % path in p.err, p.err
    # the daemon refuses to start with it
    with open(path, "w") as f:
        f.write("a@example.org: members=bob\n")
    p = run_waymarkd("-f", d.conf)
    assert p.returncode == 1 and "%s:1: " % path in p.err, p.err


def test_sighup_bad_file_keeps_old_lists(daemon_factory):
    d = list_daemon(daemon_factory)
    with open(d.lists, "w") as f:
        f.write(LISTS.replace("bob@example.org", "bob@"))
    d.signal(signal.SIGHUP)
    wait_for(lambda: "reload failed" in d.log_text(), timeout=20,
             what="the refused reload")
    assert "%s:2: " % d.lists in d.log_text()
    post(d, "alice@example.org")
    d.wait_mails("bob@example.org", 1)      # the old lists still hold
    # a good file is taken
    with open(d.lists, "w") as f:
        f.write(LISTS.replace("\tbob@example.org", "\tdave@example.org"))
    d.signal(signal.SIGHUP)
    wait_for(lambda: "configuration reloaded" in d.log_text(), timeout=20,
             what="the reload")
    post(d, "alice@example.org", subject="second")
    d.wait_mails("dave@example.org", 1)
    time.sleep(0.5)
    assert len(d.mail_files("bob@example.org")) == 1


def test_policy_hold_keeps_moderation(daemon_factory):
    """A policy rule that matches a non-member's post does not take it
    out of moderation: no member gets it before a moderator decides."""
    d = list_daemon(daemon_factory, config={"policy": "policy.conf"},
                    files={"policy.conf": "hold rcpt=announce@*\n"})
    qid = post(d, "stranger@example.net")
    m = d.show_json(qid)
    assert (m["state"], m["state_value"]) == ("moderation", "not-member"), m
    assert "kept in moderation" in d.log_text()
    d.wait_mails(MODERATOR, 1)          # the notice went out
    time.sleep(1)
    for a in MEMBERS:
        assert not d.mail_files(a)
