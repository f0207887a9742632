"""The stable identity of a finding, so feedback and dedup outlive line moves.

A finding on the same code under the same rule must keep its fingerprint when
lines above it are added or removed and when the block is re-indented (moved
into an ``if``, a formatter run), otherwise a dismissed finding comes back on
every push. So the identity uses the code span, normalized, and never the line
numbers.
"""

from __future__ import annotations

import hashlib
import re

_WHITESPACE = re.compile(r"\s+")


def normalize_span(text: str) -> str:
    """``text`` with each line stripped, blank lines dropped, inner whitespace collapsed."""
    lines = (_WHITESPACE.sub(" ", line.strip()) for line in text.splitlines())
    return "\n".join(line for line in lines if line)


def fingerprint(
    tenant: str, repo: str, path: str, code_span: str, rule_id: str, anchor: str = ""
) -> str:
    """A sha256 hex identity of a finding: where it is, what code, which rule.

    ``anchor`` tells identical code apart: the same line pasted into ten
    functions is ten findings, not one. Callers pass the enclosing symbol
    and the occurrence number of the span within it, which, unlike line
    numbers, survive edits elsewhere in the file.
    """
    fields: tuple[str, ...] = (tenant, repo, path, normalize_span(code_span), rule_id)
    if anchor:
        fields += (anchor,)
    return hashlib.sha256("\0".join(fields).encode("utf-8", "surrogatepass")).hexdigest()
