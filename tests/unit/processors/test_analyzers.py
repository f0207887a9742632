"""Ruff and detect-secrets as analyzers, on small files in tests/data/triage/."""

from __future__ import annotations

from pathlib import Path

import pytest

from processors.analyzers import ANALYZER_NAMES, RawIssue, build_analyzers
from processors.analyzers.ruff import RuffAnalyzer, classify
from processors.analyzers.secrets import SecretsAnalyzer

DATA = Path(__file__).resolve().parents[2] / "data" / "triage"


def load(name: str, as_path: str | None = None) -> dict[str, str]:
    """A fixture file under the path the PR would give it (``.py.txt`` -> ``.py``)."""
    path = as_path or "pkg/" + name.removesuffix(".txt")
    return {path: (DATA / name).read_text(encoding="utf-8")}


def found(issues: list[RawIssue]) -> set[tuple[str, int, str, str, str]]:
    return {(i.path, i.line, i.rule_id, i.category, i.severity) for i in issues}


@pytest.fixture(scope="module")
def ruff() -> RuffAnalyzer:
    return RuffAnalyzer()


@pytest.mark.parametrize(
    ("line", "rule_id", "category", "severity"),
    [
        (3, "ruff:F401", "style", "LOW"),
        (11, "ruff:F821", "bug", "HIGH"),
        (15, "ruff:S602", "security", "HIGH"),
        (19, "ruff:S307", "security", "HIGH"),
        (22, "ruff:B006", "bug", "MEDIUM"),
    ],
)
def test_ruff_reports_known_defects(
    ruff: RuffAnalyzer, line: int, rule_id: str, category: str, severity: str
) -> None:
    issues = ruff.analyze(load("buggy.py.txt"))
    assert ("pkg/buggy.py", line, rule_id, category, severity) in found(issues)


def test_ruff_runs_once_over_many_files_and_keeps_their_paths(ruff: RuffAnalyzer) -> None:
    files = {**load("buggy.py.txt"), **load("clean.py.txt"), **load("broken.py.txt")}
    paths = {i.path for i in ruff.analyze(files)}
    assert paths == {"pkg/buggy.py", "pkg/broken.py"}


def test_ruff_reports_syntax_errors_as_high_bugs(ruff: RuffAnalyzer) -> None:
    issues = ruff.analyze(load("broken.py.txt"))
    assert issues
    assert {(i.rule_id, i.category, i.severity) for i in issues} == {
        ("ruff:invalid-syntax", "bug", "HIGH")
    }


@pytest.mark.parametrize(
    "path",
    ["build/setup.py", "venv/lib/x.py", "./src/app.py", "node_modules/tool/x.pyi"],
)
def test_ruff_checks_paths_ruff_would_skip_when_walking(ruff: RuffAnalyzer, path: str) -> None:
    issues = ruff.analyze(load("buggy.py.txt", as_path=path))
    assert {i.path for i in issues} == {path}
    assert "ruff:F821" in {i.rule_id for i in issues}


@pytest.mark.parametrize(
    "path",
    ["config/settings.yaml", "README.md", "../outside.py", "/etc/abs.py", "a/../../up.py"],
)
def test_ruff_ignores_non_python_and_escaping_paths(ruff: RuffAnalyzer, path: str) -> None:
    assert ruff.analyze(load("buggy.py.txt", as_path=path)) == []


def test_ruff_reports_nothing_on_clean_code(ruff: RuffAnalyzer) -> None:
    assert ruff.analyze(load("clean.py.txt")) == []
    assert ruff.analyze({}) == []


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("F821", ("bug", "HIGH")),
        ("F811", ("bug", "HIGH")),
        ("E999", ("bug", "HIGH")),
        ("PLE0101", ("bug", "HIGH")),
        ("invalid-syntax", ("bug", "HIGH")),
        ("F841", ("style", "LOW")),
        ("B006", ("bug", "MEDIUM")),
        ("B904", ("bug", "LOW")),
        ("S608", ("security", "HIGH")),
        ("S101", ("security", "LOW")),
        ("S113", ("security", "MEDIUM")),
    ],
)
def test_ruff_codes_map_to_category_and_severity(code: str, expected: tuple[str, str]) -> None:
    assert classify(code) == expected


@pytest.fixture(scope="module")
def secrets() -> SecretsAnalyzer:
    return SecretsAnalyzer()


@pytest.mark.parametrize(
    ("name", "path", "line", "rule_id"),
    [
        ("settings_leak.py.txt", "pkg/settings_leak.py", 4, "secrets:AWS Access Key"),
        ("settings_leak.py.txt", "pkg/settings_leak.py", 6, "secrets:Secret Keyword"),
        ("deploy_key.txt", "ops/deploy_key.txt", 2, "secrets:Private Key"),
    ],
)
def test_secrets_finds_committed_credentials(
    secrets: SecretsAnalyzer, name: str, path: str, line: int, rule_id: str
) -> None:
    issues = secrets.analyze(load(name, as_path=path))
    assert (path, line, rule_id, "secret", "HIGH") in found(issues)


def test_secrets_message_does_not_repeat_the_secret(secrets: SecretsAnalyzer) -> None:
    issues = secrets.analyze(load("settings_leak.py.txt"))
    assert issues
    assert all("AKIA" not in i.message and "horse" not in i.message for i in issues)


def test_secrets_is_quiet_on_ordinary_code(secrets: SecretsAnalyzer) -> None:
    """Eager search (detect-secrets' scan_line) flags most code lines; ours must not."""
    code = (DATA / "buggy.py.txt").read_text() + (DATA / "clean.py.txt").read_text()
    assert secrets.analyze({"pkg/long.py": code * 10}) == []


def test_secrets_skips_lock_files(secrets: SecretsAnalyzer) -> None:
    leak = (DATA / "settings_leak.py.txt").read_text()
    assert secrets.analyze({"package-lock.json": leak, "poetry.lock": leak}) == []


def test_secrets_leaves_detect_secrets_settings_as_found(secrets: SecretsAnalyzer) -> None:
    from detect_secrets.settings import get_settings

    before = get_settings().json()
    secrets.analyze(load("settings_leak.py.txt"))
    assert get_settings().json() == before


def test_build_analyzers_by_name() -> None:
    analyzers = build_analyzers(["ruff", "detect-secrets", "ruff"])
    assert [a.name for a in analyzers] == ["ruff", "detect-secrets"]
    assert set(ANALYZER_NAMES) == {
        "ruff",
        "detect-secrets",
        "rules",
        "bandit",
        "semgrep",
        "prompt-injection",
    }
    with pytest.raises(ValueError, match="pylint"):
        build_analyzers(["ruff", "pylint"])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"category": "lint"}, "category"),
        ({"severity": "SEVERE"}, "severity"),
        ({"line": 5, "end_line": 4}, "line range"),
        ({"line": 0, "end_line": 0}, "line range"),
    ],
)
def test_raw_issue_rejects_values_outside_the_vocabulary(kwargs: dict, match: str) -> None:
    base = dict(
        path="a.py", line=1, end_line=1, rule_id="x:1", category="bug", severity="LOW", message="m"
    )
    with pytest.raises(ValueError, match=match):
        RawIssue(**{**base, **kwargs})


def synthetic_leaks() -> str:
    """Lines that trip many detect-secrets plugins; tokens are assembled, never committed whole."""
    alnum = "Zq8Rk2Lm9Xv4Tb7Nc1Hd6Jf3Wp5Ys0Ga"
    return "\n".join(
        [
            "import os",
            'aws_id = "AKIA' + "IOSFODNN7EXAMPLE" + '"',
            'gh = "ghp_' + alnum + "abcd" + '"',
            'slack = "xoxb-' + "1234567890-1234567890123-" + alnum[:24] + '"',
            'blob = "' + alnum + alnum[::-1] + '"',
            'digest = "' + "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b" + '"',
            'url = "https://admin:' + "s3cr3tPassw0rd" + '@db.example.com/x"',
            "# pragma: allowlist nextline secret",
            'api_key = "' + alnum + '"',
            'password = "' + "hunter2-but-longer" + '"  # pragma: allowlist secret',
            'db_password = "' + "correct-horse-battery" + '"',
            "server = '" + "203.0.113.77" + "'",
            "def f(password):",
            "    return password",
        ]
    )


def test_secrets_two_pass_scan_matches_the_library_scanner(secrets: SecretsAnalyzer) -> None:
    """The fast path must report exactly what detect-secrets' own line scanner reports."""
    from detect_secrets.core.scan import _process_line_based_plugins
    from detect_secrets.settings import default_settings

    text = synthetic_leaks() + "\n" + (DATA / "settings_leak.py.txt").read_text()
    with default_settings() as settings:
        settings.disable_filters("detect_secrets.filters.common.is_invalid_file")
        lines = list(enumerate(text.split("\n"), start=1))
        reference = {
            (s.line_number, f"secrets:{s.type}")
            for s in _process_line_based_plugins(lines=lines, filename="conf/app.py")
        }
    ours = {(i.line, i.rule_id) for i in secrets.analyze({"conf/app.py": text})}
    assert len(reference) >= 6  # the fixture really trips several plugins
    assert ours == reference
    assert not any(line in (9, 10) for line, _ in ours)  # both allowlist pragmas honoured


@pytest.mark.parametrize(
    ("focus", "expected_lines"),
    [
        (None, {4, 6}),
        ({"pkg/settings_leak.py": {4}}, {4}),
        ({"pkg/settings_leak.py": {5, 6, 7}}, {6}),
        ({"pkg/settings_leak.py": {1, 2}}, set()),
        ({"other.py": {4, 6}}, set()),
    ],
)
def test_secrets_scans_only_the_focus_lines(
    secrets: SecretsAnalyzer, focus: dict[str, set[int]] | None, expected_lines: set[int]
) -> None:
    issues = secrets.analyze(load("settings_leak.py.txt", as_path="pkg/settings_leak.py"), focus)
    assert {i.line for i in issues} == expected_lines
