"""SCM webhook normalizers, one module per source, behind one registry.

Every source exposes the same three functions (``verify``, ``parse``,
``timestamp_ms``), so the ingest agent looks a source up by name and never
branches on vendors. Each returns a ``Normalized``: a PR to review, feedback
on review comments, or the reason the delivery is ignored.
"""

from __future__ import annotations

import hashlib
import json
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
    "delivery_key",
    "event_name",
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


# Where each source names its delivery and its event; a redelivery repeats both.
# The delivery headers are the ones each source module reads, so the ingest
# key and the normalizer never disagree about what a redelivery is.
_DELIVERY_HEADERS: dict[str, tuple[str, ...]] = {
    "github": (github.DELIVERY_HEADER,),
    "gitlab": gitlab.DELIVERY_HEADERS,
    "bitbucket-cloud": (bitbucket_cloud.DELIVERY_HEADER,),
    "bitbucket-dc": (bitbucket_dc.DELIVERY_HEADER,),
    "gitea": gitea.DELIVERY_HEADERS,
    "forgejo": gitea.DELIVERY_HEADERS,
}
_EVENT_HEADERS: dict[str, tuple[str, ...]] = {
    "github": (github.EVENT_HEADER,),
    "gitlab": ("X-Gitlab-Event",),
    "bitbucket-cloud": (bitbucket_cloud.EVENT_HEADER,),
    "bitbucket-dc": (bitbucket_dc.EVENT_HEADER,),
    "gitea": gitea.EVENT_HEADERS,
    "forgejo": gitea.EVENT_HEADERS,
}


def delivery_key(source: str, headers: Mapping[str, str], body: bytes) -> str:
    """The id that makes a redelivery recognisable: the vendor's, else a body digest.

    Azure DevOps and Gerrit send no delivery header; their redeliveries repeat
    the body byte for byte, so its digest serves. Prefixed by source so two
    vendors' ids never collide.
    """
    lowered = {k.lower(): v for k, v in headers.items()}
    for name in _DELIVERY_HEADERS.get(source, ()):
        if lowered.get(name.lower()):
            return f"{source}:{lowered[name.lower()]}"
    return f"{source}:{hashlib.sha256(body).hexdigest()}"


def event_name(source: str, headers: Mapping[str, str], body: bytes) -> str:
    """The source's event name, from its header or (Azure, Gerrit) the body's type."""
    lowered = {k.lower(): v for k, v in headers.items()}
    for name in _EVENT_HEADERS.get(source, ()):
        if lowered.get(name.lower()):
            return lowered[name.lower()]
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return ""
    if isinstance(payload, dict):
        return str(payload.get("eventType") or payload.get("type") or "")
    return ""
