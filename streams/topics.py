"""Every topic of the platform, declared once.

``codereview up`` creates these with exactly these partition counts before any
worker starts (noida-db, like Kafka with auto-create on, would otherwise make
one-partition topics and Faust would fail with PartitionsMismatch); the Faust
app declares its topics from the same list; tests and benchmarks read names
from here. Keys keep one PR on one partition so its stages stay ordered.
"""

from __future__ import annotations

from dataclasses import dataclass

PARTITIONS = 4


@dataclass(frozen=True, slots=True)
class TopicSpec:
    name: str
    key: str
    value: str
    partitions: int = PARTITIONS
    compacted: bool = False
    retention_ms: int | None = None


RAW_WEBHOOKS = TopicSpec("scm.webhooks.raw", "delivery id", "RawWebhook")
PR_EVENTS = TopicSpec("pr.events", "tenant/repo#pr", "PullRequestEvent")
PR_CHUNKS = TopicSpec("pr.chunks", "tenant/repo#pr", "CodeChunk")
PR_TRIAGED = TopicSpec("pr.triaged", "tenant/repo#pr", "TriageResult")
PR_FINDINGS = TopicSpec("pr.findings", "tenant/repo#pr", "Finding")
FEEDBACK = TopicSpec("review.feedback", "tenant/repo#pr", "FeedbackEvent")
# Feedback joined to its finding's rule, keyed by tenant: one tenant's posteriors
# live on one partition, so every update of a posterior is read-modify-write in order.
LEARNING = TopicSpec("learning.feedback", "tenant", "FeedbackEvent")
METRICS = TopicSpec("pipeline.metrics", "stage", "MetricEvent | LlmUsage | Suppression")
DLQ = TopicSpec("pipeline.dlq", "original key", "DeadLetter", partitions=1)

ALL_TOPICS: tuple[TopicSpec, ...] = (
    RAW_WEBHOOKS,
    PR_EVENTS,
    PR_CHUNKS,
    PR_TRIAGED,
    PR_FINDINGS,
    FEEDBACK,
    LEARNING,
    METRICS,
    DLQ,
)

# Faust keeps table changelogs and repartition topics under the app id; they
# are created up front too, with the same partition count as their source.
TABLE_NAMES: tuple[str, ...] = (
    "rule_feedback",
    "deliveries",
    "llm_cache",
    "published_llm",
    "published_triage",
    "llm_spend",
    "posteriors",
)


# The publish role's tables, under its own app id (``<app_id>-publish``).
PUBLISH_TABLE_NAMES: tuple[str, ...] = ("published_comments",)


def changelog_topics(app_id: str) -> tuple[TopicSpec, ...]:
    """The changelog topics Faust will use for our tables under ``app_id``."""
    names = [f"{app_id}-{name}" for name in TABLE_NAMES]
    names += [f"{app_id}-publish-{name}" for name in PUBLISH_TABLE_NAMES]
    return tuple(
        TopicSpec(f"{name}-changelog", "table key", "table value", compacted=True) for name in names
    )


def all_topics(app_id: str, prefix: str = "") -> tuple[TopicSpec, ...]:
    """Every topic to create for a Faust app id, with an optional name prefix."""
    specs = ALL_TOPICS + changelog_topics(app_id)
    if not prefix:
        return specs
    return tuple(
        TopicSpec(prefix + s.name, s.key, s.value, s.partitions, s.compacted, s.retention_ms)
        for s in specs
    )
