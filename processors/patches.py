"""A model's suggested fix as a unified-diff patch against the head file.

A suggestion in prose ("use <= here") cannot be applied; replacement code can,
but only if it is anchored: a patch names the file and the exact lines it
replaces, so a publisher can offer it as a one-click suggestion and a human
can ``git apply`` it. Models echo our line-number gutter ("12 | code") and
wrap code in fences; both are stripped. A patch that would write one of the
redaction placeholders into the code is refused: the model never saw the real
value, so applying it would replace a secret with a placeholder.
"""

from __future__ import annotations

import difflib
import re

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
