"""Unified diff parsing, table-driven over the small diffs in tests/data/diffs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from processors.diff import FileDiff, Hunk, parse_diff
from schemas.errors import ProcessorError

DIFFS = Path(__file__).resolve().parents[2] / "data" / "diffs"
GOLDEN = Path(__file__).resolve().parents[3] / ".." / "shared" / "golden" / "bugsinpy.jsonl"


def _summary(file_diff: FileDiff) -> tuple[str, str | None, str, bool, list[int], list[int]]:
    return (
        file_diff.path,
        file_diff.old_path,
        file_diff.status,
        file_diff.is_binary,
        file_diff.added_lines,
        file_diff.removed_anchor_lines,
    )


# file -> [(path, old_path, status, is_binary, added_lines, removed_anchor_lines)]
CASES = {
    "added_file.diff": [("helpers.py", None, "added", False, [1, 2, 3, 4, 5], [])],
    "deleted_file.diff": [("old.txt", "old.txt", "deleted", False, [], [])],
    # The guard is deleted: the anchor is the surviving `return` (head line 2).
    # The guard removed sat between head lines 1 and 2: both are anchors.
    "deletion_only.diff": [("clamp.py", "clamp.py", "modified", False, [], [1, 2])],
    "rename_modified.diff": [("locations.py", "paths.py", "renamed", False, [9], [9])],
    "pure_rename.diff": [("letters.txt", "greek.txt", "renamed", False, [], [])],
    "binary_modified.diff": [("logo.png", "logo.png", "modified", True, [], [])],
    "mode_change.diff": [("run.sh", "run.sh", "modified", False, [], [])],
    "no_newline.diff": [("tail.txt", "tail.txt", "modified", False, [3, 4], [3])],
    # -U0 and headers without counts (`@@ -2 +2 @@`).
    "zero_context.diff": [("greek.txt", "greek.txt", "modified", False, [2, 8, 9], [2, 8])],
    # The last line is deleted: no next line, so it anchors on the previous one.
    "trailing_deletion.diff": [("greek.txt", "greek.txt", "modified", False, [], [7])],
    "git_binary_patch.diff": [
        ("logo.png", "logo.png", "modified", True, [], []),
        ("new_mod.py", None, "added", False, [1, 2], []),
    ],
    "quoted_paths.diff": [
        ("café.txt", None, "added", False, [1], []),
        ("my notes.txt", None, "added", False, list(range(1, 9)), []),
    ],
    "plain_unified.diff": [("f.txt", "f.txt", "modified", False, [2], [2])],
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_parses_fixture(name: str) -> None:
    files = parse_diff((DIFFS / name).read_text(encoding="utf-8"))
    assert [_summary(f) for f in files] == CASES[name]


def test_every_fixture_is_in_the_table() -> None:
    assert sorted(p.name for p in DIFFS.glob("*.diff")) == sorted(CASES)


@pytest.mark.parametrize("name", sorted(p.name for p in (DIFFS / "malformed").iterdir()))
def test_rejects_malformed(name: str) -> None:
    with pytest.raises(ProcessorError, match=r"line \d+|not a unified diff"):
        parse_diff((DIFFS / "malformed" / name).read_text(encoding="utf-8"))


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("prose.txt", "not a unified diff"),
        ("hunk_too_short.diff", "line counts do not match"),
        ("hunk_too_long.diff", "more lines than its header"),
        ("hunk_without_file.diff", "without a file header"),
        ("bad_hunk_header.diff", "malformed hunk header"),
        ("minus_without_plus.diff", "not followed by"),
        ("garbage_in_hunk.diff", "line counts do not match"),
        ("garbage_between_files.diff", "not a unified diff"),
        ("combined_merge.diff", "combined"),
        ("header_without_hunks.diff", "without any hunk"),
    ],
)
def test_malformed_reason_is_clear(name: str, reason: str) -> None:
    with pytest.raises(ProcessorError, match=reason):
        parse_diff((DIFFS / "malformed" / name).read_text(encoding="utf-8"))


@pytest.mark.parametrize("text", ["", "\n", "  \n\n"])
def test_empty_text_is_empty_diff(text: str) -> None:
    assert parse_diff(text) == []


def test_hunk_keeps_lines_and_counts() -> None:
    (file_diff,) = parse_diff((DIFFS / "no_newline.diff").read_text(encoding="utf-8"))
    assert file_diff.hunks == [
        Hunk(
            old_start=1,
            old_len=3,
            new_start=1,
            new_len=4,
            lines=[
                " one",
                " two",
                "-three",
                "\\ No newline at end of file",
                "+three",
                "+four",
                "\\ No newline at end of file",
            ],
        )
    ]
    assert list(file_diff.hunks[0].head_lines()) == [
        (1, "one"),
        (2, "two"),
        (3, "three"),
        (4, "four"),
    ]


def test_missing_counts_default_to_one() -> None:
    (file_diff,) = parse_diff("--- a/x\n+++ b/x\n@@ -3 +3 @@\n-old\n+new\n")
    (hunk,) = file_diff.hunks
    assert (hunk.old_start, hunk.old_len, hunk.new_start, hunk.new_len) == (3, 1, 3, 1)
    assert file_diff.added_lines == [3]


def test_empty_line_counts_as_empty_context() -> None:
    # Some tools strip the single space of an empty context line.
    text = "--- a/x\n+++ b/x\n@@ -1,3 +1,3 @@\n a\n\n-b\n+c\n"
    (file_diff,) = parse_diff(text)
    assert file_diff.hunks[0].lines == [" a", " ", "-b", "+c"]
    assert file_diff.added_lines == [3]


def test_lines_that_look_like_headers_inside_a_hunk_are_content() -> None:
    text = "--- a/x\n+++ b/x\n@@ -1,2 +1,2 @@\n--- not a header\n+++ also content\n-x\n+y\n"
    (file_diff,) = parse_diff(text)
    assert file_diff.hunks[0].lines == ["--- not a header", "+++ also content", "-x", "+y"]
    assert file_diff.added_lines == [1, 2]


def test_deletion_run_inside_a_replacement_anchors_on_the_replacement() -> None:
    text = "--- a/x\n+++ b/x\n@@ -1,4 +1,3 @@\n a\n-b\n-c\n+C\n d\n"
    (file_diff,) = parse_diff(text)
    assert file_diff.added_lines == [2]
    assert file_diff.removed_anchor_lines == [2]


@pytest.mark.skipif(not GOLDEN.exists(), reason="golden data not present")
def test_parses_every_golden_diff_and_matches_head_files() -> None:
    parsed_files = 0
    for raw in GOLDEN.read_text(encoding="utf-8").splitlines():
        case = json.loads(raw)
        for file_diff in parse_diff(case["diff"]):
            parsed_files += 1
            head = case["files_after"][file_diff.path].split("\n")
            for hunk in file_diff.hunks:
                for line_no, text in hunk.head_lines():
                    assert head[line_no - 1] == text, (case["id"], file_diff.path, line_no)
    assert parsed_files > 200


def test_truncation_marker_is_skipped_and_counted() -> None:
    from processors.diff import TRUNCATION_MARKER, split_truncation_marker

    diff = (
        "diff --git a/x.py b/x.py\n--- a/x.py\n+++ b/x.py\n@@ -1 +1 @@\n-a\n+b\n"
        + TRUNCATION_MARKER.format(omitted=3)
        + "\n"
    )
    [only] = parse_diff(diff)
    assert only.path == "x.py" and only.added_lines == [1]
    assert split_truncation_marker(diff)[1] == 3
    assert split_truncation_marker("diff --git a/x b/x\n")[1] == 0


def test_shown_lines_are_the_head_lines_of_every_hunk_and_none_for_a_deletion() -> None:
    text = (
        "--- a/x\n+++ b/x\n@@ -1,3 +1,3 @@\n a\n+b\n c\n-d\n@@ -20,2 +21,2 @@\n e\n-f\n+g\n"
        "diff --git a/gone b/gone\ndeleted file mode 100644\n--- a/gone\n+++ /dev/null\n"
        "@@ -1,1 +0,0 @@\n-x\n"
    )
    shown, gone = parse_diff(text)
    assert shown.shown_lines == {1, 2, 3, 21, 22}
    assert gone.shown_lines == set()
