"""Findings as pull request comments on Bitbucket Cloud (REST API 2.0).

Bitbucket Cloud has no review object that batches comments, so each finding
is one ``POST .../pullrequests/{id}/comments`` with an ``inline`` anchor
(``path`` and ``to``, the line in the new file). The API reference does not
document what happens for a line outside the diff; Bitbucket refuses an
inline anchor it cannot place with a 400, so a 400 on an inline comment is
read as "line not in the diff" and the finding falls back to a comment on the
file (``inline`` with only ``path``), then to a plain PR comment. Either way
the body, and so the marker, is posted verbatim, and ``existing`` finds it.

Bitbucket renders markdown but has no one-click suggestions, so the body the
agent passes is posted as is. Resolving a comment resolves its thread
(``POST .../comments/{id}/resolve``); a 409 means it already was.

``base_url`` is the API root (``https://api.bitbucket.org``); ``pr.repo`` is
``<workspace>/<repo slug>``; the token is sent as in
``sources.bitbucket_cloud_api`` (``user:app-password`` as basic, else Bearer).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

from processors.publishing import Comment, fingerprint_in
from sinks.scm.base import PostedComment, PullRequestTarget, RestPublisher
from sources.bitbucket_cloud_api import auth_headers
from sources.github_api import SourceFetchError

PAGE_LENGTH = 100
NOT_PLACEABLE = 400
ALREADY_RESOLVED = 409


class BitbucketCloudPublisher(RestPublisher):
    """Posts, finds and resolves our comments on Bitbucket Cloud pull requests."""

    source = "bitbucket-cloud"

    def endpoint(self, base_url: str, token: str) -> tuple[str, dict[str, str]]:
        return base_url, auth_headers(token)

    async def existing(self, pr: PullRequestTarget) -> dict[str, PostedComment]:
        """Every top-level comment of ours on ``pr`` (all pages), by fingerprint.

        Replies are skipped: a human quoting our comment must not count as
        the comment itself. A comment with a ``resolution`` is resolved.
        """
        found: dict[str, PostedComment] = {}
        async for item in self.http.paginate(_comments_path(pr), params={"pagelen": PAGE_LENGTH}):
            if not isinstance(item, dict) or item.get("parent"):
                continue
            content = item.get("content")
            fingerprint = fingerprint_in(content.get("raw") if isinstance(content, dict) else None)
            if fingerprint is None or fingerprint in found:
                continue
            inline = item.get("inline")
            on_file = not isinstance(inline, dict) or inline.get("to") is None
            comment_id = str(item.get("id", ""))
            found[fingerprint] = PostedComment(
                fingerprint=fingerprint,
                comment_id=comment_id,
                thread_id=comment_id,
                resolved=bool(item.get("resolution")) or bool(item.get("deleted")),
                on_file=on_file,
            )
        return found

    async def post(
        self, pr: PullRequestTarget, comments: Sequence[Comment]
    ) -> dict[str, PostedComment]:
        """One comment per finding: on its line, else on its file, else on the PR."""
        posted: dict[str, PostedComment] = {}
        for comment in comments:
            posted[comment.fingerprint] = await self._post_one(pr, comment)
        return posted

    async def resolve(self, pr: PullRequestTarget, posted: PostedComment) -> None:
        """Resolve the comment's thread; one already resolved (409) is left as it is."""
        comment_id = posted.thread_id or posted.comment_id
        try:
            await self.http.send(
                "POST",
                f"{_comments_path(pr)}/{quote(comment_id, safe='')}/resolve",
                idempotent=True,
            )
        except SourceFetchError as exc:
            if exc.status != ALREADY_RESOLVED:
                raise

    async def _post_one(self, pr: PullRequestTarget, comment: Comment) -> PostedComment:
        """Try the line, then the file, then the PR; only a 400 moves to the next."""
        anchors: list[dict[str, Any] | None] = [
            {"path": comment.path, "to": comment.start_line},
            {"path": comment.path},
            None,
        ]
        for index, inline in enumerate(anchors):
            body: dict[str, Any] = {"content": {"raw": comment.body}}
            if inline is not None:
                body["inline"] = inline
            try:
                response = await self.http.send("POST", _comments_path(pr), json_body=body)
            except SourceFetchError as exc:
                if exc.status == NOT_PLACEABLE and inline is not None:
                    continue
                raise
            comment_id = str(response.json().get("id", ""))
            return PostedComment(
                fingerprint=comment.fingerprint,
                comment_id=comment_id,
                thread_id=comment_id,
                on_file=index > 0,
            )
        raise AssertionError("unreachable: the PR-level comment returns or raises")


def _comments_path(pr: PullRequestTarget) -> str:
    workspace, _, slug = pr.repo.partition("/")
    return (
        f"/2.0/repositories/{quote(workspace, safe='')}/{quote(slug, safe='')}"
        f"/pullrequests/{pr.number}/comments"
    )
