"""Gitea and Forgejo webhooks: ``pull_request`` and PR comment events.

Forgejo is a fork of Gitea with the same payloads; it sends ``X-Forgejo-*``
headers and, for compatibility, the ``X-Gitea-*`` ones too, so one module
reads both and the registry lists it under each name.

Auth: the body's HMAC-SHA256 as bare hex (no ``sha256=`` prefix) in
``X-Forgejo-Signature`` or ``X-Gitea-Signature``. The event is
``X-Forgejo-Event`` / ``X-Gitea-Event``, the delivery
``X-Forgejo-Delivery`` / ``X-Gitea-Delivery``. Gitea's ``synchronized`` is
mapped to GitHub's ``synchronize``.
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
    first_header,
    hmac_hex_matches,
    iso_to_ms,
    load_object,
    load_object_or_none,
    nested,
)
from schemas.errors import ProcessorError

SIGNATURE_HEADERS = ("X-Forgejo-Signature", "X-Gitea-Signature")
EVENT_HEADERS = ("X-Forgejo-Event", "X-Gitea-Event")
EVENT_TYPE_HEADERS = ("X-Forgejo-Event-Type", "X-Gitea-Event-Type")
DELIVERY_HEADERS = ("X-Forgejo-Delivery", "X-Gitea-Delivery")

PR_ACTIONS = {
    "opened": "opened",
    "reopened": "reopened",
    "synchronized": "synchronize",
    "edited": "edited",
}
COMMENT_EVENTS = frozenset({"issue_comment", "pull_request_comment"})

_FIELDS = Fields("Gitea")


def verify(headers: Mapping[str, str], body: bytes, secrets: Sequence[bytes]) -> bool:
    """Whether the signature header (bare hex HMAC-SHA256) signs ``body`` with a secret."""
    return hmac_hex_matches(secrets, body, first_header(headers, *SIGNATURE_HEADERS))


def timestamp_ms(headers: Mapping[str, str], body: bytes) -> int | None:
    """``comment.updated_at``, else ``pull_request.updated_at`` (no delivery time is sent)."""
    payload = load_object_or_none(body)
    if payload is None:
        return None
    return iso_to_ms(nested(payload, "comment", "updated_at")) or iso_to_ms(
        nested(payload, "pull_request", "updated_at")
    )


def parse(headers: Mapping[str, str], body: bytes, *, tenant: str) -> Normalized:
    """The PR to review or the feedback in one Gitea or Forgejo delivery."""
    payload = load_object(body, "Gitea")
    delivery_id = first_header(headers, *DELIVERY_HEADERS) or body_digest(body)
    event = first_header(headers, *EVENT_HEADERS)
    if not event:
        raise ProcessorError("Gitea webhook: no X-Gitea-Event or X-Forgejo-Event header")
    if event == "pull_request":
        action = _FIELDS.text(payload, "action")
        if action not in PR_ACTIONS:
            return ignored(delivery_id, f"Gitea pull_request action {action!r} is not acted on")
        return reviewable(delivery_id, _ref(payload, PR_ACTIONS[action], tenant))
    event_type = first_header(headers, *EVENT_TYPE_HEADERS) or event
    if event in COMMENT_EVENTS or event_type in COMMENT_EVENTS:
        return _comment(payload, delivery_id)
    return ignored(delivery_id, f"Gitea event {event!r} is not acted on")


def _ref(payload: dict[str, Any], action: str, tenant: str) -> PullRequestRef:
    pull = _FIELDS.obj(payload, "pull_request")
    where = "pull_request."
    number = _FIELDS.number(pull, "number", where)
    repository = _FIELDS.obj(payload, "repository")
    return PullRequestRef(
        tenant=tenant,
        repo=_FIELDS.text(repository, "full_name", "repository."),
        pr_number=number,
        action=action,
        head_sha=_FIELDS.text(_FIELDS.obj(pull, "head", where), "sha", where + "head."),
        base_sha=_FIELDS.text(_FIELDS.obj(pull, "base", where), "sha", where + "base."),
        title=_FIELDS.text(pull, "title", where, allow_empty=True),
        author=_FIELDS.text(_FIELDS.obj(pull, "user", where), "login", where + "user."),
        api_url=_api_url(repository, pull, number),
    )


def _comment(payload: dict[str, Any], delivery_id: str) -> Normalized:
    issue = _FIELDS.obj(payload, "issue")
    if not payload.get("is_pull") and not isinstance(issue.get("pull_request"), dict):
        return ignored(delivery_id, "Gitea comment is on an issue, not a PR")
    action = _FIELDS.text(payload, "action")
    if action != "created":
        return ignored(delivery_id, f"Gitea comment action {action!r} is not acted on")
    comment = _FIELDS.obj(payload, "comment")
    return feedback(
        delivery_id,
        FeedbackSignal(
            repo=_FIELDS.text(_FIELDS.obj(payload, "repository"), "full_name", "repository."),
            pr_number=_FIELDS.number(issue, "number", "issue."),
            signal="comment",
            verdict="IGNORED",
            actor=_FIELDS.text(_FIELDS.obj(comment, "user", "comment."), "login", "comment.user."),
            comment_id=str(_FIELDS.number(comment, "id", "comment.")),
            body_excerpt=excerpt(_FIELDS.text(comment, "body", "comment.", allow_empty=True)),
        ),
    )


def _api_url(repository: dict[str, Any], pull: dict[str, Any], number: int) -> str:
    """The REST URL of the PR: ``<repository.url>/pulls/<n>`` when that is the API URL."""
    repo_url = _FIELDS.optional_text(repository, "url").rstrip("/")
    if "/api/v1/repos/" in repo_url:
        return f"{repo_url}/pulls/{number}"
    return _FIELDS.text(pull, "url", "pull_request.")
