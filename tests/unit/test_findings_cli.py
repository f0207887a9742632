"""``codereview findings``: the filter both commands share, row decoding, rendering, arguments."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

from codereview.cli import _parser
from codereview.findings_cli import (
    COLUMNS,
    FindingFilter,
    FindingsCliError,
    export_sql,
    filter_from_args,
    finding_from_row,
    format_line,
    parse_time_ms,
    render,
)
from schemas.records import Finding, to_dict

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
BASE = Finding(
    fingerprint="fp", event_id="ev", tenant="acme", repo="acme/api", pr_number=3,
    head_sha="c" * 40, path="a.py", start_line=10, end_line=12, rule_id="llm:bug",
    category="bug", severity="MEDIUM", confidence=0.5, message="multi\nline   message",
    origin="llm", received_at_ms=T0, created_at_ms=T0,
)  # fmt: skip


def finding(**changes: Any) -> Finding:
    return dataclasses.replace(BASE, **changes)


@pytest.mark.parametrize(
    ("selection", "record", "kept"),
    [
        (FindingFilter(), finding(), True),
        (FindingFilter(repo="acme/api"), finding(), True),
        (FindingFilter(repo="acme/web"), finding(), False),
        (FindingFilter(tenant="globex"), finding(), False),
        (FindingFilter(pr_number=3), finding(), True),
        (FindingFilter(pr_number=4), finding(), False),
        (FindingFilter(min_severity="MEDIUM"), finding(severity="MEDIUM"), True),
        (FindingFilter(min_severity="MEDIUM"), finding(severity="CRITICAL"), True),
        (FindingFilter(min_severity="MEDIUM"), finding(severity="LOW"), False),
        (FindingFilter(min_severity="HIGH"), finding(severity="INFO"), False),
        (FindingFilter(category="security"), finding(category="bug"), False),
        (FindingFilter(category="security"), finding(category="security"), True),
        (FindingFilter(since_ms=T0), finding(created_at_ms=T0), True),
        (FindingFilter(since_ms=T0 + 1), finding(created_at_ms=T0), False),
        (FindingFilter(until_ms=T0), finding(created_at_ms=T0), False),
        (FindingFilter(until_ms=T0 + 1), finding(created_at_ms=T0), True),
        (FindingFilter(repo="acme/api", min_severity="LOW", category="bug"), finding(), True),
    ],
)
def test_the_filter_keeps_what_it_says(
    selection: FindingFilter, record: Finding, kept: bool
) -> None:
    assert selection.accepts(record) is kept


def test_an_unknown_minimum_severity_is_refused() -> None:
    with pytest.raises(FindingsCliError, match="unknown severity"):
        FindingFilter(min_severity="SEVERE")


def test_sql_conditions_quote_values_and_list_the_kept_severities() -> None:
    selection = FindingFilter(
        tenant="acme", repo="o'brien\\x", pr_number=5, since_ms=1, until_ms=2, min_severity="HIGH"
    )
    assert selection.sql_conditions() == [
        "tenant = 'acme'",
        "repo = 'o\\'brien\\\\x'",
        "pr_number = 5",
        "created_at_ms >= 1",
        "created_at_ms < 2",
        "severity IN ('HIGH', 'CRITICAL')",
    ]
    sql = export_sql(FindingFilter())
    assert "FROM {db}.findings FINAL WHERE 1 ORDER BY" in sql
    assert sql.startswith(f"SELECT {', '.join(COLUMNS)} ")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", None),
        ("2026-01-01", T0),
        ("2026-01-01T00:00:00Z", T0),
        ("2026-01-01T01:00:00+01:00", T0),
        ("2026-01-01T00:00:01.5", T0 + 1500),
    ],
)
def test_iso_times(text: str, expected: int | None) -> None:
    assert parse_time_ms(text) == expected


def test_a_bad_time_is_an_error() -> None:
    with pytest.raises(FindingsCliError):
        parse_time_ms("yesterday")


def test_rows_from_the_query_view_json_become_findings() -> None:
    record = finding(suggestion=None, model="m", source="gitlab")
    row = [to_dict(record)[c] for c in COLUMNS]
    assert finding_from_row(row) == record
    as_text = [str(v) if isinstance(v, int | float) else v for v in row]  # what a view may send
    assert finding_from_row(as_text) == record


def test_a_tail_line_is_one_line() -> None:
    line = format_line(finding())
    assert line == "MEDIUM   acme/api#3 a.py:10-12 [llm:bug] multi line message"
    assert format_line(finding(end_line=10)).split()[2] == "a.py:10"


@pytest.mark.parametrize("fmt", ["sarif", "rdjson"])
def test_render_json_documents(fmt: str) -> None:
    doc = json.loads(render([finding(), finding(fingerprint="fp2")], fmt))
    if fmt == "sarif":
        assert len(doc["runs"][0]["results"]) == 2
        assert doc["runs"][0]["tool"]["driver"]["version"]
    else:
        assert len(doc["diagnostics"]) == 2


def test_render_rdjsonl_and_the_repository_url_template() -> None:
    assert len(render([finding()] * 3, "rdjsonl").splitlines()) == 3
    doc = json.loads(render([finding()], "sarif", url_template="https://scm.example/{repo}"))
    provenance = doc["runs"][0]["versionControlProvenance"][0]
    assert provenance["repositoryUri"] == "https://scm.example/acme/api"


def test_the_command_line_builds_the_filter() -> None:
    args = _parser().parse_args(
        ["findings", "export", "--format", "rdjsonl", "--repo", "acme/api", "--pr", "3",
         "--since", "2026-01-01", "--severity", "high", "-o", "out.jsonl"]
    )  # fmt: skip
    assert args.format == "rdjsonl" and args.output == "out.jsonl"
    assert filter_from_args(args) == FindingFilter(
        repo="acme/api", pr_number=3, since_ms=T0, min_severity="HIGH"
    )
    tail = _parser().parse_args(["findings", "tail", "--category", "security", "--max", "2"])
    assert tail.max == 2 and not tail.from_beginning
    assert filter_from_args(tail) == FindingFilter(category="security")
