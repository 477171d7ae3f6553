"""
Black-box integration harness for Waymark.

Binaries: $WAYMARK_PREFIX/sbin/waymarkd and $WAYMARK_PREFIX/bin/waymark, or the
repository's build/ directory when WAYMARK_PREFIX is unset.

Fixtures:
  daemon_factory(config=None, start=True, precreate=False, wrapper=None, env=None,
                 addr="127.0.0.1", port=None)
      -> Daemon: a waymarkd in its own temp dir (mkdtemp under /tmp, mode 0755)
      with a config on a free 127.0.0.1 port; addr and port put its `listen`
      (and the harness's own connections) elsewhere, e.g. several daemons on
      one port, each on its own 127.0.0.N.  At teardown every daemon gets
      SIGTERM, must exit 0 within 10 s, and its log must hold no sanitizer
      report ("AddressSanitizer", "LeakSanitizer", "runtime error:").
  daemon -> a started Daemon with the base configuration.

The daemon runs as the default `user`, DAEMON_USER (waymark), created by
scripts/deps.sh; daemon_ids() gives its uid and gid.

Helpers: SMTPConn (raw-socket SMTP client: exact bytes, pipelining; its base
LineConn is MTQPClient's too), dot_stuff,
wait_for (bounded polling; no test ever asserts on timing), maildir readers,
Received-field parsing.
"""

import email.utils
import json
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PREFIX = os.environ.get("WAYMARK_PREFIX")
if PREFIX:
    WAYMARKD = os.path.join(PREFIX, "sbin", "waymarkd")
    WAYMARK = os.path.join(PREFIX, "bin", "waymark")
else:
    WAYMARKD = os.path.join(REPO, "build", "waymarkd")
    WAYMARK = os.path.join(REPO, "build", "waymark")

SAN_MARKERS = ("AddressSanitizer", "LeakSanitizer", "runtime error:")
QID_RE = r"[0-9A-Za-z]{8,32}"
QUEUED_RE = re.compile(r"^2\.0\.0 Ok: queued as (" + QID_RE + r")$")
ENH_RE = re.compile(r"^([245])\.(\d{1,3})\.(\d{1,3})(?: |$)")
IS_ROOT = os.geteuid() == 0
DAEMON_USER = "waymark"       # the default `user`: the tests run the daemon as it
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0

BASE_CONFIG = {
    "hostname": "mx.test",
    "local_domains": "example.org localhost",
    "min_free_space": "1k",
}


# ---------------------------------------------------------------- utilities

def free_port():
    """A currently free TCP port on 127.0.0.1 (bind to port 0)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def common_port(addrs, exclude=()):
    """A TCP port free on every one of addrs (several next hops, one port)."""
    for _ in range(100):
        port = free_port()
        if port in exclude:
            continue
        ok = True
        for a in addrs:
            s = socket.socket()
            try:
                s.bind((a, port))
            except OSError:
                ok = False
            finally:
                s.close()
        if ok:
            return port
    pytest.fail("no TCP port free on all of %s" % (addrs,))


def socket_fds(pid):
    """{socket inode: fd} of process pid (from /proc/PID/fd)."""
    out = {}
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            t = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except OSError:
            continue
        m = re.fullmatch(r"socket:\[(\d+)\]", t)
        if m:
            out[m.group(1)] = int(fd)
    return out


def tcp_sockets():
    """(local port, remote port, state, inode) of every TCP socket in
    /proc/net/tcp and /proc/net/tcp6 (state "0A" = listening)."""
    for f in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(f) as fh:
            for line in fh.readlines()[1:]:
                p = line.split()
                yield (int(p[1].rsplit(":", 1)[1], 16),
                       int(p[2].rsplit(":", 1)[1], 16), p[3], p[9])


def wait_for(pred, timeout=30.0, interval=0.05, what="condition"):
    """Poll pred() until it returns a true value (returned) or fail the test."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            pytest.fail("timed out after %.0f s waiting for %s" % (timeout, what))
        time.sleep(interval)


def daemon_ids():
    """uid, gid of DAEMON_USER, the user waymarkd drops to (scripts/deps.sh creates it)."""
    pw = pwd.getpwnam(DAEMON_USER)
    return pw.pw_uid, pw.pw_gid


def dot_stuff(content):
    """Content bytes (LF or CRLF line ends) -> stuffed DATA payload incl. the end marker."""
    text = content.replace(b"\r\n", b"\n")
    if text and not text.endswith(b"\n"):
        text += b"\n"
    out = []
    for line in text.split(b"\n")[:-1] if text else []:
        if line.startswith(b"."):
            line = b"." + line
        out.append(line + b"\r\n")
    return b"".join(out) + b".\r\n"


def lf(content):
    """What the Maildir must hold for content sent with CRLF: LF line ends."""
    return content.replace(b"\r\n", b"\n")


# ------------------------------------------------------------ SMTP client

class Reply:
    def __init__(self, code, lines):
        self.code = code
        self.lines = lines            # text after "NNN-" / "NNN " of each line
        m = ENH_RE.match(lines[0]) if lines else None
        self.enh = "%s.%s.%s" % m.groups() if m else None
        self.text = lines[-1] if lines else ""

    @property
    def msg(self):
        """Text of the last line without its enhanced code."""
        m = ENH_RE.match(self.text)
        return self.text[m.end():] if m else self.text

    def __repr__(self):
        return "Reply(%d, %r)" % (self.code, self.lines)


class LineConn:
    """A line-based client on a raw socket (self.sock, set by the subclass):
    CRLF lines read through self.buf, raw sends, EOF checks, close.  The
    base of SMTPConn and of mtqpclient.MTQPClient."""

    EOF_TIMEOUT = 30.0
    EOF_ERRORS = (socket.timeout, ConnectionResetError)

    def _fill(self):
        data = self.sock.recv(65536)
        if not data:
            raise EOFError("connection closed by server")
        self.buf += data

    def read_line(self):
        """One line without its CRLF (bytes)."""
        while b"\r\n" not in self.buf:
            self._fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def _read_to_close(self, timeout, reset_closes):
        self.sock.settimeout(self.EOF_TIMEOUT if timeout is None else timeout)
        try:
            while True:
                data = self.sock.recv(65536)
                if not data:
                    return True
                self.buf += data
        except ConnectionResetError:
            return reset_closes
        except self.EOF_ERRORS:
            return False

    def expect_eof(self, timeout=None):
        """True when the server closes the connection (after any pending data)."""
        return self._read_to_close(timeout, False)

    def expect_close(self, timeout=None):
        """True when the server closes the connection, by an end of file
        or by a reset (data the client was still sending when the server
        closed turns its close into a reset); False on a timeout."""
        return self._read_to_close(timeout, True)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()


class SMTPConn(LineConn):
    """Minimal SMTP client on a raw socket: exact bytes, explicit pipelining."""

    def __init__(self, port, host="127.0.0.1", timeout=30.0, greet=True):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.greeting = self.reply() if greet else None

    def reply(self):
        lines = []
        while True:
            raw = self.read_line().decode("utf-8", "replace")
            assert re.match(r"^[2-5]\d\d([ -]|$)", raw), "bad reply line %r" % raw
            code = int(raw[:3])
            lines.append(raw[4:])
            if len(raw) == 3 or raw[3] == " ":
                return Reply(code, lines)

    def cmd(self, line):
        if isinstance(line, str):
            line = line.encode()
        self.send(line + b"\r\n")
        return self.reply()

    def ehlo(self, name="client.test"):
        r = self.cmd("EHLO " + name)
        assert r.code == 250, r
        return r

    def mail_transaction(self, sender, rcpts, content, params=""):
        """MAIL/RCPT/DATA one by one; content is the message (unstuffed).
        Returns the final Reply (after the end-of-data marker)."""
        r = self.cmd("MAIL FROM:<%s>%s" % (sender, (" " + params) if params else ""))
        assert r.code == 250, r
        for rc in rcpts:
            r = self.cmd("RCPT TO:<%s>" % rc)
            assert r.code == 250, (rc, r)
        r = self.cmd("DATA")
        assert r.code == 354, r
        self.send(dot_stuff(content))
        return self.reply()


def ehlo_keywords(reply):
    return [l.split()[0].upper() for l in reply.lines[1:] if l.strip()]


def assert_reply(r, code, enh=None):
    """code must match; enh is an exact code ("5.5.1") or a prefix ("5.")."""
    assert r.code == code, "expected %d, got %r" % (code, r)
    assert r.enh is not None, "reply without enhanced status code: %r" % r
    assert r.enh[0] == str(code)[0], "class of %r must match the code" % r
    if enh is not None:
        if enh.endswith("."):
            assert r.enh.startswith(enh), "expected %s*, got %r" % (enh, r)
        else:
            assert r.enh == enh, "expected %s, got %r" % (enh, r)


def queued_qid(reply):
    """The QID of a '250 2.0.0 Ok: queued as QID' reply, or fail."""
    assert reply.code == 250, reply
    m = QUEUED_RE.match(reply.text)
    assert m, "final reply must be '250 2.0.0 Ok: queued as QID', got %r" % reply
    return m.group(1)


# ---------------------------------------------------------------- messages

def split_message(data):
    """Maildir file -> (return_path_line, [trace fields unfolded], rest bytes).
    Trace fields = the leading Received: fields (with their continuations)."""
    assert data.startswith(b"Return-Path: "), data[:200]
    first, rest = data.split(b"\n", 1)
    fields = []
    while rest.startswith(b"Received:"):
        field, rest = rest.split(b"\n", 1)
        while rest[:1] in (b" ", b"\t"):
            cont, rest = rest.split(b"\n", 1)
            field += b"\n" + cont
        fields.append(field)
    return first.decode(), [unfold(f) for f in fields], rest


def unfold(field):
    return re.sub(r"\r?\n(?=[ \t])", "", field.decode("utf-8", "replace"))


def check_received(field, helo="client.test", proto="ESMTP", qid=None,
                   rcpt=None, by="mx.test"):
    """Check our hop's Received field; returns it for further checks."""
    assert field.startswith("Received: from %s " % helo) or \
        field.startswith("Received: from %s(" % helo), field
    assert "[127.0.0.1]" in field, field
    assert re.search(r"\bby %s\b" % re.escape(by), field), field
    assert re.search(r"\bwith %s\b" % proto, field), field
    if qid:
        assert re.search(r"\bid %s\b" % qid, field), field
    if rcpt:
        assert "for <%s>" % rcpt in field, field
    assert ";" in field, field
    date = field.rsplit(";", 1)[1].strip()
    dt = email.utils.parsedate_to_datetime(date)
    assert dt.tzinfo is not None, date
    assert re.search(r"[+-]\d{4}$", date), "numeric zone required: %r" % date
    assert abs(dt.timestamp() - time.time()) < 6 * 3600, date
    return field


def make_message(subject="test", body=b"Hello.\r\n", extra_headers=b"",
                 sender="sender@example.com", to="user@example.org"):
    msgid = email.utils.make_msgid(domain="client.test")
    return (b"From: <" + sender.encode() + b">\r\n"
            b"To: <" + to.encode() + b">\r\n"
            b"Subject: " + subject.encode() + b"\r\n"
            b"Message-ID: " + msgid.encode() + b"\r\n" + extra_headers +
            b"\r\n" + body)


# ------------------------------------------------------------------ daemon

class DaemonError(Exception):
    pass


class Daemon:
    """One waymarkd in its own temp dir."""

    def __init__(self, config=None, precreate=False, wrapper=None, env=None,
                 raw_config=None, addr="127.0.0.1", port=None):
        self.dir = tempfile.mkdtemp(prefix="waymark-it-", dir="/tmp")
        os.chmod(self.dir, 0o755)
        self.addr = addr
        self.port = port or free_port()
        self.conf = os.path.join(self.dir, "waymark.conf")
        self.spool = os.path.join(self.dir, "spool")
        self.mail = os.path.join(self.dir, "mail")
        self.control = os.path.join(self.dir, "control.sock")
        self.log = os.path.join(self.dir, "waymarkd.log")
        self.wrapper = list(wrapper or [])
        self.env = dict(os.environ)
        self.env.update(env or {})
        self.proc = None
        self.starts = 0
        self.config = {
            "listen": "%s:%d" % (self.addr, self.port),
            "spool": self.spool,
            "mailbox_root": self.mail,
            "control": self.control,
        }
        self.config.update(BASE_CONFIG)
        self.config.update(config or {})
        self.raw_config = raw_config
        self.write_config()
        if precreate:
            for d in (self.spool, self.mail):
                os.makedirs(d, mode=0o700, exist_ok=True)
                if IS_ROOT:
                    os.chown(d, *daemon_ids())

    # -- configuration
    def config_text(self, config=None):
        cfg = self.config if config is None else config
        lines = ["# waymark integration test configuration"]
        for k, v in cfg.items():
            if v is None:
                continue
            lines.append("%s = %s" % (k, v))
        if self.raw_config:
            lines.append(self.raw_config)
        return "\n".join(lines) + "\n"

    def write_config(self, text=None):
        with open(self.conf, "w") as f:
            f.write(self.config_text() if text is None else text)

    # -- process control
    @property
    def running(self):
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self):
        """pid of waymarkd itself (the child of the wrapper when wrapped)."""
        if not self.wrapper:
            return self.proc.pid
        return wait_for(lambda: _child_pid(self.proc.pid, "waymarkd"),
                        timeout=START_TIMEOUT, what="waymarkd under wrapper")

    def start(self, wait=True, cwd=None):
        assert not self.running
        logf = open(self.log, "ab")
        wrapper = [w.format(dir=self.dir) for w in self.wrapper]
        logf.write(b"=== start %d: %s\n" % (self.starts, " ".join(wrapper).encode()))
        logf.flush()
        self.proc = subprocess.Popen(
            wrapper + [WAYMARKD, "-f", self.conf],
            stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
            cwd=cwd or self.dir, env=self.env)
        logf.close()
        self.starts += 1
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout=START_TIMEOUT):
        """Ready = a full SMTP greeting, QUIT answered, connection closed."""
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise DaemonError("waymarkd exited with status %s during start-up:\n%s"
                                  % (self.proc.returncode, self.log_text()[-5000:]))
            try:
                with SMTPConn(self.port, host=self.addr, timeout=5) as c:
                    if c.greeting.code == 220:
                        c.cmd("QUIT")
                        c.expect_eof(5)
                        break
            except (OSError, EOFError):
                pass
            if time.monotonic() > deadline:
                raise DaemonError("waymarkd not ready after %.0f s:\n%s"
                                  % (timeout, self.log_text()[-5000:]))
            time.sleep(0.05)
        wait_for(lambda: os.path.exists(self.control), timeout=timeout,
                 what="control socket %s" % self.control)

    def signal(self, sig):
        os.kill(self.pid, sig)

    def kill9(self):
        pid = self.pid
        os.kill(pid, signal.SIGKILL)
        self.proc.wait(timeout=STOP_TIMEOUT)
        self.proc = None

    def wait_exit(self, timeout=30.0):
        """For a daemon expected to exit by itself: its status (then forgotten)."""
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pytest.fail("waymarkd still running after %.0f s" % timeout)
        self.proc = None
        return rc

    def stop(self, timeout=STOP_TIMEOUT):
        """SIGTERM; the daemon must exit 0 within timeout."""
        if self.proc is None:
            return None
        if self.proc.poll() is not None:
            rc = self.proc.returncode
            self.proc = None
            raise DaemonError("waymarkd had already exited with status %s" % rc)
        self.signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            self.proc = None
            raise DaemonError("waymarkd did not exit within %.0f s of SIGTERM" % timeout)
        self.proc = None
        if rc != 0:
            raise DaemonError("waymarkd exited with status %d after SIGTERM" % rc)
        return rc

    def restart(self):
        self.stop()
        return self.start()

    def log_text(self):
        try:
            with open(self.log, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    # -- clients
    def connect(self, **kw):
        kw.setdefault("host", self.addr)
        return SMTPConn(self.port, **kw)

    def smtplib(self, timeout=30):
        import smtplib
        return smtplib.SMTP(self.addr, self.port, local_hostname="client.test",
                            timeout=timeout)

    def cli(self, *args, check=None, timeout=60):
        """Run `waymark -f CONF args...`; check=N asserts the exit status."""
        p = subprocess.run([WAYMARK, "-f", self.conf] + list(args),
                           stdin=subprocess.DEVNULL, capture_output=True,
                           timeout=timeout, env=self.env)
        p.out = p.stdout.decode("utf-8", "replace")
        p.err = p.stderr.decode("utf-8", "replace")
        if check is not None:
            assert p.returncode == check, \
                "waymark %s: exit %d (want %d)\nstdout: %s\nstderr: %s" % (
                    " ".join(args), p.returncode, check, p.out, p.err)
        return p

    def queue_json(self):
        p = self.cli("queue", "--json", check=0)
        out = []
        for line in p.out.splitlines():
            if line.strip():
                out.append(json.loads(line))
        return out

    def show_json(self, qid):
        p = self.cli("show", qid, "--json", check=0)
        return json.loads(p.out)

    def wait_queue_drained(self, timeout=60.0):
        """Until no message has a recipient that is queued or deferred."""
        def drained():
            q = self.queue_json()
            return all(r["status"] not in ("queued", "deferred")
                       for m in q for r in m["recipients"])
        wait_for(drained, timeout=timeout, interval=0.2, what="the queue to drain")

    # -- mailboxes
    def maildir(self, addr):
        local, domain = addr.rsplit("@", 1)
        return os.path.join(self.mail, domain.lower(), local.lower())

    def mail_files(self, addr):
        d = os.path.join(self.maildir(addr), "new")
        try:
            names = sorted(os.listdir(d))
        except (FileNotFoundError, NotADirectoryError):
            return []
        return [os.path.join(d, n) for n in names]

    def mails(self, addr):
        out = []
        for p in self.mail_files(addr):
            with open(p, "rb") as f:
                out.append(f.read())
        return out

    def wait_mails(self, addr, n, timeout=30.0):
        """Wait until addr's Maildir holds at least n messages; return them all."""
        wait_for(lambda: len(self.mail_files(addr)) >= n, timeout=timeout,
                 interval=0.05, what="%d message(s) in %s" % (n, self.maildir(addr)))
        return self.mails(addr)

    def sanitizer_report(self):
        log = self.log_text()
        return any(m in log for m in SAN_MARKERS)


def run_waymarkd(*args, cwd=None, timeout=30):
    """Run waymarkd ARGS to completion (for -n and refused start-ups)."""
    p = subprocess.run([WAYMARKD] + list(args), stdin=subprocess.DEVNULL,
                       capture_output=True, timeout=timeout, cwd=cwd)
    p.out = p.stdout.decode("utf-8", "replace")
    p.err = p.stderr.decode("utf-8", "replace")
    return p


def parse_config_dump(text):
    """`waymarkd -n` output -> {key: value} (list keys: values joined by a space)."""
    out = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        k, sep, v = line.partition("=")
        assert sep, "not a key = value line: %r" % line
        k, v = k.strip(), v.strip()
        out[k] = (out[k] + " " + v).strip() if k in out else v
    return out


def duration_seconds(v):
    m = re.fullmatch(r"(\d+)([smhdw]?)", v.strip())
    assert m, "not a duration: %r" % v
    return int(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400,
                              "w": 604800}[m.group(2)]


def _child_pid(ppid, name):
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry) as f:
                stat = f.read()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1:stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2:].split()
        if int(fields[1]) == ppid and comm == name:
            return int(entry)
    return None


# ---------------------------------------------------------------- fixtures

@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


@pytest.fixture
def daemon_factory(request):
    made = []

    def make(config=None, start=True, **kw):
        d = Daemon(config=config, **kw)
        made.append(d)
        if start:
            d.start()
        return d

    yield make

    errors = []
    for d in made:
        try:
            d.stop()
        except DaemonError as e:
            errors.append("%s: %s" % (d.dir, e))
        if d.sanitizer_report():
            errors.append("%s: sanitizer report in %s:\n%s"
                          % (d.dir, d.log, d.log_text()[-30000:]))
    failed = errors or any(getattr(request.node, "rep_" + w, None) is not None and
                           getattr(request.node, "rep_" + w).failed
                           for w in ("setup", "call"))
    for d in made:
        if failed:
            print("kept %s (log: %s)" % (d.dir, d.log))
            print(d.log_text()[-5000:])
        else:
            shutil.rmtree(d.dir, ignore_errors=True)
    if errors:
        pytest.fail("\n".join(errors), pytrace=False)


@pytest.fixture
def daemon(daemon_factory):
    return daemon_factory()
