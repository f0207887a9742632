"""Redaction: no planted secret reaches a provider, ordinary code is untouched.

The fixture plants 50+ kinds of fake secrets in realistic code; the prompt
is built by ``processors.analysis.build_prompt``, redacted, and sent through
both real provider SDKs to the fake LLM server, whose received request bodies
are what we check.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import sys
import time
from pathlib import Path
from types import ModuleType

import pytest

from processors.analysis import build_prompt, system_prompt
from processors.redaction import redact
from providers.anthropic_messages import AnthropicProvider
from providers.openai_chat import OpenAIProvider
from schemas.records import ChunkVerdict
from tests.fakes.llm_server import FakeLlmServer, Reply

DATA = Path(__file__).resolve().parents[2] / "data" / "secrets"


def _load_fixture() -> ModuleType:
    spec = importlib.util.spec_from_file_location("secrets_planted", DATA / "planted.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


FIXTURE = _load_fixture()
PLANTED = FIXTURE.PLANTED
CLEAN: dict[str, str] = FIXTURE.CLEAN


def leaked(planted: object, text: str) -> list[str]:
    """The planted value, or any 8 characters of its random core, found in ``text``."""
    secret, core = planted.secret, planted.core  # type: ignore[attr-defined]
    found = [secret] if secret in text else []
    found += [core[i : i + 8] for i in range(len(core) - 7) if core[i : i + 8] in text]
    return found


def chunk(index: int, path: str, text: str) -> ChunkVerdict:
    start = 10 + index
    return ChunkVerdict(
        chunk_id=f"c{index}",
        path=path,
        language="text",
        start_line=start,
        end_line=start + text.count("\n"),
        risk=0.9,
        escalate=True,
        text=text,
    )


def test_the_fixture_plants_fifty_distinct_kinds() -> None:
    kinds = {p.kind for p in PLANTED}
    assert len(kinds) == len(PLANTED) >= 50
    for p in PLANTED:
        assert p.secret in p.code and p.core in p.secret and len(p.core) >= 14


@pytest.mark.parametrize("planted", PLANTED, ids=lambda p: p.kind)
def test_each_kind_is_redacted_in_place(planted: object) -> None:
    code = planted.code  # type: ignore[attr-defined]
    result = redact(code)
    assert leaked(planted, result.text) == []
    assert planted.anchor in result.text  # type: ignore[attr-defined]
    assert result.text.count("\n") == code.count("\n")
    assert result.count >= 1 and "<REDACTED:" in result.text
    assert redact(result.text).text == result.text  # idempotent


async def _send(provider: OpenAIProvider | AnthropicProvider, system: str, user: str) -> str:
    try:
        return (await provider.complete(system, user, max_tokens=256)).text
    finally:
        await provider.aclose()


def test_no_planted_secret_reaches_either_provider() -> None:
    chunks = [chunk(i, p.path, p.code) for i, p in enumerate(PLANTED)]
    prompt = build_prompt(chunks, repo="acme/shop", context=[], budget_tokens=10**6)
    assert len(prompt.included_chunk_ids) == len(PLANTED)
    assert all(p.core.split("\n")[0] in prompt.user for p in PLANTED)  # the test can fail
    redacted = redact(prompt.user)
    assert redacted.text.count("\n") == prompt.user.count("\n")
    assert redacted.count >= len(PLANTED)
    with FakeLlmServer([Reply.answer('{"findings": []}')]) as server:
        openai_llm = OpenAIProvider(
            base_url=server.openai_base_url, api_key="k", model="m", timeout_s=5, max_retries=0
        )
        anthropic_llm = AnthropicProvider(
            base_url=server.anthropic_base_url, api_key="k", model="m", timeout_s=5, max_retries=0
        )
        asyncio.run(_send(openai_llm, prompt.system, redacted.text))
        asyncio.run(_send(anthropic_llm, prompt.system, redacted.text))
    assert sorted(r.path for r in server.requests) == ["/v1/chat/completions", "/v1/messages"]
    for request in server.requests:
        body = json.dumps(request.body, ensure_ascii=False)
        sent = [m["content"] for m in request.body["messages"] if m["role"] == "user"]
        assert sent == [redacted.text]
        for planted in PLANTED:
            assert leaked(planted, body) == [], planted.kind
            assert leaked(planted, sent[0]) == [], planted.kind
            assert planted.anchor in sent[0], planted.kind
    # Every code line is still there, numbered as before.
    before = [line.split(" | ", 1)[0] for line in prompt.user.split("\n")]
    after = [line.split(" | ", 1)[0] for line in redacted.text.split("\n")]
    assert before == after


def test_the_same_secret_gets_the_same_placeholder() -> None:
    planted = PLANTED[0]
    text = f'a = "{planted.secret}"\nb = "{planted.secret}"\nc = "{PLANTED[10].secret}"'
    lines = redact(text).text.split("\n")
    assert lines[0].split("=")[1] == lines[1].split("=")[1] != lines[2].split("=")[1]


@pytest.mark.parametrize("path", sorted(CLEAN))
def test_ordinary_code_is_left_byte_for_byte(path: str) -> None:
    result = redact(CLEAN[path])
    assert (result.text, result.count, result.kinds) == (CLEAN[path], 0, ())


def test_the_clean_fixture_holds_what_must_not_be_redacted() -> None:
    everything = "\n".join(CLEAN.values())
    for sample in (
        "3f786850e387550fdab836ed7e6dc881de23001b",
        "0f8fad5b-d9cb-469f-a165-70867728950e",
        "sha512-XI5MPzVNApjAyhQzphX8",
        "password = request.form",
    ):
        assert sample in everything


def test_the_prompt_without_secrets_is_unchanged() -> None:
    chunks = [chunk(i, path, text) for i, (path, text) in enumerate(sorted(CLEAN.items()))]
    prompt = build_prompt(chunks, repo="acme/shop", context=[], budget_tokens=10**6)
    assert redact(prompt.user).text == prompt.user
    assert redact(system_prompt()).count == 0


def test_a_private_key_cut_off_before_its_end_line_is_still_redacted() -> None:
    pem = next(p for p in PLANTED if p.kind == "rsa-private-key")
    cut = pem.code.split("-----END")[0]
    assert "-----END" not in cut
    redacted = redact(cut).text
    long_lines = [line for line in pem.core.split("\n") if len(line) >= 40]
    assert len(long_lines) == 6
    assert all(line[i : i + 8] not in redacted for line in long_lines for i in range(33))
    assert redacted.count("\n") == cut.count("\n")


def test_redaction_of_a_2000_line_prompt_is_fast() -> None:
    source = (Path(__file__).resolve().parents[3] / "processors" / "analysis.py").read_text()
    lines = source.split("\n")
    text = "\n".join(f"{n:>5} | {lines[n % len(lines)]}" for n in range(2000))
    redact(text)
    started = time.perf_counter()
    result = redact(text)
    elapsed_ms = (time.perf_counter() - started) * 1000
    assert result.text == text
    assert elapsed_ms < 250, f"{elapsed_ms:.1f} ms"
