"""Azure DevOps (Azure Repos) service hooks: pull request and PR comment events.

Auth: a Web Hooks subscription can send HTTP basic credentials; we check the
password of ``Authorization: Basic`` against each active secret (the user
name is free text). The event is named by the body's ``eventType``, the
delivery by the body's ``id``, and the time by the body's ``createdDate``.

The repo is ``<project name>/<repo name>``. Azure comment ids count from 1
within each thread, so ``comment_id`` is ``<thread id>/<comment id>``.
"""

from __future__ import annotations

import base64
import binascii
import re
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
    token_matches,
)

AUTH_HEADER = "Authorization"
PR_ACTIONS = {"git.pullrequest.created": "opened", "git.pullrequest.updated": "synchronize"}
COMMENT_EVENT = "ms.vss-code.git-pullrequest-comment-event"

_FIELDS = Fields("Azure DevOps")
_THREAD = re.compile(r"/threads/(\d+)")


def verify(headers: Mapping[str, str], body: bytes, secrets: Sequence[bytes]) -> bool:
    """Whether the basic-auth password is one of the active secrets (``body`` is unsigned)."""
    value = header(headers, AUTH_HEADER)
    if not value:
        return False
    scheme, _, encoded = value.partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return False
    _, colon, password = decoded.partition(":")
    return bool(colon) and token_matches(secrets, password)


def timestamp_ms(headers: Mapping[str, str], body: bytes) -> int | None:
    """The body's ``createdDate``: when the service hook notification was created."""
    payload = load_object_or_none(body)
    return iso_to_ms(payload.get("createdDate")) if payload else None


def parse(headers: Mapping[str, str], body: bytes, *, tenant: str) -> Normalized:
    """The PR to review or the feedback in one Azure DevOps notification."""
    payload = load_object(body, "Azure DevOps")
    delivery_id = _FIELDS.optional_text(payload, "id") or body_digest(body)
    event = _FIELDS.text(payload, "eventType")
    if event in PR_ACTIONS:
        pull = _FIELDS.obj(payload, "resource")
        status = _FIELDS.optional_text(pull, "status")
        if status != "active":
            return ignored(delivery_id, f"Azure DevOps PR is {status or 'of no status'}")
        return reviewable(delivery_id, _ref(pull, "resource.", PR_ACTIONS[event], tenant))
    if event == COMMENT_EVENT:
        return feedback(delivery_id, _comment(_FIELDS.obj(payload, "resource")))
    return ignored(delivery_id, f"Azure DevOps event {event!r} is not acted on")


def _ref(pull: dict[str, Any], where: str, action: str, tenant: str) -> PullRequestRef:
    return PullRequestRef(
        tenant=tenant,
        repo=_repo(pull, where),
        pr_number=_FIELDS.number(pull, "pullRequestId", where),
        action=action,
        head_sha=_commit(pull, "lastMergeSourceCommit", where),
        base_sha=_commit(pull, "lastMergeTargetCommit", where),
        title=_FIELDS.text(pull, "title", where, allow_empty=True),
        author=_person(_FIELDS.obj(pull, "createdBy", where), where + "createdBy."),
        api_url=_FIELDS.text(pull, "url", where),
    )


def _comment(resource: dict[str, Any]) -> FeedbackSignal:
    comment = _FIELDS.obj(resource, "comment", "resource.")
    pull = _FIELDS.obj(resource, "pullRequest", "resource.")
    where = "resource.comment."
    comment_id = _FIELDS.number(comment, "id", where)
    parent = comment.get("parentCommentId")
    thread = _thread_id(comment)
    content = comment.get("content")
    return FeedbackSignal(
        repo=_repo(pull, "resource.pullRequest."),
        pr_number=_FIELDS.number(pull, "pullRequestId", "resource.pullRequest."),
        signal="reply" if isinstance(parent, int) and parent > 0 else "comment",
        verdict="IGNORED",
        actor=_person(_FIELDS.obj(comment, "author", where), where + "author."),
        comment_id=f"{thread}/{comment_id}" if thread else str(comment_id),
        body_excerpt=excerpt(content if isinstance(content, str) else None),
        thread_id=thread,
    )


def _thread_id(comment: dict[str, Any]) -> str:
    """The thread id, read from the comment's ``_links`` (the payload has no field for it)."""
    for link in ("threads", "self"):
        href = nested(comment, "_links", link, "href")
        found = _THREAD.search(href) if isinstance(href, str) else None
        if found:
            return found.group(1)
    return ""


def _repo(pull: dict[str, Any], where: str) -> str:
    repository = _FIELDS.obj(pull, "repository", where)
    project = _FIELDS.obj(repository, "project", where + "repository.")
    project_name = _FIELDS.text(project, "name", where + "repository.project.")
    return f"{project_name}/{_FIELDS.text(repository, 'name', where + 'repository.')}"


def _commit(pull: dict[str, Any], name: str, where: str) -> str:
    return _FIELDS.text(_FIELDS.obj(pull, name, where), "commitId", f"{where}{name}.")


def _person(identity: dict[str, Any], where: str) -> str:
    """``uniqueName`` (the sign-in name), else the display name."""
    return _FIELDS.optional_text(identity, "uniqueName") or _FIELDS.text(
        identity, "displayName", where
    )
