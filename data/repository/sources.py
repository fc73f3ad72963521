"""Sources: create, find, list with their totals, delete; what their schedules must match."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import case, delete, func, literal, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.vocabulary import SOURCE_KINDS, BatchStatus
from data.models import Artifact, Batch, Evaluation, Source
from data.repository._base import DuplicateSourceName, NotFound

# --- sources -------------------------------------------------------------------------------------------


def create_source(
    session: Session, *, name: str, kind: str, location: str, refresh_interval_seconds: int = 3600
) -> Source:
    name = name.strip()
    if not name:
        raise ValueError("a source needs a name")
    if kind not in SOURCE_KINDS:
        raise ValueError(f"unknown source kind {kind!r}; expected one of {', '.join(SOURCE_KINDS)}")
    if refresh_interval_seconds < 60:
        raise ValueError("the refresh interval must be at least 60 seconds")
    source = Source(
        name=name, kind=kind, location=location, refresh_interval_seconds=refresh_interval_seconds
    )
    session.add(source)
    try:
        session.flush()
    except IntegrityError as exc:
        session.rollback()
        raise DuplicateSourceName(f"a source named {name!r} already exists") from exc
    return source


def get_source(session: Session, *, source_id: int) -> Source:
    source = session.get(Source, source_id)
    if source is None:
        raise NotFound(f"no source with id {source_id}")
    return source


def find_source(session: Session, *, ref: str) -> Source:
    """A source by id (digits) or by exact name."""
    stmt = select(Source).where(Source.name == ref)
    if ref.isdigit():
        stmt = select(Source).where(or_(Source.id == int(ref), Source.name == ref))
    source = session.scalars(stmt.limit(1)).first()
    if source is None:
        raise NotFound(f"no source named or numbered {ref!r}")
    return source


def source_name_taken(session: Session, *, name: str) -> bool:
    return bool(session.scalar(select(func.count()).where(Source.name == name)))


def source_schedules(session: Session) -> list[tuple[int, int, bool]]:
    """(id, refresh interval seconds, paused) of every source: what their schedules must match."""
    rows = session.execute(
        select(Source.id, Source.refresh_interval_seconds, Source.paused).order_by(Source.id)
    ).all()
    return [(int(i), int(interval), bool(paused)) for i, interval, paused in rows]


def delete_source(session: Session, *, source_id: int) -> None:
    """Delete the source; its batches, artifacts, evaluations and alerts go with it (ON DELETE CASCADE)."""
    session.execute(delete(Source).where(Source.id == source_id))


@dataclass(frozen=True)
class SourceSummary:
    id: int
    name: str
    kind: str
    location: str
    refresh_interval_seconds: int
    paused: bool
    batches: int
    documents: int
    errors: int
    last_refresh: datetime | None
    last_status: str | None
    failed_batches: int = 0  # batches that ended failed (not the documents that failed in good batches)
    tokens: int = 0  # what a model evaluator reported for its documents (their latest verdicts)


def list_sources(
    session: Session, *, limit: int | None = None, with_tokens: bool = False
) -> list[SourceSummary]:
    """Every source with its totals; `with_tokens` also sums the tokens of its documents' verdicts (a read of
    every verdict: worth it only where a model evaluator reports tokens)."""
    totals = (
        select(
            Batch.source_id.label("source_id"),
            func.count(Batch.id).label("batches"),
            func.coalesce(func.sum(Batch.stored), 0).label("documents"),
            func.coalesce(func.sum(Batch.failed), 0).label("errors"),
            func.coalesce(func.sum(case((Batch.status == BatchStatus.FAILED, 1), else_=0)), 0).label(
                "failed_batches"
            ),
            func.max(Batch.id).label("last_batch_id"),
        )
        .group_by(Batch.source_id)
        .subquery()
    )
    # Summed per source in SQL, as a batch's are (repository.batch_tokens): the latest verdict of each document.
    spent = (
        select(
            Artifact.source_id.label("source_id"),
            func.coalesce(func.sum(Evaluation.tokens), 0).label("tokens"),
        )
        .join(Evaluation, Evaluation.artifact_id == Artifact.id)
        .group_by(Artifact.source_id)
        .subquery()
    )
    last = Batch.__table__.alias("last_batch")
    stmt = (
        select(
            Source,
            func.coalesce(totals.c.batches, 0),
            func.coalesce(totals.c.documents, 0),
            func.coalesce(totals.c.errors, 0),
            func.coalesce(totals.c.failed_batches, 0),
            func.coalesce(spent.c.tokens, 0) if with_tokens else literal(0),
            last.c.created_at,
            last.c.status,
        )
        .outerjoin(totals, totals.c.source_id == Source.id)
        .outerjoin(last, last.c.id == totals.c.last_batch_id)
        .order_by(Source.name)
        .limit(limit)
    )
    if with_tokens:
        stmt = stmt.outerjoin(spent, spent.c.source_id == Source.id)
    return [
        SourceSummary(
            id=s.id,
            name=s.name,
            kind=s.kind,
            location=s.location,
            refresh_interval_seconds=s.refresh_interval_seconds,
            paused=s.paused,
            batches=int(batches),
            documents=int(docs),
            errors=int(errors),
            last_refresh=last_at if last_at is None else _aware(last_at),
            last_status=last_status,
            failed_batches=int(failed_batches),
            tokens=int(tokens),
        )
        for s, batches, docs, errors, failed_batches, tokens, last_at, last_status in session.execute(stmt)
    ]


def _aware(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def lock_source(session: Session, *, source_id: int) -> None:
    """Hold the source's row until the transaction ends (PostgreSQL; SQLite writes one at a time anyway), so
    two refreshes at once cannot both find no batch in flight."""
    session.scalar(select(Source.id).where(Source.id == source_id).with_for_update())
