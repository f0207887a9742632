"""Triage cost per PR: our analyzers in-process against the peers' command lines.

For each golden PR, in the same run: our triage exactly as the pipeline
agent does it (``chunk_event`` + ``focus_lines`` + the configured analyzers
+ ``triage_event``, through ``codereview.evaluation.triage_case``), and the
ruff, bandit and semgrep command lines on the same head files, once per PR
each (``codereview.peers``). The "cli peers" cost of a PR is the sum of the
three calls: what running those tools on every PR would cost instead.
A warm-up pass (imports, first subprocess starts, file caches) runs first and
is not measured.

    .venv/bin/python bench/triage.py [--limit N] [--cases PATH]

Prints one JSON line: {"bench": "triage", "prs", "ms_per_pr_p50", "ms_per_pr_p95",
"cli_peers_ms_per_pr_p50", "cli_peers_ms_per_pr_p95", "ratio_vs_cli_peers"
(peers p50 / ours p50), "<peer>_ms_p50"...}. semgrep costs ~1.5 s a call, so
a full 224-PR run takes several minutes; ``--limit`` for a quick one.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from codereview.evaluation import case_event, load_cases, triage_case, triage_config  # noqa: E402
from codereview.peers import build_peers, run_peers  # noqa: E402
from codereview.settings import Settings  # noqa: E402
from processors.analyzers import build_analyzers  # noqa: E402

GOLDEN = Path(__file__).resolve().parents[1] / ".." / "shared" / "golden" / "bugsinpy.jsonl"
WARMUP = 3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=Path, default=GOLDEN)
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--peers", default="ruff,bandit,semgrep")
    args = parser.parse_args()

    settings = Settings()
    config = triage_config(settings)
    analyzers = build_analyzers(config.analyzers)
    peers, warnings = build_peers([p for p in args.peers.split(",") if p])
    cases = load_cases(args.cases.resolve(), args.limit)
    events = [case_event(c, number=i, tenant="bench") for i, c in enumerate(cases, 1)]

    for event, case in zip(events[:WARMUP], cases[:WARMUP], strict=True):
        triage_case(event, analyzers, config)
        run_peers(peers, case.files)

    ours_ms: list[float] = []
    peer_ms: dict[str, list[float]] = {p.name: [] for p in peers}
    for event, case in tqdm(list(zip(events, cases, strict=True)), desc="triage", unit="PR"):
        started = time.perf_counter()
        triage_case(event, analyzers, config)
        ours_ms.append((time.perf_counter() - started) * 1000)
        for name, run in run_peers(peers, case.files).items():
            peer_ms[name].append(run.seconds * 1000)
    cli_ms = [sum(per_pr) for per_pr in zip(*peer_ms.values(), strict=True)] if peers else []
    ours_p50 = _pct(ours_ms, 50)
    cli_p50 = _pct(cli_ms, 50)
    result = {
        "bench": "triage",
        "prs": len(cases),
        "analyzers": config.analyzers,
        "peers": [p.name for p in peers],
        "ms_per_pr_p50": ours_p50,
        "ms_per_pr_p95": _pct(ours_ms, 95),
        "cli_peers_ms_per_pr_p50": cli_p50,
        "cli_peers_ms_per_pr_p95": _pct(cli_ms, 95),
        "ratio_vs_cli_peers": round(cli_p50 / ours_p50, 2) if ours_p50 and cli_p50 else None,
        **{f"{name}_ms_p50": _pct(ms, 50) for name, ms in peer_ms.items()},
    }
    if warnings or config.warnings:
        result["warnings"] = [*config.warnings, *warnings]
    print(json.dumps(result))


def _pct(values: list[float], pct: int) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return round(values[0], 2)
    return round(statistics.quantiles(values, n=100, method="inclusive")[pct - 1], 2)


if __name__ == "__main__":
    main()
