"""STARTTLS (RFC 3207) with a self-signed test certificate made by `openssl`."""

import os
import re
import socket
import ssl
import subprocess

import pytest

from conftest import (IS_ROOT, QUEUED_RE, QID_RE, assert_reply, check_received,
                      ehlo_keywords, lf, make_message, daemon_ids,
                      split_message)


def client_context():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


@pytest.fixture
def tls_daemon(daemon_factory):
    d = daemon_factory(start=False)
    cert = os.path.join(d.dir, "cert.pem")
    key = os.path.join(d.dir, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                    "-subj", "/CN=mx.test", "-days", "2",
                    "-keyout", key, "-out", cert],
                   check=True, capture_output=True)
    os.chmod(key, 0o600)
    if IS_ROOT:
        # the daemon may load the key after dropping to `user` (waymark)
        os.chown(key, *daemon_ids())
    d.config["tls_cert"] = cert
    d.config["tls_key"] = key
    d.write_config()
    d.start()
    return d


def test_starttls_advertised_and_message_delivered(tls_daemon):
    d = tls_daemon
    msg = make_message(subject="over TLS")
    with d.smtplib() as s:
        s.ehlo()
        assert s.has_extn("starttls")
        code, resp = s.starttls(context=client_context())
        assert code == 220, resp
        version = s.sock.version()
        cipher = s.sock.cipher()[0]
        code, resp = s.ehlo()
        assert code == 250
        assert not s.has_extn("starttls"), "STARTTLS listed after TLS is active"
        assert s.has_extn("pipelining") and s.has_extn("8bitmime")
        assert s.mail("tls@example.com")[0] == 250
        assert s.rcpt("user@example.org")[0] == 250
        code, resp = s.data(msg)
        assert code == 250, resp
        m = QUEUED_RE.match(resp.decode())
        assert m, resp
        qid = m.group(1)
    (data,) = d.wait_mails("user@example.org", 1)
    rp, fields, rest = split_message(data)
    assert rp == "Return-Path: <tls@example.com>"
    assert len(fields) == 1
    f = check_received(fields[0], proto="ESMTPS", qid=qid, rcpt="user@example.org")
    comments = re.findall(r"\(([^()]*)\)", f)
    assert any(version in c and cipher in c for c in comments), \
        "Received must name %s and %s in a comment: %r" % (version, cipher, f)
    assert rest == lf(msg)


def test_starttls_syntax_and_repeat(tls_daemon):
    d = tls_daemon
    with d.connect() as c:
        r = c.ehlo()
        assert "STARTTLS" in ehlo_keywords(r)
        assert_reply(c.cmd("STARTTLS now"), 501, "5.5.4")
        r = c.cmd("STARTTLS")
        assert r.code == 220, r
        tls = client_context().wrap_socket(c.sock, server_hostname="mx.test")
        tls.sendall(b"EHLO client.test\r\n")
        buf = b""
        while not re.search(rb"(^|\r\n)250 [^\r\n]*\r\n$", buf):
            data = tls.recv(4096)
            assert data, buf
            buf += data
        assert b"STARTTLS" not in buf.upper(), buf
        tls.sendall(b"STARTTLS\r\n")
        buf = b""
        while not buf.endswith(b"\r\n"):
            data = tls.recv(4096)
            assert data, buf
            buf += data
        assert re.match(rb"^5\d\d 5\.\d{1,3}\.\d{1,3} ", buf), buf
        tls.sendall(b"QUIT\r\n")
        tls.close()


def test_no_command_injection_across_starttls(tls_daemon):
    """Plaintext pipelined after STARTTLS must not be executed inside TLS."""
    d = tls_daemon
    c = d.connect()
    c.ehlo()
    c.send(b"STARTTLS\r\nRSET\r\n")
    r = c.reply()
    assert r.code == 220, r
    try:
        tls = client_context().wrap_socket(c.sock, server_hostname="mx.test")
        tls.sendall(b"EHLO client.test\r\n")
        first = b""
        while b"\r\n" not in first:
            data = tls.recv(4096)
            if not data:
                break
            first += data
    except (ssl.SSLError, OSError):
        first = None          # the server refused the connection: safe too
    if first:
        assert first.startswith(b"250-mx.test") or first.startswith(b"250 mx.test"), \
            "first reply inside TLS must answer EHLO, got %r" % first
    c.close()
    with d.connect() as c2:   # still serving
        assert_reply(c2.cmd("NOOP"), 250, "2.")


def test_failed_handshake_keeps_daemon_alive(tls_daemon):
    d = tls_daemon
    with d.connect() as c:
        c.ehlo()
        assert c.cmd("STARTTLS").code == 220
        c.send(b"EHLO this is not a TLS client hello\r\n" * 4)
        assert c.expect_eof(30)
    with d.connect() as c:
        c.ehlo()
        assert c.cmd("STARTTLS").code == 220
        c.sock.shutdown(socket.SHUT_RDWR)    # vanish mid-handshake
    with d.connect() as c:
        assert_reply(c.cmd("NOOP"), 250, "2.")


def test_swaks_tls(tls_daemon):
    d = tls_daemon
    p = subprocess.run(
        ["swaks", "--server", "127.0.0.1", "--port", str(d.port), "--tls",
         "--ehlo", "client.test", "--from", "swaks@example.com",
         "--to", "tls@example.org", "--timeout", "30"],
        capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr
    m = re.search(r"250 2\.0\.0 Ok: queued as (" + QID_RE + r")", p.stdout)
    assert m, p.stdout
    (data,) = d.wait_mails("tls@example.org", 1)
    _, fields, _ = split_message(data)
    check_received(fields[0], proto="ESMTPS", qid=m.group(1))
