"""Faust topic objects for the declarations in ``streams/topics.py``.

Keys and values travel as raw bytes: agents decode with our Avro codec so a
record that does not decode becomes a dead letter with its original bytes,
instead of an exception inside Faust's deserializer that would stop the
stream.
"""

from __future__ import annotations

from dataclasses import dataclass

import faust

from streams import topics


@dataclass(frozen=True)
class Channels:
    raw: faust.TopicT
    events: faust.TopicT
    chunks: faust.TopicT
    triaged: faust.TopicT
    findings: faust.TopicT
    feedback: faust.TopicT
    learning: faust.TopicT
    metrics: faust.TopicT
    dlq: faust.TopicT


def declare_channels(app: faust.App, prefix: str = "") -> Channels:
    def declare(spec: topics.TopicSpec) -> faust.TopicT:
        return app.topic(
            prefix + spec.name,
            key_type=bytes,
            value_type=bytes,
            key_serializer="raw",
            value_serializer="raw",
            partitions=spec.partitions,
        )

    return Channels(
        raw=declare(topics.RAW_WEBHOOKS),
        events=declare(topics.PR_EVENTS),
        chunks=declare(topics.PR_CHUNKS),
        triaged=declare(topics.PR_TRIAGED),
        findings=declare(topics.PR_FINDINGS),
        feedback=declare(topics.FEEDBACK),
        learning=declare(topics.LEARNING),
        metrics=declare(topics.METRICS),
        dlq=declare(topics.DLQ),
    )
