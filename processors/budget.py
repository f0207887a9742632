"""LLM budgets and quotas per team and per repo: allow a call, alert once, or stop.

A runaway prompt or a monorepo full of PRs must not spend a team's month in
an afternoon. Limits are set per scope ("team:acme", "repo:acme/api"; one
limit per scope), in USD and/or tokens, per window (a day by default;
windows are aligned to the epoch, so a day is a UTC day). A call counts
against its team and its repo, and each has its own ledger entry, keyed by
scope. Before a model call the caller asks
``decide`` with an estimate of the call; the answer is the worst over every
limit that applies:

- ``stop`` when the spend so far plus the estimate would pass a limit: the
  call is not made and the pipeline falls back to triage findings;
- ``alert`` when it would cross ``alert_ratio`` of a limit (0.8 by default)
  for the first time in that window; the call goes ahead, and the returned
  ledger remembers the alert so it is reported once per window per scope;
- ``allow`` otherwise.

After the call, ``record`` adds the real usage (an ``LlmUsage``, priced
from the tokens the server counted) to every scope it belongs to.

Everything is pure: the caller passes ``now_ms`` and the ledger, and stores
the returned ledger. ``Spend`` round-trips through JSON (``to_json`` /
``from_json``) so it can live in a Faust table. Decide-then-record is not
atomic: concurrent calls of one scope can overshoot a limit by the calls in
flight, which the per-call estimate keeps small.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any, ClassVar

from providers.pricing import cost_usd
from schemas.errors import ProcessorError
from schemas.records import LlmUsage

DAY_MS = 86_400_000
_SCOPE_KINDS = ("team", "repo")


class BudgetAction(StrEnum):
    """Ordered by severity: a decision is the worst of its limits' actions."""

    ALLOW = "allow"
    ALERT = "alert"
    STOP = "stop"


_SEVERITY = {BudgetAction.ALLOW: 0, BudgetAction.ALERT: 1, BudgetAction.STOP: 2}


def team_scope(team: str) -> str:
    return f"team:{team}"


def repo_scope(repo: str) -> str:
    return f"repo:{repo}"


def scopes_of(team: str, repo: str) -> tuple[str, str]:
    """The scopes a call for ``repo`` of ``team`` (the tenant) counts against."""
    return team_scope(team), repo_scope(repo)


@dataclass(frozen=True, slots=True)
class BudgetLimit:
    """A cap for one scope and window; ``None`` leaves that dimension uncapped."""

    scope: str
    max_usd: float | None = None
    max_tokens: int | None = None
    window_ms: int = DAY_MS
    alert_ratio: float = 0.8

    def __post_init__(self) -> None:
        kind, _, name = self.scope.partition(":")
        if kind not in _SCOPE_KINDS or not name:
            raise ProcessorError(f"budget scope {self.scope!r} is not team:<name> or repo:<name>")
        if self.max_usd is None and self.max_tokens is None:
            raise ProcessorError(f"budget for {self.scope} sets neither max_usd nor max_tokens")
        if (self.max_usd is not None and self.max_usd < 0) or (
            self.max_tokens is not None and self.max_tokens < 0
        ):
            raise ProcessorError(f"budget for {self.scope} has a negative limit")
        if self.window_ms <= 0 or not 0 < self.alert_ratio <= 1:
            raise ProcessorError(
                f"budget for {self.scope} needs window_ms > 0, 0 < alert_ratio <= 1"
            )


def build_limits(
    usd: Mapping[str, float],
    tokens: Mapping[str, int] | None = None,
    *,
    window_ms: int = DAY_MS,
    alert_ratio: float = 0.8,
) -> list[BudgetLimit]:
    """Limits from configuration's scope -> USD and scope -> tokens mappings.

    A scope in both gets one limit capping both.
    """
    tokens = tokens or {}
    return [
        BudgetLimit(
            scope,
            max_usd=usd.get(scope),
            max_tokens=tokens.get(scope),
            window_ms=window_ms,
            alert_ratio=alert_ratio,
        )
        for scope in dict.fromkeys([*usd, *tokens])
    ]


@dataclass(frozen=True, slots=True)
class Spend:
    """What a scope spent in the window starting at ``window_start_ms``."""

    scope: str
    window_ms: int
    window_start_ms: int
    usd: float = 0.0
    tokens: int = 0
    calls: int = 0
    alerted: bool = False

    @classmethod
    def opened(cls, scope: str, window_ms: int, now_ms: int) -> Spend:
        """An empty ledger for the window holding ``now_ms``."""
        return cls(scope, window_ms, window_start(now_ms, window_ms))

    def at(self, now_ms: int) -> Spend:
        """This ledger as of ``now_ms``: a fresh one when a new window has begun."""
        start = window_start(now_ms, self.window_ms)
        return (
            self
            if start <= self.window_start_ms
            else Spend.opened(self.scope, self.window_ms, now_ms)
        )

    def add(self, usage: LlmUsage) -> Spend:
        """The ledger with ``usage`` counted in the window of ``usage.at_ms``."""
        tokens = usage.input_tokens + usage.output_tokens
        return self.add_cost(usage.cost_usd, tokens, at_ms=usage.at_ms)

    def add_cost(self, usd: float, tokens: int, *, at_ms: int) -> Spend:
        """The ledger with one call of ``usd`` and ``tokens`` made at ``at_ms`` counted.

        A call from an earlier window (a late record) changes nothing: that
        window is closed and must not eat into the current one.
        """
        current = self.at(at_ms)
        if window_start(at_ms, self.window_ms) < current.window_start_ms:
            return current
        return replace(
            current,
            usd=current.usd + usd,
            tokens=current.tokens + tokens,
            calls=current.calls + 1,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "scope": self.scope,
            "window_ms": self.window_ms,
            "window_start_ms": self.window_start_ms,
            "usd": self.usd,
            "tokens": self.tokens,
            "calls": self.calls,
            "alerted": self.alerted,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Spend:
        try:
            return cls(
                scope=str(data["scope"]),
                window_ms=int(data["window_ms"]),
                window_start_ms=int(data["window_start_ms"]),
                usd=float(data["usd"]),
                tokens=int(data["tokens"]),
                calls=int(data["calls"]),
                alerted=bool(data["alerted"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ProcessorError(f"not a budget ledger: {exc}") from exc


def window_start(now_ms: int, window_ms: int) -> int:
    return now_ms - now_ms % window_ms


@dataclass(frozen=True, slots=True)
class CallEstimate:
    """What the next call may cost at most: all of the prompt, every allowed output token."""

    usd: float
    tokens: int


def estimate_call(model: str, input_tokens: int, max_output_tokens: int) -> CallEstimate:
    """The worst case of a call, priced from the list-price table.

    Output is priced at ``max_output_tokens`` because the model may use them
    all; budgeting on the worst case is what keeps a hard stop hard.
    """
    if input_tokens < 0 or max_output_tokens < 0:
        raise ProcessorError("token estimates cannot be negative")
    return CallEstimate(
        usd=cost_usd(model, input_tokens, max_output_tokens),
        tokens=input_tokens + max_output_tokens,
    )


@dataclass(frozen=True, slots=True)
class LimitVerdict:
    """One limit's view of the next call: the spend so far, and the action."""

    limit: BudgetLimit
    action: BudgetAction
    spent_usd: float
    spent_tokens: int

    @property
    def scope(self) -> str:
        return self.limit.scope

    def describe(self, estimate: CallEstimate) -> str:
        limit, parts = self.limit, []
        if limit.max_usd is not None:
            parts.append(f"${self.spent_usd + estimate.usd:.4f} of ${limit.max_usd:g}")
        if limit.max_tokens is not None:
            parts.append(f"{self.spent_tokens + estimate.tokens} of {limit.max_tokens} tokens")
        return f"{limit.scope} would reach {' and '.join(parts)} per {limit.window_ms // 1000}s"


@dataclass(frozen=True, slots=True)
class BudgetDecision:
    """The worst action over all applicable limits, with what the caller must act on.

    ``alerts`` are the scopes whose alert ratio this call crosses first in
    the window (report each once); ``stops`` the scopes whose limit it would
    pass. ``ledger`` holds the entries of the applicable limits, rolled over
    to the current window and with alerts marked: the caller stores it back.
    """

    ALLOW: ClassVar[BudgetAction] = BudgetAction.ALLOW
    ALERT: ClassVar[BudgetAction] = BudgetAction.ALERT
    STOP: ClassVar[BudgetAction] = BudgetAction.STOP

    verdict: BudgetAction
    estimate: CallEstimate
    limits: tuple[LimitVerdict, ...]
    ledger: dict[str, Spend]

    @property
    def allowed(self) -> bool:
        return self.verdict is not BudgetAction.STOP

    @property
    def alerts(self) -> tuple[str, ...]:
        return tuple(v.scope for v in self.limits if v.action is BudgetAction.ALERT)

    @property
    def stops(self) -> tuple[str, ...]:
        return tuple(v.scope for v in self.limits if v.action is BudgetAction.STOP)

    @property
    def spent_usd(self) -> dict[str, float]:
        """USD spent so far in the current window, per applicable scope."""
        return {v.scope: v.spent_usd for v in self.limits}

    @property
    def reason(self) -> str:
        """Why the call is stopped or alerted ("" when simply allowed), for logs and metrics."""
        picked = [v for v in self.limits if v.action is self.verdict]
        if self.verdict is BudgetAction.ALLOW or not picked:
            return ""
        return "; ".join(v.describe(self.estimate) for v in picked)


def decide(
    limits: Sequence[BudgetLimit],
    ledger: Mapping[str, Spend],
    estimate: CallEstimate,
    *,
    scopes: Collection[str],
    now_ms: int,
) -> BudgetDecision:
    """Whether a call of ``scopes`` that may cost ``estimate`` may go ahead now."""
    verdicts: list[LimitVerdict] = []
    updated: dict[str, Spend] = {}
    for limit in _applicable(limits, scopes):
        spend = _current(ledger, limit, now_ms)
        action = _judge(limit, spend, estimate)
        if action is BudgetAction.ALERT:
            spend = replace(spend, alerted=True)
        updated[limit.scope] = spend
        verdicts.append(LimitVerdict(limit, action, spend.usd, spend.tokens))
    worst = max((v.action for v in verdicts), key=_SEVERITY.__getitem__, default=BudgetAction.ALLOW)
    return BudgetDecision(worst, estimate, tuple(verdicts), updated)


def record(
    limits: Sequence[BudgetLimit], ledger: Mapping[str, Spend], usage: LlmUsage
) -> dict[str, Spend]:
    """The ledger entries ``usage`` changes: every limit of its team and repo, usage added."""
    scopes = scopes_of(usage.tenant, usage.repo)
    return {
        limit.scope: _current(ledger, limit, usage.at_ms).add(usage)
        for limit in _applicable(limits, scopes)
    }


def _applicable(limits: Sequence[BudgetLimit], scopes: Collection[str]) -> list[BudgetLimit]:
    chosen: dict[str, BudgetLimit] = {}
    for limit in limits:
        if limit.scope not in scopes:
            continue
        if limit.scope in chosen:
            raise ProcessorError(f"two budgets for {limit.scope}")
        chosen[limit.scope] = limit
    return list(chosen.values())


def _current(ledger: Mapping[str, Spend], limit: BudgetLimit, now_ms: int) -> Spend:
    """The scope's ledger as of ``now_ms``; a fresh one when none, or its window changed."""
    spend = ledger.get(limit.scope)
    if spend is None or spend.window_ms != limit.window_ms:
        return Spend.opened(limit.scope, limit.window_ms, now_ms)
    return spend.at(now_ms)


def _judge(limit: BudgetLimit, spend: Spend, estimate: CallEstimate) -> BudgetAction:
    usd_after = spend.usd + estimate.usd
    tokens_after = spend.tokens + estimate.tokens
    ratios = []
    if limit.max_usd is not None:
        if usd_after > limit.max_usd:
            return BudgetAction.STOP
        ratios.append(usd_after / limit.max_usd if limit.max_usd else 0.0)
    if limit.max_tokens is not None:
        if tokens_after > limit.max_tokens:
            return BudgetAction.STOP
        ratios.append(tokens_after / limit.max_tokens if limit.max_tokens else 0.0)
    if not spend.alerted and max(ratios) >= limit.alert_ratio:
        return BudgetAction.ALERT
    return BudgetAction.ALLOW
