"""
ThreadedServer: the plumbing shared by the tests' scripted SMTP peers.

A subclass sets its own attributes, then calls ThreadedServer.__init__,
and implements `async def handle(self, reader, writer)`.  The server
listens on 127.0.0.1:self.port in an asyncio loop of its own thread;
stop() closes it, cancels handlers still running and closes the loop.
"""

import asyncio
import threading

from conftest import free_port


class ThreadedServer:
    def __init__(self):
        self.port = free_port()
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()
        assert self.ready.wait(10), "test server did not start"

    async def handle(self, reader, writer):
        raise NotImplementedError

    def _run(self):
        asyncio.set_event_loop(self.loop)
        self.server = self.loop.run_until_complete(asyncio.start_server(
            self.handle, "127.0.0.1", self.port))
        self.ready.set()
        self.loop.run_forever()
        # cancel handlers still running (e.g. a delayed greeting), then close
        tasks = [t for t in asyncio.all_tasks(self.loop) if not t.done()]
        for t in tasks:
            t.cancel()
        self.loop.run_until_complete(
            asyncio.gather(*tasks, return_exceptions=True))
        self.loop.close()

    def stop(self):
        def _stop():
            self.server.close()
            self.loop.stop()
        self.loop.call_soon_threadsafe(_stop)
        self.t.join(5)
