"""The SLA monitor's check reminds people of documents left in the review inbox past the configured age: once a
day through the notification channels, and not at all when nothing is overdue."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from core.settings import Settings
from data.models import Alert, Evaluation, utcnow
from orchestration.types import SlaCheckInput
from tests.support.library import Verdict, store_documents
from workers.monitoring import check_sla
from workers.steps import build_steps


def test_documents_waiting_past_the_age_are_notified_once_a_day(
    sqlite_url: str, sqlite_sessions: sessionmaker[Session]
) -> None:
    steps = build_steps(Settings(database_url=sqlite_url, notify_channels=["log"], review_overdue_hours=24))
    try:
        old, _new = store_documents(
            sqlite_sessions, "feeds", [Verdict("Old", "review"), Verdict("New", "review")]
        )
        now = utcnow()
        assert check_sla(steps, SlaCheckInput(now_iso=now.isoformat())).raised == []  # nothing overdue yet
        with sqlite_sessions.begin() as session:
            session.execute(
                update(Evaluation)
                .where(Evaluation.artifact_id == old)
                .values(created_at=now - timedelta(hours=30))
            )
        first = check_sla(steps, SlaCheckInput(now_iso=now.isoformat()))
        again = check_sla(steps, SlaCheckInput(now_iso=(now + timedelta(minutes=5)).isoformat()))
        day = now.date().isoformat()
        assert (first.raised, again.raised) == ([f"review_overdue:{day}"], [])  # once a day
        with sqlite_sessions() as session:
            (alert,) = session.execute(select(Alert)).scalars()
        assert (alert.kind, alert.level, alert.delivery) == (f"review_overdue:{day}", "warning", "log: sent")
        assert alert.message.startswith("1 document(s) have waited for review longer than 24 h")
    finally:
        steps.http.close()
