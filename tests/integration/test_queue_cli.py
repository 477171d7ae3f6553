"""`waymark` CLI: queue / show / flush over the control socket, JSON schema,
a deferred local delivery shown with its error and delivered after a flush,
exit codes."""

import json
import os
import re
import stat

from conftest import (QID_RE, make_message, queued_qid, split_message,
                      wait_for)

MSG_KEYS = ("queue_id", "arrival_time", "size", "sender", "envid", "state",
            "state_value", "recipients")
RCPT_KEYS = ("address", "orcpt", "status", "next_attempt", "last_reply", "remote_mta")
STATUSES = ("queued", "deferred", "delivered", "relayed", "transferred",
            "failed", "expanded")


def send(d, sender, rcpts, msg):
    with d.connect() as c:
        c.ehlo()
        return queued_qid(c.mail_transaction(sender, rcpts, msg))


def test_empty_queue(daemon):
    p = daemon.cli("queue", "--json", check=0)
    assert p.out == "", p.out
    daemon.cli("queue", check=0)
    daemon.cli("flush", check=0)


def test_control_socket_mode(daemon):
    st = os.stat(daemon.control)
    assert stat.S_ISSOCK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o660, oct(st.st_mode)


def test_deferred_delivery_then_flush(daemon):
    d = daemon
    # a plain file where the domain's folder must go: delivery cannot succeed
    os.makedirs(d.mail, exist_ok=True)
    blocker = os.path.join(d.mail, "example.org")
    with open(blocker, "w") as f:
        f.write("not a directory\n")
    msg = make_message(subject="deferred", sender="sender@example.com",
                       to="user@example.org")
    qid = send(d, "sender@example.com", ["user@example.org"], msg)

    def deferred():
        for m in d.queue_json():
            if m["queue_id"] != qid:
                continue
            r = m["recipients"][0]
            if r["status"] == "deferred" and r["last_reply"]:
                return m
        return None
    m = wait_for(deferred, timeout=60, interval=0.2, what="recipient deferred")

    for k in MSG_KEYS:
        assert k in m, "queue --json lacks %r: %r" % (k, m)
    assert m["sender"] == "sender@example.com"
    assert m["state"] == "normal"
    assert m["envid"] is None and m["state_value"] is None
    assert isinstance(m["arrival_time"], int) and m["arrival_time"] > 1.6e9
    assert m["size"] > len(msg) - 10
    assert len(m["recipients"]) == 1
    r = m["recipients"][0]
    for k in RCPT_KEYS:
        assert k in r, "recipient lacks %r: %r" % (k, r)
    assert r["address"] == "user@example.org"
    lr = r["last_reply"]
    assert set(("code", "enhanced", "text")) <= set(lr), lr
    assert lr["enhanced"].startswith("4."), lr
    assert 400 <= lr["code"] < 500, lr
    assert lr["text"], lr
    assert isinstance(r["next_attempt"], int) and r["next_attempt"] >= m["arrival_time"]

    # the human view shows the QID, the recipient and the error
    p = d.cli("queue", check=0)
    assert qid in p.out, p.out
    assert "user@example.org" in p.out, p.out
    assert lr["enhanced"] in p.out or lr["text"][:30] in p.out, p.out
    assert "deferred" in p.out, p.out

    # queue --state filter
    out = d.cli("queue", "--state", "normal", "--json", check=0).out
    assert [json.loads(l)["queue_id"] for l in out.splitlines()] == [qid]
    assert d.cli("queue", "--state", "quarantine", "--json", check=0).out == ""

    # nothing was delivered meanwhile
    assert os.path.isfile(blocker)
    os.unlink(blocker)
    d.cli("flush", check=0)
    (data,) = d.wait_mails("user@example.org", 1, timeout=60)
    rp, fields, rest = split_message(data)
    assert rp == "Return-Path: <sender@example.com>"
    assert "id %s" % qid in fields[0]
    assert rest == msg.replace(b"\r\n", b"\n")

    wait_for(lambda: d.queue_json() == [], timeout=60, interval=0.2,
             what="an empty queue (finished messages are not listed)")
    assert d.cli("queue", "--json", check=0).out == ""

    # show: the message object plus its events, in time order
    sh = d.show_json(qid)
    assert sh["queue_id"] == qid
    assert sh["recipients"][0]["status"] == "delivered"
    ev = sh["events"]
    kinds = [e["kind"] for e in ev]
    for k in ("accepted", "attempt", "deferred", "flush", "delivered"):
        assert k in kinds, "events lack %r: %r" % (k, kinds)
    times = [e["time"] for e in ev]
    assert times == sorted(times), ev
    first = {k: kinds.index(k) for k in ("accepted", "deferred", "flush", "delivered")}
    assert first["accepted"] < first["deferred"] < first["flush"] < first["delivered"], kinds
    assert kinds.index("attempt") < first["deferred"], kinds
    for e in ev:
        assert set(("time", "kind", "detail")) <= set(e), e

    # human show lists the events too
    p = d.cli("show", qid, check=0)
    assert qid in p.out
    for k in ("accepted", "deferred", "delivered"):
        assert k in p.out, p.out
    assert len(d.mail_files("user@example.org")) == 1


def test_queue_json_lists_each_recipient(daemon):
    d = daemon
    os.makedirs(d.mail, exist_ok=True)
    blocker = os.path.join(d.mail, "localhost")
    open(blocker, "w").close()
    qid = send(d, "", ["a@localhost", "b@localhost", "c@example.org"], make_message())

    def state():
        for m in d.queue_json():
            if m["queue_id"] == qid:
                st = {r["address"]: r["status"] for r in m["recipients"]}
                if st.get("a@localhost") == "deferred":
                    return m
        return None
    m = wait_for(state, timeout=60, interval=0.2, what="deferred recipients")
    assert m["sender"] == ""
    st = {r["address"]: r["status"] for r in m["recipients"]}
    assert set(st) == {"a@localhost", "b@localhost", "c@example.org"}
    assert all(s in STATUSES for s in st.values())
    d.wait_mails("c@example.org", 1)
    wait_for(lambda: {r["address"]: r["status"]
                      for x in d.queue_json() if x["queue_id"] == qid
                      for r in x["recipients"]}.get("c@example.org") == "delivered",
             timeout=30, interval=0.2, what="c@example.org delivered")
    os.unlink(blocker)
    d.cli("flush", check=0)
    d.wait_mails("a@localhost", 1)
    d.wait_mails("b@localhost", 1)
    d.wait_queue_drained()
    assert len(d.mail_files("c@example.org")) == 1


def test_show_known_message(daemon):
    qid = send(daemon, "s@example.com", ["user@example.org"], make_message())
    daemon.wait_mails("user@example.org", 1)
    sh = daemon.show_json(qid)
    assert sh["queue_id"] == qid
    assert sh["sender"] == "s@example.com"
    assert [e["kind"] for e in sh["events"]][0] == "accepted"


def test_unknown_qid_exit_1(daemon):
    p = daemon.cli("show", "AAAAAAAAAAAAAAAA", check=1)
    assert p.err.startswith("waymark:"), p.err
    daemon.cli("show", "AAAAAAAAAAAAAAAA", "--json", check=1)


def test_daemon_down_exit_1(daemon_factory):
    d = daemon_factory(start=False)
    p = d.cli("queue", check=1)
    assert p.err.startswith("waymark:"), p.err
    d.cli("queue", "--json", check=1)
    d.cli("flush", check=1)
    d.cli("show", "AAAAAAAAAAAAAAAA", check=1)


def test_usage_errors_exit_2(daemon):
    for args in (["bogus-command"], ["show"], ["queue", "--bogus"],
                 ["show", "a", "b", "c"], []):
        p = daemon.cli(*args)
        assert p.returncode == 2, (args, p.returncode, p.out, p.err)
        assert p.err, args


def test_qid_format(daemon):
    qids = [send(daemon, "s@example.com", ["user@example.org"], make_message())
            for _ in range(5)]
    assert len(set(qids)) == 5
    for q in qids:
        assert re.fullmatch(QID_RE, q)
