"""Bitbucket Cloud pull requests through REST API 2.0.

``base_url`` is the API root (``https://api.bitbucket.org``); ``ref.repo`` is
``<workspace>/<repo slug>``. A token with a ``:`` is sent as HTTP basic
(``user:app-password``), anything else as a Bearer access token.

``/pullrequests/{id}/diff`` answers with a redirect to the repository's diff
resource, which is followed. Webhook payloads (and the PR resource itself)
carry abbreviated commit hashes, so a short ``head_sha`` is expanded once
through ``/commit/{hash}`` before files are read at it.
"""

from __future__ import annotations

import asyncio
import base64
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

FULL_HASH_LENGTH = 40


class BitbucketCloudApi:
    """Reads pull request material from Bitbucket Cloud."""

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
        self.http = ApiClient(
            base_url, headers=auth_headers(token), timeout_s=timeout_s, sleep=sleep
        )
        self._max_diff_bytes = max_diff_bytes
        self._max_file_bytes = max_file_bytes
        self._max_concurrency = max_concurrency

    async def fetch_event_material(self, ref: PullRequestRef) -> tuple[str, list[FileSnapshot]]:
        """The PR's git diff and the head text of its changed files."""
        diff = await self.pull_diff(ref.repo, ref.pr_number)
        commit = await self.full_hash(ref.repo, ref.head_sha)

        async def read(path: str) -> str | None:
            return await self.file_content(ref.repo, path, commit)

        files = await fetch_snapshots(diff, read, max_concurrency=self._max_concurrency)
        return diff, files

    async def pull_diff(self, repo: str, number: int) -> str:
        """The git diff of PR ``number`` of ``repo`` (``workspace/slug``)."""
        response = await self.http.get(
            f"{_repo_path(repo)}/pullrequests/{number}/diff", accept="text/plain"
        )
        return limit_diff(split_file_sections(response.text()), max_bytes=self._max_diff_bytes)

    async def full_hash(self, repo: str, commit: str) -> str:
        """The 40-digit hash of an abbreviated ``commit`` (returned as is when full)."""
        if len(commit) >= FULL_HASH_LENGTH:
            return commit
        body = (await self.http.get(f"{_repo_path(repo)}/commit/{quote(commit)}")).json()
        full = body.get("hash") if isinstance(body, dict) else None
        return full if isinstance(full, str) and full.startswith(commit) else commit

    async def file_content(self, repo: str, path: str, commit: str) -> str | None:
        """The text of ``path`` at ``commit``; None when absent, binary or too large."""
        response = await self.http.get(
            f"{_repo_path(repo)}/src/{quote(commit)}/{quote(path, safe='/')}",
            missing_ok=True,
            max_bytes=self._max_file_bytes,
        )
        if response.status == 404 or response.too_large:
            return None
        return decode_text(response.body)

    async def close(self) -> None:
        await self.http.close()


def _repo_path(repo: str) -> str:
    workspace, _, slug = repo.partition("/")
    return f"/2.0/repositories/{quote(workspace, safe='')}/{quote(slug, safe='')}"


def auth_headers(token: str) -> dict[str, str]:
    """A token with a ``:`` is ``user:app-password`` (basic), anything else a Bearer token."""
    if not token:
        return {}
    if ":" in token:
        return {"Authorization": "Basic " + base64.b64encode(token.encode()).decode("ascii")}
    return {"Authorization": f"Bearer {token}"}
