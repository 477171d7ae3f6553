"""Who may use the control socket (issue 12, "Privilege and access").

Operator commands (flush, hold, release, delete, show --message) are
allowed to root and to members of `control_group` (default: the group of
`user`); `queue` and `show` too, or to everyone with `control_read =
anyone`.  The socket is user:control_group, mode 0660 (0666 with
control_read = anyone), and the daemon checks every request by
SO_PEERCRED whatever the mode.  Non-members get one clear refusal, from
`waymark` itself when the socket's mode stops them, else from the daemon;
both exit 1.

Test users and a group with unique names are made with useradd/groupadd
and removed afterwards; `waymark` runs as them through setpriv.
"""

import grp
import os
import pwd
import re
import secrets
import shutil
import stat
import subprocess
import time

import pytest

from conftest import (IS_ROOT, WAYMARK, daemon_ids, free_port, make_message,
                      queued_qid, run_waymarkd)

pytestmark = pytest.mark.skipif(
    not IS_ROOT or shutil.which("setpriv") is None or
    shutil.which("useradd") is None,
    reason="needs root, setpriv and useradd: the test runs waymark as "
    "other users")


def _run(*cmd):
    """useradd & co, retried while another test holds the passwd lock."""
    for _ in range(50):
        p = subprocess.run(list(cmd), capture_output=True, timeout=30)
        if p.returncode == 0:
            return
        if b"lock" not in p.stderr.lower():
            break
        time.sleep(0.1)
    pytest.fail("%s: exit %d: %s" % (" ".join(cmd), p.returncode,
                                    p.stderr.decode("utf-8", "replace")))


@pytest.fixture(scope="module")
def accounts():
    """(group, member, stranger): the member has the group as a
    supplementary group only; each user has its own primary group."""
    tag = secrets.token_hex(3)
    group, member, stranger = ("wmtg" + tag, "wmtm" + tag, "wmts" + tag)
    made = []
    try:
        _run("groupadd", group)
        made.append(("groupdel", group))
        for user, extra in ((member, ["-G", group]), (stranger, [])):
            _run("useradd", "-M", "-U", "-s", "/usr/sbin/nologin", *extra,
                 user)
            made.insert(0, ("userdel", user))
        yield group, member, stranger
    finally:
        for cmd in made:
            subprocess.run(list(cmd), capture_output=True, timeout=30)


def run_as(user, d, *args):
    """`waymark -f CONF args...` as user (its own group, its groups)."""
    p = subprocess.run(["setpriv", "--reuid=" + user, "--regid=" + user,
                        "--init-groups", WAYMARK, "-f", d.conf] + list(args),
                       stdin=subprocess.DEVNULL, capture_output=True,
                       timeout=60, env=d.env)
    p.out = p.stdout.decode("utf-8", "replace")
    p.err = p.stderr.decode("utf-8", "replace")
    return p


def expect(p, rc, what):
    assert p.returncode == rc, "%s: exit %d (want %d)\nstdout: %s\n" \
        "stderr: %s" % (what, p.returncode, rc, p.out, p.err)


def one_local_message(d):
    with d.connect() as c:
        c.ehlo()
        qid = queued_qid(c.mail_transaction(
            "s@example.com", ["user@example.org"], make_message()))
    d.wait_mails("user@example.org", 1)
    return qid


def one_queued_message(d):
    """A message that stays queued: its next hop refuses connections."""
    with d.connect() as c:
        c.ehlo()
        return queued_qid(c.mail_transaction(
            "s@example.com", ["u@remote.test"], make_message()))


def group_refusal(group, user):
    return ("waymark: permission denied: the control socket allows root "
            "and group %s (control_group); %s is not a member\n"
            % (group, user))


def anyone_refusal(cmd, group, user):
    return ("waymark: permission denied: %s is allowed to root and group "
            "%s (control_group); %s is not a member (control_read = anyone "
            "opens queue and show only)\n" % (cmd, group, user))


def test_group_members_only(daemon_factory, accounts):
    group, member, stranger = accounts
    d = daemon_factory({"control_group": group})
    st = os.lstat(d.control)
    assert stat.S_ISSOCK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o660, oct(st.st_mode)
    assert (st.st_uid, st.st_gid) == (daemon_ids()[0],
                                      grp.getgrnam(group).gr_gid), st
    qid = one_local_message(d)

    # a member by a supplementary group: everything
    expect(run_as(member, d, "queue"), 0, "member queue")
    expect(run_as(member, d, "show", qid), 0, "member show")
    p = run_as(member, d, "flush")
    expect(p, 0, "member flush")
    assert p.out == "flushed 0 deferred recipients\n", p.out
    p = run_as(member, d, "hold", "NoSuchQid0000")
    expect(p, 1, "member hold of an unknown qid")
    assert "permission denied" not in p.err, p.err

    # a stranger: refused, one line, each fact once
    for args in (["queue"], ["show", qid], ["flush"], ["hold", qid]):
        p = run_as(stranger, d, *args)
        expect(p, 1, "stranger " + " ".join(args))
        assert p.err == group_refusal(group, stranger), p.err
        assert p.out == "", p.out

    # root, and the daemon's own user
    d.cli("flush", check=0)
    expect(run_as("waymark", d, "queue"), 0, "the daemon's user")


def test_read_anyone_opens_queue_and_show_only(daemon_factory, accounts):
    group, member, stranger = accounts
    d = daemon_factory({"control_group": group, "control_read": "anyone",
                        "smarthost": "[127.0.0.1]:%d" % free_port(),
                        "retry_schedule": "1h"})
    st = os.lstat(d.control)
    assert stat.S_IMODE(st.st_mode) == 0o666, oct(st.st_mode)
    assert st.st_gid == grp.getgrnam(group).gr_gid, st
    qid = one_queued_message(d)

    p = run_as(stranger, d, "queue", "--json")
    expect(p, 0, "stranger queue")
    p = run_as(stranger, d, "show", qid, "--json")
    expect(p, 0, "stranger show")
    assert '"queue_id":"%s"' % qid in p.out, p.out

    for args, what in ((["flush"], "flush"), (["hold", qid], "hold"),
                       (["delete", qid], "delete"),
                       (["show", qid, "--message"], "show --message")):
        p = run_as(stranger, d, *args)
        expect(p, 1, "stranger " + " ".join(args))
        assert p.err == anyone_refusal(what, group, stranger), p.err
        assert p.out == "", p.out
    log = d.log_text()
    assert re.search(r"control: #\d+ flush by %s refused: not root nor in "
                     r"group %s \(control_group\)" % (stranger, group),
                     log), log
    assert "control: flush" not in log, "the stranger's flush ran"
    assert d.show_json(qid)["state"] == "normal", "the stranger's hold ran"

    p = run_as(member, d, "flush")
    expect(p, 0, "member flush")
    p = run_as(member, d, "show", qid, "--message")
    expect(p, 0, "member show --message")
    assert "Subject: test" in p.out, p.out
    expect(run_as(member, d, "hold", qid), 0, "member hold")
    m = d.show_json(qid)
    assert (m["state"], m["state_value"]) == ("other", "hold"), m


def test_default_group_is_the_users(daemon_factory, accounts):
    _, _, stranger = accounts
    d = daemon_factory()
    p = run_waymarkd("-n", "-f", d.conf)
    assert p.returncode == 0, p.err
    lines = p.out.splitlines()
    assert "control_group = " in lines and "control_read = group" in lines, \
        p.out
    ugid = pwd.getpwnam("waymark").pw_gid
    st = os.lstat(d.control)
    assert (stat.S_IMODE(st.st_mode), st.st_gid) == (0o660, ugid), st
    p = run_as(stranger, d, "queue")
    expect(p, 1, "stranger queue")
    assert p.err == group_refusal(grp.getgrgid(ugid).gr_name, stranger), \
        p.err


def test_bad_control_keys(daemon_factory):
    for key, value, why in (
            ("control_group", "no-such-group-wm",
             'unknown group "no-such-group-wm"'),
            ("control_read", "everyone",
             'invalid value "everyone" (group or anyone)')):
        d = daemon_factory({key: value}, start=False)
        n = [i for i, line in enumerate(d.config_text().splitlines(), 1)
             if line.startswith(key + " =")][0]
        p = run_waymarkd("-n", "-f", d.conf)
        want = "%s:%d: %s: %s" % (d.conf, n, key, why)
        assert p.returncode == 1 and p.err.strip() == want, (p.err, want)


def test_group_in_the_users_directory_refused(daemon_factory, accounts):
    """The user binds in its own directory and cannot give the socket to a
    group it is not in: refused at start, naming the fix."""
    group = accounts[0]
    d = daemon_factory({"control_group": group}, start=False,
                       precreate=True)
    d.control = os.path.join(d.spool, "control.sock")
    d.config["control"] = d.control
    d.write_config()
    d.start(wait=False)
    assert d.wait_exit(30) == 1
    log = d.log_text()
    assert ("control socket %s is in waymark's directory %s, where only "
            "waymark can create it, and waymark cannot give it to group %s "
            "(control_group)" % (d.control, d.spool, group)) in log, log
    assert not os.path.lexists(d.control)
