"""``codereview``: the one command line of the platform.

    codereview up [--workers N]      start the embedded stack and the workers
    codereview down                  stop everything ``up`` started
    codereview status [--json]
    codereview worker --role pipeline|store|publish [--web-port P]
    codereview replay PATH --range A..B      commits -> PR events
    codereview feedback FINGERPRINT --verdict accepted|rejected ...
    codereview analytics [NAME | --sql SQL] [--json]
    codereview report [--out PATH] [--json]   one offline HTML page of charts
    codereview dlq replay [--stage S]  dead letters back to their topics
    codereview findings export|tail  findings as SARIF/rdjson files, or a live feed
    codereview demo                  up, replay real history, summary, down
    codereview eval --cases PATH     review quality on labelled cases, next to the peers

Settings come from ``CODEREVIEW_*`` environment variables (see
``codereview/settings.py``); the command line only picks what to do.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from codereview.settings import Settings
from schemas.errors import CodeReviewError


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    settings = Settings()
    try:
        return int(args.run(settings, args) or 0)
    except CodeReviewError as exc:
        print(f"codereview: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="codereview", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(required=True, metavar="COMMAND")

    up = sub.add_parser("up", help="start the embedded stack and workers")
    up.add_argument("--workers", type=int, default=2, help="pipeline workers (default 2)")
    up.add_argument("--json", action="store_true")
    up.set_defaults(run=cmd_up)

    down = sub.add_parser("down", help="stop everything `up` started")
    down.set_defaults(run=cmd_down)

    status = sub.add_parser("status", help="health of the stack and workers")
    status.add_argument("--json", action="store_true")
    status.set_defaults(run=cmd_status)

    worker = sub.add_parser("worker", help="run one Faust worker in the foreground")
    worker.add_argument("--role", choices=("pipeline", "store", "publish"), default="pipeline")
    worker.add_argument("--web-port", type=int, default=0)
    worker.add_argument("--instance", default="", help="stable name: static group membership")
    worker.set_defaults(run=cmd_worker)

    replay = sub.add_parser("replay", help="turn commits of a git repository into PR events")
    replay.add_argument("path", type=Path)
    replay.add_argument("--range", dest="rev_range", required=True, help="A..B")
    replay.add_argument("--repo-name", default="", help="repo name in events (default: dir name)")
    replay.add_argument("--json", action="store_true")
    replay.set_defaults(run=cmd_replay)

    fb = sub.add_parser("feedback", help="send feedback on a finding")
    fb.add_argument("fingerprint")
    fb.add_argument("--verdict", choices=("accepted", "rejected", "ignored"), required=True)
    fb.add_argument("--repo", required=True)
    fb.add_argument("--pr", type=int, required=True)
    fb.add_argument("--rule", required=True)
    fb.add_argument("--actor", default="cli")
    fb.set_defaults(run=cmd_feedback)

    dlq = sub.add_parser("dlq", help="dead letters")
    dlq_sub = dlq.add_subparsers(required=True, metavar="ACTION")
    replay_dlq = dlq_sub.add_parser("replay", help="send dead letters back to their topics")
    replay_dlq.add_argument("--stage", default=None, help="only this stage's dead letters")
    replay_dlq.add_argument("--dry-run", action="store_true")
    replay_dlq.add_argument("--json", action="store_true")
    replay_dlq.set_defaults(run=cmd_dlq_replay)

    an = sub.add_parser("analytics", help="named queries or SQL, answered while workers run")
    an.add_argument("name", nargs="?", default="summary")
    an.add_argument("--sql")
    an.add_argument("--json", action="store_true")
    an.set_defaults(run=cmd_analytics)

    from codereview.findings_cli import add_findings_parser

    add_findings_parser(sub)

    rep = sub.add_parser("report", help="write a self-contained HTML report with charts")
    rep.add_argument("--out", type=Path, default=None, help="default .stack/report/index.html")
    rep.add_argument("--json", action="store_true")
    rep.set_defaults(run=cmd_report)

    demo = sub.add_parser("demo", help="run real history through the whole pipeline")
    demo.add_argument(
        "--path", type=Path, default=None, help="git repo (default: an installed one)"
    )
    demo.add_argument("--range", dest="rev_range", default="")
    demo.add_argument("--commits", type=int, default=22)
    demo.add_argument("--timeout", type=float, default=480.0)
    demo.add_argument("--json", action="store_true")
    demo.set_defaults(run=cmd_demo)

    ev = sub.add_parser(
        "eval", help="precision/recall on labelled cases, beside bandit/ruff/semgrep"
    )
    ev.add_argument("--cases", type=Path, required=True, help="JSONL in the golden format")
    ev.add_argument("--limit", type=int, default=None)
    ev.add_argument("--peers", default="bandit,ruff,semgrep", help="comma-separated; '' for none")
    ev.add_argument(
        "--provider", default="", choices=("", "openai", "anthropic", "openai-compatible")
    )
    ev.add_argument("--model", default="")
    ev.add_argument("--base-url", default="")
    ev.add_argument("--via-kafka", action="store_true", help="through the running pipeline")
    ev.add_argument("--timeout", type=float, default=600.0, help="--via-kafka wait (s)")
    ev.add_argument("--json", action="store_true")
    ev.add_argument("--out", type=Path, default=None, help="report file (default .stack/eval/)")
    ev.set_defaults(run=cmd_eval)
    return p


def cmd_up(settings: Settings, args: argparse.Namespace) -> int:
    from ops.workers import start_platform

    info = start_platform(settings, workers=args.workers)
    _print(info, args.json, lambda i: "\n".join(f"{k:>16}: {v}" for k, v in i.items()))
    return 0


def cmd_down(settings: Settings, args: argparse.Namespace) -> int:
    from ops.workers import stop_platform

    stop_platform(settings)
    print("stopped")
    return 0


def cmd_status(settings: Settings, args: argparse.Namespace) -> int:
    from ops.workers import platform_status

    status = platform_status(settings)
    _print(status, args.json, lambda s: json.dumps(s, indent=2, default=str))
    return 0 if status.get("healthy") else 1


def cmd_worker(settings: Settings, args: argparse.Namespace) -> int:
    from faust.worker import Worker

    from ops.stack import kafka_client_config, resolve_endpoints
    from streams.app import Endpoints, create_app

    resolved = resolve_endpoints(settings)
    endpoints = Endpoints(
        kafka_bootstrap=resolved.kafka_bootstrap,
        milvus_uri=resolved.milvus_uri,
        kafka_config=kafka_client_config(settings.kafka, resolved.kafka_bootstrap),
    )
    app = create_app(
        settings,
        args.role,
        endpoints,
        web_port=args.web_port or settings.worker.web_port,
        instance=args.instance,
    )
    # What `faust worker` does before it runs: fires on_worker_init, where sinks start.
    app.finalize()
    app.worker_init()
    app.worker_init_post_autodiscover()
    Worker(
        app, loglevel=settings.worker.log_level.upper(), redirect_stdouts=False
    ).execute_from_commandline()
    return 0


def cmd_replay(settings: Settings, args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from processors.event_size import fit_event
    from sources.git_replay import count_commits, replay_events
    from streams.topics import PR_EVENTS

    repo_name = args.repo_name or args.path.resolve().name
    total = count_commits(args.path, args.rev_range)
    sink = _record_sink(settings)
    sent = 0
    events = replay_events(
        args.path,
        args.rev_range,
        tenant=settings.source.tenant,
        repo_name=repo_name,
        now_ms=int(time.time() * 1000),
    )
    for event in tqdm(events, total=total, desc="replay", unit="PR", disable=args.json):
        event, _ = fit_event(event, settings.kafka.max_message_bytes)
        sink.send(settings.kafka.topic_prefix + PR_EVENTS.name, event.key, event)
        sent += 1
    sink.close()
    _print(
        {"events": sent, "repo": repo_name, "range": args.rev_range},
        args.json,
        lambda r: f"replayed {r['events']} commits of {r['repo']} as PR events",
    )
    return 0


def cmd_feedback(settings: Settings, args: argparse.Namespace) -> int:
    from schemas.records import FeedbackEvent
    from streams.topics import FEEDBACK

    event = FeedbackEvent(
        event_id=str(uuid.uuid4()),
        fingerprint=args.fingerprint,
        tenant=settings.source.tenant,
        repo=args.repo,
        pr_number=args.pr,
        rule_id=args.rule,
        verdict=args.verdict.upper(),
        signal="cli",
        actor=args.actor,
        at_ms=int(time.time() * 1000),
    )
    sink = _record_sink(settings)
    sink.send(settings.kafka.topic_prefix + FEEDBACK.name, event.key, event)
    sink.close()
    print(f"feedback {event.event_id} sent")
    return 0


def cmd_dlq_replay(settings: Settings, args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from ops.dlq import replay_dead_letters

    report = replay_dead_letters(settings, stage=args.stage, dry_run=args.dry_run)
    _print(
        asdict(report),
        args.json,
        lambda r: (
            f"replayed {r['replayed']} dead letters {r['by_stage']}"
            f"{' (dry run)' if args.dry_run else ''}; skipped {r['skipped']}, "
            f"undecodable {r['undecodable']}"
        ),
    )
    return 0


def cmd_analytics(settings: Settings, args: argparse.Namespace) -> int:
    client = analytics_client(settings)
    result = client.sql(args.sql) if args.sql else client.named(args.name)
    if args.json:
        print(json.dumps(result.as_dicts(), default=str))
    else:
        print(format_table(result.columns, result.rows))
    return 0


def cmd_report(settings: Settings, args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from codereview.report import open_runner, write_report

    out = args.out or Path(settings.stack.state_dir) / "report" / "index.html"
    with open_runner(settings) as (run_sql, source):
        data = write_report(out, run_sql, datetime.now(UTC))
    _print(
        {"path": str(out), "source": source, **data.counts()},
        args.json,
        lambda r: r["path"],
    )
    return 0


def cmd_demo(settings: Settings, args: argparse.Namespace) -> int:
    from ops.demo import run_demo

    return run_demo(
        settings,
        path=args.path,
        rev_range=args.rev_range,
        commits=args.commits,
        timeout_s=args.timeout,
        as_json=args.json,
    )


def cmd_eval(settings: Settings, args: argparse.Namespace) -> int:
    from codereview.eval_results import publish_report
    from codereview.evaluation import EvalOptions, run_evaluation

    options = EvalOptions(
        cases=args.cases,
        limit=args.limit,
        peers=[p.strip() for p in args.peers.split(",") if p.strip()],
        provider=args.provider,
        model=args.model or settings.llm.model,
        base_url=args.base_url or settings.llm.base_url,
        via_kafka=args.via_kafka,
        timeout_s=args.timeout,
    )
    return publish_report(
        settings, run_evaluation(settings, options), as_json=args.json, out=args.out
    )


def analytics_client(settings: Settings) -> Any:
    from codereview.analytics import AnalyticsClient
    from ops.workers import store_url

    return AnalyticsClient(settings, store_url=store_url(settings))


def _record_sink(settings: Settings) -> Any:
    from ops.stack import kafka_client_config, resolve_endpoints
    from schemas.codec import AvroCodec
    from sinks.kafka import KafkaRecordSink
    from streams.app import build_registry

    bootstrap = resolve_endpoints(settings).kafka_bootstrap
    return KafkaRecordSink(
        kafka_client_config(settings.kafka, bootstrap), AvroCodec(build_registry(settings))
    )


def format_table(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[str(c) for c in columns]] + [[str(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]
    lines = ["  ".join(v.rjust(w) for v, w in zip(r, widths, strict=True)) for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _print(obj: Any, as_json: bool, human: Any) -> None:
    print(json.dumps(obj, default=str) if as_json else human(obj))


if __name__ == "__main__":
    sys.exit(main())
