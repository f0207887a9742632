"""GitHub webhooks through the source registry: signatures, PRs and review feedback.

Fixture shapes follow GitHub's documented webhook payloads (pull_request,
pull_request_review_comment, pull_request_review_thread), trimmed.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path

import pytest

from processors.scm import SOURCES, FeedbackSignal, fingerprint_marker
from schemas.errors import ProcessorError

DATA = Path(__file__).resolve().parents[3] / "data" / "scm" / "github"
SECRETS = (b"old-secret", b"new-secret")
GITHUB = SOURCES["github"]


def signed(body: bytes, secret: bytes, event: str) -> dict[str, str]:
    digest = hmac.new(secret, body, hashlib.sha256).hexdigest()
    return {
        "x-hub-signature-256": f"sha256={digest}",
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": "d-1",
    }


PR_BODY = json.dumps(
    {
        "action": "synchronize",
        "number": 7,
        "pull_request": {
            "url": "https://api.github.com/repos/acme/shop/pulls/7",
            "number": 7,
            "title": "Fix cart",
            "user": {"login": "dev"},
            "head": {"sha": "b" * 40},
            "base": {"sha": "a" * 40},
            "updated_at": "2026-11-20T10:00:00Z",
        },
        "repository": {"full_name": "acme/shop"},
    }
).encode()


@pytest.mark.parametrize("secret", SECRETS)
def test_either_active_secret_verifies(secret: bytes) -> None:
    assert GITHUB.verify(signed(PR_BODY, secret, "pull_request"), PR_BODY, SECRETS)


@pytest.mark.parametrize(
    "headers",
    [
        signed(PR_BODY, b"wrong", "pull_request"),
        {"X-GitHub-Event": "pull_request"},
        {"X-Hub-Signature-256": "sha1=abc"},
    ],
)
def test_bad_or_missing_signature_is_rejected(headers: dict[str, str]) -> None:
    assert not GITHUB.verify(headers, PR_BODY, SECRETS)


def test_pull_request_asks_for_review() -> None:
    normalized = GITHUB.parse(signed(PR_BODY, SECRETS[0], "pull_request"), PR_BODY, tenant="acme")
    ref = normalized.pull_request
    assert ref is not None and normalized.delivery_id == "d-1"
    assert (ref.tenant, ref.repo, ref.pr_number, ref.action) == (
        "acme",
        "acme/shop",
        7,
        "synchronize",
    )
    assert GITHUB.timestamp_ms({}, PR_BODY) == 1795168800000


def test_reply_in_our_thread_is_feedback_with_its_thread() -> None:
    body = (DATA / "pull_request_review_comment_reply.github-docs.json").read_bytes()
    normalized = GITHUB.parse(
        signed(body, SECRETS[1], "pull_request_review_comment"), body, tenant="acme"
    )
    assert normalized.pull_request is None
    assert normalized.feedback == [
        FeedbackSignal(
            repo="acme/shop",
            pr_number=7,
            signal="reply",
            verdict="IGNORED",
            actor="octocat",
            comment_id="2051",
            body_excerpt="Good catch, fixed in the next push.",
            thread_id="2050",
        )
    ]


def test_resolved_thread_accepts_the_finding_in_its_first_comment() -> None:
    body = (DATA / "pull_request_review_thread_resolved.github-docs.json").read_bytes()
    normalized = GITHUB.parse(
        signed(body, SECRETS[0], "pull_request_review_thread"), body, tenant="acme"
    )
    [signal] = normalized.feedback
    assert (signal.signal, signal.verdict, signal.comment_id) == ("resolved", "ACCEPTED", "2050")
    assert fingerprint_marker(signal.body_excerpt) == "8d2f0c1ab3e4f5a6"


@pytest.mark.parametrize(
    ("event", "payload", "reason"),
    [
        (
            "pull_request",
            {
                "action": "closed",
                "number": 7,
                "pull_request": {},
                "repository": {"full_name": "acme/shop"},
            },
            "closed",
        ),
        (
            "push",
            {
                "action": "x",
                "repository": {"full_name": "acme/shop"},
                "pull_request": {"number": 1},
            },
            "push",
        ),
    ],
)
def test_events_not_acted_on_are_ignored_with_a_reason(
    event: str, payload: dict, reason: str
) -> None:
    body = json.dumps(payload).encode()
    normalized = GITHUB.parse(signed(body, SECRETS[0], event), body, tenant="acme")
    assert normalized.pull_request is None and not normalized.feedback
    assert normalized.ignored_reason and reason in normalized.ignored_reason


@pytest.mark.parametrize("body", [b"{not json", b"[]", b'{"action": "created"}'])
def test_malformed_bodies_raise(body: bytes) -> None:
    with pytest.raises(ProcessorError):
        GITHUB.parse(signed(body, SECRETS[0], "pull_request_review_comment"), body, tenant="acme")
