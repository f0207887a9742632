"""Bitbucket Cloud (2.0) and Data Center (1.0) pull request comments, in memory.

Both fakes take a PR's unified diff in ``add_pull`` and work out from it
(``processors.diff.parse_diff``) which head lines a comment may be anchored
on: the right-side lines of every hunk, ``ADDED`` or ``CONTEXT``. A comment
anchored elsewhere is refused the way the real server refuses an anchor it
cannot place (Cloud: 400 with its ``{"type": "error"}`` body; DC: 400 with
its ``{"errors": [...]}`` body, or ``outside_status`` to model a server that
answers 409). Answers follow the vendors' documented shapes: Cloud's paged
``values``/``next`` and ``resolution`` object, DC's ``activities`` pages
(``isLastPage``/``nextPageStart``, newest first) and comment ``version``.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from processors.diff import parse_diff
from tests.fakes.scm_reviews.base import FakeReviewServer

BOT = {"display_name": "codereview", "type": "user"}
DC_BOT = {"name": "codereview", "displayName": "codereview", "type": "NORMAL"}


@dataclass
class ReviewPull:
    """One PR: where comments may go, and the comments it has (oldest first)."""

    lines: dict[tuple[str, int], str]
    files: set[str]
    diff: str
    comments: list[dict[str, Any]] = field(default_factory=list)
    activities: list[dict[str, Any]] = field(default_factory=list)


def commentable(diff: str) -> tuple[dict[tuple[str, int], str], set[str]]:
    """``{(path, head line): "ADDED"|"CONTEXT"}`` for every hunk line, and the PR's files."""
    lines: dict[tuple[str, int], str] = {}
    files: set[str] = set()
    for file_diff in parse_diff(diff):
        if file_diff.status == "deleted":
            continue
        files.add(file_diff.path)
        added = set(file_diff.added_lines)
        for number in sorted(file_diff.shown_lines):
            lines[(file_diff.path, number)] = "ADDED" if number in added else "CONTEXT"
    return lines, files


@dataclass
class FakeBitbucketCloudReviews(FakeReviewServer):
    """``/2.0/repositories/{workspace}/{slug}/pullrequests/{id}/comments`` and resolve."""

    page_size: int = 100
    pulls: dict[tuple[str, int], ReviewPull] = field(default_factory=dict)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1001))

    def add_pull(self, repo: str, number: int, diff: str) -> None:
        lines, files = commentable(diff)
        self.pulls[(repo, number)] = ReviewPull(lines, files, diff)

    def comments(self, repo: str, number: int) -> list[dict[str, Any]]:
        return self.pulls[(repo, number)].comments

    def comment(self, repo: str, number: int, comment_id: int | str) -> dict[str, Any]:
        return next(c for c in self.comments(repo, number) if str(c["id"]) == str(comment_id))

    def add_comment(
        self, repo: str, number: int, raw: str, *, parent: int | None = None
    ) -> dict[str, Any]:
        """A comment by somebody else (a reply when ``parent`` is given)."""
        stored = self._store(self.pulls[(repo, number)], {"content": {"raw": raw}})
        stored["user"] = {"display_name": "someone", "type": "user"}
        if parent is not None:
            stored["parent"] = {"id": parent}
        return stored

    def routes(self, app: web.Application) -> None:
        base = "/2.0/repositories/{workspace}/{slug}/pullrequests/{number:\\d+}/comments"
        app.router.add_get(base, self._list)
        app.router.add_post(base, self._create)
        app.router.add_post(base + "/{comment_id:\\d+}/resolve", self._resolve)

    def _pull(self, request: web.Request) -> ReviewPull:
        info = request.match_info
        key = (f"{info['workspace']}/{info['slug']}", int(info["number"]))
        if key not in self.pulls:
            raise web.HTTPNotFound(
                text='{"type": "error", "error": {"message": "No such pull request"}}',
                content_type="application/json",
            )
        return self.pulls[key]

    async def _list(self, request: web.Request) -> web.Response:
        pull = self._pull(request)
        pagelen = min(int(request.query.get("pagelen", "10")), self.page_size)
        page = int(request.query.get("page", "1"))
        values = pull.comments[(page - 1) * pagelen : page * pagelen]
        body: dict[str, Any] = {
            "pagelen": pagelen,
            "size": len(pull.comments),
            "page": page,
            "values": values,
        }
        if page * pagelen < len(pull.comments):
            body["next"] = str(request.url.with_query({"pagelen": pagelen, "page": page + 1}))
        return web.json_response(body)

    async def _create(self, request: web.Request) -> web.Response:
        pull = self._pull(request)
        body = await request.json()
        raw = (body.get("content") or {}).get("raw")
        if not isinstance(raw, str) or not raw:
            return _cloud_error("content.raw: this field is required")
        inline = body.get("inline")
        if inline is not None:
            path = inline.get("path")
            if path not in pull.files:
                return _cloud_error(f"inline.path: {path} is not part of this pull request")
            line = inline.get("to")
            if line is not None and (path, line) not in pull.lines:
                return _cloud_error(f"inline.to: line {line} is not in the diff of {path}")
        stored = self._store(pull, {"content": {"raw": raw}, "inline": inline})
        return web.json_response(stored, status=201)

    async def _resolve(self, request: web.Request) -> web.Response:
        pull = self._pull(request)
        found = [c for c in pull.comments if str(c["id"]) == request.match_info["comment_id"]]
        if not found:
            raise web.HTTPNotFound()
        comment = found[0]
        if comment.get("resolution"):
            return _cloud_error("Comment thread is already resolved", status=409)
        comment["resolution"] = {
            "type": "comment_resolution",
            "user": BOT,
            "created_on": "2024-01-01T00:00:00+00:00",
        }
        return web.json_response(comment["resolution"])

    def _store(self, pull: ReviewPull, fields: dict[str, Any]) -> dict[str, Any]:
        comment_id = next(self._ids)
        stored: dict[str, Any] = {
            "type": "pullrequest_comment",
            "id": comment_id,
            "content": {"raw": fields["content"]["raw"], "markup": "markdown", "html": ""},
            "user": BOT,
            "deleted": False,
            "created_on": "2024-01-01T00:00:00+00:00",
            "links": {"self": {"href": f"{self.url}/comments/{comment_id}"}},
        }
        if fields.get("inline"):
            stored["inline"] = {"from": None, **fields["inline"]}
        pull.comments.append(stored)
        return stored


def _cloud_error(message: str, *, status: int = 400) -> web.Response:
    return web.json_response({"type": "error", "error": {"message": message}}, status=status)


@dataclass
class FakeBitbucketDcReviews(FakeReviewServer):
    """``/rest/api/1.0/projects/{key}/repos/{slug}/pull-requests/{id}``: diff and comments."""

    page_size: int = 25
    outside_status: int = 400
    pulls: dict[tuple[str, int], ReviewPull] = field(default_factory=dict)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(501))

    def add_pull(self, repo: str, number: int, diff: str) -> None:
        lines, files = commentable(diff)
        pull = ReviewPull(lines, files, diff)
        pull.activities.append(
            {"id": next(self._ids), "createdDate": 0, "user": DC_BOT, "action": "OPENED"}
        )
        self.pulls[(repo, number)] = pull

    def comments(self, repo: str, number: int) -> list[dict[str, Any]]:
        """Root comments, oldest first."""
        return self.pulls[(repo, number)].comments

    def comment(self, repo: str, number: int, comment_id: int | str) -> dict[str, Any]:
        return next(c for c in self.comments(repo, number) if str(c["id"]) == str(comment_id))

    def add_reply(self, repo: str, number: int, parent_id: int, text: str) -> dict[str, Any]:
        """A reply by somebody else, nested in its parent and listed as a REPLIED activity."""
        pull = self.pulls[(repo, number)]
        reply = _dc_comment(next(self._ids), text, None)
        reply["author"] = {"name": "someone", "displayName": "Someone", "type": "NORMAL"}
        self.comment(repo, number, parent_id)["comments"].append(reply)
        pull.activities.append(_dc_activity(next(self._ids), "REPLIED", reply))
        return reply

    def routes(self, app: web.Application) -> None:
        base = "/rest/api/1.0/projects/{project}/repos/{slug}/pull-requests/{number:\\d+}"
        app.router.add_get(base + ".diff", self._diff)
        app.router.add_get(base + "/activities", self._activities)
        app.router.add_post(base + "/comments", self._create)
        app.router.add_get(base + "/comments/{comment_id:\\d+}", self._get_comment)
        app.router.add_put(base + "/comments/{comment_id:\\d+}", self._update)

    def _pull(self, request: web.Request) -> ReviewPull:
        info = request.match_info
        key = (f"{info['project']}/{info['slug']}", int(info["number"]))
        if key not in self.pulls:
            raise web.HTTPNotFound(
                text='{"errors": [{"message": "Pull request does not exist"}]}',
                content_type="application/json",
            )
        return self.pulls[key]

    async def _diff(self, request: web.Request) -> web.Response:
        return web.Response(text=self._pull(request).diff, content_type="text/plain")

    async def _activities(self, request: web.Request) -> web.Response:
        newest_first = list(reversed(self._pull(request).activities))
        start = int(request.query.get("start", "0"))
        limit = min(int(request.query.get("limit", "25")), self.page_size)
        values = newest_first[start : start + limit]
        last = start + limit >= len(newest_first)
        body: dict[str, Any] = {
            "size": len(values),
            "limit": limit,
            "start": start,
            "isLastPage": last,
            "values": values,
        }
        if not last:
            body["nextPageStart"] = start + limit
        return web.json_response(body)

    async def _create(self, request: web.Request) -> web.Response:
        pull = self._pull(request)
        body = await request.json()
        text = body.get("text")
        if not isinstance(text, str) or not text:
            return _dc_error("text", "A comment must have text", status=400)
        anchor = body.get("anchor")
        if anchor is not None:
            refusal = self._refuse_anchor(pull, anchor)
            if refusal is not None:
                return refusal
        comment = _dc_comment(next(self._ids), text, anchor)
        pull.comments.append(comment)
        pull.activities.append(_dc_activity(next(self._ids), "ADDED", comment))
        return web.json_response(comment, status=201)

    def _refuse_anchor(self, pull: ReviewPull, anchor: dict[str, Any]) -> web.Response | None:
        path = anchor.get("path")
        if path not in pull.files:
            return _dc_error("anchor.path", f"{path} is not changed in this pull request")
        if "line" not in anchor:
            return None
        kind = pull.lines.get((path, anchor["line"]))
        if kind is None or anchor.get("lineType") != kind or anchor.get("fileType") != "TO":
            return _dc_error(
                "anchor.line",
                f"line {anchor['line']} ({anchor.get('lineType')}) is not in the diff of {path}",
                status=self.outside_status,
            )
        return None

    async def _get_comment(self, request: web.Request) -> web.Response:
        pull = self._pull(request)
        return web.json_response(self._find(pull, request.match_info["comment_id"]))

    async def _update(self, request: web.Request) -> web.Response:
        pull = self._pull(request)
        comment = self._find(pull, request.match_info["comment_id"])
        body = await request.json()
        if body.get("version") != comment["version"]:
            return _dc_error(
                None,
                f"You are attempting to modify a comment based on out-of-date information "
                f"(version {body.get('version')}, current {comment['version']})",
                status=409,
                exception="com.atlassian.bitbucket.comment.CommentOutOfDateException",
            )
        if "text" in body:
            comment["text"] = body["text"]
        if "threadResolved" in body:
            comment["threadResolved"] = bool(body["threadResolved"])
        if body.get("state") in ("OPEN", "RESOLVED"):
            comment["state"] = body["state"]
        comment["version"] += 1
        return web.json_response(comment)

    def _find(self, pull: ReviewPull, comment_id: str) -> dict[str, Any]:
        for comment in pull.comments:
            if str(comment["id"]) == comment_id:
                return comment
        raise web.HTTPNotFound(
            text='{"errors": [{"message": "Comment does not exist"}]}',
            content_type="application/json",
        )

    def bump_version(self, repo: str, number: int, comment_id: int | str) -> None:
        """Somebody else edited the comment: the version a reader saw is stale."""
        self.comment(repo, number, comment_id)["version"] += 1


def _dc_comment(comment_id: int, text: str, anchor: dict[str, Any] | None) -> dict[str, Any]:
    comment: dict[str, Any] = {
        "id": comment_id,
        "version": 0,
        "text": text,
        "author": DC_BOT,
        "createdDate": 0,
        "updatedDate": 0,
        "comments": [],
        "severity": "NORMAL",
        "state": "OPEN",
        "threadResolved": False,
    }
    if anchor is not None:
        comment["anchor"] = {"diffType": "EFFECTIVE", "orphaned": False, **anchor}
    return comment


def _dc_activity(activity_id: int, action: str, comment: dict[str, Any]) -> dict[str, Any]:
    activity: dict[str, Any] = {
        "id": activity_id,
        "createdDate": 0,
        "user": comment["author"],
        "action": "COMMENTED",
        "commentAction": action,
        "comment": comment,
    }
    if "anchor" in comment:
        activity["commentAnchor"] = comment["anchor"]
    return activity


def _dc_error(
    context: str | None,
    message: str,
    *,
    status: int = 400,
    exception: str = "com.atlassian.bitbucket.validation.ArgumentValidationException",
) -> web.Response:
    return web.json_response(
        {"errors": [{"context": context, "message": message, "exceptionName": exception}]},
        status=status,
    )
