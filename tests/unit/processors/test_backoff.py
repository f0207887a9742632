"""Full-jitter backoff: the ceiling doubles per attempt up to the cap; the draw scales it."""

from __future__ import annotations

import pytest

from processors.backoff import full_jitter


@pytest.mark.parametrize(
    ("attempt", "draw", "expected"),
    [(1, 1.0, 0.5), (2, 1.0, 1.0), (3, 0.5, 1.0), (5, 1.0, 8.0), (9, 1.0, 10.0), (4, 0.0, 0.0)],
)
def test_full_jitter(attempt: int, draw: float, expected: float) -> None:
    assert full_jitter(attempt, 0.5, 10.0, lambda: draw) == expected
