"""Feedback learning: decay, posterior means, key precedence, suppression, A/B variants."""

from __future__ import annotations

import dataclasses
from collections import Counter

import pytest

from processors.learning import (
    DAY_MS,
    Posterior,
    confidence_of,
    finding_keys,
    learn,
    posterior_keys,
    prompt_variant,
    suppression,
    verdict_accepted,
)
from schemas.errors import ProcessorError
from schemas.records import Finding

T0 = 1_700_000_000_000
HALF_LIFE = 30.0


def _finding(
    rule_id: str = "ruff:F401",
    category: str = "bug",
    severity: str = "MEDIUM",
    confidence: float = 0.5,
    repo: str = "acme/api",
) -> Finding:
    return Finding(
        fingerprint="fp-1", event_id="e1", tenant="t1", repo=repo, pr_number=7, head_sha="h",
        path="a.py", start_line=3, end_line=3, rule_id=rule_id, category=category,
        severity=severity, confidence=confidence, message="m", origin="triage",
        received_at_ms=T0, created_at_ms=T0,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("half_lives", "expected_factor"), [(0.0, 1.0), (1.0, 0.5), (2.0, 0.25), (3.0, 0.125)]
)
def test_decay_halves_counts_per_half_life(half_lives: float, expected_factor: float) -> None:
    start = Posterior(8.0, 4.0, T0)
    now = T0 + int(half_lives * HALF_LIFE * DAY_MS)
    seen = start.decayed(now, HALF_LIFE)
    assert seen.alpha == pytest.approx(8.0 * expected_factor)
    assert seen.beta == pytest.approx(4.0 * expected_factor)
    assert seen.updated_ms == now


def test_observe_decays_then_adds_one() -> None:
    after = Posterior(4.0, 2.0, T0).observe(True, T0 + int(HALF_LIFE * DAY_MS), HALF_LIFE)
    assert (after.alpha, after.beta) == pytest.approx((3.0, 1.0))
    rejected = Posterior(4.0, 2.0, T0).observe(False, T0, HALF_LIFE)
    assert (rejected.alpha, rejected.beta) == pytest.approx((4.0, 3.0))


def test_out_of_order_events_give_the_same_posterior() -> None:
    late = T0 + 10 * DAY_MS
    in_order = Posterior(updated_ms=T0).observe(True, T0, HALF_LIFE).observe(False, late, HALF_LIFE)
    reversed_ = (
        Posterior(updated_ms=late).observe(False, late, HALF_LIFE).observe(True, T0, HALF_LIFE)
    )
    assert (in_order.alpha, in_order.beta, in_order.updated_ms) == pytest.approx(
        (reversed_.alpha, reversed_.beta, reversed_.updated_ms)
    )


@pytest.mark.parametrize(
    ("verdicts", "direction"),
    [([True] * 5, 1), ([False] * 5, -1), ([True, False] * 3, 0)],
)
def test_accepted_raises_rejected_lowers_the_mean(verdicts: list[bool], direction: int) -> None:
    prior = 0.5
    posterior = Posterior(updated_ms=T0)
    for accepted in verdicts:
        posterior = posterior.observe(accepted, T0, HALF_LIFE)
    mean = posterior.mean(prior, 2.0)
    assert (mean > prior) - (mean < prior) == direction


def test_mean_without_evidence_is_the_prior() -> None:
    assert Posterior().mean(0.37, 2.0) == pytest.approx(0.37)


def test_json_round_trip() -> None:
    posterior = Posterior(2.5, 0.75, T0)
    assert Posterior.from_json(posterior.to_json()) == posterior


@pytest.mark.parametrize("text", ["", "{}", '{"alpha": -1, "beta": 0, "updated_ms": 0}', "[1]"])
def test_bad_json_is_a_processor_error(text: str) -> None:
    with pytest.raises(ProcessorError):
        Posterior.from_json(text)


@pytest.mark.parametrize(
    "call",
    [
        lambda: Posterior().mean(1.5, 2.0),
        lambda: Posterior().mean(0.5, 0.0),
        lambda: Posterior().decayed(T0, 0.0),
    ],
)
def test_bad_knobs_are_processor_errors(call: object) -> None:
    with pytest.raises(ProcessorError):
        call()  # type: ignore[operator]


def test_keys_go_from_specific_to_general() -> None:
    assert posterior_keys("t1", "acme/api", "ruff:F401", "bug") == [
        "rule|t1|acme/api|ruff:F401",
        "rule|t1|*|ruff:F401",
        "category|t1|acme/api|bug",
    ]


def _taught(keys: dict[str, list[bool]]) -> dict[str, Posterior]:
    table: dict[str, Posterior] = {}
    for key, verdicts in keys.items():
        for accepted in verdicts:
            table.update(learn(table, [key], accepted, now_ms=T0, half_life_days=HALF_LIFE))
    return table


@pytest.mark.parametrize(
    ("taught", "decider", "direction"),
    [
        ({}, "prior", 0),
        ({"rule|t1|*|ruff:F401": [False] * 5}, "rule|t1|*|ruff:F401", -1),
        (
            {"rule|t1|acme/api|ruff:F401": [True] * 5, "rule|t1|*|ruff:F401": [False] * 9},
            "rule|t1|acme/api|ruff:F401",
            1,
        ),
        # Too little evidence in the repo: the tenant-wide view decides.
        (
            {"rule|t1|acme/api|ruff:F401": [True] * 2, "rule|t1|*|ruff:F401": [False] * 9},
            "rule|t1|*|ruff:F401",
            -1,
        ),
        ({"category|t1|acme/api|bug": [True] * 4}, "category|t1|acme/api|bug", 1),
        # Below min evidence everywhere: the static prior.
        ({"category|t1|acme/api|bug": [False] * 2}, "prior", 0),
    ],
)
def test_most_specific_key_with_enough_evidence_decides(
    taught: dict[str, list[bool]], decider: str, direction: int
) -> None:
    finding = _finding(confidence=0.5)
    confidence, key = confidence_of(finding, _taught(taught), T0, HALF_LIFE, 2.0, min_evidence=3.0)
    assert key == decider
    assert (confidence > 0.5) - (confidence < 0.5) == direction


def test_evidence_decays_below_min_and_falls_back_to_prior() -> None:
    table = _taught({"rule|t1|*|ruff:F401": [False] * 4})
    later = T0 + int(2 * HALF_LIFE * DAY_MS)  # 4 -> 1 observation
    assert confidence_of(_finding(), table, later, HALF_LIFE, 2.0, min_evidence=3.0) == (
        0.5,
        "prior",
    )


def test_learn_updates_every_key_of_the_finding() -> None:
    finding = _finding()
    changed = learn({}, finding_keys(finding), False, now_ms=T0, half_life_days=HALF_LIFE)
    assert set(changed) == set(finding_keys(finding))
    assert all(p.beta == 1.0 and p.alpha == 0.0 for p in changed.values())


@pytest.mark.parametrize(
    ("verdict", "expected"), [("ACCEPTED", True), ("REJECTED", False), ("IGNORED", None)]
)
def test_verdicts(verdict: str, expected: bool | None) -> None:
    assert verdict_accepted(verdict) is expected


@pytest.mark.parametrize(
    ("category", "severity", "confidence", "suppressed"),
    [
        ("bug", "MEDIUM", 0.21, True),
        ("bug", "MEDIUM", 0.35, False),
        ("style", "LOW", 0.01, True),
        ("security", "HIGH", 0.01, False),
        ("security", "CRITICAL", 0.01, False),
        ("secret", "HIGH", 0.01, False),
        ("secret", "CRITICAL", 0.0, False),
        ("security", "MEDIUM", 0.01, True),
        ("secret", "LOW", 0.01, True),
        ("bug", "CRITICAL", 0.01, True),
    ],
)
def test_suppression_and_the_never_suppress_rule(
    category: str, severity: str, confidence: float, suppressed: bool
) -> None:
    finding = _finding(category=category, severity=severity)
    reason = suppression(finding, confidence, 0.35)
    assert (reason is not None) == suppressed


def test_suppression_reason_names_rule_threshold_and_counts() -> None:
    reason = suppression(_finding(), 0.21, 0.35, evidence=Posterior(3.0, 11.0, T0))
    assert reason == (
        "confidence 0.21 < team threshold 0.35 (rule ruff:F401, 3 accepted / 11 rejected)"
    )


def test_variant_is_stable_per_pr() -> None:
    variants = ["A", "B"]
    assert {prompt_variant("t1/acme/api#7", variants) for _ in range(20)} == {
        prompt_variant("t1/acme/api#7", variants)
    }
    assert prompt_variant("t1/acme/api#7", ["only"]) == "only"


@pytest.mark.parametrize("variants", [["A", "B"], ["A", "B", "C"]])
def test_variants_are_roughly_balanced(variants: list[str]) -> None:
    counts = Counter(prompt_variant(f"t1/acme/api#{n}", variants) for n in range(10_000))
    expected = 10_000 / len(variants)
    assert set(counts) == set(variants)
    assert all(abs(c - expected) < 0.05 * expected for c in counts.values())


def test_no_variants_is_an_error() -> None:
    with pytest.raises(ProcessorError):
        prompt_variant("t1/acme/api#7", [])


def test_finding_confidence_out_of_range_is_clamped_as_prior() -> None:
    finding = dataclasses.replace(_finding(), confidence=1.7)
    assert confidence_of(finding, {}, T0, HALF_LIFE) == (1.0, "prior")
