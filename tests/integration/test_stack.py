"""The embedded stack as real processes: noida-db and milvus-lite server on 127.0.0.1.

One module-scoped stack serves the read-only checks; tests that stop, kill or
restart a stack get their own state dir. A stack that only needs Kafka points
``milvus.uri`` at the shared server, so ``up`` starts noida-db alone.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic
from pydantic import SecretStr
from pymilvus import MilvusClient

from codereview.settings import (
    ClickHouseSettings,
    KafkaSettings,
    MilvusSettings,
    Settings,
    StackSettings,
)
from ops.processes import ManagedProcess, StackError, free_port, port_free
from ops.stack import (
    EmbeddedStack,
    StackInfo,
    create_topics,
    kafka_client_config,
    load_stack_info,
    resolve_endpoints,
)
from sinks.milvus import GRPC_OPTIONS
from streams.topics import PR_EVENTS, TopicSpec, all_topics

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

REPO_ROOT = Path(__file__).resolve().parents[2]
APP_ID = "codereview"


def make_settings(
    state_dir: Path,
    *,
    kafka: KafkaSettings | None = None,
    milvus: MilvusSettings | None = None,
    **stack: int,
) -> Settings:
    return Settings(
        stack=StackSettings(state_dir=state_dir, start_timeout_s=30.0, **stack),
        kafka=kafka or KafkaSettings(),
        milvus=milvus or MilvusSettings(),
        clickhouse=ClickHouseSettings(chdb_path=state_dir / "ch" / "chdb"),
    )


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Settings, StackInfo]]:
    settings = make_settings(tmp_path_factory.mktemp("shared-stack"))
    stack = EmbeddedStack()
    info = stack.up(settings)
    yield settings, info
    stack.down(settings.stack.state_dir)


def admin(bootstrap: str) -> AdminClient:
    return AdminClient({"bootstrap.servers": bootstrap})


def partition_counts(bootstrap: str) -> dict[str, int]:
    topics = admin(bootstrap).list_topics(timeout=10).topics
    return {name: len(meta.partitions) for name, meta in topics.items()}


def gone(pid: int) -> bool:
    """No such process, or a zombie with no thread left, waiting for a reaper that is not us."""
    try:
        proc = psutil.Process(pid)
        return proc.status() == psutil.STATUS_ZOMBIE and proc.num_threads() <= 1
    except psutil.NoSuchProcess:
        return True


@pytest.mark.parametrize("spec", all_topics(APP_ID), ids=lambda s: s.name)
def test_every_declared_topic_exists_with_its_partition_count_and_policy(
    shared: tuple[Settings, StackInfo], spec: TopicSpec
) -> None:
    _, info = shared
    assert partition_counts(info.kafka_bootstrap).get(spec.name) == spec.partitions
    resource = ConfigResource("topic", spec.name)
    client = admin(info.kafka_bootstrap)  # keep the handle alive until the future resolves
    config = client.describe_configs([resource])[resource].result()
    assert config["cleanup.policy"].value == ("compact" if spec.compacted else "delete")


def test_a_message_round_trips_through_the_broker(shared: tuple[Settings, StackInfo]) -> None:
    _, info = shared
    key, value = b"acme/api#7", uuid.uuid4().bytes
    delivered = []
    producer = Producer({"bootstrap.servers": info.kafka_bootstrap})
    producer.produce(PR_EVENTS.name, value, key, on_delivery=lambda e, m: delivered.append((e, m)))
    assert producer.flush(10) == 0
    [(error, message)] = delivered
    assert error is None
    partition, offset = message.partition(), message.offset()
    assert partition is not None and offset is not None
    consumer = Consumer(
        {"bootstrap.servers": info.kafka_bootstrap, "group.id": f"t-{uuid.uuid4().hex}"}
    )
    consumer.assign([TopicPartition(PR_EVENTS.name, partition, offset)])
    try:
        got = consumer.poll(10)
    finally:
        consumer.close()
    assert got is not None and got.error() is None
    assert (got.key(), got.value()) == (key, value)


def test_milvus_answers_a_search(shared: tuple[Settings, StackInfo]) -> None:
    _, info = shared
    client = MilvusClient(uri=info.milvus_uri, grpc_options=GRPC_OPTIONS)
    name = f"t_{uuid.uuid4().hex[:8]}"
    try:
        client.create_collection(name, dimension=4)
        client.insert(name, [{"id": i, "vector": [float(i), 1.0, 0.0, 0.0]} for i in (1, 2)])
        [hits] = client.search(name, data=[[2.0, 1.0, 0.0, 0.0]], limit=1)
        assert name in client.list_collections()
        assert hits[0]["id"] == 2
    finally:
        client.drop_collection(name)
        client.close()


def test_stack_json_records_the_running_stack(shared: tuple[Settings, StackInfo]) -> None:
    settings, info = shared
    assert load_stack_info(settings.stack.state_dir) == info
    assert set(info.pids) == {"kafka", "milvus"}
    assert all(not gone(pid) for pid in info.pids.values())
    assert info.kafka_bootstrap == f"127.0.0.1:{info.ports['kafka']}"
    assert info.milvus_uri == f"http://127.0.0.1:{info.ports['milvus']}"
    assert Path(info.chdb_path).parent.is_dir()
    status = EmbeddedStack().status(settings.stack.state_dir)
    assert status["running"] is True
    assert {n: s["healthy"] for n, s in status["services"].items()} == {
        "kafka": True,
        "milvus": True,
    }


@pytest.mark.parametrize(
    ("kafka_url", "milvus_url", "expected"),
    [
        ("", "", ("stack", "stack")),
        ("broker:9092", "", ("broker:9092", "stack")),
        ("", "http://milvus:19530", ("stack", "http://milvus:19530")),
    ],
)
def test_configured_urls_win_over_stack_json(
    shared: tuple[Settings, StackInfo], kafka_url: str, milvus_url: str, expected: tuple[str, str]
) -> None:
    settings, info = shared
    endpoints = resolve_endpoints(
        make_settings(
            settings.stack.state_dir,
            kafka=KafkaSettings(bootstrap=kafka_url),
            milvus=MilvusSettings(uri=milvus_url),
        )
    )
    stack_values = (info.kafka_bootstrap, info.milvus_uri)
    want = tuple(stack_values[i] if v == "stack" else v for i, v in enumerate(expected))
    assert (endpoints.kafka_bootstrap, endpoints.milvus_uri) == want


def test_resolve_endpoints_without_a_stack_says_run_up(tmp_path: Path) -> None:
    with pytest.raises(StackError, match="codereview up"):
        resolve_endpoints(make_settings(tmp_path))
    both = make_settings(
        tmp_path,
        kafka=KafkaSettings(bootstrap="k:9092"),
        milvus=MilvusSettings(uri="http://m:19530"),
    )
    assert resolve_endpoints(both).kafka_bootstrap == "k:9092"


def test_a_second_up_in_a_running_state_dir_is_refused(
    shared: tuple[Settings, StackInfo],
) -> None:
    settings, info = shared
    with pytest.raises(StackError, match="already running"):
        EmbeddedStack().up(settings)
    assert load_stack_info(settings.stack.state_dir) == info


def test_configured_services_are_not_started_but_get_the_topics(
    shared: tuple[Settings, StackInfo], tmp_path: Path
) -> None:
    _, external = shared
    settings = make_settings(
        tmp_path,
        kafka=KafkaSettings(bootstrap=external.kafka_bootstrap, topic_prefix="ext."),
        milvus=MilvusSettings(uri=external.milvus_uri),
    )
    stack = EmbeddedStack()
    info = stack.up(settings)
    assert info.pids == {}
    counts = partition_counts(external.kafka_bootstrap)
    assert {s.name: counts.get(s.name) for s in all_topics(APP_ID, "ext.")} == {
        s.name: s.partitions for s in all_topics(APP_ID, "ext.")
    }
    stack.down(tmp_path)
    # down only stops what up started: the configured services keep running.
    assert EmbeddedStack().status(Path(external.state_dir))["running"] is True


def precreate_with_admin(bootstrap: str, name: str) -> None:
    client = admin(bootstrap)
    [future] = client.create_topics([NewTopic(name, 3, 1)]).values()
    future.result()


def precreate_by_producing(bootstrap: str, name: str) -> None:
    """The trap: the broker auto-creates a one-partition topic on first use."""
    producer = Producer({"bootstrap.servers": bootstrap})
    producer.produce(name, b"early")
    assert producer.flush(10) == 0


@pytest.mark.parametrize(
    ("precreate", "existing"),
    [(precreate_with_admin, 3), (precreate_by_producing, 1)],
    ids=["created-with-3", "auto-created-with-1"],
)
def test_create_topics_accepts_the_right_count_and_rejects_another(
    shared: tuple[Settings, StackInfo], precreate: Callable[[str, str], None], existing: int
) -> None:
    _, info = shared
    name = f"t.{uuid.uuid4().hex[:10]}"
    precreate(info.kafka_bootstrap, name)
    create_topics(info.kafka_bootstrap, [TopicSpec(name, "k", "v", partitions=existing)])
    with pytest.raises(StackError, match=rf"{name} has {existing} partition\(s\), declared 4"):
        create_topics(info.kafka_bootstrap, [TopicSpec(name, "k", "v", partitions=4)])


def run_up_in_another_process(state_dir: Path) -> StackInfo:
    """``codereview up`` returns while the stack keeps running; so does this child."""
    code = textwrap.dedent(
        f"""
        from pathlib import Path
        from codereview.settings import ClickHouseSettings, Settings, StackSettings
        from ops.stack import EmbeddedStack
        state = Path({str(state_dir)!r})
        EmbeddedStack().up(Settings(
            stack=StackSettings(state_dir=state),
            clickhouse=ClickHouseSettings(chdb_path=state / "ch" / "chdb"),
        ))
        """
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("CODEREVIEW_")}
    subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, env=env, check=True, timeout=60)
    info = load_stack_info(state_dir)
    assert info is not None
    return info


def test_down_from_another_process_stops_everything_and_up_starts_fresh(
    tmp_path: Path,
) -> None:
    stack = EmbeddedStack()
    first = run_up_in_another_process(tmp_path)
    producer = Producer({"bootstrap.servers": first.kafka_bootstrap})
    producer.produce("leftover", b"from the first run")
    producer.produce(PR_EVENTS.name, b"from the first run", b"acme/api#1")
    assert producer.flush(10) == 0
    assert "leftover" in partition_counts(first.kafka_bootstrap)

    stack.down(tmp_path)
    assert all(gone(pid) for pid in first.pids.values())
    assert all(port_free("127.0.0.1", port) for port in first.ports.values())
    assert load_stack_info(tmp_path) is None
    assert stack.status(tmp_path)["running"] is False
    stack.down(tmp_path)  # idempotent

    second = stack.up(make_settings(tmp_path))
    try:
        assert "leftover" not in partition_counts(second.kafka_bootstrap)
        consumer = Consumer({"bootstrap.servers": second.kafka_bootstrap, "group.id": "fresh"})
        try:
            marks = [
                consumer.get_watermark_offsets(TopicPartition(PR_EVENTS.name, p), timeout=10)
                for p in range(PR_EVENTS.partitions)
            ]
        finally:
            consumer.close()
        assert marks == [(0, 0)] * PR_EVENTS.partitions
    finally:
        stack.down(tmp_path)


@pytest.mark.parametrize("taken", ["kafka_port", "milvus_port"])
def test_a_taken_port_fails_before_anything_starts_and_names_it(tmp_path: Path, taken: str) -> None:
    before = {p.pid for p in psutil.Process().children()}
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        port = holder.getsockname()[1]
        with pytest.raises(StackError, match=rf"port {port} is already in use") as raised:
            EmbeddedStack().up(make_settings(tmp_path, **{taken: port}))
    assert ("Kafka" if taken == "kafka_port" else "Milvus") in str(raised.value)
    assert load_stack_info(tmp_path) is None
    assert not (tmp_path / "logs").exists()  # no service was started, not even briefly
    assert {p.pid for p in psutil.Process().children()} == before


def test_a_killed_broker_is_reported_unhealthy(
    shared: tuple[Settings, StackInfo], tmp_path: Path
) -> None:
    settings = make_settings(tmp_path, milvus=MilvusSettings(uri=shared[1].milvus_uri))
    stack = EmbeddedStack()
    info = stack.up(settings)
    os.kill(info.pids["kafka"], signal.SIGKILL)
    try:
        deadline = time.monotonic() + 10  # SIGKILL lands asynchronously
        while (kafka := stack.status(tmp_path)["services"]["kafka"])["alive"]:
            assert time.monotonic() < deadline, "the killed broker still runs"
            time.sleep(0.05)
        assert kafka["healthy"] is False
        assert stack.status(tmp_path)["running"] is False
        with pytest.raises(StackError, match="codereview down"):
            resolve_endpoints(settings)
    finally:
        stack.down(tmp_path)
    assert load_stack_info(tmp_path) is None


SCRIPT_DIES = "for i in range(40): print(f'line-{i}', flush=True)\nraise SystemExit(3)"
SCRIPT_HANGS = "print('line-0', flush=True)\nimport time\ntime.sleep(60)"


@pytest.mark.parametrize(
    ("script", "timeout_s", "message", "absent"),
    [
        (SCRIPT_DIES, 20.0, r"exited before it was ready with code 3(.|\n)*line-39", "line-9\n"),
        (SCRIPT_HANGS, 0.5, r"not ready after(.|\n)*line-0", "never"),
    ],
    ids=["died", "timed-out"],
)
def test_wait_ready_fails_with_the_last_30_log_lines(
    tmp_path: Path, script: str, timeout_s: float, message: str, absent: str
) -> None:
    proc = ManagedProcess("svc", [sys.executable, "-c", script], tmp_path / "svc.log")
    proc.start()
    try:
        with pytest.raises(StackError, match=message) as raised:
            proc.wait_ready(lambda: False, timeout_s)
        assert absent not in str(raised.value)
    finally:
        proc.stop(timeout_s=2)
    assert not proc.alive()


@pytest.mark.parametrize(
    ("section", "expected"),
    [
        (KafkaSettings(), {"security.protocol": "PLAINTEXT"}),
        (
            KafkaSettings(
                security_protocol="sasl_ssl",
                sasl_mechanism="SCRAM-SHA-512",
                sasl_username="svc",
                sasl_password=SecretStr("pw"),
            ),
            {
                "security.protocol": "SASL_SSL",
                "sasl.mechanism": "SCRAM-SHA-512",
                "sasl.username": "svc",
                "sasl.password": "pw",
            },
        ),
        (KafkaSettings(security_protocol="SASL_SSL"), StackError),
        (KafkaSettings(security_protocol="TLS"), StackError),
    ],
    ids=["plaintext", "sasl-ssl", "sasl-without-mechanism", "unknown-protocol"],
)
def test_kafka_client_config(
    section: KafkaSettings, expected: dict[str, str] | type[StackError]
) -> None:
    if not isinstance(expected, dict):
        with pytest.raises(expected):
            kafka_client_config(section, "b:9092")
        return
    assert kafka_client_config(section, "b:9092") == {"bootstrap.servers": "b:9092", **expected}


def test_port_free_tells_a_free_port_from_a_listening_one() -> None:
    port = free_port()
    assert port_free("127.0.0.1", port)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", port))
        listener.listen()
        assert not port_free("127.0.0.1", port)
