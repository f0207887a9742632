"""Bitbucket Cloud webhooks: HMAC check, PR and comment normalization, rejects."""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

import pytest

from processors.github_events import PullRequestRef
from processors.scm import SOURCES, FeedbackSignal
from processors.scm.bitbucket_cloud import parse, timestamp_ms, verify
from schemas.errors import ProcessorError

DATA = Path(__file__).resolve().parents[3] / "data" / "scm" / "bitbucket_cloud"
SECRETS = (b"previous-secret", b"current-secret")
TENANT = "acme"
PR = "pullrequest_created.atlassian-docs.json"
COMMENT = "pullrequest_comment_created.atlassian-docs.json"
BODY = (DATA / PR).read_bytes()


def _load(name: str) -> dict[str, Any]:
    payload: dict[str, Any] = json.loads((DATA / name).read_text())
    return payload


def _sign(secret: bytes, body: bytes) -> str:
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def _headers(event: str, **extra: str) -> dict[str, str]:
    return {"X-Event-Key": event, "X-Request-UUID": "req-1", **extra}


@pytest.mark.parametrize(
    ("headers", "body", "valid"),
    [
        ({"X-Hub-Signature": _sign(b"previous-secret", BODY)}, BODY, True),
        ({"X-Hub-Signature": _sign(b"current-secret", BODY)}, BODY, True),
        ({"x-hub-signature": _sign(b"current-secret", BODY)}, BODY, True),
        ({"X-Hub-Signature": _sign(b"current-secret", BODY)}, BODY + b" ", False),  # tampered
        ({"X-Hub-Signature": _sign(b"wrong-secret", BODY)}, BODY, False),
        ({"X-Hub-Signature": _sign(b"current-secret", BODY)[7:]}, BODY, False),  # no prefix
        ({"X-Hub-Signature": "sha1=" + "0" * 40}, BODY, False),
        ({"X-Hub-Signature": "sha256=" + "z" * 64}, BODY, False),
        ({}, BODY, False),
    ],
)
def test_verify_accepts_either_active_secret(
    headers: dict[str, str], body: bytes, valid: bool
) -> None:
    assert verify(headers, body, SECRETS) is valid


EXPECTED_REF = PullRequestRef(
    tenant=TENANT,
    repo="team_name/repo_name",
    pr_number=1,
    action="opened",
    head_sha="d3022fc0ca3d",
    base_sha="ce5965ddd289",
    title="Title of pull request",
    author="emma",
    api_url="https://api.bitbucket.org/2.0/repositories/team_name/repo_name/pullrequests/1",
)


@pytest.mark.parametrize(
    ("event", "action"),
    [("pullrequest:created", "opened"), ("pullrequest:updated", "synchronize")],
)
def test_pull_request_events_become_refs(event: str, action: str) -> None:
    result = parse(_headers(event), BODY, tenant=TENANT)
    assert result.pull_request == PullRequestRef(**{**EXPECTED_REF.__dict__, "action": action})
    assert (result.delivery_id, result.feedback, result.ignored_reason) == ("req-1", [], None)


@pytest.mark.parametrize(
    ("event", "parent", "signal", "verdict"),
    [
        ("pullrequest:comment_created", {"id": 16}, "reply", "IGNORED"),
        ("pullrequest:comment_created", None, "comment", "IGNORED"),
        ("pullrequest:comment_resolved", None, "resolved", "ACCEPTED"),
        ("pullrequest:comment_deleted", None, "dismissed", "REJECTED"),
    ],
)
def test_comment_events_become_feedback(
    event: str, parent: dict[str, int] | None, signal: str, verdict: str
) -> None:
    payload = _load(COMMENT)
    if parent is None:
        del payload["comment"]["parent"]
    result = parse(_headers(event), json.dumps(payload).encode(), tenant=TENANT)
    assert result.pull_request is None
    assert result.feedback == [
        FeedbackSignal(
            repo="team_name/repo_name",
            pr_number=1,
            signal=signal,
            verdict=verdict,
            actor="emma",
            comment_id="17",
            body_excerpt="Agreed, fixed in the next commit.",
            thread_id="16" if parent else "17",
        )
    ]


def test_a_closed_pull_request_is_ignored() -> None:
    payload = _load(PR)
    payload["pullrequest"]["state"] = "MERGED"
    result = parse(_headers("pullrequest:updated"), json.dumps(payload).encode(), tenant=TENANT)
    assert result.pull_request is None
    assert result.ignored_reason == "Bitbucket Cloud PR is MERGED, not open"


@pytest.mark.parametrize(
    "event", ["pullrequest:approved", "pullrequest:fulfilled", "repo:push", "issue:created"]
)
def test_events_we_do_not_act_on_are_ignored(event: str) -> None:
    result = parse(_headers(event), BODY, tenant=TENANT)
    assert result.pull_request is None and result.feedback == []
    assert result.ignored_reason is not None and event in result.ignored_reason


def _without(name: str, *path: str) -> bytes:
    payload = copy.deepcopy(_load(name))
    target = payload
    for step in path[:-1]:
        target = target[step]
    del target[path[-1]]
    return json.dumps(payload).encode()


@pytest.mark.parametrize(
    ("headers", "body", "message"),
    [
        (_headers("pullrequest:created"), b"{", "not JSON"),
        (_headers("pullrequest:created"), b'"text"', "not an object"),
        ({}, BODY, "X-Event-Key"),
        (_headers("pullrequest:created"), _without(PR, "pullrequest"), "'pullrequest'"),
        (_headers("pullrequest:created"), _without(PR, "repository"), "'repository'"),
        (
            _headers("pullrequest:created"),
            _without(PR, "pullrequest", "source", "commit"),
            "pullrequest.source.commit",
        ),
        (_headers("pullrequest:created"), _without(PR, "pullrequest", "links"), "links"),
        (_headers("pullrequest:comment_created"), _without(COMMENT, "comment", "id"), "comment.id"),
        (_headers("pullrequest:comment_created"), _without(COMMENT, "actor"), "'actor'"),
    ],
)
def test_malformed_bodies_raise_processor_error(
    headers: dict[str, str], body: bytes, message: str
) -> None:
    with pytest.raises(ProcessorError, match=message):
        parse(headers, body, tenant=TENANT)


def test_timestamp_prefers_the_comment_then_the_pull_request() -> None:
    assert timestamp_ms({}, (DATA / COMMENT).read_bytes()) == 1428339149983
    assert timestamp_ms({}, BODY) == 1428333818205
    assert timestamp_ms({}, b"[]") is None


def test_registry_names_this_module() -> None:
    spec = SOURCES["bitbucket-cloud"]
    assert (spec.verify, spec.parse, spec.timestamp_ms) == (verify, parse, timestamp_ms)
