"""Acknowledgement means durable.

1. 300 messages over 6 concurrent connections while waymarkd is killed with
   SIGKILL three times at random moments (seed printed; set WAYMARK_SEED to
   replay) and restarted: every message that got a 250 is delivered, and the
   extra copies do not exceed the number of kills.
2. Under strace: each "250 2.0.0 Ok: queued as QID" is written only after a
   sync covering the body file and, after that, a sync of the Berkeley DB log.
3. A deferred message survives SIGKILL and a restart, and is delivered once.
"""

import os
import random
import re
import smtplib
import threading
import time

from conftest import (QID_RE, QUEUED_RE, lf, make_message, queued_qid,
                      split_message, wait_for)

RCPT = "dur@example.org"


def durable_message(test_id):
    body = b"".join(b"payload %s line %d\r\n" % (test_id.encode(), i) for i in range(20))
    return (b"From: <load@example.com>\r\nTo: <" + RCPT.encode() + b">\r\n"
            b"Subject: durability " + test_id.encode() + b"\r\n"
            b"Message-ID: <" + test_id.encode() + b"@client.test>\r\n"
            b"X-Test-Id: " + test_id.encode() + b"\r\n\r\n" + body)


def test_kill9_loses_no_acknowledged_message(daemon_factory):
    seed = int(os.environ.get("WAYMARK_SEED", random.randrange(1 << 30)))
    print("test_kill9: random seed %d (WAYMARK_SEED=%d replays it)" % (seed, seed))
    rnd = random.Random(seed)
    n_msgs, n_threads, n_kills = 300, 6, 3
    d = daemon_factory()

    lock = threading.Lock()
    acked = {}                 # test id -> qid
    failures = []
    abort = threading.Event()

    def client(tid, numbers):
        conn = None
        crnd = random.Random(seed * 31 + tid)
        for num in numbers:
            attempt = 0
            give_up = time.monotonic() + 180
            while True:
                if abort.is_set():
                    return
                test_id = "m%03d.a%d" % (num, attempt)
                try:
                    if conn is None:
                        conn = smtplib.SMTP("127.0.0.1", d.port,
                                            local_hostname="client.test", timeout=30)
                        conn.ehlo()
                    code, resp = conn.mail("load@example.com")
                    if code != 250:
                        raise smtplib.SMTPResponseException(code, resp)
                    code, resp = conn.rcpt(RCPT)
                    if code != 250:
                        raise smtplib.SMTPResponseException(code, resp)
                    code, resp = conn.data(durable_message(test_id))
                    if code != 250:
                        raise smtplib.SMTPResponseException(code, resp)
                    m = QUEUED_RE.match(resp.decode())
                    if not m:
                        with lock:
                            failures.append("bad final reply %r" % resp)
                        return
                    with lock:
                        acked[test_id] = m.group(1)
                    break
                except (OSError, smtplib.SMTPException) as e:
                    if isinstance(e, smtplib.SMTPResponseException) and \
                            500 <= e.smtp_code < 600:
                        with lock:
                            failures.append("%s: permanent %s" % (test_id, e))
                        return
                    if conn is not None:
                        try:
                            conn.close()
                        except Exception:
                            pass
                    conn = None
                    attempt += 1
                    if time.monotonic() > give_up:
                        with lock:
                            failures.append("%s: no 250 within 180 s: %r" % (test_id, e))
                        return
                    time.sleep(0.05 + crnd.random() * 0.1)
            if crnd.random() < 0.1 and conn is not None:   # sometimes reconnect
                try:
                    conn.quit()
                except Exception:
                    pass
                conn = None
        if conn is not None:
            try:
                conn.quit()
            except Exception:
                pass

    numbers = list(range(n_msgs))
    threads = [threading.Thread(target=client, args=(t, numbers[t::n_threads]))
               for t in range(n_threads)]
    for t in threads:
        t.start()

    span = n_msgs // n_kills
    thresholds = [rnd.randint(k * span + span // 5, k * span + span * 4 // 5)
                  for k in range(n_kills)]
    kills = 0
    try:
        for th in thresholds:
            wait_for(lambda: len(acked) >= th or failures or
                     not any(t.is_alive() for t in threads),
                     timeout=240, interval=0.005, what="%d acknowledged messages" % th)
            if failures or len(acked) < th:
                break
            time.sleep(rnd.uniform(0, 0.05))
            d.kill9()
            kills += 1
            time.sleep(rnd.uniform(0, 0.3))
            d.start()
    except BaseException:
        abort.set()
        raise
    finally:
        for t in threads:
            t.join(300)
    assert not failures, failures[:10]
    assert kills == n_kills, "only %d kills (seed %d)" % (kills, seed)
    assert len(acked) == n_msgs
    assert len(set(acked.values())) == n_msgs, "a QID was reused (seed %d)" % seed

    d.wait_queue_drained(timeout=180)
    copies = {}
    for data in d.mails(RCPT):
        rp, fields, rest = split_message(data)
        m = re.search(rb"^X-Test-Id: (\S+)$", rest, re.M)
        assert m, "delivered file without X-Test-Id: %r" % data[:300]
        tid = m.group(1).decode()
        assert rest == lf(durable_message(tid)), "damaged message %s" % tid
        qid = re.search(r"\bid (" + QID_RE + r")\b", fields[0]).group(1)
        if tid in acked:
            assert qid == acked[tid], (tid, qid, acked[tid])
        copies[tid] = copies.get(tid, 0) + 1
    missing = sorted(t for t in acked if t not in copies)
    assert not missing, "acknowledged but not delivered (seed %d): %s" % (seed, missing)
    dups = sum(c - 1 for c in copies.values())
    print("test_kill9: %d acknowledged, %d files, %d duplicate copies, %d kills"
          % (len(acked), sum(copies.values()), dups, kills))
    assert dups <= n_kills, "%d duplicates > %d kills (seed %d): %s" % (
        dups, n_kills, seed, {t: c for t, c in copies.items() if c > 1})


def test_deferred_message_survives_kill9(daemon):
    d = daemon
    os.makedirs(d.mail, exist_ok=True)
    blocker = os.path.join(d.mail, "example.org")
    open(blocker, "w").close()
    msg = make_message(subject="survivor")
    with d.connect() as c:
        c.ehlo()
        qid = queued_qid(c.mail_transaction("s@example.com", ["user@example.org"], msg))

    def deferred():
        return any(m["queue_id"] == qid and m["recipients"][0]["status"] == "deferred"
                   for m in d.queue_json())
    wait_for(deferred, timeout=60, interval=0.2, what="deferred")
    d.kill9()
    d.start()
    q = d.queue_json()
    assert [m["queue_id"] for m in q] == [qid], q
    assert q[0]["recipients"][0]["status"] in ("queued", "deferred")
    os.unlink(blocker)
    d.cli("flush", check=0)
    (data,) = d.wait_mails("user@example.org", 1, timeout=60)
    assert split_message(data)[2] == lf(msg)
    d.wait_queue_drained()
    d.restart()
    d.wait_queue_drained()
    assert len(d.mail_files("user@example.org")) == 1


# ------------------------------------------------------------------ strace

TRACE_SET = ("fsync,fdatasync,syncfs,rename,renameat,renameat2,sendto,sendmsg,"
             "write,writev,pwrite64,pwritev,openat")
LINE_RE = re.compile(r"^(?:\[pid\s+)?(\d+)\]?\s+(\d+):(\d+):(\d+\.\d+)\s+(.*)$")
UNFINISHED_RE = re.compile(r"^(\w+)\((.*) <unfinished \.\.\.>$")
RESUMED_RE = re.compile(r"^<\.\.\. (\w+) resumed>(.*)$")
CALL_RE = re.compile(r"^(\w+)\((.*)$")
RESULT_RE = re.compile(r"^(.*)\)\s+=\s+(-?\d+|\?)(.*?)(?:\s+<(\d+\.\d+)>)?$", re.S)
FD_PATH_RE = re.compile(r"^-?\d+<([^>]*)>")
LOG_RE = re.compile(r"/log\.\d{10}$")


class Call:
    def __init__(self, pid, name, args, start, end, ret):
        self.pid, self.name, self.args, self.start, self.end, self.ret = \
            pid, name, args, start, end, ret
        m = FD_PATH_RE.match(args)
        self.path = m.group(1) if m else None

    def __repr__(self):
        return "%s(%s)@%.6f-%.6f" % (self.name, (self.args or "")[:80], self.start, self.end)


def parse_strace(path):
    """strace -f -tt -T -y output -> completed Calls (any interleaving)."""
    calls, pending = [], {}
    day = 0.0
    last = None
    with open(path, errors="replace") as f:
        for raw in f:
            m = LINE_RE.match(raw.rstrip("\n"))
            if not m:
                continue
            pid = int(m.group(1))
            t = int(m.group(2)) * 3600 + int(m.group(3)) * 60 + float(m.group(4)) + day
            if last is not None and t < last - 43200:   # midnight
                day += 86400
                t += 86400
            last = t
            rest = m.group(5)
            um = UNFINISHED_RE.match(rest)
            if um:
                pending[pid] = (um.group(1), um.group(2), t)
                continue
            rm = RESUMED_RE.match(rest)
            if rm:
                if pid not in pending:
                    continue
                name, head, start = pending.pop(pid)
                body = head + rm.group(2)
            else:
                cm = CALL_RE.match(rest)
                if not cm:
                    continue
                name, body, start = cm.group(1), cm.group(2), t
            res = RESULT_RE.match(body)
            if not res:
                continue
            args, ret, _, dur = res.groups()
            end = start + float(dur) if dur else t
            calls.append(Call(pid, name, args, start, end,
                              int(ret) if ret != "?" else None))
    return calls


def check_trace(calls, qids):
    """Problems with the ordering of each 250 against the body and log syncs."""
    problems = []
    dsync_logs = set()
    for c in calls:
        if c.name == "openat" and c.ret is not None and c.ret >= 0 and \
                re.search(r"O_DSYNC|O_SYNC", c.args):
            p = re.search(r'"([^"]+)"', c.args)
            if p and LOG_RE.search(p.group(1)):
                dsync_logs.add(os.path.basename(p.group(1)))
    writes = ("write", "writev", "pwrite64", "pwritev")
    log_syncs = [c for c in calls if c.ret == 0 and c.path and LOG_RE.search(c.path)
                 and c.name in ("fsync", "fdatasync")]
    log_syncs += [c for c in calls if c.ret is not None and c.ret > 0 and c.path and
                  c.name in writes and os.path.basename(c.path) in dsync_logs]
    syncfs = [c for c in calls if c.name == "syncfs" and c.ret == 0]
    for qid in qids:
        replies = [c for c in calls if c.name in ("write", "writev", "sendto", "sendmsg")
                   and "Ok: queued as %s" % qid in c.args]
        if not replies:
            problems.append("%s: no write of its 250 reply in the trace" % qid)
            continue
        w = replies[0]
        body_writes = [c for c in calls if c.name in writes and c.path and
                       c.path.endswith("/" + qid) and c.end <= w.start]
        body_done = max([c.end for c in body_writes] or [0.0])
        if not body_writes:
            problems.append("%s: no write to its body file seen (path .../%s)" % (qid, qid))
        body_syncs = [c for c in calls if c.ret == 0 and c.start >= body_done and
                      c.end <= w.start and
                      ((c.name in ("fsync", "fdatasync") and c.path and
                        c.path.endswith("/" + qid)) or c in syncfs)]
        if not body_syncs:
            problems.append("%s: 250 written at %.6f without an earlier fsync/"
                            "fdatasync of its body file or syncfs" % (qid, w.start))
            continue
        first_body_sync = min(c.end for c in body_syncs)
        logs = [c for c in log_syncs if c.start >= first_body_sync and c.end <= w.start]
        # or one syncfs after the body and the log record are written
        # (the commit writes the log without a sync, then syncfs)
        log_writes = [c for c in calls if c.name in writes and c.ret is not None and
                      c.ret > 0 and c.path and LOG_RE.search(c.path) and
                      c.start >= body_done]
        logs += [s for s in syncfs if s.start >= body_done and s.end <= w.start and
                 any(lw.end <= s.start for lw in log_writes)]
        if not logs:
            problems.append("%s: 250 written at %.6f without a Berkeley DB log sync "
                            "between the body sync (done %.6f) and the reply"
                            % (qid, w.start, first_body_sync))
    return problems


def test_250_only_after_body_and_log_sync(daemon_factory):
    env = {"ASAN_OPTIONS": os.environ.get("ASAN_OPTIONS", "") +
           ":detect_leaks=0"}   # LeakSanitizer cannot run under ptrace
    d = daemon_factory(wrapper=["strace", "-f", "-tt", "-T", "-y", "-s", "200",
                                "-e", "trace=" + TRACE_SET,
                                "-o", "{dir}/strace.out"], env=env)
    trace = os.path.join(d.dir, "strace.out")
    qids = []
    with d.connect() as c:
        c.ehlo()
        for i in range(5):
            msg = make_message(subject="synced %d" % i,
                               body=b"durable body line\r\n" * (50 * (i + 1)))
            qids.append(queued_qid(c.mail_transaction("s@example.com",
                                                      ["sync@example.org"], msg)))
        assert c.cmd("QUIT").code == 221
    d.wait_mails("sync@example.org", 5)
    d.wait_queue_drained()
    d.stop()
    calls = parse_strace(trace)
    assert calls, "empty strace output"
    problems = check_trace(calls, qids)
    assert not problems, "\n".join(problems)


def test_trace_checker_detects_missing_sync(tmp_path):
    """Self-test of the strace checker on hand-written traces."""
    good = tmp_path / "good"
    good.write_text(
        '100 10:00:00.000100 write(7</s/body/QQQQQQQQ>, "Subject: x\\r\\n", 13) = 13 <0.000010>\n'
        '101 10:00:00.000200 fdatasync(7</s/body/QQQQQQQQ> <unfinished ...>\n'
        '100 10:00:00.000250 write(5<socket:[1]>, "250 2.0.0 Ok\\r\\n", 14) = 14 <0.000010>\n'
        '101 10:00:00.000300 <... fdatasync resumed>) = 0 <0.000100>\n'
        '101 10:00:00.000400 pwrite64(9</s/log.0000000001>, "..."..., 512, 0) = 512 <0.000010>\n'
        '101 10:00:00.000500 fdatasync(9</s/log.0000000001>) = 0 <0.000100>\n'
        '[pid   100] 10:00:00.000700 writev(5<socket:[1]>, [{iov_base="250 2.0.0 Ok: queued as QQQQQQQQ\\r\\n", iov_len=34}], 1) = 34 <0.000010>\n')
    assert check_trace(parse_strace(str(good)), ["QQQQQQQQ"]) == []
    bad = tmp_path / "bad"       # the log sync only ends after the reply
    bad.write_text(
        '100 10:00:00.000100 write(7</s/body/QQQQQQQQ>, "Subject: x\\r\\n", 13) = 13 <0.000010>\n'
        '101 10:00:00.000200 fdatasync(7</s/body/QQQQQQQQ>) = 0 <0.000100>\n'
        '101 10:00:00.000500 fdatasync(9</s/log.0000000001> <unfinished ...>\n'
        '100 10:00:00.000700 write(5<socket:[1]>, "250 2.0.0 Ok: queued as QQQQQQQQ\\r\\n", 34) = 34 <0.000010>\n'
        '101 10:00:00.000800 <... fdatasync resumed>) = 0 <0.000300>\n')
    assert len(check_trace(parse_strace(str(bad)), ["QQQQQQQQ"])) == 1
    fs = tmp_path / "fs"          # log written, then one syncfs: good
    fs.write_text(
        '100 10:00:00.000100 write(7</s/body/QQQQQQQQ>, "Subject: x\\r\\n", 13) = 13 <0.000010>\n'
        '101 10:00:00.000200 pwrite64(9</s/log.0000000001>, "..."..., 512, 0) = 512 <0.000010>\n'
        '101 10:00:00.000300 syncfs(7</s/body/QQQQQQQQ>) = 0 <0.000100>\n'
        '100 10:00:00.000700 write(5<socket:[1]>, "250 2.0.0 Ok: queued as QQQQQQQQ\\r\\n", 34) = 34 <0.000010>\n')
    assert check_trace(parse_strace(str(fs)), ["QQQQQQQQ"]) == []
    fslate = tmp_path / "fslate"  # the log written only after the syncfs
    fslate.write_text(
        '100 10:00:00.000100 write(7</s/body/QQQQQQQQ>, "Subject: x\\r\\n", 13) = 13 <0.000010>\n'
        '101 10:00:00.000300 syncfs(7</s/body/QQQQQQQQ>) = 0 <0.000100>\n'
        '101 10:00:00.000500 pwrite64(9</s/log.0000000001>, "..."..., 512, 0) = 512 <0.000010>\n'
        '100 10:00:00.000700 write(5<socket:[1]>, "250 2.0.0 Ok: queued as QQQQQQQQ\\r\\n", 34) = 34 <0.000010>\n')
    assert len(check_trace(parse_strace(str(fslate)), ["QQQQQQQQ"])) == 1
    nobody = tmp_path / "nobody"  # no body sync at all
    nobody.write_text(
        '100 10:00:00.000100 write(7</s/body/QQQQQQQQ>, "Subject: x\\r\\n", 13) = 13 <0.000010>\n'
        '101 10:00:00.000500 fdatasync(9</s/log.0000000001>) = 0 <0.000100>\n'
        '100 10:00:00.000700 write(5<socket:[1]>, "250 2.0.0 Ok: queued as QQQQQQQQ\\r\\n", 34) = 34 <0.000010>\n')
    assert len(check_trace(parse_strace(str(nobody)), ["QQQQQQQQ"])) == 1


def test_strace_parser_on_real_trace(tmp_path):
    """The parser reads a real strace of a small threaded program correctly."""
    import subprocess
    import sys
    prog = tmp_path / "prog.py"
    prog.write_text(
        "import os, socket, threading\n"
        "d = %r\n"
        "os.makedirs(d + '/body', exist_ok=True)\n"
        "fd = os.open(d + '/body/QQQQQQQQ', os.O_CREAT | os.O_WRONLY, 0o600)\n"
        "os.write(fd, b'Subject: x\\r\\n')\n"
        "lg = os.open(d + '/log.0000000001', os.O_CREAT | os.O_WRONLY, 0o600)\n"
        "def w():\n"
        "    os.fdatasync(fd)\n"
        "    os.pwrite(lg, b'x' * 100, 0)\n"
        "    os.fdatasync(lg)\n"
        "t = threading.Thread(target=w); t.start(); t.join()\n"
        "a, b = socket.socketpair()\n"
        "a.send(b'250 2.0.0 Ok: queued as QQQQQQQQ\\r\\n')\n" % str(tmp_path))
    out = tmp_path / "trace"
    subprocess.run(["strace", "-f", "-tt", "-T", "-y", "-s", "200", "-e",
                    "trace=" + TRACE_SET, "-o", str(out), sys.executable, str(prog)],
                   check=True, capture_output=True)
    calls = parse_strace(str(out))
    assert check_trace(calls, ["QQQQQQQQ"]) == [], open(out).read()
