"""Records into ClickHouse for analysts: findings, feedback, metrics, LLM usage, dead letters.

The same code talks to an embedded chdb directory (``ClickHouseSettings.url``
empty) and to a ClickHouse server over HTTP. chdb traps shape it: ONE process
may open a chdb directory (so only the store worker holds this sink), and
chdb has no async client (so this sink is synchronous; agents call it from a
thread).

Every table is a ReplacingMergeTree ordered by the record's identity, so a
replayed batch collapses to one row under ``FINAL``. The schema comes from
versioned ``ops/ddl/NNN_*.sql`` files applied once each and recorded in
``schema_migrations``; a released file that changed is refused.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import fields
from operator import attrgetter
from pathlib import Path
from typing import Any

import clickhouse_connect
from clickhouse_connect.driver import exceptions as chx
from clickhouse_connect.driver.client import Client

from codereview.settings import ClickHouseSettings
from schemas.errors import SinkWriteError
from schemas.records import (
    DeadLetter,
    FeedbackEvent,
    Finding,
    LlmUsage,
    MetricEvent,
    PullRequestEvent,
    Record,
    Suppression,
)

DDL_DIR = Path(__file__).resolve().parent.parent / "ops" / "ddl"
_DB_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_MIGRATION_NAME = re.compile(r"^(\d+)_[A-Za-z0-9_]+\.sql$")
# Server error codes worth a retry: timeouts, network, overload, read-only replica.
_RETRYABLE_CODES = frozenset({159, 164, 202, 209, 210, 241, 242, 252, 319, 425, 999})
_INSERT_ROWS = 100_000


Column = tuple[str, Callable[[Any], Any]]  # a column name and how to read it off a record


def _field_columns(cls: type) -> tuple[Column, ...]:
    """The record's own fields as columns, so the mapping cannot drift from the schema."""
    return tuple((f.name, attrgetter(f.name)) for f in fields(cls))


def _utf8_len(text: str) -> int:
    return len(text.encode("utf-8"))


# Ids and sizes only: the diff and file texts stay in Kafka, not in the analytics store.
_PR_EVENT_IDS = "event_id tenant source repo pr_number action head_sha base_sha title author"
_PR_EVENT_COLUMNS: tuple[Column, ...] = (
    *((name, attrgetter(name)) for name in _PR_EVENT_IDS.split()),
    ("diff_bytes", lambda e: _utf8_len(e.diff)),
    ("diff_lines", lambda e: e.diff.count("\n")),
    ("files", lambda e: len(e.files)),
    ("file_bytes", lambda e: sum(_utf8_len(f.content or "") for f in e.files)),
    ("received_at_ms", attrgetter("received_at_ms")),
)

# record type -> (table, columns). Inserts are column-oriented: building columns
# with attrgetter is ~3x cheaper than rows that the driver then transposes.
_TABLES: dict[type, tuple[str, tuple[Column, ...]]] = {
    PullRequestEvent: ("pr_events", _PR_EVENT_COLUMNS),
    Finding: ("findings", _field_columns(Finding)),
    FeedbackEvent: ("feedback", _field_columns(FeedbackEvent)),
    MetricEvent: ("stage_metrics", _field_columns(MetricEvent)),
    LlmUsage: ("llm_usage", _field_columns(LlmUsage)),
    DeadLetter: ("dead_letters", _field_columns(DeadLetter)),
    Suppression: ("suppressions", _field_columns(Suppression)),
}


class ClickHouseSink:
    """Batched, idempotent inserts plus the read side analysts and views use."""

    def __init__(
        self,
        *,
        dsn: str,
        database: str,
        ddl_dir: Path = DDL_DIR,
    ) -> None:
        if not _DB_NAME.match(database):
            raise ValueError(f"database name {database!r} is not a plain identifier")
        self.dsn = dsn
        self.database = database
        self.ddl_dir = ddl_dir
        self._client: Client | None = None

    @classmethod
    def from_settings(cls, section: ClickHouseSettings, **kwargs: Any) -> ClickHouseSink:
        """A server when ``section.url`` is set, else the chdb directory ``section.chdb_path``."""
        if section.url:
            dsn = section.url
        else:
            path = str(section.chdb_path.resolve())
            if "?" in path or "#" in path:
                raise ValueError(f"chdb path {path!r} may not contain '?' or '#'")
            dsn = f"chdb://{path}"
        return cls(dsn=dsn, database=section.database, **kwargs)

    # -- lifecycle -------------------------------------------------------------

    def start(self) -> None:
        """Connect and apply pending migrations; safe to call again."""
        if self._client is not None:
            return
        chdb_dir = self.dsn.removeprefix("chdb://")
        if chdb_dir != self.dsn and chdb_dir.startswith("/"):
            Path(chdb_dir).mkdir(parents=True, exist_ok=True)
        with _mapped("connect"):
            self._client = clickhouse_connect.get_client(dsn=self.dsn)
        try:
            self.apply_migrations()
        except Exception:
            self.close()
            raise
        self._client.database = self.database

    def close(self) -> None:
        """Inserts are synchronous, so nothing is pending: release the client (and chdb lock)."""
        client, self._client = self._client, None
        if client is not None:
            client.close()

    def apply_migrations(self) -> list[str]:
        """Apply every ``NNN_*.sql`` not yet recorded; return the versions applied now."""
        client = self._started()
        db = self.database
        with _mapped("migrate"):
            client.command(f"CREATE DATABASE IF NOT EXISTS {db}")
            client.command(
                f"CREATE TABLE IF NOT EXISTS {db}.schema_migrations "
                "(version String, name String, checksum String, applied_at_ms Int64) "
                "ENGINE = ReplacingMergeTree ORDER BY version"
            )
            rows = client.query(f"SELECT version, checksum FROM {db}.schema_migrations FINAL")
            done: dict[str, str] = {str(v): str(c) for v, c in rows.result_rows}
        applied: list[str] = []
        for version, path in self._migrations():
            text = path.read_text(encoding="utf-8")
            checksum = hashlib.sha256(text.encode("utf-8")).hexdigest()
            if version in done:
                if done[version] != checksum:
                    raise SinkWriteError(
                        f"migration {path.name} changed after it was applied: add a new one",
                        retryable=False,
                    )
                continue
            with _mapped(f"migration {path.name}"):
                for statement in split_statements(text.replace("{db}", db)):
                    client.command(statement)
                client.insert(
                    f"{db}.schema_migrations",
                    [[version, path.stem, checksum, time.time_ns() // 1_000_000]],
                    column_names=["version", "name", "checksum", "applied_at_ms"],
                )
            applied.append(version)
        return applied

    # -- writes ----------------------------------------------------------------

    def write(self, batch: Sequence[Record]) -> None:
        """Any mix of storable records, one insert per table."""
        groups: dict[type, list[Any]] = defaultdict(list)
        for record in batch:
            if type(record) not in _TABLES:
                raise SinkWriteError(
                    f"no ClickHouse table for {type(record).__name__}", retryable=False
                )
            groups[type(record)].append(record)
        for cls, records in groups.items():
            self._insert(cls, records)

    def write_pr_events(self, events: Sequence[PullRequestEvent]) -> None:
        self._insert(PullRequestEvent, events)

    def write_findings(self, findings: Sequence[Finding]) -> None:
        self._insert(Finding, findings)

    def write_feedback(self, events: Sequence[FeedbackEvent]) -> None:
        self._insert(FeedbackEvent, events)

    def write_metrics(self, metrics: Sequence[MetricEvent]) -> None:
        self._insert(MetricEvent, metrics)

    def write_llm_usage(self, usage: Sequence[LlmUsage]) -> None:
        self._insert(LlmUsage, usage)

    def write_dead_letters(self, letters: Sequence[DeadLetter]) -> None:
        self._insert(DeadLetter, letters)

    def _insert(self, cls: type, records: Sequence[Any]) -> None:
        if not records:
            return
        table, columns = _TABLES[cls]
        names = [name for name, _ in columns]
        client = self._started()
        for start in range(0, len(records), _INSERT_ROWS):
            part = records[start : start + _INSERT_ROWS]
            try:
                data = [list(map(read, part)) for _, read in columns]
            except (TypeError, ValueError, AttributeError) as exc:
                raise SinkWriteError(f"{table}: bad record: {exc}", retryable=False) from exc
            with _mapped(f"insert into {table}"):
                client.insert(
                    table,
                    data,
                    column_names=names,
                    database=self.database,
                    column_oriented=True,
                )

    # -- reads -----------------------------------------------------------------

    def query(
        self, sql: str, parameters: dict[str, Any] | None = None
    ) -> tuple[list[str], list[tuple[Any, ...]]]:
        """Column names and rows; unqualified table names resolve in our database.

        Bind values with ClickHouse's server-side ``{name:Type}`` placeholders.
        On chdb an empty result comes back without column names: ask
        ``system.columns`` for a table's shape.
        """
        client = self._started()
        with _mapped("query"):
            result = client.query(sql, parameters=parameters)
        return list(result.column_names), [tuple(row) for row in result.result_rows]

    def query_dicts(
        self, sql: str, parameters: dict[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        columns, rows = self.query(sql, parameters)
        return [dict(zip(columns, row, strict=True)) for row in rows]

    # -- helpers ---------------------------------------------------------------

    def _started(self) -> Client:
        if self._client is None:
            raise SinkWriteError("ClickHouseSink used before start()", retryable=False)
        return self._client

    def _migrations(self) -> list[tuple[str, Path]]:
        found = []
        for path in sorted(self.ddl_dir.glob("*.sql")):
            match = _MIGRATION_NAME.match(path.name)
            if match is None:
                raise SinkWriteError(
                    f"migration file {path.name} is not NNN_name.sql", retryable=False
                )
            found.append((match.group(1), path))
        return found


def split_statements(sql: str) -> list[str]:
    """Statements of a migration file: ``--`` comment lines dropped, split on ``;``.

    Deliberately simple (no ``;`` inside string literals in our DDL), so the
    files stay plain SQL that ``clickhouse-client --multiquery`` also runs.
    """
    lines = [line for line in sql.splitlines() if not line.lstrip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


@contextmanager
def _mapped(action: str) -> Iterator[None]:
    """Client errors as ``SinkWriteError``: transport trouble and overload are retryable."""
    try:
        yield
    except SinkWriteError:
        raise
    except chx.OperationalError as exc:
        raise SinkWriteError(f"clickhouse {action}: {exc}", retryable=True) from exc
    except chx.Error as exc:
        retryable = exc.code in _RETRYABLE_CODES
        raise SinkWriteError(f"clickhouse {action}: {exc}", retryable=retryable) from exc
    except (ConnectionError, TimeoutError) as exc:
        raise SinkWriteError(f"clickhouse {action}: {exc}", retryable=True) from exc
    except (TypeError, ValueError) as exc:
        raise SinkWriteError(f"clickhouse {action}: {exc}", retryable=False) from exc
