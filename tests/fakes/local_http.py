"""Serve an aiohttp app on a free 127.0.0.1 port for the length of a test.

``serve_app`` serves in the test's own loop; ``ThreadedServer`` serves in a
thread of its own, for tests whose client is another process (a worker).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator
from typing import Self

from aiohttp import web


@contextlib.asynccontextmanager
async def serve_app(app: web.Application, path: str = "") -> AsyncIterator[str]:
    """Yield ``http://127.0.0.1:PORT`` + ``path`` while ``app`` answers there."""
    async with _served(app, 0) as port:
        yield f"http://127.0.0.1:{port}{path}"


@contextlib.asynccontextmanager
async def _served(app: web.Application, port: int) -> AsyncIterator[int]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    try:
        yield int(runner.addresses[0][1])
    finally:
        await runner.cleanup()


class ThreadedServer:
    """A fake server: ``application()`` served on ``port`` (0: a free one).

    ``with server:`` serves it from a thread of its own until the block ends;
    ``async with server.serving() as url:`` serves it in the running loop.
    """

    port: int = 0

    def application(self) -> web.Application:
        raise NotImplementedError

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @contextlib.asynccontextmanager
    async def serving(self) -> AsyncIterator[str]:
        async with _served(self.application(), self.port) as port:
            self.port = port
            yield self.url

    def __enter__(self) -> Self:
        self._loop = asyncio.new_event_loop()
        ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, args=(ready,), daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError(f"{type(self).__name__} did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    def _serve(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._main(ready))

    async def _main(self, ready: threading.Event) -> None:
        self._stop = asyncio.Event()
        async with self.serving():
            ready.set()
            await self._stop.wait()
