"""One document as an analyst reads it: metadata, the evaluation in full, its exact and near duplicates, its batch
and source, and every time its content was seen (the same content hash, in any batch of any source)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import pandas as pd
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from dashboard.formatting import status_word
from data.models import Artifact, Evaluation, Source

RELATED_LIMIT = 50  # duplicates listed per kind
SIGHTINGS_LIMIT = 200


@dataclass(frozen=True)
class Document:
    id: int
    title: str | None
    uri: str
    content_type: str
    status: str
    source_id: int
    source_name: str
    batch_id: int
    language: str | None
    word_count: int | None
    author: str | None
    published_at: datetime | None
    ingested_at: datetime
    stored_at: datetime | None
    failed_stage: str | None
    error: str | None
    content_hash: str | None
    duplicate_of_id: int | None
    near_duplicate_of_id: int | None
    similarity: float | None
    clarification: str | None
    label: str | None
    confidence: float | None
    relevance: float | None
    credibility: float | None
    rationale: str | None
    evaluator: str | None
    model: str | None
    topics_version: str | None
    evaluated_at: datetime | None
    model_label: str | None = None  # the evaluator's label, when a person chose another (or the same)
    reviewed_by: str | None = None
    reviewed_at: datetime | None = None
    review_reason: str | None = None
    needs_review: bool = False
    reported_by: str | None = None
    report_note: str | None = None
    gone_at: datetime | None = None  # a refresh found the source no longer has it


def document(session: Session, *, artifact_id: int) -> Document | None:
    row = session.execute(
        select(Artifact, Source.name, Evaluation)
        .join(Source, Source.id == Artifact.source_id)
        .outerjoin(Evaluation, Evaluation.artifact_id == Artifact.id)
        .where(Artifact.id == artifact_id)
    ).one_or_none()
    if row is None:
        return None
    a, source_name, e = row
    return Document(
        id=a.id,
        title=a.title,
        uri=a.uri,
        content_type=a.content_type,
        status=a.status,
        source_id=a.source_id,
        source_name=source_name,
        batch_id=a.batch_id,
        language=a.language,
        word_count=a.word_count,
        author=a.author,
        published_at=a.published_at,
        ingested_at=a.ingested_at,
        stored_at=a.stored_at,
        failed_stage=a.failed_stage,
        error=a.error,
        content_hash=a.content_hash,
        duplicate_of_id=a.duplicate_of_id,
        near_duplicate_of_id=a.near_duplicate_of_id,
        similarity=a.similarity,
        clarification=a.clarification,
        label=e.label if e else None,
        confidence=e.confidence if e else None,
        relevance=e.relevance if e else None,
        credibility=e.credibility if e else None,
        rationale=e.rationale if e else None,
        evaluator=e.evaluator if e else None,
        model=e.model if e else None,
        topics_version=e.topics_version if e else None,
        evaluated_at=e.created_at if e else None,
        model_label=(e.model_label or e.label) if e else None,
        reviewed_by=e.reviewed_by if e else None,
        reviewed_at=e.reviewed_at if e else None,
        review_reason=e.review_reason if e else None,
        needs_review=bool(e.needs_review) if e else False,
        reported_by=e.reported_by if e else None,
        report_note=e.report_note if e else None,
        gone_at=a.gone_at,
    )


def document_text(session: Session, *, artifact_id: int) -> str | None:
    """The normalized text (only for people whose role lets them see document text: the page checks)."""
    return session.scalar(select(Artifact.text).where(Artifact.id == artifact_id))


RELATED_COLUMNS = ["document", "title", "source", "batch", "status", "seen", "similarity"]


def _related(session: Session, condition: object, *, exclude: int, limit: int) -> pd.DataFrame:
    rows = session.execute(
        select(
            Artifact.id,
            Artifact.title,
            Source.name,
            Artifact.batch_id,
            Artifact.status,
            Artifact.ingested_at,
            Artifact.similarity,
        )
        .join(Source, Source.id == Artifact.source_id)
        .where(condition, Artifact.id != exclude)  # type: ignore[arg-type]
        .order_by(Artifact.id)
        .limit(limit)
    ).all()
    return pd.DataFrame(
        [[i, t or "", s, b, status_word(st), seen, sim] for i, t, s, b, st, seen, sim in rows],
        columns=RELATED_COLUMNS,
    )


def exact_duplicates(session: Session, doc: Document, *, limit: int = RELATED_LIMIT) -> pd.DataFrame:
    """Stored documents with the same content: the original this one duplicates, and those that duplicate it."""
    ids = [doc.id] + ([doc.duplicate_of_id] if doc.duplicate_of_id else [])
    condition = or_(Artifact.duplicate_of_id.in_(ids), Artifact.id == (doc.duplicate_of_id or -1))
    frame = _related(session, condition, exclude=doc.id, limit=limit)
    return frame[frame["status"] != status_word("unchanged")].reset_index(drop=True)


def near_duplicates(session: Session, doc: Document, *, limit: int = RELATED_LIMIT) -> pd.DataFrame:
    """Documents whose text is nearly the same (simhash): the one this is near to, and those near to it."""
    condition = or_(Artifact.near_duplicate_of_id == doc.id, Artifact.id == (doc.near_duplicate_of_id or -1))
    return _related(session, condition, exclude=doc.id, limit=limit)


SIGHTING_COLUMNS = ["seen", "document", "source", "batch", "status", "uri"]


def sightings(session: Session, doc: Document, *, limit: int = SIGHTINGS_LIMIT) -> pd.DataFrame:
    """Every time this content was gathered (any batch, any source), oldest first: the same content hash."""
    condition = (
        Artifact.id == doc.id if doc.content_hash is None else Artifact.content_hash == doc.content_hash
    )
    rows = session.execute(
        select(
            Artifact.ingested_at, Artifact.id, Source.name, Artifact.batch_id, Artifact.status, Artifact.uri
        )
        .join(Source, Source.id == Artifact.source_id)
        .where(condition)
        .order_by(Artifact.ingested_at, Artifact.id)
        .limit(limit)
    ).all()
    return pd.DataFrame(
        [[seen, i, s, b, status_word(st), u] for seen, i, s, b, st, u in rows], columns=SIGHTING_COLUMNS
    )


def seen_counts(session: Session, hashes: list[str]) -> dict[str, tuple[int, datetime, datetime]]:
    """Per content hash: (times gathered, first, last) over every batch of every source (index on the hash)."""
    if not hashes:
        return {}
    rows = session.execute(
        select(
            Artifact.content_hash,
            func.count(),
            func.min(Artifact.ingested_at),
            func.max(Artifact.ingested_at),
        )
        .where(Artifact.content_hash.in_(hashes))
        .group_by(Artifact.content_hash)
    )
    return {str(h): (int(n), first, last) for h, n, first, last in rows}
