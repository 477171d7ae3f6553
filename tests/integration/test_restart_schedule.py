"""A restart keeps the retry times of deferred recipients (issue 13, "a
large queue"): like Postfix's deferred queue, a restart is not a retry
burst.  Recipients never tried, or already due, are tried at once (the
durability tests cover those)."""

import socket
import threading
import time

from conftest import free_port, make_message, queued_qid, wait_for


class Refuser:
    """A next hop that greets every connection with 421 and counts them."""

    def __init__(self):
        self.port = free_port()
        self.count = 0
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", self.port))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.stop = False
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.stop:
            try:
                c, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.count += 1
            try:
                c.sendall(b"421 4.3.2 busy, try later\r\n")
            except OSError:
                pass
            c.close()

    def close(self):
        self.stop = True
        self.thread.join(5)
        self.sock.close()


def test_deferred_keeps_its_retry_time_across_restart(daemon_factory):
    hop = Refuser()
    try:
        d = daemon_factory({"smarthost": "[127.0.0.1]:%d" % hop.port,
                            "retry_schedule": "1h"})
        with d.connect() as c:
            c.ehlo()
            qid = queued_qid(c.mail_transaction(
                "s@example.com", ["bob@remote.test"], make_message()))
        wait_for(lambda: d.show_json(qid)["recipients"][0]["status"] ==
                 "deferred", timeout=30, interval=0.1, what="deferred")
        assert hop.count == 1
        due = d.show_json(qid)["recipients"][0]["next_attempt"]
        assert due > time.time() + 3000
        d.restart()
        time.sleep(3)           # a retry burst would have come by now
        assert hop.count == 1, "tried again at the restart"
        r = d.show_json(qid)["recipients"][0]
        assert r["status"] == "deferred" and r["next_attempt"] == due
        # flush still tries it at once
        d.cli("flush", qid, check=0)
        wait_for(lambda: hop.count == 2, timeout=30, interval=0.1,
                 what="the flushed attempt")
    finally:
        hop.close()
