"""Submission listeners with AUTH (RFC 6409, RFC 4954): PLAIN and LOGIN
checked against auth_users (crypt(3) hashes), offered only after STARTTLS
unless submission_plaintext_auth = yes; authenticated clients may relay;
Received says ESMTPA / ESMTPSA; failures are logged, delayed, and the
third one closes the session."""

import base64
import os
import re
import signal
import smtplib
import ssl
import subprocess
import time

import pytest

from conftest import (IS_ROOT, QID_RE, SMTPConn, assert_reply, check_received,
                      ehlo_keywords, free_port, make_message, daemon_ids,
                      run_waymarkd, split_message, wait_for)

USER, PASSWORD = "alice", "s3cret pass"


def crypt_hash(password):
    p = subprocess.run(["openssl", "passwd", "-6", "-stdin"], input=password,
                       capture_output=True, text=True, check=True)
    return p.stdout.strip()


def b64(s):
    return base64.b64encode(s.encode() if isinstance(s, str) else s).decode()


def plain(user=USER, password=PASSWORD, authz=""):
    return b64("%s\0%s\0%s" % (authz, user, password))


def write_users(d, text, name="users"):
    path = os.path.join(d.dir, name)
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, 0o644)
    return path


def make_daemon(daemon_factory, tls=False, plaintext=True, extra=None):
    d = daemon_factory(start=False)
    d.sub_port = free_port()
    users = write_users(d, "# test users\n%s:%s\nbob:%s\n" % (
        USER, crypt_hash(PASSWORD), crypt_hash("bobpw")))
    d.config.update({
        "submission": "127.0.0.1:%d" % d.sub_port,
        "auth_users": users,
        "submission_plaintext_auth": "yes" if plaintext else "no",
        "relay_from": "",
    })
    if tls:
        cert = os.path.join(d.dir, "cert.pem")
        key = os.path.join(d.dir, "key.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048",
                        "-nodes", "-subj", "/CN=mx.test", "-days", "2",
                        "-keyout", key, "-out", cert],
                       check=True, capture_output=True)
        os.chmod(key, 0o600)
        if IS_ROOT:
            os.chown(key, *daemon_ids())
        d.config["tls_cert"] = cert
        d.config["tls_key"] = key
    d.config.update(extra or {})
    d.write_config()
    d.start()
    return d


@pytest.fixture
def sub_daemon(daemon_factory):
    return make_daemon(daemon_factory)


@pytest.fixture
def tls_sub_daemon(daemon_factory):
    return make_daemon(daemon_factory, tls=True, plaintext=False)


def client_context():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def test_auth_required_then_relay(sub_daemon):
    d = sub_daemon
    with SMTPConn(d.sub_port) as c:
        r = c.ehlo()
        assert "AUTH PLAIN LOGIN" in r.lines, r
        assert_reply(c.cmd("MAIL FROM:<a@example.com>"), 530, "5.7.0")
        assert_reply(c.cmd("RCPT TO:<x@far.example>"), 530, "5.7.0")
        assert_reply(c.cmd("DATA"), 530, "5.7.0")
        t0 = time.monotonic()
        assert_reply(c.cmd("AUTH PLAIN " + plain(password="wrong")), 535, "5.7.8")
        assert time.monotonic() - t0 >= 0.8, "failure reply not delayed"
        assert_reply(c.cmd("AUTH PLAIN " + plain()), 235, "2.7.0")
        assert_reply(c.cmd("AUTH PLAIN " + plain()), 503, "5.5.1")
        # RFC 4954 5: AUTH= on MAIL is accepted (value checked, not used)
        assert_reply(c.cmd("MAIL FROM:<alice@example.com> AUTH=bob"), 501, "5.5.4")
        assert_reply(c.cmd("MAIL FROM:<alice@example.com> AUTH=<>"), 250)
        assert_reply(c.cmd("RSET"), 250)
        assert_reply(c.cmd("MAIL FROM:<alice@example.com> "
                           "AUTH=alice+40x@example.com"), 250)
        assert_reply(c.cmd("AUTH PLAIN " + plain()), 503, "5.5.1")
        # relay_from is empty: only the authentication allows this
        assert_reply(c.cmd("RCPT TO:<x@far.example>"), 250)
        assert_reply(c.cmd("RSET"), 250)
    log = d.log_text()
    assert re.search(r"session=\w+ auth failed user=alice\b", log), log
    assert "auth ok user=alice" in log
    assert plain(password="wrong") not in log and plain() not in log


def test_plain_listener_has_no_auth(sub_daemon):
    d = sub_daemon
    with d.connect() as c:
        kw = ehlo_keywords(c.ehlo())
        assert not any(k.startswith("AUTH") for k in kw), kw
        assert_reply(c.cmd("AUTH PLAIN " + plain()), 503, "5.5.1")
        # AUTH is not offered here, so neither is its MAIL parameter
        assert_reply(c.cmd("MAIL FROM:<a@example.com> AUTH=<>"), 555, "5.5.4")
        assert_reply(c.cmd("MAIL FROM:<a@example.com>"), 250)
        assert_reply(c.cmd("RCPT TO:<x@far.example>"), 550, "5.7.1")
        assert_reply(c.cmd("RCPT TO:<user@example.org>"), 250)


def test_auth_exchanges_and_errors(sub_daemon):
    d = sub_daemon
    with SMTPConn(d.sub_port) as c:
        c.ehlo()
        assert_reply(c.cmd("AUTH CRAM-MD5"), 504, "5.5.4")
        assert_reply(c.cmd("AUTH PLAIN %%%%"), 501, "5.5.2")
        r = c.cmd("AUTH PLAIN")
        assert r.code == 334 and r.lines == [""], r
        assert_reply(c.cmd("*"), 501, "5.7.0")
        r = c.cmd("AUTH LOGIN")
        assert r.code == 334 and base64.b64decode(r.lines[0]) == b"Username:", r
        r = c.cmd(b64("bob"))
        assert r.code == 334 and base64.b64decode(r.lines[0]) == b"Password:", r
        assert_reply(c.cmd("!!!"), 501, "5.5.2")
        # PLAIN without an initial response
        r = c.cmd("AUTH PLAIN")
        assert r.code == 334, r
        assert_reply(c.cmd(plain("bob", "bobpw")), 235, "2.7.0")
        assert_reply(c.cmd("MAIL FROM:<bob@example.com>"), 250)
    with SMTPConn(d.sub_port) as c:
        c.ehlo()
        assert c.cmd("AUTH LOGIN " + b64(USER)).code == 334
        assert_reply(c.cmd(b64(PASSWORD)), 235, "2.7.0")


def test_three_failures_close(sub_daemon):
    d = sub_daemon
    with SMTPConn(d.sub_port) as c:
        c.ehlo()
        assert_reply(c.cmd("AUTH PLAIN " + plain(password="x")), 535, "5.7.8")
        assert_reply(c.cmd("AUTH PLAIN " + plain(user="nobody-here")), 535, "5.7.8")
        # pipelined input waits behind the delayed reply
        c.send("AUTH LOGIN %s\r\n%s\r\nNOOP\r\n" % (b64(USER), b64("nope")))
        assert c.reply().code == 334
        assert_reply(c.reply(), 421, "4.7.0")
        assert c.expect_eof()
    assert d.log_text().count("auth failed") == 3


def test_msmtp_plain_esmtpa(sub_daemon):
    d = sub_daemon
    msg = make_message(subject="via msmtp")
    p = subprocess.run(
        ["msmtp", "--host=127.0.0.1", "--port=%d" % d.sub_port, "--tls=off",
         "--auth=plain", "--user=" + USER,
         "--passwordeval=printf '%s' '" + PASSWORD + "'",
         "--domain=client.test", "--from=alice@example.com",
         "user@example.org"],
        input=msg, capture_output=True, timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr
    (data,) = d.wait_mails("user@example.org", 1)
    _, fields, _ = split_message(data)
    check_received(fields[0], proto="ESMTPA", rcpt="user@example.org")
    # a bad password: msmtp fails with the 535
    p = subprocess.run(
        ["msmtp", "--host=127.0.0.1", "--port=%d" % d.sub_port, "--tls=off",
         "--auth=plain", "--user=" + USER, "--passwordeval=echo wrong",
         "--domain=client.test", "--from=alice@example.com",
         "user@example.org"],
        input=msg, capture_output=True, timeout=60)
    assert p.returncode != 0
    assert b"535" in p.stdout + p.stderr


def test_auth_only_after_starttls(tls_sub_daemon):
    d = tls_sub_daemon
    with SMTPConn(d.sub_port) as c:
        kw = ehlo_keywords(c.ehlo())
        assert "STARTTLS" in kw and not any(k.startswith("AUTH") for k in kw), kw
        assert_reply(c.cmd("AUTH PLAIN " + plain()), 530, "5.7.0")
        assert_reply(c.cmd("MAIL FROM:<a@example.com>"), 530, "5.7.0")
    with smtplib.SMTP("127.0.0.1", d.sub_port, timeout=30) as s:
        s.ehlo("client.test")
        assert not s.has_extn("auth")
        s.starttls(context=client_context())
        s.ehlo("client.test")
        assert s.has_extn("auth")
        assert "PLAIN" in s.esmtp_features["auth"].split()
        assert "LOGIN" in s.esmtp_features["auth"].split()


@pytest.mark.parametrize("mech", ["LOGIN", "PLAIN"])
def test_swaks_starttls_esmtpsa(tls_sub_daemon, mech):
    d = tls_sub_daemon
    base = ["swaks", "--server", "127.0.0.1", "--port", str(d.sub_port),
            "--ehlo", "client.test", "--from", "alice@example.com",
            "--timeout", "30"]
    p = subprocess.run(base + ["--to", "user@example.org", "--tls",
                               "--auth", mech, "--auth-user", USER,
                               "--auth-password", PASSWORD],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "235 2.7.0" in p.stdout
    m = re.search(r"250 2\.0\.0 Ok: queued as (" + QID_RE + r")", p.stdout)
    assert m, p.stdout
    (data,) = d.wait_mails("user@example.org", 1)
    _, fields, _ = split_message(data)
    check_received(fields[0], proto="ESMTPSA", qid=m.group(1))
    # relaying after AUTH (the RCPT is accepted; quit before DATA)
    p = subprocess.run(base + ["--to", "someone@far.example", "--tls",
                               "--auth", mech, "--auth-user", USER,
                               "--auth-password", PASSWORD,
                               "--quit-after", "RCPT"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr
    assert re.search(r"<~\s+250 2\.1\.5", p.stdout), p.stdout
    # without TLS swaks finds no AUTH to use
    p = subprocess.run(base + ["--to", "user@example.org", "--auth", mech,
                               "--auth-user", USER, "--auth-password", PASSWORD],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode != 0, p.stdout
    # and a bad password
    p = subprocess.run(base + ["--to", "user@example.org", "--tls",
                               "--auth", mech, "--auth-user", USER,
                               "--auth-password", "wrong"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode != 0
    assert "535 5.7.8" in p.stdout


def test_auth_users_errors(daemon_factory):
    d = daemon_factory(start=False)
    bad = write_users(d, "%s:%s\n\nno-colon-here\n" % (USER, crypt_hash("x")),
                      "bad-users")
    d.config["auth_users"] = bad
    d.write_config()
    p = run_waymarkd("-n", "-f", d.conf)
    assert p.returncode != 0
    assert "%s:3:" % bad in p.err, p.err
    d.config["auth_users"] = os.path.join(d.dir, "missing")
    d.write_config()
    p = run_waymarkd("-n", "-f", d.conf)
    assert p.returncode != 0
    assert "auth_users" in p.err and "missing" in p.err, p.err
    d.config["submission_plaintext_auth"] = "maybe"
    d.config["auth_users"] = None
    d.write_config()
    p = run_waymarkd("-n", "-f", d.conf)
    assert p.returncode != 0 and "submission_plaintext_auth" in p.err, p.err


def test_auth_users_reloaded(sub_daemon):
    d = sub_daemon
    with SMTPConn(d.sub_port) as c:
        c.ehlo()
        assert_reply(c.cmd("AUTH PLAIN " + plain("carol", "c")), 535, "5.7.8")
    write_users(d, "carol:%s\n" % crypt_hash("c"))
    d.signal(signal.SIGHUP)

    def carol_ok():
        with SMTPConn(d.sub_port) as c:
            c.ehlo()
            return c.cmd("AUTH PLAIN " + plain("carol", "c")).code == 235
    wait_for(carol_ok, timeout=20, interval=0.3, what="carol after SIGHUP")
