"""A real local model, end to end: llama.cpp's OpenAI-compatible server and Gemma 3 270M.

No stand-in anywhere: the pipeline's OpenAI SDK talks HTTP to llama.cpp's
server, which runs a real (tiny, 241 MB) model on the CPU. Such a model
writes fluent JSON and useless reviews, so what is checked is the plumbing a
self-hosted deployment depends on: the request reaches the server through
the ``openai-compatible`` provider with JSON mode on, the server's own token
counts come back as an LlmUsage row, and the analyze stage finishes the PR
one way or the other (findings, or a dead letter saying why the answer was
unusable after one repair), while the stream goes on.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from codereview.settings import LlmSettings
from ops.local_model import MODEL_ALIAS, TOOLS_VENV, start_model_server
from ops.stack import load_stack_info
from ops.workers import load_workers, start_platform, stop_platform
from tests.e2e.conftest import AvroTopicReader, api_platform_settings, post_event

pytestmark = pytest.mark.slow

API_KEY = "local-model-key"
BASE = "def mean(values):\n    return sum(values) / len(values)\n"
HEAD = "def mean(values):\n    return sum(values) / (len(values) - 1)\n"


@pytest.fixture(scope="module")
def model_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if not (TOOLS_VENV / "bin" / "python").exists():
        pytest.skip("no tools venv: run `make tools`")
    root = tmp_path_factory.mktemp("local-model")
    process, url = start_model_server(Path(".stack/models").resolve(), root)
    try:
        yield url
    finally:
        process.stop()


@pytest.mark.timeout(1200)
def test_a_pr_reviewed_by_a_real_local_model(
    model_url: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    root = tmp_path_factory.mktemp("local-platform")
    settings = api_platform_settings(
        root,
        api_key=API_KEY,
        app="cr-local",
        llm=LlmSettings(
            provider="openai-compatible",
            base_url=model_url,
            model=MODEL_ALIAS,
            json_mode=True,
            escalate_risk=0.0,
            max_output_tokens=256,
            prompt_budget_tokens=3000,
            timeout_s=500,  # JSON-constrained decoding on 2 CPU cores: ~100 s seen
            deadline_s=900,
        ),
    )
    start_platform(settings, workers=1)
    try:
        info = load_stack_info(Path(settings.stack.state_dir).resolve())
        assert info is not None
        url = next(w.url for w in load_workers(info.state_dir) if w.role == "pipeline")
        diff = (
            "diff --git a/stats.py b/stats.py\n--- a/stats.py\n+++ b/stats.py\n"
            "@@ -1,2 +1,2 @@\n def mean(values):\n"
            "-    return sum(values) / len(values)\n+    return sum(values) / (len(values) - 1)\n"
        )
        body = json.dumps(
            {
                "repo": "local/stats",
                "pr_number": 1,
                "head_sha": "e" * 40,
                "diff": diff,
                "files": [{"path": "stats.py", "content": HEAD}],
            }
        ).encode()
        assert post_event(url, API_KEY, body) == 202
        reader = AvroTopicReader(
            info.kafka_bootstrap,
            settings.schema_registry.local_path,
            ["pipeline.metrics", "pr.findings", "pipeline.dlq"],
        )
        try:

            def analyzed(r: AvroTopicReader) -> bool:
                return any(m.get("stage") == "analyze" for m in r.records["pipeline.metrics"])

            assert reader.poll_until(analyzed, timeout_s=600), "the analyze stage never finished"
            usage = [m for m in reader.records["pipeline.metrics"] if "cache_hit" in m]
            assert usage, "no LlmUsage row"
            served = [u for u in usage if u["ok"]]
            assert served, [u["error"] for u in usage]
            # Token counts are the llama.cpp server's own, not an estimate.
            assert all(u["input_tokens"] > 100 and u["output_tokens"] > 0 for u in served)
            assert all(u["model"] == MODEL_ALIAS and u["latency_ms"] > 0 for u in served)
            metric = next(
                m for m in reader.records["pipeline.metrics"] if m.get("stage") == "analyze"
            )
            reader.poll_until(lambda r: False, timeout_s=5)  # a dead letter follows the metric
            llm_findings = [f for f in reader.records["pr.findings"] if f["origin"] == "llm"]
            letters = [d for d in reader.records["pipeline.dlq"] if d["stage"] == "analyze"]
            # Either the model's answer validated (findings or an empty list: the
            # metric is ok and nothing was dead-lettered), or why not is on record.
            if letters:
                assert any("invalid" in d["error"] for d in letters), letters
            else:
                assert metric["ok"] and metric["items"] == len(llm_findings), metric
            print(
                json.dumps(
                    {
                        "calls": len(usage),
                        "analyze_attrs": metric["attrs"],
                        "llm_findings": len(llm_findings),
                        "dead_letters": [d["error"][:120] for d in letters],
                        "latency_ms": [round(u["latency_ms"]) for u in served],
                    }
                )
            )
        finally:
            reader.close()
    finally:
        stop_platform(settings)
