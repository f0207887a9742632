"""A circuit breaker per provider and model: stop calling a model that keeps failing.

Retries help with a hiccup; they make an outage worse. When a model's API is
down, every PR would spend its whole retry budget and deadline on it while
the backlog grows. The breaker watches call outcomes and, after
``failure_threshold`` failures in a row (or, when ``window`` is set, a
``failure_ratio`` of the last ``window`` calls), opens: calls then fail at
once with ``CircuitOpenError`` without touching the network, and the
pipeline falls back to triage findings. After ``cooldown_s`` the breaker is
half-open and lets exactly ONE probe through; its success closes the
breaker, its failure opens it for another cool-down. Other calls during the
probe fail fast, so a recovering server is not hit by the whole backlog.

A failure here means the model's health is in doubt: a retryable error
(timeout, lost connection, 429, 5xx) or a rejected key (401, 403: every
call will fail the same way). A 400 or 404 says our request was wrong, not
that the server is down, so it counts as an answer. Outcomes of calls that
started before the breaker opened are ignored: they say nothing about the
server now. The clock is a parameter so tests need not wait out cool-downs.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import TypeVar

from providers import ProviderError

T = TypeVar("T")
_AUTH_STATUSES = (401, 403)


class CircuitOpenError(ProviderError):
    """The breaker for ``key`` is open: not retryable now, try again in ``retry_in_s``."""

    def __init__(self, key: str, retry_in_s: float) -> None:
        super().__init__(f"circuit {key} is open; next probe in {retry_in_s:.1f}s", retryable=False)
        self.key = key
        self.retry_in_s = retry_in_s


class CircuitState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True, slots=True)
class BreakerPolicy:
    """When to open and for how long; ``window=0`` turns the ratio rule off."""

    failure_threshold: int = 5
    cooldown_s: float = 30.0
    window: int = 0
    failure_ratio: float = 0.5

    def __post_init__(self) -> None:
        if self.failure_threshold < 1:
            raise ValueError("failure_threshold must be at least 1")
        if self.cooldown_s < 0:
            raise ValueError("cooldown_s cannot be negative")
        if self.window < 0 or not 0 < self.failure_ratio <= 1:
            raise ValueError("need window >= 0 and 0 < failure_ratio <= 1")


def is_health_failure(error: ProviderError) -> bool:
    """Whether ``error`` says the model is unreachable or unusable, not that we asked badly."""
    return error.retryable or error.status in _AUTH_STATUSES


class CircuitBreaker:
    """The breaker of one provider and model, named by ``key`` ("openai:gpt-4o")."""

    def __init__(
        self, key: str, policy: BreakerPolicy, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.key = key
        self.policy = policy
        self._clock = clock
        self._state = CircuitState.CLOSED
        self._opened_at = 0.0
        self._consecutive = 0
        self._recent: deque[bool] = deque(maxlen=policy.window or None)
        self._probing = False
        self._generation = 0  # bumped on every opening: older calls' outcomes are stale
        self.opened_count = 0

    @property
    def state(self) -> CircuitState:
        """The state as of now: an open breaker whose cool-down is over is half-open."""
        if self._state is CircuitState.OPEN and self._cooled_down():
            return CircuitState.HALF_OPEN
        return self._state

    async def call(self, fn: Callable[[], Awaitable[T]]) -> T:
        """``fn()`` if the breaker lets it through; its outcome updates the breaker."""
        generation, probe = self._admit()
        try:
            value = await fn()
        except ProviderError as exc:
            self._record(generation, probe, ok=not is_health_failure(exc))
            raise
        except BaseException:
            # Cancelled or a bug: no verdict on the server, but free the probe slot.
            if probe:
                self._probing = False
            raise
        self._record(generation, probe, ok=True)
        return value

    def _admit(self) -> tuple[int, bool]:
        """(generation, is_probe) for a call allowed through; CircuitOpenError otherwise."""
        if self._state is CircuitState.CLOSED:
            return self._generation, False
        if self._state is CircuitState.OPEN and self._cooled_down():
            self._state = CircuitState.HALF_OPEN
        if self._state is CircuitState.HALF_OPEN and not self._probing:
            self._probing = True
            return self._generation, True
        raise CircuitOpenError(self.key, self._retry_in_s())

    def _record(self, generation: int, probe: bool, *, ok: bool) -> None:
        if probe:
            self._probing = False
            if ok:
                self._close()
            else:
                self._open()
            return
        if generation != self._generation or self._state is not CircuitState.CLOSED:
            return
        self._consecutive = 0 if ok else self._consecutive + 1
        self._recent.append(ok)
        if self._consecutive >= self.policy.failure_threshold or self._ratio_exceeded():
            self._open()

    def _ratio_exceeded(self) -> bool:
        window = self.policy.window
        if not window or len(self._recent) < window:
            return False
        failures = sum(1 for ok in self._recent if not ok)
        return failures / window >= self.policy.failure_ratio

    def _open(self) -> None:
        self._state = CircuitState.OPEN
        self._opened_at = self._clock()
        self._generation += 1
        self._consecutive = 0
        self._recent.clear()
        self.opened_count += 1

    def _close(self) -> None:
        self._state = CircuitState.CLOSED
        self._consecutive = 0
        self._recent.clear()

    def _cooled_down(self) -> bool:
        return self._clock() - self._opened_at >= self.policy.cooldown_s

    def _retry_in_s(self) -> float:
        if self._state is CircuitState.HALF_OPEN:
            return 0.0  # a probe is in flight; its outcome decides
        return max(0.0, self.policy.cooldown_s - (self._clock() - self._opened_at))
