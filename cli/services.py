"""The long-running commands and set-up: `up`, `worker`, `dashboard`, `migrate`, `setup`."""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import os
import sys
import time
from collections.abc import Sequence
from contextlib import suppress
from pathlib import Path

import click

from cli.output import RuntimeProblem, UsageProblem, load_settings, safe_url, unreachable
from core.settings import Settings
from core.signin import auth_problems, read_auth
from orchestration.constants import ALL_QUEUES

WORKER_READY = "worker ready"  # `loreguard up` waits for this line in the worker's log


@click.command()
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
    """Run Temporal workers for the given task queues until Ctrl-C or SIGTERM.

    Either signal stops polling and gives running activities LOREGUARD_WORKER_SHUTDOWN_GRACE_SECONDS to
    finish (then they are cancelled and retried elsewhere); the worker then exits with status 0.
    """
    settings = load_settings()
    selected = tuple(dict.fromkeys(queues)) or ALL_QUEUES
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)  # the readiness check reads the migration head
    with suppress(KeyboardInterrupt):
        asyncio.run(serve_worker(settings, selected, supervisor_pid))
    click.echo("worker stopped", err=True)


async def serve_worker(settings: Settings, queues: Sequence[str], supervisor_pid: int | None) -> None:
    try:
        from workers.main import run_worker, stop_on_signals
    except ImportError as exc:
        raise RuntimeProblem(f"the worker code cannot be loaded: {exc}") from exc
    ready, stop = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(run_worker(settings, queues, ready=ready, stop=stop))
    # SIGTERM or Ctrl-C: stop polling and let running activities finish (graceful, exit 0); a second one
    # cancels at once.
    stop_on_signals(stop, task.cancel)
    watch = asyncio.create_task(stop_when_orphaned(supervisor_pid, stop)) if supervisor_pid else None
    ready_wait = asyncio.create_task(ready.wait())
    await asyncio.wait({task, ready_wait}, return_when=asyncio.FIRST_COMPLETED)
    if ready.is_set():
        click.echo(
            f"{WORKER_READY}: {', '.join(queues)} on {settings.target_temporal_address} "
            f"(namespace {settings.temporal_namespace}, pid {os.getpid()}, "
            f"shutdown grace {settings.worker_shutdown_grace_seconds:g} s)"
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
            raise unreachable(settings, exc) from exc
        raise
    finally:
        if watch is not None:
            watch.cancel()


async def stop_when_orphaned(supervisor_pid: int, stop: asyncio.Event) -> None:
    """`loreguard up` starts the worker in its own session; if `up` dies hard, the worker must not linger."""
    while os.getppid() == supervisor_pid:
        await asyncio.sleep(1.0)
    click.echo("the supervising `loreguard up` is gone; stopping", err=True)
    stop.set()


@click.command()
def dashboard() -> None:
    """Run the Streamlit dashboard (replaces this process).

    Without sign-in ([auth] in a Streamlit secrets file) it serves loopback only; outside development its
    cookie secret must be real. Both are checked here, before anything listens.
    """
    settings = load_settings()
    refuse_unsafe_dashboard(settings)
    command = streamlit_command(settings)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(command[0], command)


def dashboard_app() -> Path:
    """dashboard/app.py next to pages/: the installed package in development, else the source tree in cwd."""
    spec = importlib.util.find_spec("dashboard")  # found, not imported: the CLI does not load the dashboard
    roots = [Path(spec.origin).resolve().parent.parent] if spec and spec.origin else []
    for root in (*roots, Path.cwd()):
        if (root / "dashboard" / "app.py").is_file() and (root / "pages").is_dir():
            return root / "dashboard" / "app.py"
    raise RuntimeProblem("dashboard/app.py and pages/ not found; run from the LoreGuard source folder")


def refuse_unsafe_dashboard(settings: Settings) -> None:
    """Exit 2 with what to do when the dashboard would serve others without sign-in, or with a weak secret."""
    problems = auth_problems(
        read_auth(secrets_files(settings)),
        address=settings.dashboard_address,
        environment=settings.environment,
    )
    if problems:
        raise UsageProblem("; ".join(problems))


def secrets_files(settings: Settings) -> list[Path]:
    """The Streamlit secrets files the dashboard reads: LOREGUARD_DASHBOARD_SECRETS, else Streamlit's own places."""
    if settings.dashboard_secrets is not None:
        return [settings.dashboard_secrets.resolve()]
    app_dir = dashboard_app().parent
    return [Path.home() / ".streamlit" / "secrets.toml", Path.cwd() / ".streamlit" / "secrets.toml",
            app_dir / ".streamlit" / "secrets.toml"]  # fmt: skip


def streamlit_command(settings: Settings) -> list[str]:
    secrets = (
        ["--secrets.files", str(settings.dashboard_secrets.resolve())] if settings.dashboard_secrets else []
    )
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
        *secrets,
    ]


@click.command()
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


@click.command()
@click.option(
    "--wait",
    type=click.FloatRange(min=0),
    default=0.0,
    show_default=True,
    help="Seconds to keep retrying while Temporal or its namespace is not up yet (for containers).",
)
def setup(wait: float) -> None:
    """Prepare Temporal (search attributes, 30-day retention), the database, and the schedules (every source's
    refresh and the SLA monitor's); `up` does this itself."""
    settings = load_settings()
    asyncio.run(prepare_temporal(settings, wait=wait))
    click.echo(
        f"Temporal {settings.target_temporal_address}: search attributes registered, retention >= 30 days"
    )
    click.echo(
        f"{safe_url(settings.target_database_url)} at revision {apply_migrations(settings.target_database_url)}"
    )
    count = ensure_schedules(settings)
    click.echo(f"schedules: the SLA monitor's and {count} source schedule(s) as in the database")


def ensure_schedules(settings: Settings) -> int:
    """Every source's refresh schedule as the database says, the SLA monitor's schedule (without it no check
    runs, and the SLA alerts' dead-man's switch fires), orphans removed. Returns the number of sources."""
    from cli.output import database
    from operations import Context
    from operations import sources as source_ops
    from orchestration.gateway import TemporalUnavailable

    with database(settings) as sessions:
        ctx = Context.for_settings(settings, sessions)
        try:
            count, _ = source_ops.reconcile_schedules(ctx)
        except TemporalUnavailable as exc:
            raise unreachable(settings, exc) from exc
        finally:
            ctx.close()
    return count


async def prepare_temporal(settings: Settings, *, wait: float = 0.0) -> None:
    """Register the search attributes and raise the namespace's retention, retrying for `wait` seconds."""
    from temporalio.service import RPCError

    from orchestration.client import connect, ensure_retention, register_search_attributes

    deadline = time.monotonic() + wait
    while True:
        try:
            try:
                client = await connect(settings)
            except RuntimeError as exc:
                raise unreachable(settings, exc) from exc
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
