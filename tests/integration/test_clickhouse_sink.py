"""ClickHouseSink on a real chdb directory (one per test: chdb allows one path per process).

Migrations apply once and refuse a changed file, every write repeated gives
one row under FINAL, and the stage_latency view answers.
"""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from codereview.settings import ClickHouseSettings
from schemas.errors import SinkWriteError
from schemas.records import (
    CodeChunk,
    DeadLetter,
    FeedbackEvent,
    FileSnapshot,
    Finding,
    LlmUsage,
    MetricEvent,
    PullRequestEvent,
    Record,
)
from sinks.base import BatchBuffer, BufferFullError
from sinks.clickhouse import DDL_DIR, ClickHouseSink

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

T0 = 1_700_000_000_000
TABLES = ("pr_events", "findings", "feedback", "stage_metrics", "llm_usage", "dead_letters")


def settings(tmp_path: Path) -> ClickHouseSettings:
    return ClickHouseSettings(chdb_path=tmp_path / "chdb", database="cr_test")


@pytest.fixture
def sink(tmp_path: Path) -> Iterator[ClickHouseSink]:
    s = ClickHouseSink.from_settings(settings(tmp_path))
    s.start()
    yield s
    s.close()


def pr_event(i: int) -> PullRequestEvent:
    return PullRequestEvent(
        event_id=f"ev-{i}",
        tenant="acme",
        source="github",
        repo="acme/api",
        pr_number=i,
        action="opened",
        head_sha="a" * 40,
        diff="--- a/x.py\n+++ b/x.py\n@@ -1 +1 @@\n-a\n+b\n",
        received_at_ms=T0 + i,
        files=[FileSnapshot(path="x.py", content="b\n")],
    )


def finding(i: int, *, created: int = T0, message: str = "possible None") -> Finding:
    return Finding(
        fingerprint=f"fp-{i}",
        event_id=f"ev-{i}",
        tenant="acme",
        repo="acme/api",
        pr_number=i,
        head_sha="a" * 40,
        path="x.py",
        start_line=3,
        end_line=4,
        rule_id="B006",
        category="bug",
        severity="HIGH",
        confidence=0.8,
        message=message,
        origin="triage",
        received_at_ms=T0,
        created_at_ms=created,
        suggestion=None if i % 2 else "use None",
        model="m" if i % 2 else None,
    )


def feedback(i: int) -> FeedbackEvent:
    return FeedbackEvent(
        event_id=f"fb-{i}",
        fingerprint=f"fp-{i}",
        tenant="acme",
        repo="acme/api",
        pr_number=i,
        rule_id="B006",
        verdict="ACCEPTED",
        signal="reaction",
        at_ms=T0 + i,
    )


def metric(i: int, *, stage: str = "chunk", duration: float = 10.0) -> MetricEvent:
    return MetricEvent(
        stage=stage,
        event_id=f"ev-{i}",
        tenant="acme",
        repo="acme/api",
        pr_number=i,
        duration_ms=duration,
        since_received_ms=duration + 5,
        at_ms=T0 + i,
        items=3,
        worker="w1",
        attrs={"k": "v"},
    )


def usage(i: int) -> LlmUsage:
    return LlmUsage(
        call_id=f"call-{i}",
        event_id=f"ev-{i}",
        tenant="acme",
        repo="acme/api",
        pr_number=i,
        provider="openai",
        model="gpt",
        prompt_version="v1",
        input_tokens=100,
        output_tokens=20,
        cost_usd=0.001,
        latency_ms=300.0,
        ok=i % 2 == 0,
        at_ms=T0 + i,
        error=None if i % 2 == 0 else "timeout",
    )


def dead_letter(i: int) -> DeadLetter:
    return DeadLetter(
        stage="chunk",
        error_class="ProcessorError",
        error="bad diff",
        original_topic="pr.events",
        at_ms=T0,
        original_partition=0,
        original_offset=i,
        original_key=b"acme/api#1",
        original_value=b"\x00\x01\xff" if i % 2 else None,
        headers={"attempt": "1"},
    )


def count_final(sink: ClickHouseSink, table: str) -> int:
    _, rows = sink.query(f"SELECT count() FROM {table} FINAL")
    return int(rows[0][0])


WRITES: list[tuple[str, str, Sequence[Any]]] = [
    ("write_pr_events", "pr_events", [pr_event(i) for i in range(3)]),
    ("write_findings", "findings", [finding(i) for i in range(4)]),
    ("write_feedback", "feedback", [feedback(i) for i in range(2)]),
    ("write_metrics", "stage_metrics", [metric(i) for i in range(5)]),
    ("write_llm_usage", "llm_usage", [usage(i) for i in range(2)]),
    ("write_dead_letters", "dead_letters", [dead_letter(i) for i in range(2)]),
]


@pytest.mark.parametrize(("method", "table", "records"), WRITES, ids=[w[1] for w in WRITES])
def test_every_write_twice_gives_one_row_each(
    sink: ClickHouseSink, method: str, table: str, records: Sequence[Any]
) -> None:
    getattr(sink, method)(records)
    getattr(sink, method)(records)
    assert count_final(sink, table) == len(records)


def test_generic_write_groups_by_type_and_refuses_unknown_records(sink: ClickHouseSink) -> None:
    mixed: list[Record] = [
        finding(1),
        metric(1),
        usage(1),
        metric(2),
        feedback(1),
        pr_event(1),
        dead_letter(1),
    ]
    sink.write(mixed)
    sink.write(mixed)
    counts = {t: count_final(sink, t) for t in TABLES}
    assert counts == {t: (2 if t == "stage_metrics" else 1) for t in TABLES}

    chunk = CodeChunk("c", "e", "acme", "r", 1, "s", "p", "python", 1, 2, [1], "x", "h", T0)
    with pytest.raises(SinkWriteError) as err:
        sink.write([chunk])
    assert not err.value.retryable


def test_a_later_finding_version_replaces_the_earlier(sink: ClickHouseSink) -> None:
    sink.write_findings([finding(1, created=T0 + 100, message="new")])
    sink.write_findings([finding(1, created=T0, message="old")])
    rows = sink.query_dicts("SELECT message, created_at FROM findings FINAL")
    assert [r["message"] for r in rows] == ["new"]
    assert rows[0]["created_at"].year == 2023


def test_pr_events_keep_sizes_not_the_diff(sink: ClickHouseSink) -> None:
    event = pr_event(1)
    sink.write_pr_events([event])
    columns, _ = sink.query("SELECT * FROM pr_events")
    assert "diff" not in columns
    row = sink.query_dicts("SELECT diff_bytes, diff_lines, files, file_bytes FROM pr_events")[0]
    assert row == {"diff_bytes": len(event.diff), "diff_lines": 5, "files": 1, "file_bytes": 2}


def test_stage_latency_view_answers(sink: ClickHouseSink) -> None:
    batch = [metric(i, stage="chunk", duration=float(i)) for i in range(1, 101)]
    batch += [metric(i, stage="embed", duration=50.0) for i in range(10)]
    sink.write_metrics(batch)
    sink.write_metrics(batch)
    rows = {
        r["stage"]: r
        for r in sink.query_dicts(
            "SELECT * FROM stage_latency WHERE stage IN {stages:Array(String)}",
            {"stages": ["chunk", "embed"]},
        )
    }
    assert rows["chunk"]["events"] == 100
    assert rows["chunk"]["p50_ms"] == pytest.approx(50.5, abs=1.0)
    assert rows["chunk"]["p95_ms"] == pytest.approx(95.0, abs=1.5)
    assert rows["embed"]["events"] == 10
    assert rows["embed"]["p95_ms"] == pytest.approx(50.0)


def test_migrations_apply_once_across_restarts(tmp_path: Path) -> None:
    first = ClickHouseSink.from_settings(settings(tmp_path))
    try:
        first.start()
        first.start()
        assert first.apply_migrations() == []
        first.write_findings([finding(1)])
    finally:
        first.close()
    first.close()

    again = ClickHouseSink.from_settings(settings(tmp_path))
    again.start()
    try:
        _, versions = again.query("SELECT version FROM schema_migrations FINAL")
        shipped = sorted(p.name[:3] for p in DDL_DIR.glob("[0-9][0-9][0-9]_*.sql"))
        assert sorted(v for (v,) in versions) == shipped and shipped[0] == "001"
        _, tables = again.query(
            "SELECT name FROM system.tables WHERE database = {db:String} ORDER BY name",
            {"db": "cr_test"},
        )
        assert {t for (t,) in tables} >= {*TABLES, "stage_latency", "schema_migrations"}
        assert count_final(again, "findings") == 1
    finally:
        again.close()


def test_new_migration_applies_and_changed_one_is_refused(tmp_path: Path) -> None:
    ddl = tmp_path / "ddl"
    ddl.mkdir()
    shutil.copy(DDL_DIR / "001_init.sql", ddl / "001_init.sql")
    section = settings(tmp_path)

    s = ClickHouseSink.from_settings(section, ddl_dir=ddl)
    s.start()
    try:
        (ddl / "002_add_team.sql").write_text(
            "-- a team column\nALTER TABLE {db}.findings ADD COLUMN IF NOT EXISTS team String;\n"
        )
        assert s.apply_migrations() == ["002"]
        assert s.apply_migrations() == []
        _, columns = s.query(
            "SELECT name FROM system.columns WHERE database = 'cr_test' AND table = 'findings'"
        )
        assert ("team",) in columns
    finally:
        s.close()

    (ddl / "001_init.sql").write_text((DDL_DIR / "001_init.sql").read_text() + "\n-- edited\n")
    edited = ClickHouseSink.from_settings(section, ddl_dir=ddl)
    with pytest.raises(SinkWriteError, match="changed after it was applied") as err:
        edited.start()
    assert not err.value.retryable
    edited.close()


def test_bad_records_and_unstarted_sink_are_not_retryable(
    sink: ClickHouseSink, tmp_path: Path
) -> None:
    bad = dataclasses.replace(finding(1), start_line="three")  # type: ignore[arg-type]
    with pytest.raises(SinkWriteError) as err:
        sink.write_findings([bad])
    assert not err.value.retryable

    with pytest.raises(SinkWriteError):
        sink.query("SELEC 1")

    idle = ClickHouseSink.from_settings(settings(tmp_path / "idle"))
    with pytest.raises(SinkWriteError):
        idle.write_metrics([metric(1)])


def test_a_batch_buffer_feeds_the_sink_by_size_and_age(sink: ClickHouseSink) -> None:
    buffer: BatchBuffer[MetricEvent] = BatchBuffer(max_items=3, max_interval_s=1.0, capacity=4)
    for i in range(3):
        buffer.add(metric(i), now=0.0)
    assert buffer.ready(now=0.1)  # by size
    sink.write_metrics(buffer.drain())
    buffer.add(metric(3), now=5.0)
    assert not buffer.ready(now=5.5)
    assert buffer.ready(now=6.0)  # by age
    sink.write_metrics(buffer.drain())
    assert len(buffer) == 0 and not buffer.ready(now=100.0)
    assert count_final(sink, "stage_metrics") == 4

    for i in range(4):
        buffer.add(metric(i))
    with pytest.raises(BufferFullError):
        buffer.add(metric(4))
