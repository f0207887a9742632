"""The publish agents: findings become review comments on each SCM, each exactly once.

``publish`` reads ``pr.findings`` in batches, groups them by PR and posts
each PR's new findings as one review (or as few calls as its SCM allows)
through that SCM's publisher (``sinks/scm/``). ``publish_feedback`` reads
``review.feedback``: an "applied" verdict (the flagged code is gone on the
next push) resolves the finding's thread, and a rejection (a thumbs-down, a
dismissed thread) makes sure the finding is never posted on that PR again.

Exactly once, as users see it, rests on two things:

- A Faust table, ``published_comments``, keyed ``"<pr key>|<fingerprint>"``,
  records each comment's state: ``pending`` (a post is in flight),
  ``posted``, ``resolved`` or ``dismissed``, with the SCM's comment and
  thread ids. Both input topics are keyed by PR, so one PR's findings and
  feedback are on the same partition as its table entries.
- The marker every comment carries (``processors.publishing.marker``). When
  the table cannot be trusted, the publisher reads the PR's comments back
  and takes what it finds as posted: on the first batch of a PR this
  process sees that the table says was worked on before (another worker,
  or this one before a restart), when an entry is still ``pending`` (a
  crash between a post and the table write; "pending" is flushed to the
  changelog before the post), and after every failed post (a 5xx may come
  from a server that did post). A PR the table has never seen costs no
  read.

A post that still fails after ``max_attempts`` is dead-lettered with each
finding's original bytes, and its entries stay ``pending``, so a replay
reconciles before posting. Posting is per repo "live" or "dry-run" (log and
count only; the default), see ``PublishSettings``.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
import weakref
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import faust
from faust import streams as faust_streams

from codereview.settings import PublishSettings
from processors.backoff import full_jitter
from processors.learning import DAY_MS
from processors.publishing import CheckPolicy, conclusion, render, summary, to_post
from schemas.errors import DecodeError, ProcessorError
from schemas.records import FeedbackEvent, Finding, pr_key
from sinks.scm.base import PostedComment, PullRequestTarget, ScmPublisher
from sources.github_api import SourceFetchError
from streams.acks import handled_batches, handled_events
from streams.channels import Channels
from streams.emitter import Emitter, guarded, now_ms
from streams.table_ttl import TableSweeper, stamp

log = logging.getLogger(__name__)

TABLE = "published_comments"
# SCMs whose comments can carry a one-click suggestion block.
SUGGESTING_SOURCES = frozenset({"github", "gitlab", "gitea", "forgejo"})
# Feedback that means "do not show me this again" on this PR.
DISMISSING_SIGNALS = frozenset({"dismissed", "reaction", "reply", "cli", "api"})


async def _no_flush() -> None:
    return None


@dataclass
class PublishDeps:
    emitter: Emitter
    publisher_for: Callable[[str, str], ScmPublisher]  # (source, tenant) -> publisher
    settings: PublishSettings
    # Makes table writes durable (the Faust producer's flush); a no-op in unit tests.
    flush: Callable[[], Awaitable[None]] = _no_flush
    rng: random.Random = field(default_factory=random.Random)


class CommentLedger:
    """A view over the ``published_comments`` table: what each PR shows of ours.

    Per finding ``"<pr>|<fp>"``: ``{"state", "comment_id", "thread_id", "at_ms"}``.
    Per PR ``"<pr>"``: where it lives (``source``, ``head_sha``) and, for the
    current head, the check run id and every finding's severity, so a later
    batch's check conclusion still counts the earlier ones.
    """

    def __init__(self, table: Any) -> None:
        self.table = table

    def entry(self, pr: str, fingerprint: str) -> dict[str, Any]:
        return dict(self.table.get(f"{pr}|{fingerprint}") or {})

    def state(self, pr: str, fingerprint: str) -> str:
        return str(self.entry(pr, fingerprint).get("state", ""))

    def set(self, pr: str, fingerprint: str, now: int, **fields: Any) -> None:
        entry = self.entry(pr, fingerprint)
        entry.update(fields, at_ms=now)
        self.table[f"{pr}|{fingerprint}"] = stamp(entry)

    def record(self, pr: str, found: dict[str, PostedComment], now: int) -> None:
        """Take comments read back from (or just created on) the SCM as posted."""
        for fingerprint, posted in found.items():
            if self.state(pr, fingerprint) == "dismissed":
                continue  # a dismissal outranks what the SCM shows
            state = "resolved" if posted.resolved else "posted"
            self.set(
                pr,
                fingerprint,
                now,
                state=state,
                comment_id=posted.comment_id,
                thread_id=posted.thread_id,
                on_file=posted.on_file,
            )

    def pr_info(self, pr: str) -> dict[str, Any]:
        return dict(self.table.get(pr) or {})

    def set_pr_info(self, pr: str, info: dict[str, Any], now: int) -> None:
        self.table[pr] = stamp({**info, "at_ms": now})


async def publish_pr(
    deps: PublishDeps,
    ledger: CommentLedger,
    reconciled: set[str],
    findings: Sequence[Finding],
) -> dict[str, int]:
    """Post the new findings of ONE PR; counts of what happened (for the metric).

    Raises after ``max_attempts`` failed posts (the caller dead-letters).
    """
    settings = deps.settings
    latest = max(findings, key=lambda f: f.created_at_ms)
    pr = latest.key
    if not latest.source:
        raise ProcessorError(f"finding of {pr} names no source: no SCM to post it to")
    target = PullRequestTarget(
        latest.source, latest.tenant, latest.repo, latest.pr_number, latest.head_sha
    )
    counts = {"findings": len(findings), "posted": 0, "skipped": 0, "api_calls": 0}

    def skipping() -> set[str]:
        return {
            f.fingerprint
            for f in findings
            if ledger.state(pr, f.fingerprint) in ("posted", "resolved")
        }

    def dismissed() -> set[str]:
        return {f.fingerprint for f in findings if ledger.state(pr, f.fingerprint) == "dismissed"}

    if settings.mode_for(latest.tenant, latest.repo) != "live":
        wanted = to_post(findings, shown=skipping(), dismissed=dismissed())
        for finding in wanted:
            log.info(
                "dry-run: would post %s on %s %s:%d",
                finding.rule_id,
                pr,
                finding.path,
                finding.start_line,
            )
        counts.update(dry_run=len(wanted), skipped=len(findings) - len(wanted))
        return counts

    publisher = deps.publisher_for(target.source, target.tenant)
    info = ledger.pr_info(pr)
    touched = bool(info)  # some publisher worked on this PR before
    ledger.set_pr_info(
        pr,
        {
            **info,
            "source": target.source,
            "tenant": target.tenant,
            "repo": target.repo,
            "number": target.number,
            "head_sha": target.head_sha,
        },
        now_ms(),
    )
    pending = any(ledger.state(pr, f.fingerprint) == "pending" for f in findings)
    if (touched and pr not in reconciled) or pending:
        ledger.record(pr, await publisher.existing(target), now_ms())
        counts["api_calls"] += 1
    reconciled.add(pr)  # from here on, this process's table entries are the truth

    wanted = to_post(findings, shown=skipping(), dismissed=dismissed())
    suggestions = target.source in SUGGESTING_SOURCES
    posted: list[Finding] = []
    for attempt in range(1, settings.max_attempts + 1):
        if not wanted:
            break
        for finding in wanted:
            ledger.set(pr, finding.fingerprint, now_ms(), state="pending")
        # "pending" must be durable before the post: a crash after the post
        # then finds it on restart and reads the PR back instead of posting.
        await deps.flush()
        counts["api_calls"] += 1
        try:
            created = await publisher.post(
                target, [render(f, suggestions=suggestions) for f in wanted]
            )
        except SourceFetchError as exc:
            if not exc.retryable or attempt == settings.max_attempts:
                raise
            await asyncio.sleep(_backoff(deps, attempt))
            # The server may have acted before failing: believe what it shows.
            ledger.record(pr, await publisher.existing(target), now_ms())
            counts["api_calls"] += 1
            wanted = to_post(wanted, shown=skipping(), dismissed=dismissed())
            continue
        ledger.record(pr, created, now_ms())
        posted = [f for f in wanted if f.fingerprint in created]
        counts["posted"] = len(posted)
        break
    counts["skipped"] = len(findings) - counts["posted"]
    try:
        counts["api_calls"] += await _report(deps, ledger, publisher, target, findings, posted)
    except SourceFetchError as exc:
        # The comments are up; a check run that failed is made again by the
        # next batch of this head. Failing the batch here would dead-letter
        # findings that were posted.
        log.warning("check run for %s failed: %s", pr, exc)
        counts["check_failed"] = 1
    return counts


async def _report(
    deps: PublishDeps,
    ledger: CommentLedger,
    publisher: ScmPublisher,
    target: PullRequestTarget,
    findings: Sequence[Finding],
    posted: Sequence[Finding],
) -> int:
    """Create or update the PR-level status (GitHub's check run); how many calls it took."""
    if target.source != "github":
        return 0
    pr = pr_key(target.tenant, target.repo, target.number)
    info = ledger.pr_info(pr)
    same_head = info.get("check_head") == target.head_sha
    severities = dict(info.get("severities") or {}) if same_head else {}
    known = set(severities)
    for finding in findings:
        if ledger.state(pr, finding.fingerprint) in ("posted", "resolved"):
            severities[finding.fingerprint] = finding.severity
    if same_head and set(severities) == known and not posted:
        return 0  # nothing new to say about this head
    fail_on, neutral_on = deps.settings.policy_for(target.tenant, target.repo)
    check_id = await publisher.report(
        target,
        posted,
        conclusion=conclusion(severities.values(), CheckPolicy(fail_on, neutral_on)),
        summary=summary(severities.values()),
        check_id=str(info.get("check_id", "")) if same_head else "",
    )
    info.update(check_head=target.head_sha, check_id=check_id, severities=severities)
    ledger.set_pr_info(pr, info, now_ms())
    return 1


async def resolve_gone(
    deps: PublishDeps, ledger: CommentLedger, feedback: FeedbackEvent
) -> str | None:
    """Act on one feedback event: resolve a gone finding's thread or record a dismissal.

    Returns what was done ("resolved", "dismissed", "dry-run") or None.
    """
    pr = pr_key(feedback.tenant, feedback.repo, feedback.pr_number)
    fingerprint = feedback.fingerprint
    entry = ledger.entry(pr, fingerprint)
    if feedback.verdict == "REJECTED" and feedback.signal in DISMISSING_SIGNALS:
        ledger.set(pr, fingerprint, now_ms(), state="dismissed")
        return "dismissed"
    if feedback.signal != "applied" or entry.get("state") != "posted":
        return None
    info = ledger.pr_info(pr)
    if deps.settings.mode_for(feedback.tenant, feedback.repo) != "live":
        return "dry-run"
    target = PullRequestTarget(
        str(info["source"]),
        feedback.tenant,
        feedback.repo,
        feedback.pr_number,
        str(info.get("head_sha", "")),
    )
    publisher = deps.publisher_for(target.source, target.tenant)
    posted = PostedComment(
        fingerprint,
        str(entry.get("comment_id", "")),
        str(entry.get("thread_id", "")),
        on_file=bool(entry.get("on_file", False)),
    )
    for attempt in range(1, deps.settings.max_attempts + 1):
        try:
            await publisher.resolve(target, posted)
            break
        except SourceFetchError as exc:
            if not exc.retryable or attempt == deps.settings.max_attempts:
                raise
            await asyncio.sleep(_backoff(deps, attempt))
    ledger.set(pr, fingerprint, now_ms(), state="resolved")
    return "resolved"


def register_publish_agents(app: faust.App, ch: Channels, deps: PublishDeps) -> None:
    """The two agents of the ``publish`` role, over one table."""
    emit = deps.emitter
    table = app.Table(TABLE, default=None, partitions=ch.findings.partitions)
    ledger = CommentLedger(table)
    reconciled: set[str] = set()  # PRs read back from the SCM since this process started
    settings = deps.settings
    # A PR's comment states are forgotten this long after their last change (see table_ttl).
    sweeper = TableSweeper(table, ttl_ms=settings.state_ttl_days * DAY_MS)
    limit = asyncio.Semaphore(max(1, settings.concurrency))

    async def one_pr(items: list[tuple[Finding, faust.EventT]]) -> None:
        # Table writes go to the changelog partition of the "current event";
        # a batch mixes partitions, so each PR's task runs as one of its own
        # events (the context variable is per task).
        faust_streams._current_event.set(weakref.ref(items[-1][1]))
        sweeper.sweep(now_ms())
        started = time.perf_counter()
        findings = [f for f, _ in items]

        async def work() -> None:
            async with limit:
                counts = await publish_pr(deps, ledger, reconciled, findings)
            await emit.metric(
                "publish",
                findings[-1],
                started=started,
                items=counts.get("posted", 0),
                attrs={k: str(v) for k, v in counts.items()},
            )

        ok = await guarded(emit, "publish", items[-1][1], work)
        if not ok:  # every finding of the PR keeps its original bytes in the DLQ
            for _, event in items[:-1]:
                await emit.dead_letter("publish", _Failed(findings[-1].key), event)

    @app.agent(ch.findings, name="publish")
    async def publish(stream: faust.StreamT) -> None:
        async for events in handled_batches(stream, settings.batch_size, settings.batch_within_s):
            by_pr: dict[str, list[tuple[Finding, faust.EventT]]] = {}
            for event in events:
                try:
                    finding = emit.codec.decode(event.message.value)
                    if not isinstance(finding, Finding):
                        raise DecodeError(f"expected a Finding, got {type(finding).__name__}")
                except DecodeError as exc:
                    await emit.dead_letter("publish", exc, event)
                    continue
                by_pr.setdefault(finding.key, []).append((finding, event))
            # gather runs each PR as a task of its own, with its own copy of the context.
            await asyncio.gather(*(one_pr(items) for items in by_pr.values()))

    @app.agent(ch.feedback, name="publish-feedback")
    async def publish_feedback(stream: faust.StreamT) -> None:
        async for event in handled_events(stream):
            sweeper.sweep(now_ms())

            async def work(event: faust.EventT = event) -> None:
                feedback = emit.codec.decode(event.message.value)
                if not isinstance(feedback, FeedbackEvent):
                    raise DecodeError(f"expected a FeedbackEvent, got {type(feedback).__name__}")
                started = time.perf_counter()
                done = await resolve_gone(deps, ledger, feedback)
                if done is not None:
                    await emit.metric(
                        "publish-feedback",
                        feedback,
                        started=started,
                        items=1,
                        attrs={"action": done, "signal": feedback.signal},
                        received_at_ms=feedback.at_ms,
                    )

            await guarded(emit, "publish-feedback", event, work)


class _Failed(ProcessorError):
    """Marks the other findings of a PR whose post failed (the reason is on the first)."""

    def __init__(self, pr: str) -> None:
        super().__init__(f"posting the findings of {pr} failed; see the dead letter before this")


def _backoff(deps: PublishDeps, attempt: int) -> float:
    settings = deps.settings
    return full_jitter(attempt, settings.retry_base_s, settings.retry_max_s, deps.rng.random)
