"""Gerrit events (``stream-events`` JSON, as POSTed by the webhooks plugin).

Auth: Gerrit does not sign webhook bodies, so we require a shared secret in
``X-Gerrit-Secret`` (set as a header by the plugin's remote config or by the
proxy in front of us) and compare it in constant time. Gerrit sends no
delivery id, so ``delivery_id`` is a digest of the body; the time of the
event is ``eventCreatedOn`` (epoch seconds).

A change is the PR: ``pr_number`` is the change number, ``head_sha`` the
patch set's revision, ``base_sha`` its first parent. Patch sets that change
no code (``NO_CODE_CHANGE``, ``NO_CHANGE``) are not reviewed again.
``comment-added`` carries no comment id, so ``comment_id`` is
``<change>/<patch set>@<eventCreatedOn>``.
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
    header,
    load_object,
    load_object_or_none,
    token_matches,
)

SECRET_HEADER = "X-Gerrit-Secret"
SKIPPED_KINDS = frozenset({"NO_CODE_CHANGE", "NO_CHANGE"})

_FIELDS = Fields("Gerrit")


def verify(headers: Mapping[str, str], body: bytes, secrets: Sequence[bytes]) -> bool:
    """Whether ``X-Gerrit-Secret`` is one of the active secrets (``body`` is unsigned)."""
    return token_matches(secrets, header(headers, SECRET_HEADER))


def timestamp_ms(headers: Mapping[str, str], body: bytes) -> int | None:
    """``eventCreatedOn`` (epoch seconds) in ms, or ``None``."""
    payload = load_object_or_none(body)
    seconds = payload.get("eventCreatedOn") if payload else None
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        return None
    return int(seconds * 1000)


def parse(headers: Mapping[str, str], body: bytes, *, tenant: str) -> Normalized:
    """The change to review or the feedback in one Gerrit event."""
    payload = load_object(body, "Gerrit")
    delivery_id = body_digest(body)
    event = _FIELDS.text(payload, "type")
    if event == "patchset-created":
        return _patchset(payload, delivery_id, tenant)
    if event == "comment-added":
        return feedback(delivery_id, _comment(payload))
    return ignored(delivery_id, f"Gerrit event {event!r} is not acted on")


def _patchset(payload: dict[str, Any], delivery_id: str, tenant: str) -> Normalized:
    change = _FIELDS.obj(payload, "change")
    patch_set = _FIELDS.obj(payload, "patchSet")
    kind = _FIELDS.optional_text(patch_set, "kind")
    if kind in SKIPPED_KINDS:
        return ignored(delivery_id, f"Gerrit patch set of kind {kind} changes no code")
    number = _FIELDS.number(change, "number", "change.")
    project = _FIELDS.text(change, "project", "change.")
    parents = patch_set.get("parents")
    owner = _FIELDS.obj(change, "owner", "change.")
    return reviewable(
        delivery_id,
        PullRequestRef(
            tenant=tenant,
            repo=project,
            pr_number=number,
            action="opened" if patch_set.get("number") == 1 else "synchronize",
            head_sha=_FIELDS.text(patch_set, "revision", "patchSet."),
            base_sha=parents[0] if isinstance(parents, list) and parents else "",
            title=_FIELDS.text(change, "subject", "change.", allow_empty=True),
            author=_account(owner, "change.owner."),
            api_url=_api_url(_FIELDS.text(change, "url", "change."), project, number),
        ),
    )


def _comment(payload: dict[str, Any]) -> FeedbackSignal:
    change = _FIELDS.obj(payload, "change")
    number = _FIELDS.number(change, "number", "change.")
    patch_set = payload.get("patchSet")
    patch_number = patch_set.get("number") if isinstance(patch_set, dict) else None
    created = payload.get("eventCreatedOn")
    return FeedbackSignal(
        repo=_FIELDS.text(change, "project", "change."),
        pr_number=number,
        signal="comment",
        verdict="IGNORED",
        actor=_account(_FIELDS.obj(payload, "author"), "author."),
        comment_id=f"{number}/{patch_number}@{created}",
        body_excerpt=excerpt(_FIELDS.text(payload, "comment", allow_empty=True)),
        thread_id=str(number),
    )


def _account(account: dict[str, Any], where: str) -> str:
    """The account's username, else its email, else its name."""
    for name in ("username", "email", "name"):
        value = account.get(name)
        if isinstance(value, str) and value:
            return value
    return _FIELDS.text(account, "username", where)


def _api_url(web_url: str, project: str, number: int) -> str:
    """The REST URL of the change (``/changes/<project>~<number>``) from its web URL."""
    base = web_url.split("/c/", 1)[0] if "/c/" in web_url else web_url.rstrip("/").rsplit("/", 1)[0]
    return f"{base}/changes/{quote(project, safe='')}~{number}"
