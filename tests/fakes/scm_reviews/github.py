"""A local GitHub that keeps pull request reviews, review threads and check runs in memory.

REST shapes follow GitHub's REST docs ("Pull request reviews", "Pull request
review comments", "Issue comments", "Check runs"); ``/graphql`` answers just
the ``pullRequest { reviewThreads ... comments ... }`` query and the
``resolveReviewThread`` / ``minimizeComment`` mutations, reading the query
text with regular expressions. As GitHub does, a review whose comment lies
outside the diff is refused whole with 422 and nothing is stored; a
multi-line comment must start and end in one hunk. Lists are paged with a
``Link: rel="next"`` header, at most ``page_size`` items a page (GraphQL
connections too), so tests can force several pages.

Served at the API root (``base_url`` = ``fake.url``), GraphQL at ``/graphql``.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from processors.diff import FileDiff, parse_diff
from processors.publishing import fingerprint_in
from tests.fakes.scm_reviews.base import FakeReviewServer

DOCS = "https://docs.github.com/rest"
_USER = {"login": "codereview[bot]", "id": 1, "type": "Bot"}
_ANNOTATIONS_PER_REQUEST = 50


@dataclass
class _Pull:
    head_sha: str
    files: list[FileDiff]
    lines: dict[str, dict[int, int]]  # head path -> right-side line -> hunk index
    reviews: list[dict[str, Any]] = field(default_factory=list)
    comments: list[dict[str, Any]] = field(default_factory=list)
    threads: list[dict[str, Any]] = field(default_factory=list)
    issue_comments: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class FakeGitHubReviews(FakeReviewServer):
    """GitHub's review, comment, GraphQL and check-run endpoints over in-memory PRs."""

    page_size: int = 100
    pulls: dict[tuple[str, int], _Pull] = field(default_factory=dict)
    runs: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    _last_id: int = 1000

    # -- helpers for tests -------------------------------------------------

    def add_pull(self, repo: str, number: int, diff: str, head_sha: str = "") -> None:
        """Open PR ``number`` on ``repo`` showing ``diff``; ``head_sha`` checks ``commit_id``.

        Adding a PR that exists is a push: its diff changes, its reviews,
        comments and threads stay, as on GitHub.
        """
        files = parse_diff(diff)
        lines = {
            f.path: {ln: i for i, h in enumerate(f.hunks) for ln, _ in h.head_lines()}
            for f in files
            if f.status != "deleted"
        }
        pushed = _Pull(head_sha, files, lines)
        before = self.pulls.get((repo, number))
        if before is not None:
            pushed.reviews, pushed.comments = before.reviews, before.comments
            pushed.threads, pushed.issue_comments = before.threads, before.issue_comments
        self.pulls[(repo, number)] = pushed

    def comments(self, repo: str, number: int) -> list[dict[str, Any]]:
        """Every review comment (inline and file-level) as stored."""
        return copy.deepcopy(self._pull(repo, number).comments)

    def issue_comments(self, repo: str, number: int) -> list[dict[str, Any]]:
        """The PR's conversation comments (where PR-level notes go)."""
        return copy.deepcopy(self._pull(repo, number).issue_comments)

    def threads(self, repo: str, number: int) -> list[dict[str, Any]]:
        """Review threads: ``id``, ``isResolved``, ``isOutdated``, ``comment_ids``."""
        return copy.deepcopy(self._pull(repo, number).threads)

    def check_runs(self, repo: str) -> list[dict[str, Any]]:
        """Check runs as stored, each with every annotation it was sent under ``annotations``."""
        return copy.deepcopy(self.runs.get(repo, []))

    def fingerprints(self, repo: str, number: int) -> list[str]:
        """The marker of every comment of ours on the PR, repeats kept."""
        pull = self._pull(repo, number)
        bodies = [c["body"] for c in pull.comments + pull.issue_comments]
        return [fp for fp in map(fingerprint_in, bodies) if fp is not None]

    def all_comments(self) -> list[tuple[str, int, str]]:
        """(repo, number, fingerprint) of every comment of ours on every PR, repeats kept.

        A fingerprint names a finding within its repo, not its PR: the same
        code flagged in two PRs is two comments, one per PR.
        """
        return [
            (repo, number, fp)
            for repo, number in list(self.pulls)
            for fp in self.fingerprints(repo, number)
        ]

    def _pull(self, repo: str, number: int) -> _Pull:
        return self.pulls[(repo, number)]

    # -- routes --------------------------------------------------------------

    def routes(self, app: web.Application) -> None:
        pulls = "/repos/{owner}/{name}/pulls/{number:\\d+}"
        app.router.add_post(pulls + "/reviews", self._create_review)
        app.router.add_get(pulls + "/reviews/{review:\\d+}/comments", self._review_comments)
        app.router.add_get(pulls + "/comments", self._list_comments)
        app.router.add_post(pulls + "/comments", self._create_comment)
        app.router.add_get(pulls + "/files", self._list_files)
        issues = "/repos/{owner}/{name}/issues/{number:\\d+}/comments"
        app.router.add_get(issues, self._list_issue_comments)
        app.router.add_post(issues, self._create_issue_comment)
        app.router.add_post("/repos/{owner}/{name}/check-runs", self._create_run)
        app.router.add_patch("/repos/{owner}/{name}/check-runs/{run:\\d+}", self._update_run)
        app.router.add_post("/graphql", self._graphql)

    def _found(self, request: web.Request) -> _Pull | None:
        info = request.match_info
        return self.pulls.get((f"{info['owner']}/{info['name']}", int(info["number"])))

    def _new_id(self) -> int:
        self._last_id += 1
        return self._last_id

    async def _create_review(self, request: web.Request) -> web.StreamResponse:
        pull = self._found(request)
        if pull is None:
            return _not_found()
        payload = await request.json()
        if pull.head_sha and payload.get("commit_id", pull.head_sha) != pull.head_sha:
            return _unprocessable(["commit_id is not part of the pull request"])
        items = payload.get("comments") or []
        if payload.get("event") == "COMMENT" and not payload.get("body") and not items:
            return _unprocessable(["Review body can't be blank"])
        if any(not _on_diff(pull, item) for item in items):
            return _unprocessable(["Line could not be resolved"])
        review_id = self._new_id()
        commit = str(payload.get("commit_id") or pull.head_sha)
        review: dict[str, Any] = {
            "id": review_id,
            "node_id": f"PRR_kw{review_id}",
            "user": _USER,
            "body": payload.get("body") or "",
            "state": "COMMENTED",
            "commit_id": commit,
            "submitted_at": "2024-01-01T00:00:00Z",
        }
        pull.reviews.append(review)
        for item in items:
            self._store_comment(pull, item, review_id, commit, "line")
        return web.json_response(review)

    def _store_comment(
        self, pull: _Pull, item: dict[str, Any], review_id: int, commit: str, subject: str
    ) -> dict[str, Any]:
        comment_id = self._new_id()
        line = item.get("line") if subject == "line" else None
        comment = {
            "id": comment_id,
            "node_id": f"PRRC_kw{comment_id}",
            "pull_request_review_id": review_id,
            "path": item["path"],
            "commit_id": commit,
            "original_commit_id": commit,
            "user": _USER,
            "body": item["body"],
            "subject_type": subject,
            "line": line,
            "original_line": line,
            "side": item.get("side", "RIGHT") if line else None,
            "start_line": item.get("start_line") if line else None,
            "start_side": item.get("start_side") if line and item.get("start_line") else None,
            "created_at": "2024-01-01T00:00:00Z",
        }
        pull.comments.append(comment)
        thread_id = f"PRRT_kw{comment_id}"
        pull.threads.append(
            {
                "id": thread_id,
                "isResolved": False,
                "isOutdated": False,
                "subjectType": subject.upper(),
                "comment_ids": [comment_id],
            }
        )
        return comment

    async def _review_comments(self, request: web.Request) -> web.StreamResponse:
        pull = self._found(request)
        if pull is None:
            return _not_found()
        review = int(request.match_info["review"])
        return self._page(
            request, [c for c in pull.comments if c["pull_request_review_id"] == review]
        )

    async def _list_comments(self, request: web.Request) -> web.StreamResponse:
        pull = self._found(request)
        return _not_found() if pull is None else self._page(request, pull.comments)

    async def _create_comment(self, request: web.Request) -> web.StreamResponse:
        pull = self._found(request)
        if pull is None:
            return _not_found()
        payload = await request.json()
        subject = payload.get("subject_type") or "line"
        if subject == "file":
            if not any(f.path == payload.get("path") for f in pull.files):
                return _unprocessable(
                    [{"resource": "PullRequestReviewComment", "code": "invalid", "field": "path"}],
                    message="Validation Failed",
                )
        elif not _on_diff(pull, payload):
            return _unprocessable(["Line could not be resolved"])
        commit = payload.get("commit_id") or pull.head_sha
        return web.json_response(
            self._store_comment(pull, payload, self._new_id(), commit, subject), status=201
        )

    async def _list_files(self, request: web.Request) -> web.StreamResponse:
        pull = self._found(request)
        if pull is None:
            return _not_found()
        return self._page(request, [_file_entry(f) for f in pull.files])

    async def _list_issue_comments(self, request: web.Request) -> web.StreamResponse:
        pull = self._found(request)
        return _not_found() if pull is None else self._page(request, pull.issue_comments)

    async def _create_issue_comment(self, request: web.Request) -> web.StreamResponse:
        pull = self._found(request)
        if pull is None:
            return _not_found()
        payload = await request.json()
        comment_id = self._new_id()
        comment = {
            "id": comment_id,
            "node_id": f"IC_kw{comment_id}",
            "user": _USER,
            "body": payload["body"],
            "isMinimized": False,
            "created_at": "2024-01-01T00:00:00Z",
        }
        pull.issue_comments.append(comment)
        return web.json_response(comment, status=201)

    async def _create_run(self, request: web.Request) -> web.StreamResponse:
        payload = await request.json()
        output = payload.get("output") or {}
        if len(output.get("annotations") or []) > _ANNOTATIONS_PER_REQUEST:
            return _unprocessable(["Only 50 annotations are allowed per request"])
        run_id = self._new_id()
        run = {
            "id": run_id,
            "name": payload["name"],
            "head_sha": payload["head_sha"],
            "status": payload.get("status", "queued"),
            "conclusion": payload.get("conclusion"),
            "output": {"title": output.get("title"), "summary": output.get("summary")},
            "annotations": list(output.get("annotations") or []),
        }
        repo = f"{request.match_info['owner']}/{request.match_info['name']}"
        self.runs.setdefault(repo, []).append(run)
        return web.json_response(_run_view(run), status=201)

    async def _update_run(self, request: web.Request) -> web.StreamResponse:
        repo = f"{request.match_info['owner']}/{request.match_info['name']}"
        run_id = int(request.match_info["run"])
        run = next((r for r in self.runs.get(repo, []) if r["id"] == run_id), None)
        if run is None:
            return _not_found()
        payload = await request.json()
        output = payload.get("output") or {}
        if len(output.get("annotations") or []) > _ANNOTATIONS_PER_REQUEST:
            return _unprocessable(["Only 50 annotations are allowed per request"])
        for key in ("name", "status", "conclusion"):
            if key in payload:
                run[key] = payload[key]
        if output:
            run["output"] = {"title": output.get("title"), "summary": output.get("summary")}
            run["annotations"].extend(output.get("annotations") or [])
        return web.json_response(_run_view(run))

    async def _graphql(self, request: web.Request) -> web.StreamResponse:
        payload = await request.json()
        query = str(payload.get("query", ""))
        variables = payload.get("variables") or {}
        if "resolveReviewThread" in query:
            return self._resolve_thread(_argument(query, "threadId", variables))
        if "minimizeComment" in query:
            return self._minimize(_argument(query, "subjectId", variables))
        if "pullRequest" in query:
            return self._pull_request(query, variables)
        return web.json_response({"errors": [{"message": "unsupported query"}]})

    def _resolve_thread(self, thread_id: str) -> web.StreamResponse:
        for pull in self.pulls.values():
            for thread in pull.threads:
                if thread["id"] == thread_id:
                    thread["isResolved"] = True
                    result = {"thread": {"id": thread_id, "isResolved": True}}
                    return web.json_response({"data": {"resolveReviewThread": result}})
        return _graphql_not_found("resolveReviewThread", thread_id)

    def _minimize(self, subject_id: str) -> web.StreamResponse:
        for pull in self.pulls.values():
            for comment in pull.issue_comments:
                if comment["node_id"] == subject_id:
                    comment["isMinimized"] = True
                    result = {"minimizedComment": {"isMinimized": True}}
                    return web.json_response({"data": {"minimizeComment": result}})
        return _graphql_not_found("minimizeComment", subject_id)

    def _pull_request(self, query: str, variables: dict[str, Any]) -> web.StreamResponse:
        owner = _argument(query, "owner", variables)
        name = _argument(query, "name", variables)
        number = int(_argument(query, "number", variables) or 0)
        pull = self.pulls.get((f"{owner}/{name}", number))
        if pull is None:
            error = {
                "type": "NOT_FOUND",
                "path": ["repository", "pullRequest"],
                "message": f"Could not resolve to a PullRequest with the number of {number}.",
            }
            return web.json_response(
                {"data": {"repository": {"pullRequest": None}}, "errors": [error]}
            )
        by_id = {c["id"]: c for c in pull.comments}
        answer: dict[str, Any] = {}
        top = _top_level(_selection(query, "pullRequest"))
        for alias, field_name, args in _FIELD.findall(top):
            if field_name == "reviewThreads":
                nodes = [_thread_node(t, by_id) for t in pull.threads]
            elif field_name == "comments":
                nodes = [
                    {
                        "id": c["node_id"],
                        "databaseId": c["id"],
                        "body": c["body"],
                        "isMinimized": c["isMinimized"],
                    }
                    for c in pull.issue_comments
                ]
            else:
                continue
            answer[alias or field_name] = self._connection(nodes, args, variables)
        return web.json_response({"data": {"repository": {"pullRequest": answer}}})

    def _connection(
        self, nodes: list[dict[str, Any]], args: str, variables: dict[str, Any]
    ) -> dict[str, Any]:
        first = re.search(r"first:\s*(\d+)", args)
        size = min(int(first.group(1)) if first else 100, self.page_size)
        after_match = re.search(r"after:\s*(\$\w+|\"[^\"]*\"|null)", args)
        after = None
        if after_match:
            raw = after_match.group(1)
            after = variables.get(raw[1:]) if raw.startswith("$") else raw.strip('"')
            after = None if after in (None, "null") else after
        start = int(after) if after else 0
        page = nodes[start : start + size]
        more = start + size < len(nodes)
        info = {"hasNextPage": more, "endCursor": str(start + len(page)) if page else None}
        return {"pageInfo": info, "nodes": page}

    def _page(self, request: web.Request, items: list[dict[str, Any]]) -> web.StreamResponse:
        per_page = min(int(request.query.get("per_page", "30")), self.page_size)
        page = int(request.query.get("page", "1"))
        start = (page - 1) * per_page
        headers = {}
        if start + per_page < len(items):
            following = request.url.update_query(page=page + 1, per_page=per_page)
            headers["Link"] = f'<{following}>; rel="next"'
        return web.json_response(copy.deepcopy(items[start : start + per_page]), headers=headers)


_FIELD = re.compile(r"(?:(\w+)\s*:\s*)?\b(reviewThreads|comments)\s*\(([^)]*)\)")


def _on_diff(pull: _Pull, item: dict[str, Any]) -> bool:
    """Whether GitHub can place ``item``: right side, line (and start line) in one hunk."""
    lines = pull.lines.get(item.get("path", ""), {})
    line = item.get("line")
    if item.get("side", "RIGHT") != "RIGHT" or line not in lines:
        return False
    start = item.get("start_line")
    if start is None:
        return True
    return (
        item.get("start_side", "RIGHT") == "RIGHT"
        and start < line
        and lines.get(start) == lines[line]
    )


def _thread_node(thread: dict[str, Any], by_id: dict[int, dict[str, Any]]) -> dict[str, Any]:
    first = by_id[thread["comment_ids"][0]]
    return {
        "id": thread["id"],
        "isResolved": thread["isResolved"],
        "isOutdated": thread["isOutdated"],
        "subjectType": thread["subjectType"],
        "path": first["path"],
        "comments": {"nodes": [{"databaseId": first["id"], "body": first["body"]}]},
    }


def _file_entry(diff: FileDiff) -> dict[str, Any]:
    status = {"deleted": "removed"}.get(diff.status, diff.status)
    entry: dict[str, Any] = {
        "filename": diff.path,
        "status": status,
        "additions": sum(1 for h in diff.hunks for ln in h.lines if ln.startswith("+")),
        "deletions": sum(1 for h in diff.hunks for ln in h.lines if ln.startswith("-")),
    }
    entry["changes"] = entry["additions"] + entry["deletions"]
    if diff.hunks:
        entry["patch"] = "\n".join(
            f"@@ -{h.old_start},{h.old_len} +{h.new_start},{h.new_len} @@\n"
            + "\n".join(ln.rstrip("\n") for ln in h.lines)
            for h in diff.hunks
        )
    if diff.status == "renamed" and diff.old_path:
        entry["previous_filename"] = diff.old_path
    return entry


def _run_view(run: dict[str, Any]) -> dict[str, Any]:
    view = {k: v for k, v in run.items() if k != "annotations"}
    view["output"] = {**run["output"], "annotations_count": len(run["annotations"])}
    return view


def _argument(query: str, name: str, variables: dict[str, Any]) -> str:
    """An argument's value in the query text: a literal, or the variable it names."""
    match = re.search(rf"\b{name}:\s*(\$\w+|\"[^\"]*\"|\d+)", query)
    if match is None:
        return str(variables.get(name, ""))
    raw = match.group(1)
    if raw.startswith("$"):
        return str(variables.get(raw[1:], ""))
    return raw.strip('"')


def _selection(query: str, field_name: str) -> str:
    """The text between the braces that follow ``field_name(...)``."""
    start = query.find("{", query.find(field_name))
    depth = 0
    for index in range(start, len(query)):
        depth += {"{": 1, "}": -1}.get(query[index], 0)
        if depth == 0:
            return query[start + 1 : index]
    return query[start + 1 :]


def _top_level(selection: str) -> str:
    """``selection`` with every nested ``{...}`` removed: only its own fields remain."""
    kept: list[str] = []
    depth = 0
    for char in selection:
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
        elif depth == 0:
            kept.append(char)
    return "".join(kept)


def _not_found() -> web.StreamResponse:
    return web.json_response({"message": "Not Found", "documentation_url": DOCS}, status=404)


def _unprocessable(errors: list[Any], message: str = "Unprocessable Entity") -> web.StreamResponse:
    body = {"message": message, "errors": errors, "documentation_url": DOCS, "status": "422"}
    return web.json_response(body, status=422)


def _graphql_not_found(field_name: str, node_id: str) -> web.StreamResponse:
    error = {
        "type": "NOT_FOUND",
        "path": [field_name],
        "message": f"Could not resolve to a node with the global id of '{node_id}'",
    }
    return web.json_response({"data": {field_name: None}, "errors": [error]})
