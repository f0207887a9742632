"""``codereview eval --via-kafka``: the cases through the RUNNING pipeline, not in-process.

Each case is posted as a normalized PR to a pipeline worker's
``POST /v1/events`` (with the tenant's API key), travels Kafka like any PR,
and its findings are read back from ClickHouse through the store worker,
the way ``codereview analytics`` reads. That measures what the deployed
pipeline does, configuration and all, rather than what the code would do.

Each case gets its own repo name, ``eval-<run>/<case id>``: finding rows are
deduplicated by (tenant, repo, fingerprint) and a fingerprint hashes code,
not the PR, so two cases of one project with the same flagged line would
otherwise collapse into one row and one case would lose its finding.

Done means: every case has a ``triage`` row in ``stage_metrics``, and, when
the pipeline runs deep analysis, every case whose triage escalated a chunk
also has an ``analyze`` row; or the timeout passed (then the missing cases
are named in the warnings and scored with what arrived).
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from codereview.settings import Settings
from processors.scoring import Detection

if TYPE_CHECKING:
    from codereview.evaluation import EvalCase, EvalOptions, SystemRun

_POLL_S = 1.0


def run_via_pipeline(
    settings: Settings, cases: list[EvalCase], options: EvalOptions, warnings: list[str]
) -> list[SystemRun]:
    from codereview.analytics import AnalyticsClient
    from codereview.evaluation import EvalError, SystemRun
    from ops.workers import load_workers, store_url, worker_healthy

    workers = [
        w for w in load_workers(Path(settings.stack.state_dir).resolve()) if w.role == "pipeline"
    ]
    url = next((w.url for w in workers if worker_healthy(w.url)), None)
    if url is None:
        raise EvalError("--via-kafka needs a running pipeline worker: run `codereview up`")
    if options.provider:
        warnings.append("--provider is ignored with --via-kafka: the pipeline's LLM settings apply")
    key = _api_key(settings)
    run = uuid.uuid4().hex[:8]
    event_ids: dict[str, str] = {}
    for number, case in enumerate(cases, start=1):
        event_ids[_post(url, key, _body(case, number, f"eval-{run}/{case.case_id}"))] = case.case_id
    client = AnalyticsClient(settings, store_url=store_url(settings))
    ids = ", ".join(f"'{e}'" for e in event_ids)  # hex digests: safe as literals
    deep = bool(settings.llm.provider)
    deadline = time.monotonic() + options.timeout_s
    while True:
        missing = _missing(client, ids, set(event_ids), deep=deep)
        if not missing or time.monotonic() > deadline:
            break
        time.sleep(_POLL_S)
    if missing:
        names = sorted(event_ids[e] for e in missing)
        warnings.append(
            f"timed out after {options.timeout_s}s waiting for {len(names)} cases: {names[:10]}"
        )
    time.sleep(2 * settings.clickhouse.flush_interval_s + 1)  # findings land after the metric
    rows = client.sql(
        "SELECT event_id, path, start_line, end_line, rule_id, category, origin "
        f"FROM {{db}}.findings FINAL WHERE event_id IN ({ids})"
    ).rows
    cost = client.sql(
        "SELECT stage, sum(duration_ms) FROM {db}.stage_metrics FINAL "
        f"WHERE stage IN ('triage', 'analyze') AND event_id IN ({ids}) GROUP BY stage"
    ).rows
    seconds = {str(stage): float(ms or 0) / 1000 for stage, ms in cost}
    ours = SystemRun("ours", "diff", {c.case_id: [] for c in cases}, seconds.get("triage", 0.0))
    runs = [ours]
    with_llm = None
    if deep:
        total = seconds.get("triage", 0.0) + seconds.get("analyze", 0.0)
        with_llm = SystemRun("ours+llm", "diff", {c.case_id: [] for c in cases}, total)
        runs.append(with_llm)
    for event_id, path, start, end, rule_id, category, origin in rows:
        found = Detection(str(path), int(start), int(end), str(rule_id), str(category))
        case_id = event_ids[str(event_id)]
        if origin != "llm":
            ours.detections[case_id].append(found)
        if with_llm is not None:
            with_llm.detections[case_id].append(found)
    return runs


def _api_key(settings: Settings) -> str:
    from codereview.evaluation import EvalError

    keys = settings.source.api_keys.get(settings.source.tenant, [])
    for key in keys:
        if key.get_secret_value():
            return key.get_secret_value()
    raise EvalError(
        f"no API key for tenant {settings.source.tenant!r} (CODEREVIEW_SOURCE__API_KEYS)"
    )


def _body(case: EvalCase, number: int, repo: str) -> dict[str, Any]:
    from codereview.evaluation import case_event

    event = case_event(case, number=number, tenant="", repo=repo)
    return {
        "repo": event.repo,
        "pr_number": event.pr_number,
        "head_sha": event.head_sha,
        "base_sha": event.base_sha,
        "diff": event.diff,
        "title": event.title,
        "source": "eval",
        "files": [{"path": f.path, "content": f.content} for f in event.files],
    }


def _post(url: str, key: str, body: dict[str, Any]) -> str:
    """POST one event; the event id the pipeline assigned it."""
    from codereview.evaluation import EvalError

    request = urllib.request.Request(
        f"{url}/v1/events",
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {key}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return str(json.loads(response.read())["accepted"])
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode(errors="replace")
        raise EvalError(f"POST /v1/events refused {body['repo']} ({exc.code}): {detail}") from exc


def _missing(client: Any, ids: str, expected: set[str], *, deep: bool) -> set[str]:
    """Events not done yet: no triage row, or (with deep analysis) escalated but not analyzed."""
    triaged = client.sql(
        "SELECT event_id, attrs['escalated'] FROM {db}.stage_metrics FINAL "
        f"WHERE stage = 'triage' AND event_id IN ({ids})"
    ).rows
    done = {str(e) for e, _ in triaged}
    if deep:
        escalated = {str(e) for e, n in triaged if str(n or "0") != "0"}
        analyzed = client.sql(
            "SELECT DISTINCT event_id FROM {db}.stage_metrics FINAL "
            f"WHERE stage = 'analyze' AND event_id IN ({ids})"
        ).rows
        done -= escalated - {str(e) for (e,) in analyzed}
    return expected - done
