"""
MTQPClient: a small MTQP (RFC 3887) client for the tests, written from the
RFC, independent of Waymark's code.

- connect (optionally from a given 127.0.0.x source address), read the
  greeting;
- read one response: the status line (`+OK`, `+OK+`, `-TEMP`, `-ERR`,
  `-BAD`, response information items `/x/y`, optional text) and, for
  `+OK+`, the data lines up to the line `.`, dot-unstuffed (RFC 3887 2.3);
- send raw bytes (pipelining, over-long lines) or one command;
- STARTTLS with Python's ssl module (the TLS socket replaces the plain
  one; the fresh greeting is read).

Every socket read has a timeout; `raw` keeps the exact bytes of each
response, so tests can compare replies byte for byte.  Line reading,
sending, expect_eof and close come from conftest.LineConn (SMTPConn's base).
"""

import re
import socket
import ssl

from conftest import LineConn

STATUS_RE = re.compile(
    rb"^(\+OK\+|\+OK|-TEMP|-ERR|-BAD)((?:/[A-Za-z0-9_-]+)*)(?:[ \t]+(.*))?$")


class Response:
    def __init__(self, indicator, info, text, data, raw):
        self.indicator = indicator      # "+OK", "+OK+", "-TEMP", "-ERR", "-BAD"
        self.info = info                # ["MTQP", "unavailable"], lower-case kept as sent
        self.text = text                # human-readable text ("" when none)
        self.data = data                # data lines (bytes, unstuffed), for +OK+
        self.raw = raw                  # the exact bytes received

    @property
    def ok(self):
        return self.indicator in ("+OK", "+OK+")

    @property
    def line(self):
        """The status line as text (without CRLF)."""
        return self.raw.split(b"\r\n", 1)[0].decode("ascii", "replace")

    @property
    def body(self):
        """The data lines joined with CRLF (a MIME entity for TRACK)."""
        return b"".join(l + b"\r\n" for l in self.data)

    def has_info(self, item):
        return item.lower() in (i.lower() for i in self.info)

    def __repr__(self):
        return "Response(%r, %d data lines)" % (self.line, len(self.data))


class MTQPClient(LineConn):
    EOF_TIMEOUT = 10.0
    EOF_ERRORS = LineConn.EOF_ERRORS + (ssl.SSLError,)

    def __init__(self, port, host="127.0.0.1", timeout=10.0, source=None,
                 greet=True):
        self.timeout = timeout
        self.sock = socket.create_connection(
            (host, port), timeout=timeout,
            source_address=(source, 0) if source else None)
        self.buf = b""
        self.tls = False
        self.greeting = self.response() if greet else None

    # -- reading
    def response(self):
        """One complete response (single or multi-line)."""
        first = self.read_line()
        raw = first + b"\r\n"
        m = STATUS_RE.match(first)
        assert m, "not an MTQP status line: %r" % first
        indicator = m.group(1).decode()
        info = [i for i in m.group(2).decode().split("/") if i]
        text = (m.group(3) or b"").decode("utf-8", "replace")
        data = []
        if indicator == "+OK+":
            while True:
                line = self.read_line()
                raw += line + b"\r\n"
                if line == b".":
                    break
                if line.startswith(b"."):
                    line = line[1:]         # dot-unstuffing
                data.append(line)
        return Response(indicator, info, text, data, raw)

    # -- writing
    def cmd(self, line):
        """Send one command line (CRLF added) and read its response."""
        if isinstance(line, str):
            line = line.encode()
        self.send(line + b"\r\n")
        return self.response()

    def track(self, envid, secret_b64):
        return self.cmd("TRACK %s %s" % (envid, secret_b64))

    def starttls(self, name, context=None, server_hostname=None):
        """STARTTLS name; on +OK the handshake, then the fresh greeting.
        Returns (response to STARTTLS, greeting after TLS or None)."""
        r = self.cmd("STARTTLS " + name)
        if r.indicator != "+OK":
            return r, None
        assert self.buf == b"", "data after +OK before TLS: %r" % self.buf
        if context is None:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        self.sock = context.wrap_socket(
            self.sock, server_hostname=server_hostname or name)
        self.tls = True
        return r, self.response()
