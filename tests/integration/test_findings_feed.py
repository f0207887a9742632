"""The live feed of findings on a real broker (noida-db) with a Confluent-style registry.

Findings are produced the way the workers produce them (``AvroCodec`` with a
``ConfluentSchemaRegistry`` pointed at the fake registry server). Two readers
consume them: ``findings tail`` (our codec, filters, no commits) and the
standalone example in ``examples/findings_consumer`` (confluent-kafka's own
registry client and Avro deserializer, committing after each finding).
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition

from codereview.cli import main
from codereview.findings_cli import FindingFilter, tail_findings
from codereview.settings import (
    ClickHouseSettings,
    KafkaSettings,
    MilvusSettings,
    SchemaRegistrySettings,
    Settings,
    StackSettings,
)
from ops.stack import EmbeddedStack, kafka_client_config
from schemas.codec import AvroCodec
from schemas.records import SEVERITIES, Finding, to_dict
from schemas.registry import ConfluentSchemaRegistry
from sinks.kafka import KafkaRecordSink
from streams.topics import PR_FINDINGS
from tests.fakes.schema_registry import FakeSchemaRegistry

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "findings_consumer" / "consumer.py"
PREFIX = f"feed{uuid.uuid4().hex[:6]}."
TOPIC = PREFIX + PR_FINDINGS.name


def finding(i: int) -> Finding:
    return Finding(
        fingerprint=f"{i:064x}", event_id=f"ev-{i}", tenant="acme",
        repo=("acme/api", "acme/web")[i % 2], pr_number=i, head_sha="b" * 40,
        path=f"src/m{i}.py", start_line=i + 1, end_line=i + 2, rule_id="llm:bug",
        category=("bug", "security")[i % 2], severity=SEVERITIES[i % 5], confidence=0.75,
        message=f"finding {i} ✓", origin="llm", received_at_ms=1000 + i,
        created_at_ms=2000 + i, model="m", source="github",
    )  # fmt: skip


FINDINGS = [finding(i) for i in range(10)]


@dataclass
class Feed:
    settings: Settings  # kafka.bootstrap and schema_registry.url point at the live pair
    registry: FakeSchemaRegistry

    @property
    def bootstrap(self) -> str:
        return self.settings.kafka.bootstrap

    def produce(self, findings: list[Finding]) -> None:
        codec = AvroCodec(ConfluentSchemaRegistry(self.registry.url))
        sink = KafkaRecordSink(kafka_client_config(self.settings.kafka, self.bootstrap), codec)
        for f in findings:
            sink.send(TOPIC, f.key, f)
        sink.flush()
        sink.close()


@pytest.fixture(scope="module")
def feed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Feed]:
    """noida-db alone (Milvus is "configured", so ``up`` does not start it) and the registry."""
    root = tmp_path_factory.mktemp("feed")
    stack_settings = Settings(
        stack=StackSettings(state_dir=root / "stack", start_timeout_s=30.0),
        kafka=KafkaSettings(topic_prefix=PREFIX),
        milvus=MilvusSettings(uri="http://127.0.0.1:9"),
        clickhouse=ClickHouseSettings(chdb_path=root / "chdb"),
    )
    stack = EmbeddedStack()
    info = stack.up(stack_settings)
    try:
        with FakeSchemaRegistry() as registry:
            settings = stack_settings.model_copy(
                update={
                    "kafka": KafkaSettings(bootstrap=info.kafka_bootstrap, topic_prefix=PREFIX),
                    "schema_registry": SchemaRegistrySettings(url=registry.url),
                }
            )
            feed = Feed(settings, registry)
            feed.produce(FINDINGS)
            yield feed
    finally:
        stack.down(Path(stack_settings.stack.state_dir))


def load_example() -> ModuleType:
    pytest.importorskip("authlib", reason="confluent-kafka's registry client needs authlib")
    spec = importlib.util.spec_from_file_location("findings_consumer_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def committed_total(bootstrap: str, group: str) -> int:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        parts = [TopicPartition(TOPIC, p) for p in range(PR_FINDINGS.partitions)]
        return sum(max(tp.offset, 0) for tp in consumer.committed(parts, timeout=10))
    finally:
        consumer.close()


def end_total(bootstrap: str) -> int:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"probe-{uuid.uuid4().hex}"})
    try:
        parts = [TopicPartition(TOPIC, p) for p in range(PR_FINDINGS.partitions)]
        return sum(consumer.get_watermark_offsets(tp, timeout=10)[1] for tp in parts)
    finally:
        consumer.close()


def test_tail_filters_client_side_and_stops_at_max(feed: Feed) -> None:
    got: list[Finding] = []
    selection = FindingFilter(repo="acme/api", min_severity="MEDIUM")
    count = tail_findings(
        feed.settings, selection, got.append, from_beginning=True, max_count=3, timeout_s=60
    )
    wanted = [f for f in FINDINGS if selection.accepts(f)]
    assert count == len(got) == len(wanted) == 3
    assert sorted(got, key=lambda f: f.pr_number) == wanted  # decoded field for field


def test_tail_stops_at_its_timeout_with_what_it_saw(feed: Feed) -> None:
    got: list[Finding] = []
    started = time.monotonic()
    count = tail_findings(
        feed.settings, FindingFilter(category="security"), got.append,
        from_beginning=True, timeout_s=4,
    )  # fmt: skip
    assert 3.5 < time.monotonic() - started < 30
    assert count == 5 and {f.category for f in got} == {"security"}


def test_tail_without_from_beginning_sees_only_new_findings(feed: Feed) -> None:
    got: list[Finding] = []
    worker = threading.Thread(
        target=tail_findings,
        args=(feed.settings, FindingFilter(), got.append),
        kwargs={"max_count": 1, "timeout_s": 60},
    )
    worker.start()
    time.sleep(3)  # assigned at the end by then
    new = finding(42)
    feed.produce([new])
    worker.join(90)
    assert not worker.is_alive()
    assert got == [new]


def test_the_tail_command_prints_json_lines(feed: Feed) -> None:
    out = io.StringIO()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CODEREVIEW_KAFKA__BOOTSTRAP", feed.bootstrap)
        mp.setenv("CODEREVIEW_KAFKA__TOPIC_PREFIX", PREFIX)
        mp.setenv("CODEREVIEW_SCHEMA_REGISTRY__URL", feed.registry.url)
        with contextlib.redirect_stdout(out):
            code = main(
                ["findings", "tail", "--from-beginning", "--severity", "critical", "--max", "2",
                 "--timeout", "60", "--json"]
            )  # fmt: skip
    assert code == 0
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert sorted(lines, key=lambda d: d["pr_number"]) == [to_dict(finding(4)), to_dict(finding(9))]


def test_the_example_consumer_decodes_with_the_registry_and_commits(feed: Feed) -> None:
    example = load_example()
    group = f"example-{uuid.uuid4().hex}"
    deserializer = example.build_deserializer(feed.registry.url)
    seen: list[dict[str, Any]] = []
    consumer = example.build_consumer(feed.bootstrap, group)
    try:
        # Until the topic is drained: other tests may have added findings to it.
        count = example.consume(consumer, deserializer, TOPIC, seen.append, idle_timeout_s=5)
    finally:
        consumer.close()
    assert count == len(seen) == end_total(feed.bootstrap) >= len(FINDINGS)
    decoded = {d["fingerprint"]: d for d in seen}
    assert all(decoded[f.fingerprint] == to_dict(f) for f in FINDINGS)  # field for field
    assert ("GET", "/schemas/ids/1") in [(m, p.split("?")[0]) for m, p in feed.registry.requests]
    assert committed_total(feed.bootstrap, group) == count

    # The same group again: everything was committed, so nothing comes back.
    again = example.build_consumer(feed.bootstrap, group)
    try:
        assert example.consume(again, deserializer, TOPIC, seen.append, idle_timeout_s=5) == 0
    finally:
        again.close()


def test_the_example_prints_one_line_per_finding() -> None:
    example = load_example()
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        example.print_finding(to_dict(finding(3)))
    assert out.getvalue() == "HIGH     acme/web#3 src/m3.py:4 [llm:bug] finding 3 ✓\n"
