"""GitHub ``pull_request`` webhooks: read them and turn them into our events.

Signatures are checked by ``processors.scm.github`` like every other source.

Pure: the webhook bytes come in, a ``PullRequestRef`` comes out, and the
diff and files fetched by ``sources.github_api`` are joined to it by
``to_event``. Ids are derived from the revision, not from the delivery, so a
redelivered webhook (GitHub retries, a replayed topic) maps to the same event
and every idempotent sink downstream drops the copy.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from schemas.errors import ProcessorError
from schemas.records import FileSnapshot, PullRequestEvent

ACTED_ACTIONS = frozenset({"opened", "synchronize", "reopened", "ready_for_review", "edited"})


@dataclass(frozen=True)
class PullRequestRef:
    """What a webhook says about a pull request: enough to fetch its material."""

    tenant: str
    repo: str
    pr_number: int
    action: str
    head_sha: str
    base_sha: str
    title: str
    author: str
    api_url: str


def parse_pull_request(body: bytes, *, tenant: str) -> PullRequestRef | None:
    """The ref of a ``pull_request`` webhook, or ``None`` for actions we ignore.

    Raises ``ProcessorError`` naming what is wrong when the body is not JSON,
    not an object, or lacks a field we need.
    """
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProcessorError(f"pull_request webhook body is not JSON: {exc}") from exc
    if not isinstance(payload, dict):
        raise ProcessorError(
            f"pull_request webhook body is a JSON {type(payload).__name__}, not an object"
        )
    action = _text(payload, "action")
    if action not in ACTED_ACTIONS:
        return None
    pull = _object(payload, "pull_request")
    number = payload.get("number", pull.get("number"))
    if not isinstance(number, int) or isinstance(number, bool) or number < 1:
        raise ProcessorError(f"pull_request webhook: 'number' is not a PR number: {number!r}")
    repo = _text(_object(payload, "repository"), "full_name", "repository.")
    if repo.count("/") != 1:
        raise ProcessorError(
            f"pull_request webhook: repository.full_name {repo!r} is not owner/name"
        )
    return PullRequestRef(
        tenant=tenant,
        repo=repo,
        pr_number=number,
        action=action,
        head_sha=_text(_object(pull, "head", "pull_request."), "sha", "pull_request.head."),
        base_sha=_text(_object(pull, "base", "pull_request."), "sha", "pull_request.base."),
        title=_text(pull, "title", "pull_request.", allow_empty=True),
        author=_text(_object(pull, "user", "pull_request."), "login", "pull_request.user."),
        api_url=_text(pull, "url", "pull_request."),
    )


def event_id_for(ref: PullRequestRef) -> str:
    """The id of one revision of one PR: redeliveries of it get the same id."""
    identity = f"{ref.tenant}/{ref.repo}#{ref.pr_number}@{ref.head_sha}"
    return hashlib.sha256(identity.encode("utf-8")).hexdigest()


def to_event(
    ref: PullRequestRef,
    *,
    source: str,
    diff: str,
    files: list[FileSnapshot],
    received_at_ms: int,
) -> PullRequestEvent:
    """The ``PullRequestEvent`` of ``ref`` with its fetched diff and head files."""
    return PullRequestEvent(
        event_id=event_id_for(ref),
        tenant=ref.tenant,
        source=source,
        repo=ref.repo,
        pr_number=ref.pr_number,
        action=ref.action,
        head_sha=ref.head_sha,
        diff=diff,
        received_at_ms=received_at_ms,
        title=ref.title,
        author=ref.author,
        base_sha=ref.base_sha,
        files=list(files),
    )


def _object(obj: dict[str, Any], name: str, where: str = "") -> dict[str, Any]:
    value = obj.get(name)
    if not isinstance(value, dict):
        raise ProcessorError(_missing(where + name, "an object", value))
    return value


def _text(obj: dict[str, Any], name: str, where: str = "", *, allow_empty: bool = False) -> str:
    value = obj.get(name)
    if not isinstance(value, str) or not (value or allow_empty):
        raise ProcessorError(_missing(where + name, "a non-empty string", value))
    return value


def _missing(field: str, wanted: str, value: object) -> str:
    shown = "missing" if value is None else f"{type(value).__name__} {value!r:.40}"
    return f"pull_request webhook: '{field}' must be {wanted}, got {shown}"
