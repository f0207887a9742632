"""A scripted "model" for the fake LLM server that reads the prompt it is given.

End-to-end tests need answers that depend on the question: a finding on the
line that is actually wrong, in whichever chunk it landed, with line numbers
taken from the prompt. This reviewer flags every shown code line containing
``MARKER`` and suggests the line with the marker replaced; for the cheap
tier's gate question it picks every chunk id it was shown. A prompt holding
``FAIL_MARKER`` is answered with HTTP 500, so a test can break the provider
for one PR only.
"""

from __future__ import annotations

import json
import re
from typing import Any

from tests.fakes.llm_server import Reply

MARKER = "BUG_HERE"
FAIL_MARKER = "PROVIDER_FAILS_ON_THIS"
_BLOCK = re.compile(
    r"<<<CODE (?P<tag>\w+) path=(?P<path>\S+) lines=\d+-\d+[^>]*>>>\n"
    r"(?P<body>.*?)\n<<<END CODE (?P=tag)>>>",
    re.DOTALL,
)
_GATE_IDS = re.compile(r"<<<CODE \w+ id=(\S+) path=")
_NUMBERED = re.compile(r"^\s*(\d+) \| (.*)$")


def prompt_text(body: dict[str, Any]) -> str:
    """System and user text of an OpenAI or Anthropic request body, joined."""
    parts: list[str] = []
    system = body.get("system")
    if isinstance(system, str):
        parts.append(system)
    for message in body.get("messages", []):
        content = message.get("content")
        if isinstance(content, str):
            parts.append(content)
        elif isinstance(content, list):
            parts.extend(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return "\n".join(parts)


def review(body: dict[str, Any]) -> Reply:
    """The answer a careful (and predictable) reviewer gives to this request."""
    text = prompt_text(body)
    if FAIL_MARKER in text:
        return Reply.error(500)
    if '{"review":' in text:
        return Reply.answer(json.dumps({"review": _GATE_IDS.findall(text)}))
    findings = []
    for block in _BLOCK.finditer(text):
        for line in block.group("body").split("\n"):
            numbered = _NUMBERED.match(line)
            if numbered and MARKER in numbered.group(2):
                n = int(numbered.group(1))
                findings.append(
                    {
                        "path": block.group("path"),
                        "start_line": n,
                        "end_line": n,
                        "category": "bug",
                        "severity": "HIGH",
                        "message": "This line is wrong.",
                        "suggestion": numbered.group(2).replace(MARKER, "FIXED"),
                    }
                )
    return Reply.answer(json.dumps({"findings": findings}), input_tokens=len(text) // 4)
