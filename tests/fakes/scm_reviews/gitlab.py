"""A local GitLab that keeps merge request discussions in memory.

Shapes follow GitLab's REST API v4 docs ("Merge requests": get a single MR
with ``diff_refs``, MR versions, MR diffs; "Discussions": list, create,
resolve a merge request thread). A ``text`` position is placed as GitLab
does: the head line must be in the diff, an unchanged (context) line needs
its ``old_line`` as well, an added line must not carry one, the paths and the
three SHAs must match an MR version; anything else is the 400 GitLab answers
(``line_code can't be blank``). A ``file`` position needs the file in the
MR. A discussion without a position is always accepted. Lists are paged
(``page``/``per_page``, ``Link: rel="next"`` and ``X-Next-Page``), at most
``page_size`` items a page.

Served at the server root (``base_url`` = ``fake.url``).
"""

from __future__ import annotations

import copy
import hashlib
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from processors.diff import FileDiff, parse_diff
from processors.publishing import fingerprint_in
from tests.fakes.scm_reviews.base import FakeReviewServer

_AUTHOR = {"id": 1, "username": "codereview-bot", "name": "codereview"}
_LINE_CODE = '400 Bad request - Note {:line_code=>["can\'t be blank", "must be a valid line code"]}'


@dataclass
class _MergeRequest:
    iid: int
    files: list[FileDiff]
    lines: dict[str, dict[int, int | None]]  # head path -> head line -> base line (None: added)
    old_paths: dict[str, str]
    versions: list[dict[str, Any]] = field(default_factory=list)  # newest first
    discussions: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class FakeGitLabReviews(FakeReviewServer):
    """GitLab's merge request and discussion endpoints over in-memory MRs."""

    page_size: int = 100
    merge_requests: dict[tuple[str, int], _MergeRequest] = field(default_factory=dict)
    _last_id: int = 500

    # -- helpers for tests -------------------------------------------------

    def add_merge_request(
        self, repo: str, iid: int, diff: str, head_sha: str, base_sha: str, start_sha: str = ""
    ) -> None:
        """Open MR ``iid`` of project ``repo`` at ``head_sha``; again = a push (a new version)."""
        files = parse_diff(diff)
        lines = {f.path: _line_map(f) for f in files if f.status != "deleted"}
        old_paths = {f.path: f.old_path or f.path for f in files}
        previous = self.merge_requests.get((repo, iid))
        merge_request = _MergeRequest(iid, files, lines, old_paths)
        if previous is not None:
            merge_request.versions = previous.versions
            merge_request.discussions = previous.discussions
        version_id = self._new_id()
        merge_request.versions.insert(
            0,
            {
                "id": version_id,
                "head_commit_sha": head_sha,
                "base_commit_sha": base_sha,
                "start_commit_sha": start_sha or base_sha,
                "created_at": "2024-01-01T00:00:00.000Z",
                "merge_request_id": iid,
                "state": "collected",
                "real_size": str(len(files)),
            },
        )
        self.merge_requests[(repo, iid)] = merge_request

    def add_note(self, repo: str, iid: int, body: str) -> str:
        """An individual (not resolvable) note, as ``POST /notes`` makes; its discussion id."""
        discussion = self._discussion(self.merge_requests[(repo, iid)], body, None)
        discussion["individual_note"] = True
        discussion["notes"][0]["resolvable"] = False
        return str(discussion["id"])

    def discussions(self, repo: str, iid: int) -> list[dict[str, Any]]:
        """Every discussion of the MR as stored (GitLab's shape)."""
        return copy.deepcopy(self.merge_requests[(repo, iid)].discussions)

    def fingerprints(self, repo: str, iid: int) -> list[str]:
        """The marker of every note of ours on the MR, repeats kept."""
        notes = [n for d in self.merge_requests[(repo, iid)].discussions for n in d["notes"]]
        return [fp for fp in (fingerprint_in(n["body"]) for n in notes) if fp is not None]

    # -- routes --------------------------------------------------------------

    def routes(self, app: web.Application) -> None:
        mr = "/api/v4/projects/{project}/merge_requests/{iid:\\d+}"
        app.router.add_get(mr, self._get_merge_request)
        app.router.add_get(mr + "/versions", self._list_versions)
        app.router.add_get(mr + "/diffs", self._list_diffs)
        app.router.add_get(mr + "/discussions", self._list_discussions)
        app.router.add_post(mr + "/discussions", self._create_discussion)
        app.router.add_get(mr + "/discussions/{discussion}", self._get_discussion)
        app.router.add_put(mr + "/discussions/{discussion}", self._resolve_discussion)

    def _found(self, request: web.Request) -> _MergeRequest | None:
        key = (request.match_info["project"], int(request.match_info["iid"]))
        return self.merge_requests.get(key)

    def _new_id(self) -> int:
        self._last_id += 1
        return self._last_id

    async def _get_merge_request(self, request: web.Request) -> web.StreamResponse:
        merge_request = self._found(request)
        if merge_request is None:
            return _not_found()
        latest = merge_request.versions[0]
        return web.json_response(
            {
                "id": merge_request.iid + 10_000,
                "iid": merge_request.iid,
                "project_id": 1,
                "state": "opened",
                "sha": latest["head_commit_sha"],
                "diff_refs": {
                    "base_sha": latest["base_commit_sha"],
                    "head_sha": latest["head_commit_sha"],
                    "start_sha": latest["start_commit_sha"],
                },
            }
        )

    async def _list_versions(self, request: web.Request) -> web.StreamResponse:
        merge_request = self._found(request)
        return (
            _not_found() if merge_request is None else self._page(request, merge_request.versions)
        )

    async def _list_diffs(self, request: web.Request) -> web.StreamResponse:
        merge_request = self._found(request)
        if merge_request is None:
            return _not_found()
        return self._page(request, [_diff_entry(f) for f in merge_request.files])

    async def _list_discussions(self, request: web.Request) -> web.StreamResponse:
        merge_request = self._found(request)
        if merge_request is None:
            return _not_found()
        return self._page(request, merge_request.discussions)

    async def _get_discussion(self, request: web.Request) -> web.StreamResponse:
        merge_request = self._found(request)
        discussion = None if merge_request is None else _by_id(merge_request, request)
        return _not_found() if discussion is None else web.json_response(discussion)

    async def _create_discussion(self, request: web.Request) -> web.StreamResponse:
        merge_request = self._found(request)
        if merge_request is None:
            return _not_found()
        payload = await request.json()
        if not payload.get("body"):
            return web.json_response({"error": "body is missing"}, status=400)
        position = payload.get("position")
        refused = None if position is None else _refusal(merge_request, position)
        if refused is not None:
            return web.json_response({"message": refused}, status=400)
        discussion = self._discussion(merge_request, payload["body"], position)
        return web.json_response(discussion, status=201)

    async def _resolve_discussion(self, request: web.Request) -> web.StreamResponse:
        merge_request = self._found(request)
        discussion = None if merge_request is None else _by_id(merge_request, request)
        if discussion is None:
            return _not_found()
        if "resolved" not in request.query:
            return web.json_response({"error": "resolved is missing"}, status=400)
        if not discussion["notes"][0]["resolvable"]:
            return web.json_response({"message": "403 Forbidden"}, status=403)
        resolved = request.query["resolved"] == "true"
        for note in discussion["notes"]:
            note["resolved"] = resolved
            note["resolved_by"] = _AUTHOR if resolved else None
        return web.json_response(discussion)

    def _discussion(
        self, merge_request: _MergeRequest, body: str, position: dict[str, Any] | None
    ) -> dict[str, Any]:
        note_id = self._new_id()
        note = {
            "id": note_id,
            "type": "DiffNote" if position else "DiscussionNote",
            "body": body,
            "attachment": None,
            "author": _AUTHOR,
            "created_at": "2024-01-01T00:00:00.000Z",
            "updated_at": "2024-01-01T00:00:00.000Z",
            "system": False,
            "noteable_id": merge_request.iid + 10_000,
            "noteable_type": "MergeRequest",
            "noteable_iid": merge_request.iid,
            "resolvable": True,
            "resolved": False,
            "resolved_by": None,
        }
        if position:
            note["position"] = {"old_line": None, "new_line": None, **position, "line_range": None}
        discussion = {
            "id": hashlib.sha1(str(note_id).encode()).hexdigest(),
            "individual_note": False,
            "notes": [note],
        }
        merge_request.discussions.append(discussion)
        return discussion

    def _page(self, request: web.Request, items: list[dict[str, Any]]) -> web.StreamResponse:
        per_page = min(int(request.query.get("per_page", "20")), self.page_size)
        page = int(request.query.get("page", "1"))
        start = (page - 1) * per_page
        headers = {"X-Page": str(page), "X-Per-Page": str(per_page), "X-Total": str(len(items))}
        if start + per_page < len(items):
            headers["X-Next-Page"] = str(page + 1)
            following = request.url.update_query(page=page + 1, per_page=per_page)
            headers["Link"] = f'<{following}>; rel="next"'
        return web.json_response(copy.deepcopy(items[start : start + per_page]), headers=headers)


def _refusal(merge_request: _MergeRequest, position: dict[str, Any]) -> str | None:
    """GitLab's 400 message for a position it cannot place, or None."""
    shas = (position.get("base_sha"), position.get("start_sha"), position.get("head_sha"))
    if not any(
        shas == (v["base_commit_sha"], v["start_commit_sha"], v["head_commit_sha"])
        for v in merge_request.versions
    ):
        return _LINE_CODE
    path = position.get("new_path")
    kind = position.get("position_type")
    if kind == "file":
        known = any(f.path == path for f in merge_request.files)
        return None if known else '400 Bad request - Note {:position=>["is invalid"]}'
    if kind != "text":
        return "400 Bad request - position[position_type] does not have a valid value"
    lines = merge_request.lines.get(str(path), {})
    new_line = position.get("new_line")
    if new_line not in lines or position.get("old_path") != merge_request.old_paths.get(str(path)):
        return _LINE_CODE
    if position.get("old_line") != lines[new_line]:
        return _LINE_CODE
    return None


def _line_map(diff: FileDiff) -> dict[int, int | None]:
    found: dict[int, int | None] = {}
    for hunk in diff.hunks:
        old = hunk.old_start if hunk.old_len else hunk.old_start + 1
        new = hunk.new_start if hunk.new_len else hunk.new_start + 1
        for text in hunk.lines:
            if text[:1] == " ":
                found[new] = old
                old, new = old + 1, new + 1
            elif text[:1] == "+":
                found[new] = None
                new += 1
            elif text[:1] == "-":
                old += 1
    return found


def _diff_entry(diff: FileDiff) -> dict[str, Any]:
    text = "".join(
        f"@@ -{h.old_start},{h.old_len} +{h.new_start},{h.new_len} @@\n"
        + "".join(ln.rstrip("\n") + "\n" for ln in h.lines)
        for h in diff.hunks
    )
    return {
        "old_path": diff.old_path or diff.path,
        "new_path": diff.path,
        "a_mode": "0" if diff.status == "added" else "100644",
        "b_mode": "0" if diff.status == "deleted" else "100644",
        "diff": text,
        "new_file": diff.status == "added",
        "renamed_file": diff.status == "renamed",
        "deleted_file": diff.status == "deleted",
        "generated_file": False,
    }


def _by_id(merge_request: _MergeRequest, request: web.Request) -> dict[str, Any] | None:
    wanted = request.match_info["discussion"]
    return next((d for d in merge_request.discussions if d["id"] == wanted), None)


def _not_found() -> web.StreamResponse:
    return web.json_response({"message": "404 Not found"}, status=404)
