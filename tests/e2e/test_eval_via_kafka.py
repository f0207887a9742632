"""`codereview eval --via-kafka`: the same cases through the running pipeline.

The in-process evaluation runs the processors directly; ``--via-kafka`` posts
each case to a pipeline worker and reads the findings back from ClickHouse
through the store worker. Both must score the same: the distributed pipeline
adds transport, not judgement.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from codereview.evaluation import EvalOptions, run_evaluation
from tests.e2e.conftest import Platform

pytestmark = pytest.mark.e2e

CASES = Path(__file__).resolve().parents[1] / "data" / "eval" / "cases.jsonl"


def overall(report: dict[str, Any], name: str) -> dict[str, Any]:
    (found,) = [s for s in report["systems"] if (s["system"], s["lines"]) == (name, "diff")]
    return dict(found["overall"])


def test_via_kafka_scores_what_the_processors_score(platform: Platform) -> None:
    options = EvalOptions(cases=CASES, peers=("ruff",), progress=False, timeout_s=120)
    direct = run_evaluation(platform.settings, options)
    via = run_evaluation(
        platform.settings,
        EvalOptions(cases=CASES, peers=("ruff",), progress=False, timeout_s=120, via_kafka=True),
    )
    assert via["mode"] != direct["mode"]
    assert not [w for w in via["warnings"] if "timed out" in w], via["warnings"]
    keys = ("findings", "tp", "regions", "regions_found", "cases_found")
    mine, theirs = overall(via, "ours"), overall(direct, "ours")
    assert {k: mine[k] for k in keys} == {k: theirs[k] for k in keys}
    assert mine["regions_found"] >= 1, "the fixture's planted eval( is found through Kafka too"
    # The peers run in this process either way, on the same cases.
    assert overall(via, "ruff") == overall(direct, "ruff")
