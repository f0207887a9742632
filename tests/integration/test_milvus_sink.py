"""MilvusSink against a real milvus-lite server (shared, over gRPC) and an in-process .db file.

Every test runs in both modes, on its own collection: the same batch written
twice leaves one row each, search never leaves its tenant and repo (even
when a name tries to widen the filter), and stored vectors are found by text
hash after a restart.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from pydantic import SecretStr

from codereview.settings import MilvusSettings
from schemas.errors import SinkWriteError
from schemas.records import CodeChunk
from sinks.milvus import MilvusSink, milvus_literal

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

DIM = 16
TRICKY = [
    'acme"',
    'x" or tenant != "',
    "back\\slash",
    "it's",
    "new\nline",
    "tab\tcr\r",
    "café ✓",
    "\\",
]


@pytest.fixture(params=["server", "lite"])
def milvus_uri(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "server":
        return str(request.getfixturevalue("milvus_server_uri"))
    return str(tmp_path / "x.db")


@pytest.fixture
def section() -> MilvusSettings:
    return MilvusSettings(collection=f"chunks_{uuid.uuid4().hex[:12]}", token=SecretStr(""))


@pytest.fixture
def sink(milvus_uri: str, section: MilvusSettings) -> Iterator[MilvusSink]:
    s = MilvusSink.from_settings(section, uri=milvus_uri, dim=DIM)
    s.start()
    yield s
    s.close()


def unit(seed: int) -> list[float]:
    vec = np.random.default_rng(seed).normal(size=DIM)
    return [float(x) for x in vec / np.linalg.norm(vec)]


def chunk(i: int, *, tenant: str = "acme", repo: str = "acme/api", pr: int = 7) -> CodeChunk:
    return CodeChunk(
        chunk_id=f"{tenant}|{repo}|{pr}|{i}",
        event_id=f"ev-{pr}",
        tenant=tenant,
        repo=repo,
        pr_number=pr,
        head_sha="f" * 40,
        path=f"src/mod_{i}.py",
        language="python",
        start_line=10 * i + 1,
        end_line=10 * i + 9,
        changed_lines=[10 * i + 2],
        text=f"def f{i}():\n    return {i}\n",
        text_hash=f"hash-{i}",
        received_at_ms=1_700_000_000_000,
        symbol=f"f{i}" if i % 2 else None,
    )


def test_same_batch_twice_leaves_one_row_each(sink: MilvusSink) -> None:
    batch = [(chunk(i), unit(i)) for i in range(20)]
    sink.write(batch)
    sink.write(batch)
    assert sink.count() == 20
    assert sink.count("acme") == 20
    assert sink.count("other") == 0


def test_duplicate_ids_within_a_batch_keep_the_last(sink: MilvusSink) -> None:
    sink.write([(chunk(1), unit(1)), (chunk(1), unit(2))])
    assert sink.count() == 1
    hit = sink.search(unit(2), tenant="acme", repo="acme/api", limit=1)[0]
    assert hit["score"] == pytest.approx(1.0, abs=1e-4)


def test_definitions_find_symbols_by_name_in_the_same_repo_with_their_text(
    sink: MilvusSink,
) -> None:
    import dataclasses

    def defining(i: int, symbol: str, **where: object) -> CodeChunk:
        return dataclasses.replace(chunk(i, **where), symbol=symbol)  # type: ignore[arg-type]

    sink.write(
        [
            (defining(1, "price"), unit(1)),
            (defining(2, "Cart.price"), unit(2)),  # a method: found by its last name
            (defining(3, "unit_price"), unit(3)),  # a longer name is not a match
            (defining(4, "price", repo="acme/other"), unit(4)),
            (defining(5, "price", pr=9), unit(5)),  # the PR under review: excluded
        ]
    )
    rows = sink.definitions(["price"], tenant="acme", repo="acme/api", exclude_pr=9)
    assert sorted((r["symbol"], r["path"]) for r in rows) == [
        ("Cart.price", "src/mod_2.py"),
        ("price", "src/mod_1.py"),
    ]
    assert all(r["text"].startswith("def f") for r in rows)  # the code itself, for the prompt
    assert sink.definitions([], tenant="acme", repo="acme/api") == []


def test_search_stays_in_tenant_and_repo(sink: MilvusSink) -> None:
    same = unit(99)
    sink.write(
        [
            (chunk(1, tenant="acme", repo="acme/api", pr=1), same),
            (chunk(2, tenant="acme", repo="acme/api", pr=2), unit(2)),
            (chunk(3, tenant="acme", repo="acme/web", pr=1), same),
            (chunk(4, tenant="globex", repo="acme/api", pr=1), same),
        ]
    )
    hits = sink.search(same, tenant="acme", repo="acme/api", limit=10)
    assert [(h["tenant"], h["repo"]) for h in hits] == [("acme", "acme/api")] * 2
    assert hits[0]["chunk_id"] == "acme|acme/api|1|1"
    assert hits[0]["score"] == pytest.approx(1.0, abs=1e-4)
    assert hits[0]["score"] >= hits[1]["score"]
    assert {"path", "start_line", "end_line", "symbol", "head_sha", "text_hash"} <= set(hits[0])

    others = sink.search(same, tenant="acme", repo="acme/api", limit=10, exclude_pr=1)
    assert [h["pr_number"] for h in others] == [2]
    assert sink.search(same, tenant="initech", repo="acme/api") == []


@pytest.mark.parametrize("name", TRICKY)
def test_filter_values_cannot_widen_the_filter(sink: MilvusSink, name: str) -> None:
    sink.write(
        [
            (chunk(1, tenant=name, repo=name), unit(1)),
            (chunk(2, tenant="victim", repo=name), unit(1)),
            (chunk(3, tenant=name, repo="victim/repo"), unit(1)),
        ]
    )
    hits = sink.search(unit(1), tenant=name, repo=name, limit=10)
    assert [(h["tenant"], h["repo"]) for h in hits] == [(name, name)]
    assert sink.count(name) == 2


def test_control_characters_are_refused_in_filter_values() -> None:
    with pytest.raises(ValueError):
        milvus_literal("a\x00b")


def test_known_vectors_survive_a_restart(
    milvus_uri: str, section: MilvusSettings, sink: MilvusSink
) -> None:
    batch = [(chunk(i), unit(i)) for i in range(5)]
    sink.write(batch)
    # the same text in another PR shares its hash (and vector)
    sink.write([(chunk(0, pr=8), unit(0))])
    sink.close()

    again = MilvusSink.from_settings(section, uri=milvus_uri, dim=DIM)
    again.start()
    try:
        found = again.known_vectors(["hash-0", "hash-3", "hash-404", "hash-3"])
        assert set(found) == {"hash-0", "hash-3"}
        assert np.allclose(found["hash-3"], unit(3), atol=1e-6)
        assert again.known_vectors([]) == {}
        assert again.count() == 6
    finally:
        again.close()


def test_refuses_vectors_of_another_width(
    milvus_uri: str, section: MilvusSettings, sink: MilvusSink
) -> None:
    with pytest.raises(SinkWriteError) as bad_vector:
        sink.write([(chunk(1), [1.0, 0.0])])
    assert not bad_vector.value.retryable
    sink.close()

    wider = MilvusSink.from_settings(section, uri=milvus_uri, dim=DIM * 2)
    with pytest.raises(SinkWriteError) as bad_collection:
        wider.start()
    wider.close()
    assert not bad_collection.value.retryable


def test_close_is_idempotent_and_write_needs_start(sink: MilvusSink) -> None:
    sink.close()
    sink.close()
    with pytest.raises(SinkWriteError):
        sink.write([(chunk(1), unit(1))])


def test_unreachable_server_is_a_retryable_error(section: MilvusSettings) -> None:
    dead = MilvusSink.from_settings(section, uri="http://127.0.0.1:9", dim=DIM)
    with pytest.raises(SinkWriteError) as err:
        dead.start()
    assert err.value.retryable
