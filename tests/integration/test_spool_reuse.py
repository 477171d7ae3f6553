"""
Reuse of body files (queue/queue_pool.c, issue 13): the body file of a
message that left the queue is kept as spool/body/free.N and becomes the
body file of a later message (same inode, renamed, overwritten from the
start), so that a relay does not allocate and free an inode per message.
What a user must see: every message delivered exactly as sent, never with
the end of an older, longer one; nothing kept beyond the bound; a restart
starts with no kept files.
"""

import os
import re

from conftest import make_message, queued_qid, wait_for


def body_dir(d):
    return os.path.join(d.spool, "body")


def kept(d):
    return sorted(n for n in os.listdir(body_dir(d)) if n.startswith("free."))


def send(d, content, rcpt="user@example.org"):
    with d.connect() as c:
        c.ehlo()
        r = c.mail_transaction("joe@example.com", [rcpt], content)
    return queued_qid(r)


def delivered(d, qid, rcpt="user@example.org"):
    """The Maildir copy of qid (the Received field names it), content only
    (the fields Waymark prepends cut off), LF line ends as stored."""
    for m in d.mails(rcpt):
        if (b" id " + qid.encode()) in m:
            return m
    return None


def own_part(data, subject):
    """The message as the client sent it: from its Subject field on."""
    i = data.index(b"Subject: " + subject)
    return data[i:]


def test_shorter_message_in_a_reused_file(daemon):
    d = daemon
    long_body = b"".join(b"line %06d of the long message\r\n" % i
                         for i in range(3000))          # about 100 KB
    q1 = send(d, make_message(subject="long", body=long_body))
    d.wait_mails("user@example.org", 1)
    # the message is gone from the queue; its file is kept for reuse
    wait_for(lambda: not os.path.exists(os.path.join(body_dir(d), q1))
             and kept(d), what="the long message's file kept")
    free = kept(d)
    inodes = {os.stat(os.path.join(body_dir(d), n)).st_ino for n in free}

    short_body = b"short\r\n"
    q2 = send(d, make_message(subject="short", body=short_body))
    # its body file is a kept one, cut to its own length
    st = os.stat(os.path.join(body_dir(d), q2)) if os.path.exists(
        os.path.join(body_dir(d), q2)) else None
    d.wait_mails("user@example.org", 2)
    if st is not None:
        assert st.st_ino in inodes, (st.st_ino, inodes)
    got = delivered(d, q2)
    assert got is not None
    part = own_part(got, b"short")
    assert part.endswith(b"\n\nshort\n"), part[-200:]
    assert b"long message" not in got
    # and the long one arrived whole
    got1 = delivered(d, q1)
    assert got1.count(b"of the long message") == 3000


def test_many_messages_each_exact(daemon):
    """Messages of varying sizes one after the other, each through a
    reused file: each arrives exactly as sent."""
    d = daemon
    sizes = [5000, 10, 2000, 0, 40000, 1, 300]
    qids = []
    for i, n in enumerate(sizes):
        body = b"".join(b"%d-%05d\r\n" % (i, k) for k in range(n // 8)) \
            if n >= 8 else b"x" * n + b"\r\n"
        q = send(d, make_message(subject="m%d" % i, body=body))
        qids.append((q, i, body))
        d.wait_mails("user@example.org", len(qids))
        wait_for(lambda: not os.path.exists(os.path.join(body_dir(d), q)),
                 what="message %d removed" % i)
    for q, i, body in qids:
        got = delivered(d, q)
        assert got is not None, q
        part = own_part(got, b"m%d" % i)
        want = body.replace(b"\r\n", b"\n")
        assert part.split(b"\n\n", 1)[1] == want, (i, part[-100:])


def test_restart_removes_kept_files(daemon):
    d = daemon
    q = send(d, make_message(subject="one", body=b"one\r\n"))
    d.wait_mails("user@example.org", 1)
    wait_for(lambda: kept(d), what="a kept file")
    d.stop()
    # a clean stop removes them; so does a start after a crash
    assert kept(d) == []
    with open(os.path.join(body_dir(d), "free.7"), "wb") as f:
        f.write(b"left behind\r\n")
    d.start()
    assert kept(d) == []
    assert re.search(r"removed 1 body file", d.log_text())
    assert q


def test_content_given_to_a_filter_is_never_reused(daemon_factory):
    """A content filter reads the stored message through a pipe the daemon
    fills from the body file as the filter drains it.  The message is
    deleted meanwhile: its file must not become the next message's, or the
    filter would read another message's content."""
    from test_states import filter_daemon
    # the filter reads after 2 s, into a file beside its script
    d = filter_daemon(daemon_factory,
                      'sleep 2\ncat > "$(dirname "$0")/seen.$WAYMARK_QID"\n',
                      {"filter_timeout": "60s"})
    # larger than a pipe's buffer, smaller than the reuse bound
    a_body = b"".join(b"A line %06d of the filtered message\r\n" % i
                      for i in range(5000))             # about 190 KB
    with d.connect() as c:
        c.ehlo()
        qa = queued_qid(c.mail_transaction(
            "s@example.com", ["bob@example.org"],
            make_message(subject="filtered", body=a_body,
                         to="bob@example.org")))
    wait_for(lambda: d.show_json(qa)["state"] == "content", what="content")
    p = d.cli("delete", qa)
    assert p.returncode == 0, p.err
    # the next message, as long, to a local user the policy does not touch
    b_body = b"".join(b"B line %06d of another message\r\n" % i
                      for i in range(6000))
    with d.connect() as c:
        c.ehlo()
        queued_qid(c.mail_transaction(
            "s@example.com", ["carol@localhost"],
            make_message(subject="other", body=b_body, to="carol@localhost")))
    seen = os.path.join(d.filter_dir, "seen." + qa)
    wait_for(lambda: os.path.exists(seen) and os.path.getsize(seen) > 0 and
             "filter finished" in d.log_text(), timeout=60,
             what="the filter's copy")
    with open(seen, "rb") as f:
        got = f.read()
    assert b"B line" not in got
    assert got.count(b"of the filtered message") == 5000
    assert got.endswith(a_body)
