"""The circuit breaker alone, on a fake clock: when it opens, fails fast, probes, closes."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

import pytest

from providers import ProviderError
from providers.circuit import (
    BreakerPolicy,
    CircuitBreaker,
    CircuitOpenError,
    CircuitState,
    is_health_failure,
)

T = TypeVar("T")
DOWN = ProviderError("HTTP 503", retryable=True, status=503)


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Server:
    """A call target that fails with ``error`` while it is set, and counts calls."""

    def __init__(self) -> None:
        self.error: Exception | None = None
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.error is not None:
            raise self.error
        return "ok"


def outcome(breaker: CircuitBreaker, server: Server) -> str:
    """ "ok", or the class name of what the breaker call raised."""
    try:
        return run(breaker.call(server))
    except ProviderError as exc:
        return type(exc).__name__


def breaker(clock: Clock, **policy: Any) -> CircuitBreaker:
    return CircuitBreaker("openai:gpt-test", BreakerPolicy(**policy), clock=clock)


def test_opens_after_k_consecutive_failures_then_fails_fast_without_calling() -> None:
    clock, server = Clock(), Server()
    cb = breaker(clock, failure_threshold=3, cooldown_s=10.0)
    server.error = DOWN
    assert [outcome(cb, server) for _ in range(3)] == ["ProviderError"] * 3
    assert cb.state is CircuitState.OPEN and cb.opened_count == 1
    clock.now += 4.0
    with pytest.raises(CircuitOpenError) as caught:
        run(cb.call(server))
    assert server.calls == 3  # the open breaker did not touch the server
    assert not caught.value.retryable
    assert caught.value.retry_in_s == pytest.approx(6.0)
    assert caught.value.key == "openai:gpt-test"


def test_a_success_resets_the_consecutive_count() -> None:
    clock, server = Clock(), Server()
    cb = breaker(clock, failure_threshold=3)
    for error in (DOWN, DOWN, None, DOWN, DOWN, None, DOWN, DOWN):
        server.error = error
        outcome(cb, server)
    assert cb.state is CircuitState.CLOSED


def test_half_open_probe_success_closes_it() -> None:
    clock, server = Clock(), Server()
    cb = breaker(clock, failure_threshold=2, cooldown_s=10.0)
    server.error = DOWN
    for _ in range(2):
        outcome(cb, server)
    clock.now += 10.0
    assert cb.state is CircuitState.HALF_OPEN
    server.error = None
    assert outcome(cb, server) == "ok"
    assert cb.state is CircuitState.CLOSED
    assert [outcome(cb, server) for _ in range(3)] == ["ok"] * 3


def test_half_open_probe_failure_reopens_for_a_new_cooldown() -> None:
    clock, server = Clock(), Server()
    cb = breaker(clock, failure_threshold=2, cooldown_s=10.0)
    server.error = DOWN
    for _ in range(2):
        outcome(cb, server)
    clock.now += 10.0
    assert outcome(cb, server) == "ProviderError"  # the probe went through and failed
    assert (cb.state, cb.opened_count, server.calls) == (CircuitState.OPEN, 2, 3)
    clock.now += 9.0
    assert outcome(cb, server) == "CircuitOpenError"
    assert server.calls == 3


def test_only_one_probe_at_a_time_while_half_open() -> None:
    async def scenario() -> tuple[str, str, CircuitState]:
        clock, server = Clock(), Server()
        cb = breaker(clock, failure_threshold=1, cooldown_s=5.0)
        server.error = DOWN
        with pytest.raises(ProviderError):
            await cb.call(server)
        clock.now += 5.0
        release = asyncio.Event()

        async def slow_probe() -> str:
            await release.wait()
            return "probe ok"

        probe = asyncio.create_task(cb.call(slow_probe))
        await asyncio.sleep(0)  # the probe is admitted and in flight
        try:
            await cb.call(server)
            second = "called"
        except CircuitOpenError:
            second = "failed fast"
        release.set()
        return await probe, second, cb.state

    assert run(scenario()) == ("probe ok", "failed fast", CircuitState.CLOSED)


def test_a_cancelled_probe_frees_the_probe_slot() -> None:
    async def scenario() -> str:
        clock = Clock()
        cb = breaker(clock, failure_threshold=1, cooldown_s=1.0)
        with pytest.raises(ProviderError):
            await cb.call(_failing())
        clock.now += 1.0
        probe = asyncio.create_task(cb.call(lambda: asyncio.sleep(10)))
        await asyncio.sleep(0)
        probe.cancel()
        with pytest.raises(asyncio.CancelledError):
            await probe
        return await cb.call(Server())

    assert run(scenario()) == "ok"


def _failing() -> Server:
    server = Server()
    server.error = DOWN
    return server


def test_failure_ratio_in_a_window_opens_it() -> None:
    clock, server = Clock(), Server()
    cb = breaker(clock, failure_threshold=100, window=4, failure_ratio=0.5)
    for error in (DOWN, None, DOWN):
        server.error = error
        outcome(cb, server)
    assert cb.state is CircuitState.CLOSED  # 3 outcomes: the window is not full yet
    server.error = None
    outcome(cb, server)  # F S F S: half of the last 4 failed
    assert cb.state is CircuitState.OPEN


def test_outcomes_of_calls_started_before_it_opened_are_ignored() -> None:
    async def scenario() -> CircuitState:
        clock = Clock()
        cb = breaker(clock, failure_threshold=1, cooldown_s=5.0)
        release = asyncio.Event()

        async def slow_ok() -> str:
            await release.wait()
            return "ok"

        slow = asyncio.create_task(cb.call(slow_ok))
        await asyncio.sleep(0)
        with pytest.raises(ProviderError):
            await cb.call(_failing())
        clock.now += 5.0  # cooled down: half-open, waiting for a probe
        release.set()
        await slow  # a success from before the opening must not close it
        return cb.state

    assert run(scenario()) is CircuitState.HALF_OPEN


@pytest.mark.parametrize(
    ("error", "counts"),
    [
        (ProviderError("timed out", retryable=True), True),
        (ProviderError("HTTP 429", retryable=True, status=429), True),
        (ProviderError("HTTP 500", retryable=True, status=500), True),
        (ProviderError("HTTP 401", retryable=False, status=401), True),  # bad key: all fail
        (ProviderError("HTTP 403", retryable=False, status=403), True),
        (ProviderError("HTTP 400", retryable=False, status=400), False),  # our request
        (ProviderError("HTTP 404", retryable=False, status=404), False),
    ],
)
def test_what_counts_against_a_models_health(error: ProviderError, counts: bool) -> None:
    assert is_health_failure(error) is counts
    clock, server = Clock(), Server()
    cb = breaker(clock, failure_threshold=2)
    server.error = error
    for _ in range(2):
        outcome(cb, server)
    assert (cb.state is CircuitState.OPEN) is counts


@pytest.mark.parametrize(
    "kwargs",
    [{"failure_threshold": 0}, {"cooldown_s": -1.0}, {"window": -1}, {"failure_ratio": 0.0}],
)
def test_policy_rejects_nonsense(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        BreakerPolicy(**kwargs)
