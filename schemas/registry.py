"""Schema registries: a Confluent-compatible one by URL, or a local file.

Both hand out integer schema ids for the Confluent wire format. The local one
keeps ``{"schemas": [...], "subjects": {...}}`` in a JSON file guarded by an
``fcntl`` lock, so several worker processes on one machine agree on ids.
"""

from __future__ import annotations

import base64
import fcntl
import json
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, Protocol

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
    """A Confluent-compatible Schema Registry over its REST API (production).

    Two calls are all the codec needs: register a schema under a subject
    (``POST /subjects/{subject}/versions``, idempotent: the same schema gets
    the same id) and fetch a schema by id (``GET /schemas/ids/{id}``). Plain
    HTTP keeps the confluent-kafka registry extra and its dependencies out.
    Credentials go in the URL (``https://user:secret@host``) as basic auth.
    """

    def __init__(self, url: str, *, timeout_s: float = 10.0) -> None:
        parts = urllib.parse.urlsplit(url)
        netloc = parts.hostname or ""
        if parts.port:
            netloc += f":{parts.port}"
        self._base = urllib.parse.urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))
        self._auth: str | None = None
        if parts.username:
            user = urllib.parse.unquote(parts.username)
            password = urllib.parse.unquote(parts.password or "")
            self._auth = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        self._timeout_s = timeout_s
        self._by_id: dict[int, str] = {}

    def register(self, subject: str, schema: str) -> int:
        quoted = urllib.parse.quote(subject, safe="")
        body = {"schema": schema, "schemaType": "AVRO"}
        answer = self._call("POST", f"/subjects/{quoted}/versions", body)
        schema_id = int(answer["id"])
        self._by_id[schema_id] = schema
        return schema_id

    def get(self, schema_id: int) -> str:
        if schema_id not in self._by_id:
            answer = self._call("GET", f"/schemas/ids/{schema_id}", None)
            self._by_id[schema_id] = str(answer["schema"])
        return self._by_id[schema_id]

    def _call(self, method: str, path: str, body: dict[str, Any] | None) -> dict[str, Any]:
        data = json.dumps(body).encode() if body is not None else None
        headers = {
            "Accept": "application/vnd.schemaregistry.v1+json",
            "Content-Type": "application/vnd.schemaregistry.v1+json",
        }
        if self._auth:
            headers["Authorization"] = self._auth
        request = urllib.request.Request(
            self._base + path, data=data, headers=headers, method=method
        )
        try:
            with urllib.request.urlopen(request, timeout=self._timeout_s) as response:
                return dict(json.loads(response.read()))
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")[:300]
            raise SchemaError(f"schema registry {method} {path}: {exc.code} {detail}") from exc
        except (urllib.error.URLError, TimeoutError) as exc:
            raise SchemaError(f"schema registry at {self._base} unreachable: {exc}") from exc


def _canonical(schema: str) -> str:
    try:
        return json.dumps(json.loads(schema), sort_keys=True, separators=(",", ":"))
    except json.JSONDecodeError as exc:
        raise SchemaError(f"schema is not JSON: {exc}") from exc
