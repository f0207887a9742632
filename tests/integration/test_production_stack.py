"""The same ops code against real Apache Kafka and Milvus in containers.

``codereview up`` with URLs configured starts no broker and no Milvus; it only
creates topics there. These tests prove that path on the real servers through
testcontainers, and skip with the reason when no Docker engine answers.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

from codereview.settings import (
    ClickHouseSettings,
    KafkaSettings,
    MilvusSettings,
    Settings,
    StackSettings,
)
from ops.processes import StackError
from ops.stack import EmbeddedStack, create_topics, resolve_endpoints
from streams.topics import TopicSpec, all_topics

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

# Confluent's packaging of Apache Kafka, the image testcontainers' KafkaContainer drives.
KAFKA_IMAGE = "confluentinc/cp-kafka:7.9.0"
MILVUS_IMAGE = "milvusdb/milvus:v2.6.9"
APP_ID = "codereview"


def docker_unavailable() -> str | None:
    """Why no container can run here, or None when a Docker engine answers."""
    import docker
    from docker.errors import DockerException
    from requests.exceptions import RequestException

    try:
        docker.from_env().ping()
    except (DockerException, RequestException) as exc:
        return f"no Docker engine reachable for testcontainers: {exc}"
    return None


@pytest.fixture(scope="module")
def kafka_bootstrap() -> Iterator[str]:
    reason = docker_unavailable()
    if reason:
        pytest.skip(reason)
    from testcontainers.community.kafka import KafkaContainer

    with KafkaContainer(KAFKA_IMAGE).with_kraft() as kafka:
        yield kafka.get_bootstrap_server()


@pytest.fixture(scope="module")
def milvus_uri() -> Iterator[str]:
    reason = docker_unavailable()
    if reason:
        pytest.skip(reason)
    from testcontainers.community.milvus import MilvusContainer

    with MilvusContainer(MILVUS_IMAGE) as milvus:
        yield milvus.get_connection_url()


def partition_counts(bootstrap: str) -> dict[str, int]:
    topics = AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=10).topics
    return {name: len(meta.partitions) for name, meta in topics.items()}


def test_create_topics_makes_every_declared_topic_on_apache_kafka(kafka_bootstrap: str) -> None:
    specs = all_topics(APP_ID, f"p{uuid.uuid4().hex[:6]}.")
    create_topics(kafka_bootstrap, specs)
    create_topics(kafka_bootstrap, specs)  # idempotent
    counts = partition_counts(kafka_bootstrap)
    assert {s.name: counts.get(s.name) for s in specs} == {s.name: s.partitions for s in specs}
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    resources = [ConfigResource("topic", s.name) for s in specs]
    futures = admin.describe_configs(resources)
    policies = {r.name: f.result()["cleanup.policy"].value for r, f in futures.items()}
    assert policies == {s.name: "compact" if s.compacted else "delete" for s in specs}


def precreate_with_admin(bootstrap: str, name: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    [future] = admin.create_topics([NewTopic(name, 3, 1)]).values()
    future.result()


def precreate_by_producing(bootstrap: str, name: str) -> None:
    """Kafka's default auto.create.topics.enable makes a one-partition topic on first use."""
    producer = Producer({"bootstrap.servers": bootstrap})
    producer.produce(name, b"early")
    assert producer.flush(30) == 0


@pytest.mark.parametrize(
    ("precreate", "existing"),
    [(precreate_with_admin, 3), (precreate_by_producing, 1)],
    ids=["created-with-3", "auto-created-with-1"],
)
def test_an_existing_topic_with_another_count_is_rejected(
    kafka_bootstrap: str, precreate: Callable[[str, str], None], existing: int
) -> None:
    name = f"t.{uuid.uuid4().hex[:10]}"
    precreate(kafka_bootstrap, name)
    create_topics(kafka_bootstrap, [TopicSpec(name, "k", "v", partitions=existing)])
    with pytest.raises(StackError, match=rf"{name} has {existing} partition\(s\), declared 4"):
        create_topics(kafka_bootstrap, [TopicSpec(name, "k", "v", partitions=4)])


def test_up_with_configured_services_starts_nothing_and_creates_the_topics(
    kafka_bootstrap: str, milvus_uri: str, tmp_path: Path
) -> None:
    prefix = f"u{uuid.uuid4().hex[:6]}."
    settings = Settings(
        stack=StackSettings(state_dir=tmp_path),
        kafka=KafkaSettings(bootstrap=kafka_bootstrap, topic_prefix=prefix),
        milvus=MilvusSettings(uri=milvus_uri),
        clickhouse=ClickHouseSettings(chdb_path=tmp_path / "chdb"),
    )
    stack = EmbeddedStack()
    info = stack.up(settings)
    try:
        assert info.pids == {}
        counts = partition_counts(kafka_bootstrap)
        specs = all_topics(APP_ID, prefix)
        assert {s.name: counts.get(s.name) for s in specs} == {s.name: s.partitions for s in specs}
        status = stack.status(tmp_path, settings)
        assert status["running"] is True
        assert {n: s["managed"] for n, s in status["services"].items()} == {
            "kafka": False,
            "milvus": False,
        }
        endpoints = resolve_endpoints(settings)
        assert (endpoints.kafka_bootstrap, endpoints.milvus_uri) == (kafka_bootstrap, milvus_uri)
    finally:
        stack.down(tmp_path)
