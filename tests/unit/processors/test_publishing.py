"""Comments made of findings: the marker, suggestion blocks, what to post, check conclusions."""

from __future__ import annotations

import dataclasses
import functools

import pytest

from processors.publishing import (
    CheckPolicy,
    conclusion,
    fingerprint_in,
    marker,
    render,
    suggestion_text,
    summary,
    to_post,
)
from tests.fakes.findings import sample_finding

FP = "ab" * 32


# The fields the assertions below read; the rest is the shared sample's.
finding = functools.partial(
    sample_finding,
    fingerprint=FP,
    path="app.py",
    start_line=3,
    end_line=3,
    rule_id="ruff:B006",
    message="Do not use mutable data structures for argument defaults",
    confidence=0.55,
)


def test_the_marker_survives_in_the_rendered_body_and_reads_back() -> None:
    comment = render(finding())
    assert marker(FP) in comment.body
    assert fingerprint_in(comment.body) == FP
    assert (comment.path, comment.start_line, comment.end_line) == ("app.py", 3, 3)
    assert comment.body.startswith("**Medium bug: ruff:B006**")


@pytest.mark.parametrize(
    "body",
    [None, "", "a human comment", "<!-- codereview:fp=XYZ -->", "<!-- other:fp=" + FP + " -->"],
)
def test_bodies_without_our_marker_are_not_ours(body: str | None) -> None:
    assert fingerprint_in(body) is None


def test_a_quoted_reply_still_names_the_finding_it_answers() -> None:
    assert fingerprint_in("> quoted\n" + marker(FP) + "\nthanks") == FP


PATCH = (
    "--- a/app.py\n+++ b/app.py\n"
    "@@ -3,1 +3,1 @@\n"
    "-def add(item, basket=[]):\n"
    "+def add(item, basket=None):\n"
)


def test_a_patch_within_the_lines_becomes_a_suggestion_block() -> None:
    f = finding(suggestion=PATCH)
    assert suggestion_text(f) == "def add(item, basket=None):"
    body = render(f).body
    assert "```suggestion\ndef add(item, basket=None):\n```" in body


def test_without_suggestions_the_patch_is_shown_as_a_diff() -> None:
    body = render(finding(suggestion=PATCH), suggestions=False).body
    assert "```suggestion" not in body
    assert "```diff\n--- a/app.py" in body


def test_a_patch_reaching_beyond_the_lines_is_not_offered_as_a_suggestion() -> None:
    wider = "--- a/app.py\n+++ b/app.py\n@@ -3,2 +3,1 @@\n-a\n-b\n+c\n"
    assert suggestion_text(finding(suggestion=wider)) is None
    assert suggestion_text(finding(suggestion="not a diff at all")) is None
    assert suggestion_text(finding()) is None


def test_a_multi_line_patch_covering_the_range_exactly_is_a_suggestion() -> None:
    patch = "--- a/app.py\n+++ b/app.py\n@@ -3,2 +3,3 @@\n-a\n b\n+c\n+d\n"
    assert suggestion_text(finding(start_line=3, end_line=4, suggestion=patch)) == "b\nc\nd"


def test_shown_and_dismissed_findings_are_not_posted_and_repeats_collapse() -> None:
    a, b, c = (finding(fingerprint=ch * 64) for ch in "abc")
    moved = dataclasses.replace(a, start_line=9)
    wanted = to_post([a, b, c, moved], shown={"b" * 64}, dismissed={"c" * 64})
    assert wanted == [moved]


@pytest.mark.parametrize(
    ("severities", "policy", "expected"),
    [
        ([], CheckPolicy(), "success"),
        (["INFO"], CheckPolicy(), "success"),
        (["LOW", "INFO"], CheckPolicy(), "neutral"),
        (["MEDIUM", "HIGH"], CheckPolicy(), "failure"),
        (["CRITICAL"], CheckPolicy(fail_on="", neutral_on=""), "success"),
        (["MEDIUM"], CheckPolicy(fail_on="MEDIUM", neutral_on="LOW"), "failure"),
    ],
)
def test_check_conclusion_follows_the_policy(
    severities: list[str], policy: CheckPolicy, expected: str
) -> None:
    assert conclusion(severities, policy) == expected


def test_summary_counts_by_severity_worst_first() -> None:
    assert summary([]) == "codereview: no findings"
    assert summary(["LOW", "HIGH", "LOW"]) == "codereview: 3 finding(s): 1 high, 2 low"
