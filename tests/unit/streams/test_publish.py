"""The publish agent's exactly-once rules, over an in-memory table and SCM.

These pin the decisions (when to read the PR back, what to post, what a
failed post leaves behind, what feedback does); the same code against real
publishers over HTTP is tested in tests/unit/sinks, and through Kafka with
worker restarts in tests/e2e/test_publish.py.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
from collections.abc import Sequence

import pytest

from codereview.settings import PublishSettings
from processors.publishing import Comment, fingerprint_in
from schemas.records import FeedbackEvent, Finding
from sinks.scm.base import PostedComment, PullRequestTarget
from sources.github_api import SourceFetchError
from streams.emitter import Emitter
from streams.publish import CommentLedger, PublishDeps, publish_pr, resolve_gone
from tests.fakes.findings import sample_finding

LIVE = PublishSettings(modes={"*": "live"}, retry_base_s=0.0, retry_max_s=0.0)


class MemoryScm:
    """An SCM in memory: comments by fingerprint, every call counted."""

    def __init__(self, source: str = "github") -> None:
        self.source = source
        self.comments: list[Comment] = []
        self.resolved: set[str] = set()
        self.calls: list[str] = []
        self.fail_posts: list[tuple[int, bool]] = []  # (status, acted first)
        self.reports: list[tuple[str, str, str]] = []

    async def existing(self, pr: PullRequestTarget) -> dict[str, PostedComment]:
        self.calls.append("existing")
        out = {}
        for i, c in enumerate(self.comments):
            fp = fingerprint_in(c.body)
            assert fp is not None
            out[fp] = PostedComment(fp, str(i), f"t{i}", resolved=fp in self.resolved)
        return out

    async def post(
        self, pr: PullRequestTarget, comments: Sequence[Comment]
    ) -> dict[str, PostedComment]:
        self.calls.append("post")
        if self.fail_posts:
            status, acted = self.fail_posts.pop(0)
            if acted:
                self.comments += comments
            raise SourceFetchError(f"HTTP {status}", status=status, retryable=status >= 500)
        start = len(self.comments)
        self.comments += comments
        return {
            c.fingerprint: PostedComment(c.fingerprint, str(start + i), f"t{start + i}")
            for i, c in enumerate(comments)
        }

    async def resolve(self, pr: PullRequestTarget, posted: PostedComment) -> None:
        self.calls.append("resolve")
        self.resolved.add(posted.fingerprint)

    async def report(
        self,
        pr: PullRequestTarget,
        findings: Sequence[Finding],
        *,
        conclusion: str,
        summary: str,
        check_id: str = "",
    ) -> str:
        self.calls.append("report")
        self.reports.append((conclusion, summary, check_id))
        return check_id or "check-1"

    async def close(self) -> None:
        return None

    def fingerprints(self) -> list[str]:
        return [c.fingerprint for c in self.comments]


def finding(ch: str, severity: str = "MEDIUM", head: str = "h1") -> Finding:
    return sample_finding(
        fingerprint=ch * 64,
        tenant="t",
        repo="o/r",
        pr_number=1,
        head_sha=head,
        severity=severity,
        source="github",
    )


def deps_for(scm: MemoryScm, settings: PublishSettings = LIVE) -> PublishDeps:
    return PublishDeps(
        emitter=_no_emitter(),
        publisher_for=lambda source, tenant: scm,
        settings=settings,
        rng=random.Random(0),
    )


def _no_emitter() -> Emitter:
    return None  # type: ignore[return-value]  # publish_pr never emits


def run(coro: object) -> object:
    return asyncio.run(coro)  # type: ignore[arg-type]


def test_a_new_pr_costs_one_post_and_one_check_run_and_no_read() -> None:
    scm, table = MemoryScm(), {}
    counts = run(
        publish_pr(deps_for(scm), CommentLedger(table), set(), [finding("a"), finding("b")])
    )
    assert scm.calls == ["post", "report"]
    assert scm.fingerprints() == ["a" * 64, "b" * 64]
    assert counts == {"findings": 2, "posted": 2, "skipped": 0, "api_calls": 2}
    assert {v["state"] for k, v in table.items() if "|" in k} == {"posted"}


def test_a_redelivered_batch_posts_nothing() -> None:
    scm, table, seen = MemoryScm(), {}, set()
    ledger = CommentLedger(table)
    run(publish_pr(deps_for(scm), ledger, seen, [finding("a")]))
    run(publish_pr(deps_for(scm), ledger, seen, [finding("a")]))
    assert scm.fingerprints() == ["a" * 64]
    assert scm.calls == ["post", "report"]


def test_after_a_restart_the_pr_is_read_back_once_then_trusted() -> None:
    scm, table = MemoryScm(), {}
    run(publish_pr(deps_for(scm), CommentLedger(table), set(), [finding("a")]))
    restarted: set[str] = set()  # a new process: nothing reconciled yet
    run(publish_pr(deps_for(scm), CommentLedger(table), restarted, [finding("a"), finding("b")]))
    run(publish_pr(deps_for(scm), CommentLedger(table), restarted, [finding("c")]))
    assert scm.fingerprints() == ["a" * 64, "b" * 64, "c" * 64]
    assert scm.calls.count("existing") == 1


def test_a_lost_table_write_is_recovered_from_the_marker() -> None:
    """Crash after the post, before "posted" reached the changelog: the entry is still pending."""
    scm, table = MemoryScm(), {}
    ledger = CommentLedger(table)
    run(publish_pr(deps_for(scm), ledger, set(), [finding("a")]))
    ledger.set("t/o/r#1", "a" * 64, 0, state="pending")
    run(publish_pr(deps_for(scm), ledger, {"t/o/r#1"}, [finding("a")]))
    assert scm.fingerprints() == ["a" * 64]
    assert ledger.state("t/o/r#1", "a" * 64) == "posted"


def test_a_5xx_after_the_server_acted_does_not_double_the_comment() -> None:
    scm, table = MemoryScm(), {}
    scm.fail_posts = [(502, True)]
    counts = run(publish_pr(deps_for(scm), CommentLedger(table), set(), [finding("a")]))
    assert scm.fingerprints() == ["a" * 64]
    assert scm.calls[:3] == ["post", "existing", "report"]
    assert counts["posted"] == 0 and counts["skipped"] == 1


def test_a_5xx_before_the_server_acted_is_retried_and_posted_once() -> None:
    scm, table = MemoryScm(), {}
    scm.fail_posts = [(503, False), (500, False)]
    run(publish_pr(deps_for(scm), CommentLedger(table), set(), [finding("a")]))
    assert scm.fingerprints() == ["a" * 64]
    assert scm.calls.count("post") == 3


def test_a_post_failing_every_time_raises_and_leaves_pending_for_a_replay() -> None:
    scm, table = MemoryScm(), {}
    scm.fail_posts = [(500, False)] * LIVE.max_attempts
    ledger = CommentLedger(table)
    with pytest.raises(SourceFetchError):
        run(publish_pr(deps_for(scm), ledger, set(), [finding("a")]))
    assert ledger.state("t/o/r#1", "a" * 64) == "pending"
    assert scm.comments == []
    # the replay of the dead letter reads the PR back first, then posts
    run(publish_pr(deps_for(scm), ledger, set(), [finding("a")]))
    assert scm.fingerprints() == ["a" * 64]
    assert scm.calls[-3:] == ["existing", "post", "report"]


def test_a_refusal_is_not_retried() -> None:
    scm, table = MemoryScm(), {}
    scm.fail_posts = [(404, False)]
    with pytest.raises(SourceFetchError):
        run(publish_pr(deps_for(scm), CommentLedger(table), set(), [finding("a")]))
    assert scm.calls == ["post"]


def feedback(ch: str, verdict: str, signal: str) -> FeedbackEvent:
    return FeedbackEvent("f", ch * 64, "t", "o/r", 1, "ruff:B006", verdict, signal, "", 5)


def test_a_dismissed_finding_is_never_posted_again_on_that_pr() -> None:
    scm, table = MemoryScm(), {}
    ledger = CommentLedger(table)
    run(publish_pr(deps_for(scm), ledger, set(), [finding("a")]))
    assert run(resolve_gone(deps_for(scm), ledger, feedback("a", "REJECTED", "reaction")))
    scm.comments.clear()  # even if the author deleted the comment
    run(publish_pr(deps_for(scm), ledger, set(), [finding("a", head="h2")]))
    assert scm.comments == []


def test_applied_feedback_resolves_the_thread_once() -> None:
    scm, table = MemoryScm(), {}
    ledger = CommentLedger(table)
    run(publish_pr(deps_for(scm), ledger, set(), [finding("a")]))
    assert run(resolve_gone(deps_for(scm), ledger, feedback("a", "ACCEPTED", "applied"))) == (
        "resolved"
    )
    assert run(resolve_gone(deps_for(scm), ledger, feedback("a", "ACCEPTED", "applied"))) is None
    assert scm.resolved == {"a" * 64}
    assert scm.calls.count("resolve") == 1


def test_dry_run_makes_no_call_and_records_nothing() -> None:
    scm, table = MemoryScm(), {}
    dry = PublishSettings(modes={"*": "live", "t/o/r": "dry-run"})
    counts = run(publish_pr(deps_for(scm, dry), CommentLedger(table), set(), [finding("a")]))
    assert scm.calls == [] and table == {}
    assert counts["dry_run"] == 1


def test_the_check_run_counts_every_finding_of_the_head_and_is_updated_in_place() -> None:
    scm, table, seen = MemoryScm(), {}, set()
    ledger = CommentLedger(table)
    run(publish_pr(deps_for(scm), ledger, seen, [finding("a", "LOW")]))
    run(publish_pr(deps_for(scm), ledger, seen, [finding("b", "HIGH")]))
    assert scm.reports == [
        ("neutral", "codereview: 1 finding(s): 1 low", ""),
        ("failure", "codereview: 2 finding(s): 1 high, 1 low", "check-1"),
    ]
    run(publish_pr(deps_for(scm), ledger, seen, [finding("c", "INFO", head="h2")]))
    assert scm.reports[-1] == ("success", "codereview: 1 finding(s): 1 info", "")


def test_a_finding_without_a_source_is_refused() -> None:
    scm = MemoryScm()
    nameless = dataclasses.replace(finding("a"), source="")
    with pytest.raises(Exception, match="names no source"):
        run(publish_pr(deps_for(scm), CommentLedger({}), set(), [nameless]))
