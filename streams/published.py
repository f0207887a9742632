"""Which findings a PR already has on the findings topic, so a new push repeats none.

Triage and deep analysis run again on every push, and most of what they find
is what they found last time. Their fingerprints hash the code, not its line
numbers, so an unchanged finding comes back with the same fingerprint. This
table remembers, per PR, each fingerprint sent and the lines it was sent
with: the same fingerprint on the same lines is carried over silently; one
whose lines moved (code added above it) is sent again, so consumers keying
on the fingerprint move their comment instead of adding one.

The table is a Faust table (changelog-backed, so it survives restarts),
keyed by "PR key|fingerprint" and held on the PR's partition, the same
partition the agent's input comes from, plus one entry per PR (its key)
listing what its last revision found. Every entry is stamped with its
partition, so the agent's ``TableSweeper`` can forget it after the TTL.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from schemas.records import Finding, pr_key
from streams.table_ttl import stamp


class PublishedFindings:
    """A view over one Faust table: ``{pr_key|fingerprint: {"lines": "s-e", "at_ms": n}}``."""

    def __init__(self, table: Any) -> None:
        self.table = table

    def unpublished(self, findings: Sequence[Finding]) -> tuple[list[Finding], int]:
        """(findings to send, how many were carried over unchanged)."""
        fresh: list[Finding] = []
        for finding in findings:
            seen = self.table.get(_key(finding))
            if seen is not None and seen.get("lines") == _lines(finding):
                continue
            fresh.append(finding)
        return fresh, len(findings) - len(fresh)

    def describe(self, findings: Sequence[Finding], now_ms: int) -> None:
        """Record each finding's rule, category and severity; call BEFORE sending them.

        Feedback from an SCM names only the fingerprint, and learning joins it
        to the rule here. A person can react as soon as a finding is visible,
        so the join must be possible before the send, not after it. Lines are
        not recorded: the finding does not count as published until
        ``remember``.
        """
        for finding in findings:
            entry = dict(self.table.get(_key(finding)) or {})
            entry.update(
                at_ms=now_ms,
                rule_id=finding.rule_id,
                category=finding.category,
                severity=finding.severity,
            )
            self.table[_key(finding)] = stamp(entry)

    def remember(self, findings: Sequence[Finding], now_ms: int) -> None:
        """Record findings as sent; call only after the send was acknowledged."""
        for finding in findings:
            self.table[_key(finding)] = stamp(
                {
                    "lines": _lines(finding),
                    "at_ms": now_ms,
                    "rule_id": finding.rule_id,
                    "category": finding.category,
                    "severity": finding.severity,
                }
            )

    def resolved(self, pr: str, current: Sequence[Finding], now_ms: int) -> list[str]:
        """Fingerprints this PR had on its last review that its new revision no longer has.

        The PR's entry ``pr`` (its Kafka key) lists what the last revision
        found; a fingerprint hashes the flagged code, so one that is gone means
        that code was changed or removed: the author acted on the finding. The
        entry is replaced by ``current``, so each is reported once.
        """
        before = self.table.get(pr) or {}
        now = {f.fingerprint for f in current}
        gone = sorted(set(before.get("fingerprints", [])) - now)
        self.table[pr] = stamp({"fingerprints": sorted(now), "at_ms": now_ms})
        return gone

    def info(self, tenant: str, repo: str, pr_number: int, fingerprint: str) -> dict | None:
        """What was recorded of a finding of this PR, or None (another partition, or expired)."""
        value = self.table.get(f"{pr_key(tenant, repo, pr_number)}|{fingerprint}")
        return dict(value) if value else None


def _key(finding: Finding) -> str:
    return f"{finding.key}|{finding.fingerprint}"


def _lines(finding: Finding) -> str:
    return f"{finding.start_line}-{finding.end_line}"
