"""Who acts, and what an operation works with: settings, the app database and the Temporal gateway."""

from __future__ import annotations

import os
import pwd
from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker

from core.roles import Permission, Role, permissions
from core.settings import Settings
from operations.errors import Refused
from operations.processing import Processing
from orchestration.client import temporal_target
from orchestration.gateway import TemporalGateway


@dataclass(frozen=True)
class Actor:
    """The person an action is done for: the audit log and Temporal record `name`; `roles` say what they may do.

    A signed-in person is named by their verified e-mail (or issuer|subject); a command-line user by the OS
    account of the process's user id ("ana", or "ana as ben" with --actor), so nobody can act under the bare
    name `system`. A name is one printable line: a line break or control character would forge audit lines.
    """

    name: str
    roles: frozenset[Role] = frozenset()

    def __post_init__(self) -> None:
        cleaned = self.name.strip()
        if not cleaned:
            raise Refused("the acting person's name must not be blank")
        if not cleaned.isprintable():  # control and format characters, line and paragraph separators
            raise Refused(
                f"the acting person's name {cleaned!r} holds a line break or another control character; "
                "give it on one line of printable characters"
            )
        object.__setattr__(self, "name", cleaned)
        object.__setattr__(self, "roles", frozenset(Role(r) for r in self.roles))

    def may(self, permission: Permission) -> bool:
        return permission in permissions(self.roles)


def os_account() -> str:
    """The account this process runs as, from its user id: LOGNAME, USER and the like are anyone's to set."""
    uid = os.getuid()
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:  # no passwd entry (a container's arbitrary UID)
        return f"uid:{uid}"


@dataclass(frozen=True)
class Context:
    """What operations need, built once per process by the front end and passed to every call.

    `processing` is the workers' (`workers.processing`), for a dry run and a re-evaluation's preview: the
    front end passes it in because operations imports no worker code. Without it those two are refused.
    """

    settings: Settings
    sessions: sessionmaker[Session]
    temporal: TemporalGateway
    processing: Processing | None = None

    @classmethod
    def for_settings(
        cls, settings: Settings, sessions: sessionmaker[Session], *, processing: Processing | None = None
    ) -> Context:
        """A context with its own gateway to the configured Temporal (close it with `close`)."""
        return cls(settings, sessions, TemporalGateway(temporal_target(settings)), processing)

    def worker_processing(self) -> Processing:
        """The workers' processing this front end passed in; a programming error when it passed none."""
        if self.processing is None:
            raise RuntimeError(
                "this front end built its operations Context without the workers' processing: "
                "pass processing=workers.processing"
            )
        return self.processing

    def close(self) -> None:
        self.temporal.close()
