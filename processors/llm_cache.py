"""What a model said about a chunk, kept so the next push does not pay for it again.

The key is everything the answer depends on: the prompt version, the model,
the chunk's (redacted) text and the context shown beside it, plus the tenant
and repo: an answer may quote the context it was given, and one tenant's
code must never reach another's review, even through a cache. Line numbers are
NOT in the key: a chunk that moved because lines were added above it is the
same question. So the findings are stored relative to the chunk's first line
and rebased on the way out, and an unchanged function on the next push of a
PR costs nothing and yields the same findings, with the same fingerprints.

Entries expire after a TTL (90 days by default): models and their prices
change, and a review cached forever would hide that.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from processors.analysis import ModelFinding
from schemas.records import ChunkVerdict

DAY_MS = 86_400_000


def review_cache_key(
    prompt_version: str, model: str, scope: str, text: str, context: Sequence[str]
) -> str:
    """A digest of everything the model's answer about one chunk depends on.

    ``scope`` is "tenant/repo": answers are never shared across repositories.
    """
    digest = hashlib.sha256()
    for part in (prompt_version, model, scope, text, *context):
        data = part.encode("utf-8", "surrogatepass")
        digest.update(len(data).to_bytes(8, "big"))
        digest.update(data)
    return digest.hexdigest()


@dataclass(frozen=True, slots=True)
class CachedReview:
    """The model's findings for one chunk, lines relative to the chunk's first line."""

    at_ms: int
    findings: list[dict[str, Any]]

    def to_json(self) -> str:
        return json.dumps({"at_ms": self.at_ms, "findings": self.findings}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> CachedReview:
        data = json.loads(text)
        return cls(at_ms=int(data["at_ms"]), findings=list(data["findings"]))

    def is_fresh(self, now_ms: int, ttl_days: float) -> bool:
        return now_ms - self.at_ms < ttl_days * DAY_MS

    def rebased(self, chunk: ChunkVerdict) -> list[ModelFinding]:
        """The stored findings placed on ``chunk``'s current lines."""
        out = []
        for item in self.findings:
            start = chunk.start_line + int(item["start_offset"])
            end = chunk.start_line + int(item["end_offset"])
            fields = {k: v for k, v in item.items() if k not in ("start_offset", "end_offset")}
            out.append(
                ModelFinding.model_validate(
                    {**fields, "path": chunk.path, "start_line": start, "end_line": end}
                )
            )
        return out


def cached_review(
    chunk: ChunkVerdict, findings: Sequence[ModelFinding], now_ms: int
) -> CachedReview:
    """The model's findings placed on ``chunk`` (by ``analysis.place``), stored relative to it."""
    last = chunk.start_line + len(chunk.text.split("\n")) - 1
    kept = []
    for item in findings:
        if item.end_line < chunk.start_line or item.start_line > last:
            continue
        data = item.model_dump(exclude={"path", "start_line", "end_line"})
        data["start_offset"] = max(item.start_line, chunk.start_line) - chunk.start_line
        data["end_offset"] = min(item.end_line, last) - chunk.start_line
        kept.append(data)
    return CachedReview(at_ms=now_ms, findings=kept)
