"""SLA rollups: per source and day, the documents of the batches started that day, once they finished.

Days are calendar days in one zone (LOREGUARD_TIMEZONE, UTC by default), each row saying which: a day in
Europe/Berlin runs from local midnight to local midnight (23 or 25 hours across a clock change). After the
zone setting changes, `loreguard sla rebuild` recounts the days; until then the SLA page says they differ.

A document is on time when it was stored within the target of its batch's start; a document that was not
stored (failed, or quarantined by a failed batch) is late. Stored documents' processing times are kept as a
histogram (`bucket_of`), so percentiles come from a few rows per day. A finished batch's day is recomputed
from its artifacts (not incremented), so finishing twice, a retry that stores more, or a rebuild all give the
same rows.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, Float, case, cast, delete, func, select
from sqlalchemy.orm import Session

from core.vocabulary import ArtifactStatus, BatchStatus
from data.models import Artifact, Batch, SlaDay, SlaDayBucket, Source, utcnow

BATCH_FINISHED = (BatchStatus.COMPLETED, BatchStatus.FAILED)
BUCKETS_PER_DOUBLING = 8  # bucket edges 2^(k/8) s: a percentile read from the buckets is at most 9% high
_PER_LN = BUCKETS_PER_DOUBLING / math.log(2)


def bucket_of(seconds: float) -> int:
    """The histogram bucket of a processing time: k such that 2^((k-1)/8) < seconds <= 2^(k/8), 0 up to 1 s."""
    if seconds <= 1:
        return 0
    return max(0, math.ceil(math.log(seconds) * _PER_LN - 1e-9))


def bucket_upper_seconds(bucket: int) -> float:
    return float(2 ** (bucket / BUCKETS_PER_DOUBLING))


def percentile_seconds(buckets: Iterable[tuple[int, int]], p: float) -> float | None:
    """Nearest-rank percentile from (bucket, documents) pairs: the upper edge of the bucket holding it."""
    counts = sorted(buckets)
    total = sum(n for _, n in counts)
    if total == 0:
        return None
    rank = max(1, math.ceil(p * total - 1e-9))
    seen = 0
    for bucket, n in counts:
        seen += n
        if seen >= rank:
            return bucket_upper_seconds(bucket)
    return bucket_upper_seconds(counts[-1][0])


def _seconds(session: Session) -> ColumnElement[Any]:
    """Processing seconds of a stored document: stored_at - its batch's started_at."""
    if session.get_bind().dialect.name == "sqlite":  # julianday: float days; round to the millisecond
        return func.round(
            (func.julianday(Artifact.stored_at) - func.julianday(Batch.started_at)) * 86400.0, 3
        )
    return cast(func.extract("epoch", Artifact.stored_at - Batch.started_at), Float)


def _bucket(seconds: ColumnElement[Any]) -> ColumnElement[Any]:
    # the same arithmetic as bucket_of, in SQL (ln and ceil: PostgreSQL, SQLite 3.35+ math functions)
    return case((seconds <= 1, 0), else_=func.ceil(func.ln(seconds) * _PER_LN - 1e-9))


def day_bounds(day: date, zone: str) -> tuple[datetime, datetime]:
    """The UTC instants a calendar day of `zone` starts and ends at (local midnight to local midnight)."""
    tz = ZoneInfo(zone)
    start = datetime.combine(day, time.min, tz).astimezone(UTC)
    return start, datetime.combine(day + timedelta(days=1), time.min, tz).astimezone(UTC)


def local_day(moment: datetime, zone: str) -> date:
    """The calendar day of `zone` a moment falls on."""
    return moment.astimezone(ZoneInfo(zone)).date()


def roll_up_sla_day(session: Session, *, source_id: int, day: date, target_hours: float, zone: str) -> None:
    """Recompute one source's rollup rows for one day of `zone` from its finished batches started that day."""
    # Serialise recomputations of one source (PostgreSQL): two batches finishing at once must not each write
    # a day that misses the other. SQLite serialises writers anyway.
    session.execute(select(Source.id).where(Source.id == source_id).with_for_update())
    start, end = day_bounds(day, zone)
    in_day = (
        Batch.source_id == source_id,
        Batch.started_at >= start,
        Batch.started_at < end,
        Batch.status.in_(BATCH_FINISHED),
    )
    seconds = _seconds(session)
    stored = (Artifact.status == ArtifactStatus.STORED) & Artifact.stored_at.is_not(None)
    batches = int(session.scalar(select(func.count()).select_from(Batch).where(*in_day)) or 0)
    # One pass over the day's artifacts through their batches (batch_id index): the conditions on stored
    # documents are in the aggregates, not in WHERE, so no planner walks the (status, stored_at) index instead.
    bucket = case((stored, _bucket(seconds)), else_=None)
    on_time = func.sum(case((stored & (seconds <= target_hours * 3600), 1), else_=0))
    # Unchanged documents (content the source had already stored) are no new work: neither on time nor late.
    counted = func.sum(case((Artifact.status == ArtifactStatus.UNCHANGED, 0), else_=1))
    rows = session.execute(
        select(bucket, counted, on_time)
        .select_from(Artifact)
        .join(Batch, Batch.id == Artifact.batch_id)
        .where(*in_day)
        .group_by(bucket)
    ).all()
    documents = sum(int(n or 0) for _, n, _ in rows)
    stored_n = sum(int(n) for b, n, _ in rows if b is not None)
    buckets = [(int(b), int(n)) for b, n, _ in rows if b is not None]
    where = (SlaDay.source_id == source_id, SlaDay.day == day)
    session.execute(delete(SlaDay).where(*where))
    session.execute(delete(SlaDayBucket).where(SlaDayBucket.source_id == source_id, SlaDayBucket.day == day))
    if batches == 0:
        return
    session.add(
        SlaDay(
            day=day,
            source_id=source_id,
            batches=batches,
            documents=documents,
            stored=stored_n,
            failed=documents - stored_n,
            on_time=sum(int(ok or 0) for _, _, ok in rows),
            target_hours=target_hours,
            zone=zone,
            updated_at=utcnow(),
        )
    )
    session.add_all(SlaDayBucket(day=day, source_id=source_id, bucket=b, documents=n) for b, n in buckets)
    session.flush()


def roll_up_batch(session: Session, *, batch_id: int, target_hours: float, zone: str) -> None:
    """Bring the SLA rollup of a batch's source and start day up to date (called when the batch finishes)."""
    row = session.execute(select(Batch.source_id, Batch.started_at).where(Batch.id == batch_id)).one_or_none()
    if row is None or row.started_at is None:
        return  # never started: no document, no SLA clock
    roll_up_sla_day(
        session,
        source_id=row.source_id,
        day=local_day(row.started_at, zone),
        target_hours=target_hours,
        zone=zone,
    )


def rebuild_sla_rollups(session: Session, *, target_hours: float, zone: str) -> int:
    """Recompute every rollup from the finished batches (after a change of the target or the zone, or to
    repair them).

    Returns the number of source-days written.
    """
    session.execute(delete(SlaDayBucket))
    session.execute(delete(SlaDay))
    days = {
        (source_id, local_day(started_at, zone))
        for source_id, started_at in session.execute(
            select(Batch.source_id, Batch.started_at).where(
                Batch.status.in_(BATCH_FINISHED), Batch.started_at.is_not(None)
            )
        )
        if started_at is not None
    }
    for source_id, day in sorted(days):
        roll_up_sla_day(session, source_id=source_id, day=day, target_hours=target_hours, zone=zone)
    return len(days)
