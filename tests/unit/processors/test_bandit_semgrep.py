"""Bandit and semgrep adapters: the real tools on small code, focus filtering, mapping."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from processors.analyzers import RawIssue, build_analyzers
from processors.analyzers.bandit import BanditAnalyzer, focus_source, severity_for
from processors.analyzers.semgrep import SemgrepAnalyzer, excluded, packaged_rules_file, read_rules
from schemas.errors import ProcessorError

RISKY = """\
import subprocess as sp
import yaml


def clean(path):
    sp.call("rm -rf " + path, shell=True)


def unrelated():
    return 1


def load(stream):
    return yaml.load(stream)
"""


@pytest.fixture(scope="module")
def bandit() -> BanditAnalyzer:
    return BanditAnalyzer()


def _ids(issues: list[RawIssue]) -> list[tuple[int, str]]:
    return [(i.line, i.rule_id) for i in issues]


def test_bandit_maps_results_and_resolves_import_aliases(bandit: BanditAnalyzer) -> None:
    issues = bandit.analyze({"ops/clean.py": RISKY})
    by_id = {i.rule_id: i for i in issues}
    assert (6, "bandit:B602") in _ids(issues)  # sp.call resolved through "import ... as sp"
    assert (14, "bandit:B506") in _ids(issues)
    shell = by_id["bandit:B602"]
    assert (shell.path, shell.category, shell.severity) == ("ops/clean.py", "security", "HIGH")
    assert "shell=True" in shell.message
    assert by_id["bandit:B404"].severity == "INFO"  # importing subprocess is noise


@pytest.mark.parametrize(
    ("focus", "expected"),
    [
        ({"ops/clean.py": {6}}, [(6, "bandit:B602")]),
        ({"ops/clean.py": {13, 14}}, [(14, "bandit:B506")]),
        ({"ops/clean.py": {9, 10}}, []),
        ({"other.py": {6}}, []),
    ],
)
def test_bandit_reports_focus_lines_only(
    bandit: BanditAnalyzer, focus: dict[str, set[int]], expected: list[tuple[int, str]]
) -> None:
    assert _ids(bandit.analyze({"ops/clean.py": RISKY}, focus)) == expected


def test_bandit_skips_non_python_and_broken_files(bandit: BanditAnalyzer) -> None:
    files = {"README.md": "eval(x)\n", "bad.py": "def (:\n    eval(x)\n"}
    assert bandit.analyze(files, {"README.md": {1}, "bad.py": {2}}) == []


def test_focus_source_blanks_far_statements_but_keeps_imports_and_lines() -> None:
    trimmed = focus_source(RISKY, {6})
    assert trimmed is not None
    lines = trimmed.split("\n")
    assert len(lines) == len(RISKY.split("\n"))
    assert lines[0] == "import subprocess as sp" and "shell=True" in lines[5]
    assert "yaml.load" not in trimmed and "unrelated" not in trimmed
    assert focus_source("def (:\n", {1}) is None


@pytest.mark.parametrize(
    ("test_id", "severity", "confidence", "ours"),
    [
        ("B602", "HIGH", "HIGH", "HIGH"),
        ("B602", "HIGH", "LOW", "MEDIUM"),
        ("B307", "MEDIUM", "HIGH", "MEDIUM"),
        ("B113", "MEDIUM", "LOW", "LOW"),
        ("B101", "LOW", "HIGH", "INFO"),
        ("B999", "UNDEFINED", "HIGH", "LOW"),
    ],
)
def test_bandit_severity_mapping(test_id: str, severity: str, confidence: str, ours: str) -> None:
    assert severity_for(test_id, severity, confidence) == ours


SEMGREP_CODE = """\
import yaml


def parse(stream, seen=[]):
    data = yaml.load(stream)
    name = data.get("name")
    name.strip()
    return data
"""


def test_semgrep_runs_local_rules_with_focus_and_path_excludes() -> None:
    """One engine call (they cost ~0.1-0.3 s each) covering mapping, focus and excludes."""
    [semgrep] = build_analyzers(["semgrep"])
    files = {"app/parse.py": SEMGREP_CODE, "tests/test_tmp.py": "LOG = '/tmp/x.log'\n",
             "app/tmp.py": "LOG = '/tmp/x.log'\n", "notes.md": "yaml.load(x)\n"}  # fmt: skip
    focus = {"app/parse.py": {4, 5, 6}, "tests/test_tmp.py": {1}, "app/tmp.py": {1}}
    issues = semgrep.analyze(files, focus)
    assert [(i.path, i.line, i.rule_id) for i in issues] == [
        ("app/parse.py", 4, "semgrep:mutable-default-argument"),
        ("app/parse.py", 5, "semgrep:yaml-load-without-safe-loader"),
        ("app/tmp.py", 1, "semgrep:hardcoded-temp-path"),
    ]  # line 7 (discarded strip) is outside the focus; tests/ is excluded by the rule
    yaml_issue = issues[1]
    assert (yaml_issue.category, yaml_issue.severity) == ("security", "HIGH")


def test_semgrep_rules_file_is_ours_and_mapped() -> None:
    rules = read_rules(packaged_rules_file())
    raw = yaml.safe_load(packaged_rules_file().read_text())["rules"]
    assert len(rules) == len(raw) >= 20
    assert all(r["metadata"]["category"] in ("bug", "security") for r in raw)
    assert rules["hardcoded-temp-path"].paths_exclude


def test_semgrep_bad_rules_file_is_rejected(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text("rules:\n  - id: x\n    metadata: {category: nonsense}\n")
    with pytest.raises(ProcessorError, match="unknown category"):
        SemgrepAnalyzer(bad)


@pytest.mark.parametrize(
    ("path", "patterns", "expected"),
    [
        ("tests/a.py", ["tests/"], True),
        ("pkg/tests/a.py", ["tests/"], True),
        ("pkg/tests.py", ["tests/"], False),
        ("pkg/test_a.py", ["test_*.py"], True),
        ("pkg/a.py", ["test_*.py", "tests/"], False),
    ],
)
def test_semgrep_path_excludes(path: str, patterns: list[str], expected: bool) -> None:
    assert excluded(path, patterns) is expected


def test_semgrep_without_python_files_does_not_run() -> None:
    analyzer = SemgrepAnalyzer(binary=Path("/nonexistent/semgrep-core"))
    assert analyzer.analyze({"a.md": "x"}) == []
    assert analyzer.analyze({"a.py": "x = 1\n"}, {"a.py": set()}) == []
