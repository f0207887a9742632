"""calibrate: learned confidence on every finding; only evidence holds one back."""

from __future__ import annotations

import dataclasses

import pytest

from processors.calibration import calibrate
from processors.learning import Posterior, finding_keys
from schemas.records import Finding

NOW = 1_800_000_000_000
KNOBS = {"now_ms": NOW, "threshold": 0.3, "half_life_days": 30.0, "prior_strength": 2.0}


def finding(rule: str = "ruff:B006", category: str = "bug", severity: str = "MEDIUM") -> Finding:
    return Finding(
        fingerprint=f"fp-{rule}",
        event_id="ev",
        tenant="acme",
        repo="acme/shop",
        pr_number=3,
        head_sha="h",
        path="a.py",
        start_line=1,
        end_line=1,
        rule_id=rule,
        category=category,
        severity=severity,
        confidence=0.55,
        message="m",
        origin="triage",
        received_at_ms=NOW,
        created_at_ms=NOW,
    )


def taught(f: Finding, accepted: int, rejected: int) -> dict[str, Posterior]:
    return {finding_keys(f)[0]: Posterior(float(accepted), float(rejected), NOW)}


def test_without_feedback_everything_is_shown_with_its_static_confidence() -> None:
    low = dataclasses.replace(finding("ruff:F401", "style", "LOW"), confidence=0.1)
    kept, held = calibrate([finding(), low], {}, **KNOBS)
    assert [f.rule_id for f in kept] == ["ruff:B006", "ruff:F401"] and held == []
    assert kept[0].confidence == 0.55


@pytest.mark.parametrize(
    ("accepted", "rejected", "shown"),
    [(0, 5, False), (5, 0, True), (1, 1, True), (0, 2, True)],  # 2 < min_evidence 3: prior
)
def test_rejections_hold_a_finding_back_with_a_reason(
    accepted: int, rejected: int, shown: bool
) -> None:
    f = finding()
    kept, held = calibrate([f], taught(f, accepted, rejected), **KNOBS)
    assert bool(kept) is shown and bool(held) is not shown
    if held:
        record = held[0]
        assert (record.fingerprint, record.rule_id) == (f.fingerprint, f.rule_id)
        assert record.confidence < record.threshold == 0.3
        assert f"{accepted} accepted / {rejected} rejected" in record.reason
    else:
        expected = (0.55 * 2 + accepted) / (2 + accepted + rejected)
        if accepted + rejected >= 3:
            assert kept[0].confidence == pytest.approx(round(expected, 4))


def test_high_security_findings_are_never_held_back() -> None:
    f = finding("bandit:B602", "security", "HIGH")
    kept, held = calibrate([f], taught(f, 0, 50), **KNOBS)
    assert kept and not held
    assert kept[0].confidence < 0.3  # calibrated all the same: analysts see the truth
