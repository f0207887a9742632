"""Property-based abuse of every ingest endpoint of a running worker.

Malformed, truncated, oversized, wrongly encoded and wrongly signed bodies:
each gets a 4xx, or (authentic but not a PR we can read) a 202 and then a
dead letter or an "ignored" count. Never a 5xx, and the workers keep serving.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from codereview.analytics import AnalyticsClient
from ops.workers import load_workers, store_url, wait_until, worker_healthy
from tests.e2e.conftest import MAX_BODY, SECRET, AvroTopicReader, Platform
from tests.e2e.test_pipeline import post
from tests.fakes.github import signed_request, webhook_payload

pytestmark = pytest.mark.e2e

FUZZ = settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)
ACCEPTED_BUT_UNREADABLE: list[str] = []


@dataclass(frozen=True)
class Endpoints:
    """Plain strings only: hypothesis prints its arguments, and the platform is huge."""

    webhook: str
    events: str
    feedback: str
    sample: str

    def __repr__(self) -> str:
        return f"Endpoints({self.webhook})"


@pytest.fixture(scope="module")
def ep(platform: Platform) -> Endpoints:
    first, second = platform.pipeline_urls()
    sample = json.dumps(webhook_payload(platform.golden[0], platform.github.url))
    return Endpoints(
        first + "/webhooks/github", second + "/v1/events", second + "/v1/feedback", sample
    )


HEADER_TEXT = st.text(st.characters(min_codepoint=32, max_codepoint=255), max_size=80)


@FUZZ
@given(body=st.binary(max_size=2048), signature=HEADER_TEXT)
def test_wrong_signatures_are_401(ep: Endpoints, body: bytes, signature: str) -> None:
    headers = {"X-GitHub-Event": "pull_request", "X-Hub-Signature-256": signature}
    assert post(ep.webhook, body, headers) == 401


@FUZZ
@given(body=st.binary(max_size=2048))
def test_signed_garbage_is_400_or_a_dead_letter(ep: Endpoints, body: bytes) -> None:
    delivery = f"fuzz-{uuid.uuid4()}"
    status = post(ep.webhook, *signed_request(body, SECRET, delivery=delivery))
    assert status in (202, 400)
    if status == 202:
        ACCEPTED_BUT_UNREADABLE.append(f"github:{delivery}")


@FUZZ
@given(
    payload=st.dictionaries(st.text(max_size=12), JSON, max_size=6),
    event=st.sampled_from(
        ["pull_request", "pull_request_review_comment", "pull_request_review_thread", "ping", ""]
    ),
)
def test_signed_json_objects_are_accepted_then_dead_lettered_or_ignored(
    ep: Endpoints, payload: dict, event: str
) -> None:
    delivery = f"fuzz-{uuid.uuid4()}"
    status = post(ep.webhook, *signed_request(payload, SECRET, event=event, delivery=delivery))
    assert status == 202
    ACCEPTED_BUT_UNREADABLE.append(f"github:{delivery}")


@FUZZ
@given(cut=st.integers(min_value=1, max_value=400), encoding=st.sampled_from(["utf-16", "utf-32"]))
def test_truncated_and_wrongly_encoded_bodies_are_400(
    ep: Endpoints, cut: int, encoding: str
) -> None:
    for body in (ep.sample.encode()[:-cut], ep.sample.encode(encoding)):
        assert post(ep.webhook, *signed_request(body, SECRET)) == 400


def test_oversized_bodies_are_413(ep: Endpoints) -> None:
    body = b"{" + b" " * (MAX_BODY + 1) + b"}"
    assert post(ep.webhook, *signed_request(body, SECRET)) == 413


@FUZZ
@given(payload=JSON, key=st.sampled_from(["dev-api-key", "wrong", ""]))
def test_generic_events_endpoint(ep: Endpoints, payload: object, key: str) -> None:
    status = post(ep.events, json.dumps(payload).encode(), {"Authorization": f"Bearer {key}"})
    assert status == (400 if key == "dev-api-key" else 401)


@FUZZ
@given(payload=JSON)
def test_feedback_endpoint(ep: Endpoints, payload: object) -> None:
    status = post(ep.feedback, json.dumps(payload).encode(), {})
    assert status in (202, 400)


def test_every_accepted_fuzz_delivery_was_dead_lettered_or_counted(platform: Platform) -> None:
    """Runs after the fuzzers above (file order): nothing accepted went missing."""
    assert ACCEPTED_BUT_UNREADABLE, "the fuzzers above accepted nothing to follow"
    wanted = set(ACCEPTED_BUT_UNREADABLE)
    reader = AvroTopicReader(
        platform.bootstrap, platform.settings.schema_registry.local_path, ["pipeline.dlq"]
    )
    client = AnalyticsClient(platform.settings, store_url=store_url(platform.settings))
    try:

        def accounted() -> set[str]:
            reader.poll_until(lambda r: False, timeout_s=1)
            dead = {(d["original_key"] or b"").decode() for d in reader.records["pipeline.dlq"]}
            ids = ", ".join(f"'{d}'" for d in sorted(wanted))
            counted = {
                row[0]
                for row in client.sql(
                    "SELECT event_id FROM {db}.stage_metrics FINAL WHERE stage = 'ignored'"
                    f" AND event_id IN ({ids})"
                ).rows
            }
            return (dead | counted) & wanted

        assert wait_until(lambda: accounted() == wanted, 90), wanted - accounted()
    finally:
        reader.close()
    for worker in load_workers(platform.state_dir):
        assert worker.process().alive() and worker_healthy(worker.url), worker.name
