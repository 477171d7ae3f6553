"""A full spool file system: a 16 MiB tmpfs mounted as the spool.

1. Below `min_free_space` MAIL gets `452 4.3.1`; once space returns MAIL
   is accepted again, with no manual step.
2. The disk fills up in the middle of DATA: the end of DATA gets a 4xx
   (`452 4.3.1`), nothing is queued for it, the message acknowledged before
   is not lost (its delivery attempts go on while the log cannot be
   written), and once space returns both it and new mail are delivered
   without any manual step.

Mounting needs root (CAP_SYS_ADMIN); where mounting is refused the tests
skip and say why.
"""

import os
import subprocess

import pytest

from conftest import (assert_reply, dot_stuff, make_message, queued_qid,
                      wait_for)

RCPT = "user@example.org"


@pytest.fixture
def spool_fs(daemon_factory):
    """(daemon not started, mount point): the daemon's spool on a tmpfs."""
    d = daemon_factory(start=False, precreate=True)
    mnt = os.path.join(d.dir, "fs")
    os.makedirs(mnt)
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m,mode=0755",
                        "tmpfs", mnt], capture_output=True, text=True)
    if p.returncode != 0:
        pytest.skip("cannot mount a tmpfs for the spool (needs root and "
                    "CAP_SYS_ADMIN): %s" % (p.stderr.strip() or p.returncode))
    d.spool = d.config["spool"] = os.path.join(mnt, "spool")
    d.write_config()
    yield d, mnt
    if d.running:
        d.stop()
    subprocess.run(["umount", "-l", mnt], capture_output=True)


def fill(mnt, leave=0):
    """Fill the file system up to `leave` free bytes; the filler's path."""
    path = os.path.join(mnt, "filler")
    with open(path, "ab") as f:
        for size in (65536, 4096, 512):
            chunk = b"\0" * size
            try:
                while free(mnt) - size >= leave:
                    f.write(chunk)
                    f.flush()
            except OSError:
                pass
    return path


def free(mnt):
    st = os.statvfs(mnt)
    return st.f_bavail * st.f_frsize


def test_min_free_space_452_then_recovers(spool_fs):
    d, mnt = spool_fs
    d.config["min_free_space"] = "4m"
    d.write_config()
    d.start()
    with d.connect() as c:
        c.ehlo()
        assert_reply(c.cmd("MAIL FROM:<s@example.com>"), 250, "2.")
        assert_reply(c.cmd("RSET"), 250, "2.")
    filler = fill(mnt, leave=2 << 20)
    assert free(mnt) < 4 << 20

    def refused():
        with d.connect() as c:
            c.ehlo()
            return c.cmd("MAIL FROM:<s@example.com>").code == 452
    wait_for(refused, timeout=10, interval=0.2, what="452 at MAIL")
    with d.connect() as c:
        c.ehlo()
        assert_reply(c.cmd("MAIL FROM:<s@example.com>"), 452, "4.3.1")
        assert_reply(c.cmd("NOOP"), 250, "2.")   # the session goes on

    os.unlink(filler)               # space returns: no restart, no command

    def accepted():
        with d.connect() as c:
            c.ehlo()
            r = c.cmd("MAIL FROM:<s@example.com>")
            return r.code == 250
    wait_for(accepted, timeout=10, interval=0.2, what="MAIL accepted again")
    with d.connect() as c:
        c.ehlo()
        qid = queued_qid(c.mail_transaction("s@example.com", [RCPT],
                                            make_message(subject="after")))
    (data,) = d.wait_mails(RCPT, 1)
    assert b"Subject: after" in data and qid.encode() in data


def test_disk_full_during_data(spool_fs):
    d, mnt = spool_fs
    d.config["min_free_space"] = "0"
    d.config["retry_schedule"] = "1s"
    d.write_config()
    blocker = os.path.join(d.mail, "example.org")
    open(blocker, "w").close()      # deliveries are deferred meanwhile
    d.start()
    first = make_message(subject="acknowledged before")
    with d.connect() as c:
        c.ehlo()
        acked = queued_qid(c.mail_transaction("s@example.com", [RCPT], first))

    with d.connect() as c:
        c.ehlo()
        assert_reply(c.cmd("MAIL FROM:<s@example.com>"), 250, "2.")
        assert_reply(c.cmd("RCPT TO:<%s>" % RCPT), 250, "2.")
        assert c.cmd("DATA").code == 354
        filler = fill(mnt)          # the disk is full now
        big = make_message(subject="too big for the disk",
                           body=(b"y" * 998 + b"\r\n") * 512)
        c.send(dot_stuff(big))
        r = c.reply()
        assert 400 <= r.code < 500, r
        assert_reply(r, 452, "4.3.1")
        assert_reply(c.cmd("NOOP"), 250, "2.")
    # delivery attempts of the acknowledged message go on (and fail to
    # be recorded while the log cannot grow): the daemon keeps serving
    wait_for(lambda: "No space left on device" in d.log_text(), timeout=30,
             interval=0.2, what="a log write refused for lack of space")
    q = d.queue_json()
    assert [m["queue_id"] for m in q] == [acked], q
    body_dir = os.path.join(d.spool, "body")
    assert os.listdir(body_dir) == [acked]

    os.unlink(filler)               # space returns
    os.unlink(blocker)
    (data,) = d.wait_mails(RCPT, 1, timeout=30)
    assert data.endswith(first.replace(b"\r\n", b"\n"))
    with d.connect() as c:
        c.ehlo()
        queued_qid(c.mail_transaction("s@example.com", [RCPT],
                                      make_message(subject="after")))
    d.wait_mails(RCPT, 2, timeout=30)
    d.wait_queue_drained()
    d.restart()                     # and nothing comes back after a restart
    d.wait_queue_drained()
    assert len(d.mail_files(RCPT)) == 2
