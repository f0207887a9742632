"""Gitea and Forgejo pull requests through the REST API (``/api/v1``).

``base_url`` is the server root; ``ref.repo`` is ``owner/name``. Forgejo
keeps Gitea's API, so one client serves both. The PR's git diff comes from
``/pulls/{index}.diff``; a diff over ``max_diff_bytes`` keeps whole files and
ends with the truncation marker (see ``sources.scm_api``).
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


class GiteaApi(DiffAndFilesApi):
    """Reads pull request material from a Gitea or Forgejo server."""

    def __init__(self, base_url: str, token: str, **options: Any) -> None:
        super().__init__(base_url, auth_headers(token), **options)

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


def auth_headers(token: str) -> dict[str, str]:
    """Gitea and Forgejo take an access token as ``Authorization: token ...``."""
    return {"Authorization": f"token {token}"} if token else {}
