"""GerritPublisher over HTTP against the fake Gerrit review API."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable

import pytest

from processors.publishing import fingerprint_in
from sinks.scm.base import PullRequestTarget, build_publisher
from sinks.scm.gerrit import RESOLVED_TEXT, TAG, GerritPublisher
from sources.github_api import SourceFetchError
from tests.fakes.scm_reviews.base import RecordedSleep, serve
from tests.fakes.scm_reviews.findings import review_comment
from tests.fakes.scm_reviews.gerrit import FakeGerritReviews

PROJECT = "platform/core"
NUMBER = 42
HEAD = "c0ffee" * 6 + "beef"
DIFF = """\
diff --git a/app/main.py b/app/main.py
--- a/app/main.py
+++ b/app/main.py
@@ -1,3 +1,4 @@
 import os
+import sys
 def run():
     return os.getcwd()
diff --git a/app/util.py b/app/util.py
--- a/app/util.py
+++ b/app/util.py
@@ -10,2 +10,3 @@
 x = 1
+y = 2
 z = 3
"""
LENGTHS = {"app/main.py": 40, "app/util.py": 30}
PR = PullRequestTarget("gerrit", "acme", PROJECT, NUMBER, HEAD)


comment = functools.partial(review_comment, on=PR)


def run(
    scenario: Callable[[FakeGerritReviews, GerritPublisher, list[float]], Awaitable[None]],
    *,
    robot_comments: bool = False,
) -> None:
    fake = FakeGerritReviews()
    fake.add_pull(PROJECT, NUMBER, HEAD, DIFF, file_lengths=LENGTHS)
    sleep = RecordedSleep()
    serve(
        fake,
        lambda url: GerritPublisher(url, "bot:secret", sleep=sleep, robot_comments=robot_comments),
        lambda f, pub: scenario(f, pub, sleep.waits),
    )


def test_batch_is_one_review_call_with_every_comment_on_its_line() -> None:
    batch = [
        comment(1, "app/main.py", 2),
        comment(2, "app/util.py", 10, 12),
        comment(3, "app/main.py", 30),
    ]

    async def scenario(fake: FakeGerritReviews, pub: GerritPublisher, _: list[float]) -> None:
        posted = await pub.post(PR, batch)
        assert fake.calls_to("POST", r"/a/changes/.*/review$") == 1
        assert fake.calls_to("POST") == 1
        stored = {fingerprint_in(c["message"]): c for c in fake.comments(PROJECT, NUMBER)}
        assert set(stored) == {c.fingerprint for c in batch}
        for c in batch:
            got = stored[c.fingerprint]
            assert (got["path"], got["line"], got["message"]) == (c.path, c.end_line, c.body)
            assert got["unresolved"] is True and got["tag"] == TAG and not got["robot"]
            assert got["patch_set"] == 1 and got["commit_id"] == HEAD
        assert stored[batch[1].fingerprint]["range"] == {
            "start_line": 10,
            "start_character": 0,
            "end_line": 12,
            "end_character": 0,
        }
        assert {fp: p.comment_id for fp, p in posted.items()} == {
            fp: c["id"] for fp, c in stored.items()
        }
        assert not any(p.on_file or p.resolved for p in posted.values())
        assert await pub.existing(PR) == posted

    run(scenario)


def test_line_past_the_file_end_falls_back_to_file_then_unknown_file_to_message() -> None:
    batch = [
        comment(1, "app/main.py", 2),
        comment(2, "app/util.py", 99),  # util.py has 30 lines: Gerrit refuses the line
        comment(3, "docs/other.md", 5),  # not in the patch set: Gerrit refuses the file
    ]

    async def scenario(fake: FakeGerritReviews, pub: GerritPublisher, _: list[float]) -> None:
        posted = await pub.post(PR, batch)
        # Refused twice (atomically), stored once.
        assert fake.calls_to("POST", "/review$") == 3
        assert len(fake.messages(PROJECT, NUMBER)) == 1
        stored = {fingerprint_in(c["message"]): c for c in fake.comments(PROJECT, NUMBER)}
        assert stored[batch[0].fingerprint]["line"] == 2
        assert stored[batch[1].fingerprint]["path"] == "app/util.py"
        assert "line" not in stored[batch[1].fingerprint]
        assert batch[2].fingerprint not in stored
        message = fake.messages(PROJECT, NUMBER)[0]["message"]
        assert batch[2].body in message and "docs/other.md:5" in message
        assert [posted[c.fingerprint].on_file for c in batch] == [False, True, True]
        found = await pub.existing(PR)
        assert set(found) == {c.fingerprint for c in batch}
        assert found[batch[2].fingerprint].comment_id == fake.messages(PROJECT, NUMBER)[0]["id"]
        assert found == posted

    run(scenario)


def test_rate_limit_waits_what_the_server_asked_then_posts_once() -> None:
    async def scenario(fake: FakeGerritReviews, pub: GerritPublisher, waits: list[float]) -> None:
        fake.fail("POST", "/review$", 429, headers={"Retry-After": "3"})
        await pub.post(PR, [comment(1, "app/main.py", 2)])
        assert waits == [3.0]
        assert fake.calls_to("POST", "/review$") == 2
        assert len(fake.comments(PROJECT, NUMBER)) == 1

    run(scenario)


@pytest.mark.parametrize("after", [False, True])
def test_server_error_is_retryable_and_existing_tells_whether_it_acted(after: bool) -> None:
    batch = [comment(1, "app/main.py", 2)]

    async def scenario(fake: FakeGerritReviews, pub: GerritPublisher, waits: list[float]) -> None:
        fake.fail("POST", "/review$", 502, after=after)
        with pytest.raises(SourceFetchError) as caught:
            await pub.post(PR, batch)
        assert caught.value.retryable and caught.value.status == 502
        assert fake.calls_to("POST", "/review$") == 1 and waits == []
        found = await pub.existing(PR)
        assert (batch[0].fingerprint in found) is after
        assert len(fake.comments(PROJECT, NUMBER)) == int(after)

    run(scenario)


def test_marker_round_trip_means_a_second_pass_posts_nothing() -> None:
    batch = [comment(1, "app/main.py", 2), comment(2, "app/util.py", 11)]

    async def scenario(fake: FakeGerritReviews, pub: GerritPublisher, _: list[float]) -> None:
        await pub.post(PR, batch)
        shown = await pub.existing(PR)
        again = [c for c in batch if c.fingerprint not in shown]
        assert again == []
        assert await pub.post(PR, again) == {}
        assert fake.calls_to("POST") == 1
        # A person quoting our comment in a reply carries the marker but is not ours.
        first = shown[batch[0].fingerprint].comment_id
        fake.reply(PROJECT, NUMBER, first, "> " + batch[0].body + "\n\nWhy?", done=False)
        assert await pub.existing(PR) == shown

    run(scenario)


def test_resolve_replies_unresolved_false_once() -> None:
    batch = [comment(1, "app/main.py", 2), comment(2, "app/util.py", 10, 11)]

    async def scenario(fake: FakeGerritReviews, pub: GerritPublisher, _: list[float]) -> None:
        posted = await pub.post(PR, batch)
        target = posted[batch[1].fingerprint]
        await pub.resolve(PR, target)
        assert not fake.unresolved(PROJECT, NUMBER, target.thread_id)
        reply = fake.comments(PROJECT, NUMBER)[-1]
        assert reply["in_reply_to"] == target.thread_id and reply["message"] == RESOLVED_TEXT
        assert reply["line"] == 11 and reply["path"] == "app/util.py"
        found = await pub.existing(PR)
        assert found[batch[1].fingerprint].resolved
        assert not found[batch[0].fingerprint].resolved
        writes = fake.calls_to("POST")
        await pub.resolve(PR, target)
        await pub.resolve(PR, found[batch[1].fingerprint])
        assert fake.calls_to("POST") == writes

    run(scenario)


def test_a_person_marking_done_reads_as_resolved_and_reopening_as_open() -> None:
    async def scenario(fake: FakeGerritReviews, pub: GerritPublisher, _: list[float]) -> None:
        posted = await pub.post(PR, [comment(1, "app/main.py", 2)])
        thread = posted[f"{1:016x}"].thread_id
        fake.reply(PROJECT, NUMBER, thread, "Done", done=True)
        assert (await pub.existing(PR))[f"{1:016x}"].resolved
        fake.reply(PROJECT, NUMBER, thread, "Actually no", done=False)
        assert not (await pub.existing(PR))[f"{1:016x}"].resolved

    run(scenario)


def test_message_fallback_has_nothing_to_resolve() -> None:
    async def scenario(fake: FakeGerritReviews, pub: GerritPublisher, _: list[float]) -> None:
        posted = await pub.post(PR, [comment(3, "docs/other.md", 5)])
        writes = fake.calls_to("POST")
        await pub.resolve(PR, posted[f"{3:016x}"])
        assert fake.calls_to("POST") == writes

    run(scenario)


def test_robot_comments_mode_posts_and_reads_robot_comments() -> None:
    batch = [comment(1, "app/main.py", 2)]

    async def scenario(fake: FakeGerritReviews, pub: GerritPublisher, _: list[float]) -> None:
        posted = await pub.post(PR, batch)
        (stored,) = fake.comments(PROJECT, NUMBER)
        assert stored["robot"] and stored["robot_id"] == "codereview"
        assert stored["robot_run_id"] == HEAD[:12]
        assert stored["properties"] == {"fingerprint": batch[0].fingerprint}
        await pub.resolve(PR, posted[batch[0].fingerprint])
        assert (await pub.existing(PR))[batch[0].fingerprint].resolved

    run(scenario, robot_comments=True)


def test_report_makes_no_call_and_registry_builds_it() -> None:
    async def scenario(fake: FakeGerritReviews, pub: GerritPublisher, _: list[float]) -> None:
        assert await pub.report(PR, [], conclusion="success", summary="ok") == ""
        assert fake.calls == []

    run(scenario)
    built = build_publisher("gerrit", base_url="http://127.0.0.1:1", token="")
    assert isinstance(built, GerritPublisher) and built.source == "gerrit"
    assert built.http.base_url == "http://127.0.0.1:1"
    asyncio.run(built.close())
