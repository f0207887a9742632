"""Code chunks and their vectors in Milvus: retrieval context and "embed once" memory.

One row per chunk, keyed by its deterministic ``chunk_id`` with auto ids off,
so a write is an upsert and replaying a batch leaves the row count unchanged.
``tenant`` is the partition key: every search is filtered to one tenant and
repo, and the partition key lets Milvus prune the other tenants' data.
``text_hash`` is stored (and indexed) so a worker can find vectors already
computed for a text, by any worker, before or after a restart.

Filters are built as strings with escaped literals: ``filter_params``
templating fails on milvus-lite, and a tenant or repo name must never be able
to widen a filter (``"a\\" or tenant != \\"``).

The same class works against the embedded ``milvus-lite server``
(``http://127.0.0.1:P``), an in-process ``./x.db`` file, and a real Milvus.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from pymilvus import DataType, MilvusClient
from pymilvus import exceptions as mex
from pymilvus.client.types import Status

from codereview.settings import MilvusSettings
from schemas.errors import SinkWriteError
from schemas.records import CodeChunk

# VARCHAR widths (bytes). Identity fields that do not fit are an error; display
# fields (path, symbol) are cut to fit, because a long symbol must not lose a row.
# pymilvus pings every 10 s even on an idle channel; milvus-lite's gRPC server
# allows a ping without calls once per 5 minutes and, after two early ones,
# closes the channel with GOAWAY "too_many_pings", failing the next calls.
# Seen in the e2e suite whenever a worker's or a test's channel sat idle.
# Pings while calls are active still detect a dead server.
GRPC_OPTIONS = {"grpc.keepalive_permit_without_calls": False}


_WIDTHS = {
    "chunk_id": 128,
    "tenant": 128,
    "repo": 512,
    "path": 2048,
    "language": 64,
    "symbol": 1024,
    "head_sha": 128,
    "text_hash": 128,
    "text": 65_535,
}
_IDENTITY = frozenset({"chunk_id", "tenant", "repo", "head_sha", "text_hash", "language"})
_UPSERT_ROWS = 1000  # rows per request: ~1.6 kB a 384-d row, far below gRPC's 64 MB
_LOOKUP_HASHES = 256  # text hashes per known_vectors query
_QUERY_LIMIT = 16_384  # Milvus' default cap on query results
_NUM_PARTITIONS = 16
_OUTPUT = [
    "chunk_id", "tenant", "repo", "path", "language", "symbol", "head_sha",
    "text_hash", "start_line", "end_line", "pr_number", "text",
]  # fmt: skip
_DEFINITIONS_LIMIT = 64  # rows per definitions lookup: a few per symbol is plenty
_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}
_RETRYABLE_CODES = frozenset({Status.CONNECT_FAILED, mex.ErrorCode.RATE_LIMIT})
_RETRYABLE = (
    mex.ConnectError,
    mex.MilvusUnavailableException,
    mex.ConnectionNotExistException,
    mex.SchemaMismatchRetryableException,
)


def milvus_literal(value: str) -> str:
    """``value`` as a double-quoted Milvus string literal that cannot break out."""
    out = []
    for ch in value:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ord(ch) < 0x20:
            raise ValueError(f"control character {ch!r} in a filter value")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


class MilvusSink:
    """Upserts ``(CodeChunk, vector)`` pairs; searches one tenant's repo at a time."""

    def __init__(
        self, *, uri: str, collection: str, dim: int, token: str = "", timeout_s: float = 30.0
    ) -> None:
        if dim < 1:
            raise ValueError("dim must be >= 1")
        self.uri = uri
        self.collection = collection
        self.dim = dim
        self._token = token
        self._timeout_s = timeout_s
        self._client: MilvusClient | None = None

    @classmethod
    def from_settings(cls, section: MilvusSettings, *, uri: str, dim: int) -> MilvusSink:
        """``uri`` is resolved by the caller (``section.uri`` or the embedded stack's)."""
        return cls(
            uri=uri,
            collection=section.collection,
            dim=dim,
            token=section.token.get_secret_value(),
        )

    def start(self) -> None:
        if self._client is not None:
            return
        with _mapped("connect"):
            client = MilvusClient(
                uri=self.uri, token=self._token, timeout=self._timeout_s, grpc_options=GRPC_OPTIONS
            )
        try:
            with _mapped("create collection"):
                if not client.has_collection(self.collection):
                    self._create(client)
                client.load_collection(self.collection)
            self._check_dim(client)
        except BaseException:
            client.close()
            raise
        self._client = client

    def write(self, batch: Sequence[tuple[CodeChunk, list[float]]]) -> None:
        """Upsert: the same batch twice leaves one row per chunk_id."""
        rows: dict[str, dict[str, Any]] = {}
        for chunk, vector in batch:
            rows[chunk.chunk_id] = self._row(chunk, vector)  # last one wins within a batch
        client = self._started()
        values = list(rows.values())
        for start in range(0, len(values), _UPSERT_ROWS):
            with _mapped("upsert"):
                client.upsert(self.collection, values[start : start + _UPSERT_ROWS])

    def known_vectors(self, text_hashes: Sequence[str]) -> dict[str, list[float]]:
        """Stored vectors for these text hashes, so their texts need no embedding.

        An optimization, not a guarantee: a hash whose rows fall past the query
        cap is simply missing and gets embedded again.
        """
        client = self._started()
        wanted = sorted(set(text_hashes))
        found: dict[str, list[float]] = {}
        for start in range(0, len(wanted), _LOOKUP_HASHES):
            part = wanted[start : start + _LOOKUP_HASHES]
            expr = "text_hash in [" + ", ".join(milvus_literal(h) for h in part) + "]"
            with _mapped("query"):
                rows = client.query(
                    self.collection,
                    filter=expr,
                    output_fields=["text_hash", "vector"],
                    limit=_QUERY_LIMIT,
                )
            for row in rows:
                found.setdefault(row["text_hash"], [float(x) for x in row["vector"]])
        return found

    def search(
        self,
        vector: Sequence[float],
        *,
        tenant: str,
        repo: str,
        limit: int = 5,
        exclude_pr: int | None = None,
    ) -> list[dict[str, Any]]:
        """The nearest chunks of the SAME tenant and repo, best first, with a ``score``."""
        if limit < 1:
            return []
        expr = f"tenant == {milvus_literal(tenant)} and repo == {milvus_literal(repo)}"
        if exclude_pr is not None:
            expr += f" and pr_number != {int(exclude_pr)}"
        client = self._started()
        with _mapped("search"):
            hits = client.search(
                self.collection,
                data=[list(vector)],
                filter=expr,
                limit=limit,
                output_fields=_OUTPUT,
                search_params={"metric_type": "COSINE"},
            )
        return [{**hit["entity"], "score": float(hit["distance"])} for hit in hits[0]]

    def definitions(
        self, symbols: Sequence[str], *, tenant: str, repo: str, exclude_pr: int | None = None
    ) -> list[dict[str, Any]]:
        """Chunks of the SAME tenant and repo that define one of ``symbols``.

        A chunk's ``symbol`` is its qualified name ("Cls.method"); a symbol
        matches its full name or its last part, so a call to ``method`` finds
        ``Cls.method``. Newest PR first, one row per symbol and path.
        """
        names = sorted({s for s in symbols if s})
        if not names:
            return []
        literals = ", ".join(milvus_literal(n) for n in names)
        likes = " or ".join(f"symbol like {milvus_literal('%.' + n)}" for n in names)
        expr = (
            f"tenant == {milvus_literal(tenant)} and repo == {milvus_literal(repo)}"
            f" and (symbol in [{literals}] or {likes})"
        )
        if exclude_pr is not None:
            expr += f" and pr_number != {int(exclude_pr)}"
        client = self._started()
        with _mapped("query"):
            rows = client.query(
                self.collection, filter=expr, output_fields=_OUTPUT, limit=_DEFINITIONS_LIMIT
            )
        best: dict[tuple[str, str], dict[str, Any]] = {}
        for row in sorted(rows, key=lambda r: -int(r.get("pr_number", 0))):
            best.setdefault((str(row.get("symbol")), str(row.get("path"))), dict(row))
        return list(best.values())

    def count(self, tenant: str | None = None) -> int:
        expr = "" if tenant is None else f"tenant == {milvus_literal(tenant)}"
        client = self._started()
        with _mapped("count"):
            rows = client.query(self.collection, filter=expr, output_fields=["count(*)"])
        return int(rows[0]["count(*)"])

    def close(self) -> None:
        """Upserts are acknowledged when ``write`` returns: nothing to flush, only release."""
        client, self._client = self._client, None
        if client is not None:
            client.close()

    def _started(self) -> MilvusClient:
        if self._client is None:
            raise SinkWriteError("MilvusSink used before start()", retryable=False)
        return self._client

    def _create(self, client: MilvusClient) -> None:
        """Create the collection; another worker starting at the same moment may win."""
        try:
            client.create_collection(
                self.collection, schema=self._schema(), consistency_level="Strong"
            )
        except mex.MilvusException as exc:
            if "already exists" not in str(exc) or not client.has_collection(self.collection):
                raise
            # Another worker created it; give it a moment to add the index.
            deadline = time.monotonic() + 10.0
            while not client.list_indexes(self.collection) and time.monotonic() < deadline:
                time.sleep(0.1)
            return
        # sync=False: an index on an empty collection is ready at once,
        # and waiting costs pymilvus' fixed 0.5 s poll per index.
        client.create_index(self.collection, self._index_params(client), sync=False)

    def _row(self, chunk: CodeChunk, vector: list[float]) -> dict[str, Any]:
        if len(vector) != self.dim or not all(math.isfinite(x) for x in vector):
            raise SinkWriteError(
                f"chunk {chunk.chunk_id}: vector of {len(vector)} dims (want {self.dim}) "
                "or not finite",
                retryable=False,
            )
        row: dict[str, Any] = {
            "chunk_id": chunk.chunk_id,
            "tenant": chunk.tenant,
            "repo": chunk.repo,
            "path": chunk.path,
            "language": chunk.language,
            "symbol": chunk.symbol or "",
            "head_sha": chunk.head_sha,
            "text_hash": chunk.text_hash,
            "text": chunk.text,
        }
        for field, width in _WIDTHS.items():
            row[field] = _fit(field, row[field], width)
        row.update(
            start_line=chunk.start_line,
            end_line=chunk.end_line,
            pr_number=chunk.pr_number,
            vector=[float(x) for x in vector],
        )
        return row

    def _schema(self) -> Any:
        schema = MilvusClient.create_schema(
            auto_id=False,
            enable_dynamic_field=False,
            partition_key_field="tenant",
            num_partitions=_NUM_PARTITIONS,
        )
        for field, width in _WIDTHS.items():
            schema.add_field(
                field, DataType.VARCHAR, max_length=width, is_primary=field == "chunk_id"
            )
        schema.add_field("start_line", DataType.INT32)
        schema.add_field("end_line", DataType.INT32)
        schema.add_field("pr_number", DataType.INT64)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=self.dim)
        return schema

    @staticmethod
    def _index_params(client: MilvusClient) -> Any:
        params = client.prepare_index_params()
        params.add_index(field_name="vector", index_type="AUTOINDEX", metric_type="COSINE")
        params.add_index(field_name="text_hash", index_type="INVERTED")
        return params

    def _check_dim(self, client: MilvusClient) -> None:
        """An existing collection of another width means another embedder: refuse."""
        with _mapped("describe collection"):
            info = client.describe_collection(self.collection)
        names = {field.get("name") for field in info.get("fields", [])}
        if "text" not in names:
            raise SinkWriteError(
                f"collection {self.collection} predates stored chunk text: use another collection",
                retryable=False,
            )
        for field in info.get("fields", []):
            if field.get("name") == "vector":
                dim = int(field.get("params", {}).get("dim", self.dim))
                if dim != self.dim:
                    raise SinkWriteError(
                        f"collection {self.collection} holds {dim}-d vectors, embedder gives "
                        f"{self.dim}-d: use another collection",
                        retryable=False,
                    )


def _fit(field: str, value: str, width: int) -> str:
    data = value.encode("utf-8")
    if len(data) <= width:
        return value
    if field in _IDENTITY:
        raise SinkWriteError(
            f"{field} longer than {width} bytes: {value[:60]!r}...", retryable=False
        )
    return data[:width].decode("utf-8", errors="ignore")


@contextmanager
def _mapped(action: str) -> Iterator[None]:
    """Client errors as ``SinkWriteError``: connection trouble and rate limits are retryable."""
    try:
        yield
    except SinkWriteError:
        raise
    except mex.MilvusException as exc:
        retryable = isinstance(exc, _RETRYABLE) or exc.code in _RETRYABLE_CODES
        raise SinkWriteError(f"milvus {action}: {exc}", retryable=retryable) from exc
    except (ConnectionError, TimeoutError) as exc:
        raise SinkWriteError(f"milvus {action}: {exc}", retryable=True) from exc
