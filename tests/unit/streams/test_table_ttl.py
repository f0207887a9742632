"""Old table entries are forgotten from inside the stream, each in its own partition.

The sweep runs while an event is processed (Faust refuses table changes
anywhere else), and only touches entries written from that event's
partition: their tombstones then go to the right changelog partition.
"""

from __future__ import annotations

import contextvars
import json
import weakref
from collections.abc import Callable
from dataclasses import replace
from types import SimpleNamespace
from typing import Any, TypeVar

from faust import streams as faust_streams

from schemas.records import Finding
from streams.published import PublishedFindings
from streams.table_ttl import TableSweeper, stamp, stamp_json

DAY_MS = 86_400_000
NOW = 1_700_000_000_000
T = TypeVar("T")


class Event:
    """What Faust's current event offers the table code: ``message.partition``."""

    def __init__(self, partition: int) -> None:
        self.message = SimpleNamespace(partition=partition, topic="pr.events")


def on_partition(partition: int, work: Callable[[], T]) -> T:
    """Run ``work`` as Faust runs an agent's body: with an event of ``partition`` current."""
    event = Event(partition)

    def inside() -> T:
        faust_streams._current_event.set(weakref.ref(event))
        return work()

    return contextvars.copy_context().run(inside)


def finding(fp: str) -> Finding:
    return Finding(
        fingerprint=fp, event_id="e", tenant="acme", repo="acme/shop", pr_number=7,
        head_sha="h", path="a.py", start_line=1, end_line=1, rule_id="r", category="bug",
        severity="LOW", confidence=0.5, message="m", origin="triage",
        received_at_ms=NOW, created_at_ms=NOW,
    )  # fmt: skip


def test_writes_inside_a_stream_carry_their_partition_and_outside_none() -> None:
    assert on_partition(3, lambda: stamp({"at_ms": 1})) == {"at_ms": 1, "partition": 3}
    assert stamp({"at_ms": 1}) == {"at_ms": 1, "partition": None}
    text = on_partition(1, lambda: stamp_json(json.dumps({"at_ms": 5, "x": [1]})))
    assert json.loads(text) == {"at_ms": 5, "x": [1], "partition": 1}


def test_a_sweep_forgets_old_entries_of_its_own_partition_only() -> None:
    table: dict[str, Any] = {}
    view = PublishedFindings(table)
    on_partition(2, lambda: view.remember([finding("old")], NOW - 3 * DAY_MS))
    on_partition(2, lambda: view.remember([finding("young")], NOW - DAY_MS))
    on_partition(1, lambda: view.remember([finding("other")], NOW - 3 * DAY_MS))
    sweeper = TableSweeper(table, ttl_ms=2 * DAY_MS)

    assert on_partition(2, lambda: sweeper.sweep(NOW)) == 1
    assert sorted(table) == ["acme/acme/shop#7|other", "acme/acme/shop#7|young"]
    # Forgotten means it would be sent again; the young one is still carried over.
    assert view.unpublished([finding("old")]) == ([finding("old")], 0)
    assert view.unpublished([finding("young")]) == ([], 1)
    # Partition 1's entry goes when an event of partition 1 comes by.
    assert on_partition(1, lambda: sweeper.sweep(NOW)) == 1
    assert sorted(table) == ["acme/acme/shop#7|young"]


def test_a_partition_is_swept_at_most_once_per_interval() -> None:
    table: dict[str, Any] = {}
    sweeper = TableSweeper(table, ttl_ms=DAY_MS, every_ms=3_600_000)
    assert on_partition(0, lambda: sweeper.sweep(NOW)) == 0
    table["k"] = on_partition(0, lambda: stamp({"at_ms": NOW - 2 * DAY_MS}))
    assert on_partition(0, lambda: sweeper.sweep(NOW + 60_000)) == 0, "not due yet"
    assert on_partition(0, lambda: sweeper.sweep(NOW + 3_600_000)) == 1
    assert table == {}


def test_outside_a_stream_nothing_is_touched() -> None:
    """A timer has no current event: the sweep does nothing rather than crash the worker."""
    table = {"k": on_partition(0, lambda: stamp({"at_ms": 0}))}
    assert TableSweeper(table, ttl_ms=1).sweep(NOW) == 0
    assert list(table) == ["k"]


def test_json_text_values_are_swept_and_unstamped_or_foreign_ones_are_kept() -> None:
    table: dict[str, Any] = {
        "cached": on_partition(0, lambda: stamp_json(json.dumps({"at_ms": 0, "findings": []}))),
        "unstamped": json.dumps({"at_ms": 0}),
        "written-outside": stamp({"at_ms": 0}),
        "legacy-int": 0,
        "not-json": "{",
        "gone": None,
    }
    assert on_partition(0, lambda: TableSweeper(table, ttl_ms=1).sweep(NOW)) == 1
    assert "cached" not in table and len(table) == 5


def test_a_moved_finding_restamped_on_another_partition_is_swept_there() -> None:
    """The partition of the LAST write decides: that is where its changelog entry lives."""
    table: dict[str, Any] = {}
    view = PublishedFindings(table)
    old = finding("a")
    on_partition(0, lambda: view.remember([old], NOW - 3 * DAY_MS))
    on_partition(3, lambda: view.remember([replace(old, start_line=2)], NOW - 3 * DAY_MS))
    sweeper = TableSweeper(table, ttl_ms=DAY_MS)
    assert on_partition(0, lambda: sweeper.sweep(NOW)) == 0
    assert on_partition(3, lambda: sweeper.sweep(NOW)) == 1
