"""Azure DevOps (Azure Repos) pull requests through the Git REST API (7.1).

``base_url`` is the organization URL (``https://dev.azure.com/<org>``);
``ref.repo`` is ``<project>/<repository>`` as the webhook normalizer writes
it. A personal access token is sent as HTTP basic with an empty user name.

Azure has no unified diff endpoint, so the diff is built here: the latest
iteration names the source commit and the common (merge-base) commit, its
changes (paged with ``$top``/``$skip`` and the body's ``nextSkip``/``nextTop``)
name the files, and each side's text is read from ``/items`` and compared
with ``difflib`` (``sources.scm_api.render_file_diff``). The head texts read
for the diff are the snapshots, so no file is fetched twice. A file too large
to read is counted into the truncation marker, never silently left out.
"""

from __future__ import annotations

import asyncio
import base64
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from processors.github_events import PullRequestRef
from schemas.records import FileSnapshot
from sources.github_api import SourceFetchError
from sources.http import ApiClient, Sleep
from sources.scm_api import (
    MAX_DIFF_BYTES,
    MAX_FILE_BYTES,
    decode_text,
    limit_diff,
    render_file_diff,
)

API_VERSION = "7.1"
PAGE_SIZE = 2000
MAX_PAGES = 50


@dataclass(frozen=True)
class _Side:
    """One side of a changed file: its text, or why there is none."""

    text: str | None
    binary: bool = False
    too_large: bool = False


class AzureDevOpsApi:
    """Reads pull request material from Azure DevOps Services or Server."""

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
        self._semaphore = asyncio.Semaphore(max_concurrency)

    async def fetch_event_material(self, ref: PullRequestRef) -> tuple[str, list[FileSnapshot]]:
        """The PR's diff, built from both sides of each change, and the head texts."""
        iteration = await self.latest_iteration(ref.repo, ref.pr_number)
        head = _commit(iteration, "sourceRefCommit") or ref.head_sha
        base = _commit(iteration, "commonRefCommit") or _commit(iteration, "targetRefCommit")
        base = base or ref.base_sha
        changes = await self.iteration_changes(ref.repo, ref.pr_number, int(iteration["id"]))
        results = await asyncio.gather(
            *(self._file_diff(ref.repo, change, base, head) for change in changes)
        )
        sections = [section for section, _ in results if section is not None]
        omitted = sum(1 for section, _ in results if section is None)
        snapshots = [snapshot for _, snapshot in results if snapshot is not None]
        diff = limit_diff(sections, max_bytes=self._max_diff_bytes, omitted=omitted)
        return diff, snapshots

    async def latest_iteration(self, repo: str, number: int) -> dict[str, Any]:
        """The PR's last iteration (the source branch as last pushed)."""
        body = (
            await self.http.get(
                f"{_repo_path(repo)}/pullRequests/{number}/iterations",
                params={"api-version": API_VERSION},
            )
        ).json()
        iterations = body.get("value") if isinstance(body, dict) else None
        if not isinstance(iterations, list) or not iterations:
            raise SourceFetchError(
                f"pull request {number} of {repo} has no iterations", status=None, retryable=False
            )
        return max(iterations, key=lambda item: int(item.get("id", 0)))

    async def iteration_changes(
        self, repo: str, number: int, iteration: int
    ) -> list[dict[str, Any]]:
        """Every file change of ``iteration`` against the merge base, all pages."""
        path = f"{_repo_path(repo)}/pullRequests/{number}/iterations/{iteration}/changes"
        changes: list[dict[str, Any]] = []
        top, skip = PAGE_SIZE, 0
        for _ in range(MAX_PAGES):
            params: dict[str, str | int] = {"api-version": API_VERSION, "$top": top, "$skip": skip}
            body = (await self.http.get(path, params=params)).json()
            entries = body.get("changeEntries") if isinstance(body, dict) else None
            if not isinstance(entries, list):
                raise SourceFetchError(
                    f"{path}: no changeEntries in the answer", status=None, retryable=False
                )
            changes += [entry for entry in entries if _is_file(entry)]
            next_skip, next_top = body.get("nextSkip") or 0, body.get("nextTop") or 0
            if not next_top:
                return changes
            top, skip = int(next_top), int(next_skip)
        raise SourceFetchError(f"{path}: more than {MAX_PAGES} pages", status=None, retryable=False)

    async def file_content(self, repo: str, path: str, commit: str) -> _Side:
        """The text of ``path`` at ``commit``."""
        async with self._semaphore:
            response = await self.http.get(
                f"{_repo_path(repo)}/items",
                params={
                    "path": path,
                    "versionDescriptor.version": commit,
                    "versionDescriptor.versionType": "commit",
                    "$format": "octetStream",
                    "api-version": API_VERSION,
                },
                accept="application/octet-stream",
                missing_ok=True,
                max_bytes=self._max_file_bytes,
            )
        if response.status == 404:
            return _Side(None)
        if response.too_large:
            return _Side(None, too_large=True)
        text = decode_text(response.body)
        return _Side(text, binary=text is None)

    async def close(self) -> None:
        await self.http.close()

    async def _file_diff(
        self, repo: str, change: dict[str, Any], base: str, head: str
    ) -> tuple[str | None, FileSnapshot | None]:
        """The diff section of one change (None if too large) and its head snapshot."""
        kind = str(change.get("changeType", "edit")).lower()
        item = change.get("item") or {}
        new_path = str(item.get("path", ""))
        old_path = str(change.get("originalPath") or change.get("sourceServerItem") or new_path)
        added, deleted = "add" in kind, "delete" in kind
        old = _Side(None) if added else await self.file_content(repo, old_path, base)
        new = _Side(None) if deleted else await self.file_content(repo, new_path, head)
        if old.too_large or new.too_large:
            return None, None
        section = render_file_diff(
            None if added else old_path.lstrip("/"),
            None if deleted else new_path.lstrip("/"),
            old.text,
            new.text,
            binary=old.binary or new.binary,
        )
        changed = "\n@@" in section
        if deleted or new.binary or not changed:
            return section, None
        return section, FileSnapshot(new_path.lstrip("/"), new.text)


def _repo_path(repo: str) -> str:
    project, _, name = repo.partition("/")
    return f"/{quote(project, safe='')}/_apis/git/repositories/{quote(name, safe='')}"


def _commit(iteration: dict[str, Any], name: str) -> str:
    value = iteration.get(name)
    commit = value.get("commitId") if isinstance(value, dict) else None
    return commit if isinstance(commit, str) else ""


def _is_file(entry: Any) -> bool:
    """A blob change: folders (``isFolder``) and non-blob objects carry no text."""
    if not isinstance(entry, dict) or not isinstance(entry.get("item"), dict):
        return False
    item = entry["item"]
    return not item.get("isFolder") and item.get("gitObjectType", "blob") == "blob"


def auth_headers(token: str) -> dict[str, str]:
    """A personal access token goes as HTTP basic with an empty user name."""
    if not token:
        return {}
    return {"Authorization": "Basic " + base64.b64encode(f":{token}".encode()).decode("ascii")}
