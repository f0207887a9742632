"""The embedded stack: a Kafka-protocol broker and a Milvus server as real processes.

``codereview up`` starts noida-db (Kafka protocol) and ``milvus-lite server``
on 127.0.0.1, creates every declared topic with its partition count, and
writes the addresses to ``<state_dir>/stack.json``; every later command (in
any process) reads them from there through ``resolve_endpoints``. Configured
URLs always win: with ``kafka.bootstrap`` or ``milvus.uri`` set, that service
is not started here (production: Apache Kafka, Milvus standalone) but the
topics are still created, so the same code path runs against both.

chdb is not started here: it is a library that only one process may open,
owned by the store worker; ``up`` only creates its parent directory.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from functools import partial
from importlib.resources import files
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from codereview.settings import KafkaSettings, Settings
from ops.processes import ManagedProcess, StackError, ensure_port_free, free_port, port_open
from streams.topics import TopicSpec, all_topics

HOST = "127.0.0.1"
STACK_FILE = "stack.json"
KAFKA, MILVUS = "kafka", "milvus"
_SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
_ADMIN_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class StackInfo:
    """What ``up`` started and where it listens; the content of ``stack.json``."""

    state_dir: str
    kafka_bootstrap: str
    milvus_uri: str
    pids: dict[str, int] = field(default_factory=dict)
    # psutil start times, so ``down`` never signals a process that reused a pid.
    process_started: dict[str, float] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)
    data_dirs: dict[str, str] = field(default_factory=dict)
    log_paths: dict[str, str] = field(default_factory=dict)
    chdb_path: str = ""
    started_at: int = 0  # epoch ms

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> StackInfo:
        return cls(**json.loads(text))

    def process(self, name: str) -> ManagedProcess:
        """A handle on a recorded service process, usable from any Python process."""
        return ManagedProcess.attach(
            name, self.pids[name], Path(self.log_paths[name]), self.process_started.get(name)
        )


@dataclass(frozen=True)
class Endpoints:
    """Where every other command finds the services: configured URLs, else ``stack.json``."""

    kafka_bootstrap: str
    milvus_uri: str
    clickhouse_url: str
    chdb_path: Path


def kafka_client_config(section: KafkaSettings, bootstrap: str) -> dict[str, str]:
    """The confluent-kafka (librdkafka) settings for ``bootstrap`` with SASL/TLS from settings."""
    protocol = section.security_protocol.upper()
    if protocol not in _SECURITY_PROTOCOLS:
        raise StackError(
            f"kafka.security_protocol={section.security_protocol!r} is not one of "
            f"{', '.join(_SECURITY_PROTOCOLS)}"
        )
    config = {"bootstrap.servers": bootstrap, "security.protocol": protocol}
    if protocol.startswith("SASL_"):
        if not section.sasl_mechanism:
            raise StackError(f"kafka.security_protocol={protocol} needs kafka.sasl_mechanism")
        config["sasl.mechanism"] = section.sasl_mechanism
        config["sasl.username"] = section.sasl_username
        config["sasl.password"] = section.sasl_password.get_secret_value()
    return config


def create_topics(
    bootstrap: str, specs: Iterable[TopicSpec], *, admin_config: dict[str, str] | None = None
) -> None:
    """Create every topic with its declared partition count; existing ones must match.

    Idempotent. A topic that exists with another count is an error, not a
    warning: noida-db (and Kafka with auto-create on) makes one-partition
    topics on first use, and Faust then fails far from the cause.
    """
    specs = tuple(specs)
    admin = AdminClient({**(admin_config or {}), "bootstrap.servers": bootstrap})
    metadata = _list_topics(admin, bootstrap)
    missing = [s for s in specs if s.name not in metadata.topics]
    if missing:
        replication = min(3, max(1, len(metadata.brokers)))
        futures = admin.create_topics(
            [_new_topic(s, replication) for s in missing],
            operation_timeout=_ADMIN_TIMEOUT_S,
            request_timeout=_ADMIN_TIMEOUT_S,
        )
        for name, future in futures.items():
            try:
                future.result()
            except KafkaException as exc:
                if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                    raise StackError(f"cannot create topic {name} on {bootstrap}: {exc}") from exc
    _verify_partitions(admin, bootstrap, specs)


def _new_topic(spec: TopicSpec, replication: int) -> NewTopic:
    config: dict[str, str] = {}
    if spec.compacted:
        config["cleanup.policy"] = "compact"
    if spec.retention_ms is not None:
        config["retention.ms"] = str(spec.retention_ms)
    return NewTopic(spec.name, spec.partitions, replication, config=config)


def _list_topics(admin: AdminClient, bootstrap: str) -> Any:
    try:
        return admin.list_topics(timeout=_ADMIN_TIMEOUT_S)
    except KafkaException as exc:
        raise StackError(f"cannot reach Kafka at {bootstrap}: {exc}") from exc


def _verify_partitions(admin: AdminClient, bootstrap: str, specs: tuple[TopicSpec, ...]) -> None:
    """Wait for metadata to show every topic, then fail loudly on any count mismatch."""
    deadline = time.monotonic() + _ADMIN_TIMEOUT_S
    while True:
        topics = _list_topics(admin, bootstrap).topics
        absent = [s.name for s in specs if s.name not in topics]
        wrong = [
            f"{s.name} has {len(topics[s.name].partitions)} partition(s), declared {s.partitions}"
            for s in specs
            if s.name in topics and len(topics[s.name].partitions) != s.partitions
        ]
        if wrong:
            raise StackError(
                f"topics on {bootstrap} do not match streams/topics.py: {'; '.join(wrong)} "
                "(auto-created on first use before `codereview up`? delete them or start fresh)"
            )
        if not absent:
            return
        if time.monotonic() >= deadline:
            raise StackError(f"topics not visible on {bootstrap} after creation: {absent}")
        time.sleep(0.1)


def kafka_healthy(
    bootstrap: str, timeout_s: float = 2.0, *, config: dict[str, str] | None = None
) -> bool:
    """Whether a broker answers a metadata request (the port alone can be open too early)."""
    host, _, port = bootstrap.split(",")[0].rpartition(":")
    if host in (HOST, "localhost") and port.isdigit() and not port_open(host, int(port)):
        return False  # skip librdkafka's connection-refused log noise
    admin = AdminClient({**(config or {}), "bootstrap.servers": bootstrap, "log_level": 0})
    try:
        admin.list_topics(timeout=timeout_s)
    except KafkaException:
        return False
    return True


def milvus_healthy(uri: str, timeout_s: float = 2.0, *, token: str = "") -> bool:
    """Whether Milvus answers ``list_collections``."""
    from pymilvus import MilvusClient
    from pymilvus.exceptions import MilvusException

    from sinks.milvus import GRPC_OPTIONS

    host_port = uri.split("://", 1)[-1].split("/", 1)[0]
    host, _, port = host_port.rpartition(":")
    if host in (HOST, "localhost") and port.isdigit() and not port_open(host, int(port)):
        return False
    try:
        client = MilvusClient(uri=uri, token=token, timeout=timeout_s, grpc_options=GRPC_OPTIONS)
        try:
            client.list_collections()
        finally:
            client.close()
    except MilvusException:
        return False
    return True


def load_stack_info(state_dir: Path) -> StackInfo | None:
    """The recorded stack, or None when ``up`` never ran (or ``down`` ran) here."""
    try:
        return StackInfo.from_json((Path(state_dir) / STACK_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None


def resolve_endpoints(settings: Settings) -> Endpoints:
    """Configured URLs win; otherwise the running embedded stack's addresses."""
    kafka, milvus = settings.kafka.bootstrap, settings.milvus.uri
    if not (kafka and milvus):
        info = load_stack_info(settings.stack.state_dir)
        if info is None:
            raise StackError("the embedded stack is not running: run `codereview up`")
        dead = [name for name in info.pids if not info.process(name).alive()]
        if dead:
            raise StackError(
                f"the embedded stack in {info.state_dir} is not running ({', '.join(dead)} "
                "stopped): run `codereview down` then `codereview up`"
            )
        kafka, milvus = kafka or info.kafka_bootstrap, milvus or info.milvus_uri
    return Endpoints(kafka, milvus, settings.clickhouse.url, settings.clickhouse.chdb_path)


@dataclass(frozen=True)
class _Service:
    """A service process to start, the port it was given, and how to ask it if it is up."""

    proc: ManagedProcess
    port: int
    endpoint: str
    healthy: Callable[[str], bool]

    def ready(self) -> bool:
        return self.healthy(self.endpoint)


class EmbeddedStack:
    """Starts, inspects and stops the embedded services recorded in a state dir."""

    def __init__(self) -> None:
        # Handles on processes this instance started, so it reaps its own children.
        self._started: dict[int, ManagedProcess] = {}

    def up(self, settings: Settings) -> StackInfo:
        """Start what is not configured, create every topic, record it all in ``stack.json``."""
        state_dir = Path(settings.stack.state_dir).resolve()
        self._refuse_running(state_dir)
        state_dir.mkdir(parents=True, exist_ok=True)
        services = _plan(settings, state_dir)
        started: list[_Service] = []
        try:
            for service in services:
                service.proc.start()
                self._started[service.proc.pid or 0] = service.proc
                started.append(service)
            for service in started:  # they start in parallel; wait for each
                service.proc.wait_ready(service.ready, settings.stack.start_timeout_s)
            by_name = {s.proc.name: s for s in started}
            bootstrap = settings.kafka.bootstrap or by_name[KAFKA].endpoint
            milvus_uri = settings.milvus.uri or by_name[MILVUS].endpoint
            create_topics(
                bootstrap,
                all_topics(settings.worker.app_id, settings.kafka.topic_prefix),
                admin_config=kafka_client_config(settings.kafka, bootstrap),
            )
            chdb_path = Path(settings.clickhouse.chdb_path).resolve()
            chdb_path.parent.mkdir(parents=True, exist_ok=True)
            info = StackInfo(
                state_dir=str(state_dir),
                kafka_bootstrap=bootstrap,
                milvus_uri=milvus_uri,
                pids={n: s.proc.pid for n, s in by_name.items() if s.proc.pid is not None},
                process_started={
                    n: s.proc.start_time for n, s in by_name.items() if s.proc.start_time
                },
                ports={n: s.port for n, s in by_name.items()},
                data_dirs={n: str(state_dir / n) for n in by_name},
                log_paths={n: str(s.proc.log_path) for n, s in by_name.items()},
                chdb_path=str(chdb_path),
                started_at=int(time.time() * 1000),
            )
            _write_atomically(state_dir / STACK_FILE, info.to_json())
        except BaseException:
            for service in started:
                service.proc.stop()
            raise
        return info

    def down(self, state_dir: Path) -> None:
        """Stop every process recorded in ``state_dir`` and forget them; idempotent."""
        info = load_stack_info(state_dir)
        if info is None:
            return
        for name, pid in info.pids.items():
            proc = self._started.pop(pid, None) or info.process(name)
            proc.stop()
        (Path(state_dir) / STACK_FILE).unlink(missing_ok=True)

    def status(self, state_dir: Path, settings: Settings | None = None) -> dict[str, Any]:
        """Health of each recorded service: process alive (if ours) and answering.

        ``settings`` supply SASL/TLS and the Milvus token for configured
        (production) services; the embedded ones need neither.
        """
        info = load_stack_info(state_dir)
        if info is None:
            return {"running": False, "state_dir": str(state_dir), "services": {}}
        kafka_check: Callable[[str], bool] = kafka_healthy
        milvus_check: Callable[[str], bool] = milvus_healthy
        if settings is not None:
            config = kafka_client_config(settings.kafka, info.kafka_bootstrap)
            kafka_check = partial(kafka_healthy, config=config)
            milvus_check = partial(milvus_healthy, token=settings.milvus.token.get_secret_value())
        services = {
            KAFKA: _service_status(info, KAFKA, info.kafka_bootstrap, kafka_check),
            MILVUS: _service_status(info, MILVUS, info.milvus_uri, milvus_check),
        }
        return {
            "running": all(s["healthy"] for s in services.values()),
            "state_dir": info.state_dir,
            "started_at": info.started_at,
            "services": services,
        }

    def _refuse_running(self, state_dir: Path) -> None:
        """One stack per state dir; a stale record (all processes gone) is cleaned up."""
        info = load_stack_info(state_dir)
        if info is None:
            return
        alive = {n: p for n, p in info.pids.items() if info.process(n).alive()}
        if alive:
            raise StackError(
                f"the embedded stack is already running in {state_dir} (pids {alive}): "
                "run `codereview down` first"
            )
        self.down(state_dir)


def _service_status(
    info: StackInfo, name: str, endpoint: str, healthy: Callable[[str], bool]
) -> dict[str, Any]:
    managed = name in info.pids
    alive = info.process(name).alive() if managed else None
    return {
        "endpoint": endpoint,
        "managed": managed,
        "pid": info.pids.get(name),
        "alive": alive,
        "healthy": alive is not False and healthy(endpoint),
        "log": info.log_paths.get(name),
    }


def _plan(settings: Settings, state_dir: Path) -> list[_Service]:
    """The services to start, every port checked before any of them starts."""
    plan: list[_Service] = []
    logs = state_dir / "logs"
    if not settings.kafka.bootstrap:
        port = settings.stack.kafka_port or free_port()
        ensure_port_free(HOST, port, "the embedded Kafka broker (noida-db)")
        argv = [_noida_binary(), "start", "--only", "kafka", "--kafka-port", str(port)]
        argv += ["--data-dir", str(state_dir / KAFKA), "--host", HOST]
        proc = ManagedProcess(KAFKA, argv, logs / "kafka.log")
        plan.append(_Service(proc, port, f"{HOST}:{port}", kafka_healthy))
    if not settings.milvus.uri:
        port = settings.stack.milvus_port or next(
            p for p in iter(free_port, None) if p not in {s.port for s in plan}
        )
        ensure_port_free(HOST, port, "the embedded Milvus server (milvus-lite)")
        argv = [_console_script("milvus-lite"), "server", "--data-dir", str(state_dir / MILVUS)]
        argv += ["--host", HOST, "--port", str(port)]
        proc = ManagedProcess(MILVUS, argv, logs / "milvus.log")
        plan.append(_Service(proc, port, f"http://{HOST}:{port}", milvus_healthy))
    for service in plan:
        _fresh_dir(state_dir / service.proc.name)
        service.proc.log_path.unlink(missing_ok=True)  # one log per run: its tail explains
    return plan


def _fresh_dir(path: Path) -> Path:
    """An empty data dir: noida-db keeps committed offsets even across topic deletion."""
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def _console_script(name: str) -> str:
    """A console script of this virtualenv (next to the interpreter), not whatever is on PATH."""
    path = Path(sys.executable).parent / name
    if not path.exists():
        raise StackError(f"{name} is not installed next to {sys.executable}")
    return str(path)


def _noida_binary() -> str:
    """The noida-db binary itself, so the recorded pid is the broker's.

    The ``noida-db`` console script is a Python wrapper that runs the binary
    as a child: its pid would not be the broker, and signalling only it
    would leave the broker running. Fall back to the script if the package
    layout ever changes.
    """
    binary = files("noida_db").joinpath("noida-db")
    if binary.is_file() and os.access(str(binary), os.X_OK):
        return str(binary)
    return _console_script("noida-db")


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
