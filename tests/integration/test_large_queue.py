"""
A large queue does not slow the relay (issue 13): 10,000 messages deferred
to a next hop that refuses them (Postfix's smtp-sink answering 4xx to RCPT
on 127.0.0.2) and 200 deliverable ones to another next hop (aiosmtpd on
127.0.0.3, the same port: MX routing through dnsmasq, implicit MX of
defer.test and good.test).  The 200 are relayed within a bound that does
not depend on the deferred count: their time with the 10,000 deferred ones
all due again (`waymark flush`), the refusing host now slow (a 421
greeting after 0.2 s, so each retry holds a slot), is compared with their
time on an empty queue in the same test, loosely (< 3x + 5 s); no
absolute time is asserted.  Without the scheduler's per-destination
parking the 200 wait behind all 10,000 retries (about 100 s).  Also: `waymark queue` of the 10,000 streams (its first line is
read well before the command ends) and `waymark queue --json` is valid
JSON Lines, one message per line.
"""

import asyncio
import json
import shutil
import subprocess
import threading
import time

import pytest

from aiosmtpd.controller import Controller

from conftest import WAYMARK, common_port, wait_for
from dnsfix import dns_factory  # noqa: F401  (fixture)

SMTP_SOURCE = "/usr/sbin/smtp-source"
SMTP_SINK = "/usr/sbin/smtp-sink"
N_DEFER = 10000
N_GOOD = 200
REFUSE, GOOD = "127.0.0.2", "127.0.0.3"

pytestmark = pytest.mark.skipif(
    not (shutil.which(SMTP_SOURCE) and shutil.which(SMTP_SINK)),
    reason="Postfix's smtp-source/smtp-sink missing")


class Count:
    """aiosmtpd handler: counts the messages it accepts."""

    def __init__(self):
        self.n = 0
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            self.n += 1
        return "250 2.0.0 Ok: sunk"


class SlowRefuser:
    """A next hop that answers each connection, after DELAY s, with a 421
    greeting: a slow, refusing host (each retry holds a slot that long)."""

    DELAY = 0.2

    def __init__(self, host, port):
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.t = threading.Thread(target=self._run, args=(host, port),
                                  daemon=True)
        self.t.start()
        assert self.ready.wait(10)

    def _run(self, host, port):
        asyncio.set_event_loop(self.loop)
        self.server = self.loop.run_until_complete(asyncio.start_server(
            self.handle, host, port, backlog=1024))
        self.ready.set()
        self.loop.run_forever()

    async def handle(self, reader, writer):
        try:
            await asyncio.sleep(self.DELAY)
            writer.write(b"421 4.3.2 slow and busy\r\n")
            await writer.drain()
        except Exception:
            pass
        finally:
            writer.close()

    def stop(self):
        async def _stop():
            self.server.close()
            tasks = [t for t in asyncio.all_tasks()
                     if t is not asyncio.current_task()]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self.loop.stop()
        asyncio.run_coroutine_threadsafe(_stop(), self.loop)
        self.t.join(5)


def source(port, n, rcpt, sessions, reuse):
    """smtp-source: n messages to rcpt; reuse = several per connection."""
    args = [SMTP_SOURCE, "-s", str(sessions), "-m", str(n), "-l", "300",
            "-M", "client.test", "-f", "sender@example.com", "-t", rcpt]
    if reuse:
        args.append("-d")
    p = subprocess.run(args + ["127.0.0.1:%d" % port], capture_output=True,
                       text=True, timeout=300)
    assert p.returncode == 0, "smtp-source: %s %s" % (p.stdout, p.stderr)


def relay_good(d, sink, port):
    """Seconds from the start of N_GOOD messages to their arrival."""
    base = sink.n
    t0 = time.monotonic()
    source(port, N_GOOD, "rcpt@good.test", 10, False)
    wait_for(lambda: sink.n >= base + N_GOOD, timeout=120, interval=0.02,
             what="%d messages at the good next hop" % N_GOOD)
    return time.monotonic() - t0


def listing(d, *args):
    """`waymark queue ARGS`, read as it comes: (lines, seconds to the
    first line, seconds to the end of the output)"""
    t0 = time.monotonic()
    p = subprocess.Popen([WAYMARK, "-f", d.conf, "queue"] + list(args),
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env=d.env)
    lines, t_first = [], None
    try:
        for line in p.stdout:
            if t_first is None:
                t_first = time.monotonic() - t0
            lines.append(line.decode())
        t_end = time.monotonic() - t0
        assert p.wait(timeout=60) == 0, p.stderr.read()
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        p.stdout.close()
        p.stderr.close()
    return lines, t_first, t_end


def test_large_queue_does_not_slow_the_relay(daemon_factory, dns_factory):  # noqa: F811
    port = common_port((REFUSE, GOOD))
    dns = dns_factory(hosts=[("defer.test", REFUSE), ("good.test", GOOD)])
    refuse = subprocess.Popen(
        [SMTP_SINK, "-r", "rcpt", "-u", "nobody", "%s:%d" % (REFUSE, port),
         "1024"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    sink = Count()
    slow = None
    good = Controller(sink, hostname=GOOD, port=port)
    good.start()
    try:
        d = daemon_factory({"dns": dns.server, "smtp_port": str(port),
                            "relay_from": "127.0.0.0/8",
                            "retry_schedule": "1h"})

        # the empty queue: the reference time
        t_empty = relay_good(d, sink, d.port)

        # 10,000 deferred (one attempt each, refused 4xx)
        source(d.port, N_DEFER, "rcpt@defer.test", 20, True)

        def all_deferred():
            q = d.queue_json()
            return len(q) == N_DEFER and all(
                r["status"] == "deferred" and r["attempts"] >= 1
                for m in q for r in m["recipients"])
        wait_for(all_deferred, timeout=300, interval=1,
                 what="%d deferred messages" % N_DEFER)

        # the listing streams: the first line well before the end
        lines, t_first, t_end = listing(d, "--json")
        objs = [json.loads(line) for line in lines]
        assert len(objs) == N_DEFER
        assert all(o["recipients"][0]["address"] == "rcpt@defer.test"
                   for o in objs)
        assert len({o["queue_id"] for o in objs}) == N_DEFER
        assert t_first < 0.5 * t_end, (t_first, t_end)
        lines, t_first, t_end = listing(d)
        assert lines[-1].startswith("-- %d messages" % N_DEFER), lines[-1]
        assert t_first < 0.5 * t_end, (t_first, t_end)

        # the refusing host turns slow: every retry holds a slot DELAY s;
        # every deferred one due again, then the same 200 deliverable ones
        refuse.terminate()
        refuse.wait(10)
        slow = SlowRefuser(REFUSE, port)
        p = d.cli("flush", check=0)
        t_full = relay_good(d, sink, d.port)
        assert t_full < 3 * t_empty + 5, \
            "%d messages took %.1f s behind %d due deferred ones, " \
            "%.1f s on an empty queue" % (N_GOOD, t_full, N_DEFER, t_empty)
        assert sink.n == 2 * N_GOOD
        assert p.returncode == 0
    finally:
        good.stop()
        if slow is not None:
            slow.stop()
        if refuse.poll() is None:
            refuse.terminate()
            refuse.wait(10)
