"""Avro in the Confluent wire format: magic byte 0, a 4-byte schema id, the body.

One ``AvroCodec`` per process. It registers each record's schema under the
subject ``codereview.<Name>`` (record-name strategy, so one topic such as
``pipeline.metrics`` can carry two record types) the first time it writes
one, and resolves ids it has not seen through the registry when it reads.
Readers decode with the writer's schema and resolve into our current one,
which is what makes BACKWARD-compatible evolution work.
"""

from __future__ import annotations

import io
import json
import struct
from importlib import resources
from typing import Any

import fastavro

from schemas.errors import DecodeError, SchemaError
from schemas.records import RECORD_TYPES, RECORDS_BY_SCHEMA, Record, from_dict, to_dict
from schemas.registry import SchemaRegistry

MAGIC = 0
_HEADER = struct.Struct(">bI")
NAMESPACE = "codereview"


def load_schema_texts() -> dict[str, str]:
    """Every committed .avsc, by record name (``Finding`` -> JSON text)."""
    folder = resources.files("schemas") / "avro"
    return {
        entry.name.removesuffix(".avsc"): entry.read_text()
        for entry in folder.iterdir()
        if entry.name.endswith(".avsc")
    }


def parse(text: str) -> Any:
    try:
        return fastavro.parse_schema(json.loads(text))
    except (ValueError, fastavro.schema.SchemaParseException) as exc:
        raise SchemaError(str(exc)) from exc


class AvroCodec:
    """Encode typed records to Confluent-framed Avro and back."""

    def __init__(self, registry: SchemaRegistry) -> None:
        self._registry = registry
        self._texts = load_schema_texts()
        self._parsed = {name: parse(text) for name, text in self._texts.items()}
        missing = {t.SCHEMA for t in RECORD_TYPES} - set(self._parsed)  # type: ignore[attr-defined]
        if missing:
            raise SchemaError(f"no .avsc for records {sorted(missing)}")
        self._ids: dict[str, int] = {}
        self._writers: dict[int, tuple[str, Any]] = {}

    def schema_id(self, name: str) -> int:
        """The registry id of our current schema for record ``name``."""
        if name not in self._ids:
            schema_id = self._registry.register(f"{NAMESPACE}.{name}", self._texts[name])
            self._ids[name] = schema_id
            self._writers[schema_id] = (name, self._parsed[name])
        return self._ids[name]

    def encode(self, record: Record) -> bytes:
        name = record.SCHEMA
        schema_id = self.schema_id(name)
        buf = io.BytesIO()
        buf.write(_HEADER.pack(MAGIC, schema_id))
        fastavro.schemaless_writer(buf, self._parsed[name], to_dict(record))
        return buf.getvalue()

    def decode(self, data: bytes | None) -> Record:
        """Decode one message value; any failure is a ``DecodeError`` with the reason."""
        if not data or len(data) < _HEADER.size:
            raise DecodeError(f"message of {len(data or b'')} bytes is too short for Avro framing")
        magic, schema_id = _HEADER.unpack_from(data)
        if magic != MAGIC:
            raise DecodeError(f"unknown magic byte {magic} (expected {MAGIC})")
        name, writer = self._writer(schema_id)
        reader = self._parsed.get(name)
        if reader is None:
            raise DecodeError(f"schema id {schema_id} is {name}, which this codec does not read")
        try:
            body = fastavro.schemaless_reader(io.BytesIO(data[_HEADER.size :]), writer, reader)
        except Exception as exc:  # fastavro raises many types on bad bytes
            raise DecodeError(f"bad Avro body for {name} (schema id {schema_id}): {exc!r}") from exc
        if not isinstance(body, dict):
            raise DecodeError(f"Avro body for {name} is not a record")
        return from_dict(RECORDS_BY_SCHEMA[name], body)  # type: ignore[no-any-return]

    def _writer(self, schema_id: int) -> tuple[str, Any]:
        if schema_id not in self._writers:
            try:
                text = self._registry.get(schema_id)
            except SchemaError as exc:
                raise DecodeError(str(exc)) from exc
            raw = json.loads(text)
            self._writers[schema_id] = (str(raw.get("name", "")), parse(text))
        return self._writers[schema_id]
