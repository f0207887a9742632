"""Triage: cheap analyzer issues and chunk risk decide what deserves a strong model.

Linters report on whole files, but a review is about the change: an old
unused import three screens away from the edit is noise to the author. So an
issue survives only when it sits on, or within ``near_lines`` of, a changed
line, and it is attributed to the chunk it belongs to. Each survivor becomes
a ``Finding`` whose fingerprint hashes the code it points at (not its line
numbers), so the same issue keeps its identity across pushes and retries.

Each chunk then gets a risk in [0, 1]. The signals are independent pieces of
evidence (an issue, a dangerous construct, a large change), so they combine
as a noisy-OR, ``1 - prod(1 - w)``: every signal raises the risk, none can
push it past 1, and the reasons list says which signals fired. Chunks at or
above ``escalate_risk`` go to deep analysis and carry their text for it; the
others carry none, to keep the pr.triaged record small.

The weights put the default threshold, 0.5, at "a cheap analyzer or a
dangerous construct says so": one HIGH issue reaches it alone, while edits
that are merely bug-prone (conditions, off-by-one arithmetic, signatures)
reach ~0.4 together. On the 224 golden bug PRs, 0.5 escalates <1% of chunks,
0.3 about 14% and 0.2 about 47%: the threshold is the cost/recall knob.
Test code gets half the risk: a defect there breaks a test, not production.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from processors.analyzers import RawIssue
from processors.fingerprint import fingerprint, normalize_span
from schemas.errors import ProcessorError
from schemas.records import ChunkVerdict, CodeChunk, Finding, PullRequestEvent, TriageResult

# How far an issue's own report is to be trusted before any feedback arrives.
# Ruff's F8xx/E9 findings are nearly always real; entropy-based secret and
# bandit-style rules have many false positives; style is seldom worth a comment.
_CONFIDENCE: dict[tuple[str, str], float] = {
    ("bug", "CRITICAL"): 0.85,
    ("bug", "HIGH"): 0.8,
    ("bug", "MEDIUM"): 0.55,
    ("bug", "LOW"): 0.35,
    ("security", "CRITICAL"): 0.7,
    ("security", "HIGH"): 0.6,
    ("security", "MEDIUM"): 0.4,
    ("security", "LOW"): 0.2,
    ("security", "INFO"): 0.1,
    ("style", "LOW"): 0.15,
    ("secret", "CRITICAL"): 0.7,
    ("secret", "HIGH"): 0.6,
}
_DEFAULT_CONFIDENCE = 0.3

# Risk weight of one issue by severity; style issues count as INFO whatever
# their severity, so a pile of unused imports never escalates a chunk.
_ISSUE_WEIGHT = {"CRITICAL": 0.7, "HIGH": 0.5, "MEDIUM": 0.25, "LOW": 0.08, "INFO": 0.02}

_SQL_BUILDING = (
    r"""(?i)\b(execute(many)?|raw|query)\s*\(\s*(f["']|["'][^"']*["']\s*(%|\+|\.format\b))"""
    r"""|f["'][^"'\n]*\b(select\s.+\sfrom|insert\s+into|update\s+\w+\s+set|delete\s+from)\b"""
)
# Constructs that make a change worth a closer look even when no linter fired.
# Matched on the changed lines only: a risky line nobody touched is not news.
RISKY_CONSTRUCTS: tuple[tuple[str, float, re.Pattern[str]], ...] = tuple(
    (name, weight, re.compile(pattern, flags))
    for name, weight, pattern, flags in (
        ("eval/exec", 0.35, r"\b(eval|exec)\s*\(", 0),
        (
            "shell/subprocess",
            0.3,
            r"\bsubprocess\.|\bos\.(system|popen|exec\w*)\s*\(|shell\s*=\s*True|child_process",
            0,
        ),
        (
            "unsafe deserialization",
            0.35,
            r"\b(c?[Pp]ickle|marshal|shelve|dill)\.(loads?|Unpickler|open)\b|\byaml\.load\s*\(",
            0,
        ),
        ("sql string building", 0.35, _SQL_BUILDING, 0),
        ("except: pass", 0.25, r"except\b[^:\n]*:\s*(#[^\n]*)?\n?\s*pass\b", 0),
        ("bare except", 0.15, r"^\s*except\s*:", re.MULTILINE),
        ("tls verification off", 0.3, r"verify\s*=\s*False|CERT_NONE", 0),
        ("weak hash", 0.15, r"\b(md5|sha1)\s*\(", 0),
        ("raw html", 0.3, r"\binnerHTML\s*=|dangerouslySetInnerHTML|mark_safe\(|\|\s*safe\b", 0),
        ("todo/fixme", 0.1, r"(#|//)\s*(TODO|FIXME|XXX|HACK)\b", 0),
        # Where logic bugs live: conditions, exits, comparisons, off-by-one arithmetic.
        (
            "condition/control flow",
            0.2,
            r"^\s*(if|elif|while|for|return|raise|yield|assert|except|break|continue)\b"
            r"|[=!<>]=|\s[<>]\s|\b(and|or|not|is)\b",
            re.MULTILINE,
        ),
        ("index/off-by-one arithmetic", 0.15, r"[-+]\s*1\b|\[[^]\n]*[-+][^]\n]*\]", 0),
        ("signature change", 0.15, r"^\s*(async\s+def|def|class|func|function)\s", re.MULTILINE),
    )
)
# A change this many lines long is as risky as its size can make it.
_SIZE_FULL_AT = 60
_SIZE_MAX_WEIGHT = 0.3
# A defect in test code breaks a test, not production: half the risk.
_TEST_CODE_FACTOR = 0.5
_TEST_PATH = re.compile(
    r"(^|/)(tests?|testing|__tests__|spec)/|(^|/)test_[^/]*$|_test\.\w+$|\.(spec|test)\.\w+$"
)


def triage_event(
    event: PullRequestEvent,
    chunks: list[CodeChunk],
    issues: list[RawIssue],
    *,
    now_ms: int,
    escalate_risk: float = 0.5,
    near_lines: int = 3,
    carry_text_risk: float | None = None,
) -> tuple[TriageResult, list[Finding]]:
    """The triage verdict for one PR revision and its cheap findings, deduplicated.

    ``chunks`` are the event's chunks (from ``chunk_event``), ``issues`` what
    the analyzers reported on the event's head files. Verdicts carry their
    chunk's text from ``carry_text_risk`` up (default: only escalated ones),
    so a cheap model can be asked about borderline chunks downstream.
    """
    if not 0.0 <= escalate_risk <= 1.0:
        raise ValueError(f"escalate_risk must be within [0, 1], got {escalate_risk}")
    carry_from = escalate_risk if carry_text_risk is None else min(carry_text_risk, escalate_risk)
    if near_lines < 0:
        raise ValueError(f"near_lines cannot be negative, got {near_lines}")
    strangers = {c.event_id for c in chunks if c.event_id != event.event_id}
    if strangers:
        raise ProcessorError(f"chunks of other events {sorted(strangers)} in {event.event_id}")

    by_chunk: dict[str, list[RawIssue]] = {c.chunk_id: [] for c in chunks}
    by_path: dict[str, list[CodeChunk]] = {}
    for each in chunks:
        by_path.setdefault(each.path, []).append(each)
    findings: dict[str, Finding] = {}
    # (chunk, rule, normalized span) -> lines seen: identical code twice in one
    # chunk is two findings, the same issue reported twice (same lines) is one.
    occurrences: dict[tuple[str, str, str], list[tuple[int, int]]] = {}
    for issue in sorted(issues, key=lambda i: (i.path, i.line, i.end_line, i.rule_id)):
        if issue.rule_id in MUTED_IN_TESTS and is_test_path(issue.path):
            continue
        chunk = attribute(issue, by_path.get(issue.path, []), near_lines=near_lines)
        if chunk is None:
            continue
        by_chunk[chunk.chunk_id].append(issue)
        span = _code_span(event, chunk, issue)
        seen = occurrences.setdefault((chunk.chunk_id, issue.rule_id, normalize_span(span)), [])
        if (issue.line, issue.end_line) not in seen:
            seen.append((issue.line, issue.end_line))
        anchor = f"{chunk.symbol or ''}#{seen.index((issue.line, issue.end_line))}"
        finding = _finding(event, issue, span, anchor, now_ms=now_ms)
        findings.setdefault(finding.fingerprint, finding)

    verdicts = [
        _verdict(
            chunk, by_chunk[chunk.chunk_id], escalate_risk=escalate_risk, carry_from=carry_from
        )
        for chunk in chunks
    ]
    result = TriageResult(
        event_id=event.event_id,
        tenant=event.tenant,
        repo=event.repo,
        pr_number=event.pr_number,
        head_sha=event.head_sha,
        chunks=verdicts,
        received_at_ms=event.received_at_ms,
        triaged_at_ms=now_ms,
        finding_fingerprints=list(findings),
        source=event.source,
    )
    return result, list(findings.values())


# Rules that are the point of test code rather than a defect in it: asserts,
# throwaway passwords and temp paths in fixtures, non-crypto randomness.
# Reporting them there is the noise reviewers are blamed for.
MUTED_IN_TESTS = frozenset(
    {
        "ruff:S101", "ruff:S105", "ruff:S106", "ruff:S107", "ruff:S108", "ruff:S311",
        "bandit:B101", "bandit:B105", "bandit:B106", "bandit:B107", "bandit:B108",
        "bandit:B311", "rules:hardcoded-temp-path", "rules:builtin-shadowed",
    }
)  # fmt: skip


def focus_lines(chunks: Sequence[CodeChunk], *, near_lines: int = 3) -> dict[str, set[int]]:
    """The lines whose issues can survive triage: changed lines +- ``near_lines``.

    Analyzers that work line by line take this to skip the rest of a file;
    the result is the same because triage drops every other issue anyway.
    """
    focus: dict[str, set[int]] = {}
    for chunk in chunks:
        lines = focus.setdefault(chunk.path, set())
        for line in chunk.changed_lines:
            lines.update(range(max(1, line - near_lines), line + near_lines + 1))
    return focus


def attribute(issue: RawIssue, chunks: Sequence[CodeChunk], *, near_lines: int) -> CodeChunk | None:
    """The chunk an issue belongs to, or None when it is not near any changed line.

    Among the chunks of the issue's file with a changed line within
    ``near_lines`` of the issue, the smallest one containing the issue wins
    (the function it is in), else the one whose changed line is closest.
    """
    lo, hi = issue.line - near_lines, issue.end_line + near_lines
    candidates = [
        c for c in chunks if c.path == issue.path and any(lo <= n <= hi for n in c.changed_lines)
    ]
    if not candidates:
        return None
    containing = [c for c in candidates if c.start_line <= issue.line <= c.end_line]
    if containing:
        return min(containing, key=lambda c: (c.end_line - c.start_line, c.start_line))
    return min(candidates, key=lambda c: (_distance(issue, c.changed_lines), c.start_line))


def score_chunk(chunk: CodeChunk, issues: Iterable[RawIssue]) -> tuple[float, list[str]]:
    """Risk in [0, 1] of one chunk and the reasons behind it, strongest first."""
    signals: list[tuple[float, str]] = []
    seen_rules: set[str] = set()
    for issue in issues:
        if issue.rule_id in seen_rules:  # the same rule again is no new evidence
            continue
        seen_rules.add(issue.rule_id)
        severity = "INFO" if issue.category == "style" else issue.severity
        signals.append((_ISSUE_WEIGHT[severity], f"{issue.rule_id} ({issue.severity})"))
    changed_text = "\n".join(changed_line_texts(chunk))
    for name, weight, pattern in RISKY_CONSTRUCTS:
        if pattern.search(changed_text):
            signals.append((weight, f"construct: {name}"))
    size = len(chunk.changed_lines)
    size_weight = _SIZE_MAX_WEIGHT * min(1.0, size / _SIZE_FULL_AT)
    if size_weight >= 0.05:
        signals.append((size_weight, f"size: {size} changed lines"))
    remaining = 1.0
    for weight, _ in signals:
        remaining *= 1.0 - weight
    signals.sort(key=lambda s: -s[0])
    risk = 1.0 - remaining
    reasons = [reason for _, reason in signals]
    if signals and is_test_path(chunk.path):
        risk *= _TEST_CODE_FACTOR
        reasons.append("test code (risk halved)")
    return round(risk, 4), reasons


def is_test_path(path: str) -> bool:
    """Whether ``path`` looks like test code by the common layouts and names."""
    return _TEST_PATH.search(path) is not None


def changed_line_texts(chunk: CodeChunk) -> list[str]:
    """The text of the chunk's changed lines that fall inside it, in order."""
    lines = chunk.text.split("\n")
    return [
        lines[n - chunk.start_line]
        for n in sorted(set(chunk.changed_lines))
        if 0 <= n - chunk.start_line < len(lines)
    ]


def confidence_for(category: str, severity: str) -> float:
    """The static prior trust of a triage finding until feedback teaches otherwise."""
    return _CONFIDENCE.get((category, severity), _DEFAULT_CONFIDENCE)


def _verdict(
    chunk: CodeChunk, issues: list[RawIssue], *, escalate_risk: float, carry_from: float
) -> ChunkVerdict:
    risk, reasons = score_chunk(chunk, issues)
    escalate = risk >= escalate_risk
    return ChunkVerdict(
        chunk_id=chunk.chunk_id,
        path=chunk.path,
        language=chunk.language,
        start_line=chunk.start_line,
        end_line=chunk.end_line,
        risk=risk,
        escalate=escalate,
        symbol=chunk.symbol,
        reasons=reasons,
        text=chunk.text if escalate or risk >= carry_from else "",
        changed_lines=sorted(set(chunk.changed_lines)),
    )


def _finding(
    event: PullRequestEvent, issue: RawIssue, span: str, anchor: str, *, now_ms: int
) -> Finding:
    return Finding(
        fingerprint=fingerprint(event.tenant, event.repo, issue.path, span, issue.rule_id, anchor),
        event_id=event.event_id,
        tenant=event.tenant,
        repo=event.repo,
        pr_number=event.pr_number,
        head_sha=event.head_sha,
        path=issue.path,
        start_line=issue.line,
        end_line=issue.end_line,
        rule_id=issue.rule_id,
        category=issue.category,
        severity=issue.severity,
        confidence=confidence_for(issue.category, issue.severity),
        message=issue.message,
        origin="triage",
        received_at_ms=event.received_at_ms,
        created_at_ms=now_ms,
        source=event.source,
    )


def _code_span(event: PullRequestEvent, chunk: CodeChunk, issue: RawIssue) -> str:
    """The issue's lines from the head file, else from the chunk when the file is absent."""
    content = event.file_content(issue.path)
    if content is not None:
        lines, first = content.split("\n"), 1
    else:
        lines, first = chunk.text.split("\n"), chunk.start_line
    lo = max(issue.line - first, 0)
    hi = min(issue.end_line - first + 1, len(lines))
    return "\n".join(lines[lo:hi])


def _distance(issue: RawIssue, changed_lines: Iterable[int]) -> int:
    return min(max(issue.line - n, n - issue.end_line, 0) for n in changed_lines)
