"""One valid ``Finding`` that tests change a few fields of, instead of spelling out all eighteen.

The exporters' tests (SARIF, rdjson) and the publishers' finding builder
(``tests.fakes.scm_reviews.findings``) start from it, so a field added to the
record is filled in here once. A test overrides every field it asserts on,
except the location below, which those tests share: PR 7 of ``acme/api`` at
head ``"a" * 40``, lines 3-4 of ``src/app.py``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from schemas.records import Finding

SAMPLE = Finding(
    fingerprint="0" * 32,
    event_id="ev-1",
    tenant="acme",
    repo="acme/api",
    pr_number=7,
    head_sha="a" * 40,
    path="src/app.py",
    start_line=3,
    end_line=4,
    rule_id="rule.sample",
    category="bug",
    severity="MEDIUM",
    confidence=0.8,
    message="Problem sample.",
    origin="rules",
    received_at_ms=1,
    created_at_ms=2,
)


def sample_finding(**changes: Any) -> Finding:
    """``SAMPLE`` with ``changes`` (field names of ``Finding``) applied."""
    return dataclasses.replace(SAMPLE, **changes)
