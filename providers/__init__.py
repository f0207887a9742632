"""LLM providers behind one small Protocol, built by name from plain scalars.

Deep analysis needs one thing from a model: a system and a user message in,
text and token counts out. Each provider wraps its vendor's official SDK and
maps the SDK's errors onto one typed ``ProviderError`` whose ``retryable``
tells the caller whether to back off and retry or to give up on the call.

Resilience is ours, not the SDKs': ``providers.tiers.build_tiers`` builds
providers with the SDK retries off and wraps them in
``providers.resilient.ResilientProvider`` (our retry policy from
``providers.retrying`` plus a circuit breaker from ``providers.circuit``), so
one place decides how long to wait, when to give up and when to stop calling
a failing model at all. ``build_provider`` alone still passes ``max_retries``
to the SDK, for callers that want a bare provider.

``build_provider`` takes scalars, not the Settings object, so that the
factory is testable alone and providers never see unrelated configuration.
Constructors do no network I/O: the first request opens the connection.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from schemas.errors import CodeReviewError

PROVIDER_KINDS = ("openai", "openai-compatible", "anthropic")


@dataclass(frozen=True, slots=True)
class Completion:
    """A model's answer and what it cost: tokens as the server counted them."""

    text: str
    input_tokens: int
    output_tokens: int
    latency_ms: float
    model: str
    # Calls it took, retries included; the resilient wrapper fills it in.
    attempts: int = 1
    # Why generation ended ("stop", "end_turn", "length", "max_tokens"...); "" if not told.
    stop_reason: str = ""


class ProviderError(CodeReviewError):
    """A model call failed; ``retryable`` says whether trying again later may help.

    ``status`` is the HTTP status when the server answered, ``retry_after_s``
    the server's Retry-After hint when it sent one, ``attempts`` how many calls
    were made before giving up (the retry policy sets it).
    """

    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        status: int | None = None,
        retry_after_s: float | None = None,
        attempts: int = 1,
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.status = status
        self.retry_after_s = retry_after_s
        self.attempts = attempts


class LlmProvider(Protocol):
    """One model behind one API. ``name`` labels usage rows (LlmUsage.provider).

    ``stream=True`` reads the answer as server-sent events and returns the same
    ``Completion`` once it is whole: a long answer then never sits idle past a
    read timeout, and a stream cut short is a retryable error, not half a JSON.
    """

    name: str
    model: str

    async def complete(
        self, system: str, user: str, *, max_tokens: int, stream: bool = False
    ) -> Completion: ...


def is_retryable_status(status: int) -> bool:
    """Statuses worth retrying later: timeouts, conflicts, rate limits, server errors."""
    return status in (408, 409, 429) or status >= 500


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header in its delta-seconds form; None otherwise."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


def build_provider(
    kind: str,
    *,
    base_url: str,
    api_key: str,
    model: str,
    timeout_s: float,
    max_retries: int,
    json_mode: bool = False,
) -> LlmProvider | None:
    """The provider for ``kind``; "" means deep analysis is off and returns None.

    ``json_mode`` asks OpenAI-API servers for JSON-constrained output
    (``response_format``); Anthropic has no such switch and ignores it.

    "openai-compatible" (llama.cpp, vLLM, Ollama...) uses the OpenAI SDK with
    the classic ``max_tokens`` and no key requirement; "openai" proper uses
    ``max_completion_tokens``, which newer OpenAI models require.
    """
    if kind == "":
        return None
    if kind not in PROVIDER_KINDS:
        raise ValueError(f"unknown LLM provider {kind!r}; known: {list(PROVIDER_KINDS)}")
    if not model:
        raise ValueError(f"LLM provider {kind!r} needs a model name")
    if kind == "anthropic":
        from providers.anthropic_messages import AnthropicProvider

        if not api_key:
            raise ValueError("the anthropic provider needs an API key")
        return AnthropicProvider(
            base_url=base_url,
            api_key=api_key,
            model=model,
            timeout_s=timeout_s,
            max_retries=max_retries,
        )
    from providers.openai_chat import OpenAIProvider

    if kind == "openai" and not api_key:
        raise ValueError("the openai provider needs an API key")
    return OpenAIProvider(
        name=kind,
        base_url=base_url,
        # Self-hosted servers usually ignore the key, but the SDK insists on one.
        api_key=api_key or "unused",
        model=model,
        timeout_s=timeout_s,
        max_retries=max_retries,
        legacy_max_tokens=kind == "openai-compatible",
        json_mode=json_mode,
    )
