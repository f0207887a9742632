"""Ingest through the running pipeline: auth, rotation, limits, redelivery, replay.

Same platform as test_pipeline.py (real broker, workers as processes).
"""

from __future__ import annotations

import json
import uuid

import pytest

from codereview.analytics import AnalyticsClient
from ops.dlq import replay_dead_letters
from ops.workers import store_url, wait_until
from tests.e2e.conftest import MAX_BODY, NEXT_SECRET, SECRET, AvroTopicReader, Platform
from tests.e2e.test_pipeline import post
from tests.fakes.github import signed_request, webhook_payload

pytestmark = pytest.mark.e2e

EVENTS, DLQ = "pr.events", "pipeline.dlq"


@pytest.fixture(scope="module")
def reader(platform: Platform) -> AvroTopicReader:
    r = AvroTopicReader(
        platform.bootstrap, platform.settings.schema_registry.local_path, [EVENTS, DLQ]
    )
    yield r
    r.close()


def url(platform: Platform, path: str = "/webhooks/github") -> str:
    return platform.pipeline_urls()[0] + path


@pytest.mark.parametrize(
    ("path", "secret", "status"),
    [
        ("/webhooks/github", SECRET, 202),
        ("/webhooks/github", NEXT_SECRET, 202),  # rotation: both secrets are active
        ("/webhooks/github/acme", SECRET, 202),  # another tenant, its own secret
        ("/webhooks/github/acme", NEXT_SECRET, 401),  # not one of acme's secrets
        ("/webhooks/gitlab/acme", SECRET, 401),  # no secret configured for that source
        ("/webhooks/svn", SECRET, 404),
    ],
)
def test_authentication_per_source_and_tenant(
    platform: Platform, path: str, secret: bytes, status: int
) -> None:
    closed = webhook_payload(platform.golden[35], platform.github.url, action="closed")
    assert post(url(platform, path), *signed_request(closed, secret)) == status


def test_oversized_body_is_413_and_the_worker_keeps_serving(platform: Platform) -> None:
    body = json.dumps({"action": "opened", "padding": "x" * (MAX_BODY + 1024)}).encode()
    assert post(url(platform), *signed_request(body, SECRET)) == 413
    closed = webhook_payload(platform.golden[35], platform.github.url, action="closed")
    assert post(url(platform), *signed_request(closed, SECRET)) == 202


def test_a_redelivered_webhook_gives_no_second_pr_event(
    platform: Platform, reader: AvroTopicReader
) -> None:
    pr = platform.golden[27]
    delivery = f"redeliver-{uuid.uuid4()}"
    payload = webhook_payload(pr, platform.github.url)
    for target in platform.pipeline_urls():  # the second copy goes to the other worker
        assert (
            post(target + "/webhooks/github", *signed_request(payload, SECRET, delivery=delivery))
            == 202
        )

    def events(r: AvroTopicReader) -> list[dict]:
        return [e for e in r.records[EVENTS] if (e["repo"], e["pr_number"]) == (pr.repo, pr.number)]

    assert reader.poll_until(lambda r: len(events(r)) >= 1, timeout_s=60)
    client = AnalyticsClient(platform.settings, store_url=store_url(platform.settings))
    dropped = (
        f"SELECT count() FROM {{db}}.stage_metrics FINAL WHERE stage = 'redelivery_dropped'"
        f" AND event_id = 'github:{delivery}'"
    )
    assert wait_until(lambda: int(client.sql(dropped).rows[0][0]) == 1, 30)
    reader.poll_until(lambda r: False, timeout_s=3)  # give a second event time to show up
    assert len(events(reader)) == 1


def test_ignored_events_are_counted_with_their_reason(platform: Platform) -> None:
    delivery = f"ignored-{uuid.uuid4()}"
    closed = webhook_payload(platform.golden[36], platform.github.url, action="labeled")
    assert post(url(platform), *signed_request(closed, SECRET, delivery=delivery)) == 202
    client = AnalyticsClient(platform.settings, store_url=store_url(platform.settings))
    sql = (
        "SELECT attrs['reason'] FROM {db}.stage_metrics FINAL WHERE stage = 'ignored'"
        f" AND event_id = 'github:{delivery}'"
    )
    assert wait_until(lambda: bool(client.sql(sql).rows), 30)
    assert "labeled" in client.sql(sql).rows[0][0]


def test_failed_normalization_is_dead_lettered_then_replayed_once_fixed(
    platform: Platform, reader: AvroTopicReader
) -> None:
    pr = platform.golden[28]
    platform.github.failing.add(pr.repo)
    try:
        delivery = f"fails-{uuid.uuid4()}"
        payload = webhook_payload(pr, platform.github.url)
        assert post(url(platform), *signed_request(payload, SECRET, delivery=delivery)) == 202

        def dead(r: AvroTopicReader) -> list[dict]:
            return [
                d
                for d in r.records[DLQ]
                if d["stage"] == "normalize" and d["original_key"] == f"github:{delivery}".encode()
            ]

        assert reader.poll_until(lambda r: len(dead(r)) == 1, timeout_s=60)
        assert "500" in dead(reader)[0]["error"]
    finally:
        platform.github.failing.discard(pr.repo)

    key = f"github:{delivery}"
    report = replay_dead_letters(platform.settings, stage="normalize")
    assert report.keys.count(key) == 1
    assert reader.poll_until(
        lambda r: any(
            (e["repo"], e["pr_number"]) == (pr.repo, pr.number) for e in r.records[EVENTS]
        ),
        timeout_s=60,
    )
    # A second replay does not send it again: each dead letter is replayed once.
    # (Others that failed again on replay, e.g. the fuzzers' garbage, come back.)
    assert key not in replay_dead_letters(platform.settings, stage="normalize").keys
