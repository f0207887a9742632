"""Ingest benchmark: signed webhooks from many concurrent clients for a fixed time.

Starts the platform (broker, store worker, two pipeline workers) and drives
``POST /webhooks/github`` on both workers from ``--clients`` concurrent
aiohttp clients for ``--seconds``. One delivery in ten repeats an earlier
delivery id (a redelivery). The webhooks are ``pull_request`` events with an
action we do not review, so the normalizer reads and counts them without
starting a review: this measures ingest, not the review pipeline.

Figures (one JSON line):
- req_per_s, p50_ms, p99_ms: the ceiling: clients post back to back, so the
  latency there is mostly queueing behind the ceiling;
- paced_req_per_s, paced_p50_ms, paced_p99_ms: the same clients offering
  ``--paced-rate`` requests/s together: latency at a sustained rate;
- lost: requests answered 2xx whose raw record is missing from
  ``scm.webhooks.raw`` (read back in full at the end; must be 0);
- duplicates_passed: redeliveries that got past the dedupe table (a second
  normalize/ignored count for one delivery id; must be 0);
- ratio_vs_bare: our rate over a bare aiohttp handler that only answers 200,
  driven the same way in the same run (the HTTP stack's own ceiling here).

    .venv/bin/python bench/ingest.py [--clients 100] [--seconds 15]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

import aiohttp
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.stack_settings import bench_settings  # noqa: E402
from ops.processes import free_port  # noqa: E402
from ops.stack import load_stack_info  # noqa: E402
from ops.workers import load_workers, start_platform, stop_platform  # noqa: E402
from streams.topics import PARTITIONS  # noqa: E402
from tests.e2e.conftest import AvroTopicReader, end_offsets  # noqa: E402
from tests.fakes.github import cycle_golden, signed_request, webhook_payload  # noqa: E402

SECRET = b"bench-ingest-secret"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument(
        "--paced-rate",
        type=float,
        default=300.0,
        help="requests/s offered in the second, paced phase",
    )
    args = parser.parse_args()

    bare = run_bare(args)
    root = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    settings = bench_settings(root, api_url="http://127.0.0.1:9", secret=SECRET, name="ingest")
    start_platform(settings, workers=2)
    try:
        state = Path(settings.stack.state_dir).resolve()
        urls = [w.url + "/webhooks/github" for w in load_workers(state) if w.role == "pipeline"]
        # A short warm-up (connections, producer ids) is audited but not timed.
        # Paced first, on an idle system: the closed-loop phase leaves a backlog
        # of deliveries to normalize that would otherwise sit under its latency.
        warm = asyncio.run(drive(urls, argparse.Namespace(clients=10, seconds=2.0)))
        paced = asyncio.run(drive(urls, args, rate=args.paced_rate))
        result = asyncio.run(drive(urls, args))
        info = load_stack_info(state)
        assert info is not None
        accepted_ids = warm["accepted_ids"] + result["accepted_ids"] + paced["accepted_ids"]
        lost, duplicates = audit(info.kafka_bootstrap, settings, accepted_ids)
    finally:
        stop_platform(settings)
    rate = result["answered"] / args.seconds
    print(
        json.dumps(
            {
                "bench": "ingest",
                "clients": args.clients,
                "seconds": args.seconds,
                "requests": warm["answered"] + result["answered"] + paced["answered"],
                "accepted": len(accepted_ids),
                "errors": result["errors"] + paced["errors"],
                "statuses": result["statuses"],
                "req_per_s": round(rate, 1),
                "p50_ms": _pct(result["latencies"], 50),
                "p99_ms": _pct(result["latencies"], 99),
                "paced_req_per_s": round(paced["answered"] / args.seconds, 1),
                "paced_p50_ms": _pct(paced["latencies"], 50),
                "paced_p99_ms": _pct(paced["latencies"], 99),
                "lost": lost,
                "redeliveries_sent": result["redeliveries"] + paced["redeliveries"],
                "duplicates_passed": duplicates,
                "bare_req_per_s": round(bare, 1),
                "ratio_vs_bare": round(rate / bare, 3),
            }
        )
    )


async def drive(urls: list[str], args: argparse.Namespace, rate: float = 0.0) -> dict:
    """``args.clients`` concurrent senders posting back to back, or together at ``rate``/s.

    Back to back (closed loop) finds the ceiling, where latency is mostly
    queueing; a paced phase measures latency at a rate the service sustains.
    """
    prs = list(cycle_golden(200))
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    accepted: list[str] = []
    sent: list[str] = []
    errors = 0
    redeliveries = 0
    deadline = time.monotonic() + args.seconds
    rng = random.Random(7)

    async def client(session: aiohttp.ClientSession, n: int) -> None:
        nonlocal errors, redeliveries
        i = 0
        interval = args.clients / rate if rate > 0 else 0.0
        next_at = time.monotonic() + rng.random() * interval
        while time.monotonic() < deadline:
            if interval:
                await asyncio.sleep(max(0.0, next_at - time.monotonic()))
                next_at += interval
            i += 1
            if sent and rng.random() < 0.1:
                delivery = rng.choice(sent)
                redeliveries += 1
            else:
                delivery = str(uuid.uuid4())
                sent.append(delivery)
            pr = prs[(n * 7 + i) % len(prs)]
            payload = webhook_payload(pr, "http://127.0.0.1:9", action="labeled")
            body, headers = signed_request(payload, SECRET, delivery=delivery)
            started = time.perf_counter()
            try:
                async with session.post(
                    urls[(n + i) % len(urls)], data=body, headers=headers
                ) as response:
                    await response.read()
                    statuses[response.status] += 1
                    if 200 <= response.status < 300:
                        accepted.append(delivery)
            except aiohttp.ClientError:
                errors += 1
                continue
            latencies.append((time.perf_counter() - started) * 1000)

    connector = aiohttp.TCPConnector(limit=args.clients)
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*(client(session, n) for n in range(args.clients)))
    return {
        "answered": len(latencies),
        "latencies": latencies,
        "accepted_ids": accepted,
        "errors": errors,
        "redeliveries": redeliveries,
        "statuses": {str(k): v for k, v in statuses.items()},
    }


def audit(bootstrap: str, settings: object, accepted: list[str]) -> tuple[int, int]:
    """(accepted deliveries missing from the raw topic, redeliveries that passed dedupe)."""
    registry = settings.schema_registry.local_path  # type: ignore[attr-defined]
    totals = {t: end_offsets(bootstrap, t, PARTITIONS) for t in ("scm.webhooks.raw",)}
    reader = AvroTopicReader(bootstrap, registry, ["scm.webhooks.raw", "pipeline.metrics"])
    try:
        reader.poll_until(
            lambda r: len(r.raw["scm.webhooks.raw"]) >= totals["scm.webhooks.raw"], timeout_s=120
        )
        # Let the normalizers finish counting before the duplicates are tallied.
        settled = -1
        while settled != len(reader.records["pipeline.metrics"]):
            settled = len(reader.records["pipeline.metrics"])
            reader.poll_until(lambda r: False, timeout_s=3)
    finally:
        reader.close()
    in_topic = {f"github:{d}" for d in accepted}
    raw_keys = {(key or b"").decode() for key, _, _ in reader.raw["scm.webhooks.raw"]}
    lost = len(in_topic - raw_keys)
    handled = Counter(
        m["event_id"]
        for m in reader.records["pipeline.metrics"]
        if m.get("stage") in ("ignored", "normalize")
    )
    duplicates = sum(n - 1 for n in handled.values() if n > 1)
    return lost, duplicates


def run_bare(args: argparse.Namespace) -> float:
    """Requests/s of an aiohttp handler that only answers 200, in its own process."""
    port = free_port()
    server = multiprocessing.Process(target=_bare_server, args=(port,), daemon=True)
    server.start()
    try:
        for _ in range(100):
            try:
                asyncio.run(_probe(port))
                break
            except OSError:
                time.sleep(0.1)
        result = asyncio.run(drive([f"http://127.0.0.1:{port}/"], args))
    finally:
        server.terminate()
        server.join(5)
    return float(result["answered"]) / args.seconds


async def _probe(port: int) -> None:
    async with aiohttp.ClientSession() as session, session.post(f"http://127.0.0.1:{port}/") as r:
        await r.read()


def _bare_server(port: int) -> None:
    async def ok(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(text="ok")

    app = web.Application(client_max_size=25 * 2**20)
    app.router.add_post("/", ok)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


def _pct(values: list[float], pct: int) -> float | None:
    if len(values) < 2:
        return None
    return round(statistics.quantiles(values, n=100, method="inclusive")[pct - 1], 1)


if __name__ == "__main__":
    main()
