"""What a model call costs in USD, from a small list-price table.

Cost lands in every ``LlmUsage`` row, so analysts can ask for cost by repo,
team and model in ClickHouse. Prices are list prices in USD per million
tokens, matched by the longest model-name prefix so dated snapshots
("gpt-4o-mini-2024-07-18") price like their family. A router prefix
("openai/gpt-4o") is dropped first. Unknown and self-hosted models cost 0:
their cost is hardware, which this table cannot know. Prices change, and
families newer than this table (priced 0 until added) must be added when a
model is adopted.
"""

from __future__ import annotations

# model-name prefix -> (USD per 1M input tokens, USD per 1M output tokens)
PRICES_PER_MILLION: dict[str, tuple[float, float]] = {
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4o": (2.50, 10.00),
    "gpt-4.1-nano": (0.10, 0.40),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1": (2.00, 8.00),
    "gpt-5-nano": (0.05, 0.40),
    "gpt-5-mini": (0.25, 2.00),
    "gpt-5": (1.25, 10.00),
    "o3-mini": (1.10, 4.40),
    "o4-mini": (1.10, 4.40),
    "o3": (2.00, 8.00),
    "claude-3-haiku": (0.25, 1.25),
    "claude-3-5-haiku": (0.80, 4.00),
    "claude-haiku-4": (1.00, 5.00),
    "claude-3-5-sonnet": (3.00, 15.00),
    "claude-3-7-sonnet": (3.00, 15.00),
    "claude-sonnet-4": (3.00, 15.00),
    "claude-opus-4-5": (5.00, 25.00),
    "claude-opus-4-6": (5.00, 25.00),
    "claude-opus-4": (15.00, 75.00),  # 4.0 and 4.1
}


def price_for(model: str) -> tuple[float, float]:
    """(input, output) USD per 1M tokens for ``model``; (0, 0) when unknown."""
    name = model.rsplit("/", 1)[-1].lower()
    best = ""
    for prefix in PRICES_PER_MILLION:
        if name.startswith(prefix) and len(prefix) > len(best):
            best = prefix
    return PRICES_PER_MILLION[best] if best else (0.0, 0.0)


def cost_usd(model: str, input_tokens: int, output_tokens: int) -> float:
    """USD for one call: tokens times the list price of the model's family."""
    if input_tokens < 0 or output_tokens < 0:
        raise ValueError("token counts cannot be negative")
    per_input, per_output = price_for(model)
    return (input_tokens * per_input + output_tokens * per_output) / 1_000_000
