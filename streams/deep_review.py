"""The analyze agent: escalated chunks to the strong model, borderline ones via the cheap.

    pr.triaged -> [gate: cheap model picks among borderline chunks]
               -> redact -> context from Milvus (same tenant and repo)
               -> cache lookup per chunk -> strong model on the misses, packed by
                  priority into the token budget (several calls for a large PR)
               -> validate (one repair retry) -> findings -> pr.findings

What makes this cheap on the second push of a PR: every chunk's answer is
cached by (prompt version, model, redacted text, context) in a Faust table,
so only changed chunks cost a call, and findings already on the topic with
the same lines are not sent again (``streams.published``).

What happens when the model is not there: the provider wrapper retries
(honouring Retry-After) and a circuit breaker opens after repeated failures.
Either way the PR keeps its triage findings, a metric says deep analysis fell
back and why, and the event goes to the dead-letter topic so it can be
replayed once the provider is back (a budget stop is a decision, not a
failure: it is counted, not dead-lettered).
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import faust

from processors.analysis import (
    PROMPT_VERSION,
    ModelFinding,
    Prompt,
    build_prompt,
    findings_from_answer,
    parse_answer,
    place,
    repair_message,
)
from processors.budget import BudgetDecision
from processors.context import touched_symbols, unique_snippets
from processors.gate import GATE_PROMPT_VERSION, build_gate_question, parse_gate_answer
from processors.learning import prompt_variant
from processors.llm_cache import DAY_MS, CachedReview, cached_review, review_cache_key
from processors.redaction import redact
from providers import Completion, LlmProvider, ProviderError
from providers.circuit import CircuitOpenError
from providers.pricing import cost_usd
from schemas.errors import DecodeError, ProcessorError
from schemas.records import ChunkVerdict, Finding, LlmUsage, TriageResult
from streams.acks import handled_events
from streams.budgets import Budgets
from streams.channels import Channels
from streams.emitter import guarded, now_ms
from streams.learning import publish_calibrated
from streams.published import PublishedFindings
from streams.table_ttl import TableSweeper, stamp, stamp_json

log = logging.getLogger(__name__)

NEIGHBOURS_PER_CHUNK = 2


@dataclass
class LlmDeps:
    """The model side of a pipeline worker, built by ``streams.app`` from settings."""

    strong: LlmProvider
    cheap: LlmProvider | None
    budgets: Budgets
    max_output_tokens: int = 1024
    prompt_budget_tokens: int = 6000
    gate_risk: float = 0.3
    cache_ttl_days: float = 90.0
    max_calls_per_pr: int = 4
    stream: bool = False
    published: PublishedFindings | None = None  # set when the agent is registered
    # Review prompt variants under an A/B test; a PR always gets the same one.
    prompt_variants: list[str] = field(default_factory=list)


@dataclass
class _Review:
    """One PR's deep analysis in progress: what was asked, found and spent."""

    result: TriageResult
    event: faust.EventT
    version: str = PROMPT_VERSION
    findings: list[Finding] = field(default_factory=list)
    cache_hits: int = 0
    calls: int = 0
    dropped: int = 0
    fallback: str = ""
    failure: Exception | None = None
    _shown: dict[str, ChunkVerdict] = field(default_factory=dict)

    def shown(self, verdict: ChunkVerdict) -> ChunkVerdict:
        """The chunk as a provider may see it: secrets replaced, lines where they were.

        Redacted once per review: a borderline chunk the gate picks is shown
        to both tiers.
        """
        if verdict.chunk_id not in self._shown:
            text = redact(verdict.text).text
            self._shown[verdict.chunk_id] = dataclasses.replace(verdict, text=text)
        return self._shown[verdict.chunk_id]


def register_deep_review(app: faust.App, ch: Channels, deps: Any) -> None:
    """The analyze agent, its cache and published-findings tables, and their sweepers.

    ``deps`` is the worker's ``PipelineDeps`` with ``llm`` set.
    """
    llm: LlmDeps = deps.llm
    partitions = ch.triaged.partitions
    cache = app.Table("llm_cache", default=None, partitions=partitions)
    published = PublishedFindings(app.Table("published_llm", default=None, partitions=partitions))
    llm.published = published
    llm.budgets.attach(app.Table("llm_spend", default=None, partitions=partitions))

    # Cached answers and sent fingerprints past their TTL are forgotten (see table_ttl).
    ttl_ms = llm.cache_ttl_days * DAY_MS
    sweepers = [TableSweeper(cache, ttl_ms=ttl_ms), TableSweeper(published.table, ttl_ms=ttl_ms)]

    @app.agent(ch.triaged, name="analyze")
    async def analyze(stream: faust.StreamT) -> None:
        async for event in handled_events(stream):
            for sweeper in sweepers:
                sweeper.sweep(now_ms())

            async def work(event: faust.EventT = event) -> None:
                await _review(deps, llm, ch, cache, published, event)

            await guarded(deps.emitter, "analyze", event, work)


async def _review(
    deps: Any,
    llm: LlmDeps,
    ch: Channels,
    cache: Any,
    published: PublishedFindings,
    event: faust.EventT,
) -> None:
    started = time.perf_counter()
    result = deps.emitter.codec.decode(event.value)
    if not isinstance(result, TriageResult):
        raise DecodeError(f"expected TriageResult, got {type(result).__name__}")
    version = PROMPT_VERSION
    if llm.prompt_variants:
        version = prompt_variant(result.key, llm.prompt_variants)
    review = _Review(result=result, event=event, version=version)
    chosen = [v for v in result.chunks if v.escalate and v.text]
    borderline = [v for v in result.chunks if not v.escalate and v.text and v.risk >= llm.gate_risk]
    if borderline and llm.cheap is not None:
        chosen += await _gate(deps, llm, ch, cache, review, borderline)
    if chosen:
        await _analyze(deps, llm, ch, cache, review, chosen)
    calibrated = await publish_calibrated(deps, ch, review.findings, event)
    fresh, carried = published.unpublished(calibrated)
    published.describe(fresh, now_ms())
    for finding in fresh:
        await deps.emitter.send(ch.findings, finding.key, finding, parent=event)
    published.remember(fresh, now_ms())
    attrs = {
        "chunks": str(len(chosen)),
        "calls": str(review.calls),
        "cache_hits": str(review.cache_hits),
        "carried_over": str(carried),
        "suppressed": str(len(review.findings) - len(calibrated)),
        "dropped": str(review.dropped),
    }
    if review.fallback:
        attrs["fallback"] = review.fallback
    await deps.emitter.metric(
        "analyze", result, started=started, items=len(fresh), ok=not review.fallback, attrs=attrs
    )
    if review.failure is not None:
        # Dead-letter the event so it can be replayed; what succeeded is sent and cached.
        raise review.failure


async def _gate(
    deps: Any,
    llm: LlmDeps,
    ch: Channels,
    cache: Any,
    review: _Review,
    borderline: list[ChunkVerdict],
) -> list[ChunkVerdict]:
    """The borderline chunks the cheap model thinks deserve the strong one.

    Its decision is cached per chunk text like a review, so an unchanged
    borderline chunk on the next push costs no gate call either.
    """
    assert llm.cheap is not None
    result, now = review.result, now_ms()
    scope = f"{result.tenant}/{result.repo}"
    chosen: list[ChunkVerdict] = []
    ask: dict[str, tuple[ChunkVerdict, ChunkVerdict, str]] = {}
    for verdict in borderline:
        shown = review.shown(verdict)
        key = review_cache_key(GATE_PROMPT_VERSION, llm.cheap.model, scope, shown.text, [])
        decision = _fresh(cache.get(key), now, llm.cache_ttl_days)
        if decision is None:
            ask[verdict.chunk_id] = (verdict, shown, key)
        elif decision.get("picked"):
            chosen.append(verdict)
    if not ask:
        return chosen
    question = build_gate_question(
        [shown for _, shown, _ in ask.values()],
        repo=result.repo,
        budget_tokens=llm.prompt_budget_tokens,
    )
    if not question.chunk_ids:
        return chosen
    completion = await _call(
        deps, llm, ch, review, llm.cheap, question.system, question.user,
        prompt_version=GATE_PROMPT_VERSION, tier="cheap", max_tokens=256,
    )  # fmt: skip
    if completion is None:
        return chosen
    try:
        picked = set(parse_gate_answer(completion.text, question.chunk_ids))
    except ProcessorError as exc:
        log.info("gate answer unusable for %s: %s", result.event_id, exc)
        return chosen
    for chunk_id in question.chunk_ids:
        verdict, _, key = ask[chunk_id]
        cache[key] = json.dumps(stamp({"at_ms": now, "picked": chunk_id in picked}))
        if chunk_id in picked:
            chosen.append(verdict)
    return chosen


def _fresh(value: str | None, now: int, ttl_days: float) -> dict[str, Any] | None:
    """A cache entry's JSON when present and younger than the TTL, else None."""
    if not value:
        return None
    data: dict[str, Any] = json.loads(value)
    return data if now - int(data.get("at_ms", 0)) < ttl_days * DAY_MS else None


async def _analyze(
    deps: Any,
    llm: LlmDeps,
    ch: Channels,
    cache: Any,
    review: _Review,
    chosen: list[ChunkVerdict],
) -> None:
    result = review.result
    # Chunks the gate picked were not escalated by triage; here every one is.
    redacted = {v.chunk_id: dataclasses.replace(review.shown(v), escalate=True) for v in chosen}
    context = await asyncio.to_thread(_context, deps, result, list(redacted.values()))
    model = llm.strong.model
    keys: dict[str, str] = {}
    todo: list[ChunkVerdict] = []
    found: list[ModelFinding] = []
    now = now_ms()
    for verdict in chosen:
        shown = redacted[verdict.chunk_id]
        key = review_cache_key(
            review.version,
            model,
            f"{result.tenant}/{result.repo}",
            shown.text,
            context[verdict.chunk_id],
        )
        keys[verdict.chunk_id] = key
        hit = cache.get(key)
        entry = CachedReview.from_json(hit) if hit else None
        if entry is not None and entry.is_fresh(now, llm.cache_ttl_days):
            review.cache_hits += 1
            found.extend(entry.rebased(verdict))
            await _usage(deps, ch, review, llm.strong, review.version, "strong", cache_hit=True)
        else:
            todo.append(verdict)
    by_id = {v.chunk_id: v for v in chosen}
    while todo and not review.fallback:
        if review.calls >= llm.max_calls_per_pr:
            review.dropped += len(todo)
            break
        snippets = list(dict.fromkeys(s for v in todo for s in context[v.chunk_id]))
        prompt = build_prompt(
            [redacted[v.chunk_id] for v in todo],
            repo=result.repo,
            context=snippets,
            budget_tokens=llm.prompt_budget_tokens,
            version=review.version,
        )
        if not prompt.included_chunk_ids:
            review.dropped += len(todo)  # each alone is larger than the budget: never cut
            break
        answer = await _ask(deps, llm, ch, review, prompt)
        asked = [by_id[i] for i in prompt.included_chunk_ids]
        todo = [v for v in todo if v.chunk_id in set(prompt.dropped_chunk_ids)]
        if answer is None:
            continue
        found.extend(answer)
        _store(cache, keys, asked, answer, now_ms())
    review.findings = findings_from_answer(
        found, chosen, result, model=model, prompt_version=review.version, now_ms=now_ms()
    )


def _store(
    cache: Any, keys: dict[str, str], asked: list[ChunkVerdict], answer: list[ModelFinding], at: int
) -> None:
    """Cache the answer per chunk asked, each finding under the one chunk it belongs to."""
    per_chunk: dict[str, list[ModelFinding]] = {v.chunk_id: [] for v in asked}
    for item in answer:
        placed = place(item, asked)
        if placed is not None:
            per_chunk[placed[0].chunk_id].append(item)
    for verdict in asked:
        entry = cached_review(verdict, per_chunk[verdict.chunk_id], at)
        cache[keys[verdict.chunk_id]] = stamp_json(entry.to_json())


async def _ask(
    deps: Any, llm: LlmDeps, ch: Channels, review: _Review, prompt: Prompt
) -> list[ModelFinding] | None:
    """One review call and, when its answer does not validate, one repair call."""
    completion = await _call(
        deps, llm, ch, review, llm.strong, prompt.system, prompt.user,
        prompt_version=prompt.version, tier="strong", max_tokens=llm.max_output_tokens,
    )  # fmt: skip
    if completion is None:
        return None
    try:
        return parse_answer(completion.text)
    except ProcessorError as exc:
        user = repair_message(prompt.user, completion.text, str(exc))
    repaired = await _call(
        deps, llm, ch, review, llm.strong, prompt.system, user,
        prompt_version=prompt.version, tier="strong", max_tokens=llm.max_output_tokens,
    )  # fmt: skip
    if repaired is None:
        return None
    try:
        return parse_answer(repaired.text)
    except ProcessorError as exc:
        review.failure = ProcessorError(f"model answer invalid after one repair: {exc}")
        return None


async def _call(
    deps: Any,
    llm: LlmDeps,
    ch: Channels,
    review: _Review,
    provider: LlmProvider,
    system: str,
    user: str,
    *,
    prompt_version: str,
    tier: str,
    max_tokens: int,
) -> Completion | None:
    """One model call within budget; None (and a fallback reason) when it cannot be made."""
    result = review.result
    partition = _partition(review.event)
    decision = llm.budgets.check(
        result.tenant, result.repo, provider.model, system + user, max_tokens,
        partition=partition, now_ms=now_ms(),
    )  # fmt: skip
    if decision.alerts:
        for scope in decision.alerts:
            await deps.emitter.metric(
                "budget_alert", result, started=time.perf_counter(), items=1,
                attrs={"scope": scope, "spent_usd": f"{decision.spent_usd.get(scope, 0):.4f}"},
            )  # fmt: skip
    if decision.verdict == BudgetDecision.STOP:
        review.fallback = f"budget: {decision.reason}"
        return None
    review.calls += 1
    try:
        completion = await provider.complete(system, user, max_tokens=max_tokens, stream=llm.stream)
    except ProviderError as exc:  # retries spent, or the breaker open (CircuitOpenError)
        open_circuit = isinstance(exc, CircuitOpenError)
        review.fallback = "circuit open" if open_circuit else f"provider: {exc}"[:200]
        review.failure = exc
        await _usage(deps, ch, review, provider, prompt_version, tier, error=str(exc))
        return None
    usage = await _usage(deps, ch, review, provider, prompt_version, tier, completion=completion)
    llm.budgets.spend(
        result.tenant, result.repo, usage.cost_usd,
        usage.input_tokens + usage.output_tokens, partition=partition, now_ms=now_ms(),
    )  # fmt: skip
    return completion


async def _usage(
    deps: Any,
    ch: Channels,
    review: _Review,
    provider: LlmProvider,
    prompt_version: str,
    tier: str,
    *,
    completion: Completion | None = None,
    cache_hit: bool = False,
    error: str | None = None,
) -> LlmUsage:
    """One LlmUsage row: a call made, failed, or answered from the cache (cost 0)."""
    result = review.result
    tokens_in = completion.input_tokens if completion else 0
    tokens_out = completion.output_tokens if completion else 0
    n = review.calls if not cache_hit else review.cache_hits
    kind = "cache" if cache_hit else tier
    usage = LlmUsage(
        call_id=f"{result.event_id}:{prompt_version}:{provider.model}:{kind}:{n}",
        event_id=result.event_id,
        tenant=result.tenant,
        repo=result.repo,
        pr_number=result.pr_number,
        provider=provider.name,
        model=provider.model,
        prompt_version=prompt_version,
        input_tokens=tokens_in,
        output_tokens=tokens_out,
        cost_usd=cost_usd(provider.model, tokens_in, tokens_out),
        latency_ms=completion.latency_ms if completion else 0.0,
        ok=error is None,
        at_ms=now_ms(),
        cache_hit=cache_hit,
        error=error,
        tier=tier,
    )
    await deps.emitter.send(ch.metrics, "analyze", usage, parent=review.event)
    return usage


def _partition(event: faust.EventT) -> int:
    """The input partition: budgets are kept per partition (``streams.budgets``)."""
    return int(getattr(event.message, "partition", 0) or 0)


def _context(deps: Any, result: TriageResult, chunks: list[ChunkVerdict]) -> dict[str, list[str]]:
    """Per chunk: definitions of the symbols it calls, then its nearest neighbours.

    From the SAME tenant and repo only, and never from this PR (its own older
    pushes would only echo the code under review). Redacted like the chunks.
    """
    from processors.embedding import embed_cached

    shown = {f"{c.path}:{c.start_line}" for c in chunks}
    texts = {hashlib.sha256(c.text.encode()).hexdigest(): c.text for c in chunks}
    vectors, _ = embed_cached(deps.embedder, list(texts.items()), deps.embed_cache, {})
    out: dict[str, list[str]] = {}
    for chunk in chunks:
        rows = deps.milvus.definitions(
            touched_symbols(chunk),
            tenant=result.tenant,
            repo=result.repo,
            exclude_pr=result.pr_number,
        )
        vector = vectors[hashlib.sha256(chunk.text.encode()).hexdigest()]
        rows += deps.milvus.search(
            vector,
            tenant=result.tenant,
            repo=result.repo,
            limit=NEIGHBOURS_PER_CHUNK,
            exclude_pr=result.pr_number,
        )
        out[chunk.chunk_id] = [
            redact(s).text for s in unique_snippets(rows, skip_paths_lines=shown)
        ]
    return out
