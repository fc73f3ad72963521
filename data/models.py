"""The library's schema: sources, batches, artifacts and their evaluations, alerts, audit events."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    SmallInteger,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, deferred, mapped_column, relationship

from core.vocabulary import ArtifactStatus, BatchStatus

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; use timezone-aware UTC datetimes")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: JSON}


class Source(Base):
    __tablename__ = "sources"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(20))
    location: Mapped[str] = mapped_column(String(2000))
    refresh_interval_seconds: Mapped[int] = mapped_column(Integer, default=3600)
    paused: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    # What the feed or page's server said of the version the last successful refresh gathered (migration
    # 0013): sent back as If-None-Match / If-Modified-Since, so an unchanged source answers 304 and no body.
    http_etag: Mapped[str | None] = mapped_column(String(500))
    http_last_modified: Mapped[str | None] = mapped_column(String(100))

    batches: Mapped[list[Batch]] = relationship(back_populates="source", passive_deletes=True)


class Batch(Base):
    __tablename__ = "batches"
    __table_args__ = (Index("ix_batches_source_started", "source_id", "started_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    source_id: Mapped[int] = mapped_column(ForeignKey("sources.id", ondelete="CASCADE"), index=True)
    workflow_id: Mapped[str | None] = mapped_column(String(200), unique=True)
    trigger: Mapped[str] = mapped_column(String(20), default="manual")
    status: Mapped[str] = mapped_column(String(30), default=BatchStatus.PENDING, index=True)
    attempt: Mapped[int] = mapped_column(Integer, default=1)
    total: Mapped[int] = mapped_column(Integer, default=0)
    stored: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    # What ingest did not gather (a folder's files of a type the pipeline does not read, documents past
    # LOREGUARD_MAX_DOCUMENTS_PER_BATCH) with why, reason -> count (migration 0013; NULL before it: all over
    # the limit); and documents whose content the source had already stored (not stored twice).
    skipped: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    skip_reasons: Mapped[dict[str, int] | None] = mapped_column(JSON)
    unchanged: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Incremental refresh (migration 0013): `recognised` folder files matched their last successful sighting
    # and were not read (counted in `unchanged` once the batch finishes); `unchanged_at_source` the server
    # answered 304 Not Modified; `full` an operator asked to gather and process everything again. The
    # validators the server sent go to the source only when the batch completes.
    recognised: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    unchanged_at_source: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    full: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    http_etag: Mapped[str | None] = mapped_column(String(500))
    http_last_modified: Mapped[str | None] = mapped_column(String(100))
    error_type: Mapped[str | None] = mapped_column(String(100))
    error_message: Mapped[str | None] = mapped_column(Text)
    failed_stage: Mapped[str | None] = mapped_column(String(20))
    compensation: Mapped[str | None] = mapped_column(Text)
    decision_deadline: Mapped[datetime | None]
    decision: Mapped[str | None] = mapped_column(String(20))
    decided_by: Mapped[str | None] = mapped_column(String(200))
    decision_reason: Mapped[str | None] = mapped_column(Text)
    decided_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(index=True)
    ingested_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]

    source: Mapped[Source] = relationship(back_populates="batches")


class Artifact(Base):
    """One document as gathered and processed in one batch."""

    __tablename__ = "artifacts"
    __table_args__ = (
        UniqueConstraint("batch_id", "seq", name="uq_artifacts_batch_seq"),
        Index("ix_artifacts_batch_status", "batch_id", "status"),
        Index("ix_artifacts_stored_at", "stored_at"),
        Index("ix_artifacts_status_stored_at", "status", "stored_at"),
        Index("ix_artifacts_source_status_stored", "source_id", "status", "stored_at"),
        Index("ix_artifacts_language", "language"),
        Index("ix_artifacts_status_ingested_at", "status", "ingested_at"),
        Index("ix_artifacts_source_raw_hash", "source_id", "raw_hash"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    batch_id: Mapped[int] = mapped_column(ForeignKey("batches.id", ondelete="CASCADE"))
    source_id: Mapped[int] = mapped_column(ForeignKey("sources.id", ondelete="CASCADE"), index=True)
    seq: Mapped[int] = mapped_column(Integer)
    uri: Mapped[str] = mapped_column(String(2000))
    content_type: Mapped[str] = mapped_column(String(100))
    raw: Mapped[bytes | None] = deferred(mapped_column(LargeBinary))
    hints: Mapped[dict[str, Any] | None] = deferred(mapped_column(JSON))
    status: Mapped[str] = mapped_column(String(20), default=ArtifactStatus.INGESTED)
    failed_stage: Mapped[str | None] = mapped_column(String(20))
    error: Mapped[str | None] = mapped_column(Text)

    # normalize
    content_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    simhash: Mapped[int | None] = mapped_column(BigInteger)
    simhash_band0: Mapped[int | None] = mapped_column(Integer, index=True)
    simhash_band1: Mapped[int | None] = mapped_column(Integer, index=True)
    simhash_band2: Mapped[int | None] = mapped_column(Integer, index=True)
    simhash_band3: Mapped[int | None] = mapped_column(Integer, index=True)
    language: Mapped[str | None] = mapped_column(String(16))
    text: Mapped[str | None] = deferred(mapped_column(Text))

    # extract metadata
    title: Mapped[str | None] = mapped_column(String(1000))
    author: Mapped[str | None] = mapped_column(String(500))
    published_at: Mapped[datetime | None]
    word_count: Mapped[int | None] = mapped_column(Integer)

    # clarify
    duplicate_of_id: Mapped[int | None] = mapped_column(
        ForeignKey("artifacts.id", ondelete="SET NULL"), index=True
    )
    near_duplicate_of_id: Mapped[int | None] = mapped_column(
        ForeignKey("artifacts.id", ondelete="SET NULL"), index=True
    )
    similarity: Mapped[float | None] = mapped_column(Float)
    clarification: Mapped[str | None] = mapped_column(Text)

    # per-stage timings, milliseconds
    ingest_ms: Mapped[float | None] = mapped_column(Float)
    normalize_ms: Mapped[float | None] = mapped_column(Float)
    extract_ms: Mapped[float | None] = mapped_column(Float)
    clarify_ms: Mapped[float | None] = mapped_column(Float)
    evaluate_ms: Mapped[float | None] = mapped_column(Float)
    store_ms: Mapped[float | None] = mapped_column(Float)

    ingested_at: Mapped[datetime] = mapped_column(default=utcnow)
    processed_at: Mapped[datetime | None]
    stored_at: Mapped[datetime | None]

    # incremental refresh (migration 0013): the SHA-256 of the bytes as gathered (before normalize), and for
    # a folder's file what the file system said of it when listed; `gone_at` when the source no longer has it
    raw_hash: Mapped[str | None] = mapped_column(String(64))
    file_size: Mapped[int | None] = mapped_column(BigInteger)
    file_mtime_ns: Mapped[int | None] = mapped_column(BigInteger)
    file_inode: Mapped[int | None] = mapped_column(BigInteger)
    gone_at: Mapped[datetime | None] = mapped_column(index=True)

    evaluation: Mapped[Evaluation | None] = relationship(back_populates="artifact", passive_deletes=True)


class Sighting(Base):
    """A folder's file as the last successful refresh of its source saw it (migration 0013).

    Written only when that batch completes, so a refresh killed midway records nothing; a file whose size,
    modification time and inode still match is not read again. `missing_batch_id`: the batch (in flight)
    that found the file gone; when it completes, the file's documents are marked gone and the row goes.
    """

    __tablename__ = "sightings"
    __table_args__ = (PrimaryKeyConstraint("source_id", "uri_hash", name="pk_sightings"),)

    source_id: Mapped[int] = mapped_column(ForeignKey("sources.id", ondelete="CASCADE"))
    uri_hash: Mapped[str] = mapped_column(String(64))  # SHA-256 of `uri`: a key of bounded length
    uri: Mapped[str] = mapped_column(String(2000))
    size: Mapped[int] = mapped_column(BigInteger)
    mtime_ns: Mapped[int] = mapped_column(BigInteger)
    inode: Mapped[int] = mapped_column(BigInteger)
    raw_hash: Mapped[str | None] = mapped_column(String(64))
    batch_id: Mapped[int | None] = mapped_column(Integer)  # the batch that last read it
    missing_batch_id: Mapped[int | None] = mapped_column(Integer)
    seen_at: Mapped[datetime] = mapped_column(default=utcnow)


class Evaluation(Base):
    __tablename__ = "evaluations"
    __table_args__ = (Index("ix_evaluations_needs_review", "needs_review", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    artifact_id: Mapped[int] = mapped_column(ForeignKey("artifacts.id", ondelete="CASCADE"), unique=True)
    label: Mapped[str] = mapped_column(String(50), index=True)
    confidence: Mapped[float] = mapped_column(Float)
    relevance: Mapped[float | None] = mapped_column(Float)
    credibility: Mapped[float | None] = mapped_column(Float)
    rationale: Mapped[str] = mapped_column(Text)
    evaluator: Mapped[str] = mapped_column(String(50))
    model: Mapped[str | None] = mapped_column(String(200))
    # A hash of the topic descriptions (and model) the verdict was made against: another value means stale.
    topics_version: Mapped[str | None] = mapped_column(String(32), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    # A person's review (migration 0012): `label` above is the effective label the library shows; the
    # evaluator's own verdict stays in `model_label`, and a later evaluation never overwrites a person's label.
    model_label: Mapped[str | None] = mapped_column(String(50))
    needs_review: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    reviewed_by: Mapped[str | None] = mapped_column(String(200))
    reviewed_at: Mapped[datetime | None] = mapped_column(index=True)
    review_reason: Mapped[str | None] = mapped_column(Text)
    reported_by: Mapped[str | None] = mapped_column(String(200))
    reported_at: Mapped[datetime | None]
    report_note: Mapped[str | None] = mapped_column(Text)
    reevaluation_id: Mapped[int | None] = mapped_column(Integer)  # the re-evaluation that last judged it
    tokens: Mapped[int | None] = mapped_column(Integer)  # what a model evaluator's API reported

    artifact: Mapped[Artifact] = relationship(back_populates="evaluation")


class Reevaluation(Base):
    """An analyst's request to judge a set of stored documents again with the current evaluator and topics."""

    __tablename__ = "reevaluations"

    id: Mapped[int] = mapped_column(primary_key=True)
    scope: Mapped[dict[str, Any]] = mapped_column(JSON)  # ReevaluationScope's fields
    description: Mapped[str] = mapped_column(String(500))
    status: Mapped[str] = mapped_column(String(20), index=True)  # running | completed | cancelled | failed
    total: Mapped[int] = mapped_column(Integer, default=0)
    done: Mapped[int] = mapped_column(Integer, default=0)
    tokens: Mapped[int] = mapped_column(Integer, default=0)
    evaluator: Mapped[str] = mapped_column(String(50))
    model: Mapped[str | None] = mapped_column(String(200))
    topics_version: Mapped[str | None] = mapped_column(String(32))
    workflow_id: Mapped[str | None] = mapped_column(String(200))
    started_by: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]


class Alert(Base):
    """A notification raised once per batch and kind (failed batch, SLA warning, SLA critical)."""

    __tablename__ = "alerts"
    __table_args__ = (
        UniqueConstraint("batch_id", "kind", name="uq_alerts_batch_kind"),
        Index("ix_alerts_kind_created_at", "kind", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    batch_id: Mapped[int | None] = mapped_column(ForeignKey("batches.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(50))
    level: Mapped[str] = mapped_column(String(20))
    message: Mapped[str] = mapped_column(Text)
    delivery: Mapped[str | None] = mapped_column(Text)  # per channel: "log: sent; webhook: failed (...)"
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    resolved_at: Mapped[datetime | None]


class AuditEvent(Base):
    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(100), index=True)
    target: Mapped[str] = mapped_column(String(500))
    # what the target is called when the event is written ("advisories", "batch 12 of advisories"): it
    # stays readable after the source is deleted
    target_name: Mapped[str | None] = mapped_column(String(500))
    reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class BatchDecision(Base):
    """One decision on a failed batch (approved, rejected, timed out); the batch row keeps only the last."""

    __tablename__ = "batch_decisions"
    __table_args__ = (Index("ix_batch_decisions_batch_decided", "batch_id", "decided_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    batch_id: Mapped[int] = mapped_column(ForeignKey("batches.id", ondelete="CASCADE"))
    attempt: Mapped[int | None] = mapped_column(Integer)  # the attempt that failed (unknown for old rows)
    decision: Mapped[str] = mapped_column(String(20))
    actor: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str | None] = mapped_column(Text)
    decided_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class QueueSample(Base):
    """A task queue's backlog and the age of its oldest task at one moment (the Workers page's history)."""

    __tablename__ = "queue_samples"

    id: Mapped[int] = mapped_column(primary_key=True)
    sampled_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    queue: Mapped[str] = mapped_column(String(200))
    task_type: Mapped[str] = mapped_column(String(20))
    backlog: Mapped[int] = mapped_column(Integer)
    backlog_age_s: Mapped[float] = mapped_column(Float)


class RoleAssignment(Base):
    """A role an admin granted to a person (by the email or subject their identity provider gives)."""

    __tablename__ = "role_assignments"
    __table_args__ = (UniqueConstraint("subject", "role"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    subject: Mapped[str] = mapped_column(String(320), index=True)
    role: Mapped[str] = mapped_column(String(20))
    granted_by: Mapped[str] = mapped_column(String(200))
    granted_at: Mapped[datetime] = mapped_column(default=utcnow)


class SlaDay(Base):
    """One source's SLA figures for the batches it started on one day, once those batches finished.

    Written by data.repository.sla when a batch finishes (and rebuilt by `loreguard sla rebuild`), so the SLA
    page reads a few rows per day instead of every document. `on_time` was counted against `target_hours`;
    `day` is a calendar day of `zone` (LOREGUARD_TIMEZONE when the row was written).
    """

    __tablename__ = "sla_days"
    __table_args__ = (PrimaryKeyConstraint("day", "source_id", name="pk_sla_days"),)

    day: Mapped[date] = mapped_column(Date)
    source_id: Mapped[int] = mapped_column(ForeignKey("sources.id", ondelete="CASCADE"))
    batches: Mapped[int] = mapped_column(Integer, default=0)
    documents: Mapped[int] = mapped_column(Integer, default=0)  # every document of those batches
    stored: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)  # not stored (failed or quarantined): late
    on_time: Mapped[int] = mapped_column(Integer, default=0)  # stored within target_hours of batch start
    target_hours: Mapped[float] = mapped_column(Float)
    zone: Mapped[str] = mapped_column(String(64), default="UTC", server_default="UTC")
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class SlaDayBucket(Base):
    """How many of a source-day's stored documents took a processing time in one histogram bucket.

    Bucket k holds times in (2^((k-1)/8), 2^(k/8)] seconds (bucket 0: up to 1 s), so a percentile read from
    the buckets is an upper bound at most 9% above the exact figure (data.repository.sla).
    """

    __tablename__ = "sla_day_buckets"
    __table_args__ = (PrimaryKeyConstraint("day", "source_id", "bucket", name="pk_sla_day_buckets"),)

    day: Mapped[date] = mapped_column(Date)
    source_id: Mapped[int] = mapped_column(ForeignKey("sources.id", ondelete="CASCADE"))
    bucket: Mapped[int] = mapped_column(SmallInteger)
    documents: Mapped[int] = mapped_column(Integer)
