"""Many sessions and slow clients.

1. 1000 concurrent idle SMTP sessions (max_sessions = 1000): each gets its
   greeting, the 1001st waits in the listen backlog (the listeners pause;
   no 421), the sessions still answer, a freed slot lets the waiting one
   in, and once every client has gone the
   daemon holds exactly the descriptors it held before (/proc/PID/fd).
   The clients are exempt from the per-client cap (client_limit_exceptions)
   so that only max_sessions applies.
2. Clients sending one octet per second (a command line, the DATA content)
   are ended by `smtpd_timeout` / `smtpd_data_min_rate` with `421 4.4.2`,
   while other sessions are served in full before the first of them ends.

RSS per idle session is measured by bench/sessions.sh, not here.
"""

import os
import resource
import socket
import threading

import pytest

from conftest import assert_reply, make_message, queued_qid, wait_for

N = 1000


def raise_nofile(n):
    """The test process (and the daemon it starts) may open n descriptors."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = n if hard == resource.RLIM_INFINITY else min(n, hard)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def fds(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def greeting(sock):
    """The first reply line of a raw socket session (bytes)."""
    buf = b""
    while b"\r\n" not in buf:
        data = sock.recv(4096)
        if not data:
            break
        buf += data
    return buf


def open_idle(d, n):
    socks = []
    for _ in range(n):
        s = socket.create_connection((d.addr, d.port), timeout=30)
        socks.append(s)
        g = greeting(s)
        assert g.startswith(b"220 "), (len(socks), g)
    return socks


def test_1000_idle_sessions(daemon_factory):
    if raise_nofile(2 * N + 200) < 2 * N + 100:
        pytest.skip("RLIMIT_NOFILE hard limit too low for %d sessions" % N)
    d = daemon_factory({"max_sessions": str(N),
                        "client_limit_exceptions": "127.0.0.0/8",
                        "smtpd_timeout": "5m"})
    pid = d.pid
    with d.connect() as c:           # one whole session first: every lazily
        c.ehlo()                     # opened descriptor is counted before
        queued_qid(c.mail_transaction("s@example.com", ["user@example.org"],
                                      make_message()))
        c.cmd("QUIT")
    d.wait_mails("user@example.org", 1)
    d.wait_queue_drained()
    before = fds(pid)

    socks = open_idle(d, N - 1)
    try:
        # the daemon still answers a new session up to the limit: c is
        # the N-th
        with d.connect() as c:
            c.ehlo()
            assert_reply(c.cmd("NOOP"), 250, "2.")
            extra = d.connect(greet=False)      # the N+1-th waits
            extra.sock.settimeout(1)
            with pytest.raises(socket.timeout):
                extra.sock.recv(100)
            extra.sock.settimeout(30)
            assert_reply(c.cmd("NOOP"), 250, "2.")
        # c has gone: its slot lets the waiting one in
        extra.greeting = extra.reply()
        assert extra.greeting.code == 220, extra.greeting
        for s in (socks[0], socks[N // 2], socks[-1]):   # idle ones answer
            s.sendall(b"NOOP\r\n")
            assert greeting(s).startswith(b"250 ")
        assert_reply(extra.cmd("NOOP"), 250, "2.")
        socks.append(extra.sock)
        assert "listeners paused: max_sessions %d reached" % N in d.log_text()
        assert fds(pid) >= before + N - 1
    finally:
        for s in socks:
            s.close()
    # every descriptor of the sessions is released
    wait_for(lambda: fds(pid) == before, timeout=60, interval=0.2,
             what="the daemon's descriptors back to %d (now %d)"
             % (before, fds(pid)))
    # and the limit is whole again
    socks = open_idle(d, N)
    try:
        extra = d.connect(greet=False)
        extra.sock.settimeout(1)
        with pytest.raises(socket.timeout):
            extra.sock.recv(100)
        extra.close()
    finally:
        for s in socks:
            s.close()
    wait_for(lambda: fds(pid) == before, timeout=60, interval=0.2,
             what="the daemon's descriptors back to %d" % before)


def trickle(sock, data, stop):
    """Send data one octet per second until done, stopped or refused."""
    for i in range(len(data)):
        if stop.wait(1.0):
            return
        try:
            sock.sendall(data[i:i + 1])
        except OSError:
            return


def test_slow_clients_time_out_without_delaying_others(daemon_factory):
    d = daemon_factory({"smtpd_timeout": "4s",
                        "smtpd_data_min_rate": "100",
                        "smtpd_data_rate_grace": "4s"})
    stop = threading.Event()
    slow, threads = [], []
    try:
        for i in range(8):
            c = d.connect()
            c.ehlo()
            if i % 2:                # slow in DATA
                assert_reply(c.cmd("MAIL FROM:<s@example.com>"), 250, "2.")
                assert_reply(c.cmd("RCPT TO:<user@example.org>"), 250, "2.")
                assert c.cmd("DATA").code == 354
                data = b"Subject: slow\r\n\r\n" + b"z" * 100
            else:                    # slow command line
                data = b"NOOP " + b"x" * 100 + b"\r\n"
            t = threading.Thread(target=trickle, args=(c.sock, data, stop))
            t.start()
            slow.append(c)
            threads.append(t)
        # meanwhile whole transactions go through
        done = []
        for i in range(5):
            with d.connect() as c:
                c.ehlo()
                done.append(queued_qid(c.mail_transaction(
                    "s@example.com", ["user@example.org"],
                    make_message(subject="fast %d" % i))))
            # ...before any slow client has been timed out
            assert "timeout in state" not in d.log_text()
            assert "data rate too low" not in d.log_text()
        d.wait_mails("user@example.org", len(done))
        for c in slow:
            c.sock.settimeout(30)
            r = c.reply()
            assert_reply(r, 421, "4.4.2")
            assert c.expect_close(30)
    finally:
        stop.set()
        for t in threads:
            t.join()
        for c in slow:
            c.close()
    log = d.log_text()
    assert log.count("command line not completed") == 4, log[-3000:]
    assert log.count("data rate too low: ") == 4, log[-3000:]
    assert len(d.mail_files("user@example.org")) == 5
    assert [m for m in d.queue_json()
            if m["recipients"][0]["status"] in ("queued", "deferred")] == []
