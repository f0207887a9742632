"""Read code-review findings from Kafka: a starting point to copy into your own service.

Each record on ``pr.findings`` is one finding, Avro in the Confluent wire
format (magic byte, schema id, body), keyed ``tenant/repo#pr``. This consumer
looks the writer's schema up in a Confluent-compatible Schema Registry,
decodes the finding into a dict, handles it, and only then commits its
offset: a crash re-delivers what was not handled, never skips it, so make
``handle`` idempotent (the finding's ``fingerprint`` is its identity).

    python consumer.py --bootstrap localhost:9092 --registry http://localhost:8081

Needs only ``confluent-kafka[avro]`` (see README.md); nothing from the
platform's own code.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from collections.abc import Callable
from typing import Any

from confluent_kafka import Consumer, KafkaError, Message
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext

Handler = Callable[[dict[str, Any]], None]


def build_consumer(bootstrap: str, group: str, *, from_beginning: bool = True) -> Consumer:
    """A consumer in group ``group`` that commits by hand, after handling."""
    return Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "enable.auto.commit": False,
            # Where a group with no committed offset starts.
            "auto.offset.reset": "earliest" if from_beginning else "latest",
        }
    )


def build_deserializer(registry_url: str, basic_auth: str = "") -> AvroDeserializer:
    """Decodes with the writer's schema, fetched by id from the registry (and cached)."""
    conf = {"url": registry_url}
    if basic_auth:  # "user:secret"
        conf["basic.auth.user.info"] = basic_auth
    return AvroDeserializer(SchemaRegistryClient(conf))


def decode(deserializer: AvroDeserializer, topic: str, value: bytes | None) -> dict[str, Any]:
    """One message value as a finding dict (``severity`` is a string such as "HIGH")."""
    finding = deserializer(value, SerializationContext(topic, MessageField.VALUE))
    if not isinstance(finding, dict):
        raise ValueError(f"expected a record, got {type(finding).__name__}")
    return finding


def print_finding(finding: dict[str, Any]) -> None:
    """The example's handling: one line per finding. Replace with your own."""
    print(
        f"{finding['severity']:<8} {finding['repo']}#{finding['pr_number']} "
        f"{finding['path']}:{finding['start_line']} [{finding['rule_id']}] "
        f"{' '.join(str(finding['message']).split())}",
        flush=True,
    )


def consume(
    consumer: Consumer,
    deserializer: AvroDeserializer,
    topic: str,
    handle: Handler,
    *,
    should_stop: Callable[[], bool] = lambda: False,
    max_messages: int | None = None,
    idle_timeout_s: float | None = None,
) -> int:
    """Handle findings until ``should_stop()``, ``max_messages`` or an idle spell; the count.

    A message that does not decode is reported and committed past: in a real
    service send it to a dead-letter topic first, so nothing is lost.
    """
    consumer.subscribe([topic])
    handled = 0
    idle_s = 0.0
    poll_s = 0.5
    while not should_stop() and (max_messages is None or handled < max_messages):
        msg: Message | None = consumer.poll(poll_s)
        if msg is None:
            idle_s += poll_s
            if idle_timeout_s is not None and idle_s >= idle_timeout_s:
                break
            continue
        idle_s = 0.0
        error = msg.error()
        if error is not None:
            if error.code() == KafkaError._PARTITION_EOF:
                continue
            if error.fatal():
                raise RuntimeError(f"consumer failed: {error}")
            print(f"consumer error (retrying): {error}", file=sys.stderr)
            continue
        try:
            finding = decode(deserializer, msg.topic() or topic, msg.value())
        except Exception as exc:  # noqa: BLE001 - any decoding failure: report, skip, go on
            print(
                f"skipped {msg.topic()}[{msg.partition()}]@{msg.offset()}: {exc}", file=sys.stderr
            )
        else:
            handle(finding)
            handled += 1
        consumer.commit(message=msg, asynchronous=False)
    return handled


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Print code-review findings from Kafka.")
    parser.add_argument("--bootstrap", default=os.environ.get("KAFKA_BOOTSTRAP", "localhost:9092"))
    parser.add_argument(
        "--registry", default=os.environ.get("SCHEMA_REGISTRY_URL", "http://localhost:8081")
    )
    parser.add_argument("--registry-auth", default=os.environ.get("SCHEMA_REGISTRY_AUTH", ""))
    parser.add_argument("--topic", default="pr.findings")
    parser.add_argument("--group", default="findings-consumer-example")
    parser.add_argument("--latest", action="store_true", help="a new group starts at the end")
    parser.add_argument("--json", action="store_true", help="print each finding as JSON")
    args = parser.parse_args(argv)

    stopping = False

    def stop(signum: int, frame: Any) -> None:
        nonlocal stopping
        stopping = True  # the loop ends after the message in hand is handled and committed

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)

    def handle(finding: dict[str, Any]) -> None:
        if args.json:
            print(json.dumps(finding, ensure_ascii=False), flush=True)
        else:
            print_finding(finding)

    consumer = build_consumer(args.bootstrap, args.group, from_beginning=not args.latest)
    try:
        consume(
            consumer,
            build_deserializer(args.registry, args.registry_auth),
            args.topic,
            handle,
            should_stop=lambda: stopping,
        )
    finally:
        consumer.close()  # leaves the group at once, so its partitions move without a wait
    return 0


if __name__ == "__main__":
    sys.exit(main())
