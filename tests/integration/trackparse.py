"""
An independent parser of a TRACK answer's body (RFC 3887 4): a
multipart/related entity (RFC 2387) whose parts are message/tracking-status
(RFC 3886 3), written from the RFCs, not from Waymark's code.

MIME structure: Python's `email` package parses the entity; its
Content-Type must be multipart/related with a boundary and the type
parameter message/tracking-status (RFC 3886 3; RFC 3887's examples write
`type=tracking-status`, accepted too) and every part's Content-Type must
be message/tracking-status.  The parts' contents are then cut out of the
raw bytes at the boundary delimiters (RFC 2046 5.1.1) and read with the
field grammar of RFC 3886 3.1-3.3 (RFC 3464 2.1 conventions: RFC 822
fields, continuation lines, comments, case-insensitive names, any order):

    tracking-status-content = per-message-fields 1*( CRLF per-recipient-fields )

parse(body) -> [Part], Part.message = {lower-case name: unfolded value},
Part.recipients = [{lower-case name: unfolded value}, ...].  Every rule
the grammar makes is asserted: required fields present once, the Action
values, the Status syntax, relayed <=> 2.1.9, no Remote-MTA /
Last-Attempt-Date / Will-Retry-Until with opaque, dates RFC 5322 with a
numeric zone.  Helpers split typed values (`type; value`) and dates.
"""

import email
import email.policy
import email.utils
import re

ACTIONS = ("failed", "delayed", "delivered", "expanded", "relayed",
           "transferred", "opaque")
STATUS_RE = re.compile(r"^([245])\.(\d{1,3})\.(\d{1,3})(?:\s|\(|$)")
FIELD_NAME_RE = re.compile(r"^[\x21-\x39\x3b-\x7e]+$")   # ftext (RFC 5322 3.6.8)
MESSAGE_REQUIRED = ("original-envelope-id", "reporting-mta", "arrival-date")
RECIPIENT_REQUIRED = ("original-recipient", "final-recipient", "action",
                      "status")
DATE_FIELDS = ("arrival-date", "last-attempt-date", "will-retry-until")


class Part:
    def __init__(self, headers, message, recipients, raw):
        self.headers = headers          # the part's entity header fields
        self.message = message          # per-message fields
        self.recipients = recipients    # per-recipient groups
        self.raw = raw                  # the part's content (bytes)

    def recipient(self, addr):
        """The group whose Final- or Original-Recipient address is addr."""
        for r in self.recipients:
            if addr in (typed(r["final-recipient"])[1],
                        typed(r["original-recipient"])[1]):
                return r
        raise KeyError(addr)


def strip_comments(value):
    """An RFC 822 value without its (comments), nested ones too."""
    out, depth, i = [], 0, 0
    while i < len(value):
        c = value[i]
        if c == "\\" and depth > 0:
            i += 2
            continue
        if c == "(":
            depth += 1
        elif c == ")" and depth > 0:
            depth -= 1
        elif depth == 0:
            out.append(c)
        i += 1
    return "".join(out).strip()


def typed(value):
    """'rfc822; a@b' -> ('rfc822', 'a@b') (type lower-cased, no comments)."""
    t, sep, rest = value.partition(";")
    assert sep, "expected TYPE;VALUE, got %r" % value
    t = strip_comments(t).lower()
    assert re.match(r"^[A-Za-z0-9-]+$", t), "bad type in %r" % value
    return t, strip_comments(rest)


def date(value):
    """An RFC 5322 date-time with a numeric zone -> aware datetime."""
    v = strip_comments(value)
    assert re.search(r"[+-]\d{4}$", v), "numeric zone required: %r" % value
    dt = email.utils.parsedate_to_datetime(v)
    assert dt is not None and dt.tzinfo is not None, value
    return dt


def status(value):
    """'4.4.1 (No answer from host)' -> '4.4.1'."""
    m = STATUS_RE.match(value.strip())
    assert m, "bad Status %r" % value
    return "%s.%s.%s" % m.groups()


def _fields(lines, where):
    """One block of field lines -> {lower-case name: unfolded value}."""
    out = {}
    name = None
    for line in lines:
        if line[:1] in (" ", "\t"):
            assert name is not None, "%s: continuation first: %r" % (where, line)
            out[name] += " " + line.strip()
            continue
        n, sep, v = line.partition(":")
        assert sep and FIELD_NAME_RE.match(n), \
            "%s: not a field: %r" % (where, line)
        name = n.lower()
        assert name not in out, "%s: %s repeated" % (where, n)
        out[name] = v.strip()
    return out


def _blocks(text):
    """Lines grouped into blocks separated by blank lines."""
    blocks, cur = [], []
    for line in text.split("\n"):
        if line.strip() == "":
            if cur:
                blocks.append(cur)
                cur = []
        else:
            cur.append(line)
    if cur:
        blocks.append(cur)
    return blocks


def _check_message(f):
    for k in MESSAGE_REQUIRED:
        assert k in f, "per-message field %s missing: %r" % (k, f)
    mta_type, mta = typed(f["reporting-mta"])
    assert mta_type == "dns" and mta, f["reporting-mta"]
    date(f["arrival-date"])


def _check_recipient(r):
    for k in RECIPIENT_REQUIRED:
        assert k in r, "per-recipient field %s missing: %r" % (k, r)
    for k in ("original-recipient", "final-recipient"):
        t, a = typed(r[k])
        assert a, r[k]
    action = strip_comments(r["action"]).lower()
    assert action in ACTIONS, "bad Action %r" % r["action"]
    st = status(r["status"])
    # RFC 3886 3.3.4: 2.1.9 exactly with relayed
    assert (st == "2.1.9") == (action == "relayed"), (action, st)
    if action == "opaque":
        for k in ("remote-mta", "last-attempt-date", "will-retry-until"):
            assert k not in r, "%s with opaque: %r" % (k, r)
    if "remote-mta" in r:
        assert typed(r["remote-mta"])[0] == "dns", r["remote-mta"]
    for k in DATE_FIELDS:
        if k in r:
            date(r[k])


def _part_contents(raw, boundary):
    """The contents of the parts, cut at the delimiters (RFC 2046 5.1.1)."""
    delim = b"--" + boundary.encode()
    text = b"\r\n" + raw
    pieces = text.split(b"\r\n" + delim)
    assert len(pieces) >= 3, "no parts / no close delimiter"
    assert pieces[-1].startswith(b"--"), "no close delimiter"
    out = []
    for p in pieces[1:-1]:
        # the delimiter line ends with optional white space, then CRLF
        nl = p.index(b"\r\n")
        assert p[:nl].strip(b" \t") == b"", "text after delimiter: %r" % p[:nl]
        out.append(p[nl + 2:])
    return out


def parse(body):
    """The body of a TRACK answer (bytes, CRLF) -> [Part]."""
    msg = email.message_from_bytes(body, policy=email.policy.compat32)
    assert msg.get_content_type() == "multipart/related", \
        msg.get("Content-Type")
    boundary = msg.get_param("boundary")
    assert boundary, msg.get("Content-Type")
    assert msg.get_param("type", "").lower() in (
        "message/tracking-status", "tracking-status"), msg.get("Content-Type")
    subparts = msg.get_payload()
    assert isinstance(subparts, list) and subparts, "no parts"
    for sp in subparts:
        assert sp.get_content_type() == "message/tracking-status", \
            sp.get("Content-Type")
    header_end = body.index(b"\r\n\r\n") + 4
    contents = _part_contents(body[header_end:], boundary)
    assert len(contents) == len(subparts), (len(contents), len(subparts))
    parts = []
    for i, c in enumerate(contents):
        assert b"\r\n\r\n" in c, "part %d: no blank line after its header" % i
        head, content = c.split(b"\r\n\r\n", 1)
        headers = _fields(head.decode("ascii").split("\r\n"), "part %d" % i)
        assert headers["content-type"].split(";")[0].strip().lower() == \
            "message/tracking-status", headers
        text = content.decode("ascii")         # 7bit (RFC 3886 3.1)
        assert "\n" not in text.replace("\r\n", ""), "bare LF in part %d" % i
        blocks = _blocks(text.replace("\r\n", "\n"))
        assert len(blocks) >= 2, "part %d: per-message fields and at least " \
            "one recipient group required" % i
        message = _fields(blocks[0], "part %d per-message" % i)
        _check_message(message)
        recipients = []
        for j, b in enumerate(blocks[1:]):
            r = _fields(b, "part %d recipient %d" % (i, j))
            _check_recipient(r)
            recipients.append(r)
        parts.append(Part(headers, message, recipients, content))
    return parts
