"""GiteaPublisher (Gitea and Forgejo) over HTTP against the fake Gitea review API."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from processors.publishing import fingerprint_in
from sinks.scm.base import PullRequestTarget, build_publisher
from sinks.scm.gitea import OUTDATED_PREFIX, ForgejoPublisher, GiteaPublisher
from sources.github_api import SourceFetchError
from tests.fakes.scm_reviews.base import RecordedSleep, serve
from tests.fakes.scm_reviews.findings import review_comment
from tests.fakes.scm_reviews.gitea import FakeGiteaReviews

REPO = "acme/widgets"
INDEX = 9
HEAD = "d00d" * 10
DIFF = """\
diff --git a/src/app.py b/src/app.py
--- a/src/app.py
+++ b/src/app.py
@@ -1,3 +1,4 @@
 import os
+import sys
 def run():
     return os.getcwd()
@@ -20,2 +21,3 @@
 a = 1
+b = 2
 c = 3
diff --git a/src/lib.py b/src/lib.py
--- a/src/lib.py
+++ b/src/lib.py
@@ -5,2 +5,3 @@
 x = 1
+y = 2
 z = 3
"""
LENGTHS = {"src/app.py": 60, "src/lib.py": 20}
PR = PullRequestTarget("gitea", "acme", REPO, INDEX, HEAD)


BY_SOURCE: dict[str, type[GiteaPublisher]] = {
    "gitea": GiteaPublisher,
    "forgejo": ForgejoPublisher,
}

comment = functools.partial(review_comment, on=PR, severity="HIGH")


def run(
    scenario: Callable[[FakeGiteaReviews, GiteaPublisher, list[float]], Awaitable[None]],
    *,
    source: str = "gitea",
    **fake_options: Any,
) -> None:
    fake = FakeGiteaReviews(**fake_options)
    fake.add_pull(REPO, INDEX, HEAD, DIFF, file_lengths=LENGTHS)
    sleep = RecordedSleep()
    serve(
        fake,
        lambda url: BY_SOURCE[source](url, "t0ken", sleep=sleep),
        lambda f, pub: scenario(f, pub, sleep.waits),
    )


def test_batch_is_one_review_with_every_comment_on_a_diff_line() -> None:
    batch = [
        comment(1, "src/app.py", 2),
        comment(2, "src/app.py", 21, 23),
        comment(3, "src/lib.py", 6),
    ]

    async def scenario(fake: FakeGiteaReviews, pub: GiteaPublisher, _: list[float]) -> None:
        posted = await pub.post(PR, batch)
        assert fake.calls_to("POST") == 1
        assert fake.calls_to("POST", r"/api/v1/repos/acme/widgets/pulls/9/reviews$") == 1
        (review,) = fake.pull(REPO, INDEX).reviews
        assert review["state"] == "COMMENT" and review["commit_id"] == HEAD
        stored = {fingerprint_in(c["body"]): c for c in fake.submitted_comments(REPO, INDEX)}
        assert set(stored) == {c.fingerprint for c in batch}
        expected_lines = {
            batch[0].fingerprint: 2,
            batch[1].fingerprint: 23,
            batch[2].fingerprint: 6,
        }
        for c in batch:
            got = stored[c.fingerprint]
            assert (got["path"], got["position"], got["body"]) == (
                c.path,
                expected_lines[c.fingerprint],
                c.body,
            )
        assert fake.outside_diff(REPO, INDEX) == []
        assert {fp: p.comment_id for fp, p in posted.items()} == {
            fp: str(c["id"]) for fp, c in stored.items()
        }
        assert all(p.thread_id == str(review["id"]) for p in posted.values())
        assert await pub.existing(PR) == posted

    run(scenario)


def test_range_anchors_on_its_last_line_the_diff_shows() -> None:
    async def scenario(fake: FakeGiteaReviews, pub: GiteaPublisher, _: list[float]) -> None:
        await pub.post(PR, [comment(1, "src/app.py", 3, 12)])  # diff shows 1-4 and 21-23
        (stored,) = fake.submitted_comments(REPO, INDEX)
        assert stored["position"] == 4

    run(scenario)


def test_lines_outside_the_diff_become_pr_comments_that_existing_finds() -> None:
    batch = [
        comment(1, "src/app.py", 2),
        comment(2, "src/app.py", 40),  # in the file, not in the diff: Gitea would accept it unseen
        comment(3, "src/lib.py", 55, 57),  # past the file's end: Gitea would answer 500
        comment(4, "README.md", 1),  # a file the PR does not touch
    ]

    async def scenario(fake: FakeGiteaReviews, pub: GiteaPublisher, _: list[float]) -> None:
        posted = await pub.post(PR, batch)
        assert fake.calls_to("POST", "/reviews$") == 1
        assert fake.calls_to("POST", "/issues/9/comments$") == 3
        assert fake.outside_diff(REPO, INDEX) == []
        (inline,) = fake.submitted_comments(REPO, INDEX)
        assert fingerprint_in(inline["body"]) == batch[0].fingerprint
        notes = {
            fingerprint_in(c["body"]): c["body"] for c in fake.pull(REPO, INDEX).issue_comments
        }
        assert set(notes) == {c.fingerprint for c in batch[1:]}
        assert notes[batch[1].fingerprint].startswith("`src/app.py` line 40 ")
        assert notes[batch[2].fingerprint].startswith("`src/lib.py` lines 55-57 ")
        assert all(c.body in notes[c.fingerprint] for c in batch[1:])
        assert [posted[c.fingerprint].on_file for c in batch] == [False, True, True, True]
        assert await pub.existing(PR) == posted

    run(scenario)


def test_the_fake_behaves_like_gitea_for_bad_lines() -> None:
    """Why ``post`` reads the diff first: Gitea silently accepts or 500s, never a clean 4xx."""

    async def scenario(fake: FakeGiteaReviews, pub: GiteaPublisher, _: list[float]) -> None:
        review = f"/api/v1/repos/{REPO}/pulls/{INDEX}/reviews"
        body = {"commit_id": HEAD, "event": "COMMENT", "body": ""}
        outside = {"path": "src/app.py", "body": "x", "new_position": 40}
        await pub.http.send("POST", review, json_body={**body, "comments": [outside]})
        assert len(fake.outside_diff(REPO, INDEX)) == 1
        past_end = {"path": "src/lib.py", "body": "y", "new_position": 99}
        with pytest.raises(SourceFetchError) as caught:
            await pub.http.send("POST", review, json_body={**body, "comments": [outside, past_end]})
        assert caught.value.status == 500
        assert len(fake.submitted_comments(REPO, INDEX)) == 1
        assert [r["state"] for r in fake.pull(REPO, INDEX).reviews] == ["COMMENT", "PENDING"]

    run(scenario)


def test_rate_limit_waits_what_the_server_asked_then_posts_once() -> None:
    async def scenario(fake: FakeGiteaReviews, pub: GiteaPublisher, waits: list[float]) -> None:
        fake.fail("POST", "/reviews$", 429, headers={"Retry-After": "2"})
        await pub.post(PR, [comment(1, "src/app.py", 2)])
        assert waits == [2.0]
        assert fake.calls_to("POST", "/reviews$") == 2
        assert len(fake.submitted_comments(REPO, INDEX)) == 1

    run(scenario)


@pytest.mark.parametrize("after", [False, True])
def test_server_error_is_retryable_and_existing_tells_whether_it_acted(after: bool) -> None:
    batch = [comment(1, "src/app.py", 2)]

    async def scenario(fake: FakeGiteaReviews, pub: GiteaPublisher, waits: list[float]) -> None:
        fake.fail("POST", "/reviews$", 502, after=after)
        with pytest.raises(SourceFetchError) as caught:
            await pub.post(PR, batch)
        assert caught.value.retryable and caught.value.status == 502
        assert fake.calls_to("POST", "/reviews$") == 1 and waits == []
        found = await pub.existing(PR)
        assert (batch[0].fingerprint in found) is after
        assert len(fake.submitted_comments(REPO, INDEX)) == int(after)

    run(scenario)


def test_marker_round_trip_means_a_second_pass_posts_nothing() -> None:
    batch = [comment(1, "src/app.py", 2), comment(2, "src/app.py", 40)]

    async def scenario(fake: FakeGiteaReviews, pub: GiteaPublisher, _: list[float]) -> None:
        await pub.post(PR, batch)
        writes = fake.calls_to("POST")
        shown = await pub.existing(PR)
        again = [c for c in batch if c.fingerprint not in shown]
        assert again == [] and await pub.post(PR, again) == {}
        assert fake.calls_to("POST") == writes

    run(scenario)


@pytest.mark.parametrize("source", ["gitea", "forgejo"])
def test_resolve_without_api_marks_the_body_outdated_once(source: str) -> None:
    batch = [comment(1, "src/app.py", 2), comment(2, "src/app.py", 40)]

    async def scenario(fake: FakeGiteaReviews, pub: GiteaPublisher, _: list[float]) -> None:
        posted = await pub.post(PR, batch)
        for c in batch:
            await pub.resolve(PR, posted[c.fingerprint])
        (inline,) = fake.submitted_comments(REPO, INDEX)
        (note,) = fake.pull(REPO, INDEX).issue_comments
        for stored in (inline, note):
            assert stored["body"].startswith(OUTDATED_PREFIX)
            assert fingerprint_in(stored["body"]) in {c.fingerprint for c in batch}
        assert fake.calls_to("POST", "/resolve$") == 1  # probed once, then remembered
        assert fake.calls_to("PATCH") == 2
        found = await pub.existing(PR)
        assert all(found[c.fingerprint].resolved for c in batch)
        writes = fake.calls_to("PATCH") + fake.calls_to("POST")
        for c in batch:
            await pub.resolve(PR, found[c.fingerprint])
            await pub.resolve(PR, posted[c.fingerprint])
        assert fake.calls_to("PATCH") + fake.calls_to("POST") == writes
        assert pub.source == source

    run(scenario, source=source)


def test_resolve_with_the_api_sets_the_resolver() -> None:
    async def scenario(fake: FakeGiteaReviews, pub: GiteaPublisher, _: list[float]) -> None:
        posted = await pub.post(PR, [comment(1, "src/app.py", 2)])
        target = posted[f"{1:016x}"]
        await pub.resolve(PR, target)
        (stored,) = fake.submitted_comments(REPO, INDEX)
        assert stored["resolver"] is not None and not stored["body"].startswith(OUTDATED_PREFIX)
        assert (await pub.existing(PR))[f"{1:016x}"].resolved
        await pub.resolve(PR, target)
        assert fake.calls_to("POST", "/resolve$") == 1 and fake.calls_to("PATCH") == 0

    run(scenario, resolve_api=True)


def test_resolved_in_the_ui_reads_as_resolved() -> None:
    async def scenario(fake: FakeGiteaReviews, pub: GiteaPublisher, _: list[float]) -> None:
        posted = await pub.post(PR, [comment(1, "src/app.py", 2)])
        fake.resolve_in_ui(REPO, INDEX, int(posted[f"{1:016x}"].comment_id))
        assert (await pub.existing(PR))[f"{1:016x}"].resolved

    run(scenario)


def test_existing_reads_every_page_and_ignores_other_comments() -> None:
    batch = [comment(n, "src/app.py", 2) for n in range(1, 4)]
    notes = [comment(n, "src/app.py", 40 + n) for n in range(4, 9)]

    async def scenario(fake: FakeGiteaReviews, pub: GiteaPublisher, _: list[float]) -> None:
        for c in batch:  # three reviews, one comment each
            await pub.post(PR, [c])
        await pub.post(PR, notes)  # five PR comments
        issue = f"/api/v1/repos/{REPO}/issues/{INDEX}/comments"
        await pub.http.send("POST", issue, json_body={"body": "LGTM, no marker here"})
        found = await pub.existing(PR)
        assert set(found) == {c.fingerprint for c in batch + notes}
        assert fake.calls_to("GET", "/reviews$") == 2  # 3 reviews, pages of 2
        assert fake.calls_to("GET", "/issues/9/comments$") == 3  # 6 comments, pages of 2

    run(scenario, page_size=2)


def test_report_makes_no_call_and_registry_builds_both_sources() -> None:
    async def scenario(fake: FakeGiteaReviews, pub: GiteaPublisher, _: list[float]) -> None:
        assert await pub.report(PR, [], conclusion="failure", summary="x") == ""
        assert fake.calls == []

    run(scenario)
    for source in ("gitea", "forgejo"):
        built = build_publisher(source, base_url="http://127.0.0.1:1", token="t")
        assert type(built) is BY_SOURCE[source] and built.source == source
        asyncio.run(built.close())
    with pytest.raises(ValueError):
        build_publisher("gogs", base_url="http://127.0.0.1:1", token="t")
