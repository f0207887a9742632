"""``GitLabPublisher`` over HTTP against ``FakeGitLabReviews`` (GitLab's documented shapes).

The fake places positions as GitLab does (400 for a line outside the diff,
and for an unchanged line sent without its ``old_line``), so the retry and
fallback paths are the real ones.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

import pytest

from processors.publishing import fingerprint_in, marker, to_post
from sinks.scm.base import PullRequestTarget, build_publisher
from sinks.scm.gitlab import GitLabPublisher
from sources.github_api import SourceFetchError
from tests.fakes.scm_reviews.base import RecordedSleep, serve
from tests.fakes.scm_reviews.diffs import RANGE_FIX, TWO_FILE_DIFF
from tests.fakes.scm_reviews.findings import comments_of, review_finding
from tests.fakes.scm_reviews.gitlab import FakeGitLabReviews

REPO = "group/sub/app"
HEAD = "a" * 40
BASE = "b" * 40
MR = PullRequestTarget("gitlab", "t1", REPO, 5, HEAD)
DIFFS = "/discussions$"

finding = functools.partial(review_finding, on=MR)

# Added lines only: each lands on the first try.
ADDED = [
    finding("one", "src/app.py", 2),
    finding("range", "src/app.py", 5, 6, suggestion=RANGE_FIX),
    finding("new", "src/new.py", 1, 3),
]


def run(
    body: Callable[[FakeGitLabReviews, GitLabPublisher], Awaitable[None]],
    *,
    page_size: int = 100,
    sleep: RecordedSleep | None = None,
) -> None:
    fake = FakeGitLabReviews(page_size=page_size)
    fake.add_merge_request(REPO, 5, TWO_FILE_DIFF, head_sha=HEAD, base_sha=BASE)
    serve(fake, lambda url: GitLabPublisher(url, "glpat", sleep=sleep or RecordedSleep()), body)


def first_notes(fake: FakeGitLabReviews) -> dict[str, dict[str, Any]]:
    """The first note of each discussion, by the fingerprint it carries."""
    found: dict[str, dict[str, Any]] = {}
    for discussion in fake.discussions(REPO, 5):
        note = discussion["notes"][0]
        found[str(fingerprint_in(note["body"]))] = {**note, "discussion_id": discussion["id"]}
    return found


def test_each_comment_is_one_discussion_on_its_head_line_with_gitlab_suggestions() -> None:
    comments = comments_of(ADDED)

    async def body(fake: FakeGitLabReviews, publisher: GitLabPublisher) -> None:
        posted = await publisher.post(MR, comments)
        notes = first_notes(fake)
        assert fake.calls[0] == ("GET", f"/api/v4/projects/{REPO}/merge_requests/5")
        assert fake.calls_to("POST", DIFFS) == 3
        assert len(fake.calls) == 4  # diff_refs once, then one call per comment
        for comment, line in zip(comments, (2, 6, 1), strict=True):
            note = notes[comment.fingerprint]
            position = note["position"]
            assert position["position_type"] == "text"
            assert (position["new_path"], position["old_path"]) == (comment.path, comment.path)
            assert (position["new_line"], position["old_line"]) == (line, None)
            assert (position["base_sha"], position["start_sha"], position["head_sha"]) == (
                BASE,
                BASE,
                HEAD,
            )
            assert note["type"] == "DiffNote"
            assert marker(comment.fingerprint) in note["body"]
            assert posted[comment.fingerprint].comment_id == str(note["id"])
            assert posted[comment.fingerprint].thread_id == note["discussion_id"]
            assert posted[comment.fingerprint].on_file is False
        assert notes[comments[0].fingerprint]["body"] == comments[0].body  # verbatim
        ranged = notes[comments[1].fingerprint]["body"]
        assert ranged == comments[1].body.replace("```suggestion\n", "```suggestion:-1+0\n")

    run(body)


def test_an_unchanged_line_is_sent_again_with_its_old_line() -> None:
    comments = comments_of([finding("ctx", "src/app.py", 4), finding("ctx2", "src/app.py", 23)])

    async def body(fake: FakeGitLabReviews, publisher: GitLabPublisher) -> None:
        posted = await publisher.post(MR, comments)
        notes = first_notes(fake)
        assert [notes[c.fingerprint]["position"]["old_line"] for c in comments] == [3, 21]
        assert not any(p.on_file for p in posted.values())
        # first 400 reads the diffs once; the second comment is right the first time
        assert fake.calls_to("POST", DIFFS) == 3
        assert fake.calls_to("GET", r"/diffs$") == 1

    run(body)


def test_lines_outside_the_diff_fall_back_to_file_then_plain_discussions() -> None:
    comments = comments_of(
        [ADDED[0], finding("far", "src/app.py", 15), finding("gone", "src/other.py", 3)]
    )
    fps = [c.fingerprint for c in comments]

    async def body(fake: FakeGitLabReviews, publisher: GitLabPublisher) -> None:
        posted = await publisher.post(MR, comments)
        assert [posted[fp].on_file for fp in fps] == [False, True, True]
        notes = first_notes(fake)
        far, gone = notes[fps[1]], notes[fps[2]]
        assert far["position"]["position_type"] == "file"
        assert far["position"]["new_path"] == "src/app.py"
        assert far["body"] == "Line 15 (outside the diff):\n\n" + comments[1].body
        assert "position" not in gone and gone["type"] == "DiscussionNote"
        assert gone["body"].startswith("`src/other.py` line 3 (outside the diff):")
        shown = await publisher.existing(MR)
        assert set(shown) == set(fps)
        assert [shown[fp].on_file for fp in fps] == [False, True, True]
        assert {fp: (s.comment_id, s.thread_id) for fp, s in shown.items()} == {
            fp: (p.comment_id, p.thread_id) for fp, p in posted.items()
        }

    run(body)


def test_a_suggestion_on_a_fallback_note_is_a_plain_block() -> None:
    [comment] = comments_of([finding("fix", "src/app.py", 5, 6, suggestion=RANGE_FIX)])
    moved = replace(comment, start_line=14, end_line=15)

    async def body(fake: FakeGitLabReviews, publisher: GitLabPublisher) -> None:
        posted = await publisher.post(MR, [moved])
        assert posted[moved.fingerprint].on_file
        note = first_notes(fake)[moved.fingerprint]
        assert "```suggestion" not in note["body"]
        assert note["body"].startswith("Lines 14-15 (outside the diff):")

    run(body)


def test_429_with_retry_after_waits_the_asked_time_and_posts_once() -> None:
    sleep = RecordedSleep()

    async def body(fake: FakeGitLabReviews, publisher: GitLabPublisher) -> None:
        fake.fail("POST", DIFFS, 429, headers={"Retry-After": "3"})
        posted = await publisher.post(MR, comments_of(ADDED[:1]))
        assert len(posted) == 1
        assert sleep.waits == [3.0]
        assert fake.calls_to("POST", DIFFS) == 2
        assert len(fake.discussions(REPO, 5)) == 1

    run(body, sleep=sleep)


@pytest.mark.parametrize("after", [False, True])
def test_a_5xx_is_raised_retryable_and_existing_tells_whether_it_landed(after: bool) -> None:
    async def body(fake: FakeGitLabReviews, publisher: GitLabPublisher) -> None:
        fake.fail("POST", DIFFS, 500, after=after)
        with pytest.raises(SourceFetchError) as raised:
            await publisher.post(MR, comments_of(ADDED[:1]))
        assert raised.value.retryable is True
        assert fake.calls_to("POST", DIFFS) == 1  # a POST is never retried blindly
        shown = await publisher.existing(MR)
        assert (ADDED[0].fingerprint in shown) is after
        await publisher.post(MR, comments_of(to_post(ADDED, shown=shown)))
        fps = fake.fingerprints(REPO, 5)
        assert sorted(fps) == sorted(f.fingerprint for f in ADDED)

    run(body)


def test_posting_what_existing_shows_is_a_no_op_marker_round_trip() -> None:
    async def body(fake: FakeGitLabReviews, publisher: GitLabPublisher) -> None:
        await publisher.post(MR, comments_of(ADDED[:2]))
        shown = await publisher.existing(MR)
        again = to_post(ADDED, shown=shown)
        assert [f.fingerprint for f in again] == [ADDED[2].fingerprint]
        calls = len(fake.calls)
        assert await publisher.post(MR, []) == {}
        assert len(fake.calls) == calls
        await publisher.post(MR, comments_of(again))
        fps = fake.fingerprints(REPO, 5)
        assert len(fps) == len(set(fps)) == 3
        assert fake.calls_to("GET", r"/merge_requests/5$") == 1  # diff_refs cached per head

    run(body)


def test_resolve_resolves_discussions_idempotently_and_leaves_plain_notes() -> None:
    comments = comments_of([*ADDED[:2], finding("far", "src/app.py", 15)])
    plain = finding("plain", "src/app.py", 2)

    async def body(fake: FakeGitLabReviews, publisher: GitLabPublisher) -> None:
        posted = await publisher.post(MR, comments)
        for item in posted.values():
            await publisher.resolve(MR, item)
            await publisher.resolve(MR, item)  # a second PUT is harmless
        assert fake.calls_to("PUT", r"/discussions/\w+$") == 6
        assert all(n["resolved"] for d in fake.discussions(REPO, 5) for n in d["notes"])
        shown = await publisher.existing(MR)
        assert len(shown) == 3 and all(s.resolved for s in shown.values())
        calls = len(fake.calls)
        for item in shown.values():
            await publisher.resolve(MR, item)  # known resolved: no call
        assert len(fake.calls) == calls
        fake.add_note(REPO, 5, "old note\n" + marker(plain.fingerprint))
        note = (await publisher.existing(MR))[plain.fingerprint]
        assert (note.resolved, note.on_file) == (False, True)
        await publisher.resolve(MR, note)  # GitLab says 403: not resolvable, left alone
        [stored] = [d for d in fake.discussions(REPO, 5) if d["id"] == note.thread_id]
        assert stored["notes"][0]["resolved"] is False

    run(body)


def test_existing_reads_every_page() -> None:
    many = [finding(f"n{i}", "src/new.py", 1 + i % 3) for i in range(5)]

    async def body(fake: FakeGitLabReviews, publisher: GitLabPublisher) -> None:
        posted = await publisher.post(MR, comments_of(many))
        shown = await publisher.existing(MR)
        assert set(shown) == set(posted) == {f.fingerprint for f in many}
        assert fake.calls_to("GET", DIFFS) == 3  # 5 discussions, 2 a page

    run(body, page_size=2)


def test_an_older_head_takes_the_diff_refs_of_its_mr_version() -> None:
    newer = "c" * 40

    async def body(fake: FakeGitLabReviews, publisher: GitLabPublisher) -> None:
        fake.add_merge_request(
            REPO, 5, TWO_FILE_DIFF, head_sha=newer, base_sha=BASE, start_sha="d" * 40
        )
        await publisher.post(MR, comments_of(ADDED[:1]))
        await publisher.post(replace(MR, head_sha=newer), comments_of(ADDED[1:2]))
        shas = [
            (n["position"]["head_sha"], n["position"]["start_sha"])
            for n in first_notes(fake).values()
        ]
        assert shas == [(HEAD, BASE), (newer, "d" * 40)]
        assert fake.calls_to("GET", r"/versions$") == 1

    run(body)


def test_report_makes_no_call() -> None:
    async def body(fake: FakeGitLabReviews, publisher: GitLabPublisher) -> None:
        answer = await publisher.report(MR, ADDED, conclusion="failure", summary="s")
        assert answer == ""
        assert fake.calls == []

    run(body)


def test_the_registry_builds_this_publisher() -> None:
    publisher = build_publisher("gitlab", base_url="http://127.0.0.1:1", token="t")
    assert isinstance(publisher, GitLabPublisher) and publisher.source == "gitlab"
