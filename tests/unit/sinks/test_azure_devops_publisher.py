"""The Azure DevOps publisher against its fake server, over HTTP.

The fake holds the PR's files and their lengths; the real publisher posts
one thread per finding, and the tests check the stored threads against the
documented shape, the calls made, the fallbacks, retries and resolution.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from processors.publishing import render, to_post
from sinks.scm.azure_devops import AzureDevOpsPublisher
from sinks.scm.base import PostedComment, PullRequestTarget
from sources.github_api import SourceFetchError
from tests.fakes.scm_reviews.azure_devops import FakeAzureDevOpsReviews
from tests.fakes.scm_reviews.base import RecordedSleep, serve
from tests.fakes.scm_reviews.findings import review_comment, review_finding

REPO = "Widgets/widgets-api"
NUMBER = 42
THREADS = r"/pullRequests/42/threads$"

# src/core.py: head lines 20-24 in the diff; the file is 60 lines long.
DIFF = """\
diff --git a/src/core.py b/src/core.py
--- a/src/core.py
+++ b/src/core.py
@@ -20,3 +20,5 @@ class Store:
     def get(self, key):
-        return self.data[key]
+        if key not in self.data:
+            return None
+        return self.data[key]
     def put(self, key, value):
"""
FILE_LENGTHS = {"src/core.py": 60}


PR = PullRequestTarget("azure-devops", "widgets", REPO, NUMBER, "b" * 40)
finding = functools.partial(review_finding, on=PR)
comment = functools.partial(review_comment, on=PR)

Scenario = Callable[
    [FakeAzureDevOpsReviews, AzureDevOpsPublisher, PullRequestTarget], Awaitable[None]
]


def run(scenario: Scenario, fake: FakeAzureDevOpsReviews | None = None) -> RecordedSleep:
    served = fake or FakeAzureDevOpsReviews()
    served.add_pull(REPO, NUMBER, DIFF, file_lengths=FILE_LENGTHS)
    sleep = RecordedSleep()
    serve(
        served,
        lambda _url: AzureDevOpsPublisher(served.org_url, "pat-token", sleep=sleep),
        lambda f, pub: scenario(f, pub, PR),
    )
    return sleep


def by_body(fake: FakeAzureDevOpsReviews) -> dict[str, dict[str, Any]]:
    return {t["comments"][0]["content"]: t for t in fake.threads(REPO, NUMBER)}


def test_posts_one_thread_per_finding_on_the_right_side_lines() -> None:
    batch = [comment(1, "src/core.py", 22, 24), comment(2, "src/core.py", 40)]

    async def scenario(
        fake: FakeAzureDevOpsReviews, pub: AzureDevOpsPublisher, pr: PullRequestTarget
    ) -> None:
        posted = await pub.post(pr, batch)
        threads = fake.threads(REPO, NUMBER)
        assert [t["threadContext"] for t in threads] == [
            {
                "filePath": "/src/core.py",
                "rightFileStart": {"line": 22, "offset": 1},
                "rightFileEnd": {"line": 24, "offset": 1},
            },
            {
                "filePath": "/src/core.py",
                "rightFileStart": {"line": 40, "offset": 1},
                "rightFileEnd": {"line": 40, "offset": 1},
            },
        ]
        assert [t["comments"][0]["content"] for t in threads] == [c.body for c in batch]
        assert all(t["status"] == "active" for t in threads)
        assert [t["comments"][0]["commentType"] for t in threads] == ["text", "text"]
        assert fake.calls_to("POST", THREADS) == 2
        assert posted == {
            c.fingerprint: PostedComment(c.fingerprint, "1", str(t["id"]))
            for c, t in zip(batch, threads, strict=True)
        }

    run(scenario)


def test_existing_finds_our_threads_by_their_first_comment_only() -> None:
    batch = [comment(1, "src/core.py", 21), comment(2, "src/core.py", 22)]

    async def scenario(
        fake: FakeAzureDevOpsReviews, pub: AzureDevOpsPublisher, pr: PullRequestTarget
    ) -> None:
        posted = await pub.post(pr, batch[:1])
        fake.add_reply(REPO, NUMBER, posted[batch[0].fingerprint].thread_id, batch[1].body)
        assert await pub.existing(pr) == posted

    run(scenario)


def test_a_line_azure_cannot_place_falls_back_to_the_file_then_the_pr() -> None:
    on_line = comment(1, "src/core.py", 22)
    past_end = comment(2, "src/core.py", 58, 75)
    unknown = comment(3, "src/gone.py", 5)

    async def scenario(
        fake: FakeAzureDevOpsReviews, pub: AzureDevOpsPublisher, pr: PullRequestTarget
    ) -> None:
        posted = await pub.post(pr, [on_line, past_end, unknown])
        threads = by_body(fake)
        assert threads[past_end.body]["threadContext"] == {"filePath": "/src/core.py"}
        assert threads[unknown.body]["threadContext"] is None
        assert fake.calls_to("POST", THREADS) == 1 + 2 + 3
        assert [posted[c.fingerprint].on_file for c in (on_line, past_end, unknown)] == [
            False,
            True,
            True,
        ]
        assert await pub.existing(pr) == posted

    run(scenario)


def test_waits_as_asked_on_429_and_posts_once() -> None:
    fake = FakeAzureDevOpsReviews()
    fake.fail("POST", THREADS, 429, headers={"Retry-After": "11"})

    async def scenario(
        fake: FakeAzureDevOpsReviews, pub: AzureDevOpsPublisher, pr: PullRequestTarget
    ) -> None:
        await pub.post(pr, [comment(1, "src/core.py", 22)])
        assert len(fake.threads(REPO, NUMBER)) == 1
        assert fake.calls_to("POST", THREADS) == 2

    assert run(scenario, fake).waits == [11.0]


@pytest.mark.parametrize("after", [False, True])
def test_5xx_is_raised_retryable_and_existing_tells_whether_it_landed(after: bool) -> None:
    fake = FakeAzureDevOpsReviews()
    fake.fail("POST", THREADS, 500, after=after)
    new = comment(1, "src/core.py", 22)

    async def scenario(
        fake: FakeAzureDevOpsReviews, pub: AzureDevOpsPublisher, pr: PullRequestTarget
    ) -> None:
        with pytest.raises(SourceFetchError) as raised:
            await pub.post(pr, [new])
        assert raised.value.retryable and raised.value.status == 500
        assert fake.calls_to("POST", THREADS) == 1
        assert len(fake.threads(REPO, NUMBER)) == (1 if after else 0)
        assert (new.fingerprint in await pub.existing(pr)) is after

    run(scenario, fake)


def test_marker_round_trip_keeps_a_finding_from_being_posted_twice() -> None:
    findings = [finding(1, "src/core.py", 22), finding(2, "src/core.py", 23)]

    async def scenario(
        fake: FakeAzureDevOpsReviews, pub: AzureDevOpsPublisher, pr: PullRequestTarget
    ) -> None:
        await pub.post(pr, [render(findings[0], suggestions=False)])
        again = to_post(findings, shown=await pub.existing(pr))
        assert [f.fingerprint for f in again] == [findings[1].fingerprint]
        await pub.post(pr, [render(f, suggestions=False) for f in again])
        assert set(await pub.existing(pr)) == {f.fingerprint for f in findings}
        assert len(fake.threads(REPO, NUMBER)) == 2

    run(scenario)


def test_resolve_sets_fixed_and_twice_is_harmless() -> None:
    async def scenario(
        fake: FakeAzureDevOpsReviews, pub: AzureDevOpsPublisher, pr: PullRequestTarget
    ) -> None:
        one = next(iter((await pub.post(pr, [comment(1, "src/core.py", 22)])).values()))
        await pub.resolve(pr, one)
        await pub.resolve(pr, one)
        assert fake.thread(REPO, NUMBER, one.thread_id)["status"] == "fixed"
        assert fake.calls_to("PATCH", rf"/threads/{one.thread_id}$") == 2
        assert (await pub.existing(pr))[one.fingerprint].resolved is True

    run(scenario)


def test_resolve_retries_a_5xx_because_setting_a_status_is_idempotent() -> None:
    fake = FakeAzureDevOpsReviews()
    fake.fail("PATCH", r"/threads/\d+$", 500, after=True)

    async def scenario(
        fake: FakeAzureDevOpsReviews, pub: AzureDevOpsPublisher, pr: PullRequestTarget
    ) -> None:
        one = next(iter((await pub.post(pr, [comment(1, "src/core.py", 22)])).values()))
        await pub.resolve(pr, one)
        assert fake.thread(REPO, NUMBER, one.thread_id)["status"] == "fixed"
        assert fake.calls_to("PATCH", r"/threads/\d+$") == 2

    assert len(run(scenario, fake).waits) == 1  # one backoff, then the retry


@pytest.mark.parametrize(
    ("status", "resolved"),
    [
        ("fixed", True),
        ("closed", True),
        ("wontFix", True),
        ("byDesign", True),
        ("active", False),
        ("pending", False),
    ],
)
def test_existing_reads_resolution_from_the_thread_status(status: str, resolved: bool) -> None:
    async def scenario(
        fake: FakeAzureDevOpsReviews, pub: AzureDevOpsPublisher, pr: PullRequestTarget
    ) -> None:
        one = next(iter((await pub.post(pr, [comment(1, "src/core.py", 22)])).values()))
        fake.thread(REPO, NUMBER, one.thread_id)["status"] = status
        assert (await pub.existing(pr))[one.fingerprint].resolved is resolved

    run(scenario)


def test_existing_follows_continuation_tokens() -> None:
    fake = FakeAzureDevOpsReviews(page_size=2)
    batch = [comment(n, "src/core.py", line) for n, line in enumerate(range(20, 25), start=1)]

    async def scenario(
        fake: FakeAzureDevOpsReviews, pub: AzureDevOpsPublisher, pr: PullRequestTarget
    ) -> None:
        posted = await pub.post(pr, batch)
        found = await pub.existing(pr)
        assert found == posted and len(found) == 5
        assert fake.calls_to("GET", THREADS) == 3

    run(scenario, fake)


def test_report_makes_no_call() -> None:
    async def scenario(
        fake: FakeAzureDevOpsReviews, pub: AzureDevOpsPublisher, pr: PullRequestTarget
    ) -> None:
        assert await pub.report(pr, [], conclusion="neutral", summary="meh") == ""
        assert fake.calls == []

    run(scenario)
