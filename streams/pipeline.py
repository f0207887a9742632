"""The review pipeline's agents: wiring only.

Each agent takes an event, decodes it, calls processors, hands results to a
sink or the next topic, emits a metric, and routes failures to the
dead-letter topic through ``guarded``. Blocking work (linters, the embedding
model, store clients) runs in a thread so the event loop keeps heartbeating.

    scm.webhooks.raw -> normalize -> pr.events        (streams/ingest.py)
    pr.events  -> chunk  -> pr.chunks -> embed -> Milvus
    pr.events  -> triage -> pr.findings (cheap findings) + pr.triaged
    pr.triaged -> analyze (LLM, when configured) -> pr.findings  (streams/deep_review.py)
    review.feedback -> learn -> learning.feedback -> posteriors table  (streams/learning.py)

Triage reads ``pr.events`` rather than ``pr.chunks``: linters need whole
files, which chunks do not carry; it re-derives the same chunks (a pure,
cheap function) to attribute issues to them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import TypeVar

import faust

from codereview.settings import LearningSettings
from processors.analyzers import Analyzer
from processors.chunking import chunk_event
from processors.embedding import Embedder, EmbeddingCache, embed_cached
from processors.learning import DAY_MS
from processors.triage import focus_lines, triage_event
from schemas.errors import DecodeError
from schemas.records import (
    CodeChunk,
    Finding,
    PullRequestEvent,
    TriageResult,
)
from sinks.milvus import MilvusSink
from streams.acks import handled_batches, handled_events
from streams.channels import Channels
from streams.deep_review import LlmDeps, register_deep_review
from streams.emitter import Emitter, guarded, now_ms
from streams.learning import (
    PosteriorView,
    applied_feedback,
    publish_calibrated,
    register_learning_agents,
)
from streams.published import PublishedFindings
from streams.table_ttl import TableSweeper

log = logging.getLogger(__name__)

EMBED_BATCH = 32
R = TypeVar("R")
EMBED_WITHIN_S = 0.25


@dataclass
class PipelineDeps:
    """What the pipeline agents need, built once per worker by ``streams.app``."""

    emitter: Emitter
    milvus: MilvusSink
    embedder: Embedder
    embed_cache: EmbeddingCache
    analyzers: list[Analyzer]
    llm: LlmDeps | None
    escalate_risk: float
    near_lines: int = 3
    carry_text_risk: float | None = None
    published_ttl_days: float = 90.0
    learning: LearningSettings = field(default_factory=LearningSettings)
    posteriors: PosteriorView | None = None
    embed_nice: int = 10
    embed_executor: ThreadPoolExecutor = field(init=False)

    def __post_init__(self) -> None:
        self.embed_executor = ThreadPoolExecutor(
            max_workers=1,
            thread_name_prefix="embed",
            initializer=_lower_priority,
            initargs=(self.embed_nice,),
        )


def _lower_priority(nice: int) -> None:
    """Lower this thread's CPU priority (Linux: nice applies per thread)."""
    with contextlib.suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)


def _decode(deps: PipelineDeps, event: faust.EventT, kind: type[R]) -> R:
    """The event's value as a ``kind`` record, or a DecodeError for the dead-letter topic."""
    record = deps.emitter.codec.decode(event.value)
    if not isinstance(record, kind):
        raise DecodeError(f"expected {kind.__name__}, got {type(record).__name__}")
    return record


def register_pipeline_agents(app: faust.App, ch: Channels, deps: PipelineDeps) -> None:
    emit = deps.emitter
    published = PublishedFindings(
        app.Table("published_triage", default=None, partitions=ch.events.partitions)
    )
    # What was sent is forgotten after the TTL (see table_ttl).
    sweeper = TableSweeper(published.table, ttl_ms=deps.published_ttl_days * DAY_MS)

    @app.agent(ch.events, name="chunk")
    async def chunk(stream: faust.StreamT) -> None:
        async for event in handled_events(stream):

            async def work(event: faust.EventT = event) -> None:
                started = time.perf_counter()
                pr = _decode(deps, event, PullRequestEvent)
                chunks = chunk_event(pr)
                for c in chunks:
                    await emit.send(ch.chunks, c.key, c, parent=event)
                await emit.metric(
                    "chunk",
                    pr,
                    started=started,
                    items=len(chunks),
                )

            await guarded(emit, "chunk", event, work)

    @app.agent(ch.chunks, name="embed")
    async def embed(stream: faust.StreamT) -> None:
        async for events in handled_batches(stream, EMBED_BATCH, EMBED_WITHIN_S):
            chunks: list[CodeChunk] = []
            for event in events:
                try:
                    record = _decode(deps, event, CodeChunk)
                    chunks.append(record)
                except DecodeError as exc:
                    await emit.dead_letter("embed", exc, event)
            if chunks:
                await guarded(emit, "embed", events[-1], partial(_embed_batch, deps, chunks))

    @app.agent(ch.events, name="triage")
    async def triage(stream: faust.StreamT) -> None:
        async for event in handled_events(stream):
            sweeper.sweep(now_ms())

            async def work(event: faust.EventT = event) -> None:
                started = time.perf_counter()
                pr = _decode(deps, event, PullRequestEvent)
                result, found = await asyncio.to_thread(_triage, deps, pr)
                findings = await publish_calibrated(deps, ch, found, event)
                applied = published.resolved(pr.key, found, now_ms())
                for feedback in applied_feedback(pr, applied, published, now_ms()):
                    await emit.send(ch.feedback, feedback.key, feedback, parent=event)
                fresh, carried = published.unpublished(findings)
                published.describe(fresh, now_ms())
                for finding in fresh:
                    await emit.send(ch.findings, finding.key, finding, parent=event)
                published.remember(fresh, now_ms())
                await emit.send(ch.triaged, result.key, result, parent=event)
                escalated = sum(1 for v in result.chunks if v.escalate)
                await emit.metric(
                    "triage",
                    pr,
                    started=started,
                    items=len(fresh),
                    attrs={
                        "chunks": str(len(result.chunks)),
                        "escalated": str(escalated),
                        "findings": str(len(findings)),
                        "suppressed": str(len(found) - len(findings)),
                        "carried_over": str(carried),
                        "applied": str(len(applied)),
                    },
                )

            await guarded(emit, "triage", event, work)

    if deps.llm is None:
        log.info("deep analysis skipped: no LLM provider configured (CODEREVIEW_LLM__PROVIDER)")
    else:
        register_deep_review(app, ch, deps)

    register_learning_agents(
        app,
        ch,
        emit,
        [published] + ([deps.llm.published] if deps.llm and deps.llm.published else []),
        half_life_days=deps.learning.half_life_days,
    )


def _triage(deps: PipelineDeps, pr: PullRequestEvent) -> tuple[TriageResult, list[Finding]]:
    chunks = chunk_event(pr)
    files = {s.path: s.content for s in pr.files if s.content is not None}
    focus = focus_lines(chunks, near_lines=deps.near_lines)
    issues = [issue for analyzer in deps.analyzers for issue in analyzer.analyze(files, focus)]
    return triage_event(
        pr,
        chunks,
        issues,
        now_ms=now_ms(),
        escalate_risk=deps.escalate_risk,
        near_lines=deps.near_lines,
        carry_text_risk=deps.carry_text_risk,
    )


async def _embed_batch(deps: PipelineDeps, chunks: list[CodeChunk]) -> None:
    started = time.perf_counter()
    unique = {c.text_hash: c.text for c in chunks}
    uncached = [h for h in unique if deps.embed_cache.get(h) is None]
    known = await asyncio.to_thread(deps.milvus.known_vectors, uncached) if uncached else {}
    vectors, embedded = await asyncio.get_running_loop().run_in_executor(
        deps.embed_executor,
        partial(embed_cached, deps.embedder, list(unique.items()), deps.embed_cache, known),
    )
    await asyncio.to_thread(deps.milvus.write, [(c, vectors[c.text_hash]) for c in chunks])
    first = chunks[0]
    await deps.emitter.metric(
        "embed",
        first,
        started=started,
        items=len(chunks),
        attrs={"embedded": str(embedded), "from_store": str(len(known))},
    )
