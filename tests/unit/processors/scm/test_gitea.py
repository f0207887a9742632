"""Gitea and Forgejo webhooks: HMAC check, PR and comment normalization, rejects."""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

import pytest

from processors.github_events import PullRequestRef
from processors.scm import SOURCES, FeedbackSignal
from processors.scm.gitea import parse, timestamp_ms, verify
from schemas.errors import ProcessorError

DATA = Path(__file__).resolve().parents[3] / "data" / "scm" / "gitea"
SECRETS = (b"previous-secret", b"current-secret")
TENANT = "acme"
OPENED = "pull_request_opened.gitea-docs.json"
COMMENT = "issue_comment_pull.gitea-docs.json"
BODY = (DATA / OPENED).read_bytes()


def _load(name: str) -> dict[str, Any]:
    payload: dict[str, Any] = json.loads((DATA / name).read_text())
    return payload


def _body(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload).encode()


def _hex(secret: bytes, body: bytes) -> str:
    return hmac.new(secret, body, hashlib.sha256).hexdigest()


@pytest.mark.parametrize(
    ("headers", "body", "valid"),
    [
        ({"X-Gitea-Signature": _hex(b"previous-secret", BODY)}, BODY, True),
        ({"X-Gitea-Signature": _hex(b"current-secret", BODY)}, BODY, True),
        ({"x-forgejo-signature": _hex(b"current-secret", BODY)}, BODY, True),
        ({"X-Gitea-Signature": _hex(b"current-secret", BODY)}, BODY[:-1], False),
        ({"X-Gitea-Signature": _hex(b"wrong-secret", BODY)}, BODY, False),
        ({"X-Gitea-Signature": "sha256=" + _hex(b"current-secret", BODY)}, BODY, False),
        ({"X-Forgejo-Signature": _hex(b"wrong-secret", BODY)}, BODY, False),
        ({}, BODY, False),
    ],
)
def test_verify_accepts_either_active_secret(
    headers: dict[str, str], body: bytes, valid: bool
) -> None:
    assert verify(headers, body, SECRETS) is valid


@pytest.mark.parametrize(
    ("action", "expected"),
    [
        ("opened", "opened"),
        ("reopened", "reopened"),
        ("synchronized", "synchronize"),
        ("edited", "edited"),
    ],
)
@pytest.mark.parametrize(
    "headers",
    [
        {"X-Gitea-Event": "pull_request", "X-Gitea-Delivery": "d-1"},
        {"X-Forgejo-Event": "pull_request", "X-Forgejo-Delivery": "d-1"},
    ],
)
def test_pull_request_events_become_refs(
    headers: dict[str, str], action: str, expected: str
) -> None:
    payload = _load(OPENED)
    payload["action"] = action
    result = parse(headers, _body(payload), tenant=TENANT)
    assert result.pull_request == PullRequestRef(
        tenant=TENANT,
        repo="gitea/webhooks",
        pr_number=2,
        action=expected,
        head_sha="bffeb74224043ba2feb48d137756c8a9331c449a",
        base_sha="28e1879d029cb852e4844d9c718537df08844e03",
        title="Add webhook docs",
        author="gitea",
        api_url="http://localhost:3000/api/v1/repos/gitea/webhooks/pulls/2",
    )
    assert (result.delivery_id, result.ignored_reason) == ("d-1", None)


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Gitea-Event": "issue_comment"},
        {"X-Gitea-Event": "issue_comment", "X-Gitea-Event-Type": "pull_request_comment"},
        {"X-Forgejo-Event": "pull_request_comment"},
    ],
)
def test_comment_on_a_pull_request_becomes_feedback(headers: dict[str, str]) -> None:
    result = parse(headers, (DATA / COMMENT).read_bytes(), tenant=TENANT)
    assert result.pull_request is None
    assert result.feedback == [
        FeedbackSignal(
            repo="gitea/webhooks",
            pr_number=2,
            signal="comment",
            verdict="IGNORED",
            actor="gitea",
            comment_id="31",
            body_excerpt="Good catch, fixing.",
        )
    ]


def _comment_with(mutate: Any) -> bytes:
    payload = _load(COMMENT)
    mutate(payload)
    return _body(payload)


@pytest.mark.parametrize(
    ("event", "body", "reason"),
    [
        ("pull_request", _body({**_load(OPENED), "action": "closed"}), "'closed' is not acted on"),
        ("pull_request", _body({**_load(OPENED), "action": "label_updated"}), "label_updated"),
        ("push", BODY, "'push' is not acted on"),
        (
            "issue_comment",
            _comment_with(
                lambda p: (p.update(is_pull=False), p["issue"].update(pull_request=None))
            ),
            "not a PR",
        ),
        ("issue_comment", _comment_with(lambda p: p.update(action="edited")), "'edited'"),
    ],
)
def test_events_we_do_not_act_on_are_ignored(event: str, body: bytes, reason: str) -> None:
    result = parse({"X-Gitea-Event": event}, body, tenant=TENANT)
    assert result.pull_request is None and result.feedback == []
    assert result.ignored_reason is not None and reason in result.ignored_reason


def _pr_without(*path: str) -> bytes:
    payload = _load(OPENED)
    target = payload
    for step in path[:-1]:
        target = target[step]
    del target[path[-1]]
    return _body(payload)


@pytest.mark.parametrize(
    ("headers", "body", "message"),
    [
        ({"X-Gitea-Event": "pull_request"}, b"", "not JSON"),
        ({"X-Gitea-Event": "pull_request"}, b"true", "not an object"),
        ({}, BODY, "X-Gitea-Event"),
        ({"X-Gitea-Event": "pull_request"}, _pr_without("action"), "'action'"),
        ({"X-Gitea-Event": "pull_request"}, _pr_without("pull_request", "head"), "head"),
        ({"X-Gitea-Event": "pull_request"}, _pr_without("repository", "full_name"), "full_name"),
        ({"X-Gitea-Event": "issue_comment"}, _comment_with(lambda p: p.pop("comment")), "comment"),
    ],
)
def test_malformed_bodies_raise_processor_error(
    headers: dict[str, str], body: bytes, message: str
) -> None:
    with pytest.raises(ProcessorError, match=message):
        parse(headers, body, tenant=TENANT)


def test_timestamp_prefers_the_comment_then_the_pull_request() -> None:
    assert timestamp_ms({}, (DATA / COMMENT).read_bytes()) == 1489428131000
    assert timestamp_ms({}, BODY) == 1489427531000  # 2017-03-13T13:52:11-04:00
    assert timestamp_ms({}, b"") is None


@pytest.mark.parametrize("name", ["gitea", "forgejo"])
def test_registry_serves_gitea_and_forgejo_with_this_module(name: str) -> None:
    spec = SOURCES[name]
    assert (spec.name, spec.verify, spec.parse, spec.timestamp_ms) == (
        name,
        verify,
        parse,
        timestamp_ms,
    )
