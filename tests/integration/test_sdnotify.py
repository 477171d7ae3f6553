"""
Service manager notification (issue 12): with $NOTIFY_SOCKET set, as
systemd sets it for Type=notify, waymarkd sends "READY=1" once its
listeners answer, "RELOADING=1" then "READY=1" around each SIGHUP (a
failed reload too) and "STOPPING=1" at SIGTERM, as datagrams from its own
pid (systemd's NotifyAccess=main checks the sender's credentials).  The
socket may be a path (here in a root-only 0700 directory: the daemon
connects before it drops to `user`) or an abstract name "@NAME".  A
socket nobody listens on is logged and the daemon runs on.
"""

import os
import shutil
import signal
import socket
import struct
import tempfile
import uuid

import pytest

from conftest import SMTPConn, wait_for

RECV_TIMEOUT = 30.0


class Notify:
    """A service manager's notification socket: AF_UNIX datagrams with the
    sender's credentials (SO_PASSCRED)."""

    def __init__(self, abstract=False):
        self.dir = None
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        if abstract:
            name = "waymark-test-notify-" + uuid.uuid4().hex
            self.sock.bind("\0" + name)
            self.env = "@" + name
        else:
            self.dir = tempfile.mkdtemp(prefix="wm-notify-", dir="/tmp")
            os.chmod(self.dir, 0o700)
            path = os.path.join(self.dir, "notify")
            self.sock.bind(path)
            os.chmod(path, 0o600)
            self.env = path
        self.sock.settimeout(RECV_TIMEOUT)

    def recv(self):
        """(fields dict, sender pid) of the next datagram; fails on timeout."""
        try:
            data, anc, _, _ = self.sock.recvmsg(
                4096, socket.CMSG_SPACE(struct.calcsize("3i")))
        except socket.timeout:
            pytest.fail("no notification within %.0f s" % RECV_TIMEOUT)
        pid = None
        for level, kind, cdata in anc:
            if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                pid = struct.unpack("3i", cdata[:struct.calcsize("3i")])[0]
        text = data.decode()
        fields = dict(l.split("=", 1) for l in text.split("\n") if l)
        return fields, pid, text

    def pending(self):
        """Datagrams waiting now (does not block)."""
        out = []
        self.sock.setblocking(False)
        try:
            while True:
                out.append(self.sock.recv(4096).decode())
        except BlockingIOError:
            pass
        finally:
            self.sock.settimeout(RECV_TIMEOUT)
        return out

    def close(self):
        self.sock.close()
        if self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def notify():
    made = []

    def make(abstract=False):
        n = Notify(abstract)
        made.append(n)
        return n
    yield make
    for n in made:
        n.close()


def start_notified(daemon_factory, n, config=None):
    d = daemon_factory(config, start=False, env={"NOTIFY_SOCKET": n.env})
    d.start(wait=False)
    return d


def expect(n, d, key, what):
    fields, pid, text = n.recv()
    assert key in fields and fields[key] == "1", \
        "want %s=1 %s, got %r" % (key, what, text)
    assert pid == d.pid, "sent by pid %s, not waymarkd's %d" % (pid, d.pid)
    return fields


def smtp_answers(d):
    with SMTPConn(d.port, host=d.addr, timeout=10) as c:
        code = c.greeting.code
        c.cmd("QUIT")
    return code == 220


@pytest.mark.parametrize("abstract", [False, True], ids=["path", "abstract"])
def test_ready_reload_stopping(daemon_factory, notify, abstract):
    """READY=1 first (the SMTP port answers then), RELOADING=1 + READY=1 at
    SIGHUP, STOPPING=1 at SIGTERM; all from waymarkd's pid."""
    n = notify(abstract)
    d = start_notified(daemon_factory, n)
    expect(n, d, "READY", "first, after start-up")
    # the listeners were bound and listening before READY=1
    assert smtp_answers(d)
    d.wait_ready()
    assert n.pending() == [], "nothing else before the reload"

    d.signal(signal.SIGHUP)
    f = expect(n, d, "RELOADING", "at SIGHUP")
    assert f.get("MONOTONIC_USEC", "").isdigit(), \
        "RELOADING=1 carries MONOTONIC_USEC (systemd notify-reload): %r" % f
    expect(n, d, "READY", "after the reload")
    assert "configuration reloaded" in d.log_text()

    pid = d.pid
    d.stop()
    fields, spid, text = n.recv()
    assert fields.get("STOPPING") == "1", "want STOPPING=1, got %r" % text
    assert spid == pid


def test_failed_reload_still_ready(daemon_factory, notify):
    """A bad new file keeps the old configuration, and the service manager
    still hears READY=1 after RELOADING=1 (else systemd stays 'reloading')."""
    n = notify()
    d = start_notified(daemon_factory, n)
    expect(n, d, "READY", "after start-up")
    good = d.config_text()
    d.write_config(good + "max_size = lots\n")
    d.signal(signal.SIGHUP)
    expect(n, d, "RELOADING", "at SIGHUP")
    expect(n, d, "READY", "after the failed reload")
    wait_for(lambda: "reload failed" in d.log_text(), timeout=10,
             what="'reload failed' in the log")
    assert smtp_answers(d)


def test_unreachable_socket_is_logged(daemon_factory, tmp_path):
    """NOTIFY_SOCKET naming nothing: a warning, and the daemon serves."""
    gone = str(tmp_path / "nobody-listens")
    d = daemon_factory(start=False, env={"NOTIFY_SOCKET": gone})
    d.start()
    assert smtp_answers(d)
    log = d.log_text()
    assert "NOTIFY_SOCKET=%s: connect:" % gone in log, log[-2000:]
    assert "the service manager will not be told" in log
