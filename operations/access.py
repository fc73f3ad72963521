"""The one role check every operation makes first: allowed, or refused with the roles it needs, and audited."""

from __future__ import annotations

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
            session, actor=actor.name, action=f"refused:{action}", target=target, reason=message
        )
    raise Forbidden(message[0].upper() + message[1:] + ".")
