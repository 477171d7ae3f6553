"""SMTP conversations: greeting, EHLO, replies and enhanced codes, sequencing,
syntax, PIPELINING, dot-stuffing, 8BITMIME, line-end normalisation, recipients
(local, relay, postmaster, unsafe local parts), Maildir content."""

import ctypes
import errno
import os
import re
import socket
import subprocess

import pytest

from conftest import (QID_RE, QUEUED_RE, assert_reply, check_received,
                      dot_stuff, ehlo_keywords, lf, make_message, queued_qid,
                      socket_fds, split_message, tcp_sockets)


# -------------------------------------------------------------- greeting

def test_greeting_and_ehlo_extensions(daemon):
    with daemon.connect() as c:
        assert c.greeting.code == 220
        assert c.greeting.lines[0].startswith("mx.test"), c.greeting
        r = c.ehlo()
        assert r.lines[0].startswith("mx.test"), r
        kw = ehlo_keywords(r)
        for ext in ("PIPELINING", "SIZE", "8BITMIME", "ENHANCEDSTATUSCODES"):
            assert ext in kw, "EHLO must list %s: %r" % (ext, r)
        assert "SIZE 10485760" in [l.upper() for l in r.lines], r
        assert "STARTTLS" not in kw, "no STARTTLS without tls_cert/tls_key: %r" % r
        assert_reply(c.cmd("QUIT"), 221, "2.")
        assert c.expect_eof()


def _server_socket_of(pid, client_sock):
    """A duplicate (pidfd_getfd) of the daemon's socket whose peer is
    client_sock, or None where the kernel refuses it."""
    port = client_sock.getsockname()[1]
    server_port = client_sock.getpeername()[1]
    inode = None
    for lport, rport, _, ino in tcp_sockets():
        if lport == server_port and rport == port:
            inode = ino
    assert inode is not None, "no server side of port %d in /proc/net/tcp" % port
    fd = socket_fds(pid).get(inode)
    assert fd is not None, "waymarkd holds no socket:[%s]" % inode
    libc = ctypes.CDLL(None, use_errno=True)
    pidfd = os.pidfd_open(pid)
    try:
        got = libc.syscall(438, pidfd, fd, 0)      # SYS_pidfd_getfd (x86-64)
    finally:
        os.close(pidfd)
    if got < 0:
        e = ctypes.get_errno()
        assert e in (errno.EPERM, errno.ENOSYS), os.strerror(e)
        return None
    return socket.socket(fileno=got)


def test_accepted_connection_has_nodelay(daemon):
    """Replies are never held back by Nagle's algorithm: the daemon's side
    of an accepted connection has TCP_NODELAY (on Linux inherited from the
    listening socket, set once at start instead of after every accept)."""
    with daemon.connect() as c:
        s = _server_socket_of(daemon.pid, c.sock)
        if s is None:
            pytest.skip("pidfd_getfd refused (ptrace restrictions)")
        try:
            assert s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
        finally:
            s.close()       # the duplicate; the daemon's fd stays open
        assert_reply(c.cmd("QUIT"), 221, "2.")


def test_enhanced_codes_on_every_reply(daemon):
    with daemon.connect() as c:
        c.ehlo()
        assert_reply(c.cmd("NOOP"), 250, "2.")
        assert_reply(c.cmd("NOOP hello"), 250, "2.")
        assert_reply(c.cmd("HELP"), 214, "2.")
        assert_reply(c.cmd("RSET"), 250, "2.")
        assert_reply(c.cmd("VRFY user@example.org"), 252, "2.")
        assert_reply(c.cmd("MAIL FROM:<s@example.com>"), 250, "2.")
        assert_reply(c.cmd("RCPT TO:<user@example.org>"), 250, "2.")
        r = c.cmd("DATA")
        assert r.code == 354, r
        c.send(dot_stuff(make_message()))
        r = c.reply()
        assert_reply(r, 250, "2.0.0")
        assert QUEUED_RE.match(r.text), r
        assert_reply(c.cmd("FOO"), 500, "5.5.2")
        assert_reply(c.cmd("QUIT"), 221, "2.")


def test_smtplib_transaction(daemon):
    msg = make_message(subject="smtplib")
    with daemon.smtplib() as s:
        code, resp = s.ehlo()
        assert code == 250
        assert s.has_extn("pipelining") and s.has_extn("enhancedstatuscodes")
        code, resp = s.mail("sender@example.com")
        assert code == 250, resp
        code, resp = s.rcpt("user@example.org")
        assert code == 250, resp
        code, resp = s.data(msg)
        assert code == 250, resp
        m = QUEUED_RE.match(resp.decode())
        assert m, resp
        qid = m.group(1)
    (data,) = daemon.wait_mails("user@example.org", 1)
    rp, fields, rest = split_message(data)
    assert rp == "Return-Path: <sender@example.com>"
    assert len(fields) == 1
    check_received(fields[0], qid=qid, rcpt="user@example.org")
    assert rest == lf(msg)


def test_helo_gives_with_smtp(daemon):
    msg = make_message(subject="helo")
    with daemon.connect() as c:
        r = c.cmd("HELO client.test")
        assert r.code == 250, r
        qid = queued_qid(c.mail_transaction("s@example.com", ["user@example.org"], msg))
    (data,) = daemon.wait_mails("user@example.org", 1)
    _, fields, rest = split_message(data)
    check_received(fields[0], proto="SMTP", qid=qid)
    assert rest == lf(msg)


def test_swaks_conversation(daemon):
    p = subprocess.run(
        ["swaks", "--server", "127.0.0.1", "--port", str(daemon.port),
         "--ehlo", "client.test", "--from", "swaks@example.com",
         "--to", "user@example.org", "--header", "Subject: via swaks",
         "--body", "Sent by swaks.", "--timeout", "30"],
        capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr
    m = re.search(r"<-\s+250 2\.0\.0 Ok: queued as (" + QID_RE + r")\s*$",
                  p.stdout, re.M)
    assert m, p.stdout
    (data,) = daemon.wait_mails("user@example.org", 1)
    assert b"Subject: via swaks" in data
    assert b"Sent by swaks." in data
    _, fields, _ = split_message(data)
    check_received(fields[0], qid=m.group(1), rcpt="user@example.org")


def test_swaks_pipelining(daemon):
    p = subprocess.run(
        ["swaks", "--server", "127.0.0.1", "--port", str(daemon.port),
         "--ehlo", "client.test", "--from", "swaks@example.com",
         "--to", "user@example.org,other@example.org", "--pipeline",
         "--timeout", "30"],
        capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "queued as" in p.stdout, p.stdout
    daemon.wait_mails("user@example.org", 1)
    daemon.wait_mails("other@example.org", 1)


# ------------------------------------------------------------ sequencing

def test_bad_sequence(daemon):
    with daemon.connect() as c:
        c.ehlo()
        assert_reply(c.cmd("RCPT TO:<user@example.org>"), 503, "5.5.1")
        assert_reply(c.cmd("DATA"), 503, "5.5.1")
        assert_reply(c.cmd("MAIL FROM:<s@example.com>"), 250, "2.")
        assert_reply(c.cmd("MAIL FROM:<s@example.com>"), 503, "5.5.1")
        r = c.cmd("DATA")   # no accepted recipient
        assert r.code in (503, 554), r
        assert r.enh and r.enh.startswith("5."), r
        assert_reply(c.cmd("RCPT TO:<user@example.org>"), 250, "2.")
        assert_reply(c.cmd("RSET"), 250, "2.")
        assert_reply(c.cmd("RCPT TO:<user@example.org>"), 503, "5.5.1")
        assert_reply(c.cmd("DATA"), 503, "5.5.1")


def test_unknown_command(daemon):
    with daemon.connect() as c:
        c.ehlo()
        assert_reply(c.cmd("FOO"), 500, "5.5.2")
        assert_reply(c.cmd("XYZZY plugh"), 500, "5.5.2")
        assert_reply(c.cmd("MAILFROM:<a@example.com>"), 500, "5.5.2")
        assert_reply(c.cmd("NOOP"), 250, "2.")


def test_syntax_errors(daemon):
    with daemon.connect() as c:
        assert c.cmd("EHLO").code == 501   # EHLO replies need no enhanced code
        c.ehlo()
        for bad in ("MAIL FROM:s@example.com",
                    "MAIL FROM:<s@example.com",
                    "MAIL FROM:<s@exa mple.com>",
                    "MAIL FROM:<s@bad_domain.example>",
                    "MAIL FROM:<s@example..com>",
                    "MAIL TO:<s@example.com>",
                    "MAIL"):
            assert_reply(c.cmd(bad), 501, "5.")
        assert_reply(c.cmd("MAIL FROM:<s@example.com> SIZE=abc"), 501, "5.5.4")
        assert_reply(c.cmd("MAIL FROM:<s@example.com>"), 250, "2.")
        for bad in ("RCPT TO:user@example.org", "RCPT TO:<user@>",
                    "RCPT TO:<@example.org>", "RCPT"):
            assert_reply(c.cmd(bad), 501, "5.")
        assert_reply(c.cmd("RCPT TO:<user@example.org>"), 250, "2.")
        assert_reply(c.cmd("NOOP"), 250, "2.")


def test_unknown_parameter(daemon):
    with daemon.connect() as c:
        c.ehlo()
        assert_reply(c.cmd("MAIL FROM:<s@example.com> XFOO=bar"), 555, "5.5.4")
        assert_reply(c.cmd("MAIL FROM:<s@example.com> SIZE=100 XBAR"), 555, "5.5.4")
        assert_reply(c.cmd("MAIL FROM:<s@example.com> SIZE=100 BODY=7BIT"), 250, "2.")
        assert_reply(c.cmd("RCPT TO:<user@example.org> XFOO=1"), 555, "5.5.4")
        assert_reply(c.cmd("RCPT TO:<user@example.org>"), 250, "2.")


def test_vrfy_252(daemon):
    with daemon.connect() as c:
        c.ehlo()
        r = c.cmd("VRFY user@example.org")
        assert_reply(r, 252, "2.")


def test_rset_noop_quit(daemon):
    with daemon.connect() as c:
        c.ehlo()
        assert_reply(c.cmd("MAIL FROM:<s@example.com>"), 250, "2.")
        assert_reply(c.cmd("RCPT TO:<user@example.org>"), 250, "2.")
        assert_reply(c.cmd("NOOP"), 250, "2.")
        assert_reply(c.cmd("RSET"), 250, "2.")
        assert_reply(c.cmd("MAIL FROM:<s2@example.com>"), 250, "2.")
        assert_reply(c.cmd("QUIT"), 221, "2.")
        assert c.expect_eof()
    assert daemon.queue_json() == []


# ------------------------------------------------------------ PIPELINING

def test_pipelined_transactions(daemon):
    msgs = [make_message(subject="pipelined %d" % i) for i in range(3)]
    with daemon.connect() as c:
        c.ehlo()
        # group 1: MAIL, RCPT, RCPT, DATA in one send
        c.send(b"MAIL FROM:<p@example.com>\r\nRCPT TO:<pipe@example.org>\r\n"
               b"RCPT TO:<bad/one@example.org>\r\nDATA\r\n")
        assert c.reply().code == 250
        assert c.reply().code == 250
        assert_reply(c.reply(), 550, "5.1.3")
        assert c.reply().code == 354
        qids = []
        # content + next transaction in one send each time
        for i in (1, 2):
            c.send(dot_stuff(msgs[i - 1]) +
                   b"MAIL FROM:<p@example.com>\r\nRCPT TO:<pipe@example.org>\r\n"
                   b"DATA\r\n")
            qids.append(queued_qid(c.reply()))
            assert c.reply().code == 250
            assert c.reply().code == 250
            assert c.reply().code == 354
        c.send(dot_stuff(msgs[2]) + b"QUIT\r\n")
        qids.append(queued_qid(c.reply()))
        assert c.reply().code == 221
        assert c.expect_eof()
    assert len(set(qids)) == 3, qids
    files = daemon.wait_mails("pipe@example.org", 3)
    assert len(files) == 3
    got = {}
    for data in files:
        _, fields, rest = split_message(data)
        qid = re.search(r"\bid (" + QID_RE + r")\b", fields[0]).group(1)
        got[qid] = rest
    assert got == {q: lf(m) for q, m in zip(qids, msgs)}


def test_pipelined_command_group(daemon):
    """Many commands in one packet are all answered, in order."""
    with daemon.connect() as c:
        c.send(b"EHLO client.test\r\nNOOP\r\nMAIL FROM:<a@example.com>\r\n"
               b"RCPT TO:<x@example.org>\r\nRSET\r\nNOOP\r\nQUIT\r\n")
        codes = [c.reply().code for _ in range(7)]
        assert codes == [250, 250, 250, 250, 250, 250, 221]
        assert c.expect_eof()


# ------------------------------------------------------------ content

def test_dot_stuffing_round_trip(daemon):
    body = (b"first\r\n.\r\n..\r\n.x\r\n...three\r\n. space\r\n"
            b"middle . dot\r\n.\r\nlast\r\n")
    msg = make_message(subject="dots", body=body)
    stuffed = dot_stuff(msg)
    assert b"\r\n..\r\n" in stuffed and b"\r\n...\r\n" in stuffed
    with daemon.connect() as c:
        c.ehlo()
        qid = queued_qid(c.mail_transaction("s@example.com", ["dots@example.org"], msg))
    (data,) = daemon.wait_mails("dots@example.org", 1)
    _, _, rest = split_message(data)
    assert rest == lf(msg)
    assert rest.endswith(b"first\n.\n..\n.x\n...three\n. space\nmiddle . dot\n.\nlast\n")
    assert daemon.show_json(qid)["queue_id"] == qid


def test_8bit_body_byte_identical(daemon):
    body = ("Grüße aus Köln – ½ € ✓\r\n".encode("utf-8") +
            bytes(range(0x80, 0x100)) + b"\r\n" +
            bytes(b for b in range(0x01, 0x80) if b not in (0x0a, 0x0d)) + b"\r\n")
    msg = make_message(subject="8bit", body=body,
                       extra_headers=b"Content-Type: text/plain; charset=utf-8\r\n"
                                     b"Content-Transfer-Encoding: 8bit\r\n")
    with daemon.connect() as c:
        c.ehlo()
        r = c.mail_transaction("s@example.com", ["eight@example.org"], msg,
                               params="BODY=8BITMIME")
        queued_qid(r)
    (data,) = daemon.wait_mails("eight@example.org", 1)
    _, _, rest = split_message(data)
    assert rest == lf(msg)


def test_bare_lf_and_cr_normalised_no_smuggling(daemon):
    content = (b"Subject: bare\r\n\r\nline1\nline2\n.\nMAIL FROM:<evil@example.com>\n"
               b"x\ry\r\n.\rnot end\r\nlast\r\n")
    with daemon.connect() as c:
        c.ehlo()
        assert c.cmd("MAIL FROM:<s@example.com>").code == 250
        assert c.cmd("RCPT TO:<bare@example.org>").code == 250
        assert c.cmd("DATA").code == 354
        c.send(content + b".\r\n")
        qid = queued_qid(c.reply())
        # nothing from inside the content may have been taken as a command
        assert_reply(c.cmd("NOOP"), 250, "2.")
        assert_reply(c.cmd("RSET"), 250, "2.")
    (data,) = daemon.wait_mails("bare@example.org", 1)
    _, fields, rest = split_message(data)
    check_received(fields[0], qid=qid)
    # a lone "." line that did not end DATA may be kept or unstuffed
    want = (re.escape(b"Subject: bare\n\nline1\nline2\n") + rb"\.?\n" +
            re.escape(b"MAIL FROM:<evil@example.com>\nx\ny\n") + rb"\.?\n" +
            re.escape(b"not end\nlast\n"))
    assert re.fullmatch(want, rest), rest
    assert b"\r" not in rest
    assert len(daemon.mail_files("evil@example.com")) == 0


def test_maildir_content_exact(daemon):
    msg = (b"From: Alice <alice@example.com>\r\nTo: bob@example.org\r\n"
           b"Subject: exact bytes\r\nMessage-ID: <exact.1@client.test>\r\n"
           b"X-Folded: a\r\n\tb\r\n\r\nBody line 1\r\n\r\n  indented\r\n"
           b"trailing spaces   \r\n\ttab\r\nend")
    with daemon.connect() as c:
        c.ehlo()
        qid = queued_qid(c.mail_transaction("alice@example.com",
                                            ["bob@example.org"], msg))
    (data,) = daemon.wait_mails("bob@example.org", 1)
    assert data.startswith(b"Return-Path: <alice@example.com>\nReceived: from client.test")
    rp, fields, rest = split_message(data)
    assert rp == "Return-Path: <alice@example.com>"
    assert len(fields) == 1, fields
    check_received(fields[0], qid=qid, rcpt="bob@example.org")
    assert rest == lf(msg) + b"\n"    # the last line got its line end
    assert b"\r" not in data


def test_null_sender(daemon):
    with daemon.connect() as c:
        c.ehlo()
        assert_reply(c.cmd("MAIL FROM:<>"), 250, "2.")
        assert_reply(c.cmd("RCPT TO:<user@example.org>"), 250, "2.")
        assert c.cmd("DATA").code == 354
        c.send(dot_stuff(make_message(subject="bounce")))
        qid = queued_qid(c.reply())
    (data,) = daemon.wait_mails("user@example.org", 1)
    rp, fields, _ = split_message(data)
    assert rp == "Return-Path: <>"
    check_received(fields[0], qid=qid)


def test_two_local_recipients_two_files(daemon):
    msg = make_message(subject="two")
    with daemon.connect() as c:
        c.ehlo()
        qid = queued_qid(c.mail_transaction(
            "s@example.com", ["one@example.org", "two@localhost"], msg))
    (a,) = daemon.wait_mails("one@example.org", 1)
    (b,) = daemon.wait_mails("two@localhost", 1)
    for data in (a, b):
        _, fields, rest = split_message(data)
        check_received(fields[0], qid=qid)
        assert rest == lf(msg)
    daemon.wait_queue_drained()
    assert len(daemon.mail_files("one@example.org")) == 1
    assert len(daemon.mail_files("two@localhost")) == 1


def test_recipient_case_folded_to_lower_case_path(daemon):
    with daemon.connect() as c:
        c.ehlo()
        queued_qid(c.mail_transaction("s@example.com", ["Mixed.Case@Example.ORG"],
                                      make_message()))
    daemon.wait_mails("mixed.case@example.org", 1)


# ------------------------------------------------------------ recipients

def test_relay_denied(daemon_factory):
    d = daemon_factory({"relay_from": ""})
    with d.connect() as c:
        c.ehlo()
        assert_reply(c.cmd("MAIL FROM:<s@example.com>"), 250, "2.")
        assert_reply(c.cmd("RCPT TO:<someone@remote.invalid>"), 550, "5.7.1")
        assert_reply(c.cmd("RCPT TO:<user@example.org>"), 250, "2.")


def test_relay_allowed_from_loopback(daemon_factory):
    d = daemon_factory({"relay_from": "127.0.0.0/8, ::1"})
    with d.connect() as c:
        c.ehlo()
        qid = queued_qid(c.mail_transaction("s@example.com",
                                            ["someone@remote.invalid"],
                                            make_message(to="someone@remote.invalid")))
    d.cli("show", qid, check=0)


def test_local_recipients_file(daemon_factory):
    d = daemon_factory(start=False)
    path = d.dir + "/recipients"
    with open(path, "w") as f:
        f.write("known@example.org\nOther@Localhost\n")
    d.config["local_recipients"] = path
    d.write_config()
    d.start()
    with d.connect() as c:
        c.ehlo()
        assert_reply(c.cmd("MAIL FROM:<s@example.com>"), 250, "2.")
        assert_reply(c.cmd("RCPT TO:<unknown@example.org>"), 550, "5.1.1")
        assert_reply(c.cmd("RCPT TO:<known@example.org>"), 250, "2.")
        assert_reply(c.cmd("RCPT TO:<KNOWN@example.org>"), 250, "2.")
        assert_reply(c.cmd("RCPT TO:<other@localhost>"), 250, "2.")
        assert_reply(c.cmd("RCPT TO:<postmaster@example.org>"), 250, "2.")
        assert_reply(c.cmd("RCPT TO:<Postmaster>"), 250, "2.")


def test_unsafe_local_parts(daemon):
    with daemon.connect() as c:
        c.ehlo()
        assert_reply(c.cmd("MAIL FROM:<s@example.com>"), 250, "2.")
        for bad in ("a/b@example.org", ".x@example.org", "x/y/z@localhost",
                    '"quoted"@example.org', '"a b"@example.org', '"../x"@localhost'):
            assert_reply(c.cmd("RCPT TO:<%s>" % bad), 550, "5.1.3")
        assert_reply(c.cmd("RCPT TO:<a.b@example.org>"), 250, "2.")
    for d in (daemon.mail, daemon.mail + "/example.org"):
        if os.path.isdir(d):
            names = os.listdir(d)
            assert not [n for n in names if n.startswith(".") or n in ("a", "a b")], names


def test_postmaster_always_accepted(daemon):
    msg = make_message(subject="to postmaster")
    with daemon.connect() as c:
        c.ehlo()
        assert_reply(c.cmd("MAIL FROM:<s@example.com>"), 250, "2.")
        assert_reply(c.cmd("RCPT TO:<Postmaster>"), 250, "2.")
        assert c.cmd("DATA").code == 354
        c.send(dot_stuff(msg))
        qid1 = queued_qid(c.reply())
        qid2 = queued_qid(c.mail_transaction("s@example.com", ["POSTMASTER@localhost"], msg))
    (data,) = daemon.wait_mails("postmaster@example.org", 1)
    _, fields, rest = split_message(data)
    check_received(fields[0], qid=qid1)
    assert rest == lf(msg)
    (data,) = daemon.wait_mails("postmaster@localhost", 1)
    _, fields, _ = split_message(data)
    check_received(fields[0], qid=qid2)
