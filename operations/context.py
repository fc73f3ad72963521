"""Who acts, and what an operation works with: settings, the app database and the Temporal gateway."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker

from core.roles import Permission, Role, permissions
from core.settings import Settings
from operations.errors import Refused
from orchestration.client import temporal_target
from orchestration.gateway import TemporalGateway


@dataclass(frozen=True)
class Actor:
    """The person an action is done for: the audit log and Temporal record `name`; `roles` say what they may do.

    A signed-in person is named by their email (or subject); a command-line user by their OS account
    ("ana", or "ana as ben" with --actor), so nobody can act under the bare name `system`.
    """

    name: str
    roles: frozenset[Role] = frozenset()

    def __post_init__(self) -> None:
        cleaned = self.name.strip()
        if not cleaned:
            raise Refused("the acting person's name must not be blank")
        object.__setattr__(self, "name", cleaned)
        object.__setattr__(self, "roles", frozenset(Role(r) for r in self.roles))

    def may(self, permission: Permission) -> bool:
        return permission in permissions(self.roles)


@dataclass(frozen=True)
class Context:
    """What operations need, built once per process by the front end and passed to every call."""

    settings: Settings
    sessions: sessionmaker[Session]
    temporal: TemporalGateway

    @classmethod
    def for_settings(cls, settings: Settings, sessions: sessionmaker[Session]) -> Context:
        """A context with its own gateway to the configured Temporal (close it with `close`)."""
        return cls(
            settings,
            sessions,
            TemporalGateway(temporal_target(settings)),
        )

    def close(self) -> None:
        self.temporal.close()
