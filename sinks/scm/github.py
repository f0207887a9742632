"""Findings on GitHub: one review per batch, threads resolved through GraphQL, a check run.

``post`` sends every inline comment of a batch in ONE review (``POST
/pulls/{n}/reviews``), so a push costs one call and notifies people once.
GitHub refuses the whole review (422) when any comment's line is not part of
the diff; only then are the PR's files read (``GET /pulls/{n}/files``), the
right-side lines of each ``patch`` taken as commentable, and the review sent
again. A comment whose lines the diff does not show goes, in the same review,
on the nearest line it does show in that file: it stays in the diff view,
next to its code, instead of costing a call of its own as a detached file
comment. Only a file with no line shown gets a file-level review comment
(``subject_type: "file"``), and a file not in the PR a PR conversation
comment. A moved or fallback comment names the lines it is about and shows a
suggestion as a plain code block (it cannot apply there); its marker is
kept, so ``existing`` finds it.

``existing`` is one GraphQL query (paginated) that yields both the first
comment of every review thread (our marker) and the thread's state, plus the
PR's conversation comments for the PR-level fallback notes. Resolving is the
``resolveReviewThread`` mutation; a PR-level note has no thread and is
minimized as outdated instead. Both are idempotent on GitHub.

``base_url`` is the REST API root (``https://api.github.com``, or
``https://host/api/v3`` for GitHub Enterprise, whose GraphQL endpoint is then
``https://host/api/graphql``); ``repo`` is ``owner/name``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace
from typing import Any
from urllib.parse import quote, urlsplit

from processors.diff import parse_diff
from processors.publishing import Comment, fingerprint_in
from schemas.errors import ProcessorError
from schemas.records import Finding
from sinks.scm.base import PostedComment, PullRequestTarget, RestPublisher
from sources.github_api import API_VERSION, SourceFetchError, auth_headers

JSON_MEDIA_TYPE = "application/vnd.github+json"
PAGE_SIZE = 100
MAX_ANNOTATIONS = 50
MAX_QUERY_PAGES = 100
CHECK_NAME = "codereview"
# A PR-level note has no review thread: its "thread" is the comment's node id, tagged.
ISSUE_THREAD_PREFIX = "issuecomment:"
_LEVELS = {"CRITICAL": "failure", "HIGH": "failure", "MEDIUM": "warning"}
_SUGGESTION_FENCE = re.compile(r"^```suggestion\b.*$", re.MULTILINE)

_THREADS = (
    "reviewThreads(first: 100, after: $threads) { pageInfo { hasNextPage endCursor } "
    "nodes { id isResolved isOutdated subjectType "
    "comments(first: 1) { nodes { databaseId body } } } }"
)
_NOTES = (
    "notes: comments(first: 100, after: $notes) { pageInfo { hasNextPage endCursor } "
    "nodes { id databaseId body isMinimized } }"
)
_RESOLVE = (
    "mutation($thread: ID!) { resolveReviewThread(input: {threadId: $thread}) "
    "{ thread { id isResolved } } }"
)
_MINIMIZE = (
    "mutation($subject: ID!) { minimizeComment(input: {subjectId: $subject, "
    "classifier: OUTDATED}) { minimizedComment { isMinimized } } }"
)


def graphql_url(base_url: str) -> str:
    """The GraphQL endpoint that goes with a REST API root (GitHub Enterprise differs)."""
    base = base_url.rstrip("/")
    parts = urlsplit(base)
    if parts.path.endswith("/api/v3"):
        return f"{parts.scheme}://{parts.netloc}{parts.path[: -len('/v3')]}/graphql"
    return base + "/graphql"


class GitHubPublisher(RestPublisher):
    """Posts, finds and resolves our review comments on GitHub, and reports a check run."""

    source = "github"

    def __init__(self, base_url: str, token: str, **options: Any) -> None:
        super().__init__(base_url, token, **options)
        self._graphql_url = graphql_url(base_url)
        # comment database id -> thread id, per PR: filled by every scan, read by resolve.
        self._threads: dict[tuple[str, int], dict[str, str]] = {}
        # What the last ``existing`` found per PR, by fingerprint, read by resolve.
        self._found: dict[tuple[str, int], dict[str, PostedComment]] = {}

    def endpoint(self, base_url: str, token: str) -> tuple[str, dict[str, str]]:
        return base_url, {"X-GitHub-Api-Version": API_VERSION, **auth_headers(token)}

    async def existing(self, pr: PullRequestTarget) -> dict[str, PostedComment]:
        found: dict[str, PostedComment] = {}
        threads, notes = await self._scan(pr)
        for thread in threads:
            first = ((thread.get("comments") or {}).get("nodes") or [None])[0] or {}
            fingerprint = fingerprint_in(first.get("body"))
            if fingerprint is None or fingerprint in found:
                continue
            found[fingerprint] = PostedComment(
                fingerprint=fingerprint,
                comment_id=str(first.get("databaseId", "")),
                thread_id=str(thread["id"]),
                resolved=bool(thread.get("isResolved") or thread.get("isOutdated")),
                on_file=thread.get("subjectType") == "FILE",
            )
        for note in notes:
            fingerprint = fingerprint_in(note.get("body"))
            if fingerprint is None or fingerprint in found:
                continue
            found[fingerprint] = PostedComment(
                fingerprint=fingerprint,
                comment_id=str(note.get("databaseId", "")),
                thread_id=ISSUE_THREAD_PREFIX + str(note["id"]),
                resolved=bool(note.get("isMinimized")),
                on_file=True,
            )
        self._found[(pr.repo, pr.number)] = found
        return found

    async def post(
        self, pr: PullRequestTarget, comments: Sequence[Comment]
    ) -> dict[str, PostedComment]:
        if not comments:
            return {}
        anchored = [(c, c.start_line, max(c.end_line, c.start_line)) for c in comments]
        try:
            return await self._review(pr, anchored)
        except SourceFetchError as exc:
            if exc.status != 422:
                raise
            refused = exc
        lines = await self._commentable(pr)
        inline: list[tuple[Comment, int, int]] = []
        outside: list[Comment] = []
        for comment in comments:
            shown = lines.get(comment.path, {})
            anchor = _anchor(comment, shown)
            if anchor is not None:
                inline.append((comment, *anchor))
            elif shown:
                near = min(shown, key=lambda line: (abs(line - comment.start_line), line))
                moved = replace(
                    comment, body=_fallback_body(comment, name_file=False), suggestion=None
                )
                inline.append((moved, near, near))
            else:
                outside.append(comment)
        placed_elsewhere = any(
            (start, end) != (c.start_line, max(c.end_line, c.start_line))
            for c, start, end in inline
        )
        if not outside and not placed_elsewhere:
            raise refused  # refused for another reason than lines: retrying cannot help
        posted = await self._review(pr, inline) if inline else {}
        for comment in outside:
            posted[comment.fingerprint] = await self._note(pr, comment, comment.path in lines)
        return posted

    async def resolve(self, pr: PullRequestTarget, posted: PostedComment) -> None:
        if posted.resolved:
            return
        thread = posted.thread_id
        if not thread and posted.comment_id.startswith("review:"):
            known = self._found.get((pr.repo, pr.number), {})
            if posted.fingerprint not in known:
                known = await self.existing(pr)
            found = known.get(posted.fingerprint)
            if found is None or found.resolved:
                return  # gone, or already resolved by someone
            thread = found.thread_id
        elif not thread:
            thread = await self._thread_of(pr, posted.comment_id)
        if not thread:
            return  # the comment is gone: nothing left to resolve
        if thread.startswith(ISSUE_THREAD_PREFIX):
            await self._graphql(_MINIMIZE, {"subject": thread[len(ISSUE_THREAD_PREFIX) :]})
        else:
            await self._graphql(_RESOLVE, {"thread": thread})

    async def report(
        self,
        pr: PullRequestTarget,
        findings: Sequence[Finding],
        *,
        conclusion: str,
        summary: str,
        check_id: str = "",
    ) -> str:
        annotations = [_annotation(f) for f in findings]
        batches = [
            annotations[i : i + MAX_ANNOTATIONS]
            for i in range(0, len(annotations), MAX_ANNOTATIONS)
        ] or [[]]
        runs = f"/repos/{quote(pr.repo, safe='/')}/check-runs"
        title = summary.splitlines()[0][:255] if summary else CHECK_NAME
        run: dict[str, Any] = {
            "name": CHECK_NAME,
            "status": "completed",
            "conclusion": conclusion,
            "output": {"title": title, "summary": summary, "annotations": batches[0]},
        }
        if check_id:
            await self._send("PATCH", f"{runs}/{check_id}", run)
        else:
            created = await self._send("POST", runs, {**run, "head_sha": pr.head_sha})
            check_id = str(created["id"])
        for batch in batches[1:]:
            output = {"title": title, "summary": summary, "annotations": batch}
            await self._send("PATCH", f"{runs}/{check_id}", {"output": output})
        return check_id

    async def _review(
        self, pr: PullRequestTarget, anchored: Sequence[tuple[Comment, int, int]]
    ) -> dict[str, PostedComment]:
        """One review holding every comment, in one call."""
        items: list[dict[str, Any]] = []
        for comment, start, end in anchored:
            item: dict[str, Any] = {
                "path": comment.path,
                "line": end,
                "side": "RIGHT",
                "body": comment.body,
            }
            if start < end:
                item.update(start_line=start, start_side="RIGHT")
            items.append(item)
        review = await self._send(
            "POST",
            f"{self._pull(pr)}/reviews",
            {
                "commit_id": pr.head_sha,
                "event": "COMMENT",
                "body": f"codereview: {len(items)} comment(s)",
                "comments": items,
            },
        )
        # The answer is the review, not its comments; their ids (and threads)
        # are looked up by marker when one is resolved, which saves a read
        # per batch: most comments are never resolved by us.
        return {
            comment.fingerprint: PostedComment(comment.fingerprint, f"review:{review['id']}")
            for comment, _, _ in anchored
        }

    async def _note(self, pr: PullRequestTarget, comment: Comment, in_pr: bool) -> PostedComment:
        """A file-level review comment, or a PR conversation comment when GitHub refuses one."""
        if in_pr:
            body = _fallback_body(comment, name_file=False)
            try:
                created = await self._send(
                    "POST",
                    f"{self._pull(pr)}/comments",
                    {
                        "body": body,
                        "commit_id": pr.head_sha,
                        "path": comment.path,
                        "subject_type": "file",
                    },
                )
            except SourceFetchError as exc:
                if exc.status != 422:
                    raise
            else:
                return PostedComment(comment.fingerprint, str(created["id"]), on_file=True)
        created = await self._send(
            "POST",
            f"/repos/{quote(pr.repo, safe='/')}/issues/{pr.number}/comments",
            {"body": _fallback_body(comment, name_file=True)},
        )
        return PostedComment(
            comment.fingerprint,
            str(created["id"]),
            thread_id=ISSUE_THREAD_PREFIX + str(created["node_id"]),
            on_file=True,
        )

    async def _commentable(self, pr: PullRequestTarget) -> dict[str, dict[int, int]]:
        """Per file of the PR, its right-side diff lines mapped to their hunk's index."""
        lines: dict[str, dict[int, int]] = {}
        async for entry in self.http.paginate(
            f"{self._pull(pr)}/files", params={"per_page": PAGE_SIZE}, accept=JSON_MEDIA_TYPE
        ):
            path = str(entry["filename"])
            lines[path] = _right_lines(path, entry.get("patch") or "")
        return lines

    async def _scan(
        self, pr: PullRequestTarget
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Every review thread and conversation comment of the PR, all pages."""
        owner, _, name = pr.repo.partition("/")
        threads: list[dict[str, Any]] = []
        notes: list[dict[str, Any]] = []
        cursors: dict[str, str | None] = {"threads": None, "notes": None}
        pending = {"threads", "notes"}
        for _ in range(MAX_QUERY_PAGES):
            data = await self._graphql(
                _query(pending),
                {
                    "owner": owner,
                    "name": name,
                    "number": pr.number,
                    **{key: cursors[key] for key in pending},
                },
            )
            pull = (data.get("repository") or {}).get("pullRequest")
            if pull is None:
                raise SourceFetchError(
                    f"{pr.repo}#{pr.number}: no such pull request", status=404, retryable=False
                )
            for key, field, sink in (
                ("threads", "reviewThreads", threads),
                ("notes", "notes", notes),
            ):
                if key not in pending:
                    continue
                connection = pull.get(field) or {}
                sink.extend(connection.get("nodes") or [])
                page = connection.get("pageInfo") or {}
                if page.get("hasNextPage"):
                    cursors[key] = page.get("endCursor")
                else:
                    pending.discard(key)
            if not pending:
                break
        else:
            raise SourceFetchError(
                f"{pr.repo}#{pr.number}: more than {MAX_QUERY_PAGES} pages of threads",
                status=None,
                retryable=False,
            )
        by_comment = self._threads.setdefault((pr.repo, pr.number), {})
        for thread in threads:
            for node in (thread.get("comments") or {}).get("nodes") or []:
                by_comment[str(node.get("databaseId"))] = str(thread["id"])
        for note in notes:
            by_comment[str(note.get("databaseId"))] = ISSUE_THREAD_PREFIX + str(note["id"])
        return threads, notes

    async def _thread_of(self, pr: PullRequestTarget, comment_id: str) -> str:
        """The thread of a comment posted earlier (a review answer carries no thread id)."""
        known = self._threads.get((pr.repo, pr.number), {})
        if comment_id not in known:
            await self._scan(pr)
            known = self._threads.get((pr.repo, pr.number), {})
        return known.get(comment_id, "")

    async def _graphql(self, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        response = await self.http.send(
            "POST",
            self._graphql_url,
            json_body={"query": query, "variables": variables},
            idempotent=True,  # queries, and mutations that set a state
            accept=JSON_MEDIA_TYPE,
        )
        body = response.json()
        errors = body.get("errors") if isinstance(body, dict) else None
        if errors:
            kinds = {str(e.get("type", "")) for e in errors if isinstance(e, dict)}
            raise SourceFetchError(
                f"GraphQL: {errors[0].get('message', errors[0])}",
                status=response.status,
                retryable="RATE_LIMITED" in kinds,
            )
        data = body.get("data") if isinstance(body, dict) else None
        return data if isinstance(data, dict) else {}

    async def _send(self, method: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = await self.http.send(method, path, json_body=body, accept=JSON_MEDIA_TYPE)
        answer = response.json()
        return answer if isinstance(answer, dict) else {}

    def _pull(self, pr: PullRequestTarget) -> str:
        return f"/repos/{quote(pr.repo, safe='/')}/pulls/{pr.number}"


def _query(wanted: set[str]) -> str:
    """The threads/notes query, asking only for the connections that still have pages."""
    declared = "".join(f", ${key}: String" for key in ("threads", "notes") if key in wanted)
    fields = " ".join(
        text for key, text in (("threads", _THREADS), ("notes", _NOTES)) if key in wanted
    )
    return (
        f"query($owner: String!, $name: String!, $number: Int!{declared}) {{ "
        "repository(owner: $owner, name: $name) { pullRequest(number: $number) { "
        f"{fields} }} }} }}"
    )


def _right_lines(path: str, patch: str) -> dict[int, int]:
    """The right-side (head) lines of a file's ``patch``, each mapped to its hunk's index.

    A patch GitHub cut short or could not render leaves no commentable line:
    better a file note than a second 422.
    """
    if not patch.startswith("@@"):
        return {}
    try:
        files = parse_diff(f"--- a/{path}\n+++ b/{path}\n{patch.rstrip(chr(10))}\n")
    except ProcessorError:
        return {}
    return {
        line: index
        for file in files
        for index, hunk in enumerate(file.hunks)
        for line, _ in hunk.head_lines()
    }


def _anchor(comment: Comment, lines: dict[int, int]) -> tuple[int, int] | None:
    """The lines to post ``comment`` on: its range when one hunk holds it, else one line.

    A suggestion replaces exactly the lines it is posted on, so a comment
    carrying one is never narrowed.
    """
    start, end = comment.start_line, max(comment.end_line, comment.start_line)
    if start in lines and lines.get(end) == lines[start]:
        return start, end
    if comment.suggestion is not None:
        return None
    for line in (start, end):
        if line in lines:
            return line, line
    return None


def _fallback_body(comment: Comment, *, name_file: bool) -> str:
    """The body of a note outside the diff: where it points, then the comment (marker kept)."""
    end = max(comment.end_line, comment.start_line)
    span = f"line {end}" if comment.start_line == end else f"lines {comment.start_line}-{end}"
    where = f"`{comment.path}` {span}" if name_file else span.capitalize()
    body = _SUGGESTION_FENCE.sub("```", comment.body)
    return f"{where} (outside the diff):\n\n{body}"


def _annotation(finding: Finding) -> dict[str, Any]:
    return {
        "path": finding.path,
        "start_line": finding.start_line,
        "end_line": max(finding.end_line, finding.start_line),
        "annotation_level": _LEVELS.get(finding.severity, "notice"),
        "message": finding.message[:65_000],
        "title": f"{finding.severity.title()} {finding.category}: {finding.rule_id}"[:255],
    }
