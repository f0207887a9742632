"""Sinks: where records leave the stream for a store (Milvus, ClickHouse, publishers).

Every sink follows the small contract in :mod:`sinks.base` (``start``,
``write(batch)``, ``close``) and every write is idempotent, so an agent may
replay a batch after a crash without creating duplicates. Sinks never import
``streams``; the agents import them.
"""
