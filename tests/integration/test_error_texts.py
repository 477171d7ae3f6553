"""Error texts say each fact once, with the host and the step (issue 12,
"Clear errors").

A recipient whose domain does not exist fails with exactly
`domain nowhere.test not found (NXDOMAIN)`: once in `waymark show` (JSON
and text), in the DSN's human part and its Diagnostic-Code, and in the
log's status line; never wrapped in a second "domain ... not found".
A smarthost that does not exist defers (our configuration's error, not
the recipient's).  Our own texts about a next hop name it once (no
"host H said:" around them, no "H[H]" for an address literal), and an
expiry quotes the host's last reply as "host H said: CODE X.Y.Z TEXT".
dnsmasq on a loopback port answers NXDOMAIN for every name under test.
"""

import email
import email.policy
import json
import re

from aiosmtpd.controller import Controller

from conftest import free_port, make_message, queued_qid, wait_for
from dnsfix import dns_factory  # noqa: F401  (fixture)

SENDER = "someone@localhost"


def submit(d, rcpt):
    with d.connect() as c:
        c.ehlo()
        return queued_qid(c.mail_transaction(
            SENDER, [rcpt], make_message(to=rcpt, sender=SENDER)))


def rcpt_json(d, qid):
    return json.loads(d.cli("show", qid, "--json", check=0).out)[
        "recipients"][0]


def wait_rcpt(d, qid, statuses, timeout=30):
    return wait_for(lambda: (lambda r: r if r["status"] in statuses
                             else None)(rcpt_json(d, qid)),
                    timeout=timeout, interval=0.1,
                    what="%s in %s" % (qid, statuses))


def notice(d):
    data = d.wait_mails(SENDER, 1)[0]
    n = email.message_from_bytes(data, policy=email.policy.default)
    human = report = None
    for p in n.walk():
        if p.get_content_type() == "text/plain" and human is None:
            human = p.get_content()         # part 1, not the returned one
        elif p.get_content_type() == "message/delivery-status":
            report = p.as_string()
    assert human is not None and report is not None, data[:2000]
    # unfold: the composer folds long lines at spaces
    return (re.sub(r"\n {4}", " ", human),
            re.sub(r"\r?\n ", " ", report))


def status_lines(d, qid):
    return [line for line in d.log_text().splitlines()
            if "qid=%s rcpt=" % qid in line and "status=" in line]


def test_nxdomain_text_once_everywhere(daemon_factory, dns_factory):
    dns = dns_factory(mx=[], hosts=[])
    d = daemon_factory({"dns": dns.server, "retry_schedule": "1h"})
    want = "domain nowhere.test not found (NXDOMAIN)"
    qid = submit(d, "u@nowhere.test")
    r = wait_rcpt(d, qid, ("failed",))
    assert r["last_reply"] == {"code": 550, "enhanced": "5.1.2",
                               "text": want}, r

    show = d.cli("show", qid, check=0).out
    line = [x for x in show.splitlines() if "<u@nowhere.test>" in x][0]
    assert line.endswith("last: 550 5.1.2 " + want), line
    assert show.count("not found") == 2, show   # the recipient, the event

    human, report = notice(d)
    assert "<u@nowhere.test>: %s\n" % want in human, human
    assert "Diagnostic-Code: X-Waymark; %s\n" % want in report, report
    assert human.count("not found") == 1, human
    assert report.count("not found") == 1, report

    lines = status_lines(d, qid)
    assert len(lines) == 1, lines
    assert lines[0].endswith('status=failed dsn=5.1.2 relay=smtp '
                             'delay=%s reason="%s"'
                             % (re.search(r"delay=(\S+)", lines[0])
                                .group(1), want)), lines[0]
    assert d.log_text().count("not found") == 1, d.log_text()


def test_smarthost_nxdomain_defers(daemon_factory, dns_factory):
    dns = dns_factory(mx=[], hosts=[])
    d = daemon_factory({"dns": dns.server, "smarthost": "relay.test",
                        "retry_schedule": "1h"})
    qid = submit(d, "u@remote.example")
    r = wait_rcpt(d, qid, ("deferred", "failed"))
    assert r["status"] == "deferred", r
    assert r["last_reply"] == {
        "code": 451, "enhanced": "4.4.3",
        "text": "smarthost relay.test not found (NXDOMAIN)"}, r


def test_own_text_names_the_host_once(daemon_factory):
    port = free_port()                      # nothing listens there
    d = daemon_factory({"smarthost": "[127.0.0.1]:%d" % port,
                        "retry_schedule": "1h"})
    qid = submit(d, "u@remote.example")
    r = wait_rcpt(d, qid, ("deferred",))
    want = "connection to [127.0.0.1] failed: Connection refused"
    assert r["remote_mta"] == "[127.0.0.1]", r
    assert r["last_reply"]["text"] == want, r
    show = d.cli("show", qid, check=0).out
    line = [x for x in show.splitlines() if "<u@remote.example>" in x][0]
    assert line.endswith("last: 451 4.4.1 " + want), line
    assert "smtp: %s" % want in d.log_text(), d.log_text()
    assert "127.0.0.1[127.0.0.1]" not in d.log_text()


class Greylist:
    async def handle_RCPT(self, server, session, envelope, address, options):
        return "451 4.3.0 greylisted, come back"


def test_expiry_quotes_the_hosts_reply(daemon_factory):
    port = free_port()
    c = Controller(Greylist(), hostname="127.0.0.1", port=port)
    c.start()
    try:
        d = daemon_factory({"smarthost": "[127.0.0.1]:%d" % port,
                            "queue_lifetime": "2s", "retry_schedule": "1s"})
        qid = submit(d, "u@remote.example")
        human, report = notice(d)
        r = wait_rcpt(d, qid, ("failed",))
    finally:
        c.stop()
    last = ("message expired after queue_lifetime; last error: host "
            "[127.0.0.1] said: 451 4.3.0 greylisted, come back")
    assert r["last_reply"]["text"] == last, r
    assert "<u@remote.example>: %s\n" % last in human, human
    assert "said" not in human.replace(last, ""), human
    assert "Remote-MTA: dns; [127.0.0.1]\n" in report, report
    assert "Diagnostic-Code: X-Waymark; %s\n" % last in report, report
