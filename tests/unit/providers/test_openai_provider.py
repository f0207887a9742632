"""The OpenAI provider through the real SDK against a real local server.

openai 3.x talks through httpx2, which respx cannot intercept, so every test
goes over HTTP to ``tests.fakes.llm_server`` on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Coroutine
from typing import Any, TypeVar

import openai
import pytest

from processors.analysis import parse_answer
from providers import Completion, ProviderError, build_provider
from providers.anthropic_messages import AnthropicProvider
from providers.openai_chat import OpenAIProvider
from providers.pricing import cost_usd, price_for
from schemas.errors import ProcessorError
from tests.fakes.llm_server import FakeLlmServer, Reply

T = TypeVar("T")
ANSWER = '{"findings": [{"path": "a.py", "start_line": 3, "message": "Off by one."}]}'


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def provider(
    server: FakeLlmServer,
    *,
    kind: str = "openai",
    timeout_s: float = 5.0,
    max_retries: int = 0,
) -> OpenAIProvider:
    built = build_provider(
        kind,
        base_url=server.openai_base_url,
        api_key="test-key",
        model="gpt-4o-mini",
        timeout_s=timeout_s,
        max_retries=max_retries,
    )
    assert isinstance(built, OpenAIProvider)
    return built


async def complete(llm: OpenAIProvider, user: str = "review this") -> Completion:
    try:
        return await llm.complete("you review code", user, max_tokens=256)
    finally:
        await llm.aclose()


def test_normal_answer() -> None:
    with FakeLlmServer([Reply.answer(ANSWER, input_tokens=321, output_tokens=45)]) as server:
        done = run(complete(provider(server)))
    assert done.text == ANSWER
    assert (done.input_tokens, done.output_tokens, done.model) == (321, 45, "fake-model")
    assert done.latency_ms > 0
    [request] = server.requests
    assert request.path == "/v1/chat/completions"
    assert request.headers["authorization"] == "Bearer test-key"
    assert request.body["model"] == "gpt-4o-mini"
    assert request.body["messages"] == [
        {"role": "system", "content": "you review code"},
        {"role": "user", "content": "review this"},
    ]
    assert request.body["max_completion_tokens"] == 256
    assert "max_tokens" not in request.body and "stream" not in request.body


def test_openai_compatible_servers_get_max_tokens_and_temperature_zero() -> None:
    with FakeLlmServer([Reply.answer(ANSWER)]) as server:
        run(complete(provider(server, kind="openai-compatible")))
    body = server.requests[0].body
    assert (body["max_tokens"], body["temperature"]) == (256, 0)
    assert "max_completion_tokens" not in body


@pytest.mark.parametrize("json_mode", [True, False])
def test_json_mode_asks_for_json_constrained_output(json_mode: bool) -> None:
    with FakeLlmServer([Reply.answer(ANSWER)]) as server:
        llm = build_provider(
            "openai-compatible",
            base_url=server.openai_base_url,
            api_key="",
            model="local",
            timeout_s=5,
            max_retries=0,
            json_mode=json_mode,
        )
        assert isinstance(llm, OpenAIProvider)
        run(complete(llm))
    body = server.requests[0].body
    if json_mode:
        assert body["response_format"] == {"type": "json_object"}
    else:
        assert "response_format" not in body


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
        (Reply.rate_limited(7), True, 429),
        (Reply.error(500), True, 500),
        (Reply.error(503), True, 503),
        (Reply.error(400), False, 400),
        (Reply.error(401), False, 401),
        (Reply.error(404), False, 404),
    ],
)
def test_http_errors_map_to_provider_error(reply: Reply, retryable: bool, status: int) -> None:
    with FakeLlmServer([reply]) as server, pytest.raises(ProviderError) as caught:
        run(complete(provider(server, max_retries=0)))
    assert (caught.value.retryable, caught.value.status) == (retryable, status)
    assert len(server.requests) == 1
    if status == 429:
        assert caught.value.retry_after_s == 7


def test_server_errors_are_retried_by_the_sdk_before_giving_up() -> None:
    with FakeLlmServer([Reply.error(500), Reply.answer(ANSWER)]) as server:
        done = run(complete(provider(server, max_retries=1)))
    assert done.text == ANSWER and len(server.requests) == 2


def test_timeout_is_a_retryable_provider_error() -> None:
    with FakeLlmServer([Reply.slow(3.0)]) as server:
        started = time.monotonic()
        with pytest.raises(ProviderError) as caught:
            run(complete(provider(server, timeout_s=0.3, max_retries=0)))
        elapsed = time.monotonic() - started
    assert caught.value.retryable and caught.value.status is None
    assert "timed out" in str(caught.value)
    assert elapsed < 2.0


def test_connection_refused_is_a_retryable_provider_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    llm = OpenAIProvider(
        base_url=f"http://127.0.0.1:{port}/v1",
        api_key="k",
        model="m",
        timeout_s=2.0,
        max_retries=0,
    )
    with pytest.raises(ProviderError) as caught:
        run(complete(llm))
    assert caught.value.retryable


def test_malformed_model_output_arrives_and_fails_parsing() -> None:
    with FakeLlmServer([Reply.answer("I reviewed it and it looks fine overall!")]) as server:
        done = run(complete(provider(server)))
    with pytest.raises(ProcessorError):
        parse_answer(done.text)


def test_fake_server_streams_server_sent_events_to_the_sdk() -> None:
    """The fake's SSE stream (ended by closing the connection) works with the SDK's stream."""

    async def stream(server: FakeLlmServer) -> tuple[str, Any]:
        client = openai.AsyncOpenAI(base_url=server.openai_base_url, api_key="k", max_retries=0)
        parts: list[str] = []
        usage = None
        try:
            events = await client.chat.completions.create(
                model="m",
                messages=[{"role": "user", "content": "hi"}],
                stream=True,
                stream_options={"include_usage": True},
            )
            async for event in events:
                if event.choices and event.choices[0].delta.content:
                    parts.append(event.choices[0].delta.content)
                usage = event.usage or usage
        finally:
            await client.close()
        return "".join(parts), usage

    with FakeLlmServer([Reply.answer(ANSWER, input_tokens=9, output_tokens=4)]) as server:
        text, usage = run(stream(server))
    assert text == ANSWER
    assert (usage.prompt_tokens, usage.completion_tokens) == (9, 4)
    assert server.requests[0].body["stream"] is True


def test_script_repeats_its_last_reply_and_logs_every_request() -> None:
    async def outcome(server: FakeLlmServer, user: str = "review this") -> str:
        try:
            return (await complete(provider(server), user=user)).text
        except ProviderError as exc:
            return f"error {exc.status}"

    with FakeLlmServer([Reply.error(500), Reply.answer("a")]) as server:
        outcomes = [run(outcome(server)) for _ in range(3)]
        server.enqueue(Reply.answer("b"))
        outcomes.append(run(outcome(server, user="fourth")))
    assert outcomes == ["error 500", "a", "a", "b"]
    users = [r.body["messages"][1]["content"] for r in server.requests]
    assert users == ["review this"] * 3 + ["fourth"]


@pytest.mark.parametrize(
    ("kind", "api_key", "expected"),
    [
        ("", "k", type(None)),
        ("openai", "k", OpenAIProvider),
        ("openai-compatible", "", OpenAIProvider),
        ("anthropic", "k", AnthropicProvider),
    ],
)
def test_build_provider_by_kind(kind: str, api_key: str, expected: type) -> None:
    built = build_provider(
        kind, base_url="http://127.0.0.1:1", api_key=api_key, model="m", timeout_s=1, max_retries=0
    )
    assert isinstance(built, expected)
    if built is not None:
        assert (built.name, built.model) == (kind, "m")


@pytest.mark.parametrize(
    ("kind", "api_key", "model"),
    [("bedrock", "k", "m"), ("openai", "", "m"), ("anthropic", "", "m"), ("openai", "k", "")],
)
def test_build_provider_rejects_bad_configuration(kind: str, api_key: str, model: str) -> None:
    with pytest.raises(ValueError):
        build_provider(kind, base_url="", api_key=api_key, model=model, timeout_s=1, max_retries=0)


@pytest.mark.parametrize(
    ("model", "tokens_in", "tokens_out", "usd"),
    [
        ("gpt-4o-mini", 1_000_000, 1_000_000, 0.75),
        ("gpt-4o-mini-2024-07-18", 2_000, 1_000, 0.0009),  # dated snapshot: family price
        ("gpt-4o", 1_000, 1_000, 0.0125),
        ("openai/gpt-4o", 1_000, 1_000, 0.0125),  # router prefix
        ("claude-sonnet-4-5", 10_000, 2_000, 0.06),
        ("gemma3-270m-q4", 5_000, 5_000, 0.0),  # self-hosted: hardware, not tokens
        ("fake-model", 1, 1, 0.0),
    ],
)
def test_cost_of_a_completion(model: str, tokens_in: int, tokens_out: int, usd: float) -> None:
    assert cost_usd(model, tokens_in, tokens_out) == pytest.approx(usd)


def test_cost_rejects_negative_tokens() -> None:
    assert price_for("unknown") == (0.0, 0.0)
    with pytest.raises(ValueError):
        cost_usd("gpt-4o", -1, 0)
