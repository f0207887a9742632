"""Bitbucket Data Center (and Server) pull requests through REST API 1.0.

``base_url`` is the server root (with any context path, e.g.
``https://bitbucket.example.com/bitbucket``); ``ref.repo`` is
``<project key>/<repo slug>``, so the webhook's possibly relative
``api_url`` is not needed. The token is an HTTP access token (Bearer).
The raw git diff comes from ``/pull-requests/{id}.diff``; a diff over
``max_diff_bytes`` keeps whole files and ends with the truncation marker.
"""

from __future__ import annotations

import asyncio
from urllib.parse import quote

from processors.github_events import PullRequestRef
from schemas.records import FileSnapshot
from sources.http import ApiClient, Sleep
from sources.scm_api import (
    MAX_DIFF_BYTES,
    MAX_FILE_BYTES,
    decode_text,
    fetch_snapshots,
    limit_diff,
    split_file_sections,
)


class BitbucketDcApi:
    """Reads pull request material from a Bitbucket Data Center server."""

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        timeout_s: float = 10.0,
        max_diff_bytes: int = MAX_DIFF_BYTES,
        max_file_bytes: int = MAX_FILE_BYTES,
        max_concurrency: int = 4,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = ApiClient(base_url, headers=headers, timeout_s=timeout_s, sleep=sleep)
        self._max_diff_bytes = max_diff_bytes
        self._max_file_bytes = max_file_bytes
        self._max_concurrency = max_concurrency

    async def fetch_event_material(self, ref: PullRequestRef) -> tuple[str, list[FileSnapshot]]:
        """The PR's git diff and the head text of its changed files."""
        diff = await self.pull_diff(ref.repo, ref.pr_number)

        async def read(path: str) -> str | None:
            return await self.file_content(ref.repo, path, ref.head_sha)

        files = await fetch_snapshots(diff, read, max_concurrency=self._max_concurrency)
        return diff, files

    async def pull_diff(self, repo: str, number: int) -> str:
        """The raw git diff of PR ``number`` of ``repo`` (``KEY/slug``)."""
        response = await self.http.get(
            f"{_repo_path(repo)}/pull-requests/{number}.diff", accept="text/plain"
        )
        return limit_diff(split_file_sections(response.text()), max_bytes=self._max_diff_bytes)

    async def file_content(self, repo: str, path: str, commit: str) -> str | None:
        """The text of ``path`` at ``commit``; None when absent, binary or too large."""
        response = await self.http.get(
            f"{_repo_path(repo)}/raw/{quote(path, safe='/')}",
            params={"at": commit},
            missing_ok=True,
            max_bytes=self._max_file_bytes,
        )
        if response.status == 404 or response.too_large:
            return None
        return decode_text(response.body)

    async def close(self) -> None:
        await self.http.close()


def _repo_path(repo: str) -> str:
    project, _, slug = repo.partition("/")
    return f"/rest/api/1.0/projects/{quote(project, safe='')}/repos/{quote(slug, safe='')}"
