"""A PR event that fits in one Kafka message, degraded in a known order, never silently.

Brokers refuse records over ``message.max.bytes`` (1 MB by default), and a PR
event carries its diff and every changed file's head text: a big PR does not
fit. Rather than lose the PR, it is made to fit, giving up what matters least
first:

1. head-file contents, largest first: chunking falls back to the diff's hunks
   for those files (true slices of the head file), and linters see less of
   them;
2. then whole file diffs, last files first, counted in the diff's truncation
   marker (``processors.diff``), so every consumer knows the review is partial.

The estimate counts UTF-8 bytes of the texts plus a margin for the Avro and
Kafka framing of the rest, which is small and bounded.
"""

from __future__ import annotations

import dataclasses

from processors.diff import limit_diff, split_file_sections, split_truncation_marker
from schemas.records import FileSnapshot, PullRequestEvent

FRAMING_BYTES = 16_384  # ids, titles, paths and Avro/Kafka framing: generous


def event_bytes(event: PullRequestEvent) -> int:
    """An upper estimate of the event's encoded size."""
    texts = [event.diff, event.title, *(f.path + (f.content or "") for f in event.files)]
    return FRAMING_BYTES + sum(len(t.encode("utf-8")) for t in texts)


def fit_event(event: PullRequestEvent, max_bytes: int) -> tuple[PullRequestEvent, list[str]]:
    """(the event within ``max_bytes``, what was given up to get there, in words)."""
    if event_bytes(event) <= max_bytes:
        return event, []
    given_up: list[str] = []
    files = list(event.files)
    by_size = sorted(
        range(len(files)), key=lambda i: -len((files[i].content or "").encode("utf-8"))
    )
    fitted = event
    for index in by_size:
        if event_bytes(fitted) <= max_bytes or files[index].content is None:
            break
        given_up.append(f"content of {files[index].path}")
        files[index] = FileSnapshot(files[index].path, None)
        fitted = dataclasses.replace(fitted, files=list(files))
    if event_bytes(fitted) > max_bytes:
        plain, omitted = split_truncation_marker(fitted.diff)
        room = max(0, max_bytes - (event_bytes(fitted) - len(fitted.diff.encode("utf-8"))))
        sections = split_file_sections(plain)
        diff = limit_diff(sections, max_bytes=max(0, room - 100), omitted=omitted)
        _, now_omitted = split_truncation_marker(diff)
        given_up.append(f"{now_omitted - omitted} file diffs")
        fitted = dataclasses.replace(fitted, diff=diff)
    return fitted, given_up
