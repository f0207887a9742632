"""The golden matching rule and the counts built on it, case by case."""

from __future__ import annotations

import pytest

from processors.scoring import (
    CaseOutcome,
    Counts,
    Detection,
    Region,
    hits,
    lines_outside,
    restrict_to_lines,
    score_case,
    score_cases,
)
from schemas.errors import ProcessorError


def det(
    path: str, start: int, end: int | None = None, rule: str = "r:1", cat: str = "bug"
) -> Detection:
    return Detection(path, start, start if end is None else end, rule, cat)


REGION = Region("a.py", 10, 12, "correctness")


@pytest.mark.parametrize(
    ("detection", "expected"),
    [
        (det("a.py", 10), True),  # on the first line
        (det("a.py", 12), True),  # on the last line
        (det("a.py", 7), True),  # line - 3: the edge of the margin
        (det("a.py", 15), True),  # end_line + 3
        (det("a.py", 6), False),  # one past the margin before
        (det("a.py", 16), False),  # one past the margin after
        (det("a.py", 1, 6), False),  # a range ending just before the margin
        (det("a.py", 1, 7), True),  # a range reaching into the margin
        (det("a.py", 1, 100), True),  # a range spanning the region
        (det("b.py", 11), False),  # same lines, other file
        (det("pkg/a.py", 11), False),  # paths compare exactly
    ],
)
def test_hit_rule(detection: Detection, expected: bool) -> None:
    assert hits(detection, REGION) is expected


def test_margin_is_a_parameter() -> None:
    assert hits(det("a.py", 8), REGION, margin=2) is True
    assert hits(det("a.py", 7), REGION, margin=2) is False
    assert hits(det("a.py", 9), REGION, margin=0) is False


@pytest.mark.parametrize(
    ("detections", "regions", "expected"),
    [
        # nothing reported, one region: recall 0, precision undefined
        ((), (REGION,), Counts(findings=0, tp=0, regions=1, regions_found=0, cases=1)),
        # two findings on one region: both TP, region counted once
        (
            (det("a.py", 10), det("a.py", 11, rule="r:2")),
            (REGION,),
            Counts(findings=2, tp=2, regions=1, regions_found=1, cases=1, cases_found=1),
        ),
        # one hit, one false positive, one of two regions found
        (
            (det("a.py", 11), det("a.py", 90)),
            (REGION, Region("b.py", 5, 5)),
            Counts(findings=2, tp=1, regions=2, regions_found=1, cases=1, cases_found=1),
        ),
        # one wide finding finds two regions
        (
            (det("a.py", 10, 40),),
            (REGION, Region("a.py", 30, 31)),
            Counts(findings=1, tp=1, regions=2, regions_found=2, cases=1, cases_found=1),
        ),
        # a case without regions: findings are all false positives, no case to recall
        ((det("a.py", 1),), (), Counts(findings=1, tp=0, regions=0, regions_found=0, cases=0)),
    ],
)
def test_score_case_counts(
    detections: tuple[Detection, ...], regions: tuple[Region, ...], expected: Counts
) -> None:
    assert score_case(CaseOutcome("c", detections, regions)) == expected


@pytest.mark.parametrize(
    ("counts", "precision", "recall", "f1", "case_recall"),
    [
        (
            Counts(findings=4, tp=1, regions=2, regions_found=1, cases=2, cases_found=1),
            0.25,
            0.5,
            1 / 3,
            0.5,
        ),
        (Counts(findings=0, regions=3, cases=1), None, 0.0, 0.0, 0.0),
        (Counts(findings=2, tp=0), 0.0, None, 0.0, None),
        (Counts(), None, None, None, None),
        (
            Counts(findings=1, tp=1, regions=1, regions_found=1, cases=1, cases_found=1),
            1.0,
            1.0,
            1.0,
            1.0,
        ),
    ],
)
def test_ratios(
    counts: Counts,
    precision: float | None,
    recall: float | None,
    f1: float | None,
    case_recall: float | None,
) -> None:
    assert counts.precision == precision
    assert counts.recall == recall
    assert counts.case_recall == case_recall
    assert counts.f1 == (None if f1 is None else pytest.approx(f1))
    assert counts.fp == counts.findings - counts.tp


def test_score_cases_overall_per_case_category_and_rule() -> None:
    outcomes = [
        CaseOutcome(
            "one",
            (
                det("a.py", 11, rule="ruff:F821", cat="bug"),
                det("a.py", 50, rule="ruff:S101", cat="security"),
            ),
            (REGION, Region("a.py", 80, 80, "correctness")),
        ),
        CaseOutcome(
            "two",
            (
                det("c.py", 3, rule="ruff:F821", cat="bug"),
                det("c.py", 4, rule="secrets:x", cat="secret"),
            ),
            (Region("c.py", 1, 1, "security"),),
        ),
        CaseOutcome("three", (), (Region("d.py", 9, 9, "correctness"),)),
    ]
    score = score_cases(outcomes)

    assert score.overall == Counts(
        findings=4, tp=3, regions=4, regions_found=2, cases=3, cases_found=2
    )
    assert score.overall.case_recall == pytest.approx(2 / 3)
    assert score.by_case["one"] == Counts(2, 1, 2, 1, 1, 1)
    assert score.by_case["three"] == Counts(0, 0, 1, 0, 1, 0)
    # precision by the finding's category, recall by the region's
    assert score.by_category["bug"] == Counts(findings=2, tp=2)
    assert score.by_category["security"] == Counts(findings=1, tp=0, regions=1, regions_found=1)
    assert score.by_category["secret"] == Counts(findings=1, tp=1)
    assert score.by_category["correctness"] == Counts(regions=3, regions_found=1)
    # a rule's recall is over ALL regions of the set
    assert score.by_rule["ruff:F821"] == Counts(findings=2, tp=2, regions=4, regions_found=2)
    assert score.by_rule["ruff:S101"] == Counts(findings=1, tp=0, regions=4, regions_found=0)
    assert score.by_rule["secrets:x"] == Counts(findings=1, tp=1, regions=4, regions_found=1)


def test_a_case_scored_twice_is_refused() -> None:
    outcome = CaseOutcome("same", (), (REGION,))
    with pytest.raises(ProcessorError, match="scored twice"):
        score_cases([outcome, outcome])


def test_a_backwards_range_is_refused() -> None:
    with pytest.raises(ProcessorError, match="bad line range"):
        score_case(CaseOutcome("c", (Detection("a.py", 5, 4, "r", "bug"),), (REGION,)))


@pytest.mark.parametrize(
    ("detection", "kept"),
    [
        (det("a.py", 5), True),
        (det("a.py", 6), False),
        (det("a.py", 1, 4), False),
        (det("a.py", 1, 5), True),  # a range touching a focus line
        (det("b.py", 5), False),  # no focus lines in that file
    ],
)
def test_restrict_to_lines(detection: Detection, kept: bool) -> None:
    assert restrict_to_lines([detection], {"a.py": {5}, "b.py": set()}) == (
        [detection] if kept else []
    )


@pytest.mark.parametrize(
    ("lines", "outside"),
    [
        ({"a.py": {7, 10, 15}}, 0),  # all within the region +- 3
        ({"a.py": {6, 16}}, 2),  # one past the margin on each side
        ({"b.py": {11}}, 1),  # another file
        ({}, 0),
    ],
)
def test_lines_outside(lines: dict[str, set[int]], outside: int) -> None:
    assert lines_outside(lines, [REGION]) == outside
