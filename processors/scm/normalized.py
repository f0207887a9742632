"""What every SCM webhook becomes: a PR to review, feedback on findings, or nothing.

Each source module (``gitlab``, ``bitbucket_cloud``, ...) turns its vendor's
payload into one ``Normalized`` so the rest of the platform never learns a
vendor's field names. Feedback cannot be joined to a finding here (the
payload does not carry our fingerprint), so a ``FeedbackSignal`` keeps the
comment id and an excerpt of the comment body: a later step finds the hidden
``<!-- codereview:fp=HEX -->`` marker our review comments carry, or joins a
reply to the thread our comment started.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from processors.github_events import PullRequestRef

SIGNALS = ("reaction", "resolved", "dismissed", "reply", "comment")
VERDICTS = ("ACCEPTED", "REJECTED", "IGNORED")
EXCERPT_CHARS = 500

_MARKER = re.compile(r"<!--\s*codereview:fp=([0-9a-fA-F]{8,128})\s*-->")


@dataclass(frozen=True)
class FeedbackSignal:
    """A human's reaction to a comment on a PR, not yet joined to a finding.

    ``verdict`` is what the signal says on its own: a thumbs-up or a resolved
    thread accepts, a thumbs-down or a deleted comment rejects, and a plain
    comment or reply is ``IGNORED`` until someone reads its words.
    ``thread_id`` names the discussion a comment belongs to (empty when the
    source has none), so a reply can be joined to our comment at its root.
    """

    repo: str
    pr_number: int
    signal: str
    verdict: str
    actor: str
    comment_id: str
    body_excerpt: str
    thread_id: str = ""

    def __post_init__(self) -> None:
        if self.signal not in SIGNALS:
            raise ValueError(f"unknown feedback signal {self.signal!r}")
        if self.verdict not in VERDICTS:
            raise ValueError(f"unknown feedback verdict {self.verdict!r}")


@dataclass(frozen=True)
class Normalized:
    """One webhook delivery, read: a PR to review, feedback, or why it was ignored.

    ``delivery_id`` is the vendor's delivery id when it sends one, else a
    digest of the body, so a redelivery can be recognised.
    """

    pull_request: PullRequestRef | None
    feedback: list[FeedbackSignal] = field(default_factory=list)
    delivery_id: str = ""
    ignored_reason: str | None = None


def fingerprint_marker(text: str | None) -> str | None:
    """The finding fingerprint hidden in ``text`` by our review comments, lower-cased."""
    if not text:
        return None
    found = _MARKER.search(text)
    return found.group(1).lower() if found else None


def excerpt(text: str | None) -> str:
    """The start of a comment body, keeping our fingerprint marker if it lies beyond.

    Our comments put the marker last, so a plain cut would lose exactly the
    part the join needs.
    """
    if not text:
        return ""
    if len(text) <= EXCERPT_CHARS:
        return text
    head = text[:EXCERPT_CHARS]
    fingerprint = fingerprint_marker(text)
    if fingerprint and fingerprint_marker(head) != fingerprint:
        head += f"\n<!-- codereview:fp={fingerprint} -->"
    return head


def ignored(delivery_id: str, reason: str) -> Normalized:
    """A delivery the product does not act on, and why."""
    return Normalized(
        pull_request=None, feedback=[], delivery_id=delivery_id, ignored_reason=reason
    )


def reviewable(delivery_id: str, ref: PullRequestRef) -> Normalized:
    """A delivery that asks for a review of ``ref``."""
    return Normalized(pull_request=ref, feedback=[], delivery_id=delivery_id)


def feedback(delivery_id: str, *signals: FeedbackSignal) -> Normalized:
    """A delivery that carries feedback on comments."""
    return Normalized(pull_request=None, feedback=list(signals), delivery_id=delivery_id)
