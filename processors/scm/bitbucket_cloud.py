"""Bitbucket Cloud repository webhooks: ``pullrequest:*`` events.

Auth: with a webhook secret set, Bitbucket Cloud signs the body with
HMAC-SHA256 in ``X-Hub-Signature: sha256=<hex>``. The event is named by
``X-Event-Key`` and the delivery by ``X-Request-UUID``.

Commit hashes in these payloads are abbreviated (12 hex digits); the fetcher
expands them when it reads the PR. ``api_url`` is the PR's ``links.self``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from processors.github_events import PullRequestRef
from processors.scm.normalized import (
    FeedbackSignal,
    Normalized,
    excerpt,
    feedback,
    ignored,
    reviewable,
)
from processors.scm.payload import (
    Fields,
    body_digest,
    header,
    iso_to_ms,
    load_object,
    load_object_or_none,
    nested,
    prefixed_hmac_matches,
)
from schemas.errors import ProcessorError

SIGNATURE_HEADER = "X-Hub-Signature"
EVENT_HEADER = "X-Event-Key"
DELIVERY_HEADER = "X-Request-UUID"

PR_ACTIONS = {"pullrequest:created": "opened", "pullrequest:updated": "synchronize"}
COMMENT_SIGNALS = {
    "pullrequest:comment_created": ("comment", "IGNORED"),
    "pullrequest:comment_resolved": ("resolved", "ACCEPTED"),
    "pullrequest:comment_deleted": ("dismissed", "REJECTED"),
}

_FIELDS = Fields("Bitbucket Cloud")


def verify(headers: Mapping[str, str], body: bytes, secrets: Sequence[bytes]) -> bool:
    """Whether ``X-Hub-Signature`` (``sha256=<hex>``) signs ``body`` with an active secret."""
    return prefixed_hmac_matches(secrets, body, header(headers, SIGNATURE_HEADER))


def timestamp_ms(headers: Mapping[str, str], body: bytes) -> int | None:
    """``comment.updated_on``, else ``pullrequest.updated_on`` (no delivery time is sent)."""
    payload = load_object_or_none(body)
    if payload is None:
        return None
    return iso_to_ms(nested(payload, "comment", "updated_on")) or iso_to_ms(
        nested(payload, "pullrequest", "updated_on")
    )


def parse(headers: Mapping[str, str], body: bytes, *, tenant: str) -> Normalized:
    """The PR to review or the feedback in one Bitbucket Cloud delivery."""
    payload = load_object(body, "Bitbucket Cloud")
    delivery_id = header(headers, DELIVERY_HEADER) or body_digest(body)
    event = header(headers, EVENT_HEADER)
    if not event:
        raise ProcessorError(f"Bitbucket Cloud webhook: header {EVENT_HEADER} is missing")
    if event in PR_ACTIONS:
        state = _FIELDS.optional_text(_FIELDS.obj(payload, "pullrequest"), "state")
        if state not in ("", "OPEN"):
            return ignored(delivery_id, f"Bitbucket Cloud PR is {state}, not open")
        return reviewable(delivery_id, _ref(payload, PR_ACTIONS[event], tenant))
    if event in COMMENT_SIGNALS:
        signal, verdict = COMMENT_SIGNALS[event]
        return feedback(delivery_id, _comment(payload, signal, verdict))
    return ignored(delivery_id, f"Bitbucket Cloud event {event!r} is not acted on")


def _ref(payload: dict[str, Any], action: str, tenant: str) -> PullRequestRef:
    pull = _FIELDS.obj(payload, "pullrequest")
    where = "pullrequest."
    return PullRequestRef(
        tenant=tenant,
        repo=_repo(payload),
        pr_number=_FIELDS.number(pull, "id", where),
        action=action,
        head_sha=_commit(pull, "source"),
        base_sha=_commit(pull, "destination"),
        title=_FIELDS.text(pull, "title", where, allow_empty=True),
        author=_account(_FIELDS.obj(pull, "author", where), where + "author."),
        api_url=_FIELDS.text(
            _FIELDS.obj(_FIELDS.obj(pull, "links", where), "self", where + "links."),
            "href",
            where + "links.self.",
        ),
    )


def _comment(payload: dict[str, Any], signal: str, verdict: str) -> FeedbackSignal:
    comment = _FIELDS.obj(payload, "comment")
    parent = comment.get("parent")
    parent_id = parent.get("id") if isinstance(parent, dict) else None
    if signal == "comment" and parent_id is not None:
        signal = "reply"
    content = comment.get("content")
    raw = content.get("raw") if isinstance(content, dict) else None
    comment_id = _FIELDS.number(comment, "id", "comment.")
    return FeedbackSignal(
        repo=_repo(payload),
        pr_number=_FIELDS.number(_FIELDS.obj(payload, "pullrequest"), "id", "pullrequest."),
        signal=signal,
        verdict=verdict,
        actor=_account(_FIELDS.obj(payload, "actor"), "actor."),
        comment_id=str(comment_id),
        body_excerpt=excerpt(raw if isinstance(raw, str) else None),
        thread_id=str(parent_id if parent_id is not None else comment_id),
    )


def _repo(payload: dict[str, Any]) -> str:
    return _FIELDS.text(_FIELDS.obj(payload, "repository"), "full_name", "repository.")


def _commit(pull: dict[str, Any], side: str) -> str:
    where = f"pullrequest.{side}."
    end = _FIELDS.obj(pull, side, "pullrequest.")
    return _FIELDS.text(_FIELDS.obj(end, "commit", where), "hash", where + "commit.")


def _account(account: dict[str, Any], where: str) -> str:
    """An account's nickname, else display name: Bitbucket Cloud dropped usernames."""
    for name in ("nickname", "display_name", "uuid"):
        value = account.get(name)
        if isinstance(value, str) and value:
            return value
    return _FIELDS.text(account, "nickname", where)
