"""The Anthropic provider through the real SDK against a real local server.

anthropic 2.x talks through httpx2, which respx cannot intercept, so every
test goes over HTTP to ``tests.fakes.llm_server`` on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine
from typing import Any, TypeVar

import anthropic
import pytest

from processors.analysis import parse_answer
from providers import Completion, ProviderError, build_provider
from providers.anthropic_messages import AnthropicProvider
from schemas.errors import ProcessorError
from tests.fakes.llm_server import FakeLlmServer, Reply

T = TypeVar("T")
ANSWER = '```json\n{"findings": []}\n```'


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def provider(
    server: FakeLlmServer, *, timeout_s: float = 5.0, max_retries: int = 0
) -> AnthropicProvider:
    built = build_provider(
        "anthropic",
        base_url=server.anthropic_base_url,
        api_key="test-key",
        model="claude-review-test",
        timeout_s=timeout_s,
        max_retries=max_retries,
    )
    assert isinstance(built, AnthropicProvider)
    return built


async def complete(llm: AnthropicProvider) -> Completion:
    try:
        return await llm.complete("you review code", "review this", max_tokens=512)
    finally:
        await llm.aclose()


def test_normal_answer() -> None:
    with FakeLlmServer([Reply.answer(ANSWER, input_tokens=1000, output_tokens=20)]) as server:
        done = run(complete(provider(server)))
    assert done.text == ANSWER
    assert (done.input_tokens, done.output_tokens, done.model) == (1000, 20, "fake-model")
    assert parse_answer(done.text) == []
    [request] = server.requests
    assert request.path == "/v1/messages"
    assert "test-key" in request.headers.get("x-api-key", "") + request.headers.get(
        "authorization", ""
    )
    assert "anthropic-version" in request.headers
    assert request.body["model"] == "claude-review-test"
    assert request.body["system"] == "you review code"
    assert request.body["messages"] == [{"role": "user", "content": "review this"}]
    assert request.body["max_tokens"] == 512


def test_rate_limit_then_ok_is_retried_after_retry_after() -> None:
    with FakeLlmServer([Reply.rate_limited(0.3), Reply.answer(ANSWER)]) as server:
        started = time.monotonic()
        done = run(complete(provider(server, max_retries=2)))
        elapsed = time.monotonic() - started
    assert done.text == ANSWER
    assert len(server.requests) == 2
    assert elapsed >= 0.3


@pytest.mark.parametrize(
    ("reply", "retryable", "status"),
    [
        (Reply.rate_limited(4), True, 429),
        (Reply.error(500), True, 500),
        (Reply.error(529), True, 529),  # Anthropic's "overloaded"
        (Reply.error(400), False, 400),
        (Reply.error(403), False, 403),
    ],
)
def test_http_errors_map_to_provider_error(reply: Reply, retryable: bool, status: int) -> None:
    with FakeLlmServer([reply]) as server, pytest.raises(ProviderError) as caught:
        run(complete(provider(server, max_retries=0)))
    assert (caught.value.retryable, caught.value.status) == (retryable, status)
    if status == 429:
        assert caught.value.retry_after_s == 4


def test_timeout_is_a_retryable_provider_error() -> None:
    with FakeLlmServer([Reply.slow(3.0)]) as server:
        started = time.monotonic()
        with pytest.raises(ProviderError) as caught:
            run(complete(provider(server, timeout_s=0.3, max_retries=0)))
        elapsed = time.monotonic() - started
    assert caught.value.retryable and caught.value.status is None
    assert elapsed < 2.0


def test_malformed_model_output_arrives_and_fails_parsing() -> None:
    with FakeLlmServer([Reply.answer('{"findings": [{"path": "a.py", "line": 3}')]) as server:
        done = run(complete(provider(server)))
    with pytest.raises(ProcessorError):
        parse_answer(done.text)


def test_fake_server_streams_message_events_to_the_sdk() -> None:
    async def stream(server: FakeLlmServer) -> tuple[str, int]:
        client = anthropic.AsyncAnthropic(
            base_url=server.anthropic_base_url, api_key="k", max_retries=0
        )
        try:
            async with client.messages.stream(
                model="m", max_tokens=64, messages=[{"role": "user", "content": "hi"}]
            ) as events:
                text = "".join([piece async for piece in events.text_stream])
                final = await events.get_final_message()
        finally:
            await client.close()
        return text, final.usage.output_tokens

    with FakeLlmServer([Reply.answer("streamed answer text", output_tokens=6)]) as server:
        assert run(stream(server)) == ("streamed answer text", 6)
    assert server.requests[0].body["stream"] is True
