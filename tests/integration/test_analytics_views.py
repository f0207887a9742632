"""The analysts' v_* views (ops/ddl/004) on a real chdb directory, with exact numbers.

A handful of known findings, verdicts, LLM calls, stage runs and
suppressions go in through ``ClickHouseSink``; each view must present the
numbers worked out by hand below. Findings and feedback are written twice:
the views count identities, so a replayed batch changes nothing. A database
that had rows before 004 was applied sees them too (the backfill).
"""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from codereview.analytics import NAMED_QUERIES
from schemas.records import FeedbackEvent, Finding, LlmUsage, MetricEvent, Suppression
from sinks.clickhouse import DDL_DIR, ClickHouseSink

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

DB = "cr_views"
T0 = 1_700_000_000_000  # 2023-11-14 22:13:20 UTC, a Tuesday
DAY = 86_400_000
WEEK1 = dt.date(2023, 11, 13)  # the Monday of T0
WEEK2 = dt.date(2023, 11, 20)
DAY1, DAY2 = dt.date(2023, 11, 14), dt.date(2023, 11, 15)

# fingerprint: (rule, confidence, prompt_version, model, created_at_ms)
FINDINGS: dict[str, tuple[str, float, str | None, str | None, int]] = {
    "fp-1": ("R1", 0.05, "v1", "m1", T0),
    "fp-2": ("R1", 0.15, "v1", "m1", T0),
    "fp-3": ("R1", 0.95, "v2", "m2", T0),
    "fp-4": ("R2", 0.97, None, None, T0),
    "fp-5": ("R1", 0.12, "v2", "m1", T0),
    "fp-6": ("R1", 0.50, "v1", "m1", T0 + 7 * DAY),
}
# (feedback id, fingerprint, rule carried, verdict, at_ms): fp-2 is rejected,
# then accepted (the latest counts); fp-5 is only IGNORED (no decision).
FEEDBACK = [
    ("fb-1", "fp-1", "", "ACCEPTED", T0 + 1),
    ("fb-2", "fp-2", "R1", "REJECTED", T0 + 2),
    ("fb-3", "fp-2", "", "ACCEPTED", T0 + 3),
    ("fb-4", "fp-3", "R1", "REJECTED", T0 + 4),
    ("fb-5", "fp-5", "R1", "IGNORED", T0 + 5),
    ("fb-6", "fp-6", "", "REJECTED", T0 + 8 * DAY),
]
# (call id, tenant, model, event, cache hit, cost, at_ms)
USAGE = [
    ("c1", "acme", "gpt", "ev-1", True, 0.01, T0),
    ("c2", "acme", "gpt", "ev-1", False, 0.01, T0 + 1),
    ("c3", "acme", "gpt", "ev-2", False, 0.01, T0 + 2),
    ("c4", "beta", "claude", "ev-3", True, 0.5, T0 + 3),
    ("c5", "acme", "gpt", "ev-4", False, 0.02, T0 + DAY),
]


def finding(fp: str) -> Finding:
    rule, confidence, prompt, model, created = FINDINGS[fp]
    return Finding(
        fingerprint=fp,
        event_id="ev-1",
        tenant="acme",
        repo="acme/api",
        pr_number=1,
        head_sha="a" * 40,
        path="x.py",
        start_line=1,
        end_line=2,
        rule_id=rule,
        category="bug",
        severity="HIGH",
        confidence=confidence,
        message="m",
        origin="llm" if model else "triage",
        received_at_ms=created,
        created_at_ms=created,
        model=model,
        prompt_version=prompt,
    )


def feedback(event_id: str, fp: str, rule: str, verdict: str, at_ms: int) -> FeedbackEvent:
    return FeedbackEvent(event_id, fp, "acme", "acme/api", 1, rule, verdict, "reaction", at_ms)


def usage(
    call: str, tenant: str, model: str, event: str, hit: bool, cost: float, at: int
) -> LlmUsage:
    return LlmUsage(
        call_id=call,
        event_id=event,
        tenant=tenant,
        repo="r",
        pr_number=1,
        provider="p",
        model=model,
        prompt_version="v1",
        input_tokens=100,
        output_tokens=10,
        cost_usd=cost,
        latency_ms=1.0,
        ok=True,
        at_ms=at,
        cache_hit=hit,
    )


def metric(i: int, stage: str) -> MetricEvent:
    return MetricEvent(stage, f"ev-{i}", "acme", "r", i, float(i), float(i) + 5, T0 + i)


def suppression(fp: str, repo: str, at_ms: int) -> Suppression:
    return Suppression(
        fp, "ev-1", "acme", repo, 1, "R9", "style", "LOW", 0.1, 0.3, "rarely accepted", at_ms
    )


def write_all(sink: ClickHouseSink) -> None:
    for _ in range(2):  # a replayed batch must not change any count below
        sink.write_findings([finding(fp) for fp in FINDINGS])
        sink.write_feedback([feedback(*row) for row in FEEDBACK])
    sink.write_llm_usage([usage(*row) for row in USAGE])
    sink.write_metrics([metric(i, "chunk") for i in range(1, 101)])
    sink.write_metrics([metric(i, "embed") for i in range(1, 11)])
    supp = [suppression("s1", "acme/api", T0), suppression("s2", "acme/api", T0 + 5)]
    sink.write([*supp, suppression("s3", "acme/web", T0)])
    sink.write(supp)


@pytest.fixture
def sink(tmp_path: Path) -> Iterator[ClickHouseSink]:
    s = ClickHouseSink(dsn=f"chdb://{tmp_path / 'chdb'}", database=DB)
    s.start()
    yield s
    s.close()


@pytest.fixture
def loaded(sink: ClickHouseSink) -> ClickHouseSink:
    write_all(sink)
    return sink


def rows(sink: ClickHouseSink, sql: str) -> list[dict[str, Any]]:
    return sink.query_dicts(sql)


def test_precision_by_rule_and_week(loaded: ClickHouseSink) -> None:
    got = {
        (r["rule_id"], r["week"]): (r["findings"], r["accepted"], r["rejected"], r["precision"])
        for r in rows(loaded, "SELECT * FROM v_precision_by_rule_week WHERE tenant = 'acme'")
    }
    assert got.keys() == {("R1", WEEK1), ("R1", WEEK2), ("R2", WEEK1)}
    assert got[("R1", WEEK1)][:3] == (4, 2, 1)
    assert got[("R1", WEEK1)][3] == pytest.approx(2 / 3)
    assert got[("R1", WEEK2)] == (1, 0, 1, 0.0)
    assert got[("R2", WEEK1)] == (1, 0, 0, None)


def test_cost_by_team_and_day(loaded: ClickHouseSink) -> None:
    got = {(r["tenant"], r["day"]): r for r in rows(loaded, "SELECT * FROM v_cost_by_team_day")}
    assert got.keys() == {("acme", DAY1), ("beta", DAY1), ("acme", DAY2)}
    day1 = got[("acme", DAY1)]
    assert (day1["calls"], day1["cache_hits"], day1["prs"]) == (3, 1, 2)
    assert (day1["input_tokens"], day1["output_tokens"]) == (300, 30)
    assert day1["cost_usd"] == pytest.approx(0.03)
    assert (got[("beta", DAY1)]["calls"], got[("beta", DAY1)]["cost_usd"]) == (1, 0.5)
    assert (got[("acme", DAY2)]["calls"], got[("acme", DAY2)]["prs"]) == (1, 1)


def test_cache_hit_rate_by_day_and_model(loaded: ClickHouseSink) -> None:
    got = {
        (r["day"], r["model"]): (r["calls"], r["hits"], r["hit_rate"])
        for r in rows(loaded, "SELECT * FROM v_cache_hit_rate")
    }
    assert got == {
        (DAY1, "gpt"): (3, 1, pytest.approx(1 / 3)),
        (DAY1, "claude"): (1, 1, 1.0),
        (DAY2, "gpt"): (1, 0, 0.0),
    }


def test_calibration_buckets_use_the_latest_decisive_verdict(loaded: ClickHouseSink) -> None:
    got = {
        r["bucket"]: (r["findings_with_feedback"], r["accepted"], r["acceptance"])
        for r in rows(loaded, "SELECT * FROM v_calibration")
    }
    assert got == {0.0: (1, 1, 1.0), 0.1: (1, 1, 1.0), 0.5: (1, 0, 0.0), 0.9: (1, 0, 0.0)}
    means = {r["bucket"]: r["mean_confidence"] for r in rows(loaded, "SELECT * FROM v_calibration")}
    assert means == {0.0: 0.05, 0.1: 0.15, 0.5: 0.5, 0.9: 0.95}


def test_prompt_variants(loaded: ClickHouseSink) -> None:
    got = {
        (r["prompt_version"], r["model"]): (r["findings"], r["accepted"], r["rejected"])
        for r in rows(loaded, "SELECT * FROM v_prompt_variants")
    }
    assert got == {
        ("v1", "m1"): (3, 2, 1),
        ("v2", "m2"): (1, 0, 1),
        ("v2", "m1"): (1, 0, 0),
        ("", ""): (1, 0, 0),
    }
    precision = {
        (r["prompt_version"], r["model"]): r["precision"]
        for r in rows(loaded, "SELECT * FROM v_prompt_variants")
    }
    assert precision[("v1", "m1")] == pytest.approx(2 / 3)
    assert precision[("v2", "m1")] is None


def test_stage_latency_quantiles(loaded: ClickHouseSink) -> None:
    got = {r["stage"]: r for r in rows(loaded, "SELECT * FROM v_stage_latency")}
    chunk, embed = got["chunk"], got["embed"]
    assert (chunk["day"], chunk["runs"], embed["runs"]) == (DAY1, 100, 10)
    assert chunk["p50_ms"] == pytest.approx(50.5, abs=1.0)
    assert chunk["p95_ms"] == pytest.approx(95.0, abs=1.5)
    assert chunk["p50_ms"] < chunk["p95_ms"] < chunk["p95_since_received_ms"]
    assert chunk["p50_since_received_ms"] == pytest.approx(chunk["p50_ms"] + 5)
    assert embed["p95_ms"] < chunk["p50_ms"]


def test_suppressions_count_each_finding_once(loaded: ClickHouseSink) -> None:
    got = {
        r["repo"]: (r["rule_id"], r["reason"], r["suppressed"], r["last_at"])
        for r in rows(loaded, "SELECT * FROM v_suppressions")
    }
    last = dt.datetime.fromtimestamp((T0 + 5) / 1000, dt.UTC).replace(tzinfo=None)
    assert got["acme/api"][:3] == ("R9", "rarely accepted", 2)
    assert got["acme/api"][3].replace(tzinfo=None) == last
    assert got["acme/web"][2] == 1


@pytest.mark.parametrize(
    "name",
    [
        "precision_by_rule",
        "cost_by_team",
        "latency_by_stage",
        "cache_hit_rate",
        "calibration",
        "prompt_variants",
        "suppressions",
    ],
)
def test_named_queries_answer_from_the_views(loaded: ClickHouseSink, name: str) -> None:
    columns, result = loaded.query(NAMED_QUERIES[name].replace("{db}", DB))
    assert result, f"{name} returned no rows"
    assert len(columns) == len(result[0])


def test_a_database_migrated_later_is_backfilled(tmp_path: Path) -> None:
    ddl = tmp_path / "ddl"
    ddl.mkdir()
    # Every migration but the views (005 too: the rows written below have its column).
    for path in sorted(p for p in DDL_DIR.glob("*.sql") if not p.name.startswith("004")):
        shutil.copy(path, ddl / path.name)
    sink = ClickHouseSink(dsn=f"chdb://{tmp_path / 'chdb'}", database=DB, ddl_dir=ddl)
    sink.start()
    try:
        sink.write_findings([finding(fp) for fp in FINDINGS])
        sink.write_feedback([feedback(*row) for row in FEEDBACK])
        sink.write_llm_usage([usage(*row) for row in USAGE])
        sink.write_metrics([metric(i, "chunk") for i in range(1, 11)])
        shutil.copy(DDL_DIR / "004_analytics_views.sql", ddl / "004_analytics_views.sql")
        assert sink.apply_migrations() == ["004"]

        precision = rows(sink, "SELECT findings, accepted, rejected FROM v_precision_by_rule_week")
        assert sorted((r["findings"], r["accepted"], r["rejected"]) for r in precision) == [
            (1, 0, 0),
            (1, 0, 1),
            (4, 2, 1),
        ]
        calls = rows(sink, "SELECT sum(calls) AS calls FROM v_cost_by_team_day")
        assert calls == [{"calls": 5}]
        assert rows(sink, "SELECT runs FROM v_stage_latency") == [{"runs": 10}]

        sink.write_findings([finding("fp-4")])  # a replay: still one finding
        sink.write_llm_usage([usage("c6", "acme", "gpt", "ev-9", True, 0.1, T0)])
        hits = rows(
            sink,
            "SELECT hits FROM v_cache_hit_rate WHERE model = 'gpt' AND day = toDate('2023-11-14')",
        )
        assert hits == [{"hits": 2}]
        findings = rows(sink, "SELECT sum(findings) AS n FROM v_prompt_variants")
        assert findings == [{"n": 6}]
    finally:
        sink.close()
