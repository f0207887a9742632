"""Findings from the topic to comments on a (fake) GitHub: speed, calls, and no duplicates.

Runs the embedded broker with two ``publish`` workers (real processes) and a
local GitHub review API that answers every call after ``--latency-ms``
(50 ms: a realistic round trip to a hosted SCM). The findings are real:
triage (the platform's default analyzers) over the golden PRs, stamped
``source=github`` in a tenant whose posting is live. They are produced to
``pr.findings`` keyed by PR like the pipeline does, all at once (a backlog:
latency is then mostly queueing) or at ``--rate`` per second. Each PR is
registered with the fake with its diff, so comments land on real diff lines.

Twice during the run a publish worker is restarted (SIGTERM, then started
again on its port): once after a third of the findings are on the fake,
once after two thirds. ``duplicates`` counts comments beyond the first for
any (PR, fingerprint), over the whole run; it must be 0.

    .venv/bin/python bench/publish.py [--limit 224] [--latency-ms 50] [--no-restarts]

Prints one JSON line: findings, prs, findings_per_pr, findings_per_s (first
produce to last comment), p50_ms/p95_ms (produce to the comment being
stored by the fake, per finding), duplicates, api_calls, api_calls_per_finding
(every call the fake received: reviews, reads after restarts, check runs),
api_calls_per_finding_without_checks, api_calls_by_kind, restarts, wall_s.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from confluent_kafka import Producer  # noqa: E402
from tqdm import tqdm  # noqa: E402

from bench.stack_settings import bench_settings  # noqa: E402
from codereview.evaluation import case_event, load_cases, triage_case, triage_config  # noqa: E402
from codereview.settings import PublishSettings, Settings  # noqa: E402
from ops.stack import load_stack_info  # noqa: E402
from ops.workers import restart_worker, start_platform, stop_platform, wait_until  # noqa: E402
from processors.analyzers import build_analyzers  # noqa: E402
from schemas.codec import AvroCodec  # noqa: E402
from schemas.records import Finding  # noqa: E402
from schemas.registry import LocalSchemaRegistry  # noqa: E402
from tests.fakes.scm_reviews.github import FakeGitHubReviews  # noqa: E402

GOLDEN = Path(__file__).resolve().parents[1] / ".." / "shared" / "golden" / "bugsinpy.jsonl"
TENANT = "bench"


def golden_findings(limit: int) -> tuple[list[Finding], dict[tuple[str, int], str]]:
    """Triage findings of the first ``limit`` golden PRs, and each PR's diff."""
    config = triage_config(Settings())
    analyzers = build_analyzers(config.analyzers)
    findings: list[Finding] = []
    diffs: dict[tuple[str, int], str] = {}
    cases = load_cases(GOLDEN.resolve())[:limit]
    for number, case in enumerate(tqdm(cases, desc="triage", unit="PR", leave=False), 1):
        event = dataclasses.replace(case_event(case, number=number, tenant=TENANT), source="github")
        _, found = triage_case(event, analyzers, config)
        findings += found
        diffs[(event.repo, event.pr_number)] = event.diff
    return findings, diffs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, default=224, help="golden PRs to take findings from")
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--no-restarts", action="store_true")
    parser.add_argument(
        "--rate", type=float, default=0.0, help="findings produced per second (0: all at once)"
    )
    args = parser.parse_args()
    findings, diffs = golden_findings(args.limit)
    prs = {f.key for f in findings}
    with (
        tempfile.TemporaryDirectory(prefix="bench-publish-") as tmp,
        FakeGitHubReviews(latency_s=args.latency_ms / 1000) as fake,
    ):
        for (repo, number), diff in diffs.items():
            fake.add_pull(repo, number, diff)
        base = bench_settings(Path(tmp), api_url=fake.url, secret=b"unused", name="bench-pub")
        settings = base.model_copy(
            update={
                "publish": PublishSettings(
                    modes={"*": "dry-run", TENANT: "live"}, api_urls={"github": fake.url}
                )
            }
        )
        start_platform(settings, workers=0, publishers=2)
        try:
            result = run(settings, fake, findings, restarts=not args.no_restarts, rate=args.rate)
        finally:
            stop_platform(settings)
    calls = len(fake.calls)
    checks = fake.calls_to("POST", "/check-runs") + fake.calls_to("PATCH", "/check-runs")
    # "POST reviews", "POST graphql", ...: the last path segment that is not an id.
    by_kind = Counter(
        f"{method} {next(p for p in reversed(path.split('/')) if p and not p.isdigit())}"
        for method, path in fake.calls
    )
    print(
        json.dumps(
            {
                "bench": "publish",
                "findings": len(findings),
                "prs": len(prs),
                "findings_per_pr": round(len(findings) / max(len(prs), 1), 2),
                **result,
                "api_calls": calls,
                "api_calls_per_finding": round(calls / max(len(findings), 1), 3),
                "api_calls_per_finding_without_checks": round(
                    (calls - checks) / max(len(findings), 1), 3
                ),
                "api_calls_by_kind": dict(sorted(by_kind.items())),
                "latency_ms": args.latency_ms,
            }
        )
    )


def run(
    settings: Settings,
    fake: FakeGitHubReviews,
    findings: list[Finding],
    *,
    restarts: bool,
    rate: float,
) -> dict[str, object]:
    info = load_stack_info(Path(settings.stack.state_dir).resolve())
    assert info is not None
    codec = AvroCodec(LocalSchemaRegistry(settings.schema_registry.local_path))
    # A comment is one finding on one PR: (repo, PR number, fingerprint).
    expected = {(f.repo, f.pr_number, f.fingerprint) for f in findings}
    seen_at: dict[tuple[str, int, str], float] = {}
    stop = threading.Event()

    def watch() -> None:  # when each comment first shows up on the fake
        while not stop.is_set():
            now = time.time()
            for comment in fake.all_comments():
                seen_at.setdefault(comment, now)
            time.sleep(0.01)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    producer = Producer({"bootstrap.servers": info.kafka_bootstrap, "linger.ms": 5})
    produced_at: dict[tuple[str, int, str], float] = {}
    started = time.time()
    for i, finding in enumerate(findings):
        if rate > 0:
            time.sleep(max(0.0, started + i / rate - time.time()))
        produced_at.setdefault((finding.repo, finding.pr_number, finding.fingerprint), time.time())
        producer.produce("pr.findings", key=finding.key.encode(), value=codec.encode(finding))
        producer.poll(0)
    producer.flush(60)
    done_restarts = 0
    if restarts:
        for name, share in (("publish-1", 1 / 3), ("publish-2", 2 / 3)):
            wait_until(lambda share=share: len(seen_at) >= share * len(expected), 300, 0.05)
            restart_worker(settings, name)
            done_restarts += 1
    finished = wait_until(lambda: expected <= set(seen_at), 600, 0.1)
    stop.set()
    watcher.join(5)
    last = max(seen_at.values(), default=started)
    latencies = sorted((t - produced_at[c]) * 1000 for c, t in seen_at.items() if c in expected)
    counts = Counter(fake.all_comments())
    return {
        "finished": finished,
        "posted": len(expected & set(seen_at)),
        "findings_per_s": round(len(seen_at) / max(last - started, 1e-9), 2),
        "p50_ms": round(statistics.median(latencies), 1) if latencies else None,
        "p95_ms": round(latencies[int(0.95 * (len(latencies) - 1))], 1) if latencies else None,
        "duplicates": sum(n - 1 for n in counts.values() if n > 1),
        "restarts": done_restarts,
        "wall_s": round(time.time() - started, 2),
    }


if __name__ == "__main__":
    main()
