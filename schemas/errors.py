"""The platform's typed errors, one root.

``DecodeError`` and ``ProcessorError`` are deterministic: retrying cannot
help, so the agent sends the record straight to the dead-letter topic.
``SinkWriteError(retryable=True)`` is retried with bounded backoff first.
"""

from __future__ import annotations


class CodeReviewError(Exception):
    """Root of every error the platform raises on purpose."""


class DecodeError(CodeReviewError):
    """Bytes that are not a record we know: bad magic byte, unknown schema, bad Avro."""


class SchemaError(CodeReviewError):
    """A schema that does not parse or is not compatible with its registered version."""


class ProcessorError(CodeReviewError):
    """A processor rejected its input (an unparsable diff, a malformed payload)."""


class SinkWriteError(CodeReviewError):
    """A store refused a write; ``retryable`` says whether trying again may help."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable
