"""Cheap analyzers: linters that turn a PR's head files into raw issues.

Every analyzer has the same tiny contract, text in and issues out, so triage
can run any mix of them and tests can call them without a pipeline. They may
run a subprocess or a library with global state inside, but they read no
settings, touch no store and write only to a temporary directory: from the
outside they are pure functions of the files they are given.

The registry maps the names used in configuration to factories. Factories
import their module lazily so a worker that does not run, say, detect-secrets
never pays for importing it.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from schemas.records import SEVERITIES

CATEGORIES = ("bug", "security", "secret", "style")


@dataclass(frozen=True, slots=True)
class RawIssue:
    """One issue as an analyzer reports it, before triage decides it matters.

    ``rule_id`` is prefixed by the analyzer ("ruff:F821", "secrets:AWS Access
    Key") so that rules from different tools never collide in feedback and
    analytics, which key on it.
    """

    path: str
    line: int
    end_line: int
    rule_id: str
    category: str
    severity: str
    message: str

    def __post_init__(self) -> None:
        if self.category not in CATEGORIES:
            raise ValueError(f"unknown category {self.category!r}")
        if self.severity not in SEVERITIES:
            raise ValueError(f"unknown severity {self.severity!r}")
        if self.line < 1 or self.end_line < self.line:
            raise ValueError(f"bad line range {self.line}..{self.end_line}")


class Analyzer(Protocol):
    """Text in, issues out: ``files`` maps a repo-relative path to its full head text.

    ``focus`` (path -> line numbers) names the only lines whose issues can
    matter to triage; an analyzer that scans line by line may skip the rest,
    one that needs whole files (a linter resolving names) ignores it. None
    means every line.
    """

    name: str

    def analyze(
        self, files: Mapping[str, str], focus: Mapping[str, Collection[int]] | None = None
    ) -> list[RawIssue]: ...


def _ruff() -> Analyzer:
    from processors.analyzers.ruff import RuffAnalyzer

    return RuffAnalyzer()


def _detect_secrets() -> Analyzer:
    from processors.analyzers.secrets import SecretsAnalyzer

    return SecretsAnalyzer()


def _rules() -> Analyzer:
    from processors.analyzers.rules import RulesAnalyzer

    return RulesAnalyzer()


def _bandit() -> Analyzer:
    from processors.analyzers.bandit import BanditAnalyzer

    return BanditAnalyzer()


def _semgrep() -> Analyzer:
    from processors.analyzers.semgrep import SemgrepAnalyzer

    return SemgrepAnalyzer()


def _prompt_injection() -> Analyzer:
    from processors.injection import InjectionAnalyzer

    return InjectionAnalyzer()


_FACTORIES: dict[str, Callable[[], Analyzer]] = {
    "ruff": _ruff,
    "detect-secrets": _detect_secrets,
    "rules": _rules,
    "bandit": _bandit,
    "semgrep": _semgrep,
    "prompt-injection": _prompt_injection,
}
ANALYZER_NAMES = tuple(_FACTORIES)


def build_analyzers(names: Sequence[str]) -> list[Analyzer]:
    """The analyzers named in configuration, in order; an unknown name fails fast."""
    unknown = [n for n in names if n not in _FACTORIES]
    if unknown:
        raise ValueError(f"unknown analyzers {unknown}; known: {list(ANALYZER_NAMES)}")
    return [_FACTORIES[n]() for n in dict.fromkeys(names)]
