"""Audit: operator actions listed newest first, filtered by actor, action, target and dates, exported as CSV."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from streamlit.testing.v1 import AppTest

from core.roles import Role
from core.settings import Settings
from dashboard import audit
from data.models import AuditEvent, Batch, utcnow
from operations import Actor, Context
from operations import sources as source_ops
from tests.dashboard.conftest import OpenPage
from tests.dashboard.seed import HOSTILE, Seeded


def seed_events(sessions: sessionmaker[Session]) -> None:
    """57 events: 55 refreshes by ana today (for paging), and three older or odd ones."""
    now = utcnow()
    with sessions.begin() as session:
        session.add_all(
            AuditEvent(
                actor="ana",
                action="refresh",
                target=f"source:{i % 3 + 1}",
                created_at=now - timedelta(minutes=i),
            )
            for i in range(55)
        )
        session.add(
            AuditEvent(
                actor="ben",
                action="reject",
                target="batch:12",
                reason=HOSTILE,
                created_at=now - timedelta(days=3),
            )
        )
        session.add(
            AuditEvent(
                actor="ben",
                action="approve",
                target="batch:7",
                reason="=cmd()",
                created_at=now - timedelta(days=1),
            )
        )


def count_caption(at: AppTest) -> str:
    return next(c.value for c in at.caption if "event(s)" in c.value)


def test_events_are_paged_and_filtered(dashboard_env: sessionmaker[Session], open_page: OpenPage) -> None:
    seed_events(dashboard_env)
    at = open_page("audit")
    assert count_caption(at).startswith("57 event(s)")
    first = at.dataframe[0].value
    assert len(first) == 50 and list(first["actor"][:2]) == ["ana", "ana"]  # newest first, 50 a page
    assert [b.label for b in at.download_button] == ["Download CSV"]

    at.selectbox(key="audit_actor").select("ben").run()
    rows = at.dataframe[0].value
    assert list(rows["target"]) == ["batch:7", "batch:12"]
    assert rows["reason"][1] == HOSTILE  # a table cell: shown as typed

    at.selectbox(key="audit_action").select("reject").run()
    assert list(at.dataframe[0].value["target"]) == ["batch:12"]

    at.selectbox(key="audit_actor").select("all").run()
    at.selectbox(key="audit_action").select("all").run()
    at.text_input(key="audit_target").input("SOURCE:2").run()  # case-insensitive substring
    assert count_caption(at).startswith("18 event(s)")
    at.text_input(key="audit_target").input("%").run()  # wildcards are searched for, not obeyed
    assert count_caption(at).startswith("0 event(s)")

    at.text_input(key="audit_target").input("").run()
    day = (utcnow() - timedelta(days=3)).date()
    at.date_input(key="audit_dates").set_value((day, day)).run()
    assert list(at.dataframe[0].value["target"]) == ["batch:12"]


def test_csv_export_holds_the_filtered_events(dashboard_env: sessionmaker[Session]) -> None:
    seed_events(dashboard_env)
    with dashboard_env() as session:
        text = audit.csv_text(session, audit.AuditFilter(actor="ben"))
        capped = audit.csv_text(session, audit.AuditFilter(), cap=3)
    rows = list(csv.DictReader(io.StringIO(text)))
    assert list(rows[0]) == ["time", "actor", "action", "target", "name", "reason"]
    assert [(r["actor"], r["action"], r["target"], r["reason"]) for r in rows] == [
        ("ben", "approve", "batch:7", "'=cmd()"),  # never a spreadsheet formula
        ("ben", "reject", "batch:12", HOSTILE),
    ]
    assert rows[0]["time"].endswith("+00:00")
    assert len(list(csv.DictReader(io.StringIO(capped)))) == 3
    built = audit.csv_export(dashboard_env, audit.AuditFilter(action="reject"))()
    assert [r["target"] for r in csv.DictReader(io.StringIO(built))] == ["batch:12"]


def test_an_event_keeps_its_targets_name_after_the_source_is_deleted(
    seeded: Seeded, dashboard_env: sessionmaker[Session], open_page: OpenPage, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOREGUARD_TIMEZONE", "Europe/Berlin")
    actor = Actor("ana@example.org", frozenset({Role.ADMIN}))
    ctx = Context.for_settings(Settings(), dashboard_env)
    try:
        source_ops.set_source_interval(actor, ctx, "alpha", 7200)  # the schedule cannot follow: no Temporal
        with dashboard_env.begin() as session:  # alpha's batches end first, as they would
            for batch in session.scalars(select(Batch).where(Batch.source_id == seeded.sources["alpha"])):
                batch.status = "completed"
        source_ops.delete_source(actor, ctx, "alpha")
    finally:
        ctx.close()
    at = open_page("audit")
    events = at.dataframe[0].value
    assert list(events["name"][:2]) == ["alpha", "alpha"]  # the deleted source still reads as alpha
    assert list(events["target"][:2]) == [f"source:{seeded.sources['alpha']}"] * 2
    assert any("times are in Europe/Berlin" in c.value for c in at.caption)
    assert str(events["time"].dt.tz) == "Europe/Berlin"

    at.text_input(key="audit_target").input("alph").run()  # the filter finds names too
    assert len(at.dataframe[0].value) == 2
