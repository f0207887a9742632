"""Gerrit changes through the REST API.

``base_url`` is the server root; with a token (``user:http-password``) the
authenticated ``/a`` prefix is added and HTTP basic sent. A change is
addressed as ``<url-encoded project>~<number>`` and its revision by the
patch set's commit (``ref.head_sha``).

JSON answers start with the ``)]}'`` XSSI guard, which is stripped. The diff
is the revision's ``/patch`` (base64 of ``git format-patch``): its mail
header and signature are cut so only the ``diff --git`` sections remain.
The file list (``/files/``) gives sizes and binary flags, so a large or
binary head file is never downloaded; contents come from
``/files/{path}/content`` as base64.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import re
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
    fetch_snapshots,
    limit_diff,
    split_file_sections,
)

XSSI_PREFIX = ")]}'"
_SIGNATURE_RE = re.compile(r"\n-- \n[^\n]*\n*\Z")


class GerritApi:
    """Reads change material from a Gerrit server."""

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
        root, headers = authenticated_root(base_url, token)
        self.http = ApiClient(root, headers=headers, timeout_s=timeout_s, sleep=sleep)
        self._max_diff_bytes = max_diff_bytes
        self._max_file_bytes = max_file_bytes
        self._max_concurrency = max_concurrency

    async def fetch_event_material(self, ref: PullRequestRef) -> tuple[str, list[FileSnapshot]]:
        """The patch set's diff and the head text of its changed files."""
        change = f"{quote(ref.repo, safe='')}~{ref.pr_number}"
        revision = quote(ref.head_sha, safe="")
        listing = await self.revision_files(change, revision)
        diff = await self.revision_diff(change, revision)

        async def read(path: str) -> str | None:
            info = listing.get(path) or {}
            if info.get("binary") or int(info.get("size", 0)) > self._max_file_bytes:
                return None
            return await self.file_content(change, revision, path)

        files = await fetch_snapshots(diff, read, max_concurrency=self._max_concurrency)
        return diff, files

    async def revision_files(self, change: str, revision: str) -> dict[str, dict[str, Any]]:
        """``{path: FileInfo}`` of the revision, without Gerrit's magic files."""
        response = await self.http.get(f"/changes/{change}/revisions/{revision}/files/")
        listing = _json(response.body)
        if not isinstance(listing, dict):
            raise SourceFetchError("files/ is not a JSON object", status=None, retryable=False)
        return {
            path: info
            for path, info in listing.items()
            if not path.startswith("/") and isinstance(info, dict)
        }

    async def revision_diff(self, change: str, revision: str) -> str:
        """The git diff of the revision against its parent, from ``/patch``."""
        response = await self.http.get(f"/changes/{change}/revisions/{revision}/patch")
        patch = _unbase64(response.body)
        start = patch.find("diff --git ")
        diff = "" if start < 0 else _SIGNATURE_RE.sub("\n", patch[start:])
        return limit_diff(split_file_sections(diff), max_bytes=self._max_diff_bytes)

    async def file_content(self, change: str, revision: str, path: str) -> str | None:
        """The text of ``path`` in the revision; None when absent, binary or too large."""
        response = await self.http.get(
            f"/changes/{change}/revisions/{revision}/files/{quote(path, safe='')}/content",
            missing_ok=True,
            max_bytes=self._max_file_bytes * 4 // 3 + 4,
        )
        if response.status == 404 or response.too_large:
            return None
        try:
            raw = base64.b64decode(response.body, validate=True)
        except (binascii.Error, ValueError):
            return None
        return None if len(raw) > self._max_file_bytes else decode_text(raw)

    async def close(self) -> None:
        await self.http.close()


def _json(body: bytes) -> Any:
    """A Gerrit JSON answer with its ``)]}'`` guard line removed."""
    text = body.decode("utf-8", errors="replace")
    if text.startswith(XSSI_PREFIX):
        text = text[len(XSSI_PREFIX) :]
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise SourceFetchError(f"not JSON: {exc}", status=None, retryable=False) from exc


def _unbase64(body: bytes) -> str:
    """The patch text: base64 as Gerrit sends it, or already raw (``?raw``)."""
    try:
        raw = base64.b64decode(body.strip(), validate=True)
    except (binascii.Error, ValueError):
        raw = body
    return raw.decode("utf-8", errors="replace")


def authenticated_root(base_url: str, token: str) -> tuple[str, dict[str, str]]:
    """The REST root and headers for ``token`` (``user:http-password``).

    Gerrit serves authenticated calls under ``/a/``; anonymous ones at the root.
    """
    root = base_url.rstrip("/")
    if not token:
        return root, {}
    basic = base64.b64encode(token.encode()).decode("ascii")
    return (root if root.endswith("/a") else root + "/a"), {"Authorization": f"Basic {basic}"}
