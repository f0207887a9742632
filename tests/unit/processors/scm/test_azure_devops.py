"""Azure DevOps service hooks: basic auth, PR and comment normalization, rejects."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from processors.github_events import PullRequestRef
from processors.scm import SOURCES, FeedbackSignal
from processors.scm.azure_devops import parse, timestamp_ms, verify
from schemas.errors import ProcessorError

DATA = Path(__file__).resolve().parents[3] / "data" / "scm" / "azure_devops"
SECRETS = (b"previous-password", b"current-password")
TENANT = "acme"
CREATED = "git_pullrequest_created.ms-learn-docs.json"
COMMENT = "pullrequest_comment_event.ms-learn-docs.json"
BODY = (DATA / CREATED).read_bytes()


def _load(name: str) -> dict[str, Any]:
    payload: dict[str, Any] = json.loads((DATA / name).read_text())
    return payload


def _basic(credentials: str) -> str:
    return "Basic " + base64.b64encode(credentials.encode()).decode()


@pytest.mark.parametrize(
    ("headers", "valid"),
    [
        ({"Authorization": _basic("hook:previous-password")}, True),
        ({"Authorization": _basic("hook:current-password")}, True),
        ({"authorization": _basic(":current-password")}, True),  # empty user name is fine
        ({"Authorization": _basic("hook:wrong-password")}, False),
        ({"Authorization": _basic("current-password")}, False),  # no colon: no password
        ({"Authorization": "Bearer current-password"}, False),
        ({"Authorization": "Basic !!!not-base64"}, False),
        ({}, False),
    ],
)
def test_verify_accepts_either_active_password(headers: dict[str, str], valid: bool) -> None:
    assert verify(headers, BODY, SECRETS) is valid


@pytest.mark.parametrize(
    ("event", "action"),
    [("git.pullrequest.created", "opened"), ("git.pullrequest.updated", "synchronize")],
)
def test_pull_request_events_become_refs(event: str, action: str) -> None:
    payload = _load(CREATED)
    payload["eventType"] = event
    result = parse({}, json.dumps(payload).encode(), tenant=TENANT)
    assert result.pull_request == PullRequestRef(
        tenant=TENANT,
        repo="Fabrikam/Fabrikam",
        pr_number=1,
        action=action,
        head_sha="53d54ac915144006c2c9e90d2c7d3880920db49c",
        base_sha="a511f535b1ea495ee0c903badb68fbc83772c882",
        title="my first pull request",
        author="fabrikamfiber4@hotmail.com",
        api_url=(
            "https://dev.azure.com/fabrikam/DefaultCollection/_apis/repos/git/repositories/"
            "4bc14d40-c903-45e2-872e-0462c7748079/pullRequests/1"
        ),
    )
    assert result.delivery_id == "2ab4e3d3-b7a6-425e-92b1-5a9982c1269e"
    assert result.ignored_reason is None


@pytest.mark.parametrize(("parent", "signal"), [(1, "reply"), (0, "comment")])
def test_comment_event_becomes_feedback(parent: int, signal: str) -> None:
    payload = _load(COMMENT)
    payload["resource"]["comment"]["parentCommentId"] = parent
    result = parse({}, json.dumps(payload).encode(), tenant=TENANT)
    assert result.pull_request is None
    assert result.feedback == [
        FeedbackSignal(
            repo="Fabrikam/Fabrikam",
            pr_number=1,
            signal=signal,
            verdict="IGNORED",
            actor="fabrikamfiber4@hotmail.com",
            comment_id="1/2",
            body_excerpt="This is my comment.",
            thread_id="1",
        )
    ]


@pytest.mark.parametrize(
    ("event", "status", "reason"),
    [
        ("git.pullrequest.merged", "completed", "'git.pullrequest.merged' is not acted on"),
        ("git.push", "active", "'git.push' is not acted on"),
        ("git.pullrequest.updated", "abandoned", "PR is abandoned"),
        ("git.pullrequest.updated", "completed", "PR is completed"),
    ],
)
def test_events_we_do_not_act_on_are_ignored(event: str, status: str, reason: str) -> None:
    payload = _load(CREATED)
    payload["eventType"] = event
    payload["resource"]["status"] = status
    result = parse({}, json.dumps(payload).encode(), tenant=TENANT)
    assert result.pull_request is None and result.feedback == []
    assert result.ignored_reason is not None and reason in result.ignored_reason


def _broken(name: str, mutate: Any) -> bytes:
    payload = _load(name)
    mutate(payload)
    return json.dumps(payload).encode()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"<xml/>", "not JSON"),
        (b"null", "not an object"),
        (_broken(CREATED, lambda p: p.pop("eventType")), "eventType"),
        (_broken(CREATED, lambda p: p.pop("resource")), "'resource'"),
        (
            _broken(CREATED, lambda p: p["resource"].pop("lastMergeSourceCommit")),
            "resource.lastMergeSourceCommit",
        ),
        (_broken(CREATED, lambda p: p["resource"].update(pullRequestId="1")), "pullRequestId"),
        (_broken(COMMENT, lambda p: p["resource"].pop("comment")), "resource.comment"),
        (
            _broken(COMMENT, lambda p: p["resource"]["pullRequest"].pop("repository")),
            "resource.pullRequest.repository",
        ),
    ],
)
def test_malformed_bodies_raise_processor_error(body: bytes, message: str) -> None:
    with pytest.raises(ProcessorError, match=message):
        parse({}, body, tenant=TENANT)


def test_timestamp_is_created_date() -> None:
    assert timestamp_ms({}, BODY) == 1557149643583  # 2019-05-06T13:34:03.5839434Z
    assert timestamp_ms({}, b"garbage") is None


def test_registry_names_this_module() -> None:
    spec = SOURCES["azure-devops"]
    assert (spec.verify, spec.parse, spec.timestamp_ms) == (verify, parse, timestamp_ms)
