"""What every command shares: settings, exit statuses, the app database, the operations context, output."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import click
from pydantic import ValidationError
from sqlalchemy.orm import Session, sessionmaker

from core.settings import Settings
from operations import Actor, Context, Refused
from operations.context import os_account
from orchestration.client import TemporalSettingsError, temporal_target
from orchestration.gateway import TemporalUnavailable, connect_reason
from workers import processing


class UsageProblem(click.ClickException):
    """Bad input or configuration: exit status 2."""

    exit_code = 2


class RuntimeProblem(click.ClickException):
    """Something failed while doing the work: exit status 1."""

    exit_code = 1


class NotAllowed(click.ClickException):
    """The acting person's roles do not allow the action (it was audited): exit status 3."""

    exit_code = 3


def load_settings() -> Settings:
    try:
        settings = Settings()
    except ValidationError as exc:
        error = exc.errors()[0]
        field = ".".join(str(part) for part in error["loc"])
        where = f"LOREGUARD_{field.upper()}: " if field else ""
        raise UsageProblem(f"invalid configuration: {where}{error['msg']}") from None
    try:
        temporal_target(settings)  # the TLS files are readable: say so now, not at the first connection
    except TemporalSettingsError as exc:
        raise UsageProblem(f"invalid configuration: {exc}") from None
    return settings


def safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


@contextmanager
def database(settings: Settings) -> Iterator[sessionmaker[Session]]:
    """A session factory over the app database, refusing one that has no schema yet."""
    from alembic.runtime.migration import MigrationContext
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError

    from data.db import make_engine, make_session_factory

    url = settings.target_database_url
    parsed = make_url(url)
    no_schema = RuntimeProblem(
        f"the database {safe_url(url)} has no LoreGuard schema yet; run `loreguard migrate` or `loreguard up`"
    )
    if parsed.get_backend_name() == "sqlite" and parsed.database and not Path(parsed.database).exists():
        # Most often the stack keeps its state elsewhere: `migrate` here would make a second, empty database.
        raise RuntimeProblem(
            f"there is no database at {parsed.database} (state folder {settings.state_dir.resolve()}); if "
            "your stack runs with another state folder, set LOREGUARD_STATE_DIR (or LOREGUARD_DATABASE_URL) to "
            "its, else `loreguard up` or `loreguard migrate` creates this one"
        )
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            if MigrationContext.configure(conn).get_current_revision() is None:
                raise no_schema
        yield make_session_factory(engine)
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        raise RuntimeProblem(f"database {safe_url(url)}: {reason}") from exc
    finally:
        engine.dispose()


def unreachable(settings: Settings, error: BaseException | None = None) -> RuntimeProblem:
    """Temporal could not be reached: where, over what, why (the SDK's reason, shortened), and what to do."""
    secure = temporal_target(settings).secure
    how = "over TLS" if secure else "without TLS"
    why = f": {connect_reason(error, secure=secure)}" if error is not None else ""
    return RuntimeProblem(
        f"cannot reach Temporal at {settings.target_temporal_address} {how} "
        f"(namespace {settings.temporal_namespace}){why}; start the stack with `loreguard up` "
        "or check LOREGUARD_TEMPORAL_ADDRESS and the LOREGUARD_TEMPORAL_TLS_* / API key settings"
    )


@contextmanager
def operations(settings: Settings | None = None) -> Iterator[Context]:
    """The operations context of one command: settings, the database, a Temporal gateway (closed after) and
    the workers' processing (a dry run, a re-evaluation's preview).

    A refusal leaves with its exit status and message; an unreachable Temporal with status 1 and what to do.
    """
    settings = settings or load_settings()
    with database(settings) as sessions:
        ctx = Context.for_settings(settings, sessions, processing=processing)
        try:
            yield ctx
        except Refused as exc:
            problem = {2: UsageProblem, 3: NotAllowed}.get(exc.exit_status, RuntimeProblem)
            raise problem(exc.message) from exc
        except TemporalUnavailable as exc:
            raise unreachable(settings, exc) from exc
        finally:
            ctx.close()


def acting(settings: Settings, name: str | None = None) -> Actor:
    """Who the audit log names for this command: the OS user, or "os-user as NAME" with --actor NAME.

    --actor never stands alone, so a command cannot be recorded as `system` or as another person outright.
    Roles are LOREGUARD_CLI_ROLES (admin by default: whoever runs commands holds the database's credentials).
    """
    who = os_account()
    if name is not None:
        if not name.strip():
            raise UsageProblem("--actor must not be blank")
        if not name.strip().isprintable():
            raise UsageProblem(
                f"--actor {name.strip()!r} holds a line break or another control character; give one line"
            )
        who = f"{who} as {name.strip()}"
    try:
        return Actor(who, frozenset(settings.cli_roles))
    except Refused as exc:
        raise UsageProblem(exc.message) from None


def echo_json(value: Any) -> None:
    def default(obj: Any) -> Any:
        if isinstance(obj, datetime):
            return obj.isoformat()
        if isinstance(obj, Path):
            return str(obj)
        raise TypeError(f"cannot encode {type(obj).__name__}")

    click.echo(json.dumps(value, indent=2, default=default))


def when(value: datetime | None) -> str:
    return "" if value is None else value.strftime("%Y-%m-%d %H:%M:%S")


def print_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, title_justify="left", show_lines=False)
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*("" if cell is None else str(cell) for cell in row))
    console = Console()
    if not console.is_terminal:  # piped: no terminal width to fit, so do not fold cells
        console = Console(width=240)
    console.print(table)


@contextmanager
def progress(label: str, verb: str) -> Iterator[list[str]]:
    """`label... ready in 0.3 s (notes)`; notes are appended by the body."""
    click.echo(f"  {label}... ", nl=False)
    sys.stdout.flush()
    started = time.monotonic()
    notes: list[str] = []
    try:
        yield notes
    except KeyboardInterrupt:
        click.echo("interrupted")
        raise
    except BaseException:
        click.echo("failed")
        raise
    detail = f" ({', '.join(notes)})" if notes else ""
    click.echo(f"{verb} in {time.monotonic() - started:.1f} s{detail}")
