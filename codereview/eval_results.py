"""The outputs of an evaluation run: tables for people, rows for ClickHouse.

Rows go where ``codereview analytics`` reads: with chdb only the store
worker may open the directory, so when it runs the rows travel as one
``INSERT`` through its ``/v1/query`` view (after the idempotent
``CREATE TABLE IF NOT EXISTS`` of migration 002, which a store worker
started before that migration existed has not applied); with no store worker
the chdb directory is opened here, and a ClickHouse server is written
directly. Either way the sink's own migration runner records 002 the next
time a sink starts.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from codereview.analytics import sql_literal
from codereview.settings import Settings
from sinks.clickhouse import DDL_DIR, ClickHouseSink, split_statements

EVAL_DDL = DDL_DIR / "002_eval_results.sql"
REPO_ROOT = Path(__file__).resolve().parent.parent
_COUNT_COLUMNS = (
    "findings", "tp", "fp", "regions", "regions_found", "cases", "cases_found",
    "precision", "recall", "recall_cases", "f1",
)  # fmt: skip
COLUMNS = (
    "run_id", "at_ms", "system", "lines", "scope", "key", *_COUNT_COLUMNS,
    "ms_per_pr", "cases_file", "git_sha",
)  # fmt: skip


def git_revision(root: Path = REPO_ROOT) -> str:
    """HEAD of the repository, with ``-dirty`` when tracked files differ from it."""
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root, capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{sha}-dirty" if dirty else sha


def result_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per system and scope (overall, category, rule, case) of ``eval_results``."""
    rows = []
    for system in report["systems"]:
        for scope, key, counts in _scopes(system):
            rows.append(
                {
                    "run_id": report["run_id"],
                    "at_ms": report["at_ms"],
                    "system": system["system"],
                    "lines": system["lines"],
                    "scope": scope,
                    "key": key,
                    **{c: counts[c] for c in _COUNT_COLUMNS},
                    "ms_per_pr": float(system["ms_per_pr"]),
                    "cases_file": report["cases_file"],
                    "git_sha": report["git_sha"],
                }
            )
    return rows


def _scopes(system: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    yield "overall", "", system["overall"]
    for scope, name in (("category", "by_category"), ("rule", "by_rule"), ("case", "by_case")):
        for key, counts in system[name].items():
            yield scope, key, counts


def insert_sql(rows: Sequence[dict[str, Any]], database: str) -> str:
    """One ``INSERT ... VALUES`` statement for ``rows`` (literals escaped here)."""
    values = ",\n".join("(" + ", ".join(sql_literal(r[c]) for c in COLUMNS) + ")" for r in rows)
    return f"INSERT INTO {database}.eval_results ({', '.join(COLUMNS)}) VALUES\n{values}"


def store_results(settings: Settings, report: dict[str, Any]) -> str:
    """Write the run's rows to ClickHouse; return where they went."""
    from codereview.analytics import AnalyticsClient
    from ops.workers import store_url, worker_healthy
    from schemas.errors import CodeReviewError

    rows = result_rows(report)
    db = settings.clickhouse.database
    if not settings.clickhouse.url:
        try:
            url = store_url(settings)
        except CodeReviewError:
            url = ""
        if url and worker_healthy(url):
            client = AnalyticsClient(settings, store_url=url)
            for statement in split_statements(EVAL_DDL.read_text(encoding="utf-8")):
                client.sql(statement)
            client.sql(insert_sql(rows, db))
            return f"store worker {url}"
    sink = ClickHouseSink.from_settings(settings.clickhouse)
    sink.start()  # applies pending migrations, 002 included
    try:
        sink.query(insert_sql(rows, db))
    finally:
        sink.close()
    return settings.clickhouse.url or f"chdb {settings.clickhouse.chdb_path}"


def report_tables(report: dict[str, Any], fmt: Callable[[Sequence[str], list], str]) -> str:
    """The human summary: systems, then categories, then the top 20 rules on the diff."""
    pct = _pct
    overall = [
        [s["system"], s["lines"], o["findings"], o["tp"], o["fp"], pct(o["precision"]),
         pct(o["recall"]), pct(o["recall_cases"]), pct(o["f1"]), s["ms_per_pr"]]
        for s in report["systems"] for o in [s["overall"]]
    ]  # fmt: skip
    head = ["system", "lines", "findings", "TP", "FP", "precision", "recall", "recall(cases)"]
    parts = [
        f"{report['cases']} cases from {report['cases_file']} (run {report['run_id'][:12]}, "
        f"git {report['git_sha'][:12]}, analyzers {','.join(report['analyzers'])})",
        fmt([*head, "F1", "ms/PR"], overall),
    ]
    cats = [
        [s["system"], s["lines"], k, c["findings"], c["tp"], pct(c["precision"]),
         c["regions"], c["regions_found"], pct(c["recall"])]
        for s in report["systems"] for k, c in s["by_category"].items()
    ]  # fmt: skip
    parts += ["by category (precision by the finding's, recall by the expected region's)"]
    parts += [fmt(["system", "lines", "category", "findings", "TP", "precision", "regions",
                   "found", "recall"], cats)]  # fmt: skip
    rules = sorted(
        ([s["system"], k, c["findings"], c["tp"], pct(c["precision"]), c["regions_found"]]
         for s in report["systems"] if s["lines"] == "diff" for k, c in s["by_rule"].items()),
        key=lambda row: (-row[2], row[0], row[1]),
    )[:20]  # fmt: skip
    parts += ["top 20 rules by findings, diff-only systems (all rules in --json)"]
    parts += [fmt(["system", "rule", "findings", "TP", "precision", "regions found"], rules)]
    if report["warnings"]:
        parts += ["\n".join(f"warning: {w}" for w in report["warnings"][:20])]
    return "\n\n".join(parts)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def publish_report(
    settings: Settings, report: dict[str, Any], *, as_json: bool, out: Path | None
) -> int:
    """The JSON file, the ClickHouse rows, then stdout: tables, or the whole report as JSON."""
    from codereview.cli import format_table
    from schemas.errors import CodeReviewError

    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(report["at_ms"] / 1000))
    path = out or Path(settings.stack.state_dir) / "eval" / f"{stamp}-{report['run_id'][:8]}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        where = store_results(settings, report)
    except CodeReviewError as exc:  # the numbers still reach the file and stdout
        where = ""
        report["warnings"].append(f"results not stored in ClickHouse: {exc}")
    report["stored_in"] = where
    path.write_text(json.dumps(report, indent=1), encoding="utf-8")
    if as_json:
        print(json.dumps(report))
    else:
        print(report_tables(report, format_table))
        print(f"\nfull report: {path}" + (f"; rows in {where}" if where else ""))
    return 0
