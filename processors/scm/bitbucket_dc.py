"""Bitbucket Data Center (and Server) webhooks: ``pr:*`` events.

Auth: with a webhook secret set, Bitbucket DC signs the body with
HMAC-SHA256 in ``X-Hub-Signature: sha256=<hex>``. The event is named by
``X-Event-Key`` (and ``eventKey`` in the body), the delivery by
``X-Request-Id``, and the time of the event by the body's ``date``.

The repo is ``<project key>/<repo slug>``. The documented payloads may carry
no usable ``links.self`` (``[null]``), so ``api_url`` is the REST path
relative to the server (``/rest/api/1.0/projects/...``) unless a self link
gives the server's base URL.
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
    prefixed_hmac_matches,
)

SIGNATURE_HEADER = "X-Hub-Signature"
EVENT_HEADER = "X-Event-Key"
DELIVERY_HEADER = "X-Request-Id"

PR_ACTIONS = {"pr:opened": "opened", "pr:from_ref_updated": "synchronize"}
COMMENT_SIGNALS = {
    "pr:comment:added": ("comment", "IGNORED"),
    "pr:comment:edited": ("comment", "IGNORED"),
    "pr:comment:deleted": ("dismissed", "REJECTED"),
}

_FIELDS = Fields("Bitbucket DC")


def verify(headers: Mapping[str, str], body: bytes, secrets: Sequence[bytes]) -> bool:
    """Whether ``X-Hub-Signature`` (``sha256=<hex>``) signs ``body`` with an active secret."""
    return prefixed_hmac_matches(secrets, body, header(headers, SIGNATURE_HEADER))


def timestamp_ms(headers: Mapping[str, str], body: bytes) -> int | None:
    """The body's ``date`` (when the event happened, e.g. ``2017-09-19T09:58:11+1000``)."""
    payload = load_object_or_none(body)
    return iso_to_ms(payload.get("date")) if payload else None


def parse(headers: Mapping[str, str], body: bytes, *, tenant: str) -> Normalized:
    """The PR to review or the feedback in one Bitbucket DC delivery."""
    payload = load_object(body, "Bitbucket DC")
    delivery_id = header(headers, DELIVERY_HEADER) or body_digest(body)
    event = header(headers, EVENT_HEADER) or _FIELDS.text(payload, "eventKey")
    if event in PR_ACTIONS:
        return reviewable(delivery_id, _ref(payload, PR_ACTIONS[event], tenant))
    if event in COMMENT_SIGNALS:
        signal, verdict = COMMENT_SIGNALS[event]
        return feedback(delivery_id, _comment(payload, signal, verdict))
    return ignored(delivery_id, f"Bitbucket DC event {event!r} is not acted on")


def _ref(payload: dict[str, Any], action: str, tenant: str) -> PullRequestRef:
    pull = _FIELDS.obj(payload, "pullRequest")
    where = "pullRequest."
    number = _FIELDS.number(pull, "id", where)
    project_key, slug = _repo_parts(pull)
    author = _FIELDS.obj(_FIELDS.obj(pull, "author", where), "user", where + "author.")
    return PullRequestRef(
        tenant=tenant,
        repo=f"{project_key}/{slug}",
        pr_number=number,
        action=action,
        head_sha=_latest_commit(pull, "fromRef"),
        base_sha=_latest_commit(pull, "toRef"),
        title=_FIELDS.text(pull, "title", where, allow_empty=True),
        author=_FIELDS.text(author, "name", where + "author.user."),
        api_url=_base_url(pull)
        + f"/rest/api/1.0/projects/{project_key}/repos/{slug}/pull-requests/{number}",
    )


def _comment(payload: dict[str, Any], signal: str, verdict: str) -> FeedbackSignal:
    comment = _FIELDS.obj(payload, "comment")
    parent_id = payload.get("commentParentId")
    if signal == "comment" and isinstance(parent_id, int):
        signal = "reply"
    comment_id = _FIELDS.number(comment, "id", "comment.")
    project_key, slug = _repo_parts(_FIELDS.obj(payload, "pullRequest"))
    text = comment.get("text")
    return FeedbackSignal(
        repo=f"{project_key}/{slug}",
        pr_number=_FIELDS.number(_FIELDS.obj(payload, "pullRequest"), "id", "pullRequest."),
        signal=signal,
        verdict=verdict,
        actor=_FIELDS.text(_FIELDS.obj(payload, "actor"), "name", "actor."),
        comment_id=str(comment_id),
        body_excerpt=excerpt(text if isinstance(text, str) else None),
        thread_id=str(parent_id if isinstance(parent_id, int) else comment_id),
    )


def _repo_parts(pull: dict[str, Any]) -> tuple[str, str]:
    """``(project key, repo slug)`` of the target repository, where the PR lives."""
    where = "pullRequest.toRef.repository."
    to_ref = _FIELDS.obj(pull, "toRef", "pullRequest.")
    repository = _FIELDS.obj(to_ref, "repository", "pullRequest.toRef.")
    project = _FIELDS.obj(repository, "project", where)
    return (
        _FIELDS.text(project, "key", where + "project."),
        _FIELDS.text(repository, "slug", where),
    )


def _latest_commit(pull: dict[str, Any], side: str) -> str:
    ref = _FIELDS.obj(pull, side, "pullRequest.")
    return _FIELDS.text(ref, "latestCommit", f"pullRequest.{side}.")


def _base_url(pull: dict[str, Any]) -> str:
    """The server's base URL from the PR's self link, or ``""`` when none is given."""
    links = pull.get("links")
    selves = links.get("self") if isinstance(links, dict) else None
    if isinstance(selves, list):
        for link in selves:
            href = link.get("href") if isinstance(link, dict) else None
            if isinstance(href, str) and "/projects/" in href:
                return href.split("/projects/", 1)[0]
    return ""
