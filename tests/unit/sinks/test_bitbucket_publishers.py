"""The Bitbucket Cloud and Data Center publishers against their fake servers, over HTTP.

Each test serves a fake on 127.0.0.1 and drives the real publisher class:
what the fake stored is checked against the vendor's documented shape, and
the number of calls is counted, since one call per finding is the floor on
these APIs.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from processors.publishing import render, to_post
from sinks.scm.base import PostedComment, PullRequestTarget
from sinks.scm.bitbucket_cloud import BitbucketCloudPublisher
from sinks.scm.bitbucket_dc import BitbucketDcPublisher
from sources.github_api import SourceFetchError
from tests.fakes.scm_reviews.base import RecordedSleep, serve
from tests.fakes.scm_reviews.bitbucket import FakeBitbucketCloudReviews, FakeBitbucketDcReviews
from tests.fakes.scm_reviews.findings import review_comment, review_finding

CLOUD_REPO = "acme/widgets"
DC_REPO = "PROJ/widgets"
NUMBER = 7

# app/core.py: head lines 10-12 context, 13-14 added, 15-17 context.
# app/util.py: a new file of three lines.
DIFF = """\
diff --git a/app/core.py b/app/core.py
index 1111111..2222222 100644
--- a/app/core.py
+++ b/app/core.py
@@ -10,6 +10,8 @@ def load(path):
     first = read(path)
     second = parse(first)
     third = check(second)
+    if third is None:
+        raise ValueError(path)
     fourth = store(third)
     fifth = index(fourth)
     return fifth
diff --git a/app/util.py b/app/util.py
new file mode 100644
index 0000000..3333333
--- /dev/null
+++ b/app/util.py
@@ -0,0 +1,3 @@
+def helper(value):
+    total = value * 2
+    return total
"""


CLOUD_PR = PullRequestTarget("bitbucket-cloud", "acme", CLOUD_REPO, NUMBER, "a" * 40)
DC_PR = PullRequestTarget("bitbucket-dc", "acme", DC_REPO, NUMBER, "a" * 40)
# The Data Center tests use these too: nothing they check reads the PR fields of a finding.
finding = functools.partial(review_finding, on=CLOUD_PR)
comment = functools.partial(review_comment, on=CLOUD_PR)

Fake = FakeBitbucketCloudReviews | FakeBitbucketDcReviews
Publisher = BitbucketCloudPublisher | BitbucketDcPublisher
Scenario = Callable[[Any, Any, PullRequestTarget], Awaitable[None]]


def run_on(
    fake: Fake,
    publisher: Callable[..., Publisher],
    pr: PullRequestTarget,
    token: str,
    scenario: Scenario,
) -> RecordedSleep:
    """Serve ``fake`` with the PR of ``DIFF`` and run ``scenario`` against ``publisher``."""
    fake.add_pull(pr.repo, NUMBER, DIFF)
    sleep = RecordedSleep()
    serve(fake, lambda url: publisher(url, token, sleep=sleep), lambda f, pub: scenario(f, pub, pr))
    return sleep


def run_cloud(scenario: Scenario, fake: FakeBitbucketCloudReviews | None = None) -> RecordedSleep:
    served = fake or FakeBitbucketCloudReviews()
    return run_on(served, BitbucketCloudPublisher, CLOUD_PR, "user:app-password", scenario)


def run_dc(scenario: Scenario, fake: FakeBitbucketDcReviews | None = None) -> RecordedSleep:
    served = fake or FakeBitbucketDcReviews()
    return run_on(served, BitbucketDcPublisher, DC_PR, "http-token", scenario)


# --- Bitbucket Cloud -------------------------------------------------------------------------


def test_cloud_posts_one_inline_comment_per_finding_with_the_marker_intact() -> None:
    batch = [comment(1, "app/core.py", 13, 14), comment(2, "app/util.py", 2)]

    async def scenario(fake: FakeBitbucketCloudReviews, pub: Any, pr: PullRequestTarget) -> None:
        posted = await pub.post(pr, batch)
        stored = fake.comments(CLOUD_REPO, NUMBER)
        assert [c["content"]["raw"] for c in stored] == [c.body for c in batch]
        assert [c["inline"] for c in stored] == [
            {"from": None, "path": "app/core.py", "to": 13},
            {"from": None, "path": "app/util.py", "to": 2},
        ]
        assert fake.calls_to("POST", "/comments$") == 2
        assert posted == {
            c.fingerprint: PostedComment(c.fingerprint, str(s["id"]), str(s["id"]))
            for c, s in zip(batch, stored, strict=True)
        }

    run_cloud(scenario)


def test_cloud_existing_finds_our_comments_and_ignores_replies_and_others() -> None:
    batch = [comment(1, "app/core.py", 13), comment(2, "app/core.py", 11)]

    async def scenario(fake: FakeBitbucketCloudReviews, pub: Any, pr: PullRequestTarget) -> None:
        posted = await pub.post(pr, batch)
        first_id = int(posted[batch[0].fingerprint].comment_id)
        fake.add_comment(CLOUD_REPO, NUMBER, "> quoting you\n" + batch[1].body, parent=first_id)
        fake.add_comment(CLOUD_REPO, NUMBER, "LGTM")
        assert await pub.existing(pr) == posted

    run_cloud(scenario)


def test_cloud_line_outside_the_diff_falls_back_to_the_file_then_the_pr() -> None:
    on_line = comment(1, "app/core.py", 13)
    off_diff = comment(2, "app/core.py", 3)
    off_pr = comment(3, "docs/readme.md", 1)

    async def scenario(fake: FakeBitbucketCloudReviews, pub: Any, pr: PullRequestTarget) -> None:
        posted = await pub.post(pr, [on_line, off_diff, off_pr])
        stored = {c["content"]["raw"]: c for c in fake.comments(CLOUD_REPO, NUMBER)}
        assert stored[off_diff.body]["inline"] == {"from": None, "path": "app/core.py"}
        assert "inline" not in stored[off_pr.body]
        assert fake.calls_to("POST", "/comments$") == 1 + 2 + 3
        assert [posted[c.fingerprint].on_file for c in (on_line, off_diff, off_pr)] == [
            False,
            True,
            True,
        ]
        assert await pub.existing(pr) == posted

    run_cloud(scenario)


def test_cloud_waits_as_asked_on_429_and_posts_once() -> None:
    fake = FakeBitbucketCloudReviews()
    fake.fail("POST", r"/comments$", 429, headers={"Retry-After": "7"})

    async def scenario(fake: FakeBitbucketCloudReviews, pub: Any, pr: PullRequestTarget) -> None:
        await pub.post(pr, [comment(1, "app/core.py", 13)])
        assert len(fake.comments(CLOUD_REPO, NUMBER)) == 1
        assert fake.calls_to("POST", "/comments$") == 2

    sleep = run_cloud(scenario, fake)
    assert sleep.waits == [7.0]


@pytest.mark.parametrize("after", [False, True])
def test_cloud_5xx_is_raised_retryable_and_existing_tells_whether_it_landed(after: bool) -> None:
    fake = FakeBitbucketCloudReviews()
    fake.fail("POST", r"/comments$", 502, after=after)
    new = comment(1, "app/core.py", 13)

    async def scenario(fake: FakeBitbucketCloudReviews, pub: Any, pr: PullRequestTarget) -> None:
        with pytest.raises(SourceFetchError) as raised:
            await pub.post(pr, [new])
        assert raised.value.retryable and raised.value.status == 502
        assert fake.calls_to("POST", "/comments$") == 1
        assert len(fake.comments(CLOUD_REPO, NUMBER)) == (1 if after else 0)
        assert (new.fingerprint in await pub.existing(pr)) is after

    run_cloud(scenario, fake)


def test_cloud_marker_round_trip_keeps_a_finding_from_being_posted_twice() -> None:
    findings = [finding(1, "app/core.py", 13), finding(2, "app/util.py", 1)]

    async def scenario(fake: FakeBitbucketCloudReviews, pub: Any, pr: PullRequestTarget) -> None:
        await pub.post(pr, [render(f, suggestions=False) for f in findings[:1]])
        shown = await pub.existing(pr)
        again = to_post(findings, shown=shown)
        assert [f.fingerprint for f in again] == [findings[1].fingerprint]
        await pub.post(pr, [render(f, suggestions=False) for f in again])
        assert set(await pub.existing(pr)) == {f.fingerprint for f in findings}
        assert len(fake.comments(CLOUD_REPO, NUMBER)) == 2

    run_cloud(scenario)


def test_cloud_resolve_marks_the_thread_resolved_and_twice_is_harmless() -> None:
    async def scenario(fake: FakeBitbucketCloudReviews, pub: Any, pr: PullRequestTarget) -> None:
        posted = await pub.post(pr, [comment(1, "app/core.py", 13)])
        one = next(iter(posted.values()))
        await pub.resolve(pr, one)
        await pub.resolve(pr, one)
        stored = fake.comment(CLOUD_REPO, NUMBER, one.comment_id)
        assert stored["resolution"]["type"] == "comment_resolution"
        assert fake.calls_to("POST", r"/comments/\d+/resolve$") == 2
        assert (await pub.existing(pr))[one.fingerprint].resolved is True

    run_cloud(scenario)


def test_cloud_existing_reads_every_page() -> None:
    fake = FakeBitbucketCloudReviews(page_size=2)
    batch = [comment(n, "app/core.py", line) for n, line in enumerate(range(10, 15), start=1)]

    async def scenario(fake: FakeBitbucketCloudReviews, pub: Any, pr: PullRequestTarget) -> None:
        posted = await pub.post(pr, batch)
        found = await pub.existing(pr)
        assert found == posted and len(found) == 5
        assert fake.calls_to("GET", "/comments$") == 3

    run_cloud(scenario, fake)


def test_cloud_report_makes_no_call() -> None:
    async def scenario(fake: FakeBitbucketCloudReviews, pub: Any, pr: PullRequestTarget) -> None:
        assert await pub.report(pr, [], conclusion="success", summary="ok") == ""
        assert fake.calls == []

    run_cloud(scenario)


# --- Bitbucket Data Center -------------------------------------------------------------------


def dc_comments_by_body(fake: FakeBitbucketDcReviews) -> dict[str, dict[str, Any]]:
    return {c["text"]: c for c in fake.comments(DC_REPO, NUMBER)}


@pytest.mark.parametrize(
    ("start", "end", "line", "line_type"),
    [
        (13, 13, 13, "ADDED"),
        (11, 11, 11, "CONTEXT"),
        (5, 14, 10, "CONTEXT"),  # the first line of the range the diff shows
        (14, 20, 14, "ADDED"),
    ],
)
def test_dc_anchors_each_comment_on_a_diff_line_with_its_line_type(
    start: int, end: int, line: int, line_type: str
) -> None:
    new = comment(1, "app/core.py", start, end)

    async def scenario(fake: FakeBitbucketDcReviews, pub: Any, pr: PullRequestTarget) -> None:
        posted = await pub.post(pr, [new])
        stored = dc_comments_by_body(fake)[new.body]
        assert stored["anchor"] == {
            "path": "app/core.py",
            "line": line,
            "lineType": line_type,
            "fileType": "TO",
            "diffType": "EFFECTIVE",
            "orphaned": False,
        }
        assert posted[new.fingerprint] == PostedComment(
            new.fingerprint, str(stored["id"]), str(stored["id"])
        )

    run_dc(scenario)


def test_dc_posts_a_batch_with_one_diff_read_and_one_call_per_comment() -> None:
    batch = [comment(1, "app/core.py", 13), comment(2, "app/util.py", 3), comment(3, "x.py", 1)]

    async def scenario(fake: FakeBitbucketDcReviews, pub: Any, pr: PullRequestTarget) -> None:
        posted = await pub.post(pr, batch)
        assert fake.calls_to("GET", r"\.diff$") == 1
        assert fake.calls_to("POST", "/comments$") == 3 + 1  # x.py: file refused, then general
        stored = dc_comments_by_body(fake)
        assert [stored[c.body].get("anchor", {}).get("line") for c in batch] == [13, 3, None]
        assert "anchor" not in stored[batch[2].body]
        assert posted[batch[2].fingerprint].on_file is True
        assert await pub.existing(pr) == posted

    run_dc(scenario)


def test_dc_line_outside_the_diff_goes_to_a_file_anchor_that_existing_finds() -> None:
    off_diff = comment(1, "app/core.py", 2, 4)

    async def scenario(fake: FakeBitbucketDcReviews, pub: Any, pr: PullRequestTarget) -> None:
        posted = await pub.post(pr, [off_diff])
        stored = dc_comments_by_body(fake)[off_diff.body]
        assert stored["anchor"] == {
            "path": "app/core.py",
            "fileType": "TO",
            "diffType": "EFFECTIVE",
            "orphaned": False,
        }
        assert fake.calls_to("POST", "/comments$") == 1
        assert posted[off_diff.fingerprint].on_file is True
        assert (await pub.existing(pr))[off_diff.fingerprint].on_file is True

    run_dc(scenario)


@pytest.mark.parametrize("refusal", [400, 409])
def test_dc_anchor_the_server_refuses_falls_back_to_the_file(refusal: int) -> None:
    """The PR moved after the diff was read: the server refuses the line, the file takes it."""
    fake = FakeBitbucketDcReviews(outside_status=refusal)
    moved = comment(1, "app/core.py", 13)

    async def scenario(fake: FakeBitbucketDcReviews, pub: Any, pr: PullRequestTarget) -> None:
        del fake.pulls[(DC_REPO, NUMBER)].lines[("app/core.py", 13)]
        posted = await pub.post(pr, [moved])
        assert "line" not in dc_comments_by_body(fake)[moved.body]["anchor"]
        assert fake.calls_to("POST", "/comments$") == 2
        assert posted[moved.fingerprint].on_file is True

    run_dc(scenario, fake)


def test_dc_existing_skips_replies_and_other_activities() -> None:
    batch = [comment(1, "app/core.py", 13), comment(2, "app/core.py", 15)]

    async def scenario(fake: FakeBitbucketDcReviews, pub: Any, pr: PullRequestTarget) -> None:
        posted = await pub.post(pr, batch[:1])
        root = int(posted[batch[0].fingerprint].comment_id)
        fake.add_reply(DC_REPO, NUMBER, root, "> quoting\n" + batch[1].body)
        assert await pub.existing(pr) == posted

    run_dc(scenario)


def test_dc_waits_as_asked_on_429_and_posts_once() -> None:
    fake = FakeBitbucketDcReviews()
    fake.fail("POST", r"/comments$", 429, headers={"Retry-After": "3"})

    async def scenario(fake: FakeBitbucketDcReviews, pub: Any, pr: PullRequestTarget) -> None:
        await pub.post(pr, [comment(1, "app/core.py", 13)])
        assert len(fake.comments(DC_REPO, NUMBER)) == 1

    assert run_dc(scenario, fake).waits == [3.0]


@pytest.mark.parametrize("after", [False, True])
def test_dc_5xx_is_raised_retryable_and_existing_tells_whether_it_landed(after: bool) -> None:
    fake = FakeBitbucketDcReviews()
    fake.fail("POST", r"/comments$", 500, after=after)
    new = comment(1, "app/core.py", 13)

    async def scenario(fake: FakeBitbucketDcReviews, pub: Any, pr: PullRequestTarget) -> None:
        with pytest.raises(SourceFetchError) as raised:
            await pub.post(pr, [new])
        assert raised.value.retryable
        assert fake.calls_to("POST", "/comments$") == 1
        assert (new.fingerprint in await pub.existing(pr)) is after

    run_dc(scenario, fake)


def test_dc_marker_round_trip_keeps_a_finding_from_being_posted_twice() -> None:
    findings = [finding(1, "app/core.py", 13), finding(2, "app/util.py", 1)]

    async def scenario(fake: FakeBitbucketDcReviews, pub: Any, pr: PullRequestTarget) -> None:
        await pub.post(pr, [render(findings[0], suggestions=False)])
        again = to_post(findings, shown=await pub.existing(pr))
        assert [f.fingerprint for f in again] == [findings[1].fingerprint]
        await pub.post(pr, [render(f, suggestions=False) for f in again])
        assert len(fake.comments(DC_REPO, NUMBER)) == 2

    run_dc(scenario)


def test_dc_resolve_reads_the_version_and_twice_is_harmless() -> None:
    async def scenario(fake: FakeBitbucketDcReviews, pub: Any, pr: PullRequestTarget) -> None:
        one = next(iter((await pub.post(pr, [comment(1, "app/core.py", 13)])).values()))
        fake.bump_version(DC_REPO, NUMBER, one.comment_id)  # edited by someone: version 1
        await pub.resolve(pr, one)
        await pub.resolve(pr, one)
        stored = fake.comment(DC_REPO, NUMBER, one.comment_id)
        assert stored["threadResolved"] is True and stored["version"] == 2
        assert fake.calls_to("PUT", r"/comments/\d+$") == 1
        assert (await pub.existing(pr))[one.fingerprint].resolved is True

    run_dc(scenario)


@pytest.mark.parametrize(("conflicts", "resolved"), [(1, True), (2, False)])
def test_dc_resolve_rereads_once_on_a_version_conflict(conflicts: int, resolved: bool) -> None:
    fake = FakeBitbucketDcReviews()
    fake.fail("PUT", r"/comments/\d+$", 409, times=conflicts)

    async def scenario(fake: FakeBitbucketDcReviews, pub: Any, pr: PullRequestTarget) -> None:
        one = next(iter((await pub.post(pr, [comment(1, "app/core.py", 13)])).values()))
        if resolved:
            await pub.resolve(pr, one)
        else:
            with pytest.raises(SourceFetchError):
                await pub.resolve(pr, one)
        assert fake.comment(DC_REPO, NUMBER, one.comment_id)["threadResolved"] is resolved
        assert fake.calls_to("GET", r"/comments/\d+$") == 2

    run_dc(scenario, fake)


@pytest.mark.parametrize(
    ("fields", "resolved"),
    [({"threadResolved": True}, True), ({"state": "RESOLVED"}, True), ({}, False)],
)
def test_dc_existing_reads_both_spellings_of_resolved(
    fields: dict[str, Any], resolved: bool
) -> None:
    async def scenario(fake: FakeBitbucketDcReviews, pub: Any, pr: PullRequestTarget) -> None:
        one = next(iter((await pub.post(pr, [comment(1, "app/core.py", 13)])).values()))
        fake.comment(DC_REPO, NUMBER, one.comment_id).update(fields)
        assert (await pub.existing(pr))[one.fingerprint].resolved is resolved

    run_dc(scenario)


def test_dc_existing_reads_every_activity_page() -> None:
    fake = FakeBitbucketDcReviews(page_size=2)
    batch = [comment(n, "app/core.py", line) for n, line in enumerate(range(10, 15), start=1)]

    async def scenario(fake: FakeBitbucketDcReviews, pub: Any, pr: PullRequestTarget) -> None:
        posted = await pub.post(pr, batch)
        found = await pub.existing(pr)
        assert found == posted and len(found) == 5
        assert fake.calls_to("GET", "/activities$") == 3  # 6 activities (one OPENED), 2 a page

    run_dc(scenario, fake)


def test_dc_report_makes_no_call() -> None:
    async def scenario(fake: FakeBitbucketDcReviews, pub: Any, pr: PullRequestTarget) -> None:
        assert await pub.report(pr, [], conclusion="failure", summary="bad") == ""
        assert fake.calls == []

    run_dc(scenario)
