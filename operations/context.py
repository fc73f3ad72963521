"""Who acts, and what an operation works with: settings, the app database and the Temporal gateway."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker

from core.settings import Settings
from operations.errors import Refused
from orchestration.client import temporal_target
from orchestration.gateway import TemporalGateway


@dataclass(frozen=True)
class Actor:
    """The person (or `system`) an action is done for; the audit log and Temporal record `name`."""

    name: str

    def __post_init__(self) -> None:
        cleaned = self.name.strip()
        if not cleaned:
            raise Refused("the acting person's name must not be blank")
        object.__setattr__(self, "name", cleaned)


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
