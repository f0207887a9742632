"""The Confluent registry client, through a local server speaking the registry's REST API."""

from __future__ import annotations

import pytest

from schemas.codec import AvroCodec
from schemas.errors import DecodeError, SchemaError
from schemas.records import FeedbackEvent
from schemas.registry import ConfluentSchemaRegistry
from tests.fakes.schema_registry import FakeSchemaRegistry

FEEDBACK = FeedbackEvent(
    event_id="fb",
    fingerprint="f",
    tenant="t",
    repo="o/r",
    pr_number=3,
    rule_id="ruff:F821",
    verdict="ACCEPTED",
    signal="api",
    at_ms=1,
)


def test_codecs_on_one_registry_share_ids_and_decode_each_other() -> None:
    with FakeSchemaRegistry() as server:
        writer = AvroCodec(ConfluentSchemaRegistry(server.url))
        reader = AvroCodec(ConfluentSchemaRegistry(server.url))
        data = writer.encode(FEEDBACK)
        assert reader.decode(data) == FEEDBACK
        assert writer.schema_id("FeedbackEvent") == reader.schema_id("FeedbackEvent")
        assert "codereview.FeedbackEvent" in server.subjects
        assert ("GET", f"/schemas/ids/{writer.schema_id('FeedbackEvent')}") in server.requests


def test_basic_auth_from_the_url() -> None:
    with FakeSchemaRegistry(user="svc", password="p@ss") as server:
        host = server.url.removeprefix("http://")
        codec = AvroCodec(ConfluentSchemaRegistry(f"http://svc:p%40ss@{host}"))
        assert codec.decode(codec.encode(FEEDBACK)) == FEEDBACK
        with pytest.raises(SchemaError, match="401"):
            ConfluentSchemaRegistry(server.url).register("s", '{"type": "string"}')


def test_unknown_schema_id_is_a_decode_error() -> None:
    with FakeSchemaRegistry() as server:
        codec = AvroCodec(ConfluentSchemaRegistry(server.url))
        with pytest.raises(DecodeError, match="40403|404"):
            codec.decode(b"\x00\x00\x00\x00\x2a" + b"\x00" * 8)


def test_unreachable_registry_is_a_schema_error() -> None:
    with FakeSchemaRegistry() as server:
        url = server.url
    with pytest.raises(SchemaError, match="unreachable"):
        ConfluentSchemaRegistry(url, timeout_s=2).register("s", '{"type": "string"}')
