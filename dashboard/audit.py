"""The audit log: operator actions (actor, action, target, reason, time), filtered, paged and exported as CSV."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import pandas as pd
from sqlalchemy import ColumnElement, func, or_, select
from sqlalchemy.orm import Session, sessionmaker

from dashboard.formatting import in_zone
from dashboard.library import _csv_cell
from data.models import AuditEvent

COLUMNS = ["time", "actor", "action", "target", "name", "reason"]  # name: the target's, when written
EXPORT_CAP = 50_000  # rows in one CSV export


@dataclass(frozen=True)
class AuditFilter:
    actor: str | None = None
    action: str | None = None
    target: str = ""  # a substring of the target, case-insensitive
    since: datetime | None = None  # inclusive
    until: datetime | None = None  # exclusive


def _conditions(f: AuditFilter) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if f.actor:
        conditions.append(AuditEvent.actor == f.actor)
    if f.action:
        conditions.append(AuditEvent.action == f.action)
    if f.target.strip():
        needle = f.target.strip().lower()
        escaped = needle.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        conditions.append(
            or_(
                func.lower(AuditEvent.target).like(f"%{escaped}%", escape="\\"),
                func.lower(AuditEvent.target_name).like(f"%{escaped}%", escape="\\"),
            )
        )
    if f.since is not None:
        conditions.append(AuditEvent.created_at >= f.since)
    if f.until is not None:
        conditions.append(AuditEvent.created_at < f.until)
    return conditions


def count(session: Session, f: AuditFilter) -> int:
    return int(session.scalar(select(func.count()).select_from(AuditEvent).where(*_conditions(f))) or 0)


def page(session: Session, f: AuditFilter, *, limit: int | None, offset: int = 0) -> pd.DataFrame:
    """Events newest first."""
    stmt = (
        select(
            AuditEvent.created_at,
            AuditEvent.actor,
            AuditEvent.action,
            AuditEvent.target,
            AuditEvent.target_name,
            AuditEvent.reason,
        )
        .where(*_conditions(f))
        .order_by(AuditEvent.created_at.desc(), AuditEvent.id.desc())
    )
    if limit is not None:
        stmt = stmt.limit(limit).offset(offset)
    rows = session.execute(stmt).all()
    return pd.DataFrame(
        [
            [t, actor, action, target, name or "", reason or ""]
            for t, actor, action, target, name, reason in rows
        ],
        columns=COLUMNS,
    )


def options(session: Session) -> tuple[list[str], list[str]]:
    """(actors, actions) seen in the log, sorted."""
    actors = list(session.scalars(select(AuditEvent.actor).distinct().order_by(AuditEvent.actor)))
    actions = list(session.scalars(select(AuditEvent.action).distinct().order_by(AuditEvent.action)))
    return actors, actions


def csv_text(session: Session, f: AuditFilter, *, cap: int = EXPORT_CAP, zone: str = "UTC") -> str:
    """The events matching the filter as CSV, newest first, at most `cap` rows; times in ISO 8601 in `zone`
    (with their offset).

    Cells that a spreadsheet would run as formulas (=, +, -, @) are prefixed with a quote.
    """
    frame = in_zone(page(session, f, limit=cap), zone)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(COLUMNS)
    for row in frame.itertuples(index=False):
        writer.writerow(_csv_cell(v) for v in row)
    return out.getvalue()


def csv_export(maker: sessionmaker[Session], f: AuditFilter, *, zone: str = "UTC") -> Callable[[], str]:
    """The CSV export as a callable for st.download_button: read only when it is clicked (on another thread)."""

    def build() -> str:
        with maker() as session:
            return csv_text(session, f, zone=zone)

    return build
