"""``codereview report`` end to end: chdb views -> HTML -> headless Chromium.

A chdb directory gets the shipped migrations (004 holds the views the report
reads) and synthetic findings, feedback, LLM usage and stage metrics; the CLI
writes the page from that directory (no store worker runs); Chromium renders
it, and we check the DOM it built and the pixels of its screenshot.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
import struct
import subprocess
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from codereview.cli import main
from codereview.report import ReportData, collect, render, sink_runner
from codereview.settings import ClickHouseSettings
from schemas.records import FeedbackEvent, Finding, LlmUsage, MetricEvent
from sinks.clickhouse import ClickHouseSink

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

CHROMIUM = Path("/usr/bin/chromium")
REPO_ROOT = Path(__file__).resolve().parents[2]
T0 = int(dt.datetime(2026, 10, 5, 9, tzinfo=dt.UTC).timestamp() * 1000)  # a Monday
DAY = 86_400_000
RULES = ("B006", "S101", "E722")
STAGES = ("chunk", "embed", "triage", "review", "publish")
TENANTS = ("acme", "globex")
DB = "cr_report"


def findings_and_feedback() -> tuple[list[Finding], list[FeedbackEvent]]:
    """Three rules over four weeks; acceptance rises with confidence, as calibrated."""
    findings, feedback = [], []
    for i in range(120):
        rule = RULES[i % 3]
        confidence = round(0.05 + (i % 10) / 10, 2)
        created = T0 + (i % 4) * 7 * DAY + i * 1000
        findings.append(
            Finding(
                fingerprint=f"fp-{i}", event_id=f"ev-{i % 30}", tenant=TENANTS[i % 2],
                repo="acme/api", pr_number=i % 30, head_sha="a" * 40, path="x.py",
                start_line=1, end_line=2, rule_id=rule, category="bug", severity="HIGH",
                confidence=confidence, message="m", origin="triage",
                received_at_ms=created, created_at_ms=created,
            )
        )  # fmt: skip
        if i % 7 != 6:  # a seventh never gets feedback
            accepted = (i * 37 % 100) / 100 < confidence
            feedback.append(
                FeedbackEvent(
                    event_id=f"fb-{i}", fingerprint=f"fp-{i}", tenant=TENANTS[i % 2],
                    repo="acme/api", pr_number=i % 30, rule_id=rule,
                    verdict="ACCEPTED" if accepted else "REJECTED", signal="reaction",
                    at_ms=created + 60_000,
                )
            )  # fmt: skip
    return findings, feedback


def usage() -> list[LlmUsage]:
    return [
        LlmUsage(
            call_id=f"call-{i}", event_id=f"ev-{i % 30}", tenant=TENANTS[i % 2],
            repo="acme/api", pr_number=i % 30, provider="openai", model="gpt",
            prompt_version="v1", input_tokens=1000 + i, output_tokens=200,
            cost_usd=0.01 * (1 + i % 2), latency_ms=300.0, ok=True,
            at_ms=T0 + (i % 6) * DAY, cache_hit=i % 5 == 0,
        )
        for i in range(60)
    ]  # fmt: skip


def metrics() -> list[MetricEvent]:
    return [
        MetricEvent(
            stage=stage, event_id=f"ev-{i}", tenant="acme", repo="acme/api", pr_number=i,
            duration_ms=float(10 * (s + 1) + i), since_received_ms=float(100 * (s + 1) + i),
            at_ms=T0 + (i % 3) * DAY, items=1, worker="w1",
        )
        for s, stage in enumerate(STAGES)
        for i in range(20)
    ]  # fmt: skip


@pytest.fixture(scope="module")
def populated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, ReportData]]:
    """A chdb dir with data, closed again (the CLI opens it); plus what it held when empty."""
    root = tmp_path_factory.mktemp("report")
    sink = ClickHouseSink.from_settings(ClickHouseSettings(chdb_path=root / "chdb", database=DB))
    sink.start()
    try:
        empty = collect(sink_runner(sink))
        found, judged = findings_and_feedback()
        sink.write_findings(found)
        sink.write_feedback(judged)
        sink.write_llm_usage(usage())
        sink.write_metrics(metrics())
    finally:
        sink.close()
    yield root, empty


@pytest.fixture(scope="module")
def report(populated: tuple[Path, ReportData]) -> tuple[Path, dict[str, object]]:
    """`codereview report --json` on that dir: no store worker, so it opens chdb itself."""
    root, _ = populated
    out = root / "out" / "index.html"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CODEREVIEW_STACK__STATE_DIR", str(root / "state"))
        mp.setenv("CODEREVIEW_STACK__STORE_WEB_PORT", "0")
        mp.setenv("CODEREVIEW_CLICKHOUSE__URL", "")
        mp.setenv("CODEREVIEW_CLICKHOUSE__CHDB_PATH", str(root / "chdb"))
        mp.setenv("CODEREVIEW_CLICKHOUSE__DATABASE", DB)
        import contextlib
        import io

        buffer = io.StringIO()
        with contextlib.redirect_stdout(buffer):
            assert main(["report", "--out", str(out), "--json"]) == 0
    return out, json.loads(buffer.getvalue())


def test_an_empty_database_renders_no_data_charts(populated: tuple[Path, ReportData]) -> None:
    _, empty = populated
    assert empty.counts() == dict.fromkeys(empty.counts(), 0)
    html = render(empty, dt.datetime(2026, 11, 26, tzinfo=dt.UTC))
    assert html.count('data-empty="true"') == 4
    assert html.count("no data yet") == 4
    assert 'class="mark"' not in html


def test_the_cli_writes_one_self_contained_page(report: tuple[Path, dict[str, object]]) -> None:
    out, summary = report
    assert summary["path"] == str(out) and summary["source"] == "chdb"
    # rule-weeks and team-days: (rule, week) and (day, tenant) follow i mod 12 and i mod 6
    assert summary["rule_weeks"] == 12 and summary["team_days"] == 6
    assert summary["stage_days"] == 15 and summary["calibration_buckets"] == 10
    html = out.read_text()
    assert not re.search(r"(src|href)=\"(https?:)?//", html), "the page must not fetch anything"
    assert "<script" not in html


def _chromium(*args: str, profile: Path) -> subprocess.CompletedProcess[str]:
    flags = [
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={profile}", "--window-size=1280,2000",
    ]  # fmt: skip
    return subprocess.run(
        [str(CHROMIUM), *flags, *args], capture_output=True, text=True, timeout=60, check=True
    )


def _png_pixels(data: bytes) -> tuple[int, int, list[bytes]]:
    """Width, height and unfiltered rows of an 8-bit RGB/RGBA PNG (what Chromium writes)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width, height, channels = 8, b"", 0, 0, 0
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, color = struct.unpack(">IIBB", body[:10])
            assert depth == 8 and color in (2, 6)
            channels = 3 if color == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw, stride, rows = zlib.decompress(idat), width * channels, []
    prev = bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        filt, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        for x in range(stride):
            a = line[x - channels] if x >= channels else 0
            b, c = prev[x], prev[x - channels] if x >= channels else 0
            if filt == 1:
                line[x] = (line[x] + a) & 0xFF
            elif filt == 2:
                line[x] = (line[x] + b) & 0xFF
            elif filt == 3:
                line[x] = (line[x] + (a + b) // 2) & 0xFF
            elif filt == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
        rows.append(bytes(line))
        prev = line
    return width, height, rows


@pytest.mark.skipif(not CHROMIUM.exists(), reason="chromium is not installed at /usr/bin/chromium")
def test_chromium_renders_four_charts_with_marks(
    report: tuple[Path, dict[str, object]], tmp_path: Path
) -> None:
    out, _ = report
    dom = _chromium("--dump-dom", out.as_uri(), profile=tmp_path / "profile-dom").stdout
    charts = dict(re.findall(r'<svg[^>]*data-chart="(\w+)"[^>]*data-empty="(\w+)"', dom))
    assert charts == dict.fromkeys(("precision", "cost", "latency", "calibration"), "false")

    def marks(chart: str, shape: str) -> list[str]:
        svg = re.search(rf'<svg[^>]*data-chart="{chart}".*?</svg>', dom, re.S)
        assert svg is not None
        return re.findall(rf'<{shape} class="mark"[^>]*>', svg.group(0))

    assert len(marks("precision", "circle")) == len(RULES) * 4  # every rule-week had feedback
    assert len(marks("cost", "rect")) == len(TENANTS) * 6
    assert len(marks("latency", "rect")) == len(STAGES) * 2  # p50 and p95
    assert len(marks("calibration", "circle")) == 10
    assert 'class="diagonal"' in dom
    for label in (*RULES, *STAGES, *TENANTS):
        assert f">{label}</text>" in dom, label

    screenshot = tmp_path / "report.png"
    _chromium(f"--screenshot={screenshot}", out.as_uri(), profile=tmp_path / "profile-png")
    data = screenshot.read_bytes()
    assert len(data) > 30_000
    width, height, rows = _png_pixels(data)
    assert (width, height) == (1280, 2000)
    colours = {row[x : x + 3] for row in rows[::8] for x in range(0, len(row), 32)}
    assert len(colours) > 20, "the screenshot looks blank"
    keep = REPO_ROOT / ".stack" / "report" / "screenshot.png"
    keep.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(screenshot, keep)
