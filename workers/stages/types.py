"""Input and output types of the pipeline stages (a gathered document and the errors are the guard's:
guard/types.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


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
