"""ClickHouse bench: the analysts' named queries on 1M findings.

Builds a fresh chdb directory in a temp folder, applies every migration
through ``ClickHouseSink``, writes synthetic findings, feedback, LLM usage,
stage metrics and suppressions through the sink's write methods in batches
(the path the store worker takes), then runs every named query of
``codereview.analytics.NAMED_QUERIES`` ``--runs`` times after two warm-ups.
The target is p95 < 200 ms for each query at 1M findings: the v_* views read
pre-aggregated targets, not the raw tables.

Data come from a seeded ``random.Random``, so two runs write the same rows.
Prints ONE JSON line:
{"bench": "clickhouse", "findings": N, "insert_rows_per_s": ...,
 "queries": {name: {"p50_ms", "p95_ms"}}, "max_p95_ms": ...}

    .venv/bin/python bench/clickhouse.py [--findings 1000000] [--runs 20]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from codereview.analytics import NAMED_QUERIES  # noqa: E402
from schemas import records  # noqa: E402
from schemas.records import FeedbackEvent, Finding, LlmUsage, MetricEvent  # noqa: E402
from sinks.clickhouse import ClickHouseSink  # noqa: E402

DATABASE = "cr_bench"
BATCH = 100_000
DAY_MS = 86_400_000
T0 = 1_700_000_000_000  # 2023-11-14
DAYS = 60
TENANTS = tuple(f"team-{i}" for i in range(8))
REPOS = tuple(f"org/repo-{i}" for i in range(40))
RULES = tuple(f"R{i:03d}" for i in range(60))
CATEGORIES = ("bug", "security", "style", "performance")
STAGES = ("normalize", "chunk", "triage", "embed", "review", "publish")
MODELS = ("gpt-small", "gpt-large", "claude-haiku", "claude-sonnet")
PROMPTS = ("review-v1", "review-v2", "review-v3")
SIGNALS = ("reaction", "resolved", "reply")


def synthetic_findings(rng: random.Random, n: int) -> Iterator[Finding]:
    for i in range(n):
        origin_llm = rng.random() < 0.4
        yield Finding(
            fingerprint=f"fp{i:09d}",
            event_id=f"ev{i // 5:08d}",
            tenant=rng.choice(TENANTS),
            repo=rng.choice(REPOS),
            pr_number=i // 5,
            head_sha="0" * 40,
            path=f"src/mod_{i % 300}.py",
            start_line=i % 500,
            end_line=i % 500 + 2,
            rule_id=rng.choice(RULES),
            category=rng.choice(CATEGORIES),
            severity=rng.choice(records.SEVERITIES),
            confidence=rng.random(),
            message="synthetic finding",
            origin="llm" if origin_llm else "triage",
            received_at_ms=T0 + rng.randrange(DAYS * DAY_MS),
            created_at_ms=T0 + rng.randrange(DAYS * DAY_MS),
            model=rng.choice(MODELS) if origin_llm else None,
            prompt_version=rng.choice(PROMPTS) if origin_llm else None,
        )


def synthetic_feedback(rng: random.Random, n: int, findings: int) -> Iterator[FeedbackEvent]:
    for i in range(n):
        fp = rng.randrange(findings)
        yield FeedbackEvent(
            event_id=f"fb{i:08d}",
            fingerprint=f"fp{fp:09d}",
            tenant=rng.choice(TENANTS),
            repo=rng.choice(REPOS),
            pr_number=fp // 5,
            rule_id="" if rng.random() < 0.3 else rng.choice(RULES),
            verdict=rng.choice(records.VERDICTS),
            signal=rng.choice(SIGNALS),
            at_ms=T0 + rng.randrange(DAYS * DAY_MS),
        )


def synthetic_usage(rng: random.Random, n: int) -> Iterator[LlmUsage]:
    for i in range(n):
        tokens_in = rng.randrange(200, 8000)
        yield LlmUsage(
            call_id=f"call{i:09d}",
            event_id=f"ev{rng.randrange(200_000):08d}",
            tenant=rng.choice(TENANTS),
            repo=rng.choice(REPOS),
            pr_number=i // 3,
            provider="synthetic",
            model=rng.choice(MODELS),
            prompt_version=rng.choice(PROMPTS),
            input_tokens=tokens_in,
            output_tokens=tokens_in // 10,
            cost_usd=tokens_in * 2e-6,
            latency_ms=rng.uniform(200, 9000),
            ok=rng.random() > 0.02,
            at_ms=T0 + rng.randrange(DAYS * DAY_MS),
            cache_hit=rng.random() < 0.25,
        )


def synthetic_metrics(rng: random.Random, n: int) -> Iterator[MetricEvent]:
    for i in range(n):
        duration = rng.expovariate(1 / 50)
        yield MetricEvent(
            stage=rng.choice(STAGES),
            event_id=f"ev{i // 6:08d}",
            tenant=rng.choice(TENANTS),
            repo=rng.choice(REPOS),
            pr_number=i // 6,
            duration_ms=duration,
            since_received_ms=duration + rng.expovariate(1 / 400),
            at_ms=T0 + rng.randrange(DAYS * DAY_MS),
            items=rng.randrange(1, 20),
            worker=f"w{i % 4}",
        )


def synthetic_suppressions(rng: random.Random, n: int) -> list[Any]:
    """Suppression records when the schema has them (the lead adds the type)."""
    cls = getattr(records, "Suppression", None)
    if cls is None:
        return []
    return [
        cls(
            fingerprint=f"sp{i:08d}",
            event_id=f"ev{i:08d}",
            tenant=rng.choice(TENANTS),
            repo=rng.choice(REPOS),
            pr_number=i,
            rule_id=rng.choice(RULES),
            category=rng.choice(CATEGORIES),
            severity=rng.choice(records.SEVERITIES),
            confidence=rng.random() * 0.3,
            threshold=0.3,
            reason="rule rarely accepted in this repo",
            at_ms=T0 + rng.randrange(DAYS * DAY_MS),
        )
        for i in range(n)
    ]


def batched(items: Iterator[Any], size: int) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def insert_all(write: Callable[[Sequence[Any]], None], items: Iterator[Any]) -> tuple[int, float]:
    """Rows written and seconds spent inside the sink (record building excluded)."""
    rows, spent = 0, 0.0
    for batch in batched(items, BATCH):
        start = time.perf_counter()
        write(batch)
        spent += time.perf_counter() - start
        rows += len(batch)
    return rows, spent


def time_query(sink: ClickHouseSink, sql: str, runs: int) -> dict[str, float]:
    for _ in range(2):
        sink.query(sql)
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        sink.query(sql)
        samples.append((time.perf_counter() - start) * 1000)
    samples.sort()
    p95 = samples[min(len(samples) - 1, round(0.95 * (len(samples) - 1)))]
    return {"p50_ms": round(statistics.median(samples), 1), "p95_ms": round(p95, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--findings", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    n = args.findings

    with tempfile.TemporaryDirectory(prefix="cr-bench-ch-") as tmp:
        sink = ClickHouseSink(dsn=f"chdb://{tmp}/chdb", database=DATABASE)
        sink.start()
        try:
            counts = {}
            rows, spent = 0, 0.0
            for name, write, items in (
                ("findings", sink.write_findings, synthetic_findings(rng, n)),
                ("feedback", sink.write_feedback, synthetic_feedback(rng, n // 10, n)),
                ("llm_usage", sink.write_llm_usage, synthetic_usage(rng, n // 5)),
                ("stage_metrics", sink.write_metrics, synthetic_metrics(rng, n // 2)),
                ("suppressions", sink.write, iter(synthetic_suppressions(rng, n // 100))),
            ):
                written, seconds = insert_all(write, items)
                counts[name] = written
                rows += written
                spent += seconds
            queries = {
                name: time_query(sink, sql.replace("{db}", DATABASE), args.runs)
                for name, sql in NAMED_QUERIES.items()
            }
        finally:
            sink.close()

    print(
        json.dumps(
            {
                "bench": "clickhouse",
                "findings": counts["findings"],
                "rows": counts,
                "insert_rows_per_s": round(rows / spent) if spent else None,
                "queries": queries,
                "max_p95_ms": max(q["p95_ms"] for q in queries.values()),
            }
        )
    )


if __name__ == "__main__":
    main()
