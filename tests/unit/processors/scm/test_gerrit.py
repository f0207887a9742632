"""Gerrit events: shared-secret check, patch set and comment normalization, rejects."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from processors.github_events import PullRequestRef
from processors.scm import SOURCES, FeedbackSignal
from processors.scm.gerrit import parse, timestamp_ms, verify
from schemas.errors import ProcessorError

DATA = Path(__file__).resolve().parents[3] / "data" / "scm" / "gerrit"
SECRETS = (b"previous-secret", b"current-secret")
TENANT = "acme"
PATCHSET = "patchset_created.gerrit-docs.json"
COMMENT = "comment_added.gerrit-docs.json"
BODY = (DATA / PATCHSET).read_bytes()


def _load(name: str) -> dict[str, Any]:
    payload: dict[str, Any] = json.loads((DATA / name).read_text())
    return payload


def _body(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload).encode()


@pytest.mark.parametrize(
    ("headers", "valid"),
    [
        ({"X-Gerrit-Secret": "previous-secret"}, True),
        ({"X-Gerrit-Secret": "current-secret"}, True),
        ({"x-gerrit-secret": " current-secret "}, True),
        ({"X-Gerrit-Secret": "wrong-secret"}, False),
        ({"X-Gerrit-Secret": ""}, False),
        ({}, False),
    ],
)
def test_verify_accepts_either_active_secret(headers: dict[str, str], valid: bool) -> None:
    assert verify(headers, BODY, SECRETS) is valid


@pytest.mark.parametrize(("patch_set", "action"), [(1, "opened"), (2, "synchronize")])
def test_patchset_created_becomes_a_ref(patch_set: int, action: str) -> None:
    payload = _load(PATCHSET)
    payload["patchSet"]["number"] = patch_set
    result = parse({}, _body(payload), tenant=TENANT)
    assert result.pull_request == PullRequestRef(
        tenant=TENANT,
        repo="tools/gerrit",
        pr_number=12345,
        action=action,
        head_sha="b3a5e7c3f2d3d9e0a1b4c5d6e7f8091a2b3c4d5e",
        base_sha="a1b2c3d4e5f60718293a4b5c6d7e8f9012345678",
        title="Fix null dereference in account cache",
        author="jdoe",
        api_url="https://gerrit.example.com/changes/tools%2Fgerrit~12345",
    )
    assert result.ignored_reason is None


def test_redelivery_has_the_same_delivery_id() -> None:
    first = parse({}, BODY, tenant=TENANT)
    again = parse({}, BODY, tenant=TENANT)
    assert first.delivery_id == again.delivery_id
    assert first.delivery_id != parse({}, (DATA / COMMENT).read_bytes(), tenant=TENANT).delivery_id


def test_comment_added_becomes_feedback() -> None:
    result = parse({}, (DATA / COMMENT).read_bytes(), tenant=TENANT)
    assert result.pull_request is None
    assert result.feedback == [
        FeedbackSignal(
            repo="tools/gerrit",
            pr_number=12345,
            signal="comment",
            verdict="IGNORED",
            actor="jroe",
            comment_id="12345/2@1700000400",
            body_excerpt="Patch Set 2: Code-Review+1\n\n(1 comment)",
            thread_id="12345",
        )
    ]


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda p: p.update(type="change-merged"), "'change-merged' is not acted on"),
        (lambda p: p.update(type="ref-updated"), "'ref-updated' is not acted on"),
        (lambda p: p["patchSet"].update(kind="NO_CODE_CHANGE"), "changes no code"),
        (lambda p: p["patchSet"].update(kind="NO_CHANGE"), "changes no code"),
    ],
)
def test_events_we_do_not_act_on_are_ignored(mutate: Any, reason: str) -> None:
    payload = _load(PATCHSET)
    mutate(payload)
    result = parse({}, _body(payload), tenant=TENANT)
    assert result.pull_request is None and result.feedback == []
    assert result.ignored_reason is not None and reason in result.ignored_reason


def _broken(name: str, mutate: Any) -> bytes:
    payload = _load(name)
    mutate(payload)
    return _body(payload)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{type: patchset-created}", "not JSON"),
        (b"[1, 2]", "not an object"),
        (_broken(PATCHSET, lambda p: p.pop("type")), "'type'"),
        (_broken(PATCHSET, lambda p: p.pop("change")), "'change'"),
        (_broken(PATCHSET, lambda p: p["patchSet"].pop("revision")), "patchSet.revision"),
        (_broken(PATCHSET, lambda p: p["change"].update(number="12345")), "change.number"),
        (_broken(COMMENT, lambda p: p.pop("author")), "'author'"),
        (_broken(COMMENT, lambda p: p.update(comment=None)), "'comment'"),
    ],
)
def test_malformed_bodies_raise_processor_error(body: bytes, message: str) -> None:
    with pytest.raises(ProcessorError, match=message):
        parse({}, body, tenant=TENANT)


def test_timestamp_is_event_created_on() -> None:
    assert timestamp_ms({}, BODY) == 1700000300000
    assert timestamp_ms({}, b'{"eventCreatedOn": "soon"}') is None


def test_registry_names_this_module() -> None:
    spec = SOURCES["gerrit"]
    assert (spec.verify, spec.parse, spec.timestamp_ms) == (verify, parse, timestamp_ms)
