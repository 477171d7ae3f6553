"""Root never follows what the daemon's user can plant, and the daemon's
user is a dedicated one (issue 14, points 2 and 5).

waymarkd starts as root and works in directories its user (`waymark`) owns:
the spool, and the control socket's directory when that is the spool.  A
symbolic link (or a hard link) planted there at the lock file, at the control
socket, or at a directory on the way to the control socket or mailbox_root,
must be refused at start-up with a message naming the path, and what it
points to must stay exactly as it was (contents, size, mtime, mode, owner;
nothing created).  The user may not be root, nor `nobody` unless
`allow_shared_user = yes`; the default is `waymark`.
"""

import os
import pwd
import re
import shutil
import signal
import stat
import tempfile

import pytest

from conftest import (DAEMON_USER, IS_ROOT, daemon_ids, make_message,
                      queued_qid, run_waymarkd, wait_for)

pytestmark = pytest.mark.skipif(not IS_ROOT, reason="needs root: waymarkd "
                                "drops privileges only when started as root")

OLD_MTIME = 1_000_000_000          # 2001: any write would move it
SECRET = b"root-only secret\nsecond line\n"


# ---------------------------------------------------------------- helpers

def make_target(dirpath, name="target"):
    """A root-owned 0600 file with known contents and an old mtime."""
    path = os.path.join(dirpath, name)
    with open(path, "wb") as f:
        f.write(SECRET)
    os.chown(path, 0, 0)
    os.chmod(path, 0o600)
    os.utime(path, (OLD_MTIME, OLD_MTIME))
    return path


def snapshot(path):
    st = os.lstat(path)
    with open(path, "rb") as f:
        data = f.read()
    return (data, st.st_size, st.st_mtime_ns, stat.S_IMODE(st.st_mode),
            st.st_uid, st.st_gid, st.st_nlink)


def plant_symlink(link, target):
    """A symbolic link as the daemon's user would make it."""
    os.symlink(target, link)
    os.lchown(link, *daemon_ids())


def root_dir():
    """A directory outside the daemon's reach (root, 0755)."""
    d = tempfile.mkdtemp(prefix="wm-priv-root-", dir="/tmp")
    os.chmod(d, 0o755)
    return d


def start_refused(d):
    """Start d; it must exit 1 by itself; its log (with stderr)."""
    d.start(wait=False)
    rc = d.wait_exit(30)
    log = d.log_text()
    assert rc == 1, "waymarkd exited %s, want 1:\n%s" % (rc, log)
    assert not d.sanitizer_report(), log
    return log


def proc_ids(pid):
    """(uids, gids, groups) from /proc/PID/status."""
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            out[k] = v.split()
    return ([int(x) for x in out["Uid"]], [int(x) for x in out["Gid"]],
            [int(x) for x in out["Groups"]])


def line_of(conf, key):
    with open(conf) as f:
        for n, line in enumerate(f, 1):
            if re.match(r"\s*%s\s*=" % re.escape(key), line):
                return n
    raise AssertionError("%s not in %s" % (key, conf))


def send_one(d):
    with d.connect() as c:
        c.ehlo()
        queued_qid(c.mail_transaction("s@example.com", ["user@example.org"],
                                      make_message()))
    d.wait_mails("user@example.org", 1)


# ---------------------------------------------------------- the spool lock

@pytest.mark.parametrize("kind", ["symlink", "dangling symlink", "hard link"])
def test_planted_lock_refused_target_untouched(daemon_factory, kind):
    d = daemon_factory(start=False, precreate=True)   # spool owned by waymark
    outside = root_dir()
    try:
        lock = os.path.join(d.spool, "lock")
        if kind == "symlink":
            target = make_target(outside)
            before = snapshot(target)
            plant_symlink(lock, target)
        elif kind == "dangling symlink":
            target = os.path.join(outside, "made-by-root")
            plant_symlink(lock, target)
        else:
            # same file system (/tmp); a user could make it where
            # fs.protected_hardlinks is off
            target = make_target(d.dir, "hardlinked")
            os.link(target, lock)
            before = snapshot(target)
        log = start_refused(d)
        assert lock in log, log
        if kind == "hard link":
            assert re.search(r"not a regular file.*one link|links", log), log
            assert snapshot(target) == before
        else:
            assert "symbolic link" in log, log
            assert os.path.islink(lock), "the planted link must be left alone"
            if kind == "symlink":
                assert snapshot(target) == before
            else:
                assert not os.path.lexists(target), "root created the target"
        assert os.listdir(outside) == ([] if kind != "symlink" else ["target"])
    finally:
        shutil.rmtree(outside, ignore_errors=True)


# ------------------------------------------------------ the control socket

@pytest.mark.parametrize("where", ["root's directory", "the spool"])
def test_planted_control_symlink_refused(daemon_factory, where):
    d = daemon_factory(start=False, precreate=True)
    if where == "the spool":            # the user's own directory
        d.control = os.path.join(d.spool, "control.sock")
        d.config["control"] = d.control
        d.write_config()
    outside = root_dir()
    try:
        target = make_target(outside)
        before = snapshot(target)
        plant_symlink(d.control, target)
        log = start_refused(d)
        assert "control socket %s is a symbolic link" % d.control in log, log
        assert snapshot(target) == before
        assert os.path.islink(d.control), "the planted link must be left alone"
        assert os.listdir(outside) == ["target"]
    finally:
        shutil.rmtree(outside, ignore_errors=True)


def test_symlinked_control_directory_refused(daemon_factory):
    """control = SPOOL/run/control.sock with run -> a root directory: root
    must not create (and give away) a socket there."""
    d = daemon_factory(start=False, precreate=True)
    outside = root_dir()
    try:
        run = os.path.join(d.spool, "run")
        plant_symlink(run, outside)
        d.control = os.path.join(run, "control.sock")
        d.config["control"] = d.control
        d.write_config()
        log = start_refused(d)
        assert "%s is a symbolic link in a directory other users can write" \
            % run in log, log
        assert os.listdir(outside) == [], os.listdir(outside)
    finally:
        shutil.rmtree(outside, ignore_errors=True)


def test_symlinked_mailbox_parent_refused(daemon_factory):
    """mailbox_root under a link the user planted: root must not create the
    folder at the link's target and give it to the user."""
    d = daemon_factory(start=False, precreate=True)
    outside = root_dir()
    try:
        box = os.path.join(d.spool, "box")
        plant_symlink(box, outside)
        d.config["mailbox_root"] = os.path.join(box, "mail")
        d.write_config()
        log = start_refused(d)
        assert "%s is a symbolic link in a directory other users can write" \
            % box in log, log
        assert os.listdir(outside) == [], os.listdir(outside)
    finally:
        shutil.rmtree(outside, ignore_errors=True)


@pytest.mark.parametrize("where", ["root's directory", "the spool"])
def test_restart_after_kill_replaces_stale_socket(daemon_factory, where):
    d = daemon_factory(start=False)
    if where == "the spool":
        d.control = os.path.join(d.spool, "control.sock")
        d.config["control"] = d.control
        d.write_config()
    uid, gid = daemon_ids()
    for _ in range(2):
        d.start()
        lock = os.path.join(d.spool, "lock")
        st = os.lstat(lock)
        assert stat.S_ISREG(st.st_mode) and st.st_nlink == 1, st
        assert st.st_uid == 0, "the lock is root's: %r" % st
        with open(lock) as f:
            assert f.read().strip() == str(d.pid)
        st = os.lstat(d.control)
        assert stat.S_ISSOCK(st.st_mode), st
        assert stat.S_IMODE(st.st_mode) == 0o660, oct(st.st_mode)
        assert (st.st_uid, st.st_gid) == (uid, gid), st
        sp = os.stat(d.spool)
        assert sp.st_uid == uid and stat.S_IMODE(sp.st_mode) & 0o022 == 0, sp
        d.cli("queue", check=0)
        d.kill9()                      # the socket stays behind, stale
        assert stat.S_ISSOCK(os.lstat(d.control).st_mode)
    d.start()
    send_one(d)


def test_spool_writable_by_others_refused(daemon_factory):
    d = daemon_factory(start=False, precreate=True)
    os.chmod(d.spool, 0o777)
    log = start_refused(d)
    assert "spool %s is writable by its group or others" % d.spool in log, log
    assert not os.path.exists(os.path.join(d.spool, "lock"))


# ---------------------------------------------------------------- the user

def test_default_user_is_waymark(daemon_factory, tmp_path):
    p = run_waymarkd("-n", cwd=str(tmp_path))
    assert p.returncode == 0, p.err
    assert "user = waymark" in p.out.splitlines(), p.out
    assert "allow_shared_user = no" in p.out.splitlines(), p.out
    d = daemon_factory()              # the test config sets no user
    pw = pwd.getpwnam(DAEMON_USER)
    uids, gids, groups = proc_ids(d.pid)
    assert uids == [pw.pw_uid] * 4, uids
    assert gids == [pw.pw_gid] * 4, gids
    assert groups == [pw.pw_gid], groups
    assert os.stat(d.spool).st_uid == pw.pw_uid
    send_one(d)
    f = d.mail_files("user@example.org")[0]
    assert os.stat(f).st_uid == pw.pw_uid


def test_nobody_refused_unless_allowed(daemon_factory):
    d = daemon_factory({"user": "nobody"}, start=False)
    n = line_of(d.conf, "user")
    want = ('%s:%d: user: "nobody" is shared with other services; use a '
            'dedicated user (useradd --system waymark) or set '
            'allow_shared_user = yes' % (d.conf, n))
    p = run_waymarkd("-n", "-f", d.conf)
    assert p.returncode == 1 and want in p.err, (p.returncode, p.err)
    log = start_refused(d)
    assert want in log, log
    assert not os.path.exists(d.spool), "refused before creating anything"

    d.config["allow_shared_user"] = "yes"
    d.write_config()
    p = run_waymarkd("-n", "-f", d.conf)
    assert p.returncode == 0, p.err
    d.start()
    nobody = pwd.getpwnam("nobody")
    assert proc_ids(d.pid)[0] == [nobody.pw_uid] * 4
    send_one(d)


def test_root_refused_even_when_shared_allowed(daemon_factory):
    d = daemon_factory({"user": "root", "allow_shared_user": "yes"},
                       start=False)
    want = ('%s:%d: user: "root" has uid 0: waymarkd never runs as root'
            % (d.conf, line_of(d.conf, "user")))
    p = run_waymarkd("-n", "-f", d.conf)
    assert p.returncode == 1 and want in p.err, (p.returncode, p.err)
    log = start_refused(d)
    assert want in log, log
    assert not os.path.exists(d.spool)


def test_reload_refuses_root_and_cli_skips_the_user_check(daemon_factory):
    """A reload to user = root is refused (old configuration kept); the CLI
    does not drop privileges and does not check `user` at all."""
    d = daemon_factory()
    good = d.config_text()
    d.write_config(good + "user = root\n")
    d.signal(signal.SIGHUP)
    wait_for(lambda: re.search(r'reload failed: .*user: "root" has uid 0',
                               d.log_text()),
             timeout=15, what="the refused reload in the log")
    assert d.running
    d.write_config(good + "user = no-such-user-wm\n")
    d.cli("queue", check=0)
    send_one(d)



def test_planted_mailbox_root_symlink_refused(daemon_factory):
    """mailbox_root itself is a link the user planted in its own directory
    (the spool), pointing at a root directory: root must neither create
    in it nor give it to the user (issue 12)."""
    d = daemon_factory(start=False, precreate=True)
    outside = root_dir()
    try:
        before = os.stat(outside)
        link = os.path.join(d.spool, "planted")
        plant_symlink(link, outside)
        d.config["mailbox_root"] = link
        d.write_config()
        log = start_refused(d)
        assert "mailbox_root: %s is a symbolic link in a directory other " \
            "users can write: refusing to follow it" % link in log, log
        after = os.stat(outside)
        assert (after.st_uid, after.st_gid, after.st_mode) == \
            (0, 0, before.st_mode), after
        assert os.listdir(outside) == [], os.listdir(outside)
        assert os.path.islink(link), "the planted link must be left alone"
    finally:
        shutil.rmtree(outside, ignore_errors=True)
