"""What the guard hands on and how it refuses: a gathered document's bytes, and the errors of a document
or of a whole source (its error type is one of core.errors.ErrorType)."""

from __future__ import annotations

from dataclasses import dataclass, field

from core.errors import ErrorType


class DocumentError(Exception):
    """A document that can never succeed at a stage (corrupt PDF, undecodable bytes, empty page).

    It fails alone: the batch records `stage` and `reason` on the artifact and goes on.
    """

    def __init__(self, stage: str, reason: str) -> None:
        super().__init__(f"{stage}: {reason}")
        self.stage = stage
        self.reason = reason


class SourceError(Exception):
    """The source as a whole cannot be gathered; `kind` is the error type name the dashboard shows.

    Only ErrorType.SOURCE_UNAVAILABLE is worth retrying; every other kind needs a person to change something.
    """

    def __init__(self, kind: ErrorType, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message

    @property
    def retryable(self) -> bool:
        return self.kind == ErrorType.SOURCE_UNAVAILABLE


@dataclass(frozen=True)
class RawDocument:
    """A document as gathered by ingest: bytes plus what the source told us about it."""

    uri: str
    content_type: str  # text/plain, text/markdown, text/html, application/pdf
    data: bytes
    hints: dict[str, str] = field(default_factory=dict)  # title, author, published (ISO 8601) from feeds
