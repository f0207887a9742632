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

The publisher tests drive a real publisher against a fake with ``serve``,
and inject ``RecordedSleep`` so a Retry-After or a backoff is checked
without being waited for.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from aiohttp import web

from sinks.scm.base import ScmPublisher
from tests.fakes.local_http import ThreadedServer

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
class FakeReviewServer(ThreadedServer):
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


FakeT = TypeVar("FakeT", bound=FakeReviewServer)
PublisherT = TypeVar("PublisherT", bound=ScmPublisher)


class RecordedSleep:
    """An injected sleep that records the waits instead of sleeping."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def serve(
    fake: FakeT,
    make_publisher: Callable[[str], PublisherT],
    scenario: Callable[[FakeT, PublisherT], Awaitable[None]],
) -> None:
    """Run ``scenario`` with a publisher built on ``fake``'s URL while ``fake`` serves.

    The publisher is closed twice afterwards, whatever the scenario did:
    ``close`` must be safe to repeat.
    """

    async def main() -> None:
        async with fake.serving() as url:
            publisher = make_publisher(url)
            try:
                await scenario(fake, publisher)
            finally:
                await publisher.close()
                await publisher.close()

    asyncio.run(main())
