"""What every fake review server shares: latency, injected faults, call counts, a thread.

Each SCM's fake (``github.py``, ``gitlab.py``, ...) subclasses ``FakeReviewServer``,
adds its routes in ``routes`` and keeps the comments it was sent in memory,
answering in that SCM's documented shape. The base gives all of them:

- ``latency_s``: every request sleeps this long first (``bench/publish.py``
  uses 50 ms, a realistic API round trip);
- ``fail(method, path_regex, status, headers=..., times=1)``: the next
  ``times`` matching requests get that status (429 with Retry-After, a 5xx,
  ...) instead of being handled. ``fail(..., after=True)`` handles the
  request first and THEN answers the error, the ambiguous failure a real
  server produces when it acted but the response was lost;
- ``calls``: every request as ``(method, path)``, for api-calls-per-finding;
- an async context (``async with fake.serving() as url``) for async tests,
  and a thread (``with fake: fake.url``) for tests whose client is another
  process.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Self

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Fault:
    method: str
    pattern: re.Pattern[str]
    status: int
    headers: dict[str, str]
    times: int
    after: bool


@dataclass
class FakeReviewServer:
    """Base of the fake SCM review APIs; subclasses implement ``routes``."""

    latency_s: float = 0.0
    calls: list[tuple[str, str]] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    port: int = 0

    def routes(self, app: web.Application) -> None:
        """Add this SCM's routes to ``app``."""
        raise NotImplementedError

    def fail(
        self,
        method: str,
        path_regex: str,
        status: int,
        *,
        headers: dict[str, str] | None = None,
        times: int = 1,
        after: bool = False,
    ) -> None:
        """Answer the next ``times`` ``method`` requests matching ``path_regex`` with ``status``."""
        self.faults.append(
            Fault(method.upper(), re.compile(path_regex), status, headers or {}, times, after)
        )

    def calls_to(self, method: str, path_regex: str = "") -> int:
        pattern = re.compile(path_regex)
        return sum(1 for m, p in self.calls if m == method.upper() and pattern.search(p))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def application(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware])
        self.routes(app)
        return app

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        self.calls.append((request.method, request.path))
        if self.latency_s:
            await asyncio.sleep(self.latency_s)
        fault = self._take_fault(request)
        if fault is not None and fault.after:
            await handler(request)
        if fault is not None:
            return web.json_response(
                {"message": f"injected {fault.status}"}, status=fault.status, headers=fault.headers
            )
        return await handler(request)

    def _take_fault(self, request: web.Request) -> Fault | None:
        for fault in self.faults:
            if fault.method == request.method and fault.pattern.search(request.path):
                fault.times -= 1
                if fault.times <= 0:
                    self.faults.remove(fault)
                return fault
        return None

    @contextlib.asynccontextmanager
    async def serving(self) -> AsyncIterator[str]:
        """Serve on a free port in the running loop; yields the base URL."""
        runner = web.AppRunner(self.application(), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", self.port)
        await site.start()
        self.port = runner.addresses[0][1]
        try:
            yield self.url
        finally:
            await runner.cleanup()

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
