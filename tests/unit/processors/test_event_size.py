"""fit_event: a PR too big for one Kafka message sheds contents, then diffs, and says so."""

from __future__ import annotations

from processors.diff import parse_diff, split_truncation_marker
from processors.event_size import event_bytes, fit_event
from schemas.records import FileSnapshot, PullRequestEvent


def section(path: str, lines: int) -> str:
    body = "".join(f"+line {i} of {path}\n" for i in range(lines))
    return (
        f"diff --git a/{path} b/{path}\n--- a/{path}\n+++ b/{path}\n@@ -0,0 +1,{lines} @@\n{body}"
    )


def event(sizes: dict[str, int], content_bytes: int) -> PullRequestEvent:
    diff = "".join(section(p, n) for p, n in sizes.items())
    files = [FileSnapshot(p, "x" * content_bytes * (i + 1)) for i, p in enumerate(sizes)]
    return PullRequestEvent("e", "t", "github", "o/r", 1, "opened", "h", diff, 0, files=files)


def test_a_small_event_is_left_alone() -> None:
    pr = event({"a.py": 3}, 100)
    assert fit_event(pr, 1_000_000) == (pr, [])


def test_contents_go_first_largest_first() -> None:
    pr = event({"a.py": 3, "b.py": 3}, 200_000)  # contents 200 kB and 400 kB
    fitted, shed = fit_event(pr, 500_000)
    assert shed == ["content of b.py"]
    assert [f.content is None for f in fitted.files] == [False, True]
    assert fitted.diff == pr.diff and event_bytes(fitted) <= 500_000


def test_then_whole_file_diffs_with_a_truncation_marker() -> None:
    pr = event({f"f{i}.py": 2_000 for i in range(6)}, 50_000)
    fitted, shed = fit_event(pr, 150_000)
    assert event_bytes(fitted) <= 150_000
    assert all(f.content is None for f in fitted.files)
    plain, omitted = split_truncation_marker(fitted.diff)
    kept = [f.path for f in parse_diff(plain)]
    assert omitted == 6 - len(kept) > 0 and kept == [f"f{i}.py" for i in range(len(kept))]
    assert shed[-1] == f"{omitted} file diffs"
