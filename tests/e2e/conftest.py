"""The whole platform as real processes: noida-db, milvus-lite server, a store
worker and two pipeline workers, plus a local GitHub API serving golden PRs."""

from __future__ import annotations

import io
import json
import struct
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fastavro
import pytest
from confluent_kafka import Consumer, TopicPartition

from codereview.settings import (
    ClickHouseSettings,
    LlmSettings,
    SchemaRegistrySettings,
    Settings,
    SourceSettings,
    StackSettings,
    WorkerSettings,
)
from ops.workers import load_workers, start_platform, stop_platform
from sources.scm_api import SOURCES as SCM_SOURCES
from tests.fakes.github import GOLDEN, GoldenPullRequest, load_golden
from tests.fakes.scm_servers import FakeScmServers

SECRET = b"e2e-webhook-secret"
# The secret being rotated in: both are active at once.
NEXT_SECRET = b"e2e-webhook-secret-next"
MAX_BODY = 2 * 2**20
LEARNING_TENANT, LEARNING_API_KEY = "learner", "learner-key"


@dataclass
class Platform:
    settings: Settings
    github: FakeScmServers
    golden: list[GoldenPullRequest]
    bootstrap: str

    def __repr__(self) -> str:  # the golden data inside would flood test reports
        return f"Platform({self.state_dir})"

    @property
    def state_dir(self) -> Path:
        return Path(self.settings.stack.state_dir)

    def pipeline_urls(self) -> list[str]:
        return [w.url for w in load_workers(self.state_dir) if w.role == "pipeline"]


@pytest.fixture(scope="session")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    if not GOLDEN.exists():
        pytest.skip(f"golden cases not found at {GOLDEN}")
    root = tmp_path_factory.mktemp("platform")
    golden = load_golden(limit=40)
    with FakeScmServers() as github:
        for pr in golden:
            github.add(pr)
        settings = Settings(
            stack=StackSettings(state_dir=root / "stack"),
            schema_registry=SchemaRegistrySettings(local_path=root / "registry.json"),
            clickhouse=ClickHouseSettings(chdb_path=root / "chdb", flush_interval_s=0.3),
            source=SourceSettings(
                # Every source's API is served by the one fake; Azure DevOps
                # takes the organization URL, the others the server root.
                api_urls={
                    **{source: github.url for source in SCM_SOURCES},
                    "azure-devops": github.azure_url,
                },
                webhook_secrets={
                    "default/github": [SECRET.decode(), NEXT_SECRET.decode()],
                    "acme/github": [SECRET.decode()],
                    **{
                        f"default/{source}": [SECRET.decode()]
                        for source in SCM_SOURCES
                        if source != "github"
                    },
                },
                max_body_bytes=MAX_BODY,
                # A tenant of its own for the learning tests: what its feedback
                # teaches must not change the other tests' findings.
                api_keys={"default": ["dev-api-key"], LEARNING_TENANT: [LEARNING_API_KEY]},
            ),
            worker=WorkerSettings(app_id=f"cr-e2e-{uuid.uuid4().hex[:6]}", data_dir=root / "faust"),
        )
        start_platform(settings, workers=2)
        try:
            from ops.stack import load_stack_info

            info = load_stack_info(Path(settings.stack.state_dir).resolve())
            assert info is not None
            yield Platform(settings, github, golden, info.kafka_bootstrap)
        finally:
            stop_platform(settings)


def api_platform_settings(root: Path, *, api_key: str, llm: LlmSettings, app: str) -> Settings:
    """Settings for a platform fed through ``POST /v1/events`` and reviewed by ``llm``."""
    return Settings(
        stack=StackSettings(state_dir=root / "stack"),
        schema_registry=SchemaRegistrySettings(local_path=root / "registry.json"),
        clickhouse=ClickHouseSettings(chdb_path=root / "chdb", flush_interval_s=0.3),
        source=SourceSettings(api_keys={"default": [api_key]}),
        llm=llm,
        worker=WorkerSettings(app_id=f"{app}-{uuid.uuid4().hex[:6]}", data_dir=root / "faust"),
    )


def post_event(url: str, api_key: str, body: bytes) -> int:
    """POST a normalized PR to a pipeline worker's ``/v1/events``; the HTTP status."""
    request = urllib.request.Request(
        url + "/v1/events",
        data=body,
        headers={"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


class AvroTopicReader:
    """An independent consumer: confluent-kafka + fastavro + the registry file.

    It shares no code with the workers' codec, so a framing or schema bug in
    our codec cannot hide behind the same bug on the reading side.
    """

    def __init__(self, bootstrap: str, registry_path: Path, topics: list[str]) -> None:
        self._consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": f"e2e-reader-{uuid.uuid4().hex}",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
            }
        )
        self._consumer.subscribe(topics)
        self._registry_path = registry_path
        self._schemas: dict[int, Any] = {}
        self.records: dict[str, list[dict[str, Any]]] = {t: [] for t in topics}
        self.raw: dict[str, list[tuple[bytes | None, bytes | None, int]]] = {t: [] for t in topics}

    def decode(self, value: bytes) -> tuple[str, dict[str, Any]]:
        magic, schema_id = struct.unpack(">bI", value[:5])
        assert magic == 0, f"bad magic byte {magic}"
        if schema_id not in self._schemas:
            registry = json.loads(self._registry_path.read_text())
            self._schemas[schema_id] = json.loads(registry["schemas"][schema_id - 1])
        schema = self._schemas[schema_id]
        parsed = fastavro.parse_schema(schema)
        return schema["name"], fastavro.schemaless_reader(io.BytesIO(value[5:]), parsed, parsed)

    def poll_until(self, done: Any, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for msg in self._consumer.consume(500, timeout=0.5):
                if msg.error():
                    continue
                topic = msg.topic()
                self.raw[topic].append((msg.key(), msg.value(), msg.timestamp()[1]))
                try:
                    _, record = self.decode(msg.value())
                except Exception:
                    continue
                record["_timestamp_ms"] = msg.timestamp()[1]
                record["_headers"] = {k: v.decode() for k, v in (msg.headers() or [])}
                self.records[topic].append(record)
            if done(self):
                return True
        return bool(done(self))

    def close(self) -> None:
        self._consumer.close()


def end_offsets(bootstrap: str, topic: str, partitions: int) -> int:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"probe-{uuid.uuid4().hex}"})
    try:
        total = 0
        for p in range(partitions):
            _, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=5)
            total += high
        return total
    finally:
        consumer.close()
