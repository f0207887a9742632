"""The peers our review is measured against: bandit, ruff and semgrep as their users run them.

A peer is the tool's own command line with its JSON output, called ONCE per
case over the case's Python head files, written to a temporary directory
under their repo paths (so package layout and relative imports look real).
That is what a team using the tool alone would get, so its findings are
taken whole: no triage, no muting, no focus on changed lines here (the
evaluation restricts them to the diff afterwards and reports both).

The binaries are those next to this interpreter (the versions pinned in the
virtualenv), else on PATH. Each call's wall time is what the evaluation and
``bench/triage.py`` report as the peer's cost.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from tempfile import TemporaryDirectory
from typing import Any, Protocol

from processors.analyzers import CATEGORIES
from processors.analyzers.binaries import find_tool
from processors.analyzers.ruff import SELECT, classify, is_python
from processors.scoring import Detection
from schemas.errors import CodeReviewError

PEER_NAMES = ("bandit", "ruff", "semgrep")
SEMGREP_RULES = Path(__file__).resolve().parent.parent / "processors" / "semgrep" / "python.yml"
_TIMEOUT_S = 300.0


class PeerError(CodeReviewError):
    """A peer's command line failed or printed something that is not its JSON report."""


class Peer(Protocol):
    """One tool's command line: the files under ``root`` in, detections with repo paths out."""

    name: str

    def run(self, root: Path, rel_paths: Sequence[str]) -> list[Detection]: ...


@dataclass(frozen=True)
class PeerRun:
    """What one peer reported on one case and how long its command line took."""

    detections: list[Detection]
    seconds: float
    error: str | None = None


def binary(name: str) -> str:
    """The pinned command ``name`` (this venv, then the tools venv, then PATH)."""
    try:
        return find_tool(name)
    except FileNotFoundError as exc:
        raise PeerError(str(exc)) from exc


def build_peers(names: Sequence[str]) -> tuple[list[Peer], list[str]]:
    """The peers named, and a warning for each one that cannot run here (skipped, not fatal)."""
    peers: list[Peer] = []
    warnings: list[str] = []
    for name in dict.fromkeys(names):
        try:
            if name == "bandit":
                peers.append(BanditPeer(binary("bandit")))
            elif name == "ruff":
                peers.append(RuffPeer(binary("ruff")))
            elif name == "semgrep":
                if not SEMGREP_RULES.is_file():
                    warnings.append(f"semgrep skipped: no local rules file at {SEMGREP_RULES}")
                    continue
                peers.append(SemgrepPeer(binary("semgrep"), SEMGREP_RULES))
            else:
                warnings.append(f"unknown peer {name!r} skipped; known: {', '.join(PEER_NAMES)}")
        except PeerError as exc:
            warnings.append(f"{name} skipped: {exc}")
    return peers, warnings


def write_tree(files: Mapping[str, str], root: Path) -> list[str]:
    """Write the Python files under ``root`` at their repo paths; return the paths written."""
    written = []
    for path, text in sorted(files.items()):
        rel = PurePosixPath(path)
        if not is_python(path) or rel.is_absolute() or ".." in rel.parts or not rel.parts:
            continue
        target = root.joinpath(*rel.parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8", errors="replace")
        written.append(rel.as_posix())
    return written


def run_peers(peers: Sequence[Peer], files: Mapping[str, str]) -> dict[str, PeerRun]:
    """Every peer on one case's files (written once), each call timed on its own."""
    runs: dict[str, PeerRun] = {}
    with TemporaryDirectory(prefix="codereview-peers-") as tmp:
        root = Path(tmp).resolve()
        rel_paths = write_tree(files, root)
        for peer in peers:
            if not rel_paths:
                runs[peer.name] = PeerRun([], 0.0)
                continue
            started = time.perf_counter()
            try:
                found, error = peer.run(root, rel_paths), None
            except PeerError as exc:
                found, error = [], str(exc)
            runs[peer.name] = PeerRun(found, time.perf_counter() - started, error)
    return runs


def _call(command: list[str], root: Path, ok_codes: tuple[int, ...]) -> Any:
    env = {**os.environ, "SEMGREP_SEND_METRICS": "off", "SEMGREP_ENABLE_VERSION_CHECK": "0"}
    try:
        done = subprocess.run(
            command, cwd=root, capture_output=True, timeout=_TIMEOUT_S, check=False, env=env
        )
    except subprocess.TimeoutExpired as exc:
        raise PeerError(f"{Path(command[0]).name} took longer than {_TIMEOUT_S}s") from exc
    if done.returncode not in ok_codes:
        said = (done.stderr or done.stdout).decode("utf-8", "replace")[-500:]
        raise PeerError(f"{Path(command[0]).name} exited {done.returncode}: {said}")
    try:
        return json.loads(done.stdout)
    except json.JSONDecodeError as exc:
        raise PeerError(f"{Path(command[0]).name} printed invalid JSON: {exc}") from exc


def _repo_path(reported: str, root: Path) -> str | None:
    """A path as the tool printed it (relative to ``root`` or absolute) back to the repo path."""
    try:
        return (root / reported).resolve().relative_to(root).as_posix()
    except ValueError:
        return None


def _detection(path: str | None, line: int, end: int, rule: str, category: str) -> Detection | None:
    if path is None:
        return None
    line = max(1, line)
    return Detection(path, line, max(line, end), rule, category)


class BanditPeer:
    """``bandit -f json``: every result is a security detection (that is all bandit claims)."""

    name = "bandit"

    def __init__(self, path: str) -> None:
        self._binary = path

    def run(self, root: Path, rel_paths: Sequence[str]) -> list[Detection]:
        # Exit code 1 means "issues found"; files it cannot parse are listed in "errors".
        report = _call([self._binary, "-f", "json", "-q", "--", *rel_paths], root, (0, 1))
        found = []
        for item in report.get("results", []):
            lines = item.get("line_range") or [item["line_number"]]
            found.append(
                _detection(
                    _repo_path(item["filename"], root),
                    int(item["line_number"]),
                    int(max(lines)),
                    f"bandit:{item['test_id']}",
                    "security",
                )
            )
        return [d for d in found if d is not None]


class RuffPeer:
    """``ruff check --isolated --select F,B,E9,PLE,S``: the same rules our ruff analyzer runs."""

    name = "ruff"

    def __init__(self, path: str) -> None:
        self._binary = path

    def run(self, root: Path, rel_paths: Sequence[str]) -> list[Detection]:
        command = [
            self._binary, "check", "--isolated", "--select", SELECT, "--output-format", "json",
            "--no-cache", "--exit-zero", "--", *rel_paths,
        ]  # fmt: skip
        found = []
        for item in _call(command, root, (0,)):
            code = item.get("code") or "invalid-syntax"
            line = int(item["location"]["row"])
            end = int((item.get("end_location") or {}).get("row") or line)
            path = _repo_path(item["filename"], root)
            found.append(_detection(path, line, end, f"ruff:{code}", classify(code)[0]))
        return [d for d in found if d is not None]


class SemgrepPeer:
    """``semgrep scan`` with our local rules file, offline (no metrics, no version check)."""

    name = "semgrep"

    def __init__(self, path: str, rules: Path) -> None:
        self._binary = path
        self._rules = rules

    def run(self, root: Path, rel_paths: Sequence[str]) -> list[Detection]:
        command = [
            self._binary, "scan", "--config", str(self._rules), "--metrics=off",
            "--disable-version-check", "--json", "--quiet", "--", *rel_paths,
        ]  # fmt: skip
        report = _call(command, root, (0, 1))
        found = []
        for item in report.get("results", []):
            extra = item.get("extra") or {}
            category = str((extra.get("metadata") or {}).get("category", "bug"))
            # A rules file outside the cwd prefixes ids with its dotted directory.
            rule = str(item["check_id"]).rsplit(".", 1)[-1]
            found.append(
                _detection(
                    _repo_path(item["path"], root),
                    int(item["start"]["line"]),
                    int(item["end"]["line"]),
                    f"semgrep:{rule}",
                    category if category in CATEGORIES else "bug",
                )
            )
        return [d for d in found if d is not None]
