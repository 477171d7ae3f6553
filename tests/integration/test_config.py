"""waymarkd configuration and process control: -n, FILE:LINE: KEY: reason
errors, list keys, relative paths, folder creation and ownership, the spool
lock, SIGHUP reload, SIGTERM."""

import os
import re
import signal
import shutil

from conftest import (IS_ROOT, Daemon, assert_reply, duration_seconds,
                      make_message, daemon_ids, parse_config_dump, queued_qid,
                      run_waymarkd, split_message, wait_for)

ALL_KEYS = ("hostname", "listen", "submission", "mtqp", "control", "spool",
            "local_domains", "local_recipients", "aliases", "mailbox_root",
            "lmtp", "relay_from", "smarthost", "smtp_port", "dns", "tls_cert",
            "tls_key", "smtp_tls", "max_size", "max_recipients", "max_sessions",
            "smtpd_timeout", "max_hops", "queue_lifetime", "delay_warning",
            "retry_schedule", "history_retention", "tracking_retention",
            "policy", "policy_body_scan", "user", "allow_shared_user",
            "min_free_space", "syslog",
            "workers", "client_limit_exceptions", "max_sessions_per_client",
            "smtpd_data_min_rate", "smtpd_data_rate_grace",
            "future_release_max", "filter_timeout", "filter_concurrency")


def test_print_effective_config(daemon_factory):
    d = daemon_factory(start=False)
    p = run_waymarkd("-n", "-f", d.conf)
    assert p.returncode == 0, p.err
    keys = [l.split("=", 1)[0].strip() for l in p.out.splitlines()
            if "=" in l and not l.lstrip().startswith("#")]
    for k in ALL_KEYS:
        assert k in keys, "-n does not print %r:\n%s" % (k, p.out)
    cfg = parse_config_dump(p.out)
    assert "max_size = 10m" in p.out.splitlines(), p.out
    assert "smtp_port = 25" in p.out.splitlines(), p.out
    assert cfg["hostname"] == "mx.test"
    assert "127.0.0.1:%d" % d.port in cfg["listen"]
    assert set(re.split(r"[,\s]+", cfg["local_domains"])) >= {"example.org", "localhost"}
    assert cfg["spool"] == d.spool
    assert cfg["mailbox_root"] == d.mail
    assert cfg["control"] == d.control
    assert cfg["max_recipients"] == "1000"
    assert cfg["max_sessions"] == "100"
    assert cfg["max_hops"] == "100"
    assert cfg["smtp_tls"] == "may"
    assert cfg["user"] == "waymark"
    assert cfg["allow_shared_user"] == "no"
    assert cfg["syslog"] == "no"
    assert cfg["workers"] == "4"
    assert duration_seconds(cfg["smtpd_timeout"]) == 300
    assert duration_seconds(cfg["queue_lifetime"]) == 5 * 86400
    assert duration_seconds(cfg["delay_warning"]) == 4 * 3600
    assert duration_seconds(cfg["history_retention"]) == 7 * 86400
    assert duration_seconds(cfg["tracking_retention"]) == 9 * 86400


def test_print_embedded_default(tmp_path):
    p = run_waymarkd("-n", cwd=str(tmp_path))
    assert p.returncode == 0, p.err
    cfg = parse_config_dump(p.out)
    assert cfg["listen"] == "127.0.0.1:2525"
    assert cfg["local_domains"] == "localhost"
    assert "127.0.0.0/8" in cfg["relay_from"] and "::1" in cfg["relay_from"]
    assert re.search(r"(^|/)var/spool/?$", cfg["spool"]), cfg["spool"]
    assert re.search(r"(^|/)var/mail/?$", cfg["mailbox_root"]), cfg["mailbox_root"]
    assert re.search(r"(^|/)var/control\.sock$", cfg["control"]), cfg["control"]
    assert not os.path.exists(tmp_path / "var"), "-n must not create anything"


def bad_config(tmp_path, lines):
    path = str(tmp_path / "bad.conf")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


BAD = [
    # (lines, line number of the error, key)
    (["# comment", "hostname = mx.test", "bogus_key = 1"], 3, "bogus_key"),
    (["smtpd_timeout = 5x"], 1, "smtpd_timeout"),
    (["max_size = 1m", "", "max_size = 2m"], 3, "max_size"),
    (["max_size = lots"], 1, "max_size"),
    (["syslog = maybe"], 1, "syslog"),
    (["listen = 127.0.0.1"], 1, "listen"),
    (["listen = 127.0.0.1:2525", "relay_from = 10.0.0.0/99"], 2, "relay_from"),
    (["smtp_tls = sometimes"], 1, "smtp_tls"),
]


def test_bad_config_reports_file_line_key(tmp_path):
    for lines, lineno, key in BAD:
        path = bad_config(tmp_path, lines)
        p = run_waymarkd("-n", "-f", path)
        assert p.returncode == 1, (lines, p.returncode, p.out, p.err)
        prefix = "%s:%d: %s: " % (path, lineno, key)
        assert prefix in p.err, "want %r in stderr for %r, got %r" % (prefix, lines, p.err)
        assert len(p.err.split(prefix, 1)[1].strip()) > 0, "reason missing: %r" % p.err


def test_bad_config_refuses_to_start(tmp_path):
    path = bad_config(tmp_path, ["listen = 127.0.0.1:1", "bogus_key = yes"])
    p = run_waymarkd("-f", path)
    assert p.returncode == 1, (p.returncode, p.err)
    assert "%s:2: bogus_key: " % path in p.err, p.err


def test_missing_config_file(tmp_path):
    p = run_waymarkd("-n", "-f", str(tmp_path / "nope.conf"))
    assert p.returncode == 1
    assert "nope.conf" in p.err, p.err


def test_list_keys_accumulate(daemon_factory):
    d = daemon_factory({"local_domains": "a.test, b.test", "relay_from": ""},
                       raw_config="local_domains = c.test\nlocal_domains = example.org")
    p = run_waymarkd("-n", "-f", d.conf)
    assert p.returncode == 0, p.err
    doms = set(re.split(r"[,\s]+", parse_config_dump(p.out)["local_domains"]))
    assert doms >= {"a.test", "b.test", "c.test", "example.org"}, doms
    with d.connect() as c:
        c.ehlo()
        assert_reply(c.cmd("MAIL FROM:<s@example.com>"), 250, "2.")
        for rc in ("x@a.test", "x@b.test", "x@C.TEST", "x@example.org"):
            assert_reply(c.cmd("RCPT TO:<%s>" % rc), 250, "2.")
        assert_reply(c.cmd("RCPT TO:<x@localhost>"), 550, "5.7.1")


def test_relative_paths_resolved_against_config_dir(daemon_factory):
    d = daemon_factory(start=False)
    d.config.update({"spool": "rel-spool", "mailbox_root": "rel-mail",
                     "control": "rel-control.sock"})
    d.write_config()
    d.spool = os.path.join(d.dir, "rel-spool")
    d.mail = os.path.join(d.dir, "rel-mail")
    d.control = os.path.join(d.dir, "rel-control.sock")
    d.start(cwd="/")
    with d.connect() as c:
        c.ehlo()
        queued_qid(c.mail_transaction("s@example.com", ["user@example.org"],
                                      make_message()))
    d.wait_mails("user@example.org", 1)
    assert os.path.isdir(d.spool)
    assert not os.path.exists("/rel-spool") and not os.path.exists("/rel-mail")
    d.cli("queue", check=0)


def test_daemon_creates_folders_owned_by_user(daemon):
    for path in (daemon.spool, daemon.mail):
        assert os.path.isdir(path), path
        if IS_ROOT:
            assert os.stat(path).st_uid == daemon_ids()[0], path
    with daemon.connect() as c:
        c.ehlo()
        queued_qid(c.mail_transaction("s@example.com", ["user@example.org"],
                                      make_message()))
    (data,) = daemon.wait_mails("user@example.org", 1)
    if IS_ROOT:
        f = daemon.mail_files("user@example.org")[0]
        assert os.stat(f).st_uid == daemon_ids()[0]


def test_precreated_folders_owned_by_user(daemon_factory):
    d = daemon_factory(precreate=True)
    with d.connect() as c:
        c.ehlo()
        qid = queued_qid(c.mail_transaction("s@example.com", ["user@example.org"],
                                            make_message()))
    (data,) = d.wait_mails("user@example.org", 1)
    _, fields, _ = split_message(data)
    assert "id %s" % qid in fields[0]


def test_unreachable_parents(daemon_factory):
    """The spool and mailboxes work under a parent that the daemon user cannot search."""
    d = daemon_factory(start=False)
    os.chmod(d.dir, 0o700)
    d.start()
    with d.connect() as c:
        c.ehlo()
        queued_qid(c.mail_transaction("s@example.com", ["user@example.org"],
                                      make_message()))
    d.wait_mails("user@example.org", 1)
    d.wait_queue_drained()


def test_second_daemon_on_same_spool_refused(daemon):
    other = Daemon(config={"spool": daemon.spool})
    try:
        other.start(wait=False)
        rc = other.wait_exit(30)
        assert rc != 0
        log = other.log_text()
        assert re.search(r"in use|already running|another waymarkd|locked", log, re.I), log
        assert daemon.spool in log, log
        assert not other.sanitizer_report(), log
    finally:
        if other.proc is not None:
            other.proc.kill()
            other.proc.wait()
        shutil.rmtree(other.dir, ignore_errors=True)
    with daemon.connect() as c:        # the first one is unharmed
        c.ehlo()
        queued_qid(c.mail_transaction("s@example.com", ["user@example.org"],
                                      make_message()))
    daemon.wait_mails("user@example.org", 1)


def rcpt_limit_is(d, n):
    """True when the n-th RCPT is accepted and the (n+1)-th gets 452 4.5.3."""
    with d.connect() as c:
        c.ehlo()
        assert c.cmd("MAIL FROM:<s@example.com>").code == 250
        for i in range(n):
            if c.cmd("RCPT TO:<r%d@example.org>" % i).code != 250:
                return False
        r = c.cmd("RCPT TO:<over@example.org>")
        return r.code == 452 and r.enh == "4.5.3"


def test_sighup_reload(daemon_factory):
    d = daemon_factory({"max_recipients": "2"})
    assert rcpt_limit_is(d, 2)
    good = d.config_text()
    # a bad file: the daemon keeps running with the old configuration
    d.write_config(good.replace("max_recipients = 2", "max_recipients = 5") +
                   "bogus_reload_key = 1\n")
    d.signal(signal.SIGHUP)
    wait_for(lambda: "bogus_reload_key" in d.log_text(), timeout=15,
             what="the reload error in the log")
    assert d.running
    assert rcpt_limit_is(d, 2)
    # a good file applies to new sessions
    d.write_config(good.replace("max_recipients = 2", "max_recipients = 5"))
    d.signal(signal.SIGHUP)
    wait_for(lambda: rcpt_limit_is(d, 5), timeout=15, interval=0.2,
             what="max_recipients = 5 after SIGHUP")
    assert d.running


def test_sigterm_ends_sessions_with_421(daemon):
    c = daemon.connect()
    c.ehlo()
    assert c.cmd("MAIL FROM:<s@example.com>").code == 250
    idle = daemon.connect()      # a second session, only greeted
    daemon.signal(signal.SIGTERM)
    assert_reply(c.reply(), 421, "4.3.2")
    assert c.expect_eof()
    assert_reply(idle.reply(), 421, "4.3.2")
    assert idle.expect_eof()
    rc = daemon.wait_exit(10)
    assert rc == 0
    c.close()
    idle.close()
    # it comes back with its queue intact
    daemon.start()
    with daemon.connect() as c:
        c.ehlo()
        queued_qid(c.mail_transaction("s@example.com", ["user@example.org"],
                                      make_message()))
    daemon.wait_mails("user@example.org", 1)


def test_sigterm_without_sessions_is_clean(daemon):
    daemon.signal(signal.SIGTERM)
    assert daemon.wait_exit(10) == 0
    daemon.start()
    daemon.cli("queue", check=0)
