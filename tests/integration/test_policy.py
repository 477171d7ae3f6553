"""`policy = FILE` (README "Policy rules"): one rule per line, first match
wins, all conditions of a rule must hold; checked at the end of DATA.

Each condition kind (client, helo, auth, from incl. <>, rcpt, header with a
folded field, body, size, attachment) and each action through real SMTP:
reject answers 550 5.7.1 with its text and queues nothing (no queue entry,
no Maildir file); quarantine[/label] and hold leave the message undelivered
in state quarantine / other with its value, shown by `waymark show --json`;
accept and messages no rule matches are delivered.  A bad file is refused
with FILE:LINE: reason at start (exit 1, also -n) and on SIGHUP, where the
old rules stay in force.
"""

import os
import re
import signal
import smtplib
import subprocess
from email.message import EmailMessage

from conftest import free_port, make_message, run_waymarkd, wait_for

USER, PASSWORD = "alice", "s3cret pass"

POLICY = """\
# waymark integration test policy
reject "Refused: spam subject" header=Subject:/v[i1]agra/
quarantine/virus attachment=*.exe
hold body=/^HOLD ME$/
quarantine/big size>20k
reject rcpt=blocked@example.org
quarantine/bounce from=<>
hold from=held@*
quarantine/helo helo=evil.test
reject "No mail from 127.0.0.2" client=127.0.0.2
quarantine/authed auth=yes rcpt=auth@example.org
reject auth=no rcpt=auth@example.org
accept header=X-Trusted:/^yes$/
reject header=X-Trusted:/./
"""


def line_of(text, prefix):
    """1-based line number of the rule starting with prefix."""
    for i, line in enumerate(text.splitlines(), 1):
        if line.startswith(prefix):
            return i
    raise AssertionError(prefix)


def write_policy(d, text, name="policy.conf"):
    path = os.path.join(d.dir, name)
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, 0o644)
    return path


def crypt_hash(password):
    p = subprocess.run(["openssl", "passwd", "-6", "-stdin"], input=password,
                       capture_output=True, text=True, check=True)
    return p.stdout.strip()


def policy_daemon(daemon_factory, text=POLICY, config=None, submission=False):
    d = daemon_factory(start=False)
    d.policy = write_policy(d, text)
    d.config["policy"] = "policy.conf"          # relative to the config
    if submission:
        d.sub_port = free_port()
        users = os.path.join(d.dir, "users")
        with open(users, "w") as f:
            f.write("%s:%s\n" % (USER, crypt_hash(PASSWORD)))
        os.chmod(users, 0o644)
        d.config.update({"submission": "127.0.0.1:%d" % d.sub_port,
                         "auth_users": users,
                         "submission_plaintext_auth": "yes"})
    d.config.update(config or {})
    d.write_config()
    return d.start()


def send(d, content, rcpts=("user@example.org",), sender="sender@example.com",
         helo="client.test", source=None, port=None, login=False):
    """One transaction with smtplib; returns (code, text) of the end of DATA."""
    s = smtplib.SMTP("127.0.0.1", port or d.port, local_hostname=helo,
                     timeout=30,
                     source_address=(source, 0) if source else None)
    try:
        s.ehlo(helo)
        if login:
            s.login(USER, PASSWORD)
        code, msg = s.mail(sender)
        assert code == 250, (code, msg)
        for r in rcpts:
            code, msg = s.rcpt(r)
            assert code == 250, (r, code, msg)
        code, msg = s.data(content)
        return code, msg.decode()
    finally:
        s.quit()


def qid_of(code, text):
    assert code == 250, (code, text)
    m = re.match(r"^2\.0\.0 Ok: queued as (\S+)$", text)
    assert m, text
    return m.group(1)


def mime_with_attachment(filename):
    m = EmailMessage()
    m["From"] = "sender@example.com"
    m["To"] = "user@example.org"
    m["Subject"] = "report"
    m.set_content("see the attachment\n")
    m.add_attachment(b"MZ\x90\x00" * 64, maintype="application",
                     subtype="octet-stream", filename=filename)
    return m.as_bytes()


def test_accept_and_no_match_deliver(daemon_factory):
    d = policy_daemon(daemon_factory)
    qid = qid_of(*send(d, make_message(subject="ordinary")))
    qid2 = qid_of(*send(d, make_message(extra_headers=b"X-Trusted: yes\r\n"),
                        rcpts=("trusted@example.org",)))
    d.wait_mails("user@example.org", 1)
    d.wait_mails("trusted@example.org", 1)      # accept (line 13) came first
    # X-Trusted with another value falls through to the reject of line 14
    code, text = send(d, make_message(extra_headers=b"X-Trusted: no\r\n"))
    assert (code, text.split()[0]) == (550, "5.7.1"), (code, text)
    for q in (qid, qid2):
        assert d.show_json(q)["state"] == "normal"
    assert "action=accept" not in d.log_text()  # accept is logged at debug only


def test_reject_queues_nothing(daemon_factory):
    d = policy_daemon(daemon_factory, submission=True)
    cases = [
        # (what, send kwargs, content, want text, rule)
        ("header (folded Subject)", {},
         make_message(subject="cheap\r\n\tVIAGRA now"),
         "Refused: spam subject", 'reject "Refused: spam subject"'),
        ("rcpt", {"rcpts": ("ok@example.org", "blocked@example.org")},
         make_message(), "Message refused by policy", "reject rcpt="),
        ("client", {"source": "127.0.0.2"}, make_message(),
         "No mail from 127.0.0.2", 'reject "No mail from 127.0.0.2"'),
        ("auth=no", {"rcpts": ("auth@example.org",)}, make_message(),
         "Message refused by policy", "reject auth=no"),
    ]
    for what, kw, content, want_text, rule in cases:
        code, text = send(d, content, **kw)
        assert code == 550, (what, code, text)
        assert text == "5.7.1 " + want_text, (what, text)
        line = line_of(POLICY, rule)
        wait_for(lambda: re.search(r"session=\S+ qid=\S+ policy=%s:%d "
                                   r"action=reject" % (re.escape(d.policy),
                                                       line), d.log_text()),
                 timeout=10, what="the reject log line of %s" % what)
    assert d.queue_json() == []
    for r in ("user@example.org", "ok@example.org", "blocked@example.org",
              "auth@example.org"):
        assert d.mail_files(r) == [], r
    # the session goes on after a reject: the next message is accepted
    s = smtplib.SMTP("127.0.0.1", d.port, local_hostname="client.test",
                     timeout=30)
    try:
        s.ehlo()
        s.mail("a@example.com")
        s.rcpt("user@example.org")
        code, msg = s.data(make_message(subject="viagra"))
        assert code == 550, (code, msg)
        s.mail("a@example.com")
        s.rcpt("user@example.org")
        code, msg = s.data(make_message(subject="fine"))
        assert code == 250, (code, msg)
    finally:
        s.quit()
    d.wait_mails("user@example.org", 1)


def test_quarantine_and_hold_stay_undelivered(daemon_factory):
    d = policy_daemon(daemon_factory, submission=True)
    big = make_message(body=(b"y" * 70 + b"\r\n") * 400)
    cases = [
        # (what, send kwargs, content, want state, want value, rule)
        ("attachment", {"rcpts": ("h1@example.org",)},
         mime_with_attachment("Setup.EXE"), "quarantine", "virus",
         "quarantine/virus"),
        ("body", {"rcpts": ("h2@example.org",)},
         make_message(body=b"first\r\nHOLD ME\r\nlast\r\n"), "other", "hold",
         "hold body="),
        ("size", {"rcpts": ("h3@example.org",)}, big, "quarantine", "big",
         "quarantine/big"),
        ("from=<>", {"rcpts": ("h4@example.org",), "sender": "<>"},
         make_message(), "quarantine", "bounce", "quarantine/bounce"),
        ("from", {"rcpts": ("h5@example.org",), "sender": "held@example.net"},
         make_message(), "other", "hold", "hold from="),
        ("helo", {"rcpts": ("h6@example.org",), "helo": "EVIL.test"},
         make_message(), "quarantine", "helo", "quarantine/helo"),
        ("auth=yes", {"rcpts": ("auth@example.org",), "login": True,
                      "port": d.sub_port},
         make_message(), "quarantine", "authed", "quarantine/authed"),
    ]
    held = []
    for what, kw, content, state, value, rule in cases:
        qid = qid_of(*send(d, content, **kw))
        m = d.show_json(qid)
        assert (m["state"], m["state_value"]) == (state, value), (what, m)
        line = line_of(POLICY, rule)
        wait_for(lambda: re.search(
            r"session=\S+ qid=%s policy=%s:%d action=\S+ state=%s/%s" % (
                qid, re.escape(d.policy), line, state, value), d.log_text()),
            timeout=10, what="the log line of %s" % what)
        held.append((what, qid, kw["rcpts"][0]))
    # a message sent after them is delivered; the held ones are not
    qid_of(*send(d, make_message(), rcpts=("control@example.org",)))
    d.wait_mails("control@example.org", 1)
    for what, qid, rcpt in held:
        assert d.mail_files(rcpt) == [], what
        m = d.show_json(qid)
        assert [r["status"] for r in m["recipients"]] == ["queued"], (what, m)
    listed = {m["queue_id"]: m for m in d.queue_json()}
    for what, qid, rcpt in held:
        assert qid in listed, what


def test_policy_body_scan(daemon_factory):
    d = policy_daemon(daemon_factory, "hold body=/^NEEDLE$/\n",
                      {"policy_body_scan": "1k"})
    p = run_waymarkd("-n", "-f", d.conf)
    assert "policy_body_scan = 1k" in p.out.splitlines(), p.out
    late = make_message(body=(b"z" * 60 + b"\r\n") * 40 + b"NEEDLE\r\n")
    early = make_message(body=b"NEEDLE\r\n" + (b"z" * 60 + b"\r\n") * 40)
    q1 = qid_of(*send(d, late, rcpts=("late@example.org",)))
    q2 = qid_of(*send(d, early, rcpts=("early@example.org",)))
    d.wait_mails("late@example.org", 1)
    assert d.show_json(q1)["state"] == "normal"
    assert d.show_json(q2)["state"] == "other"


BAD = [
    # (text, line, reason prefix)
    ("accept\n\nreject to=x\n", 3, 'unknown condition "to"'),
    ("# c\nfilter size>1k\n", 2, "filter needs its command"),
    ("quarantine/bad:label\n", 1, 'label "bad:label" is not an RFC 2045 token'),
    ("hold body=/a(/\n", 1, "bad regular expression"),
]


def test_bad_file_refused_at_start(daemon_factory):
    d = daemon_factory(start=False)
    d.config["policy"] = "policy.conf"
    d.write_config()
    for text, line, reason in BAD:
        path = write_policy(d, text)
        want = "%s:%d: %s" % (path, line, reason)
        for args in (("-n", "-f", d.conf), ("-f", d.conf)):
            p = run_waymarkd(*args)
            assert p.returncode == 1, (args, text, p.returncode, p.err)
            assert want in p.err, (args, want, p.err)
    os.unlink(path)
    p = run_waymarkd("-n", "-f", d.conf)
    assert p.returncode == 1 and "%s: No such file" % path in p.err, p.err


def test_sighup_keeps_old_rules(daemon_factory):
    d = policy_daemon(daemon_factory, "reject rcpt=blocked@example.org\n")

    def refused(rcpt):
        code, text = send(d, make_message(), rcpts=(rcpt,))
        return code == 550

    assert refused("blocked@example.org")
    assert not refused("other@example.org")
    # a bad file: logged with FILE:LINE, the old rules stay in force
    write_policy(d, "reject rcpt=other@example.org\nreject to=x\n")
    d.signal(signal.SIGHUP)
    wait_for(lambda: "reload failed: %s:2: unknown condition" % d.policy
             in d.log_text(), timeout=15, what="the reload error")
    assert d.running
    assert refused("blocked@example.org")
    assert not refused("other@example.org")
    # a good file replaces them
    write_policy(d, "reject rcpt=other@example.org\n")
    d.signal(signal.SIGHUP)
    wait_for(lambda: refused("other@example.org"), timeout=15, interval=0.2,
             what="the new rules after SIGHUP")
    assert not refused("blocked@example.org")
