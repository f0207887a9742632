"""What deep analysis shows beside the change: the code it touches, from the same repo.

A model reviewing ``total = price(item) * qty`` cannot tell a wrong argument
from a right one without ``price``'s definition. So the pipeline looks up, in
Milvus and for the SAME tenant and repo only, the chunks that define the
symbols a change calls, plus the chunks nearest to it by embedding. This
module holds the pure parts: which names a change touches, and how a stored
chunk is rendered as a context snippet (with its lines numbered, capped, so
one huge definition cannot eat the token budget).
"""

from __future__ import annotations

import builtins
import keyword
import re
from collections.abc import Iterable, Mapping
from typing import Any

from schemas.records import ChunkVerdict

_CALL = re.compile(r"(?:\b|\.)([A-Za-z_][A-Za-z0-9_]*)\s*\(")
_DEFINES = re.compile(r"^\s*(?:async\s+)?(?:def|class|func|function)\s+([A-Za-z_]\w*)", re.M)
_IGNORED = (
    frozenset(keyword.kwlist)
    | frozenset(dir(builtins))
    | frozenset(
        {"self", "cls", "super", "print", "len", "isinstance", "function", "func", "require"}
    )
)
SNIPPET_MAX_LINES = 40


def touched_symbols(chunk: ChunkVerdict, *, limit: int = 8) -> list[str]:
    """Names called on the chunk's changed lines that the chunk does not define itself.

    In order of first use, at most ``limit``: the first calls of a change are
    the ones its author was thinking about.
    """
    lines = chunk.text.split("\n")
    changed = [
        lines[n - chunk.start_line]
        for n in chunk.changed_lines
        if 0 <= n - chunk.start_line < len(lines)
    ]
    defined = set(_DEFINES.findall(chunk.text))
    names: list[str] = []
    for line in changed:
        code = line.split("#", 1)[0]
        for name in _CALL.findall(code):
            if name in _IGNORED or name in defined or name in names:
                continue
            names.append(name)
            if len(names) >= limit:
                return names
    return names


def render_snippet(row: Mapping[str, Any], *, max_lines: int = SNIPPET_MAX_LINES) -> str:
    """A stored chunk as context: a header naming where it is, then numbered lines."""
    text = str(row.get("text") or "")
    start = int(row.get("start_line") or 1)
    lines = text.split("\n")
    cut = len(lines) > max_lines
    lines = lines[:max_lines]
    width = len(str(start + len(lines) - 1))
    body = "\n".join(f"{n:>{width}} | {line}" for n, line in enumerate(lines, start=start))
    symbol = f" symbol={row['symbol']}" if row.get("symbol") else ""
    more = f"\n... ({len(text.split(chr(10))) - max_lines} more lines)" if cut else ""
    return f"path={row.get('path')} lines={start}-{start + len(lines) - 1}{symbol}\n{body}{more}"


def unique_snippets(rows: Iterable[Mapping[str, Any]], *, skip_paths_lines: set[str]) -> list[str]:
    """Snippets for ``rows`` in order, once per chunk, leaving out code already shown.

    ``skip_paths_lines`` holds "path:start" of chunks under review: a chunk of
    an earlier push of the same file would only repeat them.
    """
    seen: set[str] = set()
    out: list[str] = []
    for row in rows:
        if not row.get("text"):
            continue
        where = f"{row.get('path')}:{row.get('start_line')}"
        if where in seen or where in skip_paths_lines:
            continue
        seen.add(where)
        out.append(render_snippet(row))
    return out
