"""The session limit waits instead of refusing (issue 13, DESIGN.md
"Configuration syntax"): at max_sessions the listeners pause and extra
clients wait in the listen backlog until a session ends; a session that
has said 221 no longer counts when the next connection is accepted.

- 150 clients at once against max_sessions = 100: every one is greeted
  with 220 and gets its message accepted; no 421.
- smtp-source with 100 sessions reconnecting for each message against the
  default max_sessions = 100: all 2000 accepted, no 421.
(The per-client cap's 421 is tested in test_session_limits.py.)"""

import subprocess
import threading

from conftest import make_message, queued_qid, wait_for

SMTP_SOURCE = "/usr/sbin/smtp-source"


def transaction(c, i):
    c.ehlo()
    r = c.mail_transaction("s%d@example.com" % i, ["rcpt@example.org"],
                           make_message(to="rcpt@example.org"))
    c.cmd("QUIT")
    return queued_qid(r)


def late_client(d, i, out):
    try:
        with d.connect(timeout=120) as c:
            out[i] = (c.greeting.code, transaction(c, i))
    except Exception as e:                  # noqa: BLE001 - reported below
        out[i] = ("error", repr(e))


def test_150_clients_against_100_sessions(daemon_factory):
    d = daemon_factory({"max_sessions": "100"})
    # 100 sessions held open: the limit is reached
    first = [d.connect(timeout=120) for _ in range(100)]
    assert all(c.greeting.code == 220 for c in first)
    # 50 more connect meanwhile: they wait in the backlog, no 421
    out = {}
    threads = [threading.Thread(target=late_client, args=(d, 100 + i, out))
               for i in range(50)]
    for t in threads:
        t.start()
    wait_for(lambda: "listeners paused: max_sessions 100 reached" in
             d.log_text(), timeout=30, what="the pause logged")
    assert not out, "greeted while 100 sessions talk: %r" % out
    # the first 100 send their messages and leave; the 50 get in
    qids = [transaction(c, i) for i, c in enumerate(first)]
    for c in first:
        c.close()
    for t in threads:
        t.join(180)
    bad = {i: r for i, r in out.items() if r[0] != 220 or not r[1]}
    assert len(out) == 50 and not bad, bad
    assert len(set(qids) | {r[1] for r in out.values()}) == 150
    assert "Too many sessions" not in d.log_text()
    # the end of the episode is logged once the listeners stayed on (1 s)
    wait_for(lambda: "listeners resumed after " in d.log_text(), timeout=30,
             what="the end of the episode logged")
    wait_for(lambda: len(d.mail_files("rcpt@example.org")) == 150,
             timeout=120, interval=0.5, what="150 messages delivered")


def test_smtp_source_100_sessions_reconnecting(daemon_factory):
    d = daemon_factory()                    # the default max_sessions = 100
    n = 2000
    p = subprocess.run(
        [SMTP_SOURCE, "-s", "100", "-m", str(n), "-l", "512",
         "-M", "client.test", "-f", "sender@example.org",
         "-t", "rcpt@example.org", "127.0.0.1:%d" % d.port],
        capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, "smtp-source failed (%d): %s %s" % (
        p.returncode, p.stdout[-2000:], p.stderr[-2000:])
    assert "421" not in p.stdout + p.stderr
    wait_for(lambda: len(d.mail_files("rcpt@example.org")) >= n,
             timeout=300, interval=0.5, what="%d messages delivered" % n)
    log = d.log_text()
    assert "Too many sessions" not in log
    # the listeners went off and on with the sessions that ended, many
    # times a second: the log says when an episode began and how long it
    # lasted, not each pause (one line each, not one per session)
    paused = log.count("listeners paused: max_sessions 100 reached")
    assert 1 <= paused <= 10, paused
    wait_for(lambda: d.log_text().count("listeners resumed after ") == paused,
             timeout=30, what="every episode's end logged")


def listen_backlog(port):
    """The backlog of the listening socket on 127.0.0.1:port (ss's Send-Q)."""
    out = subprocess.run(["ss", "-Hltn", "sport = :%d" % port],
                         capture_output=True, text=True, check=True).stdout
    lines = [ln.split() for ln in out.splitlines() if ln.strip()]
    assert lines, "no listening socket on port %d: %r" % (port, out)
    return int(lines[0][2])


def test_listen_backlog_is_somaxconn(daemon_factory):
    """Clients past max_sessions wait in the backlog, so it must hold them:
    SMTP and MTQP listeners listen with SOMAXCONN (capped by the kernel's
    net.core.somaxconn), not libevent's default of 128 -- with 128, 500
    clients against 100 sessions overflowed it and waited for SYN
    retransmissions."""
    with open("/proc/sys/net/core/somaxconn") as f:
        somaxconn = int(f.read())
    want = min(somaxconn, 4096)
    d = daemon_factory(start=False)
    from conftest import free_port
    mtqp = free_port()
    d.config["mtqp"] = "127.0.0.1:%d" % mtqp
    d.write_config()
    d.start()
    assert listen_backlog(d.port) >= want
    assert listen_backlog(mtqp) >= want
