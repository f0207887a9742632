"""Triage: which issues survive, how they become findings, which chunks escalate."""

from __future__ import annotations

import dataclasses
import difflib
import json
from pathlib import Path

import pytest

from processors.analyzers import RawIssue, build_analyzers
from processors.chunking import chunk_event
from processors.fingerprint import fingerprint
from processors.triage import attribute, score_chunk, triage_event
from schemas.errors import ProcessorError
from schemas.records import CodeChunk, FileSnapshot, PullRequestEvent

REPO_ROOT = Path(__file__).resolve().parents[3]
DATA = REPO_ROOT / "tests" / "data" / "triage"
GOLDEN = REPO_ROOT / ".." / "shared" / "golden" / "bugsinpy.jsonl"
PATH = "shop/service.py"
NOW = 1_700_000_000_000


def make_event(
    before: str, after: str, path: str = PATH, event_id: str = "ev-1"
) -> PullRequestEvent:
    diff = "".join(
        difflib.unified_diff(
            before.splitlines(True), after.splitlines(True), f"a/{path}", f"b/{path}"
        )
    )
    return PullRequestEvent(
        event_id=event_id,
        tenant="acme",
        source="github",
        repo="acme/shop",
        pr_number=7,
        action="opened",
        head_sha="abc123",
        diff=diff,
        received_at_ms=NOW - 500,
        files=[FileSnapshot(path, after)],
    )


@pytest.fixture(scope="module")
def service() -> tuple[PullRequestEvent, list[CodeChunk], list[RawIssue]]:
    """The service PR: eval and a typo added, a pre-existing assert left untouched."""
    before = (DATA / "service_before.py.txt").read_text()
    after = (DATA / "service_after.py.txt").read_text()
    event = make_event(before, after)
    issues = [
        i for a in build_analyzers(["ruff", "detect-secrets"]) for i in a.analyze({PATH: after})
    ]
    return event, chunk_event(event), issues


def make_chunk(start: int, lines: list[str], changed: list[int], path: str = PATH) -> CodeChunk:
    return CodeChunk(
        chunk_id=f"{path}:{start}",
        event_id="ev-1",
        tenant="acme",
        repo="acme/shop",
        pr_number=7,
        head_sha="abc123",
        path=path,
        language="python",
        start_line=start,
        end_line=start + len(lines) - 1,
        changed_lines=changed,
        text="\n".join(lines),
        text_hash="h",
        received_at_ms=NOW - 500,
    )


def issue(line: int, rule: str = "ruff:B006", severity: str = "MEDIUM", category: str = "bug",
          end_line: int | None = None, path: str = PATH) -> RawIssue:  # fmt: skip
    return RawIssue(path, line, end_line or line, rule, category, severity, "m")


def test_service_pr_keeps_issues_near_changes_only(service) -> None:
    event, chunks, issues = service
    assert any(i.rule_id == "ruff:S101" for i in issues)  # the untouched assert was reported
    result, findings = triage_event(event, chunks, issues, now_ms=NOW)
    kept = {(f.rule_id, f.start_line) for f in findings}
    assert kept == {
        ("ruff:S307", 11),  # eval added on line 11
        ("ruff:F821", 19),  # `totl` typo added on line 19
        ("ruff:F401", 5),  # `import os` added on line 5
        ("ruff:F401", 3),  # `json` now unused, 2 lines from the change on line 1/5
    }
    assert result.finding_fingerprints == [f.fingerprint for f in findings]


def test_service_pr_findings_are_complete_records(service) -> None:
    event, chunks, issues = service
    _, findings = triage_event(event, chunks, issues, now_ms=NOW)
    typo = next(f for f in findings if f.rule_id == "ruff:F821")
    typo_chunk = next(c for c in chunks if c.start_line <= typo.start_line <= c.end_line)
    assert typo.fingerprint == fingerprint(
        "acme", "acme/shop", PATH, "    return totl", "ruff:F821", f"{typo_chunk.symbol or ''}#0"
    )
    assert (typo.origin, typo.category, typo.severity) == ("triage", "bug", "HIGH")
    assert (typo.event_id, typo.head_sha, typo.pr_number) == ("ev-1", "abc123", 7)
    assert (typo.created_at_ms, typo.received_at_ms) == (NOW, NOW - 500)
    assert typo.confidence > next(f for f in findings if f.rule_id == "ruff:F401").confidence


def test_service_pr_escalates_the_risky_chunks_with_their_text(service) -> None:
    event, chunks, issues = service
    result, _ = triage_event(event, chunks, issues, now_ms=NOW)
    by_symbol = {v.symbol: v for v in result.chunks}
    assert [v.chunk_id for v in result.chunks] == [c.chunk_id for c in chunks]
    load = by_symbol["load_order"]
    assert load.escalate and "    data = eval(raw)" in load.text
    assert "construct: eval/exec" in load.reasons and "ruff:S307 (HIGH)" in load.reasons
    assert by_symbol["order_total"].escalate
    ship = by_symbol["ship"]
    assert not ship.escalate and ship.text == "" and ship.risk < 0.5
    assert (result.triaged_at_ms, result.received_at_ms) == (NOW, NOW - 500)


@pytest.mark.parametrize(
    ("issue_line", "near", "kept"),
    [
        (10, 2, True),  # on the changed line
        (12, 2, True),  # two lines below
        (8, 2, True),  # two lines above
        (13, 2, False),  # three lines below
        (13, 3, True),
        (10, 0, True),
        (11, 0, False),
    ],
)
def test_issue_kept_only_near_a_changed_line(issue_line: int, near: int, kept: bool) -> None:
    chunk = make_chunk(1, [f"x{n} = {n}" for n in range(1, 21)], changed=[10])
    assert (attribute(issue(issue_line), [chunk], near_lines=near) is chunk) is kept


def test_multi_line_issue_is_near_when_any_of_its_lines_is() -> None:
    chunk = make_chunk(1, ["pass"] * 30, changed=[20])
    assert attribute(issue(5, end_line=18), [chunk], near_lines=2) is chunk
    assert attribute(issue(5, end_line=17), [chunk], near_lines=2) is None


def test_issue_goes_to_the_innermost_chunk_containing_it() -> None:
    module = make_chunk(1, ["pass"] * 40, changed=[3, 12], path=PATH)
    function = make_chunk(10, ["pass"] * 5, changed=[12])
    assert attribute(issue(12), [module, function], near_lines=2) is function
    assert attribute(issue(3), [module, function], near_lines=2) is module


def test_issue_in_another_file_is_dropped() -> None:
    chunk = make_chunk(1, ["pass"] * 5, changed=[2])
    assert attribute(issue(2, path="other.py"), [chunk], near_lines=2) is None


def test_a_repeated_report_is_one_finding_but_repeated_code_is_two() -> None:
    lines = ["x = eval(s)", "y = 1", "x = eval(s)"]
    chunk = make_chunk(1, lines, changed=[1, 3])
    event = make_event("", "\n".join(lines) + "\n")
    issues = [issue(1, "ruff:S307"), issue(1, "ruff:S307"), issue(3, "ruff:S307")]
    result, findings = triage_event(event, [chunk], issues, now_ms=NOW)
    # The same line reported twice is one finding; the same code on line 3 is another.
    assert sorted(f.start_line for f in findings) == [1, 3]
    assert result.finding_fingerprints == [f.fingerprint for f in findings]


def test_identical_code_keeps_its_identity_when_lines_move() -> None:
    lines = ["x = eval(s)", "y = 1", "x = eval(s)"]
    moved = ["# header", *lines]
    first = triage_event(
        make_event("", "\n".join(lines) + "\n"),
        [make_chunk(1, lines, changed=[1, 3])],
        [issue(1, "ruff:S307"), issue(3, "ruff:S307")],
        now_ms=NOW,
    )[1]
    second = triage_event(
        make_event("", "\n".join(moved) + "\n"),
        [make_chunk(2, lines, changed=[2, 4])],
        [issue(2, "ruff:S307"), issue(4, "ruff:S307")],
        now_ms=NOW,
    )[1]
    assert [f.fingerprint for f in first] == [f.fingerprint for f in second]


@pytest.mark.parametrize(
    ("changed_line", "construct"),
    [
        ("    data = eval(payload)", "eval/exec"),
        ("    subprocess.run(cmd, shell=True)", "shell/subprocess"),
        ("    obj = pickle.loads(blob)", "unsafe deserialization"),
        ('    cur.execute(f"SELECT * FROM t WHERE id = {uid}")', "sql string building"),
        ('    cur.execute("DELETE FROM t WHERE id = %s" % uid)', "sql string building"),
        ("    except Exception: pass", "except: pass"),
        ("    requests.get(url, verify=False)", "tls verification off"),
        ("    # TODO: handle the empty case", "todo/fixme"),
        ("    if count >= limit:", "condition/control flow"),
        ("    return items[n - 1]", "index/off-by-one arithmetic"),
        ("def f(x, y=None):", "signature change"),
    ],
)
def test_risky_constructs_on_changed_lines_raise_risk(changed_line: str, construct: str) -> None:
    plain = make_chunk(1, ["def f():", "    x = 1", "    return x"], changed=[2])
    risky = make_chunk(1, ["def f():", changed_line, "    return x"], changed=[2])
    base, _ = score_chunk(plain, [])
    risk, reasons = score_chunk(risky, [])
    assert f"construct: {construct}" in reasons
    assert risk > base


@pytest.mark.parametrize(
    ("path", "is_test"),
    [
        ("tests/unit/test_shop.py", True),
        ("pkg/test_utils.py", True),
        ("src/app/handler_test.go", True),
        ("web/src/cart.spec.ts", True),
        ("shop/service.py", False),
        ("shop/contest.py", False),
        ("attestation/sign.py", False),
    ],
)
def test_test_code_gets_half_the_risk(path: str, is_test: bool) -> None:
    lines = ["def f():", "    data = eval(payload)", "    return data"]
    production, _ = score_chunk(make_chunk(1, lines, changed=[2]), [])
    risk, reasons = score_chunk(make_chunk(1, lines, changed=[2], path=path), [])
    assert (risk == pytest.approx(production / 2)) is is_test
    assert ("test code (risk halved)" in reasons) is is_test


def test_risky_construct_on_an_unchanged_line_does_not_count() -> None:
    chunk = make_chunk(1, ["def f():", "    data = eval(payload)", "    x = data"], changed=[3])
    risk, reasons = score_chunk(chunk, [])
    assert (risk, reasons) == (0.0, [])


def test_risk_stays_in_unit_range_and_grows_with_evidence() -> None:
    lines = ["    eval(x); pickle.loads(y); os.system(z)  # TODO"] * 100
    chunk = make_chunk(1, lines, changed=list(range(1, 101)))
    issues = [issue(n, rule=f"ruff:F8{n:02d}", severity="CRITICAL") for n in range(1, 30)]
    risks = [score_chunk(chunk, issues[:k])[0] for k in range(0, 30, 5)]
    assert all(0.0 <= r <= 1.0 for r in risks)
    assert risks == sorted(risks)


def test_style_issues_alone_never_escalate() -> None:
    chunk = make_chunk(1, [f"import m{n}" for n in range(10)], changed=list(range(1, 11)))
    issues = [issue(n, rule="ruff:F401", severity="LOW", category="style") for n in range(1, 11)]
    event = make_event("", chunk.text + "\n")
    result, findings = triage_event(event, [chunk], issues, now_ms=NOW)
    assert len(findings) == 10
    assert not result.chunks[0].escalate


@pytest.mark.parametrize(("threshold", "escalates"), [(0.0, True), (0.49, True), (0.51, False)])
def test_escalate_threshold(threshold: float, escalates: bool) -> None:
    chunk = make_chunk(1, ["def f():", "    x = g()"], changed=[2])
    event = make_event("", chunk.text + "\n")
    issues = [issue(2, rule="ruff:F821", severity="HIGH")]  # weight 0.5, the only signal
    result, _ = triage_event(event, [chunk], issues, now_ms=NOW, escalate_risk=threshold)
    assert result.chunks[0].escalate is escalates
    assert (result.chunks[0].text != "") is escalates


def test_code_span_falls_back_to_chunk_text_without_head_file() -> None:
    chunk = make_chunk(10, ["def f(x=[]):", "    return x"], changed=[10])
    event = PullRequestEvent("ev-1", "acme", "github", "acme/shop", 7, "opened", "abc123", "", 1)
    _, [finding] = triage_event(event, [chunk], [issue(10)], now_ms=NOW)
    assert finding.fingerprint == fingerprint(
        "acme", "acme/shop", PATH, "def f(x=[]):", "ruff:B006", f"{chunk.symbol or ''}#0"
    )


def test_bad_inputs_are_rejected() -> None:
    event = make_event("", "x = 1\n")
    stranger = dataclasses.replace(make_chunk(1, ["x = 1"], changed=[1]), event_id="other")
    with pytest.raises(ProcessorError, match="other"):
        triage_event(event, [stranger], [], now_ms=NOW)
    with pytest.raises(ValueError):
        triage_event(event, [], [], now_ms=NOW, escalate_risk=1.5)
    with pytest.raises(ValueError):
        triage_event(event, [], [], now_ms=NOW, near_lines=-1)


@pytest.mark.skipif(not GOLDEN.exists(), reason="golden data not beside the clone")
def test_golden_findings_are_all_near_changed_lines() -> None:
    analyzers = build_analyzers(["ruff", "detect-secrets"])
    with GOLDEN.open() as handle:
        cases = [json.loads(line) for line in handle]
    # The eight smallest PRs: the invariant is the point here, not the volume.
    cases = sorted(cases, key=lambda c: sum(map(len, c["files_after"].values())))[:8]
    for case in cases:
        files = [FileSnapshot(p, t) for p, t in case["files_after"].items()]
        event = PullRequestEvent(case["id"], "t", "golden", case["repo"], 1, "opened", "h",
                                 case["diff"], 0, files=files)  # fmt: skip
        chunks = chunk_event(event)
        issues = [i for a in analyzers for i in a.analyze(case["files_after"])]
        result, findings = triage_event(event, chunks, issues, now_ms=NOW)
        changed = {(c.path, n) for c in chunks for n in c.changed_lines}
        for f in findings:
            assert any((f.path, n) in changed for n in range(f.start_line - 2, f.end_line + 3))
        assert all(0.0 <= v.risk <= 1.0 for v in result.chunks)


def test_focus_lines_cover_changed_lines_and_their_neighbours() -> None:
    from processors.triage import focus_lines

    chunks = [
        CodeChunk("c1", "e", "t", "r", 1, "h", "a.py", "python", 1, 9, [1, 6], "x", "h1", 0),
        CodeChunk("c2", "e", "t", "r", 1, "h", "b.py", "python", 1, 9, [4], "x", "h2", 0),
    ]
    assert focus_lines(chunks, near_lines=2) == {
        "a.py": {1, 2, 3, 4, 5, 6, 7, 8},
        "b.py": {2, 3, 4, 5, 6},
    }
    assert focus_lines(chunks, near_lines=0) == {"a.py": {1, 6}, "b.py": {4}}


@pytest.mark.skipif(not GOLDEN.exists(), reason="golden cases not present")
def test_focused_analysis_gives_the_same_findings_as_a_full_scan() -> None:
    """Skipping lines outside the focus must not change what triage keeps."""
    from processors.triage import focus_lines

    analyzers = build_analyzers(["ruff", "detect-secrets"])
    with GOLDEN.open() as fh:
        cases = [json.loads(line) for _, line in zip(range(40), fh, strict=False)]
    for case in cases:
        event = PullRequestEvent(
            "e",
            "t",
            "github",
            case["repo"],
            1,
            "opened",
            "h",
            case["diff"],
            0,
            files=[FileSnapshot(p, text) for p, text in case["files_after"].items()],
        )
        chunks = chunk_event(event)
        files = {p: text for p, text in case["files_after"].items()}
        full = [i for a in analyzers for i in a.analyze(files)]
        focused = [i for a in analyzers for i in a.analyze(files, focus_lines(chunks))]
        _, expected = triage_event(event, chunks, full, now_ms=0)
        _, got = triage_event(event, chunks, focused, now_ms=0)
        assert {f.fingerprint for f in got} == {f.fingerprint for f in expected}, case["id"]


@pytest.mark.parametrize(
    ("path", "rule_id", "kept"),
    [
        ("tests/test_shop.py", "ruff:S101", False),
        ("shop/test_cart.py", "ruff:S105", False),
        ("tests/test_shop.py", "ruff:F821", True),
        ("shop/cart.py", "ruff:S101", True),
    ],
)
def test_test_code_idioms_are_not_findings(path: str, rule_id: str, kept: bool) -> None:
    chunk = CodeChunk("c", "e", "t", "r", 1, "h", path, "python", 1, 5, [3], "assert x", "h1", 0)
    event = PullRequestEvent("e", "t", "github", "r", 1, "opened", "h", "", 0)
    raw = RawIssue(path, 3, 3, rule_id, "security", "LOW", "m")
    _, findings = triage_event(event, [chunk], [raw], now_ms=0)
    assert bool(findings) == kept
