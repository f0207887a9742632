"""Findings as pull request review comments on Gitea and Forgejo (REST API ``/api/v1``).

``post`` reads the PR's diff once (``/pulls/{index}.diff``, the read
client's endpoint) and sends one review (``POST /pulls/{index}/reviews``,
event ``COMMENT``) with every comment whose line the diff shows, anchored
as ``new_position`` on the last line of the finding's range the diff shows.
The diff has to be read first because Gitea does not refuse a bad line
cleanly: a line inside the file but outside the diff is accepted and then
never shows in the diff view, and a line past the file's end fails the
whole call with a 500 after the earlier comments were stored in a pending
review (``CreatePullReview`` creates the comments one by one). A finding
with no line in the diff becomes a PR comment instead
(``POST /issues/{index}/comments``) naming its file and lines, one per
finding so each can be resolved on its own. Bodies, and so markers, are
posted verbatim.

``existing`` pages through the reviews, reads the comments of each review
that has any (the review's body and author cannot tell ours: markers do),
and pages through the PR's comments for the fallbacks. A review comment is
resolved when its ``resolver`` is set (resolved in the UI, or by us).

``resolve``: Gitea added ``POST /pulls/{index}/comments/{id}/resolve`` in
2026 (go-gitea/gitea#36441); older Gitea and Forgejo have no API to resolve
a conversation (it is a web-UI route only). So the endpoint is tried first
and, when the server does not know it (404/405, remembered per publisher),
the comment's body is edited (``PATCH /issues/comments/{id}``, which edits
review comments too) to start with ``OUTDATED_PREFIX``, keeping the
marker; that prefix reads back as resolved. PR-level fallbacks are always
edited that way. Either way a second call sees it resolved and does nothing.

``base_url`` is the server root; ``pr.repo`` is ``owner/name``; the token
goes in ``Authorization: token ...`` as in ``sources.gitea_api``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

from processors.diff import parse_diff
from processors.publishing import Comment, fingerprint_in
from schemas.errors import ProcessorError
from sinks.scm.base import PostedComment, PullRequestTarget, RestPublisher
from sources.gitea_api import auth_headers
from sources.github_api import SourceFetchError

OUTDATED_PREFIX = "~~Outdated~~: the flagged code is gone.\n\n"
PAGE_LIMIT = 50
NO_SUCH_ROUTE = (404, 405)

# path -> head lines the diff shows (context and added lines of its hunks)
Commentable = dict[str, set[int]]


class GiteaPublisher(RestPublisher):
    """Posts, finds and resolves our comments on Gitea or Forgejo pull requests."""

    source = "gitea"

    def __init__(self, base_url: str, token: str, **options: Any) -> None:
        super().__init__(base_url, token, **options)
        self._resolve_api: bool | None = None  # unknown until the server answers once

    def endpoint(self, base_url: str, token: str) -> tuple[str, dict[str, str]]:
        return base_url, auth_headers(token)

    async def existing(self, pr: PullRequestTarget) -> dict[str, PostedComment]:
        """Our review comments and PR-comment fallbacks on ``pr``, by fingerprint."""
        found: dict[str, PostedComment] = {}
        async for comment in self.http.paginate(
            f"{_pull(pr, 'issues')}/comments", params={"limit": PAGE_LIMIT}
        ):
            posted = _posted(comment, thread_id="", on_file=True)
            if posted is not None:
                found.setdefault(posted.fingerprint, posted)
        async for review in self.http.paginate(
            f"{_pull(pr)}/reviews", params={"limit": PAGE_LIMIT}
        ):
            if not isinstance(review, dict) or review.get("state") == "PENDING":
                continue  # a pending review shows nothing to anyone but its author
            if not review.get("comments_count"):
                continue
            for comment in await self._review_comments(pr, review["id"]):
                posted = _posted(comment, thread_id=str(review["id"]), on_file=False)
                if posted is not None:
                    found[posted.fingerprint] = posted
        return found

    async def post(
        self, pr: PullRequestTarget, comments: Sequence[Comment]
    ) -> dict[str, PostedComment]:
        """One review for the comments the diff shows; one PR comment per other finding."""
        if not comments:
            return {}
        commentable = await self._commentable(pr)
        inline: list[tuple[Comment, int]] = []
        elsewhere: list[Comment] = []
        for comment in comments:
            line = _anchor(comment, commentable.get(comment.path, set()))
            if line is None:
                elsewhere.append(comment)
            else:
                inline.append((comment, line))
        posted: dict[str, PostedComment] = {}
        if inline:
            response = await self.http.send(
                "POST",
                f"{_pull(pr)}/reviews",
                json_body={
                    "commit_id": pr.head_sha,
                    "event": "COMMENT",
                    "body": "",
                    "comments": [
                        {"path": c.path, "body": c.body, "new_position": line} for c, line in inline
                    ],
                },
            )
            review_id = response.json()["id"]
            for comment in await self._review_comments(pr, review_id):
                found = _posted(comment, thread_id=str(review_id), on_file=False)
                if found is not None:
                    posted[found.fingerprint] = found
        for comment in elsewhere:
            response = await self.http.send(
                "POST", f"{_pull(pr, 'issues')}/comments", json_body={"body": _note(comment)}
            )
            created = response.json()
            posted[comment.fingerprint] = PostedComment(
                comment.fingerprint, str(created["id"]), on_file=True
            )
        return posted

    async def resolve(self, pr: PullRequestTarget, posted: PostedComment) -> None:
        """Resolve the conversation (newer Gitea) or mark the comment outdated in its body."""
        current = await self._current(pr, posted)
        if current is None or _resolved(current):
            return
        if not posted.on_file and self._resolve_api is not False:
            try:
                await self.http.send(
                    "POST",
                    f"{_pull(pr)}/comments/{posted.comment_id}/resolve",
                    idempotent=True,
                )
            except SourceFetchError as exc:
                if exc.status not in NO_SUCH_ROUTE:
                    raise
                self._resolve_api = False
            else:
                self._resolve_api = True
                return
        await self.http.send(
            "PATCH",
            f"/api/v1/repos/{_repo(pr)}/issues/comments/{posted.comment_id}",
            json_body={"body": OUTDATED_PREFIX + str(current.get("body", ""))},
            idempotent=True,
        )

    async def _commentable(self, pr: PullRequestTarget) -> Commentable:
        response = await self.http.get(f"{_pull(pr)}.diff", accept="text/plain")
        try:
            files = parse_diff(response.text())
        except ProcessorError as exc:
            raise SourceFetchError(
                f"unreadable PR diff: {exc}", status=None, retryable=False
            ) from exc
        return {f.path: f.shown_lines for f in files if f.status != "deleted"}

    async def _review_comments(self, pr: PullRequestTarget, review_id: Any) -> list[Any]:
        response = await self.http.get(f"{_pull(pr)}/reviews/{review_id}/comments")
        body = response.json()
        if not isinstance(body, list):
            raise SourceFetchError("review comments are not a list", status=None, retryable=False)
        return body

    async def _current(self, pr: PullRequestTarget, posted: PostedComment) -> dict[str, Any] | None:
        """The comment as the server has it now; None when it is gone."""
        if posted.on_file:
            response = await self.http.get(
                f"/api/v1/repos/{_repo(pr)}/issues/comments/{posted.comment_id}", missing_ok=True
            )
            return None if response.status == 404 else response.json()
        for comment in await self._review_comments(pr, posted.thread_id):
            if isinstance(comment, dict) and str(comment.get("id")) == posted.comment_id:
                return comment
        return None


def _repo(pr: PullRequestTarget) -> str:
    return quote(pr.repo, safe="/")


def _pull(pr: PullRequestTarget, kind: str = "pulls") -> str:
    return f"/api/v1/repos/{_repo(pr)}/{kind}/{pr.number}"


def _anchor(comment: Comment, shown: set[int]) -> int | None:
    """The last line of the comment's range the diff shows, or None."""
    for line in range(comment.end_line, comment.start_line - 1, -1):
        if line in shown:
            return line
    return None


def _note(comment: Comment) -> str:
    lines = (
        f"line {comment.start_line}"
        if comment.end_line == comment.start_line
        else f"lines {comment.start_line}-{comment.end_line}"
    )
    return f"`{comment.path}` {lines} (outside this pull request's diff):\n\n{comment.body}"


def _resolved(comment: dict[str, Any]) -> bool:
    return comment.get("resolver") is not None or str(comment.get("body", "")).startswith(
        OUTDATED_PREFIX
    )


def _posted(comment: Any, *, thread_id: str, on_file: bool) -> PostedComment | None:
    if not isinstance(comment, dict):
        return None
    fingerprint = fingerprint_in(comment.get("body"))
    if fingerprint is None:
        return None
    return PostedComment(
        fingerprint,
        str(comment["id"]),
        thread_id=thread_id,
        resolved=_resolved(comment),
        on_file=on_file,
    )


class ForgejoPublisher(GiteaPublisher):
    """Forgejo: Gitea's API, under its own source name."""

    source = "forgejo"
