"""Reading webhook deliveries: headers, JSON fields, secrets and times.

Shared by every source module so each reads its vendor's payload the same
way: a missing or mistyped field is a ``ProcessorError`` naming the field, a
secret is compared in constant time, and a header name matches in any case.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from schemas.errors import ProcessorError

_HEX_DIGITS = frozenset("0123456789abcdef")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def header(headers: Mapping[str, str], name: str) -> str | None:
    """The value of header ``name`` in any letter case, stripped, or ``None``."""
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            return value.strip()
    return None


def first_header(headers: Mapping[str, str], *names: str) -> str | None:
    """The first of ``names`` present and non-empty."""
    for name in names:
        value = header(headers, name)
        if value:
            return value
    return None


def token_matches(secrets: Sequence[bytes], given: str | None) -> bool:
    """Whether ``given`` equals one of ``secrets`` (empty secrets never match).

    Every secret is compared, so the time taken does not tell which matched.
    """
    if not given:
        return False
    presented = given.encode("utf-8")
    matched = False
    for secret in secrets:
        if secret and hmac.compare_digest(secret, presented):
            matched = True
    return matched


def hmac_hex_matches(secrets: Sequence[bytes], body: bytes, given_hex: str | None) -> bool:
    """Whether ``given_hex`` is the HMAC-SHA256 of ``body`` under one of ``secrets``."""
    if not given_hex:
        return False
    given = given_hex.strip().lower()
    if len(given) != 64 or not set(given) <= _HEX_DIGITS:
        return False
    matched = False
    for secret in secrets:
        if not secret:
            continue
        expected = hmac.new(secret, body, hashlib.sha256).hexdigest()
        if hmac.compare_digest(expected.encode("ascii"), given.encode("ascii")):
            matched = True
    return matched


def prefixed_hmac_matches(secrets: Sequence[bytes], body: bytes, given: str | None) -> bool:
    """Whether ``given`` (``sha256=<hex>``) signs ``body`` under one of ``secrets``."""
    if not given:
        return False
    algorithm, _, digest = given.strip().partition("=")
    if algorithm.lower() != "sha256":
        return False
    return hmac_hex_matches(secrets, body, digest)


def body_digest(body: bytes) -> str:
    """A stand-in delivery id for sources that send none: the same bytes, the same id."""
    return "sha256:" + hashlib.sha256(body).hexdigest()


def load_object(body: bytes, what: str) -> dict[str, Any]:
    """The JSON object in ``body``; ``ProcessorError`` if it is not one."""
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProcessorError(f"{what} webhook body is not JSON: {exc}") from exc
    if not isinstance(payload, dict):
        raise ProcessorError(
            f"{what} webhook body is a JSON {type(payload).__name__}, not an object"
        )
    return payload


def load_object_or_none(body: bytes) -> dict[str, Any] | None:
    """The JSON object in ``body``, or ``None``: for best-effort reads like timestamps."""
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    return payload if isinstance(payload, dict) else None


class Fields:
    """Typed reads from one webhook payload, each failure naming the field path."""

    def __init__(self, what: str) -> None:
        self.what = what

    def obj(self, parent: Mapping[str, Any], name: str, where: str = "") -> dict[str, Any]:
        value = parent.get(name)
        if not isinstance(value, dict):
            raise ProcessorError(self._missing(where + name, "an object", value))
        return value

    def text(
        self, parent: Mapping[str, Any], name: str, where: str = "", *, allow_empty: bool = False
    ) -> str:
        value = parent.get(name)
        if not isinstance(value, str) or not (value or allow_empty):
            raise ProcessorError(self._missing(where + name, "a non-empty string", value))
        return value

    def integer(self, parent: Mapping[str, Any], name: str, where: str = "") -> int:
        value = parent.get(name)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ProcessorError(self._missing(where + name, "a non-negative integer", value))
        return value

    def number(self, parent: Mapping[str, Any], name: str, where: str = "") -> int:
        """A PR, change or comment number: a positive integer."""
        value = self.integer(parent, name, where)
        if value < 1:
            raise ProcessorError(self._missing(where + name, "a positive integer", value))
        return value

    def optional_text(self, parent: Mapping[str, Any], name: str) -> str:
        value = parent.get(name)
        return value if isinstance(value, str) else ""

    def _missing(self, field: str, wanted: str, value: object) -> str:
        shown = "missing" if value is None else f"{type(value).__name__} {value!r:.40}"
        return f"{self.what} webhook: '{field}' must be {wanted}, got {shown}"


def iso_to_ms(value: object) -> int | None:
    """Epoch ms of an ISO-8601 time (``Z``, ``+1000`` or `` UTC`` suffixes), else ``None``."""
    if not isinstance(value, str) or not value:
        return None
    text = value.strip()
    if text.endswith(" UTC"):
        text = text[: -len(" UTC")] + "+00:00"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None
    return (moment - _EPOCH) // timedelta(milliseconds=1)  # exact: no float rounding


def nested(payload: Mapping[str, Any], *path: str) -> object:
    """The value at ``path`` inside nested objects, or ``None`` if any step is missing."""
    value: object = payload
    for step in path:
        if not isinstance(value, dict):
            return None
        value = value.get(step)
    return value
