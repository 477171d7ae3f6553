"""AUTH password checks off the event loop, and the per-client-address
failure limit (issue 14, point 3; DESIGN.md "Password checks" and
"Per-client limits").

- crypt(3) runs in its own pool of at most 2 threads: while 20 clients
  guess passwords against a bcrypt user, every NOOP of another session is
  answered within 50 ms; when the pool's queue is full, AUTH gets 454 4.7.0.
- auth_failures = N per DURATION (default 5 per 10m) counts failures per
  client address (not per session), and checks in flight with them, so
  parallel sessions cannot start more than N checks: at N, AUTH from that
  address gets 454 4.7.0 without a password check until the window (a
  fixed one, opened by the address's first failure) has passed; other
  addresses are not affected, nor are clients in client_limit_exceptions.
- An unknown user, and a listed one whose hash is locked ("!..."), cost a
  check like the dearest entry's (a cheaper first entry is not used; mixed
  schemes are warned about at start).  A password longer than 256 octets
  fails like a wrong one (after a check cut to 256 octets).
- The server's turn (the check, the 1 s failure delay) does not count
  against smtpd_timeout; a line trickled inside the AUTH exchange does.
- A client that goes away while its check runs is forgotten safely.

The 127.0.0.x clients bind their source address; tests of the limit set
client_limit_exceptions so that they are strangers."""

import base64
import ctypes
import os
import re
import socket
import struct
import threading
import time

from conftest import (SMTPConn, assert_reply, free_port, run_waymarkd,
                      wait_for)

USER, PASSWORD = "alice", "s3cret pass"

_libcrypt = ctypes.CDLL("libcrypt.so.1")
_libcrypt.crypt.restype = ctypes.c_char_p
_libcrypt.crypt.argtypes = (ctypes.c_char_p, ctypes.c_char_p)
_libcrypt.crypt_gensalt.restype = ctypes.c_char_p
_libcrypt.crypt_gensalt.argtypes = (ctypes.c_char_p, ctypes.c_ulong,
                                    ctypes.c_char_p, ctypes.c_int)


def crypt_hash(password, prefix="$6$", cost=0):
    """A crypt(3) hash from libcrypt (the daemon's own library): SHA-512
    by default, bcrypt with prefix "$2b$" and cost."""
    setting = _libcrypt.crypt_gensalt(prefix.encode(), cost, None, 0)
    assert setting, "crypt_gensalt(%s, %d) failed" % (prefix, cost)
    h = _libcrypt.crypt(password.encode(), setting)
    assert h and h.startswith(prefix.encode()), h
    return h.decode()


# bcrypt hashes of PASSWORD (made with crypt_hash(PASSWORD, "$2b$", cost)
# once; computing them costs as much as checking them): cost 12 ~0.2 s a
# check, 14 ~0.8 s, 15 ~1.6 s on the 2-core test box
BCRYPT = {
    12: "$2b$12$Ma.dLUbUDMFYfDJUV2njZeAkcuDDf64llAtgRI.k9h9HhvMqwMFmK",
    14: "$2b$14$53Y1.2HiDPYcvhWrGPiTeOdNx2ONq0c1bADd2RsktaNvDk5n.T6NC",
    15: "$2b$15$5YDZYBLtjSciOgYyc9ww4OdxYcyNLvnRIrlBAwUsOL.Xobk/.ckyy",
}


def b64(s):
    return base64.b64encode(s.encode()).decode()


def plain(user=USER, password=PASSWORD):
    return b64("\0%s\0%s" % (user, password))


class Client(SMTPConn):
    """SMTPConn from a chosen loopback source address."""

    def __init__(self, port, source="127.0.0.1", timeout=30.0):
        self.sock = socket.create_connection(("127.0.0.1", port),
                                             timeout=timeout,
                                             source_address=(source, 0))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.greeting = self.reply()
        assert self.greeting.code == 220, self.greeting

    def auth(self, user=USER, password=PASSWORD):
        return self.cmd("AUTH PLAIN " + plain(user, password))

    def reset(self):
        """Close with a TCP RST (the server sees an error, not EOF)."""
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                             struct.pack("ii", 1, 0))
        self.close()


def auth_daemon(daemon_factory, hash_, users_text=None, **extra):
    """A daemon with a plaintext-AUTH submission listener and users alice
    and bob (or the auth_users file users_text)."""
    d = daemon_factory(start=False)
    d.sub_port = free_port()
    users = os.path.join(d.dir, "users")
    with open(users, "w") as f:
        f.write(users_text if users_text is not None else
                "%s:%s\nbob:%s\n" % (USER, hash_, hash_))
    os.chmod(users, 0o644)
    d.config.update({
        "submission": "127.0.0.1:%d" % d.sub_port,
        "auth_users": users,
        "submission_plaintext_auth": "yes",
    })
    d.config.update(extra)
    d.write_config()
    d.start()
    return d


def test_noop_answered_while_clients_hammer_auth(daemon_factory):
    # the hammering clients are exempt, so every guess costs a bcrypt check
    d = auth_daemon(daemon_factory, BCRYPT[12],
                    client_limit_exceptions="127.0.0.0/8")
    stop = threading.Event()
    replies = {}
    open_clients = set()
    lock = threading.Lock()

    def hammer():
        while not stop.is_set():
            c = None
            try:
                c = Client(d.sub_port)
                with lock:
                    open_clients.add(c)
                c.ehlo()
                while not stop.is_set():
                    r = c.auth(password="guess")
                    with lock:
                        replies[r.code] = replies.get(r.code, 0) + 1
                    if r.code == 421:
                        break
            except (OSError, EOFError, AssertionError):
                time.sleep(0.05)
            finally:
                if c is not None:
                    with lock:
                        open_clients.discard(c)
                    c.close()

    observer = SMTPConn(d.port)
    observer.ehlo()
    threads = [threading.Thread(target=hammer, daemon=True) for _ in range(20)]
    for t in threads:
        t.start()
    lat = []
    try:
        wait_for(lambda: d.log_text().count("auth failed") >= 10, timeout=60,
                 interval=0.2, what="AUTH guesses under way")
        for _ in range(20):         # spread over ~2 s of hammering
            t0 = time.perf_counter()
            assert_reply(observer.cmd("NOOP"), 250)
            lat.append(time.perf_counter() - t0)
            time.sleep(0.1)
    finally:
        stop.set()
        with lock:              # wake the clients waiting for a reply
            for c in open_clients:
                try:
                    c.sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        for t in threads:
            t.join(timeout=30)
        observer.close()
    # The bound, "a NOOP on another session answers within 50 ms",
    # is checked on every NOOP.  Slack for a loaded 2-core box under ASan
    # (the test's 20 client threads, the 2 checker threads and other jobs
    # share the cores): at most one NOOP may take over 50 ms -- one
    # scheduling hiccup -- and none over 250 ms.  With crypt on the loop
    # every NOOP waits behind ~0.2 s checks (0.7-4 s measured), so this
    # fails on nearly every NOOP.
    shown = ["%.4f" % x for x in lat]
    slow = [x for x in lat if x > 0.050]
    assert len(slow) <= 1, "NOOP latencies (s) while AUTH is hammered: " \
        "%s; AUTH replies %s" % (shown, replies)
    assert max(lat) < 0.250, "NOOP latencies (s): %s" % shown
    assert replies.get(535, 0) > 0, replies


def test_check_queue_full_answered_454(daemon_factory):
    d = auth_daemon(daemon_factory, BCRYPT[12],
                    client_limit_exceptions="127.0.0.0/8")
    # 2 checkers + 16 waiting: 30 guesses at once overflow the queue
    conns = [Client(d.sub_port) for _ in range(30)]
    try:
        for c in conns:
            c.ehlo()
        for c in conns:
            c.send("AUTH PLAIN %s\r\n" % plain(password="guess"))
        replies = [c.reply() for c in conns]
    finally:
        for c in conns:
            c.close()
    busy = [r for r in replies if r.code == 454]
    for r in replies:
        assert r.code in (454, 535), replies
    for r in busy:
        assert_reply(r, 454, "4.7.0")
    assert 5 <= len(busy) <= 12, replies
    assert d.log_text().count("reason=check_queue_full") == len(busy)


def test_failure_limit_per_client_address(daemon_factory):
    d = auth_daemon(daemon_factory, crypt_hash(PASSWORD),
                    auth_failures="2 per 4s", client_limit_exceptions="",
                    relay_from="")
    # two sessions from one address fail once each, at the same time
    a, b = Client(d.sub_port, "127.0.0.2"), Client(d.sub_port, "127.0.0.2")
    with a, b:
        a.ehlo()
        b.ehlo()
        a.send("AUTH PLAIN %s\r\n" % plain(password="wrong"))
        b.send("AUTH PLAIN %s\r\n" % plain(user="nobody-here"))
        assert_reply(a.reply(), 535, "5.7.8")
        assert_reply(b.reply(), 535, "5.7.8")
    # a third session from the same address: the limit is per address
    with Client(d.sub_port, "127.0.0.2") as c:
        c.ehlo()
        assert_reply(c.auth(), 454, "4.7.0")        # right password, refused
        assert_reply(c.cmd("AUTH LOGIN " + b64(USER)), 454, "4.7.0")
        assert_reply(c.cmd("MAIL FROM:<alice@example.com>"), 530, "5.7.0")
    # another address is not affected
    with Client(d.sub_port, "127.0.0.3") as c:
        c.ehlo()
        assert_reply(c.auth(), 235, "2.7.0")
    log = d.log_text()
    assert log.count("auth failed") == 2, log      # refused ones unchecked
    assert log.count("auth refused client=[127.0.0.2] reason=auth_failures") == 2
    assert "client_failures=2" in log, log

    # the window passes: 127.0.0.2 may authenticate again
    def lifted():
        with Client(d.sub_port, "127.0.0.2") as c:
            c.ehlo()
            r = c.auth()
            assert r.code in (235, 454), r
            return r.code == 235
    wait_for(lifted, timeout=20, interval=0.2, what="the 4 s window to pass")


def test_parallel_sessions_cannot_pass_the_limit(daemon_factory):
    # the limit was checked when a check was submitted, a failure counted
    # when it finished: 12 sessions at once were all checked with
    # auth_failures = 2.  Checks in flight now count against the limit.
    n = 2
    d = auth_daemon(daemon_factory, BCRYPT[12],
                    auth_failures="%d per 10m" % n, client_limit_exceptions="",
                    max_sessions_per_client="50")
    conns = [Client(d.sub_port, "127.0.0.2") for _ in range(n + 10)]
    try:
        for c in conns:
            c.ehlo()
        lines = [("AUTH PLAIN %s\r\n" % plain(password="wrong%d" % i)).encode()
                 for i in range(len(conns))]
        for c, line in zip(conns, lines):   # all at the same moment
            c.send(line)
        replies = [c.reply() for c in conns]
    finally:
        for c in conns:
            c.close()
    failed = [r for r in replies if r.code == 535]
    limited = [r for r in replies if r.code == 454]
    assert len(failed) + len(limited) == len(conns), replies
    assert 1 <= len(failed) <= n, replies
    for r in failed:
        assert_reply(r, 535, "5.7.8")
    for r in limited:
        assert_reply(r, 454, "4.7.0")
        assert "Too many authentication failures" in r.text, r
    log = d.log_text()
    counts = [int(x) for x in re.findall(r"client_failures=(\d+)", log)]
    assert counts and max(counts) <= n, counts
    assert log.count("reason=auth_failures") == len(limited), log[-3000:]
    assert "reason=check_queue_full" not in log


def test_exempt_client_not_limited(daemon_factory):
    # client_limit_exceptions unset: the relay_from networks (127.0.0.0/8)
    d = auth_daemon(daemon_factory, crypt_hash(PASSWORD),
                    auth_failures="2 per 1h")
    with Client(d.sub_port, "127.0.0.2") as c:
        c.ehlo()
        assert_reply(c.auth(password="x"), 535, "5.7.8")
        assert_reply(c.auth(password="y"), 535, "5.7.8")
        assert_reply(c.auth(password="z"), 421, "4.7.0")  # per session: 3
    with Client(d.sub_port, "127.0.0.2") as c:
        c.ehlo()
        assert_reply(c.auth(password="w"), 535, "5.7.8")
        assert_reply(c.auth(), 235, "2.7.0")
    log = d.log_text()
    assert "reason=auth_failures" not in log, log
    assert log.count("client_failures=0") == 4, log


def test_client_gone_during_check(daemon_factory):
    # bcrypt cost 14: ~0.8 s a check
    d = auth_daemon(daemon_factory, BCRYPT[14],
                    client_limit_exceptions="127.0.0.0/8")
    observer = SMTPConn(d.port)
    observer.ehlo()
    gone = [Client(d.sub_port) for _ in range(4)]
    for c in gone:
        c.ehlo()
        c.send("AUTH PLAIN %s\r\n" % plain())
    time.sleep(0.1)
    for i, c in enumerate(gone):      # half reset, half closed
        if i % 2:
            c.reset()
        else:
            c.close()
    # seconds of checks are left: the loop still answers at once
    t0 = time.perf_counter()
    assert_reply(observer.cmd("NOOP"), 250)
    took = time.perf_counter() - t0
    observer.close()
    assert took < 0.25, "NOOP took %.3f s while checks ran" % took
    # the results come back to sessions that are gone (or closing)
    with Client(d.sub_port) as c:
        c.ehlo()
        assert_reply(c.auth(), 235, "2.7.0")
        assert_reply(c.cmd("NOOP"), 250)
    wait_for(lambda: d.log_text().count("disconnect from") >= 7, timeout=30,
             what="the sessions to end")
    assert d.running


def test_unknown_user_costs_a_check(daemon_factory):
    # an unknown user's password, and a locked entry's ("!" before the
    # hash), are hashed with the dummy setting: the dearest entry's, not
    # the first one's (a cheap SHA-512 entry comes first here), so these
    # failures take as long as a known user's.  bcrypt cost 15 (~1.6 s):
    # a check longer than the 1 s failure delay, which would hide it
    users = "dave:%s\n%s:%s\ncarol:!%s\n" % (
        crypt_hash("dave's"), USER, BCRYPT[15], BCRYPT[15])
    d = auth_daemon(daemon_factory, None, users_text=users,
                    client_limit_exceptions="127.0.0.0/8")

    def failure_time(user):
        with Client(d.sub_port) as c:
            c.ehlo()
            t0 = time.monotonic()
            assert_reply(c.auth(user=user, password="guess"), 535, "5.7.8")
            return time.monotonic() - t0

    known = failure_time(USER)
    unknown = failure_time("mallory")
    locked = failure_time("carol")
    # all include the 1 s failure delay; the others must cost at least
    # half of the known user's check (a cheap dummy, or crypt refusing
    # the locked hash at once, costs ~nothing)
    assert unknown - 1.0 > 0.5 * (known - 1.0), (known, unknown)
    assert locked - 1.0 > 0.5 * (known - 1.0), (known, locked)
    log = d.log_text()
    assert "auth failed user=mallory" in log
    assert re.search(r"auth failed user=carol .*reason=locked", log), log
    # mixed schemes are worth a warning at start
    assert "the hashes differ in scheme or cost" in log, log


def test_long_password_fails_like_a_wrong_one(daemon_factory):
    # SHA-crypt's cost grows with the password's length: over 256 octets
    # a password fails (535, counted), even the right one, after a dummy
    # check of 256 octets
    long_pw, ok_pw = "p" * 257, "q" * 256
    users = "%s:%s\nbob:%s\n" % (USER, crypt_hash(long_pw),
                                  crypt_hash(ok_pw))
    d = auth_daemon(daemon_factory, None, users_text=users,
                    auth_failures="2 per 10m", client_limit_exceptions="")
    with Client(d.sub_port, "127.0.0.2") as c:
        c.ehlo()
        assert_reply(c.auth(user="bob", password=ok_pw), 235, "2.7.0")
    with Client(d.sub_port, "127.0.0.2") as c:
        c.ehlo()
        assert_reply(c.auth(password=long_pw), 535, "5.7.8")
        assert c.cmd("AUTH LOGIN " + b64(USER)).code == 334
        assert_reply(c.cmd(b64("x" * 1500)), 535, "5.7.8")
    # both counted: the address is at its limit
    with Client(d.sub_port, "127.0.0.2") as c:
        c.ehlo()
        assert_reply(c.auth(user="bob", password=ok_pw), 454, "4.7.0")
    log = d.log_text()
    assert log.count("reason=password_too_long") == 2, log
    assert "client_failures=2" in log, log


def test_check_time_not_counted_against_timeout(daemon_factory):
    # smtpd_timeout bounds the client's waits, not the server's turn: AUTH
    # sent 2.5 s into a 3 s wait, answered after a ~0.8 s check (bcrypt
    # cost 14) and the 1 s failure delay, gets its 535, not 421 4.4.2
    d = auth_daemon(daemon_factory, BCRYPT[14], smtpd_timeout="3s",
                    client_limit_exceptions="127.0.0.0/8")
    with Client(d.sub_port) as c:
        c.ehlo()
        time.sleep(2.5)
        t0 = time.monotonic()
        r = c.auth(password="wrong")
        took = time.monotonic() - t0
        assert_reply(r, 535, "5.7.8")
        assert took >= 0.9, took
        # the client's wait starts anew at the 535: idle, it times out
        # one smtpd_timeout later
        t1 = time.monotonic()
        c.sock.settimeout(20)
        r = c.reply()
        idle = time.monotonic() - t1
        assert_reply(r, 421, "4.4.2")
        assert c.expect_eof(10)
    assert 2.5 <= idle <= 6.0, idle
    assert "timeout in state READY: no command" in d.log_text()


def test_trickled_auth_response_times_out(daemon_factory):
    # a line trickled inside the AUTH exchange is bounded like a command
    # line: smtpd_timeout from its first octet
    d = auth_daemon(daemon_factory, crypt_hash(PASSWORD), smtpd_timeout="3s",
                    client_limit_exceptions="127.0.0.0/8")
    with Client(d.sub_port) as c:
        c.ehlo()
        assert c.cmd("AUTH LOGIN").code == 334
        line = (b64(USER) * 8).encode() + b"\r\n"
        stop = threading.Event()

        def trickle():
            for i in range(len(line)):
                if stop.is_set():
                    return
                try:
                    c.sock.sendall(line[i:i + 1])
                except OSError:
                    return
                stop.wait(1.0)
        t = threading.Thread(target=trickle, daemon=True)
        first = time.monotonic()
        t.start()
        try:
            c.sock.settimeout(15)
            r = c.reply()
            when = time.monotonic() - first
            assert_reply(r, 421, "4.4.2")
            assert c.expect_eof(10)
        finally:
            stop.set()
            t.join()
    assert 2.0 <= when <= 9.0, when
    assert "timeout in state AUTH: command line not completed" in \
        d.log_text()


def test_auth_failures_config(tmp_path):
    conf = tmp_path / "w.conf"
    conf.write_text("listen = 127.0.0.1:2525\n")
    p = run_waymarkd("-n", "-f", str(conf))
    assert p.returncode == 0, p.err
    assert "auth_failures = 5 per 10m" in p.out.splitlines(), p.out
    conf.write_text("auth_failures = 3 per 90s\n")
    p = run_waymarkd("-n", "-f", str(conf))
    assert p.returncode == 0, p.err
    assert "auth_failures = 3 per 90s" in p.out.splitlines(), p.out
    for value, reason in (("5", 'invalid value "5" (N per DURATION)'),
                          ("5 per", 'invalid value "5 per" (N per DURATION)'),
                          ("x per 1m", 'invalid number "x"'),
                          ("0 per 1m", '"0" below minimum 1'),
                          ("5 per 1y", 'invalid duration "1y"'),
                          ("5 per 0", '"0" below minimum 1s')):
        conf.write_text("# c\nauth_failures = %s\n" % value)
        p = run_waymarkd("-n", "-f", str(conf))
        assert p.returncode == 1, (value, p.out)
        assert "%s:2: auth_failures: %s" % (conf, reason) in p.err, p.err
