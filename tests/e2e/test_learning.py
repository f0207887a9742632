"""Feedback teaches the running pipeline: thumbs-down on a rule hides its next findings.

A PR's finding gets twenty REJECTED verdicts through ``POST /v1/feedback``,
naming only the fingerprint (as an SCM reaction would). The learn agent joins
them to the finding's rule, the posterior agent updates the rule's Beta
posterior, every pipeline worker sees it through the changelog, and the next
PR in that repo with the same rule has that finding held back: not on
``pr.findings``, but in ClickHouse's ``suppressions`` with its reason. A
HIGH secret finding in the same PR is never held back.
"""

from __future__ import annotations

import json

import pytest

from codereview.analytics import AnalyticsClient
from ops.workers import store_url, wait_until
from tests.e2e.conftest import (
    LEARNING_API_KEY,
    LEARNING_TENANT,
    AvroTopicReader,
    Platform,
    post_event,
)

pytestmark = pytest.mark.e2e

REPO = "learn/shop"
API_KEY = LEARNING_API_KEY  # a tenant of its own: what it learns stays there
# Enough to take B006 (static confidence 0.55, worth 4 observations) under the
# default threshold of 0.1: (0.55 * 4) / (4 + 20) = 0.09.
REJECTIONS = 20


def body(number: int, head_sha: str) -> bytes:
    code = (
        "def add(item, basket=[]):\n"
        "    basket.append(item)\n"
        "    return basket\n"
        f'TOKEN_{number} = "ghp_{"7fK2mQ9xL4pR8sT1vW3yZ6bN0cD5eG2hJ4k"}{number}"\n'
    )
    lines = code.splitlines()
    diff = (
        "diff --git a/cart.py b/cart.py\n--- /dev/null\n+++ b/cart.py\n"
        f"@@ -0,0 +1,{len(lines)} @@\n" + "".join(f"+{line}\n" for line in lines)
    )
    return json.dumps(
        {
            "repo": REPO,
            "pr_number": number,
            "head_sha": head_sha,
            "diff": diff,
            "files": [{"path": "cart.py", "content": code}],
        }
    ).encode()


def post_json(url: str, payload: dict) -> int:
    import urllib.error
    import urllib.request

    request = urllib.request.Request(
        url, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def test_rejections_teach_the_rule_and_its_next_finding_is_suppressed(platform: Platform) -> None:
    url = platform.pipeline_urls()[0]
    reader = AvroTopicReader(
        platform.bootstrap, platform.settings.schema_registry.local_path, ["pr.findings"]
    )
    try:
        assert post_event(url, API_KEY, body(1, "1" * 40)) == 202

        def b006(r: AvroTopicReader, number: int) -> list[dict]:
            return [
                f
                for f in r.records["pr.findings"]
                if f["repo"] == REPO and f["pr_number"] == number and f["rule_id"] == "ruff:B006"
            ]

        assert reader.poll_until(lambda r: bool(b006(r, 1)), timeout_s=120)
        first = b006(reader, 1)[0]
        for i in range(REJECTIONS):
            verdict = {
                "fingerprint": first["fingerprint"],
                "repo": REPO,
                "pr_number": 1,
                "verdict": "rejected",
                "signal": "reaction",
                "tenant": LEARNING_TENANT,
                "event_id": f"learn-{i}",
            }
            assert post_json(url + "/v1/feedback", verdict) == 202

        client = AnalyticsClient(platform.settings, store_url=store_url(platform.settings))

        def taught() -> int:
            rows = client.sql(
                "SELECT count() FROM {db}.stage_metrics FINAL "
                f"WHERE stage = 'posterior' AND repo = '{REPO}'"
            ).rows
            return int(rows[0][0])

        assert wait_until(lambda: taught() >= REJECTIONS, 60), "the posterior agent saw it all"
        joined = client.sql(
            "SELECT attrs['rule_id'], attrs['joined'] FROM {db}.stage_metrics FINAL "
            f"WHERE stage = 'learn' AND repo = '{REPO}'"
        ).rows
        assert joined and all(tuple(r) == ("ruff:B006", "True") for r in joined), joined

        # The next PR: its B006 finding is held back, with a reason, and still queryable.
        def suppressed() -> list[list]:
            return client.sql(
                "SELECT rule_id, confidence, threshold, reason FROM {db}.suppressions FINAL "
                f"WHERE repo = '{REPO}' AND pr_number = 2"
            ).rows

        assert post_event(url, API_KEY, body(2, "2" * 40)) == 202
        assert wait_until(lambda: bool(suppressed()), 90), "no suppression recorded"
        rule, confidence, threshold, reason = suppressed()[0]
        assert rule == "ruff:B006" and confidence < threshold
        assert f"0 accepted / {REJECTIONS} rejected" in reason
        reader.poll_until(lambda r: False, timeout_s=3)
        assert b006(reader, 2) == [], "a suppressed finding is not published"
        secrets = [
            f
            for f in reader.records["pr.findings"]
            if f["repo"] == REPO and f["pr_number"] == 2 and f["category"] == "secret"
        ]
        assert secrets, "HIGH secret findings are never suppressed"
    finally:
        reader.close()


def test_a_finding_whose_code_the_next_push_changes_counts_as_applied(
    platform: Platform,
) -> None:
    """Push 2 replaces yaml.load by yaml.safe_load: that finding is gone, an ACCEPTED "applied"."""
    url = platform.pipeline_urls()[0]
    repo = "learn/applied"

    def pr(code: str, head_sha: str) -> bytes:
        lines = code.splitlines()
        diff = (
            "diff --git a/conf.py b/conf.py\n--- /dev/null\n+++ b/conf.py\n"
            f"@@ -0,0 +1,{len(lines)} @@\n" + "".join(f"+{line}\n" for line in lines)
        )
        return json.dumps(
            {
                "repo": repo,
                "pr_number": 9,
                "head_sha": head_sha,
                "diff": diff,
                "files": [{"path": "conf.py", "content": code}],
            }
        ).encode()

    unsafe = "import yaml\n\n\ndef load(text):\n    return yaml.load(text)\n"
    assert post_event(url, API_KEY, pr(unsafe, "5" * 40)) == 202
    client = AnalyticsClient(platform.settings, store_url=store_url(platform.settings))

    def triaged() -> int:
        sql = (
            "SELECT count() FROM {db}.stage_metrics FINAL "
            f"WHERE stage = 'triage' AND repo = '{repo}'"
        )
        return int(client.sql(sql).rows[0][0])

    assert wait_until(lambda: triaged() >= 1, 90)
    safe = unsafe.replace("yaml.load(text)", "yaml.safe_load(text)")
    assert post_event(url, API_KEY, pr(safe, "6" * 40)) == 202

    def applied() -> set[tuple]:
        rows = client.sql(
            "SELECT rule_id, verdict, signal FROM {db}.feedback FINAL "
            f"WHERE repo = '{repo}' AND signal = 'applied'"
        ).rows
        return {tuple(r) for r in rows}

    assert wait_until(lambda: bool(applied()), 90), "no applied feedback"
    rules = {rule for rule, verdict, _ in applied() if verdict == "ACCEPTED"}
    assert rules & {"ruff:S506", "bandit:B506"}, rules
