"""GitLab webhooks: token check, MR / note / emoji normalization, rejects."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from processors.github_events import PullRequestRef
from processors.scm import SOURCES, FeedbackSignal, fingerprint_marker
from processors.scm.gitlab import parse, timestamp_ms, verify
from schemas.errors import ProcessorError

DATA = Path(__file__).resolve().parents[3] / "data" / "scm" / "gitlab"
SECRETS = (b"previous-token", b"current-token")
TENANT = "acme"


def _load(name: str) -> dict[str, Any]:
    payload: dict[str, Any] = json.loads((DATA / name).read_text())
    return payload


def _body(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload).encode()


@pytest.mark.parametrize(
    ("headers", "valid"),
    [
        ({"X-Gitlab-Token": "previous-token"}, True),
        ({"X-Gitlab-Token": "current-token"}, True),
        ({"x-gitlab-token": "current-token"}, True),  # header names are case-insensitive
        ({"X-Gitlab-Token": "wrong-token"}, False),
        ({"X-Gitlab-Token": ""}, False),
        ({"X-Gitlab-Token": "current-token-and-more"}, False),
        ({}, False),
    ],
)
def test_verify_accepts_either_active_token(headers: dict[str, str], valid: bool) -> None:
    assert verify(headers, b"{}", SECRETS) is valid


def test_verify_never_matches_an_empty_secret() -> None:
    assert not verify({"X-Gitlab-Token": ""}, b"{}", (b"",))
    assert not verify({"X-Gitlab-Token": "x"}, b"{}", ())


def test_merge_request_open_becomes_a_pull_request_ref() -> None:
    headers = {"X-Gitlab-Event": "Merge Request Hook", "X-Gitlab-Event-UUID": "uuid-1"}
    result = parse(headers, _body(_load("merge_request_open.gitlab-docs.json")), tenant=TENANT)
    assert result.pull_request == PullRequestRef(
        tenant=TENANT,
        repo="gitlabhq/gitlab-test",
        pr_number=1,
        action="opened",
        head_sha="da1560886d4f094c3e6c9ef40349f7d38b5d27d7",
        base_sha="",
        title="MS-Viewport",
        author="51",
        api_url="http://example.com/api/v4/projects/gitlabhq%2Fgitlab-test/merge_requests/1",
    )
    assert result.feedback == []
    assert result.delivery_id == "uuid-1"
    assert result.ignored_reason is None


@pytest.mark.parametrize(
    ("action", "oldrev", "expected"),
    [
        ("open", None, "opened"),
        ("reopen", None, "reopened"),
        ("update", "0123456789abcdef0123456789abcdef01234567", "synchronize"),
        ("update", None, "edited"),
    ],
)
def test_merge_request_actions_map_to_github_words(
    action: str, oldrev: str | None, expected: str
) -> None:
    payload = _load("merge_request_open.gitlab-docs.json")
    payload["object_attributes"]["action"] = action
    if oldrev:
        payload["object_attributes"]["oldrev"] = oldrev
    result = parse({}, _body(payload), tenant=TENANT)
    assert result.pull_request is not None
    assert result.pull_request.action == expected


def test_note_on_merge_request_is_a_comment_signal() -> None:
    result = parse({}, _body(_load("note_merge_request.gitlab-docs.json")), tenant=TENANT)
    assert result.pull_request is None
    assert result.ignored_reason is None
    assert result.feedback == [
        FeedbackSignal(
            repo="gitlab-org/gitlab-test",
            pr_number=1,
            signal="comment",
            verdict="IGNORED",
            actor="root",
            comment_id="1244",
            body_excerpt="This MR needs work.",
            thread_id="6a9c1750b37d513a43987b574953fceb50b03ce7",
        )
    ]
    assert result.delivery_id.startswith("sha256:")  # no UUID header: a body digest


@pytest.mark.parametrize(
    ("emoji", "verdict"), [("thumbsup", "ACCEPTED"), ("thumbsdown", "REJECTED")]
)
def test_emoji_on_our_comment_is_a_reaction_carrying_its_fingerprint(
    emoji: str, verdict: str
) -> None:
    payload = _load("emoji_award_note.gitlab-docs.json")
    payload["object_attributes"]["name"] = emoji
    result = parse({}, _body(payload), tenant=TENANT)
    [signal] = result.feedback
    assert (signal.signal, signal.verdict, signal.comment_id, signal.pr_number) == (
        "reaction",
        verdict,
        "1244",
        1,
    )
    assert fingerprint_marker(signal.body_excerpt) == "3f2a9c1b7e4d5a60"


def _with(name: str, path: tuple[str, ...], value: object) -> dict[str, Any]:
    payload = copy.deepcopy(_load(name))
    target = payload
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    return payload


MR = "merge_request_open.gitlab-docs.json"
NOTE = "note_merge_request.gitlab-docs.json"
EMOJI = "emoji_award_note.gitlab-docs.json"


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (_with(MR, ("object_attributes", "action"), "merge"), "'merge' is not acted on"),
        (_with(MR, ("object_attributes", "action"), "close"), "'close' is not acted on"),
        (_with(MR, ("object_kind",), "pipeline"), "'pipeline' is not acted on"),
        (_with(NOTE, ("object_attributes", "noteable_type"), "Issue"), "not on a MR"),
        (_with(NOTE, ("object_attributes", "action"), "update"), "edited"),
        (_with(EMOJI, ("event_type",), "revoke"), "not an award"),
        (_with(EMOJI, ("object_attributes", "name"), "tada"), "says nothing"),
        (_with(EMOJI, ("object_attributes", "awardable_type"), "MergeRequest"), "not on a comment"),
    ],
)
def test_events_we_do_not_act_on_are_ignored_with_a_reason(
    payload: dict[str, Any], reason: str
) -> None:
    result = parse({}, _body(payload), tenant=TENANT)
    assert result.pull_request is None
    assert result.feedback == []
    assert result.ignored_reason is not None and reason in result.ignored_reason


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"not json", "not JSON"),
        (b"\xff\xfe", "not JSON"),
        (b"[]", "not an object"),
        (b"{}", "object_kind"),
        (_body(_with(MR, ("object_attributes", "iid"), "1")), "object_attributes.iid"),
        (_body(_with(MR, ("object_attributes", "last_commit"), None)), "last_commit"),
        (_body(_with(MR, ("project",), None)), "project"),
        (_body(_with(NOTE, ("merge_request",), None)), "merge_request"),
        (_body(_with(NOTE, ("object_attributes", "note"), "")), "object_attributes.note"),
    ],
)
def test_malformed_bodies_raise_processor_error(body: bytes, message: str) -> None:
    with pytest.raises(ProcessorError, match=message):
        parse({}, body, tenant=TENANT)


def test_timestamp_is_object_attributes_updated_at() -> None:
    assert timestamp_ms({}, _body(_load(MR))) == 1386091414000  # 2013-12-03T17:23:34Z
    assert timestamp_ms({}, _body(_load(NOTE))) == 1431886896000  # "2015-05-17 18:21:36 UTC"
    assert timestamp_ms({}, b"not json") is None


def test_registry_names_this_module() -> None:
    spec = SOURCES["gitlab"]
    assert (spec.name, spec.verify, spec.parse, spec.timestamp_ms) == (
        "gitlab",
        verify,
        parse,
        timestamp_ms,
    )
