"""The `loreguard` command: run the embedded stack (`up`), a worker or the dashboard, and script operations."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click
from pydantic import ValidationError

from data.models import (
    BATCH_AWAITING_APPROVAL,
    BATCH_COMPLETED,
    BATCH_FAILED,
    BATCH_PENDING,
    BATCH_RETRYING,
    BATCH_RUNNING,
    SOURCE_KINDS,
)
from orchestration.constants import ALL_QUEUES
from orchestration.devserver import DevServer, free_port, port_open
from orchestration.settings import Settings

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker
    from temporalio.client import Client, WorkflowHandle

    from data.models import Batch

BATCH_STATUSES = (
    BATCH_PENDING,
    BATCH_RUNNING,
    BATCH_AWAITING_APPROVAL,
    BATCH_RETRYING,
    BATCH_COMPLETED,
    BATCH_FAILED,
)
DEMO_SOURCE = "demo-samples"
RETENTION = timedelta(days=30)
WORKER_READY = "worker ready"  # `loreguard up` waits for this line in the worker's log
STOP_TIMEOUT = 10.0
TEMPORAL = "Temporal dev server"


class UsageProblem(click.ClickException):
    """Bad input or configuration: exit status 2."""

    exit_code = 2


class RuntimeProblem(click.ClickException):
    """Something failed while doing the work: exit status 1."""

    exit_code = 1


# --- shared helpers --------------------------------------------------------------------------------------


def load_settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        error = exc.errors()[0]
        field = ".".join(str(part) for part in error["loc"])
        where = f"LOREGUARD_{field.upper()}: " if field else ""
        raise UsageProblem(f"invalid configuration: {where}{error['msg']}") from None


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
        raise no_schema
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


def unreachable(settings: Settings) -> RuntimeProblem:
    return RuntimeProblem(
        f"cannot reach Temporal at {settings.target_temporal_address} "
        f"(namespace {settings.temporal_namespace}); start the stack with `loreguard up` "
        "or set LOREGUARD_TEMPORAL_ADDRESS"
    )


async def temporal_client(settings: Settings) -> Client:
    from orchestration.client import connect

    try:
        return await connect(settings)
    except RuntimeError as exc:
        if "connect" in str(exc).lower():
            raise unreachable(settings) from exc
        raise


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


def package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("loreguard")
    except PackageNotFoundError:
        return "unknown"


# --- the command group -----------------------------------------------------------------------------------


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(version=package_version())
def cli() -> None:
    """LoreGuard Ops: a durable document pipeline on Temporal, with an operations dashboard.

    Configuration comes from LOREGUARD_* environment variables or a .env file.
    """


@cli.command()
@click.option("--no-demo", is_flag=True, help="Do not register the demo source on first start.")
@click.option(
    "--with-prometheus",
    is_flag=True,
    help="Also run Debian's prometheus binary scraping the worker and Temporal; the dashboard reads it.",
)
def up(no_demo: bool, with_prometheus: bool) -> None:
    """Run the whole stack on this machine until Ctrl-C: Temporal, worker, dashboard."""
    stack = Stack(load_settings(), with_prometheus=with_prometheus)
    code = stack.run(demo=not no_demo)
    if code:
        raise click.exceptions.Exit(code)


@cli.command()
@click.option(
    "--queue",
    "queues",
    multiple=True,
    type=click.Choice(ALL_QUEUES),
    metavar="NAME",
    help=f"Task queue to serve (repeatable); default: all of {', '.join(ALL_QUEUES)}.",
)
@click.option("--supervisor-pid", type=int, hidden=True, help="Stop when this parent process is gone.")
def worker(queues: tuple[str, ...], supervisor_pid: int | None) -> None:
    """Run Temporal workers for the given task queues until Ctrl-C or SIGTERM."""
    settings = load_settings()
    selected = tuple(dict.fromkeys(queues)) or ALL_QUEUES
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    with suppress(KeyboardInterrupt):
        asyncio.run(serve_worker(settings, selected, supervisor_pid))
    click.echo("worker stopped", err=True)


async def serve_worker(settings: Settings, queues: Sequence[str], supervisor_pid: int | None) -> None:
    try:
        from workers.main import run_worker
    except ImportError as exc:
        raise RuntimeProblem(f"the worker code cannot be loaded: {exc}") from exc
    loop = asyncio.get_running_loop()
    ready = asyncio.Event()
    task = asyncio.create_task(run_worker(settings, queues, ready=ready))
    loop.add_signal_handler(signal.SIGTERM, task.cancel)
    watch = asyncio.create_task(stop_when_orphaned(supervisor_pid, task)) if supervisor_pid else None
    ready_wait = asyncio.create_task(ready.wait())
    await asyncio.wait({task, ready_wait}, return_when=asyncio.FIRST_COMPLETED)
    if ready.is_set():
        click.echo(
            f"{WORKER_READY}: {', '.join(queues)} on {settings.target_temporal_address} "
            f"(namespace {settings.temporal_namespace}, pid {os.getpid()})"
        )
        sys.stdout.flush()
    ready_wait.cancel()
    try:
        await task
    except asyncio.CancelledError:
        if not task.cancelled():
            raise
    except RuntimeError as exc:
        if "client connect" in str(exc).lower():
            raise unreachable(settings) from exc
        raise
    finally:
        if watch is not None:
            watch.cancel()


async def stop_when_orphaned(supervisor_pid: int, task: asyncio.Task[None]) -> None:
    """`loreguard up` starts the worker in its own session; if `up` dies hard, the worker must not linger."""
    while os.getppid() == supervisor_pid:
        await asyncio.sleep(1.0)
    click.echo("the supervising `loreguard up` is gone; stopping", err=True)
    task.cancel()


@cli.command()
def dashboard() -> None:
    """Run the Streamlit dashboard (replaces this process)."""
    settings = load_settings()
    command = streamlit_command(settings)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(command[0], command)


def dashboard_app() -> Path:
    """dashboard/app.py next to pages/: the installed package in development, else the source tree in cwd."""
    import dashboard as dashboard_package

    for root in (Path(dashboard_package.__file__).resolve().parent.parent, Path.cwd()):
        if (root / "dashboard" / "app.py").is_file() and (root / "pages").is_dir():
            return root / "dashboard" / "app.py"
    raise RuntimeProblem("dashboard/app.py and pages/ not found; run from the LoreGuard source folder")


def streamlit_command(settings: Settings) -> list[str]:
    return [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(dashboard_app()),
        "--server.port",
        str(settings.dashboard_port),
        "--server.address",
        settings.dashboard_address,
        "--server.headless",
        "true",
        "--server.runOnSave",
        "false",
        "--browser.gatherUsageStats",
        "false",
    ]


@cli.command()
def migrate() -> None:
    """Apply the database migrations and print the revision."""
    settings = load_settings()
    url = settings.target_database_url
    click.echo(f"{safe_url(url)} at revision {apply_migrations(url)}")


def apply_migrations(url: str) -> str:
    from sqlalchemy.exc import SQLAlchemyError

    from data.migrate import current_revision, upgrade

    try:
        upgrade(url)
        return current_revision(url) or "none"
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        raise RuntimeProblem(f"cannot migrate {safe_url(url)}: {reason}") from exc


@cli.command()
@click.option(
    "--wait",
    type=click.FloatRange(min=0),
    default=0.0,
    show_default=True,
    help="Seconds to keep retrying while Temporal or its namespace is not up yet (for containers).",
)
def setup(wait: float) -> None:
    """Prepare Temporal (search attributes, 30-day retention) and the database; `up` does this itself."""
    settings = load_settings()
    asyncio.run(prepare_temporal(settings, wait=wait))
    click.echo(
        f"Temporal {settings.target_temporal_address}: search attributes registered, retention >= 30 days"
    )
    click.echo(
        f"{safe_url(settings.target_database_url)} at revision {apply_migrations(settings.target_database_url)}"
    )


async def prepare_temporal(settings: Settings, *, wait: float = 0.0) -> None:
    """Register the search attributes and raise the namespace's retention, retrying for `wait` seconds."""
    from temporalio.service import RPCError

    from orchestration.client import register_search_attributes

    deadline = time.monotonic() + wait
    while True:
        try:
            client = await temporal_client(settings)
            await ensure_retention(client, settings.temporal_namespace)
            await register_search_attributes(client, settings.temporal_namespace)
            return
        except (RuntimeProblem, RPCError) as exc:
            if time.monotonic() >= deadline:
                if isinstance(exc, RPCError):
                    raise RuntimeProblem(
                        f"Temporal at {settings.target_temporal_address}, namespace "
                        f"{settings.temporal_namespace}: {exc.message}"
                    ) from exc
                raise
            await asyncio.sleep(2.0)


async def ensure_retention(client: Client, namespace: str) -> None:
    """Closed batches stay visible for 30 days (the dev server's default is 24 h); never lowers it."""
    from google.protobuf.duration_pb2 import Duration
    from temporalio.api.namespace.v1 import NamespaceConfig
    from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest, UpdateNamespaceRequest

    described = await client.workflow_service.describe_namespace(
        DescribeNamespaceRequest(namespace=namespace)
    )
    if described.config.workflow_execution_retention_ttl.ToTimedelta() >= RETENTION:
        return
    ttl = Duration()
    ttl.FromTimedelta(RETENTION)
    await client.workflow_service.update_namespace(
        UpdateNamespaceRequest(
            namespace=namespace, config=NamespaceConfig(workflow_execution_retention_ttl=ttl)
        )
    )


# --- sources, refreshes, batches -------------------------------------------------------------------------


@cli.group()
def source() -> None:
    """Register and list sources."""


@source.command("add")
@click.argument("name")
@click.option("--kind", type=click.Choice(SOURCE_KINDS), required=True, help="What the location is.")
@click.option("--location", required=True, help="Folder path, feed URL or page URL.")
@click.option(
    "--interval",
    type=click.IntRange(min=60),
    default=3600,
    show_default=True,
    help="Seconds between scheduled refreshes.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the new source as JSON.")
def source_add(name: str, kind: str, location: str, interval: int, as_json: bool) -> None:
    """Register a source NAME."""
    from data import repository

    settings = load_settings()
    if not name.strip():
        raise UsageProblem("a source needs a name")
    location = checked_location(kind, location, settings)
    with database(settings) as sessions:
        try:
            with sessions.begin() as session:
                created = repository.create_source(
                    session, name=name, kind=kind, location=location, refresh_interval_seconds=interval
                )
                repository.record_audit(
                    session, actor=settings.operator_name, action="add_source", target=f"source:{created.id}"
                )
                source_id, source_name = created.id, created.name
        except ValueError as exc:  # DuplicateSourceName and the repository's own checks
            raise UsageProblem(str(exc)) from exc
        sync_source_schedule(settings, sessions, source_id)
    if as_json:
        echo_json(
            {"id": source_id, "name": source_name, "kind": kind, "location": location, "interval": interval}
        )
    else:
        click.echo(f"source {source_id} {source_name!r} added: {kind} {location}, every {interval} s")


def sync_source_schedule(settings: Settings, sessions: sessionmaker[Session], source_id: int) -> None:
    """Make the source's Temporal schedule match the database; a warning (not a failure) when Temporal is down:
    the change is saved and `loreguard up` reconciles every schedule on start."""
    from temporalio.service import RPCError

    from orchestration.schedules import sync_source_schedule as sync

    async def apply() -> None:
        await sync(await temporal_client(settings), sessions, source_id=source_id)

    try:
        asyncio.run(apply())
    except (RuntimeProblem, RPCError) as exc:
        reason = exc.message if isinstance(exc, RPCError | click.ClickException) else str(exc)
        click.echo(
            f"warning: the schedule of source {source_id} was not updated ({reason}); "
            "`loreguard up` will reconcile it",
            err=True,
        )


def change_source(ref: str, change: Callable[[Session, Any, str], str | None]) -> None:
    """Apply `change(session, source, actor)` to a source in one transaction, then sync its schedule."""
    from data import repository

    settings = load_settings()
    with database(settings) as sessions:
        with sessions.begin() as session:
            try:
                source = repository.find_source(session, ref=ref)
            except repository.NotFound as exc:
                raise UsageProblem(str(exc)) from exc
            source_id = source.id
            message = change(session, source, settings.operator_name)
        sync_source_schedule(settings, sessions, source_id)
    if message:
        click.echo(message)


def set_paused(paused: bool) -> Callable[[Session, Any, str], str | None]:
    def change(session: Session, source: Any, actor: str) -> str:
        from data import repository

        word = "paused" if paused else "resumed"
        if bool(source.paused) != paused:
            source.paused = paused
            action = "pause_source" if paused else "resume_source"
            repository.record_audit(session, actor=actor, action=action, target=f"source:{source.id}")
        return f"source {source.id} {source.name!r} {word}"

    return change


@source.command("pause")
@click.argument("source_ref", metavar="SOURCE")
def source_pause(source_ref: str) -> None:
    """Pause SOURCE's scheduled refreshes (id or name)."""
    change_source(source_ref, set_paused(True))


@source.command("resume")
@click.argument("source_ref", metavar="SOURCE")
def source_resume(source_ref: str) -> None:
    """Resume SOURCE's scheduled refreshes (id or name)."""
    change_source(source_ref, set_paused(False))


@source.command("set-interval")
@click.argument("source_ref", metavar="SOURCE")
@click.argument("seconds", type=click.IntRange(min=60))
def source_set_interval(source_ref: str, seconds: int) -> None:
    """Refresh SOURCE every SECONDS (at least 60) on its schedule."""

    def change(session: Session, source: Any, actor: str) -> str:
        from data import repository

        before = source.refresh_interval_seconds
        if before != seconds:
            source.refresh_interval_seconds = seconds
            repository.record_audit(
                session,
                actor=actor,
                action="set_interval",
                target=f"source:{source.id}",
                reason=f"{before} s -> {seconds} s",
            )
        return f"source {source.id} {source.name!r} refreshes every {seconds} s"

    change_source(source_ref, change)


@source.command("delete")
@click.argument("source_ref", metavar="SOURCE")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def source_delete(source_ref: str, yes: bool) -> None:
    """Delete SOURCE with its batches, documents and schedule (refused while a batch is in flight)."""
    from sqlalchemy import func, select

    from data.models import Batch

    in_flight = (BATCH_PENDING, BATCH_RUNNING, BATCH_RETRYING, BATCH_AWAITING_APPROVAL)

    def change(session: Session, source: Any, actor: str) -> str:
        from data import repository

        busy = session.scalar(
            select(func.max(Batch.id)).where(Batch.source_id == source.id, Batch.status.in_(in_flight))
        )
        if busy is not None:
            raise UsageProblem(f"source {source.name!r} has batch {busy} in flight; wait for it to finish")
        if not yes:
            click.confirm(
                f"Delete source {source.id} {source.name!r} with its batches and documents?", abort=True
            )
        name = source.name
        repository.delete_source(session, source_id=source.id)
        repository.record_audit(
            session,
            actor=actor,
            action="delete_source",
            target=f"source:{source.id}",
            reason=f"deleted {name!r}",
        )
        return f"source {source.id} {name!r} deleted"

    change_source(source_ref, change)


def checked_location(kind: str, location: str, settings: Settings) -> str:
    """The location as it will be stored (folders absolute), or a usage error saying what is wrong with it."""
    from workers.stages.folders import folder_roots
    from workers.stages.gather import validate_location

    try:
        return validate_location(kind, location, folder_roots=folder_roots(settings))
    except ValueError as exc:
        raise UsageProblem(str(exc)) from exc


@source.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def source_list(as_json: bool) -> None:
    """List sources with their batch totals."""
    from data import repository

    with database(load_settings()) as sessions, sessions() as session:
        sources = repository.list_sources(session)
    if as_json:
        echo_json([dataclasses.asdict(s) for s in sources])
        return
    if not sources:
        click.echo("no sources yet; add one with `loreguard source add NAME --kind folder --location PATH`")
        return
    print_table(
        "Sources",
        (
            "id",
            "name",
            "kind",
            "location",
            "every (s)",
            "paused",
            "batches",
            "stored",
            "failed",
            "last refresh (UTC)",
            "last status",
        ),
        [
            (
                s.id,
                s.name,
                s.kind,
                s.location,
                s.refresh_interval_seconds,
                "yes" if s.paused else "",
                s.batches,
                s.documents,
                s.errors,
                when(s.last_refresh),
                s.last_status,
            )
            for s in sources
        ],
    )


@cli.command()
@click.argument("source_ref", metavar="SOURCE")
@click.option("--wait", is_flag=True, help="Wait for the batch to finish and print its totals.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def refresh(source_ref: str, wait: bool, as_json: bool) -> None:
    """Start a refresh (a batch) of SOURCE, given by id or name."""
    settings = load_settings()
    with database(settings) as sessions:
        outcome = asyncio.run(run_refresh(settings, sessions, source_ref, wait))
    if as_json:
        echo_json(outcome)
    else:
        click.echo(
            f"batch {outcome['batch_id']} started for source {outcome['source']!r} "
            f"(workflow {outcome['workflow_id']})"
        )
        if wait:
            line = (
                f"batch {outcome['batch_id']} {outcome['status']}: {outcome['total']} documents, "
                f"{outcome['stored']} stored, {outcome['failed']} failed"
            )
            if outcome.get("error_message"):
                line += f" ({outcome['error_type']}: {outcome['error_message']})"
            click.echo(line)
            if outcome["status"] == BATCH_AWAITING_APPROVAL:
                click.echo("the batch waits for an operator to approve a retry or reject it")
    if wait and outcome["status"] != BATCH_COMPLETED:
        raise click.exceptions.Exit(1)


async def run_refresh(
    settings: Settings, sessions: sessionmaker[Session], source_ref: str, wait: bool
) -> dict[str, Any]:
    from data import repository
    from orchestration.client import start_refresh

    with sessions() as session:
        try:
            found = repository.find_source(session, ref=source_ref)
        except repository.NotFound as exc:
            raise UsageProblem(str(exc)) from exc
        source_id, source_name = found.id, found.name
    client = await temporal_client(settings)  # before any batch row is written
    batch_id, handle = await start_refresh(
        client, sessions, source_id=source_id, trigger="manual", actor=settings.operator_name
    )
    outcome: dict[str, Any] = {
        "batch_id": batch_id,
        "workflow_id": handle.id,
        "source_id": source_id,
        "source": source_name,
    }
    if not wait:
        return outcome
    batch = await wait_for_batch(handle, sessions, batch_id)
    outcome.update(
        status=batch.status,
        total=batch.total,
        stored=batch.stored,
        failed=batch.failed,
        error_type=batch.error_type,
        error_message=batch.error_message,
    )
    return outcome


async def wait_for_batch(
    handle: WorkflowHandle[Any, Any], sessions: sessionmaker[Session], batch_id: int
) -> Batch:
    """The batch once its workflow has finished, or once it stopped to wait for an operator's decision."""
    from temporalio.client import WorkflowFailureError

    from data import repository

    result = asyncio.create_task(handle.result())
    try:
        while True:
            done, _ = await asyncio.wait({result}, timeout=1.0)
            if done:
                with suppress(WorkflowFailureError):  # the batch row says what failed
                    result.result()
            with sessions() as session:
                batch = repository.get_batch(session, batch_id=batch_id)
            if done or batch.status == BATCH_AWAITING_APPROVAL:
                return batch
    finally:
        result.cancel()


@cli.command()
@click.option("--source", "source_ref", metavar="SOURCE", help="Only batches of this source (id or name).")
@click.option("--status", type=click.Choice(BATCH_STATUSES), help="Only batches in this status.")
@click.option("--limit", type=click.IntRange(1, 10_000), default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def batches(source_ref: str | None, status: str | None, limit: int, as_json: bool) -> None:
    """List the latest batches, newest first."""
    from data import repository

    with database(load_settings()) as sessions, sessions() as session:
        source_id = None
        if source_ref is not None:
            try:
                source_id = repository.find_source(session, ref=source_ref).id
            except repository.NotFound as exc:
                raise UsageProblem(str(exc)) from exc
        rows = repository.list_batches(session, source_id=source_id, status=status, limit=limit)
    if as_json:
        echo_json([dataclasses.asdict(row) for row in rows])
        return
    if not rows:
        click.echo("no batches yet; start one with `loreguard refresh SOURCE`")
        return
    print_table(
        "Batches",
        ("id", "source", "status", "trigger", "total", "stored", "failed", "created (UTC)", "took", "error"),
        [
            (
                b.id,
                b.source_name,
                b.status,
                b.trigger,
                b.total,
                b.stored,
                b.failed,
                when(b.created_at),
                took(b.started_at, b.finished_at),
                b.error_type or "",
            )
            for b in rows
        ],
    )


def took(started: datetime | None, finished: datetime | None) -> str:
    if started is None or finished is None:
        return ""
    return f"{(finished - started).total_seconds():.1f} s"


# --- decisions on failed batches -------------------------------------------------------------------------


@cli.command()
@click.argument("batch_id", metavar="BATCH", type=click.IntRange(min=1))
@click.option("--reason", default="", help="Why (optional for an approval).")
@click.option("--actor", help="Who decides (default: LOREGUARD_OPERATOR_NAME).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def approve(batch_id: int, reason: str, actor: str | None, as_json: bool) -> None:
    """Approve a retry of failed BATCH, which is awaiting a decision."""
    run_decision(batch_id, approve=True, reason=reason, actor=actor, as_json=as_json)


@cli.command()
@click.argument("batch_id", metavar="BATCH", type=click.IntRange(min=1))
@click.option("--reason", required=True, help="Why the batch is rejected (required).")
@click.option("--actor", help="Who decides (default: LOREGUARD_OPERATOR_NAME).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def reject(batch_id: int, reason: str, actor: str | None, as_json: bool) -> None:
    """Reject failed BATCH with a reason: it ends failed."""
    if not reason.strip():
        raise UsageProblem("a rejection needs a reason (--reason TEXT)")
    run_decision(batch_id, approve=False, reason=reason, actor=actor, as_json=as_json)


def run_decision(batch_id: int, *, approve: bool, reason: str, actor: str | None, as_json: bool) -> None:
    """Send the decision as a Temporal Update; exit 1 with the refusal when the batch does not accept it."""
    from data import repository
    from orchestration.client import DecisionRefused, decide

    settings = load_settings()
    who = (actor if actor is not None else settings.operator_name).strip()
    if not who:
        raise UsageProblem("--actor must not be blank")

    async def send(sessions: sessionmaker[Session]) -> dict[str, Any]:
        client = await temporal_client(settings)
        result = await decide(
            client, sessions, batch_id=batch_id, approve=approve, actor=who, reason=reason.strip()
        )
        return dataclasses.asdict(result)

    with database(settings) as sessions:
        with sessions() as session:
            try:
                repository.get_batch(session, batch_id=batch_id)
            except repository.NotFound as exc:
                raise UsageProblem(str(exc)) from exc
        try:
            outcome = asyncio.run(send(sessions))
        except DecisionRefused as exc:
            if as_json:
                echo_json({"batch_id": batch_id, "accepted": False, "refused": str(exc)})
                raise click.exceptions.Exit(1) from exc
            raise RuntimeProblem(f"refused: {exc}") from exc
    if as_json:
        echo_json({**outcome, "accepted": True, "actor": who})
    else:
        click.echo(f"batch {batch_id} {outcome['decision']} by {who}: {outcome['message']}")


# --- `loreguard up`: the embedded stack, supervised -------------------------------------------------------


@dataclasses.dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes]
    log: Path
    log_offset: int  # where this run's output starts in the (appended) log


class Stack:
    """Starts Temporal, the worker and the dashboard in order, watches them, and stops them all on exit."""

    def __init__(self, settings: Settings, *, with_prometheus: bool = False) -> None:
        self.settings = settings
        self.with_prometheus = with_prometheus
        self.prometheus_url: str | None = None  # set for the dashboard once a local Prometheus runs
        self.temporal_metrics_port: int | None = None
        self.state_dir = settings.state_dir.resolve()
        self.log_dir = self.state_dir / "logs"
        self.children: list[Child] = []
        self.address = settings.target_temporal_address
        self.started_temporal = False
        self.hurry = False

    def run(self, *, demo: bool) -> int:
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):  # SIGINT too: it may arrive ignored
            signal.signal(signum, interrupt)
        try:
            self.start(demo=demo)
            return self.supervise()
        except KeyboardInterrupt:
            click.echo("\nstopping...")
            return 0
        finally:
            self.stop()

    # start-up ----------------------------------------------------------------------------------------

    def start(self, *, demo: bool) -> None:
        settings = self.settings
        self.log_dir.mkdir(parents=True, exist_ok=True)
        click.echo(f"LoreGuard state in {self.state_dir}")
        self.check_ports()
        self.start_temporal()
        with progress("registering search attributes and 30-day retention", "done"):
            asyncio.run(prepare_temporal(settings))
        with progress("applying database migrations", "done") as note:
            note.append(f"revision {apply_migrations(settings.target_database_url)}")
        self.start_worker()
        if self.with_prometheus:
            self.start_prometheus()
        self.start_dashboard()
        self.print_urls()
        if demo:
            self.ensure_demo()
        self.ensure_schedules()
        click.echo("Press Ctrl-C to stop.")

    def temporal_running(self) -> bool:
        host, _, port = self.address.rpartition(":")
        return port_open(host, int(port))

    def check_ports(self) -> None:
        """Refuse to start anything when a port we would bind is taken."""
        taken = {"LOREGUARD_DASHBOARD_PORT": (self.dashboard_host(), self.settings.dashboard_port)}
        if not self.temporal_running():
            taken["LOREGUARD_TEMPORAL_UI_PORT"] = ("127.0.0.1", self.settings.temporal_ui_port)
        for variable, (host, port) in taken.items():
            if port_open(host, port):
                raise RuntimeProblem(f"port {port} on {host} is in use; choose another with {variable}")

    def start_temporal(self) -> None:
        if self.temporal_running():
            click.echo(f"  Temporal already listening on {self.address}; using it")
            return
        host, _, port = self.address.rpartition(":")
        if host not in ("127.0.0.1", "localhost"):
            raise RuntimeProblem(
                f"Temporal at {self.address} is not reachable (`up` only starts a local one)"
            )
        server = DevServer(
            self.state_dir / "temporal.db",
            port=int(port),
            ui_port=self.settings.temporal_ui_port,
            log_file=self.log_dir / "temporal.log",
        )
        self.temporal_metrics_port = server.metrics_port
        with progress(f"starting Temporal dev server on {self.address}", "ready") as note:
            child = self.spawn(TEMPORAL, server.command(), server.log_file)
            server.process = child.process
            try:
                server.wait_ready(30.0)
            except (RuntimeError, TimeoutError) as exc:
                raise self.failure(child, str(exc)) from None
            note.append(f"pid {child.process.pid}")
        self.started_temporal = True

    def start_worker(self) -> None:
        command = [sys.executable, "-m", "orchestration.cli", "worker", "--supervisor-pid", str(os.getpid())]
        with progress("starting worker on all task queues", "ready") as note:
            child = self.spawn("worker", command, self.log_dir / "worker.log")
            self.wait_until(
                child, lambda: WORKER_READY in read_new(child.log, child.log_offset), 120.0, "to report ready"
            )
            note.append(f"pid {child.process.pid}")

    def start_prometheus(self) -> None:
        """Debian's prometheus on a generated config (worker + Temporal), or how to install it."""
        from orchestration import prometheus as prom

        if prom.prometheus_binary() is None:
            click.echo(f"  prometheus is not installed; continuing without it. Install: {prom.INSTALL_HINT}")
            return
        s = self.settings
        folder = self.state_dir / "prometheus"
        config = prom.write_local_config(
            folder,
            worker_targets=[f"127.0.0.1:{s.health_port}"] if s.health_port > 0 else [],
            sdk_targets=[f"127.0.0.1:{s.metrics_port}"] if s.metrics_port else [],
            temporal_targets=[f"127.0.0.1:{self.temporal_metrics_port}"]
            if self.temporal_metrics_port
            else [],
        )
        port = s.prometheus_port if not port_open("127.0.0.1", s.prometheus_port) else free_port()
        server = prom.PrometheusServer(config, folder / "data", port, self.log_dir / "prometheus.log")
        with progress(f"starting Prometheus on {server.url}", "ready") as note:
            child = self.spawn("prometheus", server.command(), server.log_file)
            self.wait_until(child, lambda: prom.ready(server.url), 60.0, "to answer on /-/ready")
            note.append(f"pid {child.process.pid}")
        self.prometheus_url = server.url

    def start_dashboard(self) -> None:
        import httpx

        health = f"http://{self.dashboard_host()}:{self.settings.dashboard_port}/_stcore/health"

        def healthy() -> bool:
            try:
                return httpx.get(health, timeout=1.0, trust_env=False).status_code == 200
            except httpx.HTTPError:
                return False

        command = [sys.executable, "-m", "orchestration.cli", "dashboard"]
        with progress("starting dashboard", "ready") as note:
            child = self.spawn("dashboard", command, self.log_dir / "dashboard.log")
            self.wait_until(child, healthy, 120.0, "to answer on /_stcore/health")
            note.append(f"pid {child.process.pid}")

    def dashboard_host(self) -> str:
        address = self.settings.dashboard_address
        return "127.0.0.1" if address in ("0.0.0.0", "", "::") else address

    def spawn(self, name: str, command: list[str], log: Path) -> Child:
        env = dict(os.environ)
        env.update(
            LOREGUARD_STATE_DIR=str(self.state_dir),
            LOREGUARD_DATABASE_URL=self.settings.target_database_url,
            LOREGUARD_TEMPORAL_ADDRESS=self.address,
            PYTHONUNBUFFERED="1",
        )
        if self.prometheus_url:
            env["LOREGUARD_PROMETHEUS_URL"] = self.prometheus_url
        with log.open("ab") as out:
            out.write(f"\n--- {datetime.now().isoformat(timespec='seconds')} {' '.join(command)}\n".encode())
            out.flush()
            offset = out.tell()
            # A session of its own: Ctrl-C reaches only `up`, which then stops the children in order.
            process = subprocess.Popen(
                command,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                start_new_session=True,
            )
        child = Child(name, process, log, offset)
        self.children.append(child)
        return child

    def wait_until(self, child: Child, check: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            if child.process.poll() is not None:
                raise self.failure(child, f"{child.name} exited with status {child.process.returncode}")
            if time.monotonic() > deadline:
                raise self.failure(child, f"{child.name} did not start within {timeout:.0f} s {what}")
            time.sleep(0.1)

    def failure(self, child: Child, message: str) -> RuntimeProblem:
        return RuntimeProblem(f"{message}; last lines of {child.log}:\n{tail(child.log, child.log_offset)}")

    def print_urls(self) -> None:
        s = self.settings
        ui = (
            f"http://127.0.0.1:{s.temporal_ui_port}"
            if self.started_temporal
            else "(the existing server's UI)"
        )
        click.echo("\nLoreGuard is running:")
        for label, value in (
            ("dashboard", f"http://{self.dashboard_host()}:{s.dashboard_port}"),
            ("Temporal UI", ui),
            ("Temporal frontend", f"{self.address} (namespace {s.temporal_namespace})"),
            ("database", safe_url(s.target_database_url)),
            ("logs", f"{self.log_dir}/"),
        ):
            click.echo(f"  {label:<18} {value}")
        if s.health_port > 0:
            click.echo(
                f"  {'worker health':<18} http://127.0.0.1:{s.health_port}/health/ready (and /metrics)"
            )
        if self.prometheus_url:
            click.echo(f"  {'Prometheus':<18} {self.prometheus_url}")
        click.echo("")

    def ensure_demo(self) -> None:
        """On first start (no sources at all), register the sample folder and run one batch over it."""
        import data
        from data import repository

        samples = (Path(data.__file__).resolve().parent / "samples").resolve()
        with database(self.settings) as sessions:
            with sessions() as session:
                if repository.list_sources(session):
                    click.echo("sources already registered; no demo this time")
                    return
            with sessions.begin() as session:
                demo = repository.create_source(
                    session, name=DEMO_SOURCE, kind="folder", location=str(samples)
                )
                repository.record_audit(
                    session,
                    actor=self.settings.operator_name,
                    action="add_source",
                    target=f"source:{demo.id}",
                )
                source_id = demo.id
            batch_id, workflow_id = asyncio.run(self.start_demo_batch(sessions, source_id))
        click.echo(
            f"demo: source {DEMO_SOURCE!r} over {samples}; batch {batch_id} started (workflow {workflow_id})"
        )

    def ensure_schedules(self) -> None:
        """Every source has its refresh schedule (interval, paused as in the database), the SLA monitor its own."""
        from orchestration.schedules import ensure_all_schedules

        async def ensure(sessions: sessionmaker[Session]) -> tuple[int, list[int]]:
            return await ensure_all_schedules(await temporal_client(self.settings), sessions, self.settings)

        with (
            progress("checking schedules (sources, SLA monitor)", "done") as note,
            database(self.settings) as db,
        ):
            count, orphans = asyncio.run(ensure(db))
            note.append(
                f"{count} source schedule(s)" + (f", {len(orphans)} orphan(s) removed" if orphans else "")
            )

    async def start_demo_batch(self, sessions: sessionmaker[Session], source_id: int) -> tuple[int, str]:
        from orchestration.client import start_refresh

        client = await temporal_client(self.settings)
        batch_id, handle = await start_refresh(
            client, sessions, source_id=source_id, trigger="startup", actor=self.settings.operator_name
        )
        return batch_id, handle.id

    # running and stopping -------------------------------------------------------------------------------

    def supervise(self) -> int:
        while True:
            for child in self.children:
                if child.process.poll() is not None:
                    report = self.failure(
                        child,
                        f"{child.name} (pid {child.process.pid}) exited unexpectedly "
                        f"with status {child.process.returncode}",
                    )
                    click.echo(f"Error: {report.message}\nstopping everything", err=True)
                    return 1
            time.sleep(0.5)

    def stop(self) -> None:
        signal.signal(signal.SIGINT, self.hurry_up)
        signal.signal(signal.SIGTERM, self.hurry_up)
        others = [c for c in self.children if c.name != TEMPORAL]
        temporal = [c for c in self.children if c.name == TEMPORAL]
        for group in (others, temporal):  # Temporal last: the worker shuts down against it
            for child in group:
                if child.process.poll() is None:
                    child.process.terminate()
            for child in group:
                self.reap(child)

    def reap(self, child: Child) -> None:
        deadline = time.monotonic() + STOP_TIMEOUT
        while child.process.poll() is None and time.monotonic() < deadline and not self.hurry:
            time.sleep(0.05)
        if child.process.poll() is None:
            click.echo(f"{child.name} did not stop in time; killing it", err=True)
        with suppress(ProcessLookupError, PermissionError):
            os.killpg(child.process.pid, signal.SIGKILL)  # the child and anything it started
        child.process.wait()
        click.echo(f"stopped {child.name} (pid {child.process.pid})")

    def hurry_up(self, signum: int, frame: object) -> None:
        self.hurry = True


def interrupt(signum: int, frame: object) -> NoReturn:
    raise KeyboardInterrupt


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


def read_new(path: Path, offset: int) -> str:
    try:
        with path.open("rb") as f:
            f.seek(offset)
            return f.read().decode(errors="replace")
    except FileNotFoundError:
        return ""


def tail(path: Path, offset: int = 0, lines: int = 20) -> str:
    size = path.stat().st_size if path.exists() else 0
    text = read_new(path, max(offset, size - 16_384))
    return "\n".join(f"    {line}" for line in text.splitlines()[-lines:])


# --- entry point -----------------------------------------------------------------------------------------


def run(args: Sequence[str] | None = None) -> int:
    """Run the CLI and return its exit status instead of exiting."""
    try:
        result = cli.main(
            args=list(args) if args is not None else None, prog_name="loreguard", standalone_mode=False
        )
        return result if isinstance(result, int) else 0
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except (click.exceptions.Abort, KeyboardInterrupt):
        click.echo("interrupted", err=True)
        return 130
    except BrokenPipeError:
        return 1
    except Exception:
        traceback.print_exc()
        return 1


def main() -> NoReturn:
    """Console-script entry point: exit with the command's own status, every time.

    The Temporal SDK can abort at interpreter finalisation (PyGILState_Release, status 134) after the work is
    done, so this flushes the output and leaves with os._exit, skipping finalisation.
    """
    code = run()
    for stream in (sys.stdout, sys.stderr):
        with suppress(Exception):
            stream.flush()
    os._exit(code)


if __name__ == "__main__":
    main()
