"""Unified diff parsing: the text of a pull request into files and hunks.

Everything downstream (chunking, anchoring findings on lines, the removed-code
anchors) needs head-side line numbers, so this module turns the diff text into
small frozen records and refuses text it cannot read exactly: a diff whose hunk
counts do not match its headers would put every later finding on the wrong
line, and it is better to dead-letter it than to review it wrong.

Understood: ``git diff`` output (``diff --git`` headers, new/deleted file
mode, renames and copies, mode changes, ``Binary files ... differ``, ``GIT
binary patch``, C-quoted paths), plain ``diff -u`` output (``---``/``+++``
pairs, timestamps after a tab), ``/dev/null`` sides, ``\\ No newline at end of
file`` markers, hunk headers without counts (``@@ -1 +1 @@``) and empty lines
standing for empty context lines (some tools strip the trailing space).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from schemas.errors import ProcessorError

STATUSES = ("added", "modified", "deleted", "renamed")

_HUNK_RE = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")
_BINARY_RE = re.compile(r"^Binary files (.+) and (.+) differ$")
_GIT_HEADER = "diff --git "
_IGNORED_EXTENDED = (
    "index ",
    "old mode ",
    "new mode ",
    "similarity index ",
    "dissimilarity index ",
)
_ESCAPES = {"a": 7, "b": 8, "t": 9, "n": 10, "v": 11, "f": 12, "r": 13, '"': 34, "\\": 92}


@dataclass(frozen=True)
class Hunk:
    """One ``@@`` block; ``lines`` keep their prefix (`` ``, ``+``, ``-`` or ``\\``)."""

    old_start: int
    old_len: int
    new_start: int
    new_len: int
    lines: list[str]

    def head_lines(self) -> Iterator[tuple[int, str]]:
        """The head-side lines of the hunk (context and ``+``), numbered, prefix removed.

        They are a contiguous slice of the head file, which is what lets a
        chunker work from the diff alone when the file content is missing.
        """
        line_no = self._first_head_line()
        for line in self.lines:
            if line[:1] in (" ", "+"):
                yield line_no, line[1:]
                line_no += 1

    def _first_head_line(self) -> int:
        # With a zero length the start names the line *before* the hunk.
        return self.new_start if self.new_len else self.new_start + 1


@dataclass(frozen=True)
class FileDiff:
    """The changes to one file.

    ``path`` is the head path (the old path for a deletion); ``old_path`` is
    the base path, ``None`` for an added file.
    """

    path: str
    old_path: str | None
    status: str
    is_binary: bool
    hunks: list[Hunk]

    @property
    def added_lines(self) -> list[int]:
        """Head line numbers of the ``+`` lines, sorted."""
        if self.status == "deleted":
            return []
        found: list[int] = []
        for hunk in self.hunks:
            line_no = hunk._first_head_line()
            for line in hunk.lines:
                tag = line[:1]
                if tag == "+":
                    found.append(line_no)
                if tag in (" ", "+"):
                    line_no += 1
        return sorted(set(found))

    @property
    def shown_lines(self) -> set[int]:
        """Head line numbers the diff shows (context and ``+``): where a review comment can go."""
        if self.status == "deleted":
            return set()
        return {line_no for hunk in self.hunks for line_no, _ in hunk.head_lines()}

    @property
    def removed_anchor_lines(self) -> list[int]:
        """For each run of ``-`` lines, the head lines where the removal shows.

        A pure removal happens between two surviving head lines, and both are
        where a reviewer would point: the line before (what the deleted code
        followed, often the condition it guarded) and the next surviving line
        (what now runs in its place). So a PR that only deletes a guard still
        has lines to review. Only lines inside the hunk count, since only
        those can carry a review comment. A run replaced by ``+`` lines
        anchors on the first of them: the replacement marks the spot.
        """
        if self.status == "deleted":
            return []
        anchors: set[int] = set()
        for hunk in self.hunks:
            line_no = hunk._first_head_line()
            in_run = False
            before: int | None = None  # the surviving line the current run follows
            for line in hunk.lines:
                tag = line[:1]
                if tag == "-":
                    if not in_run:
                        before = line_no - 1 if line_no > hunk._first_head_line() else None
                    in_run = True
                elif tag in (" ", "+"):
                    if in_run:
                        anchors.add(line_no)
                        if tag == " " and before is not None:
                            anchors.add(before)
                        in_run = False
                    line_no += 1
            if in_run:
                anchors.add(max(line_no - 1, 1))
        return sorted(anchors)


TRUNCATION_MARKER = "# codereview: diff truncated: {omitted} files omitted"
_TRUNCATION_RE = re.compile(r"^# codereview: diff truncated: (\d+) files omitted$", re.MULTILINE)


def split_truncation_marker(diff: str) -> tuple[str, int]:
    """``(diff without our truncation marker line, files omitted)``; 0 when complete.

    SCM clients never cut a diff silently: when one is too large they keep
    whole files and append this marker line, which is ours, not git's.
    """
    match = _TRUNCATION_RE.search(diff)
    if match is None:
        return diff, 0
    return diff[: match.start()] + diff[match.end() :].lstrip("\n"), int(match.group(1))


def split_file_sections(diff: str) -> list[str]:
    """The per-file sections of a git diff (each starts at ``diff --git``), text kept."""
    sections: list[str] = []
    current: list[str] = []
    for line in diff.splitlines(keepends=True):
        if line.startswith("diff --git ") and current:
            sections.append("".join(current))
            current = []
        current.append(line)
    if current:
        sections.append("".join(current))
    return sections


def limit_diff(sections: Sequence[str], *, max_bytes: int, omitted: int = 0) -> str:
    """Whole sections, in order, while they fit in ``max_bytes``, then the marker.

    ``omitted`` counts files the SCM already left out; when it or the cut is
    non-zero the diff ends with ``TRUNCATION_MARKER``.
    """
    kept: list[str] = []
    size = 0
    for index, section in enumerate(sections):
        section_bytes = len(section.encode("utf-8"))
        if size + section_bytes > max_bytes:
            omitted += len(sections) - index
            break
        kept.append(section if section.endswith("\n") else section + "\n")
        size += section_bytes
    diff = "".join(kept)
    if omitted:
        diff += TRUNCATION_MARKER.format(omitted=omitted) + "\n"
    return diff


def parse_diff(text: str) -> list[FileDiff]:
    """Parse a unified diff into one ``FileDiff`` per file, in diff order.

    Raises ``ProcessorError`` naming the offending line when the text is not
    a unified diff. Empty (or blank) text is an empty diff. Our truncation
    marker (see ``split_truncation_marker``) is accepted and skipped.
    """
    text, _ = split_truncation_marker(text)
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    files: list[FileDiff] = []
    i = 0
    while i < len(lines):
        line = lines[i].rstrip("\r")
        if not line.strip():
            i += 1
        elif line.startswith(_GIT_HEADER):
            file_diff, i = _parse_git_file(lines, i)
            files.append(file_diff)
        elif line.startswith("--- ") and _next_is(lines, i, "+++ "):
            file_diff, i = _parse_plain_file(lines, i)
            files.append(file_diff)
        elif _BINARY_RE.match(line):
            files.append(_plain_binary(line))
            i += 1
        elif line.startswith(("diff --cc ", "diff --combined ")):
            raise ProcessorError(f"line {i + 1}: combined (merge) diffs are not supported")
        elif line.startswith("@@"):
            raise ProcessorError(f"line {i + 1}: hunk without a file header ('---'/'+++')")
        elif line[:1] in (" ", "+", "-") and files and files[-1].hunks:
            raise ProcessorError(
                f"line {i + 1}: hunk has more lines than its header declares: {line[:60]!r}"
            )
        else:
            raise ProcessorError(
                f"line {i + 1}: not a unified diff; expected 'diff --git' or '---', "
                f"got {line[:60]!r}"
            )
    return files


def _next_is(lines: list[str], i: int, prefix: str) -> bool:
    return i + 1 < len(lines) and lines[i + 1].startswith(prefix)


def _parse_git_file(lines: list[str], i: int) -> tuple[FileDiff, int]:
    """One ``diff --git`` section: extended header lines, then ``---``/``+++`` and hunks."""
    start = i
    old_path, new_path = _split_git_header(lines[i][len(_GIT_HEADER) :].rstrip("\r"))
    added = deleted = renamed = copied = binary = False
    hunks: list[Hunk] = []
    i += 1
    while i < len(lines):
        line = lines[i].rstrip("\r")
        if line.startswith("new file mode "):
            added = True
        elif line.startswith("deleted file mode "):
            deleted = True
        elif line.startswith("rename from "):
            old_path, renamed = _unquote(line[len("rename from ") :]), True
        elif line.startswith("rename to "):
            new_path, renamed = _unquote(line[len("rename to ") :]), True
        elif line.startswith("copy from "):
            old_path, copied = _unquote(line[len("copy from ") :]), True
        elif line.startswith("copy to "):
            new_path, copied = _unquote(line[len("copy to ") :]), True
        elif line.startswith(_IGNORED_EXTENDED):
            pass
        elif _BINARY_RE.match(line):
            binary = True
        elif line == "GIT binary patch":
            binary = True
            i += 1
            while i < len(lines) and not lines[i].startswith(_GIT_HEADER):
                i += 1
            break
        elif line.startswith("--- "):
            if not _next_is(lines, i, "+++ "):
                raise ProcessorError(f"line {i + 1}: '---' line not followed by '+++'")
            old_side = _header_path(line[4:], "a/")
            new_side = _header_path(lines[i + 1].rstrip("\r")[4:], "b/")
            added = added or old_side is None
            deleted = deleted or new_side is None
            old_path = old_side or old_path
            new_path = new_side or new_path
            hunks, i = _parse_hunks(lines, i + 2)
            if not hunks:
                raise ProcessorError(f"line {start + 1}: '---'/'+++' header without any hunk")
            break
        else:
            break
        i += 1
    if old_path is None or new_path is None:
        raise ProcessorError(f"line {start + 1}: cannot read the file paths of {lines[start]!r}")
    if added and deleted:
        raise ProcessorError(f"line {start + 1}: a file cannot be both added and deleted")
    if deleted:
        return FileDiff(old_path, old_path, "deleted", binary, hunks), i
    if added or copied:
        return FileDiff(new_path, old_path if copied else None, "added", binary, hunks), i
    status = "renamed" if renamed or old_path != new_path else "modified"
    return FileDiff(new_path, old_path, status, binary, hunks), i


def _parse_plain_file(lines: list[str], i: int) -> tuple[FileDiff, int]:
    """A ``diff -u`` style section: ``---``/``+++`` then at least one hunk."""
    old_path = _header_path(lines[i].rstrip("\r")[4:], "a/")
    new_path = _header_path(lines[i + 1].rstrip("\r")[4:], "b/")
    hunks, end = _parse_hunks(lines, i + 2)
    if not hunks:
        raise ProcessorError(f"line {i + 1}: file header without any hunk")
    if old_path is None and new_path is None:
        raise ProcessorError(f"line {i + 1}: both sides are /dev/null")
    if old_path is None:
        return FileDiff(new_path or "", None, "added", False, hunks), end
    if new_path is None:
        return FileDiff(old_path, old_path, "deleted", False, hunks), end
    old_tail, new_tail = old_path.partition("/")[2], new_path.partition("/")[2]
    if old_path != new_path and old_tail and old_tail == new_tail:
        # ``diff -ru old/ new/``: the first directory names the tree, as with ``patch -p1``.
        old_path = new_path = new_tail
    status = "modified" if old_path == new_path else "renamed"
    return FileDiff(new_path, old_path, status, False, hunks), end


def _plain_binary(line: str) -> FileDiff:
    match = _BINARY_RE.match(line)
    assert match is not None
    old_path = _header_path(match.group(1), "a/")
    new_path = _header_path(match.group(2), "b/")
    if old_path is None:
        return FileDiff(new_path or "", None, "added", True, [])
    if new_path is None:
        return FileDiff(old_path, old_path, "deleted", True, [])
    status = "modified" if old_path == new_path else "renamed"
    return FileDiff(new_path, old_path, status, True, [])


def _parse_hunks(lines: list[str], i: int) -> tuple[list[Hunk], int]:
    hunks: list[Hunk] = []
    while i < len(lines) and lines[i].startswith("@@"):
        hunk, i = _parse_hunk(lines, i)
        hunks.append(hunk)
    return hunks, i


def _parse_hunk(lines: list[str], i: int) -> tuple[Hunk, int]:
    """One hunk; its body must hold exactly the line counts its header declares."""
    header = lines[i].rstrip("\r")
    match = _HUNK_RE.match(header)
    if match is None:
        raise ProcessorError(f"line {i + 1}: malformed hunk header {header[:60]!r}")
    old_start, new_start = int(match.group(1)), int(match.group(3))
    old_len = int(match.group(2)) if match.group(2) is not None else 1
    new_len = int(match.group(4)) if match.group(4) is not None else 1
    start = i
    old_seen = new_seen = 0
    body: list[str] = []
    i += 1
    while old_seen < old_len or new_seen < new_len:
        if i >= len(lines):
            raise ProcessorError(_count_error(start, header, old_seen, new_seen, "ends after"))
        line = lines[i]
        tag = line[:1]
        if tag in (" ", "") or line == "\r":
            old_seen, new_seen = old_seen + 1, new_seen + 1
            body.append(line if tag == " " else " " + line)
        elif tag == "-":
            old_seen += 1
            body.append(line)
        elif tag == "+":
            new_seen += 1
            body.append(line)
        elif tag == "\\":
            body.append(line)
        else:
            raise ProcessorError(_count_error(start, header, old_seen, new_seen, "stops after"))
        if old_seen > old_len or new_seen > new_len:
            raise ProcessorError(_count_error(start, header, old_seen, new_seen, "overflows at"))
        i += 1
    while i < len(lines) and lines[i].startswith("\\"):
        body.append(lines[i])
        i += 1
    return Hunk(old_start, old_len, new_start, new_len, body), i


def _count_error(start: int, header: str, old_seen: int, new_seen: int, what: str) -> str:
    return (
        f"line {start + 1}: hunk {header!r} {what} {old_seen} old / {new_seen} new lines; "
        "its line counts do not match its header"
    )


def _header_path(raw: str, prefix: str) -> str | None:
    """The path of a ``---``/``+++`` line: unquoted, timestamp and prefix removed."""
    if raw.startswith('"'):
        token, _ = _take_quoted(raw)
        path = _unquote(token)
    else:
        path = raw.split("\t", 1)[0].rstrip()
    if path == "/dev/null":
        return None
    return path[len(prefix) :] if path.startswith(prefix) else path


def _split_git_header(header: str) -> tuple[str | None, str | None]:
    """Both paths of ``a/<old> b/<new>``; ``(None, None)`` when it is ambiguous.

    Unquoted paths may contain spaces, so the split prefers the point where
    both sides name the same file (the common case); the ``---``/``+++`` or
    rename lines that follow override this guess anyway.
    """
    if header.startswith('"'):
        old_token, rest = _take_quoted(header)
        rest = rest.lstrip(" ")
        new_token = _take_quoted(rest)[0] if rest.startswith('"') else rest
        return _strip(_unquote(old_token), "a/"), _strip(_unquote(new_token), "b/")
    if ' "' in header:
        old_raw, new_token = header.split(' "', 1)
        return _strip(old_raw, "a/"), _strip(_unquote('"' + new_token), "b/")
    splits = [m.start() for m in re.finditer(" b/", header)]
    for pos in splits:
        old, new = _strip(header[:pos], "a/"), _strip(header[pos + 1 :], "b/")
        if old == new:
            return old, new
    if len(splits) == 1:
        pos = splits[0]
        return _strip(header[:pos], "a/"), _strip(header[pos + 1 :], "b/")
    return None, None


def _strip(path: str, prefix: str) -> str:
    return path[len(prefix) :] if path.startswith(prefix) else path


def _take_quoted(text: str) -> tuple[str, str]:
    """Split ``"quoted" rest`` after the closing unescaped quote."""
    i = 1
    while i < len(text):
        if text[i] == "\\":
            i += 2
            continue
        if text[i] == '"':
            return text[: i + 1], text[i + 1 :]
        i += 1
    raise ProcessorError(f"unterminated quoted path {text[:60]!r}")


def _unquote(text: str) -> str:
    """Undo git's C-style path quoting (``"a/t\\303\\251st.py"``)."""
    if not (len(text) >= 2 and text.startswith('"') and text.endswith('"')):
        return text
    body, out, i = text[1:-1], bytearray(), 0
    while i < len(body):
        char = body[i]
        if char == "\\" and i + 1 < len(body):
            nxt = body[i + 1]
            if nxt in _ESCAPES:
                out.append(_ESCAPES[nxt])
                i += 2
            elif body[i + 1 : i + 4].isdigit():
                out.append(int(body[i + 1 : i + 4], 8) & 0xFF)
                i += 4
            else:
                out += nxt.encode()
                i += 2
        else:
            out += char.encode()
            i += 1
    return out.decode("utf-8", errors="replace")
