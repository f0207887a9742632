"""Queries for analysts, answered while the pipeline runs.

With chdb, only the store worker may open the database directory, so a query
goes to that worker's ``POST /v1/query`` view. With a ClickHouse server
(``CODEREVIEW_CLICKHOUSE__URL``) the query goes straight to the server. The
named queries below are plain SQL against the tables in ``ops/ddl``.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from codereview.settings import Settings
from schemas.errors import CodeReviewError

NAMED_QUERIES: dict[str, str] = {
    "summary": """
        SELECT
          (SELECT uniqExact(event_id) FROM {db}.pr_events) AS prs,
          (SELECT sum(items) FROM {db}.stage_metrics FINAL WHERE stage = 'chunk') AS chunks,
          (SELECT sum(items) FROM {db}.stage_metrics FINAL WHERE stage='embed') AS embedded,
          (SELECT count() FROM {db}.findings FINAL) AS findings,
          (SELECT count() FROM {db}.feedback FINAL) AS feedback,
          (SELECT count() FROM {db}.dead_letters FINAL) AS dead_letters
    """,
    "findings_by_category": """
        SELECT category, severity, count() AS findings
        FROM {db}.findings FINAL GROUP BY category, severity ORDER BY findings DESC
    """,
    "findings_by_rule": """
        SELECT rule_id, count() AS findings, round(avg(confidence), 3) AS avg_confidence
        FROM {db}.findings FINAL GROUP BY rule_id ORDER BY findings DESC LIMIT 30
    """,
    "stage_latency": """
        SELECT stage, count() AS runs,
               round(quantile(0.5)(duration_ms), 1) AS p50_ms,
               round(quantile(0.95)(duration_ms), 1) AS p95_ms,
               round(quantile(0.5)(since_received_ms), 1) AS p50_since_received_ms,
               round(quantile(0.95)(since_received_ms), 1) AS p95_since_received_ms
        FROM {db}.stage_metrics FINAL GROUP BY stage ORDER BY p50_since_received_ms
    """,
    "feedback_by_rule": """
        SELECT rule_id, countIf(verdict = 'ACCEPTED') AS accepted,
               countIf(verdict = 'REJECTED') AS rejected
        FROM {db}.feedback FINAL GROUP BY rule_id ORDER BY accepted + rejected DESC
    """,
    "dead_letters": """
        SELECT stage, error_class, count() AS records, any(error) AS example
        FROM {db}.dead_letters FINAL GROUP BY stage, error_class ORDER BY records DESC
    """,
    # The v_* views of ops/ddl/004: pre-aggregated, so they answer fast at 1M+ findings.
    "precision_by_rule": """
        SELECT rule_id, tenant, repo, week, findings, accepted, rejected, precision
        FROM {db}.v_precision_by_rule_week
        ORDER BY week DESC, accepted + rejected DESC, findings DESC LIMIT 200
    """,
    "cost_by_team": """
        SELECT tenant, day, calls, cache_hits, input_tokens, output_tokens, cost_usd, prs
        FROM {db}.v_cost_by_team_day ORDER BY day DESC, cost_usd DESC LIMIT 500
    """,
    "latency_by_stage": """
        SELECT stage, day, runs, p50_ms, p95_ms, p50_since_received_ms, p95_since_received_ms
        FROM {db}.v_stage_latency ORDER BY day DESC, p50_since_received_ms LIMIT 500
    """,
    "cache_hit_rate": """
        SELECT day, model, calls, hits, hit_rate
        FROM {db}.v_cache_hit_rate ORDER BY day DESC, calls DESC LIMIT 500
    """,
    "calibration": """
        SELECT bucket, findings_with_feedback, accepted, acceptance, mean_confidence
        FROM {db}.v_calibration ORDER BY bucket
    """,
    "prompt_variants": """
        SELECT prompt_version, model, findings, accepted, rejected, precision
        FROM {db}.v_prompt_variants ORDER BY findings DESC LIMIT 100
    """,
    "suppressions": """
        SELECT tenant, repo, rule_id, reason, suppressed, last_at
        FROM {db}.v_suppressions ORDER BY suppressed DESC, last_at DESC LIMIT 200
    """,
}


class AnalyticsError(CodeReviewError):
    """A query failed; the message carries the database's own words."""


@dataclass(frozen=True)
class QueryResult:
    columns: list[str]
    rows: list[list[Any]]

    def as_dicts(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]


class AnalyticsClient:
    """Runs SQL where the data is: the store worker (chdb) or a ClickHouse server."""

    def __init__(self, settings: Settings, *, store_url: str) -> None:
        self._settings = settings
        self._store_url = store_url.rstrip("/")

    def named(self, name: str) -> QueryResult:
        if name not in NAMED_QUERIES:
            raise AnalyticsError(f"unknown query {name!r}; known: {', '.join(NAMED_QUERIES)}")
        return self.sql(NAMED_QUERIES[name])

    def sql(self, sql: str) -> QueryResult:
        sql = sql.replace("{db}", self._settings.clickhouse.database)
        if self._settings.clickhouse.url:
            return self._direct(sql)
        return self._via_store(sql)

    def _direct(self, sql: str) -> QueryResult:
        import clickhouse_connect

        client = clickhouse_connect.get_client(dsn=self._settings.clickhouse.url)
        try:
            result = client.query(sql)
            return QueryResult(list(result.column_names), [list(r) for r in result.result_rows])
        except Exception as exc:  # the driver raises several types; keep its message
            raise AnalyticsError(str(exc)) from exc
        finally:
            client.close()

    def _via_store(self, sql: str) -> QueryResult:
        request = urllib.request.Request(
            f"{self._store_url}/v1/query",
            data=sql.encode(),
            method="POST",
            headers={"Content-Type": "text/plain"},
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                body = json.loads(response.read())
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")
            raise AnalyticsError(f"query failed ({exc.code}): {detail}") from exc
        except urllib.error.URLError as exc:
            raise AnalyticsError(
                f"the store worker at {self._store_url} is not answering ({exc.reason}); "
                "is the stack up (`codereview up`)?"
            ) from exc
        return QueryResult(body["columns"], body["rows"])


def sql_literal(value: Any) -> str:
    """``value`` as a ClickHouse literal: NULL, 0/1, a number, or a quoted, escaped string."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int | float):
        return repr(value)
    text = str(value).replace("\\", "\\\\").replace("'", "\\'")
    return f"'{text}'"
