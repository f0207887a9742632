"""The sink contract and the bounded batch buffer in front of every sink.

After Quix Streams' ``setup/add/flush``: a sink is started once, written to
in batches, and closed once at shutdown (closing twice is harmless and
flushes). The agent owns a :class:`BatchBuffer`, writes (and awaits) the
batch when the buffer is ready, and only then lets the offsets be committed,
so a crash replays the batch and the sink's idempotent write absorbs it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Generic, Protocol, TypeVar

from schemas.errors import CodeReviewError

T = TypeVar("T")
T_contra = TypeVar("T_contra", contravariant=True)


class Sink(Protocol[T_contra]):
    """A store that takes batches: start once, write idempotently, close once."""

    def start(self) -> None:
        """Connect and create what is missing (collections, tables); safe to repeat."""

    def write(self, batch: Sequence[T_contra]) -> None:
        """Store the batch, or raise ``SinkWriteError``; writing it twice changes nothing."""

    def close(self) -> None:
        """Flush and release the store; a second call does nothing."""


class BufferFullError(CodeReviewError):
    """The buffer holds ``capacity`` items: flush before adding more (backpressure)."""


class BatchBuffer(Generic[T]):
    """Items waiting for a sink, released by size or by age, never unbounded.

    ``ready(now)`` is true once ``max_items`` are waiting or the oldest has
    waited ``max_interval_s``. The clock is the caller's (``now`` in seconds,
    any monotonic origin) so the buffer is testable without sleeping. The age
    starts at the ``now`` given to ``add`` for the first item, or else at the
    first ``ready`` call that sees the buffer non-empty. ``add`` past
    ``capacity`` raises :class:`BufferFullError` instead of growing: the
    caller must flush (or pause its input) first.
    """

    def __init__(
        self, *, max_items: int, max_interval_s: float, capacity: int | None = None
    ) -> None:
        if max_items < 1:
            raise ValueError("max_items must be >= 1")
        if max_interval_s < 0:
            raise ValueError("max_interval_s must be >= 0")
        self.max_items = max_items
        self.max_interval_s = max_interval_s
        self.capacity = capacity if capacity is not None else 10 * max_items
        if self.capacity < max_items:
            raise ValueError("capacity must be >= max_items")
        self._items: list[T] = []
        self._since: float | None = None

    def __len__(self) -> int:
        return len(self._items)

    @property
    def full(self) -> bool:
        return len(self._items) >= self.capacity

    def add(self, item: T, now: float | None = None) -> None:
        if self.full:
            raise BufferFullError(f"batch buffer holds {self.capacity} items; flush first")
        if not self._items and now is not None:
            self._since = now
        self._items.append(item)

    def ready(self, now: float) -> bool:
        if not self._items:
            return False
        if self._since is None:
            self._since = now
        return len(self._items) >= self.max_items or now - self._since >= self.max_interval_s

    def drain(self) -> list[T]:
        items, self._items, self._since = self._items, [], None
        return items
