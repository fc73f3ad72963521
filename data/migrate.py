"""Apply the Alembic migrations to the app database (`loreguard migrate`, and `loreguard up` at start)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from alembic import command
from alembic.config import Config

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

MIGRATIONS_DIR = Path(__file__).with_name("migrations")


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the database at `url` up to `revision` (idempotent)."""
    from data.db import make_engine

    make_engine(url).dispose()  # creates the SQLite folder if needed
    command.upgrade(alembic_config(url), revision)


def current_revision(url: str) -> str | None:
    from alembic.runtime.migration import MigrationContext

    from data.db import make_engine

    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()


def head_revision() -> str:
    """The newest migration this code knows (what `loreguard setup` / `migrate` bring a database to)."""
    return SchemaCheck().head


class SchemaCheck:
    """Whether a database's schema is older than this code's migration head (the workers' readiness check).
    The migration scripts are read once; each check is one query."""

    def __init__(self) -> None:
        from alembic.script import ScriptDirectory

        scripts = ScriptDirectory.from_config(alembic_config("sqlite://"))
        head = scripts.get_current_head()
        assert head is not None, "no migrations found"
        self.head: str = head
        self.known = {script.revision for script in scripts.walk_revisions()}

    def behind(self, connection: Connection) -> str | None:
        """Why this database's schema is older than the code's head (None when it is at head, or newer).

        A revision this code does not know is taken as newer (written by a later release, whose migrations
        keep the older code working during a rollout); a known revision other than head is older: not ready.
        """
        from alembic.runtime.migration import MigrationContext

        current = MigrationContext.configure(connection).get_current_revision()
        if current == self.head or (current is not None and current not in self.known):
            return None
        if current is None:
            return (
                f"the database has no LoreGuard schema yet (this code needs revision {self.head}): "
                "run `loreguard setup`"
            )
        return f"the database schema is at revision {current}, this code needs {self.head}: run `loreguard setup`"
