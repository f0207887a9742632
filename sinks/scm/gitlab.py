"""Findings on GitLab: one diff discussion per comment, resolved threads.

GitLab has no batched review in its REST API, so each comment is one
``POST /merge_requests/:iid/discussions`` with a ``text`` position on the
head line. The position needs the MR's ``diff_refs`` (base, start and head
SHAs), read once per (project, MR, head) and kept in memory; when the head
the findings were made on is no longer the MR's latest, the matching MR
version supplies them, so the lines still point at the code reviewed.

GitLab answers 400 (``line_code can't be blank``) for a line it cannot place.
Two causes: the line is outside the diff, or it is an unchanged context line,
which GitLab only accepts with its ``old_line`` too. So on the first 400 the
MR's diffs are read (once per head, cached) and the comment is sent again
with the ``old_line`` (and the base path of a renamed file) when the line is
in the diff; otherwise it becomes a file-level discussion (``position_type:
"file"``) and, if GitLab refuses that too (older servers), a plain MR
discussion naming the file and line. Both keep the marker, so ``existing``
finds them, and both are ``on_file``.

A suggestion block is GitLab's ``suggestion:-N+0`` anchored on the last line
of the range; on a fallback note it is shown as a plain code block.

``base_url`` is the server root; ``repo`` is the project's path, URL-encoded
as its id (as ``sources.gitlab_api`` does). The token goes in ``PRIVATE-TOKEN``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

from processors.diff import parse_diff
from processors.publishing import Comment, fingerprint_in
from schemas.errors import ProcessorError
from sinks.scm.base import PostedComment, PullRequestTarget, RestPublisher
from sources.github_api import SourceFetchError
from sources.gitlab_api import auth_headers

PAGE_SIZE = 100
_SUGGESTION_FENCE = re.compile(r"^```suggestion\b.*$", re.MULTILINE)

# Per head file: new line -> old line (None for an added line); and the file's base path.
LineMap = dict[str, dict[int, int | None]]


class GitLabPublisher(RestPublisher):
    """Posts, finds and resolves our merge request discussions on GitLab."""

    source = "gitlab"

    def __init__(self, base_url: str, token: str, **options: Any) -> None:
        super().__init__(base_url, token, **options)
        self._refs: dict[tuple[str, int, str], dict[str, str]] = {}
        self._diffs: dict[tuple[str, int, str], tuple[LineMap, dict[str, str]]] = {}

    def endpoint(self, base_url: str, token: str) -> tuple[str, dict[str, str]]:
        return base_url, auth_headers(token)

    async def existing(self, pr: PullRequestTarget) -> dict[str, PostedComment]:
        found: dict[str, PostedComment] = {}
        async for discussion in self.http.paginate(
            f"{self._mr(pr)}/discussions", params={"per_page": PAGE_SIZE}
        ):
            notes = discussion.get("notes") or []
            if not notes:
                continue
            first = notes[0]
            fingerprint = fingerprint_in(first.get("body"))
            if fingerprint is None or fingerprint in found:
                continue
            position = first.get("position") or {}
            found[fingerprint] = PostedComment(
                fingerprint=fingerprint,
                comment_id=str(first["id"]),
                thread_id=str(discussion["id"]),
                resolved=bool(first.get("resolved")),
                on_file=position.get("position_type", "file") != "text",
            )
        return found

    async def post(
        self, pr: PullRequestTarget, comments: Sequence[Comment]
    ) -> dict[str, PostedComment]:
        if not comments:
            return {}
        refs = await self._diff_refs(pr)
        posted: dict[str, PostedComment] = {}
        for comment in comments:
            posted[comment.fingerprint] = await self._post_one(pr, refs, comment)
        return posted

    async def resolve(self, pr: PullRequestTarget, posted: PostedComment) -> None:
        if posted.resolved:
            return
        thread = posted.thread_id or await self._thread_of(pr, posted.fingerprint)
        if not thread:
            return  # the discussion is gone
        path = f"{self._mr(pr)}/discussions/{thread}"
        try:
            await self.http.send("PUT", path, params={"resolved": "true"}, idempotent=True)
        except SourceFetchError as exc:
            if exc.status == 404:
                return
            if exc.status != 403 or await self._resolvable(path):
                raise

    async def _post_one(
        self, pr: PullRequestTarget, refs: dict[str, str], comment: Comment
    ) -> PostedComment:
        """The comment on its line; else on its file; else on the MR, naming file and line."""
        end = max(comment.end_line, comment.start_line)
        line = end if comment.suggestion is not None else comment.start_line
        body = _suggestion_body(comment)
        key = (pr.repo, pr.number, pr.head_sha)
        known = self._diffs.get(key)
        if known is None or line in known[0].get(comment.path, {}):
            sent = _text_position(refs, comment.path, line, known)
            created = await self._discussion(pr, body, sent)
            if created is None and known is None:
                known = self._diffs[key] = await self._line_map(pr)
                if line in known[0].get(comment.path, {}):
                    again = _text_position(refs, comment.path, line, known)
                    if again != sent:
                        created = await self._discussion(pr, body, again)
            if created is not None:
                return _posted(comment, created, on_file=False)
        old_path = known[1].get(comment.path, comment.path) if known else comment.path
        on_file = {**refs, "position_type": "file", "new_path": comment.path, "old_path": old_path}
        created = await self._discussion(pr, _fallback_body(comment, name_file=False), on_file)
        if created is None:
            created = await self._discussion(pr, _fallback_body(comment, name_file=True), None)
        if created is None:
            raise SourceFetchError(
                f"{pr.repo}!{pr.number}: GitLab refused a plain discussion",
                status=400,
                retryable=False,
            )
        return _posted(comment, created, on_file=True)

    async def _discussion(
        self, pr: PullRequestTarget, body: str, position: dict[str, Any] | None
    ) -> dict[str, Any] | None:
        """The created discussion, or None when GitLab cannot place it (400)."""
        payload: dict[str, Any] = {"body": body}
        if position is not None:
            payload["position"] = position
        try:
            response = await self.http.send(
                "POST", f"{self._mr(pr)}/discussions", json_body=payload
            )
        except SourceFetchError as exc:
            if exc.status == 400:
                return None
            raise
        created = response.json()
        return created if isinstance(created, dict) else None

    async def _diff_refs(self, pr: PullRequestTarget) -> dict[str, str]:
        """base/start/head SHAs of the MR version whose head is ``pr.head_sha``."""
        key = (pr.repo, pr.number, pr.head_sha)
        if key in self._refs:
            return self._refs[key]
        merge_request = (await self.http.get(self._mr(pr))).json()
        refs = merge_request.get("diff_refs") if isinstance(merge_request, dict) else None
        if not refs or not refs.get("head_sha"):
            raise SourceFetchError(
                f"{pr.repo}!{pr.number}: no diff_refs yet", status=None, retryable=True
            )
        chosen = {k: str(refs[k]) for k in ("base_sha", "start_sha", "head_sha")}
        if pr.head_sha and chosen["head_sha"] != pr.head_sha:
            async for version in self.http.paginate(
                f"{self._mr(pr)}/versions", params={"per_page": PAGE_SIZE}
            ):
                if version.get("head_commit_sha") == pr.head_sha:
                    chosen = {
                        "base_sha": str(version["base_commit_sha"]),
                        "start_sha": str(version["start_commit_sha"]),
                        "head_sha": str(version["head_commit_sha"]),
                    }
                    break
        self._refs[key] = chosen
        return chosen

    async def _line_map(self, pr: PullRequestTarget) -> tuple[LineMap, dict[str, str]]:
        """Every head line of the MR's diffs (with its base line if unchanged); base paths."""
        lines: LineMap = {}
        old_paths: dict[str, str] = {}
        async for item in self.http.paginate(
            f"{self._mr(pr)}/diffs", params={"per_page": PAGE_SIZE}
        ):
            new_path = str(item.get("new_path") or item.get("old_path") or "")
            old_path = str(item.get("old_path") or new_path)
            old_paths[new_path] = old_path
            lines[new_path] = _lines_of(old_path, new_path, item.get("diff") or "")
        return lines, old_paths

    async def _thread_of(self, pr: PullRequestTarget, fingerprint: str) -> str:
        shown = (await self.existing(pr)).get(fingerprint)
        return shown.thread_id if shown else ""

    async def _resolvable(self, discussion_path: str) -> bool:
        """Whether a discussion can be resolved at all (a plain note cannot: leave it)."""
        discussion = (await self.http.get(discussion_path)).json()
        notes = discussion.get("notes") if isinstance(discussion, dict) else None
        return bool(notes and notes[0].get("resolvable"))

    def _mr(self, pr: PullRequestTarget) -> str:
        return f"/api/v4/projects/{quote(pr.repo, safe='')}/merge_requests/{pr.number}"


def _text_position(
    refs: dict[str, str], path: str, line: int, known: tuple[LineMap, dict[str, str]] | None
) -> dict[str, Any]:
    """A ``text`` position on head ``line``; with the base line once the diff is known."""
    old_line = known[0].get(path, {}).get(line) if known else None
    position: dict[str, Any] = {
        **refs,
        "position_type": "text",
        "new_path": path,
        "old_path": known[1].get(path, path) if known else path,
        "new_line": line,
    }
    if old_line is not None:
        position["old_line"] = old_line
    return position


def _lines_of(old_path: str, new_path: str, diff: str) -> dict[int, int | None]:
    """Head lines of one file's hunks: an unchanged line maps to its base line, an added to None."""
    if not diff.startswith("@@"):
        return {}
    try:
        files = parse_diff(f"--- a/{old_path}\n+++ b/{new_path}\n{diff.rstrip(chr(10))}\n")
    except ProcessorError:
        return {}
    found: dict[int, int | None] = {}
    for file in files:
        for hunk in file.hunks:
            old = hunk.old_start if hunk.old_len else hunk.old_start + 1
            new = hunk.new_start if hunk.new_len else hunk.new_start + 1
            for text in hunk.lines:
                tag = text[:1]
                if tag == " ":
                    found[new] = old
                    old, new = old + 1, new + 1
                elif tag == "+":
                    found[new] = None
                    new += 1
                elif tag == "-":
                    old += 1
    return found


def _suggestion_body(comment: Comment) -> str:
    """``comment.body`` with GitLab's suggestion fence: ``-N+0`` lines above the anchor line."""
    if comment.suggestion is None:
        return comment.body
    above = max(comment.end_line - comment.start_line, 0)
    return _SUGGESTION_FENCE.sub(f"```suggestion:-{above}+0", comment.body, count=1)


def _fallback_body(comment: Comment, *, name_file: bool) -> str:
    """The body of a note outside the diff: where it points, then the comment (marker kept)."""
    end = max(comment.end_line, comment.start_line)
    span = f"line {end}" if comment.start_line == end else f"lines {comment.start_line}-{end}"
    where = f"`{comment.path}` {span}" if name_file else span.capitalize()
    return f"{where} (outside the diff):\n\n{_SUGGESTION_FENCE.sub('```', comment.body)}"


def _posted(comment: Comment, discussion: dict[str, Any], *, on_file: bool) -> PostedComment:
    notes = discussion.get("notes") or [{}]
    return PostedComment(
        fingerprint=comment.fingerprint,
        comment_id=str(notes[0].get("id", "")),
        thread_id=str(discussion.get("id", "")),
        on_file=on_file,
    )
