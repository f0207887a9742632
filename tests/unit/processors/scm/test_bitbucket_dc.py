"""Bitbucket Data Center webhooks: HMAC check, PR and comment normalization, rejects."""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

import pytest

from processors.github_events import PullRequestRef
from processors.scm import SOURCES, FeedbackSignal
from processors.scm.bitbucket_dc import parse, timestamp_ms, verify
from schemas.errors import ProcessorError

DATA = Path(__file__).resolve().parents[3] / "data" / "scm" / "bitbucket_dc"
SECRETS = (b"previous-secret", b"current-secret")
TENANT = "acme"
OPENED = "pr_opened.atlassian-dc-docs.json"
COMMENT = "pr_comment_added.atlassian-dc-docs.json"
BODY = (DATA / OPENED).read_bytes()


def _load(name: str) -> dict[str, Any]:
    payload: dict[str, Any] = json.loads((DATA / name).read_text())
    return payload


def _sign(secret: bytes, body: bytes) -> str:
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def _headers(event: str) -> dict[str, str]:
    return {"X-Event-Key": event, "X-Request-Id": "req-9"}


@pytest.mark.parametrize(
    ("headers", "body", "valid"),
    [
        ({"X-Hub-Signature": _sign(b"previous-secret", BODY)}, BODY, True),
        ({"X-Hub-Signature": _sign(b"current-secret", BODY)}, BODY, True),
        ({"X-HUB-SIGNATURE": _sign(b"current-secret", BODY).upper()}, BODY, True),
        ({"X-Hub-Signature": _sign(b"current-secret", BODY)}, b"{}", False),
        ({"X-Hub-Signature": _sign(b"wrong-secret", BODY)}, BODY, False),
        ({"X-Hub-Signature": ""}, BODY, False),
        ({}, BODY, False),
    ],
)
def test_verify_accepts_either_active_secret(
    headers: dict[str, str], body: bytes, valid: bool
) -> None:
    assert verify(headers, body, SECRETS) is valid


@pytest.mark.parametrize(
    ("event", "action"), [("pr:opened", "opened"), ("pr:from_ref_updated", "synchronize")]
)
def test_pull_request_events_become_refs(event: str, action: str) -> None:
    result = parse(_headers(event), BODY, tenant=TENANT)
    assert result.pull_request == PullRequestRef(
        tenant=TENANT,
        repo="PROJ/repository",
        pr_number=1,
        action=action,
        head_sha="ef8755f06ee4b28c96a847a95cb8ec8ed6ddd1ca",
        base_sha="178864a7d521b6f5e720b386b2c2b0ef8563e0dc",
        title="a new file added",
        author="admin",
        api_url="/rest/api/1.0/projects/PROJ/repos/repository/pull-requests/1",
    )
    assert (result.delivery_id, result.feedback, result.ignored_reason) == ("req-9", [], None)


def test_a_self_link_gives_the_server_base_url() -> None:
    payload = _load(OPENED)
    payload["pullRequest"]["links"] = {
        "self": [
            {"href": "https://bb.example.com/scm/projects/PROJ/repos/repository/pull-requests/1"}
        ]
    }
    result = parse(_headers("pr:opened"), json.dumps(payload).encode(), tenant=TENANT)
    assert result.pull_request is not None
    assert result.pull_request.api_url == (
        "https://bb.example.com/scm/rest/api/1.0/projects/PROJ/repos/repository/pull-requests/1"
    )


@pytest.mark.parametrize(
    ("event", "parent", "signal", "verdict", "thread"),
    [
        ("pr:comment:added", 43, "reply", "IGNORED", "43"),
        ("pr:comment:added", None, "comment", "IGNORED", "62"),
        ("pr:comment:edited", None, "comment", "IGNORED", "62"),
        ("pr:comment:deleted", None, "dismissed", "REJECTED", "62"),
    ],
)
def test_comment_events_become_feedback(
    event: str, parent: int | None, signal: str, verdict: str, thread: str
) -> None:
    payload = _load(COMMENT)
    if parent is None:
        del payload["commentParentId"]
    result = parse(_headers(event), json.dumps(payload).encode(), tenant=TENANT)
    assert result.pull_request is None
    assert result.feedback == [
        FeedbackSignal(
            repo="PROJ/repository",
            pr_number=1,
            signal=signal,
            verdict=verdict,
            actor="admin",
            comment_id="62",
            body_excerpt="I am a PR comment",
            thread_id=thread,
        )
    ]


def test_event_key_falls_back_to_the_body() -> None:
    result = parse({}, BODY, tenant=TENANT)
    assert result.pull_request is not None and result.pull_request.action == "opened"
    assert result.delivery_id.startswith("sha256:")


@pytest.mark.parametrize(
    "event",
    ["pr:merged", "pr:declined", "pr:reviewer:approved", "repo:refs_changed", "diagnostics:ping"],
)
def test_events_we_do_not_act_on_are_ignored(event: str) -> None:
    result = parse(_headers(event), BODY, tenant=TENANT)
    assert result.pull_request is None and result.feedback == []
    assert result.ignored_reason is not None and event in result.ignored_reason


def _broken(name: str, mutate: Any) -> bytes:
    payload = _load(name)
    mutate(payload)
    return json.dumps(payload).encode()


@pytest.mark.parametrize(
    ("event", "body", "message"),
    [
        ("pr:opened", b"nope", "not JSON"),
        ("pr:opened", b"1", "not an object"),
        ("pr:opened", _broken(OPENED, lambda p: p.pop("pullRequest")), "'pullRequest'"),
        (
            "pr:opened",
            _broken(OPENED, lambda p: p["pullRequest"]["fromRef"].pop("latestCommit")),
            "pullRequest.fromRef.latestCommit",
        ),
        (
            "pr:opened",
            _broken(OPENED, lambda p: p["pullRequest"]["toRef"]["repository"].pop("project")),
            "project",
        ),
        ("pr:opened", _broken(OPENED, lambda p: p["pullRequest"].update(id=0)), "positive"),
        ("pr:comment:added", _broken(COMMENT, lambda p: p.pop("comment")), "'comment'"),
    ],
)
def test_malformed_bodies_raise_processor_error(event: str, body: bytes, message: str) -> None:
    with pytest.raises(ProcessorError, match=message):
        parse(_headers(event), body, tenant=TENANT)


def test_timestamp_is_the_body_date() -> None:
    assert timestamp_ms({}, BODY) == 1505779091000  # 2017-09-19T09:58:11+1000
    assert timestamp_ms({}, b"{}") is None


def test_registry_names_this_module() -> None:
    spec = SOURCES["bitbucket-dc"]
    assert (spec.verify, spec.parse, spec.timestamp_ms) == (verify, parse, timestamp_ms)
