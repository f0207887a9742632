"""Records to Kafka from outside a Faust worker (replay, CLI feedback, tests).

An idempotent confluent-kafka producer with ``acks=all``: ``flush()`` returns
only when every record is acknowledged, and a delivery failure raises
instead of being logged and forgotten.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Iterable
from typing import Any

from confluent_kafka import KafkaError, Message, Producer

from schemas.codec import AvroCodec
from schemas.errors import SinkWriteError
from schemas.records import Record


def traceparent(trace_id: str = "") -> str:
    """A W3C traceparent: ``trace_id`` continued (or a new trace), with a new span id."""
    return f"00-{trace_id or os.urandom(16).hex()}-{os.urandom(8).hex()}-01"


class KafkaRecordSink:
    """Encode records with the Avro codec and produce them, keyed."""

    def __init__(self, config: dict[str, Any], codec: AvroCodec) -> None:
        self._producer = Producer(
            {**config, "enable.idempotence": True, "acks": "all", "linger.ms": 5}
        )
        self._codec = codec
        self._errors: list[str] = []
        self._closed = False

    def send(self, topic: str, key: str, record: Record) -> None:
        """Produce one record; like the workers, it starts a trace and names the tenant."""
        headers: dict[str, str | bytes | None] = {"traceparent": traceparent()}
        tenant = getattr(record, "tenant", "")
        if tenant:
            headers["tenant"] = str(tenant)
        self._producer.produce(
            topic,
            key=key.encode(),
            value=self._codec.encode(record),
            headers=headers,
            on_delivery=self._delivered,
        )
        self._producer.poll(0)

    def send_all(self, topic: str, items: Iterable[tuple[str, Record]]) -> int:
        count = 0
        for key, record in items:
            self.send(topic, key, record)
            count += 1
        return count

    def send_raw(self, topic: str, key: bytes | None, value: bytes) -> None:
        """Bytes as they are: for tests and tools that need an undecodable record."""
        self._producer.produce(topic, key=key, value=value, on_delivery=self._delivered)
        self._producer.poll(0)

    def flush(self, timeout_s: float = 30.0) -> None:
        remaining = self._producer.flush(timeout_s)
        if remaining:
            raise SinkWriteError(
                f"{remaining} records not acknowledged in {timeout_s}s", retryable=True
            )
        if self._errors:
            errors, self._errors = self._errors, []
            raise SinkWriteError(f"delivery failed: {errors[:3]}", retryable=False)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.flush()

    def _delivered(self, err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            self._errors.append(f"{msg.topic()}: {err}")


class AsyncKafkaRecordSink:
    """An idempotent, ``acks=all`` producer for asyncio code that must await the ack.

    The webhook view appends each delivery to ``scm.webhooks.raw`` and answers
    only once the broker has it. Faust's own producer turns idempotence on only
    in exactly-once mode, so ingest uses librdkafka's idempotent producer: a
    retried send can never write a delivery twice. A daemon thread serves the
    delivery callbacks and resolves each send's future on the event loop.
    """

    def __init__(self, config: dict[str, Any], codec: AvroCodec) -> None:
        self._producer = Producer(
            {**config, "enable.idempotence": True, "acks": "all", "linger.ms": 1}
        )
        self._codec = codec
        self._running = True
        self._poller = threading.Thread(target=self._poll, name="kafka-acks", daemon=True)
        self._poller.start()

    async def send(
        self, topic: str, key: str, record: Record, headers: dict[str, str] | None = None
    ) -> None:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()

        def delivered(err: KafkaError | None, msg: Message) -> None:
            if err is None:
                loop.call_soon_threadsafe(_resolve, done, None)
            else:
                failure = SinkWriteError(f"{msg.topic()}: {err}", retryable=err.retriable())
                loop.call_soon_threadsafe(_resolve, done, failure)

        produce_headers: dict[str, str | bytes | None] = dict(headers or {})
        self._producer.produce(
            topic,
            key=key.encode(),
            value=self._codec.encode(record),
            headers=produce_headers,
            on_delivery=delivered,
        )
        await done

    def close(self) -> None:
        if self._running:
            self._running = False
            self._poller.join(5)
            self._producer.flush(10)

    def _poll(self) -> None:
        while self._running:
            self._producer.poll(0.05)


def _resolve(future: asyncio.Future[None], error: BaseException | None) -> None:
    if future.done():
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)
