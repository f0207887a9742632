"""``codereview eval`` as a subprocess on four tiny synthetic PRs (tests/data/eval/cases.jsonl).

What the fixture plants, and so what the numbers must be:

- synthetic-planted-eval: ``return eval(expr)`` added on line 9, the expected
  region. ruff (S307) and bandit (B307) both flag it.
- synthetic-off-by-one: ``len(items) - 1`` on line 4. No linter can see it: a miss.
- synthetic-noise-and-bug: an unused ``import os`` added on line 2 (ruff F401,
  a false positive: the region is line 14, a weakened ``if value:``, a miss).
- synthetic-shell: ``shell=True`` added on line 26, the region (ruff S602,
  bandit B602). Unchanged old lines hold an ``assert`` (line 5: ruff S101,
  bandit B101) and ``import subprocess`` (line 1: bandit B404): whole-file
  false positives that the diff-only scoring drops.

Our triage runs ruff and detect-secrets only (pinned by the environment), so
it reports S307, F401 and S602: 3 findings, 2 true, 2 of 4 regions found.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from codereview.settings import ClickHouseSettings
from sinks.clickhouse import ClickHouseSink
from tests.fakes.llm_server import FakeLlmServer, Reply

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

REPO_ROOT = Path(__file__).resolve().parents[2]
CASES = REPO_ROOT / "tests" / "data" / "eval" / "cases.jsonl"


def run_eval(
    tmp_path: Path, *extra: str, env: dict[str, str] | None = None
) -> tuple[dict[str, Any], subprocess.CompletedProcess[str]]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CODEREVIEW_")}
    env = (
        clean
        | (env or {})
        | {
            "CODEREVIEW_STACK__STATE_DIR": str(tmp_path / "stack"),
            "CODEREVIEW_CLICKHOUSE__CHDB_PATH": str(tmp_path / "chdb"),
            "CODEREVIEW_TRIAGE__ANALYZERS": '["ruff", "detect-secrets"]',
        }
    )
    done = subprocess.run(
        [sys.executable, "-m", "codereview.cli", "eval", "--cases", str(CASES), *extra],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=150,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return (json.loads(done.stdout) if "--json" in extra else {}), done


def system(report: dict[str, Any], name: str, lines: str) -> dict[str, Any]:
    (found,) = [s for s in report["systems"] if (s["system"], s["lines"]) == (name, lines)]
    return found


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    root = tmp_path_factory.mktemp("eval")
    report, _ = run_eval(root, "--peers", "ruff,bandit", "--json", "--out", str(root / "r.json"))
    return report, root


@pytest.mark.parametrize(
    ("name", "lines", "findings", "tp", "regions_found", "cases_found"),
    [
        ("ours", "diff", 3, 2, 2, 2),
        ("ruff", "file", 4, 2, 2, 2),  # + the old assert (S101)
        ("ruff", "diff", 3, 2, 2, 2),
        ("bandit", "file", 4, 2, 2, 2),  # + the old assert (B101) and import (B404)
        ("bandit", "diff", 2, 2, 2, 2),
        ("peers union", "diff", 5, 4, 2, 2),
        ("peers union", "file", 8, 4, 2, 2),
    ],
)
def test_overall_numbers_are_what_the_fixture_plants(
    evaluated: tuple[dict[str, Any], Path],
    name: str,
    lines: str,
    findings: int,
    tp: int,
    regions_found: int,
    cases_found: int,
) -> None:
    report, _ = evaluated
    overall = system(report, name, lines)["overall"]
    assert (overall["findings"], overall["tp"], overall["fp"]) == (findings, tp, findings - tp)
    assert (overall["regions"], overall["regions_found"]) == (4, regions_found)
    assert (overall["cases"], overall["cases_found"]) == (4, cases_found)
    assert overall["precision"] == pytest.approx(round(tp / findings, 4))
    assert overall["recall"] == pytest.approx(regions_found / 4)


def test_per_case_planted_eval_is_found_and_the_off_by_one_is_missed(
    evaluated: tuple[dict[str, Any], Path],
) -> None:
    report, _ = evaluated
    ours = system(report, "ours", "diff")
    assert ours["by_case"]["synthetic-planted-eval"]["regions_found"] == 1
    assert ours["by_case"]["synthetic-shell"]["regions_found"] == 1
    miss = ours["by_case"]["synthetic-off-by-one"]
    assert (miss["findings"], miss["regions"], miss["regions_found"]) == (0, 1, 0)
    # the added import (line 2) is the one changed line no region reaches
    assert report["changed_lines_outside_regions"] == 1
    noise = ours["by_case"]["synthetic-noise-and-bug"]
    assert (noise["findings"], noise["tp"], noise["regions_found"]) == (1, 0, 0)


def test_per_rule_and_per_category(evaluated: tuple[dict[str, Any], Path]) -> None:
    report, _ = evaluated
    ours = system(report, "ours", "diff")
    s307 = ours["by_rule"]["ruff:S307"]
    assert (s307["findings"], s307["tp"], s307["regions"], s307["regions_found"]) == (1, 1, 4, 1)
    assert ours["by_rule"]["ruff:F401"]["precision"] == 0.0
    # precision by the finding's category, recall by the expected region's
    assert ours["by_category"]["style"]["findings"] == 1
    assert ours["by_category"]["style"]["precision"] == 0.0
    assert ours["by_category"]["correctness"]["regions_found"] == 0
    assert ours["by_category"]["security"]["regions_found"] == 2
    bandit_rules = system(report, "bandit", "file")["by_rule"]
    assert {"bandit:B307", "bandit:B602", "bandit:B101", "bandit:B404"} <= set(bandit_rules)


def test_report_file_and_clickhouse_rows(evaluated: tuple[dict[str, Any], Path]) -> None:
    report, root = evaluated
    assert json.loads((root / "r.json").read_text())["run_id"] == report["run_id"]
    assert report["stored_in"].startswith("chdb")
    sink = ClickHouseSink.from_settings(ClickHouseSettings(chdb_path=root / "chdb"))
    sink.start()
    try:
        rows = sink.query_dicts(
            "SELECT system, lines, findings, tp, regions_found, cases_found, git_sha "
            "FROM eval_results FINAL WHERE run_id = {run:String} AND scope = 'overall' "
            "ORDER BY system, lines",
            {"run": report["run_id"]},
        )
        cases = sink.query(
            "SELECT count() FROM eval_results FINAL WHERE run_id = {run:String} "
            "AND scope = 'case' AND system = 'ours'",
            {"run": report["run_id"]},
        )[1][0][0]
    finally:
        sink.close()
    by_system = {(r["system"], r["lines"]): r for r in rows}
    assert set(by_system) == {(s["system"], s["lines"]) for s in report["systems"]}
    ours = by_system[("ours", "diff")]
    assert (ours["findings"], ours["tp"], ours["regions_found"], ours["cases_found"]) == (
        3,
        2,
        2,
        2,
    )
    assert ours["git_sha"] == report["git_sha"] != ""
    assert cases == 4


def test_table_output_names_every_system(tmp_path: Path) -> None:
    _, done = run_eval(tmp_path, "--peers", "ruff", "--limit", "2")
    first_rows = done.stdout.split("by category")[0]
    assert "2 cases from" in first_rows
    for name in ("ours", "ruff"):
        assert f"{name}  " in first_rows or f" {name} " in first_rows
    assert "bandit" not in first_rows  # not asked for


def test_ours_plus_llm_adds_what_the_model_found(tmp_path: Path) -> None:
    """A scripted model that names the off-by-one: ours+llm finds one region more than ours.

    Every chunk escalates (escalate risk 0.1); the model gives the same answer
    for every PR, and on the other PRs it points outside the chunks shown, so
    those answers are dropped rather than counted as false positives.
    """
    answer = {
        "findings": [
            {
                "path": "lists/tail.py",
                "start_line": 4,
                "end_line": 4,
                "category": "bug",
                "severity": "HIGH",
                "message": "the range stops one short: the last item is never returned",
            }
        ]
    }
    with FakeLlmServer([Reply.answer(json.dumps(answer))]) as server:
        report, _ = run_eval(
            tmp_path,
            "--peers", "", "--json", "--provider", "openai-compatible",
            "--model", "scripted", "--base-url", server.openai_base_url,
            env={"CODEREVIEW_LLM__ESCALATE_RISK": "0.1"},
        )  # fmt: skip
        assert len(server.requests) == 4
    ours = system(report, "ours", "diff")["overall"]
    with_llm = system(report, "ours+llm", "diff")
    assert (with_llm["overall"]["findings"], with_llm["overall"]["tp"]) == (
        ours["findings"] + 1,
        ours["tp"] + 1,
    )
    assert with_llm["overall"]["regions_found"] == ours["regions_found"] + 1 == 3
    assert with_llm["by_case"]["synthetic-off-by-one"]["regions_found"] == 1
    assert with_llm["errors"] == 0
