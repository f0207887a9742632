"""``codereview dlq replay``: send dead letters back where they came from.

A record that a stage could not handle sits on ``pipeline.dlq`` with its
original topic, key and bytes. Once the bug is fixed, replay puts those bytes
back on the original topic and the stage sees them again. Replay is a
consumer group of its own that commits what it replayed, so running it twice
never replays a dead letter twice; ``--stage`` limits it to one stage.
Normalizers remember a delivery only after handling it, so a replayed
webhook is not mistaken for a redelivery.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Consumer, TopicPartition

from codereview.settings import Settings
from ops.stack import kafka_client_config, resolve_endpoints
from schemas.codec import AvroCodec
from schemas.errors import DecodeError
from schemas.records import DeadLetter
from sinks.kafka import KafkaRecordSink
from streams.app import build_registry
from streams.topics import DLQ


@dataclass
class ReplayReport:
    replayed: int = 0
    skipped: int = 0
    undecodable: int = 0
    by_stage: dict[str, int] = field(default_factory=dict)
    keys: list[str] = field(default_factory=list)  # original keys replayed, in order


def replay_dead_letters(
    settings: Settings, *, stage: str | None = None, dry_run: bool = False, timeout_s: float = 30
) -> ReplayReport:
    """Replay every dead letter not replayed before (optionally of one stage)."""
    bootstrap = resolve_endpoints(settings).kafka_bootstrap
    config = kafka_client_config(settings.kafka, bootstrap)
    prefix = settings.kafka.topic_prefix
    topic = prefix + DLQ.name
    codec = AvroCodec(build_registry(settings))
    consumer = Consumer(
        {
            **config,
            "group.id": f"{settings.worker.app_id}-dlq-replay",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    sink = KafkaRecordSink(config, codec)
    report = ReplayReport()
    try:
        start = _committed_or_beginning(consumer, topic, DLQ.partitions)
        consumer.assign(start)
        position = {tp.partition: tp.offset for tp in start}
        end = _end_offsets(consumer, topic, DLQ.partitions)
        deadline = time.monotonic() + timeout_s
        while any(position[p] < end[p] for p in end) and time.monotonic() < deadline:
            for msg in consumer.consume(200, timeout=0.5):
                if msg.error():
                    continue
                _handle(msg, codec, sink, stage, dry_run, report)
                position[int(msg.partition() or 0)] = int(msg.offset() or 0) + 1
        if not dry_run:
            sink.flush()
            consumer.commit(
                offsets=[TopicPartition(topic, p, o) for p, o in position.items()],
                asynchronous=False,
            )
    finally:
        consumer.close()
        sink.close()
    return report


def _handle(
    msg: Any,
    codec: AvroCodec,
    sink: KafkaRecordSink,
    stage: str | None,
    dry_run: bool,
    report: ReplayReport,
) -> None:
    try:
        letter = codec.decode(msg.value())
    except DecodeError:
        report.undecodable += 1
        return
    if not isinstance(letter, DeadLetter) or letter.original_value is None:
        report.undecodable += 1
        return
    if stage is not None and letter.stage != stage:
        report.skipped += 1
        return
    if not dry_run:
        sink.send_raw(letter.original_topic, letter.original_key, letter.original_value)
    report.replayed += 1
    report.keys.append((letter.original_key or b"").decode(errors="replace"))
    report.by_stage[letter.stage] = report.by_stage.get(letter.stage, 0) + 1


def _committed_or_beginning(consumer: Consumer, topic: str, partitions: int) -> list[Any]:
    committed = consumer.committed([TopicPartition(topic, p) for p in range(partitions)], 10)
    return [TopicPartition(topic, tp.partition, max(tp.offset, 0)) for tp in committed]


def _end_offsets(consumer: Consumer, topic: str, partitions: int) -> dict[int, int]:
    return {
        p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
        for p in range(partitions)
    }
