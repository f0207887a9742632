"""LLM providers behind one small Protocol, built by name from plain scalars.

Deep analysis needs one thing from a model: a system and a user message in,
text and token counts out. Each provider wraps its vendor's official SDK and
maps the SDK's errors onto one typed ``ProviderError`` whose ``retryable``
tells the agent whether to back off and retry or to give up on the call.
The SDKs already retry rate limits and 5xx answers ``max_retries`` times
(honouring Retry-After); a ``ProviderError(retryable=True)`` means those
retries were spent, so the agent decides what happens next (dead-letter,
skip deep analysis for this PR, try later).

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


class ProviderError(CodeReviewError):
    """A model call failed; ``retryable`` says whether trying again later may help.

    ``status`` is the HTTP status when the server answered, ``retry_after_s``
    the server's Retry-After hint when it sent one.
    """

    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        status: int | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.status = status
        self.retry_after_s = retry_after_s


class LlmProvider(Protocol):
    """One model behind one API. ``name`` labels usage rows (LlmUsage.provider)."""

    name: str
    model: str

    async def complete(self, system: str, user: str, *, max_tokens: int) -> Completion: ...


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
) -> LlmProvider | None:
    """The provider for ``kind``; "" means deep analysis is off and returns None.

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
    )
