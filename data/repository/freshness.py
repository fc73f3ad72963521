"""What freshness is judged from, per source, aggregated in SQL: its last new document and the statuses of its
latest finished batches; and how many of its batches failed."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from core.vocabulary import BATCH_IN_FLIGHT, ArtifactStatus
from data.models import Alert, Artifact, Batch, Source, utcnow


@dataclass(frozen=True)
class SourceActivity:
    source_id: int
    name: str
    interval_seconds: int
    paused: bool
    registered_at: datetime
    last_new_document: datetime | None
    recent_statuses: tuple[str, ...]  # latest finished batches first


def source_activity(session: Session, *, recent: int = 5, limit: int = 500) -> list[SourceActivity]:
    """Every source with when it last stored a new document and its `recent` latest finished batches."""
    last_stored = dict(
        session.execute(
            select(Artifact.source_id, func.max(Artifact.stored_at))
            .where(Artifact.status == ArtifactStatus.STORED)
            .group_by(Artifact.source_id)
        ).all()
    )
    ranked = (
        select(
            Batch.source_id,
            Batch.status,
            func.row_number().over(partition_by=Batch.source_id, order_by=Batch.id.desc()).label("n"),
        )
        .where(Batch.status.not_in(BATCH_IN_FLIGHT))
        .subquery()
    )
    statuses: dict[int, list[str]] = {}
    for source_id, status, _ in session.execute(
        select(ranked.c.source_id, ranked.c.status, ranked.c.n)
        .where(ranked.c.n <= recent)
        .order_by(ranked.c.source_id, ranked.c.n)
    ):
        statuses.setdefault(int(source_id), []).append(str(status))
    sources = session.execute(
        select(Source.id, Source.name, Source.refresh_interval_seconds, Source.paused, Source.created_at)
        .order_by(Source.name)
        .limit(limit)
    ).all()
    return [
        SourceActivity(
            source_id=int(i),
            name=str(name),
            interval_seconds=int(interval),
            paused=bool(paused),
            registered_at=created,
            last_new_document=_aware(last_stored.get(i)),
            recent_statuses=tuple(statuses.get(int(i), ())),
        )
        for i, name, interval, paused, created in sources
    ]


def _aware(value: datetime | str | None) -> datetime | None:
    """func.max over a UTC column comes back naive (SQLite, without the column type): mark it UTC."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def open_stale_alerts(session: Session, *, prefix: str) -> dict[int, list[str]]:
    """Open source alerts (no batch) whose kind starts with `prefix`, by the source id in their kind
    ("source_stale:<source id>:<episode>")."""
    kinds = session.scalars(
        select(Alert.kind).where(
            Alert.batch_id.is_(None), Alert.kind.like(f"{prefix}:%"), Alert.resolved_at.is_(None)
        )
    ).all()
    found: dict[int, list[str]] = {}
    for kind in kinds:
        parts = kind.split(":")
        if len(parts) >= 2 and parts[1].isdigit():
            found.setdefault(int(parts[1]), []).append(kind)
    return found


def resolve_source_alerts(session: Session, *, kinds: list[str]) -> int:
    if not kinds:
        return 0
    result = session.execute(
        update(Alert)
        .where(Alert.batch_id.is_(None), Alert.kind.in_(kinds), Alert.resolved_at.is_(None))
        .values(resolved_at=utcnow())
    )
    return int(getattr(result, "rowcount", 0) or 0)
