"""The one refusal type both front ends render: the CLI exits with its status, a page shows its message."""

from __future__ import annotations


class Refused(Exception):
    """An action that was not done, with a message the person can act on. Nothing was changed.

    Bad input and actions the current state does not allow (a name taken, a source with a batch in flight).
    """

    exit_status = 2

    @property
    def message(self) -> str:
        return str(self)


class NotAccepted(Refused):
    """The batch's workflow did not accept a decision (it was decided meanwhile, or is no longer waiting)."""

    exit_status = 1


class Forbidden(Refused):
    """The person's roles do not allow the action; the message names the roles that would. It was audited."""

    exit_status = 3


class AlreadyRunning(Refused):
    """A refresh of a source that has a batch in flight: one batch per source at a time; `batch_id` is it."""

    exit_status = 1

    def __init__(self, message: str, *, batch_id: int) -> None:
        super().__init__(message)
        self.batch_id = batch_id


class Unreachable(Refused):
    """A dry run could not read the location (down, refused, not found): registering it is still allowed."""
