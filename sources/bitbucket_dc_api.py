"""Bitbucket Data Center (and Server) pull requests through REST API 1.0.

``base_url`` is the server root (with any context path, e.g.
``https://bitbucket.example.com/bitbucket``); ``ref.repo`` is
``<project key>/<repo slug>``, so the webhook's possibly relative
``api_url`` is not needed. The token is an HTTP access token (Bearer).
The raw git diff comes from ``/pull-requests/{id}.diff``; a diff over
``max_diff_bytes`` keeps whole files and ends with the truncation marker.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from sources.scm_api import (
    DiffAndFilesApi,
    decode_text,
    limit_diff,
    split_file_sections,
)


class BitbucketDcApi(DiffAndFilesApi):
    """Reads pull request material from a Bitbucket Data Center server."""

    def __init__(self, base_url: str, token: str, **options: Any) -> None:
        super().__init__(base_url, auth_headers(token), **options)

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


def _repo_path(repo: str) -> str:
    project, _, slug = repo.partition("/")
    return f"/rest/api/1.0/projects/{quote(project, safe='')}/repos/{quote(slug, safe='')}"


def auth_headers(token: str) -> dict[str, str]:
    """Bitbucket Data Center takes an HTTP access token as a Bearer token."""
    return {"Authorization": f"Bearer {token}"} if token else {}
