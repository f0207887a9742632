"""Our retry policy, alone: waits, give-up rules and the deadline, on a fake clock."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import pytest

from providers import ProviderError
from providers.circuit import CircuitOpenError
from providers.retrying import Retried, RetryPolicy, call_with_retries

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


class FakeTime:
    """A clock that only moves when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class Script:
    """A call that raises the scripted errors in order, then returns "ok"."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


def flaky(status: int = 500, retry_after_s: float | None = None) -> ProviderError:
    return ProviderError(
        f"HTTP {status}", retryable=True, status=status, retry_after_s=retry_after_s
    )


def retry(
    policy: RetryPolicy, fn: Callable[[], Awaitable[T]], time: FakeTime, rng: float = 0.5
) -> Retried[T]:
    return run(call_with_retries(policy, fn, sleep=time.sleep, rng=lambda: rng, clock=time.clock))


POLICY = RetryPolicy(max_attempts=5, base_s=1.0, max_s=10.0, deadline_s=100.0)


@pytest.mark.parametrize(
    ("error", "attempt", "rng", "expected"),
    [
        (flaky(), 1, 0.5, 0.5),  # full jitter: uniform(0, base)
        (flaky(), 3, 0.5, 2.0),  # uniform(0, base * 4)
        (flaky(), 4, 1.0, 8.0),
        (flaky(), 5, 0.5, None),  # the last attempt failed: no wait, give up
        (flaky(), 2, 0.0, 0.0),  # full jitter may retry at once
        (RetryPolicy(max_attempts=20, base_s=1.0, max_s=10.0), 10, 0.5, 5.0),  # capped by max_s
        (flaky(429, 2.0), 1, 0.5, 2.5),  # Retry-After is a floor; jitter on top
        (flaky(503, 2.0), 1, 0.0, 2.0),
        (flaky(429, 9.8), 1, 0.9, 10.0),  # the jitter stays under max_s...
        (flaky(429, 10.0), 1, 0.9, 10.0),  # ...never taking the wait below the hint
        (flaky(429, 30.0), 1, 0.5, None),  # asks for more than max_s: give up now
        (ProviderError("bad request", retryable=False, status=400), 1, 0.5, None),
        (CircuitOpenError("openai:m", 3.0), 1, 0.5, None),
    ],
)
def test_wait_before_the_next_attempt(
    error: ProviderError | RetryPolicy, attempt: int, rng: float, expected: float | None
) -> None:
    policy = POLICY
    if isinstance(error, RetryPolicy):
        policy, error = error, flaky()
    assert policy.wait_s(error, attempt, lambda: rng) == (
        None if expected is None else pytest.approx(expected)
    )


def test_success_at_once_takes_one_attempt_and_no_wait() -> None:
    time, fn = FakeTime(), Script()
    done = retry(POLICY, fn, time)
    assert (done.value, done.attempts, done.waited_s, fn.calls) == ("ok", 1, 0.0, 1)
    assert time.sleeps == []


def test_retryable_failures_back_off_exponentially_then_succeed() -> None:
    time, fn = FakeTime(), Script(flaky(), flaky(), flaky(503, 4.0))
    done = retry(POLICY, fn, time, rng=0.5)
    assert (done.value, done.attempts, fn.calls) == ("ok", 4, 4)
    assert time.sleeps == [0.5, 1.0, 4.5]
    assert done.waited_s == pytest.approx(6.0)


def test_failing_forever_raises_the_last_error_after_max_attempts() -> None:
    time = FakeTime()
    fn = Script(*(flaky(500 + i) for i in range(10)))
    with pytest.raises(ProviderError) as caught:
        retry(POLICY, fn, time)
    assert (fn.calls, caught.value.attempts, caught.value.status) == (5, 5, 504)
    assert len(time.sleeps) == 4


@pytest.mark.parametrize(
    "error",
    [
        ProviderError("HTTP 400", retryable=False, status=400),
        CircuitOpenError("anthropic:claude", 10.0),
        flaky(429, 60.0),  # longer than max_s: the caller reschedules, we do not block
    ],
)
def test_errors_not_worth_waiting_for_end_after_one_call(error: ProviderError) -> None:
    time, fn = FakeTime(), Script(error)
    with pytest.raises(ProviderError) as caught:
        retry(POLICY, fn, time)
    assert caught.value is error
    assert (fn.calls, caught.value.attempts, time.sleeps) == (1, 1, [])


def test_a_bug_is_not_retried() -> None:
    time, fn = FakeTime(), Script(KeyError("choices"))
    with pytest.raises(KeyError):
        retry(POLICY, fn, time)
    assert fn.calls == 1


def test_no_wait_is_taken_that_would_end_past_the_deadline() -> None:
    policy = RetryPolicy(max_attempts=10, base_s=4.0, max_s=100.0, deadline_s=5.0)
    time, fn = FakeTime(), Script(*(flaky() for _ in range(10)))
    with pytest.raises(ProviderError) as caught:
        retry(policy, fn, time, rng=1.0)
    # waits 4 (ends at 4 <= 5), then 8 would end at 12 > 5: give up after 2 calls
    assert (fn.calls, caught.value.attempts, time.sleeps) == (2, 2, [4.0])


def test_a_call_running_past_the_deadline_is_cut_off() -> None:
    async def hangs() -> str:
        await asyncio.sleep(5)
        return "late"

    policy = RetryPolicy(max_attempts=3, base_s=0.01, max_s=0.01, deadline_s=0.1)
    with pytest.raises(ProviderError) as caught:
        run(call_with_retries(policy, hangs))
    assert caught.value.retryable and "deadline" in str(caught.value)
    assert caught.value.attempts == 1


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_attempts": 0},
        {"base_s": -1.0},
        {"base_s": 5.0, "max_s": 1.0},
        {"deadline_s": 0.0},
    ],
)
def test_policy_rejects_nonsense(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        RetryPolicy(**kwargs)
