"""Learning from feedback: how far a team trusts each rule, and what to stop saying.

Every finding starts with a static confidence (triage's ``confidence_for``,
or the model's own for LLM findings). Feedback then teaches, per team, how
often a rule's findings are actually accepted. The acceptance rate of a rule
is a Bernoulli parameter, so its posterior is a Beta: ``alpha`` accepted and
``beta`` rejected pseudo-counts. The static confidence enters as the Beta
prior, worth ``prior_strength`` observations, so one rejection cannot silence
a rule and a rule with no feedback keeps its static confidence.

Teams, codebases and rules change, so old feedback should count less than
new: both counts decay by half every ``half_life_days``. A rule the team
rejected a year ago drifts back to its prior instead of staying muted
forever, and a posterior's weight is "recent evidence", not "all evidence".

Posteriors are kept at three levels of generality (``posterior_keys``): the
rule in this repo, the rule anywhere in the tenant, the category in this
repo. The most specific one with enough (decayed) evidence decides: a rule
this repo has judged often is judged by this repo, a new repo inherits the
team's view of the rule, and a rule nobody has judged falls back to the
category's record in the repo, then to the static prior.

Suppression is a threshold on the calibrated confidence, with one exception
that no amount of feedback overrides: HIGH or CRITICAL security and secret
findings are always shown, since one missed leak costs more than many
dismissed comments.

Pure: no clock, no random, no store. ``now_ms`` comes in; posteriors are
values, and updates return new ones.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from schemas.errors import ProcessorError
from schemas.records import Finding

DAY_MS = 86_400_000
WILDCARD_REPO = "*"
# Categories and severities whose findings are never suppressed by feedback.
NEVER_SUPPRESSED_CATEGORIES = frozenset({"security", "secret"})
NEVER_SUPPRESSED_SEVERITIES = frozenset({"HIGH", "CRITICAL"})
# Verdicts of a FeedbackEvent that are evidence; IGNORED is not (silence is no answer).
_VERDICT_ACCEPTED = {"ACCEPTED": True, "REJECTED": False}


@dataclass(frozen=True, slots=True)
class Posterior:
    """Beta acceptance posterior of one key: decayed pseudo-counts as of ``updated_ms``."""

    alpha: float = 0.0
    beta: float = 0.0
    updated_ms: int = 0

    def __post_init__(self) -> None:
        for name in ("alpha", "beta"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise ProcessorError(f"posterior {name} must be finite and >= 0, got {value}")

    @property
    def evidence(self) -> float:
        """How many (decayed) observations stand behind this posterior."""
        return self.alpha + self.beta

    def decayed(self, now_ms: int, half_life_days: float) -> Posterior:
        """The same posterior as seen at ``now_ms``: counts halved per half-life elapsed.

        Never moves backwards in time: asked about an earlier instant, the
        posterior is returned unchanged.
        """
        factor = _decay(now_ms - self.updated_ms, half_life_days)
        if now_ms <= self.updated_ms:
            return self
        return Posterior(self.alpha * factor, self.beta * factor, now_ms)

    def observe(self, accepted: bool, now_ms: int, half_life_days: float) -> Posterior:
        """The posterior after one verdict at ``now_ms``.

        A verdict older than ``updated_ms`` (events arrive out of order) is
        added already decayed by its age, so the result does not depend on
        the order the events were applied in.
        """
        if now_ms >= self.updated_ms:
            base, weight = self.decayed(now_ms, half_life_days), 1.0
        else:
            base, weight = self, _decay(self.updated_ms - now_ms, half_life_days)
        if accepted:
            return Posterior(base.alpha + weight, base.beta, base.updated_ms)
        return Posterior(base.alpha, base.beta + weight, base.updated_ms)

    def mean(self, prior_mean: float, prior_strength: float = 2.0) -> float:
        """Posterior acceptance rate, the static confidence counting as ``prior_strength`` votes."""
        if not 0.0 <= prior_mean <= 1.0:
            raise ProcessorError(f"prior_mean must be within [0, 1], got {prior_mean}")
        if prior_strength <= 0:
            raise ProcessorError(f"prior_strength must be > 0, got {prior_strength}")
        return (prior_mean * prior_strength + self.alpha) / (prior_strength + self.evidence)

    def to_json(self) -> str:
        return json.dumps(
            {"alpha": self.alpha, "beta": self.beta, "updated_ms": self.updated_ms},
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> Posterior:
        """Parse ``to_json`` output; anything else is a ``ProcessorError``."""
        try:
            raw = json.loads(text)
            return cls(float(raw["alpha"]), float(raw["beta"]), int(raw["updated_ms"]))
        except (ValueError, TypeError, KeyError) as exc:
            raise ProcessorError(f"not a posterior: {exc!r}") from exc


def posterior_keys(tenant: str, repo: str, rule_id: str, category: str) -> list[str]:
    """The keys a finding is judged by and teaches, most specific first."""
    return [
        f"rule|{tenant}|{repo}|{rule_id}",
        f"rule|{tenant}|{WILDCARD_REPO}|{rule_id}",
        f"category|{tenant}|{repo}|{category}",
    ]


def finding_keys(finding: Finding) -> list[str]:
    """``posterior_keys`` of one finding."""
    return posterior_keys(finding.tenant, finding.repo, finding.rule_id, finding.category)


def verdict_accepted(verdict: str) -> bool | None:
    """True/False for ACCEPTED/REJECTED, None for a verdict that is no evidence (IGNORED)."""
    return _VERDICT_ACCEPTED.get(verdict)


def learn(
    posteriors: Mapping[str, Posterior],
    keys: Sequence[str],
    accepted: bool,
    *,
    now_ms: int,
    half_life_days: float,
) -> dict[str, Posterior]:
    """The updated posteriors of ``keys`` after one verdict (absent keys start empty).

    Returns only the changed entries, so a caller keeping posteriors in a
    table writes back exactly those.
    """
    return {
        key: posteriors.get(key, Posterior(updated_ms=now_ms)).observe(
            accepted, now_ms, half_life_days
        )
        for key in keys
    }


def evidence_for(
    finding: Finding,
    posteriors: Mapping[str, Posterior],
    *,
    now_ms: int,
    half_life_days: float,
    min_evidence: float = 3.0,
) -> tuple[str, Posterior] | None:
    """The most specific key with ``min_evidence`` decayed observations, and its posterior."""
    for key in finding_keys(finding):
        stored = posteriors.get(key)
        if stored is None:
            continue
        current = stored.decayed(now_ms, half_life_days)
        if current.evidence >= min_evidence:
            return key, current
    return None


def confidence_of(
    finding: Finding,
    posteriors: Mapping[str, Posterior],
    now_ms: int,
    half_life_days: float,
    prior_strength: float = 2.0,
    *,
    min_evidence: float = 3.0,
) -> tuple[float, str]:
    """The calibrated confidence of ``finding`` and the key that decided it ("prior" if none)."""
    found = evidence_for(
        finding, posteriors, now_ms=now_ms, half_life_days=half_life_days, min_evidence=min_evidence
    )
    prior = min(max(finding.confidence, 0.0), 1.0)
    if found is None:
        return prior, "prior"
    key, posterior = found
    return posterior.mean(prior, prior_strength), key


def suppression(
    finding: Finding,
    confidence: float,
    threshold: float,
    *,
    evidence: Posterior | None = None,
) -> str | None:
    """Why ``finding`` is not shown, or None when it is.

    ``evidence`` (the deciding posterior) only enriches the reason with the
    team's accepted/rejected counts.
    """
    if is_never_suppressed(finding) or confidence >= threshold:
        return None
    if evidence is None:
        basis = "static prior"
    else:
        basis = f"{evidence.alpha:.0f} accepted / {evidence.beta:.0f} rejected"
    return (
        f"confidence {confidence:.2f} < team threshold {threshold:.2f} "
        f"(rule {finding.rule_id}, {basis})"
    )


def is_never_suppressed(finding: Finding) -> bool:
    """HIGH/CRITICAL security and secret findings are shown whatever the feedback says."""
    return (
        finding.category in NEVER_SUPPRESSED_CATEGORIES
        and finding.severity in NEVER_SUPPRESSED_SEVERITIES
    )


def prompt_variant(pr_key: str, variants: Sequence[str]) -> str:
    """The prompt variant one PR gets in an A/B test: fixed per PR, uniform across PRs.

    A hash rather than a random draw, so retries, pushes and replicas of one
    PR all see the same variant and its feedback is attributed to it.
    """
    if not variants:
        raise ProcessorError("no prompt variants to choose from")
    digest = hashlib.sha256(pr_key.encode("utf-8")).digest()
    return variants[int.from_bytes(digest[:8], "big") % len(variants)]


def _decay(elapsed_ms: int, half_life_days: float) -> float:
    if not half_life_days > 0:
        raise ProcessorError(f"half_life_days must be > 0, got {half_life_days}")
    return float(0.5 ** (max(elapsed_ms, 0) / (half_life_days * DAY_MS)))
