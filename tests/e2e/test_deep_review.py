"""Deep analysis through the running platform, against a local server speaking OpenAI's API.

Real processes again (broker, Milvus, store and a pipeline worker), with the
pipeline's LLM pointed at ``FakeLlmServer``, which answers through a scripted
reviewer that reads the prompt (``tests/fakes/llm_reviewer.py``). What is
checked is what users of AI reviewers complain about:

- no secret planted in the code reaches the provider, in any request body;
- the second push of a PR costs a call only for the chunk that changed, and
  findings already published are not published again;
- a provider that keeps failing leaves the PR with its triage findings, a
  fallback metric and a dead letter to replay, and the stream goes on;
- a team over budget gets no model call at all.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from codereview.settings import LlmSettings, Settings
from ops.stack import load_stack_info
from ops.workers import load_workers, start_platform, stop_platform
from processors.analysis import system_prompt
from processors.learning import prompt_variant
from tests.e2e.conftest import AvroTopicReader, api_platform_settings, post_event
from tests.fakes.llm_reviewer import FAIL_MARKER, MARKER, review
from tests.fakes.llm_server import FakeLlmServer

pytestmark = pytest.mark.e2e

API_KEY = "deep-review-key"
CHEAP_MODEL = "gpt-4.1-nano"
VARIANTS = ("review-v1", "review-v1-focused")  # the A/B test the platform runs
FINDINGS, TRIAGED, DLQ, METRICS = "pr.findings", "pr.triaged", "pipeline.dlq", "pipeline.metrics"
# Fake but well-formed secrets of three kinds; none may reach the provider.
PLANTED = {
    "aws": "AKIA" + "Q7X2M4N8P6R3T5V9",
    "github": "ghp_" + "7fK2mQ9xL4pR8sT1vW3yZ6bN0cD5eG2hJ4kM",
    "password": "Pa55w0rd!" + "x7Qz9Lm2",
}


@dataclass
class LlmPlatform:
    settings: Settings
    llm: FakeLlmServer
    bootstrap: str
    url: str

    def __repr__(self) -> str:
        return f"LlmPlatform({self.settings.stack.state_dir})"


@pytest.fixture(scope="module")
def llm_platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlmPlatform]:
    root = tmp_path_factory.mktemp("llm-platform")
    with FakeLlmServer(responder=review, model="gpt-4o-mini") as llm:
        settings = api_platform_settings(
            root,
            api_key=API_KEY,
            app="cr-llm",
            llm=LlmSettings(
                provider="openai-compatible",
                base_url=llm.openai_base_url,
                model="gpt-4o-mini",
                cheap_model=CHEAP_MODEL,
                # Every chunk goes to a model: the riskiest straight to the strong
                # one, the rest through the cheap tier's gate (which picks them all).
                escalate_risk=0.5,
                gate_risk=0.0,
                max_attempts=2,
                retry_max_wait_s=0.2,
                breaker_failures=50,
                budgets_usd={"repo:budget/svc": 0.000001},
                prompt_variants=list(VARIANTS),
            ),
        )
        start_platform(settings, workers=1)
        try:
            info = load_stack_info(Path(settings.stack.state_dir).resolve())
            assert info is not None
            url = next(w.url for w in load_workers(info.state_dir) if w.role == "pipeline")
            yield LlmPlatform(settings, llm, info.kafka_bootstrap, url)
        finally:
            stop_platform(settings)


@pytest.fixture(scope="module")
def reader(llm_platform: LlmPlatform) -> Iterator[AvroTopicReader]:
    r = AvroTopicReader(
        llm_platform.bootstrap,
        llm_platform.settings.schema_registry.local_path,
        [FINDINGS, TRIAGED, DLQ, METRICS],
    )
    yield r
    r.close()


BASE = '''"""Prices."""

TAX = 0.2


def total(items):
    s = 0
    for item in items:
        s += item.price
    return s


def discount(price):
    return price * 0.9
'''


def head_v1() -> str:
    return f'''"""Prices."""

TAX = 0.2
AWS_KEY_ID = "{PLANTED["aws"]}"
GITHUB_TOKEN = "{PLANTED["github"]}"
DB_URL = "postgres://app:{PLANTED["password"]}@db.internal:5432/shop"


def total(items):
    s = 1
    for item in items:
        s += item.price  # {MARKER}
    return s


def discount(price):
    return price * 0.8  # {MARKER}
'''


def head_v2() -> str:
    return head_v1().replace("return price * 0.8", "return price * 0.7 + 0")


def pr_body(repo: str, number: int, head_sha: str, head: str, path: str = "svc/prices.py") -> bytes:
    diff = "".join(
        difflib.unified_diff(
            BASE.splitlines(keepends=True),
            head.splitlines(keepends=True),
            fromfile=f"a/{path}",
            tofile=f"b/{path}",
        )
    )
    payload = {
        "repo": repo,
        "pr_number": number,
        "head_sha": head_sha,
        "diff": f"diff --git a/{path} b/{path}\n{diff}",
        "files": [{"path": path, "content": head}],
    }
    return json.dumps(payload).encode()


def send(platform: LlmPlatform, body: bytes) -> int:
    return post_event(platform.url, API_KEY, body)


def of_pr(records: list[dict[str, Any]], repo: str, number: int) -> list[dict[str, Any]]:
    return [r for r in records if r.get("repo") == repo and r.get("pr_number") == number]


def analyze_metrics(reader: AvroTopicReader, repo: str, sha_event: str | None = None) -> list[dict]:
    return [
        m
        for m in reader.records[METRICS]
        if m.get("stage") == "analyze" and m.get("repo") == repo and "attrs" in m
    ]


def usage_rows(reader: AvroTopicReader, repo: str) -> list[dict[str, Any]]:
    return [m for m in reader.records[METRICS] if "cache_hit" in m and m.get("repo") == repo]


def test_review_redacts_secrets_and_the_next_push_reuses_what_did_not_change(
    llm_platform: LlmPlatform, reader: AvroTopicReader
) -> None:
    repo, number = "shop/svc", 7
    assert send(llm_platform, pr_body(repo, number, "a" * 40, head_v1())) == 202

    def reviewed(r: AvroTopicReader) -> bool:
        llm = [f for f in of_pr(r.records[FINDINGS], repo, number) if f["origin"] == "llm"]
        return len(llm) >= 2 and bool(analyze_metrics(r, repo))

    assert reader.poll_until(reviewed, timeout_s=120), (
        [m["attrs"] for m in analyze_metrics(reader, repo)],
        of_pr(reader.records[FINDINGS], repo, number),
    )
    llm_findings = [
        f for f in of_pr(reader.records[FINDINGS], repo, number) if f["origin"] == "llm"
    ]
    lines = sorted(f["start_line"] for f in llm_findings)
    head_lines = head_v1().split("\n")
    assert all(MARKER in head_lines[n - 1] for n in lines), lines
    assert all(f["model"] == "gpt-4o-mini" for f in llm_findings)
    # A/B test: the PR's variant is fixed by its key, and the model was asked with it.
    variant = prompt_variant(f"default/{repo}#{number}", VARIANTS)
    assert {f["prompt_version"] for f in llm_findings} == {variant}
    strong_asks = [r.body for r in llm_platform.llm.requests if r.body["model"] == "gpt-4o-mini"]
    assert strong_asks[0]["messages"][0]["content"] == system_prompt(variant)
    # Each suggestion arrived as a unified-diff patch against the head file.
    patches = [f["suggestion"] for f in llm_findings]
    assert all(p and p.startswith("--- a/svc/prices.py") and "FIXED" in p for p in patches)

    # Not one planted secret in any body the provider received; the code is there.
    bodies = [json.dumps(req.body) for req in llm_platform.llm.requests]
    assert bodies
    for kind, value in PLANTED.items():
        assert all(value not in body for body in bodies), kind
    assert any("def discount(price)" in body for body in bodies)

    first_usage = usage_rows(reader, repo)
    assert first_usage and all(u["ok"] and not u["cache_hit"] for u in first_usage)
    # The cheap tier answered the gate question, the strong one the review.
    assert {(u["tier"], u["model"]) for u in first_usage} == {
        ("cheap", CHEAP_MODEL),
        ("strong", "gpt-4o-mini"),
    }
    assert all(u["input_tokens"] > 0 and u["cost_usd"] > 0 for u in first_usage)
    requests_before = len(llm_platform.llm.requests)
    published_before = {f["fingerprint"]: 1 for f in llm_findings}

    # Push 2 changes discount() only.
    assert send(llm_platform, pr_body(repo, number, "b" * 40, head_v2())) == 202

    def second_push_reviewed(r: AvroTopicReader) -> bool:
        return len(analyze_metrics(r, repo)) >= 2

    assert reader.poll_until(second_push_reviewed, timeout_s=120)
    new_requests = llm_platform.llm.requests[requests_before:]
    strong = [r for r in new_requests if r.body["model"] == "gpt-4o-mini"]
    assert len(strong) == 1, "only the changed chunk costs a strong call"
    for request in new_requests:  # nor does the unchanged one cost a gate call
        assert "s += item.price" not in json.dumps(request.body)
    assert "price * 0.7" in json.dumps(strong[0].body)
    usage = usage_rows(reader, repo)
    assert any(u["cache_hit"] and u["cost_usd"] == 0 for u in usage)
    second = analyze_metrics(reader, repo)[-1]["attrs"]
    assert int(second["cache_hits"]) >= 1 and int(second["carried_over"]) >= 1
    # total()'s finding is carried over, never published twice.
    llm_now = [f for f in of_pr(reader.records[FINDINGS], repo, number) if f["origin"] == "llm"]
    counts: dict[str, int] = {}
    for f in llm_now:
        counts[f["fingerprint"]] = counts.get(f["fingerprint"], 0) + 1
    total_fp = next(f["fingerprint"] for f in llm_findings if "s += item.price" in f["suggestion"])
    assert counts[total_fp] == published_before[total_fp] == 1


def test_the_cache_and_published_findings_survive_a_worker_restart(
    llm_platform: LlmPlatform, reader: AvroTopicReader
) -> None:
    """Runs after the first test: the same PR's code again, after a restart, costs nothing."""
    from ops.workers import restart_worker

    repo, number = "shop/svc", 7
    assert len(analyze_metrics(reader, repo)) >= 2, "needs the first test's two pushes"
    findings_before = len(of_pr(reader.records[FINDINGS], repo, number))
    restart_worker(llm_platform.settings, "pipeline-1")  # SIGTERM: tables are in changelogs
    before = len(llm_platform.llm.requests)
    # Push 3: a new head commit whose code is push 2's (a rebase, say).
    assert send(llm_platform, pr_body(repo, number, "f" * 40, head_v2())) == 202
    assert reader.poll_until(lambda r: len(analyze_metrics(r, repo)) >= 3, timeout_s=300)
    third = analyze_metrics(reader, repo)[2]["attrs"]
    assert int(third["calls"]) == 0 and int(third["cache_hits"]) >= 2, third
    assert len(llm_platform.llm.requests) == before, "no model call for unchanged code"
    reader.poll_until(lambda r: False, timeout_s=2)
    llm_again = [
        f
        for f in of_pr(reader.records[FINDINGS], repo, number)[findings_before:]
        if f["origin"] == "llm"
    ]
    assert llm_again == [], "carried-over findings are not published again"


def test_failing_provider_falls_back_to_triage_and_dead_letters_for_replay(
    llm_platform: LlmPlatform, reader: AvroTopicReader
) -> None:
    repo, number = "shop/flaky", 3
    head = head_v1().replace("    s = 1\n", f"    s = 1  # {FAIL_MARKER}\n")
    assert send(llm_platform, pr_body(repo, number, "c" * 40, head)) == 202

    def fell_back(r: AvroTopicReader) -> bool:
        metrics = analyze_metrics(r, repo)
        letters = [d for d in r.records[DLQ] if d.get("stage") == "analyze"]
        return bool(metrics) and bool(letters)

    assert reader.poll_until(fell_back, timeout_s=120), analyze_metrics(reader, repo)
    metric = analyze_metrics(reader, repo)[-1]
    assert not metric["ok"] and metric["attrs"]["fallback"].startswith("provider")
    letter = [d for d in reader.records[DLQ] if d.get("stage") == "analyze"][-1]
    assert "500" in letter["error"] and letter["original_value"]
    # Triage's own findings (the planted secrets) are published all the same.
    triage = [f for f in of_pr(reader.records[FINDINGS], repo, number) if f["origin"] == "triage"]
    assert any(f["category"] == "secret" for f in triage)
    failed = [u for u in usage_rows(reader, repo) if not u["ok"]]
    assert failed and "500" in failed[0]["error"]


def test_a_team_over_budget_gets_no_model_call(
    llm_platform: LlmPlatform, reader: AvroTopicReader
) -> None:
    repo, number = "budget/svc", 1
    before = len(llm_platform.llm.requests)
    assert send(llm_platform, pr_body(repo, number, "d" * 40, head_v1())) == 202
    assert reader.poll_until(lambda r: bool(analyze_metrics(r, repo)), timeout_s=120)
    metric = analyze_metrics(reader, repo)[-1]
    assert metric["attrs"].get("fallback", "").startswith("budget"), metric
    assert int(metric["attrs"]["calls"]) == 0
    asked = [json.dumps(r.body) for r in llm_platform.llm.requests[before:]]
    assert not any("budget/svc" in body for body in asked)
    assert of_pr(reader.records[FINDINGS], repo, number), "triage findings still published"
