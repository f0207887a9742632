"""End-to-end benchmark: golden PRs through the whole pipeline, no LLM.

Starts the platform as real processes (noida-db, milvus-lite server, a store
worker, two pipeline workers) and a local GitHub API, posts signed webhooks
for N golden PRs at a steady offered rate from a pool of clients, and waits
until every PR is triaged and every chunk embedded in Milvus.

Figures (one JSON line at the end):
- prs_per_s: PRs fully processed (triaged and embedded) / wall time from the
  first webhook to the last PR done;
- p50_ms / p95_ms: webhook received -> finding published (the Kafka
  timestamp of each finding minus its received_at_ms); review_p95_ms is the
  same for the per-PR triage verdict, which every PR has;
- embed_chunks_per_s: chunks embedded by the pipeline / wall time, and
  embed_raw_chunks_per_s: the bare model on the same chunks in this process;
- peak_rss_mb: the peak of the summed RSS of every platform process;
- relay_ratio: prs_per_s over a bare confluent-kafka consume->produce relay of
  the same webhook messages, measured in the same run.

    .venv/bin/python bench/e2e.py [--prs 200] [--rate 8] [--clients 8]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.stack_settings import bench_settings  # noqa: E402
from codereview.analytics import AnalyticsClient  # noqa: E402
from codereview.settings import Settings  # noqa: E402
from ops.stack import create_topics, load_stack_info  # noqa: E402
from ops.workers import load_workers, start_platform, stop_platform, store_url, wait_until  # noqa: E402
from processors.chunking import chunk_event  # noqa: E402
from streams.app import embedder_from_settings  # noqa: E402
from streams.topics import PARTITIONS, TopicSpec  # noqa: E402
from tests.e2e.conftest import AvroTopicReader, end_offsets  # noqa: E402
from tests.fakes.github import FakeGitHubApi, cycle_golden, signed_request, webhook_payload  # noqa: E402

SECRET = b"bench-secret"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prs", type=int, default=200)
    parser.add_argument("--rate", type=float, default=8.0, help="offered PRs/s (0: all at once)")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--timeout", type=float, default=600.0)
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="bench-e2e-"))
    prs = list(cycle_golden(args.prs))
    with FakeGitHubApi() as github:
        for pr in prs:
            github.add(pr)
        settings = bench_settings(root, api_url=github.url, secret=SECRET, name="bench")
        start_platform(settings, workers=2)
        try:
            result = run(settings, prs, github.url, args)
        finally:
            stop_platform(settings)
    print(json.dumps(result))


def run(settings: Settings, prs: list, api_url: str, args: argparse.Namespace) -> dict:
    info = load_stack_info(Path(settings.stack.state_dir).resolve())
    assert info is not None
    urls = [
        w.url + "/webhooks/github"
        for w in load_workers(Path(settings.stack.state_dir).resolve())
        if w.role == "pipeline"
    ]
    expected_chunks = sum(len(chunk_event(pr.to_event())) for pr in prs)
    sampler = RssSampler(
        info.pids.values(), [w.pid for w in load_workers(Path(settings.stack.state_dir).resolve())]
    )
    sampler.start()

    bodies = [signed_request(webhook_payload(pr, api_url), SECRET) for pr in prs]
    started = time.monotonic()
    with ThreadPoolExecutor(args.clients) as pool:
        futures = []
        for i, (body, headers) in enumerate(bodies):
            if args.rate > 0:
                delay = started + i / args.rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            futures.append(pool.submit(_post, urls[i % len(urls)], body, headers))
        statuses = [f.result() for f in futures]
    posted_s = time.monotonic() - started

    # Progress is watched through end offsets and the store worker, not a live
    # consumer: librdkafka spins on empty fetches against noida-db and would
    # steal a core from the system under test. Results are read once, at the end.
    client = AnalyticsClient(settings, store_url=store_url(settings))
    embed_sql = "SELECT sum(items) FROM {db}.stage_metrics FINAL WHERE stage = 'embed'"

    def done() -> bool:
        triaged = end_offsets(info.kafka_bootstrap, "pr.triaged", PARTITIONS)
        return triaged >= len(prs) and int(client.sql(embed_sql).rows[0][0] or 0) >= expected_chunks

    finished = wait_until(done, args.timeout, interval_s=1.0)
    wall_s = time.monotonic() - started
    sampler.stop()
    reader = AvroTopicReader(
        info.kafka_bootstrap,
        settings.schema_registry.local_path,
        ["pr.findings", "pr.triaged", "pipeline.metrics"],
    )
    totals = {
        t: end_offsets(info.kafka_bootstrap, t, PARTITIONS)
        for t in ("pr.findings", "pr.triaged", "pipeline.metrics")
    }
    reader.poll_until(lambda r: all(len(r.raw[t]) >= n for t, n in totals.items()), 120)
    reader.close()

    finding_lat = [f["_timestamp_ms"] - f["received_at_ms"] for f in reader.records["pr.findings"]]
    review_lat = [t["_timestamp_ms"] - t["received_at_ms"] for t in reader.records["pr.triaged"]]
    embedded = sum(
        m["items"] for m in reader.records["pipeline.metrics"] if m.get("stage") == "embed"
    )
    prs_per_s = len(prs) / wall_s
    relay = relay_rate(info.kafka_bootstrap, [b for b, _ in bodies])
    raw_embed = raw_embed_rate(settings, prs[:40])
    return {
        "bench": "e2e",
        "prs": len(prs),
        "finished": finished,
        "accepted": sum(1 for s in statuses if s == 202),
        "offered_per_s": args.rate,
        "post_s": round(posted_s, 2),
        "wall_s": round(wall_s, 2),
        "prs_per_s": round(prs_per_s, 2),
        "findings": len(finding_lat),
        "p50_ms": _pct(finding_lat, 50),
        "p95_ms": _pct(finding_lat, 95),
        "review_p50_ms": _pct(review_lat, 50),
        "review_p95_ms": _pct(review_lat, 95),
        "chunks": expected_chunks,
        "embedded": embedded,
        "embed_chunks_per_s": round(embedded / wall_s, 1),
        "embed_raw_chunks_per_s": raw_embed,
        "peak_rss_mb": round(sampler.peak_mb, 1),
        "relay_msgs_per_s": round(relay, 1),
        "relay_ratio": round(prs_per_s / relay, 5),
    }


def _post(url: str, body: bytes, headers: dict[str, str]) -> int:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    with urllib.request.urlopen(request, timeout=60) as response:
        return int(response.status)


def _pct(values: list[float], pct: int) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return float(values[0])
    return round(statistics.quantiles(values, n=100, method="inclusive")[pct - 1], 1)


def relay_rate(bootstrap: str, values: list[bytes]) -> float:
    """A bare consume->produce relay of the same messages: the broker's floor for us."""
    from confluent_kafka import Consumer, Producer

    src, dst = f"bench-relay-in-{uuid.uuid4().hex[:6]}", f"bench-relay-out-{uuid.uuid4().hex[:6]}"
    create_topics(bootstrap, [TopicSpec(src, "k", "v"), TopicSpec(dst, "k", "v")])
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    for i, value in enumerate(values):
        producer.produce(src, key=str(i).encode(), value=value)
    producer.flush()
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"relay-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([src])
    relayed, started = 0, None
    deadline = time.monotonic() + 60
    while relayed < len(values) and time.monotonic() < deadline:
        for msg in consumer.consume(100, timeout=0.5):
            if msg.error():
                continue
            started = started or time.monotonic()
            producer.produce(dst, key=msg.key(), value=msg.value())
            relayed += 1
        producer.poll(0)
    producer.flush()
    elapsed = time.monotonic() - (started or time.monotonic())
    consumer.close()
    return relayed / elapsed if elapsed > 0 else float("inf")


def raw_embed_rate(settings: Settings, prs: list) -> float:
    embedder = embedder_from_settings(settings)
    texts = [c.text for pr in prs for c in chunk_event(pr.to_event())]
    embedder.embed(texts[:2])  # load the model outside the timing
    started = time.perf_counter()
    embedder.embed(texts)
    return round(len(texts) / (time.perf_counter() - started), 1)


class RssSampler(threading.Thread):
    """Peak of the summed RSS of the platform's processes (and their children)."""

    def __init__(self, *pid_groups: object) -> None:
        super().__init__(daemon=True)
        self._pids = [int(p) for group in pid_groups for p in group]  # type: ignore[attr-defined]
        self._stop_event = threading.Event()
        self.peak_mb = 0.0

    def run(self) -> None:
        while not self._stop_event.wait(0.5):
            total = 0
            for pid in self._pids:
                try:
                    proc = psutil.Process(pid)
                    total += proc.memory_info().rss
                    total += sum(c.memory_info().rss for c in proc.children(recursive=True))
                except psutil.Error:
                    continue
            self.peak_mb = max(self.peak_mb, total / 2**20)

    def stop(self) -> None:
        self._stop_event.set()
        self.join(5)


if __name__ == "__main__":
    main()
