"""OpenAI Chat Completions (and every OpenAI-compatible server) through the official SDK.

The SDK owns connection pooling and timeouts; this class shapes the request,
reads the answer whole or as a stream, and maps the SDK's exceptions to
``ProviderError``. Retries are the caller's (``providers.retrying``): the
tiers factory builds this with ``max_retries=0``. A stream asks for usage in
its last chunk (``stream_options.include_usage``) so streamed calls are
billed like whole ones, and a stream that ends without a finish reason was
cut short: that is a retryable error, never a truncated answer.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import openai
from openai.types.chat import ChatCompletion, ChatCompletionMessageParam

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
        json_mode: bool = False,
    ) -> None:
        self.name = name
        self.model = model
        self._legacy_max_tokens = legacy_max_tokens
        # JSON mode makes servers that support it (OpenAI, llama.cpp, vLLM, Ollama)
        # constrain decoding to JSON: small self-hosted models then answer parseably.
        self._response_format: Any = {"type": "json_object"} if json_mode else openai.omit
        self._client = openai.AsyncOpenAI(
            base_url=base_url or None,
            api_key=api_key,
            timeout=timeout_s,
            max_retries=max_retries,
        )

    async def complete(
        self, system: str, user: str, *, max_tokens: int, stream: bool = False
    ) -> Completion:
        messages: list[ChatCompletionMessageParam] = [
            {"role": "system", "content": system},
            {"role": "user", "content": user},
        ]
        started = time.perf_counter()
        try:
            if stream:
                done = await self._stream(messages, max_tokens)
            else:
                done = _from_response(await self._create(messages, max_tokens), self.model)
        except openai.APIError as exc:
            raise to_provider_error(exc) from exc
        latency_ms = (time.perf_counter() - started) * 1000.0
        return replace(done, latency_ms=latency_ms)

    async def _create(
        self, messages: list[ChatCompletionMessageParam], max_tokens: int
    ) -> ChatCompletion:
        legacy = self._legacy_max_tokens
        return await self._client.chat.completions.create(
            model=self.model,
            messages=messages,
            # Self-hosted servers know max_tokens; temperature 0 keeps reviews repeatable.
            # Newer OpenAI models reject max_tokens and any temperature but the default.
            max_tokens=max_tokens if legacy else openai.omit,
            max_completion_tokens=openai.omit if legacy else max_tokens,
            temperature=0 if legacy else openai.omit,
            response_format=self._response_format,
        )

    async def _stream(
        self, messages: list[ChatCompletionMessageParam], max_tokens: int
    ) -> Completion:
        """Accumulate the deltas; tokens come from the final usage-only chunk."""
        legacy = self._legacy_max_tokens
        events = await self._client.chat.completions.create(
            model=self.model,
            messages=messages,
            max_tokens=max_tokens if legacy else openai.omit,
            max_completion_tokens=openai.omit if legacy else max_tokens,
            temperature=0 if legacy else openai.omit,
            response_format=self._response_format,
            stream=True,
            stream_options={"include_usage": True},
        )
        parts: list[str] = []
        finish, model = "", ""
        tokens_in = tokens_out = 0
        async with events:
            async for chunk in events:
                model = chunk.model or model
                if chunk.choices:
                    choice = chunk.choices[0]
                    parts.append(choice.delta.content or "")
                    finish = choice.finish_reason or finish
                if chunk.usage is not None:
                    tokens_in = chunk.usage.prompt_tokens
                    tokens_out = chunk.usage.completion_tokens
        if not finish:
            raise ProviderError(
                f"openai: stream ended before a finish reason ({len(parts)} chunks)",
                retryable=True,
            )
        return Completion(
            text="".join(parts),
            input_tokens=tokens_in,
            output_tokens=tokens_out,
            latency_ms=0.0,
            model=model or self.model,
            stop_reason=finish,
        )

    async def aclose(self) -> None:
        """Close the SDK's connection pool; the owner of the provider calls it at shutdown."""
        await self._client.close()


def _from_response(response: ChatCompletion, default_model: str) -> Completion:
    text, finish = "", ""
    if response.choices:
        text = response.choices[0].message.content or ""
        finish = response.choices[0].finish_reason or ""
    usage = response.usage
    return Completion(
        text=text,
        input_tokens=usage.prompt_tokens if usage else 0,
        output_tokens=usage.completion_tokens if usage else 0,
        latency_ms=0.0,
        model=response.model or default_model,
        stop_reason=finish,
    )


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
    if type(exc) is openai.APIError:
        # An error event in the middle of a stream: the server failed mid-answer.
        return ProviderError(f"openai: error during the stream: {exc}", retryable=True)
    # APIResponseValidationError and the like: the server answered nonsense.
    return ProviderError(f"openai: {type(exc).__name__}: {exc}", retryable=False)
