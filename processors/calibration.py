"""Findings with the confidence feedback has taught, and those held back for it.

Triage and deep analysis give a finding a static confidence (how far its rule
is to be trusted before anyone has said anything). Feedback turns that into
a posterior per rule, repo and tenant (``processors.learning``). This step
applies it just before publishing: each finding gets its calibrated
confidence, and one under its team's threshold is returned as a
``Suppression`` record carrying the reason instead, so what was held back
stays queryable. Security and secret findings of HIGH or CRITICAL severity
are never held back (``learning.suppression`` decides).

Only evidence suppresses: a rule nobody has given feedback on keeps its
static confidence and is shown. Hiding findings on a prior alone would make
the review quieter by guesswork, and no feedback could ever bring them back.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

from processors.learning import Posterior, confidence_of, evidence_for, suppression
from schemas.records import Finding, Suppression


def calibrate(
    findings: Sequence[Finding],
    posteriors: Mapping[str, Posterior],
    *,
    now_ms: int,
    threshold: float,
    half_life_days: float,
    prior_strength: float,
    min_evidence: float = 3.0,
) -> tuple[list[Finding], list[Suppression]]:
    """(findings to publish with calibrated confidence, suppressions with reasons)."""
    kept: list[Finding] = []
    held: list[Suppression] = []
    for finding in findings:
        confidence, source = confidence_of(
            finding,
            posteriors,
            now_ms,
            half_life_days,
            prior_strength,
            min_evidence=min_evidence,
        )
        calibrated = dataclasses.replace(finding, confidence=round(confidence, 4))
        found = evidence_for(
            finding,
            posteriors,
            now_ms=now_ms,
            half_life_days=half_life_days,
            min_evidence=min_evidence,
        )
        reason = None
        if source != "prior" and found is not None:
            reason = suppression(calibrated, confidence, threshold, evidence=found[1])
        if reason is None:
            kept.append(calibrated)
            continue
        held.append(
            Suppression(
                fingerprint=finding.fingerprint,
                event_id=finding.event_id,
                tenant=finding.tenant,
                repo=finding.repo,
                pr_number=finding.pr_number,
                rule_id=finding.rule_id,
                category=finding.category,
                severity=finding.severity,
                confidence=round(confidence, 4),
                threshold=threshold,
                reason=reason,
                at_ms=now_ms,
            )
        )
    return kept, held
