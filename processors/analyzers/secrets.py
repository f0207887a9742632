"""detect-secrets as a cheap analyzer, run in-process over every line of every file.

Why in-process and not the CLI: the CLI costs ~0.2 s a call (interpreter
start, plugin discovery), more than the rest of triage together.

Why ``_process_line_based_plugins``: detect-secrets 1.5.0 (pinned) has two
public entry points and neither fits. ``scan_file`` needs a real file on
disk; ``scan_line`` turns on "eager search", which in source code flags
nearly every line as a high-entropy string (measured: hundreds of hits on a
300-line file with no secret). The private line scanner is exactly what
``scan_file`` runs, with the same plugins and filters, so we call it.
``tests/unit/processors/test_analyzers.py`` pins its behaviour, so an
upgrade that changes it fails loudly.

Why two passes: that scanner calls every plugin and filter on every line
through a reflective injector, ~0.5 ms a line on long files (3.3 s for a
6,000-line file). Most lines hold no candidate at all, and a plugin's own
``analyze_line`` called directly says so ~4x faster (for the keyword plugin,
a line without any of its keywords cannot match, so even that call is
skipped). Only lines where some plugin sees a candidate go through the full
scanner, together with the line before them, which its allowlist pragma
("allowlist nextline") reads. Same findings, measured equal on the fixtures.

detect-secrets keeps its settings in a process-global singleton. We enter
its ``default_settings()`` (all plugins, default filters) for each call and
hold a lock meanwhile, so two threads cannot see each other's settings.
Verification of secrets against live services is a filter that is off by
default and stays off: no network here. The secret value itself never leaves
this module: a finding is published and must not re-leak the secret.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Collection, Iterator, Mapping, Sequence
from typing import Any

from detect_secrets.core.potential_secret import PotentialSecret
from detect_secrets.core.scan import _process_line_based_plugins
from detect_secrets.filters.heuristic import is_lock_file, is_non_text_file, is_swagger_file
from detect_secrets.plugins.keyword import DENYLIST_REGEX, KeywordDetector
from detect_secrets.settings import default_settings, get_plugins

from processors.analyzers import RawIssue

# detect-secrets drops files it cannot find on disk; ours live in memory.
_ON_DISK_FILTER = "detect_secrets.filters.common.is_invalid_file"
_LOCK = threading.Lock()
# Every keyword-plugin pattern contains one of these words; a line without any cannot match.
_KEYWORD_HINT = re.compile(DENYLIST_REGEX, re.IGNORECASE)


def _skipped(path: str) -> bool:
    """Files where secrets are expected noise (lock files, binaries, API specs)."""
    return bool(is_lock_file(path) or is_non_text_file(path) or is_swagger_file(path))


class SecretsAnalyzer:
    """Finds credentials committed in any text file; every hit is a HIGH ``secret`` issue."""

    name = "detect-secrets"

    def analyze(
        self, files: Mapping[str, str], focus: Mapping[str, Collection[int]] | None = None
    ) -> list[RawIssue]:
        """Scan every line, or with ``focus`` only those lines (the slow part is per line)."""
        targets = {path: text for path, text in files.items() if text and not _skipped(path)}
        if not targets:
            return []
        issues: list[RawIssue] = []
        seen: set[tuple[str, int, str]] = set()
        with _LOCK, default_settings() as settings:
            settings.disable_filters(_ON_DISK_FILTER)
            plugins = get_plugins()
            for path, text in targets.items():
                wanted = None if focus is None else set(focus.get(path, ()))
                for secret in _scan(path, text, plugins, wanted):
                    key = (path, secret.line_number, secret.type)
                    if key in seen:
                        continue
                    seen.add(key)
                    issues.append(
                        RawIssue(
                            path=path,
                            line=secret.line_number,
                            end_line=secret.line_number,
                            rule_id=f"secrets:{secret.type}",
                            category="secret",
                            severity="HIGH",
                            message=f"Possible {secret.type} committed to the repository; "
                            "revoke it and load it from a secret store instead.",
                        )
                    )
        return issues


def _scan(
    path: str, text: str, plugins: Sequence[Any], wanted: set[int] | None = None
) -> Iterator[PotentialSecret]:
    """What detect-secrets' line scanner reports on ``text``, in two passes (see above)."""
    lines = text.split("\n")  # git's line numbering: "\n" only
    for number, line in enumerate(lines, start=1):
        if wanted is not None and number not in wanted:
            continue
        if not _has_candidate(path, line.rstrip(), number, plugins):
            continue
        previous = lines[number - 2] if number > 1 else ""
        for secret in _process_line_based_plugins(lines=[(1, previous), (2, line)], filename=path):
            if secret.line_number == 2:
                secret.line_number = number
                yield secret


def _has_candidate(path: str, line: str, number: int, plugins: Sequence[Any]) -> bool:
    """Whether any plugin sees a possible secret on ``line``, before any filter."""
    for plugin in plugins:
        if isinstance(plugin, KeywordDetector) and not _KEYWORD_HINT.search(line):
            continue
        if plugin.analyze_line(filename=path, line=line, line_number=number, context=None):
            return True
    return False
