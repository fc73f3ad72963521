"""Errors and dialect helpers shared by the repository modules."""

from __future__ import annotations

from typing import Any

from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session


class DuplicateSourceName(ValueError):
    pass


class NotFound(LookupError):
    pass


def _rowcount(result: Any) -> int:
    """Rows matched by an UPDATE or DELETE (a CursorResult's rowcount; typed loosely by SQLAlchemy)."""
    return int(result.rowcount)


def _insert(session: Session) -> Any:
    return sqlite_insert if session.get_bind().dialect.name == "sqlite" else pg_insert
