"""The SLA page's SQL: on-time share per day and per source, processing-time percentiles per day, breaches,
batches at risk now and a weekly summary. Aggregated in the database; every result is a handful of rows.

A document's processing time is `stored_at - batch.started_at` (seconds); it is on time when that is within
`sla_target_hours`. Percentiles are nearest-rank (the smallest time with at least p of the day's documents at or
below it), computed per day with window functions (SQLite has no percentile functions).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pandas as pd
from sqlalchemy import ColumnElement, Date, Float, case, cast, func, literal, select
from sqlalchemy.orm import Session

from core.sla_rules import assess
from core.vocabulary import (
    ALERT_SLA_CRITICAL,
    ALERT_SLA_WARNING,
    ARTIFACT_FAILED,
    ARTIFACT_STORED,
    BATCH_IN_FLIGHT,
    SLA_ALERT_KINDS,
)
from data.models import Alert, Artifact, Batch, Source

PERCENTILES = (0.50, 0.95, 0.99)
MAX_AT_RISK = 200
MAX_SOURCES = 500


def _sqlite(session: Session) -> bool:
    return session.get_bind().dialect.name == "sqlite"


def _seconds(session: Session) -> ColumnElement[Any]:
    """Processing seconds of a stored document: stored_at - its batch's started_at."""
    if _sqlite(session):  # julianday is a float of days: round to the millisecond, so 4 h is not 4 h + 2e-5 s
        return func.round(
            (func.julianday(Artifact.stored_at) - func.julianday(Batch.started_at)) * 86400.0, 3
        )
    return cast(func.extract("epoch", Artifact.stored_at - Batch.started_at), Float)


def _day(session: Session) -> ColumnElement[Any]:
    if _sqlite(session):
        return func.date(Artifact.stored_at)
    return cast(func.date_trunc("day", Artifact.stored_at), Date)


def _as_date(value: object) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value))


def _window(since: datetime, until: datetime) -> list[ColumnElement[bool]]:
    return [
        Artifact.status == ARTIFACT_STORED,
        Artifact.stored_at >= since,
        Artifact.stored_at < until,
        Batch.started_at.is_not(None),
    ]


def _shares(frame: pd.DataFrame) -> pd.DataFrame:
    frame["share"] = (frame["on time"] / frame["documents"]).where(frame["documents"] > 0)
    return frame


def share_by_day(session: Session, *, since: datetime, until: datetime, target_hours: float) -> pd.DataFrame:
    """day, documents, on time, share: stored documents per day (UTC) and those within the target."""
    day = _day(session).label("day")
    on_time = func.sum(case((_seconds(session) <= target_hours * 3600, 1), else_=0))
    rows = session.execute(
        select(day, func.count(), on_time)
        .select_from(Artifact)
        .join(Batch, Batch.id == Artifact.batch_id)
        .where(*_window(since, until))
        .group_by(day)
        .order_by(day)
    ).all()
    frame = pd.DataFrame(
        [(_as_date(d), int(n), int(ok or 0)) for d, n, ok in rows], columns=["day", "documents", "on time"]
    )
    return _shares(frame)


def share_by_source(
    session: Session, *, since: datetime, until: datetime, target_hours: float
) -> pd.DataFrame:
    """source, documents, on time, share over the window, per source (busiest first)."""
    on_time = func.sum(case((_seconds(session) <= target_hours * 3600, 1), else_=0))
    rows = session.execute(
        select(Source.name, func.count(), on_time)
        .select_from(Artifact)
        .join(Batch, Batch.id == Artifact.batch_id)
        .join(Source, Source.id == Artifact.source_id)
        .where(*_window(since, until))
        .group_by(Source.name)
        .order_by(func.count().desc(), Source.name)
        .limit(MAX_SOURCES)
    ).all()
    frame = pd.DataFrame(
        [(name, int(n), int(ok or 0)) for name, n, ok in rows], columns=["source", "documents", "on time"]
    )
    return _shares(frame)


def percentiles_by_day(session: Session, *, since: datetime, until: datetime) -> pd.DataFrame:
    """day, documents, p50 h, p95 h, p99 h: nearest-rank percentiles of processing time per day."""
    day = _day(session).label("day")
    seconds = _seconds(session).label("seconds")
    ranked = (
        select(
            day,
            seconds,
            func.row_number().over(partition_by=day, order_by=seconds).label("rank"),
            func.count().over(partition_by=day).label("n"),
        )
        .select_from(Artifact)
        .join(Batch, Batch.id == Artifact.batch_id)
        .where(*_window(since, until))
        .subquery()
    )
    picks = [
        func.min(case((ranked.c.rank >= literal(p) * ranked.c.n, ranked.c.seconds))).label(f"p{int(p * 100)}")
        for p in PERCENTILES
    ]
    rows = session.execute(
        select(ranked.c.day, func.max(ranked.c.n), *picks).group_by(ranked.c.day).order_by(ranked.c.day)
    ).all()
    return pd.DataFrame(
        [
            (_as_date(row[0]), int(row[1]), *(float(v) / 3600 if v is not None else None for v in row[2:]))
            for row in rows
        ],
        columns=["day", "documents", "p50 h", "p95 h", "p99 h"],
    )


def breaches_by_source(session: Session, *, since: datetime) -> pd.DataFrame:
    """source, warning, critical, open: SLA alerts raised since `since`, per source."""
    level_count = [
        func.sum(case((Alert.kind == kind, 1), else_=0)) for kind in (ALERT_SLA_WARNING, ALERT_SLA_CRITICAL)
    ]
    still_open = func.sum(case((Alert.resolved_at.is_(None), 1), else_=0))
    rows = session.execute(
        select(Source.name, *level_count, still_open)
        .select_from(Alert)
        .join(Batch, Batch.id == Alert.batch_id)
        .join(Source, Source.id == Batch.source_id)
        .where(Alert.kind.in_(SLA_ALERT_KINDS), Alert.created_at >= since)
        .group_by(Source.name)
        .order_by(Source.name)
        .limit(MAX_SOURCES)
    ).all()
    return pd.DataFrame(
        [(name, int(w or 0), int(c or 0), int(o or 0)) for name, w, c, o in rows],
        columns=["source", "warning", "critical", "open"],
    )


def breaches_by_day(session: Session, *, since: datetime) -> pd.DataFrame:
    """day, warning, critical: SLA alerts raised per day (for the weekly summary)."""
    day = (
        func.date(Alert.created_at)
        if _sqlite(session)
        else cast(func.date_trunc("day", Alert.created_at), Date)
    ).label("day")
    rows = session.execute(
        select(
            day,
            func.sum(case((Alert.kind == ALERT_SLA_WARNING, 1), else_=0)),
            func.sum(case((Alert.kind == ALERT_SLA_CRITICAL, 1), else_=0)),
        )
        .where(Alert.kind.in_(SLA_ALERT_KINDS), Alert.created_at >= since)
        .group_by(day)
    ).all()
    return pd.DataFrame(
        [(_as_date(d), int(w or 0), int(c or 0)) for d, w, c in rows], columns=["day", "warning", "critical"]
    )


def at_risk(session: Session, *, now: datetime, warning_hours: float, critical_hours: float) -> pd.DataFrame:
    """Batches in flight, oldest first, with age, progress, projected completion and SLA level."""
    batches = session.execute(
        select(Batch.id, Source.name, Batch.status, Batch.started_at, Batch.created_at)
        .join(Source, Source.id == Batch.source_id)
        .where(Batch.status.in_(BATCH_IN_FLIGHT))
        .order_by(func.coalesce(Batch.started_at, Batch.created_at), Batch.id)
        .limit(MAX_AT_RISK)
    ).all()
    ids = [b.id for b in batches]
    done_expr = func.sum(case((Artifact.status.in_((ARTIFACT_STORED, ARTIFACT_FAILED)), 1), else_=0))
    progress = {
        batch_id: (int(done or 0), int(total))
        for batch_id, done, total in session.execute(
            select(Artifact.batch_id, done_expr, func.count())
            .where(Artifact.batch_id.in_(ids))
            .group_by(Artifact.batch_id)
        )
    }
    rows = []
    for b in batches:
        done, total = progress.get(b.id, (0, 0))
        a = assess(
            started_at=b.started_at or b.created_at,
            now=now,
            done=done,
            total=total,
            warning_hours=warning_hours,
            critical_hours=critical_hours,
        )
        rows.append(
            (
                b.id,
                b.name,
                b.status,
                round(a.age.total_seconds() / 3600, 2),
                done,
                total,
                a.projected_completion,
                a.level or "ok",
            )
        )
    frame = pd.DataFrame(
        rows,
        columns=["batch", "source", "status", "age h", "done", "total", "projected completion", "level"],
    )
    frame["projected completion"] = pd.to_datetime(frame["projected completion"], utc=True)
    return frame


def weekly_summary(daily: pd.DataFrame, breaches: pd.DataFrame, target_share: float) -> pd.DataFrame:
    """week (Monday), documents, on time, share, met target, warning, critical: from the daily aggregates."""
    columns = ["week", "documents", "on time", "share", "met target", "warning", "critical"]
    if daily.empty and breaches.empty:
        return pd.DataFrame(columns=columns)

    def monday(d: date) -> date:
        return d - timedelta(days=d.weekday())

    docs = (
        daily.assign(week=daily["day"].map(monday)).groupby("week")[["documents", "on time"]].sum()
        if not daily.empty
        else pd.DataFrame(columns=["documents", "on time"])
    )
    alerts = (
        breaches.assign(week=breaches["day"].map(monday)).groupby("week")[["warning", "critical"]].sum()
        if not breaches.empty
        else pd.DataFrame(columns=["warning", "critical"])
    )
    frame = docs.join(alerts, how="outer").fillna(0).sort_index().reset_index(names="week")
    for col in ("documents", "on time", "warning", "critical"):
        frame[col] = frame[col].astype(int)
    frame["share"] = (frame["on time"] / frame["documents"]).where(frame["documents"] > 0)
    frame["met target"] = frame["share"] >= target_share
    return frame[columns]


@dataclass(frozen=True)
class SlaReport:
    since: datetime
    until: datetime
    documents: int
    on_time: int
    daily: pd.DataFrame
    by_source: pd.DataFrame
    percentiles: pd.DataFrame
    breaches: pd.DataFrame
    at_risk: pd.DataFrame
    weekly: pd.DataFrame

    @property
    def share(self) -> float | None:
        return self.on_time / self.documents if self.documents else None


def sla_report(
    session: Session,
    *,
    now: datetime,
    days: int,
    target_hours: float,
    target_share: float,
    warning_hours: float,
    critical_hours: float,
) -> SlaReport:
    until = now
    since = datetime.combine((now - timedelta(days=days - 1)).date(), datetime.min.time(), UTC)
    daily = share_by_day(session, since=since, until=until, target_hours=target_hours)
    breaches_daily = breaches_by_day(session, since=since)
    return SlaReport(
        since=since,
        until=until,
        documents=int(daily["documents"].sum()) if not daily.empty else 0,
        on_time=int(daily["on time"].sum()) if not daily.empty else 0,
        daily=daily,
        by_source=share_by_source(session, since=since, until=until, target_hours=target_hours),
        percentiles=percentiles_by_day(session, since=since, until=until),
        breaches=breaches_by_source(session, since=since),
        at_risk=at_risk(session, now=now, warning_hours=warning_hours, critical_hours=critical_hours),
        weekly=weekly_summary(daily, breaches_daily, target_share),
    )
