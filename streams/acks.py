"""Events acknowledged only once they were handled, one at a time or in batches.

Faust acks an event in a ``finally`` around the ``yield`` that hands it to
the agent (``Stream.__aiter__``, and ``take_events`` for a whole batch).
When a worker stops while the agent is still working (a restart, a
rebalance), the cancellation runs that ``finally``: the event counts as
done, its offset is committed, and nobody ever handles it. Seen here: after
a publish worker was restarted mid-backlog, every offset of ``pr.findings``
was committed but only 65 of its 128 findings had been handled.

Here the stream's own acks are off (``noack``, ``noack_take``) and the ack
comes after the agent's turn: an event whose work was cut short is
delivered again to the next owner of its partition. Every agent's effects
are keyed (fingerprints, ids, the publisher's markers), so a repeat changes
nothing. An event that went to the dead-letter topic was handled too.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import cast

import faust


async def handled_events(stream: faust.StreamT) -> AsyncIterator[faust.EventT]:
    """The stream's events, each acked when the caller asks for the next one."""
    source = cast(faust.Stream, cast(faust.Stream, stream).noack())
    async for event in source.events():
        yield event
        await source.ack(event)


async def handled_batches(
    stream: faust.StreamT, size: int, within_s: float
) -> AsyncIterator[list[faust.EventT]]:
    """Up to ``size`` events, or what came within ``within_s``; acked after the caller's turn."""
    source = cast(faust.Stream, stream)
    async for events in source.noack_take(size, within=within_s):
        batch = cast(list[faust.EventT], list(events))
        yield batch
        for event in batch:
            await source.ack(event)
