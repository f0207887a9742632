"""Model tiers from scalars: which provider each tier gets, and that SDK retries are off."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

import pytest

from providers import ProviderError
from providers.anthropic_messages import AnthropicProvider
from providers.circuit import BreakerPolicy
from providers.openai_chat import OpenAIProvider
from providers.resilient import ResilientProvider
from providers.retrying import RetryPolicy
from providers.tiers import ModelTiers, build_tiers
from tests.fakes.llm_server import FakeLlmServer, Reply

T = TypeVar("T")
URL = "http://127.0.0.1:1/v1"


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def described(tiers: ModelTiers) -> tuple[str | None, str | None]:
    """ "name:model" of the cheap and the strong tier, None for an unset tier."""

    def one(tier: Any) -> str | None:
        if tier is None:
            return None
        assert isinstance(tier, ResilientProvider)
        return f"{tier.name}:{tier.model}"

    return one(tiers.pick("cheap")), one(tiers.pick("strong"))


@pytest.mark.parametrize(
    ("kwargs", "cheap", "strong"),
    [
        ({"kind": "", "model": ""}, None, None),
        ({"kind": "openai", "model": "gpt-4o"}, "openai:gpt-4o", "openai:gpt-4o"),
        (
            {"kind": "openai", "model": "gpt-4o", "cheap_model": "gpt-4o-mini"},
            "openai:gpt-4o-mini",
            "openai:gpt-4o",
        ),
        (
            {
                "kind": "anthropic",
                "model": "claude-sonnet-4-5",
                "cheap_kind": "openai-compatible",
                "cheap_base_url": URL,
                "cheap_model": "gemma3-270m",
            },
            "openai-compatible:gemma3-270m",
            "anthropic:claude-sonnet-4-5",
        ),
        (
            {
                "kind": "",
                "model": "",
                "cheap_kind": "openai-compatible",
                "cheap_base_url": URL,
                "cheap_model": "gemma3-270m",
            },
            "openai-compatible:gemma3-270m",
            None,  # never silently downgraded to the cheap model
        ),
    ],
)
def test_tiers_by_configuration(
    kwargs: dict[str, Any], cheap: str | None, strong: str | None
) -> None:
    tiers = build_tiers(base_url=URL, api_key="k", timeout_s=1.0, **kwargs)
    assert described(tiers) == (cheap, strong)
    assert tiers.enabled is (cheap is not None or strong is not None)


def test_cheap_tier_inherits_endpoint_and_key_of_the_same_kind_only() -> None:
    same = build_tiers(
        "anthropic", base_url=URL, api_key="k", model="claude-opus-4-6", timeout_s=1.0,
        cheap_model="claude-haiku-4-5",
    )  # fmt: skip
    assert isinstance(same.cheap, ResilientProvider)
    assert isinstance(same.cheap.inner, AnthropicProvider)
    assert same.cheap is not same.strong
    with pytest.raises(ValueError, match="API key"):
        build_tiers(
            "openai", base_url=URL, api_key="openai-key", model="gpt-4o", timeout_s=1.0,
            cheap_kind="anthropic", cheap_model="claude-haiku-4-5",
        )  # fmt: skip


def test_a_cheap_tier_equal_to_the_strong_one_is_the_same_provider() -> None:
    tiers = build_tiers(
        "openai", base_url=URL, api_key="k", model="gpt-4o", timeout_s=1.0, cheap_model="gpt-4o"
    )
    assert tiers.cheap is tiers.strong
    run(tiers.aclose())  # closes the one provider once


def test_each_model_has_its_own_breaker() -> None:
    tiers = build_tiers(
        "openai", base_url=URL, api_key="k", model="gpt-4o", timeout_s=1.0,
        cheap_model="gpt-4o-mini", breaker=BreakerPolicy(failure_threshold=2),
    )  # fmt: skip
    cheap, strong = tiers.cheap, tiers.strong
    assert isinstance(cheap, ResilientProvider) and isinstance(strong, ResilientProvider)
    assert (cheap.breaker.key, strong.breaker.key) == ("openai:gpt-4o-mini", "openai:gpt-4o")
    assert cheap.breaker is not strong.breaker
    assert cheap.breaker.policy.failure_threshold == 2


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
def test_sdk_retries_are_off_so_only_our_policy_retries(kind: str) -> None:
    with FakeLlmServer([Reply.error(500), Reply.answer("late")]) as server:
        base_url = server.anthropic_base_url if kind == "anthropic" else server.openai_base_url
        tiers = build_tiers(
            kind, base_url=base_url, api_key="k", model="m", timeout_s=2.0,
            retry=RetryPolicy(max_attempts=1),
        )  # fmt: skip
        strong = tiers.strong
        assert strong is not None

        async def call() -> None:
            try:
                await strong.complete("s", "u", max_tokens=8)
            finally:
                await tiers.aclose()

        with pytest.raises(ProviderError) as caught:
            run(call())
    assert caught.value.status == 500 and caught.value.attempts == 1
    assert len(server.requests) == 1  # the SDK did not retry on its own


def test_each_tier_calls_its_own_model() -> None:
    with FakeLlmServer([Reply.answer("ok")]) as server:
        tiers = build_tiers(
            "openai", base_url=server.openai_base_url, api_key="k", model="gpt-4o",
            timeout_s=2.0, cheap_model="gpt-4o-mini",
        )  # fmt: skip

        async def both() -> list[int]:
            try:
                done = [
                    await tier.complete("s", "u", max_tokens=8)
                    for tier in (tiers.cheap, tiers.strong)
                    if tier is not None
                ]
            finally:
                await tiers.aclose()
            return [d.attempts for d in done]

        assert run(both()) == [1, 1]
    assert [r.body["model"] for r in server.requests] == ["gpt-4o-mini", "gpt-4o"]
    assert isinstance(tiers.strong, ResilientProvider)
    assert isinstance(tiers.strong.inner, OpenAIProvider)
