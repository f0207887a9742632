"""OpenAI Chat Completions (and every OpenAI-compatible server) through the official SDK.

The SDK owns connection pooling, timeouts and retries with backoff that
honours Retry-After; this class only shapes the request and maps the SDK's
exceptions to ``ProviderError``. It asks for the whole answer at once (no
streaming): deep analysis needs the complete JSON before it can parse it.
"""

from __future__ import annotations

import time

import openai
from openai.types.chat import ChatCompletionMessageParam

from providers import Completion, ProviderError, is_retryable_status, parse_retry_after


class OpenAIProvider:
    """Chat Completions on ``base_url`` ("" means the SDK's default endpoint)."""

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str,
        model: str,
        timeout_s: float,
        max_retries: int,
        name: str = "openai",
        legacy_max_tokens: bool = False,
    ) -> None:
        self.name = name
        self.model = model
        self._legacy_max_tokens = legacy_max_tokens
        self._client = openai.AsyncOpenAI(
            base_url=base_url or None,
            api_key=api_key,
            timeout=timeout_s,
            max_retries=max_retries,
        )

    async def complete(self, system: str, user: str, *, max_tokens: int) -> Completion:
        messages: list[ChatCompletionMessageParam] = [
            {"role": "system", "content": system},
            {"role": "user", "content": user},
        ]
        started = time.perf_counter()
        try:
            if self._legacy_max_tokens:
                # Self-hosted servers know max_tokens; temperature 0 keeps reviews repeatable.
                response = await self._client.chat.completions.create(
                    model=self.model, messages=messages, max_tokens=max_tokens, temperature=0
                )
            else:
                # Newer OpenAI models reject max_tokens and any temperature but the default.
                response = await self._client.chat.completions.create(
                    model=self.model, messages=messages, max_completion_tokens=max_tokens
                )
        except openai.APIError as exc:
            raise to_provider_error(exc) from exc
        latency_ms = (time.perf_counter() - started) * 1000.0
        text = ""
        if response.choices:
            text = response.choices[0].message.content or ""
        usage = response.usage
        return Completion(
            text=text,
            input_tokens=usage.prompt_tokens if usage else 0,
            output_tokens=usage.completion_tokens if usage else 0,
            latency_ms=latency_ms,
            model=response.model or self.model,
        )

    async def aclose(self) -> None:
        """Close the SDK's connection pool; the owner of the provider calls it at shutdown."""
        await self._client.close()


def to_provider_error(exc: openai.APIError) -> ProviderError:
    """Timeouts, lost connections, 408/409/429 and 5xx are retryable; other 4xx are not."""
    if isinstance(exc, openai.APITimeoutError):
        return ProviderError(f"openai: request timed out: {exc}", retryable=True)
    if isinstance(exc, openai.APIConnectionError):
        return ProviderError(f"openai: connection failed: {exc}", retryable=True)
    if isinstance(exc, openai.APIStatusError):
        return ProviderError(
            f"openai: HTTP {exc.status_code}: {exc.message}",
            retryable=is_retryable_status(exc.status_code),
            status=exc.status_code,
            retry_after_s=parse_retry_after(exc.response.headers.get("retry-after")),
        )
    # APIResponseValidationError and the like: the server answered nonsense.
    return ProviderError(f"openai: {type(exc).__name__}: {exc}", retryable=False)
