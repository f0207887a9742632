"""Our retry policy for model calls: how often, how long to wait, when to give up.

The SDKs can retry by themselves, but then each SDK decides alone, the
caller cannot see how many calls a review took, and nothing bounds the total
time a PR waits for its model. So the tiers factory turns SDK retries off and
every call goes through ``call_with_retries``:

- only a ``ProviderError`` with ``retryable=True`` is retried (a 400 will
  fail the same way again; a ``CircuitOpenError`` is not retryable on
  purpose), up to ``max_attempts`` calls in all;
- a server's Retry-After (429, 503) is a floor: we never come back sooner,
  since coming back early only earns another 429. A little jitter goes on
  top, so workers throttled together do not return together. When the
  server asks for more than ``max_s`` we give up now with its error (still
  retryable: the caller may schedule the work later) rather than ignore it;
- otherwise the wait is exponential backoff with FULL jitter,
  ``uniform(0, min(max_s, base_s * 2**(attempt-1)))``, which spreads retries
  of many clients best (fewest total calls for a shared, overloaded server);
- ``deadline_s`` bounds the whole thing, calls and waits together: a wait
  that would end past it is not taken, and a call still running when it
  passes is cancelled.

``sleep``, ``rng`` and ``clock`` are parameters so that unit tests run
instantly and deterministically.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from processors.backoff import full_jitter
from providers import ProviderError

T = TypeVar("T")
log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Limits for one logical call; the defaults suit a review that may take a minute."""

    max_attempts: int = 3
    base_s: float = 0.5
    max_s: float = 30.0
    deadline_s: float = 120.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.base_s < 0 or self.max_s < 0 or self.base_s > self.max_s:
            raise ValueError("need 0 <= base_s <= max_s")
        if self.deadline_s <= 0:
            raise ValueError("deadline_s must be positive")

    def backoff_s(self, attempt: int, rng: Callable[[], float]) -> float:
        """Full-jitter wait after failed call number ``attempt`` (1-based)."""
        return full_jitter(attempt, self.base_s, self.max_s, rng)

    def wait_s(self, error: ProviderError, attempt: int, rng: Callable[[], float]) -> float | None:
        """Seconds to wait before the next call, or None when waiting is pointless."""
        if not error.retryable or attempt >= self.max_attempts:
            return None
        hint = error.retry_after_s
        if hint is None:
            return self.backoff_s(attempt, rng)
        if hint > self.max_s:
            return None
        # Never sooner than asked; the jitter on top stays within max_s when it can.
        return max(hint, min(self.max_s, hint + rng() * self.base_s))


@dataclass(frozen=True, slots=True)
class Retried(Generic[T]):
    """A successful result and what it took: calls made and seconds spent waiting."""

    value: T
    attempts: int
    waited_s: float


async def call_with_retries(
    policy: RetryPolicy,
    fn: Callable[[], Awaitable[T]],
    *,
    sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    rng: Callable[[], float] = random.random,
    clock: Callable[[], float] = time.monotonic,
) -> Retried[T]:
    """Call ``fn`` until it succeeds or the policy says stop.

    On giving up, the last ``ProviderError`` is raised with ``attempts`` set
    to the number of calls made. Anything that is not a ``ProviderError`` is
    a bug, not a flaky model, and propagates at once.
    """
    started = clock()
    waited = 0.0
    attempt = 0
    while True:
        attempt += 1
        remaining = policy.deadline_s - (clock() - started)
        try:
            value = await _within(fn, remaining, policy.deadline_s)
        except ProviderError as exc:
            exc.attempts = attempt
            wait = policy.wait_s(exc, attempt, rng)
            if wait is None or (clock() - started) + wait > policy.deadline_s:
                raise
            log.info(
                "model call failed (attempt %d/%d), retrying in %.2fs: %s",
                attempt,
                policy.max_attempts,
                wait,
                exc,
            )
            await sleep(wait)
            waited += wait
            continue
        return Retried(value=value, attempts=attempt, waited_s=waited)


async def _within(fn: Callable[[], Awaitable[T]], remaining_s: float, deadline_s: float) -> T:
    """``fn()`` cut off at the overall deadline, as a retryable error (later may work)."""
    if remaining_s <= 0:
        raise ProviderError(f"deadline of {deadline_s:g}s passed", retryable=True)
    scope = asyncio.timeout(remaining_s)
    try:
        async with scope:
            return await fn()
    except TimeoutError as exc:
        if not scope.expired():
            raise
        raise ProviderError(
            f"deadline of {deadline_s:g}s passed during the call", retryable=True
        ) from exc
