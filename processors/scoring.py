"""Scoring findings against expected bug regions: the golden matching rule.

A finding *hits* an expected region when the paths are equal and the
finding's line range overlaps ``[line - margin, end_line + margin]`` (margin
3 in the golden set: a reviewer pointing two lines off still pointed at the
bug). A region counts as found once, however many findings hit it; a finding
that hits nothing is a false positive. Precision therefore counts findings
(every finding that hits is a true positive) and recall counts regions, which
is why ``tp`` and ``regions_found`` can differ.

Recall is reported two ways: by regions, and by cases (a case counts when at
least one of its regions is found), because a PR where the reviewer pointed
at one of three bug sites has still been usefully reviewed.

Categories are scored from both sides on purpose: recall by the EXPECTED
region's category (what kind of bug was missed), precision by the FINDING's
own category (which kind of report is noise). Rules: precision is the rule's
hits over its findings, recall the share of ALL regions that rule found.

Everything here is pure: detections and regions in, counts out.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from schemas.errors import ProcessorError

MARGIN = 3


@dataclass(frozen=True, slots=True)
class Detection:
    """One reported issue as scoring sees it, whoever reported it."""

    path: str
    start_line: int
    end_line: int
    rule_id: str
    category: str


@dataclass(frozen=True, slots=True)
class Region:
    """One expected bug site, lines in the head file."""

    path: str
    line: int
    end_line: int
    category: str = ""


@dataclass(frozen=True, slots=True)
class CaseOutcome:
    """What one system reported on one case, next to what was expected."""

    case_id: str
    detections: tuple[Detection, ...]
    regions: tuple[Region, ...]


@dataclass(frozen=True, slots=True)
class Counts:
    """The raw counts behind one row of a score table; the ratios derive from them."""

    findings: int = 0
    tp: int = 0
    regions: int = 0
    regions_found: int = 0
    cases: int = 0
    cases_found: int = 0

    @property
    def fp(self) -> int:
        return self.findings - self.tp

    @property
    def precision(self) -> float | None:
        """None when nothing was reported: no claim, so no precision to speak of."""
        return self.tp / self.findings if self.findings else None

    @property
    def recall(self) -> float | None:
        return self.regions_found / self.regions if self.regions else None

    @property
    def case_recall(self) -> float | None:
        return self.cases_found / self.cases if self.cases else None

    @property
    def f1(self) -> float | None:
        """Harmonic mean of precision and region recall; an undefined side counts as 0."""
        if self.precision is None and self.recall is None:
            return None
        p, r = self.precision or 0.0, self.recall or 0.0
        return 2 * p * r / (p + r) if p + r else 0.0

    def __add__(self, other: Counts) -> Counts:
        return Counts(
            self.findings + other.findings,
            self.tp + other.tp,
            self.regions + other.regions,
            self.regions_found + other.regions_found,
            self.cases + other.cases,
            self.cases_found + other.cases_found,
        )


@dataclass(frozen=True)
class Score:
    """Counts overall and by case, category and rule for one system on one case set."""

    overall: Counts
    by_case: dict[str, Counts] = field(default_factory=dict)
    by_category: dict[str, Counts] = field(default_factory=dict)
    by_rule: dict[str, Counts] = field(default_factory=dict)


def hits(detection: Detection, region: Region, *, margin: int = MARGIN) -> bool:
    """Whether ``detection`` points at ``region`` under the golden rule."""
    return (
        detection.path == region.path
        and detection.start_line <= region.end_line + margin
        and detection.end_line >= region.line - margin
    )


def score_case(outcome: CaseOutcome, *, margin: int = MARGIN) -> Counts:
    """Counts for one case alone."""
    return _match(outcome, margin).counts


def score_cases(outcomes: Sequence[CaseOutcome], *, margin: int = MARGIN) -> Score:
    """The full score of one system over a case set.

    A case id may appear once only: two outcomes for one case would count its
    regions twice.
    """
    seen: set[str] = set()
    overall = Counts()
    by_case: dict[str, Counts] = {}
    categories: dict[str, Counts] = defaultdict(Counts)
    rules: dict[str, Counts] = defaultdict(Counts)
    total_regions = sum(len(o.regions) for o in outcomes)
    for outcome in outcomes:
        if outcome.case_id in seen:
            raise ProcessorError(f"case {outcome.case_id!r} scored twice")
        seen.add(outcome.case_id)
        match = _match(outcome, margin)
        overall += match.counts
        by_case[outcome.case_id] = match.counts
        for detection, hit in zip(outcome.detections, match.hit_flags, strict=True):
            categories[detection.category] += Counts(findings=1, tp=int(hit))
            rules[detection.rule_id] += Counts(findings=1, tp=int(hit))
        for index, region in enumerate(outcome.regions):
            categories[region.category] += Counts(
                regions=1, regions_found=int(index in match.found)
            )
        for rule_id, found in match.found_by_rule.items():
            rules[rule_id] += Counts(regions_found=len(found))
    by_rule = {rule: c + Counts(regions=total_regions) for rule, c in rules.items()}
    return Score(overall, by_case, dict(categories), by_rule)


def restrict_to_lines(
    detections: Iterable[Detection], lines: Mapping[str, Collection[int]]
) -> list[Detection]:
    """The detections whose line range touches ``lines`` of their file ("diff-only")."""
    kept = []
    for d in detections:
        wanted = lines.get(d.path)
        if wanted and any(d.start_line <= n <= d.end_line for n in wanted):
            kept.append(d)
    return kept


@dataclass(frozen=True)
class _Match:
    counts: Counts
    hit_flags: list[bool]
    found: set[int]
    found_by_rule: dict[str, set[int]]


def _match(outcome: CaseOutcome, margin: int) -> _Match:
    flags: list[bool] = []
    found: set[int] = set()
    by_rule: dict[str, set[int]] = defaultdict(set)
    for detection in outcome.detections:
        if detection.end_line < detection.start_line:
            raise ProcessorError(
                f"bad line range {detection.start_line}..{detection.end_line} in {outcome.case_id}"
            )
        hit = [i for i, r in enumerate(outcome.regions) if hits(detection, r, margin=margin)]
        flags.append(bool(hit))
        found.update(hit)
        by_rule[detection.rule_id].update(hit)
    counts = Counts(
        findings=len(flags),
        tp=sum(flags),
        regions=len(outcome.regions),
        regions_found=len(found),
        cases=1 if outcome.regions else 0,
        cases_found=1 if found else 0,
    )
    return _Match(counts, flags, found, dict(by_rule))


def lines_outside(
    lines: Mapping[str, Collection[int]], regions: Sequence[Region], *, margin: int = MARGIN
) -> int:
    """How many of ``lines`` no region reaches: where a diff-only reviewer COULD be wrong.

    When every changed line lies within ``margin`` of an expected region (a
    case set of reversed bug fixes is like that), any finding near the diff
    hits, so diff-only precision is 100% by construction and says nothing.
    """
    return sum(
        1
        for path, numbers in lines.items()
        for n in numbers
        if not any(r.path == path and r.line - margin <= n <= r.end_line + margin for r in regions)
    )
