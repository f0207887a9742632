"""Anthropic Messages through the official SDK.

Same shape as the OpenAI provider: the SDK times out, this class shapes the
request, reads the answer whole or streamed, and maps errors to
``ProviderError``; retries are the caller's (``providers.retrying``). A
streamed answer's tokens come from ``message_start`` (input) and
``message_delta`` (output), which the SDK folds into its final message; a
stream without a stop reason was cut short and is a retryable error. The key
is always passed explicitly, which also stops the SDK from looking for
credentials in the environment or in profile files on disk.
"""

from __future__ import annotations

import time

import anthropic
from anthropic.types import Message

from providers import Completion, ProviderError, is_retryable_status, parse_retry_after


class AnthropicProvider:
    """Messages API on ``base_url`` ("" means the SDK's default endpoint)."""

    name = "anthropic"

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str,
        model: str,
        timeout_s: float,
        max_retries: int,
    ) -> None:
        self.model = model
        self._client = anthropic.AsyncAnthropic(
            base_url=base_url or None,
            api_key=api_key,
            timeout=timeout_s,
            max_retries=max_retries,
        )

    async def complete(
        self, system: str, user: str, *, max_tokens: int, stream: bool = False
    ) -> Completion:
        started = time.perf_counter()
        try:
            if stream:
                async with self._client.messages.stream(
                    model=self.model,
                    max_tokens=max_tokens,
                    system=system,
                    messages=[{"role": "user", "content": user}],
                ) as events:
                    message: Message = await events.get_final_message()
            else:
                message = await self._client.messages.create(
                    model=self.model,
                    max_tokens=max_tokens,
                    system=system,
                    messages=[{"role": "user", "content": user}],
                )
        except anthropic.APIError as exc:
            raise to_provider_error(exc) from exc
        latency_ms = (time.perf_counter() - started) * 1000.0
        if stream and message.stop_reason is None:
            raise ProviderError("anthropic: stream ended before a stop reason", retryable=True)
        text = "".join(block.text for block in message.content if block.type == "text")
        return Completion(
            text=text,
            input_tokens=message.usage.input_tokens,
            output_tokens=message.usage.output_tokens,
            latency_ms=latency_ms,
            model=message.model or self.model,
            stop_reason=message.stop_reason or "",
        )

    async def aclose(self) -> None:
        """Close the SDK's connection pool; the owner of the provider calls it at shutdown."""
        await self._client.close()


def to_provider_error(exc: anthropic.APIError) -> ProviderError:
    """Timeouts, lost connections, 408/409/429, 5xx and 529 (overloaded) are retryable."""
    if isinstance(exc, anthropic.APITimeoutError):
        return ProviderError(f"anthropic: request timed out: {exc}", retryable=True)
    if isinstance(exc, anthropic.APIConnectionError):
        return ProviderError(f"anthropic: connection failed: {exc}", retryable=True)
    if isinstance(exc, anthropic.APIStatusError):
        return ProviderError(
            f"anthropic: HTTP {exc.status_code}: {exc.message}",
            retryable=is_retryable_status(exc.status_code),
            status=exc.status_code,
            retry_after_s=parse_retry_after(exc.response.headers.get("retry-after")),
        )
    if type(exc) is anthropic.APIError:
        # An error event in the middle of a stream: the server failed mid-answer.
        return ProviderError(f"anthropic: error during the stream: {exc}", retryable=True)
    return ProviderError(f"anthropic: {type(exc).__name__}: {exc}", retryable=False)
