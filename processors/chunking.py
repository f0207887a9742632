"""Changed files into reviewable chunks of code.

A reviewer (model or rule) needs the changed lines with enough context to
judge them, and the embedder needs pieces small enough to mean one thing. For
Python the natural piece is the smallest function or class around a change,
so a bug is shown with its whole function; elsewhere (and for module-level
lines) a window of lines around the change does. Chunk ids are content
addresses, so the same code seen in a later revision of the PR maps to the
same vector and the same cached verdict.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import tree_sitter_python
from tree_sitter import Language, Node, Parser

from processors.diff import FileDiff, parse_diff
from processors.languages import language_for
from schemas.records import CodeChunk, PullRequestEvent

_DEFINITIONS = ("function_definition", "class_definition")


@dataclass(frozen=True)
class ChunkSpan:
    """Lines ``start_line..end_line`` (1-based, inclusive) of the head file."""

    start_line: int
    end_line: int
    symbol: str | None
    text: str
    changed_lines: list[int]


@dataclass(frozen=True)
class _Definition:
    start: int
    end: int
    qualname: str
    depth: int


def chunk_file(
    path: str,
    content: str,
    changed_lines: list[int],
    *,
    window: int = 40,
    max_lines: int = 200,
) -> list[ChunkSpan]:
    """The chunks of ``content`` that contain at least one of ``changed_lines``.

    Python: the smallest enclosing definition of each changed line (split into
    windows when longer than ``max_lines``), module-level lines in windows.
    Other languages: windows of ``window`` lines, merged when they touch.
    Lines past the end of the file (an anchor after a trailing deletion)
    count as the last line. Sorted by start line, no two with the same range.
    """
    if window < 1 or max_lines < window:
        raise ValueError(f"need 1 <= window <= max_lines, got {window=} {max_lines=}")
    lines = _split_lines(content)
    if not lines:
        return []
    changed = sorted({min(n, len(lines)) for n in changed_lines if n >= 1})
    if not changed:
        return []
    groups: list[tuple[int, int, str | None, list[int]]] = []
    if language_for(path) == "python":
        groups = _python_groups(content, len(lines), changed)
    else:
        groups = [(1, len(lines), None, changed)]
    spans: list[tuple[int, int, str | None, list[int]]] = []
    for lo, hi, symbol, group in groups:
        if symbol is not None and hi - lo + 1 <= max_lines:
            spans.append((lo, hi, symbol, group))
            continue
        for start, end in _windows(group, lo, hi, window, max_lines):
            spans.append((start, end, symbol, [n for n in group if start <= n <= end]))
    return _assemble(spans, lambda start, end: "\n".join(lines[start - 1 : end]))


def chunk_event(
    event: PullRequestEvent, *, window: int = 40, max_lines: int = 200
) -> list[CodeChunk]:
    """The chunks of every changed, non-deleted, non-binary file of ``event``.

    Changed lines are the added lines plus the removed-code anchors. When the
    head content of a file is missing, its hunks stand in for it: the head
    side of a hunk (context and ``+`` lines) is a true slice of the head file,
    so windows over it keep real line numbers.
    """
    chunks: list[CodeChunk] = []
    for file_diff in parse_diff(event.diff):
        if file_diff.status == "deleted" or file_diff.is_binary:
            continue
        changed = sorted(set(file_diff.added_lines) | set(file_diff.removed_anchor_lines))
        if not changed:
            continue
        content = event.file_content(file_diff.path)
        if content is not None:
            spans = chunk_file(file_diff.path, content, changed, window=window, max_lines=max_lines)
        else:
            spans = _chunk_hunks(file_diff, changed, window, max_lines)
        chunks.extend(_code_chunk(event, file_diff.path, span) for span in spans)
    return chunks


def _code_chunk(event: PullRequestEvent, path: str, span: ChunkSpan) -> CodeChunk:
    text_hash = hashlib.sha256(span.text.encode("utf-8", "surrogatepass")).hexdigest()
    identity = f"{event.tenant}\0{event.repo}\0{path}\0{text_hash}"
    return CodeChunk(
        chunk_id=hashlib.sha256(identity.encode("utf-8", "surrogatepass")).hexdigest(),
        event_id=event.event_id,
        tenant=event.tenant,
        repo=event.repo,
        pr_number=event.pr_number,
        head_sha=event.head_sha,
        path=path,
        language=language_for(path),
        start_line=span.start_line,
        end_line=span.end_line,
        changed_lines=list(span.changed_lines),
        text=span.text,
        text_hash=text_hash,
        received_at_ms=event.received_at_ms,
        symbol=span.symbol,
    )


def _chunk_hunks(
    file_diff: FileDiff, changed: list[int], window: int, max_lines: int
) -> list[ChunkSpan]:
    """Windows over the head side of each hunk, for a file without content."""
    spans: list[tuple[int, int, str | None, list[int]]] = []
    text_by_line: dict[int, str] = {}
    for hunk in file_diff.hunks:
        numbered = list(hunk.head_lines())
        if not numbered:
            continue
        text_by_line.update(numbered)
        lo, hi = numbered[0][0], numbered[-1][0]
        group = [n for n in changed if lo <= n <= hi]
        for start, end in _windows(group, lo, hi, window, max_lines):
            spans.append((start, end, None, [n for n in group if start <= n <= end]))
    return _assemble(
        spans, lambda start, end: "\n".join(text_by_line[n] for n in range(start, end + 1))
    )


def _assemble(
    spans: Iterable[tuple[int, int, str | None, list[int]]],
    text_of: Callable[[int, int], str],
) -> list[ChunkSpan]:
    """Drop empty spans, merge those with the same range, sort by start line."""
    merged: dict[tuple[int, int], tuple[str | None, set[int]]] = {}
    for start, end, symbol, changed in spans:
        if not changed:
            continue
        old_symbol, old_changed = merged.get((start, end), (None, set()))
        merged[(start, end)] = (old_symbol or symbol, old_changed | set(changed))
    return [
        ChunkSpan(start, end, symbol, text_of(start, end), sorted(changed))
        for (start, end), (symbol, changed) in sorted(merged.items())
    ]


def _windows(
    changed: list[int], lo: int, hi: int, window: int, max_lines: int
) -> list[tuple[int, int]]:
    """Windows of ``window`` lines centred on the changed lines, within ``lo..hi``.

    Windows that overlap or touch are merged while the result stays within
    ``max_lines``; after that a new window starts where the last one ended,
    so windows never overlap and every changed line is in exactly one.
    """
    spans: list[tuple[int, int]] = []
    for line in sorted(changed):
        if spans and line <= spans[-1][1]:
            continue
        end = min(hi, max(lo, line - window // 2) + window - 1)
        start = max(lo, end - window + 1)
        if spans and start <= spans[-1][1] + 1:
            prev_start, prev_end = spans[-1]
            if end - prev_start + 1 <= max_lines:
                spans[-1] = (prev_start, end)
                continue
            start = prev_end + 1
        spans.append((start, end))
    return spans


def _split_lines(content: str) -> list[str]:
    """Lines as git numbers them: split on ``\\n`` only, no phantom last line."""
    lines = content.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


@functools.cache
def _python_language() -> Language:
    return Language(tree_sitter_python.language())


def _python_groups(
    content: str, line_count: int, changed: list[int]
) -> list[tuple[int, int, str | None, list[int]]]:
    """Changed lines grouped by their smallest enclosing definition.

    Returns ``(lo, hi, symbol, lines)``. Module-level lines (imports,
    constants, top-level statements) are grouped by the stretch of module
    code between two top-level definitions that holds them, ``symbol=None``:
    a changed constant must not drag the functions around it into its chunk,
    or every function of a small file would be reviewed twice.
    """
    tree = Parser(_python_language()).parse(content.encode("utf-8", "surrogatepass"))
    definitions = _definitions(tree.root_node)
    by_definition: dict[_Definition | None, list[int]] = {}
    for line in changed:
        enclosing = [d for d in definitions if d.start <= line <= d.end]
        best = min(enclosing, key=lambda d: (d.end - d.start, -d.depth), default=None)
        by_definition.setdefault(best, []).append(line)
    groups: list[tuple[int, int, str | None, list[int]]] = []
    top = [d for d in definitions if d.depth == 0]
    for definition, lines in by_definition.items():
        if definition is None:
            stretches: dict[tuple[int, int], list[int]] = {}
            for line in lines:
                lo = max((d.end for d in top if d.end < line), default=0) + 1
                hi = min((d.start for d in top if d.start > line), default=line_count + 1) - 1
                stretches.setdefault((lo, hi), []).append(line)
            groups += [(lo, hi, None, ls) for (lo, hi), ls in stretches.items()]
        else:
            end = min(definition.end, line_count)
            groups.append((definition.start, end, definition.qualname, lines))
    return groups


def _definitions(root: Node) -> list[_Definition]:
    """Every function and class definition, with its dotted qualified name.

    Iterative, because deeply nested expressions would overflow recursion.
    A decorated definition starts at its first decorator.
    """
    found: list[_Definition] = []
    stack: list[tuple[Node, str, int]] = [(root, "", 0)]
    while stack:
        node, prefix, depth = stack.pop()
        for child in node.children:
            target = child
            if child.type == "decorated_definition":
                target = child.child_by_field_name("definition") or child
            if target.type not in _DEFINITIONS:
                if child.named_child_count:
                    stack.append((child, prefix, depth))
                continue
            name_node = target.child_by_field_name("name")
            name = (
                name_node.text.decode("utf-8", "replace") if name_node and name_node.text else "?"
            )
            qualname = f"{prefix}.{name}" if prefix else name
            found.append(
                _Definition(child.start_point.row + 1, _last_row(child) + 1, qualname, depth)
            )
            stack.append((target, qualname, depth + 1))
    return found


def _last_row(node: Node) -> int:
    row = node.end_point.row
    if node.end_point.column == 0 and row > node.start_point.row:
        row -= 1
    return row
