"""The shared result types, the fingerprint marker and the source registry."""

from __future__ import annotations

import pytest

from processors.scm import SOURCES, FeedbackSignal, fingerprint_marker
from processors.scm.normalized import EXCERPT_CHARS, excerpt


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Null check missing.\n<!-- codereview:fp=3f2a9c1b7e4d5a60 -->", "3f2a9c1b7e4d5a60"),
        ("<!--codereview:fp=ABCDEF0123456789-->", "abcdef0123456789"),
        ("no marker here", None),
        ("<!-- codereview:fp=xyz -->", None),  # not hex
        ("<!-- codereview:fp=abc -->", None),  # too short to be a fingerprint
        ("", None),
        (None, None),
    ],
)
def test_fingerprint_marker(text: str | None, expected: str | None) -> None:
    assert fingerprint_marker(text) == expected


def test_excerpt_keeps_a_marker_that_lies_past_the_cut() -> None:
    text = "x" * (EXCERPT_CHARS * 2) + "\n<!-- codereview:fp=00112233445566778899aabb -->"
    cut = excerpt(text)
    assert len(cut) < len(text)
    assert cut.startswith("x" * EXCERPT_CHARS)
    assert fingerprint_marker(cut) == "00112233445566778899aabb"


def test_excerpt_leaves_short_text_alone() -> None:
    assert excerpt("short") == "short"
    assert excerpt(None) == ""
    assert excerpt("y" * (EXCERPT_CHARS + 10)) == "y" * EXCERPT_CHARS


@pytest.mark.parametrize(("signal", "verdict"), [("like", "ACCEPTED"), ("reaction", "MAYBE")])
def test_feedback_signal_rejects_unknown_words(signal: str, verdict: str) -> None:
    with pytest.raises(ValueError):
        FeedbackSignal("o/r", 1, signal, verdict, "me", "1", "")


def test_registry_lists_every_source_under_its_own_name() -> None:
    assert set(SOURCES) == {
        "github",
        "gitlab",
        "bitbucket-cloud",
        "bitbucket-dc",
        "azure-devops",
        "gerrit",
        "gitea",
        "forgejo",
    }
    assert all(spec.name == name for name, spec in SOURCES.items())


@pytest.mark.parametrize(
    ("source", "headers", "expected"),
    [
        ("github", {"x-github-delivery": "d1"}, "github:d1"),
        ("gitlab", {"X-Gitlab-Event-UUID": "u1"}, "gitlab:u1"),
        ("bitbucket-cloud", {"X-Request-UUID": "r1"}, "bitbucket-cloud:r1"),
        ("forgejo", {"X-Forgejo-Delivery": "f1"}, "forgejo:f1"),
    ],
)
def test_delivery_key_is_the_vendor_delivery_id(
    source: str, headers: dict[str, str], expected: str
) -> None:
    from processors.scm import delivery_key

    assert delivery_key(source, headers, b"{}") == expected


def test_delivery_key_without_a_header_is_a_digest_of_the_body() -> None:
    from processors.scm import delivery_key

    first = delivery_key("azure-devops", {}, b'{"id": 1}')
    assert first == delivery_key("azure-devops", {}, b'{"id": 1}')
    assert first != delivery_key("azure-devops", {}, b'{"id": 2}')
    assert first.startswith("azure-devops:")
