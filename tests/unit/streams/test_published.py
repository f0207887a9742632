"""Published findings: a new push re-sends only what is new or moved."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from schemas.records import Finding
from streams.published import PublishedFindings

NOW = 1_700_000_000_000


def finding(fp: str, start: int, end: int | None = None, *, pr: int = 7) -> Finding:
    return Finding(
        fingerprint=fp,
        event_id="ev-1",
        tenant="acme",
        repo="acme/shop",
        pr_number=pr,
        head_sha="beef",
        path="shop/cart.py",
        start_line=start,
        end_line=end or start,
        rule_id="llm:bug",
        category="bug",
        severity="HIGH",
        confidence=0.65,
        message="wrong bound",
        origin="llm",
        received_at_ms=NOW - 100,
        created_at_ms=NOW,
    )


def published(table: dict[str, Any] | None = None) -> PublishedFindings:
    return PublishedFindings({} if table is None else table)


def test_first_push_sends_everything() -> None:
    view = published()
    batch = [finding("a", 3), finding("b", 10, 12)]
    assert view.unpublished(batch) == (batch, 0)
    assert view.unpublished([]) == ([], 0)


def test_remember_keys_by_pr_and_fingerprint() -> None:
    table: dict[str, Any] = {}
    view = published(table)
    a, b = finding("a", 3), finding("b", 10, 12)
    view.remember([a, b], NOW)
    rule = {"rule_id": a.rule_id, "category": a.category, "severity": a.severity}
    rule["partition"] = None  # written outside a stream: never swept (see test_table_ttl)
    assert table == {
        "acme/acme/shop#7|a": {"lines": "3-3", "at_ms": NOW, **rule},
        "acme/acme/shop#7|b": {"lines": "10-12", "at_ms": NOW, **rule},
    }
    # Feedback that names only a fingerprint finds the finding's rule here.
    assert view.info("acme", "acme/shop", 7, "b") == {"lines": "10-12", "at_ms": NOW, **rule}
    assert view.info("acme", "acme/shop", 8, "b") is None


@pytest.mark.parametrize(
    ("second_push", "sent", "carried"),
    [
        # Same fingerprint on the same lines: carried over silently.
        ([finding("a", 3), finding("b", 10, 12)], [], 2),
        # Lines moved (code added above): sent again so the comment moves.
        ([finding("a", 5), finding("b", 10, 12)], [finding("a", 5)], 1),
        ([finding("a", 3), finding("b", 10, 13)], [finding("b", 10, 13)], 1),
        # A new fingerprint is new.
        ([finding("a", 3), finding("c", 3)], [finding("c", 3)], 1),
        # The same fingerprint on another PR was never sent there.
        ([finding("a", 3, pr=8)], [finding("a", 3, pr=8)], 0),
    ],
)
def test_second_push(second_push: list[Finding], sent: list[Finding], carried: int) -> None:
    view = published()
    view.remember([finding("a", 3), finding("b", 10, 12)], NOW)
    assert view.unpublished(second_push) == (sent, carried)


def test_a_moved_finding_once_remembered_is_carried_at_its_new_lines() -> None:
    view = published()
    view.remember([finding("a", 3)], NOW)
    moved = finding("a", 9)
    assert view.unpublished([moved]) == ([moved], 0)
    view.remember([moved], NOW + 1)
    assert view.unpublished([moved]) == ([], 1)
    assert view.unpublished([finding("a", 3)]) == ([finding("a", 3)], 0)


def test_unpublished_ignores_fields_other_than_fingerprint_and_lines() -> None:
    view = published()
    view.remember([finding("a", 3)], NOW)
    reworded = replace(finding("a", 3), message="other words", head_sha="cafe", event_id="ev-2")
    assert view.unpublished([reworded]) == ([], 1)


def test_describe_lets_feedback_join_before_the_finding_counts_as_published() -> None:
    table: dict[str, Any] = {}
    view = published(table)
    a = finding("a", 3)
    view.describe([a], NOW)
    info = view.info("acme", "acme/shop", 7, "a")
    assert info is not None and info["rule_id"] == a.rule_id
    assert view.unpublished([a]) == ([a], 0), "described is not yet sent"
    view.remember([a], NOW)
    view.describe([a], NOW + 1)  # describing again keeps the published lines
    assert view.unpublished([a]) == ([], 1)
