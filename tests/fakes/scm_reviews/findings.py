"""Findings and comments for the publisher tests, named by a seed and placed on a line.

Every publisher test needs many findings that differ only in identity and
place, so ``review_finding`` takes those and fills the rest from
``tests.fakes.findings.SAMPLE``. Each test module fixes its PR once with
``functools.partial(review_finding, on=PR)``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

from processors.publishing import Comment, render
from schemas.records import Finding
from sinks.scm.base import PullRequestTarget
from tests.fakes.findings import sample_finding


def review_finding(
    seed: str | int,
    path: str,
    start: int,
    end: int | None = None,
    *,
    on: PullRequestTarget | None = None,
    **fields: Any,
) -> Finding:
    """A finding on ``path`` lines ``start``-``end`` (``start`` alone without ``end``) of PR ``on``.

    ``seed`` names it: an int is its fingerprint in hex (16 digits, the
    shortest the marker takes), a string is hashed (32 digits); rule and
    message carry it too. ``on`` gives source, tenant, repo, PR number and
    head (the sample's without it); ``fields`` set any field (``severity``,
    ``suggestion``, ...).
    """
    if isinstance(seed, int):
        fingerprint = f"{seed:016x}"
    else:
        fingerprint = hashlib.sha256(seed.encode()).hexdigest()[:32]
    named: dict[str, Any] = {
        "fingerprint": fingerprint,
        "path": path,
        "start_line": start,
        "end_line": start if end is None else end,
        "rule_id": f"rule.{seed}",
        "message": f"Problem {seed}.",
    }
    if on is not None:
        named.update(
            source=on.source,
            tenant=on.tenant,
            repo=on.repo,
            pr_number=on.number,
            head_sha=on.head_sha,
        )
    return sample_finding(**{**named, **fields})


def review_comment(
    seed: str | int,
    path: str,
    start: int,
    end: int | None = None,
    *,
    on: PullRequestTarget | None = None,
    suggestions: bool = False,
    **fields: Any,
) -> Comment:
    """The comment rendered from ``review_finding(seed, path, start, end, on=on, **fields)``.

    Without one-click suggestions by default, as on the SCMs that have none.
    """
    finding = review_finding(seed, path, start, end, on=on, **fields)
    return render(finding, suggestions=suggestions)


def comments_of(findings: Iterable[Finding], *, suggestions: bool = True) -> list[Comment]:
    """The comment of each finding, in order: what the publish agent hands a publisher."""
    return [render(f, suggestions=suggestions) for f in findings]
