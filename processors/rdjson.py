"""Findings in reviewdog's diagnostic format: ``rdjson`` (one document) and ``rdjsonl``.

Teams that already post linters through reviewdog can feed it our findings
with ``reviewdog -f=rdjson`` (or ``-f=rdjsonl``) and keep their reporters,
filters and suppressions. Field names follow reviewdog's ``rdf`` proto
(``DiagnosticResult``, ``Diagnostic``, ``Location``, ``Range``, ``Position``,
``Suggestion``, ``Code``, ``Source``).

Ranges are line ranges without columns ("linewise" in reviewdog: the end
line is included), which is also the only shape reviewdog turns into a
one-click GitHub suggestion. Insertions and deletions need columns to say
where the newline goes, and get them. Pure.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from processors.sarif import TOOL_NAME, TextEdit, patch_edits
from schemas.errors import ProcessorError
from schemas.records import SEVERITIES, Finding

# reviewdog's Severity enum has three problem levels; our five fold into them.
RD_SEVERITIES = {
    "CRITICAL": "ERROR",
    "HIGH": "ERROR",
    "MEDIUM": "WARNING",
    "LOW": "INFO",
    "INFO": "INFO",
}
_RD_ORDER = ("INFO", "WARNING", "ERROR")


def rd_severity(severity: str) -> str:
    """reviewdog's severity for one of ours."""
    if severity not in RD_SEVERITIES:
        raise ProcessorError(f"unknown severity {severity!r}; expected one of {SEVERITIES}")
    return RD_SEVERITIES[severity]


def to_diagnostic(finding: Finding) -> dict[str, Any]:
    """One ``Diagnostic``; ``original_output`` keeps our identity and context for tooling."""
    start = max(1, finding.start_line)
    diagnostic: dict[str, Any] = {
        "message": finding.message or finding.rule_id,
        "location": {
            "path": finding.path,
            "range": {"start": {"line": start}, "end": {"line": max(start, finding.end_line)}},
        },
        "severity": rd_severity(finding.severity),
        "code": {"value": finding.rule_id},
        "original_output": json.dumps(
            {
                "fingerprint": finding.fingerprint,
                "repo": finding.repo,
                "pr_number": finding.pr_number,
                "head_sha": finding.head_sha,
                "category": finding.category,
                "confidence": finding.confidence,
                "origin": finding.origin,
            },
            ensure_ascii=False,
            sort_keys=True,
        ),
    }
    suggestions = [_suggestion(edit) for edit in patch_edits(finding)]
    if suggestions:
        diagnostic["suggestions"] = suggestions
    return diagnostic


def to_rdjson(findings: Sequence[Finding]) -> dict[str, Any]:
    """A ``DiagnosticResult``; its severity is the worst of its diagnostics (absent if none)."""
    diagnostics = [to_diagnostic(f) for f in findings]
    result: dict[str, Any] = {"source": {"name": TOOL_NAME}, "diagnostics": diagnostics}
    if diagnostics:
        result["severity"] = max((d["severity"] for d in diagnostics), key=_RD_ORDER.index)
    return result


def to_rdjsonl(findings: Sequence[Finding]) -> str:
    """JSON Lines of ``Diagnostic``, each self-contained (it names its source)."""
    lines = [
        json.dumps({**to_diagnostic(f), "source": {"name": TOOL_NAME}}, ensure_ascii=False)
        for f in findings
    ]
    return "".join(line + "\n" for line in lines)


def _suggestion(edit: TextEdit) -> dict[str, Any]:
    if edit.is_insertion:  # a zero-width range at the start of the line
        at = {"line": edit.start_line, "column": 1}
        return {"range": {"start": at, "end": dict(at)}, "text": _with_newlines(edit)}
    if edit.is_deletion:  # up to the start of the next line, so the newlines go too
        return {
            "range": {
                "start": {"line": edit.start_line, "column": 1},
                "end": {"line": edit.end_line + 1, "column": 1},
            },
            "text": "",
        }
    return {
        "range": {"start": {"line": edit.start_line}, "end": {"line": edit.end_line}},
        "text": "\n".join(edit.new_lines),
    }


def _with_newlines(edit: TextEdit) -> str:
    return "".join(line + "\n" for line in edit.new_lines)
