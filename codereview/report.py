"""``codereview report``: one self-contained HTML page of how the reviewer is doing.

People look at this page from disk or as a CI artifact, offline, so it carries
its own CSS and its charts as inline SVG (``codereview.report_charts``). The
data comes from the analytics views in ``ops/ddl/004_analytics_views.sql``
through anything that can "run SQL, return columns and rows": the store
worker or a ClickHouse server (``AnalyticsClient``) while the stack runs, or a
``ClickHouseSink`` opened on the chdb directory when it does not.

    collect(run_sql) -> ReportData      the only I/O
    render(data, now) -> str            pure
    write_report(path, run_sql, now)    both, plus the file
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any, Protocol

from codereview.report_charts import Chart, Series, bar_chart, format_number, line_chart
from codereview.settings import Settings

TOP_RULES = 6
TOP_TENANTS = 8
MAX_DAYS = 30


class RunSql(Protocol):
    """Runs SQL in which ``{db}`` names our database; returns (columns, rows)."""

    def __call__(self, sql: str) -> tuple[Sequence[str], Sequence[Sequence[Any]]]: ...


# Explicit column lists: rows are read by position because chdb returns an
# empty result without column names.
PRECISION_SQL = """
    SELECT rule_id, toString(week), sum(findings), sum(accepted), sum(rejected)
    FROM {db}.v_precision_by_rule_week GROUP BY rule_id, week ORDER BY rule_id, week
"""
COST_SQL = """
    SELECT tenant, toString(day), sum(calls), sum(cache_hits), sum(input_tokens),
           sum(output_tokens), sum(cost_usd), sum(prs)
    FROM {db}.v_cost_by_team_day GROUP BY tenant, day ORDER BY day, tenant
"""
LATENCY_SQL = """
    SELECT stage, toString(day), runs, p50_ms, p95_ms
    FROM {db}.v_stage_latency ORDER BY stage, day
"""
CALIBRATION_SQL = """
    SELECT bucket, findings_with_feedback, accepted, acceptance, mean_confidence
    FROM {db}.v_calibration ORDER BY bucket
"""


@dataclass(frozen=True)
class RuleWeek:
    rule_id: str
    week: str
    findings: int
    accepted: int
    rejected: int


@dataclass(frozen=True)
class TeamDay:
    tenant: str
    day: str
    calls: int
    cache_hits: int
    input_tokens: int
    output_tokens: int
    cost_usd: float
    prs: int


@dataclass(frozen=True)
class StageDay:
    stage: str
    day: str
    runs: int
    p50_ms: float
    p95_ms: float


@dataclass(frozen=True)
class CalibrationBucket:
    bucket: float
    findings_with_feedback: int
    accepted: int
    acceptance: float | None
    mean_confidence: float


@dataclass(frozen=True)
class ReportData:
    precision: list[RuleWeek]
    cost: list[TeamDay]
    latency: list[StageDay]
    calibration: list[CalibrationBucket]

    def counts(self) -> dict[str, int]:
        return {
            "rule_weeks": len(self.precision),
            "team_days": len(self.cost),
            "stage_days": len(self.latency),
            "calibration_buckets": len(self.calibration),
        }


# -- collect (I/O) --------------------------------------------------------------


def collect(run_sql: RunSql) -> ReportData:
    """Reads the four views; every other step works on what this returns."""

    def rows(sql: str) -> Sequence[Sequence[Any]]:
        return run_sql(sql)[1]

    return ReportData(
        precision=[
            RuleWeek(str(r[0]), str(r[1])[:10], int(r[2]), int(r[3]), int(r[4]))
            for r in rows(PRECISION_SQL)
        ],
        cost=[
            TeamDay(
                str(r[0]), str(r[1])[:10], int(r[2]), int(r[3]), int(r[4]), int(r[5]),
                float(r[6]), int(r[7]),
            )
            for r in rows(COST_SQL)
        ],
        latency=[
            StageDay(str(r[0]), str(r[1])[:10], int(r[2]), _float(r[3]), _float(r[4]))
            for r in rows(LATENCY_SQL)
        ],
        calibration=[
            CalibrationBucket(
                float(r[0]), int(r[1]), int(r[2]), None if r[3] is None else float(r[3]),
                _float(r[4]),
            )
            for r in rows(CALIBRATION_SQL)
        ],
    )  # fmt: skip


def _float(value: Any) -> float:
    return 0.0 if value is None else float(value)


def client_runner(client: Any) -> RunSql:
    """Adapts ``AnalyticsClient`` (store worker or server); it resolves ``{db}`` itself."""

    def run(sql: str) -> tuple[Sequence[str], Sequence[Sequence[Any]]]:
        result = client.sql(sql)
        return result.columns, result.rows

    return run


def sink_runner(sink: Any) -> RunSql:
    """Adapts a started ``ClickHouseSink`` (e.g. on a chdb directory)."""

    def run(sql: str) -> tuple[Sequence[str], Sequence[Sequence[Any]]]:
        columns, rows = sink.query(sql.replace("{db}", sink.database))
        return columns, rows

    return run


@contextmanager
def open_runner(settings: Settings) -> Iterator[tuple[RunSql, str]]:
    """Where to read: a server, the running store worker, else the chdb dir itself.

    chdb lets one process open a directory, so while the store worker runs we
    must ask it; when it does not, we may open the directory ourselves.
    Yields the runner and a word for where the data came from.
    """
    from codereview.analytics import AnalyticsClient
    from ops.processes import StackError
    from ops.workers import store_url, worker_healthy

    if settings.clickhouse.url:
        yield client_runner(AnalyticsClient(settings, store_url="")), "clickhouse-server"
        return
    try:
        url = store_url(settings)
    except StackError:
        url = ""
    if url and worker_healthy(url):
        yield client_runner(AnalyticsClient(settings, store_url=url)), "store-worker"
        return
    from sinks.clickhouse import ClickHouseSink

    sink = ClickHouseSink.from_settings(settings.clickhouse)
    sink.start()
    try:
        yield sink_runner(sink), "chdb"
    finally:
        sink.close()


def write_report(path: Path, run_sql: RunSql, now: dt.datetime) -> ReportData:
    data = collect(run_sql)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(render(data, now), encoding="utf-8")
    tmp.replace(path)
    return data


# -- render (pure) --------------------------------------------------------------

CSS = """
body { font-family: system-ui, sans-serif; margin: 24px; color: #222; background: #fff; }
h1 { margin-bottom: 4px; } .generated { color: #666; margin-top: 0; }
.totals { display: flex; gap: 16px; flex-wrap: wrap; margin: 16px 0; }
.total { border: 1px solid #ddd; border-radius: 6px; padding: 8px 14px; min-width: 110px; }
.total .value { font-size: 22px; font-weight: bold; } .total .name { color: #666; font-size: 12px; }
section { margin: 28px 0; } .note { color: #666; font-size: 12px; }
table { border-collapse: collapse; font-size: 12px; margin-top: 8px; }
th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: right; }
th:first-child, td:first-child { text-align: left; }
"""


def render(data: ReportData, now: dt.datetime) -> str:
    """The whole page; no I/O, so it is tested with hand-made ``ReportData``."""
    sections = [
        _precision_section(data.precision),
        _cost_section(data.cost),
        _latency_section(data.latency),
        _calibration_section(data.calibration),
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        "<title>codereview report</title>"
        f"<style>{CSS}</style></head><body>\n<h1>codereview report</h1>\n"
        f'<p class="generated">generated {escape(now.isoformat(timespec="seconds"))}</p>\n'
        f"{_totals(data)}\n" + "\n".join(sections) + "\n</body></html>\n"
    )


def _totals(data: ReportData) -> str:
    findings = sum(r.findings for r in data.precision)
    accepted = sum(r.accepted for r in data.precision)
    judged = accepted + sum(r.rejected for r in data.precision)
    items = [
        ("findings", format_number(findings)),
        ("with feedback", format_number(judged)),
        ("precision", f"{accepted / judged:.0%}" if judged else "–"),
        ("LLM calls", format_number(sum(r.calls for r in data.cost))),
        ("LLM cost", f"${sum(r.cost_usd for r in data.cost):.2f}"),
        ("PRs (per team-day)", format_number(sum(r.prs for r in data.cost))),
    ]
    cells = "".join(
        f'<div class="total" data-total="{escape(name)}"><div class="value">{escape(value)}'
        f'</div><div class="name">{escape(name)}</div></div>'
        for name, value in items
    )
    return f'<div class="totals">{cells}</div>'


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], name: str) -> str:
    if not rows:
        return ""
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{escape(v)}</td>" for v in row) + "</tr>" for row in rows)
    return f'<table data-table="{name}"><tr>{head}</tr>{body}</table>'


def _section(title: str, svg: str, note: str, table: str) -> str:
    return (
        f"<section><h2>{escape(title)}</h2>\n{svg}\n"
        f'<p class="note">{escape(note)}</p>\n{table}</section>'
    )


def _ordinal(day: str) -> float:
    return float(dt.date.fromisoformat(day).toordinal())


def _precision_section(rows: list[RuleWeek]) -> str:
    totals: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for r in rows:
        t = totals[r.rule_id]
        t[0], t[1], t[2] = t[0] + r.findings, t[1] + r.accepted, t[2] + r.rejected
    top = sorted(totals, key=lambda rule: (-totals[rule][0], rule))[:TOP_RULES]
    series = [
        Series(
            rule,
            points=[
                (_ordinal(r.week), r.accepted / (r.accepted + r.rejected))
                for r in rows
                if r.rule_id == rule and r.accepted + r.rejected
            ],
        )
        for rule in top
    ]
    weeks = sorted({r.week for r in rows})
    step = max(1, len(weeks) // 8)
    svg = line_chart(
        Chart("precision", "Precision per rule by week", "week", "accepted / judged", series),
        x_ticks=[(_ordinal(w), w[5:]) for w in weeks[::step]],
        y_range=(0.0, 1.0),
    )
    table = _table(
        ["rule", "findings", "accepted", "rejected", "precision"],
        [
            [rule, str(f), str(a), str(rej), f"{a / (a + rej):.0%}" if a + rej else "–"]
            for rule in top
            for f, a, rej in [totals[rule]]
        ],
        "precision",
    )
    note = f"The {TOP_RULES} rules with the most findings; weeks without feedback have no point."
    return _section("Precision per rule", svg, note, table)


def _cost_section(rows: list[TeamDay]) -> str:
    by_tenant: dict[str, list[TeamDay]] = defaultdict(list)
    for r in rows:
        by_tenant[r.tenant].append(r)
    tenants = sorted(by_tenant, key=lambda t: (-sum(r.cost_usd for r in by_tenant[t]), t))
    tenants = tenants[:TOP_TENANTS]
    days = sorted({r.day for r in rows})[-MAX_DAYS:]
    cost = {(r.tenant, r.day): r.cost_usd for r in rows}
    series = [Series(t, values=[cost.get((t, d), 0.0) for d in days]) for t in tenants]
    svg = bar_chart(
        Chart("cost", "LLM cost by team per day", "day", "USD", series),
        categories=[d[5:] for d in days],
    )
    table_rows = []
    for t in tenants:
        team = by_tenant[t]
        calls = sum(r.calls for r in team)
        hits = sum(r.cache_hits for r in team)
        table_rows.append(
            [
                t,
                str(calls),
                f"{hits / calls:.0%}" if calls else "–",
                format_number(sum(r.input_tokens + r.output_tokens for r in team)),
                f"${sum(r.cost_usd for r in team):.4f}",
                str(sum(r.prs for r in team)),
            ]
        )
    table = _table(["team", "calls", "cache hits", "tokens", "cost", "PRs"], table_rows, "cost")
    note = f"Last {MAX_DAYS} days, the {TOP_TENANTS} costliest teams (tenants)."
    return _section("Cost by team", svg, note, table)


def _latency_section(rows: list[StageDay]) -> str:
    by_stage: dict[str, list[StageDay]] = defaultdict(list)
    for r in rows:
        by_stage[r.stage].append(r)
    stages = sorted(by_stage)

    def weighted(stage: str, pick: Callable[[StageDay], float]) -> float:
        days = by_stage[stage]
        runs = sum(d.runs for d in days)
        if not runs:
            return 0.0
        return sum(pick(d) * d.runs for d in days) / runs

    p50 = [weighted(s, lambda d: d.p50_ms) for s in stages]
    p95 = [weighted(s, lambda d: d.p95_ms) for s in stages]
    svg = bar_chart(
        Chart(
            "latency", "Latency per stage", "stage", "ms",
            [Series("p50", values=p50), Series("p95", values=p95)],
        ),
        categories=stages,
    )  # fmt: skip
    table = _table(
        ["stage", "runs", "p50 ms", "p95 ms"],
        [
            [s, str(sum(d.runs for d in by_stage[s])), format_number(a), format_number(b)]
            for s, a, b in zip(stages, p50, p95, strict=True)
        ],
        "latency",
    )
    note = "Daily p50/p95 of each stage's own duration, averaged over days weighted by runs."
    return _section("Latency per stage", svg, note, table)


def _calibration_section(rows: list[CalibrationBucket]) -> str:
    observed = [(round(r.bucket + 0.05, 3), r.acceptance) for r in rows if r.acceptance is not None]
    series = [Series("observed acceptance", points=[(x, y) for x, y in observed])]
    svg = line_chart(
        Chart(
            "calibration", "Calibration: confidence vs acceptance",
            "predicted confidence (bucket)", "observed acceptance", series,
        ),
        x_ticks=[(i / 10, f"{i / 10:.1f}") for i in range(11)],
        y_range=(0.0, 1.0),
        diagonal=True,
    )  # fmt: skip
    table = _table(
        ["bucket", "with feedback", "accepted", "acceptance", "mean confidence"],
        [
            [
                f"{r.bucket:.1f}–{r.bucket + 0.1:.1f}",
                str(r.findings_with_feedback),
                str(r.accepted),
                "–" if r.acceptance is None else f"{r.acceptance:.0%}",
                f"{r.mean_confidence:.2f}",
            ]
            for r in rows
        ],
        "calibration",
    )
    note = "Points on the dashed diagonal mean confidence says what it should."
    return _section("Calibration", svg, note, table)
