"""Replay a local git history as pull request events.

Each first-parent commit of a range becomes one "PR" (its parent is the base),
so a benchmark or a demo can push a real project's history through the
pipeline without a GitHub account. Git runs as a subprocess with our own
prefixes and no external diff or textconv, so the user's git configuration
cannot change the diff the parser sees.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

from processors.diff import parse_diff
from processors.github_events import PullRequestRef, to_event
from schemas.errors import CodeReviewError, ProcessorError
from schemas.records import FileSnapshot, PullRequestEvent

MAX_FILE_BYTES = 1_000_000
GIT_TIMEOUT_S = 120.0


class ReplayError(CodeReviewError):
    """The path is not a git repository, the range is bad, or git failed."""


def count_commits(repo_path: Path, rev_range: str) -> int:
    """How many events ``replay_events`` will yield for the same arguments."""
    _check_repo(repo_path)
    out = _git(repo_path, "rev-list", "--count", "--first-parent", _checked_range(rev_range))
    return int(out.decode().strip())


def replay_events(
    repo_path: Path, rev_range: str, *, tenant: str, repo_name: str, now_ms: int
) -> Iterator[PullRequestEvent]:
    """One ``opened`` event per first-parent commit of ``rev_range``, oldest first.

    The repository and range are checked now, so a bad argument raises
    ``ReplayError`` at the call, not at the first ``next()``.
    """
    _check_repo(repo_path)
    out = _git(repo_path, "rev-list", "--reverse", "--first-parent", _checked_range(rev_range))
    commits = out.decode().split()
    return _events(repo_path, commits, tenant=tenant, repo_name=repo_name, now_ms=now_ms)


def _events(
    repo_path: Path, commits: list[str], *, tenant: str, repo_name: str, now_ms: int
) -> Iterator[PullRequestEvent]:
    empty_tree: str | None = None
    for index, commit in enumerate(commits, start=1):
        parent, author, subject = _commit_info(repo_path, commit)
        if not parent and empty_tree is None:
            empty_tree = _empty_tree(repo_path)
        diff = _git(
            repo_path,
            "diff",
            "--no-color",
            "--no-ext-diff",
            "--no-textconv",
            "--src-prefix=a/",
            "--dst-prefix=b/",
            "-M",
            parent or str(empty_tree),
            commit,
        ).decode("utf-8", errors="replace")
        ref = PullRequestRef(
            tenant=tenant,
            repo=repo_name,
            pr_number=index,
            action="opened",
            head_sha=commit,
            base_sha=parent,
            title=subject,
            author=author,
            api_url="",
        )
        files = _head_files(repo_path, commit, diff)
        yield to_event(ref, source="replay", diff=diff, files=files, received_at_ms=now_ms)


def _commit_info(repo_path: Path, commit: str) -> tuple[str, str, str]:
    """First parent ("" for a root commit), author name and subject of ``commit``."""
    out = _git(
        repo_path, "log", "-1", "--no-show-signature", "--format=%P%x00%an%x00%s", commit, "--"
    )
    parents, author, subject = out.decode("utf-8", errors="replace").rstrip("\n").split("\0", 2)
    first_parent = parents.split()[0] if parents.split() else ""
    return first_parent, author, subject


def _empty_tree(repo_path: Path) -> str:
    """The id of the empty tree in this repository's hash (sha1 or sha256)."""
    return _git(repo_path, "hash-object", "-t", "tree", "--stdin", stdin=b"").decode().strip()


def _head_files(repo_path: Path, commit: str, diff: str) -> list[FileSnapshot]:
    """Head content of every changed, non-deleted file (None: binary, large, not UTF-8)."""
    try:
        file_diffs = parse_diff(diff)
    except ProcessorError as exc:
        raise ReplayError(f"commit {commit}: git diff output did not parse: {exc}") from exc
    paths = [f.path for f in file_diffs if f.status != "deleted"]
    binary = {f.path for f in file_diffs if f.is_binary}
    readable = [p for p in dict.fromkeys(paths) if p not in binary and "\n" not in p]
    blobs = _read_blobs(repo_path, [f"{commit}:{path}" for path in readable])
    contents = dict(zip(readable, blobs, strict=True))
    return [FileSnapshot(path, contents.get(path)) for path in dict.fromkeys(paths)]


def _read_blobs(repo_path: Path, objects: list[str]) -> list[str | None]:
    """Read many ``commit:path`` blobs through one ``git cat-file --batch``."""
    if not objects:
        return []
    out = _git(repo_path, "cat-file", "--batch", stdin="".join(f"{o}\n" for o in objects).encode())
    found: list[str | None] = []
    pos = 0
    for _ in objects:
        header_end = out.index(b"\n", pos)
        header = out[pos:header_end].split()
        pos = header_end + 1
        if len(header) != 3 or not header[2].isdigit():  # "<name> missing" / "ambiguous"
            found.append(None)
            continue
        size = int(header[2])
        data, pos = out[pos : pos + size], pos + size + 1
        found.append(_text(data) if header[1] == b"blob" and size <= MAX_FILE_BYTES else None)
    return found


def _text(data: bytes) -> str | None:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _check_repo(repo_path: Path) -> None:
    if not Path(repo_path).is_dir():
        raise ReplayError(f"not a directory: {repo_path}")
    try:
        _git(repo_path, "rev-parse", "--git-dir")
    except ReplayError as exc:
        raise ReplayError(f"not a git repository: {repo_path}") from exc


def _checked_range(rev_range: str) -> str:
    if not rev_range.strip() or rev_range.startswith("-"):
        raise ReplayError(f"bad revision range {rev_range!r}")
    return rev_range


def _git(repo_path: Path, *args: str, stdin: bytes | None = None) -> bytes:
    """Run git in ``repo_path``; its stdout, or ``ReplayError`` with its stderr."""
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"}
    command = ["git", "-C", str(repo_path), "-c", "core.quotepath=off", *args]
    try:
        done = subprocess.run(
            command,
            input=stdin,
            capture_output=True,
            env=env,
            timeout=GIT_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ReplayError(f"git {args[0]} could not run: {exc}") from exc
    if done.returncode != 0:
        detail = done.stderr.decode("utf-8", errors="replace").strip()
        raise ReplayError(f"git {args[0]} failed ({done.returncode}): {detail}")
    return done.stdout
