"""Replaying a tiny real git repository as pull request events."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from processors.diff import parse_diff
from sources.git_replay import ReplayError, count_commits, replay_events

GIT_ENV = {
    "GIT_AUTHOR_NAME": "Ada Lovelace",
    "GIT_AUTHOR_EMAIL": "ada@example.com",
    "GIT_COMMITTER_NAME": "Ada Lovelace",
    "GIT_COMMITTER_EMAIL": "ada@example.com",
    "GIT_CONFIG_NOSYSTEM": "1",
}


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(repo), *args],
        capture_output=True,
        check=True,
        env={**os.environ, **GIT_ENV, "HOME": str(repo)},
    )
    return done.stdout.decode().strip()


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four commits: root, a change + a binary, a rename + a deletion, a big file.

    Module-scoped: the tests only read it.
    """
    root = tmp_path_factory.mktemp("project")
    git(root, "init", "-q", "-b", "main")
    (root / "calc.py").write_text("def add(a, b):\n    return a + b\n")
    (root / "notes.txt").write_text("keep me\n")
    (root / "obsolete.py").write_text("X = 1\n")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "Initial commit")
    (root / "calc.py").write_text("def add(a, b):\n    return a - b\n")
    (root / "logo.bin").write_bytes(b"\x00\xff\x00binary")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "Break addition", "-m", "A body line.")
    git(root, "mv", "notes.txt", "NOTES.md")
    git(root, "rm", "-q", "obsolete.py")
    git(root, "commit", "-q", "-m", "Tidy up")
    (root / "huge.txt").write_text("y" * 1_100_000 + "\n")
    (root / "calc.py").write_text("def add(a, b):\n    return a + b\n")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "Fix addition, add data")
    return root


def test_replays_each_commit_as_an_event(repo: Path) -> None:
    shas = git(repo, "rev-list", "--reverse", "HEAD").split()
    events = list(
        replay_events(repo, "HEAD~3..HEAD", tenant="acme", repo_name="acme/calc", now_ms=99)
    )
    assert [e.pr_number for e in events] == [1, 2, 3]
    assert [e.title for e in events] == ["Break addition", "Tidy up", "Fix addition, add data"]
    assert [(e.base_sha, e.head_sha) for e in events] == list(zip(shas, shas[1:], strict=False))
    for event in events:
        assert (event.source, event.action, event.author) == ("replay", "opened", "Ada Lovelace")
        assert (event.tenant, event.repo, event.received_at_ms) == ("acme", "acme/calc", 99)
    assert len({e.event_id for e in events}) == 3

    first, second, third = events
    assert "-    return a + b\n+    return a - b" in first.diff
    assert first.file_content("calc.py") == "def add(a, b):\n    return a - b\n"
    assert [f.path for f in first.files] == ["calc.py", "logo.bin"]
    assert first.file_content("logo.bin") is None  # binary: content skipped

    statuses = {f.path: f.status for f in parse_diff(second.diff)}
    assert statuses == {"NOTES.md": "renamed", "obsolete.py": "deleted"}
    assert [(f.path, f.content) for f in second.files] == [("NOTES.md", "keep me\n")]

    assert third.file_content("huge.txt") is None  # over 1 MB: content skipped
    assert [f.path for f in third.files] == ["calc.py", "huge.txt"]


def test_replay_is_deterministic(repo: Path) -> None:
    def once() -> list:
        return list(replay_events(repo, "HEAD~2..HEAD", tenant="t", repo_name="r", now_ms=1))

    assert once() == once()


def test_root_commit_is_diffed_against_the_empty_tree(repo: Path) -> None:
    root_sha = git(repo, "rev-list", "--max-parents=0", "HEAD")
    (event,) = replay_events(repo, root_sha, tenant="t", repo_name="r", now_ms=1)
    assert event.base_sha == ""
    assert {f.path: f.status for f in parse_diff(event.diff)} == {
        "calc.py": "added",
        "notes.txt": "added",
        "obsolete.py": "added",
    }
    assert event.file_content("notes.txt") == "keep me\n"


@pytest.mark.parametrize(
    ("rev_range", "count"),
    [("HEAD~3..HEAD", 3), ("HEAD~1..HEAD", 1), ("HEAD..HEAD", 0), ("HEAD", 4)],
)
def test_count_commits_matches_replay(repo: Path, rev_range: str, count: int) -> None:
    assert count_commits(repo, rev_range) == count
    events = replay_events(repo, rev_range, tenant="t", repo_name="r", now_ms=1)
    assert len(list(events)) == count


def test_not_a_repository_raises(tmp_path: Path) -> None:
    with pytest.raises(ReplayError, match="not a git repository"):
        replay_events(tmp_path, "HEAD~1..HEAD", tenant="t", repo_name="r", now_ms=1)
    with pytest.raises(ReplayError, match="not a directory"):
        count_commits(tmp_path / "missing", "HEAD")


@pytest.mark.parametrize("rev_range", ["nosuchbranch..HEAD", "HEAD~99..HEAD", "--all", " "])
def test_bad_range_raises_at_the_call(repo: Path, rev_range: str) -> None:
    with pytest.raises(ReplayError):
        replay_events(repo, rev_range, tenant="t", repo_name="r", now_ms=1)
    with pytest.raises(ReplayError):
        count_commits(repo, rev_range)
