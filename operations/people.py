"""People: who a signed-in person is (their roles, from claims, grants and the admins setting), and granting
or revoking roles on the Users page."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from core.identity import NotAnIdentity, identity_of, normalized
from core.roles import Permission, Role, describe
from core.settings import Settings
from data import repository
from operations.access import require
from operations.context import Actor, Context
from operations.errors import Refused


def roles_from_claims(settings: Settings, claims: Mapping[str, Any]) -> set[Role]:
    """The roles the identity provider's claim gives: mapped values, and values that are role names."""
    raw = claims.get(settings.roles_claim) or []
    values: Iterable[Any] = [raw] if isinstance(raw, str) else raw if isinstance(raw, list | tuple) else []
    roles: set[Role] = set()
    for value in values:
        text = str(value).strip()
        if text in settings.role_mapping:
            roles.add(settings.role_mapping[text])
        elif text.lower() in Role.__members__.values():
            roles.add(Role(text.lower()))
    return roles


def identify(ctx: Context, claims: Mapping[str, Any]) -> Actor:
    """The Actor for a signed-in person: roles from their claims, from admins' grants, and LOREGUARD_ADMINS.

    The person is their verified e-mail, else issuer|subject (core/identity.py): an unverified `email` or a
    bare `sub` never matches a grant or an admin. Read on every page run, so a grant or revocation applies at
    once, whatever the sign-in cookie holds.
    """
    try:
        subject = identity_of(claims)
    except NotAnIdentity as exc:
        raise Refused(f"Sign-in refused: {exc}.") from None
    roles = roles_from_claims(ctx.settings, claims)
    with ctx.sessions() as session:
        roles |= {
            Role(r)
            for r in repository.granted_roles(session, subject=subject)
            if r in Role.__members__.values()
        }
    if subject in ctx.settings.admins:  # normalized by the settings
        roles.add(Role.ADMIN)
    return Actor(subject, frozenset(roles))


def _checked(subject: str, role: str) -> tuple[str, Role]:
    try:
        subject = normalized(subject)
    except NotAnIdentity:
        raise Refused(
            "Person: give their verified e-mail address (ada@example.org), or their identity provider's issuer "
            "and subject joined by '|' (https://login.example.org|248289761001) for a person whose provider "
            "does not verify e-mails."
        ) from None
    try:
        return subject, Role(role)
    except ValueError:
        raise Refused(f"Role: choose one of {describe(Role)}.") from None


def grant_role(actor: Actor, ctx: Context, subject: str, role: str) -> str:
    """Give a person a role (on top of what their claims give); audited. Returns the message to show."""
    subject, granted = _checked(subject, role)
    require(actor, ctx, Permission.ASSIGN_ROLES, action="grant_role", target=f"person:{subject}")
    with ctx.sessions.begin() as session:
        if not repository.grant_role(session, subject=subject, role=granted.value, granted_by=actor.name):
            return f"{subject} already holds the {granted.value} role"
        repository.record_audit(
            session, actor=actor.name, action="grant_role", target=f"person:{subject}", reason=granted.value
        )
    return f"{subject} now holds the {granted.value} role"


def revoke_role(actor: Actor, ctx: Context, subject: str, role: str) -> str:
    """Take a granted role away (roles from claims or LOREGUARD_ADMINS stay as the provider says); audited."""
    subject, revoked = _checked(subject, role)
    require(actor, ctx, Permission.ASSIGN_ROLES, action="revoke_role", target=f"person:{subject}")
    if subject == actor.name and revoked is Role.ADMIN:
        raise Refused("You cannot take the admin role from yourself; ask another admin.")
    with ctx.sessions.begin() as session:
        if not repository.revoke_role(session, subject=subject, role=revoked.value):
            return f"{subject} held no granted {revoked.value} role"
        repository.record_audit(
            session, actor=actor.name, action="revoke_role", target=f"person:{subject}", reason=revoked.value
        )
    return f"{subject} no longer holds the granted {revoked.value} role"
