"""The rule engine and the shipped rules: every rule fires on its examples and only there."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from processors.analyzers import build_analyzers
from processors.analyzers.rules import RulesAnalyzer, load_rules, packaged_rule_files
from schemas.errors import ProcessorError

REPO_ROOT = Path(__file__).resolve().parents[3]
CASES_FILE = REPO_ROOT / "tests" / "data" / "rules" / "python_cases.yaml"
DEFAULT_PATH = "pkg/module.py"
CASES: dict[str, Any] = yaml.safe_load(CASES_FILE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def analyzer() -> RulesAnalyzer:
    return RulesAnalyzer()


def _examples(kind: str) -> list[tuple[str, str, str]]:
    """(rule id, path, code) for every example of ``kind`` in the cases file."""
    found = []
    for rule_id, case in CASES.items():
        for example in case.get(kind, []):
            if isinstance(example, str):
                found.append((rule_id, DEFAULT_PATH, example))
            else:
                found.append((rule_id, example["path"], example["code"]))
    return found


def _fired(analyzer: RulesAnalyzer, path: str, code: str) -> set[str]:
    return {issue.rule_id for issue in analyzer.analyze({path: code})}


def test_every_rule_has_positive_and_negative_examples(analyzer: RulesAnalyzer) -> None:
    shipped = {rule.rule.id for rule in analyzer.rules}
    lacking = sorted(
        r for r in shipped if not CASES.get(r, {}).get("positive") or not CASES[r].get("negative")
    )
    assert not lacking, f"rules without examples in {CASES_FILE.name}: {lacking}"
    assert not set(CASES) - shipped, f"examples for unknown rules: {sorted(set(CASES) - shipped)}"


@pytest.mark.parametrize(("rule_id", "path", "code"), _examples("positive"))
def test_rule_fires_on_positive_example(
    analyzer: RulesAnalyzer, rule_id: str, path: str, code: str
) -> None:
    assert f"rules:{rule_id}" in _fired(analyzer, path, code)


@pytest.mark.parametrize(("rule_id", "path", "code"), _examples("negative"))
def test_rule_is_silent_on_negative_example(
    analyzer: RulesAnalyzer, rule_id: str, path: str, code: str
) -> None:
    assert f"rules:{rule_id}" not in _fired(analyzer, path, code)


def test_issue_carries_rule_metadata_and_lines(analyzer: RulesAnalyzer) -> None:
    code = "import yaml\n\n\ndef read(stream):\n    return yaml.load(stream)\n"
    [issue] = analyzer.analyze({"app/io.py": code})
    assert (issue.path, issue.line, issue.end_line) == ("app/io.py", 5, 5)
    assert (issue.rule_id, issue.category, issue.severity) == (
        "rules:yaml-load-without-safe-loader",
        "security",
        "HIGH",
    )
    assert "safe_load" in issue.message  # the fix hint travels with the message


def test_multiline_regex_reports_the_lines_it_spans(tmp_path: Path) -> None:
    rule_file = tmp_path / "ml.yaml"
    rule_file.write_text(
        "rules:\n"
        "  - {id: two-lines, category: bug, severity: LOW, languages: [any], multiline: true,\n"
        "     regex: 'alpha\\n\\s*beta', message: m, fix: f}\n"
    )
    rules = RulesAnalyzer(load_rules([rule_file]))
    [issue] = rules.analyze({"a.txt": "x\nalpha\n  beta\ny\n"})
    assert (issue.line, issue.end_line) == (2, 3)
    assert rules.analyze({"a.txt": "x\nalpha\n  beta\ny\n"}, {"a.txt": {1, 4}}) == []


FOCUS_CODE = "def a(x=[]):\n    pass\n\n\ndef b(y={}):\n    pass\n"


@pytest.mark.parametrize(
    ("focus", "lines"),
    [
        (None, [1, 5]),
        ({"m.py": {5}}, [5]),
        ({"m.py": {1, 2}}, [1]),
        ({"m.py": {3}}, []),
        ({"other.py": {1}}, []),
        ({}, []),
    ],
)
def test_focus_limits_reported_lines(
    analyzer: RulesAnalyzer, focus: dict[str, set[int]] | None, lines: list[int]
) -> None:
    issues = analyzer.analyze({"m.py": FOCUS_CODE}, focus)
    assert [i.line for i in issues if i.rule_id == "rules:mutable-default-argument"] == lines


def test_registry_builds_the_rules_analyzer() -> None:
    [built] = build_analyzers(["rules"])
    assert built.name == "rules"
    assert packaged_rule_files(), "no rule files shipped in processors/rules/"


BAD_RULES = [
    ("id: x, category: bug, severity: HIGH, languages: [python], message: m, fix: f",
     "exactly one of 'regex' or 'query'"),
    ("id: x, category: bug, severity: HIGH, languages: [python], regex: a, query: '(x) @match',"
     " message: m, fix: f", "exactly one of 'regex' or 'query'"),
    ("id: x, category: oops, severity: HIGH, languages: [any], regex: a, message: m, fix: f",
     "category"),
    ("id: x, category: bug, severity: SEVERE, languages: [any], regex: a, message: m, fix: f",
     "severity"),
    ("id: x, category: bug, severity: HIGH, languages: [any], regex: '(', message: m, fix: f",
     "bad regex"),
    ("id: x, category: bug, severity: HIGH, languages: [go], query: '(x) @match',"
     " message: m, fix: f", "no tree-sitter grammar"),
    ("id: x, category: bug, severity: HIGH, languages: [python], query: '(no_such_node) @match',"
     " message: m, fix: f", "bad python query"),
    ("id: x, category: bug, severity: HIGH, languages: [python], query: '(identifier) @id',"
     " message: m, fix: f", "@match"),
    ("id: x, category: bug, severity: HIGH, languages: [any], regex: a, message: m, fix: f,"
     " colour: red", "colour"),
    ("id: Bad Id, category: bug, severity: HIGH, languages: [any], regex: a, message: m, fix: f",
     "id"),
    ("id: x, category: bug, severity: HIGH, languages: [], regex: a, message: m, fix: f",
     "languages"),
]  # fmt: skip


@pytest.mark.parametrize(("record", "complaint"), BAD_RULES)
def test_bad_rule_fails_at_load_with_file_and_rule(
    tmp_path: Path, record: str, complaint: str
) -> None:
    rule_file = tmp_path / "bad.yaml"
    rule_file.write_text(f"rules:\n  - {{{record}}}\n")
    with pytest.raises(ProcessorError) as caught:
        load_rules([rule_file])
    text = str(caught.value)
    assert "bad.yaml" in text and "rule " in text and complaint in text


def test_duplicate_rule_ids_are_rejected(tmp_path: Path) -> None:
    record = (
        "  - {id: dup, category: bug, severity: LOW, languages: [any], regex: a,"
        " message: m, fix: f}\n"
    )
    (tmp_path / "one.yaml").write_text("rules:\n" + record)
    (tmp_path / "two.yaml").write_text("rules:\n" + record)
    with pytest.raises(ProcessorError, match="rule dup: duplicate id"):
        load_rules([tmp_path / "one.yaml", tmp_path / "two.yaml"])


@pytest.mark.parametrize("content", ["- just a list\n", "rules: 3\n", "other: []\n", "rules: [\n"])
def test_malformed_rule_file_is_rejected(tmp_path: Path, content: str) -> None:
    rule_file = tmp_path / "broken.yaml"
    rule_file.write_text(content)
    with pytest.raises(ProcessorError, match="broken.yaml"):
        load_rules([rule_file])
