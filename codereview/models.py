"""The configured LLM tiers, built once from settings for whoever calls models.

Workers (``streams.app``) and the evaluation (``codereview eval``) must call
models the same way, with the same retries, breaker and JSON mode; building
them in one place keeps an evaluation honest about what production does.
Providers themselves take scalars only (``providers.build_provider``); this is
where settings become those scalars.
"""

from __future__ import annotations

from codereview.settings import LlmSettings
from providers.circuit import BreakerPolicy
from providers.retrying import RetryPolicy
from providers.tiers import ModelTiers, build_tiers


def tiers_from_settings(llm: LlmSettings) -> ModelTiers:
    """Both tiers behind our retry policy and a circuit breaker per model."""
    return build_tiers(
        llm.provider,
        base_url=llm.base_url,
        api_key=llm.api_key.get_secret_value(),
        model=llm.model,
        timeout_s=llm.timeout_s,
        cheap_kind=llm.cheap_provider,
        cheap_base_url=llm.cheap_base_url,
        cheap_api_key=llm.cheap_api_key.get_secret_value(),
        cheap_model=llm.cheap_model,
        retry=RetryPolicy(
            max_attempts=llm.max_attempts,
            base_s=min(llm.retry_base_s, llm.retry_max_wait_s),
            max_s=llm.retry_max_wait_s,
            deadline_s=llm.deadline_s,
        ),
        breaker=BreakerPolicy(
            failure_threshold=llm.breaker_failures, cooldown_s=llm.breaker_cooldown_s
        ),
        json_mode=llm.json_mode,
    )
