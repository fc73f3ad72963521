"""The SLA page's SQL: on-time share per day and per source, processing-time percentiles per day, the worst
days per source, breaches, batches at risk now and a weekly summary.

Documents are counted from the daily per-source rollups (data.repository.sla): a source-day holds the
documents of the batches the source started that day (a calendar day of LOREGUARD_TIMEZONE), once those
batches finished. A stored document is
on time when it was stored within the target of its batch's start; a document that was not stored (failed,
or quarantined by a failed batch) is late. Percentiles come from the rollups' processing-time histogram
(stored documents only): the upper edge of the bucket holding the nearest-rank document, at most 9% above the
exact figure. Every query reads a primary-key range of the rollups or an index; batches still running are
shown live under "Batches in flight".
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

import pandas as pd
from sqlalchemy import Date, Integer, case, cast, func, select
from sqlalchemy.orm import Session

from core.freshness import stale_reason
from core.sla_rules import assess
from core.vocabulary import (
    ALERT_SLA_CRITICAL,
    ALERT_SLA_WARNING,
    BATCH_IN_FLIGHT,
    SLA_ALERT_KINDS,
    ArtifactStatus,
    BatchStatus,
)
from data.models import Alert, Artifact, Batch, SlaDay, SlaDayBucket, Source
from data.repository import day_bounds, local_day, percentile_seconds, source_activity

PERCENTILES = (0.50, 0.95, 0.99)
MAX_AT_RISK = 200
MAX_SOURCES = 500
DAY_COLUMNS = ["day", "documents", "on time", "late", "failed", "share"]


def _sqlite(session: Session) -> bool:
    return session.get_bind().dialect.name == "sqlite"


def _as_date(value: object) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


def window_days(since: date, until: date) -> list[date]:
    """Every day from `since` to `until`, both included."""
    return [since + timedelta(days=n) for n in range((until - since).days + 1)]


def _with_share(frame: pd.DataFrame) -> pd.DataFrame:
    frame["late"] = frame["documents"] - frame["on time"] - frame["failed"]
    frame["share"] = (frame["on time"] / frame["documents"]).where(frame["documents"] > 0)
    return frame


def source_days(session: Session, *, since: date, until: date) -> pd.DataFrame:
    """day, source, documents, on time, failed: the rollup rows of the window (a primary-key range)."""
    rows = session.execute(
        select(SlaDay.day, Source.name, SlaDay.documents, SlaDay.on_time, SlaDay.failed)
        .join(Source, Source.id == SlaDay.source_id)
        .where(SlaDay.day >= since, SlaDay.day <= until)
        .order_by(SlaDay.day, Source.name)
    ).all()
    return pd.DataFrame(
        [(_as_date(d), name, int(n), int(ok), int(f)) for d, name, n, ok, f in rows],
        columns=["day", "source", "documents", "on time", "failed"],
    )


def share_by_day(rows: pd.DataFrame, days: list[date]) -> pd.DataFrame:
    """One row per day of the window: documents, on time, late, failed, share (NaN: no finished batch)."""
    summed = rows.groupby("day")[["documents", "on time", "failed"]].sum() if not rows.empty else None
    frame = pd.DataFrame({"day": days})
    for col in ("documents", "on time", "failed"):
        frame[col] = [int(summed[col].get(d, 0)) if summed is not None else 0 for d in days]
    return _with_share(frame)[DAY_COLUMNS]


def share_by_source(rows: pd.DataFrame, *, target_share: float) -> pd.DataFrame:
    """Per source (lowest share first): documents, on time, late, failed, share, days below target, the worst
    day and its share."""
    columns = ["source", "documents", "on time", "late", "failed", "share", "days below target", "worst day"]
    if rows.empty:
        return pd.DataFrame(columns=[*columns, "worst day share"])
    daily = _with_share(rows.copy())
    frame = _with_share(daily.groupby("source")[["documents", "on time", "failed"]].sum().reset_index())
    below = daily[daily["share"] < target_share].groupby("source").size()
    # A day without documents has no share: it is never a source's worst day (a source without any has none).
    counted = daily[daily["documents"] > 0]
    worst = counted.sort_values(["share", "documents"], ascending=[True, False]).drop_duplicates("source")
    worst = worst.set_index("source")
    frame["days below target"] = [int(below.get(s, 0)) for s in frame["source"]]
    frame["worst day"] = [worst.loc[s, "day"] if s in worst.index else None for s in frame["source"]]
    frame["worst day share"] = [
        float(worst.loc[s, "share"]) if s in worst.index else float("nan") for s in frame["source"]
    ]
    frame = frame.sort_values(["share", "documents"], ascending=[True, False]).head(MAX_SOURCES)
    return frame[[*columns, "worst day share"]].reset_index(drop=True)


MAX_OUTCOMES = 100_000


def batch_outcomes(session: Session, *, since: datetime, zone: str) -> pd.DataFrame:
    """day, source, failed batches, cancelled batches: batches that started (or were created) in the window and
    ended failed (ingest failed, rejected, timed out) or cancelled, per calendar day of `zone`."""
    start = func.coalesce(Batch.started_at, Batch.created_at)
    rows = session.execute(
        select(Source.name, Batch.status, Batch.started_at, Batch.created_at)
        .join(Source, Source.id == Batch.source_id)
        .where(Batch.status.in_((BatchStatus.FAILED, BatchStatus.CANCELLED)), start >= since)
        .limit(MAX_OUTCOMES)
    ).all()
    counts: dict[tuple[date, str], list[int]] = {}
    for name, status, started, created in rows:
        cell = counts.setdefault((local_day(started or created, zone), str(name)), [0, 0])
        cell[0 if status == BatchStatus.FAILED else 1] += 1
    return pd.DataFrame(
        [(d, name, f, c) for (d, name), (f, c) in sorted(counts.items())],
        columns=["day", "source", "failed batches", "cancelled batches"],
    )


def silent_sources(session: Session, *, since: datetime, until: datetime) -> list[str]:
    """Sources (not paused, registered before `until`) without a completed batch since `since`: every refresh
    failed or was cancelled, or none ran. They delivered nothing in the window."""
    completed = select(Batch.source_id).where(
        Batch.status == BatchStatus.COMPLETED, func.coalesce(Batch.started_at, Batch.created_at) >= since
    )
    return list(
        session.scalars(
            select(Source.name)
            .where(Source.paused.is_(False), Source.created_at < until, Source.id.not_in(completed))
            .order_by(Source.name)
            .limit(MAX_SOURCES)
        )
    )


def stale_sources(
    session: Session, *, now: datetime, after_intervals: float, after_failures: int
) -> pd.DataFrame:
    """source, why: the sources stale now (core.freshness)."""
    rows = []
    for a in source_activity(session, recent=after_failures, limit=MAX_SOURCES):
        why = stale_reason(
            now=now,
            interval_seconds=a.interval_seconds,
            paused=a.paused,
            registered_at=a.registered_at,
            last_new_document=a.last_new_document,
            recent_statuses=a.recent_statuses,
            after_intervals=after_intervals,
            after_failures=after_failures,
        )
        if why is not None:
            rows.append((a.name, a.last_new_document, why))
    frame = pd.DataFrame(rows, columns=["source", "last new document", "why"])
    frame["last new document"] = pd.to_datetime(frame["last new document"], utc=True)
    return frame


def percentiles_by_day(session: Session, *, days: list[date]) -> pd.DataFrame:
    """day, documents, p50 h, p95 h, p99 h for every day of the window (NaN where nothing was stored), from
    the processing-time histogram summed over sources."""
    rows = session.execute(
        select(SlaDayBucket.day, SlaDayBucket.bucket, func.sum(SlaDayBucket.documents))
        .where(SlaDayBucket.day >= days[0], SlaDayBucket.day <= days[-1])
        .group_by(SlaDayBucket.day, SlaDayBucket.bucket)
    ).all()
    buckets: dict[date, list[tuple[int, int]]] = {}
    for d, bucket, n in rows:
        buckets.setdefault(_as_date(d), []).append((int(bucket), int(n)))
    out = []
    for d in days:
        counts = buckets.get(d, [])
        picks = [percentile_seconds(counts, p) for p in PERCENTILES]
        out.append((d, sum(n for _, n in counts), *(None if s is None else s / 3600 for s in picks)))
    frame = pd.DataFrame(out, columns=["day", "documents", "p50 h", "p95 h", "p99 h"])
    for col in ("p50 h", "p95 h", "p99 h"):
        frame[col] = frame[col].astype("float64")
    return frame


PERCENTILE_COLUMNS = ("p50 h", "p95 h", "p99 h")


def fitting_unit(frame: pd.DataFrame) -> str:
    """The unit the percentiles read best in: "s" when the slowest is under 2 min, "min" under 2 h, else "h"."""
    slowest = frame[list(PERCENTILE_COLUMNS)].max().max() if len(frame) else float("nan")
    if slowest != slowest or slowest >= 2:  # NaN: nothing stored; hours then, as the target is set
        return "h"
    return "s" if slowest * 60 < 2 else "min"


def percentiles_in(frame: pd.DataFrame, unit: str) -> pd.DataFrame:
    """The percentiles table in `unit` (columns "p50 min" ...), from the hours percentiles_by_day gives."""
    factor = {"h": 1.0, "min": 60.0, "s": 3600.0}[unit]
    out = frame.copy()
    for col in PERCENTILE_COLUMNS:
        out[col] = out[col] * factor
    return out.rename(columns={c: c.replace(" h", f" {unit}") for c in PERCENTILE_COLUMNS})


def rollup_settings(session: Session, *, since: date, until: date) -> tuple[list[float], list[str]]:
    """The on-time targets the window's rollups were counted against, and the zones whose days they are (one
    of each, unless a setting changed since they were written)."""
    rows = session.execute(
        select(SlaDay.target_hours, SlaDay.zone).where(SlaDay.day >= since, SlaDay.day <= until).distinct()
    ).all()
    return sorted({float(t) for t, _ in rows}), sorted({str(z) for _, z in rows})


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


def breaches_by_day(session: Session, *, since: datetime, zone: str) -> pd.DataFrame:
    """day, warning, critical: SLA alerts raised per calendar day of `zone` (for the weekly summary)."""
    levels = (
        func.sum(case((Alert.kind == ALERT_SLA_WARNING, 1), else_=0)),
        func.sum(case((Alert.kind == ALERT_SLA_CRITICAL, 1), else_=0)),
    )
    window = (Alert.kind.in_(SLA_ALERT_KINDS), Alert.created_at >= since)
    counts: dict[date, list[int]] = {}
    if _sqlite(session):
        # SQLite knows no zones: count per UTC quarter-hour (every zone's offset is a whole number of them)
        # and give each quarter its local day here; a few thousand rows at most for a 90-day window.
        hour = func.strftime("%Y-%m-%d %H", Alert.created_at)
        quarter = cast(func.strftime("%M", Alert.created_at), Integer) / 15
        rows = session.execute(select(hour, quarter, *levels).where(*window).group_by(hour, quarter)).all()
        for h, q, w, c in rows:
            moment = datetime.fromisoformat(f"{h}:00:00+00:00") + timedelta(minutes=15 * int(q))
            day = counts.setdefault(local_day(moment, zone), [0, 0])
            day[0] += int(w or 0)
            day[1] += int(c or 0)
    else:
        local = cast(func.timezone(zone, Alert.created_at), Date).label("day")
        for d, w, c in session.execute(select(local, *levels).where(*window).group_by(local)):
            counts[_as_date(d)] = [int(w or 0), int(c or 0)]
    return pd.DataFrame(
        [(d, w, c) for d, (w, c) in sorted(counts.items())], columns=["day", "warning", "critical"]
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
    done_expr = func.sum(
        case((Artifact.status.in_((ArtifactStatus.STORED, ArtifactStatus.FAILED)), 1), else_=0)
    )
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
    """week (Monday), documents, on time, failed, failed batches, share, met target, warning, critical: from
    the daily figures; weeks without documents, failed batches or breaches are left out. A week with a batch
    that failed outright did not meet the target, whatever the share of the documents that did arrive."""
    columns = [
        "week",
        "documents",
        "on time",
        "failed",
        "failed batches",
        "share",
        "met target",
        "warning",
        "critical",
    ]
    if not daily.empty:
        daily = daily[(daily["documents"] > 0) | (daily["failed batches"] > 0)]
    if daily.empty and breaches.empty:
        return pd.DataFrame(columns=columns)

    def monday(d: date) -> date:
        return d - timedelta(days=d.weekday())

    counted = ["documents", "on time", "failed", "failed batches"]
    docs = (
        daily.assign(week=daily["day"].map(monday)).groupby("week")[counted].sum()
        if not daily.empty
        else pd.DataFrame(columns=counted)
    )
    alerts = (
        breaches.assign(week=breaches["day"].map(monday)).groupby("week")[["warning", "critical"]].sum()
        if not breaches.empty
        else pd.DataFrame(columns=["warning", "critical"])
    )
    frame = docs.join(alerts, how="outer").fillna(0).sort_index().reset_index(names="week")
    for col in ("documents", "on time", "failed", "failed batches", "warning", "critical"):
        frame[col] = frame[col].astype(int)
    frame["share"] = (frame["on time"] / frame["documents"]).where(frame["documents"] > 0)
    frame["met target"] = (frame["share"] >= target_share) & (frame["failed batches"] == 0)
    return frame[columns]


@dataclass(frozen=True)
class SlaReport:
    since: datetime
    until: datetime
    days: list[date]
    documents: int
    on_time: int
    failed: int
    daily: pd.DataFrame
    by_source: pd.DataFrame
    percentiles: pd.DataFrame
    breaches: pd.DataFrame
    at_risk: pd.DataFrame
    weekly: pd.DataFrame
    rollup_targets: list[float]
    target_hours: float
    rollup_zones: list[str]
    zone: str
    failed_batches: int = 0
    cancelled_batches: int = 0
    silent: tuple[str, ...] = ()  # sources that delivered nothing in the window
    stale: pd.DataFrame | None = None  # source, last new document, why

    @property
    def sources_down(self) -> bool:
        """Whether something failed outright: then the share of what arrived is not the whole story."""
        return bool(self.failed_batches or self.silent)

    @property
    def stale_target(self) -> bool:
        """Whether some rollups in the window were counted against another target than today's setting."""
        return any(abs(t - self.target_hours) > 1e-9 for t in self.rollup_targets)

    @property
    def stale_zone(self) -> bool:
        """Whether some rollups in the window count days of another zone than today's setting."""
        return any(z != self.zone for z in self.rollup_zones)

    @property
    def share(self) -> float | None:
        return self.on_time / self.documents if self.documents else None

    @property
    def breaches_in_window(self) -> int:
        return int(self.breaches["warning"].sum() + self.breaches["critical"].sum())

    @property
    def breaches_open(self) -> int:
        return int(self.breaches["open"].sum())


def sla_report(
    session: Session,
    *,
    now: datetime,
    days: int,
    target_hours: float,
    target_share: float,
    warning_hours: float,
    critical_hours: float,
    zone: str,
    stale_after_intervals: float = 2.0,
    stale_after_failures: int = 3,
) -> SlaReport:
    """The SLA page's figures for the `days` calendar days of `zone` up to and including today."""
    today = local_day(now, zone)
    window = window_days(today - timedelta(days=days - 1), today)
    since, _ = day_bounds(window[0], zone)
    rows = source_days(session, since=window[0], until=window[-1])
    daily = share_by_day(rows, window)
    outcomes = batch_outcomes(session, since=since, zone=zone)
    per_day = (
        outcomes.groupby("day")[["failed batches", "cancelled batches"]].sum() if len(outcomes) else None
    )
    for col in ("failed batches", "cancelled batches"):
        daily[col] = [int(per_day[col].get(d, 0)) if per_day is not None else 0 for d in window]
    by_source = share_by_source(rows, target_share=target_share)
    by_source = _with_outcomes(by_source, outcomes)
    targets, zones = rollup_settings(session, since=window[0], until=window[-1])
    return SlaReport(
        since=since,
        until=now,
        days=window,
        documents=int(daily["documents"].sum()),
        on_time=int(daily["on time"].sum()),
        failed=int(daily["failed"].sum()),
        daily=daily,
        by_source=by_source,
        percentiles=percentiles_by_day(session, days=window),
        breaches=breaches_by_source(session, since=since),
        at_risk=at_risk(session, now=now, warning_hours=warning_hours, critical_hours=critical_hours),
        weekly=weekly_summary(daily, breaches_by_day(session, since=since, zone=zone), target_share),
        rollup_targets=targets,
        target_hours=target_hours,
        rollup_zones=zones,
        zone=zone,
        failed_batches=int(outcomes["failed batches"].sum()),
        cancelled_batches=int(outcomes["cancelled batches"].sum()),
        silent=tuple(silent_sources(session, since=since, until=now)),
        stale=stale_sources(
            session, now=now, after_intervals=stale_after_intervals, after_failures=stale_after_failures
        ),
    )


def _with_outcomes(by_source: pd.DataFrame, outcomes: pd.DataFrame) -> pd.DataFrame:
    """The per-source table with each source's failed and cancelled batches (and a row for a source that has
    only those), failed batches first after the lowest shares."""
    per_source = (
        outcomes.groupby("source")[["failed batches", "cancelled batches"]].sum()
        if len(outcomes)
        else pd.DataFrame(columns=["failed batches", "cancelled batches"])
    )
    missing = [name for name in per_source.index if name not in set(by_source["source"])]
    if missing:
        extra = pd.DataFrame({"source": missing, "documents": 0, "on time": 0, "late": 0, "failed": 0})
        by_source = pd.concat([by_source, extra], ignore_index=True)
    for col in ("failed batches", "cancelled batches"):
        by_source[col] = [int(per_source[col].get(name, 0)) for name in by_source["source"]]
    by_source["days below target"] = by_source["days below target"].fillna(0).astype(int)
    columns = ["source", "documents", "on time", "late", "failed", "failed batches", "cancelled batches"]
    rest = [c for c in by_source.columns if c not in columns]
    return by_source[[*columns, *rest]].reset_index(drop=True)


def as_shown(weekly: pd.DataFrame) -> pd.DataFrame:
    """The weekly summary as the page shows it, for the CSV: shares as percentages ("95.0%", empty without
    documents), met target as yes / no."""
    out = weekly.copy()
    out["share"] = [f"{v:.1%}" if v == v and v is not None else "" for v in out["share"]]
    out["met target"] = ["yes" if v else "no" for v in out["met target"]]
    return out
