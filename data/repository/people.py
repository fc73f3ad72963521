"""People: the roles admins granted, per subject (the email or subject an identity provider gives)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from data.models import RoleAssignment
from data.repository._base import _rowcount


def granted_roles(session: Session, *, subject: str) -> set[str]:
    return set(session.scalars(select(RoleAssignment.role).where(RoleAssignment.subject == subject)))


def grant_role(session: Session, *, subject: str, role: str, granted_by: str) -> bool:
    """Grant `role` to `subject`; False when it was granted already (nothing changes)."""
    if role in granted_roles(session, subject=subject):
        return False
    session.add(RoleAssignment(subject=subject, role=role, granted_by=granted_by))
    session.flush()
    return True


def revoke_role(session: Session, *, subject: str, role: str) -> bool:
    """Take `role` from `subject`; False when they did not hold it (from this table)."""
    return bool(
        _rowcount(
            session.execute(
                delete(RoleAssignment).where(RoleAssignment.subject == subject, RoleAssignment.role == role)
            )
        )
    )


@dataclass(frozen=True)
class Grant:
    subject: str
    role: str
    granted_by: str
    granted_at: datetime


def list_grants(session: Session, *, limit: int = 1000) -> list[Grant]:
    rows = session.scalars(
        select(RoleAssignment).order_by(RoleAssignment.subject, RoleAssignment.role).limit(limit)
    )
    return [Grant(r.subject, r.role, r.granted_by, r.granted_at) for r in rows]
