"""Bandit as a cheap analyzer, run in-process on the Python files a PR changes.

Why in-process: the bandit CLI costs ~0.3 s a call in interpreter start and
plugin discovery; the library's ``BanditManager`` costs nothing to build once
its plugins are imported, so a PR pays only for the scan itself.

Why only focus statements: bandit walks the whole AST at ~40 us a line, so a
PR touching a 6,000-line module would cost 0.25 s for a three-line change.
Its checks look at one call or node at a time, plus the module's imports (to
resolve ``sp.call`` to ``subprocess.call``). So before scanning, every
top-level statement that is neither an import nor near a focus line is
blanked out, line for line: line numbers stay true and the findings on focus
lines are the ones a whole-file scan reports.

bandit keeps results on its manager and its logging is global, so one lock
serializes scans; a fresh manager per call keeps results from leaking.
"""

from __future__ import annotations

import ast
import logging
import threading
from collections.abc import Collection, Mapping
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

from bandit.core import config as bandit_config
from bandit.core import manager as bandit_manager

from processors.analyzers import RawIssue
from processors.analyzers.ruff import is_python

_LOCK = threading.Lock()
# Tests that fire on nearly every code base and almost never name a defect:
# asserts, importing subprocess/pickle, subprocess without a shell, random.
_NOISE = frozenset({"B101", "B311", "B403", "B404", "B603", "B607"})
_LOWER = {"HIGH": "MEDIUM", "MEDIUM": "LOW", "LOW": "INFO"}


def severity_for(test_id: str, severity: str, confidence: str) -> str:
    """Our severity for a bandit result: its own, one step lower when bandit is unsure."""
    if test_id in _NOISE:
        return "INFO"
    severity = severity if severity in _LOWER else "LOW"
    return _LOWER[severity] if confidence == "LOW" else severity


def focus_source(text: str, lines: Collection[int]) -> str | None:
    """``text`` with top-level statements away from ``lines`` blanked; None if not Python.

    Imports are always kept (bandit resolves names through them); every
    other statement survives only when it spans a focus line.
    """
    try:
        module = ast.parse(text)
    except (SyntaxError, ValueError):
        return None
    source = text.split("\n")
    wanted = set(lines)
    for statement in module.body:
        first = statement.lineno
        if isinstance(statement, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            first = min([first, *(d.lineno for d in statement.decorator_list)])
        last = statement.end_lineno or statement.lineno
        if isinstance(statement, (ast.Import, ast.ImportFrom)):
            continue
        if any(first <= n <= last for n in wanted):
            continue
        for index in range(first - 1, min(last, len(source))):
            source[index] = ""
    return "\n".join(source)


class BanditAnalyzer:
    """Bandit's security tests on changed Python code; rule ids ``bandit:B602`` etc."""

    name = "bandit"

    def __init__(self) -> None:
        self._config = bandit_config.BanditConfig()
        logging.getLogger("bandit").setLevel(logging.ERROR)

    def analyze(
        self, files: Mapping[str, str], focus: Mapping[str, Collection[int]] | None = None
    ) -> list[RawIssue]:
        """Issues on focus lines of Python files (all lines when ``focus`` is None)."""
        targets: dict[str, tuple[str, frozenset[int] | None]] = {}
        for path, text in files.items():
            if not is_python(path) or not text:
                continue
            if focus is None:
                targets[path] = (text, None)
                continue
            lines = frozenset(focus.get(path, ()))
            trimmed = focus_source(text, lines) if lines else None
            if trimmed is not None:
                targets[path] = (trimmed, lines)
        if not targets:
            return []
        with TemporaryDirectory(prefix="codereview-bandit-") as tmp:
            written: dict[str, str] = {}
            for index, (path, (text, _)) in enumerate(targets.items()):
                name = str(Path(tmp) / f"{index}.py")
                Path(name).write_text(text, encoding="utf-8", errors="replace")
                written[name] = path
            results = self._scan(list(written))
        issues: list[RawIssue] = []
        for result in results:
            original = written.get(result.fname)
            if original is None:
                continue
            issue = _to_issue(original, result)
            wanted = targets[original][1]
            if wanted is None or any(n in wanted for n in range(issue.line, issue.end_line + 1)):
                issues.append(issue)
        return sorted(issues, key=lambda i: (i.path, i.line, i.rule_id))

    def _scan(self, names: list[str]) -> list[Any]:
        with _LOCK:
            manager = bandit_manager.BanditManager(self._config, "file", quiet=True)
            manager.files_list = names
            manager.run_tests()
            return list(manager.get_issue_list())


def _to_issue(path: str, result: Any) -> RawIssue:
    line = max(1, int(result.lineno))
    line_range = [int(n) for n in (result.linerange or [line]) if int(n) >= 1]
    end_line = max([line, *line_range])
    test_id = str(result.test_id)
    return RawIssue(
        path=path,
        line=line,
        end_line=end_line,
        rule_id=f"bandit:{test_id}",
        category="security",
        severity=severity_for(test_id, str(result.severity), str(result.confidence)),
        message=f"{result.text} ({result.test}, confidence {result.confidence})",
    )
