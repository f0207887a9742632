"""Context for deep analysis: which names a change calls, and stored chunks as snippets."""

from __future__ import annotations

from typing import Any

import pytest

from processors.context import (
    SNIPPET_MAX_LINES,
    render_snippet,
    touched_symbols,
    unique_snippets,
)
from schemas.records import ChunkVerdict


def chunk(lines: list[str], changed: list[int], *, start: int = 10) -> ChunkVerdict:
    return ChunkVerdict(
        chunk_id="c1",
        path="shop/cart.py",
        language="python",
        start_line=start,
        end_line=start + len(lines) - 1,
        risk=0.9,
        escalate=True,
        text="\n".join(lines),
        changed_lines=changed,
    )


CART = [
    "def total(items, qty):",  # 10
    "    subtotal = price(items[0]) * qty",  # 11
    "    tax = compute_tax(subtotal)",  # 12
    "    return round(subtotal + tax, 2)",  # 13
    "    log.warning('x %s', fmt(tax))",  # 14
]


@pytest.mark.parametrize(
    ("lines", "changed", "expected"),
    [
        # Only the changed lines count.
        (CART, [11], ["price"]),
        (CART, [12], ["compute_tax"]),
        (CART, [11, 12], ["price", "compute_tax"]),
        # Order of first use follows the line order given, a name appears once.
        (CART, [12, 11, 12], ["compute_tax", "price"]),
        # Builtins (round) are not context worth fetching.
        (CART, [13], []),
        # Methods are named without their receiver, in order along the line.
        (CART, [14], ["warning", "fmt"]),
        # Lines outside the chunk are ignored rather than failing.
        (CART, [3, 99], []),
        # Keywords followed by a parenthesis are not calls.
        (["    if (a):", "    while (b): return(c)", "    assert (d)"], [10, 11, 12], []),
        # self/cls/super and print/len/isinstance are never looked up.
        (
            [
                "    self.save(x)",
                "    super().__init__()",
                "    isinstance(x, int)",
                "    print(len(x))",
            ],
            [10, 11, 12, 13],
            ["save", "__init__"],
        ),
        # A call in a comment is not a call.
        (["    x = 1  # then call cleanup()"], [10], []),
        # Names the chunk defines are in the chunk already.
        (
            ["def helper(a):", "    return a", "def main():", "    helper(1); other(2)"],
            [13],
            ["other"],
        ),
        (["class Cart:", "    pass", "c = Cart()", "d = Basket()"], [12, 13], ["Basket"]),
        (["async def fetch():", "    pass", "fetch(); load()"], [12], ["load"]),
        # Space before the parenthesis is still a call.
        (["    value = parse   (raw)"], [10], ["parse"]),
    ],
)
def test_touched_symbols(lines: list[str], changed: list[int], expected: list[str]) -> None:
    assert touched_symbols(chunk(lines, changed)) == expected


def test_touched_symbols_stop_at_the_limit_keeping_the_first() -> None:
    lines = ["    a1(); a2(); a3()", "    a4(); a5()"]
    assert touched_symbols(chunk(lines, [10, 11]), limit=4) == ["a1", "a2", "a3", "a4"]
    assert touched_symbols(chunk(lines, [10, 11]), limit=1) == ["a1"]
    assert touched_symbols(chunk(lines, [10, 11])) == ["a1", "a2", "a3", "a4", "a5"]


def test_touched_symbols_default_limit_is_eight() -> None:
    lines = ["    " + "; ".join(f"f{n}()" for n in range(12))]
    assert touched_symbols(chunk(lines, [10])) == [f"f{n}" for n in range(8)]


def row(
    path: str = "shop/price.py", start: int = 1, text: str = "", **extra: Any
) -> dict[str, Any]:
    return {"path": path, "start_line": start, "text": text, **extra}


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (
            row(start=8, text="def price(item):\n    return item.cost", symbol="price"),
            "path=shop/price.py lines=8-9 symbol=price\n"
            "8 | def price(item):\n9 |     return item.cost",
        ),
        # Numbers are right-aligned to the widest one.
        (
            row(start=9, text="a\nb\nc"),
            "path=shop/price.py lines=9-11\n 9 | a\n10 | b\n11 | c",
        ),
        # A missing start line counts from 1; no symbol, no symbol field.
        (
            {"path": "x.py", "text": "only"},
            "path=x.py lines=1-1\n1 | only",
        ),
    ],
)
def test_render_snippet(data: dict[str, Any], expected: str) -> None:
    assert render_snippet(data) == expected


def test_render_snippet_caps_long_chunks_and_says_how_much_is_left() -> None:
    text = "\n".join(f"line{n}" for n in range(1, 11))
    out = render_snippet(row(start=100, text=text), max_lines=4)
    header, *body = out.split("\n")
    assert header == "path=shop/price.py lines=100-103"
    assert body == [
        "100 | line1",
        "101 | line2",
        "102 | line3",
        "103 | line4",
        "... (6 more lines)",
    ]


def test_render_snippet_default_cap() -> None:
    text = "\n".join(f"x{n}" for n in range(SNIPPET_MAX_LINES + 5))
    out = render_snippet(row(text=text))
    assert out.endswith("\n... (5 more lines)")
    assert f"lines=1-{SNIPPET_MAX_LINES}" in out
    assert f"x{SNIPPET_MAX_LINES - 1}" in out and f"x{SNIPPET_MAX_LINES}\n" not in out


def test_render_snippet_at_the_cap_is_not_cut() -> None:
    text = "\n".join(f"x{n}" for n in range(4))
    assert "more lines" not in render_snippet(row(text=text), max_lines=4)


def test_unique_snippets_dedupes_skips_under_review_and_empty_rows() -> None:
    rows = [
        row("a.py", 1, "def a(): pass"),
        row("b.py", 5, "def b(): pass"),
        row("a.py", 1, "def a(): pass  # an older push"),
        row("c.py", 3, ""),
        {"path": "d.py", "start_line": 4},
        row("e.py", 7, "def e(): pass"),
        row("a.py", 9, "def a2(): pass"),
    ]
    out = unique_snippets(rows, skip_paths_lines={"b.py:5"})
    assert [s.split("\n", 1)[0] for s in out] == [
        "path=a.py lines=1-1",
        "path=e.py lines=7-7",
        "path=a.py lines=9-9",
    ]
    # The first of two rows at one place wins.
    assert out[0].endswith("1 | def a(): pass")
    assert out == [render_snippet(rows[0]), render_snippet(rows[5]), render_snippet(rows[6])]


def test_unique_snippets_of_nothing() -> None:
    assert unique_snippets([], skip_paths_lines=set()) == []
    assert unique_snippets([row("a.py", 1, "x")], skip_paths_lines={"a.py:1"}) == []
