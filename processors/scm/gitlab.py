"""GitLab project webhooks: Merge Request, Note and Emoji hooks.

Auth: GitLab sends the hook's secret token verbatim in ``X-Gitlab-Token``
(no signature), so it is compared in constant time with each active secret.
The delivery id is ``X-Gitlab-Event-UUID``. Actions are mapped to GitHub's
words (``opened``, ``reopened``, ``synchronize``, ``edited``) so downstream
code reads one vocabulary.

The MR hook carries no base revision; ``base_sha`` is left empty for the
fetcher to resolve from the MR's ``diff_refs``. It names the author only by
id, so ``author`` is that numeric id as text.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

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
    header,
    iso_to_ms,
    load_object,
    load_object_or_none,
    token_matches,
)

TOKEN_HEADER = "X-Gitlab-Token"
DELIVERY_HEADERS = ("X-Gitlab-Event-UUID", "Idempotency-Key")
ACCEPT_EMOJI = frozenset({"thumbsup", "+1", "white_check_mark", "heavy_check_mark"})
REJECT_EMOJI = frozenset({"thumbsdown", "-1", "x"})

_FIELDS = Fields("GitLab")


def verify(headers: Mapping[str, str], body: bytes, secrets: Sequence[bytes]) -> bool:
    """Whether ``X-Gitlab-Token`` is one of the tenant's secrets (``body`` is unsigned)."""
    return token_matches(secrets, header(headers, TOKEN_HEADER))


def timestamp_ms(headers: Mapping[str, str], body: bytes) -> int | None:
    """``object_attributes.updated_at`` (GitLab sends no delivery time), or ``None``."""
    payload = load_object_or_none(body)
    attrs = payload.get("object_attributes") if payload else None
    return iso_to_ms(attrs.get("updated_at")) if isinstance(attrs, dict) else None


def parse(headers: Mapping[str, str], body: bytes, *, tenant: str) -> Normalized:
    """The PR to review or the feedback in one GitLab delivery."""
    payload = load_object(body, "GitLab")
    delivery_id = first_header(headers, *DELIVERY_HEADERS) or body_digest(body)
    kind = _FIELDS.text(payload, "object_kind")
    if kind == "merge_request":
        return _merge_request(payload, delivery_id, tenant)
    if kind == "note":
        return _note(payload, delivery_id)
    if kind == "emoji":
        return _emoji(payload, delivery_id)
    return ignored(delivery_id, f"GitLab object_kind {kind!r} is not acted on")


def _merge_request(payload: dict[str, Any], delivery_id: str, tenant: str) -> Normalized:
    attrs = _FIELDS.obj(payload, "object_attributes")
    action = _FIELDS.optional_text(attrs, "action")
    if action == "update":
        mapped = "synchronize" if attrs.get("oldrev") else "edited"
    else:
        mapped = {"open": "opened", "reopen": "reopened"}.get(action, "")
    if not mapped:
        return ignored(delivery_id, f"GitLab merge request action {action!r} is not acted on")
    project = _FIELDS.obj(payload, "project")
    repo = _FIELDS.text(project, "path_with_namespace", "project.")
    iid = _FIELDS.number(attrs, "iid", "object_attributes.")
    last_commit = _FIELDS.obj(attrs, "last_commit", "object_attributes.")
    return reviewable(
        delivery_id,
        PullRequestRef(
            tenant=tenant,
            repo=repo,
            pr_number=iid,
            action=mapped,
            head_sha=_FIELDS.text(last_commit, "id", "object_attributes.last_commit."),
            base_sha="",
            title=_FIELDS.text(attrs, "title", "object_attributes.", allow_empty=True),
            author=str(_FIELDS.integer(attrs, "author_id", "object_attributes.")),
            api_url=_api_url(project, repo, iid),
        ),
    )


def _note(payload: dict[str, Any], delivery_id: str) -> Normalized:
    attrs = _FIELDS.obj(payload, "object_attributes")
    noteable = _FIELDS.optional_text(attrs, "noteable_type")
    if noteable != "MergeRequest":
        return ignored(delivery_id, f"GitLab note on {noteable or 'nothing'} is not on a MR")
    if _FIELDS.optional_text(attrs, "action") not in ("", "create"):
        return ignored(delivery_id, "GitLab note was edited, not created")
    return feedback(
        delivery_id,
        FeedbackSignal(
            repo=_repo(payload),
            pr_number=_FIELDS.number(
                _FIELDS.obj(payload, "merge_request"), "iid", "merge_request."
            ),
            signal="comment",
            verdict="IGNORED",
            actor=_actor(payload),
            comment_id=str(_FIELDS.number(attrs, "id", "object_attributes.")),
            body_excerpt=excerpt(_FIELDS.text(attrs, "note", "object_attributes.")),
            thread_id=_FIELDS.optional_text(attrs, "discussion_id"),
        ),
    )


def _emoji(payload: dict[str, Any], delivery_id: str) -> Normalized:
    event = _FIELDS.optional_text(payload, "event_type")
    if event != "award":
        return ignored(delivery_id, f"GitLab emoji event {event!r} is not an award")
    attrs = _FIELDS.obj(payload, "object_attributes")
    if _FIELDS.optional_text(attrs, "awardable_type") != "Note":
        return ignored(delivery_id, "GitLab emoji is not on a comment")
    merge_request = payload.get("merge_request")
    if not isinstance(merge_request, dict):
        return ignored(delivery_id, "GitLab emoji is on a comment outside a MR")
    name = _FIELDS.text(attrs, "name", "object_attributes.")
    if name in ACCEPT_EMOJI:
        verdict = "ACCEPTED"
    elif name in REJECT_EMOJI:
        verdict = "REJECTED"
    else:
        return ignored(delivery_id, f"GitLab emoji {name!r} says nothing about a finding")
    note = payload.get("note")
    text = note.get("note") if isinstance(note, dict) else None
    return feedback(
        delivery_id,
        FeedbackSignal(
            repo=_repo(payload),
            pr_number=_FIELDS.number(merge_request, "iid", "merge_request."),
            signal="reaction",
            verdict=verdict,
            actor=_actor(payload),
            comment_id=str(_FIELDS.number(attrs, "awardable_id", "object_attributes.")),
            body_excerpt=excerpt(text if isinstance(text, str) else None),
            thread_id=_FIELDS.optional_text(note, "discussion_id")
            if isinstance(note, dict)
            else "",
        ),
    )


def _repo(payload: dict[str, Any]) -> str:
    return _FIELDS.text(_FIELDS.obj(payload, "project"), "path_with_namespace", "project.")


def _actor(payload: dict[str, Any]) -> str:
    return _FIELDS.text(_FIELDS.obj(payload, "user"), "username", "user.")


def _api_url(project: dict[str, Any], repo: str, iid: int) -> str:
    """The REST URL of the MR, from the project's web URL (GitLab sends no API URL)."""
    web_url = _FIELDS.text(project, "web_url", "project.").rstrip("/")
    base = web_url[: -len(repo) - 1] if web_url.endswith("/" + repo) else web_url
    return f"{base}/api/v4/projects/{quote(repo, safe='')}/merge_requests/{iid}"
