"""Two model tiers: a cheap model for the many calls, a strong one for the few that matter.

Most escalated chunks need a quick second opinion a small model gives for a
fraction of the price; a few (high risk, security) deserve the strong model.
``ModelTiers`` holds both; either may be unset. Asking for ``cheap`` when
only a strong model is configured gets the strong one (the work still gets
done, at a higher price); asking for ``strong`` never silently downgrades.

``build_tiers`` takes scalars and two small policies, like
``build_provider``, and is THE place SDK retries are turned off
(``max_retries=0``): each provider is wrapped in a ``ResilientProvider``
with our retry policy and its own breaker, so an outage of one model opens
only that model's breaker. The cheap tier inherits kind, base URL and key
from the strong one unless given its own; a cheap tier naming the same
kind, endpoint and model as the strong one IS the strong one (one breaker).
"""

from __future__ import annotations

import asyncio
from typing import Literal

from providers import LlmProvider, build_provider
from providers.circuit import BreakerPolicy
from providers.resilient import ResilientProvider
from providers.retrying import RetryPolicy

Tier = Literal["cheap", "strong"]


class ModelTiers:
    """The configured models by tier; ``cheap`` falls back to ``strong``."""

    def __init__(self, *, cheap: LlmProvider | None, strong: LlmProvider | None) -> None:
        self._cheap = cheap
        self._strong = strong

    @property
    def cheap(self) -> LlmProvider | None:
        return self._cheap or self._strong

    @property
    def strong(self) -> LlmProvider | None:
        return self._strong

    @property
    def enabled(self) -> bool:
        """Whether any model is configured: False means deep analysis is off."""
        return self._cheap is not None or self._strong is not None

    def pick(self, tier: Tier) -> LlmProvider | None:
        """The provider for ``tier`` (with the cheap-to-strong fallback)."""
        return self.cheap if tier == "cheap" else self.strong

    async def aclose(self) -> None:
        """Close every distinct provider once; the owner calls it at shutdown."""
        seen: list[LlmProvider] = []
        for provider in (self._cheap, self._strong):
            if provider is not None and all(provider is not s for s in seen):
                seen.append(provider)
        await asyncio.gather(*(_close(p) for p in seen))


def build_tiers(
    kind: str,
    *,
    base_url: str,
    api_key: str,
    model: str,
    timeout_s: float,
    cheap_kind: str = "",
    cheap_base_url: str = "",
    cheap_api_key: str = "",
    cheap_model: str = "",
    retry: RetryPolicy | None = None,
    breaker: BreakerPolicy | None = None,
    json_mode: bool = False,
) -> ModelTiers:
    """Resilient providers for both tiers; ``kind=""`` leaves the strong tier off.

    ``cheap_model=""`` leaves the cheap tier off (it then falls back to the
    strong one). ``cheap_kind`` defaults to ``kind``; the cheap base URL and
    key default to the strong tier's when both tiers are of the same kind.
    """
    retry = retry or RetryPolicy()
    breaker = breaker or BreakerPolicy()
    strong = _resilient(kind, base_url, api_key, model, timeout_s, retry, breaker, json_mode)
    cheap: LlmProvider | None = None
    if cheap_model:
        cheap_kind = cheap_kind or kind
        same_kind = cheap_kind == kind
        cheap_base_url = cheap_base_url or (base_url if same_kind else "")
        cheap_api_key = cheap_api_key or (api_key if same_kind else "")
        if (cheap_kind, cheap_base_url, cheap_model) == (kind, base_url, model):
            cheap = strong
        else:
            cheap = _resilient(
                cheap_kind,
                cheap_base_url,
                cheap_api_key,
                cheap_model,
                timeout_s,
                retry,
                breaker,
                json_mode,
            )
    return ModelTiers(cheap=cheap, strong=strong)


def _resilient(
    kind: str,
    base_url: str,
    api_key: str,
    model: str,
    timeout_s: float,
    retry: RetryPolicy,
    breaker: BreakerPolicy,
    json_mode: bool = False,
) -> ResilientProvider | None:
    bare = build_provider(
        kind,
        base_url=base_url,
        api_key=api_key,
        model=model,
        timeout_s=timeout_s,
        max_retries=0,
        json_mode=json_mode,
    )
    if bare is None:
        return None
    return ResilientProvider(bare, retry=retry, breaker=breaker)


async def _close(provider: LlmProvider) -> None:
    close = getattr(provider, "aclose", None)
    if close is not None:
        await close()
