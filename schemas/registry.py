"""Schema registries: a Confluent-compatible one by URL, or a local file.

Both hand out integer schema ids for the Confluent wire format. The local one
keeps ``{"schemas": [...], "subjects": {...}}`` in a JSON file guarded by an
``fcntl`` lock, so several worker processes on one machine agree on ids.
"""

from __future__ import annotations

import fcntl
import json
from pathlib import Path
from typing import Protocol

from schemas.errors import SchemaError


class SchemaRegistry(Protocol):
    def register(self, subject: str, schema: str) -> int:
        """Register ``schema`` (JSON text) under ``subject``; return its id."""
        ...

    def get(self, schema_id: int) -> str:
        """The schema text for ``schema_id``."""
        ...


class LocalSchemaRegistry:
    """A file-backed registry for the embedded stack and tests."""

    def __init__(self, path: Path) -> None:
        self._path = Path(path)
        self._path.parent.mkdir(parents=True, exist_ok=True)

    def register(self, subject: str, schema: str) -> int:
        canonical = _canonical(schema)
        with self._locked() as state:
            for i, known in enumerate(state["schemas"]):
                if known == canonical:
                    versions = state["subjects"].setdefault(subject, [])
                    if i + 1 not in versions:
                        versions.append(i + 1)
                    return i + 1
            state["schemas"].append(canonical)
            schema_id = len(state["schemas"])
            state["subjects"].setdefault(subject, []).append(schema_id)
            return schema_id

    def get(self, schema_id: int) -> str:
        with self._locked() as state:
            schemas: list[str] = state["schemas"]
        if not 1 <= schema_id <= len(schemas):
            raise SchemaError(f"schema id {schema_id} is not registered in {self._path}")
        return schemas[schema_id - 1]

    def _locked(self) -> _LockedState:
        return _LockedState(self._path)


class _LockedState:
    """Read-modify-write of the registry file under an exclusive lock."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._lock_path = path.with_suffix(path.suffix + ".lock")

    def __enter__(self) -> dict:
        self._lock = open(self._lock_path, "a+")  # noqa: SIM115 - released in __exit__
        fcntl.flock(self._lock, fcntl.LOCK_EX)
        if self._path.exists() and self._path.stat().st_size:
            self._state = json.loads(self._path.read_text())
        else:
            self._state = {"schemas": [], "subjects": {}}
        self._before = json.dumps(self._state, sort_keys=True)
        return self._state

    def __exit__(self, *exc: object) -> None:
        try:
            after = json.dumps(self._state, sort_keys=True)
            if exc[0] is None and after != self._before:
                tmp = self._path.with_suffix(".tmp")
                tmp.write_text(after)
                tmp.replace(self._path)
        finally:
            fcntl.flock(self._lock, fcntl.LOCK_UN)
            self._lock.close()


class ConfluentSchemaRegistry:
    """A Confluent-compatible Schema Registry over HTTP (production)."""

    def __init__(self, url: str) -> None:
        from confluent_kafka.schema_registry import SchemaRegistryClient

        self._client = SchemaRegistryClient({"url": url})

    def register(self, subject: str, schema: str) -> int:
        from confluent_kafka.schema_registry import Schema

        return int(self._client.register_schema(subject, Schema(schema, "AVRO")))

    def get(self, schema_id: int) -> str:
        return str(self._client.get_schema(schema_id).schema_str)


def _canonical(schema: str) -> str:
    try:
        return json.dumps(json.loads(schema), sort_keys=True, separators=(",", ":"))
    except json.JSONDecodeError as exc:
        raise SchemaError(f"schema is not JSON: {exc}") from exc
