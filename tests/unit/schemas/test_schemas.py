"""The wire formats: records match their .avsc, round-trip, and evolve BACKWARD-compatibly."""

from __future__ import annotations

import dataclasses
import json
import struct
from importlib import resources
from pathlib import Path

import pytest

from schemas.codec import AvroCodec, load_schema_texts
from schemas.compatibility import check_backward
from schemas.errors import DecodeError, SchemaError
from schemas.records import (
    RECORD_TYPES,
    ChunkVerdict,
    DeadLetter,
    FeedbackEvent,
    FileSnapshot,
    Finding,
    MetricEvent,
    PullRequestEvent,
    TriageResult,
)
from schemas.registry import LocalSchemaRegistry

RELEASED = Path(str(resources.files("schemas") / "avro" / "released"))

SAMPLES = [
    PullRequestEvent(
        event_id="e1",
        tenant="t",
        source="github",
        repo="o/r",
        pr_number=7,
        action="opened",
        head_sha="h",
        diff="diff --git a/x b/x\n",
        received_at_ms=1,
        files=[FileSnapshot("x.py", "print(1)\n"), FileSnapshot("gone.py", None)],
    ),
    Finding(
        fingerprint="f",
        event_id="e1",
        tenant="t",
        repo="o/r",
        pr_number=7,
        head_sha="h",
        path="x.py",
        start_line=1,
        end_line=2,
        rule_id="ruff:F821",
        category="bug",
        severity="HIGH",
        confidence=0.5,
        message="undefined name",
        origin="triage",
        received_at_ms=1,
        created_at_ms=2,
        suggestion="--- a\n+++ b\n",
    ),
    TriageResult(
        event_id="e1",
        tenant="t",
        repo="o/r",
        pr_number=7,
        head_sha="h",
        chunks=[ChunkVerdict("c", "x.py", "python", 1, 9, 0.75, True, "f", ["eval"], "x")],
        received_at_ms=1,
        triaged_at_ms=3,
        finding_fingerprints=["f"],
    ),
    FeedbackEvent(
        event_id="fb",
        fingerprint="f",
        tenant="t",
        repo="o/r",
        pr_number=7,
        rule_id="ruff:F821",
        verdict="REJECTED",
        signal="cli",
        at_ms=5,
    ),
    MetricEvent(
        stage="triage",
        event_id="e1",
        tenant="t",
        repo="o/r",
        pr_number=7,
        duration_ms=1.5,
        since_received_ms=20.0,
        at_ms=9,
        attrs={"chunks": "2"},
    ),
    DeadLetter(
        stage="chunk",
        error_class="ProcessorError",
        error="bad diff",
        original_topic="pr.events",
        at_ms=3,
        original_value=b"\x00\xff",
    ),
]


@pytest.fixture()
def codec(tmp_path: Path) -> AvroCodec:
    return AvroCodec(LocalSchemaRegistry(tmp_path / "registry.json"))


@pytest.mark.parametrize("record_type", RECORD_TYPES, ids=lambda t: t.__name__)
def test_dataclass_fields_match_schema(record_type: type) -> None:
    schema = json.loads(load_schema_texts()[record_type.SCHEMA])  # type: ignore[attr-defined]
    assert [f["name"] for f in schema["fields"]] != []
    assert {f["name"] for f in schema["fields"]} == {
        f.name for f in dataclasses.fields(record_type)
    }


@pytest.mark.parametrize("record", SAMPLES, ids=lambda r: type(r).__name__)
def test_round_trip_in_confluent_framing(codec: AvroCodec, record: object) -> None:
    data = codec.encode(record)  # type: ignore[arg-type]
    magic, schema_id = struct.unpack(">bI", data[:5])
    assert magic == 0 and schema_id >= 1
    assert codec.decode(data) == record


def test_two_codecs_on_one_registry_agree_on_ids(tmp_path: Path) -> None:
    a = AvroCodec(LocalSchemaRegistry(tmp_path / "r.json"))
    b = AvroCodec(LocalSchemaRegistry(tmp_path / "r.json"))
    assert a.schema_id("Finding") == b.schema_id("Finding")
    assert a.schema_id("Finding") != a.schema_id("CodeChunk")
    assert b.decode(a.encode(SAMPLES[1])) == SAMPLES[1]


@pytest.mark.parametrize(
    "data, reason",
    [
        (b"", "too short"),
        (b'{"json": true}', "magic byte"),
        (b"\x00\x00\x00\x03\xe7garbage", "not registered"),
    ],
)
def test_undecodable_bytes_raise_decode_error(codec: AvroCodec, data: bytes, reason: str) -> None:
    with pytest.raises(DecodeError, match=reason):
        codec.decode(data)


def test_truncated_body_is_a_decode_error(codec: AvroCodec) -> None:
    data = codec.encode(SAMPLES[0])
    with pytest.raises(DecodeError, match="bad Avro body"):
        codec.decode(data[:12])


def test_every_schema_has_a_released_snapshot() -> None:
    released = {p.stem for p in RELEASED.glob("*.avsc")}
    assert released == set(load_schema_texts())


@pytest.mark.parametrize("name", sorted(load_schema_texts()))
def test_current_schema_reads_the_released_version(name: str) -> None:
    """Fails when a schema change is not BACKWARD compatible with the committed release."""
    check_backward((RELEASED / f"{name}.avsc").read_text(), load_schema_texts()[name])


def test_compatibility_check_catches_a_new_field_without_default() -> None:
    old = load_schema_texts()["FeedbackEvent"]
    schema = json.loads(old)
    schema["fields"].append({"name": "team", "type": "string"})
    with pytest.raises(SchemaError, match="BACKWARD"):
        check_backward(old, json.dumps(schema))
    schema["fields"][-1]["default"] = ""
    check_backward(old, json.dumps(schema))


def test_compatibility_check_catches_a_removed_enum_symbol() -> None:
    old = json.dumps(
        {
            "type": "record",
            "name": "X",
            "fields": [{"name": "v", "type": {"type": "enum", "name": "V", "symbols": ["A", "B"]}}],
        }
    )
    new = json.dumps(
        {
            "type": "record",
            "name": "X",
            "fields": [{"name": "v", "type": {"type": "enum", "name": "V", "symbols": ["A"]}}],
        }
    )
    with pytest.raises(SchemaError):
        check_backward(old, new, samples=60)
