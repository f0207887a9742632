"""The generic event format: what it accepts, and the reason it gives for what it does not."""

from __future__ import annotations

import json

import pytest

from processors.generic_events import parse_generic_event
from schemas.errors import ProcessorError

DIFF = "diff --git a/a.py b/a.py\n--- a/a.py\n+++ b/a.py\n@@ -1 +1 @@\n-x = 1\n+x = 2\n"
GOOD = {
    "repo": "team/svc",
    "pr_number": 12,
    "head_sha": "abc",
    "diff": DIFF,
    "files": [{"path": "a.py", "content": "x = 2\n"}],
    "source": "perforce",
}


def body(**changes: object) -> bytes:
    payload = {**GOOD, **changes}
    return json.dumps({k: v for k, v in payload.items() if v is not ...}).encode()


def test_a_good_event_keeps_its_fields_and_takes_the_tenant_of_the_key() -> None:
    event = parse_generic_event(body(tenant="intruder"), tenant="acme", received_at_ms=5)
    assert (event.tenant, event.repo, event.pr_number, event.source) == (
        "acme",
        "team/svc",
        12,
        "perforce",
    )
    assert event.file_content("a.py") == "x = 2\n" and event.received_at_ms == 5
    again = parse_generic_event(body(), tenant="acme", received_at_ms=9)
    assert again.event_id == event.event_id  # the same revision, the same id


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"{not json", "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (body(diff=...), "missing fields: diff"),
        (body(pr_number="12"), "positive integer"),
        (body(pr_number=0), "positive integer"),
        (body(pr_number=True), "positive integer"),
        (body(repo=""), "must not be empty"),
        (body(diff="this is not a diff"), "line 1"),
        (body(files={"a.py": "x"}), "files must be a list"),
        (body(files=[{"content": "x"}]), "string path"),
        (body(files=[{"path": "a.py", "content": 3}]), "string or null"),
        (body(title=7), "title must be a string"),
        ("\udcff".encode("utf-8", "surrogatepass"), "not JSON"),
    ],
)
def test_bad_events_are_refused_with_a_reason(raw: bytes, reason: str) -> None:
    with pytest.raises(ProcessorError, match=reason):
        parse_generic_event(raw, tenant="acme", received_at_ms=1)
