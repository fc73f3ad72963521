"""Repository functions over the library store: keyword-only arguments, a session first, aggregates in SQL."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import case, delete, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, undefer

from data.models import (
    ARTIFACT_FAILED,
    ARTIFACT_INGESTED,
    ARTIFACT_PROCESSED,
    ARTIFACT_QUARANTINED,
    ARTIFACT_STORED,
    BATCH_AWAITING_APPROVAL,
    BATCH_COMPLETED,
    BATCH_PENDING,
    BATCH_RETRYING,
    BATCH_RUNNING,
    SOURCE_KINDS,
    Alert,
    Artifact,
    AuditEvent,
    Batch,
    Evaluation,
    Source,
    utcnow,
)


class DuplicateSourceName(ValueError):
    pass


class NotFound(LookupError):
    pass


def _rowcount(result: Any) -> int:
    """Rows matched by an UPDATE or DELETE (a CursorResult's rowcount; typed loosely by SQLAlchemy)."""
    return int(result.rowcount)


def _insert(session: Session) -> Any:
    return sqlite_insert if session.get_bind().dialect.name == "sqlite" else pg_insert


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


def list_sources(session: Session, *, limit: int | None = None) -> list[SourceSummary]:
    totals = (
        select(
            Batch.source_id.label("source_id"),
            func.count(Batch.id).label("batches"),
            func.coalesce(func.sum(Batch.stored), 0).label("documents"),
            func.coalesce(func.sum(Batch.failed), 0).label("errors"),
            func.max(Batch.id).label("last_batch_id"),
        )
        .group_by(Batch.source_id)
        .subquery()
    )
    last = Batch.__table__.alias("last_batch")
    stmt = (
        select(
            Source,
            func.coalesce(totals.c.batches, 0),
            func.coalesce(totals.c.documents, 0),
            func.coalesce(totals.c.errors, 0),
            last.c.created_at,
            last.c.status,
        )
        .outerjoin(totals, totals.c.source_id == Source.id)
        .outerjoin(last, last.c.id == totals.c.last_batch_id)
        .order_by(Source.name)
        .limit(limit)
    )
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
        )
        for s, batches, docs, errors, last_at, last_status in session.execute(stmt)
    ]


def _aware(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


# --- batches -------------------------------------------------------------------------------------------


def create_batch(session: Session, *, source_id: int, trigger: str = "manual") -> Batch:
    get_source(session, source_id=source_id)
    batch = Batch(source_id=source_id, trigger=trigger, status=BATCH_PENDING)
    session.add(batch)
    session.flush()
    return batch


def get_batch(session: Session, *, batch_id: int) -> Batch:
    batch = session.get(Batch, batch_id)
    if batch is None:
        raise NotFound(f"no batch with id {batch_id}")
    return batch


def mark_batch_running(session: Session, *, batch_id: int, workflow_id: str) -> Batch:
    batch = get_batch(session, batch_id=batch_id)
    batch.status = BATCH_RUNNING
    batch.workflow_id = workflow_id
    if batch.started_at is None:
        batch.started_at = utcnow()
    return batch


def record_ingested(session: Session, *, batch_id: int) -> int:
    """Set the batch's total from the artifacts ingest wrote; returns it."""
    total = session.scalar(select(func.count()).where(Artifact.batch_id == batch_id)) or 0
    session.execute(update(Batch).where(Batch.id == batch_id).values(total=total, ingested_at=utcnow()))
    return int(total)


def artifact_status_counts(session: Session, *, batch_id: int) -> dict[str, int]:
    rows = session.execute(
        select(Artifact.status, func.count()).where(Artifact.batch_id == batch_id).group_by(Artifact.status)
    )
    return {status: int(n) for status, n in rows}


def finish_batch(
    session: Session,
    *,
    batch_id: int,
    status: str,
    error_type: str | None = None,
    error_message: str | None = None,
) -> Batch:
    if status == BATCH_COMPLETED:  # a retried batch that succeeded: its quarantined documents are good again
        session.execute(
            update(Artifact)
            .where(Artifact.batch_id == batch_id, Artifact.status == ARTIFACT_QUARANTINED)
            .values(status=ARTIFACT_STORED)
        )
    counts = artifact_status_counts(session, batch_id=batch_id)
    batch = get_batch(session, batch_id=batch_id)
    batch.total = sum(counts.values())
    batch.stored = counts.get(ARTIFACT_STORED, 0)
    batch.failed = counts.get(ARTIFACT_FAILED, 0)
    batch.status = status
    batch.error_type = error_type
    batch.error_message = error_message
    batch.finished_at = utcnow()
    return batch


@dataclass(frozen=True)
class BatchRow:
    id: int
    source_id: int
    source_name: str
    status: str
    trigger: str
    attempt: int
    total: int
    stored: int
    failed: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    error_type: str | None
    error_message: str | None
    workflow_id: str | None


def list_batches(
    session: Session,
    *,
    source_id: int | None = None,
    status: str | None = None,
    since: datetime | None = None,
    limit: int = 50,
) -> list[BatchRow]:
    stmt = select(Batch, Source.name).join(Source, Source.id == Batch.source_id)
    if source_id is not None:
        stmt = stmt.where(Batch.source_id == source_id)
    if status is not None:
        stmt = stmt.where(Batch.status == status)
    if since is not None:
        stmt = stmt.where(Batch.created_at >= since)
    stmt = stmt.order_by(Batch.id.desc()).limit(limit)
    return [
        BatchRow(
            id=b.id,
            source_id=b.source_id,
            source_name=name,
            status=b.status,
            trigger=b.trigger,
            attempt=b.attempt,
            total=b.total,
            stored=b.stored,
            failed=b.failed,
            created_at=b.created_at,
            started_at=b.started_at,
            finished_at=b.finished_at,
            error_type=b.error_type,
            error_message=b.error_message,
            workflow_id=b.workflow_id,
        )
        for b, name in session.execute(stmt)
    ]


# --- artifacts -----------------------------------------------------------------------------------------


def insert_artifacts(session: Session, *, rows: Sequence[dict[str, Any]]) -> None:
    """Insert ingested artifacts; rows already present for (batch_id, seq) are left as they are."""
    if not rows:
        return
    stmt = _insert(session)(Artifact).on_conflict_do_nothing(index_elements=["batch_id", "seq"])
    session.execute(stmt, list(rows))


def load_artifacts(
    session: Session, *, batch_id: int, start_seq: int, end_seq: int, status: str, with_raw: bool = False
) -> list[Artifact]:
    """Artifacts of one chunk [start_seq, end_seq) in one status, in seq order."""
    options = [undefer(Artifact.raw), undefer(Artifact.hints)] if with_raw else [undefer(Artifact.text)]
    stmt = (
        select(Artifact)
        .options(*options)
        .where(
            Artifact.batch_id == batch_id,
            Artifact.seq >= start_seq,
            Artifact.seq < end_seq,
            Artifact.status == status,
        )
        .order_by(Artifact.seq)
    )
    return list(session.scalars(stmt))


@dataclass(frozen=True)
class LibraryRow:
    artifact_id: int
    content_hash: str
    simhash: int


def find_library_matches(
    session: Session, *, content_hashes: Iterable[str], bands: Sequence[Iterable[int]]
) -> list[LibraryRow]:
    """Processed or stored artifacts sharing a content hash or a simhash band with the given documents."""
    hashes = sorted(set(content_hashes))
    conditions = [Artifact.content_hash.in_(hashes)] if hashes else []
    band_columns = (
        Artifact.simhash_band0,
        Artifact.simhash_band1,
        Artifact.simhash_band2,
        Artifact.simhash_band3,
    )
    for column, values in zip(band_columns, bands, strict=True):
        vals = sorted(set(values))
        if vals:
            conditions.append(column.in_(vals))
    if not conditions:
        return []
    stmt = select(Artifact.id, Artifact.content_hash, Artifact.simhash).where(
        Artifact.status.in_((ARTIFACT_PROCESSED, ARTIFACT_STORED)), or_(*conditions)
    )
    return [LibraryRow(i, h, s) for i, h, s in session.execute(stmt) if h is not None and s is not None]


def update_artifacts(session: Session, *, rows: Sequence[dict[str, Any]]) -> None:
    """Bulk UPDATE by primary key: every row carries "id" and the columns to set."""
    if rows:
        session.execute(update(Artifact), list(rows))


def upsert_evaluations(session: Session, *, rows: Sequence[dict[str, Any]]) -> None:
    """Store evaluations; running twice for the same artifact keeps one row with the latest verdict."""
    if not rows:
        return
    ins = _insert(session)(Evaluation)
    stmt = ins.on_conflict_do_update(
        index_elements=["artifact_id"],
        set_={
            col: getattr(ins.excluded, col)
            for col in ("label", "confidence", "relevance", "credibility", "rationale", "evaluator", "model")
        },
    )
    session.execute(stmt, list(rows))


def count_stored_since(session: Session, *, since: datetime) -> int:
    return int(
        session.scalar(
            select(func.count()).where(Artifact.status == ARTIFACT_STORED, Artifact.stored_at >= since)
        )
        or 0
    )


def batch_stage_timings(session: Session, *, batch_id: int) -> dict[str, float | None]:
    """Mean milliseconds per stage over a batch's artifacts."""
    cols = ("ingest_ms", "normalize_ms", "extract_ms", "clarify_ms", "evaluate_ms", "store_ms")
    row = session.execute(
        select(*(func.avg(getattr(Artifact, c)) for c in cols)).where(Artifact.batch_id == batch_id)
    ).one()
    return {c: (None if v is None else float(v)) for c, v in zip(cols, row, strict=True)}


def pending_artifact_count(session: Session, *, batch_id: int) -> int:
    return int(
        session.scalar(
            select(func.count()).where(
                Artifact.batch_id == batch_id,
                Artifact.status.in_((ARTIFACT_INGESTED, ARTIFACT_PROCESSED)),
            )
        )
        or 0
    )


def batch_progress(session: Session, *, batch_id: int) -> tuple[int, int]:
    """(done, total) for a batch: done counts stored and failed artifacts."""
    done, total = session.execute(
        select(
            func.coalesce(
                func.sum(case((Artifact.status.in_((ARTIFACT_STORED, ARTIFACT_FAILED)), 1), else_=0)), 0
            ),
            func.count(),
        ).where(Artifact.batch_id == batch_id)
    ).one()
    return int(done), int(total)


# --- failed batches: compensation, alerts, decisions ----------------------------------------------------


def compensate_batch(session: Session, *, batch_id: int, stage: str) -> str:
    """Undo or mark a failed attempt's writes so nothing half-written shows as good; returns what was done.

    A failed ingest leaves a partial list of documents: they are removed (a retry ingests afresh).
    A batch failed by its documents keeps what it stored, quarantined until a retry succeeds.
    """
    if stage == "ingest":
        removed = _rowcount(session.execute(delete(Artifact).where(Artifact.batch_id == batch_id)))
        summary = f"removed {removed} partially ingested document(s)"
    else:
        quarantined = _rowcount(
            session.execute(
                update(Artifact)
                .where(Artifact.batch_id == batch_id, Artifact.status == ARTIFACT_STORED)
                .values(status=ARTIFACT_QUARANTINED)
            )
        )
        already = session.scalar(
            select(func.count()).where(Artifact.batch_id == batch_id, Artifact.status == ARTIFACT_QUARANTINED)
        )
        summary = f"quarantined {already} stored document(s) until a retry succeeds"
        if quarantined != already:
            summary += f" ({quarantined} newly)"
    session.execute(update(Batch).where(Batch.id == batch_id).values(compensation=summary))
    return summary


def mark_awaiting_decision(
    session: Session,
    *,
    batch_id: int,
    stage: str,
    error_type: str,
    error_message: str,
    deadline: datetime,
) -> None:
    counts = artifact_status_counts(session, batch_id=batch_id)
    batch = get_batch(session, batch_id=batch_id)
    batch.status = BATCH_AWAITING_APPROVAL
    batch.failed_stage = stage
    batch.error_type = error_type
    batch.error_message = error_message
    batch.decision_deadline = deadline
    batch.decision = batch.decided_by = batch.decision_reason = None
    batch.decided_at = None
    batch.total = sum(counts.values())
    batch.stored = counts.get(ARTIFACT_STORED, 0) + counts.get(ARTIFACT_QUARANTINED, 0)
    batch.failed = counts.get(ARTIFACT_FAILED, 0)


def record_decision(
    session: Session, *, batch_id: int, decision: str, actor: str, reason: str, attempt: int
) -> None:
    """The decision on the batch row, an audit event, and the batch's open failure alerts resolved."""
    batch = get_batch(session, batch_id=batch_id)
    batch.decision = decision
    batch.decided_by = actor
    batch.decision_reason = reason or None
    batch.decided_at = utcnow()
    action = {"approved": "approve", "rejected": "reject"}.get(decision, "reject_by_timeout")
    record_audit(session, actor=actor, action=action, target=f"batch:{batch_id}", reason=reason or None)
    session.execute(
        update(Alert)
        .where(Alert.batch_id == batch_id, Alert.kind.like("batch_failed%"), Alert.resolved_at.is_(None))
        .values(resolved_at=utcnow())
    )


def prepare_retry(session: Session, *, batch_id: int, stage: str, attempt: int) -> int:
    """Set the batch up for its next attempt; returns how many documents will be processed again.

    After a failed ingest everything is ingested afresh; otherwise only documents that failed after ingest
    (and so still have their bytes) go back to the start of processing.
    """
    batch = get_batch(session, batch_id=batch_id)
    batch.attempt = attempt
    batch.status = BATCH_RETRYING
    if stage == "ingest":
        return 0
    return _rowcount(
        session.execute(
            update(Artifact)
            .where(
                Artifact.batch_id == batch_id,
                Artifact.status == ARTIFACT_FAILED,
                Artifact.failed_stage != "ingest",
            )
            .values(status=ARTIFACT_INGESTED, failed_stage=None, error=None)
        )
    )


def raise_alert(
    session: Session, *, batch_id: int | None, kind: str, level: str, message: str
) -> tuple[Alert, bool]:
    """The alert for (batch, kind), created if new; returns (alert, created). Raising twice is harmless."""
    existing = session.scalars(select(Alert).where(Alert.batch_id == batch_id, Alert.kind == kind)).first()
    if existing is not None:
        return existing, False
    alert = Alert(batch_id=batch_id, kind=kind, level=level, message=message)
    session.add(alert)
    session.flush()
    return alert, True


def resolve_alerts(session: Session, *, batch_id: int, kinds: Sequence[str]) -> int:
    return _rowcount(
        session.execute(
            update(Alert)
            .where(Alert.batch_id == batch_id, Alert.kind.in_(kinds), Alert.resolved_at.is_(None))
            .values(resolved_at=utcnow())
        )
    )


# --- audit ---------------------------------------------------------------------------------------------


def record_audit(
    session: Session, *, actor: str, action: str, target: str, reason: str | None = None
) -> None:
    if not actor.strip():
        raise ValueError("an audit event needs an actor")
    session.add(AuditEvent(actor=actor, action=action, target=target, reason=reason))


def delete_source(session: Session, *, source_id: int) -> None:
    session.execute(delete(Source).where(Source.id == source_id))
