"""Prompt injection aimed at an AI reviewer, found in the changed code itself.

The system prompt tells the model that fenced code is data, and the answer
parser accepts only the findings schema; neither stops a model from being
swayed into reporting nothing. So the attempt itself is reported, by this
deterministic scan, outside the model: whatever the model answers, a diff
that tries to steer the review gets a security finding it cannot suppress.

What counts: phrases that address a model ("ignore previous instructions",
"you are now", "do not report"), answers planted for it (``{"findings": []}``,
"respond with ... approve"), chat-template role tags (``<|im_start|>``,
``[INST]``, "### Instruction") and imitations of our own prompt fences
(``<<<END CODE``, ``</CODE>``). Ordinary code has none of these; a project
that builds LLM tooling will see some, which a reviewer dismisses once.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping

from processors.analyzers import RawIssue

RULE_ID = "injection:prompt-injection"

# (what it is, severity, pattern); case-insensitive unless the pattern says (?-i:...).
_SIGNS: tuple[tuple[str, str, str], ...] = (
    (
        "override of previous instructions",
        "HIGH",
        r"\b(?:ignore|disregard|forget|override|skip)\s+(?:all\s+|any\s+|the\s+)?"
        r"(?:previous|prior|above|earlier|preceding|your|system|original)\s+"
        r"(?:instructions?|rules|prompts?|directions|guidelines|context|messages?)",
    ),
    (
        "role reassignment",
        "HIGH",
        r"\byou\s+are\s+now\b|\bfrom\s+now\s+on,?\s+you\b|\bpretend\s+(?:to\s+be|you\s+are)\b"
        r"|\bact\s+as\s+(?:an?\s+)?(?:ai|assistant|reviewer|model|system)\b",
    ),
    ("new instructions", "HIGH", r"\bnew\s+instructions?\s*:|\bsystem\s+(?:prompt|message)\b"),
    (
        "dictated answer",
        "HIGH",
        r"\b(?:respond|reply|answer|output|return)\s+(?:only\s+)?with\b.{0,40}?"
        r"(?:\{|\bjson\b|\bfindings\b|\bempty\b|\bnothing\b|\bapprov|\blgtm\b|no\s+issues)",
    ),
    (
        "suppression request",
        "HIGH",
        r"\b(?:do\s+not|don'?t|never)\s+(?:report|flag|mention|comment\s+on|raise)\b"
        r"|\bno\s+(?:findings|issues|vulnerabilities)\s+(?:should|must|need)\b",
    ),
    (
        "message to an AI",
        "MEDIUM",
        r"\b(?:note|message|attention|instructions?)\s+(?:to|for)\s+(?:the\s+|any\s+)?"
        r"(?:ai|llm|language\s+model|assistant|code\s+reviewer|reviewer\s+bot|gpt|claude|copilot)\b"
        r"|\b(?:ai|llm)\s+(?:reviewers?|assistants?)\s*:",
    ),
    ("planted findings JSON", "HIGH", r"[{,]\s*\\?[\"']findings\\?[\"']\s*:"),
    (
        "chat role tag",
        "HIGH",
        r"<\|(?:im_start|im_end|system|user|assistant|endoftext|eot_id|start_header_id)\|>"
        r"|\[/?INST\]|<</?SYS>>|^\W*(?:#{2,}\s*(?:instruction|system|response)s?\b)"
        r"|(?-i:</?(?:system|assistant|human|user)>)",
    ),
    (
        "forged prompt fence",
        "HIGH",
        r"<<<\s*(?:END\s+)?(?:CODE|CONTEXT)\b|(?-i:</?(?:CODE|CONTEXT|DIFF|INSTRUCTIONS?)>)"
        r"|\bend\s+of\s+(?:the\s+)?(?:code|diff|chunk|input)\b",
    ),
)
_COMPILED = tuple((what, severity, re.compile(p, re.IGNORECASE)) for what, severity, p in _SIGNS)


def find_injections(path: str, text: str, *, first_line: int = 1) -> list[RawIssue]:
    """One issue per line of ``text`` that holds an attempt to instruct a reviewing model.

    ``first_line`` is the number of the first line of ``text`` (a chunk starts
    mid-file). The issue names every kind of sign seen on the line.
    """
    issues: list[RawIssue] = []
    for offset, line in enumerate(text.split("\n")):
        seen = [(what, severity) for what, severity, pattern in _COMPILED if pattern.search(line)]
        if not seen:
            continue
        number = first_line + offset
        severity = "HIGH" if any(s == "HIGH" for _, s in seen) else "MEDIUM"
        kinds = ", ".join(dict.fromkeys(what for what, _ in seen))
        issues.append(
            RawIssue(
                path=path,
                line=number,
                end_line=number,
                rule_id=RULE_ID,
                category="security",
                severity=severity,
                message=f"Text aimed at an AI code reviewer ({kinds}): it tries to steer "
                "automated review. Remove it; treat the change as hostile until explained.",
            )
        )
    return issues


class InjectionAnalyzer:
    """The scan above behind the analyzer contract, so triage can run it with the others."""

    name = "prompt-injection"

    def analyze(
        self, files: Mapping[str, str], focus: Mapping[str, Collection[int]] | None = None
    ) -> list[RawIssue]:
        """Issues on every line, or with ``focus`` only on the changed lines."""
        issues: list[RawIssue] = []
        for path, text in files.items():
            wanted = None if focus is None else set(focus.get(path, ()))
            issues.extend(
                issue
                for issue in find_injections(path, text)
                if wanted is None or issue.line in wanted
            )
        return issues
