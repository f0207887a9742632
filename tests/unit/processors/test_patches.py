"""A model's suggestion as a unified diff: cleaned, re-indented, anchored, and applicable."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from processors.patches import replacement_lines, suggestion_patch

PATH = "app/core.py"
FILE = [
    "import math",
    "",
    "",
    "def clamp(value, low, high):",
    "    if value < low:",
    "        return low",
    "    if value > high:",
    "        return high",
    "    return value",
    "",
    "",
    "def area(radius):",
    "    return math.pi * radius * radius",
]


def lines_of(start: int, end: int) -> list[str]:
    """Lines ``start..end`` (1-based, inclusive) of FILE, as the analysis slices them."""
    return FILE[start - 1 : end]


def hunk_header(patch: str) -> str:
    found = re.search(r"^@@ .* @@$", patch, re.MULTILINE)
    assert found, patch
    return found.group(0)


def added(patch: str) -> list[str]:
    return [
        line[1:]
        for line in patch.splitlines()
        if line.startswith("+") and not line.startswith("++")
    ]


def removed(patch: str) -> list[str]:
    return [
        line[1:]
        for line in patch.splitlines()
        if line.startswith("-") and not line.startswith("--")
    ]


@pytest.mark.parametrize(
    ("suggestion", "expected"),
    [
        ("x = 1", ["x = 1"]),
        ("```python\n    x = 1\n    y = 2\n```", ["    x = 1", "    y = 2"]),
        ("```\nx = 1\n```", ["x = 1"]),
        ("\n\n```py\nx = 1\n```\n", ["x = 1"]),
        ("12 |     if a:\n13 |         b()", ["    if a:", "        b()"]),
        (" 9 | a = 1\n10 | b = 2", ["a = 1", "b = 2"]),
        ("```python\n5 | return x\n```", ["return x"]),
        # Only when EVERY non-blank line has a gutter is it ours to strip.
        ("1 | a\nb = 2", ["1 | a", "b = 2"]),
        ("5 | a\n\n6 | b", ["a", "", "b"]),
    ],
)
def test_replacement_lines_strip_fences_and_gutter(suggestion: str, expected: list[str]) -> None:
    assert replacement_lines(suggestion) == expected


def test_single_line_fix_gets_the_original_indent_and_file_line_numbers() -> None:
    original = lines_of(5, 5)
    patch = suggestion_patch(PATH, original, 5, "if value <= low:")
    assert patch is not None
    assert patch.startswith(f"--- a/{PATH}\n+++ b/{PATH}\n")
    assert hunk_header(patch) == "@@ -5 +5 @@"
    assert removed(patch) == ["    if value < low:"]
    assert added(patch) == ["    if value <= low:"]


def test_hunks_are_shifted_to_the_file_lines_of_a_multi_line_span() -> None:
    original = lines_of(7, 8)
    patch = suggestion_patch(PATH, original, 7, "    if value >= high:\n        return high")
    assert patch is not None
    # Only the first line differs; with no context the hunk sits on file line 7.
    assert hunk_header(patch) == "@@ -7 +7 @@"
    assert added(patch) == ["    if value >= high:"]


@pytest.mark.parametrize(
    ("suggestion", "expected"),
    [
        # Only the first line lost its indent: the rest already sits where the original's does.
        (
            "if value <= low:\n        return low",
            ["    if value <= low:", "        return low"],
        ),
        # The whole block was dedented: later lines sit at the original's minus the first indent.
        (
            "if value <= low:\n    return low",
            ["    if value <= low:", "        return low"],
        ),
        # Flush-left later lines mean the whole block was dedented.
        (
            "if value <= low: \\\nreturn_low = True",
            ["    if value <= low: \\", "    return_low = True"],
        ),
        # Already indented: left alone.
        (
            "    if value <= low:\n        return low",
            ["    if value <= low:", "        return low"],
        ),
    ],
)
def test_reindent_restores_first_line_or_whole_block(suggestion: str, expected: list[str]) -> None:
    patch = suggestion_patch(PATH, lines_of(5, 6), 5, suggestion)
    assert patch is not None
    new_text = apply_to_lines(lines_of(5, 6), patch, first_line=5)
    assert new_text == expected


def test_blank_lines_are_not_indented_when_a_block_is_reindented() -> None:
    original = ["    a = 1", "    b = 2"]
    patch = suggestion_patch(PATH, original, 20, "a = 1\n\nb = 3")
    assert patch is not None
    assert apply_to_lines(original, patch, first_line=20) == ["    a = 1", "", "    b = 3"]


@pytest.mark.parametrize(
    ("original", "suggestion"),
    [
        (lines_of(5, 6), None),
        (lines_of(5, 6), ""),
        (lines_of(5, 6), "  \n "),
        # Identical to the code, with or without our gutter and fence.
        (lines_of(5, 6), "    if value < low:\n        return low"),
        (lines_of(5, 6), "```python\n5 |     if value < low:\n6 |         return low\n```"),
        # Identical once the dropped indent is restored.
        (lines_of(9, 9), "return value"),
        # Prose for a multi-line span.
        (lines_of(5, 6), "Use <= here so the lower bound is included."),
        # The model saw a placeholder, not the secret: applying it would break the code.
        (["    token = 'abc'"], "token = '<REDACTED:api_key>'"),
        (["    token = 'abc'"], "```\n<REDACTED:aws>\n```"),
    ],
)
def test_nothing_applicable_gives_no_patch(original: list[str], suggestion: str | None) -> None:
    assert suggestion_patch(PATH, original, 5, suggestion) is None


def test_a_one_line_sentence_replacing_one_line_is_still_code() -> None:
    # The prose rule needs a multi-line original: "x = y." on one line may be code to a model.
    assert suggestion_patch(PATH, ["    stop"], 3, "stop.") is not None


def test_suggestion_adding_lines_produces_a_growing_hunk() -> None:
    original = lines_of(12, 13)
    suggestion = "def area(radius):\n    if radius < 0:\n        raise ValueError(radius)\n" + (
        "    return math.pi * radius * radius"
    )
    patch = suggestion_patch(PATH, original, 12, suggestion)
    assert patch is not None
    assert removed(patch) == []
    assert added(patch) == ["    if radius < 0:", "        raise ValueError(radius)"]
    # A pure insertion after file line 12.
    assert hunk_header(patch) == "@@ -12,0 +13,2 @@"


CASES_THAT_APPLY = [
    (5, 6, "if value <= low:\n    return low"),
    (9, 9, "return min(max(value, low), high)"),
    (
        12,
        13,
        "def area(radius):\n    if radius < 0:\n        raise ValueError(radius)\n"
        "    return math.pi * radius ** 2",
    ),
    (7, 8, "```python\n7 |     if value >= high:\n8 |         return high\n```"),
    (4, 9, "def clamp(value, low, high):\n    return min(max(value, low), high)"),
]


def expected_file(start: int, end: int, suggestion: str) -> list[str]:
    """What applying the suggestion should give, reindented by hand for each case."""
    replaced = {
        (5, 6): ["    if value <= low:", "        return low"],
        (9, 9): ["    return min(max(value, low), high)"],
        (12, 13): [
            "def area(radius):",
            "    if radius < 0:",
            "        raise ValueError(radius)",
            "    return math.pi * radius ** 2",
        ],
        (7, 8): ["    if value >= high:", "        return high"],
        (4, 9): ["def clamp(value, low, high):", "    return min(max(value, low), high)"],
    }[(start, end)]
    return [*FILE[: start - 1], *replaced, *FILE[end:]]


@pytest.mark.skipif(shutil.which("patch") is None, reason="GNU patch not installed")
@pytest.mark.parametrize(("start", "end", "suggestion"), CASES_THAT_APPLY)
def test_patch_applies_with_gnu_patch(
    tmp_path: Path, start: int, end: int, suggestion: str
) -> None:
    target = tmp_path / PATH
    target.parent.mkdir(parents=True)
    target.write_text("\n".join(FILE) + "\n", encoding="utf-8")
    patch = suggestion_patch(PATH, lines_of(start, end), start, suggestion)
    assert patch is not None
    result = subprocess.run(
        ["patch", "-p1", "--forward", "--batch", "--no-backup-if-mismatch"],
        input=patch,
        text=True,
        cwd=tmp_path,
        capture_output=True,
        timeout=10,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    # No fuzz or offset: the hunk numbers are the file's own lines.
    assert "offset" not in result.stdout and "fuzz" not in result.stdout, result.stdout
    assert target.read_text(encoding="utf-8").split("\n")[:-1] == expected_file(
        start, end, suggestion
    )


@pytest.mark.parametrize(("start", "end", "suggestion"), CASES_THAT_APPLY)
def test_patch_applies_by_its_own_hunk_numbers(start: int, end: int, suggestion: str) -> None:
    patch = suggestion_patch(PATH, lines_of(start, end), start, suggestion)
    assert patch is not None
    assert apply_to_lines(FILE, patch, first_line=1) == expected_file(start, end, suggestion)


_HUNK = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@$")


def apply_to_lines(lines: list[str], patch: str, *, first_line: int) -> list[str]:
    """Apply a zero-context unified diff to ``lines`` (which start at file line ``first_line``).

    Checks every removed line against the text, so a hunk pointing at the
    wrong line fails here instead of silently editing something else.
    """
    out = list(lines)
    delta = 0
    rows = patch.splitlines()
    assert rows[0].startswith("--- a/") and rows[1].startswith("+++ b/"), patch
    i = 2
    while i < len(rows):
        match = _HUNK.match(rows[i])
        assert match, rows[i]
        old_start, old_len = int(match.group(1)), int(match.group(2) or 1)
        i += 1
        minus: list[str] = []
        plus: list[str] = []
        while i < len(rows) and not rows[i].startswith("@@"):
            (minus if rows[i].startswith("-") else plus).append(rows[i][1:])
            i += 1
        assert len(minus) == old_len
        # A zero-length hunk names the line after which it inserts.
        at = old_start - first_line + delta + (1 if old_len == 0 else 0)
        assert out[at : at + old_len] == minus, (at, minus)
        out[at : at + old_len] = plus
        delta += len(plus) - old_len
    return out
