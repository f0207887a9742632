"""``codereview findings``: findings as files (export) and as a live feed (tail).

    codereview findings export --format sarif|rdjson|rdjsonl [filters] [-o FILE] [--json]
    codereview findings tail [filters] [--from-beginning] [--max N] [--timeout S] [--json]

Export reads the latest version of each finding from ClickHouse (the table
is a ReplacingMergeTree keyed by fingerprint, so ``FINAL``) through the same
route as ``codereview analytics``: the store worker's query view while the
stack runs (chdb allows one process per directory), a ClickHouse server when
one is configured, else the chdb directory itself. Tail reads ``pr.findings``
with a consumer assigned to every partition, under a random group id and
without commits, so it never takes partitions from (or moves the offsets of)
any real consumer group; filters apply client side.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from codereview.analytics import sql_literal
from codereview.settings import Settings
from schemas.errors import CodeReviewError
from schemas.records import SEVERITIES, Finding, severity_rank, to_dict

FORMATS = ("sarif", "rdjson", "rdjsonl")
COLUMNS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Finding))
_INTS = {"pr_number", "start_line", "end_line", "received_at_ms", "created_at_ms"}
_NULLABLE = {"suggestion", "model", "prompt_version"}


class FindingsCliError(CodeReviewError):
    """Bad arguments or an unreachable feed; the message says which."""


@dataclass(frozen=True, slots=True)
class FindingFilter:
    """Which findings a command keeps; empty fields keep everything.

    ``since_ms`` is inclusive and ``until_ms`` exclusive, on ``created_at_ms``;
    ``min_severity`` keeps that severity and worse.
    """

    tenant: str = ""
    repo: str = ""
    pr_number: int | None = None
    since_ms: int | None = None
    until_ms: int | None = None
    min_severity: str = ""
    category: str = ""

    def __post_init__(self) -> None:
        if self.min_severity and self.min_severity not in SEVERITIES:
            raise FindingsCliError(
                f"unknown severity {self.min_severity!r}; expected one of {', '.join(SEVERITIES)}"
            )

    def accepts(self, finding: Finding) -> bool:
        checks = (
            not self.tenant or finding.tenant == self.tenant,
            not self.repo or finding.repo == self.repo,
            self.pr_number is None or finding.pr_number == self.pr_number,
            self.since_ms is None or finding.created_at_ms >= self.since_ms,
            self.until_ms is None or finding.created_at_ms < self.until_ms,
            not self.min_severity
            or severity_rank(finding.severity) >= severity_rank(self.min_severity),
            not self.category or finding.category == self.category,
        )
        return all(checks)

    def sql_conditions(self) -> list[str]:
        """The same filter as ClickHouse conditions (values quoted as string literals)."""
        conditions = []
        for column, value in (
            ("tenant", self.tenant),
            ("repo", self.repo),
            ("category", self.category),
        ):
            if value:
                conditions.append(f"{column} = {sql_literal(value)}")
        if self.pr_number is not None:
            conditions.append(f"pr_number = {int(self.pr_number)}")
        if self.since_ms is not None:
            conditions.append(f"created_at_ms >= {int(self.since_ms)}")
        if self.until_ms is not None:
            conditions.append(f"created_at_ms < {int(self.until_ms)}")
        if self.min_severity:
            kept = SEVERITIES[SEVERITIES.index(self.min_severity) :]
            conditions.append(f"severity IN ({', '.join(sql_literal(s) for s in kept)})")
        return conditions


# -- export ---------------------------------------------------------------------


def export_sql(selection: FindingFilter) -> str:
    """The latest version of each selected finding, in a stable order; ``{db}`` is ours."""
    where = " AND ".join(selection.sql_conditions()) or "1"
    return (
        f"SELECT {', '.join(COLUMNS)} FROM {{db}}.findings FINAL WHERE {where} "
        "ORDER BY tenant, repo, path, start_line, rule_id, fingerprint"
    )


def read_findings(
    run_sql: Callable[[str], tuple[Sequence[str], Sequence[Sequence[Any]]]],
    selection: FindingFilter,
) -> list[Finding]:
    """Findings from any runner of the report module (store worker, server or chdb).

    Rows are read by position: chdb answers an empty result without column names.
    """
    _, rows = run_sql(export_sql(selection))
    return [finding_from_row(row) for row in rows]


def finding_from_row(row: Sequence[Any]) -> Finding:
    """A ``Finding`` from a row of ``COLUMNS``; the query view's JSON may turn types to text."""
    values: dict[str, Any] = {}
    for name, value in zip(COLUMNS, row, strict=True):
        if name in _INTS:
            values[name] = int(value)
        elif name == "confidence":
            values[name] = float(value)
        elif name in _NULLABLE:
            values[name] = None if value is None else str(value)
        else:
            values[name] = "" if value is None else str(value)
    return Finding(**values)


def render(findings: Sequence[Finding], fmt: str, *, url_template: str = "") -> str:
    """The document in ``fmt``; ``url_template`` (``{repo}`` in it) names repositories in SARIF."""
    from processors.rdjson import to_rdjson, to_rdjsonl
    from processors.sarif import to_sarif

    if fmt == "sarif":
        uri = (lambda f: url_template.format(repo=f.repo)) if url_template else None
        log = to_sarif(findings, tool_version=tool_version(), repository_uri=uri)
        return json.dumps(log, indent=2, ensure_ascii=False) + "\n"
    if fmt == "rdjson":
        return json.dumps(to_rdjson(findings), indent=2, ensure_ascii=False) + "\n"
    if fmt == "rdjsonl":
        return to_rdjsonl(findings)
    raise FindingsCliError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")


def tool_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("codereview")
    except PackageNotFoundError:
        return "0+unknown"


def cmd_export(settings: Settings, args: argparse.Namespace) -> int:
    from codereview.report import open_runner

    selection = filter_from_args(args)
    with open_runner(settings) as (run_sql, source):
        findings = read_findings(run_sql, selection)
    text = render(findings, args.format, url_template=args.repo_url_template)
    if args.output:
        out = Path(args.output)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(out.name + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(out)
    else:
        sys.stdout.write(text)
    summary = {
        "written": len(text.encode("utf-8")),
        "path": str(args.output) if args.output else "-",
        "format": args.format,
        "findings": len(findings),
        "source": source,
    }
    if args.json:  # with the document on stdout, the summary goes to stderr
        print(json.dumps(summary), file=sys.stdout if args.output else sys.stderr)
    elif args.output:
        print(f"wrote {len(findings)} findings as {args.format} to {args.output}")
    return 0


# -- tail -----------------------------------------------------------------------


def format_line(finding: Finding) -> str:
    """One finding on one line, for a terminal."""
    message = " ".join(finding.message.split())
    where = f"{finding.path}:{finding.start_line}"
    if finding.end_line > finding.start_line:
        where += f"-{finding.end_line}"
    return (
        f"{finding.severity:<8} {finding.repo}#{finding.pr_number} {where} "
        f"[{finding.rule_id}] {message}"
    )


def tail_findings(
    settings: Settings,
    selection: FindingFilter,
    emit: Callable[[Finding], None],
    *,
    from_beginning: bool = False,
    max_count: int | None = None,
    timeout_s: float | None = None,
) -> int:
    """Emit each finding on the topic that passes ``selection``; the number emitted.

    Stops after ``max_count`` findings or ``timeout_s`` seconds, else runs until
    interrupted. Records that do not decode are reported on stderr and skipped.
    """
    from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, Consumer, TopicPartition

    from ops.stack import kafka_client_config, resolve_endpoints
    from schemas.codec import AvroCodec
    from schemas.errors import DecodeError
    from streams.app import build_registry
    from streams.topics import PR_FINDINGS

    bootstrap = settings.kafka.bootstrap or resolve_endpoints(settings).kafka_bootstrap
    topic = settings.kafka.topic_prefix + PR_FINDINGS.name
    codec = AvroCodec(build_registry(settings))
    consumer = Consumer(
        {
            **kafka_client_config(settings.kafka, bootstrap),
            "group.id": f"codereview-tail-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest" if from_beginning else "latest",
        }
    )
    emitted = 0
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    try:
        metadata = consumer.list_topics(topic, timeout=10)
        found = metadata.topics.get(topic)
        if found is None or found.error is not None or not found.partitions:
            raise FindingsCliError(f"topic {topic} not found at {bootstrap}")
        start = OFFSET_BEGINNING if from_beginning else OFFSET_END
        consumer.assign([TopicPartition(topic, p, start) for p in sorted(found.partitions)])
        while max_count is None or emitted < max_count:
            if deadline is not None and time.monotonic() >= deadline:
                break
            for msg in consumer.consume(100, timeout=0.5):
                if msg.error():
                    continue
                try:
                    record = codec.decode(msg.value())
                except DecodeError as exc:
                    print(f"skipped offset {msg.offset()}: {exc}", file=sys.stderr)
                    continue
                if not isinstance(record, Finding) or not selection.accepts(record):
                    continue
                emit(record)
                emitted += 1
                if max_count is not None and emitted >= max_count:
                    break
    except KeyboardInterrupt:
        pass
    finally:
        consumer.close()
    return emitted


def cmd_tail(settings: Settings, args: argparse.Namespace) -> int:
    def emit(finding: Finding) -> None:
        line = json.dumps(to_dict(finding), ensure_ascii=False) if args.json else None
        print(line or format_line(finding), flush=True)

    tail_findings(
        settings,
        filter_from_args(args),
        emit,
        from_beginning=args.from_beginning,
        max_count=args.max,
        timeout_s=args.timeout,
    )
    return 0


# -- arguments ------------------------------------------------------------------


def add_findings_parser(sub: Any) -> None:
    """Register ``findings export`` and ``findings tail`` on the main parser's subcommands."""
    findings = sub.add_parser("findings", help="findings as SARIF/rdjson files or a live feed")
    actions = findings.add_subparsers(required=True, metavar="ACTION")

    export = actions.add_parser("export", help="write findings as SARIF, rdjson or rdjsonl")
    export.add_argument("--format", choices=FORMATS, default="sarif")
    export.add_argument("-o", "--output", default="", help="file to write (default stdout)")
    export.add_argument("--since", default="", help="ISO time (inclusive), on created_at")
    export.add_argument("--until", default="", help="ISO time (exclusive), on created_at")
    export.add_argument(
        "--repo-url-template",
        default="",
        help="e.g. 'https://github.com/{repo}': SARIF versionControlProvenance",
    )
    _add_filters(export)
    export.add_argument("--json", action="store_true", help="print a summary line as JSON")
    export.set_defaults(run=cmd_export)

    tail = actions.add_parser("tail", help="print findings as they are published")
    tail.add_argument("--from-beginning", action="store_true")
    tail.add_argument("--max", type=int, default=None, help="stop after N findings")
    tail.add_argument("--timeout", type=float, default=None, help="stop after S seconds")
    _add_filters(tail)
    tail.add_argument("--json", action="store_true", help="one finding as JSON per line")
    tail.set_defaults(run=cmd_tail)


def _add_filters(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tenant", default="")
    parser.add_argument("--repo", default="")
    parser.add_argument("--pr", type=int, default=None)
    parser.add_argument("--severity", default="", type=str.upper, help="minimum severity")
    parser.add_argument("--category", default="")


def filter_from_args(args: argparse.Namespace) -> FindingFilter:
    return FindingFilter(
        tenant=args.tenant,
        repo=args.repo,
        pr_number=args.pr,
        since_ms=parse_time_ms(getattr(args, "since", "")),
        until_ms=parse_time_ms(getattr(args, "until", "")),
        min_severity=args.severity,
        category=args.category,
    )


def parse_time_ms(text: str) -> int | None:
    """Epoch ms of an ISO 8601 date or time; without a zone it is UTC."""
    if not text:
        return None
    try:
        moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise FindingsCliError(f"not an ISO 8601 time: {text!r}") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return int(moment.timestamp() * 1000)
