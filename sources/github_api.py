"""A small GitHub REST client: the diff and head files of a pull request.

Async (aiohttp) because it is awaited from Faust agents. It holds no state
beyond one HTTP session, opened lazily on first use so that constructing it
does no I/O. Failures are typed: ``SourceFetchError.retryable`` tells the
agent whether trying the record again may help (rate limits, 5xx, network)
or not (401, 404 on the PR, a diff too large to render). Short rate-limit
waits are honoured here; anything longer is the agent's bounded retry.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import math
import time
from types import TracebackType
from typing import Any
from urllib.parse import quote

import aiohttp

from processors.diff import TRUNCATION_MARKER, parse_diff
from processors.github_events import PullRequestRef
from schemas.errors import CodeReviewError
from schemas.records import FileSnapshot

DIFF_MEDIA_TYPE = "application/vnd.github.diff"
JSON_MEDIA_TYPE = "application/vnd.github+json"
# The list endpoint serves at most 3,000 files, 100 a page.
FILE_PAGES = 30
RAW_MEDIA_TYPE = "application/vnd.github.raw"
API_VERSION = "2022-11-28"
RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})
MAX_SLEEP_S = 5.0


def _file_section(entry: dict[str, Any], patch: str) -> str:
    """One file of the list endpoint as a git diff section (headers + its patch)."""
    new = str(entry["filename"])
    old = str(entry.get("previous_filename") or new)
    status = entry.get("status", "modified")
    head = [f"diff --git a/{old} b/{new}"]
    if status == "added":
        head += ["new file mode 100644", "--- /dev/null", f"+++ b/{new}"]
    elif status == "removed":
        head += ["deleted file mode 100644", f"--- a/{old}", "+++ /dev/null"]
    else:
        if old != new:
            head += [f"rename from {old}", f"rename to {new}"]
        head += [f"--- a/{old}", f"+++ b/{new}"]
    return "\n".join(head) + "\n" + patch.rstrip("\n") + "\n"


class SourceFetchError(CodeReviewError):
    """The SCM refused or failed a request; ``status`` is None for network errors."""

    def __init__(self, message: str, *, status: int | None, retryable: bool) -> None:
        super().__init__(message)
        self.status = status
        self.retryable = retryable


class GitHubApi:
    """Reads pull request material from a GitHub (or GitHub Enterprise) API."""

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        timeout_s: float = 10.0,
        session: aiohttp.ClientSession | None = None,
        max_concurrency: int = 4,
        max_attempts: int = 3,
        backoff_s: float = 0.5,
        max_file_bytes: int = 1_000_000,
    ) -> None:
        self._base_url = base_url.rstrip("/")
        self._token = token
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session = session
        self._owns_session = session is None
        self._max_concurrency = max_concurrency
        self._max_attempts = max(1, max_attempts)
        self._backoff_s = backoff_s
        self._max_file_bytes = max_file_bytes

    async def __aenter__(self) -> GitHubApi:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def pull_diff(self, repo: str, number: int) -> str:
        """The unified diff of pull request ``number`` of ``repo`` (``owner/name``).

        GitHub refuses the diff media type with 406 past 300 files or 20,000
        lines; the PR's file list still carries each file's patch, so the diff
        is rebuilt from it, and files whose patch GitHub leaves out (binary or
        too large) are counted in the truncation marker, never dropped silently.
        """
        path = f"/repos/{quote(repo, safe='/')}/pulls/{number}"
        try:
            body = await self._get(path, DIFF_MEDIA_TYPE)
        except SourceFetchError as exc:
            if exc.status != 406:
                raise
            return await self._diff_from_files(path)
        assert body is not None  # only file_content allows a 404
        return body.decode("utf-8", errors="replace")

    async def _diff_from_files(self, pull_path: str) -> str:
        """A unified diff rebuilt from ``GET .../pulls/N/files`` (up to 3,000 files)."""
        sections: list[str] = []
        omitted = 0
        for page in range(1, FILE_PAGES + 1):
            body = await self._get(
                f"{pull_path}/files", JSON_MEDIA_TYPE, params={"per_page": "100", "page": str(page)}
            )
            entries = json.loads(body or b"[]")
            for entry in entries:
                patch = entry.get("patch")
                if patch is None:
                    omitted += 1
                    continue
                sections.append(_file_section(entry, patch))
            if len(entries) < 100:
                break
        diff = "".join(sections)
        if omitted:
            diff += TRUNCATION_MARKER.format(omitted=omitted) + "\n"
        return diff

    async def file_content(self, repo: str, path: str, ref: str) -> str | None:
        """The text of ``path`` at ``ref``; None when absent, not UTF-8, or too large."""
        body = await self._get(
            f"/repos/{quote(repo, safe='/')}/contents/{quote(path, safe='/')}",
            RAW_MEDIA_TYPE,
            params={"ref": ref},
            missing_ok=True,
        )
        if body is None:
            return None
        try:
            return body.decode("utf-8")
        except UnicodeDecodeError:
            return None

    async def fetch_event_material(self, ref: PullRequestRef) -> tuple[str, list[FileSnapshot]]:
        """The diff of ``ref`` and the head content of the files it changes.

        Files that are deleted, binary, or without hunks (a pure rename, a
        mode change) are not fetched: no chunk would use them. Raises
        ``ProcessorError`` if GitHub's diff does not parse.
        """
        diff = await self.pull_diff(ref.repo, ref.pr_number)
        paths = [
            file_diff.path
            for file_diff in parse_diff(diff)
            if file_diff.status != "deleted" and not file_diff.is_binary and file_diff.hunks
        ]
        semaphore = asyncio.Semaphore(self._max_concurrency)

        async def fetch(path: str) -> FileSnapshot:
            async with semaphore:
                return FileSnapshot(path, await self.file_content(ref.repo, path, ref.head_sha))

        tasks = [asyncio.ensure_future(fetch(path)) for path in dict.fromkeys(paths)]
        try:
            files = await asyncio.gather(*tasks)
        except BaseException:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        return diff, list(files)

    async def close(self) -> None:
        """Close the session if this client opened it; safe to call twice."""
        if self._owns_session and self._session is not None and not self._session.closed:
            await self._session.close()

    def _headers(self, accept: str) -> dict[str, str]:
        headers = {
            "Accept": accept,
            "X-GitHub-Api-Version": API_VERSION,
            "User-Agent": "codereview",
        }
        return {**headers, **auth_headers(self._token)}

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or (self._owns_session and self._session.closed):
            self._session = aiohttp.ClientSession(timeout=self._timeout)
            self._owns_session = True
        return self._session

    async def _get(
        self,
        path: str,
        accept: str,
        *,
        params: dict[str, str] | None = None,
        missing_ok: bool = False,
    ) -> bytes | None:
        """GET with short rate-limit retries; None for a 404 when ``missing_ok``."""
        url = self._base_url + path
        for attempt in range(1, self._max_attempts + 1):
            try:
                async with self._client().get(
                    url, headers=self._headers(accept), params=params, timeout=self._timeout
                ) as response:
                    if response.status == 404 and missing_ok:
                        return None
                    if 200 <= response.status < 300:
                        return await self._read(response, capped=missing_ok)
                    wait = self._retry_wait(response, attempt)
                    if wait is not None and attempt < self._max_attempts:
                        await asyncio.sleep(wait)
                        continue
                    detail = (await response.text(errors="replace"))[:200]
                    raise SourceFetchError(
                        f"GET {url}: HTTP {response.status}: {detail}",
                        status=response.status,
                        retryable=_is_retryable(response),
                    )
            except (TimeoutError, aiohttp.ClientError) as exc:
                raise SourceFetchError(f"GET {url}: {exc!r}", status=None, retryable=True) from exc
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def _read(self, response: aiohttp.ClientResponse, *, capped: bool) -> bytes | None:
        """The body; None when ``capped`` and it exceeds ``max_file_bytes``."""
        if not capped:
            return await response.read()
        if (response.content_length or 0) > self._max_file_bytes:
            return None
        body = bytearray()
        async for block in response.content.iter_chunked(64 * 1024):
            body += block
            if len(body) > self._max_file_bytes:
                return None
        return bytes(body)

    def _retry_wait(self, response: aiohttp.ClientResponse, attempt: int) -> float | None:
        """Seconds to wait before retrying here, or None when not worth it.

        429 and 503 are retried, and so is a 403 carrying ``Retry-After``
        (GitHub's secondary rate limit). ``Retry-After`` wins over the
        exponential backoff; every wait is capped at ``MAX_SLEEP_S``.
        """
        retry_after = response.headers.get("Retry-After")
        if response.status not in (429, 503) and not (response.status == 403 and retry_after):
            return None
        seconds = _parse_retry_after(retry_after)
        if seconds is None:
            seconds = self._backoff_s * 2 ** (attempt - 1)
        return min(max(seconds, 0.0), MAX_SLEEP_S)


def _is_retryable(response: aiohttp.ClientResponse) -> bool:
    if response.status in RETRYABLE_STATUSES:
        return True
    rate_limited = bool(response.headers.get("Retry-After")) or (
        response.headers.get("X-RateLimit-Remaining") == "0"
    )
    return response.status == 403 and rate_limited


def _parse_retry_after(value: str | None) -> float | None:
    """``Retry-After`` as seconds: either a number or an HTTP date."""
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
    return when.timestamp() - time.time()


def auth_headers(token: str) -> dict[str, str]:
    """A GitHub App installation token or a personal access token, as a Bearer token."""
    return {"Authorization": f"Bearer {token}"} if token else {}
