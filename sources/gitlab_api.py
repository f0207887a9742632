"""GitLab merge requests through the REST API (v4).

``base_url`` is the server root (``https://gitlab.example.com``); the project
is addressed by its URL-encoded ``path_with_namespace`` (``ref.repo``), so no
project id lookup is needed. The token goes in ``PRIVATE-TOKEN``.

GitLab has no unified diff endpoint for an MR: ``/merge_requests/:iid/diffs``
(paginated) gives each file's hunks without git headers, so the headers are
written here from ``old_path``/``new_path``, the modes and the
``new_file``/``deleted_file``/``renamed_file`` flags. A file GitLab did not
render (``too_large``, or ``collapsed`` with no diff) is counted into the
truncation marker rather than dropped silently.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from sources.scm_api import (
    DiffAndFilesApi,
    decode_text,
    limit_diff,
)

PAGE_SIZE = 100


class GitLabApi(DiffAndFilesApi):
    """Reads merge request material from a GitLab server."""

    def __init__(self, base_url: str, token: str, **options: Any) -> None:
        super().__init__(base_url, auth_headers(token), **options)

    async def pull_diff(self, repo: str, number: int) -> str:
        return await self.merge_request_diff(repo, number)

    async def merge_request_diff(self, repo: str, iid: int) -> str:
        """The unified diff of MR ``iid`` of project ``repo`` (``group/name``)."""
        sections: list[str] = []
        omitted = 0
        path = f"/api/v4/projects/{quote(repo, safe='')}/merge_requests/{iid}/diffs"
        async for item in self.http.paginate(path, params={"per_page": PAGE_SIZE}):
            section = _file_section(item)
            if section is None:
                omitted += 1
            else:
                sections.append(section)
        return limit_diff(sections, max_bytes=self._max_diff_bytes, omitted=omitted)

    async def file_content(self, repo: str, path: str, ref: str) -> str | None:
        """The text of ``path`` at ``ref``; None when absent, binary or too large."""
        response = await self.http.get(
            f"/api/v4/projects/{quote(repo, safe='')}/repository/files/{quote(path, safe='')}/raw",
            params={"ref": ref},
            missing_ok=True,
            max_bytes=self._max_file_bytes,
        )
        if response.status == 404 or response.too_large:
            return None
        return decode_text(response.body)


def _file_section(item: dict[str, Any]) -> str | None:
    """One file's ``diff --git`` section, or None when GitLab did not render it."""
    old_path = str(item.get("old_path") or item.get("new_path") or "")
    new_path = str(item.get("new_path") or old_path)
    body = item.get("diff") or ""
    if not isinstance(body, str):
        body = ""
    if item.get("too_large") or (item.get("collapsed") and not body):
        return None
    a_mode, b_mode = item.get("a_mode"), item.get("b_mode")
    lines = [f"diff --git a/{old_path} b/{new_path}\n"]
    if item.get("new_file"):
        lines.append(f"new file mode {b_mode or '100644'}\n")
    elif item.get("deleted_file"):
        lines.append(f"deleted file mode {a_mode or '100644'}\n")
    else:
        if a_mode and b_mode and a_mode != b_mode:
            lines += [f"old mode {a_mode}\n", f"new mode {b_mode}\n"]
        if item.get("renamed_file") and old_path != new_path:
            lines += [f"rename from {old_path}\n", f"rename to {new_path}\n"]
    if body.startswith("@@"):
        lines.append("--- /dev/null\n" if item.get("new_file") else f"--- a/{old_path}\n")
        lines.append("+++ /dev/null\n" if item.get("deleted_file") else f"+++ b/{new_path}\n")
        lines.append(body if body.endswith("\n") else body + "\n")
    elif body.startswith("Binary files"):
        lines.append(body if body.endswith("\n") else body + "\n")
    return "".join(lines)


def auth_headers(token: str) -> dict[str, str]:
    """GitLab takes a personal, project or group access token in ``PRIVATE-TOKEN``."""
    return {"PRIVATE-TOKEN": token} if token else {}
