"""How long to wait before retrying a call that failed: exponential backoff, full jitter.

Every client here retries something (LLM providers, SCM APIs, the publish
agent). Full jitter (a uniform draw between 0 and the exponential ceiling)
spreads the retries of many workers that failed together, instead of
sending them back at the same instant; see AWS's "Exponential Backoff And
Jitter". Pure: the random draw comes in.
"""

from __future__ import annotations

from collections.abc import Callable


def full_jitter(attempt: int, base_s: float, cap_s: float, draw: Callable[[], float]) -> float:
    """Seconds to wait after failed attempt ``attempt`` (1-based): ``draw()`` (in [0, 1)) of
    ``min(cap_s, base_s * 2**(attempt - 1))``."""
    return draw() * min(cap_s, base_s * 2 ** (attempt - 1))
