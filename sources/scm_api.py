"""The read side of every SCM behind one Protocol, and the pieces they share.

An ingest agent holds an ``ScmApi`` built by ``build_scm_api(source, ...)``
and never branches on vendors: each client returns the PR's unified diff and
the head text of the files it changes.

Large diffs: a client keeps whole files, in diff order, while they fit in
``max_diff_bytes`` and then appends one marker line
``# codereview: diff truncated: N files omitted`` (``TRUNCATION_MARKER``).
The same marker is appended when the SCM itself says it cut the diff (GitLab
``overflow``/``too_large``, GitHub's 406). A diff is never cut silently, and
never mid-file: a half hunk would not parse. ``split_truncation_marker``
gives back the plain diff and the omitted count for ``parse_diff``.

Clients import the helpers below, so the registry (``SCM_APIS``) names the
clients and ``build_scm_api`` imports them on first use (a top-level import
would be circular).
"""

from __future__ import annotations

import asyncio
import difflib
import importlib
from collections.abc import Awaitable, Callable
from typing import Protocol

from processors.diff import (  # noqa: F401 - limit_diff, split_file_sections: clients' API
    TRUNCATION_MARKER,
    limit_diff,
    parse_diff,
    split_file_sections,
    split_truncation_marker,
)
from processors.github_events import PullRequestRef
from schemas.records import FileSnapshot
from sources.http import ApiClient

MAX_DIFF_BYTES = 5_000_000
MAX_FILE_BYTES = 1_000_000
# source -> "module:Class" of its client, imported on first use (the clients import this module).
SCM_APIS = {
    "github": "sources.github_api:GitHubApi",
    "gitlab": "sources.gitlab_api:GitLabApi",
    "bitbucket-cloud": "sources.bitbucket_cloud_api:BitbucketCloudApi",
    "bitbucket-dc": "sources.bitbucket_dc_api:BitbucketDcApi",
    "azure-devops": "sources.azure_devops_api:AzureDevOpsApi",
    "gerrit": "sources.gerrit_api:GerritApi",
    "gitea": "sources.gitea_api:GiteaApi",
    "forgejo": "sources.gitea_api:GiteaApi",
}
SOURCES = tuple(SCM_APIS)


class ScmApi(Protocol):
    """Reads what a review needs about one PR from one SCM."""

    async def fetch_event_material(self, ref: PullRequestRef) -> tuple[str, list[FileSnapshot]]:
        """The unified diff of ``ref`` and the head snapshots of the files it changes."""
        ...

    async def close(self) -> None:
        """Release the HTTP session; safe to call twice."""
        ...


def build_scm_api(source: str, *, base_url: str, token: str, timeout_s: float = 10.0) -> ScmApi:
    """The client for ``source`` (one of ``SOURCES``); ``ValueError`` for an unknown one.

    ``base_url`` is the server root for every source except GitHub (its API
    root, as ``GitHubApi`` has always taken) and Azure DevOps (the
    organization URL, ``https://dev.azure.com/<org>``).
    """
    if source not in SCM_APIS:
        raise ValueError(f"unknown SCM source {source!r}; expected one of {', '.join(SOURCES)}")
    module, _, name = SCM_APIS[source].partition(":")
    client: ScmApi = getattr(importlib.import_module(module), name)(
        base_url, token, timeout_s=timeout_s
    )
    return client


def decode_text(body: bytes) -> str | None:
    """``body`` as text, or None when it is binary (a NUL byte) or not UTF-8."""
    if b"\0" in body:
        return None
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        return None


async def fetch_snapshots(
    diff: str,
    read: Callable[[str], Awaitable[str | None]],
    *,
    max_concurrency: int = 4,
) -> list[FileSnapshot]:
    """Head snapshots of the files ``diff`` changes, ``read`` fetching each text.

    Deleted, binary and hunk-less files (pure renames, mode changes) are not
    fetched: no chunk would use them. Raises ``ProcessorError`` if the diff
    does not parse, which is a bug in the client or the SCM, not a retry.
    """
    plain, _ = split_truncation_marker(diff)
    paths = [
        file_diff.path
        for file_diff in parse_diff(plain)
        if file_diff.status != "deleted" and not file_diff.is_binary and file_diff.hunks
    ]
    semaphore = asyncio.Semaphore(max_concurrency)

    async def fetch(path: str) -> FileSnapshot:
        async with semaphore:
            return FileSnapshot(path, await read(path))

    tasks = [asyncio.ensure_future(fetch(path)) for path in dict.fromkeys(paths)]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


def render_file_diff(
    old_path: str | None,
    new_path: str | None,
    old_text: str | None,
    new_text: str | None,
    *,
    binary: bool = False,
) -> str:
    """One file's ``git diff`` section from both sides' text (None: that side is absent).

    For SCMs without a unified diff endpoint (Azure DevOps) or whose per-file
    contents are easier to read than their patch. Three lines of context,
    ``\\ No newline at end of file`` where git would write it.
    """
    a_path = old_path or new_path or ""
    b_path = new_path or old_path or ""
    lines = [f"diff --git a/{a_path} b/{b_path}\n"]
    if old_path is None:
        lines.append("new file mode 100644\n")
    elif new_path is None:
        lines.append("deleted file mode 100644\n")
    elif old_path != new_path:
        lines += [f"rename from {old_path}\n", f"rename to {new_path}\n"]
    if binary:
        lines.append(f"Binary files a/{a_path} and b/{b_path} differ\n")
        return "".join(lines)
    old_lines = (old_text or "").splitlines(keepends=True)
    new_lines = (new_text or "").splitlines(keepends=True)
    hunks = list(
        difflib.unified_diff(
            old_lines,
            new_lines,
            fromfile=f"a/{a_path}" if old_path is not None else "/dev/null",
            tofile=f"b/{b_path}" if new_path is not None else "/dev/null",
            n=3,
        )
    )
    for line in hunks:
        if line.endswith("\n"):
            lines.append(line)
        else:
            lines.append(line + "\n\\ No newline at end of file\n")
    return "".join(lines)


class DiffAndFilesApi:
    """The shape most SCM clients share: one call for the PR's diff, one per head file.

    Subclasses name their auth header and write ``pull_diff`` and
    ``file_content``; fetching the changed files a few at a time, the limits and
    closing the session live here once.
    """

    def __init__(
        self,
        base_url: str,
        headers: dict[str, str],
        *,
        timeout_s: float = 10.0,
        max_diff_bytes: int = MAX_DIFF_BYTES,
        max_file_bytes: int = MAX_FILE_BYTES,
        max_concurrency: int = 4,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.http = ApiClient(base_url, headers=headers, timeout_s=timeout_s, sleep=sleep)
        self._max_diff_bytes = max_diff_bytes
        self._max_file_bytes = max_file_bytes
        self._max_concurrency = max_concurrency

    async def fetch_event_material(self, ref: PullRequestRef) -> tuple[str, list[FileSnapshot]]:
        """The PR's diff and the head text of its changed files."""
        diff = await self.pull_diff(ref.repo, ref.pr_number)

        async def read(path: str) -> str | None:
            return await self.file_content(ref.repo, path, ref.head_sha)

        files = await fetch_snapshots(diff, read, max_concurrency=self._max_concurrency)
        return diff, files

    async def pull_diff(self, repo: str, number: int) -> str:
        raise NotImplementedError

    async def file_content(self, repo: str, path: str, ref: str) -> str | None:
        raise NotImplementedError

    async def close(self) -> None:
        await self.http.close()
