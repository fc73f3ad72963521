"""The audit log: who did what to which target, and why."""

from __future__ import annotations

from sqlalchemy.orm import Session

from data.models import AuditEvent

# --- audit ---------------------------------------------------------------------------------------------


def record_audit(
    session: Session, *, actor: str, action: str, target: str, reason: str | None = None
) -> None:
    if not actor.strip():
        raise ValueError("an audit event needs an actor")
    session.add(AuditEvent(actor=actor, action=action, target=target, reason=reason))
