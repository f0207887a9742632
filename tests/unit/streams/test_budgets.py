"""Budgets over a table: each partition spends an equal share of every limit."""

from __future__ import annotations

from typing import Any

import pytest

from processors.budget import BudgetAction, Spend
from streams.budgets import Budgets

NOW = 1_700_000_000_000
MODEL = "gpt-4o-mini"  # $0.15 in, $0.60 out per 1M tokens
PROMPT = "x" * 4000  # ~1000 tokens
OUT = 1000
# The worst case of one call: 1000 * 0.15e-6 + 1000 * 0.60e-6.
CALL_USD = 0.00075
CALL_TOKENS = 2000


def budgets(
    usd: dict[str, float],
    tokens: dict[str, int] | None = None,
    *,
    partitions: int,
    table: dict[str, Any] | None = None,
) -> Budgets:
    ledger = Budgets(usd, tokens, partitions=partitions)
    ledger.attach({} if table is None else table)
    return ledger


def check(
    ledger: Budgets,
    *,
    partition: int = 0,
    repo: str = "acme/api",
    prompt: str = PROMPT,
    out: int = OUT,
    now_ms: int = NOW,
) -> Any:
    return ledger.check("acme", repo, MODEL, prompt, out, partition=partition, now_ms=now_ms)


def test_the_estimate_is_the_worst_case_of_the_call() -> None:
    decision = check(budgets({"team:acme": 1.0}, partitions=1))
    assert decision.estimate.usd == pytest.approx(CALL_USD)
    assert decision.estimate.tokens == CALL_TOKENS


@pytest.mark.parametrize(
    ("partitions", "share"),
    [(1, 0.012), (4, 0.003), (12, 0.001)],
)
def test_each_partition_gets_an_equal_share(partitions: int, share: float) -> None:
    ledger = Budgets({"team:acme": 0.012}, {"repo:acme/api": 1201}, partitions=partitions)
    (limit_usd, limit_tokens) = ledger.limits
    assert limit_usd.scope == "team:acme" and limit_usd.max_usd == pytest.approx(share)
    assert limit_tokens.scope == "repo:acme/api" and limit_tokens.max_tokens == 1201 // partitions


@pytest.mark.parametrize(
    ("limit_usd", "partitions", "verdict"),
    [
        # $0.002 over 4 partitions is $0.0005 each, under one call's $0.00075.
        (0.002, 4, BudgetAction.STOP),
        # The same limit on one partition covers it.
        (0.002, 1, BudgetAction.ALLOW),
        (0.010, 4, BudgetAction.ALLOW),
        (0.0028, 4, BudgetAction.STOP),
    ],
)
def test_stop_when_the_estimate_exceeds_the_share(
    limit_usd: float, partitions: int, verdict: BudgetAction
) -> None:
    decision = check(budgets({"team:acme": limit_usd}, partitions=partitions))
    assert decision.verdict is verdict
    assert decision.allowed is (verdict is not BudgetAction.STOP)
    if verdict is BudgetAction.STOP:
        assert decision.stops == ("team:acme",)


def test_spend_accumulates_in_the_partitions_ledger() -> None:
    table: dict[str, Any] = {}
    ledger = budgets({"team:acme": 1.0, "repo:acme/api": 1.0}, partitions=2, table=table)
    ledger.spend("acme", "acme/api", 0.1, 300, partition=1, now_ms=NOW)
    ledger.spend("acme", "acme/api", 0.05, 200, partition=1, now_ms=NOW + 10)
    assert sorted(table) == ["repo:acme/api|p1", "team:acme|p1"]
    for key in table:
        spend = Spend.from_json(table[key])
        assert spend.usd == pytest.approx(0.15)
        assert (spend.tokens, spend.calls) == (500, 2)


def test_spend_only_touches_limited_scopes_of_its_team_and_repo() -> None:
    table: dict[str, Any] = {}
    ledger = budgets({"repo:acme/api": 1.0, "team:other": 1.0}, partitions=1, table=table)
    ledger.spend("acme", "acme/api", 0.1, 10, partition=0, now_ms=NOW)
    assert list(table) == ["repo:acme/api|p0"]


def test_spending_up_to_the_share_stops_that_partition_only() -> None:
    table: dict[str, Any] = {}
    # A $0.004 limit over 4 partitions: $0.001 each, room for one $0.00075 call.
    ledger = budgets({"team:acme": 0.004}, partitions=4, table=table)
    assert check(ledger, partition=0).verdict is BudgetAction.ALLOW
    ledger.spend("acme", "acme/api", 0.0005, 1500, partition=0, now_ms=NOW)
    stopped = check(ledger, partition=0)
    assert stopped.verdict is BudgetAction.STOP
    assert stopped.spent_usd == {"team:acme": pytest.approx(0.0005)}
    assert "team:acme" in stopped.reason
    # Another partition has its own share, untouched.
    assert check(ledger, partition=1).verdict is BudgetAction.ALLOW
    # The same team through another repo shares the team ledger of partition 0.
    assert check(ledger, partition=0, repo="acme/web").verdict is BudgetAction.STOP


def test_a_new_window_starts_the_share_afresh() -> None:
    ledger = budgets({"team:acme": 0.004}, partitions=4)
    ledger.spend("acme", "acme/api", 0.0009, 100, partition=0, now_ms=NOW)
    assert check(ledger).verdict is BudgetAction.STOP
    assert check(ledger, now_ms=NOW + 86_400_000).verdict is BudgetAction.ALLOW


def test_alert_is_reported_once_per_window() -> None:
    table: dict[str, Any] = {}
    # $0.0036 over 4 partitions: $0.0009 each; one call reaches 83% of it.
    ledger = budgets({"team:acme": 0.0036}, partitions=4, table=table)
    first = check(ledger)
    assert first.verdict is BudgetAction.ALERT and first.allowed
    assert first.alerts == ("team:acme",)
    assert Spend.from_json(table["team:acme|p0"]).alerted
    second = check(ledger)
    assert second.verdict is BudgetAction.ALLOW and second.alerts == ()
    # Other partitions alert for themselves.
    assert check(ledger, partition=3).alerts == ("team:acme",)


def test_a_plain_allow_stores_nothing() -> None:
    table: dict[str, Any] = {}
    assert (
        check(budgets({"team:acme": 1.0}, partitions=1, table=table)).verdict is BudgetAction.ALLOW
    )
    assert table == {}


@pytest.mark.parametrize(
    ("tokens", "partitions", "out", "verdict"),
    [
        # 8000 tokens over 4 partitions: 2000 each; 1000 in + 1500 out passes it.
        (8000, 4, 1500, BudgetAction.STOP),
        # Exactly the share is allowed, and crosses the alert ratio.
        (8000, 4, 1000, BudgetAction.ALERT),
        (8000, 1, 1000, BudgetAction.ALLOW),
        (8003, 4, 1000, BudgetAction.ALERT),
    ],
)
def test_token_limits(tokens: int, partitions: int, out: int, verdict: BudgetAction) -> None:
    ledger = budgets({}, {"repo:acme/api": tokens}, partitions=partitions)
    assert check(ledger, out=out).verdict is verdict


def test_tokens_spent_count_against_the_token_share() -> None:
    ledger = budgets({}, {"repo:acme/api": 10_000}, partitions=2)  # 5000 each
    assert check(ledger).verdict is BudgetAction.ALLOW
    ledger.spend("acme", "acme/api", 0.0, 3500, partition=0, now_ms=NOW)
    assert check(ledger).verdict is BudgetAction.STOP
    assert check(ledger, partition=1).verdict is BudgetAction.ALLOW


@pytest.mark.parametrize("attach", [True, False])
def test_no_limits_always_allow(attach: bool) -> None:
    table: dict[str, Any] = {}
    ledger = Budgets({}, partitions=3)
    if attach:
        ledger.attach(table)
    huge = check(ledger, prompt="x" * 4_000_000, out=100_000)
    assert huge.verdict is BudgetAction.ALLOW and huge.limits == ()
    ledger.spend("acme", "acme/api", 99.0, 10**9, partition=0, now_ms=NOW)
    assert check(ledger).verdict is BudgetAction.ALLOW
    assert table == {}


def test_without_a_table_limits_still_apply_to_each_call() -> None:
    assert check(Budgets({"team:acme": 0.002}, partitions=4)).verdict is BudgetAction.STOP
    ledger = Budgets({"team:acme": 0.004}, partitions=4)
    ledger.spend("acme", "acme/api", 1.0, 1, partition=0, now_ms=NOW)  # nowhere to keep it
    assert check(ledger).verdict is BudgetAction.ALLOW


def test_partitions_must_be_positive() -> None:
    with pytest.raises(ValueError):
        Budgets({"team:acme": 1.0}, partitions=0)
