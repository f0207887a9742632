"""The generic event format: already-normalized PRs from SCMs we do not support.

``POST /v1/events`` with a tenant's API key accepts one JSON object:

    {"repo": "team/service", "pr_number": 12, "head_sha": "...", "diff": "diff --git ...",
     "base_sha": "...", "title": "...", "author": "...", "action": "opened",
     "files": [{"path": "a.py", "content": "..."}], "source": "perforce"}

``repo``, ``pr_number``, ``head_sha`` and ``diff`` are required; the diff must
parse. The tenant comes from the API key, never from the body, so one
tenant cannot post into another's stream.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from processors.diff import parse_diff
from schemas.errors import ProcessorError
from schemas.records import FileSnapshot, PullRequestEvent

REQUIRED = ("repo", "pr_number", "head_sha", "diff")


def parse_generic_event(body: bytes, *, tenant: str, received_at_ms: int) -> PullRequestEvent:
    """A PullRequestEvent from a generic JSON body; ``ProcessorError`` says what is wrong."""
    try:
        payload = json.loads(body.decode("utf-8"))  # JSON on the wire is UTF-8 (RFC 8259)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProcessorError(f"body is not JSON: {exc}") from exc
    if not isinstance(payload, dict):
        raise ProcessorError("body is not a JSON object")
    missing = [name for name in REQUIRED if name not in payload]
    if missing:
        raise ProcessorError(f"missing fields: {', '.join(missing)}")
    repo, head_sha, diff = (_text(payload, k) for k in ("repo", "head_sha", "diff"))
    number = payload["pr_number"]
    if not isinstance(number, int) or isinstance(number, bool) or number < 1:
        raise ProcessorError("pr_number must be a positive integer")
    if not repo or not head_sha:
        raise ProcessorError("repo and head_sha must not be empty")
    parse_diff(diff)  # raises ProcessorError naming the bad line
    source = _text(payload, "source", "generic") or "generic"
    return PullRequestEvent(
        event_id=hashlib.sha256(f"{tenant}/{repo}#{number}@{head_sha}".encode()).hexdigest(),
        tenant=tenant,
        source=source,
        repo=repo,
        pr_number=number,
        action=_text(payload, "action", "opened") or "opened",
        head_sha=head_sha,
        diff=diff,
        received_at_ms=received_at_ms,
        title=_text(payload, "title", ""),
        author=_text(payload, "author", ""),
        base_sha=_text(payload, "base_sha", ""),
        files=_files(payload.get("files", [])),
    )


def _text(payload: dict[str, Any], name: str, default: str | None = None) -> str:
    value = payload.get(name, default)
    if not isinstance(value, str):
        raise ProcessorError(f"{name} must be a string")
    return value


def _files(value: Any) -> list[FileSnapshot]:
    if not isinstance(value, list):
        raise ProcessorError("files must be a list")
    files = []
    for i, item in enumerate(value):
        if not isinstance(item, dict) or not isinstance(item.get("path"), str):
            raise ProcessorError(f"files[{i}] needs a string path")
        content = item.get("content")
        if content is not None and not isinstance(content, str):
            raise ProcessorError(f"files[{i}].content must be a string or null")
        files.append(FileSnapshot(item["path"], content))
    return files
