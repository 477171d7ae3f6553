"""Session limits and deadlines (issue 14, point 4; DESIGN.md "Per-client
limits", "Timeouts"): max_sessions_per_client for clients outside
client_limit_exceptions (421 4.7.0, the slot free again as soon as a session
ends), smtpd_timeout bounding each command line from its first octet (a
trickle gets 421 4.4.2), smtpd_data_min_rate after smtpd_data_rate_grace
(421 4.4.2, nothing queued), and the keys in `waymarkd -n`.

Clients bind 127.0.0.2 / 127.0.0.3 as their source address; the per-client
tests empty client_limit_exceptions so that these are strangers (by default
the relay_from networks, loopback included, are exempt)."""

import socket
import threading
import time

from conftest import (SMTPConn, assert_reply, make_message,
                      parse_config_dump, queued_qid, run_waymarkd, wait_for)


class SourceConn(SMTPConn):
    """SMTPConn from a chosen loopback source address."""

    def __init__(self, port, source, timeout=30.0):
        self.sock = socket.create_connection(("127.0.0.1", port),
                                             timeout=timeout,
                                             source_address=(source, 0))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.greeting = self.reply()


def refused(c):
    """c was refused for its address: 421 4.7.0, then closed."""
    assert_reply(c.greeting, 421, "4.7.0")
    assert "Too many connections from your address" in c.greeting.text, \
        c.greeting
    assert c.expect_eof(10)
    c.close()


def rejects_logged(d, addr):
    return sum(1 for l in d.log_text().splitlines()
               if "reject client=[%s]" % addr in l and
               "Too many connections" in l)


def test_per_client_cap(daemon_factory):
    d = daemon_factory({"client_limit_exceptions": "",
                        "max_sessions_per_client": "3"})
    mine = [SourceConn(d.port, "127.0.0.2") for _ in range(3)]
    for c in mine:
        assert c.greeting.code == 220, c.greeting
    refused(SourceConn(d.port, "127.0.0.2"))
    assert rejects_logged(d, "127.0.0.2") == 1, d.log_text()[-3000:]
    # another address is not affected, and the three still work
    with SourceConn(d.port, "127.0.0.3") as other:
        assert other.greeting.code == 220, other.greeting
        assert_reply(other.cmd("NOOP"), 250, "2.")
    for c in mine:
        assert_reply(c.cmd("NOOP"), 250, "2.")
    # a session that ended (221 sent, closed) frees its slot at once
    assert mine[0].cmd("QUIT").code == 221
    assert mine[0].expect_eof(10)
    mine[0].close()
    again = SourceConn(d.port, "127.0.0.2")
    assert again.greeting.code == 220, again.greeting
    refused(SourceConn(d.port, "127.0.0.2"))
    # a client that just goes away frees its slot too
    mine[1].close()

    def slot_free():
        x = SourceConn(d.port, "127.0.0.2")
        if x.greeting.code == 220:
            return x
        x.close()
        return None
    fresh = wait_for(slot_free, timeout=5, interval=0.1,
                     what="the slot of a client that left")
    for c in (mine[2], again, fresh):
        assert_reply(c.cmd("NOOP"), 250, "2.")
        c.close()


def test_per_client_cap_default_is_a_quarter(daemon_factory):
    d = daemon_factory({"client_limit_exceptions": "", "max_sessions": "8"})
    p = run_waymarkd("-n", "-f", d.conf)
    assert p.returncode == 0, p.err
    assert parse_config_dump(p.out)["max_sessions_per_client"] == "2", p.out
    mine = [SourceConn(d.port, "127.0.0.2") for _ in range(2)]
    for c in mine:
        assert c.greeting.code == 220, c.greeting
    for _ in range(3):                      # the third to fifth
        refused(SourceConn(d.port, "127.0.0.2"))
    assert rejects_logged(d, "127.0.0.2") == 3
    with SourceConn(d.port, "127.0.0.3") as other:
        assert other.greeting.code == 220, other.greeting
    for c in mine:
        assert_reply(c.cmd("NOOP"), 250, "2.")
        c.close()


def test_exempt_client_not_capped(daemon_factory):
    # default client_limit_exceptions: the relay_from networks (loopback)
    d = daemon_factory({"max_sessions": "8", "max_sessions_per_client": "2"})
    mine = [SourceConn(d.port, "127.0.0.2") for _ in range(8)]
    for c in mine:
        assert c.greeting.code == 220, c.greeting
    # only max_sessions applies: the ninth waits in the backlog, no 421
    extra = socket.create_connection(("127.0.0.1", d.port), timeout=1,
                                     source_address=("127.0.0.2", 0))
    try:
        early = extra.recv(100)
    except socket.timeout:
        early = None
    assert early is None, early
    for c in mine:
        assert_reply(c.cmd("NOOP"), 250, "2.")
    mine.pop().close()
    extra.settimeout(30)
    assert extra.recv(100).startswith(b"220 "), "greeted once a slot is free"
    extra.close()
    for c in mine:
        c.close()
    assert rejects_logged(d, "127.0.0.2") == 0


def trickle(sock, data, interval, stop):
    """Send data one octet per interval until done, stopped or closed."""
    for i in range(len(data)):
        if stop.is_set():
            return
        try:
            sock.sendall(data[i:i + 1])
        except OSError:
            return
        stop.wait(interval)


def test_command_line_deadline(daemon_factory):
    d = daemon_factory({"smtpd_timeout": "3s"})
    with d.connect() as c:
        c.ehlo()
        # complete commands with pauses below smtpd_timeout are fine,
        # even when the whole exchange lasts longer than it
        for _ in range(2):
            time.sleep(1.5)
            assert_reply(c.cmd("NOOP"), 250, "2.")
        time.sleep(1.5)          # half the idle wait, then a 1 octet/s line
        stop = threading.Event()
        line = b"NOOP " + b"x" * 40 + b"\r\n"
        t = threading.Thread(target=trickle, args=(c.sock, line, 1.0, stop))
        first = time.monotonic()
        t.start()
        try:
            # meanwhile another session is served normally
            time.sleep(0.5)
            with d.connect() as o:
                o.ehlo()
                assert_reply(o.cmd("NOOP"), 250, "2.")
            c.sock.settimeout(12)
            r = c.reply()
            when = time.monotonic() - first
            assert_reply(r, 421, "4.4.2")
            stop.set()
            assert c.expect_close(10)
        finally:
            stop.set()
            t.join()
    # from the line's first octet: not from the idle wait before it, not later
    assert 2.0 <= when <= 9.0, when
    assert "command line not completed" in d.log_text()
    with d.connect() as c:
        assert_reply(c.cmd("NOOP"), 250, "2.")


def start_data(c, rcpt):
    c.ehlo()
    assert_reply(c.cmd("MAIL FROM:<s@example.com>"), 250, "2.")
    assert_reply(c.cmd("RCPT TO:<%s>" % rcpt), 250, "2.")
    assert c.cmd("DATA").code == 354


def slow_body(c, chunk, n, interval):
    """Send n chunks, one per interval, then the end of the message."""
    c.send(b"Subject: slow\r\n\r\n")
    for _ in range(n):
        time.sleep(interval)
        c.send(chunk)
    c.send(b".\r\n")
    return c.reply()


def test_data_min_rate(daemon_factory):
    d = daemon_factory({"smtpd_data_rate_grace": "2s",
                        "smtpd_data_min_rate": "1k"})
    with d.connect() as c:
        start_data(c, "slow@example.org")
        stop = threading.Event()
        body = b"Subject: slow\r\n\r\n" + (b"y" * 98 + b"\r\n") * 20
        # 100 octets per second, sent a line at a time
        def send_lines():
            for i in range(0, len(body), 100):
                if stop.is_set():
                    return
                try:
                    c.sock.sendall(body[i:i + 100])
                except OSError:
                    return
                stop.wait(1.0)
        t = threading.Thread(target=send_lines)
        begin = time.monotonic()
        t.start()
        try:
            c.sock.settimeout(12)
            r = c.reply()
            when = time.monotonic() - begin
            assert_reply(r, 421, "4.4.2")
            assert "data rate too low" in r.text, r
            stop.set()
            assert c.expect_close(10)
        finally:
            stop.set()
            t.join()
    assert 1.9 <= when <= 6.0, when       # shortly after the 2 s grace
    assert "data rate too low" in d.log_text()
    assert d.queue_json() == []
    assert d.mail_files("slow@example.org") == []

    # a normal client: 200 KB at once, and one slow but above 1k/s
    with d.connect() as c:
        c.ehlo()
        big = make_message(subject="big", body=(b"z" * 78 + b"\r\n") * 2500)
        qid1 = queued_qid(c.mail_transaction("s@example.com",
                                             ["fast@example.org"], big))
    with d.connect() as c:
        start_data(c, "steady@example.org")
        qid2 = queued_qid(slow_body(c, b"w" * 998 + b"\r\n", 10, 0.3))
    assert qid1 != qid2
    d.wait_mails("fast@example.org", 1)
    d.wait_mails("steady@example.org", 1)


def test_data_min_rate_off(daemon_factory):
    d = daemon_factory({"smtpd_data_rate_grace": "1s",
                        "smtpd_data_min_rate": "0"})
    with d.connect() as c:
        start_data(c, "slow@example.org")
        qid = queued_qid(slow_body(c, b"y" * 98 + b"\r\n", 4, 0.8))
    assert qid
    d.wait_mails("slow@example.org", 1)


def test_config_keys(daemon_factory):
    d = daemon_factory(start=False)
    p = run_waymarkd("-n", "-f", d.conf)
    assert p.returncode == 0, p.err
    cfg = parse_config_dump(p.out)
    assert cfg["max_sessions"] == "100"
    assert cfg["max_sessions_per_client"] == "25"
    assert cfg["smtpd_data_min_rate"] == "1k"
    assert cfg["smtpd_data_rate_grace"] == "1m"
    d = daemon_factory({"max_sessions": "10", "max_sessions_per_client": "7",
                        "smtpd_data_min_rate": "0",
                        "smtpd_data_rate_grace": "5s"}, start=False)
    cfg = parse_config_dump(run_waymarkd("-n", "-f", d.conf).out)
    assert cfg["max_sessions_per_client"] == "7"
    assert cfg["smtpd_data_min_rate"] == "0"
    assert cfg["smtpd_data_rate_grace"] == "5s"
    d = daemon_factory({"max_sessions": "3"}, start=False)
    cfg = parse_config_dump(run_waymarkd("-n", "-f", d.conf).out)
    assert cfg["max_sessions_per_client"] == "1"
    d = daemon_factory({"max_sessions_per_client": "0"}, start=False)
    p = run_waymarkd("-n", "-f", d.conf)
    assert p.returncode == 1
    assert "max_sessions_per_client" in p.err, p.err
