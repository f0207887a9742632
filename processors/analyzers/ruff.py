"""Ruff as a cheap analyzer: pyflakes, bugbear, syntax and bandit-like rules.

Ruff is run ONCE per PR over all its Python files, not once per file: process
start-up dominates its cost (13 ms for one file, 55 ms for forty), so a single
call keeps triage cheap on big PRs. The files are written into a temporary
directory under their repo-relative paths, because rules such as relative
imports or ``__init__`` handling depend on the layout.

The files are passed by name rather than as the directory: when ruff walks a
directory it skips its default excludes (``build/``, ``dist/``, ``venv/``...),
and a PR that changes ``build/setup.py`` must still be checked.
``--isolated`` ignores any ruff configuration, so results depend on the rule
selection here only.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Collection, Mapping
from pathlib import Path, PurePosixPath
from tempfile import TemporaryDirectory
from typing import Any

from processors.analyzers import RawIssue
from processors.analyzers.binaries import find_tool
from schemas.errors import ProcessorError

SELECT = "F,B,E9,PLE,S"
PYTHON_SUFFIXES = (".py", ".pyi")

# Codes that are almost always a defect when they fire on changed code.
_HIGH = frozenset({"F821", "F822", "F823", "F811", "F632", "F701", "F702", "F704", "F706", "F707"})
# Hygiene, not behaviour: reported as style so precision by category stays honest.
_STYLE = frozenset({"F401", "F403", "F405", "F541", "F841", "B007", "B009", "B010"})
# Security rules that are a real hazard when they fire (code execution, injection).
_SECURITY_HIGH = frozenset({"S102", "S301", "S307", "S506", "S602", "S605", "S608", "S701", "S501"})
# Security rules that fire on most code bases and rarely matter alone.
_SECURITY_LOW = frozenset({"S101", "S110", "S112", "S311", "S603", "S607", "S404"})


def find_ruff_binary() -> str:
    """The pinned ruff (next to this interpreter, else the tools venv, else PATH)."""
    return find_tool("ruff")


def classify(code: str) -> tuple[str, str]:
    """(category, severity) for a ruff code; a syntax error is a HIGH bug."""
    if code == "invalid-syntax" or code.startswith(("E9", "PLE")) or code in _HIGH:
        return "bug", "HIGH"
    if code in _STYLE:
        return "style", "LOW"
    if code.startswith("S"):
        if code in _SECURITY_HIGH:
            return "security", "HIGH"
        if code in _SECURITY_LOW:
            return "security", "LOW"
        return "security", "MEDIUM"
    if code.startswith("B9"):  # bugbear's opinionated rules
        return "bug", "LOW"
    if code.startswith(("F", "B")):
        return "bug", "MEDIUM"
    return "bug", "LOW"


def is_python(path: str) -> bool:
    return path.endswith(PYTHON_SUFFIXES)


def _safe_relative(path: str) -> PurePosixPath | None:
    """``path`` as a relative path that cannot escape the temp dir, or None."""
    rel = PurePosixPath(path.replace("\\", "/"))
    if rel.is_absolute() or ".." in rel.parts or not rel.parts:
        return None
    return rel


class RuffAnalyzer:
    """Runs the ruff binary over a PR's Python files and maps its JSON to RawIssues."""

    name = "ruff"

    def __init__(self, binary: str | None = None, *, timeout_s: float = 60.0) -> None:
        self._binary = binary or find_ruff_binary()
        self._timeout_s = timeout_s

    def analyze(
        self, files: Mapping[str, str], focus: Mapping[str, Collection[int]] | None = None
    ) -> list[RawIssue]:
        """Whole files always: ruff resolves names across the file, so ``focus`` is ignored."""
        # Written path -> the path as the PR names it (they differ for "./a.py").
        originals: dict[str, str] = {}
        with TemporaryDirectory(prefix="codereview-ruff-") as tmp:
            root = Path(tmp).resolve()
            for path, text in files.items():
                rel = _safe_relative(path) if is_python(path) else None
                if rel is None:
                    continue
                target = root.joinpath(*rel.parts)
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(text, encoding="utf-8", errors="replace")
                originals[rel.as_posix()] = path
            if not originals:
                return []
            report = self._run(root, list(originals))
        issues = (_to_issue(item, root, originals) for item in report)
        return [issue for issue in issues if issue is not None]

    def _run(self, root: Path, rel_paths: list[str]) -> list[dict[str, Any]]:
        command = [
            self._binary, "check", "--output-format", "json", "--no-cache", "--isolated",
            "--select", SELECT, "--exit-zero", "--", *rel_paths,
        ]  # fmt: skip
        try:
            done = subprocess.run(
                command, cwd=root, capture_output=True, timeout=self._timeout_s, check=False
            )
        except subprocess.TimeoutExpired as exc:
            raise ProcessorError(f"ruff took longer than {self._timeout_s}s") from exc
        if done.returncode != 0:
            stderr = done.stderr.decode("utf-8", "replace")[:500]
            raise ProcessorError(f"ruff failed with exit code {done.returncode}: {stderr}")
        try:
            report = json.loads(done.stdout or b"[]")
        except json.JSONDecodeError as exc:
            raise ProcessorError(f"ruff printed invalid JSON: {exc}") from exc
        if not isinstance(report, list):
            raise ProcessorError("ruff JSON report is not a list")
        return report


def _to_issue(item: dict[str, Any], root: Path, originals: dict[str, str]) -> RawIssue | None:
    try:
        written = Path(item["filename"]).resolve().relative_to(root).as_posix()
    except ValueError:
        return None
    path = originals.get(written)
    if path is None:
        return None
    code = item.get("code") or "invalid-syntax"
    line = max(1, int(item["location"]["row"]))
    end_line = max(line, int((item.get("end_location") or {}).get("row") or line))
    category, severity = classify(code)
    return RawIssue(
        path=path,
        line=line,
        end_line=end_line,
        rule_id=f"ruff:{code}",
        category=category,
        severity=severity,
        message=str(item.get("message", "")),
    )
