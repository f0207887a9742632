"""SCM webhook normalizers, one module per source, behind one registry.

Every source exposes the same three functions (``verify``, ``parse``,
``timestamp_ms``), so the ingest agent looks a source up by name and never
branches on vendors. Each returns a ``Normalized``: a PR to review, feedback
on review comments, or the reason the delivery is ignored.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from processors.scm import (
    azure_devops,
    bitbucket_cloud,
    bitbucket_dc,
    gerrit,
    gitea,
    github,
    gitlab,
)
from processors.scm.normalized import (
    SIGNALS,
    VERDICTS,
    FeedbackSignal,
    Normalized,
    fingerprint_marker,
)

__all__ = [
    "SIGNALS",
    "SOURCES",
    "VERDICTS",
    "FeedbackSignal",
    "Normalized",
    "Parser",
    "SourceSpec",
    "TimestampReader",
    "Verifier",
    "fingerprint_marker",
]


class Verifier(Protocol):
    """Whether a delivery is authentic under any of the tenant's active secrets."""

    def __call__(
        self, headers: Mapping[str, str], body: bytes, secrets: Sequence[bytes]
    ) -> bool: ...


class Parser(Protocol):
    """A delivery read into a ``Normalized``; ``ProcessorError`` if malformed."""

    def __call__(self, headers: Mapping[str, str], body: bytes, *, tenant: str) -> Normalized: ...


class TimestampReader(Protocol):
    """When the source says the event happened (epoch ms), for a replay window."""

    def __call__(self, headers: Mapping[str, str], body: bytes) -> int | None: ...


@dataclass(frozen=True)
class SourceSpec:
    """One SCM source: its name and the functions that read its webhooks."""

    name: str
    verify: Verifier
    parse: Parser
    timestamp_ms: TimestampReader


SOURCES: dict[str, SourceSpec] = {
    "github": SourceSpec("github", github.verify, github.parse, github.timestamp_ms),
    "gitlab": SourceSpec("gitlab", gitlab.verify, gitlab.parse, gitlab.timestamp_ms),
    "bitbucket-cloud": SourceSpec(
        "bitbucket-cloud",
        bitbucket_cloud.verify,
        bitbucket_cloud.parse,
        bitbucket_cloud.timestamp_ms,
    ),
    "bitbucket-dc": SourceSpec(
        "bitbucket-dc", bitbucket_dc.verify, bitbucket_dc.parse, bitbucket_dc.timestamp_ms
    ),
    "azure-devops": SourceSpec(
        "azure-devops", azure_devops.verify, azure_devops.parse, azure_devops.timestamp_ms
    ),
    "gerrit": SourceSpec("gerrit", gerrit.verify, gerrit.parse, gerrit.timestamp_ms),
    "gitea": SourceSpec("gitea", gitea.verify, gitea.parse, gitea.timestamp_ms),
    "forgejo": SourceSpec("forgejo", gitea.verify, gitea.parse, gitea.timestamp_ms),
}
