"""`loreguard up`: the embedded stack (Temporal dev server, worker, dashboard, optional Prometheus), supervised."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import NoReturn

import click

from cli.devserver import DevServer, free_port, port_open
from cli.output import RuntimeProblem, acting, database, progress, safe_url
from cli.processes import stop_process
from cli.services import (
    WORKER_READY,
    apply_migrations,
    load_settings,
    prepare_temporal,
    refuse_unsafe_dashboard,
    secrets_files,
)
from core.settings import Settings
from core.signin import read_auth
from core.vocabulary import SourceKind
from data import repository
from operations import Context
from operations import batches as batch_ops
from operations import sources as source_ops

DEMO_SOURCE = "demo-samples"
STOP_TIMEOUT = 10.0
TEMPORAL = "Temporal dev server"
RESTARTABLE = ("worker", "dashboard")  # a crash of these is restarted; of Temporal or Prometheus, stops `up`
BACKOFF_FIRST = 1.0  # seconds before the first restart, doubled for each recent one
BACKOFF_MAX = 30.0


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
        self.restarts: dict[str, list[float]] = {name: [] for name in RESTARTABLE}  # monotonic times

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
        refuse_unsafe_dashboard(settings)  # before anything starts
        self.check_ports()
        self.start_temporal()
        with progress("registering search attributes and 30-day retention", "done"):
            asyncio.run(prepare_temporal(settings))
        with progress("applying database migrations", "done") as note:
            note.append(f"revision {apply_migrations(settings.target_database_url)}")
        if settings.processing_backend == "celery":
            self.start_celery_worker()  # first: the Temporal worker hands it documents from its first chunk
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
        command = [sys.executable, "-m", "cli.main", "worker", "--supervisor-pid", str(os.getpid())]
        with progress("starting worker on all task queues", "ready") as note:
            child = self.spawn("worker", command, self.log_dir / "worker.log")
            self.wait_until(
                child, lambda: WORKER_READY in read_new(child.log, child.log_offset), 120.0, "to report ready"
            )
            note.append(f"pid {child.process.pid}")

    def start_celery_worker(self) -> None:
        from cli.hybrid import CELERY_READY, broker_label, check_broker

        check_broker(self.settings)
        command = [sys.executable, "-m", "cli.main", "celery-worker", "--supervisor-pid", str(os.getpid())]
        with progress(f"starting Celery worker on {broker_label(self.settings)}", "ready") as note:
            child = self.spawn("celery worker", command, self.log_dir / "celery-worker.log")
            self.wait_until(
                child, lambda: CELERY_READY in read_new(child.log, child.log_offset), 120.0, "to report ready"
            )
            note.append(f"pid {child.process.pid}")

    def start_prometheus(self) -> None:
        """Debian's prometheus on a generated config (worker + Temporal), or how to install it."""
        from cli import prometheus as prom

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

        command = [sys.executable, "-m", "cli.main", "dashboard"]
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
            LOREGUARD_PROCESSING_BACKEND=self.settings.processing_backend,  # `--with-celery` sets it
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
        if s.processing_backend == "celery":
            from cli.hybrid import broker_label

            click.echo(f"  {'Celery broker':<18} {broker_label(s)} (queue {s.celery_queue})")
        sign_in, warning = self.sign_in_state()
        click.echo(f"  {'sign-in':<18} {sign_in}")
        if warning:
            click.echo(f"  warning: {warning}")
        click.echo("")

    def sign_in_state(self) -> tuple[str, str | None]:
        """Whether the dashboard signs people in, and a warning when no signed-in person would be an admin."""
        s = self.settings
        if read_auth(secrets_files(s)) is None:
            return "off: the dashboard serves this machine only, everyone as a local admin", None
        with database(s) as sessions, sessions() as session:
            granted = [g.subject for g in repository.list_grants(session) if g.role == "admin"]
        admins = len(s.admins) + len(granted)
        if admins:
            return f"on (OpenID Connect); {admins} admin(s) by LOREGUARD_ADMINS or granted on Users", None
        return "on (OpenID Connect)", (
            "no signed-in person is an admin (LOREGUARD_ADMINS is empty and nobody was granted admin): only "
            "people whose provider's claims say admin can assign roles; set LOREGUARD_ADMINS to your e-mail"
        )

    def ensure_demo(self) -> None:
        """On first start (no sources at all), register the sample folder and run one batch over it."""
        samples = demo_folder()
        with database(self.settings) as sessions:
            with sessions() as session:
                if repository.list_sources(session, limit=1):
                    click.echo("sources already registered; no demo this time")
                    return
            ctx = Context.for_settings(self.settings, sessions)
            try:
                actor = acting(self.settings)
                draft = source_ops.check_source(
                    ctx, name=DEMO_SOURCE, kind=SourceKind.FOLDER, location=str(samples), interval=3600
                )
                source_ops.register_source(actor, ctx, draft)
                started = batch_ops.refresh_source(actor, ctx, DEMO_SOURCE, trigger="startup")
            finally:
                ctx.close()
        click.echo(
            f"demo: source {DEMO_SOURCE!r} over {samples}; batch {started.batch_id} started "
            f"(workflow {started.workflow_id})"
        )

    def ensure_schedules(self) -> None:
        """Every source has its refresh schedule (interval, paused as in the database), the SLA monitor its own."""
        with (
            progress("checking schedules (sources, SLA monitor)", "done") as note,
            database(self.settings) as sessions,
        ):
            ctx = Context.for_settings(self.settings, sessions)
            try:
                count, orphans = source_ops.reconcile_schedules(ctx)
            finally:
                ctx.close()
            note.append(
                f"{count} source schedule(s)" + (f", {len(orphans)} orphan(s) removed" if orphans else "")
            )

    # running and stopping -------------------------------------------------------------------------------

    def supervise(self) -> int:
        """Watch the children: restart a crashed worker or dashboard (with backoff); anything else, or too
        many restarts within the window, stops everything with status 1."""
        while True:
            for child in list(self.children):
                if child.process.poll() is None:
                    continue
                crashed = (
                    f"{child.name} (pid {child.process.pid}) exited unexpectedly "
                    f"with status {child.process.returncode}"
                )
                if child.name not in RESTARTABLE:
                    return self.give_up(child, crashed)
                if not self.restart(child, crashed):
                    return 1
            time.sleep(0.5)

    def give_up(self, child: Child, message: str) -> int:
        report = self.failure(child, message)
        click.echo(f"Error: {report.message}\nstopping everything", err=True)
        return 1

    def restart(self, child: Child, crashed: str) -> bool:
        """Start a crashed worker or dashboard again after a backoff; False when it crashed too often."""
        s = self.settings
        now = time.monotonic()
        window = s.supervisor_restart_window_seconds
        recent = [t for t in self.restarts[child.name] if now - t < window]
        if len(recent) >= s.supervisor_max_restarts:
            self.give_up(
                child,
                f"{crashed}; restarted {len(recent)} time(s) within {window:g} s "
                f"(LOREGUARD_SUPERVISOR_MAX_RESTARTS={s.supervisor_max_restarts}): giving up",
            )
            return False
        delay = min(BACKOFF_MAX, BACKOFF_FIRST * 2 ** len(recent))
        click.echo(
            f"{crashed}; restarting {child.name} in {delay:g} s "
            f"(restart {len(recent) + 1} of at most {s.supervisor_max_restarts} within {window:g} s; "
            f"see {child.log})",
            err=True,
        )
        # Whatever the crashed process left in its session (a worker's CPU pool) goes with it.
        stop_process(child.process, timeout=0, group=True, terminate=False)
        self.children.remove(child)
        time.sleep(delay)  # Ctrl-C here still stops everything (KeyboardInterrupt reaches run())
        self.restarts[child.name] = [*recent, time.monotonic()]
        try:
            if child.name == "worker":
                self.start_worker()
            else:
                self.start_dashboard()
        except RuntimeProblem as exc:  # it died again while starting: the next round counts it
            click.echo(f"Error: {exc.message}", err=True)
        return True

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
        timeout = STOP_TIMEOUT
        if child.name == "worker" and child.process.poll() is None:
            # SIGTERM lets the worker's running activities finish: wait for its grace period, not less.
            timeout = max(STOP_TIMEOUT, self.settings.worker_shutdown_grace_seconds + 5)
            click.echo(
                f"waiting up to {timeout:g} s for the worker's running activities (Ctrl-C again: stop at once)"
            )
        graceful = stop_process(
            child.process, timeout=timeout, group=True, hurry=lambda: self.hurry, terminate=False
        )
        if not graceful:
            click.echo(f"{child.name} did not stop in time; killed it", err=True)
        click.echo(f"stopped {child.name} (pid {child.process.pid})")

    def hurry_up(self, signum: int, frame: object) -> None:
        self.hurry = True


def interrupt(signum: int, frame: object) -> NoReturn:
    raise KeyboardInterrupt


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


def demo_folder() -> Path:
    """The sample corpus shipped in the data package (data/samples)."""
    import data

    return (Path(data.__file__).resolve().parent / "samples").resolve()


@click.command()
@click.option("--no-demo", is_flag=True, help="Do not register the demo source on first start.")
@click.option(
    "--with-prometheus",
    is_flag=True,
    help="Also run Debian's prometheus binary scraping the worker and Temporal; the dashboard reads it.",
)
@click.option(
    "--with-celery",
    is_flag=True,
    help="Run the Temporal + Celery hybrid: a Celery worker beside the Temporal worker, which hands it the "
    "documents (LOREGUARD_PROCESSING_BACKEND=celery, broker LOREGUARD_CELERY_BROKER_URL).",
)
def up(no_demo: bool, with_prometheus: bool, with_celery: bool) -> None:
    """Run the whole stack on this machine until Ctrl-C: Temporal, worker, dashboard."""
    settings = load_settings()
    if with_celery:
        settings = settings.model_copy(update={"processing_backend": "celery"})
    stack = Stack(settings, with_prometheus=with_prometheus)
    code = stack.run(demo=not no_demo)
    if code:
        raise click.exceptions.Exit(code)
