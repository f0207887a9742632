"""``rdjson`` / ``rdjsonl``: reviewdog's field names, severities, line ranges, suggestions.

Suggestions are checked by applying them the way reviewdog's format defines
ranges: without columns a range is linewise (the end line included, its
newline not); with columns the end is exclusive.
"""

from __future__ import annotations

import difflib
import functools
import json
from typing import Any

import pytest

from processors.rdjson import rd_severity, to_diagnostic, to_rdjson, to_rdjsonl
from schemas.errors import ProcessorError
from tests.fakes.findings import sample_finding

finding = functools.partial(
    sample_finding,
    fingerprint="f" * 64,
    rule_id="ruff:F821",
    severity="MEDIUM",
    confidence=0.6,
    message="undefined name `y`",
    origin="triage",
)
OLD = ["import os", "", "def f(n):", "    return y", "", "x = 1"]
DIAGNOSTIC_KEYS = {"message", "location", "severity", "source", "code", "suggestions",
                   "original_output"}  # fmt: skip


def patch(new: list[str], context: int = 0) -> str:
    lines = difflib.unified_diff(
        [x + "\n" for x in OLD], [x + "\n" for x in new], "a/src/app.py", "b/src/app.py", n=context
    )
    return "".join(lines)


def apply_suggestions(text: str, suggestions: list[dict[str, Any]]) -> str:
    for s in suggestions:
        start, end = s["range"]["start"], s["range"].get("end", s["range"]["start"])
        lines = text.split("\n")
        begin = sum(len(x) + 1 for x in lines[: start["line"] - 1]) + start.get("column", 1) - 1
        if "column" in end:
            stop = sum(len(x) + 1 for x in lines[: end["line"] - 1]) + end["column"] - 1
        else:  # linewise: through the end line, without its newline
            stop = sum(len(x) + 1 for x in lines[: end["line"]]) - 1
        text = text[:begin] + s["text"] + text[stop:]
    return text


@pytest.mark.parametrize(
    ("severity", "expected"),
    [("CRITICAL", "ERROR"), ("HIGH", "ERROR"), ("MEDIUM", "WARNING"), ("LOW", "INFO"),
     ("INFO", "INFO")],
)  # fmt: skip
def test_severities(severity: str, expected: str) -> None:
    assert rd_severity(severity) == expected
    assert to_diagnostic(finding(severity=severity))["severity"] == expected


def test_an_unknown_severity_is_a_processor_error() -> None:
    with pytest.raises(ProcessorError):
        to_diagnostic(finding(severity="BAD"))


def test_a_diagnostic_has_reviewdogs_shape() -> None:
    d = to_diagnostic(finding())
    assert set(d) <= DIAGNOSTIC_KEYS
    assert d["message"] == "undefined name `y`"
    assert d["location"] == {
        "path": "src/app.py",
        "range": {"start": {"line": 3}, "end": {"line": 4}},
    }
    assert d["code"] == {"value": "ruff:F821"}
    assert "suggestions" not in d
    extra = json.loads(d["original_output"])
    assert extra["fingerprint"] == "f" * 64 and extra["pr_number"] == 7


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [(3, 4, (3, 4)), (5, 5, (5, 5)), (0, 0, (1, 1)), (9, 2, (9, 9))],
)
def test_line_ranges(start: int, end: int, expected: tuple[int, int]) -> None:
    rng = to_diagnostic(finding(start_line=start, end_line=end))["location"]["range"]
    assert (rng["start"]["line"], rng["end"]["line"]) == expected
    assert "column" not in rng["start"] and "column" not in rng["end"]


def test_rdjson_result_carries_source_and_the_worst_severity() -> None:
    findings = [finding(severity="LOW"), finding(severity="HIGH"), finding(severity="MEDIUM")]
    doc = to_rdjson(findings)
    assert doc["source"] == {"name": "codereview"}
    assert doc["severity"] == "ERROR"
    assert [d["severity"] for d in doc["diagnostics"]] == ["INFO", "ERROR", "WARNING"]
    assert to_rdjson([]) == {"source": {"name": "codereview"}, "diagnostics": []}


def test_rdjsonl_is_one_self_contained_diagnostic_per_line() -> None:
    findings = [finding(message="α → β\nsecond line"), finding(rule_id="llm:bug")]
    text = to_rdjsonl(findings)
    lines = text.splitlines()
    assert len(lines) == 2 and text.endswith("\n")
    parsed = [json.loads(line) for line in lines]
    assert all(p["source"] == {"name": "codereview"} for p in parsed)
    assert parsed[0]["message"] == "α → β\nsecond line"
    assert [p["code"]["value"] for p in parsed] == ["ruff:F821", "llm:bug"]
    assert to_rdjsonl([]) == ""


NEW_REPLACE = OLD[:3] + ["    return n"] + OLD[4:]
NEW_INSERT = OLD[:3] + ["    y = n", "    # then"] + OLD[3:]
NEW_DELETE = OLD[:4] + OLD[5:]
NEW_TWO = ["import sys"] + OLD[1:3] + ["    return n"] + OLD[4:]


@pytest.mark.parametrize(
    ("new", "context"),
    [(NEW_REPLACE, 0), (NEW_REPLACE, 2), (NEW_INSERT, 0), (NEW_DELETE, 0), (NEW_TWO, 0)],
)
def test_suggestions_rebuild_the_patched_file(new: list[str], context: int) -> None:
    d = to_diagnostic(finding(suggestion=patch(new, context)))
    assert d["suggestions"]
    result = apply_suggestions("\n".join(OLD) + "\n", d["suggestions"])
    assert result == "\n".join(new) + "\n"


def test_a_replacement_is_linewise_as_reviewdog_turns_it_into_a_scm_suggestion() -> None:
    (s,) = to_diagnostic(finding(start_line=4, end_line=4, suggestion=patch(NEW_REPLACE)))[
        "suggestions"
    ]
    assert s == {"range": {"start": {"line": 4}, "end": {"line": 4}}, "text": "    return n"}


def test_a_suggestion_in_prose_gives_no_suggestions() -> None:
    assert "suggestions" not in to_diagnostic(finding(suggestion="rename y to n."))
