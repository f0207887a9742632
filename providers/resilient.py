"""Any provider, made resilient: our retry policy around a circuit breaker around the call.

The order matters. The breaker sits INSIDE the retry loop, so every attempt
is an outcome the breaker sees, and once it opens the remaining attempts
fail fast (``CircuitOpenError`` is not retryable) instead of waiting out
backoffs against a dead server. The wrapper is itself an ``LlmProvider``:
callers do not know whether they hold a bare or a resilient provider, and
the ``Completion`` (or the final ``ProviderError``) says how many attempts
the call took. Totals per wrapper are kept for metrics.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace

from providers import Completion, LlmProvider, ProviderError
from providers.circuit import BreakerPolicy, CircuitBreaker, CircuitOpenError
from providers.retrying import RetryPolicy, call_with_retries


class ResilientProvider:
    """``inner`` behind ``retry`` and a breaker keyed by the inner provider and model."""

    def __init__(
        self,
        inner: LlmProvider,
        *,
        retry: RetryPolicy,
        breaker: CircuitBreaker | BreakerPolicy,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        rng: Callable[[], float] = random.random,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.inner = inner
        self.name = inner.name
        self.model = inner.model
        self.retry = retry
        if isinstance(breaker, BreakerPolicy):
            breaker = CircuitBreaker(f"{inner.name}:{inner.model}", breaker, clock=clock)
        self.breaker = breaker
        self._sleep = sleep
        self._rng = rng
        self._clock = clock
        self.calls = 0
        self.attempts = 0
        self.failures = 0
        self.fast_failures = 0  # calls that ended on an open breaker

    async def complete(
        self, system: str, user: str, *, max_tokens: int, stream: bool = False
    ) -> Completion:
        self.calls += 1

        async def attempt() -> Completion:
            return await self.breaker.call(
                lambda: self.inner.complete(system, user, max_tokens=max_tokens, stream=stream)
            )

        try:
            done = await call_with_retries(
                self.retry, attempt, sleep=self._sleep, rng=self._rng, clock=self._clock
            )
        except ProviderError as exc:
            self.attempts += exc.attempts
            self.failures += 1
            if isinstance(exc, CircuitOpenError):
                self.fast_failures += 1
            raise
        self.attempts += done.attempts
        return replace(done.value, attempts=done.attempts)

    async def aclose(self) -> None:
        """Close the inner provider's connections, if it holds any."""
        close = getattr(self.inner, "aclose", None)
        if close is not None:
            await close()
