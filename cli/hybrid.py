"""`loreguard celery-worker`: the Celery worker of the Temporal + Celery hybrid, and the broker check `up` uses."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from typing import Any

import click

from cli.output import RuntimeProblem, load_settings
from core.settings import Settings

CELERY_READY = "celery worker ready"  # `loreguard up --with-celery` waits for this line in the worker's log
POOLS = ("prefork", "threads", "solo")


@click.command("celery-worker")
@click.option(
    "--concurrency",
    type=click.IntRange(min=0),
    default=0,
    help="Processes (or threads); default LOREGUARD_CELERY_CONCURRENCY, else one per core.",
)
@click.option(
    "--pool",
    type=click.Choice(POOLS),
    default="prefork",
    show_default=True,
    help="prefork: one process per core (CPU-bound stages).",
)
@click.option("--supervisor-pid", type=int, hidden=True, help="Stop when this parent process is gone.")
def celery_worker(concurrency: int, pool: str, supervisor_pid: int | None) -> None:
    """Run a Celery worker for the processing stages (LOREGUARD_PROCESSING_BACKEND=celery) until SIGTERM."""
    settings = load_settings()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    check_broker(settings)
    try:
        from celery.signals import worker_ready

        from workers.celery_tasks import run_celery_worker
    except ImportError as exc:
        raise RuntimeProblem(f"the Celery worker code cannot be loaded: {exc}") from exc

    def announce(**_: Any) -> None:
        click.echo(
            f"{CELERY_READY}: queue {settings.celery_queue} on {broker_label(settings)} (pid {os.getpid()})"
        )
        sys.stdout.flush()

    worker_ready.connect(announce, weak=False)
    if supervisor_pid:
        threading.Thread(target=_stop_when_orphaned, args=(supervisor_pid,), daemon=True).start()
    run_celery_worker(settings, concurrency=concurrency, pool=pool)
    click.echo("celery worker stopped", err=True)


def _stop_when_orphaned(supervisor_pid: int) -> None:
    """`loreguard up` starts this worker in its own session; if `up` dies hard, the worker must not linger."""
    while os.getppid() == supervisor_pid:
        time.sleep(1.0)
    os.kill(os.getpid(), signal.SIGTERM)  # Celery's warm shutdown: finish the tasks in hand


def broker_label(settings: Settings) -> str:
    from orchestration.celery_app import safe_broker_url

    return safe_broker_url(settings.celery_broker_url)


def check_broker(settings: Settings, timeout: float = 3.0) -> None:
    """Exit 1 with what to do when the broker does not answer (rather than retrying quietly for ever)."""
    from orchestration.celery_app import make_celery_app

    app = make_celery_app(settings)
    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=timeout)
    except Exception as exc:
        raise RuntimeProblem(
            f"the Celery broker {broker_label(settings)} does not answer ({type(exc).__name__}: {exc}); "
            "start Redis or RabbitMQ, or set LOREGUARD_CELERY_BROKER_URL"
        ) from None
