"""Load: Postfix's smtp-source sends 2000 messages over 20 parallel sessions
to one local recipient; every message must arrive exactly once.  A correctness
test, not a timing test (only an overall bound, so that it cannot hang)."""

import re
import subprocess
import time

from conftest import split_message, wait_for

SMTP_SOURCE = "/usr/sbin/smtp-source"
N = 2000
RCPT = "rcpt@example.org"


def test_smtp_source_2000_messages(daemon):
    deadline = time.monotonic() + 180
    p = subprocess.run(
        [SMTP_SOURCE, "-s", "20", "-m", str(N), "-l", "1024", "-M", "client.test",
         "-f", "sender@example.org", "-t", RCPT, "127.0.0.1:%d" % daemon.port],
        capture_output=True, text=True, timeout=180)
    assert p.returncode == 0, "smtp-source failed (%d): %s %s" % (
        p.returncode, p.stdout, p.stderr)
    left = max(10.0, deadline - time.monotonic())
    wait_for(lambda: len(daemon.mail_files(RCPT)) >= N, timeout=left, interval=0.5,
             what="%d messages in the Maildir" % N)
    daemon.wait_queue_drained(timeout=max(10.0, deadline - time.monotonic()))
    files = daemon.mails(RCPT)
    assert len(files) == N, "%d files for %d messages" % (len(files), N)
    qids = set()
    for data in files:
        _, fields, rest = split_message(data)
        qids.add(re.search(r"\bid ([0-9A-Za-z]+)\b", fields[0]).group(1))
        assert len(rest) >= 1024
    assert len(qids) == N, "%d distinct queue ids in %d files" % (len(qids), N)
