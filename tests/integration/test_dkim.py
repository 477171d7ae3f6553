"""
DKIM signing (issue 16): `dkim_key = DOMAIN SELECTOR ALG KEYFILE`, keys made
by `waymark dkim-keygen`, signatures checked by an independent verifier
(python3-dkim, `dkim.DKIM(msg).verify(idx, dnsfunc=...)` answering the DNS
query with the TXT record dkim-keygen printed; no network).

Signed: mail of relay_from clients and AUTH sessions whose From domain has
keys (every key of the domain: RSA and Ed25519 both sign); never mail of
other clients.  The signature is stored with the message (a trace field),
so every path carries it: Maildir, remote SMTP, `waymark show --message`,
after a restart.  Each signature is an event `dkim` "d=D s=S a=ALG".
"""

import base64
import json
import os
import re
import shutil
import stat
import subprocess

import pytest

import dkim

from conftest import (WAYMARK, free_port, make_message, queued_qid,
                      run_waymarkd, wait_for)
from test_remote import Sink, start_sink
from test_submission import crypt_hash

DOMAIN = "example.com"


def keygen(directory, selector, alg, domain=DOMAIN, extra=()):
    """Run `waymark dkim-keygen`; (key path, TXT record text)."""
    p = subprocess.run([WAYMARK, "dkim-keygen", domain, selector, alg] +
                       list(extra), cwd=directory, capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    path = os.path.join(directory, lines[0])
    m = re.fullmatch(r'(\S+)\. IN TXT((?: "[^"]*")+)', lines[1])
    assert m, lines[1]
    assert m.group(1) == "%s._domainkey.%s" % (selector, domain.lower())
    strings = re.findall(r'"([^"]*)"', m.group(2))
    assert all(len(s) <= 255 for s in strings), strings
    return path, "".join(strings)


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    """An Ed25519 and an RSA key of example.com, and the DNS answers."""
    d = str(tmp_path_factory.mktemp("dkimkeys"))
    ed, ed_txt = keygen(d, "ed", "ed25519-sha256")
    rsa, rsa_txt = keygen(d, "rsa", "rsa-sha256")
    return {
        "dir": d, "ed": ed, "rsa": rsa,
        "dns": {"ed._domainkey.%s." % DOMAIN: ed_txt,
                "rsa._domainkey.%s." % DOMAIN: rsa_txt},
    }


def dkim_lines(k, which=("ed", "rsa")):
    alg = {"ed": "ed25519-sha256", "rsa": "rsa-sha256"}
    return "\n".join("dkim_key = %s %s %s %s" % (DOMAIN, w, alg[w], k[w])
                     for w in which)


def dnsfunc_of(k):
    def dnsfunc(name, timeout=5):
        name = name.decode() if isinstance(name, bytes) else name
        txt = k["dns"].get(name)
        return txt.encode() if txt is not None else None
    return dnsfunc


def signatures(msg):
    """The DKIM-Signature fields (unfolded) of a CRLF message."""
    head = msg.split(b"\r\n\r\n", 1)[0]
    out = []
    for f in re.split(rb"\r\n(?![ \t])", head):
        if f.lower().startswith(b"dkim-signature:"):
            out.append(re.sub(rb"\r\n[ \t]", b" ", f).decode())
    return out


def verify_all(msg, k, want):
    """Every signature verifies; their algorithms are want (a sorted list)."""
    sigs = signatures(msg)
    algs = sorted(re.search(r"\ba=([a-z0-9-]+);", s).group(1) for s in sigs)
    assert algs == sorted(want), sigs
    d = dkim.DKIM(msg)
    for i in range(len(sigs)):
        assert d.verify(idx=i, dnsfunc=dnsfunc_of(k)), (i, sigs[i], msg)
    for s in sigs:
        h = re.search(r"\bh=([^;]*);", s).group(1).replace(" ", "")
        assert h.split(":").count("from") == 2, s      # From oversigned
        assert re.search(r"\bt=\d+;", s) and "c=relaxed/relaxed;" in s, s
        assert not re.search(r"(^|[; ])l=", s), s
    return sigs


def maildir_message(data):
    """A delivered Maildir file without Return-Path, CRLF line ends."""
    assert data.startswith(b"Return-Path: ")
    return data.split(b"\n", 1)[1].replace(b"\n", b"\r\n")


def dkim_events(d, qid):
    m = d.show_json(qid)
    return [e["detail"] for e in m["events"] if e["kind"] == "dkim"]


def send(d, content, rcpt="user@example.org", sender="joe@example.com",
         params=""):
    with d.connect() as c:
        c.ehlo()
        r = c.mail_transaction(sender, [rcpt], content, params)
    return queued_qid(r)


FOLDED = (b"From: Joe SixPack\r\n <joe@example.com>\r\n"
          b"To: Suzie Q <suzie@example.org>,\r\n\t  other@example.org\r\n"
          b"Subject:   Is dinner\r\n   ready?  \r\n"
          b"Date: Fri, 11 Jul 2003 21:00:37 -0700\r\n"
          b"Message-ID: <1@example.com>\r\n"
          b"MIME-Version: 1.0\r\n"
          b"Content-Type: text/plain; charset=utf-8\r\n"
          b"Content-Transfer-Encoding: 8bit\r\n\r\n")

BODIES = {
    "8bit": "Grüße  aus  Köln\t \r\n.leading dot\r\n\r\nend\r\n".encode(),
    "empty": b"",
    "blank lines": b"Hi.\r\n\r\n  \r\n\r\n\r\n",
}


def test_keygen(tmp_path):
    d = str(tmp_path)
    path, txt = keygen(d, "s1", "ed25519-sha256")
    assert path == os.path.join(d, "s1.example.com.key")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert re.fullmatch(r"v=DKIM1; k=ed25519; p=[A-Za-z0-9+/]{43}=", txt), txt
    assert len(base64.b64decode(txt.split("p=")[1])) == 32
    with open(path) as f:
        assert f.read().startswith("-----BEGIN PRIVATE KEY-----")
    # never over an existing file
    before = open(path, "rb").read()
    p = subprocess.run([WAYMARK, "dkim-keygen", DOMAIN, "s1",
                        "ed25519-sha256"], cwd=d, capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 1 and "exists" in p.stderr, p
    assert open(path, "rb").read() == before
    # RSA, 2048 bits by default, --out
    out = os.path.join(d, "r.pem")
    path, txt = keygen(d, "r", "rsa-sha256", extra=["--out", out])
    assert path == out and stat.S_IMODE(os.stat(out).st_mode) == 0o600
    assert txt.startswith("v=DKIM1; k=rsa; p=MIIBIjAN"), txt  # 2048-bit SPKI
    p = subprocess.run(["openssl", "pkey", "-in", out, "-noout", "-text"],
                       capture_output=True, text=True, timeout=60)
    assert "2048 bit" in p.stdout, p.stdout[:200]
    for bad in (["example", "s", "rsa-sha256"], [DOMAIN, "s", "rsa-sha1"],
                [DOMAIN, "s"]):
        p = subprocess.run([WAYMARK, "dkim-keygen"] + bad, cwd=d,
                           capture_output=True, text=True, timeout=60)
        assert p.returncode == 2, (bad, p)
    p = subprocess.run([WAYMARK, "dkim-keygen", "--help"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and "dkim-keygen" in p.stdout


def test_config_check(daemon_factory, keys):
    d = daemon_factory(start=False, raw_config=dkim_lines(keys))
    p = run_waymarkd("-n", "-f", d.conf)
    assert p.returncode == 0, p.err
    assert "dkim_key = %s ed ed25519-sha256 %s\n" % (DOMAIN, keys["ed"]) in p.out
    assert "dkim_key = %s rsa rsa-sha256 %s\n" % (DOMAIN, keys["rsa"]) in p.out
    # the wrong key type for the algorithm, an unreadable file
    d.raw_config = "dkim_key = %s x rsa-sha256 %s" % (DOMAIN, keys["ed"])
    d.write_config()
    p = run_waymarkd("-n", "-f", d.conf)
    assert p.returncode == 1, p.out
    assert re.search(r":\d+: dkim_key: .* is not an RSA key", p.err), p.err
    d.raw_config = "dkim_key = %s x ed25519-sha256 %s" % (
        DOMAIN, os.path.join(d.dir, "missing.key"))
    d.write_config()
    p = run_waymarkd("-n", "-f", d.conf)
    assert p.returncode == 1 and "dkim_key: cannot read" in p.err, p.err
    # one entry a line: a comma is no list separator
    d.raw_config = "dkim_key = %s a ed25519-sha256 %s, %s b rsa-sha256 %s" % (
        DOMAIN, keys["ed"], DOMAIN, keys["rsa"])
    d.write_config()
    p = run_waymarkd("-n", "-f", d.conf)
    assert p.returncode == 1 and "DOMAIN SELECTOR ALG KEYFILE" in p.err, p.err


ALG = {"ed": "ed25519-sha256", "rsa": "rsa-sha256"}


# Ed25519 keys alone are signed on the loop, with an RSA key in a worker
# thread (smtpd_data.c): both ways are checked
@pytest.mark.parametrize("which", [("ed",), ("ed", "rsa")])
def test_signed_local_delivery(daemon_factory, keys, which):
    """Every key signs; folded headers, 8-bit, empty and blank-line bodies
    verify; the key files are root-only (read before the drop)."""
    for k in ("ed", "rsa"):
        assert stat.S_IMODE(os.stat(keys[k]).st_mode) == 0o600
    d = daemon_factory(raw_config=dkim_lines(keys, which))
    n = 0
    for name, body in BODIES.items():
        qid = send(d, FOLDED + body, params="BODY=8BITMIME")
        n += 1
        got = d.wait_mails("user@example.org", n)
        mails = {m for m in got}
        msg = None
        for m in d.mails("user@example.org"):
            if (b" id " + qid.encode()) in m:
                msg = maildir_message(m)
        assert msg is not None, (name, mails)
        verify_all(msg, keys, [ALG[w] for w in which])
        # the body delivered is the body sent
        assert msg.split(b"\r\n\r\n", 1)[1] == body, name
        ev = dkim_events(d, qid)
        assert sorted(ev) == sorted("d=%s s=%s a=%s" % (DOMAIN, w, ALG[w])
                                    for w in which), ev
    assert "dkim=signed" in d.log_text()


@pytest.mark.parametrize("which", [("ed",), ("ed", "rsa")])
def test_signs_what_the_milter_changed(daemon_factory, keys, which):
    """A milter changes the Subject and replaces the body (a new spool
    file swapped in): the signatures cover the message as changed, which
    is the message delivered."""
    from test_milter import Filter, actions
    d = daemon_factory(start=False)
    f = Filter(d)
    try:
        d.config["milters"] = f.name
        d.raw_config = dkim_lines(keys, which)
        d.write_config()
        d.start()
        qid = send(d, FOLDED.replace(b"\r\n\r\n", b"\r\n" + actions(
            "chg-header", "repl-body") + b"\r\n") + b"original body\r\n")
        msg = maildir_message(d.wait_mails("user@example.org", 1)[0])
        head, body = msg.split(b"\r\n\r\n", 1)
        assert body == b"The milter replaced this body.\r\n", body
        assert b"Subject: changed by the milter" in head, head
        sigs = verify_all(msg, keys, [ALG[w] for w in which])
        for s in sigs:
            assert "subject" in re.search(r"\bh=([^;]*);", s).group(1), s
        assert len(dkim_events(d, qid)) == len(which)
    finally:
        f.kill()


def test_stranger_not_signed_auth_signed(daemon_factory, keys):
    """relay_from excludes 127.0.0.1: its mail is not signed; the same
    client after AUTH on the submission port is signed."""
    users = os.path.join(keys["dir"], "users")
    with open(users, "w") as f:
        f.write("alice:%s\n" % crypt_hash("secret"))
    os.chmod(users, 0o644)
    sub = free_port()
    d = daemon_factory({"relay_from": "127.0.0.2",
                        "submission": "127.0.0.1:%d" % sub,
                        "auth_users": users,
                        "submission_plaintext_auth": "yes"},
                       raw_config=dkim_lines(keys))
    qid = send(d, FOLDED + BODIES["8bit"])
    got = d.wait_mails("user@example.org", 1)
    assert b"DKIM-Signature" not in got[0], got[0][:600]
    assert dkim_events(d, qid) == []

    import smtplib
    s = smtplib.SMTP("127.0.0.1", sub, local_hostname="client.test",
                     timeout=30)
    try:
        s.ehlo()
        s.login("alice", "secret")
        s.sendmail("alice@example.com", ["user@example.org"],
                   FOLDED + b"signed after AUTH\r\n")
    finally:
        s.quit()
    got = d.wait_mails("user@example.org", 2)
    signed = [m for m in got if b"signed after AUTH" in m]
    assert len(signed) == 1
    verify_all(maildir_message(signed[0]), keys,
               ["ed25519-sha256", "rsa-sha256"])


def test_other_domain_and_no_from(daemon_factory, keys):
    d = daemon_factory(raw_config=dkim_lines(keys, ("ed",)))
    qid = send(d, b"From: a@elsewhere.example\r\nSubject: x\r\n\r\nx\r\n")
    got = d.wait_mails("user@example.org", 1)
    assert b"DKIM-Signature" not in got[0]
    assert dkim_events(d, qid) == []
    qid = send(d, b"Subject: no from\r\n\r\nx\r\n")
    got = d.wait_mails("user@example.org", 2)
    assert all(b"DKIM-Signature" not in m for m in got)
    assert dkim_events(d, qid) == ["not signed: no From field"]


def test_stored_signature_restart_remote(daemon_factory, keys):
    """The signature is stored with the message: `show --message` has it,
    before and after a restart, and the remote SMTP hop receives it."""
    closed = free_port()
    d = daemon_factory({"smarthost": "[127.0.0.1]:%d" % closed,
                        "retry_schedule": "1h"},
                       raw_config=dkim_lines(keys))
    qid = send(d, FOLDED + BODIES["8bit"], rcpt="far@remote.test",
               params="BODY=8BITMIME")

    def deferred():
        m = d.show_json(qid)
        return m["recipients"][0]["status"] == "deferred"
    wait_for(deferred, timeout=30, what="deferral")
    before = d.cli("show", qid, "--message", check=0).stdout
    verify_all(before.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"), keys,
               ["ed25519-sha256", "rsa-sha256"])

    sink = Sink()
    ctl, port = start_sink(sink)
    try:
        d.stop()
        d.config["smarthost"] = "[127.0.0.1]:%d" % port
        d.write_config()
        d.start()
        after = d.cli("show", qid, "--message", check=0).stdout
        assert after == before
        d.cli("flush", qid, check=0)
        wait_for(lambda: sink.messages, timeout=30, what="relay to the sink")
        got = sink.messages[0][2]
        verify_all(got, keys, ["ed25519-sha256", "rsa-sha256"])
        assert got.split(b"\r\n\r\n", 1)[1] == BODIES["8bit"]
    finally:
        ctl.stop()
    ev = dkim_events(d, qid)
    assert len(ev) == 2, ev


def test_reload_keeps_root_only_keys(daemon_factory, keys):
    """SIGHUP as the unprivileged user cannot read the root-only key
    files again: the unchanged keys loaded at start stay in use."""
    import signal
    d = daemon_factory(raw_config=dkim_lines(keys, ("ed",)))
    d.signal(signal.SIGHUP)
    wait_for(lambda: "configuration reloaded" in d.log_text(), timeout=30,
             what="the reload")
    assert "keeping the DKIM keys loaded before" in d.log_text()
    send(d, FOLDED + b"after the reload\r\n")
    got = d.wait_mails("user@example.org", 1)
    verify_all(maildir_message(got[0]), keys, ["ed25519-sha256"])


def test_lmtp_and_dsn_carry_the_signature(daemon_factory, keys):
    """LMTP delivery, and the message a failure DSN returns, carry the
    stored signature."""
    from test_remote import LMTPController, LMTPSink
    handler = LMTPSink()
    lport = free_port()
    lc = LMTPController(handler, hostname="127.0.0.1", port=lport)
    lc.start()
    sink = Sink(rcpt_hook=lambda a, e: "550 5.1.1 no such user")
    ctl, port = start_sink(sink)
    try:
        d = daemon_factory({"lmtp": "127.0.0.1:%d" % lport,
                            "smarthost": "[127.0.0.1]:%d" % port,
                            "retry_schedule": "1h"},
                           raw_config=dkim_lines(keys))
        send(d, FOLDED + BODIES["blank lines"], rcpt="ok@example.org")
        wait_for(lambda: handler.messages, timeout=30, what="LMTP delivery")
        verify_all(handler.messages[0][1], keys,
                   ["ed25519-sha256", "rsa-sha256"])

        # a failure DSN to a local sender returns the signed message
        content = FOLDED + BODIES["8bit"]
        send(d, content, rcpt="gone@remote.test",
             sender="bounce@example.org", params="BODY=8BITMIME")
        wait_for(lambda: len(handler.messages) >= 2, timeout=30,
                 what="the DSN (local delivery goes by LMTP)")
        dsn = handler.messages[1][1]
        b = re.search(rb'boundary="([^"]+)"', dsn).group(1)
        part = [p for p in dsn.split(b"--" + b)
                if b"message/rfc822" in p.split(b"\r\n\r\n", 1)[0]]
        assert len(part) == 1, dsn[:2000]
        returned = part[0].split(b"\r\n\r\n", 1)[1]
        assert returned.endswith(b"\r\n")
        verify_all(returned[:-2], keys, ["ed25519-sha256", "rsa-sha256"])
    finally:
        ctl.stop()
        lc.stop()


def opendkim_results(path, k, tmp):
    """opendkim's test mode (-t) on a message file: its dkim= results.
    The keys come from TestPublicKeys ("NAME TXT" lines): no DNS."""
    pub = os.path.join(tmp, "keys.txt")
    with open(pub, "w") as f:
        for name, txt in k["dns"].items():
            f.write("%s %s\n" % (name.rstrip("."), txt))
    conf = os.path.join(tmp, "opendkim.conf")
    with open(conf, "w") as f:
        f.write("Mode v\nSyslog no\nTestPublicKeys %s\n" % pub)
    p = subprocess.run(["opendkim", "-x", conf, "-t", path, "-vv"],
                       capture_output=True, text=True, timeout=60)
    out = p.stdout + p.stderr
    return sorted(re.findall(r"dkim=(\w+).*?header\.a=([a-z0-9-]+)", out))


@pytest.mark.skipif(shutil.which("opendkim") is None,
                    reason="opendkim not installed (scripts/deps.sh)")
def test_opendkim_verifies(daemon_factory, keys, tmp_path):
    d = daemon_factory(raw_config=dkim_lines(keys))
    send(d, FOLDED + BODIES["8bit"], params="BODY=8BITMIME")
    got = d.wait_mails("user@example.org", 1)[0]
    msg = got.split(b"\n", 1)[1]          # LF line ends, as in the Maildir
    good = tmp_path / "good.eml"
    good.write_bytes(msg)
    assert opendkim_results(str(good), keys, str(tmp_path)) == [
        ("pass", "ed25519-sha256"), ("pass", "rsa-sha256")]
    bad = tmp_path / "bad.eml"
    bad.write_bytes(msg.replace("Köln".encode(), b"Koeln"))
    assert opendkim_results(str(bad), keys, str(tmp_path)) == [
        ("fail", "ed25519-sha256"), ("fail", "rsa-sha256")]


def test_sendmail_signed(daemon_factory, keys):
    """`waymark sendmail` submits over loopback (relay_from): signed."""
    d = daemon_factory(raw_config=dkim_lines(keys, ("rsa",)))
    p = subprocess.run([WAYMARK, "-f", d.conf, "sendmail", "-f",
                        "joe@example.com", "user@example.org"],
                       input=b"From: Joe <joe@example.com>\n"
                       b"Subject: by sendmail\n\nline\n\n\n",
                       capture_output=True, timeout=60)
    assert p.returncode == 0, p.stderr
    got = d.wait_mails("user@example.org", 1)
    verify_all(maildir_message(got[0]), keys, ["rsa-sha256"])


def unbound_txt(name, txt):
    """An unbound local-data line for a TXT record (strings of <= 255)."""
    parts = [txt[i:i + 255] for i in range(0, len(txt), 255)] or [""]
    return "local-data: '%s 300 IN TXT %s'" % (
        name, " ".join('"%s"' % p for p in parts))


@pytest.mark.skipif(shutil.which("opendkim") is None,
                    reason="opendkim not installed (scripts/deps.sh)")
def test_opendkim_milter_on_second_waymarkd(daemon_factory, keys, tmp_path):
    """The signing waymarkd relays to a second waymarkd whose milter is
    opendkim in verify mode; opendkim looks the keys up through its
    embedded libunbound, whose ResolverConfiguration holds them as
    local-data (no network): both signatures pass in its
    Authentication-Results field."""
    mport = free_port()
    ub = tmp_path / "unbound.conf"
    ub.write_text("server:\n  do-not-query-localhost: yes\n" + "".join(
        "  %s\n" % unbound_txt(n, t) for n, t in keys["dns"].items()))
    conf = tmp_path / "opendkim.conf"
    conf.write_text(
        "Mode v\nSyslog no\nSocket inet:%d@127.0.0.1\n"
        "ResolverConfiguration %s\nAuthservID verifier.test\n"
        "AlwaysAddARHeader yes\nUserID root\n" % (mport, ub))
    od = subprocess.Popen(["opendkim", "-f", "-x", str(conf)],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: _port_open(mport), timeout=30,
                 what="opendkim listening")
        d2 = daemon_factory({"milters": "inet:127.0.0.1:%d" % mport,
                             "milter_default_action": "reject"})
        d1 = daemon_factory({"local_domains": "localhost",
                             "smarthost": "[127.0.0.1]:%d" % d2.port},
                            raw_config=dkim_lines(keys))
        send(d1, FOLDED + BODIES["8bit"], params="BODY=8BITMIME")
        got = d2.wait_mails("user@example.org", 1)[0]
        head = got.split(b"\n\n", 1)[0].decode("utf-8", "replace")
        ar = re.sub(r"\n[ \t]+", " ", head)
        ar = [ln for ln in ar.split("\n")
              if ln.lower().startswith("authentication-results:")]
        assert ar and "verifier.test" in ar[0], head
        res = sorted((m.group(1), re.search(r"header\.a=([a-z0-9-]+)",
                                            m.group(2)).group(1))
                     for m in re.finditer(r"dkim=(\w+)(.*?)(?=dkim=|$)", ar[0]))
        assert res == [("pass", "ed25519-sha256"), ("pass", "rsa-sha256")], ar
    finally:
        od.terminate()
        try:
            od.wait(10)
        except subprocess.TimeoutExpired:
            od.kill()


def _port_open(port):
    import socket
    s = socket.socket()
    s.settimeout(1)
    try:
        s.connect(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()
