"""A fake Gerrit review API: Set Review, comments, robot comments and change messages.

Answers as Gerrit's REST API does: JSON behind the ``)]}'`` guard, comment
maps keyed by path (``CommentInfo`` without ``path``), change messages
prefixed ``Patch Set N:``, plain-text 400s. Set Review is atomic: one invalid
comment (file not in the patch set, line past the file's end, unknown
``in_reply_to``, robot comment without ids) refuses the whole review.

``add_pull`` takes the change's unified diff; the patch set's files are the
diff's files, and every line up to the file's length is commentable (Gerrit
shows whole files), so give ``file_lengths`` for files longer than the diff
shows. Calling it again with a new ``head_sha`` adds a patch set. Served
under both ``/a/...`` (authenticated) and the anonymous root.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from processors.diff import parse_diff
from tests.fakes.scm_reviews.base import FakeReviewServer

XSSI_PREFIX = ")]}'"
BOT = {"_account_id": 1000001, "name": "codereview", "username": "codereview"}


@dataclass
class _Change:
    project: str
    number: int
    patch_sets: list[str] = field(default_factory=list)  # sha of patch set n at index n-1
    file_lengths: list[dict[str, int]] = field(default_factory=list)
    comments: list[dict[str, Any]] = field(default_factory=list)  # with "path" and "robot"
    messages: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class FakeGerritReviews(FakeReviewServer):
    """Gerrit's review endpoints over in-memory changes."""

    changes: dict[tuple[str, int], _Change] = field(default_factory=dict)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _clock: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def add_pull(
        self,
        project: str,
        number: int,
        head_sha: str,
        diff: str,
        *,
        file_lengths: dict[str, int] | None = None,
    ) -> None:
        """A change (or its next patch set) whose files are those of ``diff``."""
        lengths: dict[str, int] = {}
        for file in parse_diff(diff):
            lengths[file.path] = max(file.shown_lines, default=0)
        lengths.update(file_lengths or {})
        change = self.changes.setdefault((project, number), _Change(project, number))
        change.patch_sets.append(head_sha)
        change.file_lengths.append(lengths)

    # Inspection --------------------------------------------------------------

    def comments(self, project: str, number: int) -> list[dict[str, Any]]:
        """Every stored comment, with ``path`` and ``robot`` (True for robot comments)."""
        return list(self.changes[(project, number)].comments)

    def messages(self, project: str, number: int) -> list[dict[str, Any]]:
        return list(self.changes[(project, number)].messages)

    def unresolved(self, project: str, number: int, comment_id: str) -> bool:
        """The thread of ``comment_id`` as Gerrit shows it: its latest comment's flag."""
        change = self.changes[(project, number)]
        thread = [c for c in change.comments if self._root(change, c["id"]) == comment_id]
        return bool(max(thread, key=lambda c: c["updated"])["unresolved"])

    def reply(
        self, project: str, number: int, comment_id: str, message: str, *, done: bool
    ) -> None:
        """A person's reply ("Done" resolves the thread), as the web UI would post it."""
        change = self.changes[(project, number)]
        parent = next(c for c in change.comments if c["id"] == comment_id)
        reply = self._comment(change, parent["path"], parent["patch_set"], robot=False)
        reply.update(
            message=message,
            in_reply_to=comment_id,
            unresolved=not done,
            author={"_account_id": 1000002, "name": "Alice"},
        )
        if "line" in parent:
            reply["line"] = parent["line"]
        change.comments.append(reply)

    # Routes ------------------------------------------------------------------

    def routes(self, app: web.Application) -> None:
        for prefix in ("", "/a"):
            base = prefix + "/changes/{change}"
            app.router.add_post(base + "/revisions/{revision}/review", self._review)
            app.router.add_get(base + "/comments", self._list_comments)
            app.router.add_get(base + "/robotcomments", self._list_robot_comments)
            app.router.add_get(base + "/messages", self._messages)

    def _change(self, request: web.Request) -> _Change:
        project, _, number = request.match_info["change"].rpartition("~")
        change = self.changes.get((project, int(number))) if number.isdigit() else None
        if change is None:
            raise web.HTTPNotFound(text=f"Not found: {request.match_info['change']}")
        return change

    async def _review(self, request: web.Request) -> web.Response:
        change = self._change(request)
        revision = request.match_info["revision"]
        if revision in change.patch_sets:
            patch_set = change.patch_sets.index(revision) + 1
        elif revision.isdigit() and 1 <= int(revision) <= len(change.patch_sets):
            patch_set = int(revision)
        else:
            raise web.HTTPNotFound(text=f"Not found: {revision}")
        review = await request.json()
        problem = self._invalid(change, patch_set, review)
        if problem:
            return web.Response(status=400, text=problem, content_type="text/plain")
        created = 0
        for kind, robot in (("comments", False), ("robot_comments", True)):
            for path, items in (review.get(kind) or {}).items():
                for item in items:
                    if review.get("omit_duplicate_comments") and self._duplicate(
                        change, path, item
                    ):
                        continue
                    comment = self._comment(change, path, patch_set, robot=robot)
                    for key in ("line", "range", "in_reply_to", "robot_id", "robot_run_id"):
                        if key in item:
                            comment[key] = item[key]
                    if "properties" in item:
                        comment["properties"] = item["properties"]
                    comment["message"] = item["message"]
                    comment["unresolved"] = bool(
                        item.get("unresolved", self._parent_unresolved(change, item))
                    )
                    if review.get("tag"):
                        comment["tag"] = review["tag"]
                    change.comments.append(comment)
                    created += 1
        text = f"Patch Set {patch_set}:"
        if created:
            text += f"\n\n({created} comment{'s' if created > 1 else ''})"
        if review.get("message"):
            text += "\n\n" + review["message"]
        message = {
            "id": f"msg{next(self._ids):06d}",
            "author": BOT,
            "date": self._stamp(),
            "message": text,
            "_revision_number": patch_set,
        }
        if review.get("tag"):
            message["tag"] = review["tag"]
        change.messages.append(message)
        return _json({"labels": {}})

    def _invalid(self, change: _Change, patch_set: int, review: dict[str, Any]) -> str:
        """Gerrit's reason for refusing the review, or "" (checked before anything is stored)."""
        lengths = change.file_lengths[patch_set - 1]
        known = {c["id"] for c in change.comments}
        for kind in ("comments", "robot_comments"):
            for path, items in (review.get(kind) or {}).items():
                if path not in lengths and path != "/PATCHSET_LEVEL":
                    return f"file {path} not found in revision {change.number},{patch_set}"
                for item in items:
                    if kind == "robot_comments" and not item.get("robot_id"):
                        return f"robotId is missing for robot comment on {path}"
                    if kind == "robot_comments" and not item.get("robot_run_id"):
                        return f"robotRunId is missing for robot comment on {path}"
                    if item.get("in_reply_to") and item["in_reply_to"] not in known:
                        return f"Invalid parentUuid supplied for comment on {path}"
                    last = max(item.get("line", 0), (item.get("range") or {}).get("end_line", 0))
                    if last < 0:
                        return f"negative line number {last} not allowed on {path}"
                    if path in lengths and last > lengths[path]:
                        return (
                            f"Range (line {last}) is not valid for the comment on {path}: "
                            f"the file has {lengths[path]} lines"
                        )
        return ""

    def _duplicate(self, change: _Change, path: str, item: dict[str, Any]) -> bool:
        return any(
            c["path"] == path
            and c.get("line") == item.get("line")
            and c["message"] == item["message"]
            for c in change.comments
        )

    def _parent_unresolved(self, change: _Change, item: dict[str, Any]) -> bool:
        parent = next((c for c in change.comments if c["id"] == item.get("in_reply_to")), None)
        return bool(parent and parent["unresolved"])

    def _comment(
        self, change: _Change, path: str, patch_set: int, *, robot: bool
    ) -> dict[str, Any]:
        return {
            "id": f"c{next(self._ids):06d}",
            "path": path,
            "robot": robot,
            "patch_set": patch_set,
            "commit_id": change.patch_sets[patch_set - 1],
            "author": BOT,
            "updated": self._stamp(),
        }

    def _root(self, change: _Change, comment_id: str) -> str:
        by_id = {c["id"]: c for c in change.comments}
        while by_id.get(comment_id, {}).get("in_reply_to"):
            comment_id = by_id[comment_id]["in_reply_to"]
        return comment_id

    def _stamp(self) -> str:
        tick = next(self._clock)
        return f"2024-05-01 10:{tick // 60 % 60:02d}:{tick % 60:02d}.000000000"

    async def _list_comments(self, request: web.Request) -> web.Response:
        return _json(_by_path(c for c in self._change(request).comments if not c["robot"]))

    async def _list_robot_comments(self, request: web.Request) -> web.Response:
        return _json(_by_path(c for c in self._change(request).comments if c["robot"]))

    async def _messages(self, request: web.Request) -> web.Response:
        return _json(self._change(request).messages)


def _by_path(comments: Any) -> dict[str, list[dict[str, Any]]]:
    """Gerrit's map form: ``{path: [CommentInfo without path]}``, oldest first."""
    listing: dict[str, list[dict[str, Any]]] = {}
    for comment in comments:
        info = {k: v for k, v in comment.items() if k not in ("path", "robot")}
        listing.setdefault(comment["path"], []).append(info)
    return listing


def _json(body: Any) -> web.Response:
    return web.Response(text=XSSI_PREFIX + "\n" + json.dumps(body), content_type="application/json")
