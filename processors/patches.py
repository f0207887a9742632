"""A model's suggested fix as a unified-diff patch against the head file.

A suggestion in prose ("use <= here") cannot be applied; replacement code can,
but only if it is anchored: a patch names the file and the exact lines it
replaces, so a publisher can offer it as a one-click suggestion and a human
can ``git apply`` it. Models echo our line-number gutter ("12 | code") and
wrap code in fences; both are stripped. A patch that would write one of the
redaction placeholders into the code is refused: the model never saw the real
value, so applying it would replace a secret with a placeholder.

The other way round, ``patch_edits`` reads a finding's patch back as line
edits, for every consumer that offers the fix in its own form (a one-click
suggestion on an SCM, SARIF ``fixes``, reviewdog suggestions).
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

from processors.diff import parse_diff
from schemas.errors import ProcessorError
from schemas.records import Finding

_GUTTER = re.compile(r"^\s*\d+ \| ?")
_FENCE = re.compile(r"^\s*```[\w+-]*\s*\n(.*?)\n?\s*```\s*$", re.DOTALL)
REDACTION_MARK = "<REDACTED:"


def replacement_lines(suggestion: str) -> list[str]:
    """The suggested code as lines, without a surrounding fence or our gutter."""
    text = suggestion.strip("\n")
    fenced = _FENCE.match(text)
    if fenced:
        text = fenced.group(1)
    lines = text.split("\n")
    if lines and all(_GUTTER.match(line) for line in lines if line.strip()):
        lines = [_GUTTER.sub("", line, count=1) for line in lines]
    return lines


def suggestion_patch(
    path: str, original: list[str], start_line: int, suggestion: str | None
) -> str | None:
    """A unified diff replacing ``original`` (head lines from ``start_line``) by the suggestion.

    None when there is nothing to apply: no suggestion, one identical to the
    code, one that is prose rather than code (a single line ending in a full
    stop while the original is several lines), or one with a redaction mark.
    """
    if not suggestion or not suggestion.strip() or REDACTION_MARK in suggestion:
        return None
    new = replacement_lines(suggestion)
    if new == original:
        return None
    if len(new) == 1 and len(original) > 1 and new[0].rstrip().endswith("."):
        return None
    new = _reindent(new, original)
    diff = difflib.unified_diff(
        [line + "\n" for line in original],
        [line + "\n" for line in new],
        fromfile=f"a/{path}",
        tofile=f"b/{path}",
        n=0,
    )
    text = "".join(diff)
    if not text:
        return None
    # difflib numbers from 1 within the slice; shift the hunk to the file's lines.
    return _shift_hunks(text, start_line - 1)


_HUNK = re.compile(r"^@@ -(\d+)(,\d+)? \+(\d+)(,\d+)? @@", re.MULTILINE)


def _shift_hunks(text: str, offset: int) -> str:
    def shift(match: re.Match[str]) -> str:
        old, old_len, new, new_len = match.groups()
        return f"@@ -{int(old) + offset}{old_len or ''} +{int(new) + offset}{new_len or ''} @@"

    return _HUNK.sub(shift, text)


def _reindent(new: list[str], original: list[str]) -> list[str]:
    """Restore the indentation models drop: of the first line only, or of the whole block.

    The original's own shape decides between the two: if the suggestion's
    later lines sit where the original's sit minus the first line's indent,
    the whole block was dedented.
    """
    indent = _indent(original[0]) if original else ""
    if not new or not indent or _indent(new[0]):
        return new
    rest_new = [len(_indent(line)) for line in new[1:] if line.strip()]
    rest_old = [len(_indent(line)) for line in original[1:] if line.strip()]
    dedented = not rest_new or min(rest_new) == 0
    if rest_new and rest_old and min(rest_new) == min(rest_old) - len(indent):
        dedented = True
    if not dedented:
        return [indent + new[0], *new[1:]]
    return [indent + line if line.strip() else line for line in new]


def _indent(line: str) -> str:
    return line[: len(line) - len(line.lstrip())]


@dataclass(frozen=True, slots=True)
class TextEdit:
    """Replace head lines ``start_line..end_line`` by ``new_lines``.

    ``end_line == start_line - 1`` is a pure insertion before ``start_line``.
    Both SARIF and reviewdog express the three shapes (replace, delete,
    insert) differently, so the edit stays in lines and each writer maps it.
    """

    start_line: int
    end_line: int
    new_lines: tuple[str, ...]

    @property
    def is_insertion(self) -> bool:
        return self.end_line < self.start_line

    @property
    def is_deletion(self) -> bool:
        return not self.is_insertion and not self.new_lines


def patch_edits(finding: Finding) -> list[TextEdit]:
    """The finding's suggestion as line edits of its file, or [] when that is not exact.

    Exact means: one modified text file, the finding's own path, hunks whose
    line counts match their headers (``parse_diff`` checks), no "no newline
    at end of file" marker (the edit could not say what happens to the last
    newline), and hunks that do not overlap. Edits come bottom-up, so applying
    them in order never shifts a later one, whichever way a consumer reads
    the regions (against the original file or the file so far).
    """
    if not finding.suggestion or not finding.suggestion.strip():
        return []
    try:
        files = parse_diff(finding.suggestion)
    except ProcessorError:
        return []
    if len(files) != 1:
        return []
    diff = files[0]
    if diff.is_binary or diff.status != "modified" or diff.path != finding.path:
        return []
    edits: list[TextEdit] = []
    for hunk in diff.hunks:
        if any(line.startswith("\\") for line in hunk.lines):
            return []
        new_lines = tuple(line[1:] for line in hunk.lines if line[:1] in (" ", "+"))
        if hunk.old_len:
            edits.append(TextEdit(hunk.old_start, hunk.old_start + hunk.old_len - 1, new_lines))
        else:  # with a zero length the old start names the line *before* the insertion
            edits.append(TextEdit(hunk.old_start + 1, hunk.old_start, new_lines))
    edits.sort(key=lambda e: (e.start_line, e.end_line))
    for before, after in zip(edits, edits[1:], strict=False):
        if after.start_line <= max(before.end_line, before.start_line):
            return []
    return edits[::-1]
