"""in_flow_delay (issue 13; Postfix's parameter of the same name): while
4 x smtp_concurrency accepted messages or more wait for their first
delivery, the reply to MAIL waits, up to in_flow_delay, and a waiting
session goes on as soon as a delivery starts; with in_flow_delay = 0
nothing waits.

The next hop is a listening socket that never accepts: connections to it
hang before the greeting, so deliveries start and never end.  With
smtp_concurrency = 1 and smtp_destination_concurrency = 1 two messages
are in delivery (the queue hands out twice the destination's limit) and
the next four wait for a slot: that backlog of 4 reaches the limit.
"""

import socket
import threading
import time

import pytest

from conftest import dot_stuff, make_message, queued_qid, wait_for

RCPT = "rcpt@remote.example"
DELAYED = "in_flow_delay: MAIL replies delayed"


@pytest.fixture
def hop():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    s.listen(64)                    # never accepted: no greeting, ever
    yield s
    s.close()


def relay(daemon_factory, hop, delay):
    return daemon_factory({
        "smarthost": "[127.0.0.1]:%d" % hop.getsockname()[1],
        "smtp_concurrency": "1",
        "smtp_destination_concurrency": "1",
        "in_flow_delay": delay,
    })


def send(d, i):
    with d.connect() as c:
        c.ehlo()
        r = c.mail_transaction("s%d@example.com" % i, [RCPT],
                               make_message(to=RCPT))
        c.cmd("QUIT")
    return queued_qid(r)


def fill_backlog(d):
    """6 messages: 2 in delivery (hanging), 4 waiting for a slot."""
    qids = [send(d, i) for i in range(6)]
    assert all(qids)
    return qids


def test_mail_waits_for_the_backlog_then_goes_on(daemon_factory, hop):
    d = relay(daemon_factory, hop, "2s")
    fill_backlog(d)
    assert DELAYED not in d.log_text()
    with d.connect() as c:
        c.ehlo()
        t0 = time.monotonic()
        r = c.cmd("MAIL FROM:<late@example.com>")
        waited = time.monotonic() - t0
        assert r.code == 250 and r.enh == "2.1.0", r
        # nothing left the backlog: the whole in_flow_delay
        assert waited >= 1.5, waited
        # the transaction goes on as usual after the wait
        assert c.cmd("RCPT TO:<%s>" % RCPT).code == 250
        assert c.cmd("DATA").code == 354
        c.send(dot_stuff(make_message(to=RCPT)))
        assert queued_qid(c.reply())
    log = d.log_text()
    assert DELAYED in log
    assert "4 messages wait for delivery (limit 4: 4 x " \
        "smtp_concurrency; in_flow_delay 2s)" in log


def test_waiting_session_released_when_a_delivery_starts(daemon_factory,
                                                         hop):
    d = relay(daemon_factory, hop, "10s")
    fill_backlog(d)
    out = {}

    def late():
        with d.connect(timeout=60) as c:
            c.ehlo()
            t0 = time.monotonic()
            out["mail"] = c.cmd("MAIL FROM:<late@example.com>")
            out["waited"] = time.monotonic() - t0
            c.cmd("QUIT")

    t = threading.Thread(target=late)
    t.start()
    wait_for(lambda: DELAYED in d.log_text(), what="the delay logged")
    time.sleep(0.5)
    assert "mail" not in out, "answered while the backlog is full"
    # the hop goes away: the hanging deliveries fail, the two waiting
    # messages get their slots, the backlog shrinks, MAIL goes on
    hop.close()
    t.join(60)
    assert "mail" in out, "MAIL still waits"
    assert out["mail"].code == 250, out
    # released by the deliveries that started, before in_flow_delay (10 s)
    assert out["waited"] < 8, out


def test_in_flow_delay_0_never_waits(daemon_factory, hop):
    d = relay(daemon_factory, hop, "0")
    fill_backlog(d)
    for i in range(6, 10):
        assert send(d, i)
    assert DELAYED not in d.log_text()
