"""Everything an agent writes to Kafka goes through here.

Sends are awaited until the broker acknowledges them (``acks=all`` in the
app config), so an agent only moves on — and Faust only commits the input
offset — after its output is durable: at-least-once end to end. Duplicates
that this allows are harmless because every effect downstream is keyed by a
deterministic id (fingerprint, chunk id, event id).

The dead-letter router is the one place allowed to catch broadly: whatever
went wrong, the original bytes and the reason end up on ``pipeline.dlq`` and
the stream keeps going.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import faust

from schemas.codec import AvroCodec
from schemas.errors import SinkWriteError
from schemas.records import DeadLetter, MetricEvent, Record
from sinks.kafka import traceparent
from streams.channels import Channels

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 3


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(frozen=True)
class Subject:
    """What a metric is about when no record of one PR is at hand (an ignored delivery)."""

    event_id: str
    tenant: str
    repo: str
    pr_number: int
    received_at_ms: int


class Emitter:
    """Encodes records and sends them to their topics, awaiting the ack."""

    def __init__(self, codec: AvroCodec, channels: Channels) -> None:
        self.codec = codec
        self.channels = channels
        self.worker = f"{socket.gethostname()}:{os.getpid()}"

    async def send(
        self,
        channel: faust.TopicT,
        key: str,
        record: Record,
        *,
        parent: faust.EventT | None = None,
    ) -> None:
        """Send and await the ack; headers carry the tenant and the PR's trace.

        The trace id is born at ingest (or replay) and kept by every record
        derived from that input (``parent``), each hop with a span id of its own
        (W3C ``traceparent``), so one PR can be followed across topics.
        """
        headers = {"traceparent": child_traceparent(parent).encode()}
        tenant = getattr(record, "tenant", "")
        if tenant:
            headers["tenant"] = str(tenant).encode()
        fut = await channel.send(key=key.encode(), value=self.codec.encode(record), headers=headers)
        await fut

    async def metric(
        self,
        stage: str,
        about: Any,
        *,
        started: float,
        items: int = 0,
        ok: bool = True,
        attrs: dict[str, str] | None = None,
        received_at_ms: int | None = None,
    ) -> None:
        """One MetricEvent for a stage's work on ``about`` (any record of one PR).

        ``started`` is a ``time.perf_counter()``; latency since the platform
        received the PR comes from ``about.received_at_ms`` unless given.
        """
        end_ms = now_ms()
        received = about.received_at_ms if received_at_ms is None else received_at_ms
        record = MetricEvent(
            stage=stage,
            event_id=about.event_id,
            tenant=about.tenant,
            repo=about.repo,
            pr_number=about.pr_number,
            duration_ms=(time.perf_counter() - started) * 1000.0,
            since_received_ms=float(end_ms - received),
            at_ms=end_ms,
            items=items,
            ok=ok,
            worker=self.worker,
            attrs=attrs or {},
        )
        await self.send(self.channels.metrics, stage, record)

    async def dead_letter(
        self, stage: str, exc: BaseException, event: faust.EventT | None, attempt: int = 1
    ) -> None:
        message = event.message if event is not None else None
        headers = {str(k): _text(v) for k, v in _header_pairs(event)} if event else {}
        headers["error_class"] = type(exc).__name__
        record = DeadLetter(
            stage=stage,
            error_class=type(exc).__name__,
            error=str(exc) or repr(exc),
            original_topic=message.topic if message else "",
            original_partition=message.partition if message else -1,
            original_offset=message.offset if message else -1,
            original_key=_bytes(message.key) if message else None,
            original_value=_bytes(message.value) if message else None,
            headers=headers,
            attempt=attempt,
            at_ms=now_ms(),
        )
        log.warning("dead-lettered at %s: %s: %s", stage, record.error_class, record.error)
        key = record.original_key.decode(errors="replace") if record.original_key else stage
        await self.send(self.channels.dlq, key, record)


async def guarded(
    emitter: Emitter,
    stage: str,
    event: faust.EventT | None,
    work: Callable[[], Awaitable[Any]],
) -> bool:
    """Run ``work`` for one input; route any failure to the dead-letter topic.

    Retryable sink errors are retried with bounded backoff first; everything
    else is deterministic and goes straight to the DLQ. Returns whether the
    work succeeded.
    """
    for attempt in range(1, MAX_ATTEMPTS + 1):
        try:
            await work()
            return True
        except SinkWriteError as exc:
            if exc.retryable and attempt < MAX_ATTEMPTS:
                await asyncio.sleep(0.2 * 2**attempt)
                continue
            await emitter.dead_letter(stage, exc, event, attempt)
            return False
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the dead-letter router is the one broad catch
            log.debug("%s failed: %s", stage, traceback.format_exc())
            await emitter.dead_letter(stage, exc, event, attempt)
            return False
    return False


def child_traceparent(parent: faust.EventT | None) -> str:
    """A W3C traceparent continuing ``parent``'s trace, or starting a new one."""
    trace_id = ""
    if parent is not None:
        for name, value in _header_pairs(parent):
            if name == "traceparent":
                parts = _text(value).split("-")
                if len(parts) == 4 and len(parts[1]) == 32:
                    trace_id = parts[1]
    return traceparent(trace_id)


def _header_pairs(event: faust.EventT) -> list[tuple[str, Any]]:
    """An event's headers as pairs (Faust gives a list of pairs or a mapping)."""
    raw: Any = event.message.headers or []
    return list(raw.items()) if isinstance(raw, dict) else list(raw)


def _bytes(value: Any) -> bytes | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        return value
    return str(value).encode()


def _text(value: Any) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)
