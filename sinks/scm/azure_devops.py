"""Findings as pull request threads on Azure DevOps (Azure Repos, Git REST API 7.1).

Each finding is one thread (``POST .../pullRequests/{id}/threads``) whose
first comment is the body, verbatim, anchored on the right (head) side of
the file from ``start_line`` to ``end_line``. Azure has no batch call for
threads. Azure accepts a line outside the iteration's diff (the thread shows
in the file view), but refuses a position it cannot place, such as a line
past the end of the file or a path it does not know, with a 400; the
finding then falls back to a file-level thread (``threadContext`` with only
``filePath``), then to a PR-level thread (no ``threadContext``).

Azure has no one-click suggestion, so the agent's body is posted as is.
Threads carry their own status: ``fixed``, ``closed``, ``wontFix`` and
``byDesign`` mean resolved; ``resolve`` sets ``fixed``, a state, so sending
it twice is harmless.

``base_url`` is the organization URL (``https://dev.azure.com/<org>``);
``pr.repo`` is ``<project>/<repository>``; a personal access token is sent
as HTTP basic with an empty user name, as in ``sources.azure_devops_api``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

from processors.publishing import Comment, fingerprint_in
from sinks.scm.base import PostedComment, PullRequestTarget, RestPublisher
from sources.azure_devops_api import auth_headers
from sources.github_api import SourceFetchError

API_VERSION = "7.1"
NOT_PLACEABLE = 400
RESOLVED_STATUSES = frozenset({"fixed", "closed", "wontFix", "byDesign"})
COMMENT_TYPE_TEXT = 1


class AzureDevOpsPublisher(RestPublisher):
    """Posts, finds and resolves our threads on Azure DevOps pull requests."""

    source = "azure-devops"

    def endpoint(self, base_url: str, token: str) -> tuple[str, dict[str, str]]:
        return base_url, auth_headers(token)

    async def existing(self, pr: PullRequestTarget) -> dict[str, PostedComment]:
        """Every thread of ours on ``pr``, by fingerprint, read from its first comment.

        Only the thread's first comment counts: a reply quoting our text is
        somebody else's. Deleted threads are skipped.
        """
        found: dict[str, PostedComment] = {}
        async for thread in self.http.paginate(
            _threads_path(pr), params={"api-version": API_VERSION}
        ):
            if not isinstance(thread, dict) or thread.get("isDeleted"):
                continue
            comments = thread.get("comments")
            first = _first_comment(comments) if isinstance(comments, list) else None
            if first is None:
                continue
            fingerprint = fingerprint_in(first.get("content"))
            if fingerprint is None or fingerprint in found:
                continue
            context = thread.get("threadContext")
            on_file = not isinstance(context, dict) or not context.get("rightFileStart")
            found[fingerprint] = PostedComment(
                fingerprint=fingerprint,
                comment_id=str(first.get("id", "")),
                thread_id=str(thread.get("id", "")),
                resolved=thread.get("status") in RESOLVED_STATUSES,
                on_file=on_file,
            )
        return found

    async def post(
        self, pr: PullRequestTarget, comments: Sequence[Comment]
    ) -> dict[str, PostedComment]:
        """One thread per finding: on its lines, else on its file, else on the PR."""
        posted: dict[str, PostedComment] = {}
        for comment in comments:
            posted[comment.fingerprint] = await self._post_one(pr, comment)
        return posted

    async def resolve(self, pr: PullRequestTarget, posted: PostedComment) -> None:
        """Set the thread's status to ``fixed`` (a state, so idempotent)."""
        await self.http.send(
            "PATCH",
            f"{_threads_path(pr)}/{quote(posted.thread_id, safe='')}",
            params={"api-version": API_VERSION},
            json_body={"status": "fixed"},
            idempotent=True,
        )

    async def _post_one(self, pr: PullRequestTarget, comment: Comment) -> PostedComment:
        file_path = "/" + comment.path.lstrip("/")
        contexts: list[dict[str, Any] | None] = [
            {
                "filePath": file_path,
                "rightFileStart": {"line": comment.start_line, "offset": 1},
                "rightFileEnd": {"line": max(comment.end_line, comment.start_line), "offset": 1},
            },
            {"filePath": file_path},
            None,
        ]
        for index, context in enumerate(contexts):
            body: dict[str, Any] = {
                "comments": [
                    {
                        "parentCommentId": 0,
                        "content": comment.body,
                        "commentType": COMMENT_TYPE_TEXT,
                    }
                ],
                "status": "active",
            }
            if context is not None:
                body["threadContext"] = context
            try:
                response = await self.http.send(
                    "POST", _threads_path(pr), params={"api-version": API_VERSION}, json_body=body
                )
            except SourceFetchError as exc:
                if exc.status == NOT_PLACEABLE and context is not None:
                    continue
                raise
            thread = response.json()
            created = thread.get("comments") or [{}]
            return PostedComment(
                fingerprint=comment.fingerprint,
                comment_id=str(created[0].get("id", "")),
                thread_id=str(thread.get("id", "")),
                on_file=index > 0,
            )
        raise AssertionError("unreachable: the PR-level thread returns or raises")


def _first_comment(comments: list[Any]) -> dict[str, Any] | None:
    """The thread's opening comment (no parent), not a reply."""
    for item in comments:
        if isinstance(item, dict) and not item.get("parentCommentId"):
            return item
    return None


def _threads_path(pr: PullRequestTarget) -> str:
    project, _, name = pr.repo.partition("/")
    return (
        f"/{quote(project, safe='')}/_apis/git/repositories/{quote(name, safe='')}"
        f"/pullRequests/{pr.number}/threads"
    )
