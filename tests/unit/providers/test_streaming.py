"""Streamed completions through both official SDKs against the real local fake server.

A streamed call must give the same ``Completion`` as a whole one: the full
text, the server's token counts (OpenAI: the usage-only last chunk;
Anthropic: message_start and message_delta), and a stream cut short must be
a retryable error rather than half an answer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

import pytest

from providers import Completion, LlmProvider, ProviderError, build_provider
from tests.fakes.llm_server import FakeLlmServer, Reply

T = TypeVar("T")
KINDS = ("openai", "openai-compatible", "anthropic")
LONG_ANSWER = (
    '{"findings": ['
    + ", ".join(f'{{"path": "a.py", "start_line": {n}, "message": "issue {n}"}}' for n in range(20))
    + "]}"
)


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def bare(server: FakeLlmServer, kind: str) -> LlmProvider:
    built = build_provider(
        kind,
        base_url=server.anthropic_base_url if kind == "anthropic" else server.openai_base_url,
        api_key="test-key",
        model="review-model",
        timeout_s=5.0,
        max_retries=0,
    )
    assert built is not None
    return built


async def complete(llm: LlmProvider, *, stream: bool) -> Completion:
    try:
        return await llm.complete("you review code", "review this", max_tokens=300, stream=stream)
    finally:
        await llm.aclose()  # type: ignore[attr-defined]


@pytest.mark.parametrize("kind", KINDS)
def test_streamed_answer_equals_the_whole_answer(kind: str) -> None:
    reply = Reply.answer(LONG_ANSWER, input_tokens=777, output_tokens=222)
    with FakeLlmServer([reply, reply]) as server:
        streamed = run(complete(bare(server, kind), stream=True))
        whole = run(complete(bare(server, kind), stream=False))
    assert streamed.text == whole.text == LONG_ANSWER
    assert (streamed.input_tokens, streamed.output_tokens) == (777, 222)
    assert (whole.input_tokens, whole.output_tokens) == (777, 222)
    assert streamed.model == whole.model == "fake-model"
    assert streamed.stop_reason == whole.stop_reason != ""
    assert streamed.latency_ms > 0
    streamed_body, whole_body = (r.body for r in server.requests)
    assert streamed_body["stream"] is True and "stream" not in whole_body


@pytest.mark.parametrize("kind", ("openai", "openai-compatible"))
def test_openai_stream_asks_for_usage_and_keeps_the_token_parameter(kind: str) -> None:
    with FakeLlmServer([Reply.answer("ok")]) as server:
        run(complete(bare(server, kind), stream=True))
    body = server.requests[0].body
    assert body["stream_options"] == {"include_usage": True}
    if kind == "openai":
        assert body["max_completion_tokens"] == 300 and "max_tokens" not in body
    else:
        assert (body["max_tokens"], body["temperature"]) == (300, 0)


@pytest.mark.parametrize("kind", KINDS)
def test_malformed_output_arrives_intact_when_streamed(kind: str) -> None:
    broken = '```json\n{"findings": [{"path": "a.py", "line": 3'
    with FakeLlmServer([Reply.answer(broken)]) as server:
        done = run(complete(bare(server, kind), stream=True))
    assert done.text == broken


@pytest.mark.parametrize("kind", KINDS)
def test_a_stream_cut_short_is_a_retryable_error(kind: str) -> None:
    cut = Reply.cut_stream(LONG_ANSWER, after_pieces=3)
    with FakeLlmServer([cut]) as server, pytest.raises(ProviderError) as caught:
        run(complete(bare(server, kind), stream=True))
    assert caught.value.retryable
    assert "stream ended before" in str(caught.value)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(("reply", "status", "retryable"), [
    (Reply.rate_limited(3), 429, True),
    (Reply.error(400), 400, False),
])  # fmt: skip
def test_an_error_before_the_stream_starts_maps_like_a_whole_call(
    kind: str, reply: Reply, status: int, retryable: bool
) -> None:
    with FakeLlmServer([reply]) as server, pytest.raises(ProviderError) as caught:
        run(complete(bare(server, kind), stream=True))
    assert (caught.value.status, caught.value.retryable) == (status, retryable)
    if status == 429:
        assert caught.value.retry_after_s == 3
