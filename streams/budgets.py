"""Budgets held in a Faust table: each partition of the analyze agent spends its share.

The ledger must survive restarts and be updated without a round trip to a
store, so it lives in a changelog-backed Faust table. But a Faust table is
partitioned like the agent's input, and one team's PRs are spread over every
partition, possibly on several workers. Summing other workers' partitions
would need a global table read on every call. Instead each partition gets an
equal share of every limit and keeps its own ledger entry
("scope|p<partition>"): the shares add up to the limit, so the hard stop holds
globally with no coordination. The cost is that a team whose PRs all land on
one partition is stopped at its share; with PRs hashed over partitions by
repo and number that is rare, and it errs on the side of spending less.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from processors.analysis import estimate_tokens
from processors.budget import (
    BudgetDecision,
    BudgetLimit,
    Spend,
    build_limits,
    decide,
    estimate_call,
    scopes_of,
)

DAY_S = 86_400


class Budgets:
    """Per-scope USD and token limits, split into per-partition shares, over one Faust table."""

    def __init__(
        self,
        budgets_usd: Mapping[str, float],
        budgets_tokens: Mapping[str, int] | None = None,
        *,
        partitions: int,
        window_s: int = DAY_S,
        alert_ratio: float = 0.8,
    ) -> None:
        if partitions < 1:
            raise ValueError("partitions must be >= 1")
        full = build_limits(
            budgets_usd, budgets_tokens, window_ms=window_s * 1000, alert_ratio=alert_ratio
        )
        self.limits: list[BudgetLimit] = [
            replace(
                limit,
                max_usd=None if limit.max_usd is None else limit.max_usd / partitions,
                max_tokens=None if limit.max_tokens is None else limit.max_tokens // partitions,
            )
            for limit in full
        ]
        self._table: Any = None

    def attach(self, table: Any) -> None:
        """Use ``table`` (a Faust table, or any mutable mapping) as the ledger."""
        self._table = table

    def check(
        self,
        tenant: str,
        repo: str,
        model: str,
        prompt: str,
        max_output_tokens: int,
        *,
        partition: int,
        now_ms: int,
    ) -> BudgetDecision:
        """May a call with this prompt be made now? Alerts are marked as reported."""
        estimate = estimate_call(model, estimate_tokens(prompt), max_output_tokens)
        scopes = scopes_of(tenant, repo)
        ledger = self._ledger(scopes, partition)
        decision = decide(self.limits, ledger, estimate, scopes=scopes, now_ms=now_ms)
        if decision.alerts:
            self._store(decision.ledger, partition)
        return decision

    def spend(
        self, tenant: str, repo: str, usd: float, tokens: int, *, partition: int, now_ms: int
    ) -> None:
        """Add a call's real cost to every limited scope of its team and repo."""
        if not self.limits:
            return
        scopes = scopes_of(tenant, repo)
        ledger = self._ledger(scopes, partition)
        updated: dict[str, Spend] = {}
        for limit in self.limits:
            if limit.scope not in scopes:
                continue
            current = ledger.get(limit.scope) or Spend.opened(limit.scope, limit.window_ms, now_ms)
            updated[limit.scope] = current.at(now_ms).add_cost(usd, tokens, at_ms=now_ms)
        self._store(updated, partition)

    def _ledger(self, scopes: tuple[str, ...], partition: int) -> dict[str, Spend]:
        if self._table is None:
            return {}
        out: dict[str, Spend] = {}
        for scope in scopes:
            raw = self._table.get(_key(scope, partition))
            if raw:
                out[scope] = Spend.from_json(raw)
        return out

    def _store(self, ledger: Mapping[str, Spend], partition: int) -> None:
        if self._table is None:
            return
        for scope, spend in ledger.items():
            self._table[_key(scope, partition)] = spend.to_json()


def _key(scope: str, partition: int) -> str:
    return f"{scope}|p{partition}"
