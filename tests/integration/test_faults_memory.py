"""Allocations that fail mid-session (`ulimit -v`, RLIMIT_AS).

waymarkd runs with an address-space limit just above what its start-up
needs (found by trying limits upward, 4 MiB apart), then takes idle
sessions that each hold a partial command line until memory runs out.
Every client gets either its greeting or `421 4.3.0` (never a silent
close), the daemon survives, and once the clients are gone it serves a
whole transaction again.

These run against the non-sanitizer install ($WAYMARK_PREFIX_PLAIN,
scripts/test.sh makes it): AddressSanitizer reserves terabytes of address
space, so an address-space limit cannot be applied to an instrumented
binary.
"""

import os
import resource
import socket
import subprocess

import pytest

from conftest import (DaemonError, assert_reply, dot_stuff, make_message,
                      queued_qid, wait_for)

PLAIN = os.environ.get("WAYMARK_PREFIX_PLAIN")
MIB = 1 << 20


def plain_waymarkd():
    if not PLAIN:
        pytest.skip("WAYMARK_PREFIX_PLAIN is not set: an address-space "
                    "limit needs a waymarkd built without sanitizers "
                    "(scripts/test.sh installs one in _inst)")
    path = os.path.join(PLAIN, "sbin", "waymarkd")
    if not os.path.exists(path):
        pytest.skip("no waymarkd in WAYMARK_PREFIX_PLAIN=%s" % PLAIN)
    with open(path, "rb") as f:
        if b"__asan_init" in f.read():
            pytest.skip("%s is built with AddressSanitizer, which cannot "
                        "run under an address-space limit" % path)
    return path


def start_limited(d, binary, limit):
    """Start d's daemon from binary with RLIMIT_AS = limit; True if ready."""
    def lower():
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    logf = open(d.log, "ab")
    logf.write(b"=== start with RLIMIT_AS %d MiB\n" % (limit // MIB))
    logf.flush()
    d.proc = subprocess.Popen([binary, "-f", d.conf], stdin=subprocess.DEVNULL,
                              stdout=logf, stderr=subprocess.STDOUT,
                              cwd=d.dir, env=d.env, preexec_fn=lower)
    logf.close()
    try:
        d.wait_ready(timeout=15)
        return True
    except DaemonError:
        if d.proc.poll() is None:
            d.proc.kill()
        d.proc.wait()
        d.proc = None
        return False


def sockets(pid):
    n = 0
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            n += os.readlink("/proc/%d/fd/%s" % (pid, fd)).startswith("socket:")
        except OSError:
            pass
    return n


def greeting(sock):
    buf = b""
    while b"\r\n" not in buf:
        data = sock.recv(4096)
        if not data:
            break
        buf += data
    return buf


def test_sessions_get_421_when_memory_runs_out(daemon_factory):
    binary = plain_waymarkd()
    n_max = 4000
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, n_max + 500) if hard != resource.RLIM_INFINITY else n_max + 500
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    n_max = min(n_max, want - 200)
    d = daemon_factory({"max_sessions": str(n_max + 100),
                        "client_limit_exceptions": "127.0.0.0/8",
                        "smtpd_timeout": "5m",
                        "retry_schedule": "1s"}, start=False)
    for limit in range(40 * MIB, 400 * MIB, 4 * MIB):
        if start_limited(d, binary, limit):
            break
    else:
        pytest.fail("waymarkd does not start under any RLIMIT_AS up to "
                    "400 MiB:\n" + d.log_text()[-3000:])

    # a first message: the steady state (the queue's log file open, the
    # local delivery's buffers made) before memory runs out
    with d.connect() as c:
        c.ehlo()
        queued_qid(c.mail_transaction("s@example.com", ["user@example.org"],
                                      make_message(subject="before")))
    d.wait_mails("user@example.org", 1)
    sockets_before = sockets(d.pid)
    socks, counts = [], {}
    try:
        for _ in range(n_max):
            s = socket.create_connection((d.addr, d.port), timeout=30)
            g = greeting(s)
            key = g[:9].decode("ascii", "replace")
            counts[key] = counts.get(key, 0) + 1
            if g.startswith(b"220 "):
                # a partial command line for the session to hold
                s.sendall(b"NOOP " + b"x" * 2000)
                socks.append(s)
            else:
                assert g.startswith(b"421 4.3.0 "), g
                s.close()
                if counts.get("421 4.3.0", 0) >= 50:
                    break
        assert d.running, d.log_text()[-3000:]
        assert set(counts) <= {"220 mx.te", "421 4.3.0"}, counts
        assert counts.get("421 4.3.0", 0) >= 1, \
            "memory never ran out under %d MiB: %s" % (limit // MIB, counts)
        # the sessions that got in still answer, or say why they cannot
        for s in socks[:50]:
            s.sendall(b"\r\n")
            r = greeting(s)
            assert r.startswith(b"250 ") or r.startswith(b"421 4.3.0 "), r
    finally:
        for s in socks:
            s.close()
    print("RLIMIT_AS %d MiB: %s" % (limit // MIB, counts))
    assert d.running, d.log_text()[-3000:]

    # memory is back once every session is gone: a whole transaction
    wait_for(lambda: sockets(d.pid) <= sockets_before, timeout=60,
             interval=0.2, what="every session closed")
    def transaction():
        with d.connect() as c:
            if c.greeting.code != 220:
                return None
            c.ehlo()
            assert_reply(c.cmd("MAIL FROM:<s@example.com>"), 250, "2.")
            assert_reply(c.cmd("RCPT TO:<user@example.org>"), 250, "2.")
            r = c.cmd("DATA")
            if r.code != 354:
                # the heap is at its limit and fragmented: 451 4.3.0
                assert_reply(r, 451, "4.3.0")
                return None
            c.send(dot_stuff(make_message(subject="after")))
            return queued_qid(c.reply())
    qid = wait_for(transaction, timeout=30, interval=0.5,
                   what="a whole transaction again")
    data = d.wait_mails("user@example.org", 2)
    assert any(qid.encode() in m for m in data)
