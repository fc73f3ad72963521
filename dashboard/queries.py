"""The dashboard's SQL for the overview, sources and batches (the library's is in dashboard.library): figures
aggregated in the database and pages of rows, every list LIMITed.

Functions take a session and return plain numbers, typed rows or small DataFrames (a page of rows or a
handful of aggregated buckets), so pages stay thin and the benchmark can time the raw queries alone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pandas as pd
from sqlalchemy import BigInteger, ColumnElement, Integer, cast, func, select
from sqlalchemy.orm import Session

from core.vocabulary import BATCH_IN_FLIGHT, SKIPPED_OVER_LIMIT, STAGES, ArtifactStatus, BatchStatus, Decision
from dashboard.formatting import duration, status_word
from data import repository
from data.models import Alert, Artifact, Batch, QueueSample, Source

SLA_ALERT_KINDS = ("sla_warning", "sla_critical")
MAX_SOURCES = 500  # the sources table; far more than a deployment registers


def sqlite_backend(session: Session) -> bool:
    return session.get_bind().dialect.name == "sqlite"


# --- overview -------------------------------------------------------------------------------------------


def stored_since(session: Session, *, since: datetime) -> int:
    return repository.count_stored_since(session, since=since)


def open_sla_breaches(session: Session) -> int:
    return int(
        session.scalar(
            select(func.count()).where(Alert.kind.in_(SLA_ALERT_KINDS), Alert.resolved_at.is_(None))
        )
        or 0
    )


def awaiting_approval(session: Session) -> int:
    return int(session.scalar(select(func.count()).where(Batch.status == BatchStatus.AWAITING_APPROVAL)) or 0)


def batches_ended_since(session: Session, *, since: datetime) -> dict[str, int]:
    """Batches that finished since `since`, per status (completed, failed, cancelled), counted in SQL."""
    rows = session.execute(
        select(Batch.status, func.count())
        .where(Batch.finished_at >= since, Batch.status.not_in(BATCH_IN_FLIGHT))
        .group_by(Batch.status)
    )
    return {str(status): int(n) for status, n in rows}


def _epoch_bucket(session: Session, column: Any, seconds: int) -> ColumnElement[Any]:
    """The start of `column`'s bucket as seconds since the epoch, computed in SQL."""
    if sqlite_backend(session):  # SQLite keeps UTC datetimes as text; strftime('%s') reads them as UTC
        return cast(func.strftime("%s", column), Integer) // seconds * seconds
    return cast(func.floor(func.extract("epoch", column) / seconds) * seconds, BigInteger)


def throughput(
    session: Session, *, until: datetime, hours: int = 24, bucket_minutes: int = 60
) -> pd.DataFrame:
    """Documents stored per bucket over the last `hours`, counted in SQL; empty buckets are zeros."""
    seconds = bucket_minutes * 60
    end = int(until.timestamp()) // seconds * seconds + seconds
    start = end - hours * 3600
    since = datetime.fromtimestamp(start, UTC)
    bucket = _epoch_bucket(session, Artifact.stored_at, seconds).label("bucket")
    rows = session.execute(
        select(bucket, func.count())
        .where(Artifact.status == ArtifactStatus.STORED, Artifact.stored_at >= since)
        .group_by(bucket)
    )
    counts = {int(b): int(n) for b, n in rows if b is not None}
    starts = range(start, end, seconds)
    return pd.DataFrame(
        {
            "interval": [datetime.fromtimestamp(s, UTC) for s in starts],
            "documents": [counts.get(s, 0) for s in starts],
        }
    )


# --- sources --------------------------------------------------------------------------------------------


def source_summaries(
    session: Session, *, limit: int = MAX_SOURCES, with_tokens: bool = False
) -> list[repository.SourceSummary]:
    """Sources with their batch totals and last batch (and the model's tokens), aggregated in SQL."""
    return repository.list_sources(session, limit=limit, with_tokens=with_tokens)


def source_options(session: Session, *, limit: int = MAX_SOURCES) -> dict[int, str]:
    """Source id -> name, for filters."""
    rows = session.execute(select(Source.id, Source.name).order_by(Source.name).limit(limit))
    return {int(source_id): str(name) for source_id, name in rows}


# --- batches --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BatchFilter:
    source_id: int | None = None
    status: str | None = None
    since: datetime | None = None


def _batch_conditions(f: BatchFilter) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if f.source_id is not None:
        conditions.append(Batch.source_id == f.source_id)
    if f.status is not None:
        conditions.append(Batch.status == f.status)
    if f.since is not None:
        conditions.append(Batch.created_at >= f.since)
    return conditions


def count_batches(session: Session, f: BatchFilter) -> int:
    return int(session.scalar(select(func.count()).select_from(Batch).where(*_batch_conditions(f))) or 0)


BATCH_COLUMNS = [
    "batch",
    "source",
    "status",
    "progress",
    "trigger",
    "attempt",
    "total",
    "stored",
    "failed",
    "unchanged",
    "skipped",
    "created",
    "took",
    "error",
]
# The order on screen: what a person scans for (status, progress, what went wrong) before the counts, so a
# 1440 px screen shows it without scrolling sideways.
SHOWN_BATCH_COLUMNS = [
    "batch",
    "source",
    "status",
    "progress",
    "error",
    "took",
    "stored",
    "failed",
    "unchanged",
    "skipped",
    "total",
    "attempt",
    "trigger",
    "created",
]
INGESTING = "ingesting"  # a running batch still gathering its documents: its total is still growing


CANCELLING = "cancelling"  # cancellation requested; the batch's activities have not all stopped yet


def shown_status(status: str, ingested_at: datetime | None, decision: str | None = None) -> str:
    """The status as a person reads it, with the ingesting phase of a running batch made explicit, and a
    batch whose cancellation was requested (still in flight) as cancelling."""
    if decision == Decision.CANCELLED and status in BATCH_IN_FLIGHT:
        return CANCELLING
    if status == BatchStatus.RUNNING and ingested_at is None:
        return INGESTING
    return status_word(status)


UNCHANGED_AT_SOURCE = "unchanged at source"  # the feed or page answered 304 Not Modified: nothing gathered


def progress_text(done: int, total: int, status: str, *, unchanged_at_source: bool = False) -> str:
    if status == INGESTING:
        return f"{total:,} gathered so far"
    if unchanged_at_source:
        return UNCHANGED_AT_SOURCE
    if not total:
        return "—"
    return f"{done:,} of {total:,} ({done / total:.0%})"


@dataclass(frozen=True)
class Progress:
    """A batch's progress as the Batches list and the batch's own page both show it: one computation, so the
    two agree while it runs."""

    status: str  # as a person reads it (shown_status)
    done: int  # stored, failed or unchanged
    total: int
    stored: int
    failed: int
    unchanged: int  # including folder files recognised unread (not counted in done or total)
    unchanged_at_source: bool = False  # the source answered 304: nothing was gathered

    @property
    def share(self) -> float:
        """0..1 for a progress bar (a completed batch with no documents is full)."""
        if self.total:
            return min(1.0, self.done / self.total)
        return 1.0 if self.status == status_word(BatchStatus.COMPLETED) else 0.0

    @property
    def text(self) -> str:
        return progress_text(self.done, self.total, self.status, unchanged_at_source=self.unchanged_at_source)


def batch_progress_of(session: Session, batch: Any) -> Progress:
    """The progress of `batch` (a batch row: id, status, ingested_at, decision and its counts). A running
    batch counts its documents live, in SQL; the row's own counts are written when it finishes, and when it
    stops to await a decision (then its stored documents, quarantined until a retry succeeds, count as done)."""
    total, stored, failed, unchanged = batch.total, batch.stored, batch.failed, batch.unchanged
    recognised = batch.recognised or 0  # files an incremental refresh did not read: no artifact rows
    if batch.status in BATCH_IN_FLIGHT and batch.status != BatchStatus.AWAITING_APPROVAL:
        counts = repository.artifact_status_counts(session, batch_id=batch.id)
        total = sum(counts.values())
        stored = counts.get(ArtifactStatus.STORED, 0)
        failed = counts.get(ArtifactStatus.FAILED, 0)
        unchanged = counts.get(ArtifactStatus.UNCHANGED, 0) + recognised
    status = shown_status(batch.status, batch.ingested_at, batch.decision)
    return Progress(
        status,
        stored + failed + unchanged - recognised,
        total,
        stored,
        failed,
        unchanged,
        unchanged_at_source=bool(batch.unchanged_at_source),
    )


def batch_page(session: Session, f: BatchFilter, *, limit: int = 50, offset: int = 0) -> pd.DataFrame:
    """One page of batches, newest first, each with its progress as the batch's page shows it."""
    stmt = (
        select(
            Batch.id,
            Source.name,
            Batch.status,
            Batch.trigger,
            Batch.attempt,
            Batch.total,
            Batch.stored,
            Batch.failed,
            Batch.unchanged,
            Batch.skipped,
            Batch.created_at,
            Batch.started_at,
            Batch.ingested_at,
            Batch.finished_at,
            Batch.error_type,
            Batch.error_message,
            Batch.decision,
            Batch.decided_by,
            Batch.decision_reason,
            Batch.compensation,
            Batch.recognised,
            Batch.unchanged_at_source,
        )
        .join(Source, Source.id == Batch.source_id)
        .where(*_batch_conditions(f))
        .order_by(Batch.id.desc())
        .limit(limit)
        .offset(offset)
    )
    rows = []
    for r in session.execute(stmt):
        p = batch_progress_of(session, r)
        rows.append(
            [
                r.id,
                r.name,
                p.status,
                p.text,
                r.trigger,
                r.attempt,
                p.total,
                p.stored,
                p.failed,
                p.unchanged,
                r.skipped,
                r.created_at,
                duration(_seconds(r.started_at, r.finished_at)),
                _problem(r),
            ]
        )
    return pd.DataFrame(rows, columns=BATCH_COLUMNS)[SHOWN_BATCH_COLUMNS]


def skipped_sentences(reasons: dict[str, int]) -> list[str]:
    """What a batch did not gather, for its page: the documents over the per-batch limit, and a folder's files
    it skipped with why ('3 file(s) of the folder were skipped: unsupported file type .xyz (2), ...')."""
    sentences = []
    over = reasons.get(SKIPPED_OVER_LIMIT, 0)
    if over:
        sentences.append(f"{over:,} more document(s) of the source were not gathered: {SKIPPED_OVER_LIMIT}.")
    files = {reason: n for reason, n in reasons.items() if reason != SKIPPED_OVER_LIMIT and n}
    if files:
        listed = ", ".join(f"{reason} ({n:,})" for reason, n in sorted(files.items(), key=lambda r: -r[1]))
        sentences.append(f"{sum(files.values()):,} file(s) of the folder were skipped: {listed}.")
    return sentences


def _problem(r: Any) -> str:
    """The error column: what went wrong, or for a cancelled batch who stopped it, why, and what it kept."""
    if r.decision == Decision.CANCELLED and r.decided_by:
        said = f"cancelled by {r.decided_by}: {r.decision_reason or 'no reason given'}"
        kept = re.search(r"\d+ stored document\(s\) kept.*$", r.compensation or "")
        return f"{said} ({kept.group(0)})" if kept and r.status == BatchStatus.CANCELLED else said
    if r.status == BatchStatus.CANCELLED:
        return r.error_message or r.compensation or "cancelled"
    return f"{r.error_type}: {r.error_message}" if r.error_type else (r.error_message or "")


def _seconds(started: datetime | None, finished: datetime | None) -> float | None:
    if started is None or finished is None:
        return None
    return round((finished - started).total_seconds(), 1)


BatchDetail = repository.BatchRow  # the batch page shows the one batch row type
batch_detail = repository.batch_detail


def batch_progress(session: Session, *, batch_id: int) -> tuple[int, int]:
    """(done, total) of a batch's documents, counted in SQL."""
    return repository.batch_progress(session, batch_id=batch_id)


def stage_timings(session: Session, *, batch_id: int) -> pd.DataFrame:
    """Mean milliseconds per pipeline stage over the batch's documents (stages never reached are left out)."""
    means = repository.batch_stage_timings(session, batch_id=batch_id)
    rows = [(stage, means.get(f"{stage}_ms")) for stage in STAGES]
    return pd.DataFrame(
        [(stage, round(ms, 2)) for stage, ms in rows if ms is not None], columns=["stage", "mean ms"]
    )


def artifact_counts(session: Session, *, batch_id: int) -> dict[str, int]:
    return repository.artifact_status_counts(session, batch_id=batch_id)


ARTIFACT_COLUMNS = ["seq", "document", "status", "failed stage", "error", "title", "uri", "language", "words"]
DOCUMENT_LINK = r"doc=(\d+)$"  # the document column's links (document?doc=ID) show the document's number


def batch_artifacts(
    session: Session, *, batch_id: int, only_failed: bool = False, limit: int = 50, offset: int = 0
) -> pd.DataFrame:
    """One page of a batch's documents in sequence order, with each one's error."""
    stmt = select(
        Artifact.seq,
        Artifact.id,
        Artifact.status,
        Artifact.failed_stage,
        Artifact.error,
        Artifact.title,
        Artifact.uri,
        Artifact.language,
        Artifact.word_count,
    ).where(Artifact.batch_id == batch_id)
    if only_failed:
        stmt = stmt.where(Artifact.status == ArtifactStatus.FAILED)
    rows = session.execute(stmt.order_by(Artifact.seq).limit(limit).offset(offset))
    frame = pd.DataFrame([list(r) for r in rows], columns=ARTIFACT_COLUMNS)
    frame[["failed stage", "error"]] = frame[["failed stage", "error"]].fillna("")
    frame[["title", "language"]] = frame[["title", "language"]].fillna("—")  # a dash, never "None"
    frame["document"] = [f"document?doc={i}" for i in frame["document"]]  # opens the document page
    return frame


def backlog_samples(session: Session, *, since: datetime) -> pd.DataFrame:
    """Pending tasks per queue (both task types summed) at each sample since `since`, oldest first."""
    rows = session.execute(
        select(QueueSample.sampled_at, QueueSample.queue, func.sum(QueueSample.backlog))
        .where(QueueSample.sampled_at >= since)
        .group_by(QueueSample.sampled_at, QueueSample.queue)
        .order_by(QueueSample.sampled_at)
    ).all()
    return pd.DataFrame([list(r) for r in rows], columns=["time", "queue", "backlog"])
