"""Faults in the queue's Berkeley DB environment.

1. SIGKILL in the middle of a checkpoint (the shutdown checkpoint's page
   writes, injected with strace) and in the middle of log file removal
   (the unlink of an old log file): the next start recovers and every
   acknowledged message is queued.
2. A failed sync of the log while the daemon runs (EIO from syncfs,
   injected by an strace attached after the start): the transaction that
   waited on it gets 451, nothing more is acknowledged, the daemon stops and
   exits 1 (so that systemd's Restart=on-failure starts it again), and the
   restart's recovery keeps every message acknowledged before.  After a
   failed fsync the kernel may drop the pages it could not write; going on
   would acknowledge messages whose log records follow a hole that recovery
   stops at.  A checkpoint whose database sync fails (EIO from fdatasync)
   stops the store the same way: exit 1, every message kept.
3. A damaged environment is refused at start with a message naming
   `waymarkd --recover`, never emptied: a truncated log file (after a
   SIGKILL, so the log holds what the databases do not) and a database
   page overwritten with garbage.  `waymarkd --recover` then keeps what can
   be kept: every acknowledged message is either queued again or its body
   file is in SPOOL/recover-*/body/.

The messages stay queued: their domain's Maildir path is blocked by a file,
so every delivery is deferred.
"""

import glob
import os
import shutil
import signal
import subprocess

import pytest

from conftest import (WAYMARKD, DaemonError, assert_reply, daemon_ids,
                      make_message, queued_qid, run_waymarkd, wait_for)

RCPT = "user@example.org"
STRACE = shutil.which("strace")


def block_delivery(d):
    os.makedirs(d.mail, exist_ok=True)
    open(os.path.join(d.mail, "example.org"), "w").close()


def send(d, n, tag):
    qids = []
    with d.connect() as c:
        c.ehlo()
        for i in range(n):
            r = c.mail_transaction("s@example.com", [RCPT],
                                   make_message(subject="%s %d" % (tag, i)))
            qids.append(queued_qid(r))
    return qids


def queued_ids(d):
    return sorted(m["queue_id"] for m in d.queue_json())


def refused_start(d):
    """Start d, expect it to refuse; its log."""
    with pytest.raises(DaemonError) as e:
        d.start()
    d.proc = None
    return str(e.value)


def recover(d):
    # a damaged page panics the Berkeley DB environment it is read in;
    # what libdb allocated for such an environment is never freed, so
    # LeakSanitizer is off for this one command (its other checks stay on)
    env = dict(os.environ)
    env["ASAN_OPTIONS"] = env.get("ASAN_OPTIONS", "") + ":detect_leaks=0"
    p = subprocess.run([WAYMARKD, "-f", d.conf, "--recover"],
                       stdin=subprocess.DEVNULL, capture_output=True,
                       timeout=120, env=env)
    out = p.stdout.decode("utf-8", "replace")
    err = p.stderr.decode("utf-8", "replace")
    assert p.returncode == 0, "waymarkd --recover: exit %d\n%s\n%s" % (
        p.returncode, out, err[-5000:])
    assert "runtime error:" not in err and "AddressSanitizer" not in err, err
    return out


def set_aside_bodies(d):
    return sorted(os.path.basename(p) for p in
                  glob.glob(os.path.join(d.spool, "recover-*", "body", "*")))


def db_paths(d):
    return [os.path.join(d.spool, f) for f in
            ("messages.db", "recipients.db", "events.db", "schedule.db",
             "state.db", "expire.db", "meta.db", "envid.db")]


def bodies(d):
    return sorted(os.listdir(os.path.join(d.spool, "body")))


# ------------------------------------------------------- SIGKILL moments

def strace_kill(d, syscalls, paths, when):
    """A wrapper that kills waymarkd (SIGKILL) at the when-th call of one of
    syscalls on one of paths."""
    if STRACE is None:
        pytest.skip("strace is not installed")
    w = [STRACE, "-f", "-qq", "-o", os.path.join(d.dir, "strace.out"),
         "-e", "trace=" + syscalls,
         "-e", "inject=%s:signal=SIGKILL:when=%d" % (syscalls, when)]
    for p in paths:
        w += ["-P", p]
    return w


def killed_by_injection(d):
    d.proc.wait(timeout=60)
    d.proc = None
    with open(os.path.join(d.dir, "strace.out")) as f:
        trace = f.read()
    assert "+++ killed by SIGKILL" in trace, trace[-3000:]
    assert "queue: closed cleanly" not in d.log_text().split("=== start")[-1]
    return trace


def test_kill9_during_checkpoint(daemon_factory):
    d = daemon_factory(start=False)
    block_delivery(d)
    d.start()
    first = send(d, 5, "before")
    d.stop()                   # the databases exist now, checkpointed
    dbs = db_paths(d)
    # the third page write to a database: the shutdown checkpoint has
    # written some pages and not others
    d.wrapper = strace_kill(d, "pwrite64", dbs, 3)
    d.start()
    acked = first + send(d, 30, "during")
    d.signal(signal.SIGTERM)
    trace = killed_by_injection(d)
    assert "pwrite64(" in trace, trace[-3000:]
    d.wrapper = []
    d.start()
    assert queued_ids(d) == sorted(acked)
    d.restart()                # and it stays so after a clean stop
    assert queued_ids(d) == sorted(acked)


def test_kill9_during_log_removal(daemon_factory):
    d = daemon_factory(start=False, precreate=True)
    block_delivery(d)
    # small log files (DB_CONFIG overrides waymarkd's 4 MiB) so that a
    # few dozen messages fill several and a checkpoint removes old ones
    with open(os.path.join(d.spool, "DB_CONFIG"), "w") as f:
        f.write("set_lg_max 65536\nset_lg_bsize 16384\n")
    os.chown(os.path.join(d.spool, "DB_CONFIG"), *daemon_ids())
    # Berkeley DB names them "SPOOL/./log.N" (its home is "."), and
    # strace -P compares the name as given
    logs = [os.path.join(d.spool, ".", "log.%010d" % i) for i in range(1, 40)]
    d.wrapper = strace_kill(d, "unlink,unlinkat", logs, 1)
    d.start()
    acked = send(d, 60, "removal")
    assert len(glob.glob(os.path.join(d.spool, "log.*"))) >= 3
    d.signal(signal.SIGTERM)   # its checkpoint removes the old logs
    trace = killed_by_injection(d)
    assert "unlink" in trace and "log.0000000001" in trace, trace[-3000:]
    d.wrapper = []
    d.start()
    assert queued_ids(d) == sorted(acked)
    d.restart()
    assert queued_ids(d) == sorted(acked)


# ------------------------------------------------ a failed sync at run time

def attach_strace(d, syscalls, inject, paths=()):
    """strace attached to the running daemon's every thread, so that the
    injection counts from now (not from the start-up's syscalls); only
    the calls on paths when given."""
    if STRACE is None:
        pytest.skip("strace is not installed")
    try:
        with open("/proc/sys/kernel/yama/ptrace_scope") as f:
            scope = int(f.read())
    except OSError:
        scope = 0
    if scope >= 3 or (scope >= 1 and os.geteuid() != 0):
        pytest.skip("Yama's ptrace_scope %d forbids attaching strace" % scope)
    out = os.path.join(d.dir, "strace-attached.out")
    pid = d.pid
    cmd = [STRACE, "-f", "-qq", "-p", str(pid), "-o", out,
           "-e", "trace=" + syscalls, "-e", "inject=" + inject]
    for path in paths:
        cmd += ["-P", path]
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def traced():
        for t in os.listdir("/proc/%d/task" % pid):
            with open("/proc/%d/task/%s/status" % (pid, t)) as f:
                if "\nTracerPid:\t0\n" in f.read():
                    return False
        return True
    wait_for(traced, timeout=20, what="strace attached to every thread")
    return p, out


def exited_for_recovery(d, tracer, out, cause):
    """d exited 1 by itself after an injection through tracer, its log
    naming cause; (the trace, the log of that run)."""
    assert d.wait_exit(timeout=60) == 1
    tracer.wait(timeout=30)
    with open(out) as f:
        trace = f.read()
    assert "(INJECTED)" in trace, trace[-3000:]
    log = d.log_text().split("=== start")[-1]
    assert cause in log, log[-5000:]
    assert "queue: closed cleanly" not in log
    return trace, log


def test_failed_sync_stops_for_recovery(daemon_factory):
    d = daemon_factory(start=False)
    block_delivery(d)
    d.start()
    acked = send(d, 5, "before")
    tracer, out = attach_strace(d, "syncfs", "syncfs:error=EIO")
    with d.connect() as c:
        c.ehlo()
        r = c.mail_transaction("s@example.com", [RCPT],
                               make_message(subject="during"))
        assert_reply(r, 451, "4.3.0")
    trace, log = exited_for_recovery(
        d, tracer, out,
        "queue: the sync of the spool failed (Input/output error)")
    assert "syncfs(" in trace, trace[-3000:]
    assert "waymarkd stopping (the store needs recovery)" in log, log[-5000:]
    d.start()
    kept = queued_ids(d)
    # the unacknowledged one may be kept too: a duplicate at worst
    assert set(acked) <= set(kept), (acked, kept)
    assert len(kept) <= len(acked) + 1, (acked, kept)
    d.restart()
    assert queued_ids(d) == kept


def test_failed_checkpoint_exits_1(daemon_factory):
    # the shutdown's checkpoint cannot sync a database: a later checkpoint's
    # sync would succeed without those pages and remove the log that can
    # redo them, so this one stops the store too, and the exit status says
    # that the next start must recover
    d = daemon_factory(start=False)
    block_delivery(d)
    d.start()
    acked = send(d, 5, "ckp")
    tracer, out = attach_strace(d, "fsync,fdatasync",
                                "fsync,fdatasync:error=EIO", db_paths(d))
    d.signal(signal.SIGTERM)
    exited_for_recovery(d, tracer, out,
                        "queue: a checkpoint failed (Input/output error)")
    d.start()
    assert queued_ids(d) == sorted(acked)
    d.restart()
    assert queued_ids(d) == sorted(acked)


# ---------------------------------------------------- damaged environments

def test_truncated_log_refused_then_recovered(daemon_factory):
    d = daemon_factory(start=False)
    block_delivery(d)
    d.start()
    acked = send(d, 40, "trunc")
    d.kill9()                  # the records are in the log only
    log = os.path.join(d.spool, "log.0000000001")
    with open(log, "rb") as f:
        used = len(f.read().rstrip(b"\0"))
    os.truncate(log, used // 2)
    before = bodies(d)
    assert before == sorted(acked)

    text = refused_start(d)
    assert "log.0000000001" in text and "truncated" in text, text[-3000:]
    assert "waymarkd --recover" in text, text[-3000:]
    assert bodies(d) == before         # nothing removed by the refusal
    assert refused_start(d)            # and again: no silent start later

    out = recover(d)
    assert "catastrophic recovery replayed the log files" in out, out
    d.start()
    kept = queued_ids(d)
    aside = set_aside_bodies(d)
    assert kept, out                   # the first half of the log counts
    assert sorted(kept + aside) == sorted(acked), out
    assert bodies(d) == kept


def test_damaged_page_refused_then_recovered(daemon_factory):
    d = daemon_factory(start=False)
    block_delivery(d)
    d.start()
    acked = send(d, 50, "page")
    d.stop()
    path = os.path.join(d.spool, "messages.db")
    assert os.path.getsize(path) >= 3 * 4096
    with open(path, "r+b") as f:       # page 2 (a leaf) after its header
        f.seek(2 * 4096 + 26)
        f.write(bytes(range(256)) * 15 + b"x" * (4096 - 26 - 3840))

    text = refused_start(d)
    assert "damaged" in text and "waymarkd --recover" in text, text[-3000:]
    assert bodies(d) == sorted(acked)

    out = recover(d)
    assert "messages.db is damaged" in out and "messages.db rebuilt" in out, out
    assert os.path.exists(glob.glob(os.path.join(d.spool, "recover-*"))[0] +
                          "/messages.db")
    d.start()
    kept = queued_ids(d)
    aside = set_aside_bodies(d)
    assert kept, out                   # the other pages' messages remain
    assert aside, out                  # the damaged page's do not
    assert sorted(kept + aside) == sorted(acked), out
    assert bodies(d) == kept


def test_recover_on_a_healthy_spool_keeps_everything(daemon_factory):
    d = daemon_factory(start=False)
    block_delivery(d)
    d.start()
    acked = send(d, 10, "healthy")
    d.stop()
    out = recover(d)
    assert "messages.db verified" in out, out
    d.start()
    assert queued_ids(d) == sorted(acked)
    assert set_aside_bodies(d) == []


def test_recover_refused_while_running(daemon):
    p = run_waymarkd("-f", daemon.conf, "--recover")
    assert p.returncode == 1
    assert "in use by another waymarkd" in p.err, p.err


def test_recover_in_help():
    p = run_waymarkd("--help")
    assert p.returncode == 0 and "--recover" in p.out
