"""``ApiClient`` against a real aiohttp server on 127.0.0.1.

Waits are recorded by an injected ``sleep`` rather than slept, so the tests
check the exact seconds the client would wait and still run in milliseconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import random
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web

from sources.github_api import SourceFetchError
from sources.http import ApiClient
from tests.fakes.local_http import serve_app

NOW = 1_700_000_000.0
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Recorder:
    """The injected sleep: remembers every wait instead of waiting."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


@contextlib.asynccontextmanager
async def serve(routes: dict[str, Handler]) -> AsyncIterator[str]:
    app = web.Application()
    for path, handler in routes.items():
        app.router.add_get(path, handler)
    async with serve_app(app) as url:
        yield url


def scripted(answers: list[web.Response], seen: list[web.Request]) -> Handler:
    """A handler answering with ``answers`` in order, then 200 ``done``."""

    async def handle(request: web.Request) -> web.StreamResponse:
        seen.append(request)
        return answers.pop(0) if answers else web.Response(text="done")

    return handle


def client(base_url: str, sleep: Recorder, **options: Any) -> ApiClient:
    return ApiClient(base_url, sleep=sleep, clock=lambda: NOW, rng=random.Random(7), **options)


RATE_LIMITS = [
    ("429 Retry-After seconds", 429, {"Retry-After": "2"}, 2.0),
    ("503 Retry-After HTTP date", 503, {"Retry-After": email.utils.formatdate(NOW + 3)}, 3.0),
    ("403 secondary limit Retry-After", 403, {"Retry-After": "1"}, 1.0),
    (
        "403 GitHub primary limit reset",
        403,
        {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(int(NOW + 5))},
        5.0,
    ),
    ("429 GitLab RateLimit-Reset", 429, {"RateLimit-Reset": str(int(NOW + 4))}, 4.0),
]


@pytest.mark.parametrize(
    ("status", "headers", "wait"), [r[1:] for r in RATE_LIMITS], ids=[r[0] for r in RATE_LIMITS]
)
def test_rate_limit_waits_what_the_server_asks(
    status: int, headers: dict[str, str], wait: float
) -> None:
    async def run() -> None:
        seen: list[web.Request] = []
        answers = [web.Response(status=status, headers=headers, text="slow down")]
        sleep = Recorder()
        async with serve({"/x": scripted(answers, seen)}) as url:
            api = client(url, sleep)
            response = await api.get("/x")
            await api.close()
        assert response.text() == "done"
        assert sleep.waits == [pytest.approx(wait, abs=1.0)]
        assert len(seen) == 2

    asyncio.run(run())


def test_server_errors_are_retried_with_capped_jitter_then_retryable() -> None:
    async def run() -> None:
        seen: list[web.Request] = []
        answers = [web.Response(status=502, text="bad gateway") for _ in range(10)]
        sleep = Recorder()
        async with serve({"/x": scripted(answers, seen)}) as url:
            api = client(url, sleep, max_attempts=4)
            with pytest.raises(SourceFetchError) as caught:
                await api.get("/x")
            await api.close()
        assert caught.value.status == 502 and caught.value.retryable
        assert len(seen) == 4
        assert len(sleep.waits) == 3
        for attempt, wait in enumerate(sleep.waits, start=1):
            assert 0.0 <= wait <= min(8.0, 0.5 * 2 ** (attempt - 1))

    asyncio.run(run())


@pytest.mark.parametrize("status", [404, 401, 403])
def test_client_errors_are_not_retried(status: int) -> None:
    async def run() -> None:
        seen: list[web.Request] = []
        sleep = Recorder()
        async with serve({"/x": scripted([web.Response(status=status)], seen)}) as url:
            api = client(url, sleep)
            with pytest.raises(SourceFetchError) as caught:
                await api.get("/x")
            await api.close()
        assert caught.value.status == status and not caught.value.retryable
        assert len(seen) == 1 and sleep.waits == []

    asyncio.run(run())


def test_missing_ok_returns_the_404() -> None:
    async def run() -> None:
        seen: list[web.Request] = []
        async with serve({"/x": scripted([web.Response(status=404)], seen)}) as url:
            api = client(url, Recorder())
            response = await api.get("/x", missing_ok=True)
            await api.close()
        assert response.status == 404

    asyncio.run(run())


def test_a_wait_longer_than_max_wait_fails_retryable_without_sleeping() -> None:
    async def run() -> None:
        seen: list[web.Request] = []
        answers = [web.Response(status=429, headers={"Retry-After": "3600"})]
        sleep = Recorder()
        async with serve({"/x": scripted(answers, seen)}) as url:
            api = client(url, sleep, max_wait_s=60.0)
            with pytest.raises(SourceFetchError) as caught:
                await api.get("/x")
            await api.close()
        assert caught.value.retryable and caught.value.status == 429
        assert sleep.waits == [] and len(seen) == 1

    asyncio.run(run())


def test_network_error_is_retryable_without_status() -> None:
    async def run() -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        sleep = Recorder()
        api = client(f"http://127.0.0.1:{port}", sleep, max_attempts=2)
        with pytest.raises(SourceFetchError) as caught:
            await api.get("/x")
        await api.close()
        assert caught.value.status is None and caught.value.retryable
        assert len(sleep.waits) == 1

    asyncio.run(run())


def test_etag_304_is_served_from_the_cache_and_counted() -> None:
    async def run() -> None:
        seen: list[str | None] = []

        async def handle(request: web.Request) -> web.StreamResponse:
            seen.append(request.headers.get("If-None-Match"))
            if request.headers.get("If-None-Match") == '"v1"':
                return web.Response(status=304, headers={"ETag": '"v1"'})
            return web.Response(text="payload", headers={"ETag": '"v1"'})

        async with serve({"/x": handle}) as url:
            api = client(url, Recorder())
            first = await api.get("/x")
            second = await api.get("/x")
            await api.close()
        assert seen == [None, '"v1"']
        assert first.body == second.body == b"payload"
        assert second.from_cache and not first.from_cache
        assert api.cache_hits == 1

    asyncio.run(run())


def test_cache_is_bounded() -> None:
    async def run() -> None:
        seen: list[str | None] = []

        async def handle(request: web.Request) -> web.StreamResponse:
            seen.append(request.headers.get("If-None-Match"))
            return web.Response(text=request.path, headers={"ETag": f'"{request.path}"'})

        async with serve({"/{name}": handle}) as url:
            api = client(url, Recorder(), cache_size=1)
            await api.get("/a")
            await api.get("/b")
            await api.get("/a")
            await api.close()
        assert seen == [None, None, None]

    asyncio.run(run())


def test_body_over_max_bytes_is_flagged_not_returned() -> None:
    async def run() -> None:
        async def handle(request: web.Request) -> web.StreamResponse:
            return web.Response(body=b"x" * 5000)

        async with serve({"/x": handle}) as url:
            api = client(url, Recorder())
            big = await api.get("/x", max_bytes=1000)
            small = await api.get("/x", max_bytes=10_000)
            await api.close()
        assert big.too_large and big.body == b""
        assert not small.too_large and len(small.body) == 5000

    asyncio.run(run())


def _link_pages(request: web.Request) -> web.StreamResponse:
    page = int(request.query.get("page", "1"))
    headers = {}
    if page < 3:
        headers["Link"] = (
            f'<{request.url.with_query(page=page + 1)}>; rel="next", '
            f'<{request.url.with_query(page=3)}>; rel="last"'
        )
    return web.json_response([{"n": page}], headers=headers)


def _bitbucket_cloud_pages(request: web.Request) -> web.StreamResponse:
    page = int(request.query.get("page", "1"))
    body: dict[str, Any] = {"pagelen": 1, "page": page, "values": [{"n": page}]}
    if page < 3:
        body["next"] = str(request.url.with_query(page=page + 1))
    return web.json_response(body)


def _bitbucket_dc_pages(request: web.Request) -> web.StreamResponse:
    start = int(request.query.get("start", "0"))
    last = start >= 2
    body: dict[str, Any] = {
        "size": 1,
        "limit": 1,
        "start": start,
        "isLastPage": last,
        "values": [{"n": start + 1}],
    }
    if not last:
        body["nextPageStart"] = start + 1
    return web.json_response(body)


def _azure_pages(request: web.Request) -> web.StreamResponse:
    token = int(request.query.get("continuationToken", "1"))
    headers = {"x-ms-continuationtoken": str(token + 1)} if token < 3 else {}
    return web.json_response({"count": 1, "value": [{"n": token}]}, headers=headers)


PAGINATIONS = [
    ("link header", _link_pages),
    ("bitbucket cloud next", _bitbucket_cloud_pages),
    ("bitbucket dc nextPageStart", _bitbucket_dc_pages),
    ("azure continuation token", _azure_pages),
]


@pytest.mark.parametrize("handler", [p[1] for p in PAGINATIONS], ids=[p[0] for p in PAGINATIONS])
def test_paginate_follows_each_style(handler: Callable[[web.Request], web.StreamResponse]) -> None:
    async def run() -> None:
        async def handle(request: web.Request) -> web.StreamResponse:
            return handler(request)

        async with serve({"/items": handle}) as url:
            api = client(url, Recorder())
            items = [item async for item in api.paginate("/items", params={"per_page": 1})]
            await api.close()
        assert items == [{"n": 1}, {"n": 2}, {"n": 3}]

    asyncio.run(run())


def test_paginate_stops_at_the_page_limit_with_an_error() -> None:
    async def run() -> None:
        async def forever(request: web.Request) -> web.StreamResponse:
            page = int(request.query.get("page", "1"))
            link = f'<{request.url.with_query(page=page + 1)}>; rel="next"'
            return web.json_response([page], headers={"Link": link})

        async with serve({"/items": forever}) as url:
            api = client(url, Recorder(), max_pages=2)
            seen: list[int] = []
            with pytest.raises(SourceFetchError) as caught:
                async for item in api.paginate("/items"):
                    seen.append(item)
            await api.close()
        assert seen == [1, 2] and not caught.value.retryable

    asyncio.run(run())


def test_next_link_to_another_origin_is_refused() -> None:
    async def run() -> None:
        async def leaky(request: web.Request) -> web.StreamResponse:
            return web.json_response([1], headers={"Link": '<http://evil.invalid/x>; rel="next"'})

        async with serve({"/items": leaky}) as url:
            api = client(url, Recorder())
            with pytest.raises(SourceFetchError, match="not on"):
                async for _ in api.paginate("/items"):
                    pass
            await api.close()

    asyncio.run(run())
