"""Azure DevOps pull request threads (Git REST API 7.1), in memory, under one organization.

``add_pull`` takes the PR's unified diff; the files it changes are the paths
a thread may name, and each file's length (given, or the last head line the
diff shows) bounds the lines. Azure accepts a thread on any line of a file,
inside the iteration's diff or not, so the fake refuses only what Azure
cannot place: a line past the end of the file or an unknown path, with 400
and Azure's error body (``typeKey``, ``message``). Threads come back as in
the API reference (``id``, ``status``, ``threadContext`` with
``rightFileStart``/``rightFileEnd``, ``comments`` with ``parentCommentId``)
in a ``{"value": [...], "count": n}`` list. The list is not paged by the
real API; with ``page_size`` set the fake pages it with the
``x-ms-continuationtoken`` header Azure uses on its paged lists, so the
client's continuation handling is exercised too.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from processors.diff import parse_diff
from tests.fakes.scm_reviews.base import FakeReviewServer

ORGANIZATION = "org"
API_VERSION = "7.1"
AUTHOR = {"displayName": "codereview", "uniqueName": "codereview@example.com"}


@dataclass
class AzurePull:
    """One PR: its files with their lengths, and its threads (oldest first)."""

    file_lengths: dict[str, int]
    threads: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class FakeAzureDevOpsReviews(FakeReviewServer):
    """``/{org}/{project}/_apis/git/repositories/{repo}/pullRequests/{id}/threads``."""

    page_size: int = 0
    pulls: dict[tuple[str, int], AzurePull] = field(default_factory=dict)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(71))

    @property
    def org_url(self) -> str:
        """The organization URL, what the publisher takes as ``base_url``."""
        return f"{self.url}/{ORGANIZATION}"

    def add_pull(
        self, repo: str, number: int, diff: str, *, file_lengths: dict[str, int] | None = None
    ) -> None:
        lengths: dict[str, int] = {}
        for file_diff in parse_diff(diff):
            if file_diff.status == "deleted":
                continue
            lengths[file_diff.path] = max(file_diff.shown_lines, default=0)
        lengths.update(file_lengths or {})
        self.pulls[(repo, number)] = AzurePull(lengths)

    def threads(self, repo: str, number: int) -> list[dict[str, Any]]:
        return self.pulls[(repo, number)].threads

    def thread(self, repo: str, number: int, thread_id: int | str) -> dict[str, Any]:
        return next(t for t in self.threads(repo, number) if str(t["id"]) == str(thread_id))

    def add_reply(self, repo: str, number: int, thread_id: int | str, content: str) -> None:
        """A reply by somebody else in an existing thread."""
        comments = self.thread(repo, number, thread_id)["comments"]
        comments.append(
            {
                "id": len(comments) + 1,
                "parentCommentId": 1,
                "author": {"displayName": "Someone"},
                "content": content,
                "commentType": "text",
            }
        )

    def routes(self, app: web.Application) -> None:
        base = (
            f"/{ORGANIZATION}/{{project}}/_apis/git/repositories/{{repo}}"
            "/pullRequests/{number:\\d+}/threads"
        )
        app.router.add_get(base, self._list)
        app.router.add_post(base, self._create)
        app.router.add_patch(base + "/{thread_id:\\d+}", self._update)

    def _pull(self, request: web.Request) -> AzurePull:
        if request.query.get("api-version") != API_VERSION:
            raise web.HTTPBadRequest(
                text='{"message": "The api-version query parameter is required"}',
                content_type="application/json",
            )
        info = request.match_info
        key = (f"{info['project']}/{info['repo']}", int(info["number"]))
        if key not in self.pulls:
            raise web.HTTPNotFound(
                text='{"message": "The requested pull request was not found."}',
                content_type="application/json",
            )
        return self.pulls[key]

    async def _list(self, request: web.Request) -> web.Response:
        threads = self._pull(request).threads
        start = int(request.query.get("continuationToken", "0"))
        size = self.page_size or len(threads) or 1
        values = threads[start : start + size]
        headers = {}
        if start + size < len(threads):
            headers["x-ms-continuationtoken"] = str(start + size)
        return web.json_response({"value": values, "count": len(values)}, headers=headers)

    async def _create(self, request: web.Request) -> web.Response:
        pull = self._pull(request)
        body = await request.json()
        comments = body.get("comments")
        if not isinstance(comments, list) or not comments or not comments[0].get("content"):
            return _error("comments", "A thread needs a first comment with content")
        context = body.get("threadContext")
        if context is not None:
            refusal = _refuse_context(pull, context)
            if refusal is not None:
                return refusal
        thread: dict[str, Any] = {
            "id": next(self._ids),
            "publishedDate": "2024-01-01T00:00:00Z",
            "lastUpdatedDate": "2024-01-01T00:00:00Z",
            "comments": [
                {
                    "id": index + 1,
                    "parentCommentId": item.get("parentCommentId", 0),
                    "author": AUTHOR,
                    "content": item["content"],
                    "commentType": "text" if item.get("commentType", 1) == 1 else "system",
                }
                for index, item in enumerate(comments)
            ],
            "status": body.get("status", "active"),
            "threadContext": context,
            "properties": {},
            "isDeleted": False,
        }
        pull.threads.append(thread)
        return web.json_response(thread)

    async def _update(self, request: web.Request) -> web.Response:
        pull = self._pull(request)
        found = [t for t in pull.threads if str(t["id"]) == request.match_info["thread_id"]]
        if not found:
            raise web.HTTPNotFound(
                text='{"message": "The requested thread was not found."}',
                content_type="application/json",
            )
        body = await request.json()
        if "status" in body:
            found[0]["status"] = body["status"]
        return web.json_response(found[0])


def _refuse_context(pull: AzurePull, context: dict[str, Any]) -> web.Response | None:
    path = str(context.get("filePath", ""))
    length = pull.file_lengths.get(path.lstrip("/")) if path.startswith("/") else None
    if length is None:
        return _error("threadContext.filePath", f"{path} is not part of this pull request")
    for side in ("rightFileStart", "rightFileEnd"):
        position = context.get(side)
        if position is None:
            continue
        line = position.get("line", 0)
        if not 1 <= line <= length:
            return _error(f"threadContext.{side}", f"line {line} is past the end of {path}")
    return None


def _error(name: str, message: str) -> web.Response:
    return web.json_response(
        {
            "$id": "1",
            "innerException": None,
            "message": f"{message} (parameter: {name})",
            "typeName": "Microsoft.TeamFoundation.SourceControl.WebServer."
            "InvalidArgumentValueException, Microsoft.TeamFoundation.SourceControl.WebServer",
            "typeKey": "InvalidArgumentValueException",
            "errorCode": 0,
            "eventId": 3000,
        },
        status=400,
    )
