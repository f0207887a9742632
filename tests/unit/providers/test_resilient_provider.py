"""Our retry policy and circuit breaker around both official SDKs, over real local HTTP.

The SDKs' own retries are off (``max_retries=0``), so every request the
fake server logs is an attempt OUR policy made: the request count is the
attempt count, and the measured time shows Retry-After was honoured.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine
from typing import Any, TypeVar

import pytest

from processors.analysis import parse_answer
from providers import Completion, LlmProvider, ProviderError, build_provider
from providers.circuit import BreakerPolicy, CircuitBreaker, CircuitOpenError, CircuitState
from providers.resilient import ResilientProvider
from providers.retrying import RetryPolicy
from schemas.errors import ProcessorError
from tests.fakes.llm_server import FakeLlmServer, Reply

T = TypeVar("T")
KINDS = ("openai", "anthropic")
ANSWER = '{"findings": []}'
FAST = RetryPolicy(max_attempts=3, base_s=0.01, max_s=1.0, deadline_s=10.0)


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


class Sleeps:
    """Real sleeps, recorded: the policy's waits as asked and as measured."""

    def __init__(self) -> None:
        self.asked: list[float] = []
        self.measured: list[float] = []

    async def __call__(self, seconds: float) -> None:
        started = time.monotonic()
        self.asked.append(seconds)
        await asyncio.sleep(seconds)
        self.measured.append(time.monotonic() - started)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def resilient(
    server: FakeLlmServer,
    kind: str,
    *,
    retry: RetryPolicy = FAST,
    breaker: CircuitBreaker | None = None,
    timeout_s: float = 5.0,
    sleep: Sleeps | None = None,
) -> ResilientProvider:
    bare = build_provider(
        kind,
        base_url=server.anthropic_base_url if kind == "anthropic" else server.openai_base_url,
        api_key="test-key",
        model="review-model",
        timeout_s=timeout_s,
        max_retries=0,
    )
    assert bare is not None
    return ResilientProvider(
        bare,
        retry=retry,
        breaker=breaker or BreakerPolicy(failure_threshold=100),
        sleep=sleep or Sleeps(),
    )


async def complete(llm: LlmProvider, *, stream: bool = False) -> Completion:
    return await llm.complete("you review code", "review this", max_tokens=128, stream=stream)


async def complete_and_close(llm: ResilientProvider, *, stream: bool = False) -> Completion:
    try:
        return await complete(llm, stream=stream)
    finally:
        await llm.aclose()


async def outcome(llm: ResilientProvider) -> str:
    """The text, or the class name of the error, of one call.

    Calls of one scenario share an event loop: the SDK's connection pool
    belongs to the loop it was opened on.
    """
    try:
        return (await complete(llm)).text
    except ProviderError as exc:
        return type(exc).__name__


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("kind", KINDS)
def test_normal_answer_takes_one_attempt(kind: str, stream: bool) -> None:
    with FakeLlmServer([Reply.answer(ANSWER, input_tokens=50, output_tokens=7)]) as server:
        llm = resilient(server, kind)
        done = run(complete_and_close(llm, stream=stream))
    assert (done.text, done.attempts, done.input_tokens, done.output_tokens) == (ANSWER, 1, 50, 7)
    assert (llm.name, llm.model) == (kind, "review-model")
    assert (llm.calls, llm.attempts, llm.failures, len(server.requests)) == (1, 1, 0, 1)


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("busy", [Reply.rate_limited(0.2), Reply.unavailable(0.2)])
def test_retry_after_is_honoured_by_our_policy(kind: str, stream: bool, busy: Reply) -> None:
    sleeps = Sleeps()
    with FakeLlmServer([busy, Reply.answer(ANSWER)]) as server:
        llm = resilient(server, kind, sleep=sleeps)
        started = time.monotonic()
        done = run(complete_and_close(llm, stream=stream))
        elapsed = time.monotonic() - started
    assert (done.text, done.attempts, len(server.requests)) == (ANSWER, 2, 2)
    [asked] = sleeps.asked
    assert 0.2 <= asked <= 0.2 + FAST.base_s  # the hint, plus jitter of at most base_s
    assert sleeps.measured[0] >= 0.2 and elapsed >= 0.2


@pytest.mark.parametrize("kind", KINDS)
def test_server_error_then_success(kind: str) -> None:
    with FakeLlmServer([Reply.error(500), Reply.answer(ANSWER)]) as server:
        llm = resilient(server, kind)
        done = run(complete_and_close(llm))
    assert (done.text, done.attempts, len(server.requests)) == (ANSWER, 2, 2)


@pytest.mark.parametrize("kind", KINDS)
def test_server_error_forever_gives_up_after_max_attempts(kind: str) -> None:
    sleeps = Sleeps()
    with FakeLlmServer([Reply.error(500)]) as server:
        llm = resilient(server, kind, sleep=sleeps)
        with pytest.raises(ProviderError) as caught:
            run(complete_and_close(llm))
    assert (caught.value.status, caught.value.retryable, caught.value.attempts) == (500, True, 3)
    assert len(server.requests) == FAST.max_attempts == 3
    assert len(sleeps.asked) == 2
    assert (llm.calls, llm.attempts, llm.failures) == (1, 3, 1)


@pytest.mark.parametrize("kind", KINDS)
def test_a_client_error_is_not_retried(kind: str) -> None:
    with FakeLlmServer([Reply.error(400)]) as server:
        llm = resilient(server, kind)
        with pytest.raises(ProviderError) as caught:
            run(complete_and_close(llm))
    assert (caught.value.status, caught.value.retryable, caught.value.attempts) == (400, False, 1)
    assert len(server.requests) == 1
    assert llm.breaker.state is CircuitState.CLOSED


@pytest.mark.parametrize("kind", KINDS)
def test_timeouts_are_retried_then_reported(kind: str) -> None:
    with FakeLlmServer([Reply.slow(3.0)]) as server:
        llm = resilient(server, kind, timeout_s=0.25, retry=RetryPolicy(2, 0.01, 0.1, 10.0))
        started = time.monotonic()
        with pytest.raises(ProviderError) as caught:
            run(complete_and_close(llm))
        elapsed = time.monotonic() - started
    assert caught.value.retryable and caught.value.status is None
    assert caught.value.attempts == 2 and len(server.requests) == 2
    assert 0.5 <= elapsed < 2.0


@pytest.mark.parametrize("kind", KINDS)
def test_the_overall_deadline_cuts_a_slow_call(kind: str) -> None:
    with FakeLlmServer([Reply.slow(3.0)]) as server:
        llm = resilient(server, kind, timeout_s=5.0, retry=RetryPolicy(3, 0.01, 0.1, 0.4))
        started = time.monotonic()
        with pytest.raises(ProviderError) as caught:
            run(complete_and_close(llm))
        elapsed = time.monotonic() - started
    assert "deadline" in str(caught.value) and caught.value.attempts == 1
    assert 0.4 <= elapsed < 1.5


@pytest.mark.parametrize("kind", KINDS)
def test_a_cut_stream_is_retried_and_the_answer_arrives_whole(kind: str) -> None:
    text = '{"findings": [' + ", ".join(f'{{"n": {n}}}' for n in range(30)) + "]}"
    with FakeLlmServer([Reply.cut_stream(text, after_pieces=2), Reply.answer(text)]) as server:
        done = run(complete_and_close(resilient(server, kind), stream=True))
    assert (done.text, done.attempts, len(server.requests)) == (text, 2, 2)


@pytest.mark.parametrize("kind", KINDS)
def test_malformed_model_output_arrives_intact(kind: str) -> None:
    malformed = 'Sure! Here are the findings: {"findings": [{"path": "a.py"'
    with FakeLlmServer([Reply.answer(malformed)]) as server:
        done = run(complete_and_close(resilient(server, kind)))
    assert (done.text, done.attempts, len(server.requests)) == (malformed, 1, 1)
    with pytest.raises(ProcessorError):
        parse_answer(done.text)


@pytest.mark.parametrize("kind", KINDS)
def test_breaker_opens_fails_fast_then_a_half_open_probe_closes_it(kind: str) -> None:
    clock = Clock()
    breaker = CircuitBreaker(
        f"{kind}:review-model", BreakerPolicy(failure_threshold=3, cooldown_s=30.0), clock=clock
    )
    retry = RetryPolicy(max_attempts=2, base_s=0.01, max_s=0.1, deadline_s=10.0)

    async def scenario(server: FakeLlmServer, llm: ResilientProvider) -> None:
        # Call 1: two failed attempts. Call 2: the third failure opens the breaker,
        # and its second attempt is refused without a request.
        assert [await outcome(llm) for _ in range(2)] == ["ProviderError", "CircuitOpenError"]
        assert breaker.state is CircuitState.OPEN and len(server.requests) == 3
        # While open: fail fast, no request reaches the server.
        started = time.monotonic()
        with pytest.raises(CircuitOpenError) as caught:
            await complete(llm)
        assert time.monotonic() - started < 0.1
        assert (caught.value.retryable, caught.value.attempts) == (False, 1)
        assert len(server.requests) == 3
        assert llm.fast_failures == 2
        # After the cool-down one probe goes through; the server is back: closed again.
        clock.now += 30.0
        assert breaker.state is CircuitState.HALF_OPEN
        server.enqueue(Reply.answer(ANSWER))
        assert await outcome(llm) == ANSWER
        assert breaker.state is CircuitState.CLOSED and len(server.requests) == 4
        assert await outcome(llm) == ANSWER and len(server.requests) == 5

    with FakeLlmServer([Reply.error(503)]) as server:
        llm = resilient(server, kind, retry=retry, breaker=breaker)
        run(closing(llm, scenario(server, llm)))


@pytest.mark.parametrize("kind", KINDS)
def test_a_failed_probe_keeps_it_open(kind: str) -> None:
    clock = Clock()
    breaker = CircuitBreaker("k", BreakerPolicy(failure_threshold=1, cooldown_s=5.0), clock=clock)

    async def scenario(llm: ResilientProvider) -> list[str]:
        seen = [await outcome(llm)]
        clock.now += 5.0
        seen.append(await outcome(llm))  # the probe: one request, failed
        seen.append(await outcome(llm))
        return seen

    with FakeLlmServer([Reply.error(500)]) as server:
        llm = resilient(server, kind, retry=RetryPolicy(max_attempts=1), breaker=breaker)
        seen = run(closing(llm, scenario(llm)))
    assert seen == ["ProviderError", "ProviderError", "CircuitOpenError"]
    assert breaker.state is CircuitState.OPEN and len(server.requests) == 2


async def closing(llm: ResilientProvider, scenario: Coroutine[Any, Any, T]) -> T:
    try:
        return await scenario
    finally:
        await llm.aclose()
