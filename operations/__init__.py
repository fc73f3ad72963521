"""Every action a person takes, in one place: validated once, recorded in the audit log, sent to Temporal.

Front ends (the `loreguard` CLI and the dashboard's pages) only parse input and render results: they call
these functions with the acting person first and show `Refused` messages as they are.
"""

from operations.context import Actor, Context
from operations.errors import AlreadyRunning, Forbidden, NotAccepted, Refused

__all__ = ["Actor", "AlreadyRunning", "Context", "Forbidden", "NotAccepted", "Refused"]
