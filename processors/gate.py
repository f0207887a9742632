"""The cheap tier's question: which borderline chunks deserve the strong model?

Triage's risk score is a blunt instrument. Chunks it is sure about go
straight to deep analysis; chunks it is unsure about (risk between the gate
and the escalation thresholds) are shown to a cheap model, which answers
with the ids of those worth a closer look. A cheap call costs a fraction of a
strong one, so this buys recall on borderline code without paying the strong
price for every one of them.

The answer is validated like the review's: ids the question did not contain
are ignored, so a confused or manipulated model can only pick among the
chunks it was shown, never invent work.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib import resources

from pydantic import BaseModel, ConfigDict, ValidationError

from processors.analysis import extract_json_object, header_value
from schemas.errors import ProcessorError
from schemas.records import ChunkVerdict

GATE_PROMPT_VERSION = "gate-v1"
_MAX_CHUNK_LINES = 80


def gate_system_prompt() -> str:
    path = resources.files("processors").joinpath("prompts", f"{GATE_PROMPT_VERSION}.md")
    return path.read_text(encoding="utf-8")


@dataclass(frozen=True, slots=True)
class GateQuestion:
    system: str
    user: str
    chunk_ids: list[str]


def build_gate_question(
    chunks: list[ChunkVerdict], *, repo: str, budget_tokens: int
) -> GateQuestion:
    """The borderline chunks, riskiest first, as long as they fit the budget.

    Chunks are shown whole up to ``_MAX_CHUNK_LINES`` lines: the question is
    whether the change looks risky, which the first lines of a long function
    answer as well as all of them.
    """
    system = gate_system_prompt()
    tag = hashlib.sha256("\0".join(c.text for c in chunks).encode()).hexdigest()[:12]
    budget_chars = budget_tokens * 4 - len(system)
    blocks: list[str] = []
    ids: list[str] = []
    for chunk in sorted(chunks, key=lambda c: (-c.risk, c.path, c.start_line)):
        lines = chunk.text.split("\n")[:_MAX_CHUNK_LINES]
        body = "\n".join(f"{n} | {line}" for n, line in enumerate(lines, chunk.start_line))
        block = (
            f"<<<CODE {tag} id={chunk.chunk_id} path={header_value(chunk.path)}>>>\n"
            f"{body}\n<<<END CODE {tag}>>>"
        )
        if sum(len(b) for b in blocks) + len(block) > budget_chars:
            continue
        blocks.append(block)
        ids.append(chunk.chunk_id)
    user = f"Repository: {repo}\n\n" + "\n\n".join(blocks) + '\n\nAnswer: {"review": [...]}'
    return GateQuestion(system=system, user=user, chunk_ids=ids)


class _GateAnswer(BaseModel):
    model_config = ConfigDict(extra="ignore")
    review: list[str]


_ID = re.compile(r"^[\w:.\-/#]+$")


def parse_gate_answer(text: str, asked: list[str]) -> list[str]:
    """The asked ids the model picked, in the order asked; ProcessorError on no valid JSON."""
    payload = extract_json_object(text, "review")
    try:
        answer = _GateAnswer.model_validate(payload)
    except ValidationError as exc:
        raise ProcessorError(f"gate answer has the wrong shape: {exc}") from exc
    picked = {
        item.strip() for item in answer.review if isinstance(item, str) and _ID.match(item.strip())
    }
    return [chunk_id for chunk_id in asked if chunk_id in picked]
