"""``GitHubPublisher`` over HTTP against ``FakeGitHubReviews`` (GitHub's documented shapes).

The fake refuses a review whole (422) when a comment's line is outside the
diff, as GitHub does, so the fallback path is the real one.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from dataclasses import replace

import pytest

from processors.publishing import render, to_post
from sinks.scm.base import PullRequestTarget, build_publisher
from sinks.scm.github import GitHubPublisher, graphql_url
from sources.github_api import SourceFetchError
from tests.fakes.scm_reviews.base import RecordedSleep, serve
from tests.fakes.scm_reviews.diffs import RANGE_FIX, TWO_FILE_DIFF
from tests.fakes.scm_reviews.findings import comments_of, review_finding
from tests.fakes.scm_reviews.github import FakeGitHubReviews

REPO = "octo/app"
HEAD = "a" * 40
PR = PullRequestTarget("github", "t1", REPO, 7, HEAD)

finding = functools.partial(review_finding, on=PR)

INLINE = [
    finding("one", "src/app.py", 2),
    finding("range", "src/app.py", 5, 6, suggestion=RANGE_FIX, severity="HIGH"),
    finding("new", "src/new.py", 1, 3),
]


def run(
    body: Callable[[FakeGitHubReviews, GitHubPublisher], Awaitable[None]],
    *,
    page_size: int = 100,
    sleep: RecordedSleep | None = None,
) -> None:
    fake = FakeGitHubReviews(page_size=page_size)
    fake.add_pull(REPO, 7, TWO_FILE_DIFF, head_sha=HEAD)
    serve(fake, lambda url: GitHubPublisher(url, "ghs_token", sleep=sleep or RecordedSleep()), body)


def test_a_batch_is_one_review_on_the_right_lines_with_the_body_verbatim() -> None:
    comments = comments_of(INLINE)

    async def body(fake: FakeGitHubReviews, publisher: GitHubPublisher) -> None:
        posted = await publisher.post(PR, comments)
        stored = {c["body"]: c for c in fake.comments(REPO, 7)}
        assert set(posted) == {c.fingerprint for c in comments}
        for comment in comments:
            row = stored[comment.body]  # verbatim, marker included
            assert (
                posted[comment.fingerprint].comment_id == f"review:{row['pull_request_review_id']}"
            )
            assert posted[comment.fingerprint].on_file is False
            assert (row["path"], row["line"], row["side"]) == (
                comment.path,
                comment.end_line,
                "RIGHT",
            )
            assert row["subject_type"] == "line"
            assert row["commit_id"] == HEAD
        ranged = stored[comments[1].body]
        assert (ranged["start_line"], ranged["start_side"]) == (5, "RIGHT")
        assert "```suggestion\n    print(sys.argv)\n    return 1\n```" in ranged["body"]
        assert stored[comments[0].body]["start_line"] is None
        assert fake.calls_to("POST", r"/reviews$") == 1
        assert len(fake.calls) == 1  # ids are not read back: one call per batch

    run(body)


def test_existing_finds_every_posted_comment_with_ids_and_threads_in_one_query() -> None:
    comments = comments_of(INLINE)

    async def body(fake: FakeGitHubReviews, publisher: GitHubPublisher) -> None:
        posted = await publisher.post(PR, comments)
        before = len(fake.calls)
        shown = await publisher.existing(PR)
        assert len(fake.calls) - before == 1  # one GraphQL call, no REST listing
        assert fake.calls[-1] == ("POST", "/graphql")
        threads = {t["comment_ids"][0]: t["id"] for t in fake.threads(REPO, 7)}
        assert set(shown) == set(posted)
        stored = {c["body"]: c for c in fake.comments(REPO, 7)}
        for fingerprint, found in shown.items():
            row = next(c for c in stored.values() if fingerprint in c["body"])
            assert found.comment_id == str(row["id"])
            assert posted[fingerprint].comment_id == f"review:{row['pull_request_review_id']}"
            assert found.thread_id == threads[int(found.comment_id)]
            assert (found.resolved, found.on_file) == (False, False)

    run(body)


def test_lines_outside_the_diff_go_on_the_nearest_shown_line_or_a_pr_note() -> None:
    comments = comments_of(
        [
            *INLINE[:2],
            finding("far", "src/app.py", 15),  # in a changed file, not in a hunk
            finding("gone", "src/other.py", 3),  # not in the PR at all
            finding("split", "src/app.py", 8, 22, suggestion=None),  # across two hunks
        ]
    )

    async def body(fake: FakeGitHubReviews, publisher: GitHubPublisher) -> None:
        posted = await publisher.post(PR, comments)
        fps = [c.fingerprint for c in comments]
        assert [posted[fp].on_file for fp in fps] == [False, False, False, True, False]
        assert fake.calls_to("POST", r"/reviews$") == 2  # refused whole (422), then placed
        assert fake.calls_to("GET", r"/files$") == 1
        stored = fake.comments(REPO, 7)
        by_fp = {fp: c for c in stored for fp in [c["body"].rsplit("fp=", 1)[1][:32]]}
        far = by_fp[fps[2]]  # 7 lines from both hunks: the lower line wins
        assert (far["subject_type"], far["path"], far["line"]) == ("line", "src/app.py", 8)
        assert far["body"].startswith("Line 15 (outside the diff):")
        assert comments[2].body in far["body"]
        assert fake.calls_to("POST", r"/pulls/7/comments$") == 0, "no call of its own"
        split = by_fp[fps[4]]  # no suggestion: narrowed to its first line in a hunk
        assert (split["line"], split["start_line"]) == (8, None)
        [note] = fake.issue_comments(REPO, 7)
        assert note["body"].startswith("`src/other.py` line 3 (outside the diff):")
        shown = await publisher.existing(PR)
        assert set(shown) == set(fps)
        assert [shown[fp].on_file for fp in fps] == [False, False, False, True, False]
        assert shown[fps[3]].comment_id == str(note["id"])
        assert sorted(fake.fingerprints(REPO, 7)) == sorted(fps)

    run(body)


def test_a_suggestion_outside_its_hunk_becomes_a_plain_block_on_the_nearest_line() -> None:
    [comment] = comments_of([finding("fix", "src/app.py", 5, 6, suggestion=RANGE_FIX)])
    moved = replace(comment, start_line=7, end_line=9)

    async def body(fake: FakeGitHubReviews, publisher: GitHubPublisher) -> None:
        posted = await publisher.post(PR, [moved])
        assert not posted[moved.fingerprint].on_file
        [stored] = fake.comments(REPO, 7)
        assert (stored["subject_type"], stored["line"], stored["start_line"]) == ("line", 7, None)
        assert "```suggestion" not in stored["body"]
        assert stored["body"].startswith("Lines 7-9 (outside the diff):")
        assert fake.calls_to("POST", r"/reviews$") == 2  # refused (422), then placed

    run(body)


BINARY_DIFF = (
    "diff --git a/img/logo.png b/img/logo.png\n"
    "index 1111111..2222222 100644\n"
    "Binary files a/img/logo.png and b/img/logo.png differ\n"
)


def test_a_file_the_diff_shows_no_line_of_gets_a_file_level_comment() -> None:
    target = PullRequestTarget("github", "t1", REPO, 8, HEAD)
    [comment] = comments_of([review_finding("logo", "img/logo.png", 1, on=target)])

    async def body(fake: FakeGitHubReviews, publisher: GitHubPublisher) -> None:
        fake.add_pull(REPO, 8, BINARY_DIFF, head_sha=HEAD)
        posted = await publisher.post(target, [comment])
        assert posted[comment.fingerprint].on_file
        [stored] = fake.comments(REPO, 8)
        assert (stored["subject_type"], stored["path"]) == ("file", "img/logo.png")
        assert stored["body"].startswith("Line 1 (outside the diff):")
        assert set(await publisher.existing(target)) == {comment.fingerprint}

    run(body)


def test_a_422_for_another_reason_is_raised_not_looped() -> None:
    wrong_head = PullRequestTarget("github", "t1", REPO, 7, "b" * 40)

    async def body(fake: FakeGitHubReviews, publisher: GitHubPublisher) -> None:
        with pytest.raises(SourceFetchError) as raised:
            await publisher.post(wrong_head, comments_of(INLINE[:1]))
        assert (raised.value.status, raised.value.retryable) == (422, False)
        assert fake.comments(REPO, 7) == []
        assert fake.calls_to("POST", r"/reviews$") == 1

    run(body)


def test_429_with_retry_after_waits_the_asked_time_and_posts_once() -> None:
    sleep = RecordedSleep()

    async def body(fake: FakeGitHubReviews, publisher: GitHubPublisher) -> None:
        fake.fail("POST", r"/reviews$", 429, headers={"Retry-After": "7"})
        posted = await publisher.post(PR, comments_of(INLINE))
        assert len(posted) == 3
        assert sleep.waits == [7.0]
        assert fake.calls_to("POST", r"/reviews$") == 2
        assert len(fake.comments(REPO, 7)) == 3

    run(body, sleep=sleep)


@pytest.mark.parametrize("after", [False, True])
def test_a_5xx_is_raised_retryable_and_existing_tells_whether_it_landed(after: bool) -> None:
    findings = INLINE
    comments = comments_of(findings)

    async def body(fake: FakeGitHubReviews, publisher: GitHubPublisher) -> None:
        fake.fail("POST", r"/reviews$", 502, after=after)
        with pytest.raises(SourceFetchError) as raised:
            await publisher.post(PR, comments)
        assert raised.value.retryable is True
        assert fake.calls_to("POST", r"/reviews$") == 1  # a POST is never retried blindly
        shown = await publisher.existing(PR)
        assert bool(shown) is after
        missing = to_post(findings, shown=shown)
        await publisher.post(PR, [render(f) for f in missing])
        assert sorted(fake.fingerprints(REPO, 7)) == sorted(c.fingerprint for c in comments)

    run(body)


def test_posting_what_existing_shows_is_a_no_op_marker_round_trip() -> None:
    async def body(fake: FakeGitHubReviews, publisher: GitHubPublisher) -> None:
        await publisher.post(PR, comments_of(INLINE[:2]))
        shown = await publisher.existing(PR)
        again = to_post(INLINE, shown=shown)
        assert [f.fingerprint for f in again] == [INLINE[2].fingerprint]
        calls = len(fake.calls)
        assert await publisher.post(PR, []) == {}
        assert len(fake.calls) == calls
        await publisher.post(PR, comments_of(again))
        fps = fake.fingerprints(REPO, 7)
        assert len(fps) == len(set(fps)) == 3

    run(body)


def test_resolve_resolves_threads_and_minimizes_pr_notes_and_is_harmless_twice() -> None:
    comments = comments_of(
        [*INLINE[:2], finding("far", "src/app.py", 15), finding("gone", "x.py", 1)]
    )

    async def body(fake: FakeGitHubReviews, publisher: GitHubPublisher) -> None:
        posted = await publisher.post(PR, comments)
        assert all(not p.thread_id for p in posted.values() if not p.on_file)
        for item in posted.values():  # from post: the thread is looked up once, then cached
            await publisher.resolve(PR, item)
        assert fake.calls_to("POST", r"/graphql$") == 1 + len(posted)
        assert all(t["isResolved"] for t in fake.threads(REPO, 7))
        assert [c["isMinimized"] for c in fake.issue_comments(REPO, 7)] == [True]
        shown = await publisher.existing(PR)
        assert all(p.resolved for p in shown.values()) and len(shown) == 4
        for item in shown.values():
            await publisher.resolve(PR, item)  # already resolved: no call
            unresolved = replace(item, resolved=False)
            await publisher.resolve(PR, unresolved)  # sent again: GitHub keeps it resolved
        assert all(t["isResolved"] for t in fake.threads(REPO, 7))

    run(body)


def test_existing_reads_every_page_of_threads_and_notes() -> None:
    inline = [finding(f"n{i}", "src/new.py", 1 + i % 3) for i in range(5)]
    notes = [finding(f"g{i}", "gone.py", 1) for i in range(3)]

    async def body(fake: FakeGitHubReviews, publisher: GitHubPublisher) -> None:
        posted = await publisher.post(PR, comments_of(inline + notes))
        assert len(posted) == 8
        before = fake.calls_to("POST", r"/graphql$")
        shown = await publisher.existing(PR)
        assert set(shown) == {f.fingerprint for f in inline + notes}
        assert fake.calls_to("POST", r"/graphql$") - before == 3  # ceil(5/2) thread pages

    run(body, page_size=2)


def test_report_creates_a_check_run_then_appends_annotations_in_batches_of_50() -> None:
    many = [
        finding(f"c{i}", "src/app.py", 2, severity=("HIGH", "MEDIUM", "LOW")[i % 3])
        for i in range(60)
    ]

    async def body(fake: FakeGitHubReviews, publisher: GitHubPublisher) -> None:
        check = await publisher.report(PR, many, conclusion="failure", summary="codereview: 60")
        [stored] = fake.check_runs(REPO)
        assert check == str(stored["id"])
        assert (stored["name"], stored["head_sha"], stored["conclusion"]) == (
            "codereview",
            HEAD,
            "failure",
        )
        assert len(stored["annotations"]) == 60
        assert fake.calls_to("POST", r"/check-runs$") == 1
        assert fake.calls_to("PATCH", r"/check-runs/\d+$") == 1
        levels = [a["annotation_level"] for a in stored["annotations"][:3]]
        assert levels == ["failure", "warning", "notice"]
        first = stored["annotations"][0]
        assert (first["path"], first["start_line"], first["end_line"]) == ("src/app.py", 2, 2)
        again = await publisher.report(
            PR, many[:1], conclusion="neutral", summary="codereview: 61", check_id=check
        )
        [updated] = fake.check_runs(REPO)
        assert again == check
        assert (updated["conclusion"], len(updated["annotations"])) == ("neutral", 61)
        assert updated["output"]["summary"] == "codereview: 61"

    run(body)


@pytest.mark.parametrize(
    ("base_url", "expected"),
    [
        ("https://api.github.com", "https://api.github.com/graphql"),
        ("https://api.github.com/", "https://api.github.com/graphql"),
        ("https://ghe.example.com/api/v3", "https://ghe.example.com/api/graphql"),
        ("https://ghe.example.com/api/v3/", "https://ghe.example.com/api/graphql"),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080/graphql"),
    ],
)
def test_graphql_url_follows_the_rest_root(base_url: str, expected: str) -> None:
    assert graphql_url(base_url) == expected


def test_the_registry_builds_this_publisher() -> None:
    publisher = build_publisher("github", base_url="http://127.0.0.1:1", token="t")
    assert isinstance(publisher, GitHubPublisher) and publisher.source == "github"


def test_a_range_leaving_its_hunk_alone_is_narrowed_and_posted_not_refused() -> None:
    """The only comment of a batch spans past its hunk: narrowed, posted inline, no error."""
    comments = comments_of([finding("split", "src/app.py", 8, 22, suggestion=None)])

    async def body(fake: FakeGitHubReviews, publisher: GitHubPublisher) -> None:
        posted = await publisher.post(PR, comments)
        assert posted[comments[0].fingerprint].on_file is False
        [stored] = fake.comments(REPO, 7)
        assert (stored["line"], stored["start_line"]) == (8, None)
        assert fake.calls_to("POST", r"/reviews$") == 2  # refused (422), then narrowed

    run(body)
