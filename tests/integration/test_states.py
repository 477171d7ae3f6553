"""
Handling states (issue 9): RFC 6729 state-annotated Received fields,
FUTURERELEASE (RFC 4865, state timed), the operator's hold / release /
delete, `waymark queue --state`, `show --message`, mailq's marks.

The delivered messages' Received fields are parsed here by a parser
written from the ABNF of RFC 5321 4.4 (Stamp) and RFC 6729 3 (State),
not by Waymark's code; their order and dates are checked against the
message's events.
"""

import base64
import email.utils
import json
import os
import re
import signal
import subprocess
import threading
import time

import pytest

from aiosmtpd.controller import Controller

from conftest import (SMTPConn, assert_reply, daemon_ids, ehlo_keywords,
                      free_port, make_message, queued_qid, split_message,
                      wait_for)

USER, PASSWORD = "alice", "s3cret"

REGISTERED = {"auth", "content", "convert", "moderation", "normal", "other",
              "outbound", "quarantine", "timed"}
TSPECIALS = set('()<>@,;:\\"/[]?=')


# ----------------------------------------------------------- the parser

def is_token(s):
    """RFC 2045 token: 1*<any CHAR except SPACE, CTLs, or tspecials>."""
    return bool(s) and all(33 <= ord(c) <= 126 and c not in TSPECIALS
                           for c in s)


def strip_comments(s):
    """Remove RFC 5322 comments (nested, with quoted-pairs); return the
    text and the list of comments' contents."""
    out, comments, depth, cur, i = [], [], 0, [], 0
    while i < len(s):
        c = s[i]
        if c == "\\" and depth > 0 and i + 1 < len(s):
            cur.append(s[i + 1])
            i += 2
            continue
        if c == "(":
            if depth > 0:
                cur.append(c)
            depth += 1
        elif c == ")" and depth > 0:
            depth -= 1
            if depth == 0:
                comments.append("".join(cur))
                cur = []
                out.append(" ")
            else:
                cur.append(c)
        elif depth > 0:
            cur.append(c)
        else:
            out.append(c)
        i += 1
    assert depth == 0, "unbalanced comment in %r" % s
    return "".join(out), comments


def parse_received(field):
    """One unfolded Received field -> dict(from, by, with, id, for,
    state, value, reason, date).  Asserts the RFC 5321 / RFC 6729 form:
    Received: from D [by D] [with W] [id I] [for <P>] [state KW[/V]]
    ; date-time."""
    assert field.startswith("Received:"), field
    body = field[len("Received:"):]
    assert ";" in body, field
    clauses, date = body.rsplit(";", 1)
    dt = email.utils.parsedate_to_datetime(date.strip())
    assert dt.tzinfo is not None, date
    text, comments = strip_comments(clauses)
    words = text.split()
    out = {"date": dt.timestamp(), "comments": comments, "state": None,
           "value": None}
    order = ["from", "by", "via", "with", "id", "for", "state"]
    last = -1
    i = 0
    while i < len(words):
        kw = words[i].lower()
        assert kw in order, "unknown clause %r in %r" % (words[i], field)
        assert order.index(kw) > last, "clause %r out of order in %r" % (
            kw, field)
        last = order.index(kw)
        assert i + 1 < len(words), "clause %r without value: %r" % (kw, field)
        val = words[i + 1]
        if kw == "state":
            k, _, v = val.partition("/")
            assert is_token(k), val
            assert k.lower() in REGISTERED, val
            if _:
                assert is_token(v), "state value %r not a token" % v
            out["state"], out["value"] = k.lower(), (v or None)
        else:
            out[kw] = val
        i += 2
    assert "from" in out, "RFC 5321 Stamp needs from: %r" % field
    # the reason is the comment after the state clause
    m = re.search(r"\bstate\s+\S+\s*\(((?:[^()\\]|\\.)*)\)", clauses)
    out["reason"] = re.sub(r"\\(.)", r"\1", m.group(1)) if m else None
    return out


def waymark_fields(data, host="mx.test"):
    """The Received fields Waymark added (by mx.test), newest first."""
    _, fields, _ = split_message(data)
    return [parse_received(f) for f in fields
            if re.search(r"\bby %s\b" % host, f)]


def events(d, qid, kind=None):
    ev = d.show_json(qid)["events"]
    return [e for e in ev if kind is None or e["kind"] == kind]


# ------------------------------------------------------------- helpers

def crypt_hash(password):
    p = subprocess.run(["openssl", "passwd", "-6", "-stdin"], input=password,
                       capture_output=True, text=True, check=True)
    return p.stdout.strip()


def sub_daemon(daemon_factory, extra=None):
    d = daemon_factory(start=False)
    d.sub_port = free_port()
    users = os.path.join(d.dir, "users")
    with open(users, "w") as f:
        f.write("%s:%s\n" % (USER, crypt_hash(PASSWORD)))
    os.chmod(users, 0o644)
    d.config.update({"submission": "127.0.0.1:%d" % d.sub_port,
                     "auth_users": users,
                     "submission_plaintext_auth": "yes"})
    d.config.update(extra or {})
    d.write_config()
    d.start()
    return d


def sub_conn(d):
    c = SMTPConn(d.sub_port)
    r = c.ehlo()
    plain = base64.b64encode(("\0%s\0%s" % (USER, PASSWORD)).encode())
    assert_reply(c.cmd("AUTH PLAIN " + plain.decode()), 235)
    c.ehlo_reply = r
    return c


def submit_held(d, params, to="bob@example.org", subject="held"):
    with sub_conn(d) as c:
        r = c.mail_transaction("alice@example.org", [to],
                               make_message(subject=subject, to=to),
                               params=params)
    return queued_qid(r)


def submit(d, to, subject="test", sender="sender@example.org"):
    with d.connect() as c:
        c.ehlo()
        r = c.mail_transaction(sender, [to], make_message(subject=subject,
                                                          to=to))
    return queued_qid(r)


class DeferSink:
    """aiosmtpd next hop: 451 to every RCPT until opened, then accepts."""

    def __init__(self):
        self.open = False
        self.messages = []
        self.rcpts = 0
        self.lock = threading.Lock()

    async def handle_RCPT(self, server, session, envelope, address, options):
        with self.lock:
            self.rcpts += 1
        if not self.open:
            return "451 4.3.0 try later"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            self.messages.append(envelope.original_content)
        return "250 2.0.0 OK"


@pytest.fixture
def sink():
    h = DeferSink()
    port = free_port()
    c = Controller(h, hostname="127.0.0.1", port=port)
    c.start()
    h.port = port
    yield h
    c.stop()


# --------------------------------------------------------------- tests

def test_one_pass_message_has_one_plain_received(daemon):
    qid = submit(daemon, "bob@example.org")
    data = daemon.wait_mails("bob@example.org", 1)[0]
    f = waymark_fields(data)
    assert len(f) == 1, f
    assert f[0]["state"] is None and f[0]["id"] == qid
    assert not events(daemon, qid, "state")


def test_futurerelease_advertised_on_submission_only(daemon_factory):
    d = sub_daemon(daemon_factory, {"future_release_max": "2h"})
    with sub_conn(d) as c:
        kw = [l for l in c.ehlo_reply.lines if l.upper().startswith(
            "FUTURERELEASE")]
    assert len(kw) == 1, kw
    parts = kw[0].split()
    assert parts[1] == "7200", kw
    until = email.utils.parsedate_to_datetime  # noqa: only for the import
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", parts[2]), kw
    with d.connect() as c:
        r = c.ehlo()
        assert "FUTURERELEASE" not in ehlo_keywords(r)
        assert_reply(c.cmd("MAIL FROM:<a@example.org> HOLDFOR=10"), 555,
                     "5.5.4")


@pytest.mark.parametrize("params,code", [
    ("HOLDFOR=0", 501), ("HOLDFOR=007", 501), ("HOLDFOR=abc", 501),
    ("HOLDFOR=1000000000", 501), ("HOLDFOR=7201", 501),
    ("HOLDUNTIL=2026-13-01T00:00:00Z", 501), ("HOLDUNTIL=tomorrow", 501),
    ("HOLDUNTIL=2099-01-01T00:00:00Z", 501),
    ("HOLDFOR=10 HOLDUNTIL=2099-01-01T00:00:00Z", 501),
    ("HOLDFOR=10 HOLDFOR=20", 501),
])
def test_futurerelease_limits_and_syntax(daemon_factory, params, code):
    d = sub_daemon(daemon_factory, {"future_release_max": "2h"})
    with sub_conn(d) as c:
        assert_reply(c.cmd("MAIL FROM:<alice@example.org> " + params), code,
                     "5.5.4")
        assert_reply(c.cmd("MAIL FROM:<alice@example.org> HOLDFOR=7200"),
                     250)


def test_futurerelease_holdfor_delays_delivery(daemon_factory):
    d = sub_daemon(daemon_factory)
    t0 = time.time()
    qid = submit_held(d, "HOLDFOR=3")
    m = d.show_json(qid)
    assert m["state"] == "timed" and m["hold_until"] >= int(t0) + 3, m
    held = d.cli("queue", "--state", "timed", "--json", check=0).out
    assert qid in held
    data = d.wait_mails("bob@example.org", 1, timeout=30)[0]
    got = time.time()
    assert got >= t0 + 3 - 0.05, "delivered %.2f s after submission" % (
        got - t0)
    f = waymark_fields(data)
    assert [x["state"] for x in f] == ["normal", "timed"], f
    release, recv = f
    assert recv["with"] == "ESMTPA" and recv["id"] == qid
    assert recv["reason"] and recv["reason"].startswith("release at "), recv
    assert release["id"] == qid and release["from"] == "mx.test"
    assert release["date"] >= recv["date"] + 3, (release, recv)
    # the dates agree with the events
    st = events(d, qid, "state")
    assert [e["detail"].split()[1] for e in st] == ["to=timed", "to=normal"]
    assert abs(st[1]["time"] - release["date"]) < 1.5
    assert 'actor="protocol FUTURERELEASE"' in st[0]["detail"]


def test_futurerelease_survives_kill9(daemon_factory):
    d = sub_daemon(daemon_factory)
    t0 = time.time()
    qid = submit_held(d, "HOLDFOR=4")
    d.kill9()
    d.start()
    assert d.show_json(qid)["state"] == "timed"
    assert not d.mail_files("bob@example.org")
    data = d.wait_mails("bob@example.org", 1, timeout=30)
    assert time.time() >= t0 + 4 - 0.05
    time.sleep(1)
    assert len(d.mail_files("bob@example.org")) == 1
    assert [x["state"] for x in waymark_fields(data[0])] == ["normal", "timed"]


def test_release_early_and_message_view(daemon_factory):
    d = sub_daemon(daemon_factory)
    qid = submit_held(d, "HOLDFOR=600", subject="early")
    # mailq marks held mail, as Postfix does with "!"
    out = d.cli("queue", check=0).out
    assert (qid + "!") in out and "timed" in out, out
    # the stored message as it would be delivered
    p = d.cli("show", qid, "--message", check=0)
    assert p.out.startswith("Received: from client.test"), p.out[:300]
    assert "state timed (release at " in p.out and "Subject: early" in p.out
    assert "\r" not in p.out
    p = d.cli("release", qid, check=0)
    assert "released" in p.out
    data = d.wait_mails("bob@example.org", 1)[0]
    assert [x["state"] for x in waymark_fields(data)] == ["normal", "timed"]
    ev = events(d, qid, "state")
    assert 'actor="operator root"' in ev[-1]["detail"], ev


def test_hold_release_outbound(daemon_factory, sink):
    d = daemon_factory({"smarthost": "[127.0.0.1]:%d" % sink.port,
                        "retry_schedule": "1s"})
    qid = submit(d, "carol@remote.test", subject="outbound")
    wait_for(lambda: d.show_json(qid)["recipients"][0]["status"] ==
             "deferred", what="a first deferral")
    p = d.cli("hold", qid, check=0)
    assert "held" in p.out
    m = d.show_json(qid)
    assert (m["state"], m["state_value"]) == ("other", "hold"), m
    assert m["state_reason"] == "held by the operator"
    assert abs(m["state_since"] - time.time()) < 5
    # refused actions, exit status 1
    assert d.cli("hold", qid).returncode == 1
    assert d.cli("release", "AAAAAAAAAAAA").returncode == 1
    assert d.cli("delete", "AAAAAAAAAAAA").returncode == 1
    # nothing is tried while it is held
    n = sink.rcpts
    time.sleep(2.5)
    assert sink.rcpts == n, "attempts while held"
    assert qid in d.cli("queue", "--state", "other/hold", "--json",
                        check=0).out
    assert qid not in d.cli("queue", "--state", "other/spam", "--json",
                            check=0).out
    sink.open = True
    d.cli("release", qid, check=0)
    assert d.cli("release", qid).returncode in (1,)
    wait_for(lambda: sink.messages, what="the relayed message")
    f = [parse_received(x) for x in split_message(
        b"Return-Path: <>\n" + sink.messages[0].replace(b"\r\n", b"\n"))[1]
        if "by mx.test" in x]
    assert [x["state"] for x in f] == ["outbound", "other", None], f
    assert f[1]["value"] == "hold" and f[1]["reason"] == "held by the operator"
    assert f[0]["date"] >= f[1]["date"] >= f[2]["date"]
    st = [e["detail"] for e in events(d, qid, "state")]
    assert st[0].startswith("from=normal to=other/hold actor=\"operator root\"")
    assert st[1].startswith("from=other to=outbound"), st
    assert d.show_json(qid)["state"] == "outbound"


def test_delete_silent_and_bounce(daemon_factory):
    d = sub_daemon(daemon_factory)
    q1 = submit_held(d, "HOLDFOR=600", subject="one")
    q2 = submit_held(d, "HOLDFOR=600", subject="two")
    assert "deleted" in d.cli("delete", q1, check=0).out
    assert "deleted" in d.cli("delete", q2, "--bounce", check=0).out
    for q in (q1, q2):
        m = d.show_json(q)
        assert m["recipients"][0]["status"] == "failed"
        assert m["recipients"][0]["last_reply"]["enhanced"] == "5.7.1"
        assert any(e["kind"] == "deleted" and 'actor="operator root"' in
                   e["detail"] for e in m["events"])
    # one failure DSN (for --bounce) to alice@example.org, none for q1
    dsn = d.wait_mails("alice@example.org", 1)
    time.sleep(1)
    dsn = d.mails("alice@example.org")
    assert len(dsn) == 1 and q2.encode() in dsn[0] and q1.encode() not in dsn[0]
    assert b"Future-Release-Request: for;600" in dsn[0]
    assert b"5.7.1" in dsn[0]
    assert not d.mail_files("bob@example.org")
    assert d.cli("delete", q1).returncode == 1


def test_release_survives_kill9_once(daemon_factory):
    """kill -9 right after `waymark release` answered: delivered once."""
    d = sub_daemon(daemon_factory)
    qid = submit_held(d, "HOLDFOR=600")
    assert d.cli("release", qid).returncode == 0
    d.kill9()
    d.start()
    d.wait_mails("bob@example.org", 1)
    time.sleep(1.5)
    assert len(d.mail_files("bob@example.org")) == 1
    m = d.show_json(qid)
    assert m["state"] == "normal", m


def test_refused_actions_do_not_change_state(daemon):
    qid = submit(daemon, "bob@example.org")
    daemon.wait_mails("bob@example.org", 1)
    # finished: no longer in the queue
    p = daemon.cli("hold", qid)
    assert p.returncode == 1 and "no such message" in p.err
    p = daemon.cli("hold")
    assert p.returncode == 2
    p = daemon.cli("delete", qid, "--force")
    assert p.returncode == 2


def test_flush_one_message(daemon_factory, sink):
    """`waymark flush QID` makes only that message's deferred recipients
    due now (DESIGN.md: flush [QID]); an unknown QID exits 1."""
    d = daemon_factory({"smarthost": "[127.0.0.1]:%d" % sink.port,
                        "retry_schedule": "1h"})
    q1 = submit(d, "a@remote.test", subject="one")
    q2 = submit(d, "b@remote.test", subject="two")
    for q in (q1, q2):
        wait_for(lambda: d.show_json(q)["recipients"][0]["status"] ==
                 "deferred", what="a first deferral of %s" % q)
    sink.open = True
    p = d.cli("flush", q1, check=0)
    assert "flushed 1 deferred recipient" in p.out, p.out
    wait_for(lambda: d.show_json(q1)["recipients"][0]["status"] ==
             "relayed", what="q1 relayed after its flush")
    time.sleep(1)
    assert d.show_json(q2)["recipients"][0]["status"] == "deferred"
    assert d.cli("flush", "AAAAAAAAAAAA").returncode == 1
    assert d.cli("flush", q1, q2).returncode == 2


# ------------------------------------------------- policy content filter

def filter_daemon(daemon_factory, script, extra=None):
    """A daemon whose policy sends mail for *@example.org through the
    shell script `script` (written executable in the daemon's dir)."""
    d = daemon_factory(start=False)
    # a folder the filter (run as the daemon's user) may write in
    fdir = os.path.join(d.dir, "filter")
    os.mkdir(fdir, 0o755)
    os.chown(fdir, *daemon_ids())
    path = os.path.join(fdir, "filter.sh")
    with open(path, "w") as f:
        f.write("#!/bin/sh\n" + script)
    os.chmod(path, 0o755)
    pol = os.path.join(d.dir, "policy.conf")
    with open(pol, "w") as f:
        f.write('filter "%s --mode test" rcpt=*@example.org\n' % path)
    os.chmod(pol, 0o644)
    d.config.update({"policy": pol, "retry_schedule": "1s"})
    d.config.update(extra or {})
    d.write_config()
    d.start()
    d.filter_dir = fdir
    return d


def test_filter_accepts(daemon_factory):
    d = filter_daemon(daemon_factory, 'cat > "$0.in"\n'
                      'echo "clean $WAYMARK_QID $WAYMARK_SENDER '
                      '$WAYMARK_RECIPIENTS $1 $2"\nexit 0\n')
    qid = submit(d, "bob@example.org", subject="scan me")
    data = d.wait_mails("bob@example.org", 1)[0]
    f = waymark_fields(data)
    assert [x["state"] for x in f] == ["normal", "content"], f
    assert f[1]["reason"].endswith("policy.conf:1 rcpt"), f[1]
    with open(os.path.join(d.filter_dir, "filter.sh.in"), "rb") as fh:
        seen = fh.read()
    # the filter read the stored message: our trace field, then content
    assert seen.startswith(b"Received: from client.test"), seen[:200]
    assert b"state content" in seen and b"Subject: scan me\r\n" in seen
    st = events(d, qid, "state")
    assert [e["detail"].split()[1] for e in st] == ["to=content", "to=normal"]
    assert abs(st[0]["time"] - f[1]["date"]) < 1.5
    assert abs(st[1]["time"] - f[0]["date"]) < 1.5
    assert 'actor="filter"' in st[1]["detail"], st
    ev = events(d, qid, "filter")
    assert len(ev) == 1 and ev[0]["detail"].startswith("exit=0"), ev
    assert ("clean %s sender@example.org bob@example.org --mode test" %
            qid) in ev[0]["detail"], ev


def test_filter_quarantines_then_release(daemon_factory):
    d = filter_daemon(daemon_factory, "cat >/dev/null\n"
                      "echo 'EICAR test signature'\nexit 1\n")
    qid = submit(d, "bob@example.org")
    wait_for(lambda: d.show_json(qid)["state"] == "quarantine",
             what="quarantine by the filter")
    m = d.show_json(qid)
    assert m["state_value"] == "filter"
    assert m["state_reason"] == "EICAR test signature"
    time.sleep(1)
    assert not d.mail_files("bob@example.org")
    d.cli("release", qid, check=0)
    data = d.wait_mails("bob@example.org", 1)[0]
    f = waymark_fields(data)
    assert [(x["state"], x["value"]) for x in f] == [
        ("normal", None), ("quarantine", "filter"), ("content", None)], f
    assert f[1]["reason"] == "EICAR test signature"


def test_filter_rejects_with_dsn(daemon_factory):
    d = filter_daemon(daemon_factory, "cat >/dev/null\necho spam\nexit 2\n")
    with d.connect() as c:
        c.ehlo()
        r = c.mail_transaction("carol@localhost", ["bob@example.org"],
                               make_message(to="bob@example.org"))
    qid = queued_qid(r)
    dsn = d.wait_mails("carol@localhost", 1)[0]
    assert qid.encode() in dsn and b"5.7.1" in dsn
    assert b"rejected by the content filter: spam" in dsn
    m = d.show_json(qid)
    assert m["recipients"][0]["status"] == "failed"
    assert not d.mail_files("bob@example.org")


def test_filter_tempfail_and_timeout_retry(daemon_factory):
    """75 and a filter sleeping past filter_timeout: retried, never lost,
    and other sessions are served meanwhile."""
    d = filter_daemon(daemon_factory,
                      'n=$(cat "$0.count" 2>/dev/null || echo 0)\n'
                      'echo $((n + 1)) > "$0.count"\n'
                      'cat >/dev/null\n'
                      'case $n in 0) echo busy; exit 75;;\n'
                      '1) sleep 30; exit 0;;\n'
                      '*) echo ok; exit 0;; esac\n',
                      {"filter_timeout": "2s"})
    qid = submit(d, "bob@example.org")
    # while the second run sleeps, the daemon answers at once
    count = os.path.join(d.filter_dir, "filter.sh.count")
    wait_for(lambda: os.path.exists(count) and
             open(count).read().strip() == "2", timeout=20,
             what="the second filter run")
    t = time.monotonic()
    with d.connect() as c:
        assert_reply(c.cmd("NOOP"), 250)
    assert time.monotonic() - t < 2
    d.wait_mails("bob@example.org", 1, timeout=40)
    ev = [e["detail"] for e in events(d, qid, "filter")]
    assert ev[0].startswith("exit=75") and "busy" in ev[0], ev
    assert ev[1].startswith("exit=-2 (timeout)"), ev
    assert ev[2].startswith("exit=0"), ev


def test_filter_survives_restart(daemon_factory):
    """A message in state content at a restart is filtered again."""
    d = filter_daemon(daemon_factory,
                      'if [ -e "$0.go" ]; then cat >/dev/null; exit 0; fi\n'
                      'sleep 30\n', {"filter_timeout": "60s"})
    qid = submit(d, "bob@example.org")
    wait_for(lambda: d.show_json(qid)["state"] == "content",
             what="content")
    d.kill9()
    open(os.path.join(d.filter_dir, "filter.sh.go"), "w").close()
    d.start()
    d.wait_mails("bob@example.org", 1, timeout=30)
    assert d.show_json(qid)["state"] == "normal"


def test_futurerelease_after_deliverby_refused(daemon_factory):
    """RFC 4865 5.2.2: a release later than the DELIVERBY deadline is
    refused 501 5.5.4; one before it is accepted."""
    d = sub_daemon(daemon_factory)
    with sub_conn(d) as c:
        assert_reply(c.cmd("MAIL FROM:<alice@example.org> BY=60;R "
                           "HOLDFOR=120"), 501, "5.5.4")
        assert_reply(c.cmd("MAIL FROM:<alice@example.org> BY=600;R "
                           "HOLDFOR=120"), 250)


def test_deliverby_deadline_counts_while_held(daemon_factory):
    """A held message (policy hold) still fails at its DELIVERBY mode R
    deadline (RFC 2852: the deadline always counts)."""
    d = daemon_factory(start=False)
    pol = os.path.join(d.dir, "policy.conf")
    with open(pol, "w") as f:
        f.write("hold rcpt=bob@example.org\n")
    os.chmod(pol, 0o644)
    d.config["policy"] = pol
    d.write_config()
    d.start()
    t0 = time.time()
    with d.connect() as c:
        c.ehlo()
        r = c.mail_transaction("sender@example.org", ["bob@example.org"],
                               make_message(to="bob@example.org"),
                               params="BY=4;R")
    qid = queued_qid(r)
    assert d.show_json(qid)["state"] == "other"
    m = wait_for(lambda: (lambda x: x if x["recipients"][0]["status"] ==
                          "failed" else None)(d.show_json(qid)),
                 timeout=30, what="the deadline while held")
    assert time.time() >= t0 + 4 - 0.5
    assert m["recipients"][0]["last_reply"]["enhanced"] == "5.4.7"
    assert not d.mail_files("bob@example.org")


def test_policy_quarantine_then_release_trace(daemon_factory):
    """quarantine at reception, then release: the reception field carries
    `state quarantine/LABEL (reason)`, the release field `state normal`,
    newest first, dated as the events say."""
    d = daemon_factory(start=False)
    pol = os.path.join(d.dir, "policy.conf")
    with open(pol, "w") as f:
        f.write("quarantine/suspect header=Subject:/invoice/\n")
    os.chmod(pol, 0o644)
    d.config["policy"] = pol
    d.write_config()
    d.start()
    qid = submit(d, "bob@example.org", subject="your invoice")
    m = d.show_json(qid)
    assert (m["state"], m["state_value"]) == ("quarantine", "suspect")
    time.sleep(1.2)
    d.cli("release", qid, check=0)
    data = d.wait_mails("bob@example.org", 1)[0]
    f = waymark_fields(data)
    assert [(x["state"], x["value"]) for x in f] == [
        ("normal", None), ("quarantine", "suspect")], f
    assert f[1]["reason"].endswith("policy.conf:1 header Subject"), f[1]
    assert f[1]["with"] == "ESMTP" and f[1]["id"] == qid
    st = events(d, qid, "state")
    assert [e["detail"].split()[1] for e in st] == ["to=quarantine/suspect",
                                                    "to=normal"]
    assert 'actor="policy ' in st[0]["detail"]
    assert abs(st[0]["time"] - f[1]["date"]) < 1.5
    assert abs(st[1]["time"] - f[0]["date"]) < 1.5
    assert f[0]["date"] >= f[1]["date"] + 1


def test_held_time_does_not_expire(daemon_factory, sink):
    """Time spent held does not count toward queue_lifetime: a message
    held longer than its lifetime is still retried after its release
    (its next deferral is no expiry), and expires only a lifetime of
    unheld time later."""
    d = daemon_factory({"smarthost": "[127.0.0.1]:%d" % sink.port,
                        "retry_schedule": "1s", "queue_lifetime": "6s"})
    qid = submit(d, "carol@remote.test")
    wait_for(lambda: d.show_json(qid)["recipients"][0]["status"] ==
             "deferred", what="a first deferral")
    d.cli("hold", qid, check=0)
    time.sleep(7)               # longer than queue_lifetime
    n = d.show_json(qid)["recipients"][0]["attempts"]
    d.cli("release", qid, check=0)
    r = wait_for(lambda: (lambda x: x if x["attempts"] > n else None)(
        d.show_json(qid)["recipients"][0]), timeout=20,
        what="an attempt after the release")
    assert r["status"] == "deferred", r      # not expired (4.4.7)
    m = wait_for(lambda: (lambda x: x if x["recipients"][0]["status"] ==
                          "failed" else None)(d.show_json(qid)),
                 timeout=30, what="the expiry in the end")
    assert m["recipients"][0]["last_reply"]["enhanced"] == "4.4.7"


def test_release_refused_while_filtering(daemon_factory):
    """`release` does not skip a content filter that is running."""
    d = filter_daemon(daemon_factory, "cat >/dev/null\nsleep 30\n",
                      {"filter_timeout": "60s"})
    qid = submit(d, "bob@example.org")
    wait_for(lambda: d.show_json(qid)["state"] == "content", what="content")
    p = d.cli("release", qid)
    assert p.returncode == 1 and "cannot be released" in p.err, p.err
    assert d.show_json(qid)["state"] == "content"


def test_policy_hold_does_not_cut_a_futurerelease(daemon_factory):
    """A FUTURERELEASE message that a policy rule holds is, once
    released by the operator, still not delivered before its time."""
    d = sub_daemon(daemon_factory)
    pol = os.path.join(d.dir, "policy.conf")
    with open(pol, "w") as f:
        f.write("quarantine/check header=Subject:/later/\n")
    os.chmod(pol, 0o644)
    d.config["policy"] = pol
    d.write_config()
    d.restart()
    t0 = time.time()
    qid = submit_held(d, "HOLDFOR=4", subject="later please")
    m = d.show_json(qid)
    assert (m["state"], m["state_value"]) == ("quarantine", "check"), m
    assert m["hold_until"] >= int(t0) + 4
    d.cli("release", qid, check=0)
    assert d.show_json(qid)["state"] == "timed"
    data = d.wait_mails("bob@example.org", 1, timeout=30)[0]
    assert time.time() >= t0 + 4 - 0.05
    f = waymark_fields(data)
    assert [x["state"] for x in f] == ["normal", "timed", "quarantine"], f


def test_timed_lifetime_counts_from_release(daemon_factory, sink):
    """RFC 4865: a timed message's queue_lifetime counts from its release:
    held longer than the lifetime, its first deferral is no expiry."""
    d = sub_daemon(daemon_factory, {
        "smarthost": "[127.0.0.1]:%d" % sink.port, "retry_schedule": "1s",
        "queue_lifetime": "3s", "relay_from": "127.0.0.0/8"})
    qid = submit_held(d, "HOLDFOR=4", to="carol@remote.test")
    r = wait_for(lambda: (lambda x: x if x["attempts"] >= 1 else None)(
        d.show_json(qid)["recipients"][0]), timeout=20,
        what="the first attempt after the release")
    assert r["status"] == "deferred", r        # not expired (4.4.7)


def test_filter_concurrency(daemon_factory):
    """filter_concurrency = 1: a second message waits until the first
    message's filter has finished."""
    d = filter_daemon(daemon_factory,
                      'echo start >> "$0.log"; cat >/dev/null\n'
                      'sleep 2; echo end >> "$0.log"; exit 0\n',
                      {"filter_concurrency": "1"})
    submit(d, "bob@example.org", subject="one")
    submit(d, "bob@example.org", subject="two")
    d.wait_mails("bob@example.org", 2, timeout=30)
    with open(os.path.join(d.filter_dir, "filter.sh.log")) as f:
        assert f.read().split() == ["start", "end", "start", "end"]


def test_mailq_name_marks_held(daemon_factory):
    """`mailq` (the sendmail-compatible name) lists held mail marked !."""
    from conftest import WAYMARK
    d = sub_daemon(daemon_factory)
    qid = submit_held(d, "HOLDFOR=600")
    link = os.path.join(d.dir, "mailq")
    os.symlink(WAYMARK, link)
    p = subprocess.run([link, "-C", d.conf], capture_output=True, text=True,
                       timeout=30)
    assert p.returncode == 0, p.stderr
    assert (qid + "!") in p.stdout and "state: timed" in p.stdout, p.stdout


def test_delete_refused_while_delivering(daemon_factory):
    """delete is refused (exit 1) while a delivery of the message runs."""
    import socket as _s
    srv = _s.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(5)
    port = srv.getsockname()[1]
    try:
        d = daemon_factory({"smarthost": "[127.0.0.1]:%d" % port,
                            "smtp_helo_timeout": "20s"})
        qid = submit(d, "carol@remote.test")
        conn, _ = srv.accept()          # connected: a delivery runs,
        time.sleep(0.5)                 # the greeting never comes
        p = d.cli("delete", qid)
        assert p.returncode == 1 and "being delivered" in p.err, p.err
        conn.close()
    finally:
        srv.close()
