"""Finding fingerprints: stable across line moves and re-indentation."""

from __future__ import annotations

import pytest

from processors.fingerprint import fingerprint, normalize_span

SPAN = "if user is None:\n    return DEFAULT\n"


@pytest.mark.parametrize(
    ("text", "normalized"),
    [
        ("  a  =  1\n\n\tb = 2  \n", "a = 1\nb = 2"),
        ("x\r\n\r\ny\r\n", "x\ny"),
        ("", ""),
        ("   \n\t\n", ""),
        ("call(a,\tb)", "call(a, b)"),
    ],
)
def test_normalize_span(text: str, normalized: str) -> None:
    assert normalize_span(text) == normalized


@pytest.mark.parametrize(
    "variant",
    [
        SPAN,
        "        if user is None:\n            return DEFAULT",  # re-indented into a block
        "\n\nif user is None:\n\n    return   DEFAULT\n\n",  # blank lines, extra spaces
        "if user is None:\r\n    return DEFAULT\r\n",  # CRLF
    ],
)
def test_identity_survives_moves_and_reindentation(variant: str) -> None:
    base = fingerprint("acme", "acme/shop", "app/users.py", SPAN, "py.none-default")
    assert fingerprint("acme", "acme/shop", "app/users.py", variant, "py.none-default") == base


@pytest.mark.parametrize(
    "changed",
    [
        ("other", "acme/shop", "app/users.py", SPAN, "py.none-default"),
        ("acme", "acme/other", "app/users.py", SPAN, "py.none-default"),
        ("acme", "acme/shop", "app/admins.py", SPAN, "py.none-default"),
        ("acme", "acme/shop", "app/users.py", "if user:\n    return DEFAULT", "py.none-default"),
        ("acme", "acme/shop", "app/users.py", SPAN, "py.other-rule"),
    ],
)
def test_each_field_is_part_of_the_identity(changed: tuple[str, str, str, str, str]) -> None:
    base = fingerprint("acme", "acme/shop", "app/users.py", SPAN, "py.none-default")
    assert fingerprint(*changed) != base


def test_fingerprint_is_sha256_hex() -> None:
    value = fingerprint("t", "r", "p", "x", "rule")
    assert len(value) == 64 and int(value, 16) >= 0
