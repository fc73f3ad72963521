"""SLA rules: which alerts a running batch is due, and its projected completion (pure, table-driven)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from core.sla_rules import assess, project_completion

T0 = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
W = ("sla_warning", "warning")
C = ("sla_critical", "critical")


@pytest.mark.parametrize(
    ("age", "due"),
    [
        (timedelta(0), ()),
        (timedelta(hours=3, minutes=59), ()),
        (timedelta(hours=4), ()),  # "past 4 h": exactly 4 h is still on time
        (timedelta(hours=4, minutes=1), (W,)),
        (timedelta(hours=7, minutes=59), (W,)),
        (timedelta(hours=8), (W,)),
        (timedelta(hours=8, minutes=1), (W, C)),
        (timedelta(days=3), (W, C)),
    ],
)
def test_alerts_due_by_age(age: timedelta, due: tuple[tuple[str, str], ...]) -> None:
    a = assess(started_at=T0, now=T0 + age, done=1, total=2, warning_hours=4, critical_hours=8)
    assert a.due == due
    assert a.age == age
    assert a.level == (due[-1][1] if due else None)


@pytest.mark.parametrize(
    ("elapsed_h", "done", "total", "projected_h"),
    [
        (1, 0, 100, None),  # nothing done yet: no throughput to project from
        (1, 10, 0, None),  # nothing ingested yet
        (1, 50, 100, 2.0),  # half done in 1 h: done at 2 h
        (2, 25, 100, 8.0),  # 12.5 docs/h: 75 left take 6 h more
        (3, 100, 100, 3.0),  # finished: now
        (4, 120, 100, 4.0),  # more done than counted (a retry): now
    ],
)
def test_projected_completion(elapsed_h: float, done: int, total: int, projected_h: float | None) -> None:
    now = T0 + timedelta(hours=elapsed_h)
    got = project_completion(started_at=T0, now=now, done=done, total=total)
    assert got == (None if projected_h is None else T0 + timedelta(hours=projected_h))


def test_thresholds_come_from_settings() -> None:
    a = assess(
        started_at=T0,
        now=T0 + timedelta(hours=2, minutes=1),
        done=0,
        total=0,
        warning_hours=1,
        critical_hours=2,
    )
    assert a.due == (W, C)
