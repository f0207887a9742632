"""Typed records, one per Avro schema in ``schemas/avro/``.

The .avsc files are the source of truth for the wire; these dataclasses are
what processors and agents hold in their hands. ``tests/unit/schemas`` checks
that every dataclass has exactly the fields of its schema, so the two cannot
drift. Times are epoch milliseconds (ints), never datetimes, so records stay
plain data that a test can write literally.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar, Union, get_args, get_origin, get_type_hints

SEVERITIES = ("INFO", "LOW", "MEDIUM", "HIGH", "CRITICAL")
VERDICTS = ("ACCEPTED", "REJECTED", "IGNORED")


@dataclass(frozen=True, slots=True)
class RawWebhook:
    SCHEMA: ClassVar[str] = "RawWebhook"
    delivery_id: str
    source: str
    tenant: str
    event_type: str
    headers: dict[str, str]
    body: bytes
    received_at_ms: int


@dataclass(frozen=True, slots=True)
class FileSnapshot:
    path: str
    content: str | None = None


@dataclass(frozen=True, slots=True)
class PullRequestEvent:
    SCHEMA: ClassVar[str] = "PullRequestEvent"
    event_id: str
    tenant: str
    source: str
    repo: str
    pr_number: int
    action: str
    head_sha: str
    diff: str
    received_at_ms: int
    title: str = ""
    author: str = ""
    base_sha: str = ""
    files: list[FileSnapshot] = field(default_factory=list)

    @property
    def key(self) -> str:
        return pr_key(self.tenant, self.repo, self.pr_number)

    def file_content(self, path: str) -> str | None:
        for snap in self.files:
            if snap.path == path:
                return snap.content
        return None


@dataclass(frozen=True, slots=True)
class CodeChunk:
    SCHEMA: ClassVar[str] = "CodeChunk"
    chunk_id: str
    event_id: str
    tenant: str
    repo: str
    pr_number: int
    head_sha: str
    path: str
    language: str
    start_line: int
    end_line: int
    changed_lines: list[int]
    text: str
    text_hash: str
    received_at_ms: int
    symbol: str | None = None

    @property
    def key(self) -> str:
        return pr_key(self.tenant, self.repo, self.pr_number)


@dataclass(frozen=True, slots=True)
class Finding:
    SCHEMA: ClassVar[str] = "Finding"
    fingerprint: str
    event_id: str
    tenant: str
    repo: str
    pr_number: int
    head_sha: str
    path: str
    start_line: int
    end_line: int
    rule_id: str
    category: str
    severity: str
    confidence: float
    message: str
    origin: str
    received_at_ms: int
    created_at_ms: int
    suggestion: str | None = None
    model: str | None = None
    prompt_version: str | None = None
    source: str = ""

    @property
    def key(self) -> str:
        return pr_key(self.tenant, self.repo, self.pr_number)


@dataclass(frozen=True, slots=True)
class ChunkVerdict:
    chunk_id: str
    path: str
    language: str
    start_line: int
    end_line: int
    risk: float
    escalate: bool
    symbol: str | None = None
    reasons: list[str] = field(default_factory=list)
    text: str = ""
    changed_lines: list[int] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class TriageResult:
    SCHEMA: ClassVar[str] = "TriageResult"
    event_id: str
    tenant: str
    repo: str
    pr_number: int
    head_sha: str
    chunks: list[ChunkVerdict]
    received_at_ms: int
    triaged_at_ms: int
    finding_fingerprints: list[str] = field(default_factory=list)
    source: str = ""

    @property
    def key(self) -> str:
        return pr_key(self.tenant, self.repo, self.pr_number)


@dataclass(frozen=True, slots=True)
class FeedbackEvent:
    SCHEMA: ClassVar[str] = "FeedbackEvent"
    event_id: str
    fingerprint: str
    tenant: str
    repo: str
    pr_number: int
    rule_id: str
    verdict: str
    signal: str
    at_ms: int
    actor: str = ""

    @property
    def key(self) -> str:
        return pr_key(self.tenant, self.repo, self.pr_number)


@dataclass(frozen=True, slots=True)
class MetricEvent:
    SCHEMA: ClassVar[str] = "MetricEvent"
    stage: str
    event_id: str
    tenant: str
    repo: str
    pr_number: int
    duration_ms: float
    since_received_ms: float
    at_ms: int
    items: int = 0
    ok: bool = True
    worker: str = ""
    attrs: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class LlmUsage:
    SCHEMA: ClassVar[str] = "LlmUsage"
    call_id: str
    event_id: str
    tenant: str
    repo: str
    pr_number: int
    provider: str
    model: str
    prompt_version: str
    input_tokens: int
    output_tokens: int
    cost_usd: float
    latency_ms: float
    ok: bool
    at_ms: int
    cache_hit: bool = False
    error: str | None = None
    tier: str = "strong"


@dataclass(frozen=True, slots=True)
class DeadLetter:
    SCHEMA: ClassVar[str] = "DeadLetter"
    stage: str
    error_class: str
    error: str
    original_topic: str
    at_ms: int
    original_partition: int = -1
    original_offset: int = -1
    original_key: bytes | None = None
    original_value: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    attempt: int = 1


@dataclass(frozen=True, slots=True)
class Suppression:
    """A finding held back because feedback says its rule is rarely accepted here."""

    SCHEMA: ClassVar[str] = "Suppression"
    fingerprint: str
    event_id: str
    tenant: str
    repo: str
    pr_number: int
    rule_id: str
    category: str
    severity: str
    confidence: float
    threshold: float
    reason: str
    at_ms: int


Record = (
    RawWebhook
    | PullRequestEvent
    | CodeChunk
    | Finding
    | TriageResult
    | FeedbackEvent
    | MetricEvent
    | LlmUsage
    | DeadLetter
    | Suppression
)
RECORD_TYPES: tuple[Any, ...] = get_args(Record)
RECORDS_BY_SCHEMA: dict[str, type] = {t.SCHEMA: t for t in RECORD_TYPES}

T = TypeVar("T")


def severity_rank(severity: str) -> int:
    """Position of ``severity`` in ``SEVERITIES`` (INFO 0 .. CRITICAL 4); -1 for an unknown one."""
    return SEVERITIES.index(severity) if severity in SEVERITIES else -1


def pr_key(tenant: str, repo: str, pr_number: int) -> str:
    """The Kafka key of everything about one PR: keeps its stages on one partition."""
    return f"{tenant}/{repo}#{pr_number}"


def to_dict(record: Any) -> dict[str, Any]:
    """A record as the plain dict fastavro writes."""
    return dataclasses.asdict(record)


def from_dict(cls: type[T], data: dict[str, Any]) -> T:
    """Build ``cls`` from a decoded Avro dict, nested records included."""
    hints = _hints(cls)
    kwargs = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if f.name in data:
            kwargs[f.name] = _convert(hints[f.name], data[f.name])
    return cls(**kwargs)


def _hints(cls: type) -> dict[str, Any]:
    return get_type_hints(cls)


def _convert(hint: Any, value: Any) -> Any:
    if value is None:
        return None
    origin = get_origin(hint)
    if origin in (Union, types.UnionType):
        inner = [a for a in get_args(hint) if a is not type(None)]
        return _convert(inner[0], value) if len(inner) == 1 else value
    if origin is list:
        (item,) = get_args(hint)
        return [_convert(item, v) for v in value]
    if dataclasses.is_dataclass(hint) and isinstance(value, dict):
        return from_dict(typing.cast(type, hint), value)
    return value
