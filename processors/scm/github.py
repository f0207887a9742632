"""GitHub repository webhooks, in the same shape as every other source.

Auth: ``X-Hub-Signature-256: sha256=<hex>``, HMAC-SHA256 of the body with the
webhook secret; any of the tenant's active secrets may match (rotation).
Events: ``pull_request`` asks for a review (``processors.github_events``);
review activity is feedback: ``pull_request_review_thread`` resolved accepts
(unresolved is a plain signal), ``pull_request_review_comment`` is a comment
or a reply in a thread (``in_reply_to_id`` is the thread's first comment),
``pull_request_review`` dismissed rejects. GitHub sends no webhook for
reactions; they are read from the API by a later step.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from processors import github_events
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

SIGNATURE_HEADER = "X-Hub-Signature-256"
EVENT_HEADER = "X-GitHub-Event"
DELIVERY_HEADER = "X-GitHub-Delivery"

_FIELDS = Fields("GitHub")


def verify(headers: Mapping[str, str], body: bytes, secrets: Sequence[bytes]) -> bool:
    """Whether ``X-Hub-Signature-256`` signs ``body`` with an active secret."""
    return prefixed_hmac_matches(secrets, body, header(headers, SIGNATURE_HEADER))


def timestamp_ms(headers: Mapping[str, str], body: bytes) -> int | None:
    """The object's ``updated_at`` (GitHub sends no delivery time)."""
    payload = load_object_or_none(body)
    if payload is None:
        return None
    for path in (("comment",), ("review",), ("thread",), ("pull_request",)):
        stamp = iso_to_ms(nested(payload, *path, "updated_at")) or iso_to_ms(
            nested(payload, *path, "submitted_at")
        )
        if stamp:
            return stamp
    return None


def parse(headers: Mapping[str, str], body: bytes, *, tenant: str) -> Normalized:
    """The PR to review or the feedback in one GitHub delivery."""
    delivery_id = header(headers, DELIVERY_HEADER) or body_digest(body)
    event = header(headers, EVENT_HEADER) or ""
    if event == "pull_request":
        ref = github_events.parse_pull_request(body, tenant=tenant)
        if ref is None:
            action = load_object(body, "GitHub").get("action")
            return ignored(delivery_id, f"GitHub pull_request action {action!r} is not acted on")
        return reviewable(delivery_id, ref)
    payload = load_object(body, "GitHub")
    action = _FIELDS.text(payload, "action")
    repo = _FIELDS.text(_FIELDS.obj(payload, "repository"), "full_name", "repository.")
    number = _FIELDS.number(_FIELDS.obj(payload, "pull_request"), "number", "pull_request.")
    if event == "pull_request_review_comment" and action == "created":
        return feedback(delivery_id, _comment(payload, repo, number))
    if event == "pull_request_review_thread" and action in ("resolved", "unresolved"):
        return feedback(delivery_id, _thread(payload, repo, number, action))
    if event == "pull_request_review" and action == "dismissed":
        review = _FIELDS.obj(payload, "review")
        return feedback(
            delivery_id,
            FeedbackSignal(
                repo=repo,
                pr_number=number,
                signal="dismissed",
                verdict="REJECTED",
                actor=_login(payload.get("sender")),
                comment_id=str(review.get("id", "")),
                body_excerpt=excerpt(review.get("body")),
            ),
        )
    return ignored(delivery_id, f"GitHub event {event or '(none)'!r}/{action} is not acted on")


def _comment(payload: dict[str, Any], repo: str, number: int) -> FeedbackSignal:
    comment = _FIELDS.obj(payload, "comment")
    parent = comment.get("in_reply_to_id")
    return FeedbackSignal(
        repo=repo,
        pr_number=number,
        signal="reply" if parent else "comment",
        verdict="IGNORED",
        actor=_login(comment.get("user")),
        comment_id=str(_FIELDS.number(comment, "id", "comment.")),
        body_excerpt=excerpt(comment.get("body")),
        thread_id=str(parent or ""),
    )


def _thread(payload: dict[str, Any], repo: str, number: int, action: str) -> FeedbackSignal:
    thread = _FIELDS.obj(payload, "thread")
    comments = thread.get("comments") or []
    first = comments[0] if comments and isinstance(comments[0], dict) else {}
    return FeedbackSignal(
        repo=repo,
        pr_number=number,
        signal="resolved",
        verdict="ACCEPTED" if action == "resolved" else "IGNORED",
        actor=_login(payload.get("sender")),
        comment_id=str(first.get("id", "")),
        body_excerpt=excerpt(first.get("body")),
        thread_id=str(thread.get("node_id", "")),
    )


def _login(user: object) -> str:
    return str(user.get("login", "")) if isinstance(user, dict) else ""
