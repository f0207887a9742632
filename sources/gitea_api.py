"""Gitea and Forgejo pull requests through the REST API (``/api/v1``).

``base_url`` is the server root; ``ref.repo`` is ``owner/name``. Forgejo
keeps Gitea's API, so one client serves both. The PR's git diff comes from
``/pulls/{index}.diff``; a diff over ``max_diff_bytes`` keeps whole files and
ends with the truncation marker (see ``sources.scm_api``).
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


class GiteaApi:
    """Reads pull request material from a Gitea or Forgejo server."""

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
        headers = {"Authorization": f"token {token}"} if token else {}
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
        """The git diff of PR ``number`` of ``repo``, limited to ``max_diff_bytes``."""
        response = await self.http.get(
            f"/api/v1/repos/{quote(repo, safe='/')}/pulls/{number}.diff", accept="text/plain"
        )
        return limit_diff(split_file_sections(response.text()), max_bytes=self._max_diff_bytes)

    async def file_content(self, repo: str, path: str, ref: str) -> str | None:
        """The text of ``path`` at ``ref``; None when absent, binary or too large."""
        response = await self.http.get(
            f"/api/v1/repos/{quote(repo, safe='/')}/raw/{quote(path, safe='/')}",
            params={"ref": ref},
            missing_ok=True,
            max_bytes=self._max_file_bytes,
        )
        if response.status == 404 or response.too_large:
            return None
        return decode_text(response.body)

    async def close(self) -> None:
        await self.http.close()
