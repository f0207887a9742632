"""Forgetting a Faust table's old entries, from inside the stream that writes them.

Faust sends every table change to the changelog partition of the event being
processed, and refuses a change made anywhere else ("Cannot modify table key
from outside of stream iteration"): a sweep in an ``app.timer`` crashes the
worker the first time it finds something to delete. So the sweep runs in the
agent, on an event, and deletes only the entries written from that event's
partition, which are exactly the ones whose changelog partition it is.

For that, every entry of a table that expires carries ``at_ms`` (when it was
written) and ``partition`` (``stamp`` adds it from the current event). Values
are dicts, or JSON text of one (the LLM cache). An entry without a partition
(written outside a stream, as unit tests do) is never swept.
"""

from __future__ import annotations

import json
from typing import Any

from faust.streams import current_event


def stamp(fields: dict[str, Any]) -> dict[str, Any]:
    """``fields`` with the partition of the event being processed (None outside a stream)."""
    event = current_event()
    return {**fields, "partition": event.message.partition if event is not None else None}


def stamp_json(text: str) -> str:
    """``stamp`` for a value kept as the JSON text of an object."""
    return json.dumps(stamp(json.loads(text)), sort_keys=True)


class TableSweeper:
    """Deletes entries older than ``ttl_ms``, at most once per ``every_ms`` per partition."""

    def __init__(self, table: Any, *, ttl_ms: float, every_ms: float = 3_600_000) -> None:
        self.table = table
        self.ttl_ms = ttl_ms
        self.every_ms = every_ms
        self._last: dict[int, int] = {}  # partition -> when it was last swept

    def sweep(self, now_ms: int) -> int:
        """Call while processing an event: sweep its partition if due; how many were deleted."""
        event = current_event()
        if event is None:
            return 0
        partition = event.message.partition
        if now_ms - self._last.get(partition, -self.every_ms) < self.every_ms:
            return 0
        self._last[partition] = now_ms
        cutoff = now_ms - self.ttl_ms
        old = []
        for key, value in list(self.table.items()):
            written = _written(value)
            if written is not None and written[0] == partition and written[1] < cutoff:
                old.append(key)
        for key in old:
            del self.table[key]
        return len(old)


def _written(value: Any) -> tuple[int, int] | None:
    """(partition, at_ms) of a stamped entry, or None."""
    if isinstance(value, str | bytes):
        try:
            value = json.loads(value)
        except ValueError:
            return None
    if not isinstance(value, dict):
        return None
    partition, at_ms = value.get("partition"), value.get("at_ms")
    if not isinstance(partition, int) or not isinstance(at_ms, int | float):
        return None
    return partition, int(at_ms)
