"""Limits: SIZE at MAIL and at end of DATA, command-line and text-line length,
max_recipients, max_sessions, smtpd_timeout, min_free_space.  Each limit gives
its reply, nothing is queued when a message is refused, and the daemon keeps
serving (the harness also fails on any sanitizer report)."""

import socket

from conftest import (assert_reply, dot_stuff, lf, make_message, queued_qid,
                      split_message, wait_for)


def test_size_announced_and_refused_at_mail(daemon_factory):
    d = daemon_factory({"max_size": "2k"})
    with d.connect() as c:
        r = c.ehlo()
        assert "SIZE 2048" in [l.upper() for l in r.lines], r
        assert_reply(c.cmd("MAIL FROM:<s@example.com> SIZE=2049"), 552, "5.3.4")
        assert_reply(c.cmd("MAIL FROM:<s@example.com> SIZE=2000"), 250, "2.")
        assert_reply(c.cmd("RCPT TO:<user@example.org>"), 250, "2.")


def test_huge_size_parameter(daemon_factory):
    d = daemon_factory({"max_size": "2k"})
    with d.connect() as c:
        c.ehlo()
        r = c.cmd("MAIL FROM:<s@example.com> SIZE=99999999999999999999999")
        assert r.code in (501, 552), r        # overflow: syntax error or too big
        assert r.enh in ("5.5.4", "5.3.4"), r
        assert_reply(c.cmd("NOOP"), 250, "2.")


def test_oversize_body_refused_at_end_of_data(daemon_factory):
    d = daemon_factory({"max_size": "2k"})
    big = make_message(subject="big", body=(b"x" * 70 + b"\r\n") * 60)  # ~4.3 KB
    small = make_message(subject="small")
    with d.connect() as c:
        c.ehlo()
        assert_reply(c.cmd("MAIL FROM:<s@example.com>"), 250, "2.")
        assert_reply(c.cmd("RCPT TO:<user@example.org>"), 250, "2.")
        assert c.cmd("DATA").code == 354
        c.send(dot_stuff(big))
        assert_reply(c.reply(), 552, "5.3.4")
        # the session goes on: the next transaction is accepted
        qid = queued_qid(c.mail_transaction("s@example.com", ["user@example.org"], small))
    (data,) = d.wait_mails("user@example.org", 1)
    _, fields, rest = split_message(data)
    assert rest == lf(small)
    assert "id %s" % qid in fields[0]
    d.wait_queue_drained()
    assert len(d.mail_files("user@example.org")) == 1


def test_overlong_command_line(daemon):
    with daemon.connect() as c:
        c.ehlo()
        ok = "NOOP " + "y" * (2000 - len("NOOP ") - 2)       # 2000 octets with CRLF
        assert_reply(c.cmd(ok), 250, "2.")
        assert_reply(c.cmd("NOOP " + "x" * 3000), 500, "5.5.2")
        assert_reply(c.cmd("MAIL FROM:<" + "a" * 5000 + "@example.com>"), 500, "5.5.2")
        assert_reply(c.cmd("X" * 100000), 500, "5.5.2")
        # still usable, and the tail of the long line was not taken as a command
        assert_reply(c.cmd("NOOP"), 250, "2.")
        qid = queued_qid(c.mail_transaction("s@example.com", ["user@example.org"],
                                            make_message()))
    daemon.wait_mails("user@example.org", 1)
    assert qid


def test_overlong_text_line_refused(daemon):
    long_line = b"z" * 1500 + b"\r\n"
    msg = make_message(subject="long line", body=b"ok\r\n" + long_line + b"ok\r\n")
    with daemon.connect() as c:
        c.ehlo()
        assert_reply(c.cmd("MAIL FROM:<s@example.com>"), 250, "2.")
        assert_reply(c.cmd("RCPT TO:<long@example.org>"), 250, "2.")
        assert c.cmd("DATA").code == 354
        c.send(dot_stuff(msg))
        assert_reply(c.reply(), 554, "5.6.0")
        assert_reply(c.cmd("NOOP"), 250, "2.")
        # a 998-octet line (1000 with CRLF) is fine
        fine = make_message(subject="998", body=b"w" * 998 + b"\r\n")
        qid = queued_qid(c.mail_transaction("s@example.com", ["long@example.org"], fine))
    (data,) = daemon.wait_mails("long@example.org", 1)
    _, fields, rest = split_message(data)
    assert "id %s" % qid in fields[0]
    assert rest == lf(fine)
    daemon.wait_queue_drained()
    assert len(daemon.mail_files("long@example.org")) == 1
    assert all(m["queue_id"] == qid for m in daemon.queue_json())


def test_max_recipients(daemon_factory):
    d = daemon_factory({"max_recipients": "3"})
    rcpts = ["r1@example.org", "r2@example.org", "r3@example.org"]
    msg = make_message(subject="three")
    with d.connect() as c:
        c.ehlo()
        assert_reply(c.cmd("MAIL FROM:<s@example.com>"), 250, "2.")
        for r in rcpts:
            assert_reply(c.cmd("RCPT TO:<%s>" % r), 250, "2.")
        assert_reply(c.cmd("RCPT TO:<r4@example.org>"), 452, "4.5.3")
        assert_reply(c.cmd("RCPT TO:<r5@example.org>"), 452, "4.5.3")
        assert c.cmd("DATA").code == 354
        c.send(dot_stuff(msg))
        queued_qid(c.reply())
    for r in rcpts:
        d.wait_mails(r, 1)
    d.wait_queue_drained()
    assert d.mail_files("r4@example.org") == []


def silent(c, seconds=1.0):
    """c has no greeting yet: it waits in the listen backlog."""
    c.sock.settimeout(seconds)
    try:
        data = c.sock.recv(100)
    except socket.timeout:
        data = None
    c.sock.settimeout(30)
    return data is None


def test_max_sessions(daemon_factory):
    """At max_sessions the listeners pause: a third client waits in the
    listen backlog (no 421) and is greeted as soon as a session ends."""
    d = daemon_factory({"max_sessions": "2"})
    a = d.connect()
    b = d.connect()
    assert a.greeting.code == 220 and b.greeting.code == 220
    c = d.connect(greet=False)
    assert silent(c)
    # the first two still work
    assert_reply(a.cmd("NOOP"), 250, "2.")
    assert_reply(b.cmd("NOOP"), 250, "2.")
    assert a.cmd("QUIT").code == 221
    assert a.expect_eof()
    a.close()
    # the waiting client is greeted now
    c.greeting = c.reply()
    assert c.greeting.code == 220, c.greeting
    assert_reply(c.cmd("NOOP"), 250, "2.")
    log = d.log_text()
    assert log.count("listeners paused: max_sessions 2 reached") == 1, log
    assert "Too many sessions" not in log
    # c took the free slot: the limit is still reached, the episode goes on
    assert "listeners resumed after " not in log
    b.close()
    c.close()
    # it ends once the listeners stayed on for a second
    wait_for(lambda: "listeners resumed after " in d.log_text(), timeout=30,
             what="the end of the episode logged")


def test_idle_timeout(daemon_factory):
    d = daemon_factory({"smtpd_timeout": "2s"})
    with d.connect() as c:
        c.ehlo()
        assert_reply(c.cmd("MAIL FROM:<s@example.com>"), 250, "2.")
        c.sock.settimeout(60)
        r = c.reply()            # no command sent: the server must time out
        assert_reply(r, 421, "4.4.2")
        assert c.expect_eof(30)
    # and a stalled DATA phase too
    with d.connect() as c:
        c.ehlo()
        assert_reply(c.cmd("MAIL FROM:<s@example.com>"), 250, "2.")
        assert_reply(c.cmd("RCPT TO:<user@example.org>"), 250, "2.")
        assert c.cmd("DATA").code == 354
        c.send(b"Subject: stalled\r\n\r\npartial")
        c.sock.settimeout(60)
        assert_reply(c.reply(), 421, "4.4.2")
        assert c.expect_eof(30)
    assert d.queue_json() == []
    assert d.mail_files("user@example.org") == []
    with d.connect() as c:       # the daemon still serves
        assert_reply(c.cmd("NOOP"), 250, "2.")


def test_min_free_space(daemon_factory):
    d = daemon_factory({"min_free_space": "999999999m"})   # ~1 PB: never free
    with d.connect() as c:
        c.ehlo()
        assert_reply(c.cmd("MAIL FROM:<s@example.com>"), 452, "4.3.1")
        assert_reply(c.cmd("NOOP"), 250, "2.")


def test_client_disconnect_mid_data_queues_nothing(daemon):
    with daemon.connect() as c:
        c.ehlo()
        assert c.cmd("MAIL FROM:<s@example.com>").code == 250
        assert c.cmd("RCPT TO:<gone@example.org>").code == 250
        assert c.cmd("DATA").code == 354
        c.send(b"Subject: half\r\n\r\n" + b"data\r\n" * 1000)
        c.sock.shutdown(socket.SHUT_RDWR)
    with daemon.connect() as c:       # served after the abort
        assert_reply(c.cmd("NOOP"), 250, "2.")
    assert daemon.queue_json() == []
    assert daemon.mail_files("gone@example.org") == []


def test_max_hops(daemon_factory):
    d = daemon_factory({"max_hops": "3"})
    hop = b"Received: from a.example by b.example with ESMTP id X; Tue, 4 Mar 2025 10:15:02 +0100\r\n"
    looping = make_message(subject="loop", extra_headers=hop * 4)
    fine = make_message(subject="three hops", extra_headers=hop * 3)
    with d.connect() as c:
        c.ehlo()
        assert_reply(c.cmd("MAIL FROM:<s@example.com>"), 250, "2.")
        assert_reply(c.cmd("RCPT TO:<hops@example.org>"), 250, "2.")
        assert c.cmd("DATA").code == 354
        c.send(dot_stuff(looping))
        assert_reply(c.reply(), 554, "5.4.6")
        qid = queued_qid(c.mail_transaction("s@example.com", ["hops@example.org"], fine))
    (data,) = d.wait_mails("hops@example.org", 1)
    _, fields, rest = split_message(data)
    assert "id %s" % qid in fields[0]
    assert rest == lf(fine)
    d.wait_queue_drained()
    assert len(d.mail_files("hops@example.org")) == 1


def test_mail_before_helo(daemon):
    with daemon.connect() as c:
        assert_reply(c.cmd("MAIL FROM:<s@example.com>"), 503, "5.5.1")
        c.ehlo()
        assert_reply(c.cmd("MAIL FROM:<s@example.com>"), 250, "2.")
