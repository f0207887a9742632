"""Feedback in, calibrated confidence out: the learning agents and the posterior view.

    review.feedback  (keyed by PR)
      -> learn: join to the finding by fingerprint (its rule, from the PR's
         published-findings tables, which live on the same partition)
      -> learning.feedback  (keyed by tenant)
      -> learn_posteriors: Beta posterior per rule in the ``posteriors`` table
    <app>-posteriors-changelog
      -> PosteriorView in every pipeline worker: all posteriors, in memory

Why two hops: a PR's feedback arrives on the PR's partition, but a posterior
is per (tenant, repo, rule) and gathers feedback from every PR. Re-keying by
tenant puts each posterior on exactly one partition, so its updates are
ordered read-modify-writes in one agent. Why the view: triage of a PR on any
partition needs every posterior of its tenant, and Faust's GlobalTable is
known to miss updates with several workers; a plain consumer assigned every
partition of the changelog (the table's own durable copy) sees all of them.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
import time
from collections.abc import Mapping
from typing import Any

import faust
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from processors.calibration import calibrate
from processors.learning import Posterior, posterior_keys
from schemas.errors import DecodeError
from schemas.records import FeedbackEvent, Finding, PullRequestEvent
from streams.acks import handled_events
from streams.channels import Channels
from streams.emitter import Emitter, guarded, now_ms

log = logging.getLogger(__name__)

_VERDICTS = {"ACCEPTED": True, "REJECTED": False}


def register_learning_agents(
    app: faust.App,
    ch: Channels,
    emitter: Emitter,
    finding_tables: list[Any],
    *,
    half_life_days: float,
) -> None:
    """The two learning agents and their ``posteriors`` table.

    ``finding_tables`` are the published-findings tables (``PublishedFindings``)
    whose entries carry each finding's rule, category and severity.
    """
    posteriors = app.Table("posteriors", default=None, partitions=ch.learning.partitions)

    @app.agent(ch.feedback, name="learn")
    async def learn(stream: faust.StreamT) -> None:
        async for event in handled_events(stream):

            async def work(event: faust.EventT = event) -> None:
                started = time.perf_counter()
                fb = _feedback(emitter, event)
                rule_id = fb.rule_id or _rule_of(fb, finding_tables)
                joined = bool(rule_id)
                if joined and fb.verdict in _VERDICTS:
                    enriched = dataclasses.replace(fb, rule_id=rule_id)
                    await emitter.send(ch.learning, fb.tenant, enriched, parent=event)
                await emitter.metric(
                    "learn",
                    fb,
                    started=started,
                    received_at_ms=fb.at_ms,
                    items=1,
                    attrs={"rule_id": rule_id, "verdict": fb.verdict, "joined": str(joined)},
                )

            await guarded(emitter, "learn", event, work)

    @app.agent(ch.learning, name="learn_posteriors")
    async def learn_posteriors(stream: faust.StreamT) -> None:
        async for event in handled_events(stream):

            async def work(event: faust.EventT = event) -> None:
                started = time.perf_counter()
                fb = _feedback(emitter, event)
                accepted = _VERDICTS[fb.verdict]
                now = now_ms()
                # Rule-level posteriors (this repo, and tenant-wide): feedback names a
                # rule, not a category, so the category-level key is not taught here.
                keys = [
                    k
                    for k in posterior_keys(fb.tenant, fb.repo, fb.rule_id, "")
                    if k.startswith("rule|")
                ]
                for key in keys:
                    raw = posteriors.get(key)
                    current = Posterior.from_json(raw) if raw else Posterior(0.0, 0.0, now)
                    posteriors[key] = current.observe(accepted, now, half_life_days).to_json()
                await emitter.metric(
                    "posterior",
                    fb,
                    started=started,
                    received_at_ms=fb.at_ms,
                    items=len(keys),
                    attrs={"rule_id": fb.rule_id, "verdict": fb.verdict},
                )

            await guarded(emitter, "learn_posteriors", event, work)


def _feedback(emitter: Emitter, event: faust.EventT) -> FeedbackEvent:
    record = emitter.codec.decode(event.value)
    if not isinstance(record, FeedbackEvent):
        raise DecodeError(f"expected FeedbackEvent, got {type(record).__name__}")
    return record


def _rule_of(fb: FeedbackEvent, finding_tables: list[Any]) -> str:
    """The rule of the finding ``fb`` is about, from the PR's published findings."""
    for published in finding_tables:
        info = published.info(fb.tenant, fb.repo, fb.pr_number, fb.fingerprint)
        if info and info.get("rule_id"):
            return str(info["rule_id"])
    return ""


class PosteriorView:
    """Every posterior, kept current from the ``posteriors`` table's changelog topic.

    A daemon thread reads all partitions from the beginning with a plain
    consumer (no group: nothing to rebalance, nothing committed) and applies
    each record; ``snapshot()`` is what triage calibrates against. Faust
    writes table keys and values as JSON; a value is our posterior's JSON
    text, so it is decoded twice; a tombstone (None) deletes the key.
    """

    def __init__(self, kafka_config: Mapping[str, str], topic: str) -> None:
        self._config = {
            **kafka_config,
            "group.id": f"posterior-view-{id(self)}",
            "enable.auto.commit": False,
            "fetch.wait.max.ms": 50,
        }
        self.topic = topic
        self._data: dict[str, Posterior] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.applied = 0

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="posteriors", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def snapshot(self) -> dict[str, Posterior]:
        with self._lock:
            return dict(self._data)

    def _run(self) -> None:
        consumer = Consumer(self._config)
        try:
            while not self._stop.is_set():
                metadata = consumer.list_topics(self.topic, timeout=5)
                partitions = metadata.topics.get(self.topic)
                if partitions is not None and partitions.partitions:
                    consumer.assign(
                        [
                            TopicPartition(self.topic, p, OFFSET_BEGINNING)
                            for p in partitions.partitions
                        ]
                    )
                    break
                self._stop.wait(1.0)
            while not self._stop.is_set():
                for message in consumer.consume(500, timeout=0.2):
                    if message.error() is None:
                        self._apply(message.key(), message.value())
        except Exception:  # a broken view must not kill the worker: triage uses priors
            log.exception("posterior view stopped; triage falls back to static confidence")
        finally:
            consumer.close()

    def _apply(self, key: bytes | None, value: bytes | None) -> None:
        if key is None:
            return
        name = json.loads(key)
        with self._lock:
            if value is None:
                self._data.pop(name, None)
            else:
                self._data[name] = Posterior.from_json(json.loads(value))
            self.applied += 1


async def publish_calibrated(
    deps: Any, ch: Channels, findings: list[Finding], parent: faust.EventT
) -> list[Finding]:
    """The findings with learned confidence; the suppressed ones go out as records.

    ``deps`` is the worker's ``PipelineDeps`` (its emitter, learning settings
    and posterior view).
    """
    settings = deps.learning
    tenant = findings[0].tenant if findings else ""
    kept, held = calibrate(
        findings,
        deps.posteriors.snapshot() if deps.posteriors is not None else {},
        now_ms=now_ms(),
        threshold=settings.thresholds.get(tenant, settings.default_threshold),
        half_life_days=settings.half_life_days,
        prior_strength=settings.prior_strength,
        min_evidence=settings.min_evidence,
    )
    for record in held:
        await deps.emitter.send(ch.metrics, "suppression", record, parent=parent)
    return kept


def applied_feedback(
    pr: PullRequestEvent, gone: list[str], published: Any, at_ms: int
) -> list[FeedbackEvent]:
    """ACCEPTED feedback ("applied") for findings the new revision of ``pr`` no longer has.

    Its fingerprint hashes the flagged code, so a finding that vanished on
    the next push had its code changed or removed: the author acted on it.
    Only findings that were published count (a suppressed one was never seen).
    """
    out: list[FeedbackEvent] = []
    for fingerprint in gone:
        info = published.info(pr.tenant, pr.repo, pr.pr_number, fingerprint)
        if not info:
            continue
        out.append(
            FeedbackEvent(
                event_id=f"applied:{fingerprint}:{pr.head_sha}",
                fingerprint=fingerprint,
                tenant=pr.tenant,
                repo=pr.repo,
                pr_number=pr.pr_number,
                rule_id=str(info.get("rule_id", "")),
                verdict="ACCEPTED",
                signal="applied",
                actor=pr.author,
                at_ms=at_ms,
            )
        )
    return out
