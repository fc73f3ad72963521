"""Who may do what: the five roles, the permissions each grants, and the words to tell a person what is missing.

| role     | may                                                                            |
|----------|--------------------------------------------------------------------------------|
| viewer   | read every page                                                                |
| analyst  | viewer + export CSV, see document text, review the evaluator's verdicts        |
| operator | analyst + register/edit/pause/resume/refresh sources, approve/reject/cancel batches |
| manager  | viewer + SLA exports, read the audit log                                       |
| admin    | everything, including deleting sources and assigning roles                     |
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum


class Role(StrEnum):
    VIEWER = "viewer"
    ANALYST = "analyst"
    OPERATOR = "operator"
    MANAGER = "manager"
    ADMIN = "admin"


class Permission(StrEnum):
    """What a role allows; the value is how a refusal names it ("... may not <value>")."""

    READ = "read the dashboard"
    EXPORT_CSV = "export CSV"
    READ_TEXT = "see document text"
    REVIEW = "review the evaluator's verdicts"
    MANAGE_SOURCES = "register, edit, pause, resume or refresh sources"
    DECIDE = "approve or reject batches"
    CANCEL = "cancel running batches"
    EXPORT_SLA = "export SLA reports"
    READ_AUDIT = "read the audit log"
    DELETE_SOURCES = "delete sources"
    ASSIGN_ROLES = "assign roles"


_VIEWER = frozenset({Permission.READ})
_ANALYST = _VIEWER | {Permission.EXPORT_CSV, Permission.READ_TEXT, Permission.REVIEW}
GRANTS: dict[Role, frozenset[Permission]] = {
    Role.VIEWER: _VIEWER,
    Role.ANALYST: _ANALYST,
    Role.OPERATOR: _ANALYST | {Permission.MANAGE_SOURCES, Permission.DECIDE, Permission.CANCEL},
    Role.MANAGER: _VIEWER | {Permission.EXPORT_SLA, Permission.READ_AUDIT},
    Role.ADMIN: frozenset(Permission),
}
ROLES = tuple(Role)


def permissions(roles: Iterable[Role]) -> frozenset[Permission]:
    granted: frozenset[Permission] = frozenset()
    for role in roles:
        granted |= GRANTS[role]
    return granted


def roles_allowing(permission: Permission) -> list[Role]:
    """The roles that grant `permission`, least powerful first (admin last)."""
    return [role for role in ROLES if permission in GRANTS[role]]


def describe(roles: Iterable[Role]) -> str:
    """'operator, analyst' in the table's order, or 'no role'."""
    held = set(roles)
    return ", ".join(role.value for role in ROLES if role in held) or "no role"


def needs(permission: Permission, held: Iterable[Role]) -> str:
    """The sentence a refused person reads: what they tried, which roles allow it, what they have."""
    allowing = " or ".join(role.value for role in roles_allowing(permission))
    return f"you need the {allowing} role to {permission.value} (you have: {describe(held)})"
