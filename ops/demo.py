"""``codereview demo``: real history through every stage, then a summary.

Starts the embedded stack and workers, replays the first commits of a real
git repository (this one by default; the first ones, so the demo's size does
not grow with the project's history) as PR events, waits until every event is
chunked, embedded and triaged, sends feedback on a few findings through the
same path a person would, prints what ClickHouse and Milvus hold, and stops
everything it started, whatever happened.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

from tqdm import tqdm

from codereview.analytics import AnalyticsClient, QueryResult
from codereview.report import client_runner, write_report
from codereview.settings import Settings
from ops.processes import StackError
from ops.stack import kafka_client_config, resolve_endpoints
from ops.workers import start_platform, stop_platform, store_url, wait_until
from processors.event_size import fit_event


def run_demo(
    settings: Settings,
    *,
    path: Path | None,
    rev_range: str,
    commits: int,
    timeout_s: float,
    as_json: bool,
) -> int:
    repo = (path or Path(__file__).resolve().parents[1]).resolve()
    rev_range = rev_range or _first_commits_range(repo, commits)
    settings = demo_settings(settings)
    started = time.monotonic()
    say = (lambda *_: None) if as_json else print
    say(f"starting the embedded stack and 2 workers in {settings.stack.state_dir} ...")
    start_platform(settings, workers=2)
    try:
        say(f"up in {time.monotonic() - started:.1f} s; replaying {repo.name} {rev_range}")
        sent = _replay(settings, repo, rev_range, quiet=as_json)
        client = AnalyticsClient(settings, store_url=store_url(settings))
        _wait_for_pipeline(client, sent, timeout_s, quiet=as_json)
        feedback = _send_feedback(settings, client)
        if feedback:
            wait_until(
                lambda: _scalar(client, "SELECT count() FROM {db}.feedback FINAL") >= feedback, 30.0
            )
        summary = _summary(settings, client)
        summary["feedback_sent"] = feedback
        report = Path(settings.stack.state_dir) / "report" / "index.html"
        write_report(report, client_runner(client), dt.datetime.now(dt.UTC))
        summary["report"] = str(report)
        summary["wall_s"] = round(time.monotonic() - started, 1)
        print(json.dumps(summary, default=str) if as_json else _render(summary))
        return 0
    finally:
        stop_platform(settings)
        say("stopped the stack and workers")


def demo_settings(settings: Settings) -> Settings:
    """The same settings with every store in a fresh ``<state_dir>/demo``.

    The summary must describe this run only, so the demo never reuses the
    ClickHouse, registry or Faust state of an earlier one.
    """
    root = Path(settings.stack.state_dir).resolve() / "demo"
    if root.exists():
        shutil.rmtree(root)
    return settings.model_copy(
        update={
            "stack": settings.stack.model_copy(update={"state_dir": root}),
            "schema_registry": settings.schema_registry.model_copy(
                update={"local_path": root / "schema-registry.json"}
            ),
            "clickhouse": settings.clickhouse.model_copy(update={"chdb_path": root / "chdb"}),
            "worker": settings.worker.model_copy(update={"data_dir": root / "faust"}),
        }
    )


def _first_commits_range(repo: Path, commits: int) -> str:
    """The first ``commits`` first-parent commits; the whole history if it is shorter."""
    out = subprocess.run(
        ["git", "-C", str(repo), "rev-list", "--first-parent", "HEAD"],
        capture_output=True,
        text=True,
    )
    if out.returncode != 0:
        raise StackError(f"{repo} is not a git repository: {out.stderr.strip()}")
    revs = out.stdout.split()
    if not revs:
        raise StackError(f"{repo} has no commits to replay")
    if commits >= len(revs):
        return revs[0]  # a single revision: all of its history, root commit included
    return revs[len(revs) - commits]  # that revision and its history: ``commits`` commits


def _replay(settings: Settings, repo: Path, rev_range: str, *, quiet: bool) -> int:
    from schemas.codec import AvroCodec
    from sinks.kafka import KafkaRecordSink
    from sources.git_replay import count_commits, replay_events
    from streams.app import build_registry
    from streams.topics import PR_EVENTS

    bootstrap = resolve_endpoints(settings).kafka_bootstrap
    sink = KafkaRecordSink(
        kafka_client_config(settings.kafka, bootstrap), AvroCodec(build_registry(settings))
    )
    total = count_commits(repo, rev_range)
    sent = 0
    events = replay_events(
        repo,
        rev_range,
        tenant=settings.source.tenant,
        repo_name=repo.name,
        now_ms=int(time.time() * 1000),
    )
    for event in tqdm(events, total=total, desc="replay", unit="PR", disable=quiet):
        event, _ = fit_event(event, settings.kafka.max_message_bytes)
        sink.send(settings.kafka.topic_prefix + PR_EVENTS.name, event.key, event)
        sent += 1
    sink.close()
    return sent


def _wait_for_pipeline(client: AnalyticsClient, prs: int, timeout_s: float, *, quiet: bool) -> None:
    """Until every PR is triaged and every chunk embedded (read back from ClickHouse)."""
    sql = """SELECT
        countIf(stage = 'triage') AS triaged, countIf(stage = 'chunk') AS chunked,
        sumIf(items, stage = 'chunk') AS chunks, sumIf(items, stage = 'embed') AS embedded
        FROM {db}.stage_metrics FINAL"""
    bar = tqdm(total=prs, desc="triaged", unit="PR", disable=quiet)
    deadline = time.monotonic() + timeout_s
    while True:
        row = _first(client.sql(sql))
        bar.update(int(row["triaged"]) - bar.n)
        done = row["triaged"] >= prs and row["chunked"] >= prs and row["embedded"] >= row["chunks"]
        if done:
            bar.close()
            return
        if time.monotonic() > deadline:
            bar.close()
            raise StackError(f"pipeline did not finish in {timeout_s:.0f} s: {row}")
        time.sleep(1.0)


def _send_feedback(settings: Settings, client: AnalyticsClient) -> int:
    """Demo feedback: accept security findings, reject the rest (a person's stand-in)."""
    from schemas.codec import AvroCodec
    from schemas.records import FeedbackEvent
    from sinks.kafka import KafkaRecordSink
    from streams.app import build_registry
    from streams.topics import FEEDBACK

    rows = client.sql(
        "SELECT fingerprint, repo, pr_number, rule_id, category "
        "FROM {db}.findings FINAL ORDER BY created_at_ms LIMIT 10"
    ).as_dicts()
    if not rows:
        return 0
    bootstrap = resolve_endpoints(settings).kafka_bootstrap
    sink = KafkaRecordSink(
        kafka_client_config(settings.kafka, bootstrap), AvroCodec(build_registry(settings))
    )
    now = int(time.time() * 1000)
    for row in rows:
        verdict = "ACCEPTED" if row["category"] in ("security", "secret", "bug") else "REJECTED"
        event = FeedbackEvent(
            event_id=f"demo-{row['fingerprint']}",
            fingerprint=row["fingerprint"],
            tenant=settings.source.tenant,
            repo=row["repo"],
            pr_number=int(row["pr_number"]),
            rule_id=row["rule_id"],
            verdict=verdict,
            signal="cli",
            actor="demo",
            at_ms=now,
        )
        sink.send(settings.kafka.topic_prefix + FEEDBACK.name, event.key, event)
    sink.close()
    return len(rows)


def _summary(settings: Settings, client: AnalyticsClient) -> dict[str, Any]:
    from sinks.milvus import MilvusSink

    milvus = MilvusSink.from_settings(
        settings.milvus, uri=resolve_endpoints(settings).milvus_uri, dim=settings.embedding.dim
    )
    try:
        milvus.start()
        vectors = milvus.count()
    finally:
        milvus.close()
    return {
        "totals": _first(client.named("summary")),
        "vectors_in_milvus": vectors,
        "findings_by_category": client.named("findings_by_category").as_dicts(),
        "stage_latency": client.named("stage_latency").as_dicts(),
        "feedback_by_rule": client.named("feedback_by_rule").as_dicts(),
    }


def _render(summary: dict[str, Any]) -> str:
    from codereview.cli import format_table

    lines = ["", "== totals"]
    lines += [f"  {k}: {v}" for k, v in summary["totals"].items()]
    lines.append(f"  vectors in Milvus: {summary['vectors_in_milvus']}")
    for title, key in (
        ("findings by category", "findings_by_category"),
        ("latency per stage (ms)", "stage_latency"),
        ("feedback by rule", "feedback_by_rule"),
    ):
        rows = summary[key]
        lines += ["", f"== {title}"]
        if rows:
            lines.append(format_table(list(rows[0]), [list(r.values()) for r in rows]))
        else:
            lines.append("  (none)")
    lines.append(f"\nwall time {summary['wall_s']} s, feedback sent {summary['feedback_sent']}")
    lines.append(f"report: {summary['report']} (open it in a browser)")
    return "\n".join(lines)


def _first(result: QueryResult) -> dict[str, Any]:
    rows = result.as_dicts()
    if not rows:
        raise StackError("query returned no rows")
    return rows[0]


def _scalar(client: AnalyticsClient, sql: str) -> int:
    return int(client.sql(sql).rows[0][0])
