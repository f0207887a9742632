"""Findings as a SARIF 2.1.0 log: what code-scanning services and security archives read.

A CI gate or an archive wants the review's findings as one file in the
standard format rather than as PR comments. The choices that matter:

* ``partialFingerprints["codereview/v1"]`` carries the finding's fingerprint,
  which is stable across pushes and line moves; it is what lets a code
  scanning service recognise the same alert in the next upload instead of
  closing it and opening a new one.
* One run per repository (and tenant): a run describes one analysed
  artifact tree, and ``ruleIndex`` points into that run's own rule list.
* A ``fix`` is emitted only when the finding's patch converts exactly into
  replacements of the analysed file (``patch_edits``); anything doubtful is
  left out, since a wrong fix is worse than none.

Pure: the tool version (and optionally repository URLs) come in as arguments.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import quote

from processors.patches import TextEdit, patch_edits
from schemas.errors import ProcessorError
from schemas.records import SEVERITIES, Finding, severity_rank

SARIF_SCHEMA = (
    "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
)
SARIF_VERSION = "2.1.0"
TOOL_NAME = "codereview"
FINGERPRINT_KEY = "codereview/v1"
SRCROOT = "SRCROOT"

# SARIF has three levels for a problem; our five severities fold into them.
LEVELS = {"CRITICAL": "error", "HIGH": "error", "MEDIUM": "warning", "LOW": "note", "INFO": "note"}


def level(severity: str) -> str:
    """The SARIF level of one of our severities."""
    if severity not in LEVELS:
        raise ProcessorError(f"unknown severity {severity!r}; expected one of {SEVERITIES}")
    return LEVELS[severity]


def to_sarif(
    findings: Sequence[Finding],
    *,
    tool_version: str,
    repository_uri: Callable[[Finding], str | None] | None = None,
    rule_descriptions: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """A SARIF 2.1.0 log of ``findings``: one run per (tenant, repo), in first-seen order.

    ``repository_uri`` maps a finding to its repository's URL; when it gives
    one and the run has a single head commit, the run records it as
    ``versionControlProvenance`` (SARIF needs an absolute URI there, which a
    bare ``owner/name`` is not, so without it the provenance is left out).
    Zero findings still give one run with the tool and no results: a gate
    reading the file sees "analysed, nothing found" rather than nothing.
    """
    groups: dict[tuple[str, str], list[Finding]] = {}
    for finding in findings:
        groups.setdefault((finding.tenant, finding.repo), []).append(finding)
    runs = [
        _run(group, tool_version, repository_uri, rule_descriptions or {})
        for group in groups.values()
    ] or [_run([], tool_version, None, {})]
    return {"$schema": SARIF_SCHEMA, "version": SARIF_VERSION, "runs": runs}


def _run(
    findings: list[Finding],
    tool_version: str,
    repository_uri: Callable[[Finding], str | None] | None,
    descriptions: Mapping[str, str],
) -> dict[str, Any]:
    by_rule: dict[str, list[Finding]] = {}
    for finding in findings:
        by_rule.setdefault(finding.rule_id, []).append(finding)
    rule_ids = sorted(by_rule)
    index = {rule_id: i for i, rule_id in enumerate(rule_ids)}
    driver: dict[str, Any] = {
        "name": TOOL_NAME,
        "version": tool_version,
        "rules": [_rule(r, by_rule[r], descriptions.get(r)) for r in rule_ids],
    }
    run: dict[str, Any] = {
        "tool": {"driver": driver},
        "columnKind": "unicodeCodePoints",
        "results": [_result(f, index[f.rule_id]) for f in findings],
    }
    heads = {f.head_sha for f in findings if f.head_sha}
    uri = repository_uri(findings[0]) if findings and repository_uri else None
    if uri and len(heads) == 1:
        run["versionControlProvenance"] = [
            {"repositoryUri": uri, "revisionId": heads.pop(), "mappedTo": {"uriBaseId": SRCROOT}}
        ]
    return run


def _rule(rule_id: str, findings: list[Finding], description: str | None) -> dict[str, Any]:
    """One rule: its level is the worst severity seen, its category the most frequent."""
    worst = max((f.severity for f in findings), key=severity_rank)
    categories = [f.category for f in findings]
    category = max(sorted(set(categories)), key=categories.count)
    return {
        "id": rule_id,
        "shortDescription": {"text": description or f"{rule_id} ({category})"},
        "defaultConfiguration": {"level": level(worst)},
        "properties": {"category": category, "tags": [category]},
    }


def _result(finding: Finding, rule_index: int) -> dict[str, Any]:
    start = max(1, finding.start_line)
    result: dict[str, Any] = {
        "ruleId": finding.rule_id,
        "ruleIndex": rule_index,
        "level": level(finding.severity),
        "message": {"text": finding.message or finding.rule_id},
        "locations": [
            {
                "physicalLocation": {
                    "artifactLocation": _artifact(finding.path),
                    "region": {"startLine": start, "endLine": max(start, finding.end_line)},
                }
            }
        ],
        "partialFingerprints": {FINGERPRINT_KEY: finding.fingerprint},
        "properties": _properties(finding),
    }
    edits = patch_edits(finding)
    if edits:
        result["fixes"] = [
            {
                "description": {"text": "Suggested fix"},
                "artifactChanges": [
                    {
                        "artifactLocation": _artifact(finding.path),
                        "replacements": [_replacement(e) for e in edits],
                    }
                ],
            }
        ]
    return result


def _replacement(edit: TextEdit) -> dict[str, Any]:
    """A SARIF replacement; a region without columns covers whole lines but no final newline."""
    if edit.is_insertion:
        at = {"startLine": edit.start_line, "startColumn": 1}
        region = {**at, "endLine": edit.start_line, "endColumn": 1}
        text = "".join(line + "\n" for line in edit.new_lines)
    elif edit.is_deletion:  # up to the start of the next line: the newlines go too
        region = {"startLine": edit.start_line, "startColumn": 1}
        region |= {"endLine": edit.end_line + 1, "endColumn": 1}
        text = ""
    else:
        region = {"startLine": edit.start_line, "endLine": edit.end_line}
        text = "\n".join(edit.new_lines)
    return {"deletedRegion": region, "insertedContent": {"text": text}}


def _artifact(path: str) -> dict[str, str]:
    # A URI reference: spaces and non-ASCII are percent-encoded (RFC 3986), "/" kept.
    return {"uri": quote(path.lstrip("/"), safe="/"), "uriBaseId": SRCROOT}


def _properties(finding: Finding) -> dict[str, Any]:
    values: dict[str, Any] = {
        "confidence": finding.confidence,
        "severity": finding.severity,
        "category": finding.category,
        "origin": finding.origin,
        "tenant": finding.tenant,
        "repo": finding.repo,
        "pr_number": finding.pr_number,
        "head_sha": finding.head_sha,
        "model": finding.model,
        "prompt_version": finding.prompt_version,
        "source": finding.source,
    }
    return {k: v for k, v in values.items() if v is not None and v != ""}
