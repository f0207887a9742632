"""Every non-GitHub SCM through the running pipeline, one golden PR each.

A documented-shape "PR opened" webhook is posted to a pipeline worker; the
normalize agent verifies and parses it, fetches the diff and head files with
that source's real REST client from ``FakeScmServers`` (each vendor's
endpoints and response shapes), and a PullRequestEvent must appear on
``pr.events``. Same platform as test_pipeline.py (real broker, workers as
processes).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from processors.diff import parse_diff
from tests.e2e.conftest import SECRET, AvroTopicReader, Platform
from tests.e2e.test_pipeline import post
from tests.fakes.github import GoldenPullRequest
from tests.fakes.scm_servers import load_files_before
from tests.fakes.scm_webhooks import webhook_for

pytestmark = pytest.mark.e2e

EVENTS, DLQ = "pr.events", "pipeline.dlq"
WRONG_SECRET = b"not-the-webhook-secret"

# Golden PR per source: indices no other e2e test uses.
GOLDEN_INDEX = {
    "gitlab": 31,
    "bitbucket-cloud": 32,
    "bitbucket-dc": 33,
    "azure-devops": 34,
    "gerrit": 37,
    "gitea": 38,
    "forgejo": 39,
}
SOURCES = sorted(GOLDEN_INDEX)


@pytest.fixture(scope="module")
def reader(platform: Platform) -> Iterator[AvroTopicReader]:
    r = AvroTopicReader(
        platform.bootstrap, platform.settings.schema_registry.local_path, [EVENTS, DLQ]
    )
    yield r
    r.close()


def golden_for(platform: Platform, source: str) -> GoldenPullRequest:
    pr = platform.golden[GOLDEN_INDEX[source]]
    if source == "azure-devops":
        # Azure has no diff endpoint: its client diffs base against head.
        platform.github.add(pr, files_before=load_files_before(pr.case_id))
    return pr


def api_url(platform: Platform, source: str) -> str:
    return platform.github.azure_url if source == "azure-devops" else platform.github.url


def expected_head_sha(source: str, pr: GoldenPullRequest) -> str:
    """Bitbucket Cloud webhooks carry 12-digit abbreviated hashes (documented), and
    the event keeps the webhook's revision; every other source sends the full one."""
    return pr.head_sha[:12] if source == "bitbucket-cloud" else pr.head_sha


@pytest.mark.parametrize("source", SOURCES)
def test_an_opened_pr_becomes_a_pr_event(
    platform: Platform, reader: AvroTopicReader, source: str
) -> None:
    pr = golden_for(platform, source)
    path, body, headers = webhook_for(source, pr, secret=SECRET, api_url=api_url(platform, source))
    assert post(platform.pipeline_urls()[0] + path, body, headers) == 202

    def events(r: AvroTopicReader) -> list[dict]:
        return [
            e
            for e in r.records[EVENTS]
            if e["source"] == source and (e["repo"], e["pr_number"]) == (pr.repo, pr.number)
        ]

    def dead(r: AvroTopicReader) -> list[dict]:
        key = f"{source}:".encode()
        return [
            d["error"]
            for d in r.records[DLQ]
            if d["stage"] == "normalize" and (d["original_key"] or b"").startswith(key)
        ]

    assert reader.poll_until(lambda r: bool(events(r)), timeout_s=60), (
        f"no {source} PullRequestEvent; normalize dead letters: {dead(reader)}"
    )
    event = events(reader)[0]
    assert event["head_sha"] == expected_head_sha(source, pr)

    got = {f.path: f for f in parse_diff(event["diff"])}
    want = {f.path: f for f in parse_diff(pr.diff)}
    assert set(got) == set(want)
    for path, file_diff in want.items():
        assert got[path].added_lines == file_diff.added_lines, path
    heads = {f["path"]: f["content"] for f in event["files"]}
    assert any(heads.get(path) == pr.files[path] for path in want if path in pr.files), heads.keys()


@pytest.mark.parametrize("source", SOURCES)
def test_a_wrong_secret_is_401(platform: Platform, source: str) -> None:
    pr = platform.golden[GOLDEN_INDEX[source]]
    path, body, headers = webhook_for(
        source, pr, secret=WRONG_SECRET, api_url=api_url(platform, source)
    )
    assert post(platform.pipeline_urls()[0] + path, body, headers) == 401
