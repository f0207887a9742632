"""The store worker's agents: topics into ClickHouse, in batches.

chdb lets ONE process open a directory, so these agents run in their own
worker (``codereview worker --role store``, a separate consumer group) and
every other process reaches ClickHouse through this worker's query view.
Against a ClickHouse server the same agents run unchanged.

A batch is written (idempotently: ReplacingMergeTree by id) before the agent
takes the next one, so Faust only commits offsets of rows that are stored.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import faust

from schemas.errors import DecodeError
from schemas.records import Record
from sinks.clickhouse import ClickHouseSink
from streams.acks import handled_batches
from streams.channels import Channels
from streams.emitter import Emitter, guarded

log = logging.getLogger(__name__)


@dataclass
class StoreDeps:
    emitter: Emitter
    clickhouse: ClickHouseSink
    batch_size: int = 500
    flush_interval_s: float = 1.0
    # chdb is used from one thread only: every call goes through this executor.
    executor: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(max_workers=1, thread_name_prefix="clickhouse")
    )

    async def call(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)


def register_store_agents(app: faust.App, ch: Channels, deps: StoreDeps) -> None:
    for name, channel in (
        ("store_events", ch.events),
        ("store_findings", ch.findings),
        ("store_feedback", ch.feedback),
        ("store_metrics", ch.metrics),
        ("store_dlq", ch.dlq),
    ):
        app.agent(channel, name=name)(_store_agent(deps, name))


def _store_agent(deps: StoreDeps, stage: str) -> Any:
    async def agent(stream: faust.StreamT) -> None:
        async for events in handled_batches(stream, deps.batch_size, deps.flush_interval_s):
            records: list[Record] = []
            for event in events:
                try:
                    records.append(deps.emitter.codec.decode(event.value))
                except DecodeError as exc:
                    if stage == "store_dlq":
                        log.error("undecodable dead letter at offset %s", event.message.offset)
                    else:
                        await deps.emitter.dead_letter(stage, exc, event)
            if records:
                await guarded(
                    deps.emitter,
                    stage,
                    events[-1],
                    partial(deps.call, deps.clickhouse.write, records),
                )

    agent.__name__ = agent.__qualname__ = stage
    return agent
