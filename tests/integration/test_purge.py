"""
History purge (issues 3 and 5): a finished message's records stay for
`history_retention`, a tracked one (MTRK) until its tracking expiry; the
purge step (at start and every 10 minutes) then removes them, so
`waymark show QID` no longer knows the message.
"""

import time

from conftest import make_message, queued_qid, wait_for

CERT = "QlrxKgdDUCsyLpOgFbz4aOMk1Wo"    # base64(SHA-1("abcdefgh")), unpadded


def send(d, mail_params=""):
    content = make_message(to="user@example.org")
    with d.connect() as c:
        c.ehlo()
        r = c.mail_transaction("s@example.com", ["user@example.org"], content,
                               params=mail_params)
    return queued_qid(r)


def test_purge_after_history_retention_keeps_tracked(daemon_factory):
    d = daemon_factory({"history_retention": "1s",
                        "tracking_retention": "1d"})
    plain = send(d)
    tracked = send(d, "ENVID=t1@client.test MTRK=" + CERT)
    d.wait_mails("user@example.org", 2)
    wait_for(lambda: d.queue_json() == [], timeout=30, what="empty queue")
    # both are finished and still in the history
    assert d.show_json(plain)["recipients"][0]["status"] == "delivered"
    assert d.show_json(tracked)["tracked"] is True
    time.sleep(2.5)                 # let history_retention (1 s) pass
    d.restart()                     # the purge step runs at start

    def purged():
        return d.cli("show", plain).returncode == 1
    wait_for(purged, timeout=30, what="the purge of %s" % plain)
    # the tracked message is kept until its tracking expiry (1 day)
    m = d.show_json(tracked)
    assert m["envid"] == "t1@client.test" and m["tracked"] is True, m
    assert any(e["kind"] == "delivered" for e in m["events"]), m
