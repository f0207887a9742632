"""A fake Gitea/Forgejo review API: reviews, review comments, PR comments, the PR diff.

Answers in Gitea's documented shapes (``PullReview``, ``PullReviewComment``,
``Comment``), pages lists with ``page``/``limit`` and a ``Link: rel="next"``
header, and models how ``CreatePullReview`` really treats lines:

- a line inside the file but outside the diff is accepted (Gitea does not
  check it) and stored with an empty ``diff_hunk``: the web UI cannot place
  it in the diff; ``outside_diff()`` lists such comments for tests;
- a line past the file's end fails ``git blame``: the call answers 500
  after the comments before it were stored in a pending review, which
  the next review of the same user then submits with its own.

Comment ids share one sequence, as Gitea's comment table does, so
``PATCH /issues/comments/{id}`` edits review comments too. The resolve
endpoint (``POST /pulls/{index}/comments/{id}/resolve``, Gitea 2026+) only
exists with ``resolve_api=True``; Forgejo and older Gitea answer 404.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from processors.diff import parse_diff
from tests.fakes.scm_reviews.base import FakeReviewServer

BOT = {"id": 7, "login": "codereview-bot", "full_name": "codereview"}
HUMAN = {"id": 8, "login": "alice", "full_name": "Alice"}
STAMP = "2024-05-01T10:00:00Z"


@dataclass
class _Pull:
    owner: str
    name: str
    index: int
    head_sha: str
    diff: str
    shown: dict[str, set[int]]
    lengths: dict[str, int]
    reviews: list[dict[str, Any]] = field(default_factory=list)
    review_comments: list[dict[str, Any]] = field(default_factory=list)
    issue_comments: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class FakeGiteaReviews(FakeReviewServer):
    """Gitea's review endpoints over in-memory pull requests."""

    page_size: int = 50
    resolve_api: bool = False
    pulls: dict[tuple[str, str, int], _Pull] = field(default_factory=dict)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(100))

    def add_pull(
        self,
        repo: str,
        index: int,
        head_sha: str,
        diff: str,
        *,
        file_lengths: dict[str, int] | None = None,
    ) -> None:
        """A PR of ``repo`` (``owner/name``) showing ``diff``; lines the diff shows are commentable.

        ``file_lengths`` bounds each head file (a line past it is a 500);
        by default a file ends at the last line the diff shows.
        """
        owner, name = repo.split("/", 1)
        shown = {file.path: file.shown_lines for file in parse_diff(diff)}
        lengths = {path: max(lines, default=0) for path, lines in shown.items()}
        lengths.update(file_lengths or {})
        self.pulls[(owner, name, index)] = _Pull(owner, name, index, head_sha, diff, shown, lengths)

    # Inspection --------------------------------------------------------------

    def pull(self, repo: str, index: int) -> _Pull:
        owner, name = repo.split("/", 1)
        return self.pulls[(owner, name, index)]

    def submitted_comments(self, repo: str, index: int) -> list[dict[str, Any]]:
        """Review comments of submitted (not pending) reviews."""
        pull = self.pull(repo, index)
        live = {r["id"] for r in pull.reviews if r["state"] != "PENDING"}
        return [c for c in pull.review_comments if c["pull_request_review_id"] in live]

    def outside_diff(self, repo: str, index: int) -> list[dict[str, Any]]:
        """Review comments Gitea accepted on a line the diff does not show."""
        return [c for c in self.submitted_comments(repo, index) if not c["diff_hunk"]]

    def resolve_in_ui(self, repo: str, index: int, comment_id: int) -> None:
        """What "Resolve conversation" in the web UI does."""
        comment = next(c for c in self.pull(repo, index).review_comments if c["id"] == comment_id)
        comment["resolver"] = HUMAN

    # Routes ------------------------------------------------------------------

    def routes(self, app: web.Application) -> None:
        repo = "/api/v1/repos/{owner}/{name}"
        pulls = repo + "/pulls/{index:\\d+}"
        app.router.add_get(pulls + ".diff", self._diff)
        app.router.add_get(pulls + "/reviews", self._list_reviews)
        app.router.add_post(pulls + "/reviews", self._create_review)
        app.router.add_get(pulls + "/reviews/{id:\\d+}/comments", self._list_review_comments)
        app.router.add_post(pulls + "/comments/{id:\\d+}/resolve", self._resolve)
        issues = repo + "/issues/{index:\\d+}/comments"
        app.router.add_get(issues, self._list_issue_comments)
        app.router.add_post(issues, self._create_issue_comment)
        app.router.add_get(repo + "/issues/comments/{id:\\d+}", self._get_comment)
        app.router.add_patch(repo + "/issues/comments/{id:\\d+}", self._edit_comment)

    def _pull_of(self, request: web.Request) -> _Pull:
        info = request.match_info
        pull = self.pulls.get((info["owner"], info["name"], int(info["index"])))
        if pull is None:
            raise _error(404, "pull request does not exist")
        return pull

    def _repo_comments(self, request: web.Request) -> list[dict[str, Any]]:
        info = request.match_info
        return [
            c
            for (owner, name, _), pull in self.pulls.items()
            if (owner, name) == (info["owner"], info["name"])
            for c in pull.review_comments + pull.issue_comments
        ]

    async def _diff(self, request: web.Request) -> web.Response:
        return web.Response(text=self._pull_of(request).diff, content_type="text/plain")

    async def _create_review(self, request: web.Request) -> web.Response:
        pull = self._pull_of(request)
        options = await request.json()
        event = options.get("event", "")
        comments = options.get("comments") or []
        if event == "COMMENT" and not str(options.get("body", "")).strip() and not comments:
            raise _error(422, f"review event {event} requires a body or a comment")
        pending = next((r for r in pull.reviews if r["state"] == "PENDING"), None)
        if pending is None:
            pending = self._review(pull, options)
            pull.reviews.append(pending)
        for item in comments:
            line = int(item.get("new_position") or 0)
            path = item.get("path", "")
            if line > pull.lengths.get(path, 0) and path in pull.lengths:
                # git blame fails past the end of the file: APIErrorInternal, pending kept.
                raise _error(
                    500,
                    f"LineBlame[{path}, {line}]: fatal: file {path} has only "
                    f"{pull.lengths[path]} lines",
                )
            pull.review_comments.append(self._review_comment(pull, pending, item, line))
        if event != "COMMENT":
            raise _error(422, f"unsupported event {event} in this fake")
        pending.update(
            state="COMMENT",
            body=options.get("body", ""),
            commit_id=options.get("commit_id") or pull.head_sha,
            comments_count=sum(
                1 for c in pull.review_comments if c["pull_request_review_id"] == pending["id"]
            ),
        )
        return web.json_response(pending)

    def _review(self, pull: _Pull, options: dict[str, Any]) -> dict[str, Any]:
        review_id = next(self._ids)
        return {
            "id": review_id,
            "user": BOT,
            "team": None,
            "state": "PENDING",
            "body": "",
            "commit_id": options.get("commit_id") or pull.head_sha,
            "stale": False,
            "official": False,
            "dismissed": False,
            "comments_count": 0,
            "submitted_at": STAMP,
            "updated_at": STAMP,
            "html_url": f"http://gitea.test/{pull.owner}/{pull.name}/pulls/{pull.index}"
            f"#issuecomment-{review_id}",
            "pull_request_url": f"http://gitea.test/{pull.owner}/{pull.name}/pulls/{pull.index}",
        }

    def _review_comment(
        self, pull: _Pull, review: dict[str, Any], item: dict[str, Any], line: int
    ) -> dict[str, Any]:
        comment_id = next(self._ids)
        path = item.get("path", "")
        shown = line in pull.shown.get(path, set())
        return {
            "id": comment_id,
            "body": item.get("body", ""),
            "user": BOT,
            "resolver": None,
            "pull_request_review_id": review["id"],
            "path": path,
            "commit_id": review["commit_id"],
            "original_commit_id": review["commit_id"],
            "diff_hunk": f"@@ -{line},1 +{line},1 @@\n+..." if shown else "",
            "position": line,
            "original_position": line,
            "created_at": STAMP,
            "updated_at": STAMP,
            "html_url": f"http://gitea.test/{pull.owner}/{pull.name}/pulls/{pull.index}"
            f"/files#issuecomment-{comment_id}",
            "pull_request_url": f"http://gitea.test/{pull.owner}/{pull.name}/pulls/{pull.index}",
        }

    async def _list_reviews(self, request: web.Request) -> web.Response:
        return self._page(request, self._pull_of(request).reviews)

    async def _list_review_comments(self, request: web.Request) -> web.Response:
        pull = self._pull_of(request)
        review_id = int(request.match_info["id"])
        if not any(r["id"] == review_id for r in pull.reviews):
            raise _error(404, "review does not exist")
        return web.json_response(
            [c for c in pull.review_comments if c["pull_request_review_id"] == review_id]
        )

    async def _resolve(self, request: web.Request) -> web.Response:
        if not self.resolve_api:
            raise web.HTTPNotFound(text="404 page not found")
        pull = self._pull_of(request)
        comment_id = int(request.match_info["id"])
        comment = next((c for c in pull.review_comments if c["id"] == comment_id), None)
        if comment is None:
            raise _error(404, "comment does not exist")
        comment["resolver"] = comment["resolver"] or BOT
        return web.json_response(comment)

    async def _list_issue_comments(self, request: web.Request) -> web.Response:
        return self._page(request, self._pull_of(request).issue_comments)

    async def _create_issue_comment(self, request: web.Request) -> web.Response:
        pull = self._pull_of(request)
        body = (await request.json()).get("body", "")
        comment_id = next(self._ids)
        comment = {
            "id": comment_id,
            "body": body,
            "user": BOT,
            "html_url": f"http://gitea.test/{pull.owner}/{pull.name}/pulls/{pull.index}"
            f"#issuecomment-{comment_id}",
            "pull_request_url": f"http://gitea.test/{pull.owner}/{pull.name}/pulls/{pull.index}",
            "issue_url": "",
            "original_author": "",
            "original_author_id": 0,
            "assets": [],
            "created_at": STAMP,
            "updated_at": STAMP,
        }
        pull.issue_comments.append(comment)
        return web.json_response(comment, status=201)

    async def _get_comment(self, request: web.Request) -> web.Response:
        comment_id = int(request.match_info["id"])
        for comment in self._repo_comments(request):
            if comment["id"] == comment_id:
                if "pull_request_review_id" in comment:
                    return web.Response(status=204)  # only plain comments are returned
                return web.json_response(comment)
        raise _error(404, "comment does not exist")

    async def _edit_comment(self, request: web.Request) -> web.Response:
        comment_id = int(request.match_info["id"])
        body = (await request.json()).get("body", "")
        for comment in self._repo_comments(request):
            if comment["id"] == comment_id:
                comment["body"] = body
                comment["updated_at"] = "2024-05-02T10:00:00Z"
                shape = {k: v for k, v in comment.items() if k != "pull_request_review_id"}
                return web.json_response(shape)
        raise _error(404, "comment does not exist")

    def _page(self, request: web.Request, items: list[dict[str, Any]]) -> web.Response:
        page = max(int(request.query.get("page", "1")), 1)
        limit = min(max(int(request.query.get("limit", str(self.page_size))), 1), self.page_size)
        start = (page - 1) * limit
        headers = {"X-Total-Count": str(len(items))}
        if start + limit < len(items):
            following = request.url.with_query({**request.query, "page": str(page + 1)})
            headers["Link"] = f'<{following}>; rel="next"'
        return web.json_response(items[start : start + limit], headers=headers)


def _error(status: int, message: str) -> web.HTTPException:
    """Gitea's APIError shape: ``{"message", "url"}``."""
    error_class = {404: web.HTTPNotFound, 422: web.HTTPUnprocessableEntity}.get(
        status, web.HTTPInternalServerError
    )
    return error_class(
        text=json.dumps({"message": message, "url": "http://gitea.test/api/swagger"}),
        content_type="application/json",
    )
