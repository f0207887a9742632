"""One small async HTTP client shared by every SCM REST client.

Every SCM has the same needs: a base URL, auth headers, bounded retries that
respect the server's rate limits, conditional requests so a redelivered
webhook does not spend quota twice, and pagination. Each vendor spells rate
limits and pages differently, so this module reads all the spellings and the
clients stay about their API's paths and shapes.

Retries: 429 and 503 honour ``Retry-After`` (seconds or an HTTP date); a 403
with ``Retry-After`` or ``X-RateLimit-Remaining: 0`` (GitHub's secondary
limits) waits for ``Retry-After`` or ``X-RateLimit-Reset``; GitLab's
``RateLimit-Reset`` is read the same way; other 5xx and network errors back
off exponentially (base 0.5 s, capped at 8 s, full jitter). A wait longer
than ``max_wait_s`` is not slept here: the request fails as retryable so the
agent's own bounded retry decides, instead of a worker stalling for minutes.

Paths are sent as given (already percent-encoded by the caller) because
several APIs need ``%2F`` kept inside a path segment (GitLab file paths).
A ``next`` URL is only followed on the base URL's own origin, so a token is
never sent to another host.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import math
import random
import re
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

import aiohttp
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from processors.backoff import full_jitter
from sources.github_api import SourceFetchError

Sleep = Callable[[float], Awaitable[None]]

_LINK_NEXT = re.compile(r'<([^>]+)>\s*;[^,]*\brel="?next"?', re.IGNORECASE)
_CONTINUATION_HEADER = "x-ms-continuationtoken"


@dataclass(frozen=True)
class ApiResponse:
    """A finished response: ``too_large`` when the body passed ``max_bytes`` (body empty)."""

    status: int
    headers: CIMultiDictProxy[str]
    body: bytes
    too_large: bool = False
    from_cache: bool = False

    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        """The body as JSON; a body that is not JSON is a non-retryable fetch error."""
        try:
            return json.loads(self.body)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise SourceFetchError(
                f"response is not JSON: {exc}", status=self.status, retryable=False
            ) from exc


class ApiClient:
    """Requests against one API root: GETs with retries, an ETag cache and pagination; writes."""

    def __init__(
        self,
        base_url: str,
        *,
        headers: Mapping[str, str] | None = None,
        timeout_s: float = 10.0,
        max_attempts: int = 4,
        backoff_base_s: float = 0.5,
        backoff_cap_s: float = 8.0,
        max_wait_s: float = 60.0,
        max_pages: int = 100,
        cache_size: int = 256,
        rng: random.Random | None = None,
        sleep: Sleep = asyncio.sleep,
        clock: Callable[[], float] = time.time,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._origin = _origin(self.base_url)
        self._headers = {"User-Agent": "codereview", **(headers or {})}
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._max_attempts = max(1, max_attempts)
        self._backoff_base_s = backoff_base_s
        self._backoff_cap_s = backoff_cap_s
        self._max_wait_s = max_wait_s
        self._max_pages = max_pages
        self._cache_size = cache_size
        self._cache: OrderedDict[tuple[str, str], tuple[str, CIMultiDictProxy[str], bytes]] = (
            OrderedDict()
        )
        self._rng = rng or random.Random()
        self._sleep = sleep
        self._clock = clock
        self._session = session
        self._owns_session = session is None
        self.cache_hits = 0

    async def close(self) -> None:
        """Close the session if this client opened it; safe to call twice."""
        if self._owns_session and self._session is not None and not self._session.closed:
            await self._session.close()

    def url_for(self, path: str, params: Mapping[str, str | int] | None = None) -> str:
        """The absolute URL of ``path`` (or of an absolute URL) with ``params`` appended."""
        url = path if path.startswith(("http://", "https://")) else self.base_url + path
        if params:
            url += ("&" if "?" in url else "?") + urlencode(
                {key: str(value) for key, value in params.items()}
            )
        return url

    async def get(
        self,
        path: str,
        *,
        params: Mapping[str, str | int] | None = None,
        accept: str | None = None,
        missing_ok: bool = False,
        max_bytes: int | None = None,
    ) -> ApiResponse:
        """GET ``path``; a 404 is returned (not raised) when ``missing_ok``.

        Raises ``SourceFetchError`` for any other non-2xx answer once retries
        are spent, with ``retryable`` telling the caller whether later may help.
        """
        url = self._checked_url(path, params)
        cache_key = (url, accept or "")
        return await self._with_retries(
            f"GET {url}",
            lambda: self._send(url, accept, cache_key, max_bytes),
            idempotent=True,
            missing_ok=missing_ok,
        )

    async def send(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        params: Mapping[str, str | int] | None = None,
        idempotent: bool = False,
        accept: str | None = None,
    ) -> ApiResponse:
        """A write (POST, PUT, PATCH, DELETE) of ``json_body`` to ``path``.

        A rate-limit answer (429, 503, or 403 with GitHub's secondary-limit
        headers) means the server did not act, so it is retried after the
        wait the server asked for, whatever the method. A 5xx or a network
        error is ambiguous for a write: the server may have acted before
        failing. It is retried here only when ``idempotent`` (a PUT of a
        state, a resolve); otherwise it is raised at once, ``retryable``, and
        the caller must find out what happened before trying again (the
        publishers look for their marker in the existing comments), which is
        what keeps a comment from being posted twice.
        """
        url = self._checked_url(path, params)
        headers = dict(self._headers)
        headers["Accept"] = accept or "application/json"
        body = None if json_body is None else json.dumps(json_body).encode("utf-8")
        if body is not None:
            headers["Content-Type"] = "application/json"

        async def once() -> ApiResponse:
            async with self._client().request(
                method, URL(url, encoded=True), headers=headers, data=body
            ) as raw:
                return ApiResponse(
                    raw.status, CIMultiDictProxy(CIMultiDict(raw.headers)), await raw.read()
                )

        return await self._with_retries(f"{method} {url}", once, idempotent=idempotent)

    async def _with_retries(
        self,
        what: str,
        once: Callable[[], Awaitable[ApiResponse]],
        *,
        idempotent: bool,
        missing_ok: bool = False,
    ) -> ApiResponse:
        """``once()`` until a 2xx (or a 404 when ``missing_ok``), within the attempts.

        A rate-limit answer is always retried after the wait the server asked
        for: the server did not act. A 5xx or a network error is retried only
        when ``idempotent``; for a write it is raised at once (see ``send``).
        """
        for attempt in range(1, self._max_attempts + 1):
            last = attempt >= self._max_attempts
            try:
                response = await once()
            except (TimeoutError, aiohttp.ClientError) as exc:
                if idempotent and not last:
                    await self._sleep(self._backoff(attempt))
                    continue
                raise SourceFetchError(f"{what}: {exc!r}", status=None, retryable=True) from exc
            if 200 <= response.status < 300 or (response.status == 404 and missing_ok):
                return response
            wait = self._retry_wait(response, attempt)
            safe = idempotent or _rate_limited(response)
            if safe and not last and wait is not None and wait <= self._max_wait_s:
                await self._sleep(wait)
                continue
            raise SourceFetchError(
                f"{what}: HTTP {response.status}: {response.text()[:200]}",
                status=response.status,
                retryable=wait is not None,
            )
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _checked_url(self, path: str, params: Mapping[str, str | int] | None) -> str:
        """The URL of ``path``; a URL on another origin is refused (a token never leaves)."""
        url = self.url_for(path, params)
        if _origin(url) != self._origin:
            raise SourceFetchError(
                f"refusing {url}: not on {self._origin}", status=None, retryable=False
            )
        return url

    async def paginate(
        self,
        path: str,
        *,
        params: Mapping[str, str | int] | None = None,
        items_key: str | None = None,
        accept: str | None = None,
    ) -> AsyncIterator[Any]:
        """The items of every page of a list endpoint, in order.

        Items are ``body[items_key]``, else the body itself when it is a list,
        else Bitbucket's ``values`` or Azure's ``value``. The next page comes
        from a ``Link: rel="next"`` header (GitHub, GitLab, Gitea), a ``next``
        URL in the body (Bitbucket Cloud), ``isLastPage``/``nextPageStart``
        (Bitbucket DC) or an ``x-ms-continuationtoken`` header (Azure DevOps).
        More than ``max_pages`` pages is a non-retryable error: a partial list
        read as complete would review the wrong change.
        """
        current_path: str = path
        current_params: dict[str, str | int] = dict(params or {})
        for _ in range(self._max_pages):
            response = await self.get(current_path, params=current_params, accept=accept)
            body = response.json()
            for item in _page_items(body, items_key):
                yield item
            following = _next_page(response, body)
            if following is None:
                return
            if following[0] == "url":
                current_path, current_params = following[1], {}
            elif following[0] == "start":
                current_params = {**current_params, "start": following[1]}
            else:
                current_params = {**current_params, "continuationToken": following[1]}
        raise SourceFetchError(
            f"GET {path}: more than {self._max_pages} pages", status=None, retryable=False
        )

    async def _send(
        self, url: str, accept: str | None, cache_key: tuple[str, str], max_bytes: int | None
    ) -> ApiResponse:
        headers = dict(self._headers)
        if accept:
            headers["Accept"] = accept
        cached = self._cache.get(cache_key)
        if cached is not None:
            headers["If-None-Match"] = cached[0]
        async with self._client().get(URL(url, encoded=True), headers=headers) as raw:
            response_headers = CIMultiDictProxy(CIMultiDict(raw.headers))
            if raw.status == 304 and cached is not None:
                self._cache.move_to_end(cache_key)
                self.cache_hits += 1
                return ApiResponse(200, cached[1], cached[2], from_cache=True)
            body, too_large = await _read(raw, max_bytes)
        etag = response_headers.get("ETag")
        if raw.status == 200 and etag and not too_large and self._cache_size > 0:
            self._cache[cache_key] = (etag, response_headers, body)
            self._cache.move_to_end(cache_key)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return ApiResponse(raw.status, response_headers, body, too_large=too_large)

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or (self._owns_session and self._session.closed):
            self._session = aiohttp.ClientSession(timeout=self._timeout)
            self._owns_session = True
        return self._session

    def _backoff(self, attempt: int) -> float:
        return full_jitter(attempt, self._backoff_base_s, self._backoff_cap_s, self._rng.random)

    def _retry_wait(self, response: ApiResponse, attempt: int) -> float | None:
        """Seconds to wait before another attempt, or None when retrying cannot help."""
        headers = response.headers
        retry_after = _parse_retry_after(headers.get("Retry-After"), self._clock())
        if _rate_limited(response):
            if retry_after is not None:
                return max(retry_after, 0.0)
            reset = _parse_epoch(headers.get("X-RateLimit-Reset") or headers.get("RateLimit-Reset"))
            if reset is not None:
                return max(reset - self._clock(), 0.0)
            return self._backoff(attempt)
        if 500 <= response.status < 600:
            return self._backoff(attempt)
        return None


def _rate_limited(response: ApiResponse) -> bool:
    """Whether the server refused for rate (429, 503, or GitHub's 403 secondary limit)."""
    headers = response.headers
    exhausted = "0" in (headers.get("X-RateLimit-Remaining"), headers.get("RateLimit-Remaining"))
    return response.status in (429, 503) or (
        response.status == 403 and ("Retry-After" in headers or exhausted)
    )


async def _read(raw: aiohttp.ClientResponse, max_bytes: int | None) -> tuple[bytes, bool]:
    """The body, or ``(b"", True)`` once it passes ``max_bytes`` (not read further)."""
    if max_bytes is None:
        return await raw.read(), False
    if (raw.content_length or 0) > max_bytes:
        return b"", True
    body = bytearray()
    async for block in raw.content.iter_chunked(64 * 1024):
        body += block
        if len(body) > max_bytes:
            return b"", True
    return bytes(body), False


def _page_items(body: Any, items_key: str | None) -> list[Any]:
    if items_key is not None:
        items = body.get(items_key) if isinstance(body, dict) else None
    elif isinstance(body, list):
        items = body
    elif isinstance(body, dict):
        items = body.get("values", body.get("value"))
    else:
        items = None
    if not isinstance(items, list):
        raise SourceFetchError(
            f"page has no item list ({items_key or 'values/value'})", status=None, retryable=False
        )
    return items


def _next_page(response: ApiResponse, body: Any) -> tuple[str, str] | None:
    """``("url", next URL)``, ``("start", offset)``, ``("token", token)`` or None."""
    for link in response.headers.getall("Link", []):
        match = _LINK_NEXT.search(link)
        if match:
            return "url", match.group(1)
    if isinstance(body, dict):
        following = body.get("next")
        if isinstance(following, str) and following:
            return "url", following
        if body.get("isLastPage") is False and isinstance(body.get("nextPageStart"), int):
            return "start", str(body["nextPageStart"])
    token = response.headers.get(_CONTINUATION_HEADER)
    if token:
        return "token", token
    return None


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def _parse_retry_after(value: str | None, now: float) -> float | None:
    """``Retry-After`` as seconds from ``now``: either a number or an HTTP date."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return seconds if math.isfinite(seconds) else None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return when.timestamp() - now


def _parse_epoch(value: str | None) -> float | None:
    """A reset time in epoch seconds (GitHub ``X-RateLimit-Reset``, GitLab ``RateLimit-Reset``)."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if math.isfinite(seconds) else None
