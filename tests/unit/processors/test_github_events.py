"""GitHub pull_request webhooks: signature, payload, ids, events."""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

import pytest

from processors.github_events import (
    ACTED_ACTIONS,
    PullRequestRef,
    event_id_for,
    parse_pull_request,
    to_event,
)
from processors.scm.github import verify
from schemas.errors import ProcessorError
from schemas.records import FileSnapshot

PAYLOAD: dict[str, Any] = json.loads(
    (
        Path(__file__).resolve().parents[2] / "data" / "github" / "pull_request_opened.json"
    ).read_text()
)
SECRET = b"It's a Secret to Everybody"
BODY = b"Hello, World!"
# The worked example from GitHub's "Validating webhook deliveries" page.
DOCUMENTED_SIGNATURE = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"


def _sign(secret: bytes, body: bytes) -> str:
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def verify_signature(secret: bytes, body: bytes, header: str | None) -> bool:
    headers = {} if header is None else {"X-Hub-Signature-256": header}
    return verify(headers, body, [secret])


def test_documented_signature_example_verifies() -> None:
    assert verify_signature(SECRET, BODY, DOCUMENTED_SIGNATURE)


@pytest.mark.parametrize(
    ("secret", "body", "header", "valid"),
    [
        (SECRET, BODY, _sign(SECRET, BODY), True),
        (SECRET, BODY, _sign(SECRET, BODY).upper().replace("SHA256=", "sha256="), True),
        (SECRET, BODY, "  " + _sign(SECRET, BODY) + " ", True),
        (SECRET, BODY + b" ", _sign(SECRET, BODY), False),  # tampered body
        (b"other secret", BODY, _sign(SECRET, BODY), False),
        (SECRET, BODY, None, False),
        (SECRET, BODY, "", False),
        (SECRET, BODY, _sign(SECRET, BODY)[len("sha256=") :], False),  # no prefix
        (SECRET, BODY, "sha1=" + hmac.new(SECRET, BODY, hashlib.sha1).hexdigest(), False),
        (SECRET, BODY, "sha256=" + "z" * 64, False),  # not hex
        (SECRET, BODY, _sign(SECRET, BODY)[:-2], False),  # truncated
        (b"", BODY, _sign(b"", BODY), False),  # an empty secret proves nothing
    ],
)
def test_verify_signature(secret: bytes, body: bytes, header: str | None, valid: bool) -> None:
    assert verify_signature(secret, body, header) is valid


def _body(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload).encode()


def test_parses_opened_payload() -> None:
    ref = parse_pull_request(_body(PAYLOAD), tenant="acme")
    assert ref == PullRequestRef(
        tenant="acme",
        repo="octo-org/widgets",
        pr_number=42,
        action="opened",
        head_sha="6dcb09b5b57875f334f61aebed695e2e4193db5e",
        base_sha="c5b97d5ae6c19d5c5df71a34c7fbeeda2479ccbc",
        title="Cache widget lookups",
        author="mona",
        api_url="https://api.github.com/repos/octo-org/widgets/pulls/42",
    )


@pytest.mark.parametrize("action", sorted(ACTED_ACTIONS))
def test_acted_actions_give_a_ref(action: str) -> None:
    ref = parse_pull_request(_body({**PAYLOAD, "action": action}), tenant="acme")
    assert ref is not None and ref.action == action


@pytest.mark.parametrize("action", ["closed", "labeled", "assigned", "review_requested"])
def test_other_actions_are_ignored(action: str) -> None:
    assert parse_pull_request(_body({**PAYLOAD, "action": action}), tenant="acme") is None


def _without(path: str) -> dict[str, Any]:
    payload = copy.deepcopy(PAYLOAD)
    *parents, leaf = path.split(".")
    node = payload
    for key in parents:
        node = node[key]
    del node[leaf]
    return payload


@pytest.mark.parametrize(
    "path",
    [
        "action",
        "pull_request",
        "pull_request.url",
        "pull_request.head",
        "pull_request.head.sha",
        "pull_request.base.sha",
        "pull_request.title",
        "pull_request.user",
        "pull_request.user.login",
        "repository",
        "repository.full_name",
    ],
)
def test_missing_required_field_names_it(path: str) -> None:
    with pytest.raises(ProcessorError, match=path.replace(".", r"\.")):
        parse_pull_request(_body(_without(path)), tenant="acme")


def test_number_falls_back_to_the_pull_request() -> None:
    ref = parse_pull_request(_body(_without("number")), tenant="acme")
    assert ref is not None and ref.pr_number == 42


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"not json", "not JSON"),
        (b"\xff\xfe\x00", "not JSON"),
        (b"[1, 2]", "not an object"),
        (b'"opened"', "not an object"),
        (_body({**PAYLOAD, "number": "42"}), "number"),
        (_body({**PAYLOAD, "number": True}), "number"),
        (_body({**PAYLOAD, "repository": {"full_name": "widgets"}}), "owner/name"),
        (_body({**PAYLOAD, "pull_request": []}), "pull_request"),
    ],
)
def test_bad_bodies_raise_with_a_reason(body: bytes, reason: str) -> None:
    with pytest.raises(ProcessorError, match=reason):
        parse_pull_request(body, tenant="acme")


def _ref(**changes: Any) -> PullRequestRef:
    ref = parse_pull_request(_body(PAYLOAD), tenant="acme")
    assert ref is not None
    return PullRequestRef(**{**ref.__dict__, **changes})


def test_event_id_is_the_revision() -> None:
    assert event_id_for(_ref()) == event_id_for(_ref())
    assert event_id_for(_ref(action="edited", title="new")) == event_id_for(_ref())
    expected = hashlib.sha256(
        b"acme/octo-org/widgets#42@6dcb09b5b57875f334f61aebed695e2e4193db5e"
    ).hexdigest()
    assert event_id_for(_ref()) == expected
    for other in (_ref(head_sha="f" * 40), _ref(pr_number=43), _ref(tenant="t2")):
        assert event_id_for(other) != event_id_for(_ref())


def test_to_event_copies_ref_and_material() -> None:
    files = [FileSnapshot("a.py", "x = 1\n"), FileSnapshot("b.bin", None)]
    event = to_event(_ref(), source="github", diff="", files=files, received_at_ms=123)
    assert event.event_id == event_id_for(_ref())
    assert (event.tenant, event.repo, event.pr_number, event.action) == (
        "acme",
        "octo-org/widgets",
        42,
        "opened",
    )
    assert (event.head_sha, event.base_sha, event.title, event.author) == (
        "6dcb09b5b57875f334f61aebed695e2e4193db5e",
        "c5b97d5ae6c19d5c5df71a34c7fbeeda2479ccbc",
        "Cache widget lookups",
        "mona",
    )
    assert (event.source, event.received_at_ms, event.files) == ("github", 123, files)
    assert event.file_content("a.py") == "x = 1\n"
