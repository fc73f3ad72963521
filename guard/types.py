"""What the guard hands on and how it refuses: a gathered document's bytes, and the errors of a document
or of a whole source (with the error type names the dashboard shows)."""

from __future__ import annotations

from dataclasses import dataclass, field


class DocumentError(Exception):
    """A document that can never succeed at a stage (corrupt PDF, undecodable bytes, empty page).

    It fails alone: the batch records `stage` and `reason` on the artifact and goes on.
    """

    def __init__(self, stage: str, reason: str) -> None:
        super().__init__(f"{stage}: {reason}")
        self.stage = stage
        self.reason = reason


INVALID_SOURCE = "InvalidSource"  # the source itself is wrong: retrying will not help
SOURCE_UNAVAILABLE = "SourceUnavailable"  # the source may come back: worth retrying
ADDRESS_REFUSED = "AddressRefused"  # the address policy refused a host or a redirect
FOLDER_REFUSED = "FolderRefused"  # a folder outside every configured root
SOURCE_TOO_LARGE = "SourceTooLarge"  # more bytes than the limit allows (after decompression)
FETCH_DEADLINE = "FetchDeadline"  # a fetch took longer than its overall deadline
PARSE_LIMIT = "ParseLimit"  # parsing what the source sent needed more memory or time than allowed


class SourceError(Exception):
    """The source as a whole cannot be gathered; `kind` is the error type name the dashboard shows.

    Only SOURCE_UNAVAILABLE is worth retrying; every other kind needs a person to change something.
    """

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message

    @property
    def retryable(self) -> bool:
        return self.kind == SOURCE_UNAVAILABLE


@dataclass(frozen=True)
class RawDocument:
    """A document as gathered by ingest: bytes plus what the source told us about it."""

    uri: str
    content_type: str  # text/plain, text/markdown, text/html, application/pdf
    data: bytes
    hints: dict[str, str] = field(default_factory=dict)  # title, author, published (ISO 8601) from feeds
