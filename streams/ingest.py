"""The normalize agent: raw webhooks of every source into PR and feedback events.

    scm.webhooks.raw -> normalize -> pr.events (a PR revision to review)
                                  -> review.feedback (feedback joined by fingerprint)

A redelivery (same delivery id within ``dedupe_ttl_s``) is dropped and
counted. A delivery is remembered only after it was handled, so one that
failed (and went to the dead-letter topic) can be replayed by
``codereview dlq replay`` once the bug is fixed. Events the product does not
act on are counted with their reason, never errored.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import faust

from processors import github_events
from processors.event_size import fit_event
from processors.scm import SOURCES, FeedbackSignal, fingerprint_marker
from schemas.errors import ProcessorError
from schemas.records import FeedbackEvent, RawWebhook
from sources.scm_api import ScmApi
from streams.acks import handled_events
from streams.channels import Channels
from streams.emitter import Emitter, Subject, guarded, now_ms
from streams.table_ttl import TableSweeper, stamp

log = logging.getLogger(__name__)


@dataclass
class IngestDeps:
    emitter: Emitter
    scm_api: Callable[[str, str], ScmApi]  # (source, tenant) -> client
    dedupe_ttl_s: float
    max_message_bytes: int = 900_000


def register_ingest_agents(app: faust.App, ch: Channels, deps: IngestDeps) -> None:
    deliveries = app.Table("deliveries", default=None, partitions=ch.raw.partitions)
    ttl_ms = deps.dedupe_ttl_s * 1000
    # Delivery ids older than the TTL are forgotten, from inside the stream (see table_ttl).
    sweeper = TableSweeper(deliveries, ttl_ms=ttl_ms, every_ms=max(60_000.0, ttl_ms / 10))

    @app.agent(ch.raw, name="normalize")
    async def normalize(stream: faust.StreamT) -> None:
        async for event in handled_events(stream):
            sweeper.sweep(now_ms())
            await guarded(
                deps.emitter, "normalize", event, partial(_normalize, deps, ch, deliveries, event)
            )


async def _normalize(deps: IngestDeps, ch: Channels, deliveries: Any, event: faust.EventT) -> None:
    started = time.perf_counter()
    raw = deps.emitter.codec.decode(event.value)
    if not isinstance(raw, RawWebhook):
        raise ProcessorError(f"expected RawWebhook, got {type(raw).__name__}")
    about = Subject(raw.delivery_id, raw.tenant, "", 0, raw.received_at_ms)
    seen = (deliveries.get(raw.delivery_id) or {}).get("at_ms")
    if seen is not None and raw.received_at_ms - seen < deps.dedupe_ttl_s * 1000:
        await deps.emitter.metric(
            "redelivery_dropped", about, started=started, items=1, attrs={"source": raw.source}
        )
        return
    spec = SOURCES.get(raw.source)
    if spec is None:
        raise ProcessorError(f"no normalizer for source {raw.source!r}")
    normalized = spec.parse(raw.headers, raw.body, tenant=raw.tenant)
    ref = normalized.pull_request
    if ref is not None:
        api = deps.scm_api(raw.source, raw.tenant)
        diff, files = await api.fetch_event_material(ref)
        pr, shed = fit_event(
            github_events.to_event(
                ref, source=raw.source, diff=diff, files=files, received_at_ms=raw.received_at_ms
            ),
            deps.max_message_bytes,
        )
        if shed:
            log.info("PR %s too large for one message; gave up %s", pr.key, ", ".join(shed))
        await deps.emitter.send(ch.events, pr.key, pr, parent=event)
        about = Subject(pr.event_id, pr.tenant, pr.repo, pr.pr_number, pr.received_at_ms)
    joined = 0
    for signal in normalized.feedback:
        feedback = feedback_event(signal, raw)
        if feedback is not None:
            await deps.emitter.send(ch.feedback, feedback.key, feedback, parent=event)
            joined += 1
    if normalized.ignored_reason:
        log.info(
            "ignored %s delivery %s: %s", raw.source, raw.delivery_id, normalized.ignored_reason
        )
    deliveries[raw.delivery_id] = stamp({"at_ms": raw.received_at_ms})
    await deps.emitter.metric(
        "normalize" if ref is not None or normalized.feedback else "ignored",
        about,
        started=started,
        items=1,
        attrs={
            "source": raw.source,
            "event": raw.event_type,
            "feedback": str(len(normalized.feedback)),
            "feedback_joined": str(joined),
            "reason": normalized.ignored_reason or "",
        },
    )


def feedback_event(signal: FeedbackSignal, raw: RawWebhook) -> FeedbackEvent | None:
    """A FeedbackEvent when the signal names one of our findings (its hidden marker).

    A reply in a thread carries no marker of its own; joining it through the
    thread's first comment needs the comment ids the publishers record, so
    until then such signals are counted as not joined.
    """
    fingerprint = fingerprint_marker(signal.body_excerpt)
    if fingerprint is None:
        return None
    return FeedbackEvent(
        event_id=f"{raw.delivery_id}:{signal.comment_id}",
        fingerprint=fingerprint,
        tenant=raw.tenant,
        repo=signal.repo,
        pr_number=signal.pr_number,
        rule_id="",
        verdict=signal.verdict,
        signal=signal.signal,
        actor=signal.actor,
        at_ms=raw.received_at_ms,
    )
