"""Budgets and quotas: allow, alert once per window, hard stop; per team and per repo."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace

import pytest

from processors.budget import (
    DAY_MS,
    BudgetAction,
    BudgetDecision,
    BudgetLimit,
    CallEstimate,
    Spend,
    build_limits,
    decide,
    estimate_call,
    record,
    scopes_of,
)
from schemas.errors import ProcessorError
from schemas.records import LlmUsage

T0 = 1_700_000_000_000 - 1_700_000_000_000 % DAY_MS  # a UTC midnight
ALLOW, ALERT, STOP = BudgetAction.ALLOW, BudgetAction.ALERT, BudgetAction.STOP
TEAM, REPO = scopes_of("acme", "acme/api")
LIMITS = [BudgetLimit(TEAM, max_usd=10.0), BudgetLimit(REPO, max_usd=2.0, max_tokens=100_000)]


def usage(
    usd: float, *, tokens: int = 1000, at_ms: int = T0, tenant: str = "acme", repo: str = "acme/api"
) -> LlmUsage:
    return LlmUsage(
        call_id="c",
        event_id="e",
        tenant=tenant,
        repo=repo,
        pr_number=1,
        provider="openai",
        model="gpt-4o",
        prompt_version="review-v1",
        input_tokens=tokens - tokens // 4,
        output_tokens=tokens // 4,
        cost_usd=usd,
        latency_ms=10.0,
        ok=True,
        at_ms=at_ms,
    )


def spent(scope: str, usd: float = 0.0, tokens: int = 0, *, alerted: bool = False) -> Spend:
    return Spend(scope, DAY_MS, T0, usd=usd, tokens=tokens, calls=1, alerted=alerted)


@pytest.mark.parametrize(
    ("team_usd", "repo_usd", "repo_tokens", "estimate", "expected", "alerts", "stops"),
    [
        (0.0, 0.0, 0, CallEstimate(0.1, 2000), ALLOW, (), ()),
        (7.0, 0.5, 0, CallEstimate(0.1, 2000), ALLOW, (), ()),  # team at 71%
        (7.9, 0.5, 0, CallEstimate(0.1, 2000), ALERT, (TEAM,), ()),  # team reaches 80%
        (1.0, 1.5, 0, CallEstimate(0.2, 2000), ALERT, (REPO,), ()),  # repo reaches 85%
        (1.0, 1.0, 79_000, CallEstimate(0.0, 2000), ALERT, (REPO,), ()),  # by tokens
        (9.95, 0.5, 0, CallEstimate(0.1, 2000), STOP, (), (TEAM,)),  # team would pass $10
        (1.0, 1.95, 0, CallEstimate(0.1, 2000), STOP, (), (REPO,)),  # repo would pass $2
        (1.0, 0.5, 99_000, CallEstimate(0.0, 2000), STOP, (), (REPO,)),  # tokens would pass
        (8.0, 1.99, 0, CallEstimate(0.02, 10), STOP, (TEAM,), (REPO,)),  # stop wins; alert kept
        (9.9, 1.9, 0, CallEstimate(0.1, 10), ALERT, (TEAM, REPO), ()),  # exactly AT a limit
    ],
)
def test_decision_per_team_and_repo(
    team_usd: float,
    repo_usd: float,
    repo_tokens: int,
    estimate: CallEstimate,
    expected: BudgetAction,
    alerts: tuple[str, ...],
    stops: tuple[str, ...],
) -> None:
    ledger = {TEAM: spent(TEAM, team_usd), REPO: spent(REPO, repo_usd, repo_tokens)}
    decision = decide(LIMITS, ledger, estimate, scopes=(TEAM, REPO), now_ms=T0 + 1000)
    assert decision.verdict is expected
    assert (decision.alerts, decision.stops) == (alerts, stops)
    assert decision.allowed is (expected is not STOP)
    assert decision.spent_usd == {TEAM: team_usd, REPO: repo_usd}
    assert (decision.reason == "") is (expected is ALLOW)
    for scope in alerts:
        assert decision.ledger[scope].alerted


def test_stop_reason_names_the_scope_and_the_numbers() -> None:
    ledger = {REPO: spent(REPO, 1.95)}
    decision = decide(LIMITS, ledger, CallEstimate(0.1, 10), scopes=(TEAM, REPO), now_ms=T0)
    assert decision.verdict == BudgetDecision.STOP
    assert (
        decision.reason
        == "repo:acme/api would reach $2.0500 of $2 and 10 of 100000 tokens per 86400s"
    )


def test_an_alert_is_reported_once_per_window_then_again_in_the_next() -> None:
    ledger: dict[str, Spend] = {TEAM: spent(TEAM, 8.0)}
    limits = [BudgetLimit(TEAM, max_usd=10.0)]
    small = CallEstimate(0.01, 100)
    seen = []
    for now in (T0 + 1, T0 + 2, T0 + 3):
        decision = decide(limits, ledger, small, scopes=(TEAM,), now_ms=now)
        seen.append(decision.verdict)
        ledger.update(decision.ledger)
    assert seen == [ALERT, ALLOW, ALLOW]
    # The next day the spend starts from zero; crossing 80% again alerts again.
    ledger[TEAM] = replace(ledger[TEAM].at(T0 + DAY_MS), usd=8.5)
    assert ledger[TEAM].alerted is False
    again = decide(limits, ledger, small, scopes=(TEAM,), now_ms=T0 + DAY_MS + 5)
    assert again.verdict is ALERT


def test_a_new_window_rolls_the_spend_over() -> None:
    ledger = {TEAM: spent(TEAM, 9.99, alerted=True)}
    limits = [BudgetLimit(TEAM, max_usd=10.0)]
    today = decide(limits, ledger, CallEstimate(0.5, 10), scopes=(TEAM,), now_ms=T0 + DAY_MS - 1)
    tomorrow = decide(limits, ledger, CallEstimate(0.5, 10), scopes=(TEAM,), now_ms=T0 + DAY_MS)
    assert (today.verdict, tomorrow.verdict) == (STOP, ALLOW)
    fresh = tomorrow.ledger[TEAM]
    assert (fresh.window_start_ms, fresh.usd, fresh.calls, fresh.alerted) == (
        T0 + DAY_MS,
        0.0,
        0,
        False,
    )


def test_hourly_windows_are_aligned_to_the_hour() -> None:
    hour = 3_600_000
    limits = [BudgetLimit(TEAM, max_tokens=5000, window_ms=hour)]
    ledger = record(limits, {}, usage(0.0, tokens=4500, at_ms=T0 + hour + 10))
    assert ledger[TEAM].window_start_ms == T0 + hour
    same_hour = decide(
        limits, ledger, CallEstimate(0, 600), scopes=(TEAM,), now_ms=T0 + 2 * hour - 1
    )
    next_hour = decide(limits, ledger, CallEstimate(0, 600), scopes=(TEAM,), now_ms=T0 + 2 * hour)
    assert (same_hour.verdict, next_hour.verdict) == (STOP, ALLOW)


def test_scopes_are_separate_ledgers_per_team_and_per_repo() -> None:
    other_team, other_repo = scopes_of("globex", "globex/web")
    limits = [*LIMITS, BudgetLimit(other_team, max_usd=1.0), BudgetLimit(other_repo, max_usd=1.0)]
    ledger: dict[str, Spend] = {}
    ledger.update(record(limits, ledger, usage(1.5)))
    ledger.update(record(limits, ledger, usage(0.25, repo="acme/web")))  # same team, other repo
    ledger.update(record(limits, ledger, usage(0.5, tenant="globex", repo="globex/web")))
    assert {k: round(v.usd, 4) for k, v in ledger.items()} == {
        TEAM: 1.75,
        REPO: 1.5,
        other_team: 0.5,
        other_repo: 0.5,
    }  # acme/web has no limit of its own: only its team counts it
    assert ledger[TEAM].calls == 2 and ledger[REPO].tokens == 1000
    # acme/api is near its own limit; acme/web of the same team is not.
    est = CallEstimate(0.6, 10)
    api = decide(limits, ledger, est, scopes=scopes_of("acme", "acme/api"), now_ms=T0)
    web = decide(limits, ledger, est, scopes=scopes_of("acme", "acme/web"), now_ms=T0)
    assert (api.verdict, api.stops, web.verdict) == (STOP, (REPO,), ALLOW)


def test_without_limits_every_call_is_allowed() -> None:
    decision = decide([], {}, CallEstimate(1e6, 10**9), scopes=(TEAM, REPO), now_ms=T0)
    assert (decision.verdict, decision.limits, decision.ledger) == (ALLOW, (), {})


def test_a_late_usage_from_a_closed_window_does_not_count_today() -> None:
    limits = [BudgetLimit(TEAM, max_usd=10.0)]
    ledger = record(limits, {}, usage(1.0, at_ms=T0 + DAY_MS + 5))
    ledger = record(limits, ledger, usage(3.0, at_ms=T0 + 5))  # yesterday's, arriving late
    assert (ledger[TEAM].usd, ledger[TEAM].calls) == (1.0, 1)


def test_a_changed_window_length_starts_a_fresh_ledger() -> None:
    ledger = {TEAM: spent(TEAM, 9.0)}
    weekly = [BudgetLimit(TEAM, max_usd=10.0, window_ms=7 * DAY_MS)]
    decision = decide(weekly, ledger, CallEstimate(2.0, 10), scopes=(TEAM,), now_ms=T0)
    assert decision.verdict is ALLOW and decision.ledger[TEAM].window_ms == 7 * DAY_MS


def test_spend_round_trips_through_json() -> None:
    ledger = record(LIMITS, {}, usage(0.125, tokens=4000, at_ms=T0 + 42))
    for spend in ledger.values():
        text = json.dumps(spend.to_json())
        assert Spend.from_json(json.loads(text)) == spend
    with pytest.raises(ProcessorError):
        Spend.from_json({"scope": TEAM})


@pytest.mark.parametrize(
    ("model", "tokens_in", "max_out", "usd", "tokens"),
    [
        ("gpt-4o-mini", 1_000_000, 0, 0.15, 1_000_000),
        ("gpt-4o", 4_000, 1_024, 0.02024, 5_024),  # output priced at the full max_tokens
        ("claude-sonnet-4-5", 10_000, 2_000, 0.06, 12_000),
        ("gemma3-270m-q4", 5_000, 5_000, 0.0, 10_000),  # self-hosted: free, tokens still count
    ],
)
def test_estimate_of_a_call(
    model: str, tokens_in: int, max_out: int, usd: float, tokens: int
) -> None:
    estimate = estimate_call(model, tokens_in, max_out)
    assert estimate.usd == pytest.approx(usd)
    assert estimate.tokens == tokens


def test_limits_from_configuration() -> None:
    limits = build_limits(
        {"team:acme": 50, "repo:acme/api": 5},
        {"repo:acme/api": 200_000, "repo:acme/web": 10_000},
        window_ms=DAY_MS,
        alert_ratio=0.9,
    )
    assert [(lim.scope, lim.max_usd, lim.max_tokens, lim.alert_ratio) for lim in limits] == [
        ("team:acme", 50, None, 0.9),
        ("repo:acme/api", 5, 200_000, 0.9),
        ("repo:acme/web", None, 10_000, 0.9),
    ]
    assert build_limits({}) == []


@pytest.mark.parametrize(
    "make",
    [
        lambda: BudgetLimit("org:acme", max_usd=1.0),
        lambda: BudgetLimit("team:", max_usd=1.0),
        lambda: BudgetLimit("team:acme"),
        lambda: BudgetLimit("team:acme", max_usd=-1.0),
        lambda: BudgetLimit("team:acme", max_usd=1.0, window_ms=0),
        lambda: BudgetLimit("team:acme", max_usd=1.0, alert_ratio=1.5),
        lambda: estimate_call("gpt-4o", -1, 10),
        lambda: decide(
            [BudgetLimit(TEAM, max_usd=1.0), BudgetLimit(TEAM, max_tokens=5)],
            {},
            CallEstimate(0, 0),
            scopes=(TEAM,),
            now_ms=T0,
        ),
    ],
)
def test_bad_configuration_is_a_processor_error(make: Callable[[], object]) -> None:
    with pytest.raises(ProcessorError):
        make()
