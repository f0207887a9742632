"""A webhook in, one comment out on a fake GitHub, its thread resolved when the code is gone.

Real processes: the broker, a store worker, a pipeline worker and a publish
worker. A signed ``pull_request`` webhook for a PR whose code calls
``yaml.load`` goes in; the publish worker posts ONE review comment carrying
the finding's fingerprint, on the flagged line. Then the publish worker is
restarted and the finding is put on ``pr.findings`` again (a redelivery):
still one comment. Then a second push replaces ``yaml.load`` by
``yaml.safe_load``: triage reports the finding "applied", and the publish
worker resolves its thread through GitHub's GraphQL API.
"""

from __future__ import annotations

import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Producer
from pydantic import SecretStr

from codereview.analytics import AnalyticsClient
from codereview.settings import (
    ClickHouseSettings,
    PublishSettings,
    SchemaRegistrySettings,
    Settings,
    SourceSettings,
    StackSettings,
    WorkerSettings,
)
from ops.stack import load_stack_info
from ops.workers import (
    load_workers,
    restart_worker,
    start_platform,
    stop_platform,
    store_url,
    wait_until,
)
from tests.e2e.conftest import AvroTopicReader
from tests.fakes.github import GoldenPullRequest, signed_request, webhook_payload
from tests.fakes.scm_reviews.github import FakeGitHubReviews
from tests.fakes.scm_servers import FakeScmServers

pytestmark = pytest.mark.e2e

SECRET = "publish-e2e-secret"
REPO = "pub/shop"
NUMBER = 5
UNSAFE = "import yaml\n\n\ndef load(text):\n    return yaml.load(text)\n"
SAFE = UNSAFE.replace("yaml.load(text)", "yaml.safe_load(text)")


def pull(code: str, head_sha: str) -> GoldenPullRequest:
    lines = code.splitlines()
    diff = (
        "diff --git a/conf.py b/conf.py\n--- /dev/null\n+++ b/conf.py\n"
        f"@@ -0,0 +1,{len(lines)} @@\n" + "".join(f"+{line}\n" for line in lines)
    )
    return GoldenPullRequest(
        case_id=f"publish-{head_sha[:4]}",
        repo=REPO,
        number=NUMBER,
        head_sha=head_sha,
        base_sha="0" * 40,
        diff=diff,
        files={"conf.py": code},
        expected=[],
    )


def send(url: str, pr: GoldenPullRequest, api_url: str, action: str) -> int:
    body, headers = signed_request(webhook_payload(pr, api_url, action), SECRET.encode())
    request = urllib.request.Request(
        url + "/webhooks/github", data=body, headers=headers, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


@pytest.fixture(scope="module")
def publishing(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Settings, FakeScmServers, FakeGitHubReviews, str]]:
    root = tmp_path_factory.mktemp("publish")
    with FakeScmServers() as github, FakeGitHubReviews() as reviews:
        settings = Settings(
            stack=StackSettings(state_dir=root / "stack"),
            schema_registry=SchemaRegistrySettings(local_path=root / "registry.json"),
            clickhouse=ClickHouseSettings(chdb_path=root / "chdb", flush_interval_s=0.3),
            source=SourceSettings(
                api_urls={"github": github.url},
                webhook_secrets={"default/github": [SecretStr(SECRET)]},
                api_tokens={"default/github": SecretStr("e2e-token")},
            ),
            publish=PublishSettings(
                modes={"*": "dry-run", f"default/{REPO}": "live"},
                api_urls={"github": reviews.url},
                batch_within_s=0.3,
            ),
            worker=WorkerSettings(app_id=f"cr-pub-{uuid.uuid4().hex[:6]}", data_dir=root / "faust"),
        )
        start_platform(settings, workers=1)
        try:
            info = load_stack_info(Path(settings.stack.state_dir).resolve())
            assert info is not None
            yield settings, github, reviews, info.kafka_bootstrap
        finally:
            stop_platform(settings)


def test_one_comment_per_finding_through_restart_and_redelivery_then_resolved(
    publishing: tuple[Settings, FakeScmServers, FakeGitHubReviews, str],
) -> None:
    settings, github, reviews, bootstrap = publishing
    url = next(w.url for w in load_workers(Path(settings.stack.state_dir)) if w.role == "pipeline")
    first = pull(UNSAFE, "a" * 40)
    github.add(first)
    reviews.add_pull(REPO, NUMBER, first.diff)
    assert send(url, first, github.url, "opened") == 202

    assert wait_until(lambda: bool(reviews.fingerprints(REPO, NUMBER)), 300), "nothing posted"
    comments = reviews.comments(REPO, NUMBER)
    assert {c["path"] for c in comments} == {"conf.py"}
    assert {c["line"] for c in comments} == {5}, comments  # the yaml.load line
    assert any("S506" in c["body"] or "B506" in c["body"] for c in comments)
    posted = Counter(reviews.fingerprints(REPO, NUMBER))
    assert max(posted.values()) == 1, posted
    assert reviews.check_runs(REPO), "no check run"

    # A restart of the publisher and a redelivery of every finding: nothing new.
    reader = AvroTopicReader(bootstrap, settings.schema_registry.local_path, ["pr.findings"])
    try:
        assert reader.poll_until(lambda r: len(r.raw["pr.findings"]) >= len(posted), 120)
        raw = list(reader.raw["pr.findings"])
    finally:
        reader.close()
    restart_worker(settings, "publish-1")
    producer = Producer({"bootstrap.servers": bootstrap})
    for key, value, _ in raw:
        producer.produce("pr.findings", key=key, value=value)
    assert producer.flush(30) == 0
    client = AnalyticsClient(settings, store_url=store_url(settings))

    def publish_batches() -> int:
        sql = (
            "SELECT count() FROM {db}.stage_metrics FINAL "
            f"WHERE stage = 'publish' AND repo = '{REPO}'"
        )
        return int(client.sql(sql).rows[0][0])

    assert wait_until(lambda: publish_batches() >= 2, 300), "the redelivery was not handled"
    assert Counter(reviews.fingerprints(REPO, NUMBER)) == posted

    # Push 2 removes the flagged call: its thread is resolved, nothing is re-posted.
    second = pull(SAFE, "c" * 40)
    github.add(second)
    reviews.add_pull(REPO, NUMBER, second.diff)
    assert send(url, second, github.url, "synchronize") == 202

    def resolved() -> bool:
        threads = reviews.threads(REPO, NUMBER)
        return bool(threads) and all(t["isResolved"] for t in threads)

    assert wait_until(resolved, 300), reviews.threads(REPO, NUMBER)
    assert Counter(reviews.fingerprints(REPO, NUMBER)) == posted
