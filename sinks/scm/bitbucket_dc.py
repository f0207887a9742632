"""Findings as pull request comments on Bitbucket Data Center / Server (REST API 1.0).

Data Center has no batch review call, so each finding is one
``POST .../pull-requests/{id}/comments`` with a line ``anchor``. The anchor
must name the line's ``lineType`` (``ADDED`` or ``CONTEXT``), which the
finding does not carry, so ``post`` first reads the PR's raw diff once
(``.../pull-requests/{id}.diff``, the read client's endpoint) and anchors
each comment on the first line of its range the diff shows. A finding with
no line in the diff goes straight to a file anchor (``path`` without
``line``), then to a general comment; the server refusing an anchor anyway
(400 validation error, or 409 when the PR moved since the diff was read)
takes the same fallback. The body, and so the marker, is posted verbatim.

``existing`` reads the PR's activities (``isLastPage``/``nextPageStart``):
each ``COMMENTED``/``ADDED`` activity carries the comment as it is now, with
``threadResolved`` (8.x) or ``state == "RESOLVED"`` telling whether it was
resolved. Resolving needs the comment's current ``version``, so it is read
first; a 409 (someone edited it in between) re-reads and tries once more.

``base_url`` is the server root (with any context path); ``pr.repo`` is
``<project key>/<repo slug>``; the token is an HTTP access token (Bearer).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

from processors.diff import parse_diff
from processors.publishing import Comment, fingerprint_in
from schemas.errors import ProcessorError
from sinks.scm.base import PostedComment, PullRequestTarget, RestPublisher
from sources.bitbucket_dc_api import auth_headers
from sources.github_api import SourceFetchError

PAGE_LIMIT = 100
MAX_DIFF_BYTES = 8 * 1024 * 1024
NOT_PLACEABLE = (400, 409)
VERSION_CONFLICT = 409

# (path, line) -> "ADDED" or "CONTEXT"; None when the diff could not be read.
LineTypes = dict[tuple[str, int], str]


class BitbucketDcPublisher(RestPublisher):
    """Posts, finds and resolves our comments on Bitbucket Data Center pull requests."""

    source = "bitbucket-dc"

    def endpoint(self, base_url: str, token: str) -> tuple[str, dict[str, str]]:
        return base_url, auth_headers(token)

    async def existing(self, pr: PullRequestTarget) -> dict[str, PostedComment]:
        """Every root comment of ours on ``pr`` (all activity pages), by fingerprint.

        Only activities that added a comment count; replies (nested in
        ``comments`` or ``REPLIED`` activities) are not ours even if they quote us.
        """
        found: dict[str, PostedComment] = {}
        async for activity in self.http.paginate(
            f"{_pull_path(pr)}/activities", params={"limit": PAGE_LIMIT}
        ):
            if not isinstance(activity, dict) or activity.get("action") != "COMMENTED":
                continue
            if activity.get("commentAction") != "ADDED":
                continue
            comment = activity.get("comment")
            if not isinstance(comment, dict):
                continue
            fingerprint = fingerprint_in(comment.get("text"))
            if fingerprint is None or fingerprint in found:
                continue
            anchor = comment.get("anchor") or activity.get("commentAnchor")
            on_file = not isinstance(anchor, dict) or anchor.get("line") is None
            comment_id = str(comment.get("id", ""))
            found[fingerprint] = PostedComment(
                fingerprint=fingerprint,
                comment_id=comment_id,
                thread_id=comment_id,
                resolved=_is_resolved(comment),
                on_file=on_file,
            )
        return found

    async def post(
        self, pr: PullRequestTarget, comments: Sequence[Comment]
    ) -> dict[str, PostedComment]:
        """One comment per finding: on a diff line of its range, else its file, else the PR."""
        if not comments:
            return {}
        line_types = await self._line_types(pr)
        posted: dict[str, PostedComment] = {}
        for comment in comments:
            posted[comment.fingerprint] = await self._post_one(pr, comment, line_types)
        return posted

    async def resolve(self, pr: PullRequestTarget, posted: PostedComment) -> None:
        """Mark the comment's thread resolved; a resolved one is left alone."""
        path = f"{_pull_path(pr)}/comments/{quote(posted.thread_id or posted.comment_id, safe='')}"
        for attempt in range(2):
            current = (await self.http.get(path)).json()
            if _is_resolved(current):
                return
            try:
                await self.http.send(
                    "PUT",
                    path,
                    json_body={"version": current.get("version", 0), "threadResolved": True},
                    idempotent=True,
                )
                return
            except SourceFetchError as exc:
                if exc.status != VERSION_CONFLICT or attempt > 0:
                    raise

    async def _line_types(self, pr: PullRequestTarget) -> LineTypes | None:
        """Which head lines the PR's diff shows, and as what; None if unreadable.

        Unknown line types are not fatal: every line is then tried as
        ``ADDED`` and the server's refusal takes the fallback.
        """
        response = await self.http.get(
            f"{_pull_path(pr)}.diff", accept="text/plain", max_bytes=MAX_DIFF_BYTES
        )
        if response.too_large:
            return None
        try:
            files = parse_diff(response.text())
        except ProcessorError:
            return None
        types: LineTypes = {}
        for file_diff in files:
            if file_diff.status == "deleted":
                continue
            added = set(file_diff.added_lines)
            for hunk in file_diff.hunks:
                for line_no, _ in hunk.head_lines():
                    kind = "ADDED" if line_no in added else "CONTEXT"
                    types[(file_diff.path, line_no)] = kind
        return types

    async def _post_one(
        self, pr: PullRequestTarget, comment: Comment, line_types: LineTypes | None
    ) -> PostedComment:
        anchors: list[dict[str, Any] | None] = []
        line_anchor = _line_anchor(comment, line_types)
        if line_anchor is not None:
            anchors.append(line_anchor)
        anchors += [{"path": comment.path, "fileType": "TO"}, None]
        for anchor in anchors:
            body: dict[str, Any] = {"text": comment.body}
            if anchor is not None:
                body["anchor"] = anchor
            try:
                response = await self.http.send(
                    "POST", f"{_pull_path(pr)}/comments", json_body=body
                )
            except SourceFetchError as exc:
                if exc.status in NOT_PLACEABLE and anchor is not None:
                    continue
                raise
            comment_id = str(response.json().get("id", ""))
            return PostedComment(
                fingerprint=comment.fingerprint,
                comment_id=comment_id,
                thread_id=comment_id,
                on_file=anchor is None or "line" not in anchor,
            )
        raise AssertionError("unreachable: the general comment returns or raises")


def _line_anchor(comment: Comment, line_types: LineTypes | None) -> dict[str, Any] | None:
    """The anchor on the first line of the comment's range in the diff; None if none is."""
    line, kind = comment.start_line, "ADDED"
    if line_types is not None:
        shown = [
            (number, line_types[(comment.path, number)])
            for number in range(comment.start_line, comment.end_line + 1)
            if (comment.path, number) in line_types
        ]
        if not shown:
            return None
        line, kind = shown[0]
    return {
        "path": comment.path,
        "line": line,
        "lineType": kind,
        "fileType": "TO",
        "diffType": "EFFECTIVE",
    }


def _is_resolved(comment: Any) -> bool:
    if not isinstance(comment, dict):
        return False
    return comment.get("threadResolved") is True or comment.get("state") == "RESOLVED"


def _pull_path(pr: PullRequestTarget) -> str:
    project, _, slug = pr.repo.partition("/")
    return (
        f"/rest/api/1.0/projects/{quote(project, safe='')}/repos/{quote(slug, safe='')}"
        f"/pull-requests/{pr.number}"
    )
