"""Semgrep as a cheap analyzer, with our own local rules and no network.

Why ``semgrep-core`` and not the ``semgrep`` command: the command is a
Python wrapper that costs ~1.3 s a call before any matching (measured with
semgrep 1.185: 1.4 s for one small file, against 0.11 s for the engine it
wraps), and without ``--metrics=off --disable-version-check`` it stalls for
~97 s trying to reach the network. The engine binary ships inside the
semgrep wheel, reads a local rules file and a JSON list of targets, and
never touches the network. So each PR costs ONE engine call over all its
Python files, written to a temporary directory.

What the wrapper did that we must do ourselves: ``paths: exclude`` of a rule
(we apply it to the repo-relative path) and dropping ``nosemgrep`` matches
(the engine marks them ``is_ignored``). The target-list format is the
engine's internal interface, so the semgrep version is pinned and
``tests/unit/processors/test_bandit_semgrep.py`` runs the real binary.

A long-lived engine would amortize even the 0.1 s, but 1.185 offers no
offline server mode for plain scans (its ``-rpc`` and ``lsp`` modes are
driven by the wrapper and expect its session), so we do not keep one.
"""

from __future__ import annotations

import fnmatch
import json
import subprocess
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path, PurePosixPath
from tempfile import TemporaryDirectory
from typing import Any

import yaml

from processors.analyzers import RawIssue
from processors.analyzers.binaries import find_semgrep_core
from processors.analyzers.ruff import is_python
from schemas.errors import ProcessorError

_SEVERITY = {"ERROR": "HIGH", "WARNING": "MEDIUM", "INFO": "LOW"}
_CATEGORIES = ("bug", "security", "secret", "style")


@dataclass(frozen=True)
class SemgrepRule:
    """What we need to know about one rule to map its matches."""

    category: str
    severity: str
    paths_exclude: tuple[str, ...]


def packaged_rules_file() -> Path:
    """The semgrep rules shipped in ``processors/semgrep/python.yml``."""
    return Path(str(resources.files("processors").joinpath("semgrep", "python.yml")))


def read_rules(path: Path) -> dict[str, SemgrepRule]:
    """Rule id -> how to map it, from a semgrep rules file (our metadata keys)."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ProcessorError(f"{path}: cannot read semgrep rules: {exc}") from exc
    rules: dict[str, SemgrepRule] = {}
    for raw in (data or {}).get("rules", []):
        meta = raw.get("metadata") or {}
        category = meta.get("category", "bug")
        severity = meta.get("our_severity") or _SEVERITY.get(raw.get("severity", ""), "LOW")
        if category not in _CATEGORIES:
            raise ProcessorError(f"{path}: rule {raw.get('id')}: unknown category {category!r}")
        excludes = tuple((raw.get("paths") or {}).get("exclude", []))
        rules[str(raw["id"])] = SemgrepRule(category, severity, excludes)
    if not rules:
        raise ProcessorError(f"{path}: no semgrep rules")
    return rules


def excluded(path: str, patterns: Collection[str]) -> bool:
    """Whether a semgrep ``paths: exclude`` pattern matches ``path`` (gitignore-like)."""
    parts = PurePosixPath(path).parts
    for pattern in patterns:
        if pattern.endswith("/"):
            if pattern.rstrip("/") in parts[:-1]:
                return True
        elif any(fnmatch.fnmatch(part, pattern) for part in parts) or fnmatch.fnmatch(
            path, pattern
        ):
            return True
    return False


class SemgrepAnalyzer:
    """Our local semgrep rules over a PR's Python files; rule ids ``semgrep:<id>``."""

    name = "semgrep"

    def __init__(
        self, rules_file: Path | None = None, *, binary: Path | None = None, timeout_s: float = 60.0
    ) -> None:
        self._rules_file = rules_file or packaged_rules_file()
        self._rules = read_rules(self._rules_file)
        self._binary = binary or find_semgrep_core()
        self._timeout_s = timeout_s

    def analyze(
        self, files: Mapping[str, str], focus: Mapping[str, Collection[int]] | None = None
    ) -> list[RawIssue]:
        """Issues on focus lines (all lines without ``focus``); files without focus are skipped."""
        wanted: dict[str, frozenset[int] | None] = {}
        for path, text in files.items():
            if not is_python(path) or not text:
                continue
            lines = None if focus is None else frozenset(focus.get(path, ()))
            if lines is None or lines:
                wanted[path] = lines
        if not wanted:
            return []
        with TemporaryDirectory(prefix="codereview-semgrep-") as tmp:
            root = Path(tmp)
            written: dict[str, str] = {}
            targets = []
            for index, path in enumerate(wanted):
                name = str(root / f"{index}.py")
                Path(name).write_text(files[path], encoding="utf-8", errors="replace")
                written[name] = path
                targets.append(
                    ["CodeTarget", {"path": {"fpath": name, "ppath": "/" + path.lstrip("/")},
                                    "analyzer": "python", "products": ["sast"]}]
                )  # fmt: skip
            targets_file = root / "targets.json"
            targets_file.write_text(json.dumps(["Targets", targets]), encoding="utf-8")
            report = self._run(targets_file)
        issues: dict[tuple[str, int, int, str], RawIssue] = {}
        for item in report.get("results", []):
            issue = self._to_issue(item, written)
            if issue is None:
                continue
            lines = wanted[issue.path]
            if lines is not None and not any(
                n in lines for n in range(issue.line, issue.end_line + 1)
            ):
                continue
            issues.setdefault((issue.path, issue.line, issue.end_line, issue.rule_id), issue)
        return [issues[key] for key in sorted(issues)]

    def _run(self, targets_file: Path) -> dict[str, Any]:
        command = [
            str(self._binary), "-rules", str(self._rules_file), "-targets", str(targets_file),
            "-j", "1", "-json",
        ]  # fmt: skip
        try:
            done = subprocess.run(
                command, capture_output=True, timeout=self._timeout_s, check=False
            )
        except subprocess.TimeoutExpired as exc:
            raise ProcessorError(f"semgrep-core took longer than {self._timeout_s}s") from exc
        if done.returncode != 0:
            stderr = done.stderr.decode("utf-8", "replace")[-500:]
            raise ProcessorError(f"semgrep-core failed with exit code {done.returncode}: {stderr}")
        # The engine prints a progress dot per target before the JSON document.
        lines = [line for line in done.stdout.splitlines() if line.startswith(b"{")]
        try:
            report = json.loads(lines[-1]) if lines else None
        except json.JSONDecodeError as exc:
            raise ProcessorError(f"semgrep-core printed invalid JSON: {exc}") from exc
        if not isinstance(report, dict):
            raise ProcessorError("semgrep-core printed no JSON report")
        errors = [e for e in report.get("errors", []) if e.get("level") == "error"]
        if errors:
            raise ProcessorError(f"semgrep-core reported errors: {errors[:3]}")
        return report

    def _to_issue(self, item: dict[str, Any], written: Mapping[str, str]) -> RawIssue | None:
        path = written.get(str(item.get("path")))
        extra = item.get("extra") or {}
        rule = self._rules.get(str(item.get("check_id")))
        if path is None or rule is None or extra.get("is_ignored"):
            return None
        if excluded(path, rule.paths_exclude):
            return None
        line = max(1, int(item["start"]["line"]))
        end_line = max(line, int(item["end"]["line"]))
        return RawIssue(
            path=path,
            line=line,
            end_line=end_line,
            rule_id=f"semgrep:{item['check_id']}",
            category=rule.category,
            severity=rule.severity,
            message=str(extra.get("message", "")),
        )
