"""BACKWARD compatibility: can the new schema read what the old one wrote?

That is the rule a Confluent registry enforces by default, and the one that
lets consumers upgrade before producers. We check it the direct way: write
generated records with the old schema and resolve them with the new one as
reader schema. A new field without a default, a removed enum symbol without a
default, or a type change that Avro cannot promote all fail resolution.
"""

from __future__ import annotations

import io
import json

import fastavro
from fastavro.utils import generate_many

from schemas.errors import SchemaError


def check_backward(old_text: str, new_text: str, *, samples: int = 25) -> None:
    """Raise ``SchemaError`` when ``new_text`` cannot read data written with ``old_text``."""
    old = fastavro.parse_schema(json.loads(old_text))
    new = fastavro.parse_schema(json.loads(new_text))
    for record in generate_many(old, samples):
        buf = io.BytesIO()
        fastavro.schemaless_writer(buf, old, record)
        buf.seek(0)
        try:
            fastavro.schemaless_reader(buf, old, new)
        except Exception as exc:  # fastavro signals resolution failures with several types
            raise SchemaError(f"not BACKWARD compatible: {exc}") from exc
