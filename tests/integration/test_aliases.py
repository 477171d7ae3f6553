"""
`aliases = FILE`: expansion at RCPT time, before queueing.

1->1 (RFC 3461 5.2.7.2): the target replaces the recipient, ORCPT is set
to rfc822;<alias> when the client gave none, NOTIFY passes.  1->N (RFC
3461 5.2.7.3(c)): the alias stays as an "expanded" recipient, each target
is delivered once, its NOTIFY lacks SUCCESS (NEVER when only SUCCESS was
asked); MTRK is not passed on (next_hop_mtrk false).  Nested aliases,
loops (the member met again keeps its own mailbox), the depth limit
(550 5.4.6), max_recipients after expansion (452 4.5.3), a bad aliases
file (waymarkd -n fails with FILE:LINE) and SIGHUP reload.
"""

import json
import os
import re
import shutil
import signal
import subprocess

import pytest

from conftest import (assert_reply, dot_stuff, make_message, queued_qid,
                      run_waymarkd, wait_for)

FINAL = ("delivered", "relayed", "failed", "expanded", "transferred")

ALIASES = """\
# test aliases
one: target
List: alice, bob@example.org,
\tcarol
outer: list, dave, one
loopa: loopb
loopb: loopa
keep: keep, copy
d0: d1
d1: d2
d2: d3
d3: d4
d4: d5
d5: d6
d6: d7
d7: d8
d8: d9
d9: final
"""


def alias_daemon(daemon_factory, text=ALIASES, config=None):
    cfg = {"aliases": "aliases"}
    cfg.update(config or {})
    d = daemon_factory(cfg, start=False)
    with open(os.path.join(d.dir, "aliases"), "w") as f:
        f.write(text)
    return d.start()


def transaction(d, rcpts, mail="FROM:<s@example.com>", to="x@example.org"):
    with d.connect() as c:
        c.ehlo()
        assert_reply(c.cmd("MAIL " + mail), 250, "2.")
        for r in rcpts:
            assert_reply(c.cmd("RCPT " + r), 250, "2.1.5")
        r = c.cmd("DATA")
        assert r.code == 354, r
        c.send(dot_stuff(make_message(to=to)))
        return queued_qid(c.reply())


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


def rcpts(m):
    return {r["address"]: r for r in m["recipients"]}


def check_expanded(r):
    """The alias of a 1->N expansion must stay "expanded" (never delivered)."""
    assert r["status"] == "expanded", r


def test_one_to_one(daemon_factory):
    d = alias_daemon(daemon_factory)
    qid = transaction(d, ["TO:<One@example.org> NOTIFY=SUCCESS,FAILURE"])
    d.wait_mails("target@example.org", 1)
    m = wait_final(d, qid)
    r = rcpts(m)
    assert list(r) == ["target@example.org"], r
    assert r["target@example.org"]["status"] == "delivered"
    assert r["target@example.org"]["orcpt"] == "rfc822;One@example.org"
    assert sorted(r["target@example.org"]["notify"]) == ["FAILURE", "SUCCESS"]
    assert d.mail_files("one@example.org") == []


def test_one_to_one_keeps_client_orcpt(daemon_factory):
    d = alias_daemon(daemon_factory)
    qid = transaction(d, ["TO:<one@example.org> ORCPT=rfc822;orig@example.com"])
    m = wait_final(d, qid)
    assert rcpts(m)["target@example.org"]["orcpt"] == "rfc822;orig@example.com"


def test_one_to_many(daemon_factory):
    d = alias_daemon(daemon_factory)
    qid = transaction(d, ["TO:<list@example.org> NOTIFY=SUCCESS,FAILURE",
                          "TO:<bob@example.org>"])
    for a in ("alice@example.org", "bob@example.org", "carol@example.org"):
        d.wait_mails(a, 1)
    m = wait_final(d, qid)
    r = rcpts(m)
    assert set(r) == {"list@example.org", "alice@example.org",
                      "bob@example.org", "carol@example.org"}, r
    assert sorted(r["list@example.org"]["notify"]) == ["FAILURE", "SUCCESS"]
    for a in ("alice@example.org", "carol@example.org"):
        assert r[a]["status"] == "delivered"
        assert r[a]["notify"] == ["FAILURE"], r[a]
        assert r[a]["orcpt"] == "rfc822;list@example.org"
        assert r[a]["next_hop_mtrk"] in (False, None), r[a]
    # bob was expanded first: stored once, with the alias's values
    assert r["bob@example.org"]["notify"] == ["FAILURE"]
    assert len(d.mail_files("bob@example.org")) == 1
    check_expanded(r["list@example.org"])
    assert r["list@example.org"]["last_reply"]["code"] == 250
    assert r["list@example.org"]["last_reply"]["enhanced"] == "2.1.5"
    assert d.mail_files("list@example.org") == []


def test_one_to_many_only_success_gives_never(daemon_factory):
    d = alias_daemon(daemon_factory)
    qid = transaction(d, ["TO:<list@example.org> NOTIFY=SUCCESS"])
    m = wait_final(d, qid)
    r = rcpts(m)
    assert r["alice@example.org"]["notify"] == ["NEVER"]
    check_expanded(r["list@example.org"])


@pytest.mark.skipif(shutil.which("msmtp") is None, reason="msmtp missing")
def test_one_to_many_msmtp(daemon_factory):
    d = alias_daemon(daemon_factory)
    p = subprocess.run(
        ["msmtp", "--host=127.0.0.1", "--port=%d" % d.port, "--auth=off",
         "--tls=off", "--from=m@example.com",
         "--dsn-notify=success,failure", "list@example.org"],
        input=make_message(to="list@example.org"), capture_output=True,
        timeout=30)
    assert p.returncode == 0, p.stderr
    for a in ("alice@example.org", "bob@example.org", "carol@example.org"):
        d.wait_mails(a, 1)

    def qid_from_log():
        found = re.findall(r"qid=([0-9A-Za-z]{8,32}) .*from=<m@example.com>",
                           d.log_text())
        return found[-1] if found else None
    m = wait_final(d, wait_for(qid_from_log, what="the msmtp message"))
    r = rcpts(m)
    assert r["carol@example.org"]["notify"] == ["FAILURE"]
    check_expanded(r["list@example.org"])


def test_nested(daemon_factory):
    d = alias_daemon(daemon_factory)
    qid = transaction(d, ["TO:<outer@example.org>"])
    want = ("alice@example.org", "bob@example.org", "carol@example.org",
            "dave@example.org", "target@example.org")
    for a in want:
        d.wait_mails(a, 1)
    m = wait_final(d, qid)
    r = rcpts(m)
    assert set(r) == set(want) | {"outer@example.org"}
    for a in want:
        assert r[a]["orcpt"] == "rfc822;outer@example.org"
    check_expanded(r["outer@example.org"])


def test_loop_member_keeps_its_mailbox(daemon_factory):
    d = alias_daemon(daemon_factory)
    transaction(d, ["TO:<loopa@example.org>"])
    d.wait_mails("loopa@example.org", 1)
    qid = transaction(d, ["TO:<keep@example.org>"])
    d.wait_mails("keep@example.org", 1)
    d.wait_mails("copy@example.org", 1)
    m = wait_final(d, qid)
    assert d.mail_files("loopb@example.org") == []
    # the alias (expanded) and its own mailbox (a delivered recipient)
    keep = [x for x in m["recipients"] if x["address"] == "keep@example.org"]
    assert len(keep) == 2, m["recipients"]
    assert keep[1]["orcpt"] == "rfc822;keep@example.org"
    assert keep[1]["status"] == "delivered"
    check_expanded(keep[0])
    assert len(d.mail_files("keep@example.org")) == 1


def test_depth_limit(daemon_factory):
    d = alias_daemon(daemon_factory)
    with d.connect() as c:
        c.ehlo()
        assert_reply(c.cmd("MAIL FROM:<s@example.com>"), 250, "2.1.0")
        assert_reply(c.cmd("RCPT TO:<d0@example.org>"), 550, "5.4.6")
        assert_reply(c.cmd("RCPT TO:<d1@example.org>"), 250, "2.1.5")


def test_max_recipients_after_expansion(daemon_factory):
    d = alias_daemon(daemon_factory, config={"max_recipients": "2"})
    with d.connect() as c:
        c.ehlo()
        assert_reply(c.cmd("MAIL FROM:<s@example.com>"), 250, "2.1.0")
        assert_reply(c.cmd("RCPT TO:<list@example.org>"), 452, "4.5.3")
        assert_reply(c.cmd("RCPT TO:<one@example.org>"), 250, "2.1.5")


def test_bad_alias_file(daemon_factory):
    d = daemon_factory({"aliases": "aliases"}, start=False)
    path = os.path.join(d.dir, "aliases")
    with open(path, "w") as f:
        f.write("ok: a\n# c\nbad: a, |/bin/cat\n")
    p = run_waymarkd("-n", "-f", d.conf)
    assert p.returncode != 0
    assert "%s:3: \"|/bin/cat\": delivery to a command is not supported" % path \
        in p.err, p.err
    assert re.search(re.escape(d.conf) + r":\d+: aliases: ", p.err), p.err
    with open(path, "w") as f:
        f.write("ok: /var/mail/x\n")
    p = run_waymarkd("-n", "-f", d.conf)
    assert p.returncode != 0 and "%s:1: " % path in p.err, p.err


def test_sighup_reload(daemon_factory):
    d = alias_daemon(daemon_factory)
    with open(os.path.join(d.dir, "aliases"), "w") as f:
        f.write(ALIASES.replace("one: target", "one: other"))
    d.signal(signal.SIGHUP)

    def reloaded():
        with d.connect() as c:
            c.ehlo()
            c.cmd("MAIL FROM:<s@example.com>")
            c.cmd("RCPT TO:<one@example.org>")
            r = c.cmd("DATA")
            if r.code != 354:
                return False
            c.send(dot_stuff(make_message(to="one@example.org")))
            qid = queued_qid(c.reply())
        m = wait_final(d, qid)
        return "other@example.org" in rcpts(m)
    wait_for(reloaded, timeout=20, interval=0.3, what="the new alias")
    d.wait_mails("other@example.org", 1)


def test_alias_accepted_without_local_recipients_entry(daemon_factory):
    d = daemon_factory({"aliases": "aliases", "local_recipients": "rcpts"},
                       start=False)
    with open(os.path.join(d.dir, "aliases"), "w") as f:
        f.write("one: target\n")
    with open(os.path.join(d.dir, "rcpts"), "w") as f:
        f.write("target@example.org\n")
    d.start()
    with d.connect() as c:
        c.ehlo()
        assert_reply(c.cmd("MAIL FROM:<s@example.com>"), 250, "2.1.0")
        assert_reply(c.cmd("RCPT TO:<one@example.org>"), 250, "2.1.5")
        assert_reply(c.cmd("RCPT TO:<other@example.org>"), 550, "5.1.1")
