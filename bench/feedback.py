"""Feedback latency through the running platform: event published -> confidence updated.

Starts the embedded stack with two pipeline workers, warms it up with 60
unmeasured events (the first ones wait for partition assignment), posts ``--events``
verdicts to ``POST /v1/feedback`` at ``--rate`` per second (rules spread over
a few tenants and repos), and reads back, for every event, the ``posterior``
stage metric the posterior agent emits once the rule's Beta posterior is
written. ``since_received_ms`` of that metric is the time from the web view
stamping the event (``at_ms``, just before it is published to
``review.feedback``) to the posterior updated: two Kafka hops (the join by
fingerprint, then the re-key by tenant) and the table write.

    .venv/bin/python bench/feedback.py [--events 300] [--rate 30]

Prints one JSON line: {"bench": "feedback", "events", "updated", "feedback_p50_ms",
"feedback_p95_ms", "feedback_p99_ms", "wall_s"}.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.stack_settings import bench_settings  # noqa: E402
from codereview.analytics import AnalyticsClient  # noqa: E402
from ops.workers import load_workers, start_platform, stop_platform, store_url, wait_until  # noqa: E402

WARMUP = 60


def post_feedback(urls: list[str], prefix: str, count: int, rate: float) -> None:
    """``count`` verdicts spread over rules, repos and PRs, paced at ``rate`` per second."""
    started = time.perf_counter()
    for i in range(count):
        payload = {
            "fingerprint": f"{prefix}-fp-{i}",
            "repo": f"{prefix}/repo-{i % 5}",
            "pr_number": 1 + i % 17,
            "rule_id": f"ruff:B{i % 12:03d}",
            "verdict": "accepted" if i % 3 else "rejected",
            "event_id": f"{prefix}-{i}",
        }
        request = urllib.request.Request(
            urls[i % len(urls)] + "/v1/feedback",
            data=json.dumps(payload).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            assert response.status == 202
        pause = started + (i + 1) / rate - time.perf_counter()
        if pause > 0:
            time.sleep(pause)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=300)
    parser.add_argument("--rate", type=float, default=30.0, help="events per second")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-feedback-") as tmp:
        settings = bench_settings(
            Path(tmp), api_url="http://127.0.0.1:9", secret=b"unused", name="bench-fb"
        )
        start_platform(settings, workers=2)
        try:
            urls = [w.url for w in load_workers(Path(tmp) / "stack") if w.role == "pipeline"]
            client = AnalyticsClient(settings, store_url=store_url(settings))
            # Warm-up, not measured: the first events wait for the agents' partition
            # assignment and table recovery (a worker's start, seen as ~1 s here).
            post_feedback(urls, "warm", WARMUP, args.rate)
            warm = "SELECT count() FROM {db}.stage_metrics FINAL WHERE stage = 'posterior'"
            wait_until(lambda: int(client.sql(warm).rows[0][0]) >= WARMUP, 120)
            started = time.perf_counter()
            post_feedback(urls, "bench", args.events, args.rate)
            sql = (
                "SELECT since_received_ms FROM {db}.stage_metrics FINAL "
                "WHERE stage = 'posterior' AND repo LIKE 'bench/%' ORDER BY at_ms"
            )
            wait_until(lambda: len(client.sql(sql).rows) >= args.events, 120)
            in_order = [float(r[0]) for r in client.sql(sql).rows]
            print(
                "latency by tenth of the run (ms, max):",
                [
                    round(max(in_order[i : i + len(in_order) // 10 or 1]))
                    for i in range(0, len(in_order), len(in_order) // 10 or 1)
                ],
                file=sys.stderr,
            )
            latencies = sorted(in_order)
            wall = time.perf_counter() - started
        finally:
            stop_platform(settings)
    q = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else latencies * 99
    print(
        json.dumps(
            {
                "bench": "feedback",
                "events": args.events,
                "updated": len(latencies),
                "feedback_p50_ms": round(statistics.median(latencies), 1),
                "feedback_p95_ms": round(q[94], 1),
                "feedback_p99_ms": round(q[98], 1),
                "wall_s": round(wall, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
