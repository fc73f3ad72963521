"""The one role check every operation makes first: allowed, or refused with the roles it needs, and audited."""

from __future__ import annotations

from sqlalchemy.orm import Session

from core.roles import Permission, needs
from data import repository
from operations.context import Actor, Context
from operations.errors import Forbidden


def require(actor: Actor, ctx: Context, permission: Permission, *, action: str, target: str) -> None:
    """Return when `actor` may do `permission`; else record the refusal in the audit log and raise Forbidden.

    Hiding a button is not a check: every operation calls this before it changes anything.
    """
    if actor.may(permission):
        return
    message = needs(permission, actor.roles)
    with ctx.sessions.begin() as session:
        repository.record_audit(
            session,
            actor=actor.name,
            action=f"refused:{action}",
            target=target,
            reason=message,
            target_name=_name_of(session, target),
        )
    raise Forbidden(message[0].upper() + message[1:] + ".")


def _name_of(session: Session, target: str) -> str | None:
    """The name of a "source:ID" or "batch:ID" target when it exists (else None: a name as typed, say)."""
    kind, _, ref = target.partition(":")
    if not ref.isdigit():
        return None
    if kind == "source":
        return repository.source_name(session, int(ref))
    if kind == "batch":
        return repository.batch_name(session, int(ref))
    return None
