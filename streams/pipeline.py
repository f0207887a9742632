"""The review pipeline's agents: wiring only.

Each agent takes an event, decodes it, calls processors, hands results to a
sink or the next topic, emits a metric, and routes failures to the
dead-letter topic through ``guarded``. Blocking work (linters, the embedding
model, store clients) runs in a thread so the event loop keeps heartbeating.

    scm.webhooks.raw -> normalize -> pr.events        (streams/ingest.py)
    pr.events  -> chunk  -> pr.chunks -> embed -> Milvus
    pr.events  -> triage -> pr.findings (cheap findings) + pr.triaged
    pr.triaged -> analyze (LLM, when configured) -> pr.findings
    review.feedback -> learn -> rule_feedback table

Triage reads ``pr.events`` rather than ``pr.chunks``: linters need whole
files, which chunks do not carry; it re-derives the same chunks (a pure,
cheap function) to attribute issues to them.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import TypeVar, cast

import faust

from processors.analysis import build_prompt, findings_from_answer, parse_answer
from processors.analyzers import Analyzer
from processors.chunking import chunk_event
from processors.embedding import Embedder, EmbeddingCache, embed_cached
from processors.triage import focus_lines, triage_event
from providers import LlmProvider
from providers.pricing import cost_usd
from schemas.errors import DecodeError
from schemas.records import (
    CodeChunk,
    FeedbackEvent,
    Finding,
    LlmUsage,
    PullRequestEvent,
    TriageResult,
)
from sinks.milvus import MilvusSink
from streams.channels import Channels
from streams.emitter import Emitter, guarded, now_ms

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
    provider: LlmProvider | None
    escalate_risk: float
    max_output_tokens: int
    prompt_budget_tokens: int = 6000
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
    rule_feedback = app.Table("rule_feedback", default=int, partitions=ch.feedback.partitions)

    @app.agent(ch.events, name="chunk")
    async def chunk(stream: faust.StreamT) -> None:
        async for event in stream.events():

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
        async for events in cast(faust.Stream, stream).take_events(
            EMBED_BATCH, within=EMBED_WITHIN_S
        ):
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
        async for event in stream.events():

            async def work(event: faust.EventT = event) -> None:
                started = time.perf_counter()
                pr = _decode(deps, event, PullRequestEvent)
                result, findings = await asyncio.to_thread(_triage, deps, pr)
                for finding in findings:
                    await emit.send(ch.findings, finding.key, finding, parent=event)
                await emit.send(ch.triaged, result.key, result, parent=event)
                escalated = sum(1 for v in result.chunks if v.escalate)
                await emit.metric(
                    "triage",
                    pr,
                    started=started,
                    items=len(findings),
                    attrs={"chunks": str(len(result.chunks)), "escalated": str(escalated)},
                )

            await guarded(emit, "triage", event, work)

    if deps.provider is None:
        log.info("deep analysis skipped: no LLM provider configured (CODEREVIEW_LLM__PROVIDER)")
    else:

        @app.agent(ch.triaged, name="analyze")
        async def analyze(stream: faust.StreamT) -> None:
            async for event in stream.events():
                await guarded(emit, "analyze", event, partial(_analyze, deps, ch, event))

    @app.agent(ch.feedback, name="learn")
    async def learn(stream: faust.StreamT) -> None:
        async for event in stream.events():

            async def work(event: faust.EventT = event) -> None:
                started = time.perf_counter()
                fb = _decode(deps, event, FeedbackEvent)
                counter = f"{fb.tenant}|{fb.repo}|{fb.rule_id}|{fb.verdict}"
                rule_feedback[counter] += 1
                await emit.metric(
                    "learn",
                    fb,
                    started=started,
                    received_at_ms=fb.at_ms,
                    items=1,
                    attrs={
                        "rule_id": fb.rule_id,
                        "verdict": fb.verdict,
                        "count": str(rule_feedback[counter]),
                    },
                )

            await guarded(emit, "learn", event, work)

    app.rule_feedback = rule_feedback  # type: ignore[attr-defined]


def _triage(deps: PipelineDeps, pr: PullRequestEvent) -> tuple[TriageResult, list[Finding]]:
    chunks = chunk_event(pr)
    files = {s.path: s.content for s in pr.files if s.content is not None}
    focus = focus_lines(chunks)
    issues = [issue for analyzer in deps.analyzers for issue in analyzer.analyze(files, focus)]
    return triage_event(pr, chunks, issues, now_ms=now_ms(), escalate_risk=deps.escalate_risk)


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


async def _analyze(deps: PipelineDeps, ch: Channels, event: faust.EventT) -> None:
    started = time.perf_counter()
    result = _decode(deps, event, TriageResult)
    escalated = [v for v in result.chunks if v.escalate]
    if not escalated or deps.provider is None:
        return
    context = await asyncio.to_thread(_related_context, deps, result, escalated)
    prompt = build_prompt(
        escalated, repo=result.repo, context=context, budget_tokens=deps.prompt_budget_tokens
    )
    provider = deps.provider
    ok, error, text, tokens_in, tokens_out, latency = True, None, "", 0, 0, 0.0
    try:
        completion = await provider.complete(
            prompt.system, prompt.user, max_tokens=deps.max_output_tokens
        )
        text, tokens_in, tokens_out = (
            completion.text,
            completion.input_tokens,
            completion.output_tokens,
        )
        latency = completion.latency_ms
    except Exception as exc:
        ok, error = False, f"{type(exc).__name__}: {exc}"
        raise
    finally:
        usage = LlmUsage(
            call_id=f"{result.event_id}:{prompt.version}:{provider.model}",
            event_id=result.event_id,
            tenant=result.tenant,
            repo=result.repo,
            pr_number=result.pr_number,
            provider=provider.name,
            model=provider.model,
            prompt_version=prompt.version,
            input_tokens=tokens_in,
            output_tokens=tokens_out,
            cost_usd=cost_usd(provider.model, tokens_in, tokens_out),
            latency_ms=latency,
            ok=ok,
            error=error,
            at_ms=now_ms(),
        )
        await deps.emitter.send(ch.metrics, "analyze", usage, parent=event)
    findings = findings_from_answer(
        parse_answer(text),
        _prompt_chunks(escalated, prompt.included_chunk_ids),
        result,
        model=provider.model,
        prompt_version=prompt.version,
        now_ms=now_ms(),
    )
    for finding in findings:
        await deps.emitter.send(ch.findings, finding.key, finding, parent=event)
    await deps.emitter.metric(
        "analyze",
        result,
        started=started,
        items=len(findings),
    )


def _prompt_chunks(verdicts: list, included: list[str]) -> list:
    keep = set(included)
    return [v for v in verdicts if v.chunk_id in keep]


def _related_context(deps: PipelineDeps, result: TriageResult, escalated: list) -> list[str]:
    """Related code from the SAME tenant and repo, from earlier PRs."""
    texts = [v.text for v in escalated[:3]]
    vectors, _ = embed_cached(
        deps.embedder,
        [(hashlib.sha256(t.encode()).hexdigest(), t) for t in texts],
        deps.embed_cache,
        {},
    )
    context: list[str] = []
    for vec in vectors.values():
        for hit in deps.milvus.search(
            vec, tenant=result.tenant, repo=result.repo, limit=3, exclude_pr=result.pr_number
        ):
            context.append(f"{hit.get('path')}:{hit.get('start_line')} {hit.get('symbol') or ''}")
    return context
