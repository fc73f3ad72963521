"""SLA rules as pure functions: a running batch's age, projected completion and the alerts it is due.

No I/O here: the SLA monitor activity (workers/monitoring.py) feeds rows in and records what comes out (once per
batch and kind); the dashboard's SLA page projects batches at risk with the same rules.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from core.vocabulary import ALERT_SLA_CRITICAL, ALERT_SLA_WARNING

LEVEL_WARNING = "warning"
LEVEL_CRITICAL = "critical"


@dataclass(frozen=True)
class SlaAssessment:
    age: timedelta
    done: int
    total: int
    projected_completion: datetime | None  # None while nothing is done yet (no throughput to project from)
    due: tuple[tuple[str, str], ...]  # (alert kind, level), warning before critical

    @property
    def level(self) -> str | None:
        return self.due[-1][1] if self.due else None


def project_completion(*, started_at: datetime, now: datetime, done: int, total: int) -> datetime | None:
    """When the batch ends at its throughput so far (done / elapsed); None when that is unknown."""
    if total <= 0 or done <= 0:
        return None
    if done >= total:
        return now
    elapsed = (now - started_at).total_seconds()
    if elapsed <= 0:
        return None
    rate = done / elapsed  # documents per second
    return now + timedelta(seconds=(total - done) / rate)


def assess(
    *,
    started_at: datetime,
    now: datetime,
    done: int,
    total: int,
    warning_hours: float,
    critical_hours: float,
) -> SlaAssessment:
    """The alerts a batch still running at `now` is due: WARNING past `warning_hours`, CRITICAL past `critical_hours`."""
    age = now - started_at
    due: list[tuple[str, str]] = []
    if age > timedelta(hours=warning_hours):
        due.append((ALERT_SLA_WARNING, LEVEL_WARNING))
    if age > timedelta(hours=critical_hours):
        due.append((ALERT_SLA_CRITICAL, LEVEL_CRITICAL))
    return SlaAssessment(
        age=age,
        done=done,
        total=total,
        projected_completion=project_completion(started_at=started_at, now=now, done=done, total=total),
        due=tuple(due),
    )


def describe_age(age: timedelta) -> str:
    minutes = int(age.total_seconds() // 60)
    return f"{minutes // 60} h {minutes % 60:02d} min"


def alert_message(batch_id: int, source_name: str, level: str, a: SlaAssessment, limit_hours: float) -> str:
    projected = a.projected_completion.strftime("%Y-%m-%d %H:%M UTC") if a.projected_completion else "unknown"
    return (
        f"SLA {level.upper()}: batch {batch_id} of source {source_name!r} has run {describe_age(a.age)} "
        f"(limit {limit_hours:g} h); {a.done} of {a.total} documents done; projected completion {projected}."
    )
