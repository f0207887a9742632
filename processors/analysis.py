"""Deep analysis, the pure parts: the prompt in, the model's answer out as findings.

The model call itself lives in ``providers``; everything around it is here
and deterministic, so a test can check what a model will be asked and what
becomes of any answer without a model.

Prompt. The system prompt is a versioned data file
(``processors/prompts/review-v<N>.md``); its name is the ``prompt_version``
stamped on every LLM finding, so precision can be compared across prompt
versions. The user message packs the escalated chunks, riskiest first, into
a token budget. A chunk is never cut: half a function invites findings about
code the model cannot see, so a chunk that does not fit is left out whole
and reported in ``dropped_chunk_ids``. Code is fenced by markers carrying a
tag derived from the content, which code under review cannot predict, and
the system prompt says that fenced text is data, not instructions.

Answer. Models wrap JSON in prose or fences; ``parse_answer`` digs the object
out and validates it, raising ``ProcessorError`` when there is none. Findings
pointing outside the chunks that were shown are dropped: the model cannot
know those lines, so such a finding is a guess.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from importlib import resources
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from processors.fingerprint import fingerprint
from processors.patches import suggestion_patch
from schemas.errors import ProcessorError
from schemas.records import SEVERITIES, ChunkVerdict, Finding, TriageResult

_PROMPT_FILE = re.compile(r"^(review-v(\d+))\.md$")
LLM_CATEGORIES = ("bug", "security", "performance", "secret", "style")
# Prior trust in a model finding by its own severity, until feedback says otherwise.
_LLM_CONFIDENCE = {"CRITICAL": 0.7, "HIGH": 0.65, "MEDIUM": 0.5, "LOW": 0.35, "INFO": 0.25}
_MAX_MESSAGE = 4000
_MAX_SUGGESTION = 8000
_MAX_DECODE_ATTEMPTS = 64


def _latest_prompt() -> tuple[str, str]:
    """(version, file name) of the highest-numbered review prompt shipped in the package."""
    names = [p.name for p in resources.files("processors").joinpath("prompts").iterdir()]
    found = [(int(m.group(2)), m.group(1), n) for n in names if (m := _PROMPT_FILE.match(n))]
    if not found:
        raise FileNotFoundError("no processors/prompts/review-v<N>.md prompt file")
    _, version, name = max(found)
    return version, name


PROMPT_VERSION, _PROMPT_NAME = _latest_prompt()


_VARIANT_NAME = re.compile(r"^review-v\d+(-[a-z0-9]+)*$")


def system_prompt(version: str | None = None) -> str:
    """The text of a review prompt: the current one, or a named variant for an A/B test.

    Variants are files beside the current prompt (``review-v1-focused.md``);
    only the plain ``review-v<N>`` names compete for "current", so adding a
    variant never changes what everyone else gets.
    """
    name = _PROMPT_NAME if version is None else f"{version}.md"
    if version is not None and not _VARIANT_NAME.match(version):
        raise ValueError(f"not a review prompt name: {version!r}")
    path = resources.files("processors").joinpath("prompts", name)
    if not path.is_file():
        raise FileNotFoundError(f"no prompt file processors/prompts/{name}")
    return path.read_text(encoding="utf-8")


def estimate_tokens(text: str) -> int:
    """A rough token count, ~4 characters a token: good enough to budget, free to compute."""
    return len(text) // 4


@dataclass
class Prompt:
    """What the model is asked, and which chunks made it into the question."""

    system: str
    user: str
    version: str
    included_chunk_ids: list[str]
    dropped_chunk_ids: list[str]
    estimated_tokens: int = 0
    included_context: int = 0


def build_prompt(
    chunks: list[ChunkVerdict],
    *,
    repo: str,
    context: list[str],
    budget_tokens: int,
    version: str | None = None,
) -> Prompt:
    """The prompt for the escalated chunks among ``chunks``, within ``budget_tokens``.

    The budget covers the system prompt and the user message (the answer has
    its own ``max_tokens``). Chunks are taken by risk, highest first, each
    only if it fits whole; then context snippets, in the order given (most
    relevant first), while they fit. Non-escalated chunks are ignored;
    escalated ones without text or without room are dropped.
    """
    system = system_prompt(version)
    escalated = [c for c in chunks if c.escalate]
    tag = _fence_tag(escalated, context)
    header = f"Repository: {repo}\nReview the code chunks below. Line numbers are at the left."
    footer = 'Answer with the JSON object only: {"findings": [...]}.'
    budget_chars = budget_tokens * 4
    used = len(system) + len(header) + len(footer) + 4  # the two "\n\n" joins
    included: list[tuple[ChunkVerdict, str]] = []
    dropped: list[str] = []
    by_priority = sorted(escalated, key=lambda c: (-c.risk, c.path, c.start_line, c.chunk_id))
    for chunk in by_priority:
        block = _render_chunk(chunk, tag) if chunk.text else ""
        if block and used + len(block) + 2 <= budget_chars:
            included.append((chunk, block))
            used += len(block) + 2
        else:
            dropped.append(chunk.chunk_id)
    context_blocks: list[str] = []
    if included:
        for snippet in context:
            block = f"<<<CONTEXT {tag}>>>\n{snippet}\n<<<END CONTEXT {tag}>>>"
            if used + len(block) + 2 <= budget_chars:
                context_blocks.append(block)
                used += len(block) + 2
    included.sort(key=lambda item: (item[0].path, item[0].start_line, item[0].chunk_id))
    user = "\n\n".join([header, *context_blocks, *(block for _, block in included), footer])
    return Prompt(
        system=system,
        user=user,
        version=version or PROMPT_VERSION,
        included_chunk_ids=[chunk.chunk_id for chunk, _ in included],
        dropped_chunk_ids=dropped,
        estimated_tokens=estimate_tokens(system + user),
        included_context=len(context_blocks),
    )


def _fence_tag(chunks: list[ChunkVerdict], context: list[str]) -> str:
    """A marker suffix the code under review cannot contain without knowing its own hash."""
    digest = hashlib.sha256()
    for text in [*(c.text for c in chunks), *context]:
        digest.update(text.encode("utf-8", "surrogatepass"))
        digest.update(b"\0")
    return digest.hexdigest()[:12]


def header_value(text: str) -> str:
    """``text`` safe inside a fence header: git allows newlines and ``>>>`` in paths.

    Control characters and ``>`` are escaped JSON-style, so a file name can
    neither end the header nor start a line of its own; ordinary paths are
    unchanged.
    """
    return (
        json.dumps(text, ensure_ascii=False)[1:-1].replace(">", "\\u003e").replace(" ", "\\u0020")
    )


def _render_chunk(chunk: ChunkVerdict, tag: str) -> str:
    lines = chunk.text.split("\n")
    width = len(str(chunk.start_line + len(lines) - 1))
    numbered = "\n".join(
        f"{n:>{width}} | {line}" for n, line in enumerate(lines, start=chunk.start_line)
    )
    symbol = f" symbol={header_value(chunk.symbol)}" if chunk.symbol else ""
    last = chunk.start_line + len(lines) - 1
    where = f"path={header_value(chunk.path)} lines={chunk.start_line}-{last}{symbol}"
    return f"<<<CODE {tag} {where}>>>\n{numbered}\n<<<END CODE {tag}>>>"


class ModelFinding(BaseModel):
    """One finding as the model states it; lenient on case and enums, strict on shape."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    path: str = Field(min_length=1)
    start_line: int = Field(ge=1)
    end_line: int = Field(ge=1)
    category: str = "bug"
    severity: str = "MEDIUM"
    message: str = Field(min_length=1)
    suggestion: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _default_end_line(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("end_line") is None and "start_line" in data:
            return {**data, "end_line": data["start_line"]}
        return data

    @model_validator(mode="after")
    def _ordered_lines(self) -> ModelFinding:
        if self.end_line < self.start_line:
            self.end_line = self.start_line
        return self

    @field_validator("path")
    @classmethod
    def _plain_path(cls, value: str) -> str:
        return value.removeprefix("./").lstrip("/")

    @field_validator("category", mode="before")
    @classmethod
    def _known_category(cls, value: Any) -> str:
        text = str(value or "").strip().lower()
        return text if text in LLM_CATEGORIES else "bug"

    @field_validator("severity", mode="before")
    @classmethod
    def _known_severity(cls, value: Any) -> str:
        text = str(value or "").strip().upper()
        return text if text in SEVERITIES else "MEDIUM"

    @field_validator("message")
    @classmethod
    def _short_message(cls, value: str) -> str:
        return value[:_MAX_MESSAGE]

    @field_validator("suggestion")
    @classmethod
    def _short_suggestion(cls, value: str | None) -> str | None:
        return value[:_MAX_SUGGESTION] if value else None


_FENCE = re.compile(r"```[a-zA-Z]*\s*\n?(.*?)```", re.DOTALL)


def parse_answer(text: str) -> list[ModelFinding]:
    """The findings in a model's answer; ProcessorError when it holds no valid JSON object."""
    payload = extract_json_object(text, "findings")
    findings = payload.get("findings") if isinstance(payload, dict) else payload
    if not isinstance(findings, list):
        raise ProcessorError('model answer has no "findings" list')
    try:
        return [ModelFinding.model_validate(item) for item in findings]
    except ValidationError as exc:
        raise ProcessorError(f"model answer has an invalid finding: {exc}") from exc


def extract_json_object(text: str, key: str) -> Any:
    """The LAST JSON object holding ``key`` in ``text`` (or a bare list that is the whole answer).

    The last, not the first: a model may quote an object from the code under
    review (an injected ``{"findings": []}``) before giving its own answer,
    and the answer is what it says last. Objects nested in one already read
    are skipped. A bare list is accepted only when it is the whole answer or
    a whole fence, so a list inside some other object is never mistaken for
    the findings.
    """
    stripped = text.strip()
    for candidate in [stripped, *(m.group(1).strip() for m in _FENCE.finditer(text))]:
        try:
            whole = json.loads(candidate)
        except json.JSONDecodeError:
            continue
        if isinstance(whole, list) and candidate == stripped:
            return whole
        if isinstance(whole, dict) and key in whole and candidate == stripped:
            return whole
    decoder = json.JSONDecoder()
    found: Any = None
    position, attempts = 0, 0
    while attempts < _MAX_DECODE_ATTEMPTS:
        start = text.find("{", position)
        if start < 0:
            break
        attempts += 1
        try:
            value, end = decoder.raw_decode(text, start)
        except json.JSONDecodeError:
            position = start + 1
            continue
        if isinstance(value, dict) and key in value:
            found = value
        position = end
    if found is None:
        for fence in _FENCE.finditer(text):
            try:
                value = json.loads(fence.group(1))
            except json.JSONDecodeError:
                continue
            if isinstance(value, list):
                found = value
    if found is None:
        raise ProcessorError(f"no JSON {key} object in model answer: {text[:200]!r}")
    return found


def repair_message(user: str, answer: str, error: str) -> str:
    """The question again, with why the last answer was rejected: the one repair attempt.

    The rejected answer is quoted back (cut) so the model can fix its own
    output rather than start over; the question stays whole so the line
    numbers it refers to are still there.
    """
    return (
        f"{user}\n\nYour previous answer could not be used: {error[:500]}\n"
        f"Previous answer (cut):\n{answer[:2000]}\n\n"
        'Answer again with the JSON object only, exactly in the shape {"findings": [...]}.'
    )


def findings_from_answer(
    answer: list[ModelFinding],
    verdicts: list[ChunkVerdict],
    event: TriageResult,
    *,
    model: str,
    prompt_version: str,
    now_ms: int,
) -> list[Finding]:
    """Findings for the model's answer, kept only where they point into a chunk shown.

    ``verdicts`` are the chunks that were in the prompt (those named by
    ``Prompt.included_chunk_ids``); a verdict without text was not shown and
    is ignored. A finding that overlaps a chunk only in part is clamped to it.
    """
    shown = [v for v in verdicts if v.text]
    findings: dict[str, Finding] = {}
    for item in answer:
        placed = place(item, shown)
        if placed is None:
            continue
        chunk, start, end = placed
        message = item.message
        start, end, moved = map_to_diff(chunk, start, end)
        if moved:
            message = f"{message} (about line {placed[1]})"
        lines = chunk.text.split("\n")
        original = lines[start - chunk.start_line : end - chunk.start_line + 1]
        span = "\n".join(original)
        rule_id = f"llm:{item.category}"
        finding = Finding(
            fingerprint=fingerprint(
                event.tenant, event.repo, chunk.path, span, rule_id, f"{chunk.symbol or ''}#0"
            ),
            event_id=event.event_id,
            tenant=event.tenant,
            repo=event.repo,
            pr_number=event.pr_number,
            head_sha=event.head_sha,
            path=chunk.path,
            start_line=start,
            end_line=end,
            rule_id=rule_id,
            category=item.category,
            severity=item.severity,
            confidence=_LLM_CONFIDENCE[item.severity],
            message=message,
            origin="llm",
            received_at_ms=event.received_at_ms,
            created_at_ms=now_ms,
            suggestion=None
            if moved
            else suggestion_patch(chunk.path, original, start, item.suggestion),
            model=model,
            prompt_version=prompt_version,
            source=event.source,
        )
        findings.setdefault(finding.fingerprint, finding)
    return list(findings.values())


# A comment attaches to a line in a diff hunk: changed lines and ~3 lines of context.
DIFF_CONTEXT_LINES = 3


def map_to_diff(chunk: ChunkVerdict, start: int, end: int) -> tuple[int, int, bool]:
    """``start..end`` moved onto the diff when it lies outside every hunk: (start, end, moved).

    Chunks hold whole functions, so a model may point at an unchanged line
    twenty lines from any change, where no SCM lets a review comment attach.
    Such a finding is anchored on the changed line nearest to it (and says
    which line it is about); one within a hunk stays where it is. A chunk
    without changed lines (an older producer) leaves lines as they are.
    """
    changed = chunk.changed_lines
    if not changed:
        return start, end, False
    near = DIFF_CONTEXT_LINES
    if any(start - near <= n <= end + near for n in changed):
        return start, end, False
    nearest = min(changed, key=lambda n: (min(abs(n - start), abs(n - end)), n))
    return nearest, nearest, True


def place(item: ModelFinding, shown: list[ChunkVerdict]) -> tuple[ChunkVerdict, int, int] | None:
    """The chunk a finding points into and its lines clamped to it; None when outside all."""
    best: tuple[tuple[int, int, int, int], ChunkVerdict] | None = None
    for chunk in shown:
        if item.path not in (chunk.path, header_value(chunk.path)):
            continue
        last = chunk.start_line + len(chunk.text.split("\n")) - 1
        overlap = min(item.end_line, last) - max(item.start_line, chunk.start_line) + 1
        if overlap <= 0:
            continue
        contains = 1 if chunk.start_line <= item.start_line <= last else 0
        near = DIFF_CONTEXT_LINES
        in_diff = int(
            any(item.start_line - near <= n <= item.end_line + near for n in chunk.changed_lines)
        )
        # Nested chunks (a module-level chunk around functions) both contain a line:
        # the one whose change is near it, then the smallest, is the one meant.
        rank = (contains, in_diff, overlap, -(last - chunk.start_line))
        if best is None or rank > best[0]:
            best = (rank, chunk)
    if best is None:
        return None
    chunk = best[1]
    last = chunk.start_line + len(chunk.text.split("\n")) - 1
    return chunk, max(item.start_line, chunk.start_line), min(item.end_line, last)
