"""``codereview eval``: review quality on labelled cases, next to the peers, in one run.

Each case (the golden JSONL format: ``id``, ``repo``, ``diff``,
``files_after``, ``expected``) becomes the PullRequestEvent a normalizer
would build, and goes through the SAME processors the pipeline agent runs
(``chunk_event``, ``focus_lines``, the configured analyzers,
``triage_event``), or, with ``--via-kafka``, through the running pipeline
itself, its findings read back from ClickHouse. The peers (bandit, ruff,
semgrep as their own command lines) run on the same cases in the same run,
scored on whole files and on the diff only (lines within 3 of a change):
a peer's whole-file score is what a team using it alone would see, the
diff-only score is the fair comparison with a reviewer that only comments
on the change.

Scores follow ``processors/scoring.py`` (the golden matching rule). Results
print as tables (or JSON), go to a JSON file and to ClickHouse
(``eval_results``), stamped with a run id and the git revision, so quality
can be tracked across commits.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from codereview.eval_results import git_revision
from codereview.peers import build_peers, run_peers
from codereview.settings import LlmSettings, Settings
from processors.analyzers import ANALYZER_NAMES, Analyzer, build_analyzers
from processors.chunking import chunk_event
from processors.diff import parse_diff
from processors.scoring import (
    CaseOutcome,
    Counts,
    Detection,
    Region,
    Score,
    lines_outside,
    restrict_to_lines,
    score_cases,
)
from processors.triage import focus_lines, triage_event
from schemas.errors import CodeReviewError, ProcessorError
from schemas.records import FileSnapshot, Finding, PullRequestEvent, TriageResult

FALLBACK_ANALYZERS = ["ruff", "detect-secrets"]
DIFF_MARGIN = 3  # "diff-only": lines within this many of a changed line


class EvalError(CodeReviewError):
    """The cases file or the evaluation setup is unusable; the message says why."""


@dataclass(frozen=True)
class EvalCase:
    case_id: str
    repo: str
    diff: str
    files: dict[str, str]
    regions: tuple[Region, ...]
    head_sha: str = ""
    base_sha: str = ""


@dataclass(frozen=True)
class EvalOptions:
    cases: Path
    limit: int | None = None
    peers: Sequence[str] = ("bandit", "ruff", "semgrep")
    provider: str = ""
    model: str = ""
    base_url: str = ""
    via_kafka: bool = False
    timeout_s: float = 600.0
    progress: bool = True


@dataclass
class SystemRun:
    """One system's detections per case, its cost, and how it was restricted."""

    name: str
    lines: str  # "diff" or "file"
    detections: dict[str, list[Detection]]
    seconds: float = 0.0
    errors: int = 0


@dataclass(frozen=True)
class TriageConfig:
    analyzers: list[str]
    escalate_risk: float
    near_lines: int
    warnings: list[str] = field(default_factory=list)


def load_cases(path: Path, limit: int | None = None) -> list[EvalCase]:
    """Cases from a JSONL file in the golden format, in file order."""
    if not path.is_file():
        raise EvalError(f"no cases file at {path}")
    cases: list[EvalCase] = []
    with path.open(encoding="utf-8") as fh:
        for number, line in enumerate(fh, start=1):
            if limit is not None and len(cases) >= limit:
                break
            if not line.strip():
                continue
            try:
                raw = json.loads(line)
                regions = tuple(
                    Region(e["path"], int(e["line"]), int(e["end_line"]), e.get("category", ""))
                    for e in raw["expected"]
                )
                cases.append(
                    EvalCase(
                        raw["id"], raw["repo"], raw["diff"], dict(raw["files_after"]), regions,
                        raw.get("head_commit", ""), raw.get("base_commit", ""),
                    )
                )  # fmt: skip
            except (KeyError, TypeError, ValueError) as exc:
                raise EvalError(f"{path}:{number}: not a case: {exc!r}") from exc
    return cases


def case_event(case: EvalCase, *, number: int, tenant: str, repo: str = "") -> PullRequestEvent:
    """The PullRequestEvent a normalizer builds for ``case``: its diff and changed head files."""
    changed = {f.path for f in parse_diff(case.diff) if f.status != "deleted" and not f.is_binary}
    return PullRequestEvent(
        event_id=f"eval:{case.case_id}",
        tenant=tenant,
        source="eval",
        repo=repo or case.repo,
        pr_number=number,
        action="opened",
        head_sha=case.head_sha or f"eval-{number}",
        base_sha=case.base_sha,
        diff=case.diff,
        received_at_ms=0,
        title=case.case_id,
        files=[FileSnapshot(p, case.files.get(p)) for p in sorted(changed)],
    )


def triage_config(settings: Settings) -> TriageConfig:
    """The triage knobs from ``settings.triage``, or the pipeline's defaults until it exists."""
    section = getattr(settings, "triage", None)
    warnings = []
    names = list(getattr(section, "analyzers", None) or FALLBACK_ANALYZERS)
    if section is None:
        warnings.append(f"settings have no triage section yet: analyzers {names}")
    unknown = [n for n in names if n not in ANALYZER_NAMES]
    if unknown:
        warnings.append(f"analyzers {unknown} are not available here and were skipped")
    return TriageConfig(
        [n for n in names if n in ANALYZER_NAMES],
        float(getattr(section, "escalate_risk", settings.llm.escalate_risk)),
        int(getattr(section, "near_lines", 2)),
        warnings,
    )


def triage_case(
    event: PullRequestEvent, analyzers: Sequence[Analyzer], config: TriageConfig
) -> tuple[TriageResult, list[Finding]]:
    """What the pipeline's triage agent does with one event (``streams.pipeline._triage``)."""
    chunks = chunk_event(event)
    files = {s.path: s.content for s in event.files if s.content is not None}
    focus = focus_lines(chunks, near_lines=config.near_lines)
    issues = [issue for a in analyzers for issue in a.analyze(files, focus)]
    return triage_event(
        event,
        chunks,
        issues,
        now_ms=int(time.time() * 1000),
        escalate_risk=config.escalate_risk,
        near_lines=config.near_lines,
    )


async def deep_findings(
    result: TriageResult, provider: Any, *, max_output_tokens: int, budget_tokens: int = 6000
) -> list[Finding]:
    """Deep analysis of one PR's escalated chunks, as the analyze agent asks it.

    The same redaction, prompt, one repair call and answer mapping as
    ``streams.deep_review``; without Milvus context, gate, cache or budgets,
    which depend on the running platform (``--via-kafka`` measures those).
    """
    import dataclasses

    from processors.analysis import (
        build_prompt,
        findings_from_answer,
        parse_answer,
        repair_message,
    )
    from processors.redaction import redact
    from schemas.errors import ProcessorError

    escalated = [v for v in result.chunks if v.escalate and v.text]
    shown = [dataclasses.replace(v, text=redact(v.text).text) for v in escalated]
    prompt = build_prompt(shown, repo=result.repo, context=[], budget_tokens=budget_tokens)
    if not prompt.included_chunk_ids:
        return []
    completion = await provider.complete(prompt.system, prompt.user, max_tokens=max_output_tokens)
    try:
        answer = parse_answer(completion.text)
    except ProcessorError as exc:
        user = repair_message(prompt.user, completion.text, str(exc))
        repaired = await provider.complete(prompt.system, user, max_tokens=max_output_tokens)
        answer = parse_answer(repaired.text)
    included = set(prompt.included_chunk_ids)
    return findings_from_answer(
        answer,
        [v for v in escalated if v.chunk_id in included],
        result,
        model=provider.model,
        prompt_version=prompt.version,
        now_ms=int(time.time() * 1000),
    )


def as_detection(finding: Finding) -> Detection:
    return Detection(
        finding.path, finding.start_line, finding.end_line, finding.rule_id, finding.category
    )


def run_evaluation(settings: Settings, options: EvalOptions) -> dict[str, Any]:
    """Run every system on the cases and score them; the report is plain JSON-able data."""
    cases = load_cases(options.cases, options.limit)
    if not cases:
        raise EvalError(f"no cases in {options.cases}")
    tenant = settings.source.tenant
    events = {c.case_id: case_event(c, number=i, tenant=tenant) for i, c in enumerate(cases, 1)}
    config = triage_config(settings)
    warnings = list(config.warnings)
    systems: list[SystemRun] = []
    if options.via_kafka:
        from codereview.eval_pipeline import run_via_pipeline

        systems += run_via_pipeline(settings, cases, options, warnings)
        warnings.append("analyzers: the running workers' settings apply, not this process'")
    else:
        systems += _run_ours(events, config, options, settings.llm, warnings)
    focus = {cid: focus_lines(chunk_event(e), near_lines=DIFF_MARGIN) for cid, e in events.items()}
    systems += _run_peers(cases, focus, options, warnings)
    changed = {cid: focus_lines(chunk_event(e), near_lines=0) for cid, e in events.items()}
    outside = sum(lines_outside(changed[c.case_id], c.regions) for c in cases)
    if not outside:
        warnings.append(
            "every changed line is within 3 lines of an expected region: any finding near "
            "the diff hits, so diff-only precision is 100% by construction on these cases"
        )
    return {
        "run_id": uuid.uuid4().hex,
        "at_ms": int(time.time() * 1000),
        "cases_file": str(options.cases),
        "cases": len(cases),
        "git_sha": git_revision(),
        "mode": "via-kafka" if options.via_kafka else "in-process",
        "analyzers": config.analyzers,
        "escalate_risk": config.escalate_risk,
        "near_lines": config.near_lines,
        "changed_lines_outside_regions": outside,
        "warnings": warnings,
        "systems": [_system_report(s, cases) for s in systems],
    }


def _progress(items: Sequence[Any], desc: str, options: EvalOptions) -> Any:
    return tqdm(items, desc=desc, unit="PR", disable=not options.progress, leave=False)


def _run_ours(
    events: dict[str, PullRequestEvent],
    config: TriageConfig,
    options: EvalOptions,
    llm: LlmSettings,
    warnings: list[str],
) -> list[SystemRun]:
    analyzers = build_analyzers(config.analyzers)
    ours = SystemRun("ours", "diff", {})
    results: dict[str, TriageResult] = {}
    for case_id, event in _progress(list(events.items()), "ours", options):
        started = time.perf_counter()
        try:
            result, findings = triage_case(event, analyzers, config)
        except ProcessorError as exc:
            warnings.append(f"ours failed on {case_id}: {exc}")
            ours.errors += 1
            result, findings = None, []
        ours.seconds += time.perf_counter() - started
        ours.detections[case_id] = [as_detection(f) for f in findings]
        if result is not None:
            results[case_id] = result
    if not options.provider:
        return [ours]
    return [ours, _run_llm(ours, results, options, llm, warnings)]


def _run_llm(
    ours: SystemRun,
    results: dict[str, TriageResult],
    options: EvalOptions,
    llm: LlmSettings,
    warnings: list[str],
) -> SystemRun:
    from codereview.models import tiers_from_settings

    with_llm = SystemRun("ours+llm", "diff", {k: list(v) for k, v in ours.detections.items()})
    with_llm.seconds = ours.seconds
    configured = llm.model_copy(
        update={"provider": options.provider, "model": options.model, "base_url": options.base_url}
    )
    provider = tiers_from_settings(configured).strong

    async def deep_all() -> None:
        for case_id, result in _progress(list(results.items()), "ours+llm", options):
            started = time.perf_counter()
            try:
                found = await deep_findings(
                    result,
                    provider,
                    max_output_tokens=llm.max_output_tokens,
                    budget_tokens=llm.prompt_budget_tokens,
                )
            except CodeReviewError as exc:  # ProviderError or an unreadable answer
                warnings.append(f"deep analysis failed on {case_id}: {exc}")
                with_llm.errors += 1
                found = []
            with_llm.seconds += time.perf_counter() - started
            with_llm.detections[case_id] += [as_detection(f) for f in found]

    asyncio.run(deep_all())
    return with_llm


def _run_peers(
    cases: list[EvalCase],
    focus: dict[str, dict[str, set[int]]],
    options: EvalOptions,
    warnings: list[str],
) -> list[SystemRun]:
    peers, problems = build_peers(options.peers)
    warnings.extend(problems)
    whole = {p.name: SystemRun(p.name, "file", {}) for p in peers}
    for case in _progress(cases, "peers", options):
        for name, call in run_peers(peers, case.files).items():
            whole[name].detections[case.case_id] = call.detections
            whole[name].seconds += call.seconds
            if call.error:
                whole[name].errors += 1
                warnings.append(f"{name} failed on {case.case_id}: {call.error}")
    runs: list[SystemRun] = []
    for name, full in whole.items():
        diff_only = {cid: restrict_to_lines(d, focus[cid]) for cid, d in full.detections.items()}
        runs += [full, SystemRun(name, "diff", diff_only, full.seconds, full.errors)]
    if len(whole) > 1:
        # The union's recall is the bar to clear, on whole files and near the diff.
        for lines in ("file", "diff"):
            union = SystemRun("peers union", lines, {c.case_id: [] for c in cases})
            for each in runs:
                if each.lines == lines:
                    union.seconds += each.seconds
                    for cid, found in each.detections.items():
                        union.detections[cid] += found
            runs.append(union)
    return runs


def _system_report(run: SystemRun, cases: list[EvalCase]) -> dict[str, Any]:
    outcomes = [
        CaseOutcome(c.case_id, tuple(run.detections.get(c.case_id, ())), c.regions) for c in cases
    ]
    score: Score = score_cases(outcomes)
    return {
        "system": run.name,
        "lines": run.lines,
        "ms_per_pr": round(run.seconds * 1000 / len(cases), 2),
        "errors": run.errors,
        "overall": counts_dict(score.overall),
        "by_category": {k: counts_dict(v) for k, v in sorted(score.by_category.items())},
        "by_rule": {k: counts_dict(v) for k, v in sorted(score.by_rule.items())},
        "by_case": {k: counts_dict(v) for k, v in score.by_case.items()},
    }


def counts_dict(c: Counts) -> dict[str, Any]:
    def r(x: float | None) -> float | None:
        return None if x is None else round(x, 4)

    return {
        "findings": c.findings, "tp": c.tp, "fp": c.fp, "regions": c.regions,
        "regions_found": c.regions_found, "cases": c.cases, "cases_found": c.cases_found,
        "precision": r(c.precision), "recall": r(c.recall), "recall_cases": r(c.case_recall),
        "f1": r(c.f1),
    }  # fmt: skip
