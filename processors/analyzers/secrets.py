"""detect-secrets as a cheap analyzer, run in-process over every line of every file.

Why in-process and not the CLI: the CLI costs ~0.2 s a call (interpreter
start, plugin discovery), more than the rest of triage together. Here the
plugins run on the text we already hold, ~0.12 ms a line.

Why ``_process_line_based_plugins``: detect-secrets 1.5.0 (pinned) has two
public entry points and neither fits. ``scan_file`` needs a real file on
disk; ``scan_line`` turns on "eager search", which in source code flags
nearly every line as a high-entropy string (measured: hundreds of hits on a
300-line file with no secret). The private line scanner is exactly what
``scan_file`` runs, with the same plugins and line filters, so we call it on
the lines directly. ``tests/unit/processors/test_analyzers.py`` pins its
behaviour, so an upgrade that changes it fails loudly.

detect-secrets keeps its settings in a process-global singleton. We enter
its ``default_settings()`` (all plugins, default filters) for each call and
hold a lock meanwhile, so two threads cannot see each other's settings.
Verification of secrets against live services is a filter that is off by
default and stays off: no network here. The secret value itself never leaves
this module: a finding is published and must not re-leak the secret.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping

from detect_secrets.core.potential_secret import PotentialSecret
from detect_secrets.core.scan import _process_line_based_plugins
from detect_secrets.filters.heuristic import is_lock_file, is_non_text_file, is_swagger_file
from detect_secrets.settings import default_settings

from processors.analyzers import RawIssue

# detect-secrets drops files it cannot find on disk; ours live in memory.
_ON_DISK_FILTER = "detect_secrets.filters.common.is_invalid_file"
_LOCK = threading.Lock()


def _skipped(path: str) -> bool:
    """Files where secrets are expected noise (lock files, binaries, API specs)."""
    return bool(is_lock_file(path) or is_non_text_file(path) or is_swagger_file(path))


class SecretsAnalyzer:
    """Finds credentials committed in any text file; every hit is a HIGH ``secret`` issue."""

    name = "detect-secrets"

    def analyze(self, files: Mapping[str, str]) -> list[RawIssue]:
        targets = {path: text for path, text in files.items() if text and not _skipped(path)}
        if not targets:
            return []
        issues: list[RawIssue] = []
        seen: set[tuple[str, int, str]] = set()
        with _LOCK, default_settings() as settings:
            settings.disable_filters(_ON_DISK_FILTER)
            for path, text in targets.items():
                for secret in _scan(path, text):
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


def _scan(path: str, text: str) -> Iterator[PotentialSecret]:
    lines = list(enumerate(text.splitlines(), start=1))
    yield from _process_line_based_plugins(lines=lines, filename=path)
