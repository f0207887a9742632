"""What a finding looks like as a comment on a pull request, and which ones to post.

Publishers (``sinks/scm/``) turn findings into comments on each SCM. What is
the same for all of them lives here, pure: the comment's text, the hidden
marker that carries the finding's fingerprint inside the comment, the
one-click suggestion block made from the finding's patch, and the decision
of what to post, given what the PR already shows.

The marker is the comment's identity. It is an HTML comment
(``<!-- codereview:fp=<fingerprint> -->``) that every SCM here renders as
nothing, so reading back a PR's comments tells which findings it already
shows: after a crash, a retry of an ambiguous POST, or a lost state table,
the publisher looks for the marker before it posts, and never posts a second
comment for one fingerprint.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from processors.patches import patch_edits
from schemas.records import SEVERITIES, Finding, severity_rank

MARKER_PREFIX = "<!-- codereview:fp="
_MARKER = re.compile(r"<!-- codereview:fp=([0-9a-f]{16,64}) -->")
_SEVERITY_BADGE = {
    "CRITICAL": "Critical",
    "HIGH": "High",
    "MEDIUM": "Medium",
    "LOW": "Low",
    "INFO": "Info",
}


@dataclass(frozen=True, slots=True)
class Comment:
    """One inline comment to post: where, and the full body (marker included).

    ``suggestion`` is the replacement text of lines ``start_line..end_line``
    when the finding's patch touches only those lines, for SCMs that offer a
    one-click apply (GitHub, GitLab, Gitea); ``body`` already shows it.
    """

    fingerprint: str
    path: str
    start_line: int
    end_line: int
    body: str
    severity: str
    title: str
    suggestion: str | None = None


@dataclass(frozen=True, slots=True)
class CheckPolicy:
    """How a PR's findings become a check's conclusion (per repo, from settings).

    ``fail_on``: the lowest severity that fails the check; "" never fails.
    ``neutral_on``: the lowest severity that makes it neutral rather than success.
    """

    fail_on: str = "HIGH"
    neutral_on: str = "LOW"


def marker(fingerprint: str) -> str:
    """The hidden text that makes a comment findable by its finding's fingerprint."""
    return f"{MARKER_PREFIX}{fingerprint} -->"


def fingerprint_in(body: str | None) -> str | None:
    """The fingerprint a comment body carries, or None for a comment that is not ours."""
    if not body:
        return None
    found = _MARKER.search(body)
    return found.group(1) if found else None


def suggestion_text(finding: Finding) -> str | None:
    """The replacement for the finding's lines, when its patch replaces exactly those.

    A suggestion block replaces the commented lines wholesale, so it is only
    offered when the patch is one edit of exactly ``start_line..end_line``;
    any other patch stays a plain diff in the comment.
    """
    edits = patch_edits(finding)
    if len(edits) != 1:
        return None
    (edit,) = edits
    if (edit.start_line, edit.end_line) != (finding.start_line, finding.end_line):
        return None
    return "\n".join(edit.new_lines)


def render(finding: Finding, *, suggestions: bool = True) -> Comment:
    """The comment for ``finding``: title, message, fix, provenance and the marker.

    ``suggestions`` is False for SCMs without one-click suggestions: the fix
    is then shown as a diff block.
    """
    badge = _SEVERITY_BADGE.get(finding.severity, finding.severity.title())
    title = f"{badge} {finding.category}: {finding.rule_id}"
    lines = [f"**{title}**", "", finding.message.strip()]
    replacement = suggestion_text(finding) if suggestions else None
    if replacement is not None:
        lines += ["", "```suggestion", replacement, "```"]
    elif finding.suggestion:
        lines += ["", "```diff", finding.suggestion.rstrip("\n"), "```"]
    origin = finding.origin if not finding.model else f"{finding.origin}, {finding.model}"
    lines += [
        "",
        f"<sub>codereview · {origin} · confidence {finding.confidence:.2f} · "
        f"react 👍/👎 or resolve to teach it</sub>",
        marker(finding.fingerprint),
    ]
    return Comment(
        fingerprint=finding.fingerprint,
        path=finding.path,
        start_line=finding.start_line,
        end_line=max(finding.end_line, finding.start_line),
        body="\n".join(lines),
        severity=finding.severity,
        title=title,
        suggestion=replacement,
    )


def to_post(
    findings: Iterable[Finding],
    *,
    shown: Iterable[str],
    dismissed: Iterable[str] = (),
) -> list[Finding]:
    """The findings that need a comment: one per fingerprint, none already shown or dismissed.

    ``shown`` are the fingerprints the PR already has a comment for (from the
    state table, or from the markers read back from the SCM). A finding the
    author dismissed is never posted again on that PR, even if a later push
    finds it again. Within one batch, the last finding of a fingerprint wins
    (a redelivered or moved finding carries newer lines).
    """
    skip = set(shown) | set(dismissed)
    latest: dict[str, Finding] = {}
    for finding in findings:
        if finding.fingerprint not in skip:
            latest.pop(finding.fingerprint, None)
            latest[finding.fingerprint] = finding
    return list(latest.values())


def conclusion(severities: Iterable[str], policy: CheckPolicy) -> str:
    """A check run's conclusion for a PR's findings' severities: failure, neutral or success."""
    worst = max((severity_rank(s) for s in severities), default=-1)
    if policy.fail_on and worst >= severity_rank(policy.fail_on):
        return "failure"
    if policy.neutral_on and worst >= severity_rank(policy.neutral_on):
        return "neutral"
    return "success"


def summary(severities: Iterable[str]) -> str:
    """One line for a check run or review body: how many findings, by severity."""
    counts: dict[str, int] = {}
    for severity in severities:
        counts[severity] = counts.get(severity, 0) + 1
    if not counts:
        return "codereview: no findings"
    parts = [f"{counts[s]} {s.lower()}" for s in reversed(SEVERITIES) if s in counts]
    return f"codereview: {sum(counts.values())} finding(s): " + ", ".join(parts)
