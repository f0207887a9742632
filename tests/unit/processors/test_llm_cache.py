"""The review cache: keyed on what the answer depends on, stored relative to the chunk."""

from __future__ import annotations

from dataclasses import replace

import pytest

from processors.analysis import ModelFinding
from processors.llm_cache import DAY_MS, CachedReview, cached_review, review_cache_key
from schemas.records import ChunkVerdict

NOW = 1_700_000_000_000
BASE = ("review-v1", "gpt-4o", "acme/shop", "def f():\n    return 1", ("ctx one", "ctx two"))


def key(*parts: object) -> str:
    version, model, scope, text, context = parts
    assert isinstance(context, tuple)
    return review_cache_key(str(version), str(model), str(scope), str(text), list(context))


@pytest.mark.parametrize(
    "changed",
    [
        ("review-v2", *BASE[1:]),
        (BASE[0], "gpt-4o-mini", *BASE[2:]),
        (*BASE[:2], "other/shop", *BASE[3:]),
        (*BASE[:2], "acme/api", *BASE[3:]),
        (*BASE[:3], "def f():\n    return 2", BASE[4]),
        (*BASE[:4], ("ctx one",)),
        (*BASE[:4], ("ctx two", "ctx one")),
        (*BASE[:4], ("ctx one", "ctx twO")),
        (*BASE[:4], ()),
        # Part boundaries are part of the key: "a|bc" is not "ab|c".
        (*BASE[:4], ("ctx onectx two",)),
        (*BASE[:4], ("ctx one", "ctx two", "")),
    ],
)
def test_key_changes_with_every_input(changed: tuple[object, ...]) -> None:
    assert key(*changed) != key(*BASE)


def test_key_is_stable_and_a_sha256_hex() -> None:
    first = key(*BASE)
    assert first == key(*BASE)
    assert len(first) == 64 and int(first, 16) >= 0


def test_key_does_not_depend_on_where_the_chunk_sits() -> None:
    here, moved = chunk(start=10), chunk(start=25)
    assert here.start_line != moved.start_line
    keys = {
        review_cache_key("review-v1", "gpt-4o", "acme/shop", c.text, ["ctx"]) for c in (here, moved)
    }
    assert len(keys) == 1


TEXT = "\n".join(
    [
        "def total(items):",
        "    s = 0",
        "    for i in items:",
        "        s += i.price",
        "    return s",
    ]
)


def chunk(*, start: int, text: str = TEXT, path: str = "shop/cart.py") -> ChunkVerdict:
    return ChunkVerdict(
        chunk_id=f"c{start}",
        path=path,
        language="python",
        start_line=start,
        end_line=start + text.count("\n"),
        risk=0.9,
        escalate=True,
        text=text,
    )


def finding(start: int, end: int, **extra: object) -> ModelFinding:
    return ModelFinding.model_validate(
        {
            "path": "shop/cart.py",
            "start_line": start,
            "end_line": end,
            "message": "sum of prices ignores quantity",
            "category": "bug",
            "severity": "HIGH",
            **extra,
        }
    )


def test_cached_review_stores_offsets_and_drops_findings_outside_the_chunk() -> None:
    here = chunk(start=10)  # lines 10..14
    review = cached_review(
        here,
        [
            finding(13, 13, suggestion="s += i.price * i.qty"),
            finding(8, 11),  # starts above: clamped to the first line
            finding(14, 20),  # ends below: clamped to the last line
            finding(2, 9),  # wholly above: dropped
            finding(15, 15),  # wholly below: dropped
        ],
        NOW,
    )
    assert review.at_ms == NOW
    assert [(f["start_offset"], f["end_offset"]) for f in review.findings] == [
        (3, 3),
        (0, 1),
        (4, 4),
    ]
    assert all("start_line" not in f and "path" not in f for f in review.findings)
    assert review.findings[0]["suggestion"] == "s += i.price * i.qty"
    assert review.findings[0]["severity"] == "HIGH"


@pytest.mark.parametrize("shift", [0, 1, 7, 300])
def test_round_trip_then_rebased_onto_a_moved_chunk(shift: int) -> None:
    before = chunk(start=10)
    answer = [finding(13, 14, suggestion="x"), finding(10, 10, category="security")]
    stored = CachedReview.from_json(cached_review(before, answer, NOW).to_json())
    assert stored == cached_review(before, answer, NOW)

    after = chunk(start=10 + shift)
    rebased = stored.rebased(after)
    assert [(f.start_line, f.end_line) for f in rebased] == [
        (13 + shift, 14 + shift),
        (10 + shift, 10 + shift),
    ]
    for old, new in zip(answer, rebased, strict=True):
        assert new.model_dump(exclude={"start_line", "end_line"}) == old.model_dump(
            exclude={"start_line", "end_line"}
        )


def test_rebased_takes_the_path_of_the_chunk_it_is_placed_on() -> None:
    stored = cached_review(chunk(start=10), [finding(11, 11)], NOW)
    renamed = replace(chunk(start=40), path="shop/basket.py")
    (only,) = stored.rebased(renamed)
    assert (only.path, only.start_line, only.end_line) == ("shop/basket.py", 41, 41)


def test_to_json_is_deterministic() -> None:
    review = cached_review(chunk(start=3), [finding(3, 4), finding(5, 5)], NOW)
    assert review.to_json() == CachedReview.from_json(review.to_json()).to_json()
    assert review.to_json().startswith('{"at_ms": ')


@pytest.mark.parametrize(
    ("age_ms", "ttl_days", "fresh"),
    [
        (0, 90, True),
        (89 * DAY_MS, 90, True),
        (90 * DAY_MS - 1, 90, True),
        (90 * DAY_MS, 90, False),
        (91 * DAY_MS, 90, False),
        (DAY_MS // 2 - 1, 0.5, True),
        (DAY_MS // 2, 0.5, False),
        (1, 0, False),
    ],
)
def test_freshness_by_ttl(age_ms: int, ttl_days: float, fresh: bool) -> None:
    review = CachedReview(at_ms=NOW, findings=[])
    assert review.is_fresh(NOW + age_ms, ttl_days) is fresh
