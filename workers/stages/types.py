"""Input and output types of the pipeline stages."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


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


@dataclass(frozen=True)
class NormalizedDocument:
    uri: str
    content_type: str
    text: str  # clean main text, whitespace normalised
    language: str  # ISO 639-1 code or "und"
    content_hash: str  # sha256 hex of the clean text
    simhash: int  # signed 64-bit fingerprint for near-duplicate detection
    markup: str | None  # decoded HTML, kept for metadata extraction
    hints: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class DocumentMetadata:
    title: str | None
    author: str | None
    published_at: datetime | None  # timezone-aware UTC
    word_count: int
    language: str


@dataclass(frozen=True)
class LibraryMatch:
    """An artifact already in the library that resembles the document being clarified."""

    artifact_id: int
    content_hash: str
    simhash: int


@dataclass(frozen=True)
class Clarification:
    duplicate_of: int | None
    near_duplicate_of: int | None
    similarity: float | None  # 1.0 - hamming/64 for the nearest match
    notes: str | None  # from the external clarification endpoint, if configured


@dataclass(frozen=True)
class EvaluationInput:
    uri: str
    title: str | None
    author: str | None
    published_at: datetime | None
    text: str
    word_count: int
    language: str
    source_kind: str
    is_duplicate: bool


@dataclass(frozen=True)
class EvaluationResult:
    label: str  # relevant | review | irrelevant
    confidence: float  # 0..1
    relevance: float | None
    credibility: float | None
    rationale: str
    evaluator: str  # semantic | keywords | openai
    model: str | None
    topics_version: str | None = None  # short hash of the topics (and model) the verdict was made against
    tokens: int | None = None  # what a model evaluator's API reported (prompt + completion)
