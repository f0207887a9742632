"""A pause after an empty fetch, for brokers that answer fetches at once.

Kafka holds an empty fetch for up to ``fetch.max.wait.ms``; the embedded
noida-db broker answers immediately, so aiokafka (under Faust) re-fetches in
a tight loop. Measured here: an idle aiokafka consumer burned 84% of a core,
and three idle workers plus the broker took 1.6 of this machine's 2 cores.
This wrapper sleeps out the rest of ``seconds`` after a fetch that brought no
records; against a real Kafka the broker already waited longer than that, so
the wrapper never sleeps there. Cost: at most ``seconds`` of extra latency
when a topic goes from idle to busy. It patches aiokafka's fetcher once per
process (the only place the fetch loop can be shaped from outside).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aiokafka.consumer.fetcher import Fetcher

_ORIGINAL = Fetcher._proc_fetch_request
_state = {"seconds": 0.0}


async def _proc_fetch_request(self: Any, assignment: Any, node_id: Any, request: Any) -> bool:
    started = time.monotonic()
    got_records = bool(await _ORIGINAL(self, assignment, node_id, request))
    remaining = _state["seconds"] - (time.monotonic() - started)
    if not got_records and remaining > 0:
        try:
            await asyncio.sleep(remaining)
        except asyncio.CancelledError:  # the fetcher is closing: same as the original
            return False
    return got_records


def install_empty_fetch_backoff(seconds: float) -> None:
    """Make every aiokafka consumer in this process pause ``seconds`` after an empty fetch."""
    _state["seconds"] = max(0.0, seconds)
    Fetcher._proc_fetch_request = _proc_fetch_request  # type: ignore[method-assign]
